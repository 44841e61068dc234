/*
 * matmul.c: the seam of the matrix products (see matmul.h): a fast kernel when one runs the
 * weight, else the portable, exact f32 product y = x W^T; and the test-only fault injection.
 *
 * Work is split over the pool by blocks of TILE_N weight rows (output columns). Within a task,
 * weight rows are converted to f32 TILE_K elements at a time into a stack tile (F32 weights are
 * read in place) and dotted with blocks of TILE_M rows of x, so a converted tile is reused by up
 * to TILE_M tokens while it is hot in cache. Each output is summed in the same order whatever
 * the thread count and whatever m, so results are bit-identical between a batch and its rows
 * evaluated one at a time.
 */
#include "matmul.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastmm.h"

#define TILE_N 16  /* weight rows per task */
#define TILE_K 512 /* elements of a row converted at a time (a multiple of every block size) */
#define TILE_M 64  /* rows of x per pass over a converted tile */

struct sg_mat {
    sg_tensor w;        /* the view: [N, K] */
    int64_t n;          /* rows (output features) */
    int64_t k;          /* columns (input features) */
    size_t row_bytes;   /* bytes of one row of W */
    int64_t block;      /* elements per dtype block */
    size_t block_bytes; /* bytes per dtype block */
    sg_precision prec;
    int direct;         /* F32 rows, 4-byte aligned: read in place, no conversion */
    sg_fastmat *fast;   /* a fast kernel's repacked weight (fastmm.h), or NULL: portable */
};

int sg_mat_new(sg_mat **out, const sg_tensor *w, sg_precision prec, char *err, size_t errlen)
{
    return sg_mat_new_cached(out, w, prec, NULL, err, errlen);
}

int sg_mat_new_cached(sg_mat **out, const sg_tensor *w, sg_precision prec,
                      struct sg_packcache *pc, char *err, size_t errlen)
{
    sg_mat *m;
    size_t row_bytes;

    *out = NULL;
    if (prec < 0 || prec >= SG_PREC_COUNT) {
        snprintf(err, errlen, "%s: unknown precision %d", w->name, (int)prec);
        return SG_EINVAL;
    }
    if (w->ndim != 2 || w->shape[0] <= 0 || w->shape[1] <= 0) {
        snprintf(err, errlen, "%s: expected a 2-D weight [out, in], found %d dimensions",
                 w->name, w->ndim);
        return SG_ESHAPE;
    }
    if (sg_dtype_block(w->dtype) == 0) {
        snprintf(err, errlen, "%s: unsupported dtype %d", w->name, (int)w->dtype);
        return SG_EUNSUPPORTED;
    }
    if (sg_dtype_bytes(w->dtype, w->shape[1], &row_bytes) != SG_OK ||
        TILE_K % sg_dtype_block(w->dtype) != 0) {
        snprintf(err, errlen, "%s: rows of %lld elements are not whole %s blocks", w->name,
                 (long long)w->shape[1], sg_dtype_name(w->dtype));
        return SG_ESHAPE;
    }
    if (w->nbytes / row_bytes < (size_t)w->shape[0]) {
        snprintf(err, errlen, "%s: %zu bytes of data, expected %lld rows of %zu bytes", w->name,
                 w->nbytes, (long long)w->shape[0], row_bytes);
        return SG_ESHAPE;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "%s: out of memory", w->name);
        return SG_ENOMEM;
    }
    m->w = *w;
    m->n = w->shape[0];
    m->k = w->shape[1];
    m->row_bytes = row_bytes;
    m->block = sg_dtype_block(w->dtype);
    m->block_bytes = sg_dtype_block_bytes(w->dtype);
    /* The portable path computes every precision in f32; faster kernels honour `prec`. */
    m->prec = prec;
    /* safetensors data may be unaligned; such F32 rows are copied like any other dtype. */
    m->direct = w->dtype == SG_DT_F32 && (uintptr_t)w->data % sizeof(float) == 0;
    /* A fast kernel when this CPU, dtype and precision have one (fastmm.c says which); else
     * the portable path below. */
    {
        char ferr[256];
        int rc = sg_fastmat_new_cached(&m->fast, w, prec, pc, ferr, sizeof ferr);

        if (rc == SG_ENOMEM) {
            snprintf(err, errlen, "%s", ferr);
            free(m);
            return rc;
        }
        if (rc != SG_OK && rc != SG_ESHAPE && prec != SG_PREC_F32) {
            /* No kernel for this precision here (no instructions, or no JIT allowed): the
             * fastest f32 kernel rather than the portable one. */
            sg_log(SG_LOG_DEBUG, "%s (computing in f32 instead)", ferr);
            m->prec = SG_PREC_F32;
            rc = sg_fastmat_new_cached(&m->fast, w, SG_PREC_F32, pc, ferr, sizeof ferr);
            if (rc == SG_ENOMEM) {
                snprintf(err, errlen, "%s", ferr);
                free(m);
                return rc;
            }
        }
    }
    *out = m;
    return SG_OK;
}

void sg_mat_free(sg_mat *m)
{
    if (m == NULL)
        return;
    sg_fastmat_free(m->fast);
    free(m);
}

int64_t sg_mat_rows(const sg_mat *m)
{
    return m->n;
}

int64_t sg_mat_cols(const sg_mat *m)
{
    return m->k;
}

const char *sg_mat_kernel(const sg_mat *w)
{
    return w->fast ? sg_fastmat_kernel(w->fast) : "portable-f32";
}

int sg_mat_repacked(const sg_mat *w)
{
    return w->fast != NULL;
}

int sg_mat_mapped(const sg_mat *w)
{
    return w->fast != NULL && sg_fastmat_mapped(w->fast);
}

size_t sg_mat_scratch(const sg_mat *w, size_t m)
{
    return w->fast != NULL ? sg_fastmat_scratch(w->fast, m) : 0;
}

sg_precision sg_mat_precision(const sg_mat *m)
{
    return m->prec;
}

/*
 * The micro-kernel works on 8-float vectors (GCC/Clang vector extension; 2 SSE or 1 AVX register)
 * and computes a block of up to MR rows of x against NR rows of W. Every output is accumulated
 * by the same sequence of vector operations whatever the block shape, then reduced in a fixed
 * order, so a row's result does not depend on how many rows are evaluated with it.
 */
typedef float v8 __attribute__((vector_size(32)));
#define VL 8
#define MR 4
#define NR 2

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(SG_FUZZING)
#define SG_MULTIVERSION __attribute__((target_clones("arch=haswell", "default")))
#else
#define SG_MULTIVERSION
#endif
/* The kernel is inlined into each clone of mul_task so that it is compiled for that ISA. */
#if defined(__GNUC__)
#define SG_INLINE static inline __attribute__((always_inline))
#else
#define SG_INLINE static inline
#endif

/* An unaligned load (a macro: passing vectors by value would change the psABI). */
#define LOAD8(dst, p) memcpy(&(dst), (p), sizeof(v8))

/* Fixed-order horizontal sum of one accumulator plus the scalar tail. */
SG_INLINE float reduce8(const v8 *a, float tail)
{
    float l[VL];

    memcpy(l, a, sizeof l);
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7])) + tail;
}

/* y[i * ldy + c] += x_i . w_c over kl elements, for i < mr (<= MR), c < nr (<= NR). */
SG_INLINE void kernel(const float *x, size_t ldx, size_t mr, const float *const *wr,
                          size_t nr, size_t kl, float *y, size_t ldy)
{
    v8 acc[MR][NR];
    float tail[MR][NR];
    const size_t kv = kl / VL * VL;

    memset(acc, 0, sizeof acc);
    memset(tail, 0, sizeof tail);
    if (mr == MR && nr == NR) {
        /* The full block, with constant bounds so the accumulators stay in registers. */
        for (size_t k = 0; k < kv; k += VL) {
            v8 w0;
            v8 w1;
            LOAD8(w0, wr[0] + k);
            LOAD8(w1, wr[1] + k);
            for (size_t i = 0; i < MR; i++) {
                v8 xv;
                LOAD8(xv, x + i * ldx + k);
                acc[i][0] += xv * w0;
                acc[i][1] += xv * w1;
            }
        }
    } else {
        for (size_t k = 0; k < kv; k += VL)
            for (size_t i = 0; i < mr; i++) {
                v8 xv;
                LOAD8(xv, x + i * ldx + k);
                for (size_t c = 0; c < nr; c++) {
                    v8 wv;
                    LOAD8(wv, wr[c] + k);
                    acc[i][c] += xv * wv;
                }
            }
    }
    for (size_t k = kv; k < kl; k++)
        for (size_t i = 0; i < mr; i++)
            for (size_t c = 0; c < nr; c++)
                tail[i][c] += x[i * ldx + k] * wr[c][k];
    for (size_t i = 0; i < mr; i++)
        for (size_t c = 0; c < nr; c++)
            y[i * ldy + c] += reduce8(&acc[i][c], tail[i][c]);
}

struct mul_job {
    const sg_mat *w;
    const int32_t *rows; /* NULL: all rows */
    size_t n_cols;       /* columns of y: N, or n_rows */
    const float *x;
    size_t m;
    float *y;
};

SG_MULTIVERSION
static void mul_task(void *arg, size_t task, int thread)
{
    const struct mul_job *j = arg;
    const sg_mat *w = j->w;
    const size_t k = (size_t)w->k;
    const size_t c0 = task * TILE_N;
    const size_t nc = j->n_cols - c0 < TILE_N ? j->n_cols - c0 : TILE_N;
    float tile[TILE_N * TILE_K];
    const uint8_t *src[TILE_N];

    (void)thread;
    for (size_t c = 0; c < nc; c++) {
        size_t r = j->rows ? (size_t)j->rows[c0 + c] : c0 + c;
        src[c] = (const uint8_t *)w->w.data + r * w->row_bytes;
    }
    for (size_t i = 0; i < j->m; i++)
        for (size_t c = 0; c < nc; c++)
            j->y[i * j->n_cols + c0 + c] = 0.0f;

    for (size_t i0 = 0; i0 < j->m; i0 += TILE_M) {
        size_t i1 = i0 + TILE_M < j->m ? i0 + TILE_M : j->m;
        for (size_t k0 = 0; k0 < k; k0 += TILE_K) {
            size_t kl = k - k0 < TILE_K ? k - k0 : TILE_K;
            const float *wr[TILE_N];
            for (size_t c = 0; c < nc; c++) {
                if (w->direct) {
                    wr[c] = (const float *)(const void *)src[c] + k0;
                } else {
                    size_t off = (k0 / (size_t)w->block) * w->block_bytes;
                    sg_dequant_row(w->w.dtype, src[c] + off, tile + c * TILE_K, (int64_t)kl);
                    wr[c] = tile + c * TILE_K;
                }
            }
            for (size_t i = i0; i < i1; i += MR) {
                size_t mr = i1 - i < MR ? i1 - i : MR;
                for (size_t c = 0; c < nc; c += NR) {
                    size_t nr = nc - c < NR ? nc - c : NR;
                    kernel(j->x + i * k + k0, k, mr, wr + c, nr, kl,
                           j->y + i * j->n_cols + c0 + c, j->n_cols);
                }
            }
        }
    }
}

/*
 * Fault injection (matmul.h): products numbered from 0 in this process; from number
 * `fault_first` on (-1: never) each one fails as a kernel would. -2: not read from the
 * environment yet.
 */
static atomic_long fault_first = -2;
static atomic_long fault_count;

void sg_mat_fault_inject(long first)
{
    atomic_store(&fault_count, 0);
    atomic_store(&fault_first, first < 0 ? -1 : first);
}

/* 1 if this product is to fail (SG_FAULT_MATMUL=N in the environment, or sg_mat_fault_inject). */
static int fault_now(void)
{
    long first = atomic_load_explicit(&fault_first, memory_order_relaxed);

    if (first == -2) {
        const char *e = getenv("SG_FAULT_MATMUL");
        char *end = NULL;
        long v = e != NULL && *e != '\0' ? strtol(e, &end, 10) : -1;

        if (e != NULL && *e != '\0' && (*end != '\0' || v < 0)) {
            sg_log(SG_LOG_WARN, "SG_FAULT_MATMUL='%s' is not a product number >= 0: ignored", e);
            v = -1;
        }
        first = v;
        atomic_store(&fault_first, first);
    }
    if (first < 0)
        return 0;
    if (atomic_fetch_add_explicit(&fault_count, 1, memory_order_relaxed) < first)
        return 0;
    sg_log(SG_LOG_ERROR, "matrix product failed (fault injected from product %ld on)", first);
    return 1;
}

int sg_mat_mul(const sg_mat *w, const float *x, size_t m, float *y, sg_pool *pool)
{
    struct mul_job j = {w, NULL, (size_t)w->n, x, m, y};

    if (m == 0)
        return SG_OK;
    if (fault_now())
        return SG_ECOMPUTE;
    if (w->fast != NULL)
        return sg_fastmat_mul(w->fast, x, m, y, pool);
    sg_pool_run(pool, mul_task, &j, (j.n_cols + TILE_N - 1) / TILE_N);
    return SG_OK;
}

int sg_mat_mul_rows(const sg_mat *w, const int32_t *rows, size_t n_rows, const float *x,
                    size_t m, float *y, sg_pool *pool)
{
    struct mul_job j = {w, rows, n_rows, x, m, y};

    if (m == 0 || n_rows == 0)
        return SG_OK;
    if (fault_now())
        return SG_ECOMPUTE;
    /* The same values as sg_mat_mul's columns: the fast kernel's own arithmetic if it has a
     * row-subset form, else (int8) the exact portable product. */
    if (w->fast != NULL && sg_fastmat_mul_rows(w->fast, rows, n_rows, x, m, y, pool) == SG_OK)
        return SG_OK;
    sg_pool_run(pool, mul_task, &j, (n_rows + TILE_N - 1) / TILE_N);
    return SG_OK;
}
