/*
 * check_loader.c: model files that must be refused, each with the right error code and a
 * message naming the file and the tensor or key: safetensors headers (parsed from memory),
 * config.json, and whole model folders written to a temporary directory from the tiny-a fixture.
 */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_config.h"
#include "lib/engine_fixtures.h"
#include "safetensors.h"
#include "sg_engine.h"

Suite *loader_suite(void);

/* ---- safetensors headers from memory ------------------------------------------------------- */

/* 8-byte length (hlen, or strlen(header) when hlen == UINT64_MAX), header, data_len bytes. */
static unsigned char *mk_st(const char *header, uint64_t hlen, size_t data_len, size_t *len)
{
    size_t hl = strlen(header);
    unsigned char *b = calloc(1, 8 + hl + data_len + 1);

    ck_assert_ptr_nonnull(b);
    if (hlen == UINT64_MAX)
        hlen = hl;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++)
        b[8 + hl + i] = (unsigned char)i;
    *len = 8 + hl + data_len;
    return b;
}

/* Parse and expect `rc`, with every substring of `subs` (NULL-terminated) in the message. */
static void expect_st(const char *header, uint64_t hlen, size_t data_len, int rc,
                      const char *const *subs)
{
    size_t len;
    unsigned char *b = mk_st(header, hlen, data_len, &len);
    sg_tensor *ts = NULL;
    size_t n = 0;
    char err[512] = "";

    int got = sg_st_parse(b, len, "bad.safetensors", &ts, &n, err, sizeof err);
    ck_assert_msg(got == rc, "header %s: expected %d, got %d (%s)", header, rc, got, err);
    for (int i = 0; subs && subs[i]; i++)
        ck_assert_msg(strstr(err, subs[i]) != NULL, "message '%s' lacks '%s'", err, subs[i]);
    if (rc != SG_OK) {
        ck_assert_ptr_null(ts);
        ck_assert_uint_eq(n, 0);
    }
    free(ts);
    free(b);
}

#define SUBS(...) ((const char *const[]){__VA_ARGS__, NULL})

START_TEST(test_st_good_unaligned)
{
    /* F32 "a" [2] at offset 1 (unaligned), BF16 "b" [3] at 9; a gap at 0 is allowed. */
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,3],\"data_offsets\":[9,15]},"
                    "\"s\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[15,17]}}";
    size_t len;
    unsigned char *buf = mk_st(h, UINT64_MAX, 17, &len);
    sg_tensor *ts;
    size_t n;
    char err[256];

    ck_assert_int_eq(sg_st_parse(buf, len, "x.safetensors", &ts, &n, err, sizeof err), SG_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(ts[0].name, "a");
    ck_assert_int_eq(ts[0].dtype, SG_DT_F32);
    ck_assert_int_eq(ts[0].ndim, 1);
    ck_assert_int_eq(ts[0].shape[0], 2);
    ck_assert_ptr_eq(ts[0].data, buf + 8 + strlen(h) + 1);
    ck_assert_uint_eq(ts[0].nbytes, 8);
    ck_assert_str_eq(ts[1].name, "b");
    ck_assert_int_eq(ts[1].dtype, SG_DT_BF16);
    ck_assert_int_eq(ts[1].ndim, 2);
    ck_assert_int_eq(ts[1].shape[1], 3);
    ck_assert_int_eq(ts[2].ndim, 0);
    ck_assert_int_eq(ts[2].dtype, SG_DT_F16);
    free(ts);
    free(buf);
}
END_TEST

START_TEST(test_st_bad_headers)
{
    size_t len;
    unsigned char *b = mk_st("{}", UINT64_MAX, 0, &len);
    sg_tensor *ts;
    size_t n;
    char err[256];

    /* Shorter than the length field. */
    ck_assert_int_eq(sg_st_parse(b, 5, "short.safetensors", &ts, &n, err, sizeof err),
                     SG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "short.safetensors"));
    ck_assert_ptr_nonnull(strstr(err, "8-byte"));
    free(b);

    /* Header length past the end of the file. */
    expect_st("{}", 1000, 0, SG_EFORMAT, SUBS("bad.safetensors", "header length 1000", "past"));
    expect_st("{}", UINT64_MAX - 3, 0, SG_EFORMAT, SUBS("header length"));
    /* Truncated header: the length is right but the JSON stops. */
    expect_st("{\"a\":{\"dtype\":\"F32\",\"sha", UINT64_MAX, 0, SG_EFORMAT,
              SUBS("bad.safetensors", "header JSON"));
    /* Bad JSON, and JSON that is not an object. */
    expect_st("{not json}", UINT64_MAX, 0, SG_EFORMAT, SUBS("header JSON"));
    expect_st("[1, 2, 3]", UINT64_MAX, 0, SG_EFORMAT, SUBS("expected an object"));
    /* Data outside the file. */
    expect_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}", UINT64_MAX,
              16, SG_EFORMAT, SUBS("bad.safetensors", "'w'", "past the end"));
    /* Overlapping tensors. */
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
              UINT64_MAX, 24, SG_EFORMAT, SUBS("'a'", "'b'", "overlap"));
    /* Unknown dtype, and a known one this engine does not read. */
    expect_st("{\"w\":{\"dtype\":\"Q9\",\"shape\":[4],\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
              SG_EFORMAT, SUBS("'w'", "unknown dtype 'Q9'"));
    expect_st("{\"w\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[0,16]}}", UINT64_MAX,
              16, SG_EUNSUPPORTED, SUBS("'w'", "I32"));
    /* Size not matching shape x dtype. */
    expect_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", UINT64_MAX,
              16, SG_EFORMAT, SUBS("'w'", "need 16 bytes", "give 12"));
    /* Duplicate tensor names. */
    expect_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
              UINT64_MAX, 8, SG_EFORMAT, SUBS("duplicate", "\"w\""));
    /* Bad shapes and offsets. */
    expect_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
              SG_EFORMAT, SUBS("'w'", "shape[0]"));
    expect_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}",
              UINT64_MAX, 4, SG_EUNSUPPORTED, SUBS("'w'", "5 dimensions"));
    expect_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", UINT64_MAX, 4,
              SG_EFORMAT, SUBS("'w'", "begin <= end"));
    expect_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", UINT64_MAX, 4, SG_EFORMAT,
              SUBS("'w'", "data_offsets"));
    expect_st("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", UINT64_MAX, 4, SG_EFORMAT,
              SUBS("'w'", "dtype"));
    expect_st("{\"w\":[1]}", UINT64_MAX, 4, SG_EFORMAT, SUBS("'w'"));
    expect_st("{\"__metadata__\":{\"k\":1}}", UINT64_MAX, 0, SG_EFORMAT,
              SUBS("__metadata__.k"));
    expect_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
              "\"data_offsets\":[0,4]}}",
              UINT64_MAX, 4, SG_EFORMAT, SUBS("'w'"));
    char longname[300];
    memset(longname, 'n', sizeof longname);
    longname[sizeof longname - 1] = 0;
    char h[600];
    snprintf(h, sizeof h, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
             longname);
    expect_st(h, UINT64_MAX, 4, SG_EFORMAT, SUBS("name longer"));
}
END_TEST

START_TEST(test_st_index_parse)
{
    char **sh = NULL;
    size_t n = 0;
    char err[256];
    const char *good = "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\","
                       "\"c\":\"s1.safetensors\"}}";

    ck_assert_int_eq(sg_st_parse_index(good, strlen(good), "idx.json", &sh, &n, err, sizeof err),
                     SG_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(sh[0], "s1.safetensors");
    ck_assert_str_eq(sh[1], "s2.safetensors");
    for (size_t i = 0; i < n; i++)
        free(sh[i]);
    free(sh);

    const char *escape = "{\"weight_map\":{\"a\":\"../../etc/passwd\"}}";
    ck_assert_int_eq(sg_st_parse_index(escape, strlen(escape), "idx.json", &sh, &n, err,
                                       sizeof err),
                     SG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "weight_map.a"));
    const char *nomap = "{\"metadata\":{}}";
    ck_assert_int_eq(sg_st_parse_index(nomap, strlen(nomap), "idx.json", &sh, &n, err,
                                       sizeof err),
                     SG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "weight_map"));
    ck_assert_int_eq(sg_st_parse_index("{", 1, "idx.json", &sh, &n, err, sizeof err),
                     SG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "idx.json"));
}
END_TEST

/* ---- config.json --------------------------------------------------------------------------- */

static const char *base_config =
    "{\"model_type\":\"gemma2\",\"vocab_size\":4096,\"hidden_size\":64,"
    "\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
    "\"num_key_value_heads\":2,\"head_dim\":16,\"query_pre_attn_scalar\":16,"
    "\"rms_norm_eps\":1e-6,\"rope_theta\":10000.0,\"sliding_window\":8,"
    "\"attn_logit_softcapping\":50.0,\"final_logit_softcapping\":30.0,"
    "\"max_position_embeddings\":8192}";

/* `base` with `key` set to the JSON `value` (NULL: removed); parse; expect rc + subs. */
static void expect_cfg_on(const char *base, const char *key, const char *value, int rc,
                          const char *const *subs, sg_model_info *out)
{
    json_error_t je;
    json_t *root = json_loads(base, 0, &je);
    sg_model_info mi;
    char err[512] = "";

    ck_assert_ptr_nonnull(root);
    if (key && value)
        json_object_set_new(root, key, json_loads(value, JSON_DECODE_ANY, &je));
    else if (key)
        json_object_del(root, key);
    char *text = json_dumps(root, 0);
    int got = sg_config_parse(text, strlen(text), "config.json", &mi, err, sizeof err);
    ck_assert_msg(got == rc, "%s=%s: expected %d, got %d (%s)", key ? key : "-",
                  value ? value : "-", rc, got, err);
    for (int i = 0; subs && subs[i]; i++)
        ck_assert_msg(strstr(err, subs[i]) != NULL, "message '%s' lacks '%s'", err, subs[i]);
    if (out)
        *out = mi;
    free(text);
    json_decref(root);
}

static void expect_cfg(const char *key, const char *value, int rc, const char *const *subs,
                       sg_model_info *out)
{
    expect_cfg_on(base_config, key, value, rc, subs, out);
}

START_TEST(test_config)
{
    sg_model_info mi;
    char err[256];

    expect_cfg(NULL, NULL, SG_OK, NULL, &mi);
    ck_assert_str_eq(mi.arch, "gemma2");
    ck_assert_int_eq(mi.n_kv_head, 2);
    ck_assert_float_eq(mi.query_scale, 0.25f);
    ck_assert_int_eq(mi.bos_id, 2);
    ck_assert_int_eq(mi.eos_id, 1);

    expect_cfg("hidden_size", NULL, SG_EFORMAT,
               SUBS("config.json", "'hidden_size'", "integer", "no such key"), NULL);
    expect_cfg("hidden_size", "\"64\"", SG_EFORMAT,
               SUBS("config.json", "'hidden_size'", "string \"64\""), NULL);
    expect_cfg("hidden_size", "64.5", SG_EFORMAT, SUBS("'hidden_size'", "64.5"), NULL);
    expect_cfg("num_hidden_layers", "0", SG_EFORMAT, SUBS("'num_hidden_layers'", "found 0"),
               NULL);
    expect_cfg("vocab_size", "-5", SG_EFORMAT, SUBS("'vocab_size'"), NULL);
    expect_cfg("num_key_value_heads", "3", SG_EFORMAT,
               SUBS("'num_key_value_heads'", "dividing", "found 3"), NULL);
    expect_cfg("head_dim", "15", SG_EFORMAT, SUBS("'head_dim'", "even"), NULL);
    expect_cfg("rms_norm_eps", "\"small\"", SG_EFORMAT, SUBS("'rms_norm_eps'", "number"), NULL);
    expect_cfg("rope_theta", "-1", SG_EFORMAT, SUBS("'rope_theta'"), NULL);
    expect_cfg("query_pre_attn_scalar", "0", SG_EFORMAT, SUBS("'query_pre_attn_scalar'"), NULL);
    expect_cfg("model_type", "\"llama\"", SG_EUNSUPPORTED, SUBS("'model_type'", "llama"), NULL);
    expect_cfg("model_type", "3", SG_EFORMAT, SUBS("'model_type'"), NULL);
    expect_cfg("hidden_activation", "\"relu\"", SG_EUNSUPPORTED, SUBS("relu"), NULL);
    expect_cfg("tie_word_embeddings", "false", SG_EUNSUPPORTED, SUBS("tie_word_embeddings"),
               NULL);
    expect_cfg("tie_word_embeddings", "1", SG_EFORMAT, SUBS("tie_word_embeddings"), NULL);
    expect_cfg("layer_types", "[\"full_attention\",\"full_attention\"]", SG_EUNSUPPORTED,
               SUBS("layer_types", "sliding_attention"), NULL);
    expect_cfg("layer_types", "[\"sliding_attention\"]", SG_EFORMAT, SUBS("layer_types"),
               NULL);
    expect_cfg("layer_types", "[\"sliding_attention\",\"full_attention\"]", SG_OK, NULL, NULL);
    expect_cfg("eos_token_id", "[1, 107]", SG_OK, NULL, &mi);
    ck_assert_int_eq(mi.eos_id, 1);
    expect_cfg("eos_token_id", "[5000]", SG_EFORMAT, SUBS("eos_token_id"), NULL);
    expect_cfg("bos_token_id", "\"2\"", SG_EFORMAT, SUBS("bos_token_id"), NULL);
    /* A vocabulary too small for the default ids (found by fuzz_config). */
    expect_cfg("vocab_size", "2", SG_EFORMAT,
               SUBS("config.json", "'bos_token_id'", "default id 2", "vocab_size 2"), NULL);
    /* Null soft-caps mean none. */
    expect_cfg("final_logit_softcapping", "null", SG_OK, NULL, &mi);
    ck_assert_float_eq(mi.final_softcap, 0.0f);
    /* 27B: query_pre_attn_scalar 144 with head_dim 128 gives 1/12. */
    expect_cfg("query_pre_attn_scalar", "144", SG_OK, NULL, &mi);
    ck_assert_float_eq_tol(mi.query_scale, 1.0f / 12.0f, 1e-8f);
    /* Gemma 1: no soft-caps, no window, and MQA by default. */
    expect_cfg("model_type", "\"gemma\"", SG_OK, NULL, &mi);
    ck_assert_str_eq(mi.arch, "gemma");
    ck_assert_float_eq(mi.attn_softcap, 0.0f);
    ck_assert_float_eq(mi.final_softcap, 0.0f);
    ck_assert_int_eq(mi.sliding_window, 0);

    ck_assert_int_eq(sg_config_parse("{", 1, "c.json", &mi, err, sizeof err), SG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "c.json"));
    ck_assert_int_eq(sg_config_parse("[]", 2, "c.json", &mi, err, sizeof err), SG_EFORMAT);
    ck_assert_int_eq(sg_config_load("/nonexistent/config.json", &mi, err, sizeof err), SG_EIO);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/config.json"));
}
END_TEST

/* Gemma 3: a multimodal file whose text_config states only what the published 4B states. */
static const char *g3_mm =
    "{\"model_type\":\"gemma3\",\"vision_config\":{\"hidden_size\":1152},"
    "\"eos_token_id\":[1,106],\"text_config\":{\"model_type\":\"gemma3_text\","
    "\"hidden_size\":2560,\"intermediate_size\":10240,\"num_hidden_layers\":34,"
    "\"rope_scaling\":{\"factor\":8.0,\"rope_type\":\"linear\"},\"sliding_window\":1024}}";

static const char *g3_text =
    "{\"model_type\":\"gemma3_text\",\"vocab_size\":300,\"hidden_size\":64,"
    "\"intermediate_size\":128,\"num_hidden_layers\":8,\"num_attention_heads\":4,"
    "\"num_key_value_heads\":2,\"head_dim\":16,\"sliding_window\":5}";

START_TEST(test_config_gemma3)
{
    sg_model_info mi;

    /* Every absent key takes Gemma3TextConfig's default. */
    expect_cfg_on(g3_mm, NULL, NULL, SG_OK, NULL, &mi);
    ck_assert_str_eq(mi.arch, "gemma3");
    ck_assert_int_eq(mi.multimodal, 1);
    ck_assert_int_eq(mi.qk_norm, 1);
    ck_assert_int_eq(mi.n_vocab, 262208);
    ck_assert_int_eq(mi.d_model, 2560);
    ck_assert_int_eq(mi.n_layer, 34);
    ck_assert_int_eq(mi.n_head, 8);
    ck_assert_int_eq(mi.n_kv_head, 4);
    ck_assert_int_eq(mi.head_dim, 256);
    ck_assert_int_eq(mi.n_ctx, 131072);
    ck_assert_int_eq(mi.sliding_window, 1024);
    ck_assert_float_eq(mi.query_scale, 1.0f / 16.0f);
    ck_assert_float_eq(mi.rope_theta, 1e6f);
    ck_assert_float_eq(mi.rope_scale, 8.0f);
    ck_assert_float_eq(mi.rope_local_theta, 1e4f);
    ck_assert_float_eq(mi.rope_local_scale, 1.0f);
    ck_assert_float_eq(mi.attn_softcap, 0.0f);
    ck_assert_float_eq(mi.final_softcap, 0.0f);
    ck_assert_int_eq(mi.eos_id, 1);
    for (int l = 0; l < 34; l++)
        ck_assert_int_eq(mi.layer_sliding[l], (l + 1) % 6 != 0);
    ck_assert_int_eq(mi.layer_sliding[34], 0);

    expect_cfg_on(g3_text, NULL, NULL, SG_OK, NULL, &mi);
    ck_assert_int_eq(mi.multimodal, 0);
    ck_assert_float_eq(mi.rope_scale, 1.0f);
    expect_cfg_on(g3_text, "sliding_window_pattern", "2", SG_OK, NULL, &mi);
    ck_assert_int_eq(mi.layer_sliding[0], 1);
    ck_assert_int_eq(mi.layer_sliding[1], 0);
    expect_cfg_on(g3_text, "layer_types",
                  "[\"full_attention\",\"sliding_attention\",\"full_attention\","
                  "\"full_attention\",\"sliding_attention\",\"sliding_attention\","
                  "\"full_attention\",\"sliding_attention\"]",
                  SG_OK, NULL, &mi);
    for (int l = 0; l < 8; l++)
        ck_assert_int_eq(mi.layer_sliding[l], "FSFFSSFS"[l] == 'S');
    expect_cfg_on(g3_text, "rope_parameters",
                  "{\"full_attention\":{\"rope_type\":\"linear\",\"factor\":2,"
                  "\"rope_theta\":5e5},\"sliding_attention\":{\"rope_type\":\"default\","
                  "\"rope_theta\":2e4}}",
                  SG_OK, NULL, &mi);
    ck_assert_float_eq(mi.rope_theta, 5e5f);
    ck_assert_float_eq(mi.rope_scale, 2.0f);
    ck_assert_float_eq(mi.rope_local_theta, 2e4f);
    /* Gemma 2: rope_scaling applies to every layer. */
    expect_cfg("rope_scaling", "{\"type\":\"linear\",\"factor\":2}", SG_OK, NULL, &mi);
    ck_assert_float_eq(mi.rope_scale, 2.0f);
    ck_assert_float_eq(mi.rope_local_scale, 2.0f);
    ck_assert_int_eq(mi.qk_norm, 0);

    expect_cfg_on(g3_text, "rope_scaling", "{\"rope_type\":\"yarn\",\"factor\":4}",
                  SG_EUNSUPPORTED, SUBS("'rope_scaling.rope_type'", "yarn", "RoPE scaling"),
                  NULL);
    expect_cfg_on(g3_text, "rope_scaling", "{\"rope_type\":\"linear\"}", SG_EFORMAT,
                  SUBS("'rope_scaling.factor'"), NULL);
    expect_cfg_on(g3_text, "rope_parameters", "{\"sliding_attention\":{\"rope_theta\":-1}}",
                  SG_EFORMAT, SUBS("'rope_parameters.sliding_attention.rope_theta'"), NULL);
    expect_cfg_on(g3_text, "layer_types", "[\"sliding_attention\"]", SG_EFORMAT,
                  SUBS("'layer_types'", "8 layer types"), NULL);
    expect_cfg_on(g3_text, "sliding_window_pattern", "0", SG_EFORMAT,
                  SUBS("'sliding_window_pattern'"), NULL);
    expect_cfg_on(g3_text, "attention_bias", "true", SG_EUNSUPPORTED, SUBS("'attention_bias'"),
                  NULL);
    expect_cfg_on(g3_text, "use_bidirectional_attention", "true", SG_EUNSUPPORTED,
                  SUBS("'use_bidirectional_attention'"), NULL);
    expect_cfg_on(g3_text, "rope_local_base_freq", "0", SG_EFORMAT,
                  SUBS("'rope_local_base_freq'"), NULL);
    expect_cfg_on(g3_mm, "text_config", "[]", SG_EFORMAT, SUBS("'text_config'", "an object"),
                  NULL);
    expect_cfg_on(g3_mm, "text_config", NULL, SG_EFORMAT, SUBS("'text_config'", "no such key"),
                  NULL);
}
END_TEST

/* ---- whole model folders ------------------------------------------------------------------- */

typedef void (*hdr_edit)(json_t *hdr);

/* Write a copy of tiny-a/hf_f32 into `dir`, its safetensors header edited by `edit` (the data
 * section is kept as is) and config.json edited by `cfg_key` = `cfg_value` (JSON; NULL value
 * removes the key; NULL key leaves it). */
static void make_model(const char *dir, hdr_edit edit, const char *cfg_key,
                       const char *cfg_value)
{
    char src[4096], dst[4200];
    size_t len;
    json_error_t je;

    unsigned char *file;
    uint64_t hlen;
    json_t *hdr = fx_st_read("tiny-a/hf_f32/model.safetensors", &file, &len, &hlen);

    if (edit)
        edit(hdr);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    fx_st_write(dst, hdr, file + 8 + hlen, len - 8 - hlen);
    json_decref(hdr);
    free(file);

    fx_path(src, sizeof src, "tiny-a/hf_f32/config.json");
    json_t *cfg = json_load_file(src, 0, &je);
    ck_assert_ptr_nonnull(cfg);
    if (cfg_key && cfg_value)
        json_object_set_new(cfg, cfg_key, json_loads(cfg_value, JSON_DECODE_ANY, &je));
    else if (cfg_key)
        json_object_del(cfg, cfg_key);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    ck_assert_int_eq(json_dump_file(cfg, dst, JSON_INDENT(2)), 0);
    json_decref(cfg);
}

static void expect_open(const char *path, int rc, const char *const *subs)
{
    sg_model *m = NULL;
    char err[1024] = "";
    sg_model_opts o = sg_model_opts_default();

    o.load_tokenizer = 0;
    int got = sg_model_open(&m, path, &o, err, sizeof err);
    ck_assert_msg(got == rc, "%s: expected %d, got %d (%s)", path, rc, got, err);
    for (int i = 0; subs && subs[i]; i++)
        ck_assert_msg(strstr(err, subs[i]) != NULL, "message '%s' lacks '%s'", err, subs[i]);
    if (rc == SG_OK)
        ck_assert_ptr_nonnull(m);
    else
        ck_assert_ptr_null(m);
    sg_model_close(m);
}

static void drop_up_proj(json_t *hdr)
{
    json_object_del(hdr, "model.layers.1.mlp.up_proj.weight");
}

static void transpose_k_proj(json_t *hdr)
{
    json_t *e = json_object_get(hdr, "model.layers.0.self_attn.k_proj.weight");
    json_object_set_new(e, "shape", json_pack("[i,i]", 64, 32));
}

static void bad_norm_dtype(json_t *hdr)
{
    json_t *e = json_object_get(hdr, "model.norm.weight");
    json_object_set_new(e, "dtype", json_string("F64"));
    json_object_set_new(e, "shape", json_pack("[i]", 32));
}

START_TEST(test_model_errors)
{
    char dir[1024], path[2048];

    fx_tmpdir(dir, sizeof dir);
    /* The unedited copy opens. */
    make_model(dir, NULL, NULL, NULL);
    expect_open(dir, SG_OK, NULL);

    make_model(dir, drop_up_proj, NULL, NULL);
    expect_open(dir, SG_EFORMAT, SUBS(dir, "missing tensor", "model.layers.1.mlp.up_proj.weight"));

    make_model(dir, transpose_k_proj, NULL, NULL);
    expect_open(dir, SG_ESHAPE,
                SUBS("model.layers.0.self_attn.k_proj.weight", "[32, 64]", "found [64, 32]"));

    make_model(dir, NULL, "intermediate_size", "256");
    expect_open(dir, SG_ESHAPE, SUBS("model.layers.0.mlp.gate_proj.weight", "[256, 64]",
                                     "found [128, 64]"));

    make_model(dir, bad_norm_dtype, NULL, NULL);
    expect_open(dir, SG_EUNSUPPORTED, SUBS("model.safetensors", "model.norm.weight", "F64"));

    make_model(dir, NULL, "hidden_size", NULL);
    expect_open(dir, SG_EFORMAT, SUBS("config.json", "'hidden_size'", "no such key"));

    make_model(dir, NULL, "num_attention_heads", "\"four\"");
    expect_open(dir, SG_EFORMAT, SUBS("config.json", "'num_attention_heads'", "\"four\""));

    make_model(dir, NULL, "model_type", "\"mistral\"");
    expect_open(dir, SG_EUNSUPPORTED, SUBS("config.json", "mistral"));

    /* A single .safetensors file finds config.json beside it. */
    make_model(dir, NULL, NULL, NULL);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    expect_open(path, SG_OK, NULL);

    /* No config.json. */
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    expect_open(dir, SG_EIO, SUBS("config.json"));

    /* A folder without weights, and paths that are not models. */
    make_model(dir, NULL, NULL, NULL);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    expect_open(dir, SG_EIO, SUBS("no model.safetensors"));
    expect_open("/nonexistent/model", SG_EIO, SUBS("/nonexistent/model"));
    snprintf(path, sizeof path, "%s/config.json", dir);
    expect_open(path, SG_EINVAL, SUBS("expected a model folder"));
    fx_rmdir(dir);
}
END_TEST

START_TEST(test_sharded_errors)
{
    char dir[1024], path[2048], src[2048];

    fx_tmpdir(dir, sizeof dir);
    make_model(dir, NULL, NULL, NULL);
    snprintf(src, sizeof src, "%s/model.safetensors", dir);
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    fx_copy(src, path);
    unlink(src);

    /* The index names a shard that is not there. */
    const char *idx1 = "{\"weight_map\":{\"model.norm.weight\":\"model-00001-of-00002.safetensors\","
                       "\"model.embed_tokens.weight\":\"model-00002-of-00002.safetensors\"}}";
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    fx_write(path, idx1, strlen(idx1));
    expect_open(dir, SG_EIO, SUBS("model.safetensors.index.json", "model-00002-of-00002"));

    /* Both shards hold the same tensors: duplicates. */
    snprintf(src, sizeof src, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    fx_copy(src, path);
    expect_open(dir, SG_EFORMAT, SUBS("duplicate tensor", "model-00002-of-00002.safetensors"));

    /* The index puts a tensor in a shard that lacks it. */
    unlink(path);
    const char *idx2 = "{\"weight_map\":{\"model.norm.weight\":\"model-00001-of-00002.safetensors\","
                       "\"lm_head.weight\":\"model-00001-of-00002.safetensors\"}}";
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    fx_write(path, idx2, strlen(idx2));
    expect_open(dir, SG_EFORMAT, SUBS("lm_head.weight", "missing tensor"));

    /* Bad index JSON. */
    fx_write(path, "{\"weight_map\":", 14);
    expect_open(dir, SG_EFORMAT, SUBS("model.safetensors.index.json"));
    fx_rmdir(dir);
}
END_TEST

Suite *loader_suite(void)
{
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_st_good_unaligned);
    tcase_add_test(tc, test_st_bad_headers);
    tcase_add_test(tc, test_st_index_parse);
    tcase_add_test(tc, test_config);
    tcase_add_test(tc, test_config_gemma3);
    tcase_add_test(tc, test_model_errors);
    tcase_add_test(tc, test_sharded_errors);
    suite_add_tcase(s, tc);
    return s;
}
