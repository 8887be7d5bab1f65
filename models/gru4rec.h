/* models/gru4rec.h - GRU4Rec session-based next-item model (Hidasi et al. 2016, 2018).
 *
 * Glossary of letters used in shape comments: N items, E embedding size (input), H hidden units per
 * layer, L layers, B batch (sessions scored together), S = state size per session (L*H floats; the sum
 * of the layer sizes when they differ), M = B + n_sample output columns during training.
 *
 * Serving API (used by server/ and by the evaluator). A loaded model borrows the snapshot's map: its
 * weights are read zero-copy, so the snap must outlive the model. All functions below are thread-safe
 * for concurrent callers as long as each thread passes its own scratch.
 *
 * The math follows the official GRU4Rec (hidasib/GRU4Rec_PyTorch_Official), reimplemented:
 *   input x: constrained embedding (x = Wy[item], the output item embeddings), or a separate embedding
 *   E[item], or "one-hot" (layer 0's input product is a row lookup Wx0[item], (N,3H)).
 *   Each layer (PyTorch GRUCell, gates r|z|n in column blocks):
 *     gx = x Wx + bx, gh = h Wh + bh       // Wx is (in,3H), Wh is (H,3H)
 *     r = sig(gx_r + gh_r), z = sig(gx_z + gh_z), n = tanh(gx_n + r * gh_n), h' = (1-z) n + z h
 *   score(item j) = h_last . Wy[j] + By[j].
 */
#ifndef RECD_GRU4REC_H
#define RECD_GRU4REC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/idmap.h"
#include "core/snap.h"
#include "models/model.h"

typedef struct gru4rec gru4rec;
typedef struct gru4rec_scratch gru4rec_scratch;

extern const model_type gru4rec_type;

/* Load from a validated snapshot whose meta model is "gru4rec". RC_ECORRUPT (missing/misshapen tensor,
 * message names it), RC_ENOMEM. *out owned by the caller (gru4rec_free). */
int gru4rec_load(gru4rec **out, const snap *s);
void gru4rec_free(gru4rec *m); /* NULL is a no-op */

int64_t gru4rec_n_items(const gru4rec *m);
/* S: floats of hidden state per session (all layers). A zero state is a new session. */
size_t gru4rec_state_size(const gru4rec *m);
/* Item vocabulary (external id -> index). Borrowed, lives as long as m. */
const idmap *gru4rec_items(const gru4rec *m);
/* A fingerprint of the item vocabulary and hidden size: equal fingerprints mean a session state from
 * one model is valid for the other (hot swap keeps sessions then). */
uint64_t gru4rec_state_fingerprint(const gru4rec *m);
/* Item indices by training popularity, most popular first (N entries). Borrowed. */
const int32_t *gru4rec_popular(const gru4rec *m);

/* Per-thread scratch for up to max_batch sessions at once. NULL on ENOMEM. */
gru4rec_scratch *gru4rec_scratch_new(const gru4rec *m, int max_batch);
void gru4rec_scratch_free(gru4rec_scratch *sc);

/* Advance B sessions by one click each: h is (B,S), updated in place; items is (B) item indices in
 * [0,N). No allocation. */
void gru4rec_step(const gru4rec *m, float *h, const int32_t *items, int B, gru4rec_scratch *sc);
/* Scores of every item for B sessions: h is (B,S), scores is (B,N) (caller's buffer). The ranking
 * score is the last layer's hidden state times the output item embeddings plus the item bias. */
void gru4rec_score(const gru4rec *m, const float *h, int B, float *scores, gru4rec_scratch *sc);

/* ======================================================================================
 * Training-side API (trainer/, tests). Not used by the server except to build test snapshots.
 * ====================================================================================== */

#define GRU4REC_MAX_LAYERS 4
enum { GRU4REC_LOSS_XE = 0, GRU4REC_LOSS_BPRMAX = 1, GRU4REC_LOSS_TOP1MAX = 2 };

/* Hyperparameters (names as in the official code). */
typedef struct gru4rec_hparams {
    int n_layers;                       /* L, 1..GRU4REC_MAX_LAYERS */
    int layers[GRU4REC_MAX_LAYERS];     /* H of each layer */
    int constrained;                    /* 1: input embedding = output embedding Wy (needs E = H_last) */
    int embedding;                      /* >0 and !constrained: separate input embedding of this size;
                                           0 and !constrained: one-hot input (layer 0 reads Wx0[item]) */
    int loss;                           /* GRU4REC_LOSS_* */
    double elu_param;                   /* BPR-max: ELU(alpha) on scores first; 0 = off */
    double bpreg;                       /* BPR-max score regularisation */
    double logq;                        /* cross-entropy logQ correction weight; 0 = off */
    int batch_size;                     /* sessions per mini-batch */
    int n_sample;                       /* shared extra negatives per mini-batch */
    double sample_alpha;                /* negatives drawn with probability ~ popularity^alpha */
    long long sample_cache;             /* floats of precomputed samples (official: 10,000,000) */
    double learning_rate, momentum;     /* AdaGrad with momentum (eps 1e-6) */
    double dropout_embed, dropout_hidden;
} gru4rec_hparams;

/* The official retailrocket BPR-max values (layers [224], batch 80, n_sample 2048, ...). */
void gru4rec_hparams_default(gru4rec_hparams *hp);
/* Check consistency (sizes, probabilities in [0,1)); RC_EINVAL with a message naming the field. */
int gru4rec_hparams_check(const gru4rec_hparams *hp);
/* As JSON ("loss":"bpr-max", "layers":[224], ...); NULL on ENOMEM. Caller owns it. */
json_t *gru4rec_hparams_to_json(const gru4rec_hparams *hp);
/* Name of a loss ("cross-entropy", "bpr-max", "top1-max") and back (-1 if unknown). */
const char *gru4rec_loss_name(int loss);
int gru4rec_loss_parse(const char *name);

/* A new model with the official random initialisation (each gate block and each embedding uniform in
 * +-sqrt(6/(rows+cols)), biases 0), drawn from seed. items (N keys) is borrowed and must outlive m;
 * counts (N, may be NULL = all 1) is copied and gives gru4rec_popular and the sampling distribution.
 * The model owns its weights (writable: see gru4rec_params_buf). RC_EINVAL (bad hparams, empty vocab),
 * RC_ENOMEM. */
int gru4rec_new_random(gru4rec **out, const gru4rec_hparams *hp, const idmap *items, const int64_t *counts,
                       uint64_t seed);

/* Write m as a snapshot ROOT/NAME/VERSION (NAME usually "gru4rec"; version from snap_writer_open,
 * 0 = next). Tensors: Wy (N,H_L) By (N) [E (N,E)] l<i>.Wx (in,3H) l<i>.Wh (H,3H) l<i>.bx l<i>.bh (3H),
 * popular i32 (N), counts i64 (N); vocab "items"; meta: hparams, n_items, layers, state_size, plus every
 * field of extra_meta (borrowed, may be NULL: e.g. data fingerprint and metrics). *version (may be
 * NULL) receives the published version. Errors of core/snap.h. */
int gru4rec_save(const gru4rec *m, const char *root, const char *name, const json_t *extra_meta,
                 uint64_t *version);

/* The model's hyperparameters (borrowed). Loaded models carry the architecture fields and whatever
 * the snapshot's meta "hparams" held. */
const gru4rec_hparams *gru4rec_hparams_of(const gru4rec *m);
/* Item click counts from training (N, borrowed). */
const int64_t *gru4rec_counts(const gru4rec *m);

/* All parameters as one writable float buffer (*n floats) for the trainer and tests; NULL for a model
 * loaded from a snapshot (read-only map). Layout: see gru4rec.c (Wy, By, [E], per layer Wx Wh bx bh). */
float *gru4rec_params_buf(gru4rec *m, size_t *n);

/* ---- training ----
 * The trainer follows the official fit(): session-parallel mini-batches over sessions in the given
 * order (each of batch_size rows walks one session; a row whose session ends takes the next session
 * and its hidden state is reset to zero; when sessions run out, rows are dropped and the batch
 * shrinks), hidden state carried between steps but not back-propagated through, dropout on the input
 * embedding and on every layer's output (the dropped-out output is the carried state), output scores
 * over the B targets of the batch plus n_sample shared negatives drawn ~ count^sample_alpha from a
 * precomputed cache (sample_cache indices, refilled when used up), the loss summed over rows and
 * divided by batch_size, then AdaGrad with momentum: dense for the GRU weights, only touched rows for
 * Wy/By/E (duplicate rows' gradients summed first; a one-hot layer 0 has no h-side bias, its bh stays 0).
 * No allocation per batch. Deterministic: the same seed, data and BLAS thread count give bit-identical
 * weights (element-wise work is single-threaded in a fixed order). Not thread-safe: one thread drives
 * a trainer. */
typedef struct gru4rec_trainer gru4rec_trainer;

/* A trainer for m, which must own writable weights (gru4rec_new_random); m is borrowed and modified in
 * place by training. Allocates the optimiser state (2x the parameters), per-step buffers for
 * batch_size rows and batch_size + n_sample columns, and the sample cache. seed drives dropout and
 * sampling. RC_ESTATE (model read-only), RC_ENOMEM. */
int gru4rec_trainer_new(gru4rec_trainer **out, gru4rec *m, uint64_t seed);
void gru4rec_trainer_free(gru4rec_trainer *t); /* NULL is a no-op */

typedef struct gru4rec_epoch_stats {
    double loss;         /* mean per-batch loss weighted by rows, as the official code prints */
    int64_t events;      /* predictions trained on (sum of rows over batches) */
    int64_t batches;
    double seconds;
} gru4rec_epoch_stats;

/* Called about every `every` events with the running stats; return nonzero to stop the epoch early
 * (the epoch then ends with RC_OK and the stats so far). */
typedef int (*gru4rec_progress_fn)(void *ctx, const gru4rec_epoch_stats *so_far, int64_t total_events);

/* One epoch over sessions s = 0..n_sessions-1 in that order: clicks items[offsets[s]..offsets[s+1])
 * (indices in [0,N)). Sessions shorter than 2 are skipped. cb may be NULL. Errors: RC_EINVAL (item out of
 * range: message names the session), RC_ERANGE (loss became NaN). */
int gru4rec_train_epoch(gru4rec_trainer *t, const int32_t *items, const int64_t *offsets, int64_t n_sessions,
                        gru4rec_progress_fn cb, void *ctx, int64_t every, gru4rec_epoch_stats *st);

/* ---- test hooks (gradient checks) ---- */

/* Loss of one batch and its gradient with respect to every parameter, without updating anything:
 * rows b = 0..B-1 read in[b] and predict out[b]; h0 (B,S) is the incoming state (NULL = zeros); the
 * output columns are out[0..B) then neg[0..n_neg). training=0 disables dropout (gradient checks).
 * grad (n_params floats, gru4rec_params_buf layout) receives dL/dparams (the loss divided by
 * batch_size as in training). Returns the loss (sum over rows / batch_size). B <= batch_size and
 * n_neg <= n_sample. */
double gru4rec_batch_grad(gru4rec_trainer *t, const int32_t *in, const int32_t *out, int B, const int32_t *neg,
                          int n_neg, const float *h0, int training, float *grad);

/* The next n_sample shared negatives (borrowed until the next call; refills the cache when used up). */
const int32_t *gru4rec_trainer_next_sample(gru4rec_trainer *t);

/* The loss of score rows R (B,M) whose target of row b is column b, with the model's loss settings;
 * dR (B,M) receives dL/dR times scale (may alias R). logq_col (M) the log sampling weights for
 * cross-entropy's logQ (NULL: none). Returns the summed loss (unscaled). tmp holds 3M floats. */
double gru4rec_loss_rows(const gru4rec_hparams *hp, const float *R, int B, int M, const float *logq_col,
                         float *dR, float scale, float *tmp);

#endif
