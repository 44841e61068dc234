/*
 * prefix.c: the prefix cache (sg_engine.h): key/value rows of many token prefixes, shared by
 * every context of one model and precision, within a byte bound.
 *
 * Promise:
 *   - sg_ctx_sync_prefix() leaves the trunk holding exactly the ids asked for, with the rows
 *     computing them would give, bit for bit: a row is copied, never recomputed or converted
 *     (f32, as the context holds it), and a prefix's rows depend on its tokens only (causal
 *     attention, batch-invariant kernels). Only the tokens neither the context nor the cache
 *     holds are computed.
 *   - Memory: n_blocks = floor(bound / block_bytes) blocks, allocated at creation (calloc:
 *     pages are backed as blocks are first written), never more; nothing is allocated per
 *     request or per token. `bytes` = blocks in use x block_bytes <= the bound, exactly.
 *   - Eviction: least recently used leaf blocks first (radix.h), never a block of the prefix
 *     being stored.
 *   - Thread-safe: one mutex around the tree and the copies in and out of it.
 *
 * Layout of a block b: for each layer l, keys then values, block_tokens rows of kv_dim floats:
 * store[((b * n_layer + l) * 2 + which) * block_tokens + t][kv_dim].
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx_rows.h"
#include "model.h"
#include "radix.h"
#include "sg_engine.h"

#define DEFAULT_TOKENS 6144

struct sg_prefix_cache {
    pthread_mutex_t mu;
    const sg_model *m;
    int prec;
    size_t n_layer, kv_dim, bt;
    size_t n_blocks, block_bytes;
    float *store;         /* [n_blocks][n_layer][2][bt][kv_dim] */
    sg_radix *rx;
    sg_radix_span *spans; /* [n_blocks] */
    uint64_t hits, misses, evictions, cached_tokens;
};

/* Bytes of one token's rows: every layer's key and value. */
static size_t row_bytes(const sg_model_info *hp)
{
    return (size_t)hp->n_layer * 2 * (size_t)hp->n_kv_head * (size_t)hp->head_dim *
           sizeof(float);
}

static size_t block_bytes(const sg_model_info *hp)
{
    return SG_PREFIX_BLOCK_TOKENS * (row_bytes(hp) + sizeof(int32_t)) +
           sg_radix_block_overhead() + sizeof(sg_radix_span);
}

size_t sg_prefix_cache_default_bytes(const sg_model *m)
{
    return DEFAULT_TOKENS / SG_PREFIX_BLOCK_TOKENS * block_bytes(sg_model_get_info(m));
}

int sg_prefix_cache_new(sg_prefix_cache **out, const sg_model *m, int precision,
                        size_t max_bytes, char *err, size_t errlen)
{
    const sg_model_info *hp = sg_model_get_info(m);
    sg_prefix_cache *pc;
    size_t bb = block_bytes(hp);

    *out = NULL;
    if (precision < -1 || precision >= SG_PREC_COUNT) {
        snprintf(err, errlen, "prefix cache: precision %d is not an sg_precision", precision);
        return SG_EINVAL;
    }
    if (max_bytes < bb) {
        snprintf(err, errlen, "prefix cache: %zu bytes hold no block (one block of %d tokens of "
                 "this model is %zu bytes)", max_bytes, SG_PREFIX_BLOCK_TOKENS, bb);
        return SG_EINVAL;
    }
    pc = calloc(1, sizeof *pc);
    if (!pc)
        goto nomem;
    pc->m = m;
    pc->prec = precision >= 0 ? precision : (int)m->opts.precision;
    pc->n_layer = (size_t)hp->n_layer;
    pc->kv_dim = (size_t)hp->n_kv_head * (size_t)hp->head_dim;
    pc->bt = SG_PREFIX_BLOCK_TOKENS;
    pc->n_blocks = max_bytes / bb;
    pc->block_bytes = bb;
    if (pthread_mutex_init(&pc->mu, NULL) != 0) {
        free(pc);
        goto nomem;
    }
    pc->store = calloc(pc->n_blocks, pc->bt * row_bytes(hp));
    pc->spans = calloc(pc->n_blocks, sizeof *pc->spans);
    if (!pc->store || !pc->spans || sg_radix_new(&pc->rx, pc->n_blocks, pc->bt) < 0) {
        sg_prefix_cache_free(pc);
        goto nomem;
    }
    *out = pc;
    return SG_OK;
nomem:
    snprintf(err, errlen, "prefix cache: out of memory for %zu bytes", max_bytes);
    return SG_ENOMEM;
}

void sg_prefix_cache_free(sg_prefix_cache *pc)
{
    if (!pc)
        return;
    sg_radix_free(pc->rx);
    free(pc->spans);
    free(pc->store);
    pthread_mutex_destroy(&pc->mu);
    free(pc);
}

void sg_prefix_cache_get_stats(sg_prefix_cache *pc, sg_prefix_cache_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&pc->mu);
    out->bytes = sg_radix_blocks_used(pc->rx) * pc->block_bytes;
    out->capacity_bytes = pc->n_blocks * pc->block_bytes;
    out->block_bytes = pc->block_bytes;
    out->block_tokens = pc->bt;
    out->tokens = sg_radix_tokens(pc->rx);
    out->hits = pc->hits;
    out->misses = pc->misses;
    out->evictions = pc->evictions;
    out->cached_tokens = pc->cached_tokens;
    pthread_mutex_unlock(&pc->mu);
}

/* Rows t..t+n of block b, layer l, keys (which 0) or values (1). */
static float *block_rows(const sg_prefix_cache *pc, uint32_t b, size_t l, int which, size_t t)
{
    return pc->store + ((((size_t)b * pc->n_layer + l) * 2 + (size_t)which) * pc->bt + t) *
                           pc->kv_dim;
}

/* Copy n rows between the cache (block b from offset t) and the context (slots from pos). */
static void copy_rows(sg_prefix_cache *pc, sg_ctx *c, uint32_t b, size_t t, size_t pos,
                      size_t n, int to_ctx)
{
    const size_t bytes = n * pc->kv_dim * sizeof(float);

    for (size_t l = 0; l < pc->n_layer; l++)
        for (int w = 0; w < 2; w++) {
            float *blk = block_rows(pc, b, l, w, t);
            float *ctx = sg_ctx_kv_row(c, w, (int)l, pos);

            if (to_ctx)
                memcpy(ctx, blk, bytes);
            else
                memcpy(blk, ctx, bytes);
        }
}

struct fill_ud {
    sg_prefix_cache *pc;
    sg_ctx *c;
};

static void fill_cb(void *ud, uint32_t block, size_t off, size_t pos, size_t n)
{
    struct fill_ud *f = ud;

    copy_rows(f->pc, f->c, block, off, pos, n, 0);
}

static void move_cb(void *ud, uint32_t dst, size_t dst_off, uint32_t src, size_t src_off,
                    size_t n)
{
    struct fill_ud *f = ud;
    const size_t bytes = n * f->pc->kv_dim * sizeof(float);

    for (size_t l = 0; l < f->pc->n_layer; l++)
        for (int w = 0; w < 2; w++)
            memcpy(block_rows(f->pc, dst, l, w, dst_off), block_rows(f->pc, src, l, w, src_off),
                   bytes);
}

/* Under the lock: load the longest cached prefix of ids[0..n) past the `keep` tokens the
 * trunk holds. Returns the trunk's length afterwards. */
static size_t load_locked(sg_prefix_cache *pc, sg_ctx *c, const int32_t *ids, size_t n,
                          size_t keep)
{
    size_t n_spans;
    size_t got = sg_radix_match(pc->rx, ids, n, pc->spans, &n_spans);
    size_t p0 = 0;

    if (got <= keep) {
        pc->misses++;
        return keep;
    }
    for (size_t s = 0; s < n_spans; s++) {
        const sg_radix_span *sp = &pc->spans[s];
        size_t from = p0 > keep ? p0 : keep;

        if (from < p0 + sp->n)
            copy_rows(pc, c, sp->block, sp->off + (from - p0), from, p0 + sp->n - from, 1);
        p0 += sp->n;
    }
    sg_ctx_adopt(c, ids, got);
    pc->hits++;
    pc->cached_tokens += got - keep;
    return got;
}

int sg_ctx_sync_prefix(sg_ctx *c, sg_prefix_cache *pc, const int32_t *ids, size_t n,
                       size_t *reused)
{
    const size_t have = sg_ctx_len(c);
    const int32_t *trunk = sg_ctx_tokens(c);
    size_t keep = 0;
    size_t start;
    int rc;

    if (reused)
        *reused = 0;
    if (n > 0 && !ids)
        return sg_ctx_fail(c, SG_EINVAL, "sync prefix: no tokens given");
    if (pc && (pc->m != sg_ctx_model(c) || pc->prec != sg_ctx_precision(c)))
        return sg_ctx_fail(c, SG_EINVAL, "sync prefix: the prefix cache is for another model "
                           "or precision than this context");
    while (keep < have && keep < n && trunk[keep] == ids[keep])
        keep++;
    if (keep < have && (rc = sg_ctx_truncate(c, keep)) != SG_OK)
        return rc;
    start = keep;
    if (pc) {
        const size_t cap = sg_ctx_capacity(c);

        pthread_mutex_lock(&pc->mu);
        start = load_locked(pc, c, ids, n < cap ? n : cap, keep);
        pthread_mutex_unlock(&pc->mu);
    }
    if (n > start && (rc = sg_ctx_append(c, ids + start, n - start, NULL)) != SG_OK)
        return rc; /* the trunk holds ids[0..start) */
    if (pc && n > 0) {
        struct fill_ud f = {pc, c};
        const sg_radix_ops ops = {&f, fill_cb, move_cb};

        pthread_mutex_lock(&pc->mu);
        sg_radix_insert(pc->rx, ids, n, &ops, &pc->evictions);
        pthread_mutex_unlock(&pc->mu);
    }
    if (reused)
        *reused = start;
    return SG_OK;
}
