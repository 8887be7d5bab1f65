/* server/experiments.c - GET /v1/experiments and GET /v1/experiments/{name}: the experiments of the
 * config and their report (DESIGN.md section 6), computed at each request from the event store's
 * committed sums (server/evstore.h evstore_report / evstore_history) with core/abstats.h.
 *
 * The list: {"experiments":[{"name","status","control","arms":[{"name","model","version","share"}],
 *   "start","stop","units","impressions","acquisitions"}],"request_id"}.
 * The report of one (404 "unknown-experiment"): see README "The report" and api/openapi.yaml; in short
 * per arm the counts, rates with standard errors (per unit; per impression by the delta method), the lift
 * of the per-impression and per-unit acquisition rates against the control (fixed-horizon interval, z,
 * p, always-valid sequential interval; null for the control), guardrails; then the SRM check, units
 * seen in several arms, and the cumulative per-impression acquisition rate per arm over time with its
 * interval (at most REPORT_HISTORY_POINTS points). A number that cannot be computed (too few units, no
 * impression, zero variance) is null, never NaN.
 * The salt is in the report: with it anyone can compute every unit's arm (the assignment hash is
 * documented so that client SDKs can reproduce it); it is not a secret, and the README says so.
 * The report route allocates: the history is read into a buffer of the request (a few MB at most:
 * REPORT_HISTORY_READ points per arm), freed before answering. It is not a hot path.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/abstats.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/idmap.h"
#include "server/evstore.h"
#include "server/experiment.h"
#include "server/http.h"
#include "server/registry.h"
#include "server/server.h"

int route_experiments(http_req *r);
int route_experiment(http_req *r);

#define REPORT_HISTORY_POINTS 500   /* points of the answer's history (downsampled evenly) */
#define REPORT_HISTORY_READ 50000   /* newest history points read per arm (50,000 x 60 s: 35 days) */

/* ---- JSON helpers ---- */
static void jnum(sbuf *o, double v)
{
    if (!isfinite(v)) sbuf_adds(o, "null");
    else if (v == 0) sbuf_adds(o, "0"); /* no "-0" */
    else sbuf_printf(o, "%.15g", v);
}

static void jkey(sbuf *o, const char *k)
{
    sbuf_addc(o, '"');
    sbuf_adds(o, k);
    sbuf_adds(o, "\":");
}

static void jstr(sbuf *o, const char *s)
{
    sbuf_json_str(o, s, strlen(s));
}

/* unix seconds as RFC 3339 UTC, or null for 0 (open) */
static void jtime(sbuf *o, double t)
{
    if (t == 0 || !isfinite(t)) {
        sbuf_adds(o, "null");
        return;
    }
    time_t tt = (time_t)floor(t);
    struct tm tm;
    char buf[40];
    if (!gmtime_r(&tt, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
        jnum(o, t);
        return;
    }
    sbuf_printf(o, "\"%s\"", buf);
}

static void jest(sbuf *o, ab_est e)
{
    sbuf_adds(o, "{\"value\":");
    jnum(o, e.est);
    sbuf_adds(o, ",\"se\":");
    jnum(o, e.var >= 0 ? sqrt(e.var) : NAN);
    sbuf_addc(o, '}');
}

static void jpair(sbuf *o, double lo, double hi)
{
    sbuf_addc(o, '[');
    jnum(o, lo);
    sbuf_addc(o, ',');
    jnum(o, hi);
    sbuf_addc(o, ']');
}

/* {"absolute":{"value","ci"},"relative":{..},"z","p","significant","sequential":{..}} */
static void jcmp(sbuf *o, const ab_cmp *c)
{
    sbuf_adds(o, "{\"absolute\":{\"value\":");
    jnum(o, c->diff);
    sbuf_adds(o, ",\"ci\":");
    jpair(o, c->diff_lo, c->diff_hi);
    sbuf_adds(o, "},\"relative\":{\"value\":");
    jnum(o, c->rel);
    sbuf_adds(o, ",\"ci\":");
    jpair(o, c->rel_lo, c->rel_hi);
    sbuf_adds(o, "},\"z\":");
    jnum(o, c->z);
    sbuf_adds(o, ",\"p\":");
    jnum(o, c->p);
    sbuf_printf(o, ",\"significant\":%s,\"sequential\":{\"absolute\":", c->significant ? "true" : "false");
    jpair(o, c->seq_lo, c->seq_hi);
    sbuf_adds(o, ",\"relative\":");
    jpair(o, c->seq_rel_lo, c->seq_rel_hi);
    sbuf_printf(o, ",\"significant\":%s}}", c->seq_significant ? "true" : "false");
}

static void request_id_end(http_req *r)
{
    sbuf_adds(r->out, ",\"request_id\":");
    jstr(r->out, r->request_id);
    sbuf_adds(r->out, "}\n");
}

/* The version serving an arm now ("" when not loaded); *catalogue: the size of its item vocabulary when
 * its type has one, else 0. */
static void arm_version(server *srv, const exp_arm *a, char *ver, size_t cap, double *catalogue)
{
    ver[0] = '\0';
    if (catalogue) *catalogue = 0;
    model_version *v = srv->reg ? registry_acquire(srv->reg, a->entry, NULL) : NULL;
    if (!v) {
        snprintf(ver, cap, "%s", a->version);
        return;
    }
    snprintf(ver, cap, "%s", v->version_str);
    if (catalogue && v->type->items) {
        const idmap *m = v->type->items(v->handle);
        if (m) *catalogue = (double)idmap_size(m);
    }
    registry_release(srv->reg, v);
}

static void arm_head(server *srv, sbuf *o, const exp_arm *a, double *catalogue)
{
    char ver[32];
    arm_version(srv, a, ver, sizeof ver, catalogue);
    sbuf_adds(o, "{\"name\":");
    jstr(o, a->name);
    sbuf_adds(o, ",\"model\":");
    jstr(o, a->model);
    sbuf_adds(o, ",\"version\":");
    if (ver[0]) jstr(o, ver);
    else sbuf_adds(o, "null");
    sbuf_printf(o, ",\"pinned\":%s,\"share\":", a->version[0] ? "true" : "false");
    jnum(o, a->share);
}

/* ---- GET /v1/experiments ---- */
int route_experiments(http_req *r)
{
    server *srv = r->srv;
    sbuf *o = r->out;
    double now = clock_wall_s();
    sbuf_adds(o, "{\"experiments\":[");
    for (int i = 0; i < srv->exps.n; i++) {
        const experiment *e = &srv->exps.e[i];
        ev_arm_report rep[EVSTORE_MAX_ARMS];
        int have = srv->events && evstore_report(srv->events, e->run, rep, e->n_arms, NULL) == RC_OK;
        double units = 0, imp = 0, acq = 0;
        for (int a = 0; have && a < e->n_arms; a++) {
            units += rep[a].s.units;
            imp += rep[a].s.n;
            acq += rep[a].s.a;
        }
        if (i) sbuf_addc(o, ',');
        sbuf_adds(o, "{\"name\":");
        jstr(o, e->name);
        sbuf_adds(o, ",\"status\":");
        jstr(o, exp_status(e, now));
        sbuf_adds(o, ",\"control\":");
        jstr(o, e->arms[e->control].name);
        sbuf_adds(o, ",\"arms\":[");
        for (int a = 0; a < e->n_arms; a++) {
            if (a) sbuf_addc(o, ',');
            arm_head(srv, o, &e->arms[a], NULL);
            sbuf_addc(o, '}');
        }
        sbuf_adds(o, "],\"start\":");
        jtime(o, e->start);
        sbuf_adds(o, ",\"stop\":");
        jtime(o, e->stop);
        sbuf_adds(o, ",\"units\":");
        if (have) jnum(o, units);
        else sbuf_adds(o, "null");
        sbuf_adds(o, ",\"impressions\":");
        if (have) jnum(o, imp);
        else sbuf_adds(o, "null");
        sbuf_adds(o, ",\"acquisitions\":");
        if (have) jnum(o, acq);
        else sbuf_adds(o, "null");
        sbuf_addc(o, '}');
    }
    sbuf_addc(o, ']');
    request_id_end(r);
    return http_json(r, 200);
}

/* ---- GET /v1/experiments/{name} ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* "history":{"t":[..],"arms":{"NAME":{"rate":[..],"lo":[..],"hi":[..]}}}: the union of the arms' point
 * times, downsampled evenly to at most REPORT_HISTORY_POINTS (the newest always kept); an arm's value
 * at a time is its latest point at or before it (null before its first). RC_OK or RC_ENOMEM. */
static int write_history(server *srv, const experiment *e, sbuf *o)
{
    size_t cap = REPORT_HISTORY_READ;
    ev_point *pts = malloc(cap * sizeof *pts);
    double *ts = malloc((size_t)e->n_arms * cap * sizeof *ts);
    int rc = RC_OK;
    if (!pts || !ts) {
        rc = RC_ENOMEM;
        goto done;
    }
    size_t nt = 0;
    for (int a = 0; a < e->n_arms; a++) {
        int n = evstore_history(srv->events, e->run, a, pts, (int)cap);
        for (int i = 0; i < n; i++) ts[nt++] = pts[i].t;
    }
    qsort(ts, nt, sizeof *ts, cmp_double);
    size_t u = 0;
    for (size_t i = 0; i < nt; i++)
        if (u == 0 || ts[i] != ts[u - 1]) ts[u++] = ts[i];
    /* downsample: REPORT_HISTORY_POINTS evenly spaced indices, first and last included */
    size_t m = u;
    if (u > REPORT_HISTORY_POINTS) {
        m = REPORT_HISTORY_POINTS;
        for (size_t i = 0; i < m; i++) ts[i] = ts[(size_t)((double)i * (double)(u - 1) / (double)(m - 1) + 0.5)];
    }
    double z = ab_norm_quantile(1 - (e->alpha > 0 && e->alpha < 1 ? e->alpha : 0.05) / 2);
    sbuf_adds(o, "{\"t\":[");
    for (size_t i = 0; i < m; i++) {
        if (i) sbuf_addc(o, ',');
        jnum(o, ts[i]);
    }
    sbuf_adds(o, "],\"arms\":{");
    for (int a = 0; a < e->n_arms; a++) {
        int n = evstore_history(srv->events, e->run, a, pts, (int)cap);
        if (n < 0) n = 0;
        if (a) sbuf_addc(o, ',');
        jstr(o, e->arms[a].name);
        static const char *const series[] = {"rate", "lo", "hi"};
        sbuf_addc(o, ':');
        for (int s = 0; s < 3; s++) {
            sbuf_adds(o, s ? "],\"" : "{\"");
            sbuf_adds(o, series[s]);
            sbuf_adds(o, "\":[");
            int k = -1; /* latest point at or before ts[i] */
            for (size_t i = 0; i < m; i++) {
                while (k + 1 < n && pts[k + 1].t <= ts[i]) k++;
                if (i) sbuf_addc(o, ',');
                if (k < 0) {
                    sbuf_adds(o, "null");
                    continue;
                }
                const ab_sums *q = &pts[k].s;
                ab_est est = ab_ratio(q->units, q->a, q->aa, q->n, q->nn, q->an);
                double se = est.var >= 0 ? sqrt(est.var) : NAN;
                jnum(o, s == 0 ? est.est : s == 1 ? est.est - z * se : est.est + z * se);
            }
        }
        sbuf_adds(o, "]}");
    }
    sbuf_adds(o, "}}");
done:
    free(pts);
    free(ts);
    return rc;
}

int route_experiment(http_req *r)
{
    server *srv = r->srv;
    const char *name = r->params[0];
    const experiment *e = exp_find(&srv->exps, name, strlen(name));
    if (!e) return http_problem(r, 404, "unknown-experiment", "no experiment '%.64s' is configured", name);
    if (!srv->events)
        return http_problem(r, 404, "events-off", "this server keeps no events: set state.dir (a state folder)");
    ev_arm_report rep[EVSTORE_MAX_ARMS];
    uint64_t multi = 0;
    if (evstore_report(srv->events, e->run, rep, e->n_arms, &multi) != RC_OK)
        return http_problem(r, 503, "events-unavailable", "the report cannot be read: %s", rc_errmsg());
    int n = e->n_arms, c = e->control;
    double alpha = e->alpha > 0 && e->alpha < 1 ? e->alpha : 0.05;
    ab_est rate_imp[EVSTORE_MAX_ARMS], rate_unit[EVSTORE_MAX_ARMS];
    double max_distinct = 0;
    for (int a = 0; a < n; a++) {
        const ab_sums *s = &rep[a].s;
        rate_imp[a] = ab_ratio(s->units, s->a, s->aa, s->n, s->nn, s->an);
        rate_unit[a] = ab_per_unit(s->units, s->a, s->aa);
        if ((double)rep[a].distinct_items > max_distinct) max_distinct = (double)rep[a].distinct_items;
    }
    sbuf *o = r->out;
    double now = clock_wall_s();
    sbuf_adds(o, "{\"name\":");
    jstr(o, e->name);
    sbuf_adds(o, ",\"salt\":");
    jstr(o, e->salt);
    sbuf_adds(o, ",\"unit\":");
    jstr(o, e->unit);
    sbuf_adds(o, ",\"status\":");
    jstr(o, exp_status(e, now));
    sbuf_adds(o, ",\"start\":");
    jtime(o, e->start);
    sbuf_adds(o, ",\"stop\":");
    jtime(o, e->stop);
    sbuf_adds(o, ",\"alpha\":");
    jnum(o, alpha);
    sbuf_adds(o, ",\"tau\":");
    jnum(o, e->tau);
    sbuf_adds(o, ",\"control\":");
    jstr(o, e->arms[c].name);
    sbuf_adds(o, ",\"arms\":[");
    for (int a = 0; a < n; a++) {
        const ev_arm_report *ar = &rep[a];
        const ab_sums *s = &ar->s;
        double catalogue = 0;
        if (a) sbuf_addc(o, ',');
        arm_head(srv, o, &e->arms[a], &catalogue);
        static const char *const counts[] = {"units", "impressions", "clicks", "acquisitions", "converted_units",
                                             "value"};
        const double vals[] = {s->units, s->n, s->c, s->a, s->conv, s->v};
        for (int k = 0; k < 6; k++) {
            sbuf_addc(o, ',');
            jkey(o, counts[k]);
            jnum(o, vals[k]);
        }
        sbuf_printf(o, ",\"impression_events\":%llu", (unsigned long long)ar->impression_events);
        sbuf_adds(o, ",\"rate_per_unit\":");
        jest(o, rate_unit[a]);
        sbuf_adds(o, ",\"rate_per_impression\":");
        jest(o, rate_imp[a]);
        sbuf_adds(o, ",\"ctr\":");
        jest(o, ab_ratio(s->units, s->c, s->cc, s->n, s->nn, s->cn));
        sbuf_adds(o, ",\"conversion\":");
        jest(o, ab_per_unit(s->units, s->conv, s->conv));
        sbuf_adds(o, ",\"lift\":");
        if (a == c) {
            sbuf_adds(o, "null,\"lift_per_unit\":null");
        } else {
            ab_cmp cmp;
            ab_compare(rate_imp[a], rate_imp[c], alpha, e->tau * rate_imp[c].est, &cmp);
            jcmp(o, &cmp);
            sbuf_adds(o, ",\"lift_per_unit\":");
            ab_compare(rate_unit[a], rate_unit[c], alpha, e->tau * rate_unit[c].est, &cmp);
            jcmp(o, &cmp);
        }
        sbuf_adds(o, ",\"guardrails\":{\"p99_latency_ms\":");
        jnum(o, ev_lat_quantile(ar->lat_hist, 0.99) / 1000);
        sbuf_adds(o, ",\"p50_latency_ms\":");
        jnum(o, ev_lat_quantile(ar->lat_hist, 0.50) / 1000);
        sbuf_printf(o, ",\"fallbacks\":%llu,\"fallback_rate\":", (unsigned long long)ar->fallbacks);
        jnum(o, s->n > 0 ? (double)ar->fallbacks / s->n : NAN);
        sbuf_printf(o, ",\"distinct_items_shown\":%llu,\"coverage\":", (unsigned long long)ar->distinct_items);
        double denom = catalogue > 0 ? catalogue : max_distinct;
        jnum(o, denom > 0 ? (double)ar->distinct_items / denom : NAN);
        sbuf_printf(o, ",\"coverage_of\":\"%s\"}}", catalogue > 0 ? "catalogue" : "most-diverse-arm");
    }
    double observed[EVSTORE_MAX_ARMS], shares[EVSTORE_MAX_ARMS], chi2 = NAN;
    for (int a = 0; a < n; a++) {
        observed[a] = rep[a].s.units;
        shares[a] = (double)(e->arms[a].hi - e->arms[a].lo); /* the buckets the arm really takes */
    }
    double p = ab_srm(observed, shares, n, &chi2);
    sbuf_adds(o, "],\"srm\":{\"chi2\":");
    jnum(o, chi2);
    sbuf_adds(o, ",\"p\":");
    jnum(o, p);
    sbuf_printf(o, ",\"mismatch\":%s},\"multi_arm_units\":%llu,\"history\":", isfinite(p) && p < 0.001 ? "true" : "false",
                (unsigned long long)multi);
    if (write_history(srv, e, o) != RC_OK) return http_oom(r, "the report's history");
    request_id_end(r);
    return http_json(r, 200);
}
