/*
 * packcache.c: the packed-weight cache file: key, validation, lookup, atomic write (see
 * packcache.h).
 */
#include "packcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PC_MAGIC "SGPACK\r\n"
#define PC_ALIGN 4096u
#define PC_SAMPLE 4096u /* bytes hashed at each end of a tensor's data */
#define PC_SEED 0x5347504b43414348ull

struct pc_header {
    char magic[8];
    uint32_t version;
    uint32_t key_len;
    uint64_t n_entries;
    uint64_t table_off;
    uint64_t data_off;
    uint64_t file_size;
    uint64_t checksum; /* of this header (checksum 0), the key and the table */
    uint64_t reserved;
};

struct pc_entry {
    char name[SG_TENSOR_NAME_MAX];
    char kernel[32];
    int32_t dtype;
    int32_t ndim;
    int64_t n;
    int64_t k;
    uint64_t sample; /* hash of the first and last PC_SAMPLE bytes of the tensor's data */
    uint64_t offset;
    uint64_t bytes;
    uint64_t hash; /* of the packed bytes */
    uint64_t reserved;
};

_Static_assert(sizeof(struct pc_header) == 64, "header layout");
_Static_assert(sizeof(struct pc_entry) == 192, "entry layout");

struct pc_note {
    struct pc_entry e;
    const void *data;
};

struct sg_packcache {
    atomic_int refs;
    char path[PATH_MAX];
    char lock_path[PATH_MAX];
    int lock_fd; /* -1, or the flock()ed lock file while building */
    int hit;
    uint8_t *map; /* hit: the whole file */
    size_t map_size;
    const struct pc_entry *table;
    size_t n_entries;
    char *key;
    struct pc_note *notes; /* miss: weights to write */
    size_t n_notes;
    size_t cap_notes;
};

static uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull

uint64_t sg_packcache_hash(const void *p, size_t n, uint64_t seed)
{
    const uint8_t *b = p;
    uint64_t h0 = seed + P1 + P2, h1 = seed + P2, h2 = seed, h3 = seed - P1;
    uint64_t r;
    size_t i = 0;

    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];

        memcpy(w, b + i, sizeof w);
        h0 = rotl(h0 + w[0] * P2, 31) * P1;
        h1 = rotl(h1 + w[1] * P2, 31) * P1;
        h2 = rotl(h2 + w[2] * P2, 31) * P1;
        h3 = rotl(h3 + w[3] * P2, 31) * P1;
    }
    r = rotl(h0, 1) + rotl(h1, 7) + rotl(h2, 12) + rotl(h3, 18) + (uint64_t)n;
    for (; i < n; i++)
        r = rotl(r ^ (b[i] * P4), 11) * P1;
    r ^= r >> 33;
    r *= P2;
    r ^= r >> 29;
    r *= P3;
    r ^= r >> 32;
    return r;
}

/* A hash of the ends of a tensor's data: catches weights rewritten under the same file stat. */
static uint64_t tensor_sample(const sg_tensor *w)
{
    size_t n = w->nbytes < PC_SAMPLE ? w->nbytes : PC_SAMPLE;
    uint64_t h = sg_packcache_hash(w->data, n, PC_SEED);

    return sg_packcache_hash((const uint8_t *)w->data + w->nbytes - n, n, h);
}

static size_t align_up(size_t x, size_t a)
{
    return (x + a - 1) / a * a;
}

/* mkdir -p: SG_OK when `dir` is (now) a folder. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    size_t len = strlen(dir);
    struct stat st;

    if (len == 0 || len >= sizeof buf) {
        snprintf(err, errlen, "pack cache folder '%s': empty or too long", dir);
        return SG_EINVAL;
    }
    memcpy(buf, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "pack cache folder %s: %s", buf, strerror(errno));
            return SG_EIO;
        }
        buf[i] = dir[i];
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "pack cache folder %s: not a folder", dir);
        return SG_EIO;
    }
    return SG_OK;
}

/* Validate and map the file at pc->path. 1: hit; 0: absent or invalid (warned if `warn`). */
static int try_load(sg_packcache *pc, int warn)
{
    struct pc_header h;
    struct stat st;
    const char *why = NULL;
    uint8_t *map = MAP_FAILED;
    size_t key_len = strlen(pc->key);
    int fd = open(pc->path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        if (errno != ENOENT && warn)
            sg_log(SG_LOG_WARN, "pack cache %s: %s; rebuilding", pc->path, strerror(errno));
        return 0;
    }
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof h) {
        why = "shorter than its header (truncated)";
        goto bad;
    }
    if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h) {
        why = "cannot read its header";
        goto bad;
    }
    if (memcmp(h.magic, PC_MAGIC, sizeof h.magic) != 0) {
        why = "not a pack cache file (bad magic)";
        goto bad;
    }
    if (h.version != SG_PACKCACHE_VERSION) {
        why = "another format version";
        goto bad;
    }
    if (h.file_size != (uint64_t)st.st_size) {
        why = "its size differs from the size its header records (truncated?)";
        goto bad;
    }
    if (h.key_len != key_len || h.n_entries > 1u << 20 ||
        h.table_off != align_up(sizeof h + key_len, 8) ||
        h.data_off < h.table_off + h.n_entries * sizeof(struct pc_entry) ||
        h.data_off > h.file_size) {
        why = "inconsistent header (another key, or corrupt)";
        goto bad;
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) {
        why = strerror(errno);
        goto bad;
    }
    {
        struct pc_header z = h;
        uint64_t sum;

        z.checksum = 0;
        sum = sg_packcache_hash(&z, sizeof z, PC_SEED);
        sum = sg_packcache_hash(map + sizeof h, key_len, sum);
        sum = sg_packcache_hash(map + h.table_off, h.n_entries * sizeof(struct pc_entry), sum);
        if (sum != h.checksum) {
            why = "header/table checksum mismatch (corrupt)";
            goto bad;
        }
    }
    if (memcmp(map + sizeof h, pc->key, key_len) != 0) {
        why = "another key (the model files, precision or kernels changed)";
        goto bad;
    }
    pc->table = (const struct pc_entry *)(const void *)(map + h.table_off);
    for (size_t i = 0; i < h.n_entries; i++) {
        const struct pc_entry *e = &pc->table[i];

        if (e->offset % PC_ALIGN != 0 || e->offset < h.data_off || e->bytes > h.file_size ||
            e->offset > h.file_size - e->bytes ||
            memchr(e->name, '\0', sizeof e->name) == NULL ||
            memchr(e->kernel, '\0', sizeof e->kernel) == NULL) {
            why = "an entry lies outside the file";
            goto bad;
        }
        if (sg_packcache_hash(map + e->offset, e->bytes, PC_SEED) != e->hash) {
            why = "packed data checksum mismatch (corrupt)";
            goto bad;
        }
    }
    close(fd);
    pc->map = map;
    pc->map_size = (size_t)st.st_size;
    pc->n_entries = h.n_entries;
    pc->hit = 1;
    return 1;
bad:
    if (warn)
        sg_log(SG_LOG_WARN, "pack cache %s: %s; ignoring it and rebuilding", pc->path, why);
    if (map != MAP_FAILED)
        munmap(map, (size_t)st.st_size);
    pc->table = NULL;
    close(fd);
    return 0;
}

static void release_lock(sg_packcache *pc)
{
    if (pc->lock_fd >= 0) {
        flock(pc->lock_fd, LOCK_UN);
        close(pc->lock_fd);
        pc->lock_fd = -1;
    }
}

int sg_packcache_open(sg_packcache **out, const char *dir, const char *name, const char *key,
                      char *err, size_t errlen)
{
    sg_packcache *pc;
    char stem[65];
    size_t j = 0;
    int rc;

    *out = NULL;
    if (dir == NULL || dir[0] == '\0') {
        snprintf(err, errlen, "pack cache: no folder given");
        return SG_EINVAL;
    }
    rc = make_dirs(dir, err, errlen);
    if (rc != SG_OK)
        return rc;
    pc = calloc(1, sizeof *pc);
    if (pc == NULL || (pc->key = strdup(key)) == NULL) {
        free(pc);
        snprintf(err, errlen, "pack cache: out of memory");
        return SG_ENOMEM;
    }
    atomic_init(&pc->refs, 1);
    pc->lock_fd = -1;
    /* A readable, safe file name: the model's name with other characters as '_'. */
    for (const char *s = name; *s && j < sizeof stem - 1; s++) {
        char c = *s;
        stem[j++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' ? c : '_';
    }
    stem[j] = '\0';
    {
        unsigned long long kh = (unsigned long long)sg_packcache_hash(key, strlen(key), PC_SEED);
        int a = snprintf(pc->path, sizeof pc->path, "%s/%s-%016llx.sgpack", dir, stem, kh);
        int b = snprintf(pc->lock_path, sizeof pc->lock_path, "%s/%s-%016llx.lock", dir, stem,
                         kh);

        if (a < 0 || b < 0 || (size_t)b >= sizeof pc->lock_path) {
            snprintf(err, errlen, "pack cache folder %s: path too long", dir);
            sg_packcache_unref(pc);
            return SG_EINVAL;
        }
    }
    /* Quietly first: a bad file is looked at again, and reported, under the lock. */
    if (try_load(pc, 0)) {
        *out = pc;
        return SG_OK;
    }
    /* Build it: wait for any other process building the same file, then look again. */
    pc->lock_fd = open(pc->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (pc->lock_fd < 0) {
        snprintf(err, errlen, "pack cache %s: %s", pc->lock_path, strerror(errno));
        sg_packcache_unref(pc);
        return SG_EIO;
    }
    while (flock(pc->lock_fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "pack cache %s: flock: %s", pc->lock_path, strerror(errno));
            sg_packcache_unref(pc);
            return SG_EIO;
        }
    }
    if (try_load(pc, 1))
        release_lock(pc);
    *out = pc;
    return SG_OK;
}

int sg_packcache_is_hit(const sg_packcache *pc)
{
    return pc->hit;
}

const char *sg_packcache_path(const sg_packcache *pc)
{
    return pc->path;
}

size_t sg_packcache_count(const sg_packcache *pc)
{
    return pc->hit ? pc->n_entries : pc->n_notes;
}

static void fill_entry(struct pc_entry *e, const sg_tensor *w, const char *kernel, size_t bytes)
{
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", w->name);
    snprintf(e->kernel, sizeof e->kernel, "%s", kernel);
    e->dtype = (int32_t)w->dtype;
    e->ndim = w->ndim;
    e->n = w->shape[0];
    e->k = w->ndim > 1 ? w->shape[1] : 1;
    e->sample = tensor_sample(w);
    e->bytes = bytes;
}

const void *sg_packcache_find(sg_packcache *pc, const sg_tensor *w, const char *kernel,
                              size_t bytes)
{
    struct pc_entry want;

    if (!pc->hit)
        return NULL;
    fill_entry(&want, w, kernel, bytes);
    for (size_t i = 0; i < pc->n_entries; i++) {
        const struct pc_entry *e = &pc->table[i];

        if (strcmp(e->name, want.name) != 0 || strcmp(e->kernel, want.kernel) != 0)
            continue;
        if (e->dtype != want.dtype || e->ndim != want.ndim || e->n != want.n ||
            e->k != want.k || e->sample != want.sample || e->bytes != want.bytes) {
            sg_log(SG_LOG_WARN, "pack cache %s: entry %s (%s) does not match the weight; "
                   "repacking it", pc->path, want.name, want.kernel);
            return NULL;
        }
        sg_packcache_ref(pc);
        return pc->map + e->offset;
    }
    return NULL;
}

int sg_packcache_note(sg_packcache *pc, const sg_tensor *w, const char *kernel,
                      const void *data, size_t bytes)
{
    if (pc->hit)
        return SG_EINVAL;
    if (pc->n_notes == pc->cap_notes) {
        size_t cap = pc->cap_notes ? pc->cap_notes * 2 : 256;
        struct pc_note *n = realloc(pc->notes, cap * sizeof *n);

        if (n == NULL)
            return SG_ENOMEM;
        pc->notes = n;
        pc->cap_notes = cap;
    }
    fill_entry(&pc->notes[pc->n_notes].e, w, kernel, bytes);
    pc->notes[pc->n_notes].data = data;
    pc->n_notes++;
    return SG_OK;
}

static int write_all(int fd, const void *p, size_t n, off_t off)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t w = pwrite(fd, b, n > (1u << 30) ? (1u << 30) : n, off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

int sg_packcache_commit(sg_packcache *pc, char *err, size_t errlen)
{
    struct pc_header h;
    struct pc_entry *table = NULL;
    char tmp[PATH_MAX + 16] = "";
    int created = 0;
    uint8_t *map = MAP_FAILED;
    size_t key_len = strlen(pc->key);
    size_t off;
    int fd = -1;
    int rc = SG_EIO;

    if (pc->hit || pc->n_notes == 0) {
        release_lock(pc);
        return SG_OK;
    }
    table = calloc(pc->n_notes, sizeof *table);
    if (table == NULL) {
        snprintf(err, errlen, "pack cache %s: out of memory", pc->path);
        rc = SG_ENOMEM;
        goto fail;
    }
    memset(&h, 0, sizeof h);
    memcpy(h.magic, PC_MAGIC, sizeof h.magic);
    h.version = SG_PACKCACHE_VERSION;
    h.key_len = (uint32_t)key_len;
    h.n_entries = pc->n_notes;
    h.table_off = align_up(sizeof h + key_len, 8);
    h.data_off = align_up(h.table_off + pc->n_notes * sizeof *table, PC_ALIGN);
    off = h.data_off;
    for (size_t i = 0; i < pc->n_notes; i++) {
        table[i] = pc->notes[i].e;
        table[i].offset = off;
        table[i].hash = sg_packcache_hash(pc->notes[i].data, table[i].bytes, PC_SEED);
        off = align_up(off + table[i].bytes, PC_ALIGN);
    }
    /* No padding after the last weight: the file ends with its last byte. */
    h.file_size = table[pc->n_notes - 1].offset + table[pc->n_notes - 1].bytes;
    h.checksum = sg_packcache_hash(&h, sizeof h, PC_SEED);
    h.checksum = sg_packcache_hash(pc->key, key_len, h.checksum);
    h.checksum = sg_packcache_hash(table, pc->n_notes * sizeof *table, h.checksum);

    snprintf(tmp, sizeof tmp, "%s.XXXXXX", pc->path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "pack cache %s: %s", tmp, strerror(errno));
        goto fail;
    }
    created = 1;
    if (ftruncate(fd, (off_t)h.file_size) != 0 || write_all(fd, &h, sizeof h, 0) != 0 ||
        write_all(fd, pc->key, key_len, (off_t)sizeof h) != 0 ||
        write_all(fd, table, pc->n_notes * sizeof *table, (off_t)h.table_off) != 0) {
        snprintf(err, errlen, "pack cache %s: %s", tmp, strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < pc->n_notes; i++) {
        if (write_all(fd, pc->notes[i].data, table[i].bytes, (off_t)table[i].offset) != 0) {
            snprintf(err, errlen, "pack cache %s: %s", tmp, strerror(errno));
            goto fail;
        }
    }
    if (fchmod(fd, 0644) != 0) {
        snprintf(err, errlen, "pack cache %s: %s", tmp, strerror(errno));
        goto fail;
    }
    /* Map what was written (no need to check it: these are the bytes just hashed), without
     * touching it: the caller swaps its private copies for the mapping one at a time. */
    map = mmap(NULL, (size_t)h.file_size, PROT_READ, MAP_SHARED, fd, 0);
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, errlen, "pack cache %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, pc->path) != 0) {
        snprintf(err, errlen, "pack cache %s: rename: %s", pc->path, strerror(errno));
        goto fail;
    }
    if (map != MAP_FAILED) {
        pc->map = map;
        pc->map_size = (size_t)h.file_size;
        pc->table = (const struct pc_entry *)(const void *)(map + h.table_off);
        pc->n_entries = pc->n_notes;
        pc->hit = 1;
        map = MAP_FAILED;
    }
    free(table);
    release_lock(pc);
    sg_log(SG_LOG_INFO, "pack cache %s: wrote %zu weights, %llu bytes", pc->path, pc->n_notes,
           (unsigned long long)h.file_size);
    return SG_OK;
fail:
    if (map != MAP_FAILED)
        munmap(map, (size_t)h.file_size);
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
    free(table);
    release_lock(pc);
    return rc;
}

void sg_packcache_ref(sg_packcache *pc)
{
    atomic_fetch_add_explicit(&pc->refs, 1, memory_order_relaxed);
}

void sg_packcache_unref(sg_packcache *pc)
{
    if (pc == NULL || atomic_fetch_sub_explicit(&pc->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (pc->map != NULL)
        munmap(pc->map, pc->map_size);
    release_lock(pc);
    free(pc->notes);
    free(pc->key);
    free(pc);
}
