/* server/next.h - POST /v1/next (route_next in router.c) for any model with the `next` capability.
 *
 * A request is parsed and validated (api/validate.h), the version picked (server/route.h route_acquire:
 * 422 for a model without `next`), its history turned into a session state on the HTTP thread through
 * the type's `next` operations (models/model.h; stateless: every known item of `items` stepped from a
 * zero state; stateful: the session's state advanced by one click in the session store), then every
 * item scored. A type that describes its item matrix (model_next_ops.item_matrix, e.g. GRU4Rec's Wy/By)
 * is scored with the packed matrix of core/itemscore.h, built once per version by next_prepare (f32,
 * bf16 or int8 per score.*, candidates re-ranked in exact f32); other types (itemknn) with their own
 * score. Scoring one state reads the whole item matrix (N x H floats, ~10.7 MB for 11.9k x 224): with the
 * batcher on (batch.max > 1) the connection is suspended and its job queued in server/batcher.h, whose
 * scorer threads score the states of one version together (one matrix-matrix product), pick each
 * state's candidates and resume its connection; the answer (exact re-ranking, JSON) is built on the HTTP
 * thread (next_finish). With batch.max = 1 the HTTP thread scores inline. batch.split_below > 0 lets a
 * helper thread score half the items of small batches (off by default: it cost more than it saved on
 * the shared 2-core machine). Top-k with exclusions uses core/topk.h.
 *
 * Per-connection buffers (state, exclusions, unknown ids, the parser's) live in the connection's handler
 * slot and per-thread scratch (model scratch, score rows) in route_scratch entries keyed by version: no
 * allocation per request beyond the response, except when a swap brings a model of another size.
 */
#ifndef RECD_NEXT_H
#define RECD_NEXT_H

#include "core/sbuf.h"

struct server;
typedef struct next_batcher next_batcher;

struct model_version;
/* The `next` part of the registry's prepare hook (route_prepare in server/route.h calls it for a type
 * with `next`; ctx = the server): builds the version's packed item matrix (route_itemscore_new, per
 * score.kernel / score.int8 / score.bf16, kept when it gives the type's own scores on a few states) and
 * runs warm-up requests through it. */
int next_prepare(struct model_version *v, void *srv);

/* Start batch.threads scorer threads (when batch.max > 1). NULL with a message on failure. */
next_batcher *next_batcher_new(struct server *srv);
/* Stop taking jobs (requests queued from now on are scored inline on their HTTP thread), answer and
 * resume every queued one, and join the scorer threads. Call before stopping the HTTP daemon:
 * libmicrohttpd aborts when stopped with a connection still suspended. NULL is a no-op. */
void next_batcher_stop(next_batcher *b);
/* next_batcher_stop (if not done yet), then free. Call after the HTTP daemon stopped (route_next reads
 * the batcher). NULL is a no-op. */
void next_batcher_free(next_batcher *b);
/* Prometheus series: batches scored, states scored, batch size histogram, fallbacks, unknown items. */
void next_render_metrics(sbuf *out, void *batcher_or_null);

#endif
