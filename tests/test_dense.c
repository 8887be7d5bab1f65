#include <float.h>
#include <stdint.h>

#include "core/dense.h"
#include "core/rng.h"
#include "tests/testlib.h"

/* Naive reference: C = alpha * op(A) op(B) + beta * C in double. Storage as documented in dense.h.
 */
static void ref_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            double c = beta == 0.0f ? 0.0 : (double)beta * C[(size_t)i * ldc + j];
            C[(size_t)i * ldc + j] = (float)(alpha * s + c);
        }
}

static void fill_rand(rng_t *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * rng_uniformf(r) - 1.0f;
}

TEST(dense_gemm_vs_naive)
{
    rng_t r;
    rng_seed(&r, 1);
    static const int dims[][3] = {{1, 1, 1},     {3, 5, 7},   {17, 9, 33},
                                  {64, 48, 100}, {5, 130, 2}, {100, 1, 64}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int pad = 0; pad < 2; pad++) {
                    int M = dims[d][0], N = dims[d][1], K = dims[d][2];
                    int arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K,
                        bcols = tb ? K : N;
                    int lda = acols + pad * 3, ldb = bcols + pad * 5, ldc = N + pad * 2;
                    size_t na = (size_t)arows * lda, nb = (size_t)brows * ldb, nc = (size_t)M * ldc;
                    float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4),
                          *R = malloc(nc * 4);
                    fill_rand(&r, A, na);
                    fill_rand(&r, B, nb);
                    fill_rand(&r, C, nc);
                    memcpy(R, C, nc * 4);
                    float alpha = 0.75f, beta = pad ? 0.5f : 0.0f;
                    ASSERT_OK(dense_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc));
                    ref_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc);
                    for (int i = 0; i < M; i++) {
                        for (int j = 0; j < N; j++)
                            if (fabsf(C[(size_t)i * ldc + j] - R[(size_t)i * ldc + j]) >
                                1e-4f * (1 + K))
                                FAIL("M=%d N=%d K=%d ta=%d tb=%d pad=%d: C[%d,%d] %g vs %g", M, N,
                                     K, ta, tb, pad, i, j, C[(size_t)i * ldc + j],
                                     R[(size_t)i * ldc + j]);
                        for (int j = N; j < ldc; j++) /* padding untouched */
                            ASSERT(C[(size_t)i * ldc + j] == R[(size_t)i * ldc + j]);
                    }
                    free(A);
                    free(B);
                    free(C);
                    free(R);
                }
}

TEST(dense_gemm_checks)
{
    float A[12] = {0}, B[12] = {0}, C[12];
    /* bad dims and leading dims */
    ASSERT_RC(dense_gemm(0, 0, -1, 2, 2, 1, A, 2, B, 2, 0, C, 2), RC_EINVAL);
    ASSERT_RC(dense_gemm(0, 0, 2, 2, 3, 1, A, 2, B, 2, 0, C, 2), RC_EINVAL); /* lda < K */
    ASSERT_CONTAINS(rc_errmsg(), "lda=2 < 3");
    ASSERT_RC(dense_gemm(1, 0, 3, 2, 2, 1, A, 2, B, 2, 0, C, 2), RC_EINVAL); /* A^T: lda < M */
    ASSERT_RC(dense_gemm(0, 0, 2, 3, 2, 1, A, 2, B, 2, 0, C, 3), RC_EINVAL); /* ldb < N */
    ASSERT_RC(dense_gemm(0, 1, 2, 3, 4, 1, A, 4, B, 3, 0, C, 3), RC_EINVAL); /* B^T: ldb < K */
    ASSERT_RC(dense_gemm(0, 0, 2, 3, 2, 1, A, 2, B, 3, 0, C, 2), RC_EINVAL); /* ldc < N */
    ASSERT_RC(dense_gemm(2, 0, 2, 2, 2, 1, A, 2, B, 2, 0, C, 2), RC_EINVAL);
    ASSERT_RC(dense_gemm(0, 0, 2, 2, 2, 1, NULL, 2, B, 2, 0, C, 2), RC_EINVAL);
    ASSERT_RC(dense_gemm(0, 0, 2, 2, 2, 1, A, 2, B, 2, 0, NULL, 2), RC_EINVAL);
    /* empty shapes: no-op, NULLs allowed */
    ASSERT_OK(dense_gemm(0, 0, 0, 5, 5, 1, NULL, 5, NULL, 5, 0, NULL, 5));
    ASSERT_OK(dense_gemm(0, 0, 5, 0, 5, 1, NULL, 5, NULL, 1, 0, NULL, 1));
    /* K == 0: C = beta*C; beta = 0 clears even NaN */
    for (int i = 0; i < 4; i++)
        C[i] = 2.0f;
    ASSERT_OK(dense_gemm(0, 0, 2, 2, 0, 1, NULL, 1, NULL, 2, 0.5f, C, 2));
    for (int i = 0; i < 4; i++)
        ASSERT(C[i] == 1.0f);
    C[0] = NAN;
    ASSERT_OK(dense_gemm(0, 0, 2, 2, 0, 1, NULL, 1, NULL, 2, 0.0f, C, 2));
    for (int i = 0; i < 4; i++)
        ASSERT(C[i] == 0.0f);
    /* alpha == 0: A and B are not read (NULL is fine) */
    for (int i = 0; i < 4; i++)
        C[i] = 4.0f;
    ASSERT_OK(dense_gemm(0, 0, 2, 2, 3, 0.0f, NULL, 3, NULL, 2, 0.25f, C, 2));
    for (int i = 0; i < 4; i++)
        ASSERT(C[i] == 1.0f);
    /* beta == 0 through BLAS: old C contents (NaN) are ignored */
    for (int i = 0; i < 4; i++) {
        A[i] = (float)(i + 1);
        B[i] = 1.0f;
        C[i] = NAN;
    }
    ASSERT_OK(dense_gemm(0, 0, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2));
    ASSERT(C[0] == 3.0f && C[1] == 3.0f && C[2] == 7.0f && C[3] == 7.0f);
    float y[2] = {NAN, NAN}, x[2] = {1, 1};
    ASSERT_OK(dense_gemv(0, 2, 2, 1.0f, A, 2, x, 0.0f, y));
    ASSERT(y[0] == 3.0f && y[1] == 7.0f);
}

TEST(dense_gemv_ger_vs_naive)
{
    rng_t r;
    rng_seed(&r, 2);
    enum { M = 37, N = 23, LDA = 29 };
    float A[M * LDA], x[M > N ? M : N], y[M > N ? M : N], ref[M > N ? M : N];
    fill_rand(&r, A, sizeof A / 4);
    for (int t = 0; t < 2; t++) {
        int xl = t ? M : N, yl = t ? N : M;
        fill_rand(&r, x, (size_t)xl);
        fill_rand(&r, y, (size_t)yl);
        for (int i = 0; i < yl; i++) {
            double s = 0;
            for (int k = 0; k < xl; k++)
                s += (double)(t ? A[k * LDA + i] : A[i * LDA + k]) * x[k];
            ref[i] = (float)(1.5 * s + 0.25 * y[i]);
        }
        ASSERT_OK(dense_gemv(t, M, N, 1.5f, A, LDA, x, 0.25f, y));
        for (int i = 0; i < yl; i++)
            ASSERT_NEAR(y[i], ref[i], 1e-4);
    }
    ASSERT_RC(dense_gemv(0, M, N, 1, A, N - 1, x, 0, y), RC_EINVAL);
    ASSERT_RC(dense_gemv(0, -1, N, 1, A, LDA, x, 0, y), RC_EINVAL);
    ASSERT_RC(dense_gemv(0, M, N, 1, A, LDA, NULL, 0, y), RC_EINVAL);
    ASSERT_OK(dense_gemv(0, 0, N, 1, NULL, LDA, NULL, 0, NULL));
    y[0] = NAN;
    ASSERT_OK(dense_gemv(0, 3, 0, 1, NULL, 1, NULL, 0, y)); /* x empty: y = 0 */
    ASSERT(y[0] == 0.0f && y[1] == 0.0f && y[2] == 0.0f);

    /* ger: A += alpha x y^T */
    float G[M * LDA], R[M * LDA];
    fill_rand(&r, G, sizeof G / 4);
    memcpy(R, G, sizeof G);
    fill_rand(&r, x, M);
    fill_rand(&r, y, N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            R[i * LDA + j] += -0.5f * x[i] * y[j];
    ASSERT_OK(dense_ger(M, N, -0.5f, x, y, G, LDA));
    for (int i = 0; i < M * LDA; i++)
        ASSERT_NEAR(G[i], R[i], 1e-5);
    ASSERT_RC(dense_ger(M, N, 1, x, y, G, N - 1), RC_EINVAL);
    ASSERT_RC(dense_ger(M, N, 1, NULL, y, G, LDA), RC_EINVAL);
    ASSERT_OK(dense_ger(0, N, 1, NULL, NULL, NULL, LDA));
}

TEST(dense_vector_helpers)
{
    rng_t r;
    rng_seed(&r, 3);
    for (int n = 0; n < 70; n += 3) {
        float x[70] = {0}, y[70] = {0}, y0[70];
        fill_rand(&r, x, (size_t)n);
        fill_rand(&r, y, (size_t)n);
        memcpy(y0, y, sizeof y);
        double dot = 0, sum = 0;
        for (int i = 0; i < n; i++) {
            dot += (double)x[i] * y[i];
            sum += x[i];
        }
        ASSERT_NEAR(dense_dot(n, x, y), dot, 1e-5 * (n + 1));
        ASSERT_NEAR(dense_sum(n, x), sum, 1e-5 * (n + 1));
        dense_axpy(n, 2.0f, x, y);
        for (int i = 0; i < n; i++)
            ASSERT(y[i] == y0[i] + 2.0f * x[i]);
        dense_add(n, x, y);
        for (int i = 0; i < n; i++)
            ASSERT_NEAR(y[i], y0[i] + 3.0f * x[i], 1e-6);
        dense_scale(n, -1.0f, y);
        for (int i = 0; i < n; i++)
            ASSERT_NEAR(y[i], -(y0[i] + 3.0f * x[i]), 1e-6);
        dense_mul(n, x, x, y);
        for (int i = 0; i < n; i++)
            ASSERT(y[i] == x[i] * x[i]);
        dense_fill(n, 7.0f, y);
        for (int i = 0; i < n; i++)
            ASSERT(y[i] == 7.0f);
        dense_zero(n, y);
        for (int i = 0; i < n; i++)
            ASSERT(y[i] == 0.0f);
    }
    /* bias add and row sums, with a leading dimension */
    float X[3 * 5], b[4] = {1, 2, 3, 4}, db[4] = {0};
    for (int i = 0; i < 15; i++)
        X[i] = (float)i;
    dense_add_bias(3, 4, X, 5, b);
    for (int rr = 0; rr < 3; rr++)
        for (int c = 0; c < 5; c++)
            ASSERT(X[rr * 5 + c] == (float)(rr * 5 + c) + (c < 4 ? b[c] : 0.0f));
    dense_sum_rows(3, 4, X, 5, db);
    for (int c = 0; c < 4; c++)
        ASSERT(db[c] == X[c] + X[5 + c] + X[10 + c]);
    /* argmax */
    float a[6] = {NAN, 1, 3, 3, -1, 2};
    ASSERT_EQ(dense_argmax(6, a), 2);
    ASSERT_EQ(dense_argmax(0, a), -1);
    ASSERT_EQ(dense_argmax(1, a), 0);
}

/* Activations against libm in double, on a grid including the extremes. */
TEST(dense_activations_vs_libm)
{
    enum { N = 4001 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = -100.0f + 0.05f * (float)i;
    x[0] = -FLT_MAX;
    x[N - 1] = FLT_MAX;
    dense_sigmoid(N, x, y);
    for (int i = 0; i < N; i++) {
        double ref = 1.0 / (1.0 + exp(-(double)x[i]));
        if (!(fabs(y[i] - ref) <= 2e-7 * ref + 1e-30))
            FAIL("sigmoid(%g) = %.9g, ref %.9g", x[i], y[i], ref);
        ASSERT(y[i] >= 0.0f && y[i] <= 1.0f);
    }
    ASSERT_NEAR(dense_sigmoidf(0.0f), 0.5, 0);
    dense_tanh(N, x, y);
    for (int i = 0; i < N; i++)
        ASSERT_NEAR(y[i], tanh((double)x[i]), 2e-7);
    dense_relu(N, x, y);
    for (int i = 0; i < N; i++)
        ASSERT(y[i] == (x[i] > 0 ? x[i] : 0.0f));
    dense_elu(N, 1.5f, x, y);
    for (int i = 0; i < N; i++) {
        double ref = x[i] > 0 ? x[i] : 1.5 * expm1((double)x[i]);
        ASSERT_NEAR(y[i], ref, 4e-7 * fmax(1.0, fabs(ref)));
    }
    /* in place */
    float z[3] = {-1, 0, 2};
    dense_sigmoid(3, z, z);
    ASSERT_NEAR(z[2], 1.0 / (1.0 + exp(-2.0)), 1e-7);
}

/* ReLU edge values on every tail length (the vector loop plus 0..7 leftovers), in place too. */
TEST(dense_relu_special_values)
{
    const float v[] = {-1.0f, 2.5f, NAN, -0.0f, INFINITY, -INFINITY, 0.0f, FLT_MIN, -FLT_MIN, 7.0f, -3.0f};
    enum { V = sizeof v / sizeof v[0] };
    for (int n = 0; n <= V; n++) {
        float y[V + 1], z[V + 1], dy[V + 1], dx[V + 1];
        y[n] = z[n] = dx[n] = 42.0f; /* guard: nothing past n is written */
        memcpy(z, v, sizeof(float) * (size_t)n);
        dense_relu(n, v, y);
        dense_relu(n, z, z);
        for (int i = 0; i < n; i++) {
            float want = v[i] > 0.0f ? v[i] : 0.0f;
            if (!(y[i] == want && !signbit(y[i]) && z[i] == y[i]))
                FAIL("relu(%g) = %g (in place %g), want %g", v[i], y[i], z[i], want);
            dy[i] = i % 2 ? NAN : (float)(i + 1);
        }
        dense_relu_backward(n, v, dy, dx);
        for (int i = 0; i < n; i++) {
            if (v[i] > 0.0f)
                ASSERT(i % 2 ? isnan(dx[i]) : dx[i] == dy[i]);
            else
                ASSERT(dx[i] == 0.0f && !signbit(dx[i]));
        }
        ASSERT(y[n] == 42.0f && z[n] == 42.0f && dx[n] == 42.0f);
    }
}

/* Backward helpers against central finite differences of the forward (in double-checked float). */
TEST(dense_activation_gradients)
{
    enum { N = 41 };
    float x[N], y[N], dy[N], dx[N], xp[N], xm[N], yp[N], ym[N];
    rng_t r;
    rng_seed(&r, 4);
    for (int i = 0; i < N; i++) {
        x[i] = -4.0f + 0.2f * (float)i + 0.013f; /* avoid the kink of relu/elu at exactly 0 */
        dy[i] = 2.0f * rng_uniformf(&r) - 1.0f;
    }
    const float h = 1e-2f;
    for (int i = 0; i < N; i++) {
        xp[i] = x[i] + h;
        xm[i] = x[i] - h;
    }
    for (int f = 0; f < 4; f++) {
        switch (f) {
        case 0:
            dense_sigmoid(N, x, y), dense_sigmoid(N, xp, yp), dense_sigmoid(N, xm, ym);
            dense_sigmoid_backward(N, y, dy, dx);
            break;
        case 1:
            dense_tanh(N, x, y), dense_tanh(N, xp, yp), dense_tanh(N, xm, ym);
            dense_tanh_backward(N, y, dy, dx);
            break;
        case 2:
            dense_relu(N, x, y), dense_relu(N, xp, yp), dense_relu(N, xm, ym);
            dense_relu_backward(N, y, dy, dx);
            break;
        default:
            dense_elu(N, 0.7f, x, y), dense_elu(N, 0.7f, xp, yp), dense_elu(N, 0.7f, xm, ym);
            dense_elu_backward(N, 0.7f, y, dy, dx);
        }
        for (int i = 0; i < N; i++) {
            double num = dy[i] * ((double)yp[i] - ym[i]) / (2.0 * h);
            if (!(fabs(dx[i] - num) <= 2e-3 * (1 + fabs(num))))
                FAIL("activation %d at x=%g: backward %g, numeric %g", f, x[i], dx[i], num);
        }
        /* dx may alias dy */
        float d2[N];
        memcpy(d2, dy, sizeof d2);
        switch (f) {
        case 0:
            dense_sigmoid_backward(N, y, d2, d2);
            break;
        case 1:
            dense_tanh_backward(N, y, d2, d2);
            break;
        case 2:
            dense_relu_backward(N, y, d2, d2);
            break;
        default:
            dense_elu_backward(N, 0.7f, y, d2, d2);
        }
        for (int i = 0; i < N; i++)
            ASSERT(d2[i] == dx[i]);
    }
}

TEST(dense_softmax_family)
{
    rng_t r;
    rng_seed(&r, 5);
    enum { M = 4, N = 50, LD = 53 };
    float X[M * LD], L[M * LD], S[M * LD];
    for (int i = 0; i < M * LD; i++)
        X[i] = 20.0f * rng_uniformf(&r) - 10.0f;
    X[LD + 3] = 1000.0f; /* large values must not overflow */
    X[LD + 4] = 1000.0f;
    memcpy(S, X, sizeof X);
    memcpy(L, X, sizeof X);
    dense_softmax_rows(M, N, S, LD);
    dense_log_softmax_rows(M, N, L, LD);
    for (int rr = 0; rr < M; rr++) {
        const float *x = X + rr * LD;
        double m = -INFINITY, s = 0;
        for (int i = 0; i < N; i++)
            m = fmax(m, x[i]);
        for (int i = 0; i < N; i++)
            s += exp((double)x[i] - m);
        double lse = m + log(s);
        ASSERT_NEAR(dense_logsumexp(N, x), lse, 1e-4 * fmax(1, fabs(lse)));
        double tot = 0;
        for (int i = 0; i < N; i++) {
            double p = exp((double)x[i] - lse);
            ASSERT_NEAR(S[rr * LD + i], p, 1e-6);
            ASSERT_NEAR(L[rr * LD + i], (double)x[i] - lse, 1e-4);
            tot += S[rr * LD + i];
        }
        ASSERT_NEAR(tot, 1.0, 1e-5);
        for (int i = N; i < LD; i++)
            ASSERT(S[rr * LD + i] == X[rr * LD + i]); /* padding untouched */
    }
    ASSERT_NEAR(S[LD + 3], 0.5, 1e-6);
    float big[2] = {1000.0f, 1000.0f};
    ASSERT_NEAR(dense_logsumexp(2, big), 1000.0 + log(2.0), 1e-3);
    float ninf[2] = {-INFINITY, -INFINITY};
    ASSERT(dense_logsumexp(2, ninf) == -INFINITY);
    ASSERT(dense_logsumexp(0, ninf) == -INFINITY);
    float one[1] = {3.0f};
    dense_softmax_rows(1, 1, one, 1);
    ASSERT(one[0] == 1.0f);
    float partial[3] = {-INFINITY, 0.0f, 0.0f};
    dense_softmax_rows(1, 3, partial, 3);
    ASSERT(partial[0] == 0.0f);
    ASSERT_NEAR(partial[1], 0.5, 1e-7);
}

/* Fine-grid accuracy of the vectorised kernels against libm in double, special values, and every
 * tail length / misalignment of the 4-wide loops against the scalar path. */
TEST(dense_fast_kernels_accuracy)
{
    enum { N = 200000 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        x[i] = -95.0f + 190.0f * (float)i / N;
    dense_sigmoid(N, x, y);
    for (int i = 0; i < N; i++) {
        double ref = 1.0 / (1.0 + exp(-(double)x[i]));
        double tol = x[i] < -87.3f ? 1e-37 : 4e-7 * ref;
        if (!(fabs(y[i] - ref) <= tol)) FAIL("sigmoid(%.9g) = %.9g, ref %.9g", x[i], y[i], ref);
    }
    dense_tanh(N, x, y);
    for (int i = 0; i < N; i++) {
        double ref = tanh((double)x[i]);
        if (!(fabs(y[i] - ref) <= 3e-7 * fabs(ref) + 1e-30))
            FAIL("tanh(%.9g) = %.9g, ref %.9g", x[i], y[i], ref);
    }
    /* tanh near 0: relative accuracy over many binades */
    for (int i = 0; i < N; i++)
        x[i] = ldexpf(1.0f + (float)(i % 1000) / 1000.0f, -(i % 60)) * (i & 1 ? -1.0f : 1.0f);
    dense_tanh(N, x, y);
    for (int i = 0; i < N; i++) {
        double ref = tanh((double)x[i]);
        if (!(fabs(y[i] - ref) <= 3e-7 * fabs(ref)))
            FAIL("tanh(%.9g) = %.9g, ref %.9g", x[i], y[i], ref);
    }
    /* softmax over a wide row with masked entries */
    for (int i = 0; i < 1001; i++)
        x[i] = (i % 7 == 0) ? -INFINITY : -50.0f + 0.1f * (float)i;
    memcpy(y, x, 1001 * sizeof(float));
    dense_softmax_rows(1, 1001, y, 1001);
    double lse = dense_logsumexp(1001, x), dl = -INFINITY, s = 0;
    for (int i = 0; i < 1001; i++)
        dl = fmax(dl, x[i]);
    for (int i = 0; i < 1001; i++)
        s += exp((double)x[i] - dl);
    ASSERT_NEAR(lse, dl + log(s), 1e-5);
    for (int i = 0; i < 1001; i++) {
        if (i % 7 == 0) {
            ASSERT(y[i] == 0.0f);
            continue;
        }
        double ref = exp((double)x[i] - (dl + log(s)));
        /* x - max is rounded to float first: relative error up to |x - max| * 2^-24 is inherent */
        double tol = (1e-6 + fabs((double)x[i] - dl) * 1.2e-7) * ref + 1e-37;
        if (!(fabs(y[i] - ref) <= tol)) FAIL("softmax[%d] %.9g vs %.9g", i, y[i], ref);
    }
    free(x);
    free(y);

    /* special values */
    float sp[8] = {-INFINITY, INFINITY, NAN, 0.0f, -0.0f, 1e30f, -1e30f, 88.0f}, o[8];
    dense_sigmoid(8, sp, o);
    ASSERT(o[0] == 0.0f && o[1] == 1.0f && isnan(o[2]) && o[3] == 0.5f && o[4] == 0.5f &&
           o[5] == 1.0f && o[6] == 0.0f && o[7] == 1.0f);
    dense_tanh(8, sp, o);
    ASSERT(o[0] == -1.0f && o[1] == 1.0f && isnan(o[2]) && o[3] == 0.0f && o[5] == 1.0f &&
           o[6] == -1.0f);
    ASSERT(o[4] == 0.0f && signbit(o[4])); /* tanh(-0) = -0 */
    float nanrow[3] = {1.0f, NAN, 2.0f}, allnan[2] = {NAN, NAN};
    ASSERT(isnan(dense_logsumexp(3, nanrow)));
    ASSERT(isnan(dense_logsumexp(2, allnan)));

    /* every length 0..19 at every misalignment 0..3: same as element by element */
    float buf[32], out[32], one;
    for (int i = 0; i < 32; i++)
        buf[i] = -6.0f + 0.41f * (float)i;
    for (int off = 0; off < 4; off++)
        for (int n = 0; n < 20; n++) {
            for (int i = 0; i < 32; i++)
                out[i] = 99.0f;
            dense_sigmoid(n, buf + off, out + off);
            for (int i = 0; i < 32; i++) {
                if (i < off || i >= off + n) {
                    ASSERT(out[i] == 99.0f); /* nothing outside [off, off+n) written */
                    continue;
                }
                dense_sigmoid(1, buf + i, &one);
                ASSERT(out[i] == one);
            }
            dense_tanh(n, buf + off, out + off);
            for (int i = off; i < off + n; i++) {
                dense_tanh(1, buf + i, &one);
                ASSERT(out[i] == one);
            }
            if (n > 0) {
                memcpy(out, buf, sizeof buf);
                dense_softmax_rows(1, n, out + off, n);
                double tot = 0;
                for (int i = off; i < off + n; i++)
                    tot += out[i];
                ASSERT_NEAR(tot, 1.0, 1e-6);
                ASSERT(out[off + n] == buf[off + n]);
            }
        }
}
