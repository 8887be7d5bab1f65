/* tests/test_server_rank.c - POST /v1/rank: against the real server (ranking, clamping, every kind of
 * refused request, escapes, hot swap, two models of different shapes alternating on the same threads) and
 * in process through route_rank (a fresh connection's stale memory, number ranges). Scores are checked
 * against the model scored in process (tests/test_widedeep_model.c tests that scoring itself). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "models/features.h"
#include "models/widedeep.h"
#include "server/http.h"
#include "server/registry.h"
#include "server/server.h"
#include "tests/test_server_util.h"
#include "tests/testlib.h"

/* A random-weight model of TSRV_WD_SPEC with non-zero wide weights, published under root. */
static wd_model *publish_model(const char *root, uint64_t seed, uint64_t *ver)
{
    return tsrv_publish_wd(root, "widedeep", seed, 6, 5, ver);
}

/* Expected probabilities of the test request's candidates, scored in process. */
static void expected_probs(const wd_model *m, float *out)
{
    wd_scratch *s = wd_scratch_new(m, 4);
    feat_value ctx[5] = {{FEAT_V_NUM, NULL, 0, 0.3}, {FEAT_V_MISSING, NULL, 0, 0}, {FEAT_V_STR, "b", 1, 0},
                         {FEAT_V_MISSING, NULL, 0, 0}, {FEAT_V_MISSING, NULL, 0, 0}};
    feat_value cand[4 * 5];
    memset(cand, 0, sizeof cand);
    cand[0 * 5 + 3] = (feat_value){FEAT_V_STR, "k1", 2, 0};
    cand[0 * 5 + 1] = (feat_value){FEAT_V_NUM, NULL, 0, -1};
    cand[1 * 5 + 3] = (feat_value){FEAT_V_STR, "k2", 2, 0};
    cand[1 * 5 + 2] = (feat_value){FEAT_V_STR, "zz-unknown", 10, 0};
    cand[2 * 5 + 3] = (feat_value){FEAT_V_STR, "7", 1, 0};
    cand[2 * 5 + 1] = (feat_value){FEAT_V_STR, "2.5", 3, 0};
    /* candidate 3: no features at all */
    ASSERT_OK(wd_score(m, s, ctx, cand, 4, NULL));
    memcpy(out, s->prob, 4 * sizeof(float));
    wd_scratch_free(s);
}

static const char *RANK_BODY =
    "{\"user_id\":\"u1\",\"k\":3,"
    "\"context\":{\"x1\":0.3,\"c1\":\"b\",\"not_a_column\":[1]},"
    "\"candidates\":[{\"item_id\":\"a\",\"features\":{\"c2\":\"k1\",\"x2\":-1}},"
    "{\"item_id\":\"b\",\"features\":{\"c2\":\"k2\",\"c1\":\"zz-unknown\"}},"
    "{\"item_id\":\"c\",\"features\":{\"c2\":7,\"x2\":\"2.5\",\"y\":\"1\"}},"
    "{\"item_id\":\"d\"}]}";

static void check_ranked(json_t *ans, const float *want, const char *version)
{
    ASSERT(ans != NULL);
    const json_t *items = json_object_get(ans, "items");
    ASSERT_EQ(json_array_size(items), 3);
    ASSERT_STR_EQ(json_string_value(json_object_get(ans, "model")), "widedeep");
    ASSERT_STR_EQ(json_string_value(json_object_get(ans, "version")), version);
    ASSERT_STR_EQ(json_string_value(json_object_get(ans, "user_id")), "u1");
    ASSERT(json_string_length(json_object_get(ans, "request_id")) > 0);
    /* the expected order: candidates by probability, best first */
    int order[4] = {0, 1, 2, 3};
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (want[order[j]] > want[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    double last = 2;
    for (size_t i = 0; i < 3; i++) {
        const json_t *it = json_array_get(items, i);
        char id[2] = {(char)('a' + order[i]), 0};
        ASSERT_STR_EQ(json_string_value(json_object_get(it, "item_id")), id);
        double p = json_number_value(json_object_get(it, "probability"));
        double z = json_number_value(json_object_get(it, "score"));
        ASSERT_NEAR(p, want[order[i]], 1e-5);
        ASSERT_NEAR(p, 1 / (1 + exp(-z)), 1e-5);
        ASSERT(p <= last);
        last = p;
    }
}

static void expect_problem(const tsrv *s, const char *body, long status, const char *detail)
{
    json_t *a = tsrv_post(s, "/v1/rank", body, status);
    ASSERT(a != NULL);
    ASSERT_CONTAINS(json_string_value(json_object_get(a, "detail")), detail);
    ASSERT(json_string_length(json_object_get(a, "request_id")) > 0);
    json_decref(a);
}

TEST_TIMEOUT(wd_server_rank, 120)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    mkdir(root, 0755);
    tsrv_make_snapshot(root, "gru4rec", 50, 8, 3);
    uint64_t ver;
    wd_model *m = publish_model(root, 21, &ver);
    ASSERT_EQ(ver, 1);
    float want[4];
    expected_probs(m, want);
    tsrv s;
    /* gru4rec first: /v1/rank must find the widedeep model by itself */
    tsrv_start(&s, "\"snapshots.models\":[\"gru4rec\",\"widedeep\"]", 1);
    json_t *ans = tsrv_post(&s, "/v1/rank", RANK_BODY, 200);
    check_ranked(ans, want, "1");
    json_decref(ans);
    /* naming the model works too; a gru4rec model does not rank */
    char body[2048];
    snprintf(body, sizeof body, "{\"model\":\"widedeep\",%s", RANK_BODY + 1);
    ans = tsrv_post(&s, "/v1/rank", body, 200);
    check_ranked(ans, want, "1");
    json_decref(ans);
    /* k larger than the candidates is clamped */
    ans = tsrv_post(&s, "/v1/rank", "{\"k\":50,\"candidates\":[{\"item_id\":\"x\"},{\"item_id\":\"y\"}]}", 200);
    ASSERT_EQ(json_array_size(json_object_get(ans, "items")), 2);
    json_decref(ans);

    expect_problem(&s, "{\"model\":\"gru4rec\",\"candidates\":[{\"item_id\":\"a\"}]}", 422, "cannot answer /v1/rank: no `rank` capability");
    expect_problem(&s, "{\"model\":\"nope\",\"candidates\":[{\"item_id\":\"a\"}]}", 404, "no model 'nope'");
    expect_problem(&s, "{\"candidates\":[{\"item_id\":\"a\",\"features\":{\"x2\":\"tall\"}}]}", 422,
                   "candidates[0].features.x2: \"tall\" is not a number");
    expect_problem(&s, "{\"context\":{\"x1\":\"?\"},\"candidates\":[{\"item_id\":\"a\",\"features\":{\"c1\":true}}]}",
                   400, "candidates[0].features.c1: expected a string, a number or null");
    expect_problem(&s, "{\"context\":{\"x1\":{}},\"candidates\":[{\"item_id\":\"a\"}]}", 400, "context.x1");
    expect_problem(&s, "{\"context\":[],\"candidates\":[{\"item_id\":\"a\"}]}", 400, "context: expected an object");
    expect_problem(&s, "{\"candidates\":{}}", 400, "candidates: expected an array");
    expect_problem(&s, "{\"candidates\":[]}", 422, "candidates: 0 given");
    expect_problem(&s, "{}", 422, "candidates: required");
    expect_problem(&s, "{\"candidates\":[7]}", 400, "candidates[0]: expected an object");
    expect_problem(&s, "{\"candidates\":[{\"features\":{}}]}", 422, "candidates[0].item_id: required");
    expect_problem(&s, "{\"candidates\":[{\"item_id\":5}]}", 400, "candidates[0].item_id: expected a string");
    expect_problem(&s, "{\"candidates\":[{\"item_id\":\"\"}]}", 422, "candidates[0].item_id: length 0");
    expect_problem(&s, "{\"candidates\":[{\"item_id\":\"a\",\"extra\":1}]}", 422, "unknown field 'extra'");
    expect_problem(&s, "{\"candidates\":[{\"item_id\":\"a\"}],\"k\":0}", 422, "k: 0 is outside");
    expect_problem(&s, "{\"candidates\":[{\"item_id\":\"a\"}],\"k\":2.5}", 400, "k: expected an integer");
    expect_problem(&s, "{\"candidates\":[{\"item_id\":\"a\"}],\"user_id\":1}", 400, "user_id: expected a string");
    expect_problem(&s, "{\"candidates\":[{\"item_id\":\"a\"}],\"colour\":1}", 422, "unknown field 'colour'");
    expect_problem(&s, "{\"candidates\":[{\"item_id\":\"a\"}]", 400, "invalid JSON");
    expect_problem(&s, "[1]", 400, "must be a JSON object");
    expect_problem(&s, "{\"candidates\":[{\"item_id\":\"a\",\"item_id\":\"b\"}]}", 400, "duplicate");
    expect_problem(&s, "{\"candidates\":[[[[[[[[[[[[1]]]]]]]]]]]]}", 400, "");

    /* strings with escapes are decoded (item ids echo back as sent; "\u0062" is the category b) */
    ans = tsrv_post(&s, "/v1/rank",
                    "{\"user_id\":\"u\\\"1\",\"context\":{\"c1\":\"\\u0062\",\"x1\":0.3},\"candidates\":["
                    "{\"item_id\":\"\\u00e9t\\u00e9 \\ud83d\\ude00\\n\",\"features\":{\"c2\":\"k1\",\"x2\":-1}}]}", 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(ans, "items"), 0), "item_id")),
                  "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80\n");
    ASSERT_STR_EQ(json_string_value(json_object_get(ans, "user_id")), "u\"1");
    ASSERT_NEAR(json_number_value(json_object_get(json_array_get(json_object_get(ans, "items"), 0), "probability")),
                want[0], 1e-5);
    json_decref(ans);
    expect_problem(&s, "{\"candidates\":[{\"item_id\":\"a\"}]} x", 400, "trailing characters");
    expect_problem(&s, "{\"candidates\":[{\"item_id\":\"\\ud83d\"}]}", 400, "unpaired surrogate");
    expect_problem(&s, "{\"candidates\":[{\"item_id\":\"\xff\"}]}", 400, "invalid UTF-8");
    expect_problem(&s, "{\"candidates\":[{\"item_id\":\"a\"}],\"k\":01}", 400, "invalid JSON");
    expect_problem(&s, "{\"context\":{\"x1\":1,\"x1\":2},\"candidates\":[{\"item_id\":\"a\"}]}", 400,
                   "context.x1: duplicate key");
    expect_problem(&s, "{\"k\":1,\"k\":2,\"candidates\":[{\"item_id\":\"a\"}]}", 400, "duplicate key 'k'");

    /* hot swap: a new version with other weights serves without a restart */
    wd_model *m2 = publish_model(root, 77, &ver);
    ASSERT_EQ(ver, 2);
    float want2[4];
    expected_probs(m2, want2);
    int swapped = 0;
    for (int i = 0; i < 200 && !swapped; i++) {
        ans = tsrv_post(&s, "/v1/rank", RANK_BODY, 200);
        swapped = strcmp(json_string_value(json_object_get(ans, "version")), "2") == 0;
        if (swapped) check_ranked(ans, want2, "2");
        json_decref(ans);
        if (!swapped) tsrv_sleep_ms(50);
    }
    ASSERT(swapped);
    ASSERT_EQ(tsrv_stop(&s), 0);
    wd_model_free(m);
    wd_model_free(m2);
}

/* Publish a random model of TSRV_WD_SPEC with hidden sizes (h0, h1) as ROOT/name/1. */
static wd_model *publish_named(const char *root, const char *name, uint64_t seed, int h0, int h1)
{
    return tsrv_publish_wd(root, name, seed, h0, h1, NULL);
}

TEST_TIMEOUT(wd_server_rank_alternating_models, 120)
{
    /* Two widedeep models of different shapes served by the same HTTP threads, requests alternating
     * between them (the arms of an experiment): each answer must be its own model's (each thread keeps
     * one scratch per model version, not one it remakes or, worse, shares across shapes). */
    char root[1024];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    mkdir(root, 0755);
    wd_model *ma = publish_named(root, "wda", 5, 6, 5), *mb = publish_named(root, "wdb", 6, 17, 3);
    float wa[4], wb[4];
    expected_probs(ma, wa);
    expected_probs(mb, wb);
    tsrv s;
    tsrv_start(&s, "\"snapshots.models\":[\"wda\",\"wdb\"],\"http.threads\":2", 1);
    char body[2048];
    for (int i = 0; i < 24; i++) {
        int b = (i / 3) % 2; /* a a a b b b a a a ... */
        snprintf(body, sizeof body, "{\"model\":\"%s\",%s", b ? "wdb" : "wda", RANK_BODY + 1);
        json_t *ans = tsrv_post(&s, "/v1/rank", body, 200);
        const json_t *items = json_object_get(ans, "items");
        ASSERT_EQ(json_array_size(items), 3);
        ASSERT_STR_EQ(json_string_value(json_object_get(ans, "model")), b ? "wdb" : "wda");
        for (size_t k = 0; k < 3; k++) {
            const json_t *it = json_array_get(items, k);
            int c = json_string_value(json_object_get(it, "item_id"))[0] - 'a';
            ASSERT(c >= 0 && c < 4);
            ASSERT_NEAR(json_number_value(json_object_get(it, "probability")), b ? wb[c] : wa[c], 1e-5);
        }
        json_decref(ans);
    }
    /* without "model": the first configured widedeep model */
    json_t *ans = tsrv_post(&s, "/v1/rank", RANK_BODY, 200);
    ASSERT_STR_EQ(json_string_value(json_object_get(ans, "model")), "wda");
    json_decref(ans);
    ASSERT_EQ(tsrv_stop(&s), 0);
    wd_model_free(ma);
    wd_model_free(mb);
}

int route_rank(http_req *r);

/* An in-process server (no HTTP) over the widedeep snapshot under test_tmpdir(). */
static void inproc_start(server *srv)
{
    const char *names[] = {"widedeep"};
    memset(srv, 0, sizeof *srv);
    srv->limits = api_limits_default();
    srv->reg = registry_new(test_tmpdir(), names, 1);
    ASSERT(srv->reg != NULL);
    ASSERT_EQ(registry_scan(srv->reg, NULL, 0), 1);
}

/* POST body to route_rank as a new connection; the status, the answer in out. */
static int inproc_rank(server *srv, const char *body, sbuf *out)
{
    http_req *r = http_detached_new(srv);
    ASSERT(r != NULL);
    r->body = body;
    r->body_len = strlen(body);
    r->out = out;
    r->path = "/v1/rank";
    strcpy(r->request_id, "t");
    sbuf_reset(out);
    route_rank(r);
    int status = r->status;
    http_detached_free(r);
    return status;
}

TEST(wd_rank_fresh_connection_stale_memory)
{
    /* A connection's job is new, its duplicate-key stamps are not: the stamps array came from realloc,
     * and with glibc it is the memory a closed connection's stamps (or anything else) had just freed.
     * Here freed 64-byte blocks full of 1s (the stamp of a request's "context") stand for them; the
     * context's "x" was refused as a duplicate key before the stamps were zeroed. (Under ASan the
     * allocator does not hand the block back at once: the test then passes either way.) */
    static const char *spec_text =
        "{\"columns\":[\"p0\",\"p1\",\"p2\",\"p3\",\"p4\",\"x\",\"c\",\"y\"],\"label\":\"y\",\"label_positive\":[\"1\"],"
        "\"features\":[{\"name\":\"x\",\"type\":\"numeric\",\"wide\":true,\"deep\":\"dense\"},"
        "{\"name\":\"c\",\"type\":\"categorical\",\"vocab\":[\"u\",\"v\"],\"wide\":true,\"deep\":\"onehot\"}]}";
    json_t *j = json_loads(spec_text, 0, NULL);
    ASSERT(j != NULL);
    feat_spec *sp;
    ASSERT_OK(feat_spec_from_json(&sp, j));
    json_decref(j);
    wd_hparams hp = tsrv_wd_hparams(WD_BOTH);
    hp.nhidden = 1;
    wd_model *m;
    ASSERT_OK(wd_model_new(&m, sp, &hp));
    ASSERT_OK(wd_save(m, test_tmpdir(), 0, NULL, NULL));
    wd_model_free(m);
    server srv;
    inproc_start(&srv);
    static char body[] = "{\"context\":{\"x\":1.5},\"candidates\":[{\"item_id\":\"a\",\"features\":{\"c\":\"u\"}},"
                         "{\"item_id\":\"b\",\"features\":{\"c\":\"v\",\"x\":-2}}]}";
    sbuf out;
    sbuf_init(&out);
    for (int trial = 0; trial < 4; trial++) {
        enum { NB = 12 };
        uint32_t *blk[NB];
        for (int b = 0; b < NB; b++) {
            blk[b] = malloc(64);
            ASSERT(blk[b] != NULL);
            for (int e = 0; e < 16; e++) blk[b][e] = 1;
        }
        for (int b = 0; b < NB; b++) free(blk[b]);
        int st = inproc_rank(&srv, body, &out); /* a new connection: no slot yet */
        if (st != 200) FAIL("trial %d: status %d: %.*s", trial, st, (int)out.len, out.data);
    }
    sbuf_release(&out);
    registry_free(srv.reg);
}

TEST(wd_rank_number_ranges)
{
    /* A finite double that is inf as a float model input gave NaN scores ("score":null) with 200; a
     * long integer (finite as a double) was "out of range" even for a categorical. */
    feat_spec *sp = tsrv_wd_spec();
    wd_hparams hp = tsrv_wd_hparams(WD_BOTH);
    wd_model *m;
    ASSERT_OK(wd_model_new(&m, sp, &hp));
    ASSERT_OK(wd_save(m, test_tmpdir(), 0, NULL, NULL));
    wd_model_free(m);
    server srv;
    inproc_start(&srv);
    sbuf out;
    sbuf_init(&out);
    char body[1024];
    snprintf(body, sizeof body, "{\"candidates\":[{\"item_id\":\"a\",\"features\":{\"x2\":1e300}}]}");
    ASSERT_EQ(inproc_rank(&srv, body, &out), 422);
    ASSERT_CONTAINS(out.data, "column 'x2'");
    ASSERT_CONTAINS(out.data, "out of range");
    snprintf(body, sizeof body, "{\"candidates\":[{\"item_id\":\"a\",\"features\":{\"x2\":\"-2e39\"}}]}");
    ASSERT_EQ(inproc_rank(&srv, body, &out), 422);
    /* x1 feeds a raw numeric and buckets: a big x1 is refused too; 3e38 still fits a float */
    snprintf(body, sizeof body, "{\"candidates\":[{\"item_id\":\"a\",\"features\":{\"x1\":3e38,\"x2\":0}}]}");
    ASSERT_EQ(inproc_rank(&srv, body, &out), 200);
    /* a 70-digit integer for the hashed categorical c2 is its text: 200 */
    snprintf(body, sizeof body, "{\"candidates\":[{\"item_id\":\"a\",\"features\":{\"c2\":1%070d}}]}", 0);
    if (inproc_rank(&srv, body, &out) != 200) FAIL("%s -> %.*s", body, (int)out.len, out.data);
    ASSERT(strstr(out.data, "null") == NULL);
    sbuf_release(&out);
    registry_free(srv.reg);
}
