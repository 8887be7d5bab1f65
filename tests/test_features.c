/* tests/test_features.c - feature columns (models/features.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "core/hash.h"
#include "models/features.h"
#include "tests/testlib.h"

/* Parse a spec from one JSON text {"columns":[..],"features":[..],"label":..,...}; NULL + message on error. */
static int spec_from_text(feat_spec **out, const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) FAIL("bad test JSON: %s (line %d)", e.text, e.line);
    const json_t *lab = json_object_get(j, "label");
    int rc = feat_spec_parse(out, json_object_get(j, "columns"), json_object_get(j, "features"),
                             json_is_string(lab) ? json_string_value(lab) : NULL, json_object_get(j, "label_positive"),
                             json_object_get(j, "label_negative"), json_object_get(j, "missing"));
    json_decref(j);
    return rc;
}

typedef struct {
    int64_t wide_idx[16];
    float wide_val[16];
    float dense[64];
    int64_t emb_id[8];
    feat_row row;
} row_buf;

static feat_row *rowp(row_buf *b)
{
    memset(b, 0, sizeof *b);
    b->row.wide_idx = b->wide_idx;
    b->row.wide_val = b->wide_val;
    b->row.dense = b->dense;
    b->row.emb_id = b->emb_id;
    return &b->row;
}

static int encode_csv(const feat_spec *s, const char *line, row_buf *b)
{
    char buf[512];
    char *fields[32];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", line);
    char *p = buf;
    fields[n++] = p;
    for (; *p; p++)
        if (*p == ',') {
            *p = '\0';
            fields[n++] = p + 1;
        }
    return feat_encode_fields(s, fields, n, rowp(b));
}

static const char *SPEC1 =
    "{\"columns\":[\"age\",\"job\",\"city\",\"gain\",\"y\"], \"label\":\"y\","
    " \"label_positive\":[\">50K\",\">50K.\"], \"label_negative\":[\"<=50K\",\"<=50K.\"],"
    " \"features\":["
    "  {\"name\":\"age\",\"type\":\"numeric\",\"deep\":\"dense\",\"wide\":true},"
    "  {\"name\":\"age_b\",\"type\":\"numeric\",\"column\":\"age\",\"boundaries\":[18,30,50],\"wide\":true},"
    "  {\"name\":\"job\",\"type\":\"categorical\",\"vocab\":[\"a\",\"b\",\"c\"],\"wide\":true,\"deep\":\"onehot\"},"
    "  {\"name\":\"city\",\"type\":\"categorical\",\"hash_buckets\":50,\"deep\":\"embed\",\"dim\":4},"
    "  {\"name\":\"gain\",\"type\":\"numeric\",\"log1p\":true,\"default\":0,\"deep\":\"dense\"},"
    "  {\"name\":\"job_x_city\",\"type\":\"crossed\",\"cross\":[\"job\",\"city\"],\"hash_buckets\":100,\"wide\":true}"
    " ]}";

TEST(features_layout)
{
    feat_spec *s;
    ASSERT_OK(spec_from_text(&s, SPEC1));
    ASSERT_OK(feat_spec_finish(s));
    /* wide: age (1 weight), age_b (4), job (3 + OOV), job_x_city (100) */
    ASSERT_EQ(s->nwide, 4);
    ASSERT_EQ(s->wide_dim, 1 + 4 + 4 + 100);
    ASSERT_EQ(s->f[0].wide_off, 0);
    ASSERT_EQ(s->f[1].wide_off, 1);
    ASSERT_EQ(s->f[2].wide_off, 5);
    ASSERT_EQ(s->f[5].wide_off, 9);
    /* deep: age (1), job onehot (4), gain (1) = dense 6, then city embedding 4 */
    ASSERT_EQ(s->ndense, 6);
    ASSERT_EQ(s->deep_dim, 10);
    ASSERT_EQ(s->nemb, 1);
    ASSERT_EQ(s->f[0].deep_off, 0);
    ASSERT_EQ(s->f[2].deep_off, 1);
    ASSERT_EQ(s->f[4].deep_off, 5);
    ASSERT_EQ(s->f[3].deep_off, 6);
    ASSERT_EQ(s->f[3].emb, 0);
    ASSERT_EQ(s->f[3].card, 50);
    ASSERT_EQ(feat_input_index(s, "city"), 2);
    ASSERT_EQ(feat_input_index(s, "nope"), -1);
    feat_spec_free(s);
}

TEST(features_encode_values)
{
    feat_spec *s;
    ASSERT_OK(spec_from_text(&s, SPEC1));
    ASSERT_OK(feat_spec_finish(s));
    row_buf b;
    /* leading spaces (Adult writes ", ") are trimmed; age 30 is on a boundary: bucket 2 (18 <= 30) */
    ASSERT_OK(encode_csv(s, " 30, b, paris, 0, >50K", &b));
    ASSERT_EQ(b.wide_idx[0], 0);
    ASSERT_NEAR(b.wide_val[0], 30, 1e-6);
    ASSERT_EQ(b.wide_idx[1], 1 + 2);
    ASSERT_NEAR(b.wide_val[1], 1, 0);
    ASSERT_EQ(b.wide_idx[2], 5 + 1); /* "b" is vocab index 1 */
    ASSERT_NEAR(b.dense[0], 30, 1e-6);
    ASSERT_NEAR(b.dense[1 + 1], 1, 0); /* one-hot of b */
    ASSERT_NEAR(b.dense[1 + 0] + b.dense[1 + 2] + b.dense[1 + 3], 0, 0);
    ASSERT_NEAR(b.dense[5], 0, 1e-7); /* log1p(0) */
    ASSERT_EQ(b.emb_id[0], (int64_t)hash_bucket("paris", 5, hash_str("city", 0x5744u), 50));
    for (int i = 6; i < 10; i++) ASSERT_NEAR(b.dense[i], 0, 0); /* embedding block left to the model */
    int64_t cross_paris_b = b.wide_idx[3];
    ASSERT(cross_paris_b >= 9 && cross_paris_b < 109);

    /* unknown and missing categories go to the OOV bucket (id 3); gain 99 -> log1p */
    ASSERT_OK(encode_csv(s, "17,zzz,paris,99,<=50K", &b));
    ASSERT_EQ(b.wide_idx[1], 1 + 0); /* 17 < 18 */
    ASSERT_EQ(b.wide_idx[2], 5 + 3);
    ASSERT_NEAR(b.dense[1 + 3], 1, 0);
    ASSERT_NEAR(b.dense[5], log(100.0), 1e-5);
    int64_t cross_paris_oov = b.wide_idx[3];
    ASSERT_OK(encode_csv(s, "70,?,paris,,<=50K", &b));
    ASSERT_EQ(b.wide_idx[1], 1 + 3); /* 70 >= 50 */
    ASSERT_EQ(b.wide_idx[2], 5 + 3);
    ASSERT_NEAR(b.dense[5], 0, 1e-7); /* missing gain -> default 0 */
    ASSERT_EQ(b.wide_idx[3], cross_paris_oov); /* cross of ids: same ids, same bucket */
    ASSERT_OK(encode_csv(s, "70,b,paris,1,<=50K", &b));
    ASSERT_EQ(b.wide_idx[3], cross_paris_b);

    /* a number that does not parse: RC_EFORMAT naming the column */
    ASSERT_RC(encode_csv(s, "abc,b,paris,0,>50K", &b), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "column 'age'");
    ASSERT_CONTAINS(rc_errmsg(), "abc");
    ASSERT_RC(encode_csv(s, "30,b,paris,0", &b), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "expected 5 columns, got 4");

    /* labels: Adult test labels carry a period */
    ASSERT_EQ(feat_label(s, " >50K."), 1);
    ASSERT_EQ(feat_label(s, "<=50K"), 0);
    ASSERT_RC(feat_label(s, "maybe"), RC_EFORMAT);
    feat_spec_free(s);
}

TEST(features_json_values)
{
    feat_spec *s;
    ASSERT_OK(spec_from_text(&s, SPEC1));
    ASSERT_OK(feat_spec_finish(s));
    row_buf b1, b2;
    ASSERT_OK(encode_csv(s, "44,c,7,3,>50K", &b1));
    feat_value v[5] = {{FEAT_V_NUM, NULL, 0, 44}, {FEAT_V_STR, "c", 1, 0}, {FEAT_V_NUM, NULL, 0, 7},
                       {FEAT_V_NUM, NULL, 0, 3}, {FEAT_V_MISSING, NULL, 0, 0}};
    ASSERT_OK(feat_encode(s, v, rowp(&b2)));
    /* a number given to a categorical is its text "7"; numbers parse the same as strings */
    ASSERT(memcmp(b1.wide_idx, b2.wide_idx, sizeof b1.wide_idx) == 0);
    ASSERT(memcmp(b1.dense, b2.dense, sizeof b1.dense) == 0);
    ASSERT(memcmp(b1.emb_id, b2.emb_id, sizeof b1.emb_id) == 0);
    v[0].kind = FEAT_V_STR;
    v[0].s = "4x4";
    v[0].len = 3;
    ASSERT_RC(feat_encode(s, v, rowp(&b2)), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "'age'");
    v[0].kind = FEAT_V_NUM;
    v[0].num = INFINITY;
    ASSERT_RC(feat_encode(s, v, rowp(&b2)), RC_EFORMAT);
    feat_spec_free(s);
}

TEST(features_learn_vocab_and_stats)
{
    feat_spec *s;
    ASSERT_OK(spec_from_text(&s,
                             "{\"columns\":[\"x\",\"c\"],\"features\":["
                             "{\"name\":\"x\",\"type\":\"numeric\",\"normalize\":true,\"deep\":\"dense\"},"
                             "{\"name\":\"c\",\"type\":\"categorical\",\"vocab\":\"learn\",\"min_count\":2,"
                             "\"wide\":true,\"deep\":\"onehot\"}]}"));
    feat_learner *l = feat_learner_new(s);
    ASSERT(l != NULL);
    const char *rows[][2] = {{"1", "b"}, {"2", "a"}, {"3", "b"}, {"?", "a"}, {"6", "z"}, {"x", "q"}, {"3", "?"}};
    int bad = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *f[2] = {(char *)rows[i][0], (char *)rows[i][1]};
        if (feat_learner_add(l, f, 2) != RC_OK) bad++;
    }
    ASSERT_EQ(bad, 1); /* "x" is not a number: the row is not counted at all ("q" never seen) */
    ASSERT_OK(feat_learner_apply(l, s));
    feat_learner_free(l);
    ASSERT_OK(feat_spec_finish(s));
    /* values: 1 2 3 6 3 (missing skipped): mean 3, variance (4+1+0+9+0)/5 = 2.8 */
    ASSERT_NEAR(s->f[0].mean, 3.0, 1e-12);
    ASSERT_NEAR(s->f[0].std, sqrt(2.8), 1e-12);
    /* vocab: a(2) b(2) kept, ties by value; z(1) dropped by min_count; card = 2 + OOV */
    ASSERT_EQ(s->f[1].card, 3);
    ASSERT_EQ(idmap_find(s->f[1].vocab, "a", 1), 0);
    ASSERT_EQ(idmap_find(s->f[1].vocab, "b", 1), 1);
    ASSERT_EQ(idmap_find(s->f[1].vocab, "z", 1), -1);
    row_buf b;
    char *f[2] = {"?", "z"};
    ASSERT_OK(feat_encode_fields(s, f, 2, rowp(&b)));
    ASSERT_NEAR(b.dense[0], 0, 1e-9); /* missing -> mean -> 0 after normalisation */
    ASSERT_EQ(b.wide_idx[0], 2);      /* z -> OOV (c is the only wide feature) */

    /* round trip through JSON: the learned vocabulary and statistics come back */
    json_t *j = feat_spec_to_json(s);
    ASSERT(j != NULL);
    feat_spec *t;
    ASSERT_OK(feat_spec_from_json(&t, j));
    json_decref(j);
    ASSERT_EQ(t->f[1].card, 3);
    ASSERT_NEAR(t->f[0].std, s->f[0].std, 1e-12);
    char *g[2] = {"6", "b"};
    row_buf b2;
    ASSERT_OK(feat_encode_fields(s, g, 2, rowp(&b)));
    ASSERT_OK(feat_encode_fields(t, g, 2, rowp(&b2)));
    ASSERT(memcmp(&b.wide_idx, &b2.wide_idx, sizeof b.wide_idx) == 0);
    ASSERT(memcmp(&b.dense, &b2.dense, sizeof b.dense) == 0);
    feat_spec_free(t);
    feat_spec_free(s);
}

TEST(features_json_roundtrip_full)
{
    feat_spec *s, *t;
    ASSERT_OK(spec_from_text(&s, SPEC1));
    ASSERT_OK(feat_spec_finish(s));
    json_t *j = feat_spec_to_json(s);
    ASSERT(j != NULL);
    ASSERT_OK(feat_spec_from_json(&t, j));
    json_t *j2 = feat_spec_to_json(t);
    ASSERT(json_equal(j, j2));
    ASSERT_EQ(t->wide_dim, s->wide_dim);
    ASSERT_EQ(t->deep_dim, s->deep_dim);
    ASSERT_EQ(t->label, 4);
    const char *lines[] = {"30,b,paris,0,>50K", "17,zzz,,99,<=50K", "70,?,rome,,<=50K"};
    for (int i = 0; i < 3; i++) {
        row_buf a, b;
        ASSERT_OK(encode_csv(s, lines[i], &a));
        ASSERT_OK(encode_csv(t, lines[i], &b));
        ASSERT(memcmp(a.wide_idx, b.wide_idx, sizeof a.wide_idx) == 0);
        ASSERT(memcmp(a.dense, b.dense, sizeof a.dense) == 0);
        ASSERT(memcmp(a.emb_id, b.emb_id, sizeof a.emb_id) == 0);
    }
    json_decref(j);
    json_decref(j2);
    feat_spec_free(s);
    feat_spec_free(t);
    json_t *three = json_integer(3);
    ASSERT_RC(feat_spec_from_json(&t, three), RC_ECORRUPT);
    json_decref(three);
}

TEST(features_parse_errors)
{
    static const struct {
        const char *features, *msg;
    } cases[] = {
        {"[{\"type\":\"numeric\"}]", "missing \"name\""},
        {"[{\"name\":\"a\",\"type\":\"text\"}]", "type 'text'"},
        {"[{\"name\":\"a\",\"type\":\"numeric\",\"colour\":1}]", "unknown field 'colour'"},
        {"[{\"name\":\"a\",\"type\":\"numeric\",\"column\":\"nope\"}]", "column 'nope' is not in"},
        {"[{\"name\":\"b\",\"type\":\"categorical\"}]", "needs \"vocab\""},
        {"[{\"name\":\"b\",\"type\":\"categorical\",\"vocab\":[\"x\"],\"hash_buckets\":3}]", "not both"},
        {"[{\"name\":\"b\",\"type\":\"categorical\",\"vocab\":[\"x\",\" x\"]}]", "listed twice"},
        {"[{\"name\":\"a\",\"type\":\"numeric\",\"deep\":\"embed\",\"dim\":3}]", "raw numeric goes deep as \"dense\""},
        {"[{\"name\":\"b\",\"type\":\"categorical\",\"hash_buckets\":9,\"deep\":\"embed\"}]", "\"dim\" >= 1"},
        {"[{\"name\":\"a\",\"type\":\"numeric\",\"boundaries\":[3,2]}]", "boundaries must increase"},
        {"[{\"name\":\"a\",\"type\":\"numeric\"},{\"name\":\"x\",\"type\":\"crossed\",\"cross\":[\"a\",\"b\"],"
         "\"hash_buckets\":5}]", "raw numeric (bucketise it)"},
        {"[{\"name\":\"x\",\"type\":\"crossed\",\"cross\":[\"b\",\"a\"],\"hash_buckets\":5},"
         "{\"name\":\"b\",\"type\":\"categorical\",\"hash_buckets\":9}]", "not a feature defined before it"},
        {"[{\"name\":\"a\",\"type\":\"numeric\"},{\"name\":\"a\",\"type\":\"numeric\"}]", "defined twice"},
        {"[{\"name\":\"b\",\"type\":\"categorical\",\"hash_buckets\":9,\"deep\":\"wide\"}]", "none|dense|onehot|embed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "{\"columns\":[\"a\",\"b\"],\"features\":%s}", cases[i].features);
        feat_spec *s = NULL;
        int rc = spec_from_text(&s, text);
        if (rc == RC_OK) FAIL("case %zu accepted: %s", i, cases[i].features);
        ASSERT_CONTAINS(rc_errmsg(), cases[i].msg);
        ASSERT(s == NULL);
    }
    feat_spec *s = NULL;
    ASSERT_RC(spec_from_text(&s, "{\"columns\":[\"a\"],\"label\":\"y\",\"features\":[{\"name\":\"a\",\"type\":\"numeric\"}]}"),
              RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "label column 'y'");
    ASSERT_RC(spec_from_text(&s, "{\"columns\":[\"a\",\"a\"],\"features\":[]}"), RC_EINVAL);
    ASSERT_RC(spec_from_text(&s, "{\"columns\":[\"a\"],\"features\":[]}"), RC_EINVAL);
}

TEST(features_hash_buckets_spread)
{
    feat_spec *s;
    ASSERT_OK(spec_from_text(&s, "{\"columns\":[\"c\"],\"features\":[{\"name\":\"c\",\"type\":\"categorical\","
                                 "\"hash_buckets\":16,\"wide\":true}]}"));
    ASSERT_OK(feat_spec_finish(s));
    int count[16] = {0};
    for (int i = 0; i < 1600; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        char *f[1] = {v};
        row_buf b;
        ASSERT_OK(feat_encode_fields(s, f, 1, rowp(&b)));
        ASSERT(b.wide_idx[0] >= 0 && b.wide_idx[0] < 16);
        count[b.wide_idx[0]]++;
    }
    for (int k = 0; k < 16; k++) ASSERT(count[k] > 50 && count[k] < 150);
    feat_spec_free(s);
}

/* Review fixes (reviewer2). */

TEST(features_stats_large_values_small_spread)
{
    /* Timestamps, ids, fnlwgt-like columns: values near 1e9 with a spread of a few units. The old
     * E[x^2] - E[x]^2 in double lost the variance completely there (1e18 has a resolution of 128). */
    feat_spec *s;
    ASSERT_OK(spec_from_text(&s, "{\"columns\":[\"t\"],\"features\":["
                                 "{\"name\":\"t\",\"type\":\"numeric\",\"normalize\":true,\"deep\":\"dense\"}]}"));
    feat_learner *l = feat_learner_new(s);
    ASSERT(l != NULL);
    const char *vals[] = {"1000000000", "1000000001", "1000000002", "1000000003"};
    for (int i = 0; i < 4; i++) {
        char *f[1] = {(char *)vals[i]};
        ASSERT_OK(feat_learner_add(l, f, 1));
    }
    ASSERT_OK(feat_learner_apply(l, s));
    feat_learner_free(l);
    ASSERT_OK(feat_spec_finish(s));
    ASSERT_NEAR(s->f[0].mean, 1000000001.5, 1e-6);
    ASSERT_NEAR(s->f[0].std, sqrt(1.25), 1e-6);
    row_buf b;
    char *f[1] = {"1000000003"};
    ASSERT_OK(feat_encode_fields(s, f, 1, rowp(&b)));
    ASSERT_NEAR(b.dense[0], 1.5 / sqrt(1.25), 1e-5);
    feat_spec_free(s);
}

TEST(features_long_values)
{
    /* A learned vocabulary never keeps a value longer than an idmap key (a truncated key could never
     * be found again at encode time: the value is OOV either way); a given one refuses it by name. */
    feat_spec *s;
    ASSERT_OK(spec_from_text(&s, "{\"columns\":[\"c\"],\"features\":["
                                 "{\"name\":\"c\",\"type\":\"categorical\",\"vocab\":\"learn\",\"wide\":true}]}"));
    feat_learner *l = feat_learner_new(s);
    ASSERT(l != NULL);
    static char big[IDMAP_MAX_KEY + 100];
    memset(big, 'v', sizeof big - 1);
    for (int i = 0; i < 3; i++) {
        char *f[1] = {big};
        ASSERT_OK(feat_learner_add(l, f, 1));
    }
    char *fa[1] = {"a"};
    ASSERT_OK(feat_learner_add(l, fa, 1));
    ASSERT_OK(feat_learner_apply(l, s));
    feat_learner_free(l);
    ASSERT_OK(feat_spec_finish(s));
    ASSERT_EQ(s->f[0].card, 2); /* "a" + OOV */
    row_buf b;
    char *f[1] = {big};
    ASSERT_OK(feat_encode_fields(s, f, 1, rowp(&b)));
    ASSERT_EQ(b.wide_idx[0], 1); /* OOV */
    feat_spec_free(s);

    char text[IDMAP_MAX_KEY + 400];
    snprintf(text, sizeof text, "{\"columns\":[\"c\"],\"features\":[{\"name\":\"c\",\"type\":\"categorical\","
                                "\"vocab\":[\"a\",\"%s\"],\"wide\":true}]}", big);
    ASSERT_RC(spec_from_text(&s, text), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "feature 'c': vocab[1] is longer than");
}

TEST(features_number_and_missing_helpers)
{
    feat_spec *s;
    ASSERT_OK(spec_from_text(&s, SPEC1));
    double d = 0;
    ASSERT_OK(feat_parse_number(" 37 ", 4, &d));
    ASSERT_NEAR(d, 37, 0);
    ASSERT_OK(feat_parse_number("2.5e1x", 5, &d)); /* only the span counts */
    ASSERT_NEAR(d, 25, 0);
    ASSERT_RC(feat_parse_number("tall", 4, &d), RC_EFORMAT);
    ASSERT_RC(feat_parse_number("inf", 3, &d), RC_EFORMAT);
    ASSERT_RC(feat_parse_number("  ", 2, &d), RC_EFORMAT);
    char pad[100];
    memset(pad, ' ', sizeof pad);
    memcpy(pad + 40, "12", 2);
    ASSERT_OK(feat_parse_number(pad, sizeof pad, &d)); /* long only because of the padding */
    ASSERT_NEAR(d, 12, 0);
    ASSERT(feat_is_missing(s, " ? ", 3));
    ASSERT(feat_is_missing(s, "", 0));
    ASSERT(!feat_is_missing(s, "?x", 2));
    ASSERT_OK(feat_spec_finish(s));
    /* the same rule as feat_encode: a padded number encodes, a word does not */
    row_buf b;
    ASSERT_OK(encode_csv(s, "  30  ,a,x,0,>50K", &b));
    ASSERT_RC(encode_csv(s, "thirty,a,x,0,>50K", &b), RC_EFORMAT);
    feat_spec_free(s);
}

TEST(features_label_is_not_a_feature)
{
    /* A feature reading the label column trained on the answer (and served without it). */
    feat_spec *s = NULL;
    ASSERT_RC(spec_from_text(&s, "{\"columns\":[\"a\",\"y\"],\"label\":\"y\",\"label_positive\":[\"1\"],\"features\":["
                                 "{\"name\":\"a\",\"type\":\"numeric\"},{\"name\":\"yy\",\"type\":\"categorical\","
                                 "\"column\":\"y\",\"vocab\":[\"0\",\"1\"],\"wide\":true}]}"),
              RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "feature 'yy': column 'y' is the label");
    ASSERT(s == NULL);
}

TEST(features_numbers_out_of_float_range)
{
    /* The model's inputs are float: a raw numeric beyond FLT_MAX was inf there (NaN scores, NaN loss),
     * and in the statistics its square made std inf, which the snapshot's JSON cannot hold. */
    feat_spec *s;
    ASSERT_OK(spec_from_text(&s, SPEC1));
    ASSERT_OK(feat_spec_finish(s));
    row_buf b;
    ASSERT_RC(encode_csv(s, "1e300,a,x,0,>50K", &b), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "column 'age': 1e+300 is out of range");
    ASSERT_OK(encode_csv(s, "30,a,x,1e300,>50K", &b)); /* gain is log1p'd: 690.8 */
    ASSERT_NEAR(b.dense[5], log1p(1e300), 1e-3);
    feat_spec_free(s);
    /* bucketised only: any finite value has a bucket */
    ASSERT_OK(spec_from_text(&s, "{\"columns\":[\"a\"],\"features\":[{\"name\":\"a\",\"type\":\"numeric\","
                                 "\"boundaries\":[1,2],\"wide\":true}]}"));
    ASSERT_OK(feat_spec_finish(s));
    ASSERT_OK(encode_csv(s, "-1e300", &b));
    ASSERT_EQ(b.wide_idx[0], 0);
    feat_spec_free(s);
    /* the learner refuses the row (counted as a bad row by the trainer) */
    ASSERT_OK(spec_from_text(&s, "{\"columns\":[\"a\"],\"features\":[{\"name\":\"a\",\"type\":\"numeric\","
                                 "\"normalize\":true,\"deep\":\"dense\"}]}"));
    feat_learner *l = feat_learner_new(s);
    char *f1[1] = {"1e200"}, *f2[1] = {"3"}, *f3[1] = {"5"};
    ASSERT_RC(feat_learner_add(l, f1, 1), RC_EFORMAT);
    ASSERT_CONTAINS(rc_errmsg(), "out of range");
    ASSERT_OK(feat_learner_add(l, f2, 1));
    ASSERT_OK(feat_learner_add(l, f3, 1));
    ASSERT_OK(feat_learner_apply(l, s));
    feat_learner_free(l);
    ASSERT_NEAR(s->f[0].mean, 4, 1e-12);
    ASSERT_NEAR(s->f[0].std, 1, 1e-12);
    feat_spec_free(s);
}

TEST(features_too_many_columns)
{
    /* The encoders hold one raw value per input on the stack: a spec with more inputs used to parse and
     * then fail on every row ("too many input columns"); it is refused when parsed. */
    json_t *cols = json_array(), *feats = json_pack("[{s:s,s:s}]", "name", "c0", "type", "numeric");
    for (int i = 0; i <= FEAT_MAX_INPUTS; i++) json_array_append_new(cols, json_sprintf("c%d", i));
    feat_spec *s = NULL;
    ASSERT_RC(feat_spec_parse(&s, cols, feats, NULL, NULL, NULL, NULL), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "\"columns\": 1025 given, at most 1024");
    ASSERT(s == NULL);
    json_array_remove(cols, FEAT_MAX_INPUTS);
    ASSERT_OK(feat_spec_parse(&s, cols, feats, NULL, NULL, NULL, NULL));
    ASSERT_OK(feat_spec_finish(s));
    feat_spec_free(s);
    json_decref(cols);
    json_decref(feats);
}
