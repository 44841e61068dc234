#ifndef SG_PACKCACHE_H
#define SG_PACKCACHE_H
/*
 * packcache.h (internal to engine/): the packed-weight cache.
 *
 * The fast kernels repack every weight at load (fastmm.h). The cache keeps those packed bytes
 * in one file per model + precision + kernel layouts + CPU features, so that later loads map
 * the file read-only and MAP_SHARED instead of repacking: load is fast and every process
 * serving the same model shares the same physical pages (page cache).
 *
 * File (all integers little-endian, as this engine only runs on x86-64):
 *
 *   header   64 bytes: magic "SGPACK\r\n", version, key length, entry count, table offset,
 *            data offset, file size, header+key+table checksum
 *   key      the cache key, text: model identity (path, size and mtime of its files), precision,
 *            CPU features, each kernel's layout version, engine version; compared exactly
 *   table    one entry per weight: tensor name, kernel, dtype, shape, a hash of the first and
 *            last bytes of the tensor's data, offset, size and checksum of the packed bytes
 *   data     the packed weights, each at a page-aligned offset
 *
 * A file is trusted only when magic, version, key, sizes and every checksum (header, table and
 * data) agree; otherwise it is ignored with a warning and rebuilt. A file is written to a
 * temporary name in the same folder and renamed into place, so a reader sees a whole file or
 * none; processes building the same file at once serialise on an flock()ed lock file beside it,
 * so the second one waits and then maps what the first one wrote.
 *
 * Every fast kernel is cached. The avx2 kernels' panels are plain bytes (their layout version
 * is in the key). oneDNN's blocked layouts (dnnl-bf16, dnnl-u8s8) are opaque and chosen by its
 * JIT per ISA, so a oneDNN weight is stored with the memory descriptors oneDNN chose (a plain
 * struct in oneDNN 2.x), its scales and compensations; at load the primitives are created again
 * and the cached bytes are used only when dnnl_memory_desc_equal says oneDNN picked the same
 * layouts, and the key names oneDNN's version, build hash and the CPU's VNNI (the int8 range).
 */

#include <stddef.h>
#include <stdint.h>

#include "sg_engine.h"
#include "tensor.h"

typedef struct sg_packcache sg_packcache;

/* Version of the file format; part of every key. */
#define SG_PACKCACHE_VERSION 1

/*
 * Open the cache for one model at one precision: the file dir/<name>-<hash of key>.sgpack.
 * `key` identifies everything outside the tensors that changes packed bytes (the model builds
 * it: sg_model_pack_key; the cache only stores and compares it). When a valid file is there, the cache is a hit and sg_packcache_find answers from
 * the mapping; else (no file, or one that fails validation: logged as a warning) it is a miss
 * and collects packed weights for sg_packcache_commit. On a miss this process takes the folder's
 * lock for this key (waiting for another process that holds it, then looking again), released
 * by commit or by the last unref. The caller owns one reference (sg_packcache_unref).
 * Returns SG_OK; SG_EIO when `dir` cannot be created or read (message in err; the caller loads
 * without a cache); SG_ENOMEM; SG_EINVAL for an empty dir.
 */
int sg_packcache_open(sg_packcache **out, const char *dir, const char *name, const char *key,
                      char *err, size_t errlen);
/* 1 when the cache answers from a valid file, 0 when it collects for commit. */
int sg_packcache_is_hit(const sg_packcache *pc);
/* The cache file's path. Borrowed. */
const char *sg_packcache_path(const sg_packcache *pc);

/*
 * The packed bytes of weight `w` for `kernel`, when the (hit) cache has an entry with the same
 * name, kernel, dtype, shape, data sample and exactly `bytes` bytes; NULL otherwise. On success
 * the caller holds a new reference to `pc` (the mapping lives until the last unref).
 */
const void *sg_packcache_find(sg_packcache *pc, const sg_tensor *w, const char *kernel,
                              size_t bytes);
/*
 * Remember (miss) the packed bytes of `w` for `kernel` to write at commit. `data` is borrowed
 * and must stay valid until commit. SG_OK, SG_ENOMEM, SG_EINVAL on a hit cache.
 */
int sg_packcache_note(sg_packcache *pc, const sg_tensor *w, const char *kernel,
                      const void *data, size_t bytes);
/* Entries noted so far (miss) or in the file (hit). */
size_t sg_packcache_count(const sg_packcache *pc);
/*
 * Write the noted weights to the cache file (temporary file + rename) and release the lock.
 * After a successful write the cache is a hit on the file just written (mapped, not yet
 * touched), so the caller can swap its private copies for the shared pages (sg_packcache_find).
 * SG_OK (also when nothing was noted: no file is written, the cache stays a miss); SG_EIO with
 * a message when the file could not be written (nothing is left behind).
 */
int sg_packcache_commit(sg_packcache *pc, char *err, size_t errlen);

/* Take / drop a reference; the last drop unmaps the file and releases the lock (NULL-safe). */
void sg_packcache_ref(sg_packcache *pc);
void sg_packcache_unref(sg_packcache *pc);

/* A 64-bit checksum of n bytes (4 interleaved multiply-rotate lanes; not cryptographic). */
uint64_t sg_packcache_hash(const void *p, size_t n, uint64_t seed);

#endif /* SG_PACKCACHE_H */
