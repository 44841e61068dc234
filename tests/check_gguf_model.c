/*
 * check_gguf_model.c: whole models from GGUF files through the public engine API.
 *
 * - tiny-a as llama.cpp's converter wrote it (F32 and BF16): every logit of every position
 *   within 1e-4 of the float64 goldens, as for the safetensors files.
 * - The quantized fixtures (tools/make-quant-fixtures.sh): against the float64 logits of the
 *   same quantized weights (so dequantization and the forward pass must be exact to 1e-4), and
 *   against the float64 logits of the unquantized model within the tolerance measured for each
 *   type (docs/GGUF.md): max |error|, relative RMS error, and the same argmax at every row.
 * - Files the model loader must refuse: a tensor type the engine cannot read, shapes that do not
 *   match the metadata.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/engine_fixtures.h"
#include "sg_engine.h"
#include "sg_tok.h"

Suite *gguf_model_suite(void);

#define EXACT_TOL 1e-4

static sg_model *open_model(const char *rel, int load_tok)
{
    char path[4096];
    char err[1024];
    sg_model *m = NULL;
    sg_model_opts o = sg_model_opts_default();

    o.n_threads = 2;
    o.load_tokenizer = load_tok;
    fx_path(path, sizeof path, rel);
    int rc = sg_model_open(&m, path, &o, err, sizeof err);
    ck_assert_msg(rc == SG_OK, "sg_model_open(%s): %s", rel, err);
    return m;
}

/* The ids of a reference file's "tokens" line. */
static size_t ref_tokens(const char *rel, int32_t *ids, size_t cap)
{
    char path[4096];
    size_t len, n = 0;

    fx_path(path, sizeof path, rel);
    char *s = (char *)fx_read(path, &len);
    char *p = strstr(s, "\ntokens ");
    ck_assert_ptr_nonnull(p);
    p += 8;
    while (*p && *p != '\n') {
        char *end;
        long v = strtol(p, &end, 10);
        ck_assert(end != p && n < cap);
        ids[n++] = (int32_t)v;
        p = end;
        while (*p == ' ')
            p++;
    }
    free(s);
    return n;
}

/* Logits of `ids` (all positions if all, else the last), malloc'd. */
static float *run(sg_model *m, const int32_t *ids, size_t n, int all)
{
    sg_ctx *c = NULL;
    sg_ctx_opts o = sg_ctx_opts_default();
    int nv = sg_model_get_info(m)->n_vocab;
    float *out = malloc((all ? n : 1) * (size_t)nv * sizeof *out);

    ck_assert_ptr_nonnull(out);
    o.n_ctx = 64;
    ck_assert_int_eq(sg_ctx_new(&c, m, &o, NULL, 0), SG_OK);
    sg_logits_req rq = {NULL, 0, all, out};
    ck_assert_int_eq(sg_ctx_append(c, ids, n, &rq), SG_OK);
    sg_ctx_free(c);
    return out;
}

typedef struct stats {
    double max_abs, rel_rms;
    size_t argmax_same, rows;
} stats;

static stats compare(const float *z, const double *ref, size_t rows, size_t nv)
{
    stats s = {0, 0, 0, rows};
    double se = 0, sr = 0;

    for (size_t r = 0; r < rows; r++) {
        size_t a = 0, b = 0;
        for (size_t j = 0; j < nv; j++) {
            double d = fabs((double)z[r * nv + j] - ref[r * nv + j]);
            if (!(d <= s.max_abs))
                s.max_abs = d; /* NaN propagates */
            se += d * d;
            sr += ref[r * nv + j] * ref[r * nv + j];
            if (z[r * nv + j] > z[r * nv + a])
                a = j;
            if (ref[r * nv + j] > ref[r * nv + b])
                b = j;
        }
        s.argmax_same += a == b;
    }
    s.rel_rms = sqrt(se / sr);
    return s;
}

/* GGUF tiny-a against the goldens, last and all positions. */
static void check_golden(const char *rel)
{
    int32_t ids[64];
    size_t n = fx_prompt_ids(ids, 64), np, nv, np_all, nv2;
    double *last = fx_golden("tiny-a/ref_f64_last.txt", &np, &nv);
    double *all = fx_golden("tiny-a/ref_f64_all.txt", &np_all, &nv2);
    sg_model *m = open_model(rel, 0);

    ck_assert_str_eq(sg_model_get_info(m)->format, "gguf");
    ck_assert_int_eq(sg_model_get_info(m)->n_vocab, (int)nv);
    ck_assert_uint_eq(np_all, n);
    float *z = run(m, ids, n, 0);
    stats s1 = compare(z, last, 1, nv);
    free(z);
    z = run(m, ids, n, 1);
    stats s2 = compare(z, all, n, nv);
    free(z);
    printf("gguf golden %-24s max |err| last %.3g, all positions %.3g\n", rel, s1.max_abs,
           s2.max_abs);
    ck_assert_msg(s1.max_abs < EXACT_TOL, "%s: last-position error %g", rel, s1.max_abs);
    ck_assert_msg(s2.max_abs < EXACT_TOL, "%s: all-positions error %g", rel, s2.max_abs);
    sg_model_close(m);
    free(last);
    free(all);
}

START_TEST(test_golden_gguf_f32)
{
    check_golden("tiny-a/model-f32.gguf");
}
END_TEST

START_TEST(test_golden_gguf_bf16)
{
    check_golden("tiny-a/model-bf16.gguf");
}
END_TEST

/* The tokenizer comes from the GGUF metadata when asked for. */
START_TEST(test_gguf_tokenizer)
{
    sg_model *m = open_model("tiny-a/model-f32.gguf", 1);
    const sg_tok *t = sg_model_tok(m);

    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(sg_tok_n_vocab(t), 4096);
    ck_assert_int_eq(sg_tok_bos(t), 2);
    sg_model_close(m);

    /* a GGUF without tokenizer metadata opens without a tokenizer, like a folder without one */
    m = open_model("quant/tiny-k-q6_k.gguf", 1);
    ck_assert_ptr_null(sg_model_tok(m));
    sg_model_close(m);
}
END_TEST

/*
 * One quantized fixture: `model` against `own_ref` (float64 logits of its own dequantized
 * weights) within EXACT_TOL, and against `f32_ref` within the stated tolerances.
 */
static void check_quant(const char *model, const char *own_ref, const char *f32_ref,
                        double tol_abs, double tol_rel)
{
    int32_t ids[64];
    size_t n = ref_tokens(own_ref, ids, 64), np1, nv1, np2, nv2;
    double *own = fx_golden(own_ref, &np1, &nv1);
    double *f32 = fx_golden(f32_ref, &np2, &nv2);
    sg_model *m = open_model(model, 0);

    ck_assert_uint_eq(np1, np2);
    ck_assert_uint_eq(nv1, nv2);
    ck_assert_int_eq(sg_model_get_info(m)->n_vocab, (int)nv1);
    ck_assert(np1 == 1 || np1 == n);
    float *z = run(m, ids, n, np1 > 1);
    stats se = compare(z, own, np1, nv1);
    stats sq = compare(z, f32, np1, nv1);
    printf("gguf %-24s vs its own weights: max |err| %.3g; vs f32: max |err| %.3g "
           "(tolerance %g), relative RMS %.4f (tolerance %g), argmax %zu/%zu\n",
           model, se.max_abs, sq.max_abs, tol_abs, sq.rel_rms, tol_rel, sq.argmax_same,
           sq.rows);
    ck_assert_msg(se.max_abs < EXACT_TOL, "%s: error against its own weights %g", model,
                  se.max_abs);
    ck_assert_msg(sq.max_abs <= tol_abs, "%s: max error %g against f32", model, sq.max_abs);
    ck_assert_msg(sq.rel_rms <= tol_rel, "%s: relative RMS error %g against f32", model,
                  sq.rel_rms);
    ck_assert_uint_eq(sq.argmax_same, sq.rows);
    free(z);
    free(own);
    free(f32);
    sg_model_close(m);
}

/* The quantized fixtures; tolerances: 1.5 x what was measured (docs/GGUF.md), rounded. */
static const struct {
    const char *model, *own_ref, *f32_ref;
    double tol_abs, tol_rel;
} quant_cases[] = {
    {"quant/tiny-a-q8_0.gguf", "quant/tiny-a-q8_0.ref.txt", "tiny-a/ref_f64_last.txt", 0.35,
     0.013},
    {"quant/tiny-a-q4_0.gguf", "quant/tiny-a-q4_0.ref.txt", "tiny-a/ref_f64_last.txt", 1.9, 0.07},
    {"quant/tiny-k-q4_k.gguf", "quant/tiny-k-q4_k.ref.txt", "quant/tiny-k-f32.ref.txt", 3.0, 0.07},
    {"quant/tiny-k-q6_k.gguf", "quant/tiny-k-q6_k.ref.txt", "quant/tiny-k-f32.ref.txt", 1.5,
     0.045},
    {"quant/tiny-k-mix.gguf", "quant/tiny-k-mix.ref.txt", "quant/tiny-k-f32.ref.txt", 1.9, 0.042},
};

START_TEST(test_quant)
{
    check_quant(quant_cases[_i].model, quant_cases[_i].own_ref, quant_cases[_i].f32_ref,
                quant_cases[_i].tol_abs, quant_cases[_i].tol_rel);
}
END_TEST

/* Offset of the first occurrence of `s` (as bytes) in buf, after `from`. */
static size_t find(const unsigned char *buf, size_t len, const char *s, size_t from)
{
    size_t k = strlen(s);

    for (size_t i = from; i + k <= len; i++)
        if (memcmp(buf + i, s, k) == 0)
            return i;
    ck_abort_msg("'%s' not found", s);
    return 0;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void expect_open_fail(const char *path, int code, const char *sub1, const char *sub2)
{
    char err[1024] = "";
    sg_model *m = (sg_model *)0x1;
    sg_model_opts o = sg_model_opts_default();

    o.load_tokenizer = 0;
    int rc = sg_model_open(&m, path, &o, err, sizeof err);
    ck_assert_msg(rc == code, "rc %d (want %d): %s", rc, code, err);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err, sub1) != NULL, "'%s' not in: %s", sub1, err);
    ck_assert_msg(strstr(err, sub2) != NULL, "'%s' not in: %s", sub2, err);
}

START_TEST(test_gguf_model_errors)
{
    char src[4096], dir[4096], path[4200];
    size_t len;

    fx_path(src, sizeof src, "tiny-a/model-f32.gguf");
    fx_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bad.gguf", dir);

    /* blk.0.attn_norm.weight: F32 -> I32 (same size): valid GGUF, not a type the engine reads */
    unsigned char *b = fx_read(src, &len);
    size_t at = find(b, len, "blk.0.attn_norm.weight", 0) + strlen("blk.0.attn_norm.weight");
    ck_assert_uint_eq(b[at], 1);     /* n_dims */
    put32(b + at + 4 + 8, 26);       /* after n_dims and ne[0]: the type */
    fx_write(path, b, len);
    expect_open_fail(path, SG_EUNSUPPORTED, "blk.0.attn_norm.weight", "type I32");
    free(b);

    /* embedding_length 64 -> 32: every tensor's shape disagrees with the metadata */
    b = fx_read(src, &len);
    at = find(b, len, "gemma2.embedding_length", 0) + strlen("gemma2.embedding_length");
    ck_assert_uint_eq(b[at], 4); /* u32 */
    put32(b + at + 4, 32);
    fx_write(path, b, len);
    expect_open_fail(path, SG_ESHAPE, "bad.gguf", "expected shape");
    free(b);

    /* general.architecture "gemma2" -> "gemma4" */
    b = fx_read(src, &len);
    at = find(b, len, "gemma2", find(b, len, "general.architecture", 0));
    b[at + 5] = '4';
    fx_write(path, b, len);
    expect_open_fail(path, SG_EUNSUPPORTED, "bad.gguf", "architecture 'gemma4'");
    free(b);

    /* truncated in the middle of the tensor data */
    b = fx_read(src, &len);
    fx_write(path, b, len / 2);
    expect_open_fail(path, SG_EFORMAT, "bad.gguf", "outside the data section");
    free(b);
    fx_rmdir(dir);
}
END_TEST

Suite *gguf_model_suite(void)
{
    Suite *s = suite_create("gguf_model");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_golden_gguf_f32);
    tcase_add_test(tc, test_golden_gguf_bf16);
    tcase_add_test(tc, test_gguf_tokenizer);
    tcase_add_loop_test(tc, test_quant, 0, (int)(sizeof quant_cases / sizeof quant_cases[0]));
    tcase_add_test(tc, test_gguf_model_errors);
    suite_add_tcase(s, tc);
    return s;
}
