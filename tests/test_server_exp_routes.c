/* tests/test_server_exp_routes.c - experiments in the real server (server/experiment.h, server/route.h):
 * /v1/rank and /v1/next answered by the user's arm over one keep-alive connection mixed with other
 * routes, the answer's arm equal to exp_assign's, pinned arms ("MODEL@V" registry entries that never
 * swap), units outside the shares or the namespace (arm null, the control's model), the fallback to the
 * control when an arm's model cannot answer, the 404/422 answers, the impressions in the event store,
 * and the settings refused at start (a changed share with the same salt, experiments without state.dir). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "models/widedeep.h"
#include "server/evstore.h"
#include "server/experiment.h"
#include "tests/test_server_util.h"
#include "tests/testlib.h"

static const char *const MODELS[] = {"wide", "deep", "widedeep", "gru4rec"};
#define N_MODELS 4

/* The experiments of these tests:
 *   home  /v1/rank: wide (control) 0.3, deep 0.3, wd = widedeep pinned at version 1 0.3 (10% out);
 *   sess  /v1/next: a = gru4rec (serving version 2), b = gru4rec pinned at version 1, half each, in
 *         namespace n1's buckets [0, 5000);
 *   fb    /v1/next: g = gru4rec (control), w = wide (no `next`: its units get gru4rec, fallback). */
#define EXPS                                                                                                     \
    "[{\"name\":\"home\",\"salt\":\"home-salt\",\"control\":\"wide\",\"arms\":["                                   \
    "{\"name\":\"wide\",\"model\":\"wide\",\"share\":0.3},{\"name\":\"deep\",\"model\":\"deep\",\"share\":0.3},"   \
    "{\"name\":\"wd\",\"model\":\"widedeep\",\"version\":\"1\",\"share\":0.3}]},"                                  \
    "{\"name\":\"sess\",\"salt\":\"sess-salt\",\"namespace\":\"n1\",\"namespace_buckets\":[0,5000],\"arms\":["    \
    "{\"name\":\"a\",\"model\":\"gru4rec\",\"share\":0.5},"                                                   \
    "{\"name\":\"b\",\"model\":\"gru4rec\",\"version\":\"1\",\"share\":0.5}]},"    \
    "{\"name\":\"fb\",\"salt\":\"fb-salt\",\"arms\":["                                                             \
    "{\"name\":\"g\",\"model\":\"gru4rec\",\"share\":0.5},{\"name\":\"w\",\"model\":\"wide\",\"share\":0.5}]}]"

#define MODELS_JSON "[\"wide\",\"deep\",\"widedeep\",\"gru4rec\"]"

static void parse_exps(const char *txt, exp_set *s)
{
    json_t *j = json_loads(txt, 0, NULL);
    ASSERT(j);
    ASSERT_OK(exp_parse(j, MODELS, N_MODELS, s));
    json_decref(j);
}

/* Publish the models: wide/1, deep/1, widedeep/1 and widedeep/2, gru4rec/1 and gru4rec/2. */
static void publish_all(const char *root)
{
    mkdir(root, 0755);
    uint64_t ver;
    wd_model_free(tsrv_publish_wd(root, "wide", 31, 6, 5, NULL));
    wd_model_free(tsrv_publish_wd(root, "deep", 41, 6, 5, NULL));
    wd_model_free(tsrv_publish_wd(root, "widedeep", 51, 6, 5, &ver));
    ASSERT_EQ(ver, 1);
    wd_model_free(tsrv_publish_wd(root, "widedeep", 61, 6, 5, &ver));
    ASSERT_EQ(ver, 2);
    ASSERT_EQ(tsrv_make_snapshot(root, "gru4rec", 40, 16, 11), 1);
    ASSERT_EQ(tsrv_make_snapshot(root, "gru4rec", 40, 16, 12), 2);
}

static void start(tsrv *s, const char *state)
{
    char root[1024], extra[3500];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    publish_all(root);
    snprintf(extra, sizeof extra, "\"snapshots.models\":" MODELS_JSON ",\"state\":{\"dir\":\"%s\"},\"experiments\":" EXPS,
             state);
    tsrv_start(s, extra, 1);
}

static const char *RANK_CANDS =
    "\"context\":{\"x1\":0.3,\"c1\":\"b\"},"
    "\"candidates\":[{\"item_id\":\"a\",\"features\":{\"c2\":\"k1\",\"x2\":-1}},"
    "{\"item_id\":\"b\",\"features\":{\"c2\":\"k,2\",\"c1\":\"zz\"}},{\"item_id\":\"c\"}]";

/* POST on the connection; the parsed answer (owned) after checking the status. */
static json_t *post(tconn *c, const char *path, const char *body, long want)
{
    tresp r;
    ASSERT_EQ(tconn_http(c, "POST", path, body, strlen(body), NULL, &r), 0);
    if (r.status != want) FAIL("POST %s %s: %ld %s, want %ld", path, body, r.status, r.body, want);
    json_t *j = r.json ? json_incref(r.json) : NULL;
    tresp_free(&r);
    ASSERT(j);
    return j;
}

/* The arm name the answer must carry for unit u (NULL: not in the experiment), and the entry whose model
 * answers. */
static const char *want_arm(const experiment *e, const char *u, const char **entry)
{
    int a = exp_assign(e, u, strlen(u), 1e9 /* inside the open window */);
    *entry = e->arms[a < 0 ? e->control : a].entry;
    return a < 0 ? NULL : e->arms[a].name;
}

static void check_arm(const json_t *ans, const char *exp, const char *arm)
{
    ASSERT_STR_EQ(tsrv_jstr(ans, "experiment"), exp);
    const json_t *a = json_object_get(ans, "arm");
    ASSERT(a != NULL);
    if (arm) ASSERT_STR_EQ(json_string_value(a), arm);
    else ASSERT(json_is_null(a));
    ASSERT(json_string_length(json_object_get(ans, "request_id")) > 0);
}

TEST_TIMEOUT(server_exp_routes, 120)
{
    char state[1100];
    snprintf(state, sizeof state, "%s/state", test_tmpdir());
    tsrv s;
    start(&s, state);
    exp_set xs;
    parse_exps(EXPS, &xs);
    const experiment *home = exp_find(&xs, "home", 4), *sess = exp_find(&xs, "sess", 4), *fb = exp_find(&xs, "fb", 2);
    ASSERT(home && sess && fb);

    /* the pinned entry is in /v1/models, serving version 1 while widedeep serves 2 */
    tresp r;
    ASSERT_EQ(tsrv_http(&s, "GET", "/v1/models", NULL, 0, NULL, &r), 0);
    ASSERT_EQ(r.status, 200);
    int seen_pin = 0;
    const json_t *ms = json_object_get(r.json, "models");
    for (size_t i = 0; i < json_array_size(ms); i++) {
        const json_t *m = json_array_get(ms, i);
        if (strcmp(tsrv_jstr(m, "name"), "widedeep@1") == 0) {
            seen_pin = 1;
            ASSERT_STR_EQ(tsrv_jstr(m, "version"), "1");
            ASSERT(json_is_true(json_object_get(m, "pinned")));
            ASSERT_STR_EQ(tsrv_jstr(m, "folder"), "widedeep");
        }
        if (strcmp(tsrv_jstr(m, "name"), "widedeep") == 0) ASSERT_STR_EQ(tsrv_jstr(m, "version"), "2");
    }
    ASSERT(seen_pin);
    tresp_free(&r);

    tconn c;
    tconn_open(&c, &s);
    char body[2048];
    int n_home[4] = {0}, n_sess[3] = {0}, n_fb[2] = {0}, fb_fallbacks = 0, home_out = 0;
    for (int i = 0; i < 60; i++) {
        char u[32];
        snprintf(u, sizeof u, "user-%d", i);
        /* /v1/rank in "home" */
        snprintf(body, sizeof body, "{\"experiment\":\"home\",\"user_id\":\"%s\",\"k\":2,%s}", u, RANK_CANDS);
        json_t *ans = post(&c, "/v1/rank", body, 200);
        const char *entry, *arm = want_arm(home, u, &entry);
        check_arm(ans, "home", arm);
        ASSERT_STR_EQ(tsrv_jstr(ans, "model"), entry);
        ASSERT_STR_EQ(tsrv_jstr(ans, "user_id"), u);
        if (strcmp(entry, "widedeep@1") == 0) ASSERT_STR_EQ(tsrv_jstr(ans, "version"), "1");
        ASSERT_EQ(json_array_size(json_object_get(ans, "items")), 2);
        int a = exp_assign(home, u, strlen(u), 1e9);
        n_home[a < 0 ? 3 : a]++;
        home_out += a < 0;
        json_decref(ans);
        /* another route between, on the same connection */
        ASSERT_EQ(tconn_http(&c, "GET", i % 2 ? "/healthz" : "/v1/models", NULL, 0, NULL, &r), 0);
        ASSERT_EQ(r.status, 200);
        tresp_free(&r);
        /* /v1/next in "sess", stateless then stateful (its session key is per model) */
        snprintf(body, sizeof body, "{\"experiment\":\"sess\",\"user_id\":\"%s\",\"items\":[\"i1\",\"i2\"],\"k\":3}", u);
        ans = post(&c, "/v1/next", body, 200);
        arm = want_arm(sess, u, &entry);
        check_arm(ans, "sess", arm);
        ASSERT_STR_EQ(tsrv_jstr(ans, "model"), entry);
        ASSERT_STR_EQ(tsrv_jstr(ans, "version"), strchr(entry, '@') ? "1" : "2"); /* gru4rec@1 is pinned */
        ASSERT_EQ(json_array_size(json_object_get(ans, "items")), 3);
        json_decref(ans);
        snprintf(body, sizeof body, "{\"experiment\":\"sess\",\"user_id\":\"%s\",\"session_id\":\"s-%d\",\"item_id\":\"i3\"}",
                 u, i);
        ans = post(&c, "/v1/next", body, 200);
        check_arm(ans, "sess", arm);
        ASSERT_STR_EQ(tsrv_jstr(ans, "model"), entry);
        char sid[32];
        snprintf(sid, sizeof sid, "s-%d", i);
        ASSERT_STR_EQ(tsrv_jstr(ans, "session_id"), sid);
        json_decref(ans);
        a = exp_assign(sess, u, strlen(u), 1e9);
        n_sess[a < 0 ? 2 : a] += 2;
        /* /v1/next in "fb": arm w's model (wide) has no `next`: gru4rec answers, the arm stays w */
        snprintf(body, sizeof body, "{\"experiment\":\"fb\",\"user_id\":\"%s\",\"items\":[\"i5\"]}", u);
        ans = post(&c, "/v1/next", body, 200);
        a = exp_assign(fb, u, strlen(u), 1e9);
        ASSERT(a >= 0);
        check_arm(ans, "fb", fb->arms[a].name);
        ASSERT_STR_EQ(tsrv_jstr(ans, "model"), "gru4rec");
        n_fb[a]++;
        fb_fallbacks += a == 1;
        json_decref(ans);
    }
    /* the ids of these 60 users cover every case */
    ASSERT(n_home[0] && n_home[1] && n_home[2] && home_out);
    ASSERT(n_sess[0] && n_sess[1] && n_sess[2]);
    ASSERT(n_fb[0] && n_fb[1]);

    /* refused requests, same connection */
    static const struct {
        const char *path, *body;
        long status;
        const char *detail;
    } bad[] = {
        {"/v1/rank", "{\"experiment\":\"nope\",\"user_id\":\"u\",\"candidates\":[{\"item_id\":\"a\"}]}", 404,
         "no experiment 'nope' is configured"},
        {"/v1/rank", "{\"experiment\":\"\",\"user_id\":\"u\",\"candidates\":[{\"item_id\":\"a\"}]}", 422,
         "experiment: length 0 outside [1, 256]"},
        {"/v1/rank", "{\"experiment\":\"home\",\"candidates\":[{\"item_id\":\"a\"}]}", 422,
         "experiment 'home' assigns by user_id: give user_id"},
        {"/v1/rank", "{\"experiment\":\"home\",\"user_id\":\"\",\"candidates\":[{\"item_id\":\"a\"}]}", 422,
         "experiment 'home' assigns by user_id: give user_id"},
        {"/v1/rank", "{\"experiment\":\"home\",\"user_id\":\"u\",\"model\":\"wide\",\"candidates\":[{\"item_id\":\"a\"}]}",
         422, "give either model or experiment"},
        {"/v1/rank", "{\"experiment\":5,\"user_id\":\"u\",\"candidates\":[{\"item_id\":\"a\"}]}", 400,
         "experiment: expected a string"},
        {"/v1/next", "{\"experiment\":\"nope\",\"user_id\":\"u\",\"items\":[\"i1\"]}", 404,
         "no experiment 'nope' is configured"},
        {"/v1/next", "{\"experiment\":\"sess\",\"items\":[\"i1\"]}", 422, "experiment 'sess' assigns by user_id: give user_id"},
        {"/v1/next", "{\"experiment\":\"sess\",\"user_id\":\"u\",\"model\":\"gru4rec\",\"items\":[\"i1\"]}", 422,
         "give either model or experiment"},
        {"/v1/next", "{\"experiment\":\"\",\"user_id\":\"u\",\"items\":[\"i1\"]}", 422, "'experiment' must not be empty"},
        {"/v1/next", "{\"experiment\":[],\"user_id\":\"u\",\"items\":[\"i1\"]}", 400, "'experiment' must be a string"},
        {"/v1/next", "{\"experiment\":\"sess\",\"user_id\":7,\"items\":[\"i1\"]}", 400, "'user_id' must be a string"},
        /* home's arms have no `next`: the control's model (wide) cannot answer /v1/next */
        {"/v1/next", "{\"experiment\":\"home\",\"user_id\":\"u\",\"items\":[\"i1\"]}", 422, "no `next` capability"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_EQ(tconn_http(&c, "POST", bad[i].path, bad[i].body, strlen(bad[i].body), NULL, &r), 0);
        if (r.status != bad[i].status || !strstr(r.body, bad[i].detail))
            FAIL("%s %s: %ld %s, want %ld \"%s\"", bad[i].path, bad[i].body, r.status, r.body, bad[i].status,
                 bad[i].detail);
        ASSERT_STR_EQ(r.ctype, "application/problem+json");
        tresp_free(&r);
    }
    /* a user_id longer than the store keeps */
    char longu[400];
    memset(longu, 'u', 256);
    longu[256] = '\0';
    snprintf(body, sizeof body, "{\"experiment\":\"home\",\"user_id\":\"%s\",\"candidates\":[{\"item_id\":\"a\"}]}", longu);
    ASSERT_EQ(tconn_http(&c, "POST", "/v1/rank", body, strlen(body), NULL, &r), 0);
    ASSERT_EQ(r.status, 422);
    ASSERT_CONTAINS(r.body, "at most 255 bytes");
    tresp_free(&r);
    /* a candidate id longer than the store keeps: refused for units in the experiment (their impression
     * could not be stored), served for the others (nothing is logged for them) */
    memset(longu, 'i', 256); /* limits.max_id_len (256) accepts it */
    longu[256] = '\0';
    int refused = 0, served = 0;
    for (int u = 0; u < 40; u++) {
        snprintf(body, sizeof body,
                 "{\"experiment\":\"home\",\"user_id\":\"long%d\",\"candidates\":[{\"item_id\":\"%s\"}]}", u, longu);
        ASSERT_EQ(tconn_http(&c, "POST", "/v1/rank", body, strlen(body), NULL, &r), 0);
        if (r.status == 422) {
            ASSERT_CONTAINS(r.body, "candidates[0].item_id: 256 bytes; in an experiment ids are at most 255 bytes");
            refused++;
        } else {
            ASSERT_EQ(r.status, 200);
            ASSERT_CONTAINS(r.body, "\"arm\":null");
            served++;
        }
        tresp_free(&r);
    }
    ASSERT(refused > 0);
    ASSERT(c.requests > 200);
    tconn_close(&c);

    /* a newer widedeep swaps in; the pinned entry keeps version 1 */
    wd_model_free(tsrv_publish_wd(s.root, "widedeep", 71, 6, 5, NULL));
    int swapped = 0;
    for (int t = 0; t < 400 && !swapped; t++) {
        json_t *ans = tsrv_post(&s, "/v1/rank",
                                "{\"model\":\"widedeep\",\"candidates\":[{\"item_id\":\"a\"}]}", 200);
        swapped = strcmp(tsrv_jstr(ans, "version"), "3") == 0;
        json_decref(ans);
        if (!swapped) tsrv_sleep_ms(50);
    }
    ASSERT(swapped);
    json_t *ans = tsrv_post(&s, "/v1/rank", "{\"model\":\"widedeep@1\",\"candidates\":[{\"item_id\":\"a\"}]}", 200);
    ASSERT_STR_EQ(tsrv_jstr(ans, "version"), "1");
    ASSERT_STR_EQ(tsrv_jstr(ans, "model"), "widedeep@1");
    json_decref(ans);

    ASSERT_EQ(tsrv_stop(&s), 0);

    /* the impressions are in the store: one per answered request of a unit in an arm */
    evstore_cfg ec = evstore_cfg_default();
    ec.dir = state;
    evstore *st;
    ASSERT_OK(evstore_open(&st, &ec));
    ASSERT_OK(exp_declare_all(&xs, st)); /* the same declarations: the runs of the server */
    ev_arm_report rep[EVSTORE_MAX_ARMS];
    ASSERT_OK(evstore_report(st, home->run, rep, home->n_arms, NULL));
    for (int a = 0; a < 3; a++) {
        ASSERT_EQ(rep[a].s.n, n_home[a]);
        ASSERT_EQ(rep[a].s.units, n_home[a]);
        ASSERT_EQ(rep[a].items_shown, 2 * n_home[a]);
        ASSERT_EQ(rep[a].fallbacks, 0);
    }
    ASSERT_OK(evstore_report(st, sess->run, rep, sess->n_arms, NULL));
    for (int a = 0; a < 2; a++) ASSERT_EQ(rep[a].s.n, n_sess[a]);
    ASSERT_OK(evstore_report(st, fb->run, rep, fb->n_arms, NULL));
    ASSERT_EQ(rep[0].s.n, n_fb[0]);
    ASSERT_EQ(rep[0].fallbacks, 0);
    ASSERT_EQ(rep[1].s.n, n_fb[1]);
    ASSERT_EQ(rep[1].fallbacks, fb_fallbacks);
    evstore_close(st);
    exp_set_free(&xs);
}

/* The Wide & Deep rows of rank impressions: the model's input columns, and per shown item its values (the
 * candidate's over the context's), as `recd events export` writes them. */
TEST_TIMEOUT(server_exp_rank_rows, 120)
{
    char state[1100], path[1200];
    snprintf(state, sizeof state, "%s/state", test_tmpdir());
    tsrv s;
    start(&s, state);
    exp_set xs;
    parse_exps(EXPS, &xs);
    const experiment *home = exp_find(&xs, "home", 4);
    const char *u = NULL;
    char ub[32];
    for (int i = 0; i < 100 && !u; i++) { /* a unit in an arm */
        snprintf(ub, sizeof ub, "user-%d", i);
        if (exp_assign(home, ub, strlen(ub), 1e9) >= 0) u = ub;
    }
    ASSERT(u);
    char body[1024];
    snprintf(body, sizeof body,
             "{\"experiment\":\"home\",\"user_id\":\"%s\",\"k\":3,\"context\":{\"x1\":0.3,\"c1\":\"b\"},"
             "\"candidates\":[{\"item_id\":\"a\",\"features\":{\"c2\":\"k,1\",\"x2\":-1}},"
             "{\"item_id\":\"b\",\"features\":{\"c2\":\"q\\\"t\",\"c1\":\"zz\",\"x1\":2}},"
             "{\"item_id\":\"c\",\"features\":{\"y\":\"1\"}}]}",
             u);
    json_t *ans = tsrv_post(&s, "/v1/rank", body, 200);
    ASSERT(json_string_value(json_object_get(ans, "arm")));
    const json_t *items = json_object_get(ans, "items");
    ASSERT_EQ(json_array_size(items), 3);
    json_decref(ans);
    ASSERT_EQ(tsrv_stop(&s), 0);
    snprintf(path, sizeof path, "%s/rows.csv", test_tmpdir());
    FILE *f = fopen(path, "w");
    ASSERT(f);
    ev_export_opts o = {.experiment = "home"};
    ev_export_stats es;
    memset(&es, 0, sizeof es);
    ASSERT_OK(evstore_export(state, NULL, f, &o, &es));
    fclose(f);
    ASSERT_EQ(es.rows, 3);
    char out[4096];
    ASSERT_EQ(test_run(out, sizeof out, "cat %s", path), 0);
    ASSERT_CONTAINS(out, "x1,x2,c1,c2,label\n");
    /* each candidate's row (in answer order, so look for each line) */
    ASSERT_CONTAINS(out, "0.29999999999999999,-1,b,\"k,1\",0\n");
    ASSERT_CONTAINS(out, "2,,zz,\"q\"\"t\",0\n");
    ASSERT_CONTAINS(out, "0.29999999999999999,,b,,0\n");
    exp_set_free(&xs);
}

/* Settings refused at start, exit 2 with the message: a changed share with the same salt (the store
 * remembers the declared shares), experiments without state.dir. */
TEST_TIMEOUT(server_exp_refused_settings, 120)
{
    char state[1100], cfg[1100], text[4096], root[1024], out[4096];
    snprintf(state, sizeof state, "%s/state", test_tmpdir());
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    snprintf(cfg, sizeof cfg, "%s/changed.json", test_tmpdir());
    tsrv s;
    start(&s, state); /* declares home with 0.3/0.3/0.3 */
    ASSERT_EQ(tsrv_stop(&s), 0);
    snprintf(text, sizeof text,
             "{\"http\":{\"bind\":\"127.0.0.1\",\"port\":%d},\"snapshots\":{\"root\":\"%s\",\"models\":" MODELS_JSON
             "},\"state\":{\"dir\":\"%s\"},\"experiments\":[{\"name\":\"home\",\"salt\":\"home-salt\",\"arms\":["
             "{\"name\":\"wide\",\"model\":\"wide\",\"share\":0.5},{\"name\":\"deep\",\"model\":\"deep\",\"share\":0.2},"
             "{\"name\":\"wd\",\"model\":\"widedeep\",\"version\":\"1\",\"share\":0.3}]}]}",
             test_free_port(), root, state);
    test_write_file(cfg, text);
    int st = test_run(out, sizeof out, "timeout 20 %s serve -c %s", test_recd_bin(), cfg);
    if (st != 2) FAIL("exit %d, want 2: %s", st, out);
    ASSERT_CONTAINS(out, "home");
    ASSERT_CONTAINS(out, "salt");
    /* experiments without state.dir */
    snprintf(text, sizeof text,
             "{\"http\":{\"bind\":\"127.0.0.1\",\"port\":%d},\"snapshots\":{\"root\":\"%s\",\"models\":" MODELS_JSON
             "},\"experiments\":" EXPS "}",
             test_free_port(), root);
    test_write_file(cfg, text);
    st = test_run(out, sizeof out, "timeout 20 %s serve -c %s", test_recd_bin(), cfg);
    if (st != 2) FAIL("exit %d, want 2: %s", st, out);
    ASSERT_CONTAINS(out, "experiments need state.dir");
    /* a bad experiment: exit 2 naming the field */
    snprintf(text, sizeof text,
             "{\"http\":{\"bind\":\"127.0.0.1\",\"port\":%d},\"snapshots\":{\"root\":\"%s\",\"models\":" MODELS_JSON
             "},\"state\":{\"dir\":\"%s\"},\"experiments\":[{\"name\":\"x\",\"salt\":\"s\",\"arms\":[{\"name\":\"a\","
             "\"model\":\"nope\",\"share\":1}]}]}",
             test_free_port(), root, state);
    test_write_file(cfg, text);
    st = test_run(out, sizeof out, "timeout 20 %s serve -c %s", test_recd_bin(), cfg);
    if (st != 2) FAIL("exit %d, want 2: %s", st, out);
    ASSERT_CONTAINS(out, "experiments[0].arms[0].model: \"nope\" is not one of snapshots.models");
    /* --help lists the settings */
    static char help[1 << 16];
    st = test_run(help, sizeof help, "%s serve --help", test_recd_bin());
    ASSERT_EQ(st, 0);
    ASSERT_CONTAINS(help, "--state.dir");
    ASSERT_CONTAINS(help, "--events.retention_days");
    ASSERT_CONTAINS(help, "--events.max_batch");
    ASSERT_CONTAINS(help, "--experiments");
}
