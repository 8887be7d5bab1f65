/* trainer/train_rbm.c - `recd train rbm`: U-RBM and I-RBM (models/rbm.h) on explicit ratings.
 *
 *   recd train rbm -c configs/i-rbm.json (--data F | --train F [--valid F] [--test F]) [--out DIR]
 *                  [--variant user|item] [--name NAME] [--SETTING VALUE ...]
 *
 * Reads and splits the ratings by the AutoRec protocol (trainer/ratings.h: rt_job_prepare), trains
 * with contrastive divergence, keeps the epoch with the best validation RMSE, predicts the test ratings
 * (default rating, flagged, for a user or item without training rating), publishes OUT/NAME/VERSION
 * (NAME: --name, else "u-rbm" or "i-rbm" by the variant; meta "type":"rbm" so the server loads it with
 * the rbm type) with the settings, the data summary and the metrics in its meta, and prints the result
 * line of every rating trainer on stdout:
 *   i-rbm rmse=0.8522 mae=.. rmse_clipped=.. mae_clipped=.. n=.. n_default=.. train_s=.. valid_rmse=.. epochs=..
 * `recd eval rbm --snapshot DIR --test F` scores a snapshot (trainer/ratings.h: rt_eval_cmd).
 * The command itself is rt_train_main (trainer/ratings.h); this file is its settings and hooks.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "models/rbm.h"
#include "trainer/ratings.h"

int rbm_cmd_train(int argc, char **argv);

typedef struct rbm_cfg {
    rt_opts rt;
    char *variant;
    long long hidden, epochs, patience, batch, momentum_epochs;
    double lr, lr_decay, momentum_start, momentum, weight_decay, init_std;
    json_t *cd_steps, *cd_from;
    int mean_field;
} rbm_cfg;

static const cfg_def rbm_defs[] = {
    RT_CFG_ENTRIES(rbm_cfg, rt),
    CFG_ENUM("variant", rbm_cfg, variant, "item", "user|item",
             "user: U-RBM (a case per user, a softmax unit per rated item); item: I-RBM (a case per item)"),
    CFG_INT("hidden", rbm_cfg, hidden, RBM_DEF_HIDDEN, 1, RBM_MAX_HIDDEN, "F: binary hidden units"),
    CFG_INT("epochs", rbm_cfg, epochs, RBM_DEF_EPOCHS, 1, 100000, "at most; the epoch with the best validation RMSE is kept"),
    CFG_INT("patience", rbm_cfg, patience, RBM_DEF_PATIENCE, 0, 100000,
            "stop after this many epochs without a better validation RMSE (0: never)"),
    CFG_INT("batch", rbm_cfg, batch, RBM_DEF_BATCH, 1, 1e9, "cases (users or items) per mini-batch"),
    CFG_DOUBLE("lr", rbm_cfg, lr, RBM_DEF_LR, 1e-9, 1e3, "learning rate (gradients averaged over the batch's cases)"),
    CFG_DOUBLE("lr_decay", rbm_cfg, lr_decay, RBM_DEF_LR_DECAY, 1e-6, 1, "lr *= lr_decay after each epoch"),
    CFG_DOUBLE("momentum_start", rbm_cfg, momentum_start, RBM_DEF_MOMENTUM_START, 0, 0.999,
               "momentum of the first momentum_epochs epochs"),
    CFG_INT("momentum_epochs", rbm_cfg, momentum_epochs, RBM_DEF_MOMENTUM_EPOCHS, 0, 100000, "epochs with momentum_start"),
    CFG_DOUBLE("momentum", rbm_cfg, momentum, RBM_DEF_MOMENTUM, 0, 0.999, "momentum afterwards"),
    CFG_DOUBLE("weight_decay", rbm_cfg, weight_decay, RBM_DEF_WEIGHT_DECAY, 0, 1e6, "L2 on the weights"),
    CFG_DOUBLE("init_std", rbm_cfg, init_std, RBM_DEF_INIT_STD, 0, 10, "weights start N(0, init_std^2)"),
    CFG_BOOL("mean_field", rbm_cfg, mean_field, RBM_DEF_MEAN_FIELD,
             "reconstruct with the visible probabilities instead of samples (less noise; false: the paper's sampling)"),
    CFG_JSON("cd_steps", rbm_cfg, cd_steps, RBM_DEF_CD_STEPS, "Gibbs steps of contrastive divergence, growing"),
    CFG_JSON("cd_from", rbm_cfg, cd_from, RBM_DEF_CD_FROM, "the epoch from which each cd_steps entry applies (first 1)"),
    CFG_END,
};

typedef struct rbm_stats {
    int epochs_run;
} rbm_stats;

/* The CD schedule of the settings into hp. RC_OK or RC_EINVAL naming the setting. */
static int cd_schedule(const rbm_cfg *c, rbm_hparams *hp)
{
    const json_t *s = c->cd_steps, *f = c->cd_from;
    if (!json_is_array(s) || json_array_size(s) < 1 || json_array_size(s) > RBM_MAX_CD)
        return rc_error(RC_EINVAL, "setting 'cd_steps': an array of 1 to %d integers", RBM_MAX_CD);
    if (!json_is_array(f) || json_array_size(f) != json_array_size(s))
        return rc_error(RC_EINVAL, "setting 'cd_from': an array as long as cd_steps (%zu)", json_array_size(s));
    hp->n_cd = (int)json_array_size(s);
    for (int j = 0; j < hp->n_cd; j++) {
        const json_t *a = json_array_get(s, (size_t)j), *b = json_array_get(f, (size_t)j);
        if (!json_is_integer(a) || json_integer_value(a) < 1 || json_integer_value(a) > 1000)
            return rc_error(RC_EINVAL, "setting 'cd_steps'[%d]: an integer in [1, 1000]", j);
        if (!json_is_integer(b) || json_integer_value(b) < 1 || json_integer_value(b) > 1000000)
            return rc_error(RC_EINVAL, "setting 'cd_from'[%d]: an integer in [1, 1000000]", j);
        hp->cd_steps[j] = (int)json_integer_value(a);
        hp->cd_from[j] = (int)json_integer_value(b);
    }
    return rbm_hparams_check(hp);
}

static int rbm_setup(rt_run *r)
{
    const rbm_cfg *c = r->cfg;
    rbm_hparams *hp = r->hp;
    rbm_hparams_default(hp);
    hp->variant = strcmp(c->variant, "user") == 0 ? RBM_USER : RBM_ITEM;
    hp->hidden = (int)c->hidden;
    hp->epochs = (int)c->epochs;
    hp->patience = (int)c->patience;
    hp->batch = (int)c->batch;
    hp->lr = c->lr;
    hp->lr_decay = c->lr_decay;
    hp->momentum_start = c->momentum_start;
    hp->momentum_epochs = (int)c->momentum_epochs;
    hp->momentum = c->momentum;
    hp->weight_decay = c->weight_decay;
    hp->init_std = c->init_std;
    hp->mean_field = c->mean_field;
    return cd_schedule(c, hp);
}

static const char *rbm_label(const rt_run *r)
{
    return ((const rbm_hparams *)r->hp)->variant == RBM_USER ? "u-rbm" : "i-rbm";
}

static int rbm_train_hook(rt_run *r, const rb_train_input *in)
{
    const rbm_hparams *hp = r->hp;
    rbm_stats *st = r->st;
    float values[RBM_MAX_K];
    int K = 0, rc;
    if ((rc = rbm_values(&in->by_user, values, &K)) != RC_OK) return rc_wrap(rc, "%s", r->job->source);
    rbm *m = rbm_new(hp->variant, in->by_user.rows, in->by_item.rows, K, values, hp->hidden, hp->init_std, in->seed);
    if (!(r->model = m)) return RC_ENOMEM; /* message set */
    if (!r->o->quiet)
        log_info("%s: %s-RBM, %lld cases of %lld softmax units over %d rating values, %d hidden units", r->label,
                 hp->variant == RBM_USER ? "U" : "I", (long long)m->C, (long long)m->M, K, hp->hidden);
    return rbm_train(m, hp, in, &r->valid_rmse, &st->epochs_run);
}

static void rbm_predict_hook(const void *m, const rb_triples *t, float def, float *out, uint8_t *fb)
{
    rbm_predict(m, t, def, out, fb);
}

static json_t *rbm_hparams_json(const rt_run *r) { return rbm_hparams_to_json(r->hp); }

static json_t *rbm_train_json(const rt_run *r)
{
    const rbm_stats *st = r->st;
    return json_pack("{s:f,s:i,s:I}", "train_s", r->train_s, "epochs_run", st->epochs_run, "threads",
                     (json_int_t)r->o->threads);
}

static void rbm_result_extra(const rt_run *r, char *buf, size_t cap)
{
    const rbm_stats *st = r->st;
    snprintf(buf, cap, "valid_rmse=%.4f epochs=%d version=%llu", r->valid_rmse, st->epochs_run,
             (unsigned long long)r->version);
}

static int rbm_save_hook(const rt_run *r, const rating_base_src *src, const char *root, const json_t *extra,
                         uint64_t *version)
{
    return rbm_save(r->model, src, root, r->label, extra, version);
}

static void rbm_free_hook(void *m) { rbm_free(m); }

static const rt_trainer rbm_trainer = {
    .name = "rbm",
    .usage = "usage: recd train rbm -c CONFIG (--data F | --train F [--valid F] [--test F]) [--out DIR] "
             "[--SETTING VALUE ...]\n"
             "  --data F   all ratings (file, folder or a,b,c): split 90/10 by split_seed, 10% of training for "
             "validation\n"
             "  --train F [--valid F] [--test F]   files already split (as `recd split ratings` writes)\n"
             "Trains an RBM for collaborative filtering (--variant user: U-RBM, item: I-RBM) and publishes\n"
             "OUT/NAME/VERSION (NAME: --name, else u-rbm or i-rbm). settings (config file keys, or --SETTING VALUE;\n"
             "'-' and '_' are the same in flags, file keys are exact):\n",
    .defs = rbm_defs,
    .cfg_size = sizeof(rbm_cfg),
    .rt_offset = offsetof(rbm_cfg, rt),
    .hp_size = sizeof(rbm_hparams),
    .st_size = sizeof(rbm_stats),
    .flags = RT_META_VALID | RT_META_VALID_RMSE,
    .setup = rbm_setup,
    .label = rbm_label,
    .train = rbm_train_hook,
    .predict = rbm_predict_hook,
    .hparams_json = rbm_hparams_json,
    .train_json = rbm_train_json,
    .result_extra = rbm_result_extra,
    .save = rbm_save_hook,
    .free = rbm_free_hook,
};

int rbm_cmd_train(int argc, char **argv) { return rt_train_main(&rbm_trainer, argc, argv); }
