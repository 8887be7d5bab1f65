/* core/optim.c - see core/optim.h. Each rows form runs the dense kernel on one row at a time, so
 * the two forms cannot drift apart. */
#include "core/optim.h"

#include <math.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(OPTIM_SCALAR_ONLY) /* -D it to benchmark  \
                                                                             */
#include <immintrin.h>
#define OPTIM_SSE2 1 /* SSE2 is part of x86-64 */
#endif

/* The vector loops use the same IEEE operations in the same order as the scalar ones (sqrt and
 * division are correctly rounded in both, and nothing is contracted into FMA), so every element
 * gets exactly the result of the scalar loop that finishes the tail. They exist because sqrtf,
 * which may set errno, keeps the compiler from vectorising the scalar loop at -O2 (measured ~6x;
 * see the report of issue 2). */

/* ---- AdaGrad --------------------------------------------------------------------------------- */

void optim_adagrad_dense(const optim_adagrad *o, float *p, const float *g, float *acc, float *v,
                         size_t n)
{
    const float lr = (float)o->lr, mom = (float)o->momentum, eps = (float)o->eps, nlr = -lr;
    size_t i = 0;
#ifdef OPTIM_SSE2
    const __m128 vnlr = _mm_set1_ps(nlr), veps = _mm_set1_ps(eps), vmom = _mm_set1_ps(mom);
    for (; i + 4 <= n; i += 4) {
        __m128 gi = _mm_loadu_ps(g + i);
        __m128 a = _mm_add_ps(_mm_loadu_ps(acc + i), _mm_mul_ps(gi, gi));
        _mm_storeu_ps(acc + i, a);
        __m128 upd = _mm_div_ps(_mm_mul_ps(vnlr, gi), _mm_sqrt_ps(_mm_add_ps(a, veps)));
        if (mom > 0) {
            upd = _mm_add_ps(_mm_mul_ps(vmom, _mm_loadu_ps(v + i)), upd);
            _mm_storeu_ps(v + i, upd);
        }
        _mm_storeu_ps(p + i, _mm_add_ps(_mm_loadu_ps(p + i), upd));
    }
#endif
    for (; i < n; i++) {
        float a = acc[i] + g[i] * g[i];
        acc[i] = a;
        float upd = nlr * g[i] / sqrtf(a + eps);
        if (mom > 0) {
            upd = mom * v[i] + upd;
            v[i] = upd;
        }
        p[i] += upd;
    }
}

void optim_adagrad_rows(const optim_adagrad *o, float *p, float *acc, float *v, size_t C,
                        const int32_t *rows, size_t K, const float *g)
{
    for (size_t k = 0; k < K; k++) {
        size_t off = (size_t)rows[k] * C;
        optim_adagrad_dense(o, p + off, g + k * C, acc + off, o->momentum > 0 ? v + off : NULL, C);
    }
}

/* ---- FTRL-proximal --------------------------------------------------------------------------- */

/* The weight from z and sqrt(nsq). */
static inline double ftrl_w(double beta, double l1, double l2, double inv_alpha, double z,
                            double sqrt_n)
{
    if (fabs(z) <= l1) return 0.0;
    double zs = z > 0 ? z - l1 : z + l1; /* z - sign(z) l1 */
    return -zs / ((beta + sqrt_n) * inv_alpha + l2);
}

float optim_ftrl_weight(const optim_ftrl *o, float z, float nsq)
{
    return (float)ftrl_w(o->beta, o->l1, o->l2, 1.0 / o->alpha, z, sqrt((double)nsq));
}

void optim_ftrl_weights(const optim_ftrl *o, const float *z, const float *nsq, float *w, size_t n)
{
    const double beta = o->beta, l1 = o->l1, l2 = o->l2, ia = 1.0 / o->alpha;
    for (size_t i = 0; i < n; i++)
        w[i] = (float)ftrl_w(beta, l1, l2, ia, z[i], sqrt((double)nsq[i]));
}

void optim_ftrl_dense(const optim_ftrl *o, float *z, float *nsq, const float *g, float *w, size_t n)
{
    const double beta = o->beta, l1 = o->l1, l2 = o->l2, ia = 1.0 / o->alpha;
    for (size_t i = 0; i < n; i++) {
        double gi = g[i], sn = sqrt((double)nsq[i]);
        double wi = ftrl_w(beta, l1, l2, ia, z[i], sn);
        /* two square roots per step: sqrt(nsq) before and after (of the value as stored) */
        float n2 = (float)((double)nsq[i] + gi * gi);
        double sn2 = sqrt((double)n2);
        float zi = (float)((double)z[i] + gi - (sn2 - sn) * ia * wi);
        z[i] = zi;
        nsq[i] = n2;
        if (w) w[i] = (float)ftrl_w(beta, l1, l2, ia, zi, sn2);
    }
}

void optim_ftrl_rows(const optim_ftrl *o, float *z, float *nsq, float *w, size_t C,
                     const int32_t *rows, size_t K, const float *g)
{
    for (size_t k = 0; k < K; k++) {
        size_t off = (size_t)rows[k] * C;
        optim_ftrl_dense(o, z + off, nsq + off, g + k * C, w ? w + off : NULL, C);
    }
}

/* ---- Adam ------------------------------------------------------------------------------------ */

/* The constants of one Adam step: betas, 1 - betas, and 1/(1 - beta^t) for the bias corrections. */
typedef struct {
    float lr, b1, b2, omb1, omb2, eps, ic1, ic2;
} adam_k;

static adam_k adam_consts(const optim_adam *o, long long t)
{
    double tt = (double)(t < 1 ? 1 : t);
    adam_k k = {(float)o->lr,
                (float)o->beta1,
                (float)o->beta2,
                (float)(1.0 - o->beta1),
                (float)(1.0 - o->beta2),
                (float)o->eps,
                (float)(1.0 / (1.0 - pow(o->beta1, tt))),
                (float)(1.0 / (1.0 - pow(o->beta2, tt)))};
    return k;
}

static void adam_kernel(adam_k k, float *p, const float *g, float *m, float *v, size_t n)
{
    const float lr = k.lr, b1 = k.b1, b2 = k.b2, omb1 = k.omb1, omb2 = k.omb2, eps = k.eps,
                ic1 = k.ic1, ic2 = k.ic2;
    size_t i = 0;
#ifdef OPTIM_SSE2
    const __m128 vlr = _mm_set1_ps(lr), vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2),
                 vomb1 = _mm_set1_ps(omb1), vomb2 = _mm_set1_ps(omb2), veps = _mm_set1_ps(eps),
                 vic1 = _mm_set1_ps(ic1), vic2 = _mm_set1_ps(ic2);
    for (; i + 4 <= n; i += 4) {
        __m128 gi = _mm_loadu_ps(g + i);
        __m128 mi = _mm_add_ps(_mm_mul_ps(vb1, _mm_loadu_ps(m + i)), _mm_mul_ps(vomb1, gi));
        __m128 vi =
            _mm_add_ps(_mm_mul_ps(vb2, _mm_loadu_ps(v + i)), _mm_mul_ps(_mm_mul_ps(vomb2, gi), gi));
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        __m128 step = _mm_div_ps(_mm_mul_ps(vlr, _mm_mul_ps(mi, vic1)),
                                 _mm_add_ps(_mm_sqrt_ps(_mm_mul_ps(vi, vic2)), veps));
        _mm_storeu_ps(p + i, _mm_sub_ps(_mm_loadu_ps(p + i), step));
    }
#endif
    for (; i < n; i++) {
        float mi = b1 * m[i] + omb1 * g[i];
        float vi = b2 * v[i] + omb2 * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * (mi * ic1) / (sqrtf(vi * ic2) + eps);
    }
}

void optim_adam_dense(const optim_adam *o, long long t, float *p, const float *g, float *m,
                      float *v, size_t n)
{
    adam_kernel(adam_consts(o, t), p, g, m, v, n);
}

void optim_adam_rows(const optim_adam *o, long long t, float *p, float *m, float *v, size_t C,
                     const int32_t *rows, size_t K, const float *g)
{
    adam_k ks = adam_consts(o, t);
    for (size_t i = 0; i < K; i++) {
        size_t off = (size_t)rows[i] * C;
        adam_kernel(ks, p + off, g + i * C, m + off, v + off, C);
    }
}
