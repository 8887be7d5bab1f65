/* server/server.h - `recd serve`: the server object shared by the HTTP layer, the handlers and the loop.
 *
 * Settings (configs/recd.json, `recd serve --help` lists them with defaults and bounds):
 *   http.bind "0.0.0.0", http.port 8080, http.threads 0 (= one per core), http.max_connections 1024,
 *   http.max_connections_per_ip 256 (0: no limit), http.timeout_s 5 (idle keep-alive), http.request_timeout_s
 *   10 (a whole request must arrive within it), http.admin_port 0 (off; else a second listener for probes,
 *   metrics and admin routes), http.max_body_bytes 65536, http.cors_origins [] (origins allowed, "*" = any),
 *   admin_token null (or env RECD_ADMIN_TOKEN; admin routes are off without one),
 *   snapshots.root "snapshots", snapshots.models ["gru4rec"] (the first is the default model),
 *   snapshots.watch true, snapshots.poll_ms 5000, snapshots.warm_requests 8,
 *   sessions.max 1000000, sessions.ttl_s 1800, sessions.shards 64, sessions.max_seen 32,
 *   sessions.sweep_ms 1000, sessions.sweep_slice 20000,
 *   next.k_default 20, next.k_max 1000, next.max_items 1000, limits.max_depth 8, limits.max_id_len 256,
 *   batch.max 32 (1 = score inline, no batching), batch.wait_us 0, batch.threads 1, batch.split_below 0,
 *   score.kernel "auto" (auto|blas|avx2|avx512|avx512bf16), score.int8 true (int8 item matrix, candidates
 *   re-ranked in f32; wins over bf16), score.bf16 true (used when int8 is off),
 *   shutdown.drain_s 10, log_level "info",
 *   experiments [] (server/experiment.h: each experiment's arms, shares, salt, window, namespace),
 *   state.dir null (the event store's folder, server/evstore.h; experiments need it),
 *   events.max_bytes 1 GiB (the folder's bound), events.retention_days 90 (0: kept), events.flush_ms 20,
 *   events.sync true (fdatasync every commit), events.queue_bytes 16 MiB (impressions waiting for a
 *   commit), events.history_s 60 (report history bucket), events.max_batch 1000 (events per POST).
 * Environment: RECD_ADMIN_TOKEN (admin token), RECD_PORT (overrides http.port), RECD_SNAPSHOTS (overrides
 * snapshots.root). Command line `--name value` overrides both.
 */
#ifndef RECD_SERVER_H
#define RECD_SERVER_H

#include <stdatomic.h>
#include <stdint.h>

#include <jansson.h>

#include "api/validate.h"
#include "server/experiment.h"

typedef struct server_cfg {
    char *bind;
    long long port, threads, max_connections, timeout_s, max_body;
    long long max_conn_per_ip, request_timeout_s, admin_port;
    json_t *cors_origins;
    char *admin_token;
    char *snap_root;
    json_t *models;
    int watch;
    long long poll_ms, warm_requests;
    long long sess_max, sess_ttl_s, sess_shards, sess_max_seen, sweep_ms, sweep_slice;
    long long k_default, k_max, max_items, max_depth, max_id_len;
    long long batch_max, batch_wait_us, batch_threads, batch_split_below;
    char *score_kernel;
    int score_bf16, score_int8;
    long long drain_s;
    char *log_level;
    json_t *experiments;
    char *state_dir;
    long long ev_max_bytes, ev_flush_ms, ev_queue_bytes, ev_history_s, ev_max_batch;
    double ev_retention_days;
    int ev_sync;
} server_cfg;

struct registry;
struct sessions;
struct next_batcher;
struct MHD_Daemon;

typedef struct server {
    server_cfg cfg;
    api_limits limits;
    struct registry *reg;
    struct sessions *sess;
    struct next_batcher *batcher;
    struct MHD_Daemon *mhd;       /* the public listener */
    struct MHD_Daemon *mhd_admin; /* http.admin_port's listener, or NULL */
    struct http_watch *watch;     /* request deadlines and memory trimming (http.c) */
    int port;       /* bound port */
    int admin_port; /* bound admin port, 0 when off */
    char **cors; /* allowed origins (n_cors); "*" allows any */
    int n_cors;
    const char *admin_token; /* NULL: admin routes off */
    _Atomic int draining;    /* set on SIGTERM: answers carry Connection: close */
    _Atomic long inflight;   /* requests started and not completed */
    double started_at;       /* unix time */
    exp_set exps;            /* the experiments (immutable once open; run ids set by exp_declare_all) */
    struct evstore *events;  /* the event store (state.dir), or NULL when off */
    /* Asks the loop thread to rescan (model name or NULL = all; force) - thread-safe (uv_async_send). */
    void (*request_scan)(struct server *srv, const char *model, int force);
    void *loop_ctx;
} server;

/* `recd serve -c CONFIG [--setting value ...]`: runs until SIGTERM/SIGINT. Exit status 0 after a clean
 * drain, 1 on a runtime failure (port taken, ...), 2 on a usage or config error. */
int cmd_serve(int argc, char **argv);
/* `recd events export --state DIR --out F [--rows R] ...` (server/events_cmd.c): exit 0, 1 failure, 2 usage. */
int cmd_events(int argc, char **argv);

/* ---- the server without the loop (cmd_serve, in-process tests and fuzzers) ---- */

/* Build srv (overwritten) from the settings - the defaults, then the config file of `-c FILE` /
 * `--config FILE` in argv, then RECD_PORT / RECD_SNAPSHOTS / RECD_ADMIN_TOKEN, then `--setting value`
 * pairs in argv (argv[0] is skipped; consumed pairs are removed from argv) - and everything the server
 * needs except the libuv loop and signals: the registry (nothing loaded yet; the configured models and
 * the experiments' pinned "MODEL@V" entries), the session store, the route metrics and metric
 * collectors, the micro-batcher, the experiments (srv->exps) and, when state.dir is set, the event
 * store (srv->events) with every experiment declared to it (a changed share with the same salt is a
 * settings error). Also sets log_level. srv->request_scan is set
 * to a synchronous scan (run on the calling thread, serialized with server_load_now), so POST /v1/models/{name}/reload works without a
 * loop; cmd_serve replaces it with one that wakes its loop. Returns RC_OK, or an RC code with the
 * message set; *settings_error (may be NULL) is then 1 when the settings were refused (a usage or config
 * error: `recd serve` exits 2), 0 for a runtime failure. Call server_close whatever the result. */
int server_open(server *srv, int argc, char **argv, int *settings_error);

/* Load the newest valid snapshot of every model now, on the calling thread (registry_scan; serialized
 * with the in-process reload). RC_OK when every model then serves a version, else RC_ENOTFOUND naming
 * the first one missing (a refused snapshot is logged by the registry). */
int server_load_now(server *srv);

/* Stop the HTTP daemon if http_start ran (queued /v1/next requests are answered first), then free
 * everything server_open built and forget the metric collectors. srv may come from a failed
 * server_open; calling it twice is harmless. The caller closes its own loop first. */
void server_close(server *srv);

#endif
