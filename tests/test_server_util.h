/* tests/test_server_util.h - helpers for the server's integration tests: build small GRU4Rec snapshots,
 * start the real `recd serve` on a free loopback port, talk HTTP to it with libcurl. */
#ifndef RECD_TEST_SERVER_UTIL_H
#define RECD_TEST_SERVER_UTIL_H

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

/* Publish a random gru4rec snapshot ROOT/NAME/<next version> with n_items items "i0".."i<n-1>" (i0 the
 * most popular), hidden size H, from seed. Returns the version. Fails the test on error. */
uint64_t tsrv_make_snapshot(const char *root, const char *name, int n_items, int H, uint64_t seed);

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
    json_t *json;      /* parsed body when JSON, else NULL */
} tresp;

/* One HTTP request. body may be NULL; headers is a NULL-terminated list of "Name: value" or NULL.
 * Returns 0, or -1 when the connection failed (r->status = 0). */
int tsrv_http(const tsrv *s, const char *method, const char *path, const char *body, size_t body_len,
              const char *const *headers, tresp *r);
void tresp_free(tresp *r);
/* POST JSON text and return the parsed answer; fails the test when the status differs from want. */
json_t *tsrv_post(const tsrv *s, const char *path, const char *body, long want_status);

#endif
