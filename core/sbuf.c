/* core/sbuf.c - growable byte buffer (see sbuf.h). */
#include "core/sbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/utf8.h"

void sbuf_init(sbuf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

void sbuf_release(sbuf *b)
{
    free(b->data);
    sbuf_init(b);
}

void sbuf_reset(sbuf *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data) b->data[0] = '\0';
}

int sbuf_reserve(sbuf *b, size_t extra)
{
    if (b->failed) return RC_ENOMEM;
    if (extra > SBUF_MAX || b->len + extra + 1 > SBUF_MAX) {
        b->failed = 1;
        return rc_error(RC_ENOMEM, "answer larger than %u bytes", SBUF_MAX);
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return RC_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return rc_error(RC_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
    }
    b->data = p;
    b->cap = cap;
    return RC_OK;
}

void sbuf_add(sbuf *b, const void *p, size_t n)
{
    if (sbuf_reserve(b, n) != RC_OK) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sbuf_adds(sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

void sbuf_addc(sbuf *b, char c)
{
    if (sbuf_reserve(b, 1) != RC_OK) return;
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void sbuf_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    if (sbuf_reserve(b, 64) != RC_OK) return;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        if (sbuf_reserve(b, (size_t)n) != RC_OK) return;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void sbuf_json_str(sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (sbuf_reserve(b, n + 2) != RC_OK) return;
    sbuf_addc(b, '"');
    size_t run = 0; /* start of the pending run of plain bytes */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) { /* keep valid UTF-8 sequences, replace any other byte with U+FFFD */
            size_t len = utf8_seq_len((const unsigned char *)s + i, n - i);
            if (len) {
                i += len - 1;
                continue;
            }
            sbuf_add(b, s + run, i - run);
            run = i + 1;
            sbuf_add(b, "\\ufffd", 6);
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sbuf_add(b, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        switch (c) {
        case '"': sbuf_add(b, "\\\"", 2); break;
        case '\\': sbuf_add(b, "\\\\", 2); break;
        case '\n': sbuf_add(b, "\\n", 2); break;
        case '\r': sbuf_add(b, "\\r", 2); break;
        case '\t': sbuf_add(b, "\\t", 2); break;
        default: sbuf_add(b, esc, 6); break;
        }
    }
    sbuf_add(b, s + run, n - run);
    sbuf_addc(b, '"');
}

void sbuf_json_float(sbuf *b, double v)
{
    if (!isfinite(v)) {
        sbuf_add(b, "null", 4);
        return;
    }
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%.6g", v);
    sbuf_add(b, tmp, (size_t)n);
}
