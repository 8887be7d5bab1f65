/* server/recommend.c - GET /v1/users/{id}/recommendations: the best items a user has not rated, from any
 * model with the `recommend` capability (models/model.h; server/ratings.h).
 *
 *   GET /v1/users/u1/recommendations?k=20&model=biasedmf&exclude_seen=true
 *   -> {"items":[{"item_id":"i9","score":1.27,"rating":4.61},...],"model":"biasedmf","version":"3",
 *       "user_id":"u1","request_id":"..."}
 *
 * Query parameters (api/ratings_req.h recs_query_parse): k (default next.k_default, in [1, next.k_max]),
 * model (else the first configured model that has `recommend`), experiment (the unit is the path's user
 * id), exclude_seen (true by default: the items the user rated in training, model_recommend_ops.seen,
 * are never recommended; false lets them in). Anything else is refused (400/422), so a typo does not pass
 * silently; an argument without a name ("?&k=1", "k=1&&model=m") is ignored.
 * The {id} segment arrives percent-decoded (libmicrohttpd decodes the path before routing: "u%201" is
 * the user "u 1"); an id holding '/' cannot be named in the path (%2F is decoded before the route is
 * matched, so the path no longer matches); an id of more than limits.max_id_len bytes is 422, a segment
 * of more than ROUTE_PARAM_MAX - 1 (1023) bytes the router's 414.
 *
 * Scoring: a type that describes its item matrix (model_recommend_ops.item_matrix and query: biased MF's
 * Q and item biases, AutoRec's decoder) is scored with the packed item matrix of core/itemscore.h built
 * once per version by recommend_prepare (the scorer `next` uses, per score.kernel / score.int8 /
 * score.bf16, but f32 up to ROUTE_RECOMMEND_F32_BYTES of matrix: ML-1M's 3,706 x 128 scores faster in
 * f32 than in int8; an approximate matrix picks candidates that are re-ranked with exact f32 scores:
 * itemscore_topk); other types with their own score of every item, then core/topk.h. Exclusions: the
 * user's rated items are masked with -inf in the score row (topk never selects -inf).
 * "score" is the ranking score (for a rating model the predicted rating up to a per-user constant);
 * "rating" is the predicted rating when the type also has `rate` (clipped to the rating scale as
 * POST /v1/ratings does by default).
 * A user the model does not know is not an error (a new user is normal): the most popular items
 * (model_type.popular) answer with "score":null and "fallback":"popular" (as /v1/next); a type without a popularity list
 * answers an empty list, also flagged.
 * In an experiment the arm's model answers, the answer adds "experiment" and "arm", and the impression
 * records the shown items before the answer goes out; HEAD (answered without a body) records nothing.
 *
 * Memory: the query's arguments sit on the stack (at most RECS_MAX_ARGS are read); the model's scratch,
 * the score row, the query, candidates and ratings in this thread's route_scratch entry of the version
 * (sized once for next.k_max); top-k buffers per thread: a request allocates nothing but its answer.
 */
#include "server/ratings.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "api/ratings_req.h"
#include "core/err.h"
#include "core/itemscore.h"
#include "core/log.h"
#include "core/topk.h"
#include "models/model.h"
#include "server/evstore.h"
#include "server/http.h"
#include "server/registry.h"
#include "server/route.h"
#include "server/server.h"

int route_recommend(http_req *r);

/* ---- metrics ---- */
static _Atomic uint64_t m_answers, m_fallback, m_matrix;

void recommend_render_metrics(sbuf *out, void *unused)
{
    (void)unused;
    sbuf_printf(out,
                "# HELP recd_recommend_answers_total Answers of GET /v1/users/{id}/recommendations.\n"
                "# TYPE recd_recommend_answers_total counter\nrecd_recommend_answers_total %llu\n"
                "# HELP recd_recommend_item_matrix_total Answers scored with the packed item matrix.\n"
                "# TYPE recd_recommend_item_matrix_total counter\nrecd_recommend_item_matrix_total %llu\n"
                "# HELP recd_recommend_fallback_total Answers with the most popular items (a user the model does "
                "not know).\n"
                "# TYPE recd_recommend_fallback_total counter\nrecd_recommend_fallback_total %llu\n",
                (unsigned long long)atomic_load(&m_answers), (unsigned long long)atomic_load(&m_matrix),
                (unsigned long long)atomic_load(&m_fallback));
}

/* ---- per-thread, per-version scratch ---- */
typedef struct rec_scr {
    const model_recommend_ops *ops;
    const model_rate_ops *rops; /* the type's `rate`, or NULL */
    void *msc;                  /* ops->scratch_new(handle) */
    void *rsc;                  /* rops->scratch_new(handle, K) */
    int K;                      /* answers of up to K items */
    float *scores;              /* (N) */
    float *q;                   /* (D) the user's query (with a packed item matrix) */
    int32_t *cand;              /* (C) candidates of an approximate matrix, C = itemscore_candidates(K) */
    float *cval;                /* (C) */
    float *rating;              /* (K) predicted ratings of the answer */
    uint8_t *fb;                /* (K) */
} rec_scr;

static void scr_destroy(void *p)
{
    rec_scr *s = p;
    if (!s) return;
    if (s->msc) s->ops->scratch_free(s->msc);
    if (s->rsc) s->rops->scratch_free(s->rsc);
    free(s->scores);
    free(s->q);
    free(s->cand);
    free(s->cval);
    free(s->rating);
    free(s->fb);
    free(s);
}

static void *scr_create(const model_version *v, int K)
{
    rec_scr *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (K < 1) K = 1;
    const route_aux *a = route_aux_get(v);
    const itemscore *isc = a ? a->rec_isc : NULL;
    size_t N = v->type->items ? idmap_size(v->type->items(v->handle)) : 0;
    size_t D = isc ? (size_t)itemscore_d(isc) : 1, C = isc ? (size_t)itemscore_candidates(isc, K) : 1;
    s->ops = v->type->recommend;
    s->rops = v->type->rate;
    s->K = K;
    s->msc = s->ops->scratch_new(v->handle);
    s->rsc = s->rops ? s->rops->scratch_new(v->handle, K) : NULL;
    s->scores = malloc((N ? N : 1) * sizeof(float));
    s->q = malloc(D * sizeof(float));
    s->cand = malloc((C ? C : 1) * sizeof(int32_t));
    s->cval = malloc((C ? C : 1) * sizeof(float));
    s->rating = malloc((size_t)K * sizeof(float));
    s->fb = malloc((size_t)K);
    if (!s->msc || (s->rops && !s->rsc) || !s->scores || !s->q || !s->cand || !s->cval || !s->rating || !s->fb) {
        scr_destroy(s);
        return NULL;
    }
    return s;
}

static const route_scratch_type rec_scr_type = {"/v1/users/{id}/recommendations", scr_create, scr_destroy};

/* The best k items of known user u (excluding its rated items when exclude), best first, into idx / val
 * (k each; val: ranking scores). Returns how many (< k when fewer items are eligible). */
static int best_items(const model_version *v, rec_scr *s, int32_t u, int k, int exclude, int32_t *idx, float *val)
{
    const model_recommend_ops *ops = s->ops;
    const route_aux *a = route_aux_get(v);
    int64_t N = (int64_t)idmap_size(v->type->items(v->handle));
    const int32_t *seen = NULL;
    int64_t n_seen = exclude ? ops->seen(v->handle, u, &seen) : 0;
    int got;
    /* the rated items are masked with -inf in the score row (core/topk.h never selects -inf): one store
     * each, cheaper than looking every would-be candidate up in the list (a MovieLens user rated 165
     * items on average, up to 2,314) */
    if (a && a->rec_isc) {
        ops->query(v->handle, u, s->q, s->msc);
        itemscore_score(a->rec_isc, s->q, (size_t)itemscore_d(a->rec_isc), 1, s->scores);
        for (int64_t j = 0; j < n_seen; j++)
            if (seen[j] >= 0 && seen[j] < N) s->scores[seen[j]] = -INFINITY;
        got = itemscore_topk(a->rec_isc, s->scores, s->q, k, NULL, idx, val, s->cand, s->cval);
        atomic_fetch_add_explicit(&m_matrix, 1, memory_order_relaxed);
    } else {
        ops->score(v->handle, u, s->scores, s->msc);
        for (int64_t j = 0; j < n_seen; j++)
            if (seen[j] >= 0 && seen[j] < N) s->scores[seen[j]] = -INFINITY;
        got = topk_select(s->scores, N, k, NULL, idx, val);
    }
    return got < 0 ? 0 : got;
}

/* ---- preparing a version ---- */
/* The packed item matrix of `recommend` in route_aux.rec_isc when the type describes one that fits and
 * gives its own scores (up to a per-user constant) on a few users; else none (logged). */
static int build_matrix(model_version *v, const server *srv)
{
    const model_recommend_ops *ops = v->type->recommend;
    model_item_matrix im;
    if (!ops->item_matrix || !ops->query || !v->type->items || ops->item_matrix(v->handle, &im) != RC_OK)
        return RC_OK;
    itemscore *isc = NULL;
    int rc = route_itemscore_new(v, srv, &im, (size_t)(im.d > 0 ? im.d : 0), ROUTE_RECOMMEND_F32_BYTES, "recommend",
                                 &isc);
    if (rc != RC_OK || !isc) return rc;
    int64_t U = (int64_t)idmap_size(v->type->users(v->handle)), N = im.n;
    void *sc = ops->scratch_new(v->handle);
    float *q = malloc((size_t)im.d * sizeof(float)), *want = malloc((size_t)(N ? N : 1) * sizeof(float)),
          *ref = malloc((size_t)(N ? N : 1) * sizeof(float));
    int ok = sc && q && want && ref ? 1 : -1;
    for (int t = 0; t < 3 && ok == 1 && U > 0; t++) { /* the first, middle and last users */
        int32_t u = (int32_t)(t == 0 ? 0 : t == 1 ? U / 2 : U - 1);
        ops->query(v->handle, u, q, sc);
        ops->score(v->handle, u, want, sc);
        ok = route_itemscore_agrees(&im, q, want, 1, ref);
    }
    if (sc) ops->scratch_free(sc);
    free(q);
    free(want);
    free(ref);
    if (ok != 1) {
        itemscore_free(isc);
        if (ok < 0) return rc_error(RC_ENOMEM, "out of memory checking the item matrix");
        log_warn("%s version %s: its `recommend` item matrix does not give the model's own scores; scoring with "
                 "the model's own score",
                 v->model, v->version_str);
        return RC_OK;
    }
    route_aux *a = route_aux_make(v);
    if (!a) {
        itemscore_free(isc);
        return RC_ENOMEM;
    }
    a->rec_isc = isc;
    return RC_OK;
}

int recommend_prepare(model_version *v, void *arg)
{
    server *srv = arg;
    const model_recommend_ops *ops = v->type->recommend;
    if (!ops) return RC_OK;
    if (!v->type->items) return rc_error(RC_ECORRUPT, "type %s has `recommend` but no item vocabulary", v->type_name);
    if (!v->type->users) return rc_error(RC_ECORRUPT, "type %s has `recommend` but no user vocabulary", v->type_name);
    int rc = build_matrix(v, srv);
    if (rc != RC_OK) return rc;
    /* a few requests through the route's path (the first users, seen items excluded) */
    int64_t U = (int64_t)idmap_size(v->type->users(v->handle)), N = (int64_t)idmap_size(v->type->items(v->handle));
    if (U == 0 || N == 0 || srv->cfg.warm_requests <= 0) return RC_OK;
    enum { WK = 20 };
    rec_scr *s = scr_create(v, WK);
    if (!s) return rc_error(RC_ENOMEM, "out of memory warming up");
    int32_t idx[WK];
    float val[WK];
    for (long long t = 0; t < srv->cfg.warm_requests && rc == RC_OK; t++) {
        int32_t u = (int32_t)(t % U);
        int got = best_items(v, s, u, WK, 1, idx, val);
        for (int i = 0; i < got; i++)
            if (!isfinite(val[i])) rc = rc_error(RC_ECORRUPT, "warm-up produced non-finite recommendation scores");
        if (s->rops && got) s->rops->predict(v->handle, u, idx, got, s->rating, s->fb, s->rsc);
    }
    scr_destroy(s);
    return rc;
}

/* ---- the query string ---- */
typedef struct args_ctx {
    api_kv kv[RECS_MAX_ARGS];
    int n;
} args_ctx;

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                   const char *value, size_t value_size)
{
    (void)kind;
    args_ctx *c = cls;
    if (!key || key_size == 0) return MHD_YES; /* "?&k=1", "k=1&&model=m": no name, ignored (not counted) */
    if (c->n >= RECS_MAX_ARGS) return MHD_NO; /* the first RECS_MAX_ARGS decide (api/ratings_req.h) */
    c->kv[c->n++] = (api_kv){.key = {key, key_size},
                             .value = {value ? value : "", value ? value_size : 0},
                             .has_value = value != NULL};
    return MHD_YES;
}

/* ---- the handler ---- */
int route_recommend(http_req *r)
{
    server *srv = r->srv;
    const api_limits *lim = &srv->limits;
    char detail[320];
    args_ctx args = {.n = 0};
    if (r->conn) MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, collect_arg, &args);
    recs_query q;
    int st = recs_query_parse(args.kv, args.n, lim, &q, detail, sizeof detail);
    if (st) return http_problem(r, st, st == 400 ? "invalid-request" : "unprocessable-request", "%s", detail);
    api_str user = {r->params[0], strlen(r->params[0])};
    if (user.n == 0 || user.n > (size_t)lim->max_id_len)
        return http_problem(r, 422, "unprocessable-request", "user id: length %zu outside [1, %d]", user.n,
                            lim->max_id_len);
    route_exp x = {NULL, -1, 0, {NULL, 0}};
    model_version *v = q.experiment.n ? route_exp_acquire(r, q.experiment.p, q.experiment.n, user, 1, q.model.n > 0,
                                                          MODEL_CAP_RECOMMEND, &x)
                                      : route_acquire(r, q.model.p, q.model.n, MODEL_CAP_RECOMMEND);
    if (!v) return HTTP_DONE;
    const idmap *items = v->type->items(v->handle);
    int64_t N = (int64_t)idmap_size(items);
    int k = q.k < N ? q.k : (int)N;
    rec_scr *s = route_scratch(&rec_scr_type, v, lim->k_max);
    int32_t *idx;
    float *val;
    api_str *shown = NULL, *rows;
    sbuf *text;
    int exposing = x.e && x.arm >= 0 && !route_is_head(r); /* HEAD shows no items: nothing recorded */
    if (!s || route_topk_buffers(k, &idx, &val) != RC_OK ||
        (exposing && route_exp_buffers(k, &shown, &rows, &text) != RC_OK)) {
        http_oom(r, "the request's buffers");
        goto done;
    }
    int64_t u = idmap_find(v->type->users(v->handle), user.p, user.n);
    int got = 0, fallback = u < 0;
    if (fallback) { /* a new user: the most popular items */
        const int32_t *pop = v->type->popular ? v->type->popular(v->handle) : NULL;
        for (int64_t i = 0; pop && i < N && got < k; i++) idx[got++] = pop[i];
        atomic_fetch_add_explicit(&m_fallback, 1, memory_order_relaxed);
    } else {
        got = best_items(v, s, (int32_t)u, k, q.exclude_seen, idx, val);
        if (s->rops && got) s->rops->predict(v->handle, (int32_t)u, idx, got, s->rating, s->fb, s->rsc);
    }
    const route_aux *a = route_aux_get(v);
    int clip = a && a->has_scale;
    sbuf *out = r->out;
    route_answer_head(r);
    int n = 0;
    for (int i = 0; i < got; i++) {
        size_t len;
        const char *id = idmap_key(items, idx[i], &len);
        if (!id) continue;
        if (n) sbuf_addc(out, ',');
        sbuf_adds(out, "{\"item_id\":");
        sbuf_json_str(out, id, len);
        if (fallback) {
            sbuf_adds(out, ",\"score\":null");
        } else {
            sbuf_adds(out, ",\"score\":");
            route_json_num(out, val[i]);
            if (s->rops) {
                float y = s->rating[i];
                if (clip) y = y < a->rmin ? a->rmin : y > a->rmax ? a->rmax : y;
                sbuf_adds(out, ",\"rating\":");
                route_json_num(out, y);
            }
        }
        sbuf_addc(out, '}');
        if (shown && n < EVSTORE_MAX_ITEMS) shown[n] = (api_str){id, len};
        n++;
    }
    route_answer_model(r, v);
    sbuf_adds(out, ",\"user_id\":");
    sbuf_json_str(out, user.p, user.n);
    if (fallback) sbuf_adds(out, ",\"fallback\":\"popular\"");
    route_exp_fields(r, &x);
    atomic_fetch_add_explicit(&m_answers, 1, memory_order_relaxed);
    if (exposing && !sbuf_failed(out))
        route_exp_expose(r, &x, v, (api_str){NULL, 0}, shown, n, (api_str){NULL, 0}, NULL, fallback);
    route_answer_end(r);
done:
    registry_release(srv->reg, v);
    return HTTP_DONE;
}
