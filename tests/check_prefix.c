/*
 * check_prefix.c: the prefix cache. The radix tree (insert, match, evict) against a naive model
 * over random sequences with forced evictions; the LRU order; then the cache on the tiny-a
 * model: prefixes loaded from it give bit-identical logits, the byte bound holds exactly, and
 * moderation with a small shared cache equals moderation without one (bit for bit at f32) for
 * random orders of 50 streaming checks over 6 conversations, text that diverges inside a token
 * of the cached prefix included.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/engine_fixtures.h"
#include "radix.h"
#include "sg_engine.h"
#include "sg_moderate.h"
#include "sg_tok.h"

Suite *prefix_suite(void);

/* ---- The radix tree against a naive model ---------------------------------------------------- */

#define BT 4          /* tokens per block: small, so that sequences span many blocks */
#define MAX_SEQ 40
#define N_SEQ 400

/* What a row slot holds in the test: the identity of the prefix it was computed for. */
typedef struct model {
    uint64_t *slot;            /* [n_blocks][BT] */
    const int32_t *cur;        /* the sequence being inserted */
    int32_t seqs[N_SEQ][MAX_SEQ];
    size_t lens[N_SEQ];
    size_t n_seqs;
} model;

/* An identity of ids[0..p] (inclusive): FNV-1a over the ids. */
static uint64_t prefix_id(const int32_t *ids, size_t p)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i <= p; i++)
        h = (h ^ (uint64_t)(uint32_t)ids[i]) * 1099511628211ull;
    return h;
}

static void t_fill(void *ud, uint32_t b, size_t off, size_t pos, size_t n)
{
    model *m = ud;

    ck_assert_uint_le(off + n, BT);
    for (size_t i = 0; i < n; i++)
        m->slot[b * BT + off + i] = prefix_id(m->cur, pos + i);
}

static void t_move(void *ud, uint32_t dst, size_t dst_off, uint32_t src, size_t src_off,
                   size_t n)
{
    model *m = ud;

    ck_assert_uint_le(dst_off + n, BT);
    ck_assert_uint_le(src_off + n, BT);
    memmove(&m->slot[dst * BT + dst_off], &m->slot[src * BT + src_off], n * sizeof(uint64_t));
}

/* The naive answer: the longest common prefix of q with any sequence inserted so far. */
static size_t naive_match(const model *m, const int32_t *q, size_t n)
{
    size_t best = 0;

    for (size_t s = 0; s < m->n_seqs; s++) {
        size_t k = 0;

        while (k < n && k < m->lens[s] && m->seqs[s][k] == q[k])
            k++;
        best = k > best ? k : best;
    }
    return best;
}

/* Match q; every span's slots must hold exactly q's prefixes; returns the length. */
static size_t checked_match(sg_radix *r, const model *m, const int32_t *q, size_t n)
{
    sg_radix_span spans[64];
    size_t n_spans;
    size_t got = sg_radix_match(r, q, n, spans, &n_spans);
    size_t p = 0;

    ck_assert_uint_le(n_spans, 64);
    for (size_t s = 0; s < n_spans; s++)
        for (size_t i = 0; i < spans[s].n; i++, p++)
            ck_assert_msg(m->slot[spans[s].block * BT + spans[s].off + i] == prefix_id(q, p),
                          "position %zu: the slot holds another prefix's row", p);
    ck_assert_uint_eq(p, got);
    return got;
}

static void random_seq(unsigned *seed, const model *m, int32_t *q, size_t *n)
{
    /* Mostly a prefix of an earlier sequence, extended or changed: lots of shared prefixes,
     * splits inside blocks and extensions in place. Alphabet of 3 so siblings are common. */
    size_t len = 1 + (size_t)rand_r(seed) % MAX_SEQ;
    size_t from = 0;

    if (m->n_seqs > 0 && rand_r(seed) % 4 != 0) {
        size_t s = (size_t)rand_r(seed) % m->n_seqs;

        from = (size_t)rand_r(seed) % (m->lens[s] + 1);
        memcpy(q, m->seqs[s], from * sizeof *q);
    }
    for (size_t i = from; i < len; i++)
        q[i] = rand_r(seed) % 3;
    *n = len > from ? len : from;
    if (*n == 0)
        *n = 1, q[0] = 0;
}

static void radix_property(size_t n_blocks, unsigned seed)
{
    sg_radix *r = NULL;
    model m;
    const sg_radix_ops ops = {&m, t_fill, t_move};
    uint64_t evicted = 0;
    char msg[256];

    memset(&m, 0, sizeof m);
    m.slot = calloc(n_blocks * BT, sizeof *m.slot);
    ck_assert_ptr_nonnull(m.slot);
    ck_assert_int_eq(sg_radix_new(&r, n_blocks, BT), 0);
    for (size_t it = 0; it < N_SEQ; it++) {
        int32_t q[MAX_SEQ];
        size_t n, got, held;

        random_seq(&seed, &m, q, &n);
        /* Match: never more than the naive model; exactly it while nothing was evicted. */
        got = checked_match(r, &m, q, n);
        ck_assert_uint_le(got, naive_match(&m, q, n));
        if (evicted == 0)
            ck_assert_uint_eq(got, naive_match(&m, q, n));
        ck_assert_int_eq(sg_radix_check(r, msg, sizeof msg), 0);
        /* Insert: it holds all of q when q fits, and a match then finds what it holds. */
        m.cur = q;
        held = sg_radix_insert(r, q, n, &ops, &evicted);
        ck_assert_msg(sg_radix_check(r, msg, sizeof msg) == 0, "after insert %zu: %s", it, msg);
        if (n <= n_blocks) /* one token per block at worst */
            ck_assert_uint_eq(held, n);
        ck_assert_uint_ge(checked_match(r, &m, q, n), held);
        ck_assert_uint_le(sg_radix_blocks_used(r), n_blocks);
        memcpy(m.seqs[m.n_seqs], q, n * sizeof *q);
        m.lens[m.n_seqs++] = n;
    }
    if (n_blocks < 1000)
        ck_assert_uint_gt(evicted, 0); /* the small trees really evicted */
    else
        ck_assert_uint_eq(evicted, 0);
    sg_radix_free(r);
    free(m.slot);
}

START_TEST(radix_against_naive)
{
    /* 20000 blocks never fill (400 sequences of <= 40 tokens from 3 symbols); 40 and 12
     * blocks evict constantly (12 are fewer than one long sequence needs). */
    radix_property(20000, 1);
    radix_property(40, 2);
    radix_property(12, 3);
    radix_property(12, 4);
}
END_TEST

START_TEST(radix_lru_order)
{
    sg_radix *r = NULL;
    model m;
    const sg_radix_ops ops = {&m, t_fill, t_move};
    const int32_t a[BT] = {1, 1, 1, 1}, b[BT] = {2, 2, 2, 2}, c[BT] = {3, 3, 3, 3};
    sg_radix_span sp[4];
    size_t ns;
    uint64_t ev = 0;

    memset(&m, 0, sizeof m);
    m.slot = calloc(2 * BT, sizeof *m.slot);
    ck_assert_int_eq(sg_radix_new(&r, 2, BT), 0);
    m.cur = a;
    ck_assert_uint_eq(sg_radix_insert(r, a, BT, &ops, &ev), BT);
    m.cur = b;
    ck_assert_uint_eq(sg_radix_insert(r, b, BT, &ops, &ev), BT);
    /* a used again: b is now the least recently used and goes for c. */
    ck_assert_uint_eq(sg_radix_match(r, a, BT, sp, &ns), BT);
    m.cur = c;
    ck_assert_uint_eq(sg_radix_insert(r, c, BT, &ops, &ev), BT);
    ck_assert_uint_eq(ev, 1);
    ck_assert_uint_eq(sg_radix_match(r, b, BT, sp, &ns), 0);
    ck_assert_uint_eq(sg_radix_match(r, a, BT, sp, &ns), BT);
    ck_assert_uint_eq(sg_radix_match(r, c, BT, sp, &ns), BT);
    /* A sequence longer than the whole tree keeps what fits of itself, never its own path. */
    {
        const int32_t longer[3 * BT] = {5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7};

        m.cur = longer;
        ck_assert_uint_eq(sg_radix_insert(r, longer, 3 * BT, &ops, &ev), 2 * BT);
        ck_assert_uint_eq(sg_radix_match(r, longer, 3 * BT, sp, &ns), 2 * BT);
    }
    ck_assert_int_eq(sg_radix_new(&(sg_radix *){NULL}, 0, BT), -1);
    sg_radix_free(r);
    free(m.slot);
}
END_TEST

/* ---- The cache on a model ---------------------------------------------------------------------- */

static sg_model *open_tiny(void)
{
    char path[1024], err[512] = "";
    sg_model_opts mo = sg_model_opts_default();
    sg_model *m = NULL;

    mo.n_threads = 2;
    mo.precision = SG_PREC_F32;
    snprintf(path, sizeof path, "%s/tests/fixtures/tiny-a/hf_f32", fx_top());
    ck_assert_msg(sg_model_open(&m, path, &mo, err, sizeof err) == SG_OK, "%s", err);
    return m;
}

static sg_ctx *new_ctx(sg_model *m)
{
    sg_ctx *c = NULL;
    sg_ctx_opts co = sg_ctx_opts_default();
    char err[256] = "";

    co.n_ctx = 512;
    ck_assert_msg(sg_ctx_new(&c, m, &co, err, sizeof err) == SG_OK, "%s", err);
    return c;
}

/* All logits after appending ids[0..n) in a fresh context (the reference). */
static void fresh_logits(sg_model *m, const int32_t *ids, size_t n, float *z)
{
    sg_ctx *c = new_ctx(m);
    sg_logits_req rq = {NULL, 0, 0, z};

    ck_assert_int_eq(sg_ctx_append(c, ids, n, &rq), SG_OK);
    sg_ctx_free(c);
}

START_TEST(loaded_rows_are_exact)
{
    sg_model *m = open_tiny();
    const int nv = sg_model_get_info(m)->n_vocab;
    sg_prefix_cache *pc = NULL;
    sg_prefix_cache_stats st;
    char err[256];
    sg_ctx *c1, *c2;
    int32_t ids[100];
    float *z = malloc(2 * (size_t)nv * sizeof *z);
    size_t reused;

    for (int i = 0; i < 100; i++)
        ids[i] = (i * 37 + 11) % nv;
    ck_assert_int_eq(sg_prefix_cache_new(&pc, m, -1, sg_prefix_cache_default_bytes(m), err,
                                         sizeof err), SG_OK);
    c1 = new_ctx(m);
    c2 = new_ctx(m);
    /* c1 computes 70 tokens into the cache; c2 loads 45 of them (the middle of a block) and
     * branches there: the logits equal a fresh pass bit for bit. */
    ck_assert_int_eq(sg_ctx_sync_prefix(c1, pc, ids, 70, &reused), SG_OK);
    ck_assert_uint_eq(reused, 0);
    ck_assert_uint_eq(sg_ctx_computed_tokens(c1), 70);
    ck_assert_int_eq(sg_ctx_sync_prefix(c2, pc, ids, 45, &reused), SG_OK);
    ck_assert_uint_eq(reused, 45);
    ck_assert_uint_eq(sg_ctx_computed_tokens(c2), 0);
    {
        const int32_t *br[1] = {ids + 45};
        size_t bn[1] = {30};
        sg_logits_req rq = {NULL, 0, 0, z};

        ck_assert_int_eq(sg_ctx_branches(c2, br, bn, 1, &rq), SG_OK);
        fresh_logits(m, ids, 75, z + nv);
        ck_assert_int_eq(memcmp(z, z + nv, (size_t)nv * sizeof *z), 0);
    }
    /* Diverging at 60 (inside a block): 60 loaded, the rest computed, exact. */
    ids[60] = (ids[60] + 1) % nv;
    ck_assert_uint_eq(sg_ctx_computed_tokens(c2), 30); /* the branch */
    ck_assert_int_eq(sg_ctx_sync_prefix(c2, pc, ids, 90, &reused), SG_OK);
    ck_assert_uint_eq(reused, 60);
    ck_assert_uint_eq(sg_ctx_computed_tokens(c2), 30 + 30);
    {
        sg_logits_req rq = {NULL, 0, 0, z};

        ck_assert_int_eq(sg_ctx_append(c2, ids + 90, 10, &rq), SG_OK);
        fresh_logits(m, ids, 100, z + nv);
        ck_assert_int_eq(memcmp(z, z + nv, (size_t)nv * sizeof *z), 0);
    }
    sg_prefix_cache_get_stats(pc, &st);
    ck_assert_uint_eq(st.hits, 2);
    ck_assert_uint_eq(st.misses, 1);
    ck_assert_uint_eq(st.cached_tokens, 45 + 15); /* loaded beyond what c2 held */
    ck_assert_uint_eq(st.tokens, 70 + 30);
    ck_assert_uint_le(st.bytes, st.capacity_bytes);
    sg_ctx_free(c1);
    sg_ctx_free(c2);
    sg_prefix_cache_free(pc);
    free(z);
    sg_model_close(m);
}
END_TEST

START_TEST(byte_bound_and_errors)
{
    sg_model *m = open_tiny();
    sg_prefix_cache *pc = NULL, *other = NULL;
    sg_prefix_cache_stats st;
    char err[256] = "";
    sg_ctx *c = new_ctx(m);
    int32_t ids[200];
    size_t bb;

    /* Too small for one block: refused, saying how big a block is. */
    ck_assert_int_eq(sg_prefix_cache_new(&pc, m, -1, 100, err, sizeof err), SG_EINVAL);
    ck_assert_ptr_null(pc);
    ck_assert_ptr_nonnull(strstr(err, "hold no block"));
    ck_assert_int_eq(sg_prefix_cache_new(&pc, m, 7, 1 << 20, err, sizeof err), SG_EINVAL);
    /* A bound of 5.5 blocks: 5 blocks, and never more, however much is stored. */
    ck_assert_int_eq(sg_prefix_cache_new(&pc, m, -1, sg_prefix_cache_default_bytes(m), err,
                                         sizeof err), SG_OK);
    sg_prefix_cache_get_stats(pc, &st);
    bb = st.block_bytes;
    sg_prefix_cache_free(pc);
    ck_assert_int_eq(sg_prefix_cache_new(&pc, m, -1, bb * 5 + bb / 2, err, sizeof err), SG_OK);
    sg_prefix_cache_get_stats(pc, &st);
    ck_assert_uint_eq(st.capacity_bytes, 5 * bb);
    ck_assert_uint_eq(st.bytes, 0);
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 200; i++)
            ids[i] = (i * 13 + round * 101) % sg_model_get_info(m)->n_vocab;
        ck_assert_int_eq(sg_ctx_sync_prefix(c, pc, ids, 40 + 20 * (size_t)round, NULL), SG_OK);
        sg_prefix_cache_get_stats(pc, &st);
        ck_assert_uint_le(st.bytes, 5 * bb);
        ck_assert_uint_eq(st.bytes % bb, 0);
    }
    ck_assert_uint_eq(st.bytes, 5 * bb); /* full */
    ck_assert_uint_gt(st.evictions, 0);
    ck_assert_uint_le(st.tokens, 5 * SG_PREFIX_BLOCK_TOKENS);
    /* A cache of another precision: refused by name, the trunk untouched. */
    ck_assert_int_eq(sg_prefix_cache_new(&other, m, SG_PREC_BF16, bb * 4, err, sizeof err),
                     SG_OK);
    ck_assert_int_eq(sg_ctx_sync_prefix(c, other, ids, 10, NULL), SG_EINVAL);
    ck_assert_ptr_nonnull(strstr(sg_ctx_errmsg(c), "another model or precision"));
    /* An id outside the vocabulary: the engine's error; nothing stored. */
    ids[5] = 1 << 30;
    sg_prefix_cache_get_stats(pc, &st);
    {
        size_t tokens = st.tokens;

        ck_assert_int_eq(sg_ctx_sync_prefix(c, pc, ids, 10, NULL), SG_EINVAL);
        sg_prefix_cache_get_stats(pc, &st);
        ck_assert_uint_eq(st.tokens, tokens);
    }
    sg_prefix_cache_free(other);
    sg_prefix_cache_free(pc);
    sg_ctx_free(c);
    sg_model_close(m);
}
END_TEST

/* ---- Moderation with and without the cache --------------------------------------------------- */

/* A policy directory with tiny-a's answer pieces ("Y", "N") in the shipped template. */
static sg_policy_set *tiny_policies(char *dir, size_t cap)
{
    char path[1024], err[512] = "";
    sg_policy_set *set = NULL;
    DIR *d;
    struct dirent *e;

    fx_tmpdir(dir, cap);
    snprintf(path, sizeof path, "%s/policies", fx_top());
    d = opendir(path);
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        char src[1024];
        char *text, *p;

        if (e->d_name[0] == '.' || !strstr(e->d_name, ".yaml"))
            continue;
        snprintf(src, sizeof src, "policies/%s", e->d_name);
        text = fx_slurp(src, NULL);
        /* answer_yes: "Yes" -> "Y", answer_no: "No" -> "N" (drop the letters after) */
        if ((p = strstr(text, "answer_yes: \"Yes\"")) != NULL)
            memmove(p + 14, p + 16, strlen(p + 16) + 1);
        if ((p = strstr(text, "answer_no: \"No\"")) != NULL)
            memmove(p + 12 + 1, p + 12 + 2, strlen(p + 12 + 2) + 1);
        fx_put(dir, e->d_name, text);
        free(text);
    }
    closedir(d);
    ck_assert_msg(sg_policy_set_load(&set, dir, err, sizeof err) == SG_POLICY_OK, "%s", err);
    return set;
}

#define N_CONV 6
#define N_REQ 50

static const char *const user_msgs[N_CONV] = {
    "How do I bake bread at home?", "Tell me about the history of Rome.",
    "Write a poem about the sea.", "What is the capital of Australia?",
    "Explain quantum computing simply.", "Give me a recipe for pancakes.",
};
static const char reply_words[] =
    "Sure, here is what you asked for. First take the flour and mix it with water, then "
    "knead the dough until it is smooth and elastic; let it rest for an hour while the oven "
    "heats. The ancient city grew from a small settlement into an empire that ruled the whole "
    "Mediterranean sea, and its roads, laws and language shaped the world for centuries after.";

START_TEST(moderation_with_cache_equals_without)
{
    sg_model *m = open_tiny();
    char dir[256];
    sg_policy_set *set = tiny_policies(dir, sizeof dir);
    sg_prefix_cache *pc = NULL;
    sg_prefix_cache_stats st;
    sg_moderate_opts o = sg_moderate_opts_default();
    sg_moderator *cached[2], *plain;
    char err[512];
    size_t reply_len[N_CONV] = {0};
    unsigned seed = 20261204;
    size_t computed_cached = 0, computed_plain = 0, mid_token = 0, bb;

    /* A cache of 120 blocks (1920 tokens), too small for 6 conversations' prefixes: in a run
     * 36 of 50 lookups hit and 74 blocks are evicted. Two moderators share it (as two workers
     * would), so prefixes computed by one are loaded by the other. */
    ck_assert_int_eq(sg_prefix_cache_new(&pc, m, -1, sg_prefix_cache_default_bytes(m), err,
                                         sizeof err), SG_OK);
    sg_prefix_cache_get_stats(pc, &st);
    bb = st.block_bytes;
    sg_prefix_cache_free(pc);
    ck_assert_int_eq(sg_prefix_cache_new(&pc, m, -1, 120 * bb, err, sizeof err), SG_OK);
    o.prefix_cache = pc;
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(sg_moderator_new(&cached[i], m, &o, err, sizeof err), SG_OK);
    o.prefix_cache = NULL;
    for (int r = 0; r < N_REQ; r++) {
        const int conv = rand_r(&seed) % N_CONV;
        sg_moderate_req rq = {0};
        sg_moderate_result a, b;

        /* The reply so far grows by 5-40 bytes; now and then it ends inside a word, so the
         * next check's text merges tokens across the old end. */
        reply_len[conv] += 5 + (size_t)rand_r(&seed) % 36;
        if (reply_len[conv] > sizeof reply_words - 1)
            reply_len[conv] = sizeof reply_words - 1;
        if (reply_words[reply_len[conv] - 1] != ' ')
            mid_token++;
        rq.text = user_msgs[conv];
        rq.response = reply_words;
        rq.response_len = reply_len[conv];
        ck_assert_int_eq(sg_moderate(cached[r % 2], set, &rq, &a), SG_OK);
        /* The reference: a fresh moderator, nothing reused. */
        ck_assert_int_eq(sg_moderator_new(&plain, m, &o, err, sizeof err), SG_OK);
        ck_assert_int_eq(sg_moderate(plain, set, &rq, &b), SG_OK);
        ck_assert_uint_eq(a.n_scores, b.n_scores);
        for (size_t i = 0; i < a.n_scores; i++)
            ck_assert_msg(a.scores[i].probability == b.scores[i].probability,
                          "request %d (conversation %d) policy %s: %.17g with the cache, %.17g "
                          "without", r, conv, a.scores[i].policy->name, a.scores[i].probability,
                          b.scores[i].probability);
        ck_assert_uint_eq(a.prompt_tokens, b.prompt_tokens);
        ck_assert_uint_eq(b.cached_tokens, 0);
        computed_cached += a.computed_tokens;
        computed_plain += b.computed_tokens;
        sg_moderate_result_free(&a);
        sg_moderate_result_free(&b);
        sg_moderator_free(plain);
        sg_prefix_cache_get_stats(pc, &st);
        ck_assert_uint_le(st.bytes, 120 * bb);
    }
    ck_assert_uint_gt(mid_token, 5);
    ck_assert_uint_gt(st.evictions, 0);
    ck_assert_uint_gt(st.hits, 0);
    ck_assert_uint_gt(st.cached_tokens, 0);
    ck_assert_uint_lt(computed_cached, computed_plain);
    for (int i = 0; i < 2; i++)
        sg_moderator_free(cached[i]);
    sg_prefix_cache_free(pc);
    sg_policy_set_free(set);
    fx_rmdir(dir);
    sg_model_close(m);
}
END_TEST

Suite *prefix_suite(void)
{
    Suite *s = suite_create("prefix");
    TCase *tc = tcase_create("prefix");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, radix_against_naive);
    tcase_add_test(tc, radix_lru_order);
    tcase_add_test(tc, loaded_rows_are_exact);
    tcase_add_test(tc, byte_bound_and_errors);
    tcase_add_test(tc, moderation_with_cache_equals_without);
    suite_add_tcase(s, tc);
    return s;
}
