/* server/serve.c - `recd serve`: settings, start-up, and the libuv loop on the main thread (signals,
 * session expiry timer, snapshot watching, rescans, deferred frees). HTTP threads reach this loop only
 * through uv_async_send (loop_wake). */
#include <cblas.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "server/evstore.h"
#include "server/experiment.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/next.h"
#include "server/ratings.h"
#include "server/registry.h"
#include "server/route.h"
#include "server/server.h"
#include "server/sessions.h"

static const cfg_def serve_defs[] = {
    CFG_STRING("http.bind", server_cfg, bind, "0.0.0.0", "address to listen on (IPv4 or IPv6)"),
    CFG_INT("http.port", server_cfg, port, 8080, 0, 65535, "TCP port (0: any free port; env RECD_PORT)"),
    CFG_INT("http.threads", server_cfg, threads, 0, 0, 256, "HTTP threads (0: one per core)"),
    CFG_INT("http.max_connections", server_cfg, max_connections, 1024, 1, 1000000, "open connections at most"),
    CFG_INT("http.max_connections_per_ip", server_cfg, max_conn_per_ip, 256, 0, 1000000,
            "open connections from one client address at most (0: no limit; behind a proxy: its pool size)"),
    CFG_INT("http.timeout_s", server_cfg, timeout_s, 5, 0, 86400, "idle keep-alive connections closed after (0: never)"),
    CFG_INT("http.request_timeout_s", server_cfg, request_timeout_s, 10, 0, 3600,
            "a whole request (line, headers, body) must arrive within; trickled bytes do not extend it (0: off)"),
    CFG_INT("http.admin_port", server_cfg, admin_port, 0, 0, 65535,
            "second listener for /healthz, /readyz, /metrics, /v1/models and admin routes (0: off)"),
    CFG_INT("http.max_body_bytes", server_cfg, max_body, 65536, 16, 1 << 30, "request bodies larger get 413"),
    CFG_JSON("http.cors_origins", server_cfg, cors_origins, "[]",
             "origins allowed to call from browsers, e.g. [\"https://shop.example\"]; \"*\": any"),
    CFG_STRING("admin_token", server_cfg, admin_token, NULL,
               "bearer token for admin routes (env RECD_ADMIN_TOKEN); admin routes are off without one"),
    CFG_STRING("snapshots.root", server_cfg, snap_root, "snapshots", "snapshot folder ROOT/MODEL/VERSION (env RECD_SNAPSHOTS)"),
    CFG_JSON("snapshots.models", server_cfg, models, "[\"gru4rec\"]", "model names served (the first is the default)"),
    CFG_BOOL("snapshots.watch", server_cfg, watch, 1, "load new versions as they are published (inotify)"),
    CFG_INT("snapshots.poll_ms", server_cfg, poll_ms, 5000, 0, 86400000, "rescan period besides the watch (0: off)"),
    CFG_INT("snapshots.warm_requests", server_cfg, warm_requests, 8, 0, 100000, "requests run on a version before it serves"),
    CFG_INT("sessions.max", server_cfg, sess_max, 1000000, 1, 1LL << 32, "sessions kept (least recently used go)"),
    CFG_INT("sessions.ttl_s", server_cfg, sess_ttl_s, 1800, 0, 1LL << 31, "idle seconds before a session is forgotten (0: never)"),
    CFG_INT("sessions.shards", server_cfg, sess_shards, 64, 1, 65536, "lock shards of the session store"),
    CFG_INT("sessions.max_seen", server_cfg, sess_max_seen, 32, 1, 65535, "recent items remembered per session (exclude_seen)"),
    CFG_INT("sessions.sweep_ms", server_cfg, sweep_ms, 1000, 10, 3600000, "period of the TTL sweep"),
    CFG_INT("sessions.sweep_slice", server_cfg, sweep_slice, 20000, 1, 1LL << 32, "sessions looked at per sweep, at most"),
    CFG_INT("next.k_default", server_cfg, k_default, 20, 1, 100000, "k when a request gives none"),
    CFG_INT("next.k_max", server_cfg, k_max, 1000, 1, 100000, "largest k accepted (422 beyond)"),
    CFG_INT("next.max_items", server_cfg, max_items, 1000, 1, 100000, "longest stateless history accepted"),
    CFG_INT("limits.max_depth", server_cfg, max_depth, 8, 2, 64, "deepest JSON nesting accepted (400 beyond)"),
    CFG_INT("limits.max_id_len", server_cfg, max_id_len, 256, 1, 1000, "longest session or item id (bytes)"),
    CFG_INT("batch.max", server_cfg, batch_max, 32, 1, 256, "states scored together at most (1: no batching)"),
    CFG_INT("batch.wait_us", server_cfg, batch_wait_us, 0, 0, 1000000, "longest wait for a batch to fill"),
    CFG_INT("batch.threads", server_cfg, batch_threads, 1, 1, 16, "scorer threads"),
    CFG_INT("batch.split_below", server_cfg, batch_split_below, 0, 0, 256,
            "batches of at most this many states are scored by two threads (0: off; did not pay here)"),
    CFG_ENUM("score.kernel", server_cfg, score_kernel, "auto", "auto|blas|avx2|avx512|avx512bf16",
             "item-matrix scoring kernel, core/itemscore.h (auto: AVX-512 or AVX2 register-blocked kernel; blas: sgemm)"),
    CFG_BOOL("score.int8", server_cfg, score_int8, 1,
             "score from an int8 copy of the item matrix (per-item scale; a quarter of the bytes), the best "
             "candidates re-ranked in f32 (answers as f32: bench/score_bench.c)"),
    CFG_BOOL("score.bf16", server_cfg, score_bf16, 1,
             "score from a bf16 packed copy of the item matrix (half the bytes; no measured accuracy loss)"),
    CFG_INT("shutdown.drain_s", server_cfg, drain_s, 10, 0, 3600, "longest wait for in-flight requests on SIGTERM"),
    CFG_ENUM("log_level", server_cfg, log_level, "info", "debug|info|warn|error|off", "log threshold"),
    CFG_JSON("experiments", server_cfg, experiments, "[]",
             "A/B experiments (server/experiment.h, README \"Experiments\"): [{\"name\",\"salt\",\"arms\":"
             "[{\"name\",\"model\",\"version\",\"share\"}],\"control\",\"start\",\"stop\",\"namespace\","
             "\"namespace_buckets\",\"alpha\",\"tau\"}]; they need state.dir"),
    CFG_STRING("state.dir", server_cfg, state_dir, NULL,
               "folder of the event store (impressions, events, the experiments' sums); null: no store, "
               "POST /v1/events answers 404"),
    CFG_INT("events.max_bytes", server_cfg, ev_max_bytes, 1LL << 30, 1LL << 20, 1LL << 40,
            "bound of the state folder (bytes); full: events refused with 503"),
    CFG_DOUBLE("events.retention_days", server_cfg, ev_retention_days, 90, 0, 36500,
               "event log records older are deleted (fractions allowed: 0.5 = 12 h; the report's sums are kept; "
               "0: kept). New records stop at 90% of max_bytes: retention's deletes use the rest"),
    CFG_INT("events.flush_ms", server_cfg, ev_flush_ms, 20, 1, 1000, "impressions are committed within"),
    CFG_BOOL("events.sync", server_cfg, ev_sync, 1,
             "fdatasync every commit (false: survives kill -9, not a power loss)"),
    CFG_INT("events.queue_bytes", server_cfg, ev_queue_bytes, 16LL << 20, 1LL << 16, 1LL << 32,
            "impressions waiting for a commit at most (bytes); full: dropped and counted"),
    CFG_INT("events.history_s", server_cfg, ev_history_s, 60, 1, 86400, "width of a report history point (s)"),
    CFG_INT("events.max_batch", server_cfg, ev_max_batch, 1000, 1, 100000, "events in one POST /v1/events at most"),
    CFG_END,
};

typedef struct loop_ctx {
    server *srv;
    uv_loop_t loop;
    uv_async_t wake;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t sweep, poll, drain;
    uv_fs_event_t watch[16];
    int watching[16];
    uv_work_t work;
    int work_busy;
    pthread_mutex_t mu; /* guards the pending scan request */
    int scan_pending, scan_force;
    char scan_only[64]; /* "" = all models */
    /* the scan being run by the worker */
    int run_force;
    char run_only[64];
    int signals;
    int stopping;
    uint64_t drain_t0;
    int exit_code;
} loop_ctx;


/* Any thread: note a scan request and wake the loop. */
static void request_scan(server *srv, const char *model, int force)
{
    loop_ctx *lc = srv->loop_ctx;
    pthread_mutex_lock(&lc->mu);
    if (lc->scan_pending && strcmp(lc->scan_only, model ? model : "") != 0) lc->scan_only[0] = '\0';
    else if (!lc->scan_pending) snprintf(lc->scan_only, sizeof lc->scan_only, "%s", model ? model : "");
    lc->scan_pending = 1;
    lc->scan_force |= force;
    pthread_mutex_unlock(&lc->mu);
    uv_async_send(&lc->wake);
}

static void wake_loop(void *ctx)
{
    loop_ctx *lc = ctx;
    uv_async_send(&lc->wake);
}

static void scan_work(uv_work_t *w)
{
    loop_ctx *lc = w->data;
    registry_scan(lc->srv->reg, lc->run_only[0] ? lc->run_only : NULL, lc->run_force);
}

static void arm_watches(loop_ctx *lc);
static void maybe_start_scan(loop_ctx *lc);

static void scan_done(uv_work_t *w, int status)
{
    loop_ctx *lc = w->data;
    (void)status;
    lc->work_busy = 0;
    if (lc->stopping) return;
    arm_watches(lc);
    maybe_start_scan(lc);
}

static void maybe_start_scan(loop_ctx *lc)
{
    if (lc->work_busy || lc->stopping) return;
    pthread_mutex_lock(&lc->mu);
    int pending = lc->scan_pending;
    if (pending) {
        lc->run_force = lc->scan_force;
        memcpy(lc->run_only, lc->scan_only, sizeof lc->run_only);
        lc->scan_pending = lc->scan_force = 0;
    }
    pthread_mutex_unlock(&lc->mu);
    if (!pending) return;
    lc->work.data = lc;
    if (uv_queue_work(&lc->loop, &lc->work, scan_work, scan_done) == 0) lc->work_busy = 1;
}

static void on_wake(uv_async_t *h)
{
    loop_ctx *lc = h->data;
    registry_collect(lc->srv->reg);
    maybe_start_scan(lc);
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    loop_ctx *lc = h->data;
    (void)events;
    if (status < 0) return;
    if (filename && strncmp(filename, ".tmp-", 5) == 0) return; /* a snapshot being written */
    request_scan(lc->srv, registry_name(lc->srv->reg, (int)(h - lc->watch)), 0);
}

/* Watch ROOT/MODEL for every model whose folder exists (folders may appear later: the poll re-arms). */
static void arm_watches(loop_ctx *lc)
{
    server *srv = lc->srv;
    if (!srv->cfg.watch) return;
    for (int i = 0; i < registry_count(srv->reg) && i < 16; i++) {
        if (lc->watching[i]) continue;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", srv->cfg.snap_root, registry_folder(srv->reg, i));
        uv_fs_event_init(&lc->loop, &lc->watch[i]);
        lc->watch[i].data = lc;
        if (uv_fs_event_start(&lc->watch[i], on_fs_event, dir, 0) == 0) {
            lc->watching[i] = 1;
            log_debug("watching %s", dir);
        } else {
            uv_close((uv_handle_t *)&lc->watch[i], NULL);
        }
    }
}

static void on_poll(uv_timer_t *t)
{
    loop_ctx *lc = t->data;
    arm_watches(lc);
    request_scan(lc->srv, NULL, 0);
}

static void on_sweep(uv_timer_t *t)
{
    loop_ctx *lc = t->data;
    size_t n = sessions_expire(lc->srv->sess, clock_mono_s(), (size_t)lc->srv->cfg.sweep_slice);
    if (n) log_debug("expired %zu idle sessions", n);
}

static void close_all(loop_ctx *lc)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&lc->wake,  (uv_handle_t *)&lc->sig_term, (uv_handle_t *)&lc->sig_int,
                         (uv_handle_t *)&lc->sig_hup, (uv_handle_t *)&lc->sweep,  (uv_handle_t *)&lc->poll,
                         (uv_handle_t *)&lc->drain};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (!uv_is_closing(hs[i])) uv_close(hs[i], NULL);
    for (int i = 0; i < 16; i++)
        if (lc->watching[i]) {
            uv_close((uv_handle_t *)&lc->watch[i], NULL);
            lc->watching[i] = 0;
        }
}

static void on_drain(uv_timer_t *t)
{
    loop_ctx *lc = t->data;
    long inflight = atomic_load(&lc->srv->inflight);
    double waited = (double)(uv_now(&lc->loop) - lc->drain_t0) / 1e3;
    if (inflight > 0 && waited < (double)lc->srv->cfg.drain_s) return;
    if (inflight > 0) log_warn("drain timeout: %ld requests still in flight", inflight);
    else log_info("drained: no request in flight");
    close_all(lc);
}

static void on_signal(uv_signal_t *s, int signum)
{
    loop_ctx *lc = s->data;
    if (signum == SIGHUP) {
        log_info("SIGHUP: rescanning snapshots");
        request_scan(lc->srv, NULL, 0);
        return;
    }
    if (++lc->signals > 1) {
        log_warn("second %s: exiting at once", signum == SIGINT ? "SIGINT" : "SIGTERM");
        lc->exit_code = 1;
        uv_stop(&lc->loop);
        return;
    }
    log_info("%s: draining %ld in-flight requests, then exiting", signum == SIGINT ? "SIGINT" : "SIGTERM",
             (long)atomic_load(&lc->srv->inflight));
    lc->stopping = 1;
    atomic_store(&lc->srv->draining, 1);
    http_quiesce(lc->srv);
    uv_timer_stop(&lc->poll);
    lc->drain_t0 = uv_now(&lc->loop);
    uv_timer_start(&lc->drain, on_drain, 5, 5);
}

/* Gauge of requests started and not yet answered (drain progress on SIGTERM; tests wait on it). */
static void render_inflight(sbuf *out, void *ctx)
{
    server *srv = ctx;
    sbuf_printf(out,
                "# HELP recd_http_requests_in_flight Requests received and not yet answered.\n"
                "# TYPE recd_http_requests_in_flight gauge\nrecd_http_requests_in_flight %ld\n",
                atomic_load(&srv->inflight));
    sbuf_printf(out,
                "# HELP recd_http_request_timeouts_total Connections closed (408) because a request did not "
                "arrive whole within http.request_timeout_s.\n"
                "# TYPE recd_http_request_timeouts_total counter\nrecd_http_request_timeouts_total %llu\n",
                (unsigned long long)http_request_timeouts());
}

static void usage(FILE *out)
{
    fprintf(out, "usage: recd serve [-c CONFIG] [--SETTING VALUE ...]\n\n"
                 "Serves the models of snapshots.root over HTTP (see api/openapi.yaml). Settings, from the\n"
                 "config file, then the environment (RECD_PORT, RECD_SNAPSHOTS, RECD_ADMIN_TOKEN), then the\n"
                 "command line:\n\n");
    cfg_print_help(serve_defs, out);
}

static int string_array(const json_t *a, const char *what, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(a)) return rc_error(RC_EINVAL, "%s must be an array of strings", what);
    size_t len = json_array_size(a);
    if (len == 0) return RC_OK;
    *out = calloc(len, sizeof(char *));
    if (!*out) return rc_error(RC_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++) {
        const json_t *s = json_array_get(a, i);
        if (!json_is_string(s)) return rc_error(RC_EINVAL, "%s[%zu] must be a string", what, i);
        (*out)[i] = (char *)json_string_value(s); /* borrowed from the config, lives as long */
        (*n)++;
    }
    return RC_OK;
}

/* In-process use (no loop): POST /v1/models/{name}/reload scans at once on the HTTP thread that asks.
 * registry_scan must run on one thread at a time: the lock serializes it with server_load_now. */
static pthread_mutex_t scan_now_mu = PTHREAD_MUTEX_INITIALIZER;

static void scan_now(server *srv, const char *model, int force)
{
    pthread_mutex_lock(&scan_now_mu);
    registry_scan(srv->reg, model, force);
    pthread_mutex_unlock(&scan_now_mu);
}

int server_open(server *srv, int argc, char **argv, int *settings_error)
{
    char **model_names = NULL;
    int n_models = 0, dummy;
    int *bad = settings_error ? settings_error : &dummy;
    memset(srv, 0, sizeof *srv);
    *bad = 1;
#ifdef M_MMAP_THRESHOLD
    /* Every hot swap allocates and frees a few large buffers (the packed item matrix: 5-11 MB). glibc
     * raises its mmap threshold after the first such free and then serves them from heaps it does not
     * give back: RSS doubled over 50 swaps. A fixed threshold keeps them in mmap, returned on free. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
    int rc = cfg_defaults(serve_defs, &srv->cfg);
    if (rc != RC_OK) {
        *bad = 0;
        return rc;
    }
    const char *config = NULL;
    for (int i = 1; i < argc; i++)
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) config = argv[i + 1];
    if (config && (rc = cfg_load_file(serve_defs, &srv->cfg, config)) != RC_OK) return rc;
    const char *env;
    if ((env = getenv("RECD_PORT")) &&
        (rc = cfg_set(serve_defs, &srv->cfg, "http.port", env, "RECD_PORT")) != RC_OK)
        return rc;
    if ((env = getenv("RECD_SNAPSHOTS")) &&
        (rc = cfg_set(serve_defs, &srv->cfg, "snapshots.root", env, "RECD_SNAPSHOTS")) != RC_OK)
        return rc;
    static const char *const keep[] = {"-c", "--config", NULL};
    if ((rc = cfg_parse_args(serve_defs, &srv->cfg, &argc, argv, keep)) != RC_OK)
        return rc_error(rc, "%s (run `recd serve --help`)", rc_errmsg());
    log_level = log_level_parse(srv->cfg.log_level);
    if ((env = getenv("RECD_ADMIN_TOKEN")) && *env) srv->admin_token = env;
    else if (srv->cfg.admin_token && *srv->cfg.admin_token) srv->admin_token = srv->cfg.admin_token;
    if ((rc = string_array(srv->cfg.cors_origins, "http.cors_origins", &srv->cors, &srv->n_cors)) != RC_OK ||
        (rc = string_array(srv->cfg.models, "snapshots.models", &model_names, &n_models)) != RC_OK) {
        free(model_names);
        return rc;
    }
    srv->limits = (api_limits){.max_depth = (int)srv->cfg.max_depth,
                               .k_default = (int)srv->cfg.k_default,
                               .k_max = (int)srv->cfg.k_max,
                               .max_items = (int)srv->cfg.max_items,
                               .max_id_len = (int)srv->cfg.max_id_len};
    if (srv->limits.k_default > srv->limits.k_max) srv->limits.k_default = srv->limits.k_max;
    if (!getenv("OPENBLAS_NUM_THREADS")) openblas_set_num_threads(1); /* our threads are the parallelism */

    /* experiments: parsed against the configured models; their pinned arms are registry entries too */
    if ((rc = exp_parse(srv->cfg.experiments, (const char *const *)model_names, n_models, &srv->exps)) != RC_OK) {
        free(model_names);
        return rc;
    }
    if (srv->exps.n && !(srv->cfg.state_dir && *srv->cfg.state_dir)) {
        free(model_names);
        return rc_error(RC_EINVAL, "experiments need state.dir: the folder of their event store (impressions, "
                                   "events, the report's sums)");
    }
    const char **pins = NULL, **entries = NULL;
    int n_pins = 0;
    if ((rc = exp_pinned_entries(&srv->exps, &pins, &n_pins)) != RC_OK ||
        !(entries = malloc((size_t)(n_models + n_pins + 1) * sizeof *entries))) {
        free(model_names);
        free(pins);
        *bad = 0;
        return rc != RC_OK ? rc : rc_error(RC_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n_models; i++) entries[i] = model_names[i];
    for (int i = 0; i < n_pins; i++) entries[n_models + i] = pins[i];
    srv->reg = registry_new(srv->cfg.snap_root, entries, n_models + n_pins);
    free(model_names); /* the registry copied the names */
    free(pins);
    free(entries);
    if (!srv->reg) return RC_EINVAL;
    *bad = 0;
    registry_set_warm(srv->reg, (int)srv->cfg.warm_requests);
    registry_set_prepare(srv->reg, route_prepare, srv);
    sessions_cfg scfg = {.max = (size_t)srv->cfg.sess_max,
                         .ttl_s = (double)srv->cfg.sess_ttl_s,
                         .shards = (int)srv->cfg.sess_shards,
                         .max_seen = (int)srv->cfg.sess_max_seen};
    if (!(srv->sess = sessions_new(&scfg))) return RC_ENOMEM;
    metrics_reset();
    if ((rc = router_init()) != RC_OK) return rc;
    metrics_add_collector(registry_render_metrics, srv->reg);
    metrics_add_collector(sessions_render_metrics, srv->sess);
    metrics_add_collector(next_render_metrics, NULL);
    metrics_add_collector(ratings_render_metrics, NULL);
    metrics_add_collector(recommend_render_metrics, NULL);
    metrics_add_collector(render_inflight, srv);
    if (srv->cfg.batch_max > 1 && !(srv->batcher = next_batcher_new(srv))) return RC_ENOMEM;
    if (srv->cfg.state_dir && *srv->cfg.state_dir) {
        evstore_cfg ec = evstore_cfg_default();
        ec.dir = srv->cfg.state_dir;
        ec.max_bytes = (uint64_t)srv->cfg.ev_max_bytes;
        ec.retention_s = (double)srv->cfg.ev_retention_days * 86400.0;
        ec.flush_ms = (int)srv->cfg.ev_flush_ms;
        ec.queue_bytes = (size_t)srv->cfg.ev_queue_bytes;
        ec.sync = srv->cfg.ev_sync;
        ec.history_s = (double)srv->cfg.ev_history_s;
        if ((rc = evstore_open(&srv->events, &ec)) != RC_OK) return rc_wrap(rc, "state.dir");
        metrics_add_collector(evstore_render_metrics, srv->events);
        /* a changed share with the same salt is refused here: a settings error */
        if ((rc = exp_declare_all(&srv->exps, srv->events)) != RC_OK) {
            *bad = rc == RC_EINVAL;
            return rc;
        }
    }
    srv->request_scan = scan_now;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    srv->started_at = (double)ts.tv_sec;
    return RC_OK;
}

int server_load_now(server *srv)
{
    pthread_mutex_lock(&scan_now_mu);
    int n = registry_scan(srv->reg, NULL, 0);
    pthread_mutex_unlock(&scan_now_mu);
    if (n < 0) return n;
    for (int i = 0; i < registry_count(srv->reg); i++) {
        const char *name = registry_name(srv->reg, i);
        model_version *v = registry_acquire(srv->reg, name, NULL);
        registry_release(srv->reg, v);
        if (!v) return rc_error(RC_ENOTFOUND, "model '%s': no valid snapshot under %s/%s", name,
                                srv->cfg.snap_root, name);
    }
    return RC_OK;
}

void server_close(server *srv)
{
    next_batcher_stop(srv->batcher); /* answers the queued requests: no connection stays suspended */
    http_stop(srv);
    next_batcher_free(srv->batcher);
    srv->batcher = NULL;
    evstore_close(srv->events); /* after HTTP: the pending event batches are committed and answered */
    srv->events = NULL;
    if (srv->reg) metrics_reset(); /* its collectors point into this server */
    registry_free(srv->reg);
    srv->reg = NULL;
    sessions_free(srv->sess);
    srv->sess = NULL;
    free(srv->cors);
    srv->cors = NULL;
    srv->n_cors = 0;
    exp_set_free(&srv->exps);
    srv->admin_token = NULL;
    srv->request_scan = NULL;
    srv->loop_ctx = NULL;
    cfg_release(serve_defs, &srv->cfg);
}

int cmd_serve(int argc, char **argv)
{
    static server srv_storage;
    server *srv = &srv_storage;
    loop_ctx lc_storage, *lc = &lc_storage;
    int rc_exit = 1, loop_inited = 0, settings_error = 0;
    memset(lc, 0, sizeof *lc);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    if (server_open(srv, argc, argv, &settings_error) != RC_OK) {
        fprintf(stderr, "recd serve: %s\n", rc_errmsg());
        rc_exit = settings_error ? 2 : 1;
        goto done;
    }

    /* The loop. Snapshot loads are its only thread-pool work and run one at a time: one pool thread
     * (one malloc arena) is enough. */
    setenv("UV_THREADPOOL_SIZE", "1", 0);
    if (uv_loop_init(&lc->loop) != 0) {
        fprintf(stderr, "recd serve: cannot start the event loop\n");
        goto done;
    }
    loop_inited = 1;
    pthread_mutex_init(&lc->mu, NULL);
    lc->srv = srv;
    srv->loop_ctx = lc;
    srv->request_scan = request_scan;
    uv_async_init(&lc->loop, &lc->wake, on_wake);
    lc->wake.data = lc;
    registry_set_notify(srv->reg, wake_loop, lc);
    uv_signal_init(&lc->loop, &lc->sig_term);
    uv_signal_init(&lc->loop, &lc->sig_int);
    uv_signal_init(&lc->loop, &lc->sig_hup);
    lc->sig_term.data = lc->sig_int.data = lc->sig_hup.data = lc;
    uv_signal_start(&lc->sig_term, on_signal, SIGTERM);
    uv_signal_start(&lc->sig_int, on_signal, SIGINT);
    uv_signal_start(&lc->sig_hup, on_signal, SIGHUP);
    uv_timer_init(&lc->loop, &lc->sweep);
    uv_timer_init(&lc->loop, &lc->poll);
    uv_timer_init(&lc->loop, &lc->drain);
    lc->sweep.data = lc->poll.data = lc->drain.data = lc;
    uv_timer_start(&lc->sweep, on_sweep, (uint64_t)srv->cfg.sweep_ms, (uint64_t)srv->cfg.sweep_ms);
    if (srv->cfg.poll_ms > 0) uv_timer_start(&lc->poll, on_poll, (uint64_t)srv->cfg.poll_ms, (uint64_t)srv->cfg.poll_ms);
    arm_watches(lc);

    if (http_start(srv) != RC_OK) {
        log_error("%s", rc_errmsg());
        close_all(lc);
        uv_run(&lc->loop, UV_RUN_DEFAULT);
        goto done;
    }
    log_info("recd %s listening on %s:%d (models from %s, batch.max %lld)", RECD_VERSION, srv->cfg.bind, srv->port,
             srv->cfg.snap_root, srv->cfg.batch_max);
    request_scan(srv, NULL, 0); /* first load, off the request threads; /healthz answers meanwhile */
    uv_run(&lc->loop, UV_RUN_DEFAULT);
    if (lc->exit_code) { /* second signal: leave at once, no cleanup */
        fflush(NULL);
        return lc->exit_code;
    }
    next_batcher_stop(srv->batcher); /* answers the queued requests: no connection stays suspended */
    http_stop(srv);
    next_batcher_free(srv->batcher);
    srv->batcher = NULL;
    uv_run(&lc->loop, UV_RUN_DEFAULT); /* finish a scan in progress and pending closes */
    log_info("stopped");
    rc_exit = 0;
done:
    if (loop_inited) {
        uv_loop_close(&lc->loop);
        pthread_mutex_destroy(&lc->mu);
    }
    server_close(srv);
    return rc_exit;
}
