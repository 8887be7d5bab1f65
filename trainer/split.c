/* trainer/split.c - `recd split sessions`: the GRU4Rec time split written as two click files.
 *
 *   recd split sessions --data F --out DIR [split flags]
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

#include "core/err.h"
#include "trainer/cmds.h"
#include "trainer/sessions.h"

static void split_usage(FILE *out)
{
    fprintf(out,
            "usage: recd split sessions --data F --out DIR [flags]\n"
            "Applies the GRU4Rec preprocessing and time split to click file F (CSV/TSV, optionally gzip,\n"
            "with a header) and writes DIR/train.tsv and DIR/test.tsv.\n"
            "flags:\n%s",
            sess_flags_help);
}

static int split_sessions(int argc, char **argv)
{
    const char *prog = "recd split sessions";
    sess_opts o;
    sess_opts_default(&o);
    char *data = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = sess_parse_flag(&o, argc, argv, &i, prog);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            split_usage(stdout);
            return 0;
        }
        /* "--data F" or "--data=F", like the split flags */
        if ((r = sess_flag_value(argc, argv, &i, "--data", prog, &data)) != 0 ||
            (r = sess_flag_value(argc, argv, &i, "--out", prog, &out)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        fprintf(stderr, "%s: unknown option '%s' (run `%s --help`)\n", prog, a, prog);
        return 2;
    }
    if (!data || !out) {
        fprintf(stderr, "%s: --data F and --out DIR are required\n", prog);
        return 2;
    }
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
