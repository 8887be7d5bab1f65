/* server/metrics.c - request counters and latency histograms, Prometheus text (see metrics.h). */
#include "server/metrics.h"

#include <stdatomic.h>
#include <string.h>

#include "core/err.h"

static const int status_codes[] = {200, 202, 204, 400, 401, 403, 404, 405, 408, 413, 415, 422, 500, 501, 503, 0};
#define N_STATUS ((int)(sizeof status_codes / sizeof status_codes[0])) /* the last is "other" */
/* Latency buckets, upper bounds in seconds (and the same in ns for the hot path). */
static const double bucket_s[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
#define N_BUCKETS ((int)(sizeof bucket_s / sizeof bucket_s[0]))
static const uint64_t bucket_ns[N_BUCKETS] = {100000,   250000,   500000,    1000000,   2500000,    5000000,
                                              10000000, 25000000, 50000000, 100000000, 250000000, 1000000000};

struct route_metrics {
    char label[96];
    _Atomic uint64_t by_status[N_STATUS];
    _Atomic uint64_t buckets[N_BUCKETS + 1]; /* not cumulative; the last is +Inf */
    _Atomic uint64_t sum_ns;
    _Atomic uint64_t aborted; /* ended without an answer */
};

static struct route_metrics routes[METRICS_MAX_ROUTES];
static int n_routes;
static struct {
    metrics_collect_fn fn;
    void *ctx;
} collectors[16];
static int n_collectors;

void metrics_reset(void)
{
    memset(routes, 0, sizeof routes);
    n_routes = 0;
    n_collectors = 0;
    metrics_route("unmatched");
}

int metrics_route(const char *label)
{
    if (n_routes == 0 && strcmp(label, "unmatched") != 0) metrics_route("unmatched");
    for (int i = 0; i < n_routes; i++)
        if (strcmp(routes[i].label, label) == 0) return i;
    if (n_routes == METRICS_MAX_ROUTES) return -1;
    struct route_metrics *r = &routes[n_routes];
    memset(r, 0, sizeof *r);
    strncpy(r->label, label, sizeof r->label - 1);
    return n_routes++;
}

static int status_index(int status)
{
    for (int i = 0; i < N_STATUS - 1; i++)
        if (status_codes[i] == status) return i;
    return N_STATUS - 1;
}

void metrics_observe(int route, int status, uint64_t ns)
{
    if (route < 0 || route >= n_routes) route = 0;
    struct route_metrics *r = &routes[route];
    if (status == 0) {
        atomic_fetch_add_explicit(&r->aborted, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&r->by_status[status_index(status)], 1, memory_order_relaxed);
    int b = 0;
    while (b < N_BUCKETS && ns > bucket_ns[b]) b++;
    atomic_fetch_add_explicit(&r->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->sum_ns, ns, memory_order_relaxed);
}

uint64_t metrics_count(int route, int status)
{
    if (route < 0 || route >= n_routes) return 0;
    return atomic_load_explicit(&routes[route].by_status[status_index(status)], memory_order_relaxed);
}

int metrics_add_collector(metrics_collect_fn fn, void *ctx)
{
    if (n_collectors == (int)(sizeof collectors / sizeof collectors[0]))
        return rc_error(RC_EFULL, "too many metrics collectors");
    collectors[n_collectors].fn = fn;
    collectors[n_collectors].ctx = ctx;
    n_collectors++;
    return RC_OK;
}

void metrics_render(sbuf *out)
{
    sbuf_adds(out, "# HELP recd_http_requests_total HTTP requests answered, by route and status.\n"
                   "# TYPE recd_http_requests_total counter\n");
    for (int i = 0; i < n_routes; i++)
        for (int s = 0; s < N_STATUS; s++) {
            uint64_t v = atomic_load_explicit(&routes[i].by_status[s], memory_order_relaxed);
            if (!v) continue;
            if (status_codes[s])
                sbuf_printf(out, "recd_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", routes[i].label,
                            status_codes[s], (unsigned long long)v);
            else
                sbuf_printf(out, "recd_http_requests_total{route=\"%s\",status=\"other\"} %llu\n", routes[i].label,
                            (unsigned long long)v);
        }
    sbuf_adds(out, "# HELP recd_http_requests_aborted_total Requests that ended without an answer (client gone).\n"
                   "# TYPE recd_http_requests_aborted_total counter\n");
    for (int i = 0; i < n_routes; i++) {
        uint64_t v = atomic_load_explicit(&routes[i].aborted, memory_order_relaxed);
        if (v)
            sbuf_printf(out, "recd_http_requests_aborted_total{route=\"%s\"} %llu\n", routes[i].label,
                        (unsigned long long)v);
        }
    sbuf_adds(out, "# HELP recd_http_request_duration_seconds Time from the request line to the answer sent.\n"
                   "# TYPE recd_http_request_duration_seconds histogram\n");
    for (int i = 0; i < n_routes; i++) {
        uint64_t cum = 0;
        for (int b = 0; b <= N_BUCKETS; b++) {
            cum += atomic_load_explicit(&routes[i].buckets[b], memory_order_relaxed);
            if (b < N_BUCKETS)
                sbuf_printf(out, "recd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                            routes[i].label, bucket_s[b], (unsigned long long)cum);
            else
                sbuf_printf(out, "recd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                            routes[i].label, (unsigned long long)cum);
        }
        sbuf_printf(out, "recd_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n", routes[i].label,
                    (double)atomic_load_explicit(&routes[i].sum_ns, memory_order_relaxed) / 1e9);
        sbuf_printf(out, "recd_http_request_duration_seconds_count{route=\"%s\"} %llu\n", routes[i].label,
                    (unsigned long long)cum);
    }
    for (int c = 0; c < n_collectors; c++) collectors[c].fn(out, collectors[c].ctx);
}
