#ifndef SG_TENSOR_H
#define SG_TENSOR_H
/*
 * tensor.h (internal to engine/): tensor views into read-only mappings, their dtypes, row
 * conversion to f32, and the weight set a model file yields.
 *
 * Shapes are outermost first, as in PyTorch / Hugging Face: a linear layer's weight is
 * [out, in], and a row (the innermost dimension, contiguous) has shape[ndim-1] elements.
 * GGUF stores ne[] innermost first; its reader reverses them into this order.
 *
 * base/ is the lowest layer: it knows no file format. The readers in format/ fill an
 * sg_weights; the model loader (model/) binds it.
 */

#include <stddef.h>
#include <stdint.h>

#include "sg_engine.h"

typedef enum sg_dtype {
    SG_DT_F32 = 0,
    SG_DT_F16,
    SG_DT_BF16,
    SG_DT_Q8_0, /* blocks of 32: f16 d, 32 x int8 */
    SG_DT_Q4_0, /* blocks of 32: f16 d, 16 bytes; low nibbles are elements 0..15 */
    SG_DT_Q4_K, /* super-blocks of 256: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes */
    SG_DT_Q6_K, /* super-blocks of 256: 128 bytes ql, 64 bytes qh, 16 x int8 scales, f16 d (last) */
    SG_DT_Q5_K, /* super-blocks of 256: as Q4_K plus 32 bytes qh (the fifth bits) before qs */
    SG_DT_COUNT
} sg_dtype;

#define SG_MAX_DIMS 4
#define SG_TENSOR_NAME_MAX 96

typedef struct sg_tensor {
    char name[SG_TENSOR_NAME_MAX]; /* Hugging Face name, e.g. "model.layers.0.mlp.up_proj.weight" */
    sg_dtype dtype;
    int ndim;
    int64_t shape[SG_MAX_DIMS];    /* outermost first */
    const void *data;              /* into a read-only mapping; never written */
    size_t nbytes;
} sg_tensor;

/* "F32", "BF16", "Q4_K", ...; "?" when out of range. */
const char *sg_dtype_name(sg_dtype dt);
/* Elements per block (1 for F32/F16/BF16, 32 or 256 for quantized types); 0 if out of range. */
int64_t sg_dtype_block(sg_dtype dt);
/* Bytes of one block; 0 if out of range. */
size_t sg_dtype_block_bytes(sg_dtype dt);
/* Bytes of `n` elements: SG_OK and *bytes, or SG_ESHAPE if n is not a whole number of blocks,
 * SG_ERANGE on overflow. */
int sg_dtype_bytes(sg_dtype dt, int64_t n, size_t *bytes);
/* Elements in a tensor (product of its shape). */
int64_t sg_tensor_nelem(const sg_tensor *t);

/* Convert `n` elements (whole blocks) of dtype `dt` at `src` to f32 at `dst`. */
void sg_dequant_row(sg_dtype dt, const void *src, float *dst, int64_t n);
/* IEEE half / bfloat16 to float, exact. */
float sg_f16_to_f32(uint16_t h);
float sg_bf16_to_f32(uint16_t b);
/* float to bfloat16, round to nearest even (NaN stays NaN). */
uint16_t sg_f32_to_bf16(float f);
uint16_t sg_f32_to_f16(float f);

/*
 * A set of named tensors backed by read-only mappings, as a model file yields it: names are
 * Hugging Face names whatever the file format (model/gguf_gemma.c translates
 * "blk.N.attn_q.weight" and friends), and `info` holds the hyper-parameters (config.json, or
 * GGUF metadata with llama.cpp's defaults).
 */
typedef struct sg_weights {
    sg_model_info info;
    sg_tensor *tensors;     /* n_tensors, owned */
    size_t n_tensors;
    int norm_plus_one;      /* 1: RMSNorm weights are stored as (1 + w) (GGUF) */
    void **maps;            /* owned read-only mappings, unmapped by sg_weights_free */
    size_t *map_sizes;
    size_t n_maps;
    struct sg_gguf *gguf;   /* the open GGUF (format/gguf.h) for tokenizer metadata, or NULL */
    void (*close_gguf)(struct sg_gguf *); /* how sg_weights_free closes it (set with gguf) */
} sg_weights;

/* Find a tensor by exact name; NULL if absent. */
const sg_tensor *sg_weights_find(const sg_weights *w, const char *name);
/* Unmap and free everything `w` owns and zero it (NULL-safe). */
void sg_weights_free(sg_weights *w);

#endif /* SG_TENSOR_H */
