/* core/itemscore.c - the packed item-matrix scorer: register-blocked kernels, BLAS fallback, exact
 * re-ranking (see itemscore.h). */
#include "core/itemscore.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"

struct itemscore {
    itemscore_kernel kernel;
    itemscore_dtype dt; /* element type of the packed copy (F32 for BLAS) */
    int64_t N;
    int D;
    const float *w;    /* (N,D) f32, borrowed */
    const float *bias; /* (N) or NULL, borrowed */
    int pw;            /* packing width (items per block) */
    int64_t nblk;      /* blocks */
    void *packed;      /* (nblk, D, pw) f32 / bf16 / int8, or (nblk, D/2, 64, 2) bf16 pairs; owned */
    float *pbias;      /* (nblk*pw) bias padded with zeros, owned */
    float *scale;      /* (nblk*pw) int8 only: item i's weights are packed[i][k] * scale[i], owned */
};

/* avx512bf16 keeps a chunk of queries as bf16 pairs on the stack: at most ~32 KB of them */
#define DP_CHUNK(H2) ((H2) <= 256 ? 32 : (H2) >= 8192 ? 1 : 8192 / (H2))
#define DP_MAX_D 32768

int itemscore_kernel_parse(const char *name)
{
    if (!name) return -1;
    if (strcmp(name, "auto") == 0) return ITEMSCORE_AUTO;
    if (strcmp(name, "blas") == 0) return ITEMSCORE_BLAS;
    if (strcmp(name, "avx2") == 0) return ITEMSCORE_AVX2;
    if (strcmp(name, "avx512") == 0) return ITEMSCORE_AVX512;
    if (strcmp(name, "avx512bf16") == 0) return ITEMSCORE_AVX512BF16;
    return -1;
}

const char *itemscore_kernel_name(itemscore_kernel k)
{
    switch (k) {
    case ITEMSCORE_AUTO:
        return "auto";
    case ITEMSCORE_BLAS:
        return "blas";
    case ITEMSCORE_AVX2:
        return "avx2";
    case ITEMSCORE_AVX512:
        return "avx512";
    case ITEMSCORE_AVX512BF16:
        return "avx512bf16";
    }
    return "?";
}

int itemscore_dtype_parse(const char *name)
{
    if (!name) return -1;
    if (strcmp(name, "f32") == 0) return ITEMSCORE_F32;
    if (strcmp(name, "bf16") == 0) return ITEMSCORE_BF16;
    if (strcmp(name, "int8") == 0) return ITEMSCORE_INT8;
    return -1;
}

const char *itemscore_dtype_name(itemscore_dtype dt)
{
    switch (dt) {
    case ITEMSCORE_F32:
        return "f32";
    case ITEMSCORE_BF16:
        return "bf16";
    case ITEMSCORE_INT8:
        return "int8";
    }
    return "?";
}

#if defined(__x86_64__)
#define HAVE_X86 1
/* The item matrix is packed once, when the scorer is built, into blocks of PW items: block j holds
 * P[(j*D + k)*PW + t] = w[j*PW + t][k] (zero past N). A block (PW x D, 57 KB f32 for PW=64, D=224)
 * is read once per batch from memory and then from cache for every group of up to 6 queries; each
 * query's q[k] is broadcast against PW item lanes, so there is no horizontal sum and no per-call
 * packing (what sgemm does on every call). Register tile: AVX-512 4 x 16 items x 6 queries = 24
 * accumulators; AVX2 2 x 8 items x 6 queries = 12. */
#define NBMAX 6
#define T2 __attribute__((target("avx2,fma")))
#define T5 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define AI __attribute__((always_inline)) inline

T5 static AI __m512 w5_f32(const void *p)
{
    return _mm512_loadu_ps((const float *)p);
}
T5 static AI __m512 w5_bf16(const void *p)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
T5 static AI __m512 w5_i8(const void *p)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}
T2 static AI __m256 w2_i8(const void *p)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}
T2 static AI __m256 w2_f32(const void *p)
{
    return _mm256_loadu_ps((const float *)p);
}
T2 static AI __m256 w2_bf16(const void *p)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* One block x nb queries. P: the block (H = D, PW) of element size es; h: query rows (stride ldh
 * floats); out: score rows (stride ldo) at the block's first item; nvalid items valid. */
#define BLOCK_KERNEL(NAME, ATTR, VT, LANES, NV, LOADW, ZERO, FMA, SET1, ADD, LOADU, STOREU)                            \
    ATTR static AI void NAME(const char *P, size_t es, int H, const float *h, size_t ldh, int nb, const float *bias,   \
                             const float *scale, float *out, size_t ldo, int nvalid)                                   \
    {                                                                                                                  \
        VT acc[NBMAX][NV];                                                                                             \
        _Pragma("GCC unroll 6") for (int b = 0; b < NBMAX; b++) _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)   \
            acc[b][v] = ZERO();                                                                                        \
        const size_t row = (size_t)(LANES * NV) * es;                                                                  \
        for (int k = 0; k < H; k++) {                                                                                  \
            VT w[NV];                                                                                                  \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) w[v] =                                                \
                LOADW(P + (size_t)k * row + (size_t)(v * LANES) * es);                                                 \
            _Pragma("GCC unroll 6") for (int b = 0; b < NBMAX; b++)                                                    \
            {                                                                                                          \
                if (b < nb) {                                                                                          \
                    VT x = SET1(h[(size_t)b * ldh + k]);                                                               \
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[b][v] = FMA(w[v], x, acc[b][v]);          \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        if (scale)                                                                                                     \
            for (int b = 0; b < nb; b++)                                                                               \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[b][v] =                                       \
                    FMA(acc[b][v], LOADU(scale + v * LANES), ZERO());                                                  \
        if (nvalid >= LANES * NV) {                                                                                    \
            for (int b = 0; b < nb; b++)                                                                               \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                                   \
                    STOREU(out + (size_t)b * ldo + v * LANES, ADD(acc[b][v], LOADU(bias + v * LANES)));                \
        } else {                                                                                                       \
            float tmp[LANES * NV];                                                                                     \
            for (int b = 0; b < nb; b++) {                                                                             \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                                   \
                    STOREU(tmp + v * LANES, ADD(acc[b][v], LOADU(bias + v * LANES)));                                  \
                memcpy(out + (size_t)b * ldo, tmp, (size_t)nvalid * sizeof(float));                                    \
            }                                                                                                          \
        }                                                                                                              \
    }

BLOCK_KERNEL(blk5_f32, T5, __m512, 16, 4, w5_f32, _mm512_setzero_ps, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_add_ps,
             _mm512_loadu_ps, _mm512_storeu_ps)
BLOCK_KERNEL(blk5_bf16, T5, __m512, 16, 4, w5_bf16, _mm512_setzero_ps, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_add_ps,
             _mm512_loadu_ps, _mm512_storeu_ps)
BLOCK_KERNEL(blk5_i8, T5, __m512, 16, 4, w5_i8, _mm512_setzero_ps, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_add_ps,
             _mm512_loadu_ps, _mm512_storeu_ps)
BLOCK_KERNEL(blk2_i8, T2, __m256, 8, 2, w2_i8, _mm256_setzero_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_add_ps,
             _mm256_loadu_ps, _mm256_storeu_ps)
BLOCK_KERNEL(blk2_f32, T2, __m256, 8, 2, w2_f32, _mm256_setzero_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_add_ps,
             _mm256_loadu_ps, _mm256_storeu_ps)
BLOCK_KERNEL(blk2_bf16, T2, __m256, 8, 2, w2_bf16, _mm256_setzero_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_add_ps,
             _mm256_loadu_ps, _mm256_storeu_ps)

/* Dispatch nb (1..6) to a copy of the block kernel specialised for that constant. */
#define DRIVER(NAME, ATTR, BLK, PW)                                                                                    \
    ATTR static void NAME(const itemscore *sc, const float *h, size_t ldq, int B, float *out, int64_t j0, int64_t j1)  \
    {                                                                                                                  \
        size_t es = sc->dt == ITEMSCORE_INT8 ? 1 : sc->dt ? 2 : 4, bstride = (size_t)sc->D * PW * es;                  \
        for (int64_t j = j0; j < j1; j++) {                                                                            \
            const char *P = (const char *)sc->packed + (size_t)j * bstride;                                            \
            int64_t i0 = j * PW;                                                                                       \
            int nvalid = sc->N - i0 < PW ? (int)(sc->N - i0) : PW;                                                     \
            const float *sc_ = sc->scale ? sc->scale + i0 : NULL;                                                      \
            for (int b0 = 0; b0 < B; b0 += NBMAX) {                                                                    \
                int nb = B - b0 < NBMAX ? B - b0 : NBMAX;                                                              \
                const float *hb = h + (size_t)b0 * ldq;                                                                \
                float *ob = out + (size_t)b0 * (size_t)sc->N + (size_t)i0;                                             \
                switch (nb) {                                                                                          \
                case 1:                                                                                                \
                    BLK(P, es, sc->D, hb, ldq, 1, sc->pbias + i0, sc_, ob, (size_t)sc->N, nvalid);                     \
                    break;                                                                                             \
                case 2:                                                                                                \
                    BLK(P, es, sc->D, hb, ldq, 2, sc->pbias + i0, sc_, ob, (size_t)sc->N, nvalid);                     \
                    break;                                                                                             \
                case 3:                                                                                                \
                    BLK(P, es, sc->D, hb, ldq, 3, sc->pbias + i0, sc_, ob, (size_t)sc->N, nvalid);                     \
                    break;                                                                                             \
                case 4:                                                                                                \
                    BLK(P, es, sc->D, hb, ldq, 4, sc->pbias + i0, sc_, ob, (size_t)sc->N, nvalid);                     \
                    break;                                                                                             \
                case 5:                                                                                                \
                    BLK(P, es, sc->D, hb, ldq, 5, sc->pbias + i0, sc_, ob, (size_t)sc->N, nvalid);                     \
                    break;                                                                                             \
                default:                                                                                               \
                    BLK(P, es, sc->D, hb, ldq, 6, sc->pbias + i0, sc_, ob, (size_t)sc->N, nvalid);                     \
                    break;                                                                                             \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }

/* AVX512-BF16: vdpbf16ps multiplies pairs of bf16 (k, k+1) and adds both products to an f32 lane,
 * two k per instruction. The packed matrix holds item pairs: P[((j*H2 + k2)*64 + t)*2 + e] =
 * w[i][2*k2 + e] and each query is rounded to bf16 pairs once per call (so the query loses
 * precision too: its accuracy is measured separately, bench/score_bench.c). */
#define T5B __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")))
T5B static AI void blk5_dp(const uint32_t *P, int H2, const uint32_t *hp, int ldh2, int nb, const float *bias,
                           float *out, size_t ldo, int nvalid)
{
    __m512 acc[NBMAX][4];
    _Pragma("GCC unroll 6") for (int b = 0; b < NBMAX; b++) _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
        acc[b][v] = _mm512_setzero_ps();
    for (int k2 = 0; k2 < H2; k2++) {
        __m512bh w[4];
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) w[v] =
            (__m512bh)_mm512_loadu_si512((const void *)(P + (size_t)k2 * 64 + v * 16));
        _Pragma("GCC unroll 6") for (int b = 0; b < NBMAX; b++)
        {
            if (b < nb) {
                __m512bh x = (__m512bh)_mm512_set1_epi32((int)hp[(size_t)b * ldh2 + k2]);
                _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) acc[b][v] = _mm512_dpbf16_ps(acc[b][v], w[v], x);
            }
        }
    }
    float tmp[64];
    for (int b = 0; b < nb; b++) {
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
            _mm512_storeu_ps(tmp + v * 16, _mm512_add_ps(acc[b][v], _mm512_loadu_ps(bias + v * 16)));
        memcpy(out + (size_t)b * ldo, tmp, (size_t)(nvalid < 64 ? nvalid : 64) * sizeof(float));
    }
}

static uint16_t to_bf16(float f);

T5B static void drv5_dp(const itemscore *sc, const float *h, size_t ldq, int B, float *out, int64_t j0, int64_t j1)
{
    int H2 = (sc->D + 1) / 2, chunk = DP_CHUNK(H2);
    for (int c0 = 0; c0 < B; c0 += chunk) { /* queries in chunks: their bf16 pairs live on the stack */
        int nc = B - c0 < chunk ? B - c0 : chunk;
        uint32_t hp[chunk * H2];
        for (int b = 0; b < nc; b++) {
            const float *x = h + (size_t)(c0 + b) * ldq;
            for (int k2 = 0; k2 < H2; k2++) {
                uint32_t lo = to_bf16(x[2 * k2]), hi = 2 * k2 + 1 < sc->D ? to_bf16(x[2 * k2 + 1]) : 0;
                hp[(size_t)b * H2 + k2] = lo | hi << 16;
            }
        }
        for (int64_t j = j0; j < j1; j++) {
            const uint32_t *P = (const uint32_t *)sc->packed + (size_t)j * H2 * 64;
            int64_t i0 = j * 64;
            int nvalid = sc->N - i0 < 64 ? (int)(sc->N - i0) : 64;
            for (int b0 = 0; b0 < nc; b0 += NBMAX) {
                int nb = nc - b0 < NBMAX ? nc - b0 : NBMAX;
                const uint32_t *hb = hp + (size_t)b0 * H2;
                float *ob = out + (size_t)(c0 + b0) * (size_t)sc->N + (size_t)i0;
                switch (nb) {
                case 1:
                    blk5_dp(P, H2, hb, H2, 1, sc->pbias + i0, ob, (size_t)sc->N, nvalid);
                    break;
                case 2:
                    blk5_dp(P, H2, hb, H2, 2, sc->pbias + i0, ob, (size_t)sc->N, nvalid);
                    break;
                case 3:
                    blk5_dp(P, H2, hb, H2, 3, sc->pbias + i0, ob, (size_t)sc->N, nvalid);
                    break;
                case 4:
                    blk5_dp(P, H2, hb, H2, 4, sc->pbias + i0, ob, (size_t)sc->N, nvalid);
                    break;
                case 5:
                    blk5_dp(P, H2, hb, H2, 5, sc->pbias + i0, ob, (size_t)sc->N, nvalid);
                    break;
                default:
                    blk5_dp(P, H2, hb, H2, 6, sc->pbias + i0, ob, (size_t)sc->N, nvalid);
                    break;
                }
            }
        }
    }
}

DRIVER(drv5_f32, T5, blk5_f32, 64)
DRIVER(drv5_bf16, T5, blk5_bf16, 64)
DRIVER(drv5_i8, T5, blk5_i8, 64)
DRIVER(drv2_i8, T2, blk2_i8, 16)
DRIVER(drv2_f32, T2, blk2_f32, 16)
DRIVER(drv2_bf16, T2, blk2_bf16, 16)
#else
#define HAVE_X86 0
#endif

static int cpu_has(itemscore_kernel k)
{
#if HAVE_X86
    __builtin_cpu_init();
    if (k == ITEMSCORE_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (k == ITEMSCORE_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    if (k == ITEMSCORE_AVX512BF16) return cpu_has(ITEMSCORE_AVX512) && __builtin_cpu_supports("avx512bf16");
#endif
    return k == ITEMSCORE_BLAS;
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);                /* round to nearest even */
}

/* bias into every row, then one sgemm with beta = 1: the operations of gru4rec_score, in its order
 */
static void score_blas(const itemscore *s, const float *q, size_t q_stride, int B, float *scores)
{
    size_t N = (size_t)s->N;
    if (N == 0 || B < 1) return;
    for (int b = 0; b < B; b++) {
        if (s->bias)
            memcpy(scores + (size_t)b * N, s->bias, N * sizeof(float));
        else
            memset(scores + (size_t)b * N, 0, N * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, (int)N, s->D, 1.0f, q, (int)q_stride, s->w, s->D, 1.0f,
                scores, (int)N);
}

void itemscore_score_part(const itemscore *s, const float *q, size_t q_stride, int B, float *scores, int part,
                          int nparts)
{
#if HAVE_X86
    if (s->kernel != ITEMSCORE_BLAS) {
        int64_t j0 = s->nblk * part / nparts, j1 = s->nblk * (part + 1) / nparts;
        if (s->kernel == ITEMSCORE_AVX512BF16)
            drv5_dp(s, q, q_stride, B, scores, j0, j1);
        else if (s->kernel == ITEMSCORE_AVX512) {
            if (s->dt == ITEMSCORE_INT8)
                drv5_i8(s, q, q_stride, B, scores, j0, j1);
            else if (s->dt == ITEMSCORE_BF16)
                drv5_bf16(s, q, q_stride, B, scores, j0, j1);
            else
                drv5_f32(s, q, q_stride, B, scores, j0, j1);
        } else {
            if (s->dt == ITEMSCORE_INT8)
                drv2_i8(s, q, q_stride, B, scores, j0, j1);
            else if (s->dt == ITEMSCORE_BF16)
                drv2_bf16(s, q, q_stride, B, scores, j0, j1);
            else
                drv2_f32(s, q, q_stride, B, scores, j0, j1);
        }
        return;
    }
#endif
    if (part == 0) score_blas(s, q, q_stride, B, scores);
}

void itemscore_score(const itemscore *s, const float *q, size_t q_stride, int B, float *scores)
{
    itemscore_score_part(s, q, q_stride, B, scores, 0, 1);
}

int itemscore_splittable(const itemscore *s)
{
    return s->kernel != ITEMSCORE_BLAS;
}

void itemscore_score_ref(const float *w, const float *bias, int64_t n, int d, const float *q, float *scores)
{
    for (int64_t i = 0; i < n; i++) {
        const float *row = w + (size_t)i * (size_t)d;
        float acc = 0;
        for (int k = 0; k < d; k++) acc += q[k] * row[k];
        scores[i] = acc + (bias ? bias[i] : 0.0f);
    }
}

/* Compare the kernel with itemscore_score_ref on VB random queries. 1 if they agree within tol
 * (relative to the largest score magnitude), 0 if not, RC_ENOMEM. */
static int validate(const itemscore *s, double tol)
{
    enum { VB = 5 };
    int ok = RC_ENOMEM;
    size_t N = (size_t)s->N, D = (size_t)s->D;
    float *q = malloc(VB * D * sizeof(float)), *a = malloc((VB * N + 1) * sizeof(float)),
          *b = malloc((N + 1) * sizeof(float));
    if (!q || !a || !b) goto done;
    rng_t r;
    rng_seed(&r, 12345);
    for (size_t i = 0; i < VB * D; i++) q[i] = rng_uniformf(&r) * 2 - 1;
    itemscore_score(s, q, D, VB, a);
    double maxabs = 1e-6, maxdiff = 0;
    for (int v = 0; v < VB; v++) {
        itemscore_score_ref(s->w, s->bias, s->N, s->D, q + (size_t)v * D, b);
        for (size_t i = 0; i < N; i++) {
            maxabs = fmax(maxabs, fabs(b[i]));
            maxdiff = fmax(maxdiff, fabs((double)a[(size_t)v * N + i] - b[i]));
        }
    }
    ok = maxdiff <= tol * maxabs; /* false for NaN */
    if (!ok)
        log_warn("item scorer %s/%s disagrees with the reference (max diff %g of %g): using BLAS",
                 itemscore_kernel_name(s->kernel), itemscore_dtype_name(s->dt), maxdiff, maxabs);
    else
        log_debug("item scorer %s/%s: max diff %g of max |score| %g", itemscore_kernel_name(s->kernel),
                  itemscore_dtype_name(s->dt), maxdiff, maxabs);
done:
    free(q);
    free(a);
    free(b);
    return ok;
}

static void drop_packed(itemscore *s)
{
    free(s->packed);
    free(s->pbias);
    free(s->scale);
    s->packed = NULL;
    s->pbias = NULL;
    s->scale = NULL;
    s->kernel = ITEMSCORE_BLAS;
    s->dt = ITEMSCORE_F32;
    s->pw = 0;
    s->nblk = 0;
}

/* Pack w for s->kernel / s->dt. RC_OK or RC_ENOMEM (nothing left allocated). */
static int pack(itemscore *s)
{
    const size_t N = (size_t)s->N, D = (size_t)s->D;
    s->pw = s->kernel == ITEMSCORE_AVX2 ? 16 : 64;
    s->nblk = (s->N + s->pw - 1) / s->pw;
    size_t pw = (size_t)s->pw, padded = (size_t)s->nblk * pw, es = s->dt == ITEMSCORE_INT8 ? 1 : s->dt ? 2 : 4;
    s->pbias = calloc(padded ? padded : 1, sizeof(float));
    if (s->kernel == ITEMSCORE_AVX512BF16) /* pairs (k, k+1) per item; D rounded up to even */
        s->packed = calloc(padded * ((D + 1) / 2) + 1, 2 * sizeof(uint16_t));
    else
        s->packed = malloc(padded * D * es + 1);
    if (s->dt == ITEMSCORE_INT8) s->scale = calloc(padded ? padded : 1, sizeof(float));
    if (!s->pbias || !s->packed || (s->dt == ITEMSCORE_INT8 && !s->scale)) {
        drop_packed(s);
        return rc_error(RC_ENOMEM, "out of memory packing a %lld x %d item matrix", (long long)N, s->D);
    }
    if (s->bias) memcpy(s->pbias, s->bias, N * sizeof(float));
    if (s->kernel == ITEMSCORE_AVX512BF16) {
        size_t H2 = (D + 1) / 2;
        uint16_t *P = s->packed;
        for (size_t j = 0; j < (size_t)s->nblk; j++)
            for (size_t k2 = 0; k2 < H2; k2++)
                for (size_t t = 0; t < 64; t++) {
                    size_t i = j * 64 + t;
                    for (size_t e = 0; e < 2; e++) {
                        size_t k = 2 * k2 + e;
                        float v = i < N && k < D ? s->w[i * D + k] : 0.0f;
                        P[((j * H2 + k2) * 64 + t) * 2 + e] = to_bf16(v);
                    }
                }
    } else if (s->dt == ITEMSCORE_INT8) { /* symmetric per item: q = round(w / scale), scale = max
                                             |w| / 127 */
        int8_t *P = s->packed;
        for (size_t i = 0; i < padded; i++) {
            float m = 0;
            if (i < N)
                for (size_t k = 0; k < D; k++) m = fmaxf(m, fabsf(s->w[i * D + k]));
            s->scale[i] = m / 127.0f;
            size_t j = i / pw, t = i % pw;
            for (size_t k = 0; k < D; k++) {
                float v = i < N && m > 0 ? s->w[i * D + k] / s->scale[i] : 0.0f;
                P[(j * D + k) * pw + t] = (int8_t)lrintf(fminf(127.0f, fmaxf(-127.0f, v)));
            }
        }
    } else {
        for (size_t j = 0; j < (size_t)s->nblk; j++)
            for (size_t k = 0; k < D; k++)
                for (size_t t = 0; t < pw; t++) {
                    size_t i = j * pw + t, at = (j * D + k) * pw + t;
                    float v = i < N ? s->w[i * D + k] : 0.0f;
                    if (s->dt == ITEMSCORE_BF16)
                        ((uint16_t *)s->packed)[at] = to_bf16(v);
                    else
                        ((float *)s->packed)[at] = v;
                }
    }
    return RC_OK;
}

itemscore *itemscore_new(const float *w, const float *bias, int64_t n, int d, itemscore_kernel kernel,
                         itemscore_dtype dt)
{
    if (!w || n < 0 || n > INT32_MAX || d < 1) {
        rc_error(RC_EINVAL, "item scorer: bad item matrix (%s, %lld x %d)", w ? "f32" : "NULL", (long long)n, d);
        return NULL;
    }
    itemscore *s = calloc(1, sizeof *s);
    if (!s) {
        rc_error(RC_ENOMEM, "out of memory for an item scorer");
        return NULL;
    }
    s->w = w;
    s->bias = bias;
    s->N = n;
    s->D = d;
    s->kernel = ITEMSCORE_BLAS;
    s->dt = ITEMSCORE_F32;
    if (kernel == ITEMSCORE_AUTO)
        kernel = cpu_has(ITEMSCORE_AVX512) ? ITEMSCORE_AVX512
                 : cpu_has(ITEMSCORE_AVX2) ? ITEMSCORE_AVX2
                                           : ITEMSCORE_BLAS;
    if (kernel == ITEMSCORE_AVX512BF16 && (!cpu_has(ITEMSCORE_AVX512BF16) || d > DP_MAX_D)) kernel = ITEMSCORE_AVX512;
    if (kernel == ITEMSCORE_AVX512 && !cpu_has(ITEMSCORE_AVX512)) kernel = ITEMSCORE_AVX2;
    if (kernel == ITEMSCORE_AVX2 && !cpu_has(ITEMSCORE_AVX2)) kernel = ITEMSCORE_BLAS;
    if (kernel == ITEMSCORE_AVX512BF16) dt = ITEMSCORE_BF16;
    if (dt != ITEMSCORE_F32 && dt != ITEMSCORE_INT8) dt = ITEMSCORE_BF16;
    if (kernel != ITEMSCORE_AVX2 && kernel != ITEMSCORE_AVX512 && kernel != ITEMSCORE_AVX512BF16) return s;
    s->kernel = kernel;
    s->dt = dt;
    if (pack(s) != RC_OK) {
        itemscore_free(s);
        return NULL;
    }
    int ok = validate(s, dt != ITEMSCORE_F32 ? 5e-2 : 1e-3);
    if (ok < 0) {
        itemscore_free(s);
        rc_error(RC_ENOMEM, "out of memory validating the item scorer");
        return NULL;
    }
    if (!ok) drop_packed(s);
    return s;
}

void itemscore_free(itemscore *s)
{
    if (!s) return;
    free(s->packed);
    free(s->pbias);
    free(s->scale);
    free(s);
}

itemscore_kernel itemscore_kernel_of(const itemscore *s)
{
    return s->kernel;
}

itemscore_dtype itemscore_dtype_of(const itemscore *s)
{
    return s->dt;
}

int64_t itemscore_n(const itemscore *s)
{
    return s->N;
}

int itemscore_d(const itemscore *s)
{
    return s->D;
}

int itemscore_approx(const itemscore *s)
{
    return s->dt != ITEMSCORE_F32;
}

int itemscore_candidates(const itemscore *s, int k)
{
    if (k <= 0) return 0;
    long long c = s->dt == ITEMSCORE_INT8 ? k + k / 2 + 8LL : s->dt ? k + 8LL : k;
    return c > s->N ? (int)s->N : (int)c;
}

void itemscore_rescore(const itemscore *s, const float *q, const int32_t *idx, int n, float *out)
{
    size_t D = (size_t)s->D, row = D * sizeof(float);
#if HAVE_X86
    for (int i = 0; i < n; i++) { /* the rows are scattered: have all their lines in flight at once */
        const char *p = (const char *)(s->w + (size_t)idx[i] * D);
        for (size_t o = 0; o < row; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
    }
#else
    (void)row;
#endif
    for (int i = 0; i < n; i++)
        out[i] = cblas_sdot(s->D, q, 1, s->w + (size_t)idx[i] * D, 1) + (s->bias ? s->bias[idx[i]] : 0.0f);
}

int itemscore_rerank(const itemscore *s, const float *q, const int32_t *cand_idx, float *cand_val, int n_cand, int k,
                     int32_t *idx, float *val)
{
    if (n_cand <= 0 || k <= 0) return 0;
    if (!itemscore_approx(s)) {
        int n = n_cand < k ? n_cand : k;
        memcpy(idx, cand_idx, (size_t)n * sizeof *idx);
        if (val) memcpy(val, cand_val, (size_t)n * sizeof *val);
        return n;
    }
    itemscore_rescore(s, q, cand_idx, n_cand, cand_val);
    int n = topk_select(cand_val, n_cand, k, NULL, idx, val);
    for (int i = 0; i < n; i++) idx[i] = cand_idx[idx[i]];
    return n;
}

int itemscore_topk(const itemscore *s, const float *scores_row, const float *q, int k, const topk_exclude *ex,
                   int32_t *idx, float *val, int32_t *cand_idx, float *cand_val)
{
    if (!itemscore_approx(s)) return topk_select(scores_row, s->N, k, ex, idx, val);
    int nc = topk_select(scores_row, s->N, itemscore_candidates(s, k), ex, cand_idx, cand_val);
    if (nc < 0) return nc;
    return itemscore_rerank(s, q, cand_idx, cand_val, nc, k, idx, val);
}
