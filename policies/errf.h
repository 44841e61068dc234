#ifndef SG_POLICY_ERRF_H
#define SG_POLICY_ERRF_H
/*
 * errf.h (internal to policies/): the library's one error formatter. Each handle's own
 * fail function (the policy loader's, the moderator's) is a thin wrapper around it.
 */

#include <stdarg.h>
#include <stddef.h>

/* Write "WHERE: message" ("message" when `where` is NULL) into buf (capacity cap; NULL or 0:
 * nothing) and return `code`. */
int sg_policy_verrf(char *buf, size_t cap, int code, const char *where, const char *fmt,
                    va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 0)))
#endif
    ;

#endif /* SG_POLICY_ERRF_H */
