/* core/lbfgs.h - limited-memory BFGS for full-batch training of a model's parameter slab (I-AutoRec,
 * as Sedhain et al. 2015 trained it), with a strong-Wolfe line search.
 *
 * Method (Nocedal & Wright, "Numerical Optimization", 2nd ed.): the direction is d = -H g, with H the
 * L-BFGS inverse-Hessian estimate from the last m pairs (s = x_{k+1} - x_k, y = g_{k+1} - g_k) applied
 * by the two-loop recursion (Algorithm 7.4), scaled by gamma = s'y / y'y (7.20). A pair with
 * s'y <= 1e-10 |s| |y| is not stored (the estimate stays positive definite; when the history was full,
 * its oldest pair, whose slot the rejected one took, is dropped). The step length comes
 * from a line search for the strong Wolfe conditions (Algorithms 3.5 and 3.6: bracketing, then zoom by
 * safeguarded cubic interpolation):
 *     f(x + a d) <= f(x) + c1 a g'd          (sufficient decrease, "Armijo")
 *     |g(x + a d)'d| <= c2 |g'd|             (curvature)
 * The first iteration tries a = min(1, 1/|g|_1), later ones a = 1. When the search runs out of
 * evaluations it takes the best point found that satisfies sufficient decrease; when it found none,
 * the minimisation stops (LBFGS_LINESEARCH) at the last accepted point. A direction that is not a
 * descent direction (g'd >= 0, from rounding) resets the history and retries along -g.
 *
 * Precision: x, g and the history are float arrays (the model's slab); every inner product and norm is
 * summed in double, and f is a double.
 *
 * Cost per iteration besides the objective: 2m + 1 passes over n floats for the direction (each axpy
 * of the two-loop recursion fused with the next inner product), two per line-search trial, one for the
 * new pair (s, y and their three inner products together). The passes run on `threads` threads, in
 * chunks of 16384 elements; each chunk's partial sum is a double, and the partials are added in chunk
 * order: the iterates are the same, bit for bit, for any number of threads (and for the same inputs).
 *
 * Memory: lbfgs_minimize allocates (2m + 7) n floats for the run and frees them before returning.
 *
 * Letters: n parameters, m history pairs.
 */
#ifndef RECD_LBFGS_H
#define RECD_LBFGS_H

#include <stddef.h>

/* The objective: f(x) returned, its gradient written to g (n). x (n) is read only and may not be the
 * caller's array (the minimiser evaluates at trial points in its own buffers). A non-finite return
 * (NAN, INFINITY: e.g. an overflow) makes the line search shorten the step. */
typedef double (*lbfgs_eval_fn)(void *ctx, const float *x, float *g);

/* Called after each accepted iteration (iter = 1, 2, ...) with the new point (x, g: borrowed for
 * the call), its f and the evaluations used so far. Return 0 to go on, nonzero to stop
 * (LBFGS_STOPPED). */
typedef int (*lbfgs_iter_fn)(void *ctx, int iter, double f, const float *x, const float *g, int evals);

typedef struct lbfgs_params {
    int m;            /* history pairs >= 1; 10 */
    int max_iter;     /* iterations >= 1; 500 */
    int max_evals;    /* evaluations in all (0: no limit besides max_iter); 0 */
    int max_ls;       /* evaluations per line search >= 1; 20 */
    double c1, c2;    /* Wolfe constants, 0 < c1 < c2 < 1; 1e-4, 0.9 */
    double gtol;      /* converged when max |g_j| <= gtol (0: not checked, saves a pass); 1e-5 */
    double ftol;      /* converged when |f_prev - f| <= ftol * max(1, |f|); 1e-12 */
    int threads;      /* threads of the vector passes (1..64); 1 */
} lbfgs_params;

void lbfgs_params_default(lbfgs_params *p);

typedef enum {
    LBFGS_CONVERGED_GTOL = 0, /* gradient small enough */
    LBFGS_CONVERGED_FTOL,     /* f stopped decreasing */
    LBFGS_MAX_ITER,           /* max_iter iterations done */
    LBFGS_MAX_EVALS,          /* max_evals reached */
    LBFGS_STOPPED,            /* the iteration callback asked to stop */
    LBFGS_LINESEARCH,         /* no step with sufficient decrease along a descent direction */
} lbfgs_status;

/* Name of a status ("gtol", "ftol", "max_iter", "max_evals", "stopped", "linesearch"; "?" else). */
const char *lbfgs_status_name(int status);

typedef struct lbfgs_result {
    int status;       /* lbfgs_status */
    int iters;        /* accepted iterations */
    int evals;        /* objective evaluations, the first one included */
    double f;         /* f at the returned x */
} lbfgs_result;

/* Minimise fg from x (n, in and out: the last accepted point on return, also when stopped early).
 * cb may be NULL. res (may be NULL) gets the outcome. RC_OK (whatever the stopping reason: see
 * res->status), RC_EINVAL (bad params: message names the field; n == 0; f(x0) not finite), RC_ENOMEM;
 * on an error x is unchanged. */
int lbfgs_minimize(float *x, size_t n, lbfgs_eval_fn fg, void *ctx, const lbfgs_params *p, lbfgs_iter_fn cb,
                   void *cb_ctx, lbfgs_result *res);

#endif
