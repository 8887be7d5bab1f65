/* tests/test_metrics.c - core/metrics on small cases computed by hand (the arithmetic is in
 * comments). */
#include "core/metrics.h"

#include <stdint.h>

#include "core/rng.h"
#include "tests/testlib.h"

TEST(metrics_rank_ties_and_exclusion)
{
    /* index:          0    1    2    3    4    5 */
    float s[] = {0.1f, 0.9f, 0.5f, 0.5f, 0.7f, -2.0f};
    /* target 2 (0.5): others >= 0.5 are 1 (0.9), 3 (0.5, a tie counts against), 4 (0.7) -> rank 1+3
     * = 4 */
    ASSERT_EQ(metrics_rank(s, 6, 2, NULL, 0), 4);
    ASSERT_EQ(metrics_rank(s, 6, 3, NULL, 0), 4); /* symmetric tie */
    ASSERT_EQ(metrics_rank(s, 6, 1, NULL, 0), 1); /* best */
    ASSERT_EQ(metrics_rank(s, 6, 5, NULL, 0), 6); /* worst */
    /* excluding items 1 and 3 from target 2: only 4 remains above -> rank 2; 0 (below) changes
     * nothing */
    int32_t ex[] = {1, 3, 0};
    ASSERT_EQ(metrics_rank(s, 6, 2, ex, 3), 2);
    /* the target itself and out-of-range entries in the exclusion list are ignored */
    int32_t ex2[] = {2, -1, 6, 1000};
    ASSERT_EQ(metrics_rank(s, 6, 2, ex2, 4), 4);
    /* all equal scores: every target ranks last */
    float eq[7] = {1, 1, 1, 1, 1, 1, 1};
    for (int t = 0; t < 7; t++)
        ASSERT_EQ(metrics_rank(eq, 7, t, NULL, 0), 7);
    /* bad arguments */
    ASSERT_EQ(metrics_rank(s, 6, 6, NULL, 0), 0);
    ASSERT_EQ(metrics_rank(s, 6, -1, NULL, 0), 0);
    ASSERT_EQ(metrics_rank(s, 0, 0, NULL, 0), 0);
}

TEST(metrics_rank_nan)
{
    float s[] = {0.3f, NAN, 0.8f, 0.1f, NAN};
    /* NaN target ranks last: 5; with item 0 excluded: 4 */
    ASSERT_EQ(metrics_rank(s, 5, 1, NULL, 0), 5);
    int32_t ex[] = {0};
    ASSERT_EQ(metrics_rank(s, 5, 1, ex, 1), 4);
    /* NaN others never count: target 0 (0.3) is beaten only by 2 (0.8) -> 2 */
    ASSERT_EQ(metrics_rank(s, 5, 0, NULL, 0), 2);
    ASSERT_EQ(metrics_rank_ref(s, 5, 0, NULL, 0), 2);
    ASSERT_EQ(metrics_rank_ref(s, 5, 1, ex, 1), 4);
}

/* The vectorised kernel equals the naive loop over many sizes (every tail length of the 32/16-wide
 * blocks), with ties, NaN, +-inf and exclusion lists. */
TEST(metrics_rank_matches_reference)
{
    rng_t r;
    rng_seed(&r, 42);
    float *s = malloc(1000 * sizeof *s);
    int32_t ex[20];
    for (int n = 1; n <= 1000; n += (n < 80 ? 1 : 37)) {
        for (int j = 0; j < n; j++) {
            uint32_t u = (uint32_t)rng_u64(&r);
            s[j] = (float)(u % 50) / 7.0f; /* few distinct values: many ties */
            if (u % 97 == 0) s[j] = NAN;
            if (u % 89 == 0) s[j] = INFINITY;
            if (u % 83 == 0) s[j] = -INFINITY;
        }
        for (int k = 0; k < 20; k++)
            ex[k] = (int32_t)k * 3 - 2; /* distinct, some out of range */
        for (int rep = 0; rep < 5; rep++) {
            int t = (int)rng_below(&r, (uint64_t)n), m = (int)rng_below(&r, 21);
            ASSERT_EQ(metrics_rank(s, n, t, NULL, 0), metrics_rank_ref(s, n, t, NULL, 0));
            ASSERT_EQ(metrics_rank(s, n, t, ex, m), metrics_rank_ref(s, n, t, ex, m));
        }
    }
    free(s);
}

TEST(metrics_rank_batch_rows)
{
    /* (B=2, n=3): row 0 target 2 (0.2 < 0.5, 0.3) -> 3; row 1 target 0 (0.9 highest) -> 1 */
    float s[] = {0.5f, 0.3f, 0.2f, 0.9f, 0.1f, 0.9f};
    int32_t tg[] = {2, 0};
    int rk[2];
    metrics_rank_batch(s, 2, 3, tg, rk);
    ASSERT_EQ(rk[0], 3);
    ASSERT_EQ(rk[1], 2); /* 0.9 ties with item 2: counts against */
}

TEST(metrics_topk_recall_mrr)
{
    metrics_topk a, b;
    int cut[] = {1, 3, 5};
    ASSERT_OK(metrics_topk_init(&a, cut, 3));
    /* ranks 1, 2, 4, 10:
     *   Recall@1 = 1/4            MRR@1 = (1)/4                 = 0.25
     *   Recall@3 = 2/4 = 0.5      MRR@3 = (1 + 1/2)/4           = 0.375
     *   Recall@5 = 3/4 = 0.75     MRR@5 = (1 + 1/2 + 1/4)/4     = 0.4375 */
    metrics_topk_add(&a, 1);
    metrics_topk_add(&a, 2);
    ASSERT_OK(metrics_topk_init(&b, cut, 3));
    metrics_topk_add(&b, 4);
    metrics_topk_add(&b, 10);
    ASSERT_OK(metrics_topk_merge(&a, &b));
    ASSERT_EQ(a.n, 4);
    ASSERT_NEAR(metrics_topk_recall(&a, 1), 0.25, 1e-12);
    ASSERT_NEAR(metrics_topk_mrr(&a, 1), 0.25, 1e-12);
    ASSERT_NEAR(metrics_topk_recall(&a, 3), 0.5, 1e-12);
    ASSERT_NEAR(metrics_topk_mrr(&a, 3), 0.375, 1e-12);
    ASSERT_NEAR(metrics_topk_recall(&a, 5), 0.75, 1e-12);
    ASSERT_NEAR(metrics_topk_mrr(&a, 5), 0.4375, 1e-12);
    ASSERT(isnan(metrics_topk_recall(&a, 20))); /* not a cutoff */
    /* rank 0 (invalid) is a miss everywhere: Recall@5 = 3/5 */
    metrics_topk_add(&a, 0);
    ASSERT_NEAR(metrics_topk_recall(&a, 5), 0.6, 1e-12);

    json_t *j = metrics_topk_to_json(&a);
    ASSERT(j);
    ASSERT_EQ(json_integer_value(json_object_get(j, "n")), 5);
    ASSERT_NEAR(json_real_value(json_object_get(j, "mrr@3")), 1.5 / 5, 1e-12);
    ASSERT_NEAR(json_real_value(json_object_get(j, "recall@1")), 0.2, 1e-12);
    json_decref(j);

    /* empty accumulator: NaN, and null in JSON */
    ASSERT_OK(metrics_topk_init(&b, cut, 3));
    ASSERT(isnan(metrics_topk_mrr(&b, 5)));
    j = metrics_topk_to_json(&b);
    ASSERT(json_is_null(json_object_get(j, "recall@5")));
    json_decref(j);
}

TEST(metrics_topk_errors)
{
    metrics_topk a, b;
    int cut[] = {5, 10, 20}, bad[] = {5, 0}, many[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    ASSERT_RC(metrics_topk_init(&a, bad, 2), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "cutoff 0");
    ASSERT_RC(metrics_topk_init(&a, many, 9), RC_EINVAL);
    ASSERT_RC(metrics_topk_init(&a, cut, 0), RC_EINVAL);
    ASSERT_OK(metrics_topk_init(&a, cut, 3));
    ASSERT_OK(metrics_topk_init(&b, cut, 2));
    metrics_topk_add(&a, 1);
    ASSERT_RC(metrics_topk_merge(&a, &b), RC_EINVAL);
    ASSERT_EQ(a.n, 1);
}

TEST(metrics_auc_by_hand)
{
    /* scores 0.1(-) 0.4(+) 0.35(-) 0.8(+): pairs (pos, neg): (0.4,0.1) win, (0.4,0.35) win,
     * (0.8,0.1) win, (0.8,0.35) win -> 4/4 = 1. Swap labels of 0.4 and 0.35: (0.35,0.1) win
     * (0.35,0.4) loss (0.8,*) 2 wins
     * -> 3/4 = 0.75 (the classic sklearn example). */
    float s[] = {0.1f, 0.4f, 0.35f, 0.8f};
    float y1[] = {0, 1, 0, 1}, y2[] = {0, 0, 1, 1};
    double auc = -1;
    ASSERT_OK(metrics_auc(s, y1, 4, &auc));
    ASSERT_NEAR(auc, 1.0, 1e-12);
    ASSERT_OK(metrics_auc(s, y2, 4, &auc));
    ASSERT_NEAR(auc, 0.75, 1e-12);
    /* ties: scores 0.5(+) 0.5(-) 0.2(-) 0.9(+) 0.5(+)
     * P = {0.5, 0.9, 0.5}, N = {0.5, 0.2}; pairs: (0.5,0.5) 1/2, (0.5,0.2) 1, (0.9,0.5) 1,
     * (0.9,0.2) 1, (0.5,0.5) 1/2, (0.5,0.2) 1 -> 5/6 */
    float s3[] = {0.5f, 0.5f, 0.2f, 0.9f, 0.5f}, y3[] = {1, 0, 0, 1, 1};
    ASSERT_OK(metrics_auc(s3, y3, 5, &auc));
    ASSERT_NEAR(auc, 5.0 / 6.0, 1e-12);
    /* all scores equal -> 0.5; reversed -> 0 */
    float s4[] = {3, 3, 3, 3}, y4[] = {1, 0, 1, 0};
    ASSERT_OK(metrics_auc(s4, y4, 4, &auc));
    ASSERT_NEAR(auc, 0.5, 1e-12);
    float s5[] = {1, 2, 3, 4}, y5[] = {1, 1, 0, 0};
    ASSERT_OK(metrics_auc(s5, y5, 4, &auc));
    ASSERT_NEAR(auc, 0.0, 1e-12);
}

TEST(metrics_auc_errors)
{
    double auc = 7;
    float s[] = {0.1f, NAN}, y1[] = {1, 1}, y2[] = {0, 1};
    ASSERT_RC(metrics_auc(s, y1, 0, &auc), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "no predictions");
    ASSERT_RC(metrics_auc(s, y1, 1, &auc), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "1 positive and 0 negative");
    ASSERT_RC(metrics_auc(s, y2, 2, &auc), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "score 1 is NaN");
    ASSERT_NEAR(auc, 7, 0); /* untouched on error */
}

TEST(metrics_logloss_accuracy)
{
    /* p = 0.9 (y=1), 0.2 (y=0), 0.6 (y=0), 0.5 (y=1):
     *   -[ln 0.9 + ln 0.8 + ln 0.4 + ln 0.5] / 4
     *   = -[-0.1053605 - 0.2231436 - 0.9162907 - 0.6931472] / 4 = 1.9379420 / 4 = 0.4844855
     * accuracy at 0.5: 0.9->1 ok, 0.2->0 ok, 0.6->1 wrong, 0.5->1 ok -> 3/4 */
    float p[] = {0.9f, 0.2f, 0.6f, 0.5f}, y[] = {1, 0, 0, 1};
    double want =
        -(log((double)0.9f) + log(1 - (double)0.2f) + log(1 - (double)0.6f) + log(0.5)) / 4;
    ASSERT_NEAR(want, 0.4844855, 1e-6);
    ASSERT_NEAR(metrics_logloss(p, y, 4), want, 1e-12);
    ASSERT_NEAR(metrics_accuracy(p, y, 4), 0.75, 1e-12);
    /* clipping: p = 0 with y = 1 costs -ln(1e-15) = 34.538776; p = 1 with y = 1 costs ~0 */
    float p0[] = {0.0f, 1.0f}, y0[] = {1, 1};
    ASSERT_NEAR(metrics_logloss(p0, y0, 1), 34.538776394910684, 1e-9);
    ASSERT_NEAR(metrics_logloss(p0 + 1, y0, 1), 0, 1e-14);
    /* soft label 0.5 at p = 0.5: ln 2 */
    float ph[] = {0.5f}, yh[] = {0.5f};
    ASSERT_NEAR(metrics_logloss(ph, yh, 1), log(2.0), 1e-12);
    float pn[] = {NAN};
    ASSERT(isnan(metrics_logloss(pn, y0, 1)));
    ASSERT(isnan(metrics_logloss(p, y, 0)));
    ASSERT(isnan(metrics_accuracy(p, y, 0)));
}

TEST(metrics_regression)
{
    /* pred 3, 5, 2.5, 0 vs truth 2, 5, 4, 1: errors 1, 0, -1.5, -1
     *   MAE  = (1 + 0 + 1.5 + 1)/4 = 0.875
     *   RMSE = sqrt((1 + 0 + 2.25 + 1)/4) = sqrt(1.0625) = 1.0307764 */
    float pr[] = {3, 5, 2.5f, 0}, tr[] = {2, 5, 4, 1};
    ASSERT_NEAR(metrics_mae(pr, tr, 4), 0.875, 1e-12);
    ASSERT_NEAR(metrics_rmse(pr, tr, 4), sqrt(1.0625), 1e-12);
    ASSERT_NEAR(metrics_rmse(pr, tr, 4), 1.0307764, 1e-7);
    ASSERT(isnan(metrics_rmse(pr, tr, 0)));
    ASSERT(isnan(metrics_mae(pr, tr, 0)));
}

/* AUC by sorting equals the O(P*N) pair count on random data with many ties. */
TEST(metrics_auc_matches_pair_count)
{
    rng_t r;
    rng_seed(&r, 7);
    enum { N = 500 };
    float s[N], y[N];
    for (int rep = 0; rep < 20; rep++) {
        for (int i = 0; i < N; i++) {
            s[i] = (float)rng_below(&r, 30) * 0.1f - 1.0f;
            y[i] = rng_below(&r, 3) == 0 ? 1.0f : 0.0f;
        }
        y[0] = 1, y[1] = 0;
        double wins = 0, pairs = 0, auc;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++)
                if (y[i] > 0.5f && y[j] < 0.5f) {
                    pairs++;
                    wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
                }
        ASSERT_OK(metrics_auc(s, y, N, &auc));
        ASSERT_NEAR(auc, wins / pairs, 1e-12);
    }
}
