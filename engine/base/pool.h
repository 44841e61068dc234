#ifndef SG_POOL_H
#define SG_POOL_H
/*
 * pool.h (internal to engine/): a persistent thread pool for the forward pass.
 *
 * sg_pool_run(pool, fn, ctx, n_tasks) calls fn(ctx, task, thread) once for every task in
 * 0..n_tasks-1, spread over the pool's threads (the calling thread works too, as thread 0), and
 * returns when all of them are done. Tasks are handed out dynamically (an atomic counter), so
 * uneven tasks balance themselves. `thread` is in 0..sg_pool_n_threads()-1 and indexes
 * per-thread scratch (sg_pool_scratch), so a task never allocates.
 *
 * One caller at a time: a pool belongs to one sg_ctx (or one model) and is not reentrant
 * (fn must not call sg_pool_run on the same pool). A NULL pool runs everything on the caller.
 *
 *     sg_pool *p;
 *     sg_pool_new(&p, 4);
 *     sg_pool_reserve(p, 64 * 1024);          // scratch bytes per thread, at setup time
 *     sg_pool_run(p, my_fn, &args, n_rows);   // my_fn(&args, row, thread)
 *     sg_pool_free(p);
 */

#include <stddef.h>

typedef struct sg_pool sg_pool;

/* One unit of work: `task` in 0..n_tasks-1, `thread` in 0..n_threads-1. */
typedef void (*sg_pool_fn)(void *ctx, size_t task, int thread);

/*
 * Start a pool of `n_threads` workers in all (n_threads - 1 new threads plus the caller of
 * sg_pool_run); n_threads <= 0 means the number of online cores. The caller owns *out and frees
 * it with sg_pool_free(). Returns SG_OK, SG_EINVAL for n_threads > 1024, or SG_ENOMEM/SG_EIO if
 * memory or a thread could not be had.
 */
int sg_pool_new(sg_pool **out, int n_threads);
/* Stop and join the threads and free the pool and its scratch (NULL is fine). */
void sg_pool_free(sg_pool *p);
/* Threads in the pool (1 for NULL). */
int sg_pool_n_threads(const sg_pool *p);

/*
 * Make sure every thread has at least `bytes` of scratch (64-byte aligned). Call it at setup
 * time (sg_ctx_new, sg_mat_new users), never per token. Returns SG_OK or SG_ENOMEM (the old
 * scratch is kept). A NULL pool is refused with SG_EINVAL.
 */
int sg_pool_reserve(sg_pool *p, size_t bytes);
/* Per-thread scratch of `thread` (at least the reserved bytes) and its size; NULL if none. */
void *sg_pool_scratch(const sg_pool *p, int thread, size_t *bytes);

/*
 * Run fn(ctx, task, thread) for task = 0..n_tasks-1 and wait for all of them. With a NULL
 * pool, one thread, or n_tasks == 1, everything runs on the caller as thread 0.
 */
void sg_pool_run(sg_pool *p, sg_pool_fn fn, void *ctx, size_t n_tasks);

#endif /* SG_POOL_H */
