/*
 * api_render.c: the reply JSON of each moderation endpoint, built once from the inputs'
 * sg_moderate_result (a cache hit and a fresh run look the same here).
 */
#include <stdio.h>
#include <string.h>

#include "api_job.h"
#include "http.h"
#include "shieldd.h"
#include "sg_moderate_json.h"

/* POST /v1/classify: one input is the shared sg_moderate_result_json object, a batch a list. */
static json_t *render_classify(const struct job *j, const char *model)
{
    json_t *root, *results;
    json_int_t prompt = 0, computed = 0, cached = 0;
    int flagged = 0;

    if (!j->batch)
        return sg_moderate_result_json(model, &j->in[0].res);
    root = json_object();
    results = json_array();
    if (root == NULL || results == NULL) {
        json_decref(results);
        json_decref(root);
        return NULL;
    }
    json_object_set_new(root, "model", json_string(model));
    json_object_set_new(root, "results", results);
    for (size_t i = 0; i < j->n_in; i++) {
        const sg_moderate_result *r = &j->in[i].res;

        if (json_array_append_new(results, sg_moderate_result_json(NULL, r)) < 0) {
            json_decref(root);
            return NULL;
        }
        flagged |= r->flagged;
        prompt += (json_int_t)r->prompt_tokens;
        computed += (json_int_t)r->computed_tokens;
        cached += (json_int_t)r->cached_tokens;
    }
    json_object_set_new(root, "flagged", json_boolean(flagged));
    json_object_set_new(
        root, "usage",
        json_pack("{s:I, s:I, s:I}", "prompt_tokens", prompt, "computed_tokens", computed,
                  "cached_tokens", cached));
    return root;
}

/*
 * The OpenAI categories of a result: each category that some scored policy answers for
 * (openai_categories in its YAML) gets the maximum probability of those policies and their
 * verdict OR-ed. A category no scored policy answers for is absent.
 */
static void openai_categories(const sg_moderate_result *r, json_t *out_cats, json_t *out_scores,
                              json_t *out_types)
{
    json_t *cats = json_object(), *scores = json_object(), *types = json_object();

    for (size_t i = 0; i < r->n_scores; i++) {
        const sg_policy_score *s = &r->scores[i];

        for (size_t k = 0; k < s->policy->n_openai_categories; k++) {
            const char *c = s->policy->openai_categories[k];
            const json_t *old = json_object_get(scores, c);

            if (old == NULL || json_real_value(old) < s->probability)
                json_object_set_new(scores, c, json_real(s->probability));
            if (old == NULL || s->violation)
                json_object_set_new(cats, c, json_boolean(s->violation));
            json_object_set_new(types, c, json_pack("[s]", "text"));
        }
    }
    /* An OpenAI key wins over a policy of the same name (e.g. "hate" answering for "hate"). */
    json_object_update(out_cats, cats);
    json_object_update(out_scores, scores);
    json_object_update(out_types, types);
    json_decref(cats);
    json_decref(scores);
    json_decref(types);
}

/* One entry of /v1/moderations "results": our policy names, then the OpenAI keys. */
static json_t *moderation_result(const sg_moderate_result *r)
{
    json_t *cats = json_object(), *scores = json_object(), *types = json_object();
    json_t *out = json_pack("{s:b, s:o, s:o, s:o}", "flagged", r->flagged, "categories", cats,
                            "category_scores", scores, "category_applied_input_types", types);

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < r->n_scores; i++) {
        const sg_policy_score *s = &r->scores[i];

        json_object_set_new(cats, s->policy->name, json_boolean(s->violation));
        json_object_set_new(scores, s->policy->name, json_real(s->probability));
        json_object_set_new(types, s->policy->name, json_pack("[s]", "text"));
    }
    openai_categories(r, cats, scores, types);
    return out;
}

static json_t *render_moderations(struct job *j, const char *model)
{
    json_t *results = json_array();
    json_t *root;
    char id[64];

    snprintf(id, sizeof id, "modr-%08lx%012llx", (unsigned long)j->sd->started & 0xffffffffUL,
             ++j->sd->next_id);
    root = json_pack("{s:s, s:s, s:o}", "id", id, "model", model, "results", results);
    for (size_t i = 0; root != NULL && i < j->n_in; i++)
        if (json_array_append_new(results, moderation_result(&j->in[i].res)) < 0) {
            json_decref(root);
            return NULL;
        }
    return root;
}

/* Whether policy `name` was violated by an input before in[i].scores[k]. */
static int violated_before(const struct job *j, size_t i, size_t k, const char *name)
{
    for (size_t a = 0; a <= i; a++)
        for (size_t b = 0; b < (a == i ? k : j->in[a].res.n_scores); b++) {
            const sg_policy_score *s = &j->in[a].res.scores[b];

            if (s->violation && strcmp(s->policy->name, name) == 0)
                return 1;
        }
    return 0;
}

/* The names of the policies violated by any input, comma-separated, each once, in order (into
 * buf); returns how many. */
static size_t flagged_policies(const struct job *j, char *buf, size_t cap)
{
    size_t n = 0, len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < j->n_in; i++)
        for (size_t k = 0; k < j->in[i].res.n_scores; k++) {
            const sg_policy_score *s = &j->in[i].res.scores[k];
            size_t nl = strlen(s->policy->name);

            if (!s->violation || violated_before(j, i, k, s->policy->name) || len + nl + 2 > cap)
                continue;
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", n ? "," : "", s->policy->name);
            n++;
        }
    return n;
}

/* LiteLLM's Generic Guardrail API: {"action": "BLOCKED", "blocked_reason"} or "NONE". */
static json_t *render_litellm(const struct job *j)
{
    char names[512], reason[640];

    if (flagged_policies(j, names, sizeof names) == 0)
        return json_pack("{s:s}", "action", "NONE");
    snprintf(reason, sizeof reason, "shieldd: content violates the policies %s", names);
    return json_pack("{s:s, s:s}", "action", "BLOCKED", "blocked_reason", reason);
}

/*
 * The gateway check: 200 {"flagged": false}, or 403 with the reason and a header. An allowed
 * request that carries "X-Shieldd-Accel-Redirect: /location" (set by nginx, see
 * clients/gateway/nginx-check.conf) is answered with "X-Accel-Redirect: /location", so that
 * nginx replays it to the model.
 */
static int render_check(const struct job *j, json_t **out, char *extra, size_t cap)
{
    char names[512], msg[640];

    if (flagged_policies(j, names, sizeof names) == 0) {
        const char *to = http_request_header(j->req, "X-Shieldd-Accel-Redirect");

        if (to != NULL && (to[0] == '/' || to[0] == '@') && strlen(to) < 200 &&
            strpbrk(to, " \t") == NULL)
            snprintf(extra, cap, "X-Accel-Redirect: %s\r\n", to);
        *out = json_pack("{s:b}", "flagged", 0);
        return 200;
    }
    snprintf(msg, sizeof msg, "the request violates the policies %s", names);
    snprintf(extra, cap, "X-Shieldd-Flagged-Policies: %s\r\n", names);
    *out = json_pack("{s:{s:s, s:s, s:s}}", "error", "type", "policy_violation", "message", msg,
                     "policies", names);
    return 403;
}

int api_render(struct job *j, json_t **out, char *extra, size_t cap)
{
    const char *model = j->sd->info->name;
    int status = 200;

    extra[0] = '\0';
    switch (j->ep) {
    case EP_CLASSIFY:
        *out = render_classify(j, model);
        break;
    case EP_MODERATIONS:
        *out = render_moderations(j, model);
        break;
    case EP_LITELLM:
        *out = render_litellm(j);
        break;
    case EP_CHECK_CHAT:
        status = render_check(j, out, extra, cap);
        break;
    default:
        *out = NULL;
        break;
    }
    return *out != NULL ? status : 500;
}
