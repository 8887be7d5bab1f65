/* trainer/train_widedeep.c - `recd train widedeep` and `recd eval widedeep`.
 *
 * Training: pass 1 over the training file learns vocabularies and numeric statistics, pass 2 encodes
 * every row into memory (bad rows counted and reported with file and line; more than max_bad_rows stops
 * with an error), then mini-batch epochs of joint FTRL (wide) + AdaGrad (deep) training with the held-out
 * file evaluated after each epoch (AUC, logloss, accuracy on stderr), and a snapshot is published under
 * OUT/widedeep/VERSION with the spec, hyperparameters and final metrics in its meta.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/csv.h"
#include "core/dense.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/rng.h"
#include "models/features.h"
#include "models/widedeep.h"
#include "trainer/train_widedeep.h"

typedef struct wd_cfg {
    json_t *columns, *features, *label_positive, *label_negative, *missing, *hidden;
    char *label, *sep, *header, *comment, *train, *test, *out, *model, *name;
    long long epochs, batch_size, seed, max_bad_rows, eval_every, version, threads;
    int quiet;
    double ftrl_alpha, ftrl_beta, ftrl_l1, ftrl_l2, learning_rate, adagrad_init, adagrad_eps, l2, dropout;
} wd_cfg;

/* Settings shared by `recd train widedeep` and `recd eval widedeep` (struct T with these fields). */
#define WD_MAX_BAD_ROWS_ENTRY(T)                                                                      \
    CFG_INT("max_bad_rows", T, max_bad_rows, 100, 0, 1e15, "bad rows tolerated per file before failing")

static const cfg_def wd_cfg_defs[] = {
    CFG_JSON("columns", wd_cfg, columns, NULL, "input column names in CSV order"),
    CFG_JSON("features", wd_cfg, features, NULL, "feature columns (see models/features.h)"),
    CFG_STRING("label", wd_cfg, label, "label", "label column"),
    CFG_JSON("label_positive", wd_cfg, label_positive, "[\"1\"]", "label values meaning positive"),
    CFG_JSON("label_negative", wd_cfg, label_negative, "[]", "label values meaning negative ([] = anything else)"),
    CFG_JSON("missing", wd_cfg, missing, "[\"?\", \"\"]", "values meaning missing"),
    CFG_STRING("sep", wd_cfg, sep, ",", "field separator (one character; \\t for tab)"),
    CFG_ENUM("header", wd_cfg, header, "auto", "auto|yes|no", "first line is a header (auto: it names the columns)"),
    CFG_STRING("comment", wd_cfg, comment, NULL, "lines starting with this are skipped (Adult: \"|\")"),
    CFG_STRING("train", wd_cfg, train, NULL, "training file (CSV, may be gzip; --train F)"),
    CFG_STRING("test", wd_cfg, test, NULL, "held-out file evaluated after each epoch"),
    CFG_STRING("out", wd_cfg, out, "snapshots", "snapshot root: writes OUT/NAME/VERSION"),
    CFG_STRING("name", wd_cfg, name, "widedeep",
               "model name: the snapshot folder under out, served as snapshots.models NAME (e.g. wide, deep)"),
    CFG_INT("version", wd_cfg, version, 0, 0, 1e15, "snapshot version (0 = next)"),
    CFG_ENUM("model", wd_cfg, model, "widedeep", "wide|deep|widedeep", "variant"),
    CFG_JSON("hidden", wd_cfg, hidden, "[100, 50]", "hidden layer sizes of the deep part"),
    CFG_INT("epochs", wd_cfg, epochs, 10, 1, 100000, "training epochs"),
    CFG_INT("batch_size", wd_cfg, batch_size, 128, 1, 65536, "mini-batch size"),
    CFG_INT("seed", wd_cfg, seed, 1, 0, 1e15, "random seed (init, shuffling)"),
    WD_MAX_BAD_ROWS_ENTRY(wd_cfg),
    CFG_INT("eval_every", wd_cfg, eval_every, 1, 0, 100000, "evaluate every N epochs (0: only at the end)"),
    CFG_INT("threads", wd_cfg, threads, 1, 1, 256,
            "OpenBLAS threads (1: mini-batch products are small, more threads spin more than they help)"),
    CFG_DOUBLE("ftrl_alpha", wd_cfg, ftrl_alpha, 0.1, 1e-9, 1e6, "wide: FTRL learning rate alpha"),
    CFG_DOUBLE("ftrl_beta", wd_cfg, ftrl_beta, 1.0, 0, 1e6, "wide: FTRL beta"),
    CFG_DOUBLE("ftrl_l1", wd_cfg, ftrl_l1, 0.001, 0, 1e6, "wide: FTRL L1"),
    CFG_DOUBLE("ftrl_l2", wd_cfg, ftrl_l2, 0.0, 0, 1e6, "wide: FTRL L2"),
    CFG_DOUBLE("learning_rate", wd_cfg, learning_rate, 0.05, 1e-9, 1e6, "deep: AdaGrad learning rate"),
    CFG_DOUBLE("adagrad_init", wd_cfg, adagrad_init, 0.1, 0, 1e6, "deep: initial AdaGrad accumulator"),
    CFG_DOUBLE("adagrad_eps", wd_cfg, adagrad_eps, 1e-8, 0, 1, "deep: AdaGrad epsilon"),
    CFG_DOUBLE("l2", wd_cfg, l2, 0.0, 0, 1e6, "deep: L2 on MLP weights"),
    CFG_DOUBLE("dropout", wd_cfg, dropout, 0.0, 0, 0.95, "deep: dropout probability on hidden units (training)"),
    CFG_BOOL("quiet", wd_cfg, quiet, 0, "only warnings and the result line"),
    CFG_RENAMED("batch", "batch_size"),
    CFG_RENAMED("blas_threads", "threads"),
    CFG_RENAMED("lr", "learning_rate"),
    CFG_RENAMED("data", "train"),
    CFG_END,
};

/* ---------------------------------------------------------------- encoded data */

void wd_data_free(wd_data *d)
{
    free(d->wide_idx);
    free(d->wide_val);
    free(d->dense);
    free(d->emb_id);
    free(d->y);
    memset(d, 0, sizeof *d);
}

static int data_grow(wd_data *d)
{
    int64_t nc = d->cap ? d->cap * 2 : 4096;
    size_t S = (size_t)(d->S ? d->S : 1), ND = (size_t)(d->ND ? d->ND : 1), E = (size_t)(d->E ? d->E : 1);
    void *a = realloc(d->wide_idx, (size_t)nc * S * sizeof(int64_t));
    if (a) d->wide_idx = a;
    void *b = realloc(d->wide_val, (size_t)nc * S * sizeof(float));
    if (b) d->wide_val = b;
    void *c = realloc(d->dense, (size_t)nc * ND * sizeof(float));
    if (c) d->dense = c;
    void *e = realloc(d->emb_id, (size_t)nc * E * sizeof(int64_t));
    if (e) d->emb_id = e;
    void *y = realloc(d->y, (size_t)nc * sizeof(float));
    if (y) d->y = y;
    if (!a || !b || !c || !e || !y) return rc_error(RC_ENOMEM, "out of memory for %lld encoded rows", (long long)nc);
    d->cap = nc;
    return RC_OK;
}

/* ---------------------------------------------------------------- reading */

typedef struct reader_opts {
    char sep;
    int header; /* -1 auto, 0 no, 1 yes */
    const char *comment;
    int64_t max_bad;
} reader_opts;

/* Row callback: RC_OK, RC_EFORMAT for a bad row (message set, counted), other codes stop. */
typedef int (*row_fn)(void *ctx, char **f, int n);

static int looks_like_header(const feat_spec *sp, char **f, int n)
{
    int hits = 0;
    for (int i = 0; i < n && i < sp->ninputs; i++) {
        char *v = feat_trim(f[i]);
        hits += strcmp(v, sp->inputs[i]) == 0;
    }
    return hits * 2 >= sp->ninputs;
}

static int for_rows(const feat_spec *sp, const reader_opts *o, const char *path, row_fn fn, void *ctx,
                    int64_t *nrows, int64_t *nbad, int report)
{
    csv_reader *r = csv_open(path, o->sep);
    if (!r) return RC_EIO;
    char **f;
    int n, rc;
    int first = 1;
    *nrows = 0;
    *nbad = 0;
    size_t cl = o->comment ? strlen(o->comment) : 0;
    while ((rc = csv_next(r, &f, &n)) > 0) {
        if (cl && n > 0 && strncmp(f[0], o->comment, cl) == 0) continue;
        if (first) {
            first = 0;
            if (o->header == 1 || (o->header == -1 && looks_like_header(sp, f, n))) continue;
        }
        rc = fn(ctx, f, n);
        if (rc == RC_OK) {
            (*nrows)++;
            continue;
        }
        if (rc != RC_EFORMAT) {
            rc_wrap(rc, "%s:%lld", path, (long long)csv_line(r));
            break;
        }
        (*nbad)++;
        if (report && *nbad <= 5) log_warn("%s:%lld: bad row skipped: %s", path, (long long)csv_line(r), rc_errmsg());
        if (*nbad > o->max_bad) {
            rc = rc_error(RC_EFORMAT, "%s:%lld: too many bad rows (%lld > max_bad_rows %lld); last: %s", path,
                          (long long)csv_line(r), (long long)*nbad, (long long)o->max_bad, rc_errmsg());
            break;
        }
    }
    csv_close(r);
    if (rc < 0) return rc;
    if (report && *nbad) log_warn("%s: %lld bad rows skipped", path, (long long)*nbad);
    return RC_OK;
}

static int learn_row(void *ctx, char **f, int n)
{
    feat_learner *l = ctx;
    const feat_spec *sp = feat_learner_spec(l);
    if (n != sp->ninputs) return rc_error(RC_EFORMAT, "expected %d columns, got %d", sp->ninputs, n);
    if (sp->label >= 0 && feat_label(sp, f[sp->label]) < 0) return RC_EFORMAT;
    return feat_learner_add(l, f, n);
}

typedef struct enc_ctx {
    const feat_spec *sp;
    wd_data *d;
    float *tmp; /* (deep_dim) */
} enc_ctx;

static int encode_row(void *vctx, char **f, int n)
{
    enc_ctx *c = vctx;
    const feat_spec *sp = c->sp;
    wd_data *d = c->d;
    if (n != sp->ninputs) return rc_error(RC_EFORMAT, "expected %d columns, got %d", sp->ninputs, n);
    int y = sp->label >= 0 ? feat_label(sp, f[sp->label]) : 0;
    if (y < 0) return RC_EFORMAT;
    if (d->n == d->cap) {
        int rc = data_grow(d);
        if (rc != RC_OK) return rc;
    }
    int64_t i = d->n;
    feat_row row = {d->wide_idx + i * d->S, d->wide_val + i * d->S, c->tmp, d->emb_id + i * d->E};
    int rc = feat_encode_fields(sp, f, n, &row);
    if (rc != RC_OK) return rc;
    memcpy(d->dense + i * d->ND, c->tmp, sizeof(float) * (size_t)d->ND);
    d->y[i] = (float)y;
    d->n++;
    return RC_OK;
}

int wd_data_load(wd_data *d, const feat_spec *sp, const char *path, char sep, int header, const char *comment,
                 int64_t max_bad, int64_t *nbad)
{
    memset(d, 0, sizeof *d);
    d->S = sp->nwide;
    d->ND = sp->ndense;
    d->E = sp->nemb;
    float *tmp = calloc((size_t)(sp->deep_dim ? sp->deep_dim : 1), sizeof(float));
    if (!tmp) return rc_error(RC_ENOMEM, "out of memory");
    enc_ctx c = {sp, d, tmp};
    reader_opts o = {sep, header, comment, max_bad};
    int64_t nrows, bad;
    int rc = for_rows(sp, &o, path, encode_row, &c, &nrows, &bad, 1);
    free(tmp);
    if (nbad) *nbad = bad;
    if (rc != RC_OK) {
        wd_data_free(d);
        return rc;
    }
    return RC_OK;
}

/* ---------------------------------------------------------------- batches and evaluation */

static void load_batch(const wd_model *m, wd_scratch *s, const wd_data *d, const int64_t *idx, int B, float *y)
{
    const feat_spec *sp = m->spec;
    int D = sp->deep_dim;
    for (int r = 0; r < B; r++) {
        int64_t i = idx ? idx[r] : r;
        if (d->S) {
            memcpy(s->wide_idx + (size_t)r * d->S, d->wide_idx + i * d->S, sizeof(int64_t) * (size_t)d->S);
            memcpy(s->wide_val + (size_t)r * d->S, d->wide_val + i * d->S, sizeof(float) * (size_t)d->S);
        }
        if (d->ND) memcpy(s->x + (size_t)r * D, d->dense + i * d->ND, sizeof(float) * (size_t)d->ND);
        if (d->E) memcpy(s->emb_id + (size_t)r * d->E, d->emb_id + i * d->E, sizeof(int64_t) * (size_t)d->E);
        if (y) y[r] = d->y[i];
    }
}

int wd_evaluate(const wd_model *m, wd_scratch *s, const wd_data *d, wd_metrics *out)
{
    memset(out, 0, sizeof *out);
    out->n = d->n;
    if (d->n == 0) return rc_error(RC_EINVAL, "evaluation: no rows");
    float *prob = malloc(sizeof(float) * (size_t)d->n), *logit = malloc(sizeof(float) * (size_t)d->n);
    if (!prob || !logit) {
        free(prob);
        free(logit);
        return rc_error(RC_ENOMEM, "evaluation: out of memory");
    }
    float dropout = s->dropout; /* evaluation never drops units */
    s->dropout = 0;
    for (int64_t i = 0; i < d->n; i += s->max_b) {
        int B = (int)(d->n - i < s->max_b ? d->n - i : s->max_b);
        wd_data view = *d;
        view.wide_idx += i * d->S;
        view.wide_val += i * d->S;
        view.dense += i * d->ND;
        view.emb_id += i * d->E;
        view.y += i;
        load_batch(m, s, &view, NULL, B, NULL);
        wd_forward(m, s, B);
        memcpy(prob + i, s->prob, sizeof(float) * (size_t)B);
        memcpy(logit + i, s->logit, sizeof(float) * (size_t)B);
    }
    s->dropout = dropout;
    int rc = metrics_auc(logit, d->y, (size_t)d->n, &out->auc);
    if (rc != RC_OK) out->auc = NAN;
    out->logloss = metrics_logloss(prob, d->y, (size_t)d->n);
    out->accuracy = metrics_accuracy(prob, d->y, (size_t)d->n);
    free(prob);
    free(logit);
    return RC_OK;
}

int wd_train_epoch(wd_model *m, wd_optim *o, wd_scratch *s, wd_grads *g, const wd_data *d, rng_t *r,
                   int64_t *order, float *ybuf, double *mean_loss)
{
    rng_shuffle_i64(r, order, (size_t)d->n);
    s->rng = rng_split(r);
    double loss = 0;
    int64_t seen = 0;
    for (int64_t i = 0; i < d->n; i += s->max_b) {
        int B = (int)(d->n - i < s->max_b ? d->n - i : s->max_b);
        load_batch(m, s, d, order + i, B, ybuf);
        wd_forward(m, s, B);
        loss += wd_backward(m, s, ybuf, B, g) * B;
        seen += B;
        int rc = wd_apply(m, o, g);
        if (rc != RC_OK) return rc;
    }
    if (mean_loss) *mean_loss = seen ? loss / (double)seen : NAN;
    return RC_OK;
}

/* ---------------------------------------------------------------- commands */

/* "size:hash" of a file's bytes (hash_combine over 1 MiB blocks), for the snapshot's meta. */
static int file_fingerprint(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return rc_error(RC_EIO, "%s: cannot open", path);
    static char buf[1 << 20];
    uint64_t h = 0x7265636477640001ULL, total = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        h = hash_combine(h, buf, n);
        total += n;
    }
    int err = ferror(f);
    fclose(f);
    if (err) return rc_error(RC_EIO, "%s: read error", path);
    snprintf(out, cap, "%llu:%016llx", (unsigned long long)total, (unsigned long long)h);
    return RC_OK;
}


static int parse_sep(const char *s, char *out)
{
    if (!s || !*s) return rc_error(RC_EINVAL, "setting 'sep': empty");
    if (strcmp(s, "\\t") == 0 || strcmp(s, "tab") == 0) *out = '\t';
    else if (strlen(s) == 1) *out = s[0];
    else return rc_error(RC_EINVAL, "setting 'sep': one character expected, got \"%s\"", s);
    return RC_OK;
}

static int header_mode(const char *h)
{
    return strcmp(h, "yes") == 0 ? 1 : strcmp(h, "no") == 0 ? 0 : -1;
}

static json_t *metrics_json(const wd_metrics *mt)
{
    return json_pack("{s:I,s:f,s:f,s:f}", "n", (json_int_t)mt->n, "auc", isnan(mt->auc) ? -1.0 : mt->auc,
                     "logloss", mt->logloss, "accuracy", mt->accuracy);
}

static void usage_train(FILE *out)
{
    fprintf(out, "usage: recd train widedeep -c CONFIG [--train FILE] [--test FILE] [--out DIR] [--SETTING VALUE]...\n"
                 "settings (config file keys, or --SETTING VALUE; '-' and '_' are the same in flags, file keys are exact):\n");
    cfg_print_help(wd_cfg_defs, out);
}

int wd_cmd_train(int argc, char **argv)
{
    wd_cfg c;
    feat_spec *spec = NULL;
    wd_model *m = NULL;
    wd_scratch *s = NULL;
    wd_grads *g = NULL;
    wd_optim o;
    memset(&o, 0, sizeof o);
    wd_data train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    feat_learner *l = NULL;
    int64_t *order = NULL;
    float *ybuf = NULL;
    json_t *extra = NULL;
    int status = 1, rc;
    if (cfg_defaults(wd_cfg_defs, &c) != RC_OK) {
        fprintf(stderr, "recd train widedeep: %s\n", rc_errmsg());
        return 1;
    }
    const char *cfg_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage_train(stdout);
            status = 0;
            goto done;
        }
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) cfg_path = argv[++i];
    }
    if (cfg_path && cfg_load_file(wd_cfg_defs, &c, cfg_path) != RC_OK) {
        fprintf(stderr, "recd train widedeep: %s\n", rc_errmsg());
        goto done;
    }
    static const char *const keep[] = {"-c", NULL};
    if (cfg_parse_args(wd_cfg_defs, &c, &argc, argv, keep) != RC_OK) {
        fprintf(stderr, "recd train widedeep: %s\n", rc_errmsg());
        usage_train(stderr);
        status = 2;
        goto done;
    }
    for (int i = 1; i < argc; i++) { /* what is left: -c F */
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            i++;
            continue;
        }
        fprintf(stderr, "recd train widedeep: unexpected argument '%s' (run `recd train widedeep --help`)\n", argv[i]);
        status = 2;
        goto done;
    }
    if (!c.train) {
        fprintf(stderr, "recd train widedeep: no training file (setting 'train', or --train F)\n");
        status = 2;
        goto done;
    }
    char sep;
    if (parse_sep(c.sep, &sep) != RC_OK) {
        fprintf(stderr, "recd train widedeep: %s\n", rc_errmsg());
        status = 2;
        goto done;
    }
    wd_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.variant = strcmp(c.model, "wide") == 0 ? WD_WIDE : strcmp(c.model, "deep") == 0 ? WD_DEEP : WD_BOTH;
    if (!json_is_array(c.hidden) || json_array_size(c.hidden) > WD_MAX_LAYERS) {
        fprintf(stderr, "recd train widedeep: setting 'hidden': an array of at most %d sizes\n", WD_MAX_LAYERS);
        status = 2;
        goto done;
    }
    hp.nhidden = (int)json_array_size(c.hidden);
    for (int i = 0; i < hp.nhidden; i++) {
        const json_t *h = json_array_get(c.hidden, (size_t)i);
        if (!json_is_integer(h)) {
            fprintf(stderr, "recd train widedeep: setting 'hidden'[%d]: not an integer\n", i);
            status = 2;
            goto done;
        }
        hp.hidden[i] = (int)json_integer_value(h);
    }
    hp.ftrl_alpha = c.ftrl_alpha;
    hp.ftrl_beta = c.ftrl_beta;
    hp.ftrl_l1 = c.ftrl_l1;
    hp.ftrl_l2 = c.ftrl_l2;
    hp.lr = c.learning_rate;
    hp.adagrad_init = c.adagrad_init;
    hp.adagrad_eps = c.adagrad_eps;
    hp.l2 = c.l2;
    hp.seed = (uint64_t)c.seed;

    if ((rc = feat_spec_parse(&spec, c.columns, c.features, c.label, c.label_positive, c.label_negative,
                              c.missing)) != RC_OK) {
        fprintf(stderr, "recd train widedeep: %s: %s\n", cfg_path ? cfg_path : "config", rc_errmsg());
        status = 2;
        goto done;
    }
    if (c.quiet && log_level < LOG_LVL_WARN) log_level = LOG_LVL_WARN; /* only warnings and the result line */
    dense_set_threads((int)c.threads);
    double t0 = clock_mono_s();
    reader_opts ro = {sep, header_mode(c.header), c.comment, c.max_bad_rows};
    int64_t nrows, nbad;
    if (!(l = feat_learner_new(spec))) goto fail;
    if ((rc = for_rows(spec, &ro, c.train, learn_row, l, &nrows, &nbad, 0)) != RC_OK) goto fail;
    if ((rc = feat_learner_apply(l, spec)) != RC_OK || (rc = feat_spec_finish(spec)) != RC_OK) goto fail;
    if ((rc = wd_data_load(&train, spec, c.train, sep, ro.header, c.comment, c.max_bad_rows, &nbad)) != RC_OK)
        goto fail;
    log_info("%s: %lld rows (%lld bad), wide %lld weights in %d slots, deep input %d (%d embedded)", c.train,
             (long long)train.n, (long long)nbad, (long long)spec->wide_dim, spec->nwide, spec->deep_dim, spec->nemb);
    if (train.n == 0) {
        rc_error(RC_EINVAL, "%s: no usable rows", c.train);
        goto fail;
    }
    if (c.test && (rc = wd_data_load(&test, spec, c.test, sep, ro.header, c.comment, c.max_bad_rows, &nbad)) != RC_OK)
        goto fail;
    if (c.test) log_info("%s: %lld rows (%lld bad)", c.test, (long long)test.n, (long long)nbad);
    if ((rc = wd_model_new(&m, spec, &hp)) != RC_OK) goto fail;
    spec = NULL; /* owned by the model */
    if (!(s = wd_scratch_new(m, (int)c.batch_size)) || !(g = wd_grads_new(m, (int)c.batch_size))) goto fail;
    if (wd_optim_init(&o, m) != RC_OK) goto fail;
    s->dropout = (float)c.dropout;
    order = malloc(sizeof *order * (size_t)train.n);
    ybuf = malloc(sizeof *ybuf * (size_t)c.batch_size);
    if (!order || !ybuf) {
        rc_error(RC_ENOMEM, "out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < train.n; i++) order[i] = i;
    rng_t r;
    rng_seed(&r, (uint64_t)c.seed ^ 0x7261696eULL);
    log_info("training %s: %lld epochs, batch %lld, read in %.2fs", c.model, c.epochs, c.batch_size, clock_mono_s() - t0);
    double tt = clock_mono_s();
    wd_metrics mt;
    memset(&mt, 0, sizeof mt);
    mt.auc = mt.logloss = mt.accuracy = NAN;
    for (long long e = 1; e <= c.epochs; e++) {
        double te = clock_mono_s(), loss;
        if ((rc = wd_train_epoch(m, &o, s, g, &train, &r, order, ybuf, &loss)) != RC_OK) goto fail;
        if (!isfinite(loss)) {
            rc_error(RC_ERANGE, "training diverged at epoch %lld (loss %g): lower learning_rate / ftrl_alpha", e, loss);
            goto fail;
        }
        double dt = clock_mono_s() - te, eta = (clock_mono_s() - tt) / (double)e * (double)(c.epochs - e);
        int do_eval = c.test && ((c.eval_every > 0 && e % c.eval_every == 0) || e == c.epochs);
        if (do_eval && (rc = wd_evaluate(m, s, &test, &mt)) != RC_OK) goto fail;
        if (c.quiet) {
            /* only warnings and the result line */
        } else if (do_eval) {
            fprintf(stderr, "epoch %lld/%lld  loss %.5f  %.0f rows/s  test auc %.4f logloss %.4f accuracy %.4f  ETA %.1fs\n",
                    e, c.epochs, loss, (double)train.n / dt, mt.auc, mt.logloss, mt.accuracy, eta);
        } else {
            fprintf(stderr, "epoch %lld/%lld  loss %.5f  %.0f rows/s  ETA %.1fs\n", e, c.epochs, loss,
                    (double)train.n / dt, eta);
        }
    }
    double train_s = clock_mono_s() - tt;
    extra = json_object();
    json_t *hpj = cfg_to_json(wd_cfg_defs, &c);
    if (!extra || !hpj) {
        json_decref(hpj);
        rc_error(RC_ENOMEM, "out of memory");
        goto fail;
    }
    json_object_del(hpj, "features");
    json_object_del(hpj, "columns");
    json_object_del(hpj, "quiet"); /* how the run logged, not how the model was made: the meta stays the same */
    json_object_set_new(extra, "hparams", hpj);
    json_object_set_new(extra, "csv", json_pack("{s:s,s:s,s:s?}", "sep", c.sep, "header", c.header, "comment", c.comment));
    char fp[64] = "";
    if (file_fingerprint(c.train, fp, sizeof fp) != RC_OK) goto fail;
    json_object_set_new(extra, "train", json_pack("{s:s,s:s,s:I,s:f}", "file", c.train, "fingerprint", fp, "rows",
                                                  (json_int_t)train.n, "seconds", train_s));
    if (c.test) json_object_set_new(extra, "metrics", metrics_json(&mt));
    uint64_t ver;
    if ((rc = wd_save_as(m, c.out, c.name, (uint64_t)c.version, extra, &ver)) != RC_OK) goto fail;
    log_info("published %s/%s/%llu (training %.2fs)", c.out, c.name, (unsigned long long)ver, train_s);
    if (c.test)
        printf("%s auc=%.4f accuracy=%.4f logloss=%.4f train_s=%.2f version=%llu\n", c.model, mt.auc, mt.accuracy,
               mt.logloss, train_s, (unsigned long long)ver);
    else
        printf("%s trained train_s=%.2f version=%llu\n", c.model, train_s, (unsigned long long)ver);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "recd train widedeep: %s\n", rc_errmsg());
    status = 1;
done:
    json_decref(extra);
    free(order);
    free(ybuf);
    feat_learner_free(l);
    wd_data_free(&train);
    wd_data_free(&test);
    wd_optim_release(&o);
    if (m) wd_grads_free(m, g);
    wd_scratch_free(s);
    wd_model_free(m);
    feat_spec_free(spec);
    cfg_release(wd_cfg_defs, &c);
    return status;
}

typedef struct wd_eval_cfg {
    char *snapshot, *data, *sep, *header, *comment;
    long long max_bad_rows;
} wd_eval_cfg;

static const cfg_def wd_eval_defs[] = {
    CFG_STRING("snapshot", wd_eval_cfg, snapshot, NULL, "ROOT/widedeep/VERSION, or ROOT/widedeep for its newest (required)"),
    CFG_STRING("data", wd_eval_cfg, data, NULL, "labelled CSV file to evaluate (required)"),
    CFG_STRING("sep", wd_eval_cfg, sep, NULL, "field separator (default: the model's)"),
    CFG_ENUM("header", wd_eval_cfg, header, NULL, "auto|yes|no", "first line is a header (default: the model's)"),
    CFG_STRING("comment", wd_eval_cfg, comment, NULL, "lines starting with this are skipped (default: the model's)"),
    WD_MAX_BAD_ROWS_ENTRY(wd_eval_cfg),
    CFG_END,
};

int wd_cmd_eval(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: recd eval widedeep --snapshot DIR --data FILE [--SETTING VALUE ...]\n"
                   "Prints \"VARIANT auc=.. accuracy=.. logloss=.. n=N bad=N\". The CSV options default to those the\n"
                   "model was trained with.\nsettings:\n");
            cfg_print_help(wd_eval_defs, stdout);
            return 0;
        }
    wd_eval_cfg c;
    if (cfg_defaults(wd_eval_defs, &c) != RC_OK || cfg_parse_args(wd_eval_defs, &c, &argc, argv, NULL) != RC_OK) {
        fprintf(stderr, "recd eval widedeep: %s\n", rc_errmsg());
        cfg_release(wd_eval_defs, &c);
        return 2;
    }
    if (argc > 1 || !c.snapshot || !c.data) {
        if (argc > 1) fprintf(stderr, "recd eval widedeep: unexpected argument '%s'\n", argv[1]);
        else fprintf(stderr, "usage: recd eval widedeep --snapshot DIR --data FILE\n");
        cfg_release(wd_eval_defs, &c);
        return 2;
    }
    const char *dir = c.snapshot, *data = c.data, *sep_s = c.sep, *header_s = c.header, *comment = c.comment;
    long long max_bad = c.max_bad_rows;
    snap *sn = NULL;
    wd_model *m = NULL;
    wd_scratch *s = NULL;
    wd_data d;
    memset(&d, 0, sizeof d);
    int status = 1;
    if (snap_open_any(&sn, dir) != RC_OK || wd_load(&m, sn) != RC_OK) goto fail;
    const json_t *csvj = json_object_get(snap_meta(sn), "csv");
    if (!sep_s) sep_s = json_string_value(json_object_get(csvj, "sep"));
    if (!header_s) header_s = json_string_value(json_object_get(csvj, "header"));
    if (!comment) comment = json_string_value(json_object_get(csvj, "comment"));
    char sep = ',';
    if (sep_s && parse_sep(sep_s, &sep) != RC_OK) goto fail;
    if (m->spec->label < 0) {
        rc_error(RC_EINVAL, "%s: the model's spec has no label column", dir);
        goto fail;
    }
    int64_t nbad;
    if (wd_data_load(&d, m->spec, data, sep, header_mode(header_s ? header_s : "auto"), comment, max_bad, &nbad) != RC_OK)
        goto fail;
    if (!(s = wd_scratch_new(m, 512))) goto fail;
    wd_metrics mt;
    if (wd_evaluate(m, s, &d, &mt) != RC_OK) goto fail;
    printf("%s auc=%.4f accuracy=%.4f logloss=%.4f n=%lld bad=%lld\n",
           json_string_value(json_object_get(snap_meta(sn), "variant")), mt.auc, mt.accuracy, mt.logloss,
           (long long)mt.n, (long long)nbad);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "recd eval widedeep: %s\n", rc_errmsg());
done:
    wd_data_free(&d);
    wd_scratch_free(s);
    wd_model_free(m);
    snap_close(sn);
    cfg_release(wd_eval_defs, &c);
    return status;
}
