/* core/rng.c - xoshiro256** (Blackman & Vigna) seeded through splitmix64. See core/rng.h. */
#include "core/rng.h"

#include <math.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static inline uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* splitmix64: advances *x by the golden gamma and returns a well-mixed output. */
static inline uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(rng_t *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    /* The all-zero state is the one fixed point of xoshiro; splitmix64 never yields four zeros in a
     * row, but keep the guarantee explicit. */
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) r->s[0] = 0x9e3779b97f4a7c15ULL;
}

uint64_t rng_u64(rng_t *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl64(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

rng_t rng_split(rng_t *r)
{
    /* Seed the child from one fresh output of the parent, then separate it further from the
     * parent's stream by mixing in a second output: child and parent states are unrelated. */
    rng_t c;
    uint64_t a = rng_u64(r), b = rng_u64(r);
    uint64_t x = a ^ rotl64(b, 32) ^ 0x5851f42d4c957f2dULL;
    for (int i = 0; i < 4; i++)
        c.s[i] = splitmix64(&x);
    if ((c.s[0] | c.s[1] | c.s[2] | c.s[3]) == 0) c.s[0] = 0x9e3779b97f4a7c15ULL;
    return c;
}

uint64_t rng_below(rng_t *r, uint64_t n)
{
    /* Lemire's multiply-shift with rejection (unbiased): the high 64 bits of x*n are uniform on
     * [0,n) once the low part is outside the first (2^64 mod n) values. */
    if (n == 0) return 0; /* documented precondition n > 0; be harmless anyway */
    unsigned __int128 m = (unsigned __int128)rng_u64(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t thresh = (0 - n) % n; /* 2^64 mod n */
        while (lo < thresh) {
            m = (unsigned __int128)rng_u64(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double rng_uniform(rng_t *r)
{
    return (double)(rng_u64(r) >> 11) * 0x1.0p-53;
}

float rng_uniformf(rng_t *r)
{
    return (float)(rng_u64(r) >> 40) * 0x1.0p-24f;
}

/* Natural log of q in (0, 1), from + - * / only (IEEE-exact operations, never contracted to FMA in
 * ISO C mode), so the value is the same on every machine; libm's log may differ in the last ulp
 * between CPUs (glibc picks FMA or non-FMA code at run time). Error <= 3 ulp (measured over 5M q).
 * q = m * 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.1716. */
static double portable_log(double q)
{
    int e;
    double m = frexp(q, &e); /* exact: m in [0.5, 1) */
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e -= 1;
    }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    /* 2 * (s + s^3/3 + ... + s^23/23): the next term is below 2^-60 relative */
    double p = 1.0 / 23;
    for (int k = 21; k >= 1; k -= 2)
        p = p * s2 + 1.0 / k;
    return (double)e * 0.69314718055994530942 + 2.0 * s * p;
}

double rng_normal(rng_t *r)
{
    /* Marsaglia's polar method; the second variate is discarded (no state beyond s[4]). sqrt is
     * correctly rounded by IEEE 754, the log is portable_log: same values on every machine. */
    for (;;) {
        double u = 2.0 * rng_uniform(r) - 1.0;
        double v = 2.0 * rng_uniform(r) - 1.0;
        double q = u * u + v * v;
        if (q > 0.0 && q < 1.0) return u * sqrt(-2.0 * portable_log(q) / q);
    }
}

void rng_shuffle_i64(rng_t *r, int64_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, (uint64_t)i);
        int64_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}
