/*
 * cache.c: a chained hash table (FNV-1a) threaded on a doubly linked LRU list. Each entry is
 * one allocation holding the key bytes after the header.
 */
#include "cache.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *hnext;       /* hash chain */
    struct entry *prev, *next; /* LRU list: head is the most recently used */
    uint64_t hash;
    double stored; /* when it was put */
    void *value;
    void (*free_value)(void *);
    size_t cost; /* accounted bytes of the whole entry */
    size_t klen;
    unsigned char key[];
};

struct cache {
    struct entry **buckets;
    size_t n_buckets; /* a power of two */
    struct entry *head, *tail;
    size_t max_bytes;
    double ttl;
    struct cache_stats st;
};

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct cache *cache_new(size_t max_bytes, double ttl)
{
    struct cache *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    c->n_buckets = 256;
    c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
    if (c->buckets == NULL) {
        free(c);
        return NULL;
    }
    c->max_bytes = max_bytes;
    c->ttl = ttl;
    return c;
}

static void lru_unlink(struct cache *c, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct cache *c, struct entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (c->tail == NULL)
        c->tail = e;
}

/* Unlink `e` from its chain and the list, free it and its value. */
static void drop(struct cache *c, struct entry *e)
{
    struct entry **pp = &c->buckets[e->hash & (c->n_buckets - 1)];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(c, e);
    c->st.entries--;
    c->st.bytes -= e->cost;
    if (e->free_value)
        e->free_value(e->value);
    free(e);
}

static struct entry *lookup(struct cache *c, const void *key, size_t klen, uint64_t h)
{
    for (struct entry *e = c->buckets[h & (c->n_buckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

const void *cache_get(struct cache *c, const void *key, size_t klen, double now)
{
    uint64_t h = fnv1a(key, klen);
    struct entry *e = lookup(c, key, klen, h);

    if (e != NULL && now - e->stored >= c->ttl) {
        drop(c, e);
        c->st.expirations++;
        e = NULL;
    }
    if (e == NULL) {
        c->st.misses++;
        return NULL;
    }
    c->st.hits++;
    lru_unlink(c, e);
    lru_push_front(c, e);
    return e->value;
}

/* Double the bucket array when the load passes 1; a failure just keeps longer chains. */
static void maybe_grow(struct cache *c)
{
    size_t n = c->n_buckets * 2;
    struct entry **b;

    if (c->st.entries < c->n_buckets)
        return;
    b = calloc(n, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < c->n_buckets; i++) {
        struct entry *e = c->buckets[i];

        while (e) {
            struct entry *next = e->hnext;

            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = n;
}

int cache_put(struct cache *c, const void *key, size_t klen, void *value, size_t cost,
              void (*free_value)(void *), double now)
{
    uint64_t h = fnv1a(key, klen);
    struct entry *e = lookup(c, key, klen, h);
    size_t total = sizeof *e + klen + cost;

    if (e != NULL)
        drop(c, e);
    if (total > c->max_bytes) {
        if (free_value)
            free_value(value);
        return 0;
    }
    e = malloc(sizeof *e + klen);
    if (e == NULL)
        return -1;
    memcpy(e->key, key, klen);
    e->klen = klen;
    e->hash = h;
    e->stored = now;
    e->value = value;
    e->free_value = free_value;
    e->cost = total;
    while (c->tail != NULL && c->st.bytes + total > c->max_bytes) {
        drop(c, c->tail);
        c->st.evictions++;
    }
    e->hnext = c->buckets[h & (c->n_buckets - 1)];
    c->buckets[h & (c->n_buckets - 1)] = e;
    lru_push_front(c, e);
    c->st.entries++;
    c->st.bytes += total;
    c->st.insertions++;
    maybe_grow(c);
    return 0;
}

void cache_clear(struct cache *c)
{
    while (c->head != NULL)
        drop(c, c->head);
}

void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    cache_clear(c);
    free(c->buckets);
    free(c);
}

void cache_get_stats(const struct cache *c, struct cache_stats *out)
{
    *out = c->st;
}
