/* tests/test_server_util.h - helpers for the server's integration tests: build small GRU4Rec snapshots,
 * start the real `recd serve` on a free loopback port, talk HTTP to it with libcurl. */
#ifndef RECD_TEST_SERVER_UTIL_H
#define RECD_TEST_SERVER_UTIL_H

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "models/widedeep.h"

/* Publish a random gru4rec snapshot ROOT/NAME/<next version> with n_items items "i0".."i<n-1>" (i0 the
 * most popular), hidden size H, from seed. Returns the version. Fails the test on error. */
uint64_t tsrv_make_snapshot(const char *root, const char *name, int n_items, int H, uint64_t seed);
/* The same with extra members merged into the snapshot's meta (as the trainers write their settings);
 * extra may be NULL. */
uint64_t tsrv_make_snapshot_meta(const char *root, const char *name, int n_items, int H, uint64_t seed,
                                 const json_t *extra);

/* The Wide & Deep spec of the tests, touching every kind of input: two numerics (dense), a vocab
 * categorical (wide + onehot), a hashed categorical (wide + embedding), a bucketised numeric (wide) and
 * a cross (wide + embedding). Columns x1, x2, c1, c2 and the label y. */
#define TSRV_WD_SPEC                                                                                          \
    "{\"columns\":[\"x1\",\"x2\",\"c1\",\"c2\",\"y\"], \"label\":\"y\", \"label_positive\":[\"1\"],"                 \
    " \"label_negative\":[\"0\"], \"features\":["                                                                 \
    "  {\"name\":\"x1\",\"type\":\"numeric\",\"deep\":\"dense\",\"wide\":true},"                                   \
    "  {\"name\":\"x2\",\"type\":\"numeric\",\"deep\":\"dense\"},"                                                 \
    "  {\"name\":\"c1\",\"type\":\"categorical\",\"vocab\":[\"a\",\"b\",\"c\",\"d\"],\"wide\":true,\"deep\":\"onehot\"}," \
    "  {\"name\":\"c2\",\"type\":\"categorical\",\"hash_buckets\":7,\"wide\":true,\"deep\":\"embed\",\"dim\":3},"     \
    "  {\"name\":\"x1b\",\"type\":\"numeric\",\"column\":\"x1\",\"boundaries\":[-0.5,0,0.5],\"wide\":true},"        \
    "  {\"name\":\"c1_x_c2\",\"type\":\"crossed\",\"cross\":[\"c1\",\"c2\"],\"hash_buckets\":11,\"wide\":true,"      \
    "   \"deep\":\"embed\",\"dim\":2}"                                                                          \
    " ]}"

/* TSRV_WD_SPEC parsed and finished (owned by the caller, or by the model made from it). */
feat_spec *tsrv_wd_spec(void);
/* The tests' Wide & Deep hyper-parameters: hidden (6, 5), FTRL and AdaGrad rates, seed 7. */
wd_hparams tsrv_wd_hparams(wd_variant v);
/* A random model of TSRV_WD_SPEC (variant both, hidden (h0, h1), weights from seed, non-zero wide
 * weights) published as ROOT/NAME: name "widedeep" gets the next version there; any other name is
 * written under a side folder and moved to ROOT/NAME/1 (which must not exist). The model is returned
 * (wd_model_free) to compute the expected answers; the version in *version when not NULL. */
wd_model *tsrv_publish_wd(const char *root, const char *name, uint64_t seed, int h0, int h1, uint64_t *version);

typedef struct tsrv {
    pid_t pid;
    int port;
    char root[1024];   /* snapshots root */
    char log[1024];    /* server's stderr */
    char base[64];     /* "http://127.0.0.1:PORT" */
} tsrv;

/* Start recd serve with snapshots under test_tmpdir()/snapshots (created), model "gru4rec", and the
 * extra settings `extra_json` (object members without braces, e.g. "\"sessions\":{\"max\":2}", or
 * ""). Waits until /healthz answers; if wait_ready, also until /readyz is 200. */
void tsrv_start(tsrv *s, const char *extra_json, int wait_ready);
/* Poll /readyz until it answers 200 (up to 20 s); fails the test otherwise. For servers started with
 * wait_ready 0 whose snapshot is published afterwards. */
void tsrv_wait_ready(const tsrv *s);
/* SIGTERM and wait; returns the exit status (or -1 when killed by a signal). */
int tsrv_stop(tsrv *s);
/* Wait (up to 20 s, then SIGKILL) for the server to exit by itself; its exit status or -1. */
int tsrv_wait(tsrv *s);

typedef struct tresp {
    long status;
    char *body;        /* NUL-terminated, owned (tresp_free) */
    size_t len;
    char ctype[128];   /* Content-Type */
    char request_id[80];
    char allow[128];
    char acao[256];    /* Access-Control-Allow-Origin */
    char connection[64]; /* Connection header ("close" when the server closes after the answer) */
    long num_connects; /* connections libcurl opened for this request (0: an open one was reused) */
    json_t *json;      /* parsed body when JSON, else NULL */
} tresp;

/* One HTTP request on a new connection. body may be NULL; headers is a NULL-terminated list of
 * "Name: value" or NULL. A body is sent with "Content-Type: application/json" unless headers name a
 * Content-Type ("Content-Type:" alone sends none). Returns 0, or -1 when the connection failed
 * (r->status = 0). */
int tsrv_http(const tsrv *s, const char *method, const char *path, const char *body, size_t body_len,
              const char *const *headers, tresp *r);
void tresp_free(tresp *r);
/* POST JSON text and return the parsed answer; fails the test when the status differs from want. */
json_t *tsrv_post(const tsrv *s, const char *path, const char *body, long want_status);

/* Start recd serve (as tsrv_start, waiting until ready) with two models: "gru4rec" (n_items items
 * i0..i<n-1>, hidden 16, seed 11) and "widedeep" (TSRV_WD_SPEC, seed 21), published first. The
 * widedeep model is returned in *wd when wd is not NULL (wd_model_free), else freed. extra_json as for
 * tsrv_start (without snapshots.models). */
void tsrv_start_two_models(tsrv *s, int n_items, const char *extra_json, wd_model **wd);

/* A keep-alive client: one libcurl handle reused for every request, so that libcurl keeps one
 * connection open across requests (r->num_connects tells whether it did). */
typedef struct tconn {
    const tsrv *s;
    void *curl;   /* CURL * */
    int requests; /* sent so far */
} tconn;
void tconn_open(tconn *c, const tsrv *s);
/* As tsrv_http, on the connection. */
int tconn_http(tconn *c, const char *method, const char *path, const char *body, size_t body_len,
               const char *const *headers, tresp *r);
void tconn_close(tconn *c);

/* The value of the metric line "series value" in GET /metrics (series with its labels, e.g.
 * "recd_snapshots_refused_total{model=\"gru4rec\"}"), or -1 when absent. Fails the test when /metrics
 * does not answer 200. */
double tsrv_metric(const tsrv *s, const char *series);
/* Poll tsrv_metric(s, series) every 10 ms until it is at least `at_least` or timeout_ms passed; returns
 * the last value read (the caller asserts on it). Note that GET /metrics is itself a request in flight:
 * recd_http_requests_in_flight reads n + 1 while n other requests are. */
double tsrv_wait_metric(const tsrv *s, const char *series, double at_least, int timeout_ms);

/* The refusals of gru4rec snapshots, as the server counts them. */
#define TSRV_REFUSED "recd_snapshots_refused_total{model=\"gru4rec\"}"
/* The version of gru4rec that GET /readyz reports, into buf (NUL-terminated, "" when none); buf. */
const char *tsrv_ready_version(const tsrv *s, char *buf, size_t cap);
/* Wait (up to 20 s) until GET /readyz answers 200 and reports `version` for gru4rec; fails the test
 * otherwise, naming the last version seen. */
void tsrv_wait_version(const tsrv *s, const char *version);
/* POST /v1/next {"items":["i1"],"k":3} answers 200 from gru4rec `version`; fails the test otherwise. */
void tsrv_expect_next_from(const tsrv *s, const char *version);

/* json_string_value of o's member key: NULL when o is NULL, the member is absent or not a string.
 * Borrowed from o. */
const char *tsrv_jstr(const json_t *o, const char *key);
/* Sleep ms milliseconds. */
void tsrv_sleep_ms(int ms);

#endif
