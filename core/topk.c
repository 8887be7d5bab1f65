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
#include <string.h>

#include "core/err.h"

#define TOPK_BLOCK 16

int topk_is_excluded(const topk_exclude *ex, int32_t i)
{
    if (!ex) return 0;
    if (ex->bits && i >= 0 && (int64_t)i < ex->n_bits && ((ex->bits[i >> 6] >> (i & 63)) & 1))
        return 1;
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

/* Put index x (score xs = s[x]) at pos and sift it down the heap h[0..cnt). */
static inline void sift_down(const float *s, int32_t *h, int cnt, int pos, int32_t x, float xs)
{
    for (;;) {
        int c = 2 * pos + 1;
        if (c >= cnt) break;
        int32_t hc = h[c];
        float cs = s[hc];
        if (c + 1 < cnt) {
            int32_t hd = h[c + 1];
            float ds = s[hd];
            if (ds < cs || (ds == cs && hd > hc)) {
                c++;
                hc = hd;
                cs = ds;
            }
        }
        if (!(cs < xs || (cs == xs && hc > x))) break; /* child not worse than x: x stays */
        h[pos] = hc;
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

/* A long unsorted id list gets a 16384-bit filter on the stack (2 KB, built in one pass over the
 * ids): a candidate whose bit is clear is not in the list, so the linear scan runs only on filter
 * hits
 * (~6% of candidates for 1000 ids). Shorter lists are scanned directly. */
#define FILTER_MIN_IDS 16
#define FILTER_WORDS 256

typedef struct {
    const topk_exclude *ex;
    int use_filter;
    uint64_t filt[FILTER_WORDS];
} excl_ctx;

static inline uint32_t filt_bit(int32_t id)
{
    return ((uint32_t)id * 0x9e3779b1u) >> 18; /* 14 bits */
}

static void excl_init(excl_ctx *c, const topk_exclude *ex)
{
    c->ex = ex;
    c->use_filter = ex && ex->ids && !ex->ids_sorted && ex->n_ids > FILTER_MIN_IDS;
    if (!c->use_filter) return;
    memset(c->filt, 0, sizeof c->filt);
    for (int j = 0; j < ex->n_ids; j++) {
        uint32_t b = filt_bit(ex->ids[j]);
        c->filt[b >> 6] |= 1ULL << (b & 63);
    }
}

static inline int excl_check(const excl_ctx *c, int32_t i)
{
    const topk_exclude *ex = c->ex;
    if (!ex) return 0;
    if (!c->use_filter) return topk_is_excluded(ex, i);
    if (ex->bits && (int64_t)i < ex->n_bits && ((ex->bits[i >> 6] >> (i & 63)) & 1)) return 1;
    uint32_t b = filt_bit(i);
    if (!((c->filt[b >> 6] >> (b & 63)) & 1)) return 0;
    for (int j = 0; j < ex->n_ids; j++)
        if (ex->ids[j] == i) return 1;
    return 0;
}

int topk_select(const float *scores, int64_t n, int k, const topk_exclude *ex, int32_t *out_idx,
                float *out_score)
{
    if (n < 0 || n > INT32_MAX)
        return rc_error(RC_EINVAL, "topk: n=%lld out of range", (long long)n);
    if (k < 0) return rc_error(RC_EINVAL, "topk: k=%d is negative", k);
    if (k == 0 || n == 0) return 0;
    if (!scores) return rc_error(RC_EINVAL, "topk: scores is NULL for n=%lld", (long long)n);
    if (!out_idx) return rc_error(RC_EINVAL, "topk: out_idx is NULL for k=%d", k);
    if (ex && !ex->ids && !ex->bits) ex = NULL;
    excl_ctx xc;
    excl_init(&xc, ex);

    int32_t *h = out_idx;
    int cnt = 0;
    int64_t i = 0, N = n;

    /* Fill: the first k eligible items. */
    for (; i < N && cnt < k; i++) {
        if (!(scores[i] > -INFINITY)) continue; /* NaN, -inf */
        if (ex && excl_check(&xc, (int32_t)i)) continue;
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
            for (int j = 0; j < TOPK_BLOCK; j++)
                any |= b[j] > thr;
            if (!any) continue;
            for (int j = 0; j < TOPK_BLOCK; j++) {
                if (!(b[j] > thr)) continue;
                if (ex && excl_check(&xc, (int32_t)(i + j))) continue;
                sift_down(scores, h, cnt, 0, (int32_t)(i + j), b[j]);
                thr = scores[h[0]];
            }
        }
        for (; i < N; i++) {
            if (!(scores[i] > thr)) continue;
            if (ex && excl_check(&xc, (int32_t)i)) continue;
            sift_down(scores, h, cnt, 0, (int32_t)i, scores[i]);
            thr = scores[h[0]];
        }
    }

    /* Heapsort in place: moving the worst to the end each time leaves best-first order. */
    for (int end = cnt - 1; end > 0; end--) {
        int32_t t = h[0], last = h[end];
        h[end] = t;
        sift_down(scores, h, end, 0, last, scores[last]);
    }
    if (out_score)
        for (int j = 0; j < cnt; j++)
            out_score[j] = scores[h[j]];
    return cnt;
}
