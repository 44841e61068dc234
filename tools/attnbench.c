/*
 * attnbench: time attention alone at the Gemma-2-2B head shape (8 query heads, 4 KV heads,
 * head_dim 256, scale 1/16, soft-cap 50): one pass of 256 rows at the last 256 positions of a
 * context of N tokens, random keys, values and queries. Compares attn.c's blocked products
 * with the loop it replaced (one sg_dot per key, row and head, libm tanhf, sg_softmax, one
 * sg_axpy per key), and prints ms, GFLOP/s and the largest difference between the two.
 *
 *     build/tools/attnbench [--threads N] [--reps R] [CONTEXT...]     (default 512 2048 4096)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn.h"
#include "ops.h"
#include "pool.h"
#include "sg_engine.h"

#define HD 256
#define NH 8
#define NKV 4
#define ROWS 256

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

struct loop_job {
    const float *q, *k, *v;
    float *out;
    const sg_attn_row *rows;
    float *scores; /* [threads][n] */
    size_t n;
};

/* The replaced path: one (row, head) per task, one dot product per key. */
static void loop_task(void *arg, size_t task, int thread)
{
    const struct loop_job *j = arg;
    const size_t r = task / NH, h = task % NH, g = h / (NH / NKV);
    const sg_attn_row *row = &j->rows[r];
    const float *q = j->q + r * NH * HD + h * HD;
    float *out = j->out + r * NH * HD + h * HD;
    float *s = j->scores + (size_t)thread * j->n;
    size_t n = 0;

    for (size_t t = 0; t <= row->local; t++)
        s[n++] = sg_dot(q, j->k + t * NKV * HD + g * HD, HD) * 0.0625f;
    for (size_t i = 0; i < n; i++)
        s[i] = 50.0f * tanhf(s[i] / 50.0f);
    sg_softmax(s, n);
    memset(out, 0, HD * sizeof *out);
    for (size_t t = 0; t < n; t++)
        sg_axpy(out, s[t], j->v + t * NKV * HD + g * HD, HD);
}

static float rnd(unsigned *s, float scale)
{
    *s = *s * 1103515245u + 12345u;
    return scale * ((float)(*s >> 8 & 0xffffff) / 8388608.0f - 1.0f);
}

static int bench(size_t n, int threads, int reps)
{
    const sg_attn_shape sh = {HD, NH, NKV, 0.0625f, 50.0f};
    float *k = malloc(n * NKV * HD * sizeof *k);
    float *v = malloc(n * NKV * HD * sizeof *v);
    float *q = malloc(ROWS * NH * HD * sizeof *q);
    float *o1 = malloc(ROWS * NH * HD * sizeof *o1);
    float *o2 = malloc(ROWS * NH * HD * sizeof *o2);
    float *scores = malloc((size_t)threads * n * sizeof *scores);
    sg_attn_row rows[ROWS];
    sg_attn_plan *plan = NULL;
    sg_pool *pool = NULL;
    unsigned seed = 1;
    double t_new = 1e30, t_old = 1e30, diff = 0;
    int rc = 1;

    if (!k || !v || !q || !o1 || !o2 || !scores)
        goto fail;
    for (size_t i = 0; i < n * NKV * HD; i++) {
        k[i] = rnd(&seed, 1.0f);
        v[i] = rnd(&seed, 1.0f);
    }
    for (size_t i = 0; i < ROWS * NH * HD; i++)
        q[i] = rnd(&seed, 2.0f);
    for (size_t i = 0; i < ROWS; i++) {
        rows[i].pos = n - ROWS + i;
        rows[i].slot = rows[i].pos;
        rows[i].trunk_len = 0;
        rows[i].seg_slot = 0;
        rows[i].local = rows[i].pos;
    }
    if (sg_pool_new(&pool, threads) != SG_OK ||
        sg_attn_plan_new(&plan, &sh, ROWS, n, threads, SG_ATTN_AUTO) != SG_OK)
        goto fail;

    struct loop_job j = {q, k, v, o2, rows, scores, n};
    for (int r = 0; r < reps; r++) {
        double t = now();
        sg_attn_run(plan, rows, ROWS, q, NH * HD, k, v, NKV * HD, 0, o1, NH * HD, pool);
        t = now() - t;
        t_new = t < t_new ? t : t_new;
        t = now();
        sg_pool_run(pool, loop_task, &j, ROWS * NH);
        t = now() - t;
        t_old = t < t_old ? t : t_old;
    }
    for (size_t i = 0; i < ROWS * NH * HD; i++) {
        double d = fabs((double)o1[i] - (double)o2[i]);
        diff = d > diff ? d : diff;
    }
    /* 2 products (scores, values) x 2 flops x rows x heads x head_dim x mean keys. */
    const double flop = 4.0 * ROWS * NH * HD * ((double)n - ROWS / 2.0);
    printf("context %5zu, %d rows, %d threads: per-key loop %8.1f ms (%5.1f GFLOP/s), "
           "blocked (%s) %7.1f ms (%5.1f GFLOP/s), %5.1fx, max |diff| %.2g\n",
           n, ROWS, threads, t_old * 1e3, flop / t_old * 1e-9, sg_attn_plan_kernel(plan),
           t_new * 1e3, flop / t_new * 1e-9, t_old / t_new, diff);
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "attnbench: out of memory at context %zu\n", n);
    sg_attn_plan_free(plan);
    sg_pool_free(pool);
    free(k);
    free(v);
    free(q);
    free(o1);
    free(o2);
    free(scores);
    return rc;
}

int main(int argc, char **argv)
{
    int threads = 2, reps = 3, any = 0, rc = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else {
            char *end;
            long n = strtol(argv[i], &end, 10);
            if (*end || n < ROWS || n > 1 << 20) {
                fprintf(stderr, "attnbench: '%s': expected a context of %d to %d tokens\n",
                        argv[i], ROWS, 1 << 20);
                return 2;
            }
        }
    }
    if (threads < 1 || threads > 1024 || reps < 1) {
        fprintf(stderr, "attnbench: --threads 1..1024 and --reps >= 1\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 || strcmp(argv[i], "--reps") == 0) {
            i++;
            continue;
        }
        rc |= bench((size_t)strtol(argv[i], NULL, 10), threads, reps);
        any = 1;
    }
    if (!any) {
        rc |= bench(512, threads, reps);
        rc |= bench(2048, threads, reps);
        rc |= bench(4096, threads, reps);
    }
    return rc;
}
