/* server/metrics.h - Prometheus text exposition of the server's counters (GET /metrics).
 *
 * Request metrics are built in: for each route label (the route pattern, e.g. "/v1/next", plus
 * "unmatched"), requests by status code and a latency histogram. Other modules (registry, session
 * store, /v1/next batching) add their own series through collectors called at render time.
 * Updates are relaxed atomic adds: any thread, no lock, no allocation. One metrics space per process.
 */
#ifndef RECD_METRICS_H
#define RECD_METRICS_H

#include <stdint.h>

#include "core/sbuf.h"

#define METRICS_MAX_ROUTES 48

/* Clear every counter and forget routes and collectors (tests, or a server starting). Not thread-safe. */
void metrics_reset(void);
/* Register a route label before serving starts (not thread-safe). Returns its index, or -1 when the
 * table is full. Index 0 is always "unmatched". */
int metrics_route(const char *label);
/* Count one answered request: route index, HTTP status, latency in nanoseconds. Status 0 (no answer
 * was sent: the client went away) counts in recd_http_requests_aborted_total only. Thread-safe. */
void metrics_observe(int route, int status, uint64_t ns);
/* Requests counted so far for (route, status) (for tests). */
uint64_t metrics_count(int route, int status);

/* A collector appends complete series (with # HELP and # TYPE lines) to out. */
typedef void (*metrics_collect_fn)(sbuf *out, void *ctx);
/* Add a collector (before serving starts; at most 16). RC_OK or RC_EFULL. */
int metrics_add_collector(metrics_collect_fn fn, void *ctx);

/* The whole exposition (text/plain; version=0.0.4) appended to out. */
void metrics_render(sbuf *out);

#endif
