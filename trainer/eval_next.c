/* trainer/eval_next.c - session-parallel next-item evaluation and the pop / recentpop baselines. */
#include "trainer/eval_next.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/config.h"
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

void next_eval_format_pairs(const metrics_topk *acc, const char *name, char *buf, size_t cap)
{
    size_t n = 0;
    int w = snprintf(buf, cap, "%s", name);
    if (w > 0) n = (size_t)w < cap ? (size_t)w : cap;
    for (int i = acc->ncut - 1; i >= 0 && n < cap; i--) {
        int k = acc->cutoffs[i];
        w = snprintf(buf + n, cap - n, " recall@%d=%.4f mrr@%d=%.4f", k, metrics_topk_recall(acc, k), k,
                     metrics_topk_mrr(acc, k));
        if (w > 0) n += (size_t)w < cap - n ? (size_t)w : cap - n;
    }
    if (n < cap) snprintf(buf + n, cap - n, " predictions=%lld", (long long)acc->n);
}

/* ---- any model with `next` ---------------------------------------------------------------------- */

static int nms_begin(void *ctx, int lanes)
{
    next_model_scorer *ms = ctx;
    ms->lanes = lanes;
    ms->scratch = ms->ops->scratch_new(ms->m, lanes);
    ms->h = calloc((size_t)lanes * ms->S, sizeof(float));
    ms->hb = calloc((size_t)lanes * ms->S, sizeof(float));
    if (!ms->scratch || !ms->h || !ms->hb)
        return rc_error(RC_ENOMEM, "%s eval: out of memory for %d lanes", ms->type->name, lanes);
    return RC_OK;
}

static int nms_score(void *ctx, const int *lanes, const int32_t *items, const uint8_t *reset, int B, float *scores)
{
    next_model_scorer *ms = ctx;
    size_t S = ms->S;
    for (int b = 0; b < B; b++) { /* memcpy, never float arithmetic: states may be int32 bit patterns */
        if (reset[b]) memset(ms->hb + (size_t)b * S, 0, S * sizeof(float));
        else memcpy(ms->hb + (size_t)b * S, ms->h + (size_t)lanes[b] * S, S * sizeof(float));
    }
    ms->ops->step(ms->m, ms->hb, items, B, ms->scratch);
    for (int b = 0; b < B; b++) memcpy(ms->h + (size_t)lanes[b] * S, ms->hb + (size_t)b * S, S * sizeof(float));
    if (ms->isc) itemscore_score(ms->isc, ms->hb + ms->q_offset, S, B, scores);
    else ms->ops->score(ms->m, ms->hb, B, scores, ms->scratch);
    return RC_OK;
}

static void nms_end(void *ctx)
{
    next_model_scorer *ms = ctx;
    if (ms->scratch) ms->ops->scratch_free(ms->scratch);
    free(ms->h);
    free(ms->hb);
    ms->scratch = NULL;
    ms->h = ms->hb = NULL;
}

/* Does isc give type->next->score's scores on a few real states (a new session stepped by one click each)?
 * 1 yes, 0 no (warning logged), RC_ENOMEM. */
static int nms_check(const next_model_scorer *ms, double tol)
{
    enum { VB = 4 };
    size_t S = ms->S, N = (size_t)ms->n_items;
    int ok = RC_ENOMEM;
    float *st = calloc(VB * S, sizeof(float)), *a = malloc(VB * N * sizeof(float)), *b = malloc(VB * N * sizeof(float));
    void *scr = ms->ops->scratch_new(ms->m, VB);
    if (!st || !a || !b || !scr) goto done;
    int32_t items[VB] = {0, (int32_t)(N / 2), (int32_t)(N - 1), (int32_t)(1 % N)};
    ms->ops->step(ms->m, st, items, VB, scr);
    ms->ops->score(ms->m, st, VB, b, scr);
    itemscore_score(ms->isc, st + ms->q_offset, S, VB, a);
    double maxabs = 1e-6, maxdiff = 0;
    for (size_t i = 0; i < VB * N; i++) {
        maxabs = fmax(maxabs, fabs(b[i]));
        maxdiff = fmax(maxdiff, fabs((double)a[i] - b[i]));
    }
    ok = maxdiff <= tol * maxabs;
    if (!ok)
        log_warn("%s eval: the item matrix disagrees with the model's scores (max diff %g of %g): scoring with the "
                 "model",
                 ms->type->name, maxdiff, maxabs);
done:
    if (scr) ms->ops->scratch_free(scr);
    free(st);
    free(a);
    free(b);
    return ok;
}

int next_model_scorer_init(next_model_scorer *ms, next_scorer *sc, const model_type *type, const void *m,
                           itemscore_kernel kernel, itemscore_dtype dt)
{
    memset(ms, 0, sizeof *ms);
    memset(sc, 0, sizeof *sc);
    if (!type || !type->next) return rc_error(RC_EINVAL, "model '%s' has no `next` capability", type ? type->name : "?");
    ms->type = type;
    ms->m = m;
    ms->ops = type->next;
    ms->S = ms->ops->state_size(m);
    const idmap *items = type->items ? type->items(m) : NULL;
    ms->n_items = items ? (int64_t)idmap_size(items) : -1;
    model_item_matrix im;
    if (ms->ops->item_matrix && ms->ops->item_matrix(m, &im) == RC_OK && im.w && im.n > 0 && im.d >= 1 &&
        (ms->n_items < 0 || im.n == ms->n_items) && im.q_offset + (size_t)im.d <= ms->S) {
        ms->n_items = im.n;
        ms->q_offset = im.q_offset;
        if (!(ms->isc = itemscore_new(im.w, im.bias, im.n, im.d, kernel, dt)))
            return rc_wrap(RC_ENOMEM, "%s eval", type->name);
        int ok = nms_check(ms, itemscore_approx(ms->isc) ? 5e-2 : 1e-3);
        if (ok < 0) {
            next_model_scorer_free(ms);
            return rc_error(RC_ENOMEM, "%s eval: out of memory", type->name);
        }
        if (!ok) {
            itemscore_free(ms->isc);
            ms->isc = NULL;
        }
    }
    sc->ctx = ms;
    sc->begin = nms_begin;
    sc->score = nms_score;
    sc->end = nms_end;
    return RC_OK;
}

void next_model_scorer_free(next_model_scorer *ms)
{
    if (!ms || !ms->ops) return;
    nms_end(ms);
    itemscore_free(ms->isc);
    ms->isc = NULL;
}

int next_model_scorer_kernel(const next_model_scorer *ms)
{
    return ms->isc ? (int)itemscore_kernel_of(ms->isc) : -1;
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

/* `recd eval pop|recentpop`: settings (window_days for recentpop only) */
typedef struct baseline_cfg {
    char *data, *train, *test;
    long long lanes;
    double window_days;
    int quiet;
    sess_opts so;
} baseline_cfg;

#define BASELINE_ENTRIES                                                                                  \
    CFG_STRING("data", baseline_cfg, data, NULL, "click file, preprocessed and split as `recd split sessions` does"), \
    CFG_STRING("train", baseline_cfg, train, NULL, "training clicks already split (with test; not filtered again)"), \
    CFG_STRING("test", baseline_cfg, test, NULL, "test clicks already split (with train)"),                   \
    CFG_INT("eval_lanes", baseline_cfg, lanes, 64, 1, 65536, "sessions scored in parallel"),                  \
    CFG_RENAMED("lanes", "eval_lanes"),                                                                       \
    CFG_BOOL("quiet", baseline_cfg, quiet, 0, "no counts or progress on stderr"),                             \
    SESS_FLAG_ENTRIES(baseline_cfg, so)

static const cfg_def pop_defs[] = {BASELINE_ENTRIES, CFG_END};
/* the window is bounded so that it fits an int64 in time units (days * 86400000) */
static const cfg_def recentpop_defs[] = {
    BASELINE_ENTRIES,
    CFG_DOUBLE("window_days", baseline_cfg, window_days, 1, 1e-9, 1e6, "window of recent popularity, in days"),
    CFG_END,
};

static int eval_baseline_run(const baseline_cfg *c, const char *prog, const char *model, int recent);

static int eval_baseline_cmd(int argc, char **argv, int recent)
{
    const char *model = recent ? "recentpop" : "pop";
    const cfg_def *defs = recent ? recentpop_defs : pop_defs;
    char prog[64];
    snprintf(prog, sizeof prog, "recd eval %s", model);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: %s (--data F | --train F --test F) [--SETTING VALUE ...]\n"
                   "Evaluates the %s baseline on the next-item protocol; prints one line\n"
                   "  %s recall@5=.. recall@10=.. recall@20=.. mrr@5=.. mrr@10=.. mrr@20=.. predictions=N\n"
                   "settings ('-' and '_' are the same in flags: --split-time T):\n",
                   prog, recent ? "recent popularity (clicks in the last window_days days of training)" : "popularity",
                   model);
            cfg_print_help(defs, stdout);
            return 0;
        }
    baseline_cfg c;
    if (cfg_defaults(defs, &c) != RC_OK || cfg_parse_args(defs, &c, &argc, argv, NULL) != RC_OK) {
        fprintf(stderr, "%s: %s (run `%s --help`)\n", prog, rc_errmsg(), prog);
        cfg_release(defs, &c);
        return 2;
    }
    int status = 2;
    if (argc > 1)
        fprintf(stderr, "%s: unexpected argument '%s' (run `%s --help`)\n", prog, argv[1], prog);
    else if (!c.data == !(c.train && c.test) || (c.data && (c.train || c.test)))
        fprintf(stderr, "%s: give --data F, or --train F and --test F\n", prog);
    else
        status = eval_baseline_run(&c, prog, model, recent);
    cfg_release(defs, &c);
    return status;
}

static int eval_baseline_run(const baseline_cfg *c, const char *prog, const char *model, int recent)
{
    sess_opts so = c->so;
    so.verbose = !c->quiet;
    next_eval_opts eo;
    next_eval_opts_default(&eo);
    eo.name = model;
    eo.lanes = (int)c->lanes;
    eo.progress = so.verbose;
    const char *data = c->data, *train = c->train, *test = c->test;
    double window_days = c->window_days;
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

/* ---- `recd eval MODEL` for any model with `next` ------------------------------------------------- */

typedef struct next_eval_cfg {
    char *snapshot, *data, *train, *test, *name, *score_kernel, *score_dtype;
    long long lanes;
    int quiet;
    sess_opts so; /* the session settings (SESS_FLAG_ENTRIES) */
} next_eval_cfg;

static const cfg_def next_eval_defs[] = {
    CFG_STRING("snapshot", next_eval_cfg, snapshot, NULL,
               "snapshot: ROOT/MODEL/VERSION, or ROOT/MODEL for its newest version (required)"),
    CFG_STRING("test", next_eval_cfg, test, NULL, "already split test clicks (alone, or with --train)"),
    CFG_STRING("train", next_eval_cfg, train, NULL, "already split training clicks (with --test: split as they are)"),
    CFG_STRING("data", next_eval_cfg, data, NULL, "raw click file: preprocessed and split as the session settings say"),
    CFG_INT("eval_lanes", next_eval_cfg, lanes, 256, 1, 65536, "sessions scored together"),
    CFG_RENAMED("lanes", "eval_lanes"),
    CFG_ENUM("score_kernel", next_eval_cfg, score_kernel, "blas", "auto|blas|avx2|avx512|avx512bf16",
             "item-matrix scoring kernel (blas: exactly the model's own scores)"),
    CFG_ENUM("score_dtype", next_eval_cfg, score_dtype, "f32", "f32|bf16|int8",
             "element type of the packed item matrix (bf16/int8: approximate scores)"),
    CFG_STRING("name", next_eval_cfg, name, NULL, "label of the result line (default: the model's name)"),
    CFG_BOOL("quiet", next_eval_cfg, quiet, 0, "only warnings and the result line"),
    SESS_FLAG_ENTRIES(next_eval_cfg, so),
    CFG_END,
};

static void next_eval_usage(FILE *out, const char *model)
{
    fprintf(out,
            "usage: recd eval %s --snapshot DIR (--test F | --train F --test F | --data F) [--SETTING VALUE ...]\n"
            "Evaluates a %s snapshot on the next-item protocol (test clicks on items unknown to the model are\n"
            "dropped, then sessions shorter than 2); prints one line\n"
            "  LABEL recall@20=.. mrr@20=.. recall@10=.. mrr@10=.. recall@5=.. mrr@5=.. predictions=N\n"
            "The session settings (session_col ... min_item_support) default to those the snapshot was\n"
            "trained with (its meta config.data).\n"
            "settings ('-' and '_' are the same in flags: --split-time T):\n",
            model, model);
    cfg_print_help(next_eval_defs, out);
}

/* Parse argv into c: defaults, then the snapshot's config.data (when meta is not NULL), then the flags.
 * argv is reordered (cfg_parse_args). RC_OK or RC_E* with a message. */
static int next_eval_parse(next_eval_cfg *c, int argc, char **argv, const json_t *meta)
{
    int rc = cfg_defaults(next_eval_defs, c);
    if (rc != RC_OK) return rc;
    const json_t *dj = json_object_get(json_object_get(meta, "config"), "data");
    if (json_is_object(dj)) { /* only the keys this table knows (older or newer snapshots may hold others) */
        json_t *known = json_object();
        if (!known) return rc_error(RC_ENOMEM, "out of memory");
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)dj, key, v)
        {
            for (const cfg_def *d = next_eval_defs; d->name; d++)
                if (d->type != CFG_T_RENAMED && strcmp(d->name, key) == 0) json_object_set(known, key, v);
        }
        rc = cfg_load_json(next_eval_defs, c, known, "snapshot meta config.data");
        json_decref(known);
        if (rc != RC_OK) return rc;
    }
    rc = cfg_parse_args(next_eval_defs, c, &argc, argv, NULL);
    if (rc == RC_OK && argc > 1) rc = rc_error(RC_EINVAL, "unexpected argument '%s'", argv[1]);
    return rc;
}

int next_eval_cmd(int argc, char **argv)
{
    const char *model = argc > 0 ? argv[0] : "?";
    char prog[96];
    snprintf(prog, sizeof prog, "recd eval %s", model);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            next_eval_usage(stdout, model);
            return 0;
        }
    next_eval_cfg c;
    int status = 2, have_split = 0, have_test = 0, have_cfg = 0;
    snap *s = NULL;
    void *handle = NULL;
    const model_type *type = NULL;
    sess_split sp;
    sess_data test;
    memset(&sp, 0, sizeof sp);
    memset(&test, 0, sizeof test);
    next_model_scorer ms;
    memset(&ms, 0, sizeof ms);
    /* cfg_parse_args reorders its argv: each pass parses its own copy */
    char **av = malloc((size_t)(argc + 1) * sizeof *av);
    if (!av) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    memcpy(av, argv, (size_t)argc * sizeof *av);
    av[argc] = NULL;
    /* a first pass for --snapshot: its meta gives the defaults of the session settings */
    if (next_eval_parse(&c, argc, av, NULL) != RC_OK) {
        fprintf(stderr, "%s: %s (run `%s --help`)\n", prog, rc_errmsg(), prog);
        cfg_release(next_eval_defs, &c);
        free(av);
        return 2;
    }
    char *snapdir = c.snapshot ? strdup(c.snapshot) : NULL;
    int usage_ok = c.snapshot && (c.data ? !c.train && !c.test : c.test != NULL);
    cfg_release(next_eval_defs, &c);
    if (!usage_ok) {
        fprintf(stderr, "%s: give --snapshot DIR and --test F (or --train F --test F, or --data F)\n", prog);
        free(snapdir);
        free(av);
        return 2;
    }
    status = 1;
    if (!snapdir) {
        fprintf(stderr, "%s: out of memory\n", prog);
        free(av);
        return 1;
    }
    if (snap_open_any(&s, snapdir) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    const json_t *mj = json_object_get(snap_meta(s), "model");
    const char *mname = json_is_string(mj) ? json_string_value(mj) : NULL;
    if (!mname || strcmp(mname, model) != 0) {
        fprintf(stderr, "%s: snapshot %s holds a%s '%s' model, not '%s'\n", prog, snapdir, mname ? "" : "n unnamed",
                mname ? mname : "?", model);
        goto done;
    }
    if (!(type = model_type_find(mname))) {
        fprintf(stderr, "%s: snapshot %s: unknown model type '%s'\n", prog, snapdir, mname);
        goto done;
    }
    if (!type->next || !type->items) {
        fprintf(stderr, "%s: model '%s' does not recommend a next item (no `next` capability): this evaluation is for "
                        "session models\n",
                prog, mname);
        status = 2;
        goto done;
    }
    have_cfg = 1;
    memcpy(av, argv, (size_t)argc * sizeof *av);
    if (next_eval_parse(&c, argc, av, snap_meta(s)) != RC_OK) {
        fprintf(stderr, "%s: %s (run `%s --help`)\n", prog, rc_errmsg(), prog);
        status = 2;
        goto done;
    }
    c.so.verbose = !c.quiet;
    if (!c.so.verbose && log_level < LOG_LVL_WARN) log_level = LOG_LVL_WARN;
    if (type->load(&handle, s) != RC_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, snapdir, rc_errmsg());
        goto done;
    }
    const idmap *items = type->items(handle);
    if (!items) {
        fprintf(stderr, "%s: %s: the model has no item vocabulary\n", prog, snapdir);
        goto done;
    }
    sess_data *td;
    if (c.data || c.train) {
        if (sess_load_for_eval(&sp, c.data, c.train, c.test, &c.so) < 0) {
            fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
            goto done;
        }
        have_split = 1;
        td = &sp.test;
    } else {
        if (sess_load(&test, c.test, &c.so) < 0) {
            fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
            goto done;
        }
        have_test = 1;
        td = &test;
    }
    /* re-index the test clicks to the model's vocabulary by external id */
    sess_data model_vocab;
    memset(&model_vocab, 0, sizeof model_vocab);
    model_vocab.item_vocab = (idmap *)items; /* read only by sess_reindex */
    model_vocab.n_items = (int64_t)idmap_size(items);
    int64_t dropped = 0;
    if (sess_reindex(td, &model_vocab, &dropped) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    if (c.so.verbose)
        log_info("%s eval: %lld test sessions, %lld predictions (%lld clicks on items unknown to the model dropped)",
                 model, (long long)td->n_sessions, (long long)sess_n_predictions(td), (long long)dropped);
    next_scorer sc;
    if (next_model_scorer_init(&ms, &sc, type, handle, (itemscore_kernel)itemscore_kernel_parse(c.score_kernel),
                               (itemscore_dtype)itemscore_dtype_parse(c.score_dtype)) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    if (c.so.verbose) {
        int k = next_model_scorer_kernel(&ms);
        log_info("%s eval: scoring with %s", model,
                 k < 0 ? "the model's own score" : itemscore_kernel_name((itemscore_kernel)k));
    }
    next_eval_opts eo;
    next_eval_opts_default(&eo);
    eo.lanes = (int)c.lanes;
    eo.progress = c.so.verbose;
    eo.name = model;
    metrics_topk acc;
    double t0 = clock_mono_s();
    if (next_eval(td, &sc, &eo, &acc) != RC_OK) {
        fprintf(stderr, "%s: %s\n", prog, rc_errmsg());
        goto done;
    }
    if (c.so.verbose) log_info("%s eval: %.1fs", model, clock_mono_s() - t0);
    char line[512];
    next_eval_format_pairs(&acc, c.name ? c.name : model, line, sizeof line);
    printf("%s\n", line);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: cannot write the result to stdout: %s\n", prog, strerror(errno));
        goto done;
    }
    status = 0;
done:
    next_model_scorer_free(&ms);
    if (have_split) sess_split_free(&sp);
    if (have_test) sess_free(&test);
    if (handle) type->free(handle);
    snap_close(s);
    if (have_cfg) cfg_release(next_eval_defs, &c);
    free(snapdir);
    free(av);
    return status;
}

int next_eval_model(const sess_data *test, const model_type *type, const void *m, int lanes, int progress,
                    metrics_topk *acc)
{
    next_scorer sc;
    next_model_scorer ms;
    int rc = next_model_scorer_init(&ms, &sc, type, m, ITEMSCORE_BLAS, ITEMSCORE_F32);
    if (rc == RC_OK) {
        next_eval_opts eo;
        next_eval_opts_default(&eo);
        eo.lanes = lanes;
        eo.progress = progress;
        eo.name = type->name;
        rc = next_eval(test, &sc, &eo, acc);
    }
    next_model_scorer_free(&ms);
    return rc;
}
