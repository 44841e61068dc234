#ifndef SG_DAEMON_CONFIG_H
#define SG_DAEMON_CONFIG_H
/*
 * config.h: shieldd's settings. One table of keys (redis standardConfig style) drives the YAML
 * file (-c shieldd.yaml), the long flags (--KEY VALUE, --KEY=VALUE, --no-KEY for booleans) and
 * the help text, so every key is also a flag. Flags win over the file.
 *
 *     struct shieldd_config c;
 *     struct shieldd_cmdline cl;
 *     shieldd_defaults(&c);
 *     if (config_parse_args(&cl, argc, argv, err, sizeof err) < 0 ||
 *         (cl.config_file && config_load_file(&c, cl.config_file, err, sizeof err) < 0) ||
 *         config_apply_args(&c, &cl, err, sizeof err) < 0) ... print err, exit 1
 */

#include <stddef.h>
#include <stdio.h>

#define SHIELDD_MAX_LISTEN 16

struct shieldd_config {
    char *model;                      /* model path (folder, .safetensors, .gguf) */
    char *policies;                   /* policy directory */
    char *listen[SHIELDD_MAX_LISTEN]; /* "unix:/path" or "tcp:HOST:PORT" */
    size_t n_listen;
    int socket_mode;      /* permissions of Unix sockets we create */
    char *socket_group;   /* group of Unix sockets we create ("" : leave as is) */
    int socket_perms_set; /* socket_mode or socket_group was set (applied to systemd's too) */
    char *api_keys;       /* API key file ("": no keys, no authentication) */
    int metrics_auth;     /* /metrics needs a key when api_keys is set */
    char *allow_uids;     /* Unix peers allowed by uid (comma-separated; "": any) */
    char *allow_gids;     /* Unix peers allowed by gid (comma-separated; "": any) */
    int allow_unauthenticated_tcp; /* a non-loopback TCP listener without api_keys */
    int threads;                   /* engine threads; 0: all cores */
    char *precision;               /* f32, bf16, int8 */
    char *pack_cache;              /* packed-weight cache folder, "auto" or "off" */
    long max_body_bytes;           /* request body limit */
    long max_header_bytes;         /* request line + headers limit */
    int max_tokens;                /* per rendered prompt; 0: the model's context */
    int max_inputs;                /* inputs per batch request */
    int queue_depth;               /* queued requests before 503 */
    int batch_tokens;              /* bytes of input per worker round (>= its tokens) */
    double request_timeout;        /* seconds from arrival to reply (504) */
    double read_timeout;           /* seconds to receive a whole request (408) */
    double idle_timeout;           /* seconds a keep-alive connection may idle */
    int max_connections;           /* open client connections */
    double drain_timeout;          /* seconds SIGTERM waits for in-flight requests */
    int retry_after;               /* seconds, the Retry-After of a 503 */
    int cache;                     /* result cache on/off */
    long cache_bytes;              /* result cache size */
    double cache_ttl;              /* seconds an entry stays valid */
    long prefix_cache_bytes;       /* engine prefix cache bound; -1: auto (for the model); 0: off */
    int truncate;                  /* cut over-long input to fit instead of 413 */
    int verbose;                   /* log level: 0 info, 1 debug */
};

/* Fill `c` with the defaults (the one place they live). Strings are malloc'd. */
void shieldd_defaults(struct shieldd_config *c);
/* Release the strings of `c` (the struct itself is the caller's). */
void config_free(struct shieldd_config *c);

/*
 * Set key `key` to the textual `value` (from the file or a flag): parses, range-checks and
 * stores it. For "listen", appends. Returns 0, or -1 with a message naming the key and the
 * problem in `err`.
 */
int config_set(struct shieldd_config *c, const char *key, const char *value, char *err,
               size_t errlen);

/*
 * Apply the YAML file `path`: a mapping of keys to scalars ("listen" may also be a sequence).
 * Returns 0, or -1 with "path:line:column: message" in `err` (unknown key, bad value, syntax).
 */
int config_load_file(struct shieldd_config *c, const char *path, char *err, size_t errlen);

/* The same for text[0..len) in memory; `name` stands for the file in messages. */
int config_load_string(struct shieldd_config *c, const char *name, const char *text, size_t len,
                       char *err, size_t errlen);

#define SHIELDD_MAX_ARGS 64

/* The command line, parsed but not yet applied. Pointers borrow from argv. */
struct shieldd_cmdline {
    const char *config_file;           /* -c; NULL: none */
    int check_only;                    /* -n */
    int foreground;                    /* -d */
    int verbose;                       /* number of -v */
    int help;                          /* -h */
    const char *key[SHIELDD_MAX_ARGS]; /* key/value overrides, in order */
    const char *value[SHIELDD_MAX_ARGS];
    size_t n;
    char store[SHIELDD_MAX_ARGS][128]; /* room for values built from short flags */
};

/*
 * Parse argv: -c FILE, -n, -d, -v, -h, the short forms -m MODEL, -p DIR, -s SOCKET
 * (listen unix:SOCKET), -l HOST:PORT (listen tcp:HOST:PORT), -t N, and --KEY VALUE for every
 * key. Returns 0, or -1 with a message in `err` (unknown flag, missing value, extra argument).
 */
int config_parse_args(struct shieldd_cmdline *cl, int argc, char **argv, char *err, size_t errlen);

/* Apply the overrides of `cl` over `c` (after the file). A "listen" flag replaces the file's
 * listeners. Returns 0 or -1 with a message in `err`. */
int config_apply_args(struct shieldd_config *c, const struct shieldd_cmdline *cl, char *err,
                      size_t errlen);

/* Print the usage text with every key, its type and default to `f`. */
void config_usage(FILE *f);

/* Parse helpers, exposed for the tests: a size with an optional k/M/G suffix (1024-based) and a
 * duration in seconds with an optional ms/s/m/h suffix. Return 0 or -1. */
int config_parse_size(const char *s, long *out);
int config_parse_duration(const char *s, double *out);

#endif /* SG_DAEMON_CONFIG_H */
