#ifndef SG_SCAN_META_H
#define SG_SCAN_META_H
/*
 * scan_meta.h: the sidecar of a `shieldctl scan` output, OUT.meta.json. It says which input,
 * settings and shard the lines of OUT belong to, so that a resume or a merge refuses a file
 * that is not what it seems, and (once the scan finished) how many items it holds:
 *
 *   {"shieldctl_scan": 1,
 *    "shard": {"index": 1, "count": 4, "by": "item"},
 *    "inputs": [{"path": "data.jsonl", "size": 81234, "fingerprint": "fnv1a64:..."}],
 *    "settings": {"format": "jsonl", "field": "text", "response_field": null, "id_field": "id",
 *                 "policies": []},
 *    "complete": true, "lines": 500, "total": 2000, "file_items": [2000]}
 *
 * The identity of an input is its size and a hash of its first and last MiB, not its path: the
 * tasks of a cluster may see the same file under different mount points. Standard input has no
 * identity beyond "-". "lines", "total" (items in all the inputs) and "file_items" (items per
 * input file) are written only when "complete" is true.
 */

#include <stddef.h>

#include <jansson.h>

#include "scan_shard.h"

/* "OUT.meta.json", malloc'd; NULL when out of memory. */
char *sg_scan_meta_path(const char *out);

/*
 * The identity of the input file `path` ({"path": "-"} for "-"). Returns a new reference, or
 * NULL with a message in err (the file cannot be opened or read).
 */
json_t *sg_scan_input_identity(const char *path, char *err, size_t errlen);

/*
 * A new incomplete sidecar for shard `sh` sharded `by` ("item" or "file"); steals `inputs`
 * (array of identities) and `settings`. NULL when out of memory.
 */
json_t *sg_scan_meta_new(const sg_scan_shard *sh, const char *by, json_t *inputs,
                         json_t *settings);

/*
 * Read the sidecar of `out` into *meta (new reference). Returns 0, 1 when there is none, or -1
 * with a message in err (unreadable, not JSON, not a scan sidecar).
 */
int sg_scan_meta_load(const char *out, json_t **meta, char *err, size_t errlen);

/*
 * Write `meta` as the sidecar of `out`: a temporary file, fsync, rename (a crash leaves the old
 * sidecar or the new one). Returns 0, or -1 with a message in err.
 */
int sg_scan_meta_save(const char *out, const json_t *meta, char *err, size_t errlen);

/*
 * Compare the identity (shard, input sizes and fingerprints, settings) of `have` (from disk)
 * with `want`. Returns 0 when the same, or -1 with the first difference in err, e.g.
 * "it holds shard 1/4, this is shard 2/4".
 */
int sg_scan_meta_same(const json_t *have, const json_t *want, char *err, size_t errlen);

/* "I/N" of a sidecar into buf (for messages). */
const char *sg_scan_meta_shard_str(const json_t *meta, char *buf, size_t len);

#endif /* SG_SCAN_META_H */
