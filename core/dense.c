/* core/dense.c - see core/dense.h. */
#include "core/dense.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"

static inline int imax1(int a)
{
    return a > 1 ? a : 1;
}

/* rows (R) of a row-major (R,C) matrix with ld: y[r*ld + c] *= beta, or = 0 when beta == 0. */
static void scale_rows(int R, int C, float *X, int ld, float beta)
{
    for (int r = 0; r < R; r++) {
        float *x = X + (size_t)r * (size_t)ld;
        if (beta == 0.0f)
            dense_zero(C, x);
        else if (beta != 1.0f)
            dense_scale(C, beta, x);
    }
}

int dense_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc)
{
    if ((transA != 0 && transA != 1) || (transB != 0 && transB != 1))
        return rc_error(RC_EINVAL, "dense_gemm: trans flags must be 0 or 1 (got %d, %d)", transA,
                        transB);
    if (M < 0 || N < 0 || K < 0)
        return rc_error(RC_EINVAL, "dense_gemm: negative dimension M=%d N=%d K=%d", M, N, K);
    int a_cols = transA ? M : K, b_cols = transB ? K : N;
    if (lda < imax1(a_cols))
        return rc_error(RC_EINVAL, "dense_gemm: lda=%d < %d (A is (%d,%d)%s)", lda, imax1(a_cols),
                        transA ? K : M, a_cols, transA ? ", transposed" : "");
    if (ldb < imax1(b_cols))
        return rc_error(RC_EINVAL, "dense_gemm: ldb=%d < %d (B is (%d,%d)%s)", ldb, imax1(b_cols),
                        transB ? N : K, b_cols, transB ? ", transposed" : "");
    if (ldc < imax1(N))
        return rc_error(RC_EINVAL, "dense_gemm: ldc=%d < %d (C is (%d,%d))", ldc, imax1(N), M, N);
    if (M == 0 || N == 0) return RC_OK;
    if (!C) return rc_error(RC_EINVAL, "dense_gemm: C is NULL for a (%d,%d) result", M, N);
    if (K == 0 || alpha == 0.0f) {
        /* BLAS would still read A and B when alpha == 0 in some builds; nothing to add anyway. */
        scale_rows(M, N, C, ldc, beta);
        return RC_OK;
    }
    if (!A || !B) return rc_error(RC_EINVAL, "dense_gemm: NULL operand %s", !A ? "A" : "B");
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return RC_OK;
}

int dense_gemv(int transA, int M, int N, float alpha, const float *A, int lda, const float *x,
               float beta, float *y)
{
    if (transA != 0 && transA != 1)
        return rc_error(RC_EINVAL, "dense_gemv: trans flag must be 0 or 1 (got %d)", transA);
    if (M < 0 || N < 0)
        return rc_error(RC_EINVAL, "dense_gemv: negative dimension M=%d N=%d", M, N);
    if (lda < imax1(N))
        return rc_error(RC_EINVAL, "dense_gemv: lda=%d < %d (A is (%d,%d))", lda, imax1(N), M, N);
    int ylen = transA ? N : M, xlen = transA ? M : N;
    if (ylen == 0) return RC_OK;
    if (!y) return rc_error(RC_EINVAL, "dense_gemv: y is NULL for a result of %d", ylen);
    if (xlen == 0 || alpha == 0.0f) {
        scale_rows(1, ylen, y, ylen, beta);
        return RC_OK;
    }
    if (!A || !x) return rc_error(RC_EINVAL, "dense_gemv: NULL operand %s", !A ? "A" : "x");
    cblas_sgemv(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, M, N, alpha, A, lda, x, 1, beta,
                y, 1);
    return RC_OK;
}

int dense_ger(int M, int N, float alpha, const float *x, const float *y, float *A, int lda)
{
    if (M < 0 || N < 0) return rc_error(RC_EINVAL, "dense_ger: negative dimension M=%d N=%d", M, N);
    if (lda < imax1(N))
        return rc_error(RC_EINVAL, "dense_ger: lda=%d < %d (A is (%d,%d))", lda, imax1(N), M, N);
    if (M == 0 || N == 0 || alpha == 0.0f) return RC_OK;
    if (!x || !y || !A)
        return rc_error(RC_EINVAL, "dense_ger: NULL operand %s", !x ? "x" : !y ? "y" : "A");
    cblas_sger(CblasRowMajor, M, N, alpha, x, 1, y, 1, A, lda);
    return RC_OK;
}

int dense_set_threads(int n)
{
    int prev = openblas_get_num_threads();
    if (n >= 1) openblas_set_num_threads(n);
    return prev;
}

void dense_add_bias(int M, int N, float *X, int ldx, const float *b)
{
    for (int r = 0; r < M; r++)
        dense_add(N, b, X + (size_t)r * (size_t)ldx);
}

void dense_sum_rows(int M, int N, const float *dX, int ldx, float *db)
{
    for (int r = 0; r < M; r++)
        dense_add(N, dX + (size_t)r * (size_t)ldx, db);
}

/* ---- vector kernels ----
 * exp on x <= 0, 4 floats at a time (two vectors per loop step), with GCC/clang vector
 * extensions (SSE2 at the default -O2 target, AVX with -march flags). Cody-Waite reduction
 * x = n*ln2 + r with |r| <= ln2/2, a degree-7 polynomial for e^r (the classic cephes expf
 * minimax coefficients), 2^n built in the exponent bits. Max relative error ~2 ulp against
 * libm; inputs below -87.3 (where e^x leaves the normal range) give exactly 0; NaN stays NaN.
 * Speed: see dense.h and bench/dense_bench.c. */

typedef float v4f __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void v4_store(float *p, v4f v)
{
    memcpy(p, &v, sizeof v);
}
static inline v4f v4_splat(float a)
{
    return (v4f){a, a, a, a};
}
/* m ? a : b lane-wise, m a comparison mask (all ones / all zeros per lane). */
static inline v4f v4_sel(v4i m, v4f a, v4f b)
{
    return (v4f)(((v4i)a & m) | ((v4i)b & ~m));
}
static inline v4f v4_abs(v4f x)
{
    return (v4f)((v4i)x & (v4i){0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff});
}

#define EXP_LO (-87.33654f)

static inline v4f v4_exp_le0(v4f x)
{
    const v4f lo = v4_splat(EXP_LO);
    v4i under = x < lo;
    v4f xc = v4_sel(under, lo, x);
    /* n = round(x / ln2) by the 1.5*2^23 trick (exact for |n| < 2^22, round-to-nearest mode) */
    const v4f magic = v4_splat(12582912.0f);
    v4f t = xc * v4_splat(1.44269504088896341f) + magic;
    v4f n = t - magic;
    v4f r = xc - n * v4_splat(0.693359375f);
    r = r - n * v4_splat(-2.12194440e-4f);
    v4f p = v4_splat(1.9875691500e-4f);
    p = p * r + v4_splat(1.3981999507e-3f);
    p = p * r + v4_splat(8.3334519073e-3f);
    p = p * r + v4_splat(4.1665795894e-2f);
    p = p * r + v4_splat(1.6666665459e-1f);
    p = p * r + v4_splat(5.0000001201e-1f);
    p = p * (r * r) + r + v4_splat(1.0f);
    v4i ni = __builtin_convertvector(n, v4i);
    v4f scale = (v4f)((ni + 127) << 23);
    return v4_sel(under, v4_splat(0.0f), p * scale);
}

/* Apply a v4f -> v4f kernel to x (n) into y (n), 8 floats per step, the tail through a small
 * buffer. */
#define V4_MAP(n, x, y, KERNEL)                                                                    \
    do {                                                                                           \
        int i_ = 0;                                                                                \
        for (; i_ + 8 <= (n); i_ += 8) {                                                           \
            v4f a_ = KERNEL(v4_load((x) + i_)), b_ = KERNEL(v4_load((x) + i_ + 4));                \
            v4_store((y) + i_, a_);                                                                \
            v4_store((y) + i_ + 4, b_);                                                            \
        }                                                                                          \
        for (; i_ < (n); i_ += 4) {                                                                \
            float buf_[4] = {0, 0, 0, 0};                                                          \
            int m_ = (n)-i_ < 4 ? (n)-i_ : 4;                                                      \
            memcpy(buf_, (x) + i_, sizeof(float) * (size_t)m_);                                    \
            v4_store(buf_, KERNEL(v4_load(buf_)));                                                 \
            memcpy((y) + i_, buf_, sizeof(float) * (size_t)m_);                                    \
        }                                                                                          \
    } while (0)

static inline v4f v4_sigmoid(v4f x)
{
    v4f e = v4_exp_le0(-v4_abs(x));                /* e^-|x| in (0, 1] */
    v4f s = v4_splat(1.0f) / (v4_splat(1.0f) + e); /* sigmoid(|x|) */
    return v4_sel(x >= v4_splat(0.0f), s, e * s);  /* sigmoid(-|x|) = e^-|x| / (1 + e^-|x|) */
}

static inline v4f v4_tanh(v4f x)
{
    v4f a = v4_abs(x);
    v4f e = v4_exp_le0(v4_splat(-2.0f) * a);
    v4f big = (v4_splat(1.0f) - e) / (v4_splat(1.0f) + e); /* tanh(|x|) */
    /* |x| < 0.3: odd Taylor series (abs error < 2e-8 there), avoids the cancellation in 1 - e */
    v4f a2 = a * a;
    v4f q = v4_splat(62.0f / 2835.0f);
    q = q * a2 + v4_splat(-17.0f / 315.0f);
    q = q * a2 + v4_splat(2.0f / 15.0f);
    q = q * a2 + v4_splat(-1.0f / 3.0f);
    v4f small = a + a * a2 * q;
    v4f t = v4_sel(a < v4_splat(0.3f), small, big);
    v4i sign = (v4i)x & (v4i){INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN};
    return (v4f)((v4i)t | sign);
}

/* ---- activations ---- */

float dense_sigmoidf(float x)
{
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

void dense_sigmoid(int n, const float *x, float *y)
{
    V4_MAP(n, x, y, v4_sigmoid);
}

void dense_sigmoid_backward(int n, const float *y, const float *dy, float *dx)
{
    for (int i = 0; i < n; i++)
        dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

void dense_tanh(int n, const float *x, float *y)
{
    V4_MAP(n, x, y, v4_tanh);
}

void dense_tanh_backward(int n, const float *y, const float *dy, float *dx)
{
    for (int i = 0; i < n; i++)
        dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

/* ReLU by a compare mask rather than `x > 0 ? x : 0`, which GCC -O2 compiles to a compare and
 * branch that mispredicts half the time on random signs (models/widedeep.c measured such a loop at a
 * quarter of a request). Same results: NaN and -0 give +0. */
static inline v4f v4_relu(v4f x)
{
    return (v4f)((v4i)x & (x > v4_splat(0.0f)));
}

void dense_relu(int n, const float *x, float *y)
{
    V4_MAP(n, x, y, v4_relu);
}

void dense_relu_backward(int n, const float *y, const float *dy, float *dx)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        v4_store(dx + i, (v4f)((v4i)v4_load(dy + i) & (v4_load(y + i) > v4_splat(0.0f))));
    for (; i < n; i++) {
        uint32_t b;
        memcpy(&b, dy + i, sizeof b);
        b &= 0u - (uint32_t)(y[i] > 0.0f);
        memcpy(dx + i, &b, sizeof b);
    }
}

void dense_elu(int n, float alpha, const float *x, float *y)
{
    for (int i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : alpha * expm1f(x[i]);
}

void dense_elu_backward(int n, float alpha, const float *y, const float *dy, float *dx)
{
    for (int i = 0; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : dy[i] * (y[i] + alpha);
}

/* ---- softmax family ---- */

/* Largest x[i] ignoring NaN (-inf when none). */
static inline float maxf_n(int n, const float *x)
{
    v4f mv = v4_splat(-INFINITY);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f v = v4_load(x + i);
        mv = v4_sel(v > mv, v, mv);
    }
    float m = -INFINITY;
    for (int j = 0; j < 4; j++)
        m = mv[j] > m ? mv[j] : m;
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    return m;
}

/* Sum of e^(x[i] - m) over x (n); also stores each term in y when y != NULL (y may alias x). */
static inline float exp_sub_sum(int n, const float *x, float m, float *y)
{
    v4f mv = v4_splat(m), acc = v4_splat(0.0f);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f e = v4_exp_le0(v4_load(x + i) - mv);
        if (y) v4_store(y + i, e);
        acc += e;
    }
    if (i < n) {
        float buf[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
        memcpy(buf, x + i, sizeof(float) * (size_t)(n - i));
        v4f e = v4_exp_le0(v4_load(buf) - mv); /* padding lanes give e^-inf = 0 */
        v4_store(buf, e);
        if (y) memcpy(y + i, buf, sizeof(float) * (size_t)(n - i));
        acc += e;
    }
    return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

float dense_logsumexp(int n, const float *x)
{
    if (n <= 0) return -INFINITY;
    float m = maxf_n(n, x);
    if (m == -INFINITY) { /* every entry -inf or NaN */
        for (int i = 0; i < n; i++)
            if (isnan(x[i])) return x[i];
        return m;
    }
    if (isinf(m)) return m; /* a +inf entry */
    return m + logf(exp_sub_sum(n, x, m, NULL));
}

void dense_softmax_rows(int M, int N, float *X, int ldx)
{
    if (N <= 0) return;
    for (int r = 0; r < M; r++) {
        float *x = X + (size_t)r * (size_t)ldx;
        float m = maxf_n(N, x);
        float s = exp_sub_sum(N, x, m, x);
        dense_scale(N, 1.0f / s, x);
    }
}

void dense_log_softmax_rows(int M, int N, float *X, int ldx)
{
    if (N <= 0) return;
    for (int r = 0; r < M; r++) {
        float *x = X + (size_t)r * (size_t)ldx;
        float m = maxf_n(N, x);
        float lse = m + logf(exp_sub_sum(N, x, m, NULL));
        for (int i = 0; i < N; i++)
            x[i] -= lse;
    }
}

int dense_argmax(int n, const float *x)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (best < 0 ? !isnan(x[i]) : x[i] > x[best]) best = i;
    return n > 0 && best < 0 ? 0 : best;
}
