/* core/metrics.h - evaluation metrics: next-item ranking (Recall@k, MRR@k), binary classification
 * (AUC, logloss, accuracy) and regression (RMSE, MAE).
 *
 * Next-item evaluation (DESIGN.md section 7): the model scores every item, the rank of the target
 * is 1 + the number of OTHER items whose score is >= the target's score, so ties count against the
 * model (a model that gives every item the same score ranks every target last). Recall@k counts
 * ranks <= k; MRR@k adds 1/rank when rank <= k, else 0. Both are averaged over predictions.
 *
 *     metrics_topk acc; int cut[] = {5, 10, 20};
 *     metrics_topk_init(&acc, cut, 3);
 *     for each prediction: metrics_topk_add(&acc, metrics_rank(scores, n_items, target, NULL, 0));
 *     metrics_topk_recall(&acc, 20), metrics_topk_mrr(&acc, 20)
 *
 * Threads: the functions keep no state; give each thread its own metrics_topk and merge them at the
 * end (metrics_topk_merge). Nothing here allocates except metrics_auc (one sort buffer, freed) and
 * metrics_topk_to_json (its result).
 */
#ifndef RECD_CORE_METRICS_H
#define RECD_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* ---- next-item ranking ----------------------------------------------------------------------- */

/* Rank (1-based) of item `target` in scores, which is (n): 1 + #{j != target, j not excluded :
 * scores[j] >= scores[target]}. exclude (n_exclude entries, may be NULL when n_exclude is 0) lists
 * items left out of the comparison (e.g. items already seen); entries must be distinct; entries
 * equal to target or outside [0, n) are ignored. A NaN target score ranks last (n minus the
 * excluded items); NaN scores of other items never count as >= the target. Returns 0 when n <= 0 or
 * target is outside [0, n). Cost: one branch-free vectorised pass over the n scores (AVX2 when the
 * CPU has it, else SSE2) plus n_exclude look-ups; no allocation. */
int metrics_rank(const float *scores, int n, int target, const int32_t *exclude, int n_exclude);

/* The naive scalar loop metrics_rank is checked against (tests, benchmarks). Same contract. */
int metrics_rank_ref(const float *scores, int n, int target, const int32_t *exclude, int n_exclude);

/* Ranks of B targets at once: scores is (B, n) row-major (as gru4rec_score writes it), targets is
 * (B), ranks is (B) output. No exclusion. Same rules as metrics_rank. */
void metrics_rank_batch(const float *scores, int B, int n, const int32_t *targets, int *ranks);

#define METRICS_MAX_CUTOFFS 8

/* Accumulator of Recall@k and MRR@k for up to METRICS_MAX_CUTOFFS cutoffs. Plain value: copy it,
 * keep one per thread, no release needed. Fields are read-only for callers. */
typedef struct {
    int ncut;
    int cutoffs[METRICS_MAX_CUTOFFS];  /* as given to init, in that order */
    int64_t n;                         /* predictions added */
    int64_t hits[METRICS_MAX_CUTOFFS]; /* predictions with rank <= cutoffs[i] */
    double rr[METRICS_MAX_CUTOFFS];    /* sum of 1/rank over those predictions */
} metrics_topk;

/* Start an accumulator for cutoffs[0..ncut). RC_EINVAL when ncut is not in 1..METRICS_MAX_CUTOFFS
 * or a cutoff is < 1. */
int metrics_topk_init(metrics_topk *a, const int *cutoffs, int ncut);
/* Add one prediction of the given rank (>= 1; a rank < 1 counts as a miss at every cutoff). */
void metrics_topk_add(metrics_topk *a, int64_t rank);
/* dst += src. RC_EINVAL (dst unchanged) when their cutoffs differ. */
int metrics_topk_merge(metrics_topk *dst, const metrics_topk *src);
/* Recall@k / MRR@k averaged over the predictions added; NAN when k is not one of the cutoffs or
 * nothing was added. */
double metrics_topk_recall(const metrics_topk *a, int k);
double metrics_topk_mrr(const metrics_topk *a, int k);
/* {"n": N, "recall@5": r, "mrr@5": m, ...} in cutoff order (values null when n is 0). New reference
 * owned by the caller; NULL + message on ENOMEM. */
json_t *metrics_topk_to_json(const metrics_topk *a);

/* ---- binary classification ------------------------------------------------------------------- */
/* score / prob are (n) model outputs, label is (n) with 1 = positive, 0 = negative (label > 0.5 is
 * positive for AUC and accuracy; logloss uses the label as given, so soft labels in [0,1] work). */

/* Exact ROC AUC by sorting: the probability that a random positive scores above a random negative,
 * ties counting one half (Mann-Whitney U / (P*N)). Any monotone score works (logits or
 * probabilities). Errors: RC_EINVAL (n == 0, no positive or no negative label, a NaN score),
 * RC_ENOMEM. *auc is set only on success. Allocates n * 8 bytes for the duration of the call. */
int metrics_auc(const float *score, const float *label, size_t n, double *auc);

/* Mean binary cross-entropy -[y log p + (1-y) log(1-p)] with p clipped to [1e-15, 1 - 1e-15]; a NaN
 * prob makes the result NaN (so a broken model is not hidden). NAN when n == 0. */
double metrics_logloss(const float *prob, const float *label, size_t n);

/* Fraction of predictions on the right side of 0.5: predicted positive when prob >= 0.5, labelled
 * positive when label > 0.5. NAN when n == 0. */
double metrics_accuracy(const float *prob, const float *label, size_t n);

/* ---- regression ------------------------------------------------------------------------------ */
/* pred and truth are (n); sums in double. NAN when n == 0. */
double metrics_rmse(const float *pred, const float *truth, size_t n);
double metrics_mae(const float *pred, const float *truth, size_t n);

#endif
