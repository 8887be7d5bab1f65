/* server/http.h - the HTTP layer: libmicrohttpd with its internal thread pool (epoll), request bodies
 * with a size limit, request ids, CORS, the admin token, problem+json errors, and suspend/resume for
 * handlers that answer from another thread (/v1/next micro-batching).
 *
 * Threads: handlers run on libmicrohttpd's pool threads. They reach the libuv loop only through
 * uv_async_send (see serve.c). Each connection owns one conn context (allocated when the connection
 * opens, freed when it closes) holding the body buffer, the answer buffer and one typed slot per route
 * type that used it (http_slot), reused by every request on that connection: a warm request allocates
 * nothing but its libmicrohttpd response. After each request, buffers grown past HTTP_KEEP_BYTES by a
 * large request are given back (sbufs released, slots trimmed), so an idle keep-alive connection holds
 * a few KiB whatever it sent before.
 *
 * Limits a client meets (settings in server.h): http.max_connections (all), http.max_connections_per_ip
 * (refused beyond, by libmicrohttpd), http.request_timeout_s (a whole request, from its first byte to
 * its last, must arrive in time: trickling bytes do not extend it; the server answers 408 and closes),
 * http.timeout_s (idle keep-alive connections closed silently), http.max_body_bytes (413). The request
 * deadline is kept by a watchdog thread: it sees a request start when the socket's received byte count
 * (TCP_INFO) grows past what it had received when its previous answer was sent (or, at the latest,
 * when the request's headers are complete), and cuts with shutdown(): the sockets stay libmicrohttpd's,
 * removed from the watchdog's list (under its lock) before they are closed. An empty line (2 bytes) on
 * an idle connection does not start a deadline. Not covered: a partial request that arrived pipelined
 * behind a whole one, before its answer was sent, and then stalls: only http.timeout_s closes it.
 * Framing that two parsers could read differently (Content-Length with Transfer-Encoding, or two
 * different Content-Length values; RFC 9112 section 6.3) is answered 400 and the connection closed.
 * Routes flagged ROUTE_JSON answer 415 to a body that is not Content-Type application/json (a
 * cross-site page cannot send such a request without a CORS preflight). http.admin_port (when set)
 * serves the ROUTE_OPS routes (probes, metrics, models, admin) on a second listener with its own
 * thread, so they never queue behind the public port.
 */
#ifndef RECD_HTTP_H
#define RECD_HTTP_H

#include <stdatomic.h>
#include <stdint.h>

#include "server/router.h"
#include "core/sbuf.h"

struct server;
struct MHD_Connection;

#define HTTP_REQUEST_ID_MAX 64  /* a client's X-Request-Id, at most (longer or other bytes: the server makes one) */
#define HTTP_REQUEST_ID_CAP 96  /* request_id's buffer: a client id and the suffix http_request_id_unique adds */

/* The Content-Security-Policy of every text/html answer (recd's own pages, server/ui.c): inline style
 * and script only, fetches to the same origin, nothing external (no script, font, image, frame, form
 * target), and no page may frame it. */
#define HTTP_HTML_CSP                                                                                     \
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "     \
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

struct http_req {
    struct server *srv;          /* the server (read-only for handlers) */
    struct MHD_Connection *conn; /* libmicrohttpd's connection */
    const route *route;          /* the matched route */
    const char *method, *path;   /* borrowed from libmicrohttpd for the request */
    char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];
    int nparams;
    const char *body; /* the request body (NUL-terminated), body_len bytes; valid during the request */
    size_t body_len;
    char request_id[HTTP_REQUEST_ID_CAP];
    /* 1: request_id is the client's X-Request-Id (a client may send the same one twice); 0: the server made
     * it ("<process prefix>-<counter hex>": unique per process start) */
    int request_id_client;
    uint64_t t0_ns; /* monotonic time the request started */
    /* The answer, filled by the handler. */
    int status;
    const char *content_type; /* static string */
    sbuf *out;                /* answer body, reset before the handler runs */
    /* Set by an asynchronous handler before http_resume (NULL otherwise): called once on an HTTP
     * thread to finish the answer when the connection resumes, before it is sent; or, if the request
     * ends without that (the client went away), when it completes, so that what it holds is released.
     * Cleared before the call. */
    void (*on_resume)(http_req *r);
};

/* A handler's per-connection state (e.g. /v1/next's job with its buffers), one per type and connection.
 * A type is a static descriptor; its address is its identity, so no handler can ever receive another
 * type's slot, whatever sequence of routes a keep-alive connection calls. */
typedef struct http_slot_type {
    const char *name;         /* for logs */
    void *(*create)(void);    /* a new zeroed slot, or NULL on ENOMEM */
    void (*destroy)(void *);  /* frees the slot (called when the connection closes) */
    /* Optional, called after every request of the connection that used the slot: give back what a
     * large request grew (keep at most about HTTP_KEEP_BYTES). */
    void (*trim)(void *);
} http_slot_type;

#define HTTP_MAX_SLOTS 8           /* slot types a connection can hold */
#define HTTP_KEEP_BYTES (16u << 10) /* per-buffer capacity a connection keeps between requests */

/* The connection's slot of `type`, created on first use (type->create). NULL when it cannot be created
 * (out of memory, or more than HTTP_MAX_SLOTS types - a programming error; message set): answer with
 * http_oom(). The slot is owned by the connection and lives until it closes; the handler may keep using
 * it after http_suspend until its on_resume ran. Call only from the thread running the connection's
 * request (a handler, or its on_resume): slots are not locked. */
void *http_slot(http_req *r, const http_slot_type *type);
/* The connection's slot of `type` if it has one, else NULL (never creates). */
void *http_slot_get(http_req *r, const http_slot_type *type);

/* A connection context without a socket, to call handlers in-process (tests, benchmarks, fuzzers): the
 * request has srv and out set (out is the context's own buffer; the caller may point it elsewhere) and
 * owns its slots like a connection's. The caller sets path, body, body_len, request_id, and calls one
 * route at a time (no asynchronous route: batch.max 1). NULL on ENOMEM. */
http_req *http_detached_new(struct server *srv);
/* End of one request on it: slots trimmed as after a real request; the context's own out buffer is
 * released when over HTTP_KEEP_BYTES (r->out->data may change). */
void http_detached_end(http_req *r);
/* Destroys the slots and frees the context. NULL is a no-op. */
void http_detached_free(http_req *r);

/* Make r->request_id unique to this request when it came from the client (r->request_id_client):
 * append "." and a server-unique suffix ("<client id>.<process prefix>-<counter hex>"), so that a client
 * id reused by another request (a retry, another user, a gateway's trace id) never names two answers.
 * Call before the answer is rendered: the answer's request_id and its X-Request-Id header carry the new
 * id. A server-made id is left as it is; calling twice changes nothing more. Allocates nothing. */
void http_request_id_unique(http_req *r);

/* Monotonic nanoseconds. */
uint64_t http_now_ns(void);

/* Value of a query argument / request header (NULL if absent). Borrowed for the request. */
const char *http_query(http_req *r, const char *key);
const char *http_header(http_req *r, const char *name);

/* Answer a problem+json (api/problem.h) with detail printf-formatted. Returns HTTP_DONE. */
int http_problem(http_req *r, int status, const char *slug, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answer 503 problem+json "out-of-memory" with Retry-After: 1 (an allocation failed while serving the
 * request; the server keeps serving). `what` names what could not be allocated. Returns HTTP_DONE. */
int http_oom(http_req *r, const char *what);
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
/* Stop accepting connections (sets srv->draining: each new connection is closed as soon as it is
 * accepted; the listen sockets stay open until http_stop); open connections finish. */
void http_quiesce(struct server *srv);
/* Stop the daemon: joins its threads, closes every connection. */
void http_stop(struct server *srv);
/* The port actually bound (useful with port 0). */
int http_port(struct server *srv);
/* Connections closed because a request did not arrive whole within http.request_timeout_s. */
uint64_t http_request_timeouts(void);

#endif
