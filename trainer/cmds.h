/* trainer/cmds.h - entry points of the trainer's subcommands (called from main.c).
 * Each takes argv from the subcommand name on and returns the exit status: 0 ok, 1 failure, 2 usage. */
#ifndef RECD_TRAINER_CMDS_H
#define RECD_TRAINER_CMDS_H

int cmd_train(int argc, char **argv);   /* recd train MODEL -c CONFIG [--data F] [--out DIR] ... */
int cmd_eval(int argc, char **argv);    /* recd eval MODEL --snapshot DIR --data F ... */
int cmd_split(int argc, char **argv);   /* recd split sessions --data F --out DIR ... (trainer/split.c) */
int cmd_synth(int argc, char **argv);   /* recd synth sessions|ratings|ctr --out F ... (trainer/synth.c) */
int cmd_inspect(int argc, char **argv); /* recd inspect DIR (trainer/inspect.c) */

/* Per-model trainers and evaluators, dispatched by cmd_train / cmd_eval (argv[0] is the model name). */
typedef int (*trainer_fn)(int argc, char **argv);
struct trainer_entry {
    const char *model;
    trainer_fn train; /* may be NULL: no trainer (e.g. a baseline) */
    trainer_fn eval;  /* may be NULL */
    const char *help;
};

#endif
