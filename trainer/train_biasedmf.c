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
 *
 * configs/biasedmf.json (SGD, F 128, lr 0.005 x 0.99 per epoch, reg 0.04, reg_bias 0.01, init_std 0.01;
 * tuned on the validation RMSE of split seed 1) gives ML-1M test RMSE 0.8422 (mean of split seeds 1..5,
 * about 80 epochs, 9 s of training each on one core) and ML-100K 0.9088. configs/biasedmf_als.json
 * (ALS, F 64, reg 0.07): ML-1M 0.8535, ML-100K 0.9248. A small init_std matters for SGD (0.1: 0.847 at best),
 * a large one for ALS (0.01 starts it near the zero solution).
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
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

static void usage(FILE *out)
{
    fprintf(out,
            "usage: recd train biasedmf -c CONFIG (--data F | --train F [--valid F] [--test F]) [--out DIR] "
            "[--SETTING VALUE ...]\n"
            "  --data F   all ratings (MovieLens '::', tab or comma files, a folder, or a,b,c; gzip ok): split\n"
            "             (test_frac, then valid_frac of the rest) by split_seed\n"
            "  --train F --valid F --test F   files already split (as `recd split ratings` writes)\n"
            "Trains biased MF (mu + b_u + b_i + p_u.q_i) by SGD or ALS, keeps the epoch with the best validation\n"
            "RMSE, prints the test RMSE/MAE line and publishes OUT/NAME/VERSION.\n"
            "settings (config file keys, or --SETTING VALUE; '-' and '_' are the same in flags, file keys are exact):\n");
    cfg_print_help(bmf_defs, out);
}

static json_t *hparams_json(const biasedmf_hparams *hp)
{
    return json_pack("{s:i, s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:f}", "factors", hp->factors, "solver", hp->solver,
                     "epochs", hp->epochs, "patience", hp->patience, "lr", hp->lr, "lr_decay", hp->lr_decay, "reg",
                     hp->reg, "reg_bias", hp->reg_bias, "init_std", hp->init_std);
}

static rb_triples triples_of(const rt_data *d) { return (rb_triples){d->n, d->user, d->item, d->rating}; }
static rb_rows rows_of(const rt_csr *c) { return (rb_rows){c->rows, c->nnz, c->offsets, c->col, c->val}; }

/* Metrics of m on d (n > 0) into *out. */
static int evaluate(const biasedmf *m, const rt_data *d, float default_rating, float rmin, float rmax,
                    rt_metrics *out)
{
    float *pred = malloc((size_t)d->n * sizeof *pred);
    uint8_t *fb = malloc((size_t)d->n);
    int rc;
    if (!pred || !fb) {
        rc = rc_error(RC_ENOMEM, "biasedmf: out of memory (evaluation)");
    } else {
        rb_triples t = triples_of(d);
        biasedmf_predict(m, &t, default_rating, pred, fb);
        rc = rt_metrics_of(out, d, pred, fb, rmin, rmax);
    }
    free(pred);
    free(fb);
    return rc;
}

int biasedmf_cmd_train(int argc, char **argv)
{
    const char *prog = "recd train biasedmf";
    bmf_cfg c;
    rt_job job;
    memset(&job, 0, sizeof job);
    biasedmf *m = NULL;
    json_t *extra = NULL;
    int status = 1, rc;
    if (cfg_defaults(bmf_defs, &c) != RC_OK) {
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
    if ((cfg_path && cfg_load_file(bmf_defs, &c, cfg_path) != RC_OK) ||
        cfg_parse_args(bmf_defs, &c, &argc, argv, keep) != RC_OK) {
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
    biasedmf_hparams hp;
    biasedmf_hparams_default(&hp);
    hp.factors = (int)c.factors;
    hp.solver = c.solver;
    hp.epochs = (int)c.epochs;
    hp.patience = (int)c.patience;
    hp.lr = c.lr;
    hp.lr_decay = c.lr_decay;
    hp.reg = c.reg;
    hp.reg_bias = c.reg_bias;
    hp.init_std = c.init_std;
    if (biasedmf_hparams_check(&hp) != RC_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, cfg_path ? cfg_path : "settings", rc_errmsg());
        status = 2;
        goto done;
    }
    if (c.rt.quiet && log_level < LOG_LVL_WARN) log_level = LOG_LVL_WARN;
    openblas_set_num_threads(1); /* ALS solves rows on our own threads; each BLAS call is small */
    const char *label = c.rt.name ? c.rt.name : "biasedmf";

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
    m = biasedmf_new(job.by_user.rows, job.by_item.rows, hp.factors, job.mean, hp.init_std, (uint64_t)c.rt.seed);
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
    double valid_rmse = NAN;
    int epochs_run = 0;
    if ((rc = biasedmf_train(m, &hp, &in, &valid_rmse, &epochs_run)) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    double train_s = clock_mono_s() - t0;
    rt_metrics vm, tm;
    int have_valid = job.sp.valid.n > 0, have_test = job.sp.test.n > 0;
    if ((have_valid && evaluate(m, &job.sp.valid, def, tr->rmin, tr->rmax, &vm) != RC_OK) ||
        (have_test && evaluate(m, &job.sp.test, def, tr->rmin, tr->rmax, &tm) != RC_OK)) {
        fprintf(stderr, "%s: evaluation: %s\n", prog, rc_errmsg());
        goto done;
    }

    extra = json_object();
    if (!extra) {
        fprintf(stderr, "%s: out of memory (meta)\n", prog);
        goto done;
    }
    /* each set_new takes its value's reference, also on failure (a NULL value fails) */
    int bad = json_object_set_new(extra, "config", cfg_to_json(bmf_defs, &c));
    bad |= json_object_set_new(extra, "hparams", hparams_json(&hp));
    bad |= json_object_set_new(extra, "data", rt_job_meta(&job, &c.rt));
    bad |= json_object_set_new(extra, "train", json_pack("{s:f, s:i, s:I}", "train_s", train_s, "epochs_run",
                                                         epochs_run, "threads", (json_int_t)c.rt.threads));
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
                           .offsets = job.by_user.offsets,
                           .items_by_user = job.by_user.col,
                           .default_rating = def,
                           .rmin = tr->rmin,
                           .rmax = tr->rmax,
                           .mean = (float)job.mean};
    uint64_t ver = 0;
    if (biasedmf_save(m, &src, c.rt.out, label, extra, &ver) != RC_OK) {
        fprintf(stderr, "%s: cannot write the snapshot under %s: %s\n", prog, c.rt.out, rc_errmsg());
        goto done;
    }
    log_info("biasedmf: published %s/%s/%llu", c.rt.out, label, (unsigned long long)ver);
    char more[160];
    snprintf(more, sizeof more, "valid_rmse=%.4f epochs=%d factors=%d solver=%s version=%llu", valid_rmse, epochs_run,
             hp.factors, hp.solver, (unsigned long long)ver);
    rt_print_result(label, have_test ? &tm : NULL, train_s, more);
    status = 0;
done:
    json_decref(extra);
    biasedmf_free(m);
    rt_job_free(&job);
    cfg_release(bmf_defs, &c);
    return status;
}
