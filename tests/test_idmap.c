#include <stdint.h>
#include <stdio.h>

#include "core/idmap.h"
#include "core/rng.h"
#include "tests/testlib.h"

TEST(idmap_roundtrip)
{
    idmap *m = idmap_new(0);
    ASSERT(m != NULL);
    ASSERT_EQ(idmap_size(m), 0);
    ASSERT_EQ(idmap_find(m, "a", 1), -1);
    ASSERT_EQ(idmap_intern(m, "apple", 5), 0);
    ASSERT_EQ(idmap_intern(m, "banana", 6), 1);
    ASSERT_EQ(idmap_intern(m, "apple", 5), 0); /* existing: same index, no growth */
    ASSERT_EQ(idmap_intern(m, "app", 3), 2);   /* prefix is a different key */
    ASSERT_EQ(idmap_size(m), 3);
    ASSERT_EQ(idmap_find(m, "banana", 6), 1);
    ASSERT_EQ(idmap_find(m, "banan", 5), -1);
    ASSERT_EQ(idmap_find(m, "bananas", 7), -1);
    size_t len = 99;
    const char *k = idmap_key(m, 1, &len);
    ASSERT_EQ(len, 6);
    ASSERT_STR_EQ(k, "banana"); /* NUL-terminated */
    ASSERT(idmap_key(m, 3, NULL) == NULL);
    ASSERT(idmap_key(m, -1, NULL) == NULL);
    ASSERT_STR_EQ(idmap_key(m, 2, NULL), "app");
    /* 16-digit session ids stay strings */
    ASSERT_EQ(idmap_intern(m, "1234567890123456", 16), 3);
    ASSERT_EQ(idmap_find(m, "1234567890123456", 16), 3);
    ASSERT_EQ(idmap_find(m, "1234567890123457", 16), -1);
    idmap_free(m);
    idmap_free(NULL);
}

TEST(idmap_edge_lengths)
{
    idmap *m = idmap_new(4);
    ASSERT(m);
    /* empty key is a valid key, distinct from absent */
    ASSERT_EQ(idmap_find(m, "", 0), -1);
    ASSERT_EQ(idmap_intern(m, "", 0), 0);
    ASSERT_EQ(idmap_find(m, "", 0), 0);
    ASSERT_EQ(idmap_find(m, NULL, 0), 0);
    size_t len = 7;
    ASSERT_STR_EQ(idmap_key(m, 0, &len), "");
    ASSERT_EQ(len, 0);

    char big[IDMAP_MAX_KEY + 1];
    for (int i = 0; i <= IDMAP_MAX_KEY; i++)
        big[i] = (char)('a' + i % 26);
    ASSERT_EQ(idmap_intern(m, big, IDMAP_MAX_KEY), 1);
    ASSERT_EQ(idmap_find(m, big, IDMAP_MAX_KEY), 1);
    ASSERT(memcmp(idmap_key(m, 1, &len), big, IDMAP_MAX_KEY) == 0);
    ASSERT_EQ(len, IDMAP_MAX_KEY);
    rc_clear();
    ASSERT_EQ(idmap_intern(m, big, IDMAP_MAX_KEY + 1), -1);
    ASSERT_CONTAINS(rc_errmsg(), "exceeds");
    ASSERT_EQ(idmap_find(m, big, IDMAP_MAX_KEY + 1), -1);
    ASSERT_EQ(idmap_size(m), 2);
    ASSERT_EQ(idmap_intern(m, NULL, 3), -1);
    ASSERT_EQ(idmap_intern(NULL, "x", 1), -1);
    ASSERT_EQ(idmap_find(NULL, "x", 1), -1);
    ASSERT_EQ(idmap_size(NULL), 0);
    idmap_free(m);
}

TEST(idmap_binary_keys)
{
    /* arbitrary bytes, including NUL and 0xff inside the key, and keys that differ in one byte only
     */
    idmap *m = idmap_new(0);
    ASSERT(m);
    unsigned char k[40];
    for (int v = 0; v < 256; v++) {
        for (int i = 0; i < 40; i++)
            k[i] = (unsigned char)(i * 37);
        k[17] = (unsigned char)v;
        ASSERT_EQ(idmap_intern(m, (const char *)k, sizeof k), v);
    }
    const char a[3] = {'x', '\0', 'y'}, b[3] = {'x', '\0', 'z'};
    ASSERT_EQ(idmap_intern(m, a, 3), 256);
    ASSERT_EQ(idmap_intern(m, b, 3), 257);
    ASSERT_EQ(idmap_intern(m, a, 1), 258); /* "x" alone */
    ASSERT_EQ(idmap_find(m, a, 2), -1);    /* "x\0" */
    for (int v = 0; v < 256; v++) {
        for (int i = 0; i < 40; i++)
            k[i] = (unsigned char)(i * 37);
        k[17] = (unsigned char)v;
        ASSERT_EQ(idmap_find(m, (const char *)k, sizeof k), v);
        size_t len;
        const char *s = idmap_key(m, v, &len);
        ASSERT_EQ(len, 40);
        ASSERT(memcmp(s, k, 40) == 0);
        ASSERT_EQ(s[40], '\0');
    }
    idmap_free(m);
}

/* Many ids with growth from an empty map; every key's index and bytes survive every rehash. */
TEST(idmap_million)
{
    enum { N = 1000000 };
    idmap *m = idmap_new(0);
    ASSERT(m);
    char buf[32];
    for (int i = 0; i < N; i++) {
        int len = snprintf(buf, sizeof buf, "item-%lld", (long long)i * 7919);
        ASSERT_EQ(idmap_intern(m, buf, (size_t)len), i);
    }
    ASSERT_EQ(idmap_size(m), N);
    for (int i = 0; i < N; i++) {
        int len = snprintf(buf, sizeof buf, "item-%lld", (long long)i * 7919);
        ASSERT_EQ(idmap_find(m, buf, (size_t)len), i);
        size_t kl;
        const char *k = idmap_key(m, i, &kl);
        ASSERT_EQ(kl, (size_t)len);
        ASSERT(memcmp(k, buf, kl) == 0);
    }
    /* absent keys */
    for (int i = 0; i < 100000; i++) {
        int len = snprintf(buf, sizeof buf, "item-%lld", (long long)i * 7919 + 1);
        ASSERT_EQ(idmap_find(m, buf, (size_t)len), -1);
    }
    idmap_free(m);
}

/* Random-length random-byte keys, re-interned in shuffled order, with a capacity hint. */
TEST(idmap_random_keys)
{
    enum { N = 50000 };
    rng_t r;
    rng_seed(&r, 77);
    idmap *m = idmap_new(N);
    ASSERT(m);
    static char keys[N][24];
    static size_t lens[N];
    int64_t n = 0;
    for (int i = 0; i < N; i++) {
        lens[i] = 1 + (size_t)rng_below(&r, 23);
        for (size_t j = 0; j < lens[i]; j++)
            keys[i][j] = (char)rng_below(&r, 256);
        int64_t before = (int64_t)idmap_size(m);
        int64_t idx = idmap_intern(m, keys[i], lens[i]);
        ASSERT(idx >= 0);
        if (idx == before) n++;
    }
    ASSERT_EQ((int64_t)idmap_size(m), n);
    int64_t order[N];
    for (int i = 0; i < N; i++)
        order[i] = i;
    rng_shuffle_i64(&r, order, N);
    for (int t = 0; t < N; t++) {
        int i = (int)order[t];
        int64_t idx = idmap_find(m, keys[i], lens[i]);
        ASSERT(idx >= 0);
        ASSERT_EQ(idmap_intern(m, keys[i], lens[i]), idx);
        size_t kl;
        const char *k = idmap_key(m, idx, &kl);
        ASSERT_EQ(kl, lens[i]);
        ASSERT(memcmp(k, keys[i], kl) == 0);
    }
    ASSERT_EQ((int64_t)idmap_size(m), n);
    idmap_free(m);
}

/* Binary keys without any NUL byte (bytes 1..255), of every length 1..64, against one another and
 * against their own prefixes: the stored copy is NUL-terminated after exactly len bytes. */
TEST(idmap_nul_free_binary_keys)
{
    rng_t r;
    rng_seed(&r, 78);
    idmap *m = idmap_new(0);
    ASSERT(m);
    static char keys[64][64];
    for (int l = 1; l <= 64; l++) {
        for (int j = 0; j < l; j++)
            keys[l - 1][j] = (char)(1 + rng_below(&r, 255));
        ASSERT_EQ(idmap_intern(m, keys[l - 1], (size_t)l), l - 1);
    }
    for (int l = 1; l <= 64; l++) {
        ASSERT_EQ(idmap_find(m, keys[l - 1], (size_t)l), l - 1);
        if (l > 1)
            ASSERT_EQ(idmap_find(m, keys[l - 1], (size_t)l - 1),
                      -1); /* fixed seed: no prefix is a key */
        const char *k = idmap_key(m, l - 1, NULL);
        ASSERT_EQ(strlen(k), l); /* usable as a C string */
        ASSERT(memcmp(k, keys[l - 1], (size_t)l) == 0);
    }
    idmap_free(m);
}
