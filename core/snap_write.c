/* core/snap_write.c - the snapshot writer: snap_writer_open, snap_put_tensor, snap_put_vocab,
 * snap_set_meta, snap_writer_publish, snap_writer_abort (see core/snap.h; the reader is
 * core/snap_read.c, the checks of files and folders core/snap_check.c).
 *
 * Writing. The writer owns ROOT/MODEL/.tmp-VERSION/ exclusively (created with mkdir, which fails if
 * another writer holds it), so its LMDB environment is opened with MDB_NOLOCK (no lock.mdb) and
 * MDB_NOSYNC (commits do not fsync; one mdb_env_sync(force) at publish). Every snap_put_* runs in
 * its own write transaction, so when the map is too small (MDB_MAP_FULL) only that transaction is
 * aborted, the map grows (mdb_env_set_mapsize, doubling, up to SNAP_MAX_MAP) and the put is
 * retried. Before each put the map is also grown ahead from the size of the value, so retries are
 * rare.
 *
 * Tensor values. One LMDB value per tensor: a 64-byte header (struct thdr, core/snap_impl.h)
 * then the data.
 * Values of at least one page go to LMDB overflow pages: a run of contiguous pages whose first page
 * has a 16-byte header (PAGEHDRSZ of LMDB 0.9 on 64-bit), so the value starts at (page start + 16)
 * and the data at (page start + 80): 16-byte aligned (address % 64 == 16, measured by the
 * snap_alignment test). Small tensors are padded to one page so that they also land in overflow
 * pages (a value smaller than about half a page would sit inside a leaf page, only 2-byte aligned).
 * A reader that nevertheless finds a misaligned data pointer (a file not written by this writer)
 * copies that tensor into an aligned buffer owned by the snap.
 *
 * Publishing: write meta, commit, mdb_env_sync(force), close the env, remove any lock.mdb, make
 * data.mdb 0444 and the folder 0555, fsync data.mdb and the folder, rename(.tmp-V, V), fsync
 * ROOT/MODEL. Any failure before the rename removes the folder (made writable again first).
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
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/snap_impl.h"


static int valid_model_name(const char *m)
{
    size_t n = m ? strlen(m) : 0;
    if (n == 0 || n > SNAP_MAX_MODEL) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = m[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int fsync_path(const char *path, int dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return rc_error(RC_EIO, "open %s: %s", path, strerror(errno));
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return rc_error(RC_EIO, "fsync %s: %s", path, strerror(e));
    }
    close(fd);
    return RC_OK;
}

/* ---- writer ---- */

struct snap_writer {
    MDB_env *env;
    MDB_dbi dbi_meta, dbi_tensors, dbi_vocab;
    size_t mapsize;
    unsigned psize;
    int failed;
    uint64_t version;
    char *model;
    char mdir[PATH_MAX - 64]; /* ROOT/MODEL */
    char tmpdir[PATH_MAX];    /* ROOT/MODEL/.tmp-V */
    char final[PATH_MAX];     /* ROOT/MODEL/V */
    json_t *fields;           /* snap_set_meta, or NULL */
    json_t *tensors;          /* name -> {dtype, shape, checksum} */
    json_t *vocabs;           /* name -> {"size": n} */
};


/* Grow the map (no transaction may be active) so that `extra` more bytes fit, plus slack. */
static int writer_reserve(snap_writer *w, size_t extra, int force_double)
{
    MDB_envinfo info;
    int mrc = mdb_env_info(w->env, &info);
    if (mrc) return snap_mdb_fail(RC_EIO, mrc, "mdb_env_info", w->tmpdir);
    size_t used = ((size_t)info.me_last_pgno + 1) * w->psize;
    size_t need = used + extra + extra / 8 + (size_t)256 * w->psize;
    if (!force_double && need <= w->mapsize) return RC_OK;
    size_t ns = w->mapsize * 2;
    if (ns < need + need / 4) ns = need + need / 4;
    ns = (ns + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);
    if (ns > SNAP_MAX_MAP) {
        if (need > SNAP_MAX_MAP || w->mapsize >= SNAP_MAX_MAP)
            return rc_error(RC_EFULL, "snapshot %s would exceed the %llu GiB map limit", w->tmpdir,
                            (unsigned long long)(SNAP_MAX_MAP >> 30));
        ns = SNAP_MAX_MAP;
    }
    mrc = mdb_env_set_mapsize(w->env, ns);
    if (mrc) return snap_mdb_fail(RC_EIO, mrc, "mdb_env_set_mapsize", w->tmpdir);
    w->mapsize = ns;
    return RC_OK;
}

void snap_writer_abort(snap_writer *w)
{
    if (!w) return;
    if (w->env) mdb_env_close(w->env);
    if (w->tmpdir[0] && snap_remove_flat_dir(w->tmpdir) != 0)
        log_warn("could not remove %s: %s", w->tmpdir, strerror(errno));
    json_decref(w->fields);
    json_decref(w->tensors);
    json_decref(w->vocabs);
    free(w->model);
    free(w);
}

int snap_writer_open(snap_writer **out, const char *root, const char *model, uint64_t version)
{
    if (!out || !root) return rc_error(RC_EINVAL, "snap_writer_open: NULL argument");
    *out = NULL;
    if (!valid_model_name(model))
        return rc_error(RC_EINVAL, "bad model name '%s' (1-%d characters of [A-Za-z0-9_-])",
                        model ? model : "(null)", SNAP_MAX_MODEL);
    if (version > SNAP_MAX_VERSION)
        return rc_error(RC_ERANGE, "version %" PRIu64 " is over the largest a writer publishes (%" PRIu64 ")",
                        version, (uint64_t)SNAP_MAX_VERSION);
    int rc = RC_OK, mrc;
    snap_writer *w = calloc(1, sizeof *w);
    if (!w) return rc_error(RC_ENOMEM, "out of memory");
    w->model = strdup(model);
    w->tensors = json_object();
    w->vocabs = json_object();
    if (!w->model || !w->tensors || !w->vocabs) {
        rc = rc_error(RC_ENOMEM, "out of memory");
        goto fail;
    }
    if ((size_t)snprintf(w->mdir, sizeof w->mdir, "%s/%s", root, model) >= sizeof w->mdir) {
        rc = rc_error(RC_ERANGE, "path %s/%s too long", root, model);
        goto fail;
    }
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        rc = rc_error(RC_EIO, "cannot create %s: %s", root, strerror(errno));
        goto fail;
    }
    if (mkdir(w->mdir, 0755) != 0 && errno != EEXIST) {
        rc = rc_error(RC_EIO, "cannot create %s: %s", w->mdir, strerror(errno));
        goto fail;
    }
    for (int attempt = 0;; attempt++) {
        uint64_t latest = 0, latest_tmp = 0;
        rc = snap_scan_model_dir(w->mdir, &latest, &latest_tmp, version, 1, NULL);
        if (rc) goto fail;
        uint64_t v = version, newest = latest > latest_tmp ? latest : latest_tmp;
        if (v == 0 && newest >= SNAP_MAX_VERSION) {
            rc = rc_error(RC_ERANGE,
                          "%s: newest version %" PRIu64 " leaves no room for a newer one (a writer "
                          "publishes versions up to %" PRIu64 ")",
                          w->mdir, newest, (uint64_t)SNAP_MAX_VERSION);
            goto fail;
        }
        if (v == 0) v = newest + 1;
        snprintf(w->final, sizeof w->final, "%s/%" PRIu64, w->mdir, v);
        snprintf(w->tmpdir, sizeof w->tmpdir, "%s/.tmp-%" PRIu64, w->mdir, v);
        struct stat st;
        if (stat(w->final, &st) == 0) {
            w->tmpdir[0] = '\0';
            rc = rc_error(RC_EEXIST, "snapshot %s is already published", w->final);
            goto fail;
        }
        if (mkdir(w->tmpdir, 0755) == 0) {
            w->version = v;
            break;
        }
        int e = errno;
        w->tmpdir[0] = '\0';
        if (e != EEXIST || version != 0 || attempt >= 8) {
            rc = rc_error(e == EEXIST ? RC_EBUSY : RC_EIO, "cannot create %s/.tmp-%" PRIu64 ": %s",
                          w->mdir, v, strerror(e));
            goto fail;
        }
    }
    if ((mrc = mdb_env_create(&w->env)) != 0) {
        rc = snap_mdb_fail(RC_EIO, mrc, "mdb_env_create", w->tmpdir);
        goto fail;
    }
    w->mapsize = SNAP_INIT_MAP;
    if ((mrc = mdb_env_set_maxdbs(w->env, 4)) != 0 ||
        (mrc = mdb_env_set_mapsize(w->env, w->mapsize)) != 0 ||
        (mrc = mdb_env_open(w->env, w->tmpdir, MDB_NOLOCK | MDB_NOSYNC | MDB_NOTLS, 0644)) != 0) {
        rc = snap_mdb_fail(RC_EIO, mrc, "cannot create the LMDB environment", w->tmpdir);
        goto fail;
    }
    MDB_stat ms;
    mdb_env_stat(w->env, &ms);
    w->psize = ms.ms_psize;
    MDB_txn *txn;
    if ((mrc = mdb_txn_begin(w->env, NULL, 0, &txn)) != 0) {
        rc = snap_mdb_fail(RC_EIO, mrc, "mdb_txn_begin", w->tmpdir);
        goto fail;
    }
    if ((mrc = mdb_dbi_open(txn, "meta", MDB_CREATE, &w->dbi_meta)) != 0 ||
        (mrc = mdb_dbi_open(txn, "tensors", MDB_CREATE, &w->dbi_tensors)) != 0 ||
        (mrc = mdb_dbi_open(txn, "vocab", MDB_CREATE, &w->dbi_vocab)) != 0)
        mdb_txn_abort(txn);
    else
        mrc = mdb_txn_commit(txn); /* frees txn, also on failure */
    if (mrc) {
        rc = snap_mdb_fail(RC_EIO, mrc, "cannot create the named databases", w->tmpdir);
        goto fail;
    }
    *out = w;
    return RC_OK;
fail:
    snap_writer_abort(w);
    return rc;
}

/* 1 if name can be a key of the meta JSON (jansson takes only valid UTF-8). */
static int utf8_name(const char *name)
{
    json_t *probe = json_string(name);
    json_decref(probe);
    return probe != NULL;
}

static int writer_check(snap_writer *w, const char *fn)
{
    if (!w) return rc_error(RC_EINVAL, "%s: NULL writer", fn);
    if (w->failed)
        return rc_error(RC_ESTATE, "%s: snapshot writer %s failed earlier; abort it", fn,
                        w->tmpdir);
    return RC_OK;
}

int snap_put_tensor(snap_writer *w, const char *name, snap_dtype dtype, int ndim,
                    const int64_t *shape, const void *data)
{
    int rc = writer_check(w, "snap_put_tensor");
    if (rc) return rc;
    size_t nlen = name ? strlen(name) : 0;
    if (nlen == 0 || nlen > SNAP_MAX_NAME)
        return rc_error(RC_EINVAL, "bad tensor name (1-%d bytes)", SNAP_MAX_NAME);
    size_t esz = snap_dtype_size(dtype);
    if (!esz) return rc_error(RC_EINVAL, "tensor '%s': unknown dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > SNAP_MAX_DIMS || (ndim > 0 && !shape))
        return rc_error(RC_EINVAL, "tensor '%s': ndim %d not in 0..%d", name, ndim, SNAP_MAX_DIMS);
    if (!utf8_name(name)) return rc_error(RC_EINVAL, "tensor name '%s' is not valid UTF-8", name);
    if (json_object_get(w->tensors, name))
        return rc_error(RC_EINVAL, "tensor '%s' stored twice", name);
    uint64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return rc_error(RC_EINVAL, "tensor '%s': negative dimension %" PRId64, name, shape[i]);
        if (shape[i] && count > (SNAP_MAX_MAP / esz) / (uint64_t)shape[i])
            return rc_error(RC_EINVAL, "tensor '%s' is too large", name);
        count *= (uint64_t)shape[i];
    }
    size_t nbytes = (size_t)(count * esz);
    if (nbytes && !data) return rc_error(RC_EINVAL, "tensor '%s': NULL data", name);
    struct thdr h;
    memset(&h, 0, sizeof h);
    h.magic = SNAP_MAGIC;
    h.dtype = (uint16_t)dtype;
    h.ndim = (uint16_t)ndim;
    for (int i = 0; i < ndim; i++)
        h.shape[i] = shape[i];
    h.nbytes = nbytes;
    h.checksum = snap_checksum(data, nbytes);
    /* Pad to one page so the value goes to overflow pages (aligned data, see the top of the file).
     */
    size_t vsize = SNAP_HDR + nbytes;
    if (vsize < w->psize) vsize = w->psize;

    json_t *shp = json_array(), *ent = NULL;
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, h.checksum);
    for (int i = 0; shp && i < ndim; i++)
        json_array_append_new(shp, json_integer(shape[i]));
    /* "O" adds a reference: shp is released here whatever json_pack did */
    ent = shp && json_array_size(shp) == (size_t)ndim
              ? json_pack("{s:s, s:O, s:s}", "dtype", snap_dtype_name(dtype), "shape", shp,
                          "checksum", hex)
              : NULL;
    json_decref(shp);
    if (!ent) return rc_error(RC_ENOMEM, "out of memory");
    /* Listed in meta first (set_new takes ent even on failure), unlisted again if the put fails:
     * a stored tensor missing from meta would make the snapshot unreadable. */
    if (json_object_set_new(w->tensors, name, ent) != 0)
        return rc_error(RC_ENOMEM, "out of memory listing tensor '%s'", name);

    for (int attempt = 0;; attempt++) {
        rc = writer_reserve(w, vsize + (size_t)4 * w->psize, attempt > 0);
        if (rc) break;
        MDB_txn *txn;
        int mrc = mdb_txn_begin(w->env, NULL, 0, &txn);
        if (mrc) {
            rc = snap_mdb_fail(RC_EIO, mrc, "mdb_txn_begin", w->tmpdir);
            break;
        }
        MDB_val k = {nlen, (void *)name}, v = {vsize, NULL};
        mrc = mdb_put(txn, w->dbi_tensors, &k, &v, MDB_RESERVE | MDB_NOOVERWRITE);
        if (mrc == 0) {
            unsigned char *dst = v.mv_data;
            memcpy(dst, &h, SNAP_HDR);
            if (nbytes) memcpy(dst + SNAP_HDR, data, nbytes);
            if (vsize > SNAP_HDR + nbytes)
                memset(dst + SNAP_HDR + nbytes, 0, vsize - SNAP_HDR - nbytes);
            mrc = mdb_txn_commit(txn);
        } else {
            mdb_txn_abort(txn);
        }
        if (mrc == MDB_MAP_FULL && attempt < 6) continue;
        if (mrc)
            rc = rc_error(RC_EIO, "%s/data.mdb: cannot store tensor '%s': %s", w->tmpdir, name,
                          mdb_strerror(mrc));
        break;
    }
    if (rc) {
        json_object_del(w->tensors, name);
        w->failed = 1;
        return rc;
    }
    return RC_OK;
}

static void be64(unsigned char *p, uint64_t x)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(x & 0xff);
        x >>= 8;
    }
}

/* LMDB's default key order: memcmp over the common length, then the shorter first. */
static int lmdb_keycmp(const void *a, size_t la, const void *b, size_t lb)
{
    int c = memcmp(a, b, la < lb ? la : lb);
    return c ? c : (la < lb ? -1 : la > lb);
}

static int vocab_idcmp(const void *a, const void *b, void *ctx)
{
    const idmap *m = ctx;
    size_t la, lb;
    const char *ka = idmap_key(m, *(const uint32_t *)a, &la),
               *kb = idmap_key(m, *(const uint32_t *)b, &lb);
    return lmdb_keycmp(ka, la, kb, lb);
}

/* Both halves of a vocabulary are written in key order ("<name>\0i" + big-endian index ascending,
 * then "<name>\0s" + id in LMDB order) so that, when nothing greater is stored yet, MDB_APPEND
 * fills the pages completely (a 1M-id vocabulary: about 3x smaller and several times faster than
 * random inserts, which leave pages half full). */
int snap_put_vocab(snap_writer *w, const char *name, const idmap *m)
{
    int rc = writer_check(w, "snap_put_vocab");
    if (rc) return rc;
    size_t nlen = name ? strlen(name) : 0;
    if (!m) return rc_error(RC_EINVAL, "snap_put_vocab: NULL map");
    if (nlen == 0 || nlen > SNAP_MAX_NAME)
        return rc_error(RC_EINVAL, "bad vocabulary name (1-%d bytes)", SNAP_MAX_NAME);
    if (!utf8_name(name)) return rc_error(RC_EINVAL, "vocabulary name '%s' is not valid UTF-8", name);
    if (json_object_get(w->vocabs, name))
        return rc_error(RC_EINVAL, "vocabulary '%s' stored twice", name);
    size_t n = idmap_size(m);
    if (n > UINT32_MAX)
        return rc_error(RC_EINVAL, "vocabulary '%s' has too many ids (%zu)", name, n);
    size_t maxkey = (size_t)mdb_env_get_maxkeysize(w->env);
    if (nlen + 2 + 8 > maxkey) return rc_error(RC_EINVAL, "vocabulary name '%s' too long", name);
    size_t est = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *key = idmap_key(m, (int64_t)i, &len);
        if (!key) return rc_error(RC_EINVAL, "vocabulary '%s': idmap has no key %zu", name, i);
        if (nlen + 2 + len > maxkey)
            return rc_error(
                RC_EINVAL,
                "vocabulary '%s': id %zu is %zu bytes, snapshots hold ids up to %zu bytes", name, i,
                len, maxkey - nlen - 2);
        est += 2 * (8 + 2 + nlen + 2) + len * 2 + 8 + 8;
    }
    unsigned char *kbuf = malloc(maxkey);
    uint32_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!kbuf || !order) {
        free(kbuf);
        free(order);
        return rc_error(RC_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    qsort_r(order, n, sizeof *order, vocab_idcmp, (void *)m);
    memcpy(kbuf, name, nlen);
    kbuf[nlen] = '\0';
    for (int attempt = 0;; attempt++) {
        rc = writer_reserve(w, est * 3 + (size_t)16 * w->psize, attempt > 0);
        if (rc) break;
        MDB_txn *txn;
        MDB_cursor *cur;
        int mrc = mdb_txn_begin(w->env, NULL, 0, &txn);
        if (mrc) {
            rc = snap_mdb_fail(RC_EIO, mrc, "mdb_txn_begin", w->tmpdir);
            break;
        }
        /* append mode only if every stored key sorts before this vocabulary's first key */
        unsigned flags = MDB_NOOVERWRITE;
        MDB_val lk, lv;
        memset(kbuf + nlen + 1, 0, 9);
        kbuf[nlen + 1] = 'i';
        if ((mrc = mdb_cursor_open(txn, w->dbi_vocab, &cur)) == 0) {
            mrc = mdb_cursor_get(cur, &lk, &lv, MDB_LAST);
            if (mrc == MDB_NOTFOUND ||
                (mrc == 0 && lmdb_keycmp(lk.mv_data, lk.mv_size, kbuf, nlen + 10) < 0)) {
                flags = MDB_APPEND;
                mrc = 0;
            }
            mdb_cursor_close(cur);
        }
        for (size_t i = 0; i < n && mrc == 0; i++) {
            size_t len;
            const char *key = idmap_key(m, (int64_t)i, &len);
            be64(kbuf + nlen + 2, i);
            MDB_val k = {nlen + 10, kbuf}, v = {len, (void *)key};
            mrc = mdb_put(txn, w->dbi_vocab, &k, &v, flags);
        }
        kbuf[nlen + 1] = 's';
        for (size_t j = 0; j < n && mrc == 0; j++) {
            size_t len;
            uint32_t i = order[j];
            const char *key = idmap_key(m, i, &len);
            unsigned char idx[8];
            be64(idx, i);
            memcpy(kbuf + nlen + 2, key, len);
            MDB_val k = {nlen + 2 + len, kbuf}, v = {8, idx};
            mrc = mdb_put(txn, w->dbi_vocab, &k, &v, flags);
            if (mrc == MDB_KEYEXIST) {
                mdb_txn_abort(txn);
                free(kbuf);
                free(order);
                w->failed = 1;
                return rc_error(RC_EINVAL, "vocabulary '%s': id %" PRIu32 " is a duplicate", name,
                                i);
            }
        }
        if (mrc == 0)
            mrc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        if (mrc == MDB_MAP_FULL && attempt < 6) continue;
        if (mrc)
            rc = rc_error(RC_EIO, "%s/data.mdb: cannot store vocabulary '%s': %s", w->tmpdir, name,
                          mdb_strerror(mrc));
        break;
    }
    free(kbuf);
    free(order);
    if (rc) {
        w->failed = 1;
        return rc;
    }
    if (json_object_set_new(w->vocabs, name, json_pack("{s:I}", "size", (json_int_t)n)) != 0) {
        w->failed = 1; /* stored but not listed: publishing it would lose the vocabulary */
        return rc_error(RC_ENOMEM, "out of memory listing vocabulary '%s'", name);
    }
    return RC_OK;
}

int snap_set_meta(snap_writer *w, const json_t *fields)
{
    int rc = writer_check(w, "snap_set_meta");
    if (rc) return rc;
    if (!json_is_object(fields))
        return rc_error(RC_EINVAL, "snap_set_meta: fields must be a JSON object");
    if (w->fields) return rc_error(RC_ESTATE, "snap_set_meta called twice");
    w->fields = json_deep_copy(fields);
    if (!w->fields) return rc_error(RC_ENOMEM, "out of memory");
    return RC_OK;
}

static int owned_key(const char *k)
{
    static const char *const owned[] = {"format_version", "model",   "version",
                                        "created_at",     "tensors", "vocabs"};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (strcmp(k, owned[i]) == 0) return 1;
    return 0;
}

static json_t *writer_meta(snap_writer *w)
{
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *m = json_pack("{s:i, s:s, s:I, s:s}", "format_version", SNAP_FORMAT_VERSION, "model",
                          w->model, "version", (json_int_t)w->version, "created_at", ts);
    if (!m) return NULL;
    int bad = 0; /* a key that could not be set: NULL rather than a meta missing a tensor listing */
    if (w->fields) {
        const char *k;
        json_t *v;
        json_object_foreach(w->fields, k, v)
        {
            if (!owned_key(k)) bad |= json_object_set(m, k, v);
        }
    }
    bad |= json_object_set(m, "tensors", w->tensors);
    bad |= json_object_set(m, "vocabs", w->vocabs);
    if (bad) {
        json_decref(m);
        return NULL;
    }
    return m;
}

int snap_writer_publish(snap_writer *w, uint64_t *version_out)
{
    int rc = writer_check(w, "snap_writer_publish");
    if (rc) {
        snap_writer_abort(w);
        return rc;
    }
    char *text = NULL, path[PATH_MAX + 16];
    json_t *meta = writer_meta(w);
    if (meta) text = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    if (!text) {
        rc = rc_error(RC_ENOMEM, "out of memory");
        goto fail;
    }
    size_t tlen = strlen(text);
    for (int attempt = 0;; attempt++) {
        rc = writer_reserve(w, tlen + (size_t)8 * w->psize, attempt > 0);
        if (rc) goto fail;
        MDB_txn *txn;
        int mrc = mdb_txn_begin(w->env, NULL, 0, &txn);
        if (mrc) {
            rc = snap_mdb_fail(RC_EIO, mrc, "mdb_txn_begin", w->tmpdir);
            goto fail;
        }
        MDB_val k = {4, "meta"}, v = {tlen, text};
        mrc = mdb_put(txn, w->dbi_meta, &k, &v, 0);
        if (mrc == 0)
            mrc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        if (mrc == MDB_MAP_FULL && attempt < 6) continue;
        if (mrc) {
            rc = snap_mdb_fail(RC_EIO, mrc, "cannot store meta", w->tmpdir);
            goto fail;
        }
        break;
    }
    free(text);
    text = NULL;
    int mrc = mdb_env_sync(w->env, 1);
    if (mrc) {
        rc = snap_mdb_fail(RC_EIO, mrc, "mdb_env_sync", w->tmpdir);
        goto fail;
    }
    mdb_env_close(w->env);
    w->env = NULL;
    snprintf(path, sizeof path, "%s/lock.mdb", w->tmpdir);
    if (unlink(path) != 0 && errno != ENOENT) {
        rc = rc_error(RC_EIO, "cannot remove %s: %s", path, strerror(errno));
        goto fail;
    }
    /* Published read-only: a version is never modified in place (readers map it; truncating a
     * mapped file kills them with SIGBUS). */
    snprintf(path, sizeof path, "%s/data.mdb", w->tmpdir);
    if (chmod(path, 0444) != 0 || chmod(w->tmpdir, 0555) != 0) {
        rc = rc_error(RC_EIO, "cannot make %s read-only: %s", path, strerror(errno));
        goto fail;
    }
    if ((rc = fsync_path(path, 0)) != 0) goto fail;
    if ((rc = fsync_path(w->tmpdir, 1)) != 0) goto fail;
    if (rename(w->tmpdir, w->final) != 0) {
        int e = errno;
        if (e == EEXIST || e == ENOTEMPTY)
            rc = rc_error(RC_EEXIST, "snapshot %s was published by another writer meanwhile",
                          w->final);
        else
            rc = rc_error(RC_EIO, "rename %s -> %s: %s", w->tmpdir, w->final, strerror(e));
        goto fail;
    }
    w->tmpdir[0] = '\0'; /* published: nothing to remove any more */
    rc = fsync_path(w->mdir, 1);
    if (rc) log_warn("published %s but could not sync its folder: %s", w->final, rc_errmsg());
    rc = RC_OK;
    log_info("published snapshot %s", w->final);
    if (version_out) *version_out = w->version;
    snap_writer_abort(w);
    return RC_OK;
fail:
    free(text);
    if (version_out) *version_out = 0;
    snap_writer_abort(w);
    return rc;
}
