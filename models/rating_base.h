/* models/rating_base.h - what every rating model's snapshot and handle share: the user and item
 * vocabularies, each user's rated items (never recommended back), item popularity (the answer for a
 * user the model does not know), the rating scale and the default rating.
 *
 * Glossary: U users, N items, R training ratings.
 *
 * Snapshot part (DESIGN.md section 3), written by rb_save, read by rb_load:
 *   vocab "users" (U ids), vocab "items" (N ids);
 *   tensor "seen_offsets" i64 (U+1), "seen_items" i32 (R): user u rated seen_items[seen_offsets[u] ..
 *     seen_offsets[u+1]) (sorted ascending, distinct, in [0, N));
 *   tensor "popular" i32 (N): items by number of training ratings, most first (ties by index);
 *   meta "rating": {"default":3, "min":1, "max":5, "mean":3.58} (the rating scale seen in training and
 *     the default prediction for an unknown user or item).
 *
 * A loaded rating_base points into the snapshot's map (zero copy) except the vocabularies, which are
 * built in memory (snap_vocab_load): the snap must outlive it. Immutable after load; thread-safe.
 */
#ifndef RECD_RATING_BASE_H
#define RECD_RATING_BASE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/idmap.h"
#include "core/snap.h"

typedef struct rating_base {
    idmap *users;                 /* U ids (owned by the handle) */
    idmap *items;                 /* N ids (owned by the handle) */
    int64_t n_users, n_items;     /* U, N */
    const int64_t *seen_offsets;  /* (U+1) borrowed from the map (or the trainer's arrays) */
    const int32_t *seen_items;    /* (R) */
    const int32_t *popular;       /* (N) */
    float default_rating;         /* prediction for an unknown user or item */
    float rmin, rmax;             /* rating scale seen in training */
    float mean;                   /* mean training rating */
} rating_base;

/* What a trainer hands rb_save (every pointer borrowed for the call): the vocabularies, the training
 * ratings by user (offsets (U+1), items (R) sorted within each user), and the scale. */
typedef struct rating_base_src {
    const idmap *users, *items;
    const int64_t *offsets;       /* (U+1) */
    const int32_t *items_by_user; /* (R) */
    float default_rating, rmin, rmax, mean;
} rating_base_src;

/* Training data as the models take it (trainer/ratings.h's rt_csr and rt_data, borrowed). */
typedef struct rb_rows {
    int64_t rows, nnz;            /* I (U by user, N by item), R */
    const int64_t *offsets;       /* (I+1) */
    const int32_t *col;           /* (R) sorted ascending within a row */
    const float *val;             /* (R) */
} rb_rows;
typedef struct rb_triples {
    int64_t n;                    /* ratings */
    const int32_t *user, *item;   /* (n) indices, -1: unknown to the model (predict the default) */
    const float *rating;          /* (n) */
} rb_triples;

/* What every model's train function takes: the training rows both ways, the validation ratings (for
 * choosing the epoch: valid.n may be 0, then the last epoch is kept), the mean training rating, the
 * default rating, threads, a seed, and verbose (progress on stderr: epoch, loss, validation RMSE,
 * ratings/s, ETA). Borrowed for the call. */
typedef struct rb_train_input {
    rb_rows by_user, by_item;
    rb_triples valid;
    double mean;
    float default_rating, rmin, rmax;
    int threads;
    uint64_t seed;
    int verbose;
} rb_train_input;

/* sqrt(mean((pred - rating)^2)) over t (pred (n)); 0 when t->n == 0. Sums in double. */
double rb_rmse(const rb_triples *t, const float *pred);

/* Store the shared part into an open snapshot writer (vocabularies, seen and popular tensors) and
 * return the meta "rating" object to put in the model's meta (new reference, *rating_meta).
 * RC_OK, RC_EINVAL (sizes inconsistent, an item out of range or unsorted), or the writer's errors. */
int rb_save(snap_writer *w, const rating_base_src *src, json_t **rating_meta);

/* Load the shared part of s (borrowed: must outlive b). RC_OK, RC_ECORRUPT (a missing or misshapen
 * tensor or vocabulary, seen offsets not increasing, an index out of range, meta "rating" absent or
 * not numbers: message names the snapshot and the culprit), RC_ENOMEM. On failure b is zeroed. */
int rb_load(rating_base *b, const snap *s);
/* Free the vocabularies and zero b. NULL or zeroed: no-op. */
void rb_free(rating_base *b);

/* The rated items of user u in [0, U): *items (borrowed) and their count (0 and *items NULL for u out of
 * range or a zeroed b). */
int64_t rb_seen(const rating_base *b, int32_t u, const int32_t **items);

/* ---- model_type table entries shared by every rating model ----
 * A rating model's handle struct has `rating_base base;` as its FIRST member, so a pointer to the handle
 * is a pointer to its rating_base (C11 6.7.2.1: no padding before the first member) and one function
 * serves every rating type's table (each model header checks the offset with a static assertion).
 * handle is a loaded handle of such a type (borrowed); the answers are borrowed from it and live as long
 * as it (NULL from a handle being trained, whose base is zeroed).
 *   rb_type_users:   model_type.users, the user vocabulary (U ids).
 *   rb_type_items:   model_type.items, the item vocabulary (N ids).
 *   rb_type_popular: model_type.popular, items by training ratings, most first (N).
 *   rb_type_seen:    model_recommend_ops.seen, rb_seen of the handle's base. */
const idmap *rb_type_users(const void *handle);
const idmap *rb_type_items(const void *handle);
const int32_t *rb_type_popular(const void *handle);
int64_t rb_type_seen(const void *handle, int32_t u, const int32_t **items);

/* For a rating type whose `rate` or `recommend` needs no scratch (model_rate_ops / model_recommend_ops
 * scratch_new and scratch_free): the scratch is a token, the address of one static object that is never
 * read or written (shared by every thread), never NULL; rb_no_scratch_free does nothing. Any handle. */
void *rb_no_scratch_rate(const void *handle, int max_b);
void *rb_no_scratch_recommend(const void *handle);
void rb_no_scratch_free(void *scratch);

#endif
