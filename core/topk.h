/* core/topk.h - the k best of n scores, on the request path (n ~ 12k..millions items, k <= ~1000).
 *
 * One pass over the scores with a k-entry heap kept in the caller's output buffer: no allocation,
 * no global state, thread-safe for concurrent callers with their own buffers. Blocks of 16 scores
 * are first compared against the current k-th best (vectorised); only blocks holding a candidate
 * take the scalar path, so the usual cost is one compare per score. Measured (bench/topk_bench.c,
 * thread CPU time): n=12000, k=20 random scores 3.4 us; n=1e6, k=100 0.21 ms. Worst case O(n log k)
 * when scores rise with the index (every item enters the heap): ~130 us for n=12000, k=20.
 *
 * Order of the result: score descending, ties broken by the lower index (deterministic whatever the
 * data or the machine). Scores that are NaN or -inf are never selected (-inf serves as a mask), and
 * neither are excluded indices (see topk_exclude). So fewer than k results come back when fewer
 * than k items are eligible.
 */
#ifndef RECD_TOPK_H
#define RECD_TOPK_H

#include <stdint.h>

/* Indices to skip. Both parts are optional (NULL / 0) and may be combined; `ex` itself may be NULL.
 * - ids[0..n_ids): a list in any order; duplicates and out-of-range values are harmless. It is
 *   only consulted for items that would enter the top k (a few hundred lookups per call at most):
 *   by binary search when ids_sorted != 0 (then ids must be ascending), else by linear scan,
 *   behind a 2 KB filter built on the stack when n_ids > 16 (n=12000, k=20, 1000 unsorted ids:
 *   7 us; sorted: 5 us).
 * - bits: bitmap over indices 0..n_bits-1: index i is excluded when bits[i >> 6] >> (i & 63) & 1.
 *   Indices >= n_bits are not excluded by the bitmap.
 * Borrowed for the duration of the call only. */
typedef struct topk_exclude {
    const int32_t *ids;
    int n_ids;
    int ids_sorted;
    const uint64_t *bits;
    int64_t n_bits;
} topk_exclude;

/* Select the k best of scores[0..n).
 * scores is (n), n <= INT32_MAX. out_idx is (k): on return out_idx[0..r) holds the selected
 * indices, best first, where r = min(k, number of eligible items) is the return value. out_score,
 * when not NULL, is (k) and receives scores[out_idx[j]] for j < r. Entries from r on are
 * unspecified (out_idx is the heap's working space). Returns r >= 0, or RC_EINVAL (message set)
 * when n < 0, n > INT32_MAX, k < 0, or a NULL pointer is passed where something must be read or
 * written (scores with n > 0, out_idx with k > 0). k == 0 or n == 0 returns 0. */
int topk_select(const float *scores, int64_t n, int k, const topk_exclude *ex, int32_t *out_idx,
                float *out_score);

/* Does ex exclude index i? (the rule topk_select applies; NULL ex excludes nothing) */
int topk_is_excluded(const topk_exclude *ex, int32_t i);

#endif
