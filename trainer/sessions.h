/* trainer/sessions.h - click-stream data for session-based models: reading, GRU4Rec preprocessing,
 * the time split, and the evaluation protocol (DESIGN.md section 7).
 *
 * A sess_data holds sessions contiguously: the clicks of session s are items[offsets[s] ..
 * offsets[s+1]) in time order, sessions ordered by the time of their first click (ties by id).
 * Items are dense indices into `items_vocab` (external ids kept as strings: never narrowed).
 */
#ifndef RECD_SESSIONS_H
#define RECD_SESSIONS_H

#include <stdint.h>
#include <stdio.h>

#include "core/idmap.h"

typedef struct sess_data {
    int64_t n_events, n_sessions;
    int32_t *items;     /* (n_events) item index of each click */
    int64_t *times;     /* (n_events) timestamp of each click, in the file's unit */
    int64_t *offsets;   /* (n_sessions+1) start of each session in items/times */
    idmap *item_vocab;  /* index -> external item id; may be shared: see owns_vocab */
    idmap *sess_vocab;  /* index -> external session id (NULL if not kept) */
    int owns_vocab;     /* 1: sess_free frees item_vocab */
} sess_data;

/* Frees the arrays (and the vocabularies it owns) and zeroes d. */
void sess_free(sess_data *d);

#endif
