/* server/http.c - libmicrohttpd glue: per-connection contexts, bodies, limits, CORS, admin token,
 * request ids, metrics, suspend/resume (see http.h). */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <microhttpd.h>
#include <pthread.h>
#include <strings.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received (Linux 4.1) */
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/problem.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "server/metrics.h"
#include "server/server.h"

enum { PH_NEW = 0, PH_BODY, PH_ASYNC, PH_READY };

/* A listening socket: the public port, or http.admin_port (ROUTE_OPS routes only). */
typedef struct http_listener {
    server *srv;
    int admin;
} http_listener;

#define DEADLINE_CUT UINT64_MAX /* the watchdog closed the connection */
#define DEADLINE_IDLE (UINT64_MAX - 1) /* between requests: no deadline until a byte of the next one arrives */

typedef struct conn_ctx {
    http_req req; /* first member: http_req * and conn_ctx * convert */
    sbuf body, out;
    int phase;
    int too_large;
    int close_after; /* answer with Connection: close (ambiguous framing) */
    int metric;      /* route metric index */
    int sent_status; /* status of the queued answer, 0 if none */
    char allow[64];  /* Allow header for 405 and OPTIONS */
    int in_request;  /* counted in srv->inflight */
    const http_listener *lst;
    struct {
        const http_slot_type *type;
        void *p;
    } slots[HTTP_MAX_SLOTS];
    int nslots;
    /* Request deadline (http.request_timeout_s), monotonic ns. DEADLINE_IDLE when the connection opens
     * and after each answer (idle connections are libmicrohttpd's http.timeout_s business); the
     * watchdog turns it into now + timeout when it sees the first bytes of the next request arrive
     * (TCP_INFO's received byte count grew); 0 once a request is received whole and is served;
     * DEADLINE_CUT once the watchdog closed the connection. Written by the connection's thread with
     * exchanges and by the watchdog with compare-exchanges. */
    _Atomic uint64_t deadline;
    _Atomic uint32_t idle_gen;  /* bumped each time the connection goes idle (connection's thread) */
    _Atomic uint64_t idle_base; /* bytes the socket had received when it went idle (TCP_INFO) */
    int fd;                        /* the socket, for the watchdog's shutdown() */
    struct conn_ctx *wprev, *wnext; /* the watchdog's list (under watch->mu) */
} conn_ctx;

/* The watchdog: one thread that closes connections whose request did not arrive in time and gives
 * memory back to the system after large requests (malloc_trim). */
typedef struct http_watch {
    http_listener pub, adm;
    pthread_mutex_t mu; /* guards the list and the sockets' lifetime against shutdown() */
    pthread_cond_t cv;
    conn_ctx *head;
    uint64_t timeout_ns; /* 0: no request deadline */
    int stop, started;
    pthread_t thread;
} http_watch;

static _Atomic uint64_t req_counter;
static _Atomic uint64_t n_timeouts;
/* malloc_trim is wanted: 2 after large buffers were freed (trimmed within a second), 1 after connections
 * closed (within 10 s: under connection churn the trim stays rare) */
static _Atomic int trim_wanted;
static char req_prefix[12];

uint64_t http_request_timeouts(void)
{
    return atomic_load_explicit(&n_timeouts, memory_order_relaxed);
}

void *http_slot_get(http_req *r, const http_slot_type *type)
{
    conn_ctx *cc = (conn_ctx *)r;
    for (int i = 0; i < cc->nslots; i++)
        if (cc->slots[i].type == type) return cc->slots[i].p;
    return NULL;
}

void *http_slot(http_req *r, const http_slot_type *type)
{
    conn_ctx *cc = (conn_ctx *)r;
    for (int i = 0; i < cc->nslots; i++)
        if (cc->slots[i].type == type) return cc->slots[i].p;
    if (cc->nslots == HTTP_MAX_SLOTS) {
        rc_error(RC_EFULL, "a connection holds at most %d slot types (%s)", HTTP_MAX_SLOTS, type->name);
        return NULL;
    }
    void *p = type->create();
    if (!p) {
        rc_error(RC_ENOMEM, "out of memory for the %s state of a connection", type->name);
        return NULL;
    }
    cc->slots[cc->nslots].type = type;
    cc->slots[cc->nslots].p = p;
    cc->nslots++;
    return p;
}

uint64_t http_now_ns(void)
{
    return clock_mono_ns();
}

const char *http_query(http_req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int http_problem(http_req *r, int status, const char *slug, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    sbuf_reset(r->out);
    problem_write(r->out, status, slug, detail, r->path, r->request_id);
    r->status = status;
    r->content_type = PROBLEM_CONTENT_TYPE;
    return HTTP_DONE;
}

int http_oom(http_req *r, const char *what)
{
    return http_problem(r, 503, "out-of-memory", "out of memory for %s: retry later", what);
}

int http_json(http_req *r, int status)
{
    r->status = status;
    r->content_type = "application/json";
    return HTTP_DONE;
}

void http_suspend(http_req *r)
{
    conn_ctx *cc = (conn_ctx *)r; /* req is the first member */
    cc->phase = PH_ASYNC;
    MHD_suspend_connection(r->conn);
}

void http_resume(http_req *r)
{
    conn_ctx *cc = (conn_ctx *)r;
    cc->phase = PH_READY;
    MHD_resume_connection(r->conn);
}

/* ---- helpers ---- */

static int valid_request_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= HTTP_REQUEST_ID_MAX) return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.'))
            return 0;
    }
    return n > 0;
}

void http_request_id_unique(http_req *r)
{
    if (!r->request_id_client) return;
    size_t n = strnlen(r->request_id, HTTP_REQUEST_ID_MAX);
    snprintf(r->request_id + n, sizeof r->request_id - n, ".%s-%llx", req_prefix,
             (unsigned long long)atomic_fetch_add_explicit(&req_counter, 1, memory_order_relaxed));
    r->request_id_client = 0;
}

/* 1 when a Content-Type names JSON: application/json or application/<x>+json (case-insensitive), with
 * optional parameters of which a charset must be UTF-8 (RFC 8259 section 8.1). */
static int json_content_type(const char *ct)
{
    if (!ct) return 0;
    while (*ct == ' ' || *ct == '\t') ct++;
    if (strncasecmp(ct, "application/", 12) != 0) return 0;
    const char *sub = ct + 12, *end = sub;
    while (*end && *end != ';' && *end != ' ' && *end != '\t') end++;
    size_t n = (size_t)(end - sub);
    if (!((n == 4 && strncasecmp(sub, "json", 4) == 0) || (n > 5 && strncasecmp(end - 5, "+json", 5) == 0))) return 0;
    const char *p = end;
    while (*p) { /* parameters: ; name=value */
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        if (*p != ';') return 0;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';') p++;
        if (*p != '=') return 0;
        size_t nl = (size_t)(p - name);
        p++;
        const char *val = p;
        while (*p && *p != ';' && *p != ' ' && *p != '\t') p++;
        size_t vl = (size_t)(p - val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val++;
            vl -= 2;
        }
        if (nl == 7 && strncasecmp(name, "charset", 7) == 0 &&
            !((vl == 5 && strncasecmp(val, "utf-8", 5) == 0) || (vl == 4 && strncasecmp(val, "utf8", 4) == 0)))
            return 0;
    }
    return 1;
}

/* Framing that two parsers could read differently (RFC 9112 section 6): Content-Length together with
 * Transfer-Encoding, Content-Length given twice with different values, or transfer codings whose list
 * (all Transfer-Encoding lines together, in order) does not end with exactly one chunked. */
struct framing {
    int n_cl, n_te, bad_cl, bad_name;
    const char *cl;
    int n_chunked, n_other, last_chunked; /* over every coding of every Transfer-Encoding line */
};

static void framing_codings(struct framing *f, const char *v)
{
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',') v++;
        if (!*v) break;
        const char *e = v;
        while (*e && *e != ',') e++;
        size_t n = (size_t)(e - v);
        while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
        int chunked = n == 7 && strncasecmp(v, "chunked", 7) == 0;
        f->n_chunked += chunked;
        f->n_other += !chunked;
        f->last_chunked = chunked;
        v = e;
    }
}

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct framing *f = cls;
    (void)kind;
    size_t kl = strlen(key);
    if (kl == 0 || key[kl - 1] == ' ' || key[kl - 1] == '\t') f->bad_name = 1; /* "Name : value" */
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (f->n_cl++ && (!value || !f->cl || strcmp(value, f->cl) != 0)) f->bad_cl = 1;
        f->cl = value;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->n_te++;
        f->last_chunked = 0; /* an empty line ends the list with nothing */
        framing_codings(f, value);
    }
    return MHD_YES;
}

/* NULL when the framing is clear; else the reason, with *status 400 (the body's end cannot be known:
 * RFC 9112 section 6.3) or 501 (chunked last, after a coding recd does not decode: section 6.1). */
static const char *ambiguous_framing(struct MHD_Connection *conn, const char *version, int *status)
{
    struct framing f;
    memset(&f, 0, sizeof f);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_header, &f);
    *status = 400;
    if (f.bad_name) return "whitespace between a header name and its colon (RFC 9112 section 5.1)";
    if (f.bad_cl) return "two different Content-Length values";
    if (f.n_cl && f.n_te) return "both Content-Length and Transfer-Encoding";
    if (!f.n_te) return NULL;
    if (version && strcmp(version, MHD_HTTP_VERSION_1_0) == 0)
        return "Transfer-Encoding in an HTTP/1.0 request (section 6.1: faulty framing)";
    if (!f.last_chunked) return "transfer codings that do not end with chunked";
    if (f.n_chunked > 1) return "chunked applied more than once";
    if (f.n_other) {
        *status = 501;
        return "a transfer coding other than chunked (only chunked is decoded)";
    }
    return NULL;
}

static const char *allowed_origin(server *srv, http_req *r)
{
    if (srv->n_cors == 0) return NULL;
    const char *origin = http_header(r, "Origin");
    if (!origin) return NULL;
    for (int i = 0; i < srv->n_cors; i++)
        if (strcmp(srv->cors[i], "*") == 0 || strcmp(srv->cors[i], origin) == 0) return origin;
    return NULL;
}

/* Constant-time comparison of a presented token with the configured one. */
static int token_equal(const char *given, const char *want)
{
    size_t gn = strlen(given), wn = strlen(want);
    unsigned diff = (unsigned)(gn ^ wn);
    for (size_t i = 0; i < wn; i++) diff |= (unsigned char)want[i] ^ (unsigned char)(i < gn ? given[i] : 0);
    return diff == 0;
}

static enum MHD_Result send_answer(conn_ctx *cc)
{
    http_req *r = &cc->req;
    server *srv = r->srv;
    if (sbuf_failed(r->out)) {
        sbuf_reset(r->out);
        problem_write(r->out, 503, "out-of-memory", "out of memory building the answer: retry later", r->path,
                      r->request_id);
        r->status = 503;
        r->content_type = PROBLEM_CONTENT_TYPE;
        if (sbuf_failed(r->out)) return MHD_NO; /* not even that: drop the connection */
    }
    if (!r->status) r->status = 500;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->out->len, r->out->len ? r->out->data : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    if (r->content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (cc->allow[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, cc->allow);
    if (r->status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (r->status == 503) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (r->content_type && strncmp(r->content_type, "text/html", 9) == 0) { /* recd's pages (server/ui.c) */
        MHD_add_response_header(resp, "Content-Security-Policy", HTTP_HTML_CSP);
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    }
    const char *origin = allowed_origin(srv, r);
    if (origin) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", "X-Request-Id");
    }
    if (cc->close_after || atomic_load_explicit(&srv->draining, memory_order_relaxed))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    cc->sent_status = r->status;
    return ret;
}

/* OPTIONS on a known path: 204 with Allow listing every method of the path. */
static void answer_options(conn_ctx *cc, const route *path_route)
{
    http_req *r = &cc->req;
    sbuf_reset(r->out);
    r->status = 204;
    r->content_type = NULL;
    cc->allow[0] = '\0';
    for (const route *rt = router_table; rt->method; rt++) {
        if (strcmp(rt->pattern, path_route->pattern) != 0) continue;
        const char *m = strcmp(rt->method, "GET") == 0 ? "GET, HEAD" : rt->method;
        if (strlen(cc->allow) + strlen(m) + 12 < sizeof cc->allow) {
            if (cc->allow[0]) strcat(cc->allow, ", ");
            strcat(cc->allow, m);
        }
    }
    strcat(cc->allow, ", OPTIONS");
}

static enum MHD_Result dispatch(conn_ctx *cc)
{
    http_req *r = &cc->req;
    server *srv = r->srv;
    int status = 0;
    const route *path_route = NULL;
    const route *rt = router_match(r->method, r->path, r->params, &r->nparams, &status, cc->allow,
                                   sizeof cc->allow, &path_route);
    if (cc->lst->admin && path_route && !(path_route->flags & ROUTE_OPS)) { /* the admin port: ops only */
        rt = path_route = NULL;
        status = 404;
    }
    cc->metric = router_metric(path_route);
    r->route = rt;
    if (cc->too_large)
        return http_problem(r, 413, "body-too-large", "request body over the limit of %lld bytes",
                            srv->cfg.max_body),
               send_answer(cc);
    if (!rt && strcmp(r->method, "OPTIONS") == 0 && path_route) {
        answer_options(cc, path_route);
        if (allowed_origin(srv, r) && http_header(r, "Access-Control-Request-Method")) {
            struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
            if (!resp) return MHD_NO;
            MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, http_header(r, "Origin"));
            MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
            MHD_add_response_header(resp, "Access-Control-Allow-Methods", cc->allow);
            MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                    "Content-Type, Authorization, X-Request-Id");
            MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
            MHD_add_response_header(resp, "X-Request-Id", r->request_id);
            enum MHD_Result ret = MHD_queue_response(r->conn, 204, resp);
            MHD_destroy_response(resp);
            cc->sent_status = 204;
            return ret;
        }
        return send_answer(cc);
    }
    if (!rt) {
        char detail[200];
        if (status == 405)
            http_problem(r, 405, "method-not-allowed", "%s is not allowed on %s (allowed: %s)", r->method, r->path,
                         cc->allow);
        else if (status == 414) /* a {param} segment over ROUTE_PARAM_MAX - 1 bytes */
            http_problem(r, 414, "uri-too-long", "%s", router_param_detail(path_route, r->path, detail, sizeof detail));
        else
            http_problem(r, 404, "not-found", "no route %s %s", r->method, r->path);
        return send_answer(cc);
    }
    cc->allow[0] = '\0';
    if (rt->flags & ROUTE_ADMIN) {
        if (!srv->admin_token) {
            http_problem(r, 404, "not-found", "admin routes are off: no admin token is configured");
            return send_answer(cc);
        }
        const char *auth = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
            http_problem(r, 401, "unauthorized", "this route needs 'Authorization: Bearer <admin token>'");
            return send_answer(cc);
        }
        if (!token_equal(auth + 7, srv->admin_token)) {
            http_problem(r, 403, "forbidden", "wrong admin token");
            return send_answer(cc);
        }
    }
    if ((rt->flags & ROUTE_JSON) && !json_content_type(http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
        http_problem(r, 415, "unsupported-media-type",
                     "%s takes a JSON body: send 'Content-Type: application/json' (got %s%.64s%s)", r->path,
                     ct ? "'" : "", ct ? ct : "none", ct ? "'" : "");
        return send_answer(cc);
    }
    /* While draining, requests on open connections are still served (their answers carry Connection:
     * close); new connections are refused by on_accept. */
    r->body = cc->body.len ? cc->body.data : "";
    r->body_len = cc->body.len;
    r->status = 0;
    r->content_type = NULL;
    sbuf_reset(r->out);
    int hr = rt->fn(r);
    if (hr == HTTP_ASYNC) return MHD_YES;
    return send_answer(cc);
}

static void run_on_resume(http_req *r)
{
    void (*fn)(http_req *) = r->on_resume;
    r->on_resume = NULL;
    if (fn) fn(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **req_cls)
{
    const http_listener *lst = cls;
    server *srv = lst->srv;
    conn_ctx *cc = *req_cls;
    if (!cc) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        cc = ci ? ci->socket_context : NULL;
        if (!cc) return MHD_NO;
        http_req *r = &cc->req;
        r->srv = srv;
        r->conn = conn;
        r->method = method;
        r->path = url;
        r->route = NULL;
        r->nparams = 0;
        r->status = 0;
        r->content_type = NULL;
        r->on_resume = NULL;
        r->out = &cc->out;
        r->t0_ns = http_now_ns();
        const char *rid = http_header(r, "X-Request-Id");
        r->request_id_client = rid && valid_request_id(rid);
        if (r->request_id_client)
            snprintf(r->request_id, sizeof r->request_id, "%s", rid);
        else
            snprintf(r->request_id, sizeof r->request_id, "%s-%llx", req_prefix,
                     (unsigned long long)atomic_fetch_add_explicit(&req_counter, 1, memory_order_relaxed));
        sbuf_reset(&cc->body);
        sbuf_reset(&cc->out);
        cc->phase = PH_BODY;
        cc->too_large = 0;
        cc->close_after = 0;
        cc->metric = 0;
        cc->sent_status = 0;
        cc->allow[0] = '\0';
        cc->in_request = 1;
        atomic_fetch_add_explicit(&srv->inflight, 1, memory_order_relaxed);
        *req_cls = cc;
        /* headers are here: the deadline runs if the watchdog has not started it yet (bytes that came
         * before the previous answer was sent are in the idle baseline, so it could not see them) */
        http_watch *w = srv->watch;
        if (w && w->timeout_ns) {
            uint64_t idle = DEADLINE_IDLE;
            atomic_compare_exchange_strong(&cc->deadline, &idle, r->t0_ns + w->timeout_ns);
        }
        int amb_status;
        const char *amb = ambiguous_framing(conn, version, &amb_status);
        if (amb) { /* answered before reading a body whose end is unknown; then the connection closes */
            cc->close_after = 1;
            cc->too_large = 1; /* drop whatever body arrives */
            const route *pr = NULL;
            int st, np;
            router_match(method, url, r->params, &np, &st, NULL, 0, &pr);
            cc->metric = router_metric(pr);
            http_problem(r, amb_status, amb_status == 400 ? "ambiguous-framing" : "unsupported-transfer-coding",
                         "the request has %s (RFC 9112 section 6)", amb);
            if (atomic_exchange_explicit(&cc->deadline, 0, memory_order_relaxed) == DEADLINE_CUT) return MHD_NO;
            return send_answer(cc);
        }
        const char *cl = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            errno = 0;
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || *end || n > (unsigned long long)srv->cfg.max_body) {
                cc->too_large = 1;
                const route *pr = NULL;
                int st, np;
                router_match(method, url, r->params, &np, &st, NULL, 0, &pr);
                cc->metric = router_metric(pr);
                http_problem(r, 413, "body-too-large", "request body over the limit of %lld bytes",
                             srv->cfg.max_body);
                if (atomic_exchange_explicit(&cc->deadline, 0, memory_order_relaxed) == DEADLINE_CUT) return MHD_NO;
                return send_answer(cc);
            }
        }
        return MHD_YES;
    }
    if (cc->phase == PH_READY) {
        cc->phase = PH_BODY;
        run_on_resume(&cc->req);
        return send_answer(cc);
    }
    if (*upload_size) {
        if (!cc->too_large) {
            if (cc->body.len + *upload_size > (size_t)srv->cfg.max_body) {
                cc->too_large = 1;
                sbuf_reset(&cc->body);
            } else {
                sbuf_add(&cc->body, upload_data, *upload_size);
                if (sbuf_failed(&cc->body)) return MHD_NO;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (cc->sent_status) return MHD_YES; /* answered early (413, 400) */
    /* The whole request is here: its deadline ends (unless the watchdog closed it just now). */
    if (atomic_exchange_explicit(&cc->deadline, 0, memory_order_relaxed) == DEADLINE_CUT) return MHD_NO;
    return dispatch(cc);
}

/* Bytes the kernel has received on a TCP socket since it opened (TCP_INFO). -1 when unknown. */
static int tcp_bytes_received(int fd, uint64_t *out)
{
    struct tcp_info ti;
    socklen_t n = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &n) != 0) return -1;
    if (n < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received) return -1;
    *out = ti.tcpi_bytes_received;
    return 0;
}

/* Give back what one large request grew: buffers over HTTP_KEEP_BYTES are freed, slots trimmed. */
static void conn_trim(conn_ctx *cc)
{
    int big = 0;
    if (cc->body.cap > HTTP_KEEP_BYTES) {
        sbuf_release(&cc->body);
        big = 1;
    }
    if (cc->out.cap > HTTP_KEEP_BYTES) {
        sbuf_release(&cc->out);
        big = 1;
    }
    for (int i = 0; i < cc->nslots; i++)
        if (cc->slots[i].type->trim) cc->slots[i].type->trim(cc->slots[i].p);
    if (big) atomic_store_explicit(&trim_wanted, 2, memory_order_relaxed);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    const http_listener *lst = cls;
    server *srv = lst->srv;
    (void)conn;
    (void)toe;
    conn_ctx *cc = *req_cls;
    if (!cc) return;
    *req_cls = NULL;
    run_on_resume(&cc->req); /* a request that ended while suspended (client gone) */
    if (!cc->in_request) return;
    cc->in_request = 0;
    metrics_observe(cc->metric, cc->sent_status, http_now_ns() - cc->req.t0_ns);
    conn_trim(cc);
    /* idle until the next request's first bytes arrive (the watchdog then starts its deadline): what the
     * socket received so far is the baseline, so bytes of a next request already received are not seen
     * by the watchdog (on_request starts its deadline when its headers are complete). One getsockopt per
     * request, only when deadlines are on. */
    http_watch *w = srv->watch;
    uint64_t base = 0;
    if (w && w->timeout_ns && cc->fd >= 0 && tcp_bytes_received(cc->fd, &base) != 0) base = 0;
    atomic_store(&cc->idle_base, base);
    atomic_fetch_add(&cc->idle_gen, 1);
    uint64_t d = atomic_load_explicit(&cc->deadline, memory_order_relaxed);
    if (d != DEADLINE_CUT) atomic_compare_exchange_strong(&cc->deadline, &d, DEADLINE_IDLE); /* CUT stays */
    atomic_fetch_sub_explicit(&srv->inflight, 1, memory_order_release);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    const http_listener *lst = cls;
    http_watch *w = lst->srv->watch;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_ctx *cc = calloc(1, sizeof *cc);
        if (cc) {
            sbuf_init(&cc->body);
            sbuf_init(&cc->out);
            cc->lst = lst;
            const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            cc->fd = ci ? ci->connect_fd : -1;
            atomic_init(&cc->deadline, DEADLINE_IDLE);
            atomic_init(&cc->idle_gen, 1);
            atomic_init(&cc->idle_base, 0); /* any byte received is a request's */
            if (w && cc->fd >= 0) {
                pthread_mutex_lock(&w->mu);
                cc->wnext = w->head;
                if (w->head) w->head->wprev = cc;
                w->head = cc;
                pthread_mutex_unlock(&w->mu);
            } else {
                cc->fd = -1;
            }
        }
        *socket_context = cc; /* NULL: on_request refuses the connection */
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn_ctx *cc = *socket_context;
        if (!cc) return;
        if (w && cc->fd >= 0) { /* before libmicrohttpd closes the socket: the watchdog forgets it */
            pthread_mutex_lock(&w->mu);
            if (cc->wprev) cc->wprev->wnext = cc->wnext;
            else w->head = cc->wnext;
            if (cc->wnext) cc->wnext->wprev = cc->wprev;
            pthread_mutex_unlock(&w->mu);
        }
        run_on_resume(&cc->req);
        for (int i = 0; i < cc->nslots; i++) cc->slots[i].type->destroy(cc->slots[i].p);
        /* what the connection held (libmicrohttpd's 32 KiB pool comes from malloc too) goes back to the
         * system at the watchdog's next trim */
        int none = 0;
        atomic_compare_exchange_strong(&trim_wanted, &none, 1);
        sbuf_release(&cc->body);
        sbuf_release(&cc->out);
        free(cc);
        *socket_context = NULL;
    }
}

http_req *http_detached_new(server *srv)
{
    conn_ctx *cc = calloc(1, sizeof *cc);
    if (!cc) return NULL;
    sbuf_init(&cc->body);
    sbuf_init(&cc->out);
    cc->fd = -1;
    cc->req.srv = srv;
    cc->req.out = &cc->out;
    cc->req.method = "POST";
    cc->req.path = "/";
    return &cc->req;
}

void http_detached_end(http_req *r)
{
    conn_trim((conn_ctx *)r);
}

void http_detached_free(http_req *r)
{
    if (!r) return;
    conn_ctx *cc = (conn_ctx *)r;
    for (int i = 0; i < cc->nslots; i++) cc->slots[i].type->destroy(cc->slots[i].p);
    sbuf_release(&cc->body);
    sbuf_release(&cc->out);
    free(cc);
}

/* ---- the watchdog ---- */

/* An idle connection (between requests): start its deadline once the socket received bytes beyond the
 * baseline taken when it went idle (within one tick, 100 ms, of a request's first bytes). Up to 2 bytes
 * are allowed: a client may send an empty line (CRLF) before a request (RFC 9112 section 2.2). */
static void watch_idle(http_watch *w, conn_ctx *cc, uint64_t now)
{
    uint32_t gen = atomic_load(&cc->idle_gen);
    uint64_t base = atomic_load(&cc->idle_base), bytes;
    if (tcp_bytes_received(cc->fd, &bytes) != 0) bytes = base + 3; /* not TCP: the deadline runs now */
    if (bytes <= base + 2) return; /* idle: http.timeout_s (libmicrohttpd) closes it, silently */
    uint64_t d = DEADLINE_IDLE, t = now + w->timeout_ns;
    if (!atomic_compare_exchange_strong(&cc->deadline, &d, t)) return; /* received whole meanwhile */
    if (atomic_load(&cc->idle_gen) != gen) /* answered and idle again meanwhile: not this period's bytes */
        atomic_compare_exchange_strong(&cc->deadline, &t, DEADLINE_IDLE);
}

/* Close (408, then shutdown) every connection whose request deadline passed. Under w->mu, so the
 * sockets are open: libmicrohttpd calls NOTIFY_CLOSED (which takes w->mu) before closing them. */
static void watch_cut(http_watch *w, uint64_t now)
{
    pthread_mutex_lock(&w->mu);
    for (conn_ctx *cc = w->head; cc; cc = cc->wnext) {
        uint64_t d = atomic_load(&cc->deadline);
        if (d == DEADLINE_IDLE) {
            watch_idle(w, cc, now);
            continue;
        }
        if (d == 0 || d == DEADLINE_CUT || d > now) continue;
        if (!atomic_compare_exchange_strong(&cc->deadline, &d, DEADLINE_CUT)) continue; /* just arrived */
        /* The connection's thread is only reading (no answer is being written): the 408 goes out whole
         * (a few hundred bytes into an empty send buffer). */
        char rid[HTTP_REQUEST_ID_MAX + 1], date[64], body[384], answer[1024];
        snprintf(rid, sizeof rid, "%s-%llx", req_prefix,
                 (unsigned long long)atomic_fetch_add_explicit(&req_counter, 1, memory_order_relaxed));
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        int bn = snprintf(body, sizeof body,
                          "{\"type\":\"urn:recd:problem:request-timeout\",\"title\":\"Request Timeout\","
                          "\"status\":408,\"detail\":\"the request did not arrive whole within "
                          "http.request_timeout_s (%llu s)\",\"request_id\":\"%s\"}\n",
                          (unsigned long long)(w->timeout_ns / 1000000000ull), rid);
        int an = snprintf(answer, sizeof answer,
                          "HTTP/1.1 408 Request Timeout\r\nDate: %s\r\nConnection: close\r\n"
                          "Content-Type: application/problem+json\r\nX-Request-Id: %s\r\n"
                          "Cache-Control: no-store\r\nContent-Length: %d\r\n\r\n%s",
                          date, rid, bn, body);
        ssize_t wr = send(cc->fd, answer, (size_t)an, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)wr;
        shutdown(cc->fd, SHUT_RDWR); /* libmicrohttpd sees the end of the stream and closes it */
        atomic_fetch_add_explicit(&n_timeouts, 1, memory_order_relaxed);
        metrics_observe(0, 408, 0); /* under the "unmatched" route: the request never arrived whole */
    }
    pthread_mutex_unlock(&w->mu);
}

static void *watch_main(void *arg)
{
    http_watch *w = arg;
    uint64_t last_trim = 0;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts); /* the condvar's clock (watch_start): NTP steps do not stall it */
        ts.tv_nsec += 100 * 1000000L; /* 10 times a second: deadlines are whole seconds */
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        if (w->stop) break;
        pthread_mutex_unlock(&w->mu);
        uint64_t now = http_now_ns();
        if (w->timeout_ns) watch_cut(w, now);
        /* Memory freed by large requests goes back to the system (glibc keeps freed heap pages until
         * asked). At most once a second, off the request threads. */
        int want = atomic_load_explicit(&trim_wanted, memory_order_relaxed);
        uint64_t gap = want == 2 ? 1000000000ull : 10000000000ull;
        if (want && now - last_trim > gap && atomic_exchange_explicit(&trim_wanted, 0, memory_order_relaxed)) {
            malloc_trim(0);
            last_trim = now;
        }
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    log_debug("libmicrohttpd: %s", msg);
}

/* libmicrohttpd's accept policy: while draining (SIGTERM), a new connection is closed as soon as it is
 * accepted, so the listener takes no new work without touching the epoll sets (see http_quiesce). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    const http_listener *l = cls;
    return atomic_load_explicit(&l->srv->draining, memory_order_relaxed) ? MHD_NO : MHD_YES;
}

static struct MHD_Daemon *start_daemon(server *srv, http_listener *lst, struct sockaddr *sa, unsigned flags,
                                       long threads, long long max_conn, long long per_ip)
{
    struct MHD_OptionItem ops[] = {
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, max_conn, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, srv->cfg.timeout_s, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, lst},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, lst},
        {MHD_OPTION_SOCK_ADDR, 0, sa},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    /* a single-thread daemon: skip the pool option (MHD_OPTION_END there would end the array early) */
    struct MHD_OptionItem *first = threads > 1 ? ops : ops + 1;
    return MHD_start_daemon(flags, 0, on_accept, lst, on_request, lst, MHD_OPTION_ARRAY, first, MHD_OPTION_END);
}

/* http.max_connections sockets need as many descriptors: raise the soft limit (often 1024, below the
 * default 1024 connections plus snapshots, epoll and the admin port) up to the hard one when short. */
static void raise_fd_limit(const server *srv)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t need = (rlim_t)srv->cfg.max_connections + (srv->cfg.admin_port > 0 ? 64 : 0) + 256;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        struct rlimit nl = {want, rl.rlim_max};
        if (want > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &nl) == 0) rl.rlim_cur = want;
        if (rl.rlim_cur < need)
            log_warn("open files limited to %llu: http.max_connections %lld cannot all be accepted (raise the hard "
                     "limit, e.g. LimitNOFILE= in systemd)",
                     (unsigned long long)rl.rlim_cur, srv->cfg.max_connections);
    }
}

int http_start(server *srv)
{
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, srv->cfg.bind, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)srv->cfg.port);
        sa = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, srv->cfg.bind, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)srv->cfg.port);
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        return rc_error(RC_EINVAL, "http.bind: '%s' is not an IPv4 or IPv6 address", srv->cfg.bind);
    }
    long threads = srv->cfg.threads;
    if (threads <= 0) {
        threads = sysconf(_SC_NPROCESSORS_ONLN);
        if (threads < 1) threads = 1;
    }
    snprintf(req_prefix, sizeof req_prefix, "%08x",
             (unsigned)(((uint64_t)time(NULL) * 2654435761u) ^ ((uint64_t)getpid() << 16) ^ http_now_ns()));
    raise_fd_limit(srv);
    http_watch *w = calloc(1, sizeof *w);
    if (!w) return rc_error(RC_ENOMEM, "out of memory starting HTTP");
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->pub = (http_listener){srv, 0};
    w->adm = (http_listener){srv, 1};
    w->timeout_ns = (uint64_t)srv->cfg.request_timeout_s * 1000000000ull;
    srv->watch = w;
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        http_stop(srv);
        return rc_error(RC_EIO, "cannot start the HTTP watchdog thread");
    }
    w->started = 1;
    /* threads 1: the same daemon without a pool (MHD_OPTION_THREAD_POOL_SIZE 1 is refused by some builds) */
    srv->mhd = start_daemon(srv, &w->pub, sa, flags, threads, srv->cfg.max_connections, srv->cfg.max_conn_per_ip);
    if (!srv->mhd) {
        http_stop(srv);
        return rc_error(RC_EIO, "cannot listen on %s:%lld (port taken, or address not local)", srv->cfg.bind,
                        srv->cfg.port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : (int)srv->cfg.port;
    if (srv->cfg.admin_port > 0) {
        if (sa == (struct sockaddr *)&a4) a4.sin_port = htons((uint16_t)srv->cfg.admin_port);
        else a6.sin6_port = htons((uint16_t)srv->cfg.admin_port);
        /* one thread of its own, a few connections, no per-address limit (probes come from one node) */
        srv->mhd_admin = start_daemon(srv, &w->adm, sa, flags, 1, 64, 0);
        if (!srv->mhd_admin) {
            http_stop(srv);
            return rc_error(RC_EIO, "http.admin_port: cannot listen on %s:%lld (port taken?)", srv->cfg.bind,
                            srv->cfg.admin_port);
        }
        di = MHD_get_daemon_info(srv->mhd_admin, MHD_DAEMON_INFO_BIND_PORT);
        srv->admin_port = di ? di->port : (int)srv->cfg.admin_port;
    }
    return RC_OK;
}

/* Draining refuses new connections in the accept policy callback (on_accept) rather than with
 * MHD_quiesce_daemon: in libmicrohttpd 0.9.75 with epoll worker threads, MHD_quiesce_daemon and a worker's
 * own loop can both remove the listen socket from the worker's epoll set, unlocked, and the loser's
 * epoll_ctl(EPOLL_CTL_DEL) failing with ENOENT is an MHD_PANIC: the process aborted on SIGTERM ("Failed to
 * remove listen FD from epoll set", seen once in `make asan`). */
void http_quiesce(server *srv)
{
    atomic_store(&srv->draining, 1);
}

void http_stop(server *srv)
{
    if (srv->mhd) MHD_stop_daemon(srv->mhd);
    if (srv->mhd_admin) MHD_stop_daemon(srv->mhd_admin);
    srv->mhd = srv->mhd_admin = NULL;
    http_watch *w = srv->watch;
    if (!w) return;
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    srv->watch = NULL;
}

int http_port(server *srv)
{
    return srv->port;
}
