#ifndef SG_ATTN_H
#define SG_ATTN_H
/*
 * attn.h (internal to engine/): Gemma attention over a KV cache as blocked products.
 *
 * For one pass of `m` query rows, every query head n reads KV head n / (n_head / n_kv_head):
 *
 *   s_ij = softcap(q_i . k_j * scale, cap)          (cap <= 0: no soft-cap)
 *   s_ij = -inf unless key j is visible from row i  (causal; window: pos_i - pos_j < window)
 *   a_i  = softmax_j(s_ij) v_j
 *
 * What a row sees is described as in forward.c: trunk slots 0..trunk_len-1 (position = slot)
 * and its own segment, slots seg_slot..seg_slot+local (positions trunk_len..pos). Branches are
 * segments beside the trunk, so they see the trunk and themselves only.
 *
 * How: the query vectors of consecutive rows of one segment that share a KV head (the GQA
 * group: n_head / n_kv_head heads per row) are taken 16 at a time, a block. For a block the
 * scores against every key any of its rows sees are one product (keys x 16 query vectors,
 * an AVX2 micro-kernel of 6 keys x 16 lanes), stored key-major so that scale, soft-cap, mask,
 * max, exp and the sum run 16 query vectors per step; then the weighted sum of values is a
 * second product (6 query vectors x 16 values per tile, keys in blocks of 32 so the values
 * stay in L2). One pool task per (block, KV head); nothing is allocated per pass.
 *
 * Determinism: every output element is the same sequence of operations whatever the number of
 * threads, the place of its row in a block, the other rows of the pass and how the visible
 * keys are split between trunk and segment: a score is one chain of FMAs over head_dim in
 * order; the max, the exp sum (double, keys in position order) and the weighted sum (keys in
 * position order) run per query vector; a key a row does not see contributes exp = 0 exactly,
 * i.e. nothing. So a branch equals the same tokens appended to the trunk bit for bit, and a
 * row equals itself evaluated alone. The AVX2 and portable kernels differ in rounding (FMA);
 * a CPU always takes the same one.
 */

#include <stddef.h>

#include "pool.h"

/* One query row of a pass: where it is and what it sees (see the header comment). */
typedef struct sg_attn_row {
    size_t pos;       /* position (RoPE, window); trunk_len + local */
    size_t slot;      /* KV slot the row's own key and value were written to (caller's) */
    size_t trunk_len; /* trunk slots 0..trunk_len-1 are visible (positions = slots) */
    size_t seg_slot;  /* first KV slot of the row's own segment (position trunk_len) */
    size_t local;     /* index of the row in its segment: sees seg_slot..seg_slot+local */
} sg_attn_row;

/* The shape of attention: fixed for a model. */
typedef struct sg_attn_shape {
    size_t head_dim;
    size_t n_head;    /* query heads; a multiple of n_kv_head */
    size_t n_kv_head;
    float scale;      /* query_pre_attn_scalar^-0.5 */
    float softcap;    /* attn_logit_softcapping; <= 0: none */
} sg_attn_shape;

/* Which micro-kernels sg_attn_plan_new picks. */
typedef enum sg_attn_kernel {
    SG_ATTN_AUTO = 0,     /* AVX2 + FMA where the CPU has them (and head_dim % 8 == 0) */
    SG_ATTN_PORTABLE,     /* plain C everywhere (tests) */
    SG_ATTN_KERNEL_COUNT
} sg_attn_kernel;

typedef struct sg_attn_plan sg_attn_plan;

/*
 * A plan for passes of up to `max_rows` rows over KV caches of up to `max_keys` slots, run by
 * up to `n_threads` threads: it owns the per-thread score blocks (max_keys x 16 floats each)
 * and the block list. The caller owns *out (sg_attn_plan_free). Returns SG_OK, SG_EINVAL for
 * a shape with a zero size, n_head not a multiple of n_kv_head, or a kernel out of range, or
 * SG_ENOMEM.
 */
int sg_attn_plan_new(sg_attn_plan **out, const sg_attn_shape *shape, size_t max_rows,
                     size_t max_keys, int n_threads, sg_attn_kernel kernel);
/* Free a plan (NULL is fine). */
void sg_attn_plan_free(sg_attn_plan *p);
/* The micro-kernels the plan runs: "avx2" or "portable". Static string. */
const char *sg_attn_plan_kernel(const sg_attn_plan *p);

/*
 * Attention for rows[0..m) (m <= max_rows): row i's head n query is q[i * q_stride + n *
 * head_dim ..], its output goes to out[i * out_stride + n * head_dim ..]. The key and value of
 * KV head g at slot t are k[t * kv_stride + g * head_dim ..], v[...] likewise; every slot a row
 * sees must have been written, and no row may see more than max_keys of them. window = 0:
 * global; else key position p is visible from row position i only if i - p < window. Rows
 * of one segment should come consecutively (each run of rows with equal trunk_len and
 * seg_slot is blocked separately; any order is correct). Work is split over `pool` (NULL: the
 * caller), whose thread count must not exceed the plan's. Never allocates; never fails.
 */
void sg_attn_run(sg_attn_plan *p, const sg_attn_row *rows, size_t m, const float *q,
                 size_t q_stride, const float *k, const float *v, size_t kv_stride,
                 size_t window, float *out, size_t out_stride, sg_pool *pool);

#endif /* SG_ATTN_H */
