#ifndef SG_DAEMON_CACHE_H
#define SG_DAEMON_CACHE_H
/*
 * cache.h: a bounded result cache: exact byte keys -> opaque values, least recently used
 * eviction under a byte budget, and a time to live. Single-threaded (the event loop owns it).
 *
 *     struct cache *c = cache_new(64 << 20, 300.0);
 *     cache_put(c, key, klen, value, cost, free_value, now);   // the cache owns value now
 *     const void *v = cache_get(c, key, klen, now);             // borrowed, or NULL
 */

#include <stddef.h>
#include <stdint.h>

struct cache;

struct cache_stats {
    uint64_t hits, misses, insertions, evictions, expirations;
    size_t entries;
    size_t bytes;
};

/* A cache holding at most `max_bytes` (keys + costs + bookkeeping) for `ttl` seconds each.
 * NULL when out of memory. The caller owns the result (cache_free). */
struct cache *cache_new(size_t max_bytes, double ttl);
/* Free every value (with its free function) and the cache. NULL is fine. */
void cache_free(struct cache *c);

/*
 * The value stored under key[0..klen) if it was stored less than ttl seconds before `now`
 * (a monotonic clock in seconds), else NULL; an expired entry is dropped. A hit makes the entry
 * the most recently used. Borrowed: valid until the next cache_put/cache_clear/cache_free.
 */
const void *cache_get(struct cache *c, const void *key, size_t klen, double now);

/*
 * Store `value` under the key, replacing an older entry, then evict least recently used
 * entries until the budget holds. `cost` is the value's size in bytes; `free_value` (may be
 * NULL) releases it. On success the cache owns `value` and returns 0; an entry larger than the
 * whole budget is not stored and `value` is released at once (returns 0 too). Returns -1 when
 * out of memory, and the caller keeps `value`.
 */
int cache_put(struct cache *c, const void *key, size_t klen, void *value, size_t cost,
              void (*free_value)(void *), double now);

/* Drop every entry (e.g. after a policy reload). */
void cache_clear(struct cache *c);

void cache_get_stats(const struct cache *c, struct cache_stats *out);

#endif /* SG_DAEMON_CACHE_H */
