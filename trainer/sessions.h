/* trainer/sessions.h - click-stream data for session-based models: reading, GRU4Rec preprocessing,
 * the time split, and the evaluation protocol (DESIGN.md section 7).
 *
 * A sess_data holds sessions contiguously: the clicks of session s are items[offsets[s] ..
 * offsets[s+1]) in time order (file order when sort_by_time is false), sessions ordered by the time of their first click (ties by id).
 * Items are dense indices into `items_vocab` (external ids kept as strings: never narrowed).
 */
#ifndef RECD_SESSIONS_H
#define RECD_SESSIONS_H

#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "core/idmap.h"

typedef struct sess_data {
    int64_t n_events, n_sessions;
    int32_t *items;     /* (n_events) item index of each click */
    int64_t *times;     /* (n_events) timestamp of each click, in the file's unit */
    int64_t *offsets;   /* (n_sessions+1) start of each session in items/times */
    idmap *item_vocab;  /* index -> external item id; may be shared: see owns_vocab */
    idmap *sess_vocab;  /* index -> external session id (NULL if not kept) */
    int owns_vocab;     /* 1: sess_free frees item_vocab */
    /* Added by trainer/sessions.c: */
    int64_t *sess_ids;  /* (n_sessions) index of each session in sess_vocab (NULL if sess_vocab is NULL);
                           sess_vocab may also hold the ids of sessions dropped by filtering */
    int owns_sess_vocab;/* 1: sess_free frees sess_vocab */
    int64_t n_items;    /* item indices are in [0, n_items); == idmap_size(item_vocab) */
} sess_data;

/* Frees the arrays (and the vocabularies it owns) and zeroes d. NULL or a zeroed d is a no-op. */
void sess_free(sess_data *d);

/* ---------------------------------------------------------------------------------------------------
 * Options. One struct drives loading, preprocessing and the split; its fields use core/config.h
 * types so a trainer can embed it in its own settings struct with SESS_CFG_ENTRIES (see below).
 * ------------------------------------------------------------------------------------------------- */
typedef struct sess_opts {
    char *session_col;          /* header name of the session column */
    char *item_col;             /* header name of the item column */
    char *time_col;             /* header name of the time column */
    char *time_unit;            /* "auto" | "ms" | "s": unit of the time column. auto: ms when the largest
                                   timestamp is >= 1e11 (year 5138 in seconds), else s */
    long long split_time;       /* T, in the file's unit; 0 = the largest timestamp */
    /* (defaults: SESS_CFG_ENTRIES_AT below) */
    double days;                /* N: test window length in days */
    int sort_by_time;           /* 1: stable-sort each session's clicks by time */
    int drop_repeats;           /* 1: drop immediate repeats of an item in a session */
    long long min_session_len;  /* sessions shorter than this are dropped (<=1 disables) */
    long long min_item_support; /* items with fewer clicks are dropped (<=1 disables) */
    int verbose;                /* 1: report each step's counts on stderr (log_info) */
} sess_opts;

/* The defaults of the table below (the one place they are written): strings point to the table's
 * static literals, never to be freed (cfg_defaults on a table with SESS_CFG_ENTRIES gives owned copies
 * instead, freed by cfg_release); verbose = 1. */
void sess_opts_default(sess_opts *o);

/* cfg_def entries for a sess_opts embedded as member M of settings struct T, each name prefixed by the
 * string literal P: P"session_col", P"item_col", P"time_col", P"time_unit", P"split_time", P"days",
 * P"sort_by_time", P"drop_repeats", P"min_session_len", P"min_item_support" (verbose is not a setting:
 * commands have `quiet`). Needs core/config.h included before use. The defaults and bounds of every
 * session setting are written here only.
 *   SESS_CFG_ENTRIES(T, M): prefix "data." for the trainers (a "data" object in the config file, and
 *     `--data.item_col item_id` on the command line; the snapshot's meta config.data keeps them).
 *   SESS_FLAG_ENTRIES(T, M): no prefix, for the commands whose input is click files (`recd split
 *     sessions`, `recd eval MODEL`: `--item-col click_article_id --split-time T`; a snapshot's meta
 *     config.data object loads into such a table with cfg_load_json), plus the old flags --no-sort and
 *     --keep-repeats refused with the setting that replaces them. */
#define SESS_CFG_ENTRIES_AT(P, T, M)                                                                  \
    CFG_STRING(P "session_col", T, M.session_col, "session_id", "session id column"),                 \
    CFG_STRING(P "item_col", T, M.item_col, "item_id", "item id column"),                             \
    CFG_STRING(P "time_col", T, M.time_col, "timestamp", "timestamp column"),                         \
    CFG_ENUM(P "time_unit", T, M.time_unit, "auto", "auto|ms|s",                                      \
             "unit of the timestamps (auto: ms if the largest is >= 1e11, else s)"),                  \
    CFG_INT(P "split_time", T, M.split_time, 0, 0, 9.2e18, "split time T in that unit (0: the largest timestamp)"), \
    CFG_DOUBLE(P "days", T, M.days, 1, 0, 1e6, "test = sessions starting at or after T - days"),      \
    CFG_BOOL(P "sort_by_time", T, M.sort_by_time, 1, "stable-sort each session by time (false: file order)"), \
    CFG_BOOL(P "drop_repeats", T, M.drop_repeats, 1, "drop immediate repeats of an item in a session"), \
    CFG_INT(P "min_session_len", T, M.min_session_len, 2, 0, 1e9, "drop shorter sessions (<= 1: off)"), \
    CFG_INT(P "min_item_support", T, M.min_item_support, 5, 0, 1e9, "drop items with fewer clicks (<= 1: off)")
#define SESS_CFG_ENTRIES(T, M) SESS_CFG_ENTRIES_AT("data.", T, M)
#define SESS_FLAG_ENTRIES(T, M)                                                                       \
    SESS_CFG_ENTRIES_AT("", T, M),                                                                    \
    CFG_RENAMED_NOTE("no_sort", "sort_by_time", "write --sort_by_time false"),                        \
    CFG_RENAMED_NOTE("keep_repeats", "drop_repeats", "write --drop_repeats false")

/* ---------------------------------------------------------------------------------------------------
 * Loading and preprocessing
 * ------------------------------------------------------------------------------------------------- */

/* Read a click-stream: CSV or TSV (separator guessed from the header line), plain or gzip, with a
 * header naming the columns o->session_col, o->item_col, o->time_col (other columns are ignored).
 * Ids are kept as strings (item_vocab, sess_vocab: owned by d). Timestamps must be integers (a decimal
 * like 1396839069.277 is rounded to the nearest integer). Clicks are grouped by session; if
 * o->sort_by_time, each session is stable-sorted by time (else file order is kept). Sessions are
 * ordered by their first click's time, ties by session id (numeric when every id is an integer,
 * else bytewise). No filtering: that is sess_preprocess. d is overwritten (not freed first).
 * Errors (message names file, line and field): RC_ENOTFOUND / RC_EIO (file), RC_EFORMAT (missing
 * column, short row, bad timestamp, bad quoting, an empty id or one over IDMAP_MAX_KEY bytes), RC_ERANGE (over 2^31-1 items), RC_ENOMEM. */
int sess_load(sess_data *d, const char *path, const sess_opts *o);

/* The GRU4Rec preprocessing on loaded data, in place: if o->drop_repeats drop immediate repeats, then
 * repeat { drop sessions shorter than min_session_len; drop items with fewer than min_item_support
 * clicks } until nothing changes. Repeats that become adjacent when an item between them is dropped
 * are kept (as the official preprocessing does). Item indices and vocab are unchanged (dropped items
 * simply no longer occur; n_items stays). Sessions are re-ordered by their (possibly new) first click,
 * ties by id. Reports counts (log_info) when o->verbose. RC_ENOMEM. */
int sess_preprocess(sess_data *d, const sess_opts *o);

/* Per-item click counts: counts is (n_items), filled. */
void sess_item_counts(const sess_data *d, int64_t *counts);

/* ---------------------------------------------------------------------------------------------------
 * The time split (GRU4Rec protocol, DESIGN.md section 7)
 *
 * With cutoff C = T - days * day (day = 86400000 for ms, 86400 for s):
 *   test  = sessions whose FIRST click is at or after C (their clicks after T are kept too: T bounds
 *           nothing but the cutoff);
 *   train = the clicks before C of the other sessions (a session that crosses C is cut at C), then
 *           sessions shorter than min_session_len dropped;
 *   train gets its own compact item vocabulary (items that occur in train, in order of first
 *   occurrence); test is re-indexed to it: its clicks on items unseen in train are dropped, then its
 *   sessions with fewer than 2 clicks are dropped (they give no prediction).
 * This literal reading of the issue reproduces its Globo figures exactly (T = 1508209200000 ms, N = 1:
 * 2,738,952 train events in 964,056 sessions over 11,901 items; 64,965 test predictions; on the way:
 * 2,988,181 clicks loaded, 0 repeats, 7 filter rounds leave 2,928,412 clicks in 1,030,356 sessions; the
 * cut at C removes 901 train clicks and 97 sessions; 65,109 test clicks on unseen items dropped) and
 * the baselines (pop Recall@20 0.0004; recentpop Recall@20 0.1779, MRR@20 0.1007). Not used: the
 * official GRU4Rec rsc15 script's split by each session's LAST click, or bounding test sessions by T.
 * Test sessions are ordered by their first click after the unseen-item filter (as test.tsv reads back).
 * ------------------------------------------------------------------------------------------------- */
typedef struct sess_split {
    sess_data train;          /* owns the item vocabulary and the session vocabulary */
    sess_data test;           /* borrows train's vocabularies (free train last, or use sess_split_free) */
    int64_t n_predictions;    /* test clicks after the first of their session */
    int64_t split_time;       /* T actually used */
    int64_t cutoff;           /* C = T - days */
    int64_t test_dropped_unseen; /* test clicks dropped because their item is not in train */
} sess_split;

/* Split preprocessed data d (consumed: d is freed and zeroed on success and on failure).
 * C is saturated at INT64_MIN (no overflow for any timestamps or days).
 * RC_EINVAL (no train data left, a bad time_unit, days negative or NaN), RC_ENOMEM. Reports counts when o->verbose. */
int sess_split_data(sess_split *sp, sess_data *d, const sess_opts *o);

/* Everything in one call: sess_load, sess_preprocess, sess_split_data; their errors, the messages of
 * the last two prefixed with "path: ". */
int sess_prepare(sess_split *sp, const char *path, const sess_opts *o);

/* Re-index test (loaded with its own vocabulary, e.g. from a test.tsv) to train's item vocabulary:
 * clicks on items unseen in train are dropped, then sessions with < 2 clicks. test's own item vocab is
 * freed if owned; test then borrows train->item_vocab (train must outlive it). Only train->item_vocab and
 * train->n_items are read (a model's vocabulary can be passed in a zeroed sess_data). Sessions are
 * re-ordered by first click. *dropped (may be NULL) receives the number of clicks dropped. RC_ENOMEM. */
int sess_reindex(sess_data *test, const sess_data *train, int64_t *dropped);

/* Number of predictions of d: sum over sessions of (length - 1). */
int64_t sess_n_predictions(const sess_data *d);

/* Frees train and test. */
void sess_split_free(sess_split *sp);

/* Write d as TSV with the header "session_id\titem_id\ttimestamp" (external ids), sessions in d's
 * order. Needs d->sess_vocab. An id holding a tab or starting with '"' is written quoted ("" for a
 * quote), so sess_load reads back the same bytes. Errors name the path: RC_EINVAL (no sess_vocab, or
 * an id holding a newline or NUL byte), RC_EIO (write error). On error a regular file is removed. */
int sess_write_tsv(const sess_data *d, const char *path);

/* Day length in the unit o->time_unit resolves to for data whose largest timestamp is max_time. */
int64_t sess_day_units(const sess_opts *o, int64_t max_time);

/* ---------------------------------------------------------------------------------------------------
 * Evaluation input (recd eval MODEL; the command-line settings are SESS_FLAG_ENTRIES above)
 * ------------------------------------------------------------------------------------------------- */
/* Load data for evaluation: either (train_path, test_path) both set, read as already-preprocessed
 * click files (no filtering: test re-indexed to train's vocabulary), or data_path, run through
 * sess_prepare. Exactly one of the two forms must be given (RC_EINVAL otherwise). */
int sess_load_for_eval(sess_split *sp, const char *data_path, const char *train_path, const char *test_path,
                       const sess_opts *o);

/* ---------------------------------------------------------------------------------------------------
 * The command line of a session trainer (recd train gru4rec|itemknn ...)
 * ------------------------------------------------------------------------------------------------- */
/* Read argv (argv[0] the model name) into cfg, a struct of the settings table defs already filled with
 * cfg_defaults: --help / -h prints usage(stdout); -c FILE is read first, then every --SETTING VALUE
 * (cfg_parse_args: later wins), then --data F / --data=F (a raw click file, split by the data.* settings:
 * not a setting, as `data` is the group of those in a file). train_off / test_off: offsets in cfg of the
 * table's `train` and `test` settings (char *). --data with --train/--test, an unexpected argument and no
 * training data at all are usage errors (one line on stderr; the last also prints usage(stderr)).
 * Returns -1 to go on, *data set (NULL when --train is given) and *cfg_path (NULL without -c; both point
 * into argv), else the exit status: 0 after --help, 2 for a usage error. */
int sess_trainer_args(const cfg_def *defs, void *cfg, int argc, char **argv, const char *prog,
                      void (*usage)(FILE *), size_t train_off, size_t test_off, const char **data,
                      const char **cfg_path);

#endif
