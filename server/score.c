/* server/score.c - register-blocked scoring kernels (see score.h). */
#include "server/score.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"

struct scorer {
    const gru4rec *g;
    score_kernel kernel;
    int bf16;         /* element type of the packed copy: 0 f32, 1 bf16, 2 int8 (per-item scale) */
    int N, H, S, off; /* the last layer's slice of a state is h[off .. off+H) */
    const float *Wy;  /* (N,H) f32, in the map */
    const float *By;  /* (N) */
    int pw, nblk;     /* packing width (items per block) and blocks */
    void *packed;     /* (nblk, H, pw) f32 or bf16, owned */
    float *bias;      /* (nblk*pw) By padded with zeros, owned */
    float *scale;     /* (nblk*pw) int8 only: item i's weights are packed[i][k] * scale[i], owned */
};

int score_kernel_parse(const char *name)
{
    if (strcmp(name, "auto") == 0) return SCORE_AUTO;
    if (strcmp(name, "blas") == 0) return SCORE_BLAS;
    if (strcmp(name, "avx2") == 0) return SCORE_AVX2;
    if (strcmp(name, "avx512") == 0) return SCORE_AVX512;
    if (strcmp(name, "avx512bf16") == 0) return SCORE_AVX512BF16;
    return -1;
}

const char *score_kernel_name(score_kernel k)
{
    switch (k) {
    case SCORE_AUTO: return "auto";
    case SCORE_BLAS: return "blas";
    case SCORE_AVX2: return "avx2";
    case SCORE_AVX512: return "avx512";
    case SCORE_AVX512BF16: return "avx512bf16";
    }
    return "?";
}

#if defined(__x86_64__)
#define HAVE_X86 1
/* The item matrix is packed once, when the scorer is built, into blocks of PW items: block j holds
 * P[(j*H + k)*PW + t] = Wy[j*PW + t][k] (zero past N). A block (PW x H, 57 KB f32 for PW=64, H=224)
 * is read once per batch from memory and then from cache for every group of up to 6 states; each
 * state's h[k] is broadcast against PW item lanes, so there is no horizontal sum and no per-call
 * packing (what sgemm does on every call). Register tile: AVX-512 4 x 16 items x 6 states = 24
 * accumulators; AVX2 2 x 8 items x 6 states = 12. */
#define NBMAX 6
#define T2 __attribute__((target("avx2,fma")))
#define T5 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define AI __attribute__((always_inline)) inline

T5 static AI __m512 w5_f32(const void *p) { return _mm512_loadu_ps((const float *)p); }
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
T2 static AI __m256 w2_f32(const void *p) { return _mm256_loadu_ps((const float *)p); }
T2 static AI __m256 w2_bf16(const void *p)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* One block x nb states. P: the block (H, PW) of element size es; h: state rows (stride ldh) already at
 * the last layer's slice; out: score rows (stride ldo) at the block's first item; nvalid items valid. */
#define BLOCK_KERNEL(NAME, ATTR, VT, LANES, NV, LOADW, ZERO, FMA, SET1, ADD, LOADU, STOREU)                       \
    ATTR static AI void NAME(const char *P, size_t es, int H, const float *h, int ldh, int nb, const float *bias, \
                             const float *scale, float *out, int ldo, int nvalid)                                \
    {                                                                                                           \
        VT acc[NBMAX][NV];                                                                                      \
        _Pragma("GCC unroll 6") for (int b = 0; b < NBMAX; b++) _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) \
            acc[b][v] = ZERO();                                                                                 \
        const size_t row = (size_t)(LANES * NV) * es;                                                           \
        for (int k = 0; k < H; k++) {                                                                           \
            VT w[NV];                                                                                           \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) w[v] = LOADW(P + (size_t)k * row + (size_t)(v * LANES) * es); \
            _Pragma("GCC unroll 6") for (int b = 0; b < NBMAX; b++)                                             \
            {                                                                                                   \
                if (b < nb) {                                                                                   \
                    VT x = SET1(h[(size_t)b * ldh + k]);                                                         \
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[b][v] = FMA(w[v], x, acc[b][v]);    \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
        if (scale)                                                                                              \
            for (int b = 0; b < nb; b++)                                                                        \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                            \
                    acc[b][v] = FMA(acc[b][v], LOADU(scale + v * LANES), ZERO());                                \
        if (nvalid >= LANES * NV) {                                                                             \
            for (int b = 0; b < nb; b++)                                                                        \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                            \
                    STOREU(out + (size_t)b * ldo + v * LANES, ADD(acc[b][v], LOADU(bias + v * LANES)));          \
        } else {                                                                                                \
            float tmp[LANES * NV];                                                                              \
            for (int b = 0; b < nb; b++) {                                                                      \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                            \
                    STOREU(tmp + v * LANES, ADD(acc[b][v], LOADU(bias + v * LANES)));                            \
                memcpy(out + (size_t)b * ldo, tmp, (size_t)nvalid * sizeof(float));                             \
            }                                                                                                   \
        }                                                                                                       \
    }

BLOCK_KERNEL(blk5_f32, T5, __m512, 16, 4, w5_f32, _mm512_setzero_ps, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_add_ps,
             _mm512_loadu_ps, _mm512_storeu_ps)
BLOCK_KERNEL(blk5_bf16, T5, __m512, 16, 4, w5_bf16, _mm512_setzero_ps, _mm512_fmadd_ps, _mm512_set1_ps,
             _mm512_add_ps, _mm512_loadu_ps, _mm512_storeu_ps)
BLOCK_KERNEL(blk5_i8, T5, __m512, 16, 4, w5_i8, _mm512_setzero_ps, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_add_ps,
             _mm512_loadu_ps, _mm512_storeu_ps)
BLOCK_KERNEL(blk2_i8, T2, __m256, 8, 2, w2_i8, _mm256_setzero_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_add_ps,
             _mm256_loadu_ps, _mm256_storeu_ps)
BLOCK_KERNEL(blk2_f32, T2, __m256, 8, 2, w2_f32, _mm256_setzero_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_add_ps,
             _mm256_loadu_ps, _mm256_storeu_ps)
BLOCK_KERNEL(blk2_bf16, T2, __m256, 8, 2, w2_bf16, _mm256_setzero_ps, _mm256_fmadd_ps, _mm256_set1_ps,
             _mm256_add_ps, _mm256_loadu_ps, _mm256_storeu_ps)

/* Dispatch nb (1..6) to a copy of the block kernel specialised for that constant. */
#define DRIVER(NAME, ATTR, BLK, PW)                                                                            \
    ATTR static void NAME(const scorer *sc, const float *h, int B, float *out, int j0, int j1)                 \
    {                                                                                                          \
        size_t es = sc->bf16 == 2 ? 1 : sc->bf16 ? 2 : 4, bstride = (size_t)sc->H * PW * es;                    \
        for (int j = j0; j < j1; j++) {                                                                        \
            const char *P = (const char *)sc->packed + (size_t)j * bstride;                                    \
            int i0 = j * PW, nvalid = sc->N - i0 < PW ? sc->N - i0 : PW;                                         \
            const float *sc_ = sc->scale ? sc->scale + i0 : NULL;                                              \
            for (int b0 = 0; b0 < B; b0 += NBMAX) {                                                            \
                int nb = B - b0 < NBMAX ? B - b0 : NBMAX;                                                      \
                const float *hb = h + (size_t)b0 * sc->S + sc->off;                                             \
                float *ob = out + (size_t)b0 * sc->N + i0;                                                     \
                switch (nb) {                                                                                  \
                case 1: BLK(P, es, sc->H, hb, sc->S, 1, sc->bias + i0, sc_, ob, sc->N, nvalid); break;          \
                case 2: BLK(P, es, sc->H, hb, sc->S, 2, sc->bias + i0, sc_, ob, sc->N, nvalid); break;          \
                case 3: BLK(P, es, sc->H, hb, sc->S, 3, sc->bias + i0, sc_, ob, sc->N, nvalid); break;          \
                case 4: BLK(P, es, sc->H, hb, sc->S, 4, sc->bias + i0, sc_, ob, sc->N, nvalid); break;          \
                case 5: BLK(P, es, sc->H, hb, sc->S, 5, sc->bias + i0, sc_, ob, sc->N, nvalid); break;          \
                default: BLK(P, es, sc->H, hb, sc->S, 6, sc->bias + i0, sc_, ob, sc->N, nvalid); break;         \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }

/* AVX512-BF16: vdpbf16ps multiplies pairs of bf16 (k, k+1) and adds both products to an f32 lane, two
 * k per instruction. The packed matrix holds item pairs: P[((j*H2 + k2)*64 + t)*2 + e] = Wy[i][2*k2 + e]
 * and each state's h is rounded to bf16 pairs once per call (so the state loses precision too: its
 * accuracy is measured separately, bench/score_bench.c). */
#define T5B __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")))
T5B static AI void blk5_dp(const uint32_t *P, int H2, const uint32_t *hp, int ldh2, int nb, const float *bias,
                           float *out, int ldo, int nvalid)
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

T5B static void drv5_dp(const scorer *sc, const float *h, int B, float *out, int j0, int j1)
{
    int H2 = (sc->H + 1) / 2;
    for (int c0 = 0; c0 < B; c0 += 32) { /* states in chunks of 32: their bf16 pairs live on the stack */
        int nc = B - c0 < 32 ? B - c0 : 32;
        uint32_t hp[32 * H2];
        for (int b = 0; b < nc; b++) {
            const float *x = h + (size_t)(c0 + b) * sc->S + sc->off;
            for (int k2 = 0; k2 < H2; k2++) {
                uint32_t lo = to_bf16(x[2 * k2]), hi = 2 * k2 + 1 < sc->H ? to_bf16(x[2 * k2 + 1]) : 0;
                hp[(size_t)b * H2 + k2] = lo | hi << 16;
            }
        }
        for (int j = j0; j < j1; j++) {
            const uint32_t *P = (const uint32_t *)sc->packed + (size_t)j * H2 * 64;
            int i0 = j * 64, nvalid = sc->N - i0 < 64 ? sc->N - i0 : 64;
            for (int b0 = 0; b0 < nc; b0 += NBMAX) {
                int nb = nc - b0 < NBMAX ? nc - b0 : NBMAX;
                const uint32_t *hb = hp + (size_t)b0 * H2;
                float *ob = out + (size_t)(c0 + b0) * sc->N + i0;
                switch (nb) {
                case 1: blk5_dp(P, H2, hb, H2, 1, sc->bias + i0, ob, sc->N, nvalid); break;
                case 2: blk5_dp(P, H2, hb, H2, 2, sc->bias + i0, ob, sc->N, nvalid); break;
                case 3: blk5_dp(P, H2, hb, H2, 3, sc->bias + i0, ob, sc->N, nvalid); break;
                case 4: blk5_dp(P, H2, hb, H2, 4, sc->bias + i0, ob, sc->N, nvalid); break;
                case 5: blk5_dp(P, H2, hb, H2, 5, sc->bias + i0, ob, sc->N, nvalid); break;
                default: blk5_dp(P, H2, hb, H2, 6, sc->bias + i0, ob, sc->N, nvalid); break;
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

static int cpu_has(score_kernel k)
{
#if HAVE_X86
    __builtin_cpu_init();
    if (k == SCORE_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (k == SCORE_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    if (k == SCORE_AVX512BF16) return cpu_has(SCORE_AVX512) && __builtin_cpu_supports("avx512bf16");
#endif
    return k == SCORE_BLAS;
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);             /* round to nearest even */
}

void scorer_score_part(const scorer *sc, const float *h, int B, float *scores, gru4rec_scratch *gs, int part,
                       int nparts)
{
#if HAVE_X86
    if (sc->kernel == SCORE_AVX512BF16) {
        int j0 = (int)((long long)sc->nblk * part / nparts), j1 = (int)((long long)sc->nblk * (part + 1) / nparts);
        drv5_dp(sc, h, B, scores, j0, j1);
        return;
    }
    if (sc->kernel == SCORE_AVX512 || sc->kernel == SCORE_AVX2) {
        int j0 = (int)((long long)sc->nblk * part / nparts), j1 = (int)((long long)sc->nblk * (part + 1) / nparts);
        if (sc->kernel == SCORE_AVX512) {
            if (sc->bf16 == 2) drv5_i8(sc, h, B, scores, j0, j1);
            else if (sc->bf16) drv5_bf16(sc, h, B, scores, j0, j1);
            else drv5_f32(sc, h, B, scores, j0, j1);
        } else {
            if (sc->bf16 == 2) drv2_i8(sc, h, B, scores, j0, j1);
            else if (sc->bf16) drv2_bf16(sc, h, B, scores, j0, j1);
            else drv2_f32(sc, h, B, scores, j0, j1);
        }
        return;
    }
#endif
    if (part == 0) gru4rec_score(sc->g, h, B, scores, gs);
}

void scorer_score(const scorer *sc, const float *h, int B, float *scores, gru4rec_scratch *gs)
{
    scorer_score_part(sc, h, B, scores, gs, 0, 1);
}

int scorer_splittable(const scorer *sc)
{
    return sc->kernel == SCORE_AVX512 || sc->kernel == SCORE_AVX2 || sc->kernel == SCORE_AVX512BF16;
}

static const char *dtype_suffix(int t)
{
    return t == 2 ? "/int8" : t ? "/bf16" : "";
}

/* Compare the kernel with gru4rec_score on 5 random states. 1 if they agree within tol (relative to the
 * largest score magnitude). */
static int validate(scorer *sc, double tol)
{
    enum { VB = 5 };
    int ok = 0;
    size_t N = (size_t)sc->N, S = (size_t)sc->S;
    float *h = malloc(VB * S * sizeof(float)), *a = malloc(VB * N * sizeof(float)), *b = malloc(VB * N * sizeof(float));
    gru4rec_scratch *gs = gru4rec_scratch_new(sc->g, VB);
    if (!h || !a || !b || !gs) goto done;
    rng_t r;
    rng_seed(&r, 12345);
    for (size_t i = 0; i < VB * S; i++) h[i] = rng_uniformf(&r) * 2 - 1;
    scorer_score(sc, h, VB, a, gs);
    gru4rec_score(sc->g, h, VB, b, gs);
    double maxabs = 1e-6, maxdiff = 0;
    for (size_t i = 0; i < VB * N; i++) {
        maxabs = fmax(maxabs, fabs(b[i]));
        maxdiff = fmax(maxdiff, fabs((double)a[i] - b[i]));
    }
    ok = maxdiff <= tol * maxabs;
    if (!ok)
        log_warn("score kernel %s%s disagrees with gru4rec_score (max diff %g of %g): using BLAS",
                 score_kernel_name(sc->kernel), dtype_suffix(sc->bf16), maxdiff, maxabs);
    else
        log_debug("score kernel %s%s: max diff %g of max |score| %g", score_kernel_name(sc->kernel),
                  dtype_suffix(sc->bf16), maxdiff, maxabs);
done:
    gru4rec_scratch_free(gs);
    free(h);
    free(a);
    free(b);
    return ok;
}

scorer *scorer_new(const snap *s, const gru4rec *g, score_kernel kernel, int bf16)
{
    scorer *sc = calloc(1, sizeof *sc);
    if (!sc) {
        rc_error(RC_ENOMEM, "out of memory for a scorer");
        return NULL;
    }
    sc->g = g;
    sc->N = (int)gru4rec_n_items(g);
    sc->S = (int)gru4rec_state_size(g);
    sc->kernel = SCORE_BLAS;
    const snap_tensor *wy = snap_tensor_get(s, "Wy"), *by = snap_tensor_get(s, "By");
    if (!wy || !by || wy->dtype != SNAP_F32 || by->dtype != SNAP_F32 || wy->ndim != 2 || wy->shape[0] != sc->N ||
        by->ndim != 1 || by->shape[0] != sc->N || wy->shape[1] > sc->S) {
        log_info("scorer: no plain f32 Wy/By in the snapshot, scoring with gru4rec_score");
        return sc;
    }
    sc->H = (int)wy->shape[1];
    sc->off = sc->S - sc->H;
    sc->Wy = wy->data;
    sc->By = by->data;
    if (kernel == SCORE_AUTO) kernel = cpu_has(SCORE_AVX512) ? SCORE_AVX512 : cpu_has(SCORE_AVX2) ? SCORE_AVX2 : SCORE_BLAS;
    if (kernel == SCORE_AVX512BF16 && !cpu_has(SCORE_AVX512BF16)) kernel = SCORE_AVX512;
    if (kernel == SCORE_AVX512 && !cpu_has(SCORE_AVX512)) kernel = SCORE_AVX2;
    if (kernel == SCORE_AVX512BF16) bf16 = 1;
    if (bf16 < 0 || bf16 > 2) bf16 = 1;
    if (kernel == SCORE_BLAS || !cpu_has(kernel)) return sc;
    sc->pw = kernel == SCORE_AVX2 ? 16 : 64;
    sc->nblk = (sc->N + sc->pw - 1) / sc->pw;
    size_t padded = (size_t)sc->nblk * (size_t)sc->pw, es = bf16 == 2 ? 1 : bf16 ? 2 : 4;
    sc->packed = malloc(padded * (size_t)sc->H * es);
    sc->bias = calloc(padded, sizeof(float));
    if (!sc->packed || !sc->bias) {
        scorer_free(sc);
        rc_error(RC_ENOMEM, "out of memory packing the item matrix");
        return NULL;
    }
    memcpy(sc->bias, sc->By, (size_t)sc->N * sizeof(float));
    if (kernel == SCORE_AVX512BF16) { /* pairs (k, k+1) per item; H rounded up to even */
        size_t H2 = (size_t)(sc->H + 1) / 2;
        free(sc->packed);
        sc->packed = calloc((size_t)sc->nblk * H2 * 64, sizeof(uint32_t));
        if (!sc->packed) {
            scorer_free(sc);
            rc_error(RC_ENOMEM, "out of memory packing the item matrix");
            return NULL;
        }
        uint16_t *P = sc->packed;
        for (int j = 0; j < sc->nblk; j++)
            for (size_t k2 = 0; k2 < H2; k2++)
                for (int t = 0; t < 64; t++) {
                    size_t i = (size_t)j * 64 + t;
                    for (int e = 0; e < 2; e++) {
                        size_t k = 2 * k2 + (size_t)e;
                        float v = i < (size_t)sc->N && k < (size_t)sc->H ? sc->Wy[i * sc->H + k] : 0.0f;
                        P[((((size_t)j * H2 + k2) * 64 + t) * 2) + (size_t)e] = to_bf16(v);
                    }
                }
    } else if (bf16 == 2) { /* symmetric per item: q = round(w / scale), scale = max |w| / 127 */
        int8_t *P = sc->packed;
        sc->scale = calloc(padded, sizeof(float));
        if (!sc->scale) {
            scorer_free(sc);
            rc_error(RC_ENOMEM, "out of memory packing the item matrix");
            return NULL;
        }
        for (size_t i = 0; i < padded; i++) {
            float m = 0;
            if (i < (size_t)sc->N)
                for (int k = 0; k < sc->H; k++) m = fmaxf(m, fabsf(sc->Wy[i * sc->H + k]));
            sc->scale[i] = m / 127.0f;
            size_t j = i / (size_t)sc->pw, t = i % (size_t)sc->pw;
            for (int k = 0; k < sc->H; k++) {
                float v = i < (size_t)sc->N && m > 0 ? sc->Wy[i * sc->H + k] / sc->scale[i] : 0.0f;
                P[(j * sc->H + k) * sc->pw + t] = (int8_t)lrintf(fminf(127.0f, fmaxf(-127.0f, v)));
            }
        }
    } else
    for (int j = 0; j < sc->nblk; j++)
        for (int k = 0; k < sc->H; k++)
            for (int t = 0; t < sc->pw; t++) {
                size_t i = (size_t)j * sc->pw + t, at = ((size_t)j * sc->H + k) * sc->pw + t;
                float v = i < (size_t)sc->N ? sc->Wy[i * sc->H + k] : 0.0f;
                if (bf16) ((uint16_t *)sc->packed)[at] = to_bf16(v);
                else ((float *)sc->packed)[at] = v;
            }
    sc->bf16 = bf16;
    sc->kernel = kernel;
    if (!validate(sc, bf16 ? 5e-2 : 1e-3)) {
        sc->kernel = SCORE_BLAS;
        free(sc->packed);
        free(sc->bias);
        free(sc->scale);
        sc->packed = NULL;
        sc->bias = NULL;
        sc->scale = NULL;
        sc->bf16 = 0;
    }
    return sc;
}

void scorer_free(scorer *sc)
{
    if (!sc) return;
    free(sc->packed);
    free(sc->bias);
    free(sc->scale);
    free(sc);
}

score_kernel scorer_kernel(const scorer *sc)
{
    return sc->kernel;
}

int scorer_bf16(const scorer *sc)
{
    return sc->bf16;
}

int scorer_approx(const scorer *sc)
{
    return sc->bf16 != 0 && sc->Wy != NULL;
}

int scorer_candidates(const scorer *sc, int k)
{
    long c = sc->bf16 == 2 ? k + k / 2 + 8L : sc->bf16 ? k + 8L : k;
    return c > sc->N ? sc->N : (int)c;
}

void scorer_rescore(const scorer *sc, const float *h, const int32_t *idx, int n, float *out)
{
    const float *x = h + sc->off;
    size_t row = (size_t)sc->H * sizeof(float);
#if HAVE_X86
    for (int i = 0; i < n; i++) { /* the rows are scattered: have all their lines in flight at once */
        const char *p = (const char *)(sc->Wy + (size_t)idx[i] * (size_t)sc->H);
        for (size_t o = 0; o < row; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
    }
#endif
    for (int i = 0; i < n; i++)
        out[i] = cblas_sdot(sc->H, x, 1, sc->Wy + (size_t)idx[i] * (size_t)sc->H, 1) + sc->By[idx[i]];
}
