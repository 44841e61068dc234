/*
 * tok_table.c: the tokenizer's tables: the builder the loaders fill (tok_table.h), the
 * accessors of sg_tok.h and sg_tok_free. Encoding is in tok_encode.c, the choice of loader in
 * tok_open.c. Behaviour is documented in docs/TOKENIZER.md.
 */
#include "tok_table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sg_engine.h"

/* ---- Small helpers ------------------------------------------------------------------------ */

/* ---- Construction ------------------------------------------------------------------------- */

static int trie_init(struct tok_trie *tr)
{
    tr->cap = 64;
    tr->nodes = malloc(tr->cap * sizeof *tr->nodes);
    if (!tr->nodes)
        return SG_ENOMEM;
    tr->n = 1;
    tr->nodes[0].child = -1;
    tr->nodes[0].sibling = -1;
    tr->nodes[0].id = -1;
    tr->nodes[0].byte = 0;
    for (int i = 0; i < 256; i++)
        tr->root[i] = -1;
    return SG_OK;
}

struct sg_tok *tok_new(int32_t n_vocab)
{
    struct sg_tok *t;

    if (n_vocab <= 0 || n_vocab > (1 << 24))
        return NULL;
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->n_vocab = n_vocab;
    t->off = calloc((size_t)n_vocab, sizeof *t->off);
    t->len = calloc((size_t)n_vocab, sizeof *t->len);
    t->score = calloc((size_t)n_vocab, sizeof *t->score);
    t->flags = calloc((size_t)n_vocab, sizeof *t->flags);
    t->str_cap = (size_t)n_vocab * 8 + 64;
    t->str = malloc(t->str_cap);
    if (!t->off || !t->len || !t->score || !t->flags || !t->str)
        goto fail;
    if (trie_init(&t->raw_trie) != SG_OK || trie_init(&t->norm_trie) != SG_OK)
        goto fail;
    t->unk = t->bos = t->eos = -1;
    for (int i = 0; i < 256; i++)
        t->byte_id[i] = -1;
    for (int i = 0; i < 128; i++)
        t->ascii_id[i] = -1;
    t->opts.escape_spaces = 1;
    t->opts.byte_fallback = 1;
    t->opts.fuse_unk = 1;
    return t;
fail:
    sg_tok_free(t);
    return NULL;
}

void sg_tok_free(sg_tok *t)
{
    if (!t)
        return;
    free(t->str);
    free(t->off);
    free(t->len);
    free(t->score);
    free(t->flags);
    free(t->hash);
    free(t->merges);
    free(t->raw_trie.nodes);
    free(t->norm_trie.nodes);
    free(t);
}

int tok_set_piece(struct sg_tok *t, int32_t id, const char *s, size_t n, float score,
                  unsigned flags, char *err, size_t errlen)
{
    if (id < 0 || id >= t->n_vocab)
        return sg_errf(err, errlen, SG_EFORMAT, NULL,
                       "token id %ld outside the vocabulary (0..%ld)", (long)id,
                       (long)t->n_vocab - 1);
    if (t->flags[id] & TOKF_SET)
        return sg_errf(err, errlen, SG_EFORMAT, NULL, "token id %ld given twice", (long)id);
    if (n > 65536)
        return sg_errf(err, errlen, SG_EFORMAT, NULL, "token %ld: piece longer than 64 KiB",
                       (long)id);
    if (t->str_len + n + 1 > t->str_cap) {
        size_t cap = t->str_cap * 2 + n + 1;
        char *p;

        if (cap > UINT32_MAX)
            return sg_errf(err, errlen, SG_ERANGE, NULL, "pieces exceed 4 GiB");
        p = realloc(t->str, cap);
        if (!p)
            return sg_errf(err, errlen, SG_ENOMEM, NULL, "out of memory");
        t->str = p;
        t->str_cap = cap;
    }
    memcpy(t->str + t->str_len, s, n);
    t->str[t->str_len + n] = '\0';
    t->off[id] = (uint32_t)t->str_len;
    t->len[id] = (uint32_t)n;
    t->str_len += n + 1;
    t->score[id] = score;
    t->flags[id] = (uint8_t)(flags | TOKF_SET);
    return SG_OK;
}

int32_t tok_lookup(const struct sg_tok *t, const char *s, size_t n)
{
    uint64_t h;
    uint32_t i, tag;

    if (!t->hash)
        return -1;
    h = tok_hash_bytes(s, n);
    tag = (uint32_t)(h >> 32);
    i = (uint32_t)h & t->hash_mask;
    for (;;) {
        const struct tok_hslot *e = &t->hash[i];

        if (e->id < 0)
            return -1;
        /* the tag spares a look at the piece itself for nearly every non-match */
        if (e->tag == tag && t->len[e->id] == n && memcmp(t->str + t->off[e->id], s, n) == 0)
            return e->id;
        i = (i + 1) & t->hash_mask;
    }
}

int tok_index(struct sg_tok *t, char *err, size_t errlen)
{
    size_t cap = 1024;

    while (cap < (size_t)t->n_vocab * 2)
        cap *= 2;
    free(t->hash);
    t->hash = malloc(cap * sizeof *t->hash);
    if (!t->hash)
        return sg_errf(err, errlen, SG_ENOMEM, NULL, "out of memory");
    t->hash_mask = (uint32_t)(cap - 1);
    memset(t->hash, 0xff, cap * sizeof *t->hash);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = t->str + t->off[id];
        size_t n = t->len[id];
        uint64_t h;
        uint32_t i;

        if (!(t->flags[id] & TOKF_SET))
            return sg_errf(err, errlen, SG_EFORMAT, NULL, "token id %ld has no piece", (long)id);
        h = tok_hash_bytes(s, n);
        i = (uint32_t)h & t->hash_mask;
        while (t->hash[i].id >= 0) {
            int32_t o = t->hash[i].id;

            if (t->hash[i].tag == (uint32_t)(h >> 32) && t->len[o] == n &&
                memcmp(t->str + t->off[o], s, n) == 0)
                return sg_errf(err, errlen, SG_EFORMAT, NULL, "tokens %ld and %ld are both '%.*s'",
                               (long)o, (long)id, (int)(n > 64 ? 64 : n), s);
            i = (i + 1) & t->hash_mask;
        }
        t->hash[i].id = id;
        t->hash[i].tag = (uint32_t)(h >> 32);
        if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>' &&
            tok_hexval(s[3]) >= 0 && tok_hexval(s[4]) >= 0) {
            int b = tok_hexval(s[3]) * 16 + tok_hexval(s[4]);

            if (t->byte_id[b] < 0)
                t->byte_id[b] = id;
            t->flags[id] |= TOKF_BYTE;
        }
    }
    return SG_OK;
}

static int merges_grow(struct sg_tok *t, size_t want)
{
    size_t cap = 1024;
    struct tok_merge *m, *old = t->merges;
    size_t oldcap = old ? (size_t)t->merge_mask + 1 : 0;

    /* load factor at most 0.6: a 580604-merge table gets 2^20 slots (16 MiB) */
    while (cap * 3 < want * 5)
        cap *= 2;
    if (cap <= oldcap)
        return SG_OK;
    m = calloc(cap, sizeof *m);
    if (!m)
        return SG_ENOMEM;
    for (size_t i = 0; i < oldcap; i++) {
        uint32_t j;

        if (!old[i].key)
            continue;
        j = (uint32_t)tok_mix64(old[i].key) & (uint32_t)(cap - 1);
        while (m[j].key)
            j = (j + 1) & (uint32_t)(cap - 1);
        m[j] = old[i];
    }
    free(old);
    t->merges = m;
    t->merge_mask = (uint32_t)(cap - 1);
    return SG_OK;
}

int tok_reserve_merges(struct sg_tok *t, size_t n)
{
    return merges_grow(t, n);
}

int tok_add_merge(struct sg_tok *t, int32_t a, int32_t b, int32_t rank, int32_t id)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    uint32_t i;

    if (!t->merges || (t->n_merges + 1) * 5 > ((size_t)t->merge_mask + 1) * 3) {
        if (merges_grow(t, (t->n_merges + 1) * 2) != SG_OK)
            return SG_ENOMEM;
    }
    i = (uint32_t)tok_mix64(key) & t->merge_mask;
    while (t->merges[i].key) {
        if (t->merges[i].key == key)
            return SG_OK;
        i = (i + 1) & t->merge_mask;
    }
    t->merges[i].key = key;
    t->merges[i].rank = rank;
    t->merges[i].id = id;
    t->n_merges++;
    return SG_OK;
}

static int trie_insert(struct tok_trie *tr, const char *s, size_t n, int32_t id)
{
    int32_t node = 0;

    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t c = i == 0 ? tr->root[b] : tr->nodes[node].child;

        if (i > 0) {
            while (c >= 0 && tr->nodes[c].byte != b)
                c = tr->nodes[c].sibling;
        }
        if (c < 0) {
            if (tr->n == tr->cap) {
                size_t cap = tr->cap * 2;
                struct tok_trie_node *p = realloc(tr->nodes, cap * sizeof *p);

                if (!p)
                    return SG_ENOMEM;
                tr->nodes = p;
                tr->cap = cap;
            }
            c = (int32_t)tr->n++;
            tr->nodes[c].child = -1;
            tr->nodes[c].id = -1;
            tr->nodes[c].byte = b;
            if (i == 0) {
                tr->nodes[c].sibling = -1;
                tr->root[b] = c;
            } else {
                tr->nodes[c].sibling = tr->nodes[node].child;
                tr->nodes[node].child = c;
            }
        }
        node = c;
    }
    /* The first added token with a given content wins, as in HF's AddedVocabulary. */
    if (tr->nodes[node].id < 0)
        tr->nodes[node].id = id;
    return SG_OK;
}

int tok_add_added(struct sg_tok *t, int32_t id, int special, int normalized)
{
    if (id < 0 || id >= t->n_vocab || t->len[id] == 0)
        return SG_EINVAL;
    t->flags[id] |= TOKF_ADDED;
    if (special)
        t->flags[id] |= TOKF_SPECIAL;
    if (normalized)
        t->flags[id] |= TOKF_NORMALIZED;
    return SG_OK;
}

int tok_finish(struct sg_tok *t, char *err, size_t errlen)
{
    if (!t->hash)
        return sg_errf(err, errlen, SG_EINVAL, NULL, "tokenizer not indexed");
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = t->str + t->off[id];
        size_t n = t->len[id];
        int rc;

        if (!(t->flags[id] & TOKF_ADDED))
            continue;
        if (t->flags[id] & TOKF_NORMALIZED) {
            /* HF matches a normalized added token by its normalized content: spaces become
             * U+2581 there, so insert that spelling. */
            char tmp[3 * 256];
            size_t m = 0;

            if (n > 256)
                return sg_errf(err, errlen, SG_EFORMAT, NULL, "added token %ld is too long",
                               (long)id);
            for (size_t i = 0; i < n; i++) {
                if (s[i] == ' ' && t->opts.escape_spaces) {
                    memcpy(tmp + m, "\xe2\x96\x81", 3);
                    m += 3;
                } else {
                    tmp[m++] = s[i];
                }
            }
            rc = trie_insert(&t->norm_trie, tmp, m, id);
        } else {
            rc = trie_insert(&t->raw_trie, s, n, id);
        }
        if (rc != SG_OK)
            return sg_errf(err, errlen, rc, NULL, "out of memory");
        t->n_added++;
    }
    if (t->unk >= t->n_vocab || t->bos >= t->n_vocab || t->eos >= t->n_vocab)
        return sg_errf(err, errlen, SG_EFORMAT, NULL, "special token id outside the vocabulary");
    if (t->unk >= 0)
        t->flags[t->unk] |= TOKF_SPECIAL | TOKF_NOCHAR;
    if (t->bos >= 0)
        t->flags[t->bos] |= TOKF_SPECIAL | TOKF_NOCHAR;
    if (t->eos >= 0)
        t->flags[t->eos] |= TOKF_SPECIAL | TOKF_NOCHAR;
    /* Can a piece hold U+2581 after another character? (see bpe_text) */
    t->ws_split = t->opts.escape_spaces;
    for (int32_t id = 0; id < t->n_vocab && t->ws_split; id++) {
        const char *s = t->str + t->off[id];
        size_t n = t->len[id];

        for (size_t i = 1; i + 3 <= n; i++) {
            if (memcmp(s + i, "\xe2\x96\x81", 3) == 0 &&
                (i < 3 || memcmp(s + i - 3, "\xe2\x96\x81", 3) != 0)) {
                t->ws_split = 0;
                break;
            }
        }
    }
    for (int c = 0; c < 128; c++) {
        char s[1] = {(char)c};
        int32_t id = tok_lookup(t, s, 1);

        t->ascii_id[c] = (id >= 0 && !(t->flags[id] & TOKF_NOCHAR)) ? id : -1;
    }
    return SG_OK;
}

/* ---- Accessors ---------------------------------------------------------------------------- */

size_t sg_tok_n_vocab(const sg_tok *t)
{
    return t ? (size_t)t->n_vocab : 0;
}

int32_t sg_tok_bos(const sg_tok *t)
{
    return t ? t->bos : -1;
}

int32_t sg_tok_eos(const sg_tok *t)
{
    return t ? t->eos : -1;
}

int32_t sg_tok_piece_id(const sg_tok *t, const char *piece)
{
    if (!t || !piece)
        return -1;
    return tok_lookup(t, piece, strlen(piece));
}

const char *sg_tok_piece(const sg_tok *t, int32_t id)
{
    if (!t || id < 0 || id >= t->n_vocab)
        return NULL;
    return t->str + t->off[id];
}

int sg_tok_is_special(const sg_tok *t, int32_t id)
{
    if (!t || id < 0 || id >= t->n_vocab)
        return 0;
    return (t->flags[id] & TOKF_SPECIAL) != 0;
}
