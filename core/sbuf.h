/* core/sbuf.h - a growable byte buffer for building HTTP answers (JSON, Prometheus text).
 *
 * One sbuf lives per connection (or per thread) and is reused request after request: sbuf_reset keeps the
 * allocation, so a warm buffer builds an answer without touching malloc. Appends that cannot grow the
 * buffer (ENOMEM, or beyond SBUF_MAX) set `failed` and are dropped; callers check sbuf_failed() once at
 * the end instead of after every append.
 */
#ifndef RECD_SBUF_H
#define RECD_SBUF_H

#include <stdarg.h>
#include <stddef.h>

#define SBUF_MAX (64u << 20) /* 64 MiB: no answer of recd is larger */

typedef struct sbuf {
    char *data; /* NUL-terminated when len > 0 or after any append; owned */
    size_t len, cap;
    int failed; /* an append was dropped */
} sbuf;

void sbuf_init(sbuf *b);               /* empty, no allocation */
void sbuf_release(sbuf *b);            /* frees the data; b may be reused after sbuf_init */
void sbuf_reset(sbuf *b);              /* len = 0, failed = 0, keeps the allocation */
int sbuf_reserve(sbuf *b, size_t extra); /* room for extra more bytes (+NUL). 0 or RC_ENOMEM */
void sbuf_add(sbuf *b, const void *p, size_t n);
void sbuf_adds(sbuf *b, const char *s);
void sbuf_addc(sbuf *b, char c);
void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s[0..n) as a JSON string literal with its quotes (escapes ", \ and control bytes). */
void sbuf_json_str(sbuf *b, const char *s, size_t n);
/* A float as a JSON number (%.6g; NaN and infinities as null). */
void sbuf_json_float(sbuf *b, double v);
static inline int sbuf_failed(const sbuf *b) { return b->failed; }

#endif
