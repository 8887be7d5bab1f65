/* core/snap_check.c - what a valid snapshot is (see core/snap.h; the writer is core/snap_write.c, the
 * reader core/snap_read.c).
 *
 * Files. snap_open calls snap_check_lmdb_file before LMDB maps data.mdb: LMDB trusts its file and would
 * read out of bounds (or divide by zero) on a corrupt one, and a page past the end of a mapped file
 * is SIGBUS, not an error. So the file must be a whole number of pages, at least as long as its meta
 * page says, and every page LMDB will walk (B-tree pages, nodes, overflow runs) must be in bounds.
 * Then each tensor record is checked by snap_check_tensor: its header, its meta entry, its checksum
 * (snap_checksum, several GB/s).
 *
 * Folders. Which names of ROOT/MODEL are published versions (1 to UINT64_MAX, no leading zero), the
 * newest one, all of them, and the .tmp-N folders of writers (fresh, or stale and removed).
 */
#include "core/snap.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
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
#include "core/snap_impl.h"

/* ---- dtypes ---- */

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
        h0 = lane(h0, snap_load64(p + i));
        h1 = lane(h1, snap_load64(p + i + 8));
        h2 = lane(h2, snap_load64(p + i + 16));
        h3 = lane(h3, snap_load64(p + i + 24));
    }
    for (; i + 8 <= n; i += 8)
        h0 = lane(h0, snap_load64(p + i));
    if (i < n) {
        unsigned char tail[8] = {0};
        memcpy(tail, p + i, n - i);
        h1 = lane(h1, snap_load64(tail));
    }
    uint64_t h = hash_fmix64(h0) ^ (hash_fmix64(h1) * 3) ^ (hash_fmix64(h2) * 5) ^
                 (hash_fmix64(h3) * 7);
    return hash_fmix64(h ^ (uint64_t)n * 0x9e3779b97f4a7c15ULL);
}


/* ---- tensor records ---- */

int snap_check_tensor(const char *dir, const char *name, const void *value, size_t vsize,
                      const json_t *e, struct thdr *out)
{
    struct thdr h;
    if (vsize < SNAP_HDR)
        return rc_error(RC_ECORRUPT,
                        "%s: tensor '%s': value of %zu bytes is shorter than its header", dir, name,
                        vsize);
    memcpy(&h, value, SNAP_HDR);
    size_t esz = snap_dtype_size((snap_dtype)h.dtype);
    if (h.magic != SNAP_MAGIC || !esz || h.ndim > SNAP_MAX_DIMS)
        return rc_error(RC_ECORRUPT, "%s: tensor '%s': bad header (magic %08x, dtype %u, ndim %u)",
                        dir, name, h.magic, h.dtype, h.ndim);
    uint64_t count = 1;
    for (int d = 0; d < h.ndim; d++) {
        if (h.shape[d] < 0 || (h.shape[d] && count > (SNAP_MAX_MAP / esz) / (uint64_t)h.shape[d]))
            return rc_error(RC_ECORRUPT, "%s: tensor '%s': bad shape in header", dir, name);
        count *= (uint64_t)h.shape[d];
    }
    if (h.nbytes != count * esz || vsize < SNAP_HDR + h.nbytes)
        return rc_error(RC_ECORRUPT,
                        "%s: tensor '%s': %zu bytes stored, header says %" PRIu64
                        " (shape needs %" PRIu64 ")",
                        dir, name, vsize - SNAP_HDR, h.nbytes, count * esz);
    /* against meta */
    json_t *jd = json_object_get(e, "dtype"), *js = json_object_get(e, "shape"),
           *jc = json_object_get(e, "checksum");
    int same = json_is_string(jd) && dtype_parse(json_string_value(jd)) == h.dtype &&
               json_is_array(js) && json_array_size(js) == h.ndim && json_is_string(jc);
    for (int d = 0; same && d < h.ndim; d++) {
        json_t *x = json_array_get(js, (size_t)d);
        same = json_is_integer(x) && json_integer_value(x) == h.shape[d];
    }
    if (!same)
        return rc_error(RC_ECORRUPT,
                        "%s: tensor '%s': dtype or shape differs between meta and its header", dir,
                        name);
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, h.checksum);
    if (strcmp(hex, json_string_value(jc)) != 0)
        return rc_error(RC_ECORRUPT, "%s: tensor '%s': checksum %s in its header, %s in meta", dir,
                        name, hex, json_string_value(jc));
    uint64_t sum = snap_checksum((const unsigned char *)value + SNAP_HDR, h.nbytes);
    if (sum != h.checksum)
        return rc_error(RC_ECORRUPT,
                        "%s: tensor '%s': checksum mismatch (data %016" PRIx64 ", expected %s)",
                        dir, name, sum, hex);
    *out = h;
    return RC_OK;
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
    uint64_t root = snap_load64(db + 40);
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
    if (snap_load64(p) != pg) return lbad(c, pg, "page number mismatch");
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
            uint64_t op = snap_load64(n + 8 + ks);
            if (op < 2 || op >= c->npages) return lbad(c, pg, "overflow page out of range");
            const unsigned char *o = c->map + op * c->psize;
            uint32_t np = rd32(o + 12);
            uint64_t need = (L_PAGEHDR - 1 + dsize) / c->psize + 1;
            if (snap_load64(o) != op || rd16(o + 10) != L_P_OVERFLOW || np < need || op + np > c->npages)
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
int snap_check_lmdb_file(int fd, const char *path)
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
        if (snap_load64(p) != (uint64_t)i || !(rd16(p + 10) & L_P_META) || rd32(m[i]) != L_MAGIC) {
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
    const unsigned char *meta = snap_load64(m[0] + 128) < snap_load64(m[1] + 128) ? m[1] : m[0];
    uint64_t last = snap_load64(meta + 120);
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

/* ---- folders: which names are versions ---- */

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

/* Remove a flat folder (the files in it, then the folder), making it writable first. Best effort;
 * returns 0 if it is gone. */
int snap_remove_flat_dir(const char *path)
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

static int vlist_add(struct snap_vlist *l, uint64_t v)
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
int snap_scan_model_dir(const char *mdir, uint64_t *latest, uint64_t *latest_tmp, uint64_t clean,
                          int do_clean, struct snap_vlist *all)
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
                if (snap_remove_flat_dir(p) == 0)
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
    int rc = snap_scan_model_dir(mdir, &v, NULL, 0, 0, NULL);
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
    struct snap_vlist l = {NULL, 0, 0};
    int rc = snap_scan_model_dir(mdir, NULL, NULL, 0, 0, &l);
    if (rc) {
        free(l.v);
        return rc;
    }
    if (l.n) qsort(l.v, l.n, sizeof *l.v, cmp_desc);
    *out = l.v;
    *n = l.n;
    return RC_OK;
}

