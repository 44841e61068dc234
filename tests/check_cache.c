/*
 * check_cache.c: the result cache: hits and misses, exact keys (no false hits on a hash
 * collision of prefixes), replacement, LRU eviction under the byte budget, TTL expiry, values
 * freed exactly once, entries larger than the budget, clearing, and growth of the table.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"

Suite *cache_suite(void);

static int freed;

static void count_free(void *p)
{
    freed++;
    free(p);
}

static char *val(const char *s)
{
    char *d = malloc(strlen(s) + 1);

    strcpy(d, s);
    return d;
}

START_TEST(hit_miss)
{
    struct cache *c = cache_new(1 << 20, 10.0);
    struct cache_stats st;

    freed = 0;
    ck_assert_ptr_null(cache_get(c, "a", 1, 0));
    ck_assert_int_eq(cache_put(c, "a", 1, val("A"), 2, count_free, 0), 0);
    ck_assert_str_eq(cache_get(c, "a", 1, 1), "A");
    ck_assert_ptr_null(cache_get(c, "ab", 2, 1));
    ck_assert_ptr_null(cache_get(c, "b", 1, 1));
    /* Keys are bytes: an embedded NUL matters. */
    ck_assert_int_eq(cache_put(c, "x\0y", 3, val("XY"), 3, count_free, 0), 0);
    ck_assert_ptr_null(cache_get(c, "x\0z", 3, 1));
    ck_assert_str_eq(cache_get(c, "x\0y", 3, 1), "XY");
    cache_get_stats(c, &st);
    ck_assert_uint_eq(st.hits, 2);
    ck_assert_uint_eq(st.misses, 4);
    ck_assert_uint_eq(st.entries, 2);
    /* Replacing frees the old value. */
    ck_assert_int_eq(cache_put(c, "a", 1, val("A2"), 3, count_free, 0), 0);
    ck_assert_int_eq(freed, 1);
    ck_assert_str_eq(cache_get(c, "a", 1, 2), "A2");
    cache_free(c);
    ck_assert_int_eq(freed, 3);
    cache_free(NULL);
}
END_TEST

START_TEST(ttl)
{
    struct cache *c = cache_new(1 << 20, 5.0);
    struct cache_stats st;

    freed = 0;
    cache_put(c, "k", 1, val("v"), 1, count_free, 100.0);
    ck_assert_ptr_nonnull(cache_get(c, "k", 1, 104.9));
    ck_assert_ptr_null(cache_get(c, "k", 1, 105.0));
    ck_assert_int_eq(freed, 1);
    cache_get_stats(c, &st);
    ck_assert_uint_eq(st.expirations, 1);
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_eq(st.bytes, 0);
    cache_free(c);
}
END_TEST

START_TEST(lru_eviction)
{
    /* Each entry costs its value size plus key and bookkeeping; room for about three. */
    struct cache *c = cache_new(3 * (1000 + 200), 100.0);
    struct cache_stats st;

    freed = 0;
    cache_put(c, "1", 1, val("one"), 1000, count_free, 0);
    cache_put(c, "2", 1, val("two"), 1000, count_free, 0);
    cache_put(c, "3", 1, val("three"), 1000, count_free, 0);
    ck_assert_ptr_nonnull(cache_get(c, "1", 1, 1)); /* 1 is now the most recent */
    cache_put(c, "4", 1, val("four"), 1000, count_free, 0);
    ck_assert_ptr_null(cache_get(c, "2", 1, 1)); /* the least recent went */
    ck_assert_ptr_nonnull(cache_get(c, "1", 1, 1));
    ck_assert_ptr_nonnull(cache_get(c, "3", 1, 1));
    ck_assert_ptr_nonnull(cache_get(c, "4", 1, 1));
    cache_get_stats(c, &st);
    ck_assert_uint_eq(st.evictions, 1);
    ck_assert_uint_le(st.bytes, 3 * 1200);
    ck_assert_int_eq(freed, 1);
    /* An entry bigger than the whole budget is not stored, and its value is released. */
    ck_assert_int_eq(cache_put(c, "big", 3, val("big"), 1 << 20, count_free, 0), 0);
    ck_assert_ptr_null(cache_get(c, "big", 3, 1));
    ck_assert_int_eq(freed, 2);
    cache_get_stats(c, &st);
    ck_assert_uint_eq(st.entries, 3);
    cache_clear(c);
    cache_get_stats(c, &st);
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_eq(st.bytes, 0);
    ck_assert_int_eq(freed, 5);
    cache_free(c);
}
END_TEST

START_TEST(many_entries)
{
    struct cache *c = cache_new(64 << 20, 100.0);
    char key[32];
    struct cache_stats st;

    freed = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        ck_assert_int_eq(cache_put(c, key, strlen(key), val(key), 16, count_free, 0), 0);
    }
    for (int i = 0; i < 5000; i += 7) {
        snprintf(key, sizeof key, "key-%d", i);
        ck_assert_str_eq(cache_get(c, key, strlen(key), 1), key);
    }
    cache_get_stats(c, &st);
    ck_assert_uint_eq(st.entries, 5000);
    cache_free(c);
    ck_assert_int_eq(freed, 5000);
}
END_TEST

Suite *cache_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("cache");

    tcase_add_test(tc, hit_miss);
    tcase_add_test(tc, ttl);
    tcase_add_test(tc, lru_eviction);
    tcase_add_test(tc, many_entries);
    suite_add_tcase(s, tc);
    return s;
}
