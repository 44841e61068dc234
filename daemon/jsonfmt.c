/*
 * jsonfmt.c: see jsonfmt.h. The rewrite walks jansson's output: outside strings, a number
 * token with a '.' or an exponent is a real (jansson gives every real one), and it is parsed
 * back and printed again at the smallest precision that round-trips.
 */
#include "jsonfmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t json_real_shortest(double v, char *buf, size_t cap)
{
    int n = 0;

    for (int p = 1; p <= 17; p++) {
        n = snprintf(buf, cap, "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    if (n < 0 || (size_t)n >= cap)
        return 0;
    if (strpbrk(buf, ".eEn") == NULL && (size_t)n + 2 < cap) {
        memcpy(buf + n, ".0", 3); /* still a real: 1.0, not 1 */
        n += 2;
    }
    return (size_t)n;
}

char *json_dumps_shortest(const json_t *root, size_t flags)
{
    char *in = json_dumps(root, flags);
    char *out;
    size_t o = 0;
    int in_str = 0;

    if (in == NULL)
        return NULL;
    /* A rewritten real is never longer than jansson's %.17g form of it. */
    out = malloc(strlen(in) + 1);
    if (out == NULL) {
        free(in);
        return NULL;
    }
    for (size_t i = 0; in[i] != '\0';) {
        size_t k;

        if (in_str || in[i] == '"') {
            if (in_str && in[i] == '\\' && in[i + 1] != '\0') {
                out[o++] = in[i++];
            } else if (in[i] == '"') {
                in_str = !in_str;
            }
            out[o++] = in[i++];
            continue;
        }
        k = strspn(in + i, "-+0123456789.eE");
        if (k == 0) {
            out[o++] = in[i++];
            continue;
        }
        if (memchr(in + i, '.', k) || memchr(in + i, 'e', k) || memchr(in + i, 'E', k)) {
            char tok[64], buf[40];
            size_t n = 0;

            if (k < sizeof tok) {
                memcpy(tok, in + i, k);
                tok[k] = '\0';
                n = json_real_shortest(strtod(tok, NULL), buf, sizeof buf);
            }
            if (n > 0 && n <= k) {
                memcpy(out + o, buf, n);
                o += n;
                i += k;
                continue;
            }
        }
        memcpy(out + o, in + i, k);
        o += k;
        i += k;
    }
    out[o] = '\0';
    free(in);
    return out;
}
