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
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
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

static void usage(FILE *out)
{
    fprintf(out,
            "usage: recd train llorma -c CONFIG (--data F | --train F [--valid F] [--test F]) [--out DIR] "
            "[--SETTING VALUE ...]\n"
            "  --data F   all ratings (MovieLens '::', tab or comma files, a folder, or a,b,c; gzip ok): split\n"
            "             (test_frac, then valid_frac of the rest) by split_seed\n"
            "  --train F --valid F --test F   files already split (as `recd split ratings` writes)\n"
            "Trains LLORMA (a global MF gives user and item distances; q local rank-r models around random\n"
            "anchor ratings, each on kernel-weighted ratings, on `threads` threads; predictions are the\n"
            "kernel-weighted mean), prints the test RMSE/MAE line and publishes OUT/NAME/VERSION.\n"
            "settings (config file keys, or --SETTING VALUE; '-' and '_' are the same in flags, file keys are exact):\n");
    cfg_print_help(llorma_defs, out);
}

static rb_triples triples_of(const rt_data *d) { return (rb_triples){d->n, d->user, d->item, d->rating}; }
static rb_rows rows_of(const rt_csr *c) { return (rb_rows){c->rows, c->nnz, c->offsets, c->col, c->val}; }

/* Metrics of m on d (n > 0) into *out. */
static int evaluate(const llorma *m, const rt_data *d, float default_rating, float rmin, float rmax, rt_metrics *out)
{
    float *pred = malloc((size_t)d->n * sizeof *pred);
    uint8_t *fb = malloc((size_t)d->n);
    int rc;
    if (!pred || !fb) {
        rc = rc_error(RC_ENOMEM, "llorma: out of memory (evaluation)");
    } else {
        rb_triples t = triples_of(d);
        llorma_predict(m, &t, default_rating, pred, fb);
        rc = rt_metrics_of(out, d, pred, fb, rmin, rmax);
    }
    free(pred);
    free(fb);
    return rc;
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
    if (!all->user || !all->item || !all->rating) return rc_error(RC_ENOMEM, "llorma: out of memory (refit data)");
    all->users = t->users;
    all->items = t->items;
    all->owns_vocab = 0;
    all->rmin = t->rmin;
    all->rmax = t->rmax;
    double sum = 0;
    int64_t a = 0;
    for (int pass = 0; pass < 2; pass++) {
        const rt_data *d = pass ? v : t;
        for (int64_t k = 0; k < d->n; k++) {
            if (d->user[k] < 0 || d->item[k] < 0) continue;
            all->user[a] = d->user[k];
            all->item[a] = d->item[k];
            sum += all->rating[a++] = d->rating[k];
        }
    }
    all->n = a;
    *mean = sum / (double)a;
    int rc = rt_csr_build(by_user, all, 0);
    if (rc == RC_OK) rc = rt_csr_build(by_item, all, 1);
    return rc;
}

int llorma_cmd_train(int argc, char **argv)
{
    const char *prog = "recd train llorma";
    llorma_cfg c;
    rt_job job;
    memset(&job, 0, sizeof job);
    rt_data all;
    rt_csr ru, ri;
    memset(&all, 0, sizeof all);
    memset(&ru, 0, sizeof ru);
    memset(&ri, 0, sizeof ri);
    llorma *m = NULL;
    json_t *extra = NULL;
    int status = 1;
    if (cfg_defaults(llorma_defs, &c) != RC_OK) {
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
    if ((cfg_path && cfg_load_file(llorma_defs, &c, cfg_path) != RC_OK) ||
        cfg_parse_args(llorma_defs, &c, &argc, argv, keep) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        status = 2;
        goto done;
    }
    for (int i = 1; i < argc; i++) { /* what cfg_parse_args left: -c F */
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            i++;
            continue;
        }
        fprintf(stderr, "%s: unexpected argument '%s' (run `%s --help`)\n", prog, argv[i], prog);
        status = 2;
        goto done;
    }
    if (!c.rt.data == !c.rt.train || (c.rt.data && (c.rt.valid || c.rt.test))) {
        fprintf(stderr, "%s: give --data F (split here) or --train F [--valid F] [--test F] (already split)\n", prog);
        usage(stderr);
        status = 2;
        goto done;
    }
    llorma_hparams hp;
    llorma_hparams_default(&hp);
    hp.anchors = (int)c.anchors;
    hp.rank = (int)c.rank;
    hp.bandwidth = c.bandwidth;
    hp.local_base = llorma_base_parse(c.local_base);
    hp.local_biases = c.local_biases;
    hp.solver = strcmp(c.solver, "als") == 0 ? LLORMA_SOLVER_ALS : LLORMA_SOLVER_SGD;
    hp.local_init = strcmp(c.local_init, "global") == 0 ? LLORMA_INIT_GLOBAL : LLORMA_INIT_RANDOM;
    hp.epochs = (int)c.epochs;
    hp.patience = (int)c.patience;
    hp.lr = c.lr;
    hp.lr_decay = c.lr_decay;
    hp.reg = c.reg;
    hp.init_std = c.init_std;
    hp.global_rank = (int)c.global_rank;
    hp.global_epochs = (int)c.global_epochs;
    hp.global_patience = (int)c.global_patience;
    hp.global_lr = c.global_lr;
    hp.global_lr_decay = c.global_lr_decay;
    hp.global_reg = c.global_reg;
    hp.global_reg_bias = c.global_reg_bias;
    hp.global_init_std = c.global_init_std;
    if (llorma_hparams_check(&hp) != RC_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, cfg_path ? cfg_path : "settings", rc_errmsg());
        status = 2;
        goto done;
    }
    if (c.rt.quiet && log_level < LOG_LVL_WARN) log_level = LOG_LVL_WARN;
    const char *label = c.rt.name ? c.rt.name : "llorma";

    if (rt_job_prepare(&job, &c.rt) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    const rt_data *tr = &job.sp.train;
    if (tr->n < 1 || job.by_user.rows < 1 || job.by_item.rows < 1) {
        fprintf(stderr, "%s: %s: no training ratings\n", prog, job.source);
        goto done;
    }
    const float def = (float)c.rt.default_rating;
    double t0 = clock_mono_s();
    m = llorma_new(job.by_user.rows, job.by_item.rows, &hp, job.mean);
    if (!m) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    rb_train_input in = {.by_user = rows_of(&job.by_user),
                         .by_item = rows_of(&job.by_item),
                         .valid = triples_of(&job.sp.valid),
                         .mean = job.mean,
                         .default_rating = def,
                         .rmin = tr->rmin,
                         .rmax = tr->rmax,
                         .threads = (int)c.rt.threads,
                         .seed = (uint64_t)c.rt.seed,
                         .verbose = !c.rt.quiet};
    llorma_train_stats st;
    if (llorma_train(m, &hp, &in, &st) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    rt_metrics vm, tm;
    int have_valid = job.sp.valid.n > 0, have_test = job.sp.test.n > 0;
    if (have_valid && evaluate(m, &job.sp.valid, def, tr->rmin, tr->rmax, &vm) != RC_OK) {
        fprintf(stderr, "%s: evaluation: %s\n", prog, rc_errmsg());
        goto done;
    }
    const rt_csr *seen = &job.by_user; /* the training rows of the published model, by user */
    double mean = job.mean;
    int refit = c.refit && have_valid;
    if (refit) {
        if (refit_data(&all, &ru, &ri, &mean, &job) != RC_OK) {
            fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
            goto done;
        }
        rb_train_input in2 = in;
        in2.by_user = rows_of(&ru);
        in2.by_item = rows_of(&ri);
        in2.valid = (rb_triples){0, NULL, NULL, NULL};
        in2.mean = mean;
        llorma_hparams hp2 = hp;
        hp2.epochs = st.best_epoch > 0 ? st.best_epoch : 1;
        hp2.global_epochs = st.global_best_epoch > 0 ? st.global_best_epoch : 1;
        log_info("llorma: refit on %lld training + validation ratings: global model %d epochs, local models %d",
                 (long long)all.n, hp2.global_epochs, hp2.epochs);
        llorma_train_stats st2;
        llorma_free(m);
        if (!(m = llorma_new(ru.rows, ri.rows, &hp2, mean)) || llorma_train(m, &hp2, &in2, &st2) != RC_OK) {
            fprintf(stderr, "%s: refit: %s\n", prog, rc_errmsg());
            goto done;
        }
        st.coverage = st2.coverage;
        seen = &ru;
    }
    double train_s = clock_mono_s() - t0;
    if (have_test && evaluate(m, &job.sp.test, def, tr->rmin, tr->rmax, &tm) != RC_OK) {
        fprintf(stderr, "%s: evaluation: %s\n", prog, rc_errmsg());
        goto done;
    }

    extra = json_object();
    if (!extra) {
        fprintf(stderr, "%s: out of memory (meta)\n", prog);
        goto done;
    }
    /* each set_new takes its value's reference, also on failure (a NULL value fails) */
    int bad = json_object_set_new(extra, "config", cfg_to_json(llorma_defs, &c));
    bad |= json_object_set_new(extra, "data", rt_job_meta(&job, &c.rt));
    bad |= json_object_set_new(
        extra, "train",
        json_pack("{s:f, s:I, s:f, s:f, s:i, s:i, s:i, s:f, s:b, s:I}", "train_s", train_s, "threads",
                  (json_int_t)c.rt.threads,
                  "valid_rmse", isnan(st.valid_rmse) ? -1.0 : st.valid_rmse, "global_valid_rmse",
                  isnan(st.global_valid_rmse) ? -1.0 : st.global_valid_rmse, "global_epochs", st.global_epochs,
                  "epochs", st.epochs, "best_epoch", st.best_epoch, "coverage", st.coverage, "refit", refit, "n_train",
                  (json_int_t)(refit ? all.n : tr->n)));
    json_t *metrics = json_object();
    if (metrics && have_valid) bad |= json_object_set_new(metrics, "valid", rt_metrics_to_json(&vm));
    if (metrics && have_test) bad |= json_object_set_new(metrics, "test", rt_metrics_to_json(&tm));
    bad |= json_object_set_new(extra, "metrics", metrics);
    if (bad) {
        fprintf(stderr, "%s: out of memory (meta)\n", prog);
        goto done;
    }
    rating_base_src src = {.users = tr->users,
                           .items = tr->items,
                           .offsets = seen->offsets,
                           .items_by_user = seen->col,
                           .default_rating = def,
                           .rmin = tr->rmin,
                           .rmax = tr->rmax,
                           .mean = (float)mean};
    uint64_t ver = 0;
    if (llorma_save(m, &hp, &src, c.rt.out, label, extra, &ver) != RC_OK) {
        fprintf(stderr, "%s: cannot write the snapshot under %s: %s\n", prog, c.rt.out, rc_errmsg());
        goto done;
    }
    log_info("llorma: published %s/%s/%llu", c.rt.out, label, (unsigned long long)ver);
    char more[256];
    snprintf(more, sizeof more,
             "valid_rmse=%.4f global_valid_rmse=%.4f epochs=%d anchors=%d rank=%d bandwidth=%.3f coverage=%.3f%s "
             "version=%llu",
             st.valid_rmse, st.global_valid_rmse, st.best_epoch, hp.anchors, hp.rank, hp.bandwidth, st.coverage,
             refit ? " refit=1" : "", (unsigned long long)ver);
    rt_print_result(label, have_test ? &tm : NULL, train_s, more);
    status = 0;
done:
    json_decref(extra);
    llorma_free(m);
    rt_csr_free(&ru);
    rt_csr_free(&ri);
    rt_free(&all);
    rt_job_free(&job);
    cfg_release(llorma_defs, &c);
    return status;
}
