/* tests/test_api_ratings.c - the request parsers of the rating routes (api/ratings_req.h): POST
 * /v1/ratings bodies and the recommendations query string, in process. */
#include <stdlib.h>
#include <string.h>

#include "api/ratings_req.h"
#include "tests/testlib.h"

/* Parse body (copied into a buffer of exactly its length: no NUL after it) with lim; detail in *detail
 * (a static copy). */
static int parse(const char *body, const api_limits *lim, api_scratch *scr, ratings_req *req, const char **detail)
{
    static char d[320];
    size_t n = strlen(body);
    char *b = malloc(n ? n : 1);
    ASSERT(b != NULL);
    memcpy(b, body, n);
    d[0] = '\0';
    int st = ratings_req_parse(b, n, lim, scr, req, d, sizeof d);
    *detail = d;
    /* the strings of req may point into b: callers read only statuses and details */
    free(b);
    return st;
}

static int str_is(api_str s, const char *lit)
{
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

TEST(api_ratings_accepts)
{
    api_limits lim = api_limits_default();
    api_scratch scr = {0};
    ratings_req req;
    char detail[320];
    const char *body = "{\"user_id\":\"u1\", \"item_ids\":[\"i1\",\"zz\",\"i1\",\"\\u00e9t\\u00e9\"]}";
    ASSERT_EQ(ratings_req_parse(body, strlen(body), &lim, &scr, &req, detail, sizeof detail), 0);
    ASSERT(str_is(req.user_id, "u1"));
    ASSERT_EQ(req.n_items, 4);
    ASSERT(str_is(req.items[0], "i1") && str_is(req.items[1], "zz") && str_is(req.items[2], "i1"));
    ASSERT(str_is(req.items[3], "\xc3\xa9t\xc3\xa9")); /* escapes decoded into the arena */
    ASSERT_EQ(req.has_model, 0);
    ASSERT_EQ(req.has_experiment, 0);
    ASSERT_EQ(req.clip, 1); /* clipped by default */

    body = "{\"clip\":false,\"experiment\":\"e1\",\"model\":\"biasedmf\",\"item_ids\":[\"a\"],\"user_id\":\"u\\u0000x\"}";
    ASSERT_EQ(ratings_req_parse(body, strlen(body), &lim, &scr, &req, detail, sizeof detail), 0);
    ASSERT_EQ(req.clip, 0);
    ASSERT(req.has_model && str_is(req.model, "biasedmf"));
    ASSERT(req.has_experiment && str_is(req.experiment, "e1"));
    ASSERT_EQ(req.user_id.n, 3); /* a NUL inside an id is a byte like any other */
    ASSERT_EQ(req.user_id.p[1], '\0');

    /* an empty name is 422 naming the field, as ?model= and /v1/next's "model":"" */
    body = "{\"user_id\":\"u1\",\"item_ids\":[\"a\"],\"model\":\"\"}";
    ASSERT_EQ(ratings_req_parse(body, strlen(body), &lim, &scr, &req, detail, sizeof detail), 422);
    ASSERT_STR_EQ(detail, "model: length 0 outside [1, 256]");
    body = "{\"user_id\":\"u1\",\"item_ids\":[\"a\"],\"experiment\":\"\"}";
    ASSERT_EQ(ratings_req_parse(body, strlen(body), &lim, &scr, &req, detail, sizeof detail), 422);
    ASSERT_STR_EQ(detail, "experiment: length 0 outside [1, 256]");
    api_scratch_release(&scr);
}

TEST(api_ratings_limits)
{
    api_limits lim = api_limits_default();
    lim.max_items = 3;
    lim.max_id_len = 4;
    api_scratch scr = {0};
    ratings_req req;
    const char *d;
    ASSERT_EQ(parse("{\"user_id\":\"u\",\"item_ids\":[\"a\",\"b\",\"c\"]}", &lim, &scr, &req, &d), 0);
    ASSERT_EQ(parse("{\"user_id\":\"u\",\"item_ids\":[\"a\",\"b\",\"c\",\"d\"]}", &lim, &scr, &req, &d), 422);
    ASSERT_STR_EQ(d, "item_ids: 4 given, between 1 and 3 accepted");
    ASSERT_EQ(parse("{\"user_id\":\"u\",\"item_ids\":[]}", &lim, &scr, &req, &d), 422);
    ASSERT_STR_EQ(d, "item_ids: 0 given, between 1 and 3 accepted");
    ASSERT_EQ(parse("{\"user_id\":\"u\",\"item_ids\":[\"a\",\"abcde\"]}", &lim, &scr, &req, &d), 422);
    ASSERT_STR_EQ(d, "item_ids[1]: length 5 outside [1, 4]");
    ASSERT_EQ(parse("{\"user_id\":\"u\",\"item_ids\":[\"\"]}", &lim, &scr, &req, &d), 422);
    ASSERT_STR_EQ(d, "item_ids[0]: length 0 outside [1, 4]");
    ASSERT_EQ(parse("{\"user_id\":\"abcde\",\"item_ids\":[\"a\"]}", &lim, &scr, &req, &d), 422);
    ASSERT_STR_EQ(d, "user_id: length 5 outside [1, 4]");
    ASSERT_EQ(parse("{\"user_id\":\"\",\"item_ids\":[\"a\"]}", &lim, &scr, &req, &d), 422);
    ASSERT_STR_EQ(d, "user_id: length 0 outside [1, 4]");
    /* an escaped id counts its decoded bytes: \u00e9 is 2 bytes */
    ASSERT_EQ(parse("{\"user_id\":\"\\u00e9\\u00e9\",\"item_ids\":[\"a\"]}", &lim, &scr, &req, &d), 0);
    api_scratch_release(&scr);
}

TEST(api_ratings_errors)
{
    api_limits lim = api_limits_default();
    api_scratch scr = {0};
    ratings_req req;
    static const struct {
        const char *body;
        int st;
        const char *detail; /* the whole detail, or a prefix ending in '*' */
    } T[] = {
        {"", 400, "empty body: expected a JSON object"},
        {"{\"user_id\":\"u\",", 400, "invalid JSON: unexpected end at offset 15"},
        {"[1]", 400, "the body must be a JSON object, got an array"},
        {"{\"user_id\":\"u\",\"user_id\":\"v\",\"item_ids\":[\"a\"]}", 400, "duplicate key 'user_id'"},
        /* duplicates before unknown fields and before type errors */
        {"{\"x\":1,\"user_id\":1,\"item_ids\":[\"a\"],\"item_ids\":[]}", 400, "duplicate key 'item_ids'"},
        {"{\"x\":1,\"user_id\":\"u\",\"item_ids\":[\"a\"]}", 422,
         "unknown field 'x' (expected user_id, item_ids, model, experiment, clip)"},
        {"{\"item_ids\":[\"a\"]}", 422, "user_id: required"},
        {"{\"user_id\":\"u\"}", 422, "item_ids: required"},
        {"{\"user_id\":7,\"item_ids\":[\"a\"]}", 400, "user_id: expected a string, got an integer"},
        {"{\"user_id\":\"u\",\"item_ids\":\"a\"}", 400, "item_ids: expected an array of strings, got a string"},
        {"{\"user_id\":\"u\",\"item_ids\":[\"a\",null]}", 400, "item_ids[1]: expected a string, got null"},
        {"{\"user_id\":\"u\",\"item_ids\":[\"a\",[\"b\"]]}", 400, "item_ids[1]: expected a string, got an array"},
        {"{\"user_id\":\"u\",\"item_ids\":[\"a\"],\"model\":3}", 400, "model: expected a string, got an integer"},
        {"{\"user_id\":\"u\",\"item_ids\":[\"a\"],\"experiment\":{}}", 400,
         "experiment: expected a string, got an object"},
        {"{\"user_id\":\"u\",\"item_ids\":[\"a\"],\"clip\":1}", 400, "clip: expected a boolean, got an integer"},
        {"{\"user_id\":\"u\",\"item_ids\":[\"a\"],\"clip\":\"false\"}", 400, "clip: expected a boolean, got a string"},
        {"{\"user_id\":\"u\",\"item_ids\":[[[[[[[[[\"a\"]]]]]]]]]}", 400, "invalid JSON: nested deeper than 8*"},
        {"{\"user_id\":\"u\xff\",\"item_ids\":[\"a\"]}", 400, "invalid JSON: invalid UTF-8*"},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        const char *d;
        int st = parse(T[i].body, &lim, &scr, &req, &d);
        if (st != T[i].st) FAIL("%s: status %d, want %d (%s)", T[i].body, st, T[i].st, d);
        size_t n = strlen(T[i].detail);
        if (T[i].detail[n - 1] == '*' ? strncmp(d, T[i].detail, n - 1) != 0 : strcmp(d, T[i].detail) != 0)
            FAIL("%s: detail \"%s\", want \"%s\"", T[i].body, d, T[i].detail);
        ASSERT_EQ(req.n_items, 0); /* zeroed on failure */
    }
    api_scratch_release(&scr);
}

/* A query of n "key=value" strings ("key" alone: no value). */
static int query(const char *const *kv, int n, const api_limits *lim, recs_query *q, const char **detail)
{
    static char d[320];
    api_kv args[16];
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(kv[i], '=');
        args[i].key = (api_str){kv[i], eq ? (size_t)(eq - kv[i]) : strlen(kv[i])};
        args[i].value = eq ? (api_str){eq + 1, strlen(eq + 1)} : (api_str){"", 0};
        args[i].has_value = eq != NULL;
    }
    d[0] = '\0';
    int st = recs_query_parse(args, n, lim, q, d, sizeof d);
    *detail = d;
    return st;
}

TEST(api_recs_query)
{
    api_limits lim = api_limits_default();
    recs_query q;
    const char *d;
    ASSERT_EQ(query(NULL, 0, &lim, &q, &d), 0);
    ASSERT_EQ(q.k, lim.k_default);
    ASSERT_EQ(q.exclude_seen, 1);
    ASSERT_EQ(q.model.n, 0);
    ASSERT_EQ(q.experiment.n, 0);
    const char *all[] = {"k=7", "model=biasedmf", "exclude_seen=false", "experiment=e1"};
    ASSERT_EQ(query(all, 4, &lim, &q, &d), 0);
    ASSERT_EQ(q.k, 7);
    ASSERT(str_is(q.model, "biasedmf") && str_is(q.experiment, "e1"));
    ASSERT_EQ(q.exclude_seen, 0);
    const char *t[] = {"exclude_seen=true", "k=1000"};
    ASSERT_EQ(query(t, 2, &lim, &q, &d), 0);
    ASSERT_EQ(q.exclude_seen, 1);
    ASSERT_EQ(q.k, 1000);

    static const struct {
        const char *args[9];
        int n, st;
        const char *detail;
    } T[] = {
        {{"k=0"}, 1, 422, "k: 0 is outside [1, 1000]"},
        {{"k=1001"}, 1, 422, "k: 1001 is outside [1, 1000]"},
        {{"k=-3"}, 1, 422, "k: -3 is outside [1, 1000]"},
        {{"k=99999999999999999999999"}, 1, 422, "k: 99999999999999999999999 is outside [1, 1000]"},
        {{"k=abc"}, 1, 400, "k: expected an integer, got 'abc'"},
        {{"k=2.5"}, 1, 400, "k: expected an integer, got '2.5'"},
        {{"k= 5"}, 1, 400, "k: expected an integer, got ' 5'"},
        {{"k=+5"}, 1, 400, "k: expected an integer, got '+5'"},
        {{"k=0x10"}, 1, 400, "k: expected an integer, got '0x10'"},
        {{"k="}, 1, 400, "k: expected an integer, got ''"},
        {{"k"}, 1, 400, "k: expected an integer (k=20)"},
        {{"k=1", "k=2"}, 2, 400, "duplicate parameter 'k'"},
        {{"kk=1", "k=2", "k=3"}, 3, 400, "duplicate parameter 'k'"}, /* duplicates first */
        {{"kk=1"}, 1, 422, "unknown parameter 'kk' (expected k, model, experiment, exclude_seen)"},
        {{"exclude_seen=yes"}, 1, 400, "exclude_seen: expected true or false, got 'yes'"},
        {{"exclude_seen=1"}, 1, 400, "exclude_seen: expected true or false, got '1'"},
        {{"exclude_seen"}, 1, 400, "exclude_seen: expected true or false, got no value"},
        {{"model="}, 1, 422, "model: length 0 outside [1, 256]"},
        {{"model"}, 1, 400, "model: expected a value (model=...)"},
        {{"experiment="}, 1, 422, "experiment: length 0 outside [1, 256]"},
        /* an argument without a name is ignored ("?&k=0", "k=1&&kk=2", "?=5"), as a trailing '&' is */
        {{"", "k=0"}, 2, 422, "k: 0 is outside [1, 1000]"},
        {{"=5", "", "kk=2"}, 3, 422, "unknown parameter 'kk' (expected k, model, experiment, exclude_seen)"},
        /* nine arguments: only the first eight are read, and they hold a repeat or an unknown name */
        {{"a=1", "b=1", "c=1", "d=1", "e=1", "f=1", "g=1", "h=1", "k=0"}, 9, 422,
         "unknown parameter 'a' (expected k, model, experiment, exclude_seen)"},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        int st = query(T[i].args, T[i].n, &lim, &q, &d);
        if (st != T[i].st || strcmp(d, T[i].detail) != 0)
            FAIL("%s...: %d \"%s\", want %d \"%s\"", T[i].args[0], st, d, T[i].st, T[i].detail);
    }
    /* a value with bytes outside printable ASCII is shown with '?' (the detail stays one clean line) */
    const char *bad[] = {"k=\x01\n"};
    ASSERT_EQ(query(bad, 1, &lim, &q, &d), 400);
    ASSERT_STR_EQ(d, "k: expected an integer, got '?" "?'");
    /* a long value is cut */
    const char *longk[] = {"k=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    ASSERT_EQ(query(longk, 1, &lim, &q, &d), 400);
    ASSERT_STR_EQ(d, "k: expected an integer, got 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
}
