/* api/ratings_req.c - POST /v1/ratings bodies and recommendations query strings (see ratings_req.h). */
#include "api/ratings_req.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define OOM(detail, cap) api_fail(detail, cap, 503, "out of memory for the request's strings")

/* ---- POST /v1/ratings ---- */
enum { F_USER, F_ITEMS, F_MODEL, F_EXP, F_CLIP, NF };
static const char *const field_names[NF] = {"user_id", "item_ids", "model", "experiment", "clip"};

/* The string at the cursor into *out: 400 when it is not a string (field named), 503 when the arena is
 * full (cannot happen with an arena of body length + 1: each string is decoded once). */
static int get_str(ajson *p, const char *field, api_str *out, char *detail, size_t cap)
{
    if (ajson_peek(p) != AJSON_STRING)
        return api_fail(detail, cap, 400, "%s: expected a string, got %s", field, ajson_describe(p));
    if (ajson_string(p, out) != RC_OK) return OOM(detail, cap);
    return 0;
}

static int id_length(api_str s, const char *field, const api_limits *lim, char *detail, size_t cap)
{
    if (s.n == 0 || s.n > (size_t)lim->max_id_len)
        return api_fail(detail, cap, 422, "%s: length %zu outside [1, %d]", field, s.n, lim->max_id_len);
    return 0;
}

static int parse_items(ajson *p, const api_limits *lim, api_scratch *scr, ratings_req *req, char *detail, size_t cap)
{
    if (ajson_peek(p) != AJSON_ARRAY)
        return api_fail(detail, cap, 400, "item_ids: expected an array of strings, got %s", ajson_describe(p));
    size_t n = ajson_count(p);
    if (n == 0 || n > (size_t)lim->max_items)
        return api_fail(detail, cap, 422, "item_ids: %zu given, between 1 and %d accepted", n, lim->max_items);
    if (api_scratch_strs(scr, n) != RC_OK) return api_fail(detail, cap, 503, "out of memory for %zu item ids", n);
    ajson_enter(p);
    for (size_t i = 0; ajson_elem(p); i++) {
        api_str *s = &scr->strs[i];
        if (ajson_peek(p) != AJSON_STRING)
            return api_fail(detail, cap, 400, "item_ids[%zu]: expected a string, got %s", i, ajson_describe(p));
        if (ajson_string(p, s) != RC_OK) return OOM(detail, cap);
        if (s->n == 0 || s->n > (size_t)lim->max_id_len)
            return api_fail(detail, cap, 422, "item_ids[%zu]: length %zu outside [1, %d]", i, s->n, lim->max_id_len);
    }
    req->items = scr->strs;
    req->n_items = n;
    return 0;
}

static int parse_fields(ajson *p, const api_limits *lim, api_scratch *scr, ratings_req *req, char *detail, size_t cap)
{
    /* first the keys: duplicates (400) before any other error, then the first unknown field (422) */
    size_t at[NF];
    int order[NF], nf, st;
    unsigned have;
    if ((st = api_object_fields(p, field_names, NF, "(expected user_id, item_ids, model, experiment, clip)", at,
                                order, &nf, &have, detail, cap)))
        return st;
    /* then each field, in the order of the body */
    for (int o = 0; o < nf; o++) {
        int f = order[o];
        p->i = at[f];
        switch (f) {
        case F_USER:
            if ((st = get_str(p, "user_id", &req->user_id, detail, cap)) ||
                (st = id_length(req->user_id, "user_id", lim, detail, cap)))
                return st;
            break;
        case F_ITEMS:
            if ((st = parse_items(p, lim, scr, req, detail, cap))) return st;
            break;
        case F_MODEL: /* "model":"" is 422, as ?model= and /v1/next's "model":"" */
            if ((st = get_str(p, "model", &req->model, detail, cap)) ||
                (st = id_length(req->model, "model", lim, detail, cap)))
                return st;
            req->has_model = 1;
            break;
        case F_EXP:
            if ((st = get_str(p, "experiment", &req->experiment, detail, cap)) ||
                (st = id_length(req->experiment, "experiment", lim, detail, cap)))
                return st;
            req->has_experiment = 1;
            break;
        case F_CLIP: {
            ajson_kind kd = ajson_peek(p);
            if (kd != AJSON_TRUE && kd != AJSON_FALSE)
                return api_fail(detail, cap, 400, "clip: expected a boolean, got %s", ajson_describe(p));
            req->clip = ajson_literal(p);
            break;
        }
        }
    }
    if (!(have >> F_USER & 1)) return api_fail(detail, cap, 422, "user_id: required");
    if (!(have >> F_ITEMS & 1)) return api_fail(detail, cap, 422, "item_ids: required");
    return 0;
}

int ratings_req_parse(const char *body, size_t len, const api_limits *lim, api_scratch *scr, ratings_req *req,
                      char *detail, size_t cap)
{
    memset(req, 0, sizeof *req);
    ajson p;
    int st = api_body_open(&p, body, len, lim, scr, detail, cap);
    if (st) return st;
    req->clip = 1;
    st = parse_fields(&p, lim, scr, req, detail, cap);
    if (st) memset(req, 0, sizeof *req);
    return st;
}

/* ---- GET /v1/users/{id}/recommendations ---- */
enum { Q_K, Q_MODEL, Q_EXP, Q_EXCLUDE, NQ };
static const char *const query_names[NQ] = {"k", "model", "experiment", "exclude_seen"};

/* s[0..n) for a message: at most 32 bytes, bytes outside printable ASCII as '?' (a value may hold any
 * byte, NUL included). */
static const char *shown(char *buf, size_t cap, api_str s)
{
    size_t m = s.n < cap - 4 ? s.n : cap - 4;
    for (size_t i = 0; i < m; i++) buf[i] = s.p[i] >= 0x20 && s.p[i] < 0x7f ? s.p[i] : '?';
    if (m < s.n) memcpy(buf + m, "...", 4);
    else buf[m] = '\0';
    return buf;
}

static int key_is(api_str k, const char *lit)
{
    return strlen(lit) == k.n && memcmp(k.p, lit, k.n) == 0;
}

static int query_id(const char *name, const api_kv *a, const api_limits *lim, api_str *out, char *detail, size_t cap)
{
    if (!a->has_value) return api_fail(detail, cap, 400, "%s: expected a value (%s=...)", name, name);
    *out = a->value;
    if (out->n == 0 || out->n > (size_t)lim->max_id_len)
        return api_fail(detail, cap, 422, "%s: length %zu outside [1, %d]", name, out->n, lim->max_id_len);
    return 0;
}

int recs_query_parse(const api_kv *args, int n, const api_limits *lim, recs_query *q, char *detail, size_t cap)
{
    memset(q, 0, sizeof *q);
    q->k = lim->k_default;
    q->exclude_seen = 1;
    if (n > RECS_MAX_ARGS) n = RECS_MAX_ARGS;
    const api_kv *arg[NQ] = {NULL};
    char buf[40];
    /* first the names: duplicates (400), then the first unknown one (422), as for bodies */
    int unknown = -1;
    for (int a = 0; a < n; a++) {
        if (args[a].key.n == 0) continue; /* "?&k=1", "k=1&&m=x", "?=5": no name, ignored */
        int f = -1;
        for (int i = 0; i < NQ && f < 0; i++)
            if (key_is(args[a].key, query_names[i])) f = i;
        if (f < 0) {
            if (unknown < 0) unknown = a;
            continue;
        }
        if (arg[f]) return api_fail(detail, cap, 400, "duplicate parameter '%s'", query_names[f]);
        arg[f] = &args[a];
    }
    if (unknown >= 0)
        return api_fail(detail, cap, 422, "unknown parameter '%s' (expected k, model, experiment, exclude_seen)",
                        shown(buf, sizeof buf, args[unknown].key));
    int st;
    if (arg[Q_K]) {
        api_str s = arg[Q_K]->value;
        if (!arg[Q_K]->has_value) return api_fail(detail, cap, 400, "k: expected an integer (k=20)");
        /* an optional '-' and decimal digits only (strtoll would take spaces, '+' and "0x") */
        size_t i = s.n && s.p[0] == '-';
        int digits = s.n > i;
        long long k = 0;
        for (size_t j = i; j < s.n && digits; j++) {
            digits = s.p[j] >= '0' && s.p[j] <= '9';
            if (k < 1000000000000LL) k = k * 10 + (s.p[j] - '0'); /* saturates far above any k_max */
        }
        if (!digits) return api_fail(detail, cap, 400, "k: expected an integer, got '%s'", shown(buf, sizeof buf, s));
        if (i) k = -k;
        if (k < 1 || k > lim->k_max)
            return api_fail(detail, cap, 422, "k: %s is outside [1, %d]", shown(buf, sizeof buf, s), lim->k_max);
        q->k = (int)k;
    }
    if (arg[Q_MODEL] && (st = query_id("model", arg[Q_MODEL], lim, &q->model, detail, cap))) return st;
    if (arg[Q_EXP] && (st = query_id("experiment", arg[Q_EXP], lim, &q->experiment, detail, cap))) return st;
    if (arg[Q_EXCLUDE]) {
        const api_kv *a = arg[Q_EXCLUDE];
        if (a->has_value && key_is(a->value, "true")) q->exclude_seen = 1;
        else if (a->has_value && key_is(a->value, "false")) q->exclude_seen = 0;
        else if (a->has_value)
            return api_fail(detail, cap, 400, "exclude_seen: expected true or false, got '%s'",
                            shown(buf, sizeof buf, a->value));
        else return api_fail(detail, cap, 400, "exclude_seen: expected true or false, got no value");
    }
    return 0;
}
