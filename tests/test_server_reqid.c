/* tests/test_server_reqid.c - a client's X-Request-Id in experiment requests: the impression is keyed by
 * the answer's request_id, so a client id reused by another request (another user, a retry, a gateway's
 * trace id) must not make the second impression a duplicate nor credit its events to the first user.
 * The server appends a server-unique suffix: the answer's request_id (and X-Request-Id header) is
 * "<client id>.<suffix>", different for each request; events are posted against it. Outside an
 * experiment the client's id is echoed as it is (tests/test_server.c server_request_ids). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "tests/test_server_util.h"
#include "tests/testlib.h"

#define RQ_EXP                                                                                                \
    "\"experiments\":[{\"name\":\"home\",\"salt\":\"rq-salt\",\"unit\":\"user_id\",\"control\":\"wide\","      \
    "\"arms\":[{\"name\":\"wide\",\"model\":\"wide\",\"share\":0.5},{\"name\":\"deep\",\"model\":\"deep\","     \
    "\"share\":0.5}]}]"

#define RQ_RANK                                                                                               \
    "{\"user_id\":\"%s\",\"experiment\":\"home\",\"k\":2,\"context\":{\"x1\":0.5},\"candidates\":["            \
    "{\"item_id\":\"a\",\"features\":{\"c1\":\"a\"}},{\"item_id\":\"b\",\"features\":{\"c1\":\"b\"}}]}"

static void rq_start(tsrv *s)
{
    char root[1024], cfg[2048];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    mkdir(root, 0755);
    tsrv_make_snapshot(root, "gru4rec", 40, 8, 3);
    wd_model_free(tsrv_publish_wd(root, "wide", 21, 6, 5, NULL));
    wd_model_free(tsrv_publish_wd(root, "deep", 22, 7, 4, NULL));
    snprintf(cfg, sizeof cfg,
             "\"snapshots.models\":[\"gru4rec\",\"wide\",\"deep\"],\"state.dir\":\"%s/state\",\"events.sync\":false,"
             "%s",
             test_tmpdir(), RQ_EXP);
    tsrv_start(s, cfg, 1);
}

/* POST /v1/rank for user with X-Request-Id rid; the answer's request_id (checked equal to the header) in
 * out. */
static void rq_rank(const tsrv *s, const char *user, const char *rid, char *out, size_t cap)
{
    char body[512], hdr[128];
    snprintf(body, sizeof body, RQ_RANK, user);
    snprintf(hdr, sizeof hdr, "X-Request-Id: %s", rid);
    const char *h[] = {hdr, NULL};
    tresp r;
    ASSERT_EQ(tsrv_http(s, "POST", "/v1/rank", body, strlen(body), h, &r), 0);
    if (r.status != 200) FAIL("rank: %ld %.300s", r.status, r.body);
    const char *body_rid = tsrv_jstr(r.json, "request_id");
    ASSERT(body_rid != NULL);
    ASSERT_STR_EQ(r.request_id, body_rid); /* the header names the same id */
    snprintf(out, cap, "%s", body_rid);
    tresp_free(&r);
}

static long rq_event(const tsrv *s, const char *rid, const char *type, const char *event_id)
{
    char body[512];
    snprintf(body, sizeof body, "{\"request_id\":\"%s\",\"type\":\"%s\",\"item_id\":\"a\",\"event_id\":\"%s\"}", rid,
             type, event_id);
    tresp r;
    ASSERT_EQ(tsrv_http(s, "POST", "/v1/events", body, strlen(body), NULL, &r), 0);
    long st = r.status;
    tresp_free(&r);
    return st;
}

TEST_TIMEOUT(server_exp_client_request_id_unique, 120)
{
    tsrv s;
    rq_start(&s);
    char alice[128], bob[128], retry[128];
    rq_rank(&s, "alice", "same-1", alice, sizeof alice);
    rq_rank(&s, "bob", "same-1", bob, sizeof bob);
    rq_rank(&s, "alice", "same-1", retry, sizeof retry); /* a retry of the same request */
    /* the client's id, then a server-unique suffix */
    ASSERT(strncmp(alice, "same-1.", 7) == 0 && strlen(alice) > 7);
    ASSERT(strncmp(bob, "same-1.", 7) == 0 && strlen(bob) > 7);
    ASSERT(strcmp(alice, bob) != 0 && strcmp(alice, retry) != 0 && strcmp(bob, retry) != 0);
    /* a 63-byte client id (the longest kept) still fits with its suffix */
    char longid[64], lrid[128];
    memset(longid, 'L', 63);
    longid[63] = '\0';
    rq_rank(&s, "carol", longid, lrid, sizeof lrid);
    ASSERT(strncmp(lrid, longid, 63) == 0 && lrid[63] == '.');
    /* every impression is stored: none dropped as a duplicate request id */
    ASSERT(tsrv_wait_metric(&s, "recd_events_committed_total{type=\"impression\"}", 4, 10000) >= 4);
    ASSERT_EQ(tsrv_metric(&s, "recd_events_dropped_total{kind=\"duplicate_request_id\"}"), 0);
    /* bob's event goes to bob's request; the bare client id names no answer */
    ASSERT_EQ(rq_event(&s, bob, "acquisition", "bob-x"), 200);
    ASSERT_EQ(rq_event(&s, alice, "click", "alice-c"), 200);
    ASSERT_EQ(rq_event(&s, "same-1", "acquisition", "bob-y"), 422);
    ASSERT_EQ(tsrv_metric(&s, "recd_events_committed_total{type=\"acquisition\"}"), 1);
    ASSERT_EQ(tsrv_metric(&s, "recd_events_refused_total{reason=\"unknown_request_id\"}"), 1);
    /* outside an experiment the client's id is echoed unchanged */
    const char *h[] = {"X-Request-Id: plain-7", NULL};
    tresp r;
    ASSERT_EQ(tsrv_http(&s, "GET", "/healthz", NULL, 0, h, &r), 0);
    ASSERT_STR_EQ(r.request_id, "plain-7");
    tresp_free(&r);
    ASSERT_EQ(tsrv_stop(&s), 0);
}
