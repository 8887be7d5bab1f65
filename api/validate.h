/* api/validate.h - parsing and validating request bodies before any model sees them.
 *
 * Bodies are untrusted: the nesting depth is checked by a linear scan BEFORE jansson parses (so a body
 * of 60,000 '[' cannot recurse deep in the parser), then jansson parses with duplicate keys rejected,
 * then every field is checked for type, range and length. The validator never trusts a length from the
 * body and never allocates beyond what jansson does for the parsed document.
 */
#ifndef RECD_VALIDATE_H
#define RECD_VALIDATE_H

#include <stddef.h>

#include <jansson.h>

typedef struct api_limits {
    int max_depth;     /* deepest nesting of [ and { accepted (default 8) */
    int k_default;     /* k when the request has none (default 20) */
    int k_max;         /* largest k accepted (default 1000) */
    int max_items;     /* longest `items` history accepted (default 1000) */
    int max_id_len;    /* longest session or item id, bytes (default 256) */
} api_limits;

/* The defaults above. */
api_limits api_limits_default(void);

/* Scan buf[0..len) (not necessarily NUL-terminated) and check that [ and { never nest deeper than
 * max_depth outside strings. RC_OK, or RC_ERANGE with a message giving the offset. Does not check that
 * buf is valid JSON: jansson does that afterwards. */
int api_check_depth(const char *buf, size_t len, int max_depth);

/* A view into the parsed document (not NUL-terminated copy: p[n] is NUL because jansson strings are). */
typedef struct api_str {
    const char *p;
    size_t n;
} api_str;

/* A validated POST /v1/next request. Strings point into the json document returned by next_req_parse
 * and live until the caller json_decref()s it. */
typedef struct next_req {
    api_str session_id; /* n == 0: stateless */
    api_str item_id;    /* stateful: the click that advances the session */
    api_str model;      /* n == 0: the default model */
    const json_t *items; /* stateless history (array of strings), or NULL */
    size_t n_items;
    int k;
    int exclude_seen; /* 0 unless the request says true */
} next_req;

/* Parse and validate a /v1/next body. On success returns 0, fills *req and sets *doc to the parsed
 * document (caller json_decref()s it). On failure returns the HTTP status to answer and writes a
 * one-line explanation into detail[0..cap): 400 (not JSON, nesting too deep, a field of the wrong
 * type, duplicate key) or 422 (valid JSON with a wrong meaning: unknown field, both or neither of
 * session_id/items, session_id without item_id, k out of [1,k_max], empty or too long items, an id
 * empty or longer than max_id_len). *doc is NULL on failure. */
int next_req_parse(const char *body, size_t len, const api_limits *lim, json_t **doc, next_req *req,
                   char *detail, size_t cap);

/* ---- allocation-free parsing ----
 * jansson allocates every value it parses. api_json_alloc_install() (once, before other threads use
 * jansson) routes jansson's allocations through recd: while a thread is between api_json_arena_begin()
 * and api_json_arena_end(), its jansson allocations come from that thread's arena (256 KiB, allocated on
 * first use and kept until the thread exits; beyond it, malloc) and frees inside it cost nothing;
 * api_json_arena_end() rewinds the arena. Outside a begin/end pair, and on threads that never begin,
 * jansson uses malloc/free as usual. Every value parsed inside the pair must be released before
 * api_json_arena_end() (json_decref) and must not be used afterwards. */
void api_json_alloc_install(void);
void api_json_arena_begin(void);
void api_json_arena_end(void);

#endif
