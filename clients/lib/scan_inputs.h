#ifndef SG_SCAN_INPUTS_H
#define SG_SCAN_INPUTS_H
/*
 * scan_inputs.h: the input files of a scan or the shard files of a merge, from names and glob
 * patterns. A name with *, ? or [ is a glob(3) pattern whose matches come in sorted order; a
 * pattern that matches nothing is an error (not a file named '*.jsonl'). Other names pass as
 * they are ("-" included), so a missing file is reported by whoever opens it.
 */

#include <stddef.h>

typedef struct sg_scan_paths {
    char **v;   /* malloc'd strings */
    size_t n;
} sg_scan_paths;

/*
 * Expand `names` (n of them) in order into *out (free with sg_scan_paths_free). Returns 0, or
 * -1 with a message in err.
 */
int sg_scan_paths_expand(const char *const *names, size_t n, sg_scan_paths *out, char *err,
                         size_t errlen);
void sg_scan_paths_free(sg_scan_paths *p);

#endif /* SG_SCAN_INPUTS_H */
