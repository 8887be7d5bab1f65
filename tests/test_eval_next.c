/* tests/test_eval_next.c - the generic evaluation of `next` models (trainer/eval_next.h:
 * next_model_scorer, `recd eval MODEL` = next_eval_cmd). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"
#include "core/itemscore.h"
#include "core/rng.h"
#include "models/gru4rec.h"
#include "models/model.h"
#include "tests/testlib.h"
#include "trainer/eval_next.h"

/* The reference: GRU4Rec's own step and score, per-lane states (what trainer/train_gru4rec.c did before
 * the generic scorer). */
typedef struct ref_scorer {
    const gru4rec *m;
    gru4rec_scratch *sc;
    float *h, *hb;
    size_t S;
} ref_scorer;

static int ref_begin(void *ctx, int lanes)
{
    ref_scorer *g = ctx;
    g->S = gru4rec_state_size(g->m);
    g->sc = gru4rec_scratch_new(g->m, lanes);
    g->h = calloc((size_t)lanes * g->S, sizeof(float));
    g->hb = calloc((size_t)lanes * g->S, sizeof(float));
    return g->sc && g->h && g->hb ? RC_OK : RC_ENOMEM;
}

static int ref_score(void *ctx, const int *lanes, const int32_t *items, const uint8_t *reset, int B, float *scores)
{
    ref_scorer *g = ctx;
    size_t S = g->S;
    for (int b = 0; b < B; b++) {
        if (reset[b]) memset(g->hb + (size_t)b * S, 0, S * sizeof(float));
        else memcpy(g->hb + (size_t)b * S, g->h + (size_t)lanes[b] * S, S * sizeof(float));
    }
    gru4rec_step(g->m, g->hb, items, B, g->sc);
    for (int b = 0; b < B; b++) memcpy(g->h + (size_t)lanes[b] * S, g->hb + (size_t)b * S, S * sizeof(float));
    gru4rec_score(g->m, g->hb, B, scores, g->sc);
    return RC_OK;
}

static void ref_end(void *ctx)
{
    ref_scorer *g = ctx;
    gru4rec_scratch_free(g->sc);
    free(g->h);
    free(g->hb);
}

/* A random GRU4Rec over N items (every parameter perturbed, so By is not zero) and test sessions over
 * them: the generic scorer with BLAS f32 gives exactly the reference's metrics; a packed kernel gives
 * nearly the same. */
TEST(eval_next_model_scorer_matches_gru4rec)
{
    enum { N = 83, NS = 150 };
    idmap *items = idmap_new(0);
    ASSERT(items);
    char key[32];
    for (int i = 0; i < N; i++) {
        int len = snprintf(key, sizeof key, "i%d", i);
        ASSERT_EQ(idmap_intern(items, key, (size_t)len), i);
    }
    gru4rec_hparams hp;
    gru4rec_hparams_default(&hp);
    hp.n_layers = 2;
    hp.layers[0] = 10;
    hp.layers[1] = 13;
    hp.batch_size = 4;
    hp.n_sample = 5;
    hp.sample_cache = 50;
    gru4rec *m = NULL;
    ASSERT_OK(gru4rec_new_random(&m, &hp, items, NULL, 3));
    size_t np;
    float *p = gru4rec_params_buf(m, &np);
    rng_t r;
    rng_seed(&r, 4);
    for (size_t i = 0; i < np; i++) p[i] += 0.5f * (2 * rng_uniformf(&r) - 1);
    /* sessions of 1..9 clicks (length-1 sessions give no prediction and are skipped by the harness) */
    int64_t offsets[NS + 1];
    int32_t clicks[NS * 9];
    offsets[0] = 0;
    for (int s = 0; s < NS; s++) {
        int len = 1 + (int)rng_below(&r, 9);
        for (int k = 0; k < len; k++) clicks[offsets[s] + k] = (int32_t)rng_below(&r, N);
        offsets[s + 1] = offsets[s] + len;
    }
    sess_data test;
    memset(&test, 0, sizeof test);
    test.items = clicks;
    test.offsets = offsets;
    test.n_sessions = NS;
    test.n_events = offsets[NS];
    test.n_items = N;
    test.item_vocab = items;
    for (int lanes = 1; lanes <= 64; lanes *= 4) {
        next_eval_opts eo;
        next_eval_opts_default(&eo);
        eo.lanes = lanes;
        eo.progress = 0;
        ref_scorer g = {.m = m};
        next_scorer rsc = {.ctx = &g, .begin = ref_begin, .score = ref_score, .end = ref_end};
        metrics_topk want, got;
        ASSERT_OK(next_eval(&test, &rsc, &eo, &want));
        ASSERT(want.n > 100);
        next_model_scorer ms;
        next_scorer sc;
        ASSERT_OK(next_model_scorer_init(&ms, &sc, &gru4rec_type, m, ITEMSCORE_BLAS, ITEMSCORE_F32));
        ASSERT_EQ(next_model_scorer_kernel(&ms), ITEMSCORE_BLAS);
        ASSERT_OK(next_eval(&test, &sc, &eo, &got));
        next_model_scorer_free(&ms);
        next_model_scorer_free(&ms); /* twice is fine */
        ASSERT_EQ(got.n, want.n);
        for (int i = 0; i < want.ncut; i++) {
            ASSERT_EQ(got.hits[i], want.hits[i]);
            ASSERT(got.rr[i] == want.rr[i]); /* the same floats, so the same ranks */
        }
        /* the widest packed kernel: the same ranks up to float rounding */
        ASSERT_OK(next_model_scorer_init(&ms, &sc, &gru4rec_type, m, ITEMSCORE_AUTO, ITEMSCORE_F32));
        ASSERT_OK(next_eval(&test, &sc, &eo, &got));
        next_model_scorer_free(&ms);
        ASSERT_EQ(got.n, want.n);
        for (int i = 0; i < want.ncut; i++) ASSERT(llabs(got.hits[i] - want.hits[i]) <= 2);
    }
    /* a type without `next` is refused */
    model_type none = {.name = "none"};
    next_model_scorer ms;
    next_scorer sc;
    ASSERT_RC(next_model_scorer_init(&ms, &sc, &none, m, ITEMSCORE_BLAS, ITEMSCORE_F32), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "next");
    next_model_scorer_free(&ms);
    gru4rec_free(m);
    idmap_free(items);
}

/* `recd eval gru4rec` through next_eval_cmd: --test alone gives the figures of --train/--test and of the
 * training run; a snapshot of another model, missing inputs and bad settings are refused. */
TEST_TIMEOUT(eval_next_cli, 120)
{
    const char *tmp = test_tmpdir(), *bin = test_recd_bin();
    char out[8192], out2[8192], want[160];
    int st = test_run(out, sizeof out,
                      "cd %s && %s synth sessions --out s.tsv --sessions 600 --items 60 --seed 3 && "
                      "%s split sessions --data s.tsv --out split --quiet",
                      tmp, bin, bin);
    if (st != 0) FAIL("synth/split exited %d: %s", st, out);
    st = test_run(out, sizeof out,
                  "cd %s && %s train gru4rec --train split/train.tsv --test split/test.tsv --out snaps --quiet "
                  "--layers '[16]' --batch_size 16 --n_sample 32 --sample_cache 2000 2>&1",
                  tmp, bin);
    if (st != 0) FAIL("train exited %d: %s", st, out);
    const char *p = strstr(out, "gru4rec recall@20=");
    ASSERT(p);
    const char *q = strstr(p, " mrr@5=");
    ASSERT(q);
    snprintf(want, sizeof want, "%.*s", (int)(strchr(q + 1, ' ') - p), p); /* up to mrr@5 */
    st = test_run(out2, sizeof out2, "cd %s && %s eval gru4rec --snapshot snaps/gru4rec --test split/test.tsv --quiet",
                  tmp, bin);
    if (st != 0) FAIL("eval exited %d: %s", st, out2);
    ASSERT_CONTAINS(out2, want);
    ASSERT_CONTAINS(out2, "predictions=");
    st = test_run(out2, sizeof out2,
                  "cd %s && %s eval gru4rec --snapshot snaps/gru4rec/1 --train split/train.tsv --test split/test.tsv "
                  "--quiet --eval-lanes 5 --score_kernel auto --name L",
                  tmp, bin);
    if (st != 0) FAIL("eval exited %d: %s", st, out2);
    ASSERT_CONTAINS(out2, "L recall@20=");
    /* usage errors: exit 2 naming the problem */
    st = test_run(out2, sizeof out2, "cd %s && %s eval gru4rec --snapshot snaps/gru4rec 2>&1", tmp, bin);
    ASSERT_EQ(st, 2);
    ASSERT_CONTAINS(out2, "--test");
    st = test_run(out2, sizeof out2,
                  "cd %s && %s eval gru4rec --snapshot snaps/gru4rec --test split/test.tsv --score_kernel sse 2>&1",
                  tmp, bin);
    ASSERT_EQ(st, 2);
    ASSERT_CONTAINS(out2, "score_kernel");
    st = test_run(out2, sizeof out2, "cd %s && %s eval gru4rec --snapshot snaps/gru4rec --test split/test.tsv --nope 1 2>&1",
                  tmp, bin);
    ASSERT_EQ(st, 2);
    ASSERT_CONTAINS(out2, "--nope");
    st = test_run(out2, sizeof out2,
                  "cd %s && %s eval gru4rec --snapshot snaps/gru4rec --test split/test.tsv --no-sort 2>&1", tmp, bin);
    ASSERT_EQ(st, 2);
    ASSERT_CONTAINS(out2, "sort_by_time");
    st = test_run(out2, sizeof out2, "cd %s && %s eval gru4rec --help", tmp, bin);
    ASSERT_EQ(st, 0);
    ASSERT_CONTAINS(out2, "--snapshot");
    ASSERT_CONTAINS(out2, "--item_col");
    /* a snapshot of another model than the command's */
    char snapdir[1200], testf[1200];
    snprintf(snapdir, sizeof snapdir, "%s/snaps/gru4rec", tmp);
    snprintf(testf, sizeof testf, "%s/split/test.tsv", tmp);
    char *argv[] = {"itemknn", "--snapshot", snapdir, "--test", testf, "--quiet", NULL};
    ASSERT_EQ(next_eval_cmd(6, argv), 1);
}
