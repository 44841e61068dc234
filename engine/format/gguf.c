/*
 * gguf.c: a GGUF v2/v3 reader over a read-only buffer (usually a private mmap of the file). It
 * knows the container, not the model: model/gguf_gemma.c reads Gemma out of it.
 *
 * File layout (little-endian):
 *   "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x   { string key | u32 type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to general.alignment (u32, a power of two, default 32) | data section
 * where a string is u64 length + bytes (no NUL) and an array value is u32 element type +
 * u64 count + elements. Tensor offsets are relative to the data section and aligned.
 *
 * The parser walks the buffer once through a bounds-checked cursor and records offsets; it
 * rejects anything it cannot vouch for, so the accessors can read without further checks.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sg_engine.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 256 /* tensor names (ggml uses 64) */
#define GGUF_MAX_KEY 65535

typedef struct kv {
    char *key;            /* NUL-terminated copy */
    uint32_t type;
    size_t off;           /* scalars: the value; strings: the u64 length; arrays: first element */
    uint32_t elem_type;   /* arrays only */
    uint64_t count;       /* arrays only */
    size_t *str_offs;     /* arrays of strings: offset of each element's u64 length */
} kv;

struct sg_gguf {
    char *name;
    const uint8_t *buf;
    size_t size;
    void *map;            /* our own mapping, or NULL for sg_gguf_open_mem */
    size_t map_size;
    uint32_t version;
    size_t alignment;
    size_t n_kv;
    kv *kvs;
    size_t *by_key;       /* indices of kvs sorted by key, for lookups and duplicate checks */
    size_t n_tensors;
    sg_gguf_tensor *tensors;
    char **tensor_names;  /* owned copies, tensors[i].name points at them */
    size_t data_off;
};

/* ---- ggml tensor types ---------------------------------------------------------------------- */

static const struct {
    const char *name;
    uint32_t block;       /* 0: not a type number ggml defines */
    uint32_t block_bytes;
    int dtype;            /* sg_dtype, or -1 */
} ggml_types[] = {
    [0] = {"F32", 1, 4, SG_DT_F32},
    [1] = {"F16", 1, 2, SG_DT_F16},
    [2] = {"Q4_0", 32, 18, SG_DT_Q4_0},
    [3] = {"Q4_1", 32, 20, -1},
    [6] = {"Q5_0", 32, 22, -1},
    [7] = {"Q5_1", 32, 24, -1},
    [8] = {"Q8_0", 32, 34, SG_DT_Q8_0},
    [9] = {"Q8_1", 32, 36, -1},
    [10] = {"Q2_K", 256, 84, -1},
    [11] = {"Q3_K", 256, 110, -1},
    [12] = {"Q4_K", 256, 144, SG_DT_Q4_K},
    [13] = {"Q5_K", 256, 176, SG_DT_Q5_K},
    [14] = {"Q6_K", 256, 210, SG_DT_Q6_K},
    [15] = {"Q8_K", 256, 292, -1},
    [16] = {"IQ2_XXS", 256, 66, -1},
    [17] = {"IQ2_XS", 256, 74, -1},
    [18] = {"IQ3_XXS", 256, 98, -1},
    [19] = {"IQ1_S", 256, 50, -1},
    [20] = {"IQ4_NL", 32, 18, -1},
    [21] = {"IQ3_S", 256, 110, -1},
    [22] = {"IQ2_S", 256, 82, -1},
    [23] = {"IQ4_XS", 256, 136, -1},
    [24] = {"I8", 1, 1, -1},
    [25] = {"I16", 1, 2, -1},
    [26] = {"I32", 1, 4, -1},
    [27] = {"I64", 1, 8, -1},
    [28] = {"F64", 1, 8, -1},
    [29] = {"IQ1_M", 256, 56, -1},
    [30] = {"BF16", 1, 2, SG_DT_BF16},
    [34] = {"TQ1_0", 256, 54, -1},
    [35] = {"TQ2_0", 256, 66, -1},
    [39] = {"MXFP4", 32, 17, -1},
};
#define N_GGML_TYPES (sizeof ggml_types / sizeof ggml_types[0])

static int ggml_type_known(uint32_t t)
{
    return t < N_GGML_TYPES && ggml_types[t].block != 0;
}

const char *sg_gguf_ggml_type_name(uint32_t t)
{
    return ggml_type_known(t) ? ggml_types[t].name : "?";
}

/* ---- metadata value types ------------------------------------------------------------------- */

static const char *const type_names[SG_GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};
/* Bytes of a scalar value (0 for string and array). */
static const uint8_t type_sizes[SG_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *sg_gguf_type_name(int type)
{
    return type >= 0 && type < SG_GGUF_TYPE_COUNT ? type_names[type] : "?";
}

static int type_is_int(uint32_t t)
{
    return t == SG_GGUF_U8 || t == SG_GGUF_I8 || t == SG_GGUF_U16 || t == SG_GGUF_I16 ||
           t == SG_GGUF_U32 || t == SG_GGUF_I32 || t == SG_GGUF_U64 || t == SG_GGUF_I64;
}

/* ---- little-endian loads -------------------------------------------------------------------- */

static uint16_t ld16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const uint8_t *p)
{
    return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

/* ---- errors --------------------------------------------------------------------------------- */

/* ---- the cursor ----------------------------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *b;
    size_t size;
    size_t pos;
    const char *file;
    char *err;
    size_t errlen;
} cursor;

static size_t left(const cursor *c)
{
    return c->size - c->pos;
}

/* Make sure `n` more bytes exist; `what` names them in the message. */
static int need(cursor *c, uint64_t n, const char *what)
{
    if (n > left(c))
        return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                       "truncated: %s needs %llu bytes at offset %zu, the file has %zu", what,
                       (unsigned long long)n, c->pos, c->size);
    return SG_OK;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what)
{
    int rc = need(c, 4, what);

    if (rc < 0)
        return rc;
    *v = ld32(c->b + c->pos);
    c->pos += 4;
    return SG_OK;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what)
{
    int rc = need(c, 8, what);

    if (rc < 0)
        return rc;
    *v = ld64(c->b + c->pos);
    c->pos += 8;
    return SG_OK;
}

/* A string: *off receives the offset of its bytes, *len their count. */
static int rd_str(cursor *c, size_t *off, uint64_t *len, const char *what)
{
    uint64_t n;
    int rc = rd_u64(c, &n, what);

    if (rc < 0)
        return rc;
    if (n > left(c))
        return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                       "%s: string length %llu at offset %zu runs past the end of the file "
                       "(%zu bytes left)",
                       what, (unsigned long long)n, c->pos - 8, left(c));
    *off = c->pos;
    *len = n;
    c->pos += (size_t)n;
    return SG_OK;
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);

    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* ---- parsing -------------------------------------------------------------------------------- */

/* Skip (validate) one value of scalar or string type `t`; arrays are handled by the caller. */
static int skip_value(cursor *c, uint32_t t, const char *key)
{
    if (t == SG_GGUF_STRING) {
        size_t off;
        uint64_t len;
        return rd_str(c, &off, &len, key);
    }
    return need(c, type_sizes[t], key);
}

static int parse_kv(cursor *c, kv *e)
{
    size_t koff;
    uint64_t klen;
    int rc;

    rc = rd_str(c, &koff, &klen, "metadata key");
    if (rc < 0)
        return rc;
    if (klen == 0 || klen > GGUF_MAX_KEY || memchr(c->b + koff, '\0', (size_t)klen))
        return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                       "metadata key at offset %zu: length %llu, or a NUL inside (expected "
                       "1..%d bytes of text)",
                       koff - 8, (unsigned long long)klen, GGUF_MAX_KEY);
    e->key = dup_bytes(c->b + koff, (size_t)klen);
    if (!e->key)
        return sg_errf(c->err, c->errlen, SG_ENOMEM, c->file, "out of memory");
    rc = rd_u32(c, &e->type, e->key);
    if (rc < 0)
        return rc;
    if (e->type >= SG_GGUF_TYPE_COUNT)
        return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                       "key '%s': unknown value type %u (expected 0..%d)", e->key, e->type,
                       SG_GGUF_TYPE_COUNT - 1);
    e->off = c->pos;
    if (e->type != SG_GGUF_ARRAY) {
        rc = skip_value(c, e->type, e->key);
        if (rc == SG_OK)
            c->pos += type_sizes[e->type]; /* strings moved the cursor already */
        return rc;
    }

    rc = rd_u32(c, &e->elem_type, e->key);
    if (rc < 0)
        return rc;
    if (e->elem_type >= SG_GGUF_TYPE_COUNT)
        return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                       "key '%s': unknown array element type %u (expected 0..%d)", e->key,
                       e->elem_type, SG_GGUF_TYPE_COUNT - 1);
    if (e->elem_type == SG_GGUF_ARRAY)
        return sg_errf(c->err, c->errlen, SG_EUNSUPPORTED, c->file,
                       "key '%s': arrays of arrays are not supported", e->key);
    rc = rd_u64(c, &e->count, e->key);
    if (rc < 0)
        return rc;
    /* Each element takes at least its scalar size, or 8 bytes for a string's length. */
    uint64_t min = e->elem_type == SG_GGUF_STRING ? 8 : type_sizes[e->elem_type];
    if (e->count > left(c) / min)
        return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                       "key '%s': array of %llu %s elements runs past the end of the file "
                       "(%zu bytes left)",
                       e->key, (unsigned long long)e->count, type_names[e->elem_type], left(c));
    e->off = c->pos;
    if (e->elem_type != SG_GGUF_STRING) {
        c->pos += (size_t)(e->count * min);
        return SG_OK;
    }
    e->str_offs = malloc((size_t)(e->count ? e->count : 1) * sizeof *e->str_offs);
    if (!e->str_offs)
        return sg_errf(c->err, c->errlen, SG_ENOMEM, c->file, "out of memory");
    for (uint64_t i = 0; i < e->count; i++) {
        size_t off;
        uint64_t len;

        e->str_offs[i] = c->pos;
        rc = rd_str(c, &off, &len, e->key);
        if (rc < 0)
            return rc;
    }
    return SG_OK;
}

static int cmp_name(const void *a, const void *b)
{
    const sg_gguf_tensor *x = *(const sg_gguf_tensor *const *)a;
    const sg_gguf_tensor *y = *(const sg_gguf_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_offset(const void *a, const void *b)
{
    const sg_gguf_tensor *x = *(const sg_gguf_tensor *const *)a;
    const sg_gguf_tensor *y = *(const sg_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int parse_tensor_info(cursor *c, sg_gguf *g, size_t i)
{
    sg_gguf_tensor *t = &g->tensors[i];
    size_t noff;
    uint64_t nlen;
    uint32_t nd;
    int rc;

    rc = rd_str(c, &noff, &nlen, "tensor name");
    if (rc < 0)
        return rc;
    if (nlen == 0 || nlen >= GGUF_MAX_NAME || memchr(c->b + noff, '\0', (size_t)nlen))
        return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                       "tensor %zu: name of %llu bytes at offset %zu (expected 1..%d bytes of "
                       "text)",
                       i, (unsigned long long)nlen, noff, GGUF_MAX_NAME - 1);
    g->tensor_names[i] = dup_bytes(c->b + noff, (size_t)nlen);
    if (!g->tensor_names[i])
        return sg_errf(c->err, c->errlen, SG_ENOMEM, c->file, "out of memory");
    t->name = g->tensor_names[i];
    rc = rd_u32(c, &nd, t->name);
    if (rc < 0)
        return rc;
    if (nd < 1 || nd > 4)
        return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                       "tensor '%s': %u dimensions (expected 1..4)", t->name, nd);
    t->n_dims = (int)nd;
    uint64_t nelem = 1;
    for (int d = 0; d < 4; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims)
            continue;
        rc = rd_u64(c, &t->ne[d], t->name);
        if (rc < 0)
            return rc;
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX / nelem)
            return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                           "tensor '%s': dimension %d is %llu (expected > 0, and a total "
                           "element count below 2^63)",
                           t->name, d, (unsigned long long)t->ne[d]);
        nelem *= t->ne[d];
    }
    rc = rd_u32(c, &t->ggml_type, t->name);
    if (rc < 0)
        return rc;
    if (!ggml_type_known(t->ggml_type))
        return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                       "tensor '%s': unknown tensor type %u", t->name, t->ggml_type);
    t->dtype = ggml_types[t->ggml_type].dtype;
    uint32_t block = ggml_types[t->ggml_type].block;
    if (t->ne[0] % block != 0)
        return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                       "tensor '%s': row of %llu elements is not a whole number of %s blocks "
                       "(%u elements)",
                       t->name, (unsigned long long)t->ne[0], ggml_types[t->ggml_type].name,
                       block);
    uint64_t blocks = nelem / block;
    if (blocks > SIZE_MAX / ggml_types[t->ggml_type].block_bytes)
        return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                       "tensor '%s': %llu elements of %s overflow a size", t->name,
                       (unsigned long long)nelem, ggml_types[t->ggml_type].name);
    t->nbytes = (size_t)blocks * ggml_types[t->ggml_type].block_bytes;
    rc = rd_u64(c, &t->offset, t->name);
    if (rc < 0)
        return rc;
    if (t->offset % g->alignment != 0)
        return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                       "tensor '%s': data offset %llu is not a multiple of the alignment %zu",
                       t->name, (unsigned long long)t->offset, g->alignment);
    return SG_OK;
}

/* Sanity of the tensor table against the data section: inside, no overlap, unique names. */
static int check_tensors(sg_gguf *g, cursor *c)
{
    const sg_gguf_tensor **v;
    size_t data_size = g->size - g->data_off;
    int rc = SG_OK;

    for (size_t i = 0; i < g->n_tensors; i++) {
        sg_gguf_tensor *t = &g->tensors[i];

        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                           "tensor '%s': data [%llu, +%zu) lies outside the data section of "
                            "%zu bytes (file offset %zu)",
                            t->name, (unsigned long long)t->offset, t->nbytes, data_size,
                            g->data_off);
        t->data = g->buf + g->data_off + t->offset;
    }
    if (g->n_tensors < 2)
        return SG_OK;
    v = malloc(g->n_tensors * sizeof *v);
    if (!v)
        return sg_errf(c->err, c->errlen, SG_ENOMEM, c->file, "out of memory");
    for (size_t i = 0; i < g->n_tensors; i++)
        v[i] = &g->tensors[i];
    qsort(v, g->n_tensors, sizeof *v, cmp_name);
    for (size_t i = 1; i < g->n_tensors; i++) {
        if (strcmp(v[i - 1]->name, v[i]->name) == 0) {
            rc = sg_errf(c->err, c->errlen, SG_EFORMAT, c->file, "duplicate tensor '%s'",
                         v[i]->name);
            goto out;
        }
    }
    qsort(v, g->n_tensors, sizeof *v, cmp_offset);
    for (size_t i = 1; i < g->n_tensors; i++) {
        if (v[i - 1]->offset + v[i - 1]->nbytes > v[i]->offset) {
            rc = sg_errf(c->err, c->errlen, SG_EFORMAT, c->file,
                         "tensors '%s' [%llu, +%zu) and '%s' [%llu, +%zu) overlap",
                          v[i - 1]->name, (unsigned long long)v[i - 1]->offset,
                          v[i - 1]->nbytes, v[i]->name, (unsigned long long)v[i]->offset,
                          v[i]->nbytes);
            goto out;
        }
    }
out:
    free(v);
    return rc;
}

/* qsort context-free comparison of key indices: the keys live in the entries themselves, so
 * sort pointers to the entries and turn them into indices afterwards. */
static int cmp_kv(const void *a, const void *b)
{
    const kv *x = *(const kv *const *)a;
    const kv *y = *(const kv *const *)b;
    return strcmp(x->key, y->key);
}

/* Build g->by_key (sorted) and reject duplicate keys, in O(n log n). */
static int index_keys(sg_gguf *g, char *err, size_t errlen)
{
    const kv **v = malloc((g->n_kv ? g->n_kv : 1) * sizeof *v);
    int rc = SG_OK;

    g->by_key = malloc((g->n_kv ? g->n_kv : 1) * sizeof *g->by_key);
    if (!v || !g->by_key) {
        free(v);
        return sg_errf(err, errlen, SG_ENOMEM, g->name, "out of memory");
    }
    for (size_t i = 0; i < g->n_kv; i++)
        v[i] = &g->kvs[i];
    qsort(v, g->n_kv, sizeof *v, cmp_kv);
    for (size_t i = 0; i < g->n_kv; i++) {
        if (i > 0 && strcmp(v[i - 1]->key, v[i]->key) == 0) {
            rc = sg_errf(err, errlen, SG_EFORMAT, g->name, "duplicate key '%s'", v[i]->key);
            break;
        }
        g->by_key[i] = (size_t)(v[i] - g->kvs);
    }
    free(v);
    return rc;
}

static int parse(sg_gguf *g, char *err, size_t errlen)
{
    cursor c = {g->buf, g->size, 0, g->name, err, errlen};
    uint64_t n_tensors, n_kv;
    int rc;

    if (g->size < 4 || memcmp(g->buf, "GGUF", 4) != 0) {
        char found[16] = "";
        for (size_t i = 0; i < 4 && i < g->size; i++)
            snprintf(found + 3 * i, sizeof found - 3 * i, "%02x ", g->buf[i]);
        return sg_errf(err, errlen, SG_EFORMAT, g->name,
                       "not a GGUF file: magic %s(expected 47 47 55 46 \"GGUF\")",
                       g->size ? found : "(empty file) ");
    }
    c.pos = 4;
    rc = rd_u32(&c, &g->version, "header (version)");
    if (rc < 0)
        return rc;
    if (g->version != 2 && g->version != 3)
        return sg_errf(err, errlen, SG_EUNSUPPORTED, g->name,
                       "GGUF version %u is not supported (expected 2 or 3)", g->version);
    rc = rd_u64(&c, &n_tensors, "header (tensor count)");
    if (rc < 0)
        return rc;
    rc = rd_u64(&c, &n_kv, "header (metadata count)");
    if (rc < 0)
        return rc;
    /* A key-value pair takes at least 8 + 1 + 4 + 1 bytes, a tensor info 8 + 1 + 4 + 8 + 4 + 8:
     * counts beyond what the file could hold are rejected before any allocation. */
    if (n_kv > left(&c) / 14)
        return sg_errf(err, errlen, SG_EFORMAT, g->name,
                       "metadata count %llu is impossible for a file of %zu bytes",
                       (unsigned long long)n_kv, g->size);
    if (n_tensors > left(&c) / 33)
        return sg_errf(err, errlen, SG_EFORMAT, g->name,
                       "tensor count %llu is impossible for a file of %zu bytes",
                       (unsigned long long)n_tensors, g->size);

    g->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kvs);
    if (!g->kvs)
        return sg_errf(err, errlen, SG_ENOMEM, g->name, "out of memory");
    g->n_kv = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        rc = parse_kv(&c, &g->kvs[i]);
        g->n_kv = (size_t)i + 1; /* so close() frees what this entry allocated */
        if (rc < 0)
            return rc;
    }
    rc = index_keys(g, err, errlen);
    if (rc < 0)
        return rc;

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    long ai = sg_gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        const kv *e = &g->kvs[ai];
        if (e->type != SG_GGUF_U32)
            return sg_errf(err, errlen, SG_EFORMAT, g->name,
                           "key 'general.alignment': expected u32, found %s",
                           type_names[e->type]);
        uint32_t a = ld32(g->buf + e->off);
        if (a == 0 || (a & (a - 1)) != 0)
            return sg_errf(err, errlen, SG_EFORMAT, g->name,
                           "key 'general.alignment': %u is not a power of two", a);
        g->alignment = a;
    }

    g->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensors);
    g->tensor_names = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensor_names);
    if (!g->tensors || !g->tensor_names)
        return sg_errf(err, errlen, SG_ENOMEM, g->name, "out of memory");
    g->n_tensors = (size_t)n_tensors;
    for (size_t i = 0; i < g->n_tensors; i++) {
        rc = parse_tensor_info(&c, g, i);
        if (rc < 0)
            return rc;
    }

    /* The data section starts at the next multiple of the alignment. */
    size_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
    if (pad > left(&c)) {
        if (g->n_tensors > 0)
            return sg_errf(err, errlen, SG_EFORMAT, g->name,
                           "truncated: the data section (offset %zu + %zu padding) starts past "
                           "the end of the file (%zu bytes)",
                           c.pos, pad, g->size);
        pad = left(&c);
    }
    g->data_off = c.pos + pad;
    return check_tensors(g, &c);
}

static int open_common(sg_gguf **out, sg_gguf *g, char *err, size_t errlen)
{
    int rc = parse(g, err, errlen);

    if (rc < 0) {
        sg_gguf_close(g);
        *out = NULL;
        return rc;
    }
    *out = g;
    return SG_OK;
}

int sg_gguf_open_mem(sg_gguf **out, const void *data, size_t size, const char *name, char *err,
                     size_t errlen)
{
    sg_gguf *g;

    *out = NULL;
    if (!data && size)
        return sg_errf(err, errlen, SG_EINVAL, name, "no buffer");
    g = calloc(1, sizeof *g);
    if (!g)
        return sg_errf(err, errlen, SG_ENOMEM, name, "out of memory");
    g->name = strdup(name ? name : "(memory)");
    if (!g->name) {
        free(g);
        return sg_errf(err, errlen, SG_ENOMEM, name, "out of memory");
    }
    g->buf = data ? data : (const uint8_t *)"";
    g->size = size;
    return open_common(out, g, err, errlen);
}

int sg_gguf_open(sg_gguf **out, const char *path, char *err, size_t errlen)
{
    struct stat st;
    sg_gguf *g = NULL;
    void *map = NULL;
    int fd;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sg_errf(err, errlen, SG_EIO, path, "cannot open: %s", strerror(errno));
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return sg_errf(err, errlen, SG_EIO, path, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sg_errf(err, errlen, SG_EIO, path, "not a regular file");
    }
    if (st.st_size > 0) {
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return sg_errf(err, errlen, SG_EIO, path, "cannot map %lld bytes: %s",
                           (long long)st.st_size, strerror(e));
        }
    }
    close(fd);
    g = calloc(1, sizeof *g);
    if (g)
        g->name = strdup(path);
    if (!g || !g->name) {
        free(g);
        if (map)
            munmap(map, (size_t)st.st_size);
        return sg_errf(err, errlen, SG_ENOMEM, path, "out of memory");
    }
    g->map = map;
    g->map_size = (size_t)st.st_size;
    g->buf = map ? map : (const uint8_t *)"";
    g->size = (size_t)st.st_size;
    return open_common(out, g, err, errlen);
}

void sg_gguf_close(sg_gguf *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_kv; i++) {
        free(g->kvs[i].key);
        free(g->kvs[i].str_offs);
    }
    free(g->kvs);
    free(g->by_key);
    if (g->tensor_names)
        for (size_t i = 0; i < g->n_tensors; i++)
            free(g->tensor_names[i]);
    free(g->tensor_names);
    free(g->tensors);
    if (g->map)
        munmap(g->map, g->map_size);
    free(g->name);
    free(g);
}

/* ---- accessors ------------------------------------------------------------------------------ */

const void *sg_gguf_mapping(const sg_gguf *g, size_t *size)
{
    *size = g->map != NULL ? g->map_size : 0;
    return g->map;
}

const char *sg_gguf_name(const sg_gguf *g)
{
    return g->name;
}

uint32_t sg_gguf_version(const sg_gguf *g)
{
    return g->version;
}

size_t sg_gguf_alignment(const sg_gguf *g)
{
    return g->alignment;
}

size_t sg_gguf_n_kv(const sg_gguf *g)
{
    return g->n_kv;
}

const char *sg_gguf_key(const sg_gguf *g, size_t i)
{
    return i < g->n_kv ? g->kvs[i].key : NULL;
}

long sg_gguf_find_key(const sg_gguf *g, const char *key)
{
    size_t lo = 0, hi = g->by_key ? g->n_kv : 0;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->kvs[g->by_key[mid]].key, key);
        if (c == 0)
            return (long)g->by_key[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int sg_gguf_key_type(const sg_gguf *g, const char *key)
{
    long i = sg_gguf_find_key(g, key);

    return i < 0 ? -1 : (int)g->kvs[i].type;
}

/* The entry for `key`, or an error: SG_EINVAL if absent. */
static int lookup(const sg_gguf *g, const char *key, const kv **e, char *err, size_t errlen)
{
    long i = sg_gguf_find_key(g, key);

    if (i < 0)
        return sg_errf(err, errlen, SG_EINVAL, g->name, "key '%s' is absent", key);
    *e = &g->kvs[i];
    return SG_OK;
}

static int wrong_type(const sg_gguf *g, const kv *e, const char *expected, char *err,
                      size_t errlen)
{
    if (e->type == SG_GGUF_ARRAY)
        return sg_errf(err, errlen, SG_EFORMAT, g->name,
                       "key '%s': expected %s, found array of %s", e->key, expected,
                       type_names[e->elem_type]);
    return sg_errf(err, errlen, SG_EFORMAT, g->name, "key '%s': expected %s, found %s", e->key,
                   expected, type_names[e->type]);
}

/* An integer of type t at p, as a signed or unsigned 64-bit value. */
static void load_int(uint32_t t, const uint8_t *p, int64_t *sv, uint64_t *uv, int *neg)
{
    *neg = 0;
    switch (t) {
    case SG_GGUF_U8:
    case SG_GGUF_BOOL:
        *uv = p[0];
        break;
    case SG_GGUF_I8:
        *sv = (int8_t)p[0];
        *neg = *sv < 0;
        *uv = (uint64_t)*sv;
        break;
    case SG_GGUF_U16:
        *uv = ld16(p);
        break;
    case SG_GGUF_I16:
        *sv = (int16_t)ld16(p);
        *neg = *sv < 0;
        *uv = (uint64_t)*sv;
        break;
    case SG_GGUF_U32:
        *uv = ld32(p);
        break;
    case SG_GGUF_I32:
        *sv = (int32_t)ld32(p);
        *neg = *sv < 0;
        *uv = (uint64_t)*sv;
        break;
    case SG_GGUF_U64:
        *uv = ld64(p);
        break;
    default: /* SG_GGUF_I64 */
        *sv = (int64_t)ld64(p);
        *neg = *sv < 0;
        *uv = (uint64_t)*sv;
        break;
    }
    if (!*neg)
        *sv = *uv > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)*uv;
}

/* Read an integer key into [lo, hi] (hi as unsigned when lo >= 0). */
static int get_int(const sg_gguf *g, const char *key, int64_t lo, uint64_t hi, int64_t *sout,
                   uint64_t *uout, const char *tname, char *err, size_t errlen)
{
    const kv *e = NULL;
    int64_t sv = 0;
    uint64_t uv = 0;
    int neg;
    int rc = lookup(g, key, &e, err, errlen);

    if (rc < 0)
        return rc;
    if (!type_is_int(e->type))
        return wrong_type(g, e, "an integer", err, errlen);
    load_int(e->type, g->buf + e->off, &sv, &uv, &neg);
    if ((neg && (lo >= 0 || sv < lo)) || (!neg && uv > hi)) {
        if (neg)
            return sg_errf(err, errlen, SG_ERANGE, g->name, "key '%s': %lld does not fit %s",
                           key, (long long)sv, tname);
        return sg_errf(err, errlen, SG_ERANGE, g->name, "key '%s': %llu does not fit %s", key,
                       (unsigned long long)uv, tname);
    }
    *sout = sv;
    *uout = uv;
    return SG_OK;
}

int sg_gguf_get_u32(const sg_gguf *g, const char *key, uint32_t *v, char *err, size_t errlen)
{
    int64_t s;
    uint64_t u;
    int rc = get_int(g, key, 0, UINT32_MAX, &s, &u, "u32", err, errlen);

    if (rc == SG_OK)
        *v = (uint32_t)u;
    return rc;
}

int sg_gguf_get_i32(const sg_gguf *g, const char *key, int32_t *v, char *err, size_t errlen)
{
    int64_t s;
    uint64_t u;
    int rc = get_int(g, key, INT32_MIN, INT32_MAX, &s, &u, "i32", err, errlen);

    if (rc == SG_OK)
        *v = (int32_t)s;
    return rc;
}

int sg_gguf_get_u64(const sg_gguf *g, const char *key, uint64_t *v, char *err, size_t errlen)
{
    int64_t s;
    uint64_t u;
    int rc = get_int(g, key, 0, UINT64_MAX, &s, &u, "u64", err, errlen);

    if (rc == SG_OK)
        *v = u;
    return rc;
}

static double load_float(uint32_t t, const uint8_t *p)
{
    if (t == SG_GGUF_F32) {
        uint32_t u = ld32(p);
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    uint64_t u = ld64(p);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* double to float without undefined behaviour: beyond FLT_MAX gives an infinity. */
static float to_f32(double d)
{
    if (d > FLT_MAX)
        return INFINITY;
    if (d < -FLT_MAX)
        return -INFINITY;
    return (float)d;
}

int sg_gguf_get_f32(const sg_gguf *g, const char *key, float *v, char *err, size_t errlen)
{
    const kv *e = NULL;
    int rc = lookup(g, key, &e, err, errlen);

    if (rc < 0)
        return rc;
    if (e->type != SG_GGUF_F32 && e->type != SG_GGUF_F64)
        return wrong_type(g, e, "f32", err, errlen);
    *v = to_f32(load_float(e->type, g->buf + e->off));
    return SG_OK;
}

int sg_gguf_get_bool(const sg_gguf *g, const char *key, int *v, char *err, size_t errlen)
{
    const kv *e = NULL;
    int rc = lookup(g, key, &e, err, errlen);

    if (rc < 0)
        return rc;
    if (e->type != SG_GGUF_BOOL)
        return wrong_type(g, e, "bool", err, errlen);
    *v = g->buf[e->off] != 0;
    return SG_OK;
}

int sg_gguf_get_str(const sg_gguf *g, const char *key, const char **s, size_t *len, char *err,
                    size_t errlen)
{
    const kv *e = NULL;
    int rc = lookup(g, key, &e, err, errlen);

    if (rc < 0)
        return rc;
    if (e->type != SG_GGUF_STRING)
        return wrong_type(g, e, "string", err, errlen);
    *len = (size_t)ld64(g->buf + e->off);
    *s = (const char *)g->buf + e->off + 8;
    return SG_OK;
}

int sg_gguf_get_strz(const sg_gguf *g, const char *key, char *buf, size_t cap, char *err,
                     size_t errlen)
{
    const char *s;
    size_t len;
    int rc = sg_gguf_get_str(g, key, &s, &len, err, errlen);

    if (rc < 0)
        return rc;
    if (len >= cap || memchr(s, '\0', len))
        return sg_errf(err, errlen, SG_ERANGE, g->name,
                       "key '%s': string of %zu bytes does not fit %zu bytes of text", key, len,
                       cap ? cap - 1 : 0);
    memcpy(buf, s, len);
    buf[len] = '\0';
    return SG_OK;
}

static int lookup_arr(const sg_gguf *g, const char *key, const kv **e, char *err, size_t errlen)
{
    int rc = lookup(g, key, e, err, errlen);

    if (rc < 0)
        return rc;
    if ((*e)->type != SG_GGUF_ARRAY)
        return sg_errf(err, errlen, SG_EFORMAT, g->name, "key '%s': expected array, found %s",
                       key, type_names[(*e)->type]);
    return SG_OK;
}

int sg_gguf_get_arr(const sg_gguf *g, const char *key, sg_gguf_type *elem_type, size_t *n,
                    char *err, size_t errlen)
{
    const kv *e = NULL;
    int rc = lookup_arr(g, key, &e, err, errlen);

    if (rc < 0)
        return rc;
    if (elem_type)
        *elem_type = (sg_gguf_type)e->elem_type;
    *n = (size_t)e->count;
    return SG_OK;
}

int sg_gguf_get_arr_str(const sg_gguf *g, const char *key, size_t i, const char **s, size_t *len,
                        char *err, size_t errlen)
{
    const kv *e = NULL;
    int rc = lookup_arr(g, key, &e, err, errlen);

    if (rc < 0)
        return rc;
    if (e->elem_type != SG_GGUF_STRING)
        return sg_errf(err, errlen, SG_EFORMAT, g->name,
                       "key '%s': expected array of string, found array of %s", key,
                       type_names[e->elem_type]);
    if (i >= e->count)
        return sg_errf(err, errlen, SG_ERANGE, g->name,
                       "key '%s': index %zu past the end of %llu strings", key, i,
                       (unsigned long long)e->count);
    *len = (size_t)ld64(g->buf + e->str_offs[i]);
    *s = (const char *)g->buf + e->str_offs[i] + 8;
    return SG_OK;
}

int sg_gguf_get_arr_f32(const sg_gguf *g, const char *key, float *out, size_t cap, size_t *n,
                        char *err, size_t errlen)
{
    const kv *e = NULL;
    int rc = lookup_arr(g, key, &e, err, errlen);

    if (rc < 0)
        return rc;
    if (e->elem_type != SG_GGUF_F32 && e->elem_type != SG_GGUF_F64)
        return sg_errf(err, errlen, SG_EFORMAT, g->name,
                       "key '%s': expected array of f32, found array of %s", key,
                       type_names[e->elem_type]);
    *n = (size_t)e->count;
    if (e->count > cap)
        return sg_errf(err, errlen, SG_ERANGE, g->name,
                       "key '%s': %llu elements do not fit %zu", key,
                       (unsigned long long)e->count, cap);
    for (size_t i = 0; i < *n; i++)
        out[i] = to_f32(
            load_float(e->elem_type, g->buf + e->off + i * type_sizes[e->elem_type]));
    return SG_OK;
}

int sg_gguf_type_is_int(int type)
{
    return type >= 0 && type_is_int((uint32_t)type);
}

int sg_gguf_get_arr_int(const sg_gguf *g, const char *key, size_t i, int64_t *v, char *err,
                        size_t errlen)
{
    const kv *e = NULL;
    int rc = lookup_arr(g, key, &e, err, errlen);
    uint64_t uv = 0;
    int neg;

    if (rc < 0)
        return rc;
    if (!type_is_int(e->elem_type))
        return sg_errf(err, errlen, SG_EFORMAT, g->name,
                       "key '%s': expected array of integers, found array of %s", key,
                       type_names[e->elem_type]);
    if (i >= e->count)
        return sg_errf(err, errlen, SG_ERANGE, g->name,
                       "key '%s': index %zu past the end of %llu integers", key, i,
                       (unsigned long long)e->count);
    load_int(e->elem_type, g->buf + e->off + i * type_sizes[e->elem_type], v, &uv, &neg);
    return SG_OK;
}

int sg_gguf_get_arr_i32(const sg_gguf *g, const char *key, int32_t *out, size_t cap, size_t *n,
                        char *err, size_t errlen)
{
    const kv *e = NULL;
    int rc = lookup_arr(g, key, &e, err, errlen);

    if (rc < 0)
        return rc;
    if (!type_is_int(e->elem_type) && e->elem_type != SG_GGUF_BOOL)
        return sg_errf(err, errlen, SG_EFORMAT, g->name,
                       "key '%s': expected array of integers, found array of %s", key,
                       type_names[e->elem_type]);
    *n = (size_t)e->count;
    if (e->count > cap)
        return sg_errf(err, errlen, SG_ERANGE, g->name,
                       "key '%s': %llu elements do not fit %zu", key,
                       (unsigned long long)e->count, cap);
    for (size_t i = 0; i < *n; i++) {
        int64_t sv = 0;
        uint64_t uv = 0;
        int neg;

        load_int(e->elem_type, g->buf + e->off + i * type_sizes[e->elem_type], &sv, &uv, &neg);
        if (sv < INT32_MIN || sv > INT32_MAX)
            return sg_errf(err, errlen, SG_ERANGE, g->name,
                           "key '%s': element %zu (%lld) does not fit i32", key, i,
                           (long long)sv);
        out[i] = (int32_t)sv;
    }
    return SG_OK;
}

size_t sg_gguf_n_tensors(const sg_gguf *g)
{
    return g->n_tensors;
}

const sg_gguf_tensor *sg_gguf_tensor_at(const sg_gguf *g, size_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const sg_gguf_tensor *sg_gguf_find_tensor(const sg_gguf *g, const char *name)
{
    for (size_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0)
            return &g->tensors[i];
    return NULL;
}
