/* tests/test_server_unit.c - in-process tests of the server's parts: router, validation, problem
 * bodies, session store, metrics, and the OpenAPI document's coverage of the route table. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/problem.h"
#include "api/validate.h"
#include "server/metrics.h"
#include "server/router.h"
#include "core/sbuf.h"
#include "server/sessions.h"
#include "tests/testlib.h"

TEST(server_openapi_covers_routes)
{
    FILE *f = fopen("api/openapi.yaml", "r");
    if (!f) FAIL("api/openapi.yaml not found (run the tests from the repository root)");
    static char text[1 << 18];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    ASSERT_CONTAINS(text, "openapi: 3.1");
    for (const route *rt = router_table; rt->method; rt++) {
        char key[256], method[32];
        snprintf(key, sizeof key, "\n  %s:\n", rt->pattern);
        const char *p = strstr(text, key);
        if (!p) FAIL("route %s %s is not in api/openapi.yaml", rt->method, rt->pattern);
        p += strlen(key);
        /* the methods of this path: lines indented by 4 until the next path (indent 2) */
        size_t ml = 0;
        for (const char *c = rt->method; *c && ml < sizeof method - 1; c++) method[ml++] = (char)(*c | 0x20);
        method[ml] = '\0';
        int found = 0;
        while (*p) {
            const char *eol = strchr(p, '\n');
            size_t len = eol ? (size_t)(eol - p) : strlen(p);
            if (len >= 3 && p[0] == ' ' && p[1] == ' ' && p[2] != ' ') break;
            if (len > 4 && strncmp(p, "    ", 4) == 0 && p[4] != ' ' && strncmp(p + 4, method, ml) == 0 &&
                p[4 + ml] == ':')
                found = 1;
            if (!eol) break;
            p = eol + 1;
        }
        if (!found) FAIL("route %s %s: method missing in api/openapi.yaml", rt->method, rt->pattern);
        ASSERT(rt->summary && rt->summary[0]);
    }
}

TEST(server_router_match)
{
    char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX], allow[64];
    int np = 0, st = 0;
    const route *pr = NULL;
    const route *rt = router_match("POST", "/v1/models/gru4rec/reload", params, &np, &st, allow, sizeof allow, &pr);
    ASSERT(rt != NULL);
    ASSERT_EQ(np, 1);
    ASSERT_STR_EQ(params[0], "gru4rec");
    ASSERT(router_match("GET", "/v1/models/gru4rec/reload", params, &np, &st, allow, sizeof allow, &pr) == NULL);
    ASSERT_EQ(st, 405);
    ASSERT_STR_EQ(allow, "POST");
    ASSERT(router_match("GET", "/v1/models//reload", params, &np, &st, allow, sizeof allow, &pr) == NULL);
    ASSERT_EQ(st, 404);
    ASSERT(router_match("GET", "/healthz/", params, &np, &st, allow, sizeof allow, &pr) == NULL);
    ASSERT_EQ(st, 404);
    ASSERT(router_match("HEAD", "/healthz", params, &np, &st, allow, sizeof allow, &pr) != NULL);
    /* a segment up to ROUTE_PARAM_MAX - 1 (1023) bytes is a parameter (ids up to limits.max_id_len, at
     * most 1000, reach their route); a longer one is 414 for the route it would match */
    static char longseg[1200];
    memset(longseg, 'a', sizeof longseg);
    memcpy(longseg, "/v1/models/", 11);
    strcpy(longseg + 11 + 1023, "/reload");
    rt = router_match("POST", longseg, params, &np, &st, allow, sizeof allow, &pr);
    ASSERT(rt != NULL && strcmp(rt->pattern, "/v1/models/{name}/reload") == 0);
    ASSERT_EQ(np, 1);
    ASSERT_EQ(strlen(params[0]), 1023);
    memset(longseg, 'a', sizeof longseg);
    memcpy(longseg, "/v1/models/", 11);
    strcpy(longseg + 11 + 1024, "/reload");
    pr = NULL;
    ASSERT(router_match("POST", longseg, params, &np, &st, allow, sizeof allow, &pr) == NULL);
    ASSERT_EQ(st, 414);
    ASSERT_EQ(np, 0);
    ASSERT(pr != NULL && strcmp(pr->pattern, "/v1/models/{name}/reload") == 0);
    char detail[200];
    ASSERT_STR_EQ(router_param_detail(pr, longseg, detail, sizeof detail),
                  "path parameter {name} of /v1/models/{name}/reload is 1024 bytes long: a path parameter is at "
                  "most 1023 bytes");
    ASSERT(router_match("GET", longseg, params, &np, &st, allow, sizeof allow, &pr) == NULL);
    ASSERT_EQ(st, 405); /* the route is POST only: the method is wrong whatever the segment */
    ASSERT_STR_EQ(allow, "POST");
    ASSERT(router_match("POST", "/v1/models/x/reload/more", params, &np, &st, allow, sizeof allow, &pr) == NULL);
    ASSERT_EQ(st, 404);
}

static int parse(const char *body, next_req *req, char *detail)
{
    api_limits lim = api_limits_default();
    lim.max_items = 3;
    lim.max_id_len = 8;
    static api_scratch scr; /* reused like a connection's (the strings of *req live in it) */
    return next_req_parse(body, strlen(body), &lim, &scr, req, detail, 200);
}

TEST(server_validate_next)
{
    next_req req;
    char d[200];
    ASSERT_EQ(parse("{\"session_id\":\"s\",\"item_id\":\"i\",\"k\":5,\"exclude_seen\":true}", &req, d), 0);
    ASSERT_EQ(parse("{\"items\":[\"a\",\"b\"]}", &req, d), 0);
    ASSERT_EQ(parse("{\"items\":[\"a\",\"b\",\"c\",\"d\"]}", &req, d), 422);
    ASSERT_CONTAINS(d, "limit is 3");
    ASSERT_EQ(parse("{\"items\":[\"123456789\"]}", &req, d), 422);
    ASSERT_EQ(parse("{\"items\":[\"a\"],\"k\":true}", &req, d), 400);
    ASSERT_CONTAINS(d, "'k' must be an integer");
    ASSERT_EQ(parse("{\"items\":[\"a\"],\"model\":5}", &req, d), 400);
    ASSERT_EQ(parse("{\"items\":[\"a\"] ", &req, d), 400);
    ASSERT_EQ(parse("null", &req, d), 400);
    ASSERT_EQ(parse("{\"items\":[\"a\"],\"k\":0}", &req, d), 422);
    ASSERT_EQ(parse("{\"items\":null}", &req, d), 400);
    /* depth pre-check: brackets inside strings do not count, escapes are skipped */
    ASSERT_OK(api_check_depth("{\"a\":\"[[[[[[[[[[[[\\\"[[[[\"}", 24, 2));
    ASSERT_RC(api_check_depth("[[[", 3, 2), RC_ERANGE);
    ASSERT_OK(api_check_depth("[[]][[]]", 8, 2));
}

TEST(server_problem_body)
{
    sbuf b;
    sbuf_init(&b);
    problem_write(&b, 422, "unprocessable-request", "k \"0\"\n", "/v1/next", "rid-1");
    json_error_t e;
    json_t *j = json_loads(b.data, 0, &e);
    ASSERT(j != NULL);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "type")), "urn:recd:problem:unprocessable-request");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "title")), "Unprocessable Content");
    ASSERT_EQ(json_integer_value(json_object_get(j, "status")), 422);
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "detail")), "k \"0\"\n");
    ASSERT_STR_EQ(json_string_value(json_object_get(j, "request_id")), "rid-1");
    json_decref(j);
    sbuf_reset(&b);
    const char raw[] = {'a', 1, '\\', 0x1f, 'z'};
    sbuf_json_str(&b, raw, sizeof raw);
    ASSERT_STR_EQ(b.data, "\"a\\u0001\\\\\\u001fz\"");
    sbuf_reset(&b);
    const char utf[] = "\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80-\xff-\xc3-\xed\xa0\x80";
    sbuf_json_str(&b, utf, strlen(utf));
    ASSERT_STR_EQ(b.data, "\"\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80-\\ufffd-\\ufffd-\\ufffd\\ufffd\\ufffd\"");
    sbuf_release(&b);
}

static void add_one(void *ctx, float *state)
{
    (void)ctx;
    state[0] += 1;
}

TEST(server_sessions_store)
{
    sessions_cfg c = {.max = 3, .ttl_s = 10, .shards = 1, .max_seen = 2};
    sessions *st = sessions_new(&c);
    ASSERT(st != NULL);
    float h[4];
    int32_t seen[2];
    int n_seen, n_clicks;
    ASSERT_OK(sessions_advance(st, "a", 1, 7, 4, 5, add_one, NULL, 0.0, h, seen, &n_seen, &n_clicks));
    ASSERT_OK(sessions_advance(st, "a", 1, 7, 4, 6, add_one, NULL, 1.0, h, seen, &n_seen, &n_clicks));
    ASSERT_OK(sessions_advance(st, "a", 1, 7, 4, 8, add_one, NULL, 2.0, h, seen, &n_seen, &n_clicks));
    ASSERT_EQ(h[0], 3);
    ASSERT_EQ(n_clicks, 3);
    ASSERT_EQ(n_seen, 2); /* the two most recent, oldest first */
    ASSERT_EQ(seen[0], 6);
    ASSERT_EQ(seen[1], 8);
    /* unknown click: touches, no step */
    ASSERT_OK(sessions_advance(st, "a", 1, 7, 4, -1, add_one, NULL, 3.0, h, seen, &n_seen, &n_clicks));
    ASSERT_EQ(h[0], 3);
    /* LRU: b, c, d push a out (a is older than b and c after d arrives) */
    ASSERT_OK(sessions_advance(st, "b", 1, 7, 4, 1, add_one, NULL, 4.0, h, NULL, NULL, NULL));
    ASSERT_OK(sessions_advance(st, "c", 1, 7, 4, 1, add_one, NULL, 5.0, h, NULL, NULL, NULL));
    ASSERT_OK(sessions_advance(st, "d", 1, 7, 4, 1, add_one, NULL, 6.0, h, NULL, NULL, NULL));
    sessions_stats s;
    sessions_get_stats(st, &s);
    ASSERT_EQ(s.count, 3);
    ASSERT_EQ(s.evicted_lru, 1);
    ASSERT_OK(sessions_advance(st, "a", 1, 7, 4, -1, add_one, NULL, 6.5, h, seen, &n_seen, &n_clicks));
    ASSERT_EQ(n_clicks, 0); /* a was forgotten */
    /* another fingerprint resets the state */
    ASSERT_OK(sessions_advance(st, "d", 1, 8, 4, -1, add_one, NULL, 7.0, h, NULL, NULL, &n_clicks));
    ASSERT_EQ(h[0], 0);
    ASSERT_EQ(n_clicks, 0);
    sessions_get_stats(st, &s);
    ASSERT_EQ(s.reset_model, 1);
    /* TTL: the sweep removes idle sessions, bounded by max_work */
    ASSERT_EQ(sessions_expire(st, 100.0, 1), 1);
    ASSERT_EQ(sessions_expire(st, 100.0, 100), 2);
    sessions_get_stats(st, &s);
    ASSERT_EQ(s.count, 0);
    ASSERT_EQ(s.expired_ttl, 3);
    /* expired on access (lazily) */
    ASSERT_OK(sessions_advance(st, "e", 1, 7, 4, 1, add_one, NULL, 200.0, h, NULL, NULL, NULL));
    ASSERT_OK(sessions_advance(st, "e", 1, 7, 4, 1, add_one, NULL, 300.0, h, NULL, NULL, &n_clicks));
    ASSERT_EQ(n_clicks, 1);
    ASSERT_EQ(h[0], 1);
    sessions_free(st);
}

TEST(server_metrics_render)
{
    metrics_reset();
    int r = metrics_route("/v1/next");
    ASSERT(r > 0);
    metrics_observe(r, 200, 150000);
    metrics_observe(r, 200, 3000000);
    metrics_observe(r, 422, 10);
    metrics_observe(r, 299, 10);
    ASSERT_EQ(metrics_count(r, 200), 2);
    sbuf b;
    sbuf_init(&b);
    metrics_render(&b);
    ASSERT_CONTAINS(b.data, "recd_http_requests_total{route=\"/v1/next\",status=\"200\"} 2\n");
    ASSERT_CONTAINS(b.data, "recd_http_requests_total{route=\"/v1/next\",status=\"other\"} 1\n");
    ASSERT_CONTAINS(b.data, "recd_http_request_duration_seconds_bucket{route=\"/v1/next\",le=\"0.0001\"} 2\n");
    ASSERT_CONTAINS(b.data, "recd_http_request_duration_seconds_bucket{route=\"/v1/next\",le=\"0.00025\"} 3\n");
    ASSERT_CONTAINS(b.data, "recd_http_request_duration_seconds_bucket{route=\"/v1/next\",le=\"+Inf\"} 4\n");
    ASSERT_CONTAINS(b.data, "recd_http_request_duration_seconds_count{route=\"/v1/next\"} 4\n");
    sbuf_release(&b);
}

/* ---- per-connection slots: one per type, never another type's (issue: rank then next on one
 * keep-alive connection cast one route's job to the other's type) ---- */
#include "server/http.h"

static int slot_created, slot_destroyed, slot_trimmed;
static void *slot_create(void)
{
    slot_created++;
    return calloc(1, 64);
}
static void slot_destroy(void *p)
{
    slot_destroyed++;
    free(p);
}
static void slot_trim(void *p)
{
    (void)p;
    slot_trimmed++;
}

TEST(server_http_slots_are_typed)
{
    static const http_slot_type types[HTTP_MAX_SLOTS + 1] = {
        {"a", slot_create, slot_destroy, slot_trim}, {"b", slot_create, slot_destroy, NULL},
        {"c", slot_create, slot_destroy, NULL},      {"d", slot_create, slot_destroy, NULL},
        {"e", slot_create, slot_destroy, NULL},      {"f", slot_create, slot_destroy, NULL},
        {"g", slot_create, slot_destroy, NULL},      {"h", slot_create, slot_destroy, NULL},
        {"i", slot_create, slot_destroy, NULL},
    };
    http_req *r = http_detached_new(NULL);
    ASSERT(r != NULL);
    void *a = http_slot(r, &types[0]);
    void *b = http_slot(r, &types[1]);
    ASSERT(a && b && a != b);
    ASSERT(http_slot(r, &types[0]) == a); /* any order, any number of times: each type its own */
    ASSERT(http_slot(r, &types[1]) == b);
    ASSERT(http_slot(r, &types[0]) == a);
    ASSERT_EQ(slot_created, 2);
    for (int i = 2; i < HTTP_MAX_SLOTS; i++) ASSERT(http_slot(r, &types[i]) != NULL);
    ASSERT(http_slot(r, &types[HTTP_MAX_SLOTS]) == NULL); /* more types than a connection holds */
    ASSERT_CONTAINS(rc_errmsg(), "slot types");
    http_detached_end(r); /* after a request: trim of every type that has one */
    ASSERT_EQ(slot_trimmed, 1);
    http_detached_free(r);
    ASSERT_EQ(slot_destroyed, HTTP_MAX_SLOTS);
}

/* A slot that grows a large buffer in a request and gives it back in its trim (as rank.c's job). */
typedef struct big_slot {
    char *buf;
    size_t cap;
} big_slot;
static void *big_create(void)
{
    return calloc(1, sizeof(big_slot));
}
static void big_destroy(void *p)
{
    big_slot *b = p;
    free(b->buf);
    free(b);
}
static void big_trim(void *p)
{
    big_slot *b = p;
    if (b->cap > HTTP_KEEP_BYTES) {
        free(b->buf);
        b->buf = NULL;
        b->cap = 0;
    }
}

/* Per-connection buffers grown by one large request shrink back when it ends: the answer buffer
 * (grown past 100 KB) is released and the slots trimmed; a small answer's buffer is kept (a warm
 * connection does not reallocate). Before the fix, r->out kept its 128 KB across requests. */
TEST(server_http_buffers_shrink_after_large_request)
{
    static const http_slot_type big_type = {"big", big_create, big_destroy, big_trim};
    http_req *r = http_detached_new(NULL);
    ASSERT(r != NULL);
    sbuf *own = r->out;
    for (int round = 0; round < 2; round++) {
        /* a large answer and a large slot buffer */
        sbuf_reset(r->out);
        for (int i = 0; i < 4000; i++) sbuf_printf(r->out, "{\"item_id\":\"c%04d\",\"score\":0.5},", i);
        ASSERT(!sbuf_failed(r->out));
        ASSERT(r->out->len > 100 * 1024);
        big_slot *b = http_slot(r, &big_type);
        ASSERT(b != NULL);
        b->cap = 200 * 1024;
        b->buf = malloc(b->cap);
        ASSERT(b->buf != NULL);
        memset(b->buf, 1, b->cap);
        http_detached_end(r);
        ASSERT(r->out == own);
        ASSERT(r->out->cap <= HTTP_KEEP_BYTES);
        ASSERT_EQ(r->out->len, 0);
        ASSERT(b->cap <= HTTP_KEEP_BYTES && b->buf == NULL);
        /* the buffer still works for the next request */
        sbuf_reset(r->out);
        sbuf_adds(r->out, "{\"ok\":true}");
        ASSERT(!sbuf_failed(r->out));
        ASSERT_STR_EQ(r->out->data, "{\"ok\":true}");
        size_t cap = r->out->cap;
        ASSERT(cap > 0 && cap <= HTTP_KEEP_BYTES);
        http_detached_end(r); /* a small answer: kept */
        ASSERT_EQ(r->out->cap, cap);
    }
    http_detached_free(r);
}
