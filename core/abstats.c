/* core/abstats.c - see core/abstats.h. */
#include "core/abstats.h"

#include <math.h>
#include <stddef.h>

/* ---- sums ------------------------------------------------------------------------------------- */

void ab_sums_add(ab_sums *dst, const ab_sums *src)
{
    dst->units += src->units;
    dst->n += src->n;
    dst->nn += src->nn;
    dst->a += src->a;
    dst->aa += src->aa;
    dst->an += src->an;
    dst->c += src->c;
    dst->cc += src->cc;
    dst->cn += src->cn;
    dst->v += src->v;
    dst->vv += src->vv;
    dst->vn += src->vn;
    dst->conv += src->conv;
    dst->cvn += src->cvn;
}

/* Each sum moves by (new term - old term). With integer counts every product and difference is an
 * integer below 2^53, so the update is exact and the order of updates does not matter. */
void ab_sums_update(ab_sums *s, int new_unit, double n0, double a0, double c0, double v0, double n1, double a1,
                    double c1, double v1)
{
    double conv0 = a0 > 0 ? 1.0 : 0.0, conv1 = a1 > 0 ? 1.0 : 0.0;
    if (new_unit) s->units += 1;
    s->n += n1 - n0;
    s->nn += n1 * n1 - n0 * n0;
    s->a += a1 - a0;
    s->aa += a1 * a1 - a0 * a0;
    s->an += a1 * n1 - a0 * n0;
    s->c += c1 - c0;
    s->cc += c1 * c1 - c0 * c0;
    s->cn += c1 * n1 - c0 * n0;
    s->v += v1 - v0;
    s->vv += v1 * v1 - v0 * v0;
    s->vn += v1 * n1 - v0 * n0;
    s->conv += conv1 - conv0;
    s->cvn += conv1 * n1 - conv0 * n0;
}

/* ---- estimates -------------------------------------------------------------------------------- */

ab_est ab_per_unit(double N, double sx, double sxx)
{
    ab_est e = {NAN, NAN};
    if (!(N >= 2) || !isfinite(N) || !isfinite(sx) || !isfinite(sxx)) return e;
    double mean = sx / N;
    /* s2 = (sum x^2 - N mean^2) / (N - 1); rounding can make a zero variance slightly negative */
    double s2 = (sxx - sx * mean) / (N - 1);
    if (s2 < 0) s2 = 0;
    e.est = mean;
    e.var = s2 / N;
    return e;
}

/* Delta method. Since sum (x_u - R n_u) = 0 when R = Sx / Sn,
 *   s2(x) - 2 R cov(x,n) + R^2 s2(n) = sum (x_u - R n_u)^2 / (N - 1)
 *                                    = (Sxx - 2 R Sxn + R^2 Snn) / (N - 1),
 * the form used here (one fewer cancellation than three separate centred moments). */
ab_est ab_ratio(double N, double sx, double sxx, double sn, double snn, double sxn)
{
    ab_est e = {NAN, NAN};
    if (!(N >= 2) || !isfinite(N) || !isfinite(sx) || !isfinite(sxx) || !isfinite(sn) || !isfinite(snn) ||
        !isfinite(sxn) || sn == 0)
        return e;
    double R = sx / sn, nbar = sn / N;
    double ss = sxx - 2 * R * sxn + R * R * snn;
    if (ss < 0) ss = 0;
    e.est = R;
    e.var = ss / (N - 1) / (N * nbar * nbar);
    return e;
}

/* ---- comparison ------------------------------------------------------------------------------- */

double ab_seq_halfwidth(double var, double tau, double alpha)
{
    if (!(var > 0) || !isfinite(var) || !(tau > 0) || !isfinite(tau) || !(alpha > 0 && alpha < 1)) return NAN;
    double t2 = tau * tau;
    /* V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)) */
    double w = var * (1 + var / t2) * (-2 * log(alpha) + log1p(t2 / var));
    return sqrt(w);
}

void ab_compare(ab_est t, ab_est c, double alpha, double tau, ab_cmp *out)
{
    out->diff = t.est - c.est;
    out->rel = c.est != 0 ? t.est / c.est - 1 : NAN;
    out->diff_lo = out->diff_hi = out->rel_lo = out->rel_hi = NAN;
    out->z = out->p = NAN;
    out->seq_lo = out->seq_hi = out->seq_rel_lo = out->seq_rel_hi = NAN;
    out->significant = out->seq_significant = 0;

    double V = t.var + c.var;
    if (!(V > 0) || !isfinite(V) || !isfinite(out->diff) || !(alpha > 0 && alpha < 1)) return;
    double se = sqrt(V), zq = ab_norm_quantile(1 - alpha / 2), half = zq * se;
    out->diff_lo = out->diff - half;
    out->diff_hi = out->diff + half;
    out->z = out->diff / se;
    out->p = erfc(fabs(out->z) / sqrt(2.0)); /* 2 (1 - Phi(|z|)) without the cancellation */
    out->significant = out->p < alpha;

    double rel_half = NAN;
    if (isfinite(out->rel)) {
        double c2 = c.est * c.est;
        double vr = t.var / c2 + t.est * t.est * c.var / (c2 * c2);
        if (vr >= 0 && isfinite(vr)) {
            rel_half = zq * sqrt(vr);
            out->rel_lo = out->rel - rel_half;
            out->rel_hi = out->rel + rel_half;
        }
    }

    double seq = ab_seq_halfwidth(V, tau, alpha);
    if (isfinite(seq)) {
        out->seq_lo = out->diff - seq;
        out->seq_hi = out->diff + seq;
        out->seq_significant = out->seq_lo > 0 || out->seq_hi < 0;
        if (isfinite(rel_half)) {
            double f = seq / half; /* > 1: see the header */
            out->seq_rel_lo = out->rel - f * rel_half;
            out->seq_rel_hi = out->rel + f * rel_half;
        }
    }
}

/* ---- distributions ---------------------------------------------------------------------------- */

double ab_norm_cdf(double z)
{
    return 0.5 * erfc(-z / sqrt(2.0));
}

/* Peter J. Acklam's rational approximation of the normal quantile (relative error 1.15e-9), for
 * p <= 0.5, then one Halley step on Phi(x) - p, which brings it to full double precision. p > 0.5 is
 * mirrored (1 - p is exact there), so the refinement always works on a lower tail, where erfc is
 * accurate relative to the tiny probability. */
static double acklam_lower(double p)
{
    static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                3.754408661907416e+00};
    const double p_low = 0.02425;
    double x;
    if (p < p_low) {
        double q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    /* Halley: e = Phi(x) - p, u = e / phi(x), x -= u / (1 + x u / 2). Below p ~ 1e-308 (x < -37.5)
     * phi(x) underflows: Acklam's x stands there (relative error 1e-9). */
    double e = 0.5 * erfc(-x / sqrt(2.0)) - p;
    double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
    if (!isfinite(u)) return x;
    return x - u / (1 + x * u / 2);
}

double ab_norm_quantile(double p)
{
    if (!(p >= 0 && p <= 1)) return NAN;
    if (p == 0) return -INFINITY;
    if (p == 1) return INFINITY;
    if (p > 0.5) return -acklam_lower(1 - p);
    return acklam_lower(p);
}

/* Regularized upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a), a > 0, x > 0.
 * x < a + 1: the series of P(a, x) = x^a e^-x / Gamma(a+1) * sum_k x^k / ((a+1)...(a+k)), Q = 1 - P
 * (P < ~0.6 there, so no precision is lost in absolute terms);
 * otherwise the continued fraction of Q (modified Lentz), as in Numerical Recipes' gcf. */
static double gamma_q(double a, double x)
{
    const double eps = 1e-16, tiny = 1e-300;
    double lpre = a * log(x) - x - lgamma(a);
    if (x < a + 1) {
        double ap = a, term = 1 / a, sum = term;
        for (int k = 0; k < 1000; k++) {
            ap += 1;
            term *= x / ap;
            sum += term;
            if (fabs(term) < fabs(sum) * eps) break;
        }
        double P = sum * exp(lpre);
        return P >= 1 ? 0 : 1 - P;
    }
    double b = x + 1 - a, C = 1 / tiny, D = 1 / b, h = D;
    for (int i = 1; i < 1000; i++) {
        double an = -i * (i - a);
        b += 2;
        D = an * D + b;
        if (fabs(D) < tiny) D = tiny;
        C = b + an / C;
        if (fabs(C) < tiny) C = tiny;
        D = 1 / D;
        double del = D * C;
        h *= del;
        if (fabs(del - 1) < eps) break;
    }
    return exp(lpre) * h;
}

double ab_chi2_sf(double x, double df)
{
    if (isnan(x) || !(df > 0) || !isfinite(df)) return NAN;
    if (x <= 0) return 1;
    if (isinf(x)) return 0;
    return gamma_q(df / 2, x / 2);
}

/* An arm with share 0 takes part only when it has units: then the expected count is 0 and the
 * mismatch is total (chi2 = inf, p = 0). */
double ab_srm(const double *observed, const double *shares, int k, double *chi2)
{
    if (chi2) *chi2 = NAN;
    if (!observed || !shares || k < 2) return NAN;
    double tot = 0, stot = 0;
    int kk = 0, stray = 0;
    for (int i = 0; i < k; i++) {
        if (!(observed[i] >= 0) || !isfinite(observed[i]) || !(shares[i] >= 0) || !isfinite(shares[i]))
            return NAN;
        tot += observed[i];
        stot += shares[i];
        kk += shares[i] > 0;
        stray += shares[i] == 0 && observed[i] > 0;
    }
    if (!(tot > 0) || !(stot > 0)) return NAN;
    if (stray) {
        if (chi2) *chi2 = INFINITY;
        return 0;
    }
    if (kk < 2) return NAN;
    double x2 = 0;
    for (int i = 0; i < k; i++) {
        if (shares[i] == 0) continue;
        double e = tot * shares[i] / stot, d = observed[i] - e;
        x2 += d * d / e;
    }
    if (chi2) *chi2 = x2;
    return ab_chi2_sf(x2, kk - 1);
}
