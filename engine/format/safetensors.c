/*
 * safetensors.c: safetensors files and sharded indexes (see safetensors.h).
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "file.h"

#define INDEX_MAX_BYTES (64u << 20)
#define MAX_DIM_VALUE ((int64_t)1 << 40)

/* safetensors dtypes this engine reads, and the ones it knows but does not handle. */
static const struct {
    const char *name;
    sg_dtype dt;
} st_dtypes[] = {{"F32", SG_DT_F32}, {"F16", SG_DT_F16}, {"BF16", SG_DT_BF16}};
static const char *const st_known_unsupported[] = {
    "F64", "I64", "U64", "I32", "U32", "I16", "U16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2",
};

static uint64_t read_le64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Order entries by data start (then end) to find overlaps. */
static int cmp_by_offset(const void *a, const void *b)
{
    const sg_tensor *x = a;
    const sg_tensor *y = b;
    const uint8_t *xa = x->data;
    const uint8_t *ya = y->data;

    if (xa != ya)
        return xa < ya ? -1 : 1;
    if (x->nbytes != y->nbytes)
        return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

/* Parse one "name": {...} entry of the header into *t. */
static int parse_entry(const char *fname, const char *name, json_t *v, const uint8_t *data,
                       uint64_t data_size, sg_tensor *t, char *err, size_t errlen)
{
    json_t *jd;
    json_t *js;
    json_t *jo;
    const char *dts;
    int64_t nelem = 1;
    size_t need;
    int found = 0;

    memset(t, 0, sizeof *t);
    if (strlen(name) >= SG_TENSOR_NAME_MAX) {
        snprintf(err, errlen, "%s: tensor '%.60s...': name longer than %d bytes", fname, name,
                 SG_TENSOR_NAME_MAX - 1);
        return SG_EFORMAT;
    }
    memcpy(t->name, name, strlen(name) + 1);
    if (!json_is_object(v)) {
        snprintf(err, errlen, "%s: tensor '%s': expected an object with dtype, shape and "
                 "data_offsets", fname, name);
        return SG_EFORMAT;
    }
    jd = json_object_get(v, "dtype");
    js = json_object_get(v, "shape");
    jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd)) {
        snprintf(err, errlen, "%s: tensor '%s': key 'dtype': expected a string", fname, name);
        return SG_EFORMAT;
    }
    dts = json_string_value(jd);
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++) {
        if (strcmp(dts, st_dtypes[i].name) == 0) {
            t->dtype = st_dtypes[i].dt;
            found = 1;
        }
    }
    if (!found) {
        for (size_t i = 0; i < sizeof st_known_unsupported / sizeof st_known_unsupported[0];
             i++) {
            if (strcmp(dts, st_known_unsupported[i]) == 0) {
                snprintf(err, errlen, "%s: tensor '%s': dtype %s is not supported "
                         "(expected F32, F16 or BF16)", fname, name, dts);
                return SG_EUNSUPPORTED;
            }
        }
        snprintf(err, errlen, "%s: tensor '%s': unknown dtype '%.32s' (expected F32, F16 or "
                 "BF16)", fname, name, dts);
        return SG_EFORMAT;
    }
    if (!json_is_array(js)) {
        snprintf(err, errlen, "%s: tensor '%s': key 'shape': expected an array of integers",
                 fname, name);
        return SG_EFORMAT;
    }
    if (json_array_size(js) > SG_MAX_DIMS) {
        snprintf(err, errlen, "%s: tensor '%s': %zu dimensions, at most %d are supported", fname,
                 name, json_array_size(js), SG_MAX_DIMS);
        return SG_EUNSUPPORTED;
    }
    t->ndim = (int)json_array_size(js);
    for (int i = 0; i < t->ndim; i++) {
        json_t *d = json_array_get(js, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0 ||
            json_integer_value(d) > MAX_DIM_VALUE) {
            snprintf(err, errlen, "%s: tensor '%s': shape[%d]: expected an integer in 0..2^40",
                     fname, name, i);
            return SG_EFORMAT;
        }
        t->shape[i] = json_integer_value(d);
        if (t->shape[i] != 0 && nelem > INT64_MAX / t->shape[i]) {
            snprintf(err, errlen, "%s: tensor '%s': shape overflows", fname, name);
            return SG_EFORMAT;
        }
        nelem *= t->shape[i];
    }
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !json_is_integer(json_array_get(jo, 0)) || !json_is_integer(json_array_get(jo, 1))) {
        snprintf(err, errlen, "%s: tensor '%s': key 'data_offsets': expected [begin, end]", fname,
                 name);
        return SG_EFORMAT;
    }
    json_int_t b = json_integer_value(json_array_get(jo, 0));
    json_int_t e = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || e < b) {
        snprintf(err, errlen, "%s: tensor '%s': data_offsets [%lld, %lld]: expected "
                 "0 <= begin <= end", fname, name, (long long)b, (long long)e);
        return SG_EFORMAT;
    }
    if ((uint64_t)e > data_size) {
        snprintf(err, errlen, "%s: tensor '%s': data_offsets [%lld, %lld] reach past the end "
                 "of the file (%llu bytes of data)", fname, name, (long long)b, (long long)e,
                 (unsigned long long)data_size);
        return SG_EFORMAT;
    }
    int rc = sg_dtype_bytes(t->dtype, nelem, &need);
    if (rc != SG_OK || need != (uint64_t)(e - b)) {
        snprintf(err, errlen, "%s: tensor '%s': %lld elements of %s need %zu bytes, "
                 "data_offsets [%lld, %lld] give %lld", fname, name, (long long)nelem, dts,
                 rc == SG_OK ? need : (size_t)0, (long long)b, (long long)e,
                 (long long)(e - b));
        return SG_EFORMAT;
    }
    t->data = data + b;
    t->nbytes = need;
    return SG_OK;
}

int sg_st_parse(const void *file, size_t size, const char *fname, sg_tensor **out, size_t *n_out,
                char *err, size_t errlen)
{
    const unsigned char *p = file;
    json_error_t jerr;
    json_t *root = NULL;
    sg_tensor *ts = NULL;
    sg_tensor *sorted = NULL;
    size_t n = 0;
    uint64_t hlen;
    int rc;

    *out = NULL;
    *n_out = 0;
    if (size < 8) {
        snprintf(err, errlen, "%s: %zu bytes, expected at least the 8-byte header length", fname,
                 size);
        return SG_EFORMAT;
    }
    hlen = read_le64(p);
    if (hlen > size - 8) {
        snprintf(err, errlen, "%s: header length %llu reaches past the end of the file "
                 "(%zu bytes)", fname, (unsigned long long)hlen, size);
        return SG_EFORMAT;
    }
    if (hlen > SG_ST_MAX_HEADER || hlen < 2) {
        snprintf(err, errlen, "%s: header length %llu, expected 2..%u", fname,
                 (unsigned long long)hlen, SG_ST_MAX_HEADER);
        return SG_EFORMAT;
    }
    root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson names the key for duplicates: "duplicate object key near '"x"'". */
        snprintf(err, errlen, "%s: header JSON, byte %d: %s%s", fname, jerr.position, jerr.text,
                 strstr(jerr.text, "duplicate") ? " (duplicate tensor)" : "");
        return SG_EFORMAT;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: header JSON: expected an object", fname);
        rc = SG_EFORMAT;
        goto fail;
    }
    ts = calloc(json_object_size(root) + 1, sizeof *ts);
    if (!ts) {
        snprintf(err, errlen, "%s: out of memory", fname);
        rc = SG_ENOMEM;
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(val)) {
                snprintf(err, errlen, "%s: key '__metadata__': expected an object of strings",
                         fname);
                rc = SG_EFORMAT;
                goto fail;
            }
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    snprintf(err, errlen, "%s: key '__metadata__.%.60s': expected a string",
                             fname, mk);
                    rc = SG_EFORMAT;
                    goto fail;
                }
            }
            continue;
        }
        rc = parse_entry(fname, key, val, p + 8 + hlen, size - 8 - hlen, &ts[n], err, errlen);
        if (rc != SG_OK)
            goto fail;
        n++;
    }

    /* No two tensors may share bytes. */
    if (n > 1) {
        sorted = malloc(n * sizeof *sorted);
        if (!sorted) {
            snprintf(err, errlen, "%s: out of memory", fname);
            rc = SG_ENOMEM;
            goto fail;
        }
        memcpy(sorted, ts, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cmp_by_offset);
        for (size_t i = 1; i < n; i++) {
            const uint8_t *prev_end = (const uint8_t *)sorted[i - 1].data + sorted[i - 1].nbytes;
            if (sorted[i].nbytes > 0 && sorted[i - 1].nbytes > 0 &&
                (const uint8_t *)sorted[i].data < prev_end) {
                const uint8_t *base = p + 8 + hlen;
                snprintf(err, errlen, "%s: tensors '%s' (bytes %td..%td) and '%s' (bytes "
                         "%td..%td) overlap", fname, sorted[i - 1].name,
                         (const uint8_t *)sorted[i - 1].data - base, prev_end - base,
                         sorted[i].name, (const uint8_t *)sorted[i].data - base,
                         (const uint8_t *)sorted[i].data + sorted[i].nbytes - base);
                rc = SG_EFORMAT;
                goto fail;
            }
        }
    }
    free(sorted);
    json_decref(root);
    *out = ts;
    *n_out = n;
    return SG_OK;
fail:
    free(sorted);
    free(ts);
    json_decref(root);
    return rc;
}

int sg_st_load(const char *path, sg_weights *w, char *err, size_t errlen)
{
    struct stat st;
    void *map = MAP_FAILED;
    sg_tensor *ts = NULL;
    size_t n = 0;
    int fd;
    int rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return SG_EIO;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        rc = SG_EIO;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        rc = SG_EIO;
        goto fail;
    }
    if (st.st_size < 8) {
        snprintf(err, errlen, "%s: %lld bytes, expected at least the 8-byte header length",
                 path, (long long)st.st_size);
        rc = SG_EFORMAT;
        goto fail;
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        snprintf(err, errlen, "%s: cannot mmap: %s", path, strerror(errno));
        rc = SG_EIO;
        goto fail;
    }
    rc = sg_st_parse(map, (size_t)st.st_size, path, &ts, &n, err, errlen);
    if (rc != SG_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (sg_weights_find(w, ts[i].name)) {
            snprintf(err, errlen, "%s: tensor '%s': duplicate tensor (already in another file "
                     "of this model)", path, ts[i].name);
            rc = SG_EFORMAT;
            goto fail;
        }
    }

    /* Grow the weight set; only commit once every allocation has succeeded. */
    sg_tensor *nt = realloc(w->tensors, (w->n_tensors + n + 1) * sizeof *nt);
    if (!nt)
        goto nomem;
    w->tensors = nt;
    void **nm = realloc(w->maps, (w->n_maps + 1) * sizeof *nm);
    if (!nm)
        goto nomem;
    w->maps = nm;
    size_t *ns = realloc(w->map_sizes, (w->n_maps + 1) * sizeof *ns);
    if (!ns)
        goto nomem;
    w->map_sizes = ns;
    memcpy(w->tensors + w->n_tensors, ts, n * sizeof *ts);
    w->n_tensors += n;
    w->maps[w->n_maps] = map;
    w->map_sizes[w->n_maps] = (size_t)st.st_size;
    w->n_maps++;
    free(ts);
    close(fd);
    return SG_OK;
nomem:
    snprintf(err, errlen, "%s: out of memory", path);
    rc = SG_ENOMEM;
fail:
    free(ts);
    if (map != MAP_FAILED)
        munmap(map, (size_t)st.st_size);
    close(fd);
    return rc;
}

static void free_names(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int plain_file_name(const char *s)
{
    return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* Parse the index into its JSON root (for the tensor -> shard check) and the shard list. */
static int parse_index(const char *json, size_t len, const char *fname, json_t **root_out,
                       char ***shards, size_t *n_shards, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root;
    json_t *map;
    char **names = NULL;
    size_t n = 0;
    const char *key;
    json_t *val;
    int rc;

    *shards = NULL;
    *n_shards = 0;
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s: line %d column %d: %s", fname, jerr.line, jerr.column,
                 jerr.text);
        return SG_EFORMAT;
    }
    map = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(map) || json_object_size(map) == 0) {
        snprintf(err, errlen, "%s: key 'weight_map': expected a non-empty object mapping tensor "
                 "names to shard files", fname);
        rc = SG_EFORMAT;
        goto fail;
    }
    names = calloc(json_object_size(map), sizeof *names);
    if (!names) {
        snprintf(err, errlen, "%s: out of memory", fname);
        rc = SG_ENOMEM;
        goto fail;
    }
    json_object_foreach(map, key, val) {
        size_t i;
        if (!json_is_string(val) || !plain_file_name(json_string_value(val))) {
            snprintf(err, errlen, "%s: key 'weight_map.%.80s': expected a shard file name in "
                     "the same folder", fname, key);
            rc = SG_EFORMAT;
            goto fail;
        }
        for (i = 0; i < n; i++)
            if (strcmp(names[i], json_string_value(val)) == 0)
                break;
        if (i == n) {
            names[n] = strdup(json_string_value(val));
            if (!names[n]) {
                snprintf(err, errlen, "%s: out of memory", fname);
                rc = SG_ENOMEM;
                goto fail;
            }
            n++;
        }
    }
    *shards = names;
    *n_shards = n;
    if (root_out)
        *root_out = root;
    else
        json_decref(root);
    return SG_OK;
fail:
    free_names(names, n);
    json_decref(root);
    return rc;
}

int sg_st_parse_index(const char *json, size_t len, const char *fname, char ***shards,
                      size_t *n_shards, char *err, size_t errlen)
{
    return parse_index(json, len, fname, NULL, shards, n_shards, err, errlen);
}

int sg_st_load_index(const char *index_path, sg_weights *w, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    json_t *root = NULL;
    char **shards = NULL;
    size_t n_shards = 0;
    char *path = NULL;
    size_t first_map = w->n_maps;
    size_t dir_len;
    const char *slash;
    int rc;

    rc = sg_read_file(index_path, INDEX_MAX_BYTES, &text, &len, err, errlen);
    if (rc != SG_OK)
        return rc;
    rc = parse_index(text, len, index_path, &root, &shards, &n_shards, err, errlen);
    if (rc != SG_OK)
        goto fail;
    slash = strrchr(index_path, '/');
    dir_len = slash ? (size_t)(slash - index_path) + 1 : 0;
    for (size_t i = 0; i < n_shards; i++) {
        char sub[512];
        free(path);
        path = malloc(dir_len + strlen(shards[i]) + 1);
        if (!path) {
            snprintf(err, errlen, "%s: out of memory", index_path);
            rc = SG_ENOMEM;
            goto fail;
        }
        memcpy(path, index_path, dir_len);
        strcpy(path + dir_len, shards[i]);
        rc = sg_st_load(path, w, sub, sizeof sub);
        if (rc != SG_OK) {
            snprintf(err, errlen, "%s: shard '%s': %s", index_path, shards[i], sub);
            goto fail;
        }
    }

    /* Every tensor the index names must be in the shard it names. */
    json_t *map = json_object_get(root, "weight_map");
    const char *key;
    json_t *val;
    json_object_foreach(map, key, val) {
        const sg_tensor *t = sg_weights_find(w, key);
        size_t s;
        for (s = 0; s < n_shards; s++)
            if (strcmp(shards[s], json_string_value(val)) == 0)
                break;
        const uint8_t *base = w->maps[first_map + s];
        if (!t || (const uint8_t *)t->data < base ||
            (const uint8_t *)t->data > base + w->map_sizes[first_map + s]) {
            snprintf(err, errlen, "%s: tensor '%s': missing tensor (the index puts it in '%s', "
                     "which does not hold it)", index_path, key, json_string_value(val));
            rc = SG_EFORMAT;
            goto fail;
        }
    }
    free(path);
    free_names(shards, n_shards);
    json_decref(root);
    free(text);
    return SG_OK;
fail:
    free(path);
    free_names(shards, n_shards);
    json_decref(root);
    free(text);
    return rc;
}
