/* log.c: the library's log hook (sg_engine_set_log, sg_log). */
#include "sg_engine.h"

#include <stdarg.h>
#include <stdio.h>

static void default_log(sg_log_level level, const char *msg, void *ud)
{
    (void)ud;
    if (level <= SG_LOG_WARN)
        fprintf(stderr, "%s: %s\n", level == SG_LOG_ERROR ? "error" : "warning", msg);
}

/* The one process-wide setting of the library (see sg_engine_set_log). */
static sg_log_fn log_fn = default_log;
static void *log_ud;

void sg_engine_set_log(sg_log_fn fn, void *ud)
{
    log_fn = fn ? fn : default_log;
    log_ud = fn ? ud : NULL;
}

void sg_log(sg_log_level level, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_ud);
}
