/* models/itemknn.c - session item-kNN: build (fast and naive), snapshot I/O, serving (models/itemknn.h). */
#include "models/itemknn.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/hash.h"

struct itemknn {
    itemknn_hparams hp;
    int64_t N;              /* items */
    int64_t K;              /* stored neighbours */
    const int64_t *offsets; /* (N+1) */
    const int32_t *nbr;     /* (K) */
    const float *sim;       /* (K) */
    const float *pop;       /* (N) recency-weighted clicks */
    const int32_t *popular; /* (N) by pop descending, ties by index */
    float *prior;           /* (N) pop_prior * pop / max pop: the first term of every score row (owned) */
    const idmap *items;     /* borrowed (build) or owned_items (load) */
    idmap *owned_items;
    void *owned;            /* built models: one allocation behind offsets..popular (NULL when loaded) */
    uint64_t fingerprint;
};

/* ---- hyperparameters ---------------------------------------------------------------------------- */

static const char *const norm_names[] = {"cosine", "conditional"};

const char *itemknn_normalize_name(int normalize)
{
    return normalize >= 0 && normalize < 2 ? norm_names[normalize] : NULL;
}

int itemknn_normalize_parse(const char *name)
{
    for (int i = 0; i < 2; i++)
        if (name && strcmp(name, norm_names[i]) == 0) return i;
    return -1;
}

void itemknn_hparams_default(itemknn_hparams *hp)
{
    *hp = (itemknn_hparams){.neighbours = ITEMKNN_DEF_NEIGHBOURS,
                           .window = ITEMKNN_DEF_WINDOW,
                           .history = ITEMKNN_DEF_HISTORY,
                           .normalize = itemknn_normalize_parse(ITEMKNN_DEF_NORMALIZE),
                           .alpha = ITEMKNN_DEF_ALPHA,
                           .lambda = ITEMKNN_DEF_LAMBDA,
                           .position_decay = ITEMKNN_DEF_POSITION_DECAY,
                           .backward = ITEMKNN_DEF_BACKWARD,
                           .half_life = 0,
                           .decay = ITEMKNN_DEF_DECAY,
                           .pop_prior = ITEMKNN_DEF_POP_PRIOR};
}

int itemknn_hparams_check(const itemknn_hparams *hp)
{
    if (hp->neighbours < 1 || hp->neighbours > 100000)
        return rc_error(RC_EINVAL, "itemknn: neighbours %d not in 1..100000", hp->neighbours);
    if (hp->window < 1) return rc_error(RC_EINVAL, "itemknn: window %d < 1", hp->window);
    if (hp->history < 1 || hp->history > ITEMKNN_MAX_HISTORY)
        return rc_error(RC_EINVAL, "itemknn: history %d not in 1..%d", hp->history, ITEMKNN_MAX_HISTORY);
    if (!itemknn_normalize_name(hp->normalize))
        return rc_error(RC_EINVAL, "itemknn: normalize %d unknown", hp->normalize);
    if (!(hp->alpha >= 0 && hp->alpha <= 1)) return rc_error(RC_EINVAL, "itemknn: alpha %g not in [0,1]", hp->alpha);
    if (!(hp->lambda >= 0 && hp->lambda <= 1e12)) return rc_error(RC_EINVAL, "itemknn: lambda %g not in [0,1e12]", hp->lambda);
    if (!(hp->position_decay > 0 && hp->position_decay <= 1))
        return rc_error(RC_EINVAL, "itemknn: position_decay %g not in (0,1]", hp->position_decay);
    if (!(hp->backward >= 0 && hp->backward <= 1))
        return rc_error(RC_EINVAL, "itemknn: backward %g not in [0,1]", hp->backward);
    if (!(hp->half_life >= 0 && hp->half_life <= 1e300))
        return rc_error(RC_EINVAL, "itemknn: half_life %g negative or not finite", hp->half_life);
    if (!(hp->decay >= 0 && hp->decay <= 1)) return rc_error(RC_EINVAL, "itemknn: decay %g not in [0,1]", hp->decay);
    if (!(hp->pop_prior >= 0 && hp->pop_prior <= 1e6))
        return rc_error(RC_EINVAL, "itemknn: pop_prior %g not in [0,1e6]", hp->pop_prior);
    return RC_OK;
}

json_t *itemknn_hparams_to_json(const itemknn_hparams *hp)
{
    return json_pack("{s:i, s:i, s:i, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "neighbours", hp->neighbours,
                     "window", hp->window, "history", hp->history, "normalize",
                     itemknn_normalize_name(hp->normalize), "alpha", hp->alpha, "lambda", hp->lambda,
                     "position_decay", hp->position_decay, "backward", hp->backward, "half_life", hp->half_life,
                     "decay", hp->decay, "pop_prior", hp->pop_prior);
}

int itemknn_hparams_from_json(itemknn_hparams *hp, const json_t *o)
{
    if (!json_is_object(o)) return rc_error(RC_EINVAL, "itemknn: hparams is not an object");
    struct { const char *k; int *i; double *d; } f[] = {
        {"neighbours", &hp->neighbours, NULL}, {"window", &hp->window, NULL}, {"history", &hp->history, NULL},
        {"alpha", NULL, &hp->alpha}, {"lambda", NULL, &hp->lambda}, {"position_decay", NULL, &hp->position_decay},
        {"backward", NULL, &hp->backward}, {"half_life", NULL, &hp->half_life}, {"decay", NULL, &hp->decay},
        {"pop_prior", NULL, &hp->pop_prior},
    };
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
        const json_t *v = json_object_get(o, f[k].k);
        if (!v) continue;
        if (f[k].i) {
            if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX)
                return rc_error(RC_EINVAL, "itemknn: hparams.%s is not a 32-bit integer", f[k].k);
            *f[k].i = (int)json_integer_value(v);
        } else {
            if (!json_is_number(v)) return rc_error(RC_EINVAL, "itemknn: hparams.%s is not a number", f[k].k);
            *f[k].d = json_number_value(v);
        }
    }
    const json_t *v = json_object_get(o, "normalize");
    if (v) {
        int n = itemknn_normalize_parse(json_string_value(v));
        if (n < 0) return rc_error(RC_EINVAL, "itemknn: hparams.normalize is not \"cosine\" or \"conditional\"");
        hp->normalize = n;
    }
    return itemknn_hparams_check(hp);
}

/* ---- common pieces of both builds ----------------------------------------------------------------- */

static int check_sessions(const itemknn_hparams *hp, const idmap *items, const itemknn_sessions *d)
{
    int rc = itemknn_hparams_check(hp);
    if (rc) return rc;
    if (!items || idmap_size(items) == 0) return rc_error(RC_EINVAL, "itemknn: empty item vocabulary");
    if (idmap_size(items) > INT32_MAX - 1) return rc_error(RC_EINVAL, "itemknn: too many items");
    if (d->n_sessions < 0 || (d->n_sessions > 0 && (!d->offsets || !d->items)) || (d->offsets && d->offsets[0] != 0))
        return rc_error(RC_EINVAL, "itemknn: bad sessions (offsets must start at 0)");
    int64_t N = (int64_t)idmap_size(items);
    for (int64_t s = 0; s < d->n_sessions; s++) {
        if (d->offsets[s + 1] < d->offsets[s])
            return rc_error(RC_EINVAL, "itemknn: offsets decrease at session %lld", (long long)s);
        for (int64_t e = d->offsets[s]; e < d->offsets[s + 1]; e++)
            if (d->items[e] < 0 || d->items[e] >= N)
                return rc_error(RC_EINVAL, "itemknn: item %d of session %lld outside [0,%lld)", (int)d->items[e],
                                (long long)s, (long long)N);
    }
    return RC_OK;
}

/* ws (Q): the recency weight of each session (1 when half_life is 0 or there are no timestamps). */
static void session_weights(const itemknn_hparams *hp, const itemknn_sessions *d, double *ws)
{
    int64_t Q = d->n_sessions, tmax = INT64_MIN;
    int recency = hp->half_life > 0 && d->times && Q > 0 && d->offsets[Q] > 0;
    if (recency)
        for (int64_t e = 0; e < d->offsets[Q]; e++)
            if (d->times[e] > tmax) tmax = d->times[e];
    for (int64_t s = 0; s < Q; s++) {
        ws[s] = 1.0;
        if (!recency || d->offsets[s + 1] == d->offsets[s]) continue;
        int64_t tlast = INT64_MIN;
        for (int64_t e = d->offsets[s]; e < d->offsets[s + 1]; e++)
            if (d->times[e] > tlast) tlast = d->times[e];
        ws[s] = exp2(-((double)tmax - (double)tlast) / hp->half_life);
    }
}

/* The normaliser of cooc(i,j): supp (N) the weighted supports. */
static inline double norm_of(const itemknn_hparams *hp, const double *supp, int64_t i, int64_t j)
{
    if (hp->normalize == ITEMKNN_CONDITIONAL) return supp[i] + hp->lambda;
    double n = pow(supp[i] + hp->lambda, hp->alpha) * pow(supp[j] + hp->lambda, 1.0 - hp->alpha);
    return n > 0 ? n : 1.0;
}

typedef struct nbr_entry {
    int32_t j;
    float s;
} nbr_entry;

static int cmp_nbr(const void *a, const void *b)
{
    const nbr_entry *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

/* The model's storage: offsets (N+1), nbr (K), sim (K), pop (N), popular (N) in one allocation, then
 * the popularity order, prior and fingerprint. Takes ownership of nothing: copies nbr/sim (K each). */
static int cmp_pop(const void *a, const void *b, void *ctx)
{
    const float *pop = ctx;
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (pop[i] != pop[j]) return pop[i] > pop[j] ? -1 : 1;
    return (i > j) - (i < j);
}

static size_t pad64(size_t n) { return (n + 63) & ~(size_t)63; }

static void finish(itemknn *m); /* prior and fingerprint */

static int assemble(itemknn **out, const itemknn_hparams *hp, const idmap *items, const int64_t *offsets,
                    const int32_t *nbr, const float *sim, const double *supp)
{
    int64_t N = (int64_t)idmap_size(items), K = offsets[N];
    itemknn *m = calloc(1, sizeof *m);
    size_t b_off = pad64((size_t)(N + 1) * 8), b_nbr = pad64((size_t)K * 4), b_sim = pad64((size_t)K * 4),
           b_pop = pad64((size_t)N * 4), b_popl = pad64((size_t)N * 4);
    char *base = m ? aligned_alloc(64, b_off + b_nbr + b_sim + b_pop + b_popl) : NULL;
    if (!m || !base) {
        free(m);
        return rc_error(RC_ENOMEM, "itemknn: out of memory (%lld neighbours)", (long long)K);
    }
    m->owned = base;
    m->hp = *hp;
    m->N = N;
    m->K = K;
    int64_t *o = (int64_t *)base;
    int32_t *nb = (int32_t *)(base + b_off);
    float *sm = (float *)(base + b_off + b_nbr), *pop = (float *)(base + b_off + b_nbr + b_sim);
    int32_t *popular = (int32_t *)(base + b_off + b_nbr + b_sim + b_pop);
    memcpy(o, offsets, (size_t)(N + 1) * sizeof *o);
    if (K) memcpy(nb, nbr, (size_t)K * sizeof *nb);
    if (K) memcpy(sm, sim, (size_t)K * sizeof *sm);
    for (int64_t i = 0; i < N; i++) {
        pop[i] = (float)supp[i];
        popular[i] = (int32_t)i;
    }
    qsort_r(popular, (size_t)N, sizeof *popular, cmp_pop, pop);
    m->offsets = o;
    m->nbr = nb;
    m->sim = sm;
    m->pop = pop;
    m->popular = popular;
    m->items = items;
    m->prior = malloc((size_t)N * sizeof *m->prior);
    if (!m->prior) {
        itemknn_free(m);
        return rc_error(RC_ENOMEM, "itemknn: out of memory");
    }
    finish(m);
    *out = m;
    return RC_OK;
}

/* ---- naive build: dense (N,N) ------------------------------------------------------------------------ */

int itemknn_build_naive(itemknn **out, const itemknn_hparams *hp, const idmap *items, const itemknn_sessions *d)
{
    *out = NULL;
    int rc = check_sessions(hp, items, d);
    if (rc) return rc;
    int64_t N = (int64_t)idmap_size(items), Q = d->n_sessions, M = hp->neighbours;
    double *C = calloc((size_t)(N * N), sizeof *C); /* C is (N,N): cooc(i,j) at C[i*N+j] */
    double *supp = calloc((size_t)N, sizeof *supp), *ws = malloc((size_t)(Q ? Q : 1) * sizeof *ws);
    nbr_entry *row = malloc((size_t)N * sizeof *row);
    int64_t *offsets = calloc((size_t)N + 1, sizeof *offsets);
    int32_t *nbr = malloc((size_t)(N * (M < N ? M : N)) * sizeof *nbr + 4);
    float *sim = malloc((size_t)(N * (M < N ? M : N)) * sizeof *sim + 4);
    if (!C || !supp || !ws || !row || !offsets || !nbr || !sim) {
        rc = rc_error(RC_ENOMEM, "itemknn: out of memory (naive build, %lld items)", (long long)N);
        goto done;
    }
    session_weights(hp, d, ws);
    for (int64_t s = 0; s < Q; s++)
        for (int64_t p = d->offsets[s]; p < d->offsets[s + 1]; p++) {
            int64_t i = d->items[p];
            supp[i] += ws[s];
            for (int64_t q = d->offsets[s]; q < d->offsets[s + 1]; q++) {
                int64_t j = d->items[q], dist = q > p ? q - p : p - q;
                if (j == i || dist == 0 || dist > hp->window) continue;
                C[i * N + j] += ws[s] * pow(hp->position_decay, (double)(dist - 1)) * (q < p ? hp->backward : 1.0);
            }
        }
    int64_t K = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t n = 0;
        for (int64_t j = 0; j < N; j++) {
            float v = (float)(C[i * N + j] / norm_of(hp, supp, i, j));
            if (v > 0) row[n++] = (nbr_entry){(int32_t)j, v};
        }
        qsort(row, (size_t)n, sizeof *row, cmp_nbr);
        if (n > M) n = M;
        for (int64_t k = 0; k < n; k++) {
            nbr[K + k] = row[k].j;
            sim[K + k] = row[k].s;
        }
        K += n;
        offsets[i + 1] = K;
    }
    rc = assemble(out, hp, items, offsets, nbr, sim, supp);
done:
    free(C);
    free(supp);
    free(ws);
    free(row);
    free(offsets);
    free(nbr);
    free(sim);
    return rc;
}

/* ---- fast build: inverted index, one sparse row at a time ------------------------------------------- */

typedef struct build_ctx {
    const itemknn_hparams *hp;
    const itemknn_sessions *d;
    int64_t N;
    const int64_t *ioff;   /* (N+1) the clicks of item i are iev[ioff[i] .. ioff[i+1]) */
    const int64_t *iev;    /* (E) click positions, ascending within an item */
    const int64_t *esess;  /* (E) session of each click */
    const double *ws;      /* (Q) */
    const double *supp;    /* (N) */
    const double *posw;    /* (P) posw[d-1] = position_decay^(d-1), P = min(W, longest session) */
    int64_t P;
} build_ctx;

typedef struct build_part {
    const build_ctx *c;
    int64_t i0, i1;        /* items [i0, i1) */
    int64_t *cnt;          /* (i1-i0) neighbours of each item */
    int32_t *nbr;          /* (cap) */
    float *sim;            /* (cap) */
    int64_t n, cap;
    int rc;                /* RC_ENOMEM when the thread ran out of memory (messages are per thread: the
                              caller sets it) */
} build_part;

static void *build_rows(void *arg)
{
    build_part *pt = arg;
    const build_ctx *c = pt->c;
    const itemknn_hparams *hp = c->hp;
    const itemknn_sessions *d = c->d;
    int64_t N = c->N, M = hp->neighbours, W = hp->window;
    double *acc = malloc((size_t)N * sizeof *acc);       /* (N) cooc(i, .) of the current row */
    int32_t *mark = malloc((size_t)N * sizeof *mark);    /* (N) i+1 once touched by row i */
    nbr_entry *row = malloc((size_t)N * sizeof *row);    /* (N) the touched entries of the row */
    if (!acc || !mark || !row) {
        pt->rc = RC_ENOMEM;
        goto done;
    }
    for (int64_t j = 0; j < N; j++) mark[j] = -1;
    for (int64_t i = pt->i0; i < pt->i1; i++) {
        int64_t n = 0;
        for (int64_t k = c->ioff[i]; k < c->ioff[i + 1]; k++) {
            int64_t p = c->iev[k], s = c->esess[k];
            int64_t lo = d->offsets[s], hi = d->offsets[s + 1];
            if (p - lo > W) lo = p - W;
            if (hi - p - 1 > W) hi = p + W + 1;
            double w = c->ws[s];
            for (int64_t q = lo; q < hi; q++) {
                int32_t j = d->items[q];
                if (j == i || q == p) continue;
                int64_t dist = q > p ? q - p : p - q;
                double v = w * c->posw[dist - 1] * (q < p ? hp->backward : 1.0);
                if (mark[j] != (int32_t)i) {
                    mark[j] = (int32_t)i;
                    acc[j] = 0;
                    row[n++].j = j;
                }
                acc[j] += v;
            }
        }
        int64_t kept = 0;
        for (int64_t t = 0; t < n; t++) {
            int32_t j = row[t].j;
            float v = (float)(acc[j] / norm_of(hp, c->supp, i, j));
            if (v > 0) row[kept++] = (nbr_entry){j, v};
        }
        qsort(row, (size_t)kept, sizeof *row, cmp_nbr);
        if (kept > M) kept = M;
        if (pt->n + kept > pt->cap) {
            int64_t cap = pt->cap ? pt->cap : 1024;
            while (cap < pt->n + kept) cap *= 2;
            int32_t *nb = realloc(pt->nbr, (size_t)cap * sizeof *nb);
            if (nb) pt->nbr = nb;
            float *sm = nb ? realloc(pt->sim, (size_t)cap * sizeof *sm) : NULL;
            if (sm) pt->sim = sm;
            if (!nb || !sm) {
                pt->rc = RC_ENOMEM;
                goto done;
            }
            pt->cap = cap;
        }
        for (int64_t t = 0; t < kept; t++) {
            pt->nbr[pt->n + t] = row[t].j;
            pt->sim[pt->n + t] = row[t].s;
        }
        pt->n += kept;
        pt->cnt[i - pt->i0] = kept;
    }
done:
    free(acc);
    free(mark);
    free(row);
    return NULL;
}

int itemknn_build(itemknn **out, const itemknn_hparams *hp, const idmap *items, const itemknn_sessions *d,
                  int threads)
{
    *out = NULL;
    int rc = check_sessions(hp, items, d);
    if (rc) return rc;
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    int64_t N = (int64_t)idmap_size(items), Q = d->n_sessions, E = Q ? d->offsets[Q] : 0, longest = 1;
    for (int64_t s = 0; s < Q; s++)
        if (d->offsets[s + 1] - d->offsets[s] > longest) longest = d->offsets[s + 1] - d->offsets[s];
    int64_t P = longest < hp->window ? longest : hp->window;
    int64_t *ioff = calloc((size_t)N + 1, sizeof *ioff), *iev = malloc((size_t)(E ? E : 1) * sizeof *iev);
    int64_t *esess = malloc((size_t)(E ? E : 1) * sizeof *esess), *offsets = calloc((size_t)N + 1, sizeof *offsets);
    int64_t *cnt = calloc((size_t)N, sizeof *cnt);
    double *ws = malloc((size_t)(Q ? Q : 1) * sizeof *ws), *supp = calloc((size_t)N, sizeof *supp);
    double *posw = malloc((size_t)P * sizeof *posw);
    build_part *parts = calloc((size_t)threads, sizeof *parts);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    int32_t *nbr = NULL;
    float *sim = NULL;
    if (!ioff || !iev || !esess || !offsets || !cnt || !ws || !supp || !posw || !parts || !tid) {
        rc = rc_error(RC_ENOMEM, "itemknn: out of memory (index of %lld clicks)", (long long)E);
        goto done;
    }
    session_weights(hp, d, ws);
    for (int64_t k = 0; k < P; k++) posw[k] = pow(hp->position_decay, (double)k);
    /* inverted index by counting sort: clicks of each item in ascending position */
    for (int64_t e = 0; e < E; e++) ioff[d->items[e] + 1]++;
    for (int64_t i = 0; i < N; i++) ioff[i + 1] += ioff[i];
    for (int64_t s = 0; s < Q; s++)
        for (int64_t e = d->offsets[s]; e < d->offsets[s + 1]; e++) {
            int64_t i = d->items[e], k = ioff[i] + (int64_t)cnt[i]++;
            iev[k] = e;
            esess[k] = s;
            supp[i] += ws[s];
        }
    build_ctx c = {hp, d, N, ioff, iev, esess, ws, supp, posw, P};
    /* split the items so each thread gets about the same number of co-occurrence candidates */
    int64_t i0 = 0;
    double total = 0, done_w = 0;
    for (int64_t i = 0; i < N; i++) total += (double)(ioff[i + 1] - ioff[i]);
    int started = 0;
    for (int t = 0; t < threads; t++) {
        int64_t i1 = i0;
        double goal = total * (t + 1) / threads;
        while (i1 < N && (t == threads - 1 || done_w < goal)) {
            done_w += (double)(ioff[i1 + 1] - ioff[i1]);
            i1++;
        }
        parts[t] = (build_part){.c = &c, .i0 = i0, .i1 = i1, .cnt = cnt + i0};
        i0 = i1;
    }
    memset(cnt, 0, (size_t)N * sizeof *cnt);
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tid[t], NULL, build_rows, &parts[t]) != 0) break;
        started = t;
    }
    build_rows(&parts[0]);
    for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
    for (int t = started + 1; t < threads; t++) build_rows(&parts[t]); /* threads that did not start */
    for (int t = 0; t < threads; t++)
        if (parts[t].rc) {
            rc = rc_error(RC_ENOMEM, "itemknn: out of memory building the neighbours of items %lld..%lld",
                          (long long)parts[t].i0, (long long)parts[t].i1 - 1);
            goto done;
        }
    for (int64_t i = 0; i < N; i++) offsets[i + 1] = offsets[i] + cnt[i];
    int64_t K = offsets[N];
    nbr = malloc((size_t)(K ? K : 1) * sizeof *nbr);
    sim = malloc((size_t)(K ? K : 1) * sizeof *sim);
    if (!nbr || !sim) {
        rc = rc_error(RC_ENOMEM, "itemknn: out of memory (%lld neighbours)", (long long)K);
        goto done;
    }
    int64_t k = 0;
    for (int t = 0; t < threads; t++) {
        if (parts[t].n) memcpy(nbr + k, parts[t].nbr, (size_t)parts[t].n * sizeof *nbr);
        if (parts[t].n) memcpy(sim + k, parts[t].sim, (size_t)parts[t].n * sizeof *sim);
        k += parts[t].n;
    }
    rc = assemble(out, hp, items, offsets, nbr, sim, supp);
done:
    if (parts)
        for (int t = 0; t < threads; t++) {
            free(parts[t].nbr);
            free(parts[t].sim);
        }
    free(parts);
    free(tid);
    free(ioff);
    free(iev);
    free(esess);
    free(offsets);
    free(cnt);
    free(ws);
    free(supp);
    free(posw);
    free(nbr);
    free(sim);
    return rc;
}

void itemknn_free(itemknn *m)
{
    if (!m) return;
    free(m->owned);
    free(m->prior);
    idmap_free(m->owned_items);
    free(m);
}

/* ---- accessors ------------------------------------------------------------------------------------- */

int64_t itemknn_n_items(const itemknn *m) { return m->N; }
int64_t itemknn_nnz(const itemknn *m) { return m->K; }
size_t itemknn_state_size(const itemknn *m) { return (size_t)m->hp.history; }
const itemknn_hparams *itemknn_hparams_of(const itemknn *m) { return &m->hp; }
const idmap *itemknn_items(const itemknn *m) { return m->items; }
const int32_t *itemknn_popular(const itemknn *m) { return m->popular; }
uint64_t itemknn_state_fingerprint(const itemknn *m) { return m->fingerprint; }

int64_t itemknn_neighbours(const itemknn *m, int32_t i, const int32_t **nbr, const float **sim)
{
    int64_t a = m->offsets[i], b = m->offsets[i + 1];
    *nbr = m->nbr + a;
    *sim = m->sim + a;
    return b - a;
}

static void finish(itemknn *m)
{
    float mx = 0;
    for (int64_t i = 0; i < m->N; i++)
        if (m->pop[i] > mx) mx = m->pop[i];
    for (int64_t i = 0; i < m->N; i++) m->prior[i] = mx > 0 ? (float)(m->hp.pop_prior * (double)(m->pop[i] / mx)) : 0.0f;
    uint64_t h = hash_str("itemknn", 0x6974656d6b6e6e00ULL);
    int64_t dims[2] = {m->N, m->hp.history};
    h = hash_combine(h, dims, sizeof dims);
    for (int64_t i = 0; i < m->N; i++) {
        size_t len = 0;
        const char *k = idmap_key(m->items, i, &len);
        h = hash_combine(h, k, k ? len : 0);
    }
    m->fingerprint = h;
}

/* ---- snapshot I/O ---------------------------------------------------------------------------------- */

int itemknn_save(const itemknn *m, const char *root, const char *name, const json_t *extra_meta, uint64_t *version)
{
    snap_writer *w = NULL;
    json_t *meta = NULL;
    int rc = snap_writer_open(&w, root, name ? name : "itemknn", 0);
    if (rc) return rc;
    int64_t shp[1] = {m->N + 1};
    if ((rc = snap_put_tensor(w, "offsets", SNAP_I64, 1, shp, m->offsets))) goto fail;
    shp[0] = m->K;
    if ((rc = snap_put_tensor(w, "nbr", SNAP_I32, 1, shp, m->nbr))) goto fail;
    if ((rc = snap_put_tensor(w, "sim", SNAP_F32, 1, shp, m->sim))) goto fail;
    shp[0] = m->N;
    if ((rc = snap_put_tensor(w, "pop", SNAP_F32, 1, shp, m->pop))) goto fail;
    if ((rc = snap_put_tensor(w, "popular", SNAP_I32, 1, shp, m->popular))) goto fail;
    if ((rc = snap_put_vocab(w, "items", m->items))) goto fail;
    json_t *hj = itemknn_hparams_to_json(&m->hp);
    meta = json_object();
    if (!meta || !hj) {
        json_decref(hj);
        rc = rc_error(RC_ENOMEM, "itemknn: out of memory (meta)");
        goto fail;
    }
    if (extra_meta && json_is_object(extra_meta)) json_object_update(meta, (json_t *)extra_meta);
    json_object_set_new(meta, "hparams", hj);
    json_object_set_new(meta, "n_items", json_integer(m->N));
    json_object_set_new(meta, "nnz", json_integer(m->K));
    json_object_set_new(meta, "state_size", json_integer(m->hp.history));
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)m->fingerprint);
    json_object_set_new(meta, "state_fingerprint", json_string(fp));
    if ((rc = snap_set_meta(w, meta))) goto fail;
    json_decref(meta);
    return snap_writer_publish(w, version);
fail:
    json_decref(meta);
    snap_writer_abort(w);
    return rc;
}

int itemknn_load(itemknn **out, const snap *s)
{
    *out = NULL;
    int rc = RC_OK;
    const json_t *meta = snap_meta(s);
    const char *dir = snap_dir(s);
    itemknn *m = calloc(1, sizeof *m);
    if (!m) return rc_error(RC_ENOMEM, "itemknn: out of memory");
    itemknn_hparams_default(&m->hp);
    const json_t *hj = json_object_get(meta, "hparams"), *nj = json_object_get(meta, "n_items"),
                 *kj = json_object_get(meta, "nnz");
    if (!hj || !json_is_integer(nj) || json_integer_value(nj) < 1 || json_integer_value(nj) > INT32_MAX - 1 ||
        !json_is_integer(kj) || json_integer_value(kj) < 0) {
        rc = rc_error(RC_ECORRUPT, "itemknn: %s: meta lacks hparams or a valid n_items / nnz", dir);
        goto fail;
    }
    if ((rc = itemknn_hparams_from_json(&m->hp, hj))) {
        rc = rc_wrap(RC_ECORRUPT, "%s", dir);
        goto fail;
    }
    int64_t N = json_integer_value(nj), K = json_integer_value(kj);
    m->N = N;
    m->K = K;
    int64_t shp[1] = {N + 1};
    const snap_tensor *to = snap_tensor_expect(s, "offsets", SNAP_I64, 1, shp);
    shp[0] = K;
    const snap_tensor *tn = to ? snap_tensor_expect(s, "nbr", SNAP_I32, 1, shp) : NULL;
    const snap_tensor *ts = tn ? snap_tensor_expect(s, "sim", SNAP_F32, 1, shp) : NULL;
    shp[0] = N;
    const snap_tensor *tp = ts ? snap_tensor_expect(s, "pop", SNAP_F32, 1, shp) : NULL;
    const snap_tensor *tl = tp ? snap_tensor_expect(s, "popular", SNAP_I32, 1, shp) : NULL;
    if (!tl) {
        rc = RC_ECORRUPT;
        goto fail;
    }
    m->offsets = to->data;
    m->nbr = tn->data;
    m->sim = ts->data;
    m->pop = tp->data;
    m->popular = tl->data;
    if (m->offsets[0] != 0 || m->offsets[N] != K) {
        rc = rc_error(RC_ECORRUPT, "itemknn: %s: tensor offsets does not run from 0 to nnz %lld", dir, (long long)K);
        goto fail;
    }
    for (int64_t i = 0; i < N; i++)
        if (m->offsets[i + 1] < m->offsets[i]) {
            rc = rc_error(RC_ECORRUPT, "itemknn: %s: tensor offsets decreases at item %lld", dir, (long long)i);
            goto fail;
        }
    for (int64_t k = 0; k < K; k++) {
        if (m->nbr[k] < 0 || m->nbr[k] >= N) {
            rc = rc_error(RC_ECORRUPT, "itemknn: %s: tensor nbr holds index %d outside [0,%lld)", dir, (int)m->nbr[k],
                          (long long)N);
            goto fail;
        }
        if (!(fabsf(m->sim[k]) <= ITEMKNN_MAX_WEIGHT)) { /* NaN fails too */
            rc = rc_error(RC_ECORRUPT, "itemknn: %s: tensor sim holds %g at %lld (non-finite or beyond +-%g)", dir,
                          (double)m->sim[k], (long long)k, ITEMKNN_MAX_WEIGHT);
            goto fail;
        }
    }
    /* popular must be a permutation of [0,N): a repeated index would list an item twice in a fallback */
    uint8_t *seen = calloc((size_t)N + 1, 1);
    if (!seen) {
        rc = rc_error(RC_ENOMEM, "itemknn: out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < N; i++) {
        if (m->popular[i] < 0 || m->popular[i] >= N || seen[m->popular[i]]++) {
            rc = rc_error(RC_ECORRUPT, "itemknn: %s: tensor popular is not a permutation of [0,%lld) (index %d at %lld)",
                          dir, (long long)N, (int)m->popular[i], (long long)i);
            free(seen);
            goto fail;
        }
        if (!(m->pop[i] >= 0 && m->pop[i] <= ITEMKNN_MAX_WEIGHT)) {
            rc = rc_error(RC_ECORRUPT, "itemknn: %s: tensor pop holds %g at %lld (negative, non-finite or beyond %g)",
                          dir, (double)m->pop[i], (long long)i, ITEMKNN_MAX_WEIGHT);
            free(seen);
            goto fail;
        }
    }
    free(seen);
    if ((rc = snap_vocab_load(s, "items", &m->owned_items))) goto fail;
    if ((int64_t)idmap_size(m->owned_items) != N) {
        rc = rc_error(RC_ECORRUPT, "itemknn: %s: vocab items has %zu ids, n_items is %lld", dir,
                      idmap_size(m->owned_items), (long long)N);
        goto fail;
    }
    m->items = m->owned_items;
    m->prior = malloc((size_t)N * sizeof *m->prior);
    if (!m->prior) {
        rc = rc_error(RC_ENOMEM, "itemknn: out of memory");
        goto fail;
    }
    finish(m);
    *out = m;
    return RC_OK;
fail:
    itemknn_free(m);
    return rc;
}

/* ---- serving ----------------------------------------------------------------------------------------- */

void itemknn_step(const itemknn *m, float *state, const int32_t *items, int B)
{
    size_t S = (size_t)m->hp.history;
    for (int b = 0; b < B; b++) {
        float *st = state + (size_t)b * S; /* st is (S): item+1 bit patterns, most recent first */
        memmove(st + 1, st, (S - 1) * sizeof *st);
        int32_t v = items[b] + 1;
        memcpy(&st[0], &v, sizeof v);
    }
}

void itemknn_score(const itemknn *m, const float *state, int B, float *scores)
{
    size_t S = (size_t)m->hp.history, N = (size_t)m->N;
    float decay = (float)m->hp.decay;
    for (int b = 0; b < B; b++) {
        const float *st = state + (size_t)b * S;
        float *row = scores + (size_t)b * N; /* row is (N) */
        memcpy(row, m->prior, N * sizeof *row);
        float w = 1.0f;
        for (size_t a = 0; a < S && w > 0; a++, w *= decay) {
            int32_t v;
            memcpy(&v, &st[a], sizeof v);
            if (v < 1 || (int64_t)v > m->N) continue;
            int64_t k0 = m->offsets[v - 1], k1 = m->offsets[v];
            const int32_t *nb = m->nbr;
            const float *sm = m->sim;
            for (int64_t k = k0; k < k1; k++) row[nb[k]] += w * sm[k];
        }
    }
}

/* ---- model_type -------------------------------------------------------------------------------------- */

static int type_load(void **handle, const snap *s)
{
    itemknn *m = NULL;
    int rc = itemknn_load(&m, s);
    *handle = m;
    return rc;
}

static void type_free(void *handle) { itemknn_free(handle); }
static uint64_t type_fingerprint(const void *handle) { return itemknn_state_fingerprint(handle); }
static const idmap *type_items(const void *handle) { return itemknn_items(handle); }
static const int32_t *type_popular(const void *handle) { return itemknn_popular(handle); }

/* Score a few sessions of popular items: touches the neighbour lists that serve most traffic. */
static int type_warm(const void *handle)
{
    const itemknn *m = handle;
    size_t S = (size_t)m->hp.history;
    float *st = calloc(4 * S, sizeof *st), *scores = malloc(4 * (size_t)m->N * sizeof *scores);
    int rc = RC_OK;
    if (!st || !scores) {
        rc = rc_error(RC_ENOMEM, "itemknn: out of memory (warm-up)");
        goto done;
    }
    for (int t = 0; t < 3; t++) {
        int32_t items[4];
        for (int b = 0; b < 4; b++) items[b] = m->popular[(size_t)(4 * t + b) % (size_t)m->N];
        itemknn_step(m, st, items, 4);
        itemknn_score(m, st, 4, scores);
    }
done:
    free(st);
    free(scores);
    return rc;
}

static size_t next_state_size(const void *m) { return itemknn_state_size(m); }
/* step and score need no scratch: a non-NULL token stands for it. */
static char scratch_token;
static void *next_scratch_new(const void *m, int max_batch)
{
    (void)m;
    (void)max_batch;
    return &scratch_token;
}
static void next_scratch_free(void *sc) { (void)sc; }
static void next_step(const void *m, float *state, const int32_t *items, int B, void *sc)
{
    (void)sc;
    itemknn_step(m, state, items, B);
}
static void next_score(const void *m, const float *state, int B, float *scores, void *sc)
{
    (void)sc;
    itemknn_score(m, state, B, scores);
}

static const model_next_ops itemknn_next = {next_state_size, next_scratch_new, next_scratch_free, next_step,
                                            next_score, NULL};

const model_type itemknn_type = {
    .name = "itemknn",
    .help = "session item-kNN: co-occurrence neighbours of the recent clicks (GRU4Rec's ItemKNN, session-weighted)",
    .load = type_load,
    .free = type_free,
    .fingerprint = type_fingerprint,
    .warm = type_warm,
    .items = type_items,
    .popular = type_popular,
    .next = &itemknn_next,
};
