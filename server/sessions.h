/* server/sessions.h - the session store: per-session GRU hidden state and seen items (DESIGN.md s. 4).
 *
 * Sharded hash map (a mutex per shard), each shard an LRU list bounded at max/shards sessions, every
 * session also bounded by a TTL since its last click. A session remembers the fingerprint of the model
 * state it holds: used with a model whose fingerprint differs (a swap to a new vocabulary or hidden
 * size) its state is reset, and counted. Expiry runs lazily on access and in bounded slices from a timer
 * (sessions_expire), never as one unbounded sweep.
 *
 * Memory per session: one block (header ~100 B + id + 4*max_seen B) and the state (4*S B), plus a
 * bucket pointer; e.g. S=224, max_seen=32, 20-byte ids: about 1.2 KB, so a million sessions ~1.2 GB.
 */
#ifndef RECD_SESSIONS_STORE_H
#define RECD_SESSIONS_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sessions sessions;

typedef struct sessions_cfg {
    size_t max;     /* sessions kept at most (LRU beyond), >= 1 */
    double ttl_s;   /* a session idle longer is forgotten; <= 0: no TTL */
    int shards;     /* power of two is not required; clamped to [1, max] */
    int max_seen;   /* seen items remembered per session (most recent), >= 1 */
} sessions_cfg;

sessions *sessions_new(const sessions_cfg *cfg); /* NULL on ENOMEM / bad cfg (message set) */
void sessions_free(sessions *st);                /* NULL is a no-op */

/* Advance session id[0..n) by one click while holding its shard lock:
 *   - find it, or create it (zero state) when absent, expired (counted as TTL eviction) or holding a
 *     state of another fingerprint / size (reset, counted);
 *   - if item >= 0: call step(ctx, state) on its S floats in place, count the click, remember item as
 *     seen; item < 0 (unknown item) only touches the session;
 *   - copy the state into h_out (S floats) and the seen items into seen_out (up to max_seen, oldest
 *     first), returning their number in *n_seen; *n_clicks gets the known clicks of the session.
 * now: monotonic seconds. RC_OK, RC_ENOMEM (a new session could not be allocated). */
typedef void (*sessions_step_fn)(void *ctx, float *state);
int sessions_advance(sessions *st, const char *id, size_t n, uint64_t fingerprint, size_t S, int32_t item,
                     sessions_step_fn step, void *ctx, double now, float *h_out, int32_t *seen_out, int *n_seen,
                     int *n_clicks);

/* Forget sessions idle longer than the TTL, looking at no more than max_work sessions (round robin over
 * shards). Returns how many were removed. */
size_t sessions_expire(sessions *st, double now, size_t max_work);

int sessions_max_seen(const sessions *st);
size_t sessions_count(const sessions *st);
typedef struct sessions_stats {
    uint64_t created, evicted_lru, expired_ttl, reset_model;
    size_t count;
} sessions_stats;
void sessions_get_stats(const sessions *st, sessions_stats *out);
/* Prometheus series (recd_sessions, recd_session_evictions_total{reason}, ...). */
struct sbuf;
void sessions_render_metrics(struct sbuf *out, void *store);
#endif
