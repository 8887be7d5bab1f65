/* api/rank_req.c - POST /v1/rank bodies (see rank_req.h). */
#include "api/rank_req.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"
#include "core/err.h"

/* ---- tables and scratch ---- */
int rank_inputs_init(rank_inputs *t, const feat_spec *sp)
{
    memset(t, 0, sizeof *t);
    size_t n = (size_t)sp->ninputs;
    t->numeric = calloc(n ? n : 1, 1);
    t->len = calloc(n ? n : 1, sizeof *t->len);
    if (!t->numeric || !t->len) {
        rank_inputs_release(t);
        return rc_error(RC_ENOMEM, "out of memory for the tables of %zu inputs", n);
    }
    for (int i = 0; i < sp->nfeat; i++)
        if (sp->f[i].kind == FEAT_NUMERIC && sp->f[i].input >= 0) t->numeric[sp->f[i].input] = 1;
    for (size_t i = 0; i < n; i++) t->len[i] = strlen(sp->inputs[i]);
    t->spec = sp;
    t->n = sp->ninputs;
    return RC_OK;
}

void rank_inputs_release(rank_inputs *t)
{
    if (!t) return;
    free(t->numeric);
    free(t->len);
    memset(t, 0, sizeof *t);
}

#define TRIM_(ptr, cap, elem, keep)   \
    do {                              \
        if ((cap) * (elem) > (keep)) { \
            free((void *)(ptr));      \
            (ptr) = NULL;             \
            (cap) = 0;                \
        }                             \
    } while (0)

void rank_scratch_trim(rank_scratch *s, size_t keep_bytes)
{
    if (!s) return;
    TRIM_(s->s.arena, s->s.arena_cap, 1, keep_bytes);
    TRIM_(s->s.strs, s->s.strs_cap, sizeof *s->s.strs, keep_bytes / 4);
    TRIM_(s->ctx, s->ctx_cap, sizeof *s->ctx, keep_bytes);
    TRIM_(s->cand, s->cand_cap, sizeof *s->cand, keep_bytes);
    TRIM_(s->seen, s->seen_cap, sizeof *s->seen, keep_bytes); /* regrown zeroed (grow_seen) */
}
#undef TRIM_

void rank_scratch_release(rank_scratch *s)
{
    if (!s) return;
    api_scratch_release(&s->s);
    free(s->ctx);
    free(s->cand);
    free(s->seen);
    memset(s, 0, sizeof *s);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return RC_OK;
    if (need < 16) need = 16;
    if (need > SIZE_MAX / elem) return RC_ENOMEM;
    void *q = realloc(*p, need * elem);
    if (!q) return RC_ENOMEM;
    *p = q;
    *cap = need;
    return RC_OK;
}

/* grow() for the duplicate-key stamps: the new entries must read 0 ("never set"). realloc's memory is
 * whatever the allocator had there, often the stamps of a closed connection's scratch: an input whose
 * stale stamp equals the current object's was refused as a "duplicate key" (400) on a fresh
 * connection. */
static int grow_seen(rank_scratch *s, size_t need)
{
    size_t old = s->seen_cap;
    if (grow((void **)&s->seen, &s->seen_cap, need, sizeof *s->seen)) return RC_ENOMEM;
    if (s->seen_cap > old) memset(s->seen + old, 0, (s->seen_cap - old) * sizeof *s->seen);
    return RC_OK;
}

/* ---- parsing ---- */

static int key_is(api_str k, const char *lit)
{
    return strlen(lit) == k.n && memcmp(k.p, lit, k.n) == 0;
}

#define OOM(detail, cap) api_fail(detail, cap, 503, "out of memory for the request's strings")

/* 422 when a name given (model, experiment) is empty or longer than lim->max_id_len, as in the bodies of
 * /v1/next and /v1/ratings and the query of /v1/users/{id}/recommendations. */
static int id_length(api_str s, const char *field, const api_limits *lim, char *detail, size_t cap)
{
    if (s.n == 0 || s.n > (size_t)lim->max_id_len)
        return api_fail(detail, cap, 422, "%s: length %zu outside [1, %d]", field, s.n, lim->max_id_len);
    return 0;
}

int rank_req_parse(const char *body, size_t len, const api_limits *lim, rank_scratch *scr, rank_req *req,
                   char *detail, size_t cap)
{
    memset(req, 0, sizeof *req);
    if (ajson_check(body, len, lim->max_depth) != RC_OK) return api_fail(detail, cap, 400, "%s", rc_errmsg());
    ajson *p = &req->p;
    ajson_init(p, body, len, NULL, 0);
    if (ajson_peek(p) != AJSON_OBJECT) return api_fail(detail, cap, 400, "the body must be a JSON object");
    /* every string is decoded at most once: the arena never needs more than the body */
    if (len == SIZE_MAX || api_scratch_arena(&scr->s, len + 1) != RC_OK)
        return api_fail(detail, cap, 503, "out of memory for the request's %zu-byte arena", len + 1);
    ajson_init(p, body, len, scr->s.arena, scr->s.arena_cap);
    /* the top-level members (offsets of their values) */
    static const char *const known[] = {"user_id", "context", "candidates", "k", "model", "experiment", NULL};
    enum { F_USER, F_CTX, F_CANDS, F_K, F_MODEL, F_EXP, NF };
    size_t at[NF];
    int has[NF] = {0}, st;
    api_str key;
    ajson_enter(p);
    while ((st = ajson_member(p, &key)) == 1) {
        int f = -1;
        for (int i = 0; known[i]; i++)
            if (key_is(key, known[i])) f = i;
        if (f < 0) return api_fail(detail, cap, 422, "unknown field '%.*s'", (int)(key.n > 64 ? 64 : key.n), key.p);
        if (has[f]) return api_fail(detail, cap, 400, "duplicate key '%s'", known[f]);
        has[f] = 1;
        ajson_peek(p);
        at[f] = p->i;
        ajson_skip(p);
    }
    if (st < 0) return OOM(detail, cap);
    if (has[F_USER]) {
        p->i = at[F_USER];
        if (ajson_peek(p) != AJSON_STRING) return api_fail(detail, cap, 400, "user_id: expected a string");
        if (ajson_string(p, &req->user_id) != RC_OK) return OOM(detail, cap);
        req->has_user_id = 1;
    }
    if (has[F_MODEL]) {
        p->i = at[F_MODEL];
        if (ajson_peek(p) != AJSON_STRING) return api_fail(detail, cap, 400, "model: expected a string");
        if (ajson_string(p, &req->model) != RC_OK) return OOM(detail, cap);
        if ((st = id_length(req->model, "model", lim, detail, cap))) return st; /* "model":"" too, as /v1/next */
        req->has_model = 1;
    }
    if (has[F_EXP]) {
        p->i = at[F_EXP];
        if (ajson_peek(p) != AJSON_STRING) return api_fail(detail, cap, 400, "experiment: expected a string");
        if (ajson_string(p, &req->experiment) != RC_OK) return OOM(detail, cap);
        if ((st = id_length(req->experiment, "experiment", lim, detail, cap))) return st;
        req->has_experiment = 1;
    }
    long long k = lim->k_default;
    if (has[F_K]) {
        p->i = at[F_K];
        int is_int = 0;
        double kd = 0;
        if (ajson_peek(p) == AJSON_NUMBER) kd = ajson_number(p, &is_int);
        if (!is_int) return api_fail(detail, cap, 400, "k: expected an integer");
        k = kd > 1e15 ? (long long)1e15 : kd < -1e15 ? (long long)-1e15 : (long long)kd;
    }
    if (!has[F_CANDS]) return api_fail(detail, cap, 422, "candidates: required");
    p->i = at[F_CANDS];
    if (ajson_peek(p) != AJSON_ARRAY) return api_fail(detail, cap, 400, "candidates: expected an array");
    size_t n = ajson_count(p);
    if (n == 0 || n > (size_t)lim->max_items)
        return api_fail(detail, cap, 422, "candidates: %zu given, between 1 and %d accepted", n, lim->max_items);
    if (k < 1 || k > lim->k_max) return api_fail(detail, cap, 422, "k: %lld is outside [1, %d]", k, lim->k_max);
    if ((size_t)k > n) k = (long long)n;
    req->k = (int)k;
    req->n_cand = n;
    req->has_ctx = has[F_CTX];
    req->at_ctx = has[F_CTX] ? at[F_CTX] : 0;
    req->at_cands = at[F_CANDS];
    return 0;
}

/* Where a feature object sits, for messages: "context" (cand < 0) or "candidates[N].features". */
static void where_name(char *buf, size_t cap, long cand)
{
    if (cand < 0) snprintf(buf, cap, "context");
    else snprintf(buf, cap, "candidates[%ld].features", cand);
}

/* Decode the feature object at the cursor into vals (ninputs); cand: the candidate's index, -1 for the
 * context (named in messages only when there is an error). 0 or the HTTP status, detail written. */
static int decode_features(ajson *p, rank_scratch *scr, const rank_inputs *in, feat_value *vals, long cand,
                           char *detail, size_t cap)
{
    const feat_spec *sp = in->spec;
    char where[48];
    for (int i = 0; i < in->n; i++) vals[i].kind = FEAT_V_MISSING;
    ajson_kind kind = ajson_peek(p);
    if (kind == AJSON_NULL) return ajson_skip(p), 0;
    if (kind != AJSON_OBJECT) {
        where_name(where, sizeof where, cand);
        return api_fail(detail, cap, 400, "%s: expected an object of features", where);
    }
    if (++scr->stamp == 0) { /* wrapped (2^32 objects on one connection): forget every stamp */
        memset(scr->seen, 0, scr->seen_cap * sizeof *scr->seen);
        scr->stamp = 1;
    }
    uint32_t stamp = scr->stamp;
    api_str key;
    int st;
    ajson_enter(p);
    while ((st = ajson_member(p, &key)) == 1) {
        int i = -1;
        for (int c = 0; c < in->n; c++)
            if (in->len[c] == key.n && memcmp(key.p, sp->inputs[c], key.n) == 0) {
                i = c;
                break;
            }
        if (i < 0 || i == sp->label) { /* not a model input: ignored */
            ajson_skip(p);
            continue;
        }
        if (scr->seen[i] == stamp) {
            where_name(where, sizeof where, cand);
            return api_fail(detail, cap, 400, "%s.%.64s: duplicate key", where, sp->inputs[i]);
        }
        scr->seen[i] = stamp;
        feat_value *fv = &vals[i];
        ajson_kind vk = ajson_peek(p);
        if (vk == AJSON_STRING) {
            api_str s;
            if (ajson_string(p, &s) != RC_OK) return OOM(detail, cap);
            fv->kind = FEAT_V_STR;
            fv->s = s.p;
            fv->len = s.n;
            double d;
            /* the rule feat_encode applies, checked here to name the field */
            if (in->numeric[i] && !feat_is_missing(sp, s.p, s.n) && feat_parse_number(s.p, s.n, &d) != RC_OK) {
                where_name(where, sizeof where, cand);
                return api_fail(detail, cap, 422, "%s.%.64s: \"%.*s\"%s is not a number", where, sp->inputs[i],
                            (int)(s.n > 32 ? 32 : s.n), s.p, s.n > 32 ? "..." : "");
            }
        } else if (vk == AJSON_NUMBER) {
            double d = ajson_number(p, NULL);
            if (!isfinite(d)) {
                where_name(where, sizeof where, cand);
                return api_fail(detail, cap, 422, "%s.%.64s: number out of range", where, sp->inputs[i]);
            }
            fv->kind = FEAT_V_NUM;
            fv->num = d;
        } else if (vk == AJSON_NULL) {
            ajson_skip(p);
            fv->kind = FEAT_V_MISSING;
        } else {
            where_name(where, sizeof where, cand);
            return api_fail(detail, cap, 400, "%s.%.64s: expected a string, a number or null", where, sp->inputs[i]);
        }
    }
    return st < 0 ? OOM(detail, cap) : 0;
}

int rank_req_decode(rank_req *req, const rank_inputs *in, const api_limits *lim, rank_scratch *scr, char *detail,
                    size_t cap)
{
    size_t ni = (size_t)in->n, n = req->n_cand; /* n <= max_items, ni <= FEAT_MAX_INPUTS */
    size_t ncv = ni * n;
    if (grow((void **)&scr->ctx, &scr->ctx_cap, ni + 1, sizeof *scr->ctx) ||
        grow((void **)&scr->cand, &scr->cand_cap, ncv + 1, sizeof *scr->cand) || api_scratch_strs(&scr->s, n) != RC_OK ||
        grow_seen(scr, ni + 1))
        return api_fail(detail, cap, 503, "out of memory for %zu candidates of %zu inputs", n, ni);
    ajson *p = &req->p;
    int st;
    if (req->has_ctx) {
        p->i = req->at_ctx;
        if ((st = decode_features(p, scr, in, scr->ctx, -1, detail, cap))) return st;
    } else {
        for (size_t i = 0; i < ni; i++) scr->ctx[i].kind = FEAT_V_MISSING;
    }
    api_str *ids = scr->s.strs;
    api_str key;
    p->i = req->at_cands;
    ajson_enter(p);
    for (size_t c = 0; ajson_elem(p); c++) {
        if (ajson_peek(p) != AJSON_OBJECT) return api_fail(detail, cap, 400, "candidates[%zu]: expected an object", c);
        int got_id = 0, got_feat = 0;
        feat_value *cv = scr->cand + c * ni;
        ajson_enter(p);
        while ((st = ajson_member(p, &key)) == 1) {
            if (key_is(key, "item_id")) {
                if (got_id++) return api_fail(detail, cap, 400, "candidates[%zu]: duplicate key 'item_id'", c);
                if (ajson_peek(p) != AJSON_STRING)
                    return api_fail(detail, cap, 400, "candidates[%zu].item_id: expected a string", c);
                if (ajson_string(p, &ids[c]) != RC_OK) return OOM(detail, cap);
                if (ids[c].n == 0 || ids[c].n > (size_t)lim->max_id_len)
                    return api_fail(detail, cap, 422, "candidates[%zu].item_id: length %zu outside [1, %d]", c, ids[c].n,
                                lim->max_id_len);
            } else if (key_is(key, "features")) {
                if (got_feat++) return api_fail(detail, cap, 400, "candidates[%zu]: duplicate key 'features'", c);
                if ((st = decode_features(p, scr, in, cv, (long)c, detail, cap))) return st;
            } else {
                return api_fail(detail, cap, 422, "candidates[%zu]: unknown field '%.*s'", c,
                            (int)(key.n > 64 ? 64 : key.n), key.p);
            }
        }
        if (st < 0) return OOM(detail, cap);
        if (!got_id) return api_fail(detail, cap, 422, "candidates[%zu].item_id: required", c);
        if (!got_feat)
            for (size_t i = 0; i < ni; i++) cv[i].kind = FEAT_V_MISSING;
    }
    req->ctx = scr->ctx;
    req->cand = scr->cand;
    req->ids = ids;
    return 0;
}
