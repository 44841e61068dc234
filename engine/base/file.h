#ifndef SG_FILE_H
#define SG_FILE_H
/*
 * file.h (internal to engine/): the engine's one reader of small whole files (config.json,
 * safetensors indexes, tokenizer files). Large weight files are mapped, not read.
 */

#include <stddef.h>

/*
 * Read the regular file `path` of at most `max` bytes into a malloc'd, NUL-terminated buffer
 * (*buf, caller frees; *len bytes without the NUL). SG_OK; SG_EIO (cannot open, not a regular
 * file, read error), SG_ERANGE (over `max`), SG_ENOMEM; `err` names the file and the cause.
 */
int sg_read_file(const char *path, size_t max, char **buf, size_t *len, char *err,
                 size_t errlen);

#endif /* SG_FILE_H */
