/* tests/test_evstore_fill.c - the reviewer's full-store scenario (/tmp/hG/full3.c): a small state folder
 * (4 MiB) filled as fast as impressions come (flush_ms 1, commits back to back, so commits can pass the
 * 90% high-water mark between two measures and a map can end up really full), then no traffic: retention
 * (2 s) must still free it - in its own transaction, in slices that shrink when even a delete finds no
 * room - and the store takes impressions and events again within seconds, without a restart. Real LMDB in
 * the test's temporary folder; no timing assertion (bounded polls). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "server/evstore.h"
#include "tests/test_evstore_util.h"
#include "tests/testlib.h"

/* A click on request rid; its status (0 stored, 422, 503), or -1 when refused at once (RC_EFULL). */
static int fclick(evstore *st, const char *rid)
{
    tev_batch w;
    tev_batch_init(&w);
    tev_add(&w, EV_CLICK, rid, "i1", NULL, 0, clock_wall_s());
    int rc = tev_run(st, &w);
    tev_batch_free(&w);
    if (rc == RC_OK) return w.b.status;
    if (rc != RC_EFULL) FAIL("evstore_submit: %s", rc_errmsg());
    return -1;
}

static int fimpress(evstore *st, int run, const char *rid, const char *unit, int arm)
{
    api_str items[3] = {{"i1", 2}, {"i2", 2}, {"i3", 2}};
    ev_impression imp = tev_impression(run, arm, rid, unit, clock_wall_s());
    imp.items = items;
    imp.n_items = 3;
    return evstore_impression(st, &imp);
}

TEST_TIMEOUT(evstore_fast_fill_recovers_by_retention, 180)
{
    evstore_cfg c = tev_cfg(test_tmpdir(), 4u << 20, 2);
    c.flush_ms = 1;
    evstore *st = tev_open(&c);
    int run = tev_declare(st, "e", "s", 2, NULL);
    char rid[64], unit[32];
    int refused = 0;
    for (int i = 0; i < 60000; i++) {
        snprintf(rid, sizeof rid, "p0-r%d", i);
        snprintf(unit, sizeof unit, "u%d", i % 10);
        int rc = fimpress(st, run, rid, unit, i & 1);
        ASSERT(rc == RC_OK || rc == RC_EFULL);
        refused += rc != RC_OK;
        tev_sleep_us(5);
    }
    /* no traffic now: retention alone makes room, then writes are taken again */
    int ok = 0;
    for (int i = 0; i < 150 && !ok; i++) {
        tev_sleep_us(200000);
        snprintf(rid, sizeof rid, "late-%d", i);
        if (fimpress(st, run, rid, "late", 0) != RC_OK) continue;
        for (int k = 0; k < 50 && !ok; k++) { /* the impression's commit: flush_ms */
            int s = fclick(st, rid);
            if (s == 0) ok = 1;
            else if (s == 422) tev_sleep_us(10000); /* not committed yet (or dropped: the next round) */
            else break;
        }
    }
    ASSERT(ok);
    ASSERT(tev_metric(st, "recd_events_expired_total") > 0);
    ASSERT(tev_metric(st, "recd_events_full") == 0);
    double fill = tev_metric(st, "recd_events_state_fill_ratio");
    ASSERT(fill >= 0 && fill <= 0.9);
    printf("# fast fill: %d of 60000 impressions refused while full; expired %.0f, commit failures %.0f\n", refused,
           tev_metric(st, "recd_events_expired_total"), tev_metric(st, "recd_events_commit_failures_total"));
    evstore_close(st);
}
