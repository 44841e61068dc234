/*
 * mmbench: time the matrix-product kernels (fastmm.h and the portable matmul.h path) at given
 * shapes with random weights, and print GFLOP/s (GOP/s for int8).
 *
 *     build/tools/mmbench [--threads N] [--m M] [--reps R] [SHAPE...]
 *
 * SHAPE is NxK (output x input features); default: the Gemma-2-2B shapes 2048x2304 (q),
 * 1024x2304 (k, v), 2304x2048 (o), 9216x2304 (gate, up), 2304x9216 (down). Each kernel runs
 * R times (default 3) after a warm-up; the best time is reported.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fastmm.h"
#include "matmul.h"
#include "pool.h"
#include "tensor.h"

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process (all threads): on a shared machine, GFLOP per CPU second
 * shows a kernel's efficiency when wall time shows mostly the neighbours' load. */
static double cpu_now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void bench_shape(int64_t n, int64_t k, size_t m, int reps, sg_pool *pool, int portable)
{
    uint16_t *wb = malloc((size_t)(n * k) * 2);
    float *x = malloc(m * (size_t)k * sizeof *x);
    float *y = malloc(m * (size_t)n * sizeof *y);
    sg_tensor t;
    const sg_precision precs[] = {SG_PREC_F32, SG_PREC_BF16, SG_PREC_INT8};

    if (wb == NULL || x == NULL || y == NULL) {
        fprintf(stderr, "mmbench: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n * k; i++)
        wb[i] = sg_f32_to_bf16(frand() * 0.05f);
    for (size_t i = 0; i < m * (size_t)k; i++)
        x[i] = frand();
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "w%" PRId64 "x%" PRId64, n, k);
    t.dtype = SG_DT_BF16;
    t.ndim = 2;
    t.shape[0] = n;
    t.shape[1] = k;
    t.data = wb;
    t.nbytes = (size_t)(n * k) * 2;
    for (int p = 0; p < 3; p++) {
        char err[256];
        sg_fastmat *f;
        double best = 1e30;
        double best_cpu = 1e30;
        double t0;
        double t1;
        const double flop = 2.0 * (double)m * (double)n * (double)k;

        t0 = now();
        if (sg_fastmat_new(&f, &t, precs[p], err, sizeof err) != SG_OK) {
            printf("%-5s %6" PRId64 " x %6" PRId64 "  m %4zu  -- %s\n",
                   sg_precision_name(precs[p]), n, k, m, err);
            continue;
        }
        t1 = now() - t0;
        for (int r = 0; r <= reps; r++) {
            const double s = now();
            const double c = cpu_now();
            double e;
            double ec;

            sg_fastmat_mul(f, x, m, y, pool);
            e = now() - s;
            ec = cpu_now() - c;
            if (r > 0 && e < best)
                best = e;
            if (r > 0 && ec < best_cpu)
                best_cpu = ec;
        }
        printf("%-5s %6" PRId64 " x %6" PRId64 "  m %4zu  %-10s %7.1f GFLOP/s  %8.2f ms"
               "  %6.1f GFLOP/cpu-s  (prepare %.0f ms)\n",
               sg_precision_name(precs[p]), n, k, m, sg_fastmat_kernel(f), flop / best * 1e-9,
               best * 1e3, flop / best_cpu * 1e-9, t1 * 1e3);
        sg_fastmat_free(f);
    }
    if (portable) {
        char err[256];
        sg_mat *mat;
        double best = 1e30;

        /* The portable kernel, with the fast path off: ask for a dtype the fast path leaves
         * alone is not possible here, so time it through sg_mat only when it is portable. */
        if (sg_mat_new(&mat, &t, SG_PREC_F32, err, sizeof err) == SG_OK) {
            for (int r = 0; r <= reps; r++) {
                const double s = now();
                double e;

                sg_mat_mul(mat, x, m, y, pool);
                e = now() - s;
                if (r > 0 && e < best)
                    best = e;
            }
            printf("%-5s %6" PRId64 " x %6" PRId64 "  m %4zu  %-10s %7.1f GFLOP/s  %8.2f ms\n",
                   "f32", n, k, m, "sg_mat", 2.0 * (double)m * (double)n * (double)k / best * 1e-9,
                   best * 1e3);
            sg_mat_free(mat);
        }
    }
    free(wb);
    free(x);
    free(y);
}

int main(int argc, char **argv)
{
    int threads = 2;
    size_t m = 512;
    int reps = 3;
    int portable = 0;
    int nshapes = 0;
    int64_t shapes[32][2];
    sg_pool *pool = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--m") == 0 && i + 1 < argc)
            m = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--portable") == 0)
            portable = 1;
        else if (nshapes < 32 &&
                 sscanf(argv[i], "%" SCNd64 "x%" SCNd64, &shapes[nshapes][0],
                        &shapes[nshapes][1]) == 2 &&
                 shapes[nshapes][0] > 0 && shapes[nshapes][1] > 0)
            nshapes++;
        else {
            fprintf(stderr, "usage: mmbench [--threads N] [--m M] [--reps R] [--portable] "
                            "[NxK...]\n");
            return 2;
        }
    }
    if (nshapes == 0) {
        const int64_t def[][2] = {{2048, 2304}, {1024, 2304}, {2304, 2048}, {9216, 2304},
                                  {2304, 9216}};
        memcpy(shapes, def, sizeof def);
        nshapes = 5;
    }
    if (m == 0 || reps < 1 || sg_pool_new(&pool, threads) != SG_OK) {
        fprintf(stderr, "mmbench: bad --m, --reps or --threads\n");
        return 2;
    }
    printf("mmbench: %d threads, m %zu, best of %d\n", sg_pool_n_threads(pool), m, reps);
    for (int s = 0; s < nshapes; s++)
        bench_shape(shapes[s][0], shapes[s][1], m, reps, pool, portable);
    sg_pool_free(pool);
    return 0;
}
