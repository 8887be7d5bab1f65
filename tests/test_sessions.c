/* tests/test_sessions.c - trainer/sessions (loading, GRU4Rec preprocessing, time split) and
 * trainer/eval_next (session-parallel ranking with ties, pop / recentpop), plus the Globo reference
 * figures when ../shared/data/globo-news-sessions is present. */
#include <stdint.h>

#include "core/config.h"
#include "core/idmap.h"
#include "tests/testlib.h"
#include "trainer/eval_next.h"
#include "trainer/sessions.h"

static const char *tpath(const char *name)
{
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 1024, "%s/%s", test_tmpdir(), name);
    return p;
}

static sess_opts quiet_opts(void)
{
    sess_opts o;
    sess_opts_default(&o);
    o.verbose = 0;
    return o;
}

/* The external ids of session s as "a b c" (item ids) for easy asserts. */
static const char *sess_str(const sess_data *d, int64_t s)
{
    static char buf[8][256];
    static int k;
    char *p = buf[k++ & 7];
    p[0] = '\0';
    for (int64_t i = d->offsets[s]; i < d->offsets[s + 1]; i++) {
        if (i > d->offsets[s]) strcat(p, " ");
        strcat(p, idmap_key(d->item_vocab, d->items[i], NULL));
    }
    return p;
}

static const char *sess_id(const sess_data *d, int64_t s)
{
    return idmap_key(d->sess_vocab, d->sess_ids[s], NULL);
}

TEST(sess_load_sort_and_order)
{
    /* CSV, extra columns, clicks out of time order, a session spread over the file, equal first
     * times (ties by numeric session id: 9 before 10). */
    const char *p = tpath("c.csv");
    test_write_file(p, "user,sid,ts,iid\n"
                       "u,10,500,x\n"
                       "u,9,500,y\n"
                       "u,10,400,z\n"
                       "u,7,100,a\n"
                       "u,9,600,x\n"
                       "u,7,50,b\n"
                       "u,10,500,w\n"
                       "u,7,75,c\n");
    sess_opts o = quiet_opts();
    o.session_col = "sid";
    o.item_col = "iid";
    o.time_col = "ts";
    sess_data d;
    ASSERT_OK(sess_load(&d, p, &o));
    ASSERT_EQ(d.n_events, 8);
    ASSERT_EQ(d.n_sessions, 3);
    ASSERT_EQ(d.n_items, 7);
    /* 7 starts at 50; 10 starts at 400; 9 at 500. Within 10: z(400) x(500) w(500) (stable). */
    ASSERT_STR_EQ(sess_id(&d, 0), "7");
    ASSERT_STR_EQ(sess_str(&d, 0), "b c a");
    ASSERT_STR_EQ(sess_id(&d, 1), "10");
    ASSERT_STR_EQ(sess_str(&d, 1), "z x w");
    ASSERT_STR_EQ(sess_id(&d, 2), "9");
    ASSERT_STR_EQ(sess_str(&d, 2), "y x");
    ASSERT_EQ(d.times[0], 50);
    ASSERT_EQ(d.times[7], 600);
    sess_free(&d);

    /* Same first time: numeric ids 9 < 10, string ids bytewise ("s10" < "s9"). */
    test_write_file(p, "session_id\titem_id\ttimestamp\n10\ta\t5\n10\tb\t6\n9\tc\t5\n9\td\t7\n");
    sess_opts o2 = quiet_opts();
    ASSERT_OK(sess_load(&d, p, &o2));
    ASSERT_STR_EQ(sess_id(&d, 0), "9");
    ASSERT_STR_EQ(sess_id(&d, 1), "10");
    sess_free(&d);
    test_write_file(p, "session_id\titem_id\ttimestamp\ns10\ta\t5\ns10\tb\t6\ns9\tc\t5\ns9\td\t7\n");
    ASSERT_OK(sess_load(&d, p, &o2));
    ASSERT_STR_EQ(sess_id(&d, 0), "s10");
    ASSERT_STR_EQ(sess_id(&d, 1), "s9");
    sess_free(&d);

    /* sort_by_time false keeps file order inside a session. */
    test_write_file(p, "session_id,item_id,timestamp\n1,a,9\n1,b,3\n");
    o2.sort_by_time = 0;
    ASSERT_OK(sess_load(&d, p, &o2));
    ASSERT_STR_EQ(sess_str(&d, 0), "a b");
    sess_free(&d);
    sess_free(&d); /* zeroed: a second free is a no-op */
}

TEST(sess_load_long_session_sorted_stably)
{
    /* A 200-click session in reverse time order with pairs of equal times (merge-sort path). */
    char *text = malloc(1 << 16);
    ASSERT(text != NULL);
    size_t n = (size_t)sprintf(text, "session_id,item_id,timestamp\n");
    for (int i = 0; i < 200; i++) n += (size_t)sprintf(text + n, "s,i%d,%d\n", i, 1000 - i / 2);
    test_write_file(tpath("long.csv"), text);
    free(text);
    sess_opts o = quiet_opts();
    sess_data d;
    ASSERT_OK(sess_load(&d, tpath("long.csv"), &o));
    ASSERT_EQ(d.n_events, 200);
    for (int k = 1; k < 200; k++) ASSERT(d.times[k - 1] <= d.times[k]);
    /* times 901 are i198, i199 in that (file) order */
    ASSERT_STR_EQ(idmap_key(d.item_vocab, d.items[0], NULL), "i198");
    ASSERT_STR_EQ(idmap_key(d.item_vocab, d.items[1], NULL), "i199");
    sess_free(&d);
}

TEST(sess_load_errors_name_file_line_field)
{
    sess_opts o = quiet_opts();
    sess_data d;
    const char *p = tpath("bad.tsv");
    test_write_file(p, "session_id\titem_id\ttimestamp\n1\ta\t100\n1\tb\tsoon\n");
    ASSERT_RC(sess_load(&d, p, &o), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "bad.tsv:3:");
    ASSERT_CONTAINS(rc_errmsg(), "timestamp");
    ASSERT_CONTAINS(rc_errmsg(), "soon");

    test_write_file(p, "session_id\titem\ttimestamp\n1\ta\t100\n");
    ASSERT_RC(sess_load(&d, p, &o), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "bad.tsv:1:");
    ASSERT_CONTAINS(rc_errmsg(), "item_id");

    test_write_file(p, "session_id\titem_id\ttimestamp\n1\ta\t100\n2\tb\n");
    ASSERT_RC(sess_load(&d, p, &o), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "bad.tsv:3:");

    test_write_file(p, "session_id\titem_id\ttimestamp\n\ta\t100\n");
    ASSERT_RC(sess_load(&d, p, &o), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "bad.tsv:2:");
    ASSERT_CONTAINS(rc_errmsg(), "session_id");

    test_write_file(p, "");
    ASSERT_RC(sess_load(&d, p, &o), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "empty");

    ASSERT(sess_load(&d, tpath("nope.csv"), &o) < 0);
    ASSERT_CONTAINS(rc_errmsg(), "nope.csv");

    /* Decimal timestamps are rounded, not refused. */
    test_write_file(p, "session_id\titem_id\ttimestamp\n1\ta\t1396839069.277\n1\tb\t1396839070.6\n");
    ASSERT_OK(sess_load(&d, p, &o));
    ASSERT_EQ(d.times[0], 1396839069LL);
    ASSERT_EQ(d.times[1], 1396839071LL);
    sess_free(&d);
}

TEST(sess_preprocess_by_hand)
{
    /* Worked out by hand (min_item_support 2, min_session_len 2):
     *   after sorting and dropping repeats: s1 b a c | s2 a d | s3 e | s4 b c | s5 d f
     *   round 1: drop s3 (short); f has 1 click -> dropped (s5 = d)
     *   round 2: drop s5; d has 1 click -> dropped (s2 = a)
     *   round 3: drop s2; a has 1 click -> dropped (s1 = b c)
     *   round 4: nothing changes. Left: s1 b c (90, 120), s4 b c (400, 410). */
    const char *p = tpath("pre.tsv");
    test_write_file(p, "session_id\titem_id\ttimestamp\n"
                       "s1\ta\t100\ns1\tb\t90\ns1\ta\t110\ns1\tc\t120\n"
                       "s2\ta\t200\ns2\td\t210\n"
                       "s3\te\t300\n"
                       "s4\tb\t400\ns4\tc\t410\ns4\tc\t420\n"
                       "s5\td\t500\ns5\tf\t510\n");
    sess_opts o = quiet_opts();
    o.min_item_support = 2;
    sess_data d;
    ASSERT_OK(sess_load(&d, p, &o));
    ASSERT_EQ(d.n_events, 12);
    ASSERT_OK(sess_preprocess(&d, &o));
    ASSERT_EQ(d.n_sessions, 2);
    ASSERT_EQ(d.n_events, 4);
    ASSERT_STR_EQ(sess_id(&d, 0), "s1");
    ASSERT_STR_EQ(sess_str(&d, 0), "b c");
    ASSERT_EQ(d.times[0], 90);
    ASSERT_EQ(d.times[1], 120);
    ASSERT_STR_EQ(sess_id(&d, 1), "s4");
    ASSERT_STR_EQ(sess_str(&d, 1), "b c");
    ASSERT_EQ(d.times[3], 410);
    int64_t counts[16];
    ASSERT(d.n_items <= 16);
    sess_item_counts(&d, counts);
    int64_t total = 0;
    for (int64_t i = 0; i < d.n_items; i++) total += counts[i];
    ASSERT_EQ(total, 4);
    sess_free(&d);

    /* Repeats kept: s1 b a a c, s4 b c c; support 2 keeps a (2 clicks in s1) and the chain stops
     * earlier. */
    o.drop_repeats = 0;
    ASSERT_OK(sess_load(&d, p, &o));
    ASSERT_OK(sess_preprocess(&d, &o));
    ASSERT_STR_EQ(sess_str(&d, 0), "b a a c");
    sess_free(&d);

    /* Filters disabled: only the repeats go. */
    sess_opts o3 = quiet_opts();
    o3.min_item_support = 0;
    o3.min_session_len = 0;
    ASSERT_OK(sess_load(&d, p, &o3));
    ASSERT_OK(sess_preprocess(&d, &o3));
    ASSERT_EQ(d.n_sessions, 5);
    ASSERT_EQ(d.n_events, 10);
    sess_free(&d);
}

static const char split_data[] = "session_id\titem_id\ttimestamp\n"
                                 "A\tx\t900000\nA\ty\t900100\n"
                                 "B\tx\t913500\nB\ty\t913700\nB\tz\t913800\n"
                                 "C\ty\t913000\nC\tx\t913599\nC\tz\t913600\n"
                                 "D\tx\t913600\nD\tw\t913700\nD\ty\t913800\n"
                                 "E\tw\t920000\nE\tx\t920100\n"
                                 "F\ty\t1200000\nF\tx\t1200100\n"
                                 "G\tz\t905000\nG\tx\t905100\n";

TEST(sess_split_boundaries)
{
    /* T = 1000000 s, 1 day: cutoff C = 913600.
     *   A (900000..900100)  train x y
     *   B starts 913500 < C: cut at C -> x only -> dropped from train (too short)
     *   C starts 913000: 913600 is not before C -> train y x
     *   D starts exactly at C -> test; w is unseen in train -> x y (1 prediction)
     *   E starts 920000 -> test; w unseen -> x only -> no prediction, dropped
     *   F starts after T -> still test (T bounds only the cutoff): y x (1 prediction)
     *   G train z x
     * Train order by first click: A, G, C; items by first occurrence x=0 y=1 z=2. */
    char p[1024];
    snprintf(p, sizeof p, "%s", tpath("split.tsv"));
    test_write_file(p, split_data);
    sess_opts o = quiet_opts();
    o.min_item_support = 1;
    o.time_unit = "s";
    o.split_time = 1000000;
    o.days = 1;
    sess_split sp;
    ASSERT_OK(sess_prepare(&sp, p, &o));
    ASSERT_EQ(sp.cutoff, 913600);
    ASSERT_EQ(sp.split_time, 1000000);
    ASSERT_EQ(sp.train.n_sessions, 3);
    ASSERT_EQ(sp.train.n_events, 6);
    ASSERT_EQ(sp.train.n_items, 3);
    ASSERT_STR_EQ(sess_id(&sp.train, 0), "A");
    ASSERT_STR_EQ(sess_str(&sp.train, 0), "x y");
    ASSERT_STR_EQ(sess_id(&sp.train, 1), "G");
    ASSERT_STR_EQ(sess_str(&sp.train, 1), "z x");
    ASSERT_STR_EQ(sess_id(&sp.train, 2), "C");
    ASSERT_STR_EQ(sess_str(&sp.train, 2), "y x");
    ASSERT_STR_EQ(idmap_key(sp.train.item_vocab, 0, NULL), "x");
    ASSERT_STR_EQ(idmap_key(sp.train.item_vocab, 2, NULL), "z");
    ASSERT_EQ(sp.test.n_sessions, 2);
    ASSERT_EQ(sp.test.n_events, 4);
    ASSERT_STR_EQ(sess_id(&sp.test, 0), "D");
    ASSERT_STR_EQ(sess_str(&sp.test, 0), "x y");
    ASSERT_STR_EQ(sess_id(&sp.test, 1), "F");
    ASSERT_STR_EQ(sess_str(&sp.test, 1), "y x");
    ASSERT_EQ(sp.n_predictions, 2);
    ASSERT_EQ(sp.test_dropped_unseen, 2);
    ASSERT(sp.test.item_vocab == sp.train.item_vocab);
    ASSERT_EQ(sp.test.n_items, 3);

    /* Written and read back (as `recd eval --train --test` does): the same protocol. */
    ASSERT_OK(sess_write_tsv(&sp.train, tpath("train.tsv")));
    ASSERT_OK(sess_write_tsv(&sp.test, tpath("test.tsv")));
    sess_split back;
    sess_opts q = quiet_opts();
    ASSERT_OK(sess_load_for_eval(&back, NULL, tpath("train.tsv"), tpath("test.tsv"), &q));
    ASSERT_EQ(back.train.n_events, 6);
    ASSERT_EQ(back.train.n_sessions, 3);
    ASSERT_EQ(back.train.n_items, 3);
    ASSERT_EQ(back.n_predictions, 2);
    for (int64_t s = 0; s < 3; s++) ASSERT_STR_EQ(sess_str(&back.train, s), sess_str(&sp.train, s));
    for (int64_t s = 0; s < 2; s++) ASSERT_STR_EQ(sess_str(&back.test, s), sess_str(&sp.test, s));
    sess_split_free(&back);
    sess_split_free(&sp);

    /* Default T = the largest timestamp (1200100): C = 1113700; only F is test, and F's y x are both
     * seen in train. */
    o.split_time = 0;
    ASSERT_OK(sess_prepare(&sp, p, &o));
    ASSERT_EQ(sp.split_time, 1200100);
    ASSERT_EQ(sp.test.n_sessions, 1);
    ASSERT_EQ(sp.n_predictions, 1);
    /* B 913500.. whole, D x w y, E w x now in train */
    ASSERT_EQ(sp.train.n_sessions, 6);
    ASSERT_EQ(sp.train.n_items, 4);
    sess_split_free(&sp);

    /* Auto unit: these timestamps are seconds (< 1e11), so a day is 86400. */
    o.split_time = 1000000;
    o.time_unit = "auto";
    ASSERT_OK(sess_prepare(&sp, p, &o));
    ASSERT_EQ(sp.cutoff, 913600);
    sess_split_free(&sp);

    /* Everything after the cutoff: no training data is an error. */
    o.split_time = 100;
    ASSERT_RC(sess_prepare(&sp, p, &o), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "no training clicks");
}

/* ---- evaluation harness ----------------------------------------------------------------------- */

typedef struct {
    int N;
    int last[8];
    int resets, calls, bad;
} chain_ctx;

/* Predicts item+1 (mod N) as the next click; checks that a lane not flagged reset continues its
 * session (test sessions below are runs of consecutive items). */
static int chain_score(void *vctx, const int *lanes, const int32_t *items, const uint8_t *reset, int B,
                       float *scores)
{
    chain_ctx *c = vctx;
    c->calls++;
    for (int b = 0; b < B; b++) {
        int l = lanes[b];
        if (l < 0 || l >= 8) c->bad++;
        if (reset[b]) c->resets++;
        else if (items[b] != c->last[l] + 1) c->bad++;
        c->last[l] = items[b];
        for (int j = 0; j < c->N; j++) scores[(size_t)b * (size_t)c->N + (size_t)j] = 0.0f;
        scores[(size_t)b * (size_t)c->N + (size_t)((items[b] + 1) % c->N)] = 1.0f;
    }
    return RC_OK;
}

static void make_sessions(sess_data *d, const int *lens, const int32_t *items, int nS, int N)
{
    memset(d, 0, sizeof *d);
    int64_t nE = 0;
    for (int s = 0; s < nS; s++) nE += lens[s];
    d->n_sessions = nS;
    d->n_events = nE;
    d->n_items = N;
    d->items = malloc((size_t)nE * sizeof *d->items);
    d->times = calloc((size_t)nE, sizeof *d->times);
    d->offsets = malloc((size_t)(nS + 1) * sizeof *d->offsets);
    memcpy(d->items, items, (size_t)nE * sizeof *d->items);
    d->offsets[0] = 0;
    for (int s = 0; s < nS; s++) d->offsets[s + 1] = d->offsets[s] + lens[s];
}

TEST(sess_eval_ranks_with_ties_and_lanes)
{
    /* N = 10. Sessions: 0 1 2 | 3 4 | 7 | 5 6 9 | 8 9
     * chain predicts item+1: hits (rank 1) on 0->1, 1->2, 3->4, 5->6, 8->9;
     * 6->9: predicted 7, target 9 has score 0 tied with 8 other items -> rank 1 + 9 = 10.
     * The 1-click session gives no prediction. 6 predictions: recall@1 = 5/6, recall@5 = 5/6,
     * recall@10 = 1, mrr@10 = (5 + 1/10)/6. */
    const int lens[] = {3, 2, 1, 3, 2};
    const int32_t items[] = {0, 1, 2, 3, 4, 7, 5, 6, 9, 8, 9};
    sess_data d;
    make_sessions(&d, lens, items, 5, 10);
    ASSERT_EQ(sess_n_predictions(&d), 6);
    for (int lanes = 1; lanes <= 8; lanes++) {
        chain_ctx c = {.N = 10};
        next_scorer sc = {.ctx = &c, .score = chain_score};
        next_eval_opts o;
        next_eval_opts_default(&o);
        o.progress = 0;
        o.lanes = lanes;
        o.ncut = 3;
        o.cutoffs[0] = 1;
        o.cutoffs[1] = 5;
        o.cutoffs[2] = 10;
        metrics_topk acc;
        ASSERT_OK(next_eval(&d, &sc, &o, &acc));
        ASSERT_EQ(acc.n, 6);
        ASSERT_EQ(c.bad, 0);
        ASSERT_EQ(c.resets, 4); /* one per session with a prediction */
        ASSERT_NEAR(metrics_topk_recall(&acc, 1), 5.0 / 6, 1e-12);
        ASSERT_NEAR(metrics_topk_recall(&acc, 5), 5.0 / 6, 1e-12);
        ASSERT_NEAR(metrics_topk_recall(&acc, 10), 1.0, 1e-12);
        ASSERT_NEAR(metrics_topk_mrr(&acc, 10), (5 + 0.1) / 6, 1e-12);
        if (lanes == 1) ASSERT_EQ(c.calls, 6);
    }
    /* A constant scorer ranks every target last: ties count against the model. */
    float flat[10] = {0};
    next_static st = {flat, 10};
    next_scorer sc;
    next_static_scorer(&sc, &st);
    next_eval_opts o;
    next_eval_opts_default(&o);
    o.progress = 0;
    metrics_topk acc;
    ASSERT_OK(next_eval(&d, &sc, &o, &acc));
    ASSERT_EQ(acc.n, 6);
    ASSERT_NEAR(metrics_topk_recall(&acc, 5), 0.0, 0);
    char line[256];
    next_eval_format(&acc, "flat", line, sizeof line);
    /* every target ranks 10th of 10 */
    ASSERT_STR_EQ(line, "flat recall@5=0.0000 recall@10=1.0000 recall@20=1.0000 mrr@5=0.0000 mrr@10=0.1000 "
                        "mrr@20=0.1000 predictions=6");
    /* Bad options and out-of-range items are refused. */
    o.lanes = 0;
    ASSERT_RC(next_eval(&d, &sc, &o, &acc), RC_EINVAL);
    o.lanes = 4;
    d.items[4] = 12;
    ASSERT_RC(next_eval(&d, &sc, &o, &acc), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "out of range");
    sess_free(&d);
}

static int failing_score(void *ctx, const int *lanes, const int32_t *items, const uint8_t *reset, int B,
                         float *scores)
{
    (void)ctx, (void)lanes, (void)items, (void)reset, (void)B, (void)scores;
    return rc_error(RC_EIO, "scorer broke");
}

static int begin_calls, end_calls;
static int count_begin(void *ctx, int B)
{
    (void)ctx;
    begin_calls += B > 0;
    return RC_OK;
}
static void count_end(void *ctx)
{
    (void)ctx;
    end_calls++;
}

TEST(sess_eval_scorer_errors_propagate)
{
    const int lens[] = {2};
    const int32_t items[] = {0, 1};
    sess_data d;
    make_sessions(&d, lens, items, 1, 2);
    next_scorer sc = {.ctx = NULL, .begin = count_begin, .score = failing_score, .end = count_end};
    next_eval_opts o;
    next_eval_opts_default(&o);
    o.progress = 0;
    metrics_topk acc;
    ASSERT_RC(next_eval(&d, &sc, &o, &acc), RC_EIO);
    ASSERT_CONTAINS(rc_errmsg(), "scorer broke");
    ASSERT_EQ(begin_calls, 1);
    ASSERT_EQ(end_calls, 1);
    sess_free(&d);
}

TEST(sess_baseline_scores)
{
    /* train: s1 a(10) b(20) | s2 b(100) c(200) | s3 c(150) c(160)... (hand-built, items a=0 b=1 c=2) */
    const int lens[] = {2, 2, 2};
    const int32_t items[] = {0, 1, 1, 2, 2, 0};
    sess_data d;
    make_sessions(&d, lens, items, 3, 3);
    const int64_t times[] = {10, 20, 100, 200, 150, 160};
    memcpy(d.times, times, sizeof times);
    float s[3];
    next_pop_scores(&d, s);
    ASSERT_NEAR(s[0], 2, 0);
    ASSERT_NEAR(s[1], 2, 0);
    ASSERT_NEAR(s[2], 2, 0);
    /* window 60 before max 200: clicks at t > 140 -> c(200), c(150), a(160) */
    next_recentpop_scores(&d, 60, s);
    ASSERT_NEAR(s[0], 1, 0);
    ASSERT_NEAR(s[1], 0, 0);
    ASSERT_NEAR(s[2], 2, 0);
    sess_free(&d);
}

/* ---- real data ---------------------------------------------------------------------------------- */

TEST_TIMEOUT(sess_globo_split_and_baselines, 300)
{
    const char *dir = test_shared_data("globo-news-sessions");
    if (!dir) SKIP("dataset globo-news-sessions absent");
    char path[1024];
    snprintf(path, sizeof path, "%s/clicks.csv.gz", dir);
    sess_opts o = quiet_opts();
    o.item_col = "click_article_id";
    o.time_col = "click_timestamp";
    o.time_unit = "ms";
    o.split_time = 1508209200000LL;
    o.days = 1;
    sess_split sp;
    ASSERT_OK(sess_prepare(&sp, path, &o));
    /* The reference figures. */
    ASSERT_EQ(sp.train.n_events, 2738952);
    ASSERT_EQ(sp.train.n_sessions, 964056);
    ASSERT_EQ(sp.train.n_items, 11901);
    ASSERT_EQ(sp.n_predictions, 64965);
    /* Sessions ordered by first click. */
    for (int64_t s = 1; s < sp.train.n_sessions; s++)
        ASSERT(sp.train.times[sp.train.offsets[s - 1]] <= sp.train.times[sp.train.offsets[s]]);

    float *sc = malloc((size_t)sp.train.n_items * sizeof *sc);
    ASSERT(sc != NULL);
    next_static st = {sc, sp.train.n_items};
    next_scorer scorer;
    next_static_scorer(&scorer, &st);
    next_eval_opts eo;
    next_eval_opts_default(&eo);
    eo.progress = 0;
    metrics_topk acc;
    next_pop_scores(&sp.train, sc);
    ASSERT_OK(next_eval(&sp.test, &scorer, &eo, &acc));
    ASSERT_EQ(acc.n, 64965);
    ASSERT_NEAR(metrics_topk_recall(&acc, 20), 0.0004, 0.0005);
    next_recentpop_scores(&sp.train, 86400000LL, sc);
    ASSERT_OK(next_eval(&sp.test, &scorer, &eo, &acc));
    ASSERT_NEAR(metrics_topk_recall(&acc, 20), 0.1779, 0.0005);
    ASSERT_NEAR(metrics_topk_mrr(&acc, 20), 0.1007, 0.0005);
    free(sc);
    sess_split_free(&sp);
}

static int failing_begin(void *ctx, int B)
{
    (void)ctx, (void)B;
    return rc_error(RC_ENOMEM, "begin broke");
}

TEST(sess_eval_end_called_after_failed_begin)
{
    const int lens[] = {2};
    const int32_t items[] = {0, 1};
    sess_data d;
    make_sessions(&d, lens, items, 1, 2);
    end_calls = 0;
    next_scorer sc = {.ctx = NULL, .begin = failing_begin, .score = failing_score, .end = count_end};
    next_eval_opts o;
    next_eval_opts_default(&o);
    o.progress = 0;
    metrics_topk acc;
    ASSERT_RC(next_eval(&d, &sc, &o, &acc), RC_ENOMEM);
    ASSERT_CONTAINS(rc_errmsg(), "begin broke");
    ASSERT_EQ(end_calls, 1);
    sess_free(&d);
}

TEST(sess_reindex_to_foreign_vocab)
{
    /* As `recd eval gru4rec` does: re-index a split's test set to a model's own vocabulary. */
    char p[1024];
    snprintf(p, sizeof p, "%s/split.tsv", test_tmpdir());
    test_write_file(p, split_data);
    sess_opts o = quiet_opts();
    o.min_item_support = 1;
    o.time_unit = "s";
    o.split_time = 1000000;
    sess_split sp;
    ASSERT_OK(sess_prepare(&sp, p, &o));
    /* test: D x y | F y x. The model knows y and x in another order, and not z. */
    idmap *mv = idmap_new(4);
    ASSERT(mv != NULL);
    ASSERT_EQ(idmap_intern(mv, "q", 1), 0);
    ASSERT_EQ(idmap_intern(mv, "y", 1), 1);
    ASSERT_EQ(idmap_intern(mv, "x", 1), 2);
    sess_data model;
    memset(&model, 0, sizeof model);
    model.item_vocab = mv;
    model.n_items = 3;
    int64_t dropped = -1;
    ASSERT_OK(sess_reindex(&sp.test, &model, &dropped));
    ASSERT_EQ(dropped, 0);
    ASSERT_EQ(sp.test.n_items, 3);
    ASSERT(sp.test.item_vocab == mv);
    ASSERT_EQ(sp.test.n_sessions, 2);
    ASSERT_EQ(sp.test.items[0], 2); /* D: x y */
    ASSERT_EQ(sp.test.items[1], 1);
    ASSERT_EQ(sp.test.items[2], 1); /* F: y x */
    ASSERT_EQ(sp.test.items[3], 2);
    /* A vocabulary without y: both sessions fall below 2 clicks. */
    idmap *mv2 = idmap_new(4);
    ASSERT_EQ(idmap_intern(mv2, "x", 1), 0);
    sess_data model2;
    memset(&model2, 0, sizeof model2);
    model2.item_vocab = mv2;
    model2.n_items = 1;
    ASSERT_OK(sess_reindex(&sp.test, &model2, &dropped));
    ASSERT_EQ(dropped, 2);
    ASSERT_EQ(sp.test.n_sessions, 0);
    ASSERT_EQ(sess_n_predictions(&sp.test), 0);
    sess_split_free(&sp);
    idmap_free(mv);
    idmap_free(mv2);
}

typedef struct {
    long long epochs;
    sess_opts data;
} embed_cfg;

static const cfg_def embed_defs[] = {
    CFG_INT("epochs", embed_cfg, epochs, 1, 0, 100, "epochs"),
    SESS_CFG_ENTRIES(embed_cfg, data),
    CFG_END,
};

TEST(sess_cfg_entries_embed)
{
    embed_cfg c;
    memset(&c, 0, sizeof c);
    ASSERT_OK(cfg_defaults(embed_defs, &c));
    ASSERT_STR_EQ(c.data.session_col, "session_id");
    ASSERT_STR_EQ(c.data.time_unit, "auto");
    ASSERT_EQ(c.data.min_item_support, 5);
    ASSERT_NEAR(c.data.days, 1.0, 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/c.json", test_tmpdir());
    test_write_file(path, "{\"epochs\": 3, \"data\": {\"item_col\": \"click_article_id\", \"time_unit\": \"ms\", "
                          "\"split_time\": 1508209200000, \"min_item_support\": 2}}\n");
    ASSERT_OK(cfg_load_file(embed_defs, &c, path));
    ASSERT_STR_EQ(c.data.item_col, "click_article_id");
    ASSERT_STR_EQ(c.data.time_unit, "ms");
    ASSERT_EQ(c.data.split_time, 1508209200000LL);
    ASSERT_EQ(c.data.min_item_support, 2);
    test_write_file(path, "{\"data\": {\"time_unit\": \"hours\"}}\n");
    ASSERT(cfg_load_file(embed_defs, &c, path) != RC_OK);
    cfg_release(embed_defs, &c);
}

/* ---- review additions ------------------------------------------------------------------------- */

/* An id over the idmap key limit is bad input (RC_EFORMAT naming file, line and column), not an
 * out-of-memory error. */
TEST(sess_load_long_id_is_format_error)
{
    sess_opts o = quiet_opts();
    sess_data d;
    const char *p = tpath("long.tsv");
    static char text[4096];
    char id[1100];
    memset(id, 'q', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    snprintf(text, sizeof text, "session_id\titem_id\ttimestamp\n1\ta\t100\n1\t%s\t101\n", id);
    test_write_file(p, text);
    ASSERT_RC(sess_load(&d, p, &o), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "long.tsv:3:");
    ASSERT_CONTAINS(rc_errmsg(), "'item_id'");
    ASSERT_CONTAINS(rc_errmsg(), "1099 bytes");
    snprintf(text, sizeof text, "session_id\titem_id\ttimestamp\n%s\ta\t100\n", id);
    test_write_file(p, text);
    ASSERT_RC(sess_load(&d, p, &o), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "long.tsv:2:");
    ASSERT_CONTAINS(rc_errmsg(), "'session_id'");
}

/* Ids read from a CSV may hold a tab or start with a quote: the TSV written by sess_write_tsv reads
 * back to the same ids (quoted fields), and an id with a line break is refused, leaving no file. */
TEST(sess_write_tsv_quotes_awkward_ids)
{
    sess_opts o = quiet_opts();
    const char *p = tpath("odd.csv");
    test_write_file(p, "session_id,item_id,timestamp\n"
                       "\"s\t1\",\"a\tb\",100\n"
                       "\"s\t1\",\"\"\"q\"\"\",101\n"
                       "\"s\t1\",x\"y,102\n");
    sess_data d;
    ASSERT_OK(sess_load(&d, p, &o));
    ASSERT_EQ(d.n_events, 3);
    ASSERT_OK(sess_write_tsv(&d, tpath("odd.tsv")));
    sess_data back;
    ASSERT_OK(sess_load(&back, tpath("odd.tsv"), &o));
    ASSERT_EQ(back.n_events, 3);
    ASSERT_EQ(back.n_sessions, 1);
    ASSERT_STR_EQ(sess_id(&back, 0), "s\t1");
    ASSERT_STR_EQ(idmap_key(back.item_vocab, back.items[0], NULL), "a\tb");
    ASSERT_STR_EQ(idmap_key(back.item_vocab, back.items[1], NULL), "\"q\"");
    ASSERT_STR_EQ(idmap_key(back.item_vocab, back.items[2], NULL), "x\"y");
    sess_free(&back);
    sess_free(&d);

    /* A line break cannot be written to a line-based file: refused, nothing left behind. */
    ASSERT_OK(sess_load(&d, p, &o));
    ASSERT(idmap_intern(d.item_vocab, "bad\nid", 6) >= 0);
    d.items[1] = (int32_t)idmap_find(d.item_vocab, "bad\nid", 6);
    d.n_items = (int64_t)idmap_size(d.item_vocab);
    ASSERT_RC(sess_write_tsv(&d, tpath("nl.tsv")), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "nl.tsv");
    FILE *f = fopen(tpath("nl.tsv"), "r");
    ASSERT(f == NULL);
    sess_free(&d);
}

/* Several threads load and order string-keyed sessions at once (the ordering comparator used to
 * keep its vocabulary in a global): every thread gets the single-threaded order. */
#include <pthread.h>
static const char *mt_path;
static void *load_thread(void *arg)
{
    sess_opts o = quiet_opts();
    sess_data d;
    long bad = 0;
    for (int rep = 0; rep < 20; rep++) {
        if (sess_load(&d, mt_path, &o) != RC_OK) return (void *)1L;
        /* same first time for all: ordered by id bytewise, "k000" < "k001" < ... */
        for (int64_t s = 1; s < d.n_sessions; s++)
            bad += strcmp(sess_id(&d, s - 1), sess_id(&d, s)) > 0;
        sess_free(&d);
    }
    (void)arg;
    return (void *)bad;
}

TEST(sess_load_threads_order_by_string_id)
{
    static char text[1 << 16];
    size_t n = (size_t)snprintf(text, sizeof text, "session_id\titem_id\ttimestamp\n");
    for (int i = 199; i >= 0; i--) /* reverse order: the sort has work to do */
        n += (size_t)snprintf(text + n, sizeof text - n, "k%03d\ti%d\t500\n", i, i % 7);
    mt_path = tpath("mt.tsv");
    test_write_file(mt_path, text);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) ASSERT_EQ(pthread_create(&th[i], NULL, load_thread, NULL), 0);
    long total = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        total += (long)r;
    }
    ASSERT_EQ(total, 0);
}

/* Extreme timestamps and windows saturate the cutoff instead of overflowing (UBSan would stop). */
TEST(sess_split_cutoff_saturates)
{
    const char *p = tpath("neg.tsv");
    test_write_file(p, "session_id\titem_id\ttimestamp\n"
                       "1\ta\t-9223372036854775807\n1\tb\t-9223372036854775806\n"
                       "2\ta\t-9223372036854775805\n2\tb\t-9223372036854775804\n");
    sess_opts o = quiet_opts();
    o.min_item_support = 1;
    o.time_unit = "ms";
    o.days = 1e6;
    sess_split sp;
    /* cutoff saturates at INT64_MIN: every session is test, no training data */
    ASSERT_RC(sess_prepare(&sp, p, &o), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "no training clicks");
    o.days = NAN;
    ASSERT_RC(sess_prepare(&sp, p, &o), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "days");
}

/* recentpop with a window reaching past INT64_MIN counts every click (saturated, no overflow), and
 * `--window-days` (window_days) refuses a window that cannot be expressed in time units. */
TEST(sess_recentpop_window_saturates)
{
    const int lens[] = {2};
    const int32_t items[] = {0, 1};
    sess_data d;
    make_sessions(&d, lens, items, 1, 2);
    d.times[0] = INT64_MIN + 5;
    d.times[1] = INT64_MIN + 10;
    float s[2];
    next_recentpop_scores(&d, INT64_MAX, s);
    ASSERT_NEAR(s[0], 1, 0);
    ASSERT_NEAR(s[1], 1, 0);
    next_recentpop_scores(&d, 0, s); /* t > max_t: nothing */
    ASSERT_NEAR(s[0] + s[1], 0, 0);
    sess_free(&d);
    char out[2048];
    int st = test_run(out, sizeof out, "%s eval recentpop --data x --window-days 1e300 2>&1", test_recd_bin());
    ASSERT_EQ(st, 2);
    ASSERT_CONTAINS(out, "setting 'window_days': value 1e+300 out of range");
}

/* The settings of the click-file commands (`recd split sessions`, `recd eval MODEL`): a table with
 * SESS_FLAG_ENTRIES read by cfg_parse_args. "--NAME v" and "--NAME=v", a longer flag is not NAME, a
 * missing value is an error, '-' and '_' are the same in flag names, and the old --no-sort and
 * --keep-repeats are refused with the setting that replaces them. */
typedef struct {
    char *data;
    sess_opts so;
} flag_cfg;

static const cfg_def flag_defs[] = {
    CFG_STRING("data", flag_cfg, data, NULL, "click file"),
    SESS_FLAG_ENTRIES(flag_cfg, so),
    CFG_END,
};

/* Parse the NULL-terminated args after "cmd" into fresh defaults; returns the rc, c keeps the values. */
static int parse_flags(flag_cfg *c, char **args)
{
    char *argv[16] = {"cmd"};
    int argc = 1;
    while (*args && argc < 15) argv[argc++] = *args++;
    argv[argc] = NULL;
    cfg_release(flag_defs, c);
    if (cfg_defaults(flag_defs, c) != RC_OK) return -1;
    int rc = cfg_parse_args(flag_defs, c, &argc, argv, NULL);
    if (rc == RC_OK && argc != 1) return -2; /* something left over */
    return rc;
}

TEST(sess_flag_settings_forms)
{
    flag_cfg c;
    memset(&c, 0, sizeof c);
    ASSERT_OK(parse_flags(&c, (char *[]){"--data", "a.csv", NULL}));
    ASSERT_STR_EQ(c.data, "a.csv");
    ASSERT_OK(parse_flags(&c, (char *[]){"--data=b.csv", NULL}));
    ASSERT_STR_EQ(c.data, "b.csv");
    ASSERT_RC(parse_flags(&c, (char *[]){"--database", "x", NULL}), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "unknown option '--database'");
    ASSERT(c.data == NULL);
    ASSERT_RC(parse_flags(&c, (char *[]){"--data", NULL}), RC_EINVAL); /* last argument, no value */
    ASSERT_CONTAINS(rc_errmsg(), "needs a value");
    ASSERT(c.data == NULL);

    ASSERT_OK(parse_flags(&c, (char *[]){"--days=2.5", NULL}));
    ASSERT_NEAR(c.so.days, 2.5, 0);
    /* --min-item-support --data: "--data" is taken as its value and refused */
    ASSERT_RC(parse_flags(&c, (char *[]){"--min-item-support", "--data", NULL}), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "min_item_support");
    ASSERT_EQ(c.so.min_item_support, 5);
    /* dashes and underscores name the same setting */
    ASSERT_OK(parse_flags(&c, (char *[]){"--split-time", "17", "--session_col", "sid", "--item-col=it", "--time-unit",
                                         "s", "--min_session-len", "3", "--sort-by-time", "false", NULL}));
    ASSERT_EQ(c.so.split_time, 17);
    ASSERT_STR_EQ(c.so.session_col, "sid");
    ASSERT_STR_EQ(c.so.item_col, "it");
    ASSERT_STR_EQ(c.so.time_unit, "s");
    ASSERT_EQ(c.so.min_session_len, 3);
    ASSERT_EQ(c.so.sort_by_time, 0);
    ASSERT_RC(parse_flags(&c, (char *[]){"--time-unit", "hours", NULL}), RC_ERANGE);
    ASSERT_CONTAINS(rc_errmsg(), "auto|ms|s");
    /* the old inverted flags name their replacement */
    ASSERT_RC(parse_flags(&c, (char *[]){"--no-sort", NULL}), RC_EINVAL);
    ASSERT_STR_EQ(rc_errmsg(), "command line: option --no-sort: setting 'no_sort' is now called 'sort_by_time': write "
                               "--sort_by_time false");
    ASSERT_RC(parse_flags(&c, (char *[]){"--keep-repeats", NULL}), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "setting 'keep_repeats' is now called 'drop_repeats'");
    cfg_release(flag_defs, &c);
}

/* The defaults are written once (SESS_CFG_ENTRIES_AT): sess_opts_default, a trainer's data.* table and
 * a command's table agree on every field. */
TEST(sess_defaults_one_source)
{
    sess_opts d;
    sess_opts_default(&d);
    ASSERT_STR_EQ(d.session_col, "session_id");
    ASSERT_STR_EQ(d.item_col, "item_id");
    ASSERT_STR_EQ(d.time_col, "timestamp");
    ASSERT_STR_EQ(d.time_unit, "auto");
    ASSERT_EQ(d.split_time, 0);
    ASSERT_NEAR(d.days, 1.0, 0);
    ASSERT_EQ(d.sort_by_time, 1);
    ASSERT_EQ(d.drop_repeats, 1);
    ASSERT_EQ(d.min_session_len, 2);
    ASSERT_EQ(d.min_item_support, 5);
    ASSERT_EQ(d.verbose, 1);
    flag_cfg c;
    memset(&c, 0, sizeof c);
    ASSERT_OK(cfg_defaults(flag_defs, &c));
    embed_cfg e;
    memset(&e, 0, sizeof e);
    ASSERT_OK(cfg_defaults(embed_defs, &e));
    const sess_opts *o[2] = {&c.so, &e.data};
    for (int k = 0; k < 2; k++) {
        ASSERT_STR_EQ(o[k]->session_col, d.session_col);
        ASSERT_STR_EQ(o[k]->item_col, d.item_col);
        ASSERT_STR_EQ(o[k]->time_col, d.time_col);
        ASSERT_STR_EQ(o[k]->time_unit, d.time_unit);
        ASSERT_EQ(o[k]->split_time, d.split_time);
        ASSERT_NEAR(o[k]->days, d.days, 0);
        ASSERT_EQ(o[k]->sort_by_time, d.sort_by_time);
        ASSERT_EQ(o[k]->drop_repeats, d.drop_repeats);
        ASSERT_EQ(o[k]->min_session_len, d.min_session_len);
        ASSERT_EQ(o[k]->min_item_support, d.min_item_support);
    }
    cfg_release(flag_defs, &c);
    cfg_release(embed_defs, &e);
}
