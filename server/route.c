/* server/route.c - version picking, per-thread scratch per version, and the answer tail (see route.h). */
#include "server/route.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "server/evstore.h"
#include "server/next.h"
#include "server/ratings.h"
#include "server/server.h"

int route_has(const model_version *v, model_cap cap)
{
    if (!v || !v->type) return 0;
    switch (cap) {
    case MODEL_CAP_NEXT: return v->type->next != NULL;
    case MODEL_CAP_RANK: return v->type->rank != NULL;
    case MODEL_CAP_RATE: return v->type->rate != NULL;
    case MODEL_CAP_RECOMMEND: return v->type->recommend != NULL;
    }
    return 0;
}

const char *route_cap_name(model_cap cap)
{
    switch (cap) {
    case MODEL_CAP_NEXT: return "next";
    case MODEL_CAP_RANK: return "rank";
    case MODEL_CAP_RATE: return "rate";
    case MODEL_CAP_RECOMMEND: return "recommend";
    }
    return "?";
}

static const char *cap_path(model_cap cap)
{
    switch (cap) {
    case MODEL_CAP_NEXT: return "/v1/next";
    case MODEL_CAP_RANK: return "/v1/rank";
    case MODEL_CAP_RATE: return "/v1/ratings";
    case MODEL_CAP_RECOMMEND: return "/v1/users/{id}/recommendations";
    }
    return "?";
}

/* name[0..n) for a message: at most 64 bytes, bytes outside printable ASCII as '?' (a name may hold any
 * byte, NUL included: printf would stop there). */
static void printable(char *out, size_t cap, const char *name, size_t n)
{
    size_t m = n < cap - 1 ? n : cap - 1;
    for (size_t i = 0; i < m; i++) out[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
    out[m] = '\0';
}

model_version *route_acquire(http_req *r, const char *name, size_t n, model_cap cap)
{
    registry *reg = r->srv->reg;
    int known = 0;
    if (n) {
        /* configured names are 1-63 bytes of [A-Za-z0-9_-]: a longer one or one holding NUL is unknown */
        char buf[65];
        if (n >= 64 || memchr(name, '\0', n)) {
            printable(buf, sizeof buf, name, n);
            http_problem(r, 404, "unknown-model", "no model '%s' is configured", buf);
            return NULL;
        }
        memcpy(buf, name, n);
        buf[n] = '\0';
        model_version *v = registry_acquire(reg, buf, &known);
        if (!v) {
            printable(buf, sizeof buf, name, n);
            if (!known) http_problem(r, 404, "unknown-model", "no model '%s' is configured", buf);
            else http_problem(r, 503, "model-not-loaded", "model '%s' has no version loaded yet", buf);
            return NULL;
        }
        if (!route_has(v, cap)) {
            http_problem(r, 422, "wrong-model-type", "model '%s' (type %s) cannot answer %s: no `%s` capability", buf,
                         v->type_name, cap_path(cap), route_cap_name(cap));
            registry_release(reg, v);
            return NULL;
        }
        return v;
    }
    /* The first configured model with the capability. A model not loaded yet may be that one (its type
     * is known only once loaded): the request waits for it (503) rather than being answered by a model
     * further down the list, whose answers and session states would differ once it loads. */
    for (int i = 0; i < registry_count(reg); i++) {
        const char *mname = registry_name(reg, i);
        model_version *v = registry_acquire(reg, mname, &known);
        if (!v) {
            http_problem(r, 503, "model-not-loaded",
                         "model '%s' has no version loaded yet (without \"model\", %s takes the first configured "
                         "model that can answer it, in order)",
                         mname, cap_path(cap));
            return NULL;
        }
        if (route_has(v, cap)) return v;
        registry_release(reg, v);
    }
    http_problem(r, 404, "unknown-model", "no configured model can answer %s (none has the `%s` capability)",
                 cap_path(cap), route_cap_name(cap));
    return NULL;
}

/* ---- per-thread scratch ---- */
enum { ROUTE_SCRATCH_TYPES = 8 }; /* next, rank, ratings, recommendations: room for the routes to come */

typedef struct scr_entry {
    uint64_t serial; /* version the entry was made for (0: empty) */
    char model[64];  /* its configured name (a newer version replaces the entry of an older one) */
    uint64_t used;   /* tick of the last use */
    int size;
    void *p;
} scr_entry;

typedef struct scr_tls {
    const route_scratch_type *type[ROUTE_SCRATCH_TYPES];
    scr_entry e[ROUTE_SCRATCH_TYPES][ROUTE_SCRATCH_SLOTS];
    uint64_t tick;
    int32_t *idx;
    float *val;
    int topk_cap;
    api_str *ev_items, *ev_rows; /* (ev_cap) impression buffers (route_exp_buffers) */
    int ev_cap;
    sbuf ev_text;
} scr_tls;

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static _Thread_local scr_tls *tls_cur;

static void entry_clear(const route_scratch_type *t, scr_entry *e)
{
    if (e->p && t) t->destroy(e->p);
    memset(e, 0, sizeof *e);
}

static void tls_destroy(void *p)
{
    scr_tls *t = p;
    if (!t) return;
    if (t == tls_cur) tls_cur = NULL;
    for (int i = 0; i < ROUTE_SCRATCH_TYPES; i++)
        for (int j = 0; j < ROUTE_SCRATCH_SLOTS; j++) entry_clear(t->type[i], &t->e[i][j]);
    free(t->idx);
    free(t->val);
    free(t->ev_items);
    free(t->ev_rows);
    sbuf_release(&t->ev_text);
    free(t);
}

static void tls_init_key(void)
{
    pthread_key_create(&tls_key, tls_destroy);
}

static scr_tls *tls_get(void)
{
    pthread_once(&tls_once, tls_init_key);
    scr_tls *t = tls_cur;
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) return NULL;
        sbuf_init(&t->ev_text);
        tls_cur = t;
        pthread_setspecific(tls_key, t);
    }
    return t;
}

void route_scratch_release(void)
{
    scr_tls *t = tls_cur;
    if (!t) return;
    pthread_setspecific(tls_key, NULL);
    tls_destroy(t);
}

void *route_scratch(const route_scratch_type *type, const model_version *v, int size)
{
    scr_tls *t = tls_get();
    if (!t) return NULL;
    int ti = -1;
    for (int i = 0; i < ROUTE_SCRATCH_TYPES && ti < 0; i++)
        if (t->type[i] == type) ti = i;
    for (int i = 0; i < ROUTE_SCRATCH_TYPES && ti < 0; i++)
        if (!t->type[i]) {
            t->type[i] = type;
            ti = i;
        }
    if (ti < 0) { /* a fifth scratch type: a programming error, not a request's fault */
        rc_error(RC_ESTATE, "route_scratch: more than %d scratch types", ROUTE_SCRATCH_TYPES);
        return NULL;
    }
    scr_entry *row = t->e[ti], *e = NULL;
    for (int i = 0; i < ROUTE_SCRATCH_SLOTS && !e; i++)
        if (row[i].serial == v->serial) e = &row[i];
    if (!e) { /* the entry of an older version of the same model, else an empty one, else the LRU one */
        for (int i = 0; i < ROUTE_SCRATCH_SLOTS && !e; i++)
            if (row[i].serial && strcmp(row[i].model, v->model) == 0) e = &row[i];
        for (int i = 0; i < ROUTE_SCRATCH_SLOTS && !e; i++)
            if (!row[i].serial) e = &row[i];
        if (!e) {
            e = &row[0];
            for (int i = 1; i < ROUTE_SCRATCH_SLOTS; i++)
                if (row[i].used < e->used) e = &row[i];
        }
        entry_clear(type, e);
    }
    e->used = ++t->tick;
    if (e->serial == v->serial && e->size >= size && e->p) return e->p;
    entry_clear(type, e);
    e->p = type->create(v, size);
    if (!e->p) return NULL;
    e->serial = v->serial;
    e->size = size;
    e->used = t->tick;
    snprintf(e->model, sizeof e->model, "%s", v->model);
    return e->p;
}

int route_topk_buffers(int k, int32_t **idx, float **val)
{
    scr_tls *t = tls_get();
    if (!t) return rc_error(RC_ENOMEM, "out of memory for top-k buffers");
    if (k < 1) k = 1;
    if (k > t->topk_cap) {
        int32_t *i = realloc(t->idx, (size_t)k * sizeof *i);
        if (i) t->idx = i;
        float *f = realloc(t->val, (size_t)k * sizeof *f);
        if (f) t->val = f;
        if (!i || !f) return rc_error(RC_ENOMEM, "out of memory for top-k buffers");
        t->topk_cap = k;
    }
    *idx = t->idx;
    *val = t->val;
    return RC_OK;
}

/* ---- the answer ---- */
void route_answer_head(http_req *r)
{
    sbuf_reset(r->out);
    sbuf_adds(r->out, "{\"items\":[");
}

void route_answer_item(http_req *r, int first, const char *id, size_t len, float score)
{
    sbuf *out = r->out;
    if (!first) sbuf_addc(out, ',');
    sbuf_adds(out, "{\"item_id\":");
    sbuf_json_str(out, id, len);
    sbuf_adds(out, ",\"score\":");
    if (isnan(score)) sbuf_adds(out, "null");
    else sbuf_json_float(out, score);
    sbuf_addc(out, '}');
}

void route_answer_model(http_req *r, const model_version *v)
{
    sbuf *out = r->out;
    sbuf_adds(out, "],\"model\":");
    sbuf_json_str(out, v->model, strlen(v->model));
    sbuf_adds(out, ",\"version\":\"");
    sbuf_adds(out, v->version_str);
    sbuf_addc(out, '"');
}

int route_answer_end(http_req *r)
{
    sbuf *out = r->out;
    sbuf_adds(out, ",\"request_id\":");
    sbuf_json_str(out, r->request_id, strlen(r->request_id));
    sbuf_adds(out, "}\n");
    if (sbuf_failed(out)) return http_oom(r, "the answer");
    return http_json(r, 200);
}

/* ---- per-version data ---- */
static void aux_free(void *p)
{
    route_aux *a = p;
    if (!a) return;
    itemscore_free(a->next_isc);
    itemscore_free(a->rec_isc);
    free(a);
}

route_aux *route_aux_make(model_version *v)
{
    if (v->aux) return v->aux;
    route_aux *a = calloc(1, sizeof *a);
    if (!a) {
        rc_error(RC_ENOMEM, "out of memory for a version's data");
        return NULL;
    }
    v->aux = a;
    v->aux_free = aux_free;
    return a;
}

int route_prepare(model_version *v, void *srv)
{
    int rc = RC_OK;
    if (v->type->next && (rc = next_prepare(v, srv)) != RC_OK) return rc;
    if (v->type->recommend && (rc = recommend_prepare(v, srv)) != RC_OK) return rc;
    if (v->type->rate && (rc = rate_prepare(v, srv)) != RC_OK) return rc;
    return RC_OK;
}

int route_itemscore_new(const model_version *v, const server *srv, const model_item_matrix *im, size_t q_words,
                        size_t f32_max_bytes, const char *what, itemscore **out)
{
    *out = NULL;
    int64_t N = v->type->items ? (int64_t)idmap_size(v->type->items(v->handle)) : -1;
    if (!im->w || im->n != N || im->d < 1 || im->q_offset + (size_t)im->d > q_words) {
        log_warn("%s version %s: its `%s` item matrix does not fit its items or queries; scoring with the model's "
                 "own score",
                 v->model, v->version_str, what);
        return RC_OK;
    }
    int k = itemscore_kernel_parse(srv->cfg.score_kernel ? srv->cfg.score_kernel : "auto");
    itemscore_kernel kern = k < 0 ? ITEMSCORE_AUTO : (itemscore_kernel)k;
    itemscore_dtype dt = srv->cfg.score_int8 ? ITEMSCORE_INT8 : srv->cfg.score_bf16 ? ITEMSCORE_BF16 : ITEMSCORE_F32;
    if ((uint64_t)im->n * (uint64_t)im->d * sizeof(float) <= f32_max_bytes) dt = ITEMSCORE_F32; /* stays in cache */
    itemscore *isc = itemscore_new(im->w, im->bias, im->n, im->d, kern, dt);
    if (isc && dt == ITEMSCORE_INT8 && srv->cfg.score_bf16 && itemscore_dtype_of(isc) != ITEMSCORE_INT8 &&
        itemscore_kernel_of(isc) == ITEMSCORE_BLAS) {
        itemscore_free(isc); /* int8 refused (validation): the bf16 matrix may still beat sgemm */
        isc = itemscore_new(im->w, im->bias, im->n, im->d, kern, ITEMSCORE_BF16);
    }
    if (!isc) return rc_error(RC_ENOMEM, "out of memory packing the item matrix");
    log_info("%s version %s: `%s` scoring with %s%s", v->model, v->version_str, what,
             itemscore_kernel_name(itemscore_kernel_of(isc)),
             itemscore_dtype_of(isc) == ITEMSCORE_INT8   ? " (int8 item matrix, f32 re-ranking)"
             : itemscore_dtype_of(isc) == ITEMSCORE_BF16 ? " (bf16 item matrix, f32 re-ranking)"
                                                         : "");
    *out = isc;
    return RC_OK;
}

int route_itemscore_agrees(const model_item_matrix *im, const float *q, const float *want, int shift, float *scratch)
{
    int64_t N = im->n;
    if (N <= 0) return 1;
    itemscore_score_ref(im->w, im->bias, N, im->d, q, scratch);
    double mean = 0, big = 0;
    for (int64_t i = 0; i < N; i++) {
        if (!isfinite(scratch[i]) || !isfinite(want[i])) return 0;
        mean += (double)want[i] - scratch[i];
        if (fabs(want[i]) > big) big = fabs(want[i]);
    }
    mean = shift ? mean / (double)N : 0;
    for (int64_t i = 0; i < N; i++)
        if (fabs((double)want[i] - scratch[i] - mean) > 1e-3 * big + 1e-4) return 0;
    return 1;
}

void route_json_num(sbuf *out, double v)
{
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e6)) { /* 0, tiny, huge, NaN, inf */
        if (v == 0) sbuf_add(out, signbit(v) ? "-0" : "0", signbit(v) ? 2 : 1);
        else sbuf_json_float(out, v);
        return;
    }
    /* x = exponent of the first significant digit; d = the 6 digits, a rounded to 10^(x-5) */
    static const double p10[] = {1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1,
                                 1e1,   1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10};
    int x = 0;
    while (x < 5 && a >= p10[10 + x + 1]) x++;
    while (x > -4 && a < p10[10 + x]) x--;
    long long d = (long long)nearbyint(a * p10[10 + 5 - x]); /* ties to even, as printf */
    if (d >= 1000000) { /* 9.999996 -> 10.0000 */
        x++;
        d = (long long)nearbyint(a * p10[10 + 5 - x]);
        if (x >= 6) {
            sbuf_json_float(out, v);
            return;
        }
    }
    char digits[6], buf[24];
    for (int i = 5; i >= 0; i--, d /= 10) digits[i] = (char)('0' + d % 10);
    int nd = 6;
    int n = 0;
    if (v < 0) buf[n++] = '-';
    if (x >= 0) { /* d0..dx . rest */
        while (nd > x + 1 && digits[nd - 1] == '0') nd--;
        for (int i = 0; i <= x; i++) buf[n++] = digits[i];
        if (nd > x + 1) {
            buf[n++] = '.';
            for (int i = x + 1; i < nd; i++) buf[n++] = digits[i];
        }
    } else { /* 0.000ddd */
        while (nd > 1 && digits[nd - 1] == '0') nd--;
        buf[n++] = '0';
        buf[n++] = '.';
        for (int i = -1; i > x; i--) buf[n++] = '0';
        for (int i = 0; i < nd; i++) buf[n++] = digits[i];
    }
    sbuf_add(out, buf, (size_t)n);
}

/* ---- experiments ---- */
int route_is_head(const http_req *r)
{
    return r->method && strcmp(r->method, "HEAD") == 0;
}

int route_exp_buffers(int n, api_str **items, api_str **rows, sbuf **text)
{
    scr_tls *t = tls_get();
    if (!t) return rc_error(RC_ENOMEM, "out of memory for the impression's buffers");
    if (n > EVSTORE_MAX_ITEMS) n = EVSTORE_MAX_ITEMS;
    if (n < 1) n = 1;
    if (n > t->ev_cap) {
        api_str *i = realloc(t->ev_items, (size_t)n * sizeof *i);
        if (i) t->ev_items = i;
        api_str *r = realloc(t->ev_rows, (size_t)n * sizeof *r);
        if (r) t->ev_rows = r;
        if (!i || !r) return rc_error(RC_ENOMEM, "out of memory for the impression's buffers");
        t->ev_cap = n;
    }
    /* a large request's rows (1000 candidates of a wide model) are not kept by an idle thread */
    if (t->ev_text.cap > (1u << 20)) sbuf_release(&t->ev_text);
    sbuf_reset(&t->ev_text);
    *items = t->ev_items;
    *rows = t->ev_rows;
    *text = &t->ev_text;
    return RC_OK;
}

model_version *route_exp_acquire(http_req *r, const char *exp, size_t exp_n, api_str user_id, int has_user,
                                 int has_model, model_cap cap, route_exp *x)
{
    server *srv = r->srv;
    memset(x, 0, sizeof *x);
    x->arm = -1;
    const experiment *e = exp_find(&srv->exps, exp, exp_n);
    if (!e) {
        char buf[65];
        printable(buf, sizeof buf, exp, exp_n);
        http_problem(r, 404, "unknown-experiment", "no experiment '%s' is configured", buf);
        return NULL;
    }
    if (has_model) {
        http_problem(r, 422, "unprocessable-request",
                     "give either model or experiment: experiment '%s' picks the model of the user's arm", e->name);
        return NULL;
    }
    if (!has_user || user_id.n == 0) {
        http_problem(r, 422, "unprocessable-request", "experiment '%s' assigns by user_id: give user_id", e->name);
        return NULL;
    }
    if (user_id.n > 255) {
        http_problem(r, 422, "unprocessable-request",
                     "user_id is %zu bytes long: an experiment's unit is at most 255 bytes", user_id.n);
        return NULL;
    }
    if (!srv->events) {
        http_problem(r, 503, "events-off", "experiment '%s' needs the event store: state.dir is not set", e->name);
        return NULL;
    }
    x->e = e;
    x->unit = user_id;
    x->arm = exp_assign(e, user_id.p, user_id.n, clock_wall_s());
    /* the impression is keyed by the request id: a client's X-Request-Id gets a server-unique suffix (a
     * reused one would drop this impression and credit its events to another request's unit) */
    if (x->arm >= 0) http_request_id_unique(r);
    const char *control = e->arms[e->control].entry;
    char arm_type[sizeof ((model_version *)0)->type_name] = ""; /* the unit's arm's type when it lacks cap */
    if (x->arm >= 0 && x->arm != e->control) {
        model_version *v = registry_acquire(srv->reg, e->arms[x->arm].entry, NULL);
        if (v && route_has(v, cap)) return v;
        if (v) snprintf(arm_type, sizeof arm_type, "%s", v->type_name);
        registry_release(srv->reg, v);
        x->fallback = 1; /* the control answers; the unit stays in its arm (intent to treat) */
    }
    /* The control's model; when loaded without cap the 422 names the experiment and the arms that lack it
     * (route_acquire's would name only a model the request did not name); otherwise route_acquire's answers */
    model_version *v = registry_acquire(srv->reg, control, NULL);
    if (v && route_has(v, cap)) return v;
    if (v) {
        const exp_arm *c = &e->arms[e->control];
        if (arm_type[0]) {
            const exp_arm *a = &e->arms[x->arm];
            http_problem(r, 422, "wrong-model-type",
                         "experiment '%s' cannot answer %s: arm '%s' (model '%s', type %s) and the control arm '%s' "
                         "(model '%s', type %s) have no `%s` capability",
                         e->name, cap_path(cap), a->name, a->entry, arm_type, c->name, c->entry, v->type_name,
                         route_cap_name(cap));
        } else {
            http_problem(r, 422, "wrong-model-type",
                         "experiment '%s' cannot answer %s: its control arm '%s' (model '%s', type %s) has no `%s` "
                         "capability",
                         e->name, cap_path(cap), c->name, c->entry, v->type_name, route_cap_name(cap));
        }
        registry_release(srv->reg, v);
        return NULL;
    }
    return route_acquire(r, control, strlen(control), cap);
}

void route_exp_fields(http_req *r, const route_exp *x)
{
    if (!x->e) return;
    sbuf *out = r->out;
    sbuf_adds(out, ",\"experiment\":");
    sbuf_json_str(out, x->e->name, strlen(x->e->name));
    sbuf_adds(out, ",\"arm\":");
    if (x->arm < 0) sbuf_adds(out, "null");
    else sbuf_json_str(out, x->e->arms[x->arm].name, strlen(x->e->arms[x->arm].name));
}

void route_exp_expose(http_req *r, const route_exp *x, const model_version *v, api_str session, const api_str *items,
                      int n, api_str row_header, const api_str *rows, int fallback)
{
    ev_impression imp = {
        .session = session,
        .items = items,
        .n_items = n,
        .fallback = fallback,
        .row_header = rows ? row_header : (api_str){NULL, 0},
        .rows = rows,
    };
    route_exp_record(r, x, v, &imp);
}

void route_exp_record(http_req *r, const route_exp *x, const model_version *v, ev_impression *imp)
{
    if (!x->e || x->arm < 0 || !r->srv->events || route_is_head(r)) return;
    if (imp->n_items > EVSTORE_MAX_ITEMS) imp->n_items = EVSTORE_MAX_ITEMS;
    if (imp->n_items < 0) imp->n_items = 0;
    uint64_t now = clock_mono_ns();
    uint64_t us = now > r->t0_ns ? (now - r->t0_ns) / 1000 : 0;
    imp->request_id = (api_str){r->request_id, strlen(r->request_id)};
    imp->run = x->e->run;
    imp->arm = x->arm;
    imp->unit = x->unit;
    imp->model = (api_str){v->model, strlen(v->model)};
    imp->version = (api_str){v->version_str, strlen(v->version_str)};
    imp->t = clock_wall_s();
    imp->latency_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    imp->fallback = x->fallback || imp->fallback;
    evstore_impression(r->srv->events, imp); /* a refusal is counted by the store */
}
