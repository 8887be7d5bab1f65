#include <stdint.h>

#include "core/rng.h"
#include "tests/testlib.h"

/* Reference values: splitmix64 from state 0 yields e220a8397b1dcdaf, 6e789e6aa1b965f4,
 * 06c45d188009454f, f88bb8a8724c81ec (Vigna's splitmix64.c); xoshiro256** from the state {1,2,3,4}
 * yields 11520, 0, 1509978240, 1215971899390074240. */
TEST(rng_reference_vectors)
{
    rng_t r;
    rng_seed(&r, 0);
    ASSERT(r.s[0] == 0xe220a8397b1dcdafULL);
    ASSERT(r.s[1] == 0x6e789e6aa1b965f4ULL);
    ASSERT(r.s[2] == 0x06c45d188009454fULL);
    ASSERT(r.s[3] == 0xf88bb8a8724c81ecULL);
    rng_t x = {{1, 2, 3, 4}};
    ASSERT(rng_u64(&x) == 11520ULL);
    ASSERT(rng_u64(&x) == 0ULL);
    ASSERT(rng_u64(&x) == 1509978240ULL);
    ASSERT(rng_u64(&x) == 1215971899390074240ULL);
}

/* rng_normal uses no libm log (see rng.c): these values are the same on every machine. */
TEST(rng_normal_golden)
{
    rng_t r;
    rng_seed(&r, 2024);
    ASSERT(rng_normal(&r) == 0.78777049874583249);
    ASSERT(rng_normal(&r) == -0.63553283187080623);
    ASSERT(rng_normal(&r) == 0.078868717285793088);
    ASSERT(rng_normal(&r) == 0.16023541590267223);
}

TEST(rng_determinism)
{
    rng_t a, b, c;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rng_u64(&a), y = rng_u64(&b), z = rng_u64(&c);
        ASSERT(x == y);
        differ += x != z;
    }
    ASSERT(differ > 990);
    /* split: deterministic, and child differs from parent */
    rng_seed(&a, 7);
    rng_seed(&b, 7);
    rng_t ca = rng_split(&a), cb = rng_split(&b);
    for (int i = 0; i < 100; i++)
        ASSERT(rng_u64(&ca) == rng_u64(&cb));
    int same = 0;
    for (int i = 0; i < 100; i++)
        same += rng_u64(&ca) == rng_u64(&a);
    ASSERT_EQ(same, 0);
    /* two splits of the same parent differ */
    rng_t s1 = rng_split(&a), s2 = rng_split(&a);
    ASSERT(rng_u64(&s1) != rng_u64(&s2));
}

TEST(rng_below_unbiased)
{
    rng_t r;
    rng_seed(&r, 12345);
    enum { K = 7, N = 700000 };
    long cnt[K] = {0};
    for (int i = 0; i < N; i++) {
        uint64_t v = rng_below(&r, K);
        ASSERT(v < K);
        cnt[v]++;
    }
    double e = (double)N / K, chi2 = 0;
    for (int i = 0; i < K; i++)
        chi2 += (cnt[i] - e) * (cnt[i] - e) / e;
    /* 6 degrees of freedom: P(chi2 > 30) < 4e-5. */
    ASSERT(chi2 < 30.0);
    /* n = 1 is always 0; a huge n (non power of two) stays in range */
    for (int i = 0; i < 100; i++)
        ASSERT(rng_below(&r, 1) == 0);
    uint64_t big = (UINT64_MAX / 3) * 2 + 1;
    for (int i = 0; i < 1000; i++)
        ASSERT(rng_below(&r, big) < big);
    /* a range that is not a power of two and not tiny: chi-square over its 10 deciles */
    long dec[10] = {0};
    for (int i = 0; i < 100000; i++)
        dec[rng_below(&r, 1000) / 100]++;
    chi2 = 0;
    for (int i = 0; i < 10; i++)
        chi2 += (dec[i] - 10000.0) * (dec[i] - 10000.0) / 10000.0;
    ASSERT(chi2 < 40.0);
}

TEST(rng_uniform_range)
{
    rng_t r;
    rng_seed(&r, 99);
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = rng_uniform(&r);
        float f = rng_uniformf(&r);
        ASSERT(u >= 0.0 && u < 1.0);
        ASSERT(f >= 0.0f && f < 1.0f);
        sum += u;
    }
    ASSERT_NEAR(sum / 100000, 0.5, 0.005);
}

TEST(rng_normal_moments)
{
    rng_t r;
    rng_seed(&r, 2024);
    enum { N = 200000 };
    double s = 0, s2 = 0;
    long within1 = 0;
    for (int i = 0; i < N; i++) {
        double x = rng_normal(&r);
        ASSERT(isfinite(x));
        s += x;
        s2 += x * x;
        within1 += fabs(x) < 1.0;
    }
    double mean = s / N, sd = sqrt(s2 / N - mean * mean);
    ASSERT_NEAR(mean, 0.0, 0.01); /* se = 0.0022 */
    ASSERT_NEAR(sd, 1.0, 0.01);   /* se ~ 0.0016 */
    ASSERT_NEAR((double)within1 / N, 0.6827, 0.005);
}

TEST(rng_shuffle_permutation)
{
    rng_t r;
    rng_seed(&r, 5);
    enum { N = 1000 };
    int64_t a[N];
    for (int i = 0; i < N; i++)
        a[i] = i;
    rng_shuffle_i64(&r, a, N);
    char seen[N] = {0};
    int fixed = 0;
    for (int i = 0; i < N; i++) {
        ASSERT(a[i] >= 0 && a[i] < N);
        ASSERT(!seen[a[i]]);
        seen[a[i]] = 1;
        fixed += a[i] == i;
    }
    ASSERT(fixed < 10); /* expected 1 */
    rng_shuffle_i64(&r, a, 0);
    rng_shuffle_i64(&r, a, 1);
    /* every position of a 3-element shuffle is uniform: count where element 0 lands */
    long pos[3] = {0};
    for (int t = 0; t < 30000; t++) {
        int64_t b[3] = {0, 1, 2};
        rng_shuffle_i64(&r, b, 3);
        for (int i = 0; i < 3; i++)
            if (b[i] == 0) pos[i]++;
    }
    for (int i = 0; i < 3; i++)
        ASSERT_NEAR(pos[i], 10000, 600);
}

/* A bound just above 2^63 rejects about half of the raw draws: still in range and uniform. */
TEST(rng_below_large_bounds)
{
    rng_t r;
    rng_seed(&r, 8);
    uint64_t n = (1ULL << 63) + 1;
    int upper = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t v = rng_below(&r, n);
        ASSERT(v < n);
        upper += v >= (1ULL << 62);
    }
    ASSERT_NEAR(upper, 10000, 400); /* P = 1/2, sd 71 */
    /* and a power of two: every bit balanced */
    int ones[20] = {0};
    for (int i = 0; i < 20000; i++) {
        uint64_t v = rng_below(&r, 1u << 20);
        ASSERT(v < (1u << 20));
        for (int b = 0; b < 20; b++)
            ones[b] += (int)((v >> b) & 1);
    }
    for (int b = 0; b < 20; b++)
        ASSERT_NEAR(ones[b], 10000, 400);
}
