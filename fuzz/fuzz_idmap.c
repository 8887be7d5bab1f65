/* fuzz/fuzz_idmap.c - libFuzzer target: arbitrary byte keys -> core/idmap, checked against a naive
 * shadow (a list of the keys and a quadratic comparison).
 *
 * Build: make fuzz (clang), then run e.g.
 *     build-fuzz/bin/fuzz_idmap -max_total_time=60 -max_len=8192
 * Input layout: byte 0 is the capacity hint; then records of one length byte L followed by L key
 * bytes (a short final record takes what is left). A length byte of 255 asks for an over-long key
 * (IDMAP_MAX_KEY + 1 bytes of the input repeated), which must be refused without changing the map.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_KEYS = 512 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    idmap *m = idmap_new(data[0]);
    if (!m) return 0;
    static const char *keys[MAX_KEYS];
    static size_t lens[MAX_KEYS];
    static int64_t idx[MAX_KEYS];
    static char big[IDMAP_MAX_KEY + 1];
    int n = 0;
    size_t p = 1;
    while (p < size && n < MAX_KEYS) {
        size_t L = data[p++];
        if (L == 255) {
            for (size_t i = 0; i < sizeof big; i++)
                big[i] = (char)data[i % size];
            size_t before = idmap_size(m);
            if (idmap_intern(m, big, sizeof big) != -1) abort();
            if (idmap_size(m) != before) abort();
            continue;
        }
        if (L > size - p) L = size - p;
        keys[n] = (const char *)data + p;
        lens[n] = L;
        p += L;
        idx[n] = idmap_intern(m, keys[n], lens[n]);
        if (idx[n] < 0) abort();
        n++;
    }
    /* indices equal exactly when the keys are equal; dense numbering in first-insertion order */
    int64_t next = 0;
    for (int i = 0; i < n; i++) {
        int64_t first = -1;
        for (int j = 0; j < i && first < 0; j++)
            if (lens[j] == lens[i] && memcmp(keys[j], keys[i], lens[i]) == 0) first = idx[j];
        if (first >= 0 ? idx[i] != first : idx[i] != next++) abort();
        if (idmap_find(m, keys[i], lens[i]) != idx[i]) abort();
        size_t kl;
        const char *k = idmap_key(m, idx[i], &kl);
        if (!k || kl != lens[i] || memcmp(k, keys[i], kl) != 0 || k[kl] != '\0') abort();
    }
    if ((int64_t)idmap_size(m) != next) abort();
    if (idmap_key(m, next, NULL) != NULL) abort();
    idmap_free(m);
    return 0;
}
