/* api/validate.h - request limits and the /v1/next request parser (api/rank_req.h: /v1/rank's).
 *
 * Bodies are untrusted: the strict reader of api/json.h checks the whole body first (syntax, UTF-8,
 * nesting depth, without recursion), then every field is checked for type, range and length. The parser
 * never trusts a length from the body and allocates nothing per request: decoded strings go to a
 * caller's scratch reused request after request.
 */
#ifndef RECD_VALIDATE_H
#define RECD_VALIDATE_H

#include <stddef.h>

#include "api/json.h"

typedef struct api_limits {
    int max_depth;     /* deepest nesting of [ and { accepted (default 8) */
    int k_default;     /* k when the request has none (default 20) */
    int k_max;         /* largest k accepted (default 1000) */
    int max_items;     /* longest `items` history accepted (default 1000) */
    int max_id_len;    /* longest session or item id, bytes (default 256) */
} api_limits;

/* The defaults above. */
api_limits api_limits_default(void);

/* The request parsers' failure: writes the one-line explanation fmt into detail[0..cap) (nothing when
 * cap is 0) and returns status (the HTTP status to answer). */
int api_fail(char *detail, size_t cap, int status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The start of a JSON body parse: body[0..len) (not necessarily NUL-terminated, borrowed: must outlive p)
 * checked whole by ajson_check (syntax, UTF-8, nesting up to lim->max_depth), scr's arena grown to
 * len + 1 bytes (every string is decoded at most once, so the arena never needs more than the body), and
 * *p a cursor at its start decoding into that arena. 0, or the HTTP status with detail[0..cap) written:
 * 400 the body is empty ("empty body: expected a JSON object") or not JSON (ajson_check's message), 503
 * the arena could not grow. */
int api_body_open(ajson *p, const char *body, size_t len, const api_limits *lim, api_scratch *scr, char *detail,
                  size_t cap);

/* The members of the object at p's cursor (in a body ajson_check accepted), one pass over its keys before
 * any value is read, so that a duplicate is found before any other error: names (nf <= 32) are the known
 * field names, a field is its index in names. On success returns 0 and the cursor is past the object:
 * order[0..*n) the fields given, in body order; at[f] the offset (ajson.i) of field f's value, for a
 * field given (set p->i = at[f] to read it); bit f of *have set for each field given. On failure the
 * HTTP status with detail[0..cap) written (api_fail):
 *   400 the value is not an object ("the body must be a JSON object, got an array"), a key given twice
 *       ("duplicate key 'k'");
 *   422 the first unknown key, when no key is duplicate ("unknown field 'KEY' EXPECTED", KEY cut to 64
 *       bytes; expected is the caller's hint, e.g. "(expected user_id, model)");
 *   503 a key needs more arena than is left. */
int api_object_fields(ajson *p, const char *const *names, int nf, const char *expected, size_t *at, int *order,
                      int *n, unsigned *have, char *detail, size_t cap);

/* Scan buf[0..len) (not necessarily NUL-terminated) and check that [ and { never nest deeper than
 * max_depth outside strings. RC_OK, or RC_ERANGE with a message giving the offset. Does not check that
 * buf is valid JSON (ajson_check does both). */
int api_check_depth(const char *buf, size_t len, int max_depth);

/* A validated POST /v1/next request. Strings point into the body or into scr->arena (see
 * next_req_parse). */
typedef struct next_req {
    api_str session_id;  /* n == 0: stateless */
    api_str item_id;     /* stateful: the click that advances the session */
    api_str model;       /* n == 0: the default model */
    api_str experiment;  /* n == 0: none (server/experiment.h: the arm's model answers) */
    api_str user_id;     /* n == 0: none; the unit an experiment assigns */
    const api_str *items; /* (n_items) the stateless history, in scr->strs; NULL when stateful */
    size_t n_items;
    int has_items;       /* 1: stateless (items given) */
    int k;
    int exclude_seen;    /* 0 unless the request says true */
} next_req;

/* Parse and validate a /v1/next body[0..len) (not necessarily NUL-terminated) with the reader of
 * api/json.h: no allocation but scr's buffers (grown to len + 1 arena bytes and n_items strings, kept
 * for the next request). On success returns 0 and fills *req; its strings (ids may hold any byte, NUL
 * included: lengths, not terminators) point into body or scr->arena and stay valid until the next parse
 * with scr or its release, and as long as body. On failure returns the HTTP status to answer, writes a
 * one-line explanation into detail[0..cap) and zeroes *req:
 *   400 the body is empty or not JSON (the reader's "invalid JSON: ... at offset N", nesting deeper than
 *       lim->max_depth), not an object, a field of the wrong type ("'k' must be an integer, got a
 *       string"), a duplicate field ("duplicate key 'k'");
 *   422 valid JSON with a wrong meaning: an unknown field, both or neither of session_id/items,
 *       session_id without item_id or the reverse, k outside [1, k_max] (an integer beyond long long
 *       included), items empty or longer than max_items, an id (session_id, item_id, model, experiment,
 *       user_id, items[i]) empty or longer than max_id_len;
 *   503 scr could not grow (out of memory; detail says so).
 * Duplicates: every top-level key is known or refused, so every duplicate is found (before any other
 * field error, as a tree parser would). */
int next_req_parse(const char *body, size_t len, const api_limits *lim, api_scratch *scr, next_req *req,
                   char *detail, size_t cap);

#endif
