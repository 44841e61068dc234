/*
 * scheduler.c: the bounded queue, the worker thread and the hand-back to the loop. One mutex
 * guards the queue, the done list and the statistics; the worker sleeps on a condition
 * variable; finished jobs wake the loop through event_active on a pure event (libevent's
 * pthreads support makes that safe from another thread).
 */
#include "scheduler.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

enum { ST_QUEUED = 1, ST_RUNNING = 2, ST_FINISHED = 3 };

struct sched {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started;
    int stop;
    struct sched_job *head, *tail; /* the queue */
    size_t depth, max_queue;
    struct sched_job *done_head, *done_tail; /* finished, not yet delivered (via ->next) */
    struct sched_job **round;                /* the round being run (worker thread only) */
    size_t round_n;
    size_t max_jobs;
    size_t budget;                           /* bytes of input per round */
    size_t running;
    unsigned last_tenant; /* the tenant served last (round-robin) */
    sched_run_fn run;
    void *ud;
    struct event *done_ev;
    struct sched_stats st;
};

double sched_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void queue_remove_locked(struct sched *s, struct sched_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        s->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        s->tail = j->prev;
    j->prev = j->next = NULL;
    s->depth--;
}

static void done_push_locked(struct sched *s, struct sched_job *j)
{
    j->state = ST_FINISHED;
    j->next = NULL;
    j->prev = NULL;
    if (s->done_tail)
        s->done_tail->next = j;
    else
        s->done_head = j;
    s->done_tail = j;
}

static void deliver(struct sched *s)
{
    struct sched_job *j;

    pthread_mutex_lock(&s->mu);
    j = s->done_head;
    s->done_head = s->done_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (j != NULL) {
        struct sched_job *next = j->next;

        j->next = NULL;
        j->state = 0;
        j->done(j, j->arg);
        j = next;
    }
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    deliver(arg);
}

static void record_round_locked(struct sched *s, size_t n)
{
    size_t lim = 1;

    s->st.rounds++;
    s->st.jobs_run += n;
    for (int b = 0; b < SCHED_ROUND_BUCKETS; b++, lim *= 2)
        if (n <= lim || b == SCHED_ROUND_BUCKETS - 1)
            s->st.round_hist[b]++;
}

/* Move every queued job whose deadline passed to the done list. Returns how many. */
static size_t expire_locked(struct sched *s, double now)
{
    struct sched_job *j = s->head;
    size_t n = 0;

    while (j != NULL) {
        struct sched_job *next = j->next;

        if (j->deadline > 0 && now >= j->deadline) {
            queue_remove_locked(s, j);
            j->status = SCHED_EXPIRED;
            s->st.expired++;
            done_push_locked(s, j);
            n++;
        }
        j = next;
    }
    return n;
}

/* The next job in round-robin order: the first queued job of the tenant that follows the last
 * served one in cyclic order (unsigned wrap-around makes "follows" a distance). */
static struct sched_job *next_locked(struct sched *s)
{
    struct sched_job *best = NULL;
    unsigned best_d = 0;

    for (struct sched_job *j = s->head; j != NULL; j = j->next) {
        unsigned d = j->tenant - s->last_tenant - 1u;

        if (best == NULL || d < best_d) {
            best = j;
            best_d = d;
        }
    }
    return best;
}

static void *worker(void *arg)
{
    struct sched *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        size_t n = 0, bytes = 0;
        int posted = 0;
        double now;

        while (s->head == NULL && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop)
            break;
        now = sched_now();
        posted = expire_locked(s, now) > 0;
        while (s->head != NULL && n < s->max_jobs) {
            struct sched_job *j = next_locked(s);

            if (n > 0 && bytes + j->cost_bytes > s->budget)
                break;
            queue_remove_locked(s, j);
            j->state = ST_RUNNING;
            j->status = SCHED_OK;
            s->round[n++] = j;
            s->last_tenant = j->tenant;
            bytes += j->cost_bytes;
        }
        s->running = n;
        s->round_n = n;
        if (n > 0)
            record_round_locked(s, n);
        pthread_mutex_unlock(&s->mu);
        if (posted)
            event_active(s->done_ev, EV_READ, 0);
        if (n > 0)
            s->run(s->ud, s->round, n);
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < n; i++) {
            if (s->round[i] == NULL)
                continue; /* handed back early by sched_finish (and maybe freed since) */
            if (atomic_load(&s->round[i]->cancelled))
                s->round[i]->status = SCHED_CANCELLED;
            done_push_locked(s, s->round[i]);
        }
        s->running = 0;
        if (n > 0) {
            pthread_mutex_unlock(&s->mu);
            event_active(s->done_ev, EV_READ, 0);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int sched_new(struct sched **out, struct event_base *base, size_t max_queue, size_t max_jobs,
              size_t budget, sched_run_fn run, void *ud)
{
    struct sched *s = calloc(1, sizeof *s);
    int rc;

    *out = NULL;
    if (s == NULL)
        return -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->max_queue = max_queue;
    s->max_jobs = max_jobs > 0 ? max_jobs : 1;
    s->budget = budget;
    s->run = run;
    s->ud = ud;
    s->round = calloc(s->max_jobs, sizeof *s->round);
    s->done_ev = event_new(base, -1, 0, on_done, s);
    if (s->round == NULL || s->done_ev == NULL)
        goto fail;
    rc = pthread_create(&s->thread, NULL, worker, s);
    if (rc != 0) {
        errno = rc;
        goto fail;
    }
    s->started = 1;
    *out = s;
    return 0;
fail:
    sched_free(s);
    return -1;
}

int sched_submit(struct sched *s, struct sched_job *job)
{
    pthread_mutex_lock(&s->mu);
    if (s->stop || s->depth >= s->max_queue) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    atomic_store(&job->cancelled, 0);
    job->status = SCHED_OK;
    job->state = ST_QUEUED;
    job->next = NULL;
    job->prev = s->tail;
    if (s->tail)
        s->tail->next = job;
    else
        s->head = job;
    s->tail = job;
    s->depth++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void sched_finish(struct sched *s, struct sched_job *job)
{
    int found = 0;

    /* s->round belongs to the worker thread, which is where this runs. Forget the job there:
     * once delivered, the loop may free it. */
    for (size_t i = 0; i < s->round_n; i++)
        if (s->round[i] == job) {
            s->round[i] = NULL;
            found = 1;
            break;
        }
    if (!found)
        return;
    pthread_mutex_lock(&s->mu);
    if (job->state == ST_RUNNING) {
        if (atomic_load(&job->cancelled))
            job->status = SCHED_CANCELLED;
        done_push_locked(s, job);
        if (s->running > 0)
            s->running--;
    }
    pthread_mutex_unlock(&s->mu);
    event_active(s->done_ev, EV_READ, 0);
}

int sched_cancel(struct sched *s, struct sched_job *job)
{
    int removed = 0;

    pthread_mutex_lock(&s->mu);
    if (job->state == ST_QUEUED) {
        queue_remove_locked(s, job);
        job->state = 0;
        removed = 1;
    } else {
        atomic_store(&job->cancelled, 1);
    }
    pthread_mutex_unlock(&s->mu);
    return removed;
}

void sched_get_stats(struct sched *s, struct sched_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->depth = s->depth;
    out->running = s->running;
    pthread_mutex_unlock(&s->mu);
}

void sched_free(struct sched *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    /* What never ran is cancelled; deliver it and whatever finished. */
    while (s->head != NULL) {
        struct sched_job *j = s->head;

        queue_remove_locked(s, j);
        j->status = SCHED_CANCELLED;
        done_push_locked(s, j);
    }
    if (s->done_ev != NULL)
        deliver(s);
    if (s->done_ev)
        event_free(s->done_ev);
    free(s->round);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
