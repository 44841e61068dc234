#ifndef SG_ENGINE_H
#define SG_ENGINE_H
/*
 * sg_engine.h: the shieldd transformer core (Gemma 2), as a library.
 *
 * The engine has no sockets, no YAML and no process state. Every fallible call returns an int:
 * SG_OK (0) or a negative sg_err; sg_engine_strerror() names the code, and the handle (or a
 * caller buffer, for constructors) carries the detailed message.
 *
 * The library never exits and never prints: it logs through the hook set with
 * sg_engine_set_log() (default: stderr for warnings and errors).
 */

#include <stddef.h>
#include <stdint.h>

typedef enum sg_err {
    SG_OK = 0,
    SG_ENOMEM = -1,       /* allocation failed */
    SG_EIO = -2,          /* open/read/mmap failed */
    SG_EFORMAT = -3,      /* a file is malformed */
    SG_ESHAPE = -4,       /* a tensor's shape does not match the configuration */
    SG_EUNSUPPORTED = -5, /* valid, but not something this engine handles */
    SG_EINVAL = -6,       /* a bad argument from the caller */
    SG_ERANGE = -7,       /* over a limit: context length, capacity, count */
    SG_ERR_COUNT = 8
} sg_err;

/* Static description of an error code; never NULL. */
const char *sg_engine_strerror(int err);

typedef enum sg_log_level {
    SG_LOG_ERROR = 0,
    SG_LOG_WARN = 1,
    SG_LOG_INFO = 2,
    SG_LOG_DEBUG = 3,
    SG_LOG_LEVEL_COUNT
} sg_log_level;

typedef void (*sg_log_fn)(sg_log_level level, const char *msg, void *ud);

/*
 * Route the libraries' log lines (engine and policies) to `fn` (NULL restores the default,
 * which writes warnings and errors to stderr). Set it once, before other threads use the
 * libraries: like ggml_log_set, it is the one process-wide setting of the library.
 */
void sg_engine_set_log(sg_log_fn fn, void *ud);

/* Internal: log a printf-style line through the hook. */
void sg_log(sg_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif /* SG_ENGINE_H */
