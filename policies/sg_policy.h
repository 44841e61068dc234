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

/* Static description of an sg_policy_err; never NULL. */
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
    const char *const *openai_categories; /* OpenAI moderation categories it answers for */
    size_t n_openai_categories;
    const char *file;        /* the file it came from */
} sg_policy;

typedef struct sg_policy_set sg_policy_set;

/*
 * Load every *.yaml (and *.yml) in `dir` not starting with '.': template.yaml holds the
 * prompt templates and the answer pieces, every other file is one policy. Everything is
 * validated (keys, types, names unique across files, guidelines, thresholds in [0, 1], UTF-8,
 * template placeholders). On failure returns a negative sg_policy_err, leaves *out NULL and
 * writes the first problem as "file:line:column: message" into `err` (or "dir: message").
 * The caller owns *out (sg_policy_set_free).
 */
int sg_policy_set_load(sg_policy_set **out, const char *dir, char *err, size_t errlen);
/* Free a set and everything it owns (NULL is fine). */
void sg_policy_set_free(sg_policy_set *set);

/* Policies in the set, in file-name order (0 for NULL). */
size_t sg_policy_count(const sg_policy_set *set);
/* Borrowed, valid until sg_policy_set_free(); NULL when out of range / not found. */
const sg_policy *sg_policy_at(const sg_policy_set *set, size_t i);
const sg_policy *sg_policy_find(const sg_policy_set *set, const char *name);
/* The answer pieces of the template ("Yes", "No"). Borrowed. */
const char *sg_policy_answer_yes(const sg_policy_set *set);
const char *sg_policy_answer_no(const sg_policy_set *set);
/* The directory the set was loaded from, and the template file. Borrowed. */
const char *sg_policy_set_dir(const sg_policy_set *set);
const char *sg_policy_template_file(const sg_policy_set *set);

/* ---- Rendering ----------------------------------------------------------------------------- */

/* What a part of a rendered prompt is. Template text (and the operator's guideline) may hold
 * special tokens; the user's and the response's text never do (tokenize them in user mode). */
typedef enum sg_prompt_slot {
    SG_SLOT_TEMPLATE = 0, /* literal template text */
    SG_SLOT_USER = 1,     /* {USER}: the user message */
    SG_SLOT_RESPONSE = 2, /* {RESPONSE}: the model response (response mode only) */
    SG_SLOT_GUIDELINE = 3, /* {GUIDELINE}: the policy's guideline for the mode */
    SG_SLOT_COUNT
} sg_prompt_slot;

typedef struct sg_prompt_part {
    sg_prompt_slot slot;
    const char *text; /* borrowed: from the set, the policy or the caller's texts */
    size_t len;
} sg_prompt_part;

/* A rendered prompt never has more parts than this (3 placeholders, 4 texts around them). */
#define SG_PROMPT_MAX_PARTS 8

/*
 * Render the prompt of `policy` in `mode` for `user` (and `response`, response mode only) as
 * parts in order; their concatenation is the exact prompt text. Parts of length 0 are left
 * out. Nothing is copied or allocated: the parts point into the set, the policy and the
 * caller's texts, and are valid as long as those are. `parts` has room for
 * SG_PROMPT_MAX_PARTS. Returns the number of parts, or SG_POLICY_EINVAL for a bad argument
 * (NULL, an unknown mode, a response in prompt mode or none in response mode).
 */
int sg_policy_render(const sg_policy_set *set, const sg_policy *policy, sg_prompt_mode mode,
                     const char *user, size_t user_len, const char *response,
                     size_t response_len, sg_prompt_part *parts);

#endif /* SG_POLICY_H */
