#ifndef SG_ENGINE_FIXTURES_H
#define SG_ENGINE_FIXTURES_H
/*
 * engine_fixtures.h: helpers for the engine's Check suites: paths under tests/fixtures (from
 * $SG_TOP, else the current directory), golden logits, temporary folders and files.
 * Failures abort the test (ck_abort_msg), so callers need not check returns.
 */

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sg_engine.h"

/* The repository's top folder: $SG_TOP, else "." (a static string, never NULL). */
const char *fx_top(void);

/* "$SG_TOP/tests/fixtures/<rel>" into a static-per-call buffer owned by the caller. */
void fx_path(char *buf, size_t cap, const char *rel);

/* Read a whole file; the caller frees the result. *len receives its size. */
unsigned char *fx_read(const char *path, size_t *len);
/* A repository file, "$SG_TOP/<rel>", read as by fx_read(); `len` may be NULL. */
char *fx_slurp(const char *rel, size_t *len);
/* Write `len` bytes to `path` (created or truncated). */
void fx_write(const char *path, const void *data, size_t len);
/* Write the string `text` to the file `name` in folder `dir`. */
void fx_put(const char *dir, const char *name, const char *text);
/* Copy a file. */
void fx_copy(const char *from, const char *to);

/* Token ids of tests/fixtures/tiny-a/prompt.ids (comma-separated) into ids (capacity cap). */
size_t fx_prompt_ids(int32_t *ids, size_t cap);

/*
 * Golden logits (ref_f64_*.txt: `n_tokens N`, `tokens ...`, `n_vocab V`, then per position
 * `logits P` and V values). Returns a malloc'd [n_pos * n_vocab] array; the caller frees it.
 */
double *fx_golden(const char *rel, size_t *n_pos, size_t *n_vocab);

/*
 * Read tests/fixtures/<rel>, a safetensors file: its bytes into *file (the caller frees them),
 * *len its size, *hlen the length of its JSON header (the data follow at byte 8 + *hlen).
 * Returns the parsed header (new reference).
 */
json_t *fx_st_read(const char *rel, unsigned char **file, size_t *len, uint64_t *hlen);

/* Write a safetensors file to `path`: the 8-byte length, `hdr` as compact JSON, `n` data bytes. */
void fx_st_write(const char *path, const json_t *hdr, const void *data, size_t n);

/*
 * Assert the shape of the tiny-a fixture model (in every format): arch, vocabulary, widths,
 * heads, layers, window, soft-caps, scales and BOS id. Format and name are the caller's.
 */
void fx_check_tiny_a_info(const sg_model_info *i);

/* A fresh temporary folder (mkdtemp) in `buf`; fx_rmdir removes it and its files. */
void fx_tmpdir(char *buf, size_t cap);
void fx_rmdir(const char *dir);

#endif /* SG_ENGINE_FIXTURES_H */
