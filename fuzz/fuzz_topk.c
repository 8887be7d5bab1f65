/* fuzz/fuzz_topk.c - libFuzzer target: arbitrary scores (any float bit pattern: NaN, inf, -0,
 * ties), k and exclusions -> core/topk, checked against a naive selection.
 *
 * Build: make fuzz (clang), then run e.g.
 *     build-fuzz/bin/fuzz_topk -max_total_time=60 -max_len=8192
 * Input layout: byte 0 = k (0..255), byte 1 = number of excluded ids (each taken from the next 2
 * bytes, modulo n + 2 so some are out of range), byte 2 bit 0 = ids sorted first, bit 1 = also a
 * bitmap excluding every index divisible by 3; the rest are the scores as raw 4-byte floats.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/topk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    int k = data[0], n_ids = data[1], flags = data[2];
    size_t p = 3;
    int32_t ids[256];
    int got_ids = (size - p) / 2 < (size_t)n_ids ? (int)((size - p) / 2) : n_ids;
    int n = (int)((size - p - 2 * (size_t)got_ids) / 4); /* scores after the ids */
    for (int j = 0; j < got_ids; j++, p += 2)
        ids[j] = (int32_t)((data[p] | (data[p + 1] << 8)) % (n + 2));
    float *s = malloc(sizeof(float) * (size_t)(n ? n : 1));
    memcpy(s, data + p, sizeof(float) * (size_t)n);
    if (flags & 1) qsort(ids, (size_t)got_ids, sizeof ids[0], cmp_i32);
    uint64_t bits[(8192 / 4 + 63) / 64 + 1] = {0};
    for (int i = 0; i < n; i += 3)
        bits[i >> 6] |= 1ULL << (i & 63);
    topk_exclude ex = {.ids = ids,
                       .n_ids = got_ids,
                       .ids_sorted = flags & 1,
                       .bits = (flags & 2) ? bits : NULL,
                       .n_bits = (flags & 2) ? n : 0};

    int32_t out[256];
    float os[256];
    int r = topk_select(s, n, k, &ex, out, os);
    if (r < 0 || r > k) abort();

    /* naive: repeatedly take the best remaining eligible (score desc, index asc) */
    char *used = calloc((size_t)(n ? n : 1), 1);
    int want = 0;
    for (; want < k; want++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            if (used[i] || !(s[i] > -INFINITY) || topk_is_excluded(&ex, i)) continue;
            if (best < 0 || s[i] > s[best]) best = i;
        }
        if (best < 0) break;
        used[best] = 1;
        if (want >= r || out[want] != best) abort();
        if (memcmp(&os[want], &s[best], sizeof(float)) != 0) abort();
    }
    if (want != r) abort();
    free(used);
    free(s);
    return 0;
}
