/* trainer/eval_next.h - next-item evaluation (GRU4Rec protocol, DESIGN.md section 7) and the
 * popularity baselines.
 *
 * The harness walks the test sessions session-parallel with B lanes, as GRU4Rec's evaluation does:
 * each lane walks one session click by click; when its session ends the lane takes the next session
 * (in test order) and is flagged reset. At every step the scorer receives, for each active row b, the
 * lane (state slot) lanes[b], the current click items[b] and reset[b], and writes the scores of all N
 * items as the NEXT click into row b of scores (B,N). The harness ranks the true next item with ties
 * counted against the model (core/metrics.h: rank = 1 + #other items with score >= target's) and
 * accumulates Recall@k and MRR@k. Every click but the last of a session is one prediction, so the
 * count equals sess_n_predictions(test). Rows are packed: when fewer than B sessions remain, B shrinks
 * and lanes[] tells which slot each row is; a lane's slot number never changes while it walks a session.
 *
 * A model scorer (next_model_scorer: any model with the `next` capability) keeps h (B_max,S); on
 * reset[b] it zeroes the row of lanes[b], steps rows with items[b] (gathering h rows by lanes[b]) and
 * scores them. A baseline ignores items and copies one static score row into every row.
 */
#ifndef RECD_EVAL_NEXT_H
#define RECD_EVAL_NEXT_H

#include <stdint.h>

#include "core/itemscore.h"
#include "core/metrics.h"
#include "models/model.h"
#include "trainer/sessions.h"

typedef struct next_scorer {
    void *ctx;
    /* Optional: called once before the walk with the number of lanes B_max (allocate per-lane state
     * there). Returns RC_OK or an RC code with a message (the evaluation stops). */
    int (*begin)(void *ctx, int max_lanes);
    /* Required. lanes, items, reset are (B); scores is (B,N) row-major, N = test->n_items, owned by the
     * harness (write every entry of the B rows). Borrowed pointers valid during the call only.
     * Returns RC_OK or an RC code with a message (the evaluation stops and returns it). */
    int (*score)(void *ctx, const int *lanes, const int32_t *items, const uint8_t *reset, int B,
                 float *scores);
    /* Optional: called once after the walk, also after a failure, and also when begin itself failed
     * (so it must cope with a half-done begin: free what is non-NULL). */
    void (*end)(void *ctx);
} next_scorer;

typedef struct next_eval_opts {
    int lanes;                            /* B_max, sessions scored in parallel (default 64) */
    int ncut;                             /* cutoffs (default 3: 5, 10, 20) */
    int cutoffs[METRICS_MAX_CUTOFFS];
    int progress;                         /* 1: progress lines on stderr (log_info) every ~10% */
    const char *name;                     /* label for progress lines (default "eval") */
} next_eval_opts;

void next_eval_opts_default(next_eval_opts *o);

/* Evaluate scorer sc on test (items re-indexed to the model's vocabulary: see sess_split and
 * sess_reindex; every item in [0, test->n_items)). *acc is initialised and filled.
 * Allocates the (B,N) score buffer and rank scratch once (B_max * N floats).
 * Errors: RC_EINVAL (bad options, no items, a test item outside [0, N): the message names the
 * session), RC_ENOMEM, or whatever sc returns. */
int next_eval(const sess_data *test, const next_scorer *sc, const next_eval_opts *o, metrics_topk *acc);

/* Format acc as "NAME recall@5=0.1234 ... mrr@5=... ... predictions=N" into buf (cap bytes). */
void next_eval_format(const metrics_topk *acc, const char *name, char *buf, size_t cap);
/* The trainers' result line: "NAME recall@20=.. mrr@20=.. recall@10=.. mrr@10=.. recall@5=.. mrr@5=..
 * predictions=N" (pairs by cutoff, largest first) into buf (cap bytes). */
void next_eval_format_pairs(const metrics_topk *acc, const char *name, char *buf, size_t cap);

/* ---- any model with the `next` capability (models/model.h) -------------------------------------- */

/* The scorer of a loaded `next` model: per-lane states (S words each, all zero bits = new session,
 * copied with memcpy so int32 states survive), stepped with type->next->step, scored with the core item
 * scorer (core/itemscore.h) when type->next->item_matrix describes one, else with type->next->score.
 * Fields are private to eval_next.c. */
typedef struct next_model_scorer {
    const model_type *type; /* borrowed */
    const void *m;          /* the loaded handle, borrowed */
    const model_next_ops *ops;
    itemscore *isc;         /* owned; NULL: type->next->score */
    size_t q_offset;        /* the query's first float in a state (item matrix) */
    void *scratch;          /* type->next scratch for `lanes` states (begin .. end) */
    float *h;               /* (lanes,S) per-lane state */
    float *hb;              /* (lanes,S) gathered rows */
    size_t S;
    int lanes;
    int64_t n_items;
} next_model_scorer;

/* Fill ms and sc (sc->ctx = ms) to evaluate handle m of type (both borrowed: they must outlive ms).
 * When type->next->item_matrix describes the scores, they come from an item scorer built with kernel and
 * dt (ITEMSCORE_BLAS + ITEMSCORE_F32: bit-identical to gru4rec_score for GRU4Rec), after a check that
 * it agrees with type->next->score on a few stepped states (else, with a warning, type->next->score).
 * The harness's test data must hold exactly the model's items (N of type->items, or of the item matrix):
 * re-index it with sess_reindex. RC_OK; RC_EINVAL (type without `next`), RC_ENOMEM (messages set).
 * Release with next_model_scorer_free (also after a failed init; ms zeroed first). */
int next_model_scorer_init(next_model_scorer *ms, next_scorer *sc, const model_type *type, const void *m,
                           itemscore_kernel kernel, itemscore_dtype dt);
void next_model_scorer_free(next_model_scorer *ms); /* NULL or zeroed: no-op; safe twice */

/* Evaluate m (a handle of type `type`, which has `next`) on test with next_eval: ITEMSCORE_BLAS f32 (the
 * model's own scores, bit for bit), `lanes` sessions at once, progress lines on stderr when progress
 * (labelled with the type's name). *acc filled. Errors of next_model_scorer_init and next_eval. */
int next_eval_model(const sess_data *test, const model_type *type, const void *m, int lanes, int progress,
                    metrics_topk *acc);
/* The item kernel in use (ITEMSCORE_BLAS... ), or -1 when scores come from type->next->score. */
int next_model_scorer_kernel(const next_model_scorer *ms);

/* ---- baselines -------------------------------------------------------------------------------- */

/* A static scorer: every row gets the same scores (N floats, borrowed: must outlive the evaluation). */
typedef struct next_static {
    const float *scores;
    int64_t n;
} next_static;
/* Fill sc with the static scorer over st (borrowed). */
void next_static_scorer(next_scorer *sc, next_static *st);

/* pop: score[i] = clicks of item i in train (train->n_items floats written to scores). */
void next_pop_scores(const sess_data *train, float *scores);
/* recentpop: score[i] = clicks of item i in train at a time t > max_t - window, with max_t the largest
 * training timestamp (window in the data's unit, e.g. 86400000 for 24 h of milliseconds; max_t - window
 * saturates instead of overflowing). */
void next_recentpop_scores(const sess_data *train, int64_t window, float *scores);

/* `recd eval pop|recentpop` (argv[0] is the model name): --train F --test F, or --data F with the
 * split flags of `recd split sessions`; --eval_lanes B, --window-days D (recentpop, default 1). Prints the
 * next_eval_format line on stdout. Exit status 0 / 1 (runtime) / 2 (usage). */
int eval_pop_cmd(int argc, char **argv);
int eval_recentpop_cmd(int argc, char **argv);

/* `recd eval MODEL --snapshot DIR (--test F | --train F --test F | --data F) [settings]` for any model
 * with `next` (argv[0] is MODEL, the snapshot's meta "model" must be it): loads the snapshot (DIR a
 * version folder or a model folder: its newest version), reads the clicks (--test alone: an already
 * split test file; --train/--test: files of `recd split sessions`; --data: preprocessed and split with
 * the session settings of SESS_FLAG_ENTRIES (--item-col, --split-time, ...), whose defaults are the
 * snapshot's own meta config.data), re-indexes the test
 * sessions to the model's item vocabulary (clicks on unknown items dropped, then sessions shorter than
 * 2), evaluates with next_model_scorer (--score_kernel, --score_dtype; default blas/f32) and prints
 * next_eval_format_pairs's line (label --name, default MODEL) on stdout. Settings through a core/config.h
 * table (--help lists them). Exit status 0 / 1 (runtime) / 2 (usage). */
int next_eval_cmd(int argc, char **argv);

#endif
