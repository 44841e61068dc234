/* engine_fixtures.c: see engine_fixtures.h. */
#include "engine_fixtures.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *fx_top(void)
{
    const char *top = getenv("SG_TOP");

    return top && *top ? top : ".";
}

void fx_path(char *buf, size_t cap, const char *rel)
{
    snprintf(buf, cap, "%s/tests/fixtures/%s", fx_top(), rel);
}

unsigned char *fx_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long size;

    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    ck_assert_int_ge(size, 0);
    rewind(f);
    buf = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    buf[size] = 0;
    fclose(f);
    *len = (size_t)size;
    return buf;
}

char *fx_slurp(const char *rel, size_t *len)
{
    char path[1024];
    size_t n;

    snprintf(path, sizeof path, "%s/%s", fx_top(), rel);
    return (char *)fx_read(path, len ? len : &n);
}

json_t *fx_st_read(const char *rel, unsigned char **file, size_t *len, uint64_t *hlen)
{
    char path[4096];
    json_error_t je;
    json_t *hdr;

    fx_path(path, sizeof path, rel);
    *file = fx_read(path, len);
    ck_assert_uint_ge(*len, 8);
    *hlen = 0;
    for (int i = 7; i >= 0; i--)
        *hlen = *hlen << 8 | (*file)[i];
    ck_assert_uint_le(*hlen, *len - 8);
    hdr = json_loadb((const char *)*file + 8, *hlen, 0, &je);
    ck_assert_msg(hdr != NULL, "%s: %s", path, je.text);
    return hdr;
}

void fx_st_write(const char *path, const json_t *hdr, const void *data, size_t n)
{
    char *h = json_dumps(hdr, JSON_COMPACT);
    size_t hl;
    unsigned char *out;

    ck_assert_ptr_nonnull(h);
    hl = strlen(h);
    out = malloc(8 + hl + n);
    ck_assert_ptr_nonnull(out);
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(out + 8, h, hl);
    if (n)
        memcpy(out + 8 + hl, data, n);
    fx_write(path, out, 8 + hl + n);
    free(out);
    free(h);
}

void fx_check_tiny_a_info(const sg_model_info *i)
{
    ck_assert_str_eq(i->arch, "gemma2");
    ck_assert_int_eq(i->n_vocab, 4096);
    ck_assert_int_eq(i->d_model, 64);
    ck_assert_int_eq(i->n_layer, 2);
    ck_assert_int_eq(i->n_head, 4);
    ck_assert_int_eq(i->n_kv_head, 2);
    ck_assert_int_eq(i->head_dim, 16);
    ck_assert_int_eq(i->d_ff, 128);
    ck_assert_int_eq(i->sliding_window, 8);
    ck_assert(i->query_scale == 0.25f); /* query_pre_attn_scalar 16 = head_dim */
    ck_assert(i->attn_softcap == 50.0f);
    ck_assert(i->final_softcap == 30.0f);
    ck_assert(i->embed_scale == 8.0f);
    ck_assert_int_eq(i->bos_id, 2);
}

void fx_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

void fx_put(const char *dir, const char *name, const char *text)
{
    char path[1024];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    fx_write(path, text, strlen(text));
}

void fx_copy(const char *from, const char *to)
{
    size_t len;
    unsigned char *b = fx_read(from, &len);

    fx_write(to, b, len);
    free(b);
}

size_t fx_prompt_ids(int32_t *ids, size_t cap)
{
    char path[4096];
    size_t len;
    size_t n = 0;
    char *p;
    char *text;

    fx_path(path, sizeof path, "tiny-a/prompt.ids");
    text = (char *)fx_read(path, &len);
    p = text;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) {
            p++;
            continue;
        }
        ck_assert_uint_lt(n, cap);
        ids[n++] = (int32_t)v;
        p = end;
    }
    free(text);
    return n;
}

double *fx_golden(const char *rel, size_t *n_pos, size_t *n_vocab)
{
    char path[4096];
    size_t len;
    char *text;
    char *p;
    double *out;
    size_t n_tok = 0;
    size_t nv = 0;
    size_t rows = 0;
    size_t k = 0;

    fx_path(path, sizeof path, rel);
    text = (char *)fx_read(path, &len);
    p = strstr(text, "n_tokens ");
    ck_assert_ptr_nonnull(p);
    n_tok = strtoul(p + 9, NULL, 10);
    p = strstr(text, "n_vocab ");
    ck_assert_ptr_nonnull(p);
    nv = strtoul(p + 8, NULL, 10);
    ck_assert(n_tok > 0 && nv > 0);
    out = malloc(n_tok * nv * sizeof *out);
    ck_assert_ptr_nonnull(out);
    while ((p = strstr(p, "logits ")) != NULL) {
        p = strchr(p, '\n');
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_lt(rows, n_tok);
        for (size_t i = 0; i < nv; i++) {
            char *end;
            out[k++] = strtod(p, &end);
            ck_assert_ptr_ne(end, p);
            p = end;
        }
        rows++;
    }
    free(text);
    *n_pos = rows;
    *n_vocab = nv;
    return out;
}

void fx_tmpdir(char *buf, size_t cap)
{
    const char *t = getenv("TMPDIR");

    snprintf(buf, cap, "%s/sgtest-XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

void fx_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}
