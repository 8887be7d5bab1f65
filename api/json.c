/* api/json.c - the strict two-pass JSON reader (see json.h). */
#include "api/json.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/utf8.h"

/* ---- scratch ---- */
void api_scratch_trim(api_scratch *s, size_t keep_bytes)
{
    if (!s) return;
    if (s->arena_cap > keep_bytes) {
        free(s->arena);
        s->arena = NULL;
        s->arena_cap = 0;
    }
    if (s->strs_cap * sizeof *s->strs > keep_bytes) {
        free(s->strs);
        s->strs = NULL;
        s->strs_cap = 0;
    }
}

void api_scratch_release(api_scratch *s)
{
    if (!s) return;
    free(s->arena);
    free(s->strs);
    memset(s, 0, sizeof *s);
}

int api_scratch_arena(api_scratch *s, size_t bytes)
{
    if (bytes <= s->arena_cap) return RC_OK;
    if (bytes < 256) bytes = 256;
    char *a = realloc(s->arena, bytes);
    if (!a) return rc_error(RC_ENOMEM, "out of memory for a %zu-byte request arena", bytes);
    s->arena = a;
    s->arena_cap = bytes;
    return RC_OK;
}

int api_scratch_strs(api_scratch *s, size_t n)
{
    if (n <= s->strs_cap) return RC_OK;
    if (n < 16) n = 16;
    if (n > SIZE_MAX / sizeof *s->strs) return rc_error(RC_ENOMEM, "too many strings (%zu)", n);
    api_str *a = realloc(s->strs, n * sizeof *a);
    if (!a) return rc_error(RC_ENOMEM, "out of memory for %zu request strings", n);
    s->strs = a;
    s->strs_cap = n;
    return RC_OK;
}

/* ---- pass 1: the check ---- */

/* 1 for the bytes a string holds as they are in the common case: printable ASCII but '"' and '\\'. */
static const uint8_t plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),                                                    /* 0x00-0x1f: control */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,                    /* 0x20-0x2f: '"' at 0x22 */
    R16(1), R16(1),                                                    /* 0x30-0x4f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,                    /* 0x50-0x5f: '\\' at 0x5c */
    R16(1), R16(1),                                                    /* 0x60-0x7f */
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0)     /* 0x80-0xff: UTF-8 */
#undef R16
};

static int bad(size_t at, const char *what)
{
    return rc_error(RC_EFORMAT, "invalid JSON: %s at offset %zu", what, at);
}

static inline size_t skip_ws(const unsigned char *u, size_t n, size_t i)
{
    while (i < n && (u[i] == ' ' || u[i] == '\n' || u[i] == '\r' || u[i] == '\t')) i++;
    return i;
}

static int hexval(unsigned c)
{
    if (c - '0' < 10) return (int)(c - '0');
    c |= 0x20;
    if (c - 'a' < 6) return (int)(c - 'a' + 10);
    return -1;
}

/* The 4 hex digits at u[at..at+4) as *out: 0, or -1 when there are fewer than 4 or one is not hex. */
static int hex4(const unsigned char *u, size_t n, size_t at, unsigned *out)
{
    if (at > n || n - at < 4) return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(u[at + k]);
        if (h < 0) return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

/* The string whose '"' is at *i: checked, *i moved past its closing quote. */
static int check_string(const unsigned char *u, size_t n, size_t *io)
{
    size_t i = *io + 1;
    for (;;) {
        while (i < n && plain[u[i]]) i++;
        if (i >= n) return bad(*io, "unterminated string");
        unsigned c = u[i];
        if (c == '"') break;
        if (c < 0x20) return bad(i, "control character in a string");
        if (c == '\\') {
            if (i + 1 >= n) return bad(*io, "unterminated string");
            unsigned e = u[i + 1];
            if (e == 'u') {
                unsigned cp, lo;
                if (hex4(u, n, i + 2, &cp)) return bad(i, "bad \\u escape");
                if (cp >= 0xDC00 && cp <= 0xDFFF) return bad(i, "unpaired surrogate");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (i + 7 >= n || u[i + 6] != '\\' || u[i + 7] != 'u' || hex4(u, n, i + 8, &lo) || lo < 0xDC00 ||
                        lo > 0xDFFF)
                        return bad(i, "unpaired surrogate");
                    i += 6;
                }
                i += 6;
                continue;
            }
            if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't')
                return bad(i, "bad escape");
            i += 2;
            continue;
        }
        size_t l = utf8_seq_len(u + i, n - i);
        if (!l) return bad(i, "invalid UTF-8");
        i += l;
    }
    *io = i + 1;
    return RC_OK;
}

static inline int is_digit(unsigned c)
{
    return c - '0' < 10;
}

/* The extent of the number literal at u[i] (grammar not checked: the document was): its end, and
 * *is_int. */
static size_t number_end(const unsigned char *u, size_t n, size_t i, int *is_int)
{
    int integer = 1;
    if (i < n && u[i] == '-') i++;
    while (i < n && is_digit(u[i])) i++;
    if (i < n && u[i] == '.') {
        integer = 0;
        i++;
        while (i < n && is_digit(u[i])) i++;
    }
    if (i < n && (u[i] == 'e' || u[i] == 'E')) {
        integer = 0;
        i++;
        if (i < n && (u[i] == '+' || u[i] == '-')) i++;
        while (i < n && is_digit(u[i])) i++;
    }
    if (is_int) *is_int = integer;
    return i;
}

static int check_number(const unsigned char *u, size_t n, size_t *io)
{
    size_t i = *io;
    if (u[i] == '-') i++;
    if (i >= n || !is_digit(u[i])) return bad(i, "bad number");
    if (u[i] == '0') {
        i++;
        if (i < n && is_digit(u[i])) return bad(i, "bad number"); /* a leading zero */
    } else {
        while (i < n && is_digit(u[i])) i++;
    }
    if (i < n && u[i] == '.') {
        i++;
        if (i >= n || !is_digit(u[i])) return bad(i, "bad number");
        while (i < n && is_digit(u[i])) i++;
    }
    if (i < n && (u[i] == 'e' || u[i] == 'E')) {
        i++;
        if (i < n && (u[i] == '+' || u[i] == '-')) i++;
        if (i >= n || !is_digit(u[i])) return bad(i, "bad number");
        while (i < n && is_digit(u[i])) i++;
    }
    *io = i;
    return RC_OK;
}

static int check_literal(const unsigned char *u, size_t n, size_t *io, const char *lit, size_t l)
{
    size_t i = *io;
    if (n - i < l || memcmp(u + i, lit, l) != 0) {
        size_t k = 0; /* the first byte that differs */
        while (i + k < n && k < l && u[i + k] == (unsigned char)lit[k]) k++;
        return i + k >= n ? bad(i + k, "unexpected end") : bad(i + k, "unexpected character");
    }
    *io = i + l;
    return RC_OK;
}

int ajson_check(const char *s, size_t n, int max_depth)
{
    const unsigned char *u = (const unsigned char *)s;
    if (max_depth < 1) max_depth = 1;
    if (max_depth > AJSON_MAX_DEPTH) max_depth = AJSON_MAX_DEPTH;
    uint64_t is_obj[AJSON_MAX_DEPTH / 64]; /* bit d: the container at level d is an object */
    int depth = 0;
    size_t i = 0;
    unsigned c;
value:
    i = skip_ws(u, n, i);
    if (i >= n) return bad(i, "unexpected end");
    c = u[i];
    switch (c) {
    case '"':
        if (check_string(u, n, &i)) return RC_EFORMAT;
        goto after;
    case 't':
        if (check_literal(u, n, &i, "true", 4)) return RC_EFORMAT;
        goto after;
    case 'f':
        if (check_literal(u, n, &i, "false", 5)) return RC_EFORMAT;
        goto after;
    case 'n':
        if (check_literal(u, n, &i, "null", 4)) return RC_EFORMAT;
        goto after;
    case '{':
    case '[':
        if (depth >= max_depth)
            return rc_error(RC_EFORMAT, "invalid JSON: nested deeper than %d levels at offset %zu", max_depth, i);
        if (c == '{') is_obj[depth / 64] |= (uint64_t)1 << (depth % 64);
        else is_obj[depth / 64] &= ~((uint64_t)1 << (depth % 64));
        depth++;
        i = skip_ws(u, n, i + 1);
        if (i >= n) return bad(i, "unexpected end");
        if (u[i] == (c == '{' ? '}' : ']')) {
            i++;
            depth--;
            goto after;
        }
        if (c == '{') goto key;
        goto value;
    default:
        if (c == '-' || is_digit(c)) {
            if (check_number(u, n, &i)) return RC_EFORMAT;
            goto after;
        }
        return bad(i, "unexpected character");
    }
key: /* at a non-space byte (i < n) where a member's key must start */
    if (u[i] != '"') return bad(i, "expected a string key");
    if (check_string(u, n, &i)) return RC_EFORMAT;
    i = skip_ws(u, n, i);
    if (i >= n) return bad(i, "unexpected end");
    if (u[i] != ':') return bad(i, "expected ':'");
    i++;
    goto value;
after:
    i = skip_ws(u, n, i);
    if (depth == 0) return i < n ? bad(i, "trailing characters") : RC_OK;
    if (i >= n) return bad(i, "unexpected end");
    {
        int obj = (int)(is_obj[(depth - 1) / 64] >> ((depth - 1) % 64) & 1);
        if (u[i] == ',') {
            i = skip_ws(u, n, i + 1);
            if (i >= n) return bad(i, "unexpected end");
            if (obj) goto key;
            goto value;
        }
        if (u[i] == (obj ? '}' : ']')) {
            i++;
            depth--;
            goto after;
        }
        return bad(i, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

/* ---- pass 2: the cursor ---- */
void ajson_init(ajson *p, const char *s, size_t n, char *arena, size_t cap)
{
    p->s = s;
    p->n = n;
    p->i = 0;
    p->arena = arena;
    p->arena_cap = arena ? cap : 0;
    p->arena_len = 0;
}

static inline unsigned cur(ajson *p)
{
    const unsigned char *u = (const unsigned char *)p->s;
    p->i = skip_ws(u, p->n, p->i);
    return p->i < p->n ? u[p->i] : 0;
}

ajson_kind ajson_peek(ajson *p)
{
    switch (cur(p)) {
    case '"': return AJSON_STRING;
    case 't': return AJSON_TRUE;
    case 'f': return AJSON_FALSE;
    case 'n': return AJSON_NULL;
    case '{': return AJSON_OBJECT;
    case '[': return AJSON_ARRAY;
    default: return AJSON_NUMBER;
    }
}

void ajson_enter(ajson *p)
{
    cur(p);
    p->i++;
}

/* Past the string whose '"' is at p->i, without decoding. */
static void skip_string(ajson *p)
{
    size_t i = p->i + 1;
    for (;;) {
        const char *q = i < p->n ? memchr(p->s + i, '"', p->n - i) : NULL;
        if (!q) { /* not in a checked document */
            p->i = p->n;
            return;
        }
        size_t k = (size_t)(q - p->s), b = 0;
        while (p->s[k - 1 - b] == '\\') b++; /* stops at the opening quote at the latest */
        if (b % 2 == 0) {
            p->i = k + 1;
            return;
        }
        i = k + 1;
    }
}

int ajson_member(ajson *p, api_str *key)
{
    unsigned c = cur(p);
    if (c == '}' || c == 0) {
        if (c) p->i++;
        return 0;
    }
    if (c == ',') {
        p->i++;
        cur(p);
    }
    int rc = ajson_string(p, key);
    if (rc != RC_OK) return rc;
    cur(p);
    p->i++; /* ':' */
    cur(p);
    return 1;
}

int ajson_elem(ajson *p)
{
    unsigned c = cur(p);
    if (c == ']' || c == 0) {
        if (c) p->i++;
        return 0;
    }
    if (c == ',') {
        p->i++;
        cur(p);
    }
    return 1;
}

static inline int is_delim(unsigned char c)
{
    return c == ',' || c == ']' || c == '}' || c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

void ajson_skip(ajson *p)
{
    unsigned c = cur(p);
    if (c == '"') {
        skip_string(p);
        return;
    }
    if (c != '{' && c != '[') { /* a number or a literal */
        while (p->i < p->n && !is_delim((unsigned char)p->s[p->i])) p->i++;
        return;
    }
    int depth = 0;
    do {
        c = (unsigned char)p->s[p->i];
        if (c == '"') {
            skip_string(p);
            continue;
        }
        if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
        p->i++;
    } while (depth > 0 && p->i < p->n);
}

size_t ajson_count(ajson *p)
{
    size_t at = p->i, count = 0;
    unsigned open = cur(p);
    p->i++;
    for (;;) {
        unsigned c = cur(p);
        if (c == '}' || c == ']' || c == 0) break;
        if (c == ',') {
            p->i++;
            cur(p);
        }
        if (open == '{') {
            skip_string(p);
            cur(p);
            p->i++; /* ':' */
        }
        ajson_skip(p);
        count++;
    }
    p->i = at;
    return count;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int ajson_string(ajson *p, api_str *out)
{
    cur(p);
    const char *s = p->s;
    size_t start = p->i + 1, n = p->n;
    const char *q = start < n ? memchr(s + start, '"', n - start) : NULL;
    if (!q) { /* not in a checked document */
        out->p = s + n;
        out->n = 0;
        p->i = n;
        return RC_OK;
    }
    const char *bs = memchr(s + start, '\\', (size_t)(q - (s + start)));
    if (!bs) { /* the common case: no escape, a view into the document */
        out->p = s + start;
        out->n = (size_t)(q - (s + start));
        p->i = (size_t)(q - s) + 1;
        return RC_OK;
    }
    /* the closing quote: the first '"' not escaped, from the first backslash on */
    size_t end = (size_t)(bs - s);
    while (end < n && s[end] != '"') end += s[end] == '\\' ? 2 : 1;
    if (end > n) end = n;
    size_t raw = end - start;
    if (!p->arena || p->arena_cap - p->arena_len < raw) return RC_EFULL;
    char *o = p->arena + p->arena_len, *o0 = o;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t k = start; k < end;) {
        char c = s[k];
        if (c != '\\') {
            *o++ = c;
            k++;
            continue;
        }
        char e = s[k + 1];
        if (e == 'u') {
            unsigned cp = 0, lo = 0;
            hex4(u, n, k + 2, &cp);
            k += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                hex4(u, n, k + 2, &lo);
                k += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o += put_utf8(o, cp);
            continue;
        }
        *o++ = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
        k += 2;
    }
    out->p = o0;
    out->n = (size_t)(o - o0);
    p->arena_len += out->n;
    p->i = end + 1;
    return RC_OK;
}

/* A long literal u[0..len) reduced to "-0.DDDD...e+X" with its 40 leading significant digits. */
static double long_number(const unsigned char *u, size_t len)
{
    char buf[72];
    size_t i = 0, b = 0;
    int nd = 0, seen = 0;
    long e10 = 0;
    if (u[0] == '-') {
        buf[b++] = '-';
        i++;
    }
    buf[b++] = '0';
    buf[b++] = '.';
    for (; i < len && is_digit(u[i]); i++) {
        if (!seen && u[i] == '0') continue;
        seen = 1;
        if (nd < 40) buf[b++] = (char)u[i], nd++;
        e10++;
    }
    if (i < len && u[i] == '.')
        for (i++; i < len && is_digit(u[i]); i++) {
            if (!seen && u[i] == '0') {
                e10--;
                continue;
            }
            seen = 1;
            if (nd < 40) buf[b++] = (char)u[i], nd++;
        }
    if (i < len && (u[i] == 'e' || u[i] == 'E')) {
        i++;
        int neg = 0;
        if (i < len && (u[i] == '+' || u[i] == '-')) neg = u[i++] == '-';
        long x = 0;
        for (; i < len && is_digit(u[i]); i++)
            if (x < 1000000) x = x * 10 + (u[i] - '0');
        e10 += neg ? -x : x;
    }
    if (!nd) return u[0] == '-' ? -0.0 : 0.0;
    if (e10 > 1000000) e10 = 1000000;
    if (e10 < -1000000) e10 = -1000000;
    b += (size_t)snprintf(buf + b, sizeof buf - b, "e%ld", e10);
    return strtod(buf, NULL);
}

double ajson_number(ajson *p, int *is_int)
{
    cur(p);
    const unsigned char *u = (const unsigned char *)p->s;
    size_t end = number_end(u, p->n, p->i, is_int), len = end - p->i;
    double v;
    if (len < 64) {
        char buf[64];
        memcpy(buf, u + p->i, len);
        buf[len] = '\0';
        v = strtod(buf, NULL);
    } else {
        v = long_number(u + p->i, len);
    }
    p->i = end;
    return v;
}

int ajson_int(ajson *p, long long *out)
{
    cur(p);
    const unsigned char *u = (const unsigned char *)p->s;
    int is_int;
    size_t i = p->i, end = number_end(u, p->n, i, &is_int);
    p->i = end;
    if (!is_int) {
        *out = 0;
        return RC_EINVAL;
    }
    int neg = u[i] == '-';
    if (neg) i++;
    unsigned long long acc = 0, lim = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (; i < end; i++) {
        unsigned d = u[i] - '0';
        if (acc > (lim - d) / 10) {
            *out = neg ? LLONG_MIN : LLONG_MAX;
            return RC_ERANGE;
        }
        acc = acc * 10 + d;
    }
    *out = neg ? (acc == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)acc) : (long long)acc;
    return RC_OK;
}

int ajson_literal(ajson *p)
{
    unsigned c = cur(p);
    p->i += c == 'f' ? 5 : 4;
    if (p->i > p->n) p->i = p->n;
    return c == 't';
}

const char *ajson_kind_name(ajson_kind k, int is_int)
{
    switch (k) {
    case AJSON_OBJECT: return "an object";
    case AJSON_ARRAY: return "an array";
    case AJSON_STRING: return "a string";
    case AJSON_NUMBER: return is_int ? "an integer" : "a number";
    case AJSON_TRUE:
    case AJSON_FALSE: return "a boolean";
    case AJSON_NULL: return "null";
    }
    return "?";
}

const char *ajson_describe(ajson *p)
{
    ajson_kind k = ajson_peek(p);
    int is_int = 0;
    if (k == AJSON_NUMBER) number_end((const unsigned char *)p->s, p->n, p->i, &is_int);
    return ajson_kind_name(k, is_int);
}
