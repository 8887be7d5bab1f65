/* trainer/ratings.c - explicit-rating data: readers, the protocol split, CSR rows, metrics, the steps
 * every rating trainer shares (rt_job, the refit data, rt_train_main: the whole `recd train MODEL`
 * around a trainer's hooks) and `recd eval MODEL` for rating snapshots (see trainer/ratings.h).
 *
 * Reading: each file's first non-blank line is peeked (gzread; CR-only line ends refused there) to pick
 * the separator, then core/csv splits the rows (for "::" the separator is ':' and the empty fields
 * between the two colons are skipped: logical column k is field 2k). What core/csv leaves to its callers
 * is done here, per row: a byte-order mark at the start of line 1 dropped, CSV fields trimmed, blank lines
 * skipped, the first line taken as a header only when it names a column. Ids are checked (UTF-8) and
 * interned into two idmaps. Repeated (user, item) pairs are found once every file is read (dedup: a
 * counting sort by user and a stamp per item), and keep the position of their first rating with the
 * value of their last.
 */
#include "trainer/ratings.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/clock.h"
#include "core/csv.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/utf8.h"
#include "models/model.h"
#include "trainer/cmds.h"

#define RT_MAX_ID 255                /* bytes of an id */
#define RT_MAX_RATINGS 2147483647LL  /* R, U and N fit in int32 */
#define RT_MAX_RATING 1e6            /* |rating|: past it, a unit or parsing mistake (ratings.h) */

void rt_free(rt_data *d)
{
    if (!d) return;
    free(d->user);
    free(d->item);
    free(d->rating);
    if (d->owns_vocab) {
        idmap_free(d->users);
        idmap_free(d->items);
    }
    memset(d, 0, sizeof *d);
}

/* ---- reading ------------------------------------------------------------------------------------ */

/* The growing arrays of one rt_read call. */
typedef struct reader {
    rt_data *d;
    int64_t cap;          /* capacity of d's arrays */
} reader;

static int arrays_grow(reader *r)
{
    int64_t nc = r->cap ? r->cap * 2 : 4096;
    if (nc > RT_MAX_RATINGS) nc = RT_MAX_RATINGS;
    rt_data *d = r->d;
    int32_t *u = realloc(d->user, (size_t)nc * sizeof *u);
    if (u) d->user = u;
    int32_t *i = realloc(d->item, (size_t)nc * sizeof *i);
    if (i) d->item = i;
    float *v = realloc(d->rating, (size_t)nc * sizeof *v);
    if (v) d->rating = v;
    if (!u || !i || !v) return rc_error(RC_ENOMEM, "ratings: out of memory for %lld ratings", (long long)nc);
    r->cap = nc;
    return RC_OK;
}

static inline int reader_add(reader *r, int32_t u, int32_t i, float v)
{
    rt_data *d = r->d;
    if (d->n == r->cap) {
        if (d->n >= RT_MAX_RATINGS) return rc_error(RC_EFORMAT, "ratings: more than %lld ratings", RT_MAX_RATINGS);
        int rc = arrays_grow(r);
        if (rc) return rc;
    }
    d->user[d->n] = u;
    d->item[d->n] = i;
    d->rating[d->n] = v;
    d->n++;
    return RC_OK;
}

/* Drop repeated (user, item) pairs: each pair keeps the position of its first rating and the value of
 * its last. Ratings are bucketed by user (counting sort, stable), then each user's items are checked
 * against a stamp per item (the last user that rated it, and where): O(R + U + N), no hashing. */
static int dedup(rt_data *d)
{
    int64_t R = d->n, U = (int64_t)idmap_size(d->users), N = (int64_t)idmap_size(d->items);
    int64_t *start = calloc((size_t)U + 1, sizeof *start);
    int32_t *order = malloc(((size_t)R + 1) * sizeof *order);
    int32_t *stamp = malloc(((size_t)N + 1) * sizeof *stamp), *where = malloc(((size_t)N + 1) * sizeof *where);
    if (!start || !order || !stamp || !where) {
        free(start);
        free(order);
        free(stamp);
        free(where);
        return rc_error(RC_ENOMEM, "ratings: out of memory for the repeated-pair check");
    }
    for (int64_t k = 0; k < R; k++)
        start[d->user[k]]++;
    int64_t acc = 0;
    for (int64_t u = 0; u < U; u++) {
        int64_t c = start[u];
        start[u] = acc;
        acc += c;
    }
    for (int64_t k = 0; k < R; k++)
        order[start[d->user[k]]++] = (int32_t)k; /* start[u] is now the end of u's bucket */
    for (int64_t i = 0; i < N; i++)
        stamp[i] = -1;
    int64_t ndup = 0, a = 0;
    for (int64_t u = 0; u < U; u++) {
        for (; a < start[u]; a++) {
            int32_t k = order[a], i = d->item[k];
            if (stamp[i] == (int32_t)u) { /* a later rating of the same pair */
                d->rating[where[i]] = d->rating[k];
                d->user[k] = -1;
                ndup++;
            } else {
                stamp[i] = (int32_t)u;
                where[i] = k;
            }
        }
    }
    free(start);
    free(order);
    free(stamp);
    free(where);
    if (ndup > 0) {
        int64_t w = 0;
        for (int64_t k = 0; k < R; k++)
            if (d->user[k] >= 0) {
                d->user[w] = d->user[k];
                d->item[w] = d->item[k];
                d->rating[w] = d->rating[k];
                w++;
            }
        d->n = w;
        d->n_dup += ndup;
    }
    return RC_OK;
}

/* The UTF-8 byte-order mark some editors put at the start of a file. */
static int has_bom(const char *s)
{
    return (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF;
}

/* 1 when s holds only spaces and tabs (or nothing). */
static int is_blank(const char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    return *s == 0;
}

/* s without the spaces and tabs around it (in place: a NUL after its last other byte). */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    s[n] = 0;
    return s;
}

/* The file's first line that is not blank (a UTF-8 byte-order mark at offset 0 and the line end dropped;
 * up to cap-1 bytes) into line; "" for a file without one. RC_EFORMAT when the lines end in CR only (a
 * '\r' followed by another byte than '\r' or '\n': the whole file would read as one line). */
static int peek_first_line(const char *path, char *line, size_t cap)
{
    line[0] = 0;
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        if (errno == ENOENT) return rc_error(RC_ENOTFOUND, "%s: no such file", path);
        return rc_error(RC_EIO, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    }
    int rc = RC_OK, first = 1;
    while (gzgets(gz, line, (int)cap)) {
        char *s = line;
        if (first && has_bom(s)) s += 3;
        first = 0;
        for (const char *c = strchr(s, '\r'); c; c = strchr(c + 1, '\r'))
            if (c[1] != 0 && c[1] != '\r' && c[1] != '\n') {
                rc = rc_error(RC_EFORMAT, "%s: lines end in CR only (old Mac): convert to LF", path);
                line[0] = 0;
                goto out;
            }
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
        if (!is_blank(s)) {
            memmove(line, s, n + 1);
            goto out;
        }
    }
    line[0] = 0;
out:
    gzclose(gz);
    return rc;
}

/* The header names of the three columns, compared ignoring case (rt_read's doc in ratings.h lists them). */
static const char *const col_names[3][6] = {
    {"user_id", "userId", "user", NULL},
    {"item_id", "itemId", "movieId", "movie_id", "item", NULL},
    {"rating", NULL},
};
static const char *const col_names_doc[3] = {"user_id|userId|user", "item_id|itemId|movieId|movie_id|item",
                                             "rating"};
static const char *const field_names[3] = {"user", "item", "rating"};

/* The column (0 user, 1 item, 2 rating) header name s names (spaces and tabs around it ignored), or -1. */
static int column_named(const char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    for (int c = 0; c < 3; c++)
        for (const char *const *n = col_names[c]; *n; n++)
            if (strlen(*n) == len && strncasecmp(s, *n, len) == 0) return c;
    return -1;
}

/* Parse a rating: a decimal number (spaces and tabs around it allowed), finite, |v| <= RT_MAX_RATING.
 * RC_OK, or RC_EFORMAT with the reason in *why (file, line, field added by the caller). Hexadecimal
 * ("0x4", "0x1p2": strtod reads them) is not a number. */
static int parse_rating(const char *s, float *out, const char **why)
{
    if (s[0] >= '0' && s[0] <= '9' && s[1] == 0) { /* whole stars: the common case */
        *out = (float)(s[0] - '0');
        return RC_OK;
    }
    const char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    const char *q = p + (*p == '+' || *p == '-');
    *why = "is not a number";
    if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) return RC_EFORMAT;
    char *end;
    errno = 0;
    double v = strtod(p, &end);
    if (end == p) return RC_EFORMAT;
    while (*end == ' ' || *end == '\t') end++;
    if (*end) return RC_EFORMAT;
    if (isnan(v) || (isinf(v) && errno != ERANGE)) {
        *why = "is not a finite number";
        return RC_EFORMAT;
    }
    if (!(fabs(v) <= RT_MAX_RATING)) {
        *why = "is out of range [-1e6, 1e6]";
        return RC_EFORMAT;
    }
    *out = (float)v;
    return RC_OK;
}

/* NULL when the id s (len bytes) can be served (valid UTF-8, no CR), else what is wrong with it ("..."
 * at byte *at, 1-based), and in *hint what to do. */
static const char *id_problem(const char *s, size_t len, size_t *at, const char **hint)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned c = u[i];
        if (c < 0x80) {
            if (c == '\r') {
                *at = i + 1;
                *hint = " (lines ending in CR only? convert to LF)";
                return "holds a CR";
            }
            i++;
            continue;
        }
        size_t n = utf8_seq_len(u + i, len - i); /* no overlong form, no surrogate, nothing past U+10FFFF */
        if (!n) {
            *at = i + 1;
            *hint = "";
            return "is not valid UTF-8";
        }
        i += n;
    }
    return NULL;
}

/* The first field of line 1 after a byte-order mark, when it starts with '"': core/csv saw the mark, not
 * the quote, so the quotes are still there. Unquote s in place ("" is one quote); RC_OK, or RC_EFORMAT
 * (no message) when the quote is not closed at the end of the field. */
static int bom_unquote(char *s)
{
    size_t n = strlen(s), i = 1;
    char *w = s;
    for (; i < n; i++) {
        if (s[i] == '"') {
            if (i + 1 < n && s[i + 1] == '"') {
                *w++ = '"';
                i++;
                continue;
            }
            break;
        }
        *w++ = s[i];
    }
    if (i + 1 != n) return RC_EFORMAT;
    *w = 0;
    return RC_OK;
}

static const char *fmt_name(char sep)
{
    return sep == ':' ? "'::' (MovieLens 1M/10M)" : sep == '\t' ? "tab" : "comma";
}

/* Read one file into r. */
static int read_file(reader *r, const char *path, int verbose)
{
    char first[4096];
    int rc = peek_first_line(path, first, sizeof first);
    if (rc) return rc;
    char sep = strstr(first, "::") ? ':' : strchr(first, '\t') ? '\t' : ',';
    int step = sep == ':' ? 2 : 1; /* logical column k is field k * step */
    csv_reader *cr;
    if ((rc = csv_open_rc(&cr, path, sep))) return rc;
    rt_data *d = r->d;
    int col[3] = {0, 1, 2};
    int header = 0;
    int64_t before = d->n, rows = 0;
    char **f;
    int nf;
    while ((rc = csv_next(cr, &f, &nf)) > 0) {
        long long line = (long long)csv_line(cr);
        /* f[] is core/csv's array of this row's fields: changing its pointers (not its length) is fine */
        if (line == 1 && has_bom(f[0])) { /* a UTF-8 byte-order mark at offset 0 */
            f[0] += 3;
            if (f[0][0] == '"' && bom_unquote(f[0]) != RC_OK) {
                rc = rc_error(RC_EFORMAT, "%s:1: unterminated quoted field 1", path);
                goto out;
            }
        }
        if (sep == ',')
            for (int k = 0; k < nf; k++)
                f[k] = trim(f[k]); /* CSV: `1, 10, 4` */
        int blank = nf == 1 || sep == '\t'; /* a line of spaces and tabs only is skipped like an empty one */
        for (int k = 0; blank && k < nf; k++)
            blank = is_blank(f[k]);
        if (blank) continue;
        int ncol = step == 2 ? (nf + 1) / 2 : nf;
        if (step == 2)
            for (int k = 1; k < nf; k += 2)
                if (f[k][0]) {
                    rc = rc_error(RC_EFORMAT, "%s:%lld: a single ':' in field %d ('::' separates the fields)", path,
                                  line, k / 2 + 1);
                    goto out;
                }
        if (rows == 0 && !header) {
            /* the first line is a header when it names a column; then it must name all three */
            int c[3] = {-1, -1, -1}, named = 0;
            for (int k = 0; k < ncol; k++) {
                int w = column_named(f[k * step]);
                if (w >= 0 && c[w] < 0) c[w] = k;
                named |= w >= 0;
            }
            if (named) {
                for (int w = 0; w < 3; w++)
                    if (c[w] < 0) {
                        rc = rc_error(RC_EFORMAT, "%s:%lld: no %s column in the header (expected %s, any case)", path,
                                      line, field_names[w], col_names_doc[w]);
                        goto out;
                    }
                memcpy(col, c, sizeof col);
                header = 1;
                continue;
            }
        }
        rows++;
        int32_t idx[2];
        for (int j = 0; j < 2; j++) {
            if (col[j] >= ncol) {
                rc = rc_error(RC_EFORMAT, "%s:%lld: field %d (%s): missing (the line has %d fields)", path, line,
                              col[j] + 1, field_names[j], ncol);
                goto out;
            }
            const char *s = f[col[j] * step];
            size_t len = strlen(s);
            if (len == 0) {
                rc = rc_error(RC_EFORMAT, "%s:%lld: field %d (%s): empty id", path, line, col[j] + 1, field_names[j]);
                goto out;
            }
            if (len > RT_MAX_ID) {
                rc = rc_error(RC_EFORMAT, "%s:%lld: field %d (%s): id of %zu bytes (at most %d)", path, line,
                              col[j] + 1, field_names[j], len, RT_MAX_ID);
                goto out;
            }
            size_t at;
            const char *hint, *why = id_problem(s, len, &at, &hint);
            if (why) {
                rc = rc_error(RC_EFORMAT, "%s:%lld: field %d (%s): the id %s at byte %zu%s", path, line, col[j] + 1,
                              field_names[j], why, at, hint);
                goto out;
            }
            idmap *m = j == 0 ? d->users : d->items;
            int64_t x = idmap_intern(m, s, len);
            if (x < 0) {
                rc = rc_wrap(RC_ENOMEM, "%s:%lld", path, line);
                goto out;
            }
            if (x >= RT_MAX_RATINGS) {
                rc = rc_error(RC_EFORMAT, "%s:%lld: field %d (%s): more than %lld distinct ids", path, line,
                              col[j] + 1, field_names[j], RT_MAX_RATINGS);
                goto out;
            }
            idx[j] = (int32_t)x;
        }
        if (col[2] >= ncol) {
            rc = rc_error(RC_EFORMAT, "%s:%lld: field %d (rating): missing (the line has %d fields)", path, line,
                          col[2] + 1, ncol);
            goto out;
        }
        float v;
        const char *why = "";
        const char *s = f[col[2] * step];
        if (parse_rating(s, &v, &why) != RC_OK) {
            rc = rc_error(RC_EFORMAT, "%s:%lld: field %d (rating): '%.40s' %s", path, line, col[2] + 1, s, why);
            goto out;
        }
        if ((rc = reader_add(r, idx[0], idx[1], v))) {
            rc = rc_wrap(rc, "%s:%lld", path, line);
            goto out;
        }
    }
    if (rc < 0) goto out;
    rc = RC_OK;
    if (rows == 0) {
        rc = rc_error(RC_EFORMAT, "%s: no rating in the file", path);
        goto out;
    }
    if (verbose)
        log_info("read %s: %lld ratings, %s-separated%s", path, (long long)(d->n - before), fmt_name(sep),
                 header ? ", with a header" : "");
out:
    csv_close(cr);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read a folder: its regular files not starting with '.', in name order. */
static int read_dir(reader *r, const char *path, int verbose)
{
    DIR *dir = opendir(path);
    if (!dir) return rc_error(RC_EIO, "%s: cannot open folder: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = RC_OK;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = rc_error(RC_ENOMEM, "%s: out of memory", path);
                break;
            }
            names = nn;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        char *full = malloc(len);
        if (!full) {
            rc = rc_error(RC_ENOMEM, "%s: out of memory", path);
            break;
        }
        snprintf(full, len, "%s/%s", path, e->d_name);
        struct stat st;
        if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(full);
            continue;
        }
        names[n++] = full;
    }
    closedir(dir);
    if (rc == RC_OK && n == 0) rc = rc_error(RC_EFORMAT, "%s: no rating file in the folder", path);
    if (rc == RC_OK) {
        qsort(names, n, sizeof *names, cmp_str);
        for (size_t k = 0; k < n && rc == RC_OK; k++)
            rc = read_file(r, names[k], verbose);
    }
    for (size_t k = 0; k < n; k++)
        free(names[k]);
    free(names);
    return rc;
}

static int read_one(reader *r, const char *path, int verbose)
{
    struct stat st;
    if (path[0] == 0) return rc_error(RC_EINVAL, "ratings: empty path");
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return read_dir(r, path, verbose);
    return read_file(r, path, verbose);
}

static void data_range(rt_data *d)
{
    d->rmin = d->rmax = 0;
    for (int64_t k = 0; k < d->n; k++) {
        float v = d->rating[k];
        if (k == 0 || v < d->rmin) d->rmin = v;
        if (k == 0 || v > d->rmax) d->rmax = v;
    }
}

int rt_read(rt_data *out, const char *path, int verbose)
{
    memset(out, 0, sizeof *out);
    if (!path) return rc_error(RC_EINVAL, "ratings: no path");
    reader r = {.d = out};
    out->owns_vocab = 1;
    out->users = idmap_new(1024);
    out->items = idmap_new(1024);
    int rc = RC_OK;
    if (!out->users || !out->items) {
        rc = rc_error(RC_ENOMEM, "ratings: out of memory");
        goto done;
    }
    struct stat st;
    if (stat(path, &st) == 0 || !strchr(path, ',')) {
        rc = read_one(&r, path, verbose);
    } else { /* a list a,b,c */
        char *copy = strdup(path);
        if (!copy) {
            rc = rc_error(RC_ENOMEM, "ratings: out of memory");
            goto done;
        }
        char *save = NULL;
        int any = 0;
        for (char *p = strtok_r(copy, ",", &save); p && rc == RC_OK; p = strtok_r(NULL, ",", &save)) {
            rc = read_one(&r, p, verbose);
            any = 1;
        }
        if (rc == RC_OK && !any) rc = rc_error(RC_EINVAL, "ratings: '%s' names no file", path);
        free(copy);
    }
    if (rc == RC_OK) rc = dedup(out);
    if (rc == RC_OK) {
        data_range(out);
        /* shrink the arrays to their size */
        if (out->n > 0 && out->n < r.cap) {
            int32_t *u = realloc(out->user, (size_t)out->n * sizeof *u);
            if (u) out->user = u;
            int32_t *i = realloc(out->item, (size_t)out->n * sizeof *i);
            if (i) out->item = i;
            float *v = realloc(out->rating, (size_t)out->n * sizeof *v);
            if (v) out->rating = v;
        }
        if (verbose && out->n_dup > 0)
            log_warn("%s: %lld repeated (user, item) pairs: the last rating of each kept", path, (long long)out->n_dup);
    }
done:
    if (rc != RC_OK) rt_free(out);
    return rc;
}

/* ---- CSR ---------------------------------------------------------------------------------------- */

void rt_csr_free(rt_csr *c)
{
    if (!c) return;
    free(c->offsets);
    free(c->col);
    free(c->val);
    memset(c, 0, sizeof *c);
}

typedef struct rt_entry {
    int32_t row, col;
    float val;
} rt_entry;

int rt_csr_build(rt_csr *out, const rt_data *d, int by_item)
{
    memset(out, 0, sizeof *out);
    if (!d || !d->users || !d->items) return rc_error(RC_EINVAL, "rt_csr_build: data without vocabularies");
    int64_t U = (int64_t)idmap_size(d->users), N = (int64_t)idmap_size(d->items), R = d->n;
    const int32_t *row = by_item ? d->item : d->user, *cl = by_item ? d->user : d->item;
    int64_t I = by_item ? N : U, C = by_item ? U : N;
    for (int64_t k = 0; k < R; k++) {
        if (d->user[k] < 0 || d->user[k] >= U || d->item[k] < 0 || d->item[k] >= N)
            return rc_error(RC_EINVAL, "rt_csr_build: rating %lld has user %d, item %d outside [0,%lld) x [0,%lld)",
                            (long long)k, (int)d->user[k], (int)d->item[k], (long long)U, (long long)N);
    }
    out->rows = I;
    out->nnz = R;
    out->offsets = calloc((size_t)I + 1, sizeof *out->offsets);
    out->col = malloc(((size_t)R + 1) * sizeof *out->col);
    out->val = malloc(((size_t)R + 1) * sizeof *out->val);
    int64_t *pos = calloc((size_t)(C > I ? C : I) + 1, sizeof *pos);
    rt_entry *tmp = malloc(((size_t)R + 1) * sizeof *tmp); /* (R) the ratings ordered by column */
    int rc = RC_OK;
    if (!out->offsets || !out->col || !out->val || !pos || !tmp) {
        rc = rc_error(RC_ENOMEM, "rt_csr_build: out of memory for %lld ratings", (long long)R);
        goto done;
    }
    /* pass 1: counting sort by column into tmp; pass 2: stable counting sort by row -> columns ascending
     * within each row. Both read sequentially and write to one stream per bucket. */
    for (int64_t k = 0; k < R; k++) {
        pos[cl[k] + 1]++;
        out->offsets[row[k] + 1]++;
    }
    for (int64_t c = 0; c < C; c++)
        pos[c + 1] += pos[c];
    for (int64_t k = 0; k < R; k++)
        tmp[pos[cl[k]]++] = (rt_entry){row[k], cl[k], d->rating[k]};
    for (int64_t r = 0; r < I; r++)
        out->offsets[r + 1] += out->offsets[r];
    memcpy(pos, out->offsets, (size_t)I * sizeof *pos);
    for (int64_t j = 0; j < R; j++) {
        int64_t p = pos[tmp[j].row]++;
        out->col[p] = tmp[j].col;
        out->val[p] = tmp[j].val;
    }
    for (int64_t r = 0; r < I; r++)
        for (int64_t p = out->offsets[r] + 1; p < out->offsets[r + 1]; p++)
            if (out->col[p] == out->col[p - 1]) {
                rc = rc_error(RC_EINVAL, "rt_csr_build: repeated (user, item) pair in %s %lld",
                              by_item ? "item" : "user", (long long)r);
                goto done;
            }
done:
    free(pos);
    free(tmp);
    if (rc != RC_OK) rt_csr_free(out);
    return rc;
}

/* ---- split -------------------------------------------------------------------------------------- */

void rt_split_free(rt_split *s)
{
    if (!s) return;
    rt_free(&s->valid);
    rt_free(&s->test);
    rt_free(&s->train);
}

int rt_split_sets(uint8_t *set, int64_t n, uint64_t seed, double test_frac, double valid_frac, int64_t counts[3])
{
    if (!(test_frac >= 0 && test_frac < 1) || !(valid_frac >= 0 && valid_frac < 1) || test_frac + valid_frac > 1)
        return rc_error(RC_EINVAL, "split: test_frac %g and valid_frac %g must be in [0, 1) and sum to at most 1",
                        test_frac, valid_frac);
    if (n <= 0) return rc_error(RC_EINVAL, "split: no ratings to split");
    int64_t nt = llround(test_frac * (double)n);
    int64_t nv = llround(valid_frac * (double)(n - nt));
    if (nt + nv >= n)
        return rc_error(RC_EINVAL, "split: %lld ratings leave no training rating (test %lld, validation %lld)",
                        (long long)n, (long long)nt, (long long)nv);
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    if (!perm) return rc_error(RC_ENOMEM, "split: out of memory for %lld ratings", (long long)n);
    for (int64_t k = 0; k < n; k++)
        perm[k] = k;
    rng_t rng;
    rng_seed(&rng, seed);
    rng_shuffle_i64(&rng, perm, (size_t)n);
    for (int64_t k = 0; k < n; k++)
        set[perm[k]] = k < nt ? 2 : k < nt + nv ? 1 : 0;
    free(perm);
    if (counts) {
        counts[0] = n - nt - nv;
        counts[1] = nv;
        counts[2] = nt;
    }
    return RC_OK;
}

static int data_alloc(rt_data *d, int64_t n)
{
    d->n = n;
    d->user = malloc(((size_t)n + 1) * sizeof *d->user);
    d->item = malloc(((size_t)n + 1) * sizeof *d->item);
    d->rating = malloc(((size_t)n + 1) * sizeof *d->rating);
    if (!d->user || !d->item || !d->rating) return rc_error(RC_ENOMEM, "ratings: out of memory for %lld", (long long)n);
    return RC_OK;
}

int rt_split_make(rt_split *out, const rt_data *all, uint64_t seed, double test_frac, double valid_frac)
{
    memset(out, 0, sizeof *out);
    if (!all || !all->users || !all->items) return rc_error(RC_EINVAL, "split: data without vocabularies");
    int64_t R = all->n, U = (int64_t)idmap_size(all->users), N = (int64_t)idmap_size(all->items);
    uint8_t *set = malloc((size_t)R + 1);
    int32_t *umap = malloc(((size_t)U + 1) * sizeof *umap), *imap = malloc(((size_t)N + 1) * sizeof *imap);
    int rc = RC_OK;
    int64_t cnt[3];
    if (!set || !umap || !imap) {
        rc = rc_error(RC_ENOMEM, "split: out of memory");
        goto done;
    }
    if ((rc = rt_split_sets(set, R, seed, test_frac, valid_frac, cnt))) goto done;
    rt_data *part[3] = {&out->train, &out->valid, &out->test};
    for (int s = 0; s < 3; s++)
        if ((rc = data_alloc(part[s], cnt[s]))) goto done;
    out->train.owns_vocab = 1;
    out->train.users = idmap_new((size_t)U);
    out->train.items = idmap_new((size_t)N);
    if (!out->train.users || !out->train.items) {
        rc = rc_error(RC_ENOMEM, "split: out of memory");
        goto done;
    }
    for (int s = 1; s < 3; s++) {
        part[s]->users = out->train.users;
        part[s]->items = out->train.items;
    }
    for (int64_t u = 0; u < U; u++)
        umap[u] = -1;
    for (int64_t i = 0; i < N; i++)
        imap[i] = -1;
    /* the training vocabularies, in order of first appearance in all */
    for (int64_t k = 0; k < R; k++) {
        if (set[k] != 0) continue;
        int32_t u = all->user[k], i = all->item[k];
        if (u < 0 || u >= U || i < 0 || i >= N) {
            rc = rc_error(RC_EINVAL, "split: rating %lld has an index outside the vocabularies", (long long)k);
            goto done;
        }
        size_t len;
        const char *key;
        if (umap[u] < 0) {
            key = idmap_key(all->users, u, &len);
            int64_t x = idmap_intern(out->train.users, key, len);
            if (x < 0) {
                rc = RC_ENOMEM;
                goto done;
            }
            umap[u] = (int32_t)x;
        }
        if (imap[i] < 0) {
            key = idmap_key(all->items, i, &len);
            int64_t x = idmap_intern(out->train.items, key, len);
            if (x < 0) {
                rc = RC_ENOMEM;
                goto done;
            }
            imap[i] = (int32_t)x;
        }
    }
    int64_t fill[3] = {0, 0, 0};
    for (int64_t k = 0; k < R; k++) {
        int s = set[k];
        int32_t u = all->user[k], i = all->item[k];
        rt_data *p = part[s];
        int64_t j = fill[s]++;
        p->user[j] = u >= 0 && u < U ? umap[u] : -1;
        p->item[j] = i >= 0 && i < N ? imap[i] : -1;
        p->rating[j] = all->rating[k];
    }
    for (int s = 0; s < 3; s++)
        data_range(part[s]);
done:
    free(set);
    free(umap);
    free(imap);
    if (rc != RC_OK) rt_split_free(out);
    return rc;
}

int rt_remap(rt_data *out, const rt_data *d, const idmap *users, const idmap *items)
{
    memset(out, 0, sizeof *out);
    int64_t U = d->users ? (int64_t)idmap_size(d->users) : 0, N = d->items ? (int64_t)idmap_size(d->items) : 0;
    int32_t *umap = malloc(((size_t)U + 1) * sizeof *umap), *imap = malloc(((size_t)N + 1) * sizeof *imap);
    int rc = RC_OK;
    if (!umap || !imap || (rc = data_alloc(out, d->n))) {
        rc = rc_error(RC_ENOMEM, "ratings: out of memory");
        goto done;
    }
    for (int64_t u = 0; u < U; u++) {
        size_t len;
        const char *key = idmap_key(d->users, u, &len);
        int64_t x = idmap_find(users, key, len);
        umap[u] = x >= 0 && x <= INT32_MAX ? (int32_t)x : -1;
    }
    for (int64_t i = 0; i < N; i++) {
        size_t len;
        const char *key = idmap_key(d->items, i, &len);
        int64_t x = idmap_find(items, key, len);
        imap[i] = x >= 0 && x <= INT32_MAX ? (int32_t)x : -1;
    }
    for (int64_t k = 0; k < d->n; k++) {
        int32_t u = d->user[k], i = d->item[k];
        out->user[k] = u >= 0 && u < U ? umap[u] : -1;
        out->item[k] = i >= 0 && i < N ? imap[i] : -1;
        out->rating[k] = d->rating[k];
    }
    out->users = (idmap *)users;
    out->items = (idmap *)items;
    out->owns_vocab = 0;
    out->rmin = d->rmin;
    out->rmax = d->rmax;
done:
    free(umap);
    free(imap);
    if (rc != RC_OK) rt_free(out);
    return rc;
}

/* ---- writing ------------------------------------------------------------------------------------ */

static void put_tsv_id(FILE *fp, const char *id, size_t len)
{
    if (!memchr(id, '\t', len) && id[0] != '"') {
        fwrite(id, 1, len, fp);
        return;
    }
    putc('"', fp);
    for (size_t i = 0; i < len; i++) {
        if (id[i] == '"') putc('"', fp);
        putc(id[i], fp);
    }
    putc('"', fp);
}

/* The shortest of %.6g .. %.9g that reads back as v. */
static void put_rating(FILE *fp, float v)
{
    char b[32];
    for (int p = 6; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)v);
        if (strtof(b, NULL) == v) break;
    }
    fputs(b, fp);
}

int rt_write_tsv(const rt_data *d, const char *path)
{
    if (!d || !d->users || !d->items) return rc_error(RC_EINVAL, "%s: no vocabularies to write", path);
    int64_t U = (int64_t)idmap_size(d->users), N = (int64_t)idmap_size(d->items);
    for (int64_t k = 0; k < d->n; k++)
        if (d->user[k] < 0 || d->user[k] >= U || d->item[k] < 0 || d->item[k] >= N)
            return rc_error(RC_EINVAL, "%s: rating %lld has user %d, item %d: unknown ids cannot be written", path,
                            (long long)k, (int)d->user[k], (int)d->item[k]);
    for (int v = 0; v < 2; v++) {
        const idmap *m = v ? d->items : d->users;
        for (int64_t x = 0; x < (int64_t)idmap_size(m); x++) {
            size_t len;
            const char *key = idmap_key(m, x, &len);
            if (len == 0 || memchr(key, '\n', len) || memchr(key, '\r', len) || memchr(key, '\0', len))
                return rc_error(RC_EINVAL, "%s: %s id \"%.40s\" is empty or holds a line break or NUL", path,
                                v ? "item" : "user", key);
        }
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return rc_error(RC_ENOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *fp = fopen(tmp, "w");
    if (!fp) {
        int rc = rc_error(RC_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    char *buf = malloc(1 << 20);
    if (buf) setvbuf(fp, buf, _IOFBF, 1 << 20);
    fputs("user_id\titem_id\trating\n", fp);
    for (int64_t k = 0; k < d->n; k++) {
        size_t lu, li;
        const char *u = idmap_key(d->users, d->user[k], &lu), *i = idmap_key(d->items, d->item[k], &li);
        put_tsv_id(fp, u, lu);
        putc('\t', fp);
        put_tsv_id(fp, i, li);
        putc('\t', fp);
        put_rating(fp, d->rating[k]);
        putc('\n', fp);
    }
    int bad = ferror(fp), err = errno;
    if (fflush(fp) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    int cl = fclose(fp);
    if (cl != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    free(buf);
    int rc = RC_OK;
    if (bad) rc = rc_error(RC_EIO, "%s: write error: %s", tmp, strerror(err));
    else if (rename(tmp, path) != 0) rc = rc_error(RC_EIO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (rc != RC_OK) remove(tmp);
    free(tmp);
    return rc;
}

/* ---- metrics ------------------------------------------------------------------------------------ */

int rt_metrics_of(rt_metrics *out, const rt_data *d, const float *pred, const uint8_t *fallback, float rmin,
                  float rmax)
{
    memset(out, 0, sizeof *out);
    if (!d || d->n <= 0) return rc_error(RC_EINVAL, "metrics: no ratings");
    double se = 0, ae = 0, sec = 0, aec = 0;
    int64_t nd = 0;
    for (int64_t k = 0; k < d->n; k++) {
        double p = pred[k], r = d->rating[k];
        double pc = p < rmin ? rmin : p > rmax ? rmax : p;
        se += (p - r) * (p - r);
        ae += fabs(p - r);
        sec += (pc - r) * (pc - r);
        aec += fabs(pc - r);
        if (fallback && fallback[k]) nd++;
    }
    double n = (double)d->n;
    out->n = d->n;
    out->n_default = nd;
    out->rmse = sqrt(se / n);
    out->mae = ae / n;
    out->rmse_clip = sqrt(sec / n);
    out->mae_clip = aec / n;
    return RC_OK;
}

json_t *rt_metrics_to_json(const rt_metrics *m)
{
    json_t *o = json_pack("{s:I, s:I, s:f, s:f, s:f, s:f}", "n", (json_int_t)m->n, "n_default",
                          (json_int_t)m->n_default, "rmse", m->rmse, "mae", m->mae, "rmse_clipped", m->rmse_clip,
                          "mae_clipped", m->mae_clip);
    if (!o) rc_error(RC_ENOMEM, "metrics: out of memory");
    return o;
}

/* ---- the trainer's data ------------------------------------------------------------------------- */

void rt_job_free(rt_job *j)
{
    if (!j) return;
    rt_csr_free(&j->by_user);
    rt_csr_free(&j->by_item);
    rt_split_free(&j->sp);
    memset(j, 0, sizeof *j);
}

static int64_t count_unknown(const rt_data *d)
{
    int64_t n = 0;
    for (int64_t k = 0; k < d->n; k++)
        n += d->user[k] < 0 || d->item[k] < 0;
    return n;
}

/* Read path and map it to the training vocabularies into *out. */
static int read_remapped(rt_data *out, const char *path, const rt_data *train, int verbose)
{
    rt_data d;
    int rc = rt_read(&d, path, verbose);
    if (rc) return rc;
    rc = rt_remap(out, &d, train->users, train->items);
    rt_free(&d);
    return rc;
}

int rt_job_prepare(rt_job *j, const rt_opts *o)
{
    memset(j, 0, sizeof *j);
    int verbose = !o->quiet, rc;
    if (!o->data == !o->train || (o->data && (o->valid || o->test)))
        return rc_error(RC_EINVAL, "give --data F or --train F (with --valid F, --test F)");
    if (o->data) {
        rt_data all;
        if ((rc = rt_read(&all, o->data, verbose))) return rc;
        rc = rt_split_make(&j->sp, &all, (uint64_t)o->split_seed, o->test_frac, o->valid_frac);
        if (verbose && rc == RC_OK)
            log_info("%s: %lld ratings, %zu users, %zu items, ratings %g..%g; split seed %lld", o->data,
                     (long long)all.n, idmap_size(all.users), idmap_size(all.items), (double)all.rmin,
                     (double)all.rmax, o->split_seed);
        rt_free(&all);
        if (rc) {
            rc_wrap(rc, "%s", o->data);
            goto fail;
        }
        j->source = o->data;
    } else {
        if ((rc = rt_read(&j->sp.train, o->train, verbose))) goto fail;
        if (o->valid && (rc = read_remapped(&j->sp.valid, o->valid, &j->sp.train, verbose))) goto fail;
        if (o->test && (rc = read_remapped(&j->sp.test, o->test, &j->sp.train, verbose))) goto fail;
        if (!o->valid) {
            j->sp.valid.users = j->sp.train.users;
            j->sp.valid.items = j->sp.train.items;
        }
        if (!o->test) {
            j->sp.test.users = j->sp.train.users;
            j->sp.test.items = j->sp.train.items;
        }
        j->source = o->train;
    }
    if ((rc = rt_csr_build(&j->by_user, &j->sp.train, 0)) || (rc = rt_csr_build(&j->by_item, &j->sp.train, 1)))
        goto fail;
    double s = 0;
    for (int64_t k = 0; k < j->sp.train.n; k++)
        s += j->sp.train.rating[k];
    j->mean = j->sp.train.n > 0 ? s / (double)j->sp.train.n : 0;
    if (verbose)
        log_info("train %lld ratings (%lld users, %lld items, mean %.4f), valid %lld (%lld unknown user or item), "
                 "test %lld (%lld unknown)",
                 (long long)j->sp.train.n, (long long)j->by_user.rows, (long long)j->by_item.rows, j->mean,
                 (long long)j->sp.valid.n, (long long)count_unknown(&j->sp.valid), (long long)j->sp.test.n,
                 (long long)count_unknown(&j->sp.test));
    return RC_OK;
fail:
    rt_job_free(j);
    return rc;
}

json_t *rt_job_meta(const rt_job *j, const rt_opts *o)
{
    json_t *m = json_pack("{s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f}", "path", j->source, "split_seed",
                          (json_int_t)o->split_seed, "n_train", (json_int_t)j->sp.train.n, "n_valid",
                          (json_int_t)j->sp.valid.n, "n_test", (json_int_t)j->sp.test.n, "n_users",
                          (json_int_t)j->by_user.rows, "n_items", (json_int_t)j->by_item.rows, "mean", j->mean,
                          "rating_min", (double)j->sp.train.rmin, "rating_max", (double)j->sp.train.rmax);
    if (!m) rc_error(RC_ENOMEM, "ratings: out of memory (meta)");
    return m;
}

void rt_print_result(const char *label, const rt_metrics *test, double train_s, const char *extra)
{
    if (test)
        printf("%s rmse=%.4f mae=%.4f rmse_clipped=%.4f mae_clipped=%.4f n=%lld n_default=%lld train_s=%.1f", label,
               test->rmse, test->mae, test->rmse_clip, test->mae_clip, (long long)test->n, (long long)test->n_default,
               train_s);
    else
        printf("%s (no test data) train_s=%.1f", label, train_s);
    if (extra && extra[0]) printf(" %s", extra);
    putchar('\n');
    fflush(stdout);
}

/* ---- refit data ---------------------------------------------------------------------------------- */

void rt_refit_free(rt_refit *r)
{
    if (!r) return;
    rt_free(&r->all);
    rt_csr_free(&r->by_user);
    rt_csr_free(&r->by_item);
    memset(r, 0, sizeof *r);
}

int rt_refit_make(rt_refit *out, const rt_job *j)
{
    memset(out, 0, sizeof *out);
    const rt_data *t = &j->sp.train, *v = &j->sp.valid;
    rt_data *all = &out->all;
    int64_t n = t->n;
    for (int64_t k = 0; k < v->n; k++)
        n += v->user[k] >= 0 && v->item[k] >= 0;
    all->user = malloc(((size_t)n + 1) * sizeof *all->user);   // (R')
    all->item = malloc(((size_t)n + 1) * sizeof *all->item);   // (R')
    all->rating = malloc(((size_t)n + 1) * sizeof *all->rating); // (R')
    if (!all->user || !all->item || !all->rating) {
        rt_refit_free(out);
        return rc_error(RC_ENOMEM, "out of memory (refit data)");
    }
    all->users = t->users;
    all->items = t->items;
    all->owns_vocab = 0;
    all->rmin = t->rmin;
    all->rmax = t->rmax;
    double sum = 0;
    int64_t a = 0;
    for (int pass = 0; pass < 2; pass++) {
        const rt_data *d = pass ? v : t;
        for (int64_t k = 0; k < d->n; k++) {
            if (d->user[k] < 0 || d->item[k] < 0) continue;
            all->user[a] = d->user[k];
            all->item[a] = d->item[k];
            sum += all->rating[a++] = d->rating[k];
        }
    }
    all->n = a;
    out->mean = a > 0 ? sum / (double)a : 0;
    int rc = rt_csr_build(&out->by_user, all, 0);
    if (rc == RC_OK) rc = rt_csr_build(&out->by_item, all, 1);
    if (rc != RC_OK) rt_refit_free(out);
    return rc;
}

/* ---- rt_train_main: `recd train MODEL` for every rating model ------------------------------------- */

static rb_triples rt_triples_of(const rt_data *d) { return (rb_triples){d->n, d->user, d->item, d->rating}; }
static rb_rows rt_rows_of(const rt_csr *c) { return (rb_rows){c->rows, c->nnz, c->offsets, c->col, c->val}; }

static void rt_train_usage(const rt_trainer *t, FILE *out)
{
    fputs(t->usage, out);
    cfg_print_help(t->defs, out);
}

/* Metrics of run.model on d (n > 0) into *out. */
static int rt_train_evaluate(const rt_trainer *t, const rt_run *r, const rt_data *d, rt_metrics *out)
{
    float *pred = malloc((size_t)d->n * sizeof *pred); // (R)
    uint8_t *fb = malloc((size_t)d->n);                // (R)
    int rc;
    if (!pred || !fb) {
        rc = rc_error(RC_ENOMEM, "%s: out of memory (evaluation)", t->name);
    } else {
        rb_triples tt = rt_triples_of(d);
        t->predict(r->model, &tt, (float)r->o->default_rating, pred, fb);
        rc = rt_metrics_of(out, d, pred, fb, r->job->sp.train.rmin, r->job->sp.train.rmax);
    }
    free(pred);
    free(fb);
    return rc;
}

/* The snapshot meta of a run (steps 5 of the driver): new reference, NULL on ENOMEM. */
static json_t *rt_train_meta(const rt_trainer *t, const rt_run *r, const rt_metrics *vm, const rt_metrics *tm)
{
    json_t *extra = json_object(), *metrics = json_object();
    if (!extra || !metrics) {
        json_decref(extra);
        json_decref(metrics);
        return NULL;
    }
    /* each set_new takes its value's reference, also on failure (a NULL value fails) */
    int bad = json_object_set_new(extra, "config", cfg_to_json(t->defs, r->cfg));
    if (t->hparams_json) bad |= json_object_set_new(extra, "hparams", t->hparams_json(r));
    bad |= json_object_set_new(extra, "data", rt_job_meta(r->job, r->o));
    bad |= json_object_set_new(extra, "train", t->train_json(r));
    if ((t->flags & RT_META_VALID_RMSE) && isfinite(r->valid_rmse))
        bad |= json_object_set_new(metrics, "valid_rmse", json_real(r->valid_rmse));
    if (vm) bad |= json_object_set_new(metrics, "valid", rt_metrics_to_json(vm));
    if (tm) bad |= json_object_set_new(metrics, "test", rt_metrics_to_json(tm));
    bad |= json_object_set_new(extra, "metrics", metrics);
    if (bad) {
        json_decref(extra);
        return NULL;
    }
    return extra;
}

int rt_train_main(const rt_trainer *t, int argc, char **argv)
{
    char prog[96];
    snprintf(prog, sizeof prog, "recd train %s", t->name);
    void *cfg = calloc(1, t->cfg_size);
    rt_run r;
    memset(&r, 0, sizeof r);
    r.hp = calloc(1, t->hp_size ? t->hp_size : 1);
    r.st = calloc(1, t->st_size ? t->st_size : 1);
    r.valid_rmse = NAN;
    rt_job job;
    rt_refit rf;
    memset(&job, 0, sizeof job);
    memset(&rf, 0, sizeof rf);
    json_t *extra = NULL;
    int status = 1, have_cfg = 0;
    if (!cfg || !r.hp || !r.st) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    if (cfg_defaults(t->defs, cfg) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    have_cfg = 1;
    const rt_opts *o = (const rt_opts *)((const char *)cfg + t->rt_offset);
    r.cfg = cfg;
    r.o = o;

    /* 1. settings */
    const char *cfg_path = NULL;
    for (int i = 1; i < argc; i++) { /* --help, and -c first: the file is read before the flags */
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            rt_train_usage(t, stdout);
            status = 0;
            goto done;
        }
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) cfg_path = argv[++i];
    }
    static const char *const keep[] = {"-c", NULL};
    if ((cfg_path && cfg_load_file(t->defs, cfg, cfg_path) != RC_OK) ||
        cfg_parse_args(t->defs, cfg, &argc, argv, keep) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        status = 2;
        goto done;
    }
    for (int i = 1; i < argc; i++) { /* what cfg_parse_args left: -c F */
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            i++;
            continue;
        }
        fprintf(stderr, "%s: unexpected argument '%s' (run `%s --help`)\n", prog, argv[i], prog);
        status = 2;
        goto done;
    }
    if (!o->data == !o->train || (o->data && (o->valid || o->test))) {
        fprintf(stderr, "%s: give --data F (split here) or --train F [--valid F] [--test F] (already split)\n", prog);
        rt_train_usage(t, stderr);
        status = 2;
        goto done;
    }

    /* 2. hyperparameters */
    if (t->setup(&r) != RC_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, cfg_path ? cfg_path : "settings", rc_errmsg());
        status = 2;
        goto done;
    }
    int want_refit = r.refit;
    r.refit = 0;
    if (o->quiet && log_level < LOG_LVL_WARN) log_level = LOG_LVL_WARN;
    r.label = o->name ? o->name : t->label ? t->label(&r) : t->name;

    /* 3. data and the first pass */
    if (rt_job_prepare(&job, o) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    r.job = &job;
    const rt_data *tr = &job.sp.train;
    if (tr->n < 1 || job.by_user.rows < 1 || job.by_item.rows < 1) {
        fprintf(stderr, "%s: %s: no training ratings\n", prog, job.source);
        goto done;
    }
    rb_train_input in = {.by_user = rt_rows_of(&job.by_user),
                         .by_item = rt_rows_of(&job.by_item),
                         .valid = rt_triples_of(&job.sp.valid),
                         .mean = job.mean,
                         .default_rating = (float)o->default_rating,
                         .rmin = tr->rmin,
                         .rmax = tr->rmax,
                         .threads = (int)o->threads,
                         .seed = (uint64_t)o->seed,
                         .verbose = !o->quiet};
    double t0 = clock_mono_s();
    if (t->train(&r, &in) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    r.train_s = clock_mono_s() - t0;
    r.n_train = tr->n;

    /* 4. the first model's validation metrics, the refit */
    rt_metrics vm, tm;
    int have_valid = job.sp.valid.n > 0, have_test = job.sp.test.n > 0;
    int meta_valid = have_valid && (t->flags & RT_META_VALID);
    if (meta_valid && rt_train_evaluate(t, &r, &job.sp.valid, &vm) != RC_OK) {
        fprintf(stderr, "%s: evaluation: %s\n", prog, rc_errmsg());
        goto done;
    }
    const rt_csr *seen = &job.by_user; /* the published model's training rows, by user */
    double mean = job.mean;
    if (want_refit && have_valid && t->refit) {
        if (rt_refit_make(&rf, &job) != RC_OK) {
            fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
            goto done;
        }
        rb_train_input in2 = in;
        in2.by_user = rt_rows_of(&rf.by_user);
        in2.by_item = rt_rows_of(&rf.by_item);
        in2.valid = (rb_triples){0, NULL, NULL, NULL};
        in2.mean = rf.mean;
        r.refit = 1;
        r.n_train = rf.all.n;
        if (t->refit(&r, &in2) != RC_OK) {
            fprintf(stderr, "%s: refit: %s\n", prog, rc_errmsg());
            goto done;
        }
        r.train_s = clock_mono_s() - t0;
        seen = &rf.by_user;
        mean = rf.mean;
    }

    /* 5. test metrics, meta */
    if (have_test && rt_train_evaluate(t, &r, &job.sp.test, &tm) != RC_OK) {
        fprintf(stderr, "%s: evaluation: %s\n", prog, rc_errmsg());
        goto done;
    }
    if (!(extra = rt_train_meta(t, &r, meta_valid ? &vm : NULL, have_test ? &tm : NULL))) {
        fprintf(stderr, "%s: out of memory (meta)\n", prog);
        goto done;
    }

    /* 6. publish, result line */
    rating_base_src src = {.users = tr->users,
                           .items = tr->items,
                           .offsets = seen->offsets,
                           .items_by_user = seen->col,
                           .default_rating = in.default_rating,
                           .rmin = tr->rmin,
                           .rmax = tr->rmax,
                           .mean = (float)mean};
    if (t->save(&r, &src, o->out, extra, &r.version) != RC_OK) {
        fprintf(stderr, "%s: cannot write the snapshot under %s: %s\n", prog, o->out, rc_errmsg());
        goto done;
    }
    log_info("%s: published %s/%s/%llu", t->name, o->out, r.label, (unsigned long long)r.version);
    char more[512];
    more[0] = '\0';
    t->result_extra(&r, more, sizeof more);
    rt_print_result(r.label, have_test ? &tm : NULL, r.train_s, more);
    status = 0;
done:
    json_decref(extra);
    if (r.model) t->free(r.model);
    rt_refit_free(&rf);
    rt_job_free(&job);
    if (have_cfg) cfg_release(t->defs, cfg);
    free(cfg);
    free(r.hp);
    free(r.st);
    return status;
}

/* ---- recd eval MODEL --snapshot DIR --test F ---------------------------------------------------- */

typedef struct rt_eval_cfg {
    char *snapshot, *test;
    int quiet;
} rt_eval_cfg;

static const cfg_def rt_eval_defs[] = {
    CFG_STRING("snapshot", rt_eval_cfg, snapshot, NULL, "snapshot folder ROOT/MODEL/VERSION, or ROOT/MODEL (newest)"),
    CFG_STRING("test", rt_eval_cfg, test, NULL, "test ratings (file, folder or a,b,c; ids as in training)"),
    CFG_BOOL("quiet", rt_eval_cfg, quiet, 0, "only warnings and the result line"),
    CFG_END,
};

static void rt_eval_usage(FILE *out, const char *model)
{
    fprintf(out,
            "usage: recd eval %s --snapshot DIR --test F [--quiet]\n"
            "RMSE and MAE of a rating snapshot on the ratings of F (MovieLens '::', tab or comma files, gzip ok;\n"
            "users and items the model does not know are predicted with its default rating and counted in\n"
            "n_default). Prints one result line:\n"
            "  NAME rmse=.. mae=.. rmse_clipped=.. mae_clipped=.. n=.. n_default=.. train_s=0 version=V\n"
            "settings:\n",
            model);
    cfg_print_help(rt_eval_defs, out);
}

/* Predictions of every rating of t (indices of the model's vocabularies) through the rate ops, one user
 * at a time in chunks of B. */
static int rate_all(const model_type *type, const void *h, const rt_data *t, float *pred, uint8_t *fb)
{
    enum { B = 1024 };
    int64_t U = (int64_t)idmap_size(t->users), R = t->n;
    int64_t *start = calloc((size_t)U + 2, sizeof *start), *order = malloc(((size_t)R + 1) * sizeof *order);
    int32_t *items = malloc(B * sizeof *items);
    float *out = malloc(B * sizeof *out);
    uint8_t *f = malloc(B);
    void *scratch = type->rate->scratch_new(h, B);
    int rc = RC_OK;
    if (!start || !order || !items || !out || !f || !scratch) {
        rc = scratch ? rc_error(RC_ENOMEM, "eval: out of memory") : rc_wrap(RC_ENOMEM, "eval: scratch");
        goto done;
    }
    /* ratings grouped by user: bucket 0 holds the unknown users (-1) */
    for (int64_t k = 0; k < R; k++)
        start[t->user[k] + 2]++;
    for (int64_t b = 1; b <= U + 1; b++)
        start[b] += start[b - 1];
    for (int64_t k = 0; k < R; k++)
        order[start[t->user[k] + 1]++] = k;
    for (int64_t a = 0; a < R;) {
        int32_t u = t->user[order[a]];
        int n = 0;
        while (a + n < R && n < B && t->user[order[a + n]] == u) {
            items[n] = t->item[order[a + n]];
            n++;
        }
        type->rate->predict(h, u, items, n, out, f, scratch);
        for (int k = 0; k < n; k++) {
            pred[order[a + k]] = out[k];
            fb[order[a + k]] = f[k];
        }
        a += n;
    }
done:
    if (scratch) type->rate->scratch_free(scratch);
    free(start);
    free(order);
    free(items);
    free(out);
    free(f);
    return rc;
}

int rt_eval_cmd(int argc, char **argv)
{
    const char *model = argc > 0 ? argv[0] : "?";
    char prog[96];
    snprintf(prog, sizeof prog, "recd eval %s", model);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            rt_eval_usage(stdout, model);
            return 0;
        }
    rt_eval_cfg c;
    if (cfg_defaults(rt_eval_defs, &c) != RC_OK || cfg_parse_args(rt_eval_defs, &c, &argc, argv, NULL) != RC_OK) {
        fprintf(stderr, "%s: %s (run `%s --help`)\n", prog, rc_errmsg(), prog);
        cfg_release(rt_eval_defs, &c);
        return 2;
    }
    int status = 2;
    snap *s = NULL;
    void *h = NULL;
    const model_type *type = NULL;
    idmap *users = NULL, *items = NULL;
    rt_data raw, test;
    memset(&raw, 0, sizeof raw);
    memset(&test, 0, sizeof test);
    float *pred = NULL;
    uint8_t *fb = NULL;
    if (argc > 1) {
        fprintf(stderr, "%s: unexpected argument '%s' (run `%s --help`)\n", prog, argv[1], prog);
        goto done;
    }
    if (!c.snapshot || !c.test) {
        fprintf(stderr, "%s: give --snapshot DIR and --test F\n", prog);
        goto done;
    }
    if (c.quiet && log_level < LOG_LVL_WARN) log_level = LOG_LVL_WARN;
    status = 1;
    if (snap_open_any(&s, c.snapshot) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    const char *tname = snap_type(s);
    if (!tname || strcmp(tname, model) != 0) {
        fprintf(stderr, "%s: snapshot %s holds a '%s' model, not '%s'\n", prog, c.snapshot, tname ? tname : "?", model);
        status = 2;
        goto done;
    }
    if (!(type = model_type_find(tname))) {
        fprintf(stderr, "%s: snapshot %s: unknown model type '%s'\n", prog, c.snapshot, tname);
        goto done;
    }
    if (!type->rate) {
        fprintf(stderr, "%s: model '%s' does not predict ratings (no `rate` capability)\n", prog, tname);
        status = 2;
        goto done;
    }
    if (type->load(&h, s) != RC_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, c.snapshot, rc_errmsg());
        goto done;
    }
    if (snap_vocab_load(s, "users", &users) != RC_OK || snap_vocab_load(s, "items", &items) != RC_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, c.snapshot, rc_errmsg());
        goto done;
    }
    if (rt_read(&raw, c.test, !c.quiet) != RC_OK || rt_remap(&test, &raw, users, items) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    pred = malloc(((size_t)test.n + 1) * sizeof *pred);
    fb = malloc((size_t)test.n + 1);
    if (!pred || !fb) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    double t0 = clock_mono_s();
    if (rate_all(type, h, &test, pred, fb) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    double secs = clock_mono_s() - t0;
    float rmin = raw.rmin, rmax = raw.rmax;
    const json_t *rm = json_object_get(snap_meta(s), "rating");
    const json_t *jmin = json_object_get(rm, "min"), *jmax = json_object_get(rm, "max");
    if (json_is_number(jmin) && json_is_number(jmax)) {
        rmin = (float)json_number_value(jmin);
        rmax = (float)json_number_value(jmax);
    }
    rt_metrics m;
    if (rt_metrics_of(&m, &test, pred, fb, rmin, rmax) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    if (!c.quiet)
        log_info("%s: %lld ratings predicted in %.3f s (%.0f ratings/s), %lld with the default", snap_dir(s),
                 (long long)m.n, secs, secs > 0 ? (double)m.n / secs : 0.0, (long long)m.n_default);
    char extra[64];
    snprintf(extra, sizeof extra, "version=%llu", (unsigned long long)snap_version(s));
    rt_print_result(snap_model(s), &m, 0, extra);
    status = 0;
done:
    free(pred);
    free(fb);
    rt_free(&test);
    rt_free(&raw);
    idmap_free(users);
    idmap_free(items);
    if (h) type->free(h);
    snap_close(s);
    cfg_release(rt_eval_defs, &c);
    return status;
}
