/* errf.c: the policies library's one error formatter (see errf.h). */
#include "errf.h"

#include <stdio.h>

int sg_policy_verrf(char *buf, size_t cap, int code, const char *where, const char *fmt,
                    va_list ap)
{
    int n = 0;

    if (buf == NULL || cap == 0)
        return code;
    if (where != NULL) {
        n = snprintf(buf, cap, "%s: ", where);
        if (n < 0 || (size_t)n >= cap)
            return code;
    }
    vsnprintf(buf + n, cap - (size_t)n, fmt, ap);
    return code;
}
