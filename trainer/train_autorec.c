/* trainer/train_autorec.c - `recd train autorec`: I-AutoRec / U-AutoRec (models/autorec.h) on explicit
 * ratings.
 *
 *   recd train autorec -c configs/i-autorec.json --data F [--out DIR] [--SETTING VALUE ...]
 *   recd train autorec --variant user --train F --valid F --test F
 *
 * Reads and splits the ratings as every rating trainer does (trainer/ratings.h: --data F split 90/10 by
 * split_seed, 10% of the training part held out for validation; or --train/--valid/--test already
 * split), trains full batch (L-BFGS or Rprop) keeping the iteration with the best validation RMSE,
 * predicts the test ratings (the default rating where the user or the item has no training rating),
 * publishes OUT/NAME/VERSION (NAME: --name, else "i-autorec" or "u-autorec" by variant; meta "type":
 * "autorec") and prints the result line of rt_print_result with `iters=N kept=K valid_rmse=X` appended.
 * With --refit (and validation ratings), the iteration K chosen on the validation ratings is then used
 * to train a second model from the same seed on the training and validation ratings together (the
 * paper's 90% of the data), K iterations; that model is the one tested and published (`refit=1`).
 * `recd eval autorec --snapshot OUT/i-autorec --test F` scores a published snapshot.
 * The command itself is rt_train_main (trainer/ratings.h); this file is its settings and hooks.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "models/autorec.h"
#include "trainer/ratings.h"

int autorec_cmd_train(int argc, char **argv);

typedef struct ar_cfg {
    rt_opts rt;
    char *variant, *optimizer;
    long long hidden, epochs, eval_every, patience, lbfgs_m;
    double lambda, rprop_step, rprop_step_max, init_scale;
    int refit;
} ar_cfg;

static const cfg_def ar_defs[] = {
    RT_CFG_ENTRIES(ar_cfg, rt),
    CFG_ENUM("variant", ar_cfg, variant, "item", "item|user",
             "item: I-AutoRec (each item's ratings encoded); user: U-AutoRec (each user's)"),
    CFG_INT("hidden", ar_cfg, hidden, 500, 1, 65536, "K: hidden units (sigmoid)"),
    CFG_DOUBLE("lambda", ar_cfg, lambda, 200, 0, 1e9, "L2 on W and V; the loss is a sum over ratings"),
    CFG_ENUM("optimizer", ar_cfg, optimizer, "auto", "auto|lbfgs|rprop",
             "full-batch optimiser (auto: lbfgs for item, rprop for user, as the authors)"),
    CFG_INT("epochs", ar_cfg, epochs, 500, 1, 1000000, "full-batch iterations (L-BFGS iterations or Rprop steps)"),
    CFG_INT("eval_every", ar_cfg, eval_every, 10, 1, 1000000,
            "validation RMSE every N iterations; the best parameters are kept"),
    CFG_INT("patience", ar_cfg, patience, 0, 0, 1000000,
            "stop after N validations without a better RMSE (0: never)"),
    CFG_INT("lbfgs_m", ar_cfg, lbfgs_m, 10, 1, 1000, "L-BFGS history pairs"),
    CFG_DOUBLE("rprop_step", ar_cfg, rprop_step, 0.01, 1e-12, 1e6, "Rprop's initial step"),
    CFG_DOUBLE("rprop_step_max", ar_cfg, rprop_step_max, 1, 1e-12, 1e6, "Rprop's largest step"),
    CFG_DOUBLE("init_scale", ar_cfg, init_scale, 1, 1e-9, 1e3,
               "W, V start uniform in +-init_scale*sqrt(6/(inputs+hidden))"),
    CFG_BOOL("refit", ar_cfg, refit, 0,
             "after choosing the iteration on the validation ratings, train again on training + validation "
             "ratings for that many iterations (the published model)"),
    CFG_RENAMED("iters", "epochs"),
    CFG_END,
};

typedef struct ar_stats {
    int iters; /* iterations run by the first pass */
    int kept;  /* the iteration kept (best validation RMSE): the refit's iterations */
} ar_stats;

static int ar_setup(rt_run *r)
{
    const ar_cfg *c = r->cfg;
    autorec_hparams *hp = r->hp;
    autorec_hparams_default(hp);
    hp->variant = autorec_variant_parse(c->variant);
    hp->hidden = (int)c->hidden;
    hp->lambda = c->lambda;
    hp->optimizer = strcmp(c->optimizer, "auto") == 0 ? (hp->variant == AUTOREC_ITEM ? AUTOREC_LBFGS : AUTOREC_RPROP)
                                                      : autorec_optimizer_parse(c->optimizer);
    hp->iters = (int)c->epochs;
    hp->eval_every = (int)c->eval_every;
    hp->patience = (int)c->patience;
    hp->lbfgs_m = (int)c->lbfgs_m;
    hp->rprop_step = c->rprop_step;
    hp->rprop_step_max = c->rprop_step_max;
    hp->init_scale = c->init_scale;
    r->refit = c->refit;
    return autorec_hparams_check(hp);
}

static const char *ar_label(const rt_run *r)
{
    return ((const autorec_hparams *)r->hp)->variant == AUTOREC_ITEM ? "i-autorec" : "u-autorec";
}

static int ar_train(rt_run *r, const rb_train_input *in)
{
    const autorec_hparams *hp = r->hp;
    ar_stats *st = r->st;
    autorec *m = autorec_new(hp->variant, in->by_user.rows, in->by_item.rows, hp->hidden, in->mean, hp->init_scale,
                             in->seed);
    if (!(r->model = m)) return RC_ENOMEM; /* message set */
    return autorec_train(m, hp, in, &r->valid_rmse, &st->kept, &st->iters);
}

/* The kept iteration count again, from the same seed, on the training + validation ratings. */
static int ar_refit(rt_run *r, const rb_train_input *in)
{
    const ar_stats *st = r->st;
    autorec_hparams hp2 = *(const autorec_hparams *)r->hp;
    hp2.iters = st->kept;
    hp2.patience = 0;
    log_info("autorec: refit on %lld training + validation ratings for %d iterations", (long long)r->n_train, st->kept);
    autorec_free(r->model);
    autorec *m = autorec_new(hp2.variant, in->by_user.rows, in->by_item.rows, hp2.hidden, in->mean, hp2.init_scale,
                             in->seed);
    if (!(r->model = m)) return RC_ENOMEM; /* message set */
    return autorec_train(m, &hp2, in, NULL, NULL, NULL);
}

static void ar_predict(const void *m, const rb_triples *t, float def, float *out, uint8_t *fb)
{
    autorec_predict(m, t, def, out, fb);
}

static json_t *ar_train_json(const rt_run *r)
{
    const autorec_hparams *hp = r->hp;
    const ar_stats *st = r->st;
    return json_pack("{s:f, s:i, s:i, s:s, s:i, s:b, s:I}", "train_s", r->train_s, "iters", st->iters, "kept_iter",
                     st->kept, "optimizer", autorec_optimizer_name(hp->optimizer), "threads", (int)r->o->threads,
                     "refit", r->refit, "n_train", (json_int_t)r->n_train);
}

static void ar_result_extra(const rt_run *r, char *buf, size_t cap)
{
    const ar_stats *st = r->st;
    snprintf(buf, cap, "iters=%d kept=%d valid_rmse=%.4f%s", st->iters, st->kept, r->valid_rmse,
             r->refit ? " refit=1" : "");
}

static int ar_save(const rt_run *r, const rating_base_src *src, const char *root, const json_t *extra,
                   uint64_t *version)
{
    return autorec_save(r->model, src, root, r->label, extra, version);
}

static void ar_free(void *m) { autorec_free(m); }

static const rt_trainer ar_trainer = {
    .name = "autorec",
    .usage = "usage: recd train autorec [-c CONFIG] (--data F | --train F [--valid F] [--test F]) [--out DIR] "
             "[--SETTING VALUE ...]\n"
             "  --data F   all ratings (MovieLens '::', tab or comma files, a folder, or a,b,c): split 90/10 by\n"
             "             split_seed, 10% of the training part for validation\n"
             "Trains I-AutoRec (--variant item) or U-AutoRec (--variant user), full batch, keeps the iteration with\n"
             "the best validation RMSE, publishes OUT/NAME/VERSION (NAME: --name, else i-autorec or u-autorec) and\n"
             "prints: LABEL rmse=.. mae=.. rmse_clipped=.. mae_clipped=.. n=.. n_default=.. train_s=.. iters=.. "
             "valid_rmse=..\n"
             "settings (config file keys, or --SETTING VALUE; '-' and '_' are the same in flags, file keys are "
             "exact):\n",
    .defs = ar_defs,
    .cfg_size = sizeof(ar_cfg),
    .rt_offset = offsetof(ar_cfg, rt),
    .hp_size = sizeof(autorec_hparams),
    .st_size = sizeof(ar_stats),
    .flags = RT_META_VALID_RMSE,
    .setup = ar_setup,
    .label = ar_label,
    .train = ar_train,
    .refit = ar_refit,
    .predict = ar_predict,
    .train_json = ar_train_json,
    .result_extra = ar_result_extra,
    .save = ar_save,
    .free = ar_free,
};

int autorec_cmd_train(int argc, char **argv) { return rt_train_main(&ar_trainer, argc, argv); }
