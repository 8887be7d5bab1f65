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

#include "core/itemscore.h"
#include "core/sbuf.h"
#include "models/model.h"
#include "server/evstore.h"
#include "server/experiment.h"
#include "server/http.h"
#include "server/registry.h"

/* The capabilities a route may need (models/model.h operation tables). */
typedef enum { MODEL_CAP_NEXT = 0, MODEL_CAP_RANK = 1, MODEL_CAP_RATE = 2, MODEL_CAP_RECOMMEND = 3 } model_cap;

/* 1 when v's type has capability cap. */
int route_has(const model_version *v, model_cap cap);
/* "next", "rank", "rate", "recommend": the capability's name in messages. */
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

/* This thread's scratch of type t (a static descriptor: its address is its identity, at most 8 types)
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
/* v as a JSON number with 6 significant digits, the text of sbuf_json_float (printf "%.6g": "3.91234",
 * "5", "0.000123", "-2.5", null when not finite) without printf's cost (printf took a third of the CPU
 * of a /v1/ratings request of 100 items): values in [1e-4, 1e6) are written from one integer rounded
 * half to even (the same text as printf for every float of a 3-million sample; a double whose scaled
 * value rounds in binary could differ in its last digit), others go through sbuf_json_float. */
void route_json_num(sbuf *out, double v);

/* ---- per-version data of the routes (model_version.aux) ----
 * The prepare hook of the registry (route_prepare, registered by server_open) builds it once per
 * version, before the version serves; it is immutable afterwards and freed with the version. */
typedef struct route_aux {
    itemscore *next_isc;      /* `next`: the packed item matrix, or NULL (the type's own score) */
    size_t next_q_off;        /* its query's offset within a state (model_item_matrix.q_offset) */
    itemscore *rec_isc;       /* `recommend`: the packed item matrix, or NULL (the type's own score) */
    int has_scale;            /* 1: rmin/rmax/default_rating were read from the snapshot's meta "rating" */
    float rmin, rmax;         /* the rating scale seen in training (models/rating_base.h) */
    float default_rating;     /* meta rating.default */
} route_aux;

/* v's route_aux (NULL when none was built). */
static inline const route_aux *route_aux_get(const model_version *v)
{
    return (const route_aux *)v->aux;
}

/* The registry's prepare hook (registry_set_prepare, ctx = the server): for each capability of v's type,
 * the route's preparation (next_prepare: the packed item matrix of `next` and warm-up requests;
 * recommend_prepare and rate_prepare: server/ratings.h). A non-zero return refuses the version. */
int route_prepare(model_version *v, void *srv);
/* v's route_aux, made (zeroed) on first call and owned by v (v->aux / v->aux_free). For prepare hooks
 * only: before v serves. NULL on ENOMEM (message set). */
route_aux *route_aux_make(model_version *v);

/* The packed scorer of an item matrix im that v's type describes (a `next` or `recommend` table's
 * item_matrix), per the server's settings score.kernel / score.int8 / score.bf16 (int8 refused by
 * itemscore's validation: bf16, then f32), except that a matrix of at most f32_max_bytes f32 bytes is
 * packed f32 whatever score.int8 / score.bf16 say (0: never): the int8 and bf16 copies save memory
 * bandwidth, which a matrix that stays in the caches does not need, and their candidates cost a re-rank.
 * Measured with one query on the 2-core machine (AVX2, L3 8 MiB, D = 128): f32 61 us, bf16 75, int8 92
 * at 3,706 items (1.9 MB of f32); 128 / 179 / 179 at 8,000; 572 / 508 / 489 at 16,000 (8.2 MB).
 * q_words: the words of the query the scores are asked for (a `next` state's S, a `recommend` query's
 * D): im must fit it (im->n the type's N items, im->d >= 1, im->q_offset + im->d <= q_words). `what`
 * names the capability in the log line. RC_OK with *out the scorer (itemscore_free), or with *out NULL
 * when im does not fit (logged: the type's own score is used); RC_ENOMEM. */
int route_itemscore_new(const model_version *v, const struct server *srv, const model_item_matrix *im,
                        size_t q_words, size_t f32_max_bytes, const char *what, itemscore **out);
/* The f32_max_bytes of `recommend` (a user's query scores every item once, unbatched). */
#define ROUTE_RECOMMEND_F32_BYTES ((size_t)4 << 20)
/* Does the description im give the scores `want` (N floats, the type's own score of a query) for the
 * query q (im->d floats)? The naive reference (itemscore_score_ref) of im against want: every score
 * within 1e-3 of the largest magnitude (plus 1e-4), after removing the mean difference when shift is
 * set (a `recommend` query's scores may differ by a per-user constant). scratch: N floats. 1 or 0. */
int route_itemscore_agrees(const model_item_matrix *im, const float *q, const float *want, int shift,
                           float *scratch);

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
 *   422 wrong-model-type  the control's model lacks cap (no arm can answer: "experiment 'e' cannot answer
 *       /v1/next: its control arm 'c' (model 'm', type t) has no `next` capability", or "arm 'a' (model
 *       'm2', type t2) and the control arm 'c' (...) have no ..." when the unit's arm lacks it too);
 *   route_acquire's answers for the control's model when it is not loaded (503).
 * The arm is exp_assign(now): -1 -> the control arm's model answers; an arm whose model cannot answer
 * (not loaded, or without cap) -> the control's, x->fallback = 1. In an arm (x->arm >= 0) a request id
 * taken from the client's X-Request-Id gets a server-unique suffix (http_request_id_unique): the
 * answer's request_id, which events are posted against, names this answer only. Allocates nothing; takes the
 * registry mutex for one pointer read (twice on a fallback, once more when the control is not loaded). */
model_version *route_exp_acquire(http_req *r, const char *exp, size_t exp_n, api_str user_id, int has_user,
                                 int has_model, model_cap cap, route_exp *x);

/* Append the answer's experiment fields to r->out: ,"experiment":"NAME","arm":"ARM" (or "arm":null when
 * the unit is not in the experiment). Nothing when x->e is NULL. */
void route_exp_fields(http_req *r, const route_exp *x);

/* 1 when r is a HEAD request (a GET route answering without its body: libmicrohttpd drops the body the
 * handler renders). Such an answer shows the client no items: nothing is recorded for it. */
int route_is_head(const http_req *r);

/* Record the impression of an answer in an experiment (nothing when x->e is NULL, x->arm < 0 or r is a
 * HEAD request: route_is_head): the request id, the run and arm, the unit, session (n == 0: the unit),
 * the model and version of v, the shown items[0..n) in answer order (only the first EVSTORE_MAX_ITEMS
 * are recorded), the time, the latency since r->t0_ns, fallback (x->fallback || fallback), and for the
 * Wide & Deep export row_header with rows[0..n) (rows NULL: none). Every pointer is borrowed for the call (evstore_impression copies).
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
