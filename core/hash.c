/* core/hash.c - see core/hash.h for the construction and its guarantees. */
#include "core/hash.h"

#include <string.h>

/* Odd 64-bit constants with balanced bits (golden ratio and well-known mixing primes). */
#define HK0 0x9e3779b97f4a7c15ULL
#define HK1 0xc2b2ae3d27d4eb4fULL
#define HK2 0x165667b19e3779f9ULL
#define HK3 0xd6e8feb86659fd93ULL

/* 64x64 -> 128 multiply, folded by xor of the halves. */
static inline uint64_t mulfold(uint64_t a, uint64_t b)
{
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* Little-endian loads on every host, so values do not depend on the machine. */
static inline uint64_t ld64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint64_t ld32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

uint64_t hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    size_t n = len;
    uint64_t h = seed ^ mulfold(seed ^ HK0, (uint64_t)len ^ HK1);
    /* Known limit, kept for value stability (features hashed into trained models depend on it): an
     * operand can be zeroed whatever the seed, erasing the state so far - a block whose first word
     * is HK1 (its bytes are not valid UTF-8, so no id that went through JSON), or a key of length L
     * whose last 8 bytes equal HK2 ^ L*HK3 (valid UTF-8 only for L = 398, above the API's id limit
     * of 256). Such keys collide whatever the seed; a stronger variant mixes h into both operands
     * of every step, with different rotations (values change, so only before models depend on
     * them). */
    while (n > 16) {
        h = mulfold(ld64(p) ^ HK1, ld64(p + 8) ^ h ^ HK2);
        p += 16;
        n -= 16;
    }
    /* 0..16 bytes left: overlapping loads cover them; with len mixed in below, distinct tails of a
     * given length give distinct (a, b). */
    uint64_t a = 0, b = 0;
    if (n >= 8) {
        a = ld64(p);
        b = ld64(p + n - 8);
    } else if (n >= 4) {
        a = ld32(p);
        b = ld32(p + n - 4);
    } else if (n > 0) {
        a = ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1];
    }
    h = mulfold(a ^ HK1 ^ h, b ^ HK2 ^ ((uint64_t)len * HK3));
    return hash_fmix64(h ^ (uint64_t)len);
}

uint64_t hash_str(const char *s, uint64_t seed)
{
    return hash64(s, strlen(s), seed);
}

uint64_t hash_u64(uint64_t x, uint64_t seed)
{
    return hash_fmix64(x ^ hash_fmix64(seed + HK0));
}

uint64_t hash_bucket(const char *s, size_t len, uint64_t seed, uint64_t n)
{
    return hash_reduce(hash64(s, len, seed), n);
}

uint64_t hash_combine(uint64_t h, const void *data, size_t len)
{
    /* The running value becomes the seed of the next field; the per-field length inside hash64
     * keeps field boundaries apart, the extra constant keeps a 1-tuple distinct from a plain
     * hash64. */
    return hash64(data, len, h ^ HK3);
}

uint64_t hash_tuple(const char *const *parts, const size_t *lens, size_t n, uint64_t seed)
{
    uint64_t h = seed;
    for (size_t i = 0; i < n; i++)
        h = hash_combine(h, parts[i], lens ? lens[i] : strlen(parts[i]));
    return h;
}

/* ---- SipHash-2-4 (Aumasson and Bernstein, 2012), from the paper's description ---- */
#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND(v0, v1, v2, v3)                                                              \
    do {                                                                                       \
        v0 += v1;                                                                              \
        v1 = SIP_ROTL(v1, 13);                                                                 \
        v1 ^= v0;                                                                              \
        v0 = SIP_ROTL(v0, 32);                                                                 \
        v2 += v3;                                                                              \
        v3 = SIP_ROTL(v3, 16);                                                                 \
        v3 ^= v2;                                                                              \
        v0 += v3;                                                                              \
        v3 = SIP_ROTL(v3, 21);                                                                 \
        v3 ^= v0;                                                                              \
        v2 += v1;                                                                              \
        v1 = SIP_ROTL(v1, 17);                                                                 \
        v1 ^= v2;                                                                              \
        v2 = SIP_ROTL(v2, 32);                                                                 \
    } while (0)

uint64_t hash_sip24(const void *data, size_t len, const uint64_t key[2])
{
    const unsigned char *p = data;
    uint64_t v0 = 0x736f6d6570736575ULL ^ key[0], v1 = 0x646f72616e646f6dULL ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ key[0], v3 = 0x7465646279746573ULL ^ key[1];
    size_t n = len;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t m = ld64(p);
        v3 ^= m;
        SIP_ROUND(v0, v1, v2, v3);
        SIP_ROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < n; i++) b |= (uint64_t)p[i] << (8 * i);
    v3 ^= b;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    for (int i = 0; i < 4; i++) SIP_ROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}
