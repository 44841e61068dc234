/* check_ops.c: ops.c kernels against naive double references, and the thread pool. */
#include <check.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

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
    suite_add_tcase(s, tc);
    return s;
}
