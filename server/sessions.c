/* server/sessions.c - sharded LRU + TTL session store (see sessions.h). */
#include "server/sessions.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/sbuf.h"

typedef struct sess {
    struct sess *hnext;      /* hash chain */
    struct sess *prev, *next; /* LRU list: head = most recent */
    uint64_t hash, fp;
    double last;             /* monotonic seconds of the last click */
    float *state;            /* state_n floats */
    size_t state_n;
    uint32_t n_clicks;
    uint16_t seen_head, seen_n; /* ring of max_seen items */
    uint16_t keylen;
    /* then: int32_t seen[max_seen]; char key[keylen+1] */
} sess;

typedef struct shard {
    pthread_mutex_t mu;
    sess **buckets;
    size_t nbuckets; /* power of two */
    sess *head, *tail;
    size_t count, cap;
    char pad[64];
} shard;

struct sessions {
    sessions_cfg cfg;
    int nshards;
    shard *shards;
    _Atomic size_t count;
    _Atomic uint64_t created, evicted_lru, expired_ttl, reset_model;
    _Atomic unsigned sweep_pos;
    uint64_t key[2]; /* SipHash key of the id table, random per process: clients cannot aim at a chain */
};

static int32_t *sess_seen(sess *e)
{
    return (int32_t *)(e + 1);
}
static char *sess_key(const sessions *st, sess *e)
{
    return (char *)(sess_seen(e) + st->cfg.max_seen);
}

sessions *sessions_new(const sessions_cfg *cfg)
{
    if (cfg->max < 1 || cfg->max_seen < 1 || cfg->max_seen > 65535) {
        rc_error(RC_EINVAL, "sessions: max must be >= 1 and max_seen in [1, 65535]");
        return NULL;
    }
    sessions *st = calloc(1, sizeof *st);
    if (!st) goto nomem;
    st->cfg = *cfg;
    ssize_t got = 0;
    for (int tries = 0; got < (ssize_t)sizeof st->key && tries < 8; tries++) { /* EINTR, short reads */
        ssize_t n = getrandom((char *)st->key + got, sizeof st->key - (size_t)got, 0);
        if (n > 0) got += n;
        else if (n < 0 && errno != EINTR) break;
    }
    if (got < (ssize_t)sizeof st->key) {
        FILE *f = fopen("/dev/urandom", "rb");
        if (f && fread(st->key, 1, sizeof st->key, f) == sizeof st->key) got = (ssize_t)sizeof st->key;
        if (f) fclose(f);
    }
    if (got < (ssize_t)sizeof st->key) { /* no kernel randomness at all: guessable, say so */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t t = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
                     (uint64_t)(uintptr_t)st;
        st->key[0] = hash_u64(t, 0x5e551025u);
        st->key[1] = hash_u64(t, 0x0ddba11u);
        log_warn("sessions: no random source (getrandom, /dev/urandom): session ids hashed with a guessable key");
    }
    int n = cfg->shards < 1 ? 1 : cfg->shards;
    if ((size_t)n > cfg->max) n = (int)cfg->max;
    st->nshards = n;
    st->shards = calloc((size_t)n, sizeof *st->shards);
    if (!st->shards) goto nomem;
    size_t cap = (cfg->max + (size_t)n - 1) / (size_t)n;
    for (int i = 0; i < n; i++) {
        shard *sh = &st->shards[i];
        pthread_mutex_init(&sh->mu, NULL);
        sh->cap = cap;
        size_t nb = 16;
        while (nb < cap * 2 && nb < ((size_t)1 << 30)) nb <<= 1;
        sh->nbuckets = nb;
        sh->buckets = calloc(nb, sizeof *sh->buckets);
        if (!sh->buckets) goto nomem;
    }
    return st;
nomem:
    sessions_free(st);
    rc_error(RC_ENOMEM, "out of memory creating the session store");
    return NULL;
}

static void sess_destroy(sess *e)
{
    free(e->state);
    free(e);
}

void sessions_free(sessions *st)
{
    if (!st) return;
    if (st->shards) {
        for (int i = 0; i < st->nshards; i++) {
            shard *sh = &st->shards[i];
            for (sess *e = sh->head, *nx; e; e = nx) {
                nx = e->next;
                sess_destroy(e);
            }
            free(sh->buckets);
            pthread_mutex_destroy(&sh->mu);
        }
        free(st->shards);
    }
    free(st);
}

static void lru_unlink(shard *sh, sess *e)
{
    if (e->prev) e->prev->next = e->next;
    else sh->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else sh->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(shard *sh, sess *e)
{
    e->prev = NULL;
    e->next = sh->head;
    if (sh->head) sh->head->prev = e;
    sh->head = e;
    if (!sh->tail) sh->tail = e;
}

/* Remove e from its shard (hash chain and LRU list) and free it. */
static void remove_entry(sessions *st, shard *sh, sess *e)
{
    sess **pp = &sh->buckets[e->hash & (sh->nbuckets - 1)];
    while (*pp && *pp != e) pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    lru_unlink(sh, e);
    sh->count--;
    atomic_fetch_sub_explicit(&st->count, 1, memory_order_relaxed);
    sess_destroy(e);
}

static void reset_state(sess *e)
{
    if (e->state) memset(e->state, 0, e->state_n * sizeof(float));
    e->n_clicks = 0;
    e->seen_head = e->seen_n = 0;
}

int sessions_advance(sessions *st, const char *id, size_t n, uint64_t fingerprint, size_t S, int32_t item,
                     sessions_step_fn step, void *ctx, double now, float *h_out, int32_t *seen_out, int *n_seen,
                     int *n_clicks)
{
    if (n > 65535) return rc_error(RC_EINVAL, "session id longer than 65535 bytes");
    uint64_t h = hash_sip24(id, n, st->key);
    shard *sh = &st->shards[hash_reduce(h, (uint64_t)st->nshards)];
    pthread_mutex_lock(&sh->mu);
    sess **bucket = &sh->buckets[h & (sh->nbuckets - 1)];
    sess *e = *bucket;
    while (e && !(e->hash == h && e->keylen == n && memcmp(sess_key(st, e), id, n) == 0)) e = e->hnext;
    if (e && st->cfg.ttl_s > 0 && now - e->last > st->cfg.ttl_s) {
        reset_state(e);
        atomic_fetch_add_explicit(&st->expired_ttl, 1, memory_order_relaxed);
    }
    if (e && (e->fp != fingerprint || e->state_n != S)) {
        if (e->state_n != S) {
            float *ns = calloc(S ? S : 1, sizeof(float));
            if (!ns) {
                pthread_mutex_unlock(&sh->mu);
                return rc_error(RC_ENOMEM, "out of memory for a session state");
            }
            free(e->state);
            e->state = ns;
            e->state_n = S;
        }
        reset_state(e);
        e->fp = fingerprint;
        atomic_fetch_add_explicit(&st->reset_model, 1, memory_order_relaxed);
    }
    if (!e) {
        /* Make room first: the shard's least recently used session goes. */
        while (sh->count >= sh->cap && sh->tail) {
            remove_entry(st, sh, sh->tail);
            atomic_fetch_add_explicit(&st->evicted_lru, 1, memory_order_relaxed);
        }
        e = malloc(sizeof *e + (size_t)st->cfg.max_seen * sizeof(int32_t) + n + 1);
        float *state = calloc(S ? S : 1, sizeof(float));
        if (!e || !state) {
            free(e);
            free(state);
            pthread_mutex_unlock(&sh->mu);
            return rc_error(RC_ENOMEM, "out of memory for a new session");
        }
        memset(e, 0, sizeof *e);
        e->hash = h;
        e->fp = fingerprint;
        e->state = state;
        e->state_n = S;
        e->keylen = (uint16_t)n;
        memcpy(sess_key(st, e), id, n);
        sess_key(st, e)[n] = '\0';
        e->hnext = *bucket;
        *bucket = e;
        sh->count++;
        atomic_fetch_add_explicit(&st->count, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&st->created, 1, memory_order_relaxed);
    } else {
        lru_unlink(sh, e);
    }
    lru_push_front(sh, e);
    e->last = now;
    if (item >= 0) {
        if (step) step(ctx, e->state);
        e->n_clicks++;
        int32_t *seen = sess_seen(e);
        int ms = st->cfg.max_seen;
        seen[(e->seen_head + e->seen_n) % ms] = item;
        if (e->seen_n < ms) e->seen_n++;
        else e->seen_head = (uint16_t)((e->seen_head + 1) % ms);
    }
    if (h_out && S) memcpy(h_out, e->state, S * sizeof(float));
    if (seen_out) {
        int32_t *seen = sess_seen(e);
        for (int i = 0; i < e->seen_n; i++) seen_out[i] = seen[(e->seen_head + i) % st->cfg.max_seen];
    }
    if (n_seen) *n_seen = e->seen_n;
    if (n_clicks) *n_clicks = (int)e->n_clicks;
    pthread_mutex_unlock(&sh->mu);
    return RC_OK;
}

size_t sessions_expire(sessions *st, double now, size_t max_work)
{
    if (st->cfg.ttl_s <= 0) return 0;
    size_t removed = 0, work = 0;
    for (int k = 0; k < st->nshards && work < max_work; k++) {
        unsigned pos = atomic_fetch_add_explicit(&st->sweep_pos, 1, memory_order_relaxed);
        shard *sh = &st->shards[pos % (unsigned)st->nshards];
        pthread_mutex_lock(&sh->mu);
        while (sh->tail && work < max_work && now - sh->tail->last > st->cfg.ttl_s) {
            remove_entry(st, sh, sh->tail);
            removed++;
            work++;
        }
        work++; /* looking at a shard counts */
        pthread_mutex_unlock(&sh->mu);
    }
    atomic_fetch_add_explicit(&st->expired_ttl, removed, memory_order_relaxed);
    return removed;
}

int sessions_max_seen(const sessions *st)
{
    return st->cfg.max_seen;
}

size_t sessions_count(const sessions *st)
{
    return atomic_load_explicit(&st->count, memory_order_relaxed);
}

void sessions_get_stats(const sessions *st, sessions_stats *out)
{
    out->created = atomic_load_explicit(&st->created, memory_order_relaxed);
    out->evicted_lru = atomic_load_explicit(&st->evicted_lru, memory_order_relaxed);
    out->expired_ttl = atomic_load_explicit(&st->expired_ttl, memory_order_relaxed);
    out->reset_model = atomic_load_explicit(&st->reset_model, memory_order_relaxed);
    out->count = sessions_count(st);
}

void sessions_render_metrics(struct sbuf *out, void *store)
{
    sessions_stats s;
    sessions_get_stats(store, &s);
    sbuf_printf(out,
                "# HELP recd_sessions Sessions held in the session store.\n# TYPE recd_sessions gauge\n"
                "recd_sessions %zu\n"
                "# HELP recd_sessions_created_total Sessions created.\n# TYPE recd_sessions_created_total counter\n"
                "recd_sessions_created_total %llu\n"
                "# HELP recd_session_evictions_total Sessions forgotten, by reason (lru: store full; ttl: idle).\n"
                "# TYPE recd_session_evictions_total counter\n"
                "recd_session_evictions_total{reason=\"lru\"} %llu\n"
                "recd_session_evictions_total{reason=\"ttl\"} %llu\n"
                "# HELP recd_session_resets_total Session states reset because the model's state fingerprint "
                "changed.\n# TYPE recd_session_resets_total counter\n"
                "recd_session_resets_total %llu\n",
                s.count, (unsigned long long)s.created, (unsigned long long)s.evicted_lru,
                (unsigned long long)s.expired_ttl, (unsigned long long)s.reset_model);
}
