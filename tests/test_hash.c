#include <stdint.h>
#include <string.h>

#include "core/hash.h"
#include "core/rng.h"
#include "tests/testlib.h"

/* Golden values, computed once with this implementation: they must never change (snapshots with
 * hashed features and experiment assignments depend on them). Each length class of the tail code is
 * covered. */
static const struct {
    const char *s;
    uint64_t h0, h42;
} golden[] = {
    {"", 0xf6eff89c0b093792ULL, 0x803bc56b7c82ee47ULL},
    {"a", 0x9e5e817d801ed6dbULL, 0x8d5f6d0dd0771383ULL},
    {"ab", 0xe79b5c9bb587c931ULL, 0x04fa9facdf3df8a5ULL},
    {"abc", 0x2cea6c13f7eece2cULL, 0xb3f949451f85b003ULL},
    {"abcd", 0x63525edb16784eb9ULL, 0x78d8881ce3435f5cULL},
    {"abcdefg", 0xfb329dc5aa2703f9ULL, 0x026925ff29effa60ULL},
    {"abcdefgh", 0xa22c1ba34a65ba0dULL, 0x7a09c92b8e29cd11ULL},
    {"abcdefghi", 0xcb392a2f3d47addaULL, 0xe41c7fb6a5c5391eULL},
    {"0123456789abcdef", 0x945b0ec8b8e97a2aULL, 0x0bb6fc7922e2c4fdULL},
    {"0123456789abcdefg", 0x5d13c2e0d9660546ULL, 0xa4f3260766397d1aULL},
    {"the quick brown fox jumps over the lazy dog", 0x461d45c75c8182efULL, 0x4274b472c23a9d67ULL},
};

TEST(hash_golden_values)
{
    for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) {
        const char *s = golden[i].s;
        if (hash64(s, strlen(s), 0) != golden[i].h0) FAIL("hash64(\"%s\", 0) changed", s);
        if (hash64(s, strlen(s), 42) != golden[i].h42) FAIL("hash64(\"%s\", 42) changed", s);
        ASSERT(hash_str(s, 42) == golden[i].h42);
    }
    ASSERT(hash64(NULL, 0, 0) == golden[0].h0);
    ASSERT(hash_u64(0, 0) == 0x6393d51c06c618dcULL);
    ASSERT(hash_u64(123456789, 7) == 0xa8a6aa2b5c6c1f6eULL);
    const char *p[] = {"gender=f", "occupation=3"};
    ASSERT(hash_tuple(p, NULL, 2, 99) == 0x5b1dfce1f1006f23ULL);
    ASSERT_EQ(hash_bucket("user-17", 7, 12345, 10000), 6184);
}

TEST(hash_seed_and_tuple_semantics)
{
    /* the seed changes the function; the same inputs always give the same output */
    ASSERT(hash64("x", 1, 1) != hash64("x", 1, 2));
    ASSERT(hash64("x", 1, 1) == hash64("x", 1, 1));
    /* trailing NUL bytes and lengths matter */
    ASSERT(hash64("a\0", 2, 0) != hash64("a", 1, 0));
    ASSERT(hash64("\0\0\0\0\0\0\0\0", 8, 0) != hash64("\0\0\0\0\0\0\0", 7, 0));
    /* tuple: boundaries and order */
    const char *ab_c[] = {"ab", "c"}, *a_bc[] = {"a", "bc"}, *c_ab[] = {"c", "ab"}, *a[] = {"a"},
               *a_e[] = {"a", ""};
    uint64_t h1 = hash_tuple(ab_c, NULL, 2, 5);
    ASSERT(h1 != hash_tuple(a_bc, NULL, 2, 5));
    ASSERT(h1 != hash_tuple(c_ab, NULL, 2, 5));
    ASSERT(hash_tuple(a, NULL, 1, 5) != hash_tuple(a_e, NULL, 2, 5));
    ASSERT(hash_tuple(a, NULL, 1, 5) != hash64("a", 1, 5));
    ASSERT(hash_tuple(NULL, NULL, 0, 5) == 5);
    /* explicit lengths and the combine chain agree with the NUL-terminated form */
    size_t lens[] = {2, 1};
    ASSERT(hash_tuple(ab_c, lens, 2, 5) == h1);
    ASSERT(hash_combine(hash_combine(5, "ab", 2), "c", 1) == h1);
    /* hash_u64 is a bijection for a fixed seed: no collisions among many consecutive values */
    enum { M = 4096 };
    uint64_t v[M];
    for (int i = 0; i < M; i++)
        v[i] = hash_u64((uint64_t)i, 3);
    for (int i = 0; i < M; i++)
        for (int j = i + 1; j < M; j++)
            ASSERT(v[i] != v[j]);
    /* reduce */
    ASSERT_EQ(hash_reduce(UINT64_MAX, 10), 9);
    ASSERT_EQ(hash_reduce(0, 10), 0);
    ASSERT_EQ(hash_reduce(12345, 0), 0);
    ASSERT_EQ(hash_bucket("k", 1, 0, 0), 0);
}

/* Chi-square of bucket counts for similar keys ("user-0", "user-1", ...) and for numeric strings.
 */
TEST(hash_bucket_distribution)
{
    enum { NB = 1000, NK = 200000 };
    static long cnt[NB];
    char buf[32];
    for (int form = 0; form < 2; form++) {
        memset(cnt, 0, sizeof cnt);
        for (int i = 0; i < NK; i++) {
            int len =
                form ? snprintf(buf, sizeof buf, "%d", i) : snprintf(buf, sizeof buf, "user-%d", i);
            uint64_t b = hash_bucket(buf, (size_t)len, 777, NB);
            ASSERT(b < NB);
            cnt[b]++;
        }
        double e = (double)NK / NB, chi2 = 0;
        for (int i = 0; i < NB; i++)
            chi2 += (cnt[i] - e) * (cnt[i] - e) / e;
        /* 999 dof: mean 999, sd ~ 44.7; 1250 is > 5 sd */
        if (!(chi2 < 1250.0)) FAIL("form %d chi2 %.1f", form, chi2);
    }
    /* power-of-two bucket counts use the low bits the same way: low 10 bits of the hash */
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < NK; i++) {
        int len = snprintf(buf, sizeof buf, "item%d", i);
        cnt[hash64(buf, (size_t)len, 0) & 511]++;
    }
    double e = (double)NK / 512, chi2 = 0;
    for (int i = 0; i < 512; i++)
        chi2 += (cnt[i] - e) * (cnt[i] - e) / e;
    if (!(chi2 < 700.0)) FAIL("low bits chi2 %.1f", chi2); /* 511 dof, sd ~ 32 */
}

/* Avalanche: flipping any single input bit flips each output bit with probability ~1/2. */
TEST(hash_avalanche)
{
    rng_t r;
    rng_seed(&r, 31337);
    const size_t lens[] = {3, 8, 13, 40};
    enum { T = 600 };
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t len = lens[li];
        unsigned char k[40];
        for (size_t bit = 0; bit < len * 8; bit++) {
            int flips[64] = {0};
            for (int t = 0; t < T; t++) {
                for (size_t j = 0; j < len; j++)
                    k[j] = (unsigned char)rng_u64(&r);
                uint64_t a = hash64(k, len, 9);
                k[bit / 8] ^= (unsigned char)(1u << (bit % 8));
                uint64_t d = a ^ hash64(k, len, 9);
                for (int o = 0; o < 64; o++)
                    flips[o] += (int)((d >> o) & 1);
            }
            for (int o = 0; o < 64; o++) {
                /* sd of the count is sqrt(600/4) ~ 12.2; allow ~7 sd across ~23k cells */
                if (flips[o] < T / 2 - 85 || flips[o] > T / 2 + 85)
                    FAIL("len %zu input bit %zu -> output bit %d flipped %d/%d", len, bit, o,
                         flips[o], T);
            }
        }
    }
}

/* Swapping the two words of a 16-byte block changes the hash (the multiply is symmetric in its
 * operands, the construction must not be). */
TEST(hash_block_word_swap)
{
    unsigned char a[40], b[40];
    for (int i = 0; i < 40; i++)
        a[i] = (unsigned char)(i * 11 + 3);
    for (int blk = 0; blk + 16 <= 32; blk += 16) {
        memcpy(b, a, sizeof b);
        memcpy(b + blk, a + blk + 8, 8);
        memcpy(b + blk + 8, a + blk, 8);
        for (uint64_t seed = 0; seed < 4; seed++) {
            ASSERT(hash64(a, 40, seed) != hash64(b, 40, seed));
            ASSERT(hash64(a, 16, seed) != hash64(b, 16, seed) || blk != 0);
        }
    }
}

/* SipHash-2-4 reference vectors (the paper's appendix and the reference implementation's vectors.h):
 * key 00 01 .. 0f, message 00 01 .. (len-1). */
TEST(hash_sip24_reference_vectors)
{
    uint64_t key[2] = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
    unsigned char msg[64];
    for (int i = 0; i < 64; i++) msg[i] = (unsigned char)i;
    ASSERT_EQ(hash_sip24(msg, 15, key), 0xa129ca6149be45e5ULL); /* the paper's example */
    ASSERT_EQ(hash_sip24(msg, 0, key), 0x726fdb47dd0e0e31ULL);
    ASSERT_EQ(hash_sip24(msg, 1, key), 0x74f839c593dc67fdULL);
    ASSERT_EQ(hash_sip24(msg, 8, key), 0x93f5f5799a932462ULL);
    ASSERT_EQ(hash_sip24(msg, 63, key), 0x958a324ceb064572ULL);
    uint64_t other[2] = {key[0] ^ 1, key[1]};
    ASSERT_NE(hash_sip24(msg, 15, other), hash_sip24(msg, 15, key));
}
