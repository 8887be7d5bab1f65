/* server/evstore.c - the durable event store (server/evstore.h): LMDB environment, the writer's queue
 * (a byte ring of impressions and a FIFO of event batches, one arrival order), the group-commit writer
 * thread, retention, the report's reads and the metrics. Formats: server/evstore_impl.h.
 *
 * The queue. Producers (HTTP threads) copy an impression into the ring as one contiguous record
 * [u32 len, u32 0, u64 seq, payload] (8-byte aligned; a record that does not fit before the end of the
 * ring starts at 0, the rest of the end is skipped: a zero len, or less than a header left) under the
 * mutex, or link a batch (seq_) into the FIFO. The writer takes the records and batches present when it
 * wakes, reads them without the lock (producers only write into free space), merges them by seq, and
 * frees the ring space after the commit.
 *
 * The writer wakes at once on a batch; on impressions only, at flush_ms after the oldest queued one;
 * with retention on, at least once a second for a retention slice. Each cycle is one write transaction:
 * a retention slice (when due), then every record in arrival order, then the touched arms' reports,
 * history points and the log sequence number; commit; then each batch's done().
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"
#include "server/evstore_impl.h"

#define EVS_HDR 16                 /* ring record header: u32 len, u32 0, u64 seq */
#define EVS_ID_MAX EVSTORE_MAX_ID   /* request, unit, session, model, version, item, event ids */
#define EVS_ROW_MAX (1u << 20)     /* one CSV row or the row header */
#define EVS_MAX_BATCH 100000       /* events of one batch */
#define EVS_SLICE 1000             /* log records deleted per retention slice */
#define EVS_FULL_RETRY_NS 1000000000ull /* after a full map, batches are refused for this long */
#define EVS_HIGH_WATER 0.9         /* new records stop when this share of the map is in use: the rest is the
                                      room retention's deletes need (copy-on-write pages, free-list updates) */
#define EVS_USAGE_NS 50000000ull   /* the map's usage is measured at most this often (and after a refusal) */
#define EVS_COMMIT_BUCKETS 13

enum { CM_IMP, CM_CLIENT_IMP, CM_CLICK, CM_ACQ, CM_N };
enum { RF_UNKNOWN, RF_FULL, RF_ERROR, RF_INVALID, RF_CLOSING, RF_N };
enum { DR_QUEUE_FULL, DR_STORE_FULL, DR_ERROR, DR_DUP_REQ, DR_INVALID, DR_N };
static const char *const cm_names[CM_N] = {"impression", "client_impression", "click", "acquisition"};
static const char *const rf_names[RF_N] = {"unknown_request_id", "full", "error", "invalid", "closing"};
static const char *const dr_names[DR_N] = {"queue_full", "store_full", "error", "duplicate_request_id",
                                           "invalid"};
static const double commit_le[EVS_COMMIT_BUCKETS - 1] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                         0.05,   0.1,   0.2,   0.5,   1,    5};

typedef struct run_info {
    int used, n_arms;
    char name[64];
} run_info;

/* An item shown in this transaction: (run, arm, item) -> times, added to db_items in one get/put per
 * distinct key at the end of the transaction (or when the table fills). The item bytes point into the
 * ring record, valid until the cycle ends. */
typedef struct item_agg {
    const uint8_t *item; /* NULL: an empty slot */
    uint64_t h;
    uint64_t cnt;
    uint16_t n;
    uint8_t run, arm;
} item_agg;
#define EVS_IA_CAP 4096    /* slots (a power of two) */
#define EVS_IA_MAX 2048    /* keys before a flush */

/* The writer's copy of an arm's report during one transaction (loaded on first touch). */
typedef struct arm_work {
    ev_arm_report r;
    double touch_t; /* latest record time applied to the arm in this transaction */
    int loaded;
} arm_work;

struct evstore {
    char dir[PATH_MAX];
    evstore_cfg cfg;
    MDB_env *env;
    MDB_dbi db_meta, db_runs, db_log, db_req, db_dedup, db_units, db_unitarm, db_arms, db_items, db_hist;
    int lock_fd;
    size_t psize;
    run_info runs[EVSTORE_MAX_RUNS];

    /* queue (mu) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* the syncer (sync on): batches of commits whose meta page is not yet on disk (mu, scv) */
    pthread_cond_t scv;
    ev_batch *sq_head, *sq_tail;
    int sstop;
    pthread_t sthr;
    int sthr_started;
    uint8_t *ring;
    size_t ring_cap, ring_head, ring_tail, ring_used, rec_max;
    uint32_t ring_nrec;
    uint64_t ring_first_ns;
    ev_batch *bq_head, *bq_tail;
    uint64_t qseq;
    int stop, closing;
    pthread_t thr;
    int thr_started;
    _Atomic int full;
    _Atomic uint64_t full_at_ns;

    /* writer only */
    uint64_t log_seq;
    uint64_t next_retention_ns;
    int ret_slice;        /* log records per retention transaction (0: EVS_SLICE; smaller after a full map) */
    uint64_t usage_at_ns;   /* when `usage` was last measured */
    _Atomic uint64_t used_bytes; /* pages in use (allocated minus free) x page size, at usage_at_ns */
    arm_work *aw;         /* (EVSTORE_MAX_RUNS * EVSTORE_MAX_ARMS) */
    int *touched;         /* indices into aw loaded in this transaction */
    int n_touched;
    uint64_t multi[EVSTORE_MAX_RUNS];
    int multi_state[EVSTORE_MAX_RUNS]; /* 0 not loaded, 1 loaded, 2 changed */
    item_agg *ia;         /* (EVS_IA_CAP) items shown in this transaction, not yet in db_items */
    int ia_n;

    /* metrics */
    _Atomic uint64_t m_committed[CM_N], m_refused[RF_N], m_dropped[DR_N];
    _Atomic uint64_t m_commits, m_commit_fail, m_dups, m_expired, m_commit_ns;
    _Atomic uint64_t m_commit_hist[EVS_COMMIT_BUCKETS];
    _Atomic uint64_t m_queue_bytes;
    _Atomic uint64_t m_rows_skipped; /* impressions stored without their rows (over their bounds) */
    _Atomic uint64_t last_warn_ns;
};

static inline void ctr_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}
static inline uint64_t ctr_get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* A warning at most once a second per store. */
#define EVS_WARN(st, ...)                                                                         \
    do {                                                                                          \
        uint64_t now_ = clock_mono_ns(), last_ = ctr_get(&(st)->last_warn_ns);                    \
        if (now_ - last_ >= 1000000000ull &&                                                      \
            atomic_compare_exchange_strong(&(st)->last_warn_ns, &last_, now_))                    \
            log_warn(__VA_ARGS__);                                                                \
    } while (0)

int evs_mdb_fail(int code, int mrc, const char *what, const char *dir)
{
    return rc_error(code, "state folder %s: %s: %s", dir, what, mdb_strerror(mrc));
}

/* ---------------------------------------------------------------------------------------------- */
/* formats                                                                                         */

int evs_decode_imp(const uint8_t *v, size_t n, evs_imp *o)
{
    evs_rd r = {v, v + n, 0};
    o->t = evs_f64(&r);
    o->latency_us = evs_u32(&r);
    o->run = evs_u8(&r);
    o->arm = evs_u8(&r);
    o->fallback = evs_u8(&r);
    o->has_rows = evs_u8(&r);
    o->n_items = evs_u16(&r);
    o->request_id = evs_str16(&r);
    o->unit = evs_str16(&r);
    o->session = evs_str16(&r);
    o->model = evs_str16(&r);
    o->version = evs_str16(&r);
    o->row_header = evs_str32(&r);
    o->ctx_row = o->has_rows == 2 ? evs_str32(&r) : (api_str){NULL, 0};
    o->items_at = r.p;
    return r.bad ? -1 : 0;
}

int evs_decode_ev(const uint8_t *v, size_t n, evs_ev *o)
{
    evs_rd r = {v, v + n, 0};
    o->type = evs_u8(&r);
    o->run = evs_u8(&r);
    o->arm = evs_u8(&r);
    o->value = evs_f64(&r);
    o->t = evs_f64(&r);
    o->request_id = evs_str16(&r);
    o->item_id = evs_str16(&r);
    o->event_id = evs_str16(&r);
    o->unit = evs_str16(&r);
    o->session = evs_str16(&r);
    return r.bad ? -1 : 0;
}

void evs_dedup_key(int type, api_str request_id, api_str item_id, api_str event_id, uint8_t out[16])
{
    uint64_t h1, h2;
    if (event_id.n) { /* (request_id, event_id): the same event_id on another request is another event */
        h1 = hash_combine(hash_combine(0x6576656e74ull, request_id.p, request_id.n), event_id.p, event_id.n);
        h2 = hash_combine(hash_combine(0x9e3779b97f4a7c15ull, request_id.p, request_id.n), event_id.p, event_id.n);
    } else {
        uint8_t t = (uint8_t)type;
        h1 = hash_combine(hash_combine(hash_combine(0x6b6579ull, request_id.p, request_id.n), &t, 1), item_id.p,
                          item_id.n);
        h2 = hash_combine(hash_combine(hash_combine(0x7f4a7c159e3779b9ull, request_id.p, request_id.n), &t, 1),
                          item_id.p, item_id.n);
    }
    evs_be64(out, h1);
    evs_be64(out + 8, h2);
}

/* A writer of native-endian fields into a buffer the caller sized. */
typedef struct evs_wr {
    uint8_t *p;
} evs_wr;
static inline void w_bytes(evs_wr *w, const void *s, size_t n)
{
    if (n) memcpy(w->p, s, n);
    w->p += n;
}
static inline void w_u8(evs_wr *w, unsigned v)
{
    *w->p++ = (uint8_t)v;
}
static inline void w_u16(evs_wr *w, size_t v)
{
    uint16_t x = (uint16_t)v;
    w_bytes(w, &x, 2);
}
static inline void w_u32(evs_wr *w, size_t v)
{
    uint32_t x = (uint32_t)v;
    w_bytes(w, &x, 4);
}
static inline void w_f64(evs_wr *w, double v)
{
    w_bytes(w, &v, 8);
}
static inline void w_str16(evs_wr *w, api_str s)
{
    w_u16(w, s.n);
    w_bytes(w, s.p, s.n);
}
static inline void w_str32(evs_wr *w, api_str s)
{
    w_u32(w, s.n);
    w_bytes(w, s.p, s.n);
}

/* ---------------------------------------------------------------------------------------------- */
/* latency histogram                                                                               */

double ev_lat_bound(int i)
{
    if (i < 0) return 0;
    if (i >= EV_LAT_BUCKETS - 1) return INFINITY;
    return 10.0 * pow(1.4, i);
}

static int lat_bucket(uint32_t us)
{
    double v = us;
    for (int i = 0; i < EV_LAT_BUCKETS - 1; i++)
        if (v < ev_lat_bound(i)) return i;
    return EV_LAT_BUCKETS - 1;
}

double ev_lat_quantile(const uint64_t *hist, double p)
{
    uint64_t total = 0;
    for (int i = 0; i < EV_LAT_BUCKETS; i++) total += hist[i];
    if (!total || !(p >= 0 && p <= 1)) return NAN;
    double target = ceil(p * (double)total);
    if (target < 1) target = 1;
    uint64_t cum = 0;
    for (int i = 0; i < EV_LAT_BUCKETS; i++) {
        cum += hist[i];
        if ((double)cum >= target) return ev_lat_bound(i);
    }
    return INFINITY;
}

/* ---------------------------------------------------------------------------------------------- */
/* open / close                                                                                    */

evstore_cfg evstore_cfg_default(void)
{
    evstore_cfg c;
    memset(&c, 0, sizeof c);
    c.max_bytes = 1ull << 30;
    c.retention_s = 0;
    c.flush_ms = 20;
    c.queue_bytes = 16u << 20;
    c.sync = 1;
    c.history_s = 60;
    return c;
}

static void *writer_main(void *arg);
static uint64_t map_used(evstore *st);
static void *syncer_main(void *arg);

/* Decode a runs value into *n_arms, shares and arm names ("a,b" form into names_out). 0 or -1. */
static int run_decode(const MDB_val *v, uint32_t *run, int *n_arms, double *shares, char (*names)[64])
{
    evs_rd r = {v->mv_data, (const uint8_t *)v->mv_data + v->mv_size, 0};
    *run = evs_u32(&r);
    uint32_t n = evs_u32(&r);
    if (r.bad || n < 1 || n > EVSTORE_MAX_ARMS || *run >= EVSTORE_MAX_RUNS) return -1;
    *n_arms = (int)n;
    for (uint32_t i = 0; i < n; i++) shares[i] = evs_f64(&r);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t l = evs_u8(&r);
        const void *p = evs_take(&r, l);
        if (!p || l > 63) return -1;
        memcpy(names[i], p, l);
        names[i][l] = '\0';
    }
    return r.bad ? -1 : 0;
}

static int open_dbs(evstore *st, MDB_txn *txn, int create)
{
    struct {
        const char *name;
        MDB_dbi *dbi;
    } t[] = {{"meta", &st->db_meta},   {"runs", &st->db_runs},       {"log", &st->db_log},
             {"req", &st->db_req},     {"dedup", &st->db_dedup},     {"units", &st->db_units},
             {"unitarm", &st->db_unitarm}, {"arms", &st->db_arms},   {"items", &st->db_items},
             {"hist", &st->db_hist}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int mrc = mdb_dbi_open(txn, t[i].name, create ? MDB_CREATE : 0, t[i].dbi);
        if (mrc) return mrc;
    }
    return 0;
}

/* Check (or, in an empty environment, write) the format; open the databases; load seq and runs. */
static int open_state(evstore *st)
{
    MDB_txn *txn;
    MDB_dbi main_db;
    MDB_stat ms;
    int mrc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (mrc) return evs_mdb_fail(RC_EIO, mrc, "cannot start a transaction", st->dir);
    int rc = RC_OK;
    if ((mrc = mdb_dbi_open(txn, NULL, 0, &main_db)) || (mrc = mdb_stat(txn, main_db, &ms))) {
        rc = evs_mdb_fail(RC_EIO, mrc, "cannot read the environment", st->dir);
        goto fail;
    }
    int fresh = ms.ms_entries == 0;
    if (!fresh) {
        mrc = mdb_dbi_open(txn, "meta", 0, &st->db_meta);
        MDB_val k = {6, "format"}, v;
        if (!mrc) mrc = mdb_get(txn, st->db_meta, &k, &v);
        if (mrc == MDB_NOTFOUND || mrc == MDB_INCOMPATIBLE) {
            rc = rc_error(RC_ECORRUPT, "%s is not a recd state folder (its LMDB environment has no event store format record)",
                          st->dir);
            goto fail;
        }
        if (mrc) {
            rc = evs_mdb_fail(RC_EIO, mrc, "cannot read the format", st->dir);
            goto fail;
        }
        size_t pl = strlen(EVS_FORMAT_PREFIX);
        if (v.mv_size != strlen(EVS_FORMAT) || memcmp(v.mv_data, EVS_FORMAT, v.mv_size) != 0) {
            int ours = v.mv_size > pl && memcmp(v.mv_data, EVS_FORMAT_PREFIX, pl) == 0;
            rc = rc_error(ours ? RC_EVERSION : RC_ECORRUPT, "state folder %s: format '%.*s', this recd reads '%s'",
                          st->dir, (int)(v.mv_size > 64 ? 64 : v.mv_size), (const char *)v.mv_data, EVS_FORMAT);
            goto fail;
        }
    }
    if ((mrc = open_dbs(st, txn, 1))) {
        rc = evs_mdb_fail(RC_EIO, mrc, "cannot open the databases", st->dir);
        goto fail;
    }
    if (fresh) {
        MDB_val k = {6, "format"}, v = {strlen(EVS_FORMAT), EVS_FORMAT};
        if ((mrc = mdb_put(txn, st->db_meta, &k, &v, 0))) {
            rc = evs_mdb_fail(mrc == MDB_MAP_FULL ? RC_EFULL : RC_EIO, mrc, "cannot write the format", st->dir);
            goto fail;
        }
    } else {
        MDB_val k = {3, "seq"}, v;
        if (mdb_get(txn, st->db_meta, &k, &v) == 0 && v.mv_size == 8) memcpy(&st->log_seq, v.mv_data, 8);
        MDB_cursor *cur;
        if ((mrc = mdb_cursor_open(txn, st->db_runs, &cur))) {
            rc = evs_mdb_fail(RC_EIO, mrc, "cannot read the runs", st->dir);
            goto fail;
        }
        MDB_val rk, rv;
        for (mrc = mdb_cursor_get(cur, &rk, &rv, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &rk, &rv, MDB_NEXT)) {
            uint32_t run;
            int n_arms;
            double shares[EVSTORE_MAX_ARMS];
            char names[EVSTORE_MAX_ARMS][64];
            if (run_decode(&rv, &run, &n_arms, shares, names) != 0) {
                mdb_cursor_close(cur);
                rc = rc_error(RC_ECORRUPT, "state folder %s: a malformed experiment record", st->dir);
                goto fail;
            }
            const char *z = memchr(rk.mv_data, 0, rk.mv_size);
            size_t nl = z ? (size_t)(z - (const char *)rk.mv_data) : rk.mv_size;
            if (nl > 63) nl = 63;
            st->runs[run].used = 1;
            st->runs[run].n_arms = n_arms;
            memcpy(st->runs[run].name, rk.mv_data, nl);
            st->runs[run].name[nl] = '\0';
        }
        mdb_cursor_close(cur);
    }
    if ((mrc = mdb_txn_commit(txn))) return evs_mdb_fail(RC_EIO, mrc, "cannot commit", st->dir);
    return RC_OK;
fail:
    mdb_txn_abort(txn);
    return rc;
}

int evstore_open(evstore **out, const evstore_cfg *cfg)
{
    *out = NULL;
    if (!cfg || !cfg->dir || !cfg->dir[0]) return rc_error(RC_EINVAL, "evstore_open: no state folder");
    if (strlen(cfg->dir) >= PATH_MAX - 32) return rc_error(RC_EINVAL, "state folder path too long");
    if (cfg->max_bytes < (64u << 10))
        return rc_error(RC_EINVAL, "state folder %s: max_bytes %llu is below 64 KiB", cfg->dir,
                        (unsigned long long)cfg->max_bytes);
    if (cfg->queue_bytes < (64u << 10) || cfg->queue_bytes > (1ull << 32))
        return rc_error(RC_EINVAL, "state folder %s: queue_bytes %zu is outside [64 KiB, 4 GiB]", cfg->dir,
                        cfg->queue_bytes);
    if (cfg->flush_ms < 0 || !(cfg->history_s > 0) || !(cfg->retention_s >= 0) || !isfinite(cfg->retention_s))
        return rc_error(RC_EINVAL, "state folder %s: bad flush_ms, history_s or retention_s", cfg->dir);
    evstore *st = calloc(1, sizeof *st);
    if (!st) return rc_error(RC_ENOMEM, "evstore: out of memory");
    st->lock_fd = -1;
    snprintf(st->dir, sizeof st->dir, "%s", cfg->dir);
    st->cfg = *cfg;
    st->cfg.dir = st->dir;
    int rc = RC_OK, mrc;
    pthread_mutex_init(&st->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cv, &ca);
    pthread_cond_init(&st->scv, NULL);
    pthread_condattr_destroy(&ca);

    if (mkdir(st->dir, 0755) != 0 && errno != EEXIST) {
        rc = rc_error(RC_EIO, "state folder %s: cannot create: %s", st->dir, strerror(errno));
        goto fail;
    }
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/writer.lock", st->dir);
    st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (st->lock_fd < 0) {
        rc = rc_error(RC_EIO, "state folder %s: cannot open %s: %s", st->dir, path, strerror(errno));
        goto fail;
    }
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = rc_error(RC_EIO, "state folder %s is in use by another event store (writer.lock is locked)", st->dir);
        goto fail;
    }
    if ((mrc = mdb_env_create(&st->env))) {
        rc = evs_mdb_fail(RC_EIO, mrc, "mdb_env_create", st->dir);
        goto fail;
    }
    mdb_env_set_maxdbs(st->env, EVS_MAXDBS);
    mdb_env_set_mapsize(st->env, (size_t)cfg->max_bytes);
    mdb_env_set_maxreaders(st->env, 512);
    mrc = mdb_env_open(st->env, st->dir, MDB_NOTLS | (cfg->sync ? MDB_NOMETASYNC : MDB_NOSYNC), 0644);
    if (mrc) {
        rc = evs_mdb_fail(mrc == MDB_INVALID ? RC_ECORRUPT : mrc == MDB_VERSION_MISMATCH ? RC_EVERSION : RC_EIO,
                          mrc, "cannot open the LMDB environment", st->dir);
        mdb_env_close(st->env);
        st->env = NULL;
        goto fail;
    }
    MDB_stat es;
    mdb_env_stat(st->env, &es);
    st->psize = es.ms_psize;
    if ((rc = open_state(st)) != RC_OK) goto fail;
    atomic_store(&st->used_bytes, map_used(st));
    st->usage_at_ns = clock_mono_ns();

    st->ring_cap = cfg->queue_bytes & ~(size_t)7;
    st->rec_max = st->ring_cap / 2;
    st->ring = malloc(st->ring_cap);
    st->aw = calloc((size_t)EVSTORE_MAX_RUNS * EVSTORE_MAX_ARMS, sizeof *st->aw);
    st->touched = calloc((size_t)EVSTORE_MAX_RUNS * EVSTORE_MAX_ARMS, sizeof *st->touched);
    st->ia = calloc(EVS_IA_CAP, sizeof *st->ia);
    if (!st->ring || !st->aw || !st->touched || !st->ia) {
        rc = rc_error(RC_ENOMEM, "state folder %s: out of memory for the %zu-byte queue", st->dir, st->ring_cap);
        goto fail;
    }
    st->next_retention_ns = clock_mono_ns();
    if (pthread_create(&st->thr, NULL, writer_main, st) != 0) {
        rc = rc_error(RC_ENOMEM, "state folder %s: cannot start the writer thread", st->dir);
        goto fail;
    }
    st->thr_started = 1;
    if (cfg->sync) {
        if (pthread_create(&st->sthr, NULL, syncer_main, st) != 0) {
            rc = rc_error(RC_ENOMEM, "state folder %s: cannot start the sync thread", st->dir);
            goto fail;
        }
        st->sthr_started = 1;
    }
    *out = st;
    return RC_OK;
fail:
    st->closing = 1;
    evstore_close(st);
    return rc;
}

void evstore_close(evstore *st)
{
    if (!st) return;
    pthread_mutex_lock(&st->mu);
    st->closing = 1;
    st->stop = 1;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    if (st->thr_started) pthread_join(st->thr, NULL);
    pthread_mutex_lock(&st->mu);
    st->sstop = 1;
    pthread_cond_signal(&st->scv);
    pthread_mutex_unlock(&st->mu);
    if (st->sthr_started) pthread_join(st->sthr, NULL);
    if (st->env) mdb_env_close(st->env);
    if (st->lock_fd >= 0) close(st->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    pthread_cond_destroy(&st->scv);
    free(st->ring);
    free(st->aw);
    free(st->touched);
    free(st->ia);
    free(st);
}

/* ---------------------------------------------------------------------------------------------- */
/* experiments                                                                                     */

static void fmt_shares(char *b, size_t cap, const double *s, int n)
{
    size_t l = 0;
    l += (size_t)snprintf(b + l, cap - l, "[");
    for (int i = 0; i < n && l < cap; i++) l += (size_t)snprintf(b + l, cap - l, "%s%g", i ? "," : "", s[i]);
    if (l < cap) snprintf(b + l, cap - l, "]");
}

static void fmt_names(char *b, size_t cap, const char *const *names, int n)
{
    size_t l = 0;
    l += (size_t)snprintf(b + l, cap - l, "[");
    for (int i = 0; i < n && l < cap; i++) l += (size_t)snprintf(b + l, cap - l, "%s%s", i ? "," : "", names[i]);
    if (l < cap) snprintf(b + l, cap - l, "]");
}

int evstore_declare(evstore *st, const ev_run_decl *d, int *run)
{
    if (!st || !d || !run || !d->name || !d->salt) return rc_error(RC_EINVAL, "evstore_declare: NULL argument");
    size_t nl = strlen(d->name), sl = strlen(d->salt);
    if (nl < 1 || nl > 63) return rc_error(RC_EINVAL, "experiment '%.63s': the name must have 1..63 bytes", d->name);
    if (sl < 1 || sl > 127)
        return rc_error(RC_EINVAL, "experiment '%s': the salt must have 1..127 bytes", d->name);
    if (d->n_arms < 1 || d->n_arms > EVSTORE_MAX_ARMS || !d->arm_names || !d->shares)
        return rc_error(RC_EINVAL, "experiment '%s': %d arms (1..%d)", d->name, d->n_arms, EVSTORE_MAX_ARMS);
    for (int i = 0; i < d->n_arms; i++) {
        size_t al = d->arm_names[i] ? strlen(d->arm_names[i]) : 0;
        if (al < 1 || al > 63) return rc_error(RC_EINVAL, "experiment '%s': arm %d: the name must have 1..63 bytes", d->name, i);
        if (!(d->shares[i] > 0 && d->shares[i] <= 1))
            return rc_error(RC_EINVAL, "experiment '%s': arm '%s': share %g is outside (0, 1]", d->name,
                            d->arm_names[i], d->shares[i]);
    }
    uint8_t key[200];
    memcpy(key, d->name, nl);
    key[nl] = 0;
    memcpy(key + nl + 1, d->salt, sl);
    MDB_val k = {nl + 1 + sl, key}, v;
    MDB_txn *txn;
    int mrc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (mrc) return evs_mdb_fail(RC_EIO, mrc, "cannot start a transaction", st->dir);
    int rc = RC_OK;
    mrc = mdb_get(txn, st->db_runs, &k, &v);
    if (mrc == 0) {
        uint32_t r;
        int n;
        double sh[EVSTORE_MAX_ARMS];
        char names[EVSTORE_MAX_ARMS][64];
        if (run_decode(&v, &r, &n, sh, names) != 0) {
            rc = rc_error(RC_ECORRUPT, "state folder %s: experiment '%s': malformed record", st->dir, d->name);
            goto out;
        }
        int same_arms = n == d->n_arms;
        for (int i = 0; same_arms && i < n; i++) same_arms = strcmp(names[i], d->arm_names[i]) == 0;
        char was[600], now[600];
        if (!same_arms) {
            const char *np[EVSTORE_MAX_ARMS];
            for (int i = 0; i < n; i++) np[i] = names[i];
            fmt_names(was, sizeof was, np, n);
            fmt_names(now, sizeof now, d->arm_names, d->n_arms);
            rc = rc_error(RC_EINVAL,
                          "experiment '%s': arms changed from %s to %s with the same salt '%s': give the experiment a "
                          "new salt (units already assigned would move between arms)",
                          d->name, was, now, d->salt);
            goto out;
        }
        for (int i = 0; i < n; i++)
            if (fabs(sh[i] - d->shares[i]) > 1e-12) {
                fmt_shares(was, sizeof was, sh, n);
                fmt_shares(now, sizeof now, d->shares, n);
                rc = rc_error(RC_EINVAL,
                              "experiment '%s': shares changed from %s to %s with the same salt '%s': give the "
                              "experiment a new salt (units already assigned would move between arms)",
                              d->name, was, now, d->salt);
                goto out;
            }
        *run = (int)r;
        st->runs[r].used = 1;
        st->runs[r].n_arms = n;
        snprintf(st->runs[r].name, sizeof st->runs[r].name, "%s", d->name);
        goto out;
    }
    if (mrc != MDB_NOTFOUND) {
        rc = evs_mdb_fail(RC_EIO, mrc, "cannot read the runs", st->dir);
        goto out;
    }
    MDB_stat ms;
    if ((mrc = mdb_stat(txn, st->db_runs, &ms))) {
        rc = evs_mdb_fail(RC_EIO, mrc, "cannot read the runs", st->dir);
        goto out;
    }
    if (ms.ms_entries >= EVSTORE_MAX_RUNS) {
        rc = rc_error(RC_EFULL, "experiment '%s': state folder %s already holds %d experiment runs (name and salt)",
                      d->name, st->dir, EVSTORE_MAX_RUNS);
        goto out;
    }
    uint32_t r = (uint32_t)ms.ms_entries;
    uint8_t val[8 + 8 * EVSTORE_MAX_ARMS + 64 * EVSTORE_MAX_ARMS];
    evs_wr w = {val};
    w_u32(&w, r);
    w_u32(&w, (uint32_t)d->n_arms);
    for (int i = 0; i < d->n_arms; i++) w_f64(&w, d->shares[i]);
    for (int i = 0; i < d->n_arms; i++) {
        size_t al = strlen(d->arm_names[i]);
        w_u8(&w, (unsigned)al);
        w_bytes(&w, d->arm_names[i], al);
    }
    v.mv_data = val;
    v.mv_size = (size_t)(w.p - val);
    if ((mrc = mdb_put(txn, st->db_runs, &k, &v, MDB_NOOVERWRITE))) {
        rc = evs_mdb_fail(mrc == MDB_MAP_FULL ? RC_EFULL : RC_EIO, mrc, "cannot store the experiment", st->dir);
        goto out;
    }
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc) return evs_mdb_fail(RC_EIO, mrc, "cannot commit the experiment", st->dir);
    st->runs[r].used = 1;
    st->runs[r].n_arms = d->n_arms;
    snprintf(st->runs[r].name, sizeof st->runs[r].name, "%s", d->name);
    *run = (int)r;
    return RC_OK;
out:
    if (txn) mdb_txn_abort(txn);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* producers                                                                                       */

static int is_full_now(evstore *st)
{
    if (!atomic_load_explicit(&st->full, memory_order_acquire)) return 0;
    return clock_mono_ns() - ctr_get(&st->full_at_ns) < EVS_FULL_RETRY_NS;
}

#define STR_OK(s, lo) ((s).n + 1 > (size_t)(lo) && (s).n <= EVS_ID_MAX && ((s).p || (s).n == 0))

int evstore_impression(evstore *st, const ev_impression *imp)
{
    if (!st || !imp) return rc_error(RC_EINVAL, "evstore_impression: NULL argument");
    const char *bad = NULL;
    if (!STR_OK(imp->request_id, 1)) bad = "request_id";
    else if (!STR_OK(imp->unit, 1)) bad = "unit";
    else if (!STR_OK(imp->session, 0)) bad = "session";
    else if (!STR_OK(imp->model, 0)) bad = "model";
    else if (!STR_OK(imp->version, 0)) bad = "version";
    else if (imp->n_items < 0 || imp->n_items > EVSTORE_MAX_ITEMS || (imp->n_items && !imp->items)) bad = "items";
    else if (imp->run < 0 || imp->run >= EVSTORE_MAX_RUNS || !st->runs[imp->run].used) bad = "run";
    else if (imp->arm < 0 || imp->arm >= st->runs[imp->run].n_arms) bad = "arm";
    else if (!isfinite(imp->t) || imp->t < 0 || imp->t > 1e12) bad = "t";
    /* the rows: left out (the impression stored without them, counted) when over their bounds */
    int has_rows = !bad && imp->row_header.n > 0 && imp->rows != NULL && !imp->rows_skipped;
    int compact = has_rows && imp->ctx_row.p != NULL;
    size_t rows_need = 0, rows_max = st->rec_max / 4 < EVSTORE_ROWS_MAX ? st->rec_max / 4 : EVSTORE_ROWS_MAX;
    if (has_rows) {
        rows_need = 4 + imp->row_header.n + (compact ? 4 + imp->ctx_row.n : 0);
        if (!imp->row_header.p || imp->row_header.n > EVS_ROW_MAX || imp->ctx_row.n > EVS_ROW_MAX) has_rows = 0;
        for (int i = 0; has_rows && i < imp->n_items && rows_need <= rows_max; i++) {
            if (imp->rows[i].n > EVS_ROW_MAX || (imp->rows[i].n && !imp->rows[i].p)) has_rows = 0;
            rows_need += 4 + imp->rows[i].n;
        }
        if (rows_need > rows_max) has_rows = 0;
    }
    int rows_left_out = !has_rows && (imp->rows_skipped || (imp->row_header.n > 0 && imp->rows != NULL));
    compact &= has_rows;
    size_t need = 1 + 8 + 4 + 4 + 2 + 5 * 2 + imp->request_id.n + imp->unit.n + imp->session.n + imp->model.n +
                  imp->version.n + (has_rows ? rows_need : 4);
    for (int i = 0; !bad && i < imp->n_items; i++) {
        if (!STR_OK(imp->items[i], 1)) bad = "items[]";
        need += 2 + imp->items[i].n;
    }
    size_t rec = (EVS_HDR + need + 7) & ~(size_t)7;
    if (!bad && rec > st->rec_max) bad = "size";
    if (bad) {
        ctr_add(&st->m_dropped[DR_INVALID], 1);
        return rc_error(RC_EINVAL, "impression: field '%s' out of its bounds (record of %zu bytes)", bad, need);
    }
    if (is_full_now(st)) {
        ctr_add(&st->m_dropped[DR_STORE_FULL], 1);
        EVS_WARN(st, "state folder %s is full: impressions dropped (recd_events_dropped_total)", st->dir);
        return rc_error(RC_EFULL, "state folder %s is full", st->dir);
    }
    pthread_mutex_lock(&st->mu);
    if (st->closing) {
        pthread_mutex_unlock(&st->mu);
        return rc_error(RC_ESTATE, "event store %s is closing", st->dir);
    }
    size_t at, waste = 0;
    if (st->ring_used == 0) st->ring_head = st->ring_tail = 0;
    if (st->ring_head >= st->ring_tail && !(st->ring_used && st->ring_head == st->ring_tail)) {
        size_t end = st->ring_cap - st->ring_head;
        if (rec <= end) at = st->ring_head;
        else if (rec <= st->ring_tail) {
            waste = end;
            at = 0;
        } else at = SIZE_MAX;
    } else {
        at = rec <= st->ring_tail - st->ring_head && st->ring_used < st->ring_cap ? st->ring_head : SIZE_MAX;
    }
    if (at == SIZE_MAX) {
        pthread_mutex_unlock(&st->mu);
        ctr_add(&st->m_dropped[DR_QUEUE_FULL], 1);
        EVS_WARN(st, "state folder %s: the impression queue (%zu bytes) is full: impressions dropped", st->dir,
                 st->ring_cap);
        return rc_error(RC_EFULL, "event store %s: the impression queue is full", st->dir);
    }
    if (waste >= EVS_HDR) memset(st->ring + st->ring_head, 0, 4); /* skip marker */
    uint8_t *p = st->ring + at;
    uint32_t len32 = (uint32_t)rec, zero = 0;
    uint64_t seq = st->qseq++;
    memcpy(p, &len32, 4);
    memcpy(p + 4, &zero, 4);
    memcpy(p + 8, &seq, 8);
    evs_wr w = {p + EVS_HDR};
    w_u8(&w, 'I');
    w_f64(&w, imp->t);
    w_u32(&w, imp->latency_us);
    w_u8(&w, (unsigned)imp->run);
    w_u8(&w, (unsigned)imp->arm);
    w_u8(&w, imp->fallback ? 1 : 0);
    w_u8(&w, compact ? 2 : has_rows ? 1 : 0);
    w_u16(&w, (size_t)imp->n_items);
    w_str16(&w, imp->request_id);
    w_str16(&w, imp->unit);
    w_str16(&w, imp->session);
    w_str16(&w, imp->model);
    w_str16(&w, imp->version);
    w_str32(&w, has_rows ? imp->row_header : (api_str){NULL, 0});
    if (compact) w_str32(&w, imp->ctx_row);
    for (int i = 0; i < imp->n_items; i++) w_str16(&w, imp->items[i]);
    if (has_rows)
        for (int i = 0; i < imp->n_items; i++) w_str32(&w, imp->rows[i]);
    /* the true payload length goes in the second word (the first is the ring stride) */
    uint32_t plen = (uint32_t)(w.p - (p + EVS_HDR));
    memcpy(p + 4, &plen, 4);
    st->ring_head = (at + rec) % st->ring_cap;
    st->ring_used += rec + waste;
    if (st->ring_nrec++ == 0) {
        st->ring_first_ns = clock_mono_ns();
        pthread_cond_signal(&st->cv);
    }
    atomic_store_explicit(&st->m_queue_bytes, st->ring_used, memory_order_relaxed);
    pthread_mutex_unlock(&st->mu);
    if (rows_left_out) ctr_add(&st->m_rows_skipped, 1);
    return RC_OK;
}

int evstore_submit(evstore *st, ev_batch *b)
{
    if (!st || !b || !b->done || b->n < 0 || b->n > EVS_MAX_BATCH || (b->n && !b->ev) || b->unknown_cap < 0 ||
        (b->unknown_cap && !b->unknown))
        return rc_error(RC_EINVAL, "evstore_submit: a NULL or malformed batch");
    for (int i = 0; i < b->n; i++) {
        const ev_event *e = &b->ev[i];
        const char *bad = NULL;
        if (e->type < EV_IMPRESSION || e->type > EV_ACQUISITION) bad = "type";
        else if (!STR_OK(e->request_id, 1)) bad = "request_id";
        else if (!STR_OK(e->item_id, 1)) bad = "item_id";
        else if (!STR_OK(e->event_id, 0)) bad = "event_id";
        else if (!isfinite(e->value) || fabs(e->value) > 1e15) bad = "value";
        else if (!isfinite(e->t) || e->t < 0 || e->t > 1e12) bad = "t";
        if (bad) {
            ctr_add(&st->m_refused[RF_INVALID], (uint64_t)b->n);
            return rc_error(RC_EINVAL, "events[%d].%s is out of its bounds", i, bad);
        }
    }
    b->status = 0;
    b->stored = b->duplicates = b->n_unknown = 0;
    b->detail[0] = '\0';
    b->next_ = NULL;
    if (is_full_now(st)) {
        ctr_add(&st->m_refused[RF_FULL], (uint64_t)b->n);
        EVS_WARN(st, "state folder %s is full: event batches refused (recd_events_refused_total)", st->dir);
        return rc_error(RC_EFULL, "the state folder is full");
    }
    pthread_mutex_lock(&st->mu);
    if (st->closing) {
        pthread_mutex_unlock(&st->mu);
        ctr_add(&st->m_refused[RF_CLOSING], (uint64_t)b->n);
        return rc_error(RC_ESTATE, "the event store is closing");
    }
    b->seq_ = st->qseq++;
    if (st->bq_tail) st->bq_tail->next_ = b;
    else st->bq_head = b;
    st->bq_tail = b;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return RC_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* the writer                                                                                      */

typedef struct cycle {
    MDB_txn *txn;
    uint64_t committed[CM_N], dups, dup_req, n_imp;
    int fatal;       /* an LMDB error: the transaction is aborted */
    int mrc;
} cycle;

static arm_work *arm_get(evstore *st, cycle *c, int run, int arm)
{
    int idx = run * EVSTORE_MAX_ARMS + arm;
    arm_work *w = &st->aw[idx];
    if (w->loaded) return w;
    uint8_t kb[2] = {(uint8_t)run, (uint8_t)arm};
    MDB_val k = {2, kb}, v;
    memset(w, 0, sizeof *w);
    int mrc = mdb_get(c->txn, st->db_arms, &k, &v);
    if (mrc == 0 && v.mv_size == sizeof w->r) memcpy(&w->r, v.mv_data, sizeof w->r);
    else if (mrc != 0 && mrc != MDB_NOTFOUND) {
        c->fatal = 1;
        c->mrc = mrc;
    }
    w->loaded = 1;
    st->touched[st->n_touched++] = idx;
    return w;
}

static void multi_inc(evstore *st, cycle *c, int run)
{
    if (!st->multi_state[run]) {
        uint8_t kb[2] = {(uint8_t)run, EVS_MULTI_ARM};
        MDB_val k = {2, kb}, v;
        st->multi[run] = 0;
        if (mdb_get(c->txn, st->db_arms, &k, &v) == 0 && v.mv_size == 8) memcpy(&st->multi[run], v.mv_data, 8);
    }
    st->multi[run]++;
    st->multi_state[run] = 2;
}

/* The unit's counters in (run, arm): read, changed by (dn, da, dc, dv), written; the arm's sums move. */
static int unit_update(evstore *st, cycle *c, int run, int arm, api_str unit, double dn, double da, double dc,
                       double dv, arm_work *w)
{
    uint8_t kb[2 + EVS_ID_MAX];
    kb[0] = (uint8_t)run;
    kb[1] = (uint8_t)arm;
    memcpy(kb + 2, unit.p, unit.n);
    MDB_val k = {2 + unit.n, kb}, v;
    double u0[4] = {0, 0, 0, 0}, u1[4];
    int mrc = mdb_get(c->txn, st->db_units, &k, &v);
    int fresh = mrc == MDB_NOTFOUND;
    if (mrc == 0 && v.mv_size == sizeof u0) memcpy(u0, v.mv_data, sizeof u0);
    else if (mrc && !fresh) return mrc;
    u1[0] = u0[0] + dn;
    u1[1] = u0[1] + da;
    u1[2] = u0[2] + dc;
    u1[3] = u0[3] + dv;
    v.mv_data = u1;
    v.mv_size = sizeof u1;
    if ((mrc = mdb_put(c->txn, st->db_units, &k, &v, 0))) return mrc;
    ab_sums_update(&w->r.s, fresh, u0[0], u0[1], u0[2], u0[3], u1[0], u1[1], u1[2], u1[3]);
    return 0;
}

/* Add the transaction's item counts to db_items (an item new to its arm counts in distinct_items) and
 * empty the table. 0 or an LMDB error. */
static int items_flush(evstore *st, cycle *c)
{
    int mrc = 0;
    for (int s = 0; st->ia_n && s < EVS_IA_CAP; s++) {
        item_agg *e = &st->ia[s];
        if (!e->item) continue;
        if (!mrc) {
            uint8_t ib[2 + EVS_ID_MAX];
            ib[0] = e->run;
            ib[1] = e->arm;
            memcpy(ib + 2, e->item, e->n);
            MDB_val k = {2 + (size_t)e->n, ib}, v;
            uint64_t cnt = 0;
            mrc = mdb_get(c->txn, st->db_items, &k, &v);
            if (mrc == 0 && v.mv_size == 8) memcpy(&cnt, v.mv_data, 8);
            else if (mrc == MDB_NOTFOUND) {
                arm_work *aw = arm_get(st, c, e->run, e->arm);
                if (c->fatal) mrc = c->mrc;
                else {
                    aw->r.distinct_items++;
                    mrc = 0;
                }
            }
            if (!mrc) {
                cnt += e->cnt;
                v.mv_data = &cnt;
                v.mv_size = 8;
                mrc = mdb_put(c->txn, st->db_items, &k, &v, 0);
            }
        }
        e->item = NULL;
        st->ia_n--;
    }
    st->ia_n = 0;
    return mrc;
}

/* Count one showing of item in (run, arm) in the transaction's table. 0 or an LMDB error (a flush of a
 * full table). */
static int item_add(evstore *st, cycle *c, int run, int arm, api_str it)
{
    uint64_t h = hash64(it.p, it.n, (uint64_t)run << 8 | (uint64_t)arm);
    for (;;) {
        size_t s = (size_t)h & (EVS_IA_CAP - 1);
        for (;; s = (s + 1) & (EVS_IA_CAP - 1)) {
            item_agg *e = &st->ia[s];
            if (!e->item) break;
            if (e->h == h && e->n == it.n && e->run == run && e->arm == arm && memcmp(e->item, it.p, it.n) == 0) {
                e->cnt++;
                return 0;
            }
        }
        if (st->ia_n < EVS_IA_MAX) {
            item_agg *e = &st->ia[s];
            e->item = it.n ? (const uint8_t *)it.p : (const uint8_t *)"";
            e->h = h;
            e->n = (uint16_t)it.n;
            e->run = (uint8_t)run;
            e->arm = (uint8_t)arm;
            e->cnt = 1;
            st->ia_n++;
            return 0;
        }
        int mrc = items_flush(st, c);
        if (mrc) return mrc;
    }
}

static void log_key(uint8_t k[16], double t, uint64_t seq)
{
    evs_be64(k, (uint64_t)llround(t * 1e6));
    evs_be64(k + 8, seq);
}

static int apply_imp(evstore *st, cycle *c, const uint8_t *rec, size_t n)
{
    evs_imp im;
    if (evs_decode_imp(rec + 1, n - 1, &im) != 0) return MDB_CORRUPTED; /* never: we wrote it */
    uint8_t lk[16];
    log_key(lk, im.t, st->log_seq++);
    uint8_t rv[16 + 2 + 2 + EVS_ID_MAX + 2 + EVS_ID_MAX];
    evs_wr w = {rv};
    w_bytes(&w, lk, 16);
    w_u8(&w, (unsigned)im.run);
    w_u8(&w, (unsigned)im.arm);
    w_str16(&w, im.unit);
    w_str16(&w, im.session);
    MDB_val k = {im.request_id.n, (void *)im.request_id.p}, v = {(size_t)(w.p - rv), rv};
    int mrc = mdb_put(c->txn, st->db_req, &k, &v, MDB_NOOVERWRITE);
    if (mrc == MDB_KEYEXIST) {
        c->dup_req++;
        return 0;
    }
    if (mrc) return mrc;
    k.mv_data = lk;
    k.mv_size = 16;
    v.mv_data = (void *)rec;
    v.mv_size = n;
    if ((mrc = mdb_put(c->txn, st->db_log, &k, &v, 0))) return mrc;
    arm_work *aw = arm_get(st, c, im.run, im.arm);
    if (c->fatal) return c->mrc;
    if ((mrc = unit_update(st, c, im.run, im.arm, im.unit, 1, 0, 0, 0, aw))) return mrc;
    /* unit -> arms mask */
    uint8_t ub[1 + EVS_ID_MAX];
    ub[0] = (uint8_t)im.run;
    memcpy(ub + 1, im.unit.p, im.unit.n);
    k.mv_data = ub;
    k.mv_size = 1 + im.unit.n;
    uint8_t mask = 0, bit = (uint8_t)(1u << im.arm);
    mrc = mdb_get(c->txn, st->db_unitarm, &k, &v);
    if (mrc == 0 && v.mv_size == 1) mask = *(const uint8_t *)v.mv_data;
    else if (mrc && mrc != MDB_NOTFOUND) return mrc;
    if (!(mask & bit)) {
        if (mask && !(mask & (mask - 1))) multi_inc(st, c, im.run); /* second arm: counted once */
        uint8_t nm = mask | bit;
        v.mv_data = &nm;
        v.mv_size = 1;
        if ((mrc = mdb_put(c->txn, st->db_unitarm, &k, &v, 0))) return mrc;
    }
    /* items shown: counted in the transaction's table, written by items_flush */
    evs_rd r = {im.items_at, rec + n, 0};
    for (int i = 0; i < im.n_items; i++) {
        api_str it = evs_str16(&r);
        if (r.bad || it.n > EVS_ID_MAX) return MDB_CORRUPTED;
        if ((mrc = item_add(st, c, im.run, im.arm, it))) return mrc;
    }
    aw->r.items_shown += (uint64_t)im.n_items;
    if (im.fallback) aw->r.fallbacks++;
    aw->r.lat_hist[lat_bucket(im.latency_us)]++;
    if (aw->r.first_t == 0 || im.t < aw->r.first_t) aw->r.first_t = im.t;
    if (im.t > aw->r.last_t) aw->r.last_t = im.t;
    if (im.t > aw->touch_t) aw->touch_t = im.t;
    c->committed[CM_IMP]++;
    return 0;
}

/* The request's impression: run, arm, unit and session copied out (LMDB's memory moves on writes). */
typedef struct req_info {
    uint8_t lk[16];
    int run, arm;
    char unit[EVS_ID_MAX], session[EVS_ID_MAX];
    api_str u, s;
} req_info;

static int req_lookup(evstore *st, MDB_txn *txn, api_str request_id, req_info *ri)
{
    MDB_val k = {request_id.n, (void *)request_id.p}, v;
    int mrc = mdb_get(txn, st->db_req, &k, &v);
    if (mrc || !ri) return mrc;
    evs_rd r = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, 0};
    const void *lk = evs_take(&r, 16);
    ri->run = evs_u8(&r);
    ri->arm = evs_u8(&r);
    api_str u = evs_str16(&r), s = evs_str16(&r);
    if (r.bad || u.n > EVS_ID_MAX || s.n > EVS_ID_MAX || ri->run >= EVSTORE_MAX_RUNS || ri->arm >= EVSTORE_MAX_ARMS)
        return MDB_CORRUPTED;
    memcpy(ri->lk, lk, 16);
    memcpy(ri->unit, u.p, u.n);
    memcpy(ri->session, s.p, s.n);
    ri->u = (api_str){ri->unit, u.n};
    ri->s = (api_str){ri->session, s.n};
    return 0;
}

/* Validate then apply one batch. Returns an LMDB error (fatal), else 0 with b->status set. */
static int apply_batch(evstore *st, cycle *c, ev_batch *b)
{
    int mrc, first = -1;
    for (int i = 0; i < b->n; i++) {
        mrc = req_lookup(st, c->txn, b->ev[i].request_id, NULL);
        if (mrc == MDB_NOTFOUND) {
            if (b->n_unknown < b->unknown_cap) b->unknown[b->n_unknown] = i;
            if (first < 0) first = i;
            b->n_unknown++;
        } else if (mrc) return mrc;
    }
    if (b->n_unknown) {
        b->status = 422;
        ctr_add(&st->m_refused[RF_UNKNOWN], (uint64_t)b->n); /* final: a later failure of the cycle keeps 422 */
        snprintf(b->detail, sizeof b->detail,
                 "%d of %d events name an unknown request_id (first: events[%d]); nothing was stored", b->n_unknown,
                 b->n, first);
        return 0;
    }
    for (int i = 0; i < b->n; i++) {
        const ev_event *e = &b->ev[i];
        req_info ri;
        if ((mrc = req_lookup(st, c->txn, e->request_id, &ri))) return mrc;
        if (!st->runs[ri.run].used || ri.arm >= st->runs[ri.run].n_arms) return MDB_CORRUPTED;
        uint8_t lk[16], dk[16];
        log_key(lk, e->t, st->log_seq++);
        evs_dedup_key(e->type, e->request_id, e->item_id, e->event_id, dk);
        MDB_val k = {16, dk}, v = {16, lk};
        mrc = mdb_put(c->txn, st->db_dedup, &k, &v, MDB_NOOVERWRITE);
        if (mrc == MDB_KEYEXIST) {
            b->duplicates++;
            c->dups++;
            continue;
        }
        if (mrc) return mrc;
        uint8_t rec[1 + 3 + 16 + 5 * (2 + EVS_ID_MAX)];
        evs_wr w = {rec};
        w_u8(&w, 'E');
        w_u8(&w, (unsigned)e->type);
        w_u8(&w, (unsigned)ri.run);
        w_u8(&w, (unsigned)ri.arm);
        w_f64(&w, e->value);
        w_f64(&w, e->t);
        w_str16(&w, e->request_id);
        w_str16(&w, e->item_id);
        w_str16(&w, e->event_id);
        w_str16(&w, ri.u);
        w_str16(&w, ri.s);
        k.mv_data = lk;
        k.mv_size = 16;
        v.mv_data = rec;
        v.mv_size = (size_t)(w.p - rec);
        if ((mrc = mdb_put(c->txn, st->db_log, &k, &v, 0))) return mrc;
        arm_work *aw = arm_get(st, c, ri.run, ri.arm);
        if (c->fatal) return c->mrc;
        if (e->type == EV_CLICK) {
            if ((mrc = unit_update(st, c, ri.run, ri.arm, ri.u, 0, 0, 1, 0, aw))) return mrc;
            c->committed[CM_CLICK]++;
        } else if (e->type == EV_ACQUISITION) {
            if ((mrc = unit_update(st, c, ri.run, ri.arm, ri.u, 0, 1, 0, e->value, aw))) return mrc;
            c->committed[CM_ACQ]++;
        } else {
            aw->r.impression_events++;
            c->committed[CM_CLIENT_IMP]++;
        }
        if (e->t > aw->touch_t) aw->touch_t = e->t;
        b->stored++;
    }
    return 0;
}

/* Delete up to max log records older than the retention, with their request and dedup keys. */
static int retention_slice(evstore *st, cycle *c, int max, int *deleted)
{
    *deleted = 0;
    if (!(st->cfg.retention_s > 0)) return 0;
    double cut = clock_wall_s() - st->cfg.retention_s;
    if (cut <= 0) return 0;
    uint64_t cut_us = (uint64_t)(cut * 1e6);
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(c->txn, st->db_log, &cur);
    if (mrc) return mrc;
    for (int i = 0; i < max; i++) {
        MDB_val k, v;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (mrc == MDB_NOTFOUND) {
            mrc = 0;
            break;
        }
        if (mrc) break;
        if (k.mv_size != 16) {
            mrc = MDB_CORRUPTED;
            break;
        }
        if (evs_rd_be64(k.mv_data) >= cut_us) break;
        uint8_t lk[16];
        memcpy(lk, k.mv_data, 16);
        const uint8_t *rec = v.mv_data;
        uint8_t idx_key[EVS_ID_MAX + 16];
        size_t idx_n = 0;
        MDB_dbi idx_db = 0;
        if (v.mv_size > 1 && rec[0] == 'I') {
            evs_imp im;
            if (evs_decode_imp(rec + 1, v.mv_size - 1, &im) == 0 && im.request_id.n <= EVS_ID_MAX) {
                memcpy(idx_key, im.request_id.p, im.request_id.n);
                idx_n = im.request_id.n;
                idx_db = st->db_req;
            }
        } else if (v.mv_size > 1 && rec[0] == 'E') {
            evs_ev ev;
            if (evs_decode_ev(rec + 1, v.mv_size - 1, &ev) == 0) {
                evs_dedup_key(ev.type, ev.request_id, ev.item_id, ev.event_id, idx_key);
                idx_n = 16;
                idx_db = st->db_dedup;
            }
        }
        if ((mrc = mdb_cursor_del(cur, 0))) break;
        if (idx_n) {
            MDB_val ik = {idx_n, idx_key}, iv;
            mrc = mdb_get(c->txn, idx_db, &ik, &iv);
            if (mrc == 0 && iv.mv_size >= 16 && memcmp(iv.mv_data, lk, 16) == 0) mrc = mdb_del(c->txn, idx_db, &ik, NULL);
            if (mrc == MDB_NOTFOUND) mrc = 0;
            if (mrc) break;
        }
        (*deleted)++;
    }
    mdb_cursor_close(cur);
    return mrc;
}

/* Write the touched arms' reports and history points, the multi-arm counts and the log sequence. */
static int flush_arms(evstore *st, cycle *c)
{
    int mrc;
    for (int i = 0; i < st->n_touched; i++) {
        int idx = st->touched[i];
        arm_work *w = &st->aw[idx];
        uint8_t kb[10] = {(uint8_t)(idx / EVSTORE_MAX_ARMS), (uint8_t)(idx % EVSTORE_MAX_ARMS)};
        MDB_val k = {2, kb}, v = {sizeof w->r, &w->r};
        if ((mrc = mdb_put(c->txn, st->db_arms, &k, &v, 0))) return mrc;
        double b = floor(w->touch_t / st->cfg.history_s);
        evs_be64(kb + 2, b > 0 ? (uint64_t)b : 0);
        k.mv_size = 10;
        v.mv_data = &w->r.s;
        v.mv_size = sizeof w->r.s;
        if ((mrc = mdb_put(c->txn, st->db_hist, &k, &v, 0))) return mrc;
    }
    for (int r = 0; r < EVSTORE_MAX_RUNS; r++)
        if (st->multi_state[r] == 2) {
            uint8_t kb[2] = {(uint8_t)r, EVS_MULTI_ARM};
            MDB_val k = {2, kb}, v = {8, &st->multi[r]};
            if ((mrc = mdb_put(c->txn, st->db_arms, &k, &v, 0))) return mrc;
        }
    MDB_val k = {3, "seq"}, v = {8, &st->log_seq};
    return mdb_put(c->txn, st->db_meta, &k, &v, 0);
}

/* The next ring record from *off: its payload (p, n) and seq; *off and *consumed advance. */
static const uint8_t *ring_next(evstore *st, size_t *off, size_t *consumed, size_t *n, uint64_t *seq)
{
    uint32_t len;
    if (st->ring_cap - *off < EVS_HDR || (memcpy(&len, st->ring + *off, 4), len == 0)) {
        *consumed += st->ring_cap - *off;
        *off = 0;
        memcpy(&len, st->ring, 4);
    }
    const uint8_t *p = st->ring + *off;
    uint32_t plen;
    memcpy(&plen, p + 4, 4);
    memcpy(seq, p + 8, 8);
    *n = plen;
    *off = (*off + len) % st->ring_cap;
    *consumed += len;
    return p + EVS_HDR;
}

/* One cycle: n_rec ring records from off and the batch list bl, in one transaction. */
/* Bytes of the map in use now: pages up to the last one written minus the pages on LMDB's free list
 * (reused before the file grows). The free list is walked in a read transaction: a few records. */
static uint64_t map_used(evstore *st)
{
    MDB_envinfo info;
    if (mdb_env_info(st->env, &info) != 0) return 0;
    uint64_t pages = (uint64_t)info.me_last_pgno + 1, freed = 0;
    MDB_txn *txn;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) == 0) {
        MDB_cursor *cur;
        if (mdb_cursor_open(txn, 0 /* FREE_DBI */, &cur) == 0) {
            MDB_val k, v;
            while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
                if (v.mv_size >= sizeof(size_t)) freed += *(const size_t *)v.mv_data; /* an IDL: count first */
            mdb_cursor_close(cur);
        }
        mdb_txn_abort(txn);
    }
    return (freed < pages ? pages - freed : 0) * st->psize;
}

/* 1 when new records must wait: the map is over EVS_HIGH_WATER in use (measured every EVS_USAGE_NS, or
 * at once while refusing, so that writing resumes as soon as retention freed room, or while the file
 * itself is past the mark: then every cycle measures, so that fast commits cannot run the map full
 * between two measures - a map run full leaves no room even for retention's deletes). */
static int over_high_water(evstore *st, int refusing)
{
    uint64_t now = clock_mono_ns();
    MDB_envinfo info;
    int near = mdb_env_info(st->env, &info) != 0 ||
               (double)((uint64_t)info.me_last_pgno + 1) * (double)st->psize > EVS_HIGH_WATER * (double)st->cfg.max_bytes;
    if (refusing || near || now - st->usage_at_ns >= EVS_USAGE_NS) {
        atomic_store_explicit(&st->used_bytes, map_used(st), memory_order_relaxed);
        st->usage_at_ns = now;
    }
    return (double)atomic_load_explicit(&st->used_bytes, memory_order_relaxed) >
           EVS_HIGH_WATER * (double)st->cfg.max_bytes;
}

static void writer_cycle(evstore *st, size_t off, uint32_t n_rec, ev_batch *bl, size_t *consumed, int ret_due)
{
    cycle c;
    memset(&c, 0, sizeof c);
    uint64_t t0 = clock_mono_ns();
    int was_full = atomic_load(&st->full);
    for (int i = 0; i < st->n_touched; i++) st->aw[st->touched[i]].loaded = 0;
    st->n_touched = 0;
    memset(st->multi_state, 0, sizeof st->multi_state);
    int deleted = 0, mrc = 0;
    int slice = st->ret_slice > 0 ? st->ret_slice : EVS_SLICE;
    if (ret_due) {
        /* Retention first, in its own transaction: its deletes must not be rolled back with records that
         * do not fit, and they run in the room the high-water mark keeps free. A slice that finds no room
         * even so (a map run full by an older version, or a commit past the mark) is retried smaller, down
         * to one record, then grows back. */
        if ((mrc = mdb_txn_begin(st->env, NULL, 0, &c.txn)) == 0) {
            mrc = retention_slice(st, &c, slice, &deleted);
            if (mrc == 0 && deleted) mrc = mdb_txn_commit(c.txn);
            else mdb_txn_abort(c.txn);
            c.txn = NULL;
        }
        if (mrc) {
            deleted = 0;
            if (mrc == MDB_MAP_FULL && slice > 1) st->ret_slice = slice > 4 ? slice / 4 : 1;
            EVS_WARN(st, "state folder %s: retention failed (%d records at once): %s", st->dir, slice,
                     mdb_strerror(mrc));
        } else {
            ctr_add(&st->m_expired, (uint64_t)deleted);
            if (deleted >= slice && slice < EVS_SLICE) st->ret_slice = slice * 2 < EVS_SLICE ? slice * 2 : EVS_SLICE;
        }
    }
    /* when retention is due again: at once while it deletes whole slices (or shrank after a full map) */
    uint64_t ret_next = deleted >= slice || (ret_due && mrc == MDB_MAP_FULL && slice > 1) ? 0 : 1000000000ull;
    if (n_rec == 0 && !bl) { /* a retention cycle only */
        if (ret_due) st->next_retention_ns = clock_mono_ns() + ret_next;
        if (was_full && deleted && !over_high_water(st, 1)) {
            atomic_store(&st->full, 0);
            log_info("state folder %s: room again after a full map (%d old records deleted)", st->dir, deleted);
        }
        return;
    }
    if (over_high_water(st, was_full)) {
        c.fatal = 1;
        c.mrc = MDB_MAP_FULL;
        c.txn = NULL;
    } else if ((mrc = mdb_txn_begin(st->env, NULL, 0, &c.txn))) {
        c.fatal = 1;
        c.mrc = mrc;
        c.txn = NULL;
    }
    /* merge by arrival order */
    size_t roff = off;
    uint32_t left = n_rec;
    ev_batch *b = bl;
    size_t rn = 0;
    uint64_t rseq = 0;
    const uint8_t *rp = left ? ring_next(st, &roff, consumed, &rn, &rseq) : NULL;
    while (rp || b) {
        if (rp && (!b || rseq < b->seq_)) {
            c.n_imp++;
            if (!c.fatal && (mrc = apply_imp(st, &c, rp, rn))) {
                c.fatal = 1;
                c.mrc = mrc;
            }
            rp = --left ? ring_next(st, &roff, consumed, &rn, &rseq) : NULL;
        } else {
            if (!c.fatal && (mrc = apply_batch(st, &c, b))) {
                c.fatal = 1;
                c.mrc = mrc;
            }
            b = b->next_;
        }
    }
    int did_work = c.n_imp || bl;
    if (!c.fatal && (mrc = items_flush(st, &c))) {
        c.fatal = 1;
        c.mrc = mrc;
    }
    if (!c.fatal && did_work && (mrc = flush_arms(st, &c))) {
        c.fatal = 1;
        c.mrc = mrc;
    }
    if (c.txn) {
        if (!c.fatal && did_work) {
            mrc = mdb_txn_commit(c.txn);
            if (mrc) {
                c.fatal = 1;
                c.mrc = mrc;
            }
        } else mdb_txn_abort(c.txn);
    }
    uint64_t dt = clock_mono_ns() - t0;
    if (!c.fatal && did_work) {
        for (int i = 0; i < CM_N; i++) ctr_add(&st->m_committed[i], c.committed[i]);
        ctr_add(&st->m_dups, c.dups);
        ctr_add(&st->m_dropped[DR_DUP_REQ], c.dup_req);
        ctr_add(&st->m_commits, 1);
        ctr_add(&st->m_commit_ns, dt);
        int hb = 0;
        while (hb < EVS_COMMIT_BUCKETS - 1 && (double)dt * 1e-9 > commit_le[hb]) hb++;
        ctr_add(&st->m_commit_hist[hb], 1);
        if (c.dup_req) EVS_WARN(st, "state folder %s: %llu impressions with an already logged request_id dropped",
                                st->dir, (unsigned long long)c.dup_req);
        if (was_full) {
            atomic_store(&st->full, 0);
            log_info("state folder %s: writing again after a full map (%d old records deleted)", st->dir, deleted);
        }
        if (ret_due) st->next_retention_ns = clock_mono_ns() + ret_next;
    } else if (c.fatal) {
        int full = c.mrc == MDB_MAP_FULL;
        ctr_add(&st->m_commit_fail, 1);
        ctr_add(&st->m_dropped[full ? DR_STORE_FULL : DR_ERROR], c.n_imp);
        for (ev_batch *x = bl; x; x = x->next_) {
            if (x->status == 422) continue;
            ctr_add(&st->m_refused[full ? RF_FULL : RF_ERROR], (uint64_t)x->n);
            x->status = 503;
            x->stored = x->duplicates = 0;
            if (full)
                snprintf(x->detail, sizeof x->detail,
                         "the state folder is full (its max_bytes bound): nothing was stored; retry later");
            else
                snprintf(x->detail, sizeof x->detail, "the event store could not write: %s", mdb_strerror(c.mrc));
        }
        if (full) {
            atomic_store(&st->full_at_ns, clock_mono_ns());
            atomic_store(&st->full, 1);
            st->next_retention_ns = clock_mono_ns() + 100000000ull;
            EVS_WARN(st, "state folder %s is full (max_bytes %llu): %llu impressions dropped, batches answered 503",
                     st->dir, (unsigned long long)st->cfg.max_bytes, (unsigned long long)c.n_imp);
        } else {
            EVS_WARN(st, "state folder %s: write failed: %s", st->dir, mdb_strerror(c.mrc));
            if (ret_due) st->next_retention_ns = clock_mono_ns() + 1000000000ull;
        }
    } else if (ret_due) {
        st->next_retention_ns = clock_mono_ns() + 1000000000ull;
    }
    for (int i = 0; i < st->n_touched; i++) st->aw[st->touched[i]].loaded = 0;
    st->n_touched = 0;
    if (st->ia_n) { /* a failed transaction: its item counts go with it (they point into the ring) */
        memset(st->ia, 0, EVS_IA_CAP * sizeof *st->ia);
        st->ia_n = 0;
    }
    /* the rest of the ring records (when a record failed to decode the loop above walked them all) */
    while (left) rp = --left ? ring_next(st, &roff, consumed, &rn, &rseq) : NULL;
}

static void *writer_main(void *arg)
{
    evstore *st = arg;
    uint64_t flush_ns = (uint64_t)st->cfg.flush_ms * 1000000ull;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        uint64_t now = clock_mono_ns();
        int have_batches = st->bq_head != NULL;
        int imp_due = st->ring_nrec > 0 && (st->stop || now >= st->ring_first_ns + flush_ns);
        int ret_on = st->cfg.retention_s > 0 || atomic_load(&st->full);
        int ret_due = ret_on && now >= st->next_retention_ns && !st->stop;
        if (!have_batches && !imp_due && !ret_due) {
            if (st->stop) break;
            uint64_t dl = UINT64_MAX;
            if (st->ring_nrec) dl = st->ring_first_ns + flush_ns;
            if (ret_on && st->next_retention_ns < dl) dl = st->next_retention_ns;
            if (dl == UINT64_MAX) pthread_cond_wait(&st->cv, &st->mu);
            else {
                struct timespec ts = {(time_t)(dl / 1000000000ull), (long)(dl % 1000000000ull)};
                pthread_cond_timedwait(&st->cv, &st->mu, &ts);
            }
            continue;
        }
        size_t off = st->ring_tail;
        uint32_t n_rec = st->ring_nrec;
        ev_batch *bl = st->bq_head;
        st->bq_head = st->bq_tail = NULL;
        pthread_mutex_unlock(&st->mu);

        size_t consumed = 0;
        writer_cycle(st, off, n_rec, bl, &consumed, ret_due);

        pthread_mutex_lock(&st->mu);
        st->ring_tail = (off + consumed) % st->ring_cap;
        st->ring_used -= consumed;
        st->ring_nrec -= n_rec;
        if (st->ring_nrec) st->ring_first_ns = clock_mono_ns();
        else st->ring_head = st->ring_tail = st->ring_used = 0;
        atomic_store_explicit(&st->m_queue_bytes, st->ring_used, memory_order_relaxed);
        if (bl && st->sthr_started) {
            /* sync on: the syncer answers them once the commit's meta page is on disk */
            ev_batch *tail = bl;
            while (tail->next_) tail = tail->next_;
            if (st->sq_tail) st->sq_tail->next_ = bl;
            else st->sq_head = bl;
            st->sq_tail = tail;
            pthread_cond_signal(&st->scv);
            bl = NULL;
        }
        pthread_mutex_unlock(&st->mu);
        while (bl) {
            ev_batch *next = bl->next_;
            bl->done(bl);
            bl = next;
        }
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Sync on. The writer commits with MDB_NOMETASYNC: the data pages are flushed (fdatasync) before the
 * meta page that points to them is written, so a power loss at any moment leaves a consistent file,
 * but the last commits' meta pages may still be only in the page cache. The syncer flushes them
 * (mdb_env_sync) and only then answers those commits' batches: an acknowledged event is on disk.
 * Meanwhile the writer builds and commits the next transaction (a pipeline of two: one fdatasync per
 * commit on the writer's path instead of LMDB's two). */
static void *syncer_main(void *arg)
{
    evstore *st = arg;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (!st->sq_head && !st->sstop) pthread_cond_wait(&st->scv, &st->mu);
        if (!st->sq_head) break;
        ev_batch *bl = st->sq_head;
        st->sq_head = st->sq_tail = NULL;
        pthread_mutex_unlock(&st->mu);
        int mrc = mdb_env_sync(st->env, 1);
        if (mrc) EVS_WARN(st, "state folder %s: sync failed: %s", st->dir, mdb_strerror(mrc));
        while (bl) {
            ev_batch *next = bl->next_;
            if (mrc && bl->status == 0) {
                /* committed but maybe not durable: the client retries, the duplicate keys make it safe */
                ctr_add(&st->m_refused[RF_ERROR], (uint64_t)bl->n);
                bl->status = 503;
                snprintf(bl->detail, sizeof bl->detail, "the event store could not sync: %s", mdb_strerror(mrc));
            }
            bl->done(bl);
            bl = next;
        }
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* reads                                                                                           */

int evstore_report(evstore *st, int run, ev_arm_report *arms, int n_arms, uint64_t *multi_arm_units)
{
    if (!st || run < 0 || run >= EVSTORE_MAX_RUNS || !st->runs[run].used)
        return rc_error(RC_ENOTFOUND, "experiment run %d is not declared", run);
    if (n_arms < 0 || (n_arms && !arms)) return rc_error(RC_EINVAL, "evstore_report: bad arms");
    if (n_arms) memset(arms, 0, (size_t)n_arms * sizeof *arms);
    if (multi_arm_units) *multi_arm_units = 0;
    MDB_txn *txn;
    int mrc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (mrc) return evs_mdb_fail(RC_EIO, mrc, "cannot start a read transaction", st->dir);
    for (int a = 0; a < n_arms && a < st->runs[run].n_arms; a++) {
        uint8_t kb[2] = {(uint8_t)run, (uint8_t)a};
        MDB_val k = {2, kb}, v;
        mrc = mdb_get(txn, st->db_arms, &k, &v);
        if (mrc == 0 && v.mv_size == sizeof *arms) memcpy(&arms[a], v.mv_data, sizeof *arms);
        else if (mrc && mrc != MDB_NOTFOUND) {
            mdb_txn_abort(txn);
            return evs_mdb_fail(RC_EIO, mrc, "cannot read the report", st->dir);
        }
    }
    if (multi_arm_units) {
        uint8_t kb[2] = {(uint8_t)run, EVS_MULTI_ARM};
        MDB_val k = {2, kb}, v;
        if (mdb_get(txn, st->db_arms, &k, &v) == 0 && v.mv_size == 8) memcpy(multi_arm_units, v.mv_data, 8);
    }
    mdb_txn_abort(txn);
    return RC_OK;
}

int evstore_history(evstore *st, int run, int arm, ev_point *pts, int cap)
{
    if (!st || run < 0 || run >= EVSTORE_MAX_RUNS || !st->runs[run].used)
        return rc_error(RC_ENOTFOUND, "experiment run %d is not declared", run);
    if (arm < 0 || arm >= st->runs[run].n_arms) return rc_error(RC_EINVAL, "run %d has no arm %d", run, arm);
    if (cap <= 0 || !pts) return 0;
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (mrc) return evs_mdb_fail(RC_EIO, mrc, "cannot start a read transaction", st->dir);
    if ((mrc = mdb_cursor_open(txn, st->db_hist, &cur))) {
        mdb_txn_abort(txn);
        return evs_mdb_fail(RC_EIO, mrc, "cannot read the history", st->dir);
    }
    /* walk back from the first key after (run, arm, *) */
    uint8_t kb[10] = {(uint8_t)run, (uint8_t)arm};
    memset(kb + 2, 0xff, 8);
    MDB_val k = {10, kb}, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (mrc == MDB_NOTFOUND) mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    else if (mrc == 0 && !(k.mv_size == 10 && memcmp(k.mv_data, kb, 10) == 0))
        mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    int n = 0;
    while (mrc == 0 && n < cap) {
        const uint8_t *kp = k.mv_data;
        if (k.mv_size != 10 || kp[0] != run || kp[1] != arm) break;
        ev_point *p = &pts[cap - 1 - n];
        p->t = ((double)evs_rd_be64(kp + 2) + 1) * st->cfg.history_s;
        memset(&p->s, 0, sizeof p->s);
        if (v.mv_size == sizeof p->s) memcpy(&p->s, v.mv_data, sizeof p->s);
        n++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (n < cap) memmove(pts, pts + (cap - n), (size_t)n * sizeof *pts);
    return n;
}

void evstore_render_metrics(sbuf *out, void *arg)
{
    evstore *st = arg;
    if (!st) return;
    sbuf_adds(out, "# HELP recd_events_committed_total Records committed to the state folder, by type.\n"
                   "# TYPE recd_events_committed_total counter\n");
    for (int i = 0; i < CM_N; i++)
        sbuf_printf(out, "recd_events_committed_total{type=\"%s\"} %llu\n", cm_names[i],
                    (unsigned long long)ctr_get(&st->m_committed[i]));
    sbuf_adds(out, "# HELP recd_events_refused_total Client events refused (not stored), by reason.\n"
                   "# TYPE recd_events_refused_total counter\n");
    for (int i = 0; i < RF_N; i++)
        sbuf_printf(out, "recd_events_refused_total{reason=\"%s\"} %llu\n", rf_names[i],
                    (unsigned long long)ctr_get(&st->m_refused[i]));
    sbuf_adds(out, "# HELP recd_events_dropped_total Server impressions not stored, by kind.\n"
                   "# TYPE recd_events_dropped_total counter\n");
    for (int i = 0; i < DR_N; i++)
        sbuf_printf(out, "recd_events_dropped_total{kind=\"%s\"} %llu\n", dr_names[i],
                    (unsigned long long)ctr_get(&st->m_dropped[i]));
    sbuf_printf(out,
                "# HELP recd_events_rows_skipped_total Server impressions stored without their Wide & Deep rows "
                "(over their bound).\n# TYPE recd_events_rows_skipped_total counter\nrecd_events_rows_skipped_total "
                "%llu\n",
                (unsigned long long)ctr_get(&st->m_rows_skipped));
    sbuf_printf(out,
                "# HELP recd_events_duplicates_total Client events acknowledged as duplicates (counted once).\n"
                "# TYPE recd_events_duplicates_total counter\nrecd_events_duplicates_total %llu\n"
                "# HELP recd_events_expired_total Log records deleted by retention.\n"
                "# TYPE recd_events_expired_total counter\nrecd_events_expired_total %llu\n"
                "# HELP recd_events_commits_total Write transactions committed.\n"
                "# TYPE recd_events_commits_total counter\nrecd_events_commits_total %llu\n"
                "# HELP recd_events_commit_failures_total Write transactions that failed (full map, I/O).\n"
                "# TYPE recd_events_commit_failures_total counter\nrecd_events_commit_failures_total %llu\n"
                "# HELP recd_events_commit_seconds Time of one write transaction, commit and sync included.\n"
                "# TYPE recd_events_commit_seconds histogram\n",
                (unsigned long long)ctr_get(&st->m_dups), (unsigned long long)ctr_get(&st->m_expired),
                (unsigned long long)ctr_get(&st->m_commits), (unsigned long long)ctr_get(&st->m_commit_fail));
    uint64_t cum = 0;
    for (int i = 0; i < EVS_COMMIT_BUCKETS; i++) {
        cum += ctr_get(&st->m_commit_hist[i]);
        if (i < EVS_COMMIT_BUCKETS - 1)
            sbuf_printf(out, "recd_events_commit_seconds_bucket{le=\"%g\"} %llu\n", commit_le[i], (unsigned long long)cum);
        else sbuf_printf(out, "recd_events_commit_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    sbuf_printf(out, "recd_events_commit_seconds_sum %.6f\nrecd_events_commit_seconds_count %llu\n",
                (double)ctr_get(&st->m_commit_ns) * 1e-9, (unsigned long long)cum);
    MDB_envinfo info;
    /* in use now (a read transaction: the writer's own measure may be old while it is idle) */
    uint64_t file = 0, used = map_used(st);
    uint64_t judged = atomic_load_explicit(&st->used_bytes, memory_order_relaxed);
    if (mdb_env_info(st->env, &info) == 0) file = ((uint64_t)info.me_last_pgno + 1) * st->psize;
    sbuf_printf(out,
                "# HELP recd_events_state_fill_ratio Share of max_bytes in use as the writer last measured it "
                "(new records are refused above %g).\n"
                "# TYPE recd_events_state_fill_ratio gauge\nrecd_events_state_fill_ratio %.6f\n",
                EVS_HIGH_WATER, st->cfg.max_bytes ? (double)judged / (double)st->cfg.max_bytes : 0.0);
    sbuf_printf(out,
                "# HELP recd_events_state_file_bytes Bytes of the state folder's LMDB file written (high-water mark).\n"
                "# TYPE recd_events_state_file_bytes gauge\nrecd_events_state_file_bytes %llu\n",
                (unsigned long long)file);
    sbuf_printf(out,
                "# HELP recd_events_state_bytes Bytes of the state in use (file minus LMDB's free pages; new records "
                "stop at 90%% of max_bytes).\n"
                "# TYPE recd_events_state_bytes gauge\nrecd_events_state_bytes %llu\n"
                "# HELP recd_events_state_max_bytes The state folder's bound (max_bytes).\n"
                "# TYPE recd_events_state_max_bytes gauge\nrecd_events_state_max_bytes %llu\n"
                "# HELP recd_events_full 1 while the state folder is full (batches refused with 503).\n"
                "# TYPE recd_events_full gauge\nrecd_events_full %d\n"
                "# HELP recd_events_queue_bytes Bytes of impressions queued for the writer.\n"
                "# TYPE recd_events_queue_bytes gauge\nrecd_events_queue_bytes %llu\n",
                (unsigned long long)used, (unsigned long long)st->cfg.max_bytes, is_full_now(st),
                (unsigned long long)ctr_get(&st->m_queue_bytes));
}
