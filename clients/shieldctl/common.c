/* common.c: shared shieldctl helpers (see common.h). */
#include "common.h"

#include <stdlib.h>
#include <string.h>

int ctl_read_text(const char *arg, char **out, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    size_t cap = 0;

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
    for (;;) {
        size_t got;

        if (cap - n < 4096) {
            size_t nc = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, nc + 1);

            if (!nb) {
                free(buf);
                fprintf(stderr, "shieldctl: out of memory reading stdin\n");
                return -1;
            }
            buf = nb;
            cap = nc;
        }
        got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        fprintf(stderr, "shieldctl: error reading stdin\n");
        return -1;
    }
    if (memchr(buf, '\0', n)) {
        free(buf);
        fprintf(stderr, "shieldctl: stdin contains a NUL byte\n");
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
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
    if (as_json) {
        char *s = json_dumps(reply, JSON_COMPACT | JSON_REAL_PRECISION(17));

        if (!s)
            return -1;
        fprintf(f, "%s\n", s);
        free(s);
        return 0;
    }
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
