/* core/optim.h - optimisers for the models: AdaGrad (+ momentum), FTRL-proximal, Adam.
 *
 * Every optimiser comes in two forms over float arrays:
 *   dense     update a whole parameter array p (n) from its gradient g (n);
 *   rows      update only the listed rows of a (R, C) row-major parameter matrix p from a compact
 *             gradient g (K, C), where row k of g belongs to row rows[k] of p (the shape of an
 *             embedding table's sparse gradient). Rows not listed are left alone, state included.
 * Optimiser state lives in caller-owned float arrays of the same shape as p, zero-filled before the
 * first step (calloc), saved beside the parameters when training is resumed. The hyper-parameter
 * structs are plain values in double (as read from a config); the per-element arithmetic is float,
 * with the constants (lr, 1 - beta, ...) computed in double first. Nothing here allocates, takes locks or
 * fails: arguments are preconditions. On x86-64 the AdaGrad and Adam loops run 4 lanes of SSE2 with
 * results bit-identical to the scalar loop (same correctly rounded operations in the same order).
 *
 * Rows forms: the listed rows must be distinct (sum the gradients of a repeated row first, as the
 * official GRU4Rec code does with grad.coalesce(), because the updates are non-linear in g);
 * indices must lie in [0, R). Two threads may update disjoint rows of the same matrix at once.
 *
 * Letters: n elements (dense), R rows of the matrix, C columns, K listed rows.
 */
#ifndef RECD_OPTIM_H
#define RECD_OPTIM_H

#include <stddef.h>
#include <stdint.h>

/* ---- AdaGrad with optional classical momentum ------------------------------------------------ */
/* Exactly IndexedAdagradM of the official GRU4Rec PyTorch code (hidasib/GRU4Rec_PyTorch_Official,
 * gru4rec_pytorch.py, read at commit 4e7d2367): per element, in float,
 *     acc += g*g
 *     upd  = -lr * g / sqrt(acc + eps)      (the accumulator is updated first, eps inside the sqrt)
 *     if momentum > 0:  v = momentum*v + upd;  p += v
 *     else:             p += upd
 * (its sparse path computes the same update as g / (sqrt(acc + eps) * (-1/lr)), which can differ from
 * its dense path in the last bit; recd uses the dense path's order for both forms). Defaults there:
 * lr 0.05, momentum 0, eps 1e-6. */
typedef struct {
    double lr;       /* > 0 */
    double momentum; /* >= 0; 0 = plain AdaGrad and v is not touched (may be NULL) */
    double eps; /* > 0; 1e-6 in the official code. With eps = 0, an element whose accumulator and
                 * gradient are both 0 becomes NaN (0/0): start acc above 0 then. */
} optim_adagrad;

/* p, g, acc, v are (n). */
void optim_adagrad_dense(const optim_adagrad *o, float *p, const float *g, float *acc, float *v,
                         size_t n);
/* p, acc, v are (R, C); rows is (K); g is (K, C). */
void optim_adagrad_rows(const optim_adagrad *o, float *p, float *acc, float *v, size_t C,
                        const int32_t *rows, size_t K, const float *g);

/* ---- FTRL-proximal --------------------------------------------------------------------------- */
/* Per-coordinate FTRL-proximal of McMahan et al. 2013 ("Ad Click Prediction: a View from the
 * Trenches", Algorithm 1). The state is z and nsq (the sum of squared gradients); the weight is a
 * function of them, computed lazily when it is needed:
 *     w = 0                                                  if |z| <= l1
 *     w = -(z - sign(z) l1) / ((beta + sqrt(nsq)) / alpha + l2)   otherwise
 * and one step with gradient g (taken at that w) does
 *     sigma = (sqrt(nsq + g*g) - sqrt(nsq)) / alpha;  z += g - sigma * w;  nsq += g*g
 * Arithmetic in double, state stored in float. */
typedef struct {
    double alpha; /* > 0, learning rate scale */
    double beta;  /* >= 0, usually 1 */
    double l1;    /* >= 0, sparsity */
    double l2;    /* >= 0 */
} optim_ftrl;

/* The weight of one coordinate from its state. */
float optim_ftrl_weight(const optim_ftrl *o, float z, float nsq);
/* w (n) = weights of z, nsq (n). */
void optim_ftrl_weights(const optim_ftrl *o, const float *z, const float *nsq, float *w, size_t n);
/* One step: z, nsq, g are (n). The weight used in the update is recomputed from the state before
 * the step (the weight the gradient was taken at). w (n) may be NULL; if given it receives the
 * weights after the step, so a model that keeps an explicit weight array stays in sync. */
void optim_ftrl_dense(const optim_ftrl *o, float *z, float *nsq, const float *g, float *w,
                      size_t n);
/* z, nsq and (optional) w are (R, C); rows is (K); g is (K, C). For sparse features use C = 1 and
 * rows = the feature indices of the example (distinct). */
void optim_ftrl_rows(const optim_ftrl *o, float *z, float *nsq, float *w, size_t C,
                     const int32_t *rows, size_t K, const float *g);

/* ---- Adam ------------------------------------------------------------------------------------ */
/* Kingma & Ba 2015 with bias correction, step t = 1, 2, ... (the caller counts steps per parameter
 * group and passes the count of the step being taken):
 *     m = b1 m + (1-b1) g;   v = b2 v + (1-b2) g*g
 *     p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * The rows form is "lazy" Adam (as PyTorch SparseAdam / TF LazyAdam): moments of unlisted rows do
 * not decay, and the bias correction uses the global t. Usual values: lr 1e-3, b1 0.9, b2 0.999,
 * eps 1e-8. */
typedef struct {
    double lr;
    double beta1, beta2; /* in [0, 1) */
    double eps;          /* > 0 */
} optim_adam;

/* p, g, m, v are (n); t >= 1. */
void optim_adam_dense(const optim_adam *o, long long t, float *p, const float *g, float *m,
                      float *v, size_t n);
/* p, m, v are (R, C); rows is (K); g is (K, C); t >= 1. */
void optim_adam_rows(const optim_adam *o, long long t, float *p, float *m, float *v, size_t C,
                     const int32_t *rows, size_t K, const float *g);

#endif
