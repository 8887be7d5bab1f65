/* models/autorec.c - I-AutoRec and U-AutoRec (see models/autorec.h): the sparse loss and its gradient,
 * full-batch training (L-BFGS, Rprop), the snapshot, and the `rate` / `recommend` capabilities.
 *
 * Letters: E examples, D inputs, K hidden, R ratings, P parameters (2 D K + D + K), T threads.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* the K-long dot products and axpys of the passes vectorise only with reassociation allowed */
#pragma GCC optimize("O3", "-fassociative-math", "-fno-signed-zeros", "-fno-trapping-math", "-ffp-contract=fast")
#endif
#include "models/autorec.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/lbfgs.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/rprop.h"

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__clang__)
#define AR_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define AR_CLONES
#endif

#define AR_MAX_THREADS 64

/* ---- names and hyperparameters ---------------------------------------------------------------- */

int autorec_variant_parse(const char *s)
{
    if (!s) return -1;
    if (strcmp(s, "item") == 0) return AUTOREC_ITEM;
    if (strcmp(s, "user") == 0) return AUTOREC_USER;
    return -1;
}

const char *autorec_variant_name(int v)
{
    return v == AUTOREC_ITEM ? "item" : v == AUTOREC_USER ? "user" : "?";
}

int autorec_optimizer_parse(const char *s)
{
    if (!s) return -1;
    if (strcmp(s, "lbfgs") == 0) return AUTOREC_LBFGS;
    if (strcmp(s, "rprop") == 0) return AUTOREC_RPROP;
    return -1;
}

const char *autorec_optimizer_name(int o)
{
    return o == AUTOREC_LBFGS ? "lbfgs" : o == AUTOREC_RPROP ? "rprop" : "?";
}

void autorec_hparams_default(autorec_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    hp->variant = AUTOREC_ITEM;
    hp->hidden = 500;
    hp->lambda = 200;
    hp->optimizer = AUTOREC_LBFGS;
    hp->iters = 500;
    hp->eval_every = 10;
    hp->patience = 0;
    hp->lbfgs_m = 10;
    hp->rprop_step = 0.01;
    hp->rprop_step_max = 1;
    hp->init_scale = 1;
}

int autorec_hparams_check(const autorec_hparams *hp)
{
    if (hp->variant != AUTOREC_ITEM && hp->variant != AUTOREC_USER)
        return rc_error(RC_EINVAL, "autorec: variant must be item or user");
    if (hp->hidden < 1) return rc_error(RC_EINVAL, "autorec: hidden must be >= 1 (got %d)", hp->hidden);
    if (!(hp->lambda >= 0)) return rc_error(RC_EINVAL, "autorec: lambda must be >= 0 (got %g)", hp->lambda);
    if (hp->optimizer != AUTOREC_LBFGS && hp->optimizer != AUTOREC_RPROP)
        return rc_error(RC_EINVAL, "autorec: optimizer must be lbfgs or rprop");
    if (hp->iters < 1) return rc_error(RC_EINVAL, "autorec: iters must be >= 1 (got %d)", hp->iters);
    if (hp->eval_every < 1) return rc_error(RC_EINVAL, "autorec: eval_every must be >= 1 (got %d)", hp->eval_every);
    if (hp->patience < 0) return rc_error(RC_EINVAL, "autorec: patience must be >= 0 (got %d)", hp->patience);
    if (hp->lbfgs_m < 1) return rc_error(RC_EINVAL, "autorec: lbfgs_m must be >= 1 (got %d)", hp->lbfgs_m);
    if (!(hp->rprop_step > 0)) return rc_error(RC_EINVAL, "autorec: rprop_step must be > 0 (got %g)", hp->rprop_step);
    if (!(hp->rprop_step_max >= hp->rprop_step))
        return rc_error(RC_EINVAL, "autorec: rprop_step_max must be >= rprop_step (got %g)", hp->rprop_step_max);
    if (!(hp->init_scale > 0)) return rc_error(RC_EINVAL, "autorec: init_scale must be > 0 (got %g)", hp->init_scale);
    return RC_OK;
}

/* ---- the slab ------------------------------------------------------------------------------------ */

/* Pointers into a slab laid out W (D,K) | b (D) | Vt (D,K) | mu (K). */
typedef struct {
    const float *W, *b, *Vt, *mu;
} ar_params;

static ar_params params_of(const float *x, int64_t D, int K)
{
    ar_params q;
    q.W = x;
    q.b = q.W + (size_t)D * K;
    q.Vt = q.b + D;
    q.mu = q.Vt + (size_t)D * K;
    return q;
}

static size_t nparams(int64_t D, int K)
{
    return 2 * (size_t)D * (size_t)K + (size_t)D + (size_t)K;
}

size_t autorec_nparams(const autorec *m)
{
    return nparams(m->D, m->K);
}

float *autorec_slab(autorec *m)
{
    return m ? m->slab : NULL;
}

static void set_dims(autorec *m, int variant, int64_t U, int64_t N, int K)
{
    m->variant = variant;
    m->U = U;
    m->N = N;
    m->K = K;
    m->E = variant == AUTOREC_ITEM ? N : U;
    m->D = variant == AUTOREC_ITEM ? U : N;
}

autorec *autorec_new(int variant, int64_t U, int64_t N, int K, double mean, double init_scale, uint64_t seed)
{
    if ((variant != AUTOREC_ITEM && variant != AUTOREC_USER) || U < 1 || N < 1 || K < 1 || U > INT32_MAX ||
        N > INT32_MAX || !(init_scale > 0)) {
        rc_error(RC_EINVAL, "autorec: bad sizes (variant %d, %lld users, %lld items, %d hidden, init_scale %g)",
                 variant, (long long)U, (long long)N, K, init_scale);
        return NULL;
    }
    autorec *m = calloc(1, sizeof *m);
    if (!m) {
        rc_error(RC_ENOMEM, "autorec: out of memory");
        return NULL;
    }
    set_dims(m, variant, U, N, K);
    size_t P = nparams(m->D, K);
    m->slab = malloc(P * sizeof(float));
    if (!m->slab) {
        free(m);
        rc_error(RC_ENOMEM, "autorec: out of memory for %zu parameters", P);
        return NULL;
    }
    ar_params q = params_of(m->slab, m->D, K);
    m->W = q.W;
    m->b = q.b;
    m->Vt = q.Vt;
    m->mu = q.mu;
    float *W = m->slab, *b = W + (size_t)m->D * K, *Vt = b + m->D, *mu = Vt + (size_t)m->D * K;
    rng_t r;
    rng_seed(&r, seed);
    rng_t rw = rng_split(&r), rv = rng_split(&r);
    float a = (float)(init_scale * sqrt(6.0 / (double)(m->D + K)));
    for (size_t j = 0; j < (size_t)m->D * K; j++) W[j] = a * (2.0f * rng_uniformf(&rw) - 1.0f);
    for (size_t j = 0; j < (size_t)m->D * K; j++) Vt[j] = a * (2.0f * rng_uniformf(&rv) - 1.0f);
    for (int64_t d = 0; d < m->D; d++) b[d] = (float)mean;
    for (int k = 0; k < K; k++) mu[k] = 0;
    return m;
}

void autorec_free(autorec *m)
{
    if (!m) return;
    free(m->slab);
    free(m->H_owned);
    rb_free(&m->base);
    free(m);
}

/* ---- threads ------------------------------------------------------------------------------------- */

typedef void (*ar_job_fn)(void *ctx, int t);
typedef struct {
    ar_job_fn fn;
    void *ctx;
    int t;
} ar_job;

static void *job_main(void *a)
{
    ar_job *j = a;
    j->fn(j->ctx, j->t);
    return NULL;
}

/* fn(ctx, t) for t in [0, T): t = 0 on the calling thread, the others on new threads (inline when a
 * thread cannot start: same result, only slower). */
static void run_parallel(int T, ar_job_fn fn, void *ctx)
{
    pthread_t th[AR_MAX_THREADS];
    ar_job jobs[AR_MAX_THREADS];
    int started[AR_MAX_THREADS] = {0};
    for (int t = 1; t < T; t++) {
        jobs[t] = (ar_job){fn, ctx, t};
        started[t] = pthread_create(&th[t], NULL, job_main, &jobs[t]) == 0;
        if (!started[t]) fn(ctx, t);
    }
    fn(ctx, 0);
    for (int t = 1; t < T; t++)
        if (started[t]) pthread_join(th[t], NULL);
}

/* bounds (T+1): contiguous row ranges of rows with about equal cost, cost(r) = 4 nnz(r) + 1 */
static void split_rows(const int64_t *offsets, int64_t rows, int T, int64_t *bounds)
{
    int64_t total = 4 * offsets[rows] + rows, r = 0;
    bounds[0] = 0;
    for (int t = 1; t < T; t++) {
        int64_t target = total * t / T;
        while (r < rows && 4 * offsets[r] + r < target) r++;
        bounds[t] = r;
    }
    bounds[T] = rows;
}

/* ---- kernels ------------------------------------------------------------------------------------- */

static inline float dotk(const float *restrict a, const float *restrict b, int K)
{
    float s = 0;
    for (int k = 0; k < K; k++) s += a[k] * b[k];
    return s;
}

/* Blocks of the hidden units: KB floats, KV vectors of 8 (one AVX register; two SSE registers on the
 * default clone). Loads through v8f may be unaligned and alias floats. */
enum { KB = 512, KV = KB / 8 };
typedef float v8f __attribute__((vector_size(32), aligned(4), may_alias));

/* acc (kw) += a x (kw), kw <= KB: acc is KV vectors, x is (kw) floats */
static inline void baxpy(v8f *restrict acc, float a, const float *restrict x, int kw)
{
    const int nv = kw >> 3;
    const v8f *xv = (const v8f *)x;
    for (int v = 0; v < nv; v++) acc[v] += a * xv[v];
    float *t = (float *)acc;
    for (int k = nv * 8; k < kw; k++) t[k] += a * x[k];
}

/* Rows are visited in data order, which the hardware prefetcher cannot guess: ask for the block of
 * the row PD ratings ahead (KB floats from its start: the whole 2 KB row for K = 500; a prefetch past
 * the row is harmless). Measured: 1.36 -> 1.11 s per pass with 64-float blocks. */
enum { PD = 6 };
static inline void prefetch_block(const float *x)
{
    const char *c = (const char *)x;
    for (int b = 0; b < KB * 4; b += 64) __builtin_prefetch(c + b);
}

/* a (kw) . b (kw), kw <= KB */
static inline float bdot(const float *restrict a, const float *restrict b, int kw)
{
    const int nv = kw >> 3;
    const v8f *av = (const v8f *)a, *bv = (const v8f *)b;
    v8f s = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int v = 0; v < nv; v++) s += av[v] * bv[v];
    float r = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    for (int k = nv * 8; k < kw; k++) r += a[k] * b[k];
    return r;
}

static inline float sigmoidf_(float z)
{
    return 1.0f / (1.0f + expf(-z));
}

struct autorec_problem {
    int64_t E, D, R;
    int K, T;
    rb_rows ex;          /* by example: E rows, col = input index (borrowed) */
    rb_rows col;         /* by input: D rows, col = example index (borrowed) */
    int64_t *perm;       /* (R): position in ex of the q-th rating of col */
    float *H;            /* (E, K) */
    float *dZ;           /* (E, K) */
    float *G;            /* (R) d loss / d x^ at each rating, in ex order */
    float *Gc;           /* (R) the same in col order */
    double *ex_loss;     /* (E) sum of squared errors of each example */
    double *col_reg;     /* (D) |W[d]|^2 + |Vt[d]|^2 */
    int64_t ex_bounds[AR_MAX_THREADS + 1], col_bounds[AR_MAX_THREADS + 1];
    /* the pass in flight */
    ar_params q;
    float *grad;
    double lambda;
    int encode_only;
};

static int problem_new(autorec_problem **out, const autorec *m, const rb_train_input *in)
{
    *out = NULL;
    const rb_rows *ex = m->variant == AUTOREC_ITEM ? &in->by_item : &in->by_user;
    const rb_rows *col = m->variant == AUTOREC_ITEM ? &in->by_user : &in->by_item;
    if (ex->rows != m->E || col->rows != m->D || ex->nnz != col->nnz || ex->offsets[ex->rows] != ex->nnz ||
        col->offsets[col->rows] != col->nnz) {
        return rc_error(RC_EINVAL, "autorec: training rows (%lld by example, %lld by input, %lld/%lld ratings) do not "
                        "match the model (%lld examples, %lld inputs)", (long long)ex->rows, (long long)col->rows,
                        (long long)ex->nnz, (long long)col->nnz, (long long)m->E, (long long)m->D);
    }
    autorec_problem *p = calloc(1, sizeof *p);
    if (!p) return rc_error(RC_ENOMEM, "autorec: out of memory");
    p->E = m->E;
    p->D = m->D;
    p->R = ex->nnz;
    p->K = m->K;
    p->T = in->threads < 1 ? 1 : in->threads > AR_MAX_THREADS ? AR_MAX_THREADS : in->threads;
    p->ex = *ex;
    p->col = *col;
    size_t EK = (size_t)p->E * (size_t)p->K;
    p->perm = malloc(((size_t)p->R + 1) * sizeof *p->perm);
    p->H = malloc(EK * sizeof(float));
    p->dZ = malloc(EK * sizeof(float));
    p->G = malloc(((size_t)p->R + 1) * sizeof(float));
    p->Gc = malloc(((size_t)p->R + 1) * sizeof(float));
    p->ex_loss = malloc((size_t)p->E * sizeof(double));
    p->col_reg = malloc((size_t)p->D * sizeof(double));
    int64_t *cursor = calloc((size_t)p->E, sizeof *cursor);
    if (!p->perm || !p->H || !p->dZ || !p->G || !p->Gc || !p->ex_loss || !p->col_reg || !cursor) {
        free(cursor);
        autorec_problem_free(p);
        return rc_error(RC_ENOMEM, "autorec: out of memory for the training scratch (%zu floats)", 2 * EK);
    }
    /* col rows in increasing d, and every ex row sorted by d: the k-th rating of example e met in that
     * order is ex's k-th of row e */
    for (int64_t d = 0; d < p->D; d++)
        for (int64_t q = col->offsets[d]; q < col->offsets[d + 1]; q++) {
            int32_t e = col->col[q];
            int64_t pos = e >= 0 && e < p->E ? ex->offsets[e] + cursor[e]++ : -1;
            if (pos < 0 || pos >= ex->offsets[e + 1] || ex->col[pos] != d || ex->val[pos] != col->val[q]) {
                free(cursor);
                autorec_problem_free(p);
                return rc_error(RC_EINVAL, "autorec: the rows by user and by item disagree at input %lld, example %d",
                                (long long)d, (int)e);
            }
            p->perm[q] = pos;
        }
    free(cursor);
    split_rows(ex->offsets, p->E, p->T, p->ex_bounds);
    split_rows(col->offsets, p->D, p->T, p->col_bounds);
    *out = p;
    return RC_OK;
}

autorec_problem *autorec_problem_new(const autorec *m, const rb_train_input *in)
{
    autorec_problem *p;
    return problem_new(&p, m, in) == RC_OK ? p : NULL;
}

void autorec_problem_free(autorec_problem *p)
{
    if (!p) return;
    free(p->perm);
    free(p->H);
    free(p->dZ);
    free(p->G);
    free(p->Gc);
    free(p->ex_loss);
    free(p->col_reg);
    free(p);
}

/* The passes below run over the hidden units in blocks of KB floats (the whole row when K <= KB) with
 * the block's accumulators in L1. Measured on ML-1M (K = 500, one thread, shared machine): blocks of
 * 32 / 64 / 128 floats, meant to keep a slice of the rows in cache, ran at 1.28 / 1.11 / 0.99 s per
 * pass against 0.74-0.82 s for whole rows (each visit of a row pays a miss either way; the hardware
 * prefetcher streams the rest of a 2 KB row). */

/* Phase A, examples [e0, e1): encoder (H), decoder at the observed inputs (G, ex_loss) and the
 * backward to the pre-activation (dZ). Reads the Vt and W rows of the observed inputs. With
 * encode_only, H alone. */
AR_CLONES static void phase_examples(autorec_problem *p, int64_t e0, int64_t e1)
{
    const int K = p->K;
    const ar_params q = p->q;
    const int64_t *off = p->ex.offsets;
    const int32_t *cols = p->ex.col;
    const float *vals = p->ex.val;
    float *G = p->G; /* (R): first the predictions, then d loss / d prediction */
    /* encoder: h_e = sigmoid(mu + sum_j x_j Vt[d_j]), block by block */
    for (int k0 = 0; k0 < K; k0 += KB) {
        const int kw = K - k0 < KB ? K - k0 : KB;
        for (int64_t e = e0; e < e1; e++) {
            float *restrict h = p->H + (size_t)e * K + k0; /* h is (kw) */
            v8f acc[KV];
            float *a = (float *)acc;
            for (int k = 0; k < kw; k++) a[k] = q.mu[k0 + k];
            for (int64_t j = off[e]; j < off[e + 1]; j++) {
                if (j + PD < off[e1]) prefetch_block(q.Vt + (size_t)cols[j + PD] * K + k0);
                baxpy(acc, vals[j], q.Vt + (size_t)cols[j] * K + k0, kw);
            }
            for (int k = 0; k < kw; k++) h[k] = sigmoidf_(a[k]);
        }
    }
    if (p->encode_only) return;
    /* decoder at the observed inputs: G[j] = b[d_j] + sum over blocks of W[d_j] . h_e */
    for (int64_t j = off[e0]; j < off[e1]; j++) G[j] = q.b[cols[j]];
    for (int k0 = 0; k0 < K; k0 += KB) {
        const int kw = K - k0 < KB ? K - k0 : KB;
        for (int64_t e = e0; e < e1; e++) {
            const float *restrict h = p->H + (size_t)e * K + k0;
            for (int64_t j = off[e]; j < off[e + 1]; j++) {
                if (j + PD < off[e1]) prefetch_block(q.W + (size_t)cols[j + PD] * K + k0);
                G[j] += bdot(q.W + (size_t)cols[j] * K + k0, h, kw);
            }
        }
    }
    for (int64_t e = e0; e < e1; e++) {
        double loss = 0;
        for (int64_t j = off[e]; j < off[e + 1]; j++) {
            float r = G[j] - vals[j];
            loss += (double)r * r;
            G[j] = 2.0f * r;
        }
        p->ex_loss[e] = loss;
    }
    /* backward: dz_e = (sum_j G_j W[d_j]) * h (1 - h) */
    for (int k0 = 0; k0 < K; k0 += KB) {
        const int kw = K - k0 < KB ? K - k0 : KB;
        for (int64_t e = e0; e < e1; e++) {
            const float *restrict h = p->H + (size_t)e * K + k0;
            float *restrict dz = p->dZ + (size_t)e * K + k0; /* dz is (kw) */
            v8f acc[KV];
            float *a = (float *)acc;
            for (int k = 0; k < kw; k++) a[k] = 0;
            for (int64_t j = off[e]; j < off[e + 1]; j++) {
                if (j + PD < off[e1]) prefetch_block(q.W + (size_t)cols[j + PD] * K + k0);
                baxpy(acc, G[j], q.W + (size_t)cols[j] * K + k0, kw);
            }
            for (int k = 0; k < kw; k++) dz[k] = a[k] * h[k] * (1.0f - h[k]);
        }
    }
}

/* Phase B, inputs [d0, d1): dW[d], db[d], dVt[d] (with the L2 terms) and col_reg[d]. Reads the H and
 * dZ rows of the examples that observe d. */
AR_CLONES static void phase_inputs(autorec_problem *p, int64_t d0, int64_t d1)
{
    const int K = p->K;
    const ar_params q = p->q;
    const float lam = (float)p->lambda;
    float *dW = p->grad, *db = dW + (size_t)p->D * K, *dVt = db + p->D;
    const int64_t *off = p->col.offsets;
    const int32_t *exs = p->col.col;
    const float *vals = p->col.val;
    float *Gc = p->Gc; /* (R) G in the order of col */
    for (int64_t j = off[d0]; j < off[d1]; j++) Gc[j] = p->G[p->perm[j]];
    for (int64_t d = d0; d < d1; d++) {
        const float *w = q.W + (size_t)d * K, *v = q.Vt + (size_t)d * K;
        float reg = 0, gb = 0;
        for (int k = 0; k < K; k++) reg += w[k] * w[k] + v[k] * v[k];
        for (int64_t j = off[d]; j < off[d + 1]; j++) gb += Gc[j];
        db[d] = gb;
        p->col_reg[d] = reg;
    }
    for (int k0 = 0; k0 < K; k0 += KB) {
        const int kw = K - k0 < KB ? K - k0 : KB;
        for (int64_t d = d0; d < d1; d++) {
            const float *w = q.W + (size_t)d * K + k0, *v = q.Vt + (size_t)d * K + k0;
            v8f accw[KV], accv[KV];
            float *aw = (float *)accw, *av = (float *)accv;
            for (int k = 0; k < kw; k++) {
                aw[k] = lam * w[k];
                av[k] = lam * v[k];
            }
            for (int64_t j = off[d]; j < off[d + 1]; j++) {
                const size_t e = (size_t)exs[j];
                if (j + PD < off[d1]) {
                    const size_t ep = (size_t)exs[j + PD];
                    prefetch_block(p->H + ep * K + k0);
                    prefetch_block(p->dZ + ep * K + k0);
                }
                baxpy(accw, Gc[j], p->H + e * K + k0, kw);
                baxpy(accv, vals[j], p->dZ + e * K + k0, kw);
            }
            float *restrict gw = dW + (size_t)d * K + k0, *restrict gv = dVt + (size_t)d * K + k0;
            for (int k = 0; k < kw; k++) {
                gw[k] = aw[k];
                gv[k] = av[k];
            }
        }
    }
}

/* Phase C, hidden units [k0, k1): dmu = sum over examples of dZ, in example order. */
static void phase_mu(autorec_problem *p, int k0, int k1)
{
    const int K = p->K;
    float *dmu = p->grad + 2 * (size_t)p->D * K + p->D;
    for (int k = k0; k < k1; k++) dmu[k] = 0;
    for (int64_t e = 0; e < p->E; e++) {
        const float *dz = p->dZ + (size_t)e * K;
        for (int k = k0; k < k1; k++) dmu[k] += dz[k];
    }
}

static void job_examples(void *ctx, int t)
{
    autorec_problem *p = ctx;
    phase_examples(p, p->ex_bounds[t], p->ex_bounds[t + 1]);
}

static void job_inputs(void *ctx, int t)
{
    autorec_problem *p = ctx;
    phase_inputs(p, p->col_bounds[t], p->col_bounds[t + 1]);
}

static void job_mu(void *ctx, int t)
{
    autorec_problem *p = ctx;
    phase_mu(p, (int)((int64_t)p->K * t / p->T), (int)((int64_t)p->K * (t + 1) / p->T));
}

double autorec_loss_grad(autorec_problem *p, const float *x, float *grad, double lambda)
{
    p->q = params_of(x, p->D, p->K);
    p->grad = grad;
    p->lambda = lambda;
    p->encode_only = 0;
    run_parallel(p->T, job_examples, p);
    run_parallel(p->T, job_inputs, p);
    run_parallel(p->T, job_mu, p);
    double sse = 0, reg = 0;
    for (int64_t e = 0; e < p->E; e++) sse += p->ex_loss[e];
    for (int64_t d = 0; d < p->D; d++) reg += p->col_reg[d];
    return sse + 0.5 * lambda * reg;
}

/* H of every example at parameters x, into p->H. */
static void encode_into(autorec_problem *p, const float *x)
{
    p->q = params_of(x, p->D, p->K);
    p->encode_only = 1;
    run_parallel(p->T, job_examples, p);
    p->encode_only = 0;
}

double autorec_loss_grad_ref(autorec_problem *p, const float *x, float *grad, double lambda)
{
    const int64_t E = p->E, D = p->D;
    const int K = p->K;
    const ar_params q = params_of(x, D, K);
    size_t P = nparams(D, K);
    double *g = calloc(P, sizeof(double)), *X = malloc((size_t)E * D * sizeof(double));
    double *h = malloc((size_t)K * sizeof(double)), *dh = malloc((size_t)K * sizeof(double));
    if (!g || !X || !h || !dh) { /* a test-only path: report as a NAN loss */
        free(g), free(X), free(h), free(dh);
        return NAN;
    }
    double *gW = g, *gb = gW + (size_t)D * K, *gV = gb + D, *gmu = gV + (size_t)D * K;
    for (size_t j = 0; j < (size_t)E * D; j++) X[j] = NAN; /* dense (E, D), NAN: not observed */
    for (int64_t e = 0; e < E; e++)
        for (int64_t j = p->ex.offsets[e]; j < p->ex.offsets[e + 1]; j++) X[(size_t)e * D + p->ex.col[j]] = p->ex.val[j];
    double L = 0;
    for (int64_t e = 0; e < E; e++) {
        const double *xe = X + (size_t)e * D;
        for (int k = 0; k < K; k++) {
            double z = q.mu[k];
            for (int64_t d = 0; d < D; d++)
                if (!isnan(xe[d])) z += xe[d] * q.Vt[(size_t)d * K + k];
            h[k] = 1.0 / (1.0 + exp(-z));
            dh[k] = 0;
        }
        for (int64_t d = 0; d < D; d++) {
            if (isnan(xe[d])) continue;
            double y = q.b[d];
            for (int k = 0; k < K; k++) y += q.W[(size_t)d * K + k] * h[k];
            double r = y - xe[d], gr = 2 * r;
            L += r * r;
            gb[d] += gr;
            for (int k = 0; k < K; k++) {
                gW[(size_t)d * K + k] += gr * h[k];
                dh[k] += gr * q.W[(size_t)d * K + k];
            }
        }
        for (int k = 0; k < K; k++) {
            double dz = dh[k] * h[k] * (1 - h[k]);
            gmu[k] += dz;
            for (int64_t d = 0; d < D; d++)
                if (!isnan(xe[d])) gV[(size_t)d * K + k] += xe[d] * dz;
        }
    }
    double reg = 0;
    for (size_t j = 0; j < (size_t)D * K; j++) {
        reg += (double)q.W[j] * q.W[j] + (double)q.Vt[j] * q.Vt[j];
        gW[j] += lambda * q.W[j];
        gV[j] += lambda * q.Vt[j];
    }
    for (size_t j = 0; j < P; j++) grad[j] = (float)g[j];
    free(g), free(X), free(h), free(dh);
    return L + 0.5 * lambda * reg;
}

/* ---- prediction ---------------------------------------------------------------------------------- */

int autorec_encode(autorec *m, const rb_train_input *in)
{
    autorec_problem *p;
    int rc = problem_new(&p, m, in);
    if (rc) return rc;
    encode_into(p, m->W);
    /* the problem's H becomes the model's */
    free(m->H_owned);
    m->H_owned = p->H;
    m->H = p->H;
    p->H = NULL;
    autorec_problem_free(p);
    return RC_OK;
}

/* the predicted rating of (u, i), both known; needs H */
static inline float predict_one(const autorec *m, int32_t u, int32_t i)
{
    const int K = m->K;
    int32_t d = m->variant == AUTOREC_ITEM ? u : i, e = m->variant == AUTOREC_ITEM ? i : u;
    return dotk(m->W + (size_t)d * K, m->H + (size_t)e * K, K) + m->b[d];
}

void autorec_predict(const autorec *m, const rb_triples *t, float default_rating, float *out, uint8_t *fallback)
{
    for (int64_t k = 0; k < t->n; k++) {
        int32_t u = t->user[k], i = t->item[k];
        int unknown = u < 0 || i < 0 || u >= m->U || i >= m->N || !m->H;
        out[k] = unknown ? default_rating : predict_one(m, u, i);
        if (fallback) fallback[k] = (uint8_t)unknown;
    }
}

/* ---- training ------------------------------------------------------------------------------------ */

typedef struct {
    autorec *m;
    autorec_problem *p;
    const autorec_hparams *hp;
    const rb_train_input *in;
    float *best;          /* (P) parameters of the best validation RMSE */
    float *pred;          /* (valid n) */
    double best_rmse;
    int best_iter, since_best, iters;
    double t0;
    int evals;
    int rc;               /* RC_ERANGE once training diverged (message set), else RC_OK */
    int fg_calls;         /* L-BFGS's evaluations so far */
    int fg_bad_call;      /* the last one whose loss or gradient was not finite (0: none) */
    char fg_what[64];     /* what was not finite in that one */
} ar_trainer;

/* The index of the first non-finite element of x (n), or n when they are all finite. */
static size_t first_nonfinite(const float *x, size_t n)
{
    size_t j = 0;
    while (j < n && isfinite(x[j])) j++;
    return j;
}

/* RC_ERANGE: training diverged at iteration `it` (what: the value that is not finite; at_start: at the
 * initial parameters). The likely causes: Rprop's steps too large (not before its first step), or
 * ratings out of scale (L-BFGS's line search bounds its steps), so the message gives the training
 * ratings' span. */
static int ar_diverged(const ar_trainer *tr, int it, int at_start, const char *what)
{
    const rb_rows *r = &tr->in->by_user;
    float lo = r->nnz > 0 ? r->val[0] : 0.0f, hi = lo;
    for (int64_t j = 1; j < r->nnz; j++) {
        lo = r->val[j] < lo ? r->val[j] : lo;
        hi = r->val[j] > hi ? r->val[j] : hi;
    }
    const char *at = at_start ? " at the initial parameters" : "";
    if (tr->hp->optimizer == AUTOREC_RPROP && !at_start)
        return rc_error(RC_ERANGE, "autorec: training diverged at iteration %d (rprop_step_max %g too large?): %s; "
                        "training ratings span [%g, %g]", it, tr->hp->rprop_step_max, what, (double)lo, (double)hi);
    return rc_error(RC_ERANGE, "autorec: training diverged at iteration %d (ratings out of scale?): %s%s; training "
                    "ratings span [%g, %g]", it, what, at, (double)lo, (double)hi);
}

/* L-BFGS's objective. A finite loss with a gradient that is not (an overflow: the loss sums in double,
 * the gradient is float) counts as not finite, so that the line search shortens the step (and a start
 * point with such a gradient is refused) rather than go on from a point with no valid gradient. */
static double lbfgs_fg(void *ctx, const float *x, float *g)
{
    ar_trainer *tr = ctx;
    double f = autorec_loss_grad(tr->p, x, g, tr->hp->lambda);
    size_t P = autorec_nparams(tr->m), j;
    tr->fg_calls++;
    if (!isfinite(f)) {
        tr->fg_bad_call = tr->fg_calls;
        snprintf(tr->fg_what, sizeof tr->fg_what, "loss %g", f);
    } else if ((j = first_nonfinite(g, P)) < P) {
        tr->fg_bad_call = tr->fg_calls;
        snprintf(tr->fg_what, sizeof tr->fg_what, "gradient %g", (double)g[j]);
        return NAN;
    }
    return f;
}

/* Validation RMSE of parameters x (H recomputed into the problem's scratch). */
static double valid_rmse_at(ar_trainer *tr, const float *x)
{
    const rb_triples *v = &tr->in->valid;
    autorec_problem *p = tr->p;
    encode_into(p, x);
    autorec tmp = *tr->m;
    ar_params q = params_of(x, p->D, p->K);
    tmp.W = q.W;
    tmp.b = q.b;
    tmp.H = p->H;
    autorec_predict(&tmp, v, tr->in->default_rating, tr->pred, NULL);
    return rb_rmse(v, tr->pred);
}

/* After iteration it (1..): validate when due; 1 to stop (patience exhausted, or tr->rc set: a
 * non-finite loss or validation RMSE). */
static int after_iter(ar_trainer *tr, int it, double f, const float *x, int evals)
{
    tr->iters = it;
    tr->evals = evals;
    char what[64];
    if (!isfinite(f)) {
        snprintf(what, sizeof what, "loss %g", f);
        tr->rc = ar_diverged(tr, it, 0, what);
        return 1;
    }
    int last = it >= tr->hp->iters;
    if (it % tr->hp->eval_every != 0 && !last) return 0;
    double el = clock_mono_s() - tr->t0, rate = el > 0 ? (double)evals * (double)tr->p->R / el : 0;
    double eta = el / it * (tr->hp->iters - it);
    if (tr->in->valid.n <= 0) {
        if (tr->in->verbose)
            log_info("autorec: iter %d/%d loss %.6g evals %d %.3gM ratings/s elapsed %.0fs ETA %.0fs", it, tr->hp->iters,
                     f, evals, rate / 1e6, el, eta);
        return 0;
    }
    double r = valid_rmse_at(tr, x);
    if (!isfinite(r)) {
        snprintf(what, sizeof what, "valid rmse %g", r);
        tr->rc = ar_diverged(tr, it, 0, what);
        return 1;
    }
    int better = r < tr->best_rmse;
    if (better) {
        tr->best_rmse = r;
        tr->best_iter = it;
        tr->since_best = 0;
        memcpy(tr->best, x, autorec_nparams(tr->m) * sizeof(float));
    } else {
        tr->since_best++;
    }
    if (tr->in->verbose)
        log_info("autorec: iter %d/%d loss %.6g valid rmse %.5f%s (best %.5f at %d) evals %d %.3gM ratings/s "
                 "elapsed %.0fs ETA %.0fs", it, tr->hp->iters, f, r, better ? " *" : "", tr->best_rmse, tr->best_iter,
                 evals, rate / 1e6, el, eta);
    return tr->hp->patience > 0 && tr->since_best >= tr->hp->patience;
}

static int lbfgs_cb(void *ctx, int iter, double f, const float *x, const float *g, int evals)
{
    (void)g;
    return after_iter(ctx, iter, f, x, evals);
}

int autorec_train(autorec *m, const autorec_hparams *hp, const rb_train_input *in, double *valid_rmse,
                  int *kept_iter, int *iters_run)
{
    if (valid_rmse) *valid_rmse = NAN;
    if (kept_iter) *kept_iter = 0;
    if (iters_run) *iters_run = 0;
    int rc = autorec_hparams_check(hp);
    if (rc) return rc;
    if (!m->slab) return rc_error(RC_EINVAL, "autorec: a loaded model cannot be trained");
    if (hp->variant != m->variant || hp->hidden != m->K)
        return rc_error(RC_EINVAL, "autorec: hparams (%s, %d hidden) do not match the model (%s, %d hidden)",
                        autorec_variant_name(hp->variant), hp->hidden, autorec_variant_name(m->variant), m->K);
    if (in->by_user.rows != m->U || in->by_item.rows != m->N)
        return rc_error(RC_EINVAL, "autorec: data has %lld users, %lld items; the model %lld, %lld",
                        (long long)in->by_user.rows, (long long)in->by_item.rows, (long long)m->U, (long long)m->N);
    ar_trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.m = m;
    tr.hp = hp;
    tr.in = in;
    tr.best_rmse = INFINITY;
    size_t P = autorec_nparams(m);
    float *g = NULL, *st = NULL, *gp = NULL;
    if ((rc = problem_new(&tr.p, m, in))) return rc;
    tr.best = malloc(P * sizeof(float));
    tr.pred = malloc(((size_t)(in->valid.n > 0 ? in->valid.n : 0) + 1) * sizeof(float));
    if (!tr.best || !tr.pred) {
        rc = rc_error(RC_ENOMEM, "autorec: out of memory");
        goto done;
    }
    if (in->verbose)
        log_info("autorec: %s-based, %lld examples x %lld inputs, K %d, %zu parameters, %lld ratings, lambda %g, "
                 "%s %d iterations, %d threads", autorec_variant_name(m->variant), (long long)m->E, (long long)m->D, m->K,
                 P, (long long)tr.p->R, hp->lambda, autorec_optimizer_name(hp->optimizer), hp->iters, tr.p->T);
    tr.t0 = clock_mono_s();
    if (hp->optimizer == AUTOREC_LBFGS) {
        lbfgs_params lp;
        lbfgs_params_default(&lp);
        lp.m = hp->lbfgs_m;
        lp.max_iter = hp->iters;
        lp.gtol = 0;
        lp.ftol = 0;
        lp.threads = tr.p->T;
        lbfgs_result res;
        rc = lbfgs_minimize(m->slab, P, lbfgs_fg, &tr, &lp, lbfgs_cb, &tr, &res);
        if (rc == RC_EINVAL && tr.fg_bad_call == 1) /* refused: not finite at the initial parameters */
            rc = ar_diverged(&tr, 1, 1, tr.fg_what);
        if (rc == RC_OK) rc = tr.rc;
        if (rc != RC_OK) goto done;
        if (in->verbose)
            log_info("autorec: L-BFGS stopped (%s) after %d iterations, %d evaluations, loss %.6g",
                     lbfgs_status_name(res.status), res.iters, res.evals, res.f);
        tr.iters = res.iters;
    } else {
        rprop_params rp;
        rprop_params_default(&rp);
        rp.step_init = hp->rprop_step;
        rp.step_max = hp->rprop_step_max;
        g = malloc(P * sizeof(float));
        st = malloc(P * sizeof(float));
        gp = malloc(P * sizeof(float));
        if (!g || !st || !gp) {
            rc = rc_error(RC_ENOMEM, "autorec: out of memory for Rprop's state");
            goto done;
        }
        rprop_init(&rp, st, gp, P);
        for (int it = 1; it <= hp->iters; it++) {
            double f = autorec_loss_grad(tr.p, m->slab, g, hp->lambda);
            size_t j = first_nonfinite(g, P);
            if (!isfinite(f) || j < P) {
                char what[64];
                snprintf(what, sizeof what, "%s %g", isfinite(f) ? "gradient" : "loss", isfinite(f) ? (double)g[j] : f);
                rc = ar_diverged(&tr, it, it == 1, what);
                goto done;
            }
            rprop_step(&rp, m->slab, g, st, gp, P);
            if (after_iter(&tr, it, f, m->slab, it)) break;
        }
        if ((rc = tr.rc) != RC_OK) goto done;
    }
    int kept = tr.best_iter > 0 ? tr.best_iter : tr.iters, validated = tr.best_iter > 0;
    char what[96];
    if (in->valid.n > 0 && tr.best_iter > 0) {
        memcpy(m->slab, tr.best, P * sizeof(float));
    } else if (in->valid.n > 0) {
        /* stopped before the first validation was due (L-BFGS: no progress, or its line search failed):
         * the final point is kept; measure it too */
        tr.best_rmse = valid_rmse_at(&tr, m->slab);
        if (!isfinite(tr.best_rmse)) {
            snprintf(what, sizeof what, "valid rmse %g", tr.best_rmse);
            rc = ar_diverged(&tr, kept, kept == 0, what);
            goto done;
        }
        validated = 1;
    }
    if (valid_rmse && validated) *valid_rmse = tr.best_rmse;
    if (iters_run) *iters_run = tr.iters;
    if (kept_iter) *kept_iter = kept;
    /* H of the kept parameters */
    encode_into(tr.p, m->slab);
    size_t E = (size_t)m->E * (size_t)m->K;
    if (first_nonfinite(m->slab, P) < P || first_nonfinite(tr.p->H, E) < E) {
        snprintf(what, sizeof what, "a parameter or hidden code of the iteration kept (%d) is not finite", kept);
        rc = ar_diverged(&tr, kept, kept == 0, what);
        goto done;
    }
    free(m->H_owned);
    m->H_owned = tr.p->H;
    m->H = m->H_owned;
    tr.p->H = NULL;
    if (in->verbose)
        log_info("autorec: trained in %.1fs, kept iteration %d (valid rmse %.5f)", clock_mono_s() - tr.t0, kept,
                 validated ? tr.best_rmse : NAN);
done:
    autorec_problem_free(tr.p);
    free(tr.best);
    free(tr.pred);
    free(g);
    free(st);
    free(gp);
    return rc;
}

/* ---- snapshot ------------------------------------------------------------------------------------ */

int autorec_save(const autorec *m, const rating_base_src *src, const char *root, const char *name,
                 const json_t *extra, uint64_t *version)
{
    if (version) *version = 0;
    if (!m->H) return rc_error(RC_EINVAL, "autorec: no hidden codes to save (train or autorec_encode first)");
    if (!name) name = m->variant == AUTOREC_ITEM ? "i-autorec" : "u-autorec";
    if ((int64_t)idmap_size(src->users) != m->U || (int64_t)idmap_size(src->items) != m->N)
        return rc_error(RC_EINVAL, "autorec: vocabularies (%zu users, %zu items) do not match the model (%lld, %lld)",
                        idmap_size(src->users), idmap_size(src->items), (long long)m->U, (long long)m->N);
    snap_writer *w = NULL;
    json_t *meta = NULL, *rating = NULL;
    int rc = snap_writer_open(&w, root, name, 0);
    if (rc) return rc;
    int64_t DK[2] = {m->D, m->K}, D1[1] = {m->D}, K1[1] = {m->K}, EK[2] = {m->E, m->K};
    if ((rc = snap_put_tensor(w, "W", SNAP_F32, 2, DK, m->W)) || (rc = snap_put_tensor(w, "b", SNAP_F32, 1, D1, m->b)) ||
        (rc = snap_put_tensor(w, "Vt", SNAP_F32, 2, DK, m->Vt)) || (rc = snap_put_tensor(w, "mu", SNAP_F32, 1, K1, m->mu)) ||
        (rc = snap_put_tensor(w, "H", SNAP_F32, 2, EK, m->H)) || (rc = rb_save(w, src, &rating)))
        goto fail;
    meta = extra ? json_deep_copy(extra) : json_object();
    int bad = !meta;
    if (meta) {
        bad |= json_object_set_new(meta, "variant", json_string(autorec_variant_name(m->variant)));
        bad |= json_object_set_new(meta, "hidden", json_integer(m->K));
        bad |= json_object_set(meta, "rating", rating);
        if (strcmp(name, "autorec") != 0) bad |= json_object_set_new(meta, "type", json_string("autorec"));
    }
    if (bad) {
        rc = rc_error(RC_ENOMEM, "autorec: out of memory for the snapshot's meta");
        goto fail;
    }
    if ((rc = snap_set_meta(w, meta))) goto fail;
    json_decref(meta);
    json_decref(rating);
    return snap_writer_publish(w, version);
fail:
    json_decref(meta);
    json_decref(rating);
    snap_writer_abort(w);
    return rc;
}

static int ar_load(void **out, const snap *s)
{
    *out = NULL;
    const json_t *meta = snap_meta(s);
    int v = autorec_variant_parse(json_string_value(json_object_get(meta, "variant")));
    const json_t *jk = json_object_get(meta, "hidden");
    if (v < 0 || !json_is_integer(jk) || json_integer_value(jk) < 1 || json_integer_value(jk) > (1 << 20))
        return rc_error(RC_ECORRUPT, "%s: meta lacks a valid \"variant\" (item|user) or \"hidden\"", snap_dir(s));
    autorec *m = calloc(1, sizeof *m);
    if (!m) return rc_error(RC_ENOMEM, "autorec: out of memory");
    int rc = rb_load(&m->base, s);
    if (rc) {
        free(m);
        return rc;
    }
    set_dims(m, v, m->base.n_users, m->base.n_items, (int)json_integer_value(jk));
    m->snap = s;
    int64_t DK[2] = {m->D, m->K}, D1[1] = {m->D}, K1[1] = {m->K}, EK[2] = {m->E, m->K};
    const snap_tensor *tW = snap_tensor_expect(s, "W", SNAP_F32, 2, DK);
    const snap_tensor *tb = tW ? snap_tensor_expect(s, "b", SNAP_F32, 1, D1) : NULL;
    const snap_tensor *tV = tb ? snap_tensor_expect(s, "Vt", SNAP_F32, 2, DK) : NULL;
    const snap_tensor *tmu = tV ? snap_tensor_expect(s, "mu", SNAP_F32, 1, K1) : NULL;
    const snap_tensor *tH = tmu ? snap_tensor_expect(s, "H", SNAP_F32, 2, EK) : NULL;
    if (!tH) {
        autorec_free(m);
        return RC_ECORRUPT;
    }
    m->W = tW->data;
    m->b = tb->data;
    m->Vt = tV->data;
    m->mu = tmu->data;
    m->H = tH->data;
    *out = m;
    return RC_OK;
}

static void ar_free(void *h)
{
    autorec_free(h);
}

static int ar_warm(const void *h)
{
    const autorec *m = h;
    if (m->snap) snap_warm(m->snap);
    return RC_OK;
}

static void ar_rate(const void *h, int32_t u, const int32_t *items, int B, float *out, uint8_t *fallback,
                    void *scratch)
{
    const autorec *m = h;
    (void)scratch;
    float def = m->base.default_rating;
    for (int k = 0; k < B; k++) {
        int32_t i = items[k];
        int unknown = u < 0 || u >= m->U || i < 0 || i >= m->N;
        out[k] = unknown ? def : predict_one(m, u, i);
        fallback[k] = (uint8_t)unknown;
    }
}

static void ar_score(const void *h, int32_t u, float *scores, void *scratch)
{
    const autorec *m = h;
    (void)scratch;
    for (int64_t i = 0; i < m->N; i++) scores[i] = predict_one(m, u, (int32_t)i);
}

static int ar_item_matrix(const void *h, model_item_matrix *out)
{
    const autorec *m = h;
    memset(out, 0, sizeof *out);
    out->n = m->N;
    out->d = m->K;
    out->q_offset = 0;
    if (m->variant == AUTOREC_ITEM) { /* score(u, i) = W[u] . H[i] + b[u]: b[u] is the per-user constant */
        out->w = m->H;
        out->bias = NULL;
    } else { /* score(u, i) = W[i] . H[u] + b[i] */
        out->w = m->W;
        out->bias = m->b;
    }
    return RC_OK;
}

static void ar_query(const void *h, int32_t u, float *q, void *scratch)
{
    const autorec *m = h;
    (void)scratch;
    const float *src = m->variant == AUTOREC_ITEM ? m->W + (size_t)u * m->K : m->H + (size_t)u * m->K;
    memcpy(q, src, (size_t)m->K * sizeof(float));
}

static const model_rate_ops ar_rate_ops = {
    .scratch_new = rb_no_scratch_rate, /* `rate` and `recommend` need no scratch: rating_base.h's token */
    .scratch_free = rb_no_scratch_free,
    .predict = ar_rate,
};

static const model_recommend_ops ar_recommend_ops = {
    .seen = rb_type_seen,
    .scratch_new = rb_no_scratch_recommend,
    .scratch_free = rb_no_scratch_free,
    .score = ar_score,
    .item_matrix = ar_item_matrix,
    .query = ar_query,
};

const model_type autorec_type = {
    .name = "autorec",
    .help = "AutoRec rating autoencoder, item-based (I-AutoRec) or user-based (U-AutoRec)",
    .load = ar_load,
    .free = ar_free,
    .warm = ar_warm,
    .items = rb_type_items,
    .users = rb_type_users,
    .popular = rb_type_popular,
    .rate = &ar_rate_ops,
    .recommend = &ar_recommend_ops,
};
