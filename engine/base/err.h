#ifndef SG_ERR_H
#define SG_ERR_H
/*
 * err.h (internal to engine/): the engine's one error formatter. The error names
 * (sg_engine_strerror) are public, in sg_engine.h; err.c holds both.
 */

#include <stddef.h>

/*
 * Write "WHERE: message" (just "message" when `where` is NULL) into err (capacity errlen; err
 * may be NULL or errlen 0: nothing is written) and return `code`, so that a failure reads
 * `return sg_errf(err, errlen, SG_EFORMAT, file, "key '%s': ...", key);`.
 */
int sg_errf(char *err, size_t errlen, int code, const char *where, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

#endif /* SG_ERR_H */
