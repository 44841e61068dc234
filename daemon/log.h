#ifndef SG_DAEMON_LOG_H
#define SG_DAEMON_LOG_H
/*
 * log.h: shieldd's logging (OpenBSD style). Lines go to stderr; under systemd (JOURNAL_STREAM
 * names our stderr) each line starts with a <N> syslog priority prefix that journald maps to a
 * level (sd-daemon(3)). log_debug prints only at verbosity >= 1 (-v).
 */

#include <stdarg.h>
#include <stddef.h>

/* Initialise: `verbose` (number of -v), and whether to use <N> prefixes (-1: detect from
 * JOURNAL_STREAM). Also routes the engine/policy library hook (sg_engine_set_log) here. */
void log_init(int verbose, int journal);
void log_set_verbose(int verbose);

/* Warning with ": strerror(errno)" appended. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Warning, no errno. */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log an error (with / without errno) and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * Not a log line: printf the detail of an error into the caller's buffer `err` (when not NULL
 * and errlen > 0), as loaders that fail before a handle exists do (config, listeners). Always
 * returns -1, so that `return fail_msg(err, errlen, ...);` ends such a function.
 */
int fail_msg(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* SG_DAEMON_LOG_H */
