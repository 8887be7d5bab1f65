/* tests/test_server_util.c - helpers for the server's integration tests (see test_server_util.h). */
#include "tests/test_server_util.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/idmap.h"
#include "core/rng.h"
#include "models/features.h"
#include "models/gru4rec.h"
#include "tests/testlib.h"

uint64_t tsrv_make_snapshot(const char *root, const char *name, int n_items, int H, uint64_t seed)
{
    return tsrv_make_snapshot_meta(root, name, n_items, H, seed, NULL);
}

uint64_t tsrv_make_snapshot_meta(const char *root, const char *name, int n_items, int H, uint64_t seed,
                                 const json_t *extra)
{
    idmap *items = idmap_new((size_t)n_items);
    ASSERT(items != NULL);
    int64_t *counts = malloc((size_t)n_items * sizeof *counts);
    ASSERT(counts != NULL);
    for (int i = 0; i < n_items; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "i%d", i);
        ASSERT_EQ(idmap_intern(items, key, (size_t)n), i);
        counts[i] = 1000 - i;
    }
    gru4rec_hparams hp;
    gru4rec_hparams_default(&hp);
    hp.layers[0] = H;
    gru4rec *m = NULL;
    ASSERT_OK(gru4rec_new_random(&m, &hp, items, counts, seed));
    mkdir(root, 0755);
    uint64_t version = 0;
    ASSERT_OK(gru4rec_save(m, root, name, extra, &version));
    gru4rec_free(m);
    idmap_free(items);
    free(counts);
    return version;
}

feat_spec *tsrv_wd_spec(void)
{
    json_error_t e;
    json_t *j = json_loads(TSRV_WD_SPEC, 0, &e);
    if (!j) FAIL("bad JSON: %s", e.text);
    feat_spec *s;
    ASSERT_OK(feat_spec_parse(&s, json_object_get(j, "columns"), json_object_get(j, "features"), "y",
                              json_object_get(j, "label_positive"), json_object_get(j, "label_negative"), NULL));
    json_decref(j);
    ASSERT_OK(feat_spec_finish(s));
    return s;
}

wd_hparams tsrv_wd_hparams(wd_variant v)
{
    wd_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.variant = v;
    hp.nhidden = 2;
    hp.hidden[0] = 6;
    hp.hidden[1] = 5;
    hp.ftrl_alpha = 0.1;
    hp.ftrl_beta = 1;
    hp.lr = 0.05;
    hp.adagrad_init = 0.1;
    hp.adagrad_eps = 1e-8;
    hp.seed = 7;
    return hp;
}

wd_model *tsrv_publish_wd(const char *root, const char *name, uint64_t seed, int h0, int h1, uint64_t *version)
{
    feat_spec *sp = tsrv_wd_spec();
    wd_hparams hp = tsrv_wd_hparams(WD_BOTH);
    hp.seed = seed;
    hp.hidden[0] = h0;
    hp.hidden[1] = h1;
    wd_model *m;
    ASSERT_OK(wd_model_new(&m, sp, &hp));
    rng_t r;
    rng_seed(&r, seed);
    for (int64_t j = 0; j <= sp->wide_dim; j++) m->wide_w[j] = (float)(0.5 * rng_normal(&r));
    mkdir(root, 0755);
    uint64_t ver = 0;
    if (strcmp(name, "widedeep") == 0) {
        ASSERT_OK(wd_save(m, root, 0, NULL, &ver));
    } else { /* wd_save always writes the folder "widedeep" */
        char side[1024], from[1200], to[1200];
        snprintf(side, sizeof side, "%s/side-%s", test_tmpdir(), name);
        mkdir(side, 0755);
        ASSERT_OK(wd_save(m, side, 0, NULL, &ver));
        snprintf(from, sizeof from, "%s/widedeep", side);
        snprintf(to, sizeof to, "%s/%s", root, name);
        ASSERT_EQ(rename(from, to), 0);
    }
    if (version) *version = ver;
    return m;
}

void tsrv_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void tsrv_wait_ready(const tsrv *s)
{
    for (int i = 0; i < 400; i++) {
        tresp r;
        tsrv_http(s, "GET", "/readyz", NULL, 0, NULL, &r);
        long st = r.status;
        tresp_free(&r);
        if (st == 200) return;
        tsrv_sleep_ms(50);
    }
    FAIL("server never became ready");
}

void tsrv_start(tsrv *s, const char *extra_json, int wait_ready)
{
    memset(s, 0, sizeof *s);
    snprintf(s->root, sizeof s->root, "%s/snapshots", test_tmpdir());
    mkdir(s->root, 0755);
    snprintf(s->log, sizeof s->log, "%s/server.log", test_tmpdir());
    s->port = test_free_port();
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
    char cfg[1024], text[4096];
    snprintf(cfg, sizeof cfg, "%s/recd.json", test_tmpdir());
    snprintf(text, sizeof text,
             "{\"http\":{\"bind\":\"127.0.0.1\",\"port\":%d,\"threads\":2},\"snapshots\":{\"root\":\"%s\","
             "\"models\":[\"gru4rec\"],\"poll_ms\":500},\"log_level\":\"info\"%s%s}",
             s->port, s->root, extra_json && *extra_json ? "," : "", extra_json ? extra_json : "");
    test_write_file(cfg, text);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        FILE *f = freopen(s->log, "w", stderr);
        (void)f;
        unsetenv("RECD_ADMIN_TOKEN");
        execl(test_recd_bin(), "recd", "serve", "-c", cfg, (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    for (int i = 0; i < 600; i++) { /* up to 30 s (ASan builds start slowly) */
        tresp r;
        if (tsrv_http(s, "GET", wait_ready ? "/readyz" : "/healthz", NULL, 0, NULL, &r) == 0 && r.status == 200) {
            tresp_free(&r);
            return;
        }
        tresp_free(&r);
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char out[4096];
            test_run(out, sizeof out, "cat %s", s->log);
            s->pid = 0;
            FAIL("recd serve exited early (status %d): %s", WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
        }
        tsrv_sleep_ms(50);
    }
    FAIL("recd serve did not become %s on port %d", wait_ready ? "ready" : "alive", s->port);
}

int tsrv_stop(tsrv *s)
{
    if (s->pid <= 0) return -1;
    kill(s->pid, SIGTERM);
    return tsrv_wait(s);
}

int tsrv_wait(tsrv *s)
{
    if (s->pid <= 0) return -1;
    int st = 0;
    for (int i = 0; i < 400; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        tsrv_sleep_ms(50);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    return -1;
}

struct sink {
    char *p;
    size_t n;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct sink *s = ud;
    size_t n = size * nmemb;
    char *p = realloc(s->p, s->n + n + 1);
    if (!p) return 0;
    memcpy(p + s->n, ptr, n);
    s->n += n;
    p[s->n] = '\0';
    s->p = p;
    return n;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t ln = strlen(name);
    if (n <= ln + 1 || strncasecmp(line, name, ln) != 0 || line[ln] != ':') return;
    const char *v = line + ln + 1;
    while (*v == ' ') v++;
    size_t vn = n - (size_t)(v - line);
    while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n')) vn--;
    if (vn >= cap) vn = cap - 1;
    memcpy(out, v, vn);
    out[vn] = '\0';
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    tresp *r = ud;
    size_t n = size * nmemb;
    header_value(ptr, n, "Content-Type", r->ctype, sizeof r->ctype);
    header_value(ptr, n, "X-Request-Id", r->request_id, sizeof r->request_id);
    header_value(ptr, n, "Allow", r->allow, sizeof r->allow);
    header_value(ptr, n, "Access-Control-Allow-Origin", r->acao, sizeof r->acao);
    header_value(ptr, n, "Connection", r->connection, sizeof r->connection);
    return n;
}

/* One request on the handle c (reset first: its open connections stay, its options go). */
static int http_on(CURL *c, const tsrv *s, const char *method, const char *path, const char *body, size_t body_len,
                   const char *const *headers, tresp *r)
{
    memset(r, 0, sizeof *r);
    curl_easy_reset(c);
    char url[4096]; /* paths with ids up to the router's 1023-byte segments, and beyond */
    if (snprintf(url, sizeof url, "%s%s", s->base, path) >= (int)sizeof url) FAIL("path too long: %.80s...", path);
    struct sink sink = {NULL, 0};
    struct curl_slist *hl = NULL;
    int has_ctype = 0;
    for (int i = 0; headers && headers[i]; i++) has_ctype |= strncasecmp(headers[i], "Content-Type:", 13) == 0;
    if (body && !has_ctype) hl = curl_slist_append(hl, "Content-Type: application/json");
    for (int i = 0; headers && headers[i]; i++) hl = curl_slist_append(hl, headers[i]);
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &r->num_connects);
    curl_slist_free_all(hl);
    r->body = sink.p ? sink.p : calloc(1, 1);
    r->len = sink.n;
    if (cc != CURLE_OK) {
        r->status = 0;
        return -1;
    }
    if (strstr(r->ctype, "json")) r->json = json_loadb(r->body, r->len, 0, NULL);
    return 0;
}

int tsrv_http(const tsrv *s, const char *method, const char *path, const char *body, size_t body_len,
              const char *const *headers, tresp *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    if (!c) return -1;
    int rc = http_on(c, s, method, path, body, body_len, headers, r);
    curl_easy_cleanup(c);
    return rc;
}

void tconn_open(tconn *c, const tsrv *s)
{
    c->s = s;
    c->requests = 0;
    c->curl = curl_easy_init();
    ASSERT(c->curl != NULL);
}

int tconn_http(tconn *c, const char *method, const char *path, const char *body, size_t body_len,
               const char *const *headers, tresp *r)
{
    c->requests++;
    return http_on(c->curl, c->s, method, path, body, body_len, headers, r);
}

void tconn_close(tconn *c)
{
    if (c->curl) curl_easy_cleanup(c->curl);
    c->curl = NULL;
}

void tresp_free(tresp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

json_t *tsrv_post(const tsrv *s, const char *path, const char *body, long want_status)
{
    tresp r;
    if (tsrv_http(s, "POST", path, body, strlen(body), NULL, &r) != 0) FAIL("POST %s: connection failed", path);
    if (r.status != want_status) {
        char msg[600];
        long got = r.status;
        snprintf(msg, sizeof msg, "%.500s", r.body);
        tresp_free(&r);
        FAIL("POST %s %.200s: status %ld, wanted %ld: %s", path, body, got, want_status, msg);
    }
    json_t *j = r.json;
    r.json = NULL;
    tresp_free(&r);
    if (!j) FAIL("POST %s: answer is not JSON", path);
    return j;
}

void tsrv_start_two_models(tsrv *s, int n_items, const char *extra_json, wd_model **wd)
{
    char root[1024], extra[4096];
    snprintf(root, sizeof root, "%s/snapshots", test_tmpdir()); /* tsrv_start's root */
    mkdir(root, 0755);
    tsrv_make_snapshot(root, "gru4rec", n_items, 16, 11);
    wd_model *m = tsrv_publish_wd(root, "widedeep", 21, 6, 5, NULL);
    if (wd) *wd = m;
    else wd_model_free(m);
    snprintf(extra, sizeof extra, "\"snapshots.models\":[\"gru4rec\",\"widedeep\"]%s%s",
             extra_json && *extra_json ? "," : "", extra_json ? extra_json : "");
    tsrv_start(s, extra, 1);
}

double tsrv_metric(const tsrv *s, const char *series)
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

double tsrv_wait_metric(const tsrv *s, const char *series, double at_least, int timeout_ms)
{
    double v = tsrv_metric(s, series);
    for (int waited = 0; v < at_least && waited < timeout_ms; waited += 10) {
        tsrv_sleep_ms(10);
        v = tsrv_metric(s, series);
    }
    return v;
}

const char *tsrv_jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

const char *tsrv_ready_version(const tsrv *s, char *buf, size_t cap)
{
    tresp r;
    tsrv_http(s, "GET", "/readyz", NULL, 0, NULL, &r);
    const char *v = r.status == 200 && r.json ? tsrv_jstr(json_object_get(r.json, "models"), "gru4rec") : NULL;
    snprintf(buf, cap, "%s", v ? v : "");
    tresp_free(&r);
    return buf;
}

void tsrv_wait_version(const tsrv *s, const char *version)
{
    char got[64] = "";
    for (int i = 0; i < 400; i++) {
        if (strcmp(tsrv_ready_version(s, got, sizeof got), version) == 0) return;
        tsrv_sleep_ms(50);
    }
    FAIL("version %s never served (last: '%s')", version, got);
}

void tsrv_expect_next_from(const tsrv *s, const char *version)
{
    json_t *a = tsrv_post(s, "/v1/next", "{\"items\":[\"i1\"],\"k\":3}", 200);
    ASSERT_STR_EQ(tsrv_jstr(a, "version"), version);
    json_decref(a);
}
