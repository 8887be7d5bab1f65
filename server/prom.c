/* server/prom.c - GET /metrics: Prometheus text exposition (server/metrics.h). */
#include "server/http.h"
#include "server/metrics.h"

int route_metrics(http_req *r)
{
    metrics_render(r->out);
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return HTTP_DONE;
}
