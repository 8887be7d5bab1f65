/* tests/test_server_ops.c - integration tests of `recd serve` operations: admin token, CORS, session
 * eviction, hot swap under load, refused snapshots, draining on SIGTERM, hostile bodies. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test_server_util.h"
#include "tests/testlib.h"

TEST(server_admin_token)
{
    tsrv s;
    tsrv_start(&s, "\"admin_token\":\"s3cret-token\"", 0);
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1);
    tsrv_wait_ready(&s);
    tresp r;
    ASSERT_EQ(tsrv_http(&s, "POST", "/v1/models/gru4rec/reload", "", 0, NULL, &r), 0);
    ASSERT_EQ(r.status, 401);
    tresp_free(&r);
    const char *wrong[] = {"Authorization: Bearer s3cret-tokem", NULL};
    ASSERT_EQ(tsrv_http(&s, "POST", "/v1/models/gru4rec/reload", "", 0, wrong, &r), 0);
    ASSERT_EQ(r.status, 403);
    tresp_free(&r);
    const char *good[] = {"Authorization: Bearer s3cret-token", NULL};
    ASSERT_EQ(tsrv_http(&s, "POST", "/v1/models/nope/reload", "", 0, good, &r), 0);
    ASSERT_EQ(r.status, 404);
    tresp_free(&r);
    /* A forced reload loads the same version again: a swap, same version. */
    ASSERT_EQ(tsrv_http(&s, "POST", "/v1/models/gru4rec/reload", "", 0, good, &r), 0);
    ASSERT_EQ(r.status, 202);
    ASSERT_STR_EQ(tsrv_jstr(r.json, "serving_version"), "1");
    tresp_free(&r);
    ASSERT_EQ(tsrv_wait_metric(&s, "recd_model_swaps_total{model=\"gru4rec\"}", 1, 5000), 1);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

TEST(server_cors)
{
    tsrv s;
    tsrv_start(&s, "\"http.cors_origins\":[\"https://shop.example\"]", 0);
    tresp r;
    const char *pre[] = {"Origin: https://shop.example", "Access-Control-Request-Method: POST",
                         "Access-Control-Request-Headers: content-type", NULL};
    ASSERT_EQ(tsrv_http(&s, "OPTIONS", "/v1/next", NULL, 0, pre, &r), 0);
    ASSERT_EQ(r.status, 204);
    ASSERT_STR_EQ(r.acao, "https://shop.example");
    tresp_free(&r);
    const char *bad[] = {"Origin: https://evil.example", "Access-Control-Request-Method: POST", NULL};
    ASSERT_EQ(tsrv_http(&s, "OPTIONS", "/v1/next", NULL, 0, bad, &r), 0);
    ASSERT_EQ(r.status, 204);
    ASSERT_STR_EQ(r.acao, "");
    tresp_free(&r);
    const char *simple[] = {"Origin: https://shop.example", NULL};
    ASSERT_EQ(tsrv_http(&s, "GET", "/healthz", NULL, 0, simple, &r), 0);
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.acao, "https://shop.example");
    tresp_free(&r);
    const char *other[] = {"Origin: https://evil.example", NULL};
    ASSERT_EQ(tsrv_http(&s, "GET", "/healthz", NULL, 0, other, &r), 0);
    ASSERT_STR_EQ(r.acao, "");
    tresp_free(&r);
    ASSERT_EQ(tsrv_http(&s, "OPTIONS", "/nowhere", NULL, 0, pre, &r), 0);
    ASSERT_EQ(r.status, 404);
    tresp_free(&r);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

TEST(server_session_eviction_count)
{
    tsrv s;
    tsrv_start(&s, "\"sessions\":{\"max\":2,\"shards\":1}", 0);
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1);
    tsrv_wait_ready(&s);
    json_decref(tsrv_post(&s, "/v1/next", "{\"session_id\":\"a\",\"item_id\":\"i3\"}", 200));
    json_decref(tsrv_post(&s, "/v1/next", "{\"session_id\":\"b\",\"item_id\":\"i4\"}", 200));
    json_decref(tsrv_post(&s, "/v1/next", "{\"session_id\":\"c\",\"item_id\":\"i5\"}", 200));
    ASSERT_EQ(tsrv_metric(&s, "recd_sessions"), 2);
    ASSERT_EQ(tsrv_metric(&s, "recd_session_evictions_total{reason=\"lru\"}"), 1);
    /* "a" was the least recently used: forgotten, so an unknown click leaves it with no known click. */
    json_t *a = tsrv_post(&s, "/v1/next", "{\"session_id\":\"c\",\"item_id\":\"zz\"}", 200);
    ASSERT(json_object_get(a, "fallback") == NULL);
    json_decref(a);
    a = tsrv_post(&s, "/v1/next", "{\"session_id\":\"a\",\"item_id\":\"zz\"}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "fallback"), "popular");
    json_decref(a);
    ASSERT_EQ(tsrv_metric(&s, "recd_session_evictions_total{reason=\"lru\"}"), 2); /* b went for a */
    ASSERT_EQ(tsrv_stop(&s), 0);
}

TEST(server_session_eviction_ttl)
{
    tsrv s;
    tsrv_start(&s, "\"sessions\":{\"ttl_s\":1,\"sweep_ms\":100}", 0);
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1);
    tsrv_wait_ready(&s);
    json_decref(tsrv_post(&s, "/v1/next", "{\"session_id\":\"a\",\"item_id\":\"i3\"}", 200));
    ASSERT_EQ(tsrv_metric(&s, "recd_sessions"), 1);
    usleep(1600000);
    for (int i = 0; i < 40 && tsrv_metric(&s, "recd_sessions") != 0; i++) usleep(100000);
    ASSERT_EQ(tsrv_metric(&s, "recd_sessions"), 0);
    ASSERT_EQ(tsrv_metric(&s, "recd_session_evictions_total{reason=\"ttl\"}"), 1);
    json_t *a = tsrv_post(&s, "/v1/next", "{\"session_id\":\"a\",\"item_id\":\"zz\"}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "fallback"), "popular");
    json_decref(a);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* ---- hot swap under load ---- */
struct loop_arg {
    const tsrv *s;
    _Atomic int stop;
    int ok, failed;
    char versions[16][24];
    int n_versions;
};

static void *client_loop(void *p)
{
    struct loop_arg *a = p;
    int i = 0;
    while (!atomic_load(&a->stop)) {
        char body[128];
        if (i % 2)
            snprintf(body, sizeof body, "{\"session_id\":\"s%d\",\"item_id\":\"i%d\",\"k\":5}", i % 7, i % 30);
        else
            snprintf(body, sizeof body, "{\"items\":[\"i%d\",\"i%d\"],\"k\":5}", i % 30, (i * 7) % 30);
        i++;
        tresp r;
        if (tsrv_http(a->s, "POST", "/v1/next", body, strlen(body), NULL, &r) != 0 || r.status != 200 || !r.json) {
            a->failed++;
            tresp_free(&r);
            continue;
        }
        a->ok++;
        const char *v = tsrv_jstr(r.json, "version");
        int seen = 0;
        for (int k = 0; k < a->n_versions; k++)
            if (strcmp(a->versions[k], v) == 0) seen = 1;
        if (!seen && a->n_versions < 16) snprintf(a->versions[a->n_versions++], 24, "%.20s", v);
        tresp_free(&r);
    }
    return NULL;
}

TEST_TIMEOUT(server_hot_swap_under_load, 120)
{
    tsrv s;
    tsrv_start(&s, "", 0);
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1);
    tsrv_wait_ready(&s);
    struct loop_arg a = {.s = &s};
    pthread_t th[2];
    struct loop_arg b = {.s = &s};
    pthread_create(&th[0], NULL, client_loop, &a);
    pthread_create(&th[1], NULL, client_loop, &b);
    for (int v = 2; v <= 5; v++) {
        usleep(300000);
        tsrv_make_snapshot(s.root, "gru4rec", 30, 8, (uint64_t)v);
        char want[16];
        snprintf(want, sizeof want, "%d", v);
        tsrv_wait_version(&s, want);
    }
    usleep(300000);
    atomic_store(&a.stop, 1);
    atomic_store(&b.stop, 1);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    ASSERT_EQ(a.failed + b.failed, 0);
    ASSERT(a.ok > 10 && b.ok > 10);
    ASSERT(a.n_versions >= 2);
    ASSERT_EQ(tsrv_metric(&s, "recd_model_swaps_total{model=\"gru4rec\"}"), 4);
    ASSERT_EQ(tsrv_metric(&s, "recd_model_version{model=\"gru4rec\"}"), 5);
    /* Same vocabulary and hidden size: sessions were kept across the swaps. */
    ASSERT_EQ(tsrv_metric(&s, "recd_session_resets_total"), 0);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

TEST(server_session_state_across_swaps)
{
    tsrv s;
    tsrv_start(&s, "", 0);
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1);
    tsrv_wait_ready(&s);
    json_decref(tsrv_post(&s, "/v1/next", "{\"session_id\":\"a\",\"item_id\":\"i0\"}", 200));
    /* Same vocabulary and H: the session keeps its state and seen items. */
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 2);
    tsrv_wait_version(&s, "2");
    json_t *a = tsrv_post(&s, "/v1/next", "{\"session_id\":\"a\",\"item_id\":\"zz\",\"k\":29,\"exclude_seen\":true}", 200);
    ASSERT(json_object_get(a, "fallback") == NULL); /* still has its known click */
    ASSERT_EQ(json_array_size(json_object_get(a, "items")), 29); /* i0 excluded */
    json_decref(a);
    ASSERT_EQ(tsrv_metric(&s, "recd_session_resets_total"), 0);
    /* Another hidden size: the state cannot carry over, the session is reset (and counted). */
    tsrv_make_snapshot(s.root, "gru4rec", 30, 12, 3);
    tsrv_wait_version(&s, "3");
    a = tsrv_post(&s, "/v1/next", "{\"session_id\":\"a\",\"item_id\":\"zz\",\"k\":3}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "fallback"), "popular");
    json_decref(a);
    ASSERT_EQ(tsrv_metric(&s, "recd_session_resets_total"), 1);
    ASSERT_EQ(tsrv_stop(&s), 0);
}

TEST(server_corrupt_snapshot_refused)
{
    tsrv s;
    tsrv_start(&s, "", 0);
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1);
    tsrv_wait_ready(&s);
    /* Version 2: a copy of 1 with its data file cut in half, published by rename like the trainer. */
    char out[4096];
    ASSERT_EQ(test_run(out, sizeof out,
                       "set -e; cd %s/gru4rec; cp -r 1 .tmp-2; chmod -R u+w .tmp-2; sz=$(stat -c %%s .tmp-2/data.mdb); "
                       "truncate -s $((sz / 2)) .tmp-2/data.mdb; mv .tmp-2 2",
                       s.root),
              0);
    ASSERT_EQ(tsrv_wait_metric(&s, TSRV_REFUSED, 1, 5000), 1);
    json_t *a = tsrv_post(&s, "/v1/next", "{\"items\":[\"i1\"]}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "version"), "1");
    json_decref(a);
    /* Version 3: bytes flipped inside (checksums catch what LMDB does not). */
    ASSERT_EQ(test_run(out, sizeof out,
                       "set -e; cd %s/gru4rec; cp -r 1 .tmp-3; chmod -R u+w .tmp-3; sz=$(stat -c %%s .tmp-3/data.mdb); "
                       "python3 -c \"import sys; f=open('.tmp-3/data.mdb','r+b'); n=$sz; "
                       "[ (f.seek(o), f.write(bytes([(f.read(1) or b'\\\\0')[0] ^ 0x5a])) ) for o in range(n//3, n - 8192, 512)]\"; "
                       "mv .tmp-3 3",
                       s.root),
              0);
    ASSERT_EQ(tsrv_wait_metric(&s, TSRV_REFUSED, 2, 5000), 2);
    a = tsrv_post(&s, "/v1/next", "{\"items\":[\"i1\"]}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "version"), "1");
    json_decref(a);
    tresp r;
    ASSERT_EQ(tsrv_http(&s, "GET", "/v1/models", NULL, 0, NULL, &r), 0);
    ASSERT(tsrv_jstr(json_array_get(json_object_get(r.json, "models"), 0), "last_error") != NULL);
    tresp_free(&r);
    /* A good version 4 is taken. */
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 4);
    tsrv_wait_version(&s, "4");
    ASSERT_EQ(tsrv_stop(&s), 0);
}

/* ---- SIGTERM while requests are in flight ---- */
#define INFLIGHT "recd_http_requests_in_flight"

/* Wait until n requests are in flight (the gauge counts the /metrics request too), up to 10 s. */
static void wait_in_flight(const tsrv *s, int n)
{
    double v = tsrv_wait_metric(s, INFLIGHT, n + 1, 10000);
    if (v != n + 1) FAIL("%s is %g, not %d + 1 (this request), after 10 s", INFLIGHT, v, n);
}

struct inflight_arg {
    const tsrv *s;
    int id;
    long status;
};

static void *one_request(void *p)
{
    struct inflight_arg *a = p;
    char body[128];
    snprintf(body, sizeof body, "{\"items\":[\"i%d\"],\"k\":3}", a->id % 30);
    tresp r;
    tsrv_http(a->s, "POST", "/v1/next", body, strlen(body), NULL, &r);
    a->status = r.status;
    tresp_free(&r);
    return NULL;
}

TEST(server_sigterm_drains)
{
    tsrv s;
    /* Scorers wait up to 300 ms for a batch to fill: requests are surely in flight at the signal. */
    tsrv_start(&s, "\"batch\":{\"max\":64,\"wait_us\":300000}", 0);
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1);
    tsrv_wait_ready(&s);
    enum { N = 8 };
    pthread_t th[N];
    struct inflight_arg a[N];
    for (int i = 0; i < N; i++) {
        a[i] = (struct inflight_arg){&s, i, -1};
        pthread_create(&th[i], NULL, one_request, &a[i]);
    }
    wait_in_flight(&s, N);
    kill(s.pid, SIGTERM);
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) ASSERT_EQ(a[i].status, 200);
    int st = tsrv_wait(&s); /* exits by itself once drained */
    ASSERT_EQ(st, 0);
}

/* No drain time: the server stops while requests wait in the batcher (suspended connections). It must
 * still exit cleanly (libmicrohttpd aborts when stopped with a suspended connection): the scorers answer
 * what they hold before the HTTP server stops. */
TEST(server_sigterm_no_drain_with_queued_requests)
{
    tsrv s;
    tsrv_start(&s, "\"batch\":{\"max\":64,\"wait_us\":1000000},\"shutdown.drain_s\":0", 0);
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1);
    tsrv_wait_ready(&s);
    enum { N = 4 };
    pthread_t th[N];
    struct inflight_arg a[N];
    for (int i = 0; i < N; i++) {
        a[i] = (struct inflight_arg){&s, i, -1};
        pthread_create(&th[i], NULL, one_request, &a[i]);
    }
    wait_in_flight(&s, N);
    kill(s.pid, SIGTERM);
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    ASSERT_EQ(tsrv_wait(&s), 0);
}

TEST(server_hostile_bodies)
{
    tsrv s;
    tsrv_start(&s, "", 0);
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1);
    tsrv_wait_ready(&s);
    size_t cap = 60000;
    char *b = malloc(cap + 1);
    /* deep nesting */
    memset(b, '[', cap);
    b[cap] = '\0';
    tresp r;
    ASSERT_EQ(tsrv_http(&s, "POST", "/v1/next", b, cap, NULL, &r), 0);
    ASSERT_EQ(r.status, 400);
    tresp_free(&r);
    for (size_t i = 0; i < cap; i++) b[i] = (i % 2) ? '{' : '"';
    ASSERT_EQ(tsrv_http(&s, "POST", "/v1/next", b, cap, NULL, &r), 0);
    ASSERT_EQ(r.status, 400);
    tresp_free(&r);
    /* a long array of ids over the limit */
    size_t n = 0;
    n += (size_t)snprintf(b + n, cap - n, "{\"items\":[");
    for (int i = 0; i < 2000 && n < cap - 16; i++) n += (size_t)snprintf(b + n, cap - n, "%s\"i%d\"", i ? "," : "", i % 30);
    n += (size_t)snprintf(b + n, cap - n, "]}");
    ASSERT_EQ(tsrv_http(&s, "POST", "/v1/next", b, n, NULL, &r), 0);
    ASSERT_EQ(r.status, 422);
    tresp_free(&r);
    /* a huge id */
    n = (size_t)snprintf(b, cap, "{\"session_id\":\"");
    memset(b + n, 'x', 5000);
    n += 5000;
    n += (size_t)snprintf(b + n, cap - n, "\",\"item_id\":\"i1\"}");
    ASSERT_EQ(tsrv_http(&s, "POST", "/v1/next", b, n, NULL, &r), 0);
    ASSERT_EQ(r.status, 422);
    tresp_free(&r);
    /* NUL bytes, invalid UTF-8, big numbers, random bytes */
    const char *odd[] = {"{\"items\":[\"i1\\u0000\"]}", "{\"items\":[\"\xff\xfe\"]}", "{\"items\":[\"i1\"],\"k\":1e999}",
                         "{\"items\":[\"i1\"],\"k\":99999999999999999999999}", "\x00\x01\x02", "nul", "{\"k\":-1}"};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        size_t len = i == 4 ? 3 : strlen(odd[i]);
        ASSERT_EQ(tsrv_http(&s, "POST", "/v1/next", odd[i], len, NULL, &r), 0);
        if (r.status != 200 && (r.status < 400 || r.status > 422)) FAIL("odd body %zu: status %ld", i, r.status);
        tresp_free(&r);
    }
    uint64_t x = 88172645463325252ull;
    for (int t = 0; t < 200; t++) {
        size_t len = 1 + (size_t)(t * 37 % 300);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[i] = "{}[]\":,0123456789truefalsnl \\ux"[x % 32];
        }
        ASSERT_EQ(tsrv_http(&s, "POST", "/v1/next", b, len, NULL, &r), 0);
        if (r.status != 200 && r.status != 400 && r.status != 422) FAIL("random body: status %ld", r.status);
        tresp_free(&r);
    }
    free(b);
    json_decref(tsrv_post(&s, "/v1/next", "{\"items\":[\"i1\"]}", 200));
    ASSERT_EQ(tsrv_stop(&s), 0);
}

TEST(server_sighup_rescans)
{
    tsrv s;
    /* No watch, no poll: only SIGHUP (or a reload) makes the server look at the folder again. */
    tsrv_start(&s, "\"snapshots.watch\":false,\"snapshots.poll_ms\":0", 0);
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1);
    kill(s.pid, SIGHUP);
    tsrv_wait_version(&s, "1");
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 2);
    usleep(300000);
    json_t *a = tsrv_post(&s, "/v1/next", "{\"items\":[\"i1\"]}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "version"), "1");
    json_decref(a);
    kill(s.pid, SIGHUP);
    tsrv_wait_version(&s, "2");
    ASSERT_EQ(tsrv_stop(&s), 0);
}

TEST(server_cli_and_config_errors)
{
    char out[8192];
    ASSERT_EQ(test_run(out, sizeof out, "%s serve --help", test_recd_bin()), 0);
    ASSERT_CONTAINS(out, "sessions.ttl_s");
    ASSERT_CONTAINS(out, "RECD_ADMIN_TOKEN");
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s/bad.json", test_tmpdir());
    test_write_file(cfg, "{\n  \"http\": {\"port\": \"eighty\"}\n}\n");
    ASSERT_EQ(test_run(out, sizeof out, "%s serve -c %s", test_recd_bin(), cfg), 2);
    ASSERT_CONTAINS(out, "bad.json:2");
    ASSERT_CONTAINS(out, "http.port");
    ASSERT_EQ(test_run(out, sizeof out, "%s serve --no-such-flag 1", test_recd_bin()), 2);
    ASSERT_EQ(test_run(out, sizeof out, "%s serve --batch.max 0", test_recd_bin()), 2);
    ASSERT_CONTAINS(out, "batch.max");
}

TEST(server_admin_token_from_env)
{
    /* RECD_ADMIN_TOKEN turns the admin routes on. */
    char out[4096];
    int port = test_free_port();
    char root[1100];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir());
    tsrv_make_snapshot(root, "gru4rec", 30, 8, 1);
    ASSERT_EQ(test_run(out, sizeof out,
                       "RECD_ADMIN_TOKEN=envtok %s serve --http.bind 127.0.0.1 --http.port %d --snapshots.root %s "
                       "--log_level warn & pid=$!; "
                       "for i in $(seq 100); do curl -sf http://127.0.0.1:%d/readyz >/dev/null && break; sleep 0.1; done; "
                       "a=$(curl -s -o /dev/null -w '%%{http_code}' -X POST -H 'Authorization: Bearer envtok' "
                       "http://127.0.0.1:%d/v1/models/gru4rec/reload); "
                       "b=$(curl -s -o /dev/null -w '%%{http_code}' -X POST -H 'Authorization: Bearer nope' "
                       "http://127.0.0.1:%d/v1/models/gru4rec/reload); "
                       "kill $pid; wait $pid; echo \"codes $a $b\"",
                       test_recd_bin(), port, root, port, port, port),
              0);
    ASSERT_CONTAINS(out, "codes 202 403");
}

TEST(server_second_signal_exits_at_once)
{
    tsrv s;
    /* A request waits up to 1 s for its batch: the first SIGTERM drains (waits for it), the second
     * one exits at once with status 1. */
    tsrv_start(&s, "\"batch\":{\"max\":64,\"wait_us\":1000000},\"shutdown.drain_s\":30", 0);
    tsrv_make_snapshot(s.root, "gru4rec", 30, 8, 1);
    tsrv_wait_ready(&s);
    pthread_t th;
    struct inflight_arg a = {&s, 1, -1};
    pthread_create(&th, NULL, one_request, &a);
    /* Signal only once the request is inside the server: /metrics counts itself plus ours. */
    int seen = 0;
    for (int i = 0; i < 400 && !seen; i++) {
        tresp m;
        tsrv_http(&s, "GET", "/metrics", NULL, 0, NULL, &m);
        seen = m.body && strstr(m.body, "recd_http_requests_in_flight 2") != NULL;
        tresp_free(&m);
        if (!seen) usleep(5000);
    }
    ASSERT(seen);
    kill(s.pid, SIGTERM);
    usleep(100000);
    int st = 0;
    ASSERT_EQ(waitpid(s.pid, &st, WNOHANG), 0); /* still draining */
    kill(s.pid, SIGINT);
    int code = tsrv_wait(&s);
    /* Leaving at once skips the cleanup: under LeakSanitizer that is a leak report (and an abort). */
    if (getenv("RECD_ASAN")) ASSERT(code != 0);
    else ASSERT_EQ(code, 1);
    pthread_join(th, NULL);
}
