/* tests/test_itemknn.c - models/itemknn: the sparse build against the dense naive reference (both
 * normalisations, window, position and direction weights, recency, top-M truncation), figures by hand,
 * snapshot round trip and corrupt snapshots, the `next` capability (state, step, score), fingerprint,
 * accuracy on synthetic sessions against popularity, and `recd train itemknn` + `recd eval itemknn`. */
#include <stdint.h>
#include <unistd.h>

#include "core/idmap.h"
#include "core/snap.h"
#include "models/itemknn.h"
#include "tests/testlib.h"
#include "trainer/cmds.h"
#include "trainer/eval_next.h"
#include "trainer/sessions.h"

/* A vocabulary "i0".."i{n-1}". */
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

/* Tiny sessions over 7 items: repeats, long and short sessions, an item (6) never clicked. */
static const int32_t T_ITEMS[] = {0, 1, 2, 3, 1, 0, 1, 2, 4, 2, 1, 3, 0, 5, 4, 5, 2, 0, 1, 3, 4, 5, 1, 1};
static const int64_t T_OFF[] = {0, 4, 6, 9, 12, 15, 16, 22, 24};
static const int64_t T_TIMES[] = {10, 11, 12, 13, 50, 51, 60, 61, 62, 70, 71, 72, 80, 81, 82,
                                  90, 95, 96, 97, 98, 99, 100, 40, 41};
#define T_N 7
#define T_Q 8

static void assert_same_model(const itemknn *a, const itemknn *b)
{
    ASSERT_EQ(itemknn_n_items(a), itemknn_n_items(b));
    ASSERT_EQ(itemknn_nnz(a), itemknn_nnz(b));
    for (int32_t i = 0; i < itemknn_n_items(a); i++) {
        const int32_t *na, *nb;
        const float *sa, *sb;
        int64_t ka = itemknn_neighbours(a, i, &na, &sa), kb = itemknn_neighbours(b, i, &nb, &sb);
        ASSERT_EQ(ka, kb);
        for (int64_t k = 0; k < ka; k++) {
            ASSERT_EQ(na[k], nb[k]);
            ASSERT_NEAR(sa[k], sb[k], 1e-6 * sa[k]);
        }
        ASSERT_EQ(itemknn_popular(a)[i], itemknn_popular(b)[i]);
    }
}

TEST(itemknn_build_matches_naive)
{
    idmap *v = vocab(T_N, "i");
    itemknn_sessions d = {T_ITEMS, T_OFF, T_TIMES, T_Q};
    struct { int norm, M, W; double alpha, lambda, pd, bw, hl; } cases[] = {
        {ITEMKNN_COSINE, 100, 1000000, 0.5, 20, 1, 1, 0},  /* the reference baseline */
        {ITEMKNN_COSINE, 100, 1000000, 0.5, 0, 1, 1, 0},
        {ITEMKNN_CONDITIONAL, 100, 1000000, 0.5, 1, 1, 1, 0},
        {ITEMKNN_COSINE, 2, 1000000, 0.7, 2, 1, 1, 0},     /* top-M truncation */
        {ITEMKNN_CONDITIONAL, 1, 1, 0.5, 0, 1, 1, 0},      /* window 1, M 1 */
        {ITEMKNN_COSINE, 3, 2, 0.3, 5, 0.5, 0.25, 0},      /* window 2, position and direction weights */
        {ITEMKNN_CONDITIONAL, 100, 1000000, 0.5, 3, 0.7, 0, 20}, /* forward only, recency */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        itemknn_hparams hp;
        itemknn_hparams_default(&hp);
        hp.normalize = cases[k].norm;
        hp.neighbours = cases[k].M;
        hp.window = cases[k].W;
        hp.alpha = cases[k].alpha;
        hp.lambda = cases[k].lambda;
        hp.position_decay = cases[k].pd;
        hp.backward = cases[k].bw;
        hp.half_life = cases[k].hl;
        itemknn *naive = NULL, *fast1 = NULL, *fast3 = NULL;
        ASSERT_OK(itemknn_build_naive(&naive, &hp, v, &d));
        ASSERT_OK(itemknn_build(&fast1, &hp, v, &d, 1));
        ASSERT_OK(itemknn_build(&fast3, &hp, v, &d, 3));
        assert_same_model(naive, fast1);
        assert_same_model(naive, fast3);
        ASSERT(itemknn_nnz(naive) > 0);
        for (int32_t i = 0; i < T_N; i++) { /* truncation: at most M per item, best first */
            const int32_t *nb;
            const float *s;
            int64_t n = itemknn_neighbours(naive, i, &nb, &s);
            ASSERT(n <= cases[k].M);
            for (int64_t j = 1; j < n; j++) ASSERT(s[j - 1] > s[j] || (s[j - 1] == s[j] && nb[j - 1] < nb[j]));
            for (int64_t j = 0; j < n; j++) ASSERT(nb[j] != i && s[j] > 0);
        }
        const int32_t *nb;
        const float *s;
        ASSERT_EQ(itemknn_neighbours(naive, 6, &nb, &s), 0); /* never clicked */
        itemknn_free(naive);
        itemknn_free(fast1);
        itemknn_free(fast3);
    }
    idmap_free(v);
}

/* Similarities worked out by hand on sessions {0,1,2} {0,1} {1,2}: supp = 2,3,2. */
TEST(itemknn_figures_by_hand)
{
    idmap *v = vocab(3, "i");
    static const int32_t items[] = {0, 1, 2, 0, 1, 1, 2};
    static const int64_t off[] = {0, 3, 5, 7};
    itemknn_sessions d = {items, off, NULL, 3};
    itemknn_hparams hp;
    itemknn_hparams_default(&hp);
    hp.normalize = ITEMKNN_COSINE;
    hp.lambda = 0;
    hp.alpha = 0.5;
    hp.position_decay = 1;
    hp.backward = 1;
    itemknn *m = NULL;
    ASSERT_OK(itemknn_build(&m, &hp, v, &d, 1));
    const int32_t *nb;
    const float *s;
    ASSERT_EQ(itemknn_neighbours(m, 0, &nb, &s), 2); /* cooc(0,1)=2, cooc(0,2)=1 */
    ASSERT_EQ(nb[0], 1);
    ASSERT_NEAR(s[0], 2 / sqrt(2.0 * 3.0), 1e-6);
    ASSERT_EQ(nb[1], 2);
    ASSERT_NEAR(s[1], 1 / sqrt(2.0 * 2.0), 1e-6);
    ASSERT_EQ(itemknn_popular(m)[0], 1);
    itemknn_free(m);
    /* conditional, lambda 1, window 1, forward only with position decay: cooc(0,.) only from 0->1 */
    hp.normalize = ITEMKNN_CONDITIONAL;
    hp.lambda = 1;
    hp.window = 1;
    hp.backward = 0;
    ASSERT_OK(itemknn_build(&m, &hp, v, &d, 1));
    ASSERT_EQ(itemknn_neighbours(m, 0, &nb, &s), 1);
    ASSERT_EQ(nb[0], 1);
    ASSERT_NEAR(s[0], 2 / (2.0 + 1), 1e-6);
    ASSERT_EQ(itemknn_neighbours(m, 2, &nb, &s), 0); /* 2 is always last */
    ASSERT_EQ(itemknn_neighbours(m, 1, &nb, &s), 1);
    ASSERT_NEAR(s[0], 2 / (3.0 + 1), 1e-6);
    itemknn_free(m);
    /* bad sessions are refused */
    static const int32_t bad[] = {0, 7};
    static const int64_t boff[] = {0, 2};
    itemknn_sessions db = {bad, boff, NULL, 1};
    ASSERT_RC(itemknn_build(&m, &hp, v, &db, 1), RC_EINVAL);
    ASSERT(m == NULL);
    hp.neighbours = 0;
    ASSERT_RC(itemknn_build(&m, &hp, v, &d, 1), RC_EINVAL);
    idmap_free(v);
}

static itemknn *tiny_model(const idmap *v, int history)
{
    itemknn_sessions d = {T_ITEMS, T_OFF, T_TIMES, T_Q};
    itemknn_hparams hp;
    itemknn_hparams_default(&hp);
    hp.history = history;
    hp.half_life = 30;
    itemknn *m = NULL;
    ASSERT_OK(itemknn_build(&m, &hp, v, &d, 2));
    return m;
}

/* The `next` capability: a zero state is a new session; step pushes item+1 most recent first;
 * score = prior + sum of decay^a * sim(h_a, .). */
TEST(itemknn_next_step_score)
{
    idmap *v = vocab(T_N, "i");
    itemknn *m = tiny_model(v, 3);
    const model_type *t = model_type_find("itemknn");
    ASSERT(t == &itemknn_type);
    ASSERT(t->next && !t->rank && !t->next->item_matrix);
    ASSERT_EQ(t->next->state_size(m), 3);
    ASSERT(t->items(m) == v);
    void *sc = t->next->scratch_new(m, 8);
    ASSERT(sc);
    float st[2 * 3];
    memset(st, 0, sizeof st);
    float sc_new[2 * T_N], want[T_N];
    /* all-zero state: popularity prior only, ordered like popular */
    t->next->score(m, st, 1, sc_new, sc);
    const int32_t *pop = t->popular(m);
    for (int i = 1; i < T_N; i++) ASSERT(sc_new[pop[i - 1]] >= sc_new[pop[i]]);
    ASSERT(sc_new[pop[0]] > 0 && sc_new[6] == 0);
    int32_t clicks[4][2] = {{0, 2}, {1, 2}, {3, 5}, {4, 4}};
    for (int c = 0; c < 4; c++) t->next->step(m, st, clicks[c], 2, sc);
    int32_t w;
    memcpy(&w, &st[0], 4);
    ASSERT_EQ(w, 5); /* most recent first: 4+1, then 3+1, 1+1 (0 fell out) */
    memcpy(&w, &st[1], 4);
    ASSERT_EQ(w, 4);
    memcpy(&w, &st[2], 4);
    ASSERT_EQ(w, 2);
    t->next->score(m, st, 2, sc_new, sc);
    const itemknn_hparams *hp = itemknn_hparams_of(m);
    for (int b = 0; b < 2; b++) {
        float z[3] = {0};
        t->next->score(m, z, 1, want, sc); /* the prior row, then the neighbours of each remembered click */
        float wa = 1;
        for (int a = 0; a < 3; a++, wa *= (float)hp->decay) {
            int32_t h;
            memcpy(&h, &st[b * 3 + a], 4);
            const int32_t *nb;
            const float *s;
            int64_t n = itemknn_neighbours(m, h - 1, &nb, &s);
            for (int64_t k = 0; k < n; k++) want[nb[k]] += wa * s[k];
        }
        for (int j = 0; j < T_N; j++) ASSERT_NEAR(sc_new[b * T_N + j], want[j], 1e-6);
    }
    /* words outside 1..N are ignored */
    int32_t junk[3] = {-5, T_N + 1, 0};
    memcpy(st, junk, sizeof junk);
    t->next->score(m, st, 1, sc_new, sc);
    float z[3] = {0};
    t->next->score(m, z, 1, want, sc);
    for (int j = 0; j < T_N; j++) ASSERT_EQ(sc_new[j], want[j]);
    ASSERT_OK(t->warm(m));
    t->next->scratch_free(sc);
    t->next->scratch_free(NULL);
    itemknn_free(m);
    idmap_free(v);
}

TEST(itemknn_fingerprint)
{
    idmap *v = vocab(T_N, "i"), *v2 = vocab(T_N, "j");
    itemknn *a = tiny_model(v, 4), *b = tiny_model(v, 4), *c = tiny_model(v2, 4), *d = tiny_model(v, 5);
    ASSERT(itemknn_state_fingerprint(a) == itemknn_state_fingerprint(b));
    ASSERT(itemknn_state_fingerprint(a) != itemknn_state_fingerprint(c)); /* vocabulary */
    ASSERT(itemknn_state_fingerprint(a) != itemknn_state_fingerprint(d)); /* state size */
    ASSERT(itemknn_type.fingerprint(a) == itemknn_state_fingerprint(a));
    /* one more item in the vocabulary */
    idmap *v3 = vocab(T_N + 1, "i");
    itemknn *e = tiny_model(v3, 4);
    ASSERT(itemknn_state_fingerprint(a) != itemknn_state_fingerprint(e));
    itemknn_free(a);
    itemknn_free(b);
    itemknn_free(c);
    itemknn_free(d);
    itemknn_free(e);
    idmap_free(v);
    idmap_free(v2);
    idmap_free(v3);
}

TEST(itemknn_snapshot_roundtrip)
{
    idmap *v = vocab(T_N, "i");
    itemknn *m = tiny_model(v, 4);
    json_t *extra = json_pack("{s:s}", "note", "test");
    uint64_t ver = 0;
    ASSERT_OK(itemknn_save(m, test_tmpdir(), "itemknn", extra, &ver));
    json_decref(extra);
    ASSERT_EQ(ver, 1);
    char dir[1024];
    ASSERT_OK(snap_path(dir, sizeof dir, test_tmpdir(), "itemknn", ver));
    snap *s = NULL;
    ASSERT_OK(snap_open(&s, dir));
    ASSERT_STR_EQ(snap_model(s), "itemknn");
    ASSERT_STR_EQ(json_string_value(json_object_get(snap_meta(s), "note")), "test");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(snap_meta(s), "hparams"), "normalize")),
                  ITEMKNN_DEF_NORMALIZE);
    void *h = NULL;
    ASSERT_OK(itemknn_type.load(&h, s));
    itemknn *l = h;
    assert_same_model(m, l);
    ASSERT(itemknn_state_fingerprint(m) == itemknn_state_fingerprint(l));
    ASSERT(memcmp(itemknn_hparams_of(m), itemknn_hparams_of(l), sizeof(itemknn_hparams)) == 0);
    /* same scores for the same states */
    float st[3 * 4], sa[3 * T_N], sb[3 * T_N];
    memset(st, 0, sizeof st);
    int32_t clicks[3][3] = {{0, 3, 5}, {1, 1, 2}, {2, 4, 0}};
    for (int c = 0; c < 3; c++) itemknn_step(m, st, clicks[c], 3);
    itemknn_score(m, st, 3, sa);
    itemknn_score(l, st, 3, sb);
    ASSERT(memcmp(sa, sb, sizeof sa) == 0);
    size_t len;
    ASSERT_STR_EQ(idmap_key(itemknn_items(l), 5, &len), "i5");
    itemknn_type.free(l);
    snap_close(s);
    itemknn_free(m);
    idmap_free(v);
}

/* Write a snapshot by hand: offsets (N+1), nbr/sim (K), pop/popular (N), with one thing broken. */
static int write_bad(const char *root, int what, uint64_t *ver)
{
    idmap *v = vocab(3, "i");
    int64_t offsets[4] = {0, 1, 2, 2};
    int32_t nbr[2] = {1, 0}, popular[3] = {0, 1, 2};
    float sim[2] = {0.5f, 0.25f}, pop[3] = {3, 2, 1};
    if (what == 1) offsets[2] = 0;  /* decreasing */
    if (what == 2) nbr[1] = 3;      /* out of range */
    if (what == 3) popular[2] = -1; /* out of range */
    if (what == 4) offsets[3] = 1;  /* does not end at nnz: decreasing too, caught as such */
    if (what == 5) sim[0] = NAN;
    if (what == 9) popular[2] = 1;  /* not a permutation: item 1 twice */
    if (what == 10) sim[1] = 3e38f; /* finite but absurd: inf scores */
    if (what == 11) pop[0] = -1;    /* negative popularity */
    if (what == 12) pop[2] = 2e30f; /* absurd popularity */
    if (what == 13) sim[0] = -2e9f; /* absurd in magnitude, negative */
    if (what == 14) pop[1] = INFINITY;
    if (what == 15) popular[0] = 2, popular[2] = 0; /* a permutation, not sorted by pop: loads */
    if (what == 16) sim[0] = -1e9f, pop[0] = 1e9f;  /* the largest magnitudes allowed: load */
    snap_writer *w = NULL;
    int rc = snap_writer_open(&w, root, "itemknn", 0);
    if (rc) return rc;
    int64_t shp[1] = {4};
    snap_put_tensor(w, "offsets", SNAP_I64, 1, shp, offsets);
    shp[0] = 2;
    snap_put_tensor(w, "nbr", SNAP_I32, 1, shp, nbr);
    if (what != 6) snap_put_tensor(w, "sim", SNAP_F32, 1, shp, sim); /* 6: missing */
    shp[0] = what == 7 ? 2 : 3;                                       /* 7: misshapen */
    snap_put_tensor(w, "pop", SNAP_F32, 1, shp, pop);
    shp[0] = 3;
    snap_put_tensor(w, "popular", SNAP_I32, 1, shp, popular);
    snap_put_vocab(w, "items", v);
    itemknn_hparams hp;
    itemknn_hparams_default(&hp);
    json_t *meta = json_pack("{s:o, s:i, s:i}", "hparams", itemknn_hparams_to_json(&hp), "n_items", 3, "nnz", 2);
    if (what == 8) json_object_set_new(json_object_get(meta, "hparams"), "normalize", json_string("cubic"));
    snap_set_meta(w, meta);
    json_decref(meta);
    idmap_free(v);
    return snap_writer_publish(w, ver);
}

TEST(itemknn_corrupt_snapshot_refused)
{
    const char *expect[] = {NULL,  "offsets", "nbr",   "popular", "offsets",    "sim", "sim",
                            "pop", "normalize", "tensor popular is not a permutation", "tensor sim holds", "tensor pop holds",
                            "tensor pop holds", "tensor sim holds", "tensor pop holds", NULL, NULL};
    for (int what = 0; what <= 16; what++) {
        char root[1024], dir[1100];
        snprintf(root, sizeof root, "%s/r%d", test_tmpdir(), what);
        uint64_t ver = 0;
        ASSERT_OK(write_bad(root, what, &ver));
        ASSERT_OK(snap_path(dir, sizeof dir, root, "itemknn", ver));
        snap *s = NULL;
        ASSERT_OK(snap_open(&s, dir));
        void *h = (void *)1;
        int rc = itemknn_type.load(&h, s);
        if (!expect[what]) {
            ASSERT_OK(rc);
            ASSERT_EQ(itemknn_nnz(h), 2);
            itemknn_type.free(h);
        } else {
            ASSERT_RC(rc, RC_ECORRUPT);
            ASSERT(h == NULL);
            ASSERT_CONTAINS(rc_errmsg(), expect[what]);
        }
        snap_close(s);
    }
}

/* Empty neighbour table (sessions of one click): saved, loaded, scored by popularity. */
TEST(itemknn_no_neighbours)
{
    idmap *v = vocab(3, "i");
    static const int32_t items[] = {0, 1, 1};
    static const int64_t off[] = {0, 1, 2, 3};
    itemknn_sessions d = {items, off, NULL, 3};
    itemknn_hparams hp;
    itemknn_hparams_default(&hp);
    itemknn *m = NULL;
    ASSERT_OK(itemknn_build(&m, &hp, v, &d, 1));
    ASSERT_EQ(itemknn_nnz(m), 0);
    ASSERT_EQ(itemknn_popular(m)[0], 1);
    ASSERT_OK(itemknn_save(m, test_tmpdir(), "itemknn", NULL, NULL));
    char dir[1024];
    ASSERT_OK(snap_path(dir, sizeof dir, test_tmpdir(), "itemknn", 1));
    snap *s = NULL;
    ASSERT_OK(snap_open(&s, dir));
    itemknn *l = NULL;
    ASSERT_OK(itemknn_load(&l, s));
    float st[ITEMKNN_DEF_HISTORY] = {0}, sc[3];
    int32_t it = 0;
    itemknn_step(l, st, &it, 1);
    itemknn_score(l, st, 1, sc);
    ASSERT(sc[1] > sc[0] && sc[0] > 0 && sc[2] == 0);
    itemknn_free(l);
    snap_close(s);
    itemknn_free(m);
    idmap_free(v);
}

/* ---- accuracy on synthetic sessions (trainer/synth.c: Zipf popularity and item-to-item transitions) ---- */

static const char *synth_sessions(void)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/sessions.tsv", test_tmpdir());
    char *argv[] = {"synth", "sessions", "--out", p, "--seed", "3", NULL};
    ASSERT_EQ(cmd_synth(6, argv), 0);
    return p;
}

TEST(itemknn_beats_pop_on_synthetic_sessions)
{
    const char *p = synth_sessions();
    sess_opts o;
    sess_opts_default(&o);
    o.verbose = 0;
    sess_split sp;
    ASSERT_OK(sess_prepare(&sp, p, &o));
    ASSERT(sp.n_predictions > 500);
    itemknn_hparams hp;
    itemknn_hparams_default(&hp);
    hp.half_life = 86400; /* seconds */
    itemknn_sessions d = {sp.train.items, sp.train.offsets, sp.train.times, sp.train.n_sessions};
    itemknn *m = NULL;
    ASSERT_OK(itemknn_build(&m, &hp, sp.train.item_vocab, &d, 2));
    int N = (int)sp.train.n_items;
    float *pop = malloc((size_t)N * sizeof *pop);
    ASSERT(pop);
    next_pop_scores(&sp.train, pop);
    next_eval_opts eo;
    next_eval_opts_default(&eo);
    eo.progress = 0;
    metrics_topk a_pop, a_knn;
    next_static st = {pop, N};
    next_scorer sc;
    next_static_scorer(&sc, &st);
    ASSERT_OK(next_eval(&sp.test, &sc, &eo, &a_pop));
    next_model_scorer ms;
    next_scorer sk;
    ASSERT_OK(next_model_scorer_init(&ms, &sk, &itemknn_type, m, ITEMSCORE_BLAS, ITEMSCORE_F32));
    ASSERT_OK(next_eval(&sp.test, &sk, &eo, &a_knn));
    next_model_scorer_free(&ms);
    ASSERT_EQ(a_pop.n, a_knn.n);
    double rp = metrics_topk_recall(&a_pop, 20), rk = metrics_topk_recall(&a_knn, 20);
    double mp = metrics_topk_mrr(&a_pop, 20), mk = metrics_topk_mrr(&a_knn, 20);
    if (!(rk > rp + 0.15 && mk > 2 * mp))
        FAIL("itemknn should beat popularity: recall@20 %.4f vs %.4f, mrr@20 %.4f vs %.4f", rk, rp, mk, mp);
    free(pop);
    itemknn_free(m);
    sess_split_free(&sp);
}

/* The command line: `recd train itemknn` prints the figures of the model it publishes, and `recd eval
 * itemknn` on that snapshot (its meta's data settings reproduce the split) prints the same ones. */
TEST(itemknn_cli_train_then_eval)
{
    const char *p = synth_sessions();
    static char out[8192], out2[8192];
    const char *bin = test_recd_bin();
    int st = test_run(out, sizeof out, "%s train itemknn -c configs/itemknn.json --data %s --out %s/snap "
                      "--data.item_col item_id --data.time_col timestamp --data.split_time 0 --quiet --threads 2",
                      bin, p, test_tmpdir());
    if (st != 0) FAIL("train exit %d: %s", st, out);
    ASSERT_CONTAINS(out, "itemknn recall@20=");
    ASSERT_CONTAINS(out, " nnz=");
    st = test_run(out2, sizeof out2, "%s eval itemknn --snapshot %s/snap/itemknn --data %s --quiet", bin,
                  test_tmpdir(), p);
    if (st != 0) FAIL("eval exit %d: %s", st, out2);
    /* "itemknn recall@20=.. ... predictions=N" is the same in both lines */
    const char *a = strstr(out, "itemknn recall@20="), *b = strstr(out2, "itemknn recall@20=");
    ASSERT(a && b);
    const char *ae = strstr(a, "predictions="), *be = strstr(b, "predictions=");
    ASSERT(ae && be);
    ae += strcspn(ae, " \n");
    be += strcspn(be, " \n");
    if (ae - a != be - b || memcmp(a, b, (size_t)(ae - a)) != 0)
        FAIL("train and eval disagree:\n%.*s\n%.*s", (int)(ae - a), a, (int)(be - b), b);
    double r20 = atof(a + strlen("itemknn recall@20="));
    ASSERT(r20 > 0.3);
    /* an unknown setting is a usage error naming it */
    st = test_run(out, sizeof out, "%s train itemknn --data %s --neighbors 5 --out %s/snap", bin, p, test_tmpdir());
    ASSERT_EQ(st, 2);
    ASSERT_CONTAINS(out, "neighbors");
}
