/* tests/test_synth.c - trainer/synth: determinism (same seed, same bytes), formats, and structure (on
 * synthetic sessions an item-to-item model clearly beats popularity under the GRU4Rec protocol). */
#include <stdint.h>
#include <unistd.h>

#include "core/csv.h"
#include "core/idmap.h"
#include "tests/testlib.h"
#include "trainer/cmds.h"
#include "trainer/eval_next.h"
#include "trainer/sessions.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = '\0';
    *len = (size_t)n;
    return b;
}

static int run_synth(const char *kind, const char *out, const char *seed, const char *extra1, const char *extra2)
{
    char *argv[10];
    int argc = 0;
    argv[argc++] = (char *)"synth";
    argv[argc++] = (char *)kind;
    argv[argc++] = (char *)"--out";
    argv[argc++] = (char *)out;
    argv[argc++] = (char *)"--seed";
    argv[argc++] = (char *)seed;
    if (extra1) {
        argv[argc++] = (char *)extra1;
        argv[argc++] = (char *)extra2;
    }
    argv[argc] = NULL;
    return cmd_synth(argc, argv);
}

static const char *tp(const char *name)
{
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 1024, "%s/%s", test_tmpdir(), name);
    return p;
}

TEST(synth_deterministic_bytes)
{
    const char *kinds[] = {"sessions", "ratings", "ctr"};
    for (int k = 0; k < 3; k++) {
        const char *a = tp("a"), *b = tp("b"), *c = tp("c");
        ASSERT_EQ(run_synth(kinds[k], a, "42", NULL, NULL), 0);
        ASSERT_EQ(run_synth(kinds[k], b, "42", NULL, NULL), 0);
        ASSERT_EQ(run_synth(kinds[k], c, "43", NULL, NULL), 0);
        size_t la, lb, lc;
        char *ta = slurp(a, &la), *tb = slurp(b, &lb), *tc = slurp(c, &lc);
        ASSERT(ta && tb && tc);
        ASSERT(la > 1000);
        ASSERT_EQ(la, lb);
        ASSERT(memcmp(ta, tb, la) == 0);
        ASSERT(la != lc || memcmp(ta, tc, la) != 0);
        free(ta);
        free(tb);
        free(tc);
    }
    /* gzip output is deterministic too and reads back to the same rows. */
    const char *z1 = tp("s.tsv.gz"), *z2 = tp("t.tsv.gz"), *plain = tp("s.tsv");
    ASSERT_EQ(run_synth("sessions", z1, "5", "--sessions", "200"), 0);
    ASSERT_EQ(run_synth("sessions", z2, "5", "--sessions", "200"), 0);
    ASSERT_EQ(run_synth("sessions", plain, "5", "--sessions", "200"), 0);
    size_t l1, l2, lp;
    char *t1 = slurp(z1, &l1), *t2 = slurp(z2, &l2), *tpl = slurp(plain, &lp);
    ASSERT(t1 && t2 && tpl);
    ASSERT_EQ(l1, l2);
    ASSERT(memcmp(t1, t2, l1) == 0);
    ASSERT((unsigned char)t1[0] == 0x1f && (unsigned char)t1[1] == 0x8b);
    ASSERT(l1 < lp);
    free(t1);
    free(t2);
    free(tpl);
    csv_reader *r1 = csv_open(z1, 0), *r2 = csv_open(plain, 0);
    ASSERT(r1 && r2);
    char **f1, **f2;
    int n1, n2, rc1, rc2;
    int64_t rows = 0;
    for (;;) {
        rc1 = csv_next(r1, &f1, &n1);
        char a[64];
        if (rc1 > 0) snprintf(a, sizeof a, "%s|%s|%s", f1[0], f1[1], f1[2]);
        rc2 = csv_next(r2, &f2, &n2);
        ASSERT_EQ(rc1, rc2);
        if (rc1 <= 0) break;
        char b[64];
        snprintf(b, sizeof b, "%s|%s|%s", f2[0], f2[1], f2[2]);
        ASSERT_STR_EQ(a, b);
        rows++;
    }
    ASSERT(rows > 400);
    csv_close(r1);
    csv_close(r2);
}

TEST(synth_formats)
{
    const char *r = tp("r.tsv"), *c = tp("c.csv");
    ASSERT_EQ(run_synth("ratings", r, "1", "--rows", "3000"), 0);
    csv_reader *rd = csv_open(r, 0);
    ASSERT(rd != NULL);
    char **f;
    int n, rc;
    ASSERT_EQ(csv_next(rd, &f, &n), 1);
    ASSERT_EQ(n, 4);
    ASSERT_STR_EQ(f[0], "user_id");
    ASSERT_STR_EQ(f[2], "rating");
    int64_t rows = 0, hist[6] = {0}, prev_t = 0;
    while ((rc = csv_next(rd, &f, &n)) > 0) {
        int64_t v, t;
        ASSERT_EQ(n, 4);
        ASSERT_OK(csv_parse_i64(f[2], &v));
        ASSERT(v >= 1 && v <= 5);
        ASSERT_OK(csv_parse_i64(f[3], &t));
        ASSERT(t > prev_t);
        prev_t = t;
        hist[v]++;
        rows++;
    }
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(rows, 3000);
    for (int v = 1; v <= 5; v++) ASSERT(hist[v] > 0); /* every rating value occurs */
    csv_close(rd);

    ASSERT_EQ(run_synth("ctr", c, "1", "--rows", "5000"), 0);
    rd = csv_open(c, 0);
    ASSERT(rd != NULL);
    ASSERT_EQ(csv_sep(rd), ',');
    ASSERT_EQ(csv_next(rd, &f, &n), 1);
    ASSERT_EQ(n, 7);
    const char *hdr[] = {"label", "age", "income", "device", "site", "hour", "segment"};
    for (int i = 0; i < 7; i++) ASSERT_STR_EQ(f[i], hdr[i]);
    int64_t pos = 0;
    rows = 0;
    while ((rc = csv_next(rd, &f, &n)) > 0) {
        ASSERT_EQ(n, 7);
        ASSERT(strcmp(f[0], "0") == 0 || strcmp(f[0], "1") == 0);
        pos += f[0][0] == '1';
        double inc;
        ASSERT_OK(csv_parse_double(f[2], &inc));
        ASSERT(inc > 0);
        ASSERT(f[3][0] == 'd' && f[4][0] == 's' && f[5][0] == 'h' && f[6][0] == 'g');
        rows++;
    }
    ASSERT_EQ(rows, 5000);
    ASSERT(pos > 500 && pos < 4500);
    csv_close(rd);
}

TEST(synth_bad_args)
{
    char *a1[] = {(char *)"synth", (char *)"movies", (char *)"--out", (char *)"x", NULL};
    ASSERT_EQ(cmd_synth(4, a1), 2);
    char *a2[] = {(char *)"synth", (char *)"ctr", (char *)"--rows", (char *)"-3", (char *)"--out", (char *)"x", NULL};
    ASSERT_EQ(cmd_synth(6, a2), 2);
    char *a3[] = {(char *)"synth", (char *)"ctr", NULL};
    ASSERT_EQ(cmd_synth(2, a3), 2);
    char *a4[] = {(char *)"synth", (char *)"ctr", (char *)"--out", (char *)"/nonexistent-dir/x.csv", NULL};
    ASSERT_EQ(cmd_synth(4, a4), 1);
}

/* First-order transition counts from train: score(j | i) = count(i -> j) + tiny popularity prior. */
typedef struct {
    int N;
    float *trans; /* (N,N) */
} trans_ctx;

static int trans_score(void *vctx, const int *lanes, const int32_t *items, const uint8_t *reset, int B,
                       float *scores)
{
    (void)lanes;
    (void)reset;
    trans_ctx *c = vctx;
    for (int b = 0; b < B; b++)
        memcpy(scores + (size_t)b * (size_t)c->N, c->trans + (size_t)items[b] * (size_t)c->N,
               (size_t)c->N * sizeof(float));
    return RC_OK;
}

TEST(synth_sessions_have_sequential_structure)
{
    const char *p = tp("sessions.tsv");
    ASSERT_EQ(run_synth("sessions", p, "3", NULL, NULL), 0);
    sess_opts o;
    sess_opts_default(&o);
    o.verbose = 0;
    o.time_unit = "s";
    sess_split sp;
    ASSERT_OK(sess_prepare(&sp, p, &o));
    ASSERT(sp.train.n_sessions > 1000);
    ASSERT(sp.n_predictions > 500);
    int N = (int)sp.train.n_items;
    float *pop = malloc((size_t)N * sizeof *pop);
    trans_ctx tc = {N, calloc((size_t)N * (size_t)N, sizeof(float))};
    ASSERT(pop && tc.trans);
    next_pop_scores(&sp.train, pop);
    for (int64_t s = 0; s < sp.train.n_sessions; s++)
        for (int64_t i = sp.train.offsets[s]; i + 1 < sp.train.offsets[s + 1]; i++)
            tc.trans[(size_t)sp.train.items[i] * (size_t)N + (size_t)sp.train.items[i + 1]] += 1.0f;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) tc.trans[(size_t)i * (size_t)N + (size_t)j] += 1e-4f * pop[j];
    next_eval_opts eo;
    next_eval_opts_default(&eo);
    eo.progress = 0;
    metrics_topk a_pop, a_tr;
    next_static st = {pop, N};
    next_scorer sc;
    next_static_scorer(&sc, &st);
    ASSERT_OK(next_eval(&sp.test, &sc, &eo, &a_pop));
    next_scorer sc2 = {.ctx = &tc, .score = trans_score};
    ASSERT_OK(next_eval(&sp.test, &sc2, &eo, &a_tr));
    ASSERT_EQ(a_pop.n, a_tr.n);
    double rp = metrics_topk_recall(&a_pop, 20), rt = metrics_topk_recall(&a_tr, 20);
    double mp = metrics_topk_mrr(&a_pop, 20), mt = metrics_topk_mrr(&a_tr, 20);
    if (!(rt > rp + 0.15 && mt > 2 * mp))
        FAIL("transitions should beat popularity: recall@20 %.4f vs %.4f, mrr@20 %.4f vs %.4f", rt, rp, mt, mp);
    free(pop);
    free(tc.trans);
    sess_split_free(&sp);
}

/* A full disk is an error naming the file and the reason (gzprintf failures used to go unchecked), and
 * so is a folder that does not exist. */
TEST(synth_write_errors_named)
{
    char out[1024];
    if (access("/dev/full", W_OK) != 0) SKIP("no writable /dev/full");
    for (int k = 0; k < 3; k++) {
        static const char *const kinds[] = {"sessions", "ratings", "ctr"};
        int st = test_run(out, sizeof out, "%s synth %s --out /dev/full 2>&1", test_recd_bin(), kinds[k]);
        ASSERT_EQ(st, 1);
        ASSERT_CONTAINS(out, "/dev/full: write error");
        ASSERT_CONTAINS(out, "No space left");
    }
    int st = test_run(out, sizeof out, "%s synth ctr --out /nonexistent-dir/x.csv 2>&1", test_recd_bin());
    ASSERT_EQ(st, 1);
    ASSERT_CONTAINS(out, "/nonexistent-dir/x.csv: cannot create: No such file");
}
