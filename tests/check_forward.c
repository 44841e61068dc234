/*
 * check_forward.c: the Gemma 2 forward pass against float64 goldens (tests/fixtures/tiny-a,
 * from an independent implementation of Hugging Face Gemma2ForCausalLM semantics), for every
 * file format; and the context API: sharded folders, branches == separate passes,
 * truncate + re-append == fresh, incremental appends == one pass, logits subsets, errors.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastmm.h"
#include "lib/engine_fixtures.h"
#include "sg_engine.h"
#include "sg_tok.h"
#include "tensor.h"

Suite *forward_suite(void);

#define GOLDEN_TOL 1e-4
#define MAX_IDS 64

static sg_model *open_model(const char *rel, int n_threads)
{
    char path[4096];
    char err[1024];
    sg_model *m = NULL;
    sg_model_opts o = sg_model_opts_default();

    o.n_threads = n_threads;
    o.load_tokenizer = 0;
    if (rel[0] == '/')
        snprintf(path, sizeof path, "%s", rel);
    else
        fx_path(path, sizeof path, rel);
    int rc = sg_model_open(&m, path, &o, err, sizeof err);
    ck_assert_msg(rc == SG_OK, "sg_model_open(%s): %s", rel, err);
    return m;
}

static sg_ctx *new_ctx(sg_model *m, int n_ctx)
{
    sg_ctx *c = NULL;
    sg_ctx_opts o = sg_ctx_opts_default();

    o.n_ctx = n_ctx;
    o.max_branches = 8;
    o.max_branch_tokens = 128;
    ck_assert_int_eq(sg_ctx_new(&c, m, &o, NULL, 0), SG_OK);
    return c;
}

/* Max |a - b| over n values. */
static double max_diff_fd(const float *a, const double *b, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= mx))
            mx = d; /* NaN propagates as a failure */
    }
    return mx;
}

static double max_diff_ff(const float *a, const float *b, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= mx))
            mx = d;
    }
    return mx;
}

/* Every logit of the last position and of every position against the goldens. */
static void check_golden_tol(const char *rel, const char *label, int n_threads, double tol)
{
    int32_t ids[MAX_IDS];
    size_t n = fx_prompt_ids(ids, MAX_IDS);
    size_t np_last, nv, np_all, nv2;
    double *last = fx_golden("tiny-a/ref_f64_last.txt", &np_last, &nv);
    double *all = fx_golden("tiny-a/ref_f64_all.txt", &np_all, &nv2);
    sg_model *m = open_model(rel, n_threads);
    const sg_model_info *info = sg_model_get_info(m);

    ck_assert_uint_eq(n, 48);
    ck_assert_uint_eq(np_last, 1);
    ck_assert_uint_eq(np_all, n);
    ck_assert_int_eq(info->n_vocab, (int)nv);
    ck_assert_uint_eq(nv, nv2);

    float *out = malloc(n * nv * sizeof *out);
    ck_assert_ptr_nonnull(out);
    sg_ctx *c = new_ctx(m, 64);
    sg_logits_req rq = {NULL, 0, 0, out};
    ck_assert_int_eq(sg_ctx_append(c, ids, n, &rq), SG_OK);
    double e_last = max_diff_fd(out, last, nv);

    sg_ctx_free(c);
    c = new_ctx(m, 64);
    rq.all_positions = 1;
    ck_assert_int_eq(sg_ctx_append(c, ids, n, &rq), SG_OK);
    double e_all = max_diff_fd(out, all, n * nv);
    ck_assert_uint_eq(sg_ctx_computed_tokens(c), n);
    printf("forward golden %-28s threads %d: max |err| last %.3g, all positions %.3g\n",
           label ? label : rel, n_threads, e_last, e_all);
    ck_assert_msg(e_last < tol, "%s: last-position error %g", rel, e_last);
    ck_assert_msg(e_all < tol, "%s: all-positions error %g", rel, e_all);

    sg_ctx_free(c);
    sg_model_close(m);
    free(out);
    free(last);
    free(all);
}

static void check_golden(const char *rel, int n_threads)
{
    check_golden_tol(rel, NULL, n_threads, GOLDEN_TOL);
}

START_TEST(test_golden_hf_f32)
{
    check_golden("tiny-a/hf_f32", 1);
    check_golden("tiny-a/hf_f32", 3);
}
END_TEST

START_TEST(test_golden_hf_bf16)
{
    check_golden("tiny-a/hf_bf16", 2);
}
END_TEST

START_TEST(test_golden_single_file)
{
    /* A .safetensors file with config.json beside it. */
    check_golden("tiny-a/hf_bf16/model.safetensors", 2);
}
END_TEST

/*
 * F16 safetensors: the F32 fixture converted to F16 here (in a temporary folder). The weights
 * are bf16-exact and within F16's range, so they convert exactly and the bound is the same.
 */
START_TEST(test_golden_hf_f16)
{
    char dir[1024], src[4096], path[2048];
    size_t len;
    unsigned char *file;
    uint64_t hlen;
    json_t *hdr = fx_st_read("tiny-a/hf_f32/model.safetensors", &file, &len, &hlen);
    const unsigned char *data = file + 8 + hlen;
    unsigned char *out = malloc(len);
    size_t used = 0;
    const char *key;
    json_t *val;
    json_object_foreach(hdr, key, val) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        json_t *off = json_object_get(val, "data_offsets");
        size_t b = (size_t)json_integer_value(json_array_get(off, 0));
        size_t e = (size_t)json_integer_value(json_array_get(off, 1));
        size_t n0 = used;
        for (size_t i = b; i < e; i += 4) {
            float f;
            memcpy(&f, data + i, 4);
            uint16_t h = sg_f32_to_f16(f);
            out[used++] = (unsigned char)(h & 0xFF);
            out[used++] = (unsigned char)(h >> 8);
        }
        json_object_set_new(val, "dtype", json_string("F16"));
        json_object_set_new(val, "data_offsets",
                            json_pack("[I,I]", (json_int_t)n0, (json_int_t)used));
    }
    fx_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    fx_st_write(path, hdr, out, used);
    fx_path(src, sizeof src, "tiny-a/hf_f32/config.json");
    snprintf(path, sizeof path, "%s/config.json", dir);
    fx_copy(src, path);
    check_golden_tol(dir, "hf_f16 (converted here)", 2, GOLDEN_TOL);
    free(out);
    json_decref(hdr);
    free(file);
    fx_rmdir(dir);
}
END_TEST

START_TEST(test_golden_gguf_f32)
{
    check_golden("tiny-a/model-f32.gguf", 2);
}
END_TEST

START_TEST(test_golden_gguf_bf16)
{
    check_golden("tiny-a/model-bf16.gguf", 2);
}
END_TEST

START_TEST(test_model_info)
{
    sg_model *m = open_model("tiny-a/hf_f32", 1);
    const sg_model_info *i = sg_model_get_info(m);

    fx_check_tiny_a_info(i);
    ck_assert_str_eq(i->format, "safetensors");
    ck_assert_str_eq(i->name, "hf_f32");
    ck_assert_ptr_null(sg_model_tok(m)); /* not asked for */
    /* F32 weights at F32 precision: the AVX2 kernel where the CPU has it, else the portable. */
    ck_assert_str_eq(sg_model_kernel(m), sg_avx2_available() ? "avx2-f32" : "portable-f32");
    ck_assert_str_eq(sg_precision_name(SG_PREC_INT8), "int8");
    ck_assert_str_eq(sg_precision_name(SG_PREC_COUNT), "?");
    sg_model_close(m);
    sg_model_close(NULL);
}
END_TEST

/* Full-vocabulary last-position logits of `ids` from a fresh context. */
static float *fresh_logits(sg_model *m, const int32_t *ids, size_t n)
{
    size_t nv = (size_t)sg_model_get_info(m)->n_vocab;
    float *out = malloc(nv * sizeof *out);
    sg_ctx *c = new_ctx(m, 512);
    sg_logits_req rq = {NULL, 0, 0, out};

    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(sg_ctx_append(c, ids, n, &rq), SG_OK);
    sg_ctx_free(c);
    return out;
}

/* Split the fixture's model.safetensors into two shards + index; logits must be identical. */
START_TEST(test_sharded)
{
    char dir[1024], src[4096], path[4096];
    size_t len;
    unsigned char *file;
    uint64_t hlen;
    json_t *hdr = fx_st_read("tiny-a/hf_f32/model.safetensors", &file, &len, &hlen);
    const unsigned char *data = file + 8 + hlen;

    fx_tmpdir(dir, sizeof dir);
    json_t *shard[2] = {json_object(), json_object()};
    json_t *index = json_object();
    json_t *wmap = json_object();
    size_t used[2] = {0, 0};
    unsigned char *buf[2] = {malloc(len), malloc(len)};
    const char *names[2] = {"model-00001-of-00002.safetensors",
                            "model-00002-of-00002.safetensors"};
    const char *key;
    json_t *val;
    size_t k = 0;
    json_object_foreach(hdr, key, val) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        int s = k++ < 12 ? 0 : 1;
        json_t *off = json_object_get(val, "data_offsets");
        size_t b = (size_t)json_integer_value(json_array_get(off, 0));
        size_t e = (size_t)json_integer_value(json_array_get(off, 1));
        /* One spare byte before each tensor: offsets need not be aligned. */
        buf[s][used[s]++] = 0xAB;
        memcpy(buf[s] + used[s], data + b, e - b);
        json_t *ent = json_deep_copy(val);
        json_object_set_new(ent, "data_offsets",
                            json_pack("[I,I]", (json_int_t)used[s], (json_int_t)(used[s] + e - b)));
        json_object_set_new(shard[s], key, ent);
        json_object_set_new(wmap, key, json_string(names[s]));
        used[s] += e - b;
    }
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[s]);
        fx_st_write(path, shard[s], buf[s], used[s]);
        json_decref(shard[s]);
        free(buf[s]);
    }
    json_object_set_new(index, "metadata", json_pack("{s:i}", "total_size", 0));
    json_object_set_new(index, "weight_map", wmap);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    ck_assert_int_eq(json_dump_file(index, path, JSON_INDENT(2)), 0);
    json_decref(index);
    json_decref(hdr);
    free(file);
    fx_path(src, sizeof src, "tiny-a/hf_f32/config.json");
    snprintf(path, sizeof path, "%s/config.json", dir);
    fx_copy(src, path);

    int32_t ids[MAX_IDS];
    size_t n = fx_prompt_ids(ids, MAX_IDS);
    sg_model *a = open_model("tiny-a/hf_f32", 2);
    sg_model *b = NULL;
    char err[1024];
    sg_model_opts o = sg_model_opts_default();
    o.load_tokenizer = 0;
    int rc = sg_model_open(&b, dir, &o, err, sizeof err);
    ck_assert_msg(rc == SG_OK, "sharded open: %s", err);
    float *za = fresh_logits(a, ids, n);
    float *zb = fresh_logits(b, ids, n);
    ck_assert_double_eq(max_diff_ff(za, zb, 4096), 0.0);
    free(za);
    free(zb);
    sg_model_close(a);
    sg_model_close(b);
    fx_rmdir(dir);
}
END_TEST

/* Branches evaluated as one batch equal separate full passes, and leave the trunk alone. */
START_TEST(test_branches)
{
    int32_t ids[MAX_IDS];
    size_t n = fx_prompt_ids(ids, MAX_IDS);
    sg_model *m = open_model("tiny-a/hf_f32", 2);
    const size_t nv = 4096;
    const size_t trunk = 20;
    /* Branch lengths cross the sliding window (8) and differ from each other. */
    const int32_t *bt[4] = {ids + 20, ids + 25, ids + 30, ids + 40};
    size_t bn[4] = {28, 1, 11, 8};
    float *out = malloc(4 * nv * sizeof *out);
    sg_ctx *c = new_ctx(m, 64);
    int32_t seq[MAX_IDS];

    ck_assert_uint_eq(n, 48);
    ck_assert_int_eq(sg_ctx_append(c, ids, trunk, NULL), SG_OK);
    sg_logits_req rq = {NULL, 0, 0, out};
    ck_assert_int_eq(sg_ctx_branches(c, bt, bn, 4, &rq), SG_OK);
    ck_assert_uint_eq(sg_ctx_len(c), trunk);
    ck_assert_uint_eq(sg_ctx_computed_tokens(c), trunk + 28 + 1 + 11 + 8);
    for (int b = 0; b < 4; b++) {
        memcpy(seq, ids, trunk * sizeof *seq);
        memcpy(seq + trunk, bt[b], bn[b] * sizeof *seq);
        float *ref = fresh_logits(m, seq, trunk + bn[b]);
        double d = max_diff_ff(out + (size_t)b * nv, ref, nv);
        printf("branch %d (%zu tokens) vs a separate full pass: max |diff| %.3g\n", b, bn[b], d);
        ck_assert_msg(d < 1e-5, "branch %d differs from a full pass by %g", b, d);
        free(ref);
    }
    /* Subset of ids: the same values as the full rows. */
    int32_t want[3] = {4095, 0, 1379};
    float sub[4 * 3];
    sg_logits_req rs = {want, 3, 0, sub};
    ck_assert_int_eq(sg_ctx_branches(c, bt, bn, 4, &rs), SG_OK);
    for (int b = 0; b < 4; b++)
        for (int i = 0; i < 3; i++)
            ck_assert_float_eq(sub[b * 3 + i], out[(size_t)b * nv + (size_t)want[i]]);

    /* The trunk is unchanged: continuing it equals a fresh pass over the whole sequence. */
    rq.out = out;
    ck_assert_int_eq(sg_ctx_append(c, ids + trunk, n - trunk, &rq), SG_OK);
    float *ref = fresh_logits(m, ids, n);
    ck_assert_double_lt(max_diff_ff(out, ref, nv), 1e-5);
    free(ref);

    /* Errors: too many branches, an empty branch, all_positions, tokens over the cap. */
    ck_assert_int_eq(sg_ctx_branches(c, bt, bn, 9, &rq), SG_ERANGE);
    size_t bad_n[2] = {3, 0};
    ck_assert_int_eq(sg_ctx_branches(c, bt, bad_n, 2, &rq), SG_EINVAL);
    ck_assert_ptr_nonnull(strstr(sg_ctx_errmsg(c), "branch 1"));
    sg_logits_req ra = {NULL, 0, 1, out};
    ck_assert_int_eq(sg_ctx_branches(c, bt, bn, 4, &ra), SG_EINVAL);
    static int32_t big[200];
    const int32_t *bb[1] = {big};
    size_t bbn[1] = {129};
    ck_assert_int_eq(sg_ctx_branches(c, bb, bbn, 1, &rq), SG_ERANGE);
    int32_t oov[1] = {4096};
    const int32_t *bo[1] = {oov};
    size_t bon[1] = {1};
    ck_assert_int_eq(sg_ctx_branches(c, bo, bon, 1, &rq), SG_EINVAL);
    ck_assert_ptr_nonnull(strstr(sg_ctx_errmsg(c), "4096"));

    free(out);
    sg_ctx_free(c);
    sg_model_close(m);
}
END_TEST

/* Truncating to a prefix and appending something else equals a fresh pass. */
START_TEST(test_truncate)
{
    int32_t ids[MAX_IDS];
    size_t n = fx_prompt_ids(ids, MAX_IDS);
    sg_model *m = open_model("tiny-a/hf_f32", 2);
    sg_ctx *c = new_ctx(m, 64);
    float out[4096];
    sg_logits_req rq = {NULL, 0, 0, out};
    int32_t alt[MAX_IDS];

    ck_assert_int_eq(sg_ctx_append(c, ids, n, &rq), SG_OK);
    ck_assert_uint_eq(sg_ctx_len(c), n);
    ck_assert_int_eq(sg_ctx_truncate(c, n + 1), SG_EINVAL);
    ck_assert_int_eq(sg_ctx_truncate(c, 17), SG_OK);
    ck_assert_uint_eq(sg_ctx_len(c), 17);
    ck_assert_mem_eq(sg_ctx_tokens(c), ids, 17 * sizeof *ids);
    /* A different continuation. */
    memcpy(alt, ids, 17 * sizeof *alt);
    for (size_t i = 17; i < 40; i++)
        alt[i] = (int32_t)((ids[i] * 7 + 13) % 4096);
    ck_assert_int_eq(sg_ctx_append(c, alt + 17, 23, &rq), SG_OK);
    ck_assert_mem_eq(sg_ctx_tokens(c), alt, 40 * sizeof *alt);
    float *ref = fresh_logits(m, alt, 40);
    ck_assert_double_lt(max_diff_ff(out, ref, 4096), 1e-5);
    free(ref);
    /* Back to the original continuation: equals the golden run again. */
    ck_assert_int_eq(sg_ctx_truncate(c, 17), SG_OK);
    ck_assert_int_eq(sg_ctx_append(c, ids + 17, n - 17, &rq), SG_OK);
    ref = fresh_logits(m, ids, n);
    ck_assert_double_lt(max_diff_ff(out, ref, 4096), 1e-5);
    free(ref);
    sg_ctx_free(c);
    sg_model_close(m);
}
END_TEST

/* Appending in pieces (1 token, odd sizes, across the 256-row pass) equals one append. */
START_TEST(test_incremental)
{
    enum { N = 300 };
    static int32_t ids[N];
    static float one[N * 2], inc[N * 2];
    int32_t want[2] = {17, 3000};
    sg_model *m = open_model("tiny-a/hf_bf16", 2);
    sg_ctx *c = new_ctx(m, N);
    uint32_t s = 7;

    for (int i = 0; i < N; i++) {
        s = s * 1103515245u + 12345u;
        ids[i] = i == 0 ? 2 : (int32_t)((s >> 8) % 4096);
    }
    sg_logits_req rq = {want, 2, 1, one};
    ck_assert_int_eq(sg_ctx_append(c, ids, N, &rq), SG_OK);
    sg_ctx_free(c);

    c = new_ctx(m, N);
    const size_t pieces[] = {1, 1, 5, 120, 150, 23};
    size_t at = 0;
    for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
        sg_logits_req r2 = {want, 2, 1, inc + at * 2};
        ck_assert_int_eq(sg_ctx_append(c, ids + at, pieces[p], &r2), SG_OK);
        at += pieces[p];
    }
    ck_assert_uint_eq(at, N);
    ck_assert_double_lt(max_diff_ff(one, inc, N * 2), 1e-5);
    /* The trunk is full now. */
    ck_assert_int_eq(sg_ctx_append(c, ids, 1, NULL), SG_ERANGE);
    ck_assert_uint_eq(sg_ctx_len(c), N);
    ck_assert_uint_eq(sg_ctx_computed_tokens(c), N);
    sg_ctx_free(c);
    sg_model_close(m);
}
END_TEST

START_TEST(test_append_errors)
{
    sg_model *m = open_model("tiny-a/hf_f32", 1);
    sg_ctx *c = new_ctx(m, 8);
    int32_t ids[3] = {2, 4096, 5};
    int32_t neg[1] = {-1};
    float out[4];
    int32_t want[1] = {99999};
    sg_logits_req rq = {want, 1, 0, out};

    ck_assert_int_eq(sg_ctx_append(c, ids, 3, NULL), SG_EINVAL);
    ck_assert_ptr_nonnull(strstr(sg_ctx_errmsg(c), "token[1] = 4096"));
    ck_assert_uint_eq(sg_ctx_len(c), 0);
    ck_assert_int_eq(sg_ctx_append(c, neg, 1, NULL), SG_EINVAL);
    ck_assert_int_eq(sg_ctx_append(c, ids, 1, &rq), SG_EINVAL);
    ck_assert_ptr_nonnull(strstr(sg_ctx_errmsg(c), "99999"));
    ck_assert_uint_eq(sg_ctx_len(c), 0);
    ck_assert_uint_eq(sg_ctx_computed_tokens(c), 0);
    static int32_t nine[9] = {2, 3, 4, 5, 6, 7, 8, 9, 10};
    ck_assert_int_eq(sg_ctx_append(c, nine, 9, NULL), SG_ERANGE);
    ck_assert_int_eq(sg_ctx_append(c, nine, 8, NULL), SG_OK);
    ck_assert_uint_eq(sg_ctx_len(c), 8);
    sg_ctx_free(c);
    sg_ctx_free(NULL);

    /* A context longer than the model's positions is refused. */
    sg_ctx_opts o = sg_ctx_opts_default();
    o.n_ctx = 8193;
    ck_assert_int_eq(sg_ctx_new(&c, m, &o, NULL, 0), SG_EINVAL);
    ck_assert_ptr_null(c);
    {
        char err[256] = "";

        ck_assert_int_eq(sg_ctx_new(&c, m, &o, err, sizeof err), SG_EINVAL);
        ck_assert_str_eq(err, "sg_ctx_new: n_ctx 8193 is over the model's 8192 positions");
        o.n_ctx = 0;
        o.precision = 7;
        ck_assert_int_eq(sg_ctx_new(&c, m, &o, err, sizeof err), SG_EINVAL);
        ck_assert_str_eq(err, "sg_ctx_new: unknown precision 7");
    }
    sg_model_close(m);
}
END_TEST

/* The tokenizer comes with the model folder and reproduces the fixture's ids. */
START_TEST(test_tokenizer_loaded)
{
    char path[4096];
    char err[1024];
    sg_model *m = NULL;
    sg_model_opts o = sg_model_opts_default();
    int32_t want[MAX_IDS];
    int32_t got[MAX_IDS];
    size_t n_want = fx_prompt_ids(want, MAX_IDS);
    size_t n = 0;
    size_t len;

    fx_path(path, sizeof path, "tiny-a/hf_bf16");
    ck_assert_msg(sg_model_open(&m, path, &o, err, sizeof err) == SG_OK, "%s", err);
    const sg_tok *t = sg_model_tok(m);
    ck_assert_ptr_nonnull(t);
    fx_path(path, sizeof path, "tiny-a/prompt.txt");
    char *text = (char *)fx_read(path, &len);
    /* The whole file, final newline included (the last id, 17, is <0x0A>). */
    got[0] = sg_tok_bos(t);
    ck_assert_int_eq(sg_tok_encode(t, text, len, SG_TOK_TEMPLATE, got + 1, MAX_IDS - 1, &n),
                     SG_OK);
    ck_assert_uint_eq(n + 1, n_want);
    ck_assert_mem_eq(got, want, n_want * sizeof *got);
    free(text);
    sg_model_close(m);

    /* A GGUF carries its tokenizer in its metadata. */
    fx_path(path, sizeof path, "tiny-a/model-bf16.gguf");
    ck_assert_msg(sg_model_open(&m, path, &o, err, sizeof err) == SG_OK, "%s", err);
    ck_assert_ptr_nonnull(sg_model_tok(m));
    ck_assert_int_eq(sg_tok_bos(sg_model_tok(m)), 2);
    ck_assert_str_eq(sg_model_get_info(m)->format, "gguf");
    sg_model_close(m);
}
END_TEST

Suite *forward_suite(void)
{
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_golden_hf_f32);
    tcase_add_test(tc, test_golden_hf_bf16);
    tcase_add_test(tc, test_golden_single_file);
    tcase_add_test(tc, test_golden_hf_f16);
    tcase_add_test(tc, test_golden_gguf_f32);
    tcase_add_test(tc, test_golden_gguf_bf16);
    tcase_add_test(tc, test_model_info);
    tcase_add_test(tc, test_sharded);
    tcase_add_test(tc, test_branches);
    tcase_add_test(tc, test_truncate);
    tcase_add_test(tc, test_incremental);
    tcase_add_test(tc, test_append_errors);
    tcase_add_test(tc, test_tokenizer_loaded);
    suite_add_tcase(s, tc);
    return s;
}
