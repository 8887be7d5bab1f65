/* server/experiment.c - experiments: the config parser, the documented assignment hash, and the
 * declaration to the event store (see experiment.h). */
#include "server/experiment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"

/* ---- MurmurHash3_x86_32 (Austin Appleby, public domain), fed in pieces so that salt + "/" + unit is
 * hashed without copying it anywhere ---- */
typedef struct mm3 {
    uint32_t h;
    uint32_t tail; /* pending bytes of the current block, little-endian */
    int nt;        /* how many (0..3) */
    size_t len;    /* bytes fed */
} mm3;

static inline uint32_t rotl32(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

static inline uint32_t mm3_k(uint32_t k)
{
    k *= 0xcc9e2d51u;
    k = rotl32(k, 15);
    return k * 0x1b873593u;
}

static inline void mm3_block(mm3 *m, uint32_t k)
{
    m->h ^= mm3_k(k);
    m->h = rotl32(m->h, 13);
    m->h = m->h * 5 + 0xe6546b64u;
}

static void mm3_feed(mm3 *m, const void *data, size_t n)
{
    const unsigned char *p = data;
    m->len += n;
    while (n && m->nt) { /* finish a pending block */
        m->tail |= (uint32_t)*p++ << (8 * m->nt);
        n--;
        if (++m->nt == 4) {
            mm3_block(m, m->tail);
            m->tail = 0;
            m->nt = 0;
        }
    }
    for (; n >= 4; p += 4, n -= 4)
        mm3_block(m, (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    for (; n; n--) m->tail |= (uint32_t)*p++ << (8 * m->nt++);
}

static uint32_t mm3_end(mm3 *m)
{
    uint32_t h = m->h;
    if (m->nt) h ^= mm3_k(m->tail);
    h ^= (uint32_t)m->len;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

uint32_t exp_murmur3_32(const void *data, size_t len, uint32_t seed)
{
    mm3 m = {seed, 0, 0, 0};
    mm3_feed(&m, data, len);
    return mm3_end(&m);
}

static uint32_t to_bucket(uint32_t h)
{
    return (uint32_t)(((uint64_t)h * EXP_BUCKETS) >> 32);
}

uint32_t exp_bucket(const char *salt, size_t salt_len, const char *unit, size_t unit_len)
{
    mm3 m = {0, 0, 0, 0};
    mm3_feed(&m, salt, salt_len);
    mm3_feed(&m, "/", 1);
    mm3_feed(&m, unit, unit_len);
    return to_bucket(mm3_end(&m));
}

/* The namespace bucket: bucket("ns:" + ns, unit). */
static uint32_t ns_bucket(const char *ns, const char *unit, size_t n)
{
    mm3 m = {0, 0, 0, 0};
    mm3_feed(&m, "ns:", 3);
    mm3_feed(&m, ns, strlen(ns));
    mm3_feed(&m, "/", 1);
    mm3_feed(&m, unit, n);
    return to_bucket(mm3_end(&m));
}

/* ---- assignment ---- */
int exp_assign(const experiment *e, const char *unit, size_t n, double now)
{
    if (e->start > 0 && now < e->start) return -1;
    if (e->stop > 0 && now >= e->stop) return -1;
    if (e->ns[0]) {
        uint32_t b = ns_bucket(e->ns, unit, n);
        if (b < e->ns_lo || b >= e->ns_hi) return -1;
    }
    uint32_t b = exp_bucket(e->salt, strlen(e->salt), unit, n);
    for (int i = 0; i < e->n_arms; i++)
        if (b >= e->arms[i].lo && b < e->arms[i].hi) return i;
    return -1;
}

const char *exp_status(const experiment *e, double now)
{
    if (e->start > 0 && now < e->start) return "scheduled";
    if (e->stop > 0 && now >= e->stop) return "stopped";
    return "running";
}

const experiment *exp_find(const exp_set *s, const char *name, size_t n)
{
    if (!s) return NULL;
    for (int i = 0; i < s->n; i++)
        if (strlen(s->e[i].name) == n && memcmp(s->e[i].name, name, n) == 0) return &s->e[i];
    return NULL;
}

/* ---- the parser ---- */
/* Copy the NUL-terminated src into dst[cap], cut to cap - 1 bytes (snprintf "%s" without GCC's false
 * -Wrestrict / -Wformat-truncation reports at -O1). */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int name_ok(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* A JSON value for a message: its text, cut at 60 bytes. */
static const char *shown(const json_t *v, char *buf, size_t cap)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
    snprintf(buf, cap, "%.60s%s", t ? t : "?", t && strlen(t) > 60 ? "..." : "");
    free(t);
    return buf;
}

/* The type of a JSON value for a message. */
static const char *kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static int days_in(int y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : d[m - 1];
}

/* "YYYY-MM-DDTHH:MM:SS[.frac]Z" (UTC; 't' and 'z' too) -> unix seconds. 0 on success, -1 when the
 * text is not that. */
static int parse_rfc3339(const char *s, double *out)
{
    int y, mo, d, h, mi, sec, n = 0;
    size_t len = strlen(s);
    if (len < 20 || sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) return -1;
    for (int i = 0; i < 19; i++) { /* digits exactly where they belong */
        int digit = s[i] >= '0' && s[i] <= '9';
        int want_digit = !(i == 4 || i == 7 || i == 10 || i == 13 || i == 16);
        if (digit != want_digit) return -1;
    }
    if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') return -1;
    h = (s[11] - '0') * 10 + (s[12] - '0');
    mi = (s[14] - '0') * 10 + (s[15] - '0');
    sec = (s[17] - '0') * 10 + (s[18] - '0');
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in(y, mo) || h > 23 || mi > 59 || sec > 59) return -1;
    size_t i = 19;
    double frac = 0, scale = 0.1;
    if (s[i] == '.') {
        i++;
        if (!(s[i] >= '0' && s[i] <= '9')) return -1;
        for (; s[i] >= '0' && s[i] <= '9'; i++, scale /= 10) frac += (s[i] - '0') * scale;
    }
    if ((s[i] != 'Z' && s[i] != 'z') || s[i + 1] != '\0') return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1) return -1;
    *out = (double)t + frac;
    return 0;
}

/* A time field: RFC 3339 UTC text or unix seconds (>= 0). */
static int parse_time(const json_t *v, const char *where, double *out)
{
    char b[80];
    if (json_is_number(v)) {
        double t = json_number_value(v);
        if (!isfinite(t) || t < 0 || t > 253402300799.0)
            return rc_error(RC_EINVAL, "%s: %s is not a time (unix seconds from 0 to year 9999)", where,
                            shown(v, b, sizeof b));
        *out = t;
        return RC_OK;
    }
    if (json_is_string(v)) {
        if (parse_rfc3339(json_string_value(v), out) != 0)
            return rc_error(RC_EINVAL,
                            "%s: %s is not an RFC 3339 UTC time like \"2026-12-01T00:00:00Z\" (or give unix "
                            "seconds)",
                            where, shown(v, b, sizeof b));
        return RC_OK;
    }
    return rc_error(RC_EINVAL, "%s: expected an RFC 3339 UTC time or unix seconds, got %s", where, kind(v));
}

/* The one key of obj not in known[], or NULL. */
static const char *unknown_key(const json_t *obj, const char *const *known)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++) ok = strcmp(key, known[i]) == 0;
        if (!ok) return key;
    }
    return NULL;
}

/* A decimal snapshot version: 1..18446744073709551615 without leading zeros. */
static int version_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 20 || s[0] == '0') return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return n < 20 || strcmp(s, "18446744073709551615") <= 0;
}

static int parse_arm(const json_t *a, const char *where, const char *const *models, int n_models, exp_arm *arm)
{
    static const char *const known[] = {"name", "model", "version", "share", NULL};
    char b[80];
    if (!json_is_object(a)) return rc_error(RC_EINVAL, "%s: expected an object, got %s", where, kind(a));
    const char *uk = unknown_key(a, known);
    if (uk) return rc_error(RC_EINVAL, "%s: unknown field '%.64s' (expected name, model, version, share)", where, uk);
    const json_t *v = json_object_get(a, "name");
    if (!v) return rc_error(RC_EINVAL, "%s.name: required", where);
    if (!json_is_string(v) || !name_ok(json_string_value(v), json_string_length(v), sizeof arm->name - 1))
        return rc_error(RC_EINVAL, "%s.name: %s is not 1-31 characters among [A-Za-z0-9_-]", where, shown(v, b, sizeof b));
    snprintf(arm->name, sizeof arm->name, "%s", json_string_value(v));
    v = json_object_get(a, "model");
    if (!v) return rc_error(RC_EINVAL, "%s.model: required", where);
    if (!json_is_string(v)) return rc_error(RC_EINVAL, "%s.model: expected a string, got %s", where, kind(v));
    int found = 0;
    for (int i = 0; i < n_models && !found; i++) found = strcmp(models[i], json_string_value(v)) == 0;
    if (!found)
        return rc_error(RC_EINVAL, "%s.model: %s is not one of snapshots.models", where, shown(v, b, sizeof b));
    copy_str(arm->model, sizeof arm->model, json_string_value(v));
    copy_str(arm->entry, sizeof arm->entry, arm->model);
    if ((v = json_object_get(a, "version")) && !json_is_null(v)) {
        char ver[32];
        if (json_is_integer(v) && json_integer_value(v) > 0)
            snprintf(ver, sizeof ver, "%lld", (long long)json_integer_value(v));
        else if (json_is_string(v) && json_string_length(v) < sizeof ver)
            snprintf(ver, sizeof ver, "%s", json_string_value(v));
        else
            ver[0] = '\0';
        if (!version_ok(ver))
            return rc_error(RC_EINVAL,
                            "%s.version: %s is not a snapshot version (a decimal integer from 1, no leading zeros, "
                            "e.g. \"3\")",
                            where, shown(v, b, sizeof b));
        if (strlen(arm->model) + 1 + strlen(ver) > 63)
            return rc_error(RC_EINVAL, "%s.version: the pinned entry '%s@%s' is longer than 63 bytes", where, arm->model,
                            ver);
        copy_str(arm->version, sizeof arm->version, ver);
        size_t ml = strlen(arm->model), vl = strlen(ver); /* ml + 1 + vl <= 63 < sizeof arm->entry */
        memcpy(arm->entry, arm->model, ml);
        arm->entry[ml] = '@';
        memcpy(arm->entry + ml + 1, ver, vl + 1);
    }
    v = json_object_get(a, "share");
    if (!v) return rc_error(RC_EINVAL, "%s.share: required", where);
    if (!json_is_number(v)) return rc_error(RC_EINVAL, "%s.share: expected a number, got %s", where, kind(v));
    arm->share = json_number_value(v);
    if (!(arm->share > 0 && arm->share <= 1))
        return rc_error(RC_EINVAL, "%s.share: %s is outside (0, 1]", where, shown(v, b, sizeof b));
    return RC_OK;
}

static int parse_one(const json_t *o, int idx, const char *const *models, int n_models, experiment *e)
{
    static const char *const known[] = {"name",      "salt", "unit",      "arms",  "control", "start", "stop",
                                        "namespace", "namespace_buckets", "alpha", "tau",     NULL};
    char w[32], b[80];
    snprintf(w, sizeof w, "experiments[%d]", idx);
    if (!json_is_object(o)) return rc_error(RC_EINVAL, "%s: expected an object, got %s", w, kind(o));
    const char *uk = unknown_key(o, known);
    if (uk)
        return rc_error(RC_EINVAL,
                        "%s: unknown field '%.64s' (expected name, salt, unit, arms, control, start, stop, namespace, "
                        "namespace_buckets, alpha, tau)",
                        w, uk);
    const json_t *v = json_object_get(o, "name");
    if (!v) return rc_error(RC_EINVAL, "%s.name: required", w);
    if (!json_is_string(v) || !name_ok(json_string_value(v), json_string_length(v), sizeof e->name - 1))
        return rc_error(RC_EINVAL, "%s.name: %s is not 1-63 characters among [A-Za-z0-9_-]", w, shown(v, b, sizeof b));
    snprintf(e->name, sizeof e->name, "%s", json_string_value(v));
    v = json_object_get(o, "salt");
    if (!v) return rc_error(RC_EINVAL, "%s.salt: required (any text: a new salt reshuffles the units)", w);
    if (!json_is_string(v)) return rc_error(RC_EINVAL, "%s.salt: expected a string, got %s", w, kind(v));
    size_t sl = json_string_length(v);
    if (sl == 0 || sl > sizeof e->salt - 1 || memchr(json_string_value(v), '\0', sl))
        return rc_error(RC_EINVAL, "%s.salt: must be 1-127 bytes without NUL, got %zu bytes", w, sl);
    memcpy(e->salt, json_string_value(v), sl + 1);
    if (strncmp(e->salt, "ns:", 3) == 0) /* namespace buckets hash "ns:" + namespace: a salt like that
                                             would make the arm bucket the namespace bucket */
        return rc_error(RC_EINVAL, "%s.salt: salts starting with \"ns:\" are reserved for namespaces", w);
    snprintf(e->unit, sizeof e->unit, "user_id");
    if ((v = json_object_get(o, "unit"))) {
        if (!json_is_string(v) || strcmp(json_string_value(v), "user_id") != 0)
            return rc_error(RC_EINVAL, "%s.unit: %s is not a unit (the only one is \"user_id\")", w, shown(v, b, sizeof b));
    }
    /* arms */
    v = json_object_get(o, "arms");
    if (!v) return rc_error(RC_EINVAL, "%s.arms: required", w);
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > EVSTORE_MAX_ARMS)
        return rc_error(RC_EINVAL, "%s.arms: expected an array of 1 to %d arms, got %s", w, EVSTORE_MAX_ARMS,
                        json_is_array(v) ? "an empty array or more" : kind(v));
    e->n_arms = (int)json_array_size(v);
    double cum = 0;
    for (int i = 0; i < e->n_arms; i++) {
        char wa[64];
        snprintf(wa, sizeof wa, "%s.arms[%d]", w, i);
        int rc = parse_arm(json_array_get(v, (size_t)i), wa, models, n_models, &e->arms[i]);
        if (rc != RC_OK) return rc;
        for (int j = 0; j < i; j++)
            if (strcmp(e->arms[j].name, e->arms[i].name) == 0)
                return rc_error(RC_EINVAL, "%s.name: '%s' is also the name of arms[%d]", wa, e->arms[i].name, j);
        e->arms[i].lo = (uint32_t)lround(cum * EXP_BUCKETS);
        cum += e->arms[i].share;
        long hi = lround(cum * EXP_BUCKETS);
        e->arms[i].hi = (uint32_t)(hi > EXP_BUCKETS ? EXP_BUCKETS : hi);
        if (e->arms[i].hi <= e->arms[i].lo)
            return rc_error(RC_EINVAL,
                            "%s.share: %.10g rounds to no bucket of %d (the smallest share is 1/%d = 0.0001)", wa,
                            e->arms[i].share, EXP_BUCKETS, EXP_BUCKETS);
    }
    if (cum > 1 + 1e-9) {
        return rc_error(RC_EINVAL, "%s.arms: the shares add up to %.10g, more than 1", w, cum);
    }
    /* control */
    e->control = 0;
    if ((v = json_object_get(o, "control"))) {
        e->control = -1;
        for (int i = 0; json_is_string(v) && i < e->n_arms; i++)
            if (strcmp(e->arms[i].name, json_string_value(v)) == 0) e->control = i;
        if (e->control < 0)
            return rc_error(RC_EINVAL, "%s.control: %s is not the name of one of its arms", w, shown(v, b, sizeof b));
    }
    /* window */
    int rc;
    if ((v = json_object_get(o, "start")) && !json_is_null(v)) {
        snprintf(b, sizeof b, "%s.start", w);
        if ((rc = parse_time(v, b, &e->start)) != RC_OK) return rc;
    }
    if ((v = json_object_get(o, "stop")) && !json_is_null(v)) {
        snprintf(b, sizeof b, "%s.stop", w);
        if ((rc = parse_time(v, b, &e->stop)) != RC_OK) return rc;
    }
    if (e->start > 0 && e->stop > 0 && e->stop <= e->start)
        return rc_error(RC_EINVAL, "%s.stop: must be after start", w);
    /* namespace */
    const json_t *nb = json_object_get(o, "namespace_buckets");
    if ((v = json_object_get(o, "namespace")) && !json_is_null(v)) {
        if (!json_is_string(v) || !name_ok(json_string_value(v), json_string_length(v), sizeof e->ns - 1))
            return rc_error(RC_EINVAL, "%s.namespace: %s is not 1-63 characters among [A-Za-z0-9_-]", w,
                            shown(v, b, sizeof b));
        snprintf(e->ns, sizeof e->ns, "%s", json_string_value(v));
        e->ns_lo = 0;
        e->ns_hi = EXP_BUCKETS;
        if (nb) {
            json_int_t lo, hi;
            if (!json_is_array(nb) || json_array_size(nb) != 2 || !json_is_integer(json_array_get(nb, 0)) ||
                !json_is_integer(json_array_get(nb, 1)) || (lo = json_integer_value(json_array_get(nb, 0))) < 0 ||
                (hi = json_integer_value(json_array_get(nb, 1))) > EXP_BUCKETS || lo >= hi)
                return rc_error(RC_EINVAL,
                                "%s.namespace_buckets: %s is not [lo, hi) with integers 0 <= lo < hi <= %d", w,
                                shown(nb, b, sizeof b), EXP_BUCKETS);
            e->ns_lo = (uint32_t)lo;
            e->ns_hi = (uint32_t)hi;
        }
    } else if (nb) {
        return rc_error(RC_EINVAL, "%s.namespace_buckets: given without a namespace", w);
    }
    /* statistics */
    e->alpha = 0.05;
    e->tau = 0.1;
    if ((v = json_object_get(o, "alpha"))) {
        if (!json_is_number(v) || !(json_number_value(v) > 0 && json_number_value(v) < 0.5))
            return rc_error(RC_EINVAL, "%s.alpha: %s is outside (0, 0.5)", w, shown(v, b, sizeof b));
        e->alpha = json_number_value(v);
    }
    if ((v = json_object_get(o, "tau"))) {
        if (!json_is_number(v) || !(json_number_value(v) > 0 && json_number_value(v) <= 100))
            return rc_error(RC_EINVAL, "%s.tau: %s is outside (0, 100]", w, shown(v, b, sizeof b));
        e->tau = json_number_value(v);
    }
    e->run = -1;
    return RC_OK;
}

int exp_parse(const json_t *arr, const char *const *models, int n_models, exp_set *out)
{
    memset(out, 0, sizeof *out);
    if (!arr || json_is_null(arr)) return RC_OK;
    if (!json_is_array(arr)) return rc_error(RC_EINVAL, "experiments: expected an array, got %s", kind(arr));
    size_t n = json_array_size(arr);
    if (n == 0) return RC_OK;
    if (n > EVSTORE_MAX_RUNS)
        return rc_error(RC_EINVAL, "experiments: %zu given, at most %d", n, EVSTORE_MAX_RUNS);
    out->e = calloc(n, sizeof *out->e);
    if (!out->e) return rc_error(RC_ENOMEM, "out of memory for %zu experiments", n);
    int rc = RC_OK;
    for (size_t i = 0; i < n && rc == RC_OK; i++) {
        experiment *e = &out->e[i];
        if ((rc = parse_one(json_array_get(arr, i), (int)i, models, n_models, e)) != RC_OK) break;
        for (size_t j = 0; j < i && rc == RC_OK; j++) {
            const experiment *o = &out->e[j];
            if (strcmp(o->name, e->name) == 0)
                rc = rc_error(RC_EINVAL, "experiments[%zu].name: '%s' is also the name of experiments[%zu]", i,
                              e->name, j);
            else if (strcmp(o->salt, e->salt) == 0)
                rc = rc_error(RC_EINVAL,
                              "experiments[%zu].salt: also the salt of experiments[%zu] '%s' (their assignments "
                              "would not be independent)",
                              i, j, o->name);
            else if (e->ns[0] && strcmp(o->ns, e->ns) == 0 && e->ns_lo < o->ns_hi && o->ns_lo < e->ns_hi)
                rc = rc_error(RC_EINVAL,
                              "experiments[%zu].namespace_buckets: [%u, %u) overlaps [%u, %u) of experiments[%zu] "
                              "'%s' in namespace '%s' (a unit would be in both)",
                              i, e->ns_lo, e->ns_hi, o->ns_lo, o->ns_hi, j, o->name, e->ns);
        }
        out->n++;
    }
    if (rc != RC_OK) exp_set_free(out);
    return rc;
}

void exp_set_free(exp_set *s)
{
    if (!s) return;
    free(s->e);
    memset(s, 0, sizeof *s);
}

int exp_pinned_entries(const exp_set *s, const char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    int cap = 0;
    for (int i = 0; i < s->n; i++) cap += s->e[i].n_arms;
    if (cap == 0) return RC_OK;
    const char **v = malloc((size_t)cap * sizeof *v);
    if (!v) return rc_error(RC_ENOMEM, "out of memory");
    int k = 0;
    for (int i = 0; i < s->n; i++)
        for (int a = 0; a < s->e[i].n_arms; a++) {
            const exp_arm *arm = &s->e[i].arms[a];
            if (!arm->version[0]) continue;
            int dup = 0;
            for (int j = 0; j < k && !dup; j++) dup = strcmp(v[j], arm->entry) == 0;
            if (!dup) v[k++] = arm->entry;
        }
    if (k == 0) {
        free(v);
        return RC_OK;
    }
    *out = v;
    *n = k;
    return RC_OK;
}

int exp_declare_all(exp_set *s, evstore *st)
{
    for (int i = 0; i < s->n; i++) {
        experiment *e = &s->e[i];
        const char *names[EVSTORE_MAX_ARMS];
        double shares[EVSTORE_MAX_ARMS];
        for (int a = 0; a < e->n_arms; a++) {
            names[a] = e->arms[a].name;
            shares[a] = e->arms[a].share;
        }
        ev_run_decl d = {.name = e->name, .salt = e->salt, .n_arms = e->n_arms, .arm_names = names, .shares = shares};
        int rc = evstore_declare(st, &d, &e->run);
        if (rc != RC_OK) return rc;
    }
    return RC_OK;
}
