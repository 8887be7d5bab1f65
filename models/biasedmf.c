/* models/biasedmf.c - biased matrix factorisation (models/biasedmf.h): parameters, the naive reference
 * kernels, the objective, SGD and ALS training, snapshot I/O and the `rate` / `recommend` capabilities.
 * The fast kernels are in models/biasedmf_kern.c.
 *
 * SGD runs on one thread (a pass over ML-1M's 810K training ratings at F = 128 takes about 0.1 s), in
 * an order shuffled per epoch from the seed, so a seed gives the same model whatever `threads` says;
 * ALS solves rows on `threads` workers, each row on its own, so its result does not depend on them
 * either. The epoch with the best validation RMSE is kept (a copy of the slab). */
#include "models/biasedmf.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"
#include "models/biasedmf_kern.h"

#define BMF_MAX_FACTORS 4096

/* ---- hyperparameters ------------------------------------------------------------------------------ */

void biasedmf_hparams_default(biasedmf_hparams *hp)
{
    *hp = (biasedmf_hparams){.factors = 128,
                             .solver = "sgd",
                             .epochs = 100,
                             .patience = 5,
                             .lr = 0.005,
                             .lr_decay = 1.0,
                             .reg = 0.04,
                             .reg_bias = 0.01,
                             .init_std = 0.1};
}

int biasedmf_hparams_check(const biasedmf_hparams *hp)
{
    if (hp->factors < 1 || hp->factors > BMF_MAX_FACTORS)
        return rc_error(RC_EINVAL, "biasedmf: factors %d not in 1..%d", hp->factors, BMF_MAX_FACTORS);
    if (!hp->solver || (strcmp(hp->solver, "sgd") != 0 && strcmp(hp->solver, "als") != 0))
        return rc_error(RC_EINVAL, "biasedmf: solver '%s' is not \"sgd\" or \"als\"", hp->solver ? hp->solver : "(null)");
    if (hp->epochs < 1 || hp->epochs > 1000000)
        return rc_error(RC_EINVAL, "biasedmf: epochs %d not in 1..1000000", hp->epochs);
    if (hp->patience < 0) return rc_error(RC_EINVAL, "biasedmf: patience %d < 0", hp->patience);
    int sgd = strcmp(hp->solver, "sgd") == 0;
    if (sgd && !(hp->lr > 0 && hp->lr <= 10)) return rc_error(RC_EINVAL, "biasedmf: lr %g not in (0, 10]", hp->lr);
    if (sgd && !(hp->lr_decay > 0 && hp->lr_decay <= 1))
        return rc_error(RC_EINVAL, "biasedmf: lr_decay %g not in (0, 1]", hp->lr_decay);
    if (!(hp->reg >= 0 && hp->reg <= 1e6)) return rc_error(RC_EINVAL, "biasedmf: reg %g not in [0, 1e6]", hp->reg);
    if (!sgd && !(hp->reg > 0))
        return rc_error(RC_EINVAL, "biasedmf: reg must be > 0 with solver \"als\" (a user with fewer ratings than "
                                   "factors has no unique solution otherwise)");
    if (!(hp->reg_bias >= 0 && hp->reg_bias <= 1e6))
        return rc_error(RC_EINVAL, "biasedmf: reg_bias %g not in [0, 1e6]", hp->reg_bias);
    if (!(hp->init_std >= 0 && hp->init_std <= 10))
        return rc_error(RC_EINVAL, "biasedmf: init_std %g not in [0, 10]", hp->init_std);
    return RC_OK;
}

/* ---- parameters ------------------------------------------------------------------------------------- */

size_t bmf_nparams(int64_t U, int64_t N, int F)
{
    return 1 + (size_t)U + (size_t)N + ((size_t)U + (size_t)N) * (size_t)F;
}

static void set_views(biasedmf *m)
{
    size_t U = (size_t)m->U, N = (size_t)m->N, F = (size_t)m->F;
    m->mu = m->slab;
    m->bu = m->slab + 1;
    m->bi = m->slab + 1 + U;
    m->P = m->slab + 1 + U + N;
    m->Q = m->slab + 1 + U + N + U * F;
}

bmf_params bmf_params_of(biasedmf *m)
{
    size_t U = (size_t)m->U, N = (size_t)m->N, F = (size_t)m->F;
    float *s = m->slab;
    return (bmf_params){.mu = s, .bu = s + 1, .bi = s + 1 + U, .P = s + 1 + U + N, .Q = s + 1 + U + N + U * F,
                        .U = m->U, .N = m->N, .F = m->F};
}

biasedmf *biasedmf_new(int64_t U, int64_t N, int F, double mean, double init_std, uint64_t seed)
{
    if (U < 1 || N < 1 || U > INT32_MAX || N > INT32_MAX || F < 1 || F > BMF_MAX_FACTORS) {
        rc_error(RC_EINVAL, "biasedmf: bad sizes U=%lld N=%lld F=%d (U, N in 1..2^31-1, F in 1..%d)", (long long)U,
                 (long long)N, F, BMF_MAX_FACTORS);
        return NULL;
    }
    if (!isfinite(mean) || !(init_std >= 0 && init_std <= 10)) {
        rc_error(RC_EINVAL, "biasedmf: mean %g or init_std %g invalid", mean, init_std);
        return NULL;
    }
    size_t n = bmf_nparams(U, N, F), bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    biasedmf *m = calloc(1, sizeof *m);
    float *slab = m ? aligned_alloc(64, bytes) : NULL;
    if (!slab) {
        free(m);
        rc_error(RC_ENOMEM, "biasedmf: out of memory (%zu parameters)", n);
        return NULL;
    }
    m->U = U;
    m->N = N;
    m->F = F;
    m->slab = slab;
    set_views(m);
    bmf_params w = bmf_params_of(m);
    *w.mu = (float)mean;
    memset(w.bu, 0, (size_t)(U + N) * sizeof(float)); /* bu and bi are adjacent */
    rng_t r;
    rng_seed(&r, seed);
    for (size_t k = 0; k < (size_t)(U + N) * (size_t)F; k++) w.P[k] = (float)(init_std * rng_normal(&r));
    return m;
}

void biasedmf_free(biasedmf *m)
{
    if (!m) return;
    free(m->slab);
    rb_free(&m->base);
    free(m);
}

float *biasedmf_slab(biasedmf *m) { return m ? m->slab : NULL; }

/* ---- naive references of the fast kernels (models/biasedmf_kern.c) --------------------------------- */

float bmf_dot_ref(const float *a, const float *b, int F)
{
    float s = 0.0f;
    for (int f = 0; f < F; f++) s += a[f] * b[f];
    return s;
}

double bmf_sgd_pass_ref(const bmf_params *w, const bmf_rating *t, int64_t n, float lr, float reg, float reg_bias)
{
    const int F = w->F;
    double sse = 0.0;
    for (int64_t k = 0; k < n; k++) {
        float *p = w->P + (size_t)t[k].u * (size_t)F, *q = w->Q + (size_t)t[k].i * (size_t)F;
        float *bu = &w->bu[t[k].u], *bi = &w->bi[t[k].i];
        float e = t[k].r - (*w->mu + *bu + *bi + bmf_dot_ref(p, q, F));
        sse += (double)e * e;
        float bu0 = *bu, bi0 = *bi;
        *bu += lr * (e - reg_bias * bu0);
        *bi += lr * (e - reg_bias * bi0);
        for (int f = 0; f < F; f++) {
            float pf = p[f], qf = q[f];
            p[f] += lr * (e * qf - reg * pf);
            q[f] += lr * (e * pf - reg * qf);
        }
    }
    return sse;
}

/* ---- objective ----------------------------------------------------------------------------------- */

double bmf_objective(const biasedmf *m, const rb_rows *by_user, double reg, double reg_bias, double *grad,
                     double *sse_out)
{
    const size_t U = (size_t)m->U, N = (size_t)m->N, F = (size_t)m->F;
    /* gradient views, slab order: dmu (1) | dbu (U) | dbi (N) | dP (U,F) | dQ (N,F) */
    double *dmu = grad, *dbu = grad ? grad + 1 : NULL, *dbi = grad ? grad + 1 + U : NULL,
           *dP = grad ? grad + 1 + U + N : NULL, *dQ = grad ? grad + 1 + U + N + U * F : NULL;
    if (grad) memset(grad, 0, bmf_nparams(m->U, m->N, m->F) * sizeof *grad);
    double loss = 0.0, sse = 0.0;
    for (size_t u = 0; u < U; u++)
        for (int64_t k = by_user->offsets[u]; k < by_user->offsets[u + 1]; k++) {
            size_t i = (size_t)by_user->col[k];
            const float *p = m->P + u * F, *q = m->Q + i * F;
            double dot = 0.0, pp = 0.0, qq = 0.0;
            for (size_t f = 0; f < F; f++) {
                dot += (double)p[f] * q[f];
                pp += (double)p[f] * p[f];
                qq += (double)q[f] * q[f];
            }
            double e = (double)by_user->val[k] - ((double)*m->mu + m->bu[u] + m->bi[i] + dot);
            sse += e * e;
            loss += e * e + reg * (pp + qq) + reg_bias * ((double)m->bu[u] * m->bu[u] + (double)m->bi[i] * m->bi[i]);
            if (!grad) continue;
            *dmu += -2 * e;
            dbu[u] += -2 * e + 2 * reg_bias * m->bu[u];
            dbi[i] += -2 * e + 2 * reg_bias * m->bi[i];
            for (size_t f = 0; f < F; f++) {
                dP[u * F + f] += -2 * e * q[f] + 2 * reg * p[f];
                dQ[i * F + f] += -2 * e * p[f] + 2 * reg * q[f];
            }
        }
    if (sse_out) *sse_out = sse;
    return loss;
}

/* ---- ALS ------------------------------------------------------------------------------------------- */

/* The row's design: its ratings (cols, vals, n), the other side's factors (Qo, (M,F)) and biases (bo, (M)),
 * and the row's own factors and bias to overwrite. */
typedef struct als_row {
    const int32_t *col;
    const float *val;
    int64_t n;
    const float *Qo, *bo;
    float *p, *b;
} als_row;

static als_row als_row_of(const bmf_params *w, const rb_rows *rows, int side, int64_t r)
{
    int64_t k0 = rows->offsets[r];
    size_t F = (size_t)w->F;
    return (als_row){.col = rows->col + k0,
                     .val = rows->val + k0,
                     .n = rows->offsets[r + 1] - k0,
                     .Qo = side == 0 ? w->Q : w->P,
                     .bo = side == 0 ? w->bi : w->bu,
                     .p = (side == 0 ? w->P : w->Q) + (size_t)r * F,
                     .b = (side == 0 ? w->bu : w->bi) + r};
}

void bmf_als_solve_ref(const bmf_params *w, const rb_rows *rows, int side, int64_t row, double reg,
                       double reg_bias, double *x)
{
    const int F = w->F, K = F + 1;
    als_row a = als_row_of(w, rows, side, row);
    double A[K][K + 1]; /* A is (K, K+1): the normal equations with the right side as the last column */
    memset(A, 0, sizeof A);
    for (int64_t k = 0; k < a.n; k++) {
        const float *q = a.Qo + (size_t)a.col[k] * (size_t)F;
        double y = (double)a.val[k] - *w->mu - a.bo[a.col[k]];
        for (int r = 0; r < K; r++) {
            double xr = r < F ? q[r] : 1.0;
            for (int c = 0; c < K; c++) A[r][c] += xr * (c < F ? q[c] : 1.0);
            A[r][K] += xr * y;
        }
    }
    if (a.n == 0) {
        memset(x, 0, (size_t)K * sizeof *x);
        return;
    }
    for (int r = 0; r < K; r++) A[r][r] += (double)a.n * (r < F ? reg : reg_bias);
    for (int c = 0; c < K; c++) { /* Gaussian elimination, partial pivoting */
        int piv = c;
        for (int r = c + 1; r < K; r++)
            if (fabs(A[r][c]) > fabs(A[piv][c])) piv = r;
        for (int j = 0; j <= K; j++) {
            double t = A[c][j];
            A[c][j] = A[piv][j];
            A[piv][j] = t;
        }
        for (int r = c + 1; r < K; r++) {
            double f = A[r][c] / A[c][c];
            for (int j = c; j <= K; j++) A[r][j] -= f * A[c][j];
        }
    }
    for (int r = K - 1; r >= 0; r--) {
        double s = A[r][K];
        for (int j = r + 1; j < K; j++) s -= A[r][j] * x[j];
        x[r] = s / A[r][r];
    }
}

typedef struct als_ctx {
    const bmf_params *w;
    const rb_rows *rows;
    int side;
    double reg, reg_bias;
    int64_t max_n;         /* the longest row */
    _Atomic int64_t next;  /* next chunk of rows to take */
    _Atomic int failed;    /* a worker ran out of memory */
} als_ctx;

#define ALS_CHUNK 16

static void *als_worker(void *arg)
{
    als_ctx *c = arg;
    const bmf_params *w = c->w;
    const int F = w->F, K = F + 1;
    const int64_t rows = c->rows->rows;
    double *X = malloc((size_t)(c->max_n > 0 ? c->max_n : 1) * (size_t)K * sizeof *X); /* X is (n, K) */
    double *A = malloc((size_t)K * (size_t)K * sizeof *A);                                /* A is (K, K) */
    double *b = malloc((size_t)K * sizeof *b);                                            /* b is (K) */
    if (!X || !A || !b) {
        atomic_store(&c->failed, 1);
        goto done;
    }
    for (;;) {
        int64_t r0 = atomic_fetch_add(&c->next, ALS_CHUNK);
        if (r0 >= rows) break;
        int64_t r1 = r0 + ALS_CHUNK < rows ? r0 + ALS_CHUNK : rows;
        for (int64_t r = r0; r < r1; r++) {
            als_row a = als_row_of(w, c->rows, c->side, r);
            if (a.n == 0) {
                memset(a.p, 0, (size_t)F * sizeof *a.p);
                *a.b = 0;
                continue;
            }
            memset(b, 0, (size_t)K * sizeof *b);
            for (int64_t k = 0; k < a.n; k++) {
                const float *q = a.Qo + (size_t)a.col[k] * (size_t)F;
                double *x = X + (size_t)k * (size_t)K, y = (double)a.val[k] - *w->mu - a.bo[a.col[k]];
                for (int f = 0; f < F; f++) {
                    x[f] = q[f];
                    b[f] += q[f] * y;
                }
                x[F] = 1.0;
                b[F] += y;
            }
            /* A = X^T X (lower triangle) */
            cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, K, (int)a.n, 1.0, X, K, 0.0, A, K);
            for (int f = 0; f < F; f++) A[(size_t)f * K + f] += (double)a.n * c->reg;
            A[(size_t)F * K + F] += (double)a.n * c->reg_bias;
            if (bmf_chol_solve(A, b, K) != 0) continue; /* cannot happen with reg > 0: keep the old values */
            for (int f = 0; f < F; f++) a.p[f] = (float)b[f];
            *a.b = (float)b[F];
        }
    }
done:
    free(X);
    free(A);
    free(b);
    return NULL;
}

int bmf_als_sweep(const bmf_params *w, const rb_rows *rows, int side, double reg, double reg_bias, int threads)
{
    if (!(reg > 0) || !(reg_bias >= 0))
        return rc_error(RC_EINVAL, "biasedmf: ALS needs reg > 0 and reg_bias >= 0 (got %g, %g)", reg, reg_bias);
    als_ctx c = {.w = w, .rows = rows, .side = side, .reg = reg, .reg_bias = reg_bias};
    for (int64_t r = 0; r < rows->rows; r++)
        if (rows->offsets[r + 1] - rows->offsets[r] > c.max_n) c.max_n = rows->offsets[r + 1] - rows->offsets[r];
    atomic_init(&c.next, 0);
    atomic_init(&c.failed, 0);
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    pthread_t tid[64];
    int started = 0;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tid[started], NULL, als_worker, &c) != 0) break;
        started++;
    }
    als_worker(&c);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    if (atomic_load(&c.failed)) return rc_error(RC_ENOMEM, "biasedmf: out of memory (ALS scratch)");
    return RC_OK;
}

/* ---- training -------------------------------------------------------------------------------------- */

static int check_rows(const rb_rows *r, int64_t rows, int64_t cols, const char *what)
{
    if (r->rows != rows || !r->offsets || r->offsets[0] != 0 || r->offsets[rows] != r->nnz || r->nnz < 0 ||
        (r->nnz > 0 && (!r->col || !r->val)))
        return rc_error(RC_EINVAL, "biasedmf: %s rows do not match the model (%lld rows, model %lld)", what,
                        (long long)r->rows, (long long)rows);
    for (int64_t i = 0; i < rows; i++)
        if (r->offsets[i + 1] < r->offsets[i])
            return rc_error(RC_EINVAL, "biasedmf: %s offsets decrease at row %lld", what, (long long)i);
    for (int64_t k = 0; k < r->nnz; k++)
        if (r->col[k] < 0 || r->col[k] >= cols || !isfinite(r->val[k]))
            return rc_error(RC_EINVAL, "biasedmf: %s rating %lld has column %d outside [0,%lld) or is not finite",
                            what, (long long)k, (int)r->col[k], (long long)cols);
    return RC_OK;
}

/* Fisher-Yates over ratings. */
static void shuffle_ratings(rng_t *r, bmf_rating *t, int64_t n)
{
    for (int64_t k = n - 1; k > 0; k--) {
        int64_t j = (int64_t)rng_below(r, (uint64_t)k + 1);
        bmf_rating x = t[k];
        t[k] = t[j];
        t[j] = x;
    }
}

int biasedmf_train(biasedmf *m, const biasedmf_hparams *hp, const rb_train_input *in, double *valid_rmse,
                   int *epochs_run)
{
    if (valid_rmse) *valid_rmse = NAN;
    if (epochs_run) *epochs_run = 0;
    int rc = biasedmf_hparams_check(hp);
    if (rc) return rc;
    if (!m || !m->slab) return rc_error(RC_EINVAL, "biasedmf: train needs a model made by biasedmf_new");
    if (hp->factors != m->F)
        return rc_error(RC_EINVAL, "biasedmf: hparams.factors %d but the model has %d", hp->factors, m->F);
    if ((rc = check_rows(&in->by_user, m->U, m->N, "by_user")) || (rc = check_rows(&in->by_item, m->N, m->U, "by_item")))
        return rc;
    if (in->by_user.nnz != in->by_item.nnz)
        return rc_error(RC_EINVAL, "biasedmf: by_user holds %lld ratings, by_item %lld", (long long)in->by_user.nnz,
                        (long long)in->by_item.nnz);
    if (in->valid.n < 0 || (in->valid.n > 0 && (!in->valid.user || !in->valid.item || !in->valid.rating)))
        return rc_error(RC_EINVAL, "biasedmf: bad validation ratings");
    const int sgd = strcmp(hp->solver, "sgd") == 0;
    const int64_t R = in->by_user.nnz, V = in->valid.n;
    const size_t np = bmf_nparams(m->U, m->N, m->F);
    bmf_params w = bmf_params_of(m);
    *w.mu = (float)in->mean;
    bmf_rating *t = NULL;
    float *best = NULL, *vpred = NULL;
    if (sgd) {
        t = malloc((size_t)(R > 0 ? R : 1) * sizeof *t);
        if (!t) goto nomem;
        for (int64_t u = 0; u < m->U; u++)
            for (int64_t k = in->by_user.offsets[u]; k < in->by_user.offsets[u + 1]; k++)
                t[k] = (bmf_rating){(int32_t)u, in->by_user.col[k], in->by_user.val[k]};
    }
    if (V > 0) {
        best = malloc(np * sizeof *best);
        vpred = malloc((size_t)V * sizeof *vpred);
        if (!best || !vpred) goto nomem;
    }
    rng_t rng;
    rng_seed(&rng, in->seed ^ 0x62696173656d6621ull); /* a stream apart from the initialisation's */
    double lr = hp->lr, best_rmse = INFINITY, t0 = clock_mono_s();
    int best_epoch = 0, since_best = 0, ran = 0;
    for (int e = 1; e <= hp->epochs; e++) {
        ran = e;
        double te = clock_mono_s(), train_rmse, loss = NAN;
        if (sgd) {
            shuffle_ratings(&rng, t, R);
            double sse = bmf_sgd_pass(&w, t, R, (float)lr, (float)hp->reg, (float)hp->reg_bias);
            train_rmse = R > 0 ? sqrt(sse / (double)R) : 0.0;
            lr *= hp->lr_decay;
        } else {
            if ((rc = bmf_als_sweep(&w, &in->by_user, 0, hp->reg, hp->reg_bias, in->threads)) ||
                (rc = bmf_als_sweep(&w, &in->by_item, 1, hp->reg, hp->reg_bias, in->threads)))
                goto done;
            double sse = 0;
            loss = bmf_objective(m, &in->by_user, hp->reg, hp->reg_bias, NULL, &sse);
            train_rmse = R > 0 ? sqrt(sse / (double)R) : 0.0;
            loss = R > 0 ? loss / (double)R : 0.0;
        }
        if (!isfinite(train_rmse)) {
            rc = rc_error(RC_ERANGE, "biasedmf: training diverged at epoch %d (lr %g too large?)", e, lr);
            goto done;
        }
        double vr = NAN;
        int improved = 0;
        if (V > 0) {
            biasedmf_predict(m, &in->valid, in->default_rating, vpred, NULL);
            vr = rb_rmse(&in->valid, vpred);
            if (vr < best_rmse) {
                best_rmse = vr;
                best_epoch = e;
                since_best = 0;
                improved = 1;
                memcpy(best, m->slab, np * sizeof *best);
            } else {
                since_best++;
            }
        }
        if (in->verbose) {
            double now = clock_mono_s(), ep_s = now - te, eta = (now - t0) / e * (hp->epochs - e);
            char ls[32] = "";
            if (!sgd) snprintf(ls, sizeof ls, " loss=%.5f", loss);
            log_info("biasedmf: epoch %d/%d%s train_rmse=%.5f valid_rmse=%.5f%s %.2fM ratings/s %.1fs ETA<=%.0fs", e,
                     hp->epochs, ls, train_rmse, vr, improved ? " *" : "", ep_s > 0 ? R / ep_s / 1e6 : 0.0, ep_s, eta);
        }
        if (V > 0 && hp->patience > 0 && since_best >= hp->patience) break;
    }
    if (epochs_run) *epochs_run = ran;
    if (V > 0) {
        memcpy(m->slab, best, np * sizeof *best);
        if (valid_rmse) *valid_rmse = best_rmse;
        if (in->verbose) log_info("biasedmf: kept epoch %d (valid_rmse=%.5f)", best_epoch, best_rmse);
    }
    rc = RC_OK;
    goto done;
nomem:
    rc = rc_error(RC_ENOMEM, "biasedmf: out of memory (training buffers, %lld ratings)", (long long)R);
done:
    free(t);
    free(best);
    free(vpred);
    return rc;
}

/* ---- prediction ------------------------------------------------------------------------------------ */

static inline int known(const biasedmf *m, int32_t u, int32_t i)
{
    return u >= 0 && u < m->U && i >= 0 && i < m->N;
}

void biasedmf_predict(const biasedmf *m, const rb_triples *t, float default_rating, float *out, uint8_t *fallback)
{
    const size_t F = (size_t)m->F;
    const float mu = *m->mu;
    for (int64_t k = 0; k < t->n; k++) {
        int32_t u = t->user[k], i = t->item[k];
        int ok = known(m, u, i);
        out[k] = ok ? mu + m->bu[u] + m->bi[i] + bmf_dot(m->P + (size_t)u * F, m->Q + (size_t)i * F, (int)F)
                    : default_rating;
        if (fallback) fallback[k] = (uint8_t)!ok;
    }
}

/* ---- snapshot -------------------------------------------------------------------------------------- */

int biasedmf_save(const biasedmf *m, const rating_base_src *src, const char *root, const char *name,
                  const json_t *extra, uint64_t *version)
{
    if (version) *version = 0;
    if (!name) name = "biasedmf";
    if (!src || !src->users || !src->items || (int64_t)idmap_size(src->users) != m->U ||
        (int64_t)idmap_size(src->items) != m->N)
        return rc_error(RC_EINVAL, "biasedmf: save: the vocabularies do not match the model (%lld users, %lld items)",
                        (long long)m->U, (long long)m->N);
    snap_writer *w = NULL;
    json_t *meta = NULL, *rating = NULL;
    int rc = snap_writer_open(&w, root, name, 0);
    if (rc) return rc;
    const int64_t U = m->U, N = m->N, F = m->F;
    int64_t s1[1] = {1}, su[1] = {U}, sn[1] = {N}, sp[2] = {U, F}, sq[2] = {N, F};
    if ((rc = snap_put_tensor(w, "mu", SNAP_F32, 1, s1, m->mu)) || (rc = snap_put_tensor(w, "bu", SNAP_F32, 1, su, m->bu)) ||
        (rc = snap_put_tensor(w, "bi", SNAP_F32, 1, sn, m->bi)) || (rc = snap_put_tensor(w, "P", SNAP_F32, 2, sp, m->P)) ||
        (rc = snap_put_tensor(w, "Q", SNAP_F32, 2, sq, m->Q)) || (rc = rb_save(w, src, &rating)))
        goto fail;
    meta = json_object();
    if (!meta) goto nomem;
    if (extra && json_is_object(extra) && json_object_update(meta, (json_t *)extra)) goto nomem;
    if (json_object_set_new(meta, "factors", json_integer(F)) || json_object_set_new(meta, "n_users", json_integer(U)) ||
        json_object_set_new(meta, "n_items", json_integer(N)) || json_object_set(meta, "rating", rating) ||
        (strcmp(name, "biasedmf") != 0 && json_object_set_new(meta, "type", json_string("biasedmf"))))
        goto nomem;
    if ((rc = snap_set_meta(w, meta))) goto fail;
    json_decref(meta);
    json_decref(rating);
    return snap_writer_publish(w, version);
nomem:
    rc = rc_error(RC_ENOMEM, "biasedmf: out of memory (meta)");
fail:
    json_decref(meta);
    json_decref(rating);
    snap_writer_abort(w);
    return rc;
}

static int finite_all(const float *x, size_t n, size_t *at)
{
    for (size_t k = 0; k < n; k++)
        if (!isfinite(x[k])) {
            *at = k;
            return 0;
        }
    return 1;
}

static int load_handle(biasedmf **out, const snap *s)
{
    *out = NULL;
    const char *dir = snap_dir(s);
    biasedmf *m = calloc(1, sizeof *m);
    if (!m) return rc_error(RC_ENOMEM, "biasedmf: out of memory");
    int rc;
    const json_t *fj = json_object_get(snap_meta(s), "factors");
    if (!json_is_integer(fj) || json_integer_value(fj) < 1 || json_integer_value(fj) > BMF_MAX_FACTORS) {
        rc = rc_error(RC_ECORRUPT, "biasedmf: %s: meta \"factors\" missing or not in 1..%d", dir, BMF_MAX_FACTORS);
        goto fail;
    }
    if ((rc = rb_load(&m->base, s))) goto fail;
    m->U = m->base.n_users;
    m->N = m->base.n_items;
    m->F = (int)json_integer_value(fj);
    int64_t s1[1] = {1}, su[1] = {m->U}, sn[1] = {m->N}, sp[2] = {m->U, m->F}, sq[2] = {m->N, m->F};
    const snap_tensor *t[5] = {snap_tensor_expect(s, "mu", SNAP_F32, 1, s1), NULL, NULL, NULL, NULL};
    if (t[0]) t[1] = snap_tensor_expect(s, "bu", SNAP_F32, 1, su);
    if (t[1]) t[2] = snap_tensor_expect(s, "bi", SNAP_F32, 1, sn);
    if (t[2]) t[3] = snap_tensor_expect(s, "P", SNAP_F32, 2, sp);
    if (t[3]) t[4] = snap_tensor_expect(s, "Q", SNAP_F32, 2, sq);
    if (!t[4]) {
        rc = rc_wrap(RC_ECORRUPT, "biasedmf: %s", dir);
        goto fail;
    }
    for (int k = 0; k < 5; k++) {
        size_t at;
        if (!finite_all(t[k]->data, t[k]->nbytes / sizeof(float), &at)) {
            rc = rc_error(RC_ECORRUPT, "biasedmf: %s: tensor %s holds a non-finite value at %zu", dir, t[k]->name, at);
            goto fail;
        }
    }
    m->mu = t[0]->data;
    m->bu = t[1]->data;
    m->bi = t[2]->data;
    m->P = t[3]->data;
    m->Q = t[4]->data;
    m->snap = s;
    *out = m;
    return RC_OK;
fail:
    biasedmf_free(m);
    return rc;
}

/* ---- model_type ------------------------------------------------------------------------------------ */

static int type_load(void **handle, const snap *s)
{
    biasedmf *m = NULL;
    int rc = load_handle(&m, s);
    *handle = m;
    return rc;
}

static void type_free(void *handle) { biasedmf_free(handle); }

static void rate_predict(const void *h, int32_t u, const int32_t *items, int B, float *out, uint8_t *fallback,
                         void *sc)
{
    (void)sc;
    const biasedmf *m = h;
    const size_t F = (size_t)m->F;
    const int uok = u >= 0 && u < m->U;
    const float base = uok ? *m->mu + m->bu[u] : 0.0f;
    const float *p = uok ? m->P + (size_t)u * F : NULL;
    for (int b = 0; b < B; b++) {
        int32_t i = items[b];
        int ok = uok && i >= 0 && i < m->N;
        out[b] = ok ? base + m->bi[i] + bmf_dot(p, m->Q + (size_t)i * F, (int)F) : m->base.default_rating;
        if (fallback) fallback[b] = (uint8_t)!ok;
    }
}

/* scores (N): the predicted rating of every item for user u. */
static void rec_score(const void *h, int32_t u, float *scores, void *sc)
{
    (void)sc;
    const biasedmf *m = h;
    const size_t F = (size_t)m->F;
    const float base = *m->mu + m->bu[u], *p = m->P + (size_t)u * F;
    for (int64_t i = 0; i < m->N; i++) scores[i] = base + m->bi[i] + bmf_dot(p, m->Q + (size_t)i * F, (int)F);
}

static int rec_item_matrix(const void *h, model_item_matrix *out)
{
    const biasedmf *m = h;
    *out = (model_item_matrix){.w = m->Q, .bias = m->bi, .n = m->N, .d = m->F, .q_offset = 0};
    return RC_OK;
}

static void rec_query(const void *h, int32_t u, float *q, void *sc)
{
    (void)sc;
    const biasedmf *m = h;
    memcpy(q, m->P + (size_t)u * (size_t)m->F, (size_t)m->F * sizeof *q);
}

/* Predict a few ratings and score every item for a few users: touches P, Q and the biases. */
static int type_warm(const void *h)
{
    const biasedmf *m = h;
    float *scores = malloc((size_t)m->N * sizeof *scores);
    if (!scores) return rc_error(RC_ENOMEM, "biasedmf: out of memory (warm-up)");
    int32_t items[64];
    float out[64];
    int B = m->N < 64 ? (int)m->N : 64;
    for (int b = 0; b < B; b++) items[b] = m->base.popular ? m->base.popular[b] : b;
    for (int32_t u = 0; u < m->U && u < 4; u++) {
        rate_predict(m, u, items, B, out, NULL, NULL);
        rec_score(m, u, scores, NULL);
    }
    free(scores);
    return RC_OK;
}

/* rate and recommend need no scratch: rating_base.h's token stands for it */
static const model_rate_ops biasedmf_rate = {rb_no_scratch_rate, rb_no_scratch_free, rate_predict};
static const model_recommend_ops biasedmf_recommend = {rb_type_seen, rb_no_scratch_recommend, rb_no_scratch_free,
                                                       rec_score,    rec_item_matrix,         rec_query};

const model_type biasedmf_type = {
    .name = "biasedmf",
    .help = "biased matrix factorisation for explicit ratings (SGD or ALS): predicted ratings and top-k unseen items",
    .load = type_load,
    .free = type_free,
    .warm = type_warm,
    .items = rb_type_items,
    .users = rb_type_users,
    .popular = rb_type_popular,
    .rate = &biasedmf_rate,
    .recommend = &biasedmf_recommend,
};
