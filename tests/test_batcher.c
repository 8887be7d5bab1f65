/* tests/test_batcher.c - server/batcher.c: every job scored exactly once, in batches of one key, with
 * several scorer threads that wait for fuller batches (the configuration that once crashed: a scorer
 * whose wait timed out after another had emptied the queue read a NULL head). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "server/batcher.h"
#include "tests/testlib.h"

enum { PRODUCERS = 4, PER_PRODUCER = 4000, TOTAL = PRODUCERS * PER_PRODUCER };

typedef struct tjob {
    batch_job bj; /* first member: the batcher hands back batch_job pointers */
    _Atomic int scored;
} tjob;

typedef struct tctx {
    _Atomic long done, batches, mixed, oversize, queued_cb;
    int max;
} tctx;

static const char key_a, key_b;

static void score(void *ctx, batch_job **jobs, int B)
{
    tctx *c = ctx;
    if (B > c->max) atomic_fetch_add(&c->oversize, 1);
    for (int i = 0; i < B; i++) {
        if (jobs[i]->key != jobs[0]->key) atomic_fetch_add(&c->mixed, 1);
        atomic_fetch_add(&((tjob *)jobs[i])->scored, 1);
    }
    atomic_fetch_add(&c->batches, 1);
    atomic_fetch_add(&c->done, B);
}

static void on_queue(batch_job *j, void *arg)
{
    (void)j;
    atomic_fetch_add(&((tctx *)arg)->queued_cb, 1);
}

typedef struct producer {
    batcher *b;
    tctx *c;
    tjob *jobs;
    int pushed;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        tjob *j = &p->jobs[i];
        j->bj.key = (i % 3) ? &key_a : &key_b;
        p->pushed += batcher_push(p->b, &j->bj, on_queue, p->c);
    }
    return NULL;
}

static _Atomic int exits;
static void thread_exit(void)
{
    atomic_fetch_add(&exits, 1);
}

TEST(batcher_every_job_once_many_scorers_waiting)
{
    for (int round = 0; round < 3; round++) {
        tctx c;
        memset(&c, 0, sizeof c);
        c.max = 8;
        atomic_store(&exits, 0);
        batcher *b = batcher_new(4, c.max, 300, score, &c, thread_exit);
        ASSERT_NE(b, NULL);
        tjob *jobs = calloc(TOTAL, sizeof *jobs);
        ASSERT_NE(jobs, NULL);
        producer p[PRODUCERS];
        pthread_t th[PRODUCERS];
        for (int i = 0; i < PRODUCERS; i++) {
            p[i] = (producer){b, &c, jobs + (size_t)i * PER_PRODUCER, 0};
            ASSERT_EQ(pthread_create(&th[i], NULL, produce, &p[i]), 0);
        }
        for (int i = 0; i < PRODUCERS; i++) pthread_join(th[i], NULL);
        batcher_free(b); /* scores what is still queued, then joins the scorers */
        for (int i = 0; i < PRODUCERS; i++) ASSERT_EQ(p[i].pushed, PER_PRODUCER);
        ASSERT_EQ(atomic_load(&c.done), TOTAL);
        ASSERT_EQ(atomic_load(&c.queued_cb), TOTAL);
        ASSERT_EQ(atomic_load(&c.mixed), 0);
        ASSERT_EQ(atomic_load(&c.oversize), 0);
        for (int i = 0; i < TOTAL; i++)
            if (atomic_load(&jobs[i].scored) != 1) FAIL("job %d scored %d times", i, atomic_load(&jobs[i].scored));
        ASSERT_EQ(atomic_load(&exits), 4);
        free(jobs);
    }
}

TEST(batcher_stopped_refuses_jobs)
{
    tctx c;
    memset(&c, 0, sizeof c);
    c.max = 4;
    batcher *b = batcher_new(2, c.max, 0, score, &c, NULL);
    ASSERT_NE(b, NULL);
    tjob j;
    memset(&j, 0, sizeof j);
    j.bj.key = &key_a;
    ASSERT_EQ(batcher_push(b, &j.bj, on_queue, &c), 1);
    batcher_stop(b);
    ASSERT_EQ(atomic_load(&j.scored), 1); /* stop scores what was queued */
    tjob k;
    memset(&k, 0, sizeof k);
    k.bj.key = &key_a;
    ASSERT_EQ(batcher_push(b, &k.bj, on_queue, &c), 0); /* the caller scores inline */
    ASSERT_EQ(atomic_load(&k.scored), 0);
    ASSERT_EQ(atomic_load(&c.queued_cb), 1); /* on_queue ran only for the queued job */
    batcher_free(b);
}
