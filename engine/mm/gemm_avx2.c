/*
 * gemm_avx2.c: a blocked f32 GEMM for AVX2+FMA CPUs, y[m, N] = x[m, K] W^T, with W repacked at
 * load into panels of 16 output columns, in f32 or in bf16 (see fastmm.h).
 *
 * Layout: panel p holds columns 16p..16p+15 of W^T as K rows of 16 values, contiguous
 * ([N/16][K][16], the last panel zero-padded). A bf16 row is 32 bytes; it is stored in the
 * order (0-3, 8-11, 4-7, 12-15) so that one unpack-with-zero per 128-bit lane (vpunpcklwd /
 * vpunpckhwd) widens it to columns 0-7 and 8-15 as f32.
 *
 * Blocking (Zen 3 / Haswell: 32 KB L1D, 512 KB L2 per core):
 *   a task     = NP panels (64 columns) x all m rows; tasks go to the pool's threads;
 *   a K block  = KC (256) k values: each panel's block is widened to f32 into a 16 KB stack
 *                buffer (bf16) or read in place (f32), then used by every tile of x;
 *   a tile     = MR (6) rows x 16 columns: 12 ymm accumulators, one broadcast of x per row
 *                and k, two panel loads per k: 12 FMAs per 8 loads, the classic 6x16 shape.
 * A panel block stays in L1 while the 6-row slices of x stream through it from L2.
 *
 * y[i, j] = sum_k x[i, k] * w[j, k] is one chain of FMAs in k order (a K block starts from
 * the partial sum stored in y), so the result of a row does not depend on m, on which tile it
 * falls in, or on the number of threads.
 */
#include "fastmm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "tensor.h"

#define MR 6   /* rows of x per tile */
#define NR 16  /* columns per panel */
#define KC 256 /* k values per block */
#define NP 4   /* panels per task */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SG_HAVE_AVX2_BUILD 1
#include <immintrin.h>
#define SG_AVX2 __attribute__((target("avx2,fma")))
#define SG_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define SG_HAVE_AVX2_BUILD 0
#endif

int sg_avx2_available(void)
{
    return SG_HAVE_AVX2_BUILD && sg_cpu_has(SG_CPU_AVX2_FMA);
}

void sg_avx2_layout(char *buf, size_t cap)
{
    snprintf(buf, cap, "cpu avx2+fma %d\nlayout avx2-f32 %d avx2-bf16 %d", sg_avx2_available(),
             SG_AVX2_LAYOUT_VERSION, SG_AVX2_LAYOUT_VERSION);
}

/* Position in a packed bf16 row of column c (0..15): see the layout above. */
static int bf16_pos(int c)
{
    static const int pos[NR] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};

    return pos[c];
}

int sg_avx2_pack(const sg_tensor *w, int to_bf16, void **data, size_t *bytes, char *err,
                 size_t errlen)
{
    const int64_t n = w->shape[0];
    const int64_t k = w->shape[1];
    const int64_t np = (n + NR - 1) / NR;
    const size_t esize = to_bf16 ? 2 : 4;
    size_t row_bytes;
    size_t total;
    float *rows = NULL;
    uint8_t *out = NULL;

    *data = NULL;
    *bytes = 0;
    if (sg_dtype_bytes(w->dtype, k, &row_bytes) != SG_OK) {
        snprintf(err, errlen, "%s: rows of %lld elements are not whole %s blocks", w->name,
                 (long long)k, sg_dtype_name(w->dtype));
        return SG_ESHAPE;
    }
    total = (size_t)np * (size_t)k * NR * esize;
    /* Round up to the alignment, as aligned_alloc wants. */
    out = aligned_alloc(64, (total + 63) / 64 * 64);
    rows = malloc((size_t)NR * (size_t)k * sizeof *rows);
    if (out == NULL || rows == NULL) {
        snprintf(err, errlen, "%s: out of memory repacking %zu bytes", w->name, total);
        free(out);
        free(rows);
        return SG_ENOMEM;
    }
    for (int64_t p = 0; p < np; p++) {
        const int64_t nc = n - p * NR < NR ? n - p * NR : NR;

        if (to_bf16 && w->dtype == SG_DT_BF16 && (uintptr_t)w->data % 2 == 0) {
            /* bf16 to bf16: a transposing copy, no conversion (most of a BF16 model's load). */
            uint16_t *dst = (uint16_t *)(void *)out + (size_t)p * (size_t)k * NR;
            const uint16_t *src[NR];

            for (int c = 0; c < NR; c++)
                src[c] = c < nc ? (const uint16_t *)((const uint8_t *)w->data +
                                                     (size_t)(p * NR + c) * row_bytes)
                                : NULL;
            for (int64_t kk = 0; kk < k; kk++)
                for (int c = 0; c < NR; c++)
                    dst[kk * NR + bf16_pos(c)] = src[c] != NULL ? src[c][kk] : 0;
            continue;
        }
        for (int64_t c = 0; c < NR; c++) {
            if (c < nc)
                sg_dequant_row(w->dtype, (const uint8_t *)w->data + (size_t)(p * NR + c) * row_bytes,
                               rows + c * k, k);
            else
                memset(rows + c * k, 0, (size_t)k * sizeof *rows);
        }
        if (to_bf16) {
            uint16_t *dst = (uint16_t *)(void *)out + (size_t)p * (size_t)k * NR;

            for (int64_t kk = 0; kk < k; kk++)
                for (int c = 0; c < NR; c++)
                    dst[kk * NR + bf16_pos(c)] = sg_f32_to_bf16(rows[c * k + kk]);
        } else {
            float *dst = (float *)(void *)out + (size_t)p * (size_t)k * NR;

            for (int64_t kk = 0; kk < k; kk++)
                for (int c = 0; c < NR; c++)
                    dst[kk * NR + c] = rows[c * k + kk];
        }
    }
    free(rows);
    *data = out;
    *bytes = total;
    return SG_OK;
}

#if SG_HAVE_AVX2_BUILD

/*
 * One tile: y[r, 0..15] (+)= sum_{k < kc} x[r, k] * b[k, 0..15] for r < mr, where b is a block
 * of one f32 panel. `load` 0 starts from zero (the first K block), 1 from y.
 * Inlined with a constant mr so that the accumulators live in registers.
 */
static SG_ALWAYS_INLINE SG_AVX2 void tile(int mr, size_t kc, const float *x, size_t ldx,
                                          const float *b, float *y, size_t ldy, int load)
{
    __m256 c0[MR];
    __m256 c1[MR];

    /* Fully unrolled (the accumulators must be registers, not an array in memory). */
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
        c0[r] = load ? _mm256_loadu_ps(y + r * ldy) : _mm256_setzero_ps();
        c1[r] = load ? _mm256_loadu_ps(y + r * ldy + 8) : _mm256_setzero_ps();
    }
    for (size_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(b + k * NR);
        const __m256 b1 = _mm256_load_ps(b + k * NR + 8);

#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            const __m256 a = _mm256_broadcast_ss(x + r * ldx + k);

            c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
        _mm256_storeu_ps(y + r * ldy, c0[r]);
        _mm256_storeu_ps(y + r * ldy + 8, c1[r]);
    }
}

static SG_AVX2 void tile_any(int mr, size_t kc, const float *x, size_t ldx, const float *b,
                             float *y, size_t ldy, int load)
{
    switch (mr) {
    case 6:
        tile(6, kc, x, ldx, b, y, ldy, load);
        break;
    case 5:
        tile(5, kc, x, ldx, b, y, ldy, load);
        break;
    case 4:
        tile(4, kc, x, ldx, b, y, ldy, load);
        break;
    case 3:
        tile(3, kc, x, ldx, b, y, ldy, load);
        break;
    case 2:
        tile(2, kc, x, ldx, b, y, ldy, load);
        break;
    default:
        tile(1, kc, x, ldx, b, y, ldy, load);
        break;
    }
}

/* Widen kc rows of a bf16 panel to f32 (columns in natural order). */
static SG_AVX2 void widen(const uint16_t *src, size_t kc, float *dst)
{
    const __m256i zero = _mm256_setzero_si256();

    for (size_t k = 0; k < kc; k++) {
        const __m256i v = _mm256_load_si256((const __m256i *)(const void *)(src + k * NR));

        _mm256_store_si256((__m256i *)(void *)(dst + k * NR), _mm256_unpacklo_epi16(zero, v));
        _mm256_store_si256((__m256i *)(void *)(dst + k * NR + 8), _mm256_unpackhi_epi16(zero, v));
    }
}

struct avx2_job {
    const void *panels;
    int bf16;
    int64_t n;
    int64_t k;
    const float *x;
    size_t m;
    float *y;
};

static SG_AVX2 void avx2_task(void *arg, size_t task, int thread)
{
    const struct avx2_job *j = arg;
    const size_t k = (size_t)j->k;
    const size_t n = (size_t)j->n;
    const size_t np_all = (n + NR - 1) / NR;
    const size_t p0 = task * NP;
    const size_t np = np_all - p0 < NP ? np_all - p0 : NP;
    _Alignas(64) float buf[KC * NR];
    _Alignas(64) float edge[MR * NR];

    (void)thread;
    for (size_t k0 = 0; k0 < k; k0 += KC) {
        const size_t kc = k - k0 < KC ? k - k0 : KC;

        for (size_t p = 0; p < np; p++) {
            const size_t c0 = (p0 + p) * NR;
            const size_t nc = n - c0 < NR ? n - c0 : NR;
            const float *b;

            /* One panel block at a time (16 KB): it stays in L1 for all the tiles of x. */
            if (j->bf16) {
                widen((const uint16_t *)j->panels + ((p0 + p) * k + k0) * NR, kc, buf);
                b = buf;
            } else {
                b = (const float *)j->panels + ((p0 + p) * k + k0) * NR;
            }
            for (size_t i0 = 0; i0 < j->m; i0 += MR) {
                const int mr = j->m - i0 < MR ? (int)(j->m - i0) : MR;
                const float *xi = j->x + i0 * k + k0;
                float *yi = j->y + i0 * n + c0;

                if (nc == NR) {
                    tile_any(mr, kc, xi, k, b, yi, n, k0 > 0);
                    continue;
                }
                /* A partial panel: through a 16-wide buffer, so y's other columns are safe. */
                for (int r = 0; r < mr; r++)
                    for (size_t c = 0; c < NR; c++)
                        edge[r * NR + c] = c < nc && k0 > 0 ? yi[r * n + c] : 0.0f;
                tile_any(mr, kc, xi, k, b, edge, NR, 1);
                for (int r = 0; r < mr; r++)
                    for (size_t c = 0; c < nc; c++)
                        yi[r * n + c] = edge[r * NR + c];
            }
        }
    }
}

void sg_avx2_mul(const void *panels, int bf16, int64_t n, int64_t k, const float *x, size_t m,
                 float *y, sg_pool *pool)
{
    struct avx2_job j = {panels, bf16, n, k, x, m, y};
    const size_t np = (size_t)(n + NR - 1) / NR;

    if (m == 0 || n == 0)
        return;
    sg_pool_run(pool, avx2_task, &j, (np + NP - 1) / NP);
}

/* Scalar FMA chains in k order: fmaf rounds once, as vfmadd231ps does per lane, and a column
 * of a tile starts from 0 and continues from the stored partial sum, as here. */
SG_AVX2 void sg_avx2_mul_rows(const void *panels, int bf16, int64_t n, int64_t k,
                              const int32_t *rows, size_t n_rows, const float *x, size_t m,
                              float *y)
{
    (void)n;
    for (size_t c = 0; c < n_rows; c++) {
        const size_t p = (size_t)rows[c] / NR;
        const int col = rows[c] % NR;

        for (size_t i = 0; i < m; i++) {
            const float *xi = x + i * (size_t)k;
            float acc = 0.0f;

            if (bf16) {
                const uint16_t *w = (const uint16_t *)panels + p * (size_t)k * NR + bf16_pos(col);

                for (int64_t l = 0; l < k; l++)
                    acc = __builtin_fmaf(xi[l], sg_bf16_to_f32(w[l * NR]), acc);
            } else {
                const float *w = (const float *)panels + p * (size_t)k * NR + col;

                for (int64_t l = 0; l < k; l++)
                    acc = __builtin_fmaf(xi[l], w[l * NR], acc);
            }
            y[i * n_rows + c] = acc;
        }
    }
}

#else /* !SG_HAVE_AVX2_BUILD: sg_avx2_available() is 0, so sg_fastmat_new never packs */

void sg_avx2_mul(const void *panels, int bf16, int64_t n, int64_t k, const float *x, size_t m,
                 float *y, sg_pool *pool)
{
    (void)panels;
    (void)bf16;
    (void)n;
    (void)k;
    (void)x;
    (void)m;
    (void)y;
    (void)pool;
}

void sg_avx2_mul_rows(const void *panels, int bf16, int64_t n, int64_t k, const int32_t *rows,
                      size_t n_rows, const float *x, size_t m, float *y)
{
    (void)panels;
    (void)bf16;
    (void)n;
    (void)k;
    (void)rows;
    (void)n_rows;
    (void)x;
    (void)m;
    (void)y;
}

#endif
