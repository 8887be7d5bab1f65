/* trainer/train_biasedmf.c - `recd train biasedmf`: biased matrix factorisation on explicit ratings
 * (models/biasedmf.h) under the rating protocol of trainer/ratings.h.
 *
 *   recd train biasedmf -c configs/biasedmf.json (--data F | --train F [--valid F] [--test F]) [--out DIR]
 *                       [--SETTING VALUE ...]
 *
 * --data: all ratings, split 90/10 by split_seed with 10% of the training part for validation (the
 * epoch with the best validation RMSE is kept); --train/--valid/--test: files already split (`recd split
 * ratings`). Trains with SGD or ALS, evaluates on the test ratings (unknown user or item: the default
 * rating), publishes OUT/NAME/VERSION (NAME: --name, else "biasedmf") whose meta holds the settings, the
 * data (rt_job_meta), the training time and the validation and test metrics, and prints one line:
 *   biasedmf rmse=.. mae=.. rmse_clipped=.. mae_clipped=.. n=.. n_default=.. train_s=.. valid_rmse=.. epochs=..
 * `recd eval biasedmf --snapshot DIR --test F` scores a published snapshot (rt_eval_cmd).
 * The command itself is rt_train_main (trainer/ratings.h); this file is its settings and hooks.
 *
 * configs/biasedmf.json (SGD, F 128, lr 0.005 x 0.99 per epoch, reg 0.04, reg_bias 0.01, init_std 0.01;
 * tuned on the validation RMSE of split seed 1) gives ML-1M test RMSE 0.8422 (mean of split seeds 1..5,
 * about 80 epochs, 9 s of training each on one core) and ML-100K 0.9088. configs/biasedmf_als.json
 * (ALS, F 64, reg 0.07): ML-1M 0.8535, ML-100K 0.9248. A small init_std matters for SGD (0.1: 0.847 at best),
 * a large one for ALS (0.01 starts it near the zero solution).
 */
#include <cblas.h>
#include <stddef.h>
#include <stdio.h>

#include "core/config.h"
#include "core/err.h"
#include "models/biasedmf.h"
#include "trainer/ratings.h"

int biasedmf_cmd_train(int argc, char **argv);

typedef struct bmf_cfg {
    rt_opts rt;
    long long factors, epochs, patience;
    char *solver;
    double lr, lr_decay, reg, reg_bias, init_std;
} bmf_cfg;

static const cfg_def bmf_defs[] = {
    RT_CFG_ENTRIES(bmf_cfg, rt),
    CFG_INT("factors", bmf_cfg, factors, 128, 1, 4096, "F: latent factors per user and item"),
    CFG_ENUM("solver", bmf_cfg, solver, "sgd", "sgd|als",
             "sgd: per-rating steps in shuffled order | als: exact least squares per user, then per item"),
    CFG_INT("epochs", bmf_cfg, epochs, 200, 1, 1000000, "at most this many epochs (ALS: one user and one item sweep)"),
    CFG_INT("patience", bmf_cfg, patience, 5, 0, 1000000,
            "stop after this many epochs without a better validation RMSE (0: run every epoch)"),
    CFG_DOUBLE("lr", bmf_cfg, lr, 0.005, 1e-9, 10, "SGD step size"),
    CFG_DOUBLE("lr_decay", bmf_cfg, lr_decay, 0.99, 1e-9, 1, "SGD: lr is multiplied by this after each epoch"),
    CFG_DOUBLE("reg", bmf_cfg, reg, 0.04, 0, 1e6, "L2 on the factors, per rating (ALS: must be > 0)"),
    CFG_DOUBLE("reg_bias", bmf_cfg, reg_bias, 0.01, 0, 1e6, "L2 on the user and item biases, per rating"),
    CFG_DOUBLE("init_std", bmf_cfg, init_std, 0.01, 0, 10, "factors start N(0, init_std^2)"),
    CFG_END,
};

typedef struct bmf_stats {
    int epochs_run;
} bmf_stats;

static int bmf_setup(rt_run *r)
{
    const bmf_cfg *c = r->cfg;
    biasedmf_hparams *hp = r->hp;
    biasedmf_hparams_default(hp);
    hp->factors = (int)c->factors;
    hp->solver = c->solver;
    hp->epochs = (int)c->epochs;
    hp->patience = (int)c->patience;
    hp->lr = c->lr;
    hp->lr_decay = c->lr_decay;
    hp->reg = c->reg;
    hp->reg_bias = c->reg_bias;
    hp->init_std = c->init_std;
    return biasedmf_hparams_check(hp);
}

static int bmf_train(rt_run *r, const rb_train_input *in)
{
    const biasedmf_hparams *hp = r->hp;
    bmf_stats *st = r->st;
    openblas_set_num_threads(1); /* ALS solves rows on our own threads; each BLAS call is small */
    biasedmf *m = biasedmf_new(in->by_user.rows, in->by_item.rows, hp->factors, in->mean, hp->init_std, in->seed);
    if (!(r->model = m)) return RC_ENOMEM; /* message set */
    return biasedmf_train(m, hp, in, &r->valid_rmse, &st->epochs_run);
}

static void bmf_predict(const void *m, const rb_triples *t, float def, float *out, uint8_t *fb)
{
    biasedmf_predict(m, t, def, out, fb);
}

static json_t *bmf_hparams_json(const rt_run *r)
{
    const biasedmf_hparams *hp = r->hp;
    return json_pack("{s:i, s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:f}", "factors", hp->factors, "solver", hp->solver,
                     "epochs", hp->epochs, "patience", hp->patience, "lr", hp->lr, "lr_decay", hp->lr_decay, "reg",
                     hp->reg, "reg_bias", hp->reg_bias, "init_std", hp->init_std);
}

static json_t *bmf_train_json(const rt_run *r)
{
    const bmf_stats *st = r->st;
    return json_pack("{s:f, s:i, s:I}", "train_s", r->train_s, "epochs_run", st->epochs_run, "threads",
                     (json_int_t)r->o->threads);
}

static void bmf_result_extra(const rt_run *r, char *buf, size_t cap)
{
    const biasedmf_hparams *hp = r->hp;
    const bmf_stats *st = r->st;
    snprintf(buf, cap, "valid_rmse=%.4f epochs=%d factors=%d solver=%s version=%llu", r->valid_rmse, st->epochs_run,
             hp->factors, hp->solver, (unsigned long long)r->version);
}

static int bmf_save(const rt_run *r, const rating_base_src *src, const char *root, const json_t *extra,
                    uint64_t *version)
{
    return biasedmf_save(r->model, src, root, r->label, extra, version);
}

static void bmf_free(void *m) { biasedmf_free(m); }

static const rt_trainer bmf_trainer = {
    .name = "biasedmf",
    .usage = "usage: recd train biasedmf -c CONFIG (--data F | --train F [--valid F] [--test F]) [--out DIR] "
             "[--SETTING VALUE ...]\n"
             "  --data F   all ratings (MovieLens '::', tab or comma files, a folder, or a,b,c; gzip ok): split\n"
             "             (test_frac, then valid_frac of the rest) by split_seed\n"
             "  --train F --valid F --test F   files already split (as `recd split ratings` writes)\n"
             "Trains biased MF (mu + b_u + b_i + p_u.q_i) by SGD or ALS, keeps the epoch with the best validation\n"
             "RMSE, prints the test RMSE/MAE line and publishes OUT/NAME/VERSION.\n"
             "settings (config file keys, or --SETTING VALUE; '-' and '_' are the same in flags, file keys are "
             "exact):\n",
    .defs = bmf_defs,
    .cfg_size = sizeof(bmf_cfg),
    .rt_offset = offsetof(bmf_cfg, rt),
    .hp_size = sizeof(biasedmf_hparams),
    .st_size = sizeof(bmf_stats),
    .flags = RT_META_VALID,
    .setup = bmf_setup,
    .train = bmf_train,
    .predict = bmf_predict,
    .hparams_json = bmf_hparams_json,
    .train_json = bmf_train_json,
    .result_extra = bmf_result_extra,
    .save = bmf_save,
    .free = bmf_free,
};

int biasedmf_cmd_train(int argc, char **argv) { return rt_train_main(&bmf_trainer, argc, argv); }
