/* trainer/train.c - `recd train MODEL` and `recd eval MODEL`: one table of models. */
#include <stdio.h>
#include <string.h>

#include "trainer/cmds.h"

/* One line per model (declare its functions just above the table). */
int wd_cmd_train(int argc, char **argv);
int wd_cmd_eval(int argc, char **argv);
int eval_pop_cmd(int argc, char **argv);       /* trainer/eval_next.c */
int eval_recentpop_cmd(int argc, char **argv); /* trainer/eval_next.c */
int gru4rec_cmd_train(int argc, char **argv); /* trainer/train_gru4rec.c */
int gru4rec_cmd_eval(int argc, char **argv);
static const struct trainer_entry trainers[] = {
    {"gru4rec", gru4rec_cmd_train, gru4rec_cmd_eval, "GRU4Rec session-based next-item model (configs/gru4rec*.json)"},
    {"pop", NULL, eval_pop_cmd, "baseline: training popularity (next-item protocol)"},
    {"recentpop", NULL, eval_recentpop_cmd, "baseline: popularity in the last day of training"},
    {"widedeep", wd_cmd_train, wd_cmd_eval, "Wide & Deep ranking model (CSV features; configs/widedeep_*.json)"},
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
