/* models/gru4rec.h - GRU4Rec session-based next-item model (Hidasi et al. 2016, 2018).
 *
 * Glossary of letters used in shape comments: N items, E embedding size (input), H hidden units per
 * layer, L layers, B batch (sessions scored together), S = state size per session (L*H floats).
 *
 * Serving API (used by server/ and by the evaluator). A loaded model borrows the snapshot's map: its
 * weights are read zero-copy, so the snap must outlive the model. All functions below are thread-safe
 * for concurrent callers as long as each thread passes its own scratch.
 */
#ifndef RECD_GRU4REC_H
#define RECD_GRU4REC_H

#include <stddef.h>
#include <stdint.h>

#include "core/idmap.h"
#include "core/snap.h"
#include "models/model.h"

typedef struct gru4rec gru4rec;
typedef struct gru4rec_scratch gru4rec_scratch;

extern const model_type gru4rec_type;

/* Load from a validated snapshot whose meta model is "gru4rec". RC_ECORRUPT (missing/misshapen tensor,
 * message names it), RC_ENOMEM. *out owned by the caller (gru4rec_free). */
int gru4rec_load(gru4rec **out, const snap *s);
void gru4rec_free(gru4rec *m); /* NULL is a no-op */

int64_t gru4rec_n_items(const gru4rec *m);
/* S: floats of hidden state per session (all layers). A zero state is a new session. */
size_t gru4rec_state_size(const gru4rec *m);
/* Item vocabulary (external id -> index). Borrowed, lives as long as m. */
const idmap *gru4rec_items(const gru4rec *m);
/* A fingerprint of the item vocabulary and hidden size: equal fingerprints mean a session state from
 * one model is valid for the other (hot swap keeps sessions then). */
uint64_t gru4rec_state_fingerprint(const gru4rec *m);
/* Item indices by training popularity, most popular first (N entries). Borrowed. */
const int32_t *gru4rec_popular(const gru4rec *m);

/* Per-thread scratch for up to max_batch sessions at once. NULL on ENOMEM. */
gru4rec_scratch *gru4rec_scratch_new(const gru4rec *m, int max_batch);
void gru4rec_scratch_free(gru4rec_scratch *sc);

/* Advance B sessions by one click each: h is (B,S), updated in place; items is (B) item indices in
 * [0,N). No allocation. */
void gru4rec_step(const gru4rec *m, float *h, const int32_t *items, int B, gru4rec_scratch *sc);
/* Scores of every item for B sessions: h is (B,S), scores is (B,N) (caller's buffer). The ranking
 * score is the last layer's hidden state times the output item embeddings plus the item bias. */
void gru4rec_score(const gru4rec *m, const float *h, int B, float *scores, gru4rec_scratch *sc);

#endif
