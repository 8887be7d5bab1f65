/* core/itemscore.h - scoring queries against every row of an item matrix, the hot loop of every
 * embedding model (GRU4Rec's Wy, item-kNN, matrix factorisation) in the server and in the
 * evaluator.
 *
 * A score is scores[b][i] = q[b] . w[i] + bias[i] for queries q (B,D) against an item matrix w
 * (N,D) and an optional bias (N). One OpenBLAS sgemm would repack all of w (10.7 MB for 11.9k x
 * 224) on every call and takes no gemv path for B=1. The scorer packs w ONCE, when it is built,
 * into blocks of 64 (AVX-512) or 16 (AVX2) items laid out k-major, and a register-tiled kernel (up
 * to 6 queries x 64 items of accumulators) streams each block once per batch: no per-call packing,
 * no horizontal sums. Optionally the packed copy is bf16 (half the bytes; scores move by ~1e-3
 * relative: see bench/score_bench.c for the measured accuracy) or int8 with a scale per item (a
 * quarter of the bytes: a lone query scores in half the time of bf16). Approximate scorers pick
 * candidates that itemscore_rescore re-ranks with the exact f32 rows (itemscore_topk does the whole
 * chain), so the answer keeps f32 scores and order.
 *
 * Memory (owned by the scorer, on top of the borrowed w): packed N'*D*4 bytes (f32), N'*D*2 (bf16),
 * N'*(D+4) (int8: bytes and one float scale per item), with N' = N rounded up to the block width
 * (16 or 64), plus N'*4 bytes of padded bias. ITEMSCORE_BLAS packs nothing (a few dozen bytes).
 *
 * Validation: itemscore_new compares the chosen kernel with itemscore_score_ref on random queries
 * and falls back to ITEMSCORE_BLAS (f32) when they disagree by more than 1e-3 (f32) / 5e-2 (bf16,
 * int8) of the largest score magnitude, or when the CPU lacks the kernel's instructions.
 *
 * BLAS: ITEMSCORE_BLAS with F32 copies bias into every score row, then runs one cblas_sgemm (q with
 * lda = q_stride, against w transposed, beta = 1): the same operations in the same order as
 * gru4rec_score, so its scores are bit-identical to gru4rec_score's on the same Wy/By (the
 * evaluator relies on it).
 *
 * Threads: a scorer is immutable after itemscore_new; every function below may run on any number of
 * threads at once (each with its own output buffers). No function allocates after itemscore_new.
 *
 * Glossary: N items, D floats per item row and per query, B queries scored together, k results.
 */
#ifndef RECD_ITEMSCORE_H
#define RECD_ITEMSCORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/topk.h"

typedef enum {
    ITEMSCORE_AUTO = 0,
    ITEMSCORE_BLAS,
    ITEMSCORE_AVX2,
    ITEMSCORE_AVX512,
    ITEMSCORE_AVX512BF16
} itemscore_kernel;
typedef enum { ITEMSCORE_F32 = 0, ITEMSCORE_BF16 = 1, ITEMSCORE_INT8 = 2 } itemscore_dtype;

typedef struct itemscore itemscore;

/* Parse "auto" | "blas" | "avx2" | "avx512" | "avx512bf16" (NULL: -1); -1 if unknown. Name of a
 * kernel
 * ("?" for a value outside the enum). avx512bf16 (vdpbf16ps, two k per instruction) always reads
 * bf16 and also rounds the queries to bf16; auto never picks it. */
int itemscore_kernel_parse(const char *name);
const char *itemscore_kernel_name(itemscore_kernel k);
/* Parse "f32" | "bf16" | "int8" (NULL: -1); -1 if unknown. Name of a dtype ("?" outside the enum).
 */
int itemscore_dtype_parse(const char *name);
const char *itemscore_dtype_name(itemscore_dtype dt);

/* Build a scorer of the (N,D) item matrix w (row-major f32) and bias (N floats, or NULL = zeros).
 * Both are borrowed: they must outlive the scorer and not change (e.g. tensors in a snapshot's
 * map). kernel: ITEMSCORE_AUTO picks the widest kernel the CPU runs (AVX-512, AVX2, else BLAS); a
 * kernel the CPU lacks falls back to the next narrower one (avx512bf16 -> avx512 -> avx2 -> blas).
 * dt: the element type of the packed copy (int8: per-item scale max|w|/127; avx512bf16 is always
 * bf16; ignored by BLAS, which reads w itself). 1 <= D, 0 <= N <= INT32_MAX. NULL with a message:
 * RC_EINVAL (w NULL, N or D out of range), RC_ENOMEM. */
itemscore *itemscore_new(const float *w, const float *bias, int64_t n, int d, itemscore_kernel kernel,
                         itemscore_dtype dt);
void itemscore_free(itemscore *s); /* NULL is a no-op */

/* The kernel in use after validation (never ITEMSCORE_AUTO), and the element type it reads. */
itemscore_kernel itemscore_kernel_of(const itemscore *s);
itemscore_dtype itemscore_dtype_of(const itemscore *s);
int64_t itemscore_n(const itemscore *s);
int itemscore_d(const itemscore *s);

/* 1 when itemscore_score reads a bf16 or int8 copy (its scores are approximate), 0 for f32 and
 * BLAS. */
int itemscore_approx(const itemscore *s);
/* How many of the best approximate scores to re-rank to return the best k: k for exact scorers,
 * k+k/2+8 for int8, k+8 for bf16; at most N (on the Globo GRU4Rec models, H=100 and H=224, 24
 * candidates already gave the f32 top-20 on 5,233 test predictions). */
int itemscore_candidates(const itemscore *s, int k);

/* Scores of all N items for B >= 1 queries: row b of the queries is q + b*q_stride (D floats each;
 * q_stride >= D, in floats: a query may be a slice of a longer state); scores is (B,N), every entry
 * written. No allocation. */
void itemscore_score(const itemscore *s, const float *q, size_t q_stride, int B, float *scores);
/* Part `part` (0 <= part < nparts) of the same work: disjoint item ranges, so threads may run the
 * parts at once on the same scores buffer. With BLAS part 0 does everything and the others nothing:
 * itemscore_splittable says whether parts really divide the work. */
void itemscore_score_part(const itemscore *s, const float *q, size_t q_stride, int B, float *scores, int part,
                          int nparts);
int itemscore_splittable(const itemscore *s);

/* Exact f32 scores q . w[idx[i]] + bias[idx[i]] of n items (each in [0,N)) for ONE query q (D
 * floats), into out (n), from the borrowed f32 rows whatever the packed dtype. No allocation. */
void itemscore_rescore(const itemscore *s, const float *q, const int32_t *idx, int n, float *out);

/* The best k items for ONE query whose row of itemscore_score is scores_row (N floats, already
 * computed): topk_select of itemscore_candidates(s, k) candidates (ex: excluded items, may be
 * NULL), then, for an approximate scorer, itemscore_rescore of them and the best k by exact score.
 * idx (k) and val (k, or NULL) receive the answer best first (ties: core/topk.h order among
 * candidates; val holds exact f32 scores). cand_idx and cand_val are the caller's scratch of
 * itemscore_candidates(s, k) entries each (may be NULL when !itemscore_approx(s)). Returns the
 * number written (<= k; fewer when fewer items are eligible), or RC_EINVAL from topk_select
 * (message set). No allocation. */
int itemscore_topk(const itemscore *s, const float *scores_row, const float *q, int k, const topk_exclude *ex,
                   int32_t *idx, float *val, int32_t *cand_idx, float *cand_val);
/* The second half of itemscore_topk, for callers that pick candidates elsewhere (e.g. on another
 * thread): given n_cand candidates cand_idx (best first by approximate score) of query q, write the
 * best k by exact score into idx / val (val may be NULL); cand_val (n_cand) is scratch. For an
 * exact scorer it copies the first min(k, n_cand) candidates (val from cand_val as given, if val).
 * Returns the number written. No allocation. */
int itemscore_rerank(const itemscore *s, const float *q, const int32_t *cand_idx, float *cand_val, int n_cand, int k,
                     int32_t *idx, float *val);

/* The naive reference: scores (N) of all n items for one query q (D floats), one loop per item in
 * f32 (scores[i] = bias[i] + sum_k q[k]*w[i][k]; bias NULL = 0). For tests and validation. */
void itemscore_score_ref(const float *w, const float *bias, int64_t n, int d, const float *q, float *scores);

#endif
