/* server/next.c - POST /v1/next for any model with the `next` capability (models/model.h): session
 * state, micro-batched scoring, candidates, exact re-rank, answer. In an experiment ("experiment" with
 * "user_id"): the arm's model answers (route_exp_acquire; sessions are keyed MODEL/ID, so each arm's
 * model keeps its own state), the answer adds "experiment" and "arm", and the impression (the shown
 * items; session: the session_id when stateful, else the unit) is recorded just before the answer is
 * sent - on the HTTP thread that renders it, in next_finish for a micro-batched request. */
#include "server/next.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/itemscore.h"
#include "core/log.h"
#include "core/topk.h"
#include "models/model.h"
#include "server/batcher.h"
#include "server/http.h"
#include "server/registry.h"
#include "server/route.h"
#include "server/server.h"
#include "server/sessions.h"

/* ---- per-version data (route_aux: next_isc and next_q_off, built by next_prepare) ---- */
static const itemscore *version_isc(const model_version *v)
{
    const route_aux *a = route_aux_get(v);
    return a ? a->next_isc : NULL;
}

static const idmap *version_items(const model_version *v)
{
    return v->type->items(v->handle);
}

static int64_t version_n(const model_version *v)
{
    return (int64_t)idmap_size(version_items(v));
}

/* ---- per-connection job (the handler slot) ---- */
typedef struct next_job {
    batch_job bj;      /* key: the version (jobs of one version are scored together) */
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
    sbuf session_key;  /* stateful: the store's key, "MODEL/ID": a session's state is per model */
    api_scratch scr;   /* the request parser's buffers */
    route_exp x;       /* the request's experiment (x.e NULL: none); x.unit points into the body */
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
    sbuf_release(&j->session_key);
    api_scratch_release(&j->scr);
    free(j);
}

static void *job_new(void)
{
    next_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    sbuf_init(&j->unknown);
    sbuf_init(&j->session_id);
    sbuf_init(&j->session_key);
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
    if (j->session_key.cap > HTTP_KEEP_BYTES) sbuf_release(&j->session_key);
    api_scratch_trim(&j->scr, HTTP_KEEP_BYTES);
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

/* ---- per-thread scratch of a version (route_scratch) ---- */
typedef struct next_scr {
    const model_next_ops *ops;
    void *msc;       /* the model's scratch for B states */
    int B;
    float *scores;   /* (B,N) */
    float *hb;       /* (B,S) states of a batch */
    float *exact;    /* (exact_cap) exact scores of re-ranked candidates */
    int exact_cap;
} next_scr;

static void scr_destroy(void *p)
{
    next_scr *s = p;
    if (!s) return;
    if (s->ops) s->ops->scratch_free(s->msc);
    free(s->scores);
    free(s->hb);
    free(s->exact);
    free(s);
}

static void *scr_create(const model_version *v, int B)
{
    const model_next_ops *ops = v->type->next;
    size_t N = (size_t)version_n(v), S = ops->state_size(v->handle);
    next_scr *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ops = ops;
    s->B = B;
    s->msc = ops->scratch_new(v->handle, B);
    s->scores = malloc((size_t)B * N * sizeof(float));
    s->hb = malloc((size_t)B * S * sizeof(float));
    if (!s->msc || !s->scores || !s->hb) {
        scr_destroy(s);
        return NULL;
    }
    return s;
}

static const route_scratch_type next_scr_type = {"/v1/next", scr_create, scr_destroy};

/* This thread's scratch for v with B state rows and room to re-rank k candidates. NULL on ENOMEM. */
static next_scr *scr_get(const model_version *v, int B, int k)
{
    next_scr *s = route_scratch(&next_scr_type, v, B);
    if (!s) return NULL;
    const itemscore *isc = version_isc(v);
    int kc = isc ? itemscore_candidates(isc, k) : k;
    if (kc > s->exact_cap) {
        float *e = realloc(s->exact, (size_t)kc * sizeof(float));
        if (!e) return NULL;
        s->exact = e;
        s->exact_cap = kc;
    }
    return s;
}

/* Score B states h (B,S) into scores (B,N): the packed item matrix when the version has one, else the
 * type's own score. */
static void score_states(const model_version *v, const float *h, int B, float *scores, next_scr *s)
{
    const route_aux *a = route_aux_get(v);
    if (a && a->next_isc) itemscore_score(a->next_isc, h + a->next_q_off, s->ops->state_size(v->handle), B, scores);
    else s->ops->score(v->handle, h, B, scores, s->msc);
}

/* ---- metrics ---- */
#define BATCH_HIST 8
static const int batch_le[BATCH_HIST] = {1, 2, 4, 8, 16, 32, 64, 1 << 30};
static _Atomic uint64_t m_batches, m_scored, m_fallback, m_unknown, m_batch_hist[BATCH_HIST];

static void count_batch(int B)
{
    atomic_fetch_add_explicit(&m_batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m_scored, (uint64_t)B, memory_order_relaxed);
    int hb = 0;
    while (B > batch_le[hb]) hb++;
    atomic_fetch_add_explicit(&m_batch_hist[hb], 1, memory_order_relaxed);
}

/* ---- answers ---- */
/* 1 when j's answer is to be recorded (an experiment arm). */
static int exposing(const next_job *j)
{
    return j->x.e && j->x.arm >= 0;
}

/* This thread's impression buffer for j's k items when exposing, else NULL (also on ENOMEM: *oom). */
static api_str *shown_buffer(const next_job *j, int *oom)
{
    api_str *items = NULL, *rows;
    sbuf *text;
    *oom = 0;
    if (exposing(j) && route_exp_buffers(j->k, &items, &rows, &text) != RC_OK) *oom = 1;
    return items;
}

/* The tail of j's answer; shown[0..n_shown) (NULL when not exposing): the items answered, recorded
 * with the answer's experiment fields just before it is sent. */
static int answer_tail(next_job *j, int fallback, const api_str *shown, int n_shown)
{
    http_req *r = j->r;
    sbuf *out = r->out;
    route_answer_model(r, j->v);
    if (j->session_id.len) {
        sbuf_adds(out, ",\"session_id\":");
        sbuf_json_str(out, j->session_id.data, j->session_id.len);
    }
    sbuf_adds(out, ",\"unknown_items\":[");
    sbuf_add(out, j->unknown.data ? j->unknown.data : "", j->unknown.len);
    sbuf_addc(out, ']');
    if (fallback) sbuf_adds(out, ",\"fallback\":\"popular\"");
    route_exp_fields(r, &j->x);
    if (shown && !sbuf_failed(out)) {
        api_str session = {j->session_id.len ? j->session_id.data : NULL, j->session_id.len};
        route_exp_expose(r, &j->x, j->v, session, shown, n_shown, (api_str){NULL, 0}, NULL, fallback);
    }
    return route_answer_end(r);
}

/* j's exclusions (seen items, unsorted) in the form core/topk.h reads. */
static topk_exclude job_exclude(const next_job *j)
{
    return (topk_exclude){.ids = j->excl, .n_ids = j->n_excl, .ids_sorted = 0, .bits = NULL, .n_bits = 0};
}

/* The most popular items (minus exclusions) with null scores, flagged as a fallback; without a popularity
 * list (the type has none), an empty list. */
static void answer_popular(next_job *j)
{
    const model_version *v = j->v;
    const idmap *items = version_items(v);
    const int32_t *pop = v->type->popular ? v->type->popular(v->handle) : NULL;
    int64_t N = version_n(v);
    int oom;
    api_str *shown = shown_buffer(j, &oom);
    if (oom) {
        http_oom(j->r, "the impression");
        return;
    }
    route_answer_head(j->r);
    topk_exclude ex = job_exclude(j);
    int got = 0;
    for (int64_t i = 0; pop && i < N && got < j->k; i++) {
        if (topk_is_excluded(&ex, pop[i])) continue;
        size_t len;
        const char *id = idmap_key(items, pop[i], &len);
        if (!id) continue;
        route_answer_item(j->r, got == 0, id, len, NAN);
        if (shown && got < EVSTORE_MAX_ITEMS) shown[got] = (api_str){id, len};
        got++;
    }
    atomic_fetch_add_explicit(&m_fallback, 1, memory_order_relaxed);
    answer_tail(j, 1, shown, got);
}

/* Pick j's candidates from its score row (N floats): the best itemscore_candidates(k) that are not
 * excluded, best first, into j->cand / j->cval (the scorer thread's share of the answer). */
static void pick_candidates(next_job *j, const float *scores)
{
    const itemscore *isc = version_isc(j->v);
    int kc = isc ? itemscore_candidates(isc, j->k) : j->k;
    if (kc > j->cand_cap) kc = j->cand_cap;
    topk_exclude ex = job_exclude(j);
    j->n_cand = topk_select(scores, version_n(j->v), kc, j->n_excl ? &ex : NULL, j->cand, j->cval);
    if (j->n_cand < 0) j->n_cand = 0;
}

/* Answer j from its candidates (pick_candidates). With an approximate (bf16/int8) item matrix they are
 * re-ranked with their exact f32 scores: the answer is the f32 one. s: this thread's scratch for j->v. */
static void answer_candidates(next_job *j, next_scr *s)
{
    const model_version *v = j->v;
    const route_aux *a = route_aux_get(v);
    const idmap *items = version_items(v);
    int32_t *idx;
    float *val;
    if (route_topk_buffers(j->k, &idx, &val) != RC_OK) {
        http_oom(j->r, "answering the request");
        return;
    }
    int n;
    if (a && a->next_isc && itemscore_approx(a->next_isc)) {
        itemscore_rescore(a->next_isc, j->h + a->next_q_off, j->cand, j->n_cand, s->exact);
        n = topk_select(s->exact, j->n_cand, j->k, NULL, idx, val);
        for (int i = 0; i < n; i++) idx[i] = j->cand[idx[i]];
    } else {
        n = j->n_cand < j->k ? j->n_cand : j->k;
        memcpy(idx, j->cand, (size_t)n * sizeof(int32_t));
        memcpy(val, j->cval, (size_t)n * sizeof(float));
    }
    int oom, got = 0;
    api_str *shown = shown_buffer(j, &oom);
    if (oom) {
        http_oom(j->r, "the impression");
        return;
    }
    route_answer_head(j->r);
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *id = idmap_key(items, idx[i], &len);
        if (!id) continue;
        if (shown && got < EVSTORE_MAX_ITEMS) shown[got] = (api_str){id, len};
        route_answer_item(j->r, got++ == 0, id, len, val[i]); /* got, not i: a skipped first id */
    }
    answer_tail(j, 0, shown, got);
}

/* http_req.on_resume of a batched request: re-rank, render, release the version (HTTP thread). */
static void next_finish(http_req *r)
{
    next_job *j = http_slot_get(r, &next_slot); /* the request's own job: created by route_next */
    if (!j || !j->v) return;
    next_scr *s = scr_get(j->v, 1, j->k);
    if (s) answer_candidates(j, s);
    else http_oom(r, "answering the request");
    registry_release(r->srv->reg, j->v);
    j->v = NULL;
}

/* ---- batching: server/batcher.c queues, this scores ---- */
/* A helper thread that scores the second half of the items for small batches (B <= batch.split_below):
 * a lone request then reads the item matrix with two cores' memory bandwidth. */
typedef struct assist {
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int has_work, done, stop;
    const itemscore *isc;
    const float *q;
    size_t stride;
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
        const itemscore *isc = a->isc;
        const float *q = a->q;
        size_t stride = a->stride;
        int B = a->B;
        float *scores = a->scores;
        pthread_mutex_unlock(&a->mu);
        itemscore_score_part(isc, q, stride, B, scores, 1, 2);
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
    batcher *b;
    int max;
    int split_below;
    assist as;
};

/* Score half the items here and half on the assist thread. */
static void score_split(next_batcher *nb, const route_aux *a, const float *hb, size_t S, int B, float *scores)
{
    assist *as = &nb->as;
    pthread_mutex_lock(&as->mu);
    as->isc = a->next_isc;
    as->q = hb + a->next_q_off;
    as->stride = S;
    as->B = B;
    as->scores = scores;
    as->done = 0;
    as->has_work = 1;
    pthread_cond_broadcast(&as->cv);
    pthread_mutex_unlock(&as->mu);
    itemscore_score_part(a->next_isc, hb + a->next_q_off, S, B, scores, 0, 2);
    pthread_mutex_lock(&as->mu);
    while (!as->done) pthread_cond_wait(&as->cv, &as->mu);
    pthread_mutex_unlock(&as->mu);
}

/* batcher_score_fn: jobs of one version; candidates are picked here, the answers built on the HTTP
 * threads (next_finish). */
static void batch_score(void *ctx, batch_job **bjobs, int B)
{
    next_batcher *nb = ctx;
    next_job **jobs = (next_job **)bjobs; /* bj is next_job's first member */
    model_version *v = jobs[0]->v;
    size_t S = v->type->next->state_size(v->handle), N = (size_t)version_n(v);
    int kmax = 1;
    for (int i = 0; i < B; i++)
        if (jobs[i]->k > kmax) kmax = jobs[i]->k;
    next_scr *s = scr_get(v, nb->max, kmax);
    if (!s) {
        for (int i = 0; i < B; i++) {
            http_oom(jobs[i]->r, "scoring the request");
            registry_release(nb->srv->reg, jobs[i]->v);
            jobs[i]->v = NULL;
            http_resume(jobs[i]->r);
        }
        return;
    }
    for (int i = 0; i < B; i++) memcpy(s->hb + (size_t)i * S, jobs[i]->h, S * sizeof(float));
    const route_aux *a = route_aux_get(v);
    if (B <= nb->split_below && nb->as.started && a && a->next_isc && itemscore_splittable(a->next_isc))
        score_split(nb, a, s->hb, S, B, s->scores);
    else
        score_states(v, s->hb, B, s->scores, s);
    count_batch(B);
    for (int i = 0; i < B; i++) { /* re-ranking and rendering run on the HTTP threads (next_finish) */
        next_job *j = jobs[i];
        pick_candidates(j, s->scores + (size_t)i * N);
        j->r->on_resume = next_finish;
        http_resume(j->r);
    }
}

next_batcher *next_batcher_new(server *srv)
{
    next_batcher *nb = calloc(1, sizeof *nb);
    if (!nb) {
        rc_error(RC_ENOMEM, "out of memory");
        return NULL;
    }
    nb->srv = srv;
    nb->max = srv->cfg.batch_max > BATCHER_MAX ? BATCHER_MAX : (int)srv->cfg.batch_max;
    pthread_mutex_init(&nb->as.mu, NULL);
    pthread_cond_init(&nb->as.cv, NULL);
    nb->split_below = (int)srv->cfg.batch_split_below;
    /* One helper is shared by the scorer threads: with several scorers only batch.threads == 1 splits. */
    if (nb->split_below > 0 && srv->cfg.batch_threads == 1) {
        if (pthread_create(&nb->as.th, NULL, assist_main, &nb->as) != 0) {
            rc_error(RC_ENOMEM, "cannot start the scoring helper thread");
            next_batcher_free(nb);
            return NULL;
        }
        nb->as.started = 1;
    }
    nb->b = batcher_new((int)srv->cfg.batch_threads, nb->max, (long)srv->cfg.batch_wait_us, batch_score, nb,
                        route_scratch_release);
    if (!nb->b) {
        next_batcher_free(nb);
        return NULL;
    }
    return nb;
}

void next_batcher_stop(next_batcher *nb)
{
    if (nb) batcher_stop(nb->b);
}

void next_batcher_free(next_batcher *nb)
{
    if (!nb) return;
    batcher_free(nb->b);
    if (nb->as.started) {
        pthread_mutex_lock(&nb->as.mu);
        nb->as.stop = 1;
        pthread_cond_broadcast(&nb->as.cv);
        pthread_mutex_unlock(&nb->as.mu);
        pthread_join(nb->as.th, NULL);
    }
    pthread_mutex_destroy(&nb->as.mu);
    pthread_cond_destroy(&nb->as.cv);
    free(nb);
}

/* batcher_push's on_queue: suspend the connection under the queue lock. */
static void suspend_job(batch_job *bj, void *arg)
{
    (void)arg;
    http_suspend(((next_job *)bj)->r);
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
/* Does the packed scorer's description im give the type's own scores? Checked on a few states (the
 * zero state, then after clicks on popular items), with the naive reference of im (route_itemscore_agrees).
 * 1 or 0; RC_ENOMEM as a negative value. */
static int item_matrix_agrees(const model_version *v, const model_item_matrix *im)
{
    const model_next_ops *ops = v->type->next;
    size_t S = ops->state_size(v->handle), N = (size_t)version_n(v);
    void *sc = ops->scratch_new(v->handle, 1);
    float *h = calloc(S, sizeof(float)), *want = malloc(N * sizeof(float)), *ref = malloc(N * sizeof(float));
    int ok = -1;
    if (sc && h && want && ref) {
        const int32_t *pop = v->type->popular ? v->type->popular(v->handle) : NULL;
        ok = 1;
        for (int t = 0; t < 3 && ok == 1; t++) {
            if (t) {
                int32_t item = pop ? pop[(size_t)(t - 1) % N] : (int32_t)((size_t)(t - 1) % N);
                ops->step(v->handle, h, &item, 1, sc);
            }
            ops->score(v->handle, h, 1, want, sc);
            ok = route_itemscore_agrees(im, h + im->q_offset, want, 0, ref);
        }
    }
    if (sc) ops->scratch_free(sc);
    free(h);
    free(want);
    free(ref);
    return ok;
}

/* The packed item matrix of v (route_itemscore_new: per score.kernel / score.int8 / score.bf16) in
 * route_aux.next_isc, or none when its type describes none, it does not fit the states, or it does not
 * give the type's own scores (logged). RC_OK / RC_ENOMEM. */
static int build_aux(model_version *v, const server *srv)
{
    model_item_matrix im;
    const model_next_ops *ops = v->type->next;
    if (!ops->item_matrix || ops->item_matrix(v->handle, &im) != RC_OK) return RC_OK;
    itemscore *isc = NULL;
    int rc = route_itemscore_new(v, srv, &im, ops->state_size(v->handle), 0, "next", &isc);
    if (rc != RC_OK || !isc) return rc;
    int ok = item_matrix_agrees(v, &im);
    if (ok != 1) {
        itemscore_free(isc);
        if (ok < 0) return rc_error(RC_ENOMEM, "out of memory checking the item matrix");
        log_warn("%s version %s: its `next` item matrix does not give the model's own scores; scoring with the "
                 "model's own score",
                 v->model, v->version_str);
        return RC_OK;
    }
    route_aux *a = route_aux_make(v);
    if (!a) {
        itemscore_free(isc);
        return RC_ENOMEM;
    }
    a->next_isc = isc;
    a->next_q_off = im.q_offset;
    return RC_OK;
}

int next_prepare(model_version *v, void *arg)
{
    server *srv = arg;
    if (!v->type->next || !v->type->items) return RC_OK;
    int rc = build_aux(v, srv);
    if (rc != RC_OK || !version_isc(v)) return rc; /* the registry warmed the type's own step and score */
    /* A few requests through the packed matrix: step, score (batched as the scorers do), top-k. */
    const model_next_ops *ops = v->type->next;
    int B = srv->cfg.batch_max > 1 ? (int)srv->cfg.batch_max : 1;
    size_t S = ops->state_size(v->handle), N = (size_t)version_n(v);
    if (N == 0) return RC_OK;
    next_scr *s = scr_create(v, B);
    float *h = calloc((size_t)B * S, sizeof(float));
    int32_t idx[20];
    if (!s || !h) {
        rc = rc_error(RC_ENOMEM, "out of memory warming up");
        goto done;
    }
    const int32_t *pop = v->type->popular ? v->type->popular(v->handle) : NULL;
    for (int r = 0; r < (int)srv->cfg.warm_requests; r++) {
        int32_t item = pop ? pop[(size_t)r % N] : (int32_t)((size_t)r % N);
        ops->step(v->handle, h + (size_t)(r % B) * S, &item, 1, s->msc);
        score_states(v, h, r % 2 ? B : 1, s->scores, s);
        topk_select(s->scores, (int64_t)N, 20, NULL, idx, NULL);
    }
done:
    scr_destroy(s);
    free(h);
    return rc;
}

/* ---- the handler ---- */
struct step_ctx {
    const model_version *v;
    int32_t item;
    void *msc;
};

static void step_one(void *ctx, float *state)
{
    struct step_ctx *c = ctx;
    c->v->type->next->step(c->v->handle, state, &c->item, 1, c->msc);
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
    char detail[300];
    next_job *j = http_slot(r, &next_slot);
    if (!j) return http_oom(r, "the request's state");
    memset(&j->x, 0, sizeof j->x);
    int st = next_req_parse(r->body, r->body_len, &srv->limits, &j->scr, &req, detail, sizeof detail);
    if (st == 503) return http_oom(r, "parsing the request");
    if (st) return http_problem(r, st, st == 400 ? "invalid-request" : "unprocessable-request", "%s", detail);
    model_version *v = req.experiment.n ? route_exp_acquire(r, req.experiment.p, req.experiment.n, req.user_id,
                                                            req.user_id.n > 0, req.model.n > 0, MODEL_CAP_NEXT, &j->x)
                                        : route_acquire(r, req.model.p, req.model.n, MODEL_CAP_NEXT);
    if (!v) return HTTP_DONE;
    if (j->x.e && j->x.arm >= 0 && req.session_id.n > EVSTORE_MAX_ID) { /* the impression's session */
        http_problem(r, 422, "unprocessable-request",
                     "session_id: %zu bytes; in an experiment ids are at most %d bytes (the event store's bound)",
                     req.session_id.n, EVSTORE_MAX_ID);
        registry_release(srv->reg, v);
        return HTTP_DONE;
    }
    const model_next_ops *ops = v->type->next;
    const idmap *items = version_items(v);
    int64_t N = version_n(v);
    size_t S = ops->state_size(v->handle);
    int excl_need = req.has_items ? (int)req.n_items : sessions_max_seen(srv->sess);
    next_scr *s = scr_get(v, 1, req.k);
    const itemscore *isc = version_isc(v);
    int ncand = isc ? itemscore_candidates(isc, req.k) : req.k;
    if (!s || job_reserve(j, S, excl_need, ncand < 1 ? 1 : ncand) != RC_OK) {
        http_oom(r, "the request's buffers");
        goto done;
    }
    j->r = r;
    j->v = v;
    j->bj.key = v;
    j->k = req.k;
    j->n_excl = 0;
    sbuf_reset(&j->unknown);
    sbuf_reset(&j->session_id);
    int n_known = 0;
    if (req.has_items) {
        memset(j->h, 0, S * sizeof(float));
        for (size_t i = 0; i < req.n_items; i++) {
            const api_str *it = &req.items[i];
            int64_t idx = idmap_find(items, it->p, it->n);
            if (idx < 0) {
                add_unknown(j, it->p, it->n);
                continue;
            }
            int32_t item = (int32_t)idx;
            ops->step(v->handle, j->h, &item, 1, s->msc);
            n_known++;
            if (req.exclude_seen) j->excl[j->n_excl++] = item;
        }
    } else {
        int64_t idx = idmap_find(items, req.item_id.p, req.item_id.n);
        if (idx < 0) add_unknown(j, req.item_id.p, req.item_id.n);
        struct step_ctx sc = {v, (int32_t)idx, s->msc};
        int n_seen = 0, n_clicks = 0;
        /* configured names hold no '/': "MODEL/ID" is unambiguous. One id used with two models (the
         * arms of an experiment, a client switching) keeps one state per model. */
        sbuf_reset(&j->session_key);
        sbuf_adds(&j->session_key, v->model);
        sbuf_addc(&j->session_key, '/');
        sbuf_add(&j->session_key, req.session_id.p, req.session_id.n);
        if (sbuf_failed(&j->session_key)) {
            http_oom(r, "the session key");
            goto done;
        }
        int rc = sessions_advance(srv->sess, j->session_key.data, j->session_key.len, v->fingerprint, S, (int32_t)idx,
                                  step_one, &sc, clock_mono_s(), j->h, j->excl, &n_seen, &n_clicks);
        if (rc != RC_OK) {
            http_problem(r, 503, "session-store-full", "%s", rc_errmsg());
            goto done;
        }
        n_known = n_clicks;
        j->n_excl = req.exclude_seen ? n_seen : 0;
        /* the whole id (limits.max_id_len goes to 1000; a fixed buffer truncated it), NULs included */
        sbuf_add(&j->session_id, req.session_id.p, req.session_id.n);
    }
    if (sbuf_failed(&j->unknown) || sbuf_failed(&j->session_id)) {
        http_oom(r, "the request's ids");
        goto done;
    }
    if (j->k > N) j->k = (int)N;
    if (n_known == 0) {
        answer_popular(j);
        goto done;
    }
    /* batching shares one read of a packed item matrix among the states of a batch; a type scored by
     * its own score (itemknn: a few neighbour lists per state) gains nothing from it: scored inline */
    if (srv->batcher && isc && batcher_push(srv->batcher->b, &j->bj, suspend_job, NULL)) return HTTP_ASYNC;
    score_states(v, j->h, 1, s->scores, s);
    count_batch(1);
    pick_candidates(j, s->scores);
    answer_candidates(j, s);
done:
    j->v = NULL;
    registry_release(srv->reg, v);
    return HTTP_DONE;
}
