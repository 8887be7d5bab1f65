/* bench/score_bench.c - the item-scoring kernels of server/score.h on a real snapshot: speed per batch
 * size, and what the bf16 item matrix costs in accuracy on real test sessions.
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
#include "core/snap.h"
#include "core/topk.h"
#include "models/gru4rec.h"
#include "server/score.h"

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
    printf("snapshot %s: N=%zu S=%zu\n", argv[1], N, S);
    float *h = malloc(32 * S * sizeof(float)), *out = malloc(32 * N * sizeof(float));
    for (size_t i = 0; i < 32 * S; i++) h[i] = (float)((i * 2654435761u) % 2000) / 1000.0f - 1.0f;
    gru4rec_scratch *gs = gru4rec_scratch_new(g, 32);
    const score_kernel ks[] = {SCORE_BLAS,   SCORE_AVX2,   SCORE_AVX2,       SCORE_AVX2,
                               SCORE_AVX512, SCORE_AVX512, SCORE_AVX512BF16, SCORE_AVX512};
    const int bfs[] = {0, 0, 1, 2, 0, 1, 1, 2};
    const char *const dtn[] = {"f32", "bf16", "int8"};
    const int Bs[] = {1, 2, 4, 8, 16, 32};
    printf("%-16s", "kernel");
    for (int b = 0; b < 6; b++) printf("   B=%-2d us (/state)", Bs[b]);
    printf("\n");
    for (int k = 0; k < 8; k++) {
        scorer *sc = scorer_new(s, g, ks[k], bfs[k]);
        if (scorer_kernel(sc) != ks[k] || scorer_bf16(sc) != bfs[k]) {
            scorer_free(sc);
            continue;
        }
        printf("%-11s%-5s", score_kernel_name(ks[k]), dtn[bfs[k]]);
        for (int b = 0; b < 6; b++) {
            double t[7];
            for (int r = 0; r < 7; r++) {
                double c = cpu_us();
                for (int i = 0; i < 10; i++) scorer_score(sc, h, Bs[b], out, gs);
                t[r] = (cpu_us() - c) / 10;
            }
            qsort(t, 7, sizeof t[0], cmp_d);
            printf("   %6.0f (%5.1f)  ", t[3], t[3] / Bs[b]);
        }
        printf("\n");
        scorer_free(sc);
    }

    /* Accuracy on test sessions: f32 (the auto kernel) against its bf16 twin. */
    scorer *f = scorer_new(s, g, SCORE_AUTO, 0), *bf = scorer_new(s, g, SCORE_AUTO, 1);
    scorer *dp = scorer_new(s, g, SCORE_AVX512BF16, 1), *q8 = scorer_new(s, g, SCORE_AUTO, 2);
    int have_q8 = scorer_bf16(q8) == 2;
    int have_dp = scorer_kernel(dp) == SCORE_AVX512BF16;
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
            scorer_score(f, st, 1, sf, gs);
            scorer_score(bf, st, 1, sb, gs);
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
                scorer_score(q8, st, 1, sb, gs);
                int nc = scorer_candidates(q8, 20), nd = nc < 20 ? nc : 20;
                nc = topk_select(sb, (int64_t)N, nc, NULL, cand, NULL);
                scorer_rescore(q8, st, cand, nc, cval);
                nd = topk_select(cval, nc, 20, NULL, topd, NULL);
                for (int i = 0; i < nd; i++) topd[i] = cand[topd[i]];
                for (int i = 0; i < nd; i++)
                    if (topd[i] == item) hit_q++, mrr_q += 1.0 / (i + 1);
                for (int i = 0; i < nf; i++)
                    for (int j = 0; j < nd; j++)
                        if (topf[i] == topd[j]) overlap_q++;
            }
            if (have_dp) {
                scorer_score(dp, st, 1, sb, gs);
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
               scorer_candidates(q8, 20), (double)hit_q / n_pred, mrr_q / n_pred, (double)overlap_q / (20.0 * n_pred));
    scorer_free(q8);
    free(cand);
    free(cval);
    scorer_free(dp);
    scorer_free(f);
    scorer_free(bf);
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
