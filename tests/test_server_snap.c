/* tests/test_server_snap.c - snapshot versions as the server sees them (issue 9): a refused newest
 * version falls back to the newest valid older one (at start, after a restart, on a scan), refusals are
 * remembered until the version's files change, 20-digit version names, truncated files refused, and
 * /v1/models' last_error and snapshot meta without filesystem paths. Registry tests run in-process; the
 * others run the real `recd serve`. */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/idmap.h"
#include "core/log.h"
#include "models/gru4rec.h"
#include "server/registry.h"
#include "core/sbuf.h"
#include "tests/test_server_util.h"
#include "tests/testlib.h"

static void sh(const char *fmt, const char *a, const char *b)
{
    char cmd[8192], out[4096];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    int st = test_run(out, sizeof out, "%s", cmd);
    if (st != 0) FAIL("'%s' exited %d: %s", cmd, st, out);
}

/* ROOT/gru4rec/NAME made bad in one of several ways (next to a good version 1), built aside and
 * published with one rename as the trainer does (a server never sees it half made). */
static void make_bad_version(const char *root, const char *name, const char *how)
{
    char d[2048], final[2048];
    snprintf(d, sizeof d, "%s/gru4rec/.tmp-bad-%s", root, name);
    snprintf(final, sizeof final, "%s/gru4rec/%s", root, name);
    if (strcmp(how, "empty") == 0) {
        ASSERT_EQ(mkdir(d, 0755), 0);
    } else if (strcmp(how, "garbage") == 0) { /* not an LMDB file at all */
        ASSERT_EQ(mkdir(d, 0755), 0);
        sh("head -c 65536 /dev/zero | tr '\\0' 'Z' > %s/data.mdb%s", d, "");
    } else if (strcmp(how, "truncated") == 0) { /* a copy of 1 cut by one page: LMDB would SIGBUS */
        sh("set -e; cp -r %s/gru4rec/1 %s; chmod -R u+w %2$s; f=%2$s/data.mdb; truncate -s $(( $(stat -c %%s $f) - 4096 )) $f",
           root, d);
    } else {
        FAIL("how %s", how);
    }
    ASSERT_EQ(rename(d, final), 0);
}

/* Version 1 good, version 2 bad (how): the server starts serving 1, still does after a restart, and
 * takes a good version 3. */
static void fallback_scenario(const char *how)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    ASSERT_EQ(tsrv_make_snapshot(root, "gru4rec", 30, 8, 1), 1);
    make_bad_version(root, "2", how);
    tsrv s;
    tsrv_start(&s, "", 1); /* before the fix: never ready (503 forever) */
    char v[64];
    ASSERT_STR_EQ(tsrv_ready_version(&s, v, sizeof v), "1");
    tsrv_expect_next_from(&s, "1");
    ASSERT_EQ(tsrv_metric(&s, TSRV_REFUSED), 1);
    ASSERT_EQ(tsrv_stop(&s), 0);
    /* a restart (rolling deploy) comes back ready on version 1 too */
    tsrv_start(&s, "", 1);
    ASSERT_STR_EQ(tsrv_ready_version(&s, v, sizeof v), "1");
    tsrv_expect_next_from(&s, "1");
    ASSERT_EQ(tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 3), 3);
    tsrv_wait_version(&s, "3");
    tsrv_expect_next_from(&s, "3");
    ASSERT_EQ(tsrv_metric(&s, TSRV_REFUSED), 1); /* version 2 was not tried again */
    ASSERT_EQ(tsrv_stop(&s), 0);
}

TEST(server_snap_fallback_empty_newest)
{
    fallback_scenario("empty");
}

TEST(server_snap_fallback_corrupt_newest)
{
    fallback_scenario("garbage");
}

TEST(server_snap_fallback_truncated_newest)
{
    fallback_scenario("truncated");
}

/* A version refused while an older one serves: the older keeps serving; a truncated copy never
 * crashes the server; the refusal is in /v1/models without filesystem paths, with or without the
 * admin token. */
TEST(server_snap_truncated_refused_models_hide_paths)
{
    tsrv s;
    tsrv_start(&s, "\"admin_token\":\"s3cret\"", 0);
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1);
    tsrv_wait_ready(&s);
    make_bad_version(s.root, "2", "truncated");
    ASSERT_EQ(tsrv_wait_metric(&s, TSRV_REFUSED, 1, 20000), 1);
    tsrv_expect_next_from(&s, "1");
    const char *const auth[] = {"Authorization: Bearer s3cret", NULL};
    for (int k = 0; k < 2; k++) {
        tresp r;
        ASSERT_EQ(tsrv_http(&s, "GET", "/v1/models", NULL, 0, k ? auth : NULL, &r), 0);
        ASSERT_EQ(r.status, 200);
        const char *err = tsrv_jstr(json_array_get(json_object_get(r.json, "models"), 0), "last_error");
        ASSERT(err != NULL);
        ASSERT_CONTAINS(err, "truncated");
        ASSERT_CONTAINS(err, "gru4rec/2/data.mdb");
        if (strstr(err, test_tmpdir()) || strstr(err, "/tmp") || err[0] == '/' || strstr(err, " /"))
            FAIL("last_error shows a path: %s", err);
        tresp_free(&r);
    }
    /* the log keeps the whole message */
    char out[65536];
    test_run(out, sizeof out, "grep 'refused snapshot' %s", s.log);
    ASSERT_CONTAINS(out, s.root);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* Versions of 20 digits: UINT64_MAX serves; names over it or longer are ignored (logged), not wrapped. */
TEST(server_snap_twenty_digit_version)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    ASSERT_EQ(tsrv_make_snapshot(root, "gru4rec", 30, 8, 1), 1);
    /* 99999999999999999999 would wrap to 7766279631452241919, 18446744073709551616 to 0 */
    sh("set -e; cd %s/gru4rec; cp -r 1 99999999999999999999; cp -r 1 18446744073709551616; "
       "cp -r 1 100000000000000000000%s",
       root, "");
    tsrv s;
    tsrv_start(&s, "", 1);
    char v[64];
    ASSERT_STR_EQ(tsrv_ready_version(&s, v, sizeof v), "1");
    sh("set -e; cd %s/gru4rec; cp -r 1 .tmp-copy; mv .tmp-copy 18446744073709551615%s", root, "");
    tsrv_wait_version(&s, "18446744073709551615");
    tsrv_expect_next_from(&s, "18446744073709551615");
    tresp r;
    ASSERT_EQ(tsrv_http(&s, "GET", "/v1/models", NULL, 0, NULL, &r), 0);
    ASSERT_STR_EQ(tsrv_jstr(json_array_get(json_object_get(r.json, "models"), 0), "version"), "18446744073709551615");
    tresp_free(&r);
    ASSERT(tsrv_metric(&s, "recd_model_version{model=\"gru4rec\"}") == (double)UINT64_MAX);
    ASSERT_EQ(tsrv_metric(&s, TSRV_REFUSED), 0);
    ASSERT_EQ(tsrv_stop(&s), 0);
    char out[65536];
    test_run(out, sizeof out, "cat %s", s.log);
    ASSERT_CONTAINS(out, "ignoring folder '99999999999999999999'");
    ASSERT_CONTAINS(out, "ignoring folder '100000000000000000000'");
}

/* ---- the registry in-process: deterministic scans ---- */

static registry *new_reg(const char *root)
{
    const char *names[] = {"gru4rec"};
    registry *r = registry_new(root, names, 1);
    ASSERT(r != NULL);
    registry_set_warm(r, 2);
    return r;
}

static uint64_t serving(registry *r)
{
    model_version *v = registry_acquire(r, "gru4rec", NULL);
    uint64_t x = v ? v->version : 0;
    registry_release(r, v);
    return x;
}

TEST(server_snap_registry_falls_back_and_remembers)
{
    log_level = LOG_LVL_OFF;
    char root[1024];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    ASSERT_EQ(tsrv_make_snapshot(root, "gru4rec", 30, 8, 1), 1);
    make_bad_version(root, "2", "empty");
    registry *r = new_reg(root);
    ASSERT_EQ(registry_scan(r, NULL, 0), 1); /* 2 refused, 1 installed */
    ASSERT_EQ(serving(r), 1);
    ASSERT_EQ(registry_refused(r, "gru4rec"), 1);
    ASSERT_EQ(registry_scan(r, NULL, 0), 0); /* 2 unchanged: not tried again */
    ASSERT_EQ(registry_refused(r, "gru4rec"), 1);
    /* its data arrives (copied in place): tried again, and taken */
    sh("cp %s/gru4rec/1/data.mdb %s/gru4rec/2/data.mdb", root, root);
    ASSERT_EQ(registry_scan(r, NULL, 0), 1);
    ASSERT_EQ(serving(r), 2);
    ASSERT_EQ(registry_refused(r, "gru4rec"), 1);
    /* two bad ones above the serving version: both refused once, 2 keeps serving */
    make_bad_version(root, "3", "truncated");
    make_bad_version(root, "4", "garbage");
    ASSERT_EQ(registry_scan(r, NULL, 0), 0);
    ASSERT_EQ(serving(r), 2);
    ASSERT_EQ(registry_refused(r, "gru4rec"), 3);
    ASSERT_EQ(registry_scan(r, NULL, 0), 0);
    ASSERT_EQ(registry_refused(r, "gru4rec"), 3);
    /* a reload (force) retries both */
    ASSERT_EQ(registry_scan(r, NULL, 1), 0);
    ASSERT_EQ(registry_refused(r, "gru4rec"), 5);
    ASSERT_EQ(serving(r), 2);
    /* last_error: relative to the snapshots root, no path */
    sbuf b;
    sbuf_init(&b);
    registry_render_json(r, &b);
    sbuf_adds(&b, "}");
    json_error_t e;
    json_t *j = json_loadb(b.data, b.len, 0, &e);
    ASSERT(j != NULL);
    const char *err = tsrv_jstr(json_array_get(json_object_get(j, "models"), 0), "last_error");
    ASSERT(err != NULL);
    ASSERT_CONTAINS(err, "gru4rec/3/data.mdb"); /* 4 is refused first, then 3 */
    if (strstr(err, root)) FAIL("last_error shows the root: %s", err);
    json_decref(j);
    sbuf_release(&b);
    registry_free(r);
}

TEST(server_snap_registry_nothing_valid)
{
    log_level = LOG_LVL_OFF;
    char root[1024];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    ASSERT_EQ(mkdir(root, 0755), 0);
    char d[1100];
    snprintf(d, sizeof d, "%s/gru4rec", root);
    ASSERT_EQ(mkdir(d, 0755), 0);
    make_bad_version(root, "1", "empty");
    make_bad_version(root, "2", "garbage");
    registry *r = new_reg(root);
    ASSERT_EQ(registry_scan(r, NULL, 0), 0);
    ASSERT_EQ(serving(r), 0);
    ASSERT_EQ(registry_ready(r), 0);
    ASSERT_EQ(registry_refused(r, "gru4rec"), 2);
    ASSERT_EQ(registry_scan(r, NULL, 0), 0);
    ASSERT_EQ(registry_refused(r, "gru4rec"), 2);
    ASSERT_EQ(tsrv_make_snapshot(root, "gru4rec", 30, 8, 3), 3);
    ASSERT_EQ(registry_scan(r, NULL, 0), 1);
    ASSERT_EQ(serving(r), 3);
    ASSERT_EQ(registry_ready(r), 1);
    registry_free(r);
}

/* ---- /v1/models' meta without filesystem paths ---- */

/* Fails the test when a string value anywhere in j is or holds an absolute path: starts with '/',
 * holds "/tmp", the test's folder, or " /" (a path after a space). Returns the strings seen. */
static int expect_no_paths(const json_t *j, const char *where)
{
    if (json_is_string(j)) {
        const char *v = json_string_value(j);
        if (v[0] == '/' || strstr(v, "/tmp") || strstr(v, test_tmpdir()) || strstr(v, " /") ||
            strstr(v, "=/") || strstr(v, ":/b"))
            FAIL("%s shows a path: \"%s\"", where, v);
        return 1;
    }
    int n = 0;
    const char *key;
    size_t i;
    json_t *v;
    if (json_is_object(j)) json_object_foreach((json_t *)j, key, v) n += expect_no_paths(v, where);
    if (json_is_array(j)) json_array_foreach(j, i, v) n += expect_no_paths(v, where);
    return n;
}

/* The meta of model 0 in registry_render_json's answer (parsed; fails the test on invalid JSON). */
static json_t *rendered_models(registry *r)
{
    sbuf b;
    sbuf_init(&b);
    registry_render_json(r, &b);
    sbuf_adds(&b, "}");
    json_error_t e;
    json_t *j = json_loadb(b.data, b.len, 0, &e);
    if (!j) FAIL("/v1/models is not JSON (%s): %.600s", e.text, b.data);
    sbuf_release(&b);
    return j;
}

/* Strings under the snapshots root become relative to it, any other absolute path "(path)", whatever
 * the strings hold around them (quotes, backslashes, UTF-8); numbers stay. Before the fix the
 * meta was shown as written: "/tmp/..." everywhere. */
TEST(server_snap_models_meta_hides_paths)
{
    log_level = LOG_LVL_OFF;
    char root[1024], p[4][1200];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    snprintf(p[0], sizeof p[0], "%s/sessions.tsv", test_tmpdir());
    snprintf(p[1], sizeof p[1], "%s/gru4rec/1", root);
    snprintf(p[2], sizeof p[2], "from %s/x.tsv, \"quoted\" back\\slash donn\xc3\xa9" "es /tmp/\xc3\xa9t\xc3\xa9/a b",
             test_tmpdir());
    snprintf(p[3], sizeof p[3], "PATH=/usr/bin:/b (%s/gru4rec) [/srv/x] {'/etc/passwd'}", root);
    json_t *extra = json_pack("{s:{s:s, s:{s:s, s:s}}, s:{s:s, s:s, s:s}, s:[s, s, s, s, s, s], s:{s:f, s:f, s:I}}",
                              "config", "out_dir", root, "data", "path", p[0], "name", "g4",
                              "run", "train", p[0], "test", "/data/test.tsv", "out", p[1],
                              "notes", p[2], p[3], "metadata/x", "http://example.com/a/b", "snapshots/x",
                              "\xe2\x86\x92 \xe2\x9c\x93",
                              "metrics", "recall@20", 0.5, "mrr@20", 0.25, "n", (json_int_t)123);
    ASSERT(extra != NULL);
    tsrv_make_snapshot_meta(root, "gru4rec", 20, 8, 5, extra);
    json_decref(extra);

    const char *names[] = {"gru4rec"};
    registry *r = registry_new(root, names, 1);
    ASSERT(r != NULL);
    registry_set_warm(r, 1);
    ASSERT_EQ(registry_scan(r, NULL, 0), 1);
    json_t *j = rendered_models(r);
    const json_t *meta = json_object_get(json_array_get(json_object_get(j, "models"), 0), "meta");
    ASSERT(json_is_object(meta));
    ASSERT(expect_no_paths(j, "/v1/models") > 10);
    /* paths under the root relative to it, others "(path)" */
    ASSERT_STR_EQ(tsrv_jstr(json_object_get(meta, "config"), "out_dir"), "(path)");
    ASSERT_STR_EQ(tsrv_jstr(json_object_get(json_object_get(meta, "config"), "data"), "path"), "(path)");
    ASSERT_STR_EQ(tsrv_jstr(json_object_get(json_object_get(meta, "config"), "data"), "name"), "g4");
    ASSERT_STR_EQ(tsrv_jstr(json_object_get(meta, "run"), "train"), "(path)");
    ASSERT_STR_EQ(tsrv_jstr(json_object_get(meta, "run"), "test"), "(path)");
    ASSERT_STR_EQ(tsrv_jstr(json_object_get(meta, "run"), "out"), "gru4rec/1");
    const json_t *notes = json_object_get(meta, "notes");
    ASSERT_STR_EQ(json_string_value(json_array_get(notes, 0)),
                  "from (path), \"quoted\" back\\slash donn\xc3\xa9" "es (path) b");
    ASSERT_STR_EQ(json_string_value(json_array_get(notes, 1)),
                  "PATH=(path):(path) (gru4rec) [(path)] {'(path)'}");
    ASSERT_STR_EQ(json_string_value(json_array_get(notes, 2)), "metadata/x");
    ASSERT_STR_EQ(json_string_value(json_array_get(notes, 3)), "http://example.com/a/b");
    ASSERT_STR_EQ(json_string_value(json_array_get(notes, 4)), "snapshots/x");
    ASSERT_STR_EQ(json_string_value(json_array_get(notes, 5)), "\xe2\x86\x92 \xe2\x9c\x93");
    /* the metrics are still there */
    const json_t *mt = json_object_get(meta, "metrics");
    ASSERT_NEAR(json_real_value(json_object_get(mt, "recall@20")), 0.5, 1e-12);
    ASSERT_NEAR(json_real_value(json_object_get(mt, "mrr@20")), 0.25, 1e-12);
    ASSERT_EQ(json_integer_value(json_object_get(mt, "n")), 123);
    ASSERT(json_object_get(meta, "tensors") == NULL);
    json_decref(j);
    /* the snapshot itself keeps them (recd inspect shows the meta as written) */
    model_version *v = registry_acquire(r, "gru4rec", NULL);
    ASSERT_STR_EQ(tsrv_jstr(json_object_get(snap_meta(v->snap), "config"), "out_dir"), root);
    registry_release(r, v);
    registry_free(r);
}

/* A relative snapshots root ("snapshots") is dropped only where it starts a word: before the fix
 * "mysnapshots/x" became "myx" and "metasnapshots/y, z" "metay, z". */
TEST(server_snap_models_root_mid_word)
{
    log_level = LOG_LVL_OFF;
    ASSERT_EQ(chdir(test_tmpdir()), 0); /* each test runs in its own process */
    json_t *extra = json_pack("{s:[s, s, s, s]}", "notes", "mysnapshots/x", "snapshots/gru4rec/1",
                              "see snapshots/gru4rec/2 and metasnapshots/y, z", "(snapshots//a)");
    tsrv_make_snapshot_meta("snapshots", "gru4rec", 20, 8, 5, extra);
    json_decref(extra);
    const char *names[] = {"gru4rec"};
    registry *r = registry_new("snapshots", names, 1);
    ASSERT(r != NULL);
    registry_set_warm(r, 1);
    ASSERT_EQ(registry_scan(r, NULL, 0), 1);
    json_t *j = rendered_models(r);
    const json_t *notes =
        json_object_get(json_object_get(json_array_get(json_object_get(j, "models"), 0), "meta"), "notes");
    ASSERT_STR_EQ(json_string_value(json_array_get(notes, 0)), "mysnapshots/x");
    ASSERT_STR_EQ(json_string_value(json_array_get(notes, 1)), "gru4rec/1");
    ASSERT_STR_EQ(json_string_value(json_array_get(notes, 2)), "see gru4rec/2 and metasnapshots/y, z");
    ASSERT_STR_EQ(json_string_value(json_array_get(notes, 3)), "(a)");
    json_decref(j);
    registry_free(r);
}

/* The real trainer's meta (config.out, data.path: absolute paths) through the real server:
 * /v1/models, with or without the admin token, is valid JSON without any path and still shows the
 * metrics; the snapshot (recd inspect) keeps the paths. */
TEST_TIMEOUT(server_snap_models_trained_meta_hides_paths, 120)
{
    const char *tmp = test_tmpdir();
    char data[1024], cfg[1024], root[1024], out[16384];
    snprintf(data, sizeof data, "%s/sessions.tsv", tmp);
    snprintf(cfg, sizeof cfg, "%s/g.json", tmp);
    snprintf(root, sizeof root, "%s/snapshots", tmp);
    FILE *f = fopen(data, "w");
    ASSERT(f != NULL);
    fprintf(f, "sid\titem\tts\n");
    for (int s = 0; s < 300; s++)
        for (int k = 0; k < 4; k++)
            fprintf(f, "%d\tart%d\t%d\n", 1000 + s, (s + k) % 30, 1500000000 + s * 1800 + k * 30);
    fclose(f);
    test_write_file(cfg, "{\"layers\": [8], \"batch_size\": 8, \"n_sample\": 8, \"sample_cache\": 100,"
                         " \"data\": {\"session_col\": \"sid\", \"item_col\": \"item\", \"time_col\": \"ts\"}}\n");
    int st = test_run(out, sizeof out, "%s train gru4rec -c %s --data %s --epochs 1 --out %s --quiet 2>&1",
                      test_recd_bin(), cfg, data, root);
    if (st != 0) FAIL("train exited %d: %s", st, out);
    st = test_run(out, sizeof out, "%s inspect %s/gru4rec/1 2>&1", test_recd_bin(), root);
    if (st != 0) FAIL("inspect exited %d: %s", st, out);
    ASSERT_CONTAINS(out, data); /* the trainer did write absolute paths */
    tsrv s;
    tsrv_start(&s, "\"admin_token\":\"s3cret\"", 1);
    const char *const auth[] = {"Authorization: Bearer s3cret", NULL};
    for (int k = 0; k < 2; k++) {
        tresp r;
        ASSERT_EQ(tsrv_http(&s, "GET", "/v1/models", NULL, 0, k ? auth : NULL, &r), 0);
        ASSERT_EQ(r.status, 200);
        if (!r.json) FAIL("/v1/models is not JSON: %.600s", r.body);
        if (strstr(r.body, "/tmp") || strstr(r.body, tmp)) FAIL("/v1/models shows a path: %.2000s", r.body);
        const json_t *meta = json_object_get(json_array_get(json_object_get(r.json, "models"), 0), "meta");
        ASSERT(json_is_object(meta));
        ASSERT(expect_no_paths(r.json, "/v1/models") > 3);
        ASSERT_STR_EQ(tsrv_jstr(json_object_get(meta, "data"), "path"), "(path)");
        ASSERT_STR_EQ(tsrv_jstr(json_object_get(meta, "config"), "out"), "(path)"); /* setting out (was out_dir) */
        ASSERT(json_is_number(json_object_get(json_object_get(meta, "metrics"), "recall@20")));
        tresp_free(&r);
    }
    ASSERT_EQ(tsrv_stop(&s), 0);
}
