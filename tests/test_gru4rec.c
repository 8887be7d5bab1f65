/* tests/test_gru4rec.c - GRU4Rec: snapshot round trip, serving math against a naive reference,
 * finite-difference gradient checks (GRU cell, embeddings, each loss), training sanity. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"
#include "core/rng.h"
#include "core/snap.h"
#include "models/gru4rec.h"
#include "models/gru4rec_impl.h"
#include "tests/testlib.h"

static idmap *make_items(int n)
{
    idmap *v = idmap_new(0);
    ASSERT(v);
    char key[32];
    for (int i = 0; i < n; i++) {
        int len = snprintf(key, sizeof key, "item-%d", 1000 + i * 7);
        ASSERT_EQ(idmap_intern(v, key, (size_t)len), i);
    }
    return v;
}

static void small_hp(gru4rec_hparams *hp, int H, int layers)
{
    gru4rec_hparams_default(hp);
    hp->n_layers = layers;
    for (int l = 0; l < layers; l++) hp->layers[l] = H + 2 * l;
    hp->batch_size = 4;
    hp->n_sample = 5;
    hp->sample_cache = 50;
}

/* Randomise every parameter (biases too) so tests exercise them. */
static void perturb(gru4rec *m, uint64_t seed, float scale)
{
    size_t n;
    float *p = gru4rec_params_buf(m, &n);
    ASSERT(p);
    rng_t r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) p[i] += scale * (2 * rng_uniformf(&r) - 1);
}

/* ---- naive double-precision reference of the serving math ---- */
static double dsig(double x) { return 1 / (1 + exp(-x)); }

static void ref_step(const gru4rec *m, double *h, int item)
{
    double x[512], xn[512];
    int in = m->in0;
    const float *tab = m->E ? m->E : m->Wy;
    if (!m->onehot)
        for (int k = 0; k < in; k++) x[k] = tab[(size_t)item * in + k];
    for (int l = 0; l < m->L; l++) {
        const gru4rec_layer *ly = &m->lay[l];
        int H = ly->H;
        double *hl = h + m->off[l];
        for (int j = 0; j < H; j++) {
            double a[3], c[3];
            for (int g = 0; g < 3; g++) {
                int col = g * H + j;
                a[g] = ly->bx[col];
                c[g] = ly->bh[col];
                if (l == 0 && m->onehot)
                    a[g] += ly->Wx[(size_t)item * 3 * H + col];
                else
                    for (int k = 0; k < ly->in; k++) a[g] += x[k] * ly->Wx[(size_t)k * 3 * H + col];
                for (int k = 0; k < H; k++) c[g] += hl[k] * ly->Wh[(size_t)k * 3 * H + col];
            }
            double r = dsig(a[0] + c[0]), z = dsig(a[1] + c[1]), nn = tanh(a[2] + r * c[2]);
            xn[j] = (1 - z) * nn + z * hl[j];
        }
        for (int j = 0; j < H; j++) x[j] = hl[j] = xn[j];
    }
}

static double ref_score(const gru4rec *m, const double *h, int item)
{
    int HL = m->lay[m->L - 1].H;
    double s = m->By[item];
    for (int k = 0; k < HL; k++) s += h[m->off[m->L - 1] + k] * m->Wy[(size_t)item * HL + k];
    return s;
}

static void check_serving_vs_ref(gru4rec *m)
{
    int B = 3, N = (int)gru4rec_n_items(m);
    size_t S = gru4rec_state_size(m);
    gru4rec_scratch *sc = gru4rec_scratch_new(m, 2); /* smaller than B: exercises chunking */
    ASSERT(sc);
    float *h = calloc((size_t)B * S, sizeof(float));
    double *hr = calloc((size_t)B * S, sizeof(double));
    float *scores = malloc((size_t)B * N * sizeof(float));
    int32_t seq[4][3] = {{0, 5, 9}, {3, 3, 1}, {N - 1, 2, 0}, {7, 1, 4}};
    for (int t = 0; t < 4; t++) {
        gru4rec_step(m, h, seq[t], B, sc);
        for (int b = 0; b < B; b++) ref_step(m, hr + (size_t)b * S, seq[t][b]);
        gru4rec_score(m, h, B, scores, sc);
        for (int b = 0; b < B; b++) {
            for (size_t k = 0; k < S; k++) ASSERT_NEAR(h[b * S + k], hr[b * S + k], 1e-5);
            for (int i = 0; i < N; i++) ASSERT_NEAR(scores[(size_t)b * N + i], ref_score(m, hr + b * S, i), 2e-5);
        }
    }
    free(h);
    free(hr);
    free(scores);
    gru4rec_scratch_free(sc);
}

TEST(gru4rec_serving_matches_reference)
{
    idmap *items = make_items(13);
    gru4rec_hparams hp;
    int modes[3][2] = {{1, 0}, {0, 5}, {0, 0}}; /* constrained, separate embedding, one-hot */
    for (int md = 0; md < 3; md++) {
        for (int layers = 1; layers <= 2; layers++) {
            small_hp(&hp, 6, layers);
            hp.constrained = modes[md][0];
            hp.embedding = modes[md][1];
            gru4rec *m = NULL;
            ASSERT_OK(gru4rec_new_random(&m, &hp, items, NULL, 42));
            perturb(m, 7 + md, 0.3f);
            check_serving_vs_ref(m);
            gru4rec_free(m);
        }
    }
    idmap_free(items);
}

TEST(gru4rec_init_official_ranges)
{
    idmap *items = make_items(50);
    gru4rec_hparams hp;
    small_hp(&hp, 8, 1);
    gru4rec *m = NULL;
    ASSERT_OK(gru4rec_new_random(&m, &hp, items, NULL, 1));
    float sy = sqrtf(6.0f / (50 + 8)), sg = sqrtf(6.0f / (8 + 8));
    float my = 0, mg = 0;
    for (int i = 0; i < 50 * 8; i++) my = fmaxf(my, fabsf(m->Wy[i]));
    for (int i = 0; i < 8 * 24; i++) mg = fmaxf(mg, fabsf(m->lay[0].Wh[i]));
    ASSERT(my <= sy && my > 0.8f * sy);
    ASSERT(mg <= sg && mg > 0.8f * sg);
    for (int i = 0; i < 50; i++) ASSERT_EQ(m->By[i], 0);
    /* same seed, same weights; another seed, other weights */
    gru4rec *m2 = NULL, *m3 = NULL;
    ASSERT_OK(gru4rec_new_random(&m2, &hp, items, NULL, 1));
    ASSERT_OK(gru4rec_new_random(&m3, &hp, items, NULL, 2));
    ASSERT(memcmp(m->params, m2->params, m->n_params * sizeof(float)) == 0);
    ASSERT(memcmp(m->params, m3->params, m->n_params * sizeof(float)) != 0);
    gru4rec_free(m);
    gru4rec_free(m2);
    gru4rec_free(m3);
    /* bad hparams are refused with a message */
    hp.dropout_hidden = 1.5;
    ASSERT_RC(gru4rec_new_random(&m, &hp, items, NULL, 1), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "dropout_p_hidden");
    idmap_free(items);
}

TEST(gru4rec_snapshot_roundtrip)
{
    idmap *items = make_items(17);
    int64_t counts[17];
    for (int i = 0; i < 17; i++) counts[i] = (i * 5) % 11 + 1;
    gru4rec_hparams hp;
    small_hp(&hp, 6, 2);
    gru4rec *m = NULL;
    ASSERT_OK(gru4rec_new_random(&m, &hp, items, counts, 3));
    perturb(m, 9, 0.2f);
    json_t *extra = json_pack("{s:{s:f}}", "metrics", "recall@20", 0.5);
    uint64_t ver = 0;
    ASSERT_OK(gru4rec_save(m, test_tmpdir(), "gru4rec", extra, &ver));
    json_decref(extra);
    ASSERT_EQ(ver, 1);
    char dir[1024];
    ASSERT_OK(snap_path(dir, sizeof dir, test_tmpdir(), "gru4rec", ver));
    snap *s = NULL;
    ASSERT_OK(snap_open(&s, dir));
    const model_type *mt = model_type_find("gru4rec");
    ASSERT(mt == &gru4rec_type);
    void *hnd = NULL;
    ASSERT_OK(mt->load(&hnd, s));
    gru4rec *m2 = hnd;
    ASSERT_OK(mt->warm(hnd));
    ASSERT_EQ(gru4rec_n_items(m2), 17);
    ASSERT_EQ(gru4rec_state_size(m2), 6 + 8);
    ASSERT(gru4rec_state_fingerprint(m2) == gru4rec_state_fingerprint(m));
    ASSERT(gru4rec_params_buf(m2, NULL) == NULL);
    for (int i = 0; i < 17; i++) {
        ASSERT_EQ(gru4rec_popular(m2)[i], gru4rec_popular(m)[i]);
        ASSERT_STR_EQ(idmap_key(gru4rec_items(m2), i, NULL), idmap_key(items, i, NULL));
    }
    /* most popular first, ties by index */
    for (int i = 1; i < 17; i++) {
        int a = gru4rec_popular(m)[i - 1], b = gru4rec_popular(m)[i];
        ASSERT(counts[a] > counts[b] || (counts[a] == counts[b] && a < b));
    }
    ASSERT(json_real_value(json_object_get(json_object_get(snap_meta(s), "metrics"), "recall@20")) == 0.5);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(snap_meta(s), "hparams"), "loss")), "bpr-max");
    /* identical scores */
    gru4rec_scratch *sc = gru4rec_scratch_new(m, 4), *sc2 = gru4rec_scratch_new(m2, 4);
    size_t S = gru4rec_state_size(m);
    float h[4 * 14] = {0}, h2[4 * 14] = {0}, sa[4 * 17], sb[4 * 17];
    int32_t it[4] = {1, 16, 4, 4};
    for (int t = 0; t < 3; t++) {
        gru4rec_step(m, h, it, 4, sc);
        gru4rec_step(m2, h2, it, 4, sc2);
        gru4rec_score(m, h, 4, sa, sc);
        gru4rec_score(m2, h2, 4, sb, sc2);
        ASSERT(memcmp(h, h2, 4 * S * sizeof(float)) == 0);
        ASSERT(memcmp(sa, sb, sizeof sa) == 0);
        it[0] = (it[0] + 3) % 17;
    }
    gru4rec_scratch_free(sc);
    gru4rec_scratch_free(sc2);
    mt->free(hnd);
    snap_close(s);
    /* another vocabulary (or size) gives another fingerprint */
    idmap *items2 = make_items(18);
    gru4rec *m3 = NULL;
    ASSERT_OK(gru4rec_new_random(&m3, &hp, items2, NULL, 3));
    ASSERT(gru4rec_state_fingerprint(m3) != gru4rec_state_fingerprint(m));
    gru4rec_free(m3);
    idmap_free(items2);
    gru4rec_free(m);
    idmap_free(items);
}

/* ---- losses: the official formulas in double precision ---- */

static double ref_loss_row(const gru4rec_hparams *hp, const double *o_in, int M, int t, const double *logq_col)
{
    double o[64], sm[64];
    for (int j = 0; j < M; j++) o[j] = o_in[j];
    if (hp->loss == GRU4REC_LOSS_XE) {
        if (logq_col && hp->logq > 0)
            for (int j = 0; j < M; j++) o[j] -= hp->logq * logq_col[j];
        double mx = o[0], s = 0;
        for (int j = 0; j < M; j++) mx = fmax(mx, o[j]);
        for (int j = 0; j < M; j++) s += exp(o[j] - mx);
        return -log(exp(o[t] - mx) / s + 1e-24);
    }
    if (hp->loss == GRU4REC_LOSS_BPRMAX && hp->elu_param > 0)
        for (int j = 0; j < M; j++) o[j] = o[j] > 0 ? o[j] : hp->elu_param * (exp(o[j]) - 1);
    double s = 0;
    for (int j = 0; j < M; j++) s += j == t ? 0 : exp(o[j]);
    for (int j = 0; j < M; j++) sm[j] = j == t ? 0 : exp(o[j]) / s;
    double a = 0, q = 0;
    for (int j = 0; j < M; j++) {
        if (hp->loss == GRU4REC_LOSS_BPRMAX) {
            a += dsig(o[t] - o[j]) * sm[j];
            q += o[j] * o[j] * sm[j];
        } else {
            a += sm[j] * (dsig(o[j] - o[t]) + dsig(o[j] * o[j]));
        }
    }
    if (hp->loss == GRU4REC_LOSS_BPRMAX) return -log(a + 1e-24) + hp->bpreg * q;
    return a;
}

TEST(gru4rec_loss_gradients)
{
    enum { B = 3, M = 9 };
    gru4rec_hparams hp;
    gru4rec_hparams_default(&hp);
    struct { int loss; double elu, bpreg, logq; } cases[] = {
        {GRU4REC_LOSS_XE, 0, 0, 0},      {GRU4REC_LOSS_XE, 0, 0, 1.0},   {GRU4REC_LOSS_BPRMAX, 0.5, 1.95, 0},
        {GRU4REC_LOSS_BPRMAX, 0, 1.0, 0}, {GRU4REC_LOSS_BPRMAX, 1.0, 0, 0}, {GRU4REC_LOSS_TOP1MAX, 0, 0, 0},
    };
    rng_t r;
    rng_seed(&r, 5);
    float R[B * M], dR[B * M], tmp[3 * M], logq_f[M];
    double Rd[B * M], logq_d[M];
    for (int j = 0; j < M; j++) logq_d[j] = logq_f[j] = logf(1.0f + 10.0f * rng_uniformf(&r));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        hp.loss = cases[c].loss;
        hp.elu_param = cases[c].elu;
        hp.bpreg = cases[c].bpreg;
        hp.logq = cases[c].logq;
        for (int i = 0; i < B * M; i++) Rd[i] = R[i] = 2.0f * (2 * rng_uniformf(&r) - 1);
        double loss = gru4rec_loss_rows(&hp, R, B, M, logq_f, dR, 0.5f, tmp);
        double ref = 0;
        for (int b = 0; b < B; b++) ref += ref_loss_row(&hp, Rd + b * M, M, b, logq_d);
        ASSERT_NEAR(loss, ref, 1e-5 * (1 + fabs(ref)));
        for (int i = 0; i < B * M; i++) {
            int b = i / M;
            double e = 1e-5, keep = Rd[i];
            Rd[i] = keep + e;
            double lp = ref_loss_row(&hp, Rd + b * M, M, b, logq_d);
            Rd[i] = keep - e;
            double lm = ref_loss_row(&hp, Rd + b * M, M, b, logq_d);
            Rd[i] = keep;
            double fd = 0.5 * (lp - lm) / (2 * e);
            if (fabs(fd - dR[i]) > 1e-4 + 1e-3 * fabs(fd))
                FAIL("loss %s case %zu: dR[%d] analytic %.7g vs finite difference %.7g", gru4rec_loss_name(hp.loss), c,
                     i, dR[i], fd);
        }
    }
}

/* Whole-network gradient (embedding, GRU layers, output, loss) against central differences of the
 * float loss, for every parameter of a small model. */
static void check_network_grad(gru4rec_hparams *hp, const char *label)
{
    int N = 11;
    idmap *items = make_items(N);
    int64_t counts[11] = {5, 3, 8, 1, 2, 9, 4, 4, 7, 6, 2};
    gru4rec *m = NULL;
    ASSERT_OK(gru4rec_new_random(&m, hp, items, counts, 11));
    perturb(m, 12, 0.3f);
    gru4rec_trainer *t = NULL;
    ASSERT_OK(gru4rec_trainer_new(&t, m, 13));
    size_t n;
    float *p = gru4rec_params_buf(m, &n);
    float *g = malloc(n * sizeof(float)), *g2 = malloc(n * sizeof(float));
    int32_t in[4] = {1, 4, 1, 10}, out[4] = {2, 1, 7, 1}, neg[5] = {0, 2, 9, 5, 2};
    size_t S = gru4rec_state_size(m);
    float *h0 = malloc(4 * S * sizeof(float));
    rng_t r;
    rng_seed(&r, 14);
    for (size_t i = 0; i < 4 * S; i++) h0[i] = 0.8f * (2 * rng_uniformf(&r) - 1);
    double L0 = gru4rec_batch_grad(t, in, out, 4, neg, 5, h0, 0, g);
    ASSERT(L0 > 0 && isfinite(L0));
    int checked = 0;
    for (size_t i = 0; i < n; i++) {
        /* the one-hot layer (official GRUEmbedding) has no h-side bias: its bh stays frozen */
        if (m->onehot && p + i >= m->lay[0].bh && p + i < m->lay[0].bh + 3 * m->lay[0].H) {
            ASSERT(g[i] == 0);
            continue;
        }
        float keep = p[i];
        float e = 1e-2f;
        p[i] = keep + e;
        double lp = gru4rec_batch_grad(t, in, out, 4, neg, 5, h0, 0, g2);
        p[i] = keep - e;
        double lm = gru4rec_batch_grad(t, in, out, 4, neg, 5, h0, 0, g2);
        p[i] = keep;
        double fd = (lp - lm) / (2.0 * e);
        if (fabs(fd - g[i]) > 2e-4 + 3e-2 * fabs(fd))
            FAIL("%s: dL/dparam[%zu] analytic %.6g vs finite difference %.6g", label, i, g[i], fd);
        if (g[i] != 0) checked++;
    }
    ASSERT(checked > 50);
    free(g);
    free(g2);
    free(h0);
    gru4rec_trainer_free(t);
    gru4rec_free(m);
    idmap_free(items);
}

TEST(gru4rec_network_gradients)
{
    gru4rec_hparams hp;
    int modes[3][2] = {{1, 0}, {0, 4}, {0, 0}};
    const char *names[3] = {"constrained", "embedding", "one-hot"};
    int losses[3] = {GRU4REC_LOSS_XE, GRU4REC_LOSS_BPRMAX, GRU4REC_LOSS_TOP1MAX};
    char label[128];
    for (int md = 0; md < 3; md++)
        for (int layers = 1; layers <= 2; layers++)
            for (int li = 0; li < 3; li++) {
                small_hp(&hp, 5, layers);
                hp.constrained = modes[md][0];
                hp.embedding = modes[md][1];
                hp.loss = losses[li];
                hp.logq = li == 0 ? 1.0 : 0.0;
                hp.elu_param = 1.0; /* ELU(0.5) has a kink at 0 that central differences straddle */
                snprintf(label, sizeof label, "%s, %d layer(s), %s", names[md], layers, gru4rec_loss_name(hp.loss));
                check_network_grad(&hp, label);
            }
}

/* ---- training ---- */

/* Sessions over N items where item i is always followed by (i + 1) % N (plus a little noise). */
static void make_cycle_sessions(int N, int n_sess, uint64_t seed, int32_t **items, int64_t **offsets, int64_t *n_ev)
{
    rng_t r;
    rng_seed(&r, seed);
    *offsets = malloc((size_t)(n_sess + 1) * sizeof **offsets);
    *items = malloc((size_t)n_sess * 8 * sizeof **items);
    int64_t e = 0;
    for (int s = 0; s < n_sess; s++) {
        (*offsets)[s] = e;
        int len = 2 + (int)rng_below(&r, 6);
        int it = (int)rng_below(&r, (uint64_t)N);
        for (int k = 0; k < len; k++) {
            (*items)[e++] = it;
            it = (it + 1) % N;
        }
    }
    (*offsets)[n_sess] = e;
    *n_ev = e;
}

static int next_item_accuracy(gru4rec *m, int N)
{
    gru4rec_scratch *sc = gru4rec_scratch_new(m, N);
    size_t S = gru4rec_state_size(m);
    float *h = calloc((size_t)N * S, sizeof(float));
    float *scores = malloc((size_t)N * N * sizeof(float));
    int32_t *in = malloc((size_t)N * sizeof *in);
    for (int i = 0; i < N; i++) in[i] = i;
    gru4rec_step(m, h, in, N, sc);
    gru4rec_score(m, h, N, scores, sc);
    int good = 0;
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int j = 1; j < N; j++)
            if (scores[(size_t)i * N + j] > scores[(size_t)i * N + best]) best = j;
        good += best == (i + 1) % N;
    }
    free(h);
    free(scores);
    free(in);
    gru4rec_scratch_free(sc);
    return good;
}

TEST(gru4rec_train_learns_and_is_deterministic)
{
    int N = 30;
    idmap *items = make_items(N);
    int32_t *seq;
    int64_t *off, nev;
    make_cycle_sessions(N, 600, 3, &seq, &off, &nev);
    int losses[3] = {GRU4REC_LOSS_BPRMAX, GRU4REC_LOSS_XE, GRU4REC_LOSS_TOP1MAX};
    for (int li = 0; li < 3; li++) {
        gru4rec_hparams hp;
        gru4rec_hparams_default(&hp);
        hp.layers[0] = 16;
        hp.batch_size = 8;
        hp.n_sample = 10;
        hp.sample_cache = 1000;
        hp.loss = losses[li];
        hp.dropout_embed = 0.1;
        hp.logq = hp.loss == GRU4REC_LOSS_XE ? 1.0 : 0.0;
        hp.learning_rate = hp.loss == GRU4REC_LOSS_XE ? 0.2 : 0.1;
        gru4rec *m[2] = {NULL, NULL};
        double first = 0, last = 0;
        for (int k = 0; k < 2; k++) {
            ASSERT_OK(gru4rec_new_random(&m[k], &hp, items, NULL, 77));
            gru4rec_trainer *t = NULL;
            ASSERT_OK(gru4rec_trainer_new(&t, m[k], 78));
            for (int e = 0; e < 8; e++) {
                gru4rec_epoch_stats st;
                ASSERT_OK(gru4rec_train_epoch(t, seq, off, 600, NULL, NULL, 0, &st));
                ASSERT_EQ(st.events, nev - 600);
                if (e == 0) first = st.loss;
                last = st.loss;
            }
            gru4rec_trainer_free(t);
        }
        /* same seeds: bit-identical weights */
        size_t n0, n1;
        float *p0 = gru4rec_params_buf(m[0], &n0), *p1 = gru4rec_params_buf(m[1], &n1);
        ASSERT_EQ(n0, n1);
        ASSERT(memcmp(p0, p1, n0 * sizeof(float)) == 0);
        if (!(last < first)) FAIL("%s: loss did not go down: %g -> %g", gru4rec_loss_name(hp.loss), first, last);
        int acc = next_item_accuracy(m[0], N);
        if (acc < 25) FAIL("%s: learnt only %d/%d transitions", gru4rec_loss_name(hp.loss), acc, N);
        gru4rec_free(m[0]);
        gru4rec_free(m[1]);
    }
    /* items out of range are refused with the session named */
    gru4rec_hparams hp;
    small_hp(&hp, 4, 1);
    gru4rec *m = NULL;
    gru4rec_trainer *t = NULL;
    ASSERT_OK(gru4rec_new_random(&m, &hp, items, NULL, 1));
    ASSERT_OK(gru4rec_trainer_new(&t, m, 1));
    seq[off[2] + 1] = N;
    gru4rec_epoch_stats st;
    ASSERT_RC(gru4rec_train_epoch(t, seq, off, 600, NULL, NULL, 0, &st), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "session 2");
    gru4rec_trainer_free(t);
    gru4rec_free(m);
    free(seq);
    free(off);
    idmap_free(items);
}

/* The session-parallel walk: every (click, next click) pair of every session of length >= 2 is trained
 * on exactly once, and the batch shrinks at the end. */
TEST(gru4rec_epoch_counts_every_pair)
{
    int N = 9;
    idmap *items = make_items(N);
    int32_t seq[] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4};
    int64_t off[] = {0, 3, 4, 6, 10, 11, 13}; /* lengths 3,1,2,4,1,2 -> 2+0+1+3+0+1 = 7 pairs */
    gru4rec_hparams hp;
    small_hp(&hp, 4, 1);
    hp.batch_size = 3;
    hp.n_sample = 0;
    for (int ns = 0; ns <= 3; ns += 3) {
        hp.n_sample = ns;
        gru4rec *m = NULL;
        gru4rec_trainer *t = NULL;
        ASSERT_OK(gru4rec_new_random(&m, &hp, items, NULL, 1));
        ASSERT_OK(gru4rec_trainer_new(&t, m, 1));
        gru4rec_epoch_stats st;
        ASSERT_OK(gru4rec_train_epoch(t, seq, off, 6, NULL, NULL, 0, &st));
        /* without negatives the official loop stops once fewer than 2 rows remain */
        if (ns) ASSERT_EQ(st.events, 7);
        else ASSERT(st.events >= 5 && st.events <= 7);
        gru4rec_trainer_free(t);
        gru4rec_free(m);
    }
    idmap_free(items);
}

/* ---- the command line: train, snapshot, eval; bad input ---- */

static void write_cycle_tsv(const char *path, int n_sess, int N)
{
    FILE *f = fopen(path, "w");
    ASSERT(f);
    fprintf(f, "sid\titem\tts\n");
    rng_t r;
    rng_seed(&r, 9);
    for (int s = 0; s < n_sess; s++) {
        long long t0 = 1500000000LL + (long long)s * 1800;
        int len = 2 + (int)rng_below(&r, 5);
        int it = (int)rng_below(&r, (uint64_t)N);
        for (int k = 0; k < len; k++) {
            fprintf(f, "%lld\tart%d\t%lld\n", 9000000000000000LL + s, it, t0 + k * 30);
            it = (it + 1) % N;
        }
    }
    fclose(f);
}

TEST_TIMEOUT(gru4rec_cli_train_eval, 120)
{
    const char *tmp = test_tmpdir();
    char data[512], cfg[512], out[8192];
    snprintf(data, sizeof data, "%s/clicks.tsv", tmp);
    snprintf(cfg, sizeof cfg, "%s/g.json", tmp);
    write_cycle_tsv(data, 800, 40);
    test_write_file(cfg, "{\"loss\": \"bpr-max\", \"layers\": [16], \"batch_size\": 8, \"n_sample\": 16,\n"
                         " \"sample_cache\": 1600, \"learning_rate\": 0.1, \"dropout_p_embed\": 0.1,\n"
                         " \"data\": {\"session_col\": \"sid\", \"item_col\": \"item\", \"time_col\": \"ts\"}}\n");
    int st = test_run(out, sizeof out, "%s train gru4rec -c %s --data %s --epochs 3 --out %s/snaps --name g4 --quiet 2>&1",
                      test_recd_bin(), cfg, data, tmp);
    if (st != 0) FAIL("train exited %d: %s", st, out);
    ASSERT_CONTAINS(out, "g4 recall@20=");
    ASSERT_CONTAINS(out, "events/s=");
    ASSERT_CONTAINS(out, "epochs=3");
    const char *p = strstr(out, "g4 recall@20=");
    double r20 = atof(p + strlen("g4 recall@20="));
    ASSERT(r20 > 0.5); /* the cycle is easy to learn */
    /* eval of the published snapshot gives the same figures */
    char out2[8192];
    st = test_run(out2, sizeof out2,
                  "%s eval gru4rec --snapshot %s/snaps/gru4rec/1 --data %s --session-col sid --item-col item "
                  "--time-col ts --quiet --name g4 2>&1",
                  test_recd_bin(), tmp, data);
    if (st != 0) FAIL("eval exited %d: %s", st, out2);
    char want[64];
    snprintf(want, sizeof want, "g4 recall@20=%.4f", r20);
    ASSERT_CONTAINS(out2, want);
    /* without split flags: the snapshot's own data settings are the defaults */
    st = test_run(out2, sizeof out2, "%s eval gru4rec --snapshot %s/snaps/gru4rec/1 --data %s --quiet --name g4 2>&1",
                  test_recd_bin(), tmp, data);
    if (st != 0) FAIL("eval exited %d: %s", st, out2);
    ASSERT_CONTAINS(out2, want);
    st = test_run(out2, sizeof out2, "%s eval gru4rec --snapshot %s/snaps/gru4rec/99 --data %s 2>&1", test_recd_bin(),
                  tmp, data);
    ASSERT_NE(st, 0);
    ASSERT_CONTAINS(out2, "gru4rec/99");
    /* same seed, same figures (determinism) */
    char out3[8192];
    st = test_run(out3, sizeof out3, "%s train gru4rec -c %s --data %s --epochs 3 --out %s/snaps --name g4 --quiet 2>&1",
                  test_recd_bin(), cfg, data, tmp);
    ASSERT_EQ(st, 0);
    ASSERT_CONTAINS(out3, want);
    /* bad settings and bad input exit non-zero with the culprit named */
    st = test_run(out, sizeof out, "%s train gru4rec -c %s --data %s --dropout_p_hidden 1.5 2>&1", test_recd_bin(), cfg,
                  data);
    ASSERT_NE(st, 0);
    ASSERT_CONTAINS(out, "dropout_p_hidden");
    st = test_run(out, sizeof out, "%s train gru4rec -c %s --data %s --layers '[0]' 2>&1", test_recd_bin(), cfg, data);
    ASSERT_NE(st, 0);
    ASSERT_CONTAINS(out, "layers");
    char bad[512];
    snprintf(bad, sizeof bad, "%s/bad.tsv", tmp);
    test_write_file(bad, "sid\titem\tts\n1\ta\t100\n1\tb\t101\n2\ta\tnoon\n");
    st = test_run(out, sizeof out, "%s train gru4rec -c %s --data %s 2>&1", test_recd_bin(), cfg, bad);
    ASSERT_NE(st, 0);
    ASSERT_CONTAINS(out, "bad.tsv");
    ASSERT_CONTAINS(out, "4");
    st = test_run(out, sizeof out, "%s train gru4rec -c %s/missing.json --data %s 2>&1", test_recd_bin(), tmp, data);
    ASSERT_NE(st, 0);
    ASSERT_CONTAINS(out, "missing.json");
}

TEST(gru4rec_negative_sampling_follows_popularity)
{
    int N = 50;
    idmap *items = make_items(N);
    int64_t counts[50];
    double w[50], tot = 0;
    for (int i = 0; i < N; i++) {
        counts[i] = (i % 7 == 3) ? 0 : 1 + (i * 37) % 400; /* a zero count is treated as 1 */
        w[i] = pow(counts[i] > 0 ? (double)counts[i] : 1.0, 0.5);
        tot += w[i];
    }
    gru4rec_hparams hp;
    small_hp(&hp, 4, 1);
    hp.n_sample = 100;
    hp.sample_alpha = 0.5;
    hp.sample_cache = 1000; /* 10 batches per refill: exercises refills */
    gru4rec *m = NULL;
    gru4rec_trainer *t = NULL;
    ASSERT_OK(gru4rec_new_random(&m, &hp, items, counts, 1));
    ASSERT_OK(gru4rec_trainer_new(&t, m, 5));
    static int64_t hits[50];
    int draws = 4000;
    for (int d = 0; d < draws; d++) {
        const int32_t *s = gru4rec_trainer_next_sample(t);
        for (int k = 0; k < 100; k++) {
            ASSERT(s[k] >= 0 && s[k] < N);
            hits[s[k]]++;
        }
    }
    double n = 100.0 * draws;
    for (int i = 0; i < N; i++) {
        double p = w[i] / tot, sd = sqrt(n * p * (1 - p));
        if (fabs((double)hits[i] - n * p) > 5 * sd + 1)
            FAIL("item %d drawn %lld times, expected %.0f +- %.0f", i, (long long)hits[i], n * p, sd);
    }
    gru4rec_trainer_free(t);
    gru4rec_free(m);
    idmap_free(items);
}
