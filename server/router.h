/* server/router.h - the table of HTTP routes (one handler per file, after h2o's lib/handler/).
 *
 * A route is a method, a path pattern whose segments are literal or "{param}", and a callback. To add
 * one: write server/<name>.c with `int route_<name>(http_req *r)`, declare it above the table in
 * server/router.c and add one line to the table. Patterns must also appear in api/openapi.yaml (a test
 * checks every registered route against it).
 */
#ifndef RECD_ROUTER_H
#define RECD_ROUTER_H

#include <stddef.h>

typedef struct http_req http_req;

/* What a handler returns: HTTP_DONE when r's answer is ready (status, content type, body in r->out),
 * HTTP_ASYNC when it suspended the connection with http_suspend() and will call http_resume() from
 * another thread once the answer is ready. */
enum { HTTP_DONE = 0, HTTP_ASYNC = 1 };
typedef int (*route_fn)(http_req *r);

enum {
    ROUTE_ADMIN = 1, /* needs the admin bearer token; off (404) when none is configured */
    ROUTE_JSON = 2,  /* takes a JSON body: any other Content-Type is answered 415 */
    ROUTE_OPS = 4,   /* probes, metrics, model status and admin: also served on http.admin_port */
};

typedef struct route {
    const char *method;  /* "GET" or "POST" (GET routes also answer HEAD) */
    const char *pattern; /* "/v1/models/{name}/reload" */
    route_fn fn;
    unsigned flags;      /* ROUTE_* */
    const char *summary; /* one line, for logs and docs */
} route;

#define ROUTE_MAX_PARAMS 4
/* A path parameter's buffer: segments of at most ROUTE_PARAM_MAX - 1 (1023) bytes, above the longest id
 * the settings allow (limits.max_id_len is at most 1000, server/serve.c), so that a route, not the router,
 * judges an id's length. */
#define ROUTE_PARAM_MAX 1024

/* The table, ended by a NULL method. */
extern const route router_table[];

/* Metric index of each route (same order as the table); filled by router_init. */
int router_metric(const route *rt);
/* Register every route's metric label. Call once before serving. RC_OK or RC_EFULL. */
int router_init(void);

/* Match method+path. Returns the route, filling params (nparams of them, NUL-terminated, at most
 * ROUTE_PARAM_MAX-1 bytes each). When nothing matches returns NULL and sets *status to 404 (no pattern
 * matches the path), 405 (the path matches with other methods; allow receives them, e.g. "GET, HEAD",
 * allow_cap bytes) or 414 (a route of this method would match but one of its {param} segments is longer
 * than ROUTE_PARAM_MAX-1 bytes: router_param_detail says which). *path_route receives a route whose pattern
 * matches the path (the 414's route when *status is 414), for metrics labels, or NULL. */
const route *router_match(const char *method, const char *path, char params[][ROUTE_PARAM_MAX], int *nparams,
                          int *status, char *allow, size_t allow_cap, const route **path_route);

/* The detail of router_match's 414 for rt (its *path_route) and path, into detail[0..cap) (truncated,
 * NUL-terminated): "path parameter {id} of /v1/users/{id}/recommendations is 2000 bytes long: a path
 * parameter is at most 1023 bytes". Returns detail. */
const char *router_param_detail(const route *rt, const char *path, char *detail, size_t cap);

#endif
