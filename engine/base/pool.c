/*
 * pool.c: a persistent thread pool (see pool.h).
 *
 * Workers sleep on a condition variable until sg_pool_run publishes a job (a new generation
 * number). Every participant, the caller included, then takes task indices from one atomic
 * counter until they run out; the last worker to finish signals the caller. No allocation
 * happens in sg_pool_run.
 */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sg_engine.h"

#define POOL_MAX_THREADS 1024
#define SCRATCH_ALIGN 64

struct worker {
    sg_pool *pool;
    int index; /* 1..n_threads-1; the caller is 0 */
    pthread_t thread;
};

struct sg_pool {
    int n_threads;
    struct worker *workers; /* n_threads - 1 */
    int n_started;

    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers wait for a new generation */
    pthread_cond_t done; /* the caller waits for n_busy == 0 */
    unsigned long generation;
    int quit;
    int n_busy; /* workers still on the current job */

    /* The current job. */
    sg_pool_fn fn;
    void *ctx;
    size_t n_tasks;
    atomic_size_t next;

    void **scratch; /* n_threads blocks of scratch_bytes */
    size_t scratch_bytes;
};

static void run_tasks(sg_pool *p, int thread)
{
    for (;;) {
        size_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n_tasks)
            break;
        p->fn(p->ctx, t, thread);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    sg_pool *p = w->pool;
    unsigned long seen = 0;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit)
            break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);

        run_tasks(p, w->index);

        pthread_mutex_lock(&p->mu);
        if (--p->n_busy == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1)
        return 1;
    if (n > POOL_MAX_THREADS)
        return POOL_MAX_THREADS;
    return (int)n;
}

int sg_pool_new(sg_pool **out, int n_threads)
{
    sg_pool *p;
    int rc = SG_ENOMEM;

    *out = NULL;
    if (n_threads > POOL_MAX_THREADS)
        return SG_EINVAL;
    if (n_threads <= 0)
        n_threads = online_cores();
    p = calloc(1, sizeof *p);
    if (!p)
        return SG_ENOMEM;
    p->n_threads = n_threads;
    atomic_init(&p->next, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->scratch = calloc((size_t)n_threads, sizeof *p->scratch);
    if (!p->scratch)
        goto fail;
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers)
            goto fail;
    }
    for (int i = 0; i < n_threads - 1; i++) {
        p->workers[i].pool = p;
        p->workers[i].index = i + 1;
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
            rc = SG_EIO;
            goto fail;
        }
        p->n_started++;
    }
    *out = p;
    return SG_OK;
fail:
    sg_pool_free(p);
    return rc;
}

void sg_pool_free(sg_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->workers[i].thread, NULL);
    if (p->scratch)
        for (int i = 0; i < p->n_threads; i++)
            free(p->scratch[i]);
    free(p->scratch);
    free(p->workers);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int sg_pool_n_threads(const sg_pool *p)
{
    return p ? p->n_threads : 1;
}

int sg_pool_reserve(sg_pool *p, size_t bytes)
{
    size_t rounded;

    if (!p)
        return SG_EINVAL;
    if (bytes <= p->scratch_bytes)
        return SG_OK;
    if (bytes > SIZE_MAX - SCRATCH_ALIGN)
        return SG_ENOMEM;
    rounded = (bytes + SCRATCH_ALIGN - 1) / SCRATCH_ALIGN * SCRATCH_ALIGN;
    /* Allocate all first so that a failure leaves the old scratch intact. */
    void **fresh = calloc((size_t)p->n_threads, sizeof *fresh);
    if (!fresh)
        return SG_ENOMEM;
    for (int i = 0; i < p->n_threads; i++) {
        fresh[i] = aligned_alloc(SCRATCH_ALIGN, rounded);
        if (!fresh[i]) {
            for (int j = 0; j < i; j++)
                free(fresh[j]);
            free(fresh);
            return SG_ENOMEM;
        }
        memset(fresh[i], 0, rounded);
    }
    for (int i = 0; i < p->n_threads; i++) {
        free(p->scratch[i]);
        p->scratch[i] = fresh[i];
    }
    free(fresh);
    p->scratch_bytes = rounded;
    return SG_OK;
}

void *sg_pool_scratch(const sg_pool *p, int thread, size_t *bytes)
{
    if (!p || thread < 0 || thread >= p->n_threads || !p->scratch[thread]) {
        if (bytes)
            *bytes = 0;
        return NULL;
    }
    if (bytes)
        *bytes = p->scratch_bytes;
    return p->scratch[thread];
}

void sg_pool_run(sg_pool *p, sg_pool_fn fn, void *ctx, size_t n_tasks)
{
    if (n_tasks == 0)
        return;
    if (!p || p->n_threads == 1 || n_tasks == 1) {
        for (size_t t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    p->n_busy = p->n_started;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    run_tasks(p, 0);

    pthread_mutex_lock(&p->mu);
    while (p->n_busy > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
