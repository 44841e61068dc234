/*
 * check_sched.c: the scheduler with a fake run function: jobs come back on the loop thread in
 * order, the worker takes what is waiting, up to the byte budget, as one round, a full queue refuses, a
 * queued job is withdrawn at no cost, a running one is flagged and still handed back, an
 * expired one is not run, and freeing the scheduler completes what is left.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "scheduler.h"

Suite *sched_suite(void);

struct fake {
    pthread_mutex_t mu;
    int gate; /* the run function waits while gate == 0 */
    pthread_cond_t cv;
    size_t rounds[64]; /* sizes of the rounds run */
    size_t n_rounds;
    int ran[64]; /* ids of the jobs run, in order */
    size_t n_ran;
    int saw_cancel;
    struct sched *s; /* set: hand each job back as soon as it is run */
    void *last;
    int delivered_early; /* jobs already delivered when the next one ran */
};

struct tjob {
    struct sched_job sj;
    int id;
    int done;
    enum sched_status status;
    pthread_t done_thread;
};

static void run(void *ud, struct sched_job **jobs, size_t n)
{
    struct fake *f = ud;

    pthread_mutex_lock(&f->mu);
    while (!f->gate)
        pthread_cond_wait(&f->cv, &f->mu);
    f->rounds[f->n_rounds++] = n;
    for (size_t i = 0; i < n; i++) {
        f->ran[f->n_ran++] = ((struct tjob *)jobs[i])->id;
        f->saw_cancel |= jobs[i]->cancelled;
    }
    pthread_mutex_unlock(&f->mu);
    if (f->s != NULL) {
        for (size_t i = 0; i < n; i++) {
            struct tjob *j = (struct tjob *)jobs[i];

            if (i > 0) {
                /* Give the loop time to deliver the previous one before this one ends. */
                usleep(100000);
                f->delivered_early += ((struct tjob *)f->last)->done;
            }
            f->last = j;
            sched_finish(f->s, &j->sj);
        }
    }
}

static void done(struct sched_job *sj, void *arg)
{
    struct tjob *j = arg;

    (void)sj;
    j->done++;
    j->status = j->sj.status;
    j->done_thread = pthread_self();
}

static void open_gate(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    f->gate = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
}

static void job_init(struct tjob *j, int id, size_t cost_bytes)
{
    memset(j, 0, sizeof *j);
    j->id = id;
    j->sj.cost_bytes = cost_bytes;
    j->sj.done = done;
    j->sj.arg = j;
}

/* Run the loop until every job in js[0..n) is done (or 5 s pass). */
static void wait_done(struct event_base *base, struct tjob *js, size_t n)
{
    for (int t = 0; t < 500; t++) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
            k += js[i].done > 0;
        if (k == n)
            return;
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(10000);
    }
}

/* Wait until the worker has taken a round (it is blocked in the run function). */
static void wait_running(struct sched *s)
{
    struct sched_stats st;

    for (int t = 0; t < 1000; t++) {
        sched_get_stats(s, &st);
        if (st.running > 0)
            return;
        usleep(5000);
    }
    ck_abort_msg("the worker never took the first job");
}

static struct event_base *new_base(void)
{
    ck_assert_int_eq(evthread_use_pthreads(), 0);
    return event_base_new();
}

START_TEST(rounds_and_order)
{
    struct event_base *base = new_base();
    struct fake f;
    struct sched *s;
    struct tjob js[6];
    struct sched_stats st;

    fake_init(&f);
    ck_assert_int_eq(sched_new(&s, base, 16, 64, 100, run, &f), 0);
    /* The first job blocks the worker; the rest queue up behind it. */
    for (int i = 0; i < 6; i++)
        job_init(&js[i], i, 40);
    ck_assert_int_eq(sched_submit(s, &js[0].sj), 0);
    wait_running(s);
    for (int i = 1; i < 6; i++)
        ck_assert_int_eq(sched_submit(s, &js[i].sj), 0);
    sched_get_stats(s, &st);
    ck_assert_uint_eq(st.depth, 5);
    open_gate(&f);
    wait_done(base, js, 6);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(js[i].done, 1);
        ck_assert_int_eq(js[i].status, SCHED_OK);
        ck_assert(pthread_equal(js[i].done_thread, pthread_self()));
        ck_assert_int_eq(f.ran[i], i);
    }
    /* Budget 100 at cost 40: rounds of 1 (the first), then 2, 2, 1. */
    ck_assert_uint_eq(f.n_rounds, 4);
    ck_assert_uint_eq(f.rounds[0], 1);
    ck_assert_uint_eq(f.rounds[1], 2);
    ck_assert_uint_eq(f.rounds[2], 2);
    ck_assert_uint_eq(f.rounds[3], 1);
    sched_get_stats(s, &st);
    ck_assert_uint_eq(st.rounds, 4);
    ck_assert_uint_eq(st.jobs_run, 6);
    ck_assert_uint_eq(st.round_hist[0], 2); /* size <= 1 */
    ck_assert_uint_eq(st.round_hist[1], 4); /* size <= 2 (cumulative) */
    ck_assert_uint_eq(st.depth, 0);
    sched_free(s);
    event_base_free(base);
}
END_TEST

START_TEST(full_cancel_expire)
{
    struct event_base *base = new_base();
    struct fake f;
    struct sched *s;
    struct tjob js[5];

    fake_init(&f);
    ck_assert_int_eq(sched_new(&s, base, 3, 64, 1000, run, &f), 0);
    for (int i = 0; i < 5; i++)
        job_init(&js[i], i, 1);
    ck_assert_int_eq(sched_submit(s, &js[0].sj), 0);
    wait_running(s); /* job 0 is running (blocked) */
    ck_assert_int_eq(sched_submit(s, &js[1].sj), 0);
    js[2].sj.deadline = sched_now() - 1; /* already past */
    ck_assert_int_eq(sched_submit(s, &js[2].sj), 0);
    ck_assert_int_eq(sched_submit(s, &js[3].sj), 0);
    ck_assert_int_eq(sched_submit(s, &js[4].sj), -1); /* the queue holds 3 */
    /* Withdraw a queued job: gone, no callback. Flag the running one: callback comes. */
    ck_assert_int_eq(sched_cancel(s, &js[1].sj), 1);
    ck_assert_int_eq(sched_cancel(s, &js[0].sj), 0);
    open_gate(&f);
    for (int t = 0; t < 500 && (!js[0].done || !js[2].done || !js[3].done); t++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(10000);
    }
    ck_assert_int_eq(js[0].done, 1);
    ck_assert_int_eq(js[0].status, SCHED_CANCELLED);
    ck_assert_int_eq(js[1].done, 0);
    ck_assert_int_eq(js[2].done, 1);
    ck_assert_int_eq(js[2].status, SCHED_EXPIRED);
    ck_assert_int_eq(js[3].done, 1);
    ck_assert_int_eq(js[3].status, SCHED_OK);
    ck_assert_int_eq(f.saw_cancel, 1);
    /* Ran: 0 and 3; never 1 (withdrawn) nor 2 (expired). */
    ck_assert_uint_eq(f.n_ran, 2);
    ck_assert_int_eq(f.ran[0], 0);
    ck_assert_int_eq(f.ran[1], 3);
    sched_free(s);
    event_base_free(base);
}
END_TEST

START_TEST(free_completes_queued)
{
    struct event_base *base = new_base();
    struct fake f;
    struct sched *s;
    struct tjob js[3];

    fake_init(&f);
    ck_assert_int_eq(sched_new(&s, base, 8, 64, 1000, run, &f), 0);
    for (int i = 0; i < 3; i++)
        job_init(&js[i], i, 1);
    ck_assert_int_eq(sched_submit(s, &js[0].sj), 0);
    wait_running(s);
    ck_assert_int_eq(sched_submit(s, &js[1].sj), 0);
    ck_assert_int_eq(sched_submit(s, &js[2].sj), 0);
    open_gate(&f);
    sched_free(s); /* joins after the running round; the queued ones come back cancelled */
    ck_assert_int_eq(js[0].done, 1);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(js[i].done, 1);
    event_base_free(base);
}
END_TEST

/* Loop thread: runs the base until all jobs are done, in a helper thread's absence. */
static void *loop_thread(void *arg)
{
    struct event_base *base = arg;

    for (int t = 0; t < 300; t++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(5000);
    }
    return NULL;
}

START_TEST(finish_early)
{
    struct event_base *base = new_base();
    struct fake f;
    struct sched *s;
    struct tjob js[4];
    pthread_t lt;

    fake_init(&f);
    ck_assert_int_eq(sched_new(&s, base, 8, 64, 1000, run, &f), 0);
    f.s = s;
    /* Job 0 blocks the worker; 1..3 queue behind it and form the next round. */
    for (int i = 0; i < 4; i++)
        job_init(&js[i], i, 1);
    ck_assert_int_eq(sched_submit(s, &js[0].sj), 0);
    wait_running(s);
    for (int i = 1; i < 4; i++)
        ck_assert_int_eq(sched_submit(s, &js[i].sj), 0);
    pthread_create(&lt, NULL, loop_thread, base);
    open_gate(&f);
    pthread_join(lt, NULL);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(js[i].done, 1); /* exactly once */
        ck_assert_int_eq(js[i].status, SCHED_OK);
    }
    ck_assert_uint_eq(f.n_rounds, 2);
    ck_assert_uint_eq(f.rounds[1], 3);
    ck_assert_int_eq(f.delivered_early, 2); /* each was delivered while the next ran */
    sched_free(s);
    event_base_free(base);
}
END_TEST

Suite *sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("sched");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, rounds_and_order);
    tcase_add_test(tc, full_cancel_expire);
    tcase_add_test(tc, free_completes_queued);
    tcase_add_test(tc, finish_early);
    suite_add_tcase(s, tc);
    return s;
}
