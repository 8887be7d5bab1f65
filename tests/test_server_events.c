/* tests/test_server_events.c - POST /v1/events and the experiment report routes against a real server:
 * two tiny Wide & Deep arms in one experiment (plus gru4rec for /v1/next), a state folder in the test's
 * temporary directory. Counts are exact, duplicates count once, unknown request ids refuse the whole
 * batch, the report's statistics are core/abstats.h's on the exact per-unit counts, the report survives a
 * restart, acknowledged events survive a kill -9, a full state folder answers 503. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "core/abstats.h"
#include "tests/test_server_util.h"
#include "tests/testlib.h"

#define EXP_JSON                                                                                              \
    "\"experiments\":[{\"name\":\"home\",\"salt\":\"home-salt-1\",\"unit\":\"user_id\",\"control\":\"wide\","  \
    "\"arms\":[{\"name\":\"wide\",\"model\":\"wide\",\"share\":0.5},{\"name\":\"deep\",\"model\":\"deep\","     \
    "\"share\":0.5}]}]"

/* Publish gru4rec and the two arms' models (once per test), then start the server on state folder
 * `state` with extra settings. */
static void publish(void)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    mkdir(root, 0755);
    tsrv_make_snapshot(root, "gru4rec", 40, 8, 3);
    wd_model_free(tsrv_publish_wd(root, "wide", 21, 6, 5, NULL));
    wd_model_free(tsrv_publish_wd(root, "deep", 22, 7, 4, NULL));
}

static void start(tsrv *s, const char *state, const char *extra)
{
    char cfg[3000];
    snprintf(cfg, sizeof cfg,
             "\"snapshots.models\":[\"gru4rec\",\"wide\",\"deep\"],\"state.dir\":\"%s\",\"events.max_batch\":50,"
             "\"events.history_s\":1,%s%s%s",
             state, EXP_JSON, extra && *extra ? "," : "", extra ? extra : "");
    tsrv_start(s, cfg, 1);
}

static const char *state_dir(void)
{
    static char dir[1100];
    snprintf(dir, sizeof dir, "%s/state", test_tmpdir());
    return dir;
}

/* ---- a request log: what the server answered ---- */
typedef struct served {
    char id[96];
    char arm[32];
    char items[2][8];
    int unit;
} served;

#define RANK_FMT                                                                                             \
    "{\"user_id\":\"u%d\",\"experiment\":\"home\",\"k\":2,\"context\":{\"x1\":0.%d},\"candidates\":["         \
    "{\"item_id\":\"a\",\"features\":{\"c1\":\"a\"}},{\"item_id\":\"b\",\"features\":{\"c1\":\"b\"}},"          \
    "{\"item_id\":\"c\",\"features\":{\"c1\":\"c\"}},{\"item_id\":\"d\"}]}"

static void rank_one(const tsrv *s, int unit, served *out)
{
    char body[1024];
    snprintf(body, sizeof body, RANK_FMT, unit, unit % 10);
    json_t *a = tsrv_post(s, "/v1/rank", body, 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "experiment"), "home");
    const char *arm = tsrv_jstr(a, "arm"), *rid = tsrv_jstr(a, "request_id");
    ASSERT(arm && rid);
    snprintf(out->id, sizeof out->id, "%s", rid);
    snprintf(out->arm, sizeof out->arm, "%s", arm);
    const json_t *items = json_object_get(a, "items");
    ASSERT_EQ(json_array_size(items), 2);
    for (int k = 0; k < 2; k++)
        snprintf(out->items[k], sizeof out->items[k], "%s", tsrv_jstr(json_array_get(items, (size_t)k), "item_id"));
    out->unit = unit;
    json_decref(a);
}

static json_t *get_json(const tsrv *s, const char *path, long want)
{
    tresp r;
    if (tsrv_http(s, "GET", path, NULL, 0, NULL, &r) != 0) FAIL("GET %s: connection failed", path);
    if (r.status != want) FAIL("GET %s: status %ld, wanted %ld: %.400s", path, r.status, want, r.body);
    json_t *j = r.json;
    r.json = NULL;
    tresp_free(&r);
    ASSERT(j != NULL);
    return j;
}

static json_t *report(const tsrv *s)
{
    return get_json(s, "/v1/experiments/home", 200);
}

static const json_t *arm_of(const json_t *rep, const char *name)
{
    const json_t *arms = json_object_get(rep, "arms");
    for (size_t i = 0; i < json_array_size(arms); i++)
        if (strcmp(tsrv_jstr(json_array_get(arms, i), "name"), name) == 0) return json_array_get(arms, i);
    FAIL("no arm %s in the report", name);
}

/* a number at path "a.b.c" of o (NaN for null / absent) */
static double num_at(const json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *v = o;
    for (char *save = NULL, *t = strtok_r(buf, ".", &save); t && v; t = strtok_r(NULL, ".", &save)) {
        if (json_is_array(v)) v = json_array_get(v, (size_t)atoi(t));
        else v = json_object_get(v, t);
    }
    if (!v || json_is_null(v)) return NAN;
    ASSERT(json_is_number(v));
    return json_number_value(v);
}

static void near(const json_t *o, const char *path, double want)
{
    double got = num_at(o, path);
    if (isnan(want) && isnan(got)) return;
    if (!(fabs(got - want) <= 1e-9 * (1 + fabs(want))))
        FAIL("%s: report %.15g, expected %.15g", path, got, want);
}

/* ---- the expected counts, per arm and unit ---- */
#define MAX_UNITS 64
typedef struct expect {
    double n[2][MAX_UNITS], a[2][MAX_UNITS], c[2][MAX_UNITS], v[2][MAX_UNITS];
    int seen[2][MAX_UNITS];
    double imp_events[2];
} expect;

static int arm_index(const char *arm)
{
    return strcmp(arm, "wide") == 0 ? 0 : 1;
}

static ab_sums sums_of(const expect *e, int arm)
{
    ab_sums s;
    memset(&s, 0, sizeof s);
    for (int u = 0; u < MAX_UNITS; u++) {
        if (!e->seen[arm][u]) continue;
        double n = e->n[arm][u], a = e->a[arm][u], c = e->c[arm][u], v = e->v[arm][u], conv = a > 0;
        s.units += 1;
        s.n += n, s.nn += n * n;
        s.a += a, s.aa += a * a, s.an += a * n;
        s.c += c, s.cc += c * c, s.cn += c * n;
        s.v += v, s.vv += v * v, s.vn += v * n;
        s.conv += conv, s.cvn += conv * n;
    }
    return s;
}

static void check_est(const json_t *arm, const char *field, ab_est e)
{
    char path[96];
    snprintf(path, sizeof path, "%s.value", field);
    near(arm, path, e.est);
    snprintf(path, sizeof path, "%s.se", field);
    near(arm, path, e.var >= 0 ? sqrt(e.var) : NAN);
}

static void check_cmp(const json_t *arm, const char *field, ab_est t, ab_est c, double tau)
{
    ab_cmp k;
    ab_compare(t, c, 0.05, tau, &k);
    char path[128];
    const char *names[] = {"absolute.value", "absolute.ci.0", "absolute.ci.1", "relative.value", "relative.ci.0",
                           "relative.ci.1", "z", "p", "sequential.absolute.0", "sequential.absolute.1",
                           "sequential.relative.0", "sequential.relative.1"};
    const double want[] = {k.diff, k.diff_lo, k.diff_hi, k.rel, k.rel_lo, k.rel_hi,
                           k.z, k.p, k.seq_lo, k.seq_hi, k.seq_rel_lo, k.seq_rel_hi};
    for (int i = 0; i < 12; i++) {
        snprintf(path, sizeof path, "%s.%s", field, names[i]);
        near(arm, path, want[i]);
    }
    snprintf(path, sizeof path, "%s", field);
    const json_t *o = json_object_get(arm, field);
    ASSERT(json_is_object(o));
    ASSERT_EQ(json_is_true(json_object_get(o, "significant")), k.significant);
    ASSERT_EQ(json_is_true(json_object_get(json_object_get(o, "sequential"), "significant")), k.seq_significant);
}

/* Every number of the report against core/abstats.h on the exact counts. */
static void check_report(const json_t *rep, const expect *e)
{
    const char *names[2] = {"wide", "deep"};
    ab_sums s[2];
    ab_est imp[2], unit[2];
    for (int i = 0; i < 2; i++) {
        s[i] = sums_of(e, i);
        imp[i] = ab_ratio(s[i].units, s[i].a, s[i].aa, s[i].n, s[i].nn, s[i].an);
        unit[i] = ab_per_unit(s[i].units, s[i].a, s[i].aa);
    }
    ASSERT_STR_EQ(tsrv_jstr(rep, "control"), "wide");
    ASSERT_STR_EQ(tsrv_jstr(rep, "salt"), "home-salt-1");
    for (int i = 0; i < 2; i++) {
        const json_t *a = arm_of(rep, names[i]);
        ASSERT_EQ(num_at(a, "units"), s[i].units);
        ASSERT_EQ(num_at(a, "impressions"), s[i].n);
        ASSERT_EQ(num_at(a, "clicks"), s[i].c);
        ASSERT_EQ(num_at(a, "acquisitions"), s[i].a);
        ASSERT_EQ(num_at(a, "converted_units"), s[i].conv);
        near(a, "value", s[i].v);
        ASSERT_EQ(num_at(a, "impression_events"), e->imp_events[i]);
        check_est(a, "rate_per_impression", imp[i]);
        check_est(a, "rate_per_unit", unit[i]);
        check_est(a, "ctr", ab_ratio(s[i].units, s[i].c, s[i].cc, s[i].n, s[i].nn, s[i].cn));
        check_est(a, "conversion", ab_per_unit(s[i].units, s[i].conv, s[i].conv));
        if (i == 0) {
            ASSERT(json_is_null(json_object_get(a, "lift")));
            ASSERT(json_is_null(json_object_get(a, "lift_per_unit")));
        } else {
            check_cmp(a, "lift", imp[1], imp[0], 0.1 * imp[0].est);
            check_cmp(a, "lift_per_unit", unit[1], unit[0], 0.1 * unit[0].est);
        }
        const json_t *g = json_object_get(a, "guardrails");
        ASSERT(json_is_object(g));
        ASSERT(num_at(g, "p99_latency_ms") > 0);
        ASSERT(num_at(g, "p50_latency_ms") <= num_at(g, "p99_latency_ms"));
        ASSERT_EQ(num_at(g, "fallbacks"), 0);
        ASSERT(num_at(g, "distinct_items_shown") >= 2 && num_at(g, "distinct_items_shown") <= 4);
        ASSERT(num_at(g, "coverage") > 0 && num_at(g, "coverage") <= 1);
    }
    double obs[2] = {s[0].units, s[1].units}, shares[2] = {0.5, 0.5}, chi2;
    double p = ab_srm(obs, shares, 2, &chi2);
    near(rep, "srm.chi2", chi2);
    near(rep, "srm.p", p);
    ASSERT_EQ(json_is_true(json_object_get(json_object_get(rep, "srm"), "mismatch")), p < 0.001);
    ASSERT_EQ(num_at(rep, "multi_arm_units"), 0);
    /* the history ends at the arms' current rates */
    const json_t *h = json_object_get(rep, "history");
    size_t nt = json_array_size(json_object_get(h, "t"));
    ASSERT(nt >= 1 && nt <= 500);
    for (int i = 0; i < 2; i++) {
        const json_t *ser = json_object_get(json_object_get(h, "arms"), names[i]);
        ASSERT_EQ(json_array_size(json_object_get(ser, "rate")), nt);
        ASSERT_EQ(json_array_size(json_object_get(ser, "lo")), nt);
        ASSERT_EQ(json_array_size(json_object_get(ser, "hi")), nt);
        double last = json_number_value(json_array_get(json_object_get(ser, "rate"), nt - 1));
        if (isfinite(imp[i].est)) ASSERT_NEAR(last, imp[i].est, 1e-9);
    }
}

/* POST /v1/events and check accepted / duplicates */
static void post_ok(const tsrv *s, const char *body, int accepted, int duplicates)
{
    json_t *a = tsrv_post(s, "/v1/events", body, 200);
    ASSERT_EQ(json_integer_value(json_object_get(a, "accepted")), accepted);
    ASSERT_EQ(json_integer_value(json_object_get(a, "duplicates")), duplicates);
    ASSERT(tsrv_jstr(a, "request_id") != NULL);
    json_decref(a);
}

static void post_problem(const tsrv *s, const char *body, const char *ctype, long status, const char *needle)
{
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Content-Type: %s", ctype);
    const char *h[] = {hdr, NULL};
    tresp r;
    ASSERT_EQ(tsrv_http(s, "POST", "/v1/events", body, strlen(body), h, &r), 0);
    if (r.status != status) FAIL("%s: status %ld, wanted %ld: %.300s", body, r.status, status, r.body);
    ASSERT_STR_EQ(r.ctype, "application/problem+json");
    if (needle) ASSERT_CONTAINS(r.body, needle);
    tresp_free(&r);
}

#define NREQ 40

/* Traffic, events, duplicates, refusals, the report's numbers; then a restart gives the same report. */
TEST_TIMEOUT(events_server_report, 180)
{
    publish();
    tsrv s;
    start(&s, state_dir(), NULL);
    served req[NREQ];
    expect e;
    memset(&e, 0, sizeof e);
    for (int i = 0; i < NREQ; i++) {
        rank_one(&s, i % 25, &req[i]); /* 25 units, some with two requests */
        int a = arm_index(req[i].arm);
        e.n[a][req[i].unit] += 1;
        e.seen[a][req[i].unit] = 1;
    }
    /* clicks, acquisitions (some with an event_id and a value), client impressions, in batches of 7 */
    char body[16384];
    size_t len = 0;
    int in_batch = 0, total = 0;
    for (int i = 0; i < NREQ; i++) {
        int a = arm_index(req[i].arm), u = req[i].unit;
        char ev[3][400];
        int k = 0;
        if (i % 2 == 0) {
            snprintf(ev[k++], sizeof ev[0], "{\"request_id\":\"%.95s\",\"type\":\"click\",\"item_id\":\"%.7s\"}", req[i].id,
                     req[i].items[0]);
            e.c[a][u] += 1;
        }
        if (i % 3 == 0) {
            snprintf(ev[k++], sizeof ev[0],
                     "{\"type\":\"acquisition\",\"request_id\":\"%.95s\",\"item_id\":\"%.7s\",\"event_id\":\"acq-%d\","
                     "\"value\":%d.5}",
                     req[i].id, req[i].items[0], i, i);
            e.a[a][u] += 1;
            e.v[a][u] += i + 0.5;
        }
        if (i % 5 == 0) {
            snprintf(ev[k++], sizeof ev[0], "{\"request_id\":\"%.95s\",\"type\":\"impression\",\"item_id\":\"%.7s\"}",
                     req[i].id, req[i].items[1]);
            e.imp_events[a] += 1;
        }
        for (int j = 0; j < k; j++) {
            len += (size_t)snprintf(body + len, sizeof body - len, "%s%s", in_batch ? "," : "[", ev[j]);
            in_batch++;
            total++;
            if (in_batch == 7) {
                snprintf(body + len, sizeof body - len, "]");
                post_ok(&s, body, 7, 0);
                len = 0;
                in_batch = 0;
            }
        }
    }
    if (in_batch) {
        snprintf(body + len, sizeof body - len, "]");
        post_ok(&s, body, in_batch, 0);
    }
    ASSERT(total > 30);
    /* a single object: the same click again (key request, type, item) is a duplicate */
    snprintf(body, sizeof body, "{\"request_id\":\"%s\",\"type\":\"click\",\"item_id\":\"%s\"}", req[0].id,
             req[0].items[0]);
    post_ok(&s, body, 0, 1);
    /* the same event_id on another item: a duplicate too */
    snprintf(body, sizeof body,
             "{\"request_id\":\"%s\",\"type\":\"acquisition\",\"item_id\":\"%s\",\"event_id\":\"acq-0\",\"value\":99}",
             req[0].id, req[0].items[1]);
    post_ok(&s, body, 0, 1);
    /* a duplicate inside one batch counts once */
    snprintf(body, sizeof body,
             "[{\"request_id\":\"%s\",\"type\":\"click\",\"item_id\":\"%s\"},"
             "{\"request_id\":\"%s\",\"type\":\"click\",\"item_id\":\"%s\"}]",
             req[1].id, req[1].items[1], req[1].id, req[1].items[1]);
    post_ok(&s, body, 1, 1);
    e.c[arm_index(req[1].arm)][req[1].unit] += 1;

    /* unknown request ids: 422 naming them, nothing stored */
    tresp r;
    const char *unknown = "[{\"request_id\":\"nope-1\",\"type\":\"click\",\"item_id\":\"a\"},"
                          "{\"request_id\":\"nope-2\",\"type\":\"click\",\"item_id\":\"b\"}]";
    ASSERT_EQ(tsrv_http(&s, "POST", "/v1/events", unknown, strlen(unknown), NULL, &r), 0);
    ASSERT_EQ(r.status, 422);
    ASSERT_CONTAINS(r.body, "urn:recd:problem:unknown-request-ids");
    ASSERT_CONTAINS(r.body, "nope-1");
    ASSERT_CONTAINS(r.body, "nope-2");
    ASSERT_EQ(json_integer_value(json_object_get(r.json, "n_unknown")), 2);
    ASSERT_EQ(json_array_size(json_object_get(r.json, "unknown")), 2);
    ASSERT_STR_EQ(tsrv_jstr(json_array_get(json_object_get(r.json, "unknown"), 1), "request_id"), "nope-2");
    tresp_free(&r);
    /* a batch mixing a known and an unknown id: 422, and the known event was not stored either */
    snprintf(body, sizeof body,
             "[{\"request_id\":\"%s\",\"type\":\"click\",\"item_id\":\"%s\"},"
             "{\"request_id\":\"nope-3\",\"type\":\"click\",\"item_id\":\"a\"}]",
             req[3].id, req[3].items[1]);
    ASSERT_EQ(tsrv_http(&s, "POST", "/v1/events", body, strlen(body), NULL, &r), 0);
    ASSERT_EQ(r.status, 422);
    ASSERT_CONTAINS(r.body, "events[1] 'nope-3'");
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(json_object_get(r.json, "unknown"), 0), "index")), 1);
    tresp_free(&r);
    snprintf(body, sizeof body, "{\"request_id\":\"%s\",\"type\":\"click\",\"item_id\":\"%s\"}", req[3].id,
             req[3].items[1]);
    post_ok(&s, body, 1, 0); /* new: the 422 stored nothing */
    e.c[arm_index(req[3].arm)][req[3].unit] += 1;

    /* malformed bodies */
    const char *J = "application/json";
    post_problem(&s, "{", J, 400, "invalid JSON");
    post_problem(&s, "\"click\"", J, 400, "the body must be an event object or an array of events");
    post_problem(&s, "[1]", J, 400, "events[0]: expected an object");
    post_problem(&s, "{\"request_id\":5,\"type\":\"click\",\"item_id\":\"a\"}", J, 400, "request_id: expected a string");
    post_problem(&s, "[{\"request_id\":\"x\",\"type\":\"click\",\"item_id\":\"a\",\"type\":\"click\"}]", J, 400,
                 "events[0]: duplicate key 'type'");
    post_problem(&s, "{\"request_id\":\"x\",\"type\":\"acquisition\",\"item_id\":\"a\",\"value\":\"12\"}", J, 400,
                 "value: expected a number");
    post_problem(&s, "{\"request_id\":\"x\",\"type\":\"click\",\"item_id\":\"a\"}", "text/plain", 415,
                 "Content-Type");
    post_problem(&s, "[]", J, 422, "events: 0 given, between 1 and 50 accepted");
    post_problem(&s, "[{\"request_id\":\"x\",\"type\":\"click\",\"item_id\":\"a\"},"
                     "{\"request_id\":\"x\",\"type\":\"click\",\"item_id\":\"a\",\"valeu\":3}]",
                 J, 422, "events[1]: unknown field 'valeu'");
    post_problem(&s, "[{\"request_id\":\"x\",\"type\":\"view\",\"item_id\":\"a\"}]", J, 422,
                 "events[0].type: 'view' is not one of impression, click, acquisition");
    post_problem(&s, "{\"request_id\":\"x\",\"type\":\"click\",\"item_id\":\"a\",\"value\":1}", J, 422,
                 "only an acquisition carries a value");
    post_problem(&s, "{\"request_id\":\"x\",\"type\":\"acquisition\",\"item_id\":\"a\",\"value\":1e999}", J, 422,
                 "not a finite number");
    post_problem(&s, "{\"request_id\":\"x\",\"type\":\"click\"}", J, 422, "item_id: required");
    post_problem(&s, "{\"request_id\":\"\",\"type\":\"click\",\"item_id\":\"a\"}", J, 422,
                 "request_id: length 0 outside [1, 255]");
    len = 0;
    len += (size_t)snprintf(body + len, sizeof body - len, "[");
    for (int i = 0; i < 51; i++)
        len += (size_t)snprintf(body + len, sizeof body - len, "%s{\"request_id\":\"x\",\"type\":\"click\",\"item_id\":\"a\"}",
                                i ? "," : "");
    snprintf(body + len, sizeof body - len, "]");
    post_problem(&s, body, J, 422, "events: 51 given, between 1 and 50 accepted");

    /* the report: exact counts, abstats on them */
    json_t *rep = report(&s);
    check_report(rep, &e);
    /* the list */
    json_t *list = get_json(&s, "/v1/experiments", 200);
    const json_t *x = json_array_get(json_object_get(list, "experiments"), 0);
    ASSERT_STR_EQ(tsrv_jstr(x, "name"), "home");
    ASSERT_STR_EQ(tsrv_jstr(x, "status"), "running");
    ASSERT_EQ(num_at(x, "impressions"), NREQ);
    ASSERT_EQ(num_at(x, "acquisitions"), num_at(arm_of(rep, "wide"), "acquisitions") + num_at(arm_of(rep, "deep"), "acquisitions"));
    ASSERT_EQ(json_array_size(json_object_get(x, "arms")), 2);
    ASSERT_STR_EQ(tsrv_jstr(json_array_get(json_object_get(x, "arms"), 1), "model"), "deep");
    json_decref(list);
    json_t *nf = get_json(&s, "/v1/experiments/nope", 404);
    ASSERT_CONTAINS(tsrv_jstr(nf, "type"), "unknown-experiment");
    json_decref(nf);

    /* restart on the same state folder: the same report */
    ASSERT_EQ(tsrv_stop(&s), 0);
    start(&s, state_dir(), NULL);
    json_t *rep2 = report(&s);
    json_object_del(rep, "request_id");
    json_object_del(rep2, "request_id");
    if (!json_equal(rep, rep2)) {
        char *a = json_dumps(rep, JSON_COMPACT), *b = json_dumps(rep2, JSON_COMPACT);
        FAIL("the report changed across a restart:\n%.2000s\n%.2000s", a, b);
    }
    check_report(rep2, &e);
    json_decref(rep);
    json_decref(rep2);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* Every route of the issue and the old ones on ONE keep-alive connection, in a mixed order. */
TEST_TIMEOUT(events_server_keepalive_mix, 120)
{
    publish();
    tsrv s;
    start(&s, state_dir(), NULL);
    tconn c;
    tconn_open(&c, &s);
    tresp r;
    char body[2048];
    for (int round = 0; round < 3; round++) {
        snprintf(body, sizeof body, RANK_FMT, round, round);
        ASSERT_EQ(tconn_http(&c, "POST", "/v1/rank", body, strlen(body), NULL, &r), 0);
        ASSERT_EQ(r.status, 200);
        char rid[96];
        snprintf(rid, sizeof rid, "%s", tsrv_jstr(r.json, "request_id"));
        const char *item = tsrv_jstr(json_array_get(json_object_get(r.json, "items"), 0), "item_id");
        snprintf(body, sizeof body, "[{\"request_id\":\"%s\",\"type\":\"acquisition\",\"item_id\":\"%s\"}]", rid, item);
        tresp_free(&r);
        ASSERT_EQ(tconn_http(&c, "POST", "/v1/events", body, strlen(body), NULL, &r), 0);
        ASSERT_EQ(r.status, 200);
        ASSERT_EQ(json_integer_value(json_object_get(r.json, "accepted")), 1);
        if (round) ASSERT_EQ(r.num_connects, 0);
        tresp_free(&r);
        const char *gets[] = {"/healthz", "/v1/experiments/home", "/v1/models", "/v1/experiments",
                              "/ui/experiments/home"};
        for (int g = 0; g < 5; g++) {
            ASSERT_EQ(tconn_http(&c, "GET", gets[g], NULL, 0, NULL, &r), 0);
            ASSERT_EQ(r.status, 200);
            ASSERT_EQ(r.num_connects, 0);
            if (g == 4) ASSERT_CONTAINS(r.ctype, "text/html");
            tresp_free(&r);
        }
        const char *next = "{\"items\":[\"i1\",\"i2\"],\"k\":3}";
        ASSERT_EQ(tconn_http(&c, "POST", "/v1/next", next, strlen(next), NULL, &r), 0);
        ASSERT_EQ(r.status, 200);
        ASSERT_EQ(r.num_connects, 0);
        tresp_free(&r);
        /* a refused batch between two good requests leaves the connection usable */
        const char *bad = "[{\"request_id\":\"zz\",\"type\":\"click\",\"item_id\":\"a\"}]";
        ASSERT_EQ(tconn_http(&c, "POST", "/v1/events", bad, strlen(bad), NULL, &r), 0);
        ASSERT_EQ(r.status, 422);
        ASSERT_EQ(r.num_connects, 0);
        tresp_free(&r);
    }
    tconn_close(&c);
    json_t *rep = report(&s);
    ASSERT_EQ(num_at(arm_of(rep, "wide"), "acquisitions") + num_at(arm_of(rep, "deep"), "acquisitions"), 3);
    json_decref(rep);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* The page and the routes without a state folder. */
TEST(events_server_off)
{
    tsrv s;
    char root[1024];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    mkdir(root, 0755);
    tsrv_make_snapshot(root, "gru4rec", 20, 8, 3);
    tsrv_start(&s, "", 1);
    const char *ev = "{\"request_id\":\"x\",\"type\":\"click\",\"item_id\":\"a\"}";
    json_t *a = tsrv_post(&s, "/v1/events", ev, 404);
    ASSERT_STR_EQ(tsrv_jstr(a, "type"), "urn:recd:problem:events-off");
    json_decref(a);
    json_t *l = get_json(&s, "/v1/experiments", 200);
    ASSERT_EQ(json_array_size(json_object_get(l, "experiments")), 0);
    json_decref(l);
    l = get_json(&s, "/v1/experiments/home", 404);
    json_decref(l);
    /* the page: 404 for an unknown experiment (the page itself, which shows the API's message), with a
     * Content-Security-Policy that allows nothing external */
    char out[8192];
    ASSERT_EQ(test_run(out, sizeof out, "curl -s -D - -o /dev/null %s/ui/experiments/home", s.base), 0);
    ASSERT_CONTAINS(out, "HTTP/1.1 404");
    ASSERT_CONTAINS(out, "Content-Type: text/html; charset=utf-8");
    ASSERT_CONTAINS(out, "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'");
    ASSERT_CONTAINS(out, "connect-src 'self'");
    ASSERT_CONTAINS(out, "frame-ancestors 'none'");
    tresp r;
    ASSERT_EQ(tsrv_http(&s, "POST", "/ui/experiments/home", "{}", 2, NULL, &r), 0);
    ASSERT_EQ(r.status, 405);
    tresp_free(&r);
    ASSERT_EQ(tsrv_http(&s, "GET", "/ui/experiments/home", NULL, 0, NULL, &r), 0);
    ASSERT_CONTAINS(r.body, "<script>");
    ASSERT(!strstr(r.body, "src=") && !strstr(r.body, "href=")); /* nothing external, inline only */
    tresp_free(&r);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* Clients that go away while their batch is being committed: the events are stored (the commit was
 * under way), nothing leaks or crashes (the ASan build runs this too), the server keeps serving. */
TEST_TIMEOUT(events_server_client_gone, 120)
{
    publish();
    tsrv s;
    start(&s, state_dir(), NULL);
    served q;
    rank_one(&s, 1, &q);
    for (int i = 0; i < 40; i++) {
        char body[512], reqt[1024];
        int bl = snprintf(body, sizeof body,
                          "[{\"request_id\":\"%s\",\"type\":\"acquisition\",\"item_id\":\"%s\",\"event_id\":\"gone-%d\"}]",
                          q.id, q.items[0], i);
        int n = snprintf(reqt, sizeof reqt,
                         "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                         bl, body);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        ASSERT(fd >= 0);
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)s.port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ASSERT_EQ(send(fd, reqt, (size_t)n, MSG_NOSIGNAL), n);
        if (i % 2) shutdown(fd, SHUT_RDWR); /* half of them reset at once, half just closed */
        close(fd);
    }
    /* every batch was received whole: each is committed, counted once (poll: they may still be queued) */
    double got = 0;
    for (int t = 0; t < 200 && got < 40; t++) {
        json_t *rep = report(&s);
        got = num_at(arm_of(rep, q.arm), "acquisitions");
        json_decref(rep);
        if (got < 40) tsrv_sleep_ms(50);
    }
    ASSERT_EQ(got, 40);
    tresp r;
    ASSERT_EQ(tsrv_http(&s, "GET", "/healthz", NULL, 0, NULL, &r), 0);
    ASSERT_EQ(r.status, 200);
    tresp_free(&r);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* ---- durability: kill -9 while clients post ---- */
#define DUR_THREADS 4
#define DUR_PER_THREAD 400

typedef struct dur_arg {
    const tsrv *s;
    const served *req;
    int nreq, tid;
    int sent, acked; /* events sent (each in its own POST), acknowledged with 200 */
} dur_arg;

static void *dur_main(void *p)
{
    dur_arg *d = p;
    tconn c;
    tconn_open(&c, d->s);
    for (int k = 0; k < DUR_PER_THREAD; k++) {
        const served *q = &d->req[(k + d->tid) % d->nreq];
        char body[512];
        snprintf(body, sizeof body,
                 "{\"request_id\":\"%s\",\"type\":\"acquisition\",\"item_id\":\"%s\",\"event_id\":\"t%d-%d\"}", q->id,
                 q->items[0], d->tid, k);
        tresp r;
        d->sent++;
        int rc = tconn_http(&c, "POST", "/v1/events", body, strlen(body), NULL, &r);
        long st = r.status;
        tresp_free(&r);
        if (rc != 0 || st != 200) break; /* the server is gone */
        d->acked++;
    }
    tconn_close(&c);
    return NULL;
}

static double total_acquisitions(const tsrv *s)
{
    json_t *rep = report(s);
    double n = num_at(arm_of(rep, "wide"), "acquisitions") + num_at(arm_of(rep, "deep"), "acquisitions");
    json_decref(rep);
    return n;
}

TEST_TIMEOUT(events_server_kill9_durable, 240)
{
    publish();
    tsrv s;
    start(&s, state_dir(), NULL);
    served req[10];
    for (int i = 0; i < 10; i++) rank_one(&s, i, &req[i]);
    /* the impressions are committed (within events.flush_ms) before the kill */
    double imp = 0;
    for (int t = 0; t < 400 && imp < 10; t++) {
        json_t *rep = report(&s);
        imp = num_at(arm_of(rep, "wide"), "impressions") + num_at(arm_of(rep, "deep"), "impressions");
        json_decref(rep);
        if (imp < 10) tsrv_sleep_ms(25);
    }
    ASSERT_EQ(imp, 10);
    dur_arg d[DUR_THREADS];
    pthread_t th[DUR_THREADS];
    for (int i = 0; i < DUR_THREADS; i++) {
        d[i] = (dur_arg){&s, req, 10, i, 0, 0};
        ASSERT_EQ(pthread_create(&th[i], NULL, dur_main, &d[i]), 0);
    }
    /* kill -9 once a good part is acknowledged (poll the committed counter, bounded) */
    tsrv_wait_metric(&s, "recd_events_committed_total{type=\"acquisition\"}", DUR_THREADS * DUR_PER_THREAD / 4,
                     30000);
    kill(s.pid, SIGKILL);
    int st;
    waitpid(s.pid, &st, 0);
    s.pid = 0;
    int sent = 0, acked = 0;
    for (int i = 0; i < DUR_THREADS; i++) {
        pthread_join(th[i], NULL);
        sent += d[i].sent;
        acked += d[i].acked;
    }
    ASSERT(acked > 0);
    start(&s, state_dir(), NULL);
    double counted = total_acquisitions(&s);
    fprintf(stderr, "kill -9: %d events sent, %d acknowledged, %.0f counted after the restart\n", sent, acked, counted);
    if (!(acked <= counted && counted <= sent)) FAIL("acknowledged %d, counted %.0f, sent %d", acked, counted, sent);
    /* every event sent again: duplicates are idempotent, so now exactly the events sent are counted */
    for (int i = 0; i < DUR_THREADS; i++) {
        int n = d[i].sent;
        for (int k = 0; k < n; k++) {
            const served *q = &req[(k + i) % 10];
            char body[512];
            snprintf(body, sizeof body,
                     "{\"request_id\":\"%s\",\"type\":\"acquisition\",\"item_id\":\"%s\",\"event_id\":\"t%d-%d\"}",
                     q->id, q->items[0], i, k);
            json_decref(tsrv_post(&s, "/v1/events", body, 200));
        }
    }
    ASSERT_EQ(total_acquisitions(&s), sent);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* A full state folder: 503 with Retry-After and the refusal metric; the report still answers. */
TEST_TIMEOUT(events_server_store_full, 180)
{
    publish();
    tsrv s;
    start(&s, state_dir(), "\"events.max_bytes\":1048576");
    served q;
    rank_one(&s, 3, &q);
    char pad[201];
    memset(pad, 'p', 200);
    pad[200] = '\0';
    static char body[60000];
    int full = 0;
    for (int round = 0; round < 400 && !full; round++) {
        size_t len = (size_t)snprintf(body, sizeof body, "[");
        for (int k = 0; k < 50; k++)
            len += (size_t)snprintf(body + len, sizeof body - len,
                                    "%s{\"request_id\":\"%s\",\"type\":\"acquisition\",\"item_id\":\"%s\","
                                    "\"event_id\":\"%s-%d-%d\"}",
                                    k ? "," : "", q.id, q.items[0], pad, round, k);
        snprintf(body + len, sizeof body - len, "]");
        tresp r;
        ASSERT_EQ(tsrv_http(&s, "POST", "/v1/events", body, strlen(body), NULL, &r), 0);
        if (r.status == 503) {
            full = 1;
            ASSERT_STR_EQ(r.ctype, "application/problem+json");
            ASSERT_CONTAINS(r.body, "nothing was stored");
        } else {
            ASSERT_EQ(r.status, 200);
        }
        tresp_free(&r);
    }
    ASSERT(full);
    ASSERT(tsrv_metric(&s, "recd_events_refused_total{reason=\"full\"}") >= 1);
    char out[4096];
    const char *one = "curl -s -D - -o /dev/null -H 'Content-Type: application/json' --data '%s' %s/v1/events";
    snprintf(body, sizeof body, "{\"request_id\":\"%s\",\"type\":\"click\",\"item_id\":\"%s\"}", q.id, q.items[1]);
    ASSERT_EQ(test_run(out, sizeof out, one, body, s.base), 0);
    ASSERT_CONTAINS(out, "503");
    ASSERT_CONTAINS(out, "Retry-After: 1");
    json_decref(report(&s));
    ASSERT_EQ(tsrv_stop(&s), 0);
}
