/* models/widedeep.c - Wide & Deep model: forward, backward, optimiser steps, snapshots. See widedeep.h. */
#include "models/widedeep.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dense.h"
#include "core/err.h"
#include "core/log.h"
#include "core/optim.h"

static int has_wide(const wd_model *m) { return (m->hp.variant & WD_WIDE) != 0; }
static int has_deep(const wd_model *m) { return (m->hp.variant & WD_DEEP) != 0; }

static int setup_dims(wd_model *m)
{
    const wd_hparams *hp = &m->hp;
    if (hp->variant < WD_WIDE || hp->variant > WD_BOTH) return rc_error(RC_EINVAL, "widedeep: bad variant %d", hp->variant);
    if (hp->nhidden < 0 || hp->nhidden > WD_MAX_LAYERS)
        return rc_error(RC_EINVAL, "widedeep: %d hidden layers (at most %d)", hp->nhidden, WD_MAX_LAYERS);
    if (has_deep(m)) {
        if (m->spec->deep_dim == 0) return rc_error(RC_EINVAL, "widedeep: deep variant but no feature goes deep");
        m->nlayers = hp->nhidden + 1;
        m->dims[0] = m->spec->deep_dim;
        for (int l = 0; l < hp->nhidden; l++) {
            if (hp->hidden[l] < 1 || hp->hidden[l] > 65536)
                return rc_error(RC_EINVAL, "widedeep: hidden[%d] = %d out of range [1, 65536]", l, hp->hidden[l]);
            m->dims[l + 1] = hp->hidden[l];
        }
        m->dims[m->nlayers] = 1;
    } else {
        m->nlayers = 0;
    }
    if (has_wide(m) && m->spec->nwide == 0) return rc_error(RC_EINVAL, "widedeep: wide variant but no feature is wide");
    return RC_OK;
}

/* Offsets of the deep parameters in one block: embeddings, then W0, b0, W1, b1... */
static int layout(wd_model *m)
{
    const feat_spec *sp = m->spec;
    size_t off = 0;
    if (sp->nemb) {
        m->emb_off = calloc((size_t)sp->nemb, sizeof *m->emb_off);
        m->emb_dim = calloc((size_t)sp->nemb, sizeof *m->emb_dim);
        m->emb = calloc((size_t)sp->nemb, sizeof *m->emb);
        if (!m->emb_off || !m->emb_dim || !m->emb) return rc_error(RC_ENOMEM, "widedeep: out of memory");
        for (int i = 0; i < sp->nfeat; i++)
            if (sp->f[i].emb >= 0) m->emb_dim[sp->f[i].emb] = sp->f[i].dim;
    }
    if (has_deep(m)) {
        for (int i = 0; i < sp->nfeat; i++) {
            const feat_col *c = &sp->f[i];
            if (c->emb < 0) continue;
            m->emb_off[c->emb] = off;
            off += (size_t)c->card * (size_t)c->dim;
        }
        for (int l = 0; l < m->nlayers; l++) {
            off = (off + 15) & ~(size_t)15; /* 64-byte aligned blocks */
            m->W_off[l] = off;
            off += (size_t)m->dims[l] * (size_t)m->dims[l + 1];
            m->b_off[l] = off;
            off += (size_t)m->dims[l + 1];
        }
    }
    m->nparams = off;
    return RC_OK;
}

static void point_owned(wd_model *m)
{
    if (has_deep(m)) {
        for (int k = 0; k < m->spec->nemb; k++) m->emb[k] = m->params + m->emb_off[k];
        for (int l = 0; l < m->nlayers; l++) {
            m->W[l] = m->params + m->W_off[l];
            m->b[l] = m->params + m->b_off[l];
        }
    }
    m->wide = has_wide(m) ? m->wide_w : NULL;
}

void wd_model_free(wd_model *m)
{
    if (!m) return;
    feat_spec_free(m->spec);
    free(m->params);
    free(m->wide_w);
    free(m->emb_off);
    free(m->emb_dim);
    free((void *)m->emb);
    free(m);
}

int wd_model_new(wd_model **out, feat_spec *spec, const wd_hparams *hp)
{
    *out = NULL;
    if (!spec || !spec->finished) return rc_error(RC_EINVAL, "widedeep: feature spec not finished");
    wd_model *m = calloc(1, sizeof *m);
    if (!m) return rc_error(RC_ENOMEM, "widedeep: out of memory");
    m->spec = spec;
    m->hp = *hp;
    int rc;
    if ((rc = setup_dims(m)) != RC_OK || (rc = layout(m)) != RC_OK) goto fail;
    if (m->nparams) {
        if (posix_memalign((void **)&m->params, 64, m->nparams * sizeof(float)) != 0) {
            m->params = NULL;
            rc = rc_error(RC_ENOMEM, "widedeep: out of memory for %zu parameters", m->nparams);
            goto fail;
        }
        memset(m->params, 0, m->nparams * sizeof(float));
    }
    if (has_wide(m)) {
        m->wide_w = calloc((size_t)spec->wide_dim + 1, sizeof(float));
        if (!m->wide_w) {
            rc = rc_error(RC_ENOMEM, "widedeep: out of memory");
            goto fail;
        }
    }
    rng_t r;
    rng_seed(&r, hp->seed);
    if (has_deep(m)) {
        for (int i = 0; i < spec->nfeat; i++) {
            const feat_col *c = &spec->f[i];
            if (c->emb < 0) continue;
            float *e = m->params + m->emb_off[c->emb];
            double sd = 1.0 / sqrt((double)c->dim);
            for (size_t j = 0; j < (size_t)c->card * (size_t)c->dim; j++) e[j] = (float)(sd * rng_normal(&r));
        }
        for (int l = 0; l < m->nlayers; l++) {
            float *W = m->params + m->W_off[l];
            double lim = sqrt(6.0 / (double)(m->dims[l] + m->dims[l + 1]));
            for (size_t j = 0; j < (size_t)m->dims[l] * (size_t)m->dims[l + 1]; j++)
                W[j] = (float)(lim * (2.0 * rng_uniform(&r) - 1.0));
        }
    }
    point_owned(m);
    *out = m;
    return RC_OK;
fail:
    m->spec = NULL; /* ownership stays with the caller on failure */
    wd_model_free(m);
    return rc;
}

/* ---------------------------------------------------------------- scratch */

static int max_width(const wd_model *m)
{
    int w = 1;
    for (int l = 0; l <= m->nlayers; l++)
        if (m->dims[l] > w) w = m->dims[l];
    return w;
}

void wd_scratch_free(wd_scratch *s)
{
    if (!s) return;
    free(s->x);
    for (int l = 0; l <= WD_MAX_LAYERS; l++) free(s->act[l]);
    free(s->delta);
    free(s->delta2);
    free(s->dx);
    free(s->logit);
    free(s->prob);
    free(s->wide_idx);
    free(s->wide_val);
    free(s->emb_id);
    free(s);
}

wd_scratch *wd_scratch_new(const wd_model *m, int max_b)
{
    if (max_b < 1) max_b = 1;
    wd_scratch *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    const feat_spec *sp = m->spec;
    size_t B = (size_t)max_b;
    s->max_b = max_b;
    size_t D = sp->deep_dim ? (size_t)sp->deep_dim : 1;
    s->x = calloc(B * D, sizeof(float));
    s->dx = calloc(B * D, sizeof(float));
    for (int l = 1; l <= m->nlayers; l++)
        if (!(s->act[l] = calloc(B * (size_t)m->dims[l], sizeof(float)))) goto oom;
    s->delta = calloc(B * (size_t)max_width(m), sizeof(float));
    s->delta2 = calloc(B * (size_t)max_width(m), sizeof(float));
    s->logit = calloc(B, sizeof(float));
    s->prob = calloc(B, sizeof(float));
    s->wide_idx = calloc(B * (size_t)(sp->nwide ? sp->nwide : 1), sizeof(int64_t));
    s->wide_val = calloc(B * (size_t)(sp->nwide ? sp->nwide : 1), sizeof(float));
    s->emb_id = calloc(B * (size_t)(sp->nemb ? sp->nemb : 1), sizeof(int64_t));
    if (!s->x || !s->dx || !s->delta || !s->delta2 || !s->logit || !s->prob || !s->wide_idx || !s->wide_val ||
        !s->emb_id)
        goto oom;
    return s;
oom:
    wd_scratch_free(s);
    rc_error(RC_ENOMEM, "widedeep: out of memory for scratch of %d rows", max_b);
    return NULL;
}

/* ---------------------------------------------------------------- forward */

/* ReLU backward from the forward output y (n): g (n) = y > 0 ? g * scale : 0 (scale: inverted
 * dropout). Branch-free with a compare mask, 4 floats per step: with random signs the
 * compare-and-branch loop GCC makes of `y > 0 ? g : 0` mispredicts half the time. The forward pass
 * uses core/dense.c's dense_relu, branch-free the same way. */
typedef float wd_v4 __attribute__((vector_size(16)));
typedef int32_t wd_v4i __attribute__((vector_size(16)));

/* x (n) = relu(x) in place, in slices that fit dense_relu's int count */
static void relu_fwd(size_t n, float *x)
{
    const size_t slice = (size_t)1 << 30;
    for (size_t j = 0; j < n; j += slice) dense_relu((int)(n - j < slice ? n - j : slice), x + j, x + j);
}

static void relu_bwd(size_t n, const float *y, float *g, float scale)
{
    const wd_v4 zero = {0, 0, 0, 0}, sc = {scale, scale, scale, scale};
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        wd_v4 v, d;
        memcpy(&v, y + j, sizeof v);
        memcpy(&d, g + j, sizeof d);
        d = (wd_v4)((wd_v4i)(d * sc) & (v > zero));
        memcpy(g + j, &d, sizeof d);
    }
    for (; j < n; j++) g[j] = y[j] > 0.0f ? g[j] * scale : 0.0f;
}

void wd_forward(const wd_model *m, wd_scratch *s, int B)
{
    const feat_spec *sp = m->spec;
    int D = sp->deep_dim;
    for (int i = 0; i < B; i++) s->logit[i] = 0.0f;
    if (has_deep(m)) {
        /* embeddings into x */
        for (int i = 0; i < sp->nfeat; i++) {
            const feat_col *c = &sp->f[i];
            if (c->emb < 0) continue;
            const float *tab = m->emb[c->emb];
            for (int r = 0; r < B; r++) {
                int64_t id = s->emb_id[(size_t)r * sp->nemb + c->emb];
                memcpy(s->x + (size_t)r * D + c->deep_off, tab + (size_t)id * c->dim, sizeof(float) * (size_t)c->dim);
            }
        }
        const float *in = s->x;
        for (int l = 0; l < m->nlayers; l++) {
            int K = m->dims[l], N = m->dims[l + 1];
            float *out = l + 1 < m->nlayers ? s->act[l + 1] : s->logit;
            /* out (B,N) = bias, then += in (B,K) W (K,N) */
            for (int r = 0; r < B; r++) memcpy(out + (size_t)r * N, m->b[l], sizeof(float) * (size_t)N);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, N, K, 1.0f, in, K, m->W[l], N, 1.0f, out, N);
            if (l + 1 < m->nlayers) {
                size_t n = (size_t)B * (size_t)N;
                relu_fwd(n, out);
                if (s->dropout > 0) {
                    float keep = 1.0f - s->dropout, scale = 1.0f / keep;
                    for (size_t j = 0; j < n; j++) out[j] = rng_uniformf(&s->rng) < keep ? out[j] * scale : 0.0f;
                }
            }
            in = out;
        }
    }
    if (has_wide(m)) {
        int S = sp->nwide;
        float bias = m->wide[sp->wide_dim];
        for (int r = 0; r < B; r++) {
            float z = bias;
            const int64_t *idx = s->wide_idx + (size_t)r * S;
            const float *val = s->wide_val + (size_t)r * S;
            for (int k = 0; k < S; k++) z += m->wide[idx[k]] * val[k];
            s->logit[r] += z;
        }
    }
    for (int r = 0; r < B; r++) s->prob[r] = dense_sigmoidf(s->logit[r]);
}

int wd_score(const wd_model *m, wd_scratch *s, const feat_value *ctx, const feat_value *cand, int B, int *bad_row)
{
    const feat_spec *sp = m->spec;
    if (B > s->max_b) return rc_error(RC_EFULL, "widedeep: %d rows exceed the scratch (%d)", B, s->max_b);
    feat_value vals[FEAT_MAX_INPUTS]; /* feat_spec_parse refuses more inputs */
    for (int r = 0; r < B; r++) {
        const feat_value *cv = cand + (size_t)r * sp->ninputs;
        for (int i = 0; i < sp->ninputs; i++) {
            if (cv[i].kind != FEAT_V_MISSING || !ctx) vals[i] = cv[i];
            else vals[i] = ctx[i];
        }
        feat_row row = {s->wide_idx + (size_t)r * sp->nwide, s->wide_val + (size_t)r * sp->nwide,
                        s->x + (size_t)r * sp->deep_dim, s->emb_id + (size_t)r * sp->nemb};
        int rc = feat_encode(sp, vals, &row);
        if (rc != RC_OK) {
            if (bad_row) *bad_row = r;
            return rc;
        }
    }
    wd_forward(m, s, B);
    return RC_OK;
}

/* ---------------------------------------------------------------- backward */

void wd_grads_free(const wd_model *m, wd_grads *g)
{
    if (!g) return;
    free(g->deep);
    free(g->wide);
    free(g->wide_touched);
    free(g->wide_mark);
    free(g->emb_touched);
    if (g->emb_mark)
        for (int k = 0; k < m->spec->nemb; k++) free(g->emb_mark[k]);
    free(g->emb_mark);
    free(g);
}

wd_grads *wd_grads_new(const wd_model *m, int max_b)
{
    const feat_spec *sp = m->spec;
    wd_grads *g = calloc(1, sizeof *g);
    if (!g) goto oom;
    g->deep = calloc(m->nparams ? m->nparams : 1, sizeof(float));
    g->wide = calloc((size_t)sp->wide_dim + 1, sizeof(float));
    g->wide_mark = calloc((size_t)sp->wide_dim + 1, 1);
    g->cap_wide_touched = (size_t)max_b * (size_t)(sp->nwide ? sp->nwide : 1);
    g->wide_touched = calloc(g->cap_wide_touched, sizeof(int64_t));
    g->cap_emb_touched = (size_t)max_b * (size_t)(sp->nemb ? sp->nemb : 1);
    g->emb_touched = calloc(g->cap_emb_touched, sizeof(int64_t));
    g->emb_mark = calloc((size_t)(sp->nemb ? sp->nemb : 1), sizeof *g->emb_mark);
    if (!g->deep || !g->wide || !g->wide_mark || !g->wide_touched || !g->emb_touched || !g->emb_mark) goto oom;
    for (int i = 0; i < sp->nfeat; i++)
        if (sp->f[i].emb >= 0 && !(g->emb_mark[sp->f[i].emb] = calloc((size_t)sp->f[i].card, 1))) goto oom;
    return g;
oom:
    wd_grads_free(m, g);
    rc_error(RC_ENOMEM, "widedeep: out of memory for gradients");
    return NULL;
}

double wd_backward(const wd_model *m, wd_scratch *s, const float *y, int B, wd_grads *g)
{
    const feat_spec *sp = m->spec;
    double loss = 0;
    float invB = 1.0f / (float)B;
    float *dl = s->delta; /* (B): dlogit, also the first delta of the deep backward pass */
    for (int r = 0; r < B; r++) {
        /* logloss from the logit, max(z,0) - z*y + log(1 + e^-|z|): exact where the float probability
         * has saturated to 0 or 1 (|z| > ~17; clamping p there capped a confident mistake at 16.1) */
        double z = s->logit[r];
        loss += (z > 0 ? z : 0) - (y[r] > 0.5f ? z : 0) + log1p(exp(-fabs(z)));
        dl[r] = (s->prob[r] - y[r]) * invB;
    }
    if (has_wide(m)) {
        int S = sp->nwide;
        for (int r = 0; r < B; r++) {
            const int64_t *idx = s->wide_idx + (size_t)r * S;
            const float *val = s->wide_val + (size_t)r * S;
            for (int k = 0; k < S; k++) {
                int64_t j = idx[k];
                if (!g->wide_mark[j]) {
                    g->wide_mark[j] = 1;
                    g->wide_touched[g->nwide_touched++] = j;
                }
                g->wide[j] += dl[r] * val[k];
            }
            g->wide[sp->wide_dim] += dl[r];
        }
    }
    if (has_deep(m)) {
        int L = m->nlayers;
        /* delta (B, 1) = dlogit */
        float *delta = s->delta, *next = s->delta2;
        for (int l = L - 1; l >= 0; l--) {
            int K = m->dims[l], N = m->dims[l + 1];
            const float *in = l > 0 ? s->act[l] : s->x;
            float *dW = g->deep + m->W_off[l], *db = g->deep + m->b_off[l];
            /* dW (K,N) += in^T (K,B) delta (B,N) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, B, 1.0f, in, K, delta, N, 1.0f, dW, N);
            dense_sum_rows(B, N, delta, N, db);
            if (l == 0 && sp->nemb == 0) break;
            /* d in (B,K) = delta (B,N) W^T (N,K) */
            float *din = l > 0 ? next : s->dx;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, K, N, 1.0f, delta, N, m->W[l], N, 0.0f, din, K);
            if (l > 0) {
                /* relu (and dropout: a dropped unit is 0, a kept one was scaled) */
                size_t n = (size_t)B * (size_t)K;
                float scale = s->dropout > 0 ? 1.0f / (1.0f - s->dropout) : 1.0f;
                relu_bwd(n, in, din, scale);
                float *t = delta;
                delta = next;
                next = t;
            }
        }
        if (sp->nemb) {
            int D = sp->deep_dim;
            for (int i = 0; i < sp->nfeat; i++) {
                const feat_col *c = &sp->f[i];
                if (c->emb < 0) continue;
                float *gt = g->deep + m->emb_off[c->emb];
                for (int r = 0; r < B; r++) {
                    int64_t id = s->emb_id[(size_t)r * sp->nemb + c->emb];
                    if (!g->emb_mark[c->emb][id]) {
                        g->emb_mark[c->emb][id] = 1;
                        g->emb_touched[g->nemb_touched++] = ((int64_t)c->emb << 40) | id;
                    }
                    const float *src = s->dx + (size_t)r * D + c->deep_off;
                    float *dst = gt + (size_t)id * c->dim;
                    for (int d = 0; d < c->dim; d++) dst[d] += src[d];
                }
            }
        }
    }
    return loss / (B > 0 ? B : 1);
}

/* ---------------------------------------------------------------- optimisers */

int wd_optim_init(wd_optim *o, const wd_model *m)
{
    memset(o, 0, sizeof *o);
    size_t nw = (size_t)m->spec->wide_dim + 1;
    o->z = calloc(nw, sizeof(float));
    o->n = calloc(nw, sizeof(float));
    o->acc = malloc((m->nparams ? m->nparams : 1) * sizeof(float));
    if (!o->z || !o->n || !o->acc) {
        wd_optim_release(o);
        return rc_error(RC_ENOMEM, "widedeep: out of memory for optimiser state");
    }
    for (size_t i = 0; i < m->nparams; i++) o->acc[i] = (float)m->hp.adagrad_init;
    return RC_OK;
}

void wd_optim_release(wd_optim *o)
{
    free(o->z);
    free(o->n);
    free(o->acc);
    memset(o, 0, sizeof *o);
}

int wd_apply(wd_model *m, wd_optim *o, wd_grads *g)
{
    if (m->from) return rc_error(RC_ESTATE, "widedeep: a model loaded from a snapshot is read-only");
    const feat_spec *sp = m->spec;
    const wd_hparams *hp = &m->hp;
    if (has_wide(m)) {
        /* FTRL-proximal per touched coordinate (core/optim.h); the bias has no L1/L2 */
        const optim_ftrl f = {hp->ftrl_alpha, hp->ftrl_beta, hp->ftrl_l1, hp->ftrl_l2};
        const optim_ftrl fb = {hp->ftrl_alpha, hp->ftrl_beta, 0, 0};
        for (size_t t = 0; t < g->nwide_touched; t++) {
            int64_t j = g->wide_touched[t];
            optim_ftrl_dense(&f, &o->z[j], &o->n[j], &g->wide[j], &m->wide_w[j], 1);
            g->wide[j] = 0;
            g->wide_mark[j] = 0;
        }
        int64_t j = sp->wide_dim;
        optim_ftrl_dense(&fb, &o->z[j], &o->n[j], &g->wide[j], &m->wide_w[j], 1);
        g->wide[j] = 0;
        g->nwide_touched = 0;
    }
    if (has_deep(m)) {
        const optim_adagrad ad = {hp->lr, 0, hp->adagrad_eps};
        for (size_t t = 0; t < g->nemb_touched; t++) {
            int k = (int)(g->emb_touched[t] >> 40);
            int64_t id = g->emb_touched[t] & (((int64_t)1 << 40) - 1);
            size_t dim = (size_t)m->emb_dim[k];
            size_t off = m->emb_off[k] + (size_t)id * dim;
            optim_adagrad_dense(&ad, m->params + off, g->deep + off, o->acc + off, NULL, dim);
            memset(g->deep + off, 0, dim * sizeof(float));
            g->emb_mark[k][id] = 0;
        }
        g->nemb_touched = 0;
        for (int l = 0; l < m->nlayers; l++) {
            size_t nW = (size_t)m->dims[l] * (size_t)m->dims[l + 1], nb = (size_t)m->dims[l + 1];
            float *W = m->params + m->W_off[l], *dW = g->deep + m->W_off[l];
            float *bb = m->params + m->b_off[l], *db = g->deep + m->b_off[l];
            if (hp->l2 > 0)
                for (size_t i = 0; i < nW; i++) dW[i] += (float)hp->l2 * W[i];
            optim_adagrad_dense(&ad, W, dW, o->acc + m->W_off[l], NULL, nW);
            optim_adagrad_dense(&ad, bb, db, o->acc + m->b_off[l], NULL, nb);
            memset(dW, 0, nW * sizeof(float));
            memset(db, 0, nb * sizeof(float));
        }
    }
    return RC_OK;
}

/* ---------------------------------------------------------------- snapshots */

static const char *variant_name(wd_variant v)
{
    return v == WD_WIDE ? "wide" : v == WD_DEEP ? "deep" : "widedeep";
}

static int variant_parse(const char *s)
{
    if (!s) return -1;
    if (strcmp(s, "wide") == 0) return WD_WIDE;
    if (strcmp(s, "deep") == 0) return WD_DEEP;
    if (strcmp(s, "widedeep") == 0 || strcmp(s, "wide_deep") == 0) return WD_BOTH;
    return -1;
}

int wd_save(const wd_model *m, const char *root, uint64_t version, const json_t *extra, uint64_t *version_out)
{
    return wd_save_as(m, root, "widedeep", version, extra, version_out);
}

int wd_save_as(const wd_model *m, const char *root, const char *model, uint64_t version, const json_t *extra,
               uint64_t *version_out)
{
    const feat_spec *sp = m->spec;
    snap_writer *w = NULL;
    json_t *meta = NULL;
    int rc = snap_writer_open(&w, root, model, version);
    if (rc != RC_OK) return rc;
    char name[256];
    if (has_wide(m)) {
        int64_t shape[1] = {sp->wide_dim + 1};
        if ((rc = snap_put_tensor(w, "wide", SNAP_F32, 1, shape, m->wide)) != RC_OK) goto fail;
    }
    if (has_deep(m)) {
        for (int i = 0; i < sp->nfeat; i++) {
            const feat_col *c = &sp->f[i];
            if (c->emb < 0) continue;
            int64_t shape[2] = {c->card, c->dim};
            snprintf(name, sizeof name, "emb.%s", c->name);
            if ((rc = snap_put_tensor(w, name, SNAP_F32, 2, shape, m->emb[c->emb])) != RC_OK) goto fail;
        }
        for (int l = 0; l < m->nlayers; l++) {
            int64_t shW[2] = {m->dims[l], m->dims[l + 1]}, shb[1] = {m->dims[l + 1]};
            snprintf(name, sizeof name, "mlp.W%d", l);
            if ((rc = snap_put_tensor(w, name, SNAP_F32, 2, shW, m->W[l])) != RC_OK) goto fail;
            snprintf(name, sizeof name, "mlp.b%d", l);
            if ((rc = snap_put_tensor(w, name, SNAP_F32, 1, shb, m->b[l])) != RC_OK) goto fail;
        }
    }
    meta = extra ? json_deep_copy(extra) : json_object();
    json_t *spec = feat_spec_to_json(sp), *hidden = json_array();
    if (!meta || !spec || !hidden) {
        json_decref(spec);
        json_decref(hidden);
        rc = rc_error(RC_ENOMEM, "widedeep: out of memory");
        goto fail;
    }
    int bad = 0;
    for (int l = 0; l < m->hp.nhidden; l++) bad |= json_array_append_new(hidden, json_integer(m->hp.hidden[l]));
    bad |= json_object_set_new(meta, "spec", spec);
    bad |= json_object_set_new(meta, "hidden", hidden);
    bad |= json_object_set_new(meta, "variant", json_string(variant_name(m->hp.variant)));
    if (strcmp(model, "widedeep") != 0) bad |= json_object_set_new(meta, "type", json_string("widedeep"));
    if (bad) { /* a meta without them would publish a snapshot that wd_load refuses */
        rc = rc_error(RC_ENOMEM, "widedeep: out of memory for the snapshot's meta");
        goto fail;
    }
    if ((rc = snap_set_meta(w, meta)) != RC_OK) goto fail;
    json_decref(meta);
    return snap_writer_publish(w, version_out);
fail:
    json_decref(meta);
    snap_writer_abort(w);
    return rc;
}

int wd_load(wd_model **out, const snap *s)
{
    *out = NULL;
    const json_t *meta = snap_meta(s);
    feat_spec *spec = NULL;
    wd_model *m = NULL;
    int rc = feat_spec_from_json(&spec, json_object_get(meta, "spec"));
    if (rc != RC_OK) return rc_wrap(RC_ECORRUPT, "%s", snap_dir(s));
    wd_hparams hp;
    memset(&hp, 0, sizeof hp);
    int v = variant_parse(json_string_value(json_object_get(meta, "variant")));
    const json_t *hidden = json_object_get(meta, "hidden");
    if (v < 0 || !json_is_array(hidden) || json_array_size(hidden) > WD_MAX_LAYERS) {
        feat_spec_free(spec);
        return rc_error(RC_ECORRUPT, "%s: meta lacks a valid \"variant\" or \"hidden\"", snap_dir(s));
    }
    hp.variant = (wd_variant)v;
    hp.nhidden = (int)json_array_size(hidden);
    for (int l = 0; l < hp.nhidden; l++) hp.hidden[l] = (int)json_integer_value(json_array_get(hidden, (size_t)l));
    m = calloc(1, sizeof *m);
    if (!m) {
        feat_spec_free(spec);
        return rc_error(RC_ENOMEM, "widedeep: out of memory");
    }
    m->spec = spec;
    m->hp = hp;
    m->from = s;
    if ((rc = setup_dims(m)) != RC_OK || (rc = layout(m)) != RC_OK) {
        rc = rc_wrap(RC_ECORRUPT, "%s", snap_dir(s));
        goto fail;
    }
    char name[256];
    const snap_tensor *t;
    if (has_wide(m)) {
        int64_t shape[1] = {spec->wide_dim + 1};
        if (!(t = snap_tensor_expect(s, "wide", SNAP_F32, 1, shape))) goto corrupt;
        m->wide = t->data;
    }
    if (has_deep(m)) {
        for (int i = 0; i < spec->nfeat; i++) {
            const feat_col *c = &spec->f[i];
            if (c->emb < 0) continue;
            int64_t shape[2] = {c->card, c->dim};
            snprintf(name, sizeof name, "emb.%s", c->name);
            if (!(t = snap_tensor_expect(s, name, SNAP_F32, 2, shape))) goto corrupt;
            m->emb[c->emb] = t->data;
        }
        for (int l = 0; l < m->nlayers; l++) {
            int64_t shW[2] = {m->dims[l], m->dims[l + 1]}, shb[1] = {m->dims[l + 1]};
            snprintf(name, sizeof name, "mlp.W%d", l);
            if (!(t = snap_tensor_expect(s, name, SNAP_F32, 2, shW))) goto corrupt;
            m->W[l] = t->data;
            snprintf(name, sizeof name, "mlp.b%d", l);
            if (!(t = snap_tensor_expect(s, name, SNAP_F32, 1, shb))) goto corrupt;
            m->b[l] = t->data;
        }
    }
    *out = m;
    return RC_OK;
corrupt:
    rc = RC_ECORRUPT;
fail:
    wd_model_free(m);
    return rc;
}

/* ---------------------------------------------------------------- model_type */

static int wt_load(void **handle, const snap *s)
{
    wd_model *m;
    int rc = wd_load(&m, s);
    if (rc == RC_OK) *handle = m;
    return rc;
}

static void wt_free(void *handle)
{
    wd_model_free(handle);
}

/* Score a few all-missing rows: touches the code and every layer's weights. */
static int wt_warm(const void *handle)
{
    const wd_model *m = handle;
    enum { WB = 16 };
    wd_scratch *s = wd_scratch_new(m, WB);
    feat_value *v = calloc((size_t)WB * (size_t)m->spec->ninputs, sizeof *v);
    int rc = s && v ? RC_OK : rc_error(RC_ENOMEM, "widedeep warm: out of memory");
    for (int it = 0; rc == RC_OK && it < 4; it++) rc = wd_score(m, s, NULL, v, WB, NULL);
    free(v);
    wd_scratch_free(s);
    return rc;
}

/* ---- the capability table (models/model.h) ---- */
static const feat_spec *rank_spec(const void *m) { return ((const wd_model *)m)->spec; }
static void *rank_scratch_new(const void *m, int max_b) { return wd_scratch_new(m, max_b); }
static void rank_scratch_free(void *s) { wd_scratch_free(s); }

static int rank_score(const void *m, void *scratch, const feat_value *ctx, const feat_value *cand, int B,
                      const float **logit, const float **prob, int *bad)
{
    wd_scratch *s = scratch;
    int rc = wd_score(m, s, ctx, cand, B, bad);
    *logit = s->logit;
    *prob = s->prob;
    return rc;
}

static const model_rank_ops widedeep_rank = {rank_spec, rank_scratch_new, rank_scratch_free, rank_score};

const model_type widedeep_type = {
    .name = "widedeep",
    .help = "Wide & Deep ranking model (Cheng et al. 2016)",
    .load = wt_load,
    .free = wt_free,
    .warm = wt_warm,
    .rank = &widedeep_rank,
};
