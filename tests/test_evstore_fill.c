/* tests/test_evstore_fill.c - the reviewer's full-store scenario (/tmp/hG/full3.c): a small state folder
 * (4 MiB) filled as fast as impressions come (flush_ms 1, commits back to back, so commits can pass the
 * 90% high-water mark between two measures and a map can end up really full), then no traffic: retention
 * (2 s) must still free it - in its own transaction, in slices that shrink when even a delete finds no
 * room - and the store takes impressions and events again within seconds, without a restart. Real LMDB in
 * the test's temporary folder; no timing assertion (bounded polls). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/sbuf.h"
#include "server/evstore.h"
#include "tests/testlib.h"

static void fsleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

typedef struct fbatch {
    ev_batch b;
    ev_event ev;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} fbatch;

static void fb_done(ev_batch *b)
{
    fbatch *w = b->arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* A click on request rid; its status (0 stored, 422, 503), or -1 when refused at once (RC_EFULL). */
static int fclick(evstore *st, const char *rid)
{
    fbatch w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.ev.type = EV_CLICK;
    w.ev.request_id = (api_str){rid, strlen(rid)};
    w.ev.item_id = (api_str){"i1", 2};
    w.ev.t = clock_wall_s();
    w.b.ev = &w.ev;
    w.b.n = 1;
    w.b.done = fb_done;
    w.b.arg = &w;
    int rc = evstore_submit(st, &w.b);
    int status = -1;
    if (rc == RC_OK) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 30;
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            if (pthread_cond_timedwait(&w.cv, &w.mu, &dl) != 0) break;
        int d = w.done;
        pthread_mutex_unlock(&w.mu);
        if (!d) FAIL("batch not answered within 30 s");
        status = w.b.status;
    } else if (rc != RC_EFULL) {
        FAIL("evstore_submit: %s", rc_errmsg());
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return status;
}

static int fimpress(evstore *st, int run, const char *rid, const char *unit, int arm)
{
    api_str items[3] = {{"i1", 2}, {"i2", 2}, {"i3", 2}};
    ev_impression imp;
    memset(&imp, 0, sizeof imp);
    imp.request_id = (api_str){rid, strlen(rid)};
    imp.unit = (api_str){unit, strlen(unit)};
    imp.run = run;
    imp.arm = arm;
    imp.items = items;
    imp.n_items = 3;
    imp.t = clock_wall_s();
    return evstore_impression(st, &imp);
}

static double fmetric(evstore *st, const char *series)
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

TEST_TIMEOUT(evstore_fast_fill_recovers_by_retention, 180)
{
    evstore_cfg c = evstore_cfg_default();
    c.dir = test_tmpdir();
    c.max_bytes = 4u << 20;
    c.retention_s = 2;
    c.sync = 0;
    c.flush_ms = 1;
    evstore *st = NULL;
    ASSERT_OK(evstore_open(&st, &c));
    static const char *const names[2] = {"a", "b"};
    static const double shares[2] = {0.5, 0.5};
    ev_run_decl d = {"e", "s", 2, names, shares};
    int run;
    ASSERT_OK(evstore_declare(st, &d, &run));
    char rid[64], unit[32];
    int refused = 0;
    for (int i = 0; i < 60000; i++) {
        snprintf(rid, sizeof rid, "p0-r%d", i);
        snprintf(unit, sizeof unit, "u%d", i % 10);
        int rc = fimpress(st, run, rid, unit, i & 1);
        ASSERT(rc == RC_OK || rc == RC_EFULL);
        refused += rc != RC_OK;
        fsleep_us(5);
    }
    /* no traffic now: retention alone makes room, then writes are taken again */
    int ok = 0;
    for (int i = 0; i < 150 && !ok; i++) {
        fsleep_us(200000);
        snprintf(rid, sizeof rid, "late-%d", i);
        if (fimpress(st, run, rid, "late", 0) != RC_OK) continue;
        for (int k = 0; k < 50 && !ok; k++) { /* the impression's commit: flush_ms */
            int s = fclick(st, rid);
            if (s == 0) ok = 1;
            else if (s == 422) fsleep_us(10000); /* not committed yet (or dropped: the next round) */
            else break;
        }
    }
    ASSERT(ok);
    ASSERT(fmetric(st, "recd_events_expired_total") > 0);
    ASSERT(fmetric(st, "recd_events_full") == 0);
    double fill = fmetric(st, "recd_events_state_fill_ratio");
    ASSERT(fill >= 0 && fill <= 0.9);
    printf("# fast fill: %d of 60000 impressions refused while full; expired %.0f, commit failures %.0f\n", refused,
           fmetric(st, "recd_events_expired_total"), fmetric(st, "recd_events_commit_failures_total"));
    evstore_close(st);
}
