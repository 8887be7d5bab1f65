/* tests/test_abstats.c - core/abstats: distributions, sums, delta method, comparison, SRM, and A/A and
 * power simulations of the fixed-horizon and the always-valid sequential test.
 *
 * Reference values of Phi, its inverse and the chi-square tail were checked with mpmath at 30 digits;
 * the closed forms used to redo them by hand are in the comments. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/abstats.h"
#include "core/rng.h"
#include "tests/testlib.h"

/* |a - b| <= tol * |b| */
#define ASSERT_REL(a, b, tol) ASSERT_NEAR((a), (b), (tol) * fabs((double)(b)))

/* ---- distributions ---------------------------------------------------------------------------- */

TEST(abstats_norm_cdf_known)
{
    /* Phi(z) = erfc(-z / sqrt 2) / 2; table values */
    ASSERT(ab_norm_cdf(0) == 0.5);
    ASSERT_NEAR(ab_norm_cdf(1.959963984540054), 0.975, 1e-15);
    ASSERT_NEAR(ab_norm_cdf(1), 0.84134474606854294859, 1e-15);
    ASSERT_NEAR(ab_norm_cdf(-1), 0.15865525393145705141, 1e-15);
    ASSERT_NEAR(ab_norm_cdf(3), 0.99865010196836990547, 1e-15);
    /* lower tails keep their relative precision */
    ASSERT_REL(ab_norm_cdf(-5), 2.8665157187919391167e-7, 1e-13);
    ASSERT_REL(ab_norm_cdf(-8), 6.2209605742717841235e-16, 1e-13);
    ASSERT_REL(ab_norm_cdf(-20), 2.7536241186062336951e-89, 1e-12);
    ASSERT(ab_norm_cdf(INFINITY) == 1);
    ASSERT(ab_norm_cdf(-INFINITY) == 0);
    ASSERT(isnan(ab_norm_cdf(NAN)));
}

TEST(abstats_norm_quantile_known)
{
    ASSERT(ab_norm_quantile(0.5) == 0);
    ASSERT_NEAR(ab_norm_quantile(0.975), 1.9599639845400542355, 1e-14);
    ASSERT_NEAR(ab_norm_quantile(0.995), 2.575829303548900761, 1e-14);
    ASSERT_NEAR(ab_norm_quantile(0.999), 3.0902323061678135415, 1e-13);
    ASSERT_NEAR(ab_norm_quantile(0.05), -1.6448536269514727149, 1e-14);
    ASSERT_NEAR(ab_norm_quantile(0.3), -0.52440051270804078404, 1e-14);
    /* 0.02425 is where Acklam switches from the central to the tail formula */
    ASSERT_NEAR(ab_norm_quantile(0.02425), -1.9729610513118848503, 1e-14);
    ASSERT_REL(ab_norm_quantile(1e-10), -6.3613409024040562047, 1e-13);
    ASSERT_REL(ab_norm_quantile(1e-300), -37.047096299361199237, 1e-13);
    /* the smallest subnormal, 2^-1074: where phi(x) underflows, still a finite answer (-38.4674) */
    ASSERT_REL(ab_norm_quantile(4.9406564584124654e-324), -38.467405617144, 1e-8);
    /* symmetric by construction: q(p) = -q(1 - p) (1 - p exact for these p) */
    ASSERT(ab_norm_quantile(0.75) == -ab_norm_quantile(0.25));
    ASSERT(ab_norm_quantile(0.99609375) == -ab_norm_quantile(0.00390625));
    /* the ends and outside */
    ASSERT(ab_norm_quantile(0) == -INFINITY);
    ASSERT(ab_norm_quantile(1) == INFINITY);
    ASSERT(isnan(ab_norm_quantile(-0.1)));
    ASSERT(isnan(ab_norm_quantile(1.5)));
    ASSERT(isnan(ab_norm_quantile(NAN)));
}

TEST(abstats_norm_roundtrip)
{
    /* p -> q(p) -> Phi: relative error in p below 1e-12 down to 1e-300 */
    for (double lp = -300; lp <= -0.31; lp += 0.37) {
        double p = pow(10, lp);
        double back = ab_norm_cdf(ab_norm_quantile(p));
        ASSERT_REL(back, p, 1e-12);
    }
    /* x -> Phi(x) -> q: for x > 3, Phi(x) rounds near 1 and x cannot be recovered */
    for (double x = -37; x <= 3; x += 0.125) {
        double back = ab_norm_quantile(ab_norm_cdf(x));
        ASSERT_NEAR(back, x, 1e-12 * fmax(1, fabs(x)));
    }
}

TEST(abstats_chi2_sf_known)
{
    /* df 1: P(X > x) = erfc(sqrt(x / 2)); 3.841458820694124 = 1.959963984540054^2 */
    ASSERT_NEAR(ab_chi2_sf(3.841458820694124, 1), 0.05, 1e-13);
    ASSERT_NEAR(ab_chi2_sf(1, 1), 0.31731050786291410283, 1e-13);      /* 2 (1 - Phi(1)) */
    ASSERT_NEAR(ab_chi2_sf(0.5, 1), 0.47950012218695346232, 1e-13);
    ASSERT_NEAR(ab_chi2_sf(1e-3, 1), 0.97477287936996038828, 1e-13);
    /* df 2: P(X > x) = exp(-x / 2): sf(10, 2) = exp(-5) */
    ASSERT_NEAR(ab_chi2_sf(10, 2), exp(-5), 1e-15);
    ASSERT_NEAR(ab_chi2_sf(10, 2), 0.0067379469990854670966, 1e-15);
    /* df 3: erfc(sqrt(x/2)) + sqrt(2x/pi) exp(-x/2); at 1: 0.31731 + 0.79788 * 0.60653 = 0.80125 */
    ASSERT_NEAR(ab_chi2_sf(1, 3), 0.80125195690120080243, 1e-13);
    ASSERT_NEAR(ab_chi2_sf(7.814727903251178, 3), 0.05, 1e-13);
    ASSERT_REL(ab_chi2_sf(200, 3), 4.2185411071920423377e-43, 1e-11);
    /* df 10 (a = 5): Q(5, y) = exp(-y) (1 + y + y^2/2 + y^3/6 + y^4/24), y = x / 2
     *   x = 2 (series):  e^-1 (1 + 1 + .5 + .16667 + .041667) = e^-1 * 2.708333 = 0.996340
     *   x = 10 (CF):     e^-5 (1 + 5 + 12.5 + 20.8333 + 26.0417) = e^-5 * 65.375 = 0.440493
     *   x = 30 (CF):     e^-15 (1 + 15 + 112.5 + 562.5 + 2109.375) = e^-15 * 2800.375 = 8.5664e-4 */
    ASSERT_NEAR(ab_chi2_sf(2, 10), exp(-1) * (1 + 1 + 1.0 / 2 + 1.0 / 6 + 1.0 / 24), 1e-14);
    ASSERT_NEAR(ab_chi2_sf(2, 10), 0.99634015317265628765, 1e-13);
    ASSERT_NEAR(ab_chi2_sf(10, 10), exp(-5) * 65.375, 1e-14);
    ASSERT_NEAR(ab_chi2_sf(10, 10), 0.44049328506521241144, 1e-13);
    ASSERT_REL(ab_chi2_sf(30, 10), 0.00085664121077530039211, 1e-12);
    ASSERT_NEAR(ab_chi2_sf(18.307038053275146, 10), 0.05, 1e-13);
    ASSERT_REL(ab_chi2_sf(100, 10), 5.4497019829205293351e-17, 1e-11);
    /* edges */
    ASSERT(ab_chi2_sf(0, 3) == 1);
    ASSERT(ab_chi2_sf(-1, 3) == 1);
    ASSERT(ab_chi2_sf(INFINITY, 3) == 0);
    ASSERT(isnan(ab_chi2_sf(NAN, 3)));
    ASSERT(isnan(ab_chi2_sf(1, 0)));
    ASSERT(isnan(ab_chi2_sf(1, -2)));
    ASSERT(isnan(ab_chi2_sf(1, NAN)));
}

/* ---- sums ------------------------------------------------------------------------------------- */

typedef struct {
    double n, a, c, v;
} unit_counts;

/* The sums straight from final per-unit counts. */
static void direct_sums(const unit_counts *u, int lo, int hi, ab_sums *s)
{
    *s = (ab_sums){0};
    for (int i = lo; i < hi; i++) {
        if (u[i].n == 0) continue; /* never seen */
        double cv = u[i].a > 0;
        s->units += 1;
        s->n += u[i].n, s->nn += u[i].n * u[i].n;
        s->a += u[i].a, s->aa += u[i].a * u[i].a, s->an += u[i].a * u[i].n;
        s->c += u[i].c, s->cc += u[i].c * u[i].c, s->cn += u[i].c * u[i].n;
        s->v += u[i].v, s->vv += u[i].v * u[i].v, s->vn += u[i].v * u[i].n;
        s->conv += cv, s->cvn += cv * u[i].n;
    }
}

#define ASSERT_SUMS_EQ(x, y)                                                                       \
    do {                                                                                           \
        const ab_sums *x_ = (x), *y_ = (y);                                                        \
        ASSERT(x_->units == y_->units);                                                            \
        ASSERT(x_->n == y_->n && x_->nn == y_->nn);                                                \
        ASSERT(x_->a == y_->a && x_->aa == y_->aa && x_->an == y_->an);                            \
        ASSERT(x_->c == y_->c && x_->cc == y_->cc && x_->cn == y_->cn);                            \
        ASSERT(x_->v == y_->v && x_->vv == y_->vv && x_->vn == y_->vn);                            \
        ASSERT(x_->conv == y_->conv && x_->cvn == y_->cvn);                                        \
    } while (0)

/* Events one at a time, units interleaved in random order; values are dyadic (exact in binary), so
 * every sum is exact and must match the direct sums bit for bit, whatever the order. */
TEST(abstats_sums_incremental_and_merge)
{
    enum { U = 60, EVENTS = 5000, HALF = 30 };
    static const double values[4] = {0.5, 1.25, 2, 10.75};
    unit_counts u[U] = {{0}};
    ab_sums whole = {0}, part[2];
    memset(part, 0, sizeof part);
    rng_t r;
    rng_seed(&r, 11);
    for (int e = 0; e < EVENTS; e++) {
        int i = (int)rng_below(&r, U);
        unit_counts old = u[i], now = old;
        int kind = old.n == 0 ? 0 : (int)rng_below(&r, 3); /* a unit starts with an impression */
        if (kind == 0) now.n += 1;
        if (kind == 1) now.c += 1;
        if (kind == 2) now.a += 1, now.v += values[rng_below(&r, 4)];
        int first = old.n == 0;
        ab_sums_update(&whole, first, old.n, old.a, old.c, old.v, now.n, now.a, now.c, now.v);
        ab_sums_update(&part[i >= HALF], first, old.n, old.a, old.c, old.v, now.n, now.a, now.c, now.v);
        u[i] = now;
    }
    ab_sums d, d0, d1;
    direct_sums(u, 0, U, &d);
    direct_sums(u, 0, HALF, &d0);
    direct_sums(u, HALF, U, &d1);
    ASSERT_SUMS_EQ(&whole, &d);
    ASSERT_SUMS_EQ(&part[0], &d0);
    ASSERT_SUMS_EQ(&part[1], &d1);
    ASSERT(whole.units == U);
    ASSERT(whole.a > 0 && whole.c > 0 && whole.conv > 0 && whole.conv <= U);
    /* mergeability: the two halves add up to the whole, exactly, in either order */
    ab_sums m = part[0];
    ab_sums_add(&m, &part[1]);
    ASSERT_SUMS_EQ(&m, &whole);
    m = part[1];
    ab_sums_add(&m, &part[0]);
    ASSERT_SUMS_EQ(&m, &whole);
    /* and the report over the merged sums is the report over the whole */
    ab_est e1 = ab_ratio(m.units, m.a, m.aa, m.n, m.nn, m.an);
    ab_est e2 = ab_ratio(whole.units, whole.a, whole.aa, whole.n, whole.nn, whole.an);
    ASSERT(e1.est == e2.est && e1.var == e2.var);
}

/* A unit going back (a correction): the update with the counts swapped undoes it exactly. */
TEST(abstats_sums_update_reverts)
{
    ab_sums s = {0};
    ab_sums_update(&s, 1, 0, 0, 0, 0, 3, 1, 2, 4.5);
    ab_sums_update(&s, 1, 0, 0, 0, 0, 2, 0, 1, 0);
    ab_sums before = s;
    ab_sums_update(&s, 0, 3, 1, 2, 4.5, 4, 2, 2, 6);
    /* sums: n 3+2 -> 4+2; an 1*3 -> 2*4; conv unchanged (a > 0 before and after), cvn 3 -> 4 */
    ASSERT(s.n == 6 && s.nn == 16 + 4 && s.an == 8 && s.conv == 1 && s.cvn == 4 && s.vn == 24);
    ab_sums_update(&s, 0, 4, 2, 2, 6, 3, 1, 2, 4.5);
    ASSERT_SUMS_EQ(&s, &before);
}

/* ---- estimates -------------------------------------------------------------------------------- */

/* Control 1000 units, 100 acquire; treatment 1000 units, 130 acquire; 1 impression each, so the
 * per-unit and the per-impression rates are the same. Unpooled variances with N - 1:
 *   control    s2 = (Sxx - Sx^2/N) / (N-1) = (100 - 10) / 999 = 90/999,     var = 90/999000
 *   treatment  s2 = (130 - 16.9) / 999 = 113.1/999,                         var = 113.1/999000
 *   (the textbook p(1-p)/N gives 90/1e6 and 113.1/1e6: ours is 1000/999 times that)
 *   d = 0.13 - 0.10 = 0.03, V = 203.1/999000 = 2.033033e-4, se = 0.01425845,
 *   z = 0.03 / 0.01425845 = 2.104016, p = erfc(z / sqrt 2) = 0.03537705,
 *   95%: 0.03 -+ 1.959964 * 0.01425845 = [0.00205396, 0.05794604]
 *   rel = 0.13/0.10 - 1 = 0.3, var = vt/Rc^2 + Rt^2 vc/Rc^4 = 0.01132132 + 0.01522523 = 0.02654655,
 *   95%: 0.3 -+ 1.959964 * 0.1629311 = [-0.01933911, 0.61933911]
 *   sequential, tau = 0.01 (0.1 * control rate), tau^2 = 1e-4:
 *   half = sqrt(V (V + tau^2)/tau^2 * (2 ln 20 + ln((V + tau^2)/V))) = sqrt(2.0330e-4 * 3.0330 *
 *          (5.9915 + 1.1096)) = 0.06277868; factor 0.06277868 / (1.959964 * 0.01425845) = 2.246425 */
static void two_by_two(ab_sums *c, ab_sums *t)
{
    *c = (ab_sums){0};
    *t = (ab_sums){0};
    for (int i = 0; i < 1000; i++) {
        ab_sums_update(c, 1, 0, 0, 0, 0, 1, i < 100, 0, 0);
        ab_sums_update(t, 1, 0, 0, 0, 0, 1, i < 130, 0, 0);
    }
}

TEST(abstats_two_by_two)
{
    ab_sums c, t;
    two_by_two(&c, &t);
    ASSERT(c.units == 1000 && c.a == 100 && c.aa == 100 && c.an == 100 && c.n == 1000 && c.conv == 100);
    ab_est ec = ab_ratio(c.units, c.a, c.aa, c.n, c.nn, c.an);
    ab_est et = ab_ratio(t.units, t.a, t.aa, t.n, t.nn, t.an);
    ASSERT_NEAR(ec.est, 0.1, 1e-15);
    ASSERT_NEAR(et.est, 0.13, 1e-15);
    ASSERT_REL(ec.var, 90.0 / 999000, 1e-12);
    ASSERT_REL(et.var, 113.1 / 999000, 1e-12);
    /* per unit = per impression here */
    ab_est uc = ab_per_unit(c.units, c.a, c.aa), ut = ab_per_unit(t.units, t.a, t.aa);
    ASSERT_NEAR(uc.est, 0.1, 1e-15);
    ASSERT_REL(uc.var, ec.var, 1e-12);
    ASSERT_REL(ut.var, et.var, 1e-12);
    /* conversion (a_u > 0) is the same metric again */
    ab_est cc = ab_per_unit(c.units, c.conv, c.conv);
    ASSERT_REL(cc.var, uc.var, 1e-12);

    ab_cmp k;
    ab_compare(et, ec, 0.05, 0.01, &k);
    ASSERT_NEAR(k.diff, 0.03, 1e-15);
    ASSERT_REL(k.z, 2.1040159953562422381, 1e-11);
    ASSERT_REL(k.p, 0.035377051747660321247, 1e-10);
    ASSERT_NEAR(k.diff_lo, 0.0020539579233350555, 1e-13);
    ASSERT_NEAR(k.diff_hi, 0.057946042076664944, 1e-13);
    ASSERT_NEAR(k.rel, 0.3, 1e-14);
    ASSERT_NEAR(k.rel_lo, -0.019339107204548930, 1e-12);
    ASSERT_NEAR(k.rel_hi, 0.61933910720454893, 1e-12);
    ASSERT_NEAR(k.seq_lo, 0.03 - 0.062778675166730148, 1e-12);
    ASSERT_NEAR(k.seq_hi, 0.03 + 0.062778675166730148, 1e-12);
    ASSERT_NEAR(ab_seq_halfwidth(203.1 / 999000, 0.01, 0.05), 0.062778675166730148, 1e-12);
    double f = 2.2464245560966427491, rh = 0.3 - (-0.019339107204548930);
    ASSERT_NEAR(k.seq_rel_lo, 0.3 - f * rh, 1e-11);
    ASSERT_NEAR(k.seq_rel_hi, 0.3 + f * rh, 1e-11);
    ASSERT_EQ(k.significant, 1);
    ASSERT_EQ(k.seq_significant, 0); /* the price of peeking: 0 is inside the always-valid interval */

    /* the sequential intervals contain the fixed ones and are wider */
    ASSERT(k.seq_lo < k.diff_lo && k.seq_hi > k.diff_hi);
    ASSERT(k.seq_rel_lo < k.rel_lo && k.seq_rel_hi > k.rel_hi);
    /* at another alpha and any tau too (2 ln(1/alpha) >= z(1 - alpha/2)^2 for every alpha) */
    const double taus[] = {1e-4, 1e-3, 0.01, 0.1, 1, 100};
    const double alphas[] = {0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 0.9};
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 7; j++) {
            ab_compare(et, ec, alphas[j], taus[i], &k);
            ASSERT(k.seq_lo < k.diff_lo && k.seq_hi > k.diff_hi);
            ASSERT(k.seq_rel_lo < k.rel_lo && k.seq_rel_hi > k.rel_hi);
        }
}

/* Delta method on five units per arm, (n_u, a_u):
 *   control   (1,0) (2,1) (3,0) (4,1) (5,1): N 5, Sn 15, Sa 3, R = 0.2, nbar = 3
 *             residuals a - R n: -0.2, 0.6, -0.6, 0.2, 0; squares .04+.36+.36+.04+0 = 0.8
 *             var = 0.8 / (N-1) / (N nbar^2) = 0.2 / 45 = 1/225
 *             (header form: s2(a) = (3 - 9/5)/4 = 0.3, s2(n) = (55 - 45)/4 = 2.5,
 *              cov = (Sxn - Sa Sn/N)/4 = (11 - 9)/4 = 0.5: 0.3 - 2*0.2*0.5 + 0.04*2.5 = 0.2)
 *   treatment (2,1) (1,0) (4,2) (1,1) (2,1): N 5, Sn 10, Sa 5, R = 0.5, nbar = 2
 *             residuals 0, -0.5, 0, 0.5, 0; squares sum 0.5; var = 0.5/4/20 = 0.00625
 *             (s2(a) = (7 - 5)/4 = 0.5, s2(n) = (26 - 20)/4 = 1.5, cov = (13 - 10)/4 = 0.75:
 *              0.5 - 0.75 + 0.375 = 0.125)
 *   d = 0.3, V = 1/225 + 1/160 = 385/36000 = 0.01069444, se = 0.1034139, z = 2.900963,
 *   p = erfc(z / sqrt 2) = 0.003720182
 *   rel = 1.5, var = 0.00625/0.04 + 0.25 (1/225)/0.0016 = 0.15625 + 0.6944444 = 0.8506944
 *   per unit: control mean 0.6, s2 0.3, var 0.06; treatment mean 1, s2 0.5, var 0.1
 *   conversions: control units 2,4,5 (conv 3, cvn 2+4+5 = 11); treatment 1,3,4,5 (4, 2+4+1+2 = 9) */
TEST(abstats_delta_method_by_hand)
{
    static const double cn[5] = {1, 2, 3, 4, 5}, ca[5] = {0, 1, 0, 1, 1};
    static const double tn[5] = {2, 1, 4, 1, 2}, ta[5] = {1, 0, 2, 1, 1};
    ab_sums c = {0}, t = {0};
    for (int i = 0; i < 5; i++) {
        /* each unit one impression, then one event, at a time */
        for (int j = 0; j < cn[i]; j++)
            ab_sums_update(&c, j == 0, j, 0, 0, 0, j + 1, 0, 0, 0);
        for (int j = 0; j < ca[i]; j++)
            ab_sums_update(&c, 0, cn[i], j, 0, 0, cn[i], j + 1, 0, 0);
        for (int j = 0; j < tn[i]; j++)
            ab_sums_update(&t, j == 0, j, 0, 0, 0, j + 1, 0, 0, 0);
        for (int j = 0; j < ta[i]; j++)
            ab_sums_update(&t, 0, tn[i], j, 0, 0, tn[i], j + 1, 0, 0);
    }
    ASSERT(c.units == 5 && c.n == 15 && c.nn == 55 && c.a == 3 && c.aa == 3 && c.an == 11);
    ASSERT(t.units == 5 && t.n == 10 && t.nn == 26 && t.a == 5 && t.aa == 7 && t.an == 13);
    ASSERT(c.conv == 3 && c.cvn == 11 && t.conv == 4 && t.cvn == 9);

    ab_est ec = ab_ratio(c.units, c.a, c.aa, c.n, c.nn, c.an);
    ab_est et = ab_ratio(t.units, t.a, t.aa, t.n, t.nn, t.an);
    ASSERT_NEAR(ec.est, 0.2, 1e-15);
    ASSERT_NEAR(et.est, 0.5, 1e-15);
    ASSERT_REL(ec.var, 1.0 / 225, 1e-12);
    ASSERT_REL(et.var, 0.00625, 1e-12);

    ab_est pc = ab_per_unit(c.units, c.a, c.aa), pt = ab_per_unit(t.units, t.a, t.aa);
    ASSERT_NEAR(pc.est, 0.6, 1e-15);
    ASSERT_REL(pc.var, 0.06, 1e-12);
    ASSERT_NEAR(pt.est, 1, 1e-15);
    ASSERT_REL(pt.var, 0.1, 1e-12);

    ab_cmp k;
    ab_compare(et, ec, 0.05, 0.02, &k);
    ASSERT_NEAR(k.diff, 0.3, 1e-15);
    ASSERT_REL(k.z, 2.9009626704913690744, 1e-11);
    ASSERT_REL(k.p, 0.0037201819306482903576, 1e-10);
    ASSERT_NEAR(k.rel, 1.5, 1e-14);
    double rh = 1.959963984540054 * sqrt(0.85069444444444444444);
    ASSERT_NEAR(k.rel_lo, 1.5 - rh, 1e-12);
    ASSERT_NEAR(k.rel_hi, 1.5 + rh, 1e-12);
}

TEST(abstats_degenerate_inputs)
{
    /* fewer than 2 units, zero denominator, non-finite sums: NaN, no trap */
    ab_est e = ab_per_unit(1, 1, 1);
    ASSERT(isnan(e.est) && isnan(e.var));
    e = ab_per_unit(0, 0, 0);
    ASSERT(isnan(e.est) && isnan(e.var));
    e = ab_per_unit(NAN, 1, 1);
    ASSERT(isnan(e.est));
    e = ab_ratio(1, 1, 1, 1, 1, 1);
    ASSERT(isnan(e.est) && isnan(e.var));
    e = ab_ratio(10, 0, 0, 0, 0, 0);
    ASSERT(isnan(e.est) && isnan(e.var));
    e = ab_ratio(10, INFINITY, 0, 10, 10, 0);
    ASSERT(isnan(e.est));
    /* zero variance is an estimate, but nothing to test with */
    e = ab_ratio(10, 0, 0, 10, 10, 0);
    ASSERT(e.est == 0 && e.var == 0);
    ab_cmp k;
    ab_compare(e, e, 0.05, 0.01, &k);
    ASSERT(k.diff == 0 && isnan(k.z) && isnan(k.p) && isnan(k.diff_lo) && isnan(k.seq_lo));
    ASSERT(isnan(k.rel) && isnan(k.rel_lo) && isnan(k.seq_rel_hi));
    ASSERT(k.significant == 0 && k.seq_significant == 0);
    /* NaN arms */
    ab_est nan_est = {NAN, NAN}, ok = {0.1, 1e-4};
    ab_compare(ok, nan_est, 0.05, 0.01, &k);
    ASSERT(isnan(k.diff) && isnan(k.p) && isnan(k.seq_hi) && k.significant == 0 && k.seq_significant == 0);
    /* a control at zero: no relative lift, the absolute one stands */
    ab_est zero = {0, 1e-4};
    ab_compare(ok, zero, 0.05, 0.01, &k);
    ASSERT(isnan(k.rel) && isnan(k.rel_lo) && isnan(k.seq_rel_lo));
    ASSERT(isfinite(k.p) && isfinite(k.seq_lo));
    /* bad alpha, bad tau */
    ab_compare(ok, zero, 0, 0.01, &k);
    ASSERT(isnan(k.p) && isnan(k.diff_lo) && k.significant == 0);
    ab_compare(ok, zero, 1.5, 0.01, &k);
    ASSERT(isnan(k.p) && isnan(k.seq_lo));
    ab_compare(ok, zero, 0.05, 0, &k);
    ASSERT(isfinite(k.p) && isnan(k.seq_lo) && k.seq_significant == 0);
    ASSERT(isnan(ab_seq_halfwidth(0, 1, 0.05)));
    ASSERT(isnan(ab_seq_halfwidth(1, -1, 0.05)));
    ASSERT(isnan(ab_seq_halfwidth(1, 1, 1)));
    ASSERT(isnan(ab_seq_halfwidth(INFINITY, 1, 0.05)));
}

/* ---- SRM -------------------------------------------------------------------------------------- */

TEST(abstats_srm)
{
    double chi2;
    /* 5000 / 5200 at 50/50: expected 5100 each, chi2 = (100^2 + 100^2) / 5100 = 3.921569,
     * p = erfc(sqrt(3.921569 / 2)) = 0.04767 */
    double obs[3] = {5000, 5200, 0}, half[3] = {0.5, 0.5, 0};
    double p = ab_srm(obs, half, 2, &chi2);
    ASSERT_NEAR(chi2, 20000.0 / 5100, 1e-12);
    ASSERT_NEAR(p, 0.047670380656161452307, 1e-12);
    ASSERT(!(p < 0.001));
    /* shares need not sum to 1; a share-0 arm without units is left out */
    double w[3] = {3, 3, 0};
    ASSERT_NEAR(ab_srm(obs, w, 3, NULL), 0.047670380656161452307, 1e-12);
    /* gross: 5000 / 5600, expected 5300, chi2 = 2 * 300^2 / 5300 = 33.96226, p = 5.62e-9: flagged */
    double gross[2] = {5000, 5600};
    p = ab_srm(gross, half, 2, &chi2);
    ASSERT_NEAR(chi2, 180000.0 / 5300, 1e-11);
    ASSERT_REL(p, 5.6191374648431335686e-9, 1e-9);
    ASSERT(p < 0.001);
    /* three arms 25/25/50 (shares 1,1,2), 2500/2500/5000 exactly: chi2 0, p 1 */
    double o3[3] = {2500, 2500, 5000}, s3[3] = {1, 1, 2};
    ASSERT_NEAR(ab_srm(o3, s3, 3, &chi2), 1, 1e-15);
    ASSERT(chi2 == 0);
    /* 2400/2600/5000: chi2 = 100^2/2500 + 100^2/2500 + 0 = 8, df 2: p = exp(-4) */
    double o3b[3] = {2400, 2600, 5000};
    ASSERT_NEAR(ab_srm(o3b, s3, 3, &chi2), exp(-4), 1e-14);
    ASSERT_NEAR(chi2, 8, 1e-12);
    /* units in an arm declared at share 0: total mismatch */
    double stray[3] = {5000, 5000, 1};
    ASSERT(ab_srm(stray, half, 3, &chi2) == 0);
    ASSERT(isinf(chi2));
    /* degenerate */
    ASSERT(isnan(ab_srm(obs, half, 1, &chi2)));
    ASSERT(isnan(chi2));
    double none[2] = {0, 0};
    ASSERT(isnan(ab_srm(none, half, 2, NULL)));
    double neg[2] = {-1, 5};
    ASSERT(isnan(ab_srm(neg, half, 2, NULL)));
    double one_share[2] = {1, 0}, o1[2] = {10, 0};
    ASSERT(isnan(ab_srm(o1, one_share, 2, NULL)));
    double bad_share[2] = {NAN, 1};
    ASSERT(isnan(ab_srm(obs, bad_share, 2, NULL)));
    ASSERT(isnan(ab_srm(NULL, half, 2, NULL)));
}

/* ---- simulations ------------------------------------------------------------------------------ */

typedef struct {
    int fixed_end, fixed_any, seq_any, seq_end;
} sim_counts;

/* `experiments` experiments; every day `units` new units, each to control or treatment by a fair
 * coin, each with 1-5 impressions and its own acquisition rate per impression, uniform in
 * [0.5 p, 1.5 p] (p the arm's rate): the units differ, so impressions within a unit are correlated
 * and the delta method is needed. Per-impression rate compared after every day (peek). */
static void simulate(uint64_t seed, int experiments, int days, int units, double pc, double pt, double tau,
                     sim_counts *out)
{
    rng_t r;
    rng_seed(&r, seed);
    *out = (sim_counts){0};
    for (int x = 0; x < experiments; x++) {
        ab_sums s[2];
        memset(s, 0, sizeof s);
        int fixed_any = 0, seq_any = 0;
        ab_cmp k = {0};
        for (int d = 0; d < days; d++) {
            for (int i = 0; i < units; i++) {
                int arm = (int)rng_below(&r, 2);
                double p = (arm ? pt : pc) * (0.5 + rng_uniform(&r));
                int n = 1 + (int)rng_below(&r, 5), a = 0;
                for (int j = 0; j < n; j++)
                    a += rng_uniform(&r) < p;
                ab_sums_update(&s[arm], 1, 0, 0, 0, 0, n, a, 0, 0);
            }
            ab_est ec = ab_ratio(s[0].units, s[0].a, s[0].aa, s[0].n, s[0].nn, s[0].an);
            ab_est et = ab_ratio(s[1].units, s[1].a, s[1].aa, s[1].n, s[1].nn, s[1].an);
            ab_compare(et, ec, 0.05, tau, &k);
            fixed_any |= k.significant;
            seq_any |= k.seq_significant;
        }
        out->fixed_end += k.significant;
        out->seq_end += k.seq_significant;
        out->fixed_any += fixed_any;
        out->seq_any += seq_any;
    }
}

/* A/A: 1000 experiments, 30 daily peeks, 100 units a day (~1500 units, ~4500 impressions per arm at
 * the end), rate 0.1 in both arms. With alpha 0.05 the count of rejections is Binomial(1000, 0.05):
 * mean 50, sd sqrt(1000 * 0.05 * 0.95) = 6.89; 4 sd = 27.6, so the band is [23, 77]. */
TEST(abstats_aa_simulation)
{
    enum { X = 1000, DAYS = 30, UNITS = 100 };
    sim_counts n;
    simulate(20240611, X, DAYS, UNITS, 0.1, 0.1, 0.01, &n);
    printf("A/A %d experiments, %d daily peeks: fixed test rejects at the end %.1f%%, at any peek %.1f%%; "
           "sequential excludes 0 at any peek %.1f%% (at the end %.1f%%)\n",
           X, DAYS, 100.0 * n.fixed_end / X, 100.0 * n.fixed_any / X, 100.0 * n.seq_any / X,
           100.0 * n.seq_end / X);
    ASSERT(n.fixed_end >= 23 && n.fixed_end <= 77);
    ASSERT(n.seq_any <= 77);
    /* peeking at the fixed test inflates its error several times: why the sequential interval exists */
    ASSERT(n.fixed_any > 100);
    ASSERT(n.seq_end <= n.seq_any && n.fixed_end <= n.fixed_any);
}

/* Power: control 0.1, treatment 0.12 (+20%), 200 units a day for 30 days (~3000 units and ~9000
 * impressions per arm): se of the lift ~ 0.0047, z ~ 4.3; tau = 0.1 * control rate. */
TEST(abstats_power_simulation)
{
    enum { X = 200, DAYS = 30, UNITS = 200 };
    sim_counts n;
    simulate(77, X, DAYS, UNITS, 0.1, 0.12, 0.01, &n);
    printf("+20%% effect, %d experiments: fixed test rejects at the end %.1f%%; sequential excludes 0 by the "
           "end %.1f%% (at the end %.1f%%)\n",
           X, 100.0 * n.fixed_end / X, 100.0 * n.seq_any / X, 100.0 * n.seq_end / X);
    ASSERT(n.fixed_end >= X * 8 / 10);
    ASSERT(n.seq_any >= X * 8 / 10);
}
