/* tests/test_itemscore.c - the packed item-matrix scorer (core/itemscore.h) against its naive
 * reference, and its BLAS path against gru4rec_score bit for bit. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"
#include "core/itemscore.h"
#include "core/rng.h"
#include "core/topk.h"
#include "models/gru4rec.h"
#include "models/model.h"
#include "tests/testlib.h"

static const itemscore_kernel all_kernels[] = {ITEMSCORE_BLAS, ITEMSCORE_AVX2, ITEMSCORE_AVX512, ITEMSCORE_AVX512BF16,
                                               ITEMSCORE_AUTO};

static int cpu_avx2(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static int cpu_avx512(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

static float *rand_floats(size_t n, uint64_t seed, float scale)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    ASSERT(p);
    rng_t r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) p[i] = scale * (2 * rng_uniformf(&r) - 1);
    return p;
}

/* Every kernel (f32, bf16, int8) against itemscore_score_ref, for batch sizes around the 6-query
 * tile, item counts that leave a remainder of the 16 / 64 blocks, odd D, queries that are slices of
 * longer rows (q_stride > D), with and without a bias. */
TEST(itemscore_kernels_match_ref)
{
    const int shapes[][2] = {{37, 16}, {64, 32}, {30, 8}, {131, 7}, {1, 5}, {203, 33}, {0, 4}};
    for (int sh = 0; sh < 7; sh++) {
        const int64_t N = shapes[sh][0];
        const int D = shapes[sh][1];
        const size_t ld = (size_t)D + 3; /* each query sits at offset 2 of a row of D+3 floats */
        float *w = rand_floats((size_t)N * (size_t)D, 100 + (uint64_t)sh, 0.5f);
        float *bias = rand_floats((size_t)N, 200 + (uint64_t)sh, 0.3f);
        float *q = rand_floats(9 * ld, 300 + (uint64_t)sh, 1.0f);
        float *a = malloc((9 * (size_t)N + 1) * sizeof(float)), *b = malloc(((size_t)N + 1) * sizeof(float));
        float *c = malloc((9 * (size_t)N + 1) * sizeof(float));
        ASSERT(a && b && c);
        for (int nb = 0; nb < 2; nb++) {
            const float *bs = nb ? NULL : bias; /* bias NULL = zeros */
            for (int ki = 0; ki < 5; ki++)
                for (int dt = 0; dt < 3; dt++) {
                    itemscore *s = itemscore_new(w, bs, N, D, all_kernels[ki], (itemscore_dtype)dt);
                    ASSERT(s != NULL);
                    ASSERT_EQ(itemscore_n(s), N);
                    ASSERT_EQ(itemscore_d(s), D);
                    itemscore_kernel k = itemscore_kernel_of(s);
                    ASSERT(k != ITEMSCORE_AUTO);
                    if (k == ITEMSCORE_BLAS) ASSERT_EQ(itemscore_dtype_of(s), ITEMSCORE_F32);
                    if (k == ITEMSCORE_AVX512BF16) ASSERT_EQ(itemscore_dtype_of(s), ITEMSCORE_BF16);
                    /* a kernel the CPU runs passes validation on these matrices (no silent
                     * fallback) */
                    if (all_kernels[ki] == ITEMSCORE_AVX2 && cpu_avx2()) ASSERT_EQ(k, ITEMSCORE_AVX2);
                    if (all_kernels[ki] == ITEMSCORE_AVX512 && cpu_avx512()) ASSERT_EQ(k, ITEMSCORE_AVX512);
                    for (int B = 1; B <= 9; B++) {
                        itemscore_score(s, q + 2, ld, B, a);
                        double tol = k == ITEMSCORE_AVX512BF16 ? 6e-2 : itemscore_dtype_of(s) ? 3e-2 : 1e-4;
                        for (int r = 0; r < B; r++) {
                            itemscore_score_ref(w, bs, N, D, q + 2 + (size_t)r * ld, b);
                            for (int64_t i = 0; i < N; i++)
                                if (fabs(a[(size_t)r * (size_t)N + (size_t)i] - b[i]) > tol * (1 + fabs(b[i])))
                                    FAIL("kernel %s dtype %s N=%lld D=%d bias=%d B=%d: score "
                                         "[%d][%lld] is %g, the "
                                         "reference says %g",
                                         itemscore_kernel_name(k), itemscore_dtype_name(itemscore_dtype_of(s)),
                                         (long long)N, D, !nb, B, r, (long long)i, a[(size_t)r * (size_t)N + (size_t)i],
                                         b[i]);
                        }
                        /* three parts on one buffer: the same scores, bit for bit */
                        memset(c, 0xff, 9 * (size_t)N * sizeof(float));
                        for (int p = 0; p < 3; p++) itemscore_score_part(s, q + 2, ld, B, c, p, 3);
                        ASSERT(memcmp(a, c, (size_t)B * (size_t)N * sizeof(float)) == 0);
                    }
                    ASSERT_EQ(itemscore_splittable(s), k != ITEMSCORE_BLAS);
                    /* Re-ranking: candidates bounded by N, exact f32 scores for an approximate
                     * matrix. */
                    int kc = itemscore_candidates(s, 5);
                    ASSERT(kc >= (int)(5 < N ? 5 : N) && kc <= (int)N);
                    ASSERT_EQ(itemscore_approx(s), itemscore_dtype_of(s) != ITEMSCORE_F32);
                    if (N > 0) {
                        int32_t idx[3] = {0, (int32_t)N - 1, (int32_t)N / 2};
                        float ex[3];
                        itemscore_score_ref(w, bs, N, D, q + 2 + ld, b);
                        itemscore_rescore(s, q + 2 + ld, idx, 3, ex);
                        for (int i = 0; i < 3; i++) ASSERT_NEAR(ex[i], b[idx[i]], 1e-4 * (1 + fabs(b[idx[i]])));
                    }
                    itemscore_free(s);
                }
        }
        free(w);
        free(bias);
        free(q);
        free(a);
        free(b);
        free(c);
    }
}

/* itemscore_topk: candidates from the (approximate) scores, re-ranked in f32, give the exact top-k
 * of the reference with exact scores; excluded items never come back. */
TEST(itemscore_topk_is_exact)
{
    const int64_t N = 1001;
    const int D = 45;
    float *w = rand_floats((size_t)N * D, 7, 0.5f), *bias = rand_floats((size_t)N, 8, 0.2f);
    float *q = rand_floats(16 * (size_t)D, 9, 1.0f);
    float *scores = malloc((size_t)N * sizeof(float)), *ref = malloc((size_t)N * sizeof(float));
    int32_t want[40], got[40], cidx[80];
    float wantv[40], gotv[40], cval[80];
    int32_t ex_ids[3];
    ASSERT(scores && ref);
    for (int ki = 0; ki < 5; ki++)
        for (int dt = 0; dt < 3; dt++) {
            itemscore *s = itemscore_new(w, bias, N, D, all_kernels[ki], (itemscore_dtype)dt);
            ASSERT(s != NULL);
            ASSERT(itemscore_candidates(s, 40) <= 80);
            for (int t = 0; t < 16; t++) {
                const float *qt = q + (size_t)t * D;
                int k = t % 2 ? 20 : 40;
                itemscore_score(s, qt, (size_t)D, 1, scores);
                itemscore_score_ref(w, bias, N, D, qt, ref);
                /* exclude the exact best item and two others */
                ASSERT_EQ(topk_select(ref, N, 1, NULL, ex_ids, NULL), 1);
                ex_ids[1] = 5;
                ex_ids[2] = (int32_t)N - 1;
                topk_exclude ex = {.ids = ex_ids, .n_ids = 3};
                int nw = topk_select(ref, N, k, &ex, want, wantv);
                int ng = itemscore_topk(s, scores, qt, k, &ex, got, gotv, cidx, cval);
                ASSERT_EQ(ng, nw);
                for (int i = 0; i < ng; i++) {
                    ASSERT(!topk_is_excluded(&ex, got[i]));
                    if (got[i] != want[i])
                        FAIL("kernel %s dtype %s query %d: result %d is item %d (%g), exact says "
                             "%d (%g)",
                             itemscore_kernel_name(itemscore_kernel_of(s)), itemscore_dtype_name(itemscore_dtype_of(s)),
                             t, i, got[i], gotv[i], want[i], wantv[i]);
                    ASSERT_NEAR(gotv[i], wantv[i], 1e-4 * (1 + fabs(wantv[i])));
                }
                /* the second half alone, from candidates picked elsewhere */
                if (itemscore_approx(s)) {
                    int nc = topk_select(scores, N, itemscore_candidates(s, k), &ex, cidx, cval);
                    ASSERT_EQ(itemscore_rerank(s, qt, cidx, cval, nc, k, got, NULL), nw);
                    for (int i = 0; i < nw; i++) ASSERT_EQ(got[i], want[i]);
                }
            }
            itemscore_free(s);
        }
    free(w);
    free(bias);
    free(q);
    free(scores);
    free(ref);
}

/* The evaluator's contract: ITEMSCORE_BLAS f32 on a GRU4Rec model's item matrix (the `next` table's
 * item_matrix) gives exactly gru4rec_score's floats, for every batch size. */
TEST(itemscore_blas_bit_identical_to_gru4rec)
{
    idmap *items = idmap_new(0);
    ASSERT(items);
    char key[32];
    for (int i = 0; i < 77; i++) {
        int len = snprintf(key, sizeof key, "it%d", i * 3);
        ASSERT_EQ(idmap_intern(items, key, (size_t)len), i);
    }
    gru4rec_hparams hp;
    gru4rec_hparams_default(&hp);
    hp.n_layers = 2; /* the query is the last layer's slice: q_offset > 0 */
    hp.layers[0] = 12;
    hp.layers[1] = 19;
    hp.batch_size = 4;
    hp.n_sample = 5;
    hp.sample_cache = 50;
    gru4rec *m = NULL;
    ASSERT_OK(gru4rec_new_random(&m, &hp, items, NULL, 5));
    size_t np;
    float *p = gru4rec_params_buf(m, &np); /* By is 0 after init: randomise everything */
    ASSERT(p);
    rng_t r;
    rng_seed(&r, 6);
    for (size_t i = 0; i < np; i++) p[i] += 0.3f * (2 * rng_uniformf(&r) - 1);
    const model_type *t = model_type_find("gru4rec");
    ASSERT(t && t->next && t->next->item_matrix);
    model_item_matrix im;
    ASSERT_OK(t->next->item_matrix(m, &im));
    size_t S = gru4rec_state_size(m), N = (size_t)gru4rec_n_items(m);
    ASSERT_EQ(im.n, (int64_t)N);
    ASSERT_EQ(im.d, 19);
    ASSERT_EQ(im.q_offset, S - 19);
    itemscore *s = itemscore_new(im.w, im.bias, im.n, im.d, ITEMSCORE_BLAS, ITEMSCORE_F32);
    ASSERT(s);
    ASSERT_EQ(itemscore_kernel_of(s), ITEMSCORE_BLAS);
    ASSERT_EQ(itemscore_approx(s), 0);
    float *h = rand_floats(70 * S, 11, 1.0f), *a = malloc(70 * N * sizeof(float)), *b = malloc(70 * N * sizeof(float));
    gru4rec_scratch *gs = gru4rec_scratch_new(m, 70);
    ASSERT(a && b && gs);
    const int Bs[] = {1, 2, 3, 5, 6, 7, 9, 16, 33, 70};
    for (int i = 0; i < 10; i++) {
        int B = Bs[i];
        gru4rec_score(m, h, B, b, gs);
        itemscore_score(s, h + im.q_offset, S, B, a);
        if (memcmp(a, b, (size_t)B * N * sizeof(float)) != 0) FAIL("B=%d: scores differ from gru4rec_score", B);
    }
    /* and the reference agrees up to rounding */
    itemscore_score_ref(im.w, im.bias, im.n, im.d, h + im.q_offset, a);
    for (size_t i = 0; i < N; i++) ASSERT_NEAR(a[i], b[i], 1e-4 * (1 + fabs(b[i])));
    itemscore_free(s);
    gru4rec_scratch_free(gs);
    free(h);
    free(a);
    free(b);
    gru4rec_free(m);
    idmap_free(items);
}

TEST(itemscore_names_and_errors)
{
    for (int k = ITEMSCORE_AUTO; k <= ITEMSCORE_AVX512BF16; k++)
        ASSERT_EQ(itemscore_kernel_parse(itemscore_kernel_name((itemscore_kernel)k)), k);
    for (int d = ITEMSCORE_F32; d <= ITEMSCORE_INT8; d++)
        ASSERT_EQ(itemscore_dtype_parse(itemscore_dtype_name((itemscore_dtype)d)), d);
    ASSERT_EQ(itemscore_kernel_parse("sse"), -1);
    ASSERT_EQ(itemscore_kernel_parse(NULL), -1);
    ASSERT_EQ(itemscore_dtype_parse("f16"), -1);
    ASSERT_STR_EQ(itemscore_kernel_name((itemscore_kernel)42), "?");
    float w[4] = {1, 2, 3, 4};
    ASSERT(itemscore_new(NULL, NULL, 2, 2, ITEMSCORE_AUTO, ITEMSCORE_F32) == NULL);
    ASSERT_CONTAINS(rc_errmsg(), "item scorer");
    ASSERT(itemscore_new(w, NULL, 2, 0, ITEMSCORE_AUTO, ITEMSCORE_F32) == NULL);
    ASSERT(itemscore_new(w, NULL, -1, 2, ITEMSCORE_AUTO, ITEMSCORE_F32) == NULL);
    itemscore_free(NULL);
    /* an exact scorer's top-k without candidate buffers */
    itemscore *s = itemscore_new(w, NULL, 2, 2, ITEMSCORE_BLAS, ITEMSCORE_INT8);
    ASSERT(s);
    ASSERT_EQ(itemscore_dtype_of(s), ITEMSCORE_F32);
    float q[2] = {1, -1}, sc[2];
    int32_t idx[2];
    itemscore_score(s, q, 2, 1, sc);
    ASSERT_EQ(sc[0], -1.0f);
    ASSERT_EQ(itemscore_topk(s, sc, q, 2, NULL, idx, NULL, NULL, NULL), 2);
    ASSERT_EQ(idx[0], 0);
    ASSERT_EQ(itemscore_candidates(s, 0), 0);
    ASSERT_EQ(itemscore_candidates(s, 9), 2);
    itemscore_free(s);
}
