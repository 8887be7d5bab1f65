/* models/gru4rec_train.c - GRU4Rec training: session-parallel batches, forward/backward, the three
 * losses, negative sampling with a precomputed cache, AdaGrad with momentum on touched rows.
 * The math mirrors the official GRU4Rec PyTorch code (reimplemented; see models/gru4rec.h). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/rng.h"
#include "models/gru4rec.h"
#include "models/gru4rec_impl.h"
#include "models/gru4rec_kern.h"

/* Per-layer activations kept for the backward pass (all (Bmax, .) row-major, contiguous). */
typedef struct layer_act {
    float *hprev;  /* (B,H) incoming state */
    float *ax;     /* (B,3H) x Wx + bx */
    float *ah;     /* (B,3H) h Wh + bh */
    float *r, *z, *n; /* (B,H) */
    float *mask;   /* (B,H) dropout multipliers (0 or 1/(1-p)); NULL-equivalent when p == 0 */
    float *out;    /* (B,H) output after dropout (= the next state, and the next layer's input) */
} layer_act;

struct gru4rec_trainer {
    gru4rec *m;
    gru4rec_hparams hp;
    int Bmax, NS, Mmax, HL;
    size_t n_params, dense_off, n_dense;
    float *acc, *mom;       /* (n_params) optimiser state */
    float *gd;              /* (n_dense) gradient of the dense part (GRU weights) */
    float *H;               /* (Bmax,S) carried hidden state */
    layer_act act[GRU4REC_MAX_LAYERS];
    float *x0, *mask0;      /* (Bmax,in0) embedded input after dropout, its mask */
    float *dh, *dx;         /* (Bmax,Hmax) and (Bmax,max in) gradients flowing down */
    float *dax, *dah;       /* (Bmax,3Hmax) */
    int32_t *Y;             /* (Mmax) output columns */
    float *Ob, *dOb;        /* (Mmax,HL) gathered output embeddings and their gradient */
    float *R;               /* (Bmax,Mmax) scores, then their gradient */
    float *colsum;          /* (Mmax) */
    float *logq_col;        /* (Mmax) */
    float *loss_tmp;        /* (3 Mmax) */
    /* sparse gradients, coalesced by slot */
    int32_t *slot_y, *slot_x; /* (N) item -> slot or -1 */
    int32_t *uy, *ux;       /* items of each slot */
    int nuy, nux, nuy_out;
    float *gWy, *gBy;       /* (Mmax+Bmax, HL), (Mmax+Bmax) */
    const float **ysrc;     /* (Mmax+Bmax) gradient row of each Wy slot: a dOb or dx row while the item
                               was seen once (no copy), else its gWy row where duplicates are summed */
    float *gX;              /* (Bmax, in0 or 3H) for E or the one-hot Wx0 */
    /* sampling */
    float *cdf;             /* (N) cumulative count^alpha, last = 1 */
    int32_t *guide;         /* (4N) guide[k] = first i with cdf[i] > k/(4N): starts the search */
    float *logc;            /* (N) log(count) */
    int32_t *cache;         /* (gen_len, NS) */
    int64_t gen_len, cache_pos;
    /* batching */
    int64_t *cur, *end;     /* (Bmax) */
    int32_t *in, *outi;     /* (Bmax) */
    rng_t rng;
    void *mem;              /* one allocation for everything above */
};

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

void gru4rec_trainer_free(gru4rec_trainer *t)
{
    if (!t) return;
    free(t->mem);
    free(t->cache);
    free(t);
}

int gru4rec_trainer_new(gru4rec_trainer **out, gru4rec *m, uint64_t seed)
{
    *out = NULL;
    if (!m->params) return rc_error(RC_ESTATE, "gru4rec: cannot train a model loaded from a snapshot");
    gru4rec_trainer *t = calloc(1, sizeof *t);
    if (!t) return rc_error(RC_ENOMEM, "gru4rec: out of memory (trainer)");
    t->m = m;
    t->hp = m->hp;
    t->Bmax = t->hp.batch_size;
    t->NS = t->hp.n_sample;
    t->Mmax = t->Bmax + t->NS;
    t->HL = m->lay[m->L - 1].H;
    t->n_params = m->n_params;
    const float *dense_start = m->onehot ? m->lay[0].Wh : m->lay[0].Wx;
    t->dense_off = (size_t)(dense_start - m->params);
    t->n_dense = t->n_params - t->dense_off;
    size_t B = (size_t)t->Bmax, M = (size_t)t->Mmax, N = (size_t)m->N, Hm = (size_t)m->Hmax, HL = (size_t)t->HL;
    size_t inmax = (size_t)m->in0 > Hm ? (size_t)m->in0 : Hm;
    if (m->onehot) inmax = Hm;
    size_t gxw = m->onehot ? 3 * (size_t)m->lay[0].H : (size_t)(m->in0 > 0 ? m->in0 : 1);

    /* size everything, then carve from one allocation */
    size_t sz = 0;
#define F_(n) (sz += pad16(n) * sizeof(float))
#define I_(n) (sz += pad16(n) * sizeof(int32_t))
#define L_(n) (sz += pad16(n) * sizeof(int64_t))
    F_(t->n_params); F_(t->n_params); F_(t->n_dense); F_(B * m->S);
    for (int l = 0; l < m->L; l++) {
        size_t H = (size_t)m->lay[l].H;
        F_(B * H); F_(B * 3 * H); F_(B * 3 * H); F_(B * H); F_(B * H); F_(B * H); F_(B * H); F_(B * H);
    }
    F_(B * inmax); F_(B * inmax); F_(B * Hm); F_(B * inmax); F_(B * 3 * Hm); F_(B * 3 * Hm);
    I_(M); F_(M * HL); F_(M * HL); F_(B * M); F_(M); F_(M); F_(3 * M);
    I_(N); I_(N); I_(M + B); I_(B); F_((M + B) * HL); F_(M + B); F_(B * gxw);
    F_(N); F_(N); L_(B); L_(B); I_(B); I_(B); I_(4 * N);
#undef F_
#undef I_
#undef L_
    sz += pad16(M + B) * sizeof(float *);
    t->mem = aligned_alloc(64, sz);
    if (!t->mem) {
        gru4rec_trainer_free(t);
        return rc_error(RC_ENOMEM, "gru4rec: out of memory (trainer, %zu bytes)", sz);
    }
    memset(t->mem, 0, sz);
    char *p = t->mem;
#define TF_(dst, n) (dst = (float *)p, p += pad16(n) * sizeof(float))
#define TI_(dst, n) (dst = (int32_t *)p, p += pad16(n) * sizeof(int32_t))
#define TL_(dst, n) (dst = (int64_t *)p, p += pad16(n) * sizeof(int64_t))
    TF_(t->acc, t->n_params); TF_(t->mom, t->n_params); TF_(t->gd, t->n_dense); TF_(t->H, B * m->S);
    for (int l = 0; l < m->L; l++) {
        size_t H = (size_t)m->lay[l].H;
        layer_act *a = &t->act[l];
        TF_(a->hprev, B * H); TF_(a->ax, B * 3 * H); TF_(a->ah, B * 3 * H); TF_(a->r, B * H);
        TF_(a->z, B * H); TF_(a->n, B * H); TF_(a->mask, B * H); TF_(a->out, B * H);
    }
    TF_(t->x0, B * inmax); TF_(t->mask0, B * inmax); TF_(t->dh, B * Hm); TF_(t->dx, B * inmax);
    TF_(t->dax, B * 3 * Hm); TF_(t->dah, B * 3 * Hm);
    TI_(t->Y, M); TF_(t->Ob, M * HL); TF_(t->dOb, M * HL); TF_(t->R, B * M); TF_(t->colsum, M);
    TF_(t->logq_col, M); TF_(t->loss_tmp, 3 * M);
    TI_(t->slot_y, N); TI_(t->slot_x, N); TI_(t->uy, M + B); TI_(t->ux, B); TF_(t->gWy, (M + B) * HL);
    TF_(t->gBy, M + B); TF_(t->gX, B * gxw);
    TF_(t->cdf, N); TF_(t->logc, N); TL_(t->cur, B); TL_(t->end, B); TI_(t->in, B); TI_(t->outi, B);
    TI_(t->guide, 4 * N);
    t->ysrc = (const float **)p;
    p += pad16(M + B) * sizeof(float *);
#undef TF_
#undef TI_
#undef TL_
    for (size_t i = 0; i < N; i++) t->slot_y[i] = t->slot_x[i] = -1;

    /* sampling distribution: cumulative count^alpha (doubles while summing), last entry exactly 1 */
    double tot = 0;
    for (size_t i = 0; i < N; i++) {
        double c = m->counts[i] > 0 ? (double)m->counts[i] : 1.0;
        t->logc[i] = (float)log(c);
        tot += pow(c, t->hp.sample_alpha);
    }
    double run = 0;
    for (size_t i = 0; i < N; i++) {
        double c = m->counts[i] > 0 ? (double)m->counts[i] : 1.0;
        run += pow(c, t->hp.sample_alpha);
        t->cdf[i] = (float)(run / tot);
    }
    t->cdf[N - 1] = 1.0f;
    for (size_t k = 0, i = 0; k < 4 * N; k++) {
        float x = (float)k / (float)(4 * N);
        while (i < N - 1 && t->cdf[i] <= x) i++;
        t->guide[k] = (int32_t)i;
    }
    if (t->NS > 0) {
        t->gen_len = t->hp.sample_cache / t->NS;
        if (t->gen_len < 1) t->gen_len = 1;
        t->cache = malloc((size_t)t->gen_len * (size_t)t->NS * sizeof *t->cache);
        if (!t->cache) {
            long long want = t->hp.sample_cache;
            gru4rec_trainer_free(t);
            return rc_error(RC_ENOMEM, "gru4rec: out of memory (sample cache of %lld)", want);
        }
        t->cache_pos = t->gen_len; /* filled on first use */
    }
    rng_seed(&t->rng, seed);
    *out = t;
    return RC_OK;
}

/* ---- sampling ---- */

static void refill_cache(gru4rec_trainer *t)
{
    size_t n = (size_t)t->gen_len * (size_t)t->NS;
    int32_t N = (int32_t)t->m->N;
    const float *cdf = t->cdf;
    for (size_t k = 0; k < n; k++) {
        float x = rng_uniformf(&t->rng);
        /* searchsorted right (number of entries <= x), started from the guide table: the same answer
         * as a binary search over the whole cdf, in one or two steps */
        size_t g = (size_t)(x * (float)(4 * N));
        int32_t lo = t->guide[g < 4 * (size_t)N ? g : 4 * (size_t)N - 1];
        while (lo > 0 && cdf[lo - 1] > x) lo--;
        while (lo < N && cdf[lo] <= x) lo++;
        t->cache[k] = lo < N ? lo : N - 1;
    }
    t->cache_pos = 0;
}

static const int32_t *next_sample(gru4rec_trainer *t)
{
    if (t->cache_pos >= t->gen_len) refill_cache(t);
    return t->cache + (size_t)(t->cache_pos++) * (size_t)t->NS;
}

const int32_t *gru4rec_trainer_next_sample(gru4rec_trainer *t)
{
    return t->NS > 0 ? next_sample(t) : NULL;
}

/* ---- losses ---- */

double gru4rec_loss_rows(const gru4rec_hparams *hp, const float *R, int B, int M, const float *logq_col,
                         float *dR, float scale, float *tmp)
{
    double loss = 0;
    for (int b = 0; b < B; b++) {
        float *o = dR + (size_t)b * M;
        if (o != R + (size_t)b * M) memcpy(o, R + (size_t)b * M, (size_t)M * sizeof(float));
        switch (hp->loss) {
        case GRU4REC_LOSS_XE:
            loss += g4k_xe_row(o, M, b, hp->logq > 0 ? logq_col : NULL, (float)hp->logq, scale);
            break;
        case GRU4REC_LOSS_BPRMAX:
            loss += g4k_bprmax_row(o, M, b, (float)hp->elu_param, (float)hp->bpreg, scale, tmp);
            break;
        default:
            loss += g4k_top1max_row(o, M, b, scale, tmp);
            break;
        }
    }
    return loss;
}

/* ---- forward / backward of one batch ---- */

static void dropout_mask(rng_t *r, float *mask, size_t n, double p)
{
    float keep = (float)(1.0 / (1.0 - p));
    uint64_t thr = (uint64_t)(p * 18446744073709551616.0);
    for (size_t i = 0; i < n; i++) mask[i] = rng_u64(r) >= thr ? keep : 0.0f;
}

static inline int slot_of(int32_t *slot, int32_t *list, int *nu, int32_t item, int *fresh)
{
    int s = slot[item];
    *fresh = s < 0;
    if (s < 0) {
        s = (*nu)++;
        slot[item] = s;
        list[s] = item;
    }
    return s;
}

/* Sum src into Wy slot s, first moving the slot's single row into its own gWy row if needed. */
static inline void add_to_slot(gru4rec_trainer *t, int s, const float *src, size_t n)
{
    float *own = t->gWy + (size_t)s * n;
    if (t->ysrc[s] != own) {
        memcpy(own, t->ysrc[s], n * sizeof(float));
        t->ysrc[s] = own;
    }
    g4k_add(own, src, n);
}

/* Forward and backward of rows 0..B-1 (t->in, t->outi, t->H rows), with columns Y = outi ++ neg.
 * Leaves gradients in t->gd (dense), gWy/gBy by slot_y, gX by slot_x, and the new state in t->H.
 * Returns the summed loss / batch_size. */
static double batch_fb(gru4rec_trainer *t, int B, const int32_t *neg, int ns, int training)
{
    gru4rec *m = t->m;
    const gru4rec_hparams *hp = &t->hp;
    const int L = m->L, HL = t->HL, M = B + ns;
    const size_t S = m->S;
    const int32_t *in = t->in;
    float *params = m->params;
    float *gd = t->gd - t->dense_off; /* index with (ptr - params) */

    /* input embedding */
    const float *x = NULL;
    int ldx = 0;
    if (!m->onehot) {
        const float *tab = m->E ? m->E : m->Wy;
        int in0 = m->in0;
        for (int b = 0; b < B; b++)
            memcpy(t->x0 + (size_t)b * in0, tab + (size_t)in[b] * in0, (size_t)in0 * sizeof(float));
        if (training && hp->dropout_embed > 0) {
            dropout_mask(&t->rng, t->mask0, (size_t)B * in0, hp->dropout_embed);
            for (size_t i = 0; i < (size_t)B * in0; i++) t->x0[i] *= t->mask0[i];
        }
        x = t->x0;
        ldx = in0;
    }
    /* layers */
    for (int l = 0; l < L; l++) {
        gru4rec_layer *ly = &m->lay[l];
        layer_act *a = &t->act[l];
        int H = ly->H, H3 = 3 * H;
        for (int b = 0; b < B; b++) {
            memcpy(a->hprev + (size_t)b * H, t->H + (size_t)b * S + m->off[l], (size_t)H * sizeof(float));
            memcpy(a->ah + (size_t)b * H3, ly->bh, (size_t)H3 * sizeof(float));
        }
        if (l == 0 && m->onehot) {
            for (int b = 0; b < B; b++) {
                const float *row = ly->Wx + (size_t)in[b] * H3;
                float *g = a->ax + (size_t)b * H3;
                for (int j = 0; j < H3; j++) g[j] = row[j] + ly->bx[j];
            }
        } else {
            for (int b = 0; b < B; b++) memcpy(a->ax + (size_t)b * H3, ly->bx, (size_t)H3 * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H3, ly->in, 1.0f, x, ldx, ly->Wx, H3, 1.0f,
                        a->ax, H3);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H3, H, 1.0f, a->hprev, H, ly->Wh, H3, 1.0f,
                    a->ah, H3);
        for (int b = 0; b < B; b++) {
            size_t o1 = (size_t)b * H, o3 = (size_t)b * H3;
            g4k_gru_gates(a->ax + o3, a->ah + o3, a->hprev + o1, a->out + o1, a->r + o1, a->z + o1, a->n + o1, H);
        }
        double p = (l == 0 && m->onehot) ? hp->dropout_embed : hp->dropout_hidden;
        if (training && p > 0) {
            dropout_mask(&t->rng, a->mask, (size_t)B * H, p);
            for (size_t i = 0; i < (size_t)B * H; i++) a->out[i] *= a->mask[i];
        } else {
            for (size_t i = 0; i < (size_t)B * H; i++) a->mask[i] = 1.0f;
        }
        for (int b = 0; b < B; b++)
            memcpy(t->H + (size_t)b * S + m->off[l], a->out + (size_t)b * H, (size_t)H * sizeof(float));
        x = a->out;
        ldx = H;
    }
    /* output layer over Y = targets ++ negatives */
    int32_t *Y = t->Y;
    memcpy(Y, t->outi, (size_t)B * sizeof *Y);
    if (ns) memcpy(Y + B, neg, (size_t)ns * sizeof *Y);
    for (int j = 0; j < M; j++) memcpy(t->Ob + (size_t)j * HL, m->Wy + (size_t)Y[j] * HL, (size_t)HL * sizeof(float));
    float *R = t->R;
    for (int j = 0; j < M; j++) t->colsum[j] = m->By[Y[j]];
    for (int b = 0; b < B; b++) memcpy(R + (size_t)b * M, t->colsum, (size_t)M * sizeof(float));
    const float *hL = t->act[L - 1].out;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, M, HL, 1.0f, hL, HL, t->Ob, HL, 1.0f, R, M);
    if (hp->loss == GRU4REC_LOSS_XE && hp->logq > 0) {
        for (int j = 0; j < M; j++) t->logq_col[j] = j < B ? t->logc[Y[j]] : (float)hp->sample_alpha * t->logc[Y[j]];
    }
    float scale = 1.0f / (float)hp->batch_size;
    double loss = gru4rec_loss_rows(hp, R, B, M, t->logq_col, R, scale, t->loss_tmp);

    /* backward: output layer */
    float *dh = t->dh;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, HL, M, 1.0f, R, M, t->Ob, HL, 0.0f, dh, HL);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, HL, B, 1.0f, R, M, hL, HL, 0.0f, t->dOb, HL);
    memcpy(t->colsum, R, (size_t)M * sizeof(float));
    for (int b = 1; b < B; b++) g4k_add(t->colsum, R + (size_t)b * M, (size_t)M);
    t->nuy = t->nux = 0;
    for (int j = 0; j < M; j++) {
        int fresh;
        int s = slot_of(t->slot_y, t->uy, &t->nuy, Y[j], &fresh);
        const float *src = t->dOb + (size_t)j * HL;
        if (fresh) {
            t->ysrc[s] = src;
            t->gBy[s] = t->colsum[j];
        } else {
            add_to_slot(t, s, src, (size_t)HL);
            t->gBy[s] += t->colsum[j];
        }
    }
    t->nuy_out = t->nuy; /* slots 0..nuy_out-1 are output columns (they own a By gradient) */
    /* backward: layers, top down; dh holds the gradient on the layer's output (after dropout) */
    for (int l = L - 1; l >= 0; l--) {
        gru4rec_layer *ly = &m->lay[l];
        layer_act *a = &t->act[l];
        int H = ly->H, H3 = 3 * H;
        for (size_t i = 0; i < (size_t)B * H; i++) dh[i] *= a->mask[i];
        for (int b = 0; b < B; b++) {
            size_t o1 = (size_t)b * H, o3 = (size_t)b * H3;
            g4k_gru_gates_backward(dh + o1, a->hprev + o1, a->r + o1, a->z + o1, a->n + o1, a->ah + o3 + 2 * H,
                                   t->dax + o3, t->dah + o3, H);
        }
        /* dWh = hprev^T dah, dbh = sum dah, dbx = sum dax */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, H3, B, 1.0f, a->hprev, H, t->dah, H3, 0.0f,
                    gd + (ly->Wh - params), H3);
        float *gbh = gd + (ly->bh - params), *gbx = gd + (ly->bx - params);
        memcpy(gbx, t->dax, (size_t)H3 * sizeof(float));
        memcpy(gbh, t->dah, (size_t)H3 * sizeof(float));
        for (int b = 1; b < B; b++) {
            g4k_add(gbx, t->dax + (size_t)b * H3, (size_t)H3);
            g4k_add(gbh, t->dah + (size_t)b * H3, (size_t)H3);
        }
        if (l == 0 && m->onehot) {
            memset(gbh, 0, (size_t)H3 * sizeof(float)); /* the one-hot layer has no h-side bias */
            for (int b = 0; b < B; b++) {
                int fresh;
                int s = slot_of(t->slot_x, t->ux, &t->nux, in[b], &fresh);
                float *g = t->gX + (size_t)s * H3;
                if (fresh)
                    memcpy(g, t->dax + (size_t)b * H3, (size_t)H3 * sizeof(float));
                else
                    g4k_add(g, t->dax + (size_t)b * H3, (size_t)H3);
            }
            break;
        }
        const float *xin = l > 0 ? t->act[l - 1].out : t->x0;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ly->in, H3, B, 1.0f, xin, ly->in, t->dax, H3, 0.0f,
                    gd + (ly->Wx - params), H3);
        /* gradient on the layer's input: dx = dax Wx^T, (B,in) */
        float *dxo = l > 0 ? dh : t->dx;
        if (l > 0) {
            /* dh is about to be overwritten with the lower layer's output gradient: compute into dx
             * first, then copy */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, ly->in, H3, 1.0f, t->dax, H3, ly->Wx, H3, 0.0f,
                        t->dx, ly->in);
            memcpy(dh, t->dx, (size_t)B * ly->in * sizeof(float));
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, ly->in, H3, 1.0f, t->dax, H3, ly->Wx, H3, 0.0f,
                        dxo, ly->in);
        }
    }
    /* embedding gradient */
    if (!m->onehot) {
        int in0 = m->in0;
        float *dx = t->dx;
        if (training && hp->dropout_embed > 0)
            for (size_t i = 0; i < (size_t)B * in0; i++) dx[i] *= t->mask0[i];
        for (int b = 0; b < B; b++) {
            int fresh;
            const float *src = dx + (size_t)b * in0;
            if (m->E) {
                int s = slot_of(t->slot_x, t->ux, &t->nux, in[b], &fresh);
                float *g = t->gX + (size_t)s * in0;
                if (fresh)
                    memcpy(g, src, (size_t)in0 * sizeof(float));
                else
                    g4k_add(g, src, (size_t)in0);
            } else {
                int s = slot_of(t->slot_y, t->uy, &t->nuy, in[b], &fresh);
                if (fresh) {
                    t->gBy[s] = 0.0f; /* X-only rows touch Wy, not By */
                    t->ysrc[s] = src;
                } else {
                    add_to_slot(t, s, src, (size_t)in0);
                }
            }
        }
    }
    return loss * scale;
}

/* Apply AdaGrad-momentum to the dense part and to the touched rows, then forget the slots. */
static void apply_update(gru4rec_trainer *t)
{
    gru4rec *m = t->m;
    float lr = (float)t->hp.learning_rate, mu = (float)t->hp.momentum;
    size_t HL = (size_t)t->HL;
    g4k_adagradm(m->params + t->dense_off, t->acc + t->dense_off, t->mom + t->dense_off, t->gd, t->n_dense, lr, mu);
    size_t oWy = (size_t)(m->Wy - m->params), oBy = (size_t)(m->By - m->params);
    for (int s = 0; s < t->nuy; s++) {
        size_t i = (size_t)t->uy[s];
        g4k_adagradm(m->Wy + i * HL, t->acc + oWy + i * HL, t->mom + oWy + i * HL, t->ysrc[s], HL, lr,
                     mu);
        if (s < t->nuy_out) g4k_adagradm(m->By + i, t->acc + oBy + i, t->mom + oBy + i, t->gBy + s, 1, lr, mu);
        t->slot_y[i] = -1;
    }
    if (t->nux) {
        float *tab = m->onehot ? m->lay[0].Wx : m->E;
        size_t w = m->onehot ? 3 * (size_t)m->lay[0].H : (size_t)m->in0;
        size_t o = (size_t)(tab - m->params);
        for (int s = 0; s < t->nux; s++) {
            size_t i = (size_t)t->ux[s];
            g4k_adagradm(tab + i * w, t->acc + o + i * w, t->mom + o + i * w, t->gX + (size_t)s * w, w, lr, mu);
            t->slot_x[i] = -1;
        }
    }
    t->nuy = t->nux = t->nuy_out = 0;
}

static void clear_slots(gru4rec_trainer *t)
{
    for (int s = 0; s < t->nuy; s++) t->slot_y[t->uy[s]] = -1;
    for (int s = 0; s < t->nux; s++) t->slot_x[t->ux[s]] = -1;
    t->nuy = t->nux = t->nuy_out = 0;
}

double gru4rec_batch_grad(gru4rec_trainer *t, const int32_t *in, const int32_t *out, int B, const int32_t *neg,
                          int n_neg, const float *h0, int training, float *grad)
{
    gru4rec *m = t->m;
    if (B > t->Bmax) B = t->Bmax;
    if (n_neg > t->NS) n_neg = t->NS;
    memcpy(t->in, in, (size_t)B * sizeof *in);
    memcpy(t->outi, out, (size_t)B * sizeof *out);
    if (h0)
        memcpy(t->H, h0, (size_t)B * m->S * sizeof(float));
    else
        memset(t->H, 0, (size_t)B * m->S * sizeof(float));
    double loss = batch_fb(t, B, neg, n_neg, training);
    memset(grad, 0, t->n_params * sizeof(float));
    memcpy(grad + t->dense_off, t->gd, t->n_dense * sizeof(float));
    size_t HL = (size_t)t->HL;
    size_t oWy = (size_t)(m->Wy - m->params), oBy = (size_t)(m->By - m->params);
    for (int s = 0; s < t->nuy; s++) {
        size_t i = (size_t)t->uy[s];
        for (size_t k = 0; k < HL; k++) grad[oWy + i * HL + k] += t->ysrc[s][k];
        if (s < t->nuy_out) grad[oBy + i] += t->gBy[s];
    }
    if (t->nux) {
        float *tab = m->onehot ? m->lay[0].Wx : m->E;
        size_t w = m->onehot ? 3 * (size_t)m->lay[0].H : (size_t)m->in0;
        size_t o = (size_t)(tab - m->params);
        for (int s = 0; s < t->nux; s++)
            for (size_t k = 0; k < w; k++) grad[o + (size_t)t->ux[s] * w + k] += t->gX[(size_t)s * w + k];
    }
    clear_slots(t);
    return loss;
}


int gru4rec_train_epoch(gru4rec_trainer *t, const int32_t *items, const int64_t *offsets, int64_t n_sessions,
                        gru4rec_progress_fn cb, void *ctx, int64_t every, gru4rec_epoch_stats *st)
{
    gru4rec *m = t->m;
    const size_t S = m->S;
    const int Bmax = t->Bmax;
    memset(st, 0, sizeof *st);
    double t0 = clock_mono_s();
    int64_t total = 0;
    for (int64_t s = 0; s < n_sessions; s++) {
        int64_t len = offsets[s + 1] - offsets[s];
        if (len >= 2) total += len - 1;
        for (int64_t k = offsets[s]; k < offsets[s + 1]; k++)
            if (items[k] < 0 || items[k] >= m->N)
                return rc_error(RC_EINVAL, "gru4rec: session %lld holds item index %d outside [0,%lld)",
                                (long long)s, (int)items[k], (long long)m->N);
    }
    /* fill the rows with the first sessions of length >= 2 */
    int64_t next = 0;
    int B = 0;
    while (B < Bmax && next < n_sessions) {
        if (offsets[next + 1] - offsets[next] >= 2) {
            t->cur[B] = offsets[next];
            t->end[B] = offsets[next + 1];
            B++;
        }
        next++;
    }
    memset(t->H, 0, (size_t)Bmax * S * sizeof(float));
    double wsum = 0;
    int64_t next_cb = every > 0 ? every : INT64_MAX;
    while (B > 0) {
        for (int b = 0; b < B; b++) {
            t->in[b] = items[t->cur[b]];
            t->outi[b] = items[t->cur[b] + 1];
        }
        const int32_t *neg = t->NS > 0 ? next_sample(t) : NULL;
        double L = batch_fb(t, B, neg, t->NS, 1);
        apply_update(t);
        if (isnan(L)) return rc_error(RC_ERANGE, "gru4rec: loss is NaN after %lld batches", (long long)st->batches);
        wsum += L * B;
        st->events += B;
        st->batches++;
        /* advance rows; finished rows take the next session (state reset) or are dropped */
        int nb = 0;
        for (int b = 0; b < B; b++) {
            t->cur[b]++;
            int keep = 1;
            if (t->cur[b] + 1 >= t->end[b]) {
                while (next < n_sessions && offsets[next + 1] - offsets[next] < 2) next++;
                if (next < n_sessions) {
                    t->cur[b] = offsets[next];
                    t->end[b] = offsets[next + 1];
                    next++;
                    memset(t->H + (size_t)b * S, 0, S * sizeof(float));
                } else {
                    keep = 0;
                }
            }
            if (keep) {
                if (nb != b) {
                    t->cur[nb] = t->cur[b];
                    t->end[nb] = t->end[b];
                    memcpy(t->H + (size_t)nb * S, t->H + (size_t)b * S, S * sizeof(float));
                }
                nb++;
            }
        }
        B = nb;
        if (t->NS == 0 && B < 2) break;
        if (cb && st->events >= next_cb) {
            next_cb += every;
            st->loss = wsum / (double)st->events;
            st->seconds = clock_mono_s() - t0;
            if (cb(ctx, st, total)) break;
        }
    }
    st->loss = st->events ? wsum / (double)st->events : 0;
    st->seconds = clock_mono_s() - t0;
    return RC_OK;
}
