/* tests/test_api.c - the request JSON reader (api/json.h) and the request parsers built on it
 * (api/validate.h: /v1/next, api/rank_req.h: /v1/rank), in process. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/json.h"
#include "api/rank_req.h"
#include "api/validate.h"
#include "models/features.h"
#include "tests/testlib.h"

/* A copy of s in a buffer of exactly its length (no NUL after it: ASan sees a read past the end). */
static char *exact(const char *s, size_t n)
{
    char *b = malloc(n ? n : 1);
    ASSERT(b != NULL);
    memcpy(b, s, n);
    return b;
}

/* ajson_check of s (NUL-terminated here, checked without its NUL) with max_depth 8: "" when accepted,
 * else the message (a static copy). */
static const char *check(const char *s)
{
    static char msg[512];
    char *b = exact(s, strlen(s));
    int rc = ajson_check(b, strlen(s), 8);
    free(b);
    if (rc == RC_OK) return "";
    ASSERT_EQ(rc, RC_EFORMAT);
    snprintf(msg, sizeof msg, "%s", rc_errmsg());
    return msg;
}

TEST(api_json_check_errors)
{
    static const struct {
        const char *in, *want; /* want: "" accepted, else the whole message */
    } T[] = {
        {"{}", ""},
        {" [ 1 , -2.5e+3 , 0 , -0 , 1E9 , true , false , null , \"\" ] ", ""},
        {"\"just a string\"", ""},
        {"123", ""},
        {"{\"a\":{\"b\":[{}]}}", ""},
        {"", "invalid JSON: unexpected end at offset 0"},
        {"   ", "invalid JSON: unexpected end at offset 3"},
        {"{", "invalid JSON: unexpected end at offset 1"},
        {"{\"a\"", "invalid JSON: unexpected end at offset 4"},
        {"{\"a\":", "invalid JSON: unexpected end at offset 5"},
        {"[1,", "invalid JSON: unexpected end at offset 3"},
        {"[1,]", "invalid JSON: unexpected character at offset 3"},
        {"{\"a\":1,}", "invalid JSON: expected a string key at offset 7"},
        {"{a:1}", "invalid JSON: expected a string key at offset 1"},
        {"{\"a\" 1}", "invalid JSON: expected ':' at offset 5"},
        {"{\"a\":1 \"b\":2}", "invalid JSON: expected ',' or '}' at offset 7"},
        {"[1 2]", "invalid JSON: expected ',' or ']' at offset 3"},
        {"[1}", "invalid JSON: expected ',' or ']' at offset 2"},
        {"{} x", "invalid JSON: trailing characters at offset 3"},
        {"{}{}", "invalid JSON: trailing characters at offset 2"},
        {"tru", "invalid JSON: unexpected end at offset 3"},
        {"trUe", "invalid JSON: unexpected character at offset 2"},
        {"nul", "invalid JSON: unexpected end at offset 3"},
        {"NaN", "invalid JSON: unexpected character at offset 0"},
        {"'a'", "invalid JSON: unexpected character at offset 0"},
        {"01", "invalid JSON: bad number at offset 1"},
        {"-", "invalid JSON: bad number at offset 1"},
        {"-a", "invalid JSON: bad number at offset 1"},
        {"+1", "invalid JSON: unexpected character at offset 0"},
        {".5", "invalid JSON: unexpected character at offset 0"},
        {"1.", "invalid JSON: bad number at offset 2"},
        {"1.e3", "invalid JSON: bad number at offset 2"},
        {"1e", "invalid JSON: bad number at offset 2"},
        {"1e+", "invalid JSON: bad number at offset 3"},
        {"\"abc", "invalid JSON: unterminated string at offset 0"},
        {"[\"a\\", "invalid JSON: unterminated string at offset 1"},
        {"\"a\tb\"", "invalid JSON: control character in a string at offset 2"},
        {"\"\\x\"", "invalid JSON: bad escape at offset 1"},
        {"\"\\u12G4\"", "invalid JSON: bad \\u escape at offset 1"},
        {"\"\\u12\"", "invalid JSON: bad \\u escape at offset 1"},
        {"\"\\ud83d\"", "invalid JSON: unpaired surrogate at offset 1"},
        {"\"\\ud83d\\u0041\"", "invalid JSON: unpaired surrogate at offset 1"},
        {"\"\\ude00\"", "invalid JSON: unpaired surrogate at offset 1"},
        {"\"\\ud83d\\ude00\"", ""},
        {"\"\\uD83D\\uDE00\"", ""},
        {"\"a\xff\"", "invalid JSON: invalid UTF-8 at offset 2"},
        {"\"\xc0\xaf\"", "invalid JSON: invalid UTF-8 at offset 1"},         /* overlong '/' */
        {"\"\xe0\x80\xaf\"", "invalid JSON: invalid UTF-8 at offset 1"},     /* overlong, 3 bytes */
        {"\"\xed\xa0\x80\"", "invalid JSON: invalid UTF-8 at offset 1"},     /* a surrogate in UTF-8 */
        {"\"\xf4\x90\x80\x80\"", "invalid JSON: invalid UTF-8 at offset 1"}, /* over U+10FFFF */
        {"\"\xc3\"", "invalid JSON: invalid UTF-8 at offset 1"},             /* cut sequence */
        {"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", ""},
        {"[[[[[[[[1]]]]]]]]", ""},
        {"[[[[[[[[[1]]]]]]]]]", "invalid JSON: nested deeper than 8 levels at offset 8"},
        {"{\"a\":\"[[[[[[[[[[[[[[\"}", ""}, /* brackets in strings do not nest */
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        const char *got = check(T[i].in);
        if (strcmp(got, T[i].want) != 0) FAIL("%s: got \"%s\", want \"%s\"", T[i].in, got, T[i].want);
    }
    /* a NUL byte is a control character in a string and an unexpected character outside */
    ASSERT_EQ(ajson_check("\"a\0\"", 4, 8), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "control character in a string at offset 2");
    ASSERT_EQ(ajson_check("{}\0", 3, 8), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "trailing characters at offset 2");
}

TEST(api_json_depth_without_recursion)
{
    /* 100,000 '[': refused at the limit's level, no recursion; the clamp is AJSON_MAX_DEPTH */
    size_t n = 100000;
    char *b = malloc(n);
    ASSERT(b != NULL);
    memset(b, '[', n);
    ASSERT_EQ(ajson_check(b, n, 64), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "nested deeper than 64 levels at offset 64");
    ASSERT_EQ(ajson_check(b, n, 1 << 30), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "nested deeper than 1024 levels at offset 1024");
    ASSERT_EQ(ajson_check(b, n, 0), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "nested deeper than 1 levels at offset 1");
    /* exactly AJSON_MAX_DEPTH levels of mixed objects and arrays are fine */
    size_t d = AJSON_MAX_DEPTH, k = 0;
    char *m = malloc(d * 6 + 8);
    ASSERT(m != NULL);
    for (size_t i = 0; i < d; i++) {
        if (i % 2) {
            memcpy(m + k, "{\"a\":", 5);
            k += 5;
        } else {
            m[k++] = '[';
        }
    }
    m[k++] = '1';
    for (size_t i = d; i-- > 0;) m[k++] = i % 2 ? '}' : ']';
    ASSERT_OK(ajson_check(m, k, AJSON_MAX_DEPTH));
    ajson p;
    ajson_init(&p, m, k, NULL, 0);
    ajson_skip(&p);
    ASSERT_EQ(p.i, k);
    free(m);
    free(b);
}

TEST(api_json_strings)
{
    const char *doc = "[\"plain\",\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\",\"\\u00e9t\\u00E9 \\ud83d\\ude00\",\"x\\u0000y\","
                      "\"caf\xc3\xa9\",\"\"]";
    size_t n = strlen(doc);
    char *b = exact(doc, n);
    ASSERT_OK(ajson_check(b, n, 8));
    char *arena = malloc(n + 1);
    ajson p;
    ajson_init(&p, b, n, arena, n + 1);
    ASSERT_EQ(ajson_peek(&p), AJSON_ARRAY);
    ASSERT_EQ(ajson_count(&p), 6);
    ASSERT_EQ(p.i, 0); /* count does not move */
    ajson_enter(&p);
    api_str s;
    ASSERT_EQ(ajson_elem(&p), 1);
    ASSERT_OK(ajson_string(&p, &s));
    ASSERT(s.p == b + 2 && s.n == 5); /* no escape: a view into the body */
    ASSERT_EQ(p.arena_len, 0);
    ASSERT_EQ(ajson_elem(&p), 1);
    ASSERT_OK(ajson_string(&p, &s));
    ASSERT(s.p == arena);
    ASSERT_EQ(s.n, 12);
    ASSERT(memcmp(s.p, "a\"b\\c/d\b\f\n\r\t", 12) == 0);
    ASSERT_EQ(ajson_elem(&p), 1);
    ASSERT_OK(ajson_string(&p, &s));
    ASSERT_EQ(s.n, strlen("\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80"));
    ASSERT(memcmp(s.p, "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80", s.n) == 0);
    ASSERT_EQ(ajson_elem(&p), 1);
    ASSERT_OK(ajson_string(&p, &s));
    ASSERT_EQ(s.n, 3);
    ASSERT(memcmp(s.p, "x\0y", 3) == 0); /* NUL kept: strings are (pointer, length) */
    ASSERT_EQ(ajson_elem(&p), 1);
    ASSERT_OK(ajson_string(&p, &s));
    ASSERT_EQ(s.n, 5);
    ASSERT(memcmp(s.p, "caf\xc3\xa9", 5) == 0);
    ASSERT_EQ(ajson_elem(&p), 1);
    ASSERT_OK(ajson_string(&p, &s));
    ASSERT_EQ(s.n, 0);
    ASSERT_EQ(ajson_elem(&p), 0);
    ASSERT_EQ(p.i, n);
    ASSERT(p.arena_len <= n);
    /* an arena too small for a string with escapes: RC_EFULL, the cursor stays; none at all: the same */
    ajson_init(&p, b, n, arena, 4);
    ajson_enter(&p);
    ajson_elem(&p);
    ajson_skip(&p);
    ajson_elem(&p);
    size_t at = p.i;
    ASSERT_EQ(ajson_string(&p, &s), RC_EFULL);
    ASSERT_EQ(p.i, at);
    ajson_init(&p, b, n, NULL, 0);
    ajson_enter(&p);
    ajson_elem(&p);
    ASSERT_OK(ajson_string(&p, &s)); /* no escape: no arena needed */
    ajson_elem(&p);
    ASSERT_EQ(ajson_string(&p, &s), RC_EFULL);
    free(arena);
    free(b);
}

TEST(api_json_cursor_objects_and_skip)
{
    const char *doc = " { \"a\" : [1, {\"x\":\"]}\\\"[{\"}, [[]], \"\\\\\"] , \"b\\u0063\":{}, \"n\":null, \"t\":true,"
                      "\"f\":false, \"num\":-12.5e-1 } ";
    size_t n = strlen(doc);
    char *b = exact(doc, n), *arena = malloc(n + 1);
    ASSERT_OK(ajson_check(b, n, 8));
    ajson p;
    ajson_init(&p, b, n, arena, n + 1);
    ASSERT_EQ(ajson_peek(&p), AJSON_OBJECT);
    ASSERT_EQ(ajson_count(&p), 6);
    ASSERT_STR_EQ(ajson_describe(&p), "an object");
    ajson_enter(&p);
    api_str k;
    ASSERT_EQ(ajson_member(&p, &k), 1);
    ASSERT(k.n == 1 && k.p[0] == 'a');
    ASSERT_EQ(ajson_peek(&p), AJSON_ARRAY);
    ASSERT_EQ(ajson_count(&p), 4);
    ajson_skip(&p); /* brackets and escaped quotes inside strings do not count */
    ASSERT_EQ(ajson_member(&p, &k), 1);
    ASSERT(k.n == 2 && memcmp(k.p, "bc", 2) == 0); /* keys are decoded too */
    ASSERT_EQ(ajson_count(&p), 0);
    ajson_enter(&p);
    ASSERT_EQ(ajson_member(&p, &k), 0);
    ASSERT_EQ(ajson_member(&p, &k), 1);
    ASSERT_STR_EQ(ajson_describe(&p), "null");
    ASSERT_EQ(ajson_literal(&p), 0);
    ASSERT_EQ(ajson_member(&p, &k), 1);
    ASSERT_STR_EQ(ajson_describe(&p), "a boolean");
    ASSERT_EQ(ajson_literal(&p), 1);
    ASSERT_EQ(ajson_member(&p, &k), 1);
    ASSERT_EQ(ajson_peek(&p), AJSON_FALSE);
    ajson_skip(&p);
    ASSERT_EQ(ajson_member(&p, &k), 1);
    ASSERT_STR_EQ(ajson_describe(&p), "a number");
    int is_int = 1;
    ASSERT_NEAR(ajson_number(&p, &is_int), -1.25, 0);
    ASSERT_EQ(is_int, 0);
    ASSERT_EQ(ajson_member(&p, &k), 0);
    /* skipping the whole document from the start ends at the same byte */
    size_t end = p.i;
    ajson_init(&p, b, n, NULL, 0);
    ajson_skip(&p);
    ASSERT_EQ(p.i, end);
    /* a scalar document at the very end of the buffer */
    char *num = exact("42", 2);
    ajson_init(&p, num, 2, NULL, 0);
    ASSERT_STR_EQ(ajson_describe(&p), "an integer");
    ajson_skip(&p);
    ASSERT_EQ(p.i, 2);
    free(num);
    free(arena);
    free(b);
}

/* The number literal s read by ajson_number (from an exact-size buffer). */
static double num(const char *s, int *is_int)
{
    size_t n = strlen(s);
    char *b = exact(s, n);
    ASSERT_OK(ajson_check(b, n, 8));
    ajson p;
    ajson_init(&p, b, n, NULL, 0);
    double v = ajson_number(&p, is_int);
    ASSERT_EQ(p.i, n);
    free(b);
    return v;
}

static int integer(const char *s, long long *v)
{
    size_t n = strlen(s);
    char *b = exact(s, n);
    ajson p;
    ajson_init(&p, b, n, NULL, 0);
    int rc = ajson_int(&p, v);
    ASSERT_EQ(p.i, n);
    free(b);
    return rc;
}

TEST(api_json_numbers)
{
    int is_int;
    ASSERT(num("0", &is_int) == 0 && is_int);
    ASSERT(num("-0", &is_int) == 0 && is_int && signbit(num("-0", NULL)));
    ASSERT(num("17", &is_int) == 17 && is_int);
    ASSERT(num("-3.25", &is_int) == -3.25 && !is_int);
    ASSERT(num("1e3", &is_int) == 1000 && !is_int);
    ASSERT(num("2E-2", &is_int) == 0.02);
    ASSERT(num("0.1", NULL) == 0.1); /* correctly rounded (strtod) */
    ASSERT(isinf(num("1e400", NULL)));
    ASSERT(num("1e-400", NULL) == 0);
    /* 64 bytes and more: reduced to 40 significant digits, the same double here */
    char big[200];
    snprintf(big, sizeof big, "1%070d", 0); /* 1e70 written out */
    ASSERT(num(big, &is_int) == 1e70 && is_int);
    snprintf(big, sizeof big, "-0.%080d25e2", 0); /* -0.25e-78 */
    ASSERT_NEAR(num(big, &is_int), -0.25e-78, 1e-93);
    ASSERT_EQ(is_int, 0);
    snprintf(big, sizeof big, "12345678901234567890123456789012345678901234567890123456789012345.5e-60");
    ASSERT_NEAR(num(big, NULL), 12345.678901234567890, 1e-9);
    snprintf(big, sizeof big, "0.%080d", 0);
    ASSERT(num(big, NULL) == 0);
    snprintf(big, sizeof big, "1%070de99999999999999999999", 0);
    ASSERT(isinf(num(big, NULL)));
    /* exact integers */
    long long v;
    ASSERT_OK(integer("9223372036854775807", &v));
    ASSERT(v == 9223372036854775807LL);
    ASSERT_OK(integer("-9223372036854775808", &v));
    ASSERT(v == -9223372036854775807LL - 1);
    ASSERT_EQ(integer("9223372036854775808", &v), RC_ERANGE);
    ASSERT(v == 9223372036854775807LL);
    ASSERT_EQ(integer("-9223372036854775809", &v), RC_ERANGE);
    ASSERT_EQ(integer("1.0", &v), RC_EINVAL);
    ASSERT_EQ(integer("1e2", &v), RC_EINVAL);
    ASSERT_OK(integer("-0", &v));
    ASSERT_EQ(v, 0);
    ASSERT_STR_EQ(ajson_kind_name(AJSON_NUMBER, 1), "an integer");
    ASSERT_STR_EQ(ajson_kind_name(AJSON_NUMBER, 0), "a number");
    ASSERT_STR_EQ(ajson_kind_name(AJSON_STRING, 0), "a string");
    ASSERT_STR_EQ(ajson_kind_name(AJSON_ARRAY, 0), "an array");
}

TEST(api_scratch_trim_and_release)
{
    api_scratch s;
    memset(&s, 0, sizeof s);
    ASSERT_OK(api_scratch_arena(&s, 100));
    ASSERT(s.arena_cap >= 100);
    ASSERT_OK(api_scratch_strs(&s, 10));
    ASSERT(s.strs_cap >= 10);
    api_scratch_trim(&s, 1 << 20); /* small: kept */
    ASSERT(s.arena != NULL && s.strs != NULL);
    ASSERT_OK(api_scratch_arena(&s, 100000));
    ASSERT_OK(api_scratch_strs(&s, 5000));
    api_scratch_trim(&s, 16 << 10);
    ASSERT(s.arena == NULL && s.arena_cap == 0 && s.strs == NULL && s.strs_cap == 0);
    ASSERT_OK(api_scratch_arena(&s, 10));
    api_scratch_release(&s);
    ASSERT(s.arena == NULL && s.strs == NULL);
    api_scratch_release(&s); /* twice is fine */
    api_scratch_trim(NULL, 0);
    api_scratch_release(NULL);
}

/* ---- /v1/next ---- */
static api_scratch next_scr;

/* next_req_parse of body (from an exact-size buffer kept until the next call) with max_items 3 and
 * max_id_len 8. */
static int next_parse(const char *body, size_t len, next_req *req, char *detail)
{
    static char *b;
    free(b);
    b = exact(body, len);
    api_limits lim = api_limits_default();
    lim.max_items = 3;
    lim.max_id_len = 8;
    detail[0] = '\0';
    return next_req_parse(b, len, &lim, &next_scr, req, detail, 300);
}
#define NEXT(body, req, d) next_parse(body, strlen(body), req, d)

TEST(api_next_request)
{
    next_req req;
    char d[300];
    ASSERT_EQ(NEXT("{\"session_id\":\"s\",\"item_id\":\"i\",\"k\":5,\"exclude_seen\":true,\"model\":\"m\"}", &req, d), 0);
    ASSERT(req.session_id.n == 1 && req.session_id.p[0] == 's');
    ASSERT(req.item_id.n == 1 && req.item_id.p[0] == 'i');
    ASSERT(req.model.n == 1 && req.model.p[0] == 'm');
    ASSERT_EQ(req.k, 5);
    ASSERT_EQ(req.exclude_seen, 1);
    ASSERT_EQ(req.has_items, 0);
    ASSERT(req.items == NULL);
    ASSERT_EQ(NEXT(" {\"items\":[\"a\",\"b\\u0063\"],\"exclude_seen\":false} ", &req, d), 0);
    ASSERT_EQ(req.has_items, 1);
    ASSERT_EQ(req.n_items, 2);
    ASSERT(req.items == next_scr.strs);
    ASSERT(req.items[0].n == 1 && req.items[0].p[0] == 'a');
    ASSERT(req.items[1].n == 2 && memcmp(req.items[1].p, "bc", 2) == 0);
    ASSERT_EQ(req.k, 20); /* k_default */
    ASSERT_EQ(req.exclude_seen, 0);
    ASSERT_EQ(req.session_id.n, 0);
    ASSERT_EQ(req.model.n, 0);
    /* ids may hold NUL bytes (escaped): lengths, not terminators */
    ASSERT_EQ(NEXT("{\"session_id\":\"a\\u0000b\",\"item_id\":\"\\u00e9\"}", &req, d), 0);
    ASSERT(req.session_id.n == 3 && memcmp(req.session_id.p, "a\0b", 3) == 0);
    ASSERT(req.item_id.n == 2 && memcmp(req.item_id.p, "\xc3\xa9", 2) == 0);

    static const struct {
        const char *body;
        int status;
        const char *detail;
    } E[] = {
        {"", 400, "empty body: expected a JSON object"},
        {"{\"items\":[\"a\"] ", 400, "invalid JSON: unexpected end at offset 15"},
        {"{\"items\":[\"a\"]} x", 400, "invalid JSON: trailing characters at offset 16"},
        {"{\"a\":[[[[[[[[[[1]]]]]]]]]]}", 400, "invalid JSON: nested deeper than 8 levels at offset 12"},
        {"{\"items\":[\"\\ud800\"]}", 400, "invalid JSON: unpaired surrogate"},
        {"null", 400, "the body must be a JSON object, got null"},
        {"[1]", 400, "the body must be a JSON object, got an array"},
        {"7", 400, "the body must be a JSON object, got an integer"},
        {"{\"items\":[\"a\"],\"items\":[\"b\"]}", 400, "duplicate key 'items'"},
        {"{\"k\":0,\"items\":[\"a\"],\"k\":2}", 400, "duplicate key 'k'"}, /* before the k error */
        {"{\"items\":[\"a\"],\"k\":true}", 400, "'k' must be an integer, got a boolean"},
        {"{\"items\":[\"a\"],\"k\":2.5}", 400, "'k' must be an integer, got a number"},
        {"{\"items\":[\"a\"],\"k\":1e2}", 400, "'k' must be an integer, got a number"},
        {"{\"items\":[\"a\"],\"k\":\"5\"}", 400, "'k' must be an integer, got a string"},
        {"{\"items\":[\"a\"],\"k\":0}", 422, "'k' must be between 1 and 1000, got 0"},
        {"{\"items\":[\"a\"],\"k\":-3}", 422, "'k' must be between 1 and 1000, got -3"},
        {"{\"items\":[\"a\"],\"k\":1001}", 422, "'k' must be between 1 and 1000, got 1001"},
        {"{\"items\":[\"a\"],\"k\":99999999999999999999}", 422,
         "'k' must be between 1 and 1000, got 99999999999999999999"},
        {"{\"items\":[\"a\"],\"model\":5}", 400, "'model' must be a string, got an integer"},
        {"{\"items\":[\"a\"],\"model\":\"\"}", 422, "'model' must not be empty"},
        {"{\"items\":[\"a\"],\"exclude_seen\":1}", 400, "'exclude_seen' must be a boolean, got an integer"},
        {"{\"items\":null}", 400, "'items' must be an array of strings, got null"},
        {"{\"items\":\"a\"}", 400, "'items' must be an array of strings, got a string"},
        {"{\"items\":[]}", 422, "'items' must not be empty"},
        {"{\"items\":[\"a\",\"b\",\"c\",\"d\"]}", 422, "'items' has 4 entries, the limit is 3"},
        {"{\"items\":[\"a\",1]}", 400, "'items[1]' must be a string, got an integer"},
        {"{\"items\":[\"a\",{}]}", 400, "'items[1]' must be a string, got an object"},
        {"{\"items\":[\"\"]}", 422, "'items[0]' must not be empty"},
        {"{\"items\":[\"123456789\"]}", 422, "'items[0]' is 9 bytes long, the limit is 8"},
        {"{\"session_id\":\"123456789\",\"item_id\":\"i\"}", 422, "'session_id' is 9 bytes long, the limit is 8"},
        {"{\"session_id\":[],\"item_id\":\"i\"}", 400, "'session_id' must be a string, got an array"},
        {"{\"session_id\":\"s\",\"item_id\":\"\"}", 422, "'item_id' must not be empty"},
        {"{\"items\":[\"a\"],\"color\":\"red\"}", 422,
         "unknown field 'color' (expected session_id, item_id, items, k, exclude_seen, model)"},
        {"{\"colour\":1,\"k\":0}", 422, "unknown field 'colour'"}, /* before the k error */
        {"{\"items\":[\"a\"],\"session_id\":\"s\",\"item_id\":\"i\"}", 422,
         "give either 'session_id' with 'item_id' (stateful) or 'items' (stateless), not both"},
        {"{}", 422, "missing 'session_id' with 'item_id' (stateful) or 'items' (stateless)"},
        {"{\"k\":3}", 422, "missing 'session_id'"},
        {"{\"session_id\":\"s\"}", 422, "'session_id' needs 'item_id': the click that advances the session"},
        {"{\"item_id\":\"i\",\"items\":[\"a\"]}", 422,
         "'item_id' needs 'session_id' (or send the whole history as 'items')"},
        {"{\"item_id\":\"i\"}", 422, "missing 'session_id'"},
    };
    for (size_t i = 0; i < sizeof E / sizeof E[0]; i++) {
        int st = NEXT(E[i].body, &req, d);
        if (st != E[i].status || !strstr(d, E[i].detail))
            FAIL("%s: %d \"%s\", want %d \"%s\"", E[i].body, st, d, E[i].status, E[i].detail);
        ASSERT(req.items == NULL && req.k == 0 && req.session_id.n == 0); /* zeroed on failure */
    }
    /* a NUL byte in the body outside a string is not JSON */
    ASSERT_EQ(next_parse("{\"items\":[\"a\"]}\0", 16, &req, d), 400);
    /* the scratch grows for a large body and is trimmed like a connection's */
    size_t n = 40000;
    char *big = malloc(n + 64);
    size_t k = (size_t)snprintf(big, n + 64, "{\"items\":[\"a\"],\"model\":\"");
    while (k < n) big[k++] = 'x';
    k += (size_t)snprintf(big + k, 64, "\"}");
    ASSERT_EQ(next_parse(big, k, &req, d), 422); /* model too long */
    ASSERT(next_scr.arena_cap >= k + 1);
    api_scratch_trim(&next_scr, 16 << 10);
    ASSERT(next_scr.arena == NULL);
    ASSERT_EQ(NEXT("{\"items\":[\"a\\n\"]}", &req, d), 0);
    ASSERT(req.items[0].n == 2 && memcmp(req.items[0].p, "a\n", 2) == 0);
    free(big);
    api_scratch_release(&next_scr);
}

/* ---- /v1/rank ---- */
static feat_spec *rank_spec(void)
{
    static const char *text =
        "{\"columns\":[\"x\",\"c\",\"y\",\"h\"],\"label\":\"y\",\"label_positive\":[\"1\"],\"features\":["
        "{\"name\":\"x\",\"type\":\"numeric\",\"wide\":true,\"deep\":\"dense\"},"
        "{\"name\":\"c\",\"type\":\"categorical\",\"vocab\":[\"a\",\"b\"],\"wide\":true},"
        "{\"name\":\"h\",\"type\":\"categorical\",\"hash_buckets\":5,\"wide\":true}]}";
    json_t *j = json_loads(text, 0, NULL);
    ASSERT(j != NULL);
    feat_spec *sp;
    ASSERT_OK(feat_spec_from_json(&sp, j));
    json_decref(j);
    return sp;
}

/* Parse then decode body (exact-size copy kept until the next call) with inputs in. */
static int rank_run(const char *body, const api_limits *lim, const rank_inputs *in, rank_scratch *scr,
                    rank_req *req, char *d)
{
    static char *b;
    free(b);
    size_t n = strlen(body);
    b = exact(body, n);
    d[0] = '\0';
    int st = rank_req_parse(b, n, lim, scr, req, d, 320);
    if (st) return st;
    return rank_req_decode(req, in, lim, scr, d, 320);
}

TEST(api_rank_request)
{
    feat_spec *sp = rank_spec();
    rank_inputs in;
    ASSERT_OK(rank_inputs_init(&in, sp));
    ASSERT_EQ(in.n, 4);
    ASSERT_EQ(in.numeric[0], 1);
    ASSERT_EQ(in.numeric[1], 0);
    ASSERT_EQ(in.len[3], 1);
    api_limits lim = api_limits_default();
    lim.max_items = 4;
    lim.max_id_len = 8;
    rank_scratch scr;
    memset(&scr, 0, sizeof scr);
    rank_req req;
    char d[320];
    ASSERT_EQ(rank_run("{\"user_id\":\"u\\\"1\",\"model\":\"wd\",\"experiment\":\"e\",\"k\":5,"
                       "\"context\":{\"x\":1.5,\"c\":\"a\",\"unused\":[1,{}],\"y\":{}},"
                       "\"candidates\":[{\"item_id\":\"i\\u00e9\",\"features\":{\"c\":\"b\",\"x\":null,\"h\":7}},"
                       "{\"features\":{\"x\":\" 2.5 \"},\"item_id\":\"j\"},{\"item_id\":\"k\",\"features\":null}]}",
                       &lim, &in, &scr, &req, d),
              0);
    ASSERT(req.has_user_id && req.user_id.n == 3 && memcmp(req.user_id.p, "u\"1", 3) == 0);
    ASSERT(req.has_model && req.model.n == 2 && memcmp(req.model.p, "wd", 2) == 0);
    ASSERT_EQ(req.n_cand, 3);
    ASSERT_EQ(req.k, 3); /* clamped to the candidates */
    const feat_value *c = req.ctx, *v = req.cand;
    ASSERT(c[0].kind == FEAT_V_NUM && c[0].num == 1.5);
    ASSERT(c[1].kind == FEAT_V_STR && c[1].len == 1 && c[1].s[0] == 'a');
    ASSERT_EQ(c[2].kind, FEAT_V_MISSING); /* the label column is ignored */
    ASSERT_EQ(c[3].kind, FEAT_V_MISSING);
    ASSERT(req.ids[0].n == 3 && memcmp(req.ids[0].p, "i\xc3\xa9", 3) == 0);
    ASSERT(v[0].kind == FEAT_V_MISSING && v[1].kind == FEAT_V_STR && v[3].kind == FEAT_V_NUM && v[3].num == 7);
    ASSERT(v[4].kind == FEAT_V_STR && v[4].len == 5);
    ASSERT(req.ids[1].n == 1 && req.ids[1].p[0] == 'j');
    for (int i = 0; i < 4; i++) ASSERT_EQ(v[8 + i].kind, FEAT_V_MISSING);
    /* no context, no k: k_default clamped */
    ASSERT_EQ(rank_run("{\"candidates\":[{\"item_id\":\"a\"}]}", &lim, &in, &scr, &req, d), 0);
    ASSERT(!req.has_user_id && !req.has_model && req.k == 1 && req.ctx[0].kind == FEAT_V_MISSING);
    ASSERT_EQ(rank_run("{\"model\":\"\",\"candidates\":[{\"item_id\":\"a\"}]}", &lim, &in, &scr, &req, d), 422);
    ASSERT_STR_EQ(d, "model: length 0 outside [1, 8]"); /* an empty name: 422, as /v1/next */

    static const struct {
        const char *body;
        int status;
        const char *detail;
    } E[] = {
        {"", 400, "invalid JSON: unexpected end at offset 0"},
        {"{\"candidates\":[{\"item_id\":\"a\"}]", 400, "invalid JSON"},
        {"{\"candidates\":[{\"item_id\":\"a\"}]} x", 400, "trailing characters"},
        {"{\"candidates\":[{\"item_id\":\"\\ud83d\"}]}", 400, "unpaired surrogate"},
        {"{\"candidates\":[{\"item_id\":\"\xff\"}]}", 400, "invalid UTF-8"},
        {"{\"candidates\":[{\"item_id\":\"a\"}],\"k\":01}", 400, "invalid JSON"},
        {"{\"candidates\":[[[[[[[[[[[[1]]]]]]]]]]]]}", 400, "nested deeper than 8 levels"},
        {"[1]", 400, "the body must be a JSON object"},
        {"{\"k\":1,\"k\":2,\"candidates\":[{\"item_id\":\"a\"}]}", 400, "duplicate key 'k'"},
        {"{\"candidates\":[{\"item_id\":\"a\"}],\"colour\":1}", 422, "unknown field 'colour'"},
        {"{\"candidates\":[{\"item_id\":\"a\"}],\"user_id\":1}", 400, "user_id: expected a string"},
        {"{\"candidates\":[{\"item_id\":\"a\"}],\"model\":[]}", 400, "model: expected a string"},
        {"{\"candidates\":[{\"item_id\":\"a\"}],\"experiment\":null}", 400, "experiment: expected a string"},
        {"{\"candidates\":[{\"item_id\":\"a\"}],\"k\":2.5}", 400, "k: expected an integer"},
        {"{\"candidates\":[{\"item_id\":\"a\"}],\"k\":\"2\"}", 400, "k: expected an integer"},
        {"{}", 422, "candidates: required"},
        {"{\"candidates\":{}}", 400, "candidates: expected an array"},
        {"{\"candidates\":[]}", 422, "candidates: 0 given, between 1 and 4 accepted"},
        {"{\"candidates\":[1,2,3,4,5]}", 422, "candidates: 5 given, between 1 and 4 accepted"},
        {"{\"candidates\":[{\"item_id\":\"a\"}],\"k\":0}", 422, "k: 0 is outside [1, 1000]"},
        {"{\"candidates\":[{\"item_id\":\"a\"}],\"k\":1e300}", 400, "k: expected an integer"},
        {"{\"candidates\":[{\"item_id\":\"a\"}],\"k\":100000000000000000000}", 422,
         "k: 1000000000000000 is outside [1, 1000]"},
        {"{\"candidates\":[7]}", 400, "candidates[0]: expected an object"},
        {"{\"candidates\":[{\"features\":{}}]}", 422, "candidates[0].item_id: required"},
        {"{\"candidates\":[{\"item_id\":5}]}", 400, "candidates[0].item_id: expected a string"},
        {"{\"candidates\":[{\"item_id\":\"\"}]}", 422, "candidates[0].item_id: length 0 outside [1, 8]"},
        {"{\"candidates\":[{\"item_id\":\"123456789\"}]}", 422, "candidates[0].item_id: length 9 outside [1, 8]"},
        {"{\"candidates\":[{\"item_id\":\"a\",\"item_id\":\"b\"}]}", 400, "candidates[0]: duplicate key 'item_id'"},
        {"{\"candidates\":[{\"item_id\":\"a\",\"features\":{},\"features\":{}}]}", 400,
         "candidates[0]: duplicate key 'features'"},
        {"{\"candidates\":[{\"item_id\":\"a\",\"extra\":1}]}", 422, "candidates[0]: unknown field 'extra'"},
        {"{\"context\":[],\"candidates\":[{\"item_id\":\"a\"}]}", 400, "context: expected an object of features"},
        {"{\"context\":{\"x\":{}},\"candidates\":[{\"item_id\":\"a\"}]}", 400,
         "context.x: expected a string, a number or null"},
        {"{\"context\":{\"x\":1,\"x\":2},\"candidates\":[{\"item_id\":\"a\"}]}", 400, "context.x: duplicate key"},
        {"{\"candidates\":[{\"item_id\":\"a\"},{\"item_id\":\"b\",\"features\":{\"c\":true}}]}", 400,
         "candidates[1].features.c: expected a string, a number or null"},
        {"{\"candidates\":[{\"item_id\":\"a\",\"features\":{\"x\":\"tall\"}}]}", 422,
         "candidates[0].features.x: \"tall\" is not a number"},
        {"{\"candidates\":[{\"item_id\":\"a\",\"features\":{\"x\":1e400}}]}", 422,
         "candidates[0].features.x: number out of range"},
        {"{\"candidates\":[{\"item_id\":\"a\",\"features\":7}]}", 400,
         "candidates[0].features: expected an object of features"},
    };
    for (size_t i = 0; i < sizeof E / sizeof E[0]; i++) {
        int st = rank_run(E[i].body, &lim, &in, &scr, &req, d);
        if (st != E[i].status || !strstr(d, E[i].detail))
            FAIL("%s: %d \"%s\", want %d \"%s\"", E[i].body, st, d, E[i].status, E[i].detail);
    }
    /* a missing value of a numeric input is not "not a number"; the same key in two objects is no
     * duplicate; a duplicate of an ignored name is not looked at */
    ASSERT_EQ(rank_run("{\"context\":{\"x\":\"?\",\"zz\":1,\"zz\":2},\"candidates\":[{\"item_id\":\"a\",\"features\":"
                       "{\"x\":\"\"}},{\"item_id\":\"b\",\"features\":{\"x\":3}}]}",
                       &lim, &in, &scr, &req, d),
              0);
    ASSERT(req.cand[4].kind == FEAT_V_NUM && req.cand[4].num == 3);
    /* the stamps wrap: every stamp is forgotten, no false duplicate */
    scr.stamp = UINT32_MAX;
    ASSERT_EQ(rank_run("{\"context\":{\"x\":1},\"candidates\":[{\"item_id\":\"a\",\"features\":{\"x\":2}}]}", &lim,
                       &in, &scr, &req, d),
              0);
    ASSERT_EQ(scr.stamp, 2);
    /* trim: large buffers go, small ones stay */
    rank_scratch_trim(&scr, 1 << 20);
    ASSERT(scr.s.arena != NULL && scr.cand != NULL);
    rank_scratch_trim(&scr, 8);
    ASSERT(scr.s.arena == NULL && scr.cand == NULL && scr.s.strs == NULL && scr.seen == NULL);
    ASSERT_EQ(rank_run("{\"context\":{\"x\":1},\"candidates\":[{\"item_id\":\"a\"}]}", &lim, &in, &scr, &req, d), 0);
    rank_scratch_release(&scr);
    rank_inputs_release(&in);
    rank_inputs_release(&in);
    feat_spec_free(sp);
}
