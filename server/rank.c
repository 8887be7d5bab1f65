/* server/rank.c - POST /v1/rank: Wide & Deep ranking of a request's candidates (DESIGN.md section 5).
 *
 *   {"user_id":"u1", "context":{"age":37,"workclass":"Private",...},
 *    "candidates":[{"item_id":"a","features":{"occupation":"Sales",...}}, ...], "k":10,
 *    "model":"widedeep", "experiment":"homepage"}
 *   -> {"items":[{"item_id":"a","score":1.23,"probability":0.77},...], "model":"widedeep",
 *       "version":"3", "user_id":"u1", "request_id":"..."}
 *
 * Features are keyed by the model's input column names (its spec's "columns"); a candidate's feature
 * overrides the context's; a feature neither gives is missing and takes the model's default (numeric:
 * the configured default or the training mean; categorical: the OOV bucket); unknown categories go to
 * the OOV bucket; names the model does not use are ignored. Every candidate is scored in one batched
 * forward pass (matrix-matrix products); the answer holds the best k by probability, best first (ties:
 * earlier candidate first). Without "model", the first configured model of type widedeep serves.
 *
 * Errors (problem+json): 400 body not JSON / too deep / duplicate key / a field of the wrong JSON type,
 * naming it ("candidates[3].features.age: expected a string, a number or null"); 422 unknown top-level
 * field, no candidates or more than limits.max_items, k outside [1, k_max], item_id missing, empty or
 * longer than limits.max_id_len, a numeric feature whose string is not a number (naming the field), a
 * model that is not a widedeep model; 404 unknown model; 503 model not loaded.
 *
 * Memory: the body is read by a strict two-pass JSON reader below (no jansson document: it would allocate
 * a node per value); decoded values and strings live in the connection's handler slot (grown once,
 * reused by every request of the connection), the model scratch and top-k buffers in thread-local
 * storage (one entry per recently served model version, see tls_get): a request allocates nothing but
 * its answer. No lock is taken here (registry_acquire holds its mutex for one pointer read).
 * Measured (bench/rank_bench.c in process, bench/rank_adult.sh over HTTP): 100 candidates of the Adult
 * model, median ~100 us of handler time on a loaded 2-core machine (~148 us before the ReLU of
 * models/widedeep.c stopped branching); sgemm is ~30% of it, the JSON reader ~30%. With 16 connections
 * the handler time stays the same: the client p99 is queueing behind 2 HTTP threads on 2 shared cores.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"
#include "core/err.h"
#include "core/topk.h"
#include "models/features.h"
#include "models/widedeep.h"
#include "server/http.h"
#include "server/registry.h"
#include "server/server.h"

int route_rank(http_req *r);

/* ---- per-connection slot ---- */
typedef struct rank_job {
    feat_value *ctx;   /* (ninputs) */
    size_t ctx_cap;
    feat_value *cand;  /* (ncand, ninputs) */
    size_t cand_cap;
    const char **ids;  /* (ncand) item_id bytes (into the body or the arena), id_len their lengths */
    size_t *id_len;
    size_t ids_cap, id_len_cap;
    uint32_t *seen;    /* (ninputs) stamp of the object that last set each input (duplicate keys) */
    size_t seen_cap;
    uint32_t stamp;
    char *arena;       /* decoded strings with escapes; capacity >= body length, so pointers stay put */
    size_t arena_cap;
} rank_job;

static void job_free(void *p)
{
    rank_job *j = p;
    if (!j) return;
    free(j->ctx);
    free(j->cand);
    free((void *)j->ids);
    free(j->id_len);
    free(j->seen);
    free(j->arena);
    free(j);
}

static void *job_new(void)
{
    return calloc(1, sizeof(rank_job));
}

/* After a request: what a large request grew (arena ~ body, candidate features ~ candidates x inputs x
 * 32 bytes, ids ~ candidates x 8 bytes) goes, so an idle keep-alive connection does not pin it. The
 * arena and features keep up to HTTP_KEEP_BYTES (a 50-candidate, 8-input request reuses them), the id
 * arrays 4 KiB each (500 candidates). */
static void job_trim(void *p)
{
    rank_job *j = p;
#define TRIM_(ptr, cap, elem, keep)                               \
    do {                                                          \
        if ((cap) * (elem) > (keep)) {                            \
            free((void *)(ptr));                                  \
            (ptr) = NULL;                                         \
            (cap) = 0;                                            \
        }                                                         \
    } while (0)
    TRIM_(j->ctx, j->ctx_cap, sizeof *j->ctx, HTTP_KEEP_BYTES);
    TRIM_(j->cand, j->cand_cap, sizeof *j->cand, HTTP_KEEP_BYTES);
    TRIM_(j->ids, j->ids_cap, sizeof *j->ids, HTTP_KEEP_BYTES / 4);
    TRIM_(j->id_len, j->id_len_cap, sizeof *j->id_len, HTTP_KEEP_BYTES / 4);
    TRIM_(j->arena, j->arena_cap, 1, HTTP_KEEP_BYTES);
    TRIM_(j->seen, j->seen_cap, sizeof *j->seen, HTTP_KEEP_BYTES); /* freed stamps read 0 again once regrown (grow_seen) */
#undef TRIM_
}

static const http_slot_type rank_slot = {"/v1/rank", job_new, job_free, job_trim};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return RC_OK;
    if (need < 16) need = 16;
    void *q = realloc(*p, need * elem);
    if (!q) return RC_ENOMEM;
    *p = q;
    *cap = need;
    return RC_OK;
}

/* grow() for the duplicate-key stamps: the new entries must read 0 ("never set"). realloc's memory is
 * whatever the allocator had there, often the stamps of a closed connection's job: an input whose stale
 * stamp equals the current object's was refused as a "duplicate key" (400) on a fresh connection. */
static int grow_seen(rank_job *j, size_t need)
{
    size_t old = j->seen_cap;
    if (grow((void **)&j->seen, &j->seen_cap, need, sizeof *j->seen)) return RC_ENOMEM;
    if (j->seen_cap > old) memset(j->seen + old, 0, (j->seen_cap - old) * sizeof *j->seen);
    return RC_OK;
}

/* ---- a strict, allocation-free JSON reader for the request body ----
 * Pass 1 (jp_value over the whole body) checks the syntax (RFC 8259: strings with valid UTF-8 and
 * escapes, numbers, literals, nesting at most max_depth); pass 2 walks the valid document and decodes
 * what the handler needs: strings without escapes point into the body, strings with escapes are decoded
 * into the connection's arena. jansson would allocate a node per value (~600 for 100 candidates): this
 * is the request's hot path. */
typedef struct jp {
    const char *s;
    size_t n, i;
    char *arena;     /* NULL in pass 1 */
    size_t alen;
    int depth, max_depth;
    char *detail;
    size_t cap;
} jp;

static int jp_fail(jp *p, const char *what)
{
    snprintf(p->detail, p->cap, "invalid JSON: %s at offset %zu", what, p->i);
    return -1;
}

static inline int jp_peek(jp *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
    return p->i < p->n ? (unsigned char)p->s[p->i] : -1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int jp_hex4(jp *p, size_t at, unsigned *out)
{
    if (at + 4 > p->n) return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval((unsigned char)p->s[at + k]);
        if (h < 0) return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned cp, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* The string at p->i (a '"'). When out != NULL, *out and *len get its decoded bytes. */
static int jp_string(jp *p, const char **out, size_t *len)
{
    size_t i = p->i + 1, start = i;
    int esc = 0;
    while (i < p->n && p->s[i] != '"') {
        unsigned char c = (unsigned char)p->s[i];
        if (c >= 0x20 && c < 0x80 && c != '\\') { /* the common case: printable ASCII */
            i++;
            continue;
        }
        if (c < 0x20) return jp_fail(p, "control character in a string");
        if (c == '\\') {
            esc = 1;
            if (i + 1 >= p->n) break;
            char e = p->s[i + 1];
            if (e == 'u') {
                unsigned cp;
                if (jp_hex4(p, i + 2, &cp)) return jp_fail(p, "bad \\u escape");
                i += 6;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (i + 1 >= p->n || p->s[i] != '\\' || p->s[i + 1] != 'u' || jp_hex4(p, i + 2, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return jp_fail(p, "unpaired surrogate");
                    i += 6;
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return jp_fail(p, "unpaired surrogate");
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0) return jp_fail(p, "bad escape");
            i += 2;
            continue;
        }
        size_t l = utf8_len((const unsigned char *)p->s + i, p->n - i);
        if (!l) return jp_fail(p, "invalid UTF-8");
        i += l;
    }
    if (i >= p->n) return jp_fail(p, "unterminated string");
    size_t end = i;
    p->i = i + 1;
    if (!out) return 0;
    if (!esc || !p->arena) {
        *out = p->s + start;
        *len = end - start;
        return 0;
    }
    char *o = p->arena + p->alen, *o0 = o;
    for (size_t k = start; k < end;) {
        char c = p->s[k];
        if (c != '\\') {
            *o++ = c;
            k++;
            continue;
        }
        char e = p->s[k + 1];
        if (e == 'u') {
            unsigned cp, lo;
            jp_hex4(p, k + 2, &cp);
            k += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                jp_hex4(p, k + 2, &lo);
                k += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o += put_utf8(o, cp);
            continue;
        }
        *o++ = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
        k += 2;
    }
    *out = o0;
    *len = (size_t)(o - o0);
    p->alen += *len;
    return 0;
}

/* A number at p->i. *is_int: no fraction and no exponent. */
static int jp_number(jp *p, double *v, int *is_int)
{
    size_t i = p->i;
    const char *s = p->s;
    if (i < p->n && s[i] == '-') i++;
    if (i >= p->n) return jp_fail(p, "bad number");
    if (s[i] == '0') i++;
    else if (s[i] >= '1' && s[i] <= '9') while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    else return jp_fail(p, "bad number");
    int integer = 1;
    if (i < p->n && s[i] == '.') {
        integer = 0;
        i++;
        if (i >= p->n || s[i] < '0' || s[i] > '9') return jp_fail(p, "bad number");
        while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        integer = 0;
        i++;
        if (i < p->n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->n || s[i] < '0' || s[i] > '9') return jp_fail(p, "bad number");
        while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (v) {
        char buf[64];
        size_t l = i - p->i;
        if (l < sizeof buf) {
            memcpy(buf, s + p->i, l);
            buf[l] = '\0';
            *v = strtod(buf, NULL);
        } else {
            /* the body is NUL-terminated and pass 1 checked the grammar: strtod stops where the number
             * does (a long integer is a finite double up to 309 digits, it was HUGE_VAL: "out of range") */
            *v = strtod(s + p->i, NULL);
        }
    }
    if (is_int) *is_int = integer;
    p->i = i;
    return 0;
}

static int jp_literal(jp *p, const char *lit)
{
    size_t l = strlen(lit);
    if (p->i + l > p->n || memcmp(p->s + p->i, lit, l) != 0) return jp_fail(p, "unexpected character");
    p->i += l;
    return 0;
}

/* Skip (and so validate) any value. */
static int jp_value(jp *p)
{
    int c = jp_peek(p);
    if (c == '"') return jp_string(p, NULL, NULL);
    if (c == '-' || (c >= '0' && c <= '9')) return jp_number(p, NULL, NULL);
    if (c == 't') return jp_literal(p, "true");
    if (c == 'f') return jp_literal(p, "false");
    if (c == 'n') return jp_literal(p, "null");
    if (c != '{' && c != '[') return c < 0 ? jp_fail(p, "unexpected end") : jp_fail(p, "unexpected character");
    if (++p->depth > p->max_depth) {
        snprintf(p->detail, p->cap, "nesting deeper than %d at offset %zu", p->max_depth, p->i);
        return -1;
    }
    char close = c == '{' ? '}' : ']';
    p->i++;
    if (jp_peek(p) == close) {
        p->i++;
        p->depth--;
        return 0;
    }
    for (;;) {
        if (c == '{') {
            if (jp_peek(p) != '"') return jp_fail(p, "expected a string key");
            if (jp_string(p, NULL, NULL)) return -1;
            if (jp_peek(p) != ':') return jp_fail(p, "expected ':'");
            p->i++;
        }
        if (jp_value(p)) return -1;
        int d = jp_peek(p);
        if (d == ',') {
            p->i++;
            continue;
        }
        if (d == close) {
            p->i++;
            p->depth--;
            return 0;
        }
        return jp_fail(p, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

/* Skip the value at p->i of a document pass 1 accepted: only brackets and string ends matter. */
static void jp_skip(jp *p)
{
    int depth = 0;
    jp_peek(p);
    do {
        char c = p->s[p->i];
        if (c == '"') {
            size_t i = p->i + 1;
            for (;;) {
                const char *q = memchr(p->s + i, '"', p->n - i);
                i = (size_t)(q - p->s);
                size_t b = 0;
                while (p->s[i - 1 - b] == '\\') b++;
                if (b % 2 == 0) break;
                i++;
            }
            p->i = i + 1;
        } else if (c == '{' || c == '[') {
            depth++;
            p->i++;
        } else if (c == '}' || c == ']') {
            depth--;
            p->i++;
        } else if (depth == 0) {
            /* a scalar at the top: number or literal */
            while (p->i < p->n && !strchr(",]} \t\r\n", p->s[p->i])) p->i++;
        } else {
            p->i++;
        }
    } while (depth > 0 && p->i < p->n);
}

/* Pass 2 helpers (the document is valid). Kinds of the value at p->i: */
enum { JV_STR, JV_NUM, JV_TRUE, JV_FALSE, JV_NULL, JV_OBJ, JV_ARR };
static int jp_kind(jp *p)
{
    switch (jp_peek(p)) {
    case '"': return JV_STR;
    case 't': return JV_TRUE;
    case 'f': return JV_FALSE;
    case 'n': return JV_NULL;
    case '{': return JV_OBJ;
    case '[': return JV_ARR;
    default: return JV_NUM;
    }
}

/* Enter the object or array at p->i. */
static void jp_open(jp *p)
{
    jp_peek(p);
    p->i++;
}

/* Inside an object or array entered by jp_open: 1 if there is a next member (for objects the key goes
 * to key and klen and p->i is left at the value), 0 at the end (the closing bracket is consumed). */
static int jp_next(jp *p, int obj, int first, const char **key, size_t *klen)
{
    int c = jp_peek(p);
    if (c == '}' || c == ']') {
        p->i++;
        return 0;
    }
    if (!first) {
        p->i++; /* ',' */
        jp_peek(p);
    }
    if (obj) {
        jp_string(p, key, klen);
        jp_peek(p);
        p->i++; /* ':' */
        jp_peek(p);
    }
    return 1;
}

static int key_is(const char *k, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(k, lit, n) == 0;
}

/* ---- per-thread scratch ----
 * Each HTTP thread keeps, for the last few model versions it served (RANK_TLS_MODELS), a scratch for
 * limits.max_items rows and the per-model tables of the decoder; they are made on a version's first
 * request on the thread and kept, so alternating between models (the arms of an experiment) does not
 * reallocate per request. A new version of a model replaces the entry of its older version. */
enum { RANK_TLS_MODELS = 4 };

typedef struct rank_scr {
    uint64_t serial;   /* model version the entry was made for (0: empty) */
    char model[64];    /* its configured name */
    uint64_t used;     /* tick of the last use (least recently used goes first) */
    wd_scratch *sc;
    int max_b;
    uint8_t *numeric;  /* (ninputs) 1 when a numeric feature reads the input */
    size_t *in_len;    /* (ninputs) strlen of each input name (key lookup without strlen) */
} rank_scr;

typedef struct rank_tls {
    rank_scr e[RANK_TLS_MODELS];
    uint64_t tick;
    int32_t *idx;
    float *val;
    int topk_cap;
} rank_tls;

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static _Thread_local rank_tls *tls_cur;

static void scr_clear(rank_scr *e)
{
    wd_scratch_free(e->sc);
    free(e->numeric);
    free(e->in_len);
    memset(e, 0, sizeof *e);
}

static void tls_destroy(void *p)
{
    rank_tls *t = p;
    if (!t) return;
    if (t == tls_cur) tls_cur = NULL;
    for (int i = 0; i < RANK_TLS_MODELS; i++) scr_clear(&t->e[i]);
    free(t->idx);
    free(t->val);
    free(t);
}

static void tls_init_key(void)
{
    pthread_key_create(&tls_key, tls_destroy);
}

/* This thread's scratch entry for version v with room for B rows, and top-k buffers for k. NULL on ENOMEM. */
static rank_scr *tls_get(const model_version *v, int B, int k, rank_tls **tout)
{
    pthread_once(&tls_once, tls_init_key);
    rank_tls *t = tls_cur;
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) return NULL;
        tls_cur = t;
        pthread_setspecific(tls_key, t);
    }
    *tout = t;
    if (k > t->topk_cap) {
        int32_t *i = realloc(t->idx, (size_t)k * sizeof *i);
        if (i) t->idx = i;
        float *f = realloc(t->val, (size_t)k * sizeof *f);
        if (f) t->val = f;
        if (!i || !f) return NULL;
        t->topk_cap = k;
    }
    rank_scr *e = NULL;
    for (int i = 0; i < RANK_TLS_MODELS && !e; i++)
        if (t->e[i].serial == v->serial) e = &t->e[i];
    if (!e) { /* the entry of an older version of the same model, else an empty one, else the LRU one */
        for (int i = 0; i < RANK_TLS_MODELS && !e; i++)
            if (t->e[i].serial && strcmp(t->e[i].model, v->model) == 0) e = &t->e[i];
        for (int i = 0; i < RANK_TLS_MODELS && !e; i++)
            if (!t->e[i].serial) e = &t->e[i];
        if (!e) {
            e = &t->e[0];
            for (int i = 1; i < RANK_TLS_MODELS; i++)
                if (t->e[i].used < e->used) e = &t->e[i];
        }
        scr_clear(e);
    }
    e->used = ++t->tick;
    if (e->serial == v->serial && e->max_b >= B) return e;
    const wd_model *m = v->handle;
    const feat_spec *sp = m->spec;
    scr_clear(e);
    e->numeric = calloc((size_t)sp->ninputs, 1);
    e->in_len = calloc((size_t)sp->ninputs, sizeof *e->in_len);
    e->sc = wd_scratch_new(m, B);
    if (!e->sc || !e->numeric || !e->in_len) {
        scr_clear(e);
        return NULL;
    }
    for (int i = 0; i < sp->nfeat; i++)
        if (sp->f[i].kind == FEAT_NUMERIC) e->numeric[sp->f[i].input] = 1;
    for (int i = 0; i < sp->ninputs; i++) e->in_len[i] = strlen(sp->inputs[i]);
    e->max_b = B;
    e->serial = v->serial;
    snprintf(e->model, sizeof e->model, "%s", v->model);
    e->used = t->tick;
    return e;
}

/* ---- decoding ---- */

/* Where a feature object sits, for messages: "context" (cand < 0) or "candidates[N].features". */
static void where_name(char *buf, size_t cap, long cand)
{
    if (cand < 0) snprintf(buf, cap, "context");
    else snprintf(buf, cap, "candidates[%ld].features", cand);
}

/* Decode the feature object at p->i into vals (ninputs) with e's tables; cand: the candidate's index,
 * -1 for the context (named in messages only when there is an error). Returns 0 or the HTTP status,
 * with p->detail written. */
static int decode_features(jp *p, rank_job *j, const feat_spec *sp, const rank_scr *e, feat_value *vals, long cand)
{
    char where[48];
    for (int i = 0; i < sp->ninputs; i++) vals[i].kind = FEAT_V_MISSING;
    int kind = jp_kind(p);
    if (kind == JV_NULL) return jp_skip(p), 0;
    if (kind != JV_OBJ) {
        where_name(where, sizeof where, cand);
        snprintf(p->detail, p->cap, "%s: expected an object of features", where);
        return 400;
    }
    if (++j->stamp == 0) { /* wrapped (2^32 objects on one connection): forget every stamp */
        memset(j->seen, 0, j->seen_cap * sizeof *j->seen);
        j->stamp = 1;
    }
    uint32_t stamp = j->stamp;
    jp_open(p);
    const char *key;
    size_t klen;
    for (int first = 1; jp_next(p, 1, first, &key, &klen); first = 0) {
        int i = -1;
        for (int c = 0; c < sp->ninputs; c++)
            if (e->in_len[c] == klen && memcmp(key, sp->inputs[c], klen) == 0) {
                i = c;
                break;
            }
        int vk = jp_kind(p);
        if (i < 0 || i == sp->label) { /* not a model input: ignored */
            jp_skip(p);
            continue;
        }
        if (j->seen[i] == stamp) {
            where_name(where, sizeof where, cand);
            snprintf(p->detail, p->cap, "%s.%.64s: duplicate key", where, sp->inputs[i]);
            return 400;
        }
        j->seen[i] = stamp;
        feat_value *fv = &vals[i];
        if (vk == JV_STR) {
            const char *str;
            size_t n;
            jp_string(p, &str, &n);
            fv->kind = FEAT_V_STR;
            fv->s = str;
            fv->len = n;
            double d;
            /* the rule feat_encode applies, checked here to name the field */
            if (e->numeric[i] && !feat_is_missing(sp, str, n) && feat_parse_number(str, n, &d) != RC_OK) {
                where_name(where, sizeof where, cand);
                snprintf(p->detail, p->cap, "%s.%.64s: \"%.*s\"%s is not a number", where, sp->inputs[i],
                         (int)(n > 32 ? 32 : n), str, n > 32 ? "..." : "");
                return 422;
            }
        } else if (vk == JV_NUM) {
            double d;
            jp_number(p, &d, NULL);
            if (!isfinite(d)) {
                where_name(where, sizeof where, cand);
                snprintf(p->detail, p->cap, "%s.%.64s: number out of range", where, sp->inputs[i]);
                return 422;
            }
            fv->kind = FEAT_V_NUM;
            fv->num = d;
        } else if (vk == JV_NULL) {
            jp_skip(p);
            fv->kind = FEAT_V_MISSING;
        } else {
            where_name(where, sizeof where, cand);
            snprintf(p->detail, p->cap, "%s.%.64s: expected a string, a number or null", where, sp->inputs[i]);
            return 400;
        }
    }
    return 0;
}

/* The model version to use: the named one, or the first configured widedeep model. NULL with the
 * problem answered. */
static model_version *pick_model(http_req *r, const char *name)
{
    server *srv = r->srv;
    int known;
    if (name) {
        model_version *v = registry_acquire(srv->reg, name, &known);
        if (!v) {
            if (!known) http_problem(r, 404, "unknown-model", "no model '%.64s' is configured", name);
            else http_problem(r, 503, "model-not-loaded", "model '%.64s' has no version loaded yet", name);
            return NULL;
        }
        if (strcmp(v->type_name, "widedeep") != 0) {
            http_problem(r, 422, "wrong-model-type", "model '%.64s' is a %s model: /v1/rank needs a widedeep model",
                         name, v->type_name);
            registry_release(srv->reg, v);
            return NULL;
        }
        return v;
    }
    int not_loaded = 0;
    for (int i = 0; i < registry_count(srv->reg); i++) {
        model_version *v = registry_acquire(srv->reg, registry_name(srv->reg, i), &known);
        if (v && strcmp(v->type_name, "widedeep") == 0) return v;
        if (!v && known) not_loaded++;
        registry_release(srv->reg, v);
    }
    if (not_loaded)
        http_problem(r, 503, "model-not-loaded", "no widedeep model is loaded yet (name one with \"model\")");
    else
        http_problem(r, 404, "unknown-model", "no widedeep model is configured");
    return NULL;
}

/* ---- the handler ---- */
#define PROBLEM(st, ...) \
    do { \
        if ((st) == 503) http_oom(r, "the request's buffers"); \
        else http_problem(r, st, (st) == 400 ? "invalid-request" : "unprocessable-request", __VA_ARGS__); \
        goto done; \
    } while (0)

int route_rank(http_req *r)
{
    server *srv = r->srv;
    const api_limits *lim = &srv->limits;
    char detail[320];
    model_version *v = NULL;
    jp p = {r->body, r->body_len, 0, NULL, 0, 0, lim->max_depth, detail, sizeof detail};
    /* pass 1: syntax */
    if (jp_value(&p)) return http_problem(r, 400, "invalid-request", "%s", detail);
    if (jp_peek(&p) >= 0) {
        jp_fail(&p, "trailing characters");
        return http_problem(r, 400, "invalid-request", "%s", detail);
    }
    p.i = 0;
    p.depth = 0;
    if (jp_kind(&p) != JV_OBJ) return http_problem(r, 400, "invalid-request", "the body must be a JSON object");
    rank_job *j = http_slot(r, &rank_slot);
    if (!j) return http_oom(r, "the request's state");
    if (grow((void **)&j->arena, &j->arena_cap, r->body_len + 1, 1)) return http_oom(r, "the request's body");
    p.arena = j->arena; /* every string is decoded at most once: the arena never needs more than the body */
    p.alen = 0;
    /* pass 2: the top-level members (offsets of their values) */
    static const char *const known[] = {"user_id", "context", "candidates", "k", "model", "experiment", NULL};
    enum { F_USER, F_CTX, F_CANDS, F_K, F_MODEL, F_EXP, NF };
    size_t at[NF];
    int has[NF] = {0};
    const char *key;
    size_t klen;
    jp_open(&p);
    for (int first = 1; jp_next(&p, 1, first, &key, &klen); first = 0) {
        int f = -1;
        for (int i = 0; known[i]; i++)
            if (key_is(key, klen, known[i])) f = i;
        if (f < 0) PROBLEM(422, "unknown field '%.*s'", (int)(klen > 64 ? 64 : klen), key);
        if (has[f]) PROBLEM(400, "duplicate key '%s'", known[f]);
        has[f] = 1;
        jp_peek(&p);
        at[f] = p.i;
        jp_skip(&p);
    }
    const char *user = NULL, *model = NULL;
    size_t user_len = 0, model_len = 0;
    char model_name[72];
    if (has[F_USER]) {
        p.i = at[F_USER];
        if (jp_kind(&p) != JV_STR) PROBLEM(400, "user_id: expected a string");
        jp_string(&p, &user, &user_len);
    }
    if (has[F_MODEL]) {
        p.i = at[F_MODEL];
        if (jp_kind(&p) != JV_STR) PROBLEM(400, "model: expected a string");
        jp_string(&p, &model, &model_len);
        snprintf(model_name, sizeof model_name, "%.*s", (int)(model_len > 64 ? 64 : model_len), model);
        if (model_len > 63 || memchr(model, '\0', model_len)) {
            http_problem(r, 404, "unknown-model", "no model '%s' is configured", model_name);
            goto done;
        }
    }
    if (has[F_EXP]) {
        p.i = at[F_EXP];
        if (jp_kind(&p) != JV_STR) PROBLEM(400, "experiment: expected a string");
    }
    long long k = lim->k_default;
    if (has[F_K]) {
        p.i = at[F_K];
        double kd;
        int is_int = 0;
        if (jp_kind(&p) == JV_NUM) jp_number(&p, &kd, &is_int);
        if (!is_int) PROBLEM(400, "k: expected an integer");
        k = kd > 1e15 ? (long long)1e15 : kd < -1e15 ? (long long)-1e15 : (long long)kd;
    }
    if (!has[F_CANDS]) PROBLEM(422, "candidates: required");
    p.i = at[F_CANDS];
    if (jp_kind(&p) != JV_ARR) PROBLEM(400, "candidates: expected an array");
    size_t n = 0;
    jp_open(&p);
    for (int first = 1; jp_next(&p, 0, first, NULL, NULL); first = 0) {
        n++;
        jp_skip(&p);
    }
    if (n == 0 || n > (size_t)lim->max_items)
        PROBLEM(422, "candidates: %zu given, between 1 and %d accepted", n, lim->max_items);
    if (k < 1 || k > lim->k_max) PROBLEM(422, "k: %lld is outside [1, %d]", k, lim->k_max);
    if ((size_t)k > n) k = (long long)n;
    if (!(v = pick_model(r, has[F_MODEL] ? model_name : NULL))) goto done;
    const wd_model *m = v->handle;
    const feat_spec *sp = m->spec;
    size_t ni = (size_t)sp->ninputs;
    rank_tls *t = NULL;
    rank_scr *e = tls_get(v, lim->max_items, (int)k, &t);
    if (!e || grow((void **)&j->ctx, &j->ctx_cap, ni, sizeof *j->ctx) ||
        grow((void **)&j->cand, &j->cand_cap, ni * n, sizeof *j->cand) ||
        grow((void **)&j->ids, &j->ids_cap, n, sizeof *j->ids) ||
        grow((void **)&j->id_len, &j->id_len_cap, n, sizeof *j->id_len) ||
        grow_seen(j, ni))
        PROBLEM(503, "out of memory");
    int st;
    if (has[F_CTX]) {
        p.i = at[F_CTX];
        if ((st = decode_features(&p, j, sp, e, j->ctx, -1))) PROBLEM(st, "%s", detail);
    } else {
        for (size_t i = 0; i < ni; i++) j->ctx[i].kind = FEAT_V_MISSING;
    }
    p.i = at[F_CANDS];
    jp_open(&p);
    size_t c = 0;
    for (int first = 1; jp_next(&p, 0, first, NULL, NULL); first = 0, c++) {
        if (jp_kind(&p) != JV_OBJ) PROBLEM(400, "candidates[%zu]: expected an object", c);
        int got_id = 0, got_feat = 0;
        feat_value *cv = j->cand + c * ni;
        jp_open(&p);
        for (int f2 = 1; jp_next(&p, 1, f2, &key, &klen); f2 = 0) {
            if (key_is(key, klen, "item_id")) {
                if (got_id++) PROBLEM(400, "candidates[%zu]: duplicate key 'item_id'", c);
                if (jp_kind(&p) != JV_STR) PROBLEM(400, "candidates[%zu].item_id: expected a string", c);
                jp_string(&p, &j->ids[c], &j->id_len[c]);
                if (j->id_len[c] == 0 || j->id_len[c] > (size_t)lim->max_id_len)
                    PROBLEM(422, "candidates[%zu].item_id: length %zu outside [1, %d]", c, j->id_len[c],
                            lim->max_id_len);
            } else if (key_is(key, klen, "features")) {
                if (got_feat++) PROBLEM(400, "candidates[%zu]: duplicate key 'features'", c);
                if ((st = decode_features(&p, j, sp, e, cv, (long)c))) PROBLEM(st, "%s", detail);
            } else {
                PROBLEM(422, "candidates[%zu]: unknown field '%.*s'", c, (int)(klen > 64 ? 64 : klen), key);
            }
        }
        if (!got_id) PROBLEM(422, "candidates[%zu].item_id: required", c);
        if (!got_feat)
            for (size_t i = 0; i < ni; i++) cv[i].kind = FEAT_V_MISSING;
    }
    int bad = -1;
    if (wd_score(m, e->sc, j->ctx, j->cand, (int)n, &bad) != RC_OK) PROBLEM(422, "candidates[%d]: %s", bad, rc_errmsg());
    int got = topk_select(e->sc->logit, (int64_t)n, (int)k, NULL, t->idx, t->val);
    sbuf *out = r->out;
    sbuf_adds(out, "{\"items\":[");
    for (int i = 0; i < got; i++) {
        int ci = t->idx[i];
        if (i) sbuf_addc(out, ',');
        sbuf_adds(out, "{\"item_id\":");
        sbuf_json_str(out, j->ids[ci], j->id_len[ci]);
        sbuf_adds(out, ",\"score\":");
        sbuf_json_float(out, e->sc->logit[ci]);
        sbuf_adds(out, ",\"probability\":");
        sbuf_json_float(out, e->sc->prob[ci]);
        sbuf_addc(out, '}');
    }
    sbuf_adds(out, "],\"model\":");
    sbuf_json_str(out, v->model, strlen(v->model));
    sbuf_adds(out, ",\"version\":\"");
    sbuf_adds(out, v->version_str);
    sbuf_addc(out, '"');
    if (user) {
        sbuf_adds(out, ",\"user_id\":");
        sbuf_json_str(out, user, user_len);
    }
    sbuf_adds(out, ",\"request_id\":");
    sbuf_json_str(out, r->request_id, strlen(r->request_id));
    sbuf_adds(out, "}\n");
    if (sbuf_failed(out)) http_oom(r, "the answer");
    else http_json(r, 200);
done:
    registry_release(srv->reg, v);
    return HTTP_DONE;
}
