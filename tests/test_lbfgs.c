/* tests/test_lbfgs.c - core/lbfgs on a quadratic (exact minimiser known) and the Rosenbrock function,
 * the line search's Wolfe conditions, determinism; core/rprop by hand and on a quadratic. */
#include "core/lbfgs.h"
#include "core/rprop.h"

#include <math.h>
#include <stdint.h>

#include "tests/testlib.h"

/* f(x) = 1/2 sum_j a_j (x_j - c_j)^2 with a_j = 1 + j (condition number n), minimiser c_j = j / n */
typedef struct {
    size_t n;
    int evals;
} quad_ctx;

static double quad_fg(void *ctx, const float *x, float *g)
{
    quad_ctx *q = ctx;
    double f = 0;
    for (size_t j = 0; j < q->n; j++) {
        double a = 1.0 + (double)j, c = (double)j / (double)q->n, r = (double)x[j] - c;
        f += 0.5 * a * r * r;
        g[j] = (float)(a * r);
    }
    q->evals++;
    return f;
}

TEST(lbfgs_quadratic)
{
    enum { N = 50 };
    float x[N];
    for (int j = 0; j < N; j++) x[j] = 3.0f;
    quad_ctx q = {N, 0};
    lbfgs_params p;
    lbfgs_params_default(&p);
    p.gtol = 1e-4;
    lbfgs_result r;
    ASSERT_OK(lbfgs_minimize(x, N, quad_fg, &q, &p, NULL, NULL, &r));
    ASSERT_EQ(r.status, LBFGS_CONVERGED_GTOL);
    ASSERT_EQ(r.evals, q.evals);
    ASSERT(r.iters < 100); /* CG-like on a quadratic: far fewer than steepest descent's thousands */
    for (int j = 0; j < N; j++) ASSERT_NEAR(x[j], (double)j / N, 1e-4);
    ASSERT(r.f < 1e-8);
}

static double rosen_fg(void *ctx, const float *xf, float *g)
{
    size_t n = *(size_t *)ctx;
    double f = 0;
    for (size_t j = 0; j < n; j++) g[j] = 0;
    for (size_t j = 0; j + 1 < n; j++) { /* extended Rosenbrock: sum 100 (x_{j+1} - x_j^2)^2 + (1 - x_j)^2 */
        double x = xf[j], y = xf[j + 1], t = y - x * x;
        f += 100 * t * t + (1 - x) * (1 - x);
        g[j] += (float)(-400 * t * x - 2 * (1 - x));
        g[j + 1] += (float)(200 * t);
    }
    return f;
}

typedef struct {
    int calls;
    double last_f;
    int decreasing;
} watch_ctx;

static int watch_cb(void *ctx, int iter, double f, const float *x, const float *g, int evals)
{
    watch_ctx *w = ctx;
    (void)x;
    (void)g;
    if (iter != w->calls + 1 || evals < iter) w->decreasing = 0;
    if (w->calls > 0 && !(f < w->last_f)) w->decreasing = 0; /* sufficient decrease: f strictly falls */
    w->calls++;
    w->last_f = f;
    return 0;
}

TEST(lbfgs_rosenbrock)
{
    for (size_t n = 2; n <= 10; n += 8) {
        float x[10];
        for (size_t j = 0; j < n; j++) x[j] = (j % 2 == 0) ? -1.2f : 1.0f;
        lbfgs_params p;
        lbfgs_params_default(&p);
        p.gtol = 1e-3;
        p.max_iter = 1000;
        lbfgs_result r;
        watch_ctx w = {0, 0, 1};
        ASSERT_OK(lbfgs_minimize(x, n, rosen_fg, &n, &p, watch_cb, &w, &r));
        ASSERT(r.status == LBFGS_CONVERGED_GTOL || r.status == LBFGS_CONVERGED_FTOL);
        ASSERT_EQ(w.calls, r.iters);
        ASSERT(w.decreasing);
        ASSERT(r.iters < 200);
        for (size_t j = 0; j < n; j++) ASSERT_NEAR(x[j], 1.0, 2e-3);
        ASSERT(r.f < 1e-5);
    }
}

/* The same start gives the same iterates, bit for bit, on any number of threads; max_iter and
 * max_evals stop it. */
TEST(lbfgs_deterministic_and_stops)
{
    enum { N = 20 };
    float x1[N], x2[N];
    for (int j = 0; j < N; j++) x1[j] = x2[j] = (float)((j * 7919) % 13) / 5.0f - 1.0f;
    size_t n = N;
    lbfgs_params p;
    lbfgs_params_default(&p);
    p.max_iter = 25;
    lbfgs_result r1, r2;
    ASSERT_OK(lbfgs_minimize(x1, N, rosen_fg, &n, &p, NULL, NULL, &r1));
    p.threads = 3; /* the passes' threads change nothing */
    ASSERT_OK(lbfgs_minimize(x2, N, rosen_fg, &n, &p, NULL, NULL, &r2));
    p.threads = 1;
    ASSERT_EQ(r1.status, LBFGS_MAX_ITER);
    ASSERT_EQ(r1.iters, 25);
    ASSERT_EQ(r1.evals, r2.evals);
    ASSERT(memcmp(x1, x2, sizeof x1) == 0);
    /* max_evals stops it, bad params are refused with the field named */
    p.max_evals = 5;
    ASSERT_OK(lbfgs_minimize(x1, N, rosen_fg, &n, &p, NULL, NULL, &r1));
    ASSERT_EQ(r1.status, LBFGS_MAX_EVALS);
    ASSERT(r1.evals <= 5);
    p.max_evals = 0;
    p.c2 = 1e-5;
    ASSERT_RC(lbfgs_minimize(x1, N, rosen_fg, &n, &p, NULL, NULL, &r1), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "c1");
    ASSERT_STR_EQ(lbfgs_status_name(LBFGS_LINESEARCH), "linesearch");
}

static int stop_at_3(void *ctx, int iter, double f, const float *x, const float *g, int evals)
{
    (void)ctx, (void)f, (void)x, (void)g, (void)evals;
    return iter >= 3;
}

/* f = +inf beyond |x| > 2: the line search shortens the step instead of failing */
static double walled_fg(void *ctx, const float *x, float *g)
{
    (void)ctx;
    if (fabsf(x[0]) > 2.0f) {
        g[0] = 0;
        return INFINITY;
    }
    double r = x[0] - 1.5;
    g[0] = (float)(2 * r);
    return r * r;
}

TEST(lbfgs_callback_stop_and_infinite_steps)
{
    enum { N = 8 };
    float x[N];
    for (int j = 0; j < N; j++) x[j] = 2.0f;
    quad_ctx q = {N, 0};
    lbfgs_params p;
    lbfgs_params_default(&p);
    lbfgs_result r;
    ASSERT_OK(lbfgs_minimize(x, N, quad_fg, &q, &p, stop_at_3, NULL, &r));
    ASSERT_EQ(r.status, LBFGS_STOPPED);
    ASSERT_EQ(r.iters, 3);
    float w = -1.9f;
    p.gtol = 1e-5;
    ASSERT_OK(lbfgs_minimize(&w, 1, walled_fg, NULL, &p, NULL, NULL, &r));
    ASSERT_NEAR(w, 1.5, 1e-4);
}

TEST(rprop_by_hand)
{
    /* eta+ 1.2, eta- 0.5, step0 0.1, min 0.01, max 0.15; x0 = 0; gradients +1, +1, +1, -1, -1:
     *   1: gp 0 -> no change of step: x = -0.1, step 0.1
     *   2: same sign: step 0.12, x = -0.22
     *   3: same sign: step 0.144, x = -0.364
     *   4: sign flip: step 0.072, no move (g set to 0), gp = 0
     *   5: gp 0: step stays 0.072, x = -0.364 + 0.072 = -0.292 */
    rprop_params p = {1.2, 0.5, 0.1, 0.01, 0.15};
    ASSERT_OK(rprop_params_check(&p));
    float x = 0, step, gp;
    rprop_init(&p, &step, &gp, 1);
    float g[] = {1, 1, 1, -1, -1};
    double want_x[] = {-0.1, -0.22, -0.364, -0.364, -0.292}, want_s[] = {0.1, 0.12, 0.144, 0.072, 0.072};
    size_t flips = 0;
    for (int t = 0; t < 5; t++) {
        flips += rprop_step(&p, &x, &g[t], &step, &gp, 1);
        ASSERT_NEAR(x, want_x[t], 1e-6);
        ASSERT_NEAR(step, want_s[t], 1e-6);
    }
    ASSERT_EQ(flips, 1);
    /* step_max caps the growth */
    for (int t = 0; t < 10; t++) rprop_step(&p, &x, &g[4], &step, &gp, 1);
    ASSERT_NEAR(step, 0.15, 1e-7);
    p.eta_minus = 1.5;
    ASSERT_RC(rprop_params_check(&p), RC_EINVAL);
    ASSERT_CONTAINS(rc_errmsg(), "eta_minus");
}

TEST(rprop_quadratic)
{
    enum { N = 30 };
    float x[N], g[N], step[N], gp[N];
    for (int j = 0; j < N; j++) x[j] = 3.0f;
    rprop_params p;
    rprop_params_default(&p);
    rprop_init(&p, step, gp, N);
    quad_ctx q = {N, 0};
    double f = 0;
    for (int t = 0; t < 300; t++) {
        f = quad_fg(&q, x, g);
        rprop_step(&p, x, g, step, gp, N);
    }
    ASSERT(f < 1e-6);
    for (int j = 0; j < N; j++) ASSERT_NEAR(x[j], (double)j / N, 1e-3);
}

/* Many chunks of the vector passes (n = 100003): 1 and 3 threads give the same iterates, bit for bit. */
TEST(lbfgs_threads_bitwise)
{
    size_t n = 100003;
    float *x1 = malloc(n * sizeof(float)), *x2 = malloc(n * sizeof(float));
    for (size_t j = 0; j < n; j++) x1[j] = x2[j] = (float)((j * 7919) % 13) / 5.0f - 1.0f;
    quad_ctx q = {n, 0};
    lbfgs_params p;
    lbfgs_params_default(&p);
    p.max_iter = 12;
    p.m = 4; /* the ring wraps */
    p.gtol = 0;
    lbfgs_result r1, r2;
    float *g0 = malloc(n * sizeof(float));
    double f0 = quad_fg(&q, x1, g0);
    free(g0);
    ASSERT_OK(lbfgs_minimize(x1, n, quad_fg, &q, &p, NULL, NULL, &r1));
    p.threads = 3;
    ASSERT_OK(lbfgs_minimize(x2, n, quad_fg, &q, &p, NULL, NULL, &r2));
    ASSERT_EQ(r1.iters, 12);
    ASSERT_EQ(r1.evals, r2.evals);
    ASSERT(r1.f == r2.f);
    ASSERT(memcmp(x1, x2, n * sizeof(float)) == 0);
    ASSERT(r1.f < 0.05 * f0); /* it went down a long way */
    free(x1);
    free(x2);
}
