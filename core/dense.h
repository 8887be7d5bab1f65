/* core/dense.h - dense float32 math for the models: shape-checked BLAS wrappers and hot-loop
 * helpers.
 *
 * Conventions: every matrix is row-major float32. A matrix "(R,C) with ld" has R rows of C used
 * floats, row r starting at ptr + r*ld (ld >= C). Vectors are contiguous. Shape comments use the
 * letters of the arguments: `A is (M,K)` means M rows, K columns.
 *
 * Two kinds of function:
 * - dense_gemm / dense_gemv / dense_ger call OpenBLAS (cblas_s*) after checking their dimensions.
 * They return RC_OK, or RC_EINVAL with a message (negative dimension, leading dimension too small,
 * NULL operand with a non-empty shape, trans flag not 0/1). They never allocate. Empty shapes are
 * fine.
 * - Vector helpers (axpy, dot, activations, softmax...) do no checking (n >= 0 is assumed, pointers
 *   valid for n floats), never fail, never allocate; the small ones are static inline here so the
 *   compiler inlines them into model loops. Output may alias input where stated ("in place ok").
 *
 * Threads: all functions are reentrant. OpenBLAS may itself start threads for large products; a
 * multi-threaded caller (the HTTP pool, a parallel trainer) should call dense_set_threads(1) once
 * at start so the products run on the caller's thread only.
 */
#ifndef RECD_DENSE_H
#define RECD_DENSE_H

#include <stddef.h>
#include <string.h>

enum { DENSE_NOTRANS = 0, DENSE_TRANS = 1 };

/* ---- BLAS wrappers (checked) ---- */

/* C = alpha * op(A) * op(B) + beta * C, where op(X) is X or X^T.
 * op(A) is (M,K), op(B) is (K,N), C is (M,N) with ldc >= N.
 * Storage: transA == 0: A is (M,K), lda >= K;  transA == 1: A is (K,M), lda >= M.
 *          transB == 0: B is (K,N), ldb >= N;  transB == 1: B is (N,K), ldb >= K.
 * Leading dimensions must also be >= 1. K == 0 or alpha == 0 gives C = beta * C without reading A
 * or B (beta == 0 writes zeros, even over NaN). M == 0 or N == 0 does nothing. C must not overlap A
 * or B. */
int dense_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);

/* y = alpha * op(A) * x + beta * y. A is (M,N) with lda >= max(1,N).
 * transA == 0: x is (N), y is (M).  transA == 1: x is (M), y is (N).
 * When x has length 0 or alpha == 0, y = beta * y without reading A or x (beta == 0 writes zeros).
 * y must not overlap A or x. */
int dense_gemv(int transA, int M, int N, float alpha, const float *A, int lda, const float *x,
               float beta, float *y);

/* Rank-1 update A += alpha * x * y^T. A is (M,N) with lda >= max(1,N), x is (M), y is (N). */
int dense_ger(int M, int N, float alpha, const float *x, const float *y, float *A, int lda);

/* Limit OpenBLAS to n threads (n >= 1) for the whole process. Returns the previous count. */
int dense_set_threads(int n);

/* ---- vector helpers (inline, unchecked) ---- */

/* y += a * x. x, y are (n) and must not overlap. */
static inline void dense_axpy(int n, float a, const float *restrict x, float *restrict y)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* x *= a. x is (n). */
static inline void dense_scale(int n, float a, float *x)
{
    for (int i = 0; i < n; i++)
        x[i] *= a;
}

/* y += x. x, y are (n) and must not overlap. */
static inline void dense_add(int n, const float *restrict x, float *restrict y)
{
    for (int i = 0; i < n; i++)
        y[i] += x[i];
}

/* z = x * y elementwise. x, y, z are (n); z may alias x or y. */
static inline void dense_mul(int n, const float *x, const float *y, float *z)
{
    for (int i = 0; i < n; i++)
        z[i] = x[i] * y[i];
}

/* x[i] = v. x is (n). */
static inline void dense_fill(int n, float v, float *x)
{
    for (int i = 0; i < n; i++)
        x[i] = v;
}

/* x = 0. x is (n). */
static inline void dense_zero(int n, float *x)
{
    if (n > 0) memset(x, 0, (size_t)n * sizeof *x);
}

/* Sum of x[i] * y[i]. x, y are (n). Eight independent float partial sums (vectorisable; the order
 * of additions differs from a plain loop, relative error ~ n * 2^-24 as for BLAS sdot). */
static inline float dense_dot(int n, const float *restrict x, const float *restrict y)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += x[i + j] * y[i + j];
    float s = 0;
    for (; i < n; i++)
        s += x[i] * y[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* Sum of x[i]. x is (n). Same summation scheme as dense_dot. */
static inline float dense_sum(int n, const float *x)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += x[i + j];
    float s = 0;
    for (; i < n; i++)
        s += x[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* ---- matrix helpers (unchecked) ---- */

/* X[r,:] += b for every row: X is (M,N) with ldx >= N, b is (N). (bias of a dense layer) */
void dense_add_bias(int M, int N, float *X, int ldx, const float *b);

/* db += sum over rows of dX: dX is (M,N) with ldx >= N, db is (N). (bias gradient) */
void dense_sum_rows(int M, int N, const float *dX, int ldx, float *db);

/* ---- activations (unchecked; out may alias in) ----
 * Forward: y = f(x), x and y are (n). Backward works from the forward OUTPUT y (no need to keep x):
 * dx = dy * f'(x) with f' written in terms of y; dy, y, dx are (n), dx may alias dy. */

/* Vectorised (4 floats per instruction, own exp kernel, see dense.c): max relative error ~4e-7
 * against the exact value; per float 1.2 ns (sigmoid), 1.5 ns (tanh), 1.7 ns (softmax)
 * against 2.1, 8.5, 3.8 ns for libm loops (bench/dense_bench.c, SSE2 build). NaN in gives NaN out.
 *
 * sigmoid(x) = 1 / (1 + e^-x), no overflow for any x; for x < -87.3 (result below FLT_MIN) it
 * returns exactly 0, so take log-sigmoid with a stable formula, not logf(sigmoid). */
void dense_sigmoid(int n, const float *x, float *y);
/* dx = dy * y * (1 - y) */
void dense_sigmoid_backward(int n, const float *y, const float *dy, float *dx);

/* tanh(x); exact sign, +-1 for large |x|, relative error ~3e-7 also near 0. */
void dense_tanh(int n, const float *x, float *y);
/* dx = dy * (1 - y^2) */
void dense_tanh_backward(int n, const float *y, const float *dy, float *dx);

/* relu(x) = x > 0 ? x : +0 (NaN and -0 give +0), branch-free. Backward: dy where y > 0, else +0.
 * y may alias x, dx may alias dy. */
void dense_relu(int n, const float *x, float *y);
void dense_relu_backward(int n, const float *y, const float *dy, float *dx);

/* elu(x) = x if x > 0, else alpha * (e^x - 1); alpha > 0.
 * Backward: dy if y > 0, else dy * (y + alpha). */
void dense_elu(int n, float alpha, const float *x, float *y);
void dense_elu_backward(int n, float alpha, const float *y, const float *dy, float *dx);

/* Scalar sigmoid through libm expf, for code that needs one value (may differ from dense_sigmoid in
 * the last ulps; tiny results are denormals, not 0). */
float dense_sigmoidf(float x);

/* ---- softmax family ----
 * Stable (max subtracted first), vectorised with the same exp kernel (relative error ~3e-7).
 * Entries more than 87.3 below the row max (and -inf entries: a mask) get probability exactly 0.
 * A row whose entries are all -inf gives NaN for softmax and log-softmax (no distribution) and -inf
 * for logsumexp. NaN entries make the row NaN, and so does a +inf entry for softmax and log-softmax
 * (logsumexp returns +inf). N == 0 rows are left untouched. */

/* log(sum_i e^x[i]) for x (n); -inf when n == 0. */
float dense_logsumexp(int n, const float *x);

/* In place over each row of X (M,N) with ldx >= N: X[r,:] = softmax(X[r,:]). */
void dense_softmax_rows(int M, int N, float *X, int ldx);
/* In place over each row: X[r,:] = X[r,:] - logsumexp(X[r,:]). */
void dense_log_softmax_rows(int M, int N, float *X, int ldx);

/* Index of the largest x[i] (lowest index on ties, NaN never chosen unless all NaN); -1 if n == 0.
 */
int dense_argmax(int n, const float *x);

#endif
