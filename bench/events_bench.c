/* bench/events_bench.c - acknowledged events/s and ack latency of the event store (server/evstore.c),
 * in process: T threads (default 16) each submit a batch of one click and wait for its done(), in a
 * loop; one more thread writes impressions (about 5,000/s, 10 items each). Group commit: one commit
 * answers every batch queued while the previous one was written. Run once with sync on (fdatasync per
 * commit) and once with it off.
 *
 *   make O=/tmp/b all && cc -O2 -std=c11 -D_GNU_SOURCE -I. bench/events_bench.c /tmp/b/obj/librecd.a \
 *      $(pkg-config --libs lmdb jansson) -lm -pthread -o /tmp/events_bench && \
 *   /tmp/events_bench [seconds=5] [threads=16] [dir=/tmp/events-bench]
 *
 * The folder is removed and recreated for each run (put it on the disk to measure, not on tmpfs).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "server/evstore.h"

#define POOL 1000 /* request ids the events refer to */

typedef struct worker {
    evstore *st;
    int id;
    double until;
    uint64_t *lat_ns; /* (cap) */
    size_t n, cap;
    long refused;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} worker;

static char reqs[POOL][16];
static _Atomic int stop_imps;

static void on_done(ev_batch *b)
{
    worker *w = b->arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void *worker_main(void *p)
{
    worker *w = p;
    char eid[32];
    ev_event e;
    memset(&e, 0, sizeof e);
    e.type = EV_CLICK;
    e.item_id = (api_str){"i1", 2};
    ev_batch b;
    memset(&b, 0, sizeof b);
    b.ev = &e;
    b.n = 1;
    b.done = on_done;
    b.arg = w;
    for (uint64_t k = 0; clock_mono_s() < w->until; k++) {
        const char *r = reqs[(k * 16 + (uint64_t)w->id) % POOL];
        e.request_id = (api_str){r, strlen(r)};
        int n = snprintf(eid, sizeof eid, "w%d-%llu", w->id, (unsigned long long)k);
        e.event_id = (api_str){eid, (size_t)n};
        e.t = clock_wall_s();
        uint64_t t0 = clock_mono_ns();
        w->done = 0;
        if (evstore_submit(w->st, &b) != RC_OK) {
            w->refused++;
            continue;
        }
        pthread_mutex_lock(&w->mu);
        while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
        if (b.status != 0) {
            w->refused++;
            continue;
        }
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 4096;
            w->lat_ns = realloc(w->lat_ns, w->cap * sizeof *w->lat_ns);
        }
        w->lat_ns[w->n++] = clock_mono_ns() - t0;
    }
    return NULL;
}

static void *imp_main(void *p)
{
    evstore *st = p;
    api_str items[10];
    char ib[10][8];
    for (int i = 0; i < 10; i++) items[i] = (api_str){ib[i], (size_t)snprintf(ib[i], 8, "i%d", i)};
    char req[32], unit[32];
    for (uint64_t k = 0; !atomic_load(&stop_imps); k++) {
        ev_impression imp;
        memset(&imp, 0, sizeof imp);
        imp.request_id = (api_str){req, (size_t)snprintf(req, sizeof req, "imp-%llu", (unsigned long long)k)};
        imp.unit = (api_str){unit, (size_t)snprintf(unit, sizeof unit, "u%llu", (unsigned long long)(k % 5000))};
        imp.items = items;
        imp.n_items = 10;
        imp.t = clock_wall_s();
        imp.latency_us = 800;
        evstore_impression(st, &imp);
        if (k % 5 == 4) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int run(const char *dir, int sync, double secs, int nthreads)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;
    evstore_cfg c = evstore_cfg_default();
    c.dir = dir;
    c.sync = sync;
    evstore *st;
    if (evstore_open(&st, &c) != RC_OK) {
        fprintf(stderr, "%s\n", rc_errmsg());
        return 1;
    }
    static const char *const arms[] = {"a", "b"};
    static const double shares[] = {0.5, 0.5};
    ev_run_decl d = {"bench", "s", 2, arms, shares};
    int r;
    if (evstore_declare(st, &d, &r) != RC_OK) return 1;
    for (int i = 0; i < POOL; i++) {
        snprintf(reqs[i], sizeof reqs[i], "pool-%d", i);
        char unit[16];
        ev_impression imp;
        memset(&imp, 0, sizeof imp);
        imp.request_id = (api_str){reqs[i], strlen(reqs[i])};
        imp.unit = (api_str){unit, (size_t)snprintf(unit, sizeof unit, "pu%d", i)};
        imp.run = r;
        imp.arm = i & 1;
        imp.t = clock_wall_s();
        evstore_impression(st, &imp);
    }
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL); /* the pool committed */
    worker *w = calloc((size_t)nthreads, sizeof *w);
    pthread_t *th = calloc((size_t)nthreads, sizeof *th), ith;
    double t0 = clock_mono_s();
    atomic_store(&stop_imps, 0);
    pthread_create(&ith, NULL, imp_main, st);
    for (int i = 0; i < nthreads; i++) {
        w[i].st = st;
        w[i].id = i;
        w[i].until = t0 + secs;
        pthread_mutex_init(&w[i].mu, NULL);
        pthread_cond_init(&w[i].cv, NULL);
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    size_t total = 0;
    long refused = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        total += w[i].n;
        refused += w[i].refused;
    }
    double el = clock_mono_s() - t0;
    atomic_store(&stop_imps, 1);
    pthread_join(ith, NULL);
    uint64_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < nthreads; i++) {
        memcpy(all + k, w[i].lat_ns, w[i].n * sizeof *all);
        k += w[i].n;
        free(w[i].lat_ns);
    }
    qsort(all, total, sizeof *all, cmp_u64);
    ev_arm_report rep[2];
    evstore_report(st, r, rep, 2, NULL);
    printf("sync=%s threads=%d: %.0f acknowledged events/s (%zu in %.1f s, %ld refused), ack p50 %.2f ms, p99 %.2f ms; "
           "impressions committed %.0f\n",
           sync ? "on " : "off", nthreads, (double)total / el, total, el, refused,
           total ? (double)all[total / 2] * 1e-6 : 0.0, total ? (double)all[(size_t)((double)total * 0.99)] * 1e-6 : 0.0,
           rep[0].s.n + rep[1].s.n - POOL);
    evstore_close(st);
    free(all);
    free(w);
    free(th);
    return 0;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 5;
    int nthreads = argc > 2 ? atoi(argv[2]) : 16;
    const char *dir = argc > 3 ? argv[3] : "/tmp/events-bench";
    if (nthreads < 1 || nthreads > 1024 || !(secs > 0)) {
        fprintf(stderr, "usage: events_bench [seconds] [threads] [dir]\n");
        return 2;
    }
    if (run(dir, 1, secs, nthreads) || run(dir, 0, secs, nthreads)) return 1;
    return 0;
}
