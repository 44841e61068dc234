#ifndef SG_THRESHOLDFILE_H
#define SG_THRESHOLDFILE_H
/*
 * thresholdfile.h: rewrite the `threshold:` line of a policy file's text (policies/NAME.yaml) and
 * nothing else, for `shieldctl eval --write-thresholds`. The line is the one top-level mapping
 * key `threshold:` (at column 0); its plain scalar is replaced, and what follows it on the line
 * (spaces, a `# comment`, the line ending) is kept, as is every other byte of the file.
 */

#include <stddef.h>

/*
 * The text of `len` bytes with the value of its threshold line replaced by `value`, into *out
 * (malloc'd, NUL-terminated, caller frees; *out_len its length). *old receives the previous
 * value (malloc'd, caller frees) when old is not NULL. Returns 0, -1 when out of memory, or -2
 * when the text has no top-level `threshold:` line or more than one (message in err, with the
 * line number).
 */
int sg_threshold_rewrite(const char *text, size_t len, const char *value, char **out,
                         size_t *out_len, char **old, char *err, size_t errlen);

#endif /* SG_THRESHOLDFILE_H */
