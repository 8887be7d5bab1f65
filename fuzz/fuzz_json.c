/* fuzz/fuzz_json.c - libFuzzer target for the request JSON reader (api/json.h), differential against
 * jansson: arbitrary bytes (copied into a buffer of exactly their size, so ASan catches any read past
 * it) go to ajson_check and to json_loadb(JSON_DECODE_ANY | JSON_ALLOW_NUL).
 *   make fuzz && build-fuzz/bin/fuzz_json -max_total_time=60 /tmp/fuzz-json-corpus fuzz/corpus/fuzz_json
 * Checks, besides no crash/leak/UB:
 *   - both accept or both refuse, except: jansson refuses integers beyond json_int_t, doubles that
 *     overflow and keys holding \u0000 (the reader accepts them), the reader refuses nesting deeper than AJSON_MAX_DEPTH and
 *     bytes after a NUL (jansson ends the document at the NUL);
 *   - a refusal's message is "invalid JSON: ... at offset N" with N <= size;
 *   - on an accepted document the cursor walks the same tree jansson built: same kinds, same decoded
 *     string bytes (escapes, surrogate pairs, NUL), same numbers (exactly below 64 bytes of literal), same
 *     counts; ajson_skip ends where the walk ends; every string fits the arena of size + 1 bytes.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/json.h"
#include "core/err.h"

static int same_number(double a, double b)
{
    if (a == b) return 1;
    double d = fabs(a - b);
    return d <= 1e-15 * fabs(b) || d < 1e-300;
}

static void walk(ajson *p, const json_t *j)
{
    size_t at = p->i;
    switch (ajson_peek(p)) {
    case AJSON_STRING: {
        api_str s;
        if (ajson_string(p, &s) != RC_OK) abort();
        if (!json_is_string(j) || json_string_length(j) != s.n || memcmp(json_string_value(j), s.p, s.n)) abort();
        return;
    }
    case AJSON_NUMBER: {
        int is_int;
        double d = ajson_number(p, &is_int);
        if (is_int != json_is_integer(j)) abort();
        if (!same_number(d, json_number_value(j))) abort();
        size_t end = p->i;
        p->i = at;
        long long v;
        int rc = ajson_int(p, &v);
        if (p->i != end) abort();
        if (is_int && (rc != RC_OK || v != json_integer_value(j))) abort();
        if (!is_int && rc != RC_EINVAL) abort();
        return;
    }
    case AJSON_TRUE:
    case AJSON_FALSE:
    case AJSON_NULL: {
        int k = ajson_peek(p);
        int t = ajson_literal(p);
        if (t != (k == AJSON_TRUE)) abort();
        if (k == AJSON_TRUE && !json_is_true(j)) abort();
        if (k == AJSON_FALSE && !json_is_false(j)) abort();
        if (k == AJSON_NULL && !json_is_null(j)) abort();
        return;
    }
    case AJSON_ARRAY: {
        if (!json_is_array(j) || ajson_count(p) != json_array_size(j)) abort();
        ajson_enter(p);
        size_t i = 0;
        while (ajson_elem(p)) walk(p, json_array_get(j, i++));
        if (i != json_array_size(j)) abort();
        return;
    }
    case AJSON_OBJECT: {
        if (!json_is_object(j)) abort();
        size_t n = ajson_count(p);
        int dups = n != json_object_size(j); /* jansson keeps the last value of a duplicate key */
        if (n < json_object_size(j)) abort();
        ajson_enter(p);
        api_str key;
        int st;
        while ((st = ajson_member(p, &key)) == 1) {
            const json_t *v = json_object_getn(j, key.p, key.n);
            if (!v) abort();
            if (dups) ajson_skip(p);
            else walk(p, v);
        }
        if (st != 0) abort();
        return;
    }
    }
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1), *arena = malloc(size + 1);
    if (!s || !arena) abort();
    memcpy(s, data, size);
    int rc = ajson_check(s, size, AJSON_MAX_DEPTH);
    json_error_t e;
    json_t *j = json_loadb(s, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (rc != RC_OK) {
        const char *m = rc_errmsg(), *off = strstr(m, " at offset ");
        if (rc != RC_EFORMAT || strncmp(m, "invalid JSON: ", 14) != 0 || !off) abort();
        if (strtoull(off + 11, NULL, 10) > size) abort();
        /* jansson stops at a NUL byte and ignores what follows ("5\0" is 5): strictness, not a bug */
        if (j && !strstr(m, "nested deeper") && !memchr(s, '\0', size)) abort();
    } else if (!j) {
        if (!strstr(e.text, "too big") && !strstr(e.text, "overflow") && !strstr(e.text, "NUL byte in object key"))
            abort();
    } else {
        ajson p;
        ajson_init(&p, s, size, arena, size + 1);
        walk(&p, j);
        size_t end = p.i;
        ajson q;
        ajson_init(&q, s, size, NULL, 0);
        ajson_skip(&q);
        if (q.i != end) abort();
        if (p.arena_len > size) abort();
        while (end < size && memchr(" \t\r\n", s[end], 4)) end++;
        if (end != size) abort();
    }
    json_decref(j);
    free(s);
    free(arena);
    return 0;
}
