#ifndef SG_TOK_TABLE_H
#define SG_TOK_TABLE_H
/*
 * tok_table.h (internal to engine/tok/): the tokenizer's in-memory tables and the builder API
 * that the loaders (tok_load.h) fill, and the small inline helpers the builder and the encoder
 * share. It knows no loader: the loaders include it, never the other way round.
 *
 * A loader calls tok_new(), sets every piece with tok_set_piece(), then tok_index() (piece hash,
 * byte pieces), then adds merges (tok_add_merge) and added tokens (tok_add_added), and finally
 * tok_finish(), which builds the matchers and checks the whole.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sg_engine.h"
#include "sg_tok.h"
#include "utf8.h"

/* Per-id flags. */
enum {
    TOKF_SPECIAL = 1u << 0,    /* never produced from user text (special added, control, unk) */
    TOKF_ADDED = 1u << 1,      /* split out of the text before BPE (an added token) */
    TOKF_NORMALIZED = 1u << 2, /* added token matched in the normalized text, not the raw one */
    TOKF_BYTE = 1u << 3,       /* a byte-fallback piece <0xXX> */
    TOKF_UNUSED = 1u << 4,     /* SentencePiece UNUSED piece */
    TOKF_NOCHAR = 1u << 5,     /* never an initial character symbol (control, unknown, byte) */
    TOKF_SET = 1u << 7         /* the loader gave this id a piece */
};

/* One merge table entry: the pair (a, b) merges into `id` with priority `rank` (lower first). */
struct tok_merge {
    uint64_t key; /* ((uint64_t)a << 32 | b) + 1; 0 = empty slot */
    int32_t rank;
    int32_t id;
};

/* A piece hash slot: id -1 = empty; tag = high hash bits, checked before the piece. */
struct tok_hslot {
    uint32_t tag;
    int32_t id;
};

/* A byte trie over added tokens; node 0 is the root. */
struct tok_trie_node {
    int32_t child;   /* first child, -1 if none */
    int32_t sibling; /* next sibling, -1 if none */
    int32_t id;      /* token ending here, -1 if none */
    uint8_t byte;
};

struct tok_trie {
    struct tok_trie_node *nodes;
    size_t n, cap;
    int32_t root[256]; /* root's children by byte, -1 if none */
};

/* Normalizer and model options, set by the loader. */
struct tok_opts {
    int escape_spaces;      /* ' ' -> U+2581 (both HF Replace and SentencePiece escape) */
    int add_dummy_prefix;   /* SentencePiece: U+2581 before the text */
    int remove_extra_ws;    /* SentencePiece: strip and collapse spaces */
    int byte_fallback;      /* unknown characters -> <0xXX> pieces */
    int fuse_unk;           /* consecutive unknown characters -> one <unk> */
};

struct sg_tok {
    int32_t n_vocab;
    char *str;          /* every piece, NUL-terminated, back to back */
    size_t str_len, str_cap;
    uint32_t *off;      /* (n_vocab) piece offset in str */
    uint32_t *len;      /* (n_vocab) piece length */
    float *score;       /* (n_vocab) SentencePiece score (0 from tokenizer.json) */
    uint8_t *flags;     /* (n_vocab) TOKF_* */

    struct tok_hslot *hash; /* (hash_mask + 1) open addressing over the pieces */
    uint32_t hash_mask;
    int32_t ascii_id[128]; /* one-byte character pieces usable as symbols, -1 if none */

    struct tok_merge *merges; /* (merge_mask + 1) open addressing */
    uint32_t merge_mask;
    size_t n_merges;

    struct tok_trie raw_trie;  /* added tokens matched on the raw text */
    struct tok_trie norm_trie; /* added tokens matched on the normalized text */
    size_t n_added;

    int ws_split;         /* words may be split before U+2581 (no piece spans that point) */
    int32_t byte_id[256]; /* <0xXX> piece ids, -1 if absent */
    int32_t unk, bos, eos;
    struct tok_opts opts;
    char source[64];      /* "tokenizer.json", "tokenizer.model" or "gguf" */
};

/* Allocate an empty tokenizer of n_vocab ids; NULL on allocation failure. */
struct sg_tok *tok_new(int32_t n_vocab);
/* Set piece `id` (copied). Returns SG_OK, SG_EFORMAT (id out of range or already set, message
 * in err), or SG_ENOMEM. */
int tok_set_piece(struct sg_tok *t, int32_t id, const char *s, size_t n, float score,
                  unsigned flags, char *err, size_t errlen);
/* Build the piece index once every id is set: fails (SG_EFORMAT) on a missing id or a duplicate
 * piece. Fills byte_id from pieces spelled <0xXX>. */
int tok_index(struct sg_tok *t, char *err, size_t errlen);
/* The id of the piece spelled s[0..n), or -1. */
int32_t tok_lookup(const struct sg_tok *t, const char *s, size_t n);
/* Add the merge (a, b) -> id with `rank`; a later duplicate pair is ignored (first rank wins,
 * as in HF). SG_ENOMEM on failure. */
int tok_add_merge(struct sg_tok *t, int32_t a, int32_t b, int32_t rank, int32_t id);
/* Reserve room for n merges (speeds up loading). */
int tok_reserve_merges(struct sg_tok *t, size_t n);
/* Mark `id` as an added token (matched before BPE), special or not, on the raw or normalized
 * text. */
int tok_add_added(struct sg_tok *t, int32_t id, int special, int normalized);
/* Build the matchers and check the tables (bos/eos/unk ids in range). */
int tok_finish(struct sg_tok *t, char *err, size_t errlen);


/* ---- Shared by the builder and the encoder ---------------------------------------------- */

static inline uint64_t tok_hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;

    /* 8 bytes at a time (pieces are short; this runs once per character when encoding) */
    while (n >= 8) {
        uint64_t w;

        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;

        memcpy(&w, s, n);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    }
    h ^= h >> 29;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 32);
}

static inline uint64_t tok_mix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static inline int tok_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static inline const struct tok_merge *tok_merge_find(const struct sg_tok *t, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    uint32_t i;

    if (!t->merges)
        return NULL;
    i = (uint32_t)tok_mix64(key) & t->merge_mask;
    for (;;) {
        const struct tok_merge *m = &t->merges[i];

        if (m->key == key)
            return m;
        if (!m->key)
            return NULL;
        i = (i + 1) & t->merge_mask;
    }
}

#endif /* SG_TOK_TABLE_H */
