/* main.c - the recd command line: one binary, one table of subcommands.
 *
 * Each subcommand lives in its module (server/, trainer/) as `int cmd_NAME(int argc, char **argv)`,
 * receiving argv from the subcommand name on, and returns the process exit status (0 ok, 1 runtime
 * failure, 2 usage error). Only main() calls exit.
 */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "server/server.h"
#include "trainer/cmds.h"

typedef int (*cmd_fn)(int argc, char **argv);
struct command {
    const char *name;
    cmd_fn fn;
    const char *synopsis;
    const char *summary;
};

/* Subcommands (one line each). */
static const struct command commands[] = {
    {"train", cmd_train, "train MODEL -c CONFIG [--data F] [--out DIR]",
     "train a model, publish a snapshot"},
    {"eval", cmd_eval, "eval MODEL --snapshot DIR --data F",
     "evaluate a snapshot or a baseline"},
    {"split", cmd_split, "split sessions|ratings --data F --out DIR",
     "GRU4Rec time split, or the rating protocol split, into files"},
    {"synth", cmd_synth, "synth sessions|ratings|ctr --out F [--seed S]",
     "deterministic synthetic data"},
    {"inspect", cmd_inspect, "inspect DIR",
     "validate a snapshot, print its meta and tensors"},
    {"serve", cmd_serve, "serve [-c CONFIG] [--SETTING VALUE ...]",
     "serve snapshots over HTTP (/v1/next, ...)"},
    {"events", cmd_events, "events export --state DIR --out F [--rows R]",
     "logged traffic of a state folder as training files"},
    {NULL, NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "recd %s - train and serve recommendation models\n\nusage:\n", RECD_VERSION);
    for (const struct command *c = commands; c->name; c++)
        fprintf(out, "  recd %-48s %s\n", c->synopsis, c->summary);
    fprintf(out, "  recd %-48s %s\n  recd %-48s %s\n\n", "--version", "print the version", "--help",
            "this text");
    fprintf(out, "Run `recd COMMAND --help` for the options of one "
                 "command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("recd %s\n", RECD_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (const struct command *c = commands; c->name; c++)
        if (strcmp(argv[1], c->name) == 0) return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "recd: unknown command '%s' (run `recd --help`)\n", argv[1]);
    return 2;
}
