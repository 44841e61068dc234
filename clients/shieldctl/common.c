/* common.c: shared shieldctl helpers (see common.h). */
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int ctl_read_stream(FILE *f, char **out, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    size_t cap = 0;

    *out = NULL;
    *len = 0;
    for (;;) {
        size_t got;

        if (cap - n < 4096) {
            size_t nc = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, nc + 1);

            if (!nb) {
                free(buf);
                return SG_ENOMEM;
            }
            buf = nb;
            cap = nc;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        return SG_EIO;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int ctl_read_text(const char *arg, char **out, size_t *len)
{
    int rc;

    *out = NULL;
    *len = 0;
    if (strcmp(arg, "-") != 0) {
        *out = strdup(arg);
        if (!*out) {
            fprintf(stderr, "shieldctl: out of memory\n");
            return -1;
        }
        *len = strlen(arg);
        return 0;
    }
    rc = ctl_read_stream(stdin, out, len);
    if (rc < 0) {
        fprintf(stderr, "shieldctl: %s\n",
                rc == SG_ENOMEM ? "out of memory reading stdin" : "error reading stdin");
        return -1;
    }
    if (memchr(*out, '\0', *len)) {
        free(*out);
        *out = NULL;
        *len = 0;
        fprintf(stderr, "shieldctl: stdin contains a NUL byte\n");
        return -1;
    }
    return 0;
}

int ctl_parse_int(const char *cmd, const char *opt, const char *s, int lo, int hi, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        if (hi == INT_MAX)
            fprintf(stderr, "shieldctl %s: %s wants an integer >= %d, not '%s'\n", cmd, opt, lo,
                    s);
        else
            fprintf(stderr, "shieldctl %s: %s wants an integer in [%d, %d], not '%s'\n", cmd,
                    opt, lo, hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int ctl_parse_double(const char *cmd, const char *opt, const char *s, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    if (errno || *end || end == s) {
        fprintf(stderr, "shieldctl %s: %s wants a number, not '%s'\n", cmd, opt, s);
        return -1;
    }
    return 0;
}

int ctl_tok_open(const char *cmd, const char *path, sg_tok **out)
{
    char err[1024] = "";
    int rc = sg_tok_open(out, path, err, sizeof err);

    if (rc < 0) {
        fprintf(stderr, "shieldctl %s: %s\n", cmd, err[0] ? err : sg_engine_strerror(rc));
        return -1;
    }
    return 0;
}

int ctl_load(const char *cmd, const char *dir, const char *model_path, const sg_model_opts *mo,
             const sg_moderate_opts *opts, sg_policy_set **set, sg_model **model,
             sg_moderator **mod)
{
    char err[1024] = "";

    if (set && sg_policy_set_load(set, dir, err, sizeof err) < 0)
        goto fail;
    if (model && sg_model_open(model, model_path, mo, err, sizeof err) < 0)
        goto fail;
    if (mod && sg_moderator_new(mod, *model, opts, err, sizeof err) < 0)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "shieldctl %s: %s\n", cmd, err);
    return -1;
}

int ctl_print_json(FILE *f, const json_t *j, size_t flags)
{
    char *s = json_dumps(j, flags);

    if (!s)
        return -1;
    fprintf(f, "%s\n", s);
    free(s);
    return 0;
}

int ctl_print_classify(FILE *f, json_t *reply, int as_json)
{
    json_t *results = json_object_get(reply, "results");
    json_t *usage = json_object_get(reply, "usage");
    json_t *r;
    size_t i;

    if (!json_is_array(results))
        return -1;
    if (as_json)
        return ctl_print_json(f, reply, JSON_COMPACT | JSON_REAL_PRECISION(17));
    fprintf(f, "model: %s\n", json_string_value(json_object_get(reply, "model"))
                                  ? json_string_value(json_object_get(reply, "model"))
                                  : "?");
    fprintf(f, "%-20s %11s %9s  %s\n", "policy", "probability", "threshold", "verdict");
    json_array_foreach(results, i, r) {
        const char *name = json_string_value(json_object_get(r, "policy"));

        fprintf(f, "%-20s %11.4f %9.2f  %s\n", name ? name : "?",
                json_number_value(json_object_get(r, "probability")),
                json_number_value(json_object_get(r, "threshold")),
                json_is_true(json_object_get(r, "violation")) ? "VIOLATION" : "ok");
    }
    fprintf(f, "flagged: %s", json_is_true(json_object_get(reply, "flagged")) ? "yes" : "no");
    if (json_is_object(usage))
        fprintf(f, "   prompt tokens: %lld   computed tokens: %lld",
                (long long)json_integer_value(json_object_get(usage, "prompt_tokens")),
                (long long)json_integer_value(json_object_get(usage, "computed_tokens")));
    if (json_is_true(json_object_get(reply, "truncated")))
        fprintf(f, "   (input truncated)");
    fprintf(f, "\n");
    return 0;
}
