/* trainer/ratings.h - explicit-rating data for the rating models (biased MF, AutoRec, RBMs, LLORMA):
 * readers of the MovieLens formats, the AutoRec protocol split, compressed rows, RMSE/MAE, and the
 * steps every rating trainer shares (DESIGN.md section 7, "Rating prediction").
 *
 * Glossary of letters used in shape comments: R ratings, U users, N items, I rows of a CSR (U or N).
 *
 * Files. One rating per line, the fields user, item, rating (further fields, e.g. a timestamp, are
 * ignored), plain or gzip, UTF-8 (a byte-order mark at the start of a file, after gunzip, is skipped).
 * Lines end in LF or CRLF (a file whose lines end in CR only is refused: "FILE: lines end in CR only (old
 * Mac): convert to LF"); empty lines and lines of only spaces and tabs are skipped. The format is found
 * per file from its first such non-blank line:
 *   "::" in the line          MovieLens 1M/10M ratings.dat   `1::1193::5::978300760`
 *   a tab                     MovieLens 100K u.data          `196\t242\t3\t881250949`
 *   otherwise ','             CSV; the ML-1M 5-fold parts     `1,1193,5`
 * CSV fields may be quoted ("" is a quote inside), and spaces and tabs around a CSV field are dropped
 * (`1, 10, 4`); tab and '::' ids are kept as they are (a rating may have blanks around it anywhere).
 * Header: the first non-blank line is a header when one of its fields names a column (ignoring case):
 *   user    user_id | userId | user
 *   item    item_id | itemId | movieId | movie_id | item
 *   rating  rating
 * and then it must name all three, in any order ("FILE:1: no rating column in the header (expected
 * rating, any case)"). A first line that names none of them is data, with the errors of any other line
 * (`a,b,c`: "FILE:1: field 3 (rating): 'c' is not a number"). A path may name a file, a folder
 * (every regular file in it whose name does not start with '.', in name order), or several of those
 * separated by ','. Ratings are decimal numbers (half stars are fine; not hexadecimal), finite, within
 * [-1e6, 1e6]. Ids are opaque strings of 1..255 bytes of valid UTF-8 without a CR (what the HTTP API can
 * carry). A repeated (user, item) pair keeps its last rating, at the position of its first
 * (counted: rt_data.n_dup).
 * Errors name the file, the line and the field: "u.data:17: field 3 (rating): 'x' is not a number",
 * "...: field 3 (rating): '1e30' is out of range [-1e6, 1e6]", "...: field 1 (user): the id is not valid
 * UTF-8 at byte 2".
 *
 * Protocol (Sedhain et al. 2015, following LLORMA): all ratings shuffled by seed; the first
 * round(test_frac * R) are the test set, then round(valid_frac * rest) of the rest the validation set
 * (choosing epochs and hyperparameters), the remainder the training set. The model knows only the users
 * and items of the training set: a validation or test rating whose user or item has no training rating
 * is predicted with the default rating (3), flagged, and counted in the metrics like any other.
 */
#ifndef RECD_RATINGS_H
#define RECD_RATINGS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/config.h"
#include "core/idmap.h"
#include "models/rating_base.h"

/* R ratings as three parallel arrays. Indices refer to the vocabularies: in a set read from files,
 * every index is valid; in a validation or test set made by rt_split, -1 marks a user (item) absent
 * from the training set. */
typedef struct rt_data {
    int64_t n;          /* R */
    int32_t *user;      /* (R) index in users, or -1 */
    int32_t *item;      /* (R) index in items, or -1 */
    float *rating;      /* (R) */
    idmap *users;       /* U ids; owned when owns_vocab */
    idmap *items;       /* N ids; owned when owns_vocab */
    int owns_vocab;
    int64_t n_dup;      /* repeated (user, item) pairs dropped by the reader (the last rating kept) */
    float rmin, rmax;   /* the smallest and largest rating seen (0, 0 when n == 0) */
} rt_data;

/* Frees the arrays (and the vocabularies when owned) and zeroes d. NULL or zeroed: no-op. */
void rt_free(rt_data *d);

/* Read every rating of path (file, folder, or a ','-separated list of them: see the top) into *out
 * (zeroed first; owns its vocabularies, indices in order of first appearance). RC_OK, or RC_ENOTFOUND
 * (no such file), RC_EIO, RC_EFORMAT (a bad line: message "FILE:LINE: field K (NAME): ..."; a header
 * lacking a column; lines ending in CR only; a file with no rating), RC_ENOMEM; *out is zeroed on
 * failure. verbose: one log_info line per file. */
int rt_read(rt_data *out, const char *path, int verbose);

/* Rows of a rating matrix in compressed form (by user: I = U, col = item; by item: I = N, col = user).
 * Columns of a row are sorted ascending and distinct. */
typedef struct rt_csr {
    int64_t rows;       /* I */
    int64_t nnz;        /* R */
    int64_t *offsets;   /* (I+1) row r is [offsets[r], offsets[r+1]) */
    int32_t *col;       /* (R) */
    float *val;         /* (R) */
} rt_csr;

/* The rows of d (every index valid, no -1) by user (by_item 0) or by item (1): rows = U or N of d's
 * vocabularies. RC_OK, RC_EINVAL (an index -1 or out of range, message set), RC_ENOMEM. */
int rt_csr_build(rt_csr *out, const rt_data *d, int by_item);
void rt_csr_free(rt_csr *c); /* zeroes c; NULL or zeroed: no-op */

/* The protocol split of all (borrowed, read only). train owns new vocabularies (the users and items
 * with a training rating, in order of first appearance in all); valid and test share them
 * (owns_vocab 0) and hold -1 for what training lacks. valid_frac 0: no validation set (valid.n == 0).
 * Deterministic for (all, seed, fractions). RC_OK, RC_EINVAL (fractions outside [0, 1) or summing
 * past 1, a training set left empty), RC_ENOMEM; every output zeroed on failure. */
typedef struct rt_split {
    rt_data train, valid, test;
} rt_split;
int rt_split_make(rt_split *out, const rt_data *all, uint64_t seed, double test_frac, double valid_frac);
void rt_split_free(rt_split *s);
/* The set of each of n ratings under the protocol (what rt_split_make uses): set (n) gets 0 train,
 * 1 validation, 2 test; counts (3, may be NULL) the sizes. For writing the three parts with their
 * external ids (`recd split ratings`). RC_OK, RC_EINVAL (as rt_split_make, or n == 0), RC_ENOMEM. */
int rt_split_sets(uint8_t *set, int64_t n, uint64_t seed, double test_frac, double valid_frac, int64_t counts[3]);

/* Map the ids of d (its own vocabularies) to the vocabularies users and items (borrowed: a model's):
 * *out gets d's ratings with indices there, -1 for an id they lack, and borrows their vocabularies
 * (owns_vocab 0). For evaluating a snapshot on a test file. RC_OK or RC_ENOMEM. */
int rt_remap(rt_data *out, const rt_data *d, const idmap *users, const idmap *items);

/* Write d as TSV `user_id\titem_id\trating` with a header (what `recd split ratings` writes; rt_read
 * reads it back identically; -1 indices cannot be written: RC_EINVAL). Written to PATH.tmp, then
 * renamed. RC_OK, RC_EIO (with the path), RC_EINVAL. */
int rt_write_tsv(const rt_data *d, const char *path);

/* ---- metrics ---------------------------------------------------------------------------------- */
typedef struct rt_metrics {
    int64_t n;                 /* ratings predicted */
    int64_t n_default;         /* of which predicted with the default (unknown user or item) */
    double rmse, mae;          /* predictions as the model gives them (not clipped) */
    double rmse_clip, mae_clip;/* predictions clipped to [rmin, rmax] */
} rt_metrics;

/* Predictions for ratings d: out (R), fallback (R) 1 where the default was used. */
typedef void (*rt_predict_fn)(const void *m, const rt_data *d, float *out, uint8_t *fallback);

/* Metrics of predictions pred (R) against d's ratings, fallback (R, may be NULL) counted in
 * n_default; clipping to [rmin, rmax]. Sums in double. RC_OK; RC_EINVAL when d->n == 0. */
int rt_metrics_of(rt_metrics *out, const rt_data *d, const float *pred, const uint8_t *fallback, float rmin,
                  float rmax);
/* {"n":..,"n_default":..,"rmse":..,"mae":..,"rmse_clipped":..,"mae_clipped":..}, new reference;
 * NULL on ENOMEM. */
json_t *rt_metrics_to_json(const rt_metrics *m);

/* ---- what every rating trainer shares ---------------------------------------------------------- */
/* The common settings, embedded as member M of a trainer's settings struct T with RT_CFG_ENTRIES(T, M)
 * (defaults and bounds written there only). */
typedef struct rt_opts {
    char *data;            /* all ratings, split here by the protocol */
    char *train, *valid, *test; /* or files already split (as `recd split ratings` writes) */
    char *out;             /* snapshot root */
    char *name;            /* label of the result line (default: the model's name) */
    long long seed;        /* model initialisation and sampling */
    long long split_seed;  /* the protocol split of --data */
    double test_frac, valid_frac;
    double default_rating; /* prediction for an unknown user or item */
    long long threads;     /* BLAS / worker threads */
    int quiet;
} rt_opts;

#define RT_CFG_ENTRIES(T, M)                                                                              \
    CFG_STRING("data", T, M.data, NULL, "all ratings (file, folder or a,b,c): split by split_seed"),     \
    CFG_STRING("train", T, M.train, NULL, "training ratings already split (with valid, test)"),          \
    CFG_STRING("valid", T, M.valid, NULL, "validation ratings (epochs, early stopping)"),                \
    CFG_STRING("test", T, M.test, NULL, "test ratings"),                                                  \
    CFG_STRING("out", T, M.out, "snapshots", "snapshot root (ROOT/MODEL/VERSION)"),                      \
    CFG_STRING("name", T, M.name, NULL, "label of the result line and the snapshot's model folder"),     \
    CFG_INT("seed", T, M.seed, 1, 0, 9.2e18, "seed of initialisation and sampling"),                      \
    CFG_INT("split_seed", T, M.split_seed, 1, 0, 9.2e18, "seed of the 90/10 split of --data"),           \
    CFG_DOUBLE("test_frac", T, M.test_frac, 0.1, 0, 0.99, "share of --data held out for test"),          \
    CFG_DOUBLE("valid_frac", T, M.valid_frac, 0.1, 0, 0.99, "share of the rest held out for validation"), \
    CFG_DOUBLE("default_rating", T, M.default_rating, 3, -1e9, 1e9, "prediction for an unknown user or item"), \
    CFG_INT("threads", T, M.threads, 2, 1, 256, "worker and BLAS threads"),                               \
    CFG_BOOL("quiet", T, M.quiet, 0, "only warnings and the result line")

/* A trainer's data: the split (from --data, or --train/--valid/--test remapped to the training
 * vocabularies) and the training rows both ways. */
typedef struct rt_job {
    rt_split sp;           /* sp.valid.n or sp.test.n may be 0 */
    rt_csr by_user;        /* of sp.train: U rows */
    rt_csr by_item;        /* of sp.train: N rows */
    double mean;           /* mean training rating */
    const char *source;    /* --data or --train (borrowed from the options) */
} rt_job;

/* Load and split as o says (--data, or --train [--valid] [--test]; exactly one of the two, else
 * RC_EINVAL "give --data F or --train F"), build the rows, log the sizes unless o->quiet. Errors as
 * rt_read / rt_split_make, with the message naming the file. *j zeroed on failure. */
int rt_job_prepare(rt_job *j, const rt_opts *o);
void rt_job_free(rt_job *j);

/* {"path":..,"split_seed":..,"n_train":..,"n_valid":..,"n_test":..,"n_users":..,"n_items":..,
 *  "mean":..,"rating_min":..,"rating_max":..}: the data part of a snapshot's meta. New reference. */
json_t *rt_job_meta(const rt_job *j, const rt_opts *o);

/* The result line every rating trainer prints on stdout (one line, flushed):
 *   LABEL rmse=0.8312 mae=0.6521 rmse_clipped=0.8290 mae_clipped=0.6503 n=100021 n_default=12 train_s=123.4 [extra]
 * (test metrics; "LABEL (no test data) train_s=.." when test is NULL). extra may be NULL. */
void rt_print_result(const char *label, const rt_metrics *test, double train_s, const char *extra);

/* The ratings a refit trains on (--refit of autorec and llorma): the training ratings of j, then its
 * validation ratings whose user and item both have a training rating (the model has no row for the
 * others), in that order; their rows both ways and their mean. all borrows j's training vocabularies
 * (owns_vocab 0): j must outlive it. */
typedef struct rt_refit {
    rt_data all;           /* R' = train.n + known validation ratings */
    rt_csr by_user;        /* U rows (the training vocabulary's U) */
    rt_csr by_item;        /* N rows */
    double mean;           /* mean of all's ratings */
} rt_refit;

/* Build *out from j (borrowed, read only). RC_OK, RC_ENOMEM, RC_EINVAL (a validation rating repeats a
 * training (user, item) pair: files split by hand; rt_csr_build's message); *out zeroed on failure. */
int rt_refit_make(rt_refit *out, const rt_job *j);
void rt_refit_free(rt_refit *r); /* zeroes r; NULL or zeroed: no-op */

/* ---- `recd train MODEL` for every rating model: rt_train_main and its table of hooks ---------------
 *
 * A rating trainer is a settings struct T whose member M is an rt_opts, a cfg_def table that starts
 * with RT_CFG_ENTRIES(T, M), the model's hyperparameters struct H, and an rt_trainer naming hooks for
 * what differs between models. rt_train_main does the rest, in this order:
 *   1. settings: defaults; --help/-h prints t->usage and the settings table on stdout (exit 0); -c FILE
 *      is read before the flags; a bad file or flag, an argument left over, or not exactly one of
 *      --data / --train (--data with --valid or --test included) is a usage error (exit 2);
 *   2. setup (settings -> H, checked; a refused value: "PROG: FILE|settings: MESSAGE", exit 2);
 *   3. rt_job_prepare, then train (the first pass, the validation ratings choosing the epochs);
 *   4. the first model's validation metrics (RT_META_VALID), then, when setup asked for it, a validation
 *      set exists and the trainer has a refit hook: refit on rt_refit_make's ratings (the published model);
 *   5. the test metrics; the meta {"config", "hparams" (hook optional), "data" (rt_job_meta), "train"
 *      (hook), "metrics": {"valid_rmse" (RT_META_VALID_RMSE, when finite), "valid", "test"}};
 *   6. save under OUT/LABEL, log "NAME: published OUT/LABEL/VERSION", print the result line
 *      (rt_print_result with the result_extra hook's fields). Exit 0; any failure after step 2: one line
 *      "PROG: MESSAGE" on stderr, exit 1.
 * PROG is "recd train NAME"; LABEL is --name, else t->label's, else NAME. train_s covers step 3's
 * training (model creation included) and the refit, not the metrics (but the first model's validation
 * metrics when there is a refit).
 */

/* What the hooks of one run see (owned by rt_train_main; every hook runs on the caller's thread, once
 * at most but predict, which runs once per evaluated set). Fields marked "hook" are set by the hooks
 * named; the others by the driver before the hooks that read them. */
typedef struct rt_run {
    const void *cfg;       /* the settings (a T, loaded) */
    const rt_opts *o;      /* its member M */
    void *hp;              /* H (t->hp_size bytes, zeroed): setup fills it, later hooks read it */
    void *st;              /* the trainer's own statistics (t->st_size bytes, zeroed): train, refit */
    void *model;           /* hook train, refit: the trained model, freed with t->free (NULL: none) */
    const rt_job *job;     /* the data (from step 3 on) */
    const char *label;     /* the result line's label and the snapshot's model folder (from step 3) */
    double valid_rmse;     /* hook train: the first pass's best validation RMSE (NAN: none; driver's default) */
    int refit;             /* hook setup: 1 to ask for a refit; from step 4: 1 when the published model is a refit */
    int64_t n_train;       /* ratings the published model is trained on: train.n, or (set before the refit
                            * hook) rt_refit's all.n */
    double train_s;        /* seconds, from step 4 */
    uint64_t version;      /* the published version (set before result_extra) */
} rt_run;

enum {
    RT_META_VALID = 1,      /* meta metrics.valid: the first model's rt_metrics on the validation ratings */
    RT_META_VALID_RMSE = 2, /* meta metrics.valid_rmse: run.valid_rmse (when finite) */
};

/* One rating trainer (a static const table in trainer/train_MODEL.c). Every hook but label, refit and
 * hparams_json is required. Hooks that return int give RC_OK, or an RC_E* code with rc_error's message
 * (which the driver prints after "PROG: "; "PROG: refit: " for refit); on failure a hook leaves
 * run.model NULL or a model that t->free releases. */
typedef struct rt_trainer {
    const char *name;      /* the model: "recd train NAME", log lines, the default label */
    const char *usage;     /* --help text before the settings table (printed as is, no format) */
    const cfg_def *defs;   /* RT_CFG_ENTRIES(T, M), the model's settings, CFG_END */
    size_t cfg_size;       /* sizeof(T) */
    size_t rt_offset;      /* offsetof(T, M) */
    size_t hp_size;        /* sizeof(H) */
    size_t st_size;        /* size of the statistics struct run.st points to (0: none) */
    unsigned flags;        /* RT_META_* */
    /* H from run.cfg into run.hp, checked (a refused value: RC_EINVAL naming it); run.refit */
    int (*setup)(rt_run *r);
    /* the default label (static storage), e.g. by variant; NULL: NAME */
    const char *(*label)(const rt_run *r);
    /* create the model into run.model for in's sizes (in->by_user.rows users, in->by_item.rows items)
     * and train it (in borrowed for the call; in->valid may be empty); set run.valid_rmse and run.st */
    int (*train)(rt_run *r, const rb_train_input *in);
    /* NULL: no refit. Replace run.model (free it with t->free) by a model trained on in (the refit
     * ratings, no validation) for what the first pass chose (read from run.st); may update run.st */
    int (*refit)(rt_run *r, const rb_train_input *in);
    /* predictions of run.model for t (out (n), fallback (n) 1 where default_rating was used) */
    void (*predict)(const void *model, const rb_triples *t, float default_rating, float *out, uint8_t *fallback);
    /* meta "hparams" (new reference, NULL on ENOMEM); NULL hook: no "hparams" member */
    json_t *(*hparams_json)(const rt_run *r);
    /* meta "train" (new reference, NULL on ENOMEM); run.train_s, run.refit and run.n_train are set */
    json_t *(*train_json)(const rt_run *r);
    /* the result line's fields after train_s ("valid_rmse=0.8512 epochs=80 ..."), NUL-terminated in buf */
    void (*result_extra)(const rt_run *r, char *buf, size_t cap);
    /* publish run.model under root/run.label with src (the vocabularies, the published model's training
     * rows by user, the scale) and extra (the meta members above); *version the new version */
    int (*save)(const rt_run *r, const rating_base_src *src, const char *root, const json_t *extra,
                uint64_t *version);
    void (*free)(void *model); /* NULL is a no-op */
} rt_trainer;

/* `recd train NAME ...` for trainer t (argv[0] is the model name; argv borrowed, reordered by the settings
 * parser). Returns the exit status: 0 published, 1 failure (data, training, evaluation or snapshot: one
 * line on stderr), 2 usage error (stderr, and the usage for a wrong --data / --train). */
int rt_train_main(const rt_trainer *t, int argc, char **argv);

/* `recd eval MODEL --snapshot DIR --test F`: RMSE and MAE of any snapshot whose type has the `rate`
 * capability on the ratings of F (ids mapped to the snapshot's vocabularies; unknown ones predicted
 * with the model's default and counted in n_default). Prints the result line with train_s=0.
 * argv[0] is the model name. Exit status 0, 1 (bad file or snapshot), 2 (usage). */
int rt_eval_cmd(int argc, char **argv);

#endif
