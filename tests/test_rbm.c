/* tests/test_rbm.c - models/rbm: the conditionals and the free energy against naive references that
 * enumerate states, contrastive divergence against the exact gradient of the log-likelihood on a tiny
 * RBM (long chains: the exact gradient; one step: the exact CD-1 expectation), the exact gradient
 * against finite differences, hidden probabilities and predictions against naive formulas in both
 * orientations, rating values, determinism for a seed, learning a synthetic low-rank rating matrix
 * better than the global mean, the snapshot round trip with rate and recommend agreeing, and refused
 * snapshots. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"
#include "core/rng.h"
#include "core/snap.h"
#include "models/rbm.h"
#include "tests/testlib.h"

/* ---- a tiny RBM and naive references in double ------------------------------------------------------- */

#define TM 3 /* visible units of the tiny case */
#define TK 3
#define TF 2

static rbm *tiny_model(uint64_t seed)
{
    const float values[TK] = {1, 2, 3};
    rbm *m = rbm_new(RBM_USER, 1, TM, TK, values, TF, 0.8, seed);
    ASSERT(m);
    float *s = rbm_slab(m);
    rng_t r;
    rng_seed(&r, seed + 99);
    size_t nW = (size_t)TM * TK * TF;
    for (size_t p = nW; p < rbm_param_count(m); p++) s[p] = (float)(0.7 * rng_normal(&r)); /* bv, bh */
    return m;
}

/* Parameters of m as doubles, so the references can perturb them. */
typedef struct dparams {
    double W[TM][TK][TF], bv[TM][TK], bh[TF];
} dparams;

static void to_double(const rbm *m, dparams *d)
{
    for (int i = 0; i < TM; i++)
        for (int k = 0; k < TK; k++) {
            for (int j = 0; j < TF; j++) d->W[i][k][j] = m->W[(i * TK + k) * TF + j];
            d->bv[i][k] = m->bv[i * TK + k];
        }
    for (int j = 0; j < TF; j++) d->bh[j] = m->bh[j];
}

/* E(v, h) with v (TM) value indices, h (TF) in {0,1}: the definition in models/rbm.h. */
static double energy(const dparams *d, const int *v, const int *h)
{
    double e = 0;
    for (int i = 0; i < TM; i++) {
        e -= d->bv[i][v[i]];
        for (int j = 0; j < TF; j++) e -= d->W[i][v[i]][j] * h[j];
    }
    for (int j = 0; j < TF; j++) e -= d->bh[j] * h[j];
    return e;
}

static void decode_v(int code, int *v)
{
    for (int i = 0; i < TM; i++) {
        v[i] = code % TK;
        code /= TK;
    }
}
static void decode_h(int code, int *h)
{
    for (int j = 0; j < TF; j++) h[j] = (code >> j) & 1;
}
#define NV 27 /* TK^TM */
#define NH 4  /* 2^TF */

/* log sum over every (v, h) of exp(-E): log Z. */
static double log_z(const dparams *d)
{
    double s = 0;
    for (int a = 0; a < NV; a++)
        for (int b = 0; b < NH; b++) {
            int v[TM], h[TF];
            decode_v(a, v);
            decode_h(b, h);
            s += exp(-energy(d, v, h));
        }
    return log(s);
}

/* log p(V) = log sum_h exp(-E(V,h)) - log Z. */
static double log_lik(const dparams *d, const int *V)
{
    double s = 0;
    for (int b = 0; b < NH; b++) {
        int h[TF];
        decode_h(b, h);
        s += exp(-energy(d, V, h));
    }
    return log(s) - log_z(d);
}

static double sigm(double x) { return 1 / (1 + exp(-x)); }

/* p(h_j = 1 | v) by the formula, in double. */
static void hid_prob(const dparams *d, const int *v, double *p)
{
    for (int j = 0; j < TF; j++) {
        double x = d->bh[j];
        for (int i = 0; i < TM; i++) x += d->W[i][v[i]][j];
        p[j] = sigm(x);
    }
}

/* The exact gradient of log p(V) (dW, dbv, dbh in the slab's layout): <v h>_data - <v h>_model, the
 * model expectation by enumerating every v with p(v) = sum_h exp(-E(v,h)) / Z. */
static void exact_grad(const dparams *d, const int *V, double *g)
{
    size_t nW = (size_t)TM * TK * TF, nb = (size_t)TM * TK;
    memset(g, 0, sizeof(double) * (nW + nb + TF));
    double p[TF];
    hid_prob(d, V, p);
    for (int i = 0; i < TM; i++) {
        for (int j = 0; j < TF; j++) g[(i * TK + V[i]) * TF + j] += p[j];
        g[nW + (size_t)(i * TK + V[i])] += 1;
    }
    for (int j = 0; j < TF; j++) g[nW + nb + (size_t)j] += p[j];
    double lz = log_z(d);
    for (int a = 0; a < NV; a++) {
        int v[TM];
        decode_v(a, v);
        double pv = 0;
        for (int b = 0; b < NH; b++) {
            int h[TF];
            decode_h(b, h);
            pv += exp(-energy(d, v, h) - lz);
        }
        hid_prob(d, v, p);
        for (int i = 0; i < TM; i++) {
            for (int j = 0; j < TF; j++) g[(i * TK + v[i]) * TF + j] -= pv * p[j];
            g[nW + (size_t)(i * TK + v[i])] -= pv;
        }
        for (int j = 0; j < TF; j++) g[nW + nb + (size_t)j] -= pv * p[j];
    }
}

/* The exact expectation of the CD-1 statistics: data term minus sum over h0 ~ p(h|V), v1 ~ p(v|h0) of
 * v1 p(h|v1). */
static void exact_cd1(const dparams *d, const int *V, double *g)
{
    size_t nW = (size_t)TM * TK * TF, nb = (size_t)TM * TK;
    memset(g, 0, sizeof(double) * (nW + nb + TF));
    double p0[TF], p[TF];
    hid_prob(d, V, p0);
    for (int i = 0; i < TM; i++) {
        for (int j = 0; j < TF; j++) g[(i * TK + V[i]) * TF + j] += p0[j];
        g[nW + (size_t)(i * TK + V[i])] += 1;
    }
    for (int j = 0; j < TF; j++) g[nW + nb + (size_t)j] += p0[j];
    for (int b = 0; b < NH; b++) {
        int h[TF];
        decode_h(b, h);
        double ph = 1;
        for (int j = 0; j < TF; j++) ph *= h[j] ? p0[j] : 1 - p0[j];
        /* p(v1 | h0) factorises over units: softmax of bv + W h */
        double pk[TM][TK];
        for (int i = 0; i < TM; i++) {
            double z = 0;
            for (int k = 0; k < TK; k++) {
                double l = d->bv[i][k];
                for (int j = 0; j < TF; j++) l += d->W[i][k][j] * h[j];
                pk[i][k] = exp(l);
                z += pk[i][k];
            }
            for (int k = 0; k < TK; k++) pk[i][k] /= z;
        }
        for (int a = 0; a < NV; a++) {
            int v[TM];
            decode_v(a, v);
            double pv = ph;
            for (int i = 0; i < TM; i++) pv *= pk[i][v[i]];
            hid_prob(d, v, p);
            for (int i = 0; i < TM; i++) {
                for (int j = 0; j < TF; j++) g[(i * TK + v[i]) * TF + j] -= pv * p[j];
                g[nW + (size_t)(i * TK + v[i])] -= pv;
            }
            for (int j = 0; j < TF; j++) g[nW + nb + (size_t)j] -= pv * p[j];
        }
    }
}

/* The exact expectation of mean-field CD-1: data term minus sum over h0 ~ p(h|V) of pv (h0) p(h | pv)
 * with pv the visible probabilities given h0 and p(h | pv) = sigmoid(bh + sum_i sum_k pv_ik W_ik). */
static void exact_cd1_mf(const dparams *d, const int *V, double *g)
{
    size_t nW = (size_t)TM * TK * TF, nb = (size_t)TM * TK;
    memset(g, 0, sizeof(double) * (nW + nb + TF));
    double p0[TF];
    hid_prob(d, V, p0);
    for (int i = 0; i < TM; i++) {
        for (int j = 0; j < TF; j++) g[(i * TK + V[i]) * TF + j] += p0[j];
        g[nW + (size_t)(i * TK + V[i])] += 1;
    }
    for (int j = 0; j < TF; j++) g[nW + nb + (size_t)j] += p0[j];
    for (int b = 0; b < NH; b++) {
        int h[TF];
        decode_h(b, h);
        double w = 1;
        for (int j = 0; j < TF; j++) w *= h[j] ? p0[j] : 1 - p0[j];
        double pk[TM][TK], x[TF];
        for (int j = 0; j < TF; j++) x[j] = d->bh[j];
        for (int i = 0; i < TM; i++) {
            double z = 0;
            for (int k = 0; k < TK; k++) {
                double l = d->bv[i][k];
                for (int j = 0; j < TF; j++) l += d->W[i][k][j] * h[j];
                pk[i][k] = exp(l);
                z += pk[i][k];
            }
            for (int k = 0; k < TK; k++) {
                pk[i][k] /= z;
                for (int j = 0; j < TF; j++) x[j] += pk[i][k] * d->W[i][k][j];
            }
        }
        for (int i = 0; i < TM; i++)
            for (int k = 0; k < TK; k++) {
                for (int j = 0; j < TF; j++) g[(i * TK + k) * TF + j] -= w * pk[i][k] * sigm(x[j]);
                g[nW + (size_t)(i * TK + k)] -= w * pk[i][k];
            }
        for (int j = 0; j < TF; j++) g[nW + nb + (size_t)j] -= w * sigm(x[j]);
    }
}

static const int32_t T_UNITS[TM] = {0, 1, 2};
static const uint8_t T_K[TM] = {2, 0, 1};

TEST(rbm_conditionals_match_naive)
{
    rbm *m = tiny_model(7);
    dparams d;
    to_double(m, &d);
    int V[TM] = {T_K[0], T_K[1], T_K[2]};
    /* p(h | V) by enumerating h against the sigmoid kernel */
    float x[TF], p[TF];
    rbm_hidden_forward(m, T_UNITS, T_K, TM, x, p);
    double ph1[TF] = {0}, zh = 0;
    for (int b = 0; b < NH; b++) {
        int h[TF];
        decode_h(b, h);
        double w = exp(-energy(&d, V, h));
        zh += w;
        for (int j = 0; j < TF; j++) ph1[j] += h[j] * w;
    }
    for (int j = 0; j < TF; j++) ASSERT_NEAR(p[j], ph1[j] / zh, 1e-6);
    /* free energy: -log sum_h exp(-E(V, h)) */
    ASSERT_NEAR(rbm_free_energy(m, T_UNITS, T_K, TM), -log(zh), 1e-5);
    /* p(v_q | h) by enumerating v_q with the other units fixed, for every h and q */
    for (int b = 0; b < NH; b++) {
        int h[TF];
        decode_h(b, h);
        float hf[TF];
        for (int j = 0; j < TF; j++) hf[j] = (float)h[j];
        for (int q = 0; q < TM; q++) {
            float pv[TK];
            rbm_visible_probs(m, q, hf, pv);
            double w[TK], z = 0, ex = 0;
            for (int k = 0; k < TK; k++) {
                int v[TM] = {V[0], V[1], V[2]};
                v[q] = k;
                w[k] = exp(-energy(&d, v, h));
                z += w[k];
                ex += w[k] / 1.0 * m->values[k];
            }
            for (int k = 0; k < TK; k++) ASSERT_NEAR(pv[k], w[k] / z, 1e-6);
            ASSERT_NEAR(rbm_expected(m, q, hf), ex / z, 1e-5);
        }
    }
    rbm_free(m);
}

TEST(rbm_exact_gradient_matches_finite_differences)
{
    rbm *m = tiny_model(11);
    dparams d;
    to_double(m, &d);
    int V[TM] = {T_K[0], T_K[1], T_K[2]};
    size_t nW = (size_t)TM * TK * TF, nb = (size_t)TM * TK, P = nW + nb + TF;
    double g[TM * TK * TF + TM * TK + TF];
    exact_grad(&d, V, g);
    double *slots[TM * TK * TF + TM * TK + TF];
    size_t p = 0;
    for (int i = 0; i < TM; i++)
        for (int k = 0; k < TK; k++)
            for (int j = 0; j < TF; j++) slots[p++] = &d.W[i][k][j];
    for (int i = 0; i < TM; i++)
        for (int k = 0; k < TK; k++) slots[p++] = &d.bv[i][k];
    for (int j = 0; j < TF; j++) slots[p++] = &d.bh[j];
    ASSERT_EQ(p, P);
    const double eps = 1e-5;
    for (p = 0; p < P; p++) {
        double keep = *slots[p];
        *slots[p] = keep + eps;
        double lp = log_lik(&d, V);
        *slots[p] = keep - eps;
        double lm = log_lik(&d, V);
        *slots[p] = keep;
        ASSERT_NEAR(g[p], (lp - lm) / (2 * eps), 1e-6);
    }
    rbm_free(m);
}

/* Mean of the CD gradient (rbm_cd_case's statistics through rbm_cd_grad) over `runs` chains of t
 * steps, in double. */
static void mean_cd(const rbm *m, int t, int mean_field, int runs, uint64_t seed, double *mean)
{
    size_t P = rbm_param_count(m);
    float *g = calloc(P, sizeof *g), p0[TF], ph[TF], vneg[TM * TK];
    rbm_cd_scratch *s = rbm_cd_scratch_new(m, TM);
    ASSERT(g && s);
    memset(mean, 0, P * sizeof *mean);
    rng_t r;
    rng_seed(&r, seed);
    for (int run = 0; run < runs; run++) {
        memset(g, 0, P * sizeof *g);
        rbm_cd_case(m, T_UNITS, T_K, TM, t, mean_field, &r, s, p0, ph, vneg, NULL);
        rbm_cd_grad(m, T_UNITS, T_K, TM, p0, ph, vneg, g);
        for (size_t p = 0; p < P; p++) mean[p] += g[p];
    }
    for (size_t p = 0; p < P; p++) mean[p] /= runs;
    free(g);
    rbm_cd_scratch_free(s);
}

TEST(rbm_cd_matches_exact_gradient)
{
    rbm *m = tiny_model(3);
    dparams d;
    to_double(m, &d);
    int V[TM] = {T_K[0], T_K[1], T_K[2]};
    size_t P = rbm_param_count(m);
    double g[TM * TK * TF + TM * TK + TF], cd[TM * TK * TF + TM * TK + TF];
    /* a long chain samples the model distribution: CD-t tends to the exact gradient (statistics in
     * [-1, 1], 40000 chains: standard error below 0.005) */
    exact_grad(&d, V, g);
    mean_cd(m, 30, 0, 40000, 5, cd);
    double gmax = 0;
    for (size_t p = 0; p < P; p++) {
        ASSERT_NEAR(cd[p], g[p], 0.025);
        gmax = fmax(gmax, fabs(g[p]));
    }
    ASSERT(gmax > 0.1); /* the check is not vacuous */
    /* one step: the exact expectation of CD-1 (which differs from the gradient) */
    double c1[TM * TK * TF + TM * TK + TF];
    exact_cd1(&d, V, c1);
    mean_cd(m, 1, 0, 40000, 6, cd);
    double diff = 0;
    for (size_t p = 0; p < P; p++) {
        ASSERT_NEAR(cd[p], c1[p], 0.025);
        diff = fmax(diff, fabs(c1[p] - g[p]));
    }
    ASSERT(diff > 0.03); /* CD-1 is biased here: the two checks test different things */
    /* mean-field reconstructions: the only noise left is the hidden sample */
    exact_cd1_mf(&d, V, c1);
    mean_cd(m, 1, 1, 20000, 7, cd);
    for (size_t p = 0; p < P; p++) ASSERT_NEAR(cd[p], c1[p], 0.02);
    rbm_free(m);
}

TEST(rbm_values_and_indices)
{
    const float val[] = {4, 3.5f, 5, 0.5f, 4, 3.5f, 1};
    int64_t off[2] = {0, 7};
    int32_t col[7] = {0, 1, 2, 3, 4, 5, 6};
    rb_rows rows = {1, 7, off, col, val};
    float v[RBM_MAX_K];
    int K = 0;
    ASSERT_OK(rbm_values(&rows, v, &K));
    ASSERT_EQ(K, 5);
    const float want[5] = {0.5f, 1, 3.5f, 4, 5};
    for (int k = 0; k < K; k++) ASSERT_NEAR(v[k], want[k], 0);
    ASSERT_EQ(rbm_value_index(v, K, 3.5f), 2);
    ASSERT_EQ(rbm_value_index(v, K, 4.4f), 3); /* nearest */
    ASSERT_EQ(rbm_value_index(v, K, 9), 4);
    float many[40];
    int32_t col40[40];
    for (int i = 0; i < 40; i++) {
        many[i] = (float)i;
        col40[i] = i;
    }
    int64_t off40[2] = {0, 40};
    rb_rows r40 = {1, 40, off40, col40, many};
    ASSERT_RC(rbm_values(&r40, v, &K), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "distinct");
    ASSERT(!rbm_new(RBM_USER, 2, 2, 2, (const float[]){2, 1}, 3, 0.1, 1)); /* not ascending */
}

/* ---- synthetic rating data ------------------------------------------------------------------------- */

typedef struct synth {
    int U, N;
    int64_t n_train;
    int32_t *tu, *ti; /* training triples */
    float *tr;
    int64_t n_test;
    int32_t *su, *si; /* held out */
    float *sr;
    int64_t *uoff, *ioff; /* CSR by user (U+1) and by item (N+1) */
    int32_t *ucol, *icol;
    float *uval, *ival;
} synth;

/* A rank-2 rating matrix: r = clamp(round(3.5 + 1.2 (a_u . b_i) + noise)), ~30% observed, 15% of the
 * observed ratings held out. Every user and item keeps a training rating. */
static void synth_make(synth *d, int U, int N, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->U = U;
    d->N = N;
    rng_t r;
    rng_seed(&r, seed);
    double *a = malloc(sizeof(double) * (size_t)U * 2), *b = malloc(sizeof(double) * (size_t)N * 2);
    for (int i = 0; i < U * 2; i++) a[i] = rng_normal(&r);
    for (int i = 0; i < N * 2; i++) b[i] = rng_normal(&r);
    size_t cap = (size_t)U * (size_t)N;
    d->tu = malloc(cap * 4);
    d->ti = malloc(cap * 4);
    d->tr = malloc(cap * 4);
    d->su = malloc(cap * 4);
    d->si = malloc(cap * 4);
    d->sr = malloc(cap * 4);
    for (int u = 0; u < U; u++)
        for (int i = 0; i < N; i++) {
            int forced = i == u % N || u == i % U;
            if (!forced && rng_uniform(&r) > 0.3) continue;
            double x = 3.5 + 0.8 * (a[2 * u] * b[2 * i] + a[2 * u + 1] * b[2 * i + 1]) + 0.3 * rng_normal(&r);
            float v = (float)fmin(5, fmax(1, round(x)));
            if (!forced && rng_uniform(&r) < 0.15) {
                d->su[d->n_test] = u;
                d->si[d->n_test] = i;
                d->sr[d->n_test++] = v;
            } else {
                d->tu[d->n_train] = u;
                d->ti[d->n_train] = i;
                d->tr[d->n_train++] = v;
            }
        }
    free(a);
    free(b);
    /* CSR both ways (triples are in (u, i) order: by user they are sorted already) */
    d->uoff = calloc((size_t)U + 1, 8);
    d->ioff = calloc((size_t)N + 1, 8);
    d->ucol = malloc((size_t)d->n_train * 4);
    d->icol = malloc((size_t)d->n_train * 4);
    d->uval = malloc((size_t)d->n_train * 4);
    d->ival = malloc((size_t)d->n_train * 4);
    for (int64_t t = 0; t < d->n_train; t++) {
        d->uoff[d->tu[t] + 1]++;
        d->ioff[d->ti[t] + 1]++;
    }
    for (int u = 0; u < U; u++) d->uoff[u + 1] += d->uoff[u];
    for (int i = 0; i < N; i++) d->ioff[i + 1] += d->ioff[i];
    int64_t *fill = malloc(sizeof(int64_t) * (size_t)N);
    memcpy(fill, d->ioff, sizeof(int64_t) * (size_t)N);
    for (int64_t t = 0; t < d->n_train; t++) {
        d->ucol[t] = d->ti[t];
        d->uval[t] = d->tr[t];
        int64_t p = fill[d->ti[t]]++;
        d->icol[p] = d->tu[t];
        d->ival[p] = d->tr[t];
    }
    free(fill);
}

static void synth_free(synth *d)
{
    free(d->tu), free(d->ti), free(d->tr), free(d->su), free(d->si), free(d->sr);
    free(d->uoff), free(d->ioff), free(d->ucol), free(d->icol), free(d->uval), free(d->ival);
}

static rb_train_input synth_input(const synth *d, int threads, uint64_t seed)
{
    rb_train_input in;
    memset(&in, 0, sizeof in);
    in.by_user = (rb_rows){d->U, d->n_train, d->uoff, d->ucol, d->uval};
    in.by_item = (rb_rows){d->N, d->n_train, d->ioff, d->icol, d->ival};
    /* the held-out ratings serve as validation too: the tests check learning, not model selection */
    in.valid = (rb_triples){d->n_test, d->su, d->si, d->sr};
    double s = 0;
    for (int64_t t = 0; t < d->n_train; t++) s += d->tr[t];
    in.mean = s / (double)d->n_train;
    in.default_rating = 3;
    in.rmin = 1;
    in.rmax = 5;
    in.threads = threads;
    in.seed = seed;
    return in;
}

static void small_hparams(rbm_hparams *hp, int variant)
{
    rbm_hparams_default(hp);
    hp->variant = variant;
    hp->hidden = 16;
    hp->epochs = 25;
    hp->patience = 0;
    hp->batch = 10;
    hp->lr = 0.05;
    hp->n_cd = 2;
    hp->cd_steps[0] = 1;
    hp->cd_from[0] = 1;
    hp->cd_steps[1] = 3;
    hp->cd_from[1] = 15;
}

static rbm *synth_train(const synth *d, int variant, int threads, uint64_t seed, double *vr)
{
    rbm_hparams hp;
    small_hparams(&hp, variant);
    rb_train_input in = synth_input(d, threads, seed);
    float values[RBM_MAX_K];
    int K;
    ASSERT_OK(rbm_values(rbm_case_rows(&(rbm){.variant = variant}, &in), values, &K));
    rbm *m = rbm_new(variant, d->U, d->N, K, values, hp.hidden, hp.init_std, seed);
    ASSERT(m);
    int ep = 0;
    ASSERT_OK(rbm_train(m, &hp, &in, vr, &ep));
    ASSERT_EQ(ep, hp.epochs);
    return m;
}

TEST(rbm_hidden_and_predictions_match_naive)
{
    synth d;
    synth_make(&d, 30, 20, 4);
    for (int variant = 0; variant < 2; variant++) {
        rbm_hparams hp;
        small_hparams(&hp, variant);
        hp.epochs = 2;
        hp.hidden = 6;
        rb_train_input in = synth_input(&d, 1, 9);
        const float values[5] = {1, 2, 3, 4, 5};
        rbm *m = rbm_new(variant, d.U, d.N, 5, values, 6, 0.3, 2);
        ASSERT(m);
        ASSERT_OK(rbm_train(m, &hp, &in, NULL, NULL));
        const rb_rows *rows = rbm_case_rows(m, &in);
        ASSERT_EQ(rows->rows, m->C);
        /* H is p(h | training ratings of the case) */
        for (int64_t c = 0; c < m->C; c++)
            for (int j = 0; j < m->F; j++) {
                double x = m->bh[j];
                for (int64_t o = rows->offsets[c]; o < rows->offsets[c + 1]; o++) {
                    int k = (int)rows->val[o] - 1;
                    x += m->W[((size_t)rows->col[o] * 5 + (size_t)k) * (size_t)m->F + (size_t)j];
                }
                ASSERT_NEAR(m->H[(size_t)c * (size_t)m->F + (size_t)j], sigm(x), 2e-6);
            }
        /* expected rating of (u, i) from H of the case and the unit's softmax */
        for (int u = 0; u < d.U; u += 3)
            for (int i = 0; i < d.N; i += 2) {
                int64_t c = variant == RBM_USER ? u : i, q = variant == RBM_USER ? i : u;
                double l[5], z = 0, e = 0;
                for (int k = 0; k < 5; k++) {
                    l[k] = m->bv[q * 5 + k];
                    for (int j = 0; j < m->F; j++)
                        l[k] += (double)m->W[((size_t)q * 5 + (size_t)k) * (size_t)m->F + (size_t)j] *
                                m->H[(size_t)c * (size_t)m->F + (size_t)j];
                }
                for (int k = 0; k < 5; k++) {
                    z += exp(l[k]);
                    e += exp(l[k]) * values[k];
                }
                uint8_t fb = 9;
                ASSERT_NEAR(rbm_predict_one(m, u, i, 3, &fb), e / z, 2e-5);
                ASSERT_EQ(fb, 0);
            }
        /* unknown user or item, either one: the default, flagged */
        uint8_t fb = 0;
        ASSERT_NEAR(rbm_predict_one(m, -1, 0, 3.25f, &fb), 3.25, 0);
        ASSERT_EQ(fb, 1);
        fb = 0;
        ASSERT_NEAR(rbm_predict_one(m, 0, -1, 3.25f, &fb), 3.25, 0);
        ASSERT_EQ(fb, 1);
        fb = 0;
        ASSERT_NEAR(rbm_predict_one(m, 0, d.N, 3.25f, &fb), 3.25, 0);
        ASSERT_EQ(fb, 1);
        /* rbm_hidden recomputes the same H */
        float *H0 = malloc(sizeof(float) * (size_t)m->C * (size_t)m->F);
        memcpy(H0, m->H, sizeof(float) * (size_t)m->C * (size_t)m->F);
        ASSERT_OK(rbm_hidden(m, rows, 2));
        ASSERT_EQ(memcmp(H0, m->H, sizeof(float) * (size_t)m->C * (size_t)m->F), 0);
        free(H0);
        rbm_free(m);
    }
    synth_free(&d);
}

static double mean_rmse(const synth *d)
{
    double s = 0, e = 0;
    for (int64_t t = 0; t < d->n_train; t++) s += d->tr[t];
    s /= (double)d->n_train;
    for (int64_t t = 0; t < d->n_test; t++) e += (d->sr[t] - s) * (d->sr[t] - s);
    return sqrt(e / (double)d->n_test);
}

TEST(rbm_learns_synthetic_ratings)
{
    synth d;
    synth_make(&d, 240, 160, 1);
    double base = mean_rmse(&d);
    for (int variant = 0; variant < 2; variant++) {
        double vr = 0;
        rbm *m = synth_train(&d, variant, 2, 1, &vr);
        float *pred = malloc(sizeof(float) * (size_t)d.n_test);
        rb_triples t = {d.n_test, d.su, d.si, d.sr};
        rbm_predict(m, &t, 3, pred, NULL);
        double rmse = rb_rmse(&t, pred);
        ASSERT_NEAR(rmse, vr, 1e-6); /* the kept epoch is the best on these ratings */
        if (!(rmse < 0.7 * base))
            FAIL("%s-RBM test RMSE %.4f not below 0.7 x the global mean's %.4f", variant ? "I" : "U", rmse, base);
        free(pred);
        rbm_free(m);
    }
    synth_free(&d);
}

TEST(rbm_deterministic_for_a_seed)
{
    synth d;
    synth_make(&d, 60, 40, 2);
    for (int variant = 0; variant < 2; variant++) {
        rbm *a = synth_train(&d, variant, 1, 5, NULL), *b = synth_train(&d, variant, 2, 5, NULL),
            *c = synth_train(&d, variant, 2, 6, NULL);
        size_t n = rbm_param_count(a) + (size_t)a->C * (size_t)a->F;
        ASSERT_EQ(memcmp(rbm_slab(a), rbm_slab(b), n * sizeof(float)), 0); /* 1 or 2 threads: same bits */
        ASSERT_NE(memcmp(rbm_slab(a), rbm_slab(c), n * sizeof(float)), 0);
        rbm_free(a);
        rbm_free(b);
        rbm_free(c);
    }
    synth_free(&d);
}

/* Train a fresh model of variant on in with hp; the return code, the message in msg (cap 512). */
static int train_rc(const synth *d, int variant, const rbm_hparams *hp, const rb_train_input *in, char *msg)
{
    float values[RBM_MAX_K];
    int K;
    ASSERT_OK(rbm_values(rbm_case_rows(&(rbm){.variant = variant}, in), values, &K));
    rbm *m = rbm_new(variant, d->U, d->N, K, values, hp->hidden, hp->init_std, 1);
    ASSERT(m);
    int rc = rbm_train(m, hp, in, NULL, NULL);
    snprintf(msg, 512, "%s", rc_errmsg());
    if (rc == RC_OK) /* what would be published is finite */
        for (size_t j = 0; j < rbm_param_count(m) + (size_t)m->C * (size_t)m->F; j++) ASSERT(isfinite(rbm_slab(m)[j]));
    rbm_free(m);
    return rc;
}

/* A step far too large overflows the weights; rating values near +-FLT_MAX overflow the (float)
 * reconstruction error. Training fails with RC_ERANGE naming the epoch and the likely cause, with or
 * without validation data. */
TEST(rbm_train_refuses_divergence)
{
    synth d;
    synth_make(&d, 30, 20, 3);
    rbm_hparams hp;
    char msg[512];
    for (int variant = 0; variant < 2; variant++)
        for (int valid = 1; valid >= 0; valid--) {
            small_hparams(&hp, variant);
            hp.epochs = 3;
            rb_train_input in = synth_input(&d, 2, 1);
            if (!valid) in.valid.n = 0;
            hp.lr = 1e30;
            ASSERT_RC(train_rc(&d, variant, &hp, &in, msg), RC_ERANGE);
            ASSERT_CONTAINS(msg, "rbm: training diverged at epoch ");
            ASSERT_CONTAINS(msg, " (lr "); /* that epoch's: 1e30, times lr_decay per epoch before */
            ASSERT_CONTAINS(msg, " too large?): ");
            ASSERT_CONTAINS(msg, "rating values span [1, 5]");
            hp.lr = 0.05;
            ASSERT_RC(train_rc(&d, variant, &hp, &in, msg), RC_OK);
        }
    /* user 0 rates -3e38 once and 3e38 otherwise: as a visible unit of I-RBM its reconstruction leans to
     * 3e38, and the error of the -3e38 rating is beyond FLT_MAX */
    ASSERT(d.uoff[1] - d.uoff[0] >= 2);
    for (int64_t k = d.uoff[0]; k < d.uoff[1]; k++) {
        float r = k == d.uoff[0] ? -3e38f : 3e38f;
        d.uval[k] = r;
        int32_t i = d.ucol[k];
        for (int64_t j = d.ioff[i]; j < d.ioff[i + 1]; j++)
            if (d.icol[j] == 0) d.ival[j] = r;
    }
    small_hparams(&hp, RBM_ITEM);
    hp.epochs = 3;
    rb_train_input in = synth_input(&d, 2, 1);
    ASSERT_RC(train_rc(&d, RBM_ITEM, &hp, &in, msg), RC_ERANGE);
    ASSERT_CONTAINS(msg, "rbm: training diverged at epoch 1 (rating values out of scale?): reconstruction error inf");
    ASSERT_CONTAINS(msg, "rating values span [-3e+38, 3e+38]");
    synth_free(&d);
}

/* One epoch in one batch from zero momentum is one plain step: params + lr (mean CD gradient - wd W),
 * the gradient computed densely (rbm_cd_grad) from the same samples (rbm_case_rng). */
TEST(rbm_training_step_matches_dense_reference)
{
    synth d;
    synth_make(&d, 40, 25, 6);
    for (int variant = 0; variant < 2; variant++) {
        rbm_hparams hp;
        small_hparams(&hp, variant);
        hp.mean_field = variant; /* both reconstructions, once each */
        hp.hidden = 7;
        hp.epochs = 1;
        hp.batch = 1000;
        hp.lr = 0.3;
        hp.weight_decay = 0.01;
        hp.cd_steps[0] = 2;
        rb_train_input in = synth_input(&d, 2, 77);
        in.valid.n = 0;
        const float values[5] = {1, 2, 3, 4, 5};
        rbm *m = rbm_new(variant, d.U, d.N, 5, values, hp.hidden, 0.2, 3), *ref = rbm_new(variant, d.U, d.N, 5, values, hp.hidden, 0.2, 3);
        ASSERT(m && ref);
        const rb_rows *rows = rbm_case_rows(ref, &in);
        rbm_init_visible_biases(ref, rows);
        size_t P = rbm_param_count(ref), nW = (size_t)ref->M * 5 * (size_t)hp.hidden;
        float *g = calloc(P, sizeof *g), p0[7], ph[7], *vneg = malloc(1000 * 5 * sizeof(float));
        uint8_t *kk = malloc(1000);
        rbm_cd_scratch *s = rbm_cd_scratch_new(ref, 1000);
        for (int64_t c = 0; c < ref->C; c++) {
            int64_t o = rows->offsets[c], n = rows->offsets[c + 1] - o;
            for (int64_t i = 0; i < n; i++) kk[i] = (uint8_t)(rows->val[o + i] - 1);
            rng_t r;
            rbm_case_rng(&r, in.seed, 1, c);
            rbm_cd_case(ref, rows->col + o, kk, n, hp.cd_steps[0], hp.mean_field, &r, s, p0, ph, vneg, NULL);
            rbm_cd_grad(ref, rows->col + o, kk, n, p0, ph, vneg, g);
        }
        ASSERT_OK(rbm_train(m, &hp, &in, NULL, NULL));
        const float *w0 = rbm_slab(ref), *w1 = rbm_slab(m);
        double moved = 0;
        for (size_t p = 0; p < P; p++) {
            double want = w0[p] + hp.lr * (g[p] / (double)ref->C - (p < nW ? hp.weight_decay * w0[p] : 0));
            ASSERT_NEAR(w1[p], want, 1e-5 + 1e-5 * fabs(want));
            moved = fmax(moved, fabs(want - w0[p]));
        }
        ASSERT(moved > 1e-3);
        /* the generic kernels agree with the fast ones */
        const rbm_kernels *kg = rbm_kernels_generic(), *kb = rbm_kernels_best();
        float a1[37], a2[37], x[37], wq[5 * 37], bq[5], o1[5], o2[5];
        rng_t r;
        rng_seed(&r, 4);
        for (int i = 0; i < 37; i++) a1[i] = a2[i] = (float)rng_normal(&r), x[i] = (float)rng_normal(&r);
        for (int i = 0; i < 5 * 37; i++) wq[i] = (float)rng_normal(&r);
        for (int i = 0; i < 5; i++) bq[i] = (float)rng_normal(&r);
        kg->axpy(37, 0.7f, x, a1);
        kb->axpy(37, 0.7f, x, a2);
        kg->add(37, x, a1);
        kb->add(37, x, a2);
        kg->decay(37, 0.9f, 0.1f, x, a1);
        kb->decay(37, 0.9f, 0.1f, x, a2);
        for (int i = 0; i < 37; i++) ASSERT_NEAR(a1[i], a2[i], 1e-5);
        kg->logits(5, 37, wq, bq, x, o1);
        kb->logits(5, 37, wq, bq, x, o2);
        for (int k = 0; k < 5; k++) ASSERT_NEAR(o1[k], o2[k], 1e-4);
        free(g);
        free(vneg);
        free(kk);
        rbm_cd_scratch_free(s);
        rbm_free(m);
        rbm_free(ref);
    }
    synth_free(&d);
}

/* ---- snapshots ------------------------------------------------------------------------------------- */

static idmap *vocab(int n, const char *prefix)
{
    idmap *v = idmap_new(0);
    ASSERT(v);
    for (int i = 0; i < n; i++) {
        char k[32];
        int len = snprintf(k, sizeof k, "%s%d", prefix, i);
        ASSERT_EQ(idmap_intern(v, k, (size_t)len), i);
    }
    return v;
}

TEST(rbm_snapshot_round_trip_rate_recommend)
{
    synth d;
    synth_make(&d, 50, 30, 3);
    idmap *users = vocab(d.U, "u"), *items = vocab(d.N, "i");
    rating_base_src src = {users, items, d.uoff, d.ucol, 3, 1, 5, 3.5f};
    const char *root = test_tmpdir();
    for (int variant = 0; variant < 2; variant++) {
        rbm *m = synth_train(&d, variant, 1, 8, NULL);
        json_t *extra = json_pack("{s:{s:f}}", "metrics", "valid_rmse", 0.9);
        uint64_t ver = 0;
        ASSERT_OK(rbm_save(m, &src, root, NULL, extra, &ver));
        json_decref(extra);
        ASSERT_EQ(ver, 1);
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s/1", root, variant == RBM_USER ? "u-rbm" : "i-rbm");
        snap *s = NULL;
        ASSERT_OK(snap_open(&s, dir));
        ASSERT_STR_EQ(snap_type(s), "rbm");
        ASSERT_STR_EQ(snap_model(s), variant == RBM_USER ? "u-rbm" : "i-rbm");
        ASSERT_STR_EQ(json_string_value(json_object_get(snap_meta(s), "variant")), variant ? "item" : "user");
        ASSERT(json_object_get(json_object_get(snap_meta(s), "metrics"), "valid_rmse"));
        const model_type *ty = &rbm_type;
        ASSERT(ty->rate && ty->recommend && !ty->next && !ty->rank && !ty->recommend->item_matrix &&
               !ty->recommend->query);
        void *h = NULL;
        ASSERT_OK(ty->load(&h, s));
        const rbm *l = h;
        ASSERT_EQ(l->variant, variant);
        ASSERT_EQ(l->K, m->K);
        /* same predictions, bit for bit */
        void *rs = ty->rate->scratch_new(h, 64);
        void *qs = ty->recommend->scratch_new(h);
        ASSERT(rs && qs);
        int32_t its[32];
        for (int i = 0; i < d.N; i++) its[i] = i;
        its[d.N] = -1;
        float out[32], scores[32];
        uint8_t fb[32];
        for (int u = 0; u < d.U; u++) {
            ty->rate->predict(h, u, its, d.N + 1, out, fb, rs);
            ty->recommend->score(h, u, scores, qs);
            for (int i = 0; i < d.N; i++) {
                float want = rbm_predict_one(m, u, i, 3, NULL);
                ASSERT_EQ(memcmp(&out[i], &want, sizeof want), 0);
                ASSERT_EQ(fb[i], 0);
                ASSERT_EQ(memcmp(&scores[i], &want, sizeof want), 0); /* rate and recommend agree */
            }
            ASSERT_NEAR(out[d.N], 3, 0); /* unknown item: default, flagged */
            ASSERT_EQ(fb[d.N], 1);
            const int32_t *seen;
            int64_t ns = ty->recommend->seen(h, u, &seen);
            ASSERT_EQ(ns, d.uoff[u + 1] - d.uoff[u]);
        }
        ty->rate->predict(h, -1, its, 3, out, fb, rs); /* unknown user */
        for (int i = 0; i < 3; i++) {
            ASSERT_NEAR(out[i], 3, 0);
            ASSERT_EQ(fb[i], 1);
        }
        ASSERT(ty->users(h) && idmap_size(ty->users(h)) == (size_t)d.U);
        ASSERT(ty->users == rb_type_users && ty->items == rb_type_items && ty->popular == rb_type_popular &&
               ty->recommend->seen == rb_type_seen);
        ASSERT(ty->items(h) && idmap_size(ty->items(h)) == (size_t)d.N);
        ASSERT_OK(ty->warm(h));
        ty->rate->scratch_free(rs);
        ty->recommend->scratch_free(qs);
        ty->free(h);
        snap_close(s);
        /* --name rbm: no "type" field, the folder name is the type */
        ASSERT_OK(rbm_save(m, &src, root, "rbm", NULL, &ver));
        snprintf(dir, sizeof dir, "%s/rbm/%llu", root, (unsigned long long)ver);
        ASSERT_OK(snap_open(&s, dir));
        ASSERT(!json_object_get(snap_meta(s), "type"));
        ASSERT_STR_EQ(snap_type(s), "rbm");
        snap_close(s);
        rbm_free(m);
    }
    idmap_free(users);
    idmap_free(items);
    synth_free(&d);
}

/* A snapshot written by hand: the good tensors of m, with one of them replaced (bad_H) or meta
 * "variant" wrong. */
static void write_bad(const rbm *m, const rating_base_src *src, const char *root, const char *name, int bad_H,
                      const char *variant)
{
    snap_writer *w = NULL;
    ASSERT_OK(snap_writer_open(&w, root, name, 0));
    int64_t sw[3] = {m->M, m->K, m->F}, sv[2] = {m->M, m->K}, sh[1] = {m->F}, sH[2] = {m->C, m->F}, sk[1] = {m->K};
    size_t nH = (size_t)m->C * (size_t)m->F;
    float *H = malloc(nH * sizeof *H);
    memcpy(H, m->H, nH * sizeof *H);
    if (bad_H) H[nH / 2] = bad_H == 1 ? 1.5f : NAN;
    ASSERT_OK(snap_put_tensor(w, "W", SNAP_F32, 3, sw, m->W));
    ASSERT_OK(snap_put_tensor(w, "bv", SNAP_F32, 2, sv, m->bv));
    ASSERT_OK(snap_put_tensor(w, "bh", SNAP_F32, 1, sh, m->bh));
    ASSERT_OK(snap_put_tensor(w, "H", SNAP_F32, 2, sH, H));
    ASSERT_OK(snap_put_tensor(w, "values", SNAP_F32, 1, sk, m->values));
    free(H);
    json_t *rm = NULL;
    ASSERT_OK(rb_save(w, src, &rm));
    json_t *meta = json_pack("{s:o,s:i,s:s}", "rating", rm, "hidden", m->F, "type", "rbm");
    if (variant) json_object_set_new(meta, "variant", json_string(variant));
    ASSERT_OK(snap_set_meta(w, meta));
    json_decref(meta);
    ASSERT_OK(snap_writer_publish(w, NULL));
}

TEST(rbm_load_refuses_bad_snapshots)
{
    synth d;
    synth_make(&d, 20, 12, 5);
    idmap *users = vocab(d.U, "u"), *items = vocab(d.N, "i");
    rating_base_src src = {users, items, d.uoff, d.ucol, 3, 1, 5, 3.5f};
    rbm *m = synth_train(&d, RBM_USER, 1, 1, NULL);
    const char *root = test_tmpdir();
    struct { const char *name; int bad_H; const char *variant; const char *msg; } cases[] = {
        {"good", 0, "user", NULL},
        {"h_range", 1, "user", "outside [0, 1]"},
        {"h_nan", 2, "user", "non-finite"},
        {"no_variant", 0, NULL, "variant"},
        {"bad_variant", 0, "users", "variant"},
        {"wrong_variant", 0, "item", "W"}, /* I-RBM shapes differ: W is (U,K,F) */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        write_bad(m, &src, root, cases[c].name, cases[c].bad_H, cases[c].variant);
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s/1", root, cases[c].name);
        snap *s = NULL;
        ASSERT_OK(snap_open(&s, dir));
        rbm *l = NULL;
        if (!cases[c].msg) {
            ASSERT_OK(rbm_load(&l, s));
            ASSERT(l);
        } else {
            ASSERT_RC(rbm_load(&l, s), RC_ECORRUPT);
            ASSERT(!l);
            ASSERT_CONTAINS(rc_errmsg(), cases[c].msg);
        }
        rbm_free(l);
        snap_close(s);
    }
    rbm_free(m);
    idmap_free(users);
    idmap_free(items);
    synth_free(&d);
}

TEST(rbm_hparams_checked)
{
    rbm_hparams hp;
    rbm_hparams_default(&hp);
    ASSERT_OK(rbm_hparams_check(&hp));
    hp.cd_from[2] = hp.cd_from[1];
    ASSERT_RC(rbm_hparams_check(&hp), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "cd_from[2]");
    rbm_hparams_default(&hp);
    hp.momentum = 1;
    ASSERT_RC(rbm_hparams_check(&hp), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "momentum");
    rbm_hparams_default(&hp);
    json_t *j = rbm_hparams_to_json(&hp);
    ASSERT(j);
    ASSERT_EQ(json_array_size(json_object_get(j, "cd_steps")), 4);
    /* the trainer's defaults (JSON text) are the model's */
    json_t *steps = json_loads(RBM_DEF_CD_STEPS, 0, NULL), *from = json_loads(RBM_DEF_CD_FROM, 0, NULL);
    ASSERT(steps && from && json_equal(steps, json_object_get(j, "cd_steps")) && json_equal(from, json_object_get(j, "cd_from")));
    json_decref(steps);
    json_decref(from);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "variant")), "item");
    json_decref(j);
}

/* ---- the trainer's command line ------------------------------------------------------------------- */

static double field(const char *out, const char *key)
{
    const char *p = strstr(out, key);
    return p ? atof(p + strlen(key)) : NAN;
}

TEST_TIMEOUT(rbm_cli_train_eval, 120)
{
    static char out[16384], out2[16384];
    const char *t = test_tmpdir(), *bin = test_recd_bin();
    ASSERT_EQ(test_run(out, sizeof out, "%s synth ratings --out %s/r.tsv --seed 3 --users 150 --items 80 --rows 6000 2>&1",
                       bin, t), 0);
    ASSERT_EQ(test_run(out, sizeof out, "%s split ratings --data %s/r.tsv --out %s/sp 2>&1", bin, t, t), 0);
    int st = test_run(out, sizeof out,
                      "%s train rbm --variant user --train %s/sp/train.tsv --valid %s/sp/valid.tsv --test %s/sp/test.tsv "
                      "--out %s/snaps --hidden 8 --epochs 4 --batch 20 --lr 0.1 --quiet 2>&1",
                      bin, t, t, t, t);
    if (st != 0) FAIL("train exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "u-rbm rmse=");
    double rmse = field(out, "u-rbm rmse=");
    ASSERT(rmse > 0 && rmse < 1.5);
    st = test_run(out2, sizeof out2, "%s eval rbm --snapshot %s/snaps/u-rbm --test %s/sp/test.tsv --quiet 2>&1", bin, t, t);
    if (st != 0) FAIL("eval exited %d: %s", st, out2);
    ASSERT_NEAR(field(out2, "rmse="), rmse, 1e-4);
    ASSERT_NEAR(field(out2, " n="), field(out, " n="), 0);
    /* --data splits here; I-RBM by default; --name */
    st = test_run(out, sizeof out,
                  "%s train rbm --data %s/r.tsv --out %s/snaps --hidden 6 --epochs 2 --cd_steps '[1, 2]' --cd_from '[1, 2]' "
                  "--quiet 2>&1",
                  bin, t, t);
    if (st != 0) FAIL("train (item) exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "i-rbm rmse=");
    st = test_run(out, sizeof out, "%s train rbm --data %s/r.tsv --out %s/snaps --name my-rbm --hidden 4 --epochs 1 --quiet 2>&1",
                  bin, t, t);
    if (st != 0) FAIL("train (named) exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "my-rbm rmse=");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/snaps/my-rbm/1", t);
    snap *s;
    ASSERT_OK(snap_open(&s, dir));
    const json_t *meta = snap_meta(s);
    ASSERT_STR_EQ(snap_type(s), "rbm");
    ASSERT_STR_EQ(json_string_value(json_object_get(meta, "variant")), "item");
    ASSERT(json_object_get(json_object_get(meta, "metrics"), "test"));
    ASSERT(json_object_get(json_object_get(meta, "metrics"), "valid"));
    ASSERT(json_object_get(json_object_get(meta, "data"), "n_train"));
    ASSERT(json_object_get(json_object_get(meta, "train"), "train_s"));
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(meta, "config"), "hidden")), 4);
    snap_close(s);
}

TEST(rbm_cli_refuses_bad_settings)
{
    static char out[8192];
    const char *t = test_tmpdir(), *bin = test_recd_bin();
    ASSERT_EQ(test_run(out, sizeof out, "%s train rbm --data x --hidden 0 2>&1", bin), 2);
    ASSERT_CONTAINS(out, "hidden");
    ASSERT_EQ(test_run(out, sizeof out, "%s train rbm --data x --variant users 2>&1", bin), 2);
    ASSERT_CONTAINS(out, "variant");
    ASSERT_EQ(test_run(out, sizeof out, "%s train rbm --data x --cd_steps '[1, 3]' --cd_from '[1]' 2>&1", bin), 2);
    ASSERT_CONTAINS(out, "cd_from");
    ASSERT_EQ(test_run(out, sizeof out, "%s train rbm --data x --cd_steps '[1, 3]' --cd_from '[1, 1]' 2>&1", bin), 2);
    ASSERT_CONTAINS(out, "cd_from[1]");
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/c.json", t);
    test_write_file(cfg, "{\n  \"hidden\": 8,\n  \"lr\": \"fast\"\n}\n");
    ASSERT_EQ(test_run(out, sizeof out, "%s train rbm -c %s --data x 2>&1", bin, cfg), 2);
    ASSERT_CONTAINS(out, "c.json:3");
    ASSERT_EQ(test_run(out, sizeof out, "%s train rbm --data %s/none.tsv --out %s/snaps 2>&1", bin, t, t), 1);
    ASSERT_CONTAINS(out, "none.tsv");
    ASSERT_EQ(test_run(out, sizeof out, "%s train rbm --help", bin), 0);
    ASSERT_CONTAINS(out, "cd_steps");
}
