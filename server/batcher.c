/* server/batcher.c - queue and scorer threads of the micro-batcher (see batcher.h). */
#include "server/batcher.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "core/err.h"

struct batcher {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    batch_job *head, *tail;
    int queued;
    int stop;
    int max;
    long wait_us;
    int nthreads;
    pthread_t threads[BATCHER_THREADS];
    batcher_score_fn score;
    void *ctx;
    void (*thread_exit)(void);
};

static void *scorer_main(void *arg)
{
    batcher *b = arg;
    batch_job *jobs[BATCHER_MAX];
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
            if (!b->head) continue; /* another scorer took every job while this one waited */
        }
        /* Take up to max jobs of the head's key, in queue order. */
        int B = 0;
        const void *key = b->head->key;
        batch_job **pp = &b->head, *prev = NULL;
        while (*pp && B < b->max) {
            batch_job *j = *pp;
            if (j->key == key) {
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
        b->score(b->ctx, jobs, B);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    if (b->thread_exit) b->thread_exit();
    return NULL;
}

batcher *batcher_new(int threads, int max, long wait_us, batcher_score_fn score, void *ctx,
                     void (*thread_exit)(void))
{
    batcher *b = calloc(1, sizeof *b);
    if (!b) {
        rc_error(RC_ENOMEM, "out of memory");
        return NULL;
    }
    b->max = max < 1 ? 1 : max > BATCHER_MAX ? BATCHER_MAX : max;
    b->wait_us = wait_us < 0 ? 0 : wait_us;
    b->score = score;
    b->ctx = ctx;
    b->thread_exit = thread_exit;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    int n = threads < 1 ? 1 : threads > BATCHER_THREADS ? BATCHER_THREADS : threads;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&b->threads[i], NULL, scorer_main, b) != 0) {
            rc_error(RC_ENOMEM, "cannot start scorer thread %d", i);
            batcher_free(b);
            return NULL;
        }
        b->nthreads++;
    }
    return b;
}

int batcher_push(batcher *b, batch_job *j, void (*on_queue)(batch_job *j, void *arg), void *arg)
{
    j->next = NULL;
    pthread_mutex_lock(&b->mu);
    if (b->stop) {
        pthread_mutex_unlock(&b->mu);
        return 0;
    }
    if (on_queue) on_queue(j, arg);
    if (b->tail) b->tail->next = j;
    else b->head = j;
    b->tail = j;
    b->queued++;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return 1;
}

void batcher_stop(batcher *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->nthreads; i++) pthread_join(b->threads[i], NULL); /* they empty the queue first */
    b->nthreads = 0;
}

void batcher_free(batcher *b)
{
    if (!b) return;
    batcher_stop(b);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}
