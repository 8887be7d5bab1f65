/* models/biasedmf_kern.c - the fast kernels of biased MF (models/biasedmf_kern.h); their naive
 * references are in models/biasedmf.c. Sums are reassociated (vectorised), so results differ from the
 * references by float rounding only. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3", "-fassociative-math", "-fno-signed-zeros", "-fno-trapping-math", "-ffp-contract=fast")
#endif
#include "models/biasedmf_kern.h"

#include <math.h>

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__clang__)
#define BMF_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define BMF_CLONES
#endif

static inline float dotf(const float *restrict a, const float *restrict b, int F)
{
    float s = 0.0f;
    for (int f = 0; f < F; f++) s += a[f] * b[f];
    return s;
}

BMF_CLONES float bmf_dot(const float *a, const float *b, int F) { return dotf(a, b, F); }

BMF_CLONES double bmf_sgd_pass(const bmf_params *w, const bmf_rating *t, int64_t n, float lr, float reg,
                               float reg_bias)
{
    const int F = w->F;
    const float mu = *w->mu, shrink = 1.0f - lr * reg, shrink_b = 1.0f - lr * reg_bias;
    float *bu = w->bu, *bi = w->bi;
    double sse = 0.0;
    for (int64_t k = 0; k < n; k++) {
        const int32_t u = t[k].u, i = t[k].i;
        float *restrict p = w->P + (size_t)u * (size_t)F; /* p is (F) */
        float *restrict q = w->Q + (size_t)i * (size_t)F; /* q is (F) */
        const float e = t[k].r - (mu + bu[u] + bi[i] + dotf(p, q, F));
        sse += (double)e * (double)e;
        const float le = lr * e;
        bu[u] = shrink_b * bu[u] + le;
        bi[i] = shrink_b * bi[i] + le;
        for (int f = 0; f < F; f++) {
            const float pf = p[f], qf = q[f];
            p[f] = shrink * pf + le * qf;
            q[f] = shrink * qf + le * pf;
        }
    }
    return sse;
}

BMF_CLONES int bmf_chol_solve(double *A, double *b, int K)
{
    for (int i = 0; i < K; i++) {
        double *Li = A + (size_t)i * K;
        for (int j = 0; j <= i; j++) {
            const double *Lj = A + (size_t)j * K;
            double s = Li[j];
            for (int k = 0; k < j; k++) s -= Li[k] * Lj[k];
            if (j < i) {
                Li[j] = s / Lj[j];
            } else {
                if (!(s > 0)) return -1;
                Li[i] = sqrt(s);
            }
        }
    }
    for (int i = 0; i < K; i++) { /* L z = b */
        const double *Li = A + (size_t)i * K;
        double s = b[i];
        for (int k = 0; k < i; k++) s -= Li[k] * b[k];
        b[i] = s / Li[i];
    }
    for (int i = K - 1; i >= 0; i--) { /* L^T x = z */
        double s = b[i];
        for (int k = i + 1; k < K; k++) s -= A[(size_t)k * K + i] * b[k];
        b[i] = s / A[(size_t)i * K + i];
    }
    return 0;
}
