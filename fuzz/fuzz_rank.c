/* fuzz/fuzz_rank.c - libFuzzer target for POST /v1/rank (server/rank.c on api/rank_req.h and the
 * reader of api/json.h): the input is the request body, handled by route_rank against a small random
 * Wide & Deep model (published once into a temporary snapshot root and loaded through the registry).
 * The parser must reject bad bodies with 400/422 (404 for a model name) and never crash, leak or read
 * past the body (copied into a buffer of exactly its size: nothing after it, not even a NUL); a 200
 * answer must be JSON that jansson accepts.
 *   make fuzz && ./build-fuzz/bin/fuzz_rank -max_total_time=60 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "models/widedeep.h"
#include "server/http.h"
#include "server/registry.h"
#include "server/server.h"

int route_rank(http_req *r);

static const char *SPEC =
    "{\"columns\":[\"x\",\"c\",\"h\",\"y\"],\"label\":\"y\",\"label_positive\":[\"1\"],\"features\":["
    "{\"name\":\"x\",\"type\":\"numeric\",\"wide\":true,\"deep\":\"dense\"},"
    "{\"name\":\"xb\",\"type\":\"numeric\",\"column\":\"x\",\"boundaries\":[0,1],\"wide\":true},"
    "{\"name\":\"c\",\"type\":\"categorical\",\"vocab\":[\"a\",\"b\"],\"wide\":true,\"deep\":\"onehot\"},"
    "{\"name\":\"h\",\"type\":\"categorical\",\"hash_buckets\":9,\"wide\":true,\"deep\":\"embed\",\"dim\":2},"
    "{\"name\":\"ch\",\"type\":\"crossed\",\"cross\":[\"c\",\"h\"],\"hash_buckets\":5,\"wide\":true}]}";

static server srv;
static http_req *r; /* one detached connection for all inputs: its slots live on, as on a keep-alive one */

static void setup(void)
{
    static char root[] = "/tmp/fuzz-rank-XXXXXX";
    if (!mkdtemp(root)) abort();
    json_t *j = json_loads(SPEC, 0, NULL);
    feat_spec *sp;
    if (!j || feat_spec_from_json(&sp, j) != 0) abort();
    json_decref(j);
    wd_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.variant = WD_BOTH;
    hp.nhidden = 1;
    hp.hidden[0] = 4;
    hp.seed = 1;
    wd_model *m;
    if (wd_model_new(&m, sp, &hp) != 0 || wd_save(m, root, 1, NULL, NULL) != 0) abort();
    wd_model_free(m);
    const char *names[] = {"widedeep"};
    srv.limits = api_limits_default();
    srv.limits.max_items = 50;
    srv.reg = registry_new(root, names, 1);
    if (!srv.reg || registry_scan(srv.reg, NULL, 0) != 1) abort();
    if (!(r = http_detached_new(&srv))) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv.reg) setup();
    char *body = malloc(size ? size : 1);
    if (!body) return 0;
    memcpy(body, data, size);
    r->body = body;
    r->body_len = size;
    r->path = "/v1/rank";
    r->status = 0;
    strcpy(r->request_id, "fuzz");
    sbuf_reset(r->out);
    route_rank(r);
    if (r->status != 200 && r->status != 400 && r->status != 422 && r->status != 404) abort();
    if (r->status == 200) {
        /* JSON_ALLOW_NUL: an item_id sent as "a\u0000b" is echoed as such, valid JSON (RFC 8259) that
         * jansson refuses by default */
        json_t *a = json_loadb(r->out->data, r->out->len, JSON_ALLOW_NUL, NULL);
        if (!a) abort();
        json_decref(a);
    }
    http_detached_end(r); /* as after a request: buffers a large one grew are given back */
    free(body);
    return 0;
}
