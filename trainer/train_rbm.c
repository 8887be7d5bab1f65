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
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
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

static void usage(FILE *out)
{
    fprintf(out,
            "usage: recd train rbm -c CONFIG (--data F | --train F [--valid F] [--test F]) [--out DIR] [--SETTING VALUE ...]\n"
            "  --data F   all ratings (file, folder or a,b,c): split 90/10 by split_seed, 10%% of training for validation\n"
            "  --train F [--valid F] [--test F]   files already split (as `recd split ratings` writes)\n"
            "Trains an RBM for collaborative filtering (--variant user: U-RBM, item: I-RBM) and publishes\n"
            "OUT/NAME/VERSION (NAME: --name, else u-rbm or i-rbm). settings (config file keys, or --SETTING VALUE;\n"
            "'-' and '_' are the same in flags, file keys are exact):\n");
    cfg_print_help(rbm_defs, out);
}

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

static rb_triples triples_of(const rt_data *d)
{
    return (rb_triples){d->n, d->user, d->item, d->rating};
}

static rb_rows rows_of(const rt_csr *c)
{
    return (rb_rows){c->rows, c->nnz, c->offsets, c->col, c->val};
}

int rbm_cmd_train(int argc, char **argv)
{
    const char *prog = "recd train rbm";
    rbm_cfg c;
    rt_job j;
    memset(&j, 0, sizeof j);
    rbm *m = NULL;
    json_t *extra = NULL;
    float *pred = NULL;
    uint8_t *fb = NULL;
    int status = 1, have_job = 0;
    if (cfg_defaults(rbm_defs, &c) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        return 1;
    }
    const char *cfg_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            status = 0;
            goto done;
        }
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) cfg_path = argv[++i];
    }
    if (cfg_path && cfg_load_file(rbm_defs, &c, cfg_path) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        status = 2;
        goto done;
    }
    static const char *const keep[] = {"-c", NULL};
    if (cfg_parse_args(rbm_defs, &c, &argc, argv, keep) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        status = 2;
        goto done;
    }
    for (int i = 1; i < argc; i++) { /* what is left: -c F */
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            i++;
            continue;
        }
        fprintf(stderr, "%s: unexpected argument '%s' (run `%s --help`)\n", prog, argv[i], prog);
        status = 2;
        goto done;
    }
    rbm_hparams hp;
    rbm_hparams_default(&hp);
    hp.variant = strcmp(c.variant, "user") == 0 ? RBM_USER : RBM_ITEM;
    hp.hidden = (int)c.hidden;
    hp.epochs = (int)c.epochs;
    hp.patience = (int)c.patience;
    hp.batch = (int)c.batch;
    hp.lr = c.lr;
    hp.lr_decay = c.lr_decay;
    hp.momentum_start = c.momentum_start;
    hp.momentum_epochs = (int)c.momentum_epochs;
    hp.momentum = c.momentum;
    hp.weight_decay = c.weight_decay;
    hp.init_std = c.init_std;
    hp.mean_field = c.mean_field;
    if (cd_schedule(&c, &hp) != RC_OK) {
        fprintf(stderr, "%s: %s%s%s\n", prog, cfg_path ? cfg_path : "", cfg_path ? ": " : "", rc_errmsg());
        status = 2;
        goto done;
    }
    const char *label = c.rt.name ? c.rt.name : hp.variant == RBM_USER ? "u-rbm" : "i-rbm";
    if (c.rt.quiet && log_level < LOG_LVL_WARN) log_level = LOG_LVL_WARN;

    if (rt_job_prepare(&j, &c.rt) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    have_job = 1;
    rb_train_input in;
    memset(&in, 0, sizeof in);
    in.by_user = rows_of(&j.by_user);
    in.by_item = rows_of(&j.by_item);
    in.valid = triples_of(&j.sp.valid);
    in.mean = j.mean;
    in.default_rating = (float)c.rt.default_rating;
    in.rmin = j.sp.train.rmin;
    in.rmax = j.sp.train.rmax;
    in.threads = (int)c.rt.threads;
    in.seed = (uint64_t)c.rt.seed;
    in.verbose = !c.rt.quiet;
    float values[RBM_MAX_K];
    int K = 0;
    if (rbm_values(&in.by_user, values, &K) != RC_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, j.source, rc_errmsg());
        goto done;
    }
    if (!(m = rbm_new(hp.variant, in.by_user.rows, in.by_item.rows, K, values, hp.hidden, hp.init_std, in.seed))) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    if (!c.rt.quiet)
        log_info("%s: %s-RBM, %lld cases of %lld softmax units over %d rating values, %d hidden units", label,
                 hp.variant == RBM_USER ? "U" : "I", (long long)m->C, (long long)m->M, K, hp.hidden);
    double t0 = clock_mono_s(), valid_rmse = NAN;
    int epochs_run = 0;
    if (rbm_train(m, &hp, &in, &valid_rmse, &epochs_run) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    double train_s = clock_mono_s() - t0;

    extra = json_object();
    json_t *metrics = json_object();
    if (!extra || !metrics) {
        json_decref(metrics);
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    int bad = json_object_set_new(extra, "config", cfg_to_json(rbm_defs, &c));
    bad |= json_object_set_new(extra, "hparams", rbm_hparams_to_json(&hp));
    bad |= json_object_set_new(extra, "data", rt_job_meta(&j, &c.rt));
    bad |= json_object_set_new(extra, "train", json_pack("{s:f,s:i,s:I}", "train_s", train_s, "epochs_run", epochs_run,
                                                         "threads", (json_int_t)c.rt.threads));
    bad |= json_object_set_new(extra, "metrics", metrics);
    if (isfinite(valid_rmse)) bad |= json_object_set_new(metrics, "valid_rmse", json_real(valid_rmse));
    rt_metrics tm, vm;
    memset(&tm, 0, sizeof tm);
    memset(&vm, 0, sizeof vm);
    int64_t np = j.sp.test.n > j.sp.valid.n ? j.sp.test.n : j.sp.valid.n;
    pred = malloc(sizeof *pred * (size_t)(np > 0 ? np : 1));
    fb = malloc((size_t)(np > 0 ? np : 1));
    if (bad || !pred || !fb) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    const rt_data *sets[2] = {&j.sp.valid, &j.sp.test};
    rt_metrics *mets[2] = {&vm, &tm};
    static const char *const keys[2] = {"valid", "test"};
    for (int s = 0; s < 2; s++) {
        if (sets[s]->n == 0) continue;
        rb_triples tt = triples_of(sets[s]);
        rbm_predict(m, &tt, in.default_rating, pred, fb);
        if (rt_metrics_of(mets[s], sets[s], pred, fb, in.rmin, in.rmax) != RC_OK) {
            fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
            goto done;
        }
        if (json_object_set_new(metrics, keys[s], rt_metrics_to_json(mets[s])) != 0) {
            fprintf(stderr, "%s: out of memory\n", prog);
            goto done;
        }
    }
    int have_test = j.sp.test.n > 0;
    rating_base_src src = {j.sp.train.users, j.sp.train.items, j.by_user.offsets, j.by_user.col,
                           in.default_rating, in.rmin, in.rmax, (float)j.mean};
    uint64_t ver = 0;
    if (rbm_save(m, &src, c.rt.out, label, extra, &ver) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    if (!c.rt.quiet) log_info("published %s/%s/%llu (training %.1fs)", c.rt.out, label, (unsigned long long)ver, train_s);
    char ex[160];
    snprintf(ex, sizeof ex, "valid_rmse=%.4f epochs=%d version=%llu", valid_rmse, epochs_run, (unsigned long long)ver);
    rt_print_result(label, have_test ? &tm : NULL, train_s, ex);
    status = 0;
done:
    free(pred);
    free(fb);
    json_decref(extra);
    rbm_free(m);
    if (have_job) rt_job_free(&j);
    cfg_release(rbm_defs, &c);
    return status;
}
