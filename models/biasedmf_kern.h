/* models/biasedmf_kern.h - the numerical pieces of biased MF (internal; models/biasedmf.c and the tests):
 * the SGD pass and the serving dot product, each as a fast kernel (models/biasedmf_kern.c: vectorised,
 * compiled per ISA) beside its naive reference (models/biasedmf.c); the objective and its gradient;
 * the ALS half-step and its naive reference solve.
 *
 * Glossary: U users, N items, F factors, R ratings, K = F + 1 (an ALS row's unknowns: factors, bias).
 * No allocation except bmf_als_sweep (per-thread scratch); callers pass valid sizes and indices.
 */
#ifndef RECD_BIASEDMF_KERN_H
#define RECD_BIASEDMF_KERN_H

#include <stddef.h>
#include <stdint.h>

#include "models/biasedmf.h"

/* One training rating (12 bytes: an SGD pass reads them in order). */
typedef struct bmf_rating {
    int32_t u, i; /* in [0, U), [0, N) */
    float r;
} bmf_rating;

/* Writable views of a trainable model's slab (biasedmf_new): mu (1) | bu (U) | bi (N) | P (U,F) | Q (N,F). */
typedef struct bmf_params {
    float *mu; /* (1) */
    float *bu; /* (U) */
    float *bi; /* (N) */
    float *P;  /* (U, F) */
    float *Q;  /* (N, F) */
    int64_t U, N;
    int F;
} bmf_params;

/* Floats in the slab of a (U, N, F) model: 1 + U + N + (U + N) F. */
size_t bmf_nparams(int64_t U, int64_t N, int F);
/* The views of m's slab (m made by biasedmf_new). */
bmf_params bmf_params_of(biasedmf *m);

/* a . b over F floats. Fast (reassociated sums) and reference (in order, float). */
float bmf_dot(const float *a, const float *b, int F);
float bmf_dot_ref(const float *a, const float *b, int F);

/* One SGD pass over t[0..n) in that order. Each rating r of (u, i): e = r - (mu + bu + bi + p_u . q_i),
 * then simultaneously (every right side uses the values before the step)
 *     bu += lr (e - reg_bias bu),  bi += lr (e - reg_bias bi),
 *     p_u += lr (e q_i - reg p_u), q_i += lr (e p_u - reg q_i),
 * i.e. -lr/2 times the gradient of e^2 + reg (|p_u|^2 + |q_i|^2) + reg_bias (bu^2 + bi^2) (mu stays).
 * Returns the sum of e^2 (each error before its step), in double. */
double bmf_sgd_pass(const bmf_params *w, const bmf_rating *t, int64_t n, float lr, float reg, float reg_bias);
double bmf_sgd_pass_ref(const bmf_params *w, const bmf_rating *t, int64_t n, float lr, float reg, float reg_bias);

/* The objective of biasedmf.h over the ratings of by_user (rows U), in double:
 *     sum over ratings (r - r^)^2 + reg (|p_u|^2 + |q_i|^2) + reg_bias (bu^2 + bi^2).
 * grad (bmf_nparams doubles, slab order; NULL: none) gets its gradient (the entry of mu included).
 * *sse (NULL: none) gets the sum of squared errors alone. */
double bmf_objective(const biasedmf *m, const rb_rows *by_user, double reg, double reg_bias, double *grad,
                     double *sse);

/* One ALS half-step, the exact minimiser of the objective in one side's parameters: side 0 solves every
 * user's (p_u, bu) given Q, bi (rows = the ratings by user, U rows); side 1 every item's (q_i, bi) given
 * P, bu (rows by item, N rows). A row of n ratings solves (K x K, in double)
 *     (X^T X + n diag(reg, .., reg, reg_bias)) x = X^T y,   X (n, K) = [other side's factors | 1],
 *     y (n) = r - mu - other side's bias
 * by Cholesky (X^T X through cblas_dsyrk); a row without ratings gets zeros. threads >= 1 workers
 * (the result does not depend on them). RC_OK, RC_EINVAL (reg <= 0 or reg_bias < 0), RC_ENOMEM. */
int bmf_als_sweep(const bmf_params *w, const rb_rows *rows, int side, double reg, double reg_bias, int threads);
/* Solve A x = b in place for a symmetric positive definite A (K, K) whose lower triangle (row-major) is
 * set (the upper one is not read): A's lower triangle becomes the Cholesky factor L (A = L L^T, row by
 * row, so every inner loop is a dot product of contiguous rows), b (K) becomes x. Returns 0, or -1 when
 * A is not positive definite (then A and b hold garbage). */
int bmf_chol_solve(double *A, double *b, int K);
/* Reference for one row: the same normal equations summed naively, solved by Gaussian elimination with
 * partial pivoting; x (K) gets [factors (F), bias]. */
void bmf_als_solve_ref(const bmf_params *w, const rb_rows *rows, int side, int64_t row, double reg,
                       double reg_bias, double *x);

#endif
