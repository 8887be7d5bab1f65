/* server/evstore.h - the durable state of experiments: impressions, client events and the report's sums
 * in one LMDB environment in the state folder, written by one group-commit writer thread (DESIGN.md
 * section 6).
 *
 * Writers never touch LMDB. HTTP threads hand records to the writer:
 *   - an impression (evstore_impression) is copied into a bounded ring and the call returns at once;
 *     the writer commits it within flush_ms (default 20 ms) plus one commit;
 *   - a batch of client events (evstore_submit) is queued with a completion callback; the writer takes
 *     everything queued (impressions and batches, in arrival order), validates and applies it in one
 *     write transaction, commits (fdatasync unless sync is off) and only then calls each batch's done():
 *     an acknowledged event is on disk, and a `kill -9` at any moment loses none. Group commit: one
 *     commit serves every batch that arrived while the previous one was being written.
 * Because impressions and events share one queue in arrival order, an event posted after its request
 * was answered always finds the request's impression (in an earlier commit or earlier in the same one).
 *
 * What a commit does with each record:
 *   impression  log record; request-id index; the unit's counters in its arm (n_u += 1) and the arm's
 *               ab_sums (core/abstats.h), a new unit counted once per arm, a unit seen in a second arm
 *               counted once in multi_arm_units; the arm's latency histogram, fallbacks, shown items
 *               (and distinct items: one key per (run, arm, item)); the arm's history point.
 *   event       looked up by request_id (unknown: the whole batch is refused with 422 and the unknown
 *               indices, nothing of it stored); deduplicated by its key - (request_id, event_id) when
 *               event_id is given, else (request_id, type, item_id): the same event_id on two requests
 *               is two events - a duplicate is acknowledged and counted once (a
 *               duplicate within one batch too); then a log record and, for the impression's unit and
 *               arm, click: c_u += 1; acquisition: a_u += 1, v_u += value; client impression: counted
 *               in impression_events only (the server's own impression already counts the exposure).
 * Sums live in LMDB beside the log, written in the same transaction: the report survives a restart
 * and is exactly the sum of what was committed.
 *
 * Bounds: the environment's map size is the folder's bound (max_bytes). Records older than retention_s
 * (log, request-id index, dedup keys) are deleted by the writer in slices, each in its own transaction
 * committed before the cycle's records are applied; the sums, unit counters and history are kept (an
 * event for a request past retention is 422 unknown). The aggregates that retention keeps - units and
 * unitarm (about 100 bytes per unit and arm), items (one key per distinct item shown per arm), hist (one
 * point per arm and history_s), arms, runs - count against max_bytes too and are never deleted by the
 * store: a long experiment with many units needs a max_bytes that holds them; they are freed only by
 * deleting the state folder (a new salt starts new aggregates but keeps the old ones).
 * Headroom: the writer measures the map's fill (pages in use: the environment's last page minus the
 * free list, over the map size; recd_events_state_fill_ratio) before each cycle; above 90% (EVS_HIGH_WATER)
 * the cycle's batches are answered 503 and its impressions dropped (counted), so the remaining pages
 * always leave room for retention's deletes (a slice that finds no room even so - a commit that went past
 * the mark - is retried smaller, down to one record). A commit that fails with a full map is answered the same
 * way. After either, new batches and impressions are refused at once with RC_EFULL for a second, then
 * the writer judges again: writes resume as soon as retention brought the fill below the mark. Nothing
 * is dropped silently: recd_events_refused_total{reason}, recd_events_dropped_total{kind} and a log line
 * (at most one per second).
 *
 * Layout (named databases; keys big-endian so that LMDB's order is numeric): meta (format version),
 * runs (experiment name -> declared salt, arms, shares, run id), log (time_us, seq -> record), req
 * (request_id -> log key of its impression), dedup (16-byte event key hash -> log key), units (run,
 * arm, unit -> counters), unitarm (run, unit -> arm bit mask), arms (run, arm -> ev_arm_report), items
 * (run, arm, item -> count), hist (run, arm, bucket -> ab_sums). The record formats are private
 * (server/evstore.c); readers go through this header.
 *
 * Threads: evstore_impression, evstore_submit, evstore_report, evstore_history and the metrics from
 * any thread; evstore_open/evstore_declare/evstore_close from one thread, before serving / after it.
 */
#ifndef RECD_EVSTORE_H
#define RECD_EVSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "api/validate.h" /* api_str */
#include "core/abstats.h"
#include "core/sbuf.h"

#define EVSTORE_MAX_ARMS 8
#define EVSTORE_MAX_RUNS 64
#define EVSTORE_MAX_ITEMS 1000 /* items of one impression */
#define EVSTORE_MAX_ID 255     /* bytes of any id the store keeps (LMDB keys are at most 511 bytes): experiment
                                  requests with a longer user, session or candidate id are refused (422) */
#define EV_LAT_BUCKETS 40      /* latency histogram: bucket i counts answers in [ev_lat_bound(i-1), ev_lat_bound(i)) */

typedef struct evstore evstore;

typedef struct evstore_cfg {
    const char *dir;      /* state folder, created if missing (copied) */
    uint64_t max_bytes;   /* bound of the folder: the LMDB map size (default 1 GiB) */
    double retention_s;   /* log records older are deleted (0: kept); seconds, fractions allowed */
    int flush_ms;         /* impressions are committed within this (default 20) */
    size_t queue_bytes;   /* ring of queued impressions (default 16 MiB); full: dropped and counted */
    int sync;             /* 1 (default): fdatasync every commit (survives power loss); 0: the OS page
                             cache only (survives kill -9, not a machine crash) */
    double history_s;     /* width of a report history bucket in seconds (default 60) */
} evstore_cfg;

/* The defaults above, dir NULL. */
evstore_cfg evstore_cfg_default(void);

/* Open (or create) the state folder and start the writer thread. RC_OK with *out owned by the caller
 * (evstore_close), or RC_EIO (folder not writable, LMDB error: message names the path), RC_ECORRUPT /
 * RC_EVERSION (not a recd state folder, unknown format), RC_ENOMEM. */
int evstore_open(evstore **out, const evstore_cfg *cfg);
/* Commit everything queued (pending batches get their done()), stop the writer, close LMDB, free.
 * NULL is a no-op. */
void evstore_close(evstore *st);

/* ---- experiments ---- */
typedef struct ev_run_decl {
    const char *name;             /* experiment name */
    const char *salt;
    int n_arms;                   /* 1..EVSTORE_MAX_ARMS */
    const char *const *arm_names; /* (n_arms) */
    const double *shares;         /* (n_arms) */
} ev_run_decl;

/* Declare an experiment before serving; sets *run (a small integer, stable for the experiment's name
 * and salt across restarts). The first declaration is stored. A later one (this or another process)
 * with the same name and salt must have the same arms and shares: else RC_EINVAL with "experiment
 * 'home': shares changed from [0.5,0.5] to [0.7,0.3] with the same salt 'x': give the experiment a new
 * salt (units already assigned would move between arms)". A new salt starts a new run (new sums; the
 * old run's data stays in the log). RC_EFULL beyond EVSTORE_MAX_RUNS runs, RC_EIO. */
int evstore_declare(evstore *st, const ev_run_decl *d, int *run);

/* ---- impressions (the server's own, one per answered request in an experiment) ---- */
typedef struct ev_impression {
    api_str request_id;   /* 1..EVSTORE_MAX_ID bytes */
    int run, arm;         /* from evstore_declare; 0 <= arm < n_arms */
    api_str unit;         /* the unit (user_id), 1..EVSTORE_MAX_ID bytes */
    api_str session;      /* the session for the click export (n == 0: the unit), 0..EVSTORE_MAX_ID bytes */
    api_str model, version; /* the model and version that answered, 0..EVSTORE_MAX_ID bytes */
    const api_str *items; /* (n_items) shown, in answer order: position = index + 1; 1..EVSTORE_MAX_ID bytes */
    int n_items;          /* 0..EVSTORE_MAX_ITEMS */
    double t;             /* unix seconds */
    uint32_t latency_us;  /* request start to answer */
    int fallback;         /* 1: the answer is a fallback (another model, or popular items) */
    /* Labelled rows for the Wide & Deep export (n == 0 when the route has none): a CSV header of the
     * model's input columns, and for each shown item one CSV line (no newline) of its input values.
     * Compact form (ctx_row.p != NULL, even with n == 0): ctx_row is one CSV line of the context's
     * values over the header's columns, and rows[i] holds only the item's own values: an empty field
     * (or a missing trailing one) takes ctx_row's field, a quoted empty field ("") is an explicit empty
     * value. The export writes the same full rows either way (evstore_export). */
    api_str row_header;
    const api_str *rows;  /* (n_items) or NULL */
    api_str ctx_row;      /* p NULL: rows are full rows */
    int rows_skipped;     /* 1: the route had rows but left them out (over its bound): counted */
} ev_impression;

/* Rows of one impression over this many bytes (row_header + ctx_row + rows, or over a quarter of the
 * ring's record limit) are not stored: the impression is stored without them and counted in
 * recd_events_rows_skipped_total (so are rows_skipped and rows over their bounds). */
#define EVSTORE_ROWS_MAX (256u << 10)

/* Copy imp into the writer's ring and return. RC_OK (also when its rows were left out: counted);
 * RC_EFULL (ring full or store full: dropped and counted); RC_EINVAL (a field over its bound: nothing
 * queued); RC_ESTATE (the store is closing). Allocates nothing. Every pointer in imp is borrowed for
 * the call only. */
int evstore_impression(evstore *st, const ev_impression *imp);

/* ---- client events (POST /v1/events) ---- */
typedef enum { EV_IMPRESSION = 1, EV_CLICK = 2, EV_ACQUISITION = 3 } ev_type;

typedef struct ev_event {
    ev_type type;
    api_str request_id;   /* 1..EVSTORE_MAX_ID bytes */
    api_str item_id;      /* 1..EVSTORE_MAX_ID bytes */
    api_str event_id;     /* 0..EVSTORE_MAX_ID bytes; the key is (request_id, event_id), or with n == 0
                             (request_id, type, item_id) */
    double value;         /* acquisitions: the value (0 when not given) */
    double t;             /* unix seconds the server received it */
} ev_event;

typedef struct ev_batch {
    const ev_event *ev;   /* (n) borrowed until done() */
    int n;
    void (*done)(struct ev_batch *b); /* called once on the writer thread after the commit or failure */
    void *arg;            /* the caller's */
    int *unknown;         /* caller's array of unknown_cap ints (may be NULL with cap 0) */
    int unknown_cap;
    /* results, set before done(): */
    int status;           /* 0 stored; 422 unknown request ids (nothing stored); 503 store full or I/O
                             error (nothing stored) */
    int stored;           /* events newly stored */
    int duplicates;       /* events already stored (acknowledged, not counted again) */
    int n_unknown;        /* events with an unknown request_id; the first unknown_cap indices in unknown */
    char detail[200];     /* the reason when status != 0 */
    /* private (the store's queue): */
    struct ev_batch *next_;
    uint64_t seq_;
} ev_batch;

/* Queue b for the next commit. RC_OK: done(b) will be called (from the writer thread; b and everything
 * it points to must stay valid until then). RC_EFULL: the store is full, refused at once (counted; done
 * is not called); RC_ESTATE: the store is closing; RC_EINVAL: a field over its bound (message names the
 * event index and field). Allocates nothing. */
int evstore_submit(evstore *st, ev_batch *b);

/* ---- the report's inputs ---- */
typedef struct ev_arm_report {
    ab_sums s;                    /* per-unit sums: units, impressions (s.n), clicks, acquisitions, value */
    uint64_t impression_events;   /* client-sent impression events */
    uint64_t fallbacks;           /* fallback answers */
    uint64_t items_shown;         /* item slots shown */
    uint64_t distinct_items;      /* distinct items shown */
    uint64_t lat_hist[EV_LAT_BUCKETS];
    double first_t, last_t;       /* unix seconds of the first and latest impression (0: none) */
} ev_arm_report;

/* Upper bound in microseconds of latency bucket i (log-spaced from 10 us, x1.4 per bucket; the last is
 * +inf). */
double ev_lat_bound(int i);
/* The p-quantile (0..1) of a latency histogram in microseconds (bucket upper bound; NaN when empty). */
double ev_lat_quantile(const uint64_t *hist, double p);

/* Copy run's committed state: arms[0..n_arms) and *multi_arm_units (may be NULL). Reads one LMDB read
 * transaction (consistent with one commit). RC_OK, RC_ENOTFOUND for an undeclared run, RC_EIO. */
int evstore_report(evstore *st, int run, ev_arm_report *arms, int n_arms, uint64_t *multi_arm_units);

/* A point of an arm's history: its cumulative sums at the end of a history bucket. */
typedef struct ev_point {
    double t; /* end of the bucket, unix seconds */
    ab_sums s;
} ev_point;
/* The arm's history, oldest first: the newest `cap` points. Returns the count (>= 0) or an RC code. */
int evstore_history(evstore *st, int run, int arm, ev_point *pts, int cap);

/* Prometheus series: recd_events_committed_total{type}, recd_events_refused_total{reason},
 * recd_events_dropped_total{kind}, recd_events_rows_skipped_total, recd_events_commits_total,
 * recd_events_commit_seconds (histogram),
 * recd_events_state_bytes (pages in use now: the file's high-water mark minus the free list),
 * recd_events_state_file_bytes (the file's high-water mark),
 * recd_events_state_fill_ratio (the writer's last measure, compared with the 0.9 high-water mark),
 * recd_events_queue_bytes. For metrics_add_collector. */
void evstore_render_metrics(sbuf *out, void *st);

/* ---- export (`recd events export`) ---- */
typedef struct ev_export_opts {
    const char *experiment; /* only this experiment's records (NULL: all) */
    double since, until;    /* unix seconds; 0: unbounded */
    const char *label;      /* label column name of the rows file (default "label") */
} ev_export_opts;

typedef struct ev_export_stats {
    uint64_t clicks, sessions, rows, positives, skipped_rows;
    uint64_t skipped_clicks; /* clicks whose session or item id holds a newline, CR or NUL byte */
} ev_export_stats;

/* Read the state folder `dir` (read-only; a running server may be writing it) and write:
 *   clicks (may be NULL): a session click file `recd train gru4rec|itemknn --data F` reads as is: TSV
 *     with the header "session_id\titem_id\ttimestamp" (seconds), one line per click or acquisition,
 *     the session being the impression's (its session, else its unit), in time order;
 *   rows (may be NULL): Wide & Deep labelled rows: CSV, the header of the first impression that has
 *     rows plus the label column; one line per shown item of each such impression, label 1 when the
 *     item was acquired in that request, else 0 (compact rows are merged with their ctx_row into the
 *     same full rows). Impressions whose header differs are skipped and counted (skipped_rows).
 * RC_OK, or RC_EIO / RC_ECORRUPT / RC_ENOTFOUND (no state folder) with a message naming dir. */
int evstore_export(const char *dir, FILE *clicks, FILE *rows, const ev_export_opts *o, ev_export_stats *st);

#endif
