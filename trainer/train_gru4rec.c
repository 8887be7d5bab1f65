/* trainer/train_gru4rec.c - `recd train gru4rec` and `recd eval gru4rec`.
 *
 *   recd train gru4rec -c configs/gru4rec.json --data F [--test F] [--out DIR] [--epochs N]
 *                      [--name LABEL] [--quiet] [--<setting> value ...]
 *   recd eval gru4rec --snapshot DIR (--data F [split flags] | --train F --test F) [--lanes B]
 *
 * Training reads clicks through trainer/sessions.h (the whole file, GRU4Rec preprocessing and the time
 * split as the config's data.* settings say; or, with --test, F and the test file as already split),
 * trains, prints per-epoch loss, events/s, elapsed and ETA on stderr, evaluates (every epoch when
 * eval_every_epoch, and at the end), publishes a snapshot under --out (setting out_dir) whose meta holds
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
#include "trainer/eval_next.h"
#include "trainer/sessions.h"

int gru4rec_cmd_train(int argc, char **argv);
int gru4rec_cmd_eval(int argc, char **argv);

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
    long long n_epochs, seed, threads, eval_lanes;
    int eval_every_epoch;
    double finetune_days;
    long long finetune_epochs;
    char *out_dir;
    sess_opts data;
} g4_cfg;

static const cfg_def g4_defs[] = {
    CFG_ENUM("loss", g4_cfg, loss, "bpr-max", "cross-entropy|bpr-max|top1-max", "loss function"),
    CFG_JSON("layers", g4_cfg, layers, "[224]", "GRU layer sizes, e.g. [224] or [100,100]"),
    CFG_BOOL("constrained_embedding", g4_cfg, constrained, 1, "input embedding = output embedding"),
    CFG_INT("embedding", g4_cfg, embedding, 0, 0, 65536,
            "separate input embedding size (0 and not constrained: one-hot input)"),
    CFG_DOUBLE("elu_param", g4_cfg, elu_param, 0.5, 0, 100, "BPR-max: ELU parameter of the scores (0: off)"),
    CFG_DOUBLE("bpreg", g4_cfg, bpreg, 1.95, 0, 1e6, "BPR-max score regularisation"),
    CFG_DOUBLE("logq", g4_cfg, logq, 0, 0, 100, "cross-entropy logQ correction weight"),
    CFG_INT("batch_size", g4_cfg, batch_size, 80, 1, 65536, "sessions per mini-batch"),
    CFG_INT("n_sample", g4_cfg, n_sample, 2048, 0, 1 << 24, "shared negative samples per mini-batch"),
    CFG_DOUBLE("sample_alpha", g4_cfg, sample_alpha, 0.4, 0, 10, "negatives drawn ~ popularity^alpha"),
    CFG_INT("sample_cache", g4_cfg, sample_cache, 10000000, 1, 1e10, "precomputed negative samples"),
    CFG_DOUBLE("learning_rate", g4_cfg, learning_rate, 0.05, 1e-9, 100, "AdaGrad learning rate"),
    CFG_DOUBLE("momentum", g4_cfg, momentum, 0.4, 0, 0.999999, "momentum"),
    CFG_DOUBLE("dropout_p_embed", g4_cfg, dropout_embed, 0.5, 0, 0.99, "dropout on the input embedding"),
    CFG_DOUBLE("dropout_p_hidden", g4_cfg, dropout_hidden, 0.05, 0, 0.99, "dropout on the GRU outputs"),
    CFG_INT("n_epochs", g4_cfg, n_epochs, 10, 0, 100000, "training epochs"),
    CFG_INT("seed", g4_cfg, seed, 42, 0, 9.2e18, "random seed (initialisation, dropout, sampling)"),
    CFG_INT("threads", g4_cfg, threads, 1, 0, 256, "BLAS threads (0: OpenBLAS default)"),
    CFG_INT("eval_lanes", g4_cfg, eval_lanes, 256, 1, 65536, "sessions scored together in evaluation"),
    CFG_BOOL("eval_every_epoch", g4_cfg, eval_every_epoch, 0, "evaluate after every epoch"),
    CFG_DOUBLE("finetune_days", g4_cfg, finetune_days, 0, 0, 1e6,
               "after the epochs, train again on the sessions of the last D days of training (0: off)"),
    CFG_INT("finetune_epochs", g4_cfg, finetune_epochs, 1, 0, 1000, "epochs of that recency pass"),
    CFG_STRING("out_dir", g4_cfg, out_dir, "snapshots", "snapshot root (ROOT/gru4rec/VERSION)"),
    SESS_CFG_ENTRIES(g4_cfg, data),
    CFG_END,
};


static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the evaluation scorer: per-lane hidden states, stepped and scored in one batch ---- */

typedef struct g4_scorer {
    const gru4rec *m;
    gru4rec_scratch *sc;
    float *h;  /* (lanes,S) per-lane state */
    float *hb; /* (lanes,S) gathered rows */
    size_t S;
} g4_scorer;

static int g4_begin(void *ctx, int lanes)
{
    g4_scorer *g = ctx;
    g->S = gru4rec_state_size(g->m);
    g->sc = gru4rec_scratch_new(g->m, lanes);
    g->h = calloc((size_t)lanes * g->S, sizeof(float));
    g->hb = calloc((size_t)lanes * g->S, sizeof(float));
    if (!g->sc || !g->h || !g->hb) return rc_error(RC_ENOMEM, "gru4rec eval: out of memory for %d lanes", lanes);
    return RC_OK;
}

static int g4_score(void *ctx, const int *lanes, const int32_t *items, const uint8_t *reset, int B, float *scores)
{
    g4_scorer *g = ctx;
    size_t S = g->S;
    for (int b = 0; b < B; b++) {
        float *src = g->h + (size_t)lanes[b] * S;
        if (reset[b])
            memset(g->hb + (size_t)b * S, 0, S * sizeof(float));
        else
            memcpy(g->hb + (size_t)b * S, src, S * sizeof(float));
    }
    gru4rec_step(g->m, g->hb, items, B, g->sc);
    for (int b = 0; b < B; b++) memcpy(g->h + (size_t)lanes[b] * S, g->hb + (size_t)b * S, S * sizeof(float));
    gru4rec_score(g->m, g->hb, B, scores, g->sc);
    return RC_OK;
}

static void g4_end(void *ctx)
{
    g4_scorer *g = ctx;
    gru4rec_scratch_free(g->sc);
    free(g->h);
    free(g->hb);
    g->sc = NULL;
    g->h = g->hb = NULL;
}

static int evaluate(const gru4rec *m, const sess_data *test, int lanes, int progress, metrics_topk *acc)
{
    g4_scorer g = {.m = m};
    next_scorer sc = {.ctx = &g, .begin = g4_begin, .score = g4_score, .end = g4_end};
    next_eval_opts eo;
    next_eval_opts_default(&eo);
    eo.lanes = lanes;
    eo.progress = progress;
    eo.name = "gru4rec";
    return next_eval(test, &sc, &eo, acc);
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
    hp->constrained = c->constrained;
    hp->embedding = (int)c->embedding;
    hp->elu_param = c->elu_param;
    hp->bpreg = c->bpreg;
    hp->logq = c->logq;
    hp->batch_size = (int)c->batch_size;
    hp->n_sample = (int)c->n_sample;
    hp->sample_alpha = c->sample_alpha;
    hp->sample_cache = c->sample_cache;
    hp->learning_rate = c->learning_rate;
    hp->momentum = c->momentum;
    hp->dropout_embed = c->dropout_embed;
    hp->dropout_hidden = c->dropout_hidden;
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
            "usage: recd train gru4rec -c CONFIG --data F [--test F] [--out DIR] [--epochs N] [--name LABEL]\n"
            "                          [--quiet] [--SETTING VALUE ...]\n"
            "  --data F      click file (CSV/TSV, gzip ok): preprocessed and split as the data.* settings say;\n"
            "                with --test, F is an already split training file (as `recd split sessions` writes)\n"
            "  --test F      already split test file\n"
            "  --out DIR     snapshot root (setting out_dir); the snapshot is DIR/gru4rec/VERSION\n"
            "  --epochs N    setting n_epochs\n"
            "  --name LABEL  label of the result line on stdout (default gru4rec)\n"
            "settings (config file keys, or --name value):\n");
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
    const char *cfg_path = NULL, *data = NULL, *test = NULL, *out = NULL, *epochs = NULL, *label = "gru4rec";
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage_train(stdout);
            status = 0;
            goto done;
        }
        const char **dst = strcmp(argv[i], "-c") == 0         ? &cfg_path
                           : strcmp(argv[i], "--data") == 0   ? &data
                           : strcmp(argv[i], "--train") == 0  ? &data
                           : strcmp(argv[i], "--test") == 0   ? &test
                           : strcmp(argv[i], "--out") == 0    ? &out
                           : strcmp(argv[i], "--epochs") == 0 ? &epochs
                           : strcmp(argv[i], "--name") == 0   ? &label
                                                              : NULL;
        if (dst) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: option %s needs a value\n", prog, argv[i]);
                status = 2;
                goto done;
            }
            *dst = argv[++i];
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = 1;
        }
    }
    if (cfg_path && cfg_load_file(g4_defs, &c, cfg_path) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        status = 2;
        goto done;
    }
    static const char *const keep[] = {"-c", "--data", "--train", "--test", "--out", "--epochs", "--name", "--quiet",
                                        NULL};
    if (cfg_parse_args(g4_defs, &c, &argc, argv, keep) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        status = 2;
        goto done;
    }
    if (epochs && cfg_set(g4_defs, &c, "n_epochs", epochs, "--epochs") != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        status = 2;
        goto done;
    }
    if (out && cfg_set(g4_defs, &c, "out_dir", out, "--out") != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        status = 2;
        goto done;
    }
    if (!data) {
        fprintf(stderr, "%s: no training data (--data F)\n", prog);
        usage_train(stderr);
        status = 2;
        goto done;
    }
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
    rc = test ? sess_load_for_eval(&sp, NULL, data, test, &c.data) : sess_prepare(&sp, data, &c.data);
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
    prog_ctx pc = {.n_epochs = (int)c.n_epochs, .run_t0 = clock_mono_s(), .quiet = quiet};
    double train_s = 0, last_loss = 0;
    int64_t train_events = 0;
    int64_t every = tr->n_events / 20 + 1;
    for (int e = 0; e < c.n_epochs; e++) {
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
        double left = rate > 0 ? (double)st.events * (double)(c.n_epochs - e - 1) / rate : 0;
        if (!quiet)
            log_info("epoch %d/%lld done: loss=%.6f events=%lld events/s=%.0f (per CPU-second %.0f) epoch=%.1fs "
                     "elapsed=%.1fs ETA=%.0fs",
                     e + 1, c.n_epochs, st.loss, (long long)st.events, rate, ccpu > 0 ? (double)st.events / ccpu : 0,
                     st.seconds, clock_mono_s() - pc.run_t0, left);
        if (c.eval_every_epoch && e + 1 < c.n_epochs && sp.test.n_sessions > 0) {
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
    json_object_set_new(extra, "train", json_pack("{s:I, s:f, s:I, s:f, s:I}", "epochs", (json_int_t)c.n_epochs, "loss",
                                                  last_loss, "events", (json_int_t)train_events, "events_per_s", evps,
                                                  "seed", (json_int_t)c.seed));
    if (have_metrics) json_object_set_new(extra, "metrics", metrics_topk_to_json(&acc));
    uint64_t ver = 0;
    if ((rc = gru4rec_save(m, c.out_dir, "gru4rec", extra, &ver)) != RC_OK) {
        fprintf(stderr, "%s: cannot write the snapshot under %s: %s\n", prog, c.out_dir, rc_errmsg());
        goto done;
    }
    if (!quiet) log_info("gru4rec: published %s/gru4rec/%llu", c.out_dir, (unsigned long long)ver);
    if (have_metrics) print_result(stdout, label, &acc, evps, c.n_epochs);
    else printf("%s events/s=%.0f epochs=%lld (no test data)\n", label, evps, c.n_epochs);
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

int gru4rec_cmd_eval(int argc, char **argv)
{
    const char *prog = "recd eval gru4rec";
    sess_opts so;
    sess_opts_default(&so);
    const char *snapdir = NULL, *data = NULL, *train = NULL, *test = NULL, *label = "gru4rec";
    int lanes = 256;
    snap *s = NULL;
    gru4rec *m = NULL;
    int status = 1, have_split = 0;
    sess_split sp;
    /* The snapshot first: the data settings it was trained with (meta config.data) become the
     * defaults of the split flags, so `--data clicks.csv.gz` alone reproduces the training split. */
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--snapshot") == 0) snapdir = argv[i + 1];
    if (snapdir) {
        if (snap_open_any(&s, snapdir) != RC_OK || gru4rec_load(&m, s) != RC_OK) {
            fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
            goto done;
        }
        const json_t *dj = json_object_get(json_object_get(snap_meta(s), "config"), "data");
        const json_t *v;
        if ((v = json_object_get(dj, "session_col")) && json_is_string(v)) so.session_col = (char *)json_string_value(v);
        if ((v = json_object_get(dj, "item_col")) && json_is_string(v)) so.item_col = (char *)json_string_value(v);
        if ((v = json_object_get(dj, "time_col")) && json_is_string(v)) so.time_col = (char *)json_string_value(v);
        if ((v = json_object_get(dj, "time_unit")) && json_is_string(v)) so.time_unit = (char *)json_string_value(v);
        if ((v = json_object_get(dj, "split_time")) && json_is_integer(v)) so.split_time = json_integer_value(v);
        if ((v = json_object_get(dj, "days")) && json_is_number(v)) so.days = json_number_value(v);
        if ((v = json_object_get(dj, "sort_by_time")) && json_is_boolean(v)) so.sort_by_time = json_is_true(v);
        if ((v = json_object_get(dj, "drop_repeats")) && json_is_boolean(v)) so.drop_repeats = json_is_true(v);
        if ((v = json_object_get(dj, "min_session_len")) && json_is_integer(v))
            so.min_session_len = json_integer_value(v);
        if ((v = json_object_get(dj, "min_item_support")) && json_is_integer(v))
            so.min_item_support = json_integer_value(v);
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = sess_parse_flag(&so, argc, argv, &i, prog);
        if (r < 0) {
            status = 2;
            goto done;
        }
        if (r > 0) continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: %s --snapshot DIR (--data F [split flags] | --train F --test F) [--lanes B] [--name L]\n"
                   "Evaluates a GRU4Rec snapshot on the next-item protocol (test items unseen by the model are\n"
                   "dropped, then sessions shorter than 2); prints one line\n"
                   "  L recall@20=.. mrr@20=.. recall@10=.. mrr@10=.. recall@5=.. mrr@5=.. predictions=N\n"
                   "The split flags default to the data settings the snapshot was trained with.\n"
                   "split flags:\n%s",
                   prog, sess_flags_help);
            status = 0;
            goto done;
        }
        const char **dst = strcmp(a, "--snapshot") == 0 ? &snapdir
                           : strcmp(a, "--data") == 0   ? &data
                           : strcmp(a, "--train") == 0  ? &train
                           : strcmp(a, "--test") == 0   ? &test
                           : strcmp(a, "--name") == 0   ? &label
                                                        : NULL;
        if (dst || strcmp(a, "--lanes") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: option %s needs a value\n", prog, a);
                status = 2;
                goto done;
            }
            if (dst) {
                *dst = argv[++i];
            } else {
                char *end;
                long v = strtol(argv[++i], &end, 10);
                if (*end || v < 1 || v > 65536) {
                    fprintf(stderr, "%s: --lanes: expected 1..65536, got '%s'\n", prog, argv[i]);
                    status = 2;
                    goto done;
                }
                lanes = (int)v;
            }
            continue;
        }
        fprintf(stderr, "%s: unknown option '%s' (run `%s --help`)\n", prog, a, prog);
        status = 2;
        goto done;
    }
    if (!so.verbose && log_level < LOG_LVL_WARN) log_level = LOG_LVL_WARN;
    if (!snapdir || !m || (!data && !(train && test))) {
        fprintf(stderr, "%s: give --snapshot DIR and --data F (or --train F --test F)\n", prog);
        status = 2;
        goto done;
    }
    if (sess_load_for_eval(&sp, data, train, test, &so) < 0) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    have_split = 1;
    /* re-index the test clicks to the model's vocabulary by external id */
    sess_data model_vocab;
    memset(&model_vocab, 0, sizeof model_vocab);
    model_vocab.item_vocab = (idmap *)gru4rec_items(m); /* read only by sess_reindex */
    model_vocab.n_items = gru4rec_n_items(m);
    int64_t dropped = 0;
    if (sess_reindex(&sp.test, &model_vocab, &dropped) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    if (so.verbose)
        log_info("gru4rec eval: %lld test sessions, %lld predictions (%lld clicks on items unknown to the model "
                 "dropped)",
                 (long long)sp.test.n_sessions, (long long)sess_n_predictions(&sp.test), (long long)dropped);
    metrics_topk acc;
    double t0 = clock_mono_s();
    if (evaluate(m, &sp.test, lanes, so.verbose, &acc) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    if (so.verbose) log_info("gru4rec eval: %.1fs", clock_mono_s() - t0);
    print_result(stdout, label, &acc, -1, 0);
    status = 0;
done:
    if (have_split) sess_split_free(&sp);
    gru4rec_free(m);
    snap_close(s);
    return status;
}
