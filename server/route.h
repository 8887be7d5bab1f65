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

#endif
