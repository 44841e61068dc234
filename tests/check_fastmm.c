/*
 * check_fastmm.c: the fast matrix-product kernels (fastmm.h) against a float64 reference:
 * avx2-f32/avx2-bf16 (exact f32 products: tight bounds, bit-identical whatever the batch size
 * and thread count), BF16 precision (weights rounded to bf16, then exact), dnnl-u8s8 (int8:
 * bounded by the quantization steps), refusals, and sg_mat's dispatch to them.
 * Shapes are odd on purpose: N not a multiple of 16, K not a multiple of 256, m across the
 * 6-row tiles.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "fastmm.h"
#include "matmul.h"
#include "pool.h"
#include "tensor.h"

Suite *fastmm_suite(void);

typedef struct wmat {
    sg_tensor t;
    float *f;     /* [n, k] f32 values (what the tensor holds, widened) */
    void *data;   /* the tensor's bytes */
} wmat;

static uint64_t rs = 0x9E3779B97F4A7C15ull;

static double urand(void) /* uniform in [-1, 1) */
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) / 4503599627370496.0 - 1.0;
}

static wmat make_w(int64_t n, int64_t k, sg_dtype dt, const char *name)
{
    wmat w;

    memset(&w, 0, sizeof w);
    w.f = malloc((size_t)(n * k) * sizeof *w.f);
    w.data = malloc((size_t)(n * k) * 4);
    ck_assert_ptr_nonnull(w.f);
    ck_assert_ptr_nonnull(w.data);
    for (int64_t i = 0; i < n * k; i++) {
        float v = (float)(urand() * 0.1);

        if (dt == SG_DT_BF16) {
            uint16_t h = sg_f32_to_bf16(v);

            ((uint16_t *)w.data)[i] = h;
            v = sg_bf16_to_f32(h);
        } else if (dt == SG_DT_F16) {
            uint16_t h = sg_f32_to_f16(v);

            ((uint16_t *)w.data)[i] = h;
            v = sg_f16_to_f32(h);
        } else {
            ((float *)w.data)[i] = v;
        }
        w.f[i] = v;
    }
    snprintf(w.t.name, sizeof w.t.name, "%s", name);
    w.t.dtype = dt;
    w.t.ndim = 2;
    w.t.shape[0] = n;
    w.t.shape[1] = k;
    w.t.data = w.data;
    w.t.nbytes = (size_t)(n * k) * (dt == SG_DT_F32 ? 4 : 2);
    return w;
}

static void free_w(wmat *w)
{
    free(w->f);
    free(w->data);
}

static float *make_x(size_t m, int64_t k)
{
    float *x = malloc(m * (size_t)k * sizeof *x);

    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < m * (size_t)k; i++)
        x[i] = (float)(urand() * 2.0);
    return x;
}

/* ref[i, j] = sum_k x[i, k] * wf[j, k] in double; also sum_k |x w| into mag (the error scale). */
static void reference(const float *x, size_t m, const float *wf, int64_t n, int64_t k,
                      double *ref, double *mag)
{
    for (size_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0, a = 0;

            for (int64_t l = 0; l < k; l++) {
                s += (double)x[i * (size_t)k + (size_t)l] * wf[j * k + l];
                a += fabs((double)x[i * (size_t)k + (size_t)l] * wf[j * k + l]);
            }
            ref[i * (size_t)n + (size_t)j] = s;
            mag[i * (size_t)n + (size_t)j] = a;
        }
}

/* max over outputs of |y - ref| / (mag + tiny): the error relative to the sum of |terms|. */
static double rel_err(const float *y, const double *ref, const double *mag, size_t cnt)
{
    double mx = 0;

    for (size_t i = 0; i < cnt; i++) {
        double e = fabs((double)y[i] - ref[i]) / (mag[i] + 1e-30);

        if (!(e <= mx))
            mx = e;
    }
    return mx;
}

static const int64_t shapes[][2] = {{37, 300}, {16, 256}, {64, 513}, {5, 7}, {100, 1030}};
static const size_t ms[] = {1, 5, 6, 7, 13};

static void check_exact_kernel(sg_dtype dt, sg_precision prec, const char *kernel)
{
    sg_pool *pool;

    if (!sg_avx2_available())
        return; /* the portable path is tested by check_ops */
    ck_assert_int_eq(sg_pool_new(&pool, 3), SG_OK);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t n = shapes[s][0], k = shapes[s][1];
        wmat w = make_w(n, k, dt, "model.layers.0.mlp.up_proj.weight");
        sg_fastmat *f;
        char err[256];

        ck_assert_int_eq(sg_fastmat_new(&f, &w.t, prec, err, sizeof err), SG_OK);
        ck_assert_str_eq(sg_fastmat_kernel(f), kernel);
        ck_assert_uint_ge(sg_fastmat_bytes(f), (size_t)(n * k) * (dt == SG_DT_F32 ? 4 : 2));
        for (size_t t = 0; t < sizeof ms / sizeof ms[0]; t++) {
            const size_t m = ms[t];
            float *x = make_x(m, k);
            float *y = malloc(m * (size_t)n * sizeof *y);
            float *y1 = malloc(m * (size_t)n * sizeof *y1);
            double *ref = malloc(m * (size_t)n * sizeof *ref);
            double *mag = malloc(m * (size_t)n * sizeof *mag);

            reference(x, m, w.f, n, k, ref, mag);
            sg_fastmat_mul(f, x, m, y, pool);
            /* f32 products of exact weights: a few ulps of the sum of |terms| per k. */
            ck_assert_msg(rel_err(y, ref, mag, m * (size_t)n) < 1e-6 * sqrt((double)k) + 1e-6,
                          "%s %lldx%lld m %zu: error %g", kernel, (long long)n, (long long)k, m,
                          rel_err(y, ref, mag, m * (size_t)n));
            /* One row at a time and on one thread: the same bits. */
            for (size_t i = 0; i < m; i++)
                sg_fastmat_mul(f, x + i * (size_t)k, 1, y1 + i * (size_t)n, NULL);
            ck_assert_msg(memcmp(y, y1, m * (size_t)n * sizeof *y) == 0,
                          "%s %lldx%lld m %zu: batch and single rows differ", kernel,
                          (long long)n, (long long)k, m);
            free(x);
            free(y);
            free(y1);
            free(ref);
            free(mag);
        }
        sg_fastmat_free(f);
        free_w(&w);
    }
    sg_pool_free(pool);
}

START_TEST(test_avx2_f32)
{
    check_exact_kernel(SG_DT_F32, SG_PREC_F32, "avx2-f32");
}
END_TEST

START_TEST(test_avx2_bf16_weights_exact_at_f32)
{
    check_exact_kernel(SG_DT_BF16, SG_PREC_F32, "avx2-bf16");
}
END_TEST

/* BF16 precision of F32 weights: the weights are rounded to bf16 once, products stay exact
 * (avx2-bf16), or x is rounded to bf16 too (dnnl-bf16). */
START_TEST(test_bf16_precision)
{
    const int64_t n = 37, k = 300;
    const size_t m = 7;
    wmat w = make_w(n, k, SG_DT_F32, "model.layers.0.self_attn.q_proj.weight");
    float *wr = malloc((size_t)(n * k) * sizeof *wr);
    float *x = make_x(m, k);
    float *y = malloc(m * (size_t)n * sizeof *y);
    double *ref = malloc(m * (size_t)n * sizeof *ref);
    double *mag = malloc(m * (size_t)n * sizeof *mag);
    sg_fastmat *f;
    char err[256];
    int rc;

    for (int64_t i = 0; i < n * k; i++)
        wr[i] = sg_bf16_to_f32(sg_f32_to_bf16(w.f[i]));
    rc = sg_fastmat_new(&f, &w.t, SG_PREC_BF16, err, sizeof err);
    if (rc == SG_EUNSUPPORTED) {
        ck_assert(!sg_avx2_available());
    } else {
        ck_assert_int_eq(rc, SG_OK);
        reference(x, m, wr, n, k, ref, mag);
        sg_fastmat_mul(f, x, m, y, NULL);
        if (strcmp(sg_fastmat_kernel(f), "avx2-bf16") == 0)
            ck_assert_double_lt(rel_err(y, ref, mag, m * (size_t)n), 1e-5);
        else /* dnnl-bf16: x rounded to bf16 too, 2^-9 relative per term */
            ck_assert_double_lt(rel_err(y, ref, mag, m * (size_t)n), 4e-3);
        sg_fastmat_free(f);
    }
    free(wr);
    free(x);
    free(y);
    free(ref);
    free(mag);
    free_w(&w);
}
END_TEST

START_TEST(test_int8)
{
    sg_pool *pool;

    ck_assert_int_eq(sg_pool_new(&pool, 2), SG_OK);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t n = shapes[s][0], k = shapes[s][1];
        wmat w = make_w(n, k, s % 2 ? SG_DT_BF16 : SG_DT_F32, "model.layers.3.mlp.down_proj.weight");
        sg_fastmat *f;
        char err[256];

        ck_assert_int_eq(sg_fastmat_new(&f, &w.t, SG_PREC_INT8, err, sizeof err), SG_OK);
        ck_assert_str_eq(sg_fastmat_kernel(f), "dnnl-u8s8");
        for (size_t t = 0; t < sizeof ms / sizeof ms[0]; t++) {
            const size_t m = ms[t];
            float *x = make_x(m, k);
            float *y = malloc(m * (size_t)n * sizeof *y);
            float *y1 = malloc(m * (size_t)n * sizeof *y1);
            double *ref = malloc(m * (size_t)n * sizeof *ref);
            double *mag = malloc(m * (size_t)n * sizeof *mag);
            double e;

            /* Shift one row far from zero: the zero-point term must cancel it exactly. */
            for (int64_t l = 0; l < k; l++)
                x[l] = x[l] * 0.25f + 3.0f;
            reference(x, m, w.f, n, k, ref, mag);
            sg_fastmat_mul(f, x, m, y, pool);
            /* Each term's error is at most half a step of x (1/127 of its row's max) times
             * |w| plus half a step of w (1/63) times |x|: relative to sum |x w| with |x|, |w|
             * spread uniformly below their maxima, a few percent at worst. */
            e = rel_err(y, ref, mag, m * (size_t)n);
            ck_assert_msg(e < 0.05, "int8 %lldx%lld m %zu: relative error %g", (long long)n,
                          (long long)k, m, e);
            /* Quantization is per row: a batch equals its rows one at a time. */
            for (size_t i = 0; i < m; i++)
                sg_fastmat_mul(f, x + i * (size_t)k, 1, y1 + i * (size_t)n, NULL);
            for (size_t i = 0; i < m * (size_t)n; i++)
                ck_assert_float_eq_tol(y[i], y1[i], 1e-4f * (float)mag[i] + 1e-6f);
            free(x);
            free(y);
            free(y1);
            free(ref);
            free(mag);
        }
        sg_fastmat_free(f);
        free_w(&w);
    }
    sg_pool_free(pool);
}
END_TEST

/*
 * The int8 kernel against the exact integer dot product of the same quantized values: the
 * weights and the tokens quantized here as docs/ENGINE.md and matmul_dnnl.c specify (per-row
 * scales, QMAX 127 with VNNI and 63 without, u8 tokens with zero point 128), the products
 * summed in 64-bit integers, then y = (acc - 128 colsum) * s_x * s_w. What is left is the
 * rounding of acc to f32 (exact below 2^24) and of the two scalings: a few ulps of the terms'
 * magnitude, far below one quantization step, so any difference in the quantization shows.
 */
START_TEST(test_int8_integer_reference)
{
    const float qmax = __builtin_cpu_supports("avx512vnni") ? 127.0f : 63.0f;

    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t n = shapes[s][0], k = shapes[s][1];
        wmat w = make_w(n, k, s % 2 ? SG_DT_BF16 : SG_DT_F32, "model.layers.1.mlp.up_proj.weight");
        int8_t *qw = malloc((size_t)(n * k));
        float *sw = malloc((size_t)n * sizeof *sw);
        int64_t *colsum = calloc((size_t)n, sizeof *colsum);
        sg_fastmat *f;
        char err[256];

        for (int64_t j = 0; j < n; j++) {
            const float *row = w.f + j * k;
            float amax = 0.0f, inv;

            for (int64_t l = 0; l < k; l++)
                amax = fmaxf(amax, fabsf(row[l]));
            sw[j] = amax > 0.0f ? amax / qmax : 1.0f;
            inv = amax > 0.0f ? qmax / amax : 0.0f;
            for (int64_t l = 0; l < k; l++) {
                const float v = row[l] * inv;
                int q = (int)(v + (v >= 0.0f ? 0.5f : -0.5f));

                q = q > (int)qmax ? (int)qmax : q < -(int)qmax ? -(int)qmax : q;
                qw[j * k + l] = (int8_t)q;
                colsum[j] += q;
            }
        }
        ck_assert_int_eq(sg_fastmat_new(&f, &w.t, SG_PREC_INT8, err, sizeof err), SG_OK);
        for (size_t t = 0; t < sizeof ms / sizeof ms[0]; t++) {
            const size_t m = ms[t];
            float *x = make_x(m, k);
            float *y = malloc(m * (size_t)n * sizeof *y);
            uint8_t *u = malloc((size_t)k);

            for (int64_t l = 0; l < k; l++)
                x[l] = x[l] * 0.25f + 3.0f; /* a row far from zero: the zero point matters */
            sg_fastmat_mul(f, x, m, y, NULL);
            for (size_t i = 0; i < m; i++) {
                const float *xi = x + i * (size_t)k;
                float amax = 0.0f, sx, inv;

                for (int64_t l = 0; l < k; l++)
                    amax = fmaxf(amax, fabsf(xi[l]));
                sx = amax / 127.0f;
                inv = amax > 0.0f ? 127.0f / amax : 0.0f;
                for (int64_t l = 0; l < k; l++)
                    u[l] = (uint8_t)(int)(xi[l] * inv + 128.5f);
                for (int64_t j = 0; j < n; j++) {
                    int64_t acc = 0;
                    double want, tol;

                    for (int64_t l = 0; l < k; l++)
                        acc += (int64_t)u[l] * qw[j * k + l];
                    want = ((double)acc - 128.0 * (double)colsum[j]) * (double)sx * sw[j];
                    tol = 4.0 * FLT_EPSILON *
                          (fabs((double)acc) + 128.0 * fabs((double)colsum[j])) * (double)sx *
                          sw[j];
                    ck_assert_msg(fabs(y[i * (size_t)n + (size_t)j] - want) <= tol,
                                  "int8 %lldx%lld m %zu [%zu, %lld]: %.9g, exact %.9g (tol %g)",
                                  (long long)n, (long long)k, m, i, (long long)j,
                                  y[i * (size_t)n + (size_t)j], want, tol);
                }
            }
            free(x);
            free(y);
            free(u);
        }
        sg_fastmat_free(f);
        free(qw);
        free(sw);
        free(colsum);
        free_w(&w);
    }
}
END_TEST

/* Integer data that int8 represents exactly (|w| <= 63 with a 63 in each row, |x| <= 127 with a
 * 127 in each row, so both scales are 1 without VNNI): the product must be exact. */
START_TEST(test_int8_exact_on_integers)
{
    const int64_t n = 19, k = 70;
    const size_t m = 8;
    wmat w = make_w(n, k, SG_DT_F32, "w");
    float *x = make_x(m, k);
    float *y = malloc(m * (size_t)n * sizeof *y);
    double *ref = malloc(m * (size_t)n * sizeof *ref);
    double *mag = malloc(m * (size_t)n * sizeof *mag);
    sg_fastmat *f;
    char err[256];

    for (int64_t j = 0; j < n; j++)
        for (int64_t l = 0; l < k; l++) {
            float v = l == j % k ? 63.0f : (float)lrint(urand() * 63.0);
            w.f[j * k + l] = v;
            ((float *)w.data)[j * k + l] = v;
        }
    for (size_t i = 0; i < m; i++)
        for (int64_t l = 0; l < k; l++)
            x[i * (size_t)k + (size_t)l] = l == 3 ? -127.0f : (float)lrint(urand() * 127.0);
    ck_assert_int_eq(sg_fastmat_new(&f, &w.t, SG_PREC_INT8, err, sizeof err), SG_OK);
    reference(x, m, w.f, n, k, ref, mag);
    sg_fastmat_mul(f, x, m, y, NULL);
    if (!sg_cpu_has(SG_CPU_AVX512_VNNI))
        for (size_t i = 0; i < m * (size_t)n; i++)
            ck_assert_double_eq_tol(y[i], ref[i], 1e-6 * mag[i]);
    sg_fastmat_free(f);
    free(x);
    free(y);
    free(ref);
    free(mag);
    free_w(&w);
}
END_TEST

START_TEST(test_refusals)
{
    wmat w = make_w(32, 64, SG_DT_F16, "model.layers.0.mlp.up_proj.weight");
    wmat e = make_w(32, 64, SG_DT_BF16, "model.embed_tokens.weight");
    sg_fastmat *f = (sg_fastmat *)&w;
    char err[256];

    /* F16 at f32: the portable path converts it exactly. */
    ck_assert_int_eq(sg_fastmat_new(&f, &w.t, SG_PREC_F32, err, sizeof err), SG_EUNSUPPORTED);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(err, "up_proj"));
    /* The tied LM head stays on the portable path at every precision. */
    for (int p = 0; p < SG_PREC_COUNT; p++) {
        ck_assert_int_eq(sg_fastmat_new(&f, &e.t, (sg_precision)p, err, sizeof err),
                         SG_EUNSUPPORTED);
        ck_assert_ptr_nonnull(strstr(err, "embed_tokens"));
    }
    ck_assert_int_eq(sg_fastmat_new(&f, &w.t, (sg_precision)7, err, sizeof err), SG_EINVAL);
    w.t.ndim = 1;
    ck_assert_int_eq(sg_fastmat_new(&f, &w.t, SG_PREC_INT8, err, sizeof err), SG_ESHAPE);
    sg_fastmat_free(NULL);
    free_w(&w);
    free_w(&e);
}
END_TEST

/* sg_mat (matmul.h) dispatches to the fast kernels: int8 through sg_mat_mul is not exact, and
 * the embedding keeps the portable path; sg_mat_mul_rows equals sg_mat_mul's columns. */
START_TEST(test_sg_mat_dispatch)
{
    const int64_t n = 40, k = 96;
    const size_t m = 3;
    wmat w = make_w(n, k, SG_DT_BF16, "model.layers.1.mlp.gate_proj.weight");
    wmat e = make_w(n, k, SG_DT_BF16, "model.embed_tokens.weight");
    float *x = make_x(m, k);
    float *y = malloc(m * (size_t)n * sizeof *y);
    float *y8 = malloc(m * (size_t)n * sizeof *y8);
    float yr[3 * 2];
    const int32_t rows[2] = {39, 2};
    double *ref = malloc(m * (size_t)n * sizeof *ref);
    double *mag = malloc(m * (size_t)n * sizeof *mag);
    sg_mat *a, *b, *c;
    char err[256];

    ck_assert_int_eq(sg_mat_new(&a, &w.t, SG_PREC_F32, err, sizeof err), SG_OK);
    ck_assert_int_eq(sg_mat_new(&b, &w.t, SG_PREC_INT8, err, sizeof err), SG_OK);
    ck_assert_int_eq(sg_mat_new(&c, &e.t, SG_PREC_INT8, err, sizeof err), SG_OK);
    reference(x, m, w.f, n, k, ref, mag);
    sg_mat_mul(a, x, m, y, NULL);
    sg_mat_mul(b, x, m, y8, NULL);
    ck_assert_double_lt(rel_err(y, ref, mag, m * (size_t)n), 1e-5);
    ck_assert_double_lt(rel_err(y8, ref, mag, m * (size_t)n), 0.05);
    ck_assert_double_gt(rel_err(y8, ref, mag, m * (size_t)n), 1e-6); /* it did quantize */
    /* avx2 kinds: the row-subset form gives sg_mat_mul's bits. */
    sg_mat_mul(a, x, m, y, NULL);
    sg_mat_mul_rows(a, rows, 2, x, m, yr, NULL);
    for (size_t i = 0; i < m; i++) {
        ck_assert_float_eq(yr[i * 2], y[i * (size_t)n + 39]);
        ck_assert_float_eq(yr[i * 2 + 1], y[i * (size_t)n + 2]);
    }
    sg_mat_mul(c, x, m, y, NULL);
    sg_mat_mul_rows(c, rows, 2, x, m, yr, NULL);
    for (size_t i = 0; i < m; i++) {
        ck_assert_float_eq(yr[i * 2], y[i * (size_t)n + 39]);
        ck_assert_float_eq(yr[i * 2 + 1], y[i * (size_t)n + 2]);
    }
    sg_mat_free(a);
    sg_mat_free(b);
    sg_mat_free(c);
    free(x);
    free(y);
    free(y8);
    free(ref);
    free(mag);
    free_w(&w);
    free_w(&e);
}
END_TEST


/* Many rows, few column chunks, more threads than chunks: oneDNN's products are split by rows
 * too (matmul_dnnl.c, mm_row_blocks). The split must not change a value: int8 sums are exact
 * integers, so the pool's result equals one thread's bit for bit; bf16 stays within its bound
 * of the reference. */
START_TEST(test_dnnl_row_blocks)
{
    const int64_t n = 300, k = 96; /* 2 chunks: 256 columns and a tail of 44 */
    const size_t m = 200;          /* 2 chunks on 4 threads: 2 blocks of 100 rows */
    const sg_precision precs[] = {SG_PREC_INT8, SG_PREC_BF16};
    wmat w = make_w(n, k, SG_DT_BF16, "model.layers.0.mlp.up_proj.weight");
    float *x = make_x(m, k);
    float *y = malloc(m * (size_t)n * sizeof *y);
    float *y1 = malloc(m * (size_t)n * sizeof *y1);
    double *ref = malloc(m * (size_t)n * sizeof *ref);
    double *mag = malloc(m * (size_t)n * sizeof *mag);
    sg_pool *pool;

    ck_assert_int_eq(sg_pool_new(&pool, 4), SG_OK);
    reference(x, m, w.f, n, k, ref, mag);
    for (size_t p = 0; p < 2; p++) {
        sg_fastmat *f;
        char err[256];

        if (sg_fastmat_new(&f, &w.t, precs[p], err, sizeof err) != SG_OK) {
            ck_assert_int_eq(precs[p], SG_PREC_BF16); /* int8 is always there */
            continue;
        }
        if (strcmp(sg_fastmat_kernel(f), "dnnl-bf16") != 0 &&
            strcmp(sg_fastmat_kernel(f), "dnnl-u8s8") != 0) {
            sg_fastmat_free(f); /* bf16 on a CPU without it: avx2-bf16, tested above */
            continue;
        }
        ck_assert_int_eq(sg_fastmat_mul(f, x, m, y, pool), SG_OK);
        ck_assert_int_eq(sg_fastmat_mul(f, x, m, y1, NULL), SG_OK);
        if (precs[p] == SG_PREC_INT8)
            for (size_t i = 0; i < m * (size_t)n; i++)
                ck_assert_msg(y[i] == y1[i], "int8 row blocks: y[%zu] %.9g vs %.9g", i,
                              (double)y[i], (double)y1[i]);
        ck_assert_msg(rel_err(y, ref, mag, m * (size_t)n) <
                          (precs[p] == SG_PREC_INT8 ? 0.05 : 0.01),
                      "%s row blocks: relative error %g", sg_fastmat_kernel(f),
                      rel_err(y, ref, mag, m * (size_t)n));
        sg_fastmat_free(f);
    }
    sg_pool_free(pool);
    free(x);
    free(y);
    free(y1);
    free(ref);
    free(mag);
    free_w(&w);
}
END_TEST

Suite *fastmm_suite(void)
{
    Suite *s = suite_create("fastmm");
    TCase *tc = tcase_create("kernels");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_avx2_f32);
    tcase_add_test(tc, test_avx2_bf16_weights_exact_at_f32);
    tcase_add_test(tc, test_bf16_precision);
    tcase_add_test(tc, test_int8);
    tcase_add_test(tc, test_int8_exact_on_integers);
    tcase_add_test(tc, test_int8_integer_reference);
    tcase_add_test(tc, test_dnnl_row_blocks);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_sg_mat_dispatch);
    suite_add_tcase(s, tc);
    return s;
}
