/* trainer/eval_next.c - session-parallel next-item evaluation and the pop / recentpop baselines. */
#include "trainer/eval_next.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/csv.h"
#include "core/err.h"
#include "core/log.h"

void next_eval_opts_default(next_eval_opts *o)
{
    memset(o, 0, sizeof *o);
    o->lanes = 64;
    o->ncut = 3;
    o->cutoffs[0] = 5;
    o->cutoffs[1] = 10;
    o->cutoffs[2] = 20;
    o->progress = 1;
    o->name = "eval";
}

int next_eval(const sess_data *test, const next_scorer *sc, const next_eval_opts *o, metrics_topk *acc)
{
    int rc;
    if ((rc = metrics_topk_init(acc, o->cutoffs, o->ncut)) < 0)
        return rc_error(rc, "eval: bad cutoffs (%d of them, at most %d, each >= 1)", o->ncut, METRICS_MAX_CUTOFFS);
    if (o->lanes < 1 || o->lanes > 1 << 16) return rc_error(RC_EINVAL, "eval: lanes %d not in 1..65536", o->lanes);
    if (test->n_items < 1 || test->n_items > INT32_MAX)
        return rc_error(RC_EINVAL, "eval: %lld items", (long long)test->n_items);
    if (!sc || !sc->score) return rc_error(RC_EINVAL, "eval: no scorer");
    const int N = (int)test->n_items;
    const char *name = o->name ? o->name : "eval";
    int64_t nS = test->n_sessions;
    int B = o->lanes < nS ? o->lanes : (int)(nS > 0 ? nS : 1);
    float *scores = malloc((size_t)B * (size_t)N * sizeof *scores);
    int *lanes = malloc((size_t)B * sizeof *lanes), *ranks = malloc((size_t)B * sizeof *ranks);
    int32_t *items = malloc((size_t)B * sizeof *items), *targets = malloc((size_t)B * sizeof *targets);
    uint8_t *reset = malloc((size_t)B), *lreset = malloc((size_t)B);
    int64_t *lsess = malloc((size_t)B * sizeof *lsess), *lpos = malloc((size_t)B * sizeof *lpos);
    int begun = 0;
    if (!scores || !lanes || !ranks || !items || !targets || !reset || !lreset || !lsess || !lpos) {
        rc = rc_error(RC_ENOMEM, "eval: out of memory for %d x %d scores", B, N);
        goto done;
    }
    begun = 1; /* end() runs whenever begin() was called, even if it failed half-way */
    if (sc->begin && (rc = sc->begin(sc->ctx, B)) < 0) goto done;
    int64_t next = 0, total = sess_n_predictions(test), step_mark = total / 10 + 1, mark = step_mark;
    /* A lane takes the next session with at least 2 clicks, or goes idle (lsess = -1). */
#define TAKE_NEXT(l)                                                                                \
    do {                                                                                            \
        while (next < nS && test->offsets[next + 1] - test->offsets[next] < 2) next++;              \
        if (next < nS) {                                                                            \
            lsess[l] = next;                                                                        \
            lpos[l] = test->offsets[next];                                                          \
            lreset[l] = 1;                                                                          \
            next++;                                                                                 \
        } else {                                                                                    \
            lsess[l] = -1;                                                                          \
        }                                                                                           \
    } while (0)
    for (int l = 0; l < B; l++) TAKE_NEXT(l);
    for (;;) {
        int b = 0;
        for (int l = 0; l < B; l++) {
            if (lsess[l] < 0) continue;
            int32_t it = test->items[lpos[l]], tg = test->items[lpos[l] + 1];
            if (it < 0 || it >= N || tg < 0 || tg >= N) {
                rc = rc_error(RC_EINVAL, "eval: item index %d out of range [0,%d) in test session %lld",
                              it < 0 || it >= N ? it : tg, N, (long long)lsess[l]);
                goto done;
            }
            lanes[b] = l;
            items[b] = it;
            targets[b] = tg;
            reset[b] = lreset[l];
            b++;
        }
        if (b == 0) break;
        if ((rc = sc->score(sc->ctx, lanes, items, reset, b, scores)) < 0) goto done;
        metrics_rank_batch(scores, b, N, targets, ranks);
        for (int r = 0; r < b; r++) metrics_topk_add(acc, ranks[r]);
        for (int r = 0; r < b; r++) {
            int l = lanes[r];
            lreset[l] = 0;
            lpos[l]++;
            if (lpos[l] + 1 >= test->offsets[lsess[l] + 1]) TAKE_NEXT(l);
        }
        if (o->progress && acc->n >= mark) {
            log_info("%s: %lld/%lld predictions (%.0f%%), recall@%d=%.4f", name, (long long)acc->n,
                     (long long)total, 100.0 * (double)acc->n / (double)(total ? total : 1),
                     acc->cutoffs[acc->ncut - 1], metrics_topk_recall(acc, acc->cutoffs[acc->ncut - 1]));
            mark += step_mark;
        }
    }
#undef TAKE_NEXT
    rc = RC_OK;
done:
    if (begun && sc->end) sc->end(sc->ctx);
    free(scores);
    free(lanes);
    free(ranks);
    free(items);
    free(targets);
    free(reset);
    free(lreset);
    free(lsess);
    free(lpos);
    return rc;
}

void next_eval_format(const metrics_topk *acc, const char *name, char *buf, size_t cap)
{
    size_t n = 0;
    int w = snprintf(buf, cap, "%s", name);
    if (w > 0) n = (size_t)w < cap ? (size_t)w : cap;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < acc->ncut && n < cap; i++) {
            int k = acc->cutoffs[i];
            double v = pass ? metrics_topk_mrr(acc, k) : metrics_topk_recall(acc, k);
            w = snprintf(buf + n, cap - n, " %s@%d=%.4f", pass ? "mrr" : "recall", k, v);
            if (w > 0) n += (size_t)w < cap - n ? (size_t)w : cap - n;
        }
    if (n < cap) snprintf(buf + n, cap - n, " predictions=%lld", (long long)acc->n);
}

/* ---- baselines ---------------------------------------------------------------------------------- */

static int static_score(void *ctx, const int *lanes, const int32_t *items, const uint8_t *reset, int B,
                        float *scores)
{
    (void)lanes;
    (void)items;
    (void)reset;
    const next_static *st = ctx;
    for (int b = 0; b < B; b++) memcpy(scores + (size_t)b * (size_t)st->n, st->scores, (size_t)st->n * sizeof *scores);
    return RC_OK;
}

void next_static_scorer(next_scorer *sc, next_static *st)
{
    memset(sc, 0, sizeof *sc);
    sc->ctx = st;
    sc->score = static_score;
}

void next_pop_scores(const sess_data *train, float *scores)
{
    memset(scores, 0, (size_t)train->n_items * sizeof *scores);
    for (int64_t e = 0; e < train->n_events; e++) scores[train->items[e]] += 1.0f;
}

void next_recentpop_scores(const sess_data *train, int64_t window, float *scores)
{
    memset(scores, 0, (size_t)train->n_items * sizeof *scores);
    int64_t max_t = INT64_MIN;
    for (int64_t e = 0; e < train->n_events; e++)
        if (train->times[e] > max_t) max_t = train->times[e];
    int64_t from; /* clicks at t > from count; saturated for extreme timestamps or windows */
    if (__builtin_sub_overflow(max_t, window, &from)) from = window > 0 ? INT64_MIN : INT64_MAX;
    for (int64_t e = 0; e < train->n_events; e++)
        if (train->times[e] > from) scores[train->items[e]] += 1.0f;
}

/* `recd eval pop|recentpop` */
static int eval_baseline_cmd(int argc, char **argv, int recent)
{
    const char *model = recent ? "recentpop" : "pop";
    char prog[64];
    snprintf(prog, sizeof prog, "recd eval %s", model);
    sess_opts so;
    sess_opts_default(&so);
    next_eval_opts eo;
    next_eval_opts_default(&eo);
    eo.name = model;
    const char *data = NULL, *train = NULL, *test = NULL;
    double window_days = 1.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = sess_parse_flag(&so, argc, argv, &i, prog);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: %s (--data F [split flags] | --train F --test F) [--lanes B]%s\n"
                   "Evaluates the %s baseline on the next-item protocol; prints one line\n"
                   "  %s recall@5=.. recall@10=.. recall@20=.. mrr@5=.. mrr@10=.. mrr@20=.. predictions=N\n"
                   "options:\n"
                   "  --data F                click file split as `recd split sessions` does\n"
                   "  --train F --test F      files written by `recd split sessions` (not filtered again)\n"
                   "  --lanes B               sessions scored in parallel (default 64)\n"
                   "%s"
                   "split flags:\n%s",
                   prog, recent ? " [--window-days D]" : "",
                   recent ? "recent popularity (clicks in the last D days of training)" : "popularity", model,
                   recent ? "  --window-days D         window of recent popularity (default 1)\n" : "",
                   sess_flags_help);
            return 0;
        }
        const char **dst = strcmp(a, "--data") == 0    ? &data
                           : strcmp(a, "--train") == 0 ? &train
                           : strcmp(a, "--test") == 0  ? &test
                                                       : NULL;
        if (dst || strcmp(a, "--lanes") == 0 || (recent && strcmp(a, "--window-days") == 0)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: option %s needs a value\n", prog, a);
                return 2;
            }
            const char *v = argv[++i];
            if (dst) {
                *dst = v;
            } else if (strcmp(a, "--lanes") == 0) {
                int64_t x;
                if (csv_parse_i64(v, &x) != RC_OK || x < 1 || x > 65536) {
                    fprintf(stderr, "%s: --lanes: expected 1..65536, got '%s'\n", prog, v);
                    return 2;
                }
                eo.lanes = (int)x;
            } else if (csv_parse_double(v, &window_days) != RC_OK || window_days <= 0 || window_days > 1e6) {
                /* bounded so the window in time units (days * 86400000) fits an int64 */
                fprintf(stderr, "%s: --window-days: expected a number in (0, 1e6], got '%s'\n", prog, v);
                return 2;
            }
            continue;
        }
        fprintf(stderr, "%s: unknown option '%s' (run `%s --help`)\n", prog, a, prog);
        return 2;
    }
    eo.progress = so.verbose;
    if (!data && !(train && test)) {
        fprintf(stderr, "%s: give --data F, or --train F and --test F\n", prog);
        return 2;
    }
    sess_split sp;
    if (sess_load_for_eval(&sp, data, train, test, &so) < 0) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        return 1;
    }
    int status = 1;
    float *sc = malloc((size_t)(sp.train.n_items ? sp.train.n_items : 1) * sizeof *sc);
    if (!sc) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if (recent) {
        int64_t max_t = INT64_MIN;
        for (int64_t e = 0; e < sp.train.n_events; e++)
            if (sp.train.times[e] > max_t) max_t = sp.train.times[e];
        int64_t day = sess_day_units(&so, max_t);
        next_recentpop_scores(&sp.train, (int64_t)(window_days * (double)day + 0.5), sc);
    } else {
        next_pop_scores(&sp.train, sc);
    }
    next_static st = {sc, sp.train.n_items};
    next_scorer scorer;
    next_static_scorer(&scorer, &st);
    metrics_topk acc;
    if (next_eval(&sp.test, &scorer, &eo, &acc) < 0) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto out;
    }
    char line[512];
    next_eval_format(&acc, model, line, sizeof line);
    printf("%s\n", line);
    if (fflush(stdout) != 0 || ferror(stdout)) { /* the result line is the command's output */
        fprintf(stderr, "%s: cannot write the result to stdout: %s\n", prog, strerror(errno));
        goto out;
    }
    status = 0;
out:
    free(sc);
    sess_split_free(&sp);
    return status;
}

int eval_pop_cmd(int argc, char **argv)
{
    return eval_baseline_cmd(argc, argv, 0);
}

int eval_recentpop_cmd(int argc, char **argv)
{
    return eval_baseline_cmd(argc, argv, 1);
}
