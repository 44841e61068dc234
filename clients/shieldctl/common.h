#ifndef SG_CTL_COMMON_H
#define SG_CTL_COMMON_H
/*
 * common.h: helpers shared by shieldctl subcommands: reading TEXT|- arguments and printing a
 * classification, in-process or from the daemon, as the JSON of POST /v1/classify or as a table.
 * (Not named ctl_*.c: the Makefile turns those into subcommands.)
 */

#include <stdio.h>

#include <jansson.h>

/*
 * The text of a TEXT|- argument: `arg` itself, or all of stdin for "-" (exact bytes, no newline
 * stripped). *out is malloc'd and NUL-terminated (caller frees), *len its length. Returns 0, or
 * -1 after printing a message to stderr (read error, a NUL byte in stdin).
 */
int ctl_read_text(const char *arg, char **out, size_t *len);

/*
 * Print a /v1/classify reply (sg_moderate_result_json() or the daemon's) to `f`: the JSON on
 * one line when `as_json`, else a readable table. Returns 0, or -1 if the reply lacks "results".
 */
int ctl_print_classify(FILE *f, json_t *reply, int as_json);

#endif /* SG_CTL_COMMON_H */
