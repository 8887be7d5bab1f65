/* models/model.h - the one small interface every model implements (DESIGN.md section 1).
 *
 * A model type loads a handle from a validated snapshot and frees it; the server's registry uses only
 * this table, so adding a model touches models/ and one line in models/model.c. Model-specific scoring
 * (gru4rec_score, widedeep_rank, ...) is declared in each model's own header.
 */
#ifndef RECD_MODEL_H
#define RECD_MODEL_H

#include <jansson.h>

#include "core/snap.h"

typedef struct model_type {
    const char *name; /* the "model" field of a snapshot's meta, e.g. "gru4rec" */
    /* Build a serving handle from s. The handle may point into s's map: s must outlive it. Returns
     * RC_OK or an RC_E* code with a message (e.g. RC_ECORRUPT for a missing or misshapen tensor). */
    int (*load)(void **handle, const snap *s);
    void (*free)(void *handle);
    /* Run a few representative requests so code and data are hot before the handle serves. */
    int (*warm)(void *handle);
} model_type;

/* The type called name, or NULL. */
const model_type *model_type_find(const char *name);

#endif
