/* server/registry.h - loaded models, their versions, and hot swap (DESIGN.md section 4).
 *
 * For every configured model name the registry holds the version serving now. A request acquires a
 * reference to that version (registry_acquire) and releases it when its answer is built: it finishes on
 * the version it started with whatever swaps happen meanwhile. A new version is loaded beside the old
 * one (registry_scan, slow: runs off the request threads), validated (snap_open checks every tensor,
 * the model type loads it), warmed (pages touched, a few requests run), and installed by swapping one
 * pointer. The old version is freed when its last reference goes: on the thread that calls
 * registry_collect (the libuv loop) when a notify callback is set, else at once.
 * A snapshot that fails validation is refused: logged, counted, and remembered with the state of its
 * files (folder and data.mdb: inode, size, mtime); it is not retried while they stay the same, only
 * when they change (e.g. data.mdb copied into an empty version folder) or a reload is asked. The next
 * older version is tried instead, down to the serving one: a refused newest version never leaves a
 * model unloaded while a valid older one exists (at start, after a restart, or on a scan), and the
 * serving version keeps serving when every newer one is refused.
 *
 * Thread-safety: acquire/release/ready/render from any thread; scan/collect from one thread at a time.
 */
#ifndef RECD_REGISTRY_H
#define RECD_REGISTRY_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/snap.h"
#include "models/model.h"
#include "core/sbuf.h"

/* One loaded snapshot version of a configured model. Every field is set before the version serves and
 * never changes afterwards (except refs): a holder of a reference may read them without a lock, until it
 * calls registry_release. */
typedef struct model_version {
    _Atomic int refs;       /* private: references (the registry's own counts one while installed) */
    uint64_t serial;        /* unique per load in this process (never reused, unlike addresses): keys of
                               per-thread caches (server/route.h route_scratch) */
    char model[64];         /* configured name, e.g. "gru4rec" */
    char type_name[32];     /* model type from the snapshot meta */
    uint64_t version;       /* snapshot version */
    char version_str[24];   /* the same as decimal text */
    const model_type *type; /* the type's capability table (models/model.h), static: never NULL */
    snap *snap;             /* owned; the handle points into its map */
    void *handle;           /* the model, for the type's operations; owned (type->free) */
    double loaded_at;       /* unix time the version was installed */
    double load_ms;         /* time to open, validate, load and warm */
    uint64_t fingerprint;   /* session-state compatibility: hash of the type name and type->fingerprint
                               (sessions keep a state across a swap only when it is equal) */
    void *aux;              /* the server's per-version data (e.g. its packed item matrix), set by the
                               prepare hook; owned, freed with aux_free when the version is freed */
    void (*aux_free)(void *aux);
    struct model_version *next_free; /* private: graveyard link */
} model_version;

typedef struct registry registry;

/* A registry for the named models read from root (ROOT/NAME/VERSION). root and names are copied (the
 * caller's strings may go after the call). NULL on ENOMEM or an invalid or repeated name (message set).
 * Nothing is loaded yet: call registry_scan.
 * A name is a model ([A-Za-z0-9_-]{1,63}: the newest valid version of ROOT/NAME serves, swapped as new
 * ones are published) or a pinned entry "MODEL@V" (V a snapshot version: decimal, no leading zero; the
 * whole name under 64 bytes): ROOT/MODEL/V and only it is loaded, once published, and kept whatever
 * newer versions appear (scans, SIGHUP and polls never swap it; a forced scan reloads V itself). The
 * experiments' pinned arms are such entries (server/experiment.h). Its versions carry the entry's name
 * in model_version.model ("widedeep@3"). */
registry *registry_new(const char *root, const char *const *names, int n);
/* Frees everything, current versions included; no reference may be held any more. NULL is a no-op. */
void registry_free(registry *r);

/* A hook run on every loaded version after validation and before it serves (or is refused): it may set
 * v->aux / v->aux_free and run warm-up requests. A non-zero return (RC code, message set) refuses it. */
void registry_set_prepare(registry *r, int (*prepare)(model_version *v, void *ctx), void *ctx);

/* Requests run on a new version before it serves (default 8). */
void registry_set_warm(registry *r, int n_requests);

/* Called (from any thread) when a released version waits in the graveyard; the callee arranges for
 * registry_collect to run soon (uv_async_send). NULL: versions are freed by the releasing thread. */
void registry_set_notify(registry *r, void (*notify)(void *ctx), void *ctx);
/* Free the versions whose last reference went. */
void registry_collect(registry *r);

/* A reference to the version of `name` (NUL-terminated, borrowed for the call) serving now, or NULL when
 * name is not configured (*known = 0) or not loaded yet (*known = 1). known may be NULL. The version and
 * everything it points to (handle, snap, aux) stay valid until the matching registry_release, whatever
 * swaps happen meanwhile. Takes the registry mutex for one pointer read; allocates nothing. Routes use
 * route_acquire (server/route.h), which adds the capability check and the HTTP answers. */
model_version *registry_acquire(registry *r, const char *name, int *known);
void registry_release(registry *r, model_version *v); /* NULL is a no-op */

/* The first configured name. Borrowed: lives as long as r. */
const char *registry_default(const registry *r);
/* Number of configured models, and the i-th name (0 <= i < count; borrowed, lives as long as r). */
int registry_count(const registry *r);
const char *registry_name(const registry *r, int i);
/* The folder under root of the i-th entry: its name, or MODEL for a pinned "MODEL@V" (borrowed, lives
 * as long as r); NULL when i is out of range. */
const char *registry_folder(const registry *r, int i);
/* The i-th entry's pinned version V, or 0 when it is not pinned (or i is out of range). */
uint64_t registry_pin(const registry *r, int i);
/* 1 when every configured model serves a version. */
int registry_ready(registry *r);

/* For each model (or only `only` when not NULL): list the published versions (snap_versions) and try
 * those newer than the serving one, newest first, skipping ones refused before whose files have not
 * changed since; the first that loads, validates and warms is installed. force: also retry remembered
 * refusals, and reload the serving version when it is the newest. Up to 16 refusals per model are
 * remembered (versions newer than the serving one; the oldest entry goes first), so with more broken
 * versions than that some are retried on every scan. A pinned entry tries only its version, when it is
 * published and not serving yet (or force), and never another one. Slow (reads snapshots): call it off the request
 * threads. Returns the number of versions installed, or a negative RC when `only` is not a configured
 * name. Failures to load are logged (full message) and counted, not returned. */
int registry_scan(registry *r, const char *only, int force);

/* Load, validate and warm ROOT/name/version without installing it: snap_open, the type's load, its warm
 * hook, a few steps through its `next` operations when it has them (NaN scores refuse it), then the
 * prepare hook. On RC_OK *out is a version with one reference (the caller's: install it or release it).
 * Else *out is NULL and the error is that of snap_open / the type's load / warm / prepare (message set;
 * RC_ENOTFOUND for an unknown model type). */
int registry_load(registry *r, const char *name, uint64_t version, model_version **out);
/* Install v as the serving version of its model (takes the caller's reference). The replaced one is
 * released: freed once its last holder releases it. A v whose model is not configured is freed. */
void registry_install(registry *r, model_version *v);

/* Counters for metrics and tests. */
uint64_t registry_swaps(registry *r, const char *name);
uint64_t registry_refused(registry *r, const char *name);

/* {"models":[{"name":..,["pinned":true,"folder":"MODEL",]"type":..,"version":"17","loaded_at":"..","load_ms":..,"snapshot_bytes":..,
 *  "meta":{...metrics from the snapshot...},"swaps":..,"refused_snapshots":..,"last_error":".."}]}
 * appended to out (without request_id or closing brace: the caller adds ",\"request_id\":...}").
 * last_error (the latest refusal, absent when none) never shows filesystem paths, whoever asks: the
 * snapshots root is dropped from paths under it ("gru4rec/2/data.mdb: truncated file ..."), any other
 * absolute path becomes "(path)". The log has the full message. */
void registry_render_json(registry *r, sbuf *out);
/* Prometheus series: model version (0: none loaded), swaps, refused snapshots. */
void registry_render_metrics(sbuf *out, void *registry);

#endif
