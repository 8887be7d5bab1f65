/* core/abstats.h - the statistics of an online A/B experiment (DESIGN.md section 6), from mergeable sums.
 *
 * The unit of randomisation is the unit (a user): every metric is a ratio of per-unit sums, and every
 * estimate is computed from per-arm sums over units of each numerator x_u, denominator n_u, their
 * squares and cross-products (ab_sums). Sums add: the sums of several replicas (or days) are the sum of
 * their sums (ab_sums_add), and the report over them is exact.
 *
 * For an arm with N units:
 *   per unit       mean of x_u:            est = Sx / N,  var = s2(x) / N          (s2: sample variance)
 *   per impression ratio R = Sx / Sn, delta method (Deng, Knoblich, Lu 2018, "Applying the Delta Method
 *                  in Metric Analytics"): var(R) = (s2(x) - 2 R cov(x,n) + R^2 s2(n)) / (N nbar^2)
 * Two arms (treatment t, control c; independent samples):
 *   absolute lift  d = Rt - Rc, se = sqrt(vt + vc), 100(1-alpha)% interval d -+ z(1-alpha/2) se,
 *                  z = d / se, two-sided p = 2 (1 - Phi(|z|));
 *   relative lift  r = Rt / Rc - 1, delta method: var(r) = vt / Rc^2 + Rt^2 vc / Rc^4;
 *   sequential     an always-valid interval for d: the mixture SPRT with a normal mixing distribution
 *                  N(0, tau^2) (Johari, Pekelis, Walsh 2017, "Always Valid Inference"; Robbins' normal
 *                  mixture): with V = se^2, d -+ sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) +
 *                  log((V + tau^2) / V))). Looking at it after every batch of data keeps the
 *                  probability that it ever excludes the true d below alpha. It always contains, and is
 *                  wider than, the fixed-horizon interval. The relative sequential interval scales the
 *                  relative fixed one's half-width by the same factor (seq half-width / fixed half-width).
 *   SRM            Pearson chi-square of the units per arm against the declared shares (k - 1 degrees
 *                  of freedom); the report flags p < 0.001.
 * Degenerate inputs (an arm with fewer than 2 units, a zero denominator, zero variance) give NaN
 * estimates or intervals, never a division trap: the report renders NaN as null.
 *
 * Pure functions, no allocation, thread-safe.
 */
#ifndef RECD_ABSTATS_H
#define RECD_ABSTATS_H

/* Per-arm sufficient statistics: sums over the arm's units u of per-unit counts. n_u is the unit's
 * impressions (answered requests), a_u acquisitions, c_u clicks, v_u the summed acquisition value,
 * conv_u = 1 when a_u > 0. All doubles so that sums of sums stay exact up to 2^53. */
typedef struct ab_sums {
    double units;         /* N */
    double n, nn;         /* sum n_u, sum n_u^2 */
    double a, aa, an;     /* sum a_u, sum a_u^2, sum a_u n_u */
    double c, cc, cn;     /* clicks */
    double v, vv, vn;     /* acquisition value */
    double conv;          /* sum conv_u (conv_u^2 = conv_u; sum conv_u n_u is cvn) */
    double cvn;           /* sum conv_u n_u */
} ab_sums;

/* dst += src, field by field. */
void ab_sums_add(ab_sums *dst, const ab_sums *src);

/* A unit's counts changing from (n0, a0, c0, v0) to (n1, a1, c1, v1) - one impression or one event -
 * moves the arm's sums by exactly the difference of its terms; `new_unit` adds 1 to units (its first
 * impression in this arm). This is how the event store keeps the sums incrementally. */
void ab_sums_update(ab_sums *s, int new_unit, double n0, double a0, double c0, double v0, double n1, double a1,
                    double c1, double v1);

/* An estimate and its variance. */
typedef struct ab_est {
    double est, var;
} ab_est;

/* Mean per unit of x from N, sum x, sum x^2. */
ab_est ab_per_unit(double N, double sx, double sxx);
/* Ratio sum x / sum n from N, sum x, sum x^2, sum n, sum n^2, sum x n (delta method). */
ab_est ab_ratio(double N, double sx, double sxx, double sn, double snn, double sxn);

/* A treatment compared with the control. Intervals at level 1 - alpha. */
typedef struct ab_cmp {
    double diff, diff_lo, diff_hi; /* absolute lift t - c */
    double rel, rel_lo, rel_hi;    /* relative lift t / c - 1 */
    double z, p;                   /* two-sided test of diff = 0 */
    double seq_lo, seq_hi;         /* always-valid interval of diff */
    double seq_rel_lo, seq_rel_hi; /* always-valid interval of rel */
    int significant;               /* p < alpha */
    int seq_significant;           /* the sequential interval excludes 0 */
} ab_cmp;

/* Compare t with c. tau > 0 is the mixing standard deviation of the sequential test, in the metric's
 * units (e.g. 0.1 * the control rate: the size of effect the test is tuned for). It is the standard
 * deviation of the normal prior N(0, tau^2) over the true lift d that the likelihood ratio is averaged
 * over: any tau keeps the interval valid; for a given variance V of diff it is narrowest when
 * tau^2 ~ 8 V (at alpha 0.05 it is then 1.55 times the fixed one; 1.87 at tau^2 = V, 1.67 at
 * tau^2 = 100 V): a tau far from the effects seen costs width, never validity.
 * What cannot be computed is NaN, its flag 0: all but diff and rel when V = t.var + c.var is not > 0
 * or alpha is not in (0, 1); rel and its intervals when c.est == 0; the sequential intervals when tau
 * is not > 0. */
void ab_compare(ab_est t, ab_est c, double alpha, double tau, ab_cmp *out);

/* Half-width of the always-valid interval for an estimate of variance var (see above). */
double ab_seq_halfwidth(double var, double tau, double alpha);

/* Standard normal CDF, and its inverse for 0 < p < 1 (Acklam's algorithm refined by one Halley step:
 * relative error below 1e-12 down to p = 1e-300; 1e-9 below; -inf at 0, inf at 1, NaN outside). */
double ab_norm_cdf(double z);
double ab_norm_quantile(double p);

/* Upper tail P(X > x) of a chi-square with df degrees of freedom (regularized upper incomplete gamma,
 * series or continued fraction: absolute error below 1e-12 for df <= 1000, growing with df beyond,
 * 3e-12 at df 10^4). 1 for x <= 0, 0 for x = inf, NaN for a NaN x or df not > 0. */
double ab_chi2_sf(double x, double df);

/* Sample-ratio mismatch: observed[i] units in arm i, shares[i] the declared traffic shares (they need
 * not sum to 1: normalised here). Returns the p-value and sets *chi2 (may be NULL); NaN when k < 2,
 * there is no unit, a count or share is negative or not finite, or fewer than 2 shares are > 0. An arm
 * with share 0 is left out unless it has units: then *chi2 = inf and p = 0. */
double ab_srm(const double *observed, const double *shares, int k, double *chi2);

#endif
