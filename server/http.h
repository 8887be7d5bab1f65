/* server/http.h - the HTTP layer: libmicrohttpd with its internal thread pool (epoll), request bodies
 * with a size limit, request ids, CORS, the admin token, problem+json errors, and suspend/resume for
 * handlers that answer from another thread (/v1/next micro-batching).
 *
 * Threads: handlers run on libmicrohttpd's pool threads. They reach the libuv loop only through
 * uv_async_send (see serve.c). Each connection owns one conn context (allocated when the connection
 * opens, freed when it closes) holding the body buffer, the answer buffer and a handler slot, reused by
 * every request on that connection: a request allocates nothing but its libmicrohttpd response.
 */
#ifndef RECD_HTTP_H
#define RECD_HTTP_H

#include <stdatomic.h>
#include <stdint.h>

#include "server/router.h"
#include "server/sbuf.h"

struct server;
struct MHD_Connection;

#define HTTP_REQUEST_ID_MAX 64

struct http_req {
    struct server *srv;          /* the server (read-only for handlers) */
    struct MHD_Connection *conn; /* libmicrohttpd's connection */
    const route *route;          /* the matched route */
    const char *method, *path;   /* borrowed from libmicrohttpd for the request */
    char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];
    int nparams;
    const char *body; /* the request body (NUL-terminated), body_len bytes; valid during the request */
    size_t body_len;
    char request_id[HTTP_REQUEST_ID_MAX + 1];
    uint64_t t0_ns; /* monotonic time the request started */
    /* The answer, filled by the handler. */
    int status;
    const char *content_type; /* static string */
    sbuf *out;                /* answer body, reset before the handler runs */
    /* Handler's per-connection slot (e.g. /v1/next's job with its buffers). Kept across requests of
     * the connection; slot_free is called on it when the connection closes. */
    void *slot;
    void (*slot_free)(void *slot);
    /* Set by an asynchronous handler before http_resume (NULL otherwise): called once on an HTTP
     * thread to finish the answer when the connection resumes, before it is sent; or, if the request
     * ends without that (the client went away), when it completes, so that what it holds is released.
     * Cleared before the call. */
    void (*on_resume)(http_req *r);
};

/* Monotonic nanoseconds. */
uint64_t http_now_ns(void);

/* Value of a query argument / request header (NULL if absent). Borrowed for the request. */
const char *http_query(http_req *r, const char *key);
const char *http_header(http_req *r, const char *name);

/* Answer a problem+json (api/problem.h) with detail printf-formatted. Returns HTTP_DONE. */
int http_problem(http_req *r, int status, const char *slug, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Set status and content type "application/json" for the body the handler wrote into r->out. Returns
 * HTTP_DONE. */
int http_json(http_req *r, int status);

/* For asynchronous handlers: suspend the connection (call before returning HTTP_ASYNC), and resume it
 * from any thread once the answer is in r (status, content_type, out). After http_resume the handler
 * must not touch r again. */
void http_suspend(http_req *r);
void http_resume(http_req *r);

/* ---- the daemon (used by serve.c) ---- */
/* Start libmicrohttpd on srv->cfg's bind address and port with its thread pool. RC_OK, or RC_EIO with
 * the reason (port taken, ...). */
int http_start(struct server *srv);
/* Stop accepting connections (the listen socket is closed); open connections finish. */
void http_quiesce(struct server *srv);
/* Stop the daemon: joins its threads, closes every connection. */
void http_stop(struct server *srv);
/* The port actually bound (useful with port 0). */
int http_port(struct server *srv);

#endif
