/*
 * moderate.c: the moderation step shared by the daemon and shieldctl. sg_moderate() runs it in
 * named steps:
 *
 *   read_request   the texts (non-empty, valid UTF-8) and the answer pieces' ids
 *   fit_prompts    one prompt per policy (sg_policy_render) -> token ids (template text in
 *                  template mode, user and response text in user mode, BPE across the seams);
 *                  cut the input to fit when truncation is on
 *   common_prefix  the longest common token prefix of all prompts
 *   sync_trunk     the trunk of the moderator's context made to hold that prefix, reusing
 *                  whatever it already holds from earlier requests (at least the preamble)
 *                  and, with a prefix cache, the longest cached prefix of many requests
 *                  (sg_ctx_sync_prefix)
 *   run_branches   every policy's remaining tokens as batches of branches, within the limits
 *                  the context reports (sg_ctx_branch_limits)
 *   score          the "Yes"/"No" logits at each branch's last position -> P(violation)
 *
 * Any engine failure (a kernel that fails at run time included: SG_ECOMPUTE) fails the whole
 * request with its code and message; it never becomes a probability.
 *
 * Allocation happens per request (token buffers), never per token.
 */
#include "sg_moderate.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


struct sg_moderator {
    sg_model *model;
    const sg_tok *tok;
    sg_ctx *ctx;             /* its trunk keeps the last request's shared prefix */
    sg_moderate_opts opts;
    int max_tokens;          /* per prompt, resolved */
    size_t max_branches;     /* per sg_ctx_branches() call (the context's limits) */
    size_t max_branch_tokens;
    char errmsg[512];
};

/* One rendered and tokenized prompt. */
typedef struct prompt {
    const sg_policy *policy;
    int32_t *ids; /* malloc'd */
    size_t n;
} prompt;

sg_moderate_opts sg_moderate_opts_default(void)
{
    sg_moderate_opts o;

    memset(&o, 0, sizeof o);
    o.temperature = 1.0;
    o.smoothing = 0.0;
    o.truncate = 0;
    o.max_tokens = 0;
    o.precision = -1;
    o.prefix_cache = NULL;
    return o;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int set_err(sg_moderator *mod, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sg_verrf(mod->errmsg, sizeof mod->errmsg, code, NULL, fmt, ap);
    va_end(ap);
    return code;
}

int sg_moderator_new(sg_moderator **out, sg_model *m, const sg_moderate_opts *opts, char *err,
                     size_t errlen)
{
    sg_moderator *mod = NULL;
    const sg_model_info *info;
    sg_ctx_opts co = sg_ctx_opts_default();
    sg_moderate_opts o = opts ? *opts : sg_moderate_opts_default();
    int rc;

    if (err && errlen)
        err[0] = '\0';
    if (!out || !m) {
        rc = SG_EINVAL;
        if (err && errlen)
            snprintf(err, errlen, "sg_moderator_new: NULL argument");
        return rc;
    }
    *out = NULL;
    info = sg_model_get_info(m);
    if (!(o.temperature > 0.0) || !isfinite(o.temperature)) {
        if (err && errlen)
            snprintf(err, errlen, "temperature must be a finite number > 0, not %g",
                     o.temperature);
        return SG_EINVAL;
    }
    if (!(o.smoothing >= 0.0) || !isfinite(o.smoothing)) {
        if (err && errlen)
            snprintf(err, errlen, "smoothing must be a finite number >= 0, not %g", o.smoothing);
        return SG_EINVAL;
    }
    if (o.max_tokens < 0 || (info->n_ctx > 0 && o.max_tokens > info->n_ctx)) {
        if (err && errlen)
            snprintf(err, errlen, "max_tokens %d is outside [0, %d] (the model's context length)",
                     o.max_tokens, info->n_ctx);
        return SG_ERANGE;
    }
    if (!sg_model_tok(m)) {
        if (err && errlen)
            snprintf(err, errlen, "the model has no tokenizer (tokenizer.json or "
                                  "tokenizer.model beside it, or GGUF metadata)");
        return SG_EINVAL;
    }
    mod = calloc(1, sizeof *mod);
    if (!mod) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return SG_ENOMEM;
    }
    mod->model = m;
    mod->tok = sg_model_tok(m);
    mod->opts = o;
    mod->max_tokens = o.max_tokens > 0 ? o.max_tokens : info->n_ctx;
    co.n_ctx = mod->max_tokens;
    co.precision = o.precision;
    rc = sg_ctx_new(&mod->ctx, m, &co, err, errlen);
    if (rc < 0) {
        free(mod);
        return rc;
    }
    sg_ctx_branch_limits(mod->ctx, &mod->max_branches, &mod->max_branch_tokens);
    *out = mod;
    return SG_OK;
}

void sg_moderator_free(sg_moderator *mod)
{
    if (!mod)
        return;
    sg_ctx_free(mod->ctx);
    free(mod);
}

const char *sg_moderator_errmsg(const sg_moderator *mod)
{
    return mod ? mod->errmsg : "no moderator";
}

/* ---- Tokenization ---------------------------------------------------------------------------- */

/* Tokenize the prompt of `policy` into *ids (malloc'd) / *n. */
static int encode_prompt(const sg_tok *tok, const sg_policy_set *set, const sg_policy *policy,
                         const char *text, size_t text_len, const char *response,
                         size_t response_len, int32_t **ids, size_t *n)
{
    sg_prompt_part parts[SG_PROMPT_MAX_PARTS];
    sg_tok_seg segs[SG_PROMPT_MAX_PARTS];
    sg_prompt_mode mode = response ? SG_MODE_RESPONSE : SG_MODE_PROMPT;
    size_t bytes = 0;
    size_t cap;
    int32_t *buf;
    int np;
    int rc;

    *ids = NULL;
    *n = 0;
    np = sg_policy_render(set, policy, mode, text, text_len, response, response_len, parts);
    if (np < 0)
        return SG_EINVAL;
    for (int i = 0; i < np; i++) {
        segs[i].text = parts[i].text;
        segs[i].len = parts[i].len;
        /* The user's and the response's texts are never parsed for special tokens; the
         * template and the operator's guideline are trusted, as in apply_chat_template. */
        segs[i].mode = (parts[i].slot == SG_SLOT_USER || parts[i].slot == SG_SLOT_RESPONSE)
                           ? SG_TOK_USER
                           : SG_TOK_TEMPLATE;
        bytes += parts[i].len;
    }
    /* Every token covers at least one byte, so this is enough; the retry is a safety net. */
    cap = bytes + 8;
    for (;;) {
        size_t got = 0;

        buf = malloc(cap * sizeof *buf);
        if (!buf)
            return SG_ENOMEM;
        rc = sg_tok_encode_segs(tok, segs, (size_t)np, buf, cap, &got);
        if (rc == SG_ERANGE && got > cap) {
            free(buf);
            cap = got;
            continue;
        }
        if (rc < 0) {
            free(buf);
            return rc;
        }
        *ids = buf;
        *n = got;
        return SG_OK;
    }
}

int sg_moderate_tokenize(const sg_tok *tok, const sg_policy_set *set, const sg_policy *policy,
                         const char *text, size_t text_len, const char *response,
                         size_t response_len, int32_t **ids, size_t *n)
{
    if (!ids || !n)
        return SG_EINVAL;
    *ids = NULL;
    *n = 0;
    if (!tok || !set || !policy || !text)
        return SG_EINVAL;
    if (!sg_utf8_valid(text, text_len, NULL) ||
        (response && !sg_utf8_valid(response, response_len, NULL)))
        return SG_EINVAL;
    return encode_prompt(tok, set, policy, text, text_len, response, response_len, ids, n);
}

/* ---- Scoring ----------------------------------------------------------------------------------- */

static double logsumexp(const double *x, int n)
{
    double m = -INFINITY;
    double s = 0.0;

    for (int i = 0; i < n; i++)
        if (x[i] > m)
            m = x[i];
    if (m == -INFINITY)
        return m;
    for (int i = 0; i < n; i++)
        s += exp(x[i] - m);
    return m + log(s);
}

/*
 * P(violation) = (exp(zy/T) + a) / (exp(zy/T) + exp(zn/T) + 2a), in the log domain so that a
 * small T cannot overflow: log P = lse(zy/T, log a) - lse(zy/T, zn/T, log 2a).
 */
static double probability(double zy, double zn, double T, double a)
{
    double num[2];
    double den[3];

    if (a == 0.0)
        return 1.0 / (1.0 + exp((zn - zy) / T));
    num[0] = zy / T;
    num[1] = log(a);
    den[0] = zy / T;
    den[1] = zn / T;
    den[2] = log(2.0 * a);
    return exp(logsumexp(num, 2) - logsumexp(den, 3));
}

/* ---- Requests --------------------------------------------------------------------------------- */

static void free_prompts(prompt *pr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(pr[i].ids);
        pr[i].ids = NULL;
        pr[i].n = 0;
    }
}

/* Tokenize every prompt for the texts as given; *longest receives the largest count. */
static int encode_all(sg_moderator *mod, const sg_policy_set *set, prompt *pr, size_t n,
                      const char *text, size_t text_len, const char *resp, size_t resp_len,
                      size_t *longest)
{
    *longest = 0;
    free_prompts(pr, n);
    for (size_t i = 0; i < n; i++) {
        int rc = encode_prompt(mod->tok, set, pr[i].policy, text, text_len, resp, resp_len,
                               &pr[i].ids, &pr[i].n);

        if (rc < 0)
            return set_err(mod, rc, "tokenizing the prompt of policy '%s' failed: %s",
                           pr[i].policy->name, sg_engine_strerror(rc));
        if (pr[i].n > *longest)
            *longest = pr[i].n;
    }
    return SG_OK;
}

/*
 * Cut the user text and the response to at most `cap` bytes each (at character boundaries),
 * tokenize every prompt, and say whether they all fit.
 */
static int try_cap(sg_moderator *mod, const sg_policy_set *set, prompt *pr, size_t n,
                   const char *text, size_t text_full, const char *resp, size_t resp_full,
                   size_t cap, int *rc)
{
    size_t tl = text_full < cap ? text_full : sg_utf8_floor(text, cap);
    size_t rl = resp_full < cap ? resp_full : sg_utf8_floor(resp, cap);
    size_t longest;

    *rc = encode_all(mod, set, pr, n, text, tl, resp, resp ? rl : 0, &longest);
    return *rc == SG_OK && longest <= (size_t)mod->max_tokens;
}

/*
 * Truncation: the largest byte cap such that, with the user text and the response each cut to
 * at most that many bytes (from the end, at a character boundary), every prompt fits. A short
 * text is thus kept whole while a long one is cut, and two long ones end up equally long.
 * Found by bisection (token counts grow with the cap). On success the prompts are left
 * tokenized for the cut texts, whose lengths go to *text_len and *resp_len; returns 1. Returns
 * 0 if not even empty texts fit, or on error (*rc says which).
 */
static int fit_by_cutting(sg_moderator *mod, const sg_policy_set *set, prompt *pr, size_t n,
                          const char *text, size_t *text_len, const char *resp, size_t *resp_len,
                          int *rc)
{
    size_t lo = 0;                                   /* fits (checked first) */
    size_t hi = *text_len > *resp_len ? *text_len : *resp_len; /* does not fit */

    if (!try_cap(mod, set, pr, n, text, *text_len, resp, *resp_len, 0, rc))
        return 0;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        if (try_cap(mod, set, pr, n, text, *text_len, resp, *resp_len, mid, rc))
            lo = mid;
        else if (*rc < 0)
            return 0;
        else
            hi = mid;
    }
    if (!try_cap(mod, set, pr, n, text, *text_len, resp, *resp_len, lo, rc))
        return 0;
    if (*text_len > lo)
        *text_len = sg_utf8_floor(text, lo);
    if (*resp_len > lo)
        *resp_len = sg_utf8_floor(resp, lo);
    return 1;
}

/* Resolve the request's policies (or every enabled one) into pr[] (zeroed, capacity cap). */
static int resolve_policies(sg_moderator *mod, const sg_policy_set *set,
                            const sg_moderate_req *req, prompt **out, size_t *n_out)
{
    size_t cap = req->n_policies ? req->n_policies : sg_policy_count(set);
    prompt *pr = calloc(cap ? cap : 1, sizeof *pr);
    size_t n = 0;

    if (!pr)
        return set_err(mod, SG_ENOMEM, "out of memory");
    if (req->n_policies) {
        for (size_t i = 0; i < req->n_policies; i++) {
            const char *name = req->policies ? req->policies[i] : NULL;
            const sg_policy *p = name ? sg_policy_find(set, name) : NULL;

            if (!p) {
                free(pr);
                return set_err(mod, SG_EINVAL, "unknown policy '%.100s'",
                               name ? name : "(null)");
            }
            for (size_t j = 0; j < n; j++) {
                if (pr[j].policy == p) {
                    free(pr);
                    return set_err(mod, SG_EINVAL, "policy '%s' is named twice", name);
                }
            }
            pr[n++].policy = p;
        }
    } else {
        for (size_t i = 0; i < sg_policy_count(set); i++)
            if (sg_policy_at(set, i)->enabled)
                pr[n++].policy = sg_policy_at(set, i);
    }
    if (n == 0) {
        free(pr);
        return set_err(mod, SG_EINVAL, "no policy to evaluate (none named, none enabled)");
    }
    *out = pr;
    *n_out = n;
    return SG_OK;
}

/* Logits of the answer pieces at the end of one prompt evaluated alone on the trunk (too long
 * for a branch call): append, read, and cut the trunk back. */
static int eval_on_trunk(sg_moderator *mod, const int32_t *ids, size_t n, const int32_t want[2],
                         float z[2])
{
    size_t keep = sg_ctx_len(mod->ctx);
    sg_logits_req rq = {want, 2, 0, z};
    int rc = sg_ctx_append(mod->ctx, ids, n, &rq);

    if (rc < 0)
        return set_err(mod, rc, "engine: %s", sg_ctx_errmsg(mod->ctx));
    rc = sg_ctx_truncate(mod->ctx, keep);
    if (rc < 0)
        return set_err(mod, rc, "engine: %s", sg_ctx_errmsg(mod->ctx));
    return SG_OK;
}

/* The request's texts, checked, and the vocabulary ids of the two answers. */
typedef struct input {
    const char *text;
    size_t text_len;
    const char *resp; /* NULL: prompt-only mode */
    size_t resp_len;
    int32_t want[2];  /* "Yes", "No" */
} input;

/* Step 0: read and check the request (non-empty valid UTF-8, answers in the vocabulary). */
static int read_request(sg_moderator *mod, const sg_policy_set *set, const sg_moderate_req *req,
                        input *in)
{
    size_t bad;

    in->text = req->text;
    in->text_len = req->text_len ? req->text_len : strlen(req->text);
    in->resp = req->response;
    in->resp_len = 0;
    if (in->resp)
        in->resp_len = req->response_len ? req->response_len : strlen(in->resp);
    if (in->text_len == 0)
        return set_err(mod, SG_EINVAL, "the text is empty");
    if (!sg_utf8_valid(in->text, in->text_len, &bad))
        return set_err(mod, SG_EINVAL, "the text is not valid UTF-8 (at byte %zu)", bad);
    if (in->resp && !sg_utf8_valid(in->resp, in->resp_len, &bad))
        return set_err(mod, SG_EINVAL, "the response is not valid UTF-8 (at byte %zu)", bad);
    in->want[0] = sg_tok_piece_id(mod->tok, sg_policy_answer_yes(set));
    in->want[1] = sg_tok_piece_id(mod->tok, sg_policy_answer_no(set));
    if (in->want[0] < 0 || in->want[1] < 0)
        return set_err(mod, SG_EINVAL, "the answer piece '%s' of %s is not in the vocabulary",
                       in->want[0] < 0 ? sg_policy_answer_yes(set) : sg_policy_answer_no(set),
                       sg_policy_template_file(set));
    return SG_OK;
}

/* Step 1: render and tokenize every prompt; cut the input to fit if the options allow it. */
static int fit_prompts(sg_moderator *mod, const sg_policy_set *set, prompt *pr, size_t n,
                       input *in, sg_moderate_result *res)
{
    size_t longest;
    int rc = encode_all(mod, set, pr, n, in->text, in->text_len, in->resp, in->resp_len,
                        &longest);

    if (rc < 0)
        return rc;
    if (longest > (size_t)mod->max_tokens) {
        if (!mod->opts.truncate)
            return set_err(mod, SG_ERANGE,
                           "the input is too long: its prompt is %zu tokens, over the limit of "
                           "%d (shorten it, or enable truncation)", longest, mod->max_tokens);
        if (!fit_by_cutting(mod, set, pr, n, in->text, &in->text_len, in->resp, &in->resp_len,
                            &rc)) {
            if (rc < 0)
                return rc;
            return set_err(mod, SG_ERANGE,
                           "the prompt does not fit in %d tokens even with the input cut to "
                           "nothing (%zu tokens in full)", mod->max_tokens, longest);
        }
        res->truncated = 1;
    }
    res->text_bytes = in->text_len;
    res->response_bytes = in->resp ? in->resp_len : 0;
    return SG_OK;
}

/* Step 2: the longest common token prefix of all prompts; every branch keeps at least one
 * token, so that each has a last position to read the answer logits at. */
static int common_prefix(sg_moderator *mod, const prompt *pr, size_t n, size_t *lcp_out)
{
    size_t min_len = pr[0].n;
    size_t lcp = 0;

    for (size_t i = 1; i < n; i++)
        if (pr[i].n < min_len)
            min_len = pr[i].n;
    if (min_len == 0) /* cannot happen with a valid set (guidelines are never empty) */
        return set_err(mod, SG_EINVAL, "a rendered prompt has no tokens");
    while (lcp < min_len) {
        size_t i = 1;

        while (i < n && pr[i].ids[lcp] == pr[0].ids[lcp])
            i++;
        if (i < n)
            break;
        lcp++;
    }
    *lcp_out = lcp >= min_len ? min_len - 1 : lcp;
    return SG_OK;
}

/* Step 3: make the trunk hold exactly ids[0..lcp): keep what it already holds of them (the
 * preamble, or more, from earlier requests), load what the prefix cache holds beyond that,
 * drop the rest, compute the missing tokens once. *reused: the tokens not computed. */
static int sync_trunk(sg_moderator *mod, const int32_t *ids, size_t lcp, size_t *reused)
{
    int rc = sg_ctx_sync_prefix(mod->ctx, mod->opts.prefix_cache, ids, lcp, reused);

    if (rc < 0)
        return set_err(mod, rc, "engine: %s", sg_ctx_errmsg(mod->ctx));
    return SG_OK;
}

/* Step 4: every prompt's suffix after the trunk as batches of branches within the context's
 * limits (a suffix too long for any batch runs alone on the trunk): z[2i], z[2i+1] = the
 * answer logits of prompt i. */
static int run_branches(sg_moderator *mod, const prompt *pr, size_t n, size_t lcp,
                        const int32_t want[2], float *z)
{
    const int32_t **btok = malloc(n * sizeof *btok);
    size_t *blen = malloc(n * sizeof *blen);
    int rc = SG_OK;

    if (!btok || !blen)
        rc = set_err(mod, SG_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && rc == SG_OK;) {
        size_t nb = 0;
        size_t tokens = 0;
        sg_logits_req rq = {want, 2, 0, z + 2 * i};

        if (pr[i].n - lcp > mod->max_branch_tokens) {
            rc = eval_on_trunk(mod, pr[i].ids + lcp, pr[i].n - lcp, want, z + 2 * i);
            i++;
            continue;
        }
        while (i + nb < n && nb < mod->max_branches &&
               pr[i + nb].n - lcp <= mod->max_branch_tokens - tokens) {
            btok[nb] = pr[i + nb].ids + lcp;
            blen[nb] = pr[i + nb].n - lcp;
            tokens += blen[nb];
            nb++;
        }
        rc = sg_ctx_branches(mod->ctx, btok, blen, nb, &rq);
        if (rc < 0)
            set_err(mod, rc, "engine: %s", sg_ctx_errmsg(mod->ctx));
        i += nb;
    }
    free(btok);
    free(blen);
    return rc;
}

/* Step 5: P(violation) per policy from its answer logits, and the verdicts. A logit that is
 * not a finite number is an engine failure, never a probability. */
static int score(sg_moderator *mod, const prompt *pr, size_t n, const float *z,
                 sg_moderate_result *res)
{
    for (size_t i = 0; i < 2 * n; i++)
        if (!isfinite(z[i]))
            return set_err(mod, SG_ECOMPUTE, "engine: the logits of policy '%s' are not "
                           "finite (%g)", pr[i / 2].policy->name, (double)z[i]);
    res->scores = calloc(n, sizeof *res->scores);
    if (!res->scores)
        return set_err(mod, SG_ENOMEM, "out of memory");
    res->n_scores = n;
    for (size_t i = 0; i < n; i++) {
        sg_policy_score *s = &res->scores[i];

        s->policy = pr[i].policy;
        s->threshold = pr[i].policy->threshold;
        s->probability = probability(z[2 * i], z[2 * i + 1], mod->opts.temperature,
                                     mod->opts.smoothing);
        s->violation = s->probability >= s->threshold;
        if (s->violation)
            res->flagged = 1;
        res->prompt_tokens += pr[i].n;
    }
    return SG_OK;
}

int sg_moderate(sg_moderator *mod, const sg_policy_set *set, const sg_moderate_req *req,
                sg_moderate_result *res)
{
    input in;
    prompt *pr = NULL;
    size_t n = 0;
    size_t lcp = 0;
    float *z = NULL;
    uint64_t computed0;
    int rc;

    if (!mod)
        return SG_EINVAL;
    if (!res || !set || !req || !req->text)
        return set_err(mod, SG_EINVAL, "sg_moderate: NULL argument");
    memset(res, 0, sizeof *res);
    mod->errmsg[0] = '\0';
    rc = read_request(mod, set, req, &in);
    if (rc == SG_OK)
        rc = resolve_policies(mod, set, req, &pr, &n);
    if (rc < 0)
        return rc;
    computed0 = sg_ctx_computed_tokens(mod->ctx);
    rc = fit_prompts(mod, set, pr, n, &in, res);
    if (rc == SG_OK)
        rc = common_prefix(mod, pr, n, &lcp);
    if (rc == SG_OK)
        rc = sync_trunk(mod, pr[0].ids, lcp, &res->cached_tokens);
    if (rc == SG_OK && (z = malloc(2 * n * sizeof *z)) == NULL)
        rc = set_err(mod, SG_ENOMEM, "out of memory");
    if (rc == SG_OK)
        rc = run_branches(mod, pr, n, lcp, in.want, z);
    if (rc == SG_OK)
        rc = score(mod, pr, n, z, res);
    if (rc == SG_OK)
        res->computed_tokens = (size_t)(sg_ctx_computed_tokens(mod->ctx) - computed0);
    free(z);
    free_prompts(pr, n);
    free(pr);
    if (rc < 0)
        sg_moderate_result_free(res);
    return rc;
}

void sg_moderate_result_free(sg_moderate_result *res)
{
    if (!res)
        return;
    free(res->scores);
    memset(res, 0, sizeof *res);
}
