/* core/hash.h - 64-bit hashing of byte strings: hash tables, feature hashing, crossed features,
 * experiment assignment.
 *
 * The construction: 16-byte blocks are folded into the state with a 64x64->128 multiply whose two
 * halves are xor-ed ("multiply-fold"), the tail is read with overlapping loads, the length is mixed
 * in, and the result goes through the MurmurHash3 64-bit finaliser. Keys are read as little-endian
 * words on every machine, so a given (bytes, seed) gives the same value everywhere and forever:
 * snapshots and experiment assignments may depend on these values (the tests pin golden values).
 * Not cryptographic: do not use where an adversary chooses keys to collide on purpose.
 *
 * All functions are pure: thread-safe, no allocation, no errors. `data` may be NULL when len == 0.
 */
#ifndef RECD_HASH_H
#define RECD_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Hash of data[0..len) under seed. Different seeds give independent-looking functions. */
uint64_t hash64(const void *data, size_t len, uint64_t seed);

/* SipHash-2-4 of data[0..len) under a 128-bit secret key (key[0] = its first 8 bytes read little-endian):
 * a keyed pseudo-random function, for tables whose keys come from clients (the session store): without
 * the key, nobody can choose keys that collide. About 3x slower than hash64 on short keys. Matches the
 * paper's test vectors. */
uint64_t hash_sip24(const void *data, size_t len, const uint64_t key[2]);

/* Hash of a NUL-terminated string (same as hash64(s, strlen(s), seed)). */
uint64_t hash_str(const char *s, uint64_t seed);

/* Hash of a 64-bit integer under seed; a bijection of x for a fixed seed (no collisions). */
uint64_t hash_u64(uint64_t x, uint64_t seed);

/* MurmurHash3's 64-bit finaliser: a bijection of h with full avalanche. The last step of hash64 and
 * of snap_checksum (their golden values pin it). */
static inline uint64_t hash_fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Map a 64-bit hash to [0, n) by multiply-shift ((h * n) >> 64): uses the high bits, no division.
 * Bias at most n / 2^64. n == 0 returns 0. */
static inline uint64_t hash_reduce(uint64_t h, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)h * n) >> 64);
}

/* Bucket of s[0..len) in [0, n) under seed: hash_reduce(hash64(s, len, seed), n). n == 0 returns 0.
 */
uint64_t hash_bucket(const char *s, size_t len, uint64_t seed, uint64_t n);

/* Extend a running tuple hash h by one more field data[0..len). A tuple hash starts from its seed:
 *     uint64_t h = seed; h = hash_combine(h, "country", 7); h = hash_combine(h, "de", 2);
 * Order-sensitive and boundary-sensitive: ("ab","c") and ("a","bc") hash differently, and so do
 * ("a") and ("a",""). Equivalent to hash_tuple over the same fields. */
uint64_t hash_combine(uint64_t h, const void *data, size_t len);

/* Hash of the tuple of n fields parts[i][0..lens[i]) under seed (crossed features such as
 * "gender x occupation"): the hash_combine chain started from seed. lens == NULL means every part
 * is NUL-terminated. n == 0 returns seed itself. */
uint64_t hash_tuple(const char *const *parts, const size_t *lens, size_t n, uint64_t seed);

#endif
