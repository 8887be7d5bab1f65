/* api/ratings_req.h - the requests of the rating routes (server/ratings.h), on the reader of api/json.h:
 *
 *   POST /v1/ratings  {"user_id":"u1", "item_ids":["i1","i2"], "model":"biasedmf", "experiment":"E",
 *                      "clip":true}                                  (model, experiment, clip optional)
 *   GET  /v1/users/{id}/recommendations?k=20&model=NAME&experiment=E&exclude_seen=false
 *                                                                    (every parameter optional)
 *
 * Bodies and query strings are untrusted: the body is checked whole first (syntax, UTF-8, depth), then
 * every field for type, range and length, in the house rules of api/validate.h (400 malformed or wrong
 * type, 422 wrong meaning). Nothing is allocated per request: decoded strings and the item list go to a
 * caller's api_scratch reused request after request (one per connection).
 *
 * Limits (api_limits): item_ids holds 1 to lim->max_items ids (next.max_items, 1000 by default; a body
 * over http.max_body_bytes is refused 413 by the HTTP layer before it is parsed); every id 1 to
 * lim->max_id_len bytes; k in [1, lim->k_max].
 */
#ifndef RECD_RATINGS_REQ_H
#define RECD_RATINGS_REQ_H

#include <stddef.h>

#include "api/json.h"
#include "api/validate.h"

/* A validated POST /v1/ratings body. Strings (lengths, not terminators: ids may hold any byte, NUL
 * included) point into the body or the scratch's arena. */
typedef struct ratings_req {
    api_str user_id;        /* 1..max_id_len bytes (required) */
    const api_str *items;   /* (n_items) the ids, in request order (duplicates kept), in scr->strs */
    size_t n_items;         /* in [1, lim->max_items] */
    api_str model;          /* when has_model: 1..max_id_len bytes */
    int has_model;
    api_str experiment;     /* when has_experiment: 1..max_id_len bytes */
    int has_experiment;
    int clip;               /* 1 unless "clip":false (predictions kept inside the model's rating scale) */
} ratings_req;

/* Parse and validate body[0..len) (not necessarily NUL-terminated; borrowed as long as req is used).
 * 0 with *req filled, or the HTTP status with a one-line detail[0..cap) (req zeroed):
 *   400 "empty body: expected a JSON object", "invalid JSON: ... at offset N" (nesting deeper than
 *       lim->max_depth included), "the body must be a JSON object, got an array", "duplicate key 'k'"
 *       (every duplicate before any other field error), "user_id: expected a string, got a number",
 *       "item_ids: expected an array of strings, got an object", "item_ids[3]: expected a string, got
 *       null", "model: expected a string", "experiment: expected a string", "clip: expected a boolean";
 *   422 "unknown field 'x' (expected user_id, item_ids, model, experiment, clip)", "user_id: required",
 *       "item_ids: required", "item_ids: N given, between 1 and M accepted", "user_id: length L outside
 *       [1, max_id_len]", "item_ids[3]: length L outside [1, max_id_len]", "model: length 0 outside
 *       [1, max_id_len]" (the same for experiment: "model":"" names no model, as ?model= in the query);
 *   503 scr could not grow (out of memory). */
int ratings_req_parse(const char *body, size_t len, const api_limits *lim, api_scratch *scr, ratings_req *req,
                      char *detail, size_t cap);

/* One query-string argument as the HTTP layer decoded it (percent-decoding and '+' done; bytes, NUL
 * included): has_value 0 when the argument has no '=' ("?exclude_seen"). Borrowed. */
typedef struct api_kv {
    api_str key;
    api_str value;
    int has_value;
} api_kv;

/* The arguments a caller collects: more than this many is necessarily refused (only 4 names are
 * known, each at most once), so the first RECS_MAX_ARGS decide the answer. A caller does not collect
 * (nor count) arguments with an empty name ("?&k=1", "k=1&&model=m"): they are ignored. */
#define RECS_MAX_ARGS 8

/* A validated recommendations query. Strings point into the arguments. */
typedef struct recs_query {
    int k;                  /* in [1, lim->k_max]; lim->k_default when absent */
    api_str model;          /* n == 0: absent (the first configured model that has `recommend`) */
    api_str experiment;     /* n == 0: absent */
    int exclude_seen;       /* 1 (default): the user's rated items are never recommended */
} recs_query;

/* Validate the query arguments args[0..n) (n > RECS_MAX_ARGS: only the first RECS_MAX_ARGS are read;
 * the caller passes every one it has up to that). An argument with an empty name (key.n == 0, with or
 * without a value) is ignored, as a trailing '&' is. 0 with *q filled, or the HTTP status with detail:
 *   400 "duplicate parameter 'k'", "k: expected an integer, got 'abc'", "exclude_seen: expected true or
 *       false, got 'yes'", "model: expected a value" (no '=');
 *   422 "unknown parameter 'x' (expected k, model, experiment, exclude_seen)", "k: 0 is outside
 *       [1, k_max]", "model: length L outside [1, max_id_len]" (the same for experiment). */
int recs_query_parse(const api_kv *args, int n, const api_limits *lim, recs_query *q, char *detail, size_t cap);

#endif
