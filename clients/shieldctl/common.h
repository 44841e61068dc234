#ifndef SG_CTL_COMMON_H
#define SG_CTL_COMMON_H
/*
 * common.h: helpers shared by shieldctl subcommands: reading TEXT|- arguments and printing a
 * classification, in-process or from the daemon, as the JSON of POST /v1/classify or as a table.
 * (Not named ctl_*.c: the Makefile turns those into subcommands.)
 */

#include <stdio.h>

#include <jansson.h>

#include "sg_engine.h"
#include "sg_moderate.h"
#include "sg_policy.h"
#include "sg_tok.h"

/*
 * The text of a TEXT|- argument: `arg` itself, or all of stdin for "-" (exact bytes, no newline
 * stripped). *out is malloc'd and NUL-terminated (caller frees), *len its length. Returns 0, or
 * -1 after printing a message to stderr (read error, a NUL byte in stdin).
 */
int ctl_read_text(const char *arg, char **out, size_t *len);

/*
 * Read all of `f` into *out, malloc'd and NUL-terminated (caller frees; the bytes may hold NULs),
 * *len its length. Returns 0, SG_ENOMEM, or SG_EIO on a read error; prints nothing.
 */
int ctl_read_stream(FILE *f, char **out, size_t *len);

/*
 * Parse the integer `s` of option `opt` of `cmd` into *out, which must lie in [lo, hi]. Returns
 * 0, or -1 after printing "shieldctl CMD: OPT wants an integer >= LO, not 'S'" (hi == INT_MAX)
 * or "... an integer in [LO, HI] ...".
 */
int ctl_parse_int(const char *cmd, const char *opt, const char *s, int lo, int hi, int *out);

/* The same for a number: -1 after printing "shieldctl CMD: OPT wants a number, not 'S'". */
int ctl_parse_double(const char *cmd, const char *opt, const char *s, double *out);


/*
 * Open the tokenizer at `path` (sg_tok_open) into *out (caller frees with sg_tok_free()). Returns
 * 0, or -1 after printing "shieldctl CMD: MESSAGE".
 */
int ctl_tok_open(const char *cmd, const char *path, sg_tok **out);

/*
 * What an in-process subcommand loads, each piece only when its out-pointer is not NULL: the
 * policy directory `dir` into *set, the model at `model_path` with `mo` into *model, and a
 * moderator on *model (so `model` too) with `opts` into *mod. The caller frees whatever was
 * set, on failure too (sg_moderator_free, sg_model_close, sg_policy_set_free). Returns 0, or -1
 * after printing "shieldctl CMD: MESSAGE".
 */
int ctl_load(const char *cmd, const char *dir, const char *model_path, const sg_model_opts *mo,
             const sg_moderate_opts *opts, sg_policy_set **set, sg_model **model,
             sg_moderator **mod);

/*
 * Print `j` to `f` on one line (json_dumps with `flags`) and a newline. Returns 0, or -1 (out of
 * memory; nothing printed).
 */
int ctl_print_json(FILE *f, const json_t *j, size_t flags);

/*
 * Print a /v1/classify reply (sg_moderate_result_json() or the daemon's) to `f`: the JSON on
 * one line when `as_json`, else a readable table. Returns 0, or -1 if the reply lacks "results".
 */
int ctl_print_classify(FILE *f, json_t *reply, int as_json);

#endif /* SG_CTL_COMMON_H */
