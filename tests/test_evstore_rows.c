/* tests/test_evstore_rows.c - the Wide & Deep rows of impressions in their compact form (server/evstore.h,
 * ev_impression.ctx_row): the context's values once, per item only its own (an empty field takes the
 * context's, "" is an explicit empty value), merged by `recd events export` into the same full rows as
 * full rows give; rows over EVSTORE_ROWS_MAX are left out (the impression stored, counted), in the store
 * and through POST /v1/rank (a wide context, many wide candidates: 200, the exposure kept). Real LMDB in
 * the test's temporary folder; no timing assertion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core/sbuf.h"
#include "models/widedeep.h"
#include "server/evstore.h"
#include "tests/test_evstore_util.h"
#include "tests/test_server_util.h"
#include "tests/testlib.h"

#define T0 1700000000.0

static evstore *open_store(const char *dir)
{
    evstore_cfg c = tev_cfg(dir, 0, 0);
    return tev_open(&c);
}

/* A batch of one event, waited for: its status. */
static int event(evstore *st, ev_type type, const char *req, const char *item)
{
    tev_batch w;
    tev_batch_init(&w);
    tev_add(&w, type, req, item, NULL, type == EV_ACQUISITION ? 1 : 0, T0 + 100);
    ASSERT_OK(tev_run(st, &w));
    tev_batch_free(&w);
    return w.b.status;
}

static void impress(evstore *st, int run, const char *req, double t, int n, const char *const *items,
                    const char *header, const char *ctx, const char *const *rows)
{
    api_str it[8], rw[8];
    for (int i = 0; i < n; i++) {
        it[i] = tev_str(items[i]);
        if (rows) rw[i] = tev_str(rows[i]);
    }
    ev_impression imp = tev_impression(run, 0, req, "u1", t);
    imp.items = it;
    imp.n_items = n;
    imp.row_header = tev_str(header);
    imp.rows = rows ? rw : NULL;
    imp.ctx_row = tev_str(ctx); /* NULL: full rows */
    ASSERT_OK(evstore_impression(st, &imp));
}

static void export_rows(const char *dir, const char *exp, ev_export_stats *es)
{
    FILE *f = fopen(tev_path("rows.csv"), "w");
    ASSERT(f);
    ev_export_opts o = {exp, 0, 0, NULL};
    ASSERT_OK(evstore_export(dir, NULL, f, &o, es));
    fclose(f);
}

/* Compact rows merge into the full rows the same impression in full form gives: a candidate overriding
 * the context, an explicit empty value (""), missing trailing fields, quoted fields with commas and
 * quotes on both sides, an empty context row; full-row impressions in the same log unchanged. */
TEST(evstore_rows_compact_export)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tev_path("state"));
    evstore *st = open_store(dir);
    int run = tev_declare(st, "home", "s", 2, NULL);
    const char *H = "x1,x2,c1,c2";
    const char *its[] = {"a", "b", "c", "d", "e", "f"};
    /* full rows (the form before compact rows) */
    const char *full[] = {"0.5,,b,\"k,1\"", "2,,zz,\"q\"\"t\"", "0.5,,b,"};
    impress(st, run, "q1", T0, 3, its, H, NULL, full);
    /* the same rows, compact: context 0.5,,b,"k,1" */
    const char *cmp[] = {"", "2,,zz,\"q\"\"t\"", ",,,\"\""};
    impress(st, run, "q2", T0 + 1, 3, its, H, "0.5,,b,\"k,1\"", cmp);
    /* overrides in the middle and at the end, trailing fields missing, a context with quoted commas */
    const char *cmp2[] = {",7", ",,\"\"", ",,,x", "\"\",\"\",\"\",\"\"", ",,\" a\"", ""};
    impress(st, run, "q3", T0 + 2, 6, its, H, "\"1,5\",-3,\"q\"\"t\",", cmp2);
    /* an empty context row (n == 0, p set): every field is the item's or empty */
    const char *cmp3[] = {"1,2,c,d", ",,\"\""};
    impress(st, run, "q4", T0 + 3, 2, its, H, "", cmp3);
    /* a newline the item overrides keeps the row; one it takes from the context skips it */
    const char *cmp4[] = {",,,ok", ""};
    impress(st, run, "q5", T0 + 4, 2, its, H, "1,2,c,\"x\ny\"", cmp4);
    ASSERT_EQ(event(st, EV_ACQUISITION, "q2", "b"), 0);
    ASSERT_EQ(event(st, EV_ACQUISITION, "q3", "f"), 0);
    ev_export_stats es;
    export_rows(dir, "home", &es);
    ASSERT_EQ(es.rows, 15);
    ASSERT_EQ(es.positives, 2);
    ASSERT_EQ(es.skipped_rows, 1);
    ASSERT_STR_EQ(tev_slurp(tev_path("rows.csv")), "x1,x2,c1,c2,label\n"
                                                   "0.5,,b,\"k,1\",0\n2,,zz,\"q\"\"t\",0\n0.5,,b,,0\n"
                                                   "0.5,,b,\"k,1\",0\n2,,zz,\"q\"\"t\",1\n0.5,,b,,0\n"
                                                   "\"1,5\",7,\"q\"\"t\",,0\n"
                                                   "\"1,5\",-3,,,0\n"
                                                   "\"1,5\",-3,\"q\"\"t\",x,0\n"
                                                   ",,,,0\n"
                                                   "\"1,5\",-3,\" a\",,0\n"
                                                   "\"1,5\",-3,\"q\"\"t\",,1\n"
                                                   "1,2,c,d,0\n,,,,0\n"
                                                   "1,2,c,ok,0\n");
    ASSERT_EQ(tev_metric(st, "recd_events_rows_skipped_total"), 0);
    evstore_close(st);
}

/* Rows over EVSTORE_ROWS_MAX (or marked rows_skipped by the route) are left out: the impression is stored
 * (an event on it is accepted), counted in recd_events_rows_skipped_total, and exports no rows. */
TEST(evstore_rows_over_bound_left_out)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tev_path("state"));
    evstore *st = open_store(dir);
    int run = tev_declare(st, "home", "s", 2, NULL);
    const char *its[] = {"a", "b"};
    size_t big = EVSTORE_ROWS_MAX / 2 + 10;
    char *w = malloc(big + 1);
    ASSERT(w);
    memset(w, 'w', big);
    w[big] = 0;
    const char *wide[] = {w, w};
    impress(st, run, "big", T0, 2, its, "f1", NULL, wide); /* full rows over the bound */
    impress(st, run, "bigctx", T0 + 1, 2, its, "f1", w, wide); /* compact: context and rows */
    const char *small[] = {"1", "2"};
    api_str it[2] = {tev_str("a"), tev_str("b")};
    ev_impression imp = tev_impression(run, 0, "marked", "u2", T0 + 2);
    imp.items = it;
    imp.n_items = 2;
    imp.rows_skipped = 1;
    ASSERT_OK(evstore_impression(st, &imp));
    impress(st, run, "fine", T0 + 3, 2, its, "f1", "", small);
    ASSERT_EQ(event(st, EV_CLICK, "big", "a"), 0);
    ASSERT_EQ(event(st, EV_ACQUISITION, "bigctx", "b"), 0);
    ASSERT_EQ(event(st, EV_CLICK, "marked", "a"), 0);
    ASSERT_EQ(tev_metric(st, "recd_events_rows_skipped_total"), 3);
    ev_arm_report ar[2];
    ASSERT_OK(evstore_report(st, run, ar, 2, NULL));
    ASSERT_EQ(ar[0].s.n + ar[1].s.n, 4); /* every exposure counted */
    ev_export_stats es;
    export_rows(dir, NULL, &es);
    ASSERT_EQ(es.rows, 2);
    ASSERT_STR_EQ(tev_slurp(tev_path("rows.csv")), "f1,label\n1,0\n2,0\n");
    evstore_close(st);
    free(w);
}

/* ---- through POST /v1/rank ---- */
#define EXPS                                                                                          \
    "[{\"name\":\"ab\",\"salt\":\"ab-salt\",\"arms\":[{\"name\":\"a\",\"model\":\"widedeep\",\"share\":0.5}," \
    "{\"name\":\"b\",\"model\":\"widedeep\",\"version\":\"1\",\"share\":0.5}]}]"

static void start(tsrv *s, const char *state)
{
    char root[1024], extra[2048];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    mkdir(root, 0755);
    uint64_t ver;
    wd_model_free(tsrv_publish_wd(root, "widedeep", 51, 6, 5, &ver));
    ASSERT_EQ(ver, 1);
    snprintf(extra, sizeof extra,
             "\"snapshots.models\":[\"widedeep\"],\"state\":{\"dir\":\"%s\"},\"http.max_body_bytes\":2000000,"
             "\"experiments\":" EXPS,
             state);
    tsrv_start(s, extra, 1);
}

/* The rank answer's request id (owned by the caller) after checking the answer: 200, in an arm, n items. */
static char *rank(tsrv *s, const char *body, size_t n_items)
{
    json_t *ans = tsrv_post(s, "/v1/rank", body, 200);
    ASSERT(json_string_value(json_object_get(ans, "arm")));
    ASSERT_EQ(json_array_size(json_object_get(ans, "items")), n_items);
    char *id = strdup(tsrv_jstr(ans, "request_id"));
    json_decref(ans);
    return id;
}

static int post_event(tsrv *s, const char *req, const char *item)
{
    char body[512];
    snprintf(body, sizeof body, "[{\"request_id\":\"%s\",\"type\":\"acquisition\",\"item_id\":\"%s\"}]", req,
             item);
    tresp r;
    ASSERT_EQ(tsrv_http(s, "POST", "/v1/events", body, strlen(body), NULL, &r), 0);
    int st = (int)r.status;
    tresp_free(&r);
    return st;
}

TEST_TIMEOUT(server_rank_rows_compact, 120)
{
    char state[1100];
    snprintf(state, sizeof state, "%s/state", test_tmpdir());
    tsrv s;
    start(&s, state);
    /* a candidate overriding the context, an explicit empty value, no features, a quoted value */
    char *q1 = rank(&s,
                    "{\"experiment\":\"ab\",\"user_id\":\"u1\",\"k\":3,"
                    "\"context\":{\"x1\":0.3,\"c1\":\"b\",\"c2\":\"ctx\"},"
                    "\"candidates\":[{\"item_id\":\"a\",\"features\":{\"c2\":\"\",\"x2\":-1}},"
                    "{\"item_id\":\"b\",\"features\":{\"c2\":\"q\\\"t\",\"c1\":\"zz\",\"x1\":2}},"
                    "{\"item_id\":\"c\"}]}",
                    3);
    ASSERT(post_event(&s, q1, "b") / 100 == 2);

    /* a wide context (300 KB, over EVSTORE_ROWS_MAX): 200, the impression stored without rows */
    size_t wn = 300000;
    char *body = malloc(wn + 4096);
    ASSERT(body);
    int off = snprintf(body, 4096, "{\"experiment\":\"ab\",\"user_id\":\"u2\",\"k\":2,\"context\":{\"c2\":\"");
    memset(body + off, 'D', wn);
    snprintf(body + off + wn, 4096, "\"},\"candidates\":[{\"item_id\":\"a\"},{\"item_id\":\"b\"}]}");
    char *q2 = rank(&s, body, 2);
    ASSERT(post_event(&s, q2, "a") / 100 == 2);

    /* 1000 candidates of 300 bytes each (the rows pass the bound): 200, stored without rows */
    size_t cap = 1000 * 400 + 4096;
    char *b3 = realloc(body, cap);
    ASSERT(b3);
    body = b3;
    sbuf sb;
    sbuf_init(&sb);
    sbuf_adds(&sb, "{\"experiment\":\"ab\",\"user_id\":\"u3\",\"k\":1000,\"context\":{\"x1\":1},\"candidates\":[");
    char v[301];
    memset(v, 'v', 300);
    v[300] = 0;
    for (int i = 0; i < 1000; i++)
        sbuf_printf(&sb, "%s{\"item_id\":\"i%d\",\"features\":{\"c2\":\"%s%d\"}}", i ? "," : "", i, v, i);
    sbuf_adds(&sb, "]}");
    ASSERT(!sbuf_failed(&sb));
    char *q3 = rank(&s, sb.data, 1000);
    ASSERT(post_event(&s, q3, "i7") / 100 == 2);
    /* 9 KB context x 1000 candidates without features (the reviewer's case): stored with its rows */
    sbuf_reset(&sb);
    sbuf_adds(&sb, "{\"experiment\":\"ab\",\"user_id\":\"u4\",\"k\":1000,\"context\":{\"x1\":1,\"c2\":\"");
    for (int i = 0; i < 30; i++) sbuf_adds(&sb, v);
    sbuf_adds(&sb, "\"},\"candidates\":[");
    for (int i = 0; i < 1000; i++) sbuf_printf(&sb, "%s{\"item_id\":\"j%d\"}", i ? "," : "", i);
    sbuf_adds(&sb, "]}");
    char *q4 = rank(&s, sb.data, 1000);
    ASSERT(post_event(&s, q4, "j9") / 100 == 2);
    ASSERT_EQ(tsrv_metric(&s, "recd_events_rows_skipped_total"), 2);
    ASSERT_EQ(tsrv_stop(&s), 0);

    ev_export_stats es;
    export_rows(state, "ab", &es);
    ASSERT_EQ(es.rows, 3 + 1000);
    ASSERT_EQ(es.positives, 2);
    const char *out = tev_slurp(tev_path("rows.csv")); /* the first 64 KB */
    ASSERT_CONTAINS(out, "x1,x2,c1,c2,label\n");
    ASSERT_CONTAINS(out, "0.29999999999999999,-1,b,,0\n");
    ASSERT_CONTAINS(out, "2,,zz,\"q\"\"t\",1\n");
    ASSERT_CONTAINS(out, "0.29999999999999999,,b,ctx,0\n");
    ASSERT_CONTAINS(out, "1,,,vvvv");
    sbuf_release(&sb);
    free(body);
    free(q1);
    free(q2);
    free(q3);
    free(q4);
}
