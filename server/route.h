/* server/route.h - what every model route shares: the version that answers, per-thread scratch kept per
 * version, and the answer's common fields.
 *
 * A model route (/v1/next, /v1/rank, later /v1/ratings, /v1/items/{id}/similar) is: parse (api/), pick a
 * version with the capability it needs (route_acquire: one place for 404/503/422), get this thread's
 * scratch for that version (route_scratch), call the model's operation table (models/model.h), render
 * the items, then the tail (route_answer_model + route-specific fields + route_answer_end).
 */
#ifndef RECD_ROUTE_H
#define RECD_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "core/sbuf.h"
#include "server/evstore.h"
#include "server/experiment.h"
#include "server/http.h"
#include "server/registry.h"

/* The capabilities a route may need (models/model.h operation tables). */
typedef enum { MODEL_CAP_NEXT = 0, MODEL_CAP_RANK = 1 } model_cap;

/* 1 when v's type has capability cap. */
int route_has(const model_version *v, model_cap cap);
/* "next", "rank": the capability's name in messages. */
const char *route_cap_name(model_cap cap);

/* The version that answers a request, with a reference held (pair with registry_release), or NULL when
 * the request has been answered with a problem:
 *   - name (n bytes, not NUL-terminated; may hold any byte) names a model: 404 unknown-model when it is
 *     not configured, 503 model-not-loaded when it has no version yet, 422 wrong-model-type when its
 *     type lacks cap ("model 'm' (type widedeep) cannot answer /v1/next: no `next` capability");
 *   - n == 0: the first configured model, in configured order, whose version has cap; 503 when a model
 *     met before it is not loaded yet (its type, unknown until it loads, may have cap), 404 when every
 *     model is loaded and none has cap.
 * Allocates nothing. */
model_version *route_acquire(http_req *r, const char *name, size_t n, model_cap cap);

/* ---- per-thread scratch, kept per model version ----
 * A route's scratch (model scratch, score rows, lookup tables) depends on the version it serves. Each
 * thread keeps up to ROUTE_SCRATCH_SLOTS entries per scratch type, keyed by version serial: alternating
 * between models (the arms of an experiment) does not reallocate per request; a new version of a model
 * replaces the entry of its older version, else an empty entry, else the least recently used one is
 * reused. Entries are freed when their thread exits (or by route_scratch_release). */
#define ROUTE_SCRATCH_SLOTS 4
typedef struct route_scratch_type {
    const char *name; /* for messages */
    /* Build a scratch for v with room for `size` (rows, candidates: the route's unit). NULL on ENOMEM. */
    void *(*create)(const model_version *v, int size);
    void (*destroy)(void *scratch);
} route_scratch_type;

/* This thread's scratch of type t (a static descriptor: its address is its identity, at most 4 types)
 * for version v with room for at least `size`: made on first use and kept. NULL on ENOMEM (the entry is
 * then empty). Valid on this thread until its next route_scratch call with the same t. */
void *route_scratch(const route_scratch_type *t, const model_version *v, int size);
/* Free this thread's entries of every type (threads that exit call it through a TLS destructor; scorer
 * threads call it before they return). */
void route_scratch_release(void);

/* This thread's top-k buffers with room for k entries (kept and grown): *idx, *val. RC_OK or RC_ENOMEM. */
int route_topk_buffers(int k, int32_t **idx, float **val);

/* ---- the answer ----
 *   {"items":[ ITEM,... ],"model":"NAME","version":"V" [route fields] ,"request_id":"..."}
 * route_answer_head resets r->out and opens the items list; route_answer_item appends one item
 * ({"item_id":..,"score":..} with score NaN rendered as null); route_answer_model closes the list and
 * adds model and version; the route then appends its own fields (",\"session_id\":..."), and
 * route_answer_end adds request_id and sends 200, or 503 when the answer ran out of memory. */
void route_answer_head(http_req *r);
void route_answer_item(http_req *r, int first, const char *id, size_t len, float score);
void route_answer_model(http_req *r, const model_version *v);
int route_answer_end(http_req *r);

/* ---- experiments (server/experiment.h) ----
 * A request with "experiment":"NAME" and "user_id":"U" is answered by the model of U's arm, and the
 * answer is recorded (an impression in the event store) before it is sent, so that an event posted
 * after the answer always finds it. Intent to treat: the arm stays the assigned one even when another
 * model had to answer. */
typedef struct route_exp {
    const experiment *e; /* the experiment (borrowed from srv->exps: lives as long as the server) */
    int arm;             /* the assigned arm, or -1: the unit is not in the experiment (nothing logged) */
    int fallback;        /* 1: the arm's model could not answer (not loaded, or lacks the capability) and
                            the control's answered */
    api_str unit;        /* the user_id (borrowed from the request body) */
} route_exp;

/* The version that answers a request naming experiment exp[0..exp_n) (the request's "experiment",
 * given: exp_n may be 0), with a reference held (registry_release), and *x filled; or NULL when the
 * request has been answered with a problem:
 *   404 unknown-experiment  no experiment of that name ("" included);
 *   422 unprocessable-request  "model" also given ("give either model or experiment"), or no user_id
 *       ("experiment 'x' assigns by user_id: give user_id"; has_user 0 or user_id.n == 0), or a user_id
 *       longer than the store keeps (255 bytes);
 *   503 events-off  the event store is off (srv->events NULL; the settings refuse experiments without
 *       state.dir, so only a server built otherwise meets it);
 *   route_acquire's answers for the control's model when no model can answer (404/503/422).
 * The arm is exp_assign(now): -1 -> the control arm's model answers; an arm whose model cannot answer
 * (not loaded, or without cap) -> the control's, x->fallback = 1. In an arm (x->arm >= 0) a request id
 * taken from the client's X-Request-Id gets a server-unique suffix (http_request_id_unique): the
 * answer's request_id, which events are posted against, names this answer only. Allocates nothing; takes the
 * registry mutex for one pointer read (twice on a fallback). */
model_version *route_exp_acquire(http_req *r, const char *exp, size_t exp_n, api_str user_id, int has_user,
                                 int has_model, model_cap cap, route_exp *x);

/* Append the answer's experiment fields to r->out: ,"experiment":"NAME","arm":"ARM" (or "arm":null when
 * the unit is not in the experiment). Nothing when x->e is NULL. */
void route_exp_fields(http_req *r, const route_exp *x);

/* Record the impression of an answer in an experiment (nothing when x->e is NULL or x->arm < 0): the
 * request id, the run and arm, the unit, session (n == 0: the unit), the model and version of v, the
 * shown items[0..n) in answer order (only the first EVSTORE_MAX_ITEMS are recorded), the time, the
 * latency since r->t0_ns, fallback (x->fallback || fallback), and for the Wide & Deep export row_header
 * with rows[0..n) (rows NULL: none). Every pointer is borrowed for the call (evstore_impression copies).
 * A refused impression (ring or store full, a field over its bound) is counted by the store
 * (recd_events_dropped_total); the answer goes out regardless. Allocates nothing. */
void route_exp_expose(http_req *r, const route_exp *x, const model_version *v, api_str session, const api_str *items,
                      int n, api_str row_header, const api_str *rows, int fallback);
/* route_exp_expose with the caller's impression: imp's session, items, n_items, fallback and row fields
 * (row_header, rows, ctx_row, rows_skipped: server/evstore.h) as the caller set them; the request id,
 * run, arm, unit, model, version, time, latency and x->fallback are set here (imp is modified; its
 * pointers are borrowed for the call). Same contract otherwise. */
void route_exp_record(http_req *r, const route_exp *x, const model_version *v, ev_impression *imp);

/* This thread's impression buffers: *items and *rows with room for n entries each (kept and grown; n
 * is capped at EVSTORE_MAX_ITEMS), and *text, an empty sbuf for the rows' bytes (its capacity kept:
 * only a larger request grows it). RC_OK or RC_ENOMEM. Valid on this thread until its next call. */
int route_exp_buffers(int n, api_str **items, api_str **rows, sbuf **text);

#endif
