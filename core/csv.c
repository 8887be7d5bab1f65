/* core/csv.c - streaming CSV/TSV reader over zlib's gzread (plain and gzip alike).
 *
 * One buffer holds decompressed bytes; rows are found with memchr and split in place (separators and
 * the newline become NULs), so a row costs no allocation. A row that straddles the end of the buffer
 * is moved to its front before the next read; the buffer grows only for rows longer than it, up to
 * CSV_MAX_LINE.
 */
#include "core/csv.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/err.h"

#define CSV_CHUNK (256u << 10)     /* bytes asked of gzread at a time */
#define CSV_MAX_LINE (1u << 20)    /* longest accepted row, newline excluded */

struct csv_reader {
    gzFile gz;
    char *path;
    char sep;
    int eof;          /* gzread reported the end of the file */
    char *buf;        /* cap + 1 bytes (room for a final NUL) */
    size_t cap;       /* usable bytes of buf */
    size_t pos, len;  /* unread bytes are buf[pos .. len) */
    int64_t line;     /* 1-based number of the last line consumed */
    int64_t row_line; /* line of the row last returned */
    char **fields;
    int nf_cap;
};

static int csv_fill(csv_reader *r)
{
    /* Move the unread tail to the front, grow if the buffer is full of one unfinished line. */
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    if (r->len == r->cap) {
        if (r->cap >= CSV_MAX_LINE + 2)
            return rc_error(RC_EFORMAT, "%s:%lld: line longer than %u bytes", r->path,
                            (long long)(r->line + 1), CSV_MAX_LINE);
        size_t ncap = r->cap * 2;
        if (ncap > CSV_MAX_LINE + 2) ncap = CSV_MAX_LINE + 2;
        char *nb = realloc(r->buf, ncap + 1);
        if (!nb) return rc_error(RC_ENOMEM, "%s: out of memory for a line buffer", r->path);
        r->buf = nb;
        r->cap = ncap;
    }
    size_t want = r->cap - r->len;
    if (want > CSV_CHUNK) want = CSV_CHUNK;
    int n = gzread(r->gz, r->buf + r->len, (unsigned)want);
    if (n < 0) {
        int zerr = 0;
        const char *msg = gzerror(r->gz, &zerr);
        return rc_error(RC_EIO, "%s:%lld: read error: %s", r->path, (long long)(r->line + 1),
                        zerr == Z_ERRNO ? strerror(errno) : msg);
    }
    if (n == 0) {
        /* gzread returns 0 at the end, and also on a truncated gzip stream (with an error set). */
        int zerr = 0;
        const char *msg = gzerror(r->gz, &zerr);
        if (zerr != Z_OK && zerr != Z_BUF_ERROR)
            return rc_error(RC_EIO, "%s:%lld: read error: %s", r->path, (long long)(r->line + 1), msg);
        if (zerr == Z_BUF_ERROR)
            return rc_error(RC_EIO, "%s:%lld: truncated gzip stream", r->path, (long long)(r->line + 1));
        r->eof = 1;
    }
    r->len += (size_t)n;
    return RC_OK;
}

/* Find the next raw line: *start, *end (end excludes '\n'). Returns 1, 0 at EOF, or an RC code. */
static int csv_raw_line(csv_reader *r, char **start, size_t *lenp)
{
    size_t scanned = 0; /* bytes of the pending line already searched for '\n' */
    for (;;) {
        char *b = r->buf + r->pos;
        size_t avail = r->len - r->pos;
        char *nl = scanned < avail ? memchr(b + scanned, '\n', avail - scanned) : NULL;
        if (nl) {
            size_t l = (size_t)(nl - b);
            if (l > CSV_MAX_LINE)
                return rc_error(RC_EFORMAT, "%s:%lld: line longer than %u bytes", r->path,
                                (long long)(r->line + 1), CSV_MAX_LINE);
            *start = b;
            *lenp = l;
            r->pos += l + 1;
            r->line++;
            return 1;
        }
        if (r->eof) {
            if (avail == 0) return 0;
            if (avail > CSV_MAX_LINE)
                return rc_error(RC_EFORMAT, "%s:%lld: line longer than %u bytes", r->path,
                                (long long)(r->line + 1), CSV_MAX_LINE);
            *start = b;
            *lenp = avail;
            r->pos = r->len;
            r->line++;
            return 1;
        }
        scanned = avail;
        int rc = csv_fill(r);
        if (rc < 0) return rc;
    }
}

static int csv_push_field(csv_reader *r, int *nf, char *f)
{
    if (*nf == r->nf_cap) {
        int ncap = r->nf_cap ? r->nf_cap * 2 : 16;
        char **nfs = realloc(r->fields, (size_t)ncap * sizeof *nfs);
        if (!nfs) return rc_error(RC_ENOMEM, "%s: out of memory for fields", r->path);
        r->fields = nfs;
        r->nf_cap = ncap;
    }
    r->fields[(*nf)++] = f;
    return RC_OK;
}

/* Split line s[0..len) in place (s[len] is writable). */
static int csv_split(csv_reader *r, char *s, size_t len, int *nfp)
{
    int nf = 0, rc;
    char *end = s + len, *p = s;
    const char sep = r->sep;
    *end = '\0';
    for (;;) {
        if (*p == '"') {
            /* Quoted field: unescape in place. */
            char *w = p, *q = p + 1;
            char *field = w;
            for (;;) {
                if (q >= end)
                    return rc_error(RC_EFORMAT, "%s:%lld: unterminated quoted field %d", r->path,
                                    (long long)r->line, nf + 1);
                if (*q == '"') {
                    if (q + 1 < end && q[1] == '"') {
                        *w++ = '"';
                        q += 2;
                        continue;
                    }
                    q++;
                    break;
                }
                *w++ = *q++;
            }
            if (q < end && *q != sep)
                return rc_error(RC_EFORMAT, "%s:%lld: unexpected character after closing quote in field %d",
                                r->path, (long long)r->line, nf + 1);
            *w = '\0';
            if ((rc = csv_push_field(r, &nf, field)) < 0) return rc;
            if (q >= end) break;
            p = q + 1;
            continue;
        }
        char *e = memchr(p, sep, (size_t)(end - p));
        if ((rc = csv_push_field(r, &nf, p)) < 0) return rc;
        if (!e) break;
        *e = '\0';
        p = e + 1;
    }
    *nfp = nf;
    return RC_OK;
}

int csv_open_rc(csv_reader **out, const char *path, char sep)
{
    int rc;
    *out = NULL;
    csv_reader *r = calloc(1, sizeof *r);
    if (!r) return rc_error(RC_ENOMEM, "%s: out of memory", path);
    r->path = strdup(path);
    r->cap = CSV_CHUNK;
    r->buf = malloc(r->cap + 1);
    if (!r->path || !r->buf) {
        rc = rc_error(RC_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    errno = 0;
    r->gz = gzopen(path, "rb");
    if (!r->gz) {
        int e = errno;
        rc = rc_error(e == ENOENT ? RC_ENOTFOUND : e ? RC_EIO : RC_ENOMEM, "%s: cannot open: %s", path,
                      e ? strerror(e) : "out of memory");
        goto fail;
    }
    gzbuffer(r->gz, CSV_CHUNK);
    r->sep = sep;
    if (sep == 0) {
        /* Guess from the first line: read until it is complete (or the buffer/file ends). */
        r->sep = ',';
        size_t scanned = 0;
        for (;;) {
            char *nl = memchr(r->buf + scanned, '\n', r->len - scanned);
            if (nl || r->eof || r->len == r->cap) {
                size_t l = nl ? (size_t)(nl - r->buf) : r->len;
                if (memchr(r->buf, '\t', l)) r->sep = '\t';
                break;
            }
            scanned = r->len;
            if ((rc = csv_fill(r)) < 0) goto fail;
        }
    }
    *out = r;
    return RC_OK;
fail:
    csv_close(r);
    return rc;
}

csv_reader *csv_open(const char *path, char sep)
{
    csv_reader *r;
    return csv_open_rc(&r, path, sep) == RC_OK ? r : NULL;
}

int csv_next(csv_reader *r, char ***fields, int *nfields)
{
    for (;;) {
        char *s = NULL;
        size_t len = 0;
        int rc = csv_raw_line(r, &s, &len);
        if (rc <= 0) return rc;
        if (len > 0 && s[len - 1] == '\r') len--;
        if (len == 0) continue; /* empty line */
        /* a NUL would silently cut the field it is in (binary data, a UTF-16 file): refuse it */
        const char *nul = memchr(s, '\0', len);
        if (nul)
            return rc_error(RC_EFORMAT, "%s:%lld: NUL byte at column %zu (binary or UTF-16 file?)",
                            r->path, (long long)r->line, (size_t)(nul - s) + 1);
        int nf = 0;
        if ((rc = csv_split(r, s, len, &nf)) < 0) return rc;
        r->row_line = r->line;
        *fields = r->fields;
        *nfields = nf;
        return 1;
    }
}

int64_t csv_line(const csv_reader *r)
{
    return r->row_line;
}

const char *csv_path(const csv_reader *r)
{
    return r->path;
}

char csv_sep(const csv_reader *r)
{
    return r->sep;
}

void csv_close(csv_reader *r)
{
    if (!r) return;
    if (r->gz) gzclose(r->gz);
    free(r->fields);
    free(r->buf);
    free(r->path);
    free(r);
}

int csv_parse_i64(const char *s, int64_t *out)
{
    while (*s == ' ' || *s == '\t') s++;
    int neg = 0;
    if (*s == '-' || *s == '+') neg = *s++ == '-';
    if (*s < '0' || *s > '9') return RC_EFORMAT;
    uint64_t v = 0;
    const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s++ - '0');
        if (v > (lim - d) / 10) return RC_EFORMAT;
        v = v * 10 + d;
    }
    while (*s == ' ' || *s == '\t') s++;
    if (*s) return RC_EFORMAT;
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return RC_OK;
}

int csv_parse_double(const char *s, double *out)
{
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) return RC_EFORMAT;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || (errno == ERANGE && fabs(v) > 1.0) || !isfinite(v)) return RC_EFORMAT;
    while (*end == ' ' || *end == '\t') end++;
    if (*end) return RC_EFORMAT;
    *out = v;
    return RC_OK;
}
