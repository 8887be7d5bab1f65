/* tests/test_evstore.c - server/evstore (the durable event store) and `recd events export`, on real
 * LMDB environments in the test's temporary folder. No timing assertion: waits are bounded polls. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "core/sbuf.h"
#include "server/evstore.h"
#include "tests/test_evstore_util.h"
#include "tests/testlib.h"
#include "trainer/sessions.h"

#define T0 1700000000.0 /* a fixed time for records that retention must keep (retention off) */

static int g_sync; /* 1: fdatasync and the syncer thread (tests of the acknowledgement path) */

static evstore *open_store(const char *dir, uint64_t max_bytes, double retention_s)
{
    evstore_cfg c = tev_cfg(dir, max_bytes, retention_s);
    c.sync = g_sync;
    return tev_open(&c);
}

static void impress(evstore *st, int run, int arm, const char *req, const char *unit, const char *session,
                    int n_items, const char *const *items, double t)
{
    api_str it[16];
    for (int i = 0; i < n_items; i++) it[i] = tev_str(items[i]);
    ev_impression imp = tev_impression(run, arm, req, unit, t);
    imp.session = tev_str(session);
    imp.model = tev_str("m");
    imp.version = tev_str("1");
    imp.items = it;
    imp.n_items = n_items;
    imp.latency_us = 1500;
    ASSERT_OK(evstore_impression(st, &imp));
}

/* Sums over units from explicit per-unit counts (n, a, c, v), computed here without ab_sums_update. */
static ab_sums sums_by_hand(const double (*u)[4], int k)
{
    ab_sums s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < k; i++) {
        double n = u[i][0], a = u[i][1], c = u[i][2], v = u[i][3], conv = a > 0;
        s.units += 1;
        s.n += n, s.nn += n * n;
        s.a += a, s.aa += a * a, s.an += a * n;
        s.c += c, s.cc += c * c, s.cn += c * n;
        s.v += v, s.vv += v * v, s.vn += v * n;
        s.conv += conv, s.cvn += conv * n;
    }
    return s;
}

static void assert_sums(const ab_sums *got, const ab_sums *want)
{
    const double *g = (const double *)got, *w = (const double *)want;
    for (size_t i = 0; i < sizeof *got / sizeof(double); i++)
        if (fabs(g[i] - w[i]) > 1e-9) FAIL("ab_sums field %zu: %g != %g", i, g[i], w[i]);
}

/* The traffic of evstore_counts_and_sums and the expected per-unit counts. */
static const double shares2[2] = {0.5, 0.5};
static void traffic(evstore *st, int run)
{
    static const char *const items[] = {"i1", "i2", "i3"};
    impress(st, run, 0, "r1", "u1", "s1", 3, items, T0 + 1);
    impress(st, run, 0, "r2", "u1", "s1", 2, items, T0 + 2);
    impress(st, run, 0, "r3", "u1", "s2", 1, items, T0 + 3);
    impress(st, run, 0, "r4", "u2", "", 3, items, T0 + 4);
    impress(st, run, 0, "r5", "u3", "s3", 2, items, T0 + 5);
    impress(st, run, 0, "r6", "u3", "s3", 2, items, T0 + 6);
    impress(st, run, 1, "r7", "u4", "s4", 3, items, T0 + 7);
    tev_batch w;
    tev_batch_init(&w);
    tev_add(&w, EV_CLICK, "r1", "i1", NULL, 0, T0 + 10);
    tev_add(&w, EV_CLICK, "r2", "i2", NULL, 0, T0 + 11);
    tev_add(&w, EV_ACQUISITION, "r2", "i2", NULL, 5, T0 + 12);
    tev_add(&w, EV_ACQUISITION, "r4", "i1", NULL, 3, T0 + 13);
    tev_add(&w, EV_ACQUISITION, "r4", "i3", NULL, 4, T0 + 14);
    tev_add(&w, EV_IMPRESSION, "r5", "i1", NULL, 0, T0 + 15);
    tev_add(&w, EV_CLICK, "r7", "i3", "e-7", 0, T0 + 16);
    ASSERT_OK(tev_run(st, &w));
    ASSERT_EQ(w.b.status, 0);
    ASSERT_EQ(w.b.stored, 7);
    ASSERT_EQ(w.b.duplicates, 0);
}
/* arm 0: u1 n=3 c=2 a=1 v=5; u2 n=1 a=2 v=7; u3 n=2 ; arm 1: u4 n=1 c=1 */
static const double arm0_units[3][4] = {{3, 1, 2, 5}, {1, 2, 0, 7}, {2, 0, 0, 0}};
static const double arm1_units[1][4] = {{1, 0, 1, 0}};

static void check_traffic_report(evstore *st, int run)
{
    ev_arm_report r[2];
    uint64_t multi = 99;
    ASSERT_OK(evstore_report(st, run, r, 2, &multi));
    ab_sums w0 = sums_by_hand(arm0_units, 3), w1 = sums_by_hand(arm1_units, 1);
    assert_sums(&r[0].s, &w0);
    assert_sums(&r[1].s, &w1);
    ASSERT_EQ(multi, 0);
    ASSERT_EQ(r[0].impression_events, 1);
    ASSERT_EQ(r[0].items_shown, 3 + 2 + 1 + 3 + 2 + 2);
    ASSERT_EQ(r[0].distinct_items, 3);
    ASSERT_EQ(r[1].distinct_items, 3);
    ASSERT_EQ(r[0].fallbacks, 0);
    ASSERT_EQ(r[0].lat_hist[0] + r[0].lat_hist[EV_LAT_BUCKETS - 1], 0);
    uint64_t tot = 0;
    for (int i = 0; i < EV_LAT_BUCKETS; i++) tot += r[0].lat_hist[i];
    ASSERT_EQ(tot, 6);
    double p99 = ev_lat_quantile(r[0].lat_hist, 0.99);
    ASSERT(p99 > 1500 && p99 <= 1500 * 1.4 + 1);
    ASSERT_NEAR(r[0].first_t, T0 + 1, 1e-6);
    ASSERT_NEAR(r[0].last_t, T0 + 6, 1e-6);
}

TEST(evstore_counts_and_sums)
{
    evstore *st = open_store(tev_path("state"), 0, 0);
    int run = tev_declare(st, "home", "salt1", 2, shares2);
    ASSERT_EQ(run, 0);
    traffic(st, run);
    check_traffic_report(st, run);
    sbuf m;
    sbuf_init(&m);
    evstore_render_metrics(&m, st);
    ASSERT_CONTAINS(m.data, "recd_events_committed_total{type=\"impression\"} 7\n");
    ASSERT_CONTAINS(m.data, "recd_events_committed_total{type=\"click\"} 3\n");
    ASSERT_CONTAINS(m.data, "recd_events_committed_total{type=\"acquisition\"} 3\n");
    ASSERT_CONTAINS(m.data, "recd_events_committed_total{type=\"client_impression\"} 1\n");
    ASSERT_CONTAINS(m.data, "recd_events_commit_seconds_bucket{le=\"+Inf\"}");
    ASSERT_CONTAINS(m.data, "recd_events_state_bytes ");
    ASSERT_CONTAINS(m.data, "recd_events_queue_bytes ");
    sbuf_release(&m);
    /* survives close and reopen (report and history) */
    ev_point h1[8];
    int nh = evstore_history(st, run, 0, h1, 8);
    ASSERT(nh >= 1);
    evstore_close(st);
    st = open_store(tev_path("state"), 0, 0);
    ASSERT_EQ(tev_declare(st, "home", "salt1", 2, shares2), run);
    check_traffic_report(st, run);
    ev_point h2[8];
    ASSERT_EQ(evstore_history(st, run, 0, h2, 8), nh);
    ASSERT(memcmp(h1, h2, (size_t)nh * sizeof *h1) == 0);
    ab_sums w0 = sums_by_hand(arm0_units, 3);
    assert_sums(&h2[nh - 1].s, &w0); /* the newest point is the arm's sums */
    ASSERT_NEAR(h2[nh - 1].t, (floor((T0 + 15) / 60) + 1) * 60, 1e-6);
    evstore_close(st);
}

TEST(evstore_history_buckets)
{
    evstore_cfg c = evstore_cfg_default();
    c.dir = tev_path("state");
    c.sync = 0;
    c.history_s = 10;
    evstore *st;
    ASSERT_OK(evstore_open(&st, &c));
    int run = tev_declare(st, "h", "s", 1, shares2);
    tev_batch w;
    tev_batch_init(&w);
    for (int k = 0; k < 5; k++) {
        char req[16];
        snprintf(req, sizeof req, "q%d", k);
        impress(st, run, 0, req, "u", "", 0, NULL, T0 + 10 * k);
        ASSERT_OK(tev_run(st, &w)); /* an empty batch: one commit per bucket */
    }
    ev_point p[8];
    ASSERT_EQ(evstore_history(st, run, 0, p, 8), 5);
    for (int k = 0; k < 5; k++) {
        ASSERT_NEAR(p[k].s.n, k + 1, 1e-9);
        ASSERT_NEAR(p[k].t, T0 + 10 * k + 10, 1e-6);
    }
    ASSERT_EQ(evstore_history(st, run, 0, p, 2), 2); /* the newest two */
    ASSERT_NEAR(p[0].s.n, 4, 1e-9);
    ASSERT_NEAR(p[1].s.n, 5, 1e-9);
    ASSERT_RC(evstore_history(st, run, 3, p, 2), RC_EINVAL);
    ASSERT_RC(evstore_history(st, 7, 0, p, 2), RC_ENOTFOUND);
    evstore_close(st);
}

TEST(evstore_unknown_request_ids)
{
    evstore *st = open_store(tev_path("state"), 0, 0);
    int run = tev_declare(st, "home", "s", 2, shares2);
    static const char *const items[] = {"i1"};
    impress(st, run, 0, "r1", "u1", "", 1, items, T0);
    tev_batch w;
    tev_batch_init(&w);
    tev_add(&w, EV_CLICK, "r1", "i1", NULL, 0, T0 + 1);
    tev_add(&w, EV_CLICK, "nope", "i1", NULL, 0, T0 + 1);
    tev_add(&w, EV_ACQUISITION, "r1", "i1", NULL, 2, T0 + 1);
    tev_add(&w, EV_CLICK, "nope2", "i1", NULL, 0, T0 + 1);
    ASSERT_OK(tev_run(st, &w));
    ASSERT_EQ(w.b.status, 422);
    ASSERT_EQ(w.b.n_unknown, 2);
    ASSERT_EQ(w.unknown[0], 1);
    ASSERT_EQ(w.unknown[1], 3);
    ASSERT_EQ(w.b.stored, 0);
    ASSERT_CONTAINS(w.b.detail, "unknown request_id");
    /* nothing of it was stored: the same events again are new, not duplicates */
    ev_arm_report r[2];
    ASSERT_OK(evstore_report(st, run, r, 2, NULL));
    ASSERT_NEAR(r[0].s.c + r[0].s.a, 0, 0);
    tev_batch w2;
    tev_batch_init(&w2);
    tev_add(&w2, EV_CLICK, "r1", "i1", NULL, 0, T0 + 1);
    ASSERT_OK(tev_run(st, &w2));
    ASSERT_EQ(w2.b.status, 0);
    ASSERT_EQ(w2.b.stored, 1);
    ASSERT_EQ(w2.b.duplicates, 0);
    /* with unknown_cap 0 the count is still given */
    tev_batch w3;
    tev_batch_init(&w3);
    w3.b.unknown_cap = 0;
    w3.b.unknown = NULL;
    tev_add(&w3, EV_CLICK, "x", "i1", NULL, 0, T0 + 1);
    ASSERT_OK(tev_run(st, &w3));
    ASSERT_EQ(w3.b.status, 422);
    ASSERT_EQ(w3.b.n_unknown, 1);
    ASSERT(tev_metric(st, "recd_events_refused_total{reason=\"unknown_request_id\"}") >= 0);
    evstore_close(st);
}

TEST(evstore_duplicates)
{
    evstore *st = open_store(tev_path("state"), 0, 0);
    int run = tev_declare(st, "home", "s", 2, shares2);
    static const char *const items[] = {"i1", "i2"};
    impress(st, run, 0, "r1", "u1", "", 2, items, T0);
    impress(st, run, 0, "r1", "u9", "", 2, items, T0); /* a second impression with the same id: dropped */
    tev_batch w;
    tev_batch_init(&w);
    tev_add(&w, EV_CLICK, "r1", "i1", NULL, 0, T0 + 1);
    tev_add(&w, EV_CLICK, "r1", "i1", NULL, 0, T0 + 2);     /* same (request, type, item) in one batch */
    tev_add(&w, EV_ACQUISITION, "r1", "i1", NULL, 1, T0 + 2); /* another type: not a duplicate */
    tev_add(&w, EV_CLICK, "r1", "i2", "ev-1", 0, T0 + 3);
    tev_add(&w, EV_CLICK, "r1", "i1", "ev-1", 0, T0 + 3);   /* same event id */
    ASSERT_OK(tev_run(st, &w));
    ASSERT_EQ(w.b.status, 0);
    ASSERT_EQ(w.b.stored, 3);
    ASSERT_EQ(w.b.duplicates, 2);
    /* a resend is all duplicates */
    ASSERT_OK(tev_run(st, &w));
    ASSERT_EQ(w.b.status, 0);
    ASSERT_EQ(w.b.stored, 0);
    ASSERT_EQ(w.b.duplicates, 5);
    evstore_close(st);
    /* and after a reopen */
    st = open_store(tev_path("state"), 0, 0);
    ASSERT_OK(tev_run(st, &w));
    ASSERT_EQ(w.b.stored, 0);
    ASSERT_EQ(w.b.duplicates, 5);
    ev_arm_report r[2];
    ASSERT_OK(evstore_report(st, run, r, 2, NULL));
    ASSERT_NEAR(r[0].s.units, 1, 0);
    ASSERT_NEAR(r[0].s.n, 1, 0);
    ASSERT_NEAR(r[0].s.c, 2, 0);
    ASSERT_NEAR(r[0].s.a, 1, 0);
    ASSERT_EQ(tev_metric(st, "recd_events_duplicates_total"), 5);
    evstore_close(st);
}

TEST(evstore_multi_arm_unit)
{
    evstore *st = open_store(tev_path("state"), 0, 0);
    static const double sh3[3] = {0.3, 0.3, 0.3};
    int run = tev_declare(st, "x", "s", 3, sh3);
    impress(st, run, 0, "r1", "u1", "", 0, NULL, T0);
    impress(st, run, 1, "r2", "u1", "", 0, NULL, T0);
    impress(st, run, 0, "r3", "u1", "", 0, NULL, T0);
    impress(st, run, 2, "r4", "u1", "", 0, NULL, T0);
    impress(st, run, 1, "r5", "u2", "", 0, NULL, T0);
    impress(st, run, 2, "r6", "u2", "", 0, NULL, T0);
    impress(st, run, 0, "r7", "u3", "", 0, NULL, T0);
    tev_batch w;
    tev_batch_init(&w);
    ASSERT_OK(tev_run(st, &w));
    ev_arm_report r[3];
    uint64_t multi = 0;
    ASSERT_OK(evstore_report(st, run, r, 3, &multi));
    ASSERT_EQ(multi, 2);
    ASSERT_NEAR(r[0].s.units, 2, 0);
    ASSERT_NEAR(r[1].s.units, 2, 0);
    ASSERT_NEAR(r[2].s.units, 2, 0);
    ASSERT_NEAR(r[0].s.n, 3, 0);
    ASSERT_NEAR(r[0].s.nn, 5, 0);
    evstore_close(st);
}

TEST(evstore_declare_rules)
{
    evstore *st = open_store(tev_path("state"), 0, 0);
    static const double a[2] = {0.5, 0.5}, b[2] = {0.7, 0.3};
    int r1 = tev_declare(st, "home", "x", 2, a);
    ASSERT_EQ(tev_declare(st, "home", "x", 2, a), r1);
    static const char *const names[] = {"a", "b", "c"};
    ev_run_decl d = {"home", "x", 2, names, b};
    int run = -1;
    ASSERT_RC(evstore_declare(st, &d, &run), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "experiment 'home': shares changed from [0.5,0.5] to [0.7,0.3] with the same salt 'x'");
    ASSERT_CONTAINS(rc_errmsg(), "give the experiment a new salt");
    static const double c3[3] = {0.3, 0.3, 0.3};
    ev_run_decl d3 = {"home", "x", 3, names, c3};
    ASSERT_RC(evstore_declare(st, &d3, &run), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "arms changed from [a,b] to [a,b,c]");
    int r2 = tev_declare(st, "home", "y", 2, b); /* a new salt: a new run */
    ASSERT_NE(r1, r2);
    static const double bad[2] = {1.5, 0.5};
    ev_run_decl db = {"home", "z", 2, names, bad};
    ASSERT_RC(evstore_declare(st, &db, &run), RC_EINVAL);
    evstore_close(st);
    /* the same after a restart */
    st = open_store(tev_path("state"), 0, 0);
    ASSERT_RC(evstore_declare(st, &d, &run), RC_EINVAL);
    ASSERT_EQ(tev_declare(st, "home", "y", 2, b), r2);
    ASSERT_EQ(tev_declare(st, "home", "x", 2, a), r1);
    ASSERT_RC(evstore_report(st, 40, NULL, 0, NULL), RC_ENOTFOUND);
    evstore_close(st);
}

TEST(evstore_bad_input)
{
    evstore *st = open_store(tev_path("state"), 0, 0);
    int run = tev_declare(st, "home", "s", 2, shares2);
    ev_impression imp = tev_impression(run, 2 /* out of range */, "r", "u", T0);
    ASSERT_RC(evstore_impression(st, &imp), RC_EINVAL);
    imp.arm = 0;
    imp.run = 9;
    ASSERT_RC(evstore_impression(st, &imp), RC_EINVAL);
    imp.run = run;
    imp.unit = tev_str("");
    ASSERT_RC(evstore_impression(st, &imp), RC_EINVAL);
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    imp.unit = tev_str(big);
    ASSERT_RC(evstore_impression(st, &imp), RC_EINVAL);
    imp.unit = tev_str("u");
    imp.t = NAN;
    ASSERT_RC(evstore_impression(st, &imp), RC_EINVAL);
    imp.t = T0;
    imp.n_items = EVSTORE_MAX_ITEMS + 1;
    ASSERT_RC(evstore_impression(st, &imp), RC_EINVAL);
    imp.n_items = 0;
    ASSERT_OK(evstore_impression(st, &imp));
    tev_batch w;
    tev_batch_init(&w);
    tev_add(&w, (ev_type)9, "r", "i", NULL, 0, T0);
    ASSERT_RC(evstore_submit(st, &w.b), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "events[0].type");
    w.b.n = 0;
    tev_add(&w, EV_CLICK, "r", "i", big, 0, T0);
    ASSERT_RC(evstore_submit(st, &w.b), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "events[0].event_id");
    w.b.n = 0;
    tev_add(&w, EV_ACQUISITION, "r", "i", NULL, INFINITY, T0);
    ASSERT_RC(evstore_submit(st, &w.b), RC_EINVAL);
    w.b.n = 0;
    tev_add(&w, EV_ACQUISITION, "r", "i", NULL, 2.5, T0);
    ASSERT_OK(tev_run(st, &w));
    ASSERT_EQ(w.b.status, 0);
    evstore_close(st);
}

TEST(evstore_impressions_flushed_without_events)
{
    evstore *st = open_store(tev_path("state"), 0, 0);
    int run = tev_declare(st, "home", "s", 2, shares2);
    for (int i = 0; i < 50; i++) {
        char req[16];
        snprintf(req, sizeof req, "r%d", i);
        impress(st, run, i & 1, req, i % 3 ? "u1" : "u2", "", 0, NULL, T0 + i);
    }
    tev_wait_impressions(st, run, 0, 25, NULL, 0);
    tev_wait_impressions(st, run, 1, 25, NULL, 0);
    evstore_close(st);
}

TEST(evstore_not_a_state_folder)
{
    /* an LMDB environment that is not an event store (a snapshot has a meta DB too) */
    const char *d = tev_path("other");
    mkdir(d, 0755);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ASSERT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    ASSERT_EQ(mdb_env_open(env, d, 0, 0644), 0);
    ASSERT_EQ(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
    MDB_val k = {4, "name"}, v = {3, "abc"};
    ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    evstore_cfg c = evstore_cfg_default();
    c.dir = d;
    evstore *st = NULL;
    ASSERT_RC(evstore_open(&st, &c), RC_ECORRUPT);
    ASSERT_CONTAINS(rc_errmsg(), "not a recd state folder");
    ASSERT_CONTAINS(rc_errmsg(), d);
    ASSERT(st == NULL);
    ASSERT_RC(evstore_export(d, stdout, NULL, NULL, NULL), RC_ECORRUPT);
    ASSERT_CONTAINS(rc_errmsg(), d);
    /* garbage data.mdb */
    const char *g = tev_path("garbage");
    mkdir(g, 0755);
    char p[1100];
    snprintf(p, sizeof p, "%s/data.mdb", g);
    char junk[8192];
    memset(junk, 'j', sizeof junk - 1);
    junk[sizeof junk - 1] = 0;
    test_write_file(p, junk);
    c.dir = g;
    int rc = evstore_open(&st, &c);
    ASSERT(rc == RC_ECORRUPT || rc == RC_EIO);
    ASSERT_CONTAINS(rc_errmsg(), g);
    /* missing folder */
    ASSERT_RC(evstore_export(tev_path("none"), stdout, NULL, NULL, NULL), RC_ENOTFOUND);
    ASSERT_CONTAINS(rc_errmsg(), "none");
    /* a second store on the same folder while one is open */
    evstore *a = open_store(tev_path("state"), 0, 0);
    c.dir = tev_path("state");
    ASSERT_RC(evstore_open(&st, &c), RC_EIO);
    ASSERT_CONTAINS(rc_errmsg(), "in use");
    evstore_close(a);
}

/* One impression (with rows: big) and a click on it; returns the batch status, or -1 when refused at
 * once with RC_EFULL. */
static int full_step(evstore *st, int run, tev_batch *w, const char *req, const char *unit)
{
    static char rowbuf[2048];
    memset(rowbuf, 'r', sizeof rowbuf - 1);
    api_str rws[4] = {tev_str(rowbuf), tev_str(rowbuf), tev_str(rowbuf), tev_str(rowbuf)};
    api_str its[4] = {tev_str("i1"), tev_str("i2"), tev_str("i3"), tev_str("i4")};
    ev_impression imp = tev_impression(run, 0, req, unit, (double)time(NULL));
    imp.items = its;
    imp.n_items = 4;
    imp.row_header = tev_str("a,b");
    imp.rows = rws;
    int rc = evstore_impression(st, &imp);
    ASSERT(rc == RC_OK || rc == RC_EFULL);
    w->b.n = 0;
    tev_add(w, EV_CLICK, req, "i1", NULL, 0, (double)time(NULL));
    rc = tev_run(st, w);
    if (rc == RC_EFULL) return -1;
    ASSERT_OK(rc);
    return w->b.status;
}

/* The reviewer's case: a small map filled by few units (the aggregates stay small) with retention on,
 * then no traffic at all: retention alone must make room (its deletes run in their own transaction, in
 * the room the 90% high-water mark keeps), and the store takes events again without a restart. */
TEST_TIMEOUT(evstore_full_recovers_by_retention_alone, 120)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tev_path("state"));
    evstore *st = open_store(dir, 1 << 20, 2);
    int run = tev_declare(st, "home", "s", 2, shares2);
    tev_batch w;
    tev_batch_init(&w);
    int got503 = 0;
    for (int k = 0; k < 20000 && !got503; k++) {
        char req[32], unit[32];
        snprintf(req, sizeof req, "f%d", k);
        snprintf(unit, sizeof unit, "u%d", k % 10);
        int s = full_step(st, run, &w, req, unit);
        if (s == 503 || s == -1) got503 = 1;
    }
    ASSERT(got503);
    /* no traffic: within a few seconds retention has deleted the old records and made room */
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) {
        tev_sleep_ms(200);
        ok = tev_metric(st, "recd_events_full") == 0 && tev_metric(st, "recd_events_expired_total") > 0;
    }
    ASSERT(ok);
    ok = 0;
    for (int i = 0; i < 50 && !ok; i++) {
        char req[32];
        snprintf(req, sizeof req, "again%d", i);
        if (full_step(st, run, &w, req, "u1") == 0 && w.b.stored == 1) ok = 1;
        else tev_sleep_ms(200);
    }
    ASSERT(ok);
    evstore_close(st);
}

/* Fill a small map (retention off) until batches are answered 503 even after the retry window; then
 * RC_EFULL and the metric; reopened with a 1 s retention, writes succeed again once old records are
 * deleted. */
TEST_TIMEOUT(evstore_full_then_recovers, 120)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tev_path("state"));
    evstore *st = open_store(dir, 512 << 10, 0);
    int run = tev_declare(st, "home", "s", 2, shares2);
    tev_batch w;
    tev_batch_init(&w);
    int got503 = 0, fails = 0;
    for (int k = 0; k < 20000 && fails < 3; k++) {
        char req[32], unit[32];
        snprintf(req, sizeof req, "r%d", k);
        snprintf(unit, sizeof unit, "u%d", k);
        int s = full_step(st, run, &w, req, unit);
        if (s == 503) {
            got503 = 1;
            fails++;
            ASSERT_CONTAINS(w.b.detail, "full");
            ASSERT_RC(evstore_submit(st, &w.b), RC_EFULL); /* refused at once now */
            tev_sleep_ms(1100);                                  /* the retry window */
        } else if (s == -1) {
            tev_sleep_ms(100);
        } else {
            fails = 0;
            ASSERT(s == 0 || s == 422); /* 422: its impression was dropped while full */
        }
    }
    ASSERT(got503);
    ASSERT_EQ(fails, 3);
    ASSERT(tev_metric(st, "recd_events_refused_total{reason=\"full\"}") > 0);
    ASSERT(tev_metric(st, "recd_events_dropped_total{kind=\"store_full\"}") > 0);
    ev_arm_report r0[2];
    ASSERT_OK(evstore_report(st, run, r0, 2, NULL));
    evstore_close(st);

    /* recovery: retention frees the map */
    st = open_store(dir, 512 << 10, 1);
    int ok = 0;
    for (int i = 0; i < 300 && !ok; i++) {
        char req[32];
        snprintf(req, sizeof req, "late%d", i);
        if (full_step(st, run, &w, req, "late") == 0 && w.b.stored == 1) ok = 1;
        else tev_sleep_ms(100);
    }
    ASSERT(ok);
    ASSERT_EQ(tev_metric(st, "recd_events_full"), 0);
    ASSERT(tev_metric(st, "recd_events_expired_total") > 0);
    ev_arm_report r1[2];
    ASSERT_OK(evstore_report(st, run, r1, 2, NULL)); /* the sums were kept */
    ASSERT_NEAR(r1[0].s.n, r0[0].s.n + 1, 0);
    ASSERT_NEAR(r1[0].s.c, r0[0].s.c + 1, 0);
    evstore_close(st);
}

TEST(evstore_retention_forgets_requests)
{
    evstore *st = open_store(tev_path("state"), 0, 1);
    int run = tev_declare(st, "home", "s", 2, shares2);
    impress(st, run, 0, "old", "u1", "", 0, NULL, 1000); /* long past the retention */
    tev_batch w;
    tev_batch_init(&w);
    ASSERT_OK(tev_run(st, &w));
    tev_wait_impressions(st, run, 0, 1, NULL, 0);
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) {
        w.b.n = 0;
        tev_add(&w, EV_CLICK, "old", "i", NULL, 0, T0);
        ASSERT_OK(tev_run(st, &w));
        if (w.b.status == 422) gone = 1;
        else tev_sleep_ms(100);
    }
    ASSERT(gone);
    ev_arm_report r[2];
    ASSERT_OK(evstore_report(st, run, r, 2, NULL)); /* the sums stay */
    ASSERT_NEAR(r[0].s.n, 1, 0);
    evstore_close(st);
}

TEST(evstore_export_files)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tev_path("state"));
    evstore *st = open_store(dir, 0, 0);
    int run = tev_declare(st, "home", "s", 2, shares2);
    int other = tev_declare(st, "other", "s", 1, shares2);
    api_str its[3] = {tev_str("a"), tev_str("b"), tev_str("c")};
    api_str rws[3] = {tev_str("1,x"), tev_str("2,y"), tev_str("3,z")};
    ev_impression imp;
    memset(&imp, 0, sizeof imp);
    imp.run = run;
    imp.items = its;
    imp.n_items = 3;
    imp.row_header = tev_str("f1,f2");
    imp.rows = rws;
    const char *reqs[] = {"q1", "q2", "q3"};
    const char *sess[] = {"s1", "s1", ""};
    for (int i = 0; i < 3; i++) {
        imp.request_id = tev_str(reqs[i]);
        imp.unit = tev_str("u1");
        imp.session = tev_str(sess[i]);
        imp.t = T0 + i;
        ASSERT_OK(evstore_impression(st, &imp));
    }
    imp.row_header = tev_str("g1,g2"); /* another header: skipped */
    imp.request_id = tev_str("q4");
    imp.t = T0 + 3;
    ASSERT_OK(evstore_impression(st, &imp));
    imp.run = other;
    imp.request_id = tev_str("o1");
    imp.row_header = tev_str("f1,f2");
    ASSERT_OK(evstore_impression(st, &imp));
    tev_batch w;
    tev_batch_init(&w);
    tev_add(&w, EV_CLICK, "q1", "a", NULL, 0, T0 + 10);
    tev_add(&w, EV_ACQUISITION, "q1", "b", NULL, 1, T0 + 11);
    tev_add(&w, EV_CLICK, "q2", "c", NULL, 0, T0 + 12.7);
    tev_add(&w, EV_IMPRESSION, "q2", "a", NULL, 0, T0 + 13);
    tev_add(&w, EV_CLICK, "q3", "a\tb", NULL, 0, T0 + 14);
    tev_add(&w, EV_CLICK, "q3", "bad\nid", NULL, 0, T0 + 15);
    tev_add(&w, EV_ACQUISITION, "q3", "c", NULL, 1, T0 + 16);
    tev_add(&w, EV_CLICK, "o1", "a", NULL, 0, T0 + 17);
    ASSERT_OK(tev_run(st, &w));
    ASSERT_EQ(w.b.stored, 8);

    /* while the store is open (a running server), read-only */
    FILE *fc = fopen(tev_path("clicks.tsv"), "w"), *fr = fopen(tev_path("rows.csv"), "w");
    ev_export_opts o = {"home", 0, 0, "y"};
    ev_export_stats es;
    ASSERT_OK(evstore_export(dir, fc, fr, &o, &es));
    fclose(fc);
    fclose(fr);
    ASSERT_EQ(es.clicks, 5);
    ASSERT_EQ(es.sessions, 2);
    ASSERT_EQ(es.skipped_clicks, 1);
    ASSERT_EQ(es.rows, 9);
    ASSERT_EQ(es.positives, 2);
    ASSERT_EQ(es.skipped_rows, 3);
    ASSERT_STR_EQ(tev_slurp(tev_path("clicks.tsv")), "session_id\titem_id\ttimestamp\n"
                                                     "s1\ta\t1700000010\n"
                                                     "s1\tb\t1700000011\n"
                                                     "s1\tc\t1700000012\n"
                                                     "u1\t\"a\tb\"\t1700000014\n"
                                                     "u1\tc\t1700000016\n");
    ASSERT_STR_EQ(tev_slurp(tev_path("rows.csv")), "f1,f2,y\n"
                                                   "1,x,0\n2,y,1\n3,z,0\n"
                                                   "1,x,0\n2,y,0\n3,z,0\n"
                                                   "1,x,0\n2,y,0\n3,z,1\n");
    /* the session reader of `recd train gru4rec --data F` reads the clicks as is */
    sess_opts so;
    sess_opts_default(&so);
    so.verbose = 0;
    sess_data d;
    ASSERT_OK(sess_load(&d, tev_path("clicks.tsv"), &so));
    ASSERT_EQ(d.n_events, 5);
    ASSERT_EQ(d.n_sessions, 2);
    ASSERT_EQ(d.n_items, 4); /* a, b, c, "a\tb" */
    sess_free(&d);
    /* time window and all experiments */
    fc = fopen(tev_path("c2.tsv"), "w");
    ev_export_opts o2 = {NULL, T0 + 11, T0 + 17, NULL};
    ASSERT_OK(evstore_export(dir, fc, NULL, &o2, &es));
    fclose(fc);
    ASSERT_EQ(es.clicks, 4);
    ev_export_opts o3 = {"nope", 0, 0, NULL};
    ASSERT_RC(evstore_export(dir, NULL, NULL, &o3, &es), RC_ENOTFOUND);
    evstore_close(st);

    /* the command line */
    char out[4096];
    ASSERT_EQ(test_run(out, sizeof out, "%s events export --state %s --out %s --rows %s --experiment home", test_recd_bin(),
                       dir, tev_path("c3.tsv"), tev_path("r3.csv")),
              0);
    ASSERT_CONTAINS(out, "5 clicks in 2 sessions");
    char *c1 = strdup(tev_slurp(tev_path("clicks.tsv")));
    ASSERT_STR_EQ(tev_slurp(tev_path("c3.tsv")), c1);
    free(c1);
    ASSERT_EQ(test_run(out, sizeof out, "%s events export --out %s", test_recd_bin(), tev_path("x")), 2);
    ASSERT_CONTAINS(out, "--state");
    ASSERT_EQ(test_run(out, sizeof out, "%s events export --state %s --out %s", test_recd_bin(), tev_path("none"),
                       tev_path("x")),
              1);
    ASSERT_CONTAINS(out, "none");
    ASSERT(access(tev_path("x"), F_OK) != 0 && access(tev_path("x.tmp"), F_OK) != 0);
    ASSERT_EQ(test_run(out, sizeof out, "%s events export --state %s --bogus 1", test_recd_bin(), dir), 2);
    ASSERT_EQ(test_run(out, sizeof out, "%s events --help", test_recd_bin()), 0);
    ASSERT_CONTAINS(out, "--state");
}

/* 4 threads submitting impressions and batches: every acknowledged event counted exactly once. */
typedef struct conc_arg {
    evstore *st;
    int run, id;
    long stored, dups;
} conc_arg;

static void *conc_main(void *p)
{
    conc_arg *a = p;
    tev_batch *w = malloc(sizeof *w);
    tev_batch_init(w);
    char req[40], unit[40];
    for (int k = 0; k < 300; k++) {
        snprintf(req, sizeof req, "t%d-r%d", a->id, k);
        snprintf(unit, sizeof unit, "t%d-u%d", a->id, k % 17);
        ev_impression imp = tev_impression(a->run, k & 1, req, unit, T0 + k);
        if (evstore_impression(a->st, &imp) != RC_OK) continue;
        w->b.n = 0;
        tev_add(w, EV_CLICK, req, "i1", NULL, 0, T0 + k);
        tev_add(w, EV_CLICK, req, "i1", NULL, 0, T0 + k); /* a duplicate */
        if (k % 3 == 0) tev_add(w, EV_ACQUISITION, req, "i2", NULL, 2, T0 + k);
        if (tev_run(a->st, w) == RC_OK && w->b.status == 0) {
            a->stored += w->b.stored;
            a->dups += w->b.duplicates;
        }
    }
    tev_batch_free(w);
    free(w);
    return NULL;
}

TEST(evstore_concurrent_writers)
{
    g_sync = 1;
    evstore *st = open_store(tev_path("state"), 0, 0);
    int run = tev_declare(st, "home", "s", 2, shares2);
    pthread_t th[4];
    conc_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (conc_arg){st, run, i, 0, 0};
        pthread_create(&th[i], NULL, conc_main, &args[i]);
    }
    long stored = 0, dups = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        stored += args[i].stored;
        dups += args[i].dups;
    }
    ASSERT_EQ(stored, 4 * (300 + 100));
    ASSERT_EQ(dups, 4 * 300);
    evstore_close(st);
    st = open_store(tev_path("state"), 0, 0);
    ev_arm_report r[2];
    ASSERT_OK(evstore_report(st, run, r, 2, NULL));
    ASSERT_NEAR(r[0].s.c + r[1].s.c + r[0].s.a + r[1].s.a, (double)stored, 0);
    ASSERT_NEAR(r[0].s.n + r[1].s.n, 4 * 300, 0);
    ASSERT_NEAR(r[0].s.units + r[1].s.units, 4 * 17 * 2, 0);
    evstore_close(st);
}

/* evstore_close commits and answers every pending batch. */
TEST(evstore_close_answers_pending)
{
    g_sync = 1;
    evstore *st = open_store(tev_path("state"), 0, 0);
    int run = tev_declare(st, "home", "s", 2, shares2);
    impress(st, run, 0, "r1", "u1", "", 0, NULL, T0);
    static tev_batch w[20];
    for (int i = 0; i < 20; i++) {
        tev_batch_init(&w[i]);
        char id[16];
        snprintf(id, sizeof id, "e%d", i);
        w[i].ev[0].type = EV_CLICK;
        w[i].ev[0].request_id = tev_str("r1");
        w[i].ev[0].item_id = tev_str("i");
        w[i].ev[0].event_id.p = strdup(id);
        w[i].ev[0].event_id.n = strlen(id);
        w[i].ev[0].t = T0;
        w[i].b.n = 1;
        ASSERT_OK(evstore_submit(st, &w[i].b));
    }
    evstore_close(st);
    for (int i = 0; i < 20; i++) {
        ASSERT_EQ(w[i].done, 1);
        ASSERT_EQ(w[i].b.status, 0);
        ASSERT_EQ(w[i].b.stored, 1);
    }
    st = open_store(tev_path("state"), 0, 0);
    ev_arm_report r[2];
    ASSERT_OK(evstore_report(st, run, r, 2, NULL));
    ASSERT_NEAR(r[0].s.c, 20, 0);
    evstore_close(st);
}

TEST(evstore_lat_quantile)
{
    uint64_t h[EV_LAT_BUCKETS] = {0};
    ASSERT(isnan(ev_lat_quantile(h, 0.5)));
    h[3] = 98;
    h[10] = 2;
    ASSERT_NEAR(ev_lat_quantile(h, 0.5), ev_lat_bound(3), 1e-9);
    ASSERT_NEAR(ev_lat_quantile(h, 0.99), ev_lat_bound(10), 1e-9);
    ASSERT_NEAR(ev_lat_bound(0), 10, 1e-12);
    ASSERT_NEAR(ev_lat_bound(1), 14, 1e-9);
    ASSERT(isinf(ev_lat_bound(EV_LAT_BUCKETS - 1)));
}
