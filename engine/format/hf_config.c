/*
 * hf_config.c: Hugging Face config.json for Gemma 2 (and Gemma 1) -> sg_model_info (see hf_config.h).
 */
#include "hf_config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "file.h"

#define CONFIG_MAX_BYTES (16u << 20) /* a config.json is a few KiB; refuse absurd files */

struct cfg {
    json_t *root;
    const char *fname;
    char *err;
    size_t errlen;
};

/* A short description of a JSON value for messages: `integer 3`, `string "abc"`, `null`. */
static void describe(const json_t *v, char *buf, size_t len)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        snprintf(buf, len, "an object");
        break;
    case JSON_ARRAY:
        snprintf(buf, len, "an array");
        break;
    case JSON_STRING:
        snprintf(buf, len, "string \"%.40s\"", json_string_value(v));
        break;
    case JSON_INTEGER:
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(buf, len, "%g", json_real_value(v));
        break;
    case JSON_TRUE:
        snprintf(buf, len, "true");
        break;
    case JSON_FALSE:
        snprintf(buf, len, "false");
        break;
    default:
        snprintf(buf, len, "null");
        break;
    }
}

static int bad(struct cfg *c, const char *key, const char *expected, const json_t *found)
{
    char f[80];

    if (found)
        describe(found, f, sizeof f);
    else
        snprintf(f, sizeof f, "no such key");
    snprintf(c->err, c->errlen, "%s: key '%s': expected %s, found %s", c->fname, key, expected,
             f);
    return SG_EFORMAT;
}

/* An integer key in [lo, hi]; absent -> `def` unless `required`. */
static int get_int(struct cfg *c, const char *key, int required, long long def, long long lo,
                   long long hi, int *out)
{
    json_t *v = json_object_get(c->root, key);
    char exp[96];

    snprintf(exp, sizeof exp, "an integer in %lld..%lld", lo, hi);
    if (!v) {
        if (required)
            return bad(c, key, exp, NULL);
        *out = (int)def;
        return SG_OK;
    }
    if (!json_is_integer(v))
        return bad(c, key, exp, v);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return bad(c, key, exp, v);
    *out = (int)x;
    return SG_OK;
}

/* A number key (integer or real) in [lo, hi]; absent -> `def` unless `required`; null -> `def`
 * when `null_ok` (soft-caps: null means none). */
static int get_num(struct cfg *c, const char *key, int required, int null_ok, double def,
                   double lo, double hi, double *out)
{
    json_t *v = json_object_get(c->root, key);
    char exp[96];

    snprintf(exp, sizeof exp, "a number in %g..%g%s", lo, hi, null_ok ? " or null" : "");
    if (!v) {
        if (required)
            return bad(c, key, exp, NULL);
        *out = def;
        return SG_OK;
    }
    if (json_is_null(v) && null_ok) {
        *out = def;
        return SG_OK;
    }
    if (!json_is_number(v))
        return bad(c, key, exp, v);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return bad(c, key, exp, v);
    *out = x;
    return SG_OK;
}

/* eos_token_id may be an integer or a list of them (the first is used). */
static int get_token_id(struct cfg *c, const char *key, int def, int n_vocab, int *out)
{
    json_t *v = json_object_get(c->root, key);
    char exp[96];

    snprintf(exp, sizeof exp, "a token id in 0..%d (or a list of them)", n_vocab - 1);
    if (!v || json_is_null(v)) {
        if (def >= n_vocab) {
            snprintf(c->err, c->errlen,
                     "%s: key '%s': absent, and its default id %d is outside the vocabulary "
                     "(vocab_size %d); give the id explicitly",
                     c->fname, key, def, n_vocab);
            return SG_EFORMAT;
        }
        *out = def;
        return SG_OK;
    }
    if (json_is_array(v)) {
        if (json_array_size(v) == 0)
            return bad(c, key, exp, v);
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i);
            if (!json_is_integer(e) || json_integer_value(e) < 0 ||
                json_integer_value(e) >= n_vocab)
                return bad(c, key, exp, e);
        }
        *out = (int)json_integer_value(json_array_get(v, 0));
        return SG_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= n_vocab)
        return bad(c, key, exp, v);
    *out = (int)json_integer_value(v);
    return SG_OK;
}

/* hidden_activation (or hidden_act): Gemma uses the tanh approximation of GELU. */
static int check_activation(struct cfg *c)
{
    static const char *const keys[] = {"hidden_activation", "hidden_act"};

    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(c->root, keys[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_string(v))
            return bad(c, keys[i], "a string", v);
        const char *s = json_string_value(v);
        /* Gemma 1 configs say "gelu" yet HF runs gelu_pytorch_tanh for them. */
        if (strcmp(s, "gelu_pytorch_tanh") != 0 && strcmp(s, "gelu") != 0 &&
            strcmp(s, "gelu_tanh") != 0) {
            snprintf(c->err, c->errlen,
                     "%s: key '%s': expected \"gelu_pytorch_tanh\", found \"%.40s\" "
                     "(unsupported activation)",
                     c->fname, keys[i], s);
            return SG_EUNSUPPORTED;
        }
        return SG_OK;
    }
    return SG_OK;
}

/* layer_types, when present, must be the Gemma 2 pattern: even layers sliding, odd global. */
static int check_layer_types(struct cfg *c, int n_layer)
{
    json_t *v = json_object_get(c->root, "layer_types");
    char exp[96];

    if (!v || json_is_null(v))
        return SG_OK;
    snprintf(exp, sizeof exp, "an array of %d layer types", n_layer);
    if (!json_is_array(v) || json_array_size(v) != (size_t)n_layer)
        return bad(c, "layer_types", exp, v);
    for (int i = 0; i < n_layer; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        const char *want = i % 2 == 0 ? "sliding_attention" : "full_attention";
        if (!json_is_string(e))
            return bad(c, "layer_types", "strings", e);
        if (strcmp(json_string_value(e), want) != 0) {
            snprintf(c->err, c->errlen,
                     "%s: key 'layer_types': entry %d: expected \"%s\", found \"%.40s\" "
                     "(only the Gemma 2 alternation is supported)",
                     c->fname, i, want, json_string_value(e));
            return SG_EUNSUPPORTED;
        }
    }
    return SG_OK;
}

int sg_config_parse(const char *json, size_t len, const char *fname, sg_model_info *info,
                    char *err, size_t errlen)
{
    struct cfg c = {NULL, fname, err, errlen};
    json_error_t jerr;
    sg_model_info mi;
    int rc;
    double d;

    memset(&mi, 0, sizeof mi);
    c.root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!c.root) {
        snprintf(err, errlen, "%s: line %d column %d: %s", fname, jerr.line, jerr.column,
                 jerr.text);
        return SG_EFORMAT;
    }
    if (!json_is_object(c.root)) {
        snprintf(err, errlen, "%s: expected a JSON object at the top level", fname);
        rc = SG_EFORMAT;
        goto fail;
    }

    json_t *mt = json_object_get(c.root, "model_type");
    if (!mt || !json_is_string(mt)) {
        rc = bad(&c, "model_type", "a string (\"gemma2\" or \"gemma\")", mt);
        goto fail;
    }
    if (strcmp(json_string_value(mt), "gemma2") != 0 &&
        strcmp(json_string_value(mt), "gemma") != 0) {
        snprintf(err, errlen,
                 "%s: key 'model_type': expected \"gemma2\" or \"gemma\", found \"%.40s\" "
                 "(unsupported architecture)",
                 fname, json_string_value(mt));
        rc = SG_EUNSUPPORTED;
        goto fail;
    }
    snprintf(mi.arch, sizeof mi.arch, "%s", json_string_value(mt));
    const int gemma2 = strcmp(mi.arch, "gemma2") == 0;

    if ((rc = get_int(&c, "vocab_size", 1, 0, 1, 1 << 24, &mi.n_vocab)) ||
        (rc = get_int(&c, "hidden_size", 1, 0, 1, 1 << 16, &mi.d_model)) ||
        (rc = get_int(&c, "intermediate_size", 1, 0, 1, 1 << 20, &mi.d_ff)) ||
        (rc = get_int(&c, "num_hidden_layers", 1, 0, 1, 1024, &mi.n_layer)) ||
        (rc = get_int(&c, "num_attention_heads", 1, 0, 1, 1024, &mi.n_head)) ||
        (rc = get_int(&c, "head_dim", 1, 0, 2, 4096, &mi.head_dim)) ||
        (rc = get_int(&c, "max_position_embeddings", 0, 8192, 1, 1 << 24, &mi.n_ctx)))
        goto fail;
    /* Gemma 1 2B is multi-query: num_key_value_heads is then 1 (its default when absent). */
    if ((rc = get_int(&c, "num_key_value_heads", gemma2, 1, 1, mi.n_head, &mi.n_kv_head)))
        goto fail;
    if (mi.n_head % mi.n_kv_head != 0) {
        char exp[96];
        snprintf(exp, sizeof exp, "a positive integer dividing num_attention_heads (%d)",
                 mi.n_head);
        rc = bad(&c, "num_key_value_heads", exp, json_object_get(c.root, "num_key_value_heads"));
        goto fail;
    }
    if (mi.head_dim % 2 != 0) {
        rc = bad(&c, "head_dim", "an even integer (RoPE pairs halves)",
                 json_object_get(c.root, "head_dim"));
        goto fail;
    }
    if (gemma2) {
        if ((rc = get_int(&c, "sliding_window", 0, 4096, 1, 1 << 24, &mi.sliding_window)))
            goto fail;
    } else {
        mi.sliding_window = 0; /* Gemma 1: every layer global */
    }

    if ((rc = get_num(&c, "rms_norm_eps", 0, 0, 1e-6, 1e-12, 0.1, &d)))
        goto fail;
    mi.rms_eps = (float)d;
    if ((rc = get_num(&c, "rope_theta", 0, 0, 10000.0, 1.0, 1e12, &d)))
        goto fail;
    mi.rope_theta = (float)d;
    if ((rc = get_num(&c, "query_pre_attn_scalar", 0, 0, (double)mi.head_dim, 1e-3, 1e9, &d)))
        goto fail;
    mi.query_scale = (float)(1.0 / sqrt(d));
    if (gemma2) {
        if ((rc = get_num(&c, "attn_logit_softcapping", 0, 1, 0.0, 0.0, 1e9, &d)))
            goto fail;
        mi.attn_softcap = (float)d;
        if ((rc = get_num(&c, "final_logit_softcapping", 0, 1, 0.0, 0.0, 1e9, &d)))
            goto fail;
        mi.final_softcap = (float)d;
    }
    mi.embed_scale = (float)sqrt((double)mi.d_model);

    if ((rc = get_token_id(&c, "bos_token_id", 2, mi.n_vocab, &mi.bos_id)) ||
        (rc = get_token_id(&c, "eos_token_id", 1, mi.n_vocab, &mi.eos_id)))
        goto fail;

    json_t *tie = json_object_get(c.root, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie)) {
        rc = bad(&c, "tie_word_embeddings", "true or false", tie);
        goto fail;
    }
    if (tie && json_is_false(tie)) {
        snprintf(err, errlen,
                 "%s: key 'tie_word_embeddings': expected true, found false "
                 "(an untied LM head is not supported)",
                 fname);
        rc = SG_EUNSUPPORTED;
        goto fail;
    }
    if ((rc = check_activation(&c)) || (rc = check_layer_types(&c, mi.n_layer)))
        goto fail;

    *info = mi;
    json_decref(c.root);
    return SG_OK;
fail:
    json_decref(c.root);
    return rc;
}

int sg_config_load(const char *path, sg_model_info *info, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = sg_read_file(path, CONFIG_MAX_BYTES, &buf, &len, err, errlen);

    if (rc == SG_OK)
        rc = sg_config_parse(buf, len, path, info, err, errlen);
    free(buf);
    return rc;
}
