/* server/models.c - GET /v1/models and POST /v1/models/{name}/reload (admin). */
#include <string.h>

#include "server/http.h"
#include "server/registry.h"
#include "server/server.h"

int route_models(http_req *r)
{
    registry_render_json(r->srv->reg, r->out);
    sbuf_adds(r->out, ",\"request_id\":");
    sbuf_json_str(r->out, r->request_id, strlen(r->request_id));
    sbuf_adds(r->out, "}\n");
    return http_json(r, 200);
}

/* Asks the loop to rescan this model's folder and load its newest version, even one refused before or
 * the one serving (force). Answers 202 at once: the load happens off the request threads; watch
 * /v1/models or the recd_model_version metric for the outcome. */
int route_reload(http_req *r)
{
    server *srv = r->srv;
    const char *name = r->params[0];
    int known = 0;
    model_version *v = registry_acquire(srv->reg, name, &known);
    if (!known) return http_problem(r, 404, "unknown-model", "no model '%s' is configured", name);
    sbuf_adds(r->out, "{\"model\":");
    sbuf_json_str(r->out, name, strlen(name));
    sbuf_adds(r->out, ",\"status\":\"reload scheduled\",\"serving_version\":");
    if (v) sbuf_printf(r->out, "\"%s\"", v->version_str);
    else sbuf_adds(r->out, "null");
    registry_release(srv->reg, v);
    if (srv->request_scan) srv->request_scan(srv, name, 1);
    sbuf_adds(r->out, ",\"request_id\":");
    sbuf_json_str(r->out, r->request_id, strlen(r->request_id));
    sbuf_adds(r->out, "}\n");
    return http_json(r, 202);
}
