/* trainer/train_gru4rec.c - `recd train gru4rec` (`recd eval gru4rec` is next_eval_cmd of
 * trainer/eval_next.c, shared by every model with `next`).
 *
 *   recd train gru4rec -c configs/gru4rec.json (--data F | --train F [--test F]) [--out DIR] [--epochs N]
 *                      [--name LABEL] [--quiet] [--<setting> value ...]
 *
 * Every option but -c and --data is a setting of g4_defs (config file key or flag). Training reads clicks
 * through trainer/sessions.h (--data: the whole file, GRU4Rec preprocessing and the time split as the
 * data.* settings say; train/test: files already split), trains, prints per-epoch loss, events/s,
 * elapsed and ETA on stderr, evaluates (every eval_every epochs, and at the end), publishes a snapshot
 * under the setting out whose meta holds
 * the hyperparameters, the data fingerprint and the final metrics, and prints one result line on stdout:
 *   LABEL recall@20=.. mrr@20=.. recall@10=.. mrr@10=.. recall@5=.. mrr@5=.. events/s=.. epochs=N
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/snap.h"
#include "models/gru4rec.h"
#include "models/gru4rec_settings.h"
#include "trainer/eval_next.h"
#include "trainer/sessions.h"

int gru4rec_cmd_train(int argc, char **argv);

typedef struct g4_cfg {
    char *loss;
    json_t *layers;
    int constrained;
    long long embedding;
    double elu_param, bpreg, logq;
    long long batch_size, n_sample;
    double sample_alpha;
    long long sample_cache;
    double learning_rate, momentum, dropout_embed, dropout_hidden;
    long long epochs, seed, threads, eval_lanes, eval_every;
    double finetune_days;
    long long finetune_epochs;
    char *train, *test, *out, *name;
    int quiet;
    sess_opts data;
} g4_cfg;

/* The hyperparameters come from models/gru4rec_settings.h (their defaults are written there only). */
#define G4_BOOL(k, f, d, h) CFG_BOOL(k, g4_cfg, f, d, h),
#define G4_INT(k, f, d, lo, hi, h) CFG_INT(k, g4_cfg, f, d, lo, hi, h),
#define G4_DBL(k, f, d, lo, hi, h) CFG_DOUBLE(k, g4_cfg, f, d, lo, hi, h),

static const cfg_def g4_defs[] = {
    CFG_ENUM("loss", g4_cfg, loss, GRU4REC_DEFAULT_LOSS, "cross-entropy|bpr-max|top1-max", "loss function"),
    CFG_JSON("layers", g4_cfg, layers, GRU4REC_DEFAULT_LAYERS_JSON, "GRU layer sizes, e.g. [224] or [100,100]"),
    GRU4REC_HPARAMS(G4_BOOL, G4_INT, G4_DBL)
    CFG_INT("epochs", g4_cfg, epochs, 10, 0, 100000, "training epochs"),
    CFG_INT("seed", g4_cfg, seed, 42, 0, 9.2e18, "random seed (initialisation, dropout, sampling)"),
    CFG_INT("threads", g4_cfg, threads, 1, 0, 256, "BLAS threads (0: OpenBLAS default)"),
    CFG_INT("eval_lanes", g4_cfg, eval_lanes, 256, 1, 65536, "sessions scored together in evaluation"),
    CFG_INT("eval_every", g4_cfg, eval_every, 0, 0, 100000,
            "also evaluate every N epochs during training (0: only at the end)"),
    CFG_DOUBLE("finetune_days", g4_cfg, finetune_days, 0, 0, 1e6,
               "after the epochs, train again on the sessions of the last D days of training (0: off)"),
    CFG_INT("finetune_epochs", g4_cfg, finetune_epochs, 1, 0, 1000, "epochs of that recency pass"),
    CFG_STRING("train", g4_cfg, train, NULL, "training clicks already split (as `recd split sessions` writes)"),
    CFG_STRING("test", g4_cfg, test, NULL, "test clicks already split (with train)"),
    CFG_STRING("out", g4_cfg, out, "snapshots", "snapshot root (ROOT/gru4rec/VERSION)"),
    CFG_STRING("name", g4_cfg, name, "gru4rec", "label of the result line on stdout"),
    CFG_BOOL("quiet", g4_cfg, quiet, 0, "only warnings and the result line"),
    SESS_CFG_ENTRIES(g4_cfg, data),
    CFG_RENAMED("n_epochs", "epochs"),
    CFG_RENAMED("out_dir", "out"),
    CFG_RENAMED("lanes", "eval_lanes"),
    CFG_RENAMED_NOTE("eval_every_epoch", "eval_every", "eval_every_epoch true is eval_every 1"),
    CFG_END,
};


static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- evaluation: the generic `next` model scorer (trainer/eval_next.h), BLAS f32 = gru4rec_score ---- */

static int evaluate(const gru4rec *m, const sess_data *test, int lanes, int progress, metrics_topk *acc)
{
    return next_eval_model(test, &gru4rec_type, m, lanes, progress, acc);
}

static void print_result(FILE *out, const char *label, const metrics_topk *acc, double evps, long long epochs)
{
    fprintf(out, "%s", label);
    int ks[3] = {20, 10, 5};
    for (int i = 0; i < 3; i++)
        fprintf(out, " recall@%d=%.4f mrr@%d=%.4f", ks[i], metrics_topk_recall(acc, ks[i]), ks[i],
                metrics_topk_mrr(acc, ks[i]));
    if (evps >= 0) fprintf(out, " events/s=%.0f epochs=%lld", evps, epochs);
    fprintf(out, " predictions=%lld\n", (long long)acc->n);
    fflush(out);
}

/* ---- progress ---- */

typedef struct prog_ctx {
    int epoch, n_epochs;
    double epoch_t0, run_t0;
    int64_t events_per_epoch;
    int quiet;
} prog_ctx;

static int on_progress(void *ctx, const gru4rec_epoch_stats *st, int64_t total)
{
    prog_ctx *p = ctx;
    if (p->quiet) return 0;
    double el = clock_mono_s() - p->epoch_t0;
    double rate = el > 0 ? (double)st->events / el : 0;
    double left = rate > 0 ? ((double)(total - st->events) + (double)total * (p->n_epochs - p->epoch)) / rate : 0;
    log_info("epoch %d/%d %5.1f%% loss=%.6f events/s=%.0f elapsed=%.0fs ETA=%.0fs", p->epoch, p->n_epochs,
             100.0 * (double)st->events / (double)(total ? total : 1), st->loss, rate, clock_mono_s() - p->run_t0, left);
    return 0;
}

/* ---- config -> hparams ---- */

static int cfg_to_hparams(const g4_cfg *c, gru4rec_hparams *hp)
{
    gru4rec_hparams_default(hp);
    hp->loss = gru4rec_loss_parse(c->loss);
    const json_t *ly = c->layers;
    if (json_is_integer(ly)) {
        hp->n_layers = 1;
        hp->layers[0] = (int)json_integer_value(ly);
    } else if (json_is_array(ly) && json_array_size(ly) >= 1 && json_array_size(ly) <= GRU4REC_MAX_LAYERS) {
        hp->n_layers = (int)json_array_size(ly);
        for (int l = 0; l < hp->n_layers; l++) {
            const json_t *v = json_array_get(ly, (size_t)l);
            if (!json_is_integer(v)) return rc_error(RC_EINVAL, "setting 'layers'[%d]: not an integer", l);
            hp->layers[l] = (int)json_integer_value(v);
        }
    } else {
        return rc_error(RC_EINVAL, "setting 'layers': expected a size or an array of 1..%d sizes", GRU4REC_MAX_LAYERS);
    }
#define G4_COPY(k, f, ...) hp->f = c->f; /* within the table's bounds, so ints fit */
    GRU4REC_HPARAMS(G4_COPY, G4_COPY, G4_COPY)
#undef G4_COPY
    return gru4rec_hparams_check(hp);
}

static uint64_t data_fingerprint(const sess_data *d)
{
    uint64_t h = hash64(d->items, (size_t)d->n_events * sizeof *d->items, 0x6772753472656300ULL);
    h = hash_combine(h, d->offsets, (size_t)(d->n_sessions + 1) * sizeof *d->offsets);
    for (int64_t i = 0; i < d->n_items; i++) {
        size_t len = 0;
        const char *k = idmap_key(d->item_vocab, i, &len);
        h = hash_combine(h, k, len);
    }
    return h;
}

static void usage_train(FILE *out)
{
    fprintf(out,
            "usage: recd train gru4rec [-c CONFIG] (--data F | --train F [--test F]) [--SETTING VALUE ...]\n"
            "  -c CONFIG     JSON file of settings (the flags below override it)\n"
            "  --data F      click file (CSV/TSV, gzip ok): preprocessed and split as the data.* settings say\n"
            "                (command line only: `data` in a config file is the data.* group)\n"
            "settings (config file keys, or --SETTING VALUE; '-' and '_' are the same in flags, file keys are exact):\n");
    cfg_print_help(g4_defs, out);
}

int gru4rec_cmd_train(int argc, char **argv)
{
    g4_cfg c;
    sess_split sp;
    memset(&sp, 0, sizeof sp);
    gru4rec *m = NULL;
    gru4rec_trainer *t = NULL;
    int64_t *counts = NULL;
    json_t *extra = NULL;
    int status = 1, rc, have_split = 0;
    const char *prog = "recd train gru4rec";
    if (cfg_defaults(g4_defs, &c) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        return 1;
    }
    const char *data = NULL, *test = NULL, *label = "gru4rec", *cfg_path = NULL;
    int quiet = 0;
    if ((status = sess_trainer_args(g4_defs, &c, argc, argv, prog, usage_train, offsetof(g4_cfg, train),
                                    offsetof(g4_cfg, test), &data, &cfg_path)) >= 0)
        goto done;
    status = 1;
    test = c.test;
    label = c.name ? c.name : "gru4rec";
    quiet = c.quiet;
    gru4rec_hparams hp;
    if (cfg_to_hparams(&c, &hp) != RC_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, cfg_path ? cfg_path : "settings", rc_errmsg());
        status = 2;
        goto done;
    }
    if (quiet) {
        c.data.verbose = 0;
        if (log_level < LOG_LVL_WARN) log_level = LOG_LVL_WARN; /* only warnings and the result line */
    }
    if (c.threads > 0) openblas_set_num_threads((int)c.threads);

    double t0 = clock_mono_s();
    if (data)
        rc = sess_prepare(&sp, data, &c.data);
    else if (test)
        rc = sess_load_for_eval(&sp, NULL, c.train, test, &c.data);
    else /* no test: train on every click of the file */
        rc = sess_load(&sp.train, c.train, &c.data);
    if (!data) data = c.train; /* the training file, in messages and meta */
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    have_split = 1;
    const sess_data *tr = &sp.train;
    if (tr->n_items < 1 || tr->n_events < 2) {
        fprintf(stderr, "%s: %s: no training clicks left after preprocessing\n", prog, data);
        goto done;
    }
    if (!quiet)
        log_info("gru4rec: data ready in %.1fs: train %lld events, %lld sessions, %lld items; test %lld sessions, "
             "%lld predictions",
             clock_mono_s() - t0, (long long)tr->n_events, (long long)tr->n_sessions, (long long)tr->n_items,
             (long long)sp.test.n_sessions, (long long)sess_n_predictions(&sp.test));
    counts = malloc((size_t)tr->n_items * sizeof *counts);
    if (!counts) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    sess_item_counts(tr, counts);
    if ((rc = gru4rec_new_random(&m, &hp, tr->item_vocab, counts, (uint64_t)c.seed)) != RC_OK ||
        (rc = gru4rec_trainer_new(&t, m, (uint64_t)c.seed + 1)) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    metrics_topk acc;
    memset(&acc, 0, sizeof acc);
    int have_metrics = 0;
    prog_ctx pc = {.n_epochs = (int)c.epochs, .run_t0 = clock_mono_s(), .quiet = quiet};
    double train_s = 0, last_loss = 0;
    int64_t train_events = 0;
    int64_t every = tr->n_events / 20 + 1;
    for (int e = 0; e < c.epochs; e++) {
        gru4rec_epoch_stats st;
        pc.epoch = e + 1;
        pc.epoch_t0 = clock_mono_s();
        double c0 = cpu_s();
        rc = gru4rec_train_epoch(t, tr->items, tr->offsets, tr->n_sessions, on_progress, &pc, every, &st);
        double ccpu = cpu_s() - c0;
        if (rc != RC_OK) {
            fprintf(stderr, "%s: epoch %d: %s\n", prog, e + 1, rc_errmsg());
            goto done;
        }
        train_s += st.seconds;
        train_events += st.events;
        last_loss = st.loss;
        double rate = st.seconds > 0 ? (double)st.events / st.seconds : 0;
        double left = rate > 0 ? (double)st.events * (double)(c.epochs - e - 1) / rate : 0;
        if (!quiet)
            log_info("epoch %d/%lld done: loss=%.6f events=%lld events/s=%.0f (per CPU-second %.0f) epoch=%.1fs "
                     "elapsed=%.1fs ETA=%.0fs",
                     e + 1, c.epochs, st.loss, (long long)st.events, rate, ccpu > 0 ? (double)st.events / ccpu : 0,
                     st.seconds, clock_mono_s() - pc.run_t0, left);
        if (c.eval_every > 0 && (e + 1) % c.eval_every == 0 && e + 1 < c.epochs && sp.test.n_sessions > 0) {
            double te = clock_mono_s();
            if ((rc = evaluate(m, &sp.test, (int)c.eval_lanes, 0, &acc)) != RC_OK) {
                fprintf(stderr, "%s: evaluation: %s\n", prog, rc_errmsg());
                goto done;
            }
            char buf[512];
            next_eval_format(&acc, "gru4rec", buf, sizeof buf);
            log_info("epoch %d eval (%.1fs): %s", e + 1, clock_mono_s() - te, buf);
        }
    }
    if (c.finetune_days > 0 && c.finetune_epochs > 0) {
        /* recency pass: sessions are ordered by their first click, so the recent ones are a suffix */
        int64_t max_t = INT64_MIN;
        for (int64_t i = 0; i < tr->n_events; i++)
            if (tr->times[i] > max_t) max_t = tr->times[i];
        int64_t cut; /* saturated for extreme timestamps, as the split cutoff is */
        if (__builtin_sub_overflow(max_t, (int64_t)(c.finetune_days * (double)sess_day_units(&c.data, max_t)), &cut))
            cut = INT64_MIN;
        int64_t s0 = tr->n_sessions;
        while (s0 > 0 && tr->times[tr->offsets[s0 - 1]] >= cut) s0--;
        if (s0 == tr->n_sessions) log_warn("recency pass: no training session starts in the last %g days", c.finetune_days);
        for (int e = 0; e < c.finetune_epochs && s0 < tr->n_sessions; e++) {
            gru4rec_epoch_stats st;
            pc.epoch = e + 1;
            pc.n_epochs = (int)c.finetune_epochs;
            pc.epoch_t0 = clock_mono_s();
            rc = gru4rec_train_epoch(t, tr->items, tr->offsets + s0, tr->n_sessions - s0, NULL, NULL, 0, &st);
            if (rc != RC_OK) {
                fprintf(stderr, "%s: recency pass: %s\n", prog, rc_errmsg());
                goto done;
            }
            train_s += st.seconds;
            train_events += st.events;
            if (!quiet)
                log_info("recency pass %d/%lld over the last %g days (%lld sessions): loss=%.6f events=%lld %.1fs",
                         e + 1, c.finetune_epochs, c.finetune_days, (long long)(tr->n_sessions - s0), st.loss,
                         (long long)st.events, st.seconds);
        }
    }
    double evps = train_s > 0 ? (double)train_events / train_s : 0;
    if (sp.test.n_sessions > 0) {
        double te = clock_mono_s();
        if ((rc = evaluate(m, &sp.test, (int)c.eval_lanes, !quiet, &acc)) != RC_OK) {
            fprintf(stderr, "%s: evaluation: %s\n", prog, rc_errmsg());
            goto done;
        }
        have_metrics = 1;
        if (!quiet) log_info("evaluation took %.1fs", clock_mono_s() - te);
    }

    /* snapshot */
    extra = json_object();
    json_t *cfgj = cfg_to_json(g4_defs, &c);
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)data_fingerprint(tr));
    json_object_set_new(extra, "config", cfgj ? cfgj : json_null());
    json_object_set_new(extra, "data", json_pack("{s:s, s:s?, s:I, s:I, s:I, s:s}", "path", data, "test_path", test,
                                                 "n_events", (json_int_t)tr->n_events, "n_sessions",
                                                 (json_int_t)tr->n_sessions, "n_items", (json_int_t)tr->n_items,
                                                 "fingerprint", fp));
    json_object_set_new(extra, "train", json_pack("{s:I, s:f, s:I, s:f, s:I}", "epochs", (json_int_t)c.epochs, "loss",
                                                  last_loss, "events", (json_int_t)train_events, "events_per_s", evps,
                                                  "seed", (json_int_t)c.seed));
    if (have_metrics) json_object_set_new(extra, "metrics", metrics_topk_to_json(&acc));
    uint64_t ver = 0;
    if ((rc = gru4rec_save(m, c.out, "gru4rec", extra, &ver)) != RC_OK) {
        fprintf(stderr, "%s: cannot write the snapshot under %s: %s\n", prog, c.out, rc_errmsg());
        goto done;
    }
    if (!quiet) log_info("gru4rec: published %s/gru4rec/%llu", c.out, (unsigned long long)ver);
    if (have_metrics) print_result(stdout, label, &acc, evps, c.epochs);
    else printf("%s events/s=%.0f epochs=%lld (no test data)\n", label, evps, c.epochs);
    status = 0;
done:
    json_decref(extra);
    gru4rec_trainer_free(t);
    gru4rec_free(m);
    free(counts);
    if (have_split) sess_split_free(&sp);
    cfg_release(g4_defs, &c);
    return status;
}
