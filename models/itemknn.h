/* models/itemknn.h - session-based item-to-item nearest neighbours ("item-kNN"), served through `next`.
 *
 * Glossary of letters used in shape comments: N items, E training clicks (events), Q training
 * sessions, M neighbours kept per item, W co-occurrence window (positions), S clicks a session state
 * remembers (state words), K = nnz, the neighbours actually stored (<= N*M), B sessions scored
 * together.
 *
 * Training (GRU4Rec's ItemKNN baseline, hidasib/GRU4Rec baselines.py, extended):
 *   session weight   ws = 0.5^((t_max - t_s) / half_life), t_s the session's last click, t_max the
 *                    latest click of training (1 when half_life is 0 or no timestamps are given);
 *   pair weight      a click on i at position p and a click on j != i at position q of the same
 *                    session, 0 < |p - q| <= W, add ws * position_decay^(|p-q|-1) * (q < p ? backward : 1)
 *                    to cooc(i, j) (a session counts an item as often as it is clicked);
 *   support          supp_i = sum of ws over the clicks on i;
 *   similarity       cosine:      sim(i,j) = cooc(i,j) / ((supp_i + lambda)^alpha * (supp_j + lambda)^(1-alpha))
 *                    conditional: sim(i,j) = cooc(i,j) / (supp_i + lambda)      (P(j | i); alpha unused)
 *                    (cosine, alpha 0.5, lambda 20, W unbounded, position_decay 1, backward 1,
 *                    half_life 0, decay 0, pop_prior 0, M 100: the reference baseline);
 *   neighbours       the M largest sim(i, .) > 0 of each item, by sim descending then index ascending,
 *                    stored as CSR: offsets (N+1) i64, nbr (K) i32, sim (K) f32.
 *   popularity       pop_j = supp_j (recency-weighted clicks), popular = items by pop descending.
 * Serving: a session state is S int32 bit patterns, item + 1 of the last S clicks, most recent first
 *   (0 = empty slot; all zero = new session). step shifts the state and puts the click first. score:
 *     score(j) = pop_prior * pop_j / max pop  +  sum over remembered clicks a = 0..S-1 (a = 0 most recent)
 *                of decay^a * sim(h_a, j)
 *   (decay 0 scores with the last click only). The popularity term orders items without a neighbour
 *   instead of leaving them tied.
 *
 * Handles are immutable after build/load and thread-safe for concurrent callers (score and step need
 * no scratch). A loaded handle points into the snapshot's map (zero copy): the snap must outlive it.
 */
#ifndef RECD_ITEMKNN_H
#define RECD_ITEMKNN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/idmap.h"
#include "core/snap.h"
#include "models/model.h"

typedef struct itemknn itemknn;

extern const model_type itemknn_type;

enum { ITEMKNN_COSINE = 0, ITEMKNN_CONDITIONAL = 1 };
#define ITEMKNN_MAX_HISTORY 256

/* Defaults (one place: itemknn_hparams_default and the trainer's settings table use them). Tuned on the
 * Globo.com news split (a validation day cut from training agreed with the test day): recency, a
 * popularity blend and forward-weighted, position-decayed pairs matter most there. */
/* Largest |similarity| and popularity a loaded snapshot may hold: scores stay finite (sums of a few
 * thousand terms at most). */
#define ITEMKNN_MAX_WEIGHT 1e9
#define ITEMKNN_DEF_NEIGHBOURS 100
#define ITEMKNN_DEF_WINDOW 128 /* Globo sessions have at most 124 clicks: the whole session there */
#define ITEMKNN_DEF_HISTORY 16
#define ITEMKNN_DEF_NORMALIZE "conditional"
#define ITEMKNN_DEF_ALPHA 0.5
#define ITEMKNN_DEF_LAMBDA 20
#define ITEMKNN_DEF_POSITION_DECAY 0.5
#define ITEMKNN_DEF_BACKWARD 0.5
#define ITEMKNN_DEF_HALF_LIFE_DAYS 0.1 /* the trainer converts days to the data's timestamp unit */
#define ITEMKNN_DEF_DECAY 0.5
#define ITEMKNN_DEF_POP_PRIOR 0.03

typedef struct itemknn_hparams {
    int neighbours;        /* M, 1..100000 */
    int window;            /* W, >= 1: co-occurrence distance in positions (>= the longest session: all pairs) */
    int history;           /* S, 1..ITEMKNN_MAX_HISTORY: clicks a state remembers */
    int normalize;         /* ITEMKNN_COSINE | ITEMKNN_CONDITIONAL */
    double alpha;          /* cosine exponent of supp_i, in [0,1] */
    double lambda;         /* shrinkage added to the supports, >= 0 */
    double position_decay; /* (0,1]: weight of a pair d positions apart is position_decay^(d-1) */
    double backward;       /* [0,1]: weight of a pair where j precedes i (1: symmetric) */
    double half_life;      /* >= 0, in timestamp units: session recency weight; 0 = off (the default here:
                              itemknn_hparams_default knows no time unit) */
    double decay;          /* [0,1]: score weight of the click a positions back is decay^a */
    double pop_prior;      /* >= 0: weight of normalised popularity in the scores */
} itemknn_hparams;

/* Training sessions: the clicks of session s are items[offsets[s] .. offsets[s+1]), oldest first.
 * Every pointer is borrowed for the duration of itemknn_build only. */
typedef struct itemknn_sessions {
    const int32_t *items;   /* (E) item index in [0,N) */
    const int64_t *offsets; /* (Q+1), offsets[0] = 0, non-decreasing, offsets[Q] = E */
    const int64_t *times;   /* (E) click timestamps, or NULL (no recency weighting) */
    int64_t n_sessions;     /* Q */
} itemknn_sessions;

/* The ITEMKNN_DEF_* values, half_life 0. */
void itemknn_hparams_default(itemknn_hparams *hp);
/* RC_EINVAL with a message naming the field when a value is out of the bounds above. */
int itemknn_hparams_check(const itemknn_hparams *hp);
/* As JSON {"neighbours":..,"normalize":"cosine",..} (NULL on ENOMEM, caller owns), and back: fields
 * absent from o keep their value in hp; RC_EINVAL (wrong type, unknown normalize) / hparams_check. */
json_t *itemknn_hparams_to_json(const itemknn_hparams *hp);
int itemknn_hparams_from_json(itemknn_hparams *hp, const json_t *o);
/* "cosine" | "conditional" and back (-1 when unknown). */
const char *itemknn_normalize_name(int normalize);
int itemknn_normalize_parse(const char *name);

/* Build the model from sessions d over vocabulary items (N = idmap_size(items) keys; borrowed, must
 * outlive the model). threads >= 1 split the items among worker threads (same result for any count).
 * Memory beyond the result: 16 bytes per click (inverted index) and, per thread, 20 bytes per item (row
 * accumulator 8, mark 4, row entry 8). Time: about clicks x 2W pair visits (W bounds a long session's cost:
 * without it a session of L clicks costs L^2).
 * Errors: RC_EINVAL (bad hparams, empty vocabulary, an item outside [0,N), offsets not monotone),
 * RC_ENOMEM. *out owned by the caller (itemknn_free). */
int itemknn_build(itemknn **out, const itemknn_hparams *hp, const idmap *items, const itemknn_sessions *d,
                  int threads);
/* The same model by the obvious method: dense (N,N) f64 co-occurrence filled pair by pair, each row
 * normalised and sorted. O(N^2) memory: the reference for tests (tiny N), not for real data. */
int itemknn_build_naive(itemknn **out, const itemknn_hparams *hp, const idmap *items, const itemknn_sessions *d);
void itemknn_free(itemknn *m); /* NULL is a no-op */

/* Write m as a snapshot ROOT/NAME/VERSION (NAME usually "itemknn"; version 0 = next). Tensors: offsets
 * i64 (N+1), nbr i32 (K), sim f32 (K), pop f32 (N), popular i32 (N); vocab "items"; meta: hparams,
 * n_items, nnz, state_size, state_fingerprint, plus every field of extra_meta (borrowed, may be NULL).
 * *version (may be NULL) receives the published version. Errors of core/snap.h. */
int itemknn_save(const itemknn *m, const char *root, const char *name, const json_t *extra_meta,
                 uint64_t *version);
/* Load from a validated snapshot (zero copy: offsets, nbr, sim, pop and popular point into s's map).
 * RC_ECORRUPT naming the tensor (missing, misshapen, offsets not monotone from 0 to nnz, a neighbour
 * index outside [0,N), popular not a permutation of [0,N), a similarity with |sim| > ITEMKNN_MAX_WEIGHT
 * or a popularity outside [0, ITEMKNN_MAX_WEIGHT], NaN and inf included) or the meta field; RC_ENOMEM. */
int itemknn_load(itemknn **out, const snap *s);

int64_t itemknn_n_items(const itemknn *m);
int64_t itemknn_nnz(const itemknn *m);               /* K */
size_t itemknn_state_size(const itemknn *m);         /* S */
const itemknn_hparams *itemknn_hparams_of(const itemknn *m); /* borrowed */
const idmap *itemknn_items(const itemknn *m);        /* borrowed, lives as long as m */
const int32_t *itemknn_popular(const itemknn *m);    /* (N) most popular first; borrowed */
/* Hash of the vocabulary and S: equal for two versions whose session states are interchangeable. */
uint64_t itemknn_state_fingerprint(const itemknn *m);
/* The neighbours of item i in [0,N): returns their count n; *nbr and *sim (n each, best first) are
 * borrowed from m. */
int64_t itemknn_neighbours(const itemknn *m, int32_t i, const int32_t **nbr, const float **sim);

/* Advance B states (B,S) by one click each (items (B) in [0,N)). No allocation. */
void itemknn_step(const itemknn *m, float *state, const int32_t *items, int B);
/* Scores of every item for B states: state (B,S), scores (B,N) (caller's buffer, every entry written).
 * State words outside 1..N are skipped. No allocation. */
void itemknn_score(const itemknn *m, const float *state, int B, float *scores);

#endif
