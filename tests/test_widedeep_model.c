/* tests/test_widedeep_model.c - Wide & Deep, the model in process: finite-difference gradient checks (MLP,
 * embeddings, joint loss, dropout), FTRL at model level, training steps, the loss of saturated predictions,
 * snapshots (zero copy, refused ones) and batched scoring. The trainer and its CLI are in
 * tests/test_widedeep_train.c; POST /v1/rank in tests/test_server_rank.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/rng.h"
#include "core/snap.h"
#include "models/features.h"
#include "models/widedeep.h"
#include "tests/test_server_util.h"
#include "tests/testlib.h"

/* The small spec of the server tests (TSRV_WD_SPEC, tests/test_server_util.h), touching every kind of
 * input, and its hyper-parameters. */
static feat_spec *make_spec(void)
{
    return tsrv_wd_spec();
}

static wd_hparams hparams(wd_variant v)
{
    return tsrv_wd_hparams(v);
}

/* Raw values of row r of a deterministic synthetic batch. */
static void synth_values(rng_t *r, feat_value *v, char bufs[][16])
{
    static const char *cats[] = {"a", "b", "c", "d", "e"};
    v[0] = (feat_value){FEAT_V_NUM, NULL, 0, rng_uniform(r) * 2 - 1};
    v[1] = (feat_value){FEAT_V_NUM, NULL, 0, rng_normal(r)};
    const char *c1 = cats[rng_below(r, 5)];
    v[2] = (feat_value){FEAT_V_STR, c1, strlen(c1), 0};
    snprintf(bufs[0], 16, "k%d", (int)rng_below(r, 20));
    v[3] = (feat_value){FEAT_V_STR, bufs[0], strlen(bufs[0]), 0};
    v[4] = (feat_value){FEAT_V_MISSING, NULL, 0, 0};
}

/* Fill the scratch with B synthetic rows and labels. */
static void synth_batch(const wd_model *m, wd_scratch *s, int B, float *y, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed);
    feat_value *v = calloc((size_t)B * 5, sizeof *v);
    char (*bufs)[16] = calloc((size_t)B, 16);
    for (int i = 0; i < B; i++) {
        synth_values(&r, v + i * 5, bufs + i);
        y[i] = rng_uniform(&r) < 0.4 ? 1.0f : 0.0f;
    }
    ASSERT_OK(wd_score(m, s, NULL, v, B, NULL));
    free(v);
    free(bufs);
}

/* Mean logloss of the current parameters on the batch in the scratch (inputs kept: x's dense part,
 * wide_idx/val, emb_id are not modified by wd_forward except the embedding blocks it refills). */
static double batch_loss(const wd_model *m, wd_scratch *s, const float *y, int B)
{
    wd_forward(m, s, B);
    double l = 0;
    for (int i = 0; i < B; i++) {
        /* from the logit, in double: the float sigmoid would lose the small differences */
        double z = s->logit[i];
        l += y[i] > 0.5f ? log1p(exp(-z)) : log1p(exp(z));
    }
    return l / B;
}

/* Central differences on one parameter p; returns the numeric derivative. */
static double numeric_grad(const wd_model *m, wd_scratch *s, const float *y, int B, float *p)
{
    const float h = 1e-2f;
    float old = *p;
    *p = old + h;
    double lp = batch_loss(m, s, y, B);
    *p = old - h;
    double lm = batch_loss(m, s, y, B);
    *p = old;
    return (lp - lm) / (2.0 * h);
}

static void check_grad(const char *what, size_t i, double num, double ana, int *bad)
{
    double tol = 2e-3 + 2e-2 * fabs(num);
    if (fabs(num - ana) > tol) {
        if (*bad < 10) fprintf(stderr, "%s[%zu]: numeric %.6g analytic %.6g\n", what, i, num, ana);
        (*bad)++;
    }
}

/* Run the gradient check for one variant: every MLP weight and bias, every embedding entry (rows the
 * batch did not use must have a zero gradient), every wide weight and the bias. */
static void gradcheck(wd_variant v)
{
    feat_spec *sp = make_spec();
    wd_hparams hp = hparams(v);
    wd_model *m;
    ASSERT_OK(wd_model_new(&m, sp, &hp));
    enum { B = 12 };
    wd_scratch *s = wd_scratch_new(m, B);
    wd_grads *g = wd_grads_new(m, B);
    ASSERT(s && g);
    float y[B];
    synth_batch(m, s, B, y, 99);
    /* give the wide weights non-zero values so the joint loss depends on both parts */
    if (m->wide_w) {
        rng_t r;
        rng_seed(&r, 5);
        for (int64_t j = 0; j <= sp->wide_dim; j++) m->wide_w[j] = (float)(0.3 * rng_normal(&r));
    }
    /* and the biases, so ReLUs sit away from their kink */
    if (m->params)
        for (int l = 0; l < m->nlayers; l++)
            for (int j = 0; j < m->dims[l + 1]; j++) m->params[m->b_off[l] + j] = 0.05f * (float)((j % 3) - 1);
    wd_forward(m, s, B);
    double loss = wd_backward(m, s, y, B, g);
    ASSERT_NEAR(loss, batch_loss(m, s, y, B), 1e-4);
    int bad = 0;
    size_t checked = 0;
    if (v & WD_DEEP) {
        for (int l = 0; l < m->nlayers; l++) {
            size_t nW = (size_t)m->dims[l] * (size_t)m->dims[l + 1];
            for (size_t i = 0; i < nW; i++, checked++)
                check_grad("W", i, numeric_grad(m, s, y, B, m->params + m->W_off[l] + i), g->deep[m->W_off[l] + i], &bad);
            for (int j = 0; j < m->dims[l + 1]; j++, checked++)
                check_grad("b", (size_t)j, numeric_grad(m, s, y, B, m->params + m->b_off[l] + j),
                           g->deep[m->b_off[l] + j], &bad);
        }
        ASSERT(g->nemb_touched > 0);
        for (int i = 0; i < sp->nfeat; i++) {
            const feat_col *c = &sp->f[i];
            if (c->emb < 0) continue;
            for (size_t k = 0; k < (size_t)c->card * (size_t)c->dim; k++, checked++) {
                size_t off = m->emb_off[c->emb] + k;
                check_grad(c->name, k, numeric_grad(m, s, y, B, m->params + off), g->deep[off], &bad);
            }
        }
    }
    if (v & WD_WIDE) {
        ASSERT(g->nwide_touched > 0);
        for (int64_t j = 0; j <= sp->wide_dim; j++, checked++)
            check_grad("wide", (size_t)j, numeric_grad(m, s, y, B, m->wide_w + j), g->wide[j], &bad);
    }
    if (bad) FAIL("%d of %zu gradients differ from finite differences", bad, checked);
    ASSERT(checked > 20);
    wd_grads_free(m, g);
    wd_scratch_free(s);
    wd_model_free(m);
}

TEST(wd_gradcheck_deep)
{
    gradcheck(WD_DEEP);
}

TEST(wd_gradcheck_wide)
{
    gradcheck(WD_WIDE);
}

TEST(wd_gradcheck_joint)
{
    gradcheck(WD_BOTH);
}

TEST(wd_gradcheck_dropout)
{
    /* with dropout the mask must be the same in both evaluations: re-seed before each forward */
    feat_spec *sp = make_spec();
    wd_hparams hp = hparams(WD_DEEP);
    wd_model *m;
    ASSERT_OK(wd_model_new(&m, sp, &hp));
    enum { B = 8 };
    wd_scratch *s = wd_scratch_new(m, B);
    wd_grads *g = wd_grads_new(m, B);
    float y[B];
    synth_batch(m, s, B, y, 3);
    s->dropout = 0.3f;
    rng_seed(&s->rng, 11);
    wd_forward(m, s, B);
    wd_backward(m, s, y, B, g);
    int bad = 0;
    for (size_t i = 0; i < (size_t)m->dims[0] * (size_t)m->dims[1]; i++) {
        float *p = m->params + m->W_off[0] + i, old = *p;
        const float h = 1e-2f;
        *p = old + h;
        rng_seed(&s->rng, 11);
        double lp = batch_loss(m, s, y, B);
        *p = old - h;
        rng_seed(&s->rng, 11);
        double lm = batch_loss(m, s, y, B);
        *p = old;
        check_grad("W0", i, (lp - lm) / (2 * h), g->deep[m->W_off[0] + i], &bad);
    }
    ASSERT_EQ(bad, 0);
    wd_grads_free(m, g);
    wd_scratch_free(s);
    wd_model_free(m);
}

TEST(wd_training_reduces_loss_and_clears_grads)
{
    feat_spec *sp = make_spec();
    wd_hparams hp = hparams(WD_BOTH);
    wd_model *m;
    ASSERT_OK(wd_model_new(&m, sp, &hp));
    enum { B = 32 };
    wd_scratch *s = wd_scratch_new(m, B);
    wd_grads *g = wd_grads_new(m, B);
    wd_optim o;
    ASSERT_OK(wd_optim_init(&o, m));
    float y[B];
    synth_batch(m, s, B, y, 1);
    double first = 0, last = 0;
    for (int it = 0; it < 200; it++) {
        wd_forward(m, s, B);
        double l = wd_backward(m, s, y, B, g);
        if (it == 0) first = l;
        last = l;
        ASSERT_OK(wd_apply(m, &o, g));
    }
    ASSERT(last < first * 0.7);
    /* wd_apply leaves the gradients cleared */
    for (size_t i = 0; i < m->nparams; i++) ASSERT(g->deep[i] == 0.0f);
    for (int64_t j = 0; j <= sp->wide_dim; j++) ASSERT(g->wide[j] == 0.0f && g->wide_mark[j] == 0);
    ASSERT_EQ(g->nwide_touched, 0);
    ASSERT_EQ(g->nemb_touched, 0);
    wd_optim_release(&o);
    wd_grads_free(m, g);
    wd_scratch_free(s);
    wd_model_free(m);
}

TEST(wd_ftrl_l1_sparsity)
{
    /* wide only: the label depends on c1 only; c2 is noise. A strong L1 keeps the noise weights at
     * exactly zero while c1's weights move. */
    feat_spec *sp = make_spec();
    wd_hparams hp = hparams(WD_WIDE);
    hp.ftrl_alpha = 0.5;
    hp.ftrl_l1 = 1.0;
    wd_model *m;
    ASSERT_OK(wd_model_new(&m, sp, &hp));
    enum { B = 64 };
    wd_scratch *s = wd_scratch_new(m, B);
    wd_grads *g = wd_grads_new(m, B);
    wd_optim o;
    ASSERT_OK(wd_optim_init(&o, m));
    rng_t r;
    rng_seed(&r, 4);
    feat_value v[B * 5];
    char bufs[B][16];
    float y[B];
    for (int it = 0; it < 300; it++) {
        for (int i = 0; i < B; i++) {
            synth_values(&r, v + i * 5, bufs + i);
            y[i] = v[i * 5 + 2].s[0] == 'a' || v[i * 5 + 2].s[0] == 'b' ? 1.0f : 0.0f;
        }
        ASSERT_OK(wd_score(m, s, NULL, v, B, NULL));
        wd_backward(m, s, y, B, g);
        ASSERT_OK(wd_apply(m, &o, g));
    }
    const feat_col *c1 = &sp->f[2], *c2 = &sp->f[3];
    ASSERT(m->wide_w[c1->wide_off + 0] > 0.5f); /* a */
    ASSERT(m->wide_w[c1->wide_off + 2] < -0.5f); /* c */
    int zeros = 0;
    for (int64_t k = 0; k < c2->card; k++) zeros += m->wide_w[c2->wide_off + k] == 0.0f;
    ASSERT(zeros >= 5); /* of 7 noise buckets */
    wd_optim_release(&o);
    wd_grads_free(m, g);
    wd_scratch_free(s);
    wd_model_free(m);
}

TEST(wd_snapshot_zero_copy_roundtrip)
{
    feat_spec *sp = make_spec();
    wd_hparams hp = hparams(WD_BOTH);
    wd_model *m;
    ASSERT_OK(wd_model_new(&m, sp, &hp));
    for (int64_t j = 0; j <= sp->wide_dim; j++) m->wide_w[j] = 0.01f * (float)j;
    enum { B = 10 };
    wd_scratch *s = wd_scratch_new(m, B);
    float y[B], p1[B];
    synth_batch(m, s, B, y, 8);
    memcpy(p1, s->prob, sizeof p1);
    json_t *extra = json_pack("{s:{s:f}}", "metrics", "auc", 0.5);
    uint64_t ver = 0;
    ASSERT_OK(wd_save(m, test_tmpdir(), 0, extra, &ver));
    json_decref(extra);
    ASSERT_EQ(ver, 1);
    char dir[512];
    snap_path(dir, sizeof dir, test_tmpdir(), "widedeep", ver);
    snap *sn;
    ASSERT_OK(snap_open(&sn, dir));
    const model_type *t = model_type_find("widedeep");
    ASSERT(t != NULL);
    void *h;
    ASSERT_OK(t->load(&h, sn));
    wd_model *m2 = h;
    /* zero copy: the tables are the snapshot's own bytes */
    ASSERT(m2->emb[0] == snap_tensor_get(sn, "emb.c2")->data);
    ASSERT(m2->emb[1] == snap_tensor_get(sn, "emb.c1_x_c2")->data);
    ASSERT(m2->wide == snap_tensor_get(sn, "wide")->data);
    ASSERT(m2->W[0] == snap_tensor_get(sn, "mlp.W0")->data);
    ASSERT(m2->params == NULL);
    ASSERT_NEAR(json_real_value(json_object_get(json_object_get(snap_meta(sn), "metrics"), "auc")), 0.5, 1e-12);
    wd_scratch *s2 = wd_scratch_new(m2, B);
    synth_batch(m2, s2, B, y, 8);
    for (int i = 0; i < B; i++) ASSERT_NEAR(s2->prob[i], p1[i], 1e-7);
    ASSERT_OK(t->warm(h));
    /* a loaded model is read-only */
    wd_grads *g = wd_grads_new(m2, B);
    wd_optim o;
    ASSERT_OK(wd_optim_init(&o, m2));
    ASSERT_RC(wd_apply(m2, &o, g), RC_ESTATE);
    wd_optim_release(&o);
    wd_grads_free(m2, g);
    wd_scratch_free(s2);
    t->free(h);
    snap_close(sn);
    wd_scratch_free(s);
    wd_model_free(m);
}

TEST(wd_score_batch_matches_single_and_context)
{
    feat_spec *sp = make_spec();
    wd_hparams hp = hparams(WD_BOTH);
    wd_model *m;
    ASSERT_OK(wd_model_new(&m, sp, &hp));
    for (int64_t j = 0; j <= sp->wide_dim; j++) m->wide_w[j] = 0.02f * (float)(j % 5) - 0.04f;
    enum { B = 9 };
    wd_scratch *s = wd_scratch_new(m, B), *one = wd_scratch_new(m, 1);
    /* context gives x1 and c1; candidates give x2 and c2, and candidate 4 overrides c1 */
    feat_value ctx[5] = {{FEAT_V_NUM, NULL, 0, 0.25}, {FEAT_V_MISSING, NULL, 0, 0}, {FEAT_V_STR, "b", 1, 0},
                         {FEAT_V_MISSING, NULL, 0, 0}, {FEAT_V_MISSING, NULL, 0, 0}};
    feat_value cand[B * 5];
    char ids[B][16];
    memset(cand, 0, sizeof cand);
    for (int i = 0; i < B; i++) {
        snprintf(ids[i], sizeof ids[i], "k%d", i);
        cand[i * 5 + 1] = (feat_value){FEAT_V_NUM, NULL, 0, 0.1 * i};
        cand[i * 5 + 3] = (feat_value){FEAT_V_STR, ids[i], strlen(ids[i]), 0};
    }
    cand[4 * 5 + 2] = (feat_value){FEAT_V_STR, "zz", 2, 0}; /* unknown: OOV */
    ASSERT_OK(wd_score(m, s, ctx, cand, B, NULL));
    for (int i = 0; i < B; i++) {
        feat_value full[5];
        for (int k = 0; k < 5; k++) full[k] = cand[i * 5 + k].kind != FEAT_V_MISSING ? cand[i * 5 + k] : ctx[k];
        ASSERT_OK(wd_score(m, one, NULL, full, 1, NULL));
        ASSERT_NEAR(one->prob[0], s->prob[i], 1e-6);
        ASSERT_NEAR(one->logit[0], s->logit[i], 1e-5);
    }
    /* a type error names the row */
    cand[6 * 5 + 1] = (feat_value){FEAT_V_STR, "tall", 4, 0};
    int bad = -1;
    ASSERT_RC(wd_score(m, s, ctx, cand, B, &bad), RC_EFORMAT);
    ASSERT_EQ(bad, 6);
    ASSERT_CONTAINS(rc_errmsg(), "'x2'");
    ASSERT_RC(wd_score(m, one, ctx, cand, 2, NULL), RC_EFULL);
    wd_scratch_free(s);
    wd_scratch_free(one);
    wd_model_free(m);
}

TEST(wd_load_refuses_bad_snapshots)
{
    feat_spec *sp = make_spec();
    json_t *spec = feat_spec_to_json(sp);
    feat_spec_free(sp);
    char dir[512];
    const model_type *t = model_type_find("widedeep");
    /* 1: a widedeep meta without its tensors; 2: no spec; 3: a bad variant */
    for (int c = 0; c < 3; c++) {
        snap_writer *w;
        ASSERT_OK(snap_writer_open(&w, test_tmpdir(), "widedeep", 0));
        json_t *meta = json_pack("{s:O,s:s,s:[i]}", "spec", spec, "variant", c == 2 ? "both" : "widedeep", "hidden", 4);
        if (c == 1) json_object_del(meta, "spec");
        ASSERT_OK(snap_set_meta(w, meta));
        json_decref(meta);
        uint64_t ver;
        ASSERT_OK(snap_writer_publish(w, &ver));
        snap_path(dir, sizeof dir, test_tmpdir(), "widedeep", ver);
        snap *sn;
        ASSERT_OK(snap_open(&sn, dir));
        void *h = NULL;
        ASSERT_RC(t->load(&h, sn), RC_ECORRUPT);
        ASSERT(h == NULL);
        if (c == 0) ASSERT_CONTAINS(rc_errmsg(), "wide");
        if (c == 1) ASSERT_CONTAINS(rc_errmsg(), "feature spec");
        if (c == 2) ASSERT_CONTAINS(rc_errmsg(), "variant");
        snap_close(sn);
    }
    json_decref(spec);
}

TEST(wd_backward_loss_of_saturated_predictions)
{
    /* A confident mistake (logit 40, label 0) costs 40 nats; the loss clamped the float probability
     * (1.0f there) to 1 - 1e-7 and reported 16.1. */
    feat_spec *sp = make_spec();
    wd_hparams hp = hparams(WD_WIDE);
    wd_model *m;
    ASSERT_OK(wd_model_new(&m, sp, &hp));
    enum { B = 2 };
    wd_scratch *s = wd_scratch_new(m, B);
    wd_grads *g = wd_grads_new(m, B);
    ASSERT(s && g);
    float y[B];
    synth_batch(m, s, B, y, 3);
    m->wide_w[sp->wide_dim] = 40.0f; /* the bias: every logit is 40 + 0 */
    wd_forward(m, s, B);
    ASSERT_NEAR(s->logit[0], 40.0, 1e-5);
    y[0] = 0.0f;
    y[1] = 1.0f;
    double loss = wd_backward(m, s, y, B, g);
    ASSERT_NEAR(loss, (40.0 + log1p(exp(-40.0)) + log1p(exp(-40.0))) / 2, 1e-4);
    wd_grads_free(m, g);
    wd_scratch_free(s);
    wd_model_free(m);
}
