/* tests/test_server_itemknn.c - the third served model over HTTP: itemknn answers POST /v1/next
 * (stateless and stateful) beside gru4rec and widedeep on one keep-alive connection, through the
 * generic `next` route (server/next.c names no model type). Expected answers are computed in process
 * with the same snapshot and itemknn_type's `next` operations. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/idmap.h"
#include "core/snap.h"
#include "models/itemknn.h"
#include "models/model.h"
#include "tests/test_server_util.h"
#include "tests/testlib.h"

enum { KN_ITEMS = 20 };

/* Publish ROOT/itemknn/1: items i0..i19 (the ids of tsrv_make_snapshot), sessions that walk chains
 * i, i+1, i+2, i+3 (mod 20) plus a few jumps, so each item has clear forward neighbours. */
static void publish_itemknn(const char *root)
{
    idmap *items = idmap_new(KN_ITEMS);
    char id[16];
    for (int i = 0; i < KN_ITEMS; i++) {
        int n = snprintf(id, sizeof id, "i%d", i);
        ASSERT_EQ(idmap_intern(items, id, (size_t)n), i);
    }
    enum { Q = 60, L = 4 };
    int32_t clicks[Q * L];
    int64_t offsets[Q + 1];
    for (int s = 0; s < Q; s++) {
        offsets[s] = (int64_t)s * L;
        for (int p = 0; p < L; p++) clicks[s * L + p] = (int32_t)((s + p * (1 + (s % 3 == 0))) % KN_ITEMS);
    }
    offsets[Q] = (int64_t)Q * L;
    itemknn_sessions d = {.items = clicks, .offsets = offsets, .times = NULL, .n_sessions = Q};
    itemknn_hparams hp;
    itemknn_hparams_default(&hp);
    itemknn *m = NULL;
    ASSERT_OK(itemknn_build(&m, &hp, items, &d, 1));
    uint64_t version = 0;
    ASSERT_OK(itemknn_save(m, root, "itemknn", NULL, &version));
    ASSERT_EQ(version, 1);
    itemknn_free(m);
    idmap_free(items);
}

/* The best k items (ids and scores, best first, ties by index) the snapshot's model gives after the
 * clicks hist (item indices), excluding them when excl. Returns how many. */
static int expected_next(const char *root, const int32_t *hist, int n, int excl, int k, int32_t *idx, float *val)
{
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/itemknn/1", root);
    const model_type *t = model_type_find("itemknn");
    ASSERT_NE(t, NULL);
    ASSERT_NE(t->next, NULL);
    snap *s = NULL;
    ASSERT_OK(snap_open(&s, dir));
    void *h = NULL;
    ASSERT_OK(t->load(&h, s));
    size_t S = t->next->state_size(h);
    float *state = calloc(S, sizeof(float)), *scores = malloc(KN_ITEMS * sizeof(float));
    void *sc = t->next->scratch_new(h, 1);
    ASSERT_NE(state, NULL);
    ASSERT_NE(scores, NULL);
    for (int i = 0; i < n; i++) t->next->step(h, state, &hist[i], 1, sc);
    t->next->score(h, state, 1, scores, sc);
    int got = 0;
    while (got < k) { /* selection: best score, lowest index on ties (core/topk.h's order) */
        int best = -1;
        for (int i = 0; i < KN_ITEMS; i++) {
            int skip = 0;
            for (int j = 0; j < got; j++) skip |= idx[j] == i;
            for (int j = 0; excl && j < n; j++) skip |= hist[j] == i;
            if (!skip && (best < 0 || scores[i] > scores[best])) best = i;
        }
        if (best < 0) break;
        idx[got] = best;
        val[got++] = scores[best];
    }
    t->next->scratch_free(sc);
    free(state);
    free(scores);
    t->free(h);
    snap_close(s);
    return got;
}

/* The answer's items equal the expected ones (ids in order, scores to float precision). */
static void expect_items(const json_t *ans, const int32_t *idx, const float *val, int n)
{
    const json_t *items = json_object_get(ans, "items");
    ASSERT_EQ(json_array_size(items), (size_t)n);
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "i%d", idx[i]);
        const json_t *it = json_array_get(items, (size_t)i);
        ASSERT_STR_EQ(tsrv_jstr(it, "item_id"), id);
        ASSERT_NEAR(json_number_value(json_object_get(it, "score")), val[i], 1e-5 * (1 + fabsf(val[i])));
    }
}

static json_t *post(tconn *c, const char *path, const char *body, long want)
{
    tresp r;
    ASSERT_EQ(tconn_http(c, "POST", path, body, strlen(body), NULL, &r), 0);
    if (r.status != want) FAIL("POST %s %s: status %ld, want %ld: %s", path, body, r.status, want, r.body);
    if (c->requests > 1 && r.num_connects != 0) FAIL("POST %s: the keep-alive connection was not reused", path);
    json_t *j = json_incref(r.json);
    ASSERT_NE(j, NULL);
    tresp_free(&r);
    return j;
}

TEST(server_itemknn_next_beside_other_models)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    mkdir(root, 0755);
    tsrv_make_snapshot(root, "gru4rec", KN_ITEMS, 16, 11);
    wd_model *wd = tsrv_publish_wd(root, "widedeep", 21, 6, 5, NULL);
    wd_model_free(wd);
    publish_itemknn(root);
    tsrv s;
    tsrv_start(&s, "\"snapshots.models\":[\"gru4rec\",\"widedeep\",\"itemknn\"]", 1);
    tconn c;
    tconn_open(&c, &s);
    int32_t idx[8];
    float val[8];

    /* stateless */
    int32_t h35[] = {3, 5};
    json_t *a = post(&c, "/v1/next", "{\"model\":\"itemknn\",\"items\":[\"i3\",\"i5\"],\"k\":5}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "model"), "itemknn");
    ASSERT_STR_EQ(tsrv_jstr(a, "version"), "1");
    expect_items(a, idx, val, expected_next(root, h35, 2, 0, 5, idx, val));
    json_decref(a);

    /* another model's route between itemknn requests, on the same connection */
    a = post(&c, "/v1/rank", "{\"model\":\"widedeep\",\"candidates\":[{\"item_id\":\"a\"},{\"item_id\":\"b\"}]}", 200);
    ASSERT_EQ(json_array_size(json_object_get(a, "items")), 2);
    json_decref(a);
    a = post(&c, "/v1/rank", "{\"model\":\"itemknn\",\"candidates\":[{\"item_id\":\"a\"}]}", 422);
    ASSERT_CONTAINS(tsrv_jstr(a, "detail"), "cannot answer /v1/rank: no `rank` capability");
    json_decref(a);

    /* stateful: two clicks give the stateless answer of the same history, seen items excluded */
    a = post(&c, "/v1/next", "{\"model\":\"itemknn\",\"session_id\":\"kn1\",\"item_id\":\"i3\",\"k\":4}", 200);
    json_decref(a);
    a = post(&c, "/v1/next",
             "{\"model\":\"itemknn\",\"session_id\":\"kn1\",\"item_id\":\"i5\",\"k\":4,\"exclude_seen\":true}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "session_id"), "kn1");
    expect_items(a, idx, val, expected_next(root, h35, 2, 1, 4, idx, val));
    json_decref(a);

    /* the same session id on gru4rec: a session's state is per model (the store's key is MODEL/ID):
     * gru4rec's kn1 starts at this click, its answer is gru4rec's stateless answer for it */
    a = post(&c, "/v1/next", "{\"model\":\"gru4rec\",\"session_id\":\"kn1\",\"item_id\":\"i7\",\"k\":3}", 200);
    json_t *b = post(&c, "/v1/next", "{\"model\":\"gru4rec\",\"items\":[\"i7\"],\"k\":3}", 200);
    char *ja = json_dumps(json_object_get(a, "items"), JSON_COMPACT),
         *jb = json_dumps(json_object_get(b, "items"), JSON_COMPACT);
    ASSERT_STR_EQ(ja, jb);
    free(ja);
    free(jb);
    json_decref(a);
    json_decref(b);
    /* ... and back on itemknn, kn1 goes on from its own clicks (i3, i5), untouched by gru4rec's */
    int32_t h359[] = {3, 5, 9};
    a = post(&c, "/v1/next", "{\"model\":\"itemknn\",\"session_id\":\"kn1\",\"item_id\":\"i9\",\"k\":3}", 200);
    expect_items(a, idx, val, expected_next(root, h359, 3, 0, 3, idx, val));
    ASSERT_EQ(tsrv_metric(&s, "recd_session_resets_total"), 0);
    json_decref(a);

    /* unknown ids are listed and skipped; only unknown ids: the popularity fallback */
    a = post(&c, "/v1/next", "{\"model\":\"itemknn\",\"items\":[\"nope\",\"i3\"],\"k\":2}", 200);
    ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(a, "unknown_items"), 0)), "nope");
    int32_t h3[] = {3};
    expect_items(a, idx, val, expected_next(root, h3, 1, 0, 2, idx, val));
    json_decref(a);
    a = post(&c, "/v1/next", "{\"model\":\"itemknn\",\"items\":[\"nope\"],\"k\":3}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "fallback"), "popular");
    ASSERT_EQ(json_array_size(json_object_get(a, "items")), 3);
    ASSERT_EQ(json_is_null(json_object_get(json_array_get(json_object_get(a, "items"), 0), "score")), 1);
    json_decref(a);

    /* the models listing shows its type */
    tresp r;
    ASSERT_EQ(tconn_http(&c, "GET", "/v1/models", NULL, 0, NULL, &r), 0);
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "\"type\":\"itemknn\"");
    tresp_free(&r);
    tconn_close(&c);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* /v1/next without "model" picks the first configured model that has `next`: a widedeep default does
 * not make /v1/next fail, and /v1/rank without "model" still finds the widedeep one. */
TEST(server_itemknn_default_model_by_capability)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    mkdir(root, 0755);
    wd_model *wd = tsrv_publish_wd(root, "widedeep", 21, 6, 5, NULL);
    wd_model_free(wd);
    publish_itemknn(root);
    tsrv s;
    tsrv_start(&s, "\"snapshots.models\":[\"widedeep\",\"itemknn\"]", 1);
    json_t *a = tsrv_post(&s, "/v1/next", "{\"items\":[\"i3\"],\"k\":2}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "model"), "itemknn");
    json_decref(a);
    a = tsrv_post(&s, "/v1/rank", "{\"candidates\":[{\"item_id\":\"a\"}]}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "model"), "widedeep");
    json_decref(a);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* Without "model", a configured model that is not loaded yet and comes first is waited for (503), not
 * skipped: once it loads it answers, so a session never moves between models by itself. */
TEST(server_itemknn_default_waits_for_first_model)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    mkdir(root, 0755);
    publish_itemknn(root);
    tsrv s;
    tsrv_start(&s, "\"snapshots.models\":[\"gru4rec\",\"itemknn\"],\"snapshots.poll_ms\":100", 0);
    json_t *a = tsrv_post(&s, "/v1/next", "{\"session_id\":\"w\",\"item_id\":\"i3\"}", 503);
    ASSERT_CONTAINS(tsrv_jstr(a, "detail"), "model 'gru4rec' has no version loaded yet");
    json_decref(a);
    a = tsrv_post(&s, "/v1/next", "{\"model\":\"itemknn\",\"items\":[\"i3\"],\"k\":2}", 200);
    json_decref(a);
    tsrv_make_snapshot(root, "gru4rec", KN_ITEMS, 16, 11);
    tsrv_wait_ready(&s);
    a = tsrv_post(&s, "/v1/next", "{\"session_id\":\"w\",\"item_id\":\"i3\"}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "model"), "gru4rec");
    json_decref(a);
    ASSERT_EQ(tsrv_stop(&s), 0);
}
