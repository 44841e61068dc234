#ifndef SG_RADIX_H
#define SG_RADIX_H
/*
 * radix.h: a radix tree over token ids whose nodes are fixed-size blocks of storage, evicted
 * least recently used. It knows token ids and block numbers only; what a block stores (the
 * prefix cache's key/value rows) is the caller's, moved through the callbacks of sg_radix_ops.
 *
 * Promise:
 *   - A node holds 1..block_tokens consecutive tokens of a sequence in one block; its first
 *     token sits at position `start` = the end of its parent; siblings differ in their first
 *     token. The tokens on the path from the root to any node are a prefix that was inserted.
 *   - sg_radix_match() returns the longest prefix of a query that the tree holds, and where
 *     each of its tokens lives (spans in position order; a query may end inside a node).
 *   - sg_radix_insert() makes the tree hold a sequence (or as much of it as fits), asking the
 *     caller to fill only the tokens it did not hold. A sequence that diverges inside a node
 *     splits it: the node's tail moves to a new block (ops->move). When no block is free, the
 *     least recently used leaf that is not on the sequence's own path is evicted.
 *   - Never more than n_blocks blocks; nothing is allocated after sg_radix_new().
 *   - Least recently used: match and insert touch their whole path, deepest node first, so a
 *     node is never less recently used than its descendants and the LRU order starts with
 *     leaves.
 *
 * Not thread-safe: the prefix cache locks around it.
 */

#include <stddef.h>
#include <stdint.h>

typedef struct sg_radix sg_radix;

/* `n` tokens of a matched prefix held in `block` from offset `off`. */
typedef struct sg_radix_span {
    uint32_t block;
    uint32_t off;
    uint32_t n;
} sg_radix_span;

typedef struct sg_radix_ops {
    void *ud;
    /* Store the rows of positions pos..pos+n of the sequence being inserted in `block` from
     * offset `off`. */
    void (*fill)(void *ud, uint32_t block, size_t off, size_t pos, size_t n);
    /* Copy n rows of block `src` from `src_off` to block `dst` from `dst_off` (a split). */
    void (*move)(void *ud, uint32_t dst, size_t dst_off, uint32_t src, size_t src_off, size_t n);
} sg_radix_ops;

/* A tree of at most n_blocks blocks (>= 1) of block_tokens (>= 1) tokens each. 0 or -1 (no
 * memory, or a count too large). */
int sg_radix_new(sg_radix **out, size_t n_blocks, size_t block_tokens);
void sg_radix_free(sg_radix *r);

/*
 * The longest prefix of ids[0..n) the tree holds: returns its length L, and in spans[] (room
 * for sg_radix_max_spans() entries) *n_spans spans covering positions 0..L in order. Touches
 * the path (LRU).
 */
size_t sg_radix_match(sg_radix *r, const int32_t *ids, size_t n, sg_radix_span *spans,
                      size_t *n_spans);

/*
 * Make the tree hold ids[0..n): ops->fill is called for the tokens it lacked, ops->move for
 * splits. Returns how many leading tokens of ids it holds afterwards (n, or fewer when the
 * blocks are all on this sequence's path). *evicted is increased by the blocks evicted.
 */
size_t sg_radix_insert(sg_radix *r, const int32_t *ids, size_t n, const sg_radix_ops *ops,
                       uint64_t *evicted);

size_t sg_radix_max_spans(const sg_radix *r);   /* = n_blocks */
/* Bytes of bookkeeping the tree keeps per block (its node, free-list and path entries). */
size_t sg_radix_block_overhead(void);
size_t sg_radix_blocks_used(const sg_radix *r);
size_t sg_radix_tokens(const sg_radix *r);      /* tokens held, all nodes together */

/* Check every invariant (links, starts, lengths, sibling keys, block counts, LRU order).
 * 0, or -1 with a description in msg. For tests. */
int sg_radix_check(const sg_radix *r, char *msg, size_t msglen);

#endif /* SG_RADIX_H */
