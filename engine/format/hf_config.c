/*
 * hf_config.c: Hugging Face config.json for Gemma 3 (text and multimodal), Gemma 2 and Gemma 1
 * -> sg_model_info (see hf_config.h).
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
    json_t *top;        /* the whole file */
    json_t *root;       /* where the language model's keys are: top, or top.text_config */
    const char *scope;  /* "" or "text_config." (prefixes key names in messages) */
    const char *family; /* whose defaults fill absent keys, for the log line */
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
    snprintf(c->err, c->errlen, "%s: key '%s%s': expected %s, found %s", c->fname, c->scope, key,
             expected, f);
    return SG_EFORMAT;
}

/* An absent key takes its default: said at info level (shieldctl logits --verbose shows it). */
static void log_default(const struct cfg *c, const char *key, const char *value)
{
    sg_log(SG_LOG_INFO, "%s: key '%s%s' absent: %s (the %s default)", c->fname, c->scope, key,
           value, c->family);
}

/* An integer key in [lo, hi]; absent -> `def` unless `required`. */
static int get_int(struct cfg *c, const char *key, int required, long long def, long long lo,
                   long long hi, int *out)
{
    json_t *v = json_object_get(c->root, key);
    char exp[96];

    snprintf(exp, sizeof exp, "an integer in %lld..%lld", lo, hi);
    if (!v) {
        char val[32];

        if (required)
            return bad(c, key, exp, NULL);
        snprintf(val, sizeof val, "%lld", def);
        log_default(c, key, val);
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
        char val[32];

        if (required)
            return bad(c, key, exp, NULL);
        if (null_ok && def == 0)
            snprintf(val, sizeof val, "none");
        else
            snprintf(val, sizeof val, "%g", def);
        log_default(c, key, val);
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
    if (!v && c->root != c->top) /* the multimodal file states them at its top level */
        v = json_object_get(c->top, key);
    if (!v || json_is_null(v)) {
        char val[32];

        if (def >= n_vocab) {
            snprintf(c->err, c->errlen,
                     "%s: key '%s%s': absent, and its default id %d is outside the vocabulary "
                     "(vocab_size %d); give the id explicitly",
                     c->fname, c->scope, key, def, n_vocab);
            return SG_EFORMAT;
        }
        snprintf(val, sizeof val, "%d", def);
        log_default(c, key, val);
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
                     "%s: key '%s%s': expected \"gelu_pytorch_tanh\", found \"%.40s\" "
                     "(unsupported activation)",
                     c->fname, c->scope, keys[i], s);
            return SG_EUNSUPPORTED;
        }
        return SG_OK;
    }
    return SG_OK;
}

/* The families config.json may name, with the defaults of their Hugging Face configuration class
 * for what is absent. Gemma 1 and 2 configs on the Hub state their shapes, so those are required
 * there; Gemma3TextConfig documents a default for every key, and the published Gemma 3 files
 * (the multimodal ones above all) leave many out, so every key has its default. */
enum family { FAM_GEMMA1, FAM_GEMMA2, FAM_GEMMA3 };

struct family_defaults {
    const char *name;    /* in log lines */
    int shapes_required; /* vocab_size .. head_dim must be present */
    long long vocab, hidden, ff, layers, heads, kv_heads, head_dim, n_ctx, window, pattern;
    double theta, local_theta, qpas; /* qpas 0: head_dim */
};

static const struct family_defaults defaults[] = {
    [FAM_GEMMA1] = {"gemma", 1, 0, 0, 0, 0, 0, 1, 0, 8192, 0, 0, 10000.0, 10000.0, 0},
    [FAM_GEMMA2] = {"gemma2", 1, 0, 0, 0, 0, 0, 0, 0, 8192, 4096, 2, 10000.0, 10000.0, 0},
    /* configuration_gemma3.py, Gemma3TextConfig.__init__ */
    [FAM_GEMMA3] = {"gemma3_text", 0, 262208, 2304, 9216, 26, 8, 4, 256, 131072, 4096, 6,
                    1000000.0, 10000.0, 256},
};

/* Unsupported "model_type" or the multimodal wrapper: pick the family and where its keys are. */
static int find_family(struct cfg *c, sg_model_info *mi, enum family *fam)
{
    json_t *mt = json_object_get(c->top, "model_type");

    if (!mt || !json_is_string(mt))
        return bad(c, "model_type", "a string (\"gemma3_text\", \"gemma3\", \"gemma2\" or "
                   "\"gemma\")", mt);
    const char *t = json_string_value(mt);
    if (strcmp(t, "gemma2") == 0 || strcmp(t, "gemma") == 0) {
        *fam = t[5] ? FAM_GEMMA2 : FAM_GEMMA1;
        snprintf(mi->arch, sizeof mi->arch, "%s", t);
        return SG_OK;
    }
    if (strcmp(t, "gemma3_text") != 0 && strcmp(t, "gemma3") != 0) {
        snprintf(c->err, c->errlen,
                 "%s: key 'model_type': expected \"gemma3_text\", \"gemma3\", \"gemma2\" or "
                 "\"gemma\", found \"%.40s\" (unsupported architecture)",
                 c->fname, t);
        return SG_EUNSUPPORTED;
    }
    *fam = FAM_GEMMA3;
    snprintf(mi->arch, sizeof mi->arch, "gemma3");
    if (strcmp(t, "gemma3") != 0)
        return SG_OK;
    /* Gemma3ForConditionalGeneration: the language model's keys are under text_config. */
    json_t *tc = json_object_get(c->top, "text_config");
    if (!tc || !json_is_object(tc))
        return bad(c, "text_config", "an object (model_type \"gemma3\" is the multimodal "
                   "checkpoint; its language model is configured there)", tc);
    json_t *tt = json_object_get(tc, "model_type");
    if (tt && (!json_is_string(tt) || strcmp(json_string_value(tt), "gemma3_text") != 0))
        return bad(c, "text_config.model_type", "\"gemma3_text\"", tt);
    c->root = tc;
    c->scope = "text_config.";
    mi->multimodal = 1;
    if (json_object_get(c->top, "vision_config"))
        sg_log(SG_LOG_INFO, "%s: a Gemma 3 multimodal configuration: its language model is "
               "served, the vision tower (vision_config) is ignored", c->fname);
    return SG_OK;
}

/* A boolean key that must be false (or absent / null) for the forward pass to be right. */
static int must_be_false(struct cfg *c, const char *key, const char *why)
{
    json_t *v = json_object_get(c->root, key);

    if (!v || json_is_null(v) || json_is_false(v))
        return SG_OK;
    if (!json_is_true(v))
        return bad(c, key, "true or false", v);
    snprintf(c->err, c->errlen, "%s: key '%s%s': expected false, found true (%s)", c->fname,
             c->scope, key, why);
    return SG_EUNSUPPORTED;
}

/* The sizes of the network. */
static int read_shapes(struct cfg *c, const struct family_defaults *fd, sg_model_info *mi)
{
    const int req = fd->shapes_required;
    int rc;

    if ((rc = get_int(c, "vocab_size", req, fd->vocab, 1, 1 << 24, &mi->n_vocab)) ||
        (rc = get_int(c, "hidden_size", req, fd->hidden, 1, 1 << 16, &mi->d_model)) ||
        (rc = get_int(c, "intermediate_size", req, fd->ff, 1, 1 << 20, &mi->d_ff)) ||
        (rc = get_int(c, "num_hidden_layers", req, fd->layers, 1, SG_MAX_LAYERS, &mi->n_layer)) ||
        (rc = get_int(c, "num_attention_heads", req, fd->heads, 1, 1024, &mi->n_head)) ||
        (rc = get_int(c, "head_dim", req, fd->head_dim, 2, 4096, &mi->head_dim)) ||
        (rc = get_int(c, "max_position_embeddings", 0, fd->n_ctx, 1, 1 << 24, &mi->n_ctx)))
        return rc;
    /* Gemma 1 2B is multi-query: num_key_value_heads is then 1 (its default when absent). */
    if ((rc = get_int(c, "num_key_value_heads", fd->kv_heads == 0, fd->kv_heads ? fd->kv_heads : 1,
                      1, mi->n_head, &mi->n_kv_head)))
        return rc;
    if (mi->n_head % mi->n_kv_head != 0) {
        char exp[96];
        snprintf(exp, sizeof exp, "a positive integer dividing num_attention_heads (%d)",
                 mi->n_head);
        return bad(c, "num_key_value_heads", exp, json_object_get(c->root, "num_key_value_heads"));
    }
    if (mi->head_dim % 2 != 0)
        return bad(c, "head_dim", "an even integer (RoPE pairs halves)",
                   json_object_get(c->root, "head_dim"));
    return SG_OK;
}

/* Which layers slide: Gemma 2 even layers only; Gemma 3 layer_types, else every
 * sliding_window_pattern-th layer is full ((l + 1) % pattern == 0). */
static int read_layer_types(struct cfg *c, enum family fam, const struct family_defaults *fd,
                            sg_model_info *mi)
{
    json_t *v = json_object_get(c->root, "layer_types");
    char exp[96];
    int pattern;
    int rc;

    if (fam == FAM_GEMMA1)
        return SG_OK; /* every layer global */
    if (!v || json_is_null(v)) {
        if (fam == FAM_GEMMA2)
            pattern = 2;
        else if ((rc = get_int(c, "sliding_window_pattern", 0, fd->pattern, 1, SG_MAX_LAYERS,
                               &pattern)))
            return rc;
        for (int l = 0; l < mi->n_layer; l++)
            mi->layer_sliding[l] = (l + 1) % pattern != 0;
        return SG_OK;
    }
    snprintf(exp, sizeof exp, "an array of %d layer types", mi->n_layer);
    if (!json_is_array(v) || json_array_size(v) != (size_t)mi->n_layer)
        return bad(c, "layer_types", exp, v);
    for (int l = 0; l < mi->n_layer; l++) {
        json_t *e = json_array_get(v, (size_t)l);
        const char *s = json_is_string(e) ? json_string_value(e) : NULL;
        const char *want = l % 2 == 0 ? "sliding_attention" : "full_attention";

        if (!s)
            return bad(c, "layer_types", "strings", e);
        if (fam == FAM_GEMMA2 && strcmp(s, want) != 0) {
            snprintf(c->err, c->errlen,
                     "%s: key 'layer_types': entry %d: expected \"%s\", found \"%.40s\" "
                     "(only the Gemma 2 alternation is supported)",
                     c->fname, l, want, s);
            return SG_EUNSUPPORTED;
        }
        if (strcmp(s, "sliding_attention") != 0 && strcmp(s, "full_attention") != 0) {
            snprintf(c->err, c->errlen,
                     "%s: key '%slayer_types': entry %d: expected \"sliding_attention\" or "
                     "\"full_attention\", found \"%.40s\"",
                     c->fname, c->scope, l, s);
            return SG_EUNSUPPORTED;
        }
        mi->layer_sliding[l] = s[0] == 's';
    }
    return SG_OK;
}

/* A RoPE scaling object (rope_scaling, or a rope_parameters entry) `key`: its linear factor
 * into *factor; absent / null / "default": 1. Other types are refused, naming the key. */
static int read_scaling(struct cfg *c, const json_t *obj, const char *key, double *factor)
{
    char name[96];

    *factor = 1.0;
    if (!obj || json_is_null(obj))
        return SG_OK;
    if (!json_is_object(obj))
        return bad(c, key, "an object or null", obj);
    const char *tk = json_object_get(obj, "rope_type") ? "rope_type" : "type";
    json_t *t = json_object_get(obj, tk);
    snprintf(name, sizeof name, "%s.%s", key, tk);
    if (!t || !json_is_string(t))
        return bad(c, name, "a string (\"linear\" or \"default\")", t);
    if (strcmp(json_string_value(t), "default") == 0)
        return SG_OK;
    if (strcmp(json_string_value(t), "linear") != 0) {
        snprintf(c->err, c->errlen,
                 "%s: key '%s%s': expected \"linear\" or \"default\", found \"%.40s\" "
                 "(unsupported RoPE scaling type)",
                 c->fname, c->scope, name, json_string_value(t));
        return SG_EUNSUPPORTED;
    }
    json_t *f = json_object_get(obj, "factor");
    snprintf(name, sizeof name, "%s.factor", key);
    if (!f || !json_is_number(f) || !(json_number_value(f) >= 1e-3) ||
        !(json_number_value(f) <= 1e6))
        return bad(c, name, "a number in 0.001..1e+06", f);
    *factor = json_number_value(f);
    return SG_OK;
}

/* One entry of rope_parameters (transformers 5): {rope_type, rope_theta, factor}. */
static int read_rope_entry(struct cfg *c, const json_t *obj, const char *key, double *theta,
                           double *factor)
{
    char name[96];

    if (!json_is_object(obj))
        return bad(c, key, "an object", obj);
    json_t *t = json_object_get(obj, "rope_theta");
    snprintf(name, sizeof name, "%s.rope_theta", key);
    if (t && (!json_is_number(t) || !(json_number_value(t) >= 1.0) ||
              !(json_number_value(t) <= 1e12)))
        return bad(c, name, "a number in 1..1e+12", t);
    if (t)
        *theta = json_number_value(t);
    return read_scaling(c, obj, key, factor);
}

/* RoPE: rope_theta (+ rope_scaling) on full layers; Gemma 3's sliding layers use
 * rope_local_base_freq unscaled, Gemma 1/2's every layer the former. rope_parameters, when
 * present, says the same per layer type (or once for all). */
static int read_rope(struct cfg *c, enum family fam, const struct family_defaults *fd,
                     sg_model_info *mi)
{
    double theta, local, f_full, f_local = 1.0;
    int rc;

    if ((rc = get_num(c, "rope_theta", 0, 0, fd->theta, 1.0, 1e12, &theta)) ||
        (rc = read_scaling(c, json_object_get(c->root, "rope_scaling"), "rope_scaling", &f_full)))
        return rc;
    if (fam == FAM_GEMMA3) {
        if ((rc = get_num(c, "rope_local_base_freq", 0, 0, fd->local_theta, 1.0, 1e12, &local)))
            return rc;
    } else {
        local = theta;
        f_local = f_full;
    }
    json_t *rp = json_object_get(c->root, "rope_parameters");
    if (rp && !json_is_null(rp)) {
        json_t *full = json_is_object(rp) ? json_object_get(rp, "full_attention") : NULL;
        json_t *sl = json_is_object(rp) ? json_object_get(rp, "sliding_attention") : NULL;

        if (!full && !sl) {
            if ((rc = read_rope_entry(c, rp, "rope_parameters", &theta, &f_full)))
                return rc;
            if (fam != FAM_GEMMA3) {
                local = theta;
                f_local = f_full;
            }
        }
        if (full && (rc = read_rope_entry(c, full, "rope_parameters.full_attention", &theta,
                                          &f_full)))
            return rc;
        if (sl && (rc = read_rope_entry(c, sl, "rope_parameters.sliding_attention", &local,
                                        &f_local)))
            return rc;
    }
    mi->rope_theta = (float)theta;
    mi->rope_scale = (float)f_full;
    mi->rope_local_theta = (float)local;
    mi->rope_local_scale = (float)f_local;
    return SG_OK;
}

/* Attention: window, layer pattern, query scale, soft-caps, QK-norm. */
static int read_attention(struct cfg *c, enum family fam, const struct family_defaults *fd,
                          sg_model_info *mi)
{
    double d;
    int rc;

    mi->sliding_window = 0; /* Gemma 1: every layer global */
    if (fam != FAM_GEMMA1 &&
        (rc = get_int(c, "sliding_window", 0, fd->window, 1, 1 << 24, &mi->sliding_window)))
        return rc;
    if ((rc = read_layer_types(c, fam, fd, mi)))
        return rc;
    if ((rc = get_num(c, "query_pre_attn_scalar", 0, 0, fd->qpas ? fd->qpas : mi->head_dim,
                      1e-3, 1e9, &d)))
        return rc;
    mi->query_scale = (float)(1.0 / sqrt(d));
    if (fam != FAM_GEMMA1) {
        if ((rc = get_num(c, "attn_logit_softcapping", 0, 1, 0.0, 0.0, 1e9, &d)))
            return rc;
        mi->attn_softcap = (float)d;
        if ((rc = get_num(c, "final_logit_softcapping", 0, 1, 0.0, 0.0, 1e9, &d)))
            return rc;
        mi->final_softcap = (float)d;
    }
    mi->qk_norm = fam == FAM_GEMMA3;
    if ((rc = must_be_false(c, "attention_bias", "attention biases are not supported")) ||
        (rc = must_be_false(c, "use_bidirectional_attention",
                            "the engine runs causal attention only")))
        return rc;
    return SG_OK;
}

/* tie_word_embeddings in the language model's keys or, for the multimodal file, at the top. */
static int check_tied(struct cfg *c)
{
    json_t *tie = json_object_get(c->root, "tie_word_embeddings");

    if (!tie && c->root != c->top)
        tie = json_object_get(c->top, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie))
        return bad(c, "tie_word_embeddings", "true or false", tie);
    if (tie && json_is_false(tie)) {
        snprintf(c->err, c->errlen,
                 "%s: key 'tie_word_embeddings': expected true, found false "
                 "(an untied LM head is not supported)",
                 c->fname);
        return SG_EUNSUPPORTED;
    }
    return SG_OK;
}

int sg_config_parse(const char *json, size_t len, const char *fname, sg_model_info *info,
                    char *err, size_t errlen)
{
    struct cfg c = {NULL, NULL, "", "", fname, err, errlen};
    json_error_t jerr;
    sg_model_info mi;
    enum family fam;
    int rc;

    memset(&mi, 0, sizeof mi);
    c.top = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!c.top) {
        snprintf(err, errlen, "%s: line %d column %d: %s", fname, jerr.line, jerr.column,
                 jerr.text);
        return SG_EFORMAT;
    }
    c.root = c.top;
    if (!json_is_object(c.top)) {
        snprintf(err, errlen, "%s: expected a JSON object at the top level", fname);
        rc = SG_EFORMAT;
        goto fail;
    }
    if ((rc = find_family(&c, &mi, &fam)))
        goto fail;
    const struct family_defaults *fd = &defaults[fam];
    c.family = fd->name;

    double eps;
    if ((rc = read_shapes(&c, fd, &mi)) || (rc = read_attention(&c, fam, fd, &mi)) ||
        (rc = read_rope(&c, fam, fd, &mi)) ||
        (rc = get_num(&c, "rms_norm_eps", 0, 0, 1e-6, 1e-12, 0.1, &eps)))
        goto fail;
    mi.rms_eps = (float)eps;
    mi.embed_scale = (float)sqrt((double)mi.d_model);
    if ((rc = get_token_id(&c, "bos_token_id", 2, mi.n_vocab, &mi.bos_id)) ||
        (rc = get_token_id(&c, "eos_token_id", 1, mi.n_vocab, &mi.eos_id)) ||
        (rc = check_tied(&c)) || (rc = check_activation(&c)))
        goto fail;

    *info = mi;
    json_decref(c.top);
    return SG_OK;
fail:
    json_decref(c.top);
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
