/* server/next.c - POST /v1/next: validation, session state, micro-batched scoring, top-k, answer. */
#include "server/next.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/validate.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/topk.h"
#include "models/gru4rec.h"
#include "server/http.h"
#include "server/registry.h"
#include "server/score.h"
#include "server/server.h"
#include "server/sessions.h"

/* ---- per-connection job (the handler slot) ---- */
typedef struct next_job {
    http_req *r;
    model_version *v;  /* reference held from parse to answer */
    float *h;          /* (S) the state to score */
    size_t h_cap;
    int32_t *excl;     /* exclusions (seen items), n_excl */
    int n_excl, excl_cap;
    int k;
    int32_t *cand;     /* (cand_cap) candidates picked by the scorer, best first, and their scores */
    float *cval;
    int n_cand, cand_cap;
    sbuf unknown;      /* JSON text of the unknown ids, comma separated, without brackets */
    sbuf session_id;   /* stateful: the id to echo (ids are never empty); empty: stateless */
    struct next_job *next; /* queue link */
} next_job;

static void job_free(void *p)
{
    next_job *j = p;
    if (!j) return;
    free(j->h);
    free(j->excl);
    free(j->cand);
    free(j->cval);
    sbuf_release(&j->unknown);
    sbuf_release(&j->session_id);
    free(j);
}

static void *job_new(void)
{
    next_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    sbuf_init(&j->unknown);
    sbuf_init(&j->session_id);
    return j;
}

/* After a request: arrays sized by a large request (k, history length) and long id lists go. */
static void job_trim(void *p)
{
    next_job *j = p;
    if ((size_t)j->cand_cap * (sizeof(int32_t) + sizeof(float)) > HTTP_KEEP_BYTES) {
        free(j->cand);
        free(j->cval);
        j->cand = NULL;
        j->cval = NULL;
        j->cand_cap = 0;
    }
    if ((size_t)j->excl_cap * sizeof(int32_t) > HTTP_KEEP_BYTES) {
        free(j->excl);
        j->excl = NULL;
        j->excl_cap = 0;
    }
    if (j->h_cap * sizeof(float) > HTTP_KEEP_BYTES) {
        free(j->h);
        j->h = NULL;
        j->h_cap = 0;
    }
    if (j->unknown.cap > HTTP_KEEP_BYTES) sbuf_release(&j->unknown);
    if (j->session_id.cap > HTTP_KEEP_BYTES) sbuf_release(&j->session_id);
}

static const http_slot_type next_slot = {"/v1/next", job_new, job_free, job_trim};

static int job_reserve(next_job *j, size_t S, int excl, int ncand)
{
    if (ncand > j->cand_cap) {
        int32_t *c = realloc(j->cand, (size_t)ncand * sizeof(int32_t));
        if (c) j->cand = c;
        float *f = realloc(j->cval, (size_t)ncand * sizeof(float));
        if (f) j->cval = f;
        if (!c || !f) return rc_error(RC_ENOMEM, "out of memory for a request");
        j->cand_cap = ncand;
    }
    if (S > j->h_cap) {
        float *h = realloc(j->h, S * sizeof(float));
        if (!h) return rc_error(RC_ENOMEM, "out of memory for a request state");
        j->h = h;
        j->h_cap = S;
    }
    if (excl > j->excl_cap) {
        int32_t *e = realloc(j->excl, (size_t)excl * sizeof(int32_t));
        if (!e) return rc_error(RC_ENOMEM, "out of memory for a request");
        j->excl = e;
        j->excl_cap = excl;
    }
    return RC_OK;
}

/* ---- per-thread scratch ---- */
typedef struct next_tls {
    uint64_t serial; /* model version the scratch was made for */
    gru4rec_scratch *sc;
    int sc_batch;
    float *scores; /* (B,N) */
    size_t scores_cap;
    float *hb;     /* (B,S) packed states for batches */
    size_t hb_cap;
    int32_t *idx;  /* (k_max) top-k output */
    float *val;
    int32_t *cidx; /* (k_max) candidates of an approximate scorer, and their exact scores */
    float *cval;
    int topk_cap;
} next_tls;

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static _Thread_local next_tls *tls_cur;

static void tls_destroy(void *p)
{
    next_tls *t = p;
    if (!t) return;
    gru4rec_scratch_free(t->sc);
    free(t->scores);
    free(t->hb);
    free(t->idx);
    free(t->val);
    free(t->cidx);
    free(t->cval);
    free(t);
}

static void tls_init_key(void)
{
    pthread_key_create(&tls_key, tls_destroy);
}

/* This thread's scratch, fit for model version v, B states at once and k results (k candidates with an
 * approximate scorer: scorer_candidates). NULL on ENOMEM. */
static next_tls *tls_get(model_version *v, int B, int k)
{
    pthread_once(&tls_once, tls_init_key);
    next_tls *t = tls_cur;
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) return NULL;
        tls_cur = t;
        pthread_setspecific(tls_key, t);
    }
    const gru4rec *g = v->handle;
    if (t->serial != v->serial || t->sc_batch < B) {
        gru4rec_scratch_free(t->sc);
        t->sc = gru4rec_scratch_new(g, B);
        if (!t->sc) {
            t->serial = 0;
            return NULL;
        }
        t->sc_batch = B;
        t->serial = v->serial;
    }
    size_t N = (size_t)gru4rec_n_items(g), S = gru4rec_state_size(g);
    if ((size_t)B * N > t->scores_cap) {
        float *s = realloc(t->scores, (size_t)B * N * sizeof(float));
        if (!s) return NULL;
        t->scores = s;
        t->scores_cap = (size_t)B * N;
    }
    if ((size_t)B * S > t->hb_cap) {
        float *s = realloc(t->hb, (size_t)B * S * sizeof(float));
        if (!s) return NULL;
        t->hb = s;
        t->hb_cap = (size_t)B * S;
    }
    if (v->aux) k = scorer_candidates(v->aux, k);
    if (k > t->topk_cap) {
        int32_t *i = realloc(t->idx, (size_t)k * sizeof(int32_t));
        if (i) t->idx = i;
        float *f = realloc(t->val, (size_t)k * sizeof(float));
        if (f) t->val = f;
        int32_t *ci = realloc(t->cidx, (size_t)k * sizeof(int32_t));
        if (ci) t->cidx = ci;
        float *cf = realloc(t->cval, (size_t)k * sizeof(float));
        if (cf) t->cval = cf;
        if (!i || !f || !ci || !cf) return NULL;
        t->topk_cap = k;
    }
    return t;
}

/* Score B states with the version's scorer (built by next_prepare), or gru4rec_score without one. */
static void score_states(const model_version *v, const float *h, int B, float *scores, gru4rec_scratch *gs)
{
    if (v->aux) scorer_score(v->aux, h, B, scores, gs);
    else gru4rec_score(v->handle, h, B, scores, gs);
}

/* ---- metrics ---- */
#define BATCH_HIST 8
static const int batch_le[BATCH_HIST] = {1, 2, 4, 8, 16, 32, 64, 1 << 30};
static _Atomic uint64_t m_batches, m_scored, m_fallback, m_unknown, m_batch_hist[BATCH_HIST];

/* ---- answers ---- */
static void render_head(sbuf *out)
{
    sbuf_adds(out, "{\"items\":[");
}

static void render_tail(next_job *j, int fallback)
{
    http_req *r = j->r;
    sbuf *out = r->out;
    model_version *v = j->v;
    sbuf_adds(out, "],\"model\":");
    sbuf_json_str(out, v->model, strlen(v->model));
    sbuf_adds(out, ",\"version\":\"");
    sbuf_adds(out, v->version_str);
    sbuf_adds(out, "\"");
    if (j->session_id.len) {
        sbuf_adds(out, ",\"session_id\":");
        sbuf_json_str(out, j->session_id.data, j->session_id.len);
    }
    sbuf_adds(out, ",\"unknown_items\":[");
    sbuf_add(out, j->unknown.data ? j->unknown.data : "", j->unknown.len);
    sbuf_addc(out, ']');
    if (fallback) sbuf_adds(out, ",\"fallback\":\"popular\"");
    sbuf_adds(out, ",\"request_id\":");
    sbuf_json_str(out, r->request_id, strlen(r->request_id));
    sbuf_adds(out, "}\n");
    http_json(r, 200);
}

/* j's exclusions (seen items, unsorted) in the form core/topk.h reads. */
static topk_exclude job_exclude(const next_job *j)
{
    return (topk_exclude){.ids = j->excl, .n_ids = j->n_excl, .ids_sorted = 0, .bits = NULL, .n_bits = 0};
}

/* The most popular items (minus exclusions), flagged as a fallback. */
static void answer_popular(next_job *j)
{
    const gru4rec *g = j->v->handle;
    const idmap *items = gru4rec_items(g);
    const int32_t *pop = gru4rec_popular(g);
    int64_t N = gru4rec_n_items(g);
    sbuf_reset(j->r->out);
    render_head(j->r->out);
    topk_exclude ex = job_exclude(j);
    int got = 0;
    for (int64_t i = 0; i < N && got < j->k; i++) {
        if (topk_is_excluded(&ex, pop[i])) continue;
        size_t len;
        const char *id = idmap_key(items, pop[i], &len);
        if (!id) continue;
        if (got) sbuf_addc(j->r->out, ',');
        sbuf_adds(j->r->out, "{\"item_id\":");
        sbuf_json_str(j->r->out, id, len);
        sbuf_adds(j->r->out, ",\"score\":null}");
        got++;
    }
    atomic_fetch_add_explicit(&m_fallback, 1, memory_order_relaxed);
    render_tail(j, 1);
}

/* Pick j's candidates from its score row (N floats): the best scorer_candidates(k) that are not
 * excluded, best first, into j->cand / j->cval (the scorer thread's share of the answer). */
static void pick_candidates(next_job *j, const float *scores)
{
    const gru4rec *g = j->v->handle;
    const scorer *sc = j->v->aux;
    int kc = sc ? scorer_candidates(sc, j->k) : j->k;
    if (kc > j->cand_cap) kc = j->cand_cap;
    topk_exclude ex = job_exclude(j);
    j->n_cand = topk_select(scores, gru4rec_n_items(g), kc, j->n_excl ? &ex : NULL, j->cand, j->cval);
    if (j->n_cand < 0) j->n_cand = 0;
}

/* Answer j from its candidates (pick_candidates). With an approximate (bf16/int8) scorer they are
 * re-ranked with their exact f32 scores: the answer is the f32 one. t: this thread's scratch. */
static void answer_candidates(next_job *j, next_tls *t)
{
    const gru4rec *g = j->v->handle;
    const scorer *sc = j->v->aux;
    const idmap *items = gru4rec_items(g);
    int n;
    if (sc && scorer_approx(sc)) {
        scorer_rescore(sc, j->h, j->cand, j->n_cand, t->cval);
        n = topk_select(t->cval, j->n_cand, j->k, NULL, t->idx, t->val);
        for (int i = 0; i < n; i++) t->idx[i] = j->cand[t->idx[i]];
    } else {
        n = j->n_cand < j->k ? j->n_cand : j->k;
        memcpy(t->idx, j->cand, (size_t)n * sizeof(int32_t));
        memcpy(t->val, j->cval, (size_t)n * sizeof(float));
    }
    sbuf *out = j->r->out;
    sbuf_reset(out);
    render_head(out);
    for (int i = 0, got = 0; i < n; i++) {
        size_t len;
        const char *id = idmap_key(items, t->idx[i], &len);
        if (!id) continue;
        if (got++) sbuf_addc(out, ','); /* not i: a skipped first id would leave a leading comma */
        sbuf_adds(out, "{\"item_id\":");
        sbuf_json_str(out, id, len);
        sbuf_adds(out, ",\"score\":");
        sbuf_json_float(out, t->val[i]);
        sbuf_addc(out, '}');
    }
    render_tail(j, 0);
}

/* http_req.on_resume of a batched request: re-rank, render, release the version (HTTP thread). */
static void next_finish(http_req *r)
{
    next_job *j = http_slot_get(r, &next_slot); /* the request's own job: created by route_next */
    if (!j || !j->v) return;
    next_tls *t = tls_get(j->v, 1, j->k);
    if (t) answer_candidates(j, t);
    else http_oom(r, "answering the request");
    registry_release(r->srv->reg, j->v);
    j->v = NULL;
}

/* ---- the batcher ---- */
/* A helper thread that scores the second half of the items for small batches (B <= batch.split_below):
 * a lone request then reads the item matrix with two cores' memory bandwidth. */
typedef struct assist {
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int has_work, done, stop;
    const scorer *sc;
    const float *h;
    int B;
    float *scores;
} assist;

static void *assist_main(void *arg)
{
    assist *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->has_work && !a->stop) pthread_cond_wait(&a->cv, &a->mu);
        if (a->stop) break;
        const scorer *sc = a->sc;
        const float *h = a->h;
        int B = a->B;
        float *scores = a->scores;
        pthread_mutex_unlock(&a->mu);
        scorer_score_part(sc, h, B, scores, NULL, 1, 2);
        pthread_mutex_lock(&a->mu);
        a->has_work = 0;
        a->done = 1;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

struct next_batcher {
    server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    next_job *head, *tail;
    int queued;
    int stop;
    int max;
    long wait_us;
    int nthreads;
    pthread_t threads[16];
    int split_below;
    assist as;
};

static void batch_score(next_batcher *b, next_job **jobs, int B)
{
    model_version *v = jobs[0]->v;
    const gru4rec *g = v->handle;
    size_t S = gru4rec_state_size(g), N = (size_t)gru4rec_n_items(g);
    int kmax = 1;
    for (int i = 0; i < B; i++)
        if (jobs[i]->k > kmax) kmax = jobs[i]->k;
    next_tls *t = tls_get(v, b->max, kmax);
    if (!t) {
        for (int i = 0; i < B; i++) {
            http_oom(jobs[i]->r, "scoring the request");
            registry_release(b->srv->reg, jobs[i]->v);
            jobs[i]->v = NULL;
            http_resume(jobs[i]->r);
        }
        return;
    }
    for (int i = 0; i < B; i++) memcpy(t->hb + (size_t)i * S, jobs[i]->h, S * sizeof(float));
    if (B <= b->split_below && b->as.started && v->aux && scorer_splittable(v->aux)) {
        assist *a = &b->as;
        pthread_mutex_lock(&a->mu);
        a->sc = v->aux;
        a->h = t->hb;
        a->B = B;
        a->scores = t->scores;
        a->done = 0;
        a->has_work = 1;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        scorer_score_part(v->aux, t->hb, B, t->scores, NULL, 0, 2);
        pthread_mutex_lock(&a->mu);
        while (!a->done) pthread_cond_wait(&a->cv, &a->mu);
        pthread_mutex_unlock(&a->mu);
    } else {
        score_states(v, t->hb, B, t->scores, t->sc);
    }
    atomic_fetch_add_explicit(&m_batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m_scored, (uint64_t)B, memory_order_relaxed);
    int hb = 0;
    while (B > batch_le[hb]) hb++;
    atomic_fetch_add_explicit(&m_batch_hist[hb], 1, memory_order_relaxed);
    for (int i = 0; i < B; i++) { /* re-ranking and rendering run on the HTTP threads (next_finish) */
        next_job *j = jobs[i];
        pick_candidates(j, t->scores + (size_t)i * N);
        j->r->on_resume = next_finish;
        http_resume(j->r);
    }
}

static void *scorer_main(void *arg)
{
    next_batcher *b = arg;
    next_job *jobs[256];
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->head && !b->stop) pthread_cond_wait(&b->cv, &b->mu);
        if (!b->head && b->stop) break;
        if (b->wait_us > 0 && b->queued < b->max) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += b->wait_us * 1000;
            until.tv_sec += until.tv_nsec / 1000000000;
            until.tv_nsec %= 1000000000;
            while (b->queued < b->max && !b->stop)
                if (pthread_cond_timedwait(&b->cv, &b->mu, &until) != 0) break;
        }
        /* Take up to max jobs of the same model version (the head's). */
        int B = 0;
        model_version *v = b->head->v;
        next_job **pp = &b->head, *prev = NULL;
        while (*pp && B < b->max) {
            next_job *j = *pp;
            if (j->v == v) {
                *pp = j->next;
                if (b->tail == j) b->tail = prev;
                jobs[B++] = j;
                b->queued--;
            } else {
                prev = j;
                pp = &j->next;
            }
        }
        pthread_mutex_unlock(&b->mu);
        batch_score(b, jobs, B);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    pthread_setspecific(tls_key, NULL);
    tls_destroy(tls_cur);
    tls_cur = NULL;
    return NULL;
}

next_batcher *next_batcher_new(server *srv)
{
    next_batcher *b = calloc(1, sizeof *b);
    if (!b) {
        rc_error(RC_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_once(&tls_once, tls_init_key);
    b->srv = srv;
    b->max = (int)srv->cfg.batch_max;
    if (b->max > 256) b->max = 256;
    b->wait_us = (long)srv->cfg.batch_wait_us;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    pthread_mutex_init(&b->as.mu, NULL);
    pthread_cond_init(&b->as.cv, NULL);
    b->split_below = (int)srv->cfg.batch_split_below;
    /* One helper is shared by the scorer threads: with several scorers only batch.threads == 1 splits. */
    if (b->split_below > 0 && srv->cfg.batch_threads == 1) {
        if (pthread_create(&b->as.th, NULL, assist_main, &b->as) != 0) {
            rc_error(RC_ENOMEM, "cannot start the scoring helper thread");
            next_batcher_free(b);
            return NULL;
        }
        b->as.started = 1;
    }
    int n = (int)srv->cfg.batch_threads;
    if (n < 1) n = 1;
    if (n > 16) n = 16;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&b->threads[i], NULL, scorer_main, b) != 0) {
            rc_error(RC_ENOMEM, "cannot start scorer thread %d", i);
            next_batcher_free(b);
            return NULL;
        }
        b->nthreads++;
    }
    return b;
}

void next_batcher_stop(next_batcher *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->nthreads; i++) pthread_join(b->threads[i], NULL); /* they empty the queue first */
    b->nthreads = 0;
}

void next_batcher_free(next_batcher *b)
{
    if (!b) return;
    next_batcher_stop(b);
    if (b->as.started) {
        pthread_mutex_lock(&b->as.mu);
        b->as.stop = 1;
        pthread_cond_broadcast(&b->as.cv);
        pthread_mutex_unlock(&b->as.mu);
        pthread_join(b->as.th, NULL);
    }
    pthread_mutex_destroy(&b->as.mu);
    pthread_cond_destroy(&b->as.cv);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}

/* Suspend j's connection and queue j; 0 when the batcher is stopped (the caller scores inline). The
 * suspension comes first (a scorer may resume j as soon as it is queued) and under the queue lock, so no
 * connection is suspended once next_batcher_stop has emptied the queue. */
static int batcher_push(next_batcher *b, next_job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&b->mu);
    if (b->stop) {
        pthread_mutex_unlock(&b->mu);
        return 0;
    }
    http_suspend(j->r);
    if (b->tail) b->tail->next = j;
    else b->head = j;
    b->tail = j;
    b->queued++;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return 1;
}

void next_render_metrics(sbuf *out, void *unused)
{
    (void)unused;
    sbuf_printf(out,
                "# HELP recd_next_batches_total Scoring batches run (one matrix product each).\n"
                "# TYPE recd_next_batches_total counter\nrecd_next_batches_total %llu\n"
                "# HELP recd_next_scored_total Session states scored.\n"
                "# TYPE recd_next_scored_total counter\nrecd_next_scored_total %llu\n"
                "# HELP recd_next_fallback_total Answers with the most popular items (no known click).\n"
                "# TYPE recd_next_fallback_total counter\nrecd_next_fallback_total %llu\n"
                "# HELP recd_next_unknown_items_total Unknown item ids received (listed and skipped).\n"
                "# TYPE recd_next_unknown_items_total counter\nrecd_next_unknown_items_total %llu\n"
                "# HELP recd_next_batch_size States per scoring batch.\n# TYPE recd_next_batch_size histogram\n",
                (unsigned long long)atomic_load(&m_batches), (unsigned long long)atomic_load(&m_scored),
                (unsigned long long)atomic_load(&m_fallback), (unsigned long long)atomic_load(&m_unknown));
    uint64_t cum = 0;
    for (int i = 0; i < BATCH_HIST; i++) {
        cum += atomic_load(&m_batch_hist[i]);
        if (i < BATCH_HIST - 1)
            sbuf_printf(out, "recd_next_batch_size_bucket{le=\"%d\"} %llu\n", batch_le[i], (unsigned long long)cum);
        else
            sbuf_printf(out, "recd_next_batch_size_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    sbuf_printf(out, "recd_next_batch_size_sum %llu\nrecd_next_batch_size_count %llu\n",
                (unsigned long long)atomic_load(&m_scored), (unsigned long long)cum);
}

/* ---- preparing a version ---- */
static void scorer_free_aux(void *p)
{
    scorer_free(p);
}

int next_prepare(model_version *v, void *arg)
{
    server *srv = arg;
    if (strcmp(v->type_name, "gru4rec") != 0) return RC_OK;
    int k = score_kernel_parse(srv->cfg.score_kernel ? srv->cfg.score_kernel : "auto");
    scorer *sc = scorer_new(v->snap, v->handle, k < 0 ? SCORE_AUTO : (score_kernel)k,
                            srv->cfg.score_int8 ? 2 : srv->cfg.score_bf16);
    if (sc && srv->cfg.score_int8 && srv->cfg.score_bf16 && scorer_bf16(sc) != 2 &&
        scorer_kernel(sc) == SCORE_BLAS) {
        scorer_free(sc); /* int8 refused (validation): the bf16 matrix may still beat sgemm */
        sc = scorer_new(v->snap, v->handle, k < 0 ? SCORE_AUTO : (score_kernel)k, 1);
    }
    if (!sc) return RC_ENOMEM;
    v->aux = sc;
    v->aux_free = scorer_free_aux;
    /* A few requests through the serving path: step, score (batched as the scorers do), top-k. */
    const gru4rec *g = v->handle;
    int B = srv->cfg.batch_max > 1 ? (int)srv->cfg.batch_max : 1;
    size_t S = gru4rec_state_size(g), N = (size_t)gru4rec_n_items(g);
    gru4rec_scratch *gs = gru4rec_scratch_new(g, B);
    float *h = calloc((size_t)B * S, sizeof(float)), *scores = malloc((size_t)B * N * sizeof(float));
    int32_t idx[20];
    int rc = RC_OK;
    if (!gs || !h || !scores) {
        rc = rc_error(RC_ENOMEM, "out of memory warming up");
        goto done;
    }
    const int32_t *pop = gru4rec_popular(g);
    for (int r = 0; r < (int)srv->cfg.warm_requests; r++) {
        int32_t item = pop[(size_t)r % N];
        gru4rec_step(g, h + (size_t)(r % B) * S, &item, 1, gs);
        scorer_score(sc, h, r % 2 ? B : 1, scores, gs);
        topk_select(scores, (int64_t)N, 20, NULL, idx, NULL);
    }
    log_info("%s version %s: scoring with %s%s", v->model, v->version_str, score_kernel_name(scorer_kernel(sc)),
             scorer_bf16(sc) == 2 ? " (int8 item matrix, f32 re-ranking)"
             : scorer_bf16(sc)    ? " (bf16 item matrix, f32 re-ranking)"
                                  : "");
done:
    gru4rec_scratch_free(gs);
    free(h);
    free(scores);
    return rc;
}

/* ---- the handler ---- */
struct step_ctx {
    const gru4rec *g;
    int32_t item;
    gru4rec_scratch *sc;
};

static void step_one(void *ctx, float *state)
{
    struct step_ctx *c = ctx;
    gru4rec_step(c->g, state, &c->item, 1, c->sc);
}


static void add_unknown(next_job *j, const char *s, size_t n)
{
    if (j->unknown.len) sbuf_addc(&j->unknown, ',');
    sbuf_json_str(&j->unknown, s, n);
    atomic_fetch_add_explicit(&m_unknown, 1, memory_order_relaxed);
}

int route_next(http_req *r)
{
    server *srv = r->srv;
    next_req req;
    json_t *doc = NULL;
    char detail[300];
    next_job *j = NULL;
    api_json_arena_begin(); /* jansson's values of this request come from the thread's arena */
    int st = next_req_parse(r->body, r->body_len, &srv->limits, &doc, &req, detail, sizeof detail);
    if (st) {
        api_json_arena_end();
        return http_problem(r, st, st == 400 ? "invalid-request" : "unprocessable-request", "%s", detail);
    }
    const char *name = req.model.n ? req.model.p : registry_default(srv->reg);
    int known;
    model_version *v = registry_acquire(srv->reg, name, &known);
    if (!v) {
        if (!known) http_problem(r, 404, "unknown-model", "no model '%.64s' is configured", name);
        else http_problem(r, 503, "model-not-loaded", "model '%.64s' has no version loaded yet", name);
        json_decref(doc);
        api_json_arena_end();
        return HTTP_DONE;
    }
    if (strcmp(v->type_name, "gru4rec") != 0) {
        http_problem(r, 422, "wrong-model-type", "model '%.64s' is a %s model: /v1/next needs a gru4rec model", name,
                     v->type_name);
        goto fail;
    }
    const gru4rec *g = v->handle;
    const idmap *items = gru4rec_items(g);
    size_t S = gru4rec_state_size(g);
    j = http_slot(r, &next_slot);
    if (!j) {
        http_oom(r, "the request's state");
        goto fail;
    }
    int excl_need = req.items ? (int)req.n_items : sessions_max_seen(srv->sess);
    next_tls *t = tls_get(v, 1, req.k);
    int ncand = v->aux ? scorer_candidates(v->aux, req.k) : req.k;
    if (job_reserve(j, S, excl_need, ncand < 1 ? 1 : ncand) != RC_OK || !t) {
        http_oom(r, "the request's buffers");
        goto fail;
    }
    j->r = r;
    j->v = v;
    j->k = req.k;
    j->n_excl = 0;
    sbuf_reset(&j->unknown);
    sbuf_reset(&j->session_id);
    int n_known = 0;
    if (req.items) {
        memset(j->h, 0, S * sizeof(float));
        for (size_t i = 0; i < req.n_items; i++) {
            const json_t *it = json_array_get(req.items, i);
            const char *s = json_string_value(it);
            size_t n = json_string_length(it);
            int64_t idx = idmap_find(items, s, n);
            if (idx < 0) {
                add_unknown(j, s, n);
                continue;
            }
            int32_t item = (int32_t)idx;
            gru4rec_step(g, j->h, &item, 1, t->sc);
            n_known++;
            if (req.exclude_seen) j->excl[j->n_excl++] = item;
        }
    } else {
        int64_t idx = idmap_find(items, req.item_id.p, req.item_id.n);
        if (idx < 0) add_unknown(j, req.item_id.p, req.item_id.n);
        struct step_ctx sc = {g, (int32_t)idx, t->sc};
        int n_seen = 0, n_clicks = 0;
        int rc = sessions_advance(srv->sess, req.session_id.p, req.session_id.n, v->fingerprint, S, (int32_t)idx,
                                  step_one, &sc, clock_mono_s(), j->h, j->excl, &n_seen, &n_clicks);
        if (rc != RC_OK) {
            http_problem(r, 503, "session-store-full", "%s", rc_errmsg());
            goto fail;
        }
        n_known = n_clicks;
        j->n_excl = req.exclude_seen ? n_seen : 0;
        /* the whole id (limits.max_id_len goes to 1000; a fixed buffer truncated it), NULs included */
        sbuf_add(&j->session_id, req.session_id.p, req.session_id.n);
    }
    json_decref(doc);
    doc = NULL;
    api_json_arena_end();
    if (sbuf_failed(&j->unknown) || sbuf_failed(&j->session_id)) {
        http_oom(r, "the request's ids");
        goto fail;
    }
    if (j->k > gru4rec_n_items(g)) j->k = (int)gru4rec_n_items(g);
    if (n_known == 0) {
        answer_popular(j);
        j->v = NULL;
        registry_release(srv->reg, v);
        return HTTP_DONE;
    }
    if (srv->batcher && batcher_push(srv->batcher, j)) return HTTP_ASYNC;
    score_states(v, j->h, 1, t->scores, t->sc);
    atomic_fetch_add_explicit(&m_batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m_scored, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m_batch_hist[0], 1, memory_order_relaxed);
    pick_candidates(j, t->scores);
    answer_candidates(j, t);
    j->v = NULL;
    registry_release(srv->reg, v);
    return HTTP_DONE;
fail:
    json_decref(doc);
    api_json_arena_end();
    if (j) j->v = NULL;
    registry_release(srv->reg, v);
    return HTTP_DONE;
}
