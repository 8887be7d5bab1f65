/* models/rbm.h - restricted Boltzmann machines for collaborative filtering (Salakhutdinov, Mnih, Hinton,
 * "Restricted Boltzmann Machines for Collaborative Filtering", ICML 2007; the model without its
 * conditional part), in the two orientations of the AutoRec table: U-RBM and I-RBM. Served through
 * `rate` and `recommend` (models/model.h).
 *
 * Glossary of letters used in shape comments: U users, N items, R training ratings, K rating values
 * (the distinct ratings of training, ascending: 1..5 for MovieLens, half stars give more), F hidden
 * units, C cases and M visible units (U-RBM: C = U users, M = N items; I-RBM: C = N items, M = U
 * users), n the ratings of one case, P the parameter count M*K*F + M*K + F, T threads.
 *
 * Model. Each case (a user in U-RBM, an item in I-RBM) is its own RBM over the units it rated, all
 * sharing one set of weights. A rated unit i is a softmax visible unit v_i in {0..K-1} (one-hot v_i^k;
 * the value index of the rating: values[k] is the rating), hidden units h_j in {0,1}:
 *   energy   E(V,h) = - sum_i sum_k W[i,k,j] v_i^k h_j - sum_i sum_k bv[i,k] v_i^k - sum_j bh[j] h_j
 *            (the sum over i runs over the case's n rated units only)
 *   hidden   p(h_j = 1 | V)     = sigmoid(bh[j] + sum_i W[i,k_i,j])                        (x is (F))
 *   visible  p(v_i = k | h)      = softmax_k(bv[i,k] + sum_j W[i,k,j] h_j)                  (K per unit)
 *   free energy  FE(V) = - sum_i bv[i,k_i] - sum_j softplus(bh[j] + sum_i W[i,k_i,j]),
 *            p(V) = exp(-FE(V)) / Z, Z summing over the K^n configurations of the case's units.
 * Learning: d log p(V) / dW[i,k,j] = <v_i^k h_j>_data - <v_i^k h_j>_model, approximated by contrastive
 *   divergence CD-t: positive statistics v_i^k p(h_j|V); then t Gibbs steps (h sampled from its
 *   probabilities, every rated unit's v_i sampled from its softmax, the next hidden probabilities from
 *   the sampled visibles); negative statistics v~_i^k p(h_j|v~) of the last step (the hidden
 *   probabilities, not a sample: the expectation over the last h, unbiased). With mean_field the
 *   reconstructions are the visible probabilities instead of samples (less noise, a biased gradient;
 *   on ML-1M seed 1 I-RBM gains 0.009 RMSE from it, U-RBM with F 500 0.0026, while U-RBM with F 100
 *   lost 0.006: configs/ choose per variant and data set). Biases
 *   alike (bv: v_i^k, bh: h_j). t grows over epochs (1, 3, 5, 9 in the paper: cd_steps / cd_from).
 *   Mini-batches of cases (gradients summed over the batch's cases and divided by their count),
 *   momentum, L2 weight decay on W, a learning rate multiplied by lr_decay after each epoch; the
 *   validation RMSE after each epoch picks the epoch kept (patience stops early). Visible biases start
 *   at the log of each unit's (smoothed) rating frequencies, hidden biases at 0, W at N(0, init_std^2).
 * Prediction (the paper's fast rule): for user u and item i with c the case and q the unit (U-RBM:
 *   c = u, q = i; I-RBM: c = i, q = u), H[c] = p(h | V_c) from the case's TRAINING ratings (never a
 *   rating being predicted), p_k = softmax_k(bv[q,k] + W[q,k,:] . H[c]), prediction sum_k p_k values[k]
 *   (the expected rating; not clipped). An unknown user or item (-1), either one: the default rating,
 *   flagged.
 *
 * Parameters, one slab (llm.c style), in this order:
 *   W (M,K,F) | bv (M,K) | bh (F) | H (C,F)          all f32
 * (the first P floats are the parameters, rbm_cd_grad's gradient and the momentum share their layout;
 * H, the hidden probabilities of every case, is derived: rbm_hidden computes it, rbm_train leaves it
 * computed).
 * Snapshot (DESIGN.md section 3): ROOT/NAME/VERSION with meta "model": NAME ("u-rbm" or "i-rbm" by
 *   default), "type": "rbm" (whenever NAME is not "rbm": core/snap.h, snap_type), "variant":
 *   "user"|"item", "hidden": F, "values": [K ratings], plus the trainer's fields (hparams, data,
 *   metrics); tensors "W" (M,K,F), "bv" (M,K), "bh" (F), "H" (C,F), "values" (K), and the rating_base
 *   part (models/rating_base.h). A loaded handle points into the snapshot's map (zero copy): the snap
 *   must outlive it. Handles are immutable after load and thread-safe (rate and recommend need no
 *   scratch memory beyond their stack: K <= RBM_MAX_K floats). The snapshot is about 4 (M K F + C F)
 *   bytes: I-RBM with F 800 on ML-1M, 110 MB.
 * Serving: rate predicts the expected rating as above (no hidden unit is recomputed: H is stored);
 *   recommend scores every item by its expected rating for the user (no item matrix: the softmax is not
 *   a dot product; item_matrix and query are NULL): N K F multiply-adds per request.
 */
#ifndef RECD_RBM_H
#define RECD_RBM_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/rng.h"
#include "models/model.h"
#include "models/rating_base.h"

extern const model_type rbm_type;

enum { RBM_USER = 0, RBM_ITEM = 1 }; /* variant: U-RBM (cases are users), I-RBM (cases are items) */
#define RBM_MAX_K 32                 /* distinct rating values */
#define RBM_MAX_CD 8                 /* entries of the CD schedule */
#define RBM_MAX_HIDDEN 65536

typedef struct rbm_hparams {
    int variant;            /* RBM_USER | RBM_ITEM */
    int hidden;             /* F, 1..RBM_MAX_HIDDEN */
    int epochs;             /* at most; the epoch with the best validation RMSE is kept */
    int patience;           /* stop after this many epochs without a better validation RMSE (0: never) */
    int batch;              /* cases per mini-batch, >= 1 */
    double lr;              /* step on W, bv, bh (gradient averaged over the batch's cases) */
    double lr_decay;        /* lr *= lr_decay after each epoch, (0, 1] */
    double momentum_start;  /* momentum of the first momentum_epochs epochs, [0, 1) */
    int momentum_epochs;    /* >= 0 */
    double momentum;        /* momentum afterwards, [0, 1) */
    double weight_decay;    /* L2 on W (added to the averaged gradient as -weight_decay * W), >= 0 */
    double init_std;        /* W starts N(0, init_std^2), >= 0 */
    int mean_field;         /* 0: reconstructions sample each visible unit (the paper's CD); 1: they are
                               the visible probabilities (no sampling noise in v~; biased) */
    int n_cd;               /* 1..RBM_MAX_CD entries in the CD schedule: */
    int cd_steps[RBM_MAX_CD]; /* Gibbs steps t >= 1, */
    int cd_from[RBM_MAX_CD];  /* from this epoch on (1-based; cd_from[0] == 1, increasing) */
} rbm_hparams;

/* Defaults (one place: rbm_hparams_default and the trainer's settings use them), tuned for I-RBM on
 * ML-1M (split seed 1): reconstructions by their probabilities, a fast-decaying learning rate (the
 * validation RMSE turns up within a few epochs at a steady one), little weight decay (more underfits). */
#define RBM_DEF_HIDDEN 800
#define RBM_DEF_EPOCHS 25
#define RBM_DEF_PATIENCE 5
#define RBM_DEF_BATCH 50
#define RBM_DEF_LR 0.05
#define RBM_DEF_LR_DECAY 0.85
#define RBM_DEF_MOMENTUM_START 0.5
#define RBM_DEF_MOMENTUM_EPOCHS 5
#define RBM_DEF_MOMENTUM 0.9
#define RBM_DEF_WEIGHT_DECAY 0.002
#define RBM_DEF_INIT_STD 0.01
#define RBM_DEF_MEAN_FIELD 1
#define RBM_DEF_CD_STEPS "[1, 3, 5, 9]"
#define RBM_DEF_CD_FROM "[1, 6, 11, 16]"
void rbm_hparams_default(rbm_hparams *hp);
/* RC_OK or RC_EINVAL naming the first bad field. */
int rbm_hparams_check(const rbm_hparams *hp);
/* {"variant":"user"|"item","hidden":..,...,"cd_steps":[..],"cd_from":[..]}: new reference, NULL on
 * ENOMEM. */
json_t *rbm_hparams_to_json(const rbm_hparams *hp);

typedef struct rbm {
    rating_base base;       /* FIRST: the loaded handle's vocabularies, seen items, popularity, scale
                             * (zeroed for a model being trained). First so that the type table's
                             * rb_type_* accessors (models/rating_base.h) read the handle as a rating_base */
    int variant;            /* RBM_USER | RBM_ITEM */
    int64_t C, M;           /* cases, visible units */
    int K, F;
    float values[RBM_MAX_K];/* (K) the ratings, ascending */
    float *slab;            /* owned, or NULL when the parameters point into a snapshot */
    const float *W;         /* (M,K,F) */
    const float *bv;        /* (M,K) */
    const float *bh;        /* (F) */
    const float *H;         /* (C,F) p(h=1 | training ratings of case c) */
    const snap *snap;       /* the snapshot a loaded handle points into (borrowed) */
} rbm;
_Static_assert(offsetof(rbm, base) == 0, "rbm: rating_base must be the first member (rb_type_*)");

/* The distinct values of rows->val (R), ascending, into values (RBM_MAX_K) and *K. RC_OK, or RC_EINVAL
 * (no rating, a non-finite rating, more than RBM_MAX_K distinct values: message names the count). */
int rbm_values(const rb_rows *rows, float *values, int *K);
/* The value index of rating r: the k with values[k] == r, else the nearest value's (ties: lower). */
int rbm_value_index(const float *values, int K, float r);

/* A model of variant for U users, N items (C and M follow from variant), K values (K ascending
 * distinct ratings, 2..RBM_MAX_K; copied), F hidden units, with W from N(0, init_std^2) drawn by seed,
 * biases 0 and H 0. NULL on ENOMEM or bad sizes (message set). Free with rbm_free. */
rbm *rbm_new(int variant, int64_t U, int64_t N, int K, const float *values, int F, double init_std, uint64_t seed);
void rbm_free(rbm *m); /* NULL is a no-op */
/* The writable slab of a model made by rbm_new (NULL for a loaded one): W | bv | bh | H as above. */
float *rbm_slab(rbm *m);
/* P, the parameter floats at the start of the slab (without H). */
size_t rbm_param_count(const rbm *m);

/* The rows of in that are the cases of m: by_user for U-RBM, by_item for I-RBM (borrowed from in). */
const rb_rows *rbm_case_rows(const rbm *m, const rb_train_input *in);

/* ---- kernels (llm.c style: shapes beside each buffer; the tests hold naive references) ---------- */
/* One case: n rated units units (n) in [0, M) with value indices k (n) in [0, K). */

/* The vector kernels of the hot loops. rbm_kernels_generic() is the plain C reference (vectorised by
 * the compiler for the build's baseline); rbm_kernels_best() is an AVX2+FMA version when the CPU has
 * it (chosen once), else the generic one. Results agree up to float rounding. No allocation. */
typedef struct rbm_kernels {
    const char *name;                                                /* "generic" | "avx2" */
    void (*add)(int n, const float *x, float *y);                    /* y (n) += x (n) */
    void (*axpy)(int n, float a, const float *x, float *y);          /* y (n) += a * x (n) */
    /* out (K) = b (K) + Wq (K,F) . h (F) */
    void (*logits)(int K, int F, const float *Wq, const float *b, const float *h, float *out);
    /* v (n) = mom * v - c * w (n), then (caller adds gradients) */
    void (*decay)(int n, float mom, float c, const float *w, float *v);
} rbm_kernels;
const rbm_kernels *rbm_kernels_generic(void);
const rbm_kernels *rbm_kernels_best(void);

/* Hidden input and probabilities of a case: x (F) gets bh + sum_t W[units[t], k[t], :], p (F)
 * sigmoid(x) (p may alias x). */
void rbm_hidden_forward(const rbm *m, const int32_t *units, const uint8_t *k, int64_t n, float *x, float *p);
/* p(v_q = . | h) for unit q given hidden values h (F, binary or probabilities): p (K). */
void rbm_visible_probs(const rbm *m, int64_t q, const float *h, float *p);
/* FE(V) of a case (see the top), summed in double. */
double rbm_free_energy(const rbm *m, const int32_t *units, const uint8_t *k, int64_t n);
/* Expected rating of unit q given hidden probabilities h (F): sum_k p(v_q = k | h) values[k]. */
float rbm_expected(const rbm *m, int64_t q, const float *h);

/* The sampling stream of case c in epoch e of a training run seeded seed (what rbm_train uses, so that
 * a test can replay it; independent of threads and batch order). */
void rbm_case_rng(rng_t *r, uint64_t seed, int epoch, int64_t c);

/* Per-thread scratch of the CD step for cases of up to max_n ratings. NULL on ENOMEM (message set). */
typedef struct rbm_cd_scratch rbm_cd_scratch;
rbm_cd_scratch *rbm_cd_scratch_new(const rbm *m, int64_t max_n);
void rbm_cd_scratch_free(rbm_cd_scratch *s); /* NULL is a no-op */

/* CD-t on one case (t >= 1, n <= the scratch's max_n), sampling from r: the statistics of the positive
 * and the negative phase, p0 (F) = p(h | V), ph (F) = p(h | v~) and vneg (n,K) the last
 * reconstruction v~ of each unit (one-hot: a sample of p(v | h); with mean_field, p(v | h) itself, and
 * the next hidden probabilities are computed from it). *sq_err (may be NULL) gets the sum over the
 * case's units of (expected rating of the first reconstruction - rating)^2 (a training loss to print).
 * No allocation. */
void rbm_cd_case(const rbm *m, const int32_t *units, const uint8_t *k, int64_t n, int t, int mean_field, rng_t *r,
                 rbm_cd_scratch *s, float *p0, float *ph, float *vneg, double *sq_err);
/* The CD gradient of one case from its statistics, added to grad (P floats, the layout of the slab's
 * parameters: dW (M,K,F) | dbv (M,K) | dbh (F)): dW[u_i,k_i,:] += p0, dW[u_i,k,:] -= vneg[i,k] ph,
 * dbv alike with 1 and vneg, dbh += p0 - ph. The dense reference of what rbm_train applies row by row. */
void rbm_cd_grad(const rbm *m, const int32_t *units, const uint8_t *k, int64_t n, const float *p0, const float *ph,
                 const float *vneg, float *grad);

/* Visible biases from the data (what rbm_train does first): bv[i,k] = log((count(i,k) + 2 p_k) /
 * (n_i + 2)), p_k the overall frequency of value k, over the case rows (ratings of m->values). */
void rbm_init_visible_biases(rbm *m, const rb_rows *rows);

/* H[c] = p(h | case c's ratings) for every case of rows (I = C rows, col in [0, M), val ratings of
 * m->values). threads >= 1. RC_OK, RC_EINVAL (sizes do not match m, or m is loaded), RC_ENOMEM. */
int rbm_hidden(rbm *m, const rb_rows *rows, int threads);

/* Train on in (sizes must match m: U = in->by_user.rows, N = in->by_item.rows; ratings among
 * m->values, others mapped to the nearest value) with hp (hp->variant and hp->hidden must match m).
 * Progress on stderr when in->verbose. Leaves H computed for the kept epoch. *valid_rmse gets the kept
 * epoch's validation RMSE (NAN without validation data) and *epochs_run the epochs run.
 * One mini-batch: the CD statistics of its cases (threads share the cases; each case samples from
 * rbm_case_rng), then the update, threads sharing the visible units: for every row of W and bv,
 * vel = mom * vel + lr * (sum of the batch's gradients / batch - weight_decay * W) (no decay on
 * biases), param += vel, the gradients added in batch order. Deterministic for in->seed whatever
 * in->threads (the same bits with 1 or 2 threads). Memory: about 3 P floats + (C + batch) F.
 * RC_OK, RC_EINVAL (sizes, hparams), RC_ERANGE (diverged: a non-finite reconstruction error or validation
 * RMSE in some epoch, or a non-finite parameter kept; the message names the epoch, the likely cause and
 * the rating values' span), RC_ENOMEM. */
int rbm_train(rbm *m, const rbm_hparams *hp, const rb_train_input *in, double *valid_rmse, int *epochs_run);

/* The prediction for user u and item i (indices of m's vocabularies; -1 or out of range: the
 * default_rating, *fallback 1). fallback may be NULL. */
float rbm_predict_one(const rbm *m, int32_t u, int32_t i, float default_rating, uint8_t *fallback);
/* Predictions for ratings t: out (n), fallback (n) or NULL. */
void rbm_predict(const rbm *m, const rb_triples *t, float default_rating, float *out, uint8_t *fallback);
/* Expected rating of every item for known user u in [0, U): scores (N). No allocation. */
void rbm_score_items(const rbm *m, int32_t u, float *scores);

/* Publish ROOT/NAME/VERSION (name NULL: "u-rbm" or "i-rbm" by m->variant) with meta extra (borrowed;
 * its fields are merged: hyperparameters, data, metrics), "type":"rbm" unless NAME is "rbm", and the
 * rating_base part from src (src's U and N must be m's). RC_OK (*version set), RC_EINVAL (sizes), or
 * the snapshot writer's errors. */
int rbm_save(const rbm *m, const rating_base_src *src, const char *root, const char *name, const json_t *extra,
             uint64_t *version);

/* Build a serving handle from s (borrowed: must outlive *out). RC_OK, RC_ECORRUPT (a missing or
 * misshapen tensor, meta "variant"/"hidden"/"values" absent or inconsistent, values not ascending,
 * non-finite parameters: the message names the snapshot and the culprit), RC_ENOMEM. What
 * rbm_type.load calls. */
int rbm_load(rbm **out, const snap *s);

#endif
