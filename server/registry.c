/* server/registry.c - model versions, refcounts, validation, warm-up and hot swap (see registry.h). */
#include "server/registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"

#define REG_MAX_MODELS 16

#define REG_MAX_REFUSED 16

/* A refused version and the state of its files when it was tried (see version_stamp). */
typedef struct reg_refusal {
    uint64_t version, stamp;
} reg_refusal;

typedef struct reg_model {
    char name[64];          /* the entry's name: "MODEL", or "MODEL@V" for a pinned entry */
    char folder[64];        /* ROOT/folder holds its versions: MODEL */
    uint64_t pin;           /* a pinned entry's version V (0: the newest valid version serves) */
    model_version *current; /* guarded by registry.mu */
    /* versions refused and not retried while their files stay the same (registry_scan's thread only):
     * newer than the serving one; the oldest entry is replaced when full */
    reg_refusal refusals[REG_MAX_REFUSED];
    int n_refusals, next_refusal;
    _Atomic uint64_t swaps, refused, loads;
    char last_error[512]; /* full message (paths included), guarded by registry.mu */
} reg_model;

struct registry {
    char *root;
    int n;
    reg_model models[REG_MAX_MODELS];
    pthread_mutex_t mu;        /* guards every current pointer (held for a pointer read + ref) */
    pthread_mutex_t grave_mu;  /* guards graveyard */
    model_version *graveyard;
    void (*notify)(void *);
    void *notify_ctx;
    _Atomic uint64_t next_serial;
    int warm_requests;
    int (*prepare)(model_version *v, void *ctx);
    void *prepare_ctx;
};


/* A model name ([A-Za-z0-9_-]{1,63}), or "MODEL@V" with V a snapshot version (decimal, 1 to
 * 2^64 - 1, no leading zero; the whole under 64 bytes): *folder_len is the length of MODEL and *pin V
 * (0 without '@'). 1 when valid. */
static int valid_name(const char *s, size_t *folder_len, uint64_t *pin)
{
    size_t n = strlen(s);
    *pin = 0;
    if (n == 0 || n >= 64) return 0;
    const char *at = strchr(s, '@');
    size_t m = at ? (size_t)(at - s) : n;
    if (m == 0) return 0;
    for (size_t i = 0; i < m; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    *folder_len = m;
    if (!at) return 1;
    const char *v = at + 1;
    size_t vl = strlen(v);
    if (vl == 0 || vl > 20 || v[0] == '0') return 0;
    uint64_t x = 0;
    for (size_t i = 0; i < vl; i++) {
        if (v[i] < '0' || v[i] > '9') return 0;
        uint64_t d = (uint64_t)(v[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return 0;
        x = x * 10 + d;
    }
    *pin = x;
    return 1;
}

registry *registry_new(const char *root, const char *const *names, int n)
{
    if (n < 1 || n > REG_MAX_MODELS) {
        rc_error(RC_EINVAL, "between 1 and %d models must be configured, got %d", REG_MAX_MODELS, n);
        return NULL;
    }
    registry *r = calloc(1, sizeof *r);
    if (!r || !(r->root = strdup(root))) {
        free(r);
        rc_error(RC_ENOMEM, "out of memory creating the registry");
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->grave_mu, NULL);
    r->warm_requests = 8;
    for (int i = 0; i < n; i++) {
        size_t fl = 0;
        uint64_t pin = 0;
        if (!valid_name(names[i], &fl, &pin)) {
            rc_error(RC_EINVAL,
                     "model name '%s': use 1-63 characters among [A-Za-z0-9_-] (or MODEL@VERSION to pin a "
                     "version, under 64 bytes)",
                     names[i]);
            registry_free(r);
            return NULL;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], r->models[j].name) == 0) {
                rc_error(RC_EINVAL, "model '%s' configured twice", names[i]);
                registry_free(r);
                return NULL;
            }
        strcpy(r->models[i].name, names[i]);
        memcpy(r->models[i].folder, names[i], fl);
        r->models[i].folder[fl] = '\0';
        r->models[i].pin = pin;
        r->n++;
    }
    return r;
}

static void version_free(model_version *v)
{
    if (!v) return;
    if (v->aux && v->aux_free) v->aux_free(v->aux);
    if (v->handle && v->type) v->type->free(v->handle);
    snap_close(v->snap);
    free(v);
}

void registry_free(registry *r)
{
    if (!r) return;
    for (int i = 0; i < r->n; i++) version_free(r->models[i].current);
    registry_collect(r);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->grave_mu);
    free(r->root);
    free(r);
}

void registry_set_prepare(registry *r, int (*prepare)(model_version *v, void *ctx), void *ctx)
{
    r->prepare = prepare;
    r->prepare_ctx = ctx;
}

void registry_set_warm(registry *r, int n_requests)
{
    r->warm_requests = n_requests < 0 ? 0 : n_requests;
}

void registry_set_notify(registry *r, void (*notify)(void *ctx), void *ctx)
{
    r->notify = notify;
    r->notify_ctx = ctx;
}

void registry_collect(registry *r)
{
    pthread_mutex_lock(&r->grave_mu);
    model_version *v = r->graveyard;
    r->graveyard = NULL;
    pthread_mutex_unlock(&r->grave_mu);
    while (v) {
        model_version *nx = v->next_free;
        log_info("closed %s version %s (last reference gone)", v->model, v->version_str);
        version_free(v);
        v = nx;
    }
}

static reg_model *find_model(registry *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->models[i].name, name) == 0) return &r->models[i];
    return NULL;
}

model_version *registry_acquire(registry *r, const char *name, int *known)
{
    reg_model *m = find_model(r, name);
    if (known) *known = m != NULL;
    if (!m) return NULL;
    pthread_mutex_lock(&r->mu);
    model_version *v = m->current;
    if (v) atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&r->mu);
    return v;
}

void registry_release(registry *r, model_version *v)
{
    if (!v) return;
    if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1) return;
    if (!r->notify) {
        version_free(v);
        return;
    }
    pthread_mutex_lock(&r->grave_mu);
    v->next_free = r->graveyard;
    r->graveyard = v;
    pthread_mutex_unlock(&r->grave_mu);
    r->notify(r->notify_ctx);
}

const char *registry_default(const registry *r)
{
    return r->models[0].name;
}

int registry_count(const registry *r)
{
    return r->n;
}

const char *registry_name(const registry *r, int i)
{
    return i >= 0 && i < r->n ? r->models[i].name : NULL;
}

const char *registry_folder(const registry *r, int i)
{
    return i >= 0 && i < r->n ? r->models[i].folder : NULL;
}

uint64_t registry_pin(const registry *r, int i)
{
    return i >= 0 && i < r->n ? r->models[i].pin : 0;
}

int registry_ready(registry *r)
{
    int ready = 1;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        if (!r->models[i].current) ready = 0;
    pthread_mutex_unlock(&r->mu);
    return ready;
}

/* A few representative requests through the type's `next` operations (session steps from popular
 * items, full scoring) so code paths and pages are hot; NaN scores refuse the version. */
static int warm_next(const model_type *t, const void *m, int n_req)
{
    const model_next_ops *ops = t->next;
    const idmap *items = t->items ? t->items(m) : NULL;
    int64_t N = items ? (int64_t)idmap_size(items) : 0;
    if (N == 0 || n_req <= 0) return RC_OK;
    size_t S = ops->state_size(m);
    void *sc = ops->scratch_new(m, 1);
    float *h = calloc(S, sizeof(float));
    float *scores = malloc((size_t)N * sizeof(float));
    int rc = RC_OK;
    if (!sc || !h || !scores) {
        rc = rc_error(RC_ENOMEM, "out of memory warming the model");
        goto done;
    }
    const int32_t *pop = t->popular ? t->popular(m) : NULL;
    for (int i = 0; i < n_req; i++) {
        int32_t item = pop ? pop[i % N] : (int32_t)(i % N);
        ops->step(m, h, &item, 1, sc);
        ops->score(m, h, 1, scores, sc);
    }
    for (int64_t i = 0; i < N; i++)
        if (!(scores[i] == scores[i])) {
            rc = rc_error(RC_ECORRUPT, "warm-up produced NaN scores");
            break;
        }
done:
    ops->scratch_free(sc);
    free(h);
    free(scores);
    return rc;
}

int registry_load(registry *r, const char *name, uint64_t version, model_version **out)
{
    *out = NULL;
    char dir[4096];
    const reg_model *rm = find_model(r, name);
    int rc = snap_path(dir, sizeof dir, r->root, rm ? rm->folder : name, version);
    if (rc != RC_OK) return rc;
    double t0 = clock_mono_ms();
    model_version *v = calloc(1, sizeof *v);
    if (!v) return rc_error(RC_ENOMEM, "out of memory loading %s", dir);
    atomic_init(&v->refs, 1);
    snprintf(v->model, sizeof v->model, "%s", name);
    v->version = version;
    snprintf(v->version_str, sizeof v->version_str, "%llu", (unsigned long long)version);
    if ((rc = snap_open(&v->snap, dir)) != RC_OK) goto fail;
    const char *tname = snap_type(v->snap);
    v->type = tname ? model_type_find(tname) : NULL;
    if (!v->type) {
        rc = rc_error(RC_ENOTFOUND, "%s: unknown model type '%s'", dir, tname ? tname : "(none)");
        goto fail;
    }
    snprintf(v->type_name, sizeof v->type_name, "%s", tname);
    if ((rc = v->type->load(&v->handle, v->snap)) != RC_OK) {
        rc_wrap(rc, "%s", dir);
        goto fail;
    }
    snap_warm(v->snap);
    if (v->type->warm && (rc = v->type->warm(v->handle)) != RC_OK) {
        rc_wrap(rc, "%s: warm-up", dir);
        goto fail;
    }
    /* the type's name is mixed in: a state of one type is never handed to another */
    v->fingerprint = hash_str(tname, v->type->fingerprint ? v->type->fingerprint(v->handle) : 0);
    if (v->type->next && (rc = warm_next(v->type, v->handle, r->warm_requests)) != RC_OK) {
        rc_wrap(rc, "%s", dir);
        goto fail;
    }
    v->serial = atomic_fetch_add(&r->next_serial, 1) + 1;
    if (r->prepare && (rc = r->prepare(v, r->prepare_ctx)) != RC_OK) {
        rc_wrap(rc, "%s", dir);
        goto fail;
    }
    v->load_ms = clock_mono_ms() - t0;
    *out = v;
    return RC_OK;
fail:
    version_free(v);
    return rc;
}

void registry_install(registry *r, model_version *v)
{
    reg_model *m = find_model(r, v->model);
    if (!m) {
        version_free(v);
        return;
    }
    v->loaded_at = clock_wall_s();
    pthread_mutex_lock(&r->mu);
    model_version *old = m->current;
    m->current = v; /* the swap: new requests see v from here on */
    pthread_mutex_unlock(&r->mu);
    atomic_fetch_add(&m->loads, 1);
    if (old) {
        atomic_fetch_add(&m->swaps, 1);
        log_info("swapped %s: version %s -> %s (loaded in %.1f ms)", v->model, old->version_str, v->version_str,
                 v->load_ms);
        registry_release(r, old);
    } else {
        log_info("serving %s version %s (loaded in %.1f ms)", v->model, v->version_str, v->load_ms);
    }
}

/* What a refused version's files look like now: folder and data.mdb identity, size and mtime. A
 * change (data.mdb copied in, replaced, or the folder re-created) makes the version worth a retry. */
static uint64_t version_stamp(registry *r, const char *name, uint64_t version)
{
    char dir[4096], file[4200];
    const reg_model *rm = find_model(r, name);
    if (snap_path(dir, sizeof dir, r->root, rm ? rm->folder : name, version) != RC_OK) return 0;
    snprintf(file, sizeof file, "%s/data.mdb", dir);
    struct stat st[2];
    memset(st, 0, sizeof st);
    uint64_t parts[12] = {0};
    for (int i = 0; i < 2; i++) {
        if (stat(i ? file : dir, &st[i]) != 0) continue;
        parts[6 * i + 0] = 1;
        parts[6 * i + 1] = (uint64_t)st[i].st_dev;
        parts[6 * i + 2] = (uint64_t)st[i].st_ino;
        parts[6 * i + 3] = (uint64_t)st[i].st_size;
        parts[6 * i + 4] = (uint64_t)st[i].st_mtim.tv_sec;
        parts[6 * i + 5] = (uint64_t)st[i].st_mtim.tv_nsec;
    }
    return hash64(parts, sizeof parts, version);
}

static int refused_before(const reg_model *m, uint64_t version, uint64_t stamp)
{
    for (int i = 0; i < m->n_refusals; i++)
        if (m->refusals[i].version == version) return m->refusals[i].stamp == stamp;
    return 0;
}

static void remember_refusal(reg_model *m, uint64_t version, uint64_t stamp)
{
    for (int i = 0; i < m->n_refusals; i++)
        if (m->refusals[i].version == version) {
            m->refusals[i].stamp = stamp;
            return;
        }
    int slot = m->n_refusals < REG_MAX_REFUSED ? m->n_refusals++ : m->next_refusal++ % REG_MAX_REFUSED;
    m->refusals[slot] = (reg_refusal){version, stamp};
}

/* Refusals of versions at or below the serving one cannot matter any more. */
static void forget_refusals_upto(reg_model *m, uint64_t cur)
{
    int k = 0;
    for (int i = 0; i < m->n_refusals; i++)
        if (m->refusals[i].version > cur) m->refusals[k++] = m->refusals[i];
    m->n_refusals = k;
    if (m->next_refusal >= k) m->next_refusal = 0;
}

/* Load a candidate; on failure count, remember and log it. 1 when installed. */
static int try_version(registry *r, reg_model *m, uint64_t version, uint64_t cur, uint64_t next_candidate)
{
    uint64_t stamp = version_stamp(r, m->name, version); /* before loading: a change meanwhile retries */
    model_version *v;
    int rc = registry_load(r, m->name, version, &v);
    if (rc == RC_OK) {
        registry_install(r, v);
        return 1;
    }
    remember_refusal(m, version, stamp);
    atomic_fetch_add(&m->refused, 1);
    pthread_mutex_lock(&r->mu);
    snprintf(m->last_error, sizeof m->last_error, "%s", rc_errmsg());
    pthread_mutex_unlock(&r->mu);
    char then[96];
    if (next_candidate) snprintf(then, sizeof then, "trying version %llu", (unsigned long long)next_candidate);
    else if (cur) snprintf(then, sizeof then, "version %llu keeps serving", (unsigned long long)cur);
    else snprintf(then, sizeof then, "no version to serve yet");
    log_error("refused snapshot %s version %llu (%s): %s; %s", m->name, (unsigned long long)version,
              rc_strerror(rc), rc_errmsg(), then);
    return 0;
}

int registry_scan(registry *r, const char *only, int force)
{
    if (only && !find_model(r, only)) return rc_error(RC_ENOTFOUND, "no model '%s' is configured", only);
    int installed = 0;
    for (int i = 0; i < r->n; i++) {
        reg_model *m = &r->models[i];
        if (only && strcmp(only, m->name) != 0) continue;
        uint64_t *vs = NULL;
        size_t nv = 0;
        if (snap_versions(r->root, m->folder, &vs, &nv) != RC_OK || nv == 0) { /* nothing published yet */
            free(vs);
            continue;
        }
        pthread_mutex_lock(&r->mu);
        uint64_t cur = m->current ? m->current->version : 0;
        pthread_mutex_unlock(&r->mu);
        forget_refusals_upto(m, cur);
        if (m->pin) { /* a pinned entry: exactly its version, once published; never another one */
            int published = 0;
            for (size_t j = 0; j < nv && !published; j++) published = vs[j] == m->pin;
            free(vs);
            if (!published || (cur == m->pin && !force)) continue;
            if (!force && refused_before(m, m->pin, version_stamp(r, m->name, m->pin))) continue;
            installed += try_version(r, m, m->pin, cur, 0);
            continue;
        }
        /* Newest first down to the serving version (exclusive): the first that loads serves. A version
         * refused before is skipped (unless forced) while its files stay as they were. */
        int done = 0;
        size_t j = 0;
        while (j < nv && vs[j] > cur) {
            size_t k = j + 1;
            if (!force && refused_before(m, vs[j], version_stamp(r, m->name, vs[j]))) {
                j = k;
                continue;
            }
            /* the next version this scan would try after a refusal (skipping remembered refusals) */
            while (!force && k < nv && vs[k] > cur && refused_before(m, vs[k], version_stamp(r, m->name, vs[k])))
                k++;
            if (try_version(r, m, vs[j], cur, k < nv && vs[k] > cur ? vs[k] : 0)) {
                installed++;
                done = 1;
                break;
            }
            j = k;
        }
        /* force with nothing newer: reload the serving version (a reload request) */
        if (!done && force && cur && vs[0] == cur && try_version(r, m, cur, cur, 0)) installed++;
        free(vs);
    }
    return installed;
}

uint64_t registry_swaps(registry *r, const char *name)
{
    reg_model *m = find_model(r, name);
    return m ? atomic_load(&m->swaps) : 0;
}

uint64_t registry_refused(registry *r, const char *name)
{
    reg_model *m = find_model(r, name);
    return m ? atomic_load(&m->refused) : 0;
}

/* A byte that can be part of a path or word: a match starting right after one is in mid-word. */
static int path_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80 ||
           (c && strchr("._-~+@%/", c));
}

/* A byte that ends an absolute path in a message. */
static int path_end(unsigned char c)
{
    return !c || strchr(" \t\r\n:,;)'\"]}>", c);
}

/* msg[0..n) without filesystem paths, for clients, appended to out: "ROOT/" starting a word (at the
 * start of msg or after a byte that is not path_byte) is dropped (what remains is relative to the
 * snapshots root, e.g. "gru4rec/2/data.mdb"), and any other absolute path (a '/' starting a word, up to
 * whitespace or one of :,;)'"]}>) becomes "(path)"; a URL's "scheme://" is not a path. Only ASCII bytes
 * are dropped or added, so valid UTF-8 stays valid; NUL bytes are kept as they are. */
static void scrub_paths(const char *msg, size_t n, const char *root, sbuf *out)
{
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/') rl--;
    for (size_t i = 0; i < n;) {
        int word_start = i == 0 || !path_byte((unsigned char)msg[i - 1]);
        if (word_start && rl && n - i > rl && memcmp(msg + i, root, rl) == 0 &&
            msg[i + rl] == '/') {
            i += rl;
            while (i < n && msg[i] == '/') i++;
            continue;
        }
        int url = i > 0 && msg[i - 1] == ':' && i + 1 < n && msg[i + 1] == '/'; /* "scheme://" */
        if (msg[i] == '/' && word_start && !url) {
            while (i < n && !path_end((unsigned char)msg[i])) i++;
            sbuf_adds(out, "(path)");
            continue;
        }
        sbuf_addc(out, msg[i++]);
    }
}

/* Every string value in j (objects and arrays walked) scrubbed in place by scrub_paths. -1 when one
 * could not be (out of memory): the caller must not show j. */
static int scrub_json(json_t *j, const char *root, sbuf *tmp)
{
    if (json_is_string(j)) {
        sbuf_reset(tmp);
        scrub_paths(json_string_value(j), json_string_length(j), root, tmp);
        if (sbuf_failed(tmp)) return -1;
        return json_string_setn(j, tmp->len ? tmp->data : "", tmp->len);
    }
    if (json_is_object(j)) {
        const char *key;
        json_t *v;
        json_object_foreach(j, key, v) if (scrub_json(v, root, tmp) != 0) return -1;
        return 0;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) if (scrub_json(v, root, tmp) != 0) return -1;
    }
    return 0;
}

static void iso_time(double t, char *buf, size_t cap)
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void registry_render_json(registry *r, sbuf *out)
{
    sbuf_adds(out, "{\"models\":[");
    for (int i = 0; i < r->n; i++) {
        reg_model *m = &r->models[i];
        model_version *v = registry_acquire(r, m->name, NULL);
        if (i) sbuf_addc(out, ',');
        sbuf_adds(out, "{\"name\":");
        sbuf_json_str(out, m->name, strlen(m->name));
        if (m->pin) sbuf_printf(out, ",\"pinned\":true,\"folder\":\"%s\"", m->folder);
        if (v) {
            char when[32];
            iso_time(v->loaded_at, when, sizeof when);
            sbuf_printf(out, ",\"loaded\":true,\"type\":\"%s\",\"version\":\"%s\",\"loaded_at\":\"%s\","
                             "\"load_ms\":%.1f,\"snapshot_bytes\":%zu",
                        v->type_name, v->version_str, when, v->load_ms, snap_bytes(v->snap));
            const json_t *meta = snap_meta(v->snap);
            /* The snapshot's own description, without the per-tensor table nor filesystem paths (the
             * trainers write their input and output paths there; `recd inspect` shows them). */
            json_t *copy = meta ? json_deep_copy(meta) : NULL;
            sbuf tmp;
            sbuf_init(&tmp);
            if (copy && json_is_object(copy)) {
                json_object_del(copy, "tensors");
                char *txt = NULL;
                if (scrub_json(copy, r->root, &tmp) == 0)
                    txt = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
                if (txt) {
                    sbuf_adds(out, ",\"meta\":");
                    sbuf_adds(out, txt);
                    free(txt);
                }
            }
            json_decref(copy);
            sbuf_release(&tmp);
        } else {
            sbuf_adds(out, ",\"loaded\":false");
        }
        sbuf_printf(out, ",\"swaps\":%llu,\"refused_snapshots\":%llu", (unsigned long long)atomic_load(&m->swaps),
                    (unsigned long long)atomic_load(&m->refused));
        char err[sizeof m->last_error];
        pthread_mutex_lock(&r->mu);
        memcpy(err, m->last_error, sizeof err);
        pthread_mutex_unlock(&r->mu);
        if (err[0]) {
            sbuf pub;
            sbuf_init(&pub);
            scrub_paths(err, strlen(err), r->root, &pub);
            sbuf_adds(out, ",\"last_error\":");
            sbuf_json_str(out, pub.len ? pub.data : "", pub.len);
            sbuf_release(&pub);
        }
        sbuf_addc(out, '}');
        registry_release(r, v);
    }
    sbuf_adds(out, "]");
}

void registry_render_metrics(sbuf *out, void *arg)
{
    registry *r = arg;
    sbuf_adds(out, "# HELP recd_model_version Snapshot version serving now (0: none).\n"
                   "# TYPE recd_model_version gauge\n");
    for (int i = 0; i < r->n; i++) {
        model_version *v = registry_acquire(r, r->models[i].name, NULL);
        sbuf_printf(out, "recd_model_version{model=\"%s\"} %llu\n", r->models[i].name,
                    (unsigned long long)(v ? v->version : 0));
        registry_release(r, v);
    }
    sbuf_adds(out, "# HELP recd_model_swaps_total Hot swaps to a new version.\n"
                   "# TYPE recd_model_swaps_total counter\n");
    for (int i = 0; i < r->n; i++)
        sbuf_printf(out, "recd_model_swaps_total{model=\"%s\"} %llu\n", r->models[i].name,
                    (unsigned long long)atomic_load(&r->models[i].swaps));
    sbuf_adds(out, "# HELP recd_snapshots_refused_total Snapshots that failed validation or loading.\n"
                   "# TYPE recd_snapshots_refused_total counter\n");
    for (int i = 0; i < r->n; i++)
        sbuf_printf(out, "recd_snapshots_refused_total{model=\"%s\"} %llu\n", r->models[i].name,
                    (unsigned long long)atomic_load(&r->models[i].refused));
}
