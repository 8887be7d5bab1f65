/* server/evstore_export.c - `recd events export`'s reader (evstore_export in server/evstore.h): walks a
 * state folder's log in time order in one read transaction (a running server keeps writing: LMDB's
 * reader table, in lock.mdb, is shared) and writes the click file and the labelled rows.
 *
 * Labels: a first pass collects the acquisitions (request_id, item_id) of the selected experiment, at
 * any time (an acquisition may come after --until); the second pass writes the rows of the impressions
 * in [since, until). Sets hold 64-bit hashes of the keys (a false label needs a 2^-64 collision).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/hash.h"
#include "server/evstore_impl.h"

/* An open-addressing set of nonzero 64-bit hashes. */
typedef struct hset {
    uint64_t *t;
    size_t cap, n;
} hset;

static int hset_add(hset *s, uint64_t h, int *added)
{
    if (!h) h = 1;
    if (*added = 0, (s->n + 1) * 2 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        uint64_t *nt = calloc(nc, sizeof *nt);
        if (!nt) return rc_error(RC_ENOMEM, "export: out of memory");
        for (size_t i = 0; i < s->cap; i++)
            if (s->t[i])
                for (size_t j = s->t[i] & (nc - 1);; j = (j + 1) & (nc - 1))
                    if (!nt[j]) {
                        nt[j] = s->t[i];
                        break;
                    }
        free(s->t);
        s->t = nt;
        s->cap = nc;
    }
    for (size_t j = h & (s->cap - 1);; j = (j + 1) & (s->cap - 1)) {
        if (s->t[j] == h) return RC_OK;
        if (!s->t[j]) {
            s->t[j] = h;
            s->n++;
            *added = 1;
            return RC_OK;
        }
    }
}

static int hset_has(const hset *s, uint64_t h)
{
    if (!h) h = 1;
    if (!s->cap) return 0;
    for (size_t j = h & (s->cap - 1);; j = (j + 1) & (s->cap - 1)) {
        if (s->t[j] == h) return 1;
        if (!s->t[j]) return 0;
    }
}

static uint64_t pair_hash(api_str a, api_str b)
{
    return hash_combine(hash_combine(0x61637121ull, a.p, a.n), b.p, b.n);
}

/* Write an id as a TSV field the session reader reads back (quoted when it holds a tab or starts with
 * a quote). 0, or -1 when it cannot be written (newline, CR or NUL byte). */
static int put_tsv(FILE *f, api_str s)
{
    if (memchr(s.p, '\n', s.n) || memchr(s.p, '\r', s.n) || memchr(s.p, 0, s.n)) return -1;
    if (memchr(s.p, '\t', s.n) || (s.n && s.p[0] == '"')) {
        fputc('"', f);
        for (size_t i = 0; i < s.n; i++) {
            if (s.p[i] == '"') fputc('"', f);
            fputc(s.p[i], f);
        }
        fputc('"', f);
    } else fwrite(s.p, 1, s.n, f);
    return 0;
}

static int has_newline(api_str s)
{
    return memchr(s.p, '\n', s.n) || memchr(s.p, '\r', s.n) || memchr(s.p, 0, s.n);
}

/* The CSV field of line p[0..n) that starts at *at (<= n), raw (its quotes kept); *at moves to the next
 * field's start, or past n after the last. An unterminated quote runs to the end of the line. */
static api_str csv_next(const char *p, size_t n, size_t *at)
{
    size_t b = *at, i = b;
    if (i < n && p[i] == '"') {
        for (i++; i < n; i++)
            if (p[i] == '"') {
                if (i + 1 < n && p[i + 1] == '"') i++;
                else {
                    i++;
                    break;
                }
            }
    }
    const char *c = i < n ? memchr(p + i, ',', n - i) : NULL;
    i = c ? (size_t)(c - p) : n;
    *at = c ? i + 1 : n + 1;
    return (api_str){p + b, i - b};
}

/* The fields of a CSV line. */
static size_t csv_count(api_str s)
{
    size_t k = 0;
    for (size_t at = 0; at <= s.n; k++) csv_next(s.p, s.n, &at);
    return k;
}

/* The full row of a compact one (server/evstore.h, ev_impression.ctx_row) into out: ncols fields (the
 * header's), each the row's own, else (empty or missing) ctx's, else empty; a quoted empty field ("")
 * is written empty, as a full row has it. RC_OK or RC_ENOMEM. */
static int merge_row(sbuf *out, size_t ncols, api_str ctx, api_str row)
{
    sbuf_reset(out);
    size_t ca = 0, ra = 0;
    for (size_t j = 0; j < ncols; j++) {
        api_str cf = ca <= ctx.n ? csv_next(ctx.p, ctx.n, &ca) : (api_str){NULL, 0};
        api_str rf = ra <= row.n ? csv_next(row.p, row.n, &ra) : (api_str){NULL, 0};
        if (j) sbuf_addc(out, ',');
        if (rf.n == 0 && cf.n) sbuf_add(out, cf.p, cf.n);
        else if (rf.n && (rf.n != 2 || rf.p[0] != '"' || rf.p[1] != '"')) sbuf_add(out, rf.p, rf.n);
    }
    return sbuf_failed(out) ? rc_error(RC_ENOMEM, "export: out of memory") : RC_OK;
}

int evstore_export(const char *dir, FILE *clicks, FILE *rows, const ev_export_opts *o, ev_export_stats *stats)
{
    ev_export_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    ev_export_opts defo = {NULL, 0, 0, NULL};
    if (!o) o = &defo;
    const char *label = o->label && o->label[0] ? o->label : "label";
    if (!dir) return rc_error(RC_EINVAL, "export: no state folder");
    struct stat sb;
    char path[4096];
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return rc_error(RC_ENOTFOUND, "state folder %s: %s", dir, errno == ENOENT ? "no such folder" : "not a folder");
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &sb) != 0) return rc_error(RC_ENOTFOUND, "%s is not a recd state folder (no data.mdb)", dir);

    int rc = RC_OK, mrc;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    hset acq = {0}, sess = {0};
    char *header = NULL;
    size_t header_n = 0;
    sbuf merged; /* a compact row made full */
    sbuf_init(&merged);
    if ((mrc = mdb_env_create(&env))) return evs_mdb_fail(RC_EIO, mrc, "mdb_env_create", dir);
    mdb_env_set_maxdbs(env, EVS_MAXDBS);
    mdb_env_set_maxreaders(env, 512);
    if ((mrc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0644))) {
        rc = evs_mdb_fail(mrc == MDB_INVALID ? RC_ECORRUPT : mrc == MDB_VERSION_MISMATCH ? RC_EVERSION : RC_EIO, mrc,
                          "cannot open the LMDB environment read-only", dir);
        goto out;
    }
    mrc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (mrc == MDB_MAP_RESIZED) {
        mdb_env_set_mapsize(env, 0);
        mrc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    }
    if (mrc) {
        txn = NULL;
        rc = evs_mdb_fail(RC_EIO, mrc, "cannot start a read transaction", dir);
        goto out;
    }
    MDB_dbi db_meta, db_runs, db_log;
    mrc = mdb_dbi_open(txn, "meta", 0, &db_meta);
    MDB_val k = {6, "format"}, v;
    if (!mrc) mrc = mdb_get(txn, db_meta, &k, &v);
    if (mrc == MDB_NOTFOUND || mrc == MDB_INCOMPATIBLE) {
        rc = rc_error(RC_ECORRUPT, "%s is not a recd state folder (no event store format record)", dir);
        goto out;
    }
    if (mrc) {
        rc = evs_mdb_fail(RC_EIO, mrc, "cannot read the format", dir);
        goto out;
    }
    if (v.mv_size != strlen(EVS_FORMAT) || memcmp(v.mv_data, EVS_FORMAT, v.mv_size) != 0) {
        size_t pl = strlen(EVS_FORMAT_PREFIX);
        int ours = v.mv_size > pl && memcmp(v.mv_data, EVS_FORMAT_PREFIX, pl) == 0;
        rc = rc_error(ours ? RC_EVERSION : RC_ECORRUPT, "state folder %s: format '%.*s', this recd reads '%s'", dir,
                      (int)(v.mv_size > 64 ? 64 : v.mv_size), (const char *)v.mv_data, EVS_FORMAT);
        goto out;
    }
    if ((mrc = mdb_dbi_open(txn, "runs", 0, &db_runs)) || (mrc = mdb_dbi_open(txn, "log", 0, &db_log))) {
        rc = mrc == MDB_NOTFOUND ? rc_error(RC_ECORRUPT, "state folder %s: a database is missing", dir)
                                 : evs_mdb_fail(RC_EIO, mrc, "cannot open the databases", dir);
        goto out;
    }
    /* the runs selected */
    uint64_t sel = ~0ull;
    if (o->experiment) {
        sel = 0;
        size_t en = strlen(o->experiment);
        if ((mrc = mdb_cursor_open(txn, db_runs, &cur))) {
            rc = evs_mdb_fail(RC_EIO, mrc, "cannot read the runs", dir);
            goto out;
        }
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            uint32_t run;
            if (k.mv_size > en && memcmp(k.mv_data, o->experiment, en) == 0 && ((const char *)k.mv_data)[en] == 0 &&
                v.mv_size >= 4) {
                memcpy(&run, v.mv_data, 4);
                if (run < 64) sel |= 1ull << run;
            }
        }
        mdb_cursor_close(cur);
        cur = NULL;
        if (!sel) {
            rc = rc_error(RC_ENOTFOUND, "state folder %s: no experiment '%s'", dir, o->experiment);
            goto out;
        }
    }
    uint64_t since_us = o->since > 0 ? (uint64_t)llround(o->since * 1e6) : 0;
    uint64_t until_us = o->until > 0 ? (uint64_t)llround(o->until * 1e6) : UINT64_MAX;
    if ((mrc = mdb_cursor_open(txn, db_log, &cur))) {
        rc = evs_mdb_fail(RC_EIO, mrc, "cannot read the log", dir);
        goto out;
    }
    /* pass 1: acquisitions, for the labels */
    if (rows) {
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            const uint8_t *r = v.mv_data;
            evs_ev ev;
            if (v.mv_size < 2 || r[0] != 'E') continue;
            if (evs_decode_ev(r + 1, v.mv_size - 1, &ev) != 0) {
                rc = rc_error(RC_ECORRUPT, "state folder %s: a malformed event record", dir);
                goto out;
            }
            if (ev.type != EV_ACQUISITION || ev.run >= 64 || !(sel >> ev.run & 1)) continue;
            int added;
            if ((rc = hset_add(&acq, pair_hash(ev.request_id, ev.item_id), &added)) != RC_OK) goto out;
        }
        if (mrc != MDB_NOTFOUND) {
            rc = evs_mdb_fail(RC_EIO, mrc, "cannot read the log", dir);
            goto out;
        }
    }
    if (clicks) fputs("session_id\titem_id\ttimestamp\n", clicks);
    /* pass 2: clicks and rows in time order */
    k.mv_size = 16;
    uint8_t start[16];
    evs_be64(start, since_us);
    memset(start + 8, 0, 8);
    k.mv_data = start;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 16) {
            rc = rc_error(RC_ECORRUPT, "state folder %s: a malformed log key", dir);
            goto out;
        }
        if (evs_rd_be64(k.mv_data) >= until_us) break;
        const uint8_t *r = v.mv_data;
        if (v.mv_size < 2) continue;
        if (r[0] == 'E' && clicks) {
            evs_ev ev;
            if (evs_decode_ev(r + 1, v.mv_size - 1, &ev) != 0) {
                rc = rc_error(RC_ECORRUPT, "state folder %s: a malformed event record", dir);
                goto out;
            }
            if ((ev.type != EV_CLICK && ev.type != EV_ACQUISITION) || ev.run >= 64 || !(sel >> ev.run & 1)) continue;
            api_str s = ev.session.n ? ev.session : ev.unit;
            if (has_newline(s) || has_newline(ev.item_id)) {
                stats->skipped_clicks++;
                continue;
            }
            put_tsv(clicks, s);
            fputc('\t', clicks);
            put_tsv(clicks, ev.item_id);
            fprintf(clicks, "\t%lld\n", (long long)floor(ev.t));
            stats->clicks++;
            int added;
            if ((rc = hset_add(&sess, hash64(s.p, s.n, 0x53455353ull), &added)) != RC_OK) goto out;
            stats->sessions += (uint64_t)added;
        } else if (r[0] == 'I' && rows) {
            evs_imp im;
            if (evs_decode_imp(r + 1, v.mv_size - 1, &im) != 0) {
                rc = rc_error(RC_ECORRUPT, "state folder %s: a malformed impression record", dir);
                goto out;
            }
            if (!im.has_rows || im.run >= 64 || !(sel >> im.run & 1)) continue;
            if (!header) {
                if (has_newline(im.row_header)) {
                    stats->skipped_rows += (uint64_t)im.n_items;
                    continue;
                }
                header = malloc(im.row_header.n + 1);
                if (!header) {
                    rc = rc_error(RC_ENOMEM, "export: out of memory");
                    goto out;
                }
                memcpy(header, im.row_header.p, im.row_header.n);
                header_n = im.row_header.n;
                fwrite(header, 1, header_n, rows);
                fprintf(rows, ",%s\n", label);
            } else if (im.row_header.n != header_n || memcmp(im.row_header.p, header, header_n) != 0) {
                stats->skipped_rows += (uint64_t)im.n_items;
                continue;
            }
            evs_rd rd = {im.items_at, r + v.mv_size, 0};
            size_t ncols = 0; /* the header's fields (counted at the first compact row) */
            api_str items[EVSTORE_MAX_ITEMS];
            for (int i = 0; i < im.n_items; i++) items[i] = evs_str16(&rd);
            for (int i = 0; i < im.n_items; i++) {
                api_str row = evs_str32(&rd);
                if (rd.bad) {
                    rc = rc_error(RC_ECORRUPT, "state folder %s: a malformed impression record", dir);
                    goto out;
                }
                if (im.has_rows == 2) {
                    if (!ncols) ncols = csv_count(im.row_header);
                    if ((rc = merge_row(&merged, ncols, im.ctx_row, row)) != RC_OK) goto out;
                    row = (api_str){merged.data ? merged.data : "", merged.len};
                }
                if (has_newline(row)) {
                    stats->skipped_rows++;
                    continue;
                }
                int pos = hset_has(&acq, pair_hash(im.request_id, items[i]));
                fwrite(row.p, 1, row.n, rows);
                fprintf(rows, ",%d\n", pos);
                stats->rows++;
                stats->positives += (uint64_t)pos;
            }
        }
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = evs_mdb_fail(RC_EIO, mrc, "cannot read the log", dir);
        goto out;
    }
    if ((clicks && ferror(clicks)) || (rows && ferror(rows)))
        rc = rc_error(RC_EIO, "state folder %s: export: write error: %s", dir, strerror(errno));
out:
    if (cur) mdb_cursor_close(cur);
    if (txn) mdb_txn_abort(txn);
    if (env) mdb_env_close(env);
    free(acq.t);
    free(sess.t);
    free(header);
    sbuf_release(&merged);
    return rc;
}
