/*
 * peakbench: the arithmetic peak of this CPU, measured, for the ratios of docs/BENCHMARKS.md.
 *
 *     build/tools/peakbench [--threads N] [--ms MS] [--json]
 *
 * Each kernel is a loop of 12 independent accumulator chains of one instruction, in registers
 * (no loads), so it runs at the issue rate of the vector units; every thread runs it for about
 * MS milliseconds (default 300) between two barriers, best of 3, and the rate is the work of
 * all threads over the wall time. Counted as:
 *   fp32_fma_avx2     vfmadd231ps ymm: 8 multiply-adds = 16 FLOP
 *   fp32_fma_avx512   vfmadd231ps zmm: 16 multiply-adds = 32 FLOP
 *   bf16_dot          vdpbf16ps zmm (AVX512_BF16): 32 bf16 products summed into 16 floats = 64 FLOP
 *   int8_vnni         vpdpbusd zmm (AVX512_VNNI): 64 u8 x s8 products into 16 int32 = 128 OP
 *   int8_avx2         vpmaddubsw + vpmaddwd + vpaddd ymm: 32 u8 x s8 products = 64 OP
 * Each rate is also given per CPU-second of the threads (`_per_cpu_s`): on a shared machine the
 * wall rate shows the neighbours' load, the CPU-second rate what a core does while it runs.
 * A kernel whose instructions this CPU lacks is left out (its key is absent from the JSON).
 * The fp32 figure quoted against a prefill is the larger of the two FMA rates.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHAINS 12
/* The 12 chains written out: at -O2 a loop over an array of vectors stays in memory. */
#define UNROLL12(S)                                                                               \
    do {                                                                                          \
        S(0); S(1); S(2); S(3); S(4); S(5); S(6); S(7); S(8); S(9); S(10); S(11);                 \
    } while (0)
#define MAX_THREADS 256

typedef double (*kernel_fn)(long iters); /* returns operations done */

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static volatile float sink_f;
static volatile int sink_i;

__attribute__((target("avx2,fma"))) static double k_fma256(long iters)
{
    __m256 acc[CHAINS];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);

    for (int c = 0; c < CHAINS; c++)
        acc[c] = _mm256_set1_ps((float)c);
    for (long i = 0; i < iters; i++)
#define STEP(c) acc[c] = _mm256_fmadd_ps(acc[c], a, b)
        UNROLL12(STEP);
#undef STEP
    for (int c = 1; c < CHAINS; c++)
        acc[0] = _mm256_add_ps(acc[0], acc[c]);
    sink_f = _mm256_cvtss_f32(acc[0]);
    return (double)iters * CHAINS * 16;
}

__attribute__((target("avx512f"))) static double k_fma512(long iters)
{
    __m512 acc[CHAINS];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);

    for (int c = 0; c < CHAINS; c++)
        acc[c] = _mm512_set1_ps((float)c);
    for (long i = 0; i < iters; i++)
#define STEP(c) acc[c] = _mm512_fmadd_ps(acc[c], a, b)
        UNROLL12(STEP);
#undef STEP
    for (int c = 1; c < CHAINS; c++)
        acc[0] = _mm512_add_ps(acc[0], acc[c]);
    sink_f = _mm512_reduce_add_ps(acc[0]);
    return (double)iters * CHAINS * 32;
}

__attribute__((target("avx512f,avx512bf16"))) static double k_bf16(long iters)
{
    __m512 acc[CHAINS];
    const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3A83); /* ~1e-3 */
    const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3A83);

    for (int c = 0; c < CHAINS; c++)
        acc[c] = _mm512_set1_ps((float)c);
    for (long i = 0; i < iters; i++)
#define STEP(c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b)
        UNROLL12(STEP);
#undef STEP
    for (int c = 1; c < CHAINS; c++)
        acc[0] = _mm512_add_ps(acc[0], acc[c]);
    sink_f = _mm512_reduce_add_ps(acc[0]);
    return (double)iters * CHAINS * 64;
}

__attribute__((target("avx512f,avx512vnni"))) static double k_vnni(long iters)
{
    __m512i acc[CHAINS];
    const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);

    for (int c = 0; c < CHAINS; c++)
        acc[c] = _mm512_set1_epi32(c);
    for (long i = 0; i < iters; i++)
#define STEP(c) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b)
        UNROLL12(STEP);
#undef STEP
    for (int c = 1; c < CHAINS; c++)
        acc[0] = _mm512_add_epi32(acc[0], acc[c]);
    sink_i = _mm512_reduce_add_epi32(acc[0]);
    return (double)iters * CHAINS * 128;
}

__attribute__((target("avx2"))) static double k_int8_avx2(long iters)
{
    __m256i acc[CHAINS];
    const __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2), ones = _mm256_set1_epi16(1);

    for (int c = 0; c < CHAINS; c++)
        acc[c] = _mm256_set1_epi32(c);
    for (long i = 0; i < iters; i++)
#define STEP(c)                                                                                   \
    acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones))
        UNROLL12(STEP);
#undef STEP
    for (int c = 1; c < CHAINS; c++)
        acc[0] = _mm256_add_epi32(acc[0], acc[c]);
    sink_i = _mm256_extract_epi32(acc[0], 0);
    return (double)iters * CHAINS * 64;
}

typedef struct job {
    kernel_fn fn;
    long iters;
    pthread_barrier_t *start, *stop;
    double ops;
    double cpu_s; /* this thread's CPU time for the run */
} job;

static double thread_cpu(void)
{
    struct timespec t;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *worker(void *p)
{
    job *j = p;

    double c0;

    pthread_barrier_wait(j->start);
    c0 = thread_cpu();
    j->ops = j->fn(j->iters);
    j->cpu_s = thread_cpu() - c0;
    pthread_barrier_wait(j->stop);
    return NULL;
}

/* Work per second of `threads` threads running fn(iters) at once; *per_cpu: per CPU-second
 * of those threads (what one core does while it runs them: the rate a shared machine does not
 * distort). */
static double run_once(kernel_fn fn, long iters, int threads, double *per_cpu)
{
    pthread_t tid[MAX_THREADS];
    job jobs[MAX_THREADS];
    pthread_barrier_t start, stop;
    double t0, t1, ops = 0, cpu = 0;

    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&stop, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){fn, iters, &start, &stop, 0, 0};
        if (pthread_create(&tid[i], NULL, worker, &jobs[i]) != 0) {
            fprintf(stderr, "peakbench: cannot start thread %d\n", i);
            exit(1);
        }
    }
    pthread_barrier_wait(&start);
    t0 = now();
    pthread_barrier_wait(&stop);
    t1 = now();
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        ops += jobs[i].ops;
        cpu += jobs[i].cpu_s;
    }
    *per_cpu = ops / cpu;
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&stop);
    return ops / (t1 - t0);
}

/* Best of 3 runs of about ms milliseconds each, in G operations per second (wall, and per
 * CPU-second in *per_cpu). */
static double measure(kernel_fn fn, int threads, int ms, double *per_cpu)
{
    long iters = 1000;
    double best = 0;

    *per_cpu = 0;

    /* Calibrate on one thread: grow until a run takes 20 ms, then scale to ms. */
    for (;;) {
        const double t0 = now();
        fn(iters);
        const double dt = now() - t0;

        if (dt > 0.02) {
            iters = (long)((double)iters * (ms / 1000.0) / dt) + 1;
            break;
        }
        iters *= 4;
    }
    for (int r = 0; r < 3; r++) {
        double pc;
        const double rate = run_once(fn, iters, threads, &pc);

        if (rate > best)
            best = rate;
        if (pc / 1e9 > *per_cpu)
            *per_cpu = pc / 1e9;
    }
    return best / 1e9;
}

static long parse_pos(const char *flag, const char *s, long hi)
{
    char *end;
    const long v = strtol(s, &end, 10);

    if (end == s || *end != '\0' || v < 1 || v > hi) {
        fprintf(stderr, "peakbench: %s: expected an integer in 1..%ld, got '%s'\n", flag, hi, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    struct {
        const char *key;
        const char *feature[2];
        kernel_fn fn;
    } ks[] = {
        {"fp32_fma_avx2_gflops", {"avx2", "fma"}, k_fma256},
        {"fp32_fma_avx512_gflops", {"avx512f", "avx512f"}, k_fma512},
        {"bf16_dot_gflops", {"avx512f", "avx512bf16"}, k_bf16},
        {"int8_vnni_gops", {"avx512f", "avx512vnni"}, k_vnni},
        {"int8_avx2_gops", {"avx2", "avx2"}, k_int8_avx2},
    };
    const size_t nk = sizeof ks / sizeof ks[0];
    double rate[sizeof ks / sizeof ks[0]], per_cpu[sizeof ks / sizeof ks[0]];
    int have[sizeof ks / sizeof ks[0]];
    int threads = 1, ms = 300, json = 0;
    double fp32 = 0, fp32_cpu = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = (int)parse_pos("--threads", argv[++i], MAX_THREADS);
        else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc)
            ms = (int)parse_pos("--ms", argv[++i], 100000);
        else {
            fprintf(stderr, "usage: peakbench [--threads N] [--ms MS] [--json]\n");
            return 2;
        }
    }
    __builtin_cpu_init();
    for (size_t k = 0; k < nk; k++) {
        /* __builtin_cpu_supports needs string literals: test the names we use. */
        int ok = 1;

        for (int f = 0; f < 2; f++) {
            const char *n = ks[k].feature[f];

            ok &= !!(strcmp(n, "avx2") == 0     ? __builtin_cpu_supports("avx2")
                  : strcmp(n, "fma") == 0    ? __builtin_cpu_supports("fma")
                  : strcmp(n, "avx512f") == 0 ? __builtin_cpu_supports("avx512f")
                  : strcmp(n, "avx512bf16") == 0 ? __builtin_cpu_supports("avx512bf16")
                                                 : __builtin_cpu_supports("avx512vnni"));
        }
        have[k] = ok;
        rate[k] = ok ? measure(ks[k].fn, threads, ms, &per_cpu[k]) : 0;
    }
    fp32 = rate[0] > rate[1] ? rate[0] : rate[1];
    fp32_cpu = per_cpu[0] > per_cpu[1] ? per_cpu[0] : per_cpu[1];
    if (json) {
        printf("{\"threads\":%d", threads);
        for (size_t k = 0; k < nk; k++)
            if (have[k])
                printf(",\"%s\":%.1f,\"%s_per_cpu_s\":%.1f", ks[k].key, rate[k], ks[k].key,
                       per_cpu[k]);
        printf(",\"fp32_fma_gflops\":%.1f,\"fp32_fma_gflops_per_cpu_s\":%.1f}\n", fp32,
               fp32_cpu);
    } else {
        printf("peak, %d thread%s (best of 3): wall, per CPU-second\n", threads,
               threads > 1 ? "s" : "");
        for (size_t k = 0; k < nk; k++)
            if (have[k])
                printf("  %-24s %8.1f %8.1f\n", ks[k].key, rate[k], per_cpu[k]);
            else
                printf("  %-24s %8s (not on this CPU)\n", ks[k].key, "-");
    }
    return 0;
}
