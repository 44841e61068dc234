/*
 * api_parse.c: request bodies -> a job's inputs, on the loop thread. Every check is made here
 * once: the body's UTF-8 and JSON, the fields and their types, the policy names (a list given
 * for the whole request is checked once and shared by its inputs), chat conversations. The
 * worker trusts what it gets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_job.h"
#include "http.h"
#include "log.h"
#include "sg_chat.h"
#include "sg_engine.h"
#include "sg_moderate_json.h"
#include "shieldd.h"

/* The body as a JSON object into j->body. Returns 0 or 400 with a message. */
static int parse_body(struct job *j, const struct http_request *req, char *err, size_t errlen)
{
    json_error_t jerr;
    size_t bad;

    if (req->body_len == 0) {
        snprintf(err, errlen, "empty request body: expected a JSON object");
        return 400;
    }
    if (!sg_utf8_valid(req->body, req->body_len, &bad)) {
        snprintf(err, errlen, "request body is not valid UTF-8 (byte %zu)", bad);
        return 400;
    }
    j->body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (j->body == NULL) {
        /* jansson names its flag for "\u0000"; say what is wrong with the request instead. */
        snprintf(err, errlen, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column,
                 strstr(jerr.text, "JSON_ALLOW_NUL") ? "a string holds a NUL character "
                                                       "(\\u0000), which is not accepted"
                                                     : jerr.text);
        return 400;
    }
    if (!json_is_object(j->body)) {
        snprintf(err, errlen, "the request body must be a JSON object");
        return 400;
    }
    return 0;
}

/* The comma-separated names of the loaded policies (for error messages). */
static void policy_names(const sg_policy_set *set, char *buf, size_t cap)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < sg_policy_count(set) && n + 1 < cap; i++) {
        int k = snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", sg_policy_at(set, i)->name);

        if (k < 0)
            break;
        n += (size_t)k;
    }
}

/* Check a "policies" value. Fills out and n (malloc'd array of borrowed names, NULL for absent
 * or null). Returns 0, or -1 with a message in `err`. */
static int parse_policies(const sg_policy_set *set, const json_t *v, const char *where,
                          const char ***out, size_t *n, char *err, size_t errlen)
{
    size_t i;
    json_t *e;
    const char **names;

    *out = NULL;
    *n = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        snprintf(err, errlen, "%s'policies' must be an array of policy names, not %s", where,
                 sg_json_type_name(v));
        return -1;
    }
    if (json_array_size(v) == 0) {
        snprintf(err, errlen, "%s'policies' is empty (leave it out for every enabled policy)",
                 where);
        return -1;
    }
    names = calloc(json_array_size(v), sizeof *names);
    if (names == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_array_foreach(v, i, e)
    {
        const char *name = json_string_value(e);

        if (name == NULL) {
            snprintf(err, errlen, "%s'policies[%zu]' must be a string, not %s", where, i,
                     sg_json_type_name(e));
            goto fail;
        }
        if (sg_policy_find(set, name) == NULL) {
            char known[512];

            policy_names(set, known, sizeof known);
            snprintf(err, errlen, "%sunknown policy '%.64s' (loaded: %s)", where, name, known);
            goto fail;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(names[k], name) == 0) {
                snprintf(err, errlen, "%spolicy '%.64s' is listed twice", where, name);
                goto fail;
            }
        names[i] = name;
    }
    *out = names;
    *n = json_array_size(v);
    return 0;
fail:
    free(names);
    return -1;
}

/* A string field: required or optional (absent or null), never empty. */
static int get_text(const json_t *obj, const char *key, const char *where, int required,
                    const char **s, size_t *len, char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);

    *s = NULL;
    *len = 0;
    if (v == NULL || (!required && json_is_null(v))) {
        if (required)
            snprintf(err, errlen, "%smissing '%s'", where, key);
        return required ? -1 : 0;
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s'%s' must be a string, not %s", where, key, sg_json_type_name(v));
        return -1;
    }
    if (json_string_length(v) == 0) {
        snprintf(err, errlen, "%s'%s' is empty", where, key);
        return -1;
    }
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

/* Reject keys other than the `allowed` ones. */
static int only_keys(const json_t *obj, const char *const *allowed, const char *where, char *err,
                     size_t errlen)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        int ok = 0;

        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(*a, key) == 0;
        if (!ok) {
            snprintf(err, errlen, "%sunknown field '%.64s'", where, key);
            return -1;
        }
    }
    return 0;
}

/* A chat conversation into `in` (sg_chat_map); the job keeps the joined texts. */
static int parse_messages(struct job *j, const json_t *msgs, const char *where, struct input *in,
                          char *err, size_t errlen)
{
    sg_chat_input c;
    char **t;

    if (sg_chat_map(msgs, where, &c, err, errlen) < 0)
        return -1;
    t = realloc(j->texts, (j->n_texts + 2) * sizeof *t);
    if (t == NULL) {
        sg_chat_input_free(&c);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    j->texts = t;
    for (int k = 0; k < 2; k++)
        if (c.owned[k] != NULL)
            j->texts[j->n_texts++] = c.owned[k];
    in->text = c.text;
    in->text_len = c.text_len;
    in->response = c.response;
    in->response_len = c.response_len;
    return 0;
}

/*
 * Allocate j->in for `n` inputs, a list in the reply when `batch` (then at most max_inputs, else
 * 413). Returns 0, or an HTTP status with a message in `err`.
 */
static int new_inputs(struct job *j, size_t n, int batch, char *err, size_t errlen)
{
    if (n > (size_t)j->sd->cfg.max_inputs) {
        snprintf(err, errlen, "%zu inputs is over the limit of %d (max_inputs)", n,
                 j->sd->cfg.max_inputs);
        return 413;
    }
    j->batch = batch;
    j->n_in = n;
    j->in = calloc(n, sizeof *j->in);
    if (j->in == NULL)
        return snprintf(err, errlen, "out of memory"), 500;
    return 0;
}

/* The request-wide "policies", checked once; the inputs without their own borrow the list. */
static int job_policies(struct job *j, char *err, size_t errlen)
{
    if (parse_policies(j->pset->set, json_object_get(j->body, "policies"), "", &j->policies,
                       &j->n_policies, err, errlen) < 0)
        return 400;
    return 0;
}

/* After parsing: point the inputs without a list of their own at the request's. */
static void share_policies(struct job *j)
{
    for (size_t i = 0; i < j->n_in; i++)
        if (j->in[i].own_policies == NULL) {
            j->in[i].policies = j->policies;
            j->in[i].n_policies = j->n_policies;
        }
}

/* One input object of /v1/classify: text (+ response) or messages, and its own policies. */
static int parse_classify_input(struct job *j, const json_t *obj, const char *where,
                                struct input *in, char *err, size_t errlen)
{
    static const char *const allowed[] = {"text", "response", "messages", "policies", NULL};
    const json_t *msgs = json_object_get(obj, "messages");
    const json_t *pol = json_object_get(obj, "policies");

    if (!json_is_object(obj)) {
        snprintf(err, errlen, "%smust be an object with 'text' or 'messages', not %s", where,
                 sg_json_type_name(obj));
        return -1;
    }
    if (only_keys(obj, allowed, where, err, errlen) < 0)
        return -1;
    if (msgs != NULL) {
        if (json_object_get(obj, "text") != NULL || json_object_get(obj, "response") != NULL) {
            snprintf(err, errlen, "%sgive either 'text' (and 'response') or 'messages', not both",
                     where);
            return -1;
        }
        if (parse_messages(j, msgs, where, in, err, errlen) < 0)
            return -1;
    } else {
        if (get_text(obj, "text", where, 1, &in->text, &in->text_len, err, errlen) < 0)
            return -1;
        if (get_text(obj, "response", where, 0, &in->response, &in->response_len, err, errlen) < 0)
            return -1;
    }
    if (pol == NULL || obj == j->body)
        return 0; /* the request's list (already checked) */
    if (parse_policies(j->pset->set, pol, where, &in->own_policies, &in->n_policies, err, errlen) <
        0)
        return -1;
    in->policies = in->own_policies;
    return 0;
}

static int parse_classify(struct job *j, char *err, size_t errlen)
{
    static const char *const allowed[] = {"text",     "response", "messages",
                                          "policies", "inputs",   NULL};
    const json_t *inputs = json_object_get(j->body, "inputs");
    size_t i;
    json_t *e;
    int rc;

    if (only_keys(j->body, allowed, "", err, errlen) < 0)
        return 400;
    if (inputs == NULL) {
        rc = new_inputs(j, 1, 0, err, errlen);
        if (rc != 0)
            return rc;
        if (parse_classify_input(j, j->body, "", &j->in[0], err, errlen) < 0)
            return 400;
        return job_policies(j, err, errlen);
    }
    if (json_object_get(j->body, "text") != NULL || json_object_get(j->body, "response") ||
        json_object_get(j->body, "messages")) {
        snprintf(err, errlen,
                 "give either one input ('text' or 'messages') or 'inputs' (a "
                 "batch), not both");
        return 400;
    }
    if (!json_is_array(inputs)) {
        snprintf(err, errlen, "'inputs' must be an array of objects, not %s",
                 sg_json_type_name(inputs));
        return 400;
    }
    if (json_array_size(inputs) == 0) {
        snprintf(err, errlen, "'inputs' is empty");
        return 400;
    }
    rc = new_inputs(j, json_array_size(inputs), 1, err, errlen);
    if (rc != 0 || (rc = job_policies(j, err, errlen)) != 0)
        return rc;
    json_array_foreach(inputs, i, e)
    {
        char where[48];

        snprintf(where, sizeof where, "inputs[%zu]: ", i);
        if (parse_classify_input(j, e, where, &j->in[i], err, errlen) < 0)
            return 400;
    }
    return 0;
}

/* One item of /v1/moderations "input": a string or {"type": "text", "text": ...}. */
static int parse_moderation_item(const json_t *e, const char *where, struct input *in, char *err,
                                 size_t errlen)
{
    if (json_is_object(e)) {
        const char *type = json_string_value(json_object_get(e, "type"));

        if (type == NULL || strcmp(type, "text") != 0) {
            snprintf(err, errlen, "%sonly {\"type\": \"text\", \"text\": ...} items are supported",
                     where);
            return -1;
        }
        return get_text(e, "text", where, 1, &in->text, &in->text_len, err, errlen);
    }
    if (!json_is_string(e)) {
        snprintf(err, errlen, "%s'input' items must be strings, not %s", where,
                 sg_json_type_name(e));
        return -1;
    }
    if (json_string_length(e) == 0) {
        snprintf(err, errlen, "%s'input' is empty", where);
        return -1;
    }
    in->text = json_string_value(e);
    in->text_len = json_string_length(e);
    return 0;
}

static int parse_moderations(struct job *j, char *err, size_t errlen)
{
    static const char *const allowed[] = {"input", "model", "policies", NULL};
    const json_t *input = json_object_get(j->body, "input");
    const json_t *model = json_object_get(j->body, "model");
    int rc;

    if (only_keys(j->body, allowed, "", err, errlen) < 0)
        return 400;
    if (model != NULL && !json_is_string(model) && !json_is_null(model)) {
        snprintf(err, errlen, "'model' must be a string, not %s", sg_json_type_name(model));
        return 400;
    }
    if (input == NULL) {
        snprintf(err, errlen, "missing 'input'");
        return 400;
    }
    if (json_is_array(input) && json_array_size(input) == 0) {
        snprintf(err, errlen, "'input' is an empty array");
        return 400;
    }
    if (!json_is_string(input) && !json_is_array(input)) {
        snprintf(err, errlen, "'input' must be a string or an array of strings, not %s",
                 sg_json_type_name(input));
        return 400;
    }
    rc = json_is_string(input) ? new_inputs(j, 1, 0, err, errlen)
                               : new_inputs(j, json_array_size(input), 1, err, errlen);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < j->n_in; i++) {
        char where[48] = "";

        if (j->batch)
            snprintf(where, sizeof where, "input[%zu]: ", i);
        if (parse_moderation_item(j->batch ? json_array_get(input, i) : input, where, &j->in[i],
                                  err, errlen) < 0)
            return 400;
        /* The request's policies are checked once, after the first text (as before). */
        if (i == 0 && job_policies(j, err, errlen) != 0)
            return 400;
    }
    return 0;
}

/* ---- The gateway adapters ------------------------------------------------------------------ */

/*
 * LiteLLM's Generic Guardrail API: {"texts": [...], "input_type": "request"|"response",
 * "structured_messages"?: [...], ...}; other fields (images, tools, request_data, ...) are
 * ignored. With structured_messages, a request is the conversation (as in /v1/classify);
 * otherwise each text is one input, prompt-only for a request, and for a response each text is
 * the reply to the conversation's last user turn when structured_messages has one.
 */
static int parse_litellm(struct job *j, char *err, size_t errlen)
{
    const json_t *texts = json_object_get(j->body, "texts");
    const json_t *type = json_object_get(j->body, "input_type");
    const json_t *sm = json_object_get(j->body, "structured_messages");
    int response = 0;
    struct input conv;
    size_t i, n;
    int rc;

    if (type != NULL && !json_is_null(type)) {
        const char *t = json_string_value(type);

        if (t == NULL || (strcmp(t, "request") != 0 && strcmp(t, "response") != 0)) {
            snprintf(err, errlen, "'input_type' must be \"request\" or \"response\"");
            return 400;
        }
        response = strcmp(t, "response") == 0;
    }
    if (texts != NULL && !json_is_null(texts) && !json_is_array(texts)) {
        snprintf(err, errlen, "'texts' must be an array of strings, not %s",
                 sg_json_type_name(texts));
        return 400;
    }
    if (sm != NULL && json_is_null(sm))
        sm = NULL;
    memset(&conv, 0, sizeof conv);
    n = texts ? json_array_size(texts) : 0;
    /* structured_messages come in the shape of whatever API LiteLLM fronts: one we cannot map
     * falls back to the texts LiteLLM extracted (a 400 would block the call). */
    if (sm != NULL && parse_messages(j, sm, "structured_messages: ", &conv, err, errlen) < 0) {
        if (n == 0)
            return 400;
        log_debug("litellm: structured_messages not mapped (%s); classifying 'texts'", err);
        sm = NULL;
        memset(&conv, 0, sizeof conv);
    }
    if (!response && sm != NULL) {
        rc = new_inputs(j, 1, 0, err, errlen);
        if (rc == 0) {
            j->in[0].text = conv.text;
            j->in[0].text_len = conv.text_len;
            j->in[0].response = conv.response;
            j->in[0].response_len = conv.response_len;
        }
        return rc;
    }
    if (n == 0) {
        snprintf(err, errlen, "'texts' is empty (and no 'structured_messages' to classify)");
        return 400;
    }
    rc = new_inputs(j, n, 1, err, errlen);
    if (rc != 0)
        return rc;
    for (i = 0; i < n; i++) {
        const json_t *t = json_array_get(texts, i);
        struct input *in = &j->in[i];

        if (!json_is_string(t) || json_string_length(t) == 0) {
            snprintf(err, errlen, "texts[%zu]: must be a non-empty string", i);
            return 400;
        }
        if (response && sm != NULL) {
            in->text = conv.text;
            in->text_len = conv.text_len;
            in->response = json_string_value(t);
            in->response_len = json_string_length(t);
        } else {
            in->text = json_string_value(t);
            in->text_len = json_string_length(t);
        }
    }
    return 0;
}

/*
 * The check of an OpenAI chat-completions request as a gateway forwards it: "messages" is
 * classified as in /v1/classify; every other field ("model", "stream", "tools", ...) is the
 * upstream's business and ignored.
 */
static int parse_check_chat(struct job *j, char *err, size_t errlen)
{
    const json_t *msgs = json_object_get(j->body, "messages");
    int rc;

    if (msgs == NULL) {
        snprintf(err, errlen, "missing 'messages' (an OpenAI chat-completions request body)");
        return 400;
    }
    rc = new_inputs(j, 1, 0, err, errlen);
    if (rc != 0)
        return rc;
    return parse_messages(j, msgs, "", &j->in[0], err, errlen) < 0 ? 400 : 0;
}

int api_parse(struct job *j, const struct http_request *req, char *err, size_t errlen)
{
    int rc = parse_body(j, req, err, errlen);

    if (rc != 0)
        return rc;
    switch (j->ep) {
    case EP_CLASSIFY:
        rc = parse_classify(j, err, errlen);
        break;
    case EP_MODERATIONS:
        rc = parse_moderations(j, err, errlen);
        break;
    case EP_LITELLM:
        rc = parse_litellm(j, err, errlen);
        break;
    case EP_CHECK_CHAT:
        rc = parse_check_chat(j, err, errlen);
        break;
    default:
        snprintf(err, errlen, "no body parser for this endpoint");
        return 500;
    }
    if (rc == 0)
        share_policies(j);
    return rc;
}
