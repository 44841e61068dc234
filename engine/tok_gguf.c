/*
 * tok_gguf.c: load the tokenizer from GGUF metadata (tokenizer.ggml.*), as llama.cpp's
 * converter writes it for Gemma: tokenizer.ggml.model "llama" (SentencePiece BPE), tokens,
 * scores, token_type (SentencePiece types), bos/eos/unknown ids, add_space_prefix.
 *
 * Only the metadata section is read (the file is mapped read-only; tensor data is never
 * touched). Every length, count and offset is checked against the file size.
 *
 * llama.cpp's converter stores added tokens that tokenizer_config.json flags special (and those
 * that look special: <mask>, <unusedN>, ...) as CONTROL, and the others as USER_DEFINED with
 * U+2581 turned back into ' '. So here CONTROL and UNKNOWN are the special tokens, and a
 * USER_DEFINED piece gets its U+2581 back before it is matched in the normalized text.
 */
#include "tok_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sg_engine.h"

enum {
    GT_U8 = 0, GT_I8, GT_U16, GT_I16, GT_U32, GT_I32, GT_F32, GT_BOOL, GT_STRING, GT_ARRAY,
    GT_U64, GT_I64, GT_F64, GT_COUNT
};

struct rd {
    const uint8_t *p, *end;
};

static int rd_u32(struct rd *r, uint32_t *v)
{
    if (r->end - r->p < 4)
        return -1;
    memcpy(v, r->p, 4);
    r->p += 4;
    return 0;
}

static int rd_u64(struct rd *r, uint64_t *v)
{
    if (r->end - r->p < 8)
        return -1;
    memcpy(v, r->p, 8);
    r->p += 8;
    return 0;
}

static int rd_str(struct rd *r, const char **s, size_t *n)
{
    uint64_t len;

    if (rd_u64(r, &len) != 0 || len > (uint64_t)(r->end - r->p))
        return -1;
    *s = (const char *)r->p;
    *n = (size_t)len;
    r->p += len;
    return 0;
}

static size_t type_size(uint32_t t)
{
    static const size_t sz[GT_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

    return t < GT_COUNT ? sz[t] : 0;
}

/* A located metadata value. */
struct val {
    uint32_t type;
    uint32_t arr_type; /* for arrays */
    uint64_t count;    /* for arrays */
    const uint8_t *data;
};

/* Skip a value of `type`, recording where it is. */
static int skip_val(struct rd *r, uint32_t type, struct val *v, int depth)
{
    v->type = type;
    v->data = r->p;
    if (type == GT_STRING) {
        const char *s;
        size_t n;

        return rd_str(r, &s, &n);
    }
    if (type == GT_ARRAY) {
        uint32_t at;
        uint64_t cnt;

        if (depth > 2 || rd_u32(r, &at) != 0 || rd_u64(r, &cnt) != 0)
            return -1;
        v->arr_type = at;
        v->count = cnt;
        v->data = r->p;
        if (at == GT_STRING || at == GT_ARRAY) {
            for (uint64_t i = 0; i < cnt; i++) {
                struct val tmp;

                if (skip_val(r, at, &tmp, depth + 1) != 0)
                    return -1;
            }
            return 0;
        }
        if (type_size(at) == 0 || cnt > (uint64_t)(r->end - r->p) / type_size(at))
            return -1;
        r->p += cnt * type_size(at);
        return 0;
    }
    if (type_size(type) == 0 || (size_t)(r->end - r->p) < type_size(type))
        return -1;
    r->p += type_size(type);
    return 0;
}

static int val_int(const struct val *v, int64_t *out)
{
    switch (v->type) {
    case GT_U8: *out = v->data[0]; return 0;
    case GT_I8: *out = (int8_t)v->data[0]; return 0;
    case GT_U16: { uint16_t x; memcpy(&x, v->data, 2); *out = x; return 0; }
    case GT_I16: { int16_t x; memcpy(&x, v->data, 2); *out = x; return 0; }
    case GT_U32: { uint32_t x; memcpy(&x, v->data, 4); *out = x; return 0; }
    case GT_I32: { int32_t x; memcpy(&x, v->data, 4); *out = x; return 0; }
    case GT_U64: { uint64_t x; memcpy(&x, v->data, 8); *out = (int64_t)(x > INT64_MAX ? -1 : (int64_t)x); return 0; }
    case GT_I64: { int64_t x; memcpy(&x, v->data, 8); *out = x; return 0; }
    case GT_BOOL: *out = v->data[0] != 0; return 0;
    default: return -1;
    }
}

int tok_load_gguf_mem(struct sg_tok **out, const uint8_t *buf, size_t n, const char *name,
                      char *err, size_t errlen)
{
    struct rd r = {buf, buf + n};
    uint32_t version = 0;
    uint64_t n_tensors, n_kv;
    struct val tokens = {0}, scores = {0}, types = {0};
    int have_tokens = 0, have_scores = 0, have_types = 0;
    char model[32] = "";
    struct tok_spm_opts o;
    struct tok_spm_piece *pieces = NULL;
    char *pool = NULL;
    size_t pool_n = 0;
    int rc;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    memset(&o, 0, sizeof o);
    o.unk_id = -1;
    o.bos_id = -1;
    o.eos_id = -1;
    o.escape_ws = 1;
    if (n < 24 || memcmp(buf, "GGUF", 4) != 0)
        return tok_fail(SG_EFORMAT, err, errlen, "%s: not a GGUF file", name);
    r.p += 4;
    if (rd_u32(&r, &version) != 0 || version < 2 || version > 3)
        return tok_fail(SG_EUNSUPPORTED, err, errlen, "%s: GGUF version %u is not 2 or 3", name,
                        (unsigned)version);
    if (rd_u64(&r, &n_tensors) != 0 || rd_u64(&r, &n_kv) != 0 || n_kv > n)
        return tok_fail(SG_EFORMAT, err, errlen, "%s: truncated GGUF header", name);
    for (uint64_t i = 0; i < n_kv; i++) {
        const char *key;
        size_t klen;
        uint32_t type;
        struct val v;

        if (rd_str(&r, &key, &klen) != 0 || rd_u32(&r, &type) != 0 ||
            skip_val(&r, type, &v, 0) != 0)
            return tok_fail(SG_EFORMAT, err, errlen,
                            "%s: metadata entry %llu is truncated or malformed", name,
                            (unsigned long long)i);
#define KEY(s) (klen == sizeof(s) - 1 && memcmp(key, s, klen) == 0)
        if (KEY("tokenizer.ggml.model") && type == GT_STRING) {
            const uint8_t *save = r.p;
            const char *s = "";
            size_t sn = 0;

            r.p = v.data;
            rd_str(&r, &s, &sn);
            r.p = save;
            snprintf(model, sizeof model, "%.*s", (int)(sn < 31 ? sn : 31), s);
        } else if (KEY("tokenizer.ggml.tokens") && type == GT_ARRAY && v.arr_type == GT_STRING) {
            tokens = v;
            have_tokens = 1;
        } else if (KEY("tokenizer.ggml.scores") && type == GT_ARRAY && v.arr_type == GT_F32) {
            scores = v;
            have_scores = 1;
        } else if (KEY("tokenizer.ggml.token_type") && type == GT_ARRAY &&
                   v.arr_type == GT_I32) {
            types = v;
            have_types = 1;
        } else if (KEY("tokenizer.ggml.bos_token_id")) {
            val_int(&v, &o.bos_id);
        } else if (KEY("tokenizer.ggml.eos_token_id")) {
            val_int(&v, &o.eos_id);
        } else if (KEY("tokenizer.ggml.unknown_token_id")) {
            val_int(&v, &o.unk_id);
        } else if (KEY("tokenizer.ggml.add_space_prefix")) {
            int64_t b = 0;

            val_int(&v, &b);
            o.add_dummy_prefix = b != 0;
        } else if (KEY("tokenizer.ggml.remove_extra_whitespaces")) {
            int64_t b = 0;

            val_int(&v, &b);
            o.remove_extra_ws = b != 0;
        } else if (KEY("tokenizer.ggml.precompiled_charsmap")) {
            return tok_fail(SG_EUNSUPPORTED, err, errlen,
                            "%s: tokenizer.ggml.precompiled_charsmap is not supported", name);
        }
#undef KEY
    }
    if (!have_tokens)
        return tok_fail(SG_EFORMAT, err, errlen, "%s: no tokenizer.ggml.tokens", name);
    if (strcmp(model, "llama") != 0)
        return tok_fail(SG_EUNSUPPORTED, err, errlen,
                        "%s: tokenizer.ggml.model '%s' is not 'llama' (SentencePiece)", name,
                        model);
    if (tokens.count == 0 || tokens.count > (1u << 24))
        return tok_fail(SG_EFORMAT, err, errlen, "%s: %llu tokens", name,
                        (unsigned long long)tokens.count);
    if ((have_scores && scores.count != tokens.count) ||
        (have_types && types.count != tokens.count))
        return tok_fail(SG_EFORMAT, err, errlen,
                        "%s: tokens, scores and token_type differ in length", name);
    pieces = calloc((size_t)tokens.count, sizeof *pieces);
    if (!pieces)
        return tok_fail(SG_ENOMEM, err, errlen, "%s: out of memory", name);
    r.p = tokens.data;
    for (size_t i = 0; i < tokens.count; i++) {
        struct tok_spm_piece *p = &pieces[i];
        int32_t ty = SPT_NORMAL;

        rd_str(&r, &p->s, &p->n); /* bounds were checked by skip_val */
        if (have_scores)
            memcpy(&p->score, scores.data + 4 * i, 4);
        if (have_types)
            memcpy(&ty, types.data + 4 * i, 4);
        if (ty < SPT_NORMAL || ty > SPT_BYTE) {
            rc = tok_fail(SG_EFORMAT, err, errlen, "%s: token %zu has unknown type %ld", name, i,
                          (long)ty);
            goto done;
        }
        p->type = ty;
        if (ty == SPT_BYTE)
            o.byte_fallback = 1;
        if (ty == SPT_USER && memchr(p->s, ' ', p->n))
            pool_n += 3 * p->n;
    }
    if (pool_n) {
        /* undo the converter's U+2581 -> ' ' in user-defined pieces */
        char *q;

        pool = malloc(pool_n);
        if (!pool) {
            rc = tok_fail(SG_ENOMEM, err, errlen, "%s: out of memory", name);
            goto done;
        }
        q = pool;
        for (size_t i = 0; i < tokens.count; i++) {
            struct tok_spm_piece *p = &pieces[i];
            char *start = q;

            if (p->type != SPT_USER || !memchr(p->s, ' ', p->n))
                continue;
            for (size_t k = 0; k < p->n; k++) {
                if (p->s[k] == ' ') {
                    memcpy(q, "\xe2\x96\x81", 3);
                    q += 3;
                } else {
                    *q++ = p->s[k];
                }
            }
            p->s = start;
            p->n = (size_t)(q - start);
        }
    }
    o.turn_markers_special = 0; /* the converter already typed them CONTROL */
    rc = tok_build_spm(out, pieces, (size_t)tokens.count, &o, NULL, 0, name, err, errlen);
    if (rc == SG_OK)
        snprintf((*out)->source, sizeof(*out)->source, "gguf");
done:
    free(pool);
    free(pieces);
    return rc;
}

int tok_load_gguf(struct sg_tok **out, const char *path, char *err, size_t errlen)
{
    struct stat st;
    void *map;
    int fd, rc;

    *out = NULL;
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return tok_fail(SG_EIO, err, errlen, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 24) {
        close(fd);
        return tok_fail(SG_EFORMAT, err, errlen, "%s: not a GGUF file", path);
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return tok_fail(SG_EIO, err, errlen, "%s: mmap: %s", path, strerror(errno));
    rc = tok_load_gguf_mem(out, map, (size_t)st.st_size, path, err, errlen);
    munmap(map, (size_t)st.st_size);
    return rc;
}
