/* trainer/train_widedeep.h - Wide & Deep training and evaluation (`recd train widedeep`,
 * `recd eval widedeep`), and the pieces the tests and benchmarks drive directly. */
#ifndef RECD_TRAIN_WIDEDEEP_H
#define RECD_TRAIN_WIDEDEEP_H

#include <stdint.h>

#include "core/rng.h"
#include "models/features.h"
#include "models/widedeep.h"

/* A file encoded in memory: row i has wide_idx/wide_val (S), dense (ND: the dense part of the deep
 * input), emb_id (E), label y. Owned arrays, freed by wd_data_free. */
typedef struct wd_data {
    int64_t n, cap;
    int S, ND, E;
    int64_t *wide_idx; /* (n, S) */
    float *wide_val;   /* (n, S) */
    float *dense;      /* (n, ND) */
    int64_t *emb_id;   /* (n, E) */
    float *y;          /* (n) */
} wd_data;

typedef struct wd_metrics {
    int64_t n;
    double auc, logloss, accuracy;
} wd_metrics;

/* Read and encode a CSV file with a finished spec. header: 1 yes, 0 no, -1 auto (the first row is a
 * header when at least half of its fields equal the column names). Lines starting with `comment`
 * (may be NULL) are skipped. Bad rows (column count, number or label that does not parse) are skipped,
 * counted into *nbad and logged with file and line (the first 5); more than max_bad fails with
 * RC_EFORMAT naming the file and line. */
int wd_data_load(wd_data *d, const feat_spec *sp, const char *path, char sep, int header, const char *comment,
                 int64_t max_bad, int64_t *nbad);
void wd_data_free(wd_data *d);

/* AUC, logloss and accuracy of m on d (batches of s->max_b rows). */
int wd_evaluate(const wd_model *m, wd_scratch *s, const wd_data *d, wd_metrics *out);

/* One epoch: shuffle order (n entries, a permutation) with r, then mini-batches of s->max_b rows.
 * ybuf is (s->max_b). *mean_loss gets the mean training logloss. */
int wd_train_epoch(wd_model *m, wd_optim *o, wd_scratch *s, wd_grads *g, const wd_data *d, rng_t *r,
                   int64_t *order, float *ybuf, double *mean_loss);

int wd_cmd_train(int argc, char **argv);
int wd_cmd_eval(int argc, char **argv);

#endif
