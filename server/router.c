/* server/router.c - the route table and path matching (see router.h). */
#include "server/router.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "server/metrics.h"

/* Handlers, one file each. */
int route_healthz(http_req *r); /* server/health.c */
int route_readyz(http_req *r);  /* server/health.c */
int route_metrics(http_req *r); /* server/prom.c */
int route_models(http_req *r);  /* server/models.c */
int route_reload(http_req *r);  /* server/models.c */
int route_next(http_req *r);    /* server/next.c */
int route_rank(http_req *r);    /* server/rank.c */
int route_ratings(http_req *r); /* server/ratings.c */
int route_recommend(http_req *r); /* server/recommend.c */
int route_events(http_req *r);  /* server/events.c */
int route_experiments(http_req *r); /* server/experiments.c */
int route_experiment(http_req *r);  /* server/experiments.c */
int route_ui_experiment(http_req *r); /* server/ui.c */

/* One line per route. */
const route router_table[] = {
    {"GET", "/healthz", route_healthz, ROUTE_OPS, "liveness: answers as soon as the process serves HTTP"},
    {"GET", "/readyz", route_readyz, ROUTE_OPS, "readiness: 200 once every configured model is loaded"},
    {"GET", "/metrics", route_metrics, ROUTE_OPS, "Prometheus text exposition"},
    {"GET", "/v1/models", route_models, ROUTE_OPS, "loaded models, versions, load times and snapshot metrics"},
    {"POST", "/v1/models/{name}/reload", route_reload, ROUTE_ADMIN | ROUTE_OPS, "rescan and load the newest snapshot"},
    {"POST", "/v1/next", route_next, ROUTE_JSON, "next-item recommendations, stateful or stateless"},
    {"POST", "/v1/rank", route_rank, ROUTE_JSON, "Wide & Deep ranking of the request's candidates"},
    {"POST", "/v1/ratings", route_ratings, ROUTE_JSON, "predicted ratings of a user's items (rating models)"},
    {"GET", "/v1/users/{id}/recommendations", route_recommend, 0, "the top-k items a user has not rated"},
    {"POST", "/v1/events", route_events, ROUTE_JSON, "impressions, clicks and acquisitions, answered once durable"},
    {"GET", "/v1/experiments", route_experiments, 0, "the configured experiments with their totals"},
    {"GET", "/v1/experiments/{name}", route_experiment, 0, "an experiment's report: rates, lifts, trust checks"},
    {"GET", "/ui/experiments/{name}", route_ui_experiment, 0, "the experiment's report page (HTML)"},
    {NULL, NULL, NULL, 0, NULL},
};

#define MAX_TABLE 40
static int metric_of[MAX_TABLE];

int router_init(void)
{
    for (int i = 0; router_table[i].method; i++) {
        if (i >= MAX_TABLE) return rc_error(RC_EFULL, "more than %d routes", MAX_TABLE);
        int m = metrics_route(router_table[i].pattern);
        if (m < 0) return rc_error(RC_EFULL, "too many routes for the metrics table");
        metric_of[i] = m;
    }
    return RC_OK;
}

int router_metric(const route *rt)
{
    if (!rt) return 0;
    return metric_of[rt - router_table];
}

/* Match path against pattern, capturing {params} (when params is not NULL). 1 on match; 2 when the path
 * would match but a {param} segment is longer than ROUTE_PARAM_MAX-1 bytes (*long_at, when not NULL,
 * receives the first such segment's offset in path and *long_len its length; params are then not all
 * filled); 0 otherwise. */
static int match_path(const char *pattern, const char *path, char params[][ROUTE_PARAM_MAX], int *np,
                      size_t *long_at, size_t *long_len)
{
    int n = 0, too_long = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            const char *se = strchr(s, '/');
            if (!pe) return 0;
            if (!se) se = s + strlen(s);
            size_t len = (size_t)(se - s);
            if (len == 0 || n >= ROUTE_MAX_PARAMS) return 0;
            if (len >= ROUTE_PARAM_MAX) {
                if (!too_long) {
                    if (long_at) *long_at = (size_t)(s - path);
                    if (long_len) *long_len = len;
                }
                too_long = 1;
            } else if (params) {
                memcpy(params[n], s, len);
                params[n][len] = '\0';
            }
            n++;
            p = pe + 1;
            s = se;
            continue;
        }
        if (*p != *s) return 0;
        p++;
        s++;
    }
    if (*p || *s) return 0;
    if (too_long) return 2;
    if (np) *np = n;
    return 1;
}

const route *router_match(const char *method, const char *path, char params[][ROUTE_PARAM_MAX], int *nparams,
                          int *status, char *allow, size_t allow_cap, const route **path_route)
{
    const route *any = NULL, *overlong = NULL;
    if (allow && allow_cap) allow[0] = '\0';
    *nparams = 0;
    for (const route *rt = router_table; rt->method; rt++) {
        int hit = match_path(rt->pattern, path, NULL, NULL, NULL, NULL);
        if (!hit) continue;
        if (!any) any = rt;
        int same = strcmp(rt->method, method) == 0 ||
                   (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0);
        if (same && hit == 1) {
            match_path(rt->pattern, path, params, nparams, NULL, NULL);
            if (path_route) *path_route = rt;
            return rt;
        }
        if (same) { /* a segment too long for this route's parameter */
            if (!overlong) overlong = rt;
            continue;
        }
        if (allow && allow_cap) {
            size_t used = strlen(allow);
            const char *m = strcmp(rt->method, "GET") == 0 ? "GET, HEAD" : rt->method;
            if (used + strlen(m) + 3 < allow_cap) {
                if (used) strcat(allow, ", ");
                strcat(allow, m);
            }
        }
    }
    if (overlong) {
        if (allow && allow_cap) allow[0] = '\0';
        if (path_route) *path_route = overlong;
        *status = 414;
        return NULL;
    }
    if (path_route) *path_route = any;
    *status = any ? 405 : 404;
    return NULL;
}

const char *router_param_detail(const route *rt, const char *path, char *detail, size_t cap)
{
    if (!cap) return detail;
    size_t at = 0, len = 0;
    if (!rt || match_path(rt->pattern, path, NULL, NULL, &at, &len) != 2) {
        snprintf(detail, cap, "a path parameter is at most %d bytes", ROUTE_PARAM_MAX - 1);
        return detail;
    }
    /* the parameter's name in the pattern: the {..} at the same segment index as path's long segment */
    int seg = 0;
    for (size_t i = 0; i < at; i++) seg += path[i] == '/';
    const char *p = rt->pattern, *name = "{param}";
    int name_len = 7;
    for (int k = 0; *p; p++) {
        if (*p == '/') k++;
        if (k == seg && *p == '{') {
            const char *e = strchr(p, '}');
            if (e) {
                name = p;
                name_len = (int)(e - p + 1);
            }
            break;
        }
    }
    snprintf(detail, cap, "path parameter %.*s of %s is %zu bytes long: a path parameter is at most %d bytes",
             name_len, name, rt->pattern, len, ROUTE_PARAM_MAX - 1);
    return detail;
}
