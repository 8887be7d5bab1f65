/* models/features.c - feature columns for Wide & Deep. See models/features.h. */
#include "models/features.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/csv.h"
#include "core/err.h"
#include "core/hash.h"

#define FEAT_MAX_FEATURES 512
#define FEAT_SEED 0x5744u /* "WD": base seed of hashed features, mixed with the feature name */

/* ---------------------------------------------------------------- helpers */

char *feat_trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    return s;
}

static void trim_span(const char **s, size_t *len)
{
    const char *p = *s;
    size_t n = *len;
    while (n > 0 && (*p == ' ' || *p == '\t')) p++, n--;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    *s = p;
    *len = n;
}

static int in_list(char *const *list, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(list[i]) == len && memcmp(list[i], s, len) == 0) return 1;
    return 0;
}

static void free_strv(char **v, int n)
{
    if (!v) return;
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Copy a JSON array of strings; NULL array gives 0 entries. */
static int strv_from_json(const json_t *a, char ***out, int *n, const char *what)
{
    *out = NULL;
    *n = 0;
    if (!a || json_is_null(a)) return RC_OK;
    if (!json_is_array(a)) return rc_error(RC_EINVAL, "%s: expected an array of strings", what);
    size_t m = json_array_size(a);
    char **v = calloc(m ? m : 1, sizeof *v);
    if (!v) return rc_error(RC_ENOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < m; i++) {
        const json_t *e = json_array_get(a, i);
        if (!json_is_string(e)) {
            free_strv(v, (int)i);
            return rc_error(RC_EINVAL, "%s[%zu]: expected a string", what, i);
        }
        v[i] = strdup(json_string_value(e));
        if (!v[i]) {
            free_strv(v, (int)i);
            return rc_error(RC_ENOMEM, "%s: out of memory", what);
        }
    }
    *out = v;
    *n = (int)m;
    return RC_OK;
}

int feat_is_missing(const feat_spec *s, const char *str, size_t len)
{
    trim_span(&str, &len);
    return in_list(s->missing, s->nmissing, str, len);
}

int feat_input_index(const feat_spec *s, const char *name)
{
    for (int i = 0; i < s->ninputs; i++)
        if (strcmp(s->inputs[i], name) == 0) return i;
    return -1;
}

static int feat_index(const feat_spec *s, int upto, const char *name)
{
    for (int i = 0; i < upto; i++)
        if (strcmp(s->f[i].name, name) == 0) return i;
    return -1;
}

static uint64_t feat_seed(const feat_col *c)
{
    return hash_str(c->name, FEAT_SEED);
}

/* ---------------------------------------------------------------- parsing */

void feat_spec_free(feat_spec *s)
{
    if (!s) return;
    free_strv(s->inputs, s->ninputs);
    free_strv(s->label_pos, s->nlabel_pos);
    free_strv(s->label_neg, s->nlabel_neg);
    free_strv(s->missing, s->nmissing);
    for (int i = 0; s->f && i < s->nfeat; i++) {
        free(s->f[i].name);
        idmap_free(s->f[i].vocab);
        free(s->f[i].bounds);
    }
    free(s->f);
    free(s);
}

static int get_bool(const json_t *o, const char *key, int def, int *out, const char *fname)
{
    const json_t *v = json_object_get(o, key);
    if (!v) {
        *out = def;
        return RC_OK;
    }
    if (!json_is_boolean(v)) return rc_error(RC_EINVAL, "feature '%s': '%s' must be true or false", fname, key);
    *out = json_is_true(v);
    return RC_OK;
}

static int get_int(const json_t *o, const char *key, int64_t def, int64_t lo, int64_t hi, int64_t *out,
                   const char *fname)
{
    const json_t *v = json_object_get(o, key);
    if (!v) {
        *out = def;
        return RC_OK;
    }
    if (!json_is_integer(v)) return rc_error(RC_EINVAL, "feature '%s': '%s' must be an integer", fname, key);
    int64_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return rc_error(RC_ERANGE, "feature '%s': '%s' = %lld out of range [%lld, %lld]", fname, key,
                        (long long)x, (long long)lo, (long long)hi);
    *out = x;
    return RC_OK;
}

static const char *const feat_keys[] = {"name", "type", "column", "vocab", "min_count", "hash_buckets",
                                        "log1p", "normalize", "default", "boundaries", "cross", "wide",
                                        "deep", "dim", "mean", "std", "learned", NULL};

static int parse_feature(feat_spec *s, int idx, const json_t *o)
{
    feat_col *c = &s->f[idx];
    c->input = -1;
    c->emb = -1;
    c->std = 1.0;
    if (!json_is_object(o)) return rc_error(RC_EINVAL, "features[%d]: expected an object", idx);
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!name || !*name) return rc_error(RC_EINVAL, "features[%d]: missing \"name\"", idx);
    if (feat_index(s, idx, name) >= 0) return rc_error(RC_EINVAL, "feature '%s': defined twice", name);
    c->name = strdup(name);
    if (!c->name) return rc_error(RC_ENOMEM, "out of memory");
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)o, key, val) {
        int known = 0;
        for (int k = 0; feat_keys[k]; k++) known |= strcmp(feat_keys[k], key) == 0;
        if (!known) return rc_error(RC_EINVAL, "feature '%s': unknown field '%s'", name, key);
    }
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!type) return rc_error(RC_EINVAL, "feature '%s': missing \"type\"", name);
    if (strcmp(type, "categorical") == 0) c->kind = FEAT_CATEGORICAL;
    else if (strcmp(type, "numeric") == 0) c->kind = FEAT_NUMERIC;
    else if (strcmp(type, "crossed") == 0) c->kind = FEAT_CROSSED;
    else return rc_error(RC_EINVAL, "feature '%s': type '%s' is not categorical|numeric|crossed", name, type);

    int rc;
    if ((rc = get_bool(o, "wide", 0, &c->wide, name)) != RC_OK) return rc;
    const json_t *dj = json_object_get(o, "deep");
    const char *deep = dj ? json_string_value(dj) : "none";
    if (dj && json_is_false(dj)) deep = "none";
    if (!deep) return rc_error(RC_EINVAL, "feature '%s': 'deep' must be none|dense|onehot|embed", name);
    if (strcmp(deep, "none") == 0) c->deep = FEAT_DEEP_NONE;
    else if (strcmp(deep, "dense") == 0) c->deep = FEAT_DEEP_DENSE;
    else if (strcmp(deep, "onehot") == 0) c->deep = FEAT_DEEP_ONEHOT;
    else if (strcmp(deep, "embed") == 0) c->deep = FEAT_DEEP_EMBED;
    else return rc_error(RC_EINVAL, "feature '%s': 'deep' must be none|dense|onehot|embed, not '%s'", name, deep);
    int64_t dim;
    if ((rc = get_int(o, "dim", 0, 0, 4096, &dim, name)) != RC_OK) return rc;
    c->dim = (int)dim;
    if (c->deep == FEAT_DEEP_EMBED && c->dim < 1)
        return rc_error(RC_EINVAL, "feature '%s': deep \"embed\" needs \"dim\" >= 1", name);
    if ((rc = get_int(o, "hash_buckets", 0, 0, (int64_t)1 << 32, &c->hash_buckets, name)) != RC_OK) return rc;
    if ((rc = get_int(o, "min_count", 1, 1, INT64_MAX, &c->min_count, name)) != RC_OK) return rc;
    if ((rc = get_bool(o, "learned", 0, &c->learn, name)) != RC_OK) return rc;

    if (c->kind != FEAT_CROSSED) {
        const json_t *cj = json_object_get(o, "column");
        const char *col = cj ? json_string_value(cj) : name;
        if (!col) return rc_error(RC_EINVAL, "feature '%s': 'column' must be a string", name);
        c->input = feat_input_index(s, col);
        if (c->input < 0) return rc_error(RC_EINVAL, "feature '%s': column '%s' is not in \"columns\"", name, col);
        if (c->input == s->label) /* training would learn from the answer; serving never has it */
            return rc_error(RC_EINVAL, "feature '%s': column '%s' is the label", name, col);
    } else if (json_object_get(o, "column")) {
        return rc_error(RC_EINVAL, "feature '%s': a crossed feature takes \"cross\", not \"column\"", name);
    }

    if (c->kind == FEAT_CATEGORICAL) {
        const json_t *v = json_object_get(o, "vocab");
        if (v && c->hash_buckets > 0)
            return rc_error(RC_EINVAL, "feature '%s': give either \"vocab\" or \"hash_buckets\", not both", name);
        if (!v && c->hash_buckets == 0)
            return rc_error(RC_EINVAL, "feature '%s': categorical needs \"vocab\" (array or \"learn\") or "
                                       "\"hash_buckets\"", name);
        if (v && json_is_string(v)) {
            if (strcmp(json_string_value(v), "learn") != 0)
                return rc_error(RC_EINVAL, "feature '%s': \"vocab\" must be an array or \"learn\"", name);
            c->learn = 1;
        } else if (v) {
            if (!json_is_array(v)) return rc_error(RC_EINVAL, "feature '%s': \"vocab\" must be an array or \"learn\"", name);
            c->vocab = idmap_new(json_array_size(v));
            if (!c->vocab) return rc_wrap(RC_ENOMEM, "feature '%s'", name);
            for (size_t i = 0; i < json_array_size(v); i++) {
                const json_t *e = json_array_get(v, i);
                if (!json_is_string(e)) return rc_error(RC_EINVAL, "feature '%s': vocab[%zu] is not a string", name, i);
                const char *str = json_string_value(e);
                size_t len = json_string_length(e);
                trim_span(&str, &len);
                if (len > IDMAP_MAX_KEY)
                    return rc_error(RC_EINVAL, "feature '%s': vocab[%zu] is longer than %d bytes", name, i, IDMAP_MAX_KEY);
                if (idmap_find(c->vocab, str, len) >= 0)
                    return rc_error(RC_EINVAL, "feature '%s': vocab value '%s' listed twice", name, json_string_value(e));
                if (idmap_intern(c->vocab, str, len) < 0) return rc_wrap(RC_ENOMEM, "feature '%s'", name);
            }
        }
        if (c->deep == FEAT_DEEP_DENSE)
            return rc_error(RC_EINVAL, "feature '%s': a categorical goes to the deep part as onehot or embed", name);
    } else if (c->kind == FEAT_NUMERIC) {
        if ((rc = get_bool(o, "log1p", 0, &c->log1p, name)) != RC_OK) return rc;
        if ((rc = get_bool(o, "normalize", 0, &c->normalize, name)) != RC_OK) return rc;
        const json_t *d = json_object_get(o, "default");
        if (d) {
            if (!json_is_number(d)) return rc_error(RC_EINVAL, "feature '%s': \"default\" must be a number", name);
            c->has_default = 1;
            c->defval = json_number_value(d);
        }
        const json_t *m = json_object_get(o, "mean"), *sd = json_object_get(o, "std");
        if (m && json_is_number(m)) c->mean = json_number_value(m);
        if (sd && json_is_number(sd)) c->std = json_number_value(sd);
        if (!(c->std > 0) || !isfinite(c->std) || !isfinite(c->mean))
            return rc_error(RC_EINVAL, "feature '%s': bad \"mean\"/\"std\"", name);
        const json_t *b = json_object_get(o, "boundaries");
        if (b) {
            if (!json_is_array(b) || json_array_size(b) == 0 || json_array_size(b) > 65536)
                return rc_error(RC_EINVAL, "feature '%s': \"boundaries\" must be a non-empty array of numbers", name);
            c->nbounds = (int)json_array_size(b);
            c->bounds = malloc(sizeof(double) * (size_t)c->nbounds);
            if (!c->bounds) return rc_error(RC_ENOMEM, "out of memory");
            for (int i = 0; i < c->nbounds; i++) {
                const json_t *e = json_array_get(b, (size_t)i);
                if (!json_is_number(e))
                    return rc_error(RC_EINVAL, "feature '%s': boundaries[%d] is not a number", name, i);
                c->bounds[i] = json_number_value(e);
                if (i > 0 && !(c->bounds[i] > c->bounds[i - 1]))
                    return rc_error(RC_EINVAL, "feature '%s': boundaries must increase", name);
            }
            if (c->deep == FEAT_DEEP_DENSE)
                return rc_error(RC_EINVAL, "feature '%s': a bucketised numeric goes deep as onehot or embed", name);
        } else if (c->deep == FEAT_DEEP_ONEHOT || c->deep == FEAT_DEEP_EMBED) {
            return rc_error(RC_EINVAL, "feature '%s': a raw numeric goes deep as \"dense\" (add \"boundaries\" "
                                       "to bucketise)", name);
        }
    } else {
        const json_t *x = json_object_get(o, "cross");
        if (!x || !json_is_array(x) || json_array_size(x) < 2 || json_array_size(x) > FEAT_MAX_CROSS)
            return rc_error(RC_EINVAL, "feature '%s': \"cross\" must list 2..%d features", name, FEAT_MAX_CROSS);
        if (c->hash_buckets <= 0) return rc_error(RC_EINVAL, "feature '%s': crossed needs \"hash_buckets\"", name);
        c->ncross = (int)json_array_size(x);
        for (int i = 0; i < c->ncross; i++) {
            const char *m = json_string_value(json_array_get(x, (size_t)i));
            int fi = m ? feat_index(s, idx, m) : -1;
            if (fi < 0) return rc_error(RC_EINVAL, "feature '%s': cross member '%s' is not a feature defined before it",
                                        name, m ? m : "(not a string)");
            const feat_col *mc = &s->f[fi];
            if (mc->kind == FEAT_NUMERIC && mc->nbounds == 0)
                return rc_error(RC_EINVAL, "feature '%s': cross member '%s' is a raw numeric (bucketise it)", name, m);
            c->cross[i] = fi;
        }
        if (c->deep == FEAT_DEEP_DENSE)
            return rc_error(RC_EINVAL, "feature '%s': a crossed feature goes deep as onehot or embed", name);
    }
    if (c->kind == FEAT_CATEGORICAL || c->kind == FEAT_CROSSED) {
        if (c->log1p || c->normalize || json_object_get(o, "boundaries") || json_object_get(o, "default"))
            return rc_error(RC_EINVAL, "feature '%s': log1p/normalize/boundaries/default are for numeric features", name);
    }
    if (c->deep == FEAT_DEEP_ONEHOT && c->kind != FEAT_NUMERIC && c->hash_buckets > 100000)
        return rc_error(RC_EINVAL, "feature '%s': onehot over %lld buckets is too wide: use \"embed\"", name,
                        (long long)c->hash_buckets);
    return RC_OK;
}

int feat_spec_parse(feat_spec **out, const json_t *columns, const json_t *features, const char *label,
                    const json_t *label_pos, const json_t *label_neg, const json_t *missing)
{
    *out = NULL;
    feat_spec *s = calloc(1, sizeof *s);
    if (!s) return rc_error(RC_ENOMEM, "out of memory");
    int rc;
    s->label = -1;
    if (!columns || !json_is_array(columns) || json_array_size(columns) == 0) {
        rc = rc_error(RC_EINVAL, "\"columns\" must be a non-empty array of column names");
        goto fail;
    }
    if (json_array_size(columns) > FEAT_MAX_INPUTS) {
        rc = rc_error(RC_EINVAL, "\"columns\": %zu given, at most %d", json_array_size(columns), FEAT_MAX_INPUTS);
        goto fail;
    }
    if ((rc = strv_from_json(columns, &s->inputs, &s->ninputs, "columns")) != RC_OK) goto fail;
    for (int i = 0; i < s->ninputs; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(s->inputs[i], s->inputs[j]) == 0) {
                rc = rc_error(RC_EINVAL, "columns: '%s' listed twice", s->inputs[i]);
                goto fail;
            }
    if (label && *label) {
        s->label = feat_input_index(s, label);
        if (s->label < 0) {
            rc = rc_error(RC_EINVAL, "label column '%s' is not in \"columns\"", label);
            goto fail;
        }
    }
    if ((rc = strv_from_json(label_pos, &s->label_pos, &s->nlabel_pos, "label_positive")) != RC_OK) goto fail;
    if ((rc = strv_from_json(label_neg, &s->label_neg, &s->nlabel_neg, "label_negative")) != RC_OK) goto fail;
    if (s->label >= 0 && s->nlabel_pos == 0) {
        rc = rc_error(RC_EINVAL, "\"label_positive\" must list at least one value");
        goto fail;
    }
    if (missing && !json_is_null(missing)) {
        if ((rc = strv_from_json(missing, &s->missing, &s->nmissing, "missing")) != RC_OK) goto fail;
    } else {
        json_t *def = json_pack("[ss]", "?", "");
        if (!def) {
            rc = rc_error(RC_ENOMEM, "out of memory");
            goto fail;
        }
        rc = strv_from_json(def, &s->missing, &s->nmissing, "missing");
        json_decref(def);
        if (rc != RC_OK) goto fail;
    }
    if (!features || !json_is_array(features) || json_array_size(features) == 0) {
        rc = rc_error(RC_EINVAL, "\"features\" must be a non-empty array of feature objects");
        goto fail;
    }
    if (json_array_size(features) > FEAT_MAX_FEATURES) {
        rc = rc_error(RC_EINVAL, "\"features\": at most %d features", FEAT_MAX_FEATURES);
        goto fail;
    }
    s->nfeat = (int)json_array_size(features);
    s->f = calloc((size_t)s->nfeat, sizeof *s->f);
    if (!s->f) {
        rc = rc_error(RC_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < s->nfeat; i++)
        if ((rc = parse_feature(s, i, json_array_get(features, (size_t)i))) != RC_OK) goto fail;
    *out = s;
    return RC_OK;
fail:
    feat_spec_free(s);
    return rc;
}

/* ---------------------------------------------------------------- numeric values */

int feat_parse_number(const char *s, size_t len, double *out)
{
    char buf[64];
    trim_span(&s, &len);
    if (len == 0 || len >= sizeof buf) return RC_EFORMAT;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (csv_parse_double(buf, out) != RC_OK || !isfinite(*out)) return RC_EFORMAT;
    return RC_OK;
}

/* The processed value of a numeric feature from raw x (after log1p / normalisation). */
static double num_transform(const feat_col *c, double x)
{
    if (c->log1p) x = log1p(x > 0 ? x : 0);
    if (c->nbounds == 0 && c->normalize) x = (x - c->mean) / c->std;
    return x;
}

/* Value of a numeric feature (raw scale, before log1p) for a missing input. */
static double num_missing(const feat_col *c)
{
    if (c->has_default) return c->defval;
    /* mean is on the log1p scale when log1p: invert it so the transform gives the mean back */
    return c->log1p ? expm1(c->mean) : c->mean;
}

static int64_t bucketise(const feat_col *c, double x)
{
    int lo = 0, hi = c->nbounds; /* first boundary > x */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (c->bounds[mid] <= x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* ---------------------------------------------------------------- learning */

typedef struct learn_cat {
    idmap *seen;
    int64_t *count;
    size_t cap;
} learn_cat;

struct feat_learner {
    const feat_spec *spec;
    learn_cat *cat;  /* (nfeat) used for learned categoricals */
    double *shift;   /* (nfeat) first value seen: sums are of x - shift, so the variance of large values
                      * with a small spread (timestamps, ids) does not cancel away in E[x^2] - E[x]^2 */
    double *sum, *sumsq;
    int64_t *n;      /* (nfeat) numeric statistics */
};

feat_learner *feat_learner_new(const feat_spec *s)
{
    feat_learner *l = calloc(1, sizeof *l);
    if (!l) goto oom;
    l->spec = s;
    l->cat = calloc((size_t)s->nfeat, sizeof *l->cat);
    l->shift = calloc((size_t)s->nfeat, sizeof *l->shift);
    l->sum = calloc((size_t)s->nfeat, sizeof *l->sum);
    l->sumsq = calloc((size_t)s->nfeat, sizeof *l->sumsq);
    l->n = calloc((size_t)s->nfeat, sizeof *l->n);
    if (!l->cat || !l->shift || !l->sum || !l->sumsq || !l->n) goto oom;
    for (int i = 0; i < s->nfeat; i++)
        if (s->f[i].kind == FEAT_CATEGORICAL && s->f[i].learn && !s->f[i].vocab) {
            l->cat[i].seen = idmap_new(1024);
            if (!l->cat[i].seen) goto oom;
        }
    return l;
oom:
    feat_learner_free(l);
    rc_error(RC_ENOMEM, "feature learner: out of memory");
    return NULL;
}

const feat_spec *feat_learner_spec(const feat_learner *l)
{
    return l->spec;
}

void feat_learner_free(feat_learner *l)
{
    if (!l) return;
    if (l->cat && l->spec)
        for (int i = 0; i < l->spec->nfeat; i++) {
            idmap_free(l->cat[i].seen);
            free(l->cat[i].count);
        }
    free(l->cat);
    free(l->shift);
    free(l->sum);
    free(l->sumsq);
    free(l->n);
    free(l);
}

int feat_learner_add(feat_learner *l, char *const *fields, int nfields)
{
    const feat_spec *s = l->spec;
    if (nfields != s->ninputs)
        return rc_error(RC_EFORMAT, "expected %d columns, got %d", s->ninputs, nfields);
    double vals[FEAT_MAX_FEATURES];
    int have[FEAT_MAX_FEATURES];
    /* validate first so a bad row is not half counted */
    for (int i = 0; i < s->nfeat; i++) {
        const feat_col *c = &s->f[i];
        have[i] = 0;
        if (c->kind != FEAT_NUMERIC) continue;
        const char *v = fields[c->input];
        size_t len = strlen(v);
        trim_span(&v, &len);
        if (in_list(s->missing, s->nmissing, v, len)) continue;
        if (feat_parse_number(v, len, &vals[i]) != RC_OK)
            return rc_error(RC_EFORMAT, "column '%s': '%.*s' is not a number", s->inputs[c->input],
                            (int)(len > 64 ? 64 : len), v);
        /* the rule of feat_encode (its square must not overflow the statistics either: an inf std
         * could not be stored in the snapshot) */
        double x = c->log1p ? log1p(vals[i] > 0 ? vals[i] : 0) : vals[i];
        if (c->nbounds == 0 && !(fabs(x) <= FLT_MAX))
            return rc_error(RC_EFORMAT, "column '%s': %g is out of range", s->inputs[c->input], vals[i]);
        have[i] = 1;
    }
    for (int i = 0; i < s->nfeat; i++) {
        const feat_col *c = &s->f[i];
        if (have[i]) {
            double x = c->log1p ? log1p(vals[i] > 0 ? vals[i] : 0) : vals[i];
            if (l->n[i] == 0) l->shift[i] = x;
            x -= l->shift[i];
            l->sum[i] += x;
            l->sumsq[i] += x * x;
            l->n[i]++;
        }
        learn_cat *lc = &l->cat[i];
        if (!lc->seen) continue;
        const char *v = fields[c->input];
        size_t len = strlen(v);
        trim_span(&v, &len);
        if (in_list(s->missing, s->nmissing, v, len)) continue;
        /* a value longer than an idmap key could not be found at encode time: it stays OOV */
        if (len > IDMAP_MAX_KEY) continue;
        int64_t id = idmap_intern(lc->seen, v, len);
        if (id < 0) return rc_wrap(RC_ENOMEM, "feature '%s'", c->name);
        if ((size_t)id >= lc->cap) {
            size_t nc = lc->cap ? lc->cap * 2 : 1024;
            int64_t *p = realloc(lc->count, nc * sizeof *p);
            if (!p) return rc_error(RC_ENOMEM, "feature '%s': out of memory", c->name);
            memset(p + lc->cap, 0, (nc - lc->cap) * sizeof *p);
            lc->count = p;
            lc->cap = nc;
        }
        lc->count[id]++;
    }
    return RC_OK;
}

typedef struct sort_ctx {
    const idmap *map;
    const int64_t *count;
} sort_ctx;

/* Most frequent first, ties by value (bytes), so a learned vocabulary does not depend on row order. */
static int cmp_vocab(const void *a, const void *b, void *vctx)
{
    const sort_ctx *c = vctx;
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (c->count[x] != c->count[y]) return c->count[x] > c->count[y] ? -1 : 1;
    size_t lx, ly;
    const char *kx = idmap_key(c->map, x, &lx), *ky = idmap_key(c->map, y, &ly);
    int d = memcmp(kx, ky, lx < ly ? lx : ly);
    if (d) return d;
    return lx < ly ? -1 : lx > ly;
}

int feat_learner_apply(feat_learner *l, feat_spec *s)
{
    if (l->spec != s) return rc_error(RC_EINVAL, "feat_learner_apply: learner of another spec");
    for (int i = 0; i < s->nfeat; i++) {
        feat_col *c = &s->f[i];
        if (l->n[i] > 0) {
            double m = l->sum[i] / (double)l->n[i]; /* mean of x - shift */
            double var = l->sumsq[i] / (double)l->n[i] - m * m;
            c->mean = l->shift[i] + m;
            c->std = var > 1e-12 ? sqrt(var) : 1.0;
        }
        learn_cat *lc = &l->cat[i];
        if (!lc->seen) continue;
        size_t n = idmap_size(lc->seen);
        int64_t *order = malloc((n ? n : 1) * sizeof *order);
        idmap *v = idmap_new(n);
        if (!order || !v) {
            free(order);
            idmap_free(v);
            return rc_error(RC_ENOMEM, "feature '%s': out of memory", c->name);
        }
        for (size_t k = 0; k < n; k++) order[k] = (int64_t)k;
        sort_ctx sc = {lc->seen, lc->count};
        qsort_r(order, n, sizeof *order, cmp_vocab, &sc);
        for (size_t k = 0; k < n; k++) {
            if (lc->count[order[k]] < c->min_count) break;
            size_t len;
            const char *key = idmap_key(lc->seen, order[k], &len);
            if (idmap_intern(v, key, len) < 0) {
                free(order);
                idmap_free(v);
                return rc_wrap(RC_ENOMEM, "feature '%s'", c->name);
            }
        }
        free(order);
        idmap_free(c->vocab);
        c->vocab = v;
    }
    return RC_OK;
}

/* ---------------------------------------------------------------- layout */

int feat_spec_finish(feat_spec *s)
{
    s->wide_dim = 0;
    s->nwide = 0;
    s->deep_dim = 0;
    s->nemb = 0;
    for (int i = 0; i < s->nfeat; i++) {
        feat_col *c = &s->f[i];
        c->seed = feat_seed(c); /* hashing the name once here, not per encoded row */
        if (c->kind == FEAT_CATEGORICAL) {
            if (!c->vocab && c->hash_buckets == 0) {
                c->vocab = idmap_new(0);
                if (!c->vocab) return rc_wrap(RC_ENOMEM, "feature '%s'", c->name);
            }
            c->card = c->vocab ? (int64_t)idmap_size(c->vocab) + 1 : c->hash_buckets;
        } else if (c->kind == FEAT_NUMERIC) {
            c->card = c->nbounds ? c->nbounds + 1 : 0;
        } else {
            c->card = c->hash_buckets;
        }
        if (c->wide) {
            c->wide_off = s->wide_dim;
            s->wide_dim += c->card ? c->card : 1;
            s->nwide++;
        }
    }
    for (int i = 0; i < s->nfeat; i++) {
        feat_col *c = &s->f[i];
        c->emb = -1;
        if (c->deep == FEAT_DEEP_DENSE) c->deep_off = s->deep_dim++;
        else if (c->deep == FEAT_DEEP_ONEHOT) {
            if (c->card > 1000000) return rc_error(RC_EINVAL, "feature '%s': onehot too wide", c->name);
            c->deep_off = s->deep_dim;
            s->deep_dim += (int)c->card;
        }
    }
    s->ndense = s->deep_dim;
    for (int i = 0; i < s->nfeat; i++) {
        feat_col *c = &s->f[i];
        if (c->deep != FEAT_DEEP_EMBED) continue;
        c->deep_off = s->deep_dim;
        s->deep_dim += c->dim;
        c->emb = s->nemb++;
    }
    s->finished = 1;
    return RC_OK;
}

/* ---------------------------------------------------------------- encoding */

int feat_encode(const feat_spec *s, const feat_value *vals, feat_row *row)
{
    if (!s->finished) return rc_error(RC_ESTATE, "feature spec not finished");
    int64_t ids[FEAT_MAX_FEATURES];
    if (s->deep_dim) memset(row->dense, 0, sizeof(float) * (size_t)s->deep_dim);
    int slot = 0;
    for (int i = 0; i < s->nfeat; i++) {
        const feat_col *c = &s->f[i];
        int64_t id = -1;
        double x = 0;
        if (c->kind == FEAT_CROSSED) {
            unsigned char buf[8 * FEAT_MAX_CROSS];
            for (int k = 0; k < c->ncross; k++) {
                uint64_t v = (uint64_t)ids[c->cross[k]];
                for (int b = 0; b < 8; b++) buf[8 * k + b] = (unsigned char)(v >> (8 * b));
            }
            id = (int64_t)hash_reduce(hash64(buf, 8 * (size_t)c->ncross, c->seed), (uint64_t)c->hash_buckets);
        } else {
            const feat_value *v = &vals[c->input];
            const char *str = NULL;
            size_t len = 0;
            int missing = v->kind == FEAT_V_MISSING;
            char nbuf[40];
            if (v->kind == FEAT_V_STR) {
                str = v->s;
                len = v->len;
                trim_span(&str, &len);
                missing = in_list(s->missing, s->nmissing, str, len);
            }
            if (c->kind == FEAT_CATEGORICAL) {
                if (!missing && v->kind == FEAT_V_NUM) {
                    double d = v->num;
                    int n;
                    if (d == floor(d) && fabs(d) < 9e15) n = snprintf(nbuf, sizeof nbuf, "%lld", (long long)d);
                    else n = snprintf(nbuf, sizeof nbuf, "%.17g", d);
                    str = nbuf;
                    len = (size_t)n;
                }
                if (c->vocab) {
                    id = missing ? -1 : idmap_find(c->vocab, str, len);
                    if (id < 0) id = c->card - 1; /* OOV */
                } else {
                    if (missing) str = "", len = 0;
                    id = (int64_t)hash_bucket(str, len, c->seed, (uint64_t)c->hash_buckets);
                }
            } else {
                double raw;
                if (missing) raw = num_missing(c);
                else if (v->kind == FEAT_V_NUM) {
                    raw = v->num;
                    if (!isfinite(raw))
                        return rc_error(RC_EFORMAT, "column '%s': not a finite number", s->inputs[c->input]);
                } else if (feat_parse_number(str, len, &raw) != RC_OK)
                    return rc_error(RC_EFORMAT, "column '%s': '%.*s' is not a number", s->inputs[c->input],
                                    (int)(len > 64 ? 64 : len), str);
                x = num_transform(c, raw);
                if (c->nbounds) id = bucketise(c, raw);
                else if (!(fabs(x) <= FLT_MAX)) /* would be inf in the float input: NaN scores, NaN loss */
                    return rc_error(RC_EFORMAT, "column '%s': %g is out of range", s->inputs[c->input], raw);
            }
        }
        ids[i] = id;
        if (c->wide) {
            row->wide_idx[slot] = c->wide_off + (id >= 0 ? id : 0);
            row->wide_val[slot] = id >= 0 ? 1.0f : (float)x;
            slot++;
        }
        if (c->deep == FEAT_DEEP_DENSE) row->dense[c->deep_off] = (float)x;
        else if (c->deep == FEAT_DEEP_ONEHOT) row->dense[c->deep_off + id] = 1.0f;
        else if (c->deep == FEAT_DEEP_EMBED) row->emb_id[c->emb] = id;
    }
    return RC_OK;
}

int feat_encode_fields(const feat_spec *s, char *const *fields, int nfields, feat_row *row)
{
    if (nfields != s->ninputs) return rc_error(RC_EFORMAT, "expected %d columns, got %d", s->ninputs, nfields);
    feat_value vals[FEAT_MAX_INPUTS]; /* feat_spec_parse refuses more inputs */
    for (int i = 0; i < s->ninputs; i++) {
        vals[i].kind = FEAT_V_STR;
        vals[i].s = fields[i];
        vals[i].len = strlen(fields[i]);
        vals[i].num = 0;
    }
    return feat_encode(s, vals, row);
}

int feat_label(const feat_spec *s, const char *field)
{
    const char *v = field;
    size_t len = strlen(v);
    trim_span(&v, &len);
    if (in_list(s->label_pos, s->nlabel_pos, v, len)) return 1;
    if (s->nlabel_neg == 0 || in_list(s->label_neg, s->nlabel_neg, v, len)) return 0;
    return rc_error(RC_EFORMAT, "label '%.*s' is neither a positive nor a negative value", (int)(len > 64 ? 64 : len), v);
}

/* ---------------------------------------------------------------- JSON round trip */

static json_t *strv_to_json(char *const *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static const char *deep_name(feat_deep d)
{
    switch (d) {
    case FEAT_DEEP_DENSE: return "dense";
    case FEAT_DEEP_ONEHOT: return "onehot";
    case FEAT_DEEP_EMBED: return "embed";
    default: return "none";
    }
}

json_t *feat_spec_to_json(const feat_spec *s)
{
    json_t *doc = json_object(), *feats = json_array();
    if (!doc || !feats) goto oom;
    if (json_object_set_new(doc, "columns", strv_to_json(s->inputs, s->ninputs)) ||
        json_object_set_new(doc, "label", s->label >= 0 ? json_string(s->inputs[s->label]) : json_null()) ||
        json_object_set_new(doc, "label_positive", strv_to_json(s->label_pos, s->nlabel_pos)) ||
        json_object_set_new(doc, "label_negative", strv_to_json(s->label_neg, s->nlabel_neg)) ||
        json_object_set_new(doc, "missing", strv_to_json(s->missing, s->nmissing)))
        goto oom;
    for (int i = 0; i < s->nfeat; i++) {
        const feat_col *c = &s->f[i];
        json_t *o = json_object();
        if (!o || json_array_append_new(feats, o)) goto oom;
        const char *type = c->kind == FEAT_CATEGORICAL ? "categorical" : c->kind == FEAT_NUMERIC ? "numeric" : "crossed";
        int bad = json_object_set_new(o, "name", json_string(c->name)) ||
                  json_object_set_new(o, "type", json_string(type)) ||
                  json_object_set_new(o, "wide", json_boolean(c->wide)) ||
                  json_object_set_new(o, "deep", json_string(deep_name(c->deep)));
        if (c->input >= 0) bad |= json_object_set_new(o, "column", json_string(s->inputs[c->input]));
        if (c->deep == FEAT_DEEP_EMBED) bad |= json_object_set_new(o, "dim", json_integer(c->dim));
        if (c->hash_buckets > 0) bad |= json_object_set_new(o, "hash_buckets", json_integer(c->hash_buckets));
        if (c->kind == FEAT_CATEGORICAL && c->vocab) {
            json_t *v = json_array();
            bad |= json_object_set_new(o, "vocab", v);
            for (size_t k = 0; v && k < idmap_size(c->vocab); k++) {
                size_t len;
                const char *key = idmap_key(c->vocab, (int64_t)k, &len);
                bad |= json_array_append_new(v, json_stringn(key, len));
            }
            if (c->learn) bad |= json_object_set_new(o, "learned", json_true());
            bad |= json_object_set_new(o, "min_count", json_integer(c->min_count));
        }
        if (c->kind == FEAT_NUMERIC) {
            bad |= json_object_set_new(o, "log1p", json_boolean(c->log1p));
            bad |= json_object_set_new(o, "normalize", json_boolean(c->normalize));
            bad |= json_object_set_new(o, "mean", json_real(c->mean));
            bad |= json_object_set_new(o, "std", json_real(c->std));
            if (c->has_default) bad |= json_object_set_new(o, "default", json_real(c->defval));
            if (c->nbounds) {
                json_t *b = json_array();
                bad |= json_object_set_new(o, "boundaries", b);
                for (int k = 0; b && k < c->nbounds; k++) bad |= json_array_append_new(b, json_real(c->bounds[k]));
            }
        }
        if (c->kind == FEAT_CROSSED) {
            json_t *x = json_array();
            bad |= json_object_set_new(o, "cross", x);
            for (int k = 0; x && k < c->ncross; k++) bad |= json_array_append_new(x, json_string(s->f[c->cross[k]].name));
        }
        if (bad) goto oom;
    }
    if (json_object_set_new(doc, "features", feats)) {
        feats = NULL;
        goto oom;
    }
    return doc;
oom:
    json_decref(doc);
    json_decref(feats);
    rc_error(RC_ENOMEM, "feature spec to JSON: out of memory");
    return NULL;
}

int feat_spec_from_json(feat_spec **out, const json_t *doc)
{
    *out = NULL;
    if (!json_is_object(doc)) return rc_error(RC_ECORRUPT, "feature spec: not a JSON object");
    const json_t *label = json_object_get(doc, "label");
    feat_spec *s;
    int rc = feat_spec_parse(&s, json_object_get(doc, "columns"), json_object_get(doc, "features"),
                             json_is_string(label) ? json_string_value(label) : NULL,
                             json_object_get(doc, "label_positive"), json_object_get(doc, "label_negative"),
                             json_object_get(doc, "missing"));
    if (rc != RC_OK) return rc_wrap(RC_ECORRUPT, "feature spec");
    for (int i = 0; i < s->nfeat; i++)
        if (s->f[i].kind == FEAT_CATEGORICAL && s->f[i].learn && !s->f[i].vocab) {
            rc = rc_error(RC_ECORRUPT, "feature spec: feature '%s' has no learned vocabulary", s->f[i].name);
            feat_spec_free(s);
            return rc;
        }
    if ((rc = feat_spec_finish(s)) != RC_OK) {
        feat_spec_free(s);
        return rc;
    }
    *out = s;
    return RC_OK;
}
