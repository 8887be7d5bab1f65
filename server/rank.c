/* server/rank.c - POST /v1/rank: rank a request's candidates with a model that has `rank` (DESIGN.md
 * section 5).
 *
 *   {"user_id":"u1", "context":{"age":37,"workclass":"Private",...},
 *    "candidates":[{"item_id":"a","features":{"occupation":"Sales",...}}, ...], "k":10,
 *    "model":"widedeep", "experiment":"homepage"}
 *   -> {"items":[{"item_id":"a","score":1.23,"probability":0.77},...], "model":"widedeep",
 *       "version":"3", "user_id":"u1", "request_id":"..."}
 *
 * The route is: parse the body (api/rank_req.h: syntax, top-level fields), pick the version
 * (route_acquire: the named model, else the first configured one that has `rank`), decode the features
 * with that model's inputs, score every candidate in one call of the model's rank operation
 * (models/model.h: one batched forward pass for Wide & Deep), keep the best k by score (ties: earlier
 * candidate first) and answer. A candidate's feature overrides the context's; a feature neither gives
 * takes the model's default; names the model does not use are ignored.
 *
 * Errors (problem+json): 400/422 from the parser (api/rank_req.h lists them), 422 when the model cannot
 * score a candidate ("candidates[3]: ..."), and route_acquire's 404 unknown model / 503 not loaded /
 * 422 a model without `rank`.
 *
 * Memory: the parser's buffers live in the connection's handler slot (grown once, reused by every
 * request of the connection, trimmed after a large one); the model scratch and the decoder's tables of
 * the version in this thread's route scratch (route_scratch, sized for limits.max_items candidates);
 * top-k buffers per thread (route_topk_buffers): a request allocates nothing but its answer. No lock is
 * taken here (route_acquire holds the registry mutex for one pointer read).
 * Measured (bench/rank_bench.c in process, bench/rank_adult.sh over HTTP): 100 candidates of the Adult
 * model, median ~90 us of handler time on a loaded 2-core machine; sgemm is ~30% of it, the JSON reader
 * ~30%.
 */
#include <stdlib.h>
#include <string.h>

#include "api/rank_req.h"
#include "core/err.h"
#include "core/topk.h"
#include "models/model.h"
#include "server/http.h"
#include "server/registry.h"
#include "server/route.h"
#include "server/server.h"

int route_rank(http_req *r);

/* ---- per-connection slot: the parser's buffers ---- */
static void job_free(void *p)
{
    rank_scratch_release(p);
    free(p);
}

static void *job_new(void)
{
    return calloc(1, sizeof(rank_scratch));
}

/* After a request: what a large request grew goes (each buffer over HTTP_KEEP_BYTES, the ids over a
 * quarter of it), so an idle keep-alive connection does not pin it. */
static void job_trim(void *p)
{
    rank_scratch_trim(p, HTTP_KEEP_BYTES);
}

static const http_slot_type rank_slot = {"/v1/rank", job_new, job_free, job_trim};

/* ---- per-thread, per-version scratch: the model's scratch and the decoder's tables ---- */
typedef struct rank_vscr {
    const model_rank_ops *ops;
    void *msc; /* ops->scratch_new(handle, size) */
    rank_inputs in;
} rank_vscr;

static void vscr_destroy(void *p)
{
    rank_vscr *s = p;
    if (!s) return;
    if (s->msc) s->ops->scratch_free(s->msc);
    rank_inputs_release(&s->in);
    free(s);
}

static void *vscr_create(const model_version *v, int size)
{
    rank_vscr *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ops = v->type->rank;
    s->msc = s->ops->scratch_new(v->handle, size);
    if (!s->msc || rank_inputs_init(&s->in, s->ops->spec(v->handle)) != RC_OK) {
        vscr_destroy(s);
        return NULL;
    }
    return s;
}

static const route_scratch_type rank_vscr_type = {"/v1/rank", vscr_create, vscr_destroy};

/* ---- the handler ---- */
static int problem(http_req *r, int st, const char *detail)
{
    if (st == 503) return http_oom(r, "the request's buffers");
    return http_problem(r, st, st == 400 ? "invalid-request" : "unprocessable-request", "%s", detail);
}

int route_rank(http_req *r)
{
    server *srv = r->srv;
    const api_limits *lim = &srv->limits;
    char detail[320];
    rank_scratch *scr = http_slot(r, &rank_slot);
    if (!scr) return http_oom(r, "the request's state");
    rank_req req;
    int st = rank_req_parse(r->body, r->body_len, lim, scr, &req, detail, sizeof detail);
    if (st) return problem(r, st, detail);
    if (req.has_model && req.model.n == 0) /* "model":"" names no model (n == 0 would mean the default) */
        return http_problem(r, 404, "unknown-model", "no model '' is configured");
    model_version *v = route_acquire(r, req.model.p, req.model.n, MODEL_CAP_RANK);
    if (!v) return HTTP_DONE;
    const model_rank_ops *ops = v->type->rank;
    rank_vscr *vs = route_scratch(&rank_vscr_type, v, lim->max_items);
    int32_t *idx;
    float *val;
    if (!vs || route_topk_buffers(req.k, &idx, &val) != RC_OK) {
        http_oom(r, "the request's buffers");
        goto done;
    }
    if ((st = rank_req_decode(&req, &vs->in, lim, scr, detail, sizeof detail))) {
        problem(r, st, detail);
        goto done;
    }
    const float *logit, *prob;
    int bad = -1, n = (int)req.n_cand;
    if (ops->score(v->handle, vs->msc, req.ctx, req.cand, n, &logit, &prob, &bad) != RC_OK) {
        http_problem(r, 422, "unprocessable-request", "candidates[%d]: %s", bad, rc_errmsg());
        goto done;
    }
    int got = topk_select(logit, (int64_t)n, req.k, NULL, idx, val);
    route_answer_head(r);
    sbuf *out = r->out;
    for (int i = 0; i < got; i++) { /* route_answer_item's shape plus "probability" */
        int c = idx[i];
        if (i) sbuf_addc(out, ',');
        sbuf_adds(out, "{\"item_id\":");
        sbuf_json_str(out, req.ids[c].p, req.ids[c].n);
        sbuf_adds(out, ",\"score\":");
        sbuf_json_float(out, logit[c]);
        sbuf_adds(out, ",\"probability\":");
        sbuf_json_float(out, prob[c]);
        sbuf_addc(out, '}');
    }
    route_answer_model(r, v);
    if (req.has_user_id) {
        sbuf_adds(out, ",\"user_id\":");
        sbuf_json_str(out, req.user_id.p, req.user_id.n);
    }
    route_answer_end(r);
done:
    registry_release(srv->reg, v);
    return HTTP_DONE;
}
