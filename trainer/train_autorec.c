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
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
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

static void usage(FILE *out)
{
    fprintf(out,
            "usage: recd train autorec [-c CONFIG] (--data F | --train F [--valid F] [--test F]) [--out DIR] "
            "[--SETTING VALUE ...]\n"
            "  --data F   all ratings (MovieLens '::', tab or comma files, a folder, or a,b,c): split 90/10 by\n"
            "             split_seed, 10%% of the training part for validation\n"
            "Trains I-AutoRec (--variant item) or U-AutoRec (--variant user), full batch, keeps the iteration with\n"
            "the best validation RMSE, publishes OUT/NAME/VERSION (NAME: --name, else i-autorec or u-autorec) and\n"
            "prints: LABEL rmse=.. mae=.. rmse_clipped=.. mae_clipped=.. n=.. n_default=.. train_s=.. iters=.. "
            "valid_rmse=..\n"
            "settings (config file keys, or --SETTING VALUE; '-' and '_' are the same in flags, file keys are exact):\n");
    cfg_print_help(ar_defs, out);
}

/* The training and validation ratings of j together (a validation rating whose user or item has no
 * training rating is left out: the model has no row for it), their rows both ways and their mean. */
static int refit_data(rt_data *all, rt_csr *by_user, rt_csr *by_item, double *mean, const rt_job *j)
{
    const rt_data *t = &j->sp.train, *v = &j->sp.valid;
    int64_t n = t->n;
    for (int64_t k = 0; k < v->n; k++) n += v->user[k] >= 0 && v->item[k] >= 0;
    memset(all, 0, sizeof *all);
    all->user = malloc((size_t)n * sizeof *all->user);
    all->item = malloc((size_t)n * sizeof *all->item);
    all->rating = malloc((size_t)n * sizeof *all->rating);
    if (!all->user || !all->item || !all->rating) return rc_error(RC_ENOMEM, "autorec: out of memory (refit data)");
    all->users = t->users;
    all->items = t->items;
    all->owns_vocab = 0;
    all->rmin = t->rmin;
    all->rmax = t->rmax;
    double sum = 0;
    int64_t a = 0;
    for (int64_t k = 0; k < t->n; k++, a++) {
        all->user[a] = t->user[k];
        all->item[a] = t->item[k];
        sum += all->rating[a] = t->rating[k];
    }
    for (int64_t k = 0; k < v->n; k++) {
        if (v->user[k] < 0 || v->item[k] < 0) continue;
        all->user[a] = v->user[k];
        all->item[a] = v->item[k];
        sum += all->rating[a] = v->rating[k];
        a++;
    }
    all->n = n;
    *mean = sum / (double)n;
    int rc = rt_csr_build(by_user, all, 0);
    if (rc == RC_OK) rc = rt_csr_build(by_item, all, 1);
    return rc;
}

int autorec_cmd_train(int argc, char **argv)
{
    const char *prog = "recd train autorec";
    ar_cfg c;
    rt_job j;
    memset(&j, 0, sizeof j);
    autorec *m = NULL;
    json_t *extra = NULL;
    float *pred = NULL;
    uint8_t *fb = NULL;
    rt_data all;
    rt_csr ru, ri;
    memset(&all, 0, sizeof all);
    memset(&ru, 0, sizeof ru);
    memset(&ri, 0, sizeof ri);
    int status = 2, have_job = 0;
    if (cfg_defaults(ar_defs, &c) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        return 1;
    }
    const char *cfg_path = NULL;
    for (int i = 1; i < argc; i++) { /* --help, and -c first: the file is read before the flags */
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            status = 0;
            goto done;
        }
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) cfg_path = argv[++i];
    }
    static const char *const keep[] = {"-c", NULL};
    if ((cfg_path && cfg_load_file(ar_defs, &c, cfg_path) != RC_OK) ||
        cfg_parse_args(ar_defs, &c, &argc, argv, keep) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0) {
            i++;
            continue;
        }
        fprintf(stderr, "%s: unexpected argument '%s' (run `%s --help`)\n", prog, argv[i], prog);
        goto done;
    }
    autorec_hparams hp;
    autorec_hparams_default(&hp);
    hp.variant = autorec_variant_parse(c.variant);
    hp.hidden = (int)c.hidden;
    hp.lambda = c.lambda;
    hp.optimizer = strcmp(c.optimizer, "auto") == 0 ? (hp.variant == AUTOREC_ITEM ? AUTOREC_LBFGS : AUTOREC_RPROP)
                                                    : autorec_optimizer_parse(c.optimizer);
    hp.iters = (int)c.epochs;
    hp.eval_every = (int)c.eval_every;
    hp.patience = (int)c.patience;
    hp.lbfgs_m = (int)c.lbfgs_m;
    hp.rprop_step = c.rprop_step;
    hp.rprop_step_max = c.rprop_step_max;
    hp.init_scale = c.init_scale;
    if (autorec_hparams_check(&hp) != RC_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, cfg_path ? cfg_path : "settings", rc_errmsg());
        goto done;
    }
    if (!c.rt.data == !c.rt.train) {
        fprintf(stderr, "%s: give --data F, or --train F [--valid F] [--test F] (run `%s --help`)\n", prog, prog);
        goto done;
    }
    status = 1;
    if (c.rt.quiet && log_level < LOG_LVL_WARN) log_level = LOG_LVL_WARN;
    const char *label = c.rt.name ? c.rt.name : hp.variant == AUTOREC_ITEM ? "i-autorec" : "u-autorec";
    if (rt_job_prepare(&j, &c.rt) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    have_job = 1;
    rb_train_input in;
    memset(&in, 0, sizeof in);
    in.by_user = (rb_rows){j.by_user.rows, j.by_user.nnz, j.by_user.offsets, j.by_user.col, j.by_user.val};
    in.by_item = (rb_rows){j.by_item.rows, j.by_item.nnz, j.by_item.offsets, j.by_item.col, j.by_item.val};
    in.valid = (rb_triples){j.sp.valid.n, j.sp.valid.user, j.sp.valid.item, j.sp.valid.rating};
    in.mean = j.mean;
    in.default_rating = (float)c.rt.default_rating;
    in.rmin = j.sp.train.rmin;
    in.rmax = j.sp.train.rmax;
    in.threads = (int)c.rt.threads;
    in.seed = (uint64_t)c.rt.seed;
    in.verbose = !c.rt.quiet;
    if (!(m = autorec_new(hp.variant, j.by_user.rows, j.by_item.rows, hp.hidden, j.mean, hp.init_scale, in.seed))) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    double t0 = clock_mono_s(), valid_rmse = NAN;
    int iters = 0, kept = 0;
    if (autorec_train(m, &hp, &in, &valid_rmse, &kept, &iters) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    const rt_csr *seen = &j.by_user; /* the training rows of the published model, by user */
    double mean = j.mean;
    int refit = c.refit && j.sp.valid.n > 0;
    if (refit) {
        if (refit_data(&all, &ru, &ri, &mean, &j) != RC_OK) {
            fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
            goto done;
        }
        rb_train_input in2 = in;
        in2.by_user = (rb_rows){ru.rows, ru.nnz, ru.offsets, ru.col, ru.val};
        in2.by_item = (rb_rows){ri.rows, ri.nnz, ri.offsets, ri.col, ri.val};
        in2.valid = (rb_triples){0, NULL, NULL, NULL};
        in2.mean = mean;
        autorec_hparams hp2 = hp;
        hp2.iters = kept;
        hp2.patience = 0;
        log_info("autorec: refit on %lld training + validation ratings for %d iterations", (long long)all.n, kept);
        autorec_free(m);
        if (!(m = autorec_new(hp.variant, ru.rows, ri.rows, hp.hidden, mean, hp.init_scale, in.seed)) ||
            autorec_train(m, &hp2, &in2, NULL, NULL, NULL) != RC_OK) {
            fprintf(stderr, "%s: refit: %s\n", prog, rc_errmsg());
            goto done;
        }
        seen = &ru;
    }
    double train_s = clock_mono_s() - t0;
    rt_metrics met;
    int have_test = j.sp.test.n > 0;
    if (have_test) {
        pred = malloc((size_t)j.sp.test.n * sizeof *pred);
        fb = malloc((size_t)j.sp.test.n);
        if (!pred || !fb) {
            fprintf(stderr, "%s: out of memory\n", prog);
            goto done;
        }
        rb_triples t = {j.sp.test.n, j.sp.test.user, j.sp.test.item, j.sp.test.rating};
        autorec_predict(m, &t, in.default_rating, pred, fb);
        if (rt_metrics_of(&met, &j.sp.test, pred, fb, in.rmin, in.rmax) != RC_OK) {
            fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
            goto done;
        }
    }
    extra = json_object();
    json_t *cfgj = cfg_to_json(ar_defs, &c), *data = rt_job_meta(&j, &c.rt);
    json_t *train = json_pack("{s:f, s:i, s:i, s:s, s:i, s:b, s:I}", "train_s", train_s, "iters", iters, "kept_iter",
                              kept, "optimizer", autorec_optimizer_name(hp.optimizer), "threads", (int)in.threads,
                              "refit", refit, "n_train", (json_int_t)(refit ? all.n : j.sp.train.n));
    json_t *metrics = json_object();
    if (!extra || !cfgj || !data || !train || !metrics) {
        json_decref(cfgj), json_decref(data), json_decref(train), json_decref(metrics);
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    if (isfinite(valid_rmse)) json_object_set_new(metrics, "valid_rmse", json_real(valid_rmse));
    if (have_test) json_object_set_new(metrics, "test", rt_metrics_to_json(&met));
    json_object_set_new(extra, "config", cfgj);
    json_object_set_new(extra, "data", data);
    json_object_set_new(extra, "train", train);
    json_object_set_new(extra, "metrics", metrics);
    rating_base_src src = {j.sp.train.users, j.sp.train.items, seen->offsets, seen->col,
                           in.default_rating, in.rmin, in.rmax, (float)mean};
    uint64_t ver = 0;
    if (autorec_save(m, &src, c.rt.out, label, extra, &ver) != RC_OK) {
        fprintf(stderr, "%s: cannot write the snapshot under %s: %s\n", prog, c.rt.out, rc_errmsg());
        goto done;
    }
    log_info("autorec: published %s/%s/%llu", c.rt.out, label, (unsigned long long)ver);
    char tail[96];
    snprintf(tail, sizeof tail, "iters=%d kept=%d valid_rmse=%.4f%s", iters, kept, valid_rmse, refit ? " refit=1" : "");
    rt_print_result(label, have_test ? &met : NULL, train_s, tail);
    status = 0;
done:
    free(pred);
    free(fb);
    json_decref(extra);
    autorec_free(m);
    rt_csr_free(&ru);
    rt_csr_free(&ri);
    rt_free(&all);
    if (have_job) rt_job_free(&j);
    cfg_release(ar_defs, &c);
    return status;
}
