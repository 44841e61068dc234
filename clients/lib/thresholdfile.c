/* thresholdfile.c: rewrite a policy file's threshold line (see thresholdfile.h). */
#include "thresholdfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY "threshold:"

/* Offsets of the value on the threshold line starting at `line`: [*v0, *v1). */
static void value_span(const char *text, size_t len, size_t line, size_t *v0, size_t *v1)
{
    size_t i = line + strlen(KEY);

    while (i < len && (text[i] == ' ' || text[i] == '\t'))
        i++;
    *v0 = i;
    while (i < len && text[i] != ' ' && text[i] != '\t' && text[i] != '#' && text[i] != '\n' &&
           text[i] != '\r')
        i++;
    *v1 = i;
}

int sg_threshold_rewrite(const char *text, size_t len, const char *value, char **out,
                         size_t *out_len, char **old, char *err, size_t errlen)
{
    size_t found = (size_t)-1;
    size_t found_no = 0;
    size_t line_no = 1;
    size_t v0;
    size_t v1;
    size_t vlen = strlen(value);
    char *o;

    *out = NULL;
    if (old)
        *old = NULL;
    for (size_t i = 0; i < len; line_no++) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) + 1 : len;

        if (end - i >= strlen(KEY) && memcmp(text + i, KEY, strlen(KEY)) == 0) {
            if (found != (size_t)-1) {
                snprintf(err, errlen, "more than one 'threshold:' line (lines %zu and %zu)",
                         found_no, line_no);
                return -2;
            }
            found = i;
            found_no = line_no;
        }
        i = end;
    }
    if (found == (size_t)-1) {
        snprintf(err, errlen, "no top-level 'threshold:' line to rewrite");
        return -2;
    }
    value_span(text, len, found, &v0, &v1);
    /* "threshold:" right before the value needs a space (YAML); keep existing spacing. */
    o = malloc(len - (v1 - v0) + vlen + 2);
    if (!o)
        return -1;
    memcpy(o, text, v0);
    *out_len = v0;
    if (v0 == found + strlen(KEY))
        o[(*out_len)++] = ' ';
    memcpy(o + *out_len, value, vlen);
    *out_len += vlen;
    memcpy(o + *out_len, text + v1, len - v1);
    *out_len += len - v1;
    o[*out_len] = '\0';
    if (old) {
        *old = strndup(text + v0, v1 - v0);
        if (!*old) {
            free(o);
            return -1;
        }
    }
    *out = o;
    return 0;
}
