/* server/ratings.h - the two routes of the rating models (models/model.h `rate` and `recommend`):
 *
 *   POST /v1/ratings                          server/ratings.c: predicted ratings of a user's items
 *   GET  /v1/users/{id}/recommendations       server/recommend.c: the user's top-k unseen items
 *
 * Both name no model type: a version answers when its type has the capability (route_acquire: 422
 * otherwise). Their per-version data (route_aux, server/route.h) is built by the prepare hooks below:
 * the packed item matrix of `recommend` (core/itemscore.h, the one `next` uses, per score.*) and the
 * rating scale read from the snapshot's meta "rating" (models/rating_base.h). Hot paths allocate
 * nothing per request but the answer: parser buffers live in the connection's handler slot, the
 * model's scratch and score rows in this thread's route_scratch entry of the version.
 */
#ifndef RECD_SERVER_RATINGS_H
#define RECD_SERVER_RATINGS_H

#include "core/sbuf.h"

struct model_version;

/* Prepare hooks (route_prepare calls them for a type with the capability; ctx = the server).
 * Both refuse a type without a user vocabulary (model_type.users; recommend_prepare also one without
 * items) with RC_ECORRUPT.
 * recommend_prepare: the packed item matrix when the type describes one (model_recommend_ops.item_matrix)
 * and it agrees with the type's own score on a few users (else the type's own score serves, logged),
 * then a few requests (warm_requests) through the route's path; NaN scores refuse the version
 * (RC_ECORRUPT). rate_prepare: the rating scale of the meta (absent: no clipping is possible, logged),
 * then a few predictions; NaN refuses. RC_OK, RC_ECORRUPT, RC_ENOMEM. */
int recommend_prepare(struct model_version *v, void *srv);
int rate_prepare(struct model_version *v, void *srv);

/* Prometheus series of the two routes (metrics_add_collector; ctx unused):
 *   recd_ratings_predicted_total, recd_ratings_fallback_total (items answered with the default rating),
 *   recd_ratings_clipped_total (predictions moved into the rating scale);
 *   recd_recommend_answers_total, recd_recommend_item_matrix_total (answers scored with the packed item
 *   matrix), recd_recommend_fallback_total (unknown users: popular items). */
void ratings_render_metrics(sbuf *out, void *unused);
void recommend_render_metrics(sbuf *out, void *unused);

#endif
