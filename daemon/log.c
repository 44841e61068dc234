/*
 * log.c: stderr logging with syslog priority prefixes under systemd. The only process state is
 * the verbosity and the prefix switch, set once at start-up from main.c (daemon/ owns process
 * state). Lines are written with one write(2) each so that threads do not interleave them.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sg_engine.h"

enum { PRI_ERR = 3, PRI_WARNING = 4, PRI_INFO = 6, PRI_DEBUG = 7 };

static int log_verbose;
static int log_journal;

static void vlog(int pri, const char *fmt, va_list ap, const char *suffix)
{
    char line[2048];
    size_t n = 0;
    int k;

    if (log_journal) {
        k = snprintf(line, sizeof line, "<%d>", pri);
    } else {
        struct timespec ts;
        struct tm tm;
        const char *lvl = pri == PRI_ERR       ? "error"
                          : pri == PRI_WARNING ? "warning"
                          : pri == PRI_INFO    ? "info"
                                               : "debug";

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        k = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ shieldd %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, lvl);
    }
    if (k > 0)
        n = (size_t)k < sizeof line ? (size_t)k : sizeof line - 1;
    k = vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (k > 0)
        n += (size_t)k < sizeof line - n ? (size_t)k : sizeof line - n - 1;
    if (suffix != NULL && n < sizeof line - 1) {
        k = snprintf(line + n, sizeof line - n, ": %s", suffix);
        if (k > 0)
            n += (size_t)k < sizeof line - n ? (size_t)k : sizeof line - n - 1;
    }
    /* Messages may quote client input: keep one record per line. */
    for (size_t i = log_journal ? 3 : 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* Nowhere left to report it. */
    }
}

static void lib_log(sg_log_level level, const char *msg, void *ud)
{
    (void)ud;
    switch (level) {
    case SG_LOG_ERROR:
    case SG_LOG_WARN:
        log_warnx("%s", msg);
        break;
    case SG_LOG_INFO:
        log_info("%s", msg);
        break;
    default:
        log_debug("%s", msg);
        break;
    }
}

/* Whether stderr is the journal: JOURNAL_STREAM holds "DEVICE:INODE" of the stream systemd
 * connected, and still matches stderr unless it was redirected since (sd-daemon(3)). */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
        return 0;
    if (fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(int verbose, int journal)
{
    log_verbose = verbose;
    if (journal < 0)
        journal = stderr_is_journal();
    log_journal = journal;
    sg_engine_set_log(lib_log, NULL);
}

void log_set_verbose(int verbose)
{
    log_verbose = verbose;
}

void log_warn(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;

    va_start(ap, fmt);
    vlog(PRI_WARNING, fmt, ap, strerror(saved));
    va_end(ap);
    errno = saved;
}

void log_warnx(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(PRI_WARNING, fmt, ap, NULL);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(PRI_INFO, fmt, ap, NULL);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    va_list ap;

    if (log_verbose < 1)
        return;
    va_start(ap, fmt);
    vlog(PRI_DEBUG, fmt, ap, NULL);
    va_end(ap);
}

void fatal(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;

    va_start(ap, fmt);
    vlog(PRI_ERR, fmt, ap, strerror(saved));
    va_end(ap);
    exit(1);
}

void fatalx(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(PRI_ERR, fmt, ap, NULL);
    va_end(ap);
    exit(1);
}

int fail_msg(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}
