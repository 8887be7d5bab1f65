/* trainer/train_llorma.c - `recd train llorma`: LLORMA, local low-rank matrix approximation
 * (models/llorma.h), under the rating protocol of trainer/ratings.h.
 *
 *   recd train llorma -c configs/llorma.json (--data F | --train F [--valid F] [--test F]) [--out DIR]
 *                     [--SETTING VALUE ...]
 *
 * --data: all ratings, split 90/10 by split_seed with 10% of the training part for validation (the
 * global model's epochs and each local model's epochs are chosen on it); --train/--valid/--test: files
 * already split (`recd split ratings`). Trains the global model, then the anchors' local models on
 * `threads` threads, evaluates on the test ratings (unknown user or item: the default rating),
 * publishes OUT/NAME/VERSION (NAME: --name, else "llorma") whose meta holds the settings, the data
 * (rt_job_meta), the training figures and the validation and test metrics, and prints one line:
 *   llorma rmse=.. mae=.. rmse_clipped=.. mae_clipped=.. n=.. n_default=.. train_s=.. valid_rmse=.. ...
 * With --refit (and validation ratings; configs/llorma.json sets it, as the AutoRec trainer does), the
 * epochs chosen on the validation ratings (the global model's and the local models') then train a
 * second model from the same seed on the training and validation ratings together (the paper's 90% of
 * the data); that model is the one tested and published, and the validation metrics in its meta are
 * those of the first model (refit=1 in the result line).
 * `recd eval llorma --snapshot DIR --test F` scores a published snapshot (rt_eval_cmd).
 * The command itself is rt_train_main (trainer/ratings.h); this file is its settings and hooks.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "models/llorma.h"
#include "trainer/ratings.h"

int llorma_cmd_train(int argc, char **argv);

typedef struct llorma_cfg {
    rt_opts rt;
    long long anchors, rank, epochs, patience, global_rank, global_epochs, global_patience;
    double bandwidth, lr, lr_decay, reg, init_std, global_lr, global_lr_decay, global_reg, global_reg_bias,
        global_init_std;
    char *local_base, *solver, *local_init;
    int local_biases, refit;
} llorma_cfg;

static const cfg_def llorma_defs[] = {
    RT_CFG_ENTRIES(llorma_cfg, rt),
    CFG_INT("anchors", llorma_cfg, anchors, 50, 1, 100000, "q: anchor points, one local model each"),
    CFG_INT("rank", llorma_cfg, rank, 20, 1, 4096, "r: rank of each local model"),
    CFG_DOUBLE("bandwidth", llorma_cfg, bandwidth, 3.14, 1e-6, 3.14159265358979,
               "h: Epanechnikov width in radians of the angle between global user (item) vectors"),
    CFG_ENUM("local_base", llorma_cfg, local_base, "mean", "zero|mean|global",
             "what a local model adds its product to: 0 (the paper), the mean, the global model's prediction"),
    CFG_BOOL("local_biases", llorma_cfg, local_biases, 1, "each local model has its own user and item biases"),
    CFG_ENUM("solver", llorma_cfg, solver, "sgd", "sgd|als", "local models by weighted SGD or weighted ALS"),
    CFG_ENUM("local_init", llorma_cfg, local_init, "random", "random|global",
             "local factors start random or from the global model's"),
    CFG_INT("epochs", llorma_cfg, epochs, 150, 1, 1000000, "local models: at most this many epochs, all in lockstep"),
    CFG_INT("patience", llorma_cfg, patience, 5, 0, 1000000,
            "stop after this many epochs without a better validation RMSE of the whole model (0: never)"),
    CFG_DOUBLE("lr", llorma_cfg, lr, 0.01, 1e-12, 10, "local SGD step"),
    CFG_DOUBLE("lr_decay", llorma_cfg, lr_decay, 1, 1e-6, 1, "local SGD: lr is multiplied by this after each epoch"),
    CFG_DOUBLE("reg", llorma_cfg, reg, 0.02, 0, 1e6, "local L2, per rating and weighted like it"),
    CFG_DOUBLE("init_std", llorma_cfg, init_std, 0.1, 0, 100, "local factors start N(c, init_std^2)"),
    CFG_INT("global_rank", llorma_cfg, global_rank, 10, 1, 4096, "F: rank of the global model (distances, fallback)"),
    CFG_INT("global_epochs", llorma_cfg, global_epochs, 60, 1, 1000000, "global model: at most this many epochs"),
    CFG_INT("global_patience", llorma_cfg, global_patience, 3, 0, 1000000,
            "global model: stop after this many epochs without a better validation RMSE (0: never)"),
    CFG_DOUBLE("global_lr", llorma_cfg, global_lr, 0.01, 1e-12, 10, "global SGD step"),
    CFG_DOUBLE("global_lr_decay", llorma_cfg, global_lr_decay, 0.95, 1e-6, 1, "global SGD: lr decay per epoch"),
    CFG_DOUBLE("global_reg", llorma_cfg, global_reg, 0.05, 0, 1e6, "global L2 on the factors, per rating"),
    CFG_DOUBLE("global_reg_bias", llorma_cfg, global_reg_bias, 0.01, 0, 1e6, "global L2 on the biases, per rating"),
    CFG_DOUBLE("global_init_std", llorma_cfg, global_init_std, 0.1, 0, 100, "global factors start N(0, std^2)"),
    CFG_BOOL("refit", llorma_cfg, refit, 0,
             "retrain on training + validation ratings for the epochs chosen on validation; publish that model"),
    CFG_END,
};

static int ll_setup(rt_run *r)
{
    const llorma_cfg *c = r->cfg;
    llorma_hparams *hp = r->hp;
    llorma_hparams_default(hp);
    hp->anchors = (int)c->anchors;
    hp->rank = (int)c->rank;
    hp->bandwidth = c->bandwidth;
    hp->local_base = llorma_base_parse(c->local_base);
    hp->local_biases = c->local_biases;
    hp->solver = strcmp(c->solver, "als") == 0 ? LLORMA_SOLVER_ALS : LLORMA_SOLVER_SGD;
    hp->local_init = strcmp(c->local_init, "global") == 0 ? LLORMA_INIT_GLOBAL : LLORMA_INIT_RANDOM;
    hp->epochs = (int)c->epochs;
    hp->patience = (int)c->patience;
    hp->lr = c->lr;
    hp->lr_decay = c->lr_decay;
    hp->reg = c->reg;
    hp->init_std = c->init_std;
    hp->global_rank = (int)c->global_rank;
    hp->global_epochs = (int)c->global_epochs;
    hp->global_patience = (int)c->global_patience;
    hp->global_lr = c->global_lr;
    hp->global_lr_decay = c->global_lr_decay;
    hp->global_reg = c->global_reg;
    hp->global_reg_bias = c->global_reg_bias;
    hp->global_init_std = c->global_init_std;
    r->refit = c->refit;
    return llorma_hparams_check(hp);
}

/* run.st: the first pass's figures (coverage replaced by the refit's) */
static int ll_train(rt_run *r, const rb_train_input *in)
{
    const llorma_hparams *hp = r->hp;
    llorma_train_stats *st = r->st;
    llorma *m = llorma_new(in->by_user.rows, in->by_item.rows, hp, in->mean);
    if (!(r->model = m)) return RC_ENOMEM; /* message set */
    int rc = llorma_train(m, hp, in, st);
    r->valid_rmse = st->valid_rmse;
    return rc;
}

/* The global model's and the local models' chosen epochs again, on the training + validation ratings. */
static int ll_refit(rt_run *r, const rb_train_input *in)
{
    llorma_train_stats *st = r->st, st2;
    llorma_hparams hp2 = *(const llorma_hparams *)r->hp;
    hp2.epochs = st->best_epoch > 0 ? st->best_epoch : 1;
    hp2.global_epochs = st->global_best_epoch > 0 ? st->global_best_epoch : 1;
    log_info("llorma: refit on %lld training + validation ratings: global model %d epochs, local models %d",
             (long long)r->n_train, hp2.global_epochs, hp2.epochs);
    llorma_free(r->model);
    llorma *m = llorma_new(in->by_user.rows, in->by_item.rows, &hp2, in->mean);
    if (!(r->model = m)) return RC_ENOMEM; /* message set */
    int rc = llorma_train(m, &hp2, in, &st2);
    st->coverage = st2.coverage;
    return rc;
}

static void ll_predict(const void *m, const rb_triples *t, float def, float *out, uint8_t *fb)
{
    llorma_predict(m, t, def, out, fb);
}

static json_t *ll_train_json(const rt_run *r)
{
    const llorma_train_stats *st = r->st;
    return json_pack("{s:f, s:I, s:f, s:f, s:i, s:i, s:i, s:f, s:b, s:I}", "train_s", r->train_s, "threads",
                     (json_int_t)r->o->threads, "valid_rmse", isnan(st->valid_rmse) ? -1.0 : st->valid_rmse,
                     "global_valid_rmse", isnan(st->global_valid_rmse) ? -1.0 : st->global_valid_rmse,
                     "global_epochs", st->global_epochs, "epochs", st->epochs, "best_epoch", st->best_epoch,
                     "coverage", st->coverage, "refit", r->refit, "n_train", (json_int_t)r->n_train);
}

static void ll_result_extra(const rt_run *r, char *buf, size_t cap)
{
    const llorma_hparams *hp = r->hp;
    const llorma_train_stats *st = r->st;
    snprintf(buf, cap,
             "valid_rmse=%.4f global_valid_rmse=%.4f epochs=%d anchors=%d rank=%d bandwidth=%.3f coverage=%.3f%s "
             "version=%llu",
             st->valid_rmse, st->global_valid_rmse, st->best_epoch, hp->anchors, hp->rank, hp->bandwidth,
             st->coverage, r->refit ? " refit=1" : "", (unsigned long long)r->version);
}

static int ll_save(const rt_run *r, const rating_base_src *src, const char *root, const json_t *extra,
                   uint64_t *version)
{
    return llorma_save(r->model, r->hp, src, root, r->label, extra, version);
}

static void ll_free(void *m) { llorma_free(m); }

static const rt_trainer llorma_trainer = {
    .name = "llorma",
    .usage = "usage: recd train llorma -c CONFIG (--data F | --train F [--valid F] [--test F]) [--out DIR] "
             "[--SETTING VALUE ...]\n"
             "  --data F   all ratings (MovieLens '::', tab or comma files, a folder, or a,b,c; gzip ok): split\n"
             "             (test_frac, then valid_frac of the rest) by split_seed\n"
             "  --train F --valid F --test F   files already split (as `recd split ratings` writes)\n"
             "Trains LLORMA (a global MF gives user and item distances; q local rank-r models around random\n"
             "anchor ratings, each on kernel-weighted ratings, on `threads` threads; predictions are the\n"
             "kernel-weighted mean), prints the test RMSE/MAE line and publishes OUT/NAME/VERSION.\n"
             "settings (config file keys, or --SETTING VALUE; '-' and '_' are the same in flags, file keys are "
             "exact):\n",
    .defs = llorma_defs,
    .cfg_size = sizeof(llorma_cfg),
    .rt_offset = offsetof(llorma_cfg, rt),
    .hp_size = sizeof(llorma_hparams),
    .st_size = sizeof(llorma_train_stats),
    .flags = RT_META_VALID,
    .setup = ll_setup,
    .train = ll_train,
    .refit = ll_refit,
    .predict = ll_predict,
    .train_json = ll_train_json,
    .result_extra = ll_result_extra,
    .save = ll_save,
    .free = ll_free,
};

int llorma_cmd_train(int argc, char **argv) { return rt_train_main(&llorma_trainer, argc, argv); }
