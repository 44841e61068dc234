#ifndef SG_MODEL_H
#define SG_MODEL_H
/*
 * model.h (internal to engine/): the loaded model as forward.c sees it.
 *
 * model.c turns a weight set (safetensors or GGUF, Hugging Face tensor names) into per-layer
 * weights whose shapes are checked against the hyper-parameters, converts the norm gains to f32
 * (1 + w, added once whatever the file stores), and prepares the matrices for the model's
 * precision (matmul.h).
 */

#include "matmul.h"
#include "sg_engine.h"
#include "tensor.h"

/* The matrices of one layer, in the order forward.c uses them. */
enum sg_layer_mat {
    SG_LM_Q,    /* q_proj    [n_head*head_dim, d_model] */
    SG_LM_K,    /* k_proj    [n_kv_head*head_dim, d_model] */
    SG_LM_V,    /* v_proj    [n_kv_head*head_dim, d_model] */
    SG_LM_O,    /* o_proj    [d_model, n_head*head_dim] */
    SG_LM_GATE, /* gate_proj [d_ff, d_model] */
    SG_LM_UP,   /* up_proj   [d_ff, d_model] */
    SG_LM_DOWN, /* down_proj [d_model, d_ff] */
    SG_LM_COUNT
};

/* Norm gains of one layer (f32, already 1 + w), [d_model] (QK-norm: [head_dim]). Gemma 1 has
 * only two: its post_attention_layernorm is the pre-MLP norm, so it is loaded as SG_LN_PRE_FFN.
 * Gemma 3 has all six. */
enum sg_layer_norm {
    SG_LN_ATTN,      /* input_layernorm */
    SG_LN_POST_ATTN, /* post_attention_layernorm (Gemma 2) */
    SG_LN_PRE_FFN,   /* pre_feedforward_layernorm (Gemma 2); post_attention_layernorm (Gemma 1) */
    SG_LN_POST_FFN,  /* post_feedforward_layernorm (Gemma 2) */
    SG_LN_Q,         /* self_attn.q_norm (Gemma 3), applied to each query head */
    SG_LN_K,         /* self_attn.k_norm (Gemma 3), applied to each key head */
    SG_LN_COUNT
};

typedef struct sg_layer {
    const sg_tensor *t[SG_LM_COUNT]; /* views into the mapping */
    sg_mat *mat[SG_LM_COUNT];        /* prepared for the model's precision */
    const float *norm[SG_LN_COUNT];  /* into sg_model.gains; NULL when the arch has none */
} sg_layer;

struct sg_model {
    sg_weights w;           /* tensors and mappings (owned) */
    sg_model_info info;     /* = w.info, with format and name filled */
    int post_norms;         /* Gemma 2 and 3: post-attention and post-FFN norms */
    const char *prefix;     /* of the language model's tensor names: "model.", or a Gemma 3
                             * multimodal file's "model.language_model." / "language_model.model." */
    sg_model_opts opts;
    const sg_tensor *embed; /* model.embed_tokens.weight [n_vocab, d_model], tied LM head */
    sg_mat *embed_mat;      /* the LM head, prepared */
    const float *final_norm; /* model.norm (1 + w) [d_model] */
    sg_layer *layers;       /* n_layer */
    float *gains;           /* all norm gains, f32 (owned) */
    sg_tok *tok;            /* NULL when none was found or asked for */
    const char *kernel;     /* the kernel of most layer matrices (sg_model_kernel) */
    char *path;             /* the path given to sg_model_open (owned) */
    char *pack_cache;       /* opts.pack_cache, copied (owned), or NULL: no pack cache */
};

/*
 * Prepare every matrix of `m` for precision `prec` into `layers_out` (n_layer entries, their
 * mat[] filled; t[] and norm[] copied from m) and *embed_out. Used by contexts whose precision
 * differs from the model's. With a pack cache folder (sg_model_opts.pack_cache) the fast
 * kernels' packed weights come from the cache file, or are written to it and then mapped from
 * it. Free with sg_model_free_mats().
 */
int sg_model_prepare_mats(const sg_model *m, sg_precision prec, sg_layer *layers_out,
                          sg_mat **embed_out, char *err, size_t errlen);
/*
 * The kernel that runs most of the layer matrices of `layers` (n_layer >= 1), e.g. "avx2-bf16"
 * or "portable-f32" (matmul.h's sg_mat_kernel). Logs how the matrices were prepared: at info
 * level the kernels, and a warning when a bf16/int8 precision had to fall back to an f32
 * kernel for some of them (sg_mat_precision).
 */
const char *sg_model_tally_kernels(const sg_layer *layers, int n_layer, sg_precision prec);
/*
 * The pack cache key (packcache.h) for model `path` (a folder or a file: the path, and the
 * size and mtime of the weight and config files it names) at `prec`, with every fast kernel's
 * layout tag (sg_fastmm_layouts): written to key (capacity cap). SG_OK; SG_EIO if the path
 * cannot be read; SG_ERANGE if the key does not fit; SG_ENOMEM.
 */
int sg_model_pack_key(const char *path, sg_precision prec, char *key, size_t cap, char *err,
                      size_t errlen);

/* Free the matrices of `n_layer` layers and the LM head prepared above (NULL-safe). */
void sg_model_free_mats(sg_layer *layers, int n_layer, sg_mat *embed);

#endif /* SG_MODEL_H */
