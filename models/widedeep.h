/* models/widedeep.h - Wide & Deep (Cheng et al., DLRS 2016): a linear model over sparse features and
 * their crosses (wide) plus an MLP over embeddings and numerics (deep), one logistic output, trained
 * jointly: FTRL-proximal with L1 for the wide part, AdaGrad for the deep part.
 *
 * Letters: B rows in a batch, D deep input width (spec->deep_dim), S wide slots per row (spec->nwide),
 * E embedded features per row (spec->nemb), H_l width of hidden layer l, L hidden layers.
 *
 *   logit = [wide]  w_bias + sum_s wide[wide_idx[s]] * wide_val[s]
 *         + [deep]  a_L W_L + b_L,   a_0 = x (B,D),  a_{l+1} = relu(a_l W_l + b_l)   W_l is (H_l, H_{l+1})
 *   p = sigmoid(logit), loss = mean logloss.
 *
 * Parameters: `wide` (wide_dim + 1, the last is the bias); embedding tables emb[k] (card_k, dim_k);
 * W[l], b[l] for l = 0..L (layer L is the output, width 1). A trained model owns one allocation for
 * the deep parameters and one for the wide weights; a model loaded from a snapshot points straight into
 * the snapshot's read-only map (zero copy) and must never be written.
 *
 * Snapshot (model "widedeep"): tensors "wide" f32 (wide_dim+1), "emb.<feature>" f32 (card, dim),
 * "mlp.W<l>" f32 (in, out), "mlp.b<l>" f32 (out); meta fields "spec" (feat_spec_to_json), "variant",
 * "hidden", "hparams", "metrics".
 */
#ifndef RECD_WIDEDEEP_H
#define RECD_WIDEDEEP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/rng.h"
#include "core/snap.h"
#include "models/features.h"
#include "models/model.h"

#define WD_MAX_LAYERS 8

typedef enum { WD_WIDE = 1, WD_DEEP = 2, WD_BOTH = 3 } wd_variant;

typedef struct wd_hparams {
    wd_variant variant;
    int nhidden;
    int hidden[WD_MAX_LAYERS];
    double ftrl_alpha, ftrl_beta, ftrl_l1, ftrl_l2; /* wide part (FTRL-proximal) */
    double lr, adagrad_init, adagrad_eps, l2;       /* deep part (AdaGrad; l2 on W) */
    uint64_t seed;
} wd_hparams;

typedef struct wd_model {
    feat_spec *spec;          /* owned */
    wd_hparams hp;
    int nlayers;              /* nhidden + 1 (output layer) */
    int dims[WD_MAX_LAYERS + 2]; /* dims[0] = D, dims[l+1] = width after layer l, dims[nlayers] = 1 */
    const float *wide;        /* (wide_dim + 1), last = bias; NULL when the variant has no wide part */
    const float **emb;        /* (nemb) tables, emb[k] is (card, dim) */
    const float *W[WD_MAX_LAYERS + 1], *b[WD_MAX_LAYERS + 1];
    /* training: owned storage that the const pointers above point into (NULL when from a snapshot) */
    float *params;            /* deep: embeddings then W0,b0,W1,b1,... */
    size_t nparams;
    size_t *emb_off;          /* (nemb) offset of each table in params */
    int *emb_dim;             /* (nemb) width of each table */
    size_t W_off[WD_MAX_LAYERS + 1], b_off[WD_MAX_LAYERS + 1];
    float *wide_w;            /* owned wide weights (wide_dim + 1) */
    const snap *from;         /* borrowed snapshot when loaded (must outlive the model) */
} wd_model;

/* A new model with random weights (Glorot-uniform W, normal(0, 1/sqrt(dim)) embeddings, zero biases
 * and wide weights). The spec must be finished; the model takes ownership of it on success only.
 * Errors: RC_EINVAL (no hidden layers in a deep variant, too many layers), RC_ENOMEM. */
int wd_model_new(wd_model **out, feat_spec *spec, const wd_hparams *hp);
void wd_model_free(wd_model *m); /* NULL is a no-op; frees the spec too */

/* Per-thread scratch for up to max_b rows (forward and backward). Owned by the caller. */
typedef struct wd_scratch {
    int max_b;
    float *x;          /* (max_b, D) deep input: feat_encode writes rows here, forward fills embeddings */
    float *act[WD_MAX_LAYERS + 1]; /* act[l] (max_b, dims[l]) for l >= 1 (post-ReLU) */
    float *delta, *delta2; /* (max_b, max width) backward buffers */
    float *dx;         /* (max_b, D) */
    float *logit, *prob; /* (max_b) */
    int64_t *wide_idx; /* (max_b, S) */
    float *wide_val;   /* (max_b, S) */
    int64_t *emb_id;   /* (max_b, E) */
    /* training only: dropout probability on hidden activations (0 when serving) and its rng */
    float dropout;
    rng_t rng;
} wd_scratch;

wd_scratch *wd_scratch_new(const wd_model *m, int max_b);
void wd_scratch_free(wd_scratch *s);

/* Forward pass for B <= s->max_b rows (with inverted dropout on hidden units when s->dropout > 0) whose inputs are in the scratch: s->x rows hold the dense part
 * (feat_encode's output), s->wide_idx/s->wide_val/s->emb_id the sparse part. Writes s->logit, s->prob
 * (B each). Matrix-matrix products throughout; no allocation. */
void wd_forward(const wd_model *m, wd_scratch *s, int B);

/* Encode B raw rows into the scratch (row r uses cand[r*ninputs ..] where not FEAT_V_MISSING, else
 * ctx[..], ctx may be NULL) and run wd_forward. Errors: feat_encode's RC_EFORMAT naming the column
 * (*bad_row receives the row, may be NULL). This is the serving path: one batched pass per request. */
int wd_score(const wd_model *m, wd_scratch *s, const feat_value *ctx, const feat_value *cand, int B,
             int *bad_row);

/* ---- training ---- */

/* Gradients of the mean logloss over a batch, with touched lists so that only the rows a batch used
 * are visited (the trainer applies them, then clears them). */
typedef struct wd_grads {
    float *deep;        /* (nparams) dense gradient of the deep parameters (embedding rows sparse) */
    float *wide;        /* (wide_dim + 1) */
    int64_t *wide_touched; size_t nwide_touched;   /* wide indices with a gradient (bias excluded) */
    uint8_t *wide_mark;
    int64_t *emb_touched; size_t nemb_touched;     /* (table << 40 | row) embedding rows with a gradient */
    uint8_t **emb_mark;                            /* (nemb) per table, (card) */
    size_t cap_wide_touched, cap_emb_touched;
} wd_grads;

wd_grads *wd_grads_new(const wd_model *m, int max_b);
void wd_grads_free(const wd_model *m, wd_grads *g);

/* After wd_forward on the same scratch: backward pass for labels y (B), accumulating into g (which must
 * be clear). Returns the mean logloss of the batch. */
double wd_backward(const wd_model *m, wd_scratch *s, const float *y, int B, wd_grads *g);

/* Optimiser state: FTRL z, n for the wide weights; AdaGrad accumulators for the deep parameters. */
typedef struct wd_optim {
    float *z, *n;   /* (wide_dim + 1) */
    float *acc;     /* (nparams) */
} wd_optim;

int wd_optim_init(wd_optim *o, const wd_model *m);
void wd_optim_release(wd_optim *o);

/* Apply g to the model's owned parameters (FTRL on touched wide weights and the bias, AdaGrad on the
 * MLP and on touched embedding rows) and clear g. RC_ESTATE on a model loaded from a snapshot. */
int wd_apply(wd_model *m, wd_optim *o, wd_grads *g);

/* ---- snapshots ---- */

/* Write the model as a new version under root/widedeep/ (version 0 = next). extra: meta fields to add
 * (metrics, hparams; borrowed, may be NULL). */
int wd_save(const wd_model *m, const char *root, uint64_t version, const json_t *extra, uint64_t *version_out);
/* The same under root/NAME/ (a model name of [A-Za-z0-9_-]: the served name, e.g. "wide" for the wide-only
 * variant served beside "widedeep"). Errors of snap_writer_open (RC_EINVAL for a bad name). */
int wd_save_as(const wd_model *m, const char *root, const char *model, uint64_t version, const json_t *extra,
               uint64_t *version_out);
/* Load from a validated snapshot: tensors are borrowed from s's map (zero copy), s must outlive *out.
 * Errors: RC_ECORRUPT (missing/misshapen tensor, bad spec), RC_ENOMEM. */
int wd_load(wd_model **out, const snap *s);

extern const model_type widedeep_type;

#endif
