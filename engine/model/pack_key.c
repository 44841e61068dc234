/*
 * pack_key.c: the pack cache's key for a model (packcache.h stores and checks it; the model
 * builds it): the model files' identity (real path, size and mtime), the precision, and every
 * fast kernel's layout tag (fastmm.h), so that anything that changes packed bytes changes the
 * key.
 */
#include "model.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fastmm.h"
#include "packcache.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Append "file NAME SIZE MTIME\n" for `path` (shown as `label`). */
static int key_file(char *key, size_t cap, size_t *used, const char *path, const char *label)
{
    struct stat st;
    int n;

    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    n = snprintf(key + *used, cap - *used, "file %s %lld %lld.%09ld\n", label,
                 (long long)st.st_size, (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
    if (n < 0 || (size_t)n >= cap - *used)
        return -1;
    *used += (size_t)n;
    return 0;
}

static int is_model_file(const char *name)
{
    size_t n = strlen(name);

    return (n > 12 && strcmp(name + n - 12, ".safetensors") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".gguf") == 0) || strcmp(name, "config.json") == 0 ||
           strcmp(name, "model.safetensors.index.json") == 0;
}

int sg_model_pack_key(const char *path, sg_precision prec, char *key, size_t cap, char *err,
                      size_t errlen)
{
    char real[PATH_MAX];
    char full[PATH_MAX * 2];
    char layouts[512];
    struct stat st;
    size_t used = 0;
    int n;

    if (realpath(path, real) == NULL || stat(real, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return SG_EIO;
    }
    sg_fastmm_layouts(layouts, sizeof layouts);
    n = snprintf(key, cap, "shieldd pack cache %d\nmodel %s\nprecision %s\n%s",
                 SG_PACKCACHE_VERSION, real, sg_precision_name(prec), layouts);
    if (n < 0 || (size_t)n >= cap)
        goto range;
    used = (size_t)n;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(real);
        struct dirent *de;
        char **names = NULL;
        size_t nn = 0, cn = 0;
        int bad = 0;

        if (d == NULL) {
            snprintf(err, errlen, "%s: %s", real, strerror(errno));
            return SG_EIO;
        }
        while ((de = readdir(d)) != NULL && !bad) {
            if (!is_model_file(de->d_name))
                continue;
            if (nn == cn) {
                size_t c = cn ? cn * 2 : 16;
                char **t = realloc(names, c * sizeof *t);

                if (t == NULL) {
                    bad = 1;
                    break;
                }
                names = t;
                cn = c;
            }
            if ((names[nn] = strdup(de->d_name)) == NULL)
                bad = 1;
            else
                nn++;
        }
        closedir(d);
        if (!bad && nn > 0)
            qsort(names, nn, sizeof *names, cmp_str);
        for (size_t i = 0; i < nn; i++) {
            snprintf(full, sizeof full, "%s/%s", real, names[i]);
            if (!bad && key_file(key, cap, &used, full, names[i]) != 0)
                bad = 2;
            free(names[i]);
        }
        free(names);
        if (bad == 1) {
            snprintf(err, errlen, "%s: out of memory", real);
            return SG_ENOMEM;
        }
        if (bad == 2)
            goto range;
    } else {
        const char *slash = strrchr(real, '/');

        if (key_file(key, cap, &used, real, real) != 0)
            goto range;
        snprintf(full, sizeof full, "%.*s/config.json", (int)(slash - real), real);
        if (key_file(key, cap, &used, full, "config.json") != 0)
            goto range;
    }
    return SG_OK;
range:
    snprintf(err, errlen, "%s: pack cache key longer than %zu bytes", path, cap);
    return SG_ERANGE;
}
