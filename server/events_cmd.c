/* server/events_cmd.c - `recd events export`: the served traffic of a state folder as training files
 * (server/evstore.h, evstore_export).
 *
 *   recd events export --state DIR --out F [--rows R] [--experiment X] [--since T] [--until T] [--label NAME]
 *
 * --out F: the session click file (TSV session_id, item_id, timestamp in seconds) that `recd train
 * gru4rec|itemknn --data F` reads as is; --rows R: Wide & Deep labelled rows (CSV: the model's input
 * columns and the label). Each file is written to F.tmp and renamed when complete (a failed export
 * leaves no partial file). The server may keep running: the export reads one consistent snapshot.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "server/evstore.h"
#include "server/server.h"

typedef struct {
    char *state, *out, *rows, *experiment, *label;
    double since, until;
} events_opts;

static const cfg_def events_defs[] = {
    CFG_STRING("state", events_opts, state, NULL, "state folder of the server (serve's state.dir; required)"),
    CFG_STRING("out", events_opts, out, NULL, "session click file to write (TSV session_id, item_id, timestamp)"),
    CFG_STRING("rows", events_opts, rows, NULL, "Wide & Deep labelled rows to write (CSV, the label last)"),
    CFG_STRING("experiment", events_opts, experiment, NULL, "only this experiment's records (default: all)"),
    CFG_DOUBLE("since", events_opts, since, 0, 0, 1e11, "only records at or after this unix time in seconds (0: all)"),
    CFG_DOUBLE("until", events_opts, until, 0, 0, 1e11, "only records before this unix time in seconds (0: all)"),
    CFG_STRING("label", events_opts, label, "label", "name of the label column of the rows file"),
    CFG_END,
};

static void events_usage(FILE *f)
{
    fputs("usage: recd events export --state DIR --out F [--rows R] [--experiment X] [--since T] [--until T]\n"
          "                          [--label NAME]\n"
          "Writes the logged traffic of a state folder as training files: the clicks and acquisitions as a\n"
          "session click file (`recd train gru4rec|itemknn --data F` reads it as is), and the shown items of\n"
          "impressions with input rows as Wide & Deep rows labelled 1 when acquired in that request.\n"
          "settings ('-' and '_' are the same in flags):\n",
          f);
    cfg_print_help(events_defs, f);
}

/* Open path.tmp for writing; *tmp receives its name. */
static FILE *open_tmp(const char *path, char *tmp, size_t cap)
{
    snprintf(tmp, cap, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) rc_error(RC_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    return f;
}

/* Close f and rename tmp to path; RC_EIO naming path (tmp removed) on a write error. */
static int close_publish(FILE *f, const char *tmp, const char *path, int ok)
{
    int bad = ferror(f);
    int err = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (ok && !bad && rename(tmp, path) == 0) return RC_OK;
    if (ok && !bad) err = errno;
    unlink(tmp);
    return ok ? rc_error(RC_EIO, "%s: write error: %s", path, strerror(err)) : RC_OK;
}

int cmd_events(int argc, char **argv)
{
    const char *prog = "recd events";
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            events_usage(stdout);
            return 0;
        }
    if (argc < 2) {
        events_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "export") != 0) {
        fprintf(stderr, "%s: unknown action '%s' (known: export)\n", prog, argv[1]);
        return 2;
    }
    argc--;
    argv++;
    events_opts o;
    int status = 2;
    if (cfg_defaults(events_defs, &o) != RC_OK || cfg_parse_args(events_defs, &o, &argc, argv, NULL) != RC_OK) {
        fprintf(stderr, "%s export: %s (run `recd events --help`)\n", prog, rc_errmsg());
        goto done;
    }
    if (argc > 1) {
        fprintf(stderr, "%s export: unexpected argument '%s' (run `recd events --help`)\n", prog, argv[1]);
        goto done;
    }
    if (!o.state) {
        fprintf(stderr, "%s export: --state DIR is required\n", prog);
        goto done;
    }
    if (!o.out && !o.rows) {
        fprintf(stderr, "%s export: --out F (clicks) or --rows R (labelled rows) is required\n", prog);
        goto done;
    }
    if (o.until > 0 && o.since >= o.until) {
        fprintf(stderr, "%s export: --since %g is not before --until %g\n", prog, o.since, o.until);
        goto done;
    }
    if (o.out && o.rows && strcmp(o.out, o.rows) == 0) {
        fprintf(stderr, "%s export: --out and --rows name the same file\n", prog);
        goto done;
    }
    status = 1;
    char tmp_c[4200], tmp_r[4200];
    FILE *fc = NULL, *fr = NULL;
    if (o.out && !(fc = open_tmp(o.out, tmp_c, sizeof tmp_c))) {
        fprintf(stderr, "%s export: %s\n", prog, rc_errmsg());
        goto done;
    }
    if (o.rows && !(fr = open_tmp(o.rows, tmp_r, sizeof tmp_r))) {
        fprintf(stderr, "%s export: %s\n", prog, rc_errmsg());
        if (fc) close_publish(fc, tmp_c, o.out, 0);
        goto done;
    }
    ev_export_opts eo = {o.experiment, o.since, o.until, o.label};
    ev_export_stats es;
    int rc = evstore_export(o.state, fc, fr, &eo, &es);
    if (rc != RC_OK) fprintf(stderr, "%s export: %s\n", prog, rc_errmsg());
    int ok = rc == RC_OK;
    if (fc && close_publish(fc, tmp_c, o.out, ok) != RC_OK) {
        fprintf(stderr, "%s export: %s\n", prog, rc_errmsg());
        ok = 0;
    }
    if (fr && close_publish(fr, tmp_r, o.rows, ok) != RC_OK) {
        fprintf(stderr, "%s export: %s\n", prog, rc_errmsg());
        if (o.out) unlink(o.out);
        ok = 0;
    }
    if (!ok) goto done;
    if (o.out)
        printf("%s: %llu clicks in %llu sessions%s\n", o.out, (unsigned long long)es.clicks,
               (unsigned long long)es.sessions, es.skipped_clicks ? " (some skipped: ids with a newline)" : "");
    if (es.skipped_clicks)
        fprintf(stderr, "%s export: %llu clicks skipped (a session or item id holds a newline, CR or NUL)\n", prog,
                (unsigned long long)es.skipped_clicks);
    if (o.rows)
        printf("%s: %llu rows, %llu positive, %llu skipped (another row header or a newline in a row)\n", o.rows,
               (unsigned long long)es.rows, (unsigned long long)es.positives, (unsigned long long)es.skipped_rows);
    status = 0;
done:
    cfg_release(events_defs, &o);
    return status;
}
