/* server/health.c - GET /healthz (liveness) and GET /readyz (readiness). */
#include <string.h>
#include <time.h>

#include "server/http.h"
#include "server/registry.h"
#include "server/server.h"

static void add_request_id(http_req *r)
{
    sbuf_adds(r->out, ",\"request_id\":");
    sbuf_json_str(r->out, r->request_id, strlen(r->request_id));
    sbuf_adds(r->out, "}\n");
}

int route_healthz(http_req *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sbuf_printf(r->out, "{\"status\":\"ok\",\"version\":\"%s\",\"uptime_s\":%.0f", RECD_VERSION,
                (double)ts.tv_sec - r->srv->started_at);
    add_request_id(r);
    return http_json(r, 200);
}

int route_readyz(http_req *r)
{
    registry *reg = r->srv->reg;
    int ready = registry_ready(reg) && !atomic_load(&r->srv->draining);
    sbuf_printf(r->out, "{\"status\":\"%s\",\"models\":{", ready ? "ready" : "not ready");
    for (int i = 0; i < registry_count(reg); i++) {
        const char *name = registry_name(reg, i);
        model_version *v = registry_acquire(reg, name, NULL);
        if (i) sbuf_addc(r->out, ',');
        sbuf_json_str(r->out, name, strlen(name));
        sbuf_addc(r->out, ':');
        if (v) sbuf_printf(r->out, "\"%s\"", v->version_str);
        else sbuf_adds(r->out, "null");
        registry_release(reg, v);
    }
    sbuf_addc(r->out, '}');
    if (atomic_load(&r->srv->draining)) sbuf_adds(r->out, ",\"draining\":true");
    add_request_id(r);
    return http_json(r, ready ? 200 : 503);
}
