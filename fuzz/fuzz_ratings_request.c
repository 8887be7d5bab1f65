/* fuzz/fuzz_ratings_request.c - libFuzzer target: arbitrary bytes -> the request parsers of the rating
 * routes (api/ratings_req.h) and the problem+json writer.
 *
 * Build: make fuzz (clang), then run e.g.
 *     build-fuzz/bin/fuzz_ratings_request -max_total_time=60 -max_len=65536 /tmp/fuzz-ratings-corpus
 * Each input is used twice:
 *   1. as a POST /v1/ratings body, copied into a buffer of exactly its size (no NUL after it: ASan
 *      catches a read past it), parsed with one scratch for every input as a connection's is (trimmed
 *      after each, as after a request);
 *   2. as a query string for GET /v1/users/{id}/recommendations: split on '&', each part on its first
 *      '=' (the arguments a client sends, as the HTTP layer hands them over: bytes, NUL included).
 * Checks, besides no crash/leak/UB: the result is 0, 400 or 422; on 0 the request is consistent (user_id
 * and every item id non-empty and within the length limit, 1..max_items items, strings inside the body or
 * the scratch's arena; k in range, ids within limits) and jansson agrees that the body is JSON (unless a
 * number overflows jansson's integers or doubles); on an error the detail is a non-empty NUL-terminated
 * line and the problem document built from it is valid JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/problem.h"
#include "api/ratings_req.h"

static api_scratch scr;

static void check_str(api_str s, const char *body, size_t size, size_t max)
{
    if (s.n > max) abort();
    int in_body = s.p >= body && s.p + s.n <= body + size;
    int in_arena = s.p >= scr.arena && s.p + s.n <= scr.arena + scr.arena_cap;
    if (s.n && !in_body && !in_arena) abort();
}

static void check_problem(int st, const char *detail, size_t cap, const char *instance)
{
    if (st != 400 && st != 422) abort();
    if (!detail[0] || !memchr(detail, '\0', cap)) abort();
    sbuf b;
    sbuf_init(&b);
    problem_write(&b, st, "fuzz", detail, instance, "rid");
    json_t *p = json_loadb(b.data, b.len, 0, NULL);
    if (!p) abort(); /* always valid JSON: bytes that are not UTF-8 become U+FFFD */
    json_decref(p);
    sbuf_release(&b);
}

static void body_case(const char *body, size_t size, const api_limits *lim)
{
    ratings_req req;
    char detail[300];
    detail[0] = '\0';
    int st = ratings_req_parse(body, size, lim, &scr, &req, detail, sizeof detail);
    if (st == 0) {
        if (req.user_id.n == 0) abort();
        check_str(req.user_id, body, size, (size_t)lim->max_id_len);
        if (req.n_items == 0 || req.n_items > (size_t)lim->max_items || req.items != scr.strs) abort();
        for (size_t i = 0; i < req.n_items; i++) {
            if (req.items[i].n == 0) abort();
            check_str(req.items[i], body, size, (size_t)lim->max_id_len);
        }
        check_str(req.model, body, size, size);
        check_str(req.experiment, body, size, size);
        if (req.clip != 0 && req.clip != 1) abort();
        json_error_t e;
        json_t *doc = json_loadb(body, size, JSON_ALLOW_NUL, &e);
        if (!doc && !strstr(e.text, "too big") && !strstr(e.text, "overflow")) abort();
        json_decref(doc);
    } else {
        check_problem(st, detail, sizeof detail, "/v1/ratings");
    }
}

static void query_case(const char *s, size_t size, const api_limits *lim)
{
    api_kv args[RECS_MAX_ARGS];
    int n = 0;
    for (size_t at = 0; at < size && n < RECS_MAX_ARGS;) {
        const char *part = s + at, *amp = memchr(part, '&', size - at);
        size_t len = amp ? (size_t)(amp - part) : size - at;
        const char *eq = memchr(part, '=', len);
        args[n].key = (api_str){part, eq ? (size_t)(eq - part) : len};
        args[n].value = eq ? (api_str){eq + 1, len - (size_t)(eq - part) - 1} : (api_str){"", 0};
        args[n].has_value = eq != NULL;
        n++;
        at += len + 1;
    }
    recs_query q;
    char detail[300];
    detail[0] = '\0';
    int st = recs_query_parse(args, n, lim, &q, detail, sizeof detail);
    if (st == 0) {
        if (q.k < 1 || q.k > lim->k_max || (q.exclude_seen != 0 && q.exclude_seen != 1)) abort();
        if (q.model.n > (size_t)lim->max_id_len || q.experiment.n > (size_t)lim->max_id_len) abort();
        if (q.model.n && (q.model.p < s || q.model.p + q.model.n > s + size)) abort();
    } else {
        check_problem(st, detail, sizeof detail, "/v1/users/u/recommendations");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    api_limits lim = api_limits_default();
    lim.max_items = 64;
    lim.max_id_len = 32;
    char *body = malloc(size ? size : 1);
    if (!body) return 0;
    memcpy(body, data, size);
    body_case(body, size, &lim);
    query_case(body, size, &lim);
    api_scratch_trim(&scr, 16u << 10);
    free(body);
    return 0;
}
