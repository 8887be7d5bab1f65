/* core/snap_read.c - the snapshot reader: snap_open, snap_open_any, tensors, meta, vocabularies (see
 * core/snap.h; the writer is core/snap_write.c; the checks snap_open runs are in core/snap_check.c).
 *
 * Reading. snap_open first checks the file structure itself (meta pages, page bounds, B-tree pages,
 * node bounds, overflow runs: snap_check_lmdb_file) because LMDB trusts its file and would read out
 * of bounds (or divide by zero) on a corrupt one. Then it opens the env with MDB_RDONLY |
 * MDB_NOLOCK | MDB_NOTLS (works on a read-only volume, no lock file) and a map of exactly the file
 * size (not the writer's map size, which may be up to 64 GiB), opens the three named dbs
 * once, reads meta and every tensor into snap_tensor structs, verifying each checksum. One read
 * transaction stays open until snap_close so the pointers into the map follow LMDB's lifetime rule;
 * after snap_open nothing is mutated, so every getter is safe from any number of threads.
 * snap_vocab_load runs its own short read transaction (safe concurrently: MDB_NOLOCK has no reader
 * table, and the dbi handles were opened once at snap_open).
 */
#include "core/snap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/snap_impl.h"

struct snap {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi_meta, dbi_tensors, dbi_vocab;
    int has_vocab;
    json_t *meta;
    char *dir;
    const char *model; /* inside meta */
    uint64_t version;
    snap_tensor *tensors; /* sorted by name (LMDB key order) */
    size_t ntensors;
    void **owned; /* per tensor: aligned copy or NULL */
    char *names;  /* arena of NUL-terminated names */
    size_t bytes;
};

void snap_close(snap *s)
{
    if (!s) return;
    if (s->txn) mdb_txn_abort(s->txn);
    if (s->env) mdb_env_close(s->env);
    if (s->owned)
        for (size_t i = 0; i < s->ntensors; i++)
            free(s->owned[i]);
    free(s->owned);
    free(s->tensors);
    free(s->names);
    json_decref(s->meta);
    free(s->dir);
    free(s);
}

static int open_tensors(snap *s, json_t *mt)
{
    const char *dir = s->dir;
    size_t nmeta = json_object_size(mt), n = 0, namebytes = 0, i = 0;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = RC_OK, mrc;
    if ((mrc = mdb_cursor_open(s->txn, s->dbi_tensors, &cur)) != 0)
        return snap_mdb_fail(RC_ECORRUPT, mrc, "cannot read the tensors database", dir);
    /* first pass: count the records and their name bytes (the stored entry count is not trusted) */
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        n++;
        namebytes += k.mv_size + 1;
    }
    size_t *name_off = calloc(n ? n : 1, sizeof *name_off);
    s->tensors = calloc(n ? n : 1, sizeof *s->tensors);
    s->owned = calloc(n ? n : 1, sizeof *s->owned);
    s->names = malloc(namebytes ? namebytes : 1);
    if (!name_off || !s->tensors || !s->owned || !s->names) {
        rc = rc_error(RC_ENOMEM, "out of memory");
        goto out;
    }
    size_t noff = 0;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && i < n;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), i++) {
        char *name = s->names + noff;
        if (k.mv_size == 0 || k.mv_size > SNAP_MAX_NAME || memchr(k.mv_data, '\0', k.mv_size)) {
            rc = rc_error(RC_ECORRUPT, "%s: bad tensor name in the tensors database", dir);
            goto out;
        }
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        name_off[i] = noff;
        noff += k.mv_size + 1;
        json_t *e = json_object_get(mt, name);
        if (!e) {
            rc = rc_error(RC_ECORRUPT, "%s: tensor '%s' is not listed in meta", dir, name);
            goto out;
        }
        struct thdr h;
        if ((rc = snap_check_tensor(dir, name, v.mv_data, v.mv_size, e, &h)) != 0) goto out;
        const unsigned char *data = (const unsigned char *)v.mv_data + SNAP_HDR;
        snap_tensor *t = &s->tensors[i];
        t->dtype = (snap_dtype)h.dtype;
        t->ndim = h.ndim;
        for (int d = 0; d < h.ndim; d++)
            t->shape[d] = h.shape[d];
        t->nbytes = h.nbytes;
        t->data = data;
        if (((uintptr_t)data & 15) != 0 && h.nbytes) {
            void *copy = aligned_alloc(64, (h.nbytes + 63) & ~(size_t)63);
            if (!copy) {
                rc = rc_error(RC_ENOMEM, "out of memory");
                goto out;
            }
            memcpy(copy, data, h.nbytes);
            s->owned[i] = copy;
            t->data = copy;
        }
        s->bytes += h.nbytes;
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = snap_mdb_fail(RC_ECORRUPT, mrc, "cannot read the tensors database", dir);
        goto out;
    }
    s->ntensors = i;
    for (size_t j = 0; j < i; j++)
        s->tensors[j].name = s->names + name_off[j];
    if (i != nmeta) {
        /* every stored tensor is listed (checked above), so some listed one is missing */
        const char *key;
        json_t *val;
        json_object_foreach(mt, key, val)
        {
            if (!snap_tensor_get(s, key)) {
                rc = rc_error(RC_ECORRUPT, "%s: tensor '%s' is listed in meta but missing", dir,
                              key);
                goto out;
            }
        }
        rc = rc_error(RC_ECORRUPT, "%s: %zu tensors stored, %zu listed in meta", dir, i, nmeta);
    }
out:
    if (rc && s->owned) /* aligned copies made before the failure (ntensors is still 0) */
        for (size_t j = 0; j < n; j++) {
            free(s->owned[j]);
            s->owned[j] = NULL;
        }
    free(name_off);
    mdb_cursor_close(cur);
    return rc;
}

int snap_open(snap **out, const char *dir)
{
    if (!out || !dir) return rc_error(RC_EINVAL, "snap_open: NULL argument");
    *out = NULL;
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/data.mdb", dir) >= sizeof path)
        return rc_error(RC_ERANGE, "snapshot path %s too long", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        struct stat st;
        if (errno == ENOENT)
            return rc_error(RC_ENOTFOUND, "%s: %s", stat(dir, &st) == 0 ? path : dir,
                            "no such snapshot");
        return rc_error(RC_EIO, "cannot open %s: %s", path, strerror(errno));
    }
    int rc = snap_check_lmdb_file(fd, path);
    struct stat st;
    size_t fsize = 0;
    if (rc == RC_OK && fstat(fd, &st) == 0) fsize = (size_t)st.st_size;
    close(fd);
    if (rc) return rc;

    snap *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(dir))) {
        free(s);
        return rc_error(RC_ENOMEM, "out of memory");
    }
    int mrc;
    if ((mrc = mdb_env_create(&s->env)) != 0) {
        rc = snap_mdb_fail(RC_EIO, mrc, "mdb_env_create", dir);
        goto fail;
    }
    /* map just the file (LMDB raises it to what the meta page needs, checked above to be <= fsize)
     */
    if ((mrc = mdb_env_set_maxdbs(s->env, 4)) != 0 ||
        (mrc = mdb_env_set_mapsize(s->env, fsize)) != 0 ||
        (mrc = mdb_env_open(s->env, dir, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0)) != 0) {
        rc = snap_mdb_fail(mrc == ENOENT ? RC_ENOTFOUND : RC_ECORRUPT, mrc,
                      "cannot open the LMDB environment", dir);
        goto fail;
    }
    /* Open the dbi handles in a first read txn and commit it: only then are they visible to the
     * transactions of snap_vocab_load (LMDB: a handle stays private to its txn until commit). */
    if ((mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn)) != 0) {
        rc = snap_mdb_fail(RC_ECORRUPT, mrc, "mdb_txn_begin", dir);
        goto fail;
    }
    if ((mrc = mdb_dbi_open(s->txn, "meta", 0, &s->dbi_meta)) != 0) {
        rc = snap_mdb_fail(RC_ECORRUPT, mrc, "no meta database", dir);
        goto fail;
    }
    if ((mrc = mdb_dbi_open(s->txn, "tensors", 0, &s->dbi_tensors)) != 0) {
        rc = snap_mdb_fail(RC_ECORRUPT, mrc, "no tensors database", dir);
        goto fail;
    }
    mrc = mdb_dbi_open(s->txn, "vocab", 0, &s->dbi_vocab);
    if (mrc && mrc != MDB_NOTFOUND) {
        rc = snap_mdb_fail(RC_ECORRUPT, mrc, "cannot open the vocab database", dir);
        goto fail;
    }
    s->has_vocab = mrc == 0;
    mrc = mdb_txn_commit(s->txn);
    s->txn = NULL;
    if (mrc == 0) mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn);
    if (mrc) {
        rc = snap_mdb_fail(RC_ECORRUPT, mrc, "mdb_txn_begin", dir);
        goto fail;
    }
    MDB_val k = {4, "meta"}, v;
    if ((mrc = mdb_get(s->txn, s->dbi_meta, &k, &v)) != 0) {
        rc = snap_mdb_fail(RC_ECORRUPT, mrc, "no meta record", dir);
        goto fail;
    }
    json_error_t jerr;
    s->meta = json_loadb(v.mv_data, v.mv_size, JSON_REJECT_DUPLICATES, &jerr);
    if (!s->meta || !json_is_object(s->meta)) {
        rc = rc_error(RC_EFORMAT, "%s: meta is not a JSON object: %s", dir,
                      s->meta ? "wrong type" : jerr.text);
        goto fail;
    }
    json_t *fv = json_object_get(s->meta, "format_version");
    if (!json_is_integer(fv) || json_integer_value(fv) != SNAP_FORMAT_VERSION) {
        char got[32] = "missing";
        if (json_is_integer(fv))
            snprintf(got, sizeof got, "%" JSON_INTEGER_FORMAT, json_integer_value(fv));
        else if (fv)
            snprintf(got, sizeof got, "not an integer");
        rc = rc_error(RC_EVERSION,
                      "%s: snapshot format_version %s, this build reads format_version %d", dir,
                      got, SNAP_FORMAT_VERSION);
        goto fail;
    }
    json_t *jm = json_object_get(s->meta, "model"), *jv = json_object_get(s->meta, "version"),
           *mt = json_object_get(s->meta, "tensors");
    if (!json_is_string(jm) || !json_is_integer(jv) || json_integer_value(jv) < 1 ||
        !json_is_object(mt)) {
        rc = rc_error(RC_EFORMAT, "%s: meta lacks model, version or tensors", dir);
        goto fail;
    }
    s->model = json_string_value(jm);
    s->version = (uint64_t)json_integer_value(jv);
    if ((rc = open_tensors(s, mt)) != 0) goto fail;
    *out = s;
    return RC_OK;
fail:
    snap_close(s);
    return rc;
}

const snap_tensor *snap_tensor_get(const snap *s, const char *name)
{
    if (!s || !name) return NULL;
    size_t lo = 0, hi = s->ntensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *mn = s->tensors[mid].name;
        if (!mn) return NULL;
        int c = strcmp(mn, name);
        if (c == 0) return &s->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const snap_tensor *snap_tensor_expect(const snap *s, const char *name, snap_dtype dtype, int ndim,
                                      const int64_t *shape)
{
    const snap_tensor *t = snap_tensor_get(s, name);
    if (!t) {
        rc_error(RC_ECORRUPT, "%s: no tensor '%s'", s ? s->dir : "(null)", name ? name : "(null)");
        return NULL;
    }
    int ok = t->dtype == dtype && t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = !shape || shape[d] == -1 || shape[d] == t->shape[d];
    if (!ok) {
        char want[96] = "", got[96] = "";
        size_t a = 0, b = 0;
        for (int d = 0; d < ndim && a < sizeof want; d++)
            a += (size_t)snprintf(want + a, sizeof want - a, "%s%" PRId64, d ? "," : "",
                                  shape ? shape[d] : -1);
        for (int d = 0; d < t->ndim && b < sizeof got; d++)
            b += (size_t)snprintf(got + b, sizeof got - b, "%s%" PRId64, d ? "," : "", t->shape[d]);
        rc_error(RC_ECORRUPT, "%s: tensor '%s' is %s (%s), expected %s (%s)", s->dir, name,
                 snap_dtype_name(t->dtype), got,
                 snap_dtype_name(dtype) ? snap_dtype_name(dtype) : "?", want);
        return NULL;
    }
    return t;
}

const json_t *snap_meta(const snap *s)
{
    return s ? s->meta : NULL;
}
const char *snap_model(const snap *s)
{
    return s ? s->model : NULL;
}
const char *snap_type(const snap *s)
{
    if (!s) return NULL;
    const char *t = json_string_value(json_object_get(s->meta, "type"));
    return t ? t : s->model;
}
uint64_t snap_version(const snap *s)
{
    return s ? s->version : 0;
}
const char *snap_dir(const snap *s)
{
    return s ? s->dir : NULL;
}
size_t snap_bytes(const snap *s)
{
    return s ? s->bytes : 0;
}

size_t snap_tensor_count(const snap *s)
{
    return s ? s->ntensors : 0;
}
const snap_tensor *snap_tensor_at(const snap *s, size_t i)
{
    return s && i < s->ntensors ? &s->tensors[i] : NULL;
}

void snap_warm(const snap *s)
{
    if (!s) return;
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) pg = 4096;
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < s->ntensors; i++) {
        const unsigned char *p = s->tensors[i].data;
        size_t n = s->tensors[i].nbytes;
        for (size_t off = 0; off < n; off += (size_t)pg)
            sink ^= p[off];
        if (n) sink ^= p[n - 1];
    }
    (void)sink;
}

static uint64_t rd_be64(const unsigned char *p)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = (x << 8) | p[i];
    return x;
}

int snap_vocab_load(const snap *s, const char *name, idmap **out)
{
    if (!s || !name || !out) return rc_error(RC_EINVAL, "snap_vocab_load: NULL argument");
    *out = NULL;
    size_t nlen = strlen(name);
    json_t *jv = json_object_get(json_object_get(s->meta, "vocabs"), name);
    if (!s->has_vocab || !jv || nlen == 0 || nlen > SNAP_MAX_NAME)
        return rc_error(RC_ENOTFOUND, "%s: no vocabulary '%s'", s->dir, name);
    json_t *jn = json_object_get(jv, "size");
    if (!json_is_integer(jn) || json_integer_value(jn) < 0)
        return rc_error(RC_ECORRUPT, "%s: vocabulary '%s' has no size in meta", s->dir, name);
    uint64_t want = (uint64_t)json_integer_value(jn);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    idmap *m = NULL;
    int rc = RC_OK, mrc;
    unsigned char prefix[SNAP_MAX_NAME + 2];
    memcpy(prefix, name, nlen);
    prefix[nlen] = '\0';
    prefix[nlen + 1] = 'i';
    if ((mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0 ||
        (mrc = mdb_cursor_open(txn, s->dbi_vocab, &cur)) != 0) {
        rc = snap_mdb_fail(RC_EIO, mrc, "cannot read the vocab database", s->dir);
        goto out;
    }
    /* meta is not covered by a checksum: bound its size by the records really stored (two per id,
     * all vocabularies together) before sizing the map by it; the walk below checks it exactly */
    MDB_stat vst;
    if ((mrc = mdb_stat(txn, s->dbi_vocab, &vst)) != 0) {
        rc = snap_mdb_fail(RC_EIO, mrc, "cannot read the vocab database", s->dir);
        goto out;
    }
    if (want > vst.ms_entries) {
        rc = rc_error(RC_ECORRUPT, "%s: vocabulary '%s': meta says %" PRIu64 " ids, the database holds %zu records",
                      s->dir, name, want, vst.ms_entries);
        goto out;
    }
    m = idmap_new((size_t)want);
    if (!m) {
        rc = RC_ENOMEM;
        goto out;
    }
    MDB_val k = {nlen + 2, prefix}, v;
    uint64_t next = 0;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < nlen + 2 || memcmp(k.mv_data, prefix, nlen + 2) != 0) break;
        if (k.mv_size != nlen + 10 || next >= want ||
            rd_be64((const unsigned char *)k.mv_data + nlen + 2) != next ||
            v.mv_size > IDMAP_MAX_KEY) {
            rc = rc_error(RC_ECORRUPT, "%s: vocabulary '%s': bad entry at index %" PRIu64, s->dir,
                          name, next);
            goto out;
        }
        int64_t got = idmap_intern(m, v.mv_data, v.mv_size);
        if (got < 0) {
            rc = rc_wrap(RC_ENOMEM, "%s: vocabulary '%s'", s->dir, name);
            goto out;
        }
        if ((uint64_t)got != next) {
            rc = rc_error(RC_ECORRUPT, "%s: vocabulary '%s': duplicate id at index %" PRIu64,
                          s->dir, name, next);
            goto out;
        }
        next++;
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = snap_mdb_fail(RC_EIO, mrc, "cannot read the vocab database", s->dir);
        goto out;
    }
    if (next != want) {
        rc = rc_error(RC_ECORRUPT, "%s: vocabulary '%s' has %" PRIu64 " ids, meta says %" PRIu64,
                      s->dir, name, next, want);
        goto out;
    }
    *out = m;
    m = NULL;
out:
    idmap_free(m);
    if (cur) mdb_cursor_close(cur);
    if (txn) mdb_txn_abort(txn);
    return rc;
}

int snap_open_any(snap **out, const char *dir)
{
    int rc = snap_open(out, dir);
    if (rc != RC_ENOTFOUND) return rc;
    char msg[512], path[4096];
    uint64_t v;
    snprintf(msg, sizeof msg, "%s", rc_errmsg());
    if (snap_latest(dir, ".", &v) != RC_OK ||
        snprintf(path, sizeof path, "%s/%" PRIu64, dir, v) >= (int)sizeof path)
        return rc_error(rc, "%s", msg);
    return snap_open(out, path);
}

