/* models/biasedmf.h - biased matrix factorisation for explicit ratings (Koren, Bell, Volinsky 2009),
 * served through `rate` and `recommend` (models/model.h).
 *
 * Glossary: U users, N items, F factors, R training ratings.
 *
 * Model:   r^(u,i) = mu + b_u + b_i + p_u . q_i
 * Loss:    sum over training ratings (r - r^)^2 + reg (|p_u|^2 + |q_i|^2) + reg_bias (b_u^2 + b_i^2)
 *          (SGD: each term per rating, as Funk/Koren; ALS: the same objective, one exact least-squares
 *          solve per user, then per item, biases folded in as a constant column).
 * Parameters, one slab (llm.c style), in this order:
 *   mu (1) | bu (U) | bi (N) | P (U, F) | Q (N, F)          all f32
 * Snapshot (DESIGN.md section 3): meta "model":"biasedmf" with "factors", the hyperparameters, the data
 *   and metrics; tensors "mu" (1), "bu" (U), "bi" (N), "P" (U,F), "Q" (N,F), plus the rating_base part
 *   (models/rating_base.h).
 * Serving: rate predicts the formula (unknown user or item: the default rating, flagged); recommend
 *   scores items by q_i . p_u + b_i through the item matrix (W = Q, bias = bi, query = p_u).
 */
#ifndef RECD_BIASEDMF_H
#define RECD_BIASEDMF_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "models/model.h"
#include "models/rating_base.h"

extern const model_type biasedmf_type;

typedef struct biasedmf_hparams {
    int factors;          /* F >= 1 */
    const char *solver;   /* "sgd" | "als" */
    int epochs;           /* at most; the epoch with the best validation RMSE is kept */
    int patience;         /* stop after this many epochs without a better validation RMSE (0: never) */
    double lr;            /* SGD step */
    double lr_decay;      /* SGD: lr *= lr_decay after each epoch */
    double reg;           /* L2 on factors */
    double reg_bias;      /* L2 on biases */
    double init_std;      /* factors start N(0, init_std^2) */
} biasedmf_hparams;

void biasedmf_hparams_default(biasedmf_hparams *hp);
/* RC_OK or RC_EINVAL naming the first bad field. */
int biasedmf_hparams_check(const biasedmf_hparams *hp);

typedef struct biasedmf {
    rating_base base;     /* FIRST: the loaded handle's vocabularies, seen items, popularity, scale
                           * (zeroed for a model being trained). First so that the type table's
                           * rb_type_* accessors (models/rating_base.h) read the handle as a rating_base */
    int64_t U, N;
    int F;
    float *slab;          /* owned, or NULL when the parameters point into a snapshot */
    const float *mu;      /* (1) */
    const float *bu;      /* (U) */
    const float *bi;      /* (N) */
    const float *P;       /* (U, F) */
    const float *Q;       /* (N, F) */
    const snap *snap;     /* the snapshot a loaded handle points into (borrowed) */
} biasedmf;
_Static_assert(offsetof(biasedmf, base) == 0, "biasedmf: rating_base must be the first member (rb_type_*)");

/* A model of U users, N items, F factors with parameters initialised from seed (biases 0, mu =
 * mean, factors N(0, init_std^2)). NULL on ENOMEM or bad sizes (message set). Free with biasedmf_free. */
biasedmf *biasedmf_new(int64_t U, int64_t N, int F, double mean, double init_std, uint64_t seed);
void biasedmf_free(biasedmf *m); /* NULL is a no-op */
/* The writable slab of a model made by biasedmf_new (NULL for a loaded one). */
float *biasedmf_slab(biasedmf *m);

/* Train on in (sizes must match m) with hp. Progress on stderr when in->verbose. *valid_rmse gets the
 * kept epoch's validation RMSE (NAN without validation data) and *epochs_run the epochs run. RC_OK,
 * RC_EINVAL (sizes), RC_ENOMEM. */
int biasedmf_train(biasedmf *m, const biasedmf_hparams *hp, const rb_train_input *in, double *valid_rmse,
                   int *epochs_run);

/* Predictions for ratings t (-1 indices: default_rating, fallback 1): out (n), fallback (n) or NULL. */
void biasedmf_predict(const biasedmf *m, const rb_triples *t, float default_rating, float *out,
                      uint8_t *fallback);

/* Publish ROOT/NAME/VERSION (name: model folder, "biasedmf" by default) with meta extra (borrowed;
 * its fields are merged: hyperparameters, data, metrics) and the rating_base part from src. RC_OK
 * (*version set), or the snapshot writer's errors. */
int biasedmf_save(const biasedmf *m, const rating_base_src *src, const char *root, const char *name,
                  const json_t *extra, uint64_t *version);

#endif
