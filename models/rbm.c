/* models/rbm.c - U-RBM and I-RBM for collaborative filtering (see models/rbm.h for the model, the
 * learning rule, the slab and the snapshot). */
#include "models/rbm.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/dense.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"

#define RBM_MAX_THREADS 64

/* ---- hyperparameters ------------------------------------------------------------------------------ */

void rbm_hparams_default(rbm_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    hp->variant = RBM_ITEM;
    hp->hidden = RBM_DEF_HIDDEN;
    hp->epochs = RBM_DEF_EPOCHS;
    hp->patience = RBM_DEF_PATIENCE;
    hp->batch = RBM_DEF_BATCH;
    hp->lr = RBM_DEF_LR;
    hp->lr_decay = RBM_DEF_LR_DECAY;
    hp->momentum_start = RBM_DEF_MOMENTUM_START;
    hp->momentum_epochs = RBM_DEF_MOMENTUM_EPOCHS;
    hp->momentum = RBM_DEF_MOMENTUM;
    hp->weight_decay = RBM_DEF_WEIGHT_DECAY;
    hp->init_std = RBM_DEF_INIT_STD;
    hp->mean_field = RBM_DEF_MEAN_FIELD;
    static const int steps[4] = {1, 3, 5, 9}, from[4] = {1, 6, 11, 16}; /* RBM_DEF_CD_STEPS, RBM_DEF_CD_FROM */
    hp->n_cd = 4;
    for (int j = 0; j < 4; j++) {
        hp->cd_steps[j] = steps[j];
        hp->cd_from[j] = from[j];
    }
}

int rbm_hparams_check(const rbm_hparams *hp)
{
    if (hp->variant != RBM_USER && hp->variant != RBM_ITEM) return rc_error(RC_EINVAL, "rbm: variant must be user or item");
    if (hp->hidden < 1 || hp->hidden > RBM_MAX_HIDDEN)
        return rc_error(RC_EINVAL, "rbm: hidden %d outside [1, %d]", hp->hidden, RBM_MAX_HIDDEN);
    if (hp->epochs < 1) return rc_error(RC_EINVAL, "rbm: epochs %d < 1", hp->epochs);
    if (hp->patience < 0) return rc_error(RC_EINVAL, "rbm: patience %d < 0", hp->patience);
    if (hp->batch < 1) return rc_error(RC_EINVAL, "rbm: batch %d < 1", hp->batch);
    if (!(hp->lr > 0 && isfinite(hp->lr))) return rc_error(RC_EINVAL, "rbm: lr %g must be > 0", hp->lr);
    if (!(hp->lr_decay > 0 && hp->lr_decay <= 1)) return rc_error(RC_EINVAL, "rbm: lr_decay %g outside (0, 1]", hp->lr_decay);
    if (!(hp->momentum_start >= 0 && hp->momentum_start < 1))
        return rc_error(RC_EINVAL, "rbm: momentum_start %g outside [0, 1)", hp->momentum_start);
    if (!(hp->momentum >= 0 && hp->momentum < 1)) return rc_error(RC_EINVAL, "rbm: momentum %g outside [0, 1)", hp->momentum);
    if (hp->momentum_epochs < 0) return rc_error(RC_EINVAL, "rbm: momentum_epochs %d < 0", hp->momentum_epochs);
    if (!(hp->weight_decay >= 0 && isfinite(hp->weight_decay)))
        return rc_error(RC_EINVAL, "rbm: weight_decay %g must be >= 0", hp->weight_decay);
    if (!(hp->init_std >= 0 && isfinite(hp->init_std)))
        return rc_error(RC_EINVAL, "rbm: init_std %g must be >= 0", hp->init_std);
    if (hp->mean_field != 0 && hp->mean_field != 1)
        return rc_error(RC_EINVAL, "rbm: mean_field %d must be 0 or 1", hp->mean_field);
    if (hp->n_cd < 1 || hp->n_cd > RBM_MAX_CD)
        return rc_error(RC_EINVAL, "rbm: the CD schedule has %d entries (1..%d)", hp->n_cd, RBM_MAX_CD);
    for (int j = 0; j < hp->n_cd; j++) {
        if (hp->cd_steps[j] < 1 || hp->cd_steps[j] > 1000)
            return rc_error(RC_EINVAL, "rbm: cd_steps[%d] = %d outside [1, 1000]", j, hp->cd_steps[j]);
        if (j == 0 && hp->cd_from[0] != 1) return rc_error(RC_EINVAL, "rbm: cd_from[0] = %d, must be 1", hp->cd_from[0]);
        if (j > 0 && hp->cd_from[j] <= hp->cd_from[j - 1])
            return rc_error(RC_EINVAL, "rbm: cd_from[%d] = %d does not increase", j, hp->cd_from[j]);
    }
    return RC_OK;
}

json_t *rbm_hparams_to_json(const rbm_hparams *hp)
{
    json_t *steps = json_array(), *from = json_array();
    for (int j = 0; j < hp->n_cd && steps && from; j++) {
        json_array_append_new(steps, json_integer(hp->cd_steps[j]));
        json_array_append_new(from, json_integer(hp->cd_from[j]));
    }
    json_t *o = json_pack("{s:s,s:i,s:i,s:i,s:i,s:f,s:f,s:f,s:i,s:f,s:f,s:f,s:b,s:o*,s:o*}", "variant",
                          hp->variant == RBM_USER ? "user" : "item", "hidden", hp->hidden, "epochs", hp->epochs,
                          "patience", hp->patience, "batch", hp->batch, "lr", hp->lr, "lr_decay", hp->lr_decay,
                          "momentum_start", hp->momentum_start, "momentum_epochs", hp->momentum_epochs, "momentum",
                          hp->momentum, "weight_decay", hp->weight_decay, "init_std", hp->init_std, "mean_field",
                          hp->mean_field, "cd_steps", steps,
                          "cd_from", from);
    if (!o) rc_error(RC_ENOMEM, "rbm: out of memory (hparams)");
    return o;
}

/* ---- rating values -------------------------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int rbm_values(const rb_rows *rows, float *values, int *K)
{
    int n = 0;
    *K = 0;
    for (int64_t r = 0; r < rows->nnz; r++) {
        float v = rows->val[r];
        if (!isfinite(v)) return rc_error(RC_EINVAL, "rbm: rating %lld is not finite", (long long)r);
        int found = 0;
        for (int j = 0; j < n && !found; j++) found = values[j] == v;
        if (found) continue;
        if (n == RBM_MAX_K)
            return rc_error(RC_EINVAL, "rbm: more than %d distinct rating values (a softmax unit per value)", RBM_MAX_K);
        values[n++] = v;
    }
    if (n == 0) return rc_error(RC_EINVAL, "rbm: no rating");
    qsort(values, (size_t)n, sizeof *values, cmp_float);
    *K = n;
    return RC_OK;
}

int rbm_value_index(const float *values, int K, float r)
{
    int best = 0;
    float bd = INFINITY;
    for (int k = 0; k < K; k++) {
        if (values[k] == r) return k;
        float d = fabsf(values[k] - r);
        if (d < bd) {
            bd = d;
            best = k;
        }
    }
    return best;
}

/* ---- model ---------------------------------------------------------------------------------------- */

static size_t param_count(int64_t M, int K, int F)
{
    return (size_t)M * (size_t)K * (size_t)F + (size_t)M * (size_t)K + (size_t)F;
}

size_t rbm_param_count(const rbm *m) { return param_count(m->M, m->K, m->F); }

/* Point W, bv, bh, H into base (the slab's layout). */
static void point_params(rbm *m, float *base)
{
    m->W = base;
    m->bv = base + (size_t)m->M * (size_t)m->K * (size_t)m->F;
    m->bh = m->bv + (size_t)m->M * (size_t)m->K;
    m->H = m->bh + m->F;
}

rbm *rbm_new(int variant, int64_t U, int64_t N, int K, const float *values, int F, double init_std, uint64_t seed)
{
    if ((variant != RBM_USER && variant != RBM_ITEM) || U < 1 || N < 1 || U > INT32_MAX || N > INT32_MAX || K < 1 ||
        K > RBM_MAX_K || F < 1 || F > RBM_MAX_HIDDEN) {
        rc_error(RC_EINVAL, "rbm: bad sizes (variant %d, U %lld, N %lld, K %d, F %d)", variant, (long long)U,
                 (long long)N, K, F);
        return NULL;
    }
    for (int k = 1; k < K; k++)
        if (!(values[k] > values[k - 1])) {
            rc_error(RC_EINVAL, "rbm: rating values not ascending at %d", k);
            return NULL;
        }
    rbm *m = calloc(1, sizeof *m);
    if (!m) {
        rc_error(RC_ENOMEM, "rbm: out of memory");
        return NULL;
    }
    m->variant = variant;
    m->C = variant == RBM_USER ? U : N;
    m->M = variant == RBM_USER ? N : U;
    m->K = K;
    m->F = F;
    memcpy(m->values, values, (size_t)K * sizeof *values);
    size_t P = param_count(m->M, K, F), total = P + (size_t)m->C * (size_t)F;
    m->slab = calloc(total, sizeof *m->slab);
    if (!m->slab) {
        free(m);
        rc_error(RC_ENOMEM, "rbm: out of memory for %zu parameters", total);
        return NULL;
    }
    point_params(m, m->slab);
    rng_t r;
    rng_seed(&r, seed ^ 0x72626d2d696e6974ULL);
    size_t nw = (size_t)m->M * (size_t)K * (size_t)F;
    for (size_t p = 0; p < nw; p++) m->slab[p] = (float)(init_std * rng_normal(&r));
    return m;
}

void rbm_free(rbm *m)
{
    if (!m) return;
    rb_free(&m->base);
    free(m->slab);
    free(m);
}

float *rbm_slab(rbm *m) { return m->slab; }

const rb_rows *rbm_case_rows(const rbm *m, const rb_train_input *in)
{
    return m->variant == RBM_USER ? &in->by_user : &in->by_item;
}

/* ---- vector kernels ------------------------------------------------------------------------------- */

static void gen_add(int n, const float *x, float *y) { dense_add(n, x, y); }
static void gen_axpy(int n, float a, const float *x, float *y) { dense_axpy(n, a, x, y); }
static void gen_logits(int K, int F, const float *Wq, const float *b, const float *h, float *out)
{
    for (int k = 0; k < K; k++) out[k] = b[k] + dense_dot(F, Wq + (size_t)k * (size_t)F, h); // Wq is (K,F)
}
static void gen_decay(int n, float mom, float c, const float *w, float *v)
{
    for (int i = 0; i < n; i++) v[i] = mom * v[i] - c * w[i];
}

static const rbm_kernels kern_generic = {"generic", gen_add, gen_axpy, gen_logits, gen_decay};

#if defined(__x86_64__)
#include <immintrin.h>
#define T2 __attribute__((target("avx2,fma")))

T2 static void avx_add(int n, const float *x, float *y)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] += x[i];
}

T2 static void avx_axpy(int n, float a, const float *x, float *y)
{
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

T2 static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

T2 static void avx_logits(int K, int F, const float *Wq, const float *b, const float *h, float *out)
{
    for (int k = 0; k < K; k++) {
        const float *w = Wq + (size_t)k * (size_t)F;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int j = 0;
        for (; j + 16 <= F; j += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + j), _mm256_loadu_ps(h + j), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + j + 8), _mm256_loadu_ps(h + j + 8), a1);
        }
        for (; j + 8 <= F; j += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + j), _mm256_loadu_ps(h + j), a0);
        float s = hsum8(_mm256_add_ps(a0, a1));
        for (; j < F; j++) s += w[j] * h[j];
        out[k] = b[k] + s;
    }
}

T2 static void avx_decay(int n, float mom, float c, const float *w, float *v)
{
    __m256 vm = _mm256_set1_ps(mom), vc = _mm256_set1_ps(-c);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(v + i, _mm256_fmadd_ps(vc, _mm256_loadu_ps(w + i), _mm256_mul_ps(vm, _mm256_loadu_ps(v + i))));
    for (; i < n; i++) v[i] = mom * v[i] - c * w[i];
}

static const rbm_kernels kern_avx2 = {"avx2", avx_add, avx_axpy, avx_logits, avx_decay};
#endif

const rbm_kernels *rbm_kernels_generic(void) { return &kern_generic; }

static const rbm_kernels *kern_best;
static pthread_once_t kern_once = PTHREAD_ONCE_INIT;
static void kern_choose(void)
{
    kern_best = &kern_generic;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) kern_best = &kern_avx2;
#endif
}

const rbm_kernels *rbm_kernels_best(void)
{
    pthread_once(&kern_once, kern_choose);
    return kern_best;
}

/* ---- kernels -------------------------------------------------------------------------------------- */

void rbm_hidden_forward(const rbm *m, const int32_t *units, const uint8_t *k, int64_t n, float *x, float *p)
{
    const rbm_kernels *kn = rbm_kernels_best();
    int F = m->F, K = m->K;
    memcpy(x, m->bh, (size_t)F * sizeof *x); // x is (F)
    for (int64_t t = 0; t < n; t++) {
        if (t + 4 < n) __builtin_prefetch(m->W + ((size_t)units[t + 4] * (size_t)K + k[t + 4]) * (size_t)F);
        kn->add(F, m->W + ((size_t)units[t] * (size_t)K + k[t]) * (size_t)F, x);
    }
    dense_sigmoid(F, x, p);
}

/* In place softmax of a short vector l (K). */
static inline void softmax_small(int K, float *l)
{
    float mx = l[0];
    for (int k = 1; k < K; k++)
        if (l[k] > mx) mx = l[k];
    float s = 0;
    for (int k = 0; k < K; k++) {
        l[k] = expf(l[k] - mx);
        s += l[k];
    }
    float inv = 1.0f / s;
    for (int k = 0; k < K; k++) l[k] *= inv;
}

static inline void visible_probs_k(const rbm_kernels *kn, const rbm *m, int64_t q, const float *h, float *p)
{
    size_t KF = (size_t)m->K * (size_t)m->F;
    kn->logits(m->K, m->F, m->W + (size_t)q * KF, m->bv + (size_t)q * (size_t)m->K, h, p);
    softmax_small(m->K, p);
}

void rbm_visible_probs(const rbm *m, int64_t q, const float *h, float *p)
{
    visible_probs_k(rbm_kernels_best(), m, q, h, p);
}

float rbm_expected(const rbm *m, int64_t q, const float *h)
{
    float p[RBM_MAX_K];
    rbm_visible_probs(m, q, h, p);
    float e = 0;
    for (int k = 0; k < m->K; k++) e += p[k] * m->values[k];
    return e;
}

static inline double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

double rbm_free_energy(const rbm *m, const int32_t *units, const uint8_t *k, int64_t n)
{
    int F = m->F, K = m->K;
    double fe = 0;
    for (int j = 0; j < F; j++) {
        double x = m->bh[j];
        for (int64_t t = 0; t < n; t++) x += m->W[((size_t)units[t] * (size_t)K + k[t]) * (size_t)F + (size_t)j];
        fe -= softplus(x);
    }
    for (int64_t t = 0; t < n; t++) fe -= m->bv[(size_t)units[t] * (size_t)K + k[t]];
    return fe;
}

/* ---- contrastive divergence ------------------------------------------------------------------------ */

void rbm_case_rng(rng_t *r, uint64_t seed, int epoch, int64_t c)
{
    rng_seed(r, hash_u64((uint64_t)c * 1000003u + (uint64_t)epoch, seed ^ 0x72626d2d63617365ULL));
}

struct rbm_cd_scratch {
    int64_t max_n;
    float *x, *h; /* (F) each */
};

rbm_cd_scratch *rbm_cd_scratch_new(const rbm *m, int64_t max_n)
{
    rbm_cd_scratch *s = calloc(1, sizeof *s);
    size_t F = (size_t)m->F;
    if (s) {
        s->max_n = max_n;
        s->x = malloc(2 * F * sizeof(float));
    }
    if (!s || !s->x) {
        rbm_cd_scratch_free(s);
        rc_error(RC_ENOMEM, "rbm: out of memory (CD scratch)");
        return NULL;
    }
    s->h = s->x + F;
    return s;
}

void rbm_cd_scratch_free(rbm_cd_scratch *s)
{
    if (!s) return;
    free(s->x);
    free(s);
}

void rbm_cd_case(const rbm *m, const int32_t *units, const uint8_t *k, int64_t n, int t, int mean_field, rng_t *r,
                 rbm_cd_scratch *s, float *p0, float *ph, float *vneg, double *sq_err)
{
    const rbm_kernels *kn = rbm_kernels_best();
    int F = m->F, K = m->K;
    size_t KF = (size_t)K * (size_t)F;
    /* positive phase: p0 = p(h | V) */
    rbm_hidden_forward(m, units, k, n, s->x, p0);
    /* t Gibbs steps from the data */
    const float *hp = p0; /* hidden probabilities to sample from */
    double se = 0;
    for (int step = 1; step <= t; step++) {
        for (int j = 0; j < F; j++) s->h[j] = rng_uniformf(r) < hp[j] ? 1.0f : 0.0f; // h is (F) binary
        memcpy(s->x, m->bh, (size_t)F * sizeof(float));
        for (int64_t i = 0; i < n; i++) {
            if (i + 2 < n) __builtin_prefetch(m->W + (size_t)units[i + 2] * KF);
            float *p = vneg + (size_t)i * (size_t)K; // p is (K)
            const float *Wq = m->W + (size_t)units[i] * KF;
            visible_probs_k(kn, m, units[i], s->h, p);
            if (step == 1 && sq_err) {
                float e = 0;
                for (int kk = 0; kk < K; kk++) e += p[kk] * m->values[kk];
                e -= m->values[k[i]];
                se += (double)e * e;
            }
            if (mean_field) { /* the reconstruction is the probabilities themselves */
                for (int kk = 0; kk < K; kk++) kn->axpy(F, p[kk], Wq + (size_t)kk * (size_t)F, s->x);
                continue;
            }
            float u = rng_uniformf(r), c = 0;
            int kv = K - 1;
            for (int kk = 0; kk < K - 1; kk++) {
                c += p[kk];
                if (u < c) {
                    kv = kk;
                    break;
                }
            }
            for (int kk = 0; kk < K; kk++) p[kk] = kk == kv ? 1.0f : 0.0f;
            kn->add(F, Wq + (size_t)kv * (size_t)F, s->x);
        }
        dense_sigmoid(F, s->x, ph); // ph is (F) = p(h | v~)
        hp = ph;
    }
    if (sq_err) *sq_err = se;
}

void rbm_cd_grad(const rbm *m, const int32_t *units, const uint8_t *k, int64_t n, const float *p0, const float *ph,
                 const float *vneg, float *grad)
{
    int F = m->F, K = m->K;
    float *dW = grad;                                        // dW is (M,K,F)
    float *dbv = grad + (size_t)m->M * (size_t)K * (size_t)F; // dbv is (M,K)
    float *dbh = dbv + (size_t)m->M * (size_t)K;             // dbh is (F)
    for (int64_t i = 0; i < n; i++) {
        size_t row = (size_t)units[i] * (size_t)K, pos = row + k[i];
        dense_axpy(F, 1.0f, p0, dW + pos * (size_t)F);
        dbv[pos] += 1;
        for (int kk = 0; kk < K; kk++) {
            float a = vneg[(size_t)i * (size_t)K + (size_t)kk];
            if (a == 0) continue;
            dense_axpy(F, -a, ph, dW + (row + (size_t)kk) * (size_t)F);
            dbv[row + (size_t)kk] -= a;
        }
    }
    for (int j = 0; j < F; j++) dbh[j] += p0[j] - ph[j];
}

/* ---- threads -------------------------------------------------------------------------------------- */

typedef void (*par_fn)(void *ctx, int t, int T);
typedef struct par_job {
    par_fn fn;
    void *ctx;
    int t, T;
} par_job;

static void *par_main(void *a)
{
    par_job *j = a;
    j->fn(j->ctx, j->t, j->T);
    return NULL;
}

/* fn(ctx, t, T) for t in [0, T), each on its own thread (t = 0 on the caller's). A thread that cannot
 * start runs on the caller's thread: the work is the same, only slower. */
static void par_run(int T, par_fn fn, void *ctx)
{
    if (T > RBM_MAX_THREADS) T = RBM_MAX_THREADS;
    if (T <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_t th[RBM_MAX_THREADS];
    par_job jobs[RBM_MAX_THREADS];
    int started[RBM_MAX_THREADS] = {0};
    for (int t = 1; t < T; t++) {
        jobs[t] = (par_job){fn, ctx, t, T};
        started[t] = pthread_create(&th[t], NULL, par_main, &jobs[t]) == 0;
    }
    fn(ctx, 0, T);
    for (int t = 1; t < T; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else fn(ctx, t, T);
    }
}

/* ---- hidden probabilities of every case ----------------------------------------------------------- */

typedef struct hidden_ctx {
    rbm *m;
    const rb_rows *rows;
    const uint8_t *kidx; /* (R) */
    float *H;            /* (C,F) */
} hidden_ctx;

static void hidden_worker(void *vctx, int t, int T)
{
    hidden_ctx *c = vctx;
    size_t F = (size_t)c->m->F;
    for (int64_t r = t; r < c->rows->rows; r += T) {
        int64_t o = c->rows->offsets[r], n = c->rows->offsets[r + 1] - o;
        float *hr = c->H + (size_t)r * F; // hr is (F): the input, then in place its sigmoid
        rbm_hidden_forward(c->m, c->rows->col + o, c->kidx + o, n, hr, hr);
    }
}

static void hidden_all(rbm *m, const rb_rows *rows, const uint8_t *kidx, int threads)
{
    hidden_ctx c = {m, rows, kidx, (float *)m->H};
    par_run(threads, hidden_worker, &c);
}

static uint8_t *value_indices(const rbm *m, const rb_rows *rows)
{
    uint8_t *kidx = malloc((size_t)(rows->nnz > 0 ? rows->nnz : 1));
    if (!kidx) {
        rc_error(RC_ENOMEM, "rbm: out of memory (%lld value indices)", (long long)rows->nnz);
        return NULL;
    }
    for (int64_t r = 0; r < rows->nnz; r++) kidx[r] = (uint8_t)rbm_value_index(m->values, m->K, rows->val[r]);
    return kidx;
}

static int check_rows(const rbm *m, const rb_rows *rows)
{
    if (rows->rows != m->C)
        return rc_error(RC_EINVAL, "rbm: %lld case rows, the model has %lld cases", (long long)rows->rows,
                        (long long)m->C);
    for (int64_t r = 0; r < rows->nnz; r++)
        if (rows->col[r] < 0 || rows->col[r] >= m->M)
            return rc_error(RC_EINVAL, "rbm: rating %lld names unit %d outside [0, %lld)", (long long)r, (int)rows->col[r],
                            (long long)m->M);
    return RC_OK;
}

int rbm_hidden(rbm *m, const rb_rows *rows, int threads)
{
    if (!m->slab) return rc_error(RC_EINVAL, "rbm: a loaded model is read-only");
    int rc = check_rows(m, rows);
    if (rc != RC_OK) return rc;
    uint8_t *kidx = value_indices(m, rows);
    if (!kidx) return RC_ENOMEM;
    hidden_all(m, rows, kidx, threads);
    free(kidx);
    return RC_OK;
}

/* ---- prediction ----------------------------------------------------------------------------------- */

float rbm_predict_one(const rbm *m, int32_t u, int32_t i, float default_rating, uint8_t *fallback)
{
    int64_t U = m->variant == RBM_USER ? m->C : m->M, N = m->variant == RBM_USER ? m->M : m->C;
    if (u < 0 || i < 0 || u >= U || i >= N) {
        if (fallback) *fallback = 1;
        return default_rating;
    }
    if (fallback) *fallback = 0;
    int64_t c = m->variant == RBM_USER ? u : i, q = m->variant == RBM_USER ? i : u;
    return rbm_expected(m, q, m->H + (size_t)c * (size_t)m->F);
}

void rbm_predict(const rbm *m, const rb_triples *t, float default_rating, float *out, uint8_t *fallback)
{
    for (int64_t r = 0; r < t->n; r++)
        out[r] = rbm_predict_one(m, t->user[r], t->item[r], default_rating, fallback ? fallback + r : NULL);
}

void rbm_score_items(const rbm *m, int32_t u, float *scores)
{
    size_t F = (size_t)m->F;
    if (m->variant == RBM_USER) {
        const float *h = m->H + (size_t)u * F; // h is (F)
        for (int64_t i = 0; i < m->M; i++) scores[i] = rbm_expected(m, i, h);
    } else {
        for (int64_t i = 0; i < m->C; i++) scores[i] = rbm_expected(m, u, m->H + (size_t)i * F);
    }
}

/* ---- training ------------------------------------------------------------------------------------- */

typedef struct train_ctx {
    rbm *m;
    const rbm_kernels *kn;
    const rb_rows *rows;
    const uint8_t *kidx;     /* (R) value index of each rating */
    const int64_t *order;    /* (C) cases in this epoch's order */
    int64_t b0, nb;          /* the batch: order[b0 .. b0+nb) */
    int cd_t, epoch, mean_field;
    uint64_t seed;
    rbm_cd_scratch **scr;    /* (T) */
    /* the batch's statistics */
    int64_t *boff;           /* (batch+1) case j's ratings are rows boff[j] .. boff[j+1] of vneg */
    float *P0, *PH;          /* (batch, F) p(h | V) and p(h | v~) of each case */
    float *vneg;             /* (R, K) the last reconstruction of each rating (one-hot when sampled) */
    double *se;              /* (batch) reconstruction squared errors */
    /* the batch's ratings grouped by visible unit, in batch order */
    int64_t *uoff;           /* (M+1) */
    int32_t *uj;             /* (R) batch position of the case */
    uint8_t *ukp;            /* (R) value index of the rating */
    int64_t *uneg;           /* (R) row of the rating's reconstruction in vneg */
    /* update */
    float *vel;              /* (P) momentum of W | bv | bh */
    float lr, mom, wd;
} train_ctx;

static void cd_worker(void *vctx, int t, int T)
{
    train_ctx *c = vctx;
    size_t F = (size_t)c->m->F;
    for (int64_t j = t; j < c->nb; j += T) {
        int64_t cs = c->order[c->b0 + j];
        int64_t o = c->rows->offsets[cs], n = c->rows->offsets[cs + 1] - o;
        c->se[j] = 0;
        if (n == 0) { /* no rating: no statistics (p0 = ph, no row) */
            memset(c->P0 + (size_t)j * F, 0, F * sizeof(float));
            memset(c->PH + (size_t)j * F, 0, F * sizeof(float));
            continue;
        }
        rng_t r;
        rbm_case_rng(&r, c->seed, c->epoch, cs);
        rbm_cd_case(c->m, c->rows->col + o, c->kidx + o, n, c->cd_t, c->mean_field, &r, c->scr[t], c->P0 + (size_t)j * F,
                    c->PH + (size_t)j * F, c->vneg + (size_t)c->boff[j] * (size_t)c->m->K, &c->se[j]);
    }
}

/* Group the batch's ratings by visible unit (counting sort; batch order within a unit). */
static void group_by_unit(train_ctx *c)
{
    int64_t M = c->m->M;
    memset(c->uoff, 0, (size_t)(M + 1) * sizeof *c->uoff);
    for (int64_t j = 0; j < c->nb; j++) {
        int64_t cs = c->order[c->b0 + j];
        for (int64_t o = c->rows->offsets[cs]; o < c->rows->offsets[cs + 1]; o++) c->uoff[c->rows->col[o] + 1]++;
    }
    for (int64_t q = 0; q < M; q++) c->uoff[q + 1] += c->uoff[q];
    for (int64_t j = 0; j < c->nb; j++) {
        int64_t cs = c->order[c->b0 + j], o0 = c->rows->offsets[cs];
        for (int64_t o = o0; o < c->rows->offsets[cs + 1]; o++) {
            int64_t e = c->uoff[c->rows->col[o]]++;
            c->uj[e] = (int32_t)j;
            c->ukp[e] = c->kidx[o];
            c->uneg[e] = c->boff[j] + (o - o0);
        }
    }
    for (int64_t q = M; q > 0; q--) c->uoff[q] = c->uoff[q - 1]; /* back to starts */
    c->uoff[0] = 0;
}

/* Visible units [M*t/T, M*(t+1)/T): per unit, vel = mom * vel - lr * wd * W, plus lr / nb times the
 * batch's statistics of the unit, then W += vel; bv alike without decay. */
static void update_worker(void *vctx, int t, int T)
{
    train_ctx *c = vctx;
    const rbm_kernels *kn = c->kn;
    rbm *m = c->m;
    int F = m->F, K = m->K, KF = K * F;
    int64_t q0 = m->M * t / T, q1 = m->M * (t + 1) / T;
    size_t nW = (size_t)m->M * (size_t)KF;
    float *W = m->slab, *bv = m->slab + nW, *vW = c->vel, *vb = c->vel + nW;
    float s = c->lr / (float)c->nb, mom = c->mom, dec = c->lr * c->wd;
    for (int64_t q = q0; q < q1; q++) {
        float *w = W + (size_t)q * (size_t)KF, *v = vW + (size_t)q * (size_t)KF; // w, v are (K,F)
        float gb[RBM_MAX_K] = {0};
        kn->decay(KF, mom, dec, w, v);
        for (int64_t e = c->uoff[q]; e < c->uoff[q + 1]; e++) {
            size_t j = (size_t)c->uj[e];
            kn->axpy(F, s, c->P0 + j * (size_t)F, v + (size_t)c->ukp[e] * (size_t)F);
            gb[c->ukp[e]] += 1;
            const float *vn = c->vneg + (size_t)c->uneg[e] * (size_t)K; // vn is (K)
            for (int k = 0; k < K; k++) {
                if (vn[k] == 0) continue;
                kn->axpy(F, -s * vn[k], c->PH + j * (size_t)F, v + (size_t)k * (size_t)F);
                gb[k] -= vn[k];
            }
        }
        kn->add(KF, v, w);
        float *b = bv + (size_t)q * (size_t)K, *vbq = vb + (size_t)q * (size_t)K; // b, vbq are (K)
        for (int k = 0; k < K; k++) {
            vbq[k] = mom * vbq[k] + s * gb[k];
            b[k] += vbq[k];
        }
    }
}

/* bh: vel = mom * vel + lr / nb * sum over the batch (in order) of p0 - ph; bh += vel. */
static void update_hidden_bias(train_ctx *c)
{
    rbm *m = c->m;
    size_t F = (size_t)m->F, off = (size_t)m->M * (size_t)m->K * (F + 1);
    float *bh = m->slab + off, *v = c->vel + off;
    float s = c->lr / (float)c->nb;
    for (size_t j = 0; j < F; j++) {
        float g = 0;
        for (int64_t b = 0; b < c->nb; b++) g += c->P0[(size_t)b * F + j] - c->PH[(size_t)b * F + j];
        v[j] = c->mom * v[j] + s * g;
        bh[j] += v[j];
    }
}

void rbm_init_visible_biases(rbm *m, const rb_rows *rows)
{
    int K = m->K;
    float *bv = m->slab + (size_t)m->M * (size_t)K * (size_t)m->F; // bv is (M,K), used as counts first
    memset(bv, 0, (size_t)m->M * (size_t)K * sizeof *bv);
    double tot[RBM_MAX_K] = {0};
    for (int64_t r = 0; r < rows->nnz; r++) {
        int k = rbm_value_index(m->values, K, rows->val[r]);
        bv[(size_t)rows->col[r] * (size_t)K + (size_t)k] += 1;
        tot[k] += 1;
    }
    double all = (double)(rows->nnz > 0 ? rows->nnz : 1);
    for (int64_t i = 0; i < m->M; i++) {
        float *b = bv + (size_t)i * (size_t)K;
        double n = 0;
        for (int k = 0; k < K; k++) n += b[k];
        for (int k = 0; k < K; k++) b[k] = (float)log((b[k] + 2.0 * (tot[k] / all) + 1e-6) / (n + 2.0));
    }
}

static int all_finite(const float *x, size_t n);

/* RC_ERANGE: training diverged at epoch `epoch` (what: the value that is not finite). The likely
 * cause: rating values out of scale when their span exceeds FLT_MAX (a float reconstruction error,
 * expected rating minus rating, may then overflow), else the step lr. The message gives the span. */
static int rbm_diverged(const rbm *m, int epoch, double lr, const char *what)
{
    double lo = m->values[0], hi = m->values[m->K - 1];
    if (hi - lo > FLT_MAX)
        return rc_error(RC_ERANGE,
                        "rbm: training diverged at epoch %d (rating values out of scale?): %s; rating values span "
                        "[%g, %g]", epoch, what, lo, hi);
    return rc_error(RC_ERANGE, "rbm: training diverged at epoch %d (lr %g too large?): %s; rating values span [%g, %g]",
                    epoch, lr, what, lo, hi);
}

static int cd_steps_at(const rbm_hparams *hp, int epoch)
{
    int t = hp->cd_steps[0];
    for (int j = 0; j < hp->n_cd; j++)
        if (epoch >= hp->cd_from[j]) t = hp->cd_steps[j];
    return t;
}

int rbm_train(rbm *m, const rbm_hparams *hp, const rb_train_input *in, double *valid_rmse, int *epochs_run)
{
    if (valid_rmse) *valid_rmse = NAN;
    if (epochs_run) *epochs_run = 0;
    int rc = rbm_hparams_check(hp);
    if (rc != RC_OK) return rc;
    if (!m->slab) return rc_error(RC_EINVAL, "rbm: a loaded model cannot be trained");
    if (hp->variant != m->variant || hp->hidden != m->F)
        return rc_error(RC_EINVAL, "rbm: hparams (variant %d, hidden %d) do not match the model (%d, %d)", hp->variant,
                        hp->hidden, m->variant, m->F);
    int64_t U = m->variant == RBM_USER ? m->C : m->M, N = m->variant == RBM_USER ? m->M : m->C;
    if (in->by_user.rows != U || in->by_item.rows != N)
        return rc_error(RC_EINVAL, "rbm: data has %lld users and %lld items, the model %lld and %lld",
                        (long long)in->by_user.rows, (long long)in->by_item.rows, (long long)U, (long long)N);
    const rb_rows *rows = rbm_case_rows(m, in);
    if ((rc = check_rows(m, rows)) != RC_OK) return rc;
    int T = in->threads < 1 ? 1 : in->threads > RBM_MAX_THREADS ? RBM_MAX_THREADS : in->threads;
    int64_t C = m->C, R = rows->nnz, max_n = 0, B = hp->batch < C ? hp->batch : C;
    for (int64_t c = 0; c < C; c++)
        if (rows->offsets[c + 1] - rows->offsets[c] > max_n) max_n = rows->offsets[c + 1] - rows->offsets[c];
    size_t P = rbm_param_count(m), F = (size_t)m->F, Rs = (size_t)(R > 0 ? R : 1);
    train_ctx c;
    memset(&c, 0, sizeof c);
    float *best = NULL, *pred = NULL;
    int64_t *order = NULL;
    uint8_t *kidx = NULL;
    rbm_cd_scratch *scr[RBM_MAX_THREADS] = {0};
    rc = RC_ENOMEM;
    if (!(kidx = value_indices(m, rows))) goto done;
    c.vel = calloc(P, sizeof *c.vel);
    best = malloc(P * sizeof *best);
    order = malloc((size_t)C * sizeof *order);
    pred = malloc((size_t)(in->valid.n > 0 ? in->valid.n : 1) * sizeof *pred);
    c.boff = malloc((size_t)(B + 1) * sizeof *c.boff);
    c.P0 = malloc((size_t)B * F * sizeof *c.P0);
    c.PH = malloc((size_t)B * F * sizeof *c.PH);
    c.se = malloc((size_t)B * sizeof *c.se);
    c.vneg = malloc(Rs * (size_t)m->K * sizeof *c.vneg);
    c.uoff = malloc((size_t)(m->M + 1) * sizeof *c.uoff);
    c.uj = malloc(Rs * sizeof *c.uj);
    c.ukp = malloc(Rs);
    c.uneg = malloc(Rs * sizeof *c.uneg);
    if (!c.vel || !best || !order || !pred || !c.boff || !c.P0 || !c.PH || !c.se || !c.vneg || !c.uoff || !c.uj ||
        !c.ukp || !c.uneg) {
        rc_error(RC_ENOMEM, "rbm: out of memory for training buffers (%zu parameters)", P);
        goto done;
    }
    for (int t = 0; t < T; t++)
        if (!(scr[t] = rbm_cd_scratch_new(m, max_n))) goto done;
    for (int64_t i = 0; i < C; i++) order[i] = i;
    rbm_init_visible_biases(m, rows);
    memcpy(best, m->slab, P * sizeof *best);
    c.m = m;
    c.kn = rbm_kernels_best();
    c.rows = rows;
    c.kidx = kidx;
    c.order = order;
    c.seed = in->seed;
    c.mean_field = hp->mean_field;
    c.scr = scr;
    rng_t r;
    rng_seed(&r, in->seed ^ 0x72626d2d73687566ULL);
    double best_rmse = INFINITY, t_start = clock_mono_s();
    int best_epoch = 0, since = 0, e;
    double lr = hp->lr;
    for (e = 1; e <= hp->epochs; e++) {
        double te = clock_mono_s(), se = 0;
        c.epoch = e;
        c.cd_t = cd_steps_at(hp, e);
        c.lr = (float)lr;
        c.mom = (float)(e <= hp->momentum_epochs ? hp->momentum_start : hp->momentum);
        c.wd = (float)hp->weight_decay;
        rng_shuffle_i64(&r, order, (size_t)C);
        for (int64_t b0 = 0; b0 < C; b0 += B) {
            c.b0 = b0;
            c.nb = C - b0 < B ? C - b0 : B;
            c.boff[0] = 0;
            for (int64_t j = 0; j < c.nb; j++) {
                int64_t cs = order[b0 + j];
                c.boff[j + 1] = c.boff[j] + rows->offsets[cs + 1] - rows->offsets[cs];
            }
            par_run(T, cd_worker, &c);
            group_by_unit(&c);
            par_run(T, update_worker, &c);
            update_hidden_bias(&c);
            for (int64_t j = 0; j < c.nb; j++) se += c.se[j];
        }
        double recon = R > 0 ? sqrt(se / (double)R) : NAN;
        char what[96];
        if (!isfinite(recon)) {
            snprintf(what, sizeof what, "reconstruction error %g", recon);
            rc = rbm_diverged(m, e, lr, what);
            goto done;
        }
        hidden_all(m, rows, kidx, T);
        double vr = NAN;
        if (in->valid.n > 0) {
            rbm_predict(m, &in->valid, in->default_rating, pred, NULL);
            vr = rb_rmse(&in->valid, pred);
            if (!isfinite(vr)) {
                snprintf(what, sizeof what, "valid rmse %g", vr);
                rc = rbm_diverged(m, e, lr, what);
                goto done;
            }
        }
        double dt = clock_mono_s() - te, el = clock_mono_s() - t_start;
        if (in->verbose)
            log_info("rbm epoch %d/%d  CD-%d  lr %.5f  momentum %.2f  recon rmse %.4f  valid rmse %.4f  %.0f ratings/s  ETA %.0fs",
                     e, hp->epochs, c.cd_t, lr, c.mom, recon, vr, (double)R / (dt > 0 ? dt : 1e-9),
                     el / e * (hp->epochs - e));
        if (in->valid.n == 0 || vr < best_rmse) {
            best_rmse = vr;
            best_epoch = e;
            since = 0;
            memcpy(best, m->slab, P * sizeof *best);
        } else if (hp->patience > 0 && ++since >= hp->patience) {
            e++;
            break;
        }
        lr *= hp->lr_decay;
    }
    memcpy(m->slab, best, P * sizeof *best);
    hidden_all(m, rows, kidx, T);
    if (!all_finite(m->slab, P + (size_t)C * F)) { /* what is published: W | bv | bh | H */
        char what[96];
        snprintf(what, sizeof what, "a parameter or hidden probability of the epoch kept (%d) is not finite",
                 best_epoch);
        rc = rbm_diverged(m, best_epoch, hp->lr, what);
        goto done;
    }
    if (in->verbose && in->valid.n > 0) log_info("rbm: kept epoch %d (valid rmse %.4f)", best_epoch, best_rmse);
    if (valid_rmse) *valid_rmse = in->valid.n > 0 ? best_rmse : NAN;
    if (epochs_run) *epochs_run = e - 1;
    rc = RC_OK;
done:
    for (int t = 0; t < T; t++) rbm_cd_scratch_free(scr[t]);
    free(c.vel);
    free(c.boff);
    free(c.P0);
    free(c.PH);
    free(c.se);
    free(c.vneg);
    free(c.uoff);
    free(c.uj);
    free(c.ukp);
    free(c.uneg);
    free(best);
    free(order);
    free(pred);
    free(kidx);
    return rc;
}

/* ---- snapshot ------------------------------------------------------------------------------------- */

int rbm_save(const rbm *m, const rating_base_src *src, const char *root, const char *name, const json_t *extra,
             uint64_t *version)
{
    if (!name) name = m->variant == RBM_USER ? "u-rbm" : "i-rbm";
    int64_t U = m->variant == RBM_USER ? m->C : m->M, N = m->variant == RBM_USER ? m->M : m->C;
    if ((int64_t)idmap_size(src->users) != U || (int64_t)idmap_size(src->items) != N)
        return rc_error(RC_EINVAL, "rbm: vocabularies of %zu users and %zu items, the model has %lld and %lld",
                        idmap_size(src->users), idmap_size(src->items), (long long)U, (long long)N);
    snap_writer *w = NULL;
    json_t *meta = NULL, *rmeta = NULL;
    int rc = snap_writer_open(&w, root, name, 0);
    if (rc != RC_OK) return rc;
    int64_t sw[3] = {m->M, m->K, m->F}, sv[2] = {m->M, m->K}, sh[1] = {m->F}, sH[2] = {m->C, m->F}, sk[1] = {m->K};
    if ((rc = snap_put_tensor(w, "W", SNAP_F32, 3, sw, m->W)) || (rc = snap_put_tensor(w, "bv", SNAP_F32, 2, sv, m->bv)) ||
        (rc = snap_put_tensor(w, "bh", SNAP_F32, 1, sh, m->bh)) || (rc = snap_put_tensor(w, "H", SNAP_F32, 2, sH, m->H)) ||
        (rc = snap_put_tensor(w, "values", SNAP_F32, 1, sk, m->values)))
        goto fail;
    if ((rc = rb_save(w, src, &rmeta)) != RC_OK) goto fail;
    meta = json_object();
    json_t *vals = json_array();
    if (!meta || !vals) {
        json_decref(vals);
        rc = rc_error(RC_ENOMEM, "rbm: out of memory (meta)");
        goto fail;
    }
    for (int k = 0; k < m->K; k++) json_array_append_new(vals, json_real(m->values[k]));
    if (extra && json_is_object(extra)) json_object_update(meta, (json_t *)extra);
    int bad = json_object_set_new(meta, "variant", json_string(m->variant == RBM_USER ? "user" : "item"));
    bad |= json_object_set_new(meta, "hidden", json_integer(m->F));
    bad |= json_object_set_new(meta, "values", vals);
    bad |= json_object_set_new(meta, "n_users", json_integer(U));
    bad |= json_object_set_new(meta, "n_items", json_integer(N));
    bad |= json_object_set(meta, "rating", rmeta);
    if (strcmp(name, "rbm") != 0) bad |= json_object_set_new(meta, "type", json_string("rbm"));
    if (bad) {
        rc = rc_error(RC_ENOMEM, "rbm: out of memory (meta)");
        goto fail;
    }
    if ((rc = snap_set_meta(w, meta)) != RC_OK) goto fail;
    json_decref(meta);
    json_decref(rmeta);
    return snap_writer_publish(w, version);
fail:
    json_decref(meta);
    json_decref(rmeta);
    snap_writer_abort(w);
    return rc;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

int rbm_load(rbm **out, const snap *s)
{
    *out = NULL;
    const json_t *meta = snap_meta(s);
    const char *dir = snap_dir(s);
    rbm *m = calloc(1, sizeof *m);
    if (!m) return rc_error(RC_ENOMEM, "rbm: out of memory");
    int rc;
    const char *var = json_string_value(json_object_get(meta, "variant"));
    const json_t *hj = json_object_get(meta, "hidden");
    if (!var || (strcmp(var, "user") != 0 && strcmp(var, "item") != 0) || !json_is_integer(hj) ||
        json_integer_value(hj) < 1 || json_integer_value(hj) > RBM_MAX_HIDDEN) {
        rc = rc_error(RC_ECORRUPT, "rbm: %s: meta lacks a valid \"variant\" (user|item) or \"hidden\" (1..%d)", dir,
                      RBM_MAX_HIDDEN);
        goto fail;
    }
    m->variant = strcmp(var, "user") == 0 ? RBM_USER : RBM_ITEM;
    m->F = (int)json_integer_value(hj);
    if ((rc = rb_load(&m->base, s)) != RC_OK) goto fail;
    int64_t U = m->base.n_users, N = m->base.n_items;
    m->C = m->variant == RBM_USER ? U : N;
    m->M = m->variant == RBM_USER ? N : U;
    const snap_tensor *tv = snap_tensor_get(s, "values");
    if (!tv || tv->dtype != SNAP_F32 || tv->ndim != 1 || tv->shape[0] < 1 || tv->shape[0] > RBM_MAX_K) {
        rc = rc_error(RC_ECORRUPT, "rbm: %s: tensor values missing or not f32 (K) with 1 <= K <= %d", dir, RBM_MAX_K);
        goto fail;
    }
    m->K = (int)tv->shape[0];
    memcpy(m->values, tv->data, (size_t)m->K * sizeof(float));
    for (int k = 0; k < m->K; k++)
        if (!isfinite(m->values[k]) || (k > 0 && !(m->values[k] > m->values[k - 1]))) {
            rc = rc_error(RC_ECORRUPT, "rbm: %s: tensor values not finite and ascending at %d", dir, k);
            goto fail;
        }
    int64_t sw[3] = {m->M, m->K, m->F}, sv[2] = {m->M, m->K}, sh[1] = {m->F}, sH[2] = {m->C, m->F};
    const snap_tensor *tW = snap_tensor_expect(s, "W", SNAP_F32, 3, sw);
    const snap_tensor *tb = tW ? snap_tensor_expect(s, "bv", SNAP_F32, 2, sv) : NULL;
    const snap_tensor *th = tb ? snap_tensor_expect(s, "bh", SNAP_F32, 1, sh) : NULL;
    const snap_tensor *tH = th ? snap_tensor_expect(s, "H", SNAP_F32, 2, sH) : NULL;
    if (!tH) {
        rc = RC_ECORRUPT;
        goto fail;
    }
    m->W = tW->data;
    m->bv = tb->data;
    m->bh = th->data;
    m->H = tH->data;
    const struct { const char *name; const float *p; size_t n; } ts[] = {
        {"W", m->W, (size_t)m->M * (size_t)m->K * (size_t)m->F},
        {"bv", m->bv, (size_t)m->M * (size_t)m->K},
        {"bh", m->bh, (size_t)m->F},
        {"H", m->H, (size_t)m->C * (size_t)m->F},
    };
    for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++)
        if (!all_finite(ts[j].p, ts[j].n)) {
            rc = rc_error(RC_ECORRUPT, "rbm: %s: tensor %s holds a non-finite value", dir, ts[j].name);
            goto fail;
        }
    /* H holds probabilities: out of [0, 1] it is not what rbm_hidden wrote */
    for (size_t p = 0; p < ts[3].n; p++)
        if (!(m->H[p] >= 0 && m->H[p] <= 1)) {
            rc = rc_error(RC_ECORRUPT, "rbm: %s: tensor H holds %g outside [0, 1]", dir, (double)m->H[p]);
            goto fail;
        }
    m->snap = s;
    *out = m;
    return RC_OK;
fail:
    rbm_free(m);
    return rc;
}

/* ---- model_type ----------------------------------------------------------------------------------- */

static int type_load(void **handle, const snap *s)
{
    rbm *m = NULL;
    int rc = rbm_load(&m, s);
    *handle = m;
    return rc;
}

static void type_free(void *handle) { rbm_free(handle); }

static void rate_predict(const void *vm, int32_t u, const int32_t *items, int B, float *out, uint8_t *fallback,
                         void *sc)
{
    (void)sc;
    const rbm *m = vm;
    for (int b = 0; b < B; b++) out[b] = rbm_predict_one(m, u, items[b], m->base.default_rating, &fallback[b]);
}

static void rec_score(const void *m, int32_t u, float *scores, void *sc)
{
    (void)sc;
    rbm_score_items(m, u, scores);
}

/* Score the most popular items for a few users: touches H, W and bv. */
static int type_warm(const void *handle)
{
    const rbm *m = handle;
    int64_t N = m->base.n_items, U = m->base.n_users;
    for (int32_t u = 0; u < U && u < 4; u++)
        for (int64_t j = 0; j < N && j < 64; j++) (void)rbm_predict_one(m, u, m->base.popular[j], 3, NULL);
    return RC_OK;
}

/* rate and recommend need no scratch (K floats on the stack): rating_base.h's token stands for it */
static const model_rate_ops rbm_rate = {rb_no_scratch_rate, rb_no_scratch_free, rate_predict};
static const model_recommend_ops rbm_recommend = {rb_type_seen, rb_no_scratch_recommend, rb_no_scratch_free,
                                                  rec_score,    NULL,                    NULL};

const model_type rbm_type = {
    .name = "rbm",
    .help = "RBM for collaborative filtering (Salakhutdinov et al. 2007): U-RBM (cases are users) or I-RBM (items)",
    .load = type_load,
    .free = type_free,
    .warm = type_warm,
    .items = rb_type_items,
    .users = rb_type_users,
    .popular = rb_type_popular,
    .rate = &rbm_rate,
    .recommend = &rbm_recommend,
};
