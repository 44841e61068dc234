#ifndef SG_MATMUL_H
#define SG_MATMUL_H
/*
 * matmul.h (internal to engine/): the matrix products of the forward pass, y = x W^T, behind
 * one seam so that faster kernels (oneDNN bf16/int8, hand-written ones) can replace the portable
 * path without the forward pass knowing.
 *
 * A weight is prepared once, at context/model setup (sg_mat_new), for a compute precision; it
 * may then be repacked (owned by the sg_mat) or just viewed (the mapping). sg_mat_mul never
 * allocates and may be called from one thread at a time per pool (it splits the work over the
 * pool itself).
 *
 *     sg_mat *wq;
 *     sg_mat_new(&wq, q_proj_tensor, SG_PREC_F32, err, sizeof err);   // [N out, K in]
 *     sg_mat_mul(wq, x, n_tokens, q, pool);                           // q[m,N] = x[m,K] wq^T
 *     sg_mat_free(wq);
 *
 * The portable implementation (matmul.c) is exact f32 for every weight dtype: tiles of weight
 * rows are converted to f32 on the fly with sg_dequant_row (no full f32 copy of a bf16 model),
 * and products are accumulated in f32.
 */

#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "sg_engine.h"
#include "tensor.h"

typedef struct sg_mat sg_mat; /* a weight [N out, K in] prepared for a precision */

/*
 * Prepare the 2-D tensor `w` ([N, K], any sg_dtype; the tensor's data must outlive the sg_mat)
 * for products at precision `prec`. The caller owns *out (sg_mat_free). Returns SG_OK;
 * SG_ESHAPE if `w` is not 2-D or K is not a whole number of blocks of its dtype;
 * SG_EUNSUPPORTED if no kernel handles this dtype/precision; SG_ENOMEM. `err` gets a message
 * naming the tensor.
 */
int sg_mat_new(sg_mat **out, const sg_tensor *w, sg_precision prec, char *err, size_t errlen);
/*
 * The same with a packed-weight cache (packcache.h; NULL: none): the fast kernel's packed bytes
 * come from the cache file on a hit, and are noted for it on a miss (see sg_fastmat_new_cached).
 */
struct sg_packcache;
int sg_mat_new_cached(sg_mat **out, const sg_tensor *w, sg_precision prec,
                      struct sg_packcache *pc, char *err, size_t errlen);
/* Free a prepared weight (NULL is fine). */
void sg_mat_free(sg_mat *m);
/* Output features N (rows of W) and input features K. */
int64_t sg_mat_rows(const sg_mat *m);
int64_t sg_mat_cols(const sg_mat *m);
/* The precision the products are computed in: the one asked of sg_mat_new, or SG_PREC_F32
 * when no kernel of that precision runs here (then the fastest f32 kernel is used). */
sg_precision sg_mat_precision(const sg_mat *m);

/* The kernel that computes this weight's products: a fast kernel's name ("avx2-bf16",
 * "dnnl-u8s8", ... see fastmm.h) or "portable-f32". Static string. */
const char *sg_mat_kernel(const sg_mat *w);

/* 1 if the weight was repacked (a fast kernel owns a copy; the view is no longer read). */
int sg_mat_repacked(const sg_mat *w);

/* 1 if the repacked weight is mapped from a pack cache file (pages shared between processes). */
int sg_mat_mapped(const sg_mat *w);

/*
 * Bytes of per-thread pool scratch (sg_pool_reserve) that sg_mat_mul of m rows wants: 0 for
 * the f32 kernels, the quantized rows for int8. With less, sg_mat_mul still works, slower.
 */
size_t sg_mat_scratch(const sg_mat *w, size_t m);

/*
 * y[m, N] = x[m, K] W^T: row i of y is W applied to row i of x. x and y are row-major,
 * contiguous, and must not overlap. Work is split over `pool` (NULL: the calling thread).
 * Never allocates. SG_OK, or SG_ECOMPUTE when the kernel failed at run time (oneDNN could not
 * run a primitive; logged): y is then undefined and must not be used.
 */
int sg_mat_mul(const sg_mat *w, const float *x, size_t m, float *y, sg_pool *pool);

/*
 * The same for a subset of W's rows: y[m, n_rows] where column j is row rows[j] of W (the tied
 * LM head reads only the logits asked for: "Yes" and "No", not the whole vocabulary).
 * Every rows[j] must be in 0..N-1 (checked by the caller). Returns as sg_mat_mul.
 */
int sg_mat_mul_rows(const sg_mat *w, const int32_t *rows, size_t n_rows, const float *x,
                    size_t m, float *y, sg_pool *pool);

/*
 * Fault injection, for tests: from product number `first` on (counted from 0 in this process
 * by sg_mat_mul and sg_mat_mul_rows together, starting now), every product fails with
 * SG_ECOMPUTE as a failing kernel would; -1 turns it off. The environment variable
 * SG_FAULT_MATMUL=N does the same for a whole process (read at its first product), so that a
 * test can make a running daemon's kernels fail. Off unless asked for; costs one atomic load
 * per product.
 */
void sg_mat_fault_inject(long first);

#endif /* SG_MATMUL_H */
