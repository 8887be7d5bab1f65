/* core/snap.c - immutable, versioned model snapshots in LMDB. See core/snap.h and DESIGN.md
 * section 3.
 *
 * Writing. The writer owns ROOT/MODEL/.tmp-VERSION/ exclusively (created with mkdir, which fails if
 * another writer holds it), so its LMDB environment is opened with MDB_NOLOCK (no lock.mdb) and
 * MDB_NOSYNC (commits do not fsync; one mdb_env_sync(force) at publish). Every snap_put_* runs in
 * its own write transaction, so when the map is too small (MDB_MAP_FULL) only that transaction is
 * aborted, the map grows (mdb_env_set_mapsize, doubling, up to SNAP_MAX_MAP) and the put is
 * retried. Before each put the map is also grown ahead from the size of the value, so retries are
 * rare.
 *
 * Tensor values. One LMDB value per tensor: a 64-byte header (struct thdr below) then the data.
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
 *
 * Reading. snap_open first checks the file structure itself (meta pages, page bounds, B-tree pages,
 * node bounds, overflow runs: see check_lmdb_file) because LMDB trusts its file and would read out
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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"

#define SNAP_MAGIC 0x544e5352u /* "RSNT" little-endian */
#define SNAP_HDR 64
#define SNAP_MAX_MAP (64ULL << 30)
#define SNAP_INIT_MAP (64ULL << 20)
#define SNAP_MAX_NAME 255
#define SNAP_MAX_MODEL 64
#define SNAP_TMP_MAX_AGE 3600
#define SNAP_MAX_VERSION ((uint64_t)INT64_MAX) /* meta stores the version as a JSON (i64) integer */

/* The 64-byte tensor header, stored in host byte order (little-endian x86-64/arm64; a big-endian
 * reader would see a wrong magic and refuse). */
struct thdr {
    uint32_t magic;
    uint16_t dtype;
    uint16_t ndim;
    int64_t shape[SNAP_MAX_DIMS];
    uint64_t nbytes;
    uint64_t checksum;
    uint64_t reserved;
};
_Static_assert(sizeof(struct thdr) == SNAP_HDR, "tensor header must be 64 bytes");

size_t snap_dtype_size(snap_dtype t)
{
    switch (t) {
    case SNAP_F32:
        return 4;
    case SNAP_I32:
        return 4;
    case SNAP_I64:
        return 8;
    case SNAP_U8:
        return 1;
    case SNAP_BF16:
        return 2;
    case SNAP_F64:
        return 8;
    }
    return 0;
}

const char *snap_dtype_name(snap_dtype t)
{
    switch (t) {
    case SNAP_F32:
        return "f32";
    case SNAP_I32:
        return "i32";
    case SNAP_I64:
        return "i64";
    case SNAP_U8:
        return "u8";
    case SNAP_BF16:
        return "bf16";
    case SNAP_F64:
        return "f64";
    }
    return NULL;
}

static int dtype_parse(const char *s)
{
    for (int t = SNAP_F32; t <= SNAP_F64; t++)
        if (strcmp(s, snap_dtype_name((snap_dtype)t)) == 0) return t;
    return 0;
}

/* ---- checksum ---- */

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t lane(uint64_t h, uint64_t v)
{
    h = (h ^ v) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}

uint64_t snap_checksum(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h0 = 0x243f6a8885a308d3ULL, h1 = 0x13198a2e03707344ULL, h2 = 0xa4093822299f31d0ULL,
             h3 = 0x082efa98ec4e6c89ULL;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        h0 = lane(h0, load64(p + i));
        h1 = lane(h1, load64(p + i + 8));
        h2 = lane(h2, load64(p + i + 16));
        h3 = lane(h3, load64(p + i + 24));
    }
    for (; i + 8 <= n; i += 8)
        h0 = lane(h0, load64(p + i));
    if (i < n) {
        unsigned char tail[8] = {0};
        memcpy(tail, p + i, n - i);
        h1 = lane(h1, load64(tail));
    }
    uint64_t h = hash_fmix64(h0) ^ (hash_fmix64(h1) * 3) ^ (hash_fmix64(h2) * 5) ^
                 (hash_fmix64(h3) * 7);
    return hash_fmix64(h ^ (uint64_t)n * 0x9e3779b97f4a7c15ULL);
}

/* ---- small helpers ---- */

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

/* A canonical published version name: 1-20 digits, no leading zero, not 0, at most UINT64_MAX
 * (18446744073709551615). Returns 1 and sets *v for one; 0 for anything else, with *overflow set
 * when the name is all digits (no leading zero) but too long or too large for a u64. */
static int parse_version_name(const char *s, uint64_t *v, int *overflow)
{
    size_t n = strlen(s);
    if (overflow) *overflow = 0;
    if (n == 0 || s[0] == '0') return 0;
    uint64_t x = 0;
    int big = n > 20;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10) big = 1;
        else x = x * 10 + d;
    }
    if (big) {
        if (overflow) *overflow = 1;
        return 0;
    }
    *v = x;
    return 1;
}

/* Log an all-digit folder name that is not a version (over 20 digits or over UINT64_MAX) once per
 * name, not on every scan: remembers a hash of the last few names logged. */
static void warn_overflow_name(const char *mdir, const char *name)
{
    static _Atomic uint64_t seen[8];
    static _Atomic unsigned next;
    uint64_t h = hash_str(name, hash_str(mdir, 0x5eed)) | 1;
    for (int i = 0; i < 8; i++)
        if (atomic_load_explicit(&seen[i], memory_order_relaxed) == h) return;
    atomic_store_explicit(&seen[atomic_fetch_add(&next, 1) % 8], h, memory_order_relaxed);
    log_warn("%s: ignoring folder '%.40s%s': not a version (versions are 1 to 18446744073709551615)",
             mdir, name, strlen(name) > 40 ? "..." : "");
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

/* Remove a flat folder (the files in it, then the folder), making it writable first. Best effort;
 * returns 0 if it is gone. */
static int remove_flat_dir(const char *path)
{
    chmod(path, 0700); /* a folder made read-only for publishing: its files cannot be unlinked */
    DIR *d = opendir(path);
    if (!d) return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if ((size_t)snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= sizeof p) continue;
        unlink(p);
    }
    closedir(d);
    return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
}

int snap_path(char *buf, size_t cap, const char *root, const char *model, uint64_t version)
{
    if (!buf || !root || !model) return rc_error(RC_EINVAL, "snap_path: NULL argument");
    int n = snprintf(buf, cap, "%s/%s/%" PRIu64, root, model, version);
    if (n < 0 || (size_t)n >= cap)
        return rc_error(RC_ERANGE, "snapshot path %s/%s/%" PRIu64 " too long", root, model,
                        version);
    return RC_OK;
}

/* A growing list of versions. */
struct vlist {
    uint64_t *v;
    size_t n, cap;
};

static int vlist_add(struct vlist *l, uint64_t v)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        uint64_t *p = realloc(l->v, nc * sizeof *p);
        if (!p) return rc_error(RC_ENOMEM, "out of memory listing snapshot versions");
        l->v = p;
        l->cap = nc;
    }
    l->v[l->n++] = v;
    return RC_OK;
}

/* Scan ROOT/MODEL: newest published version, newest fresh .tmp-N, every published version (when
 * all is not NULL), and (when do_clean) remove .tmp-* folders idle for over an hour and the
 * .tmp-<clean> folder. */
static int scan_model_dir(const char *mdir, uint64_t *latest, uint64_t *latest_tmp, uint64_t clean,
                          int do_clean, struct vlist *all)
{
    DIR *d = opendir(mdir);
    if (!d) {
        if (errno == ENOENT) return rc_error(RC_ENOTFOUND, "no snapshot folder %s", mdir);
        return rc_error(RC_EIO, "cannot read %s: %s", mdir, strerror(errno));
    }
    uint64_t best = 0, best_tmp = 0;
    struct dirent *e;
    char p[PATH_MAX];
    time_t now = time(NULL);
    int rc = RC_OK;
    while ((e = readdir(d)) != NULL) {
        uint64_t v;
        int overflow;
        if ((size_t)snprintf(p, sizeof p, "%s/%s", mdir, e->d_name) >= sizeof p) continue;
        if (strncmp(e->d_name, ".tmp-", 5) == 0) {
            struct stat st;
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
            int have_v = parse_version_name(e->d_name + 5, &v, NULL);
            /* a live writer keeps writing data.mdb but rarely touches the folder itself: the newer
             * of the two tells when it was last active */
            time_t last = st.st_mtime;
            char dp[PATH_MAX];
            struct stat ds;
            if ((size_t)snprintf(dp, sizeof dp, "%s/data.mdb", p) < sizeof dp && stat(dp, &ds) == 0 &&
                ds.st_mtime > last)
                last = ds.st_mtime;
            int stale = now - last > SNAP_TMP_MAX_AGE;
            if (do_clean && (stale || (have_v && v == clean))) {
                if (remove_flat_dir(p) == 0)
                    log_info("removed %s snapshot folder %s", stale ? "stale" : "reused", p);
                else
                    log_warn("could not remove %s: %s", p, strerror(errno));
                continue;
            }
            if (have_v && !stale && v > best_tmp) best_tmp = v;
            continue;
        }
        if (!parse_version_name(e->d_name, &v, &overflow)) {
            if (overflow) warn_overflow_name(mdir, e->d_name);
            continue;
        }
        if (e->d_type != DT_DIR) {
            struct stat st;
            if (e->d_type != DT_UNKNOWN && e->d_type != DT_LNK) continue;
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        }
        if (v > best) best = v;
        if (all && (rc = vlist_add(all, v)) != RC_OK) break;
    }
    closedir(d);
    if (rc) return rc;
    if (latest) *latest = best;
    if (latest_tmp) *latest_tmp = best_tmp;
    return RC_OK;
}

int snap_latest(const char *root, const char *model, uint64_t *version)
{
    char mdir[PATH_MAX];
    if (!root || !model || !version) return rc_error(RC_EINVAL, "snap_latest: NULL argument");
    if ((size_t)snprintf(mdir, sizeof mdir, "%s/%s", root, model) >= sizeof mdir)
        return rc_error(RC_ERANGE, "path %s/%s too long", root, model);
    uint64_t v = 0;
    int rc = scan_model_dir(mdir, &v, NULL, 0, 0, NULL);
    if (rc) return rc;
    if (v == 0) return rc_error(RC_ENOTFOUND, "no published snapshot in %s", mdir);
    *version = v;
    return RC_OK;
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int snap_versions(const char *root, const char *model, uint64_t **out, size_t *n)
{
    if (!root || !model || !out || !n) return rc_error(RC_EINVAL, "snap_versions: NULL argument");
    *out = NULL;
    *n = 0;
    char mdir[PATH_MAX];
    if ((size_t)snprintf(mdir, sizeof mdir, "%s/%s", root, model) >= sizeof mdir)
        return rc_error(RC_ERANGE, "path %s/%s too long", root, model);
    struct vlist l = {NULL, 0, 0};
    int rc = scan_model_dir(mdir, NULL, NULL, 0, 0, &l);
    if (rc) {
        free(l.v);
        return rc;
    }
    if (l.n) qsort(l.v, l.n, sizeof *l.v, cmp_desc);
    *out = l.v;
    *n = l.n;
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

static int mdb_fail(int code, int mrc, const char *what, const char *path)
{
    return rc_error(code, "%s (%s): %s", what, path, mdb_strerror(mrc));
}

/* Grow the map (no transaction may be active) so that `extra` more bytes fit, plus slack. */
static int writer_reserve(snap_writer *w, size_t extra, int force_double)
{
    MDB_envinfo info;
    int mrc = mdb_env_info(w->env, &info);
    if (mrc) return mdb_fail(RC_EIO, mrc, "mdb_env_info", w->tmpdir);
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
    if (mrc) return mdb_fail(RC_EIO, mrc, "mdb_env_set_mapsize", w->tmpdir);
    w->mapsize = ns;
    return RC_OK;
}

void snap_writer_abort(snap_writer *w)
{
    if (!w) return;
    if (w->env) mdb_env_close(w->env);
    if (w->tmpdir[0] && remove_flat_dir(w->tmpdir) != 0)
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
        rc = scan_model_dir(w->mdir, &latest, &latest_tmp, version, 1, NULL);
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
        rc = mdb_fail(RC_EIO, mrc, "mdb_env_create", w->tmpdir);
        goto fail;
    }
    w->mapsize = SNAP_INIT_MAP;
    if ((mrc = mdb_env_set_maxdbs(w->env, 4)) != 0 ||
        (mrc = mdb_env_set_mapsize(w->env, w->mapsize)) != 0 ||
        (mrc = mdb_env_open(w->env, w->tmpdir, MDB_NOLOCK | MDB_NOSYNC | MDB_NOTLS, 0644)) != 0) {
        rc = mdb_fail(RC_EIO, mrc, "cannot create the LMDB environment", w->tmpdir);
        goto fail;
    }
    MDB_stat ms;
    mdb_env_stat(w->env, &ms);
    w->psize = ms.ms_psize;
    MDB_txn *txn;
    if ((mrc = mdb_txn_begin(w->env, NULL, 0, &txn)) != 0) {
        rc = mdb_fail(RC_EIO, mrc, "mdb_txn_begin", w->tmpdir);
        goto fail;
    }
    if ((mrc = mdb_dbi_open(txn, "meta", MDB_CREATE, &w->dbi_meta)) != 0 ||
        (mrc = mdb_dbi_open(txn, "tensors", MDB_CREATE, &w->dbi_tensors)) != 0 ||
        (mrc = mdb_dbi_open(txn, "vocab", MDB_CREATE, &w->dbi_vocab)) != 0)
        mdb_txn_abort(txn);
    else
        mrc = mdb_txn_commit(txn); /* frees txn, also on failure */
    if (mrc) {
        rc = mdb_fail(RC_EIO, mrc, "cannot create the named databases", w->tmpdir);
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
            rc = mdb_fail(RC_EIO, mrc, "mdb_txn_begin", w->tmpdir);
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

static uint64_t rd_be64(const unsigned char *p)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = (x << 8) | p[i];
    return x;
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
            rc = mdb_fail(RC_EIO, mrc, "mdb_txn_begin", w->tmpdir);
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
            rc = mdb_fail(RC_EIO, mrc, "mdb_txn_begin", w->tmpdir);
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
            rc = mdb_fail(RC_EIO, mrc, "cannot store meta", w->tmpdir);
            goto fail;
        }
        break;
    }
    free(text);
    text = NULL;
    int mrc = mdb_env_sync(w->env, 1);
    if (mrc) {
        rc = mdb_fail(RC_EIO, mrc, "mdb_env_sync", w->tmpdir);
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

/* ---- LMDB file structure check ----
 * LMDB 0.9 on a 64-bit host: page header 16 bytes (pgno u64, pad u16, flags u16, lower u16, upper
 * u16 or overflow page count u32); meta page: header then MDB_meta (magic, version, address,
 * mapsize, 2 x MDB_db, last_pg, txnid); MDB_db 48 bytes (pad u32, flags u16, depth u16, branch,
 * leaf, overflow, entries, root: u64); node: lo u16, hi u16, flags u16, ksize u16, key, data. */
#define L_PAGEHDR 16
#define L_MAGIC 0xBEEFC0DEu
#define L_VERSION 1u
#define L_P_BRANCH 0x01
#define L_P_LEAF 0x02
#define L_P_OVERFLOW 0x04
#define L_P_META 0x08
#define L_F_BIGDATA 0x01
#define L_F_SUBDATA 0x02
#define L_DB_SIZE 48
#define L_MAX_DEPTH 30
#define L_P_INVALID UINT64_MAX

struct lcheck {
    const unsigned char *map;
    size_t size;
    uint64_t psize, npages; /* npages = last_pg + 1 */
    unsigned char *seen;    /* one bit per page */
    const char *path;
};

static inline uint16_t rd16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static inline uint32_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static int lbad(const struct lcheck *c, uint64_t pg, const char *what)
{
    return rc_error(RC_ECORRUPT, "%s: corrupt LMDB file: page %" PRIu64 ": %s", c->path, pg, what);
}

static int check_tree(struct lcheck *c, uint64_t pg, int depth, int want_depth, int main_db);

static int check_db(struct lcheck *c, const unsigned char *db, int main_db, uint64_t from)
{
    uint16_t flags = rd16(db + 4), depth = rd16(db + 6);
    uint64_t root = load64(db + 40);
    if (flags != 0) return lbad(c, from, "database with unsupported flags");
    if (root == L_P_INVALID)
        return depth == 0 ? RC_OK : lbad(c, from, "empty database with a depth");
    if (depth < 1 || depth > L_MAX_DEPTH) return lbad(c, from, "database depth out of range");
    return check_tree(c, root, 1, depth, main_db);
}

static int check_tree(struct lcheck *c, uint64_t pg, int depth, int want_depth, int main_db)
{
    if (pg < 2 || pg >= c->npages) return lbad(c, pg, "page number out of range");
    if (c->seen[pg >> 3] & (1u << (pg & 7))) return lbad(c, pg, "page referenced twice");
    c->seen[pg >> 3] |= (unsigned char)(1u << (pg & 7));
    const unsigned char *p = c->map + pg * c->psize;
    uint16_t flags = rd16(p + 10), lower = rd16(p + 12), upper = rd16(p + 14);
    if (load64(p) != pg) return lbad(c, pg, "page number mismatch");
    int leaf = flags == L_P_LEAF;
    if (!leaf && flags != L_P_BRANCH) return lbad(c, pg, "not a branch or leaf page");
    if (leaf != (depth == want_depth)) return lbad(c, pg, "tree depth mismatch");
    if (lower < L_PAGEHDR || lower > upper || upper > c->psize || (lower & 1))
        return lbad(c, pg, "bad free-space bounds");
    unsigned nkeys = (lower - L_PAGEHDR) / 2;
    if (nkeys == 0) return lbad(c, pg, "empty page");
    for (unsigned i = 0; i < nkeys; i++) {
        uint16_t off = rd16(p + L_PAGEHDR + 2 * i);
        if (off < upper || (off & 1) || (uint64_t)off + 8 > c->psize)
            return lbad(c, pg, "node offset out of range");
        const unsigned char *n = p + off;
        uint16_t lo = rd16(n), hi = rd16(n + 2), nf = rd16(n + 4), ks = rd16(n + 6);
        uint64_t end = (uint64_t)off + 8 + ks;
        if (end > c->psize) return lbad(c, pg, "key out of page");
        if (!leaf) {
            uint64_t child = lo | ((uint64_t)hi << 16) | ((uint64_t)nf << 32);
            int rc = check_tree(c, child, depth + 1, want_depth, main_db);
            if (rc) return rc;
            continue;
        }
        uint64_t dsize = lo | ((uint64_t)hi << 16);
        if (nf & ~(L_F_BIGDATA | L_F_SUBDATA) || nf == (L_F_BIGDATA | L_F_SUBDATA))
            return lbad(c, pg, "unsupported node flags");
        if (main_db != !!(nf & L_F_SUBDATA)) return lbad(c, pg, "unexpected sub-database record");
        if (nf & L_F_BIGDATA) {
            if (end + 8 > c->psize) return lbad(c, pg, "overflow reference out of page");
            uint64_t op = load64(n + 8 + ks);
            if (op < 2 || op >= c->npages) return lbad(c, pg, "overflow page out of range");
            const unsigned char *o = c->map + op * c->psize;
            uint32_t np = rd32(o + 12);
            uint64_t need = (L_PAGEHDR - 1 + dsize) / c->psize + 1;
            if (load64(o) != op || rd16(o + 10) != L_P_OVERFLOW || np < need || op + np > c->npages)
                return lbad(c, op, "bad overflow page run");
            continue;
        }
        if (end + dsize > c->psize) return lbad(c, pg, "value out of page");
        if (nf & L_F_SUBDATA) {
            if (dsize != L_DB_SIZE) return lbad(c, pg, "bad sub-database record");
            int rc = check_db(c, n + 8 + ks, 0, pg);
            if (rc) return rc;
        }
    }
    return RC_OK;
}

/* Check the structure LMDB will walk before letting LMDB near the file. fd is data.mdb. */
static int check_lmdb_file(int fd, const char *path)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return rc_error(RC_EIO, "stat %s: %s", path, strerror(errno));
    size_t size = (size_t)st.st_size;
    unsigned char hdr[L_PAGEHDR + 136];
    if (size < 2 * 512 || pread(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr)
        return rc_error(RC_ECORRUPT, "%s: truncated file (%zu bytes): not an LMDB snapshot", path,
                        size);
    uint64_t psize = rd32(hdr + L_PAGEHDR + 24); /* mm_psize = mm_dbs[0].md_pad */
    if (psize < 512 || psize > 65536 || (psize & (psize - 1)))
        return rc_error(RC_ECORRUPT, "%s: corrupt LMDB file: page size %" PRIu64, path, psize);
    if (size < 2 * psize)
        return rc_error(RC_ECORRUPT, "%s: truncated file (%zu bytes, page size %" PRIu64 ")", path,
                        size, psize);
    /* LMDB writes whole pages: any other size means the file was cut or appended to after it was
     * written (LMDB maps it: a page past the end of the file is SIGBUS, not an error) */
    if (size % psize)
        return rc_error(RC_ECORRUPT,
                        "%s: truncated or modified file (%zu bytes, not a whole number of %" PRIu64
                        "-byte pages)",
                        path, size, psize);
    const unsigned char *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) return rc_error(RC_EIO, "mmap %s: %s", path, strerror(errno));
    int rc = RC_OK;
    struct lcheck c = {map, size, psize, 0, NULL, path};
    const unsigned char *m[2];
    for (int i = 0; i < 2; i++) {
        const unsigned char *p = map + (size_t)i * psize;
        m[i] = p + L_PAGEHDR;
        if (load64(p) != (uint64_t)i || !(rd16(p + 10) & L_P_META) || rd32(m[i]) != L_MAGIC) {
            rc = rc_error(RC_ECORRUPT, "%s: not an LMDB file (bad meta page %d)", path, i);
            goto out;
        }
        if (rd32(m[i] + 4) != L_VERSION) {
            rc =
                rc_error(RC_ECORRUPT, "%s: unsupported LMDB data version %u", path, rd32(m[i] + 4));
            goto out;
        }
        if (rd32(m[i] + 24) != psize || (rd16(m[i] + 28) & ~(0x08 | 0x4000))) {
            rc = rc_error(RC_ECORRUPT, "%s: corrupt LMDB meta page %d", path, i);
            goto out;
        }
    }
    /* LMDB 0.9 uses the meta page with the larger txnid (meta 0 on a tie). */
    const unsigned char *meta = load64(m[0] + 128) < load64(m[1] + 128) ? m[1] : m[0];
    uint64_t last = load64(meta + 120);
    if (last < 1 || last >= size / psize) {
        if (last < 1)
            rc = rc_error(RC_ECORRUPT, "%s: corrupt LMDB meta page (last page %" PRIu64 ")", path,
                          last);
        else
            rc = rc_error(RC_ECORRUPT,
                          "%s: truncated file: %zu bytes, LMDB needs %" PRIu64 " (%" PRIu64
                          " pages of %" PRIu64 " bytes)",
                          path, size, (last + 1) * psize, last + 1, psize);
        goto out;
    }
    c.npages = last + 1;
    c.seen = calloc((size_t)(c.npages + 7) / 8, 1);
    if (!c.seen) {
        rc = rc_error(RC_ENOMEM, "out of memory");
        goto out;
    }
    rc = check_db(&c, meta + 24 + L_DB_SIZE, 1, 0); /* the main db; the free db is never read */
out:
    free(c.seen);
    munmap((void *)map, size);
    return rc;
}

/* ---- reader ---- */

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
        return mdb_fail(RC_ECORRUPT, mrc, "cannot read the tensors database", dir);
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
        if (v.mv_size < SNAP_HDR) {
            rc = rc_error(RC_ECORRUPT,
                          "%s: tensor '%s': value of %zu bytes is shorter than its header", dir,
                          name, v.mv_size);
            goto out;
        }
        memcpy(&h, v.mv_data, SNAP_HDR);
        size_t esz = snap_dtype_size((snap_dtype)h.dtype);
        if (h.magic != SNAP_MAGIC || !esz || h.ndim > SNAP_MAX_DIMS) {
            rc =
                rc_error(RC_ECORRUPT, "%s: tensor '%s': bad header (magic %08x, dtype %u, ndim %u)",
                         dir, name, h.magic, h.dtype, h.ndim);
            goto out;
        }
        uint64_t count = 1;
        for (int d = 0; d < h.ndim; d++) {
            if (h.shape[d] < 0 ||
                (h.shape[d] && count > (SNAP_MAX_MAP / esz) / (uint64_t)h.shape[d])) {
                rc = rc_error(RC_ECORRUPT, "%s: tensor '%s': bad shape in header", dir, name);
                goto out;
            }
            count *= (uint64_t)h.shape[d];
        }
        if (h.nbytes != count * esz || v.mv_size < SNAP_HDR + h.nbytes) {
            rc = rc_error(RC_ECORRUPT,
                          "%s: tensor '%s': %zu bytes stored, header says %" PRIu64
                          " (shape needs %" PRIu64 ")",
                          dir, name, v.mv_size - SNAP_HDR, h.nbytes, count * esz);
            goto out;
        }
        /* against meta */
        json_t *jd = json_object_get(e, "dtype"), *js = json_object_get(e, "shape"),
               *jc = json_object_get(e, "checksum");
        int same = json_is_string(jd) && dtype_parse(json_string_value(jd)) == h.dtype &&
                   json_is_array(js) && json_array_size(js) == h.ndim && json_is_string(jc);
        for (int d = 0; same && d < h.ndim; d++) {
            json_t *x = json_array_get(js, (size_t)d);
            same = json_is_integer(x) && json_integer_value(x) == h.shape[d];
        }
        if (!same) {
            rc = rc_error(RC_ECORRUPT,
                          "%s: tensor '%s': dtype or shape differs between meta and its header",
                          dir, name);
            goto out;
        }
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, h.checksum);
        if (strcmp(hex, json_string_value(jc)) != 0) {
            rc = rc_error(RC_ECORRUPT, "%s: tensor '%s': checksum %s in its header, %s in meta",
                          dir, name, hex, json_string_value(jc));
            goto out;
        }
        const unsigned char *data = (const unsigned char *)v.mv_data + SNAP_HDR;
        uint64_t sum = snap_checksum(data, h.nbytes);
        if (sum != h.checksum) {
            rc = rc_error(RC_ECORRUPT,
                          "%s: tensor '%s': checksum mismatch (data %016" PRIx64 ", expected %s)",
                          dir, name, sum, hex);
            goto out;
        }
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
        rc = mdb_fail(RC_ECORRUPT, mrc, "cannot read the tensors database", dir);
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
    int rc = check_lmdb_file(fd, path);
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
        rc = mdb_fail(RC_EIO, mrc, "mdb_env_create", dir);
        goto fail;
    }
    /* map just the file (LMDB raises it to what the meta page needs, checked above to be <= fsize)
     */
    if ((mrc = mdb_env_set_maxdbs(s->env, 4)) != 0 ||
        (mrc = mdb_env_set_mapsize(s->env, fsize)) != 0 ||
        (mrc = mdb_env_open(s->env, dir, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0)) != 0) {
        rc = mdb_fail(mrc == ENOENT ? RC_ENOTFOUND : RC_ECORRUPT, mrc,
                      "cannot open the LMDB environment", dir);
        goto fail;
    }
    /* Open the dbi handles in a first read txn and commit it: only then are they visible to the
     * transactions of snap_vocab_load (LMDB: a handle stays private to its txn until commit). */
    if ((mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn)) != 0) {
        rc = mdb_fail(RC_ECORRUPT, mrc, "mdb_txn_begin", dir);
        goto fail;
    }
    if ((mrc = mdb_dbi_open(s->txn, "meta", 0, &s->dbi_meta)) != 0) {
        rc = mdb_fail(RC_ECORRUPT, mrc, "no meta database", dir);
        goto fail;
    }
    if ((mrc = mdb_dbi_open(s->txn, "tensors", 0, &s->dbi_tensors)) != 0) {
        rc = mdb_fail(RC_ECORRUPT, mrc, "no tensors database", dir);
        goto fail;
    }
    mrc = mdb_dbi_open(s->txn, "vocab", 0, &s->dbi_vocab);
    if (mrc && mrc != MDB_NOTFOUND) {
        rc = mdb_fail(RC_ECORRUPT, mrc, "cannot open the vocab database", dir);
        goto fail;
    }
    s->has_vocab = mrc == 0;
    mrc = mdb_txn_commit(s->txn);
    s->txn = NULL;
    if (mrc == 0) mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn);
    if (mrc) {
        rc = mdb_fail(RC_ECORRUPT, mrc, "mdb_txn_begin", dir);
        goto fail;
    }
    MDB_val k = {4, "meta"}, v;
    if ((mrc = mdb_get(s->txn, s->dbi_meta, &k, &v)) != 0) {
        rc = mdb_fail(RC_ECORRUPT, mrc, "no meta record", dir);
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
        rc = mdb_fail(RC_EIO, mrc, "cannot read the vocab database", s->dir);
        goto out;
    }
    /* meta is not covered by a checksum: bound its size by the records really stored (two per id,
     * all vocabularies together) before sizing the map by it; the walk below checks it exactly */
    MDB_stat vst;
    if ((mrc = mdb_stat(txn, s->dbi_vocab, &vst)) != 0) {
        rc = mdb_fail(RC_EIO, mrc, "cannot read the vocab database", s->dir);
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
        rc = mdb_fail(RC_EIO, mrc, "cannot read the vocab database", s->dir);
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
