/* tests/test_server_mix.c - every route over shared keep-alive connections (issue 9).
 *
 * One keep-alive connection that called POST /v1/rank and then POST /v1/next (or the reverse)
 * killed the server: both handlers kept their job in the connection's one slot and cast it to their
 * own type. Here every route gets requests over a few connections that also serve every other
 * route, in a seeded random order (RECD_MIX_SEED=N replays one; the seed and the connection's last
 * requests are printed on failure), and every answer is checked: status, Content-Type, JSON,
 * request id (header and body), the route's own fields, and answers against references (Wide & Deep
 * scored in process; /v1/next against the same stateless request sent alone on a fresh connection).
 * Each connection is one libcurl handle reused for every request; that libcurl really reused the
 * connection is checked on every request (CURLINFO_NUM_CONNECTS 0) unless the previous answer said
 * Connection: close. At the end the server still answers and exits 0 on SIGTERM (under ASan: with
 * no leak either). */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/rng.h"
#include "tests/test_server_util.h"
#include "tests/testlib.h"

enum { NCONN = 3, LOGN = 10, N_ITEMS = 50, MAX_BODY = 8192, NREF = 1024 };

static const char *TOKEN = "mix-admin-token";

typedef struct ref {
    char *key;
    json_t *ans;
} ref;

typedef struct session {
    char id[48];
    char clicks[8][16]; /* known clicks, in order */
    int n_known;
    int n_clicks; /* all clicks, unknown ones included */
} session;

typedef struct mix {
    tsrv s;
    wd_model *wd;
    uint64_t seed;
    rng_t rng;
    tconn conn[NCONN];
    int must_reconnect[NCONN]; /* the previous answer on the connection closed it */
    char log[NCONN][LOGN][160];
    int nlog[NCONN];
    int total;
    session sess[NCONN];
    int sess_serial;
    ref refs[NREF];
    int nrefs;
    int counts[64];
    const char *count_names[64];
} mix;

/* ---------------------------------------------------------------- failures with their context */

static void mix_fail(mix *m, int c, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));
static void mix_fail(mix *m, int c, int line, const char *fmt, ...)
{
    static char msg[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = (int)sizeof msg - 1;
    n += snprintf(msg + n, sizeof msg - (size_t)n,
                  "\n  seed %llu (RECD_MIX_SEED=%llu replays it), request #%d overall",
                  (unsigned long long)m->seed, (unsigned long long)m->seed, m->total);
    if (c >= 0 && (size_t)n < sizeof msg) {
        n += snprintf(msg + n, sizeof msg - (size_t)n,
                      "; connection %d, its last requests (oldest first):", c);
        int first = m->nlog[c] > LOGN ? m->nlog[c] - LOGN : 0;
        for (int i = first; i < m->nlog[c] && (size_t)n < sizeof msg; i++)
            n += snprintf(msg + n, sizeof msg - (size_t)n, "\n    %s", m->log[c][i % LOGN]);
    }
    int st, died = 0;
    for (int i = 0; i < 20 && m->s.pid > 0 && !died;
         i++) { /* a crash takes a moment to be reaped */
        died = waitpid(m->s.pid, &st, WNOHANG) == m->s.pid;
        if (!died) usleep(50000);
    }
    if (died && (size_t)n < sizeof msg) {
        if (WIFSIGNALED(st))
            n += snprintf(msg + n, sizeof msg - (size_t)n, "\n  the server died of signal %d",
                          WTERMSIG(st));
        else
            n += snprintf(msg + n, sizeof msg - (size_t)n, "\n  the server exited with status %d",
                          WEXITSTATUS(st));
        m->s.pid = 0;
        char out[6000];
        test_run(out, sizeof out, "tail -c 5000 %s", m->s.log);
        if ((size_t)n < sizeof msg)
            snprintf(msg + n, sizeof msg - (size_t)n, "; its log ends:\n%s", out);
    }
    test_fail_(__FILE__, line, "%s", msg);
}

#define MCHECK(m, c, cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond)) mix_fail(m, c, __LINE__, __VA_ARGS__);                                        \
    } while (0)

/* ---------------------------------------------------------------- one request, generic checks */

typedef enum { SH_JSON, SH_PROBLEM, SH_TEXT, SH_EMPTY } shape;

typedef struct want {
    long status;
    shape sh;
    const char *ctype; /* for SH_EMPTY (HEAD): the GET answer's Content-Type; NULL: none expected */
    const char *allow; /* expected Allow header, or NULL */
    int closes; /* 0: keeps the connection open; 1: closes it (Connection: close); 2: either */
} want;

static void count(mix *m, const char *kind)
{
    for (int i = 0; i < 64; i++) {
        if (!m->count_names[i]) m->count_names[i] = kind;
        if (m->count_names[i] == kind) {
            m->counts[i]++;
            return;
        }
    }
}

/* Send on connection c, check what every answer must satisfy, return the answer in r. */
static void mix_send(mix *m, int c, const char *kind, const char *method, const char *path,
                     const char *body, size_t body_len, const char *const *headers_in,
                     const want *w, tresp *r)
{
    const char *headers[8];
    int nh = 0;
    char rid_hdr[96] = "", my_rid[64] = "";
    for (int i = 0; headers_in && headers_in[i] && nh < 6; i++)
        headers[nh++] = headers_in[i];
    if (rng_below(&m->rng, 3) == 0) { /* our own request id, echoed back */
        snprintf(my_rid, sizeof my_rid, "mix-%d-%d", c, m->total);
        snprintf(rid_hdr, sizeof rid_hdr, "X-Request-Id: %s", my_rid);
        headers[nh++] = rid_hdr;
    }
    headers[nh] = NULL;
    m->total++;
    count(m, kind);
    char *slot = m->log[c][m->nlog[c] % LOGN];
    snprintf(slot, 160, "#%d %s: %s %s %.80s%s", m->total, kind, method, path, body ? body : "",
             body && body_len > 80 ? "..." : "");
    m->nlog[c]++;
    int first = m->conn[c].requests == 0;
    int rc = tconn_http(&m->conn[c], method, path, body, body_len, headers, r);
    size_t used = strlen(slot);
    snprintf(slot + used, 160 - used, " -> %ld", r->status);
    MCHECK(m, c, rc == 0, "%s %s: the connection failed (no answer)", method, path);
    MCHECK(m, c, r->status == w->status, "%s %s: status %ld, wanted %ld: %.400s", method, path,
           r->status, w->status, r->body);
    /* keep-alive: the connection libcurl opened first is the one every request uses */
    if (first)
        MCHECK(m, c, r->num_connects == 1, "first request: %ld connections opened",
               r->num_connects);
    else if (m->must_reconnect[c])
        MCHECK(m, c, r->num_connects == 1,
               "the previous answer closed the connection, yet %ld were opened", r->num_connects);
    else
        MCHECK(m, c, r->num_connects == 0,
               "%s %s: libcurl opened %ld new connection(s): the server closed the keep-alive "
               "connection after the previous answer",
               method, path, r->num_connects);
    int closed = strcasecmp(r->connection, "close") == 0;
    if (w->closes == 1)
        MCHECK(m, c, closed, "%s %s: the answer should close the connection (Connection: %s)",
               method, path, r->connection);
    else if (w->closes == 0)
        MCHECK(m, c, !closed, "%s %s: the answer closes the connection (Connection: close)", method,
               path);
    m->must_reconnect[c] = closed;
    /* request id: always in the header; ours when we sent one */
    MCHECK(m, c, r->request_id[0] != '\0', "%s %s: no X-Request-Id", method, path);
    if (my_rid[0])
        MCHECK(m, c, strcmp(r->request_id, my_rid) == 0, "X-Request-Id %s, sent %s", r->request_id,
               my_rid);
    if (w->allow)
        MCHECK(m, c, strcmp(r->allow, w->allow) == 0, "%s %s: Allow \"%s\", wanted \"%s\"", method,
               path, r->allow, w->allow);
    switch (w->sh) {
    case SH_EMPTY:
        MCHECK(m, c, r->len == 0, "%s %s: %zu body bytes, wanted none", method, path, r->len);
        if (w->ctype)
            MCHECK(m, c, strcmp(r->ctype, w->ctype) == 0,
                   "%s %s: Content-Type \"%s\", wanted \"%s\"", method, path, r->ctype, w->ctype);
        break;
    case SH_TEXT:
        MCHECK(m, c, strncmp(r->ctype, "text/plain", 10) == 0, "%s %s: Content-Type \"%s\"", method,
               path, r->ctype);
        MCHECK(m, c, r->len > 0, "%s %s: empty body", method, path);
        break;
    case SH_JSON:
    case SH_PROBLEM: {
        const char *ct = w->sh == SH_JSON ? "application/json" : "application/problem+json";
        MCHECK(m, c, strcmp(r->ctype, ct) == 0, "%s %s: Content-Type \"%s\", wanted %s: %.300s",
               method, path, r->ctype, ct, r->body);
        MCHECK(m, c, json_is_object(r->json), "%s %s: the answer is not a JSON object: %.300s",
               method, path, r->body);
        MCHECK(m, c,
               tsrv_jstr(r->json, "request_id") &&
                   strcmp(tsrv_jstr(r->json, "request_id"), r->request_id) == 0,
               "%s %s: request_id %s in the body, %s in the header", method, path,
               tsrv_jstr(r->json, "request_id") ? tsrv_jstr(r->json, "request_id") : "(none)", r->request_id);
        if (w->sh == SH_PROBLEM) {
            MCHECK(m, c, json_integer_value(json_object_get(r->json, "status")) == w->status,
                   "%s %s: problem status field: %.300s", method, path, r->body);
            MCHECK(m, c,
                   tsrv_jstr(r->json, "type") &&
                       strncmp(tsrv_jstr(r->json, "type"), "urn:recd:problem:", 17) == 0,
                   "%s %s: problem type: %.300s", method, path, r->body);
            MCHECK(m, c, tsrv_jstr(r->json, "title") && tsrv_jstr(r->json, "detail"),
                   "%s %s: problem title/detail: %.300s", method, path, r->body);
        }
        break;
    }
    }
}

/* A problem answer whose detail contains `detail` (may be ""). */
static void expect_problem(mix *m, int c, const char *kind, const char *method, const char *path,
                           const char *body, const char *const *headers, long status,
                           const char *detail)
{
    want w = {status, SH_PROBLEM, NULL, NULL, 0};
    tresp r;
    mix_send(m, c, kind, method, path, body, body ? strlen(body) : 0, headers, &w, &r);
    MCHECK(m, c, strstr(tsrv_jstr(r.json, "detail"), detail) != NULL,
           "%s %s: detail \"%s\" lacks \"%s\"", method, path, tsrv_jstr(r.json, "detail"), detail);
    tresp_free(&r);
}

/* ---------------------------------------------------------------- /v1/next */

/* The reference answer of a stateless /v1/next body: the same request alone on a fresh connection
 * (computed once per body). */
static const json_t *next_reference(mix *m, int c, const char *body)
{
    for (int i = 0; i < m->nrefs; i++)
        if (strcmp(m->refs[i].key, body) == 0) return m->refs[i].ans;
    MCHECK(m, c, m->nrefs < NREF, "too many reference answers");
    tresp r;
    MCHECK(m, c,
           tsrv_http(&m->s, "POST", "/v1/next", body, strlen(body), NULL, &r) == 0 &&
               r.status == 200 && r.json,
           "reference request %s on a fresh connection: status %ld: %.300s", body, r.status,
           r.body);
    m->refs[m->nrefs].key = strdup(body);
    m->refs[m->nrefs].ans = r.json;
    r.json = NULL;
    tresp_free(&r);
    return m->refs[m->nrefs++].ans;
}

/* The common checks of a 200 /v1/next answer with k items; expected: the reference answer's items
 * (NULL: the most popular items i0.. with fallback "popular"). */
static void check_next(mix *m, int c, const json_t *a, int k, const json_t *expected,
                       const char *session_id, const char *const *unknown, int n_unknown)
{
    MCHECK(m, c, tsrv_jstr(a, "model") && strcmp(tsrv_jstr(a, "model"), "gru4rec") == 0, "/v1/next: model %s",
           tsrv_jstr(a, "model"));
    MCHECK(m, c, tsrv_jstr(a, "version") && strcmp(tsrv_jstr(a, "version"), "1") == 0, "/v1/next: version %s",
           tsrv_jstr(a, "version"));
    if (session_id)
        MCHECK(m, c, tsrv_jstr(a, "session_id") && strcmp(tsrv_jstr(a, "session_id"), session_id) == 0,
               "/v1/next: session_id %s", tsrv_jstr(a, "session_id"));
    else
        MCHECK(m, c, json_object_get(a, "session_id") == NULL,
               "/v1/next: a session_id in a stateless answer");
    const json_t *unk = json_object_get(a, "unknown_items");
    MCHECK(m, c, json_is_array(unk) && json_array_size(unk) == (size_t)n_unknown,
           "/v1/next: unknown_items has %zu, wanted %d", json_array_size(unk), n_unknown);
    for (int i = 0; i < n_unknown; i++)
        MCHECK(m, c,
               json_string_value(json_array_get(unk, (size_t)i)) &&
                   strcmp(json_string_value(json_array_get(unk, (size_t)i)), unknown[i]) == 0,
               "/v1/next: unknown_items[%d] is not %s", i, unknown[i]);
    const json_t *items = json_object_get(a, "items");
    MCHECK(m, c, json_is_array(items) && json_array_size(items) == (size_t)k,
           "/v1/next: %zu items, wanted k=%d", json_array_size(items), k);
    if (!expected) {
        MCHECK(m, c, tsrv_jstr(a, "fallback") && strcmp(tsrv_jstr(a, "fallback"), "popular") == 0,
               "/v1/next: no fallback flag");
        for (int i = 0; i < k; i++) {
            char id[16];
            snprintf(id, sizeof id, "i%d", i);
            const json_t *it = json_array_get(items, (size_t)i);
            MCHECK(m, c, tsrv_jstr(it, "item_id") && strcmp(tsrv_jstr(it, "item_id"), id) == 0,
                   "/v1/next fallback: item %d is %s", i, tsrv_jstr(it, "item_id"));
            MCHECK(m, c, json_is_null(json_object_get(it, "score")),
                   "/v1/next fallback: a score that is not null");
        }
        return;
    }
    MCHECK(m, c, json_object_get(a, "fallback") == NULL,
           "/v1/next: a fallback answer with known clicks");
    const json_t *want_items = json_object_get(expected, "items");
    MCHECK(m, c, json_array_size(want_items) == (size_t)k, "reference has %zu items",
           json_array_size(want_items));
    for (int i = 0; i < k; i++) {
        const json_t *it = json_array_get(items, (size_t)i),
                     *wt = json_array_get(want_items, (size_t)i);
        MCHECK(m, c, tsrv_jstr(it, "item_id") && strcmp(tsrv_jstr(it, "item_id"), tsrv_jstr(wt, "item_id")) == 0,
               "/v1/next: item %d is %s, the same request alone answers %s", i, tsrv_jstr(it, "item_id"),
               tsrv_jstr(wt, "item_id"));
        double got = json_number_value(json_object_get(it, "score")),
               exp = json_number_value(json_object_get(wt, "score"));
        MCHECK(m, c, json_is_number(json_object_get(it, "score")) && fabs(got - exp) <= 1e-4,
               "/v1/next: item %d score %.6f, the same request alone %.6f", i, got, exp);
    }
}

static const int KS[] = {1, 3, 5, 10, 20};

/* Stateless: known items, maybe an unknown one, maybe exclude_seen, maybe the model named. */
static void k_next_stateless(mix *m, int c)
{
    int n = 1 + (int)rng_below(&m->rng, 5), k = KS[rng_below(&m->rng, 5)],
        excl = (int)rng_below(&m->rng, 2);
    int unk_at = rng_below(&m->rng, 3) == 0 ? (int)rng_below(&m->rng, (uint64_t)n + 1) : -1;
    int named = (int)rng_below(&m->rng, 2);
    char body[1024], known[512] = "", list[600] = "", unk[32];
    snprintf(unk, sizeof unk, "nope-%d", m->total);
    int items[8];
    for (int i = 0; i <= n; i++) {
        size_t ll = strlen(list);
        if (i == unk_at) {
            snprintf(list + ll, sizeof list - ll, "%s\"%s\"", ll ? "," : "", unk);
            ll = strlen(list);
        }
        if (i == n) break;
        items[i] = (int)rng_below(&m->rng, N_ITEMS);
        snprintf(list + ll, sizeof list - ll, "%s\"i%d\"", ll ? "," : "", items[i]);
        size_t kl = strlen(known);
        snprintf(known + kl, sizeof known - kl, "%s\"i%d\"", kl ? "," : "", items[i]);
    }
    snprintf(body, sizeof body, "{%s\"items\":[%s],\"k\":%d%s}",
             named ? "\"model\":\"gru4rec\"," : "", list, k, excl ? ",\"exclude_seen\":true" : "");
    char refbody[1024];
    snprintf(refbody, sizeof refbody, "{\"items\":[%s],\"k\":%d%s}", known, k,
             excl ? ",\"exclude_seen\":true" : "");
    const json_t *exp = next_reference(m, c, refbody);
    want w = {200, SH_JSON, NULL, NULL, 0};
    tresp r;
    mix_send(m, c, "next_stateless", "POST", "/v1/next", body, strlen(body), NULL, &w, &r);
    const char *unknown[] = {unk};
    check_next(m, c, r.json, k, exp, NULL, unknown, unk_at >= 0);
    if (excl) /* none of the history comes back */
        for (int i = 0; i < k; i++) {
            const char *id =
                tsrv_jstr(json_array_get(json_object_get(r.json, "items"), (size_t)i), "item_id");
            for (int h = 0; h < n; h++) {
                char hid[16];
                snprintf(hid, sizeof hid, "i%d", items[h]);
                MCHECK(m, c, strcmp(id, hid) != 0,
                       "/v1/next exclude_seen: %s of the history came back", id);
            }
        }
    tresp_free(&r);
}

/* Only unknown items: the most popular ones, flagged. */
static void k_next_unknown_only(mix *m, int c)
{
    int k = KS[rng_below(&m->rng, 5)];
    char body[256], u1[32], u2[32];
    snprintf(u1, sizeof u1, "zz-%d", m->total);
    snprintf(u2, sizeof u2, "yy-%d", m->total);
    snprintf(body, sizeof body, "{\"items\":[\"%s\",\"%s\"],\"k\":%d}", u1, u2, k);
    want w = {200, SH_JSON, NULL, NULL, 0};
    tresp r;
    mix_send(m, c, "next_unknown_only", "POST", "/v1/next", body, strlen(body), NULL, &w, &r);
    const char *unknown[] = {u1, u2};
    check_next(m, c, r.json, k, NULL, NULL, unknown, 2);
    tresp_free(&r);
}

/* Stateful: one click of the connection's current session; the answer is the stateless one of the
 * session's known clicks. */
static void k_next_stateful(mix *m, int c)
{
    session *se = &m->sess[c];
    if (!se->id[0] || se->n_clicks >= 6 || rng_below(&m->rng, 6) == 0) {
        memset(se, 0, sizeof *se);
        snprintf(se->id, sizeof se->id, "mix-c%d-s%d", c, m->sess_serial++);
    }
    int k = KS[rng_below(&m->rng, 5)], excl = (int)rng_below(&m->rng, 2),
        unknown = rng_below(&m->rng, 5) == 0;
    char item[16];
    if (unknown)
        snprintf(item, sizeof item, "u%d", m->total);
    else
        snprintf(item, sizeof item, "i%d", (int)rng_below(&m->rng, N_ITEMS));
    char body[512];
    snprintf(body, sizeof body, "{\"session_id\":\"%s\",\"item_id\":\"%s\",\"k\":%d%s}", se->id,
             item, k, excl ? ",\"exclude_seen\":true" : "");
    se->n_clicks++;
    if (!unknown) snprintf(se->clicks[se->n_known++], sizeof se->clicks[0], "%s", item);
    const json_t *exp = NULL;
    if (se->n_known) {
        char refbody[512];
        size_t bl = (size_t)snprintf(refbody, sizeof refbody, "{\"items\":[");
        for (int i = 0; i < se->n_known; i++)
            bl += (size_t)snprintf(refbody + bl, sizeof refbody - bl, "%s\"%s\"", i ? "," : "",
                                   se->clicks[i]);
        snprintf(refbody + bl, sizeof refbody - bl, "],\"k\":%d%s}", k,
                 excl ? ",\"exclude_seen\":true" : "");
        exp = next_reference(m, c, refbody);
    }
    want w = {200, SH_JSON, NULL, NULL, 0};
    tresp r;
    mix_send(m, c, "next_stateful", "POST", "/v1/next", body, strlen(body), NULL, &w, &r);
    const char *unk[] = {item};
    check_next(m, c, r.json, k, exp, se->id, unk, unknown);
    tresp_free(&r);
}

static void k_next_errors(mix *m, int c)
{
    static const struct {
        const char *body;
        long status;
        const char *detail;
    } E[] = {
        {"{\"items\":[\"i1\"", 400, ""},
        {"", 400, ""},
        {"[1,2]", 400, ""},
        {"{\"items\":\"i1\"}", 400, ""},
        {"{\"items\":[1]}", 400, ""},
        {"{\"items\":[\"i1\"],\"k\":2.5}", 400, ""},
        {"{\"items\":[\"i1\"],\"exclude_seen\":1}", 400, ""},
        {"{\"items\":[\"i1\"],\"items\":[\"i2\"]}", 400, ""},
        {"{\"a\":[[[[[[[[[[[[1]]]]]]]]]]]]}", 400, ""},
        {"{\"items\":[\"i1\"],\"k\":0}", 422, ""},
        {"{\"items\":[\"i1\"],\"k\":1001}", 422, ""},
        {"{\"items\":[]}", 422, ""},
        {"{}", 422, ""},
        {"{\"session_id\":\"s\"}", 422, ""},
        {"{\"items\":[\"i1\"],\"color\":\"red\"}", 422, "unknown field 'color'"},
        {"{\"items\":[\"i1\"],\"model\":\"nope\"}", 404, "no model 'nope'"},
        {"{\"items\":[\"i1\"],\"model\":\"widedeep\"}", 422, "cannot answer /v1/next: no `next` capability"},
        {"{\"session_id\":\"mix-wrong\",\"item_id\":\"i1\",\"model\":\"widedeep\"}", 422,
         "cannot answer /v1/next: no `next` capability"},
    };
    int i = (int)rng_below(&m->rng, sizeof E / sizeof E[0]);
    expect_problem(m, c, "next_error", "POST", "/v1/next", E[i].body, NULL, E[i].status,
                   E[i].detail);
}

/* ---------------------------------------------------------------- /v1/rank */

/* A random /v1/rank request over TSRV_WD_SPEC's columns x1 x2 c1 c2 (y ignored), checked against
 * the model scored in process. */
static void k_rank(mix *m, int c, const char *const *headers, const char *kind)
{
    enum { NC = 5 };
    static const char *cats[] = {"a", "b", "c", "d", "zz"};
    int n = 1 + (int)rng_below(&m->rng, 40), k = 1 + (int)rng_below(&m->rng, (uint64_t)n + 2);
    int named = (int)rng_below(&m->rng, 2);
    feat_value ctx[NC], *cand = calloc((size_t)n * NC, sizeof *cand);
    char(*c2)[16] = calloc((size_t)n, 16);
    ASSERT(cand && c2);
    memset(ctx, 0, sizeof ctx);
    size_t cap = 256 + (size_t)n * 128, bl = 0;
    char *body = malloc(cap);
    ASSERT(body != NULL);
    double x1 = (double)((int)rng_below(&m->rng, 200) - 100) / 100;
    const char *c1 = cats[rng_below(&m->rng, 5)];
    ctx[0] = (feat_value){FEAT_V_NUM, NULL, 0, x1};
    ctx[2] = (feat_value){FEAT_V_STR, c1, strlen(c1), 0};
    bl +=
        (size_t)snprintf(body + bl, cap - bl,
                         "{%s\"user_id\":\"u%d\",\"k\":%d,\"context\":{\"x1\":%.2f,\"c1\":\"%s\"},"
                         "\"candidates\":[",
                         named ? "\"model\":\"widedeep\"," : "", c, k, x1, c1);
    for (int j = 0; j < n; j++) {
        feat_value *v = cand + (size_t)j * NC;
        double x2 = (double)((int)rng_below(&m->rng, 600) - 300) / 100;
        snprintf(c2[j], 16, "k%d", (int)rng_below(&m->rng, 20));
        v[1] = (feat_value){FEAT_V_NUM, NULL, 0, x2};
        v[3] = (feat_value){FEAT_V_STR, c2[j], strlen(c2[j]), 0};
        bl += (size_t)snprintf(body + bl, cap - bl,
                               "%s{\"item_id\":\"c%d\",\"features\":{\"x2\":%.2f,\"c2\":\"%s\"",
                               j ? "," : "", j, x2, c2[j]);
        if (rng_below(&m->rng, 4) == 0) { /* overrides the context's c1 */
            const char *o = cats[rng_below(&m->rng, 5)];
            v[2] = (feat_value){FEAT_V_STR, o, strlen(o), 0};
            bl += (size_t)snprintf(body + bl, cap - bl, ",\"c1\":\"%s\"", o);
        }
        bl += (size_t)snprintf(body + bl, cap - bl, "}}");
    }
    snprintf(body + bl, cap - bl, "]}");
    /* expected probabilities */
    wd_scratch *s = wd_scratch_new(m->wd, n);
    ASSERT(s != NULL);
    ASSERT_OK(wd_score(m->wd, s, ctx, cand, n, NULL));
    want w = {200, SH_JSON, NULL, NULL, 0};
    tresp r;
    mix_send(m, c, kind, "POST", "/v1/rank", body, strlen(body), headers, &w, &r);
    const json_t *a = r.json;
    int kk = k < n ? k : n;
    MCHECK(m, c, tsrv_jstr(a, "model") && strcmp(tsrv_jstr(a, "model"), "widedeep") == 0,
           "/v1/rank: model %s", tsrv_jstr(a, "model"));
    MCHECK(m, c, tsrv_jstr(a, "version") && strcmp(tsrv_jstr(a, "version"), "1") == 0, "/v1/rank: version %s",
           tsrv_jstr(a, "version"));
    char uid[16];
    snprintf(uid, sizeof uid, "u%d", c);
    MCHECK(m, c, tsrv_jstr(a, "user_id") && strcmp(tsrv_jstr(a, "user_id"), uid) == 0, "/v1/rank: user_id %s",
           tsrv_jstr(a, "user_id"));
    const json_t *items = json_object_get(a, "items");
    MCHECK(m, c, json_is_array(items) && json_array_size(items) == (size_t)kk,
           "/v1/rank: %zu items, wanted %d of %d", json_array_size(items), kk, n);
    char *taken = calloc((size_t)n, 1);
    double last = 2;
    for (int i = 0; i < kk; i++) {
        const json_t *it = json_array_get(items, (size_t)i);
        const char *id = tsrv_jstr(it, "item_id");
        int j = id && id[0] == 'c' ? atoi(id + 1) : -1;
        MCHECK(m, c, j >= 0 && j < n && !taken[j],
               "/v1/rank: item %d is %s: not a candidate, or twice", i, id ? id : "(none)");
        taken[j] = 1;
        double p = json_number_value(json_object_get(it, "probability")),
               z = json_number_value(json_object_get(it, "score"));
        MCHECK(m, c, fabs(p - s->prob[j]) <= 1e-5, "/v1/rank: %s probability %.7f, in process %.7f",
               id, p, (double)s->prob[j]);
        MCHECK(m, c, fabs(p - 1 / (1 + exp(-z))) <= 1e-5,
               "/v1/rank: %s probability %.7f is not sigmoid(score %.6f)", id, p, z);
        MCHECK(m, c, p <= last + 1e-7, "/v1/rank: item %d (%.7f) above the one before (%.7f)", i, p,
               last);
        last = p;
    }
    for (int j = 0; j < n; j++) /* the best k: no candidate left out beats the last one kept */
        MCHECK(m, c, taken[j] || s->prob[j] <= last + 1e-5,
               "/v1/rank: c%d (%.7f) left out, yet better than the last kept (%.7f)", j,
               (double)s->prob[j], last);
    free(taken);
    tresp_free(&r);
    wd_scratch_free(s);
    free(body);
    free(cand);
    free(c2);
}

static void k_rank_valid(mix *m, int c)
{
    k_rank(m, c, NULL, "rank");
}

static void k_rank_errors(mix *m, int c)
{
    static const struct {
        const char *body;
        long status;
        const char *detail;
    } E[] = {
        {"{\"candidates\":[{\"item_id\":\"a\"}]", 400, "invalid JSON"},
        {"[1]", 400, "must be a JSON object"},
        {"{\"candidates\":{}}", 400, "candidates: expected an array"},
        {"{\"candidates\":[{\"item_id\":5}]}", 400, "candidates[0].item_id: expected a string"},
        {"{\"k\":1,\"k\":2,\"candidates\":[{\"item_id\":\"a\"}]}", 400, "duplicate key 'k'"},
        {"{\"candidates\":[{\"item_id\":\"a\",\"features\":{\"c1\":true}}]}", 400,
         "candidates[0].features.c1"},
        {"{}", 422, "candidates: required"},
        {"{\"candidates\":[]}", 422, "candidates: 0 given"},
        {"{\"candidates\":[{\"item_id\":\"a\"}],\"k\":0}", 422, "k: 0 is outside"},
        {"{\"candidates\":[{\"item_id\":\"a\",\"features\":{\"x2\":\"tall\"}}]}", 422,
         "is not a number"},
        {"{\"candidates\":[{\"item_id\":\"a\"}],\"colour\":1}", 422, "unknown field 'colour'"},
        {"{\"model\":\"nope\",\"candidates\":[{\"item_id\":\"a\"}]}", 404, "no model 'nope'"},
        {"{\"model\":\"gru4rec\",\"candidates\":[{\"item_id\":\"a\"}]}", 422,
         "cannot answer /v1/rank: no `rank` capability"},
    };
    int i = (int)rng_below(&m->rng, sizeof E / sizeof E[0]);
    expect_problem(m, c, "rank_error", "POST", "/v1/rank", E[i].body, NULL, E[i].status,
                   E[i].detail);
}

/* ---------------------------------------------------------------- ops routes */

static void k_models(mix *m, int c)
{
    want w = {200, SH_JSON, NULL, NULL, 0};
    tresp r;
    mix_send(m, c, "models", "GET", "/v1/models", NULL, 0, NULL, &w, &r);
    const json_t *ms = json_object_get(r.json, "models");
    MCHECK(m, c, json_array_size(ms) == 2, "/v1/models: %zu models", json_array_size(ms));
    static const char *names[] = {"gru4rec", "widedeep"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *e = json_array_get(ms, i);
        MCHECK(m, c, tsrv_jstr(e, "name") && strcmp(tsrv_jstr(e, "name"), names[i]) == 0,
               "/v1/models[%zu]: name %s", i, tsrv_jstr(e, "name"));
        MCHECK(m, c, tsrv_jstr(e, "type") && strcmp(tsrv_jstr(e, "type"), names[i]) == 0,
               "/v1/models[%zu]: type %s", i, tsrv_jstr(e, "type"));
        MCHECK(m, c, json_is_true(json_object_get(e, "loaded")), "/v1/models[%zu]: not loaded", i);
        MCHECK(m, c, tsrv_jstr(e, "version") && strcmp(tsrv_jstr(e, "version"), "1") == 0,
               "/v1/models[%zu]: version %s", i, tsrv_jstr(e, "version"));
        MCHECK(m, c, json_is_object(json_object_get(e, "meta")), "/v1/models[%zu]: no meta", i);
    }
    tresp_free(&r);
}

static void k_reload(mix *m, int c)
{
    const char *model = rng_below(&m->rng, 2) ? "widedeep" : "gru4rec";
    char path[128];
    snprintf(path, sizeof path, "/v1/models/%s/reload", model);
    static const char *none[] = {NULL}, *basic[] = {"Authorization: Basic bWl4OnRva2Vu", NULL},
                      *wrong[] = {"Authorization: Bearer mix-admin-tokem", NULL},
                      *good[] = {"Authorization: Bearer mix-admin-token", NULL};
    switch (rng_below(&m->rng, 5)) {
    case 0:
        expect_problem(m, c, "reload_401", "POST", path, "", none, 401, "Bearer");
        return;
    case 1:
        expect_problem(m, c, "reload_401", "POST", path, "", basic, 401, "Bearer");
        return;
    case 2:
        expect_problem(m, c, "reload_403", "POST", path, "", wrong, 403, "wrong admin token");
        return;
    case 3:
        expect_problem(m, c, "reload_404", "POST", "/v1/models/nope/reload", "", good, 404,
                       "no model 'nope'");
        return;
    default:
        break;
    }
    want w = {202, SH_JSON, NULL, NULL, 0};
    tresp r;
    mix_send(m, c, "reload_202", "POST", path, "", 0, good, &w, &r);
    MCHECK(m, c, tsrv_jstr(r.json, "model") && strcmp(tsrv_jstr(r.json, "model"), model) == 0,
           "reload: model %s", tsrv_jstr(r.json, "model"));
    MCHECK(m, c, tsrv_jstr(r.json, "status") && strcmp(tsrv_jstr(r.json, "status"), "reload scheduled") == 0,
           "reload: status %s", tsrv_jstr(r.json, "status"));
    MCHECK(m, c,
           tsrv_jstr(r.json, "serving_version") && strcmp(tsrv_jstr(r.json, "serving_version"), "1") == 0,
           "reload: serving_version %s", tsrv_jstr(r.json, "serving_version"));
    tresp_free(&r);
}

static void k_healthz(mix *m, int c)
{
    want w = {200, SH_JSON, NULL, NULL, 0};
    tresp r;
    mix_send(m, c, "healthz", "GET", "/healthz", NULL, 0, NULL, &w, &r);
    MCHECK(m, c, tsrv_jstr(r.json, "status") && strcmp(tsrv_jstr(r.json, "status"), "ok") == 0,
           "/healthz: status %s", tsrv_jstr(r.json, "status"));
    MCHECK(m, c, tsrv_jstr(r.json, "version") != NULL, "/healthz: no version");
    MCHECK(m, c, json_is_number(json_object_get(r.json, "uptime_s")), "/healthz: no uptime_s");
    tresp_free(&r);
}

static void k_readyz(mix *m, int c)
{
    want w = {200, SH_JSON, NULL, NULL, 0};
    tresp r;
    mix_send(m, c, "readyz", "GET", "/readyz", NULL, 0, NULL, &w, &r);
    MCHECK(m, c, tsrv_jstr(r.json, "status") && strcmp(tsrv_jstr(r.json, "status"), "ready") == 0,
           "/readyz: status %s", tsrv_jstr(r.json, "status"));
    const json_t *ms = json_object_get(r.json, "models");
    MCHECK(m, c, tsrv_jstr(ms, "gru4rec") && strcmp(tsrv_jstr(ms, "gru4rec"), "1") == 0,
           "/readyz: gru4rec %s", tsrv_jstr(ms, "gru4rec"));
    MCHECK(m, c, tsrv_jstr(ms, "widedeep") && strcmp(tsrv_jstr(ms, "widedeep"), "1") == 0,
           "/readyz: widedeep %s", tsrv_jstr(ms, "widedeep"));
    tresp_free(&r);
}

static void k_metrics(mix *m, int c)
{
    want w = {200, SH_TEXT, NULL, NULL, 0};
    tresp r;
    mix_send(m, c, "metrics", "GET", "/metrics", NULL, 0, NULL, &w, &r);
    MCHECK(m, c, strstr(r.body, "# TYPE recd_http_requests_total counter") != NULL,
           "/metrics: no requests counter");
    MCHECK(m, c, strstr(r.body, "recd_model_version{model=\"gru4rec\"} 1") != NULL,
           "/metrics: no gru4rec version");
    MCHECK(m, c, strstr(r.body, "recd_model_version{model=\"widedeep\"} 1") != NULL,
           "/metrics: no widedeep version");
    tresp_free(&r);
}

static void k_head(mix *m, int c)
{
    static const struct {
        const char *path, *ctype;
    } H[] = {
        {"/healthz", "application/json"},
        {"/readyz", "application/json"},
        {"/v1/models", "application/json"},
        {"/metrics", "text/plain; version=0.0.4; charset=utf-8"},
    };
    int i = (int)rng_below(&m->rng, 4);
    want w = {200, SH_EMPTY, H[i].ctype, NULL, 0};
    tresp r;
    mix_send(m, c, "head", "HEAD", H[i].path, NULL, 0, NULL, &w, &r);
    tresp_free(&r);
}

static void k_options(mix *m, int c)
{
    static const struct {
        const char *path, *allow;
    } O[] = {
        {"/v1/next", "POST, OPTIONS"},
        {"/v1/rank", "POST, OPTIONS"},
        {"/healthz", "GET, HEAD, OPTIONS"},
        {"/readyz", "GET, HEAD, OPTIONS"},
        {"/metrics", "GET, HEAD, OPTIONS"},
        {"/v1/models", "GET, HEAD, OPTIONS"},
        {"/v1/models/gru4rec/reload", "POST, OPTIONS"},
    };
    int i = (int)rng_below(&m->rng, sizeof O / sizeof O[0]);
    want w = {204, SH_EMPTY, NULL, O[i].allow, 0};
    tresp r;
    mix_send(m, c, "options", "OPTIONS", O[i].path, NULL, 0, NULL, &w, &r);
    tresp_free(&r);
}

static void k_not_found(mix *m, int c)
{
    static const struct {
        const char *method, *path;
    } N[] = {
        {"GET", "/v2/nothing"}, {"POST", "/v1/nexts"},          {"GET", "/v1/models/gru4rec"},
        {"GET", "/"},           {"POST", "/v1/models//reload"}, {"OPTIONS", "/nowhere"},
        {"DELETE", "/v1"},
    };
    int i = (int)rng_below(&m->rng, sizeof N / sizeof N[0]);
    const char *body = strcmp(N[i].method, "POST") == 0 ? "{}" : NULL;
    expect_problem(m, c, "not_found", N[i].method, N[i].path, body, NULL, 404, "");
}

static void k_wrong_method(mix *m, int c)
{
    static const struct {
        const char *method, *path, *allow;
    } W[] = {
        {"GET", "/v1/next", "POST"},         {"GET", "/v1/rank", "POST"},
        {"PUT", "/v1/rank", "POST"},         {"DELETE", "/healthz", "GET, HEAD"},
        {"POST", "/readyz", "GET, HEAD"},    {"PUT", "/v1/models", "GET, HEAD"},
        {"DELETE", "/metrics", "GET, HEAD"}, {"GET", "/v1/models/gru4rec/reload", "POST"},
    };
    int i = (int)rng_below(&m->rng, sizeof W / sizeof W[0]);
    const char *body =
        strcmp(W[i].method, "GET") == 0 || strcmp(W[i].method, "DELETE") == 0 ? NULL : "{}";
    want w = {405, SH_PROBLEM, NULL, W[i].allow, 0};
    tresp r;
    mix_send(m, c, "wrong_method", W[i].method, W[i].path, body, body ? strlen(body) : 0, NULL, &w,
             &r);
    tresp_free(&r);
}

/* Bodies over http.max_body_bytes, declared (Content-Length) or chunked. */
static void k_too_large(mix *m, int c)
{
    size_t n = MAX_BODY + 1 + rng_below(&m->rng, 3000);
    char *big = malloc(n + 1);
    ASSERT(big != NULL);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    const char *path = rng_below(&m->rng, 2) ? "/v1/rank" : "/v1/next";
    static const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    int ch = (int)rng_below(&m->rng, 2);
    want w = {413, SH_PROBLEM, NULL, NULL, 2}; /* the server may close rather than read the rest */
    tresp r;
    mix_send(m, c, ch ? "too_large_chunked" : "too_large", "POST", path, big, n,
             ch ? chunked : NULL, &w, &r);
    tresp_free(&r);
    free(big);
}

/* Framing two parsers could read differently (RFC 9112 section 6.3): 400, and the connection
 * closes. */
static void k_framing(mix *m, int c)
{
    static const char *cl_te[] = {"Transfer-Encoding: chunked", "Content-Length: 17", NULL},
                      *cl_cl[] = {"Content-Length: 17", "Content-Length: 18", NULL};
    const char *path = rng_below(&m->rng, 2) ? "/v1/rank" : "/v1/next";
    const char *body = "{\"items\":[\"i1\"]}"; /* 17 bytes */
    want w = {400, SH_PROBLEM, NULL, NULL, 1};
    tresp r;
    int te = (int)rng_below(&m->rng, 2);
    mix_send(m, c, te ? "framing_cl_te" : "framing_cl_cl", "POST", path, body, strlen(body),
             te ? cl_te : cl_cl, &w, &r);
    MCHECK(m, c, strstr(tsrv_jstr(r.json, "type"), "ambiguous-framing") != NULL, "framing: type %s",
           tsrv_jstr(r.json, "type"));
    tresp_free(&r);
}

/* Content-Type: anything but application/json is 415 on the JSON routes; application/json with a
 * parameter is fine. */
static void k_content_type(mix *m, int c)
{
    static const char *plain[] = {"Content-Type: text/plain", NULL},
                      *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL},
                      *none[] = {"Content-Type:", NULL},
                      *charset[] = {"Content-Type: application/json; charset=utf-8", NULL};
    const char *path = rng_below(&m->rng, 2) ? "/v1/rank" : "/v1/next";
    const char *body =
        path[4] == 'r' ? "{\"candidates\":[{\"item_id\":\"a\"}]}" : "{\"items\":[\"i1\"]}";
    switch (rng_below(&m->rng, 4)) {
    case 0:
        expect_problem(m, c, "content_type_415", "POST", path, body, plain, 415, "");
        break;
    case 1:
        expect_problem(m, c, "content_type_415", "POST", path, body, form, 415, "");
        break;
    case 2:
        expect_problem(m, c, "content_type_415", "POST", path, body, none, 415, "");
        break;
    default:
        if (path[4] == 'r')
            k_rank(m, c, charset, "rank_charset");
        else {
            want w = {200, SH_JSON, NULL, NULL, 0};
            tresp r;
            mix_send(m, c, "next_charset", "POST", path, body, strlen(body), charset, &w, &r);
            check_next(m, c, r.json, 20, next_reference(m, c, body), NULL, NULL, 0);
            tresp_free(&r);
        }
    }
}

/* ---------------------------------------------------------------- the runs */

typedef void (*kind_fn)(mix *m, int c);

static void mix_start(mix *m)
{
    memset(m, 0, sizeof *m);
    const char *e = getenv("RECD_MIX_SEED");
    m->seed =
        e && *e ? strtoull(e, NULL, 10) : ((uint64_t)time(NULL) * 2654435761u) ^ (uint64_t)getpid();
    rng_seed(&m->rng, m->seed);
    char extra[256];
    snprintf(extra, sizeof extra,
             "\"admin_token\":\"%s\",\"http.max_body_bytes\":%d,\"http.threads\":2,\"http.timeout_"
             "s\":120",
             TOKEN, MAX_BODY);
    tsrv_start_two_models(&m->s, N_ITEMS, extra, &m->wd);
    for (int c = 0; c < NCONN; c++)
        tconn_open(&m->conn[c], &m->s);
}

/* The server still answers on a new connection, the open ones close, SIGTERM exits 0. */
static void mix_finish(mix *m)
{
    tresp r;
    MCHECK(m, -1, tsrv_http(&m->s, "GET", "/healthz", NULL, 0, NULL, &r) == 0 && r.status == 200,
           "/healthz on a new connection after the run: status %ld", r.status);
    tresp_free(&r);
    for (int c = 0; c < NCONN; c++)
        tconn_close(&m->conn[c]);
    int st = tsrv_stop(&m->s);
    if (st != 0) {
        char out[6000];
        test_run(out, sizeof out, "tail -c 5000 %s", m->s.log);
        FAIL("seed %llu: recd serve exited %d on SIGTERM (-1: killed by a signal); its log "
             "ends:\n%s",
             (unsigned long long)m->seed, st, out);
    }
    for (int i = 0; i < m->nrefs; i++) {
        free(m->refs[i].key);
        json_decref(m->refs[i].ans);
    }
    wd_model_free(m->wd);
}

TEST_TIMEOUT(server_mix_rank_then_next, 120)
{
    /* The reported sequences, each on one keep-alive connection: rank then next, next then rank,
     * and with failed requests in between (a handler that answered an error may still have set up
     * its slot). */
    mix *m = calloc(1, sizeof *m);
    ASSERT(m != NULL);
    mix_start(m);
    /* connection 0: rank, next (stateless), next (stateful), rank, next */
    k_rank_valid(m, 0);
    k_next_stateless(m, 0);
    k_next_stateful(m, 0);
    k_rank_valid(m, 0);
    k_next_stateful(m, 0);
    /* connection 1: next, rank, next, rank */
    k_next_stateful(m, 1);
    k_rank_valid(m, 1);
    k_next_stateless(m, 1);
    k_rank_valid(m, 1);
    /* connection 2: errors of each route between the other's successes */
    expect_problem(m, 2, "rank_error", "POST", "/v1/rank", "{}", NULL, 422, "candidates: required");
    k_next_stateless(m, 2);
    expect_problem(m, 2, "next_error", "POST", "/v1/next", "{\"items\":[\"i1\"],\"k\":0}", NULL,
                   422, "");
    k_rank_valid(m, 2);
    expect_problem(m, 2, "next_error", "POST", "/v1/next",
                   "{\"items\":[\"i1\"],\"model\":\"widedeep\"}", NULL, 422,
                   "cannot answer /v1/next: no `next` capability");
    expect_problem(m, 2, "rank_error", "POST", "/v1/rank",
                   "{\"model\":\"gru4rec\",\"candidates\":[{\"item_id\":\"a\"}]}", NULL, 422,
                   "cannot answer /v1/rank: no `rank` capability");
    k_next_stateful(m, 2);
    k_rank_valid(m, 2);
    /* and back on the first two, alternating */
    for (int i = 0; i < 6; i++) {
        if (i % 2)
            k_rank_valid(m, i % 3 == 0 ? 0 : 1);
        else
            k_next_stateless(m, i % 3 == 0 ? 0 : 1);
    }
    mix_finish(m);
    free(m);
}

TEST_TIMEOUT(server_mix_every_route_random, 240)
{
    /* Every route, in a seeded random order, over NCONN keep-alive connections. */
    static const struct {
        kind_fn fn;
        int weight;
    } K[] = {
        {k_next_stateless, 14}, {k_next_stateful, 14}, {k_next_unknown_only, 3},
        {k_next_errors, 8},     {k_rank_valid, 16},    {k_rank_errors, 8},
        {k_models, 3},          {k_reload, 3},         {k_healthz, 3},
        {k_readyz, 3},          {k_metrics, 3},        {k_head, 3},
        {k_options, 3},         {k_not_found, 3},      {k_wrong_method, 3},
        {k_too_large, 3},       {k_content_type, 5},   {k_framing, 2},
    };
    enum { NK = sizeof K / sizeof K[0], NREQ = 800 };
    int total_w = 0;
    for (int i = 0; i < NK; i++)
        total_w += K[i].weight;
    mix *m = calloc(1, sizeof *m);
    ASSERT(m != NULL);
    mix_start(m);
    /* every kind once first (connection chosen at random), then at random */
    for (int i = 0; i < NK; i++)
        K[i].fn(m, (int)rng_below(&m->rng, NCONN));
    while (m->total < NREQ) {
        int x = (int)rng_below(&m->rng, (uint64_t)total_w), i = 0;
        while (x >= K[i].weight)
            x -= K[i++].weight;
        K[i].fn(m, (int)rng_below(&m->rng, NCONN));
    }
    /* every connection still the first one libcurl opened (or reopened after an answer that closed
     * it) */
    for (int c = 0; c < NCONN; c++)
        MCHECK(m, c, m->conn[c].requests > 50, "connection %d: %d requests", c,
               m->conn[c].requests);
    if (getenv("RECD_MIX_VERBOSE")) {
        fprintf(stderr, "    seed %llu, %d requests:", (unsigned long long)m->seed, m->total);
        for (int i = 0; i < 64 && m->count_names[i]; i++)
            fprintf(stderr, " %s %d", m->count_names[i], m->counts[i]);
        fprintf(stderr, "\n");
    }
    mix_finish(m);
    free(m);
}
