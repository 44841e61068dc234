/*
 * forward.c: the Gemma forward pass in f32 (Gemma 2; Gemma 1 and Gemma 3 as configurations of
 * it), with a KV cache for one sequence (the trunk) and shared-prefix branches (see
 * sg_engine.h). Numerics are those of Hugging Face Gemma2ForCausalLM / Gemma3ForCausalLM,
 * float32, eager attention (docs/ENGINE.md, "Numerics contract" and "Gemma 3"). The executable
 * specification is the naive float64 forward pass of the tests, which shares no code with this
 * file: ref_forward() in tests/check_reference.c (Gemma 1 and 2, checked against the tiny-a
 * goldens) and GemmaRef in tests/integration/gemma_ref.py (numpy; Gemma 3 too). When this file
 * and they disagree, this file is wrong. The pass, as formulas:
 *
 *   x = E[ids] * sqrt(d_model)
 *   for each layer l:
 *       h = rmsnorm(x, 1 + w_in)                           (input_layernorm)
 *       q, k, v = h Wq^T, h Wk^T, h Wv^T
 *       Gemma 3: q, k = rmsnorm(each head, 1 + w_q_norm / w_k_norm)   (QK-norm)
 *       rope(q), rope(k)  (NeoX, positions from 0; base and linear factor of the layer's kind:
 *                          sliding or full)
 *       s_ij = softcap(q_i . k_j * query_pre_attn_scalar^-0.5, cap) (Gemma 2: 50; else none),
 *              then the mask: causal, and on sliding layers i - j < sliding_window
 *       a = softmax(s) v  (query head n reads KV head n / (n_head / n_kv_head))
 *       x += rmsnorm(a Wo^T, 1 + w_post_attn)               (Gemma 1: no post-norm)
 *       h = rmsnorm(x, 1 + w_pre_ffn)
 *       x += rmsnorm(down(gelu_tanh(gate(h)) * up(h)), 1 + w_post_ffn)
 *   z = softcap(rmsnorm(x, 1 + w_final) E^T, 30)             (tied LM head)
 *
 * Work is done in passes of up to `chunk` rows (tokens): every matrix product takes all rows of
 * a pass at once. A row knows its position, the KV slot it writes, and which keys it sees: the
 * first `trunk_len` trunk slots plus its own segment (slots seg_slot .. seg_slot + local). A
 * trunk append is one segment that continues the trunk; each branch is a segment in the branch
 * region of the cache, so branches attend to the trunk and to themselves only. Causality makes
 * any split into passes exact: a row's keys are written before or in its own pass.
 *
 * The last layer runs its queries, attention, output projection and MLP only for the rows whose
 * logits are read (its keys and values are still computed for every row), and the LM head only
 * for the vocabulary ids asked for.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "ctx_rows.h"
#include "matmul.h"
#include "model.h"
#include "ops.h"
#include "pool.h"
#include "sg_engine.h"

#define DEFAULT_CHUNK 256
#define DEFAULT_BRANCHES 16
#define DEFAULT_BRANCH_TOKENS 4096

/* What one row (token) of a pass is and what it sees: position, KV slot, visible keys. */
typedef sg_attn_row row_t;

struct sg_ctx {
    sg_model *m;
    const sg_model_info *hp;
    const sg_layer *layers; /* the model's, or own_layers */
    const sg_mat *embed_mat;
    sg_layer *own_layers;   /* when this context's precision differs from the model's */
    sg_mat *own_embed;
    sg_pool *pool;

    int prec;           /* the sg_precision this context computes with */
    size_t n_ctx;       /* trunk capacity */
    size_t max_branches;
    size_t branch_cap;  /* KV slots for branches */
    size_t n_slots;     /* n_ctx + branch_cap */
    size_t chunk;       /* rows per pass */
    size_t len;         /* trunk tokens */
    int32_t *tokens;    /* [n_ctx] */
    uint64_t computed;

    size_t kv_dim;      /* n_kv_head * head_dim */
    size_t q_dim;       /* n_head * head_dim */
    float *kcache;      /* [n_layer][n_slots][kv_dim] */
    float *vcache;      /* [n_layer][n_slots][kv_dim] */

    /* Scratch for one pass of `chunk` rows. */
    float *x;           /* [chunk, d_model] the residual stream */
    float *xn;          /* [chunk, d_model] normed input of a block */
    float *q;           /* [chunk, q_dim] */
    float *k;           /* [chunk, kv_dim] */
    float *v;           /* [chunk, kv_dim] */
    float *att;         /* [chunk, q_dim] attention output */
    float *o;           /* [chunk, d_model] block output */
    float *gate;        /* [chunk, d_ff] */
    float *up;          /* [chunk, d_ff] */
    float *rcos[2];     /* [chunk, head_dim/2] RoPE of full [0] and sliding [1] layers */
    float *rsin[2];     /* (when both kinds rotate alike, [1] is [0]) */
    int rope_kinds;     /* 1 or 2 distinct tables */
    row_t *rows;        /* [chunk] */
    size_t *sel;        /* [chunk] rows whose logits are read, increasing */
    sg_attn_plan *attn; /* blocked attention: per-thread score blocks of n_slots keys */

    char errmsg[256];
};

sg_ctx_opts sg_ctx_opts_default(void)
{
    sg_ctx_opts o = {0, 0, 0, -1};
    return o;
}

static int fail_msg(sg_ctx *c, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int fail_msg(sg_ctx *c, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sg_verrf(c->errmsg, sizeof c->errmsg, rc, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

static void *alloc_floats(size_t n, int *bad)
{
    void *p = n ? calloc(n, sizeof(float)) : NULL;
    if (n && !p)
        *bad = 1;
    return p;
}

int sg_ctx_new(sg_ctx **out, sg_model *m, const sg_ctx_opts *opts, char *err, size_t errlen)
{
    sg_ctx_opts o = opts ? *opts : sg_ctx_opts_default();
    const sg_model_info *hp = &m->info;
    sg_ctx *c;
    int bad = 0;
    int rc;

    *out = NULL;
    if (o.n_ctx < 0 || o.max_branches < 0 || o.max_branch_tokens < 0)
        return sg_errf(err, errlen, SG_EINVAL, "sg_ctx_new", "negative option (n_ctx %d, "
                       "max_branches %d, max_branch_tokens %d)", o.n_ctx, o.max_branches,
                       o.max_branch_tokens);
    if ((size_t)o.n_ctx > (size_t)hp->n_ctx)
        return sg_errf(err, errlen, SG_EINVAL, "sg_ctx_new", "n_ctx %d is over the model's %d "
                       "positions", o.n_ctx, hp->n_ctx);
    if (o.precision < -1 || o.precision >= SG_PREC_COUNT)
        return sg_errf(err, errlen, SG_EINVAL, "sg_ctx_new", "unknown precision %d",
                       o.precision);
    c = calloc(1, sizeof *c);
    if (!c)
        return sg_errf(err, errlen, SG_ENOMEM, "sg_ctx_new", "out of memory");
    c->m = m;
    c->hp = hp;
    c->n_ctx = o.n_ctx ? (size_t)o.n_ctx : (size_t)hp->n_ctx;
    c->max_branches = o.max_branches ? (size_t)o.max_branches : DEFAULT_BRANCHES;
    c->branch_cap = o.max_branch_tokens ? (size_t)o.max_branch_tokens : DEFAULT_BRANCH_TOKENS;
    c->n_slots = c->n_ctx + c->branch_cap;
    c->chunk = DEFAULT_CHUNK;
    c->kv_dim = (size_t)hp->n_kv_head * (size_t)hp->head_dim;
    c->q_dim = (size_t)hp->n_head * (size_t)hp->head_dim;
    c->layers = m->layers;
    c->embed_mat = m->embed_mat;
    c->prec = o.precision >= 0 ? o.precision : (int)m->opts.precision;

    if (o.precision >= 0 && o.precision != (int)m->opts.precision) {
        c->own_layers = calloc((size_t)hp->n_layer, sizeof *c->own_layers);
        if (!c->own_layers) {
            rc = sg_errf(err, errlen, SG_ENOMEM, "sg_ctx_new", "out of memory");
            goto fail;
        }
        rc = sg_model_prepare_mats(m, (sg_precision)o.precision, c->own_layers, &c->own_embed,
                                   err, errlen);
        if (rc != SG_OK) {
            free(c->own_layers);
            c->own_layers = NULL;
            goto fail;
        }
        c->layers = c->own_layers;
        c->embed_mat = c->own_embed;
    }

    rc = sg_pool_new(&c->pool, m->opts.n_threads);
    if (rc != SG_OK) {
        sg_errf(err, errlen, rc, "sg_ctx_new", "cannot start %d compute threads",
                m->opts.n_threads);
        goto fail;
    }

    const size_t d = (size_t)hp->d_model;
    const size_t ch = c->chunk;
    const size_t kv_total = (size_t)hp->n_layer * c->n_slots * c->kv_dim;
    c->tokens = calloc(c->n_ctx, sizeof *c->tokens);
    bad |= !c->tokens;
    /* Scratch the matrix products want for a pass of `ch` rows (int8: the quantized rows). */
    {
        size_t need = 0;

        for (int l = 0; l < hp->n_layer; l++)
            for (int i = 0; i < SG_LM_COUNT; i++) {
                const size_t b = sg_mat_scratch(c->layers[l].mat[i], ch);

                need = b > need ? b : need;
            }
        bad |= need > 0 && sg_pool_reserve(c->pool, need) != SG_OK;
    }
    /* calloc maps big blocks lazily: cache pages cost memory only once written. */
    c->kcache = alloc_floats(kv_total, &bad);
    c->vcache = alloc_floats(kv_total, &bad);
    c->x = alloc_floats(ch * d, &bad);
    c->xn = alloc_floats(ch * d, &bad);
    c->q = alloc_floats(ch * c->q_dim, &bad);
    c->k = alloc_floats(ch * c->kv_dim, &bad);
    c->v = alloc_floats(ch * c->kv_dim, &bad);
    c->att = alloc_floats(ch * c->q_dim, &bad);
    c->o = alloc_floats(ch * d, &bad);
    c->gate = alloc_floats(ch * (size_t)hp->d_ff, &bad);
    c->up = alloc_floats(ch * (size_t)hp->d_ff, &bad);
    c->rope_kinds = hp->rope_local_theta == hp->rope_theta &&
                    hp->rope_local_scale == hp->rope_scale ? 1 : 2;
    for (int r = 0; r < 2; r++) {
        c->rcos[r] = r < c->rope_kinds ? alloc_floats(ch * (size_t)hp->head_dim / 2, &bad)
                                       : c->rcos[0];
        c->rsin[r] = r < c->rope_kinds ? alloc_floats(ch * (size_t)hp->head_dim / 2, &bad)
                                       : c->rsin[0];
    }
    c->rows = calloc(ch, sizeof *c->rows);
    c->sel = calloc(ch, sizeof *c->sel);
    bad |= !c->rows || !c->sel;
    {
        const sg_attn_shape as = {(size_t)hp->head_dim, (size_t)hp->n_head, (size_t)hp->n_kv_head,
                                  hp->query_scale, hp->attn_softcap};

        bad |= sg_attn_plan_new(&c->attn, &as, ch, c->n_slots, sg_pool_n_threads(c->pool),
                                SG_ATTN_AUTO) != SG_OK;
    }
    if (bad) {
        rc = sg_errf(err, errlen, SG_ENOMEM, "sg_ctx_new", "out of memory for a %zu-token "
                     "context (KV cache and scratch)", c->n_ctx);
        goto fail;
    }
    *out = c;
    return SG_OK;
fail:
    sg_ctx_free(c);
    return rc;
}

void sg_ctx_free(sg_ctx *c)
{
    if (!c)
        return;
    if (c->own_layers)
        sg_model_free_mats(c->own_layers, c->hp->n_layer, c->own_embed);
    free(c->own_layers);
    sg_pool_free(c->pool);
    free(c->tokens);
    free(c->kcache);
    free(c->vcache);
    free(c->x);
    free(c->xn);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->att);
    free(c->o);
    free(c->gate);
    free(c->up);
    for (int r = 0; r < c->rope_kinds; r++) {
        free(c->rcos[r]);
        free(c->rsin[r]);
    }
    free(c->rows);
    free(c->sel);
    sg_attn_plan_free(c->attn);
    free(c);
}

const char *sg_ctx_errmsg(const sg_ctx *c)
{
    return c->errmsg;
}

void sg_ctx_branch_limits(const sg_ctx *c, size_t *max_branches, size_t *max_branch_tokens)
{
    *max_branches = c->max_branches;
    *max_branch_tokens = c->branch_cap;
}

size_t sg_ctx_len(const sg_ctx *c)
{
    return c->len;
}

const int32_t *sg_ctx_tokens(const sg_ctx *c)
{
    return c->tokens;
}

uint64_t sg_ctx_computed_tokens(const sg_ctx *c)
{
    return c->computed;
}

int sg_ctx_truncate(sg_ctx *c, size_t n)
{
    if (n > c->len)
        return fail_msg(c, SG_EINVAL, "truncate to %zu tokens: the trunk has only %zu", n,
                        c->len);
    /* Cache slots past n are stale and get overwritten by the next append. */
    c->len = n;
    return SG_OK;
}

/* ---- Rows for the prefix cache (ctx_rows.h) ------------------------------------------------ */

float *sg_ctx_kv_row(sg_ctx *c, int which, int layer, size_t slot)
{
    return (which ? c->vcache : c->kcache) + ((size_t)layer * c->n_slots + slot) * c->kv_dim;
}

const sg_model *sg_ctx_model(const sg_ctx *c)
{
    return c->m;
}

int sg_ctx_precision(const sg_ctx *c)
{
    return c->prec;
}

size_t sg_ctx_capacity(const sg_ctx *c)
{
    return c->n_ctx;
}

int sg_ctx_adopt(sg_ctx *c, const int32_t *ids, size_t n)
{
    if (n < c->len || n > c->n_ctx)
        return fail_msg(c, SG_EINVAL, "adopt %zu trunk tokens: the trunk holds %zu of %zu", n,
                        c->len, c->n_ctx);
    memcpy(c->tokens + c->len, ids + c->len, (n - c->len) * sizeof *ids);
    c->len = n;
    return SG_OK;
}

int sg_ctx_fail(sg_ctx *c, int rc, const char *msg)
{
    return fail_msg(c, rc, "%s", msg);
}

/* ---- One pass ------------------------------------------------------------------------------ */

static float *kv_at(const sg_ctx *c, float *cache, int layer, size_t slot)
{
    return cache + ((size_t)layer * c->n_slots + slot) * c->kv_dim;
}

/* Row-wise element work, split over the pool by blocks of ROWS_PER_TASK rows. */
#define ROWS_PER_TASK 4

enum rows_op {
    ROWS_NORM,     /* out[i] = rmsnorm(x[i], g) */
    ROWS_NORM_ADD, /* o[i] = rmsnorm(o[i], g) when g != NULL; then res[i] += o[i] */
    ROWS_ROPE,     /* every head of buf[i]: rmsnorm(head, g) when g != NULL, then rope at row
                    * i's position with the tables cos/sin */
    ROWS_GELU,     /* gate[i] = gelu_tanh(gate[i]) * up[i] */
};

struct rows_job {
    const sg_ctx *c;
    enum rows_op op;
    size_t m;
    size_t width; /* floats per row */
    float *a;     /* out / o / buf / gate */
    float *b;     /* x (read) / res / - / up */
    const float *g;
    const float *cos; /* ROWS_ROPE: the layer's tables */
    const float *sin;
};

static void rows_task(void *arg, size_t task, int thread)
{
    const struct rows_job *j = arg;
    const sg_ctx *c = j->c;
    const size_t i0 = task * ROWS_PER_TASK;
    const size_t i1 = i0 + ROWS_PER_TASK < j->m ? i0 + ROWS_PER_TASK : j->m;
    const size_t w = j->width;
    const float eps = c->hp->rms_eps;
    const size_t hd = (size_t)c->hp->head_dim;
    const size_t half = hd / 2;

    (void)thread;
    for (size_t i = i0; i < i1; i++) {
        float *a = j->a + i * w;
        float *b = j->b ? j->b + i * w : NULL;
        switch (j->op) {
        case ROWS_NORM:
            sg_rmsnorm(a, b, j->g, w, eps);
            break;
        case ROWS_NORM_ADD:
            if (j->g)
                sg_rmsnorm(a, a, j->g, w, eps);
            for (size_t k = 0; k < w; k++)
                b[k] += a[k];
            break;
        case ROWS_ROPE:
            for (size_t h = 0; h < w / hd; h++) {
                if (j->g)
                    sg_rmsnorm(a + h * hd, a + h * hd, j->g, hd, eps);
                sg_rope(a + h * hd, hd, j->cos + i * half, j->sin + i * half);
            }
            break;
        case ROWS_GELU:
            sg_gelu_mul(a, a, b, w);
            break;
        }
    }
}

static void run_rows(sg_ctx *c, enum rows_op op, size_t m, size_t width, float *a, float *b,
                     const float *g)
{
    struct rows_job j = {c, op, m, width, a, b, g, NULL, NULL};

    sg_pool_run(c->pool, rows_task, &j, (m + ROWS_PER_TASK - 1) / ROWS_PER_TASK);
}

/* QK-norm (gain g, NULL: none) and RoPE of every head of the m rows of buf, with the RoPE of
 * layer l's kind. */
static void run_rope(sg_ctx *c, int l, size_t m, size_t width, float *buf, const float *g)
{
    const int kind = c->hp->layer_sliding[l] ? 1 : 0;
    struct rows_job j = {c, ROWS_ROPE, m, width, buf, NULL, g, c->rcos[kind], c->rsin[kind]};

    sg_pool_run(c->pool, rows_task, &j, (m + ROWS_PER_TASK - 1) / ROWS_PER_TASK);
}

/* Keep rows sel[0..n_sel) of a [m, width] buffer, in order, at its start (sel increasing). */
static void compact(float *buf, size_t width, const size_t *sel, size_t n_sel)
{
    for (size_t s = 0; s < n_sel; s++)
        if (sel[s] != s)
            memcpy(buf + s * width, buf + sel[s] * width, width * sizeof *buf);
}

/* y = x W^T for matrix `i` of layer `l` (SG_LM_COUNT: the LM head); a kernel failure becomes
 * the context's error, naming where. */
static int mat_mul(sg_ctx *c, int l, int i, const sg_mat *w, const float *x, size_t m, float *y)
{
    static const char *const names[SG_LM_COUNT + 1] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                       "gate_proj", "up_proj", "down_proj",
                                                       "lm_head"};
    int rc = sg_mat_mul(w, x, m, y, c->pool);

    if (rc != SG_OK && i == SG_LM_COUNT)
        return fail_msg(c, rc, "the LM head: the %s matrix product failed (%s)",
                        sg_mat_kernel(w), sg_engine_strerror(rc));
    if (rc != SG_OK)
        return fail_msg(c, rc, "layer %d %s: the %s matrix product failed (%s)", l, names[i],
                        sg_mat_kernel(w), sg_engine_strerror(rc));
    return SG_OK;
}

/* The matrix products of a layer: run in order, stop at the first failure. */
#define MAT(i, x, y)                                                                          \
    do {                                                                                      \
        int rc_ = mat_mul(c, l, (i), L->mat[(i)], (x), m, (y));                               \
        if (rc_ != SG_OK)                                                                     \
            return rc_;                                                                       \
    } while (0)

/*
 * One transformer layer over the `m` rows of the pass in c->x. For the last layer, `sel`
 * (n_sel rows) says which rows go past the key/value stage; the others end there. SG_OK, or
 * the error of a failed matrix product (the context's message says which).
 */
static int run_layer(sg_ctx *c, int l, size_t m, const size_t *sel, size_t n_sel)
{
    const sg_model_info *hp = c->hp;
    const sg_layer *L = &c->layers[l];
    const size_t d = (size_t)hp->d_model;
    const size_t ff = (size_t)hp->d_ff;
    const size_t half = (size_t)hp->head_dim / 2;
    const int post = c->m->post_norms;

    /* Keys and values for every row, into the cache. */
    run_rows(c, ROWS_NORM, m, d, c->xn, c->x, L->norm[SG_LN_ATTN]);
    MAT(SG_LM_K, c->xn, c->k);
    MAT(SG_LM_V, c->xn, c->v);
    run_rope(c, l, m, c->kv_dim, c->k, L->norm[SG_LN_K]);
    for (size_t i = 0; i < m; i++) {
        memcpy(kv_at(c, c->kcache, l, c->rows[i].slot), c->k + i * c->kv_dim,
               c->kv_dim * sizeof(float));
        memcpy(kv_at(c, c->vcache, l, c->rows[i].slot), c->v + i * c->kv_dim,
               c->kv_dim * sizeof(float));
    }

    if (sel) {
        /* Last layer: nothing reads the other rows' outputs. */
        compact(c->x, d, sel, n_sel);
        compact(c->xn, d, sel, n_sel);
        for (int r = 0; r < c->rope_kinds; r++) {
            compact(c->rcos[r], half, sel, n_sel);
            compact(c->rsin[r], half, sel, n_sel);
        }
        for (size_t s = 0; s < n_sel; s++)
            c->rows[s] = c->rows[sel[s]];
        m = n_sel;
        if (m == 0)
            return SG_OK;
    }

    /* Attention. */
    MAT(SG_LM_Q, c->xn, c->q);
    run_rope(c, l, m, c->q_dim, c->q, L->norm[SG_LN_Q]);
    sg_attn_run(c->attn, c->rows, m, c->q, c->q_dim, kv_at(c, c->kcache, l, 0),
                kv_at(c, c->vcache, l, 0), c->kv_dim,
                hp->layer_sliding[l] ? (size_t)hp->sliding_window : 0, c->att, c->q_dim,
                c->pool);
    MAT(SG_LM_O, c->att, c->o);
    run_rows(c, ROWS_NORM_ADD, m, d, c->o, c->x, post ? L->norm[SG_LN_POST_ATTN] : NULL);

    /* MLP. */
    run_rows(c, ROWS_NORM, m, d, c->xn, c->x, L->norm[SG_LN_PRE_FFN]);
    MAT(SG_LM_GATE, c->xn, c->gate);
    MAT(SG_LM_UP, c->xn, c->up);
    run_rows(c, ROWS_GELU, m, ff, c->gate, c->up, NULL);
    MAT(SG_LM_DOWN, c->gate, c->o);
    run_rows(c, ROWS_NORM_ADD, m, d, c->o, c->x, post ? L->norm[SG_LN_POST_FFN] : NULL);
    return SG_OK;
}

#undef MAT

/*
 * Run one pass: `m` rows with tokens ids[0..m) described by c->rows[0..m). The rows
 * c->sel[0..n_sel) get logits, written as consecutive rows at `out` (n_out values each).
 * SG_OK, or the error of a failed matrix product (in the context's message); then the rows'
 * keys and values may have been written to their cache slots, which the caller does not count
 * as held (c->len is unchanged), and `out` is undefined.
 */
static int run_pass(sg_ctx *c, const int32_t *ids, size_t m, size_t n_sel,
                     const sg_logits_req *req, float *out)
{
    const sg_model_info *hp = c->hp;
    const size_t d = (size_t)hp->d_model;
    const size_t half = (size_t)hp->head_dim / 2;
    const sg_tensor *E = c->m->embed;
    size_t row_bytes;

    /* x = E[ids] * sqrt(d_model) */
    sg_dtype_bytes(E->dtype, (int64_t)d, &row_bytes);
    for (size_t i = 0; i < m; i++) {
        float *xi = c->x + i * d;
        sg_dequant_row(E->dtype, (const uint8_t *)E->data + (size_t)ids[i] * row_bytes, xi,
                       (int64_t)d);
        for (size_t k = 0; k < d; k++)
            xi[k] *= hp->embed_scale;
        /* linear RoPE scaling: positions / factor (HF divides the frequencies by it) */
        sg_rope_table(c->rcos[0] + i * half, c->rsin[0] + i * half, (size_t)hp->head_dim,
                      (double)c->rows[i].pos / hp->rope_scale, (double)hp->rope_theta);
        if (c->rope_kinds == 2)
            sg_rope_table(c->rcos[1] + i * half, c->rsin[1] + i * half, (size_t)hp->head_dim,
                          (double)c->rows[i].pos / hp->rope_local_scale,
                          (double)hp->rope_local_theta);
    }
    for (int l = 0; l < hp->n_layer; l++) {
        int last = l == hp->n_layer - 1;
        int rc = run_layer(c, l, m, last ? c->sel : NULL, n_sel);

        if (rc != SG_OK)
            return rc;
    }
    c->computed += m;
    if (n_sel == 0 || !req)
        return SG_OK;

    /* z = softcap(rmsnorm(x) E^T) for the rows and ids asked for. */
    run_rows(c, ROWS_NORM, n_sel, d, c->xn, c->x, c->m->final_norm);
    size_t n_out = req->n_ids ? req->n_ids : (size_t)hp->n_vocab;
    if (req->n_ids) {
        int rc = sg_mat_mul_rows(c->embed_mat, req->ids, req->n_ids, c->xn, n_sel, out, c->pool);

        if (rc != SG_OK)
            return fail_msg(c, rc, "the LM head: the %s matrix product failed (%s)",
                            sg_mat_kernel(c->embed_mat), sg_engine_strerror(rc));
    } else {
        int rc = mat_mul(c, hp->n_layer, SG_LM_COUNT, c->embed_mat, c->xn, n_sel, out);

        if (rc != SG_OK)
            return rc;
    }
    sg_softcap(out, n_sel * n_out, hp->final_softcap);
    return SG_OK;
}

static int check_ids(sg_ctx *c, const int32_t *ids, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->hp->n_vocab)
            return fail_msg(c, SG_EINVAL, "%s[%zu] = %d is outside the vocabulary (0..%d)", what,
                            i, (int)ids[i], c->hp->n_vocab - 1);
    return SG_OK;
}

static int check_req(sg_ctx *c, const sg_logits_req *req)
{
    if (!req)
        return SG_OK;
    if (!req->out)
        return fail_msg(c, SG_EINVAL, "logits request without an output buffer");
    if (req->n_ids && !req->ids)
        return fail_msg(c, SG_EINVAL, "logits request with n_ids = %zu and no ids", req->n_ids);
    return check_ids(c, req->ids, req->n_ids, "logits id");
}

int sg_ctx_append(sg_ctx *c, const int32_t *ids, size_t n, const sg_logits_req *req)
{
    int rc;

    if (n == 0)
        return req ? fail_msg(c, SG_EINVAL, "logits asked for with no tokens appended") : SG_OK;
    if (!ids)
        return fail_msg(c, SG_EINVAL, "no tokens given");
    if (n > c->n_ctx - c->len)
        return fail_msg(c, SG_ERANGE, "%zu tokens do not fit: the trunk holds %zu of %zu", n,
                        c->len, c->n_ctx);
    if ((rc = check_ids(c, ids, n, "token")) != SG_OK || (rc = check_req(c, req)) != SG_OK)
        return rc;

    const size_t n_out = req ? (req->n_ids ? req->n_ids : (size_t)c->hp->n_vocab) : 0;
    const size_t base = c->len;
    for (size_t c0 = 0; c0 < n; c0 += c->chunk) {
        size_t m = n - c0 < c->chunk ? n - c0 : c->chunk;
        size_t n_sel = 0;
        float *out = NULL;
        for (size_t i = 0; i < m; i++) {
            row_t *r = &c->rows[i];
            r->pos = base + c0 + i;
            r->slot = r->pos;
            r->trunk_len = base;
            r->seg_slot = base;
            r->local = c0 + i;
        }
        if (req && req->all_positions) {
            for (size_t i = 0; i < m; i++)
                c->sel[n_sel++] = i;
            out = req->out + c0 * n_out;
        } else if (req && c0 + m == n) {
            c->sel[n_sel++] = m - 1;
            out = req->out;
        }
        if ((rc = run_pass(c, ids + c0, m, n_sel, req, out)) != SG_OK)
            return rc; /* the trunk is as before: c->len and c->tokens are unchanged */
    }
    memcpy(c->tokens + base, ids, n * sizeof *ids);
    c->len = base + n;
    return SG_OK;
}

int sg_ctx_branches(sg_ctx *c, const int32_t *const *tokens, const size_t *n, size_t n_branches,
                    const sg_logits_req *req)
{
    size_t total = 0;
    int rc;

    if (n_branches == 0)
        return SG_OK;
    if (!tokens || !n)
        return fail_msg(c, SG_EINVAL, "no branches given");
    if (n_branches > c->max_branches)
        return fail_msg(c, SG_ERANGE, "%zu branches, at most %zu per call (max_branches)",
                        n_branches, c->max_branches);
    if (req && req->all_positions)
        return fail_msg(c, SG_EINVAL, "branches give logits at their last token only "
                        "(all_positions must be 0)");
    if ((rc = check_req(c, req)) != SG_OK)
        return rc;
    for (size_t b = 0; b < n_branches; b++) {
        char what[48];
        if (n[b] == 0 || !tokens[b])
            return fail_msg(c, SG_EINVAL, "branch %zu is empty", b);
        if (n[b] > (size_t)c->hp->n_ctx - c->len)
            return fail_msg(c, SG_ERANGE, "branch %zu: positions up to %zu, past the model's "
                            "%d", b, c->len + n[b] - 1, c->hp->n_ctx);
        snprintf(what, sizeof what, "branch %zu token", b);
        if ((rc = check_ids(c, tokens[b], n[b], what)) != SG_OK)
            return rc;
        total += n[b];
    }
    if (total > c->branch_cap)
        return fail_msg(c, SG_ERANGE, "%zu branch tokens, at most %zu per call "
                        "(max_branch_tokens)", total, c->branch_cap);

    /* Rows of all branches, concatenated, in passes of `chunk` rows. */
    const size_t n_out = req ? (req->n_ids ? req->n_ids : (size_t)c->hp->n_vocab) : 0;
    size_t b = 0;      /* branch of the next row */
    size_t local = 0;  /* its index within that branch */
    size_t seg0 = 0;   /* first row of that branch in the concatenation */
    size_t done = 0;   /* rows before this pass */
    size_t out_row = 0;
    while (done < total) {
        size_t m = total - done < c->chunk ? total - done : c->chunk;
        size_t n_sel = 0;
        size_t out_row0 = out_row;
        int32_t pass_ids[DEFAULT_CHUNK];
        for (size_t i = 0; i < m; i++) {
            row_t *r = &c->rows[i];
            pass_ids[i] = tokens[b][local];
            r->pos = c->len + local;
            r->slot = c->n_ctx + seg0 + local;
            r->trunk_len = c->len;
            r->seg_slot = c->n_ctx + seg0;
            r->local = local;
            if (local + 1 == n[b]) {
                /* The branch's last token: its logits are read. */
                if (req)
                    c->sel[n_sel++] = i;
                out_row++;
                seg0 += n[b];
                b++;
                local = 0;
            } else {
                local++;
            }
        }
        rc = run_pass(c, pass_ids, m, n_sel, req, req ? req->out + out_row0 * n_out : NULL);
        if (rc != SG_OK)
            return rc;
        done += m;
    }
    return SG_OK;
}
