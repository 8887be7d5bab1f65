/* tests/test_server.c - integration tests of `recd serve`: routes, errors, /v1/next semantics. */
#include <string.h>
#include <unistd.h>

#include "tests/test_server_util.h"
#include "tests/testlib.h"

/* The item ids of a /v1/next answer, joined by spaces, into buf. */
static const char *item_list(const json_t *ans, char *buf, size_t cap)
{
    buf[0] = '\0';
    const json_t *items = json_object_get(ans, "items");
    size_t i;
    const json_t *it;
    json_array_foreach(items, i, it)
    {
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, "%s%s", n ? " " : "", tsrv_jstr(it, "item_id"));
    }
    return buf;
}

TEST(server_health_and_models)
{
    tsrv s;
    tsrv_start(&s, "", 0);
    tresp r;
    ASSERT_EQ(tsrv_http(&s, "GET", "/healthz", NULL, 0, NULL, &r), 0);
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(tsrv_jstr(r.json, "status"), "ok");
    ASSERT(r.request_id[0]);
    ASSERT_STR_EQ(tsrv_jstr(r.json, "request_id"), r.request_id);
    tresp_free(&r);
    /* No snapshot yet: not ready, /v1/next is 503. */
    ASSERT_EQ(tsrv_http(&s, "GET", "/readyz", NULL, 0, NULL, &r), 0);
    ASSERT_EQ(r.status, 503);
    tresp_free(&r);
    json_decref(tsrv_post(&s, "/v1/next", "{\"items\":[\"i1\"]}", 503));
    /* Publish one: the watch (or the poll) loads it. */
    tsrv_make_snapshot(s.root, "gru4rec", 50, 16, 1);
    int ready = 0;
    for (int i = 0; i < 200 && !ready; i++) {
        ASSERT_EQ(tsrv_http(&s, "GET", "/readyz", NULL, 0, NULL, &r), 0);
        ready = r.status == 200;
        tresp_free(&r);
        if (!ready) usleep(50000);
    }
    ASSERT(ready);
    ASSERT_EQ(tsrv_http(&s, "GET", "/v1/models", NULL, 0, NULL, &r), 0);
    ASSERT_EQ(r.status, 200);
    const json_t *m = json_array_get(json_object_get(r.json, "models"), 0);
    ASSERT_STR_EQ(tsrv_jstr(m, "name"), "gru4rec");
    ASSERT_STR_EQ(tsrv_jstr(m, "version"), "1");
    ASSERT(json_is_object(json_object_get(m, "meta")));
    tresp_free(&r);
    json_t *a = tsrv_post(&s, "/v1/next", "{\"items\":[\"i1\",\"i2\"],\"k\":5}", 200);
    ASSERT_EQ(json_array_size(json_object_get(a, "items")), 5);
    ASSERT_STR_EQ(tsrv_jstr(a, "model"), "gru4rec");
    ASSERT_STR_EQ(tsrv_jstr(a, "version"), "1");
    ASSERT(tsrv_jstr(a, "request_id") != NULL);
    json_decref(a);
    /* a request is counted when libmicrohttpd reports it completed, just after its answer was sent: the
     * client can ask /metrics before that (seen on a loaded machine) */
    ASSERT_EQ(tsrv_wait_metric(&s, "recd_http_requests_total{route=\"/v1/next\",status=\"200\"}", 1, 5000), 1);
    ASSERT_EQ(tsrv_http(&s, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "recd_http_requests_total{route=\"/v1/next\",status=\"200\"} 1");
    ASSERT_CONTAINS(r.body, "recd_http_requests_total{route=\"/v1/next\",status=\"503\"} 1");
    ASSERT_CONTAINS(r.body, "recd_http_request_duration_seconds_bucket{route=\"/v1/next\",le=\"+Inf\"} 2");
    ASSERT_CONTAINS(r.body, "recd_model_version{model=\"gru4rec\"} 1");
    ASSERT_CONTAINS(r.body, "recd_sessions 0");
    ASSERT_CONTAINS(r.body, "recd_snapshots_refused_total{model=\"gru4rec\"} 0");
    tresp_free(&r);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* Send body to path and check the status and, for errors, the problem+json shape. */
static void expect_problem(const tsrv *s, const char *method, const char *path, const char *body, long status,
                           const char *const *headers)
{
    tresp r;
    ASSERT_EQ(tsrv_http(s, method, path, body, body ? strlen(body) : 0, headers, &r), 0);
    if (r.status != status) FAIL("%s %s %.200s: status %ld, wanted %ld: %.300s", method, path, body ? body : "",
                                 r.status, status, r.body);
    if (strcmp(method, "HEAD") != 0) {
        if (!r.json || strcmp(r.ctype, "application/problem+json") != 0)
            FAIL("%s %s: not a problem+json answer (%s): %.300s", method, path, r.ctype, r.body);
        ASSERT_EQ(json_integer_value(json_object_get(r.json, "status")), status);
        ASSERT(tsrv_jstr(r.json, "title") != NULL);
        ASSERT(tsrv_jstr(r.json, "detail") != NULL);
        ASSERT(strncmp(tsrv_jstr(r.json, "type"), "urn:recd:problem:", 17) == 0);
        ASSERT_STR_EQ(tsrv_jstr(r.json, "request_id"), r.request_id);
    }
    tresp_free(&r);
}

TEST(server_error_statuses)
{
    tsrv s;
    tsrv_start(&s, "\"http.max_body_bytes\":2048", 0);
    tsrv_make_snapshot(s.root, "gru4rec", 40, 8, 1);
    tresp r;
    tsrv_wait_ready(&s);
    /* 400: not JSON, wrong types, too deep. */
    expect_problem(&s, "POST", "/v1/next", "{\"items\":[\"i1\"", 400, NULL);
    expect_problem(&s, "POST", "/v1/next", "", 400, NULL);
    expect_problem(&s, "POST", "/v1/next", "[1,2]", 400, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"items\":\"i1\"}", 400, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"items\":[1]}", 400, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"items\":[\"i1\"],\"k\":\"5\"}", 400, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"items\":[\"i1\"],\"k\":2.5}", 400, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"items\":[\"i1\"],\"exclude_seen\":1}", 400, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"items\":[\"i1\"],\"items\":[\"i2\"]}", 400, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"a\":[[[[[[[[[[[[1]]]]]]]]]]]]}", 400, NULL);
    /* 422: valid JSON, wrong meaning. */
    expect_problem(&s, "POST", "/v1/next", "{\"items\":[\"i1\"],\"k\":0}", 422, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"items\":[\"i1\"],\"k\":1001}", 422, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"items\":[]}", 422, NULL);
    expect_problem(&s, "POST", "/v1/next", "{}", 422, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"session_id\":\"s\"}", 422, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"item_id\":\"i1\"}", 422, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"session_id\":\"s\",\"item_id\":\"i1\",\"items\":[\"i1\"]}", 422, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"items\":[\"\"]}", 422, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"items\":[\"i1\"],\"color\":\"red\"}", 422, NULL);
    /* 404: unknown route, unknown model; 405 with Allow. */
    expect_problem(&s, "GET", "/v2/nothing", NULL, 404, NULL);
    expect_problem(&s, "POST", "/v1/next", "{\"items\":[\"i1\"],\"model\":\"nope\"}", 404, NULL);
    expect_problem(&s, "GET", "/v1/next", NULL, 405, NULL);
    ASSERT_EQ(tsrv_http(&s, "DELETE", "/healthz", NULL, 0, NULL, &r), 0);
    ASSERT_EQ(r.status, 405);
    ASSERT_CONTAINS(r.allow, "GET");
    tresp_free(&r);
    /* 413: declared length over the limit, and the same without a length (chunked). */
    char *big = malloc(4096);
    memset(big, ' ', 4095);
    big[4095] = '\0';
    big[0] = '{';
    big[4094] = '}';
    expect_problem(&s, "POST", "/v1/next", big, 413, NULL);
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    expect_problem(&s, "POST", "/v1/next", big, 413, chunked);
    free(big);
    /* Admin routes are off without a token. */
    expect_problem(&s, "POST", "/v1/models/gru4rec/reload", "", 404, NULL);
    /* HEAD on a GET route. */
    ASSERT_EQ(tsrv_http(&s, "HEAD", "/healthz", NULL, 0, NULL, &r), 0);
    ASSERT_EQ(r.status, 200);
    tresp_free(&r);
    /* The server still serves after all that. */
    json_decref(tsrv_post(&s, "/v1/next", "{\"items\":[\"i1\"]}", 200));
    ASSERT_EQ(tsrv_stop(&s), 0);
}

static void next_semantics(const char *settings)
{
    tsrv s;
    tsrv_start(&s, settings, 0);
    tsrv_make_snapshot(s.root, "gru4rec", 60, 16, 7);
    tsrv_wait_ready(&s);
    char a[2048], b[2100];
    /* Stateful, click by click, agrees with stateless on the same history (unknown ids skipped). */
    const char *clicks[] = {"i3", "nope", "i17", "i5", "i3"};
    json_t *st = NULL;
    for (int i = 0; i < 5; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"session_id\":\"s1\",\"item_id\":\"%s\",\"k\":10}", clicks[i]);
        json_decref(st);
        st = tsrv_post(&s, "/v1/next", body, 200);
        ASSERT_STR_EQ(tsrv_jstr(st, "session_id"), "s1");
    }
    json_t *sl = tsrv_post(&s, "/v1/next", "{\"items\":[\"i3\",\"nope\",\"i17\",\"i5\",\"i3\"],\"k\":10}", 200);
    ASSERT_STR_EQ(item_list(st, a, sizeof a), item_list(sl, b, sizeof b));
    for (size_t i = 0; i < 10; i++)
        ASSERT_NEAR(json_real_value(json_object_get(json_array_get(json_object_get(st, "items"), i), "score")),
                    json_real_value(json_object_get(json_array_get(json_object_get(sl, "items"), i), "score")), 1e-4);
    ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(sl, "unknown_items"), 0)), "nope");
    ASSERT_EQ(json_array_size(json_object_get(sl, "unknown_items")), 1);
    ASSERT(json_object_get(sl, "fallback") == NULL);
    json_decref(st);
    json_decref(sl);
    /* exclude_seen: none of the history comes back, stateless and stateful. */
    sl = tsrv_post(&s, "/v1/next", "{\"items\":[\"i3\",\"i17\",\"i5\"],\"k\":57,\"exclude_seen\":true}", 200);
    ASSERT_EQ(json_array_size(json_object_get(sl, "items")), 57);
    item_list(sl, a, sizeof a);
    ASSERT(strstr(a, "i3 ") == NULL && strstr(a, "i17") == NULL && strstr(a, "i5 ") == NULL);
    json_decref(sl);
    st = tsrv_post(&s, "/v1/next", "{\"session_id\":\"s1\",\"item_id\":\"i8\",\"k\":56,\"exclude_seen\":true}", 200);
    ASSERT_EQ(json_array_size(json_object_get(st, "items")), 56);
    item_list(st, a, sizeof a);
    snprintf(b, sizeof b, " %s ", a);
    ASSERT(!strstr(b, " i3 ") && !strstr(b, " i17 ") && !strstr(b, " i5 ") && !strstr(b, " i8 "));
    json_decref(st);
    /* Without exclude_seen a history item may come back: k = all items returns all 60. */
    sl = tsrv_post(&s, "/v1/next", "{\"items\":[\"i3\"],\"k\":1000}", 200);
    ASSERT_EQ(json_array_size(json_object_get(sl, "items")), 60);
    json_decref(sl);
    /* Only unknown clicks: the most popular items, flagged. */
    sl = tsrv_post(&s, "/v1/next", "{\"items\":[\"x1\",\"x2\"],\"k\":3}", 200);
    ASSERT_STR_EQ(tsrv_jstr(sl, "fallback"), "popular");
    ASSERT_STR_EQ(item_list(sl, a, sizeof a), "i0 i1 i2");
    ASSERT_EQ(json_array_size(json_object_get(sl, "unknown_items")), 2);
    json_decref(sl);
    st = tsrv_post(&s, "/v1/next", "{\"session_id\":\"new\",\"item_id\":\"zz\",\"k\":2}", 200);
    ASSERT_STR_EQ(tsrv_jstr(st, "fallback"), "popular");
    ASSERT_STR_EQ(item_list(st, a, sizeof a), "i0 i1");
    json_decref(st);
    /* Default k is 20. */
    sl = tsrv_post(&s, "/v1/next", "{\"items\":[\"i1\"]}", 200);
    ASSERT_EQ(json_array_size(json_object_get(sl, "items")), 20);
    json_decref(sl);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* The default: micro-batched scoring with the packed int8 kernel, candidates re-ranked in f32. */
TEST(server_next_semantics)
{
    next_semantics("");
}

/* The packed bf16 kernel (int8 off), candidates re-ranked in f32. */
TEST(server_next_semantics_bf16)
{
    next_semantics("\"score.int8\":false");
}

/* Inline scoring on the HTTP threads, through gru4rec_score (sgemm), f32. */
TEST(server_next_semantics_inline_blas)
{
    next_semantics("\"batch.max\":1,\"score.kernel\":\"blas\",\"score.bf16\":false");
}

/* Batches filled for a while (wait), AVX2 f32 kernel. */
TEST(server_next_semantics_avx2_wait)
{
    next_semantics("\"batch.wait_us\":2000,\"score.kernel\":\"avx2\",\"score.bf16\":false");
}

/* Small batches split between the scorer and its helper thread. */
TEST(server_next_semantics_split)
{
    next_semantics("\"batch.split_below\":4");
}

/* A session id longer than 300 bytes (limits.max_id_len goes to 1000) is echoed whole, batched and
 * inline. */
static void long_session_id(const char *settings)
{
    tsrv s;
    tsrv_start(&s, settings, 0);
    tsrv_make_snapshot(s.root, "gru4rec", 60, 16, 7);
    tsrv_wait_ready(&s);
    char id[801], body[1000];
    for (int i = 0; i < 800; i++) id[i] = (char)('a' + i % 26);
    id[800] = '\0';
    for (int pass = 0; pass < 2; pass++) { /* a known click (scored) then an unknown one (fallback) */
        snprintf(body, sizeof body, "{\"session_id\":\"%s\",\"item_id\":\"%s\",\"k\":3}", id,
                 pass ? "zz" : "i3");
        json_t *st = tsrv_post(&s, "/v1/next", body, 200);
        ASSERT_STR_EQ(tsrv_jstr(st, "session_id"), id);
        json_decref(st);
    }
    /* a stateless answer carries no session_id */
    json_t *sl = tsrv_post(&s, "/v1/next", "{\"items\":[\"i1\"],\"k\":2}", 200);
    ASSERT(json_object_get(sl, "session_id") == NULL);
    json_decref(sl);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

TEST(server_next_long_session_id)
{
    long_session_id("\"limits.max_id_len\":1000");
    long_session_id("\"limits.max_id_len\":1000,\"batch.max\":1");
}

TEST(server_request_ids)
{
    tsrv s;
    tsrv_start(&s, "", 0);
    tresp r;
    /* A sane client id is kept (header and body), anything else is replaced by our own. */
    const char *mine[] = {"X-Request-Id: trace-42.a_b", NULL};
    ASSERT_EQ(tsrv_http(&s, "GET", "/healthz", NULL, 0, mine, &r), 0);
    ASSERT_STR_EQ(r.request_id, "trace-42.a_b");
    ASSERT_STR_EQ(tsrv_jstr(r.json, "request_id"), "trace-42.a_b");
    tresp_free(&r);
    const char *bad[] = {"X-Request-Id: no spaces<allowed>", NULL};
    ASSERT_EQ(tsrv_http(&s, "GET", "/healthz", NULL, 0, bad, &r), 0);
    ASSERT(strcmp(r.request_id, "no spaces<allowed>") != 0 && r.request_id[0]);
    char first[80];
    snprintf(first, sizeof first, "%s", r.request_id);
    tresp_free(&r);
    ASSERT_EQ(tsrv_http(&s, "GET", "/nowhere", NULL, 0, NULL, &r), 0);
    ASSERT(strcmp(r.request_id, first) != 0); /* unique */
    ASSERT_STR_EQ(tsrv_jstr(r.json, "request_id"), r.request_id);
    tresp_free(&r);
    ASSERT_EQ(tsrv_http(&s, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    ASSERT(r.request_id[0]); /* also on non-JSON answers, as a header */
    ASSERT(strncmp(r.ctype, "text/plain", 10) == 0);
    tresp_free(&r);
    ASSERT_EQ(tsrv_stop(&s), 0);
}
