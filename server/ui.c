/* server/ui.c - GET /ui/experiments/{name}: the experiment report page (ui/experiment.html, embedded in
 * the binary by the Makefile as ui_experiment_html[]: no file is read at run time, no build tool beyond
 * od and sed).
 *
 * The page is static: it reads the experiment's name from its own URL and fetches
 * /v1/experiments/{name} (a relative URL) from its script, so the HTML never carries request data. It is
 * answered 200 for a configured experiment and 404 (the same page, which then shows the API's "no
 * experiment" message) for an unknown one. text/html answers get a Content-Security-Policy that allows
 * nothing external (server/http.c: inline style and script, fetches to the same origin, no frame
 * ancestors), so the page cannot load or send anything elsewhere even if a value it shows were hostile.
 */
#include <stddef.h>
#include <string.h>

#include "server/experiment.h"
#include "server/http.h"
#include "server/server.h"

int route_ui_experiment(http_req *r);

extern const unsigned char ui_experiment_html[]; /* generated from ui/experiment.html (Makefile) */
extern const size_t ui_experiment_html_len;

int route_ui_experiment(http_req *r)
{
    const char *name = r->params[0];
    const experiment *e = exp_find(&r->srv->exps, name, strlen(name));
    sbuf_add(r->out, ui_experiment_html, ui_experiment_html_len);
    r->status = e ? 200 : 404;
    r->content_type = "text/html; charset=utf-8";
    return HTTP_DONE;
}
