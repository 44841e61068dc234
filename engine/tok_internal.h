#ifndef SG_TOK_INTERNAL_H
#define SG_TOK_INTERNAL_H
/*
 * tok_internal.h: the tokenizer's in-memory tables and the builder API that the three loaders
 * (tok_json.c, tok_spm.c, tok_gguf.c) fill. Not a public header: only engine/tok*.c and the
 * tokenizer's tests include it.
 *
 * A loader calls tok_new(), sets every piece with tok_set_piece(), then tok_index() (piece hash,
 * byte pieces), then adds merges (tok_add_merge) and added tokens (tok_add_added), and finally
 * tok_finish(), which builds the matchers and checks the whole.
 */

#include <stddef.h>
#include <stdint.h>

#include "sg_tok.h"

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
    size_t max_piece_len; /* bytes one token of BPE output can cover at most (>= 4: <unk>) */
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

/* SentencePiece piece types (sentencepiece_model.proto; GGUF token_type uses the same). */
enum { SPT_NORMAL = 1, SPT_UNKNOWN = 2, SPT_CONTROL = 3, SPT_USER = 4, SPT_UNUSED = 5, SPT_BYTE = 6 };

struct tok_spm_piece {
    const char *s;
    size_t n;
    float score;
    int type;
};

struct tok_spm_opts {
    int byte_fallback, add_dummy_prefix, remove_extra_ws, escape_ws;
    int64_t unk_id, bos_id, eos_id;
    int turn_markers_special; /* without a config: <start_of_turn>/<end_of_turn> are special */
};

/* Build a tokenizer from SentencePiece pieces (tok_spm.c; the GGUF loader uses it too). */
int tok_build_spm(struct sg_tok **out, const struct tok_spm_piece *pieces, size_t n,
                  const struct tok_spm_opts *o, const char *config_json, size_t config_len,
                  const char *name, char *err, size_t errlen);

/* Loaders: each reads `path` into a new tokenizer (caller frees with sg_tok_free). */
int tok_load_json(struct sg_tok **out, const char *path, char *err, size_t errlen);
int tok_load_json_mem(struct sg_tok **out, const char *buf, size_t n, const char *name, char *err,
                      size_t errlen);
int tok_load_spm(struct sg_tok **out, const char *path, char *err, size_t errlen);
int tok_load_spm_mem(struct sg_tok **out, const uint8_t *buf, size_t n, const char *name,
                     const char *config_json, size_t config_len, char *err, size_t errlen);
/* Mark the pieces a tokenizer_config.json flags special (tok_json.c). */
int tok_json_config_specials(struct sg_tok *t, const char *buf, size_t n, const char *name,
                             char *err, size_t errlen);
int tok_load_gguf(struct sg_tok **out, const char *path, char *err, size_t errlen);
struct sg_gguf;
/* From an open GGUF reader (gguf.h), borrowed. */
int tok_load_gguf_handle(struct sg_tok **out, const struct sg_gguf *g, char *err, size_t errlen);
int tok_load_gguf_mem(struct sg_tok **out, const uint8_t *buf, size_t n, const char *name,
                      char *err, size_t errlen);

/* Read a whole file into a malloc'ed buffer (NUL-terminated); SG_EIO with a message. */
int tok_read_file(const char *path, char **buf, size_t *n, char *err, size_t errlen);
/* printf into err (if errlen > 0) and return `code`. */
int tok_fail(int code, char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#endif /* SG_TOK_INTERNAL_H */
