/* server/batcher.h - the micro-batcher: requests queued by HTTP threads, scored together by scorer threads.
 *
 * Scoring one query reads a whole item matrix (N x D floats, ~10.7 MB for 11.9k x 224); scoring B queries
 * together reads it once. A route suspends its connection and pushes a job; scorer threads take every
 * queued job with the same key (the model version: jobs of different versions are never mixed), up to
 * `max`, waiting at most `wait_us` for more when fewer are queued, and call the score callback with them.
 * The callback scores, picks candidates and resumes each job's connection; the rest of the answer is
 * built on the HTTP thread. The batcher knows nothing of models or HTTP beyond the two callbacks.
 *
 * Thread-safety: push from any thread; new/stop/free from one thread (the server's).
 */
#ifndef RECD_BATCHER_H
#define RECD_BATCHER_H

/* A queued unit of work: embed it in the route's job. key groups jobs that may be scored together. */
typedef struct batch_job {
    struct batch_job *next; /* private: queue link */
    const void *key;
} batch_job;

/* Score jobs[0..B) (B >= 1, all of the same key) on a scorer thread; jobs is borrowed for the call. */
typedef void (*batcher_score_fn)(void *ctx, batch_job **jobs, int B);

typedef struct batcher batcher;

#define BATCHER_MAX 256     /* largest batch */
#define BATCHER_THREADS 16  /* most scorer threads */

/* Start `threads` scorer threads (clamped to [1, BATCHER_THREADS]) taking up to max (clamped to
 * [1, BATCHER_MAX]) jobs at a time. score(ctx, ...) is called on them; thread_exit (may be NULL) is called
 * by each scorer thread before it returns (e.g. to free its thread-local scratch). NULL with a message when
 * a thread cannot start (none is left running). */
batcher *batcher_new(int threads, int max, long wait_us, batcher_score_fn score, void *ctx,
                     void (*thread_exit)(void));

/* Queue j unless the batcher is stopped: on_queue(j, arg) runs first, under the queue lock (a route
 * suspends its connection there: a scorer may resume it as soon as it is queued, and no job is queued once
 * batcher_stop has emptied the queue). Returns 1 when queued, 0 when stopped (the caller scores inline). */
int batcher_push(batcher *b, batch_job *j, void (*on_queue)(batch_job *j, void *arg), void *arg);

/* Stop taking jobs, score every queued one, and join the scorer threads. NULL is a no-op. */
void batcher_stop(batcher *b);
/* batcher_stop (if not done yet), then free. NULL is a no-op. */
void batcher_free(batcher *b);

#endif
