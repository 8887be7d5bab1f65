/* tests/test_evstore_keys.c - the event store's dedup key and its refusal metrics: an event_id
 * deduplicates within its request only ((request_id, event_id): the same event_id on another request is
 * another event), a batch with an unknown request_id counts its events in
 * recd_events_refused_total{reason="unknown_request_id"}, and the state gauges read the bytes in use now
 * (recd_events_state_bytes goes down when retention deletes; recd_events_state_fill_ratio is there).
 * Real LMDB in the test's temporary folder; no timing assertion (bounded polls). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/sbuf.h"
#include "server/evstore.h"
#include "tests/testlib.h"

static api_str K(const char *s)
{
    return (api_str){s, strlen(s)};
}

static void ksleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct kbatch {
    ev_batch b;
    ev_event ev[8];
    int unknown[8];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} kbatch;

static void kb_done(ev_batch *b)
{
    kbatch *w = b->arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* One batch of n events (type, request_id, item_id, event_id) submitted and waited for (30 s bound). */
static void kb_run(evstore *st, kbatch *w, int n, const char *const (*ev)[4])
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    for (int i = 0; i < n; i++) {
        ev_event *e = &w->ev[i];
        e->type = strcmp(ev[i][0], "click") == 0 ? EV_CLICK : EV_ACQUISITION;
        e->request_id = K(ev[i][1]);
        e->item_id = K(ev[i][2]);
        e->event_id = K(ev[i][3]);
        e->value = 1;
        e->t = (double)time(NULL);
    }
    w->b.ev = w->ev;
    w->b.n = n;
    w->b.done = kb_done;
    w->b.arg = w;
    w->b.unknown = w->unknown;
    w->b.unknown_cap = 8;
    ASSERT_OK(evstore_submit(st, &w->b));
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) != 0) break;
    int d = w->done;
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    if (!d) FAIL("batch not answered within 30 s");
}

static void kimpress(evstore *st, int run, int arm, const char *req, const char *unit, double t)
{
    api_str items[2] = {K("i1"), K("i2")};
    ev_impression imp;
    memset(&imp, 0, sizeof imp);
    imp.request_id = K(req);
    imp.run = run;
    imp.arm = arm;
    imp.unit = K(unit);
    imp.items = items;
    imp.n_items = 2;
    imp.t = t;
    imp.latency_us = 100;
    ASSERT_OK(evstore_impression(st, &imp));
}

static evstore *kopen(const char *dir, uint64_t max_bytes, double retention_s, int *run)
{
    evstore_cfg c = evstore_cfg_default();
    c.dir = dir;
    c.sync = 0;
    c.flush_ms = 1;
    if (max_bytes) c.max_bytes = max_bytes;
    c.retention_s = retention_s;
    evstore *st = NULL;
    if (evstore_open(&st, &c) != RC_OK) FAIL("evstore_open(%s): %s", dir, rc_errmsg());
    static const char *const names[2] = {"a", "b"};
    static const double shares[2] = {0.5, 0.5};
    ev_run_decl d = {"home", "s", 2, names, shares};
    ASSERT_OK(evstore_declare(st, &d, run));
    return st;
}

/* The value of the series (name and labels, then a space) in the store's metrics; -1 when absent. */
static double kmetric(evstore *st, const char *series)
{
    sbuf m;
    sbuf_init(&m);
    evstore_render_metrics(&m, st);
    double v = -1;
    size_t l = strlen(series);
    for (const char *p = m.data; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, l) == 0 && p[l] == ' ') {
            v = strtod(p + l + 1, NULL);
            break;
        }
    sbuf_release(&m);
    return v;
}

TEST(evstore_event_id_per_request)
{
    int run;
    evstore *st = kopen(test_tmpdir(), 0, 0, &run);
    kimpress(st, run, 0, "rA", "alice", 1700000000.0);
    kimpress(st, run, 1, "rB", "bob", 1700000000.0);
    kbatch w;
    /* the same event_id on two requests: two events, each credited to its own unit and arm */
    static const char *const two[2][4] = {{"acquisition", "rA", "i1", "order-1"}, {"acquisition", "rB", "i1", "order-1"}};
    kb_run(st, &w, 2, two);
    ASSERT_EQ(w.b.status, 0);
    ASSERT_EQ(w.b.stored, 2);
    ASSERT_EQ(w.b.duplicates, 0);
    /* the same event_id on one request: once (a retry, also with another item) */
    static const char *const again[2][4] = {{"acquisition", "rA", "i2", "order-1"}, {"click", "rB", "i2", "c-9"}};
    kb_run(st, &w, 2, again);
    ASSERT_EQ(w.b.status, 0);
    ASSERT_EQ(w.b.stored, 1);
    ASSERT_EQ(w.b.duplicates, 1);
    static const char *const dup_in_batch[2][4] = {{"click", "rA", "i1", "c-1"}, {"click", "rA", "i2", "c-1"}};
    kb_run(st, &w, 2, dup_in_batch);
    ASSERT_EQ(w.b.stored, 1);
    ASSERT_EQ(w.b.duplicates, 1);
    ev_arm_report r[2];
    ASSERT_OK(evstore_report(st, run, r, 2, NULL));
    ASSERT_NEAR(r[0].s.a, 1, 0); /* alice's acquisition once */
    ASSERT_NEAR(r[1].s.a, 1, 0); /* bob's, not a duplicate of alice's */
    ASSERT_NEAR(r[0].s.c, 1, 0);
    ASSERT_NEAR(r[1].s.c, 1, 0);
    ASSERT_NEAR(kmetric(st, "recd_events_duplicates_total"), 2, 0);
    evstore_close(st);
}

TEST(evstore_unknown_request_counted)
{
    int run;
    evstore *st = kopen(test_tmpdir(), 0, 0, &run);
    kimpress(st, run, 0, "known", "u1", 1700000000.0);
    ASSERT_NEAR(kmetric(st, "recd_events_refused_total{reason=\"unknown_request_id\"}"), 0, 0);
    kbatch w;
    static const char *const ev[3][4] = {
        {"click", "known", "i1", ""}, {"click", "nope-1", "i1", ""}, {"click", "known", "i2", ""}};
    kb_run(st, &w, 3, ev);
    ASSERT_EQ(w.b.status, 422);
    ASSERT_EQ(w.b.n_unknown, 1);
    /* the whole batch is refused: its 3 events count */
    ASSERT_NEAR(kmetric(st, "recd_events_refused_total{reason=\"unknown_request_id\"}"), 3, 0);
    kb_run(st, &w, 1, ev);
    ASSERT_EQ(w.b.status, 0);
    ASSERT_NEAR(kmetric(st, "recd_events_refused_total{reason=\"unknown_request_id\"}"), 3, 0);
    evstore_close(st);
}

/* recd_events_state_bytes is the bytes in use now: it goes down when retention deletes the log (the
 * file's high-water mark does not); the fill ratio is a share of max_bytes. */
TEST_TIMEOUT(evstore_state_bytes_in_use, 120)
{
    int run;
    evstore *st = kopen(test_tmpdir(), 8 << 20, 1, &run);
    char req[32];
    double old = (double)time(NULL) - 0.5; /* past the 1 s retention half a second from now */
    for (int i = 0; i < 3000; i++) {
        snprintf(req, sizeof req, "r%d", i);
        kimpress(st, run, i & 1, req, "u", old);
        if (i % 500 == 499) ksleep(20); /* the ring drains */
    }
    double peak = 0, file = 0, fill = -1;
    for (int i = 0; i < 200; i++) {
        ev_arm_report r[2];
        ASSERT_OK(evstore_report(st, run, r, 2, NULL));
        double b = kmetric(st, "recd_events_state_bytes");
        if (b > peak) peak = b;
        if (r[0].s.n + r[1].s.n >= 3000) break;
        ksleep(10);
    }
    double low = peak;
    for (int i = 0; i < 300 && low > peak * 0.6; i++) { /* retention deletes every record within seconds */
        ksleep(50);
        low = kmetric(st, "recd_events_state_bytes");
    }
    file = kmetric(st, "recd_events_state_file_bytes");
    fill = kmetric(st, "recd_events_state_fill_ratio");
    ASSERT(peak > 0);
    ASSERT(low <= peak * 0.6);
    ASSERT(file >= peak);
    ASSERT(fill >= 0 && fill < 0.9);
    ASSERT(kmetric(st, "recd_events_expired_total") >= 3000);
    evstore_close(st);
}
