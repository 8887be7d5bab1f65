/* models/model.h - the one interface every served model implements (DESIGN.md section 1).
 *
 * A model type is a table of capabilities, in the style of h2o's handler structs: the loading part every
 * type has (load, free), a few optional hooks (fingerprint, warm) and one optional operation table per
 * kind of request it can answer (`next`: session step + scoring of every item; `rank`: score given
 * candidates; `rate`: predicted ratings of a user's items; `recommend`: the best unseen items of a
 * user). A route asks a loaded version "do you have `next`?" (model_type.next != NULL) and answers
 * 422 when not; no route or registry code names a model type. Later capabilities (`similar`, `embed`)
 * are added here as one more table pointer by the issue that brings their first
 * model; a type leaves the tables it does not implement NULL.
 *
 * Registration: models/model.c holds the list of serving types (one line per type); trainer/train.c
 * holds the trainer's table (train, eval, help: one line per model). Adding a model touches models/,
 * its trainer file and one line in each table.
 *
 * Handles: load builds a handle from a validated snapshot; it may point into the snapshot's map (zero
 * copy), so the snap must outlive it. A handle is immutable after load: every operation below may run on
 * any number of threads at once, each with its own scratch (scratch_new on that thread or another; a
 * scratch is used by one thread at a time).
 */
#ifndef RECD_MODEL_H
#define RECD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/idmap.h"
#include "core/snap.h"
#include "models/features.h"

/* An item matrix behind a model's scores: score(state, i) = q . W[i] + bias[i], with q the D floats of
 * the state at q_offset. Lets the server and the evaluator score with the packed item-matrix scorer of
 * core/itemscore.h instead of the model's own score. Every pointer is borrowed from the handle (lives as
 * long as it). */
typedef struct model_item_matrix {
    const float *w;    /* (n, d) row-major f32 */
    const float *bias; /* (n), or NULL for none */
    int64_t n;         /* N items */
    int d;             /* D */
    size_t q_offset;   /* the query's first float within a state (S words) */
} model_item_matrix;

/* `next`: a session recommender. A session's state is S 4-byte words, opaque to the server: floats for
 * GRU4Rec (hidden state), int32 bit patterns for a model that keeps recent items (copy them with memcpy,
 * never through float arithmetic). A state of all zero bits is a new session. Items are indices in
 * [0, N) of the type's `items` vocabulary. */
typedef struct model_next_ops {
    /* S, words per session state (>= 1). */
    size_t (*state_size)(const void *m);
    /* Scratch for up to max_batch states at once, used by step and score. NULL on ENOMEM (message set).
     * scratch_free(NULL) is a no-op. */
    void *(*scratch_new)(const void *m, int max_batch);
    void (*scratch_free)(void *scratch);
    /* Advance B states by one click each: state (B,S) updated in place, items (B) in [0,N). No
     * allocation. */
    void (*step)(const void *m, float *state, const int32_t *items, int B, void *scratch);
    /* Scores of every item as the next click for B states: state (B,S), scores (B,N) (caller's buffer,
     * every entry written; higher is better). No allocation. */
    void (*score)(const void *m, const float *state, int B, float *scores, void *scratch);
    /* Optional (NULL: none). Describe the item matrix behind score (RC_OK), or RC_ENOTFOUND when this
     * handle's scores are not one (message set). The description must give the same scores as score up
     * to float rounding: the server checks it on random states before using it. */
    int (*item_matrix)(const void *m, model_item_matrix *out);
} model_next_ops;

/* `rank`: score the candidates of one request from features (the Wide & Deep family). */
typedef struct model_rank_ops {
    /* The input columns and their encodings (borrowed, lives as long as m). */
    const feat_spec *(*spec)(const void *m);
    /* Scratch for up to max_b candidates. NULL on ENOMEM. scratch_free(NULL) is a no-op. */
    void *(*scratch_new)(const void *m, int max_b);
    void (*scratch_free)(void *scratch);
    /* Score B candidates: ctx (ninputs) the request's context values, cand (B, ninputs) each candidate's
     * own values (FEAT_V_MISSING where the candidate gives none: the context's value is used, then the
     * model's default). *logit and *prob (B each) receive pointers into scratch, valid until its next
     * use. RC_OK, or RC_EINVAL with a message and *bad = the failing candidate. */
    int (*score)(const void *m, void *scratch, const feat_value *ctx, const feat_value *cand, int B,
                 const float **logit, const float **prob, int *bad);
} model_rank_ops;

/* `rate`: predict the rating a user would give items (the rating models: biased MF, AutoRec, RBMs,
 * LLORMA). Users are indices in [0, U) of the type's `users` vocabulary (model_type.users, required
 * with `rate`), items in [0, N) of its `items`; -1 stands for an id the model has not seen. */
typedef struct model_rate_ops {
    /* Scratch for predicting up to max_b items of one user at a time. NULL on ENOMEM (message set).
     * scratch_free(NULL) is a no-op. */
    void *(*scratch_new)(const void *m, int max_b);
    void (*scratch_free)(void *scratch);
    /* Predicted ratings of user u (-1: unknown) for items[0..B) (-1: unknown): out (B), fallback (B)
     * set to 1 where the model had no basis for a prediction (unknown user or item: the model's
     * default rating, meta "default_rating", 3 unless the trainer says otherwise) and 0 elsewhere.
     * Predictions are not clipped to the rating scale. No allocation. */
    void (*predict)(const void *m, int32_t u, const int32_t *items, int B, float *out, uint8_t *fallback,
                    void *scratch);
} model_rate_ops;

/* `recommend`: the best items for a known user (rating models; later VBPR, WMF, text models). Users are
 * indices in [0, U) of the type's `users` vocabulary, items in [0, N) of its `items` (model_type.users
 * and .items, both required with `recommend`). */
typedef struct model_recommend_ops {
    /* The items user u interacted with in training (never recommended to u): *items points at n
     * sorted, distinct indices in [0, N) (borrowed, lives as long as m); returns n (0: none). */
    int64_t (*seen)(const void *m, int32_t u, const int32_t **items);
    /* Scratch for score and query (one user at a time). NULL on ENOMEM. scratch_free(NULL) no-op. */
    void *(*scratch_new)(const void *m);
    void (*scratch_free)(void *scratch);
    /* Scores of every item for user u in [0, U): scores (N), caller's buffer, every entry written,
     * higher is better (for a rating model: the predicted rating, up to a per-user constant). */
    void (*score)(const void *m, int32_t u, float *scores, void *scratch);
    /* Optional (NULL: none; then query is NULL too). The item matrix behind score (see
     * model_item_matrix; q_offset is 0) or RC_ENOTFOUND with a message. */
    int (*item_matrix)(const void *m, model_item_matrix *out);
    /* With item_matrix: the query of user u, q (D floats, caller's buffer), such that
     * q . W[i] + bias[i] equals score(u)[i] up to float rounding and a per-user constant. */
    void (*query)(const void *m, int32_t u, float *q, void *scratch);
} model_recommend_ops;

typedef struct model_type {
    const char *name; /* the "model" field of a snapshot's meta, e.g. "gru4rec" */
    const char *help; /* one line: what the model is */
    /* Build a serving handle from s (borrowed; must outlive the handle). RC_OK or an RC_E* code with a
     * message (e.g. RC_ECORRUPT for a missing or misshapen tensor). */
    int (*load)(void **handle, const snap *s);
    void (*free)(void *handle); /* NULL handle is a no-op */
    /* Optional. A hash of what makes per-session state of one version valid for another (vocabulary,
     * state layout): sessions keep their state across a swap only when it is equal. NULL: 0. The
     * registry mixes the type's name in, so two types never share a fingerprint. */
    uint64_t (*fingerprint)(const void *handle);
    /* Optional. Run representative work so code and data are hot before the handle serves (the
     * server also runs a few requests through each capability the type has). RC_OK or RC_E*. */
    int (*warm)(const void *handle);
    /* Optional. The item vocabulary (external id <-> index in [0,N)), borrowed; NULL for a type without
     * items of its own (rank scores whatever candidates it is given). */
    const idmap *(*items)(const void *handle);
    /* Optional. The user vocabulary (external id <-> index in [0,U)), borrowed; NULL for a type without
     * users of their own (the session and rank models). Required with `rate` or `recommend`: the server
     * refuses to load a version whose type has one of them but no `users` (route_prepare). */
    const idmap *(*users)(const void *handle);
    /* Optional. Item indices by training popularity, most popular first (N entries, borrowed): the
     * answer when a session has no known click. NULL: no popularity fallback. */
    const int32_t *(*popular)(const void *handle);
    /* Capabilities: NULL when the type lacks one. */
    const model_next_ops *next;
    const model_rank_ops *rank;
    const model_rate_ops *rate;
    const model_recommend_ops *recommend;
} model_type;

/* The type called name (a snapshot meta's "model"), or NULL. */
const model_type *model_type_find(const char *name);
/* The i-th registered type (0..), NULL past the end: for listings and tests. */
const model_type *model_type_at(int i);

#endif
