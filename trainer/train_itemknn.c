/* trainer/train_itemknn.c - `recd train itemknn`: build the session item-kNN model (models/itemknn.h).
 *
 *   recd train itemknn -c configs/itemknn.json (--data F | --train F [--test F]) [--out DIR] [--SETTING VALUE ...]
 *
 * Reads clicks through trainer/sessions.h exactly as `recd train gru4rec` does (--data: the whole file,
 * preprocessed and split as the data.* settings say; --train/--test: an already split pair, as `recd
 * split sessions` writes; --train alone: no evaluation), builds the neighbour table, evaluates it on the test sessions
 * with the next-item protocol (trainer/eval_next.h), publishes OUT/itemknn/VERSION whose meta holds the
 * settings, the data summary, the build time and the metrics, and prints one line on stdout:
 *   LABEL recall@20=.. mrr@20=.. recall@10=.. mrr@10=.. recall@5=.. mrr@5=.. predictions=N build_s=.. nnz=..
 * `recd eval itemknn --snapshot DIR ...` scores a published snapshot on the same protocol.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "models/itemknn.h"
#include "trainer/eval_next.h"
#include "trainer/sessions.h"

int itemknn_cmd_train(int argc, char **argv);

typedef struct knn_cfg {
    char *train, *test, *out, *name;
    long long threads, lanes;
    int quiet;
    long long neighbours, window, history;
    char *normalize;
    double alpha, lambda, position_decay, backward, half_life_days, decay, pop_prior;
    sess_opts data;
} knn_cfg;

static const cfg_def knn_defs[] = {
    CFG_STRING("train", knn_cfg, train, NULL, "training clicks already split (as `recd split sessions` writes)"),
    CFG_STRING("test", knn_cfg, test, NULL, "test clicks already split (with train)"),
    CFG_STRING("out", knn_cfg, out, "snapshots", "snapshot root (ROOT/itemknn/VERSION)"),
    CFG_STRING("name", knn_cfg, name, "itemknn", "label of the result line"),
    CFG_INT("threads", knn_cfg, threads, 1, 1, 256, "threads building the neighbour table"),
    CFG_INT("eval_lanes", knn_cfg, lanes, 256, 1, 65536, "sessions scored together in evaluation"),
    CFG_RENAMED("lanes", "eval_lanes"),
    CFG_BOOL("quiet", knn_cfg, quiet, 0, "only warnings and the result line"),
    CFG_INT("neighbours", knn_cfg, neighbours, ITEMKNN_DEF_NEIGHBOURS, 1, 100000, "M: neighbours kept per item"),
    CFG_INT("window", knn_cfg, window, ITEMKNN_DEF_WINDOW, 1, 2147483647,
            "W: co-occurrence only between clicks at most W positions apart (build time ~ clicks x 2W)"),
    CFG_INT("history", knn_cfg, history, ITEMKNN_DEF_HISTORY, 1, ITEMKNN_MAX_HISTORY,
            "S: recent clicks of a session that score (state size)"),
    CFG_ENUM("normalize", knn_cfg, normalize, ITEMKNN_DEF_NORMALIZE, "cosine|conditional",
             "cooc / ((supp_i+lambda)^alpha (supp_j+lambda)^(1-alpha)) | cooc / (supp_i+lambda)"),
    CFG_DOUBLE("alpha", knn_cfg, alpha, ITEMKNN_DEF_ALPHA, 0, 1, "cosine: exponent of supp_i (0.5: cosine)"),
    CFG_DOUBLE("lambda", knn_cfg, lambda, ITEMKNN_DEF_LAMBDA, 0, 1e12, "shrinkage added to the supports"),
    CFG_DOUBLE("position_decay", knn_cfg, position_decay, ITEMKNN_DEF_POSITION_DECAY, 1e-9, 1,
               "weight of a pair d clicks apart: position_decay^(d-1)"),
    CFG_DOUBLE("backward", knn_cfg, backward, ITEMKNN_DEF_BACKWARD, 0, 1,
               "weight of a pair whose neighbour came first (1: symmetric)"),
    CFG_DOUBLE("half_life_days", knn_cfg, half_life_days, ITEMKNN_DEF_HALF_LIFE_DAYS, 0, 1e6,
               "session recency half-life before the last training click (0: off)"),
    CFG_DOUBLE("decay", knn_cfg, decay, ITEMKNN_DEF_DECAY, 0, 1, "score weight of the click a back: decay^a"),
    CFG_DOUBLE("pop_prior", knn_cfg, pop_prior, ITEMKNN_DEF_POP_PRIOR, 0, 1e6,
               "weight of (recency-weighted) popularity in the scores"),
    SESS_CFG_ENTRIES(knn_cfg, data),
    CFG_END,
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: recd train itemknn -c CONFIG (--data F | --train F [--test F]) [--out DIR] [--SETTING VALUE ...]\n"
            "  --data F   click file (CSV/TSV, gzip ok): preprocessed and split as the data.* settings say\n"
            "  --train F --test F   files already split (as `recd split sessions` writes)\n"
            "Builds the session item-kNN neighbour table, evaluates it (Recall@k, MRR@k) and publishes\n"
            "OUT/itemknn/VERSION. settings (config file keys, or --SETTING VALUE; '-' and '_' are the same in flags, file keys are exact):\n");
    cfg_print_help(knn_defs, out);
}

/* Evaluate m on test (items already in m's vocabulary) with the scorer of any `next` model. */
static int evaluate(const itemknn *m, const sess_data *test, int lanes, int progress, metrics_topk *acc)
{
    return next_eval_model(test, &itemknn_type, m, lanes, progress, acc);
}

int itemknn_cmd_train(int argc, char **argv)
{
    const char *prog = "recd train itemknn";
    knn_cfg c;
    sess_split sp;
    memset(&sp, 0, sizeof sp);
    itemknn *m = NULL;
    json_t *extra = NULL;
    int status = 1, have_split = 0, rc;
    if (cfg_defaults(knn_defs, &c) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        return 1;
    }
    const char *data = NULL, *cfg_path = NULL;
    if ((status = sess_trainer_args(knn_defs, &c, argc, argv, prog, usage, offsetof(knn_cfg, train),
                                    offsetof(knn_cfg, test), &data, &cfg_path)) >= 0)
        goto done;
    status = 1;
    itemknn_hparams hp;
    itemknn_hparams_default(&hp);
    hp.neighbours = (int)c.neighbours;
    hp.window = (int)c.window;
    hp.history = (int)c.history;
    hp.normalize = itemknn_normalize_parse(c.normalize);
    hp.alpha = c.alpha;
    hp.lambda = c.lambda;
    hp.position_decay = c.position_decay;
    hp.backward = c.backward;
    hp.decay = c.decay;
    hp.pop_prior = c.pop_prior;
    if (c.quiet) {
        c.data.verbose = 0;
        if (log_level < LOG_LVL_WARN) log_level = LOG_LVL_WARN;
    }

    double t0 = clock_mono_s();
    const char *src = data ? data : c.train;
    if (data) rc = sess_prepare(&sp, data, &c.data);
    else if (c.test) rc = sess_load_for_eval(&sp, NULL, c.train, c.test, &c.data);
    else rc = sess_load(&sp.train, c.train, &c.data); /* already split, no test: nothing to evaluate */
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    have_split = 1;
    const sess_data *tr = &sp.train;
    if (tr->n_items < 1 || tr->n_events < 1) {
        fprintf(stderr, "%s: %s: no training clicks left after preprocessing\n", prog, src);
        goto done;
    }
    int64_t max_t = INT64_MIN;
    for (int64_t e = 0; e < tr->n_events; e++)
        if (tr->times[e] > max_t) max_t = tr->times[e];
    hp.half_life = c.half_life_days * (double)sess_day_units(&c.data, max_t);
    if (itemknn_hparams_check(&hp) != RC_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, cfg_path ? cfg_path : "settings", rc_errmsg());
        status = 2;
        goto done;
    }
    log_info("itemknn: data ready in %.1fs: train %lld events, %lld sessions, %lld items; test %lld sessions",
             clock_mono_s() - t0, (long long)tr->n_events, (long long)tr->n_sessions, (long long)tr->n_items,
             (long long)sp.test.n_sessions);
    double tb = clock_mono_s();
    itemknn_sessions d = {tr->items, tr->offsets, tr->times, tr->n_sessions};
    if (itemknn_build(&m, &hp, tr->item_vocab, &d, (int)c.threads) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    double build_s = clock_mono_s() - tb;
    log_info("itemknn: %lld neighbours of %lld items built in %.2fs", (long long)itemknn_nnz(m),
             (long long)tr->n_items, build_s);
    metrics_topk acc;
    memset(&acc, 0, sizeof acc);
    int have_metrics = 0;
    if (sp.test.n_sessions > 0) {
        if (evaluate(m, &sp.test, (int)c.lanes, !c.quiet, &acc) != RC_OK) {
            fprintf(stderr, "%s: evaluation: %s\n", prog, rc_errmsg());
            goto done;
        }
        have_metrics = 1;
    }
    extra = json_object();
    json_t *cfgj = cfg_to_json(knn_defs, &c);
    json_object_set_new(extra, "config", cfgj ? cfgj : json_null());
    json_object_set_new(extra, "data", json_pack("{s:s, s:s?, s:I, s:I, s:I}", "path", src, "test_path", c.test,
                                                 "n_events", (json_int_t)tr->n_events, "n_sessions",
                                                 (json_int_t)tr->n_sessions, "n_items", (json_int_t)tr->n_items));
    json_object_set_new(extra, "train", json_pack("{s:f, s:I}", "build_s", build_s, "threads", (json_int_t)c.threads));
    if (have_metrics) json_object_set_new(extra, "metrics", metrics_topk_to_json(&acc));
    uint64_t ver = 0;
    if (itemknn_save(m, c.out, "itemknn", extra, &ver) != RC_OK) {
        fprintf(stderr, "%s: cannot write the snapshot under %s: %s\n", prog, c.out, rc_errmsg());
        goto done;
    }
    log_info("itemknn: published %s/itemknn/%llu", c.out, (unsigned long long)ver);
    char line[512] = "";
    if (have_metrics) next_eval_format_pairs(&acc, c.name, line, sizeof line);
    else snprintf(line, sizeof line, "%s (no test data)", c.name);
    printf("%s build_s=%.2f nnz=%lld\n", line, build_s, (long long)itemknn_nnz(m));
    fflush(stdout);
    status = 0;
done:
    json_decref(extra);
    itemknn_free(m);
    if (have_split) sess_split_free(&sp);
    cfg_release(knn_defs, &c);
    return status;
}
