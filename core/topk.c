/* core/topk.c - see core/topk.h.
 *
 * The heap is a min-heap of indices over the "worse" order (lower score, or equal score and higher
 * index), stored in out_idx: its root is the current k-th best, whose score is the threshold a new
 * item must beat. Items are visited in increasing index order, so an item tying the root's score
 * always loses the tie (its index is higher): a strict `score > threshold` is the exact test.
 */
#include "core/topk.h"

#include <math.h>
#include <stddef.h>

#include "core/err.h"

#define TOPK_BLOCK 16

int topk_is_excluded(const topk_exclude *ex, int32_t i)
{
    if (!ex) return 0;
    if (ex->bits && i >= 0 && (int64_t)i < ex->n_bits && ((ex->bits[i >> 6] >> (i & 63)) & 1)) return 1;
    if (ex->ids && ex->n_ids > 0) {
        if (ex->ids_sorted) {
            int lo = 0, hi = ex->n_ids; /* first position with ids[pos] >= i */
            while (lo < hi) {
                int mid = lo + (hi - lo) / 2;
                if (ex->ids[mid] < i)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            return lo < ex->n_ids && ex->ids[lo] == i;
        }
        for (int j = 0; j < ex->n_ids; j++)
            if (ex->ids[j] == i) return 1;
    }
    return 0;
}

/* a is worse than b: lower score, or the same score and a higher index. */
static inline int worse(const float *s, int32_t a, int32_t b)
{
    return s[a] < s[b] || (s[a] == s[b] && a > b);
}

static inline void sift_down(const float *s, int32_t *h, int cnt, int pos)
{
    int32_t x = h[pos];
    for (;;) {
        int c = 2 * pos + 1;
        if (c >= cnt) break;
        if (c + 1 < cnt && worse(s, h[c + 1], h[c])) c++;
        if (!worse(s, h[c], x)) break;
        h[pos] = h[c];
        pos = c;
    }
    h[pos] = x;
}

static inline void sift_up(const float *s, int32_t *h, int pos)
{
    int32_t x = h[pos];
    while (pos > 0) {
        int p = (pos - 1) / 2;
        if (!worse(s, x, h[p])) break;
        h[pos] = h[p];
        pos = p;
    }
    h[pos] = x;
}

int topk_select(const float *scores, int64_t n, int k, const topk_exclude *ex, int32_t *out_idx,
                float *out_score)
{
    if (n < 0 || n > INT32_MAX) return rc_error(RC_EINVAL, "topk: n=%lld out of range", (long long)n);
    if (k < 0) return rc_error(RC_EINVAL, "topk: k=%d is negative", k);
    if (k == 0 || n == 0) return 0;
    if (!scores) return rc_error(RC_EINVAL, "topk: scores is NULL for n=%lld", (long long)n);
    if (!out_idx) return rc_error(RC_EINVAL, "topk: out_idx is NULL for k=%d", k);
    if (ex && !ex->ids && !ex->bits) ex = NULL;

    int32_t *h = out_idx;
    int cnt = 0;
    int64_t i = 0, N = n;

    /* Fill: the first k eligible items. */
    for (; i < N && cnt < k; i++) {
        if (!(scores[i] > -INFINITY)) continue; /* NaN, -inf */
        if (ex && topk_is_excluded(ex, (int32_t)i)) continue;
        h[cnt] = (int32_t)i;
        sift_up(scores, h, cnt);
        cnt++;
    }

    if (cnt == k) {
        float thr = scores[h[0]];
        /* Blocks: a vectorisable "any score above the threshold?" before the scalar work. */
        for (; i + TOPK_BLOCK <= N; i += TOPK_BLOCK) {
            const float *b = scores + i;
            int any = 0;
            for (int j = 0; j < TOPK_BLOCK; j++) any |= b[j] > thr;
            if (!any) continue;
            for (int j = 0; j < TOPK_BLOCK; j++) {
                if (!(b[j] > thr)) continue;
                if (ex && topk_is_excluded(ex, (int32_t)(i + j))) continue;
                h[0] = (int32_t)(i + j);
                sift_down(scores, h, cnt, 0);
                thr = scores[h[0]];
            }
        }
        for (; i < N; i++) {
            if (!(scores[i] > thr)) continue;
            if (ex && topk_is_excluded(ex, (int32_t)i)) continue;
            h[0] = (int32_t)i;
            sift_down(scores, h, cnt, 0);
            thr = scores[h[0]];
        }
    }

    /* Heapsort in place: moving the worst to the end each time leaves best-first order. */
    for (int end = cnt - 1; end > 0; end--) {
        int32_t t = h[0];
        h[0] = h[end];
        h[end] = t;
        sift_down(scores, h, end, 0);
    }
    if (out_score)
        for (int j = 0; j < cnt; j++) out_score[j] = scores[h[j]];
    return cnt;
}
