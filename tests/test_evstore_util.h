/* tests/test_evstore_util.h - helpers for the event store's tests (tests/test_evstore*.c): open a store
 * and declare a run in the test's temporary folder, build impressions, submit a batch of events and wait
 * for its answer, read a metric, poll until impressions are committed. Real LMDB; every wait is a bounded
 * poll (never a timing assertion). Every helper fails the test (FAIL) on an unexpected error. */
#ifndef RECD_TEST_EVSTORE_UTIL_H
#define RECD_TEST_EVSTORE_UTIL_H

#include <pthread.h>
#include <stdint.h>

#include "server/evstore.h"

/* test_tmpdir()/name, in one of 4 static buffers used in turn (valid until the 4th next call). */
const char *tev_path(const char *name);
/* The api_str of a NUL-terminated string (borrowed); {NULL, 0} for NULL. */
api_str tev_str(const char *s);
/* Sleep ms milliseconds / us microseconds. */
void tev_sleep_ms(int ms);
void tev_sleep_us(long us);
/* The first 64 KB of a file, NUL-terminated, in a static buffer (valid until the next call). */
char *tev_slurp(const char *path);

/* The tests' settings: evstore_cfg_default() in dir (borrowed until evstore_open copies it), sync off
 * (no fdatasync, no syncer thread), max_bytes when not 0 (else the default), retention_s (0: kept). */
evstore_cfg tev_cfg(const char *dir, uint64_t max_bytes, double retention_s);
/* evstore_open(c): the store (evstore_close); fails the test with the store's message otherwise. */
evstore *tev_open(const evstore_cfg *c);
/* Declare the run (name, salt) with n_arms arms named "a", "b", "c", "d" (n_arms 1..4) and shares
 * (n_arms; NULL: 1/n_arms each); returns the run. */
int tev_declare(evstore *st, const char *name, const char *salt, int n_arms, const double *shares);

/* An impression with only these fields set (the rest zero: no items, rows, session, model or latency);
 * its strings are borrowed. The caller sets what else it needs, then evstore_impression. */
ev_impression tev_impression(int run, int arm, const char *req, const char *unit, double t);

#define TEV_BATCH_EVENTS 64
#define TEV_BATCH_UNKNOWN 16
/* A batch of events one waits for: b (its results), its events ev[0..b.n) and the first unknown
 * indices; done counts the calls of b.done. Not movable once initialized (b points into it). */
typedef struct tev_batch {
    ev_batch b;
    ev_event ev[TEV_BATCH_EVENTS];
    int unknown[TEV_BATCH_UNKNOWN];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} tev_batch;

/* An empty batch (b.n 0, unknown_cap TEV_BATCH_UNKNOWN); tev_batch_free releases its lock. */
void tev_batch_init(tev_batch *w);
void tev_batch_free(tev_batch *w);
/* Append an event (strings borrowed until the batch is answered; event_id NULL: none). */
void tev_add(tev_batch *w, ev_type type, const char *req, const char *item, const char *event_id, double value,
             double t);
/* evstore_submit the batch and wait (30 s bound, then FAIL) until it is answered: RC_OK with the results
 * in w->b, or evstore_submit's code (RC_EFULL, RC_EINVAL...) without waiting. */
int tev_run(evstore *st, tev_batch *w);

/* The value of the series (name and labels exactly, e.g. "recd_events_full" or
 * "recd_events_refused_total{reason=\"full\"}") in the store's metrics; -1 when absent. */
double tev_metric(evstore *st, const char *series);
/* Poll evstore_report (every 10 ms, 10 s bound, then FAIL) until the run's arm has at least n
 * impressions. The last report read into r[0..n_r) when r is not NULL. */
void tev_wait_impressions(evstore *st, int run, int arm, double n, ev_arm_report *r, int n_r);

#endif
