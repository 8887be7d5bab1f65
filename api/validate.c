/* api/validate.c - request body checks (see validate.h). */
#include "api/validate.h"

#include <pthread.h>
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

static int fail(char *detail, size_t cap, int status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *detail, size_t cap, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (cap) vsnprintf(detail, cap, fmt, ap);
    va_end(ap);
    return status;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* A string field: 400 on wrong type, 422 if empty or too long. */
static int get_id(const json_t *v, const char *field, const api_limits *lim, api_str *out, char *detail,
                  size_t cap)
{
    if (!json_is_string(v))
        return fail(detail, cap, 400, "'%s' must be a string, got %s", field, json_type_name(v));
    size_t n = json_string_length(v);
    if (n == 0) return fail(detail, cap, 422, "'%s' must not be empty", field);
    if (n > (size_t)lim->max_id_len)
        return fail(detail, cap, 422, "'%s' is %zu bytes long, the limit is %d", field, n, lim->max_id_len);
    out->p = json_string_value(v);
    out->n = n;
    return 0;
}

int next_req_parse(const char *body, size_t len, const api_limits *lim, json_t **doc, next_req *req,
                   char *detail, size_t cap)
{
    *doc = NULL;
    memset(req, 0, sizeof *req);
    req->k = lim->k_default;
    if (len == 0) return fail(detail, cap, 400, "empty body: expected a JSON object");
    if (api_check_depth(body, len, lim->max_depth) != RC_OK) return fail(detail, cap, 400, "%s", rc_errmsg());
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fail(detail, cap, 400, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    int st = 0;
    if (!json_is_object(root)) {
        st = fail(detail, cap, 400, "the body must be a JSON object, got %s", json_type_name(root));
        goto fail;
    }
    const char *key;
    json_t *v;
    int have_k = 0;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "session_id") == 0) {
            if ((st = get_id(v, key, lim, &req->session_id, detail, cap))) goto fail;
        } else if (strcmp(key, "item_id") == 0) {
            if ((st = get_id(v, key, lim, &req->item_id, detail, cap))) goto fail;
        } else if (strcmp(key, "model") == 0) {
            if ((st = get_id(v, key, lim, &req->model, detail, cap))) goto fail;
        } else if (strcmp(key, "k") == 0) {
            if (!json_is_integer(v)) {
                st = fail(detail, cap, 400, "'k' must be an integer, got %s", json_type_name(v));
                goto fail;
            }
            json_int_t k = json_integer_value(v);
            if (k < 1 || k > lim->k_max) {
                st = fail(detail, cap, 422, "'k' must be between 1 and %d, got %lld", lim->k_max, (long long)k);
                goto fail;
            }
            req->k = (int)k;
            have_k = 1;
        } else if (strcmp(key, "exclude_seen") == 0) {
            if (!json_is_boolean(v)) {
                st = fail(detail, cap, 400, "'exclude_seen' must be a boolean, got %s", json_type_name(v));
                goto fail;
            }
            req->exclude_seen = json_is_true(v);
        } else if (strcmp(key, "items") == 0) {
            if (!json_is_array(v)) {
                st = fail(detail, cap, 400, "'items' must be an array of strings, got %s", json_type_name(v));
                goto fail;
            }
            size_t n = json_array_size(v);
            if (n == 0) {
                st = fail(detail, cap, 422, "'items' must not be empty");
                goto fail;
            }
            if (n > (size_t)lim->max_items) {
                st = fail(detail, cap, 422, "'items' has %zu entries, the limit is %d", n, lim->max_items);
                goto fail;
            }
            for (size_t i = 0; i < n; i++) {
                api_str s;
                const json_t *it = json_array_get(v, i);
                if (!get_id(it, "", lim, &s, NULL, 0)) continue; /* the field name only for the message */
                char field[32];
                snprintf(field, sizeof field, "items[%zu]", i);
                st = get_id(it, field, lim, &s, detail, cap);
                goto fail;
            }
            req->items = v;
            req->n_items = n;
        } else {
            st = fail(detail, cap, 422,
                      "unknown field '%.64s' (expected session_id, item_id, items, k, exclude_seen, model)", key);
            goto fail;
        }
    }
    (void)have_k;
    if (req->session_id.n && req->items) {
        st = fail(detail, cap, 422, "give either 'session_id' with 'item_id' (stateful) or 'items' (stateless), "
                                    "not both");
        goto fail;
    }
    if (!req->session_id.n && !req->items) {
        st = fail(detail, cap, 422, "missing 'session_id' with 'item_id' (stateful) or 'items' (stateless)");
        goto fail;
    }
    if (req->session_id.n && !req->item_id.n) {
        st = fail(detail, cap, 422, "'session_id' needs 'item_id': the click that advances the session");
        goto fail;
    }
    if (req->item_id.n && !req->session_id.n) {
        st = fail(detail, cap, 422, "'item_id' needs 'session_id' (or send the whole history as 'items')");
        goto fail;
    }
    *doc = root;
    return 0;
fail:
    json_decref(root);
    memset(req, 0, sizeof *req);
    return st;
}

/* ---- the per-thread arena for jansson ---- */
#define ARENA_SIZE (256u << 10)

typedef struct json_arena {
    char *base;
    size_t used;
    int active;
} json_arena;

static _Thread_local json_arena *arena_cur;
static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void arena_destroy(void *p)
{
    json_arena *a = p;
    if (!a) return;
    free(a->base);
    free(a);
}

static void arena_key_init(void)
{
    pthread_key_create(&arena_key, arena_destroy);
}

static void *arena_malloc(size_t n)
{
    json_arena *a = arena_cur;
    if (a && a->active) {
        size_t need = (n + 15) & ~(size_t)15;
        if (need >= n && a->used + need <= ARENA_SIZE) {
            void *p = a->base + a->used;
            a->used += need;
            return p;
        }
    }
    return malloc(n);
}

static void arena_free(void *p)
{
    json_arena *a = arena_cur;
    if (a && (char *)p >= a->base && (char *)p < a->base + ARENA_SIZE) return;
    free(p);
}

void api_json_alloc_install(void)
{
    pthread_once(&arena_once, arena_key_init);
    json_set_alloc_funcs(arena_malloc, arena_free);
}

void api_json_arena_begin(void)
{
    json_arena *a = arena_cur;
    if (!a) {
        pthread_once(&arena_once, arena_key_init);
        a = calloc(1, sizeof *a);
        if (!a) return;
        a->base = malloc(ARENA_SIZE);
        if (!a->base) {
            free(a);
            return;
        }
        arena_cur = a;
        pthread_setspecific(arena_key, a);
    }
    a->used = 0;
    a->active = 1;
}

void api_json_arena_end(void)
{
    json_arena *a = arena_cur;
    if (!a) return;
    a->active = 0;
    a->used = 0;
}
