/* fuzz/fuzz_events.c - libFuzzer target for POST /v1/events bodies (api/events_req.h on the reader of
 * api/json.h): the input is the request body, parsed with one scratch reused across inputs (as on a
 * keep-alive connection). The parser must answer 0 or 400/422 with a detail, never crash, leak or read
 * past the body (copied into a buffer of exactly its size); an accepted body must satisfy every bound
 * the event store relies on (server/evstore.h): 1..max_batch events, ids within their lengths, a known
 * type, a finite value on acquisitions only.
 *   make fuzz && ./build-fuzz/bin/fuzz_events -max_total_time=60 fuzz/corpus/fuzz_events */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/events_req.h"
#include "server/http.h"

#define MAX_BATCH 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static events_scratch scr;
    static int calls;
    api_limits lim = api_limits_default();
    lim.max_id_len = 40;
    char *body = malloc(size ? size : 1);
    if (!body) return 0;
    memcpy(body, data, size);
    events_req req;
    char detail[320];
    detail[0] = '\0';
    int st = events_req_parse(body, size, &lim, MAX_BATCH, &scr, &req, detail, sizeof detail);
    if (st != 0 && st != 400 && st != 422) abort();
    if (st != 0 && !detail[0]) abort();
    if (st == 0) {
        if (req.n < 1 || req.n > MAX_BATCH) abort();
        for (size_t i = 0; i < req.n; i++) {
            const evreq_event *e = &req.ev[i];
            if (e->type < EVREQ_IMPRESSION || e->type > EVREQ_ACQUISITION) abort();
            if (e->request_id.n < 1 || e->request_id.n > EVREQ_MAX_ID) abort();
            if (e->item_id.n < 1 || e->item_id.n > 40) abort();
            if (e->event_id.n > EVREQ_MAX_ID) abort();
            if (e->has_value && (e->type != EVREQ_ACQUISITION || !isfinite(e->value))) abort();
            /* every string lies in the body or the arena */
            const api_str *s[3] = {&e->request_id, &e->item_id, &e->event_id};
            for (int k = 0; k < 3; k++) {
                if (!s[k]->n) continue;
                int in_body = s[k]->p >= body && s[k]->p + s[k]->n <= body + size;
                int in_arena = s[k]->p >= scr.s.arena && s[k]->p + s[k]->n <= scr.s.arena + scr.s.arena_cap;
                if (!in_body && !in_arena) abort();
                volatile char c = s[k]->p[s[k]->n - 1]; /* readable */
                (void)c;
            }
        }
    }
    if (++calls % 16 == 0) events_scratch_trim(&scr, HTTP_KEEP_BYTES); /* as after a large request */
    free(body);
    return 0;
}
