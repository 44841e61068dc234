#ifndef SG_DAEMON_JSONFMT_H
#define SG_DAEMON_JSONFMT_H
/*
 * jsonfmt.h: JSON text whose numbers read back exactly and no longer than needed. jansson
 * prints a real with a fixed precision (%.17g prints a threshold of 0.4 as
 * 0.40000000000000002); this prints each real in the shortest form that strtod() reads back
 * as the same double (0.4, 0.123456789012345678 -> 0.12345678901234568).
 */

#include <stddef.h>

#include <jansson.h>

/* json_dumps(root, flags) with every real rewritten in its shortest round-trip form. `flags`
 * should carry JSON_REAL_PRECISION(17) so that the reals to rewrite are exact. NULL when out of
 * memory; the caller frees the string. */
char *json_dumps_shortest(const json_t *root, size_t flags);

/* Write the shortest decimal form of `v` that reads back as `v` (with a ".0" when it would
 * look like an integer) into buf (cap >= 32). Returns its length. */
size_t json_real_shortest(double v, char *buf, size_t cap);

#endif /* SG_DAEMON_JSONFMT_H */
