/* scan_meta.c: the OUT.meta.json sidecar of a scan output (see scan_meta.h). */
#include "scan_meta.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FP_SPAN (1 << 20) /* bytes hashed at each end of an input */
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

char *sg_scan_meta_path(const char *out)
{
    size_t n = strlen(out);
    char *p = malloc(n + sizeof ".meta.json");

    if (p) {
        memcpy(p, out, n);
        memcpy(p + n, ".meta.json", sizeof ".meta.json");
    }
    return p;
}

/* FNV-1a 64 of [off, off + len) of fd into *h. 0 or -errno. */
static int hash_span(int fd, off_t off, off_t len, uint64_t *h)
{
    unsigned char buf[65536];

    while (len > 0) {
        size_t want = len < (off_t)sizeof buf ? (size_t)len : sizeof buf;
        ssize_t n = pread(fd, buf, want, off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO; /* shrank while we read it */
        for (ssize_t i = 0; i < n; i++) {
            *h ^= buf[i];
            *h *= FNV_PRIME;
        }
        off += n;
        len -= n;
    }
    return 0;
}

json_t *sg_scan_input_identity(const char *path, char *err, size_t errlen)
{
    struct stat st;
    uint64_t h = FNV_OFFSET;
    char fp[40];
    int fd;
    int e;

    if (strcmp(path, "-") == 0)
        return json_pack("{ss}", "path", "-");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0) {
        e = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return json_pack("{ss}", "path", path); /* a pipe or device: nothing to hash */
    }
    if (st.st_size <= 2 * FP_SPAN) {
        e = hash_span(fd, 0, st.st_size, &h);
    } else {
        e = hash_span(fd, 0, FP_SPAN, &h);
        if (e == 0)
            e = hash_span(fd, st.st_size - FP_SPAN, FP_SPAN, &h);
    }
    if (e < 0)
        goto fail;
    close(fd);
    snprintf(fp, sizeof fp, "fnv1a64:%016" PRIx64, h);
    return json_pack("{sssIss}", "path", path, "size", (json_int_t)st.st_size, "fingerprint", fp);
fail:
    snprintf(err, errlen, "%s: %s", path, strerror(-e));
    close(fd);
    return NULL;
}

json_t *sg_scan_meta_new(const sg_scan_shard *sh, const char *by, json_t *inputs,
                         json_t *settings)
{
    return json_pack("{sis{sIsIss}sososb}", "shieldctl_scan", 1, "shard", "index",
                     (json_int_t)sh->index, "count", (json_int_t)sh->count, "by", by, "inputs",
                     inputs, "settings", settings, "complete", 0);
}

int sg_scan_meta_load(const char *out, json_t **meta, char *err, size_t errlen)
{
    char *p = sg_scan_meta_path(out);
    json_error_t je;
    json_t *m;

    *meta = NULL;
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (access(p, F_OK) < 0 && errno == ENOENT) {
        free(p);
        return 1;
    }
    m = json_load_file(p, 0, &je);
    if (!m) {
        snprintf(err, errlen, "%s:%d: %s", p, je.line, je.text);
        free(p);
        return -1;
    }
    if (!json_is_object(m) || json_integer_value(json_object_get(m, "shieldctl_scan")) != 1 ||
        !json_is_object(json_object_get(m, "shard")) ||
        !json_is_array(json_object_get(m, "inputs"))) {
        snprintf(err, errlen, "%s: not a shieldctl scan sidecar", p);
        json_decref(m);
        free(p);
        return -1;
    }
    free(p);
    *meta = m;
    return 0;
}

int sg_scan_meta_save(const char *out, const json_t *meta, char *err, size_t errlen)
{
    char *p = sg_scan_meta_path(out);
    char *tmp = p ? malloc(strlen(p) + 5) : NULL;
    char *text = json_dumps(meta, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    size_t n = text ? strlen(text) : 0;
    int fd = -1;
    int rc = -1;

    if (!p || !tmp || !text) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(tmp, strlen(p) + 5, "%s.tmp", p);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    text[n] = '\n'; /* json_dumps' NUL becomes the final newline; write n + 1 bytes */
    for (size_t off = 0; off < n + 1;) {
        ssize_t w = write(fd, text + off, n + 1 - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, p) < 0) {
        snprintf(err, errlen, "%s: %s", p, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0 && tmp)
        unlink(tmp);
    free(text);
    free(tmp);
    free(p);
    return rc;
}

const char *sg_scan_meta_shard_str(const json_t *meta, char *buf, size_t len)
{
    const json_t *sh = json_object_get(meta, "shard");
    const char *by = json_string_value(json_object_get(sh, "by"));

    snprintf(buf, len, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT "%s%s",
             json_integer_value(json_object_get(sh, "index")),
             json_integer_value(json_object_get(sh, "count")),
             by && strcmp(by, "item") ? " by " : "", by && strcmp(by, "item") ? by : "");
    return buf;
}

/* The inputs differ: say how. */
static int inputs_same(const json_t *a, const json_t *b, char *err, size_t errlen)
{
    size_t i;
    const json_t *x;

    if (json_array_size(a) != json_array_size(b)) {
        snprintf(err, errlen, "it was scanned from %zu input files, this scan has %zu",
                 json_array_size(a), json_array_size(b));
        return -1;
    }
    json_array_foreach(a, i, x) {
        const json_t *y = json_array_get(b, i);
        const char *pa = json_string_value(json_object_get(x, "path"));
        const char *pb = json_string_value(json_object_get(y, "path"));

        if (!json_equal(json_object_get(x, "size"), json_object_get(y, "size")) ||
            !json_equal(json_object_get(x, "fingerprint"), json_object_get(y, "fingerprint")) ||
            ((!strcmp(pa ? pa : "", "-")) != (!strcmp(pb ? pb : "", "-")))) {
            snprintf(err, errlen, "input %zu differs: it was %.200s (%" JSON_INTEGER_FORMAT
                                  " bytes), this is %.200s (%" JSON_INTEGER_FORMAT " bytes)",
                     i + 1, pa ? pa : "?", json_integer_value(json_object_get(x, "size")),
                     pb ? pb : "?", json_integer_value(json_object_get(y, "size")));
            return -1;
        }
    }
    return 0;
}

int sg_scan_meta_same(const json_t *have, const json_t *want, char *err, size_t errlen)
{
    const json_t *sa = json_object_get(have, "settings");
    const json_t *sb = json_object_get(want, "settings");
    const char *key;
    const json_t *v;
    char a[64], b[64];

    if (!json_equal(json_object_get(have, "shard"), json_object_get(want, "shard"))) {
        snprintf(err, errlen, "it holds shard %s, this is shard %s",
                 sg_scan_meta_shard_str(have, a, sizeof a),
                 sg_scan_meta_shard_str(want, b, sizeof b));
        return -1;
    }
    if (inputs_same(json_object_get(have, "inputs"), json_object_get(want, "inputs"), err,
                    errlen) < 0)
        return -1;
    json_object_foreach((json_t *)sb, key, v) {
        if (!json_equal(json_object_get(sa, key), v)) {
            char *x = json_dumps(json_object_get(sa, key), JSON_ENCODE_ANY | JSON_COMPACT);
            char *y = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

            snprintf(err, errlen, "it was scanned with %s %.100s, this scan has %.100s", key,
                     x ? x : "(none)", y ? y : "?");
            free(x);
            free(y);
            return -1;
        }
    }
    return 0;
}
