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
 * A GRU4Rec scorer keeps h (B_max,S); on reset[b] it zeroes h[lanes[b]], steps rows with items[b]
 * (gathering h rows by lanes[b]) and calls gru4rec_score. A baseline ignores items and copies one
 * static score row into every row.
 */
#ifndef RECD_EVAL_NEXT_H
#define RECD_EVAL_NEXT_H

#include <stdint.h>

#include "core/metrics.h"
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
 * split flags of `recd split sessions`; --lanes B, --window-days D (recentpop, default 1). Prints the
 * next_eval_format line on stdout. Exit status 0 / 1 (runtime) / 2 (usage). */
int eval_pop_cmd(int argc, char **argv);
int eval_recentpop_cmd(int argc, char **argv);

#endif
