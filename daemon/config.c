/*
 * config.c: the key table, the YAML loader (libyaml events) and the command-line parser.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "log.h"
#include "sg_engine.h"

enum key_type { K_STRING, K_INT, K_LONG_SIZE, K_DURATION, K_BOOL, K_MODE, K_LISTEN };

struct config_key {
    const char *name;
    enum key_type type;
    size_t offset;
    double min, max;
    const char *help;
};

#define OFF(f) offsetof(struct shieldd_config, f)

static const struct config_key keys[] = {
    {"model", K_STRING, OFF(model), 0, 0, "model path: HF folder, .safetensors or .gguf"},
    {"policies", K_STRING, OFF(policies), 0, 0, "policy directory (*.yaml)"},
    {"listen", K_LISTEN, OFF(listen), 0, 0,
     "listener, repeatable: unix:/path/to.sock or tcp:HOST:PORT"},
    {"socket_mode", K_MODE, OFF(socket_mode), 0, 0777, "permissions of Unix sockets (octal)"},
    {"socket_group", K_STRING, OFF(socket_group), 0, 0, "group of Unix sockets (name or id)"},
    {"api_keys", K_STRING, OFF(api_keys), 0, 0,
     "file of API keys, one 'KEY [name]' a line: every endpoint but /healthz and /readyz then "
     "needs 'Authorization: Bearer KEY' (reloaded on SIGHUP)"},
    {"metrics_auth", K_BOOL, OFF(metrics_auth), 0, 1,
     "with api_keys, /metrics needs a key too (--no-metrics-auth leaves it open)"},
    {"allow_uids", K_STRING, OFF(allow_uids), 0, 0,
     "Unix socket peers allowed, by user (comma-separated names or ids; empty: any)"},
    {"allow_gids", K_STRING, OFF(allow_gids), 0, 0,
     "Unix socket peers allowed, by primary group (comma-separated names or ids; empty: any)"},
    {"allow_unauthenticated_tcp", K_BOOL, OFF(allow_unauthenticated_tcp), 0, 1,
     "allow a non-loopback TCP listener without api_keys"},
    {"threads", K_INT, OFF(threads), 0, 1024, "engine threads (0: all cores)"},
    {"precision", K_STRING, OFF(precision), 0, 0, "matrix precision: f32, bf16 or int8"},
    {"pack_cache", K_STRING, OFF(pack_cache), 0, 0,
     "packed-weight cache folder, shared by processes: a path, 'auto' ($CACHE_DIRECTORY, "
     "as systemd's CacheDirectory= sets it; else off) or 'off'"},
    {"max_body_bytes", K_LONG_SIZE, OFF(max_body_bytes), 64, 1L << 30, "request body limit (413)"},
    {"max_header_bytes", K_LONG_SIZE, OFF(max_header_bytes), 256, 1L << 20,
     "request line and headers limit (431)"},
    {"max_tokens", K_INT, OFF(max_tokens), 0, 1 << 24,
     "tokens per rendered prompt (413; 0: the model's context)"},
    {"max_inputs", K_INT, OFF(max_inputs), 1, 1 << 16, "inputs in one batch request"},
    {"queue_depth", K_INT, OFF(queue_depth), 1, 1 << 20, "queued requests before 503"},
    {"batch_tokens", K_INT, OFF(batch_tokens), 1, 1 << 26,
     "bytes of input per worker round (>= its tokens)"},
    {"request_timeout", K_DURATION, OFF(request_timeout), 0.001, 86400,
     "deadline from arrival to reply (504)"},
    {"read_timeout", K_DURATION, OFF(read_timeout), 0.001, 86400,
     "time to receive a whole request (408)"},
    {"idle_timeout", K_DURATION, OFF(idle_timeout), 0.001, 86400,
     "idle time before a keep-alive connection is closed"},
    {"max_connections", K_INT, OFF(max_connections), 1, 1 << 20, "open client connections"},
    {"drain_timeout", K_DURATION, OFF(drain_timeout), 0, 86400,
     "time SIGTERM waits for in-flight requests"},
    {"retry_after", K_INT, OFF(retry_after), 0, 86400, "Retry-After seconds of a 503"},
    {"cache", K_BOOL, OFF(cache), 0, 1, "result cache (--no-cache turns it off)"},
    {"cache_bytes", K_LONG_SIZE, OFF(cache_bytes), 0, 1L << 40, "result cache size"},
    {"cache_ttl", K_DURATION, OFF(cache_ttl), 0, 86400 * 365.0, "result cache entry lifetime"},
    {"prefix_cache_bytes", K_LONG_SIZE, OFF(prefix_cache_bytes), 0, 1L << 42,
     "engine prefix cache: key/value rows of many conversations' prefixes ('auto': 6144 "
     "tokens of the model; 0: off)"},
    {"truncate", K_BOOL, OFF(truncate), 0, 1, "cut over-long input to fit instead of 413"},
    {"verbose", K_INT, OFF(verbose), 0, 3, "log level: 0 info, 1 debug"},
};

#define N_KEYS (sizeof keys / sizeof keys[0])

static char *xstrdup(const char *s)
{
    char *d = malloc(strlen(s) + 1);

    if (d != NULL)
        strcpy(d, s);
    return d;
}

void shieldd_defaults(struct shieldd_config *c)
{
    memset(c, 0, sizeof *c);
    c->model = xstrdup("");
    c->policies = xstrdup("/usr/local/share/shieldd/policies");
    c->listen[c->n_listen++] = xstrdup("unix:/run/shieldd/shieldd.sock");
    c->listen[c->n_listen++] = xstrdup("tcp:127.0.0.1:8088");
    c->socket_mode = 0660;
    c->socket_group = xstrdup("");
    c->api_keys = xstrdup("");
    c->metrics_auth = 1;
    c->allow_uids = xstrdup("");
    c->allow_gids = xstrdup("");
    c->threads = 0;
    c->precision = xstrdup("f32");
    c->pack_cache = xstrdup("auto");
    c->max_body_bytes = 1L << 20;
    c->max_header_bytes = 16384;
    c->max_tokens = 0;
    c->max_inputs = 64;
    c->queue_depth = 256;
    c->batch_tokens = 16384;
    c->request_timeout = 30;
    c->read_timeout = 10;
    c->idle_timeout = 60;
    c->max_connections = 1024;
    c->drain_timeout = 10;
    c->retry_after = 1;
    c->cache = 1;
    c->cache_bytes = 64L << 20;
    c->cache_ttl = 300;
    c->prefix_cache_bytes = -1; /* auto: sized for the model */
    c->truncate = 0;
    c->verbose = 0;
}

void config_free(struct shieldd_config *c)
{
    if (c == NULL)
        return;
    free(c->model);
    free(c->policies);
    for (size_t i = 0; i < c->n_listen; i++)
        free(c->listen[i]);
    free(c->socket_group);
    free(c->api_keys);
    free(c->allow_uids);
    free(c->allow_gids);
    free(c->precision);
    free(c->pack_cache);
    memset(c, 0, sizeof *c);
}

static const struct config_key *find_key(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

int config_parse_size(const char *s, long *out)
{
    char *end;
    double v;
    double mul = 1;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno != 0 || !(v >= 0))
        return -1;
    switch (*end) {
    case 'k':
    case 'K':
        mul = 1024.0;
        end++;
        break;
    case 'm':
    case 'M':
        mul = 1024.0 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        mul = 1024.0 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (mul > 1 && *end == 'i')
        end++;
    if (*end == 'B' || (*end == 'b' && mul == 1))
        end++;
    if (*end != '\0')
        return -1;
    v *= mul;
    if (v > (double)LONG_MAX || v != floor(v))
        return -1;
    *out = (long)v;
    return 0;
}

int config_parse_duration(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno != 0 || !(v >= 0) || isinf(v))
        return -1;
    if (strcmp(end, "ms") == 0)
        v /= 1000;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        v *= 60;
    else if (strcmp(end, "h") == 0)
        v *= 3600;
    else if (strcmp(end, "") != 0 && strcmp(end, "s") != 0)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int check_listen(const char *v, char *err, size_t errlen)
{
    if (strncmp(v, "unix:", 5) == 0) {
        if (v[5] == '\0')
            return fail_msg(err, errlen, "listen: '%s' has no socket path", v);
        if (strlen(v + 5) >= 108)
            return fail_msg(err, errlen, "listen: socket path '%s' is longer than 107 bytes",
                            v + 5);
        return 0;
    }
    if (strncmp(v, "tcp:", 4) == 0) {
        const char *port = strrchr(v + 4, ':');
        char *end;
        long p;

        if (port == NULL)
            return fail_msg(err, errlen, "listen: '%s' needs a port (tcp:HOST:PORT or tcp:PORT)",
                            v);
        port++;
        errno = 0;
        p = strtol(port, &end, 10);
        if (*port == '\0' || *end != '\0' || errno != 0 || p < 0 || p > 65535)
            return fail_msg(err, errlen, "listen: '%s' has a bad port '%s' (0-65535)", v, port);
        return 0;
    }
    return fail_msg(err, errlen, "listen: '%s' is neither unix:PATH nor tcp:HOST:PORT", v);
}

int config_set(struct shieldd_config *c, const char *key, const char *value, char *err,
               size_t errlen)
{
    const struct config_key *k = find_key(key);
    char *p = (char *)c + (k ? k->offset : 0);
    char *end;

    if (k == NULL)
        return fail_msg(err, errlen, "unknown key '%s'", key);
    if (strcmp(key, "socket_mode") == 0 || strcmp(key, "socket_group") == 0)
        c->socket_perms_set = 1;
    switch (k->type) {
    case K_STRING: {
        char *d = xstrdup(value);

        if (d == NULL)
            return fail_msg(err, errlen, "%s: out of memory", key);
        free(*(char **)p);
        *(char **)p = d;
        if (strcmp(key, "precision") == 0 && sg_precision_parse(d, &(sg_precision){0}) != SG_OK)
            return fail_msg(err, errlen, "precision: '%s' is not one of f32, bf16, int8", value);
        if (strcmp(key, "pack_cache") == 0 && d[0] == '\0')
            return fail_msg(err, errlen, "pack_cache: empty (a folder, 'auto' or 'off')");
        return 0;
    }
    case K_INT: {
        long v;

        errno = 0;
        v = strtol(value, &end, 10);
        if (*value == '\0' || *end != '\0' || errno != 0)
            return fail_msg(err, errlen, "%s: '%s' is not an integer", key, value);
        if (v < k->min || v > k->max)
            return fail_msg(err, errlen, "%s: %ld is out of range [%.0f, %.0f]", key, v, k->min,
                            k->max);
        *(int *)p = (int)v;
        return 0;
    }
    case K_LONG_SIZE: {
        long v;

        if (strcmp(key, "prefix_cache_bytes") == 0 && strcmp(value, "auto") == 0) {
            *(long *)p = -1;
            return 0;
        }
        if (config_parse_size(value, &v) < 0)
            return fail_msg(err, errlen, "%s: '%s' is not a size (bytes, or with k/M/G)", key,
                            value);
        if (v < k->min || v > k->max)
            return fail_msg(err, errlen, "%s: %ld is out of range [%.0f, %.0f]", key, v, k->min,
                            k->max);
        *(long *)p = v;
        return 0;
    }
    case K_DURATION: {
        double v;

        if (config_parse_duration(value, &v) < 0)
            return fail_msg(err, errlen, "%s: '%s' is not a duration (seconds, or with ms/s/m/h)",
                            key, value);
        if (v < k->min || v > k->max)
            return fail_msg(err, errlen, "%s: %g s is out of range [%g, %g]", key, v, k->min,
                            k->max);
        *(double *)p = v;
        return 0;
    }
    case K_BOOL: {
        int v;

        if (parse_bool(value, &v) < 0)
            return fail_msg(err, errlen, "%s: '%s' is not a boolean (true/false, yes/no, on/off)",
                            key, value);
        *(int *)p = v;
        return 0;
    }
    case K_MODE: {
        long v;

        errno = 0;
        v = strtol(value, &end, 8);
        if (*value == '\0' || *end != '\0' || errno != 0 || v < 0 || v > 0777)
            return fail_msg(err, errlen, "%s: '%s' is not an octal mode (0000-0777)", key, value);
        *(int *)p = (int)v;
        return 0;
    }
    case K_LISTEN: {
        char *d;

        if (check_listen(value, err, errlen) < 0)
            return -1;
        if (c->n_listen >= SHIELDD_MAX_LISTEN)
            return fail_msg(err, errlen, "listen: more than %d listeners", SHIELDD_MAX_LISTEN);
        d = xstrdup(value);
        if (d == NULL)
            return fail_msg(err, errlen, "listen: out of memory");
        c->listen[c->n_listen++] = d;
        return 0;
    }
    }
    return fail_msg(err, errlen, "%s: unhandled key type", key);
}

static void clear_listen(struct shieldd_config *c)
{
    for (size_t i = 0; i < c->n_listen; i++)
        free(c->listen[i]);
    c->n_listen = 0;
}

/* ---- YAML file ---------------------------------------------------------------------------- */

static int yaml_fail(char *err, size_t errlen, const char *path, const yaml_mark_t *m,
                     const char *msg)
{
    return fail_msg(err, errlen, "%s:%zu:%zu: %s", path, m->line + 1, m->column + 1, msg);
}

int config_load_file(struct shieldd_config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;

    if (f == NULL)
        return fail_msg(err, errlen, "%s: %s", path, strerror(errno));
    for (;;) {
        size_t n;

        if (cap - len < 4096) {
            char *p;

            if (cap > (64u << 20)) {
                free(buf);
                fclose(f);
                return fail_msg(err, errlen, "%s: larger than 64 MiB", path);
            }
            p = realloc(buf, cap ? cap * 2 : 8192);
            if (p == NULL) {
                free(buf);
                fclose(f);
                return fail_msg(err, errlen, "%s: out of memory", path);
            }
            buf = p;
            cap = cap ? cap * 2 : 8192;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        int e = errno;

        free(buf);
        fclose(f);
        return fail_msg(err, errlen, "%s: %s", path, strerror(e));
    }
    fclose(f);
    rc = config_load_string(c, path, buf, len, err, errlen);
    free(buf);
    return rc;
}

int config_load_string(struct shieldd_config *c, const char *name, const char *text, size_t len,
                       char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    const char *path = name;
    int rc = -1;
    int depth = 0; /* 0: stream/doc, 1: top mapping, 2: a sequence value */
    int have_ev = 0;
    int seen_listen = 0;
    char key[64] = ""; /* the key awaiting a value; "" when expecting a key */
    char msg[512];

    if (!yaml_parser_initialize(&parser))
        return fail_msg(err, errlen, "%s: out of memory", path);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    for (;;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            snprintf(msg, sizeof msg, "YAML syntax error: %s",
                     parser.problem ? parser.problem : "unknown");
            yaml_fail(err, errlen, path, &parser.problem_mark, msg);
            goto fail;
        }
        have_ev = 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            rc = 0;
            goto fail;
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_ALIAS_EVENT:
            yaml_fail(err, errlen, path, &ev.start_mark, "aliases are not supported");
            goto fail;
        case YAML_MAPPING_START_EVENT:
            if (depth != 0) {
                snprintf(msg, sizeof msg, "%s: expected a scalar value, found a mapping",
                         key[0] ? key : "key");
                yaml_fail(err, errlen, path, &ev.start_mark, msg);
                goto fail;
            }
            depth = 1;
            break;
        case YAML_MAPPING_END_EVENT:
            depth = 0;
            break;
        case YAML_SEQUENCE_START_EVENT:
            if (depth != 1 || key[0] == '\0' || strcmp(key, "listen") != 0) {
                snprintf(msg, sizeof msg, "%s: expected a scalar value, found a sequence",
                         key[0] ? key : "the document");
                yaml_fail(err, errlen, path, &ev.start_mark, msg);
                goto fail;
            }
            if (!seen_listen)
                clear_listen(c);
            seen_listen = 1;
            depth = 2;
            break;
        case YAML_SEQUENCE_END_EVENT:
            depth = 1;
            key[0] = '\0';
            break;
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *)ev.data.scalar.value;

            if (depth == 0) {
                /* An empty file is a valid, empty configuration; a bare scalar is not. */
                if (ev.data.scalar.length == 0)
                    break;
                yaml_fail(err, errlen, path, &ev.start_mark,
                          "expected a mapping of keys to values");
                goto fail;
            }
            if (depth == 1 && key[0] == '\0') {
                if (find_key(v) == NULL) {
                    snprintf(msg, sizeof msg, "unknown key '%.64s'", v);
                    yaml_fail(err, errlen, path, &ev.start_mark, msg);
                    goto fail;
                }
                snprintf(key, sizeof key, "%s", v);
                break;
            }
            if (depth == 1 && strcmp(key, "listen") == 0 && !seen_listen) {
                clear_listen(c);
                seen_listen = 1;
            }
            if (config_set(c, key, v, msg, sizeof msg) < 0) {
                yaml_fail(err, errlen, path, &ev.start_mark, msg);
                goto fail;
            }
            if (depth == 1)
                key[0] = '\0';
            break;
        }
        case YAML_NO_EVENT:
            break;
        }
        yaml_event_delete(&ev);
        have_ev = 0;
    }
fail:
    if (have_ev)
        yaml_event_delete(&ev);
    yaml_parser_delete(&parser);
    return rc;
}

/* ---- Command line ------------------------------------------------------------------------- */

static int add_override(struct shieldd_cmdline *cl, const char *key, const char *value, char *err,
                        size_t errlen)
{
    if (cl->n >= SHIELDD_MAX_ARGS)
        return fail_msg(err, errlen, "more than %d settings on the command line", SHIELDD_MAX_ARGS);
    cl->key[cl->n] = key;
    cl->value[cl->n] = value;
    cl->n++;
    return 0;
}

int config_parse_args(struct shieldd_cmdline *cl, int argc, char **argv, char *err, size_t errlen)
{
    memset(cl, 0, sizeof *cl);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (a[0] == '-' && a[1] == '-' && a[2] != '\0') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            char kb[64];
            const struct config_key *k;
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            int neg = 0;

            if (len >= sizeof kb)
                return fail_msg(err, errlen, "unknown flag '%s'", a);
            memcpy(kb, name, len);
            kb[len] = '\0';
            /* Flags may spell keys with dashes: --max-body-bytes. */
            for (char *p = kb; *p; p++)
                if (*p == '-')
                    *p = '_';
            if (strcmp(kb, "config") == 0 || strcmp(kb, "help") == 0) {
                if (strcmp(kb, "help") == 0) {
                    cl->help = 1;
                    continue;
                }
                if (eq != NULL)
                    cl->config_file = eq + 1;
                else if (i + 1 < argc)
                    cl->config_file = argv[++i];
                else
                    return fail_msg(err, errlen, "--config needs a file");
                continue;
            }
            k = find_key(kb);
            if (k == NULL && strncmp(kb, "no_", 3) == 0) {
                k = find_key(kb + 3);
                neg = k != NULL && k->type == K_BOOL && eq == NULL;
                if (!neg)
                    k = NULL;
            }
            if (k == NULL)
                return fail_msg(err, errlen, "unknown flag '%s' (see shieldd -h)", a);
            if (neg) {
                if (add_override(cl, k->name, "false", err, errlen) < 0)
                    return -1;
            } else if (eq != NULL) {
                if (add_override(cl, k->name, eq + 1, err, errlen) < 0)
                    return -1;
            } else if (k->type == K_BOOL) {
                if (add_override(cl, k->name, "true", err, errlen) < 0)
                    return -1;
            } else {
                if (i + 1 >= argc)
                    return fail_msg(err, errlen, "flag '%s' needs a value", a);
                if (add_override(cl, k->name, argv[++i], err, errlen) < 0)
                    return -1;
            }
            continue;
        }
        if (a[0] != '-' || a[1] == '\0' || a[2] != '\0')
            return fail_msg(err, errlen, "unexpected argument '%s' (see shieldd -h)", a);
        switch (a[1]) {
        case 'n':
            cl->check_only = 1;
            break;
        case 'd':
            cl->foreground = 1;
            break;
        case 'v':
            cl->verbose++;
            break;
        case 'h':
            cl->help = 1;
            break;
        case 'c':
        case 'm':
        case 'p':
        case 's':
        case 'l':
        case 't': {
            const char *v;

            if (i + 1 >= argc)
                return fail_msg(err, errlen, "flag '%s' needs a value", a);
            v = argv[++i];
            if (a[1] == 'c') {
                cl->config_file = v;
            } else if (a[1] == 'm') {
                if (add_override(cl, "model", v, err, errlen) < 0)
                    return -1;
            } else if (a[1] == 'p') {
                if (add_override(cl, "policies", v, err, errlen) < 0)
                    return -1;
            } else if (a[1] == 't') {
                if (add_override(cl, "threads", v, err, errlen) < 0)
                    return -1;
            } else {
                /* -s PATH and -l HOST:PORT are shorthands for --listen. */
                if (cl->n >= SHIELDD_MAX_ARGS)
                    return fail_msg(err, errlen, "too many flags");
                snprintf(cl->store[cl->n], sizeof cl->store[0], "%s:%s",
                         a[1] == 's' ? "unix" : "tcp", v);
                if (add_override(cl, "listen", cl->store[cl->n], err, errlen) < 0)
                    return -1;
            }
            break;
        }
        default:
            return fail_msg(err, errlen, "unknown flag '%s' (see shieldd -h)", a);
        }
    }
    return 0;
}

int config_apply_args(struct shieldd_config *c, const struct shieldd_cmdline *cl, char *err,
                      size_t errlen)
{
    int listen_cleared = 0;
    char msg[512];

    for (size_t i = 0; i < cl->n; i++) {
        if (strcmp(cl->key[i], "listen") == 0 && !listen_cleared) {
            clear_listen(c);
            listen_cleared = 1;
        }
        if (config_set(c, cl->key[i], cl->value[i], msg, sizeof msg) < 0)
            return fail_msg(err, errlen, "command line: %s", msg);
    }
    if (cl->verbose > c->verbose)
        c->verbose = cl->verbose;
    return 0;
}

void config_usage(FILE *f)
{
    struct shieldd_config d;

    shieldd_defaults(&d);
    fprintf(f, "usage: shieldd [-dhnv] [-c shieldd.yaml] [-m MODEL] [-p POLICY_DIR] [-s SOCKET]\n"
               "               [-l HOST:PORT] [-t THREADS] [--KEY VALUE]...\n"
               "  -c FILE   configuration file (YAML); flags override it\n"
               "  -d        foreground, plain log lines on stderr (shieldd never forks; without\n"
               "            -d, lines get journald priorities when stderr is the journal)\n"
               "  -n        check the configuration, the model and the policies, then exit\n"
               "  -v        more verbose (repeatable)\n"
               "  -m, -p, -t: --model, --policies, --threads; -s PATH: --listen unix:PATH;\n"
               "  -l HOST:PORT: --listen tcp:HOST:PORT\n"
               "keys (in the file, or as --KEY VALUE / --KEY=VALUE / --no-KEY):\n");
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct config_key *k = &keys[i];
        const char *p = (const char *)&d + k->offset;
        char def[160];

        switch (k->type) {
        case K_STRING:
            snprintf(def, sizeof def, "%s", *(char *const *)p);
            break;
        case K_INT:
            snprintf(def, sizeof def, "%d", *(const int *)p);
            break;
        case K_BOOL:
            snprintf(def, sizeof def, "%s", *(const int *)p ? "true" : "false");
            break;
        case K_MODE:
            snprintf(def, sizeof def, "%04o", (unsigned)*(const int *)p);
            break;
        case K_LONG_SIZE:
            if (*(const long *)p < 0)
                snprintf(def, sizeof def, "auto");
            else
                snprintf(def, sizeof def, "%ld", *(const long *)p);
            break;
        case K_DURATION:
            snprintf(def, sizeof def, "%gs", *(const double *)p);
            break;
        case K_LISTEN:
            snprintf(def, sizeof def, "%s %s", d.listen[0], d.n_listen > 1 ? d.listen[1] : "");
            break;
        }
        fprintf(f, "  %-18s %s (default: %s)\n", k->name, k->help, def);
    }
    config_free(&d);
}
