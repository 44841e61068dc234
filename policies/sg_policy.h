#ifndef SG_POLICY_H
#define SG_POLICY_H
/*
 * sg_policy.h: policy definitions (one YAML file per policy) and the prompt template (YAML),
 * loaded from a directory and validated; prompt rendering.
 *
 * A set is immutable once loaded and may be shared by threads. A reload builds a new set and
 * swaps the pointer only on success.
 */

#include <stddef.h>

typedef enum sg_policy_err {
    SG_POLICY_OK = 0,
    SG_POLICY_ENOMEM = -1,
    SG_POLICY_EIO = -2,     /* a file or the directory could not be read */
    SG_POLICY_ESYNTAX = -3, /* YAML syntax error */
    SG_POLICY_EINVALID = -4, /* valid YAML, invalid policy: unknown/missing key, bad value */
    SG_POLICY_EINVAL = -5,  /* a bad argument from the caller */
    SG_POLICY_ERR_COUNT = 6
} sg_policy_err;

const char *sg_policy_strerror(int err);

typedef enum sg_prompt_mode {
    SG_MODE_PROMPT = 0,   /* classify a user message */
    SG_MODE_RESPONSE = 1, /* classify a model response to a user message */
    SG_MODE_COUNT
} sg_prompt_mode;

typedef struct sg_policy {
    const char *name;        /* "hate": [a-z0-9_-]+, unique in the set */
    const char *title;
    const char *description;
    const char *guideline[SG_MODE_COUNT]; /* inserted after the template's "* " */
    double threshold;        /* in [0, 1] */
    int enabled;             /* evaluated when a request names no policies */
    const char *file;        /* the file it came from */
} sg_policy;

typedef struct sg_policy_set sg_policy_set;

/*
 * Load every *.yaml in `dir` (the template file and the policies). On failure returns a
 * negative sg_policy_err and writes "file:line:column: message" into `err`.
 * The caller owns *out (sg_policy_set_free).
 */
int sg_policy_set_load(sg_policy_set **out, const char *dir, char *err, size_t errlen);
void sg_policy_set_free(sg_policy_set *set);

size_t sg_policy_count(const sg_policy_set *set);
/* Borrowed, valid until sg_policy_set_free(); NULL when out of range / not found. */
const sg_policy *sg_policy_at(const sg_policy_set *set, size_t i);
const sg_policy *sg_policy_find(const sg_policy_set *set, const char *name);
/* The answer pieces of the template ("Yes", "No"). Borrowed. */
const char *sg_policy_answer_yes(const sg_policy_set *set);
const char *sg_policy_answer_no(const sg_policy_set *set);

#endif /* SG_POLICY_H */
