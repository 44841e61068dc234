/*
 * check_gguf.c: the GGUF reader and the Gemma loader: the tiny-a goldens (as llama.cpp's
 * converter wrote them), files built here byte by byte (every metadata type, defaults, Gemma 1
 * names), and malformed files, each of which must fail with the right code and a message that
 * names the problem.
 */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/engine_fixtures.h"
#include "gguf_gemma.h"
#include "sg_engine.h"
#include "tensor.h"

Suite *gguf_suite(void);

/* ---- a GGUF writer for the tests ------------------------------------------------------------ */

typedef struct gb {
    uint8_t *p;
    size_t n, cap;
} gb;

static void gb_bytes(gb *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    if (n)
        memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void gb_u8(gb *b, uint8_t v)
{
    gb_bytes(b, &v, 1);
}

static void gb_u32(gb *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        gb_u8(b, (uint8_t)(v >> (8 * i)));
}

static void gb_u64(gb *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        gb_u8(b, (uint8_t)(v >> (8 * i)));
}

static void gb_str(gb *b, const char *s)
{
    gb_u64(b, strlen(s));
    gb_bytes(b, s, strlen(s));
}

static void gb_f32(gb *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    gb_u32(b, u);
}

/* Key-value writers; each counts itself in *n. */
static void kv_u32(gb *b, int *n, const char *k, uint32_t v)
{
    gb_str(b, k);
    gb_u32(b, SG_GGUF_U32);
    gb_u32(b, v);
    (*n)++;
}

static void kv_f32(gb *b, int *n, const char *k, float v)
{
    gb_str(b, k);
    gb_u32(b, SG_GGUF_F32);
    gb_f32(b, v);
    (*n)++;
}

static void kv_str(gb *b, int *n, const char *k, const char *v)
{
    gb_str(b, k);
    gb_u32(b, SG_GGUF_STRING);
    gb_str(b, v);
    (*n)++;
}

typedef struct tdesc {
    const char *name;
    int nd;
    uint64_t ne[5];
    uint32_t type;
    int64_t off; /* -1: next aligned offset */
} tdesc;

/* ggml type sizes for the types the tests use */
static size_t tbytes(const tdesc *t)
{
    uint64_t n = 1;
    for (int i = 0; i < t->nd && i < 5; i++)
        n *= t->ne[i];
    switch (t->type) {
    case 0: return n * 4;
    case 1: case 30: return n * 2;
    case 8: return n / 32 * 34;
    case 2: return n / 32 * 18;
    case 12: return n / 256 * 144;
    case 13: return n / 256 * 176;
    case 7: return n / 32 * 24;
    case 14: return n / 256 * 210;
    default: return n;
    }
}

typedef struct mspec {
    uint32_t version;        /* 0: 3 */
    const char *arch;        /* NULL: gemma2 */
    const char *skip_key;    /* a standard key to leave out */
    const char *str_key;     /* a standard key to write as a string instead of u32 */
    int alignment;           /* 0: no general.alignment key (default 32); <0: as a string */
    int n_layer;             /* 0: 1 */
    const tdesc *t;          /* NULL: the standard tensors */
    size_t nt;
    void (*extra)(gb *b, int *n); /* more key-value pairs */
    int64_t data_extra;      /* bytes added to (or, negative, cut from) the data section */
} mspec;

/* d_model 32, 2 heads of 16 (1 KV head), ffn 64, vocab 8 */
static const tdesc std_tensors[] = {
    {"token_embd.weight", 2, {32, 8}, 0, -1},
    {"blk.0.attn_q.weight", 2, {32, 32}, 1, -1},
    {"blk.0.ffn_up.weight", 2, {32, 64}, 8, -1},
    {"output_norm.weight", 1, {32}, 0, -1},
};

/* Build a GGUF in *out: standard Gemma 2 keys per the spec, tensors, aligned data filled with
 * a byte pattern. */
static void build(gb *out, const mspec *s)
{
    gb kv = {0}, ti = {0};
    int nkv = 0;
    const char *arch = s->arch ? s->arch : "gemma2";
    const tdesc *t = s->t ? s->t : std_tensors;
    size_t nt = s->t ? s->nt : sizeof std_tensors / sizeof std_tensors[0];
    size_t align = s->alignment > 0 ? (size_t)s->alignment : 32;
    static const struct {
        const char *suffix;
        uint32_t v;
    } std_keys[] = {
        {"context_length", 128},        {"embedding_length", 32},
        {"block_count", 1},             {"feed_forward_length", 64},
        {"attention.head_count", 2},    {"attention.head_count_kv", 1},
    };
    char key[128];

    memset(out, 0, sizeof *out);
    if (!s->skip_key || strcmp(s->skip_key, "general.architecture") != 0)
        kv_str(&kv, &nkv, "general.architecture", arch);
    if (s->alignment > 0)
        kv_u32(&kv, &nkv, "general.alignment", (uint32_t)s->alignment);
    else if (s->alignment < 0)
        kv_str(&kv, &nkv, "general.alignment", "32");
    for (size_t i = 0; i < sizeof std_keys / sizeof std_keys[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", arch, std_keys[i].suffix);
        if (s->skip_key && strcmp(s->skip_key, key) == 0)
            continue;
        uint32_t v = std_keys[i].v;
        if (strcmp(std_keys[i].suffix, "block_count") == 0 && s->n_layer)
            v = (uint32_t)s->n_layer;
        if (s->str_key && strcmp(s->str_key, key) == 0)
            kv_str(&kv, &nkv, key, "12");
        else
            kv_u32(&kv, &nkv, key, v);
    }
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    if (!s->skip_key || strcmp(s->skip_key, key) != 0)
        kv_f32(&kv, &nkv, key, 1e-6f);
    if (s->extra)
        s->extra(&kv, &nkv);

    uint64_t off = 0, end = 0;
    for (size_t i = 0; i < nt; i++) {
        gb_str(&ti, t[i].name);
        gb_u32(&ti, (uint32_t)t[i].nd);
        for (int d = 0; d < t[i].nd; d++)
            gb_u64(&ti, t[i].ne[d]);
        gb_u32(&ti, t[i].type);
        uint64_t o = t[i].off >= 0 ? (uint64_t)t[i].off : off;
        gb_u64(&ti, o);
        uint64_t e = o + tbytes(&t[i]);
        off = (e + align - 1) / align * align;
        if (e > end)
            end = e;
    }

    gb_bytes(out, "GGUF", 4);
    gb_u32(out, s->version ? s->version : 3);
    gb_u64(out, nt);
    gb_u64(out, (uint64_t)nkv);
    gb_bytes(out, kv.p, kv.n);
    gb_bytes(out, ti.p, ti.n);
    while (out->n % align)
        gb_u8(out, 0);
    int64_t dsize = (int64_t)end + s->data_extra;
    for (int64_t i = 0; i < dsize; i++)
        gb_u8(out, (uint8_t)(i * 7));
    free(kv.p);
    free(ti.p);
}

/* Expect sg_gguf_open_mem to fail with `code` and a message containing each of the NULL-ended
 * substrings. */
static void expect_open_fail(const gb *b, int code, ...)
{
    sg_gguf *g = (sg_gguf *)0x1;
    char err[512] = "";
    int rc = sg_gguf_open_mem(&g, b->p, b->n, "bad.gguf", err, sizeof err);
    va_list ap;

    ck_assert_msg(rc == code, "rc %d (want %d): %s", rc, code, err);
    ck_assert_ptr_null(g);
    ck_assert_msg(strncmp(err, "bad.gguf: ", 10) == 0, "message does not name the file: %s", err);
    va_start(ap, code);
    for (const char *sub = va_arg(ap, const char *); sub; sub = va_arg(ap, const char *))
        ck_assert_msg(strstr(err, sub) != NULL, "'%s' not in: %s", sub, err);
    va_end(ap);
}

/* Expect the reader to accept the file and sg_gguf_load_from to fail likewise. */
static void expect_load_fail(const gb *b, int code, ...)
{
    sg_gguf *g = NULL;
    sg_weights w;
    char err[512] = "";
    va_list ap;

    ck_assert_int_eq(sg_gguf_open_mem(&g, b->p, b->n, "bad.gguf", err, sizeof err), SG_OK);
    memset(&w, 0, sizeof w);
    int rc = sg_gguf_load_from(g, &w, err, sizeof err);
    ck_assert_msg(rc == code, "rc %d (want %d): %s", rc, code, err);
    ck_assert_ptr_null(w.tensors);
    ck_assert_msg(strncmp(err, "bad.gguf: ", 10) == 0, "message does not name the file: %s", err);
    va_start(ap, code);
    for (const char *sub = va_arg(ap, const char *); sub; sub = va_arg(ap, const char *))
        ck_assert_msg(strstr(err, sub) != NULL, "'%s' not in: %s", sub, err);
    va_end(ap);
    sg_gguf_close(g);
}

/* Parse and load a built file that must be good. */
static void load_ok(const gb *b, sg_weights *w)
{
    sg_gguf *g = NULL;
    char err[512] = "";

    ck_assert_msg(sg_gguf_open_mem(&g, b->p, b->n, "good.gguf", err, sizeof err) == SG_OK, "%s",
                  err);
    memset(w, 0, sizeof *w);
    ck_assert_msg(sg_gguf_load_from(g, w, err, sizeof err) == SG_OK, "%s", err);
    ck_assert_ptr_eq(w->gguf, g);
}

/* ---- the goldens ---------------------------------------------------------------------------- */

static void check_tiny_a(const char *rel, sg_dtype mat_dtype)
{
    char path[1024], err[512] = "";
    sg_weights w;

    fx_path(path, sizeof path, rel);
    ck_assert_msg(sg_gguf_load(path, &w, err, sizeof err) == SG_OK, "%s", err);
    const sg_model_info *i = &w.info;
    fx_check_tiny_a_info(i);
    ck_assert_str_eq(i->format, "gguf");
    ck_assert_str_eq(i->name, "A");
    ck_assert_int_eq(i->n_ctx, 8192);
    ck_assert(i->rope_theta == 10000.0f);
    ck_assert(i->rms_eps == 1e-6f);
    ck_assert_int_eq(i->eos_id, 1);
    ck_assert_int_eq(w.norm_plus_one, 1);
    ck_assert_ptr_nonnull(w.gguf);
    ck_assert_uint_eq(w.n_tensors, 2 + 2 * 11);

    const sg_tensor *e = sg_weights_find(&w, "model.embed_tokens.weight");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->dtype, mat_dtype);
    ck_assert_int_eq(e->ndim, 2);
    ck_assert_int_eq(e->shape[0], 4096);
    ck_assert_int_eq(e->shape[1], 64);
    static const struct {
        const char *name;
        int64_t rows, cols;
    } want[] = {
        {"self_attn.q_proj.weight", 64, 64},
        {"self_attn.k_proj.weight", 32, 64},
        {"self_attn.v_proj.weight", 32, 64},
        {"self_attn.o_proj.weight", 64, 64},
        {"mlp.gate_proj.weight", 128, 64},
        {"mlp.up_proj.weight", 128, 64},
        {"mlp.down_proj.weight", 64, 128},
        {"input_layernorm.weight", 64, 0},
        {"post_attention_layernorm.weight", 64, 0},
        {"pre_feedforward_layernorm.weight", 64, 0},
        {"post_feedforward_layernorm.weight", 64, 0},
    };
    for (int l = 0; l < 2; l++)
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, want[k].name);
            const sg_tensor *t = sg_weights_find(&w, name);
            ck_assert_msg(t != NULL, "%s missing", name);
            ck_assert_int_eq(t->shape[0], want[k].rows);
            if (want[k].cols) {
                ck_assert_int_eq(t->ndim, 2);
                ck_assert_int_eq(t->shape[1], want[k].cols);
                ck_assert_int_eq(t->dtype, mat_dtype);
            } else {
                ck_assert_int_eq(t->ndim, 1);
                ck_assert_int_eq(t->dtype, SG_DT_F32); /* norms stay F32 */
            }
            size_t nb = 0;
            ck_assert_int_eq(sg_dtype_bytes(t->dtype, sg_tensor_nelem(t), &nb), SG_OK);
            ck_assert_uint_eq(nb, t->nbytes);
        }
    ck_assert_ptr_nonnull(sg_weights_find(&w, "model.norm.weight"));
    ck_assert_ptr_null(sg_weights_find(&w, "lm_head.weight"));
    sg_weights_free(&w);
    ck_assert_ptr_null(w.gguf);
}

START_TEST(test_tiny_a_f32)
{
    check_tiny_a("tiny-a/model-f32.gguf", SG_DT_F32);
}
END_TEST

START_TEST(test_tiny_a_bf16)
{
    check_tiny_a("tiny-a/model-bf16.gguf", SG_DT_BF16);
}
END_TEST

/* Both files hold the same values (bf16-exact): every row of every tensor agrees exactly, and
 * the norms hold 1 + w (near 1 for this random model, never near 0). */
START_TEST(test_tiny_a_same_values)
{
    char p1[1024], p2[1024], err[512] = "";
    sg_weights a, b;
    float ra[4096], rb[4096];

    fx_path(p1, sizeof p1, "tiny-a/model-f32.gguf");
    fx_path(p2, sizeof p2, "tiny-a/model-bf16.gguf");
    ck_assert_msg(sg_gguf_load(p1, &a, err, sizeof err) == SG_OK, "%s", err);
    ck_assert_msg(sg_gguf_load(p2, &b, err, sizeof err) == SG_OK, "%s", err);
    ck_assert_uint_eq(a.n_tensors, b.n_tensors);
    for (size_t i = 0; i < a.n_tensors; i++) {
        const sg_tensor *ta = &a.tensors[i];
        const sg_tensor *tb = sg_weights_find(&b, ta->name);
        ck_assert_ptr_nonnull(tb);
        int64_t cols = ta->shape[ta->ndim - 1];
        int64_t rows = sg_tensor_nelem(ta) / cols;
        size_t rba = ta->nbytes / (size_t)rows, rbb = tb->nbytes / (size_t)rows;
        for (int64_t r = 0; r < rows; r++) {
            sg_dequant_row(ta->dtype, (const uint8_t *)ta->data + r * rba, ra, cols);
            sg_dequant_row(tb->dtype, (const uint8_t *)tb->data + r * rbb, rb, cols);
            ck_assert(memcmp(ra, rb, (size_t)cols * sizeof(float)) == 0);
        }
    }
    const sg_tensor *n = sg_weights_find(&a, "model.norm.weight");
    double mean = 0;
    sg_dequant_row(n->dtype, n->data, ra, 64);
    for (int i = 0; i < 64; i++)
        mean += ra[i] / 64;
    ck_assert_msg(mean > 0.5 && mean < 1.5, "norm mean %g: not stored as 1 + w?", mean);
    sg_weights_free(&a);
    sg_weights_free(&b);
}
END_TEST

START_TEST(test_tiny_a_metadata)
{
    char path[1024], err[512] = "";
    sg_gguf *g;
    const char *s;
    size_t len, n;
    sg_gguf_type et;
    uint32_t u;
    int32_t i32;
    int b;
    float f;
    char buf[16];

    fx_path(path, sizeof path, "tiny-a/model-f32.gguf");
    ck_assert_msg(sg_gguf_open(&g, path, err, sizeof err) == SG_OK, "%s", err);
    ck_assert_uint_eq(sg_gguf_version(g), 3);
    ck_assert_uint_eq(sg_gguf_alignment(g), 32);
    ck_assert_uint_eq(sg_gguf_n_kv(g), 30);
    ck_assert_uint_eq(sg_gguf_n_tensors(g), 24);
    ck_assert_str_eq(sg_gguf_key(g, 0), "general.architecture");
    ck_assert_ptr_null(sg_gguf_key(g, 30));
    ck_assert_str_eq(sg_gguf_name(g), path);

    ck_assert_int_eq(sg_gguf_get_str(g, "general.architecture", &s, &len, err, sizeof err), 0);
    ck_assert(len == 6 && memcmp(s, "gemma2", 6) == 0);
    ck_assert_int_eq(sg_gguf_get_strz(g, "tokenizer.ggml.model", buf, sizeof buf, NULL, 0), 0);
    ck_assert_str_eq(buf, "llama");
    ck_assert_int_eq(sg_gguf_get_strz(g, "tokenizer.ggml.model", buf, 5, err, sizeof err),
                     SG_ERANGE);
    ck_assert_int_eq(sg_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u, NULL, 0), 0);
    ck_assert_uint_eq(u, 2);
    ck_assert_int_eq(sg_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, NULL, 0), 0);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(sg_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b, NULL, 0), 0);
    ck_assert_int_eq(b, 0);
    ck_assert_int_eq(sg_gguf_get_f32(g, "gemma2.final_logit_softcapping", &f, NULL, 0), 0);
    ck_assert(f == 30.0f);

    ck_assert_int_eq(sg_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, NULL, 0), 0);
    ck_assert_int_eq(et, SG_GGUF_STRING);
    ck_assert_uint_eq(n, 4096);
    ck_assert_int_eq(sg_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 4, &s, &len, NULL, 0), 0);
    ck_assert(len == 15 && memcmp(s, "<start_of_turn>", 15) == 0);
    ck_assert_int_eq(sg_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 7, &s, &len, NULL, 0), 0);
    ck_assert(len == 6 && memcmp(s, "<0x00>", 6) == 0);
    ck_assert_int_eq(sg_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 4096, &s, &len, err,
                                         sizeof err),
                     SG_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "index 4096 past the end of 4096 strings"));

    float *scores = malloc(4096 * sizeof *scores);
    int32_t *types = malloc(4096 * sizeof *types);
    ck_assert(scores && types);
    ck_assert_int_eq(sg_gguf_get_arr_f32(g, "tokenizer.ggml.scores", scores, 4096, &n, NULL, 0),
                     0);
    ck_assert_uint_eq(n, 4096);
    ck_assert(scores[0] == -1000.0f);
    ck_assert_int_eq(sg_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", types, 4096, &n, NULL,
                                         0),
                     0);
    ck_assert_int_eq(types[0], 3); /* control */
    ck_assert_int_eq(types[7], 6); /* byte */
    ck_assert_int_eq(sg_gguf_get_arr_f32(g, "tokenizer.ggml.scores", scores, 100, &n, err,
                                         sizeof err),
                     SG_ERANGE);
    ck_assert_uint_eq(n, 4096);
    free(scores);
    free(types);

    /* absent and mistyped keys */
    ck_assert_int_eq(sg_gguf_get_u32(g, "no.such.key", &u, err, sizeof err), SG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "key 'no.such.key' is absent"));
    ck_assert_int_eq(sg_gguf_find_key(g, "no.such.key"), -1);
    ck_assert_int_eq(sg_gguf_key_type(g, "no.such.key"), -1);
    ck_assert_int_eq(sg_gguf_key_type(g, "tokenizer.ggml.scores"), SG_GGUF_ARRAY);
    ck_assert_int_eq(sg_gguf_get_u32(g, "general.name", &u, err, sizeof err), SG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "key 'general.name': expected an integer, found string"));
    ck_assert_int_eq(sg_gguf_get_str(g, "tokenizer.ggml.scores", &s, &len, err, sizeof err),
                     SG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "expected string, found array of f32"));
    ck_assert_int_eq(sg_gguf_get_arr_str(g, "tokenizer.ggml.scores", 0, &s, &len, err,
                                         sizeof err),
                     SG_EFORMAT);
    ck_assert_int_eq(sg_gguf_get_arr_i32(g, "tokenizer.ggml.scores", &i32, 1, &n, err,
                                         sizeof err),
                     SG_EFORMAT);
    ck_assert_int_eq(sg_gguf_get_arr_f32(g, "tokenizer.ggml.tokens", &f, 1, &n, err, sizeof err),
                     SG_EFORMAT);
    ck_assert_int_eq(sg_gguf_get_arr(g, "general.name", &et, &n, err, sizeof err), SG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "expected array, found string"));
    ck_assert_int_eq(sg_gguf_get_f32(g, "gemma2.block_count", &f, err, sizeof err), SG_EFORMAT);
    ck_assert_int_eq(sg_gguf_get_bool(g, "gemma2.block_count", &b, err, sizeof err), SG_EFORMAT);

    const sg_gguf_tensor *t = sg_gguf_find_tensor(g, "blk.1.ffn_down.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->n_dims, 2);
    ck_assert_uint_eq(t->ne[0], 128);
    ck_assert_uint_eq(t->ne[1], 64);
    ck_assert_uint_eq(t->ggml_type, 0);
    ck_assert_uint_eq(t->nbytes, 128 * 64 * 4);
    ck_assert_ptr_eq(sg_gguf_tensor_at(g, 0), sg_gguf_find_tensor(g, "token_embd.weight"));
    ck_assert_ptr_null(sg_gguf_tensor_at(g, 24));
    ck_assert_ptr_null(sg_gguf_find_tensor(g, "blk.2.ffn_down.weight"));
    sg_gguf_close(g);
    sg_gguf_close(NULL);
}
END_TEST

/* The quantized fixtures (tools/make-quant-fixtures.sh): the types llama.cpp would choose, and
 * tiny-a's Q8_0/Q4_0 weights within the per-block rounding bound of the f32 originals. */
static void check_quant_close(const sg_weights *q, const sg_weights *f, const char *name,
                              int q4)
{
    const sg_tensor *tq = sg_weights_find(q, name), *tf = sg_weights_find(f, name);
    static float a[4096], b[4096];

    ck_assert(tq && tf);
    int64_t cols = tf->shape[tf->ndim - 1], rows = sg_tensor_nelem(tf) / cols;
    size_t rq = tq->nbytes / (size_t)rows;
    for (int64_t r = 0; r < rows; r++) {
        sg_dequant_row(tq->dtype, (const uint8_t *)tq->data + r * rq, a, cols);
        sg_dequant_row(tf->dtype, (const uint8_t *)tf->data + r * (size_t)cols * 4, b, cols);
        for (int64_t k = 0; k < cols; k += 32) {
            double amax = 0;
            for (int i = 0; i < 32; i++)
                amax = fmax(amax, fabs(b[k + i]));
            /* Q8_0: d = amax/127, error <= d/2; Q4_0: d = amax/8, error <= d (the clipped
             * end); plus the f16 rounding of d (2^-11 relative, times 127 or 8 steps) */
            double bound = q4 ? amax / 8 * (1 + 8.0 / 2048) : amax / 254 + amax / 2048;
            for (int i = 0; i < 32; i++)
                ck_assert_msg(fabs(a[k + i] - b[k + i]) <= bound * 1.0001 + 1e-12,
                              "%s row %lld col %lld: %g vs %g", name, (long long)r,
                              (long long)(k + i), (double)a[k + i], (double)b[k + i]);
        }
    }
}

START_TEST(test_quant_fixtures)
{
    char path[1024], err[512] = "";
    sg_weights f, q8, q4, k4, k6, mix;

    fx_path(path, sizeof path, "tiny-a/model-f32.gguf");
    ck_assert_msg(sg_gguf_load(path, &f, err, sizeof err) == SG_OK, "%s", err);
    fx_path(path, sizeof path, "quant/tiny-a-q8_0.gguf");
    ck_assert_msg(sg_gguf_load(path, &q8, err, sizeof err) == SG_OK, "%s", err);
    fx_path(path, sizeof path, "quant/tiny-a-q4_0.gguf");
    ck_assert_msg(sg_gguf_load(path, &q4, err, sizeof err) == SG_OK, "%s", err);
    fx_path(path, sizeof path, "quant/tiny-k-q4_k.gguf");
    ck_assert_msg(sg_gguf_load(path, &k4, err, sizeof err) == SG_OK, "%s", err);
    fx_path(path, sizeof path, "quant/tiny-k-q6_k.gguf");
    ck_assert_msg(sg_gguf_load(path, &k6, err, sizeof err) == SG_OK, "%s", err);
    fx_path(path, sizeof path, "quant/tiny-k-mix.gguf");
    ck_assert_msg(sg_gguf_load(path, &mix, err, sizeof err) == SG_OK, "%s", err);

    ck_assert_int_eq(sg_weights_find(&q8, "model.embed_tokens.weight")->dtype, SG_DT_Q8_0);
    ck_assert_int_eq(sg_weights_find(&q4, "model.embed_tokens.weight")->dtype, SG_DT_Q8_0);
    ck_assert_int_eq(sg_weights_find(&q4, "model.layers.1.mlp.down_proj.weight")->dtype,
                     SG_DT_Q4_0);
    ck_assert_int_eq(sg_weights_find(&q4, "model.norm.weight")->dtype, SG_DT_F32);
    ck_assert_int_eq(sg_weights_find(&k4, "model.embed_tokens.weight")->dtype, SG_DT_Q6_K);
    ck_assert_int_eq(sg_weights_find(&k4, "model.layers.0.self_attn.q_proj.weight")->dtype,
                     SG_DT_Q4_K);
    ck_assert_int_eq(sg_weights_find(&k4, "model.layers.1.mlp.down_proj.weight")->dtype,
                     SG_DT_Q4_K);
    ck_assert_int_eq(sg_weights_find(&k6, "model.layers.1.mlp.down_proj.weight")->dtype,
                     SG_DT_Q6_K);
    static const struct {
        const char *name;
        sg_dtype dt;
    } mixed[] = {
        {"model.embed_tokens.weight", SG_DT_Q8_0},
        {"model.layers.1.self_attn.q_proj.weight", SG_DT_Q5_K},
        {"model.layers.1.self_attn.v_proj.weight", SG_DT_Q6_K},
        {"model.layers.1.mlp.up_proj.weight", SG_DT_Q4_K},
        {"model.layers.1.mlp.down_proj.weight", SG_DT_Q6_K},
        {"model.layers.1.post_feedforward_layernorm.weight", SG_DT_F32},
    };
    for (size_t i = 0; i < sizeof mixed / sizeof mixed[0]; i++)
        ck_assert_int_eq(sg_weights_find(&mix, mixed[i].name)->dtype, mixed[i].dt);
    ck_assert_int_eq(k4.info.d_model, 256);
    ck_assert_int_eq(k4.info.n_vocab, 256);
    ck_assert_int_eq(k4.info.head_dim, 128);

    for (size_t i = 0; i < f.n_tensors; i++) {
        if (f.tensors[i].ndim != 2)
            continue;
        check_quant_close(&q8, &f, f.tensors[i].name, 0);
        if (strcmp(f.tensors[i].name, "model.embed_tokens.weight") != 0)
            check_quant_close(&q4, &f, f.tensors[i].name, 1);
    }
    sg_weights_free(&f);
    sg_weights_free(&q8);
    sg_weights_free(&q4);
    sg_weights_free(&k4);
    sg_weights_free(&k6);
    sg_weights_free(&mix);
}
END_TEST

START_TEST(test_open_errors)
{
    char err[512] = "", path[1024];
    sg_gguf *g;
    sg_weights w;

    ck_assert_int_eq(sg_gguf_open(&g, "/nonexistent/x.gguf", err, sizeof err), SG_EIO);
    ck_assert_ptr_null(g);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/x.gguf: cannot open"));
    fx_path(path, sizeof path, "tiny-a");
    ck_assert_int_eq(sg_gguf_open(&g, path, err, sizeof err), SG_EIO);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    ck_assert_int_eq(sg_gguf_load("/nonexistent/x.gguf", &w, err, sizeof err), SG_EIO);
    ck_assert_ptr_null(w.tensors);

    /* an empty file */
    char tmp[] = "/tmp/sg-gguf-XXXXXX";
    int fd = mkstemp(tmp);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(sg_gguf_open(&g, tmp, err, sizeof err), SG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "not a GGUF file"));
    ck_assert_ptr_nonnull(strstr(err, "empty"));
    unlink(tmp);
}
END_TEST

/* ---- built files: good ---------------------------------------------------------------------- */

START_TEST(test_built_good_and_defaults)
{
    gb b;
    sg_weights w;
    mspec s = {0};

    build(&b, &s);
    load_ok(&b, &w);
    ck_assert_int_eq(w.info.n_vocab, 8);
    ck_assert_int_eq(w.info.head_dim, 16); /* 32 / 2 when key_length is absent */
    ck_assert_int_eq(w.info.n_kv_head, 1);
    ck_assert_int_eq(w.info.sliding_window, 4096);
    ck_assert(w.info.attn_softcap == 50.0f);
    ck_assert(w.info.final_softcap == 30.0f);
    ck_assert(w.info.rope_theta == 10000.0f);
    ck_assert(w.info.query_scale == 0.25f);
    ck_assert_int_eq(w.info.bos_id, 2);
    ck_assert_int_eq(w.info.eos_id, 1);
    ck_assert_str_eq(w.info.name, "good.gguf"); /* no general.name */
    const sg_tensor *q = sg_weights_find(&w, "model.layers.0.self_attn.q_proj.weight");
    ck_assert(q && q->dtype == SG_DT_F16 && q->shape[0] == 32 && q->shape[1] == 32);
    const sg_tensor *u = sg_weights_find(&w, "model.layers.0.mlp.up_proj.weight");
    ck_assert(u && u->dtype == SG_DT_Q8_0 && u->shape[0] == 64 && u->shape[1] == 32);
    ck_assert_uint_eq(u->nbytes, 64 * 34);
    ck_assert_uint_eq((size_t)((const uint8_t *)u->data - b.p) % 32, 0);
    sg_weights_free(&w);

    /* no head_count_kv: defaults to head_count */
    s.skip_key = "gemma2.attention.head_count_kv";
    free(b.p);
    build(&b, &s);
    load_ok(&b, &w);
    ck_assert_int_eq(w.info.n_kv_head, 2);
    sg_weights_free(&w);
    free(b.p);

    /* version 2 has the same layout */
    s.skip_key = NULL;
    s.version = 2;
    build(&b, &s);
    load_ok(&b, &w);
    ck_assert_uint_eq(sg_gguf_version(w.gguf), 2);
    sg_weights_free(&w);
    free(b.p);

    /* a larger alignment moves the data section */
    s.version = 3;
    s.alignment = 256;
    build(&b, &s);
    load_ok(&b, &w);
    ck_assert_uint_eq(sg_gguf_alignment(w.gguf), 256);
    ck_assert_uint_eq((size_t)((const uint8_t *)w.tensors[0].data - b.p) % 256, 0);
    sg_weights_free(&w);
    free(b.p);
}
END_TEST

static void extra_27b(gb *b, int *n)
{
    kv_u32(b, n, "gemma2.attention.key_length", 128);
    kv_u32(b, n, "gemma2.attention.value_length", 128);
    kv_u32(b, n, "tokenizer.ggml.bos_token_id", 5);
    kv_str(b, n, "general.name", "big one");
}

START_TEST(test_query_scale_27b)
{
    gb b;
    sg_weights w;
    /* 46 layers, embedding 32 over 2 heads: the scale is 1/sqrt(32/2) = 0.25 although
     * key_length is 128 (1/sqrt(128) for any other depth). */
    mspec s = {.n_layer = 46, .extra = extra_27b};

    build(&b, &s);
    load_ok(&b, &w);
    ck_assert(w.info.query_scale == 0.25f);
    ck_assert_int_eq(w.info.head_dim, 128);
    ck_assert_int_eq(w.info.bos_id, 5);
    ck_assert_str_eq(w.info.name, "big one");
    sg_weights_free(&w);
    free(b.p);

    s.n_layer = 42;
    build(&b, &s);
    load_ok(&b, &w);
    ck_assert(fabsf(w.info.query_scale - 1.0f / sqrtf(128.0f)) < 1e-9f);
    sg_weights_free(&w);
    free(b.p);
}
END_TEST

static void extra_explicit(gb *b, int *n)
{
    kv_u32(b, n, "gemma2.attention.sliding_window", 16);
    kv_f32(b, n, "gemma2.attn_logit_softcapping", 20.0f);
    kv_f32(b, n, "gemma2.final_logit_softcapping", 0.0f);
    kv_f32(b, n, "gemma2.rope.freq_base", 500000.0f);
    kv_f32(b, n, "gemma2.attention.scale", 0.125f);
    kv_u32(b, n, "tokenizer.ggml.eos_token_id", 107);
}

START_TEST(test_explicit_hparams)
{
    gb b;
    sg_weights w;
    mspec s = {.extra = extra_explicit};

    build(&b, &s);
    load_ok(&b, &w);
    ck_assert_int_eq(w.info.sliding_window, 16);
    ck_assert(w.info.attn_softcap == 20.0f);
    ck_assert(w.info.final_softcap == 0.0f);
    ck_assert(w.info.rope_theta == 500000.0f);
    ck_assert(w.info.query_scale == 0.125f);
    ck_assert_int_eq(w.info.eos_id, 107);
    sg_weights_free(&w);
    free(b.p);
}
END_TEST

static const tdesc gemma1_tensors[] = {
    {"token_embd.weight", 2, {32, 8}, 0, -1},
    {"blk.0.attn_norm.weight", 1, {32}, 0, -1},
    {"blk.0.ffn_norm.weight", 1, {32}, 0, -1},
    {"blk.0.attn_output.weight", 2, {32, 32}, 30, -1},
    {"blk.0.ffn_down.weight", 2, {64, 32}, 2, -1},
    {"blk.0.ffn_gate.weight", 2, {256, 2}, 12, -1},
    {"blk.0.attn_v.weight", 2, {256, 1}, 14, -1},
    {"blk.0.attn_k.weight", 2, {512, 1}, 13, -1},
};

static const tdesc gemma1_post_norm[] = {
    {"token_embd.weight", 2, {32, 8}, 0, -1},
    {"blk.0.ffn_norm.weight", 1, {32}, 0, -1},
    {"blk.0.post_attention_norm.weight", 1, {32}, 0, -1},
};

START_TEST(test_gemma1_names)
{
    gb b;
    sg_weights w;
    mspec s = {.arch = "gemma", .t = gemma1_tensors, .nt = 8};

    build(&b, &s);
    load_ok(&b, &w);
    ck_assert_str_eq(w.info.arch, "gemma");
    ck_assert_int_eq(w.info.sliding_window, 0);
    ck_assert(w.info.attn_softcap == 0.0f && w.info.final_softcap == 0.0f);
    ck_assert_ptr_nonnull(sg_weights_find(&w, "model.layers.0.input_layernorm.weight"));
    /* Gemma 1's only pre-MLP norm is HF's post_attention_layernorm */
    ck_assert_ptr_nonnull(sg_weights_find(&w, "model.layers.0.post_attention_layernorm.weight"));
    ck_assert_ptr_null(sg_weights_find(&w, "model.layers.0.pre_feedforward_layernorm.weight"));
    const sg_tensor *t = sg_weights_find(&w, "model.layers.0.self_attn.o_proj.weight");
    ck_assert(t && t->dtype == SG_DT_BF16);
    t = sg_weights_find(&w, "model.layers.0.mlp.down_proj.weight");
    ck_assert(t && t->dtype == SG_DT_Q4_0 && t->shape[0] == 32 && t->shape[1] == 64);
    ck_assert_uint_eq(t->nbytes, 32 * 2 * 18);
    t = sg_weights_find(&w, "model.layers.0.mlp.gate_proj.weight");
    ck_assert(t && t->dtype == SG_DT_Q4_K && t->nbytes == 2 * 144);
    t = sg_weights_find(&w, "model.layers.0.self_attn.v_proj.weight");
    ck_assert(t && t->dtype == SG_DT_Q6_K && t->nbytes == 210 && t->shape[1] == 256);
    t = sg_weights_find(&w, "model.layers.0.self_attn.k_proj.weight");
    ck_assert(t && t->dtype == SG_DT_Q5_K && t->nbytes == 2 * 176 && t->shape[1] == 512);
    sg_weights_free(&w);
    free(b.p);

    /* Gemma 1 has no post-attention norm: that tensor would collide with ffn_norm's HF name */
    s.t = gemma1_post_norm;
    s.nt = 3;
    build(&b, &s);
    expect_load_fail(&b, SG_EUNSUPPORTED, "tensor 'blk.0.post_attention_norm.weight'",
                     "not part of a gemma model", NULL);
    free(b.p);
}
END_TEST

/* Every metadata type, and the integer/float conversions of the getters. */
static void extra_all_types(gb *b, int *n)
{
    static const struct {
        const char *k;
        uint32_t t;
        uint64_t v;
        int size;
    } sc[] = {
        {"t.u8", SG_GGUF_U8, 200, 1},
        {"t.i8", SG_GGUF_I8, 0xFB, 1}, /* -5 */
        {"t.u16", SG_GGUF_U16, 65000, 2},
        {"t.i16", SG_GGUF_I16, 0x8000, 2}, /* -32768 */
        {"t.i32", SG_GGUF_I32, 0xFFFFFFFF, 4}, /* -1 */
        {"t.u64", SG_GGUF_U64, 5000000000ull, 8},
        {"t.u64small", SG_GGUF_U64, 77, 8},
        {"t.i64", SG_GGUF_I64, (uint64_t)-3, 8},
        {"t.bool", SG_GGUF_BOOL, 1, 1},
        {"t.f64", SG_GGUF_F64, 0x400C000000000000ull, 8}, /* 3.5 */
        {"t.f64big", SG_GGUF_F64, 0xFE3E000000000000ull, 8}, /* about -1e300 */
    };
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
        gb_str(b, sc[i].k);
        gb_u32(b, sc[i].t);
        for (int j = 0; j < sc[i].size; j++)
            gb_u8(b, (uint8_t)(sc[i].v >> (8 * j)));
        (*n)++;
    }
    /* arrays: i16, u8, f64, string (empty strings included), empty */
    gb_str(b, "a.i16");
    gb_u32(b, SG_GGUF_ARRAY);
    gb_u32(b, SG_GGUF_I16);
    gb_u64(b, 3);
    gb_u8(b, 0xFF), gb_u8(b, 0xFF), gb_u8(b, 2), gb_u8(b, 0), gb_u8(b, 0), gb_u8(b, 0x80);
    gb_str(b, "a.u64big");
    gb_u32(b, SG_GGUF_ARRAY);
    gb_u32(b, SG_GGUF_U64);
    gb_u64(b, 1);
    gb_u64(b, 1ull << 40);
    gb_str(b, "a.f64");
    gb_u32(b, SG_GGUF_ARRAY);
    gb_u32(b, SG_GGUF_F64);
    gb_u64(b, 2);
    gb_u64(b, 0x3FF0000000000000ull);   /* 1.0 */
    gb_u64(b, 0xC004000000000000ull);   /* -2.5 */
    gb_str(b, "a.str");
    gb_u32(b, SG_GGUF_ARRAY);
    gb_u32(b, SG_GGUF_STRING);
    gb_u64(b, 3);
    gb_str(b, "merge a");
    gb_str(b, "");
    gb_str(b, "\xe2\x96\x81x");
    gb_str(b, "a.empty");
    gb_u32(b, SG_GGUF_ARRAY);
    gb_u32(b, SG_GGUF_U32);
    gb_u64(b, 0);
    gb_str(b, "a.bool");
    gb_u32(b, SG_GGUF_ARRAY);
    gb_u32(b, SG_GGUF_BOOL);
    gb_u64(b, 2);
    gb_u8(b, 1), gb_u8(b, 0);
    *n += 6;
}

START_TEST(test_metadata_types)
{
    gb b;
    sg_gguf *g;
    char err[512] = "";
    mspec s = {.extra = extra_all_types};
    uint32_t u;
    int32_t i;
    uint64_t u64;
    float f;
    int bo;
    size_t n, len;
    const char *str;
    int32_t iv[4];
    float fv[4];
    sg_gguf_type et;

    build(&b, &s);
    ck_assert_msg(sg_gguf_open_mem(&g, b.p, b.n, "t.gguf", err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(sg_gguf_get_u32(g, "t.u8", &u, NULL, 0), 0);
    ck_assert_uint_eq(u, 200);
    ck_assert_int_eq(sg_gguf_get_i32(g, "t.i8", &i, NULL, 0), 0);
    ck_assert_int_eq(i, -5);
    ck_assert_int_eq(sg_gguf_get_u32(g, "t.i8", &u, err, sizeof err), SG_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "key 't.i8': -5 does not fit u32"));
    ck_assert_int_eq(sg_gguf_get_u32(g, "t.u16", &u, NULL, 0), 0);
    ck_assert_uint_eq(u, 65000);
    ck_assert_int_eq(sg_gguf_get_i32(g, "t.i16", &i, NULL, 0), 0);
    ck_assert_int_eq(i, -32768);
    ck_assert_int_eq(sg_gguf_get_i32(g, "t.i32", &i, NULL, 0), 0);
    ck_assert_int_eq(i, -1);
    ck_assert_int_eq(sg_gguf_get_u32(g, "t.u64", &u, err, sizeof err), SG_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "5000000000 does not fit u32"));
    ck_assert_int_eq(sg_gguf_get_i32(g, "t.u64", &i, NULL, 0), SG_ERANGE);
    ck_assert_int_eq(sg_gguf_get_u64(g, "t.u64", &u64, NULL, 0), 0);
    ck_assert(u64 == 5000000000ull);
    ck_assert_int_eq(sg_gguf_get_u32(g, "t.u64small", &u, NULL, 0), 0);
    ck_assert_uint_eq(u, 77);
    ck_assert_int_eq(sg_gguf_get_i32(g, "t.i64", &i, NULL, 0), 0);
    ck_assert_int_eq(i, -3);
    ck_assert_int_eq(sg_gguf_get_u64(g, "t.i64", &u64, NULL, 0), SG_ERANGE);
    ck_assert_int_eq(sg_gguf_get_bool(g, "t.bool", &bo, NULL, 0), 0);
    ck_assert_int_eq(bo, 1);
    ck_assert_int_eq(sg_gguf_get_u32(g, "t.bool", &u, NULL, 0), SG_EFORMAT);
    ck_assert_int_eq(sg_gguf_get_f32(g, "t.f64", &f, NULL, 0), 0);
    ck_assert(f == 3.5f);
    ck_assert_int_eq(sg_gguf_key_type(g, "t.f64"), SG_GGUF_F64);
    ck_assert_int_eq(sg_gguf_get_f32(g, "t.f64big", &f, NULL, 0), 0);
    ck_assert(isinf(f) && f < 0); /* out of float range: an infinity, not undefined behaviour */
    ck_assert_str_eq(sg_gguf_type_name(SG_GGUF_F64), "f64");
    ck_assert_str_eq(sg_gguf_type_name(99), "?");

    ck_assert_int_eq(sg_gguf_get_arr_i32(g, "a.i16", iv, 4, &n, NULL, 0), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert(iv[0] == -1 && iv[1] == 2 && iv[2] == -32768);
    ck_assert_int_eq(sg_gguf_get_arr_i32(g, "a.u64big", iv, 4, &n, err, sizeof err), SG_ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "element 0"));
    ck_assert_int_eq(sg_gguf_get_arr_i32(g, "a.bool", iv, 4, &n, NULL, 0), 0);
    ck_assert(n == 2 && iv[0] == 1 && iv[1] == 0);
    ck_assert_int_eq(sg_gguf_get_arr_f32(g, "a.f64", fv, 4, &n, NULL, 0), 0);
    ck_assert(n == 2 && fv[0] == 1.0f && fv[1] == -2.5f);
    ck_assert_int_eq(sg_gguf_get_arr(g, "a.str", &et, &n, NULL, 0), 0);
    ck_assert(et == SG_GGUF_STRING && n == 3);
    ck_assert_int_eq(sg_gguf_get_arr_str(g, "a.str", 0, &str, &len, NULL, 0), 0);
    ck_assert(len == 7 && memcmp(str, "merge a", 7) == 0);
    ck_assert_int_eq(sg_gguf_get_arr_str(g, "a.str", 1, &str, &len, NULL, 0), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(sg_gguf_get_arr_str(g, "a.str", 2, &str, &len, NULL, 0), 0);
    ck_assert(len == 4 && memcmp(str, "\xe2\x96\x81x", 4) == 0);
    ck_assert_int_eq(sg_gguf_get_arr(g, "a.empty", &et, &n, NULL, 0), 0);
    ck_assert(et == SG_GGUF_U32 && n == 0);
    ck_assert_int_eq(sg_gguf_get_arr_i32(g, "a.empty", iv, 0, &n, NULL, 0), 0);
    ck_assert_uint_eq(n, 0);
    sg_gguf_close(g);
    free(b.p);
}
END_TEST

/* ---- malformed files ------------------------------------------------------------------------ */

START_TEST(test_bad_magic_version_header)
{
    gb b;
    mspec s = {0};

    build(&b, &s);
    b.p[0] = 'g';
    expect_open_fail(&b, SG_EFORMAT, "not a GGUF file", "67 47 55 46", NULL);
    free(b.p);

    s.version = 1;
    build(&b, &s);
    expect_open_fail(&b, SG_EUNSUPPORTED, "GGUF version 1 is not supported", NULL);
    free(b.p);
    s.version = 4;
    build(&b, &s);
    expect_open_fail(&b, SG_EUNSUPPORTED, "version 4", "expected 2 or 3", NULL);
    free(b.p);

    s.version = 3;
    build(&b, &s);
    b.n = 10; /* inside the tensor count */
    expect_open_fail(&b, SG_EFORMAT, "truncated", "tensor count", NULL);
    b.n = 3;
    expect_open_fail(&b, SG_EFORMAT, "not a GGUF file", NULL);
    free(b.p);
}
END_TEST

START_TEST(test_bad_counts)
{
    gb b;
    mspec s = {0};

    build(&b, &s);
    /* n_tensors is at byte 8, n_kv at byte 16 */
    uint64_t huge = 0x4000000000000000ull;
    memcpy(b.p + 8, &huge, 8);
    expect_open_fail(&b, SG_EFORMAT, "tensor count 4611686018427387904 is impossible", NULL);
    free(b.p);
    build(&b, &s);
    memcpy(b.p + 16, &huge, 8);
    expect_open_fail(&b, SG_EFORMAT, "metadata count 4611686018427387904 is impossible", NULL);
    free(b.p);
    /* a plausible but too high count runs out of bytes */
    build(&b, &s);
    b.p[16] = (uint8_t)(b.p[16] + 40);
    expect_open_fail(&b, SG_EFORMAT, NULL);
    free(b.p);
}
END_TEST

static void extra_long_string(gb *b, int *n)
{
    gb_str(b, "general.name");
    gb_u32(b, SG_GGUF_STRING);
    gb_u64(b, 1ull << 40); /* length far past the end */
    (*n)++;
}

static void extra_long_array(gb *b, int *n)
{
    gb_str(b, "tokenizer.ggml.scores");
    gb_u32(b, SG_GGUF_ARRAY);
    gb_u32(b, SG_GGUF_F32);
    gb_u64(b, 1ull << 32);
    (*n)++;
}

static void extra_long_str_array(gb *b, int *n)
{
    gb_str(b, "tokenizer.ggml.tokens");
    gb_u32(b, SG_GGUF_ARRAY);
    gb_u32(b, SG_GGUF_STRING);
    gb_u64(b, 2);
    gb_str(b, "a");
    gb_u64(b, 1000000); /* the second string is too long */
    (*n)++;
}

static void extra_nested(gb *b, int *n)
{
    gb_str(b, "x.nested");
    gb_u32(b, SG_GGUF_ARRAY);
    gb_u32(b, SG_GGUF_ARRAY);
    gb_u64(b, 0);
    (*n)++;
}

static void extra_bad_vtype(gb *b, int *n)
{
    gb_str(b, "x.weird");
    gb_u32(b, 13);
    gb_u32(b, 0);
    (*n)++;
}

static void extra_bad_etype(gb *b, int *n)
{
    gb_str(b, "x.weird");
    gb_u32(b, SG_GGUF_ARRAY);
    gb_u32(b, 77);
    gb_u64(b, 0);
    (*n)++;
}

static void extra_dup_key(gb *b, int *n)
{
    kv_u32(b, n, "gemma2.block_count", 1);
}

static void extra_nul_key(gb *b, int *n)
{
    gb_u64(b, 3);
    gb_bytes(b, "a\0b", 3);
    gb_u32(b, SG_GGUF_U8);
    gb_u8(b, 0);
    (*n)++;
}

START_TEST(test_bad_metadata)
{
    gb b;
    mspec s = {.extra = extra_long_string};

    build(&b, &s);
    expect_open_fail(&b, SG_EFORMAT, "general.name", "string length 1099511627776",
                     "runs past the end", NULL);
    free(b.p);
    s.extra = extra_long_array;
    build(&b, &s);
    expect_open_fail(&b, SG_EFORMAT, "tokenizer.ggml.scores", "array of 4294967296 f32",
                     "runs past the end", NULL);
    free(b.p);
    s.extra = extra_long_str_array;
    build(&b, &s);
    expect_open_fail(&b, SG_EFORMAT, "tokenizer.ggml.tokens", "string length 1000000", NULL);
    free(b.p);
    s.extra = extra_nested;
    build(&b, &s);
    expect_open_fail(&b, SG_EUNSUPPORTED, "x.nested", "arrays of arrays", NULL);
    free(b.p);
    s.extra = extra_bad_vtype;
    build(&b, &s);
    expect_open_fail(&b, SG_EFORMAT, "x.weird", "unknown value type 13", NULL);
    free(b.p);
    s.extra = extra_bad_etype;
    build(&b, &s);
    expect_open_fail(&b, SG_EFORMAT, "x.weird", "unknown array element type 77", NULL);
    free(b.p);
    s.extra = extra_dup_key;
    build(&b, &s);
    expect_open_fail(&b, SG_EFORMAT, "duplicate key 'gemma2.block_count'", NULL);
    free(b.p);
    s.extra = extra_nul_key;
    build(&b, &s);
    expect_open_fail(&b, SG_EFORMAT, "metadata key", "NUL", NULL);
    free(b.p);
}
END_TEST

START_TEST(test_bad_alignment)
{
    gb b;
    mspec s = {.alignment = 48};

    build(&b, &s);
    expect_open_fail(&b, SG_EFORMAT, "general.alignment", "48 is not a power of two", NULL);
    free(b.p);
    s.alignment = -1;
    build(&b, &s);
    expect_open_fail(&b, SG_EFORMAT, "general.alignment", "expected u32, found string", NULL);
    free(b.p);
}
END_TEST

static const tdesc t_5dims[] = {{"token_embd.weight", 5, {32, 8, 1, 1, 1}, 0, -1}};
static const tdesc t_zero_dim[] = {{"token_embd.weight", 2, {32, 0}, 0, -1}};
static const tdesc t_overflow[] = {
    {"token_embd.weight", 4, {1ull << 32, 1ull << 32, 1ull << 32, 1}, 0, 0}};
static const tdesc t_outside[] = {{"token_embd.weight", 2, {32, 8}, 0, 4096}};
static const tdesc t_overlap[] = {
    {"token_embd.weight", 2, {32, 8}, 0, 0},
    {"output_norm.weight", 1, {32}, 0, 992}, /* embedding is [0, 1024) */
};
static const tdesc t_dup[] = {
    {"token_embd.weight", 2, {32, 8}, 0, -1},
    {"output_norm.weight", 1, {32}, 0, -1},
    {"token_embd.weight", 1, {32}, 0, -1},
};
static const tdesc t_unknown_type[] = {{"token_embd.weight", 2, {32, 8}, 4, -1}};
static const tdesc t_huge_type[] = {{"token_embd.weight", 2, {32, 8}, 200, -1}};
static const tdesc t_misaligned[] = {{"token_embd.weight", 2, {32, 8}, 0, 16}};
static const tdesc t_partial_block[] = {{"token_embd.weight", 2, {48, 8}, 8, -1}};
static const tdesc t_unsupported_type[] = {
    {"token_embd.weight", 2, {256, 8}, 0, -1},
    {"blk.0.ffn_up.weight", 2, {256, 4}, 7, -1},
};
static const tdesc t_unknown_name[] = {
    {"token_embd.weight", 2, {32, 8}, 0, -1},
    {"blk.0.attn_qkv.weight", 2, {32, 96}, 0, -1},
};
static const tdesc t_bad_layer[] = {
    {"token_embd.weight", 2, {32, 8}, 0, -1},
    {"blk.1.attn_q.weight", 2, {32, 32}, 0, -1},
};
static const tdesc t_no_embd[] = {{"output_norm.weight", 1, {32}, 0, -1}};

START_TEST(test_bad_tensors)
{
    gb b;
    mspec s = {0};

#define CASE(arr) (s.t = (arr), s.nt = sizeof(arr) / sizeof((arr)[0]), build(&b, &s))
    CASE(t_5dims);
    expect_open_fail(&b, SG_EFORMAT, "tensor 'token_embd.weight'", "5 dimensions",
                     "expected 1..4", NULL);
    free(b.p);
    CASE(t_zero_dim);
    expect_open_fail(&b, SG_EFORMAT, "tensor 'token_embd.weight'", "dimension 1 is 0", NULL);
    free(b.p);
    CASE(t_overflow);
    expect_open_fail(&b, SG_EFORMAT, "tensor 'token_embd.weight'", "dimension 1 is 4294967296",
                     NULL);
    free(b.p);
    s.data_extra = -4096; /* the data section holds only [0, 1024) */
    CASE(t_outside);
    s.data_extra = 0;
    expect_open_fail(&b, SG_EFORMAT, "tensor 'token_embd.weight'", "outside the data section",
                     NULL);
    free(b.p);
    CASE(t_overlap);
    expect_open_fail(&b, SG_EFORMAT, "'token_embd.weight'", "'output_norm.weight'", "overlap",
                     NULL);
    free(b.p);
    CASE(t_dup);
    expect_open_fail(&b, SG_EFORMAT, "duplicate tensor 'token_embd.weight'", NULL);
    free(b.p);
    CASE(t_unknown_type);
    expect_open_fail(&b, SG_EFORMAT, "tensor 'token_embd.weight'", "unknown tensor type 4", NULL);
    free(b.p);
    CASE(t_huge_type);
    expect_open_fail(&b, SG_EFORMAT, "unknown tensor type 200", NULL);
    free(b.p);
    CASE(t_misaligned);
    expect_open_fail(&b, SG_EFORMAT, "data offset 16 is not a multiple of the alignment 32",
                     NULL);
    free(b.p);
    CASE(t_partial_block);
    expect_open_fail(&b, SG_EFORMAT, "row of 48 elements", "Q8_0", NULL);
    free(b.p);

    /* the data section one byte short */
    s.t = NULL;
    s.data_extra = -1;
    build(&b, &s);
    expect_open_fail(&b, SG_EFORMAT, "tensor 'output_norm.weight'", "outside the data section",
                     NULL);
    free(b.p);
    s.data_extra = 0;

    /* valid files the Gemma loader refuses */
    CASE(t_unsupported_type);
    expect_load_fail(&b, SG_EUNSUPPORTED, "tensor 'blk.0.ffn_up.weight'", "type Q5_1", NULL);
    free(b.p);
    CASE(t_unknown_name);
    expect_load_fail(&b, SG_EUNSUPPORTED, "tensor 'blk.0.attn_qkv.weight'", "not part of",
                     NULL);
    free(b.p);
    CASE(t_bad_layer);
    expect_load_fail(&b, SG_EUNSUPPORTED, "tensor 'blk.1.attn_q.weight'", "1 layers", NULL);
    free(b.p);
    CASE(t_no_embd);
    expect_load_fail(&b, SG_EFORMAT, "tensor 'token_embd.weight' is absent", NULL);
    free(b.p);
#undef CASE
}
END_TEST

static void extra_kv_mismatch(gb *b, int *n)
{
    kv_u32(b, n, "gemma2.attention.key_length", 16);
    kv_u32(b, n, "gemma2.attention.value_length", 32);
}

static void extra_bad_cap(gb *b, int *n)
{
    kv_f32(b, n, "gemma2.attn_logit_softcapping", NAN);
}

START_TEST(test_bad_keys)
{
    gb b;
    mspec s = {.skip_key = "gemma2.block_count"};

    build(&b, &s);
    expect_load_fail(&b, SG_EFORMAT, "required key 'gemma2.block_count' is absent", NULL);
    free(b.p);
    s.skip_key = "gemma2.attention.layer_norm_rms_epsilon";
    build(&b, &s);
    expect_load_fail(&b, SG_EFORMAT, "'gemma2.attention.layer_norm_rms_epsilon' is absent",
                     NULL);
    free(b.p);
    s.skip_key = "general.architecture";
    build(&b, &s);
    expect_load_fail(&b, SG_EFORMAT, "'general.architecture' is absent", NULL);
    free(b.p);
    s.skip_key = NULL;
    s.str_key = "gemma2.embedding_length";
    build(&b, &s);
    expect_load_fail(&b, SG_EFORMAT, "key 'gemma2.embedding_length'",
                     "expected an integer, found string", NULL);
    free(b.p);
    s.str_key = NULL;
    s.arch = "llama";
    build(&b, &s);
    expect_load_fail(&b, SG_EUNSUPPORTED, "architecture 'llama' is not supported", NULL);
    free(b.p);
    s.arch = NULL;
    s.extra = extra_kv_mismatch;
    build(&b, &s);
    expect_load_fail(&b, SG_EUNSUPPORTED, "value_length", "32 differs from key_length 16", NULL);
    free(b.p);
    s.extra = extra_bad_cap;
    build(&b, &s);
    expect_load_fail(&b, SG_EFORMAT, "gemma2.attn_logit_softcapping", "finite", NULL);
    free(b.p);
}
END_TEST

/* Every prefix of a valid file is rejected cleanly (and never read past). */
START_TEST(test_every_truncation)
{
    gb b;
    mspec s = {.extra = extra_all_types};
    char err[512];

    build(&b, &s);
    for (size_t n = 0; n < b.n; n++) {
        sg_gguf *g = (sg_gguf *)0x1;
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan sees any overread */
        ck_assert_ptr_nonnull(copy);
        memcpy(copy, b.p, n);
        int rc = sg_gguf_open_mem(&g, copy, n, "cut.gguf", err, sizeof err);
        ck_assert_msg(rc == SG_EFORMAT, "prefix %zu: rc %d", n, rc);
        ck_assert_ptr_null(g);
        free(copy);
    }
    free(b.p);
}
END_TEST

Suite *gguf_suite(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_tiny_a_f32);
    tcase_add_test(tc, test_tiny_a_bf16);
    tcase_add_test(tc, test_tiny_a_same_values);
    tcase_add_test(tc, test_tiny_a_metadata);
    tcase_add_test(tc, test_quant_fixtures);
    tcase_add_test(tc, test_open_errors);
    tcase_add_test(tc, test_built_good_and_defaults);
    tcase_add_test(tc, test_query_scale_27b);
    tcase_add_test(tc, test_explicit_hparams);
    tcase_add_test(tc, test_gemma1_names);
    tcase_add_test(tc, test_metadata_types);
    tcase_add_test(tc, test_bad_magic_version_header);
    tcase_add_test(tc, test_bad_counts);
    tcase_add_test(tc, test_bad_metadata);
    tcase_add_test(tc, test_bad_alignment);
    tcase_add_test(tc, test_bad_tensors);
    tcase_add_test(tc, test_bad_keys);
    tcase_add_test(tc, test_every_truncation);
    suite_add_tcase(s, tc);
    return s;
}
