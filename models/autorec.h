/* models/autorec.h - AutoRec, the autoencoder for collaborative filtering of Sedhain, Menon, Sanner
 * and Xie (WWW 2015), item-based (I-AutoRec) and user-based (U-AutoRec), served through `rate` and
 * `recommend` (models/model.h).
 *
 * Glossary: U users, N items, R training ratings, K hidden units. A model has a variant:
 *   item (I-AutoRec): each ITEM is an example, its input the vector of its users' ratings:
 *                     E = N examples, D = U inputs (and outputs)
 *   user (U-AutoRec): each USER is an example, its input the vector of its items' ratings:
 *                     E = U examples, D = N inputs
 *
 * Model (for example e with observed inputs O(e) = {d : x_ed observed}):
 *   encode   h_e = sigmoid(V x_e + mu)             h_e is (K); only observed x_ed count (the others are
 *                                                  not zeros but absent: V x_e = sum_{d in O(e)} x_ed V[:,d])
 *   decode   x^_ed = W[d] . h_e + b[d]             identity output, needed only at d in O(e) for the loss
 *   loss     L = sum_e sum_{d in O(e)} (x^_ed - x_ed)^2 + (lambda/2) (|W|_F^2 + |V|_F^2)
 *            (a SUM over ratings, as the paper writes it; b, mu are not regularised. The authors' code,
 *            mesuvash/NNRec, minimises half the squared error, so its lambda = 200 is 400 here. Tuned on
 *            the ML-1M validation split: 300 for I-AutoRec, 200 with K = 100 for U-AutoRec: the
 *            configs/ files)
 * Prediction of the rating of (u, i): item variant W[u] . h_i + b[u], user variant W[i] . h_u + b[i],
 *   where h_e is computed from e's TRAINING ratings only (never from the ratings being predicted: the
 *   leakage of several public re-implementations). An unknown user OR item (index -1): the default
 *   rating, flagged.
 *
 * Parameters, one slab (llm.c style), in this order, all f32:
 *   W (D, K) | b (D) | Vt (D, K) | mu (K)
 * where Vt is V (K, D) stored transposed: row d of Vt is column d of V, so the encoder of a sparse
 * example reads one contiguous row per observed input.
 *
 * Cost: everything is sparse. One pass (loss and gradient) is ~10 R K flops:
 *   per example (threads split the E examples): z = mu + sum x_ed Vt[d]; h = sigmoid(z);
 *     for d in O(e): x^ = W[d].h + b[d], g = 2 (x^ - x), dh += g W[d];  dz = dh h (1 - h)
 *   per input (threads split the D inputs): dW[d] = lambda W[d] + sum_e g_ed h_e, db[d] = sum_e g_ed,
 *     dVt[d] = lambda Vt[d] + sum_e x_ed dz_e;  and dmu = sum_e dz_e.
 * Every gradient row is written by one thread in a fixed order, so the result does not depend on the
 * number of threads: training is deterministic for a seed.
 *
 * Training (autorec_train): full-batch L-BFGS (core/lbfgs.h, as the authors for I-AutoRec) or iRprop-
 * (core/rprop.h, as the authors for U-AutoRec); validation RMSE every eval_every iterations, the
 * parameters of the best one kept.
 *
 * Snapshot (DESIGN.md section 3): meta "model": the folder name ("i-autorec", "u-autorec" by default),
 * "type":"autorec" when that differs from "autorec", "variant":"item"|"user", "hidden": K, the
 * hyperparameters, data and metrics (the trainer's extra); tensors "W" (D,K), "b" (D), "Vt" (D,K),
 * "mu" (K) and "H" (E,K): the hidden codes of every example from its training ratings, computed at
 * save time so that serving is one dot product per rating; plus the rating_base part
 * (models/rating_base.h).
 * Serving: rate predicts as above. recommend scores every item through the item matrix:
 *   item variant: W = H (N,K), no bias, query W[u] (the per-user constant b[u] is left out);
 *   user variant: W = W (N,K), bias b (N), query H[u].
 */
#ifndef RECD_AUTOREC_H
#define RECD_AUTOREC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "models/model.h"
#include "models/rating_base.h"

extern const model_type autorec_type;

typedef enum { AUTOREC_ITEM = 0, AUTOREC_USER = 1 } autorec_variant;
typedef enum { AUTOREC_LBFGS = 0, AUTOREC_RPROP = 1 } autorec_optimizer;

/* "item" | "user" -> AUTOREC_ITEM | AUTOREC_USER, -1 otherwise (NULL too); the name of one ("?"). */
int autorec_variant_parse(const char *s);
const char *autorec_variant_name(int v);
/* "lbfgs" | "rprop" -> AUTOREC_LBFGS | AUTOREC_RPROP, -1 otherwise; the name of one ("?"). */
int autorec_optimizer_parse(const char *s);
const char *autorec_optimizer_name(int o);

typedef struct autorec_hparams {
    int variant;          /* autorec_variant */
    int hidden;           /* K >= 1; 500 */
    double lambda;        /* L2 on W and V (loss a sum over ratings) >= 0; 200 */
    int optimizer;        /* autorec_optimizer; lbfgs */
    int iters;            /* L-BFGS iterations or Rprop steps >= 1; 500 */
    int eval_every;       /* validation RMSE every this many iterations >= 1; 10 */
    int patience;         /* stop after this many validations without a better RMSE (0: never); 0 */
    int lbfgs_m;          /* L-BFGS history pairs >= 1; 10 */
    double rprop_step;    /* Rprop's initial step > 0; 0.01 */
    double rprop_step_max;/* Rprop's largest step > 0; 1 */
    double init_scale;    /* W, V start uniform in +-init_scale sqrt(6 / (D + K)) (Glorot); 1 */
} autorec_hparams;

void autorec_hparams_default(autorec_hparams *hp);
/* RC_OK or RC_EINVAL naming the first bad field. */
int autorec_hparams_check(const autorec_hparams *hp);

typedef struct autorec {
    rating_base base;     /* FIRST: the loaded handle's vocabularies, seen items, popularity, scale
                           * (zeroed for a model being trained). First so that the type table's
                           * rb_type_* accessors (models/rating_base.h) read the handle as a rating_base */
    int variant;          /* autorec_variant */
    int64_t U, N;         /* users, items */
    int64_t E, D;         /* examples and inputs: (N, U) for item, (U, N) for user */
    int K;                /* hidden units */
    float *slab;          /* owned (autorec_new), or NULL when the parameters point into a snapshot */
    const float *W;       /* (D, K) */
    const float *b;       /* (D) */
    const float *Vt;      /* (D, K) V transposed */
    const float *mu;      /* (K) */
    const float *H;       /* (E, K) hidden codes from training ratings, NULL until autorec_encode (or
                           * train) computes them; a loaded handle's points into the snapshot */
    float *H_owned;       /* (E, K) owned buffer behind H for a model being trained */
    const snap *snap;     /* the snapshot a loaded handle points into (borrowed) */
} autorec;
_Static_assert(offsetof(autorec, base) == 0, "autorec: rating_base must be the first member (rb_type_*)");

/* A model of U users, N items, K hidden units, variant v, parameters from seed: W and Vt uniform in
 * +-init_scale sqrt(6 / (D + K)), mu 0, b = mean (the mean training rating). NULL on ENOMEM or bad
 * sizes (message set). Free with autorec_free. */
autorec *autorec_new(int variant, int64_t U, int64_t N, int K, double mean, double init_scale, uint64_t seed);
void autorec_free(autorec *m); /* NULL is a no-op */
/* The writable slab of a model made by autorec_new (NULL for a loaded one), and its size P in floats:
 * 2 D K + D + K. */
float *autorec_slab(autorec *m);
size_t autorec_nparams(const autorec *m);

/* Compute H (E, K) from the training rows in (sizes must match m) with the current parameters, on
 * in->threads threads. RC_OK, RC_EINVAL (sizes), RC_ENOMEM. */
int autorec_encode(autorec *m, const rb_train_input *in);

/* Train on in (sizes must match m) with hp (hp->variant and hp->hidden must match m too). Progress on
 * stderr when in->verbose. On return the slab holds the parameters of the best validation RMSE (the
 * last iteration without validation data, or when the optimiser stopped before the first validation
 * was due: then that point is validated) and H is computed from them. *valid_rmse gets that RMSE
 * (NAN without validation data), *kept_iter the iteration kept, *iters_run the iterations run (each
 * may be NULL). RC_OK, RC_EINVAL (sizes, hparams), RC_ENOMEM, RC_ERANGE (diverged: a non-finite loss,
 * gradient or validation RMSE in some iteration, or a non-finite parameter kept; the message names the
 * iteration, the likely cause and the training ratings' span). */
int autorec_train(autorec *m, const autorec_hparams *hp, const rb_train_input *in, double *valid_rmse,
                  int *kept_iter, int *iters_run);

/* Predictions for ratings t (-1 indices: default_rating, fallback 1; needs H): out (n), fallback (n)
 * or NULL. */
void autorec_predict(const autorec *m, const rb_triples *t, float default_rating, float *out, uint8_t *fallback);

/* Publish ROOT/NAME/VERSION (name: the model folder; NULL: "i-autorec" or "u-autorec" by variant) with
 * meta extra (borrowed; its fields merged: hyperparameters, data, metrics), the parameters, H (which
 * must be computed) and the rating_base part from src. RC_OK (*version set), RC_EINVAL (no H), or the
 * snapshot writer's errors. */
int autorec_save(const autorec *m, const rating_base_src *src, const char *root, const char *name,
                 const json_t *extra, uint64_t *version);

/* ---- the loss, for the trainer and the tests ------------------------------------------------------ */

/* The training rows of in laid out for the loss (borrowed rows of in: in must outlive it), with its
 * scratch: H and dZ (E, K), residuals (R). NULL on ENOMEM or sizes not matching m (message set). */
typedef struct autorec_problem autorec_problem;
autorec_problem *autorec_problem_new(const autorec *m, const rb_train_input *in);
void autorec_problem_free(autorec_problem *p); /* NULL is a no-op */

/* L at the parameters x (P floats, laid out as the slab), its gradient into grad (P). On the
 * problem's threads (in->threads); the same result for any number of threads. Returns L (a double
 * sum of per-example float losses). */
double autorec_loss_grad(autorec_problem *p, const float *x, float *grad, double lambda);
/* The naive reference of the same: dense loops over every (e, d) pair with a mask of observed ones,
 * one thread, sums in double. For tests (O(E D K) work). */
double autorec_loss_grad_ref(autorec_problem *p, const float *x, float *grad, double lambda);

#endif
