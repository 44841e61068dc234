/*
 * check_precision.c: how far the BF16 and INT8 compute precisions (fastmm.h) move the logits
 * and ShieldGemma's score P = softmax(z_Yes, z_No)[0] from the float64 goldens of tiny-a
 * (tests/fixtures/tiny-a: 48 positions x 4096 logits), next to the F32 path's 1e-4.
 *
 * Bounds, from measurements on an AVX2 machine (docs/BENCHMARKS.md) with a margin:
 *   F32   logits within 1e-4 (the numerics contract).
 *   BF16  tiny-a's weights are exact in bf16, so where BF16 computes in f32 (AVX2, avx2-bf16)
 *         it must stay within 1e-4 too; where products are bf16 (dnnl-bf16: x rounded to 8
 *         bits of mantissa) the logits may move by up to BF16_LOGIT_TOL.
 *   INT8  weights to 7 (or 8) bits per row, activations to 8 bits per token: logits within
 *         INT8_LOGIT_TOL, P within INT8_P_TOL at every position.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastmm.h"
#include "lib/engine_fixtures.h"
#include "sg_engine.h"

Suite *precision_suite(void);

#define F32_TOL 1e-4
#define BF16_LOGIT_TOL 0.1
#define INT8_LOGIT_TOL 0.5
#define INT8_P_TOL 0.03
#define YES 3553
#define NO 1294

struct dev {
    double logit; /* max |z - z_ref| over positions and vocabulary */
    double p;     /* max |P - P_ref| over positions */
    double mean_p;
};

static double p_yes(double zy, double zn)
{
    return 1.0 / (1.0 + exp(zn - zy));
}

/* Run tiny-a (hf_f32) at `prec` over the prompt, all positions, and compare with the goldens. */
static struct dev deviation(sg_precision prec, const char *rel)
{
    char path[4096];
    char err[1024];
    int32_t ids[64];
    size_t n = fx_prompt_ids(ids, 64);
    size_t npos, nv;
    double *ref = fx_golden("tiny-a/ref_f64_all.txt", &npos, &nv);
    sg_model *m = NULL;
    sg_ctx *c = NULL;
    sg_model_opts mo = sg_model_opts_default();
    sg_ctx_opts co = sg_ctx_opts_default();
    float *out;
    struct dev d = {0, 0, 0};

    ck_assert_uint_eq(npos, n);
    mo.precision = prec;
    mo.n_threads = 2;
    mo.load_tokenizer = 0;
    fx_path(path, sizeof path, rel);
    ck_assert_msg(sg_model_open(&m, path, &mo, err, sizeof err) == SG_OK, "%s", err);
    co.n_ctx = 64;
    ck_assert_int_eq(sg_ctx_new(&c, m, &co, NULL, 0), SG_OK);
    out = malloc(n * nv * sizeof *out);
    ck_assert_ptr_nonnull(out);
    sg_logits_req rq = {NULL, 0, 1, out};
    ck_assert_int_eq(sg_ctx_append(c, ids, n, &rq), SG_OK);
    for (size_t i = 0; i < n; i++) {
        const float *z = out + i * nv;
        const double *zr = ref + i * nv;
        double dp;

        for (size_t v = 0; v < nv; v++) {
            double e = fabs((double)z[v] - zr[v]);

            if (!(e <= d.logit))
                d.logit = e;
        }
        dp = fabs(p_yes(z[YES], z[NO]) - p_yes(zr[YES], zr[NO]));
        if (!(dp <= d.p))
            d.p = dp;
        d.mean_p += dp / (double)n;
    }
    free(out);
    free(ref);
    sg_ctx_free(c);
    sg_model_close(m);
    return d;
}

START_TEST(test_f32_golden)
{
    struct dev d = deviation(SG_PREC_F32, "tiny-a/hf_f32");

    ck_assert_msg(d.logit < F32_TOL, "f32: max |dz| %g", d.logit);
    d = deviation(SG_PREC_F32, "tiny-a/hf_bf16"); /* bf16 weights widened exactly */
    ck_assert_msg(d.logit < F32_TOL, "f32 of bf16 weights: max |dz| %g", d.logit);
}
END_TEST

START_TEST(test_bf16_bound)
{
    struct dev d = deviation(SG_PREC_BF16, "tiny-a/hf_f32");
    struct dev b = deviation(SG_PREC_BF16, "tiny-a/hf_bf16");
    char err[256];
    sg_fastmat *f = NULL;
    const float w[16 * 16] = {0};
    sg_tensor t = {"probe", SG_DT_F32, 2, {16, 16, 0, 0}, w, sizeof w};
    int bf16_products;

    /* Which kernel BF16 gets on this machine decides the bound. */
    ck_assert_int_eq(sg_fastmat_new(&f, &t, SG_PREC_BF16, err, sizeof err), SG_OK);
    bf16_products = strcmp(sg_fastmat_kernel(f), "dnnl-bf16") == 0;
    sg_fastmat_free(f);
    printf("precision: bf16 (%s): max |dz| %.3g, max |dP| %.3g, mean |dP| %.3g\n",
           bf16_products ? "bf16 products" : "f32 products", d.logit, d.p, d.mean_p);
    if (bf16_products) {
        ck_assert_msg(d.logit < BF16_LOGIT_TOL, "bf16: max |dz| %g", d.logit);
        ck_assert_msg(b.logit < BF16_LOGIT_TOL, "bf16 (bf16 file): max |dz| %g", b.logit);
    } else {
        ck_assert_msg(d.logit < F32_TOL, "bf16 (f32 products): max |dz| %g", d.logit);
        ck_assert_msg(b.logit < F32_TOL, "bf16 (f32 products, bf16 file): max |dz| %g", b.logit);
    }
}
END_TEST

START_TEST(test_int8_bound)
{
    struct dev d = deviation(SG_PREC_INT8, "tiny-a/hf_f32");

    printf("precision: int8: max |dz| %.3g, max |dP| %.3g, mean |dP| %.3g\n", d.logit, d.p,
           d.mean_p);
    ck_assert_msg(d.logit < INT8_LOGIT_TOL, "int8: max |dz| %g", d.logit);
    ck_assert_msg(d.p < INT8_P_TOL, "int8: max |dP| %g", d.p);
    /* It does quantize: an int8 path that silently ran in f32 would match to 1e-5. */
    ck_assert_msg(d.logit > 1e-4, "int8: max |dz| %g, as exact as f32", d.logit);
}
END_TEST

Suite *precision_suite(void)
{
    Suite *s = suite_create("precision");
    TCase *tc = tcase_create("goldens");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_f32_golden);
    tcase_add_test(tc, test_bf16_bound);
    tcase_add_test(tc, test_int8_bound);
    suite_add_tcase(s, tc);
    return s;
}
