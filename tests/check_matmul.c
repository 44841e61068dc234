/*
 * check_matmul.c: the portable matrix product (matmul.c) against a naive double reference, for
 * every dtype path (F32 in place, F32 unaligned, BF16, F16, Q8_0), odd shapes, row subsets, and
 * batch invariance (a row's result does not depend on the rows evaluated with it).
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "pool.h"
#include "tensor.h"

Suite *matmul_suite(void);

static float frand(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* A weight [n, k] of dtype dt with values exactly representable in it; f32 copy in ref. */
static void *make_weight(sg_dtype dt, int64_t n, int64_t k, float *ref, size_t *bytes,
                         size_t offset)
{
    uint32_t s = 42;
    size_t rb;
    ck_assert_int_eq(sg_dtype_bytes(dt, k, &rb), SG_OK);
    *bytes = rb * (size_t)n;
    uint8_t *mem = calloc(1, *bytes + offset + 16);
    uint8_t *w = mem + offset;

    for (int64_t r = 0; r < n; r++) {
        for (int64_t i = 0; i < k; i++) {
            float v = frand(&s);
            size_t at = (size_t)(r * k + i);
            if (dt == SG_DT_F32) {
                memcpy(w + at * 4, &v, 4);
            } else if (dt == SG_DT_BF16) {
                uint16_t b = sg_f32_to_bf16(v);
                memcpy(w + at * 2, &b, 2);
            } else if (dt == SG_DT_F16) {
                uint16_t h = sg_f32_to_f16(v);
                memcpy(w + at * 2, &h, 2);
            }
        }
        if (dt == SG_DT_Q8_0) {
            /* blocks: f16 d = 1/64, int8 q */
            for (int64_t b = 0; b < k / 32; b++) {
                uint8_t *blk = w + (size_t)r * rb + (size_t)b * 34;
                uint16_t d = sg_f32_to_f16(1.0f / 64.0f);
                memcpy(blk, &d, 2);
                for (int q = 0; q < 32; q++)
                    blk[2 + q] = (uint8_t)(int8_t)((int)(frand(&s) * 100));
            }
        }
        sg_dequant_row(dt, w + (size_t)r * rb, ref + r * k, k);
    }
    return mem;
}

static void check_dtype(sg_dtype dt, int64_t n, int64_t k, size_t offset)
{
    size_t bytes;
    float *ref = malloc((size_t)(n * k) * sizeof *ref);
    uint8_t *mem = make_weight(dt, n, k, ref, &bytes, offset);
    sg_tensor t = {"w", dt, 2, {n, k, 0, 0}, mem + offset, bytes};
    sg_mat *m;
    char err[256];
    const size_t rows = 9;
    float *x = malloc(rows * (size_t)k * sizeof *x);
    float *y = malloc(rows * (size_t)n * sizeof *y);
    float *y1 = malloc((size_t)n * sizeof *y1);
    uint32_t s = 7;
    sg_pool *pool;

    ck_assert_int_eq(sg_pool_new(&pool, 3), SG_OK);
    for (size_t i = 0; i < rows * (size_t)k; i++)
        x[i] = frand(&s);
    ck_assert_int_eq(sg_mat_new(&m, &t, SG_PREC_F32, err, sizeof err), SG_OK);
    ck_assert_int_eq(sg_mat_rows(m), n);
    ck_assert_int_eq(sg_mat_cols(m), k);
    ck_assert_int_eq(sg_mat_precision(m), SG_PREC_F32);
    sg_mat_mul(m, x, rows, y, pool);
    for (size_t i = 0; i < rows; i++) {
        for (int64_t c = 0; c < n; c++) {
            double acc = 0;
            for (int64_t j = 0; j < k; j++)
                acc += (double)x[i * (size_t)k + (size_t)j] * ref[c * k + j];
            ck_assert_msg(fabs(acc - y[i * (size_t)n + (size_t)c]) < 1e-4 * sqrt((double)k),
                          "%s row %zu col %lld: %g vs %g", sg_dtype_name(dt), i, (long long)c,
                          (double)y[i * (size_t)n + (size_t)c], acc);
        }
        /* The same row alone (no pool): bit-identical. */
        sg_mat_mul(m, x + i * (size_t)k, 1, y1, NULL);
        ck_assert_mem_eq(y1, y + i * (size_t)n, (size_t)n * sizeof *y1);
    }
    /* A subset of rows of W. */
    int32_t sel[3] = {(int32_t)n - 1, 0, (int32_t)(n / 2)};
    float ys[9 * 3];
    sg_mat_mul_rows(m, sel, 3, x, rows, ys, pool);
    for (size_t i = 0; i < rows; i++)
        for (int c = 0; c < 3; c++)
            ck_assert_float_eq(ys[i * 3 + (size_t)c], y[i * (size_t)n + (size_t)sel[c]]);
    sg_mat_mul(m, x, 0, y, pool); /* nothing to do */

    sg_mat_free(m);
    sg_pool_free(pool);
    free(x);
    free(y);
    free(y1);
    free(ref);
    free(mem);
}

START_TEST(test_matmul_dtypes)
{
    check_dtype(SG_DT_F32, 37, 1003, 0); /* in place; K not a multiple of the vector width */
    check_dtype(SG_DT_F32, 19, 64, 1);   /* unaligned: converted like other dtypes */
    check_dtype(SG_DT_BF16, 33, 1030, 0);
    check_dtype(SG_DT_F16, 5, 77, 3);
    check_dtype(SG_DT_Q8_0, 17, 1024 + 64, 0);
}
END_TEST

START_TEST(test_matmul_errors)
{
    float d[4] = {0};
    sg_tensor t1 = {"vec", SG_DT_F32, 1, {4, 0, 0, 0}, d, sizeof d};
    sg_tensor tq = {"q", SG_DT_Q8_0, 2, {1, 40, 0, 0}, d, sizeof d};
    sg_tensor ts = {"short", SG_DT_F32, 2, {4, 4, 0, 0}, d, sizeof d};
    sg_mat *m;
    char err[256];

    ck_assert_int_eq(sg_mat_new(&m, &t1, SG_PREC_F32, err, sizeof err), SG_ESHAPE);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(err, "vec"));
    ck_assert_int_eq(sg_mat_new(&m, &tq, SG_PREC_F32, err, sizeof err), SG_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err, "Q8_0"));
    ck_assert_int_eq(sg_mat_new(&m, &ts, SG_PREC_F32, err, sizeof err), SG_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err, "short"));
    ck_assert_int_eq(sg_mat_new(&m, &t1, SG_PREC_COUNT, err, sizeof err), SG_EINVAL);
    sg_mat_free(NULL);
}
END_TEST

Suite *matmul_suite(void)
{
    Suite *s = suite_create("matmul");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_matmul_dtypes);
    tcase_add_test(tc, test_matmul_errors);
    suite_add_tcase(s, tc);
    return s;
}
