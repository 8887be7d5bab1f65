/* api/json.h - the strict, allocation-free JSON reader every request body goes through (/v1/next,
 * /v1/rank; api/validate.h and api/rank_req.h build on it).
 *
 * Two passes over the body, no document tree (jansson would allocate a node per value):
 *   1. ajson_check validates the whole body once (RFC 8259): one value, then only whitespace. It reports
 *      the first error with its byte offset and never reads outside s[0..n) (s need not be NUL-terminated).
 *   2. A cursor (ajson) walks the checked document and decodes only what the caller asks for: it enters
 *      objects and arrays, yields members and elements, skips values, decodes strings and numbers. The
 *      cursor functions trust the check: call them on a document ajson_check accepted, never on another.
 * So a request parser reports "the body is not JSON" before any field error, as a tree parser does.
 *
 * Strictness (pass 1):
 *   - grammar: RFC 8259 exactly: no comments, no trailing commas, no leading zeros ("01"), no "+1", ".5",
 *     "1.", NaN or Infinity, literals true/false/null in lower case only; whitespace is space, tab, CR, LF;
 *   - strings: raw bytes must be valid UTF-8 (no overlong forms, no surrogates U+D800..DFFF, nothing over
 *     U+10FFFF), no raw control character (< 0x20); escapes are \" \\ \/ \b \f \n \r \t and \uXXXX (hex
 *     either case), a high surrogate escape must be followed by a low one and a low one must follow a
 *     high one; \u0000 is accepted (decoded strings may hold NUL bytes: they are (pointer, length) pairs);
 *   - depth: objects and arrays nest at most max_depth levels (clamped to AJSON_MAX_DEPTH). The check is
 *     iterative: no recursion whatever the body;
 *   - duplicate keys: not detected here (that needs memory per object). A request parser detects
 *     duplicates among the keys it reads and says so; members it ignores are not compared.
 * Errors: RC_EFORMAT with the message "invalid JSON: WHAT at offset N" (N: the offending byte, 0-based),
 * WHAT one of: unexpected end, unexpected character, expected a string key, expected ':', expected ','
 * or '}', expected ',' or ']', bad number, unterminated string, control character in a string, bad
 * escape, bad \u escape, unpaired surrogate, invalid UTF-8, trailing characters, nested deeper than D
 * levels.
 *
 * Strings (pass 2): a string without escapes is returned as a view into the body (no copy); one with
 * escapes is decoded (UTF-8) into the caller's arena, which grows by at most the string's raw length
 * (decoding never lengthens). An arena of body length + 1 bytes therefore holds every string of a
 * document decoded once each; ajson_string and ajson_member return RC_EFULL (without writing) when the
 * arena cannot take a string, so a caller that decodes a value twice is refused, not overrun.
 * Numbers (pass 2): ajson_number gives a double (strtod of the literal, in the C locale recd runs in:
 * it never calls setlocale; a literal of 64 bytes or more is first reduced to its 40 leading
 * significant digits and exponent, which changes the double by at most one unit in the last place) and
 * whether the literal is an integer (no fraction, no exponent); ajson_int gives an exact long long.
 *
 * Threads: an ajson is used by one thread; ajson_check and the cursor keep no global state.
 */
#ifndef RECD_API_JSON_H
#define RECD_API_JSON_H

#include <stddef.h>

/* Bytes (may contain NUL), not NUL-terminated. */
typedef struct api_str {
    const char *p;
    size_t n;
} api_str;

/* Buffers a request parser reuses request after request (one per connection: it lives in the route's
 * handler slot). Zero-initialised is empty and valid. arena: decoded strings (grown to body length + 1);
 * strs: string arrays of the request (e.g. /v1/next's history). */
typedef struct api_scratch {
    char *arena;
    size_t arena_cap;
    api_str *strs;
    size_t strs_cap; /* entries */
} api_scratch;

/* Free the buffers larger than keep_bytes (so an idle keep-alive connection does not pin what one large
 * request grew); the struct stays usable. NULL is a no-op. */
void api_scratch_trim(api_scratch *s, size_t keep_bytes);
/* Free all; the struct stays usable (zeroed). NULL is a no-op. */
void api_scratch_release(api_scratch *s);
/* Grow s->arena to at least bytes / s->strs to at least n entries (contents are not kept). RC_OK or
 * RC_ENOMEM (message set; the old buffer stays). */
int api_scratch_arena(api_scratch *s, size_t bytes);
int api_scratch_strs(api_scratch *s, size_t n);

#define AJSON_MAX_DEPTH 1024

/* Pass 1: RC_OK when s[0..n) is one JSON value (any kind) with at most max_depth levels of nesting
 * (max_depth < 1 is 1, over AJSON_MAX_DEPTH is AJSON_MAX_DEPTH), else RC_EFORMAT with the message
 * above. Allocation-free; reads each byte about once. */
int ajson_check(const char *s, size_t n, int max_depth);

/* ---- pass 2: a cursor over a checked document ---- */
typedef enum {
    AJSON_STRING = 1,
    AJSON_NUMBER,
    AJSON_TRUE,
    AJSON_FALSE,
    AJSON_NULL,
    AJSON_OBJECT,
    AJSON_ARRAY
} ajson_kind;

typedef struct ajson {
    const char *s;    /* the document (borrowed: must outlive the cursor and every string it returned) */
    size_t n;
    size_t i;         /* the cursor: a byte offset into s (callers may save it and restore it) */
    char *arena;      /* decoded strings (borrowed; may be NULL: then a string with escapes is RC_EFULL) */
    size_t arena_cap;
    size_t arena_len; /* bytes of the arena used so far */
} ajson;

/* A cursor at the start of s[0..n) (a document ajson_check accepted), decoding into arena[0..cap). */
void ajson_init(ajson *p, const char *s, size_t n, char *arena, size_t cap);

/* The kind of the value at the cursor (whitespace before it skipped). The cursor must be at a value. */
ajson_kind ajson_peek(ajson *p);
/* Enter the object or array at the cursor: then call ajson_member (object) or ajson_elem (array) until
 * it returns 0. */
void ajson_enter(ajson *p);
/* Inside an entered object: 1 with *key (decoded, see above) and the cursor at the member's value, 0 at
 * the end of the object (its '}' consumed), RC_EFULL when the key needs more arena than is left. The
 * previous member's value must have been consumed (read, skipped or entered and finished). */
int ajson_member(ajson *p, api_str *key);
/* Inside an entered array: 1 with the cursor at the next element, 0 at the end (its ']' consumed). The
 * previous element must have been consumed. */
int ajson_elem(ajson *p);
/* Skip the value at the cursor (any kind, nested ones included). */
void ajson_skip(ajson *p);
/* Members of the object / elements of the array at the cursor, which does not move. */
size_t ajson_count(ajson *p);
/* Decode the string at the cursor into *out (see above) and move past it. RC_OK or RC_EFULL (cursor
 * unchanged). */
int ajson_string(ajson *p, api_str *out);
/* The number at the cursor as a double (+-HUGE_VAL when it overflows, 0 or a denormal when it
 * underflows) and, when is_int is not NULL, whether the literal has no fraction and no exponent. Moves
 * past it. */
double ajson_number(ajson *p, int *is_int);
/* The integer literal at the cursor (no fraction, no exponent) as *out: RC_OK, RC_ERANGE outside long
 * long (*out saturated), RC_EINVAL for a number literal with a fraction or exponent (*out = 0). Moves
 * past it. No message is set (the caller names the field). */
int ajson_int(ajson *p, long long *out);
/* Move past true, false or null at the cursor; 1 for true, 0 otherwise. */
int ajson_literal(ajson *p);

/* How a request error names a value's kind: "an object", "an array", "a string", "an integer" (a
 * number literal without fraction and exponent, is_int), "a number", "a boolean", "null". */
const char *ajson_kind_name(ajson_kind k, int is_int);
/* The kind name of the value at the cursor (which does not move). */
const char *ajson_describe(ajson *p);

#endif
