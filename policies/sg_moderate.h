#ifndef SG_MODERATE_H
#define SG_MODERATE_H
/*
 * sg_moderate.h: the moderation step, shared by the daemon and shieldctl so that they can
 * never disagree: text (+ optional response) -> one rendered prompt per policy -> tokens ->
 * engine (shared prefix once, the policy suffixes as branches) -> P(violation) per policy.
 *
 *     P = (exp(zYes/T) + a) / (exp(zYes/T) + exp(zNo/T) + 2a)     (T = 1, a = 0 by default)
 *
 * A moderator owns one engine context (KV cache, the cached template preamble). It is not
 * thread-safe: use one per thread.
 */

#include <stddef.h>
#include <stdint.h>

#include "sg_engine.h"
#include "sg_policy.h"
#include "sg_tok.h"

typedef struct sg_moderate_opts {
    double temperature;   /* T > 0; default 1 */
    double smoothing;     /* a >= 0; default 0 */
    int truncate;         /* 0 (default): SG_ERANGE when a prompt exceeds max_tokens;
                             1: cut the longer of the user text and the response from its end
                             (both to the same length if need be) until every prompt fits */
    int max_tokens;       /* per rendered prompt; 0: the model's context length */
    int precision;        /* -1: the model's */
    sg_prefix_cache *prefix_cache; /* borrowed, shared with other moderators (NULL: none):
                                      the shared prefix of every request is looked up there
                                      and stored there; it must outlive the moderator and be
                                      for the same model and precision */
} sg_moderate_opts;

/* T = 1, a = 0, no truncation, the model's context as the limit, the model's precision, no
 * prefix cache. */
sg_moderate_opts sg_moderate_opts_default(void);

typedef struct sg_moderate_req {
    const char *text;      /* UTF-8 user message (required, not empty) */
    size_t text_len;       /* 0: strlen(text) */
    const char *response;  /* UTF-8 model response; NULL: prompt-only mode */
    size_t response_len;   /* 0: strlen(response) */
    const char *const *policies; /* names; NULL/0: every enabled policy of the set */
    size_t n_policies;
} sg_moderate_req;

typedef struct sg_policy_score {
    const sg_policy *policy; /* borrowed from the set passed to sg_moderate() */
    double probability;
    int violation;           /* probability >= threshold */
    double threshold;
} sg_policy_score;

typedef struct sg_moderate_result {
    sg_policy_score *scores; /* n_scores, in the order of the request (or of the set) */
    size_t n_scores;
    int flagged;             /* any violation */
    size_t prompt_tokens;    /* tokens of all rendered prompts together */
    size_t computed_tokens;  /* tokens actually run through the model for this request */
    int truncated;           /* 1 if the input was cut to fit */
    size_t text_bytes;       /* bytes of the text classified (fewer than given when cut) */
    size_t response_bytes;   /* the same for the response (0 in prompt-only mode) */
    size_t cached_tokens;    /* tokens of the shared prefix not computed: rows reused from
                                earlier requests (the context's trunk or the prefix cache) */
} sg_moderate_result;

typedef struct sg_moderator sg_moderator;

/*
 * A moderator for model `m` (borrowed: it must outlive the moderator; its tokenizer is used),
 * with `opts` (NULL: the defaults). It creates one engine context whose trunk keeps the shared
 * prefix of the last request, so that the next one recomputes only what differs; with a prefix
 * cache (opts->prefix_cache) the prefixes of many earlier requests are reused as well. The caller
 * owns *out (sg_moderator_free). Errors: SG_EINVAL (bad option, no tokenizer), SG_ERANGE
 * (max_tokens over the model's context), or the engine's; the message goes to `err`.
 */
int sg_moderator_new(sg_moderator **out, sg_model *m, const sg_moderate_opts *opts, char *err,
                     size_t errlen);
/* Free a moderator and its context (NULL is fine). */
void sg_moderator_free(sg_moderator *mod);
/* The message of the last failure. Never NULL. */
const char *sg_moderator_errmsg(const sg_moderator *mod);

/*
 * Classify one request against `set`. Fills *res (the caller releases it with
 * sg_moderate_result_free). Errors: SG_EINVAL (unknown policy, invalid UTF-8, empty text),
 * SG_ERANGE (too long and truncation off), SG_ECOMPUTE (a compute kernel failed at run time:
 * a server error, never a score), others from the engine; the message names the cause. On any
 * error *res holds no scores.
 */
int sg_moderate(sg_moderator *mod, const sg_policy_set *set, const sg_moderate_req *req,
                sg_moderate_result *res);
/* Free the scores of a result and zero it (NULL is fine). */
void sg_moderate_result_free(sg_moderate_result *res);

/*
 * Render the exact prompt text of `policy` for a request into a malloc'd NUL-terminated string
 * (*out, caller frees), for `shieldctl render`. `response` NULL: prompt-only mode.
 * Returns SG_OK, SG_EINVAL (NULL argument) or SG_ENOMEM.
 */
int sg_moderate_render(const sg_policy_set *set, const sg_policy *policy, const char *text,
                       const char *response, char **out);

/*
 * Tokenize the prompt of `policy` exactly as sg_moderate() does: template text (and the
 * guideline) in SG_TOK_TEMPLATE mode, the user's text and the response in SG_TOK_USER mode, BPE
 * running across the seams as if the prompt were one string. *ids is malloc'd (caller frees),
 * *n its length. `response` NULL: prompt-only mode. Returns SG_OK, SG_EINVAL (NULL argument,
 * invalid UTF-8) or SG_ENOMEM.
 */
int sg_moderate_tokenize(const sg_tok *tok, const sg_policy_set *set, const sg_policy *policy,
                         const char *text, size_t text_len, const char *response,
                         size_t response_len, int32_t **ids, size_t *n);

#endif /* SG_MODERATE_H */
