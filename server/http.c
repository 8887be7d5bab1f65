/* server/http.c - libmicrohttpd glue: per-connection contexts, bodies, limits, CORS, admin token,
 * request ids, metrics, suspend/resume (see http.h). */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/problem.h"
#include "core/err.h"
#include "core/log.h"
#include "server/metrics.h"
#include "server/server.h"

enum { PH_NEW = 0, PH_BODY, PH_ASYNC, PH_READY };

typedef struct conn_ctx {
    http_req req;
    sbuf body, out;
    int phase;
    int too_large;
    int metric;      /* route metric index */
    int sent_status; /* status of the queued answer, 0 if none */
    char allow[64];  /* Allow header for 405 and OPTIONS */
    int in_request;  /* counted in srv->inflight */
} conn_ctx;

static _Atomic uint64_t req_counter;
static char req_prefix[12];

uint64_t http_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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
        problem_write(r->out, 500, "internal", "the answer could not be built (out of memory)", r->path,
                      r->request_id);
        r->status = 500;
        r->content_type = PROBLEM_CONTENT_TYPE;
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
    const char *origin = allowed_origin(srv, r);
    if (origin) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", "X-Request-Id");
    }
    if (atomic_load_explicit(&srv->draining, memory_order_relaxed))
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
        if (status == 405)
            http_problem(r, 405, "method-not-allowed", "%s is not allowed on %s (allowed: %s)", r->method, r->path,
                         cc->allow);
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
    /* While draining, requests on open connections are still served (their answers carry Connection:
     * close); the listening socket is already closed. */
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
    server *srv = cls;
    (void)version;
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
        if (rid && valid_request_id(rid))
            snprintf(r->request_id, sizeof r->request_id, "%s", rid);
        else
            snprintf(r->request_id, sizeof r->request_id, "%s-%llx", req_prefix,
                     (unsigned long long)atomic_fetch_add_explicit(&req_counter, 1, memory_order_relaxed));
        sbuf_reset(&cc->body);
        sbuf_reset(&cc->out);
        cc->phase = PH_BODY;
        cc->too_large = 0;
        cc->metric = 0;
        cc->sent_status = 0;
        cc->allow[0] = '\0';
        cc->in_request = 1;
        atomic_fetch_add_explicit(&srv->inflight, 1, memory_order_relaxed);
        *req_cls = cc;
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
    if (cc->sent_status) return MHD_YES; /* answered early (413) */
    return dispatch(cc);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    server *srv = cls;
    (void)conn;
    (void)toe;
    conn_ctx *cc = *req_cls;
    if (!cc) return;
    *req_cls = NULL;
    run_on_resume(&cc->req); /* a request that ended while suspended (client gone) */
    if (!cc->in_request) return;
    cc->in_request = 0;
    metrics_observe(cc->metric, cc->sent_status, http_now_ns() - cc->req.t0_ns);
    atomic_fetch_sub_explicit(&srv->inflight, 1, memory_order_release);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_ctx *cc = calloc(1, sizeof *cc);
        if (cc) {
            sbuf_init(&cc->body);
            sbuf_init(&cc->out);
        }
        *socket_context = cc; /* NULL: on_request refuses the connection */
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn_ctx *cc = *socket_context;
        if (!cc) return;
        run_on_resume(&cc->req);
        if (cc->req.slot && cc->req.slot_free) cc->req.slot_free(cc->req.slot);
        sbuf_release(&cc->body);
        sbuf_release(&cc->out);
        free(cc);
        *socket_context = NULL;
    }
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
    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_THREAD_POOL_SIZE, threads, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, srv->cfg.max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, srv->cfg.timeout_s, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, srv},
        {MHD_OPTION_SOCK_ADDR, 0, sa},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    srv->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
    if (!srv->mhd)
        return rc_error(RC_EIO, "cannot listen on %s:%lld (port taken, or address not local)", srv->cfg.bind,
                        srv->cfg.port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : (int)srv->cfg.port;
    return RC_OK;
}

void http_quiesce(server *srv)
{
    if (!srv->mhd) return;
    MHD_socket fd = MHD_quiesce_daemon(srv->mhd);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void http_stop(server *srv)
{
    if (!srv->mhd) return;
    MHD_stop_daemon(srv->mhd);
    srv->mhd = NULL;
}

int http_port(server *srv)
{
    return srv->port;
}
