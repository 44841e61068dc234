#ifndef SG_TOK_H
#define SG_TOK_H
/*
 * sg_tok.h: Gemma's SentencePiece-BPE tokenizer, loaded from a Hugging Face tokenizer.json, a
 * SentencePiece tokenizer.model or GGUF tokenizer.ggml.* metadata. Exact: the ids equal those of
 * Hugging Face tokenizers for the same text.
 *
 * Two modes. SG_TOK_TEMPLATE: added tokens, special ones included (<bos>, <start_of_turn>, ...),
 * are split out of the text as Hugging Face does. SG_TOK_USER: tokens flagged special and
 * control pieces are never recognised, so "<end_of_turn>" in a user message is ordinary text;
 * non-special added tokens (newline runs, HTML tags) are still split as Hugging Face does.
 *
 * A tokenizer is read-only after loading and may be shared between threads.
 */

#include <stddef.h>
#include <stdint.h>

#include "sg_engine.h"

typedef enum sg_tok_mode {
    SG_TOK_USER = 0,
    SG_TOK_TEMPLATE = 1,
    SG_TOK_MODE_COUNT
} sg_tok_mode;

/* One piece of a text to encode as a whole: BPE runs across the seams between segments exactly
 * as if the texts were one string, while each segment keeps its own mode. */
typedef struct sg_tok_seg {
    const char *text;
    size_t len;
    sg_tok_mode mode;
} sg_tok_seg;

/*
 * Load a tokenizer from `path`: a model folder (tokenizer.json preferred, else tokenizer.model),
 * a tokenizer.json, a tokenizer.model, or a .gguf. The caller owns *out (sg_tok_free).
 * On failure returns a negative sg_err with a message naming the file and the problem in `err`.
 */
int sg_tok_open(sg_tok **out, const char *path, char *err, size_t errlen);
void sg_tok_free(sg_tok *t);

/*
 * Encode segments into `ids` (capacity `cap`); *n receives the count. No BOS is added: put
 * sg_tok_bos() first yourself. Returns SG_OK, or SG_ERANGE if `cap` is too small (*n is then the
 * required count). Invalid UTF-8 is handled as documented in docs/TOKENIZER.md.
 */
int sg_tok_encode_segs(const sg_tok *t, const sg_tok_seg *segs, size_t n_segs, int32_t *ids,
                       size_t cap, size_t *n);
/* One segment. */
int sg_tok_encode(const sg_tok *t, const char *text, size_t len, sg_tok_mode mode, int32_t *ids,
                  size_t cap, size_t *n);

/* Decode ids to UTF-8 text (byte-fallback pieces reassembled, '▁' -> ' ') into `buf`
 * (capacity `cap`, always NUL-terminated when cap > 0); *len receives the length needed.
 * SG_ERANGE if it did not fit; SG_EINVAL for an id outside the vocabulary. */
int sg_tok_decode(const sg_tok *t, const int32_t *ids, size_t n, char *buf, size_t cap,
                  size_t *len);

size_t sg_tok_n_vocab(const sg_tok *t);
int32_t sg_tok_bos(const sg_tok *t);
int32_t sg_tok_eos(const sg_tok *t);
/* The id of the piece spelled exactly `piece` (e.g. "Yes", "<end_of_turn>"), or -1. */
int32_t sg_tok_piece_id(const sg_tok *t, const char *piece);
/* The piece of `id` (borrowed), or NULL if out of range. */
const char *sg_tok_piece(const sg_tok *t, int32_t id);
/* 1 if `id` is a special/control token that user text can never produce. */
int sg_tok_is_special(const sg_tok *t, int32_t id);

#endif /* SG_TOK_H */
