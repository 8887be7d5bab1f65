/* models/llorma.h - LLORMA, local low-rank matrix approximation (Lee, Kim, Lebanon, Singer, ICML 2013),
 * the parallel variant, for explicit ratings; served through `rate` and `recommend` (models/model.h).
 *
 * Glossary: U users, N items, R training ratings, q anchor points, r local rank, k columns of a local
 * row (r, or r + 2 with local biases), F global rank.
 *
 * Model. A global factorisation g(u,i) = mu + bu[u] + bi[i] + P[u] . Q[i] (biased MF by SGD, early
 * stopped on validation RMSE) gives user vectors P (U,F) and item vectors Q (N,F) and so distances
 *     d(u,u') = arccos(cos(P[u], P[u'])),  d(i,i') = arccos(cos(Q[i], Q[i'])),   in [0, pi] radians
 * (a zero vector has cosine 0 with everything: distance pi/2). The Epanechnikov kernel of width h is
 *     K_h(d) = max(0, 1 - (d/h)^2)                    (1 at d = 0, 0 from d = h on).
 * q anchor points (u_t, i_t) are training ratings drawn uniformly at random (with replacement) by the
 * seed. Local model t has rows U_t (U,k), V_t (N,k) and predicts
 *     f_t(u,i) = base(u,i) + U_t[u] . V_t[i]
 * With local_biases the last two columns are (b_u, 1) in U_t and (1, c_i) in V_t, so that the product
 * holds a local user bias and a local item bias (the constant 1s are never trained). base is
 * hparams.local_base:
 *     LLORMA_BASE_ZERO    0          the paper and its authors' code (PREA): local models of the raw
 *                                    ratings, no mean, no biases (they initialise factors uniform in
 *                                    [0,1) so that products start near the mean rating; we draw
 *                                    N(c, init_std^2) with c = sqrt(mean / r) for the same effect)
 *     LLORMA_BASE_MEAN    mu         the training mean first (recd's default, with local biases: the
 *                                    best on ML-1M validation)
 *     LLORMA_BASE_GLOBAL  g(u,i)     local models fit the residuals of the global model
 * The weight of rating (u,i) for anchor t is w_t(u,i) = K_h(d(u_t,u)) K_h(d(i_t,i)). Local model t
 * minimises, over the training ratings Omega_t with w_t > 0 (only those are visited),
 *     L_t = sum_{(u,i) in Omega_t} w_t(u,i) [ (r_ui - f_t(u,i))^2 + reg (|U_t[u]|^2 + |V_t[i]|^2) ]
 * by SGD (solver "sgd"): with y = r - base and e = y - U_t[u] . V_t[i], for each rating
 *     U_t[u] += lr w (e V_t[i] - reg U_t[u]),   V_t[i] += lr w (e U_t[u] - reg V_t[i])
 * (both from the old values: -lr/2 times the gradient of that rating's term; lr *= lr_decay each
 * epoch), or by weighted ALS (solver "als": each row the exact minimiser with the other side fixed).
 * The authors regularise every visited rating without its weight; weighting the whole term makes L_t
 * a weighted sum of MF terms (a rating of weight w counts w times).
 * Training order: the R ratings are shuffled once (by the seed); every epoch each local model visits
 * them in 256 chunks taken in an order of its own. Epochs run in lockstep: all q local models
 * advance one epoch (anchors are independent: `threads` threads share them), then the final model's
 * validation RMSE is measured, and training keeps the epoch where it was best (early stopping on what
 * is served, with patience; the authors run a fixed number of iterations). Every anchor draws from its
 * own random stream split from the seed in anchor order, so the model is the same for any number of
 * threads.
 * Prediction:
 *     W(u,i) = sum_t w_t(u,i);   r^(u,i) = base(u,i) + sum_t w_t(u,i) U_t[u] . V_t[i] / W(u,i)
 * (the kernel-weighted mean of the f_t), and r^ = g(u,i) where W = 0 (no anchor near the pair: not
 * flagged); an unknown user or item (index -1) gets the default rating and fallback 1.
 * Bandwidth. The authors' code measures the angle divided by pi/2 (their h = 0.8 is 1.26 rad here) on
 * vectors of an SVD without biases, which all lean towards the mean rating, so that nearly every pair
 * of users is within h. Our vectors come from a biased factorisation and are spread out (two users are
 * typically pi/2 apart), so the same mild locality takes a wide kernel. On ML-1M (split seed 1) a
 * narrow kernel leaves each local model fewer ratings and the average worse (30 anchors, each model
 * stopped on its own validation error: 0.852 validation RMSE at h = 2.0, 0.844 at h = pi); h = 2.5 and
 * h = pi tie with the lockstep training (0.8395, 20 anchors); configs/llorma.json uses h = 3.14.
 * What the average gains comes from many models that each fit a little past their own best (the
 * lockstep stopping, reg 0.02): on the same split 20 anchors give 0.8395 validation RMSE, 50 give
 * 0.8379, 100 give 0.8378, against 0.8617 for the global rank-10 model alone.
 *
 * Parameters, one slab (llm.c style), in this order, all f32:
 *   mu (1) | bu (U) | bi (N) | P (U,F) | Q (N,F) | Ul (q,U,k) | Vl (q,N,k) | wu (q,U) | wi (q,N)
 * wu[t,u] = K_h(d(u_t,u)) and wi[t,i] = K_h(d(i_t,i)) are computed once (they depend on P and Q
 * only), so that w_t(u,i) = wu[t,u] wi[t,i]. Rows of Ul (Vl) whose weight wu (wi) is 0 are stored as 0.
 * Anchors: anchors (q,2) i32, (u_t, i_t) per row, beside the slab.
 * Snapshot (DESIGN.md section 3): meta "model":"llorma" with "n_users", "n_items", "anchors" (q),
 *   "rank" (r), "local_biases" (bool), "global_rank" (F), "bandwidth" (h), "local_base"
 *   ("zero"|"mean"|"global"), "hparams" (every field of llorma_hparams), "rating"
 *   (models/rating_base.h) and the caller's extra fields (data, metrics); tensors "mu" (1), "bu" (U),
 *   "bi" (N), "P" (U,F), "Q" (N,F), "Ul" (q,U,k), "Vl" (q,N,k), "wu" (q,U), "wi" (q,N) f32,
 *   "anchors" (q,2) i32, plus the rating_base part.
 * Serving: rate predicts as above; recommend scores every item for a user with that formula
 *   (anchors with wu[t,u] = 0 skipped, items with wi[t,i] = 0 skipped) into scratch sized once:
 *   there is no single item matrix, so item_matrix and query are NULL.
 * Cost: training ~ epochs x q x |Omega_t| x 4k flops (|Omega_t| is the share of R that h leaves); a
 *   prediction ~ q k flops, a user's recommend ~ q N k flops at most.
 */
#ifndef RECD_LLORMA_H
#define RECD_LLORMA_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "models/model.h"
#include "models/rating_base.h"

extern const model_type llorma_type;

enum { LLORMA_BASE_ZERO = 0, LLORMA_BASE_MEAN = 1, LLORMA_BASE_GLOBAL = 2 };
enum { LLORMA_SOLVER_SGD = 0, LLORMA_SOLVER_ALS = 1 };
enum { LLORMA_INIT_RANDOM = 0, LLORMA_INIT_GLOBAL = 1 };
/* "zero" | "mean" | "global" <-> LLORMA_BASE_*: -1 (NULL) for an unknown name (value). */
int llorma_base_parse(const char *name);
const char *llorma_base_name(int base);

typedef struct llorma_hparams {
    int anchors;            /* q >= 1 */
    int rank;               /* r >= 1, local models */
    double bandwidth;       /* h in (0, pi] radians; Epanechnikov width of both kernels */
    int local_base;         /* LLORMA_BASE_* */
    int local_biases;       /* 1: each local model has its own user and item biases (k = rank + 2) */
    int solver;             /* LLORMA_SOLVER_*: local models by SGD or by weighted ALS */
    int local_init;         /* LLORMA_INIT_*: random, or the global model's factors (and biases) */
    int epochs;             /* local models: at most this many epochs (all in lockstep) */
    int patience;           /* stop after this many epochs without a better validation RMSE of the
                               final model (0: never) */
    double lr, lr_decay;    /* local SGD step, multiplied by lr_decay after each epoch */
    double reg;             /* local L2 */
    double init_std;        /* local factors start N(c, init_std^2), c = sqrt(mean / r) for "zero",
                               else 0 */
    int global_rank;        /* F >= 1 */
    int global_epochs, global_patience;
    double global_lr, global_lr_decay, global_reg, global_reg_bias, global_init_std;
} llorma_hparams;

void llorma_hparams_default(llorma_hparams *hp);
/* RC_OK or RC_EINVAL naming the first bad field. */
int llorma_hparams_check(const llorma_hparams *hp);
/* Every field as a JSON object (new reference; NULL on ENOMEM): the snapshot's meta "hparams". */
json_t *llorma_hparams_to_json(const llorma_hparams *hp);

typedef struct llorma {
    rating_base base;     /* FIRST: the loaded handle's vocabularies, seen items, popularity, scale
                           * (zeroed for a model being trained). First so that the type table's
                           * rb_type_* accessors (models/rating_base.h) read the handle as a rating_base */
    int64_t U, N;
    int q, k, F;          /* anchors, columns of a local row (rank, + 2 with local biases), global rank */
    int local_base;       /* LLORMA_BASE_* */
    int local_biases;     /* 0 | 1 */
    double bandwidth;     /* h */
    float *slab;          /* owned (llorma_new), or NULL when the parameters point into a snapshot */
    const float *mu;      /* (1) */
    const float *bu;      /* (U) */
    const float *bi;      /* (N) */
    const float *P;       /* (U, F) */
    const float *Q;       /* (N, F) */
    const float *Ul;      /* (q, U, k) */
    const float *Vl;      /* (q, N, k) */
    const float *wu;      /* (q, U) */
    const float *wi;      /* (q, N) */
    const int32_t *anchors; /* (q, 2): into anchors_owned (llorma_new) or into the snapshot */
    int32_t *anchors_owned;
    const snap *snap;     /* the snapshot a loaded handle points into (borrowed) */
} llorma;
_Static_assert(offsetof(llorma, base) == 0, "llorma: rating_base must be the first member (rb_type_*)");

/* A model of U users, N items and the sizes of hp (anchors, rank, global_rank, local_base,
 * bandwidth), all parameters 0 but mu = mean, anchors (0,0). NULL on ENOMEM or bad sizes (message
 * set). Free with llorma_free. */
llorma *llorma_new(int64_t U, int64_t N, const llorma_hparams *hp, double mean);
void llorma_free(llorma *m); /* NULL is a no-op */

/* Writable views of the parameters of a model made by llorma_new (shapes as in struct llorma). */
typedef struct llorma_params {
    float *mu, *bu, *bi, *P, *Q, *Ul, *Vl, *wu, *wi;
    int32_t *anchors;
} llorma_params;
/* RC_OK, or RC_EINVAL for a loaded handle (its parameters are the read-only map). */
int llorma_params_of(llorma *m, llorma_params *out);

/* What training reports. */
typedef struct llorma_train_stats {
    double valid_rmse;        /* of the final model (NAN without validation data) */
    double global_valid_rmse; /* of the global model alone (NAN without validation data) */
    int global_epochs;        /* epochs the global model ran */
    int global_best_epoch;    /* the global model's epoch kept (all of them without validation data) */
    int epochs;               /* epochs the local models ran */
    int best_epoch;           /* the epoch kept (0: the initial factors) */
    double coverage;          /* share of the training ratings (u,i) with W(u,i) > 0 */
    double train_s;           /* wall seconds */
} llorma_train_stats;

/* Train m (made by llorma_new with the same hp sizes and in's U, N) on in with hp: the global model,
 * the anchors, the kernels, then the q local models on in->threads threads. Deterministic for
 * in->seed whatever in->threads (a thread that cannot start leaves its share to the others).
 * Progress on stderr when in->verbose (global epochs; local epochs with the validation RMSE,
 * ratings/s, ETA). *st (may be NULL) gets the figures. RC_OK, RC_EINVAL (sizes, hparams, no training
 * rating), RC_ENOMEM, RC_ERANGE (diverged: a non-finite training loss or validation RMSE in some epoch of
 * the global or the local models, or a non-finite parameter kept; the message names the epoch, the
 * step and the training ratings' span). */
int llorma_train(llorma *m, const llorma_hparams *hp, const rb_train_input *in, llorma_train_stats *st);

/* ---- pieces, exposed for tests and for the trainer ------------------------------------------- */

/* K_h(d) = max(0, 1 - (d/h)^2). */
double llorma_kernel(double d, double h);
/* arccos of the cosine of a and b (n floats each, sums in double; cosine clamped to [-1,1]); pi/2
 * when either is zero. */
double llorma_distance(const float *a, const float *b, int n);
/* The global model's prediction g(u,i) (u in [0,U), i in [0,N)). */
float llorma_global_predict(const llorma *m, int32_t u, int32_t i);
/* base(u,i) of m->local_base. */
float llorma_base_value(const llorma *m, int32_t u, int32_t i);
/* Kernel rows of anchor (au, ai) from m's P and Q: wu_row (U) = K_h(d(au,u)), wi_row (N) =
 * K_h(d(ai,i)), h = m->bandwidth. */
void llorma_kernel_rows(const llorma *m, int32_t au, int32_t ai, float *wu_row, float *wi_row);

/* One kernel-weighted training rating of a local model: y = r - base(u,i), w = w_t(u,i) > 0. */
typedef struct llorma_wr {
    int32_t u, i;
    float y, w;
} llorma_wr;
/* The weighted local objective of factors Ut (U,k), Vt (N,k) on x (n): sum_j w_j [(y_j - Ut[u].Vt[i])^2
 * + reg (|Ut[u]|^2 + |Vt[i]|^2)], summed in double. With dUt (U,k) and dVt (N,k) non-NULL, its
 * gradient is ADDED to them (float; the caller zeroes them). The reference for the SGD and ALS steps. */
double llorma_local_objective(const float *Ut, const float *Vt, int k, const llorma_wr *x, int64_t n, double reg,
                              float *dUt, float *dVt);
/* One SGD epoch over x (n) in that order (the update above) of factors Ut (U,k), Vt (N,k); biased: the
 * constant columns Ut[u][k-1] and Vt[i][k-2] are put back to 1 after each update. Returns sum w e^2
 * (errors before each update) in double. */
double llorma_local_sgd_epoch(float *Ut, float *Vt, int k, int biased, const llorma_wr *x, int64_t n, double lr,
                              double reg);
/* One weighted-ALS half-step: every row a in [0,A) of X (A,k) becomes the exact minimiser of the local
 * objective with Y fixed: sum_j w_j (y_j - X[a].Y[b_j])^2 + reg w_j |X[a]|^2 over its ratings
 * x[off[a] .. off[a+1]) (b_j = x[j].i, or x[j].u when by_item), solved by Cholesky in double over the
 * free columns (all but `fixed`, which stays 1; -1: none). A row without a rating gets 0 in its free
 * columns. work: (k k + 2 k) doubles. */
void llorma_local_als_half(float *X, const float *Y, int k, int fixed, const int64_t *off, const llorma_wr *x,
                           int64_t A, int by_item, double reg, double *work);

/* Predictions for ratings t (-1 indices: default_rating, fallback 1): out (n), fallback (n) or NULL.
 * Uses the precomputed wu, wi. */
void llorma_predict(const llorma *m, const rb_triples *t, float default_rating, float *out, uint8_t *fallback);
/* The prediction of every item for user u in [0,U): scores (N); num and den (N each) are scratch.
 * Equal to llorma_predict of (u, i) for each i bit for bit (the same float arithmetic in the same
 * order; the test checks it). No allocation. */
void llorma_score_user(const llorma *m, int32_t u, float *scores, float *num, float *den);

/* Publish ROOT/NAME/VERSION (name: model folder, "llorma" by default; another name also writes meta
 * "type":"llorma") with meta "hparams" from hp (may be NULL: {}), meta extra (borrowed; its fields
 * are merged: data, metrics, training figures) and the rating_base part from src. RC_OK
 * (*version set), or RC_EINVAL (src sizes differ from m), or the snapshot writer's errors. */
int llorma_save(const llorma *m, const llorma_hparams *hp, const rating_base_src *src, const char *root,
                const char *name, const json_t *extra, uint64_t *version);

/* Build a handle from snapshot s (what llorma_type.load does): parameters point into s's map, s must
 * outlive *out. RC_OK, RC_ECORRUPT (a missing or misshapen tensor, meta fields absent or out of
 * range, a kernel weight outside [0,1], an anchor out of range; message names the snapshot), RC_ENOMEM,
 * or rb_load's errors. Free with llorma_free. */
int llorma_load(llorma **out, const snap *s);

#endif
