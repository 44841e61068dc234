#ifndef SG_GGUF_H
#define SG_GGUF_H
/*
 * gguf.h (internal to engine/): a GGUF (v2, v3) reader over a read-only buffer. It reads the
 * container only; model/gguf_gemma.h turns a llama.cpp Gemma GGUF into an sg_weights.
 *
 * Nothing in the file is trusted: sg_gguf_open() checks every count, length, type, dimension,
 * offset and the alignment before anything is used, so the accessors below never read outside
 * the buffer. Errors name the file, the key or tensor, and what was expected versus found.
 *
 *     sg_gguf *g;
 *     char err[256];
 *     if (sg_gguf_open(&g, "model.gguf", err, sizeof err) < 0) { ... }
 *     size_t n;
 *     sg_gguf_get_arr(g, "tokenizer.ggml.tokens", NULL, &n, err, sizeof err);
 *     for (size_t i = 0; i < n; i++) {
 *         const char *s; size_t len;                  // not NUL-terminated
 *         sg_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s, &len, NULL, 0);
 *     }
 *     sg_gguf_close(g);
 *
 * Getter return values, all of them: SG_OK; SG_EINVAL if the key is absent (so a caller can
 * fall back to a default); SG_EFORMAT if the value has another type; SG_ERANGE if an integer
 * does not fit the asked type or an index is past the end. `err` (capacity `errlen`, may be
 * NULL) then receives "FILE: key 'K': expected ..., found ...". The handle is read-only after
 * open, so getters may be called from several threads.
 */

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

/* Metadata value types, with the numbers the file uses. */
typedef enum sg_gguf_type {
    SG_GGUF_U8 = 0,
    SG_GGUF_I8 = 1,
    SG_GGUF_U16 = 2,
    SG_GGUF_I16 = 3,
    SG_GGUF_U32 = 4,
    SG_GGUF_I32 = 5,
    SG_GGUF_F32 = 6,
    SG_GGUF_BOOL = 7,
    SG_GGUF_STRING = 8,
    SG_GGUF_ARRAY = 9,
    SG_GGUF_U64 = 10,
    SG_GGUF_I64 = 11,
    SG_GGUF_F64 = 12,
    SG_GGUF_TYPE_COUNT
} sg_gguf_type;

typedef struct sg_gguf sg_gguf;

/* One tensor as the file describes it (GGUF order: ne[0] is the row length). */
typedef struct sg_gguf_tensor {
    const char *name;    /* NUL-terminated copy, owned by the handle */
    uint32_t ggml_type;  /* the file's type number (0 F32, 1 F16, 8 Q8_0, 30 BF16, ...) */
    int dtype;           /* the matching sg_dtype, or -1 if the engine cannot read that type */
    int n_dims;          /* 1..4 */
    uint64_t ne[4];      /* innermost first; unused entries are 1 */
    uint64_t offset;     /* from the start of the data section */
    size_t nbytes;
    const void *data;    /* into the buffer */
} sg_gguf_tensor;

/*
 * Map `path` read-only and parse it. The caller owns *out (sg_gguf_close()). Returns SG_OK;
 * SG_EIO if the file cannot be opened or mapped; SG_EFORMAT for a malformed file;
 * SG_EUNSUPPORTED for another GGUF version or a tensor type whose size is unknown; SG_ENOMEM.
 */
int sg_gguf_open(sg_gguf **out, const char *path, char *err, size_t errlen);
/*
 * Parse `size` bytes at `data` (borrowed: must outlive the handle and stay unchanged);
 * `name` is used in messages. Same returns as sg_gguf_open().
 */
int sg_gguf_open_mem(sg_gguf **out, const void *data, size_t size, const char *name, char *err,
                     size_t errlen);
/* Release the handle and its mapping, if it made one (NULL is fine). */
void sg_gguf_close(sg_gguf *g);

/* The file's name as given at open, its GGUF version and general.alignment. */
const char *sg_gguf_name(const sg_gguf *g);
uint32_t sg_gguf_version(const sg_gguf *g);
size_t sg_gguf_alignment(const sg_gguf *g);

/* Metadata: the count, the i-th key (NUL-terminated, owned by the handle) and its type. */
size_t sg_gguf_n_kv(const sg_gguf *g);
const char *sg_gguf_key(const sg_gguf *g, size_t i);
/* Index of `key`, or -1 if absent. */
long sg_gguf_find_key(const sg_gguf *g, const char *key);
/* Type of `key`'s value, or -1 if absent. */
/* The file's read-only private mapping (*size bytes), or NULL for sg_gguf_open_mem (whose
 * buffer is the caller's and must never be madvised). */
const void *sg_gguf_mapping(const sg_gguf *g, size_t *size);

int sg_gguf_key_type(const sg_gguf *g, const char *key);
/* "u32", "string", "array", ...; "?" when out of range. */
const char *sg_gguf_type_name(int type);

/* A string value: *s points into the buffer, *len bytes, NOT NUL-terminated. */
int sg_gguf_get_str(const sg_gguf *g, const char *key, const char **s, size_t *len, char *err,
                    size_t errlen);
/* A string value copied into `buf` (capacity `cap`, NUL-terminated; SG_ERANGE if too long or
 * if it contains a NUL byte). */
int sg_gguf_get_strz(const sg_gguf *g, const char *key, char *buf, size_t cap, char *err,
                     size_t errlen);
/* Integers of any integer type whose value fits. */
int sg_gguf_get_u32(const sg_gguf *g, const char *key, uint32_t *v, char *err, size_t errlen);
int sg_gguf_get_i32(const sg_gguf *g, const char *key, int32_t *v, char *err, size_t errlen);
int sg_gguf_get_u64(const sg_gguf *g, const char *key, uint64_t *v, char *err, size_t errlen);
/* f32 or f64 (converted). */
int sg_gguf_get_f32(const sg_gguf *g, const char *key, float *v, char *err, size_t errlen);
/* bool (any non-zero byte is true). */
int sg_gguf_get_bool(const sg_gguf *g, const char *key, int *v, char *err, size_t errlen);

/* An array: its element type (may be NULL) and element count. SG_EFORMAT if not an array. */
int sg_gguf_get_arr(const sg_gguf *g, const char *key, sg_gguf_type *elem_type, size_t *n,
                    char *err, size_t errlen);
/* Element i of an array of strings, in O(1): into the buffer, NOT NUL-terminated. */
int sg_gguf_get_arr_str(const sg_gguf *g, const char *key, size_t i, const char **s, size_t *len,
                        char *err, size_t errlen);
/*
 * Copy an array of numbers into `out` (capacity `cap` elements; *n receives the count, also
 * when it exceeds cap, then SG_ERANGE). _f32 takes f32 or f64 elements; _i32 takes elements of
 * any integer type (or bool) whose values fit an int32.
 */
int sg_gguf_get_arr_f32(const sg_gguf *g, const char *key, float *out, size_t cap, size_t *n,
                        char *err, size_t errlen);
int sg_gguf_get_arr_i32(const sg_gguf *g, const char *key, int32_t *out, size_t cap, size_t *n,
                        char *err, size_t errlen);

/* Tensors, in file order. sg_gguf_tensor_at returns NULL past the end; _find NULL if absent.
 * Borrowed, valid until sg_gguf_close(). */
size_t sg_gguf_n_tensors(const sg_gguf *g);
const sg_gguf_tensor *sg_gguf_tensor_at(const sg_gguf *g, size_t i);
const sg_gguf_tensor *sg_gguf_find_tensor(const sg_gguf *g, const char *name);
/* "Q4_K", "IQ2_XXS", ...; "?" for numbers ggml does not define. */
const char *sg_gguf_ggml_type_name(uint32_t ggml_type);

/* 1 if `type` (sg_gguf_type) is one of the integer types (not bool). */
int sg_gguf_type_is_int(int type);
/* Element i of an array of integers (any integer type), as int64 (u64 values above INT64_MAX
 * read as INT64_MAX). SG_EFORMAT if the elements are not integers, SG_ERANGE past the end. */
int sg_gguf_get_arr_int(const sg_gguf *g, const char *key, size_t i, int64_t *v, char *err,
                        size_t errlen);

#endif /* SG_GGUF_H */
