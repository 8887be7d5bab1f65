/* server/events.c - POST /v1/events: clicks, acquisitions and client impressions against the request_id
 * of an answer, stored durably before the answer (DESIGN.md section 6; the store is server/evstore.h).
 *
 *   {"request_id":"..","type":"acquisition","item_id":"a","event_id":"e1","value":12.5}  or  [{..},..]
 *   -> 200 {"accepted":N,"duplicates":D,"request_id":".."}
 * accepted: events newly stored; duplicates: events stored before (same event_id, or same request_id,
 * type and item_id without one), acknowledged and not counted again; accepted + duplicates = the events
 * of the body. The answer is sent only after the store's commit: an acknowledged event survives a
 * kill -9 (and with events.sync, a power loss).
 * Errors (problem+json): 400/422 from the parser (api/events_req.h); 422 "unknown-request-ids" when an
 * event names a request_id the store does not know (nothing of the batch is stored; the problem lists
 * the first EVENTS_UNKNOWN_MAX of them in "unknown" and their count in "n_unknown"); 503 (Retry-After)
 * when the state folder is full or the commit failed (nothing stored: resend); 404 "events-off" when the
 * server has no state folder (state.dir).
 *
 * Flow: parse into the connection's slot (events_job: the parser's scratch, the ev_event array, the
 * ev_batch), suspend the connection, evstore_submit; the writer thread commits and calls done(), which
 * resumes the connection; the answer is built in on_resume on an HTTP thread. The batch and its events
 * live in the slot, so they stay valid until done() whatever the client does: a client that goes away
 * meanwhile is noticed only when the connection resumes (libmicrohttpd does not watch a suspended
 * connection), on_resume then runs without sending, and the slot is freed with the connection.
 * A done() that comes before the handler suspended (a fast commit) is answered synchronously: a job
 * mutex orders the two (the writer never holds it while calling into the store).
 * Memory: nothing is allocated per request once the slot has grown to the connection's largest batch.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/events_req.h"
#include "api/problem.h"
#include "core/clock.h"
#include "core/err.h"
#include "server/evstore.h"
#include "server/http.h"
#include "server/server.h"

int route_events(http_req *r);

#define EVENTS_UNKNOWN_MAX 20 /* unknown request ids named in a 422 */

typedef struct events_job {
    events_scratch scr;
    ev_event *ev; /* (ev_cap) what the store reads */
    size_t ev_cap;
    ev_batch b;
    int unknown[EVENTS_UNKNOWN_MAX];
    pthread_mutex_t mu; /* orders done() and the handler's suspend */
    pthread_cond_t cv;  /* signalled by done() (for job_free) */
    int pending;        /* a batch is in the store: done() not called yet */
    int suspended;      /* the handler suspended the connection: done() resumes it */
    http_req *r;
} events_job;

static void *job_new(void)
{
    events_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    return j;
}

/* The connection closes. Normally no batch is pending (the connection resumes only after done()); a
 * connection closed while suspended (the daemon stopping before the store) waits for done(), which the
 * store guarantees (evstore_close answers what is queued), and done() then does not resume it. */
static void job_free(void *p)
{
    events_job *j = p;
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    j->suspended = 0;
    while (j->pending) pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    events_scratch_release(&j->scr);
    free(j->ev);
    free(j);
}

static void job_trim(void *p)
{
    events_job *j = p;
    events_scratch_trim(&j->scr, HTTP_KEEP_BYTES);
    if (j->ev_cap * sizeof *j->ev > HTTP_KEEP_BYTES) {
        free(j->ev);
        j->ev = NULL;
        j->ev_cap = 0;
    }
}

static const http_slot_type events_slot = {"/v1/events", job_new, job_free, job_trim};

/* ---- the answer ---- */
static void answer(http_req *r, events_job *j)
{
    ev_batch *b = &j->b;
    if (b->status == 0) {
        sbuf_printf(r->out, "{\"accepted\":%d,\"duplicates\":%d,\"request_id\":", b->stored, b->duplicates);
        sbuf_json_str(r->out, r->request_id, strlen(r->request_id));
        sbuf_adds(r->out, "}\n");
        http_json(r, 200);
        return;
    }
    if (b->status != 422) {
        http_problem(r, 503, "events-unavailable", "%s: nothing was stored, retry later",
                     b->detail[0] ? b->detail : "the event store could not commit");
        return;
    }
    /* 422: the unknown request ids, named */
    int named = b->n_unknown < EVENTS_UNKNOWN_MAX ? b->n_unknown : EVENTS_UNKNOWN_MAX;
    char detail[400];
    size_t used = (size_t)snprintf(detail, sizeof detail,
                                   "%d event%s name%s a request_id the server does not know (unknown, or past "
                                   "events.retention_days); nothing was stored:",
                                   b->n_unknown, b->n_unknown == 1 ? "" : "s", b->n_unknown == 1 ? "s" : "");
    for (int i = 0; i < named && used < sizeof detail - 80; i++) {
        int k = b->unknown[i];
        if (k < 0 || k >= b->n) continue;
        const api_str *id = &b->ev[k].request_id;
        used += (size_t)snprintf(detail + used, sizeof detail - used, "%s events[%d] '%.*s%s'", i ? "," : "", k,
                                 (int)(id->n > 40 ? 40 : id->n), id->p, id->n > 40 ? "..." : "");
    }
    if (named < b->n_unknown && used < sizeof detail - 16)
        snprintf(detail + used, sizeof detail - used, ", ...");
    http_problem(r, 422, "unknown-request-ids", "%s", detail);
    /* extension members: "unknown":[{"index":3,"request_id":".."}],"n_unknown":N */
    sbuf *out = r->out;
    if (out->len >= 2 && out->data[out->len - 2] == '}') {
        out->len -= 2;
        sbuf_adds(out, ",\"unknown\":[");
        for (int i = 0; i < named; i++) {
            int k = b->unknown[i];
            if (k < 0 || k >= b->n) continue;
            sbuf_printf(out, "%s{\"index\":%d,\"request_id\":", i ? "," : "", k);
            sbuf_json_str(out, b->ev[k].request_id.p, b->ev[k].request_id.n);
            sbuf_addc(out, '}');
        }
        sbuf_printf(out, "],\"n_unknown\":%d}\n", b->n_unknown);
    }
}

/* http_req.on_resume: the answer, on an HTTP thread (also when the client went away: nothing is sent). */
static void events_finish(http_req *r)
{
    events_job *j = http_slot_get(r, &events_slot);
    if (j) answer(r, j);
}

/* ev_batch.done, on the store's writer thread after the commit (or its failure). */
static void events_done(ev_batch *b)
{
    events_job *j = b->arg;
    pthread_mutex_lock(&j->mu);
    j->pending = 0;
    http_req *r = j->suspended ? j->r : NULL;
    j->suspended = 0;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (r) http_resume(r); /* the job is the connection's again: not touched here any more */
}

int route_events(http_req *r)
{
    server *srv = r->srv;
    if (!srv->events)
        return http_problem(r, 404, "events-off",
                            "this server keeps no events: set state.dir (a state folder) to turn them on");
    events_job *j = http_slot(r, &events_slot);
    if (!j) return http_oom(r, "the request's state");
    char detail[320];
    events_req req;
    int st = events_req_parse(r->body, r->body_len, &srv->limits, (int)srv->cfg.ev_max_batch, &j->scr, &req,
                              detail, sizeof detail);
    if (st == 503) return http_oom(r, "the request's buffers");
    if (st) return http_problem(r, st, st == 400 ? "invalid-request" : "unprocessable-request", "%s", detail);
    if (req.n > j->ev_cap) {
        size_t want = req.n < 16 ? 16 : req.n;
        ev_event *q = realloc(j->ev, want * sizeof *q);
        if (!q) return http_oom(r, "the request's events");
        j->ev = q;
        j->ev_cap = want;
    }
    double now = clock_wall_s();
    for (size_t i = 0; i < req.n; i++) {
        const evreq_event *e = &req.ev[i];
        ev_event *o = &j->ev[i];
        o->type = (ev_type)e->type;
        o->request_id = e->request_id;
        o->item_id = e->item_id;
        o->event_id = e->event_id;
        o->value = e->value;
        o->t = now;
    }
    ev_batch *b = &j->b;
    memset(b, 0, sizeof *b);
    b->ev = j->ev;
    b->n = (int)req.n;
    b->done = events_done;
    b->arg = j;
    b->unknown = j->unknown;
    b->unknown_cap = EVENTS_UNKNOWN_MAX;
    pthread_mutex_lock(&j->mu);
    j->r = r;
    j->suspended = 0;
    j->pending = 1;
    int rc = evstore_submit(srv->events, b);
    if (rc != RC_OK) {
        j->pending = 0;
        pthread_mutex_unlock(&j->mu);
        if (rc == RC_EINVAL) return http_problem(r, 422, "unprocessable-request", "%s", rc_errmsg());
        return http_problem(r, 503, rc == RC_EFULL ? "events-full" : "events-unavailable",
                            "%s: nothing was stored, retry later", rc_errmsg());
    }
    if (!j->pending) { /* committed already: answer now */
        pthread_mutex_unlock(&j->mu);
        answer(r, j);
        return HTTP_DONE;
    }
    r->on_resume = events_finish;
    http_suspend(r);
    j->suspended = 1;
    pthread_mutex_unlock(&j->mu);
    return HTTP_ASYNC;
}
