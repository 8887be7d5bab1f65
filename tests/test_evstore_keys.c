/* tests/test_evstore_keys.c - the event store's dedup key and its refusal metrics: an event_id
 * deduplicates within its request only ((request_id, event_id): the same event_id on another request is
 * another event), a batch with an unknown request_id counts its events in
 * recd_events_refused_total{reason="unknown_request_id"}, and the state gauges read the bytes in use now
 * (recd_events_state_bytes goes down when retention deletes; recd_events_state_fill_ratio is there).
 * Real LMDB in the test's temporary folder; no timing assertion (bounded polls). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/evstore.h"
#include "tests/test_evstore_util.h"
#include "tests/testlib.h"

/* One batch of n events (type, request_id, item_id, event_id) submitted and waited for. */
static void kb_run(evstore *st, tev_batch *w, int n, const char *const (*ev)[4])
{
    tev_batch_init(w);
    for (int i = 0; i < n; i++)
        tev_add(w, strcmp(ev[i][0], "click") == 0 ? EV_CLICK : EV_ACQUISITION, ev[i][1], ev[i][2], ev[i][3], 1,
                (double)time(NULL));
    ASSERT_OK(tev_run(st, w));
    tev_batch_free(w);
}

static void kimpress(evstore *st, int run, int arm, const char *req, const char *unit, double t)
{
    api_str items[2] = {tev_str("i1"), tev_str("i2")};
    ev_impression imp = tev_impression(run, arm, req, unit, t);
    imp.items = items;
    imp.n_items = 2;
    imp.latency_us = 100;
    ASSERT_OK(evstore_impression(st, &imp));
}

/* A store in dir (flush_ms 1) with the run "home" of two equal arms declared in *run. */
static evstore *kopen(const char *dir, uint64_t max_bytes, double retention_s, int *run)
{
    evstore_cfg c = tev_cfg(dir, max_bytes, retention_s);
    c.flush_ms = 1;
    evstore *st = tev_open(&c);
    *run = tev_declare(st, "home", "s", 2, NULL);
    return st;
}

TEST(evstore_event_id_per_request)
{
    int run;
    evstore *st = kopen(test_tmpdir(), 0, 0, &run);
    kimpress(st, run, 0, "rA", "alice", 1700000000.0);
    kimpress(st, run, 1, "rB", "bob", 1700000000.0);
    tev_batch w;
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
    ASSERT_NEAR(tev_metric(st, "recd_events_duplicates_total"), 2, 0);
    evstore_close(st);
}

TEST(evstore_unknown_request_counted)
{
    int run;
    evstore *st = kopen(test_tmpdir(), 0, 0, &run);
    kimpress(st, run, 0, "known", "u1", 1700000000.0);
    ASSERT_NEAR(tev_metric(st, "recd_events_refused_total{reason=\"unknown_request_id\"}"), 0, 0);
    tev_batch w;
    static const char *const ev[3][4] = {
        {"click", "known", "i1", ""}, {"click", "nope-1", "i1", ""}, {"click", "known", "i2", ""}};
    kb_run(st, &w, 3, ev);
    ASSERT_EQ(w.b.status, 422);
    ASSERT_EQ(w.b.n_unknown, 1);
    /* the whole batch is refused: its 3 events count */
    ASSERT_NEAR(tev_metric(st, "recd_events_refused_total{reason=\"unknown_request_id\"}"), 3, 0);
    kb_run(st, &w, 1, ev);
    ASSERT_EQ(w.b.status, 0);
    ASSERT_NEAR(tev_metric(st, "recd_events_refused_total{reason=\"unknown_request_id\"}"), 3, 0);
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
        if (i % 500 == 499) tev_sleep_ms(20); /* the ring drains */
    }
    double peak = 0, file = 0, fill = -1;
    for (int i = 0; i < 200; i++) {
        ev_arm_report r[2];
        ASSERT_OK(evstore_report(st, run, r, 2, NULL));
        double b = tev_metric(st, "recd_events_state_bytes");
        if (b > peak) peak = b;
        if (r[0].s.n + r[1].s.n >= 3000) break;
        tev_sleep_ms(10);
    }
    double low = peak;
    for (int i = 0; i < 300 && low > peak * 0.6; i++) { /* retention deletes every record within seconds */
        tev_sleep_ms(50);
        low = tev_metric(st, "recd_events_state_bytes");
    }
    file = tev_metric(st, "recd_events_state_file_bytes");
    fill = tev_metric(st, "recd_events_state_fill_ratio");
    ASSERT(peak > 0);
    ASSERT(low <= peak * 0.6);
    ASSERT(file >= peak);
    ASSERT(fill >= 0 && fill < 0.9);
    ASSERT(tev_metric(st, "recd_events_expired_total") >= 3000);
    evstore_close(st);
}
