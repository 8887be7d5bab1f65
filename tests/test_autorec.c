/* tests/test_autorec.c - models/autorec: the sparse loss against finite differences of a double
 * reference and against the naive dense pass, determinism (seed, threads), learning a synthetic
 * low-rank rating matrix with L-BFGS and Rprop, the snapshot round trip with `rate` and `recommend`
 * agreeing, the default rating whenever the user OR the item is unknown, and the trainer command. */
#include "models/autorec.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/snap.h"
#include "tests/testlib.h"

/* A synthetic rating matrix: r(u,i) = clip(3.5 + p_u . q_i + noise), rank F; each pair observed in
 * training with probability dens, held out for validation with probability vfrac of the rest. */
typedef struct {
    int64_t U, N;
    /* by user and by item */
    int64_t *uoff, *ioff;
    int32_t *ucol, *icol;
    float *uval, *ival;
    /* validation triples */
    int64_t nv;
    int32_t *vu, *vi;
    float *vr;
    double mean;
} synth;

static void synth_make(synth *s, int64_t U, int64_t N, int F, double dens, double vfrac, double noise, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->U = U;
    s->N = N;
    rng_t r;
    rng_seed(&r, seed);
    double *P = malloc(sizeof(double) * (size_t)(U * F)), *Q = malloc(sizeof(double) * (size_t)(N * F));
    for (int64_t j = 0; j < U * F; j++) P[j] = rng_normal(&r) * 0.8;
    for (int64_t j = 0; j < N * F; j++) Q[j] = rng_normal(&r) * 0.8;
    float *M = malloc(sizeof(float) * (size_t)(U * N)); /* rating, or 0: absent; -x: validation */
    int64_t R = 0;
    for (int64_t u = 0; u < U; u++)
        for (int64_t i = 0; i < N; i++) {
            double v = 3.5 + noise * rng_normal(&r);
            for (int f = 0; f < F; f++) v += P[u * F + f] * Q[i * F + f];
            v = v < 1 ? 1 : v > 5 ? 5 : v;
            double a = rng_uniform(&r);
            float x = 0;
            if (a < dens) {
                x = (float)v;
                R++;
            } else if (a < dens + vfrac * (1 - dens)) {
                x = -(float)v;
                s->nv++;
            }
            M[u * N + i] = x;
        }
    s->uoff = calloc((size_t)U + 1, sizeof(int64_t));
    s->ioff = calloc((size_t)N + 1, sizeof(int64_t));
    s->ucol = malloc(sizeof(int32_t) * (size_t)(R + 1));
    s->icol = malloc(sizeof(int32_t) * (size_t)(R + 1));
    s->uval = malloc(sizeof(float) * (size_t)(R + 1));
    s->ival = malloc(sizeof(float) * (size_t)(R + 1));
    s->vu = malloc(sizeof(int32_t) * (size_t)(s->nv + 1));
    s->vi = malloc(sizeof(int32_t) * (size_t)(s->nv + 1));
    s->vr = malloc(sizeof(float) * (size_t)(s->nv + 1));
    int64_t k = 0, kv = 0;
    double sum = 0;
    for (int64_t u = 0; u < U; u++) {
        for (int64_t i = 0; i < N; i++) {
            float x = M[u * N + i];
            if (x > 0) {
                s->ucol[k] = (int32_t)i;
                s->uval[k++] = x;
                sum += x;
            } else if (x < 0) {
                s->vu[kv] = (int32_t)u;
                s->vi[kv] = (int32_t)i;
                s->vr[kv++] = -x;
            }
        }
        s->uoff[u + 1] = k;
    }
    k = 0;
    for (int64_t i = 0; i < N; i++) {
        for (int64_t u = 0; u < U; u++)
            if (M[u * N + i] > 0) {
                s->icol[k] = (int32_t)u;
                s->ival[k++] = M[u * N + i];
            }
        s->ioff[i + 1] = k;
    }
    s->mean = R > 0 ? sum / (double)R : 3;
    free(P);
    free(Q);
    free(M);
}

static void synth_free(synth *s)
{
    free(s->uoff), free(s->ioff), free(s->ucol), free(s->icol), free(s->uval), free(s->ival);
    free(s->vu), free(s->vi), free(s->vr);
}

static rb_train_input synth_input(const synth *s, int threads)
{
    rb_train_input in;
    memset(&in, 0, sizeof in);
    in.by_user = (rb_rows){s->U, s->uoff[s->U], s->uoff, s->ucol, s->uval};
    in.by_item = (rb_rows){s->N, s->ioff[s->N], s->ioff, s->icol, s->ival};
    in.valid = (rb_triples){s->nv, s->vu, s->vi, s->vr};
    in.mean = s->mean;
    in.default_rating = 3;
    in.rmin = 1;
    in.rmax = 5;
    in.threads = threads;
    in.seed = 1;
    in.verbose = 0;
    return in;
}

/* Central differences of the double reference loss against its gradient and the fast gradient, on
 * every parameter of a tiny model. */
TEST(autorec_grad_finite_differences)
{
    for (int variant = 0; variant < 2; variant++) {
        synth s;
        synth_make(&s, 7, 5, 2, 0.5, 0, 0.3, 11);
        rb_train_input in = synth_input(&s, 1);
        autorec *m = autorec_new(variant, s.U, s.N, 3, s.mean, 3.0, 5); /* large init: saturating units too */
        ASSERT(m);
        autorec_problem *p = autorec_problem_new(m, &in);
        ASSERT(p);
        size_t P = autorec_nparams(m);
        float *x = autorec_slab(m), *g_ref = malloc(P * sizeof(float)), *g_fast = malloc(P * sizeof(float));
        double lambda = 0.7;
        double L_ref = autorec_loss_grad_ref(p, x, g_ref, lambda);
        double L_fast = autorec_loss_grad(p, x, g_fast, lambda);
        ASSERT_NEAR(L_fast, L_ref, 1e-5 * fabs(L_ref));
        double gmax = 0;
        for (size_t j = 0; j < P; j++) gmax = fmax(gmax, fabs(g_ref[j]));
        float *gt = malloc(P * sizeof(float));
        for (size_t j = 0; j < P; j++) {
            float x0 = x[j];
            float xp = x0 + 1e-2f, xm = x0 - 1e-2f;
            x[j] = xp;
            double fp = autorec_loss_grad_ref(p, x, gt, lambda);
            x[j] = xm;
            double fm = autorec_loss_grad_ref(p, x, gt, lambda);
            x[j] = x0;
            double fd = (fp - fm) / ((double)xp - (double)xm);
            if (fabs(fd - g_ref[j]) > 2e-3 * fmax(1.0, fabs(fd)))
                FAIL("variant %d param %zu: finite difference %.8g, reference gradient %.8g", variant, j, fd,
                     (double)g_ref[j]);
            if (fabs((double)g_fast[j] - g_ref[j]) > 1e-4 * fmax(1.0, gmax))
                FAIL("variant %d param %zu: fast gradient %.8g, reference %.8g", variant, j, (double)g_fast[j],
                     (double)g_ref[j]);
        }
        free(gt), free(g_ref), free(g_fast);
        autorec_problem_free(p);
        autorec_free(m);
        synth_free(&s);
    }
}

/* The sparse pass equals the naive dense pass on a bigger model, and gives the same bits on 1 and 3
 * threads. */
TEST(autorec_sparse_matches_dense)
{
    for (int variant = 0; variant < 2; variant++) {
        synth s;
        synth_make(&s, 40, 30, 3, 0.3, 0, 0.3, 3);
        rb_train_input in1 = synth_input(&s, 1), in3 = synth_input(&s, 3);
        autorec *m = autorec_new(variant, s.U, s.N, 16, s.mean, 1.0, 9);
        ASSERT(m);
        autorec_problem *p1 = autorec_problem_new(m, &in1), *p3 = autorec_problem_new(m, &in3);
        ASSERT(p1 && p3);
        size_t P = autorec_nparams(m);
        float *ga = malloc(P * sizeof(float)), *gb = malloc(P * sizeof(float)), *gr = malloc(P * sizeof(float));
        double La = autorec_loss_grad(p1, autorec_slab(m), ga, 50);
        double Lb = autorec_loss_grad(p3, autorec_slab(m), gb, 50);
        double Lr = autorec_loss_grad_ref(p1, autorec_slab(m), gr, 50);
        ASSERT(La == Lb);
        ASSERT(memcmp(ga, gb, P * sizeof(float)) == 0);
        ASSERT_NEAR(La, Lr, 1e-5 * Lr);
        double gmax = 0;
        for (size_t j = 0; j < P; j++) gmax = fmax(gmax, fabs(gr[j]));
        for (size_t j = 0; j < P; j++)
            if (fabs((double)ga[j] - gr[j]) > 1e-5 * gmax)
                FAIL("variant %d param %zu: sparse %.8g, dense %.8g", variant, j, (double)ga[j], (double)gr[j]);
        free(ga), free(gb), free(gr);
        autorec_problem_free(p1);
        autorec_problem_free(p3);
        autorec_free(m);
        synth_free(&s);
    }
}

/* the RMSE of predicting the training mean for every validation rating */
static double mean_rmse(const synth *s)
{
    double e = 0;
    for (int64_t k = 0; k < s->nv; k++) e += (s->vr[k] - s->mean) * (s->vr[k] - s->mean);
    return sqrt(e / (double)s->nv);
}

TEST(autorec_learns_low_rank)
{
    synth s;
    synth_make(&s, 150, 120, 3, 0.35, 0.3, 0.1, 7);
    double base = mean_rmse(&s);
    for (int variant = 0; variant < 2; variant++) {
        rb_train_input in = synth_input(&s, 2);
        autorec_hparams hp;
        autorec_hparams_default(&hp);
        hp.variant = variant;
        hp.hidden = 24;
        hp.lambda = 1;
        hp.optimizer = variant == AUTOREC_ITEM ? AUTOREC_LBFGS : AUTOREC_RPROP;
        hp.iters = variant == AUTOREC_ITEM ? 150 : 300;
        hp.eval_every = 5;
        autorec *m = autorec_new(variant, s.U, s.N, hp.hidden, s.mean, 1.0, 1);
        ASSERT(m);
        double vr;
        int iters;
        int kept;
        ASSERT_OK(autorec_train(m, &hp, &in, &vr, &kept, &iters));
        ASSERT(kept > 0 && kept <= iters && kept % hp.eval_every == 0);
        ASSERT(iters > 0 && iters <= hp.iters);
        ASSERT(m->H);
        /* the kept validation RMSE is what predict gives now */
        float *pred = malloc(sizeof(float) * (size_t)s.nv);
        autorec_predict(m, &in.valid, 3, pred, NULL);
        ASSERT_NEAR(rb_rmse(&in.valid, pred), vr, 1e-6);
        if (!(vr < 0.6 * base))
            FAIL("variant %s: validation rmse %.4f, mean predictor %.4f", autorec_variant_name(variant), vr, base);
        free(pred);
        autorec_free(m);
    }
    synth_free(&s);
}

TEST(autorec_deterministic)
{
    synth s;
    synth_make(&s, 50, 40, 2, 0.4, 0.2, 0.2, 5);
    autorec_hparams hp;
    autorec_hparams_default(&hp);
    hp.hidden = 8;
    hp.lambda = 1;
    hp.iters = 15;
    hp.eval_every = 3;
    float *first = NULL;
    size_t P = 0;
    for (int run = 0; run < 3; run++) {
        rb_train_input in = synth_input(&s, run == 2 ? 2 : 1); /* threads change nothing */
        autorec *m = autorec_new(AUTOREC_ITEM, s.U, s.N, 8, s.mean, 1.0, 42);
        ASSERT_OK(autorec_train(m, &hp, &in, NULL, NULL, NULL));
        P = autorec_nparams(m);
        if (!first) {
            first = malloc(P * sizeof(float));
            memcpy(first, autorec_slab(m), P * sizeof(float));
        } else {
            ASSERT(memcmp(first, autorec_slab(m), P * sizeof(float)) == 0);
        }
        autorec_free(m);
    }
    /* another seed, other parameters */
    autorec *m2 = autorec_new(AUTOREC_ITEM, s.U, s.N, 8, s.mean, 1.0, 43);
    ASSERT(memcmp(first, autorec_slab(m2), P * sizeof(float)) != 0);
    autorec_free(m2);
    free(first);
    synth_free(&s);
}

/* Predictions come from the training ratings only: the ratings being predicted never reach the
 * encoder (changing them changes nothing), and an unknown user OR item gets the default. */
TEST(autorec_no_leak_and_default)
{
    synth s;
    synth_make(&s, 30, 20, 2, 0.4, 0.3, 0.2, 8);
    rb_train_input in = synth_input(&s, 1);
    autorec *m = autorec_new(AUTOREC_ITEM, s.U, s.N, 6, s.mean, 1.0, 3);
    ASSERT_OK(autorec_encode(m, &in));
    int32_t u[4] = {0, -1, 2, -1}, i[4] = {1, 3, -1, -1};
    float r1[4] = {1, 2, 3, 4}, r2[4] = {5, 5, 5, 5}, p1[4], p2[4];
    uint8_t f[4];
    rb_triples t1 = {4, u, i, r1}, t2 = {4, u, i, r2};
    autorec_predict(m, &t1, 3, p1, f);
    autorec_predict(m, &t2, 3, p2, NULL);
    ASSERT(memcmp(p1, p2, sizeof p1) == 0);
    ASSERT_EQ(f[0], 0);
    for (int k = 1; k < 4; k++) {
        ASSERT_EQ(f[k], 1);
        ASSERT_NEAR(p1[k], 3, 0);
    }
    /* (0,1) is W[0] . h_1 + b[0] with h_1 from item 1's training column */
    const int K = 6;
    float h[6];
    const float *Vt = m->Vt;
    for (int k = 0; k < K; k++) h[k] = m->mu[k];
    for (int64_t j = s.ioff[1]; j < s.ioff[2]; j++)
        for (int k = 0; k < K; k++) h[k] += s.ival[j] * Vt[(size_t)s.icol[j] * K + k];
    double want = m->b[0];
    for (int k = 0; k < K; k++) want += m->W[k] / (1 + exp(-h[k]));
    ASSERT_NEAR(p1[0], want, 1e-5);
    autorec_free(m);
    synth_free(&s);
}

/* ids "u0".. and "i0".. for the vocabularies */
static idmap *ids(const char *prefix, int64_t n)
{
    idmap *m = idmap_new((size_t)n);
    char buf[32];
    for (int64_t k = 0; k < n; k++) {
        int len = snprintf(buf, sizeof buf, "%s%lld", prefix, (long long)k);
        idmap_intern(m, buf, (size_t)len);
    }
    return m;
}

TEST(autorec_snapshot_rate_recommend)
{
    for (int variant = 0; variant < 2; variant++) {
        synth s;
        synth_make(&s, 30, 25, 2, 0.4, 0.2, 0.2, 4);
        rb_train_input in = synth_input(&s, 2);
        autorec_hparams hp;
        autorec_hparams_default(&hp);
        hp.variant = variant;
        hp.hidden = 5;
        hp.lambda = 1;
        hp.iters = 10;
        hp.eval_every = 5;
        autorec *m = autorec_new(variant, s.U, s.N, 5, s.mean, 1.0, 2);
        ASSERT_OK(autorec_train(m, &hp, &in, NULL, NULL, NULL));
        idmap *users = ids("u", s.U), *items = ids("i", s.N);
        rating_base_src src = {users, items, s.uoff, s.ucol, 3, 1, 5, (float)s.mean};
        json_t *extra = json_pack("{s:s}", "note", "test");
        uint64_t ver = 0;
        ASSERT_OK(autorec_save(m, &src, test_tmpdir(), NULL, extra, &ver));
        ASSERT_EQ(ver, 1);
        json_decref(extra);
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s/1", test_tmpdir(), variant == AUTOREC_ITEM ? "i-autorec" : "u-autorec");
        snap *sn = NULL;
        ASSERT_OK(snap_open(&sn, dir));
        ASSERT_STR_EQ(snap_type(sn), "autorec");
        ASSERT_STR_EQ(json_string_value(json_object_get(snap_meta(sn), "note")), "test");
        const model_type *ty = &autorec_type;
        void *h = NULL;
        ASSERT_OK(ty->load(&h, sn));
        ASSERT_OK(ty->warm(h));
        ASSERT_EQ(idmap_size(ty->items(h)), s.N);
        ASSERT_EQ(idmap_size(ty->users(h)), s.U);
        ASSERT(ty->users == rb_type_users && ty->items == rb_type_items && ty->popular == rb_type_popular &&
               ty->recommend->seen == rb_type_seen);
        /* rate equals the trained model's predictions; unknown user or item: default, flagged */
        int32_t it[26];
        float out[26], want[26], sc[25], q[5];
        uint8_t fb[26];
        for (int k = 0; k < 25; k++) it[k] = k;
        it[25] = -1;
        void *rs = ty->rate->scratch_new(h, 26);
        ASSERT(rs);
        for (int32_t uu = 0; uu < s.U; uu++) {
            ty->rate->predict(h, uu, it, 26, out, fb, rs);
            int32_t us[25];
            for (int k = 0; k < 25; k++) us[k] = uu;
            rb_triples t = {25, us, it, out};
            autorec_predict(m, &t, 3, want, NULL);
            for (int k = 0; k < 25; k++) {
                ASSERT_NEAR(out[k], want[k], 1e-6);
                ASSERT_EQ(fb[k], 0);
            }
            ASSERT_NEAR(out[25], 3, 0);
            ASSERT_EQ(fb[25], 1);
        }
        ty->rate->predict(h, -1, it, 3, out, fb, rs);
        ASSERT(fb[0] && fb[1] && fb[2] && out[0] == 3);
        /* recommend: score = rate up to a per-user constant = item matrix . query + bias */
        model_item_matrix im;
        ASSERT_OK(ty->recommend->item_matrix(h, &im));
        ASSERT_EQ(im.n, s.N);
        ASSERT_EQ(im.d, 5);
        void *sc_s = ty->recommend->scratch_new(h);
        for (int32_t uu = 0; uu < s.U; uu += 7) {
            ty->recommend->score(h, uu, sc, sc_s);
            ty->recommend->query(h, uu, q, sc_s);
            ty->rate->predict(h, uu, it, 25, out, fb, rs);
            double c0 = 0;
            for (int i = 0; i < 25; i++) {
                double v = im.bias ? im.bias[i] : 0;
                for (int k = 0; k < 5; k++) v += (double)q[k] * im.w[(size_t)i * 5 + k];
                ASSERT_NEAR(sc[i], out[i], 1e-5);
                if (i == 0) c0 = out[i] - v;
                ASSERT_NEAR(out[i] - v, c0, 1e-4); /* the same constant for every item */
            }
            const int32_t *seen;
            int64_t ns = ty->recommend->seen(h, uu, &seen);
            ASSERT_EQ(ns, s.uoff[uu + 1] - s.uoff[uu]);
            for (int64_t k = 0; k < ns; k++) ASSERT_EQ(seen[k], s.ucol[s.uoff[uu] + k]);
        }
        ty->recommend->scratch_free(sc_s);
        ty->rate->scratch_free(rs);
        ty->free(h);
        snap_close(sn);
        idmap_free(users);
        idmap_free(items);
        autorec_free(m);
        synth_free(&s);
    }
}

/* Set the training rating of (u, i) to r in both orientations (the pair must be observed). */
static void synth_set(synth *s, int32_t u, int32_t i, float r)
{
    int found = 0;
    for (int64_t k = s->uoff[u]; k < s->uoff[u + 1]; k++)
        if (s->ucol[k] == i) s->uval[k] = r, found++;
    for (int64_t k = s->ioff[i]; k < s->ioff[i + 1]; k++)
        if (s->icol[k] == u) s->ival[k] = r, found++;
    ASSERT_EQ(found, 2);
}

/* Train a fresh model on in with hp; the return code, the message in msg (cap 512). */
static int train_rc(const synth *s, const autorec_hparams *hp, const rb_train_input *in, char *msg, double *vr,
                    int *kept, int *run)
{
    autorec *m = autorec_new(hp->variant, s->U, s->N, hp->hidden, s->mean, 1, 1);
    ASSERT(m);
    int rc = autorec_train(m, hp, in, vr, kept, run);
    snprintf(msg, 512, "%s", rc_errmsg());
    if (rc == RC_OK) { /* what would be published is finite */
        for (size_t j = 0; j < autorec_nparams(m); j++) ASSERT(isfinite(autorec_slab(m)[j]));
        for (int64_t j = 0; j < m->E * m->K; j++) ASSERT(isfinite(m->H[j]));
    }
    autorec_free(m);
    return rc;
}

/* A rating near FLT_MAX overflows the (float) gradient at the initial parameters: both optimisers
 * refuse to start (L-BFGS would otherwise stop at once and leave the initial parameters); Rprop steps
 * far too large overflow later. RC_ERANGE, the iteration and the likely cause in the message. */
TEST(autorec_train_refuses_divergence)
{
    synth s;
    synth_make(&s, 12, 10, 2, 0.5, 0.2, 0.1, 3);
    autorec_hparams hp;
    autorec_hparams_default(&hp);
    hp.hidden = 4;
    hp.iters = 20;
    hp.eval_every = 5;
    hp.lambda = 1;
    char msg[512];
    double vr;
    int kept, run;
    rb_train_input in = synth_input(&s, 2);
    /* Rprop's steps: 1e30 per element overflows the loss or its gradient within a few iterations */
    hp.optimizer = AUTOREC_RPROP;
    hp.rprop_step = hp.rprop_step_max = 1e30;
    ASSERT_RC(train_rc(&s, &hp, &in, msg, &vr, &kept, &run), RC_ERANGE);
    ASSERT_CONTAINS(msg, "autorec: training diverged at iteration ");
    ASSERT_CONTAINS(msg, " (rprop_step_max 1e+30 too large?)");
    ASSERT_CONTAINS(msg, "training ratings span [1, 5]");
    ASSERT(strstr(msg, "at iteration 1 ") == NULL); /* not before the first step */
    hp.rprop_step = 0.01;
    hp.rprop_step_max = 1;
    ASSERT_RC(train_rc(&s, &hp, &in, msg, &vr, &kept, &run), RC_OK);
    /* a rating of 3e38 */
    int32_t u = 0;
    while (s.uoff[u + 1] == s.uoff[u]) u++;
    synth_set(&s, u, s.ucol[s.uoff[u]], 3e38f);
    for (int opt = AUTOREC_LBFGS; opt <= AUTOREC_RPROP; opt++) {
        hp.optimizer = opt;
        for (int valid = 1; valid >= 0; valid--) {
            in = synth_input(&s, 2);
            if (!valid) in.valid.n = 0;
            ASSERT_RC(train_rc(&s, &hp, &in, msg, &vr, &kept, &run), RC_ERANGE);
            ASSERT_CONTAINS(msg, "autorec: training diverged at iteration 1 (ratings out of scale?): gradient ");
            ASSERT_CONTAINS(msg, " at the initial parameters; training ratings span [1, 3e+38]");
        }
    }
    /* 1e30 keeps every value finite (the loss sums in double): L-BFGS makes no progress and stops before
     * the first validation is due; the point kept is still validated */
    synth_set(&s, u, s.ucol[s.uoff[u]], 1e30f);
    in = synth_input(&s, 2);
    hp.optimizer = AUTOREC_LBFGS;
    ASSERT_RC(train_rc(&s, &hp, &in, msg, &vr, &kept, &run), RC_OK);
    ASSERT(run < hp.eval_every);
    ASSERT_EQ(kept, run);
    ASSERT(isfinite(vr));
    synth_free(&s);
}

TEST(autorec_hparams_refused)
{
    autorec_hparams hp;
    autorec_hparams_default(&hp);
    ASSERT_OK(autorec_hparams_check(&hp));
    hp.lambda = -1;
    ASSERT_RC(autorec_hparams_check(&hp), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "lambda");
    ASSERT_EQ(autorec_variant_parse("user"), AUTOREC_USER);
    ASSERT_EQ(autorec_variant_parse("items"), -1);
    ASSERT_EQ(autorec_optimizer_parse("rprop"), AUTOREC_RPROP);
    /* rows that do not match the model are refused with a message */
    synth s;
    synth_make(&s, 10, 8, 2, 0.5, 0, 0.2, 1);
    rb_train_input in = synth_input(&s, 1);
    autorec *m = autorec_new(AUTOREC_ITEM, 11, 8, 4, 3, 1, 1);
    ASSERT(!autorec_problem_new(m, &in));
    ASSERT_CONTAINS(rc_errmsg(), "do not match");
    autorec_free(m);
    synth_free(&s);
}

TEST(autorec_train_command)
{
    const char *bin = test_recd_bin(), *tmp = test_tmpdir();
    char out[8192];
    ASSERT_EQ(test_run(out, sizeof out, "%s synth ratings --out %s/r.tsv --users 120 --items 80 --rows 3000 --seed 3",
                       bin, tmp), 0);
    int st = test_run(out, sizeof out,
                      "%s train autorec --data %s/r.tsv --out %s/snaps --hidden 10 --lambda 5 --epochs 20 --eval-every 5 "
                      "--quiet 2>&1", bin, tmp, tmp);
    if (st != 0) FAIL("train exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "i-autorec rmse=");
    ASSERT_CONTAINS(out, "iters=");
    /* --refit: the chosen iteration count again on training + validation ratings */
    st = test_run(out, sizeof out,
                  "%s train autorec --data %s/r.tsv --out %s/snaps --name iref --hidden 8 --lambda 5 --epochs 10 "
                  "--eval-every 2 --refit --quiet 2>&1", bin, tmp, tmp);
    if (st != 0) FAIL("train --refit exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "iref rmse=");
    ASSERT_CONTAINS(out, "refit=1");
    st = test_run(out, sizeof out,
                  "%s train autorec --variant user --name uar --data %s/r.tsv --out %s/snaps --hidden 6 --epochs 10 --quiet 2>&1",
                  bin, tmp, tmp);
    if (st != 0) FAIL("train --variant user exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "uar rmse=");
    st = test_run(out, sizeof out, "%s eval autorec --snapshot %s/snaps/i-autorec --test %s/r.tsv --quiet 2>&1", bin, tmp,
                  tmp);
    if (st != 0) FAIL("eval exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "rmse=");
    /* a bad setting names it */
    st = test_run(out, sizeof out, "%s train autorec --data %s/r.tsv --variant items 2>&1", bin, tmp);
    ASSERT_EQ(st, 2);
    ASSERT_CONTAINS(out, "variant");
}
