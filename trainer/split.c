/* trainer/split.c - `recd split sessions`: the GRU4Rec time split written as two click files.
 *
 *   recd split sessions --data F --out DIR [--SETTING VALUE ...]   (settings: split_defs)
 *
 * writes DIR/train.tsv and DIR/test.tsv (header session_id, item_id, timestamp; external ids; sessions
 * in the order of their first click) and prints the counts on stdout. test.tsv holds only clicks on
 * items seen in train and sessions of 2 clicks or more, so `recd eval MODEL --train DIR/train.tsv
 * --test DIR/test.tsv` reads the same protocol back without filtering again.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/err.h"
#include "trainer/cmds.h"
#include "trainer/sessions.h"

typedef struct split_cfg {
    char *data, *out;
    int quiet;
    sess_opts so;
} split_cfg;

static const cfg_def split_defs[] = {
    CFG_STRING("data", split_cfg, data, NULL, "click file: CSV/TSV with a header, gzip ok (required)"),
    CFG_STRING("out", split_cfg, out, NULL, "folder for train.tsv and test.tsv (created; required)"),
    CFG_BOOL("quiet", split_cfg, quiet, 0, "no counts on stderr"),
    SESS_FLAG_ENTRIES(split_cfg, so),
    CFG_END,
};

static void split_usage(FILE *out)
{
    fprintf(out,
            "usage: recd split sessions --data F --out DIR [--SETTING VALUE ...]\n"
            "Applies the GRU4Rec preprocessing and time split to click file F (CSV/TSV, optionally gzip,\n"
            "with a header) and writes DIR/train.tsv and DIR/test.tsv.\n"
            "settings ('-' and '_' are the same in flags: --split-time T):\n");
    cfg_print_help(split_defs, out);
}

static int split_run(split_cfg *c, const char *prog, int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "%s: unexpected argument '%s' (run `%s --help`)\n", prog, argv[1], prog);
        return 2;
    }
    const char *data = c->data, *out = c->out;
    if (!data || !out) {
        fprintf(stderr, "%s: --data F and --out DIR are required\n", prog);
        return 2;
    }
    sess_opts o = c->so;
    o.verbose = !c->quiet;
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: %s: cannot create directory: %s\n", prog, out, strerror(errno));
        return 1;
    }
    sess_split sp;
    if (sess_prepare(&sp, data, &o) < 0) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        return 1;
    }
    char path[4096];
    int status = 1;
    if ((size_t)snprintf(path, sizeof path, "%s/train.tsv", out) >= sizeof path) {
        rc_error(RC_ERANGE, "%s: output folder name too long", out);
        goto fail;
    }
    if (sess_write_tsv(&sp.train, path) < 0) goto fail;
    snprintf(path, sizeof path, "%s/test.tsv", out);
    if (sess_write_tsv(&sp.test, path) < 0) goto fail;
    printf("train: %lld events, %lld sessions, %lld items\n", (long long)sp.train.n_events,
           (long long)sp.train.n_sessions, (long long)sp.train.n_items);
    printf("test: %lld events, %lld sessions, %lld predictions\n", (long long)sp.test.n_events,
           (long long)sp.test.n_sessions, (long long)sp.n_predictions);
    printf("split time %lld, cutoff %lld; wrote %s/train.tsv and %s/test.tsv\n", (long long)sp.split_time,
           (long long)sp.cutoff, out, out);
    status = 0;
    sess_split_free(&sp);
    return status;
fail:
    fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
    sess_split_free(&sp);
    return status;
}

static int split_sessions(int argc, char **argv)
{
    const char *prog = "recd split sessions";
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            split_usage(stdout);
            return 0;
        }
    split_cfg c;
    if (cfg_defaults(split_defs, &c) != RC_OK || cfg_parse_args(split_defs, &c, &argc, argv, NULL) != RC_OK) {
        fprintf(stderr, "%s: %s (run `%s --help`)\n", prog, rc_errmsg(), prog);
        cfg_release(split_defs, &c);
        return 2;
    }
    int status = split_run(&c, prog, argc, argv);
    cfg_release(split_defs, &c);
    return status;
}

int cmd_split(int argc, char **argv)
{
    if (argc < 2) {
        split_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        split_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "sessions") == 0) return split_sessions(argc - 1, argv + 1);
    fprintf(stderr, "recd split: unknown kind '%s' (known: sessions)\n", argv[1]);
    return 2;
}
