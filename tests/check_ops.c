/* check_ops.c: ops.c kernels against naive double references, and the thread pool. */
#include <check.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "pool.h"
#include "sg_engine.h"

Suite *ops_suite(void);

/* A small deterministic generator (xorshift) for test data in [-scale, scale). */
static float rnd(uint32_t *s, float scale)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return scale * ((float)(*s >> 8) / 8388608.0f - 1.0f);
}

START_TEST(test_rmsnorm)
{
    uint32_t s = 1;
    float x[100], g[100], out[100];

    for (int i = 0; i < 100; i++) {
        x[i] = rnd(&s, 3.0f);
        g[i] = 1.0f + rnd(&s, 0.5f);
    }
    sg_rmsnorm(out, x, g, 100, 1e-6f);
    double ss = 0;
    for (int i = 0; i < 100; i++)
        ss += (double)x[i] * x[i];
    double r = 1.0 / sqrt(ss / 100 + 1e-6);
    for (int i = 0; i < 100; i++)
        ck_assert_double_eq_tol(out[i], x[i] * r * g[i], 1e-5);
    /* in place */
    sg_rmsnorm(x, x, g, 100, 1e-6f);
    for (int i = 0; i < 100; i++)
        ck_assert_float_eq(x[i], out[i]);
}
END_TEST

START_TEST(test_rope)
{
    uint32_t s = 2;
    float x[16], ref[16], c[8], sn[8];
    const double theta = 10000.0;
    const int pos = 37;

    for (int i = 0; i < 16; i++)
        x[i] = ref[i] = rnd(&s, 1.0f);
    sg_rope_table(c, sn, 16, pos, theta);
    sg_rope(x, 16, c, sn);
    /* Naive: q*cos + rotate_half(q)*sin with cos/sin repeated over both halves. */
    for (int i = 0; i < 16; i++) {
        int j = i % 8;
        double a = pos * pow(theta, -2.0 * j / 16.0);
        double rot = i < 8 ? -ref[i + 8] : ref[i - 8];
        ck_assert_double_eq_tol(x[i], ref[i] * cos(a) + rot * sin(a), 1e-6);
    }
    /* Position 0 is the identity. */
    sg_rope_table(c, sn, 16, 0, theta);
    for (int i = 0; i < 8; i++) {
        ck_assert_float_eq(c[i], 1.0f);
        ck_assert_float_eq(sn[i], 0.0f);
    }
}
END_TEST

START_TEST(test_softmax)
{
    float x[5] = {1.0f, 2.0f, 3.0f, 1000.0f, -1000.0f};
    double e[5], sum = 0;
    float y[3] = {0.5f, -0.25f, 2.0f};

    sg_softmax(x, 5);
    ck_assert_double_eq_tol(x[3], 1.0, 1e-7);
    ck_assert_double_eq_tol(x[4], 0.0, 1e-30);
    for (int i = 0; i < 3; i++) {
        e[i] = exp(y[i]);
        sum += e[i];
    }
    sg_softmax(y, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_double_eq_tol(y[i], e[i] / sum, 1e-7);
}
END_TEST

START_TEST(test_gelu_softcap)
{
    for (float x = -8.0f; x <= 8.0f; x += 0.37f) {
        double ref = 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
        ck_assert_double_eq_tol(sg_gelu_tanh(x), ref, 2e-6);
    }
    /* Not the erf GELU: the two differ by ~1e-3 near x = 1.5 ... but agree at 0. */
    ck_assert_float_eq(sg_gelu_tanh(0.0f), 0.0f);
    float g[2] = {1.0f, -2.0f}, u[2] = {3.0f, 0.5f}, o[2];
    sg_gelu_mul(o, g, u, 2);
    ck_assert_double_eq_tol(o[0], sg_gelu_tanh(1.0f) * 3.0, 1e-6);
    ck_assert_double_eq_tol(o[1], sg_gelu_tanh(-2.0f) * 0.5, 1e-6);

    float v[4] = {0.0f, 10.0f, -100.0f, 1e6f};
    sg_softcap(v, 4, 30.0f);
    ck_assert_float_eq(v[0], 0.0f);
    ck_assert_double_eq_tol(v[1], 30.0 * tanh(10.0 / 30.0), 1e-5);
    ck_assert_double_eq_tol(v[2], 30.0 * tanh(-100.0 / 30.0), 1e-5);
    ck_assert_double_eq_tol(v[3], 30.0, 1e-5);
    float w[1] = {123.0f};
    sg_softcap(w, 1, 0.0f); /* no cap */
    ck_assert_float_eq(w[0], 123.0f);
}
END_TEST

START_TEST(test_dot_axpy)
{
    uint32_t s = 3;
    float a[77], b[77], y[77];
    double ref = 0;

    for (int i = 0; i < 77; i++) {
        a[i] = rnd(&s, 1.0f);
        b[i] = rnd(&s, 1.0f);
        y[i] = 1.0f;
        ref += (double)a[i] * b[i];
    }
    ck_assert_double_eq_tol(sg_dot(a, b, 77), ref, 1e-5);
    ck_assert_float_eq(sg_dot(a, b, 0), 0.0f);
    sg_axpy(y, 2.0f, a, 77);
    for (int i = 0; i < 77; i++)
        ck_assert_float_eq(y[i], 1.0f + 2.0f * a[i]);
}
END_TEST

/* Distance in ulp between two finite floats (ordered as integers, -0 == +0). */
static int64_t ulp_dist(float a, float b)
{
    int32_t ia, ib;
    int64_t oa, ob;

    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    oa = ia < 0 ? (int64_t)INT32_MIN - ia : ia;
    ob = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return oa > ob ? oa - ob : ob - oa;
}

/* Every float in [-12, 12] with 2^-16 spacing, +-2^e for tiny and huge e, and odd lengths. */
START_TEST(test_tanh_dense)
{
    const size_t cap = 2000000;
    float *x = malloc(cap * sizeof *x);
    float *y = malloc(cap * sizeof *y);
    float *yp = malloc(cap * sizeof *yp);
    size_t n = 0;
    int64_t worst = 0;
    float worst_x = 0;
    size_t differ = 0;
    float first_differ = 0;

    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    ck_assert_ptr_nonnull(yp);
    for (int32_t i = -12 * 65536; i <= 12 * 65536; i++)
        x[n++] = (float)i / 65536.0f;
    /* Around the branch point 0.625 and the clamp 9.5, every float. */
    for (float v = 0.62f; v < 0.63f && n < cap; v = nextafterf(v, 1.0f))
        x[n++] = v;
    for (int e = -149; e <= 127; e++) {
        x[n++] = ldexpf(1.0f, e);
        x[n++] = -ldexpf(1.5f, e < 127 ? e : 126);
    }
    ck_assert_uint_lt(n, cap);
    sg_tanh_n(y, x, n);
    sg_tanh_n_portable(yp, x, n);
    for (size_t i = 0; i < n; i++) {
        int64_t d = ulp_dist(y[i], tanhf(x[i]));
        if (d > worst) {
            worst = d;
            worst_x = x[i];
        }
        /* Both paths, same bits (no ck_assert per element: each one costs a pipe write). */
        if (memcmp(&y[i], &yp[i], 4) != 0 && differ++ == 0)
            first_differ = x[i];
    }
    ck_assert_msg(differ == 0, "tanh: %zu results differ between the AVX2 and the portable "
                  "path, first at x = %a", differ, first_differ);
    ck_assert_msg(worst <= 4, "tanh: %lld ulp from tanhf at x = %a", (long long)worst, worst_x);
    /* In place and every length 0..19 (the partial last vector). */
    for (size_t len = 0; len < 20; len++) {
        float buf[20];
        for (size_t i = 0; i < 20; i++)
            buf[i] = (float)i - 7.5f;
        sg_tanh_n(buf, buf, len);
        for (size_t i = 0; i < len; i++)
            ck_assert_int_le(ulp_dist(buf[i], tanhf((float)i - 7.5f)), 4);
        for (size_t i = len; i < 20; i++)
            ck_assert_float_eq(buf[i], (float)i - 7.5f);
    }
    free(x);
    free(y);
    free(yp);
}
END_TEST

START_TEST(test_tanh_special)
{
    float x[8] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e30f, -1e30f, -1.17549435e-38f};
    float y[8];

    sg_tanh_n(y, x, 8);
    ck_assert(isnan(y[0]));
    ck_assert_float_eq(y[1], 1.0f);
    ck_assert_float_eq(y[2], -1.0f);
    ck_assert(y[3] == 0.0f && !signbit(y[3]));
    ck_assert(y[4] == 0.0f && signbit(y[4]));
    ck_assert_float_eq(y[5], 1.0f);
    ck_assert_float_eq(y[6], -1.0f);
    ck_assert_float_eq(y[7], x[7]);
    /* Saturation: tanhf rounds to exactly +-1 from about 9.01 on, and so do we. */
    for (float v = 9.0f; v < 12.0f; v += 0.01f) {
        float t[2] = {v, -v};
        sg_tanh_n(t, t, 2);
        ck_assert_int_le(ulp_dist(t[0], tanhf(v)), 1);
        ck_assert_int_le(ulp_dist(t[1], tanhf(-v)), 1);
    }
}
END_TEST

START_TEST(test_exp_dense)
{
    const size_t n = 175 * 4096 + 2000; /* -87.3 .. 88.19 */
    float *x = malloc(n * sizeof *x);
    float *y = malloc(n * sizeof *y);
    int64_t worst = 0;
    float worst_x = 0;

    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    for (size_t i = 0; i < n; i++)
        x[i] = -87.3f + (float)i / 4096.0f;
    sg_exp_n(y, x, n);
    for (size_t i = 0; i < n; i++) {
        int64_t d = ulp_dist(y[i], expf(x[i]));
        if (d > worst) {
            worst = d;
            worst_x = x[i];
        }
    }
    ck_assert_msg(worst <= 2, "exp: %lld ulp from expf at x = %a", (long long)worst, worst_x);
    float sp[6] = {-INFINITY, -100.0f, 100.0f, INFINITY, NAN, 0.0f};
    sg_exp_n(sp, sp, 6);
    ck_assert(sp[0] == 0.0f && sp[1] == 0.0f);
    ck_assert(isinf(sp[2]) && isinf(sp[3]));
    ck_assert(isnan(sp[4]));
    ck_assert_float_eq(sp[5], 1.0f);
    free(x);
    free(y);
}
END_TEST

/* The fused GELU(gate) * up and the soft-cap against double references, all lengths. */
START_TEST(test_gelu_softcap_vec)
{
    uint32_t s = 9;
    float g[203], u[203], o[203], c[203];

    for (int i = 0; i < 203; i++) {
        g[i] = rnd(&s, 12.0f);
        u[i] = rnd(&s, 2.0f);
        c[i] = rnd(&s, 200.0f);
    }
    for (size_t n = 0; n <= 203; n += 29) {
        float cc[203];
        memcpy(cc, c, sizeof cc);
        sg_gelu_mul(o, g, u, n);
        sg_softcap(cc, n, 50.0f);
        for (size_t i = 0; i < n; i++) {
            double x = g[i];
            double ref = 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
            ck_assert_double_eq_tol(o[i], ref * u[i], 1e-5 + 1e-6 * fabs(ref * u[i]));
            ck_assert_float_eq(o[i], sg_gelu_tanh(g[i]) * u[i]);
            ck_assert_double_eq_tol(cc[i], 50.0 * tanh(c[i] / 50.0), 2e-5);
        }
        for (size_t i = n; i < 203; i++)
            ck_assert_float_eq(cc[i], c[i]);
    }
    /* out == up works too. */
    memcpy(o, u, sizeof o);
    sg_gelu_mul(o, g, o, 203);
    for (int i = 0; i < 203; i++)
        ck_assert_float_eq(o[i], sg_gelu_tanh(g[i]) * u[i]);
}
END_TEST

struct pool_probe {
    atomic_int hits[1000];
    atomic_int bad_thread;
    int n_threads;
};

static void probe_fn(void *ctx, size_t task, int thread)
{
    struct pool_probe *p = ctx;

    atomic_fetch_add(&p->hits[task], 1);
    if (thread < 0 || thread >= p->n_threads)
        atomic_store(&p->bad_thread, 1);
}

START_TEST(test_pool)
{
    sg_pool *pool;
    static struct pool_probe p;

    ck_assert_int_eq(sg_pool_new(&pool, 3), SG_OK);
    ck_assert_int_eq(sg_pool_n_threads(pool), 3);
    p.n_threads = 3;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 1000; i++)
            atomic_store(&p.hits[i], 0);
        sg_pool_run(pool, probe_fn, &p, (size_t)(round * 20 + 1));
        for (int i = 0; i < 1000; i++)
            ck_assert_int_eq(atomic_load(&p.hits[i]), i < round * 20 + 1 ? 1 : 0);
    }
    ck_assert_int_eq(atomic_load(&p.bad_thread), 0);
    sg_pool_run(pool, probe_fn, &p, 0); /* nothing */

    size_t bytes;
    ck_assert_ptr_null(sg_pool_scratch(pool, 0, &bytes));
    ck_assert_int_eq(sg_pool_reserve(pool, 1000), SG_OK);
    for (int t = 0; t < 3; t++) {
        unsigned char *m = sg_pool_scratch(pool, t, &bytes);
        ck_assert_ptr_nonnull(m);
        ck_assert_uint_ge(bytes, 1000);
        ck_assert_uint_eq((uintptr_t)m % 64, 0);
        m[999] = 1;
    }
    ck_assert_ptr_null(sg_pool_scratch(pool, 3, NULL));
    sg_pool_free(pool);

    /* NULL pool and 1-thread pool run on the caller. */
    p.n_threads = 1;
    for (int i = 0; i < 10; i++)
        atomic_store(&p.hits[i], 0);
    sg_pool_run(NULL, probe_fn, &p, 10);
    ck_assert_int_eq(sg_pool_new(&pool, 1), SG_OK);
    sg_pool_run(pool, probe_fn, &p, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(atomic_load(&p.hits[i]), 2);
    sg_pool_free(pool);
    sg_pool_free(NULL);
    ck_assert_int_eq(sg_pool_new(&pool, 100000), SG_EINVAL);
    ck_assert_ptr_null(pool);
    ck_assert_int_eq(sg_pool_reserve(NULL, 10), SG_EINVAL);
}
END_TEST

Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_softmax);
    tcase_add_test(tc, test_gelu_softcap);
    tcase_add_test(tc, test_dot_axpy);
    tcase_add_test(tc, test_pool);
    tcase_add_test(tc, test_tanh_dense);
    tcase_add_test(tc, test_tanh_special);
    tcase_add_test(tc, test_exp_dense);
    tcase_add_test(tc, test_gelu_softcap_vec);
    suite_add_tcase(s, tc);
    return s;
}
