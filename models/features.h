/* models/features.h - feature columns for Wide & Deep: the spec that turns raw rows (CSV fields or the
 * JSON features of a /v1/rank request) into model inputs. The same spec drives training and serving and
 * is stored in the snapshot (feat_spec_to_json / feat_spec_from_json).
 *
 * Input columns are the raw fields of a row, named by `columns` in the config (CSV order). A feature is
 * built from one input column (categorical, numeric) or from other features (crossed):
 *
 *   categorical  "vocab": [..] given, or "vocab": "learn" (from the training file, keeping values seen at
 *                least "min_count" times, most frequent first), ids 0..V-1, plus one OOV bucket (id V) for
 *                unknown and missing values: card = V + 1. Values longer than IDMAP_MAX_KEY bytes are
 *                never learned (OOV); a given vocabulary refuses them.
 *                "hash_buckets": N instead hashes the value into N buckets (missing hashes as ""): card N.
 *   numeric      a real value; "log1p": true applies log(1+max(x,0)); "normalize": true standardises with
 *                the training mean and standard deviation (learned in the first pass, stored in the spec);
 *                missing -> "default" if given, else the training mean (0 after normalisation).
 *                "boundaries": [b0 < b1 < ..] bucketises instead: id = number of boundaries <= x (the raw
 *                value, before log1p), card = nb + 1 (missing -> bucket of the default / mean).
 *   crossed      "cross": ["f1","f2",..] names of categorical or bucketised features defined before it;
 *                id = hash of their ids (core/hash.h) into "hash_buckets" buckets.
 *
 * Each feature may go to the wide part ("wide": true: one weight per id, or one weight times the value for
 * a raw numeric) and/or the deep part ("deep": "dense" for a raw numeric, "onehot" or "embed" with "dim"
 * for id features). Wide weights of all wide features live in one vector (feature f owns
 * [wide_off, wide_off + card)); the deep input x is (deep_dim): raw numerics, one-hot blocks and
 * embedding blocks at each feature's deep_off.
 *
 * Strings in values: leading and trailing spaces are trimmed ("Adult" writes ", "); the values listed in
 * "missing" (default ["?", ""]) mean missing.
 *
 * feat_spec_to_json writes the same format plus what training learned: "vocab" (the learned list, with
 * "learned": true), "mean" and "std" of numerics. Hashing (core/hash.h) is seeded by the feature name, so
 * renaming a hashed feature changes its buckets.
 *
 * Threads: a finished spec is read-only; feat_encode may run on many threads at once.
 */
#ifndef RECD_FEATURES_H
#define RECD_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/idmap.h"

typedef enum { FEAT_CATEGORICAL = 1, FEAT_NUMERIC = 2, FEAT_CROSSED = 3 } feat_kind;
typedef enum { FEAT_DEEP_NONE = 0, FEAT_DEEP_DENSE = 1, FEAT_DEEP_ONEHOT = 2, FEAT_DEEP_EMBED = 3 } feat_deep;

#define FEAT_MAX_CROSS 8
#define FEAT_MAX_INPUTS 1024 /* input columns of a spec (encoders keep one raw value per input on the stack) */

typedef struct feat_col {
    char *name;
    feat_kind kind;
    int input;            /* index of the input column (categorical, numeric); -1 for crossed */
    /* categorical */
    idmap *vocab;         /* given or learned (NULL when hashed or not yet learned) */
    int learn;            /* 1: vocab learned from training data (then kept in the spec) */
    int64_t min_count;    /* learning threshold */
    int64_t hash_buckets; /* > 0: hashed categorical or crossed */
    /* numeric */
    int log1p, normalize, has_default;
    double mean, std, defval;
    double *bounds;       /* (nbounds) ascending; bucketised when nbounds > 0 */
    int nbounds;
    /* crossed */
    int cross[FEAT_MAX_CROSS]; /* feature indices, each < this feature's index */
    int ncross;
    /* derived layout */
    int64_t card;         /* number of ids (0 for a raw numeric) */
    int wide;             /* 1: in the wide part */
    feat_deep deep;
    int dim;              /* embedding dimension (FEAT_DEEP_EMBED) */
    int64_t wide_off;     /* first wide weight of this feature (wide) */
    int deep_off;         /* first deep input of this feature (deep) */
    int emb;              /* index among embedded features (FEAT_DEEP_EMBED), else -1 */
    uint64_t seed;        /* hash seed of a hashed or crossed feature (from its name), set by feat_spec_finish */
} feat_col;

typedef struct feat_spec {
    int ninputs;
    char **inputs;        /* (ninputs) input column names, CSV order */
    int label;            /* input index of the label column, -1 when serving only */
    char **label_pos;     /* values meaning 1 (after trimming) */
    int nlabel_pos;
    char **label_neg;     /* values meaning 0; when empty, anything else than a positive is 0 */
    int nlabel_neg;
    char **missing;       /* values meaning missing (after trimming) */
    int nmissing;
    int nfeat;
    feat_col *f;          /* (nfeat) */
    /* layout, set by feat_spec_finish */
    int64_t wide_dim;     /* total wide weights */
    int nwide;            /* wide slots per row (number of wide features) */
    int deep_dim;         /* width of the deep input x */
    int ndense;           /* dense (numeric + one-hot) part of x is filled by feat_encode; embeddings by the model */
    int nemb;             /* embedded features per row */
    int finished;         /* 1 once vocabularies and statistics are known (ready to encode) */
} feat_spec;

/* One encoded row. Pointers belong to the caller (a batch buffer); sizes from the spec:
 *   wide_idx (nwide) global wide weight index of each wide feature, wide_val (nwide) its value
 *   (1 for an id, the processed value for a raw numeric); dense (deep_dim): numerics and one-hot blocks
 *   filled, embedding blocks zeroed; emb_id (nemb) the id of each embedded feature. */
typedef struct feat_row {
    int64_t *wide_idx;
    float *wide_val;
    float *dense;
    int64_t *emb_id;
} feat_row;

/* A raw input value: missing, a string (not NUL-terminated necessarily: s[0..len)) or a number (JSON). */
typedef enum { FEAT_V_MISSING = 0, FEAT_V_STR = 1, FEAT_V_NUM = 2 } feat_vkind;
typedef struct feat_value {
    feat_vkind kind;
    const char *s;
    size_t len;
    double num;
} feat_value;

/* Parse a spec from the config's JSON pieces: `columns` (array of input names), `features` (array of
 * feature objects, see the top of this file), `label` (input name, may be NULL for serving-only specs),
 * `label_positive`/`label_negative` (arrays of strings, may be NULL), `missing` (array, NULL = ["?",""]).
 * Errors: RC_EINVAL with a message naming the feature and the field (also for a feature that reads the
 * label column). On success *out is owned by the
 * caller (feat_spec_free). The spec is not finished: call feat_learn_* then feat_spec_finish, or
 * feat_spec_finish directly when nothing is learned. */
int feat_spec_parse(feat_spec **out, const json_t *columns, const json_t *features, const char *label,
                    const json_t *label_pos, const json_t *label_neg, const json_t *missing);
void feat_spec_free(feat_spec *s); /* NULL is a no-op */

/* First pass over training rows (fields: the row's fields, nfields == ninputs): counts values of
 * learned vocabularies and accumulates numeric statistics. A learner is owned by the caller. */
typedef struct feat_learner feat_learner;
feat_learner *feat_learner_new(const feat_spec *s);
/* RC_EFORMAT when a numeric field does not parse (message names the column; the caller adds file and
 * line); RC_ENOMEM. The row is not counted on error. */
int feat_learner_add(feat_learner *l, char *const *fields, int nfields);
/* Apply: build vocabularies (min_count, most frequent first, ties by value), set mean/std. */
int feat_learner_apply(feat_learner *l, feat_spec *s);
void feat_learner_free(feat_learner *l);
/* The spec a learner was made for (borrowed). */
const feat_spec *feat_learner_spec(const feat_learner *l);

/* Compute the layout (wide offsets, deep offsets, cards) and mark the spec ready. Errors: RC_EINVAL
 * (a learned vocabulary that is still empty is fine: card 1, everything OOV). */
int feat_spec_finish(feat_spec *s);

/* Encode one row given by raw values (vals: ninputs entries, indexed like inputs). Allocation-free.
 * Errors (message names the input column and the value; no file/line): RC_EFORMAT a numeric input whose
 * string does not parse as a number. Numbers given to categorical inputs are formatted (%.17g, integers
 * without a decimal point). */
int feat_encode(const feat_spec *s, const feat_value *vals, feat_row *row);
/* Same from CSV fields (nfields must equal ninputs: else RC_EFORMAT "expected N columns, got M"). */
int feat_encode_fields(const feat_spec *s, char *const *fields, int nfields, feat_row *row);

/* Label of a row: 1 or 0, or RC_EFORMAT when the value is neither positive nor (given) negative. */
int feat_label(const feat_spec *s, const char *field);

/* Index of an input column by name, or -1. */
int feat_input_index(const feat_spec *s, const char *name);

/* The finished spec as JSON (learned vocabularies and statistics included), so feat_spec_from_json
 * rebuilds exactly the same encoder. NULL on ENOMEM. Caller owns the result. */
json_t *feat_spec_to_json(const feat_spec *s);
/* Rebuild a finished spec from feat_spec_to_json's document. RC_ECORRUPT/RC_EINVAL on a bad document. */
int feat_spec_from_json(feat_spec **out, const json_t *doc);

/* Trim leading/trailing spaces and tabs in place; returns s. */
char *feat_trim(char *s);

/* Is s[0..len) (trimmed first) one of the spec's missing values? Read-only, allocation-free. */
int feat_is_missing(const feat_spec *s, const char *str, size_t len);

/* Parse a numeric input value s[0..len) the way feat_encode does (spaces and tabs around it trimmed;
 * at most 63 bytes after trimming; a finite number). RC_OK and *out, or RC_EFORMAT without a message
 * (the caller names the field). Allocation-free. */
int feat_parse_number(const char *str, size_t len, double *out);

#endif
