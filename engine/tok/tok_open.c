/*
 * tok_open.c: sg_tok_open's choice of loader: tok_json.c (tokenizer.json), tok_spm.c
 * (tokenizer.model) or tok_gguf.c (GGUF metadata), by folder contents, file magic or suffix.
 */
#include "tok_load.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "sg_engine.h"

/* ---- Opening ------------------------------------------------------------------------------ */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int is_file(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Sniff a file's format from its first bytes: 'j'son, 'g'guf, or 's'entencepiece protobuf. */
static int sniff(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char b[4] = {0};
    size_t n;

    if (!f)
        return 0;
    n = fread(b, 1, 4, f);
    fclose(f);
    if (n == 4 && memcmp(b, "GGUF", 4) == 0)
        return 'g';
    for (size_t i = 0; i < n; i++) {
        if (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n')
            continue;
        if (b[i] == '{')
            return 'j';
        break;
    }
    return n > 0 && b[0] == 0x0a ? 's' : 0;
}

int sg_tok_open(sg_tok **out, const char *path, char *err, size_t errlen)
{
    struct stat st;
    char p[4096];
    int kind;

    if (!out || !path)
        return sg_errf(err, errlen, SG_EINVAL, NULL, "sg_tok_open: NULL argument");
    *out = NULL;
    if (stat(path, &st) != 0)
        return sg_errf(err, errlen, SG_EIO, NULL, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if ((size_t)snprintf(p, sizeof p, "%s/tokenizer.json", path) >= sizeof p)
            return sg_errf(err, errlen, SG_EINVAL, NULL, "%s: path too long", path);
        if (is_file(p))
            return tok_load_json(out, p, err, errlen);
        snprintf(p, sizeof p, "%s/tokenizer.model", path);
        if (is_file(p))
            return tok_load_spm(out, p, err, errlen);
        return sg_errf(err, errlen, SG_EIO, NULL,
                       "%s: no tokenizer.json or tokenizer.model in this folder", path);
    }
    kind = sniff(path);
    if (kind == 'g' || (kind == 0 && ends_with(path, ".gguf")))
        return tok_load_gguf(out, path, err, errlen);
    if (kind == 'j' || (kind == 0 && ends_with(path, ".json")))
        return tok_load_json(out, path, err, errlen);
    if (kind == 's' || ends_with(path, ".model"))
        return tok_load_spm(out, path, err, errlen);
    return sg_errf(err, errlen, SG_EFORMAT, NULL,
                   "%s: not a tokenizer.json, tokenizer.model or GGUF file", path);
}
