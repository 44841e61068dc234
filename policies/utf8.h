#ifndef SG_UTF8_H
#define SG_UTF8_H
/* utf8.h (internal to policies/): strict UTF-8 validation. */

#include <stddef.h>

/*
 * Check that s[0..len) is well-formed UTF-8 (no overlong forms, no surrogates, nothing above
 * U+10FFFF, no truncated sequence). Returns 1 if it is; else 0 and, if `bad` is not NULL, the
 * byte offset of the first invalid sequence in *bad.
 */
int sg_utf8_valid(const char *s, size_t len, size_t *bad);

/* The largest n <= len such that s[0..n) ends on a character boundary of valid UTF-8 `s`. */
size_t sg_utf8_floor(const char *s, size_t len);

#endif /* SG_UTF8_H */
