/* server/rank.c - POST /v1/rank: rank a request's candidates with a model that has `rank` (DESIGN.md
 * section 5).
 *
 *   {"user_id":"u1", "context":{"age":37,"workclass":"Private",...},
 *    "candidates":[{"item_id":"a","features":{"occupation":"Sales",...}}, ...], "k":10,
 *    "model":"widedeep"}
 *   -> {"items":[{"item_id":"a","score":1.23,"probability":0.77},...], "model":"widedeep",
 *       "version":"3", "user_id":"u1", "request_id":"..."}
 * In an experiment ("experiment":"homepage" with "user_id", no "model"): the model of the user's arm
 * answers (route_exp_acquire), the answer adds "experiment" and "arm", and the impression is recorded
 * before the answer goes out: the shown items and, for the Wide & Deep export, the model's input columns,
 * the context's values once and per shown item the candidate's own values (compact rows: the export
 * merges them into one full row per item; over EVSTORE_ROWS_MAX bytes the impression goes without rows,
 * counted in recd_events_rows_skipped_total).
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
#include <math.h>
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
    sbuf header; /* the impression rows' CSV header: the spec's inputs without its label */
} rank_vscr;

static void vscr_destroy(void *p)
{
    rank_vscr *s = p;
    if (!s) return;
    if (s->msc) s->ops->scratch_free(s->msc);
    rank_inputs_release(&s->in);
    sbuf_release(&s->header);
    free(s);
}

/* s as one CSV field: quoted (quotes doubled) when it holds a comma, a quote, CR or LF, or starts or
 * ends with a space. */
static void csv_field(sbuf *out, const char *s, size_t n)
{
    int quote = n && (s[0] == ' ' || s[n - 1] == ' ');
    for (size_t i = 0; i < n && !quote; i++) quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        sbuf_add(out, s, n);
        return;
    }
    sbuf_addc(out, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') sbuf_addc(out, '"');
        sbuf_addc(out, s[i]);
    }
    sbuf_addc(out, '"');
}

static void *vscr_create(const model_version *v, int size)
{
    rank_vscr *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    sbuf_init(&s->header);
    s->ops = v->type->rank;
    s->msc = s->ops->scratch_new(v->handle, size);
    const feat_spec *sp = s->ops->spec(v->handle);
    if (!s->msc || rank_inputs_init(&s->in, sp) != RC_OK) {
        vscr_destroy(s);
        return NULL;
    }
    for (int i = 0, first = 1; i < sp->ninputs; i++) {
        if (i == sp->label) continue;
        if (!first) sbuf_addc(&s->header, ',');
        csv_field(&s->header, sp->inputs[i], strlen(sp->inputs[i]));
        first = 0;
    }
    if (sbuf_failed(&s->header)) {
        vscr_destroy(s);
        return NULL;
    }
    return s;
}

static const route_scratch_type rank_vscr_type = {"/v1/rank", vscr_create, vscr_destroy};

/* ---- the impression ---- */
/* One input value as a CSV field: a string (quoted when needed), a number (%.17g), or nothing. */
static void csv_value(sbuf *out, const feat_value *fv)
{
    if (fv->kind == FEAT_V_STR) csv_field(out, fv->s, fv->len);
    else if (fv->kind == FEAT_V_NUM) {
        double x = fv->num;
        if (fabs(x) < 1e15 && x == (double)(long long)x && !(x == 0 && signbit(x))) {
            /* an integer: the digits %.17g prints, without printf's cost (the common case: ages, hours) */
            char b[24], *e = b + sizeof b, *q = e;
            long long v = (long long)x;
            unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            do *--q = (char)('0' + u % 10); while (u /= 10);
            if (v < 0) *--q = '-';
            sbuf_add(out, q, (size_t)(e - q));
        } else sbuf_printf(out, "%.17g", x);
    }
}

/* n commas (a row's empty fields before a value). */
static void add_commas(sbuf *out, int n)
{
    static const char commas[] = ",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,";
    for (size_t k = sizeof commas - 1; n > 0; n -= (int)k) sbuf_add(out, commas, (size_t)n < k ? (size_t)n : k);
}

/* Record the shown candidates idx[0..n) of req: their ids and the Wide & Deep rows in the compact form
 * (server/evstore.h, ev_impression.ctx_row): the context's values once (ctx_row: strings quoted when
 * needed, numbers as %.17g, missing empty), then per shown item only the candidate's own values (an
 * empty field takes the context's, an empty string is written "", trailing empty fields are left
 * out). When the rows pass EVSTORE_ROWS_MAX bytes (a wide context, many candidates) formatting stops
 * and the impression is recorded without them (rows_skipped: counted by the store): the exposure is
 * never lost. This thread's text buffer is freed after a request that grew it past twice that bound
 * (a row is bounded by the request body). RC_OK or RC_ENOMEM (the items' buffer: nothing recorded). */
static int expose(http_req *r, const route_exp *x, const model_version *v, const rank_vscr *vs, const rank_req *req,
                  const int32_t *idx, int n)
{
    api_str *items, *rows;
    sbuf *text;
    if (route_exp_buffers(n, &items, &rows, &text) != RC_OK) return RC_ENOMEM;
    if (n > EVSTORE_MAX_ITEMS) n = EVSTORE_MAX_ITEMS;
    const feat_spec *sp = vs->in.spec;
    int nin = sp->ninputs, skipped = 0;
    for (int f = 0, col = 0; f < nin && !skipped; f++) { /* the context's row */
        if (f == sp->label) continue;
        if (col++) sbuf_addc(text, ',');
        csv_value(text, &req->ctx[f]);
        skipped = text->len > EVSTORE_ROWS_MAX;
    }
    size_t ctx_n = text->len;
    for (int i = 0; i < n; i++) {
        int c = idx[i];
        items[i] = req->ids[c];
        if (skipped) continue;
        size_t start = text->len;
        const feat_value *cv = &req->cand[(size_t)c * nin];
        for (int f = 0, col = 0, pend = 0; f < nin; f++) {
            if (f == sp->label) continue;
            if (col++) pend++;
            if (cv[f].kind == FEAT_V_MISSING) continue;
            add_commas(text, pend);
            pend = 0;
            if (cv[f].kind == FEAT_V_STR && cv[f].len == 0) sbuf_add(text, "\"\"", 2); /* not the context's */
            else csv_value(text, &cv[f]);
        }
        rows[i].n = text->len - start; /* pointers once the text stops moving */
        skipped = text->len > EVSTORE_ROWS_MAX;
    }
    skipped |= sbuf_failed(text); /* out of memory for the rows: the impression without them */
    const char *base = text->data && !skipped ? text->data : "";
    for (size_t i = 0, at = ctx_n; i < (size_t)n && !skipped; at += rows[i].n, i++) rows[i].p = base + at;
    ev_impression imp = {.items = items, .n_items = n, .rows_skipped = skipped};
    if (!skipped) {
        imp.row_header = (api_str){vs->header.data ? vs->header.data : "", vs->header.len};
        imp.rows = rows;
        imp.ctx_row = (api_str){base, ctx_n};
    }
    route_exp_record(r, x, v, &imp);
    if (text->cap > 2 * (size_t)EVSTORE_ROWS_MAX) sbuf_release(text); /* a wide request's bytes are not kept */
    return RC_OK;
}

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
    route_exp x = {NULL, -1, 0, {NULL, 0}};
    model_version *v;
    if (req.has_experiment) {
        v = route_exp_acquire(r, req.experiment.p, req.experiment.n, req.user_id, req.has_user_id, req.has_model,
                              MODEL_CAP_RANK, &x);
    } else {
        v = route_acquire(r, req.model.p, req.model.n, MODEL_CAP_RANK);
    }
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
    if (x.e && x.arm >= 0) /* the impression keys its items by id: the event store's bound applies */
        for (size_t c = 0; c < req.n_cand; c++)
            if (req.ids[c].n > EVSTORE_MAX_ID) {
                http_problem(r, 422, "unprocessable-request",
                             "candidates[%zu].item_id: %zu bytes; in an experiment ids are at most %d bytes (the "
                             "event store's bound)", c, req.ids[c].n, EVSTORE_MAX_ID);
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
    route_exp_fields(r, &x);
    /* recorded before the answer goes out (an event posted after it must find it); not when the
     * answer itself failed */
    if (x.e && x.arm >= 0 && !sbuf_failed(out) && expose(r, &x, v, vs, &req, idx, got) != RC_OK) {
        http_oom(r, "the impression");
        goto done;
    }
    route_answer_end(r);
done:
    registry_release(srv->reg, v);
    return HTTP_DONE;
}
