/* tests/test_server_ratings.c - the rating routes in the real server (server/ratings.h): POST /v1/ratings
 * and GET /v1/users/{id}/recommendations answered by biased MF snapshots made here (biasedmf_new +
 * biasedmf_save with a rating_base part built in the test), checked against biasedmf_predict and a naive
 * top-k over every item; unknown users and items flagged; every route over one keep-alive connection;
 * the 400/404/405/413/414/415/422 answers; a hot swap while serving; experiments on both routes (arms = two
 * biasedmf models) with their impressions in the event store (none for HEAD), and an experiment whose
 * control lacks the capability. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core/idmap.h"
#include "core/rng.h"
#include "core/sbuf.h"
#include "models/biasedmf.h"
#include "models/rating_base.h"
#include "server/evstore.h"
#include "server/experiment.h"
#include "server/route.h"
#include "tests/test_server_util.h"
#include "tests/testlib.h"

/* ---- the models of these tests ----
 * U users "u0".."u29" (user 5 is "a b%\u00e9": a path segment that needs percent-encoding), N items
 * "i0".."i39", F factors. User u rated 3 + u % 5 items, (7u + 11j) % N for j < that (distinct: 11 is
 * prime to 40), sorted. Factors N(0, 0.8^2) and non-zero biases: predictions spread beyond [1, 5], so
 * clipping shows. */
enum { U = 30, N = 40, F = 6 };
#define SPECIAL_USER "a b%\xc3\xa9"
#define SPECIAL_PATH "a%20b%25%C3%A9"

typedef struct mf_fixture {
    idmap *users, *items;
    int64_t offsets[U + 1];
    int32_t rated[U * 8]; /* by user, sorted */
    int32_t popular[N];   /* by number of ratings, most first, ties by index */
} mf_fixture;

static const char *user_id(int u, char *buf, size_t cap)
{
    if (u == 5) snprintf(buf, cap, "%s", SPECIAL_USER);
    else snprintf(buf, cap, "u%d", u);
    return buf;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void fixture_init(mf_fixture *fx)
{
    fx->users = idmap_new(U);
    fx->items = idmap_new(N);
    ASSERT(fx->users && fx->items);
    char id[32];
    for (int u = 0; u < U; u++) {
        user_id(u, id, sizeof id);
        ASSERT_EQ(idmap_intern(fx->users, id, strlen(id)), u);
    }
    for (int i = 0; i < N; i++) {
        int n = snprintf(id, sizeof id, "i%d", i);
        ASSERT_EQ(idmap_intern(fx->items, id, (size_t)n), i);
    }
    int count[N] = {0};
    int64_t at = 0;
    for (int u = 0; u < U; u++) {
        fx->offsets[u] = at;
        int c = 3 + u % 5;
        for (int j = 0; j < c; j++) fx->rated[at + j] = (int32_t)((7 * u + 11 * j) % N);
        qsort(fx->rated + at, (size_t)c, sizeof(int32_t), cmp_i32);
        for (int j = 0; j < c; j++) count[fx->rated[at + j]]++;
        at += c;
    }
    fx->offsets[U] = at;
    for (int k = 0; k < N; k++) { /* selection: most ratings first, lower index on ties */
        int best = -1;
        for (int i = 0; i < N; i++) {
            int used = 0;
            for (int j = 0; j < k; j++) used |= fx->popular[j] == i;
            if (!used && (best < 0 || count[i] > count[best])) best = i;
        }
        fx->popular[k] = best;
    }
}

static void fixture_free(mf_fixture *fx)
{
    idmap_free(fx->users);
    idmap_free(fx->items);
}

/* A biased MF model of the fixture from seed, published as ROOT/NAME/<next version> (*version). */
static biasedmf *publish_mf(const mf_fixture *fx, const char *root, const char *name, uint64_t seed, uint64_t *version)
{
    biasedmf *m = biasedmf_new(U, N, F, 3.5, 0.8, seed);
    ASSERT(m != NULL);
    float *slab = biasedmf_slab(m); /* mu (1) | bu (U) | bi (N) | P (U,F) | Q (N,F) */
    ASSERT(slab != NULL);
    for (int u = 0; u < U; u++) slab[1 + u] = 0.05f * (float)((u + (int)seed) % 5 - 2);
    for (int i = 0; i < N; i++) slab[1 + U + i] = 0.1f * (float)((i * 3 + (int)seed) % 7 - 3);
    rating_base_src src = {.users = fx->users,
                           .items = fx->items,
                           .offsets = fx->offsets,
                           .items_by_user = fx->rated,
                           .default_rating = 3,
                           .rmin = 1,
                           .rmax = 5,
                           .mean = 3.5f};
    mkdir(root, 0755);
    uint64_t v = 0;
    ASSERT_OK(biasedmf_save(m, &src, root, name, NULL, &v));
    if (version) *version = v;
    return m;
}

/* biasedmf_predict of user u (-1: unknown) for items[0..n) (-1: unknown). */
static void predict(const biasedmf *m, int u, const int32_t *items, int n, float *out, uint8_t *fb)
{
    int32_t users[64] = {0};
    float ratings[64] = {0};
    ASSERT(n <= 64);
    for (int i = 0; i < n; i++) users[i] = u;
    rb_triples t = {.n = n, .user = users, .item = items, .rating = ratings};
    biasedmf_predict(m, &t, 3.0f, out, fb);
}

static float clip(float y)
{
    return y < 1 ? 1 : y > 5 ? 5 : y;
}

/* The naive top-k of user u: every item predicted, its rated ones left out when exclude, best first
 * (ties: lower index). Returns how many. */
static int naive_topk(const mf_fixture *fx, const biasedmf *m, int u, int k, int exclude, int32_t *idx)
{
    int32_t all[N];
    float pred[N] = {0};
    for (int i = 0; i < N; i++) all[i] = i;
    predict(m, u, all, N, pred, NULL);
    int got = 0;
    while (got < k) {
        int best = -1;
        for (int i = 0; i < N; i++) {
            int skip = 0;
            for (int j = 0; j < got; j++) skip |= idx[j] == i;
            for (int64_t j = fx->offsets[u]; exclude && j < fx->offsets[u + 1]; j++) skip |= fx->rated[j] == i;
            if (!skip && (best < 0 || pred[i] > pred[best])) best = i;
        }
        if (best < 0) break;
        idx[got++] = best;
    }
    return got;
}

/* ---- HTTP ---- */
static json_t *req(tconn *c, const char *method, const char *path, const char *body, long want)
{
    tresp r;
    ASSERT_EQ(tconn_http(c, method, path, body, body ? strlen(body) : 0, NULL, &r), 0);
    if (r.status != want) FAIL("%s %s %s: status %ld, want %ld: %s", method, path, body ? body : "", r.status, want, r.body);
    if (c->requests > 1 && r.num_connects != 0) FAIL("%s %s: the keep-alive connection was not reused", method, path);
    json_t *j = r.json ? json_incref(r.json) : NULL;
    tresp_free(&r);
    ASSERT(j != NULL);
    return j;
}

static int item_index(const char *id)
{
    ASSERT(id && id[0] == 'i');
    return atoi(id + 1);
}

/* The answer of POST /v1/ratings for user u (-1: an unknown user) and items ids[0..n) equals the model's
 * predictions (clipped when clipped), in request order, unknown ones flagged with the default 3. */
static void expect_ratings(const json_t *ans, const biasedmf *m, int u, const char *const *ids, int n, int clipped)
{
    int32_t idx[64] = {0};
    float pred[64] = {0};
    uint8_t fb[64] = {0};
    for (int i = 0; i < n; i++) idx[i] = ids[i][0] == 'i' && atoi(ids[i] + 1) < N ? atoi(ids[i] + 1) : -1;
    predict(m, u, idx, n, pred, fb);
    const json_t *rs = json_object_get(ans, "ratings");
    ASSERT_EQ(json_array_size(rs), (size_t)n);
    for (int i = 0; i < n; i++) {
        const json_t *r = json_array_get(rs, (size_t)i);
        ASSERT_STR_EQ(tsrv_jstr(r, "item_id"), ids[i]);
        float want = clipped ? clip(pred[i]) : pred[i];
        ASSERT_NEAR(json_number_value(json_object_get(r, "rating")), want, 1e-5 * (1 + fabsf(want)));
        int unknown = u < 0 || idx[i] < 0;
        ASSERT_EQ(fb[i], unknown);
        if (unknown) {
            ASSERT(json_is_true(json_object_get(r, "fallback")));
            ASSERT_NEAR(json_number_value(json_object_get(r, "rating")), 3, 0);
        } else {
            ASSERT(json_object_get(r, "fallback") == NULL);
        }
    }
}

/* The answer of the recommendations of known user u: the naive top-k, with the predicted (clipped)
 * ratings, and scores that differ from the unclipped predictions by one constant (the user's). */
static void expect_recs(const json_t *ans, const mf_fixture *fx, const biasedmf *m, int u, int k, int exclude)
{
    int32_t want[N] = {0};
    int n = naive_topk(fx, m, u, k, exclude, want);
    float pred[N] = {0};
    predict(m, u, want, n, pred, NULL);
    const json_t *items = json_object_get(ans, "items");
    if (json_array_size(items) != (size_t)n) FAIL("%zu items, want %d", json_array_size(items), n);
    ASSERT(json_object_get(ans, "fallback") == NULL);
    double shift = 0;
    for (int i = 0; i < n; i++) {
        const json_t *it = json_array_get(items, (size_t)i);
        int got = item_index(tsrv_jstr(it, "item_id"));
        if (got != want[i]) FAIL("user %d rank %d: i%d, want i%d", u, i, got, want[i]);
        ASSERT_NEAR(json_number_value(json_object_get(it, "rating")), clip(pred[i]), 1e-5 * 5);
        double d = pred[i] - json_number_value(json_object_get(it, "score"));
        if (i == 0) shift = d;
        ASSERT_NEAR(d, shift, 1e-4);
    }
}

/* The popular fallback: the fixture's most popular items, null scores, flagged. */
static void expect_popular(const json_t *ans, const mf_fixture *fx, int k)
{
    const json_t *items = json_object_get(ans, "items");
    ASSERT_EQ(json_array_size(items), (size_t)k);
    ASSERT(json_is_string(json_object_get(ans, "fallback")) && strcmp(json_string_value(json_object_get(ans, "fallback")), "popular") == 0);
    for (int i = 0; i < k; i++) {
        const json_t *it = json_array_get(items, (size_t)i);
        ASSERT_EQ(item_index(tsrv_jstr(it, "item_id")), fx->popular[i]);
        ASSERT(json_is_null(json_object_get(it, "score")));
    }
}

static void snap_root(char *root, size_t cap)
{
    snprintf(root, cap, "%s/snapshots", test_tmpdir());
    mkdir(root, 0755);
}

/* ---- the tests ---- */
TEST(server_ratings_answers)
{
    mf_fixture fx;
    fixture_init(&fx);
    char root[1024];
    snap_root(root, sizeof root);
    biasedmf *m = publish_mf(&fx, root, "biasedmf", 1, NULL);
    tsrv s;
    tsrv_start(&s, "\"snapshots.models\":[\"biasedmf\"]", 1);
    tconn c;
    tconn_open(&c, &s);

    /* ratings in request order, a repeated id twice, unknown ids flagged with the default */
    const char *ids[] = {"i1", "zz", "i7", "i1", "i39"};
    json_t *a = req(&c, "POST", "/v1/ratings", "{\"user_id\":\"u3\",\"item_ids\":[\"i1\",\"zz\",\"i7\",\"i1\",\"i39\"]}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "model"), "biasedmf");
    ASSERT_STR_EQ(tsrv_jstr(a, "version"), "1");
    ASSERT_STR_EQ(tsrv_jstr(a, "user_id"), "u3");
    ASSERT(json_string_length(json_object_get(a, "request_id")) > 0);
    expect_ratings(a, m, 3, ids, 5, 1);
    json_decref(a);
    /* clip false: the raw predictions, some outside [1, 5] across the users */
    int outside = 0;
    for (int u = 0; u < U; u++) {
        char body[256], uid[32];
        const char *all[] = {"i0", "i5", "i10", "i15", "i20", "i25", "i30", "i35"};
        snprintf(body, sizeof body,
                 "{\"user_id\":\"%s\",\"clip\":false,\"item_ids\":[\"i0\",\"i5\",\"i10\",\"i15\",\"i20\",\"i25\","
                 "\"i30\",\"i35\"]}",
                 u == 5 ? "a b%\\u00e9" : user_id(u, uid, sizeof uid));
        a = req(&c, "POST", "/v1/ratings", body, 200);
        expect_ratings(a, m, u, all, 8, 0);
        const json_t *rs = json_object_get(a, "ratings");
        for (size_t i = 0; i < json_array_size(rs); i++) {
            double y = json_number_value(json_object_get(json_array_get(rs, i), "rating"));
            outside += y < 1 || y > 5;
        }
        json_decref(a);
    }
    ASSERT(outside > 0); /* the clipping above was tested on something */
    /* an unknown user: every item the default, flagged */
    const char *two[] = {"i1", "i2"};
    a = req(&c, "POST", "/v1/ratings", "{\"user_id\":\"nobody\",\"item_ids\":[\"i1\",\"i2\"]}", 200);
    expect_ratings(a, m, -1, two, 2, 1);
    json_decref(a);

    /* recommendations: the naive top-k without the rated items, then with them */
    for (int u = 0; u < U; u += 4) {
        char path[128];
        snprintf(path, sizeof path, "/v1/users/u%d/recommendations?k=5", u);
        a = req(&c, "GET", path, NULL, 200);
        ASSERT_STR_EQ(tsrv_jstr(a, "model"), "biasedmf");
        char uid[16];
        snprintf(uid, sizeof uid, "u%d", u);
        ASSERT_STR_EQ(tsrv_jstr(a, "user_id"), uid);
        expect_recs(a, &fx, m, u, 5, 1);
        json_decref(a);
        snprintf(path, sizeof path, "/v1/users/u%d/recommendations?exclude_seen=false&k=7", u);
        a = req(&c, "GET", path, NULL, 200);
        expect_recs(a, &fx, m, u, 7, 0);
        json_decref(a);
    }
    /* k beyond the eligible items: all of them (40 items, user 4 rated 7) */
    a = req(&c, "GET", "/v1/users/u4/recommendations?k=1000", NULL, 200);
    ASSERT_EQ(json_array_size(json_object_get(a, "items")), N - 7);
    expect_recs(a, &fx, m, 4, N, 1);
    json_decref(a);
    /* the default k (20) */
    a = req(&c, "GET", "/v1/users/u1/recommendations", NULL, 200);
    expect_recs(a, &fx, m, 1, 20, 1);
    json_decref(a);
    /* a percent-encoded id: decoded once ("a b%\u00e9"), the known user 5 */
    a = req(&c, "GET", "/v1/users/" SPECIAL_PATH "/recommendations?k=3", NULL, 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "user_id"), SPECIAL_USER);
    expect_recs(a, &fx, m, 5, 3, 1);
    json_decref(a);
    /* an unknown user: the popular items, flagged (never 404: a new user is normal) */
    a = req(&c, "GET", "/v1/users/somebody-new/recommendations?k=4", NULL, 200);
    expect_popular(a, &fx, 4);
    json_decref(a);
    a = req(&c, "GET", "/v1/users/a%2525/recommendations?k=2", NULL, 200); /* "a%25" exactly, not "a%" */
    ASSERT_STR_EQ(tsrv_jstr(a, "user_id"), "a%25");
    json_decref(a);

    /* the query string's problems */
    static const struct {
        const char *path;
        long st;
        const char *detail;
    } E[] = {
        {"/v1/users/u1/recommendations?k=0", 422, "k: 0 is outside [1, 1000]"},
        {"/v1/users/u1/recommendations?k=1001", 422, "k: 1001 is outside [1, 1000]"},
        {"/v1/users/u1/recommendations?k=ten", 400, "k: expected an integer, got 'ten'"},
        {"/v1/users/u1/recommendations?k=1&k=2", 400, "duplicate parameter 'k'"},
        {"/v1/users/u1/recommendations?kk=3", 422, "unknown parameter 'kk'"},
        {"/v1/users/u1/recommendations?exclude_seen=no", 400, "exclude_seen: expected true or false, got 'no'"},
        {"/v1/users/u1/recommendations?model=nope", 404, "no model 'nope' is configured"},
        {"/v1/users/u1/recommendations?experiment=nope", 404, "no experiment 'nope' is configured"},
        {"/v1/users/u1/recommendations?&kk=3", 422, "unknown parameter 'kk'"}, /* not "unknown parameter ''" */
    };
    for (size_t i = 0; i < sizeof E / sizeof E[0]; i++) {
        a = req(&c, "GET", E[i].path, NULL, E[i].st);
        ASSERT_CONTAINS(tsrv_jstr(a, "detail"), E[i].detail);
        json_decref(a);
    }
    /* arguments without a name are ignored, wherever the empty one sits (a trailing '&' always was) */
    static const char *const empty_names[] = {
        "/v1/users/u1/recommendations?&k=3",
        "/v1/users/u1/recommendations?k=3&&exclude_seen=true",
        "/v1/users/u1/recommendations?k=3&",
        "/v1/users/u1/recommendations?=5&k=3",
        "/v1/users/u1/recommendations?&&k=3&&&&&&&&&&model=biasedmf&&", /* not counted against RECS_MAX_ARGS */
    };
    for (size_t i = 0; i < sizeof empty_names / sizeof empty_names[0]; i++) {
        a = req(&c, "GET", empty_names[i], NULL, 200);
        expect_recs(a, &fx, m, 1, 3, 1);
        json_decref(a);
    }
    /* path ids: up to limits.max_id_len (256) bytes reach the route (an unknown user: the popular items),
     * longer ones are the route's 422, and a segment over 1023 bytes the router's 414 naming the limit */
    {
        static const size_t lens[] = {120, 128, 200, 256, 257, 1023, 1024, 1100};
        char path[1300], id[1101];
        for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
            size_t len = lens[t];
            memset(id, 'a', len);
            id[len] = '\0';
            snprintf(path, sizeof path, "/v1/users/%s/recommendations?k=2", id);
            long want = len <= 256 ? 200 : len <= 1023 ? 422 : 414;
            a = req(&c, "GET", path, NULL, want);
            if (want == 200) {
                ASSERT_STR_EQ(tsrv_jstr(a, "user_id"), id);
                expect_popular(a, &fx, 2);
            } else if (want == 422) {
                char d[64];
                snprintf(d, sizeof d, "user id: length %zu outside [1, 256]", len);
                ASSERT_STR_EQ(tsrv_jstr(a, "detail"), d);
            } else {
                char d[160];
                snprintf(d, sizeof d,
                         "path parameter {id} of /v1/users/{id}/recommendations is %zu bytes long: a path parameter "
                         "is at most 1023 bytes",
                         len);
                ASSERT_STR_EQ(tsrv_jstr(a, "detail"), d);
                ASSERT_STR_EQ(tsrv_jstr(a, "type"), "urn:recd:problem:uri-too-long");
            }
            json_decref(a);
        }
    }
    tconn_close(&c);

    /* the routes' metrics */
    ASSERT(tsrv_metric(&s, "recd_ratings_predicted_total") >= 5 + 8 * U + 2);
    ASSERT(tsrv_metric(&s, "recd_ratings_fallback_total") >= 1 + 2);
    ASSERT(tsrv_metric(&s, "recd_ratings_clipped_total") >= 0);
    ASSERT(tsrv_metric(&s, "recd_recommend_fallback_total") >= 1);
    ASSERT(tsrv_metric(&s, "recd_recommend_answers_total") >= 20);
    ASSERT(tsrv_metric(&s, "recd_recommend_item_matrix_total") >= 19);
    ASSERT(tsrv_metric(&s, "recd_http_requests_total{route=\"/v1/users/{id}/recommendations\",status=\"200\"}") >= 20);
    ASSERT(tsrv_metric(&s, "recd_http_requests_total{route=\"/v1/ratings\",status=\"200\"}") >= U + 2);
    ASSERT_EQ(tsrv_stop(&s), 0);
    biasedmf_free(m);
    fixture_free(&fx);
}

/* Every route over one keep-alive connection in mixed order, beside a gru4rec and a widedeep model; the
 * answers of a request with a wrong content type, bad JSON, a model without the capability, too many
 * ids, a body over the limit. */
TEST(server_ratings_one_connection)
{
    mf_fixture fx;
    fixture_init(&fx);
    char root[1024];
    snap_root(root, sizeof root);
    tsrv_make_snapshot(root, "gru4rec", 20, 16, 11);
    wd_model_free(tsrv_publish_wd(root, "widedeep", 21, 6, 5, NULL));
    biasedmf *m = publish_mf(&fx, root, "biasedmf", 1, NULL);
    tsrv s;
    tsrv_start(&s, "\"snapshots.models\":[\"gru4rec\",\"widedeep\",\"biasedmf\"]", 1);
    tconn c;
    tconn_open(&c, &s);
    const char *ids[] = {"i2", "i3"};
    /* without "model": the first configured model with the capability (gru4rec and widedeep lack it) */
    for (int round = 0; round < 3; round++) {
        for (int step = 0; step < 5; step++) {
            json_t *a;
            switch ((step + 2 * round) % 5) {
            case 0:
                a = req(&c, "POST", "/v1/next", "{\"items\":[\"i1\",\"i2\"],\"k\":3}", 200);
                ASSERT_STR_EQ(tsrv_jstr(a, "model"), "gru4rec");
                break;
            case 1:
                a = req(&c, "POST", "/v1/ratings", "{\"user_id\":\"u7\",\"item_ids\":[\"i2\",\"i3\"]}", 200);
                ASSERT_STR_EQ(tsrv_jstr(a, "model"), "biasedmf");
                expect_ratings(a, m, 7, ids, 2, 1);
                break;
            case 2:
                a = req(&c, "POST", "/v1/rank", "{\"candidates\":[{\"item_id\":\"a\"},{\"item_id\":\"b\"}]}", 200);
                ASSERT_STR_EQ(tsrv_jstr(a, "model"), "widedeep");
                break;
            case 3:
                a = req(&c, "GET", "/v1/users/u7/recommendations?k=4", NULL, 200);
                ASSERT_STR_EQ(tsrv_jstr(a, "model"), "biasedmf");
                expect_recs(a, &fx, m, 7, 4, 1);
                break;
            default:
                a = req(&c, "GET", "/healthz", NULL, 200);
                ASSERT_STR_EQ(tsrv_jstr(a, "status"), "ok");
                break;
            }
            json_decref(a);
        }
    }
    /* models without the capability */
    json_t *a = req(&c, "POST", "/v1/ratings", "{\"model\":\"gru4rec\",\"user_id\":\"u1\",\"item_ids\":[\"i1\"]}", 422);
    ASSERT_CONTAINS(tsrv_jstr(a, "detail"), "model 'gru4rec' (type gru4rec) cannot answer /v1/ratings: no `rate` capability");
    json_decref(a);
    a = req(&c, "GET", "/v1/users/u1/recommendations?model=widedeep", NULL, 422);
    ASSERT_CONTAINS(tsrv_jstr(a, "detail"), "cannot answer /v1/users/{id}/recommendations: no `recommend` capability");
    json_decref(a);
    a = req(&c, "POST", "/v1/next", "{\"model\":\"biasedmf\",\"items\":[\"i1\"]}", 422);
    ASSERT_CONTAINS(tsrv_jstr(a, "detail"), "no `next` capability");
    json_decref(a);
    /* an empty model or experiment name: 422 naming the field on every model route (not 404 "no model ''") */
    static const struct {
        const char *method, *path, *body, *detail;
    } EMPTY[] = {
        {"POST", "/v1/ratings", "{\"model\":\"\",\"user_id\":\"u1\",\"item_ids\":[\"i1\"]}",
         "model: length 0 outside [1, 256]"},
        {"POST", "/v1/ratings", "{\"experiment\":\"\",\"user_id\":\"u1\",\"item_ids\":[\"i1\"]}",
         "experiment: length 0 outside [1, 256]"},
        {"GET", "/v1/users/u1/recommendations?model=", NULL, "model: length 0 outside [1, 256]"},
        {"GET", "/v1/users/u1/recommendations?experiment=", NULL, "experiment: length 0 outside [1, 256]"},
        {"POST", "/v1/rank", "{\"model\":\"\",\"candidates\":[{\"item_id\":\"a\"}]}", "model: length 0 outside [1, 256]"},
        {"POST", "/v1/rank", "{\"experiment\":\"\",\"user_id\":\"u\",\"candidates\":[{\"item_id\":\"a\"}]}",
         "experiment: length 0 outside [1, 256]"},
        {"POST", "/v1/next", "{\"model\":\"\",\"items\":[\"i1\"]}", "'model' must not be empty"},
    };
    for (size_t i = 0; i < sizeof EMPTY / sizeof EMPTY[0]; i++) {
        a = req(&c, EMPTY[i].method, EMPTY[i].path, EMPTY[i].body, 422);
        ASSERT_STR_EQ(tsrv_jstr(a, "detail"), EMPTY[i].detail);
        ASSERT_STR_EQ(tsrv_jstr(a, "type"), "urn:recd:problem:unprocessable-request");
        json_decref(a);
    }
    /* malformed: 400; wrong meaning: 422 */
    a = req(&c, "POST", "/v1/ratings", "{\"user_id\":\"u1\",\"item_ids\":[\"i1\"", 400);
    ASSERT_CONTAINS(tsrv_jstr(a, "detail"), "invalid JSON");
    ASSERT_STR_EQ(tsrv_jstr(a, "type"), "urn:recd:problem:invalid-request");
    json_decref(a);
    a = req(&c, "POST", "/v1/ratings", "{\"user_id\":\"u1\",\"item_ids\":[1]}", 400);
    json_decref(a);
    a = req(&c, "POST", "/v1/ratings", "{\"user_id\":\"u1\"}", 422);
    ASSERT_STR_EQ(tsrv_jstr(a, "detail"), "item_ids: required");
    json_decref(a);
    /* more ids than next.max_items (1000): 422; a body over http.max_body_bytes (64 KiB): 413 */
    size_t cap = 80000;
    char *big = malloc(cap);
    ASSERT(big != NULL);
    size_t len = (size_t)snprintf(big, cap, "{\"user_id\":\"u1\",\"item_ids\":[");
    for (int i = 0; i < 1001; i++) len += (size_t)snprintf(big + len, cap - len, "%s\"i%d\"", i ? "," : "", i % N);
    snprintf(big + len, cap - len, "]}");
    a = req(&c, "POST", "/v1/ratings", big, 422);
    ASSERT_STR_EQ(tsrv_jstr(a, "detail"), "item_ids: 1001 given, between 1 and 1000 accepted");
    json_decref(a);
    len = (size_t)snprintf(big, cap, "{\"user_id\":\"u1\",\"item_ids\":[");
    for (int i = 0; i < 900; i++)
        len += (size_t)snprintf(big + len, cap - len, "%s\"i%d-%070d\"", i ? "," : "", i % N, 0);
    snprintf(big + len, cap - len, "]}");
    tresp r;
    ASSERT_EQ(tsrv_http(&s, "POST", "/v1/ratings", big, strlen(big), NULL, &r), 0);
    ASSERT_EQ(r.status, 413);
    tresp_free(&r);
    free(big);
    /* a body that is not JSON by its type: 415; the wrong method: 405 */
    const char *text_plain[] = {"Content-Type: text/plain", NULL};
    ASSERT_EQ(tconn_http(&c, "POST", "/v1/ratings", "{\"user_id\":\"u1\",\"item_ids\":[\"i1\"]}", 35, text_plain, &r), 0);
    ASSERT_EQ(r.status, 415);
    tresp_free(&r);
    ASSERT_EQ(tconn_http(&c, "GET", "/v1/ratings", NULL, 0, NULL, &r), 0);
    ASSERT_EQ(r.status, 405);
    tresp_free(&r);
    ASSERT_EQ(tconn_http(&c, "POST", "/v1/users/u1/recommendations", "{}", 2, NULL, &r), 0);
    ASSERT_EQ(r.status, 405);
    tresp_free(&r);
    /* the connection still serves after every problem */
    a = req(&c, "GET", "/v1/users/u7/recommendations?k=4", NULL, 200);
    expect_recs(a, &fx, m, 7, 4, 1);
    json_decref(a);
    tconn_close(&c);
    ASSERT_EQ(tsrv_stop(&s), 0);
    biasedmf_free(m);
    fixture_free(&fx);
}

/* A new version published while requests are served: every answer is 200 and the one of the version it
 * names; the new version answers once installed. */
TEST(server_ratings_hot_swap)
{
    mf_fixture fx;
    fixture_init(&fx);
    char root[1024];
    snap_root(root, sizeof root);
    biasedmf *m1 = publish_mf(&fx, root, "biasedmf", 1, NULL);
    tsrv s;
    tsrv_start(&s, "\"snapshots.models\":[\"biasedmf\"],\"snapshots.poll_ms\":100", 1);
    tconn c;
    tconn_open(&c, &s);
    biasedmf *m2 = NULL;
    const char *ids[] = {"i0", "i9", "i33"};
    int seen2 = 0;
    for (int t = 0; t < 600 && seen2 < 3; t++) {
        if (t == 3) {
            uint64_t v = 0;
            m2 = publish_mf(&fx, root, "biasedmf", 2, &v);
            ASSERT_EQ(v, 2);
        }
        json_t *a = req(&c, "POST", "/v1/ratings", "{\"user_id\":\"u2\",\"item_ids\":[\"i0\",\"i9\",\"i33\"]}", 200);
        const char *ver = tsrv_jstr(a, "version");
        ASSERT(ver && (strcmp(ver, "1") == 0 || strcmp(ver, "2") == 0));
        expect_ratings(a, strcmp(ver, "1") == 0 ? m1 : m2, 2, ids, 3, 1);
        json_decref(a);
        a = req(&c, "GET", "/v1/users/u2/recommendations?k=5", NULL, 200);
        ver = tsrv_jstr(a, "version");
        ASSERT(ver && (strcmp(ver, "1") == 0 || strcmp(ver, "2") == 0));
        expect_recs(a, &fx, strcmp(ver, "1") == 0 ? m1 : m2, 2, 5, 1);
        seen2 += strcmp(ver, "2") == 0;
        json_decref(a);
        if (t >= 3) tsrv_sleep_ms(10);
    }
    ASSERT_EQ(seen2, 3);
    tconn_close(&c);
    ASSERT_EQ(tsrv_stop(&s), 0);
    biasedmf_free(m1);
    biasedmf_free(m2);
    fixture_free(&fx);
}

/* Experiments on both routes: arm a = model mfa (control), arm b = model mfb, half each. The arm's model
 * answers; the answer names the experiment and the arm; the impressions (rated items; shown items) are in
 * the event store. */
#define EXP_JSON                                                                                            \
    "[{\"name\":\"rx\",\"salt\":\"rx-salt\",\"control\":\"a\",\"arms\":["                                     \
    "{\"name\":\"a\",\"model\":\"mfa\",\"share\":0.5},{\"name\":\"b\",\"model\":\"mfb\",\"share\":0.5}]}]"

TEST_TIMEOUT(server_ratings_experiment, 90)
{
    mf_fixture fx;
    fixture_init(&fx);
    char root[1024], state[1100], extra[2048];
    snap_root(root, sizeof root);
    snprintf(state, sizeof state, "%s/state", test_tmpdir());
    biasedmf *ma = publish_mf(&fx, root, "mfa", 1, NULL), *mb = publish_mf(&fx, root, "mfb", 2, NULL);
    snprintf(extra, sizeof extra,
             "\"snapshots.models\":[\"mfa\",\"mfb\"],\"state\":{\"dir\":\"%s\"},\"experiments\":" EXP_JSON, state);
    tsrv s;
    tsrv_start(&s, extra, 1);
    static const char *const names[] = {"mfa", "mfb"};
    json_t *ej = json_loads(EXP_JSON, 0, NULL);
    ASSERT(ej != NULL);
    exp_set xs;
    ASSERT_OK(exp_parse(ej, names, 2, &xs));
    json_decref(ej);
    const experiment *e = exp_find(&xs, "rx", 2);
    ASSERT(e != NULL);
    tconn c;
    tconn_open(&c, &s);
    int n_imp[2] = {0}, n_shown[2] = {0}, n_fb[2] = {0};
    const char *ids[] = {"i1", "i2", "zz"};
    for (int u = -1; u < 16; u++) { /* u = -1: a user no model knows */
        char uid[32], body[256], path[160];
        if (u == 5) continue; /* "a b%\u00e9": tested in server_ratings_answers */
        if (u < 0) snprintf(uid, sizeof uid, "someone-new");
        else snprintf(uid, sizeof uid, "u%d", u);
        int arm = exp_assign(e, uid, strlen(uid), 1e9);
        ASSERT(arm >= 0); /* shares add up to 1 */
        const biasedmf *m = arm == 0 ? ma : mb;
        snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"experiment\":\"rx\",\"item_ids\":[\"i1\",\"i2\",\"zz\"]}", uid);
        json_t *a = req(&c, "POST", "/v1/ratings", body, 200);
        ASSERT_STR_EQ(tsrv_jstr(a, "model"), names[arm]);
        ASSERT_STR_EQ(tsrv_jstr(a, "experiment"), "rx");
        ASSERT_STR_EQ(tsrv_jstr(a, "arm"), e->arms[arm].name);
        expect_ratings(a, m, u, ids, 3, 1);
        json_decref(a);
        n_imp[arm]++;
        n_shown[arm] += 3;
        n_fb[arm] += u < 0;
        snprintf(path, sizeof path, "/v1/users/%s/recommendations?k=4&experiment=rx", uid);
        a = req(&c, "GET", path, NULL, 200);
        ASSERT_STR_EQ(tsrv_jstr(a, "model"), names[arm]);
        ASSERT_STR_EQ(tsrv_jstr(a, "arm"), e->arms[arm].name);
        if (u >= 0) expect_recs(a, &fx, m, u, 4, 1);
        else expect_popular(a, &fx, 4);
        json_decref(a);
        n_imp[arm]++;
        n_shown[arm] += 4;
        n_fb[arm] += u < 0;
    }
    ASSERT(n_imp[0] > 0 && n_imp[1] > 0);
    /* HEAD is answered without a body: no item is shown, so nothing is recorded; a GET after it adds one
     * impression. Impressions are committed in arrival order: once the GET's is in, a HEAD's would be. */
    const char *committed = "recd_events_committed_total{type=\"impression\"}";
    int total = n_imp[0] + n_imp[1];
    ASSERT_EQ((int)tsrv_wait_metric(&s, committed, total, 10000), total);
    for (int t = 0; t < 3; t++) {
        tresp r;
        ASSERT_EQ(tconn_http(&c, "HEAD", "/v1/users/u1/recommendations?k=4&experiment=rx", NULL, 0, NULL, &r), 0);
        ASSERT_EQ(r.status, 200);
        ASSERT_EQ(r.len, 0);
        tresp_free(&r);
    }
    json_t *a = req(&c, "GET", "/v1/users/u1/recommendations?k=4&experiment=rx", NULL, 200);
    int arm1 = exp_assign(e, "u1", 2, 1e9);
    ASSERT_STR_EQ(tsrv_jstr(a, "arm"), e->arms[arm1].name);
    json_decref(a);
    n_imp[arm1]++;
    n_shown[arm1] += 4;
    ASSERT_EQ((int)tsrv_wait_metric(&s, committed, total + 1, 10000), total + 1);
    /* "model" with "experiment": 422; an unknown experiment: 404 */
    a = req(&c, "POST", "/v1/ratings",
            "{\"user_id\":\"u1\",\"experiment\":\"rx\",\"model\":\"mfa\",\"item_ids\":[\"i1\"]}", 422);
    ASSERT_CONTAINS(tsrv_jstr(a, "detail"), "give either model or experiment");
    json_decref(a);
    a = req(&c, "GET", "/v1/users/u1/recommendations?experiment=rx&model=mfb", NULL, 422);
    json_decref(a);
    a = req(&c, "POST", "/v1/ratings", "{\"user_id\":\"u1\",\"experiment\":\"zz\",\"item_ids\":[\"i1\"]}", 404);
    ASSERT_STR_EQ(tsrv_jstr(a, "type"), "urn:recd:problem:unknown-experiment");
    json_decref(a);
    tconn_close(&c);
    ASSERT_EQ(tsrv_stop(&s), 0);

    /* the impressions: one per answer, its items, the unknown user's answers as fallbacks */
    evstore_cfg ec = evstore_cfg_default();
    ec.dir = state;
    evstore *st;
    ASSERT_OK(evstore_open(&st, &ec));
    ASSERT_OK(exp_declare_all(&xs, st));
    ev_arm_report rep[EVSTORE_MAX_ARMS];
    ASSERT_OK(evstore_report(st, e->run, rep, e->n_arms, NULL));
    for (int k = 0; k < 2; k++) {
        ASSERT_EQ(rep[k].s.n, n_imp[k]);
        ASSERT_EQ(rep[k].items_shown, n_shown[k]);
        ASSERT_EQ(rep[k].fallbacks, n_fb[k]);
    }
    evstore_close(st);
    exp_set_free(&xs);
    biasedmf_free(ma);
    biasedmf_free(mb);
    fixture_free(&fx);
}

/* An experiment whose control's model lacks the route's capability: 422 wrong-model-type naming the
 * experiment and the arms that lack it (the control, and the unit's arm when it lacks it too), not only
 * the control's model, which the request did not name; a unit whose arm's model has it is answered.
 * gx: control g (gru4rec), h (gru4rec), m (mfa: biased MF). */
#define GX_JSON                                                                                             \
    "[{\"name\":\"gx\",\"salt\":\"gx-salt\",\"control\":\"g\",\"arms\":["                                     \
    "{\"name\":\"g\",\"model\":\"gru4rec\",\"share\":0.4},{\"name\":\"h\",\"model\":\"gru4rec\",\"share\":0.3},"     \
    "{\"name\":\"m\",\"model\":\"mfa\",\"share\":0.3}]}]"

TEST(server_ratings_experiment_capability)
{
    mf_fixture fx;
    fixture_init(&fx);
    char root[1024], state[1100], extra[2048];
    snap_root(root, sizeof root);
    snprintf(state, sizeof state, "%s/state", test_tmpdir());
    tsrv_make_snapshot(root, "gru4rec", 20, 16, 11);
    biasedmf *ma = publish_mf(&fx, root, "mfa", 1, NULL);
    snprintf(extra, sizeof extra,
             "\"snapshots.models\":[\"gru4rec\",\"mfa\"],\"state\":{\"dir\":\"%s\"},\"experiments\":" GX_JSON, state);
    tsrv s;
    tsrv_start(&s, extra, 1);
    static const char *const names[] = {"gru4rec", "mfa"};
    json_t *ej = json_loads(GX_JSON, 0, NULL);
    ASSERT(ej != NULL);
    exp_set xs;
    ASSERT_OK(exp_parse(ej, names, 2, &xs));
    json_decref(ej);
    const experiment *e = exp_find(&xs, "gx", 2);
    ASSERT(e != NULL && e->control == 0);
    tconn c;
    tconn_open(&c, &s);
    static const char *const control_only = "its control arm 'g' (model 'gru4rec', type gru4rec) has no";
    static const char *const both =
        "arm 'h' (model 'gru4rec', type gru4rec) and the control arm 'g' (model 'gru4rec', type gru4rec) have no";
    int seen[3] = {0};
    for (int u = 0; u < 30; u++) {
        char uid[16], body[160], path[128], want[256];
        snprintf(uid, sizeof uid, "u%d", u);
        int arm = exp_assign(e, uid, strlen(uid), 1e9);
        ASSERT(arm >= 0); /* shares add up to 1 */
        seen[arm]++;
        snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"experiment\":\"gx\",\"item_ids\":[\"i1\"]}", uid);
        snprintf(path, sizeof path, "/v1/users/%s/recommendations?k=2&experiment=gx", uid);
        json_t *a = req(&c, "POST", "/v1/ratings", body, arm == 2 ? 200 : 422);
        json_t *b = req(&c, "GET", path, NULL, arm == 2 ? 200 : 422);
        if (arm == 2) { /* m: biased MF answers both */
            ASSERT_STR_EQ(tsrv_jstr(a, "model"), "mfa");
            ASSERT_STR_EQ(tsrv_jstr(a, "arm"), "m");
            ASSERT_STR_EQ(tsrv_jstr(b, "model"), "mfa");
            ASSERT_STR_EQ(tsrv_jstr(b, "arm"), "m");
        } else {
            snprintf(want, sizeof want, "experiment 'gx' cannot answer /v1/ratings: %s `rate` capability",
                     arm == 0 ? control_only : both);
            ASSERT_STR_EQ(tsrv_jstr(a, "detail"), want);
            ASSERT_STR_EQ(tsrv_jstr(a, "type"), "urn:recd:problem:wrong-model-type");
            snprintf(want, sizeof want,
                     "experiment 'gx' cannot answer /v1/users/{id}/recommendations: %s `recommend` capability",
                     arm == 0 ? control_only : both);
            ASSERT_STR_EQ(tsrv_jstr(b, "detail"), want);
            ASSERT_STR_EQ(tsrv_jstr(b, "type"), "urn:recd:problem:wrong-model-type");
        }
        json_decref(a);
        json_decref(b);
    }
    ASSERT(seen[0] && seen[1] && seen[2]); /* these 30 ids cover every arm */
    tconn_close(&c);
    ASSERT_EQ(tsrv_stop(&s), 0);
    exp_set_free(&xs);
    biasedmf_free(ma);
    fixture_free(&fx);
}

/* ---- the helpers the routes share (server/route.h), without a server ---- */

/* route_json_num writes the text of sbuf_json_float (printf "%.6g") without printf. */
TEST(server_ratings_json_num)
{
    sbuf a, b;
    sbuf_init(&a);
    sbuf_init(&b);
    rng_t r;
    rng_seed(&r, 5);
    static const double special[] = {0.0, -0.0, 1, 5, 3, 10, 100, 0.1, 0.5, -2.5, 1e-4, 9.99999e-5, 1e-5, 123456.7,
                                     999999.5, 1e6, 9.9999996, -9.9999996, 3.14159265, NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 200000 + (int)(sizeof special / sizeof special[0]); i++) {
        double v;
        if (i < (int)(sizeof special / sizeof special[0])) v = special[i];
        else if (i % 3 == 0) v = (float)(1 + 4 * rng_uniform(&r)); /* ratings */
        else if (i % 3 == 1) v = (float)((rng_uniform(&r) - 0.5) * 20); /* scores */
        else v = (float)ldexp(rng_uniform(&r) - 0.5, (int)(rng_uniform(&r) * 60) - 30);
        sbuf_reset(&a);
        sbuf_reset(&b);
        route_json_num(&a, v);
        sbuf_json_float(&b, v);
        ASSERT(!sbuf_failed(&a) && !sbuf_failed(&b));
        if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
            FAIL("%.17g: \"%.*s\", printf says \"%.*s\"", v, (int)a.len, a.data, (int)b.len, b.data);
    }
    sbuf_release(&a);
    sbuf_release(&b);
}

/* route_itemscore_agrees: the description's scores against the model's, up to a per-query constant only
 * when asked. */
TEST(server_ratings_itemscore_agrees)
{
    enum { IN = 50, ID = 8 };
    float w[IN * ID], bias[IN], q[ID], want[IN], scratch[IN];
    rng_t r;
    rng_seed(&r, 9);
    for (int i = 0; i < IN * ID; i++) w[i] = (float)rng_uniform(&r) - 0.5f;
    for (int i = 0; i < IN; i++) bias[i] = (float)rng_uniform(&r);
    for (int d = 0; d < ID; d++) q[d] = (float)rng_uniform(&r) - 0.5f;
    model_item_matrix im = {.w = w, .bias = bias, .n = IN, .d = ID, .q_offset = 0};
    for (int i = 0; i < IN; i++) {
        double s = bias[i];
        for (int d = 0; d < ID; d++) s += (double)q[d] * w[i * ID + d];
        want[i] = (float)s;
    }
    ASSERT_EQ(route_itemscore_agrees(&im, q, want, 0, scratch), 1);
    ASSERT_EQ(route_itemscore_agrees(&im, q, want, 1, scratch), 1);
    for (int i = 0; i < IN; i++) want[i] += 3.5f; /* a user's constant (mu + b_u) */
    ASSERT_EQ(route_itemscore_agrees(&im, q, want, 0, scratch), 0);
    ASSERT_EQ(route_itemscore_agrees(&im, q, want, 1, scratch), 1);
    want[7] += 0.1f; /* one item off */
    ASSERT_EQ(route_itemscore_agrees(&im, q, want, 1, scratch), 0);
    want[7] = NAN;
    ASSERT_EQ(route_itemscore_agrees(&im, q, want, 1, scratch), 0);
}

/* route_prepare refuses a type with `rate` or `recommend` but no user vocabulary (model_type.users),
 * naming the type, before it looks at the handle or the server. */
TEST(server_ratings_needs_users)
{
    model_type rate_only = biasedmf_type, rec_only = biasedmf_type, both = biasedmf_type;
    rate_only.users = NULL;
    rate_only.recommend = NULL;
    rec_only.users = NULL;
    rec_only.rate = NULL;
    both.users = NULL;
    const model_type *types[] = {&rate_only, &rec_only, &both};
    const char *cap[] = {"`rate`", "`recommend`", "`recommend`"};
    for (int t = 0; t < 3; t++) {
        model_version v;
        memset(&v, 0, sizeof v);
        v.type = types[t];
        snprintf(v.type_name, sizeof v.type_name, "nousers");
        ASSERT_EQ(route_prepare(&v, NULL), RC_ECORRUPT);
        ASSERT(strstr(rc_errmsg(), "nousers") && strstr(rc_errmsg(), cap[t]) &&
               strstr(rc_errmsg(), "no user vocabulary"));
        ASSERT(v.aux == NULL);
    }
}
