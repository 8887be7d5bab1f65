/* trainer/split.c - `recd split sessions`: the GRU4Rec time split written as two click files;
 * `recd split ratings`: the rating protocol split (trainer/ratings.h) written as three rating files.
 *
 *   recd split sessions --data F --out DIR [--SETTING VALUE ...]   (settings: split_defs)
 *   recd split ratings --data F --out DIR [--split-seed S] [--test-frac X] [--valid-frac Y]
 *
 * writes DIR/train.tsv and DIR/test.tsv (header session_id, item_id, timestamp; external ids; sessions
 * in the order of their first click) and prints the counts on stdout. test.tsv holds only clicks on
 * items seen in train and sessions of 2 clicks or more, so `recd eval MODEL --train DIR/train.tsv
 * --test DIR/test.tsv` reads the same protocol back without filtering again.
 *
 * `split ratings` writes DIR/train.tsv, DIR/valid.tsv and DIR/test.tsv (header user_id, item_id, rating;
 * external ids; ratings in the order of F, repeated pairs dropped as rt_read does; valid.tsv / test.tsv
 * only when not empty). The sets are those rt_split_make makes for the same seed and fractions, so
 * `recd train M --train DIR/train.tsv --valid DIR/valid.tsv --test DIR/test.tsv` sees the same data as
 * `recd train M --data F` with that split seed.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/err.h"
#include "trainer/cmds.h"
#include "trainer/ratings.h"
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
            "       recd split ratings --data F --out DIR [--split-seed S] [--test-frac X] [--valid-frac Y]\n"
            "         (rating protocol split into DIR/train.tsv, valid.tsv, test.tsv: `recd split ratings --help`)\n"
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

/* ---- recd split ratings ---------------------------------------------------------------------- */

typedef struct split_rt_cfg {
    char *data, *out;
    long long split_seed;
    double test_frac, valid_frac;
    int quiet;
} split_rt_cfg;

static const cfg_def split_rt_defs[] = {
    CFG_STRING("data", split_rt_cfg, data, NULL,
               "all ratings: file, folder or a,b,c (MovieLens '::', tab, comma; gzip ok; required)"),
    CFG_STRING("out", split_rt_cfg, out, NULL, "folder for train.tsv, valid.tsv and test.tsv (created; required)"),
    CFG_INT("split_seed", split_rt_cfg, split_seed, 1, 0, 9.2e18, "seed of the shuffle"),
    CFG_DOUBLE("test_frac", split_rt_cfg, test_frac, 0.1, 0, 0.99, "share of all ratings held out for test"),
    CFG_DOUBLE("valid_frac", split_rt_cfg, valid_frac, 0.1, 0, 0.99, "share of the rest held out for validation"),
    CFG_BOOL("quiet", split_rt_cfg, quiet, 0, "no progress on stderr"),
    CFG_END,
};

static void split_rt_usage(FILE *out)
{
    fprintf(out,
            "usage: recd split ratings --data F --out DIR [--split-seed S] [--test-frac X] [--valid-frac Y]\n"
            "Shuffles the ratings of F by the seed: the first test_frac of them are the test set, valid_frac of\n"
            "the rest the validation set, the remainder the training set (the protocol of `recd train` with\n"
            "--data). Writes DIR/train.tsv, DIR/valid.tsv, DIR/test.tsv (user_id, item_id, rating; an empty set\n"
            "is not written) and prints the counts.\n"
            "settings ('-' and '_' are the same in flags):\n");
    cfg_print_help(split_rt_defs, out);
}

/* The ratings of all in set s (borrowing all's vocabularies) into *part. */
static int subset(rt_data *part, const rt_data *all, const uint8_t *set, int s, int64_t n)
{
    memset(part, 0, sizeof *part);
    part->users = all->users;
    part->items = all->items;
    part->user = malloc(((size_t)n + 1) * sizeof *part->user);
    part->item = malloc(((size_t)n + 1) * sizeof *part->item);
    part->rating = malloc(((size_t)n + 1) * sizeof *part->rating);
    if (!part->user || !part->item || !part->rating) {
        rt_free(part);
        return rc_error(RC_ENOMEM, "split: out of memory");
    }
    for (int64_t k = 0; k < all->n; k++)
        if (set[k] == s) {
            part->user[part->n] = all->user[k];
            part->item[part->n] = all->item[k];
            part->rating[part->n] = all->rating[k];
            part->n++;
        }
    return RC_OK;
}

static int split_ratings_run(const split_rt_cfg *c, const char *prog)
{
    if (mkdir(c->out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: %s: cannot create directory: %s\n", prog, c->out, strerror(errno));
        return 1;
    }
    rt_data all;
    if (rt_read(&all, c->data, !c->quiet) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        return 1;
    }
    int status = 1;
    int64_t cnt[3];
    uint8_t *set = malloc((size_t)all.n + 1);
    if (!set) {
        rc_error(RC_ENOMEM, "out of memory");
        goto fail;
    }
    if (rt_split_sets(set, all.n, (uint64_t)c->split_seed, c->test_frac, c->valid_frac, cnt) != RC_OK) goto fail;
    static const char *const names[3] = {"train", "valid", "test"};
    char path[4096];
    for (int s = 0; s < 3; s++) {
        if ((size_t)snprintf(path, sizeof path, "%s/%s.tsv", c->out, names[s]) >= sizeof path) {
            rc_error(RC_ERANGE, "%s: output folder name too long", c->out);
            goto fail;
        }
        if (cnt[s] == 0) {
            if (remove(path) == 0) fprintf(stderr, "%s: removed %s of an earlier split\n", prog, path);
            continue;
        }
        rt_data part;
        if (subset(&part, &all, set, s, cnt[s]) != RC_OK) goto fail;
        int rc = rt_write_tsv(&part, path);
        rt_free(&part);
        if (rc != RC_OK) goto fail;
    }
    printf("ratings: %lld (%zu users, %zu items, %lld repeated pairs dropped)\n", (long long)all.n,
           idmap_size(all.users), idmap_size(all.items), (long long)all.n_dup);
    printf("train: %lld, valid: %lld, test: %lld (split seed %lld, test_frac %g, valid_frac %g); wrote %s/\n",
           (long long)cnt[0], (long long)cnt[1], (long long)cnt[2], c->split_seed, c->test_frac, c->valid_frac,
           c->out);
    status = 0;
    free(set);
    rt_free(&all);
    return status;
fail:
    fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
    free(set);
    rt_free(&all);
    return status;
}

static int split_ratings(int argc, char **argv)
{
    const char *prog = "recd split ratings";
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            split_rt_usage(stdout);
            return 0;
        }
    split_rt_cfg c;
    if (cfg_defaults(split_rt_defs, &c) != RC_OK || cfg_parse_args(split_rt_defs, &c, &argc, argv, NULL) != RC_OK) {
        fprintf(stderr, "%s: %s (run `%s --help`)\n", prog, rc_errmsg(), prog);
        cfg_release(split_rt_defs, &c);
        return 2;
    }
    int status = 2;
    if (argc > 1)
        fprintf(stderr, "%s: unexpected argument '%s' (run `%s --help`)\n", prog, argv[1], prog);
    else if (!c.data || !c.out)
        fprintf(stderr, "%s: --data F and --out DIR are required\n", prog);
    else if (c.test_frac + c.valid_frac > 1)
        fprintf(stderr, "%s: test_frac + valid_frac must be at most 1\n", prog);
    else
        status = split_ratings_run(&c, prog);
    cfg_release(split_rt_defs, &c);
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
    if (strcmp(argv[1], "ratings") == 0) return split_ratings(argc - 1, argv + 1);
    fprintf(stderr, "recd split: unknown kind '%s' (known: sessions, ratings)\n", argv[1]);
    return 2;
}
