#ifndef SG_SAFETENSORS_H
#define SG_SAFETENSORS_H
/*
 * safetensors.h (internal to engine/): the safetensors format, read without trusting anything.
 *
 * A file is: 8-byte little-endian header length N, N bytes of JSON header, then the data, with
 * every tensor's data_offsets [begin, end) relative to byte 8 + N (tensors may be unaligned).
 * The header maps tensor names to {"dtype", "shape", "data_offsets"} plus an optional
 * "__metadata__" object of strings. Checked: the header length against the file, the JSON,
 * every dtype (F32, F16, BF16 supported), shape (at most 4 dimensions, no overflow),
 * data_offsets (begin <= end, inside the file, size == elements x dtype size), overlaps between
 * tensors, duplicate names (within a file and across the shards of a model), name lengths.
 * Messages name the file and the tensor or key, what was expected and what was found.
 */

#include <stddef.h>

#include "tensor.h"

#define SG_ST_MAX_HEADER (100u << 20) /* as the reference implementation */

/*
 * Parse the safetensors image `file` (`size` bytes: the whole file) and return its tensors in
 * *out (*n_out of them; caller frees *out with free()), in header order, with data pointers into
 * `file`. `fname` names the file in messages. Returns SG_OK, SG_EFORMAT (malformed),
 * SG_EUNSUPPORTED (a valid dtype this engine does not handle, or more than 4 dimensions) or
 * SG_ENOMEM, with a message in `err`. Never reads outside file[0..size).
 */
int sg_st_parse(const void *file, size_t size, const char *fname, sg_tensor **out, size_t *n_out,
                char *err, size_t errlen);

/*
 * Map the .safetensors file at `path` read-only and append its tensors to `w` (the mapping joins
 * w->maps, released by sg_weights_free). A name already in `w` is an error (SG_EFORMAT,
 * "duplicate tensor"). Returns SG_OK, SG_EIO (cannot open/map) or sg_st_parse's errors; on
 * failure `w` is as before.
 */
int sg_st_load(const char *path, sg_weights *w, char *err, size_t errlen);

/*
 * Parse a model.safetensors.index.json text: its "weight_map" maps tensor names to shard file
 * names. Returns the distinct shard names in order of first appearance in *shards (*n_shards;
 * free each and the array with free()). Shard names must be plain file names (no '/', not "." or
 * ".."). SG_EFORMAT with a message naming `fname` and the key otherwise.
 */
int sg_st_parse_index(const char *json, size_t len, const char *fname, char ***shards,
                      size_t *n_shards, char *err, size_t errlen);

/*
 * Load a sharded model: read the index at `index_path`, load every shard it names from the same
 * folder into `w`, and check that each tensor the index lists is in the shard it names.
 * Returns SG_OK, SG_EIO (the index or a shard cannot be read; the message names both), or the
 * parse errors above.
 */
int sg_st_load_index(const char *index_path, sg_weights *w, char *err, size_t errlen);

#endif /* SG_SAFETENSORS_H */
