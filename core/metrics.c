/* core/metrics.c - see core/metrics.h. */
#include "core/metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define METRICS_X86 1
#endif

/* ---- next-item ranking ----------------------------------------------------------------------- */

/* Number of j in [0, n) with s[j] >= t (t not NaN). */
static int count_ge_scalar(const float *s, int n, float t)
{
    int c = 0;
    for (int j = 0; j < n; j++)
        c += s[j] >= t;
    return c;
}

#ifdef METRICS_X86
/* SSE2 is part of x86-64: 4 accumulators of 4 lanes; a true compare is all-ones = -1, so
 * subtracting the mask counts it. Lane counters are int32: fine for n < 2^31. */
static int count_ge_sse2(const float *s, int n, float t)
{
    __m128 tv = _mm_set1_ps(t);
    __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        a0 = _mm_sub_epi32(a0, _mm_castps_si128(_mm_cmpge_ps(_mm_loadu_ps(s + j), tv)));
        a1 = _mm_sub_epi32(a1, _mm_castps_si128(_mm_cmpge_ps(_mm_loadu_ps(s + j + 4), tv)));
        a2 = _mm_sub_epi32(a2, _mm_castps_si128(_mm_cmpge_ps(_mm_loadu_ps(s + j + 8), tv)));
        a3 = _mm_sub_epi32(a3, _mm_castps_si128(_mm_cmpge_ps(_mm_loadu_ps(s + j + 12), tv)));
    }
    __m128i a = _mm_add_epi32(_mm_add_epi32(a0, a1), _mm_add_epi32(a2, a3));
    int32_t lane[4];
    _mm_storeu_si128((__m128i *)lane, a);
    return lane[0] + lane[1] + lane[2] + lane[3] + count_ge_scalar(s + j, n - j, t);
}

__attribute__((target("avx2"))) static int count_ge_avx2(const float *s, int n, float t)
{
    __m256 tv = _mm256_set1_ps(t);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    int j = 0;
    for (; j + 32 <= n; j += 32) {
        a0 = _mm256_sub_epi32(
            a0, _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(s + j), tv, _CMP_GE_OQ)));
        a1 = _mm256_sub_epi32(
            a1, _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(s + j + 8), tv, _CMP_GE_OQ)));
        a2 = _mm256_sub_epi32(
            a2, _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(s + j + 16), tv, _CMP_GE_OQ)));
        a3 = _mm256_sub_epi32(
            a3, _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(s + j + 24), tv, _CMP_GE_OQ)));
    }
    __m256i a = _mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3));
    int32_t lane[8];
    _mm256_storeu_si256((__m256i *)lane, a);
    int c = 0;
    for (int i = 0; i < 8; i++)
        c += lane[i];
    return c + count_ge_sse2(s + j, n - j, t);
}

static int count_ge(const float *s, int n, float t)
{
    /* one load and test of libgcc's CPU model (filled in by a constructor before main) */
    return __builtin_cpu_supports("avx2") ? count_ge_avx2(s, n, t) : count_ge_sse2(s, n, t);
}
#else
#define count_ge count_ge_scalar
#endif

/* Shared tail of both rank functions: count (which includes the target itself) minus the excluded
 * items that were counted. */
static int rank_finish(const float *scores, int n, int target, const int32_t *exclude,
                       int n_exclude, int count)
{
    float t = scores[target];
    int nan = isnan(t);
    for (int i = 0; i < n_exclude; i++) {
        int32_t e = exclude[i];
        if (e < 0 || e >= n || e == target) continue;
        if (nan || scores[e] >= t) count--;
    }
    return count;
}

int metrics_rank(const float *scores, int n, int target, const int32_t *exclude, int n_exclude)
{
    if (n <= 0 || target < 0 || target >= n) return 0;
    float t = scores[target];
    /* A NaN target: every other item counts against it (and the target itself makes the 1). */
    int count = isnan(t) ? n : count_ge(scores, n, t);
    return rank_finish(scores, n, target, exclude, n_exclude, count);
}

int metrics_rank_ref(const float *scores, int n, int target, const int32_t *exclude, int n_exclude)
{
    if (n <= 0 || target < 0 || target >= n) return 0;
    float t = scores[target];
    int rank = 1;
    for (int j = 0; j < n; j++) {
        if (j == target) continue;
        int excluded = 0;
        for (int i = 0; i < n_exclude; i++)
            excluded |= exclude[i] == j;
        if (excluded) continue;
        if (isnan(t) || scores[j] >= t) rank++;
    }
    return rank;
}

void metrics_rank_batch(const float *scores, int B, int n, const int32_t *targets, int *ranks)
{
    for (int b = 0; b < B; b++)
        ranks[b] = metrics_rank(scores + (size_t)b * (size_t)n, n, targets[b], NULL, 0);
}

int metrics_topk_init(metrics_topk *a, const int *cutoffs, int ncut)
{
    if (ncut < 1 || ncut > METRICS_MAX_CUTOFFS)
        return rc_error(RC_EINVAL, "metrics: %d cutoffs (expected 1..%d)", ncut,
                        METRICS_MAX_CUTOFFS);
    for (int i = 0; i < ncut; i++)
        if (cutoffs[i] < 1) return rc_error(RC_EINVAL, "metrics: cutoff %d is < 1", cutoffs[i]);
    memset(a, 0, sizeof *a);
    a->ncut = ncut;
    memcpy(a->cutoffs, cutoffs, (size_t)ncut * sizeof *cutoffs);
    return RC_OK;
}

void metrics_topk_add(metrics_topk *a, int64_t rank)
{
    a->n++;
    if (rank < 1) return;
    double inv = 1.0 / (double)rank;
    for (int i = 0; i < a->ncut; i++) {
        if (rank <= a->cutoffs[i]) {
            a->hits[i]++;
            a->rr[i] += inv;
        }
    }
}

int metrics_topk_merge(metrics_topk *dst, const metrics_topk *src)
{
    if (dst->ncut != src->ncut ||
        memcmp(dst->cutoffs, src->cutoffs, (size_t)dst->ncut * sizeof(int)) != 0)
        return rc_error(RC_EINVAL, "metrics: cannot merge accumulators with different cutoffs");
    dst->n += src->n;
    for (int i = 0; i < dst->ncut; i++) {
        dst->hits[i] += src->hits[i];
        dst->rr[i] += src->rr[i];
    }
    return RC_OK;
}

static int cut_index(const metrics_topk *a, int k)
{
    for (int i = 0; i < a->ncut; i++)
        if (a->cutoffs[i] == k) return i;
    return -1;
}

double metrics_topk_recall(const metrics_topk *a, int k)
{
    int i = cut_index(a, k);
    if (i < 0 || a->n == 0) return NAN;
    return (double)a->hits[i] / (double)a->n;
}

double metrics_topk_mrr(const metrics_topk *a, int k)
{
    int i = cut_index(a, k);
    if (i < 0 || a->n == 0) return NAN;
    return a->rr[i] / (double)a->n;
}

json_t *metrics_topk_to_json(const metrics_topk *a)
{
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "n", json_integer(a->n)) != 0) goto fail;
    for (int i = 0; i < a->ncut; i++) {
        char key[32];
        double r = metrics_topk_recall(a, a->cutoffs[i]), m = metrics_topk_mrr(a, a->cutoffs[i]);
        snprintf(key, sizeof key, "recall@%d", a->cutoffs[i]);
        if (json_object_set_new(o, key, isnan(r) ? json_null() : json_real(r)) != 0) goto fail;
        snprintf(key, sizeof key, "mrr@%d", a->cutoffs[i]);
        if (json_object_set_new(o, key, isnan(m) ? json_null() : json_real(m)) != 0) goto fail;
    }
    return o;
fail:
    json_decref(o);
    rc_error(RC_ENOMEM, "metrics: out of memory");
    return NULL;
}

/* ---- binary classification ------------------------------------------------------------------- */

typedef struct {
    float s;
    int pos;
} scored;

static int cmp_scored(const void *a, const void *b)
{
    float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x > y) - (x < y);
}

int metrics_auc(const float *score, const float *label, size_t n, double *auc)
{
    if (n == 0) return rc_error(RC_EINVAL, "auc: no predictions");
    scored *v = n <= SIZE_MAX / sizeof *v ? malloc(n * sizeof *v) : NULL;
    if (!v) return rc_error(RC_ENOMEM, "auc: out of memory for %zu predictions", n);
    double npos = 0, nneg = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(score[i])) {
            free(v);
            return rc_error(RC_EINVAL, "auc: score %zu is NaN", i);
        }
        v[i].s = score[i];
        v[i].pos = label[i] > 0.5f;
        if (v[i].pos)
            npos++;
        else
            nneg++;
    }
    if (npos == 0 || nneg == 0) {
        free(v);
        return rc_error(RC_EINVAL, "auc: undefined with %.0f positive and %.0f negative labels",
                        npos, nneg);
    }
    qsort(v, n, sizeof *v, cmp_scored);
    /* Ascending scores; for each group of equal scores with gp positives and gn negatives, each
     * positive beats the negatives below the group and ties half of those in it. */
    double u = 0, neg_below = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        double gp = 0, gn = 0;
        while (j < n && v[j].s == v[i].s) {
            if (v[j].pos)
                gp++;
            else
                gn++;
            j++;
        }
        u += gp * (neg_below + 0.5 * gn);
        neg_below += gn;
        i = j;
    }
    free(v);
    *auc = u / (npos * nneg);
    return RC_OK;
}

double metrics_logloss(const float *prob, const float *label, size_t n)
{
    if (n == 0) return NAN;
    const double eps = 1e-15;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double p = prob[i], y = label[i];
        if (p < eps) p = eps; /* comparisons keep a NaN as it is */
        if (p > 1 - eps) p = 1 - eps;
        sum -= y * log(p) + (1 - y) * log(1 - p);
    }
    return sum / (double)n;
}

double metrics_accuracy(const float *prob, const float *label, size_t n)
{
    if (n == 0) return NAN;
    size_t right = 0;
    for (size_t i = 0; i < n; i++)
        right += (prob[i] >= 0.5f) == (label[i] > 0.5f);
    return (double)right / (double)n;
}

/* ---- regression ------------------------------------------------------------------------------ */

double metrics_rmse(const float *pred, const float *truth, size_t n)
{
    if (n == 0) return NAN;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)pred[i] - (double)truth[i];
        sum += d * d;
    }
    return sqrt(sum / (double)n);
}

double metrics_mae(const float *pred, const float *truth, size_t n)
{
    if (n == 0) return NAN;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += fabs((double)pred[i] - (double)truth[i]);
    return sum / (double)n;
}
