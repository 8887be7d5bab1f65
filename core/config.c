/* core/config.c - table-driven settings: defaults, JSON files, command line, help, serialisation.
 *
 * Conventions beyond core/config.h (documented there as far as callers need them):
 *   - INT/DOUBLE bounds are inclusive; min == max == 0 means "no bounds".
 *   - A file key may be a full dotted name ("sessions.ttl_s": 5) or a nested object ({"sessions":
 *     {"ttl_s": 5}}); both forms mix freely. An object whose name is a setting of type JSON is that
 *     setting's value, never descended into.
 *   - In a file, a STRING setting may be null (no value). JSON settings accept any value.
 *   - Command line (cfg_parse_args): argv[0] (the command or model name) is kept, not parsed.
 *     Flags in `keep` win over settings of the same name and are left, with their values, for the
 *     caller; `--help` is always left too. `--` ends the options: it and everything after it are
 *     left as they are. Single-dash and positional args are left. A BOOL setting given as `--name`
 *     alone is true; `--name=false` sets it false, and `--name true|false` (exactly these words)
 *     also reads the next word. On error *argc/argv still hold every arg not consumed, in order.
 *   - Flag names: '-' and '_' are the same character (flag_name_eq, norm_flag); setting names never
 *     hold '-' (cfg_defaults refuses such a table), so the mapping is one-to-one.
 *   - A RENAMED entry is found by its old name like any setting and answered with renamed_err; every
 *     walk over the fields (defaults, release, help, cfg_to_json, suggestions) skips it.
 *   - Line numbers for semantic errors are found, only when an error is reported, by scanning the
 *     file text for the exact path of keys (nesting levels tracked), so a key that also appears
 *     elsewhere is not confused with it; a key written with escapes is not found (no line then).
 */
#include "core/config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define CFG_NAME_MAX 256         /* longest dotted name handled */
#define CFG_FILE_MAX (16u << 20) /* config files larger than this are refused */

/* ---- field access ---------------------------------------------------------------------------- */

#define FIELD(obj, d, T) ((T *)((char *)(obj) + (d)->offset))
#define CFIELD(obj, d, T) ((const T *)((const char *)(obj) + (d)->offset))

static const cfg_def *find_def(const cfg_def *defs, const char *name)
{
    for (const cfg_def *d = defs; d->name; d++)
        if (strcmp(d->name, name) == 0) return d;
    return NULL;
}

/* "origin[:line]: [option --flag: ]setting 'old' is now called 'new'[: note]" (RC_EINVAL). line 0: none;
 * flag NULL: not from a flag. */
static int renamed_err(const cfg_def *d, const char *origin, int line, const char *flag, size_t flag_len)
{
    char at[32] = "", opt[CFG_NAME_MAX + 24] = "";
    if (line > 0) snprintf(at, sizeof at, ":%d", line);
    if (flag) snprintf(opt, sizeof opt, " option --%.*s:", (int)(flag_len > 200 ? 200 : flag_len), flag);
    return rc_error(RC_EINVAL, "%s%s:%s setting '%s' is now called '%s'%s%s", origin, at, opt, d->name,
                    d->def_str ? d->def_str : "?", d->help ? ": " : "", d->help ? d->help : "");
}

/* 1 if some setting's name starts with prefix followed by '.'. */
static int is_group(const cfg_def *defs, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const cfg_def *d = defs; d->name; d++)
        if (strncmp(d->name, prefix, n) == 0 && d->name[n] == '.') return 1;
    return 0;
}

/* Edit distance (Levenshtein) of a and b, or cap + 1 as soon as it is certainly above cap. */
static int edit_distance(const char *a, const char *b, int cap)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 64 || lb > 64 || abs(la - lb) > cap) return cap + 1;
    int row[65];
    for (int j = 0; j <= lb; j++)
        row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0], best;
        row[0] = best = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j];
            int v = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < v) v = up + 1;
            if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
            if (v < best) best = v;
        }
        if (best > cap) return cap + 1;
    }
    return row[lb];
}

/* " (did you mean <pre>x<post>?)" for the closest setting name within a quarter of the name's
 * length (at least 1 edit), or "" when none is that close. Written into buf. */
static const char *suggest(const cfg_def *defs, const char *name, const char *pre, const char *post,
                           char *buf, size_t cap)
{
    int limit = (int)strlen(name) / 4, best = limit + 1;
    const char *hit = NULL;
    if (limit < 1) limit = 1, best = 2;
    for (const cfg_def *d = defs; d->name; d++) {
        if (d->type == CFG_T_RENAMED) continue;
        int e = edit_distance(name, d->name, limit);
        if (e < best) best = e, hit = d->name;
    }
    /* else a setting whose last component is the name: "split_time" -> "data.split_time" */
    for (const cfg_def *d = defs; d->name && !hit; d++) {
        const char *dot = strrchr(d->name, '.');
        if (d->type != CFG_T_RENAMED && dot && strcmp(dot + 1, name) == 0) hit = d->name;
    }
    buf[0] = '\0';
    if (hit) snprintf(buf, cap, " (did you mean %s%s%s?)", pre, hit, post);
    return buf;
}

static int has_bounds(const cfg_def *d)
{
    return !(d->min == 0 && d->max == 0);
}

static const char *type_name(cfg_type t)
{
    switch (t) {
    case CFG_T_INT:
        return "int";
    case CFG_T_DOUBLE:
        return "number";
    case CFG_T_BOOL:
        return "bool";
    case CFG_T_STRING:
        return "string";
    case CFG_T_ENUM:
        return "enum";
    case CFG_T_JSON:
        return "json";
    case CFG_T_RENAMED:
        return "renamed";
    }
    return "?";
}

/* 1 if s (length n) is one of the '|'-separated choices. */
static int enum_has(const char *choices, const char *s, size_t n)
{
    const char *p = choices;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, s, n) == 0) return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

/* ---- error context --------------------------------------------------------------------------- */

/* The text of a config file, to find the line of a key (text NULL when loading an in-memory
 * object). */
typedef struct {
    const char *text;
    size_t len;
} src_text;

#define CFG_DEPTH_MAX 32 /* nesting of setting groups in a file */

/* Where a value comes from: origin ("configs/x.json", "command line") and, for files, the text and
 * the path of file keys that led to it, so the line can be found when (and only when) an error is
 * reported. Messages look like "origin:line: setting 'name': what". */
typedef struct {
    const char *origin;
    const src_text *src;     /* NULL: no line */
    const char *const *path; /* the keys as written in the file, outermost first */
    int np;
} where;

/* 1-based line of the key path[0..np) in src (a JSON text already parsed successfully), or 0 when
 * not found (e.g. a key written with escapes). A small scanner: strings are skipped with their
 * escapes, and a string followed by ':' inside an object is a key at the current nesting level. */
static int key_line(const src_text *src, const char *const *path, int np)
{
    if (!src || !src->text || np < 1 || np > CFG_DEPTH_MAX) return 0;
    enum { MAXL = CFG_DEPTH_MAX + 2 };
    unsigned char is_obj[MAXL], ok[MAXL], keym[MAXL];
    const char *t = src->text, *end = t + src->len;
    int level = -1, line = 1, deep = 0; /* deep: levels beyond MAXL, never on the path */
    for (const char *p = t; p < end; p++) {
        char c = *p;
        if (c == '\n') {
            line++;
        } else if (c == '{' || c == '[') {
            if (level + 1 >= MAXL || deep) {
                deep++;
                continue;
            }
            int parent_ok = level < 0 ? 1 : (ok[level] && is_obj[level] && keym[level]);
            level++;
            is_obj[level] = c == '{';
            ok[level] = (unsigned char)(parent_ok && level < np);
            keym[level] = 0;
        } else if (c == '}' || c == ']') {
            if (deep)
                deep--;
            else if (level >= 0)
                level--;
        } else if (c == '"') {
            const char *k = p + 1, *q = k;
            while (q < end && *q != '"')
                q += (*q == '\\') ? 2 : 1;
            if (q >= end) return 0;
            size_t kl = (size_t)(q - k);
            int kline = line;
            p = q; /* at the closing quote */
            const char *r = q + 1;
            while (r < end && (*r == ' ' || *r == '\t' || *r == '\r' || *r == '\n'))
                r++;
            if (r < end && *r == ':' && !deep && level >= 0 && is_obj[level]) {
                keym[level] = (unsigned char)(ok[level] && strlen(path[level]) == kl &&
                                              memcmp(path[level], k, kl) == 0);
                if (keym[level] && level == np - 1) return kline;
            }
        }
    }
    return 0;
}

__attribute__((format(printf, 4, 5))) static int set_err(int code, where w, const char *name,
                                                         const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int line = key_line(w.src, w.path, w.np);
    if (line > 0) return rc_error(code, "%s:%d: setting '%s': %s", w.origin, line, name, what);
    return rc_error(code, "%s: setting '%s': %s", w.origin, name, what);
}

/* A short printable form of a JSON value for messages ("\"fast\"", "2.5", "{...}" cut to 60 bytes).
 */
static void json_brief(const json_t *v, char *out, size_t cap)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (!s) {
        snprintf(out, cap, "(%s)", "unprintable");
        return;
    }
    if (strlen(s) > 60)
        snprintf(out, cap, "%.57s...", s);
    else
        snprintf(out, cap, "%s", s);
    free(s);
}

/* ---- setting one value ----------------------------------------------------------------------- */

/* Bounds are printed with 15 significant digits, so 0.1 reads "0.1". */
static int check_bounds(const cfg_def *d, double v, where w)
{
    if (!has_bounds(d) || (v >= d->min && v <= d->max)) return RC_OK;
    return set_err(RC_ERANGE, w, d->name, "value %.15g out of range [%.15g, %.15g]", v, d->min,
                   d->max);
}

/* Store an INT value after checking its bounds (the value printed exactly on error). */
static int put_int(const cfg_def *d, void *obj, long long v, where w)
{
    double dv = (double)v;
    if (has_bounds(d) && !(dv >= d->min && dv <= d->max))
        return set_err(RC_ERANGE, w, d->name, "value %lld out of range [%.15g, %.15g]", v, d->min,
                       d->max);
    *FIELD(obj, d, long long) = v;
    return RC_OK;
}

static int put_double(const cfg_def *d, void *obj, double v, where w)
{
    int rc = check_bounds(d, v, w);
    if (rc) return rc;
    *FIELD(obj, d, double) = v;
    return RC_OK;
}

/* Replace a STRING/ENUM field with a copy of s (length n), or NULL when s is NULL. */
static int put_string(const cfg_def *d, void *obj, const char *s, size_t n, where w)
{
    char *copy = NULL;
    if (s) {
        if (memchr(s, '\0', n)) return set_err(RC_EINVAL, w, d->name, "string contains a NUL byte");
        copy = malloc(n + 1);
        if (!copy) return set_err(RC_ENOMEM, w, d->name, "out of memory");
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    char **f = FIELD(obj, d, char *);
    free(*f);
    *f = copy;
    return RC_OK;
}

static int put_enum(const cfg_def *d, void *obj, const char *s, size_t n, const char *shown,
                    where w)
{
    if (!enum_has(d->choices, s, n))
        return set_err(RC_ERANGE, w, d->name, "expected one of %s, got %s",
                       d->choices ? d->choices : "", shown);
    return put_string(d, obj, s, n, w);
}

/* Convert a double known to be integral and finite to long long; 0 on overflow. */
static int integral_to_ll(double r, long long *out)
{
    if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0)) return 0;
    *out = (long long)r;
    return 1;
}

/* Set d from a JSON value. */
static int set_from_json(const cfg_def *d, void *obj, const json_t *v, where w)
{
    char shown[80];
    json_brief(v, shown, sizeof shown);
    switch (d->type) {
    case CFG_T_INT:
        if (json_is_integer(v)) return put_int(d, obj, json_integer_value(v), w);
        if (json_is_real(v)) {
            double r = json_real_value(v);
            long long ll;
            if (r != floor(r))
                return set_err(RC_EINVAL, w, d->name, "expected an integer, got %s", shown);
            if (!integral_to_ll(r, &ll))
                return set_err(RC_ERANGE, w, d->name, "value %s out of range [%.15g, %.15g]", shown,
                               d->min, d->max);
            return put_int(d, obj, ll, w);
        }
        return set_err(RC_EINVAL, w, d->name, "expected an integer, got %s", shown);
    case CFG_T_DOUBLE:
        if (json_is_number(v)) return put_double(d, obj, json_number_value(v), w);
        return set_err(RC_EINVAL, w, d->name, "expected a number, got %s", shown);
    case CFG_T_BOOL:
        if (json_is_boolean(v)) {
            *FIELD(obj, d, int) = json_is_true(v);
            return RC_OK;
        }
        return set_err(RC_EINVAL, w, d->name, "expected true or false, got %s", shown);
    case CFG_T_STRING:
        if (json_is_null(v)) return put_string(d, obj, NULL, 0, w);
        if (json_is_string(v))
            return put_string(d, obj, json_string_value(v), json_string_length(v), w);
        return set_err(RC_EINVAL, w, d->name, "expected a string, got %s", shown);
    case CFG_T_ENUM:
        if (json_is_string(v))
            return put_enum(d, obj, json_string_value(v), json_string_length(v), shown, w);
        return set_err(RC_EINVAL, w, d->name, "expected a string (one of %s), got %s",
                       d->choices ? d->choices : "", shown);
    case CFG_T_JSON: {
        json_t *copy = json_deep_copy(v);
        if (!copy) return set_err(RC_ENOMEM, w, d->name, "out of memory");
        json_t **f = FIELD(obj, d, json_t *);
        json_decref(*f);
        *f = copy;
        return RC_OK;
    }
    case CFG_T_RENAMED:
        break;
    }
    return set_err(RC_EINVAL, w, d->name, "unknown setting type %d", (int)d->type);
}

/* Set d from its text form. */
static int set_from_text(const cfg_def *d, void *obj, const char *s, where w)
{
    char shown[80];
    size_t n = strlen(s);
    if (n > 60)
        snprintf(shown, sizeof shown, "\"%.57s...\"", s);
    else
        snprintf(shown, sizeof shown, "\"%s\"", s);
    char *end;
    switch (d->type) {
    case CFG_T_INT: {
        errno = 0;
        long long ll = strtoll(s, &end, 10);
        if (end != s && *end == '\0' && errno == 0) return put_int(d, obj, ll, w);
        errno = 0;
        double r = strtod(s, &end);
        if (end == s || *end != '\0' || isnan(r) || r != floor(r))
            return set_err(RC_EINVAL, w, d->name, "expected an integer, got %s", shown);
        if (!integral_to_ll(r, &ll))
            return set_err(RC_ERANGE, w, d->name, "value %s out of range [%.15g, %.15g]", shown,
                           d->min, d->max);
        return put_int(d, obj, ll, w);
    }
    case CFG_T_DOUBLE: {
        errno = 0;
        double r = strtod(s, &end);
        if (end == s || *end != '\0' || isnan(r))
            return set_err(RC_EINVAL, w, d->name, "expected a number, got %s", shown);
        return put_double(d, obj, r, w);
    }
    case CFG_T_BOOL:
        if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
            *FIELD(obj, d, int) = 1;
            return RC_OK;
        }
        if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
            *FIELD(obj, d, int) = 0;
            return RC_OK;
        }
        return set_err(RC_EINVAL, w, d->name, "expected true, false, 1 or 0, got %s", shown);
    case CFG_T_STRING:
        return put_string(d, obj, s, n, w);
    case CFG_T_ENUM:
        return put_enum(d, obj, s, n, shown, w);
    case CFG_T_JSON: {
        json_error_t je;
        json_t *v = json_loads(s, JSON_DECODE_ANY, &je);
        if (!v)
            return set_err(RC_EFORMAT, w, d->name, "invalid JSON at column %d: %s", je.column,
                           je.text);
        json_t **f = FIELD(obj, d, json_t *);
        json_decref(*f);
        *f = v;
        return RC_OK;
    }
    case CFG_T_RENAMED:
        break;
    }
    return set_err(RC_EINVAL, w, d->name, "unknown setting type %d", (int)d->type);
}

/* ---- defaults and release -------------------------------------------------------------------- */

void cfg_release(const cfg_def *defs, void *obj)
{
    if (!defs || !obj) return;
    for (const cfg_def *d = defs; d->name; d++) {
        if (d->type == CFG_T_STRING || d->type == CFG_T_ENUM) {
            char **f = FIELD(obj, d, char *);
            free(*f);
            *f = NULL;
        } else if (d->type == CFG_T_JSON) {
            json_t **f = FIELD(obj, d, json_t *);
            json_decref(*f);
            *f = NULL;
        }
    }
}

int cfg_defaults(const cfg_def *defs, void *obj)
{
    /* Pointer fields first to NULL, so a failure half-way can release what was allocated. */
    for (const cfg_def *d = defs; d->name; d++) {
        if (d->type == CFG_T_STRING || d->type == CFG_T_ENUM) *FIELD(obj, d, char *) = NULL;
        if (d->type == CFG_T_JSON) *FIELD(obj, d, json_t *) = NULL;
    }
    for (const cfg_def *d = defs; d->name; d++)
        if (strchr(d->name, '-'))
            return rc_error(RC_EINVAL, "setting '%s': a setting name is written with '_', not '-'", d->name);
    for (const cfg_def *d = defs; d->name; d++) {
        switch (d->type) {
        case CFG_T_INT:
            *FIELD(obj, d, long long) = d->def_int;
            break;
        case CFG_T_DOUBLE:
            *FIELD(obj, d, double) = d->def_double;
            break;
        case CFG_T_BOOL:
            *FIELD(obj, d, int) = d->def_int != 0;
            break;
        case CFG_T_STRING:
        case CFG_T_ENUM:
            if (d->type == CFG_T_ENUM && d->def_str &&
                !enum_has(d->choices, d->def_str, strlen(d->def_str))) {
                cfg_release(defs, obj);
                return rc_error(RC_EINVAL, "setting '%s': default \"%s\" is not one of %s", d->name,
                                d->def_str, d->choices ? d->choices : "(no choices)");
            }
            if (d->def_str) {
                char *s = strdup(d->def_str);
                if (!s) {
                    cfg_release(defs, obj);
                    return rc_error(RC_ENOMEM, "setting '%s': out of memory", d->name);
                }
                *FIELD(obj, d, char *) = s;
            }
            break;
        case CFG_T_JSON:
            if (d->def_str) {
                json_error_t je;
                json_t *v = json_loads(d->def_str, JSON_DECODE_ANY, &je);
                if (!v) {
                    cfg_release(defs, obj);
                    return rc_error(RC_EINVAL, "setting '%s': default is not valid JSON: %s",
                                    d->name, je.text);
                }
                *FIELD(obj, d, json_t *) = v;
            }
            break;
        case CFG_T_RENAMED:
            break;
        }
    }
    return RC_OK;
}

/* ---- files and JSON objects ------------------------------------------------------------------ */

/* Apply every key of object o, whose keys are names below prefix ("" at the top). path[0..np) are
 * the file keys that led to o (for error lines). */
static int load_object(const cfg_def *defs, void *obj, const json_t *o, const char *prefix,
                       const char *origin, const src_text *src, const char **path, int np)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v)
    {
        char full[CFG_NAME_MAX];
        path[np] = key;
        where w = {origin, src, path, np + 1};
        int n = prefix[0] ? snprintf(full, sizeof full, "%s.%s", prefix, key)
                          : snprintf(full, sizeof full, "%s", key);
        const cfg_def *d = (n > 0 && (size_t)n < sizeof full) ? find_def(defs, full) : NULL;
        if (d && d->type == CFG_T_RENAMED) return renamed_err(d, origin, key_line(src, path, np + 1), NULL, 0);
        if (d) {
            int rc = set_from_json(d, obj, v, w);
            if (rc) return rc;
            continue;
        }
        if (n > 0 && (size_t)n < sizeof full && json_is_object(v) && np + 1 < CFG_DEPTH_MAX &&
            is_group(defs, full)) {
            int rc = load_object(defs, obj, v, full, origin, src, path, np + 1);
            if (rc) return rc;
            continue;
        }
        /* a name too long for full[] is shown by its last key only */
        const char *shown = (n > 0 && (size_t)n < sizeof full) ? full : key;
        char hint[CFG_NAME_MAX + 32];
        suggest(defs, shown, "'", "'", hint, sizeof hint);
        int line = key_line(src, path, np + 1);
        if (line > 0)
            return rc_error(RC_EINVAL, "%s:%d: unknown setting '%.200s'%s", origin, line, shown,
                            hint);
        return rc_error(RC_EINVAL, "%s: unknown setting '%.200s'%s", origin, shown, hint);
    }
    return RC_OK;
}

static int load_root(const cfg_def *defs, void *obj, const json_t *root, const char *origin,
                     const src_text *src)
{
    if (!origin) origin = "config";
    if (!root || !json_is_object(root)) {
        if (src && src->text)
            return rc_error(RC_EINVAL, "%s:1: expected a JSON object of settings", origin);
        return rc_error(RC_EINVAL, "%s: expected a JSON object of settings", origin);
    }
    const char *path[CFG_DEPTH_MAX];
    return load_object(defs, obj, root, "", origin, src, path, 0);
}

int cfg_load_json(const cfg_def *defs, void *obj, const json_t *root, const char *origin)
{
    return load_root(defs, obj, root, origin, NULL);
}

int cfg_load_file(const cfg_def *defs, void *obj, const char *path)
{
    int rc = RC_OK;
    char *text = NULL;
    json_t *root = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return rc_error(e == ENOENT ? RC_ENOTFOUND : RC_EIO, "%s: cannot open config file: %s",
                        path, strerror(e));
    }
    size_t cap = 4096, len = 0;
    text = malloc(cap + 1);
    if (!text) {
        rc = rc_error(RC_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (;;) {
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
        if (len == cap) {
            if (cap >= CFG_FILE_MAX) {
                rc = rc_error(RC_EFORMAT, "%s: config file larger than %u bytes", path,
                              CFG_FILE_MAX);
                goto fail;
            }
            char *t = realloc(text, cap * 2 + 1);
            if (!t) {
                rc = rc_error(RC_ENOMEM, "%s: out of memory", path);
                goto fail;
            }
            text = t;
            cap *= 2;
        }
    }
    if (ferror(f)) {
        rc = rc_error(RC_EIO, "%s: read error: %s", path, strerror(errno));
        goto fail;
    }
    text[len] = '\0';
    json_error_t je;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        rc = rc_error(RC_EFORMAT, "%s:%d:%d: invalid JSON: %s", path, je.line, je.column, je.text);
        goto fail;
    }
    src_text src = {text, len};
    rc = load_root(defs, obj, root, path, &src);
fail:
    json_decref(root);
    free(text);
    fclose(f);
    return rc;
}

int cfg_set(const cfg_def *defs, void *obj, const char *name, const char *value, const char *origin)
{
    where w = {origin ? origin : "config", NULL, NULL, 0};
    const cfg_def *d = name ? find_def(defs, name) : NULL;
    if (!d) {
        char hint[CFG_NAME_MAX + 32];
        return rc_error(RC_EINVAL, "%s: unknown setting '%.200s'%s", w.origin,
                        name ? name : "(null)",
                        name ? suggest(defs, name, "'", "'", hint, sizeof hint) : "");
    }
    if (d->type == CFG_T_RENAMED) return renamed_err(d, w.origin, 0, NULL, 0);
    if (!value) return set_err(RC_EINVAL, w, d->name, "missing value");
    return set_from_text(d, obj, value, w);
}

/* ---- command line ---------------------------------------------------------------------------- */

/* The flag-name rule: a == b (n bytes each) with '-' and '_' the same character. */
static int flag_name_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char x = a[i] == '-' ? '_' : a[i], y = b[i] == '-' ? '_' : b[i];
        if (x != y) return 0;
    }
    return 1;
}

/* arg (n bytes, "--name" without "=value") is one of keep: "--" and then the names by the flag rule;
 * other entries ("-c") exactly. */
static int in_keep(const char *const *keep, const char *arg, size_t n)
{
    for (; keep && *keep; keep++) {
        if (strlen(*keep) != n) continue;
        int dashed = n > 2 && strncmp(*keep, "--", 2) == 0 && strncmp(arg, "--", 2) == 0;
        if (dashed ? flag_name_eq(*keep + 2, arg + 2, n - 2) : strncmp(*keep, arg, n) == 0) return 1;
    }
    return 0;
}

/* Copy the flag name s (n bytes) into buf (cap > n) as a setting name: '-' -> '_'. */
static void norm_flag(char *buf, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) buf[i] = s[i] == '-' ? '_' : s[i];
    buf[n] = '\0';
}

/* "name=value" -> cfg_set. */
static int set_pair(const cfg_def *defs, void *obj, const char *pair)
{
    const char *eq = strchr(pair, '=');
    if (!eq || eq == pair)
        return rc_error(RC_EINVAL, "command line: --set expects name=value, got \"%s\"", pair);
    char name[CFG_NAME_MAX];
    size_t n = (size_t)(eq - pair);
    if (n >= sizeof name)
        return rc_error(RC_EINVAL, "command line: unknown setting '%.*s'", (int)n, pair);
    norm_flag(name, pair, n);
    return cfg_set(defs, obj, name, eq + 1, "command line");
}

int cfg_parse_args(const cfg_def *defs, void *obj, int *argc, char **argv, const char *const *keep)
{
    int n = *argc, out = n > 0 ? 1 : 0, i = 1, rc = RC_OK;
    while (i < n) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) { /* end of options: keep it and everything after */
            while (i < n)
                argv[out++] = argv[i++];
            break;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') { /* positional, "-x" or "-": the caller's */
            argv[out++] = argv[i++];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        if (nl == 3 && strncmp(name, "set", 3) == 0 && !find_def(defs, "set")) {
            if (eq) {
                rc = set_pair(defs, obj, eq + 1);
                i++;
            } else if (i + 1 < n) {
                rc = set_pair(defs, obj, argv[i + 1]);
                i += 2;
            } else {
                rc = rc_error(RC_EINVAL, "command line: option --set needs name=value");
            }
            if (rc) goto done;
            continue;
        }
        /* the caller's own flags first (even when a setting has the same name), and --help */
        if (in_keep(keep, a, nl + 2) || strcmp(a, "--help") == 0) {
            argv[out++] = argv[i++];
            continue;
        }
        char buf[CFG_NAME_MAX];
        const cfg_def *d = NULL;
        if (nl < sizeof buf) {
            norm_flag(buf, name, nl);
            d = find_def(defs, buf);
        }
        if (!d) {
            char hint[CFG_NAME_MAX + 32] = "";
            if (nl < sizeof buf) suggest(defs, buf, "'--", "'", hint, sizeof hint);
            rc = rc_error(RC_EINVAL, "unknown option '--%.*s'%s", (int)(nl > 200 ? 200 : nl), name,
                          hint);
            goto done;
        }
        if (d->type == CFG_T_RENAMED) {
            rc = renamed_err(d, "command line", 0, name, nl);
            goto done;
        }
        where w = {"command line", NULL, NULL, 0};
        if (eq) {
            rc = set_from_text(d, obj, eq + 1, w);
            i++;
        } else if (d->type == CFG_T_BOOL) {
            /* `--flag` alone is true; `--flag true|false` also reads the next word. */
            const char *next = i + 1 < n ? argv[i + 1] : NULL;
            if (next && (strcmp(next, "true") == 0 || strcmp(next, "false") == 0)) {
                rc = set_from_text(d, obj, next, w);
                i += 2;
            } else {
                *FIELD(obj, d, int) = 1;
                i++;
            }
        } else if (i + 1 < n) {
            rc = set_from_text(d, obj, argv[i + 1], w);
            i += 2;
        } else {
            rc = set_err(RC_EINVAL, w, d->name, "option --%s needs a value", d->name);
        }
        if (rc) goto done;
    }
done:
    if (rc) {
        /* Leave argv as it was only in the sense of a valid array: compact what was processed. */
        while (i < n)
            argv[out++] = argv[i++];
    }
    if (out < n) argv[out] = NULL;
    *argc = out;
    return rc;
}

/* ---- serialisation and help ------------------------------------------------------------------ */

/* The object for the parent group of a dotted name, creating intermediate objects; *leaf gets the
 * last component. NULL on ENOMEM, or (*clash set) if a component clashes with a non-object value. */
static json_t *parent_of(json_t *root, const char *name, const char **leaf, int *clash)
{
    *clash = 0;
    json_t *cur = root;
    const char *p = name;
    for (;;) {
        const char *dot = strchr(p, '.');
        if (!dot) {
            *leaf = p;
            return cur;
        }
        char part[CFG_NAME_MAX];
        size_t n = (size_t)(dot - p);
        if (n >= sizeof part) return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        json_t *next = json_object_get(cur, part);
        if (!next) {
            next = json_object();
            if (!next || json_object_set_new(cur, part, next) != 0) return NULL;
        } else if (!json_is_object(next)) {
            *clash = 1;
            return NULL;
        }
        cur = next;
        p = dot + 1;
    }
}

json_t *cfg_to_json(const cfg_def *defs, const void *obj)
{
    json_t *root = json_object();
    if (!root) goto fail;
    for (const cfg_def *d = defs; d->name; d++) {
        if (d->type == CFG_T_RENAMED) continue;
        const char *leaf;
        int clash;
        json_t *parent = parent_of(root, d->name, &leaf, &clash), *v = NULL;
        if (!parent && !clash) goto fail;
        if (clash || json_object_get(parent, leaf)) { /* "a" and "a.b", in either order */
            json_decref(root);
            rc_error(RC_EINVAL,
                     "cfg_to_json: setting '%s' clashes with another ('x' and 'x.y' cannot both be in "
                     "one JSON object)",
                     d->name);
            return NULL;
        }
        switch (d->type) {
        case CFG_T_INT:
            v = json_integer(*CFIELD(obj, d, long long));
            break;
        case CFG_T_DOUBLE:
            v = json_real(*CFIELD(obj, d, double));
            break;
        case CFG_T_BOOL:
            v = json_boolean(*CFIELD(obj, d, int));
            break;
        case CFG_T_STRING:
        case CFG_T_ENUM: {
            const char *s = *CFIELD(obj, d, char *);
            v = s ? json_string(s) : json_null();
            break;
        }
        case CFG_T_JSON: {
            const json_t *j = *CFIELD(obj, d, json_t *);
            v = j ? json_deep_copy(j) : json_null();
            break;
        }
        case CFG_T_RENAMED:
            break;
        }
        /* json_real refuses non-finite values: store null then (cannot come from a file). */
        if (!v && d->type == CFG_T_DOUBLE) v = json_null();
        if (!v || json_object_set_new(parent, leaf, v) != 0) goto fail;
    }
    return root;
fail:
    json_decref(root);
    rc_error(RC_ENOMEM, "cfg_to_json: out of memory");
    return NULL;
}

static void fmt_default(const cfg_def *d, char *buf, size_t cap)
{
    switch (d->type) {
    case CFG_T_INT:
        snprintf(buf, cap, "%lld", d->def_int);
        break;
    case CFG_T_DOUBLE:
        snprintf(buf, cap, "%g", d->def_double);
        break;
    case CFG_T_BOOL:
        snprintf(buf, cap, "%s", d->def_int ? "true" : "false");
        break;
    case CFG_T_STRING:
    case CFG_T_ENUM:
    case CFG_T_JSON:
        snprintf(buf, cap, "%s", d->def_str ? d->def_str : "(none)");
        break;
    case CFG_T_RENAMED:
        buf[0] = '\0';
        break;
    }
}

static void fmt_range(const cfg_def *d, char *buf, size_t cap)
{
    buf[0] = '\0';
    if ((d->type == CFG_T_INT || d->type == CFG_T_DOUBLE) && has_bounds(d))
        snprintf(buf, cap, "[%g, %g]", d->min, d->max);
    else if (d->type == CFG_T_ENUM && d->choices)
        snprintf(buf, cap, "%s", d->choices);
}

void cfg_print_help(const cfg_def *defs, FILE *out)
{
    int wn = 6, wd = 7, wr = 5;
    char def[64], range[128];
    for (const cfg_def *d = defs; d->name; d++) {
        if (d->type == CFG_T_RENAMED) continue;
        int n = (int)strlen(d->name) + 2;
        if (n > wn) wn = n;
        fmt_default(d, def, sizeof def);
        fmt_range(d, range, sizeof range);
        if ((int)strlen(def) > wd) wd = (int)strlen(def);
        if ((int)strlen(range) > wr) wr = (int)strlen(range);
    }
    if (wn > 40) wn = 40;
    if (wd > 24) wd = 24;
    if (wr > 40) wr = 40;
    fprintf(out, "  %-*s %-6s %-*s %-*s %s\n", wn, "option", "type", wd, "default", wr, "range",
            "description");
    for (const cfg_def *d = defs; d->name; d++) {
        if (d->type == CFG_T_RENAMED) continue;
        char opt[CFG_NAME_MAX + 3];
        snprintf(opt, sizeof opt, "--%s", d->name);
        fmt_default(d, def, sizeof def);
        fmt_range(d, range, sizeof range);
        fprintf(out, "  %-*s %-6s %-*s %-*s %s\n", wn, opt, type_name(d->type), wd, def, wr, range,
                d->help ? d->help : "");
    }
}
