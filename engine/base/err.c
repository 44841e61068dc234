/* err.c: the error names (sg_engine_strerror) and the one error formatter (sg_errf, sg_verrf). */
#include <stdarg.h>
#include <stdio.h>

#include "sg_engine.h"

static const char *const err_names[SG_ERR_COUNT] = {
    "success",
    "out of memory",
    "input/output error",
    "malformed file",
    "tensor shape mismatch",
    "unsupported",
    "invalid argument",
    "out of range",
    "compute kernel failed",
};

const char *sg_engine_strerror(int err)
{
    if (err > 0 || -err >= SG_ERR_COUNT)
        return "unknown error";
    return err_names[-err];
}

int sg_verrf(char *err, size_t errlen, int code, const char *where, const char *fmt, va_list ap)
{
    int n = 0;

    if (err == NULL || errlen == 0)
        return code;
    if (where != NULL) {
        n = snprintf(err, errlen, "%s: ", where);
        if (n < 0 || (size_t)n >= errlen)
            return code;
    }
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    return code;
}

int sg_errf(char *err, size_t errlen, int code, const char *where, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sg_verrf(err, errlen, code, where, fmt, ap);
    va_end(ap);
    return code;
}
