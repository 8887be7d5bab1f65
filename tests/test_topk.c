#include <stdint.h>

#include "core/rng.h"
#include "core/topk.h"
#include "tests/testlib.h"

/* Reference: every eligible index sorted by (score desc, index asc), by insertion sort on a copy.
 */
static int ref_topk(const float *s, int n, int k, const topk_exclude *ex, int32_t *out)
{
    int m = 0;
    int32_t *all = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) {
        if (!(s[i] > -INFINITY)) continue;
        int skip = 0;
        if (ex) {
            for (int j = 0; j < ex->n_ids; j++)
                skip |= ex->ids[j] == i;
            if (ex->bits && i < ex->n_bits) skip |= (int)((ex->bits[i / 64] >> (i % 64)) & 1);
        }
        if (skip) continue;
        /* insert i keeping order */
        int p = m++;
        while (p > 0 && (s[all[p - 1]] < s[i])) {
            all[p] = all[p - 1];
            p--;
        }
        all[p] = i;
    }
    int r = m < k ? m : k;
    memcpy(out, all, sizeof(int32_t) * (size_t)r);
    free(all);
    return r;
}

static void check_same(const float *s, int n, int k, const topk_exclude *ex)
{
    int32_t *got = malloc(sizeof(int32_t) * (size_t)(k + 1)),
            *want = malloc(sizeof(int32_t) * (size_t)(k + 1));
    float *gs = malloc(sizeof(float) * (size_t)(k + 1));
    int r = topk_select(s, n, k, ex, got, gs);
    int rr = ref_topk(s, n, k, ex, want);
    if (r != rr) FAIL("n=%d k=%d: topk returned %d, reference %d", n, k, r, rr);
    for (int j = 0; j < r; j++) {
        if (got[j] != want[j])
            FAIL("n=%d k=%d rank %d: index %d (score %g), reference %d (score %g)", n, k, j, got[j],
                 s[got[j]], want[j], s[want[j]]);
        ASSERT(gs[j] == s[got[j]]);
    }
    /* without out_score: same indices */
    int r2 = topk_select(s, n, k, ex, got, NULL);
    ASSERT_EQ(r2, r);
    for (int j = 0; j < r; j++)
        ASSERT_EQ(got[j], want[j]);
    free(got);
    free(want);
    free(gs);
}

TEST(topk_vs_full_sort)
{
    rng_t r;
    rng_seed(&r, 11);
    static const int ns[] = {1, 2, 15, 16, 17, 100, 1000, 12345};
    static const int ks[] = {1, 2, 5, 20, 100, 1000};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        int n = ns[a];
        float *s = malloc(sizeof(float) * (size_t)n);
        for (int i = 0; i < n; i++)
            s[i] = (float)rng_normal(&r);
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++)
            check_same(s, n, ks[b], NULL);
        /* ascending scores: every item enters the heap (worst case of the one-pass scheme) */
        for (int i = 0; i < n; i++)
            s[i] = (float)i;
        check_same(s, n, 20, NULL);
        for (int i = 0; i < n; i++)
            s[i] = (float)(n - i);
        check_same(s, n, 20, NULL);
        free(s);
    }
}

TEST(topk_ties_lower_index_first)
{
    rng_t r;
    rng_seed(&r, 12);
    enum { N = 5000 };
    static float s[N];
    /* few distinct values: heavy ties everywhere */
    for (int i = 0; i < N; i++)
        s[i] = (float)rng_below(&r, 4);
    check_same(s, N, 20, NULL);
    check_same(s, N, 1000, NULL);
    /* all equal: the first k indices in order */
    for (int i = 0; i < N; i++)
        s[i] = 0.5f;
    int32_t out[30];
    ASSERT_EQ(topk_select(s, N, 30, NULL, out, NULL), 30);
    for (int j = 0; j < 30; j++)
        ASSERT_EQ(out[j], j);
    /* +0 and -0 compare equal: a tie, lower index first */
    float z[3] = {-0.0f, 0.0f, -1.0f};
    ASSERT_EQ(topk_select(z, 3, 2, NULL, out, NULL), 2);
    ASSERT_EQ(out[0], 0);
    ASSERT_EQ(out[1], 1);
}

TEST(topk_k_edge_cases)
{
    float s[5] = {3, 1, 4, 1, 5};
    int32_t out[10];
    float os[10];
    ASSERT_EQ(topk_select(s, 5, 0, NULL, NULL, NULL), 0); /* k = 0: nothing read or written */
    ASSERT_EQ(topk_select(NULL, 0, 5, NULL, out, NULL), 0);
    ASSERT_EQ(topk_select(s, 5, 10, NULL, out, os), 5); /* k > n */
    int32_t want[5] = {4, 2, 0, 1, 3};
    for (int j = 0; j < 5; j++) {
        ASSERT_EQ(out[j], want[j]);
        ASSERT(os[j] == s[want[j]]);
    }
    ASSERT_RC(topk_select(s, 5, -1, NULL, out, NULL), RC_EINVAL);
    ASSERT_RC(topk_select(s, -1, 3, NULL, out, NULL), RC_EINVAL);
    ASSERT_RC(topk_select(s, (int64_t)INT32_MAX + 1, 3, NULL, out, NULL), RC_EINVAL);
    ASSERT_RC(topk_select(NULL, 5, 3, NULL, out, NULL), RC_EINVAL);
    ASSERT_RC(topk_select(s, 5, 3, NULL, NULL, NULL), RC_EINVAL);
    /* NaN and -inf are never selected */
    float m[6] = {NAN, -INFINITY, 2, INFINITY, NAN, -3};
    ASSERT_EQ(topk_select(m, 6, 6, NULL, out, os), 3);
    ASSERT_EQ(out[0], 3);
    ASSERT_EQ(out[1], 2);
    ASSERT_EQ(out[2], 5);
    check_same(m, 6, 2, NULL);
}

TEST(topk_exclusions)
{
    rng_t r;
    rng_seed(&r, 13);
    enum { N = 12000 };
    static float s[N];
    for (int i = 0; i < N; i++)
        s[i] = rng_uniformf(&r);
    /* exclude the current top 30 and some random ones, unsorted with duplicates and junk */
    int32_t top[30];
    ASSERT_EQ(topk_select(s, N, 30, NULL, top, NULL), 30);
    int32_t ids[64];
    int n_ids = 0;
    for (int j = 0; j < 30; j += 2)
        ids[n_ids++] = top[j];
    for (int j = 0; j < 20; j++)
        ids[n_ids++] = (int32_t)rng_below(&r, N);
    ids[n_ids++] = top[0];  /* duplicate */
    ids[n_ids++] = -5;      /* out of range: harmless */
    ids[n_ids++] = N + 100; /* out of range: harmless */
    topk_exclude ex = {.ids = ids, .n_ids = n_ids};
    check_same(s, N, 20, &ex);
    check_same(s, N, 1, &ex);
    int32_t out[20];
    ASSERT_EQ(topk_select(s, N, 20, &ex, out, NULL), 20);
    for (int j = 0; j < 20; j++)
        ASSERT(!topk_is_excluded(&ex, out[j]));
    ASSERT_EQ(out[0], top[1]);

    /* sorted ids: same result by binary search */
    int32_t sorted[64];
    memcpy(sorted, ids, sizeof(int32_t) * (size_t)n_ids);
    for (int a = 1; a < n_ids; a++)
        for (int b = a; b > 0 && sorted[b - 1] > sorted[b]; b--) {
            int32_t t = sorted[b];
            sorted[b] = sorted[b - 1];
            sorted[b - 1] = t;
        }
    topk_exclude exs = {.ids = sorted, .n_ids = n_ids, .ids_sorted = 1};
    int32_t out2[20];
    ASSERT_EQ(topk_select(s, N, 20, &exs, out2, NULL), 20);
    for (int j = 0; j < 20; j++)
        ASSERT_EQ(out2[j], out[j]);
    for (int j = 0; j < n_ids; j++)
        ASSERT(topk_is_excluded(&exs, sorted[j]));

    /* bitmap, combined with the list; only the first n_bits count */
    static uint64_t bits[(N + 63) / 64];
    for (int i = 0; i < N; i += 3)
        bits[i / 64] |= 1ULL << (i % 64);
    topk_exclude exb = {.ids = ids, .n_ids = n_ids, .bits = bits, .n_bits = N};
    check_same(s, N, 50, &exb);
    topk_exclude exb2 = {.bits = bits, .n_bits = 6000};
    check_same(s, N, 50, &exb2);
    ASSERT(topk_is_excluded(&exb2, 3));
    ASSERT(!topk_is_excluded(&exb2, 6003));
    ASSERT(!topk_is_excluded(NULL, 3));

    /* everything excluded: nothing returned */
    float few[3] = {1, 2, 3};
    int32_t all3[3] = {2, 0, 1};
    topk_exclude exa = {.ids = all3, .n_ids = 3};
    ASSERT_EQ(topk_select(few, 3, 2, &exa, out, NULL), 0);
    /* an empty exclusion struct is the same as none */
    topk_exclude empty = {0};
    check_same(s, N, 20, &empty);
}

/* Randomised: many sizes, k, tie densities and exclusions against the reference. */
TEST(topk_randomised)
{
    rng_t r;
    rng_seed(&r, 14);
    for (int t = 0; t < 200; t++) {
        int n = 1 + (int)rng_below(&r, 3000);
        int k = (int)rng_below(&r, 60);
        int distinct = 1 + (int)rng_below(&r, 50);
        float *s = malloc(sizeof(float) * (size_t)n);
        for (int i = 0; i < n; i++)
            s[i] = (float)rng_below(&r, (uint64_t)distinct) - 10.0f;
        int32_t ids[10];
        for (int j = 0; j < 10; j++)
            ids[j] = (int32_t)rng_below(&r, (uint64_t)n);
        topk_exclude ex = {.ids = ids, .n_ids = (int)rng_below(&r, 11)};
        check_same(s, n, k, t % 2 ? &ex : NULL);
        free(s);
    }
}

/* Long unsorted exclusion lists (the stack-filter path), alone and with a bitmap, against the
 * reference; junk values (negative, INT32_MAX) in the list are harmless. */
TEST(topk_many_exclusions)
{
    rng_t r;
    rng_seed(&r, 15);
    enum { N = 3000, MAXX = 700 };
    static float s[N];
    static int32_t ids[MAXX];
    static uint64_t bits[(N + 63) / 64];
    for (int t = 0; t < 40; t++) {
        for (int i = 0; i < N; i++)
            s[i] = (float)rng_below(&r, 200);
        int n_ids = 17 + (int)rng_below(&r, MAXX - 17);
        for (int j = 0; j < n_ids; j++)
            ids[j] = (int32_t)rng_below(&r, N);
        ids[0] = -1;
        ids[1] = INT32_MAX;
        ids[2] = INT32_MIN;
        topk_exclude ex = {.ids = ids, .n_ids = n_ids};
        int k = 1 + (int)rng_below(&r, 100);
        check_same(s, N, k, &ex);
        memset(bits, 0, sizeof bits);
        for (int j = 0; j < 200; j++) {
            uint64_t b = rng_below(&r, N);
            bits[b / 64] |= 1ULL << (b % 64);
        }
        ex.bits = bits;
        ex.n_bits = N;
        check_same(s, N, k, &ex);
    }
    /* every item excluded by a long list: nothing comes back */
    float few[40];
    int32_t all[40];
    for (int i = 0; i < 40; i++) {
        few[i] = (float)i;
        all[i] = 39 - i;
    }
    topk_exclude exa = {.ids = all, .n_ids = 40};
    int32_t out[5];
    ASSERT_EQ(topk_select(few, 40, 5, &exa, out, NULL), 0);
    exa.n_ids = 38; /* 1 and 0 remain */
    ASSERT_EQ(topk_select(few, 40, 5, &exa, out, NULL), 2);
    ASSERT_EQ(out[0], 1);
    ASSERT_EQ(out[1], 0);
}
