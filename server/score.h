/* server/score.h - scoring session states against every item, the server's hot loop.
 *
 * A GRU4Rec score is scores[b][i] = h_last[b] . Wy[i] + By[i] (h_last = the last layer's slice of the
 * state; Wy (N,H) and By (N) from the snapshot). gru4rec_score does it with one OpenBLAS sgemm, which
 * repacks all of Wy (10.7 MB for 11.9k x 224) on every call and takes no gemv path for B=1. The
 * scorer packs Wy ONCE, when a version loads, into blocks of 64 (AVX-512) or 16 (AVX2) items laid out
 * k-major, and a register-tiled kernel (up to 6 states x 64 items of accumulators) streams each block
 * once per batch: no per-call packing, no horizontal sums. Optionally the packed copy is bf16 (half
 * the bytes; scores move by ~1e-3 relative: see bench/score_bench.c for the measured accuracy).
 * Or int8 with a scale per item (a quarter of the bytes: a lone request scores in half the time of
 * bf16); approximate scorers pick candidates that scorer_rescore re-ranks with the exact f32 rows, so
 * the answer keeps f32 scores and order (measured: bench/score_bench.c).
 * Memory: the packed copy is N*H*4 bytes (f32), N*H*2 (bf16) or N*(H+4) (int8) per loaded version.
 * A scorer is validated against gru4rec_score on random states when it is built: if they differ
 * (another state layout, another dtype), it falls back to gru4rec_score.
 *
 * Glossary: N items, H units of the last layer, S state floats per session, B states scored together.
 */
#ifndef RECD_SCORE_H
#define RECD_SCORE_H

#include <stddef.h>

#include "core/snap.h"
#include "models/gru4rec.h"

typedef enum { SCORE_AUTO = 0, SCORE_BLAS, SCORE_AVX2, SCORE_AVX512, SCORE_AVX512BF16 } score_kernel;

typedef struct scorer scorer;

/* Parse "auto" | "blas" | "avx2" | "avx512" | "avx512bf16"; -1 if unknown. Name of a kernel.
 * avx512bf16 (vdpbf16ps, two k per instruction) always reads bf16 and also rounds the states to bf16;
 * auto never picks it. */
int score_kernel_parse(const char *name);
const char *score_kernel_name(score_kernel k);

/* Build the scorer of model g loaded from snapshot s (both must outlive it). kernel: SCORE_AUTO picks
 * the widest kernel the CPU runs; bf16: score from a bf16 (1) or int8 (2: per-item scale max|w|/127;
 * AVX2/AVX-512 kernels; not with avx512bf16, which is always bf16) packed copy of Wy instead of f32 (0).
 * Falls back to SCORE_BLAS (gru4rec_score) when Wy/By are not plain f32 tensors of the expected shape or
 * the kernel disagrees with gru4rec_score by more than 1e-3 (f32) / 5e-2 (bf16, int8) on random states.
 * NULL on ENOMEM (message set). */
scorer *scorer_new(const snap *s, const gru4rec *g, score_kernel kernel, int bf16);
void scorer_free(scorer *sc); /* NULL is a no-op */
/* The kernel in use after validation, and the element type of its item matrix: 0 f32, 1 bf16, 2 int8. */
score_kernel scorer_kernel(const scorer *sc);
int scorer_bf16(const scorer *sc);

/* Exact ranking on top of an approximate matrix. scorer_approx: 1 when scorer_score reads a bf16 or
 * int8 copy (its scores are approximate), 0 for f32 and the BLAS fallback. scorer_candidates: how many
 * of the best approximate scores to re-rank to return the best k (k for exact scorers, k+k/2+8 for int8,
 * k+8 for bf16; at most N: on the Globo models, H=100 and H=224, 24 candidates already gave the f32 top-20
 * on 5,233 test predictions). scorer_rescore: exact f32 scores h_last . Wy[i] + By[i] (the snapshot's
 * own f32 Wy, as gru4rec_score) of the n items idx for ONE state h (S), into out (n). Thread-safe, no
 * allocation; only for approximate scorers. */
int scorer_approx(const scorer *sc);
int scorer_candidates(const scorer *sc, int k);
void scorer_rescore(const scorer *sc, const float *h, const int32_t *idx, int n, float *out);

/* Scores of all N items for B states: h is (B,S), scores is (B,N). gs is the caller's gru4rec scratch
 * (used by the BLAS fallback). Thread-safe, no allocation. */
void scorer_score(const scorer *sc, const float *h, int B, float *scores, gru4rec_scratch *gs);
/* Part `part` of nparts of the same work (disjoint item ranges, so threads may run the parts at once
 * on the same scores buffer). With the BLAS fallback part 0 does everything and the others nothing.
 * scorer_splittable says whether parts really divide the work. */
void scorer_score_part(const scorer *sc, const float *h, int B, float *scores, gru4rec_scratch *gs, int part,
                       int nparts);
int scorer_splittable(const scorer *sc);

#endif
