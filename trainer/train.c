/* trainer/train.c - `recd train MODEL` and `recd eval MODEL`: one table of models. */
#include <stdio.h>
#include <string.h>

#include "trainer/cmds.h"

/* One line per model: X(name, train command, eval command, help). The commands are
 * `int fn(int argc, char **argv)` (argv[0] is the model name); next_eval_cmd (trainer/eval_next.c)
 * evaluates any model with the `next` capability. */
#define TRAINERS(X)                                                                                        \
    X("gru4rec", gru4rec_cmd_train, next_eval_cmd, "GRU4Rec session-based next-item model (configs/gru4rec*.json)") \
    X("itemknn", itemknn_cmd_train, next_eval_cmd, "session item-kNN: co-occurrence neighbours of recent clicks (configs/itemknn.json)") \
    X("widedeep", wd_cmd_train, wd_cmd_eval, "Wide & Deep ranking model (CSV features; configs/widedeep_*.json)") \
    X("autorec", autorec_cmd_train, rt_eval_cmd, "I-AutoRec / U-AutoRec rating autoencoder (configs/i-autorec.json, configs/u-autorec.json)") \
    X("biasedmf", biasedmf_cmd_train, rt_eval_cmd, "biased matrix factorisation for ratings, SGD or ALS (configs/biasedmf.json)") \
    X("rbm", rbm_cmd_train, rt_eval_cmd, "U-RBM / I-RBM, RBMs for collaborative filtering (configs/u-rbm.json, configs/i-rbm.json)") \
    X("llorma", llorma_cmd_train, rt_eval_cmd, "LLORMA: kernel-weighted local low-rank models around anchors, ratings (configs/llorma.json)") \
    /* add a line above */

#define DECLARE(name, train, eval, help) int train(int argc, char **argv); int eval(int argc, char **argv);
TRAINERS(DECLARE)
int eval_pop_cmd(int argc, char **argv);       /* trainer/eval_next.c */
int eval_recentpop_cmd(int argc, char **argv); /* trainer/eval_next.c */

#define ENTRY(name, train, eval, help) {name, train, eval, help},
static const struct trainer_entry trainers[] = {
    TRAINERS(ENTRY)
    /* baselines: evaluation only */
    {"pop", NULL, eval_pop_cmd, "baseline: training popularity (next-item protocol)"},
    {"recentpop", NULL, eval_recentpop_cmd, "baseline: popularity in the last day of training"},
    {NULL, NULL, NULL, NULL},
};

static int dispatch(int argc, char **argv, int eval)
{
    const char *verb = eval ? "eval" : "train";
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        FILE *out = argc < 2 ? stderr : stdout;
        fprintf(out, "usage: recd %s MODEL [options]   (recd %s MODEL --help for its options)\nmodels:\n",
                verb, verb);
        for (const struct trainer_entry *t = trainers; t->model; t++)
            if (eval ? t->eval != NULL : t->train != NULL) fprintf(out, "  %-12s %s\n", t->model, t->help);
        return argc < 2 ? 2 : 0;
    }
    for (const struct trainer_entry *t = trainers; t->model; t++) {
        if (strcmp(t->model, argv[1]) != 0) continue;
        trainer_fn fn = eval ? t->eval : t->train;
        if (!fn) break;
        return fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "recd %s: unknown model '%s' (run `recd %s --help`)\n", verb, argv[1], verb);
    return 2;
}

int cmd_train(int argc, char **argv)
{
    return dispatch(argc, argv, 0);
}

int cmd_eval(int argc, char **argv)
{
    return dispatch(argc, argv, 1);
}
