/* api/events_req.c - POST /v1/events bodies (see events_req.h). */
#include "api/events_req.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

void events_scratch_trim(events_scratch *s, size_t keep_bytes)
{
    if (!s) return;
    api_scratch_trim(&s->s, keep_bytes);
    if (s->ev_cap * sizeof *s->ev > keep_bytes) {
        free(s->ev);
        s->ev = NULL;
        s->ev_cap = 0;
    }
}

void events_scratch_release(events_scratch *s)
{
    if (!s) return;
    api_scratch_release(&s->s);
    free(s->ev);
    memset(s, 0, sizeof *s);
}

const char *evreq_type_name(int type)
{
    switch (type) {
    case EVREQ_IMPRESSION: return "impression";
    case EVREQ_CLICK: return "click";
    case EVREQ_ACQUISITION: return "acquisition";
    default: return "?";
    }
}

static int key_is(api_str k, const char *lit)
{
    return strlen(lit) == k.n && memcmp(k.p, lit, k.n) == 0;
}

/* "events[3]" / "" (a single object): the prefix of messages about one event, with its separator. */
static void where_name(char *buf, size_t cap, int array, size_t i, const char *field)
{
    if (array) snprintf(buf, cap, "events[%zu]%s%s", i, field ? "." : "", field ? field : "");
    else snprintf(buf, cap, "%s", field ? field : "event");
}

#define OOM(detail, cap) api_fail(detail, cap, 503, "out of memory for the request's strings")

/* A string field at the cursor into *out, its length in [1, maxlen]. 0 or the status. */
static int string_field(ajson *p, const char *name, int array, size_t i, size_t maxlen, api_str *out, char *detail,
                        size_t cap)
{
    char where[64];
    where_name(where, sizeof where, array, i, name);
    if (ajson_peek(p) != AJSON_STRING)
        return api_fail(detail, cap, 400, "%s: expected a string, got %s", where, ajson_describe(p));
    if (ajson_string(p, out) != RC_OK) return OOM(detail, cap);
    if (out->n == 0 || out->n > maxlen)
        return api_fail(detail, cap, 422, "%s: length %zu outside [1, %zu]", where, out->n, maxlen);
    return 0;
}

/* The event object at the cursor into *e. */
static int parse_event(ajson *p, const api_limits *lim, int array, size_t i, evreq_event *e, char *detail, size_t cap)
{
    static const char *const known[] = {"request_id", "type", "item_id", "event_id", "value", NULL};
    enum { F_REQ, F_TYPE, F_ITEM, F_EVENT, F_VALUE };
    char where[64];
    memset(e, 0, sizeof *e);
    if (ajson_peek(p) != AJSON_OBJECT) {
        where_name(where, sizeof where, array, i, NULL);
        return api_fail(detail, cap, 400, "%s: expected an object, got %s", where, ajson_describe(p));
    }
    size_t max_item = lim->max_id_len > 0 && (size_t)lim->max_id_len < EVREQ_MAX_ID ? (size_t)lim->max_id_len
                                                                                      : EVREQ_MAX_ID;
    unsigned has = 0;
    api_str key, type = {0};
    int st;
    ajson_enter(p);
    while ((st = ajson_member(p, &key)) == 1) {
        int f = -1;
        for (int k = 0; known[k]; k++)
            if (key_is(key, known[k])) f = k;
        if (f < 0) {
            where_name(where, sizeof where, array, i, NULL);
            return api_fail(detail, cap, 422, "%s: unknown field '%.*s'", where, (int)(key.n > 64 ? 64 : key.n),
                            key.p);
        }
        if (has & (1u << f)) {
            where_name(where, sizeof where, array, i, NULL);
            return api_fail(detail, cap, 400, "%s: duplicate key '%s'", where, known[f]);
        }
        has |= 1u << f;
        switch (f) {
        case F_REQ: st = string_field(p, "request_id", array, i, EVREQ_MAX_ID, &e->request_id, detail, cap); break;
        case F_ITEM: st = string_field(p, "item_id", array, i, max_item, &e->item_id, detail, cap); break;
        case F_EVENT: st = string_field(p, "event_id", array, i, EVREQ_MAX_ID, &e->event_id, detail, cap); break;
        case F_TYPE:
            where_name(where, sizeof where, array, i, "type");
            if (ajson_peek(p) != AJSON_STRING)
                return api_fail(detail, cap, 400, "%s: expected a string, got %s", where, ajson_describe(p));
            if (ajson_string(p, &type) != RC_OK) return OOM(detail, cap);
            st = 0;
            break;
        default: /* F_VALUE */
            where_name(where, sizeof where, array, i, "value");
            if (ajson_peek(p) != AJSON_NUMBER)
                return api_fail(detail, cap, 400, "%s: expected a number, got %s", where, ajson_describe(p));
            e->value = ajson_number(p, NULL);
            if (!isfinite(e->value)) return api_fail(detail, cap, 422, "%s: not a finite number", where);
            e->has_value = 1;
            st = 0;
            break;
        }
        if (st) return st;
    }
    if (st < 0) return OOM(detail, cap);
    static const int required[] = {F_REQ, F_TYPE, F_ITEM};
    for (int k = 0; k < 3; k++)
        if (!(has & (1u << required[k]))) {
            where_name(where, sizeof where, array, i, known[required[k]]);
            return api_fail(detail, cap, 422, "%s: required", where);
        }
    if (key_is(type, "impression")) e->type = EVREQ_IMPRESSION;
    else if (key_is(type, "click")) e->type = EVREQ_CLICK;
    else if (key_is(type, "acquisition")) e->type = EVREQ_ACQUISITION;
    else {
        where_name(where, sizeof where, array, i, "type");
        return api_fail(detail, cap, 422, "%s: '%.*s%s' is not one of impression, click, acquisition", where,
                        (int)(type.n > 32 ? 32 : type.n), type.p, type.n > 32 ? "..." : "");
    }
    if (e->has_value && e->type != EVREQ_ACQUISITION) {
        where_name(where, sizeof where, array, i, "value");
        return api_fail(detail, cap, 422, "%s: only an acquisition carries a value", where);
    }
    return 0;
}

int events_req_parse(const char *body, size_t len, const api_limits *lim, int max_batch, events_scratch *scr,
                     events_req *req, char *detail, size_t cap)
{
    memset(req, 0, sizeof *req);
    if (ajson_check(body, len, lim->max_depth) != RC_OK) return api_fail(detail, cap, 400, "%s", rc_errmsg());
    ajson p;
    ajson_init(&p, body, len, NULL, 0);
    ajson_kind k = ajson_peek(&p);
    if (k != AJSON_OBJECT && k != AJSON_ARRAY)
        return api_fail(detail, cap, 400, "the body must be an event object or an array of events, got %s",
                        ajson_describe(&p));
    size_t n = 1;
    if (k == AJSON_ARRAY) {
        n = ajson_count(&p);
        if (max_batch < 1) max_batch = 1;
        if (n == 0 || n > (size_t)max_batch)
            return api_fail(detail, cap, 422, "events: %zu given, between 1 and %d accepted", n, max_batch);
    }
    /* every string is decoded at most once: the arena never needs more than the body */
    if (len == SIZE_MAX || api_scratch_arena(&scr->s, len + 1) != RC_OK)
        return api_fail(detail, cap, 503, "out of memory for the request's %zu-byte arena", len + 1);
    if (n > scr->ev_cap) {
        size_t want = n < 16 ? 16 : n;
        evreq_event *q = realloc(scr->ev, want * sizeof *q);
        if (!q) return api_fail(detail, cap, 503, "out of memory for %zu events", n);
        scr->ev = q;
        scr->ev_cap = want;
    }
    ajson_init(&p, body, len, scr->s.arena, scr->s.arena_cap);
    int st;
    if (k == AJSON_OBJECT) {
        if ((st = parse_event(&p, lim, 0, 0, &scr->ev[0], detail, cap))) return st;
    } else {
        ajson_enter(&p);
        for (size_t i = 0; ajson_elem(&p); i++)
            if ((st = parse_event(&p, lim, 1, i, &scr->ev[i], detail, cap))) return st;
    }
    req->ev = scr->ev;
    req->n = n;
    req->array = k == AJSON_ARRAY;
    return 0;
}
