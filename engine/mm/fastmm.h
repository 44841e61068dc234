#ifndef SG_FASTMM_H
#define SG_FASTMM_H
/*
 * fastmm.h (internal to engine/): the fast matrix products behind matmul.h's seam.
 *
 * sg_mat_new (matmul.c) asks sg_fastmat_new for a fast kernel first and keeps the portable
 * f32 path when it answers SG_EUNSUPPORTED. A fast weight is repacked once, at load, into the
 * layout its kernel wants (owned by the sg_fastmat, or mapped from a packed-weight cache file,
 * packcache.h, which sg_fastmat_new_cached alone consults; the model's mapping is no longer
 * read):
 *
 *   kernel        precision   weights                       products
 *   "avx2-f32"    F32         f32 panels [N/16][K][16]      f32 FMA (AVX2), f32 accumulation
 *   "avx2-bf16"   F32, BF16   bf16 panels [N/16][K][16]     weights widened to f32 in L1,
 *                                                           f32 FMA (AVX2), f32 accumulation
 *   "dnnl-bf16"   BF16        oneDNN's blocked bf16         bf16 dot products (AVX-512 BF16 or
 *                                                           AMX), f32 accumulation
 *   "dnnl-u8s8"   INT8        oneDNN's blocked int8, one    u8 x s8 -> s32 (VNNI or AVX2),
 *                             f32 scale per row of W        activations quantized per token
 *
 * F32 precision with bf16 weights is exact (bf16 widens to f32 without rounding), so a BF16
 * model at F32 precision runs the bf16 kernel and keeps its 2-byte weights. BF16 precision
 * with F32 weights rounds them to bf16 (nearest even) once, at load. On CPUs without AVX-512
 * BF16 the BF16 precision computes its products in f32 (there is no faster bf16 instruction),
 * so it differs from F32 only by that weight rounding.
 *
 * Results are deterministic: an output is one sequence of FMAs over k in order (avx2-*) or
 * oneDNN's fixed blocking, whatever the number of threads, and (avx2-*) whatever the number
 * of rows of x, so a batch and its rows evaluated one at a time agree bit for bit.
 */

#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "sg_engine.h"
#include "tensor.h"

typedef struct sg_fastmat sg_fastmat;

/*
 * Prepare the 2-D weight `w` ([N, K]) for fast products at precision `prec`. The caller owns
 * *out (sg_fastmat_free); the tensor's data is only read during this call. Returns SG_OK;
 * SG_EUNSUPPORTED when no fast kernel handles this CPU, dtype and precision (the caller then
 * uses the portable path; `err` says why); SG_ENOMEM; SG_ESHAPE for a malformed tensor.
 */
int sg_fastmat_new(sg_fastmat **out, const sg_tensor *w, sg_precision prec, char *err,
                   size_t errlen);
/*
 * The same, with a packed-weight cache (packcache.h; NULL: none): a hit maps the weight's
 * packed bytes from the cache file instead of repacking (the sg_fastmat then holds a reference
 * to `pc`); a miss repacks and notes the bytes for sg_packcache_commit.
 */
struct sg_packcache;
int sg_fastmat_new_cached(sg_fastmat **out, const sg_tensor *w, sg_precision prec,
                          struct sg_packcache *pc, char *err, size_t errlen);
/*
 * The layout tags of every fast kernel, one line each (what changes their packed bytes besides
 * the weights): the model puts them in its pack cache key.
 */
void sg_fastmm_layouts(char *buf, size_t cap);
/* 1 if the weight's packed bytes come from a pack cache file (shared pages), else 0. */
int sg_fastmat_mapped(const sg_fastmat *f);
/* Free a fast weight (NULL is fine). */
void sg_fastmat_free(sg_fastmat *f);
/* The kernel's name ("avx2-bf16", "dnnl-u8s8", ...). Static string. */
const char *sg_fastmat_kernel(const sg_fastmat *f);
/* Bytes of repacked weights the sg_fastmat owns. */
size_t sg_fastmat_bytes(const sg_fastmat *f);

/*
 * y[m, N] = x[m, K] W^T, as sg_mat_mul. The work is split over `pool` (NULL: the caller);
 * the oneDNN kernels run one single-threaded oneDNN call per chunk of 256 output columns on
 * the pool's threads (OpenMP is held to 1 thread), and allocate only oneDNN's small handles.
 * SG_OK, or SG_ECOMPUTE when oneDNN failed to run (logged; y is then undefined).
 */
int sg_fastmat_mul(const sg_fastmat *f, const float *x, size_t m, float *y, sg_pool *pool);

/* Bytes of pool scratch (thread 0) that a product of m rows wants (0: none). With less, the
 * oneDNN kernels work through a 128 KB stack buffer in small batches of rows (slower). */
size_t sg_fastmat_scratch(const sg_fastmat *f, size_t m);

/*
 * y[m, n_rows] = the columns rows[0..n_rows) of sg_fastmat_mul's result, with the same bits
 * (avx2-*: the same FMA chain, k in order). SG_OK, or SG_EUNSUPPORTED for the oneDNN kernels
 * (their layouts are opaque; the caller then computes the rows exactly in f32).
 */
int sg_fastmat_mul_rows(const sg_fastmat *f, const int32_t *rows, size_t n_rows, const float *x,
                        size_t m, float *y, sg_pool *pool);

/* ---- Kernels (one file each); used by sg_fastmat_new ------------------------------------- */

/* Version of the avx2 panel layout below; change it whenever the packed bytes change (it is
 * part of the pack cache's key). */
#define SG_AVX2_LAYOUT_VERSION 1
/* Columns per avx2 panel: a panel of K rows of this many weights. */
#define SG_AVX2_PANEL 16

/* 1 if this CPU runs the AVX2+FMA kernels (gemm_avx2.c). */
int sg_avx2_available(void);
/* The layout tag of the avx2 kernels, for cache keys: the CPU's AVX2+FMA and the panel layout
 * versions. */
void sg_avx2_layout(char *buf, size_t cap);
/* Repack w ([N, K], any dtype) into 16-column panels of f32 or (to_bf16) bf16: *data (owned by
 * the caller, free()) of *bytes bytes. SG_OK, SG_ESHAPE or SG_ENOMEM (message in err). */
int sg_avx2_pack(const sg_tensor *w, int to_bf16, void **data, size_t *bytes, char *err,
                 size_t errlen);
/* y[m, n] = x[m, k] W^T from packed panels; split over the pool. Never allocates. */
void sg_avx2_mul(const void *panels, int bf16, int64_t n, int64_t k, const float *x, size_t m,
                 float *y, sg_pool *pool);

/* y[i, c] = x_i . W[rows[c]] from packed panels, as sg_avx2_mul computes that column. */
void sg_avx2_mul_rows(const void *panels, int bf16, int64_t n, int64_t k, const int32_t *rows,
                      size_t n_rows, const float *x, size_t m, float *y);

/* oneDNN matmuls (matmul_dnnl.c): prec SG_PREC_INT8 (u8s8) or SG_PREC_BF16. A weight is planned
 * (oneDNN chooses its primitives and weight layouts), then either packed from the tensor or
 * given packed bytes of an earlier run (a pack cache mapping) that it adopts when their layouts
 * are the ones oneDNN chose now. The pack cache itself is consulted only by fastmm.c. */
struct sg_dnnl_mat;
/* Plan (no weights yet); SG_EUNSUPPORTED if oneDNN has no such kernel here. */
int sg_dnnl_plan(struct sg_dnnl_mat **out, const sg_tensor *w, sg_precision prec, char *err,
                 size_t errlen);
/* Bytes of the packed weight (one blob: layouts, scales, compensations, reordered weights). */
size_t sg_dnnl_blob_bytes(const struct sg_dnnl_mat *d);
/* Quantize or convert and reorder w into an owned blob. SG_OK, SG_ENOMEM, SG_EUNSUPPORTED. */
int sg_dnnl_pack(struct sg_dnnl_mat *d, const sg_tensor *w, char *err, size_t errlen);
/* Use sg_dnnl_blob_bytes(d) bytes at `blob` (borrowed: they must outlive d) when their layouts
 * are the ones planned: 1; else 0 and d is unchanged. */
int sg_dnnl_adopt(struct sg_dnnl_mat *d, const void *blob);
/* The packed blob (after sg_dnnl_pack or a successful adopt). */
const void *sg_dnnl_blob(const struct sg_dnnl_mat *d);
/* Plan and pack in one call. */
int sg_dnnl_new(struct sg_dnnl_mat **out, const sg_tensor *w, sg_precision prec, char *err,
                size_t errlen);
/* The layout tag of the oneDNN kernels, for cache keys: oneDNN's version, build hash, runtime
 * and the int8 range (VNNI). */
void sg_dnnl_layout(char *buf, size_t cap);
void sg_dnnl_free(struct sg_dnnl_mat *d);
size_t sg_dnnl_bytes(const struct sg_dnnl_mat *d);
size_t sg_dnnl_scratch(const struct sg_dnnl_mat *d, size_t m);
/* y[m, N] = x W^T. Quantized x goes to the pool's thread-0 scratch when it is large enough,
 * else through a 128 KB stack buffer in chunks of rows. SG_OK, or SG_ECOMPUTE if oneDNN
 * failed to run (y is then undefined). */
int sg_dnnl_mul(const struct sg_dnnl_mat *d, const float *x, size_t m, float *y, sg_pool *pool);

#endif /* SG_FASTMM_H */
