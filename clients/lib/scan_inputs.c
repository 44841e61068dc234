/* scan_inputs.c: input names and glob patterns to a list of files (see scan_inputs.h). */
#include "scan_inputs.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int push(sg_scan_paths *p, const char *s, size_t *cap)
{
    if (p->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        char **nv = realloc(p->v, nc * sizeof *nv);

        if (!nv)
            return -1;
        p->v = nv;
        *cap = nc;
    }
    p->v[p->n] = strdup(s);
    if (!p->v[p->n])
        return -1;
    p->n++;
    return 0;
}

int sg_scan_paths_expand(const char *const *names, size_t n, sg_scan_paths *out, char *err,
                         size_t errlen)
{
    size_t cap = 0;

    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        glob_t g;
        int rc;

        if (!strpbrk(names[i], "*?[")) {
            if (push(out, names[i], &cap) < 0)
                goto oom;
            continue;
        }
        memset(&g, 0, sizeof g);
        rc = glob(names[i], GLOB_ERR, NULL, &g);
        if (rc == GLOB_NOMATCH) {
            snprintf(err, errlen, "no file matches '%.200s'", names[i]);
            globfree(&g);
            goto fail;
        }
        if (rc != 0) {
            snprintf(err, errlen, "'%.200s': %s", names[i],
                     rc == GLOB_NOSPACE ? "out of memory" : "cannot read a folder");
            globfree(&g);
            goto fail;
        }
        for (size_t k = 0; k < g.gl_pathc; k++) {
            if (push(out, g.gl_pathv[k], &cap) < 0) {
                globfree(&g);
                goto oom;
            }
        }
        globfree(&g);
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    sg_scan_paths_free(out);
    return -1;
}

void sg_scan_paths_free(sg_scan_paths *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i]);
    free(p->v);
    p->v = NULL;
    p->n = 0;
}
