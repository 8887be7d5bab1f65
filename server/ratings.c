/* server/ratings.c - POST /v1/ratings: the ratings a user would give items, from any model with the
 * `rate` capability (models/model.h; server/ratings.h).
 *
 *   {"user_id":"u1","item_ids":["i1","zz"],"model":"biasedmf","clip":true}
 *   -> {"ratings":[{"item_id":"i1","rating":3.91},{"item_id":"zz","rating":3,"fallback":true}],
 *       "model":"biasedmf","version":"3","user_id":"u1","request_id":"..."}
 *
 * Ratings come in request order, one per id (a repeated id is answered twice). A user or an item the
 * model has not seen is not an error: the model's default rating (meta rating.default, 3 by the
 * paper's protocol) answers, flagged "fallback":true on each item concerned (every item for an unknown
 * user).
 * Clipping: by default a prediction is clipped to the rating scale seen in training (meta rating.min and
 * rating.max, e.g. [1, 5]): a served rating outside the scale ("5.31 stars") means nothing to a client,
 * and clipping never moves a prediction away from a rating on that scale (it only lowers RMSE). "clip":
 * false answers the model's raw prediction (what the paper's protocol scores). A snapshot without the
 * meta rating scale is served unclipped (logged once, at load).
 * In an experiment ("experiment":"E"; the unit is user_id): the arm's model answers (route_exp_acquire),
 * the answer adds "experiment" and "arm", and the impression records the rated items in request order
 * (the first EVSTORE_MAX_ITEMS) before the answer is sent. Item ids are then at most EVSTORE_MAX_ID bytes.
 *
 * Users are looked up in the type's user vocabulary (model_type.users), items in its item vocabulary
 * (model_type.items). A type with `rate` must have `users`: rate_prepare refuses the version otherwise.
 *
 * Errors (problem+json): 400/422 from the parser (api/ratings_req.h lists them; 422 for more than
 * next.max_items ids), 413 a body over http.max_body_bytes, 415 not JSON, route_acquire's 404 unknown
 * model / 503 not loaded / 422 a model without `rate`, route_exp_acquire's for experiments.
 *
 * Memory: the parser's buffers live in the connection's handler slot; the model's scratch and the
 * index, rating and flag rows (sized for next.max_items ids) in this thread's route_scratch entry of the
 * version: a request allocates nothing but its answer.
 */
#include "server/ratings.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "api/ratings_req.h"
#include "core/err.h"
#include "core/log.h"
#include "models/model.h"
#include "server/evstore.h"
#include "server/http.h"
#include "server/registry.h"
#include "server/route.h"
#include "server/server.h"

int route_ratings(http_req *r);

/* ---- metrics ---- */
static _Atomic uint64_t m_predicted, m_fallback, m_clipped;

void ratings_render_metrics(sbuf *out, void *unused)
{
    (void)unused;
    sbuf_printf(out,
                "# HELP recd_ratings_predicted_total Ratings answered by POST /v1/ratings.\n"
                "# TYPE recd_ratings_predicted_total counter\nrecd_ratings_predicted_total %llu\n"
                "# HELP recd_ratings_fallback_total Ratings answered with the model's default (unknown user or "
                "item).\n"
                "# TYPE recd_ratings_fallback_total counter\nrecd_ratings_fallback_total %llu\n"
                "# HELP recd_ratings_clipped_total Predictions moved into the model's rating scale.\n"
                "# TYPE recd_ratings_clipped_total counter\nrecd_ratings_clipped_total %llu\n",
                (unsigned long long)atomic_load(&m_predicted), (unsigned long long)atomic_load(&m_fallback),
                (unsigned long long)atomic_load(&m_clipped));
}

/* ---- per-connection slot: the parser's buffers ---- */
static void job_free(void *p)
{
    api_scratch_release(p);
    free(p);
}

static void *job_new(void)
{
    return calloc(1, sizeof(api_scratch));
}

static void job_trim(void *p)
{
    api_scratch_trim(p, HTTP_KEEP_BYTES);
}

static const http_slot_type ratings_slot = {"/v1/ratings", job_new, job_free, job_trim};

/* ---- per-thread, per-version scratch ---- */
typedef struct rate_scr {
    const model_rate_ops *ops;
    void *msc;    /* ops->scratch_new(handle, size) */
    int size;     /* B, items per call at most */
    int32_t *idx; /* (B) item indices, -1 unknown */
    float *out;   /* (B) predictions */
    uint8_t *fb;  /* (B) fallback flags */
} rate_scr;

static void scr_destroy(void *p)
{
    rate_scr *s = p;
    if (!s) return;
    if (s->msc) s->ops->scratch_free(s->msc);
    free(s->idx);
    free(s->out);
    free(s->fb);
    free(s);
}

static void *scr_create(const model_version *v, int size)
{
    rate_scr *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (size < 1) size = 1;
    s->ops = v->type->rate;
    s->size = size;
    s->msc = s->ops->scratch_new(v->handle, size);
    s->idx = malloc((size_t)size * sizeof *s->idx);
    s->out = malloc((size_t)size * sizeof *s->out);
    s->fb = malloc((size_t)size);
    if (!s->msc || !s->idx || !s->out || !s->fb) {
        scr_destroy(s);
        return NULL;
    }
    return s;
}

static const route_scratch_type rate_scr_type = {"/v1/ratings", scr_create, scr_destroy};

/* ---- preparing a version ---- */
/* meta "rating": {"default":3,"min":1,"max":5,...} into a (RC_OK; *found 0 when absent or not numbers). */
static void read_scale(const model_version *v, float *dflt, float *rmin, float *rmax, int *found)
{
    const json_t *rt = json_object_get(snap_meta(v->snap), "rating");
    const json_t *d = json_object_get(rt, "default"), *lo = json_object_get(rt, "min"), *hi = json_object_get(rt, "max");
    *found = json_is_number(d) && json_is_number(lo) && json_is_number(hi) && json_number_value(lo) <= json_number_value(hi);
    if (!*found) return;
    *dflt = (float)json_number_value(d);
    *rmin = (float)json_number_value(lo);
    *rmax = (float)json_number_value(hi);
}

int rate_prepare(model_version *v, void *arg)
{
    server *srv = arg;
    const model_rate_ops *ops = v->type->rate;
    if (!ops) return RC_OK;
    if (!v->type->users) return rc_error(RC_ECORRUPT, "type %s has `rate` but no user vocabulary", v->type_name);
    float dflt = 0, rmin = 0, rmax = 0;
    int found = 0;
    read_scale(v, &dflt, &rmin, &rmax, &found);
    if (found) {
        route_aux *a = route_aux_make(v);
        if (!a) return RC_ENOMEM;
        a->has_scale = 1;
        a->default_rating = dflt;
        a->rmin = rmin;
        a->rmax = rmax;
    } else {
        log_warn("%s version %s: no rating scale in the meta (\"rating\":{\"min\",\"max\",\"default\"}): ratings "
                 "are served unclipped",
                 v->model, v->version_str);
    }
    /* a few predictions: the first users (or an unknown one) on the most popular items */
    enum { WB = 16 };
    const idmap *items = v->type->items ? v->type->items(v->handle) : NULL;
    const idmap *users = v->type->users ? v->type->users(v->handle) : NULL;
    int64_t N = items ? (int64_t)idmap_size(items) : 0, U = users ? (int64_t)idmap_size(users) : 0;
    const int32_t *pop = v->type->popular ? v->type->popular(v->handle) : NULL;
    int32_t idx[WB];
    float out[WB];
    uint8_t fb[WB];
    int B = N < WB ? (int)N : WB;
    for (int i = 0; i < B; i++) idx[i] = pop ? pop[i] : i;
    if (B == 0) { /* no item: an unknown one still exercises the path */
        idx[0] = -1;
        B = 1;
    }
    void *sc = ops->scratch_new(v->handle, WB);
    if (!sc) return rc_error(RC_ENOMEM, "out of memory warming up");
    int rc = RC_OK;
    for (long long t = 0; t < srv->cfg.warm_requests && rc == RC_OK; t++) {
        int32_t u = U ? (int32_t)(t % U) : -1;
        ops->predict(v->handle, u, idx, B, out, fb, sc);
        for (int i = 0; i < B; i++)
            if (!isfinite(out[i])) rc = rc_error(RC_ECORRUPT, "warm-up produced a non-finite rating");
    }
    ops->scratch_free(sc);
    return rc;
}

/* ---- the handler ---- */
static int problem(http_req *r, int st, const char *detail)
{
    if (st == 503) return http_oom(r, "the request's buffers");
    return http_problem(r, st, st == 400 ? "invalid-request" : "unprocessable-request", "%s", detail);
}

int route_ratings(http_req *r)
{
    server *srv = r->srv;
    const api_limits *lim = &srv->limits;
    char detail[320];
    api_scratch *scr = http_slot(r, &ratings_slot);
    if (!scr) return http_oom(r, "the request's state");
    ratings_req req;
    int st = ratings_req_parse(r->body, r->body_len, lim, scr, &req, detail, sizeof detail);
    if (st) return problem(r, st, detail);
    route_exp x = {NULL, -1, 0, {NULL, 0}};
    model_version *v;
    if (req.has_experiment) {
        v = route_exp_acquire(r, req.experiment.p, req.experiment.n, req.user_id, 1, req.has_model, MODEL_CAP_RATE,
                              &x);
    } else {
        v = route_acquire(r, req.model.p, req.model.n, MODEL_CAP_RATE);
    }
    if (!v) return HTTP_DONE;
    int exposing = x.e && x.arm >= 0;
    if (exposing) /* the impression keys its items by id: the event store's bound applies */
        for (size_t i = 0; i < req.n_items; i++)
            if (req.items[i].n > EVSTORE_MAX_ID) {
                http_problem(r, 422, "unprocessable-request",
                             "item_ids[%zu]: %zu bytes; in an experiment ids are at most %d bytes (the event store's "
                             "bound)",
                             i, req.items[i].n, EVSTORE_MAX_ID);
                goto done;
            }
    int n = (int)req.n_items; /* <= lim->max_items */
    rate_scr *s = route_scratch(&rate_scr_type, v, lim->max_items);
    if (!s) {
        http_oom(r, "the request's buffers");
        goto done;
    }
    const idmap *items = v->type->items ? v->type->items(v->handle) : NULL;
    const idmap *users = v->type->users ? v->type->users(v->handle) : NULL;
    int32_t u = users ? (int32_t)idmap_find(users, req.user_id.p, req.user_id.n) : -1;
    for (int i = 0; i < n; i++) s->idx[i] = items ? (int32_t)idmap_find(items, req.items[i].p, req.items[i].n) : -1;
    s->ops->predict(v->handle, u < 0 ? -1 : u, s->idx, n, s->out, s->fb, s->msc);
    const route_aux *a = route_aux_get(v);
    int clip = req.clip && a && a->has_scale;
    uint64_t n_fb = 0, n_clip = 0;
    sbuf *out = r->out;
    sbuf_reset(out);
    sbuf_adds(out, "{\"ratings\":[");
    for (int i = 0; i < n; i++) {
        float y = s->out[i];
        if (clip && (y < a->rmin || y > a->rmax)) {
            y = y < a->rmin ? a->rmin : a->rmax;
            n_clip++;
        }
        if (i) sbuf_addc(out, ',');
        sbuf_adds(out, "{\"item_id\":");
        sbuf_json_str(out, req.items[i].p, req.items[i].n);
        sbuf_adds(out, ",\"rating\":");
        route_json_num(out, y);
        if (s->fb[i]) {
            sbuf_adds(out, ",\"fallback\":true");
            n_fb++;
        }
        sbuf_addc(out, '}');
    }
    route_answer_model(r, v); /* closes the list */
    sbuf_adds(out, ",\"user_id\":");
    sbuf_json_str(out, req.user_id.p, req.user_id.n);
    route_exp_fields(r, &x);
    atomic_fetch_add_explicit(&m_predicted, (uint64_t)n, memory_order_relaxed);
    if (n_fb) atomic_fetch_add_explicit(&m_fallback, n_fb, memory_order_relaxed);
    if (n_clip) atomic_fetch_add_explicit(&m_clipped, n_clip, memory_order_relaxed);
    /* recorded before the answer goes out (an event posted after it must find it): the rated items */
    if (exposing && !sbuf_failed(out))
        route_exp_expose(r, &x, v, (api_str){NULL, 0}, req.items, n, (api_str){NULL, 0}, NULL, u < 0);
    route_answer_end(r);
done:
    registry_release(srv->reg, v);
    return HTTP_DONE;
}
