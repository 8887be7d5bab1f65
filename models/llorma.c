/* models/llorma.c - LLORMA (models/llorma.h): hyperparameters, the global model, kernels, local models
 * trained in parallel, prediction (reference and per-user kernels), snapshot I/O, serving. */
#include "models/llorma.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"

/* ---- hyperparameters -------------------------------------------------------------------------- */

static const char *const base_names[] = {"zero", "mean", "global"};

int llorma_base_parse(const char *name)
{
    for (int b = 0; b < 3; b++)
        if (name && strcmp(name, base_names[b]) == 0) return b;
    return -1;
}

const char *llorma_base_name(int base) { return base >= 0 && base < 3 ? base_names[base] : NULL; }

void llorma_hparams_default(llorma_hparams *hp)
{
    /* configs/llorma.json: the settings tuned on ML-1M (split seed 1) */
    *hp = (llorma_hparams){.anchors = 50,
                           .rank = 20,
                           .bandwidth = 3.14,
                           .local_base = LLORMA_BASE_MEAN,
                           .local_biases = 1,
                           .solver = LLORMA_SOLVER_SGD,
                           .local_init = LLORMA_INIT_RANDOM,
                           .epochs = 150,
                           .patience = 5,
                           .lr = 0.01,
                           .lr_decay = 1.0,
                           .reg = 0.02,
                           .init_std = 0.1,
                           .global_rank = 10,
                           .global_epochs = 60,
                           .global_patience = 3,
                           .global_lr = 0.01,
                           .global_lr_decay = 0.95,
                           .global_reg = 0.05,
                           .global_reg_bias = 0.01,
                           .global_init_std = 0.1};
}

#define CHECK_INT(f, lo, hi)                                                                          \
    do {                                                                                              \
        if (hp->f < (lo) || hp->f > (hi))                                                             \
            return rc_error(RC_EINVAL, "llorma: %s %d not in %d..%d", #f, hp->f, (int)(lo), (int)(hi)); \
    } while (0)
#define CHECK_DBL(f, lo, hi)                                                                          \
    do {                                                                                              \
        if (!(hp->f >= (lo) && hp->f <= (hi)))                                                        \
            return rc_error(RC_EINVAL, "llorma: %s %g not in [%g, %g]", #f, hp->f, (double)(lo), (double)(hi)); \
    } while (0)

int llorma_hparams_check(const llorma_hparams *hp)
{
    CHECK_INT(anchors, 1, 100000);
    CHECK_INT(rank, 1, 4096);
    if (!(hp->bandwidth > 0 && hp->bandwidth <= M_PI))
        return rc_error(RC_EINVAL, "llorma: bandwidth %g not in (0, pi]", hp->bandwidth);
    if (!llorma_base_name(hp->local_base))
        return rc_error(RC_EINVAL, "llorma: local_base %d is not zero, mean or global", hp->local_base);
    CHECK_INT(local_biases, 0, 1);
    if (hp->solver != LLORMA_SOLVER_SGD && hp->solver != LLORMA_SOLVER_ALS)
        return rc_error(RC_EINVAL, "llorma: solver %d is not sgd or als", hp->solver);
    if (hp->local_init != LLORMA_INIT_RANDOM && hp->local_init != LLORMA_INIT_GLOBAL)
        return rc_error(RC_EINVAL, "llorma: local_init %d is not random or global", hp->local_init);
    CHECK_INT(epochs, 1, 1000000);
    CHECK_INT(patience, 0, 1000000);
    CHECK_DBL(lr, 1e-12, 10);
    CHECK_DBL(lr_decay, 1e-6, 1);
    CHECK_DBL(reg, 0, 1e6);
    CHECK_DBL(init_std, 0, 100);
    CHECK_INT(global_rank, 1, 4096);
    CHECK_INT(global_epochs, 1, 1000000);
    CHECK_INT(global_patience, 0, 1000000);
    CHECK_DBL(global_lr, 1e-12, 10);
    CHECK_DBL(global_lr_decay, 1e-6, 1);
    CHECK_DBL(global_reg, 0, 1e6);
    CHECK_DBL(global_reg_bias, 0, 1e6);
    CHECK_DBL(global_init_std, 0, 100);
    return RC_OK;
}

json_t *llorma_hparams_to_json(const llorma_hparams *hp)
{
    json_t *j = json_pack("{s:i, s:i, s:f, s:s, s:b, s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f}",
                          "anchors", hp->anchors, "rank", hp->rank, "bandwidth", hp->bandwidth, "local_base",
                          llorma_base_name(hp->local_base) ? llorma_base_name(hp->local_base) : "?", "local_biases",
                          hp->local_biases, "solver", hp->solver == LLORMA_SOLVER_ALS ? "als" : "sgd", "local_init",
                          hp->local_init == LLORMA_INIT_GLOBAL ? "global" : "random", "epochs",
                          hp->epochs, "patience", hp->patience, "lr", hp->lr, "lr_decay", hp->lr_decay, "reg",
                          hp->reg, "init_std", hp->init_std, "global_rank", hp->global_rank, "global_epochs",
                          hp->global_epochs, "global_patience", hp->global_patience, "global_lr", hp->global_lr,
                          "global_lr_decay", hp->global_lr_decay, "global_reg", hp->global_reg, "global_reg_bias",
                          hp->global_reg_bias, "global_init_std", hp->global_init_std);
    if (!j) rc_error(RC_ENOMEM, "llorma: out of memory (hparams)");
    return j;
}

/* ---- the handle ------------------------------------------------------------------------------- */

/* Offsets of the slab's parts in floats; total in *n. */
typedef struct slab_layout {
    size_t mu, bu, bi, P, Q, Ul, Vl, wu, wi, n;
} slab_layout;

static int layout_of(slab_layout *l, int64_t U, int64_t N, int q, int r, int F)
{
    /* every part stays below 2^62 floats: sizes are checked before multiplying */
    if (U < 1 || N < 1 || U > INT32_MAX || N > INT32_MAX || q < 1 || r < 1 || F < 1)
        return rc_error(RC_EINVAL, "llorma: bad sizes U=%lld N=%lld q=%d r=%d F=%d", (long long)U, (long long)N, q, r,
                        F);
    double total = 1.0 + (double)(U + N) * (1.0 + F) + (double)q * (double)(U + N) * (1.0 + r);
    if (total > 1e11) return rc_error(RC_EINVAL, "llorma: %g parameters is too many", total);
    size_t o = 0, u = (size_t)U, n = (size_t)N, Q = (size_t)q;
    l->mu = o, o += 1;
    l->bu = o, o += u;
    l->bi = o, o += n;
    l->P = o, o += u * (size_t)F;
    l->Q = o, o += n * (size_t)F;
    l->Ul = o, o += Q * u * (size_t)r;
    l->Vl = o, o += Q * n * (size_t)r;
    l->wu = o, o += Q * u;
    l->wi = o, o += Q * n;
    l->n = o;
    return RC_OK;
}

llorma *llorma_new(int64_t U, int64_t N, const llorma_hparams *hp, double mean)
{
    slab_layout l;
    if (hp->local_biases < 0 || hp->local_biases > 1) {
        rc_error(RC_EINVAL, "llorma: local_biases %d is not 0 or 1", hp->local_biases);
        return NULL;
    }
    int k = hp->rank + 2 * hp->local_biases;
    if (layout_of(&l, U, N, hp->anchors, k, hp->global_rank)) return NULL;
    if (!llorma_base_name(hp->local_base) || !(hp->bandwidth > 0 && hp->bandwidth <= M_PI)) {
        rc_error(RC_EINVAL, "llorma: bad local_base %d or bandwidth %g", hp->local_base, hp->bandwidth);
        return NULL;
    }
    llorma *m = calloc(1, sizeof *m);
    float *slab = calloc(l.n, sizeof *slab);
    int32_t *anchors = calloc((size_t)hp->anchors * 2, sizeof *anchors);
    if (!m || !slab || !anchors) {
        free(m);
        free(slab);
        free(anchors);
        rc_error(RC_ENOMEM, "llorma: out of memory (%zu parameters)", l.n);
        return NULL;
    }
    m->U = U;
    m->N = N;
    m->q = hp->anchors;
    m->k = k;
    m->local_biases = hp->local_biases;
    m->F = hp->global_rank;
    m->local_base = hp->local_base;
    m->bandwidth = hp->bandwidth;
    m->slab = slab;
    slab[l.mu] = (float)mean;
    m->mu = slab + l.mu;
    m->bu = slab + l.bu;
    m->bi = slab + l.bi;
    m->P = slab + l.P;
    m->Q = slab + l.Q;
    m->Ul = slab + l.Ul;
    m->Vl = slab + l.Vl;
    m->wu = slab + l.wu;
    m->wi = slab + l.wi;
    m->anchors = m->anchors_owned = anchors;
    return m;
}

void llorma_free(llorma *m)
{
    if (!m) return;
    rb_free(&m->base);
    free(m->slab);
    free(m->anchors_owned);
    free(m);
}

int llorma_params_of(llorma *m, llorma_params *out)
{
    memset(out, 0, sizeof *out);
    if (!m || !m->slab) return rc_error(RC_EINVAL, "llorma: a loaded model's parameters are read-only");
    slab_layout l;
    layout_of(&l, m->U, m->N, m->q, m->k, m->F);
    float *s = m->slab;
    *out = (llorma_params){s + l.mu, s + l.bu, s + l.bi, s + l.P, s + l.Q, s + l.Ul, s + l.Vl, s + l.wu, s + l.wi,
                           m->anchors_owned};
    return RC_OK;
}

/* ---- kernels and the pieces of a prediction ------------------------------------------------------ */

double llorma_kernel(double d, double h)
{
    double x = d / h;
    return x < 1.0 ? 1.0 - x * x : 0.0;
}

double llorma_distance(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int k = 0; k < n; k++) {
        ab += (double)a[k] * b[k];
        aa += (double)a[k] * a[k];
        bb += (double)b[k] * b[k];
    }
    if (aa <= 0 || bb <= 0) return M_PI / 2;
    double c = ab / sqrt(aa * bb);
    if (c > 1) c = 1;
    if (c < -1) c = -1;
    return acos(c);
}

/* a . b in float with 8 partial sums (vectorisable; every prediction path uses this one, so rate,
 * recommend and training agree to the bit). */
static inline float dotf(const float *a, const float *b, int n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[k + j] * b[k + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}

float llorma_global_predict(const llorma *m, int32_t u, int32_t i)
{
    return m->mu[0] + m->bu[u] + m->bi[i] + dotf(m->P + (size_t)u * m->F, m->Q + (size_t)i * m->F, m->F);
}

float llorma_base_value(const llorma *m, int32_t u, int32_t i)
{
    switch (m->local_base) {
    case LLORMA_BASE_MEAN: return m->mu[0];
    case LLORMA_BASE_GLOBAL: return llorma_global_predict(m, u, i);
    default: return 0.0f;
    }
}

void llorma_kernel_rows(const llorma *m, int32_t au, int32_t ai, float *wu_row, float *wi_row)
{
    const float *pa = m->P + (size_t)au * m->F, *qa = m->Q + (size_t)ai * m->F;
    for (int64_t u = 0; u < m->U; u++)
        wu_row[u] = (float)llorma_kernel(llorma_distance(pa, m->P + (size_t)u * m->F, m->F), m->bandwidth);
    for (int64_t i = 0; i < m->N; i++)
        wi_row[i] = (float)llorma_kernel(llorma_distance(qa, m->Q + (size_t)i * m->F, m->F), m->bandwidth);
}

/* ---- local models: objective (reference), SGD, ALS ----------------------------------------------- */

double llorma_local_objective(const float *Ut, const float *Vt, int k, const llorma_wr *x, int64_t n, double reg,
                              float *dUt, float *dVt)
{
    double L = 0;
    for (int64_t j = 0; j < n; j++) {
        const float *pu = Ut + (size_t)x[j].u * k, *qi = Vt + (size_t)x[j].i * k; /* (k) each */
        double dot = 0, nu = 0, ni = 0;
        for (int c = 0; c < k; c++) {
            dot += (double)pu[c] * qi[c];
            nu += (double)pu[c] * pu[c];
            ni += (double)qi[c] * qi[c];
        }
        double w = x[j].w, e = (double)x[j].y - dot;
        L += w * (e * e + reg * (nu + ni));
        if (dUt && dVt) {
            float *gu = dUt + (size_t)x[j].u * k, *gi = dVt + (size_t)x[j].i * k;
            for (int c = 0; c < k; c++) {
                /* d/dU of w (y - U.V)^2 = -2 w e V; of w reg |U|^2 = 2 w reg U */
                gu[c] += (float)(w * (-2.0 * e * qi[c] + 2.0 * reg * pu[c]));
                gi[c] += (float)(w * (-2.0 * e * pu[c] + 2.0 * reg * qi[c]));
            }
        }
    }
    return L;
}

double llorma_local_sgd_epoch(float *Ut, float *Vt, int k, int biased, const llorma_wr *x, int64_t n, double lr,
                              double reg)
{
    double sse = 0;
    float lrf = (float)lr, regf = (float)reg;
    for (int64_t j = 0; j < n; j++) {
        float *pu = Ut + (size_t)x[j].u * k, *qi = Vt + (size_t)x[j].i * k; /* (k) each */
        float e = x[j].y - dotf(pu, qi, k), w = x[j].w;
        sse += (double)w * e * e;
        float a = lrf * w;
        for (int c = 0; c < k; c++) {
            float p = pu[c], q = qi[c];
            pu[c] = p + a * (e * q - regf * p);
            qi[c] = q + a * (e * p - regf * q);
        }
        if (biased) { /* the constant columns: Ut[u][k-1] = 1, Vt[i][k-2] = 1 */
            pu[k - 1] = 1.0f;
            qi[k - 2] = 1.0f;
        }
    }
    return sse;
}

/* Solve the k x k system A x = b in place by Cholesky (A symmetric positive definite, lower triangle
 * used; x returned in b). A non-positive pivot (never with reg > 0) is floored at 1e-12. */
static void cholesky_solve(double *A, double *b, int k)
{
    for (int j = 0; j < k; j++) {
        double d = A[j * k + j];
        for (int p = 0; p < j; p++) d -= A[j * k + p] * A[j * k + p];
        d = d > 1e-12 ? sqrt(d) : 1e-6;
        A[j * k + j] = d;
        for (int i = j + 1; i < k; i++) {
            double s = A[i * k + j];
            for (int p = 0; p < j; p++) s -= A[i * k + p] * A[j * k + p];
            A[i * k + j] = s / d;
        }
    }
    for (int i = 0; i < k; i++) { /* L y = b */
        double s = b[i];
        for (int p = 0; p < i; p++) s -= A[i * k + p] * b[p];
        b[i] = s / A[i * k + i];
    }
    for (int i = k - 1; i >= 0; i--) { /* L^T x = y */
        double s = b[i];
        for (int p = i + 1; p < k; p++) s -= A[p * k + i] * b[p];
        b[i] = s / A[i * k + i];
    }
}

void llorma_local_als_half(float *X, const float *Y, int k, int fixed, const int64_t *off, const llorma_wr *x,
                           int64_t A, int by_item, double reg, double *work)
{
    int kf = fixed >= 0 ? k - 1 : k;                          /* free columns */
    double *M = work, *b = work + (size_t)kf * kf, *yf = b + kf; /* M is (kf, kf), b and yf (kf) */
    for (int64_t a = 0; a < A; a++) {
        float *xa = X + (size_t)a * k; /* (k) */
        memset(M, 0, (size_t)kf * kf * sizeof *M);
        memset(b, 0, (size_t)kf * sizeof *b);
        double W = 0;
        for (int64_t j = off[a]; j < off[a + 1]; j++) {
            const float *yb = Y + (size_t)(by_item ? x[j].u : x[j].i) * k; /* (k) */
            double w = x[j].w, z = (double)x[j].y - (fixed >= 0 ? yb[fixed] : 0.0);
            for (int f = 0, c = 0; c < k; c++)
                if (c != fixed) yf[f++] = yb[c];
            W += w;
            for (int f = 0; f < kf; f++) {
                double wy = w * yf[f];
                b[f] += wy * z;
                double *Mf = M + (size_t)f * kf;
                for (int g = 0; g <= f; g++) Mf[g] += wy * yf[g];
            }
        }
        if (W <= 0) { /* no rating: the minimiser of the regulariser alone */
            for (int f = 0; f < kf; f++) xa[fixed >= 0 && f >= fixed ? f + 1 : f] = 0.0f;
            continue;
        }
        for (int f = 0; f < kf; f++) M[f * kf + f] += reg * W;
        cholesky_solve(M, b, kf);
        for (int f = 0; f < kf; f++) xa[fixed >= 0 && f >= fixed ? f + 1 : f] = (float)b[f];
    }
}

/* ---- prediction ----------------------------------------------------------------------------------- */

/* num = sum_t w_t U_t[u].V_t[i], den = sum_t w_t over the anchors in order (float sums: the order and
 * arithmetic of llorma_score_user, so that rate and recommend agree to the bit). */
static float predict_one(const llorma *m, int32_t u, int32_t i)
{
    size_t U = (size_t)m->U, N = (size_t)m->N, r = (size_t)m->k;
    float num = 0, den = 0;
    for (int t = 0; t < m->q; t++) {
        float wut = m->wu[(size_t)t * U + (size_t)u];
        if (wut == 0) continue;
        float w = wut * m->wi[(size_t)t * N + (size_t)i];
        if (!(w > 0)) continue;
        num += w * dotf(m->Ul + ((size_t)t * U + (size_t)u) * r, m->Vl + ((size_t)t * N + (size_t)i) * r, m->k);
        den += w;
    }
    if (den > 0) return llorma_base_value(m, u, i) + num / den;
    return llorma_global_predict(m, u, i);
}

void llorma_predict(const llorma *m, const rb_triples *t, float default_rating, float *out, uint8_t *fallback)
{
    for (int64_t k = 0; k < t->n; k++) {
        int32_t u = t->user[k], i = t->item[k];
        int unknown = u < 0 || i < 0 || u >= m->U || i >= m->N;
        out[k] = unknown ? default_rating : predict_one(m, u, i);
        if (fallback) fallback[k] = (uint8_t)unknown;
    }
}

void llorma_score_user(const llorma *m, int32_t u, float *scores, float *num, float *den)
{
    size_t U = (size_t)m->U, N = (size_t)m->N, r = (size_t)m->k;
    memset(num, 0, N * sizeof *num);
    memset(den, 0, N * sizeof *den);
    for (int t = 0; t < m->q; t++) {
        float wut = m->wu[(size_t)t * U + (size_t)u];
        if (wut == 0) continue;
        const float *pu = m->Ul + ((size_t)t * U + (size_t)u) * r; /* pu is (r) */
        const float *wi = m->wi + (size_t)t * N;                     /* wi is (N) */
        const float *Vt = m->Vl + (size_t)t * N * r;                 /* Vt is (N, r) */
        for (size_t i = 0; i < N; i++) {
            float w = wut * wi[i];
            if (!(w > 0)) continue;
            num[i] += w * dotf(pu, Vt + i * r, m->k);
            den[i] += w;
        }
    }
    for (size_t i = 0; i < N; i++)
        scores[i] = den[i] > 0 ? llorma_base_value(m, u, (int32_t)i) + num[i] / den[i]
                               : llorma_global_predict(m, u, (int32_t)i);
}

/* ---- training: divergence ------------------------------------------------------------------------- */

/* 1 when every x[0..n) is finite. */
static int all_finite(const float *x, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (!isfinite(x[j])) return 0;
    return 1;
}

/* RC_ERANGE: training diverged at epoch `epoch` of `stage` ("" or "global model: "); `what` tells the
 * value that is not finite; the likely cause is the step `step` = lr (NULL for ALS, which has none) or
 * ratings out of scale, so the message gives the training ratings' span. */
static int diverged(const rb_train_input *in, const char *stage, int epoch, const char *step, double lr,
                    const char *what)
{
    const rb_rows *r = &in->by_user;
    float lo = r->nnz > 0 ? r->val[0] : 0.0f, hi = lo;
    for (int64_t j = 1; j < r->nnz; j++) {
        lo = r->val[j] < lo ? r->val[j] : lo;
        hi = r->val[j] > hi ? r->val[j] : hi;
    }
    if (!step)
        return rc_error(RC_ERANGE,
                        "llorma: %straining diverged at epoch %d (ratings out of scale?): %s; training ratings span "
                        "[%g, %g]", stage, epoch, what, (double)lo, (double)hi);
    return rc_error(RC_ERANGE, "llorma: %straining diverged at epoch %d (%s %g too large?): %s; training ratings span "
                    "[%g, %g]", stage, epoch, step, lr, what, (double)lo, (double)hi);
}

/* ---- training: the global model ---------------------------------------------------------------------- */

/* SGD visits the (once shuffled) ratings in this many chunks, in a new order each epoch. */
#define SGD_CHUNKS 256

static void shuffle_i32(rng_t *rng, int32_t *a, int n)
{
    for (int j = n - 1; j > 0; j--) {
        int b = (int)rng_below(rng, (uint64_t)j + 1);
        int32_t t = a[j];
        a[j] = a[b];
        a[b] = t;
    }
}

typedef struct trip {
    int32_t u, i;
    float r;
} trip;

static double valid_rmse_global(const llorma *m, const rb_triples *v, float def)
{
    if (v->n == 0) return NAN;
    double s = 0;
    for (int64_t k = 0; k < v->n; k++) {
        int32_t u = v->user[k], i = v->item[k];
        float p = (u < 0 || i < 0) ? def : llorma_global_predict(m, u, i);
        double e = (double)p - v->rating[k];
        s += e * e;
    }
    return sqrt(s / (double)v->n);
}

/* The global model by SGD over x (R ratings, shuffled once by the caller), visited by chunks in a new
 * order each epoch; the epoch with the best validation RMSE is kept. RC_OK, RC_ENOMEM, RC_ERANGE (a
 * non-finite training or validation error in some epoch). */
static int train_global(llorma *m, const llorma_params *pp, const llorma_hparams *hp, const rb_train_input *in,
                        const trip *x, int64_t R, rng_t *rng, double *valid_rmse, int *epochs_run, int *best_epoch)
{
    size_t U = (size_t)m->U, N = (size_t)m->N, F = (size_t)m->F;
    size_t nb = U + N + (U + N) * F; /* bu | bi | P | Q are contiguous in the slab */
    float *best = malloc(nb * sizeof *best);
    if (!best) return rc_error(RC_ENOMEM, "llorma: out of memory (global model)");
    for (size_t k = 0; k < (U + N) * F; k++) pp->P[k] = (float)(hp->global_init_std * rng_normal(rng));
    memcpy(best, pp->bu, nb * sizeof *best);
    double best_rmse = INFINITY, lr = hp->global_lr;
    int since = 0, ep = 0, best_ep = 0;
    float regf = (float)hp->global_reg, regb = (float)hp->global_reg_bias, mu = pp->mu[0];
    double t0 = clock_mono_s();
    int32_t order[SGD_CHUNKS];
    for (int c = 0; c < SGD_CHUNKS; c++) order[c] = c;
    for (ep = 1; ep <= hp->global_epochs; ep++) {
        shuffle_i32(rng, order, SGD_CHUNKS);
        float a = (float)lr;
        double sse = 0;
        for (int c = 0; c < SGD_CHUNKS; c++) {
            int64_t k0 = R * order[c] / SGD_CHUNKS, k1 = R * (order[c] + 1) / SGD_CHUNKS;
            for (int64_t k = k0; k < k1; k++) {
                int32_t u = x[k].u, i = x[k].i;
                float *p = pp->P + (size_t)u * F, *q = pp->Q + (size_t)i * F;
                float e = x[k].r - (mu + pp->bu[u] + pp->bi[i] + dotf(p, q, (int)F));
                sse += (double)e * e;
                pp->bu[u] += a * (e - regb * pp->bu[u]);
                pp->bi[i] += a * (e - regb * pp->bi[i]);
                for (size_t f = 0; f < F; f++) {
                    float pf = p[f], qf = q[f];
                    p[f] = pf + a * (e * qf - regf * pf);
                    q[f] = qf + a * (e * pf - regf * qf);
                }
            }
        }
        lr *= hp->global_lr_decay;
        double vr = valid_rmse_global(m, &in->valid, in->default_rating);
        if (!isfinite(sse) || (in->valid.n > 0 && !isfinite(vr))) {
            char what[80];
            if (in->valid.n > 0) snprintf(what, sizeof what, "train rmse %g, valid rmse %g", sqrt(sse / (double)R), vr);
            else snprintf(what, sizeof what, "train rmse %g", sqrt(sse / (double)R));
            free(best);
            return diverged(in, "global model: ", ep, "global_lr", a, what);
        }
        if (in->verbose) {
            double el = clock_mono_s() - t0;
            log_info("llorma: global epoch %d/%d train rmse %.4f valid rmse %.4f %.0f ratings/s", ep, hp->global_epochs,
                     sqrt(sse / (double)R), vr, (double)R * ep / (el > 0 ? el : 1e-9));
        }
        if (isnan(vr)) continue; /* no validation data: the last epoch is kept */
        if (vr < best_rmse) {
            best_rmse = vr;
            best_ep = ep;
            since = 0;
            memcpy(best, pp->bu, nb * sizeof *best);
        } else if (hp->global_patience > 0 && ++since >= hp->global_patience) {
            break;
        }
    }
    if (!isinf(best_rmse)) memcpy(pp->bu, best, nb * sizeof *best);
    *valid_rmse = isinf(best_rmse) ? NAN : best_rmse;
    *epochs_run = ep > hp->global_epochs ? hp->global_epochs : ep;
    *best_epoch = isinf(best_rmse) ? *epochs_run : best_ep;
    free(best);
    return RC_OK;
}

/* ---- training: the local models, in parallel ------------------------------------------------------- */

/* The q local models advance one epoch at a time, all of them (on `threads` threads: anchors are
 * independent), then the final model's validation RMSE decides: early stopping on the prediction
 * that is served, not on each local model alone (members trained past their own optimum make a
 * better average). Each anchor draws from its own random stream, and the validation error is summed
 * in VALID_CHUNKS fixed chunks, so the model is the same for any number of threads. */
#define VALID_CHUNKS 64

enum { PH_INIT, PH_EPOCH, PH_VALID, PH_COVER };

typedef struct local_job {
    llorma *m;
    const llorma_params *pp;
    const llorma_hparams *hp;
    const rb_train_input *in;
    const trip *x;            /* (R) training ratings, shuffled once, r replaced by y = r - base(u,i) */
    int64_t R;
    rng_t *streams;           /* (q) one per anchor, advanced by its epochs */
    int phase;
    double lr;                /* this epoch's SGD step */
    double *loss;             /* (q) each anchor's last epoch: SGD, its sum w e^2 (errors before each update);
                               * ALS (which computes no loss), the sum of its factors: finite iff they all are */
    atomic_int next;          /* next anchor (or chunk) to take */
    double chunk_sse[VALID_CHUNKS];
    int64_t chunk_cover[VALID_CHUNKS];
} local_job;

typedef struct local_scratch {
    llorma_wr *x;   /* SGD: one chunk's weighted ratings; ALS: the anchor's weighted ratings by user */
    llorma_wr *xi;  /* ALS: by item */
    int64_t *uoff;  /* ALS: (U+1) */
    int64_t *ioff;  /* ALS: (N+1) */
    double *work;   /* ALS: (k k + 2 k) */
} local_scratch;

static void scratch_release(local_scratch *S)
{
    free(S->x);
    free(S->xi);
    free(S->uoff);
    free(S->ioff);
    free(S->work);
    memset(S, 0, sizeof *S);
}

static int scratch_make(local_scratch *S, const local_job *J)
{
    size_t U = (size_t)J->m->U, N = (size_t)J->m->N, k = (size_t)J->m->k, R = (size_t)J->R;
    memset(S, 0, sizeof *S);
    if (J->hp->solver == LLORMA_SOLVER_ALS) {
        S->x = malloc((R + 1) * sizeof *S->x);
        S->xi = malloc((R + 1) * sizeof *S->xi);
        S->uoff = malloc((U + 1) * sizeof *S->uoff);
        S->ioff = malloc((N + 1) * sizeof *S->ioff);
        S->work = malloc((k * k + 2 * k) * sizeof *S->work);
        if (!S->xi || !S->uoff || !S->ioff || !S->work) S->x = (free(S->x), NULL);
    } else {
        S->x = malloc((R / SGD_CHUNKS + 2) * sizeof *S->x);
    }
    if (!S->x) {
        scratch_release(S);
        return rc_error(RC_ENOMEM, "llorma: out of memory (local model scratch)");
    }
    return RC_OK;
}

/* Kernel rows and initial factors of anchor t. With biases, columns r, r+1 are (b_u, 1) in Ut and
 * (1, c_i) in Vt. */
static void anchor_init(local_job *J, int t)
{
    llorma *m = J->m;
    const llorma_hparams *hp = J->hp;
    size_t U = (size_t)m->U, N = (size_t)m->N, k = (size_t)m->k, r = (size_t)hp->rank, F = (size_t)m->F;
    float *wu = J->pp->wu + (size_t)t * U, *wi = J->pp->wi + (size_t)t * N;          /* (U), (N) */
    float *Ut = J->pp->Ul + (size_t)t * U * k, *Vt = J->pp->Vl + (size_t)t * N * k; /* (U,k), (N,k) */
    rng_t *rng = &J->streams[t];
    llorma_kernel_rows(m, m->anchors[2 * t], m->anchors[2 * t + 1], wu, wi);
    double c = m->local_base == LLORMA_BASE_ZERO ? sqrt(fmax(m->mu[0], 0.0) / (double)r) : 0.0;
    for (size_t u = 0; u < U; u++)
        for (size_t j = 0; j < k; j++)
            Ut[u * k + j] = j < r ? (float)(c + hp->init_std * rng_normal(rng)) : j == r ? 0.0f : 1.0f;
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < k; j++)
            Vt[i * k + j] = j < r ? (float)(c + hp->init_std * rng_normal(rng)) : j == r ? 1.0f : 0.0f;
    if (hp->local_init == LLORMA_INIT_GLOBAL) { /* start from the global model: its factors, its biases */
        size_t c0 = F < r ? F : r;
        for (size_t u = 0; u < U; u++) {
            memcpy(Ut + u * k, m->P + u * F, c0 * sizeof *Ut);
            if (hp->local_biases) Ut[u * k + r] = m->bu[u];
        }
        for (size_t i = 0; i < N; i++) {
            memcpy(Vt + i * k, m->Q + i * F, c0 * sizeof *Vt);
            if (hp->local_biases) Vt[i * k + r + 1] = m->bi[i];
        }
    }
}

/* One epoch of anchor t. SGD: the shared order's chunks in a new random order, each filtered to the
 * ratings with w_t > 0; ALS: a user sweep, then an item sweep, over the ratings with w_t > 0. Returns
 * what local_job.loss keeps. */
static double anchor_epoch(local_job *J, local_scratch *S, int t)
{
    llorma *m = J->m;
    const llorma_hparams *hp = J->hp;
    size_t U = (size_t)m->U, N = (size_t)m->N, k = (size_t)m->k, r = (size_t)hp->rank;
    const float *wu = J->pp->wu + (size_t)t * U, *wi = J->pp->wi + (size_t)t * N;
    float *Ut = J->pp->Ul + (size_t)t * U * k, *Vt = J->pp->Vl + (size_t)t * N * k;
    int biased = hp->local_biases;
    if (hp->solver == LLORMA_SOLVER_SGD) {
        int32_t order[SGD_CHUNKS];
        for (int c = 0; c < SGD_CHUNKS; c++) order[c] = c;
        shuffle_i32(&J->streams[t], order, SGD_CHUNKS);
        double sse = 0;
        for (int c = 0; c < SGD_CHUNKS; c++) {
            int64_t a = J->R * order[c] / SGD_CHUNKS, b = J->R * (order[c] + 1) / SGD_CHUNKS, n = 0;
            for (int64_t j = a; j < b; j++) {
                float w = wu[J->x[j].u] * wi[J->x[j].i];
                if (w > 0) S->x[n++] = (llorma_wr){J->x[j].u, J->x[j].i, J->x[j].r, w};
            }
            sse += llorma_local_sgd_epoch(Ut, Vt, (int)k, biased, S->x, n, J->lr, hp->reg);
        }
        return sse;
    }
    /* ALS: the weighted ratings grouped by user and by item (y = r - base, from the CSR rows) */
    const rb_rows *bu = &J->in->by_user, *bi = &J->in->by_item;
    int64_t n = 0;
    S->uoff[0] = 0;
    for (size_t u = 0; u < U; u++) {
        if (wu[u] > 0)
            for (int64_t j = bu->offsets[u]; j < bu->offsets[u + 1]; j++) {
                int32_t i = bu->col[j];
                float w = wu[u] * wi[i];
                if (w > 0) S->x[n++] = (llorma_wr){(int32_t)u, i, bu->val[j] - llorma_base_value(m, (int32_t)u, i), w};
            }
        S->uoff[u + 1] = n;
    }
    n = 0;
    S->ioff[0] = 0;
    for (size_t i = 0; i < N; i++) {
        if (wi[i] > 0)
            for (int64_t j = bi->offsets[i]; j < bi->offsets[i + 1]; j++) {
                int32_t u = bi->col[j];
                float w = wu[u] * wi[i];
                if (w > 0) S->xi[n++] = (llorma_wr){u, (int32_t)i, bi->val[j] - llorma_base_value(m, u, (int32_t)i), w};
            }
        S->ioff[i + 1] = n;
    }
    llorma_local_als_half(Ut, Vt, (int)k, biased ? (int)r + 1 : -1, S->uoff, S->x, (int64_t)U, 0, hp->reg, S->work);
    llorma_local_als_half(Vt, Ut, (int)k, biased ? (int)r : -1, S->ioff, S->xi, (int64_t)N, 1, hp->reg, S->work);
    double sum = 0; /* of at most 2^62 floats below 2^128: overflows only from a non-finite one */
    for (size_t j = 0; j < U * k; j++) sum += Ut[j];
    for (size_t j = 0; j < N * k; j++) sum += Vt[j];
    return sum;
}

/* Squared error of the model on validation chunk c (unknown user or item: the default rating). */
static double valid_chunk_sse(const local_job *J, int c)
{
    const rb_triples *v = &J->in->valid;
    int64_t a = v->n * c / VALID_CHUNKS, b = v->n * (c + 1) / VALID_CHUNKS;
    double s = 0;
    for (int64_t j = a; j < b; j++) {
        int32_t u = v->user[j], i = v->item[j];
        float p = (u < 0 || i < 0) ? J->in->default_rating : predict_one(J->m, u, i);
        double e = (double)p - v->rating[j];
        s += e * e;
    }
    return s;
}

/* Training pairs of chunk c with some anchor near (W > 0). */
static int64_t cover_chunk(const local_job *J, int c)
{
    const llorma *m = J->m;
    int64_t a = J->R * c / VALID_CHUNKS, b = J->R * (c + 1) / VALID_CHUNKS, n = 0;
    for (int64_t j = a; j < b; j++)
        for (int t = 0; t < m->q; t++)
            if (m->wu[(size_t)t * m->U + J->x[j].u] * m->wi[(size_t)t * m->N + J->x[j].i] > 0) {
                n++;
                break;
            }
    return n;
}

typedef struct worker_arg {
    local_job *J;
    local_scratch *S;
} worker_arg;

static void *local_worker(void *arg)
{
    worker_arg *A = arg;
    local_job *J = A->J;
    int n = J->phase == PH_VALID || J->phase == PH_COVER ? VALID_CHUNKS : J->m->q;
    for (int t; (t = atomic_fetch_add(&J->next, 1)) < n;) {
        switch (J->phase) {
        case PH_INIT: anchor_init(J, t); break;
        case PH_EPOCH: J->loss[t] = anchor_epoch(J, A->S, t); break;
        case PH_VALID: J->chunk_sse[t] = valid_chunk_sse(J, t); break;
        default: J->chunk_cover[t] = cover_chunk(J, t); break;
        }
    }
    return NULL;
}

/* Run one phase on nth threads (the calling thread is one of them; a thread that cannot start leaves
 * its share to the others: the work and the result are the same). */
static void run_phase(local_job *J, int phase, int nth, worker_arg *args, pthread_t *th)
{
    J->phase = phase;
    atomic_store(&J->next, 0);
    int started = 0;
    for (; started < nth - 1; started++)
        if (pthread_create(&th[started], NULL, local_worker, &args[started + 1]) != 0) break;
    local_worker(&args[0]);
    for (int k = 0; k < started; k++) pthread_join(th[k], NULL);
}

static double valid_rmse_now(local_job *J, int nth, worker_arg *args, pthread_t *th)
{
    if (J->in->valid.n == 0) return NAN;
    run_phase(J, PH_VALID, nth, args, th);
    double s = 0;
    for (int c = 0; c < VALID_CHUNKS; c++) s += J->chunk_sse[c];
    return sqrt(s / (double)J->in->valid.n);
}

static int check_input(const llorma *m, const rb_train_input *in)
{
    if (in->by_user.rows != m->U || in->by_item.rows != m->N)
        return rc_error(RC_EINVAL, "llorma: training rows are %lld users x %lld items, the model %lld x %lld",
                        (long long)in->by_user.rows, (long long)in->by_item.rows, (long long)m->U, (long long)m->N);
    if (in->by_user.nnz < 1 || in->by_item.nnz != in->by_user.nnz)
        return rc_error(RC_EINVAL, "llorma: %lld ratings by user, %lld by item (none, or not the same)",
                        (long long)in->by_user.nnz, (long long)in->by_item.nnz);
    for (int64_t k = 0; k < in->valid.n; k++)
        if (in->valid.user[k] >= m->U || in->valid.item[k] >= m->N)
            return rc_error(RC_EINVAL, "llorma: validation rating %lld has an index out of range", (long long)k);
    return RC_OK;
}

int llorma_train(llorma *m, const llorma_hparams *hp, const rb_train_input *in, llorma_train_stats *st)
{
    llorma_train_stats dummy;
    if (!st) st = &dummy;
    *st = (llorma_train_stats){NAN, NAN, 0, 0, 0, 0, 0, 0};
    int rc;
    if ((rc = llorma_hparams_check(hp))) return rc;
    llorma_params pp;
    if ((rc = llorma_params_of(m, &pp))) return rc;
    if (hp->anchors != m->q || hp->rank + 2 * hp->local_biases != m->k || hp->global_rank != m->F ||
        hp->local_biases != m->local_biases)
        return rc_error(RC_EINVAL,
                        "llorma: hparams sizes (q=%d r=%d biases=%d F=%d) differ from the model's (q=%d k=%d "
                        "biases=%d F=%d)",
                        hp->anchors, hp->rank, hp->local_biases, hp->global_rank, m->q, m->k, m->local_biases, m->F);
    if ((rc = check_input(m, in))) return rc;
    m->local_base = hp->local_base;
    m->bandwidth = hp->bandwidth;
    pp.mu[0] = (float)in->mean;
    double t0 = clock_mono_s();
    int64_t R = in->by_user.nnz;
    size_t nl = (size_t)m->q * (size_t)(m->U + m->N) * (size_t)m->k; /* Ul | Vl are contiguous */
    int nth = in->threads < 1 ? 1 : in->threads > 256 ? 256 : in->threads;
    trip *x = malloc((size_t)R * sizeof *x);
    float *best = malloc(nl * sizeof *best);
    local_scratch *S = calloc((size_t)nth, sizeof *S);
    worker_arg *args = calloc((size_t)nth, sizeof *args);
    pthread_t *th = calloc((size_t)nth, sizeof *th);
    local_job J;
    memset(&J, 0, sizeof J);
    J.streams = malloc((size_t)m->q * sizeof *J.streams);
    J.loss = malloc((size_t)m->q * sizeof *J.loss);
    if (!x || !best || !S || !args || !th || !J.streams || !J.loss) {
        rc = rc_error(RC_ENOMEM, "llorma: out of memory");
        goto done;
    }
    for (int64_t u = 0, j = 0; u < m->U; u++)
        for (; j < in->by_user.offsets[u + 1]; j++) x[j] = (trip){(int32_t)u, in->by_user.col[j], in->by_user.val[j]};
    rng_t rng;
    rng_seed(&rng, in->seed);
    for (int64_t j = R - 1; j > 0; j--) { /* one shuffled order for every model's SGD */
        int64_t a = (int64_t)rng_below(&rng, (uint64_t)j + 1);
        trip tmp = x[j];
        x[j] = x[a];
        x[a] = tmp;
    }
    rng_t grng = rng_split(&rng);
    if ((rc = train_global(m, &pp, hp, in, x, R, &grng, &st->global_valid_rmse, &st->global_epochs,
                           &st->global_best_epoch)))
        goto done;
    if (in->verbose)
        log_info("llorma: global model (rank %d): valid rmse %.4f after %d epochs, %.1fs", m->F, st->global_valid_rmse,
                 st->global_epochs, clock_mono_s() - t0);
    /* anchors: q training ratings drawn uniformly, then one random stream per anchor, in anchor order */
    for (int t = 0; t < m->q; t++) {
        int64_t j = (int64_t)rng_below(&rng, (uint64_t)R);
        pp.anchors[2 * t] = x[j].u;
        pp.anchors[2 * t + 1] = x[j].i;
    }
    for (int t = 0; t < m->q; t++) J.streams[t] = rng_split(&rng);
    for (int64_t j = 0; j < R; j++) x[j].r -= llorma_base_value(m, x[j].u, x[j].i); /* y = r - base */

    J.m = m;
    J.pp = &pp;
    J.hp = hp;
    J.in = in;
    J.x = x;
    J.R = R;
    J.lr = hp->lr;
    for (int k = 0; k < nth; k++) {
        if ((rc = scratch_make(&S[k], &J))) goto done;
        args[k] = (worker_arg){&J, &S[k]};
    }
    run_phase(&J, PH_INIT, nth, args, th);
    double best_rmse = valid_rmse_now(&J, nth, args, th), t1 = clock_mono_s();
    /* a diverged epoch names the step it used (ALS has none) */
    const char *step = hp->solver == LLORMA_SOLVER_SGD ? "lr" : NULL;
    char what[96];
    if (in->valid.n > 0 && !isfinite(best_rmse)) {
        snprintf(what, sizeof what, "valid rmse %g of the initial local models", best_rmse);
        rc = diverged(in, "", 0, step, J.lr, what);
        goto done;
    }
    int best_ep = 0, ep;
    memcpy(best, pp.Ul, nl * sizeof *best);
    if (isnan(best_rmse)) best_rmse = INFINITY;
    for (ep = 1; ep <= hp->epochs; ep++) {
        double lr_ep = J.lr;
        run_phase(&J, PH_EPOCH, nth, args, th);
        J.lr *= hp->lr_decay;
        for (int t = 0; t < m->q; t++)
            if (!isfinite(J.loss[t])) {
                snprintf(what, sizeof what, "local model %d %s %g", t, step ? "loss" : "factor sum", J.loss[t]);
                rc = diverged(in, "", ep, step, lr_ep, what);
                goto done;
            }
        double vr = valid_rmse_now(&J, nth, args, th);
        if (in->valid.n > 0 && !isfinite(vr)) {
            snprintf(what, sizeof what, "valid rmse %g", vr);
            rc = diverged(in, "", ep, step, lr_ep, what);
            goto done;
        }
        if (in->verbose) {
            double el = clock_mono_s() - t1;
            log_info("llorma: epoch %d/%d: valid rmse %.4f (best %.4f at epoch %d), %.0f ratings/s, %.0fs, ETA %.0fs", ep,
                     hp->epochs, vr, isinf(best_rmse) ? NAN : best_rmse, best_ep,
                     (double)R * m->q * ep / (el > 0 ? el : 1e-9), el, el / ep * (hp->epochs - ep));
        }
        if (isnan(vr)) continue; /* no validation data: every epoch runs, the last is kept */
        if (vr < best_rmse) {
            best_rmse = vr;
            best_ep = ep;
            memcpy(best, pp.Ul, nl * sizeof *best);
        } else if (hp->patience > 0 && ep - best_ep >= hp->patience) {
            break;
        }
    }
    st->epochs = ep > hp->epochs ? hp->epochs : ep;
    st->best_epoch = in->valid.n > 0 ? best_ep : st->epochs;
    if (in->valid.n > 0) memcpy(pp.Ul, best, nl * sizeof *best);
    /* rows without weight hold nothing the model uses: store them as 0 */
    size_t U = (size_t)m->U, N = (size_t)m->N, k = (size_t)m->k;
    for (int t = 0; t < m->q; t++) {
        for (size_t u = 0; u < U; u++)
            if (pp.wu[(size_t)t * U + u] <= 0) memset(pp.Ul + ((size_t)t * U + u) * k, 0, k * sizeof(float));
        for (size_t i = 0; i < N; i++)
            if (pp.wi[(size_t)t * N + i] <= 0) memset(pp.Vl + ((size_t)t * N + i) * k, 0, k * sizeof(float));
    }
    /* what is published must be finite (every part of the slab: mu .. wi) */
    slab_layout lay;
    layout_of(&lay, m->U, m->N, m->q, m->k, m->F);
    if (!all_finite(m->slab, lay.n)) {
        snprintf(what, sizeof what, "a parameter of the epoch kept (%d) is not finite", st->best_epoch);
        rc = diverged(in, "", st->best_epoch, step, hp->lr, what);
        goto done;
    }
    run_phase(&J, PH_COVER, nth, args, th);
    int64_t covered = 0;
    for (int c = 0; c < VALID_CHUNKS; c++) covered += J.chunk_cover[c];
    st->coverage = (double)covered / (double)R;
    st->valid_rmse = valid_rmse_now(&J, nth, args, th);
    if (in->valid.n > 0 && !isfinite(st->valid_rmse)) {
        snprintf(what, sizeof what, "valid rmse %g of the epoch kept (%d)", st->valid_rmse, st->best_epoch);
        rc = diverged(in, "", st->best_epoch, step, hp->lr, what);
        goto done;
    }
    st->train_s = clock_mono_s() - t0;
    if (in->verbose)
        log_info("llorma: %d local models (rank %d, h %.3f, base %s): valid rmse %.4f (global %.4f) at epoch %d of %d, "
                 "coverage %.3f, %.1fs",
                 m->q, hp->rank, m->bandwidth, llorma_base_name(m->local_base), st->valid_rmse, st->global_valid_rmse,
                 st->best_epoch, st->epochs, st->coverage, st->train_s);
    rc = RC_OK;
done:
    if (S)
        for (int k = 0; k < nth; k++) scratch_release(&S[k]);
    free(S);
    free(args);
    free(th);
    free(J.streams);
    free(J.loss);
    free(x);
    free(best);
    return rc;
}

/* ---- snapshot ---------------------------------------------------------------------------------------- */

int llorma_save(const llorma *m, const llorma_hparams *hp, const rating_base_src *src, const char *root,
                const char *name, const json_t *extra, uint64_t *version)
{
    if (!name) name = "llorma";
    if (version) *version = 0;
    if (!src || !src->users || !src->items || (int64_t)idmap_size(src->users) != m->U ||
        (int64_t)idmap_size(src->items) != m->N)
        return rc_error(RC_EINVAL, "llorma: save: the vocabularies do not have the model's %lld users and %lld items",
                        (long long)m->U, (long long)m->N);
    snap_writer *w = NULL;
    json_t *meta = NULL, *rating = NULL;
    int rc = snap_writer_open(&w, root, name, 0);
    if (rc) return rc;
    int64_t U = m->U, N = m->N, q = m->q, r = m->k, F = m->F;
    struct {
        const char *name;
        snap_dtype dt;
        int nd;
        int64_t shape[3];
        const void *data;
    } t[] = {{"mu", SNAP_F32, 1, {1}, m->mu},          {"bu", SNAP_F32, 1, {U}, m->bu},
             {"bi", SNAP_F32, 1, {N}, m->bi},          {"P", SNAP_F32, 2, {U, F}, m->P},
             {"Q", SNAP_F32, 2, {N, F}, m->Q},         {"Ul", SNAP_F32, 3, {q, U, r}, m->Ul},
             {"Vl", SNAP_F32, 3, {q, N, r}, m->Vl},    {"wu", SNAP_F32, 2, {q, U}, m->wu},
             {"wi", SNAP_F32, 2, {q, N}, m->wi},       {"anchors", SNAP_I32, 2, {q, 2}, m->anchors}};
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
        if ((rc = snap_put_tensor(w, t[k].name, t[k].dt, t[k].nd, t[k].shape, t[k].data))) goto fail;
    if ((rc = rb_save(w, src, &rating))) goto fail;
    json_t *hj = hp ? llorma_hparams_to_json(hp) : json_object();
    meta = json_object();
    if (!meta || !hj) {
        json_decref(hj);
        rc = rc_error(RC_ENOMEM, "llorma: out of memory (meta)");
        goto fail;
    }
    if (extra && json_is_object(extra)) json_object_update(meta, (json_t *)extra);
    if (strcmp(name, "llorma") != 0) json_object_set_new(meta, "type", json_string("llorma"));
    json_object_set_new(meta, "hparams", hj);
    json_object_set_new(meta, "n_users", json_integer(U));
    json_object_set_new(meta, "n_items", json_integer(N));
    json_object_set_new(meta, "anchors", json_integer(q));
    json_object_set_new(meta, "rank", json_integer(r - 2 * m->local_biases));
    json_object_set_new(meta, "local_biases", json_boolean(m->local_biases));
    json_object_set_new(meta, "global_rank", json_integer(F));
    json_object_set_new(meta, "bandwidth", json_real(m->bandwidth));
    json_object_set_new(meta, "local_base", json_string(llorma_base_name(m->local_base)));
    json_object_set_new(meta, "rating", rating);
    rating = NULL;
    if ((rc = snap_set_meta(w, meta))) goto fail;
    json_decref(meta);
    return snap_writer_publish(w, version);
fail:
    json_decref(meta);
    json_decref(rating);
    snap_writer_abort(w);
    return rc;
}

static int meta_int(const json_t *meta, const char *key, int64_t lo, int64_t hi, int64_t *out, const char *dir)
{
    const json_t *j = json_object_get(meta, key);
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi)
        return rc_error(RC_ECORRUPT, "llorma: %s: meta %s is not an integer in %lld..%lld", dir, key, (long long)lo,
                        (long long)hi);
    *out = json_integer_value(j);
    return RC_OK;
}

int llorma_load(llorma **out, const snap *s)
{
    *out = NULL;
    const json_t *meta = snap_meta(s);
    const char *dir = snap_dir(s);
    llorma *m = calloc(1, sizeof *m);
    if (!m) return rc_error(RC_ENOMEM, "llorma: out of memory");
    int64_t U, N, q, r, F;
    int rc;
    if ((rc = meta_int(meta, "n_users", 1, INT32_MAX, &U, dir)) || (rc = meta_int(meta, "n_items", 1, INT32_MAX, &N, dir)) ||
        (rc = meta_int(meta, "anchors", 1, 100000, &q, dir)) || (rc = meta_int(meta, "rank", 1, 4096, &r, dir)) ||
        (rc = meta_int(meta, "global_rank", 1, 4096, &F, dir)))
        goto fail;
    const json_t *hj = json_object_get(meta, "bandwidth"), *bj = json_object_get(meta, "local_base");
    m->local_base = llorma_base_parse(json_string_value(bj));
    if (!json_is_number(hj) || !(json_number_value(hj) > 0 && json_number_value(hj) <= M_PI) || m->local_base < 0) {
        rc = rc_error(RC_ECORRUPT, "llorma: %s: meta bandwidth or local_base missing or out of range", dir);
        goto fail;
    }
    m->bandwidth = json_number_value(hj);
    const json_t *lbj = json_object_get(meta, "local_biases");
    if (lbj && !json_is_boolean(lbj)) {
        rc = rc_error(RC_ECORRUPT, "llorma: %s: meta local_biases is not a boolean", dir);
        goto fail;
    }
    m->local_biases = json_is_true(lbj);
    r += 2 * m->local_biases; /* columns of a local row */
    m->U = U, m->N = N, m->q = (int)q, m->k = (int)r, m->F = (int)F;
    struct {
        const char *name;
        snap_dtype dt;
        int nd;
        int64_t shape[3];
        const void **dst;
    } t[] = {{"mu", SNAP_F32, 1, {1}, (const void **)&m->mu},        {"bu", SNAP_F32, 1, {U}, (const void **)&m->bu},
             {"bi", SNAP_F32, 1, {N}, (const void **)&m->bi},        {"P", SNAP_F32, 2, {U, F}, (const void **)&m->P},
             {"Q", SNAP_F32, 2, {N, F}, (const void **)&m->Q},       {"Ul", SNAP_F32, 3, {q, U, r}, (const void **)&m->Ul},
             {"Vl", SNAP_F32, 3, {q, N, r}, (const void **)&m->Vl},  {"wu", SNAP_F32, 2, {q, U}, (const void **)&m->wu},
             {"wi", SNAP_F32, 2, {q, N}, (const void **)&m->wi},
             {"anchors", SNAP_I32, 2, {q, 2}, (const void **)&m->anchors}};
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        const snap_tensor *st = snap_tensor_expect(s, t[k].name, t[k].dt, t[k].nd, t[k].shape);
        if (!st) {
            rc = RC_ECORRUPT;
            goto fail;
        }
        *t[k].dst = st->data;
    }
    for (int64_t k = 0; k < q * U; k++)
        if (!(m->wu[k] >= 0 && m->wu[k] <= 1)) {
            rc = rc_error(RC_ECORRUPT, "llorma: %s: tensor wu holds %g at %lld (outside [0,1])", dir, (double)m->wu[k],
                          (long long)k);
            goto fail;
        }
    for (int64_t k = 0; k < q * N; k++)
        if (!(m->wi[k] >= 0 && m->wi[k] <= 1)) {
            rc = rc_error(RC_ECORRUPT, "llorma: %s: tensor wi holds %g at %lld (outside [0,1])", dir, (double)m->wi[k],
                          (long long)k);
            goto fail;
        }
    for (int64_t t2 = 0; t2 < q; t2++)
        if (m->anchors[2 * t2] < 0 || m->anchors[2 * t2] >= U || m->anchors[2 * t2 + 1] < 0 ||
            m->anchors[2 * t2 + 1] >= N) {
            rc = rc_error(RC_ECORRUPT, "llorma: %s: anchor %lld is out of range", dir, (long long)t2);
            goto fail;
        }
    if ((rc = rb_load(&m->base, s))) goto fail;
    if (m->base.n_users != U || m->base.n_items != N) {
        rc = rc_error(RC_ECORRUPT, "llorma: %s: vocabularies hold %lld users and %lld items, meta says %lld and %lld",
                      dir, (long long)m->base.n_users, (long long)m->base.n_items, (long long)U, (long long)N);
        goto fail;
    }
    m->snap = s;
    *out = m;
    return RC_OK;
fail:
    llorma_free(m);
    return rc;
}

/* ---- model_type ------------------------------------------------------------------------------------ */

static int type_load(void **handle, const snap *s)
{
    llorma *m = NULL;
    int rc = llorma_load(&m, s);
    *handle = m;
    return rc;
}

static void type_free(void *handle) { llorma_free(handle); }

static void rate_predict(const void *mv, int32_t u, const int32_t *items, int B, float *out, uint8_t *fallback,
                         void *sc)
{
    (void)sc;
    const llorma *m = mv;
    for (int b = 0; b < B; b++) {
        int32_t i = items[b];
        int unknown = u < 0 || i < 0 || u >= m->U || i >= m->N;
        out[b] = unknown ? m->base.default_rating : predict_one(m, u, i);
        fallback[b] = (uint8_t)unknown;
    }
}

/* rate needs no scratch: rating_base.h's token stands for it */
static const model_rate_ops llorma_rate = {rb_no_scratch_rate, rb_no_scratch_free, rate_predict};

/* recommend: scratch is num and den, (N) each, allocated once per scratch. */
static void *rec_scratch_new(const void *mv)
{
    const llorma *m = mv;
    float *sc = malloc(2 * (size_t)m->N * sizeof *sc);
    if (!sc) rc_error(RC_ENOMEM, "llorma: out of memory (scratch)");
    return sc;
}
static void rec_scratch_free(void *sc) { free(sc); }
static void rec_score(const void *mv, int32_t u, float *scores, void *sc)
{
    const llorma *m = mv;
    float *num = sc, *den = num + m->N;
    llorma_score_user(m, u, scores, num, den);
}

static const model_recommend_ops llorma_recommend = {rb_type_seen, rec_scratch_new, rec_scratch_free, rec_score,
                                                     NULL,         NULL};

/* Score a few users (the first ones and some spread over the vocabulary): touches the factors. */
static int type_warm(const void *handle)
{
    const llorma *m = handle;
    float *buf = malloc(3 * (size_t)m->N * sizeof *buf);
    if (!buf) return rc_error(RC_ENOMEM, "llorma: out of memory (warm-up)");
    for (int k = 0; k < 4; k++) llorma_score_user(m, (int32_t)((m->U - 1) * k / 3), buf, buf + m->N, buf + 2 * m->N);
    free(buf);
    return RC_OK;
}

const model_type llorma_type = {
    .name = "llorma",
    .help = "LLORMA: kernel-weighted local low-rank models around anchor points (Lee et al. 2013), ratings",
    .load = type_load,
    .free = type_free,
    .warm = type_warm,
    .items = rb_type_items,
    .users = rb_type_users,
    .popular = rb_type_popular,
    .rate = &llorma_rate,
    .recommend = &llorma_recommend,
};
