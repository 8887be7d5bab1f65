/* fuzz/fuzz_next_request.c - libFuzzer target: arbitrary bytes -> the /v1/next request validator
 * (api/validate.h: depth pre-scan, jansson parse, field checks) and the problem+json writer.
 *
 * Build: make fuzz (clang), then run e.g.
 *     build-fuzz/bin/fuzz_next_request -max_total_time=60 -max_len=65536 /tmp/fuzz-next-corpus
 * Checks, besides no crash/leak/UB: the result is 0, 400 or 422; on 0 the request is consistent
 * (exactly one of stateful/stateless, k in range, ids non-empty and within the length limit); on an
 * error the detail is a non-empty NUL-terminated line and the problem document built from it is valid
 * JSON (even when the detail quotes bytes of the input that are not UTF-8).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/problem.h"
#include "api/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    api_limits lim = api_limits_default();
    lim.max_items = 64;
    lim.max_id_len = 32;
    json_t *doc = NULL;
    next_req req;
    char detail[300];
    detail[0] = '\0';
    int st = next_req_parse((const char *)data, size, &lim, &doc, &req, detail, sizeof detail);
    if (st == 0) {
        if (!doc) abort();
        int stateful = req.session_id.n > 0;
        if (stateful == (req.items != NULL)) abort();
        if (stateful && req.item_id.n == 0) abort();
        if (req.k < 1 || req.k > lim.k_max) abort();
        if (req.items) {
            if (req.n_items == 0 || req.n_items > (size_t)lim.max_items) abort();
            for (size_t i = 0; i < req.n_items; i++) {
                const json_t *s = json_array_get(req.items, i);
                if (!json_is_string(s) || json_string_length(s) == 0 || json_string_length(s) > 32) abort();
            }
        }
        if (req.session_id.n > 32 || req.item_id.n > 32 || req.model.n > 32) abort();
        json_decref(doc);
        return 0;
    }
    if (doc) abort();
    if (st != 400 && st != 422) abort();
    if (!detail[0] || !memchr(detail, '\0', sizeof detail)) abort();
    sbuf b;
    sbuf_init(&b);
    problem_write(&b, st, "fuzz", detail, "/v1/next", "rid");
    json_t *p = json_loadb(b.data, b.len, 0, NULL);
    if (!p) abort(); /* always valid JSON: bytes that are not UTF-8 become U+FFFD */
    json_decref(p);
    sbuf_release(&b);
    return 0;
}
