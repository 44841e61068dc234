#ifndef SG_DAEMON_SCHED_H
#define SG_DAEMON_SCHED_H
/*
 * scheduler.h: the request scheduler. One worker thread owns the engine; the event loop never
 * calls it. The loop submits jobs to a bounded queue; the worker takes everything waiting (up
 * to a budget of input bytes) and hands that round of jobs to the run function, which runs them
 * one after another (a loop, not a batched forward pass), then
 * posts the finished jobs back to the loop, which calls each job's `done` callback.
 *
 * Order: round-robin across tenants (the callers' API keys), in arrival order within one
 * tenant, so that one caller's flood of requests cannot starve another's; with a single tenant
 * that is arrival order.
 *
 * Not named sched.h: GCC's -MMD leaves a user header out of the .d file when a system header of
 * the same name (<sched.h>, via <pthread.h>) came first, so its changes would not rebuild the
 * objects that include it.
 *
 * Jobs are owned by the caller (embed struct sched_job in your request). A queued job can be
 * withdrawn at no cost (sched_cancel); a running one is flagged so the run function can stop
 * early, and its `done` callback still comes.
 *
 * The event base must have threading enabled (evthread_use_pthreads before event_base_new).
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

enum sched_status {
    SCHED_OK = 0,        /* the run function ran it */
    SCHED_CANCELLED = 1, /* cancelled while it ran */
    SCHED_EXPIRED = 2,   /* its deadline passed before its turn; not run */
};

struct sched_job {
    struct sched_job *prev, *next; /* queue links (private) */
    double deadline;               /* monotonic seconds (sched_now); 0: none */
    size_t cost_bytes;             /* bytes of input (an upper bound on its tokens) */
    unsigned tenant;               /* whose job it is (round-robin); 0 for everyone unnamed */
    int state;                     /* private */
    atomic_int cancelled;          /* set by sched_cancel (loop); the run function polls it */
    enum sched_status status;      /* valid in `done` */
    void (*done)(struct sched_job *job, void *arg); /* called on the loop thread */
    void *arg;
};

/* Runs on the worker thread: process jobs[0..n) (all of them, not cancelled or expired when
 * taken). Per-job results go into the caller's structures that embed the jobs. */
typedef void (*sched_run_fn)(void *ud, struct sched_job **jobs, size_t n);

#define SCHED_ROUND_BUCKETS 8 /* jobs-per-round histogram: 1, 2, 4, ..., 64, +Inf */

struct sched_stats {
    size_t depth;                             /* queued now */
    size_t running;                           /* in the round being run now */
    uint64_t rounds;                          /* rounds run */
    uint64_t jobs_run;                        /* jobs run (sum of round sizes) */
    uint64_t round_hist[SCHED_ROUND_BUCKETS]; /* cumulative counts: size <= 1, 2, 4, ... */
    uint64_t expired;                         /* expired in the queue */
};

struct sched;

/* Monotonic seconds. */
double sched_now(void);

/*
 * A scheduler posting results to `base`, with at most `max_queue` queued jobs, rounds of at
 * most `max_jobs` jobs and `budget` bytes of input (a first job over the budget still runs,
 * alone).
 * Returns 0 or -1 (out of memory, thread creation failure with errno set). The worker starts
 * at once. The caller owns *out (sched_free).
 */
int sched_new(struct sched **out, struct event_base *base, size_t max_queue, size_t max_jobs,
              size_t budget, sched_run_fn run, void *ud);

/* Queue `job` (its deadline, cost_bytes, done and arg set). Returns 0, or -1 when the queue is full
 * or the scheduler is stopping (the job is not queued). Loop thread only. */
int sched_submit(struct sched *s, struct sched_job *job);

/*
 * Withdraw `job`. Returns 1 if it was still queued: it is removed and its `done` will never be
 * called. Returns 0 if it is running or finished but not yet delivered: it is flagged
 * cancelled and `done` still comes (with SCHED_CANCELLED if it was running). Loop thread only.
 */
int sched_cancel(struct sched *s, struct sched_job *job);

/*
 * Worker thread, from the run function: `job` (of the running round) is finished; hand it
 * back to the loop now rather than with the rest of the round, so that its reply does not
 * wait for the others. The run function must not touch the job afterwards.
 */
void sched_finish(struct sched *s, struct sched_job *job);

void sched_get_stats(struct sched *s, struct sched_stats *out);

/* Stop the worker after its current round, join it, and complete what is still queued with
 * SCHED_CANCELLED (their `done` callbacks run from sched_free). */
void sched_free(struct sched *s);

#endif /* SG_DAEMON_SCHED_H */
