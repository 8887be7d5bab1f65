/* tests/test_optim.c - core/optim against values computed by hand for a few steps (arithmetic in
 * the comments), and the rows forms against the dense forms. Tolerances are float rounding (~1e-6
 * relative). */
#include "core/optim.h"

#include <stdint.h>

#include "tests/testlib.h"

TEST(optim_adagrad_by_hand)
{
    /* lr 0.5, eps 1e-6, p0 = 1, gradients 3 then 4:
     *   step 1: acc = 9;  upd = -0.5*3/sqrt(9.000001)  = -1.5/3.00000017 = -0.49999997;  p =
     * 0.50000003 step 2: acc = 25; upd = -0.5*4/sqrt(25.000001) = -2/5.0000001    = -0.39999999;  p
     * = 0.10000004 */
    optim_adagrad o = {0.5, 0.0, 1e-6};
    float p = 1, acc = 0, g = 3;
    optim_adagrad_dense(&o, &p, &g, &acc, NULL, 1);
    ASSERT_NEAR(acc, 9, 0);
    ASSERT_NEAR(p, 0.50000003, 1e-6);
    g = 4;
    optim_adagrad_dense(&o, &p, &g, &acc, NULL, 1);
    ASSERT_NEAR(acc, 25, 0);
    ASSERT_NEAR(p, 0.10000004, 1e-6);
}

TEST(optim_adagrad_eps_inside_sqrt)
{
    /* g = 1e-3 on a fresh accumulator, eps 1e-6: acc = 1e-6 and upd = -0.5 * 1e-3 / sqrt(1e-6 +
     * 1e-6) = -0.5 / sqrt(2) = -0.35355339. (eps outside the sqrt would give -0.5 * 1e-3 / 1.001e-3
     * = -0.4995.) */
    optim_adagrad o = {0.5, 0.0, 1e-6};
    float p = 0, acc = 0, g = 1e-3f;
    optim_adagrad_dense(&o, &p, &g, &acc, NULL, 1);
    ASSERT_NEAR(p, -0.35355339, 1e-6);
    /* a zero gradient on a zero accumulator moves nothing (0 / sqrt(eps)) */
    float q = 2, a0 = 0, g0 = 0;
    optim_adagrad_dense(&o, &q, &g0, &a0, NULL, 1);
    ASSERT_NEAR(q, 2, 0);
}

TEST(optim_adagrad_momentum_by_hand)
{
    /* lr 0.5, momentum 0.9, eps 1e-6, p0 = 1, v0 = 0, gradients 3, 4, 0:
     *   step 1: acc 9,  upd -0.49999997; v = -0.49999997;                        p = 0.50000003
     *   step 2: acc 25, upd -0.39999999; v = 0.9*(-0.49999997) - 0.39999999 = -0.84999997;
     *           p = 0.50000003 - 0.84999997 = -0.34999994
     *   step 3: acc 25, upd 0;           v = 0.9*(-0.84999997) = -0.76499997;
     *           p = -0.34999994 - 0.76499997 = -1.11499991 (momentum keeps moving without gradient)
     */
    optim_adagrad o = {0.5, 0.9, 1e-6};
    float p = 1, acc = 0, v = 0, g[] = {3, 4, 0};
    double want_p[] = {0.50000003, -0.34999994, -1.11499991},
           want_v[] = {-0.49999997, -0.84999997, -0.76499997};
    for (int s = 0; s < 3; s++) {
        optim_adagrad_dense(&o, &p, &g[s], &acc, &v, 1);
        ASSERT_NEAR(v, want_v[s], 1e-6);
        ASSERT_NEAR(p, want_p[s], 2e-6);
    }
}

/* The rows form touches exactly the listed rows, and each listed row moves as the dense form would.
 */
TEST(optim_adagrad_rows_match_dense)
{
    enum { R = 4, C = 3, K = 2 };
    optim_adagrad o = {0.1, 0.5, 1e-6};
    float p[R * C], acc[R * C] = {0}, v[R * C] = {0};
    for (int i = 0; i < R * C; i++)
        p[i] = (float)i * 0.25f - 1;
    float p0[R * C];
    memcpy(p0, p, sizeof p);
    int32_t rows[K] = {3, 1};
    float g[K * C] = {1, -2, 0.5f, 4, 0, -1};
    /* dense reference on copies of rows 3 and 1 */
    float r3[C], r1[C], a3[C] = {0}, a1[C] = {0}, v3[C] = {0}, v1[C] = {0};
    memcpy(r3, p + 3 * C, sizeof r3);
    memcpy(r1, p + 1 * C, sizeof r1);
    for (int s = 0; s < 2; s++) {
        optim_adagrad_rows(&o, p, acc, v, C, rows, K, g);
        optim_adagrad_dense(&o, r3, g, a3, v3, C);
        optim_adagrad_dense(&o, r1, g + C, a1, v1, C);
    }
    for (int c = 0; c < C; c++) {
        ASSERT_NEAR(p[3 * C + c], r3[c], 0);
        ASSERT_NEAR(p[1 * C + c], r1[c], 0);
        ASSERT_NEAR(acc[3 * C + c], a3[c], 0);
        ASSERT_NEAR(v[1 * C + c], v1[c], 0);
        /* rows 0 and 2 untouched, state included */
        ASSERT_NEAR(p[0 * C + c], p0[0 * C + c], 0);
        ASSERT_NEAR(p[2 * C + c], p0[2 * C + c], 0);
        ASSERT_NEAR(acc[2 * C + c], 0, 0);
        ASSERT_NEAR(v[0 * C + c], 0, 0);
    }
    /* one element by hand: row 3 col 0, g = 1 twice, lr 0.1, momentum 0.5:
     *   step 1: acc 1, upd = -0.1/sqrt(1.000001) = -0.09999995; v = -0.09999995
     *   step 2: acc 2, upd = -0.1/sqrt(2.000001) = -0.07071066; v = -0.05 - 0.07071066 =
     * -0.12071064 p = 1.25 - 0.09999995 - 0.12071064 = 1.02928941 (p0 of element 9 is 9*0.25 - 1
     * = 1.25) */
    ASSERT_NEAR(p[3 * C + 0], 1.25 - 0.09999995 - 0.12071064, 2e-6);
    /* momentum 0: v may be NULL in the rows form too */
    /* (acc of row 3 col 0 is 2, then 3: upd = -0.1/sqrt(3.000001) = -0.05773502) */
    optim_adagrad o2 = {0.1, 0.0, 1e-6};
    float before = p[3 * C + 0];
    optim_adagrad_rows(&o2, p, acc, NULL, C, rows, K, g);
    ASSERT_NEAR(p[3 * C + 0], before - 0.05773502, 1e-6);
    ASSERT_NEAR(acc[3 * C + 0], 3, 0);
    for (int c = 0; c < C; c++)
        ASSERT_NEAR(p[2 * C + c], p0[2 * C + c], 0);
}

TEST(optim_ftrl_by_hand)
{
    /* alpha 0.5, beta 1, l1 1, l2 0.5; one coordinate from z = n = 0, gradients 2, -1, 0.5.
     *   w(z, n) = 0 if |z| <= 1, else -(z - sign(z)) / ((1 + sqrt(n))/0.5 + 0.5)
     *   step 1: w = 0; sigma = (sqrt(4) - 0)/0.5 = 4; z = 0 + 2 - 4*0 = 2; n = 4
     *           w = -(2 - 1)/((1 + 2)/0.5 + 0.5) = -1/6.5 = -0.15384615
     *   step 2: sigma = (sqrt(5) - 2)/0.5 = 0.47213595; z = 2 - 1 - 0.47213595*(-0.15384615)
     * = 1.07263630; n = 5; w = -0.07263630/((1 + 2.23606798)/0.5 + 0.5) = -0.07263630/6.97213595 =
     * -0.01041808 step 3: sigma = (sqrt(5.25) - sqrt(5))/0.5 = 0.11043958; z = 1.07263630 + 0.5 -
     * 0.11043958*(-0.01041808) = 1.57378687; n = 5.25; w = -0.57378687/((1 + 2.29128785)/0.5 + 0.5)
     * = -0.08101387 */
    optim_ftrl o = {0.5, 1.0, 1.0, 0.5};
    float z = 0, n = 0, w = 99, g[] = {2, -1, 0.5f};
    double wz[] = {2, 1.07263630, 1.57378687}, wn[] = {4, 5, 5.25},
           ww[] = {-0.15384615, -0.01041808, -0.08101387};
    for (int s = 0; s < 3; s++) {
        optim_ftrl_dense(&o, &z, &n, &g[s], &w, 1);
        ASSERT_NEAR(z, wz[s], 1e-6);
        ASSERT_NEAR(n, wn[s], 1e-6);
        ASSERT_NEAR(w, ww[s], 1e-6);
        ASSERT_NEAR(optim_ftrl_weight(&o, z, n), ww[s], 1e-6);
    }
    /* negative z: w = -(-3 + 1)/((1 + 0)/0.5 + 0.5) = 2/2.5 = 0.8; inside the l1 ball: 0 */
    ASSERT_NEAR(optim_ftrl_weight(&o, -3, 0), 0.8, 1e-7);
    ASSERT_NEAR(optim_ftrl_weight(&o, -1, 7), 0, 0);
    ASSERT_NEAR(optim_ftrl_weight(&o, 0.999f, 0), 0, 0);
    float zs[] = {-3, 0.5f, 2}, ns[] = {0, 0, 4}, ws[3];
    optim_ftrl_weights(&o, zs, ns, ws, 3);
    ASSERT_NEAR(ws[0], 0.8, 1e-7);
    ASSERT_NEAR(ws[1], 0, 0);
    ASSERT_NEAR(ws[2], -0.15384615, 1e-7);
}

TEST(optim_ftrl_rows_sparse_features)
{
    /* 5 features (C = 1); an example with features 4 and 1 gets gradients 2 and -2; twice.
     * Feature 4 follows step 1 above (z 2, n 4, w -1/6.5); feature 1 is its mirror image (z -2, w
     * +1/6.5). Second step on feature 4 with g = 2 at w = -0.15384615: sigma = (sqrt(8) - 2)/0.5
     * = 1.65685425; z = 2 + 2 + 1.65685425*0.15384615 = 4.25490065; w = -3.25490065/((1
     * + 2.82842712)/0.5 + 0.5) = -3.25490065/8.15685425 = -0.39903872 */
    optim_ftrl o = {0.5, 1.0, 1.0, 0.5};
    float z[5] = {0}, n[5] = {0}, w[5] = {0};
    int32_t rows[] = {4, 1};
    float g[] = {2, -2};
    optim_ftrl_rows(&o, z, n, w, 1, rows, 2, g);
    ASSERT_NEAR(w[4], -1 / 6.5, 1e-7);
    ASSERT_NEAR(w[1], 1 / 6.5, 1e-7);
    optim_ftrl_rows(&o, z, n, NULL, 1, rows, 2, g); /* w not kept in sync this time */
    ASSERT_NEAR(z[4], 4.25490065, 1e-5);
    ASSERT_NEAR(optim_ftrl_weight(&o, z[4], n[4]), -0.39903872, 1e-6);
    ASSERT_NEAR(optim_ftrl_weight(&o, z[1], n[1]), 0.39903872, 1e-6);
    ASSERT_NEAR(w[4], -1 / 6.5, 1e-7);
    for (int i = 0; i < 5; i++)
        if (i != 4 && i != 1) ASSERT(z[i] == 0 && n[i] == 0 && w[i] == 0);
}

TEST(optim_adam_by_hand)
{
    /* lr 0.1, b1 0.9, b2 0.999, eps 1e-8, p0 = 1, gradients 0.5, -1, 0.25:
     *   t=1: m = 0.05, v = 0.00025; mhat = 0.05/0.1 = 0.5, vhat = 0.00025/0.001 = 0.25;
     *        p = 1 - 0.1*0.5/(0.5 + 1e-8) = 0.9
     *   t=2: m = 0.045 - 0.1 = -0.055, v = 0.00024975 + 0.001 = 0.00124975;
     *        mhat = -0.055/0.19 = -0.28947368, vhat = 0.00124975/0.001999 = 0.62518759, sqrt =
     * 0.79068805; p = 0.9 + 0.1*0.28947368/0.79068805 = 0.93661035 t=3: m = -0.0495 + 0.025 =
     * -0.0245, v = 0.00124850025 + 0.0000625 = 0.00131100025; mhat = -0.0245/0.271 = -0.09040590,
     * vhat = 0.00131100025/0.002997001 = 0.43743737, sqrt = 0.66139048; p = 0.93661035 +
     * 0.1*0.09040590/0.66139048 = 0.95027942 */
    optim_adam o = {0.1, 0.9, 0.999, 1e-8};
    float p = 1, m = 0, v = 0, g[] = {0.5f, -1, 0.25f};
    double wp[] = {0.9, 0.93661035, 0.95027942}, wm[] = {0.05, -0.055, -0.0245},
           wv[] = {0.00025, 0.00124975, 0.00131100025};
    for (int t = 1; t <= 3; t++) {
        optim_adam_dense(&o, t, &p, &g[t - 1], &m, &v, 1);
        ASSERT_NEAR(m, wm[t - 1], 1e-7);
        ASSERT_NEAR(v, wv[t - 1], 1e-9);
        ASSERT_NEAR(p, wp[t - 1], 2e-6);
    }
}

TEST(optim_adam_rows_lazy)
{
    /* (R=3, C=2); step 1 updates row 2 only, step 2 updates rows 0 and 2. Row 0 at t=2 is its first
     * update but uses the global t: m = 0.1 g, v = 0.001 g^2, mhat = 0.1 g/0.19, vhat = 0.001
     * g^2/0.001999: for g = 1: p -= 0.1 * 0.52631579/0.70728362 = 0.07441368 */
    optim_adam o = {0.1, 0.9, 0.999, 1e-8};
    float p[6] = {0, 0, 0, 0, 1, 1}, m[6] = {0}, v[6] = {0};
    int32_t r1[] = {2}, r2[] = {0, 2};
    float g1[] = {0.5f, 0.5f}, g2[] = {1, 1, -1, -1};
    optim_adam_rows(&o, 1, p, m, v, 2, r1, 1, g1);
    optim_adam_rows(&o, 2, p, m, v, 2, r2, 2, g2);
    ASSERT_NEAR(p[0], -0.07441368, 1e-6);
    ASSERT_NEAR(p[1], -0.07441368, 1e-6);
    ASSERT(p[2] == 0 && p[3] == 0 && m[2] == 0 && v[3] == 0);
    /* row 2 follows the dense hand computation above */
    ASSERT_NEAR(p[4], 0.93661035, 2e-6);
    ASSERT_NEAR(p[5], 0.93661035, 2e-6);
}

/* Sanity on a real objective: each optimiser drives f(x) = sum_i (x_i - c_i)^2 towards its minimum.
 */
TEST(optim_minimise_quadratic)
{
    enum { N = 5 };
    const float c[N] = {1, -2, 0.5f, 3, 0};
    float g[N];
    float pa[N] = {0}, acc[N] = {0}, va[N] = {0};
    optim_adagrad oa = {0.5, 0.5, 1e-6};
    float pm[N] = {0}, mm[N] = {0}, vm[N] = {0};
    optim_adam om = {0.05, 0.9, 0.999, 1e-8};
    float z[N] = {0}, nsq[N] = {0}, w[N] = {0};
    optim_ftrl of = {0.5, 1.0, 0.0, 0.0};
    for (int t = 1; t <= 2000; t++) {
        for (int i = 0; i < N; i++)
            g[i] = 2 * (pa[i] - c[i]);
        optim_adagrad_dense(&oa, pa, g, acc, va, N);
        for (int i = 0; i < N; i++)
            g[i] = 2 * (pm[i] - c[i]);
        optim_adam_dense(&om, t, pm, g, mm, vm, N);
        for (int i = 0; i < N; i++)
            g[i] = 2 * (w[i] - c[i]);
        optim_ftrl_dense(&of, z, nsq, g, w, N);
    }
    for (int i = 0; i < N; i++) {
        ASSERT_NEAR(pa[i], c[i], 1e-2);
        ASSERT_NEAR(pm[i], c[i], 1e-2);
        ASSERT_NEAR(w[i], c[i], 1e-2);
    }
}

/* The vector loops (4 lanes) and the scalar tail give every element the hand-computed values above:
 * n = 11 covers two vector blocks and a tail of 3. */
TEST(optim_vector_lanes_match_hand)
{
    enum { N = 11 };
    float p[N], acc[N] = {0}, v[N] = {0}, g[N];
    optim_adagrad o = {0.5, 0.9, 1e-6};
    for (int i = 0; i < N; i++)
        p[i] = 1;
    const float gs[] = {3, 4, 0};
    const double want_p[] = {0.50000003, -0.34999994, -1.11499991};
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < N; i++)
            g[i] = gs[s];
        optim_adagrad_dense(&o, p, g, acc, v, N);
        for (int i = 0; i < N; i++)
            ASSERT_NEAR(p[i], want_p[s], 2e-6);
        for (int i = 1; i < N; i++)
            ASSERT(p[i] == p[0]); /* bit-identical across lanes and tail */
    }
    optim_adagrad o0 = {0.5, 0.0, 1e-6};
    for (int i = 0; i < N; i++)
        p[i] = 0, acc[i] = 0, g[i] = 1e-3f;
    optim_adagrad_dense(&o0, p, g, acc, NULL, N);
    for (int i = 0; i < N; i++)
        ASSERT_NEAR(p[i], -0.35355339, 1e-6);

    optim_adam oa = {0.1, 0.9, 0.999, 1e-8};
    float m[N] = {0};
    for (int i = 0; i < N; i++)
        p[i] = 1, v[i] = 0;
    const float ga[] = {0.5f, -1, 0.25f};
    const double wa[] = {0.9, 0.93661035, 0.95027942};
    for (int t = 1; t <= 3; t++) {
        for (int i = 0; i < N; i++)
            g[i] = ga[t - 1];
        optim_adam_dense(&oa, t, p, g, m, v, N);
        for (int i = 0; i < N; i++)
            ASSERT_NEAR(p[i], wa[t - 1], 2e-6);
        for (int i = 1; i < N; i++)
            ASSERT(p[i] == p[0]);
    }
}
