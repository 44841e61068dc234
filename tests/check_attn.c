/*
 * check_attn.c: the blocked attention of attn.c against a straightforward double reference
 * (several shapes, GQA ratios, windows, soft-cap on and off, lengths that are no multiple of
 * any block), on both kernels; and its determinism promises: a branch equals the same tokens
 * appended to the trunk and the same tokens in one fresh segment, bit for bit; a row alone
 * equals the row in a pass; 1 thread equals 3.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "pool.h"
#include "sg_engine.h"

Suite *attn_suite(void);

#define N_SLOTS 700
#define BR_BASE 300 /* first slot of the branch region in these tests */

static float rnd(uint32_t *s, float scale)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return scale * ((float)(*s >> 8) / 8388608.0f - 1.0f);
}

struct shape_case {
    size_t hd, n_head, n_kv;
    float scale, cap;
    size_t window;
    size_t trunk;      /* trunk_len */
    size_t segs[4];    /* branch lengths (0 ends the list) */
    float qk_mag;      /* magnitude of q and k entries */
};

static const struct shape_case cases[] = {
    /* Gemma 2 2B heads (GQA 2), global, real scale and cap; a trunk append of 37 rows. */
    {256, 8, 4, 0.0625f, 50.0f, 0, 0, {37, 0}, 1.0f},
    /* The same on a sliding layer, a window shorter than the context, three branches. */
    {256, 8, 4, 0.0625f, 50.0f, 23, 41, {19, 1, 30, 0}, 1.0f},
    /* 27B-like: head_dim 128, scale 1/12, GQA 2, strong scores so the cap bites. */
    {128, 4, 2, 0.0833333f, 50.0f, 0, 70, {13, 0}, 3.0f},
    /* Gemma 1: MQA (8 heads on one KV head), no cap, no window. */
    {16, 8, 1, 0.25f, 0.0f, 0, 5, {3, 20, 0}, 2.0f},
    /* GQA 4 with a window of 5 that crosses from the trunk into the segment. */
    {8, 8, 2, 0.2886751f, 5.0f, 5, 11, {7, 1, 13, 0}, 2.0f},
    /* No GQA, head_dim 24 (a 16-wide and an 8-wide value tile), cap 3, window 3. */
    {24, 2, 2, 0.5f, 3.0f, 3, 0, {50, 0}, 1.5f},
    /* head_dim 12 (no AVX2 path: portable whatever the kernel asked), GQA 3. */
    {12, 3, 1, 0.3f, 2.0f, 0, 4, {9, 0}, 1.0f},
    /* 32 query heads on one KV head: one row spans two blocks of 16 query vectors. */
    {32, 32, 1, 0.1767767f, 50.0f, 9, 17, {5, 2, 0}, 1.0f},
    /* Window 1 (each row sees itself only) and a long odd segment. */
    {40, 6, 3, 0.2f, 10.0f, 1, 3, {61, 0}, 1.0f},
};

/* A KV cache of N_SLOTS slots and queries for up to 256 rows, random. */
struct data {
    size_t kv_stride, q_stride;
    float *k, *v, *q;
};

static void data_init(struct data *d, const struct shape_case *c, uint32_t seed)
{
    d->kv_stride = c->n_kv * c->hd;
    d->q_stride = c->n_head * c->hd;
    d->k = malloc(N_SLOTS * d->kv_stride * sizeof(float));
    d->v = malloc(N_SLOTS * d->kv_stride * sizeof(float));
    d->q = malloc(256 * d->q_stride * sizeof(float));
    ck_assert(d->k && d->v && d->q);
    for (size_t i = 0; i < N_SLOTS * d->kv_stride; i++) {
        d->k[i] = rnd(&seed, c->qk_mag);
        d->v[i] = rnd(&seed, 1.0f);
    }
    for (size_t i = 0; i < 256 * d->q_stride; i++)
        d->q[i] = rnd(&seed, c->qk_mag);
}

static void data_free(struct data *d)
{
    free(d->k);
    free(d->v);
    free(d->q);
}

/* Straightforward attention in double: every (row, head), every key, the mask as -inf. */
static void ref_attn(const struct shape_case *c, const sg_attn_row *rows, size_t m,
                     const struct data *d, size_t window, double *out)
{
    const size_t grp = c->n_head / c->n_kv;
    double *s = malloc(N_SLOTS * sizeof *s);
    size_t *slot = malloc(N_SLOTS * sizeof *slot);

    ck_assert(s && slot);
    for (size_t i = 0; i < m; i++) {
        const sg_attn_row *r = &rows[i];
        size_t n = 0;
        for (size_t t = 0; t < r->trunk_len; t++)
            slot[n++] = t;
        for (size_t l = 0; l <= r->local; l++)
            slot[n++] = r->seg_slot + l;
        for (size_t h = 0; h < c->n_head; h++) {
            const float *q = d->q + i * d->q_stride + h * c->hd;
            const size_t g = h / grp;
            double mx = -INFINITY, sum = 0;
            for (size_t j = 0; j < n; j++) {
                const float *k = d->k + slot[j] * d->kv_stride + g * c->hd;
                double dot = 0;
                for (size_t e = 0; e < c->hd; e++)
                    dot += (double)q[e] * k[e];
                dot *= c->scale;
                if (c->cap > 0)
                    dot = c->cap * tanh(dot / c->cap);
                /* Key j sits at position j (trunk, then the segment from trunk_len on). */
                if (window && r->pos - j >= window)
                    dot = -INFINITY;
                s[j] = dot;
                mx = dot > mx ? dot : mx;
            }
            for (size_t j = 0; j < n; j++) {
                s[j] = exp(s[j] - mx);
                sum += s[j];
            }
            for (size_t e = 0; e < c->hd; e++) {
                double a = 0;
                for (size_t j = 0; j < n; j++)
                    a += s[j] * d->v[slot[j] * d->kv_stride + g * c->hd + e];
                out[i * d->q_stride + h * c->hd + e] = a / sum;
            }
        }
    }
    free(s);
    free(slot);
}

/* The rows of case c: all its branches, concatenated, in the branch region. */
static size_t branch_rows(const struct shape_case *c, sg_attn_row *rows)
{
    size_t m = 0, seg = BR_BASE;

    for (int b = 0; b < 4 && c->segs[b]; b++) {
        for (size_t l = 0; l < c->segs[b]; l++) {
            rows[m].pos = c->trunk + l;
            rows[m].slot = seg + l;
            rows[m].trunk_len = c->trunk;
            rows[m].seg_slot = seg;
            rows[m].local = l;
            m++;
        }
        seg += c->segs[b];
    }
    return m;
}

static void run_case(int ci, sg_attn_kernel kernel)
{
    const struct shape_case *c = &cases[ci];
    const sg_attn_shape sh = {c->hd, c->n_head, c->n_kv, c->scale, c->cap};
    sg_attn_row rows[256];
    struct data d;
    sg_attn_plan *p;
    sg_pool *pool;
    const size_t m = branch_rows(c, rows);

    data_init(&d, c, 17u + (uint32_t)ci);
    ck_assert_int_eq(sg_attn_plan_new(&p, &sh, 256, N_SLOTS, 3, kernel), SG_OK);
    ck_assert_int_eq(sg_pool_new(&pool, 3), SG_OK);
    if (kernel == SG_ATTN_PORTABLE || c->hd % 8 != 0)
        ck_assert_str_eq(sg_attn_plan_kernel(p), "portable");

    float *out = malloc(m * d.q_stride * sizeof *out);
    float *out1 = malloc(m * d.q_stride * sizeof *out1);
    double *ref = malloc(m * d.q_stride * sizeof *ref);
    ck_assert(out && out1 && ref);

    /* Against the reference. */
    sg_attn_run(p, rows, m, d.q, d.q_stride, d.k, d.v, d.kv_stride, c->window, out, d.q_stride,
                pool);
    ref_attn(c, rows, m, &d, c->window, ref);
    double worst = 0;
    for (size_t i = 0; i < m * d.q_stride; i++) {
        double e = fabs(out[i] - ref[i]);
        worst = e > worst ? e : worst;
    }
    ck_assert_msg(worst < 2e-6, "case %d (%s): max |error| %g", ci, sg_attn_plan_kernel(p),
                  worst);

    /* 1 thread (NULL pool) gives the same bits as 3. */
    sg_attn_run(p, rows, m, d.q, d.q_stride, d.k, d.v, d.kv_stride, c->window, out1, d.q_stride,
                NULL);
    ck_assert(memcmp(out, out1, m * d.q_stride * sizeof *out) == 0);

    /*
     * Each branch b again, (1) as a trunk append (segment right after the trunk) and (2) as
     * one fresh segment from slot 0 holding trunk and branch; rows one at a time and all at
     * once. Every way gives the branch's bits of the first run.
     */
    float *kk = malloc(N_SLOTS * d.kv_stride * sizeof *kk);
    float *vv = malloc(N_SLOTS * d.kv_stride * sizeof *vv);
    ck_assert(kk && vv);
    size_t r0 = 0, seg = BR_BASE;
    for (int b = 0; b < 4 && c->segs[b]; b++) {
        const size_t n = c->segs[b];
        sg_attn_row br[256];

        memcpy(kk, d.k, N_SLOTS * d.kv_stride * sizeof *kk);
        memcpy(vv, d.v, N_SLOTS * d.kv_stride * sizeof *vv);
        /* The branch's keys moved right behind the trunk. */
        memcpy(kk + c->trunk * d.kv_stride, d.k + seg * d.kv_stride,
               n * d.kv_stride * sizeof *kk);
        memcpy(vv + c->trunk * d.kv_stride, d.v + seg * d.kv_stride,
               n * d.kv_stride * sizeof *vv);
        for (int way = 0; way < 2; way++) {
            for (size_t l = 0; l < n; l++) {
                br[l].pos = c->trunk + l;
                br[l].slot = c->trunk + l;
                br[l].trunk_len = way == 0 ? c->trunk : 0;
                br[l].seg_slot = way == 0 ? c->trunk : 0;
                br[l].local = way == 0 ? l : c->trunk + l;
            }
            sg_attn_run(p, br, n, d.q + r0 * d.q_stride, d.q_stride, kk, vv, d.kv_stride,
                        c->window, out1, d.q_stride, pool);
            ck_assert_msg(memcmp(out1, out + r0 * d.q_stride, n * d.q_stride * sizeof *out) == 0,
                          "case %d branch %d way %d differs", ci, b, way);
            /* Rows alone, the last ones first (the compacted last layer). */
            for (size_t l = n; l-- > 0;) {
                sg_attn_run(p, &br[l], 1, d.q + (r0 + l) * d.q_stride, d.q_stride, kk, vv,
                            d.kv_stride, c->window, out1, d.q_stride, pool);
                ck_assert_msg(memcmp(out1, out + (r0 + l) * d.q_stride,
                                     d.q_stride * sizeof *out) == 0,
                              "case %d branch %d row %zu alone differs", ci, b, l);
            }
        }
        r0 += n;
        seg += n;
    }

    free(kk);
    free(vv);
    free(out);
    free(out1);
    free(ref);
    sg_pool_free(pool);
    sg_attn_plan_free(p);
    data_free(&d);
}

START_TEST(test_attn_auto)
{
    run_case(_i, SG_ATTN_AUTO);
}
END_TEST

START_TEST(test_attn_portable)
{
    run_case(_i, SG_ATTN_PORTABLE);
}
END_TEST

/* Non-consecutive rows of one segment in one call (the last layer keeps some rows only). */
START_TEST(test_attn_sparse_rows)
{
    const struct shape_case *c = &cases[1];
    const sg_attn_shape sh = {c->hd, c->n_head, c->n_kv, c->scale, c->cap};
    sg_attn_row rows[256], pick[4];
    const size_t idx[4] = {0, 17, 18, 49}; /* branch 0: rows 0, 17, 18; branch 2: last */
    struct data d;
    sg_attn_plan *p;
    const size_t m = branch_rows(c, rows);

    data_init(&d, c, 5);
    ck_assert_int_eq(sg_attn_plan_new(&p, &sh, 256, N_SLOTS, 1, SG_ATTN_AUTO), SG_OK);
    float *out = malloc(m * d.q_stride * sizeof *out);
    float *q4 = malloc(4 * d.q_stride * sizeof *q4);
    float *o4 = malloc(4 * d.q_stride * sizeof *o4);
    ck_assert(out && q4 && o4);
    sg_attn_run(p, rows, m, d.q, d.q_stride, d.k, d.v, d.kv_stride, c->window, out, d.q_stride,
                NULL);
    for (int i = 0; i < 4; i++) {
        pick[i] = rows[idx[i]];
        memcpy(q4 + i * d.q_stride, d.q + idx[i] * d.q_stride, d.q_stride * sizeof *q4);
    }
    sg_attn_run(p, pick, 4, q4, d.q_stride, d.k, d.v, d.kv_stride, c->window, o4, d.q_stride,
                NULL);
    for (int i = 0; i < 4; i++)
        ck_assert(memcmp(o4 + i * d.q_stride, out + idx[i] * d.q_stride,
                         d.q_stride * sizeof *o4) == 0);
    sg_attn_run(p, pick, 0, q4, d.q_stride, d.k, d.v, d.kv_stride, 0, o4, d.q_stride, NULL);
    free(out);
    free(q4);
    free(o4);
    sg_attn_plan_free(p);
    data_free(&d);
}
END_TEST

START_TEST(test_attn_plan_errors)
{
    sg_attn_plan *p = (sg_attn_plan *)&p;
    sg_attn_shape sh = {64, 8, 4, 0.125f, 50.0f};

    ck_assert_int_eq(sg_attn_plan_new(&p, NULL, 8, 8, 1, SG_ATTN_AUTO), SG_EINVAL);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(sg_attn_plan_new(&p, &sh, 0, 8, 1, SG_ATTN_AUTO), SG_EINVAL);
    ck_assert_int_eq(sg_attn_plan_new(&p, &sh, 8, 0, 1, SG_ATTN_AUTO), SG_EINVAL);
    ck_assert_int_eq(sg_attn_plan_new(&p, &sh, 8, 8, 0, SG_ATTN_AUTO), SG_EINVAL);
    ck_assert_int_eq(sg_attn_plan_new(&p, &sh, 8, 8, 1, SG_ATTN_KERNEL_COUNT), SG_EINVAL);
    sh.n_kv_head = 3; /* 8 heads do not split into groups of 3 */
    ck_assert_int_eq(sg_attn_plan_new(&p, &sh, 8, 8, 1, SG_ATTN_AUTO), SG_EINVAL);
    sh.n_kv_head = 4;
    sh.head_dim = 0;
    ck_assert_int_eq(sg_attn_plan_new(&p, &sh, 8, 8, 1, SG_ATTN_AUTO), SG_EINVAL);
    ck_assert_ptr_null(p);
    sh.head_dim = 64;
    ck_assert_int_eq(sg_attn_plan_new(&p, &sh, 8, 8, 2, SG_ATTN_PORTABLE), SG_OK);
    ck_assert_str_eq(sg_attn_plan_kernel(p), "portable");
    sg_attn_plan_free(p);
    sg_attn_plan_free(NULL);
}
END_TEST

Suite *attn_suite(void)
{
    Suite *s = suite_create("attn");
    TCase *tc = tcase_create("core");
    const int n = (int)(sizeof cases / sizeof cases[0]);

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_attn_auto, 0, n);
    tcase_add_loop_test(tc, test_attn_portable, 0, n);
    tcase_add_test(tc, test_attn_sparse_rows);
    tcase_add_test(tc, test_attn_plan_errors);
    suite_add_tcase(s, tc);
    return s;
}
