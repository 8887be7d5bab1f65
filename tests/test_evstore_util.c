/* tests/test_evstore_util.c - helpers for the event store's tests (see test_evstore_util.h). */
#include "tests/test_evstore_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/sbuf.h"
#include "tests/testlib.h"

const char *tev_path(const char *name)
{
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 1024, "%s/%s", test_tmpdir(), name);
    return p;
}

api_str tev_str(const char *s)
{
    api_str a = {s, s ? strlen(s) : 0};
    return a;
}

void tev_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

void tev_sleep_ms(int ms)
{
    tev_sleep_us(ms * 1000L);
}

char *tev_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) FAIL("cannot open %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

evstore_cfg tev_cfg(const char *dir, uint64_t max_bytes, double retention_s)
{
    evstore_cfg c = evstore_cfg_default();
    c.dir = dir;
    c.sync = 0;
    if (max_bytes) c.max_bytes = max_bytes;
    c.retention_s = retention_s;
    return c;
}

evstore *tev_open(const evstore_cfg *c)
{
    evstore *st = NULL;
    if (evstore_open(&st, c) != RC_OK) FAIL("evstore_open(%s): %s", c->dir, rc_errmsg());
    return st;
}

int tev_declare(evstore *st, const char *name, const char *salt, int n_arms, const double *shares)
{
    static const char *const names[] = {"a", "b", "c", "d"};
    double equal[4];
    ASSERT(n_arms >= 1 && n_arms <= 4);
    if (!shares) {
        for (int i = 0; i < n_arms; i++) equal[i] = 1.0 / n_arms;
        shares = equal;
    }
    ev_run_decl d = {name, salt, n_arms, names, shares};
    int run = -1;
    ASSERT_OK(evstore_declare(st, &d, &run));
    return run;
}

ev_impression tev_impression(int run, int arm, const char *req, const char *unit, double t)
{
    ev_impression imp;
    memset(&imp, 0, sizeof imp);
    imp.request_id = tev_str(req);
    imp.run = run;
    imp.arm = arm;
    imp.unit = tev_str(unit);
    imp.t = t;
    return imp;
}

static void tev_done(ev_batch *b)
{
    tev_batch *w = b->arg;
    pthread_mutex_lock(&w->mu);
    w->done++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void tev_batch_init(tev_batch *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->b.ev = w->ev;
    w->b.done = tev_done;
    w->b.arg = w;
    w->b.unknown = w->unknown;
    w->b.unknown_cap = TEV_BATCH_UNKNOWN;
}

void tev_batch_free(tev_batch *w)
{
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

void tev_add(tev_batch *w, ev_type type, const char *req, const char *item, const char *event_id, double value,
             double t)
{
    ASSERT(w->b.n < TEV_BATCH_EVENTS);
    ev_event *e = &w->ev[w->b.n++];
    e->type = type;
    e->request_id = tev_str(req);
    e->item_id = tev_str(item);
    e->event_id = tev_str(event_id ? event_id : "");
    e->value = value;
    e->t = t;
}

int tev_run(evstore *st, tev_batch *w)
{
    w->done = 0;
    int rc = evstore_submit(st, &w->b);
    if (rc != RC_OK) return rc;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) != 0) break;
    int d = w->done;
    pthread_mutex_unlock(&w->mu);
    if (!d) FAIL("batch not answered within 30 s");
    return RC_OK;
}

double tev_metric(evstore *st, const char *series)
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

void tev_wait_impressions(evstore *st, int run, int arm, double n, ev_arm_report *r, int n_r)
{
    ev_arm_report buf[EVSTORE_MAX_ARMS];
    ASSERT(arm >= 0 && arm < EVSTORE_MAX_ARMS && n_r <= EVSTORE_MAX_ARMS);
    for (int i = 0; i < 1000; i++) {
        ASSERT_OK(evstore_report(st, run, buf, EVSTORE_MAX_ARMS, NULL));
        if (buf[arm].s.n >= n) {
            if (r) memcpy(r, buf, (size_t)n_r * sizeof *r);
            return;
        }
        tev_sleep_ms(10);
    }
    FAIL("impressions not committed within 10 s: %g of %g", buf[arm].s.n, n);
}
