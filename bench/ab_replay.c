/* bench/ab_replay.c - the client side of bench/ab_replay.sh: replays held-out UCI Adult rows as visits to
 * an experiment over HTTP and prints the experiment's report.
 *
 *   ab_replay PORT ADULT_TEST EXPERIMENT [VISITS [CANDIDATES [K [SEED]]]]
 *
 * Visit v is a new user "v<seed>-<v>": it asks POST /v1/rank (experiment EXPERIMENT, user_id) to rank
 * CANDIDATES rows drawn at random from the held-out file (each row a candidate with all its features), is
 * shown the top K, and acquires the first shown row whose label is positive (income >50K), posting an
 * `acquisition` event for that request (one keep-alive connection, sequential). At the end it reads GET
 * /v1/experiments/EXPERIMENT and prints one line per arm, then the trust checks:
 *   arm=NAME model=M units=N acquisitions=A rate=R lift=+x.x% ci=[lo%,hi%] p=P seq=[lo%,hi%]
 *   srm chi2=X p=P mismatch=no  multi_arm_units=0
 * Built by bench/ab_replay.sh (cc ... -lcurl -ljansson). Exit status 0, or 1 with a message on stderr.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NCOL 15
static const char *const cols[NCOL] = {"age", "workclass", "fnlwgt", "education", "education_num",
                                       "marital_status", "occupation", "relationship", "race", "gender",
                                       "capital_gain", "capital_loss", "hours_per_week", "native_country",
                                       "income_bracket"};
static const int numeric[NCOL] = {1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0};

typedef struct row {
    char *f[NCOL];
    int positive;
} row;

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static size_t on_data(char *d, size_t s, size_t n, void *arg)
{
    buf *b = arg;
    size_t len = s * n;
    if (b->n + len + 1 > b->cap) {
        size_t cap = (b->n + len + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, len);
    b->n += len;
    b->p[b->n] = 0;
    return len;
}

static uint64_t rng_state;
static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static char *trim(char *s)
{
    while (*s == ' ') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '.')) s[--n] = 0;
    return s;
}

static int load(const char *path, row **out, int *n_out)
{
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); return -1; }
    char line[4096];
    int n = 0, cap = 0;
    row *rows = NULL;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '|' || line[0] == '\n') continue;
        row r = {0};
        char *save = NULL, *tok = strtok_r(line, ",", &save);
        int c = 0;
        for (; tok && c < NCOL; tok = strtok_r(NULL, ",", &save)) r.f[c++] = strdup(trim(tok));
        if (c != NCOL) {
            for (int i = 0; i < c; i++) free(r.f[i]);
            continue;
        }
        r.positive = strcmp(r.f[NCOL - 1], ">50K") == 0;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            rows = realloc(rows, (size_t)cap * sizeof *rows);
            if (!rows) { fclose(f); return -1; }
        }
        rows[n++] = r;
    }
    fclose(f);
    *out = rows;
    *n_out = n;
    return n > 0 ? 0 : -1;
}

static void add(buf *b, const char *s)
{
    on_data((char *)s, 1, strlen(s), b);
}

static json_t *http(CURL *c, const char *url, const char *body, long *status)
{
    static buf b;
    b.n = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (curl_easy_perform(c) != CURLE_OK) return NULL;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    return json_loadb(b.p ? b.p : "", b.n, 0, NULL);
}

static double num(json_t *o, const char *path)
{
    /* "a.b.c" or "a.0" (array index) */
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s", path);
    json_t *v = o;
    for (char *save = NULL, *k = strtok_r(tmp, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(k)) : json_object_get(v, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ab_replay PORT ADULT_TEST EXPERIMENT [VISITS [CANDIDATES [K [SEED]]]]\n");
        return 1;
    }
    const char *port = argv[1], *exp = argv[3];
    int visits = argc > 4 ? atoi(argv[4]) : 20000, ncand = argc > 5 ? atoi(argv[5]) : 10,
        k = argc > 6 ? atoi(argv[6]) : 1;
    rng_state = argc > 7 ? strtoull(argv[7], NULL, 10) : 1;
    unsigned long long seed = rng_state;
    row *rows;
    int nrows;
    if (load(argv[2], &rows, &nrows) != 0) { fprintf(stderr, "ab_replay: cannot read %s\n", argv[2]); return 1; }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    char url_rank[128], url_ev[128], url_rep[256];
    snprintf(url_rank, sizeof url_rank, "http://127.0.0.1:%s/v1/rank", port);
    snprintf(url_ev, sizeof url_ev, "http://127.0.0.1:%s/v1/events", port);
    snprintf(url_rep, sizeof url_rep, "http://127.0.0.1:%s/v1/experiments/%s", port, exp);
    buf body = {0};
    long acquired = 0, errors = 0;
    for (int v = 0; v < visits; v++) {
        body.n = 0;
        char tmp[256];
        snprintf(tmp, sizeof tmp, "{\"experiment\":\"%s\",\"user_id\":\"v%llu-%d\",\"k\":%d,\"candidates\":[", exp,
                 seed, v, k);
        add(&body, tmp);
        for (int j = 0; j < ncand; j++) {
            int r = (int)(rnd() % (uint64_t)nrows);
            snprintf(tmp, sizeof tmp, "%s{\"item_id\":\"r%d\",\"features\":{", j ? "," : "", r);
            add(&body, tmp);
            for (int ci = 0; ci < NCOL - 1; ci++) {
                if (numeric[ci])
                    snprintf(tmp, sizeof tmp, "%s\"%s\":%s", ci ? "," : "", cols[ci], rows[r].f[ci]);
                else
                    snprintf(tmp, sizeof tmp, "%s\"%s\":\"%s\"", ci ? "," : "", cols[ci], rows[r].f[ci]);
                add(&body, tmp);
            }
            add(&body, "}}");
        }
        add(&body, "]}");
        long st = 0;
        json_t *ans = http(c, url_rank, body.p, &st);
        if (!ans || st != 200) {
            if (++errors <= 3) fprintf(stderr, "ab_replay: /v1/rank answered %ld\n", st);
            json_decref(ans);
            if (errors > 100) return 1;
            continue;
        }
        const char *rid = json_string_value(json_object_get(ans, "request_id"));
        json_t *items = json_object_get(ans, "items");
        for (size_t i = 0; i < json_array_size(items); i++) {
            const char *id = json_string_value(json_object_get(json_array_get(items, i), "item_id"));
            if (!id || !rows[atoi(id + 1)].positive) continue;
            char ev[512];
            snprintf(ev, sizeof ev, "{\"request_id\":\"%s\",\"type\":\"acquisition\",\"item_id\":\"%s\"}", rid, id);
            json_t *r2 = http(c, url_ev, ev, &st);
            json_decref(r2);
            if (st != 200) {
                fprintf(stderr, "ab_replay: /v1/events answered %ld\n", st);
                return 1;
            }
            acquired++;
            break;
        }
        json_decref(ans);
    }
    long st = 0;
    json_t *rep = http(c, url_rep, NULL, &st);
    if (!rep || st != 200) { fprintf(stderr, "ab_replay: report answered %ld\n", st); return 1; }
    printf("visits=%d candidates=%d k=%d acquisitions=%ld errors=%ld\n", visits, ncand, k, acquired, errors);
    json_t *arms = json_object_get(rep, "arms");
    for (size_t i = 0; i < json_array_size(arms); i++) {
        json_t *a = json_array_get(arms, i);
        printf("arm=%s model=%s units=%.0f acquisitions=%.0f rate=%.4f",
               json_string_value(json_object_get(a, "name")), json_string_value(json_object_get(a, "model")),
               num(a, "units"), num(a, "acquisitions"), num(a, "rate_per_impression.value"));
        if (json_is_null(json_object_get(a, "lift"))) {
            printf(" control\n");
            continue;
        }
        printf(" lift=%+.1f%% ci=[%+.1f%%,%+.1f%%] p=%.3g seq=[%+.1f%%,%+.1f%%]\n",
               100 * num(a, "lift.relative.value"), 100 * num(a, "lift.relative.ci.0"),
               100 * num(a, "lift.relative.ci.1"), num(a, "lift.p"), 100 * num(a, "lift.sequential.relative.0"),
               100 * num(a, "lift.sequential.relative.1"));
    }
    json_t *srm = json_object_get(rep, "srm");
    printf("srm chi2=%.3f p=%.3g mismatch=%s multi_arm_units=%.0f\n", num(srm, "chi2"), num(srm, "p"),
           json_is_true(json_object_get(srm, "mismatch")) ? "YES" : "no", num(rep, "multi_arm_units"));
    json_decref(rep);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    for (int i = 0; i < nrows; i++)
        for (int j = 0; j < NCOL; j++) free(rows[i].f[j]);
    free(rows);
    free(body.p);
    return 0;
}
