/* bench/score_bench.c - the item-scoring kernels of core/itemscore.h on a real GRU4Rec snapshot (its Wy/By,
 * through the `next` table's item_matrix): speed per batch size, and what the bf16 item matrix costs in
 * accuracy on real test sessions.
 *
 *   cc -O2 -I. bench/score_bench.c obj/librecd.a $(pkg-config --libs openblas libmicrohttpd jansson lmdb
 *      libuv zlib) -lm -pthread -o score_bench
 *   score_bench SNAPSHOT_DIR TEST.tsv [SESSIONS]
 * Prints, for each kernel, the median (of 7) thread CPU time of one scoring call for B = 1..32 states,
 * then replays up to SESSIONS (default 3000) test sessions (GRU4Rec protocol: every click after the
 * first is predicted from the clicks before it) with the f32 and the bf16 item matrix: Recall@20 and
 * MRR@20 of each, and the mean overlap of their top-20 lists (also for the int8 item matrix and the
 * avx512bf16 kernel).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/itemscore.h"
#include "core/snap.h"
#include "core/topk.h"
#include "models/gru4rec.h"
#include "models/model.h"

static double cpu_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: score_bench SNAPSHOT_DIR TEST.tsv [SESSIONS]\n");
        return 2;
    }
    int max_sessions = argc > 3 ? atoi(argv[3]) : 3000;
    snap *s;
    gru4rec *g;
    if (snap_open(&s, argv[1]) != RC_OK || gru4rec_load(&g, s) != RC_OK) {
        fprintf(stderr, "score_bench: %s\n", rc_errmsg());
        return 1;
    }
    size_t N = (size_t)gru4rec_n_items(g), S = gru4rec_state_size(g);
    const model_type *type = model_type_find("gru4rec");
    model_item_matrix im;
    if (!type || !type->next || !type->next->item_matrix || type->next->item_matrix(g, &im) != RC_OK) {
        fprintf(stderr, "score_bench: no item matrix: %s\n", rc_errmsg());
        return 1;
    }
    const size_t off = im.q_offset; /* the queries are the last layer's slice of each state */
    printf("snapshot %s: N=%zu S=%zu\n", argv[1], N, S);
    float *h = malloc(32 * S * sizeof(float)), *out = malloc(32 * N * sizeof(float));
    for (size_t i = 0; i < 32 * S; i++) h[i] = (float)((i * 2654435761u) % 2000) / 1000.0f - 1.0f;
    gru4rec_scratch *gs = gru4rec_scratch_new(g, 32);
    const itemscore_kernel ks[] = {ITEMSCORE_BLAS,   ITEMSCORE_AVX2,   ITEMSCORE_AVX2,       ITEMSCORE_AVX2,
                                   ITEMSCORE_AVX512, ITEMSCORE_AVX512, ITEMSCORE_AVX512BF16, ITEMSCORE_AVX512};
    const itemscore_dtype bfs[] = {ITEMSCORE_F32, ITEMSCORE_F32,  ITEMSCORE_BF16, ITEMSCORE_INT8,
                                   ITEMSCORE_F32, ITEMSCORE_BF16, ITEMSCORE_BF16, ITEMSCORE_INT8};
    const char *const dtn[] = {"f32", "bf16", "int8"};
    const int Bs[] = {1, 2, 4, 8, 16, 32};
    printf("%-16s", "kernel");
    for (int b = 0; b < 6; b++) printf("   B=%-2d us (/state)", Bs[b]);
    printf("\n");
    for (int k = 0; k < 8; k++) {
        itemscore *sc = itemscore_new(im.w, im.bias, im.n, im.d, ks[k], bfs[k]);
        if (!sc || itemscore_kernel_of(sc) != ks[k] || itemscore_dtype_of(sc) != bfs[k]) {
            itemscore_free(sc);
            continue;
        }
        printf("%-11s%-5s", itemscore_kernel_name(ks[k]), dtn[bfs[k]]);
        for (int b = 0; b < 6; b++) {
            double t[7];
            for (int r = 0; r < 7; r++) {
                double c = cpu_us();
                for (int i = 0; i < 10; i++) itemscore_score(sc, h + off, S, Bs[b], out);
                t[r] = (cpu_us() - c) / 10;
            }
            qsort(t, 7, sizeof t[0], cmp_d);
            printf("   %6.0f (%5.1f)  ", t[3], t[3] / Bs[b]);
        }
        printf("\n");
        itemscore_free(sc);
    }

    /* Accuracy on test sessions: f32 (the auto kernel) against its bf16 twin. */
    itemscore *f = itemscore_new(im.w, im.bias, im.n, im.d, ITEMSCORE_AUTO, ITEMSCORE_F32);
    itemscore *bf = itemscore_new(im.w, im.bias, im.n, im.d, ITEMSCORE_AUTO, ITEMSCORE_BF16);
    itemscore *dp = itemscore_new(im.w, im.bias, im.n, im.d, ITEMSCORE_AVX512BF16, ITEMSCORE_BF16);
    itemscore *q8 = itemscore_new(im.w, im.bias, im.n, im.d, ITEMSCORE_AUTO, ITEMSCORE_INT8);
    if (!f || !bf || !dp || !q8) {
        fprintf(stderr, "score_bench: %s\n", rc_errmsg());
        return 1;
    }
    int have_q8 = itemscore_dtype_of(q8) == ITEMSCORE_INT8;
    int have_dp = itemscore_kernel_of(dp) == ITEMSCORE_AVX512BF16;
    FILE *in = fopen(argv[2], "r");
    if (!in) {
        perror(argv[2]);
        return 1;
    }
    const idmap *items = gru4rec_items(g);
    char line[1024], prev[256] = "";
    float *st = calloc(S, sizeof(float)), *sf = malloc(N * sizeof(float)), *sb = malloc(N * sizeof(float));
    int32_t topf[20], topb[20], topd[20], *cand = malloc(N * sizeof(int32_t));
    float *cval = malloc(N * sizeof(float));
    long n_pred = 0, hit_f = 0, hit_b = 0, hit_d = 0, hit_q = 0, sessions = 0, overlap = 0, overlap_d = 0,
         overlap_q = 0;
    double mrr_f = 0, mrr_b = 0, mrr_d = 0, mrr_q = 0;
    int have_prev_item = 0;
    while (fgets(line, sizeof line, in)) {
        char *t1 = strchr(line, '\t');
        if (!t1) continue;
        char *t2 = strchr(t1 + 1, '\t');
        if (!t2) t2 = t1 + 1 + strcspn(t1 + 1, "\r\n");
        *t1 = '\0';
        int64_t item = idmap_find(items, t1 + 1, (size_t)(t2 - t1 - 1));
        if (strcmp(line, prev) != 0) {
            if (++sessions > max_sessions) break;
            snprintf(prev, sizeof prev, "%.255s", line);
            memset(st, 0, S * sizeof(float));
            have_prev_item = 0;
        }
        if (item < 0) continue;
        if (have_prev_item) { /* predict this click from the state so far */
            itemscore_score(f, st + off, S, 1, sf);
            itemscore_score(bf, st + off, S, 1, sb);
            int nf = topk_select(sf, (int64_t)N, 20, NULL, topf, NULL);
            int nb = topk_select(sb, (int64_t)N, 20, NULL, topb, NULL);
            n_pred++;
            for (int i = 0; i < nf; i++)
                if (topf[i] == item) hit_f++, mrr_f += 1.0 / (i + 1);
            for (int i = 0; i < nb; i++)
                if (topb[i] == item) hit_b++, mrr_b += 1.0 / (i + 1);
            for (int i = 0; i < nf; i++)
                for (int j = 0; j < nb; j++)
                    if (topf[i] == topb[j]) overlap++;
            if (have_q8) { /* as the server answers: candidates from int8, re-ranked with f32 rows */
                itemscore_score(q8, st + off, S, 1, sb);
                int nd = itemscore_topk(q8, sb, st + off, 20, NULL, topd, NULL, cand, cval);
                for (int i = 0; i < nd; i++)
                    if (topd[i] == item) hit_q++, mrr_q += 1.0 / (i + 1);
                for (int i = 0; i < nf; i++)
                    for (int j = 0; j < nd; j++)
                        if (topf[i] == topd[j]) overlap_q++;
            }
            if (have_dp) {
                itemscore_score(dp, st + off, S, 1, sb);
                int nd = topk_select(sb, (int64_t)N, 20, NULL, topd, NULL);
                for (int i = 0; i < nd; i++)
                    if (topd[i] == item) hit_d++, mrr_d += 1.0 / (i + 1);
                for (int i = 0; i < nf; i++)
                    for (int j = 0; j < nd; j++)
                        if (topf[i] == topd[j]) overlap_d++;
            }
        }
        int32_t it = (int32_t)item;
        gru4rec_step(g, st, &it, 1, gs);
        have_prev_item = 1;
    }
    fclose(in);
    if (n_pred)
        printf("accuracy on %ld predictions (%ld sessions): f32 recall@20=%.4f mrr@20=%.4f | bf16 recall@20=%.4f "
               "mrr@20=%.4f | top-20 overlap %.4f\n",
               n_pred, sessions - 1, (double)hit_f / n_pred, mrr_f / n_pred, (double)hit_b / n_pred, mrr_b / n_pred,
               (double)overlap / (20.0 * n_pred));
    if (n_pred && have_dp)
        printf("avx512bf16 (states in bf16 too): recall@20=%.4f mrr@20=%.4f | top-20 overlap with f32 %.4f\n",
               (double)hit_d / n_pred, mrr_d / n_pred, (double)overlap_d / (20.0 * n_pred));
    if (n_pred && have_q8)
        printf("int8 item matrix (per-item scale), %d candidates re-ranked in f32: recall@20=%.4f mrr@20=%.4f | "
               "top-20 overlap with f32 %.4f\n",
               itemscore_candidates(q8, 20), (double)hit_q / n_pred, mrr_q / n_pred, (double)overlap_q / (20.0 * n_pred));
    itemscore_free(q8);
    free(cand);
    free(cval);
    itemscore_free(dp);
    itemscore_free(f);
    itemscore_free(bf);
    gru4rec_scratch_free(gs);
    gru4rec_free(g);
    snap_close(s);
    free(h);
    free(out);
    free(st);
    free(sf);
    free(sb);
    return 0;
}
