/* models/gru4rec_kern.c - vectorised element-wise kernels of GRU4Rec. See gru4rec_kern.h. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3", "-fassociative-math", "-fno-signed-zeros", "-fno-trapping-math")
#endif
#include "models/gru4rec_kern.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__clang__)
#define G4K_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define G4K_CLONES
#endif

/* exp(x): x = k ln2 + f, |f| <= ln2/2, e^f by a degree-6 Taylor/minimax polynomial, 2^k into the
 * exponent. Clamped to [-87, 88] so 2^k stays a normal float. Branch-free, so loops vectorise. */
static inline float fexp(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float t = x * 1.44269504088896341f;
    /* round to nearest through a positive shift and truncation (t is in [-126, 127] here); safe under
     * -fassociative-math, unlike the (t + 1.5*2^23) - 1.5*2^23 trick */
    int32_t ki = (int32_t)(t + 128.5f) - 128;
    float k = (float)ki;
    float f = x - k * 0.693359375f;
    f = f - k * -2.12194440e-4f;
    float p = 1.0f / 720.0f;
    p = p * f + 1.0f / 120.0f;
    p = p * f + 1.0f / 24.0f;
    p = p * f + 1.0f / 6.0f;
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    int32_t bits;
    memcpy(&bits, &p, 4);
    bits += ki * (1 << 23);
    memcpy(&p, &bits, 4);
    return p;
}

/* 1/sqrt(x) for x > 0: bit-trick start and three Newton steps (relative error ~1 ulp). Used instead of
 * sqrtf, which the compiler will not vectorise while sqrtf may set errno. */
static inline float frsqrt(float x)
{
    int32_t i;
    memcpy(&i, &x, 4);
    i = 0x5f375a86 - (i >> 1);
    float y;
    memcpy(&y, &i, 4);
    float hx = 0.5f * x;
    y = y * (1.5f - hx * y * y);
    y = y * (1.5f - hx * y * y);
    y = y * (1.5f - hx * y * y);
    return y;
}

static inline float fsigmoid(float x) { return 1.0f / (1.0f + fexp(-x)); }
static inline float ftanh(float x) { return 2.0f / (1.0f + fexp(-2.0f * x)) - 1.0f; }

G4K_CLONES void g4k_exp(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = fexp(x[i]);
}

G4K_CLONES void g4k_gru_gates(const float *restrict ax, const float *restrict ah, const float *hprev,
                              float *hout, float *restrict r, float *restrict z, float *restrict n, int H)
{
    if (r) {
        for (int j = 0; j < H; j++) {
            float rj = fsigmoid(ax[j] + ah[j]);
            float zj = fsigmoid(ax[H + j] + ah[H + j]);
            float nj = ftanh(ax[2 * H + j] + rj * ah[2 * H + j]);
            float hp = hprev[j];
            hout[j] = (1.0f - zj) * nj + zj * hp;
            r[j] = rj;
            z[j] = zj;
            n[j] = nj;
        }
    } else {
        for (int j = 0; j < H; j++) {
            float rj = fsigmoid(ax[j] + ah[j]);
            float zj = fsigmoid(ax[H + j] + ah[H + j]);
            float nj = ftanh(ax[2 * H + j] + rj * ah[2 * H + j]);
            float hp = hprev[j];
            hout[j] = (1.0f - zj) * nj + zj * hp;
        }
    }
}

G4K_CLONES void g4k_gru_gates_backward(const float *restrict dh, const float *restrict hprev,
                                       const float *restrict r, const float *restrict z,
                                       const float *restrict n, const float *restrict ahn,
                                       float *restrict dax, float *restrict dah, int H)
{
    for (int j = 0; j < H; j++) {
        float d = dh[j], zj = z[j], nj = n[j], rj = r[j];
        float dn = d * (1.0f - zj);
        float dz = d * (hprev[j] - nj);
        float dan = dn * (1.0f - nj * nj);
        float dr = dan * ahn[j];
        float dar = dr * rj * (1.0f - rj);
        float daz = dz * zj * (1.0f - zj);
        dax[j] = dar;
        dax[H + j] = daz;
        dax[2 * H + j] = dan;
        dah[j] = dar;
        dah[H + j] = daz;
        dah[2 * H + j] = dan * rj;
    }
}

/* max of o[0..M) with 16 independent lanes (vectorises without -ffinite-math-only) */
static inline __attribute__((always_inline)) float row_max(const float *o, int M)
{
    float lane[16];
    for (int k = 0; k < 16; k++) lane[k] = o[0];
    int j = 0;
    for (; j + 16 <= M; j += 16)
        for (int k = 0; k < 16; k++) lane[k] = o[j + k] > lane[k] ? o[j + k] : lane[k];
    float mx = o[0];
    for (int k = 0; k < 16; k++) mx = lane[k] > mx ? lane[k] : mx;
    for (; j < M; j++) mx = o[j] > mx ? o[j] : mx;
    return mx;
}

G4K_CLONES double g4k_xe_row(float *restrict o, int M, int t, const float *restrict logq_col, float logq,
                             float scale)
{
    if (logq_col && logq != 0.0f)
        for (int j = 0; j < M; j++) o[j] -= logq * logq_col[j];
    float mx = row_max(o, M);
    float sum = 0.0f;
    for (int j = 0; j < M; j++) {
        o[j] = fexp(o[j] - mx);
        sum += o[j];
    }
    float inv = 1.0f / sum;
    float pt = o[t] * inv;
    /* loss -log(p_t + 1e-24); gradient c (p_j - [j==t]) with c = p_t / (p_t + 1e-24) */
    double loss = -log((double)pt + 1e-24);
    float c = pt / (pt + 1e-24f) * scale;
    float ci = c * inv;
    for (int j = 0; j < M; j++) o[j] *= ci;
    o[t] -= c;
    return loss;
}

/* ELU in place; keeps the derivative in de. */
static inline __attribute__((always_inline)) void elu_fwd(float *restrict o, float *restrict de, int M, float a)
{
    for (int j = 0; j < M; j++) {
        float s = o[j];
        float e = a * (fexp(s) - 1.0f);
        o[j] = s > 0.0f ? s : e;
        de[j] = s > 0.0f ? 1.0f : e + a;
    }
}

G4K_CLONES double g4k_bprmax_row(float *restrict o, int M, int t, float elu, float bpreg, float scale,
                                 float *restrict tmp)
{
    /* tmp holds 3M floats: de (ELU derivative), sm (softmax over the negatives), sg (sigmoids) */
    float *de = tmp, *sm = tmp + M, *sg = tmp + 2 * (size_t)M;
    if (elu > 0.0f) elu_fwd(o, de, M, elu);
    float ot = o[t];
    /* softmax_neg: the target column is zeroed before the max and masked after the exp */
    float save = o[t];
    o[t] = 0.0f;
    float mx = row_max(o, M);
    o[t] = save;
    float sum = 0.0f, A = 0.0f, Q = 0.0f;
    for (int j = 0; j < M; j++) {
        float e = fexp(o[j] - mx);
        sm[j] = e;
        sum += e;
        sg[j] = fsigmoid(ot - o[j]);
    }
    sum -= sm[t];
    sm[t] = 0.0f;
    float inv = 1.0f / sum;
    for (int j = 0; j < M; j++) {
        float s = sm[j] * inv;
        sm[j] = s;
        A += sg[j] * s;
        Q += o[j] * o[j] * s;
    }
    double loss = -log((double)A + 1e-24) + (double)bpreg * Q;
    float ia = 1.0f / (A + 1e-24f);
    float dt = 0.0f;
    for (int j = 0; j < M; j++) {
        float s = sm[j], g = sg[j], oj = o[j];
        dt += s * g * (1.0f - g);
        o[j] = s * ((A - g * g) * ia + bpreg * (oj * oj + 2.0f * oj - Q)) * scale;
    }
    o[t] = -dt * ia * scale;
    if (elu > 0.0f)
        for (int j = 0; j < M; j++) o[j] *= de[j];
    return loss;
}

G4K_CLONES double g4k_top1max_row(float *restrict o, int M, int t, float scale, float *restrict tmp)
{
    /* loss = sum_j sm_j (sig(o_j - o_t) + sig(o_j^2)), sm = softmax over the negatives */
    float *sm = tmp, *s1 = tmp + M, *s2 = tmp + 2 * (size_t)M;
    float ot = o[t];
    float save = o[t];
    o[t] = 0.0f;
    float mx = row_max(o, M);
    o[t] = save;
    float sum = 0.0f;
    for (int j = 0; j < M; j++) {
        float e = fexp(o[j] - mx);
        sm[j] = e;
        sum += e;
        s1[j] = fsigmoid(o[j] - ot);
        s2[j] = fsigmoid(o[j] * o[j]);
    }
    sum -= sm[t];
    sm[t] = 0.0f;
    float inv = 1.0f / sum, U = 0.0f;
    for (int j = 0; j < M; j++) {
        sm[j] *= inv;
        U += sm[j] * (s1[j] + s2[j]);
    }
    float dt = 0.0f;
    for (int j = 0; j < M; j++) {
        float s = sm[j], a = s1[j], b = s2[j], oj = o[j];
        float u = a + b;
        float da = s * a * (1.0f - a);
        dt += da;
        o[j] = (s * (u - U) + da + s * b * (1.0f - b) * 2.0f * oj) * scale;
    }
    o[t] = -dt * scale;
    return U;
}

G4K_CLONES void g4k_adagradm(float *restrict p, float *restrict acc, float *restrict mom,
                             const float *restrict g, size_t n, float lr, float mu)
{
    if (mu > 0.0f) {
        for (size_t i = 0; i < n; i++) {
            float a = acc[i] + g[i] * g[i];
            acc[i] = a;
            float m = mu * mom[i] - lr * g[i] * frsqrt(a + 1e-6f);
            mom[i] = m;
            p[i] += m;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float a = acc[i] + g[i] * g[i];
            acc[i] = a;
            p[i] -= lr * g[i] * frsqrt(a + 1e-6f);
        }
    }
}

G4K_CLONES void g4k_add(float *restrict y, const float *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}
