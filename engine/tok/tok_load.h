#ifndef SG_TOK_LOAD_H
#define SG_TOK_LOAD_H
/*
 * tok_load.h (internal to engine/tok/): the tokenizer's loaders, one per file format: each
 * reads a file (or bytes) into a new tokenizer through the builder of tok_table.h. sg_tok_open
 * (tok_open.c) chooses one; the GGUF loader builds through the SentencePiece one.
 */
#include <stddef.h>
#include <stdint.h>

#include "file.h"
#include "tok_table.h"

/* The largest tokenizer file read (sg_read_file). */
#define TOK_FILE_MAX ((size_t)1 << 31)

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

#endif /* SG_TOK_LOAD_H */
