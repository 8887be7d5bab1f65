/* server/evstore_impl.h - private to server/evstore*.c: the on-disk formats of the event store.
 *
 * Keys are big-endian (LMDB orders them as numbers); values are native-endian (the folder is read by
 * the machine that wrote it: LMDB's own pages are native-endian too).
 *
 *   meta     "format" -> EVS_FORMAT ; "seq" -> u64 next log sequence number
 *   runs     name "\0" salt -> u32 run, u32 n_arms, f64 shares[n_arms], n_arms x (u8 len, name bytes)
 *   log      u64 time_us, u64 seq -> record (below)
 *   req      request_id -> u8[16] log key, u8 run, u8 arm, str16 unit, str16 session
 *   dedup    u8[16] event key hash -> u8[16] log key (evs_dedup_key)
 *   units    u8 run, u8 arm, unit -> f64 n, a, c, v
 *   unitarm  u8 run, unit -> u8 arm bit mask
 *   arms     u8 run, u8 arm -> ev_arm_report ; u8 run, 0xff -> u64 multi_arm_units
 *   items    u8 run, u8 arm, item -> u64 times shown
 *   hist     u8 run, u8 arm, u64 bucket -> ab_sums (after the bucket's last commit)
 *
 * Records (str16: u16 length + bytes; str32: u32 length + bytes):
 *   impression 'I', f64 t, u32 latency_us, u8 run, u8 arm, u8 fallback, u8 has_rows, u16 n_items,
 *              str16 request_id, unit, session, model, version, str32 row_header,
 *              has_rows == 2 ? str32 ctx_row, n_items x str16 item, has_rows ? n_items x str32 row
 *              (has_rows: 0 none, 1 full rows, 2 compact rows over ctx_row: ev_impression.ctx_row)
 *   event      'E', u8 type, u8 run, u8 arm, f64 value, f64 t, str16 request_id, item_id, event_id,
 *              unit, session
 */
#ifndef RECD_EVSTORE_IMPL_H
#define RECD_EVSTORE_IMPL_H

#include <stdint.h>
#include <string.h>

#include <lmdb.h>

#include "server/evstore.h"

#define EVS_FORMAT "recd-events 1"
#define EVS_FORMAT_PREFIX "recd-events "
#define EVS_MAXDBS 12
#define EVS_MULTI_ARM 0xff /* arms key (run, 0xff): multi_arm_units */

static inline void evs_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}
static inline uint64_t evs_rd_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

/* A bounds-checked reader of a record; bad is set (and stays set) on a short read. */
typedef struct evs_rd {
    const uint8_t *p, *end;
    int bad;
} evs_rd;

static inline const void *evs_take(evs_rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const void *q = r->p;
    r->p += n;
    return q;
}
static inline uint8_t evs_u8(evs_rd *r)
{
    const uint8_t *q = evs_take(r, 1);
    return q ? *q : 0;
}
static inline uint16_t evs_u16(evs_rd *r)
{
    uint16_t v = 0;
    const void *q = evs_take(r, 2);
    if (q) memcpy(&v, q, 2);
    return v;
}
static inline uint32_t evs_u32(evs_rd *r)
{
    uint32_t v = 0;
    const void *q = evs_take(r, 4);
    if (q) memcpy(&v, q, 4);
    return v;
}
static inline double evs_f64(evs_rd *r)
{
    double v = 0;
    const void *q = evs_take(r, 8);
    if (q) memcpy(&v, q, 8);
    return v;
}
static inline api_str evs_str16(evs_rd *r)
{
    api_str s = {NULL, 0};
    s.n = evs_u16(r);
    s.p = evs_take(r, s.n);
    if (!s.p) s.n = 0;
    return s;
}
static inline api_str evs_str32(evs_rd *r)
{
    api_str s = {NULL, 0};
    s.n = evs_u32(r);
    s.p = evs_take(r, s.n);
    if (!s.p) s.n = 0;
    return s;
}

/* A decoded impression record (strings point into the record). */
typedef struct evs_imp {
    double t;
    uint32_t latency_us;
    int run, arm, fallback, has_rows, n_items;
    api_str request_id, unit, session, model, version, row_header;
    api_str ctx_row;         /* has_rows == 2: the context's row (rows hold the items' own fields) */
    const uint8_t *items_at; /* n_items x str16, then (has_rows) n_items x str32 */
} evs_imp;

/* A decoded event record. */
typedef struct evs_ev {
    int type, run, arm;
    double value, t;
    api_str request_id, item_id, event_id, unit, session;
} evs_ev;

/* Decode record v[0..n) (after its kind byte, which the caller checked). 0 ok, -1 malformed. */
int evs_decode_imp(const uint8_t *v, size_t n, evs_imp *out);
int evs_decode_ev(const uint8_t *v, size_t n, evs_ev *out);

/* The 16-byte dedup key of an event: (request_id, event_id) when event_id is given, else (request_id,
 * type, item_id). */
void evs_dedup_key(int type, api_str request_id, api_str item_id, api_str event_id, uint8_t out[16]);

/* rc_error naming the folder and LMDB's reason; returns code. */
int evs_mdb_fail(int code, int mrc, const char *what, const char *dir);

#endif
