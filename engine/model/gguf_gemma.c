/*
 * gguf_gemma.c: the Gemma / Gemma 2 / Gemma 3 loader over the GGUF reader (format/gguf.h): llama.cpp's
 * tensor names ("blk.N.attn_q.weight") to Hugging Face ones, its metadata keys to
 * sg_model_info with llama.cpp's defaults, and GGUF's innermost-first shapes reversed.
 */
#include "gguf_gemma.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sg_engine.h"

/* llama.cpp's per-layer tensor names and their Hugging Face counterparts. */
static const struct {
    const char *gguf;
    const char *hf;        /* Gemma 2 */
    const char *hf_gemma1; /* Gemma 1 where it differs ("": absent there), else NULL */
    int gemma3_only;       /* QK-norm: Gemma 3 alone has it */
} layer_names[] = {
    {"attn_q", "self_attn.q_proj", NULL, 0},
    {"attn_k", "self_attn.k_proj", NULL, 0},
    {"attn_v", "self_attn.v_proj", NULL, 0},
    {"attn_output", "self_attn.o_proj", NULL, 0},
    {"attn_norm", "input_layernorm", NULL, 0},
    /* Gemma 1 has no post-norms, and one norm before the MLP, which HF calls
     * post_attention_layernorm ("" marks a tensor Gemma 1 does not have). */
    {"post_attention_norm", "post_attention_layernorm", "", 0},
    {"ffn_norm", "pre_feedforward_layernorm", "post_attention_layernorm", 0},
    {"post_ffw_norm", "post_feedforward_layernorm", "", 0},
    {"ffn_gate", "mlp.gate_proj", NULL, 0},
    {"ffn_up", "mlp.up_proj", NULL, 0},
    {"ffn_down", "mlp.down_proj", NULL, 0},
    {"attn_q_norm", "self_attn.q_norm", "", 1},
    {"attn_k_norm", "self_attn.k_norm", "", 1},
};

/*
 * The Hugging Face name of GGUF tensor `name` into `out`; SG_EUNSUPPORTED for a tensor that is
 * not part of a Gemma model (or a layer index >= n_layer).
 */
static int hf_name(const char *name, int gemma1, int gemma3, int n_layer, char *out, size_t cap)
{
    const char *rest;
    char *end;
    int n;

    if (strcmp(name, "token_embd.weight") == 0)
        n = snprintf(out, cap, "model.embed_tokens.weight");
    else if (strcmp(name, "output_norm.weight") == 0)
        n = snprintf(out, cap, "model.norm.weight");
    else if (strcmp(name, "output.weight") == 0)
        n = snprintf(out, cap, "lm_head.weight");
    else if (strncmp(name, "blk.", 4) == 0 && name[4] >= '0' && name[4] <= '9') {
        errno = 0;
        unsigned long layer = strtoul(name + 4, &end, 10);
        if (errno || *end != '.' || layer >= (unsigned long)n_layer ||
            (name[4] == '0' && end != name + 5))
            return SG_EUNSUPPORTED;
        rest = end + 1;
        size_t i;
        for (i = 0; i < sizeof layer_names / sizeof layer_names[0]; i++) {
            size_t k = strlen(layer_names[i].gguf);
            if (strncmp(rest, layer_names[i].gguf, k) == 0 && strcmp(rest + k, ".weight") == 0)
                break;
        }
        if (i == sizeof layer_names / sizeof layer_names[0] ||
            (layer_names[i].gemma3_only && !gemma3))
            return SG_EUNSUPPORTED;
        const char *hf = gemma1 && layer_names[i].hf_gemma1 ? layer_names[i].hf_gemma1
                                                              : layer_names[i].hf;
        if (!*hf)
            return SG_EUNSUPPORTED;
        n = snprintf(out, cap, "model.layers.%lu.%s.weight", layer, hf);
    } else
        return SG_EUNSUPPORTED;
    return n > 0 && (size_t)n < cap ? SG_OK : SG_EUNSUPPORTED;
}

/* A required or optional u32 hyper-parameter "ARCH.suffix", as an int in [1, INT32_MAX]. Arrays
 * (per-layer values, as llama.cpp allows for some keys) must hold one repeated value. */
static int hparam_u32(const sg_gguf *g, const char *arch, const char *suffix, int required,
                      int def, int *v, char *err, size_t errlen)
{
    char key[128];
    uint32_t u = 0;
    int rc;

    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int t = sg_gguf_key_type(g, key);
    if (t < 0) {
        if (required)
            return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g), "required key '%s' is absent",
                           key);
        sg_log(SG_LOG_INFO, "%s: key '%s' absent: %d (llama.cpp's default)", sg_gguf_name(g),
               key, def);
        *v = def;
        return SG_OK;
    }
    if (t == SG_GGUF_ARRAY) {
        sg_gguf_type et;
        size_t n = 0;
        int64_t first = 0;

        rc = sg_gguf_get_arr(g, key, &et, &n, err, errlen);
        if (rc < 0)
            return rc;
        if (!sg_gguf_type_is_int((int)et) || n == 0)
            return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g),
                           "key '%s': expected u32, found array of %zu %s", key, n,
                           sg_gguf_type_name((int)et));
        for (size_t i = 0; i < n; i++) {
            int64_t sv;

            rc = sg_gguf_get_arr_int(g, key, i, &sv, err, errlen);
            if (rc < 0)
                return rc;
            if (i == 0)
                first = sv;
            else if (sv != first)
                return sg_errf(err, errlen, SG_EUNSUPPORTED, sg_gguf_name(g),
                               "key '%s': per-layer values differ (%lld, then %lld)", key,
                               (long long)first, (long long)sv);
        }
        if (first < 1 || first > INT32_MAX)
            return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g),
                           "key '%s': %lld out of range (expected 1..%d)", key,
                           (long long)first, INT32_MAX);
        *v = (int)first;
        return SG_OK;
    }
    rc = sg_gguf_get_u32(g, key, &u, err, errlen);
    if (rc < 0)
        return rc == SG_ERANGE ? SG_EFORMAT : rc;
    if (u < 1 || u > INT32_MAX)
        return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g),
                       "key '%s': %u out of range (expected 1..%d)", key, u, INT32_MAX);
    *v = (int)u;
    return SG_OK;
}

/* An optional float "ARCH.suffix" (f32 or f64), finite and >= 0. */
static int hparam_f32(const sg_gguf *g, const char *arch, const char *suffix, float def,
                      float *v, char *err, size_t errlen)
{
    char key[128];
    int rc;

    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (sg_gguf_find_key(g, key) < 0) {
        sg_log(SG_LOG_INFO, "%s: key '%s' absent: %g (llama.cpp's default)", sg_gguf_name(g),
               key, (double)def);
        *v = def;
        return SG_OK;
    }
    rc = sg_gguf_get_f32(g, key, v, err, errlen);
    if (rc < 0)
        return rc;
    if (!isfinite(*v) || *v < 0)
        return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g),
                       "key '%s': %g (expected a finite value >= 0)", key, (double)*v);
    return SG_OK;
}

/* An optional token id "tokenizer.ggml.X" with a default. */
static int token_id(const sg_gguf *g, const char *key, int def, int *v, char *err, size_t errlen)
{
    int32_t id = 0;
    int rc;

    if (sg_gguf_find_key(g, key) < 0) {
        sg_log(SG_LOG_INFO, "%s: key '%s' absent: %d (llama.cpp's default)", sg_gguf_name(g),
               key, def);
        *v = def;
        return SG_OK;
    }
    rc = sg_gguf_get_i32(g, key, &id, err, errlen);
    if (rc < 0)
        return rc == SG_ERANGE ? SG_EFORMAT : rc;
    *v = id;
    return SG_OK;
}

/*
 * RoPE as llama.cpp reads it: ARCH.rope.freq_base (default 10000) and the linear factor
 * ARCH.rope.scaling.factor (or the older ARCH.rope.scale_linear; 0 or absent: none) on the
 * full-attention layers; ARCH.rope.scaling.type, when present, must be "none" or "linear".
 * Gemma 3's sliding layers use ARCH.rope.freq_base_swa (llama.cpp's default 10000) unscaled;
 * Gemma 1/2 use the same RoPE on every layer.
 */
static int load_rope(const sg_gguf *g, sg_model_info *info, int gemma3, char *err,
                     size_t errlen)
{
    const char *arch = info->arch;
    char key[128];
    char type[32];
    float factor = 0;
    int rc;

    rc = hparam_f32(g, arch, "rope.freq_base", 10000.0f, &info->rope_theta, err, errlen);
    if (rc < 0)
        return rc;
    if (!(info->rope_theta > 0))
        return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g),
                       "key '%s.rope.freq_base': %g (expected > 0)", arch,
                       (double)info->rope_theta);
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (sg_gguf_find_key(g, key) >= 0) {
        rc = sg_gguf_get_strz(g, key, type, sizeof type, err, errlen);
        if (rc < 0)
            return rc == SG_ERANGE ? SG_EFORMAT : rc;
        if (strcmp(type, "none") != 0 && strcmp(type, "linear") != 0)
            return sg_errf(err, errlen, SG_EUNSUPPORTED, sg_gguf_name(g),
                           "key '%s': \"%s\" (expected \"linear\" or \"none\": unsupported "
                           "RoPE scaling type)", key, type);
    }
    snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
    rc = hparam_f32(g, arch, sg_gguf_find_key(g, key) >= 0 ? "rope.scaling.factor"
                                                           : "rope.scale_linear",
                    0.0f, &factor, err, errlen);
    if (rc < 0)
        return rc;
    info->rope_scale = factor > 0 ? factor : 1.0f;
    info->rope_local_theta = info->rope_theta;
    info->rope_local_scale = info->rope_scale;
    if (gemma3) {
        info->rope_local_scale = 1.0f;
        rc = hparam_f32(g, arch, "rope.freq_base_swa", 10000.0f, &info->rope_local_theta, err,
                        errlen);
        if (rc < 0)
            return rc;
        if (!(info->rope_local_theta > 0))
            return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g),
                           "key '%s.rope.freq_base_swa': %g (expected > 0)", arch,
                           (double)info->rope_local_theta);
    }
    return SG_OK;
}

static int load_info(const sg_gguf *g, sg_model_info *info, char *err, size_t errlen)
{
    const char *arch = info->arch;
    int gemma1 = strcmp(arch, "gemma") == 0;
    int gemma3 = strcmp(arch, "gemma3") == 0;
    int rc;

    if ((rc = hparam_u32(g, arch, "context_length", 1, 0, &info->n_ctx, err, errlen)) < 0 ||
        (rc = hparam_u32(g, arch, "embedding_length", 1, 0, &info->d_model, err, errlen)) < 0 ||
        (rc = hparam_u32(g, arch, "block_count", 1, 0, &info->n_layer, err, errlen)) < 0 ||
        (rc = hparam_u32(g, arch, "feed_forward_length", 1, 0, &info->d_ff, err, errlen)) < 0 ||
        (rc = hparam_u32(g, arch, "attention.head_count", 1, 0, &info->n_head, err, errlen)) < 0)
        return rc;
    if (info->n_layer > SG_MAX_LAYERS)
        return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g),
                       "key '%s.block_count': %d layers (expected at most %d)", arch,
                       info->n_layer, SG_MAX_LAYERS);
    rc = hparam_u32(g, arch, "attention.head_count_kv", 0, info->n_head, &info->n_kv_head, err,
                    errlen);
    if (rc < 0)
        return rc;
    if (info->n_kv_head > info->n_head || info->n_head % info->n_kv_head != 0)
        return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g),
                       "key '%s.attention.head_count_kv': %d does not divide head_count %d",
                       arch, info->n_kv_head, info->n_head);
    rc = hparam_u32(g, arch, "attention.key_length", 0, info->d_model / info->n_head,
                    &info->head_dim, err, errlen);
    if (rc < 0)
        return rc;
    if (info->head_dim < 1)
        return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g),
                       "head_dim: embedding_length %d / head_count %d is 0", info->d_model,
                       info->n_head);
    int vdim;
    rc = hparam_u32(g, arch, "attention.value_length", 0, info->head_dim, &vdim, err, errlen);
    if (rc < 0)
        return rc;
    if (vdim != info->head_dim)
        return sg_errf(err, errlen, SG_EUNSUPPORTED, sg_gguf_name(g),
                       "key '%s.attention.value_length': %d differs from key_length %d", arch,
                       vdim, info->head_dim);

    /* llama.cpp reads the epsilon as required; it must be positive. */
    char key[128];
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    if (sg_gguf_find_key(g, key) < 0)
        return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g), "required key '%s' is absent",
                       key);
    rc = hparam_f32(g, arch, "attention.layer_norm_rms_epsilon", 0, &info->rms_eps, err, errlen);
    if (rc < 0)
        return rc;
    if (!(info->rms_eps > 0))
        return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g), "key '%s': %g (expected > 0)", key,
                       (double)info->rms_eps);

    if ((rc = load_rope(g, info, gemma3, err, errlen)) < 0)
        return rc;
    if (gemma3) {
        /* llama.cpp: the window is required, no soft-caps, QK-norm, every 6th layer full. */
        rc = hparam_u32(g, arch, "attention.sliding_window", 1, 0, &info->sliding_window, err,
                        errlen);
        if (rc < 0)
            return rc;
        info->attn_softcap = 0;
        info->final_softcap = 0;
        info->qk_norm = 1;
        for (int l = 0; l < info->n_layer; l++)
            info->layer_sliding[l] = l % 6 < 5;
        sg_log(SG_LOG_INFO, "%s: gemma3: llama.cpp's fixed layer pattern, every 6th layer full",
               sg_gguf_name(g));
    } else if (gemma1) {
        /* Gemma 1: no sliding window, no soft-caps. */
        info->sliding_window = 0;
        info->attn_softcap = 0;
        info->final_softcap = 0;
    } else {
        rc = hparam_u32(g, arch, "attention.sliding_window", 0, 4096, &info->sliding_window, err,
                        errlen);
        if (rc == SG_OK)
            rc = hparam_f32(g, arch, "attn_logit_softcapping", 50.0f, &info->attn_softcap, err,
                            errlen);
        if (rc == SG_OK)
            rc = hparam_f32(g, arch, "final_logit_softcapping", 30.0f, &info->final_softcap,
                            err, errlen);
        if (rc < 0)
            return rc;
        for (int l = 0; l < info->n_layer; l++)
            info->layer_sliding[l] = l % 2 == 0;
    }
    /* The query scale is not stored by llama.cpp's converter: it uses 1/sqrt(head_dim), except
     * for the 27B models (Gemma 2: 46 layers, Gemma 3: 62) whose query_pre_attn_scalar is
     * hidden/n_heads (144, 168). A file that states ARCH.attention.scale is taken at its word. */
    if ((!gemma1 && !gemma3 && info->n_layer == 46) || (gemma3 && info->n_layer == 62))
        info->query_scale = 1.0f / sqrtf((float)(info->d_model / info->n_head));
    else
        info->query_scale = 1.0f / sqrtf((float)info->head_dim);
    rc = hparam_f32(g, arch, "attention.scale", info->query_scale, &info->query_scale, err,
                    errlen);
    if (rc < 0)
        return rc;
    info->embed_scale = sqrtf((float)info->d_model);

    if ((rc = token_id(g, "tokenizer.ggml.bos_token_id", 2, &info->bos_id, err, errlen)) < 0 ||
        (rc = token_id(g, "tokenizer.ggml.eos_token_id", 1, &info->eos_id, err, errlen)) < 0)
        return rc;
    return SG_OK;
}

int sg_gguf_load_from(sg_gguf *g, sg_weights *w, char *err, size_t errlen)
{
    sg_model_info info;
    sg_tensor *ts = NULL;
    int rc;

    memset(&info, 0, sizeof info);
    if (sg_gguf_find_key(g, "general.architecture") < 0)
        return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g),
                       "required key 'general.architecture' is absent");
    rc = sg_gguf_get_strz(g, "general.architecture", info.arch, sizeof info.arch, err, errlen);
    if (rc < 0)
        return rc == SG_ERANGE ? SG_EFORMAT : rc;
    if (strcmp(info.arch, "gemma3") != 0 && strcmp(info.arch, "gemma2") != 0 &&
        strcmp(info.arch, "gemma") != 0)
        return sg_errf(err, errlen, SG_EUNSUPPORTED, sg_gguf_name(g),
                       "architecture '%s' is not supported (expected gemma3, gemma2 or gemma)",
                       info.arch);
    rc = load_info(g, &info, err, errlen);
    if (rc < 0)
        return rc;
    snprintf(info.format, sizeof info.format, "gguf");
    if (sg_gguf_get_strz(g, "general.name", info.name, sizeof info.name, NULL, 0) < 0 ||
        info.name[0] == '\0') {
        const char *base = strrchr(sg_gguf_name(g), '/');
        snprintf(info.name, sizeof info.name, "%s", base ? base + 1 : sg_gguf_name(g));
    }

    const sg_gguf_tensor *emb = sg_gguf_find_tensor(g, "token_embd.weight");
    if (!emb)
        return sg_errf(err, errlen, SG_EFORMAT, sg_gguf_name(g),
                       "tensor 'token_embd.weight' is absent");
    if (emb->n_dims != 2 || emb->ne[1] > INT32_MAX)
        return sg_errf(err, errlen, SG_ESHAPE, sg_gguf_name(g),
                       "tensor 'token_embd.weight': expected 2 dimensions {d_model, n_vocab}, "
                       "found %d with ne[1] = %llu",
                       emb->n_dims, (unsigned long long)emb->ne[1]);
    info.n_vocab = (int)emb->ne[1];

    ts = calloc(sg_gguf_n_tensors(g) ? sg_gguf_n_tensors(g) : 1, sizeof *ts);
    if (!ts)
        return sg_errf(err, errlen, SG_ENOMEM, sg_gguf_name(g), "out of memory");
    for (size_t i = 0; i < sg_gguf_n_tensors(g); i++) {
        const sg_gguf_tensor *gt = sg_gguf_tensor_at(g, i);
        sg_tensor *t = &ts[i];

        if (hf_name(gt->name, strcmp(info.arch, "gemma") == 0, strcmp(info.arch, "gemma3") == 0,
                    info.n_layer, t->name, sizeof t->name) < 0) {
            rc = sg_errf(err, errlen, SG_EUNSUPPORTED, sg_gguf_name(g),
                         "tensor '%s' is not part of a %s model with %d layers", gt->name,
                         info.arch, info.n_layer);
            goto fail;
        }
        if (gt->dtype < 0) {
            rc = sg_errf(err, errlen, SG_EUNSUPPORTED, sg_gguf_name(g),
                         "tensor '%s' has type %s, which the engine cannot read (supported: "
                         "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)",
                         gt->name, sg_gguf_ggml_type_name(gt->ggml_type));
            goto fail;
        }
        t->dtype = (sg_dtype)gt->dtype;
        t->ndim = gt->n_dims;
        for (int d = 0; d < gt->n_dims; d++)
            t->shape[d] = (int64_t)gt->ne[gt->n_dims - 1 - d];
        t->data = gt->data;
        t->nbytes = gt->nbytes;
    }

    memset(w, 0, sizeof *w);
    w->info = info;
    w->tensors = ts;
    w->n_tensors = sg_gguf_n_tensors(g);
    w->norm_plus_one = 1;
    w->gguf = g;
    w->close_gguf = sg_gguf_close;
    return SG_OK;

fail:
    free(ts);
    return rc;
}

int sg_gguf_load(const char *path, sg_weights *w, char *err, size_t errlen)
{
    sg_gguf *g;
    int rc;

    memset(w, 0, sizeof *w);
    rc = sg_gguf_open(&g, path, err, errlen);
    if (rc < 0)
        return rc;
    rc = sg_gguf_load_from(g, w, err, errlen);
    if (rc < 0)
        sg_gguf_close(g);
    return rc;
}
