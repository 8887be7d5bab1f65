/* tests/test_biasedmf.c - biased MF (models/biasedmf.h): the SGD objective's gradient by finite
 * differences and the SGD step against it, fast kernels against their references, the ALS half-step
 * against a naive solve, predictions against the formula, the rate / recommend capabilities, the
 * snapshot round trip, determinism, learning a synthetic low-rank matrix, and the trainer's command line.
 */
#include <stdint.h>

#include "core/idmap.h"
#include "core/rng.h"
#include "core/snap.h"
#include "models/biasedmf.h"
#include "models/biasedmf_kern.h"
#include "models/model.h"
#include "tests/testlib.h"

/* ---- synthetic ratings -------------------------------------------------------------------------- */

/* A U x N matrix r = 3.5 + bu + bi + p.q (rank k) + noise; each cell is a training rating with
 * probability frac, else a held-out one with probability hold. Rows by user and by item, sorted. */
typedef struct synth {
    int U, N;
    int64_t R, V;
    int64_t *uoff; /* (U+1) */
    int32_t *ucol; /* (R) */
    float *uval;   /* (R) */
    int64_t *ioff; /* (N+1) */
    int32_t *icol; /* (R) */
    float *ival;   /* (R) */
    int32_t *vu, *vi; /* (V) */
    float *vr;        /* (V) */
    double mean;
} synth;

static void synth_make(synth *s, int U, int N, int k, double frac, double hold, double noise, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->U = U;
    s->N = N;
    rng_t r;
    rng_seed(&r, seed);
    double *bu = malloc(U * sizeof *bu), *bi = malloc(N * sizeof *bi), *P = malloc((size_t)U * k * sizeof *P),
           *Q = malloc((size_t)N * k * sizeof *Q);
    ASSERT(bu && bi && P && Q);
    for (int u = 0; u < U; u++) bu[u] = 0.3 * rng_normal(&r);
    for (int i = 0; i < N; i++) bi[i] = 0.3 * rng_normal(&r);
    for (int x = 0; x < U * k; x++) P[x] = 0.6 * rng_normal(&r);
    for (int x = 0; x < N * k; x++) Q[x] = 0.6 * rng_normal(&r);
    size_t cells = (size_t)U * N;
    s->uoff = calloc(U + 1, sizeof *s->uoff);
    s->ucol = malloc(cells * sizeof *s->ucol);
    s->uval = malloc(cells * sizeof *s->uval);
    s->vu = malloc(cells * sizeof *s->vu);
    s->vi = malloc(cells * sizeof *s->vi);
    s->vr = malloc(cells * sizeof *s->vr);
    ASSERT(s->uoff && s->ucol && s->uval && s->vu && s->vi && s->vr);
    double sum = 0;
    for (int u = 0; u < U; u++) {
        for (int i = 0; i < N; i++) {
            double v = 3.5 + bu[u] + bi[i] + noise * rng_normal(&r);
            for (int f = 0; f < k; f++) v += P[u * k + f] * Q[i * k + f];
            double x = rng_uniform(&r);
            if (x < frac) {
                s->ucol[s->R] = i;
                s->uval[s->R++] = (float)v;
                sum += (float)v;
            } else if (x < frac + hold) {
                s->vu[s->V] = u;
                s->vi[s->V] = i;
                s->vr[s->V++] = (float)v;
            }
        }
        s->uoff[u + 1] = s->R;
    }
    s->mean = s->R ? sum / (double)s->R : 0;
    /* by item: counting sort of the by-user ratings (users ascend within an item) */
    s->ioff = calloc(N + 1, sizeof *s->ioff);
    s->icol = malloc((s->R + 1) * sizeof *s->icol);
    s->ival = malloc((s->R + 1) * sizeof *s->ival);
    int64_t *fill = calloc(N + 1, sizeof *fill);
    ASSERT(s->ioff && s->icol && s->ival && fill);
    for (int64_t x = 0; x < s->R; x++) s->ioff[s->ucol[x] + 1]++;
    for (int i = 0; i < N; i++) s->ioff[i + 1] += s->ioff[i];
    for (int u = 0; u < U; u++)
        for (int64_t x = s->uoff[u]; x < s->uoff[u + 1]; x++) {
            int i = s->ucol[x];
            int64_t at = s->ioff[i] + fill[i]++;
            s->icol[at] = u;
            s->ival[at] = s->uval[x];
        }
    free(fill);
    free(bu);
    free(bi);
    free(P);
    free(Q);
}

static void synth_free(synth *s)
{
    free(s->uoff);
    free(s->ucol);
    free(s->uval);
    free(s->ioff);
    free(s->icol);
    free(s->ival);
    free(s->vu);
    free(s->vi);
    free(s->vr);
}

static rb_rows by_user(const synth *s) { return (rb_rows){s->U, s->R, s->uoff, s->ucol, s->uval}; }
static rb_rows by_item(const synth *s) { return (rb_rows){s->N, s->R, s->ioff, s->icol, s->ival}; }
static rb_triples held(const synth *s) { return (rb_triples){s->V, s->vu, s->vi, s->vr}; }

static rb_train_input input_of(const synth *s, uint64_t seed, int threads)
{
    return (rb_train_input){.by_user = by_user(s), .by_item = by_item(s), .valid = held(s), .mean = s->mean,
                            .default_rating = 3, .rmin = 1, .rmax = 5, .threads = threads, .seed = seed,
                            .verbose = 0};
}

/* Random biases too (biasedmf_new starts them at 0). */
static biasedmf *random_model(int U, int N, int F, uint64_t seed)
{
    biasedmf *m = biasedmf_new(U, N, F, 3.5, 0.5, seed);
    ASSERT(m);
    bmf_params w = bmf_params_of(m);
    rng_t r;
    rng_seed(&r, seed + 1);
    for (int u = 0; u < U; u++) w.bu[u] = (float)(0.3 * rng_normal(&r));
    for (int i = 0; i < N; i++) w.bi[i] = (float)(0.3 * rng_normal(&r));
    return m;
}

static double formula(const biasedmf *m, int u, int i)
{
    double s = (double)*m->mu + m->bu[u] + m->bi[i];
    for (int f = 0; f < m->F; f++) s += (double)m->P[(size_t)u * m->F + f] * m->Q[(size_t)i * m->F + f];
    return s;
}

/* ---- gradient and SGD ---------------------------------------------------------------------------- */

TEST(bmf_objective_gradient_finite_differences)
{
    synth s;
    synth_make(&s, 5, 4, 2, 0.7, 0, 0.3, 11);
    biasedmf *m = random_model(5, 4, 3, 12);
    const double reg = 0.07, reg_bias = 0.03;
    rb_rows ru = by_user(&s);
    size_t n = bmf_nparams(5, 4, 3);
    double *g = malloc(n * sizeof *g);
    ASSERT(g);
    double f0 = bmf_objective(m, &ru, reg, reg_bias, g, NULL);
    ASSERT(f0 > 0);
    float *x = biasedmf_slab(m);
    for (size_t k = 0; k < n; k++) {
        float x0 = x[k];
        x[k] = x0 + 1e-2f;
        double hp = (double)x[k] - x0, fp = bmf_objective(m, &ru, reg, reg_bias, NULL, NULL);
        x[k] = x0 - 1e-2f;
        double hm = (double)x0 - x[k], fm = bmf_objective(m, &ru, reg, reg_bias, NULL, NULL);
        x[k] = x0;
        double fd = (fp - fm) / (hp + hm); /* exact for a quadratic in x[k] */
        if (!(fabs(fd - g[k]) <= 1e-6 * (1 + fabs(g[k]))))
            FAIL("parameter %zu: analytic %.9g, finite differences %.9g", k, g[k], fd);
    }
    free(g);
    biasedmf_free(m);
    synth_free(&s);
}

/* One rating: the SGD step (fast kernel and reference) is -lr/2 times the gradient of that rating's
 * objective term, mu untouched. */
TEST(bmf_sgd_step_is_gradient_step)
{
    const int U = 3, N = 4, F = 5;
    int64_t off[4] = {0, 0, 1, 1}; /* user 1 rated item 2 */
    int32_t col[1] = {2};
    float val[1] = {4.5f};
    rb_rows one = {U, 1, off, col, val};
    const float lr = 0.01f, reg = 0.05f, reg_bias = 0.02f;
    for (int fast = 0; fast < 2; fast++) {
        biasedmf *m = random_model(U, N, F, 5);
        size_t n = bmf_nparams(U, N, F);
        double *g = malloc(n * sizeof *g);
        float *before = malloc(n * sizeof *before);
        ASSERT(g && before);
        bmf_objective(m, &one, reg, reg_bias, g, NULL);
        memcpy(before, biasedmf_slab(m), n * sizeof *before);
        double e = 4.5 - formula(m, 1, 2);
        bmf_rating t = {1, 2, 4.5f};
        bmf_params w = bmf_params_of(m);
        double sse = fast ? bmf_sgd_pass(&w, &t, 1, lr, reg, reg_bias) : bmf_sgd_pass_ref(&w, &t, 1, lr, reg, reg_bias);
        ASSERT_NEAR(sse, e * e, 1e-5);
        const float *after = biasedmf_slab(m);
        ASSERT(after[0] == before[0]); /* mu */
        for (size_t k = 1; k < n; k++) {
            double step = (double)after[k] - before[k], want = -0.5 * lr * g[k];
            if (!(fabs(step - want) <= 1e-6 + 1e-4 * fabs(want)))
                FAIL("%s: parameter %zu moved %.9g, -lr/2 grad is %.9g", fast ? "fast" : "ref", k, step, want);
        }
        free(g);
        free(before);
        biasedmf_free(m);
    }
}

TEST(bmf_fast_kernels_match_reference)
{
    synth s;
    synth_make(&s, 40, 30, 3, 0.5, 0, 0.2, 21);
    const int F = 37; /* not a multiple of any vector width */
    biasedmf *a = random_model(40, 30, F, 22), *b = random_model(40, 30, F, 22);
    bmf_rating *t = malloc(s.R * sizeof *t);
    ASSERT(t);
    for (int u = 0; u < 40; u++)
        for (int64_t k = s.uoff[u]; k < s.uoff[u + 1]; k++) t[k] = (bmf_rating){u, s.ucol[k], s.uval[k]};
    bmf_params wa = bmf_params_of(a), wb = bmf_params_of(b);
    double sa = 0, sb = 0;
    for (int ep = 0; ep < 3; ep++) {
        sa = bmf_sgd_pass(&wa, t, s.R, 0.01f, 0.05f, 0.01f);
        sb = bmf_sgd_pass_ref(&wb, t, s.R, 0.01f, 0.05f, 0.01f);
    }
    ASSERT_NEAR(sa, sb, 1e-4 * sb);
    size_t n = bmf_nparams(40, 30, F);
    for (size_t k = 0; k < n; k++)
        if (!(fabsf(biasedmf_slab(a)[k] - biasedmf_slab(b)[k]) <= 1e-4f))
            FAIL("parameter %zu: fast %.9g, reference %.9g", k, biasedmf_slab(a)[k], biasedmf_slab(b)[k]);
    for (int i = 0; i < 30; i++)
        ASSERT_NEAR(bmf_dot(a->P, a->Q + (size_t)i * F, F), bmf_dot_ref(a->P, a->Q + (size_t)i * F, F), 1e-5);
    free(t);
    biasedmf_free(a);
    biasedmf_free(b);
    synth_free(&s);
}

/* ---- ALS ----------------------------------------------------------------------------------------- */

TEST(bmf_als_half_step_is_exact_and_decreases)
{
    synth s;
    synth_make(&s, 30, 20, 3, 0.4, 0, 0.3, 31);
    const int F = 4;
    const double reg = 0.05, reg_bias = 0.02;
    biasedmf *m = random_model(30, 20, F, 32), *m1 = random_model(30, 20, F, 32);
    rb_rows ru = by_user(&s), ri = by_item(&s);
    bmf_params w = bmf_params_of(m), w1 = bmf_params_of(m1);
    size_t n = bmf_nparams(30, 20, F);
    double *g = malloc(n * sizeof *g), x[F + 1];
    ASSERT(g);
    double f0 = bmf_objective(m, &ru, reg, reg_bias, NULL, NULL);
    for (int side = 0; side < 2; side++) {
        const rb_rows *rows = side == 0 ? &ru : &ri;
        ASSERT_OK(bmf_als_sweep(&w, rows, side, reg, reg_bias, 3));
        ASSERT_OK(bmf_als_sweep(&w1, rows, side, reg, reg_bias, 1));
        ASSERT(memcmp(biasedmf_slab(m), biasedmf_slab(m1), n * sizeof(float)) == 0); /* threads do not matter */
        double f1 = bmf_objective(m, &ru, reg, reg_bias, g, NULL);
        ASSERT(f1 < f0);
        f0 = f1;
        for (int64_t r = 0; r < rows->rows; r++) {
            bmf_als_solve_ref(&w, rows, side, r, reg, reg_bias, x);
            const float *p = (side == 0 ? m->P : m->Q) + r * F, *b = (side == 0 ? m->bu : m->bi) + r;
            for (int f = 0; f < F; f++) ASSERT_NEAR(p[f], x[f], 1e-5 * (1 + fabs(x[f])));
            ASSERT_NEAR(*b, x[F], 1e-5 * (1 + fabs(x[F])));
            /* the minimiser: the objective's gradient in this row's parameters vanishes */
            size_t gp = 1 + 30 + 20 + (side == 0 ? 0 : (size_t)30 * F) + (size_t)r * F, gb = 1 + (side == 0 ? 0 : 30) + r;
            for (int f = 0; f < F; f++) ASSERT_NEAR(g[gp + f], 0, 1e-3);
            ASSERT_NEAR(g[gb], 0, 1e-3);
        }
    }
    ASSERT_RC(bmf_als_sweep(&w, &ru, 0, 0, reg_bias, 1), RC_EINVAL);
    free(g);
    biasedmf_free(m);
    biasedmf_free(m1);
    synth_free(&s);
}

TEST(bmf_als_row_without_ratings_is_zero)
{
    const int U = 3, N = 2, F = 2;
    int64_t uoff[4] = {0, 2, 2, 3}; /* user 1 rated nothing */
    int32_t ucol[3] = {0, 1, 1};
    float uval[3] = {4, 2, 5};
    rb_rows ru = {U, 3, uoff, ucol, uval};
    biasedmf *m = random_model(U, N, F, 41);
    bmf_params w = bmf_params_of(m);
    ASSERT_OK(bmf_als_sweep(&w, &ru, 0, 0.1, 0.1, 2));
    ASSERT(m->P[2] == 0 && m->P[3] == 0 && m->bu[1] == 0);
    double x[F + 1];
    bmf_als_solve_ref(&w, &ru, 0, 1, 0.1, 0.1, x);
    ASSERT(x[0] == 0 && x[1] == 0 && x[2] == 0);
    biasedmf_free(m);
}

/* ---- predictions -------------------------------------------------------------------------------- */

TEST(bmf_predict_matches_formula)
{
    biasedmf *m = random_model(6, 5, 7, 51);
    int32_t us[] = {0, 5, 3, -1, 2, 6, 1}, is[] = {4, 0, 2, 1, -1, 1, 5};
    float rs[7] = {0}, out[7];
    uint8_t fb[7];
    rb_triples t = {7, us, is, rs};
    biasedmf_predict(m, &t, 2.5f, out, fb);
    for (int k = 0; k < 7; k++) {
        int ok = us[k] >= 0 && us[k] < 6 && is[k] >= 0 && is[k] < 5;
        ASSERT_EQ(fb[k], !ok);
        if (ok) ASSERT_NEAR(out[k], formula(m, us[k], is[k]), 1e-5);
        else ASSERT(out[k] == 2.5f);
    }
    biasedmf_predict(m, &t, 3, out, NULL); /* fallback may be NULL */
    ASSERT(out[3] == 3.0f);
    biasedmf_free(m);
}

TEST(bmf_hparams_and_sizes_refused)
{
    biasedmf_hparams hp;
    biasedmf_hparams_default(&hp);
    ASSERT_OK(biasedmf_hparams_check(&hp));
    hp.factors = 0;
    ASSERT_RC(biasedmf_hparams_check(&hp), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "factors");
    biasedmf_hparams_default(&hp);
    hp.solver = "newton";
    ASSERT_RC(biasedmf_hparams_check(&hp), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "solver");
    biasedmf_hparams_default(&hp);
    hp.solver = "als";
    hp.reg = 0;
    ASSERT_RC(biasedmf_hparams_check(&hp), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "reg");
    biasedmf_hparams_default(&hp);
    hp.lr = -1;
    ASSERT_RC(biasedmf_hparams_check(&hp), RC_EINVAL);
    biasedmf_hparams_default(&hp);
    hp.lr_decay = 1.5;
    ASSERT_RC(biasedmf_hparams_check(&hp), RC_EINVAL);
    ASSERT(biasedmf_new(0, 5, 3, 3.5, 0.1, 1) == NULL);
    ASSERT(biasedmf_new(5, 5, 0, 3.5, 0.1, 1) == NULL);
    biasedmf_free(NULL);
    /* train refuses rows that do not match the model */
    synth s;
    synth_make(&s, 10, 8, 2, 0.5, 0.1, 0.1, 61);
    biasedmf *m = biasedmf_new(11, 8, 4, s.mean, 0.1, 1);
    biasedmf_hparams_default(&hp);
    hp.factors = 4;
    rb_train_input in = input_of(&s, 1, 1);
    ASSERT_RC(biasedmf_train(m, &hp, &in, NULL, NULL), RC_EINVAL);
    biasedmf_free(m);
    m = biasedmf_new(10, 8, 5, s.mean, 0.1, 1);
    ASSERT_RC(biasedmf_train(m, &hp, &in, NULL, NULL), RC_EINVAL); /* factors 4 vs 5 */
    biasedmf_free(m);
    synth_free(&s);
}

/* ---- training ------------------------------------------------------------------------------------ */

static double train_rmse_of(const char *solver, int F, int epochs, double reg, uint64_t seed, biasedmf **keep,
                            int threads, int *epochs_run)
{
    synth s;
    synth_make(&s, 200, 150, 3, 0.3, 0.1, 0.0, 71);
    biasedmf_hparams hp;
    biasedmf_hparams_default(&hp);
    hp.solver = solver;
    hp.factors = F;
    hp.epochs = epochs;
    hp.reg = reg;
    hp.reg_bias = 0.001;
    hp.lr = 0.02;
    hp.lr_decay = 1.0;
    hp.init_std = 0.1;
    hp.patience = 0;
    biasedmf *m = biasedmf_new(s.U, s.N, F, s.mean, hp.init_std, seed);
    ASSERT(m);
    rb_train_input in = input_of(&s, seed, threads);
    double vr;
    ASSERT_OK(biasedmf_train(m, &hp, &in, &vr, epochs_run));
    /* the kept epoch's RMSE is what predict gives */
    float *pred = malloc(s.V * sizeof *pred);
    ASSERT(pred);
    rb_triples t = held(&s);
    biasedmf_predict(m, &t, 3, pred, NULL);
    ASSERT_NEAR(rb_rmse(&t, pred), vr, 1e-9);
    free(pred);
    if (keep) *keep = m;
    else biasedmf_free(m);
    synth_free(&s);
    return vr;
}

TEST(bmf_learns_low_rank_sgd)
{
    int ep;
    double r = train_rmse_of("sgd", 8, 60, 0.002, 1, NULL, 1, &ep);
    if (!(r < 0.1)) FAIL("held-out RMSE %.4f after SGD, want < 0.1 (the matrix is rank 3, no noise)", r);
    ASSERT_EQ(ep, 60);
}

TEST(bmf_learns_low_rank_als)
{
    int ep;
    double r = train_rmse_of("als", 8, 15, 0.002, 1, NULL, 2, &ep);
    if (!(r < 0.05)) FAIL("held-out RMSE %.4f after ALS, want < 0.05 (the matrix is rank 3, no noise)", r);
}

TEST(bmf_deterministic_for_a_seed)
{
    biasedmf *a, *b, *c;
    train_rmse_of("sgd", 6, 5, 0.01, 7, &a, 1, NULL);
    train_rmse_of("sgd", 6, 5, 0.01, 7, &b, 2, NULL);
    train_rmse_of("sgd", 6, 5, 0.01, 8, &c, 1, NULL);
    size_t n = bmf_nparams(a->U, a->N, a->F);
    ASSERT(memcmp(biasedmf_slab(a), biasedmf_slab(b), n * sizeof(float)) == 0);
    ASSERT(memcmp(biasedmf_slab(a), biasedmf_slab(c), n * sizeof(float)) != 0);
    biasedmf_free(a);
    biasedmf_free(b);
    biasedmf_free(c);
    train_rmse_of("als", 6, 3, 0.01, 7, &a, 1, NULL);
    train_rmse_of("als", 6, 3, 0.01, 7, &b, 3, NULL);
    ASSERT(memcmp(biasedmf_slab(a), biasedmf_slab(b), n * sizeof(float)) == 0);
    biasedmf_free(a);
    biasedmf_free(b);
}

TEST(bmf_early_stopping_keeps_best_epoch)
{
    synth s;
    synth_make(&s, 60, 50, 2, 0.2, 0.1, 0.5, 81);
    biasedmf_hparams hp;
    biasedmf_hparams_default(&hp);
    hp.factors = 30;
    hp.reg = 0; /* overfits: validation RMSE turns up */
    hp.lr = 0.05;
    hp.epochs = 200;
    hp.patience = 3;
    hp.init_std = 0.1;
    biasedmf *m = biasedmf_new(s.U, s.N, 30, s.mean, 0.1, 3);
    rb_train_input in = input_of(&s, 3, 1);
    double vr;
    int ep;
    ASSERT_OK(biasedmf_train(m, &hp, &in, &vr, &ep));
    ASSERT(ep < 200);
    float *pred = malloc(s.V * sizeof *pred);
    rb_triples t = held(&s);
    biasedmf_predict(m, &t, 3, pred, NULL);
    ASSERT_NEAR(rb_rmse(&t, pred), vr, 1e-9);
    free(pred);
    biasedmf_free(m);
    synth_free(&s);
}

/* ---- snapshot and serving ------------------------------------------------------------------------ */

typedef struct saved {
    synth s;
    biasedmf *m;
    idmap *users, *items;
    char dir[4200];
} saved;

static void save_trained(saved *sv, const char *name)
{
    synth_make(&sv->s, 25, 18, 2, 0.4, 0.1, 0.2, 91);
    biasedmf_hparams hp;
    biasedmf_hparams_default(&hp);
    hp.factors = 5;
    hp.epochs = 10;
    sv->m = biasedmf_new(25, 18, 5, sv->s.mean, 0.1, 9);
    rb_train_input in = input_of(&sv->s, 9, 1);
    ASSERT_OK(biasedmf_train(sv->m, &hp, &in, NULL, NULL));
    sv->users = idmap_new(0);
    sv->items = idmap_new(0);
    char id[32];
    for (int u = 0; u < 25; u++) {
        snprintf(id, sizeof id, "u%d", u);
        ASSERT_EQ(idmap_intern(sv->users, id, strlen(id)), u);
    }
    for (int i = 0; i < 18; i++) {
        snprintf(id, sizeof id, "m%d", i);
        ASSERT_EQ(idmap_intern(sv->items, id, strlen(id)), i);
    }
    rating_base_src src = {.users = sv->users, .items = sv->items, .offsets = sv->s.uoff,
                           .items_by_user = sv->s.ucol, .default_rating = 2.75f, .rmin = 1, .rmax = 5,
                           .mean = (float)sv->s.mean};
    json_t *extra = json_pack("{s:{s:f}}", "metrics", "valid_rmse", 0.5);
    uint64_t v;
    ASSERT_OK(biasedmf_save(sv->m, &src, test_tmpdir(), name, extra, &v));
    json_decref(extra);
    ASSERT_EQ(v, 1);
    ASSERT_OK(snap_path(sv->dir, sizeof sv->dir, test_tmpdir(), name ? name : "biasedmf", v));
}

static void saved_free(saved *sv)
{
    biasedmf_free(sv->m);
    idmap_free(sv->users);
    idmap_free(sv->items);
    synth_free(&sv->s);
}

TEST(bmf_snapshot_round_trip_and_serving)
{
    saved sv;
    save_trained(&sv, NULL);
    snap *s;
    ASSERT_OK(snap_open(&s, sv.dir));
    ASSERT_STR_EQ(snap_type(s), "biasedmf");
    const json_t *meta = snap_meta(s);
    ASSERT_EQ(json_integer_value(json_object_get(meta, "factors")), 5);
    ASSERT(json_object_get(json_object_get(meta, "metrics"), "valid_rmse"));
    ASSERT(json_object_get(meta, "rating"));
    ASSERT(json_object_get(meta, "type") == NULL);
    const model_type *ty = model_type_find("biasedmf");
    ASSERT(ty == &biasedmf_type);
    ASSERT(ty->rate && ty->recommend && ty->recommend->item_matrix && ty->recommend->query);
    void *h;
    ASSERT_OK(ty->load(&h, s));
    ASSERT_OK(ty->warm(h));
    const biasedmf *lm = h;
    ASSERT(lm->slab == NULL && lm->U == 25 && lm->N == 18 && lm->F == 5);
    ASSERT_EQ(idmap_size(ty->items(h)), 18);
    ASSERT_EQ(idmap_find(ty->users(h), "u7", 2), 7);
    ASSERT(ty->popular(h) != NULL);
    /* the table's entries are rating_base.h's accessors over the handle's base (its first member) */
    ASSERT(ty->users == rb_type_users && ty->items == rb_type_items && ty->popular == rb_type_popular &&
           ty->recommend->seen == rb_type_seen);
    ASSERT(ty->users(h) == lm->base.users && ty->items(h) == lm->base.items && ty->popular(h) == lm->base.popular);

    /* rate: the same floats as the trained model, the default (meta) and flags for unknowns */
    void *rs = ty->rate->scratch_new(h, 20);
    ASSERT(rs);
    int32_t items[20];
    float out[20], want[20];
    uint8_t fb[20], wfb[20];
    for (int u = -1; u < 25; u++) {
        for (int b = 0; b < 20; b++) items[b] = b - 1; /* -1, 0..17, 18 (out of range) */
        ty->rate->predict(h, u, items, 20, out, fb, rs);
        int32_t us[20];
        float r0[20] = {0};
        for (int b = 0; b < 20; b++) us[b] = u;
        rb_triples t = {20, us, items, r0};
        biasedmf_predict(sv.m, &t, 2.75f, want, wfb);
        for (int b = 0; b < 20; b++) {
            ASSERT(out[b] == want[b]);
            ASSERT_EQ(fb[b], wfb[b]);
            if (!fb[b]) ASSERT_NEAR(out[b], formula(sv.m, u, items[b]), 1e-5);
            else ASSERT(out[b] == 2.75f);
        }
    }
    ty->rate->scratch_free(rs);

    /* recommend: score = predicted rating; item matrix + query give it up to a per-user constant */
    void *sc = ty->recommend->scratch_new(h);
    ASSERT(sc);
    model_item_matrix im;
    ASSERT_OK(ty->recommend->item_matrix(h, &im));
    ASSERT(im.n == 18 && im.d == 5 && im.q_offset == 0 && im.bias);
    float scores[18], q[5];
    for (int u = 0; u < 25; u++) {
        ty->recommend->score(h, u, scores, sc);
        ty->recommend->query(h, u, q, sc);
        double c = scores[0] - (bmf_dot_ref(q, im.w, 5) + im.bias[0]);
        for (int i = 0; i < 18; i++) {
            ASSERT_NEAR(scores[i], formula(sv.m, u, i), 1e-5);
            ASSERT_NEAR(bmf_dot_ref(q, im.w + (size_t)i * 5, 5) + im.bias[i] + c, scores[i], 1e-5);
        }
        const int32_t *seen;
        int64_t n = ty->recommend->seen(h, u, &seen);
        ASSERT_EQ(n, sv.s.uoff[u + 1] - sv.s.uoff[u]);
        for (int64_t k = 0; k < n; k++) ASSERT_EQ(seen[k], sv.s.ucol[sv.s.uoff[u] + k]);
    }
    ty->recommend->scratch_free(sc);
    ty->free(h);
    snap_close(s);
    saved_free(&sv);
}

TEST(bmf_snapshot_under_another_name)
{
    saved sv;
    save_trained(&sv, "mf-small");
    snap *s;
    ASSERT_OK(snap_open(&s, sv.dir));
    ASSERT_STR_EQ(snap_model(s), "mf-small");
    ASSERT_STR_EQ(snap_type(s), "biasedmf");
    void *h;
    ASSERT_OK(biasedmf_type.load(&h, s));
    biasedmf_type.free(h);
    snap_close(s);
    saved_free(&sv);
}

TEST(bmf_load_refuses_missing_or_bad_tensors)
{
    /* a snapshot with the rating_base part and meta "factors" but no Q; then one with a NaN in bi */
    saved sv;
    save_trained(&sv, NULL);
    rating_base_src src = {.users = sv.users, .items = sv.items, .offsets = sv.s.uoff, .items_by_user = sv.s.ucol,
                           .default_rating = 3, .rmin = 1, .rmax = 5, .mean = 3.5f};
    for (int variant = 0; variant < 2; variant++) {
        snap_writer *w;
        ASSERT_OK(snap_writer_open(&w, test_tmpdir(), "broken", 0));
        int64_t s1[1] = {1}, su[1] = {25}, sn[1] = {18}, sp[2] = {25, 5}, sq[2] = {18, 5};
        float bi[18];
        memcpy(bi, sv.m->bi, sizeof bi);
        if (variant == 1) bi[3] = NAN;
        ASSERT_OK(snap_put_tensor(w, "mu", SNAP_F32, 1, s1, sv.m->mu));
        ASSERT_OK(snap_put_tensor(w, "bu", SNAP_F32, 1, su, sv.m->bu));
        ASSERT_OK(snap_put_tensor(w, "bi", SNAP_F32, 1, sn, bi));
        ASSERT_OK(snap_put_tensor(w, "P", SNAP_F32, 2, sp, sv.m->P));
        if (variant == 1) ASSERT_OK(snap_put_tensor(w, "Q", SNAP_F32, 2, sq, sv.m->Q));
        json_t *rm;
        ASSERT_OK(rb_save(w, &src, &rm));
        json_t *meta = json_pack("{s:i, s:o}", "factors", 5, "rating", rm);
        ASSERT_OK(snap_set_meta(w, meta));
        json_decref(meta);
        uint64_t v;
        ASSERT_OK(snap_writer_publish(w, &v));
        char dir[4200];
        ASSERT_OK(snap_path(dir, sizeof dir, test_tmpdir(), "broken", v));
        snap *s;
        ASSERT_OK(snap_open(&s, dir));
        void *h = (void *)1;
        ASSERT_RC(biasedmf_type.load(&h, s), RC_ECORRUPT);
        ASSERT(h == NULL);
        ASSERT_CONTAINS(rc_errmsg(), variant == 0 ? "Q" : "bi");
        snap_close(s);
    }
    saved_free(&sv);
}

/* ---- the trainer's command line ------------------------------------------------------------------- */

static double field(const char *out, const char *key)
{
    const char *p = strstr(out, key);
    return p ? atof(p + strlen(key)) : NAN;
}

TEST_TIMEOUT(bmf_cli_train_split_eval, 120)
{
    static char out[16384], out2[16384];
    const char *t = test_tmpdir(), *bin = test_recd_bin();
    ASSERT_EQ(test_run(out, sizeof out, "%s synth ratings --out %s/r.tsv --seed 3 --users 200 --items 100 --rows 8000 2>&1",
                       bin, t), 0);
    ASSERT_EQ(test_run(out, sizeof out, "%s split ratings --data %s/r.tsv --out %s/sp 2>&1", bin, t, t), 0);
    int st = test_run(out, sizeof out,
                      "%s train biasedmf --train %s/sp/train.tsv --valid %s/sp/valid.tsv --test %s/sp/test.tsv "
                      "--out %s/snaps --factors 8 --epochs 30 --lr 0.01 --quiet 2>&1",
                      bin, t, t, t, t);
    if (st != 0) FAIL("train exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "biasedmf rmse=");
    ASSERT_CONTAINS(out, "solver=sgd");
    double rmse = field(out, "biasedmf rmse=");
    ASSERT(rmse > 0 && rmse < 1.5);
    st = test_run(out2, sizeof out2, "%s eval biasedmf --snapshot %s/snaps/biasedmf --test %s/sp/test.tsv --quiet 2>&1",
                  bin, t, t);
    if (st != 0) FAIL("eval exited %d: %s", st, out2);
    ASSERT_NEAR(field(out2, "rmse="), rmse, 1e-4);
    ASSERT_NEAR(field(out2, " n="), field(out, " n="), 0);
    /* --data splits here; ALS; another name */
    st = test_run(out, sizeof out,
                  "%s train biasedmf --data %s/r.tsv --out %s/snaps --name mf-als --solver als --reg 0.05 "
                  "--factors 4 --epochs 5 --quiet 2>&1",
                  bin, t, t);
    if (st != 0) FAIL("train (als) exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "mf-als rmse=");
    ASSERT_CONTAINS(out, "solver=als");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/snaps/mf-als/1", t);
    snap *s;
    ASSERT_OK(snap_open(&s, dir));
    const json_t *meta = snap_meta(s);
    ASSERT(json_object_get(json_object_get(meta, "metrics"), "test"));
    ASSERT(json_object_get(json_object_get(meta, "metrics"), "valid"));
    ASSERT(json_object_get(json_object_get(meta, "data"), "n_train"));
    ASSERT(json_object_get(json_object_get(meta, "train"), "train_s"));
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(meta, "config"), "solver")), "als");
    snap_close(s);
}

TEST(bmf_cli_refuses_bad_settings)
{
    static char out[8192];
    const char *t = test_tmpdir(), *bin = test_recd_bin();
    ASSERT_EQ(test_run(out, sizeof out, "%s train biasedmf --data x --factors 0 2>&1", bin), 2);
    ASSERT_CONTAINS(out, "factors");
    ASSERT_EQ(test_run(out, sizeof out, "%s train biasedmf --data x --train y 2>&1", bin), 2);
    ASSERT_EQ(test_run(out, sizeof out, "%s train biasedmf --data x --solver als --reg 0 2>&1", bin), 2);
    ASSERT_CONTAINS(out, "reg");
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/c.json", t);
    test_write_file(cfg, "{\n  \"factors\": 8,\n  \"lr\": \"fast\"\n}\n");
    ASSERT_EQ(test_run(out, sizeof out, "%s train biasedmf -c %s --data x 2>&1", bin, cfg), 2);
    ASSERT_CONTAINS(out, "c.json:3");
    ASSERT_EQ(test_run(out, sizeof out, "%s train biasedmf --data %s/none.tsv --out %s/snaps 2>&1", bin, t, t), 1);
    ASSERT_CONTAINS(out, "none.tsv");
    ASSERT_EQ(test_run(out, sizeof out, "%s train biasedmf --help", bin), 0);
    ASSERT_CONTAINS(out, "init_std");
}
