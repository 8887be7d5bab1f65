/* trainer/ratings.h - explicit-rating data for the rating models (biased MF, AutoRec, RBMs, LLORMA):
 * readers of the MovieLens formats, the AutoRec protocol split, compressed rows, RMSE/MAE, and the
 * steps every rating trainer shares (DESIGN.md section 7, "Rating prediction").
 *
 * Glossary of letters used in shape comments: R ratings, U users, N items, I rows of a CSR (U or N).
 *
 * Files. One rating per line, the fields user, item, rating (further fields, e.g. a timestamp, are
 * ignored), plain or gzip. The format is found per file from its first line:
 *   "::" in the line          MovieLens 1M/10M ratings.dat   `1::1193::5::978300760`
 *   a tab                     MovieLens 100K u.data          `196\t242\t3\t881250949`
 *   otherwise ','             CSV; the ML-1M 5-fold parts     `1,1193,5`
 * A header is recognised when the first line's third field is not a number ("nan", "inf" and
 * "1e300" count as numbers: such a line is data, refused as not finite / out of range): the columns are then
 * found by name (user: user_id|userId|user|UserID; item: item_id|movieId|movie_id|item|MovieID;
 * rating: rating|Rating; compared ignoring case), else the first three columns are used. A path may name a file, a folder
 * (every regular file in it whose name does not start with '.', in name order), or several of those
 * separated by ','. Ratings must be finite numbers (half stars are fine); ids are opaque strings of
 * 1..255 bytes. A repeated (user, item) pair keeps its last rating, at the position of its first
 * (counted: rt_data.n_dup).
 * Errors name the file, the line and the field: "u.data:17: field 3 (rating): 'x' is not a number".
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
 * (no such file), RC_EIO, RC_EFORMAT (a bad line: message "FILE:LINE: field K (NAME): ..."; a file
 * with no rating), RC_ENOMEM; *out is zeroed on failure. verbose: one log_info line per file. */
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

/* `recd eval MODEL --snapshot DIR --test F`: RMSE and MAE of any snapshot whose type has the `rate`
 * capability on the ratings of F (ids mapped to the snapshot's vocabularies; unknown ones predicted
 * with the model's default and counted in n_default). Prints the result line with train_s=0.
 * argv[0] is the model name. Exit status 0, 1 (bad file or snapshot), 2 (usage). */
int rt_eval_cmd(int argc, char **argv);

#endif
