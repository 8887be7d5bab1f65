/* core/utf8.h - UTF-8 sequence checks shared by the JSON validator (api/json.c), the JSON string writer
 * (core/sbuf.c) and the rating reader's id check (trainer/ratings.c). Header-only: the JSON validator
 * calls it per non-ASCII byte on the request path.
 */
#ifndef RECD_UTF8_H
#define RECD_UTF8_H

#include <stddef.h>

/* Length (2, 3 or 4) of the valid multi-byte UTF-8 sequence at u[0..n), n >= 1, or 0 when u[0] starts
 * none (an ASCII byte included) or the sequence is cut off, overlong, a surrogate or past U+10FFFF.
 * Reads at most min(n, 4) bytes of u (borrowed). */
static inline size_t utf8_seq_len(const unsigned char *u, size_t n)
{
    unsigned c = u[0], cp, min;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((u[k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (u[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

#endif
