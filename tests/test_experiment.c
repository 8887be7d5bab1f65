/* tests/test_experiment.c - server/experiment.h: the documented assignment hash (test vectors a client
 * SDK can check itself against), uniformity, independence between salts, shares, namespaces, the time
 * window, and the config parser's errors.
 *
 * The murmur3 vectors were checked against this independent pure-Python implementation (python3 has no
 * mmh3 module here):
 *
 *   def mm3(key, seed=0):
 *       key = key.encode(); c1, c2 = 0xcc9e2d51, 0x1b873593; h = seed; n = len(key) // 4 * 4
 *       M = 0xffffffff; rotl = lambda x, r: ((x << r) | (x >> (32 - r))) & M
 *       for i in range(0, n, 4):
 *           k = int.from_bytes(key[i:i+4], 'little')
 *           k = rotl(k * c1 & M, 15) * c2 & M
 *           h = (rotl(h ^ k, 13) * 5 + 0xe6546b64) & M
 *       if key[n:]:
 *           h ^= rotl(int.from_bytes(key[n:], 'little') * c1 & M, 15) * c2 & M
 *       h ^= len(key); h ^= h >> 16; h = h * 0x85ebca6b & M; h ^= h >> 13; h = h * 0xc2b2ae35 & M
 *       return h ^ (h >> 16)
 *   bucket = lambda salt, unit: mm3(salt + "/" + unit) * 10000 >> 32
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/validate.h"
#include "core/abstats.h"
#include "server/experiment.h"
#include "tests/testlib.h"

static const char *const MODELS[] = {"wide", "deep", "widedeep"};

/* Parse a JSON text of the `experiments` array against MODELS: RC code, *s filled on RC_OK. */
static int parse_text(const char *txt, exp_set *s)
{
    json_error_t je;
    json_t *j = json_loads(txt, 0, &je);
    if (!j) FAIL("bad test JSON: %s: %s", je.text, txt);
    int rc = exp_parse(j, MODELS, 3, s);
    json_decref(j);
    return rc;
}

TEST(exp_murmur3_vectors)
{
    ASSERT_EQ(exp_murmur3_32("", 0, 0), 0);
    ASSERT_EQ(exp_murmur3_32("", 0, 1), 0x514E28B7u);
    ASSERT_EQ(exp_murmur3_32("hello", 5, 0), 0x248BFA47u);
    const char *fox = "The quick brown fox jumps over the lazy dog";
    ASSERT_EQ(exp_murmur3_32(fox, strlen(fox), 0), 0x2E4FF723u);
    /* each tail length (checked with the Python above) */
    ASSERT_EQ(exp_murmur3_32("abc", 3, 0), 0xB3DD93FAu);
    ASSERT_EQ(exp_murmur3_32("abcd", 4, 0), 0x43ED676Au);
    ASSERT_EQ(exp_murmur3_32("abcde", 5, 0), 0xE89B9AF6u);
}

/* The documented test vectors (also in the README): bucket(salt, unit) for a few ids. */
TEST(exp_bucket_vectors)
{
    const char *salt = "homepage-2026-12";
    static const struct {
        const char *unit;
        uint32_t bucket;
    } v[] = {{"u1", 5198}, {"u2", 4344}, {"u3", 9004}, {"alice", 7644}, {"user-42", 6249}, {"12345", 9948}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint32_t b = exp_bucket(salt, strlen(salt), v[i].unit, strlen(v[i].unit));
        if (b != v[i].bucket) FAIL("bucket(%s, %s) = %u, documented %u", salt, v[i].unit, b, v[i].bucket);
    }
    /* the bucket is the hash of the concatenation, whatever the lengths of the pieces */
    char key[300], salt2[140], unit[140];
    for (int t = 0; t < 300; t++) {
        size_t sl = 1 + (size_t)(t * 7) % 127, ul = 1 + (size_t)(t * 13) % 130;
        for (size_t i = 0; i < sl; i++) salt2[i] = (char)('a' + (t + i * 3) % 26);
        for (size_t i = 0; i < ul; i++) unit[i] = (char)(t + i * 11); /* any byte, NUL included */
        memcpy(key, salt2, sl);
        key[sl] = '/';
        memcpy(key + sl + 1, unit, ul);
        uint32_t h = exp_murmur3_32(key, sl + 1 + ul, 0);
        ASSERT_EQ(exp_bucket(salt2, sl, unit, ul), (uint32_t)(((uint64_t)h * 10000) >> 32));
    }
}

/* Chi-square of 1,000,000 ids into the 10,000 buckets: uniform (p > 1e-4). */
TEST(exp_bucket_uniform)
{
    enum { N = 1000000 };
    uint32_t *count = calloc(EXP_BUCKETS, sizeof *count);
    ASSERT(count);
    char id[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(id, sizeof id, "user-%d", i);
        count[exp_bucket("uniformity", 10, id, (size_t)n)]++;
    }
    double e = (double)N / EXP_BUCKETS, chi2 = 0;
    for (int b = 0; b < EXP_BUCKETS; b++) chi2 += (count[b] - e) * (count[b] - e) / e;
    double p = ab_chi2_sf(chi2, EXP_BUCKETS - 1);
    free(count);
    if (!(p > 1e-4)) FAIL("chi2 %.1f with %d df: p = %g", chi2, EXP_BUCKETS - 1, p);
}

/* The arms of two salts are independent: the contingency table arm(salt1) x arm(salt2) over 200k ids
 * passes Pearson's test of independence (p > 1e-4). */
TEST(exp_salts_independent)
{
    exp_set s;
    ASSERT_OK(parse_text("[{\"name\":\"a\",\"salt\":\"salt-one\",\"arms\":["
                         "{\"name\":\"x\",\"model\":\"wide\",\"share\":0.25},{\"name\":\"y\",\"model\":\"deep\",\"share\":0.25},"
                         "{\"name\":\"z\",\"model\":\"deep\",\"share\":0.25},{\"name\":\"w\",\"model\":\"deep\",\"share\":0.25}]},"
                         "{\"name\":\"b\",\"salt\":\"salt-two\",\"arms\":["
                         "{\"name\":\"x\",\"model\":\"wide\",\"share\":0.2},{\"name\":\"y\",\"model\":\"deep\",\"share\":0.3},"
                         "{\"name\":\"z\",\"model\":\"deep\",\"share\":0.5}]}]",
                         &s));
    enum { N = 200000 };
    double tab[4][3] = {{0}}, row[4] = {0}, col[3] = {0};
    char id[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(id, sizeof id, "%d", i);
        int a = exp_assign(&s.e[0], id, (size_t)n, 0), b = exp_assign(&s.e[1], id, (size_t)n, 0);
        ASSERT(a >= 0 && b >= 0); /* shares add up to 1: everyone is in */
        tab[a][b]++;
        row[a]++;
        col[b]++;
    }
    double chi2 = 0;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 3; b++) {
            double e = row[a] * col[b] / N;
            chi2 += (tab[a][b] - e) * (tab[a][b] - e) / e;
        }
    double p = ab_chi2_sf(chi2, 6);
    exp_set_free(&s);
    if (!(p > 1e-4)) FAIL("independence chi2 %.2f (6 df): p = %g", chi2, p);
}

/* Observed arm shares within 1% (relative) of the declared ones over 1M ids; past the shares' sum a
 * unit is not in the experiment. */
TEST(exp_arm_shares)
{
    exp_set s;
    ASSERT_OK(parse_text("[{\"name\":\"home\",\"salt\":\"home-1\",\"arms\":["
                         "{\"name\":\"wide\",\"model\":\"wide\",\"share\":0.1},"
                         "{\"name\":\"deep\",\"model\":\"deep\",\"share\":0.2},"
                         "{\"name\":\"wd\",\"model\":\"widedeep\",\"share\":0.3}]}]",
                         &s));
    const experiment *e = &s.e[0];
    ASSERT_EQ(e->arms[0].lo, 0);
    ASSERT_EQ(e->arms[0].hi, 1000);
    ASSERT_EQ(e->arms[1].lo, 1000);
    ASSERT_EQ(e->arms[1].hi, 3000);
    ASSERT_EQ(e->arms[2].lo, 3000);
    ASSERT_EQ(e->arms[2].hi, 6000);
    enum { N = 1000000 };
    double n[4] = {0};
    char id[32];
    for (int i = 0; i < N; i++) {
        int k = snprintf(id, sizeof id, "u%d", i);
        int a = exp_assign(e, id, (size_t)k, 0);
        n[a < 0 ? 3 : a]++;
        /* the arm is exactly the documented bucket rule */
        uint32_t b = exp_bucket("home-1", 6, id, (size_t)k);
        ASSERT_EQ(a, b < 1000 ? 0 : b < 3000 ? 1 : b < 6000 ? 2 : -1);
    }
    const double want[4] = {0.1, 0.2, 0.3, 0.4};
    for (int a = 0; a < 4; a++)
        if (fabs(n[a] / N / want[a] - 1) > 0.01) FAIL("arm %d: observed share %.5f, declared %.2f", a, n[a] / N, want[a]);
    exp_set_free(&s);
}

/* Two experiments of one namespace with disjoint ranges: no unit is in both, and together they take
 * (nearly) every unit; a third one in another namespace is unaffected. */
TEST(exp_namespace_exclusive)
{
    exp_set s;
    ASSERT_OK(parse_text("[{\"name\":\"a\",\"salt\":\"sa\",\"namespace\":\"home\",\"namespace_buckets\":[0,5000],"
                         "\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":0.5},{\"name\":\"t\",\"model\":\"deep\",\"share\":0.5}]},"
                         "{\"name\":\"b\",\"salt\":\"sb\",\"namespace\":\"home\",\"namespace_buckets\":[5000,10000],"
                         "\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":1}]},"
                         "{\"name\":\"c\",\"salt\":\"sc\",\"namespace\":\"other\","
                         "\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":1}]}]",
                         &s));
    ASSERT_EQ(s.e[2].ns_lo, 0);
    ASSERT_EQ(s.e[2].ns_hi, 10000);
    enum { N = 100000 };
    int in_a = 0, in_b = 0, in_c = 0;
    char id[32];
    for (int i = 0; i < N; i++) {
        int k = snprintf(id, sizeof id, "user%d", i);
        int a = exp_assign(&s.e[0], id, (size_t)k, 0) >= 0, b = exp_assign(&s.e[1], id, (size_t)k, 0) >= 0;
        ASSERT(!(a && b));
        ASSERT(a || b); /* a's shares add up to 1 too */
        /* membership is the documented namespace bucket rule */
        ASSERT_EQ(a, exp_bucket("ns:home", 7, id, (size_t)k) < 5000);
        in_a += a;
        in_b += b;
        in_c += exp_assign(&s.e[2], id, (size_t)k, 0) >= 0;
    }
    ASSERT(fabs(in_a / (double)N - 0.5) < 0.01);
    ASSERT(fabs(in_b / (double)N - 0.5) < 0.01);
    ASSERT_EQ(in_c, N);
    exp_set_free(&s);
    /* overlapping ranges in one namespace are refused */
    ASSERT_RC(parse_text("[{\"name\":\"a\",\"salt\":\"sa\",\"namespace\":\"home\",\"namespace_buckets\":[0,5000],"
                         "\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":1}]},"
                         "{\"name\":\"b\",\"salt\":\"sb\",\"namespace\":\"home\",\"namespace_buckets\":[4999,6000],"
                         "\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":1}]}]",
                         &s),
              RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "experiments[1].namespace_buckets: [4999, 6000) overlaps [0, 5000) of experiments[0]");
    /* a namespace without a range takes every bucket: it overlaps any other experiment there */
    ASSERT_RC(parse_text("[{\"name\":\"a\",\"salt\":\"sa\",\"namespace\":\"home\",\"namespace_buckets\":[0,10],"
                         "\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":1}]},"
                         "{\"name\":\"b\",\"salt\":\"sb\",\"namespace\":\"home\","
                         "\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":1}]}]",
                         &s),
              RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "overlaps");
}

TEST(exp_window)
{
    exp_set s;
    ASSERT_OK(parse_text("[{\"name\":\"w\",\"salt\":\"w1\",\"start\":\"2026-12-01T00:00:00Z\","
                         "\"stop\":1798761600,\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":1}]}]",
                         &s));
    const experiment *e = &s.e[0];
    ASSERT_NEAR(e->start, 1796083200.0, 0); /* date -u -d 2026-12-01 +%s */
    ASSERT_NEAR(e->stop, 1798761600.0, 0);
    exp_set_free(&s);
    ASSERT_RC(parse_text("[{\"name\":\"w\",\"salt\":\"w1\",\"start\":\"2025-12-01T00:00:00.5Z\","
                         "\"stop\":\"2025-12-28T00:00:00Z\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":1}]}]",
                         &s),
              RC_OK);
    e = &s.e[0];
    ASSERT_NEAR(e->start, 1764547200.5, 0);
    ASSERT_NEAR(e->stop, 1766880000.0, 0);
    ASSERT_EQ(exp_assign(e, "u1", 2, e->start - 1), -1);
    ASSERT_STR_EQ(exp_status(e, e->start - 1), "scheduled");
    ASSERT_EQ(exp_assign(e, "u1", 2, e->start), 0);
    ASSERT_STR_EQ(exp_status(e, e->start), "running");
    ASSERT_EQ(exp_assign(e, "u1", 2, e->stop - 0.001), 0);
    ASSERT_EQ(exp_assign(e, "u1", 2, e->stop), -1);
    ASSERT_STR_EQ(exp_status(e, e->stop), "stopped");
    exp_set_free(&s);
    /* open ends */
    ASSERT_OK(parse_text("[{\"name\":\"w\",\"salt\":\"w1\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":1}]}]", &s));
    ASSERT_EQ(exp_assign(&s.e[0], "u1", 2, 0), 0);
    ASSERT_EQ(exp_assign(&s.e[0], "u1", 2, 4e9), 0);
    ASSERT_STR_EQ(exp_status(&s.e[0], 1e9), "running");
    exp_set_free(&s);
}

TEST(exp_parse_fields)
{
    exp_set s;
    ASSERT_OK(parse_text("[{\"name\":\"homepage\",\"salt\":\"homepage-2026-12\",\"unit\":\"user_id\","
                         "\"arms\":[{\"name\":\"wide\",\"model\":\"wide\",\"share\":0.34},"
                         "{\"name\":\"deep\",\"model\":\"deep\",\"share\":0.33},"
                         "{\"name\":\"wd\",\"model\":\"widedeep\",\"version\":\"3\",\"share\":0.33}],"
                         "\"control\":\"deep\",\"alpha\":0.01,\"tau\":0.2},"
                         "{\"name\":\"second\",\"salt\":\"s2\",\"arms\":[{\"name\":\"a\",\"model\":\"widedeep\","
                         "\"version\":3,\"share\":0.5},{\"name\":\"b\",\"model\":\"widedeep\",\"version\":\"12\",\"share\":0.5}]}]",
                         &s));
    ASSERT_EQ(s.n, 2);
    const experiment *e = exp_find(&s, "homepage", 8);
    ASSERT(e == &s.e[0]);
    ASSERT(exp_find(&s, "homepag", 7) == NULL);
    ASSERT(exp_find(&s, "second", 6) == &s.e[1]);
    ASSERT_EQ(e->n_arms, 3);
    ASSERT_EQ(e->control, 1);
    ASSERT_STR_EQ(e->unit, "user_id");
    ASSERT_STR_EQ(e->arms[0].entry, "wide");
    ASSERT_STR_EQ(e->arms[2].entry, "widedeep@3");
    ASSERT_STR_EQ(e->arms[2].version, "3");
    ASSERT_EQ(e->arms[2].lo, 6700);
    ASSERT_EQ(e->arms[2].hi, 10000);
    ASSERT_NEAR(e->alpha, 0.01, 0);
    ASSERT_NEAR(e->tau, 0.2, 0);
    ASSERT_EQ(s.e[1].control, 0); /* the first arm by default */
    ASSERT_NEAR(s.e[1].alpha, 0.05, 0);
    ASSERT_NEAR(s.e[1].tau, 0.1, 0);
    ASSERT_STR_EQ(s.e[1].arms[0].entry, "widedeep@3");
    const char **pins;
    int np;
    ASSERT_OK(exp_pinned_entries(&s, &pins, &np));
    ASSERT_EQ(np, 2); /* widedeep@3 once */
    ASSERT_STR_EQ(pins[0], "widedeep@3");
    ASSERT_STR_EQ(pins[1], "widedeep@12");
    free(pins);
    exp_set_free(&s);
    ASSERT_EQ(s.n, 0);
    exp_set_free(&s); /* twice is fine */
    /* empty or absent: an empty set */
    ASSERT_OK(exp_parse(NULL, MODELS, 3, &s));
    ASSERT_EQ(s.n, 0);
    ASSERT_OK(parse_text("[]", &s));
    ASSERT_EQ(s.n, 0);
    ASSERT_OK(exp_pinned_entries(&s, &pins, &np));
    ASSERT_EQ(np, 0);
    ASSERT(pins == NULL);
    exp_set_free(&s);
}

/* Bad configs and the message each gets: the field is named. */
TEST(exp_parse_errors)
{
#define ARM1 "\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":0.5}]"
    static const struct {
        const char *cfg, *msg;
    } bad[] = {
        {"{}", "experiments: expected an array, got an object"},
        {"[1]", "experiments[0]: expected an object, got a number"},
        {"[{\"salt\":\"s\"," ARM1 "}]", "experiments[0].name: required"},
        {"[{\"name\":\"a b\",\"salt\":\"s\"," ARM1 "}]", "experiments[0].name: \"a b\" is not 1-63 characters"},
        {"[{\"name\":\"a\"," ARM1 "}]", "experiments[0].salt: required"},
        {"[{\"name\":\"a\",\"salt\":\"\"," ARM1 "}]", "experiments[0].salt: must be 1-127 bytes"},
        {"[{\"name\":\"a\",\"salt\":7," ARM1 "}]", "experiments[0].salt: expected a string, got a number"},
        {"[{\"name\":\"a\",\"salt\":\"ns:home\"," ARM1 "}]", "experiments[0].salt: salts starting with \"ns:\" are reserved"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":0.5},"
         "{\"name\":\"t\",\"model\":\"wide\",\"share\":0.00004}]}]",
         "experiments[0].arms[1].share: 4e-05 rounds to no bucket of 10000"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"unit\":\"session\"," ARM1 "}]", "experiments[0].unit: \"session\" is not a unit"},
        {"[{\"name\":\"a\",\"salt\":\"s\"," ARM1 ",\"sallt\":1}]", "experiments[0]: unknown field 'sallt'"},
        {"[{\"name\":\"a\",\"salt\":\"s\"}]", "experiments[0].arms: required"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[]}]", "experiments[0].arms: expected an array of 1 to 8 arms"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[1]}]", "experiments[0].arms[0]: expected an object"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"model\":\"wide\",\"share\":1}]}]", "experiments[0].arms[0].name: required"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"share\":1}]}]", "experiments[0].arms[0].model: required"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"gru\",\"share\":1}]}]",
         "experiments[0].arms[0].model: \"gru\" is not one of snapshots.models"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\"}]}]", "experiments[0].arms[0].share: required"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":1.5}]}]",
         "experiments[0].arms[0].share: 1.5 is outside (0, 1]"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":0}]}]",
         "experiments[0].arms[0].share: 0 is outside (0, 1]"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":\"0.5\"}]}]",
         "experiments[0].arms[0].share: expected a number, got a string"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":0.6},"
         "{\"name\":\"t\",\"model\":\"deep\",\"share\":0.5}]}]",
         "experiments[0].arms: the shares add up to 1.1, more than 1"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":0.5},"
         "{\"name\":\"c\",\"model\":\"deep\",\"share\":0.5}]}]",
         "experiments[0].arms[1].name: 'c' is also the name of arms[0]"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"version\":\"03\",\"share\":1}]}]",
         "experiments[0].arms[0].version: \"03\" is not a snapshot version"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"version\":\"v3\",\"share\":1}]}]",
         "experiments[0].arms[0].version: \"v3\" is not a snapshot version"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"version\":-3,\"share\":1}]}]",
         "experiments[0].arms[0].version: -3 is not a snapshot version"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"version\":\"18446744073709551616\","
         "\"share\":1}]}]",
         "experiments[0].arms[0].version: \"18446744073709551616\" is not a snapshot version"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":1,\"weight\":2}]}]",
         "experiments[0].arms[0]: unknown field 'weight'"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"control\":\"t\"," ARM1 "}]", "experiments[0].control: \"t\" is not the name of one of its arms"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"start\":\"2026-12-01\"," ARM1 "}]",
         "experiments[0].start: \"2026-12-01\" is not an RFC 3339 UTC time"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"start\":\"2026-12-01T00:00:00+01:00\"," ARM1 "}]",
         "experiments[0].start: \"2026-12-01T00:00:00+01:00\" is not an RFC 3339 UTC time"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"start\":\"2026-02-30T00:00:00Z\"," ARM1 "}]",
         "experiments[0].start: \"2026-02-30T00:00:00Z\" is not an RFC 3339 UTC time"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"stop\":-1," ARM1 "}]", "experiments[0].stop: -1 is not a time"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"stop\":true," ARM1 "}]", "experiments[0].stop: expected an RFC 3339 UTC time or unix seconds, got a boolean"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"start\":200,\"stop\":100," ARM1 "}]", "experiments[0].stop: must be after start"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"namespace_buckets\":[0,10]," ARM1 "}]",
         "experiments[0].namespace_buckets: given without a namespace"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"namespace\":\"n\",\"namespace_buckets\":[10,10]," ARM1 "}]",
         "experiments[0].namespace_buckets: [10,10] is not [lo, hi) with integers 0 <= lo < hi <= 10000"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"namespace\":\"n\",\"namespace_buckets\":[0,10001]," ARM1 "}]",
         "experiments[0].namespace_buckets: [0,10001] is not [lo, hi)"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"namespace\":\"\"," ARM1 "}]", "experiments[0].namespace: \"\" is not 1-63 characters"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"alpha\":0.7," ARM1 "}]", "experiments[0].alpha: 0.7 is outside (0, 0.5)"},
        {"[{\"name\":\"a\",\"salt\":\"s\",\"tau\":0," ARM1 "}]", "experiments[0].tau: 0 is outside (0, 100]"},
        {"[{\"name\":\"a\",\"salt\":\"s\"," ARM1 "},{\"name\":\"a\",\"salt\":\"t\"," ARM1 "}]",
         "experiments[1].name: 'a' is also the name of experiments[0]"},
        {"[{\"name\":\"a\",\"salt\":\"s\"," ARM1 "},{\"name\":\"b\",\"salt\":\"s\"," ARM1 "}]",
         "experiments[1].salt: also the salt of experiments[0] 'a'"},
    };
#undef ARM1
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        exp_set s = {(experiment *)1, 99};
        int rc = parse_text(bad[i].cfg, &s);
        if (rc != RC_EINVAL) FAIL("config %zu accepted: %s", i, bad[i].cfg);
        if (!strstr(rc_errmsg(), bad[i].msg)) FAIL("config %zu: message \"%s\", expected \"%s\"", i, rc_errmsg(), bad[i].msg);
        ASSERT(s.e == NULL && s.n == 0); /* nothing to free after a failure */
    }
    /* more than EVSTORE_MAX_RUNS experiments */
    json_t *arr = json_array();
    for (int i = 0; i <= EVSTORE_MAX_RUNS; i++) json_array_append_new(arr, json_object());
    exp_set s;
    ASSERT_RC(exp_parse(arr, MODELS, 3, &s), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "at most 64");
    json_decref(arr);
    /* a pinned entry longer than a registry name */
    char big[400];
    snprintf(big, sizeof big,
             "[{\"name\":\"a\",\"salt\":\"s\",\"arms\":[{\"name\":\"c\",\"model\":\"%s\",\"version\":\"18446744073709551615\","
             "\"share\":1}]}]",
             "m123456789012345678901234567890123456789012345");
    const char *const long_models[] = {"m123456789012345678901234567890123456789012345"};
    json_t *j = json_loads(big, 0, NULL);
    ASSERT(j);
    ASSERT_RC(exp_parse(j, long_models, 1, &s), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "experiments[0].arms[0].version: the pinned entry");
    json_decref(j);
}

/* The store remembers the declared shares: the same salt with other shares is refused at load. */
TEST(exp_declare_changed_share)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/state", test_tmpdir());
    evstore_cfg c = evstore_cfg_default();
    c.dir = dir;
    exp_set s;
    ASSERT_OK(parse_text("[{\"name\":\"home\",\"salt\":\"x\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":0.5},"
                         "{\"name\":\"t\",\"model\":\"deep\",\"share\":0.5}]}]",
                         &s));
    evstore *st;
    ASSERT_OK(evstore_open(&st, &c));
    ASSERT_OK(exp_declare_all(&s, st));
    int run = s.e[0].run;
    ASSERT(run >= 0);
    evstore_close(st);
    exp_set_free(&s);
    /* the same again (a restart): the same run */
    ASSERT_OK(parse_text("[{\"name\":\"home\",\"salt\":\"x\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":0.5},"
                         "{\"name\":\"t\",\"model\":\"deep\",\"share\":0.5}]}]",
                         &s));
    ASSERT_OK(evstore_open(&st, &c));
    ASSERT_OK(exp_declare_all(&s, st));
    ASSERT_EQ(s.e[0].run, run);
    evstore_close(st);
    exp_set_free(&s);
    /* other shares, same salt: refused with the message */
    ASSERT_OK(parse_text("[{\"name\":\"home\",\"salt\":\"x\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":0.7},"
                         "{\"name\":\"t\",\"model\":\"deep\",\"share\":0.3}]}]",
                         &s));
    ASSERT_OK(evstore_open(&st, &c));
    ASSERT_RC(exp_declare_all(&s, st), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "home");
    ASSERT_CONTAINS(rc_errmsg(), "salt");
    evstore_close(st);
    exp_set_free(&s);
    /* a new salt: a new run */
    ASSERT_OK(parse_text("[{\"name\":\"home\",\"salt\":\"y\",\"arms\":[{\"name\":\"c\",\"model\":\"wide\",\"share\":0.7},"
                         "{\"name\":\"t\",\"model\":\"deep\",\"share\":0.3}]}]",
                         &s));
    ASSERT_OK(evstore_open(&st, &c));
    ASSERT_OK(exp_declare_all(&s, st));
    ASSERT_NE(s.e[0].run, run);
    evstore_close(st);
    exp_set_free(&s);
}

/* POST /v1/next's parser takes "experiment" and "user_id" (ids: strings, non-empty, bounded). */
TEST(exp_next_req_fields)
{
    api_limits lim = api_limits_default();
    api_scratch scr;
    memset(&scr, 0, sizeof scr);
    next_req req;
    char d[300];
    const char *b = "{\"experiment\":\"home\",\"user_id\":\"u\\u00e9\",\"items\":[\"a\"]}";
    ASSERT_EQ(next_req_parse(b, strlen(b), &lim, &scr, &req, d, sizeof d), 0);
    ASSERT(req.experiment.n == 4 && memcmp(req.experiment.p, "home", 4) == 0);
    ASSERT(req.user_id.n == 3 && memcmp(req.user_id.p, "u\xc3\xa9", 3) == 0);
    b = "{\"items\":[\"a\"]}";
    ASSERT_EQ(next_req_parse(b, strlen(b), &lim, &scr, &req, d, sizeof d), 0);
    ASSERT(req.experiment.n == 0 && req.user_id.n == 0);
    static const struct {
        const char *body;
        int status;
        const char *detail;
    } E[] = {
        {"{\"items\":[\"a\"],\"experiment\":1}", 400, "'experiment' must be a string, got an integer"},
        {"{\"items\":[\"a\"],\"user_id\":null}", 400, "'user_id' must be a string, got null"},
        {"{\"items\":[\"a\"],\"experiment\":\"\"}", 422, "'experiment' must not be empty"},
        {"{\"items\":[\"a\"],\"user_id\":\"\"}", 422, "'user_id' must not be empty"},
        {"{\"items\":[\"a\"],\"experiment\":\"e\",\"experiment\":\"f\"}", 400, "duplicate key 'experiment'"},
        {"{\"items\":[\"a\"],\"user_id\":\"u\",\"user_id\":\"v\"}", 400, "duplicate key 'user_id'"},
        {"{\"items\":[\"a\"],\"color\":1}", 422, "or 'experiment' with 'user_id'"},
    };
    for (size_t i = 0; i < sizeof E / sizeof E[0]; i++) {
        int st = next_req_parse(E[i].body, strlen(E[i].body), &lim, &scr, &req, d, sizeof d);
        if (st != E[i].status || !strstr(d, E[i].detail))
            FAIL("%s: %d \"%s\", want %d \"%s\"", E[i].body, st, d, E[i].status, E[i].detail);
        ASSERT(req.experiment.n == 0 && req.user_id.n == 0); /* zeroed on failure */
    }
    char big[400];
    int n = snprintf(big, sizeof big, "{\"items\":[\"a\"],\"user_id\":\"");
    memset(big + n, 'x', 257);
    snprintf(big + n + 257, sizeof big - (size_t)n - 257, "\"}");
    ASSERT_EQ(next_req_parse(big, strlen(big), &lim, &scr, &req, d, sizeof d), 422);
    ASSERT_CONTAINS(d, "'user_id' is 257 bytes long, the limit is 256");
    api_scratch_release(&scr);
}
