/* server/next.h - POST /v1/next (route_next in router.c) and its micro-batcher.
 *
 * A request is parsed and validated (api/validate.h), its history turned into a GRU hidden state on the
 * HTTP thread (stateless: every known item of `items` stepped from a zero state; stateful: the
 * session's state advanced by one click in the session store), then scored against every item.
 * Scoring one hidden vector reads the whole item matrix (N x H floats, ~10.7 MB for 11.9k x 224): with
 * the batcher on (batch.max > 1) the connection is suspended and its state queued; scorer threads take
 * every queued state (up to batch.max, waiting at most batch.wait_us for more when fewer are queued) and
 * score them together in one matrix-matrix product, pick each state's candidates and resume its
 * connection; the answer (exact re-ranking, JSON) is built on the HTTP thread (next_finish).
 * With batch.max = 1 the HTTP thread scores inline. batch.split_below > 0 lets a helper thread score
 * half the items of small batches (off by default: it cost more than it saved on the shared 2-core
 * machine). Scoring uses the version's scorer (server/score.h, built by next_prepare); top-k with
 * exclusions uses core/topk.h.
 *
 * Per-connection buffers (state, exclusions, unknown ids) live in the connection's handler slot and
 * per-thread scratch (model scratch, score rows) in thread-local storage: no allocation per request
 * beyond the response, except when a swap brings a model of another size (buffers regrow once).
 */
#ifndef RECD_NEXT_H
#define RECD_NEXT_H

#include "core/sbuf.h"

struct server;
typedef struct next_batcher next_batcher;

struct model_version;
/* Registry prepare hook (registry_set_prepare, ctx = the server): builds the version's scorer
 * (server/score.h, per score.kernel / score.bf16) and runs warm-up requests through it. */
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
