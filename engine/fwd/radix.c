/*
 * radix.c: the radix tree of the prefix cache (radix.h). Node i owns block i; the root is node
 * n_blocks and owns none. Children are a singly linked list per node (fan-out is small: the
 * conversations, and the variants of a template's tail); the LRU order is a doubly linked list
 * over the nodes in use, least recently used first.
 */
#include "radix.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

typedef struct node {
    uint32_t parent, child, sib; /* tree links (NONE: none) */
    uint32_t prev, next;         /* LRU list links */
    uint32_t start, len;         /* positions start..start+len */
    uint8_t used, pinned;        /* pinned: on the path of the insert running now */
} node;

struct sg_radix {
    size_t n_blocks, bt; /* bt: tokens per block */
    node *nodes;         /* [n_blocks + 1], the root last */
    int32_t *tok;        /* [n_blocks][bt] */
    uint32_t *free_list; /* [n_blocks] */
    size_t n_free;
    uint32_t lru_head, lru_tail;
    uint32_t *path;      /* [n_blocks] the nodes of the current match or insert */
    size_t n_path;
    size_t tokens;
};

int sg_radix_new(sg_radix **out, size_t n_blocks, size_t block_tokens)
{
    sg_radix *r;

    *out = NULL;
    if (n_blocks == 0 || block_tokens == 0 || n_blocks >= NONE || block_tokens >= NONE ||
        n_blocks > SIZE_MAX / block_tokens / sizeof(int32_t))
        return -1;
    r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->n_blocks = n_blocks;
    r->bt = block_tokens;
    r->nodes = calloc(n_blocks + 1, sizeof *r->nodes);
    r->tok = calloc(n_blocks * block_tokens, sizeof *r->tok);
    r->free_list = calloc(n_blocks, sizeof *r->free_list);
    r->path = calloc(n_blocks, sizeof *r->path);
    if (!r->nodes || !r->tok || !r->free_list || !r->path) {
        sg_radix_free(r);
        return -1;
    }
    for (size_t i = 0; i < n_blocks; i++)
        r->free_list[i] = (uint32_t)(n_blocks - 1 - i); /* block 0 is handed out first */
    r->n_free = n_blocks;
    r->nodes[n_blocks] = (node){NONE, NONE, NONE, NONE, NONE, 0, 0, 1, 0};
    r->lru_head = r->lru_tail = NONE;
    *out = r;
    return 0;
}

void sg_radix_free(sg_radix *r)
{
    if (!r)
        return;
    free(r->nodes);
    free(r->tok);
    free(r->free_list);
    free(r->path);
    free(r);
}

size_t sg_radix_max_spans(const sg_radix *r)
{
    return r->n_blocks;
}

size_t sg_radix_block_overhead(void)
{
    return sizeof(node) + 2 * sizeof(uint32_t);
}

size_t sg_radix_blocks_used(const sg_radix *r)
{
    return r->n_blocks - r->n_free;
}

size_t sg_radix_tokens(const sg_radix *r)
{
    return r->tokens;
}

/* ---- LRU list ------------------------------------------------------------------------------ */

static void lru_unlink(sg_radix *r, uint32_t i)
{
    node *n = &r->nodes[i];

    if (n->prev != NONE)
        r->nodes[n->prev].next = n->next;
    else
        r->lru_head = n->next;
    if (n->next != NONE)
        r->nodes[n->next].prev = n->prev;
    else
        r->lru_tail = n->prev;
    n->prev = n->next = NONE;
}

/* Put i just before `before` (NONE: at the tail, the most recently used end). */
static void lru_insert(sg_radix *r, uint32_t i, uint32_t before)
{
    node *n = &r->nodes[i];

    n->next = before;
    n->prev = before == NONE ? r->lru_tail : r->nodes[before].prev;
    if (n->prev != NONE)
        r->nodes[n->prev].next = i;
    else
        r->lru_head = i;
    if (before != NONE)
        r->nodes[before].prev = i;
    else
        r->lru_tail = i;
}

/* The path, deepest first, to the most recently used end: ancestors end up after descendants. */
static void touch_path(sg_radix *r)
{
    for (size_t k = r->n_path; k-- > 0;) {
        lru_unlink(r, r->path[k]);
        lru_insert(r, r->path[k], NONE);
    }
}

/* ---- Tree ---------------------------------------------------------------------------------- */

static int32_t *tok_of(const sg_radix *r, uint32_t i)
{
    return r->tok + (size_t)i * r->bt;
}

static uint32_t find_child(const sg_radix *r, uint32_t parent, int32_t first)
{
    for (uint32_t c = r->nodes[parent].child; c != NONE; c = r->nodes[c].sib)
        if (tok_of(r, c)[0] == first)
            return c;
    return NONE;
}

static void unlink_child(sg_radix *r, uint32_t i)
{
    uint32_t *p = &r->nodes[r->nodes[i].parent].child;

    while (*p != i)
        p = &r->nodes[*p].sib;
    *p = r->nodes[i].sib;
    r->nodes[i].sib = NONE;
}

/* A free block: from the free list, or by evicting the least recently used leaf that is not
 * pinned. NONE when every block is pinned or has children. */
static uint32_t alloc_block(sg_radix *r, uint64_t *evicted)
{
    uint32_t i;

    if (r->n_free > 0)
        return r->free_list[--r->n_free];
    for (i = r->lru_head; i != NONE; i = r->nodes[i].next)
        if (r->nodes[i].child == NONE && !r->nodes[i].pinned)
            break;
    if (i == NONE)
        return NONE;
    unlink_child(r, i);
    lru_unlink(r, i);
    r->tokens -= r->nodes[i].len;
    r->nodes[i].used = 0;
    if (evicted)
        (*evicted)++;
    return i;
}

size_t sg_radix_match(sg_radix *r, const int32_t *ids, size_t n, sg_radix_span *spans,
                      size_t *n_spans)
{
    uint32_t cur = (uint32_t)r->n_blocks;
    size_t pos = 0;

    r->n_path = 0;
    while (pos < n) {
        uint32_t c = find_child(r, cur, ids[pos]);
        const int32_t *t;
        size_t k = 0;

        if (c == NONE)
            break;
        t = tok_of(r, c);
        while (k < r->nodes[c].len && pos + k < n && t[k] == ids[pos + k])
            k++;
        spans[r->n_path] = (sg_radix_span){c, 0, (uint32_t)k};
        r->path[r->n_path++] = c;
        pos += k;
        if (k < r->nodes[c].len)
            break;
        cur = c;
    }
    *n_spans = r->n_path;
    touch_path(r);
    return pos;
}

/* Split node i after its first k tokens (0 < k < len): the tail moves to a new block that
 * takes over i's children. 0, or -1 when no block can be had. */
static int split(sg_radix *r, uint32_t i, size_t k, const sg_radix_ops *ops, uint64_t *evicted)
{
    uint32_t y = alloc_block(r, evicted);
    node *n = &r->nodes[i];
    node *ny;

    if (y == NONE)
        return -1;
    ny = &r->nodes[y];
    *ny = (node){i, n->child, NONE, NONE, NONE, n->start + (uint32_t)k, n->len - (uint32_t)k,
                 1, 0};
    memcpy(tok_of(r, y), tok_of(r, i) + k, (n->len - k) * sizeof(int32_t));
    ops->move(ops->ud, y, 0, i, k, n->len - k);
    for (uint32_t c = ny->child; c != NONE; c = r->nodes[c].sib)
        r->nodes[c].parent = y;
    n->child = y;
    n->len = (uint32_t)k;
    /* A descendant of i: just before i in the LRU order, after i's other descendants. */
    lru_insert(r, y, i);
    return 0;
}

/* A new leaf under `parent` holding ids[pos..pos+len). NONE when no block can be had. */
static uint32_t add_leaf(sg_radix *r, uint32_t parent, const int32_t *ids, size_t pos, size_t len,
                         const sg_radix_ops *ops, uint64_t *evicted)
{
    uint32_t b = alloc_block(r, evicted);

    if (b == NONE)
        return NONE;
    r->nodes[b] = (node){parent, NONE, r->nodes[parent].child, NONE, NONE, (uint32_t)pos,
                         (uint32_t)len, 1, 1};
    r->nodes[parent].child = b;
    memcpy(tok_of(r, b), ids + pos, len * sizeof(int32_t));
    ops->fill(ops->ud, b, 0, pos, len);
    lru_insert(r, b, NONE);
    r->tokens += len;
    return b;
}

size_t sg_radix_insert(sg_radix *r, const int32_t *ids, size_t n, const sg_radix_ops *ops,
                       uint64_t *evicted)
{
    const uint32_t root = (uint32_t)r->n_blocks;
    uint32_t cur = root;
    size_t pos = 0;

    r->n_path = 0;
    while (pos < n) {
        uint32_t c = find_child(r, cur, ids[pos]);
        node *nc;

        if (c != NONE) {
            const int32_t *t = tok_of(r, c);
            size_t k = 0;

            nc = &r->nodes[c];
            while (k < nc->len && pos + k < n && t[k] == ids[pos + k])
                k++;
            nc->pinned = 1;
            r->path[r->n_path++] = c;
            if (k < nc->len && pos + k < n && split(r, c, k, ops, evicted) < 0) {
                pos += k; /* the tree still holds what matched */
                break;
            }
            pos += k;
            cur = c;
            continue;
        }
        nc = &r->nodes[cur];
        if (cur != root && nc->child == NONE && nc->len < r->bt) {
            /* A leaf with room: extend it in place. */
            size_t a = r->bt - nc->len < n - pos ? r->bt - nc->len : n - pos;

            memcpy(tok_of(r, cur) + nc->len, ids + pos, a * sizeof(int32_t));
            ops->fill(ops->ud, cur, nc->len, pos, a);
            nc->len += (uint32_t)a;
            r->tokens += a;
            pos += a;
            continue;
        }
        c = add_leaf(r, cur, ids, pos, n - pos < r->bt ? n - pos : r->bt, ops, evicted);
        if (c == NONE)
            break;
        r->path[r->n_path++] = c;
        pos += r->nodes[c].len;
        cur = c;
    }
    for (size_t k = 0; k < r->n_path; k++)
        r->nodes[r->path[k]].pinned = 0;
    touch_path(r);
    return pos;
}

/* ---- Invariants (tests) -------------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int bad(char *msg, size_t msglen, const char *fmt, ...);

static int bad(char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Every used node: a used parent whose child list holds it, its start at the parent's end,
 * 1..bt tokens, no sibling with the same first token, not pinned. */
static int check_node(const sg_radix *r, uint32_t i, char *msg, size_t msglen)
{
    const node *n = &r->nodes[i];
    const node *p;
    uint32_t c;
    size_t depth = 0;

    if (n->parent == NONE || n->parent > r->n_blocks || !r->nodes[n->parent].used)
        return bad(msg, msglen, "node %u: bad parent %u", i, n->parent);
    p = &r->nodes[n->parent];
    for (c = p->child; c != NONE && c != i && depth++ <= r->n_blocks; c = r->nodes[c].sib)
        if (tok_of(r, c)[0] == tok_of(r, i)[0])
            return bad(msg, msglen, "node %u: sibling %u has the same first token", i, c);
    if (c != i)
        return bad(msg, msglen, "node %u: not in its parent's child list", i);
    if (n->start != p->start + p->len)
        return bad(msg, msglen, "node %u: starts at %u, its parent ends at %u", i, n->start,
                   p->start + p->len);
    if (n->len < 1 || n->len > r->bt)
        return bad(msg, msglen, "node %u: %u tokens (1..%zu)", i, n->len, r->bt);
    if (n->pinned)
        return bad(msg, msglen, "node %u: still pinned", i);
    return 0;
}

int sg_radix_check(const sg_radix *r, char *msg, size_t msglen)
{
    size_t used = 0, tokens = 0, listed = 0;
    size_t *order = calloc(r->n_blocks + 1, sizeof *order);
    int rc = 0;

    if (!order)
        return bad(msg, msglen, "out of memory");
    for (size_t f = 0; f < r->n_free; f++)
        if (r->nodes[r->free_list[f]].used)
            rc = bad(msg, msglen, "free block %u is in use", r->free_list[f]);
    for (uint32_t i = r->lru_head; rc == 0 && i != NONE; i = r->nodes[i].next) {
        if (i >= r->n_blocks || !r->nodes[i].used || order[i] || listed > r->n_blocks)
            rc = bad(msg, msglen, "LRU list: bad entry %u", i);
        else
            order[i] = ++listed;
    }
    for (uint32_t i = 0; rc == 0 && i < r->n_blocks; i++) {
        if (!r->nodes[i].used)
            continue;
        used++;
        tokens += r->nodes[i].len;
        rc = check_node(r, i, msg, msglen);
        if (rc == 0 && !order[i])
            rc = bad(msg, msglen, "node %u: not in the LRU list", i);
        if (rc == 0 && r->nodes[i].parent != r->n_blocks &&
            order[r->nodes[i].parent] < order[i])
            rc = bad(msg, msglen, "node %u: more recently used than its parent %u", i,
                     r->nodes[i].parent);
    }
    if (rc == 0 && (used != r->n_blocks - r->n_free || listed != used))
        rc = bad(msg, msglen, "%zu nodes in use, %zu free of %zu, %zu listed", used, r->n_free,
                 r->n_blocks, listed);
    if (rc == 0 && tokens != r->tokens)
        rc = bad(msg, msglen, "%zu tokens in the nodes, %zu counted", tokens, r->tokens);
    free(order);
    return rc;
}
