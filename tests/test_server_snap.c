/* tests/test_server_snap.c - snapshot versions as the server sees them (issue 9): a refused newest
 * version falls back to the newest valid older one (at start, after a restart, on a scan), refusals are
 * remembered until the version's files change, 20-digit version names, truncated files refused, and
 * /v1/models' last_error without filesystem paths. Registry tests run in-process; the others run the
 * real `recd serve`. */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "server/registry.h"
#include "server/sbuf.h"
#include "tests/test_server_util.h"
#include "tests/testlib.h"

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The value of a metric line "name value" in /metrics (-1 if absent). */
static double metric(const tsrv *s, const char *series)
{
    tresp r;
    ASSERT_EQ(tsrv_http(s, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    ASSERT_EQ(r.status, 200);
    double v = -1;
    size_t n = strlen(series);
    for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            v = atof(p + n + 1);
            break;
        }
    tresp_free(&r);
    return v;
}

#define REFUSED "recd_snapshots_refused_total{model=\"gru4rec\"}"

/* The version of gru4rec that /readyz reports (into buf; "" when none). */
static const char *ready_version(const tsrv *s, char *buf, size_t cap)
{
    tresp r;
    tsrv_http(s, "GET", "/readyz", NULL, 0, NULL, &r);
    const char *v = r.json ? jstr(json_object_get(r.json, "models"), "gru4rec") : NULL;
    snprintf(buf, cap, "%s", v ? v : "");
    tresp_free(&r);
    return buf;
}

/* Wait until the served version of gru4rec is `version`. */
static void wait_version(const tsrv *s, const char *version)
{
    char got[64] = "";
    for (int i = 0; i < 400; i++) {
        if (strcmp(ready_version(s, got, sizeof got), version) == 0) return;
        usleep(50000);
    }
    FAIL("version %s never served (last: '%s')", version, got);
}

static void wait_refused(const tsrv *s, double n)
{
    for (int i = 0; i < 400 && metric(s, REFUSED) < n; i++)
        usleep(50000);
    ASSERT_EQ(metric(s, REFUSED), n);
}

/* POST /v1/next answers 200 from `version`. */
static void expect_next_from(const tsrv *s, const char *version)
{
    json_t *a = tsrv_post(s, "/v1/next", "{\"items\":[\"i1\"],\"k\":3}", 200);
    ASSERT_STR_EQ(jstr(a, "version"), version);
    json_decref(a);
}

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
    ASSERT_STR_EQ(ready_version(&s, v, sizeof v), "1");
    expect_next_from(&s, "1");
    ASSERT_EQ(metric(&s, REFUSED), 1);
    ASSERT_EQ(tsrv_stop(&s), 0);
    /* a restart (rolling deploy) comes back ready on version 1 too */
    tsrv_start(&s, "", 1);
    ASSERT_STR_EQ(ready_version(&s, v, sizeof v), "1");
    expect_next_from(&s, "1");
    ASSERT_EQ(tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 3), 3);
    wait_version(&s, "3");
    expect_next_from(&s, "3");
    ASSERT_EQ(metric(&s, REFUSED), 1); /* version 2 was not tried again */
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
    wait_refused(&s, 1);
    expect_next_from(&s, "1");
    const char *const auth[] = {"Authorization: Bearer s3cret", NULL};
    for (int k = 0; k < 2; k++) {
        tresp r;
        ASSERT_EQ(tsrv_http(&s, "GET", "/v1/models", NULL, 0, k ? auth : NULL, &r), 0);
        ASSERT_EQ(r.status, 200);
        const char *err = jstr(json_array_get(json_object_get(r.json, "models"), 0), "last_error");
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
    ASSERT_STR_EQ(ready_version(&s, v, sizeof v), "1");
    sh("set -e; cd %s/gru4rec; cp -r 1 .tmp-copy; mv .tmp-copy 18446744073709551615%s", root, "");
    wait_version(&s, "18446744073709551615");
    expect_next_from(&s, "18446744073709551615");
    tresp r;
    ASSERT_EQ(tsrv_http(&s, "GET", "/v1/models", NULL, 0, NULL, &r), 0);
    ASSERT_STR_EQ(jstr(json_array_get(json_object_get(r.json, "models"), 0), "version"), "18446744073709551615");
    tresp_free(&r);
    ASSERT(metric(&s, "recd_model_version{model=\"gru4rec\"}") == (double)UINT64_MAX);
    ASSERT_EQ(metric(&s, REFUSED), 0);
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
    const char *err = jstr(json_array_get(json_object_get(j, "models"), 0), "last_error");
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
