/* core/lbfgs.c - L-BFGS with a strong-Wolfe line search. See core/lbfgs.h. */
#include "core/lbfgs.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

void lbfgs_params_default(lbfgs_params *p)
{
    p->m = 10;
    p->max_iter = 500;
    p->max_evals = 0;
    p->max_ls = 20;
    p->c1 = 1e-4;
    p->c2 = 0.9;
    p->gtol = 1e-5;
    p->ftol = 1e-12;
    p->threads = 1;
}

const char *lbfgs_status_name(int status)
{
    switch (status) {
    case LBFGS_CONVERGED_GTOL: return "gtol";
    case LBFGS_CONVERGED_FTOL: return "ftol";
    case LBFGS_MAX_ITER: return "max_iter";
    case LBFGS_MAX_EVALS: return "max_evals";
    case LBFGS_STOPPED: return "stopped";
    case LBFGS_LINESEARCH: return "linesearch";
    default: return "?";
    }
}

/* ---- vector operations ------------------------------------------------------------------------
 * Every pass over the n floats is cut into chunks of VCH elements; threads take chunks t, t + T, ...;
 * a reduction keeps one double partial per chunk (4 interleaved sums inside it, index order) and adds
 * the partials in chunk order, so results do not depend on the number of threads. Passes are fused
 * where the two-loop recursion allows (the axpy of one pair with the dot of the next). */

enum { VCH = 1 << 14 };

typedef enum {
    V_DOT,       /* p0 = a . b */
    V_STEP,      /* o1 = a + s b */
    V_NEG_DOT,   /* o1 = -a;               p0 = b . o1 (b may be NULL) */
    V_AXPY_DOT,  /* o1 = (o1 + s a) * s2;  p0 = b . o1 (b may be NULL) */
    V_PAIR,      /* o1 = a - b, o2 = c - d; p0 = o1 . o2, p1 = o2 . o2, p2 = o1 . o1 */
    V_MAXABS,    /* p0 = max |a| */
    V_NORM1,     /* p0 = sum |a| */
} vop_kind;

typedef struct vctx {
    size_t n, nch;     /* elements, chunks */
    int T;             /* threads */
    double *part;      /* (3, nch) partials */
    /* the pass in flight */
    vop_kind op;
    float *o1, *o2;
    const float *a, *b, *c, *d;
    float s, s2;
} vctx;

static double dot_range(const float *restrict a, const float *restrict b, size_t j0, size_t j1)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t j = j0;
    for (; j + 4 <= j1; j += 4) {
        s0 += (double)a[j] * b[j];
        s1 += (double)a[j + 1] * b[j + 1];
        s2 += (double)a[j + 2] * b[j + 2];
        s3 += (double)a[j + 3] * b[j + 3];
    }
    for (; j < j1; j++) s0 += (double)a[j] * b[j];
    return (s0 + s1) + (s2 + s3);
}

static void vchunk(vctx *v, size_t ch)
{
    const size_t j0 = ch * VCH, j1 = j0 + VCH < v->n ? j0 + VCH : v->n;
    float *restrict o1 = v->o1, *restrict o2 = v->o2;
    const float *restrict a = v->a, *restrict b = v->b, *restrict c = v->c, *restrict d = v->d;
    const float s = v->s, s2 = v->s2;
    double *p0 = v->part + ch, *p1 = p0 + v->nch, *p2 = p1 + v->nch;
    switch (v->op) {
    case V_DOT:
        *p0 = dot_range(a, b, j0, j1);
        break;
    case V_STEP:
        for (size_t j = j0; j < j1; j++) o1[j] = a[j] + s * b[j];
        break;
    case V_NEG_DOT:
        for (size_t j = j0; j < j1; j++) o1[j] = -a[j];
        *p0 = b ? dot_range(b, o1, j0, j1) : 0;
        break;
    case V_AXPY_DOT:
        if (s2 == 1.0f)
            for (size_t j = j0; j < j1; j++) o1[j] += s * a[j];
        else
            for (size_t j = j0; j < j1; j++) o1[j] = (o1[j] + s * a[j]) * s2;
        *p0 = b ? dot_range(b, o1, j0, j1) : 0;
        break;
    case V_PAIR:
        for (size_t j = j0; j < j1; j++) {
            o1[j] = a[j] - b[j];
            o2[j] = c[j] - d[j];
        }
        *p0 = dot_range(o1, o2, j0, j1);
        *p1 = dot_range(o2, o2, j0, j1);
        *p2 = dot_range(o1, o1, j0, j1);
        break;
    case V_MAXABS: {
        float m = 0;
        for (size_t j = j0; j < j1; j++) {
            float x = fabsf(a[j]);
            m = x > m ? x : m;
        }
        *p0 = m;
        break;
    }
    case V_NORM1: {
        double t = 0;
        for (size_t j = j0; j < j1; j++) t += fabsf(a[j]);
        *p0 = t;
        break;
    }
    }
}

typedef struct {
    vctx *v;
    int t;
} vworker_arg;

static void *vworker(void *arg)
{
    vworker_arg *w = arg;
    for (size_t ch = (size_t)w->t; ch < w->v->nch; ch += (size_t)w->v->T) vchunk(w->v, ch);
    return NULL;
}

/* Run the pass described in v on its threads (a thread that cannot start runs inline: same result). */
static void vrun(vctx *v)
{
    enum { MAXT = 64 };
    pthread_t th[MAXT];
    vworker_arg args[MAXT];
    int started[MAXT] = {0};
    int T = v->T;
    for (int t = 1; t < T; t++) {
        args[t] = (vworker_arg){v, t};
        started[t] = pthread_create(&th[t], NULL, vworker, &args[t]) == 0;
        if (!started[t]) vworker(&args[t]);
    }
    args[0] = (vworker_arg){v, 0};
    vworker(&args[0]);
    for (int t = 1; t < T; t++)
        if (started[t]) pthread_join(th[t], NULL);
}

/* the sum (or max) of partial row r, in chunk order */
static double vsum(const vctx *v, int r)
{
    double s = 0;
    for (size_t ch = 0; ch < v->nch; ch++) s += v->part[(size_t)r * v->nch + ch];
    return s;
}

static double vmax(const vctx *v)
{
    double m = 0;
    for (size_t ch = 0; ch < v->nch; ch++) m = v->part[ch] > m ? v->part[ch] : m;
    return m;
}

static double vdot(vctx *v, const float *a, const float *b)
{
    v->op = V_DOT;
    v->a = a;
    v->b = b;
    vrun(v);
    return vsum(v, 0);
}

/* out = x0 + a d */
static void vstep(vctx *v, float *out, const float *x0, double a, const float *d)
{
    v->op = V_STEP;
    v->o1 = out;
    v->a = x0;
    v->b = d;
    v->s = (float)a;
    vrun(v);
}

/* y = (y + a x) * scale, then b . y (0 when b is NULL) */
static double vaxpy_dot(vctx *v, float *y, double a, const float *x, double scale, const float *b)
{
    v->op = V_AXPY_DOT;
    v->o1 = y;
    v->a = x;
    v->b = b;
    v->s = (float)a;
    v->s2 = (float)scale;
    vrun(v);
    return vsum(v, 0);
}

/* y = -x, then b . y */
static double vneg_dot(vctx *v, float *y, const float *x, const float *b)
{
    v->op = V_NEG_DOT;
    v->o1 = y;
    v->a = x;
    v->b = b;
    vrun(v);
    return vsum(v, 0);
}

static double vmaxabs(vctx *v, const float *a)
{
    v->op = V_MAXABS;
    v->a = a;
    vrun(v);
    return vmax(v);
}

static double vnorm1(vctx *v, const float *a)
{
    v->op = V_NORM1;
    v->a = a;
    vrun(v);
    return vsum(v, 0);
}

/* ---- line search ---- */

/* A point on the search line: its step a, f, directional derivative g'd and (for lo and trial) the
 * buffers holding x and g. */
typedef struct {
    double a, f, gtd;
    float *x, *g;
} lpoint;

/* Minimiser of the cubic through (a0, f0, d0) and (a1, f1, d1) (Nocedal & Wright 3.59); NAN when it
 * has no real minimiser. */
static double cubic_min(double a0, double f0, double d0, double a1, double f1, double d1)
{
    if (a0 == a1) return NAN;
    double t1 = d0 + d1 - 3.0 * (f0 - f1) / (a0 - a1);
    double disc = t1 * t1 - d0 * d1;
    if (!(disc >= 0)) return NAN;
    double t2 = sqrt(disc);
    if (a1 < a0) t2 = -t2;
    double den = d1 - d0 + 2.0 * t2;
    if (den == 0) return NAN;
    return a1 - (a1 - a0) * (d1 + t2 - t1) / den;
}

typedef struct {
    size_t n;
    vctx *v;
    lbfgs_eval_fn fg;
    void *ctx;
    const lbfgs_params *p;
    int evals;
    int max_evals; /* 0: none */
} lsearch;

static void eval_at(lsearch *ls, const lpoint *base, const float *d, lpoint *t)
{
    vstep(ls->v, t->x, base->x, t->a, d);
    t->f = ls->fg(ls->ctx, t->x, t->g);
    ls->evals++;
    t->gtd = isfinite(t->f) ? vdot(ls->v, t->g, d) : NAN;
}

/* Search along d from base (base->gtd < 0), first trial step a0. spare[0..1] are two point buffers
 * other than base's. On success (1) *out is the accepted point (one of the spares, its buffers
 * included); 0 when no point with sufficient decrease was found. */
static int line_search(lsearch *ls, const lpoint *base, const float *d, double a0, lpoint spare[2], lpoint *out)
{
    const lbfgs_params *p = ls->p;
    const double f0 = base->f, gtd0 = base->gtd;
    /* buffers: lo and trial are distinct spares, or lo is the base itself (a = 0) */
    lpoint lo = *base, hi = {0}, prev = *base;
    lo.a = prev.a = 0; /* steps are measured from base */
    float *bx[2] = {spare[0].x, spare[1].x}, *bg[2] = {spare[0].g, spare[1].g};
    int trial_buf = 0, prev_buf = -1; /* which spare the trial goes in; which holds prev (-1: base) */
    int n_ls = 0, zoom = 0;
    double a = a0;
    while (!zoom) { /* bracketing phase (Algorithm 3.5) */
        if (n_ls >= p->max_ls || (ls->max_evals && ls->evals >= ls->max_evals)) goto exhausted;
        lpoint t = {a, 0, 0, bx[trial_buf], bg[trial_buf]};
        eval_at(ls, base, d, &t);
        n_ls++;
        if (!isfinite(t.f) || t.f > f0 + p->c1 * a * gtd0 || (n_ls > 1 && t.f >= prev.f)) {
            lo = prev;
            hi = t;
            zoom = 1;
            trial_buf = prev_buf == 0 ? 1 : 0; /* keep lo's buffer */
            break;
        }
        if (fabs(t.gtd) <= -p->c2 * gtd0) {
            *out = t;
            return 1;
        }
        if (t.gtd >= 0) {
            lo = t;
            hi = prev;
            zoom = 1;
            trial_buf = 1 - trial_buf;
            break;
        }
        /* extrapolate: the cubic's minimiser beyond a, within [a + 0.01 (a - a_prev), 10 a] */
        double lo_b = a + 0.01 * (a - prev.a), hi_b = 10.0 * a;
        double an = cubic_min(prev.a, prev.f, prev.gtd, t.a, t.f, t.gtd);
        if (!isfinite(an) || an > hi_b) an = hi_b;
        if (an < lo_b) an = lo_b;
        prev = t;
        prev_buf = trial_buf;
        trial_buf = 1 - trial_buf;
        a = an;
    }
    /* zoom phase (Algorithm 3.6): lo satisfies sufficient decrease with the lowest f so far; hi is
     * the other end of an interval that holds a point satisfying the strong Wolfe conditions */
    for (;;) {
        if (n_ls >= p->max_ls || (ls->max_evals && ls->evals >= ls->max_evals)) goto exhausted;
        double lower = lo.a < hi.a ? lo.a : hi.a, upper = lo.a < hi.a ? hi.a : lo.a, w = upper - lower;
        if (!(w > 0) || w <= 1e-16 * upper) goto exhausted;
        double an = isfinite(hi.f) ? cubic_min(lo.a, lo.f, lo.gtd, hi.a, hi.f, hi.gtd) : NAN;
        if (!isfinite(an) || an < lower + 0.1 * w || an > upper - 0.1 * w) an = lower + 0.5 * w;
        lpoint t = {an, 0, 0, bx[trial_buf], bg[trial_buf]};
        eval_at(ls, base, d, &t);
        n_ls++;
        if (!isfinite(t.f) || t.f > f0 + p->c1 * an * gtd0 || t.f >= lo.f) {
            hi = t; /* its buffer is free again for the next trial */
            continue;
        }
        if (fabs(t.gtd) <= -p->c2 * gtd0) {
            *out = t;
            return 1;
        }
        if (t.gtd * (hi.a - lo.a) >= 0) hi = lo;
        lo = t;
        trial_buf = 1 - trial_buf; /* the trial's buffer now holds lo */
    }
exhausted:
    if (lo.a > 0 && lo.x != base->x) { /* sufficient decrease, not the curvature condition */
        *out = lo;
        return 1;
    }
    return 0;
}

/* ---- the minimiser ---- */

int lbfgs_minimize(float *x, size_t n, lbfgs_eval_fn fg, void *ctx, const lbfgs_params *p, lbfgs_iter_fn cb,
                   void *cb_ctx, lbfgs_result *res)
{
    if (res) memset(res, 0, sizeof *res);
    if (!x || !fg || !p || n == 0) return rc_error(RC_EINVAL, "lbfgs: no parameters or no objective");
    if (p->m < 1) return rc_error(RC_EINVAL, "lbfgs: m must be >= 1 (got %d)", p->m);
    if (p->max_iter < 1) return rc_error(RC_EINVAL, "lbfgs: max_iter must be >= 1 (got %d)", p->max_iter);
    if (p->max_ls < 1) return rc_error(RC_EINVAL, "lbfgs: max_ls must be >= 1 (got %d)", p->max_ls);
    if (p->max_evals < 0) return rc_error(RC_EINVAL, "lbfgs: max_evals must be >= 0 (got %d)", p->max_evals);
    if (!(p->c1 > 0 && p->c1 < p->c2 && p->c2 < 1))
        return rc_error(RC_EINVAL, "lbfgs: need 0 < c1 < c2 < 1 (got c1 %g, c2 %g)", p->c1, p->c2);
    if (!(p->gtol >= 0) || !(p->ftol >= 0)) return rc_error(RC_EINVAL, "lbfgs: gtol and ftol must be >= 0");
    const int m = p->m;
    size_t nbuf = (size_t)(2 * m + 7);
    if (n > SIZE_MAX / sizeof(float) / nbuf) return rc_error(RC_ENOMEM, "lbfgs: %zu parameters are too many", n);
    vctx vc;
    memset(&vc, 0, sizeof vc);
    vc.n = n;
    vc.nch = (n + VCH - 1) / VCH;
    vc.T = p->threads < 1 ? 1 : p->threads > 64 ? 64 : p->threads;
    float *mem = malloc(nbuf * n * sizeof(float));
    double *rho = malloc((size_t)m * 2 * sizeof(double));
    vc.part = malloc(3 * vc.nch * sizeof(double));
    if (!mem || !rho || !vc.part) {
        free(mem);
        free(rho);
        free(vc.part);
        return rc_error(RC_ENOMEM, "lbfgs: out of memory for %zu floats", nbuf * n);
    }
    double *alpha = rho + m;
    float *S = mem, *Y = mem + (size_t)m * n; /* (m, n) each: ring of pairs */
    float *d = mem + 2 * (size_t)m * n;       /* (n) */
    float *pool = d + n;                      /* 3 point buffers (x, g), (n) each */
    lpoint cur = {0, 0, 0, pool, pool + n};
    lpoint spare[2] = {{0, 0, 0, pool + 2 * n, pool + 3 * n}, {0, 0, 0, pool + 4 * n, pool + 5 * n}};
    memcpy(cur.x, x, n * sizeof(float));
    lsearch ls = {n, &vc, fg, ctx, p, 0, p->max_evals};
    cur.f = fg(ctx, cur.x, cur.g);
    ls.evals = 1;
    int rc = RC_OK, status = LBFGS_MAX_ITER, iters = 0;
    if (!isfinite(cur.f)) {
        rc = rc_error(RC_EINVAL, "lbfgs: the objective is not finite at the starting point (%g)", cur.f);
        goto out;
    }
    int hist = 0, newest = -1; /* pairs stored, index of the newest in the ring */
    double gamma = 1.0;
    if (p->gtol > 0 && vmaxabs(&vc, cur.g) <= p->gtol) {
        status = LBFGS_CONVERGED_GTOL;
        goto done;
    }
    while (iters < p->max_iter) {
        if (p->max_evals && ls.evals >= p->max_evals) {
            status = LBFGS_MAX_EVALS;
            break;
        }
        /* d = -H g by the two-loop recursion, each axpy fused with the next dot product: loop 1 goes
         * from the newest pair to the oldest (alpha_i = rho_i s_i . q; q -= alpha_i y_i), q is scaled
         * by gamma, loop 2 from the oldest to the newest (beta = rho_i y_i . q; q += (alpha_i - beta)
         * s_i); the last pass gives g . d */
        if (hist == 0) {
            cur.gtd = vneg_dot(&vc, d, cur.g, cur.g);
        } else {
            int i = newest;
            double dt = vneg_dot(&vc, d, cur.g, S + (size_t)i * n); /* s_newest . q */
            for (int k = 0; k < hist; k++) {
                alpha[i] = rho[i] * dt;
                int older = (i - 1 + m) % m, last = k == hist - 1;
                /* the last axpy (i is the oldest pair) also scales by gamma; its dot is y_oldest . q,
                 * loop 2's first */
                const float *next = last ? Y + (size_t)i * n : S + (size_t)older * n;
                dt = vaxpy_dot(&vc, d, -alpha[i], Y + (size_t)i * n, last ? gamma : 1.0, next);
                i = older;
            }
            i = (newest - hist + 1 + m) % m; /* oldest */
            for (int k = 0; k < hist; k++) {
                double beta = rho[i] * dt;
                int newer = (i + 1) % m, last = k == hist - 1;
                const float *next = last ? cur.g : Y + (size_t)newer * n;
                dt = vaxpy_dot(&vc, d, alpha[i] - beta, S + (size_t)i * n, 1.0, next);
                i = newer;
            }
            cur.gtd = dt;
        }
        if (!(cur.gtd < 0)) { /* not a descent direction (rounding): forget the history */
            if (hist == 0) {
                status = LBFGS_CONVERGED_GTOL;
                break;
            }
            hist = 0;
            continue;
        }
        double a0 = 1.0;
        if (hist == 0) {
            double g1 = vnorm1(&vc, cur.g);
            a0 = g1 > 1.0 ? 1.0 / g1 : 1.0;
        }
        lpoint acc;
        if (!line_search(&ls, &cur, d, a0, spare, &acc)) {
            if (p->max_evals && ls.evals >= p->max_evals) {
                status = LBFGS_MAX_EVALS;
                break;
            }
            if (hist > 0) { /* retry along steepest descent */
                hist = 0;
                continue;
            }
            status = LBFGS_LINESEARCH;
            break;
        }
        /* the new pair, into the ring slot after newest */
        int slot = (newest + 1) % m;
        float *s = S + (size_t)slot * n, *y = Y + (size_t)slot * n;
        vc.op = V_PAIR;
        vc.o1 = s;
        vc.o2 = y;
        vc.a = acc.x;
        vc.b = cur.x;
        vc.c = acc.g;
        vc.d = cur.g;
        vrun(&vc);
        double sy = vsum(&vc, 0), yy = vsum(&vc, 1), ss = vsum(&vc, 2);
        if (sy > 1e-10 * sqrt(ss * yy) && yy > 0) {
            rho[slot] = 1.0 / sy;
            gamma = sy / yy;
            newest = slot;
            if (hist < m) hist++;
        } else if (hist == m) {
            hist--; /* the slot held the oldest pair, now overwritten: forget it */
        }
        double f_prev = cur.f;
        /* the accepted point's buffers become cur's; cur's old buffers take its place as a spare */
        for (int k = 0; k < 2; k++)
            if (spare[k].x == acc.x) {
                spare[k].x = cur.x;
                spare[k].g = cur.g;
            }
        cur = acc;
        iters++;
        if (cb && cb(cb_ctx, iters, cur.f, cur.x, cur.g, ls.evals)) {
            status = LBFGS_STOPPED;
            break;
        }
        if (p->gtol > 0 && vmaxabs(&vc, cur.g) <= p->gtol) {
            status = LBFGS_CONVERGED_GTOL;
            break;
        }
        if (fabs(f_prev - cur.f) <= p->ftol * fmax(1.0, fabs(cur.f))) {
            status = LBFGS_CONVERGED_FTOL;
            break;
        }
        if (iters >= p->max_iter) status = LBFGS_MAX_ITER;
    }
done:
    memcpy(x, cur.x, n * sizeof(float));
    if (res) {
        res->status = status;
        res->iters = iters;
        res->evals = ls.evals;
        res->f = cur.f;
    }
out:
    free(mem);
    free(rho);
    free(vc.part);
    return rc;
}
