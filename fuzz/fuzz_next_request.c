/* fuzz/fuzz_next_request.c - libFuzzer target: arbitrary bytes -> the /v1/next request parser
 * (api/validate.h on the reader of api/json.h) and the problem+json writer.
 *
 * Build: make fuzz (clang), then run e.g.
 *     build-fuzz/bin/fuzz_next_request -max_total_time=60 -max_len=65536 /tmp/fuzz-next-corpus
 * The body is copied into a buffer of exactly its size (no NUL after it: ASan catches a read past it).
 * One scratch serves every input, as a connection's does (trimmed after each, as after a request).
 * Checks, besides no crash/leak/UB: the result is 0, 400 or 422; on 0 the request is consistent
 * (exactly one of stateful/stateless, k in range, ids non-empty and within the length limit, strings
 * inside the body or the scratch's arena) and jansson agrees that the body is JSON (unless a
 * number overflows jansson's integers or doubles); on an error the detail is a non-empty NUL-terminated
 * line and the problem document built from it is valid JSON (even when the detail quotes bytes of the
 * input that are not UTF-8).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/problem.h"
#include "api/validate.h"

static api_scratch scr;

static void check_str(api_str s, const char *body, size_t size, size_t max)
{
    if (s.n > max) abort();
    int in_body = s.p >= body && s.p + s.n <= body + size;
    int in_arena = s.p >= scr.arena && s.p + s.n <= scr.arena + scr.arena_cap;
    if (s.n && !in_body && !in_arena) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    api_limits lim = api_limits_default();
    lim.max_items = 64;
    lim.max_id_len = 32;
    char *body = malloc(size ? size : 1);
    if (!body) return 0;
    memcpy(body, data, size);
    next_req req;
    char detail[300];
    detail[0] = '\0';
    int st = next_req_parse(body, size, &lim, &scr, &req, detail, sizeof detail);
    if (st == 0) {
        int stateful = req.session_id.n > 0;
        if (stateful == req.has_items) abort();
        if (stateful && req.item_id.n == 0) abort();
        if (req.k < 1 || req.k > lim.k_max) abort();
        if (req.has_items) {
            if (req.n_items == 0 || req.n_items > (size_t)lim.max_items || req.items != scr.strs) abort();
            for (size_t i = 0; i < req.n_items; i++) {
                if (req.items[i].n == 0) abort();
                check_str(req.items[i], body, size, 32);
            }
        }
        check_str(req.session_id, body, size, 32);
        check_str(req.item_id, body, size, 32);
        check_str(req.model, body, size, 32);
        /* valid JSON for jansson too (it refuses integers beyond json_int_t: then nothing to compare) */
        json_error_t e;
        json_t *doc = json_loadb(body, size, JSON_ALLOW_NUL, &e);
        if (!doc && !strstr(e.text, "too big") && !strstr(e.text, "overflow")) abort();
        json_decref(doc);
    } else {
        if (st != 400 && st != 422) abort();
        if (!detail[0] || !memchr(detail, '\0', sizeof detail)) abort();
        sbuf b;
        sbuf_init(&b);
        problem_write(&b, st, "fuzz", detail, "/v1/next", "rid");
        json_t *p = json_loadb(b.data, b.len, 0, NULL);
        if (!p) abort(); /* always valid JSON: bytes that are not UTF-8 become U+FFFD */
        json_decref(p);
        sbuf_release(&b);
    }
    api_scratch_trim(&scr, 16u << 10);
    free(body);
    return 0;
}
