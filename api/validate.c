/* api/validate.c - request body checks (see validate.h). */
#include "api/validate.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

api_limits api_limits_default(void)
{
    return (api_limits){.max_depth = 8, .k_default = 20, .k_max = 1000, .max_items = 1000, .max_id_len = 256};
}

int api_check_depth(const char *buf, size_t len, int max_depth)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\') i++; /* skip the escaped byte (a \uXXXX needs no more care: no quotes in hex) */
            else if (c == '"') in_str = 0;
            continue;
        }
        switch (c) {
        case '"': in_str = 1; break;
        case '[':
        case '{':
            if (++depth > max_depth)
                return rc_error(RC_ERANGE, "JSON nested deeper than %d levels at byte %zu", max_depth, i);
            break;
        case ']':
        case '}':
            if (depth > 0) depth--;
            break;
        default: break;
        }
    }
    return RC_OK;
}

int api_fail(char *detail, size_t cap, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (cap) vsnprintf(detail, cap, fmt, ap);
    va_end(ap);
    return status;
}

int api_body_open(ajson *p, const char *body, size_t len, const api_limits *lim, api_scratch *scr, char *detail,
                  size_t cap)
{
    if (len == 0) return api_fail(detail, cap, 400, "empty body: expected a JSON object");
    if (ajson_check(body, len, lim->max_depth) != RC_OK) return api_fail(detail, cap, 400, "%s", rc_errmsg());
    if (len == SIZE_MAX || api_scratch_arena(scr, len + 1) != RC_OK)
        return api_fail(detail, cap, 503, "out of memory for the request's %zu-byte arena", len + 1);
    ajson_init(p, body, len, scr->arena, scr->arena_cap);
    return 0;
}

int api_object_fields(ajson *p, const char *const *names, int nf, const char *expected, size_t *at, int *order,
                      int *n, unsigned *have, char *detail, size_t cap)
{
    *n = 0;
    *have = 0;
    if (ajson_peek(p) != AJSON_OBJECT)
        return api_fail(detail, cap, 400, "the body must be a JSON object, got %s", ajson_describe(p));
    int st;
    api_str key, unknown = {NULL, 0};
    ajson_enter(p);
    while ((st = ajson_member(p, &key)) == 1) { /* the cursor at the member's value, whitespace skipped */
        int f = -1;
        for (int i = 0; i < nf && f < 0; i++)
            if (key.n == strlen(names[i]) && memcmp(key.p, names[i], key.n) == 0) f = i;
        if (f < 0) {
            if (!unknown.p) unknown = key;
        } else {
            if (*have >> f & 1) return api_fail(detail, cap, 400, "duplicate key '%s'", names[f]);
            *have |= 1u << f;
            at[f] = p->i;
            order[(*n)++] = f;
        }
        ajson_skip(p);
    }
    if (st < 0) return api_fail(detail, cap, 503, "out of memory for the request's strings");
    if (unknown.p)
        return api_fail(detail, cap, 422, "unknown field '%.*s' %s", (int)(unknown.n > 64 ? 64 : unknown.n),
                        unknown.p, expected);
    return 0;
}

/* The string at the cursor as an id: 400 on wrong type, 422 if empty or too long, 503 when the arena
 * is full (cannot happen with an arena of body length + 1: each string is decoded once). */
static int get_id(ajson *p, const char *field, const api_limits *lim, api_str *out, char *detail, size_t cap)
{
    if (ajson_peek(p) != AJSON_STRING)
        return api_fail(detail, cap, 400, "'%s' must be a string, got %s", field, ajson_describe(p));
    if (ajson_string(p, out) != RC_OK) return api_fail(detail, cap, 503, "out of memory for the request's strings");
    if (out->n == 0) return api_fail(detail, cap, 422, "'%s' must not be empty", field);
    if (out->n > (size_t)lim->max_id_len)
        return api_fail(detail, cap, 422, "'%s' is %zu bytes long, the limit is %d", field, out->n, lim->max_id_len);
    return 0;
}

enum { F_SESSION, F_ITEM, F_MODEL, F_K, F_EXCLUDE, F_ITEMS, F_EXP, F_USER, NF };
static const char *const field_names[NF] = {"session_id", "item_id",      "model",      "k",
                                            "exclude_seen", "items", "experiment", "user_id"};

static int parse_fields(ajson *p, const api_limits *lim, api_scratch *scr, next_req *req, char *detail, size_t cap)
{
    /* first the keys: duplicates (400) before any other error, then the first unknown field (422) */
    size_t at[NF];
    int order[NF], nf, st;
    unsigned have;
    if ((st = api_object_fields(p, field_names, NF,
                                "(expected session_id, item_id, items, k, exclude_seen, model) or 'experiment' with "
                                "'user_id'",
                                at, order, &nf, &have, detail, cap)))
        return st;
    /* then each field, in the order of the body */
    for (int o = 0; o < nf; o++) {
        int f = order[o];
        p->i = at[f];
        switch (f) {
        case F_SESSION:
            if ((st = get_id(p, "session_id", lim, &req->session_id, detail, cap))) return st;
            break;
        case F_ITEM:
            if ((st = get_id(p, "item_id", lim, &req->item_id, detail, cap))) return st;
            break;
        case F_MODEL:
            if ((st = get_id(p, "model", lim, &req->model, detail, cap))) return st;
            break;
        case F_EXP:
            if ((st = get_id(p, "experiment", lim, &req->experiment, detail, cap))) return st;
            break;
        case F_USER:
            if ((st = get_id(p, "user_id", lim, &req->user_id, detail, cap))) return st;
            break;
        case F_K: {
            long long k = 0;
            int rc = RC_OK;
            if (ajson_peek(p) != AJSON_NUMBER || (rc = ajson_int(p, &k)) == RC_EINVAL) {
                p->i = at[f];
                return api_fail(detail, cap, 400, "'k' must be an integer, got %s", ajson_describe(p));
            }
            if (rc == RC_ERANGE) {
                size_t n = p->i - at[f];
                return api_fail(detail, cap, 422, "'k' must be between 1 and %d, got %.*s", lim->k_max,
                            (int)(n > 32 ? 32 : n), p->s + at[f]);
            }
            if (k < 1 || k > lim->k_max)
                return api_fail(detail, cap, 422, "'k' must be between 1 and %d, got %lld", lim->k_max, k);
            req->k = (int)k;
            break;
        }
        case F_EXCLUDE: {
            ajson_kind kd = ajson_peek(p);
            if (kd != AJSON_TRUE && kd != AJSON_FALSE)
                return api_fail(detail, cap, 400, "'exclude_seen' must be a boolean, got %s", ajson_describe(p));
            req->exclude_seen = ajson_literal(p);
            break;
        }
        case F_ITEMS: {
            if (ajson_peek(p) != AJSON_ARRAY)
                return api_fail(detail, cap, 400, "'items' must be an array of strings, got %s", ajson_describe(p));
            size_t n = ajson_count(p);
            if (n == 0) return api_fail(detail, cap, 422, "'items' must not be empty");
            if (n > (size_t)lim->max_items)
                return api_fail(detail, cap, 422, "'items' has %zu entries, the limit is %d", n, lim->max_items);
            if (api_scratch_strs(scr, n) != RC_OK)
                return api_fail(detail, cap, 503, "out of memory for %zu items", n);
            ajson_enter(p);
            for (size_t i = 0; ajson_elem(p); i++) {
                api_str *s = &scr->strs[i];
                size_t at_item = p->i;
                if (ajson_peek(p) == AJSON_STRING && ajson_string(p, s) == RC_OK && s->n &&
                    s->n <= (size_t)lim->max_id_len)
                    continue;
                char field[32]; /* the element is named only in a message (no snprintf per item) */
                snprintf(field, sizeof field, "items[%zu]", i);
                p->i = at_item;
                return get_id(p, field, lim, s, detail, cap);
            }
            req->items = scr->strs;
            req->n_items = n;
            req->has_items = 1;
            break;
        }
        }
    }
    if (req->session_id.n && req->has_items)
        return api_fail(detail, cap, 422,
                    "give either 'session_id' with 'item_id' (stateful) or 'items' (stateless), not both");
    if (!req->session_id.n && !req->has_items)
        return api_fail(detail, cap, 422, "missing 'session_id' with 'item_id' (stateful) or 'items' (stateless)");
    if (req->session_id.n && !req->item_id.n)
        return api_fail(detail, cap, 422, "'session_id' needs 'item_id': the click that advances the session");
    if (req->item_id.n && !req->session_id.n)
        return api_fail(detail, cap, 422, "'item_id' needs 'session_id' (or send the whole history as 'items')");
    return 0;
}

int next_req_parse(const char *body, size_t len, const api_limits *lim, api_scratch *scr, next_req *req,
                   char *detail, size_t cap)
{
    memset(req, 0, sizeof *req);
    ajson p;
    int st = api_body_open(&p, body, len, lim, scr, detail, cap);
    if (st) return st;
    req->k = lim->k_default;
    st = parse_fields(&p, lim, scr, req, detail, cap);
    if (st) memset(req, 0, sizeof *req);
    return st;
}
