/* file.c: the one reader of small whole files (see file.h). */
#include "file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sg_engine.h"

int sg_read_file(const char *path, size_t max, char **buf, size_t *len, char *err,
                 size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    char *b;
    size_t got;

    *buf = NULL;
    *len = 0;
    if (f == NULL)
        return sg_errf(err, errlen, SG_EIO, path, "cannot open: %s", strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return sg_errf(err, errlen, SG_EIO, path, "not a regular file");
    }
    if ((unsigned long long)st.st_size > (unsigned long long)max) {
        fclose(f);
        return sg_errf(err, errlen, SG_ERANGE, path, "%lld bytes, more than the %zu accepted",
                       (long long)st.st_size, max);
    }
    b = malloc((size_t)st.st_size + 1);
    if (b == NULL) {
        fclose(f);
        return sg_errf(err, errlen, SG_ENOMEM, path, "out of memory");
    }
    got = fread(b, 1, (size_t)st.st_size, f);
    if (got != (size_t)st.st_size || ferror(f)) {
        free(b);
        fclose(f);
        return sg_errf(err, errlen, SG_EIO, path, "read error");
    }
    fclose(f);
    b[got] = '\0';
    *buf = b;
    *len = got;
    return SG_OK;
}
