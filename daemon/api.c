/*
 * api.c: request validation, the result cache, queueing, and the JSON replies.
 *
 * A classification request becomes a `job` (one per HTTP request) holding one `input` per text.
 * Inputs found in the cache are answered from it; the rest go to the worker as one queued job.
 * Ownership: the job owns the parsed JSON body (the inputs' strings point into it), a reference
 * to the policy set it was validated against, and the results. It is freed by whichever comes
 * last: the reply, the client's departure, or the worker's hand-back.
 */
#include "api.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "config.h"
#include "log.h"
#include "sg_moderate_json.h"
#include "shieldd.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))
#define RC_EXPIRED 1 /* an input's rc when the deadline passed before it ran */

enum job_kind { KIND_CLASSIFY, KIND_MODERATIONS };

struct input {
    const char *text;
    size_t text_len;
    const char *response; /* NULL: prompt-only */
    size_t response_len;
    const char **policies; /* NULL: the set's enabled policies */
    size_t n_policies;
    unsigned char *key; /* cache key */
    size_t key_len;
    json_t *obj; /* the per-input reply object, once known */
    /* Written by the worker. */
    int ran;
    int rc;
    char err[320];
    sg_moderate_result res;
    int have_res;
    int res_copy; /* res.scores is our own copy (a duplicate in the batch) */
};

struct job {
    struct sched_job sj;
    struct shieldd *sd;
    struct http_request *req; /* NULL once replied or aborted */
    enum job_kind kind;
    enum metrics_endpoint ep;
    int batch; /* the reply is a list */
    json_t *body;
    struct pset *pset;
    struct input *in;
    size_t n_in;
    struct event *deadline;
    int queued; /* submitted and not yet handed back */
    double arrived;
    double timeout; /* seconds from arrival */
};

/* ---- Policy sets --------------------------------------------------------------------------- */

struct pset *pset_ref(struct pset *p)
{
    p->refs++;
    return p;
}

void pset_unref(struct pset *p)
{
    if (p == NULL || --p->refs > 0)
        return;
    sg_policy_set_free(p->set);
    free(p);
}

/* ---- Replies ------------------------------------------------------------------------------- */

static void reply_raw(struct shieldd *sd, struct http_request *req, enum metrics_endpoint ep,
                      int status, const char *ctype, const char *extra, const char *body,
                      size_t len)
{
    metrics_request(&sd->metrics, ep, status, sched_now() - req->arrived);
    http_reply(req, status, ctype, extra, body, len);
}

static void reply_json(struct shieldd *sd, struct http_request *req, enum metrics_endpoint ep,
                       int status, json_t *root)
{
    char *s = root ? json_dumps(root, DUMP_FLAGS) : NULL;

    if (s == NULL) {
        char *e = http_error_json("server_error", "out of memory");

        reply_raw(sd, req, ep, 500, "application/json", NULL, e ? e : "", e ? strlen(e) : 0);
        free(e);
        return;
    }
    reply_raw(sd, req, ep, status, "application/json", NULL, s, strlen(s));
    free(s);
}

#if defined(__GNUC__)
__attribute__((format(printf, 6, 7)))
#endif
static void
reply_err(struct shieldd *sd, struct http_request *req, enum metrics_endpoint ep, int status,
          const char *extra, const char *fmt, ...)
{
    char msg[1024];
    char *body;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    body = http_error_json(http_error_type(status), msg);
    reply_raw(sd, req, ep, status, "application/json", extra, body ? body : "",
              body ? strlen(body) : 0);
    free(body);
}

/* ---- Validation ---------------------------------------------------------------------------- */

/* Strict UTF-8 (no overlong forms, surrogates or values above U+10FFFF). Returns the offset of
 * the first bad byte, or (size_t)-1 when `s` is valid. */
static size_t utf8_bad(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned cp, min;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return i;
        }
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += k + 1;
    }
    return (size_t)-1;
}

static json_t *parse_body(struct shieldd *sd, struct http_request *req, enum metrics_endpoint ep)
{
    json_error_t jerr;
    json_t *root;
    size_t bad;

    if (req->body_len == 0) {
        reply_err(sd, req, ep, 400, NULL, "empty request body: expected a JSON object");
        return NULL;
    }
    bad = utf8_bad((const unsigned char *)req->body, req->body_len);
    if (bad != (size_t)-1) {
        reply_err(sd, req, ep, 400, NULL, "request body is not valid UTF-8 (byte %zu)", bad);
        return NULL;
    }
    root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        reply_err(sd, req, ep, 400, NULL, "malformed JSON at line %d, column %d: %s", jerr.line,
                  jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        reply_err(sd, req, ep, 400, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
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
                 json_type_name(v));
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
                     json_type_name(e));
            goto fail;
        }
        if (sg_policy_find(set, name) == NULL) {
            char known[512];

            policy_names(set, known, sizeof known);
            snprintf(err, errlen, "%sunknown policy '%.64s' (loaded: %s)", where, name, known);
            goto fail;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[j], name) == 0) {
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

/* A required non-empty string field. */
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
        snprintf(err, errlen, "%s'%s' must be a string, not %s", where, key, json_type_name(v));
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

/* Build the exact cache key of an input: set generation, policies, text, response. */
static int make_key(struct input *in, unsigned long gen)
{
    size_t n = sizeof gen + sizeof(size_t) * 3 + in->text_len + in->response_len + 1;
    unsigned char *k, *p;
    size_t sz;

    for (size_t i = 0; i < in->n_policies; i++)
        n += strlen(in->policies[i]) + 1;
    k = malloc(n);
    if (k == NULL)
        return -1;
    p = k;
    memcpy(p, &gen, sizeof gen);
    p += sizeof gen;
    memcpy(p, &in->n_policies, sizeof(size_t));
    p += sizeof(size_t);
    for (size_t i = 0; i < in->n_policies; i++) {
        sz = strlen(in->policies[i]) + 1;
        memcpy(p, in->policies[i], sz);
        p += sz;
    }
    memcpy(p, &in->text_len, sizeof(size_t));
    p += sizeof(size_t);
    memcpy(p, in->text, in->text_len);
    p += in->text_len;
    *p++ = in->response != NULL;
    memcpy(p, &in->response_len, sizeof(size_t));
    p += sizeof(size_t);
    if (in->response_len)
        memcpy(p, in->response, in->response_len);
    p += in->response_len;
    in->key = k;
    in->key_len = (size_t)(p - k);
    return 0;
}

/* ---- Jobs ------------------------------------------------------------------------------------ */

static void job_free(struct job *j)
{
    if (j == NULL)
        return;
    for (size_t i = 0; j->in != NULL && i < j->n_in; i++) {
        struct input *in = &j->in[i];

        free(in->policies);
        free(in->key);
        json_decref(in->obj);
        if (in->res_copy)
            free(in->res.scores);
        else if (in->have_res)
            sg_moderate_result_free(&in->res);
    }
    free(j->in);
    json_decref(j->body);
    pset_unref(j->pset);
    if (j->deadline)
        event_free(j->deadline);
    free(j);
}

/* Detach from the HTTP request (after a reply or when the client left). */
static void job_detach(struct job *j)
{
    if (j->req != NULL) {
        j->req->on_abort = NULL;
        j->req = NULL;
    }
    if (j->deadline)
        evtimer_del(j->deadline);
}

static void job_abort(struct http_request *req, void *arg)
{
    struct job *j = arg;

    (void)req;
    j->req = NULL;
    j->sd->metrics.cancelled++;
    metrics_request(&j->sd->metrics, j->ep, 499, sched_now() - j->arrived);
    job_detach(j);
    if (j->queued && sched_cancel(j->sd->sched, &j->sj) == 1)
        j->queued = 0;
    if (!j->queued)
        job_free(j);
}

static void job_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    struct shieldd *sd = j->sd;

    (void)fd;
    (void)what;
    if (j->req == NULL)
        return;
    sd->metrics.timeouts++;
    reply_err(sd, j->req, j->ep, 504, NULL, "the request was not answered within %s (%gs)",
              j->timeout < sd->cfg.request_timeout ? "X-Request-Timeout" : "request_timeout",
              j->timeout);
    job_detach(j);
    if (j->queued && sched_cancel(sd->sched, &j->sj) == 1)
        j->queued = 0;
    if (!j->queued)
        job_free(j);
}

/* The per-input object for a cache hit: a copy with computed_tokens 0 (nothing was run). */
static json_t *from_cache(const json_t *cached)
{
    json_t *o = json_deep_copy(cached);
    json_t *usage = o ? json_object_get(o, "usage") : NULL;

    if (usage != NULL)
        json_object_set_new(usage, "computed_tokens", json_integer(0));
    return o;
}

static void free_json(void *p)
{
    json_decref(p);
}

static json_t *moderation_result(const json_t *obj)
{
    json_t *out = json_object();
    json_t *cats = json_object(), *scores = json_object(), *types = json_object();
    json_t *results = json_object_get(obj, "results");
    json_t *r;
    size_t i;

    if (out == NULL || cats == NULL || scores == NULL || types == NULL) {
        json_decref(out);
        json_decref(cats);
        json_decref(scores);
        json_decref(types);
        return NULL;
    }
    json_object_set(out, "flagged", json_object_get(obj, "flagged"));
    json_object_set_new(out, "categories", cats);
    json_object_set_new(out, "category_scores", scores);
    json_object_set_new(out, "category_applied_input_types", types);
    json_array_foreach(results, i, r)
    {
        const char *name = json_string_value(json_object_get(r, "policy"));

        if (name == NULL)
            continue;
        json_object_set(cats, name, json_object_get(r, "violation"));
        json_object_set(scores, name, json_object_get(r, "probability"));
        json_object_set_new(types, name, json_pack("[s]", "text"));
    }
    return out;
}

/* Every input has its object: send the reply. */
static void job_reply(struct job *j)
{
    struct shieldd *sd = j->sd;
    json_t *root = json_object();
    const char *model = sd->info->name;

    if (root == NULL)
        goto done;
    if (j->kind == KIND_MODERATIONS) {
        json_t *results = json_array();
        char id[64];

        snprintf(id, sizeof id, "modr-%08lx%012llx", (unsigned long)sd->started & 0xffffffffUL,
                 ++sd->next_id);
        json_object_set_new(root, "id", json_string(id));
        json_object_set_new(root, "model", json_string(model));
        json_object_set_new(root, "results", results);
        for (size_t i = 0; i < j->n_in; i++)
            json_array_append_new(results, moderation_result(j->in[i].obj));
    } else if (!j->batch) {
        json_object_set_new(root, "model", json_string(model));
        json_object_update(root, j->in[0].obj);
    } else {
        json_t *results = json_array();
        json_int_t prompt = 0, computed = 0, cached = 0;
        int flagged = 0;

        json_object_set_new(root, "model", json_string(model));
        json_object_set_new(root, "results", results);
        for (size_t i = 0; i < j->n_in; i++) {
            json_t *usage = json_object_get(j->in[i].obj, "usage");

            json_array_append(results, j->in[i].obj);
            flagged |= json_is_true(json_object_get(j->in[i].obj, "flagged"));
            prompt += json_integer_value(json_object_get(usage, "prompt_tokens"));
            computed += json_integer_value(json_object_get(usage, "computed_tokens"));
            cached += json_integer_value(json_object_get(usage, "cached_tokens"));
        }
        json_object_set_new(root, "flagged", json_boolean(flagged));
        json_object_set_new(
            root, "usage",
            json_pack("{s:I, s:I, s:I}", "prompt_tokens", prompt, "computed_tokens", computed,
                      "cached_tokens", cached));
    }
done:
    reply_json(sd, j->req, j->ep, 200, root);
    json_decref(root);
    job_detach(j);
}

static void job_done(struct sched_job *sj, void *arg)
{
    struct job *j = arg;
    struct shieldd *sd = j->sd;
    size_t i;

    (void)sj;
    j->queued = 0;
    /* Account what the worker did, even for a reply that is no longer wanted. */
    for (i = 0; i < j->n_in; i++)
        if (j->in[i].have_res) {
            sd->metrics.inputs++;
            sd->metrics.prompt_tokens += j->in[i].res.prompt_tokens;
            sd->metrics.computed_tokens += j->in[i].res.computed_tokens;
        }
    if (j->req == NULL) {
        job_free(j);
        return;
    }
    if (j->sj.status == SCHED_EXPIRED) {
        job_deadline(-1, 0, j);
        return;
    }
    if (j->sj.status == SCHED_CANCELLED) {
        reply_err(sd, j->req, j->ep, 503, NULL, "the daemon is shutting down");
        job_detach(j);
        job_free(j);
        return;
    }
    for (i = 0; i < j->n_in; i++) {
        struct input *in = &j->in[i];
        char where[48] = "";

        if (in->obj != NULL)
            continue;
        if (j->batch)
            snprintf(where, sizeof where,
                     "%s[%zu]: ", j->kind == KIND_MODERATIONS ? "input" : "inputs", i);
        if (in->rc == RC_EXPIRED || !in->ran) {
            job_deadline(-1, 0, j);
            return;
        }
        if (in->rc == SG_ERANGE) {
            char limit[64] = "the model's context";

            if (sd->cfg.max_tokens > 0)
                snprintf(limit, sizeof limit, "%d", sd->cfg.max_tokens);
            reply_err(sd, j->req, j->ep, 413, NULL,
                      "%sinput over the token limit (max_tokens = %s): %s", where, limit, in->err);
            job_detach(j);
            job_free(j);
            return;
        }
        if (in->rc < 0) {
            reply_err(sd, j->req, j->ep, in->rc == SG_EINVAL ? 400 : 500, NULL, "%s%s", where,
                      in->err);
            job_detach(j);
            job_free(j);
            return;
        }
        in->obj = sg_moderate_result_json(NULL, &in->res);
        if (in->obj == NULL) {
            reply_err(sd, j->req, j->ep, 500, NULL, "out of memory");
            job_detach(j);
            job_free(j);
            return;
        }
        if (sd->cache != NULL && !in->res_copy) {
            json_t *stored = from_cache(in->obj);
            size_t cost = 128 + 96 * in->res.n_scores;

            if (stored != NULL && cache_put(sd->cache, in->key, in->key_len, stored, cost,
                                            free_json, sched_now()) < 0)
                json_decref(stored);
        }
    }
    job_reply(j);
    job_free(j);
}

/* Parse one input object of /v1/classify. */
static int parse_classify_input(struct job *j, const json_t *obj, const char *where,
                                const json_t *default_policies, struct input *in, char *err,
                                size_t errlen)
{
    static const char *const allowed[] = {"text", "response", "policies", NULL};
    const json_t *pol;

    if (!json_is_object(obj)) {
        snprintf(err, errlen, "%smust be an object with 'text', not %s", where,
                 json_type_name(obj));
        return -1;
    }
    if (only_keys(obj, allowed, where, err, errlen) < 0)
        return -1;
    if (get_text(obj, "text", where, 1, &in->text, &in->text_len, err, errlen) < 0)
        return -1;
    if (get_text(obj, "response", where, 0, &in->response, &in->response_len, err, errlen) < 0)
        return -1;
    pol = json_object_get(obj, "policies");
    if (pol == NULL)
        pol = default_policies;
    return parse_policies(j->pset->set, pol, where, &in->policies, &in->n_policies, err, errlen);
}

/*
 * Allocate j->in for `n` inputs, a list in the reply when `batch` (then at most max_inputs, else
 * 413). Returns 0, or an HTTP status with a message in `err`.
 */
static int new_inputs(struct job *j, size_t n, int batch, char *err, size_t errlen)
{
    if (batch && n > (size_t)j->sd->cfg.max_inputs) {
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

/* Validate the body into j->in. Returns 0, or an HTTP status with a message in `err`. */
static int parse_classify(struct job *j, char *err, size_t errlen)
{
    static const char *const allowed[] = {"text", "response", "policies", "inputs", NULL};
    const json_t *inputs = json_object_get(j->body, "inputs");
    const json_t *pol = json_object_get(j->body, "policies");
    size_t i;
    json_t *e;
    int rc;

    if (only_keys(j->body, allowed, "", err, errlen) < 0)
        return 400;
    if (inputs == NULL) {
        rc = new_inputs(j, 1, 0, err, errlen);
        if (rc != 0)
            return rc;
        return parse_classify_input(j, j->body, "", NULL, &j->in[0], err, errlen) < 0 ? 400 : 0;
    }
    if (json_object_get(j->body, "text") != NULL || json_object_get(j->body, "response")) {
        snprintf(err, errlen, "give either 'text' (one input) or 'inputs' (a batch), not both");
        return 400;
    }
    if (!json_is_array(inputs)) {
        snprintf(err, errlen, "'inputs' must be an array of objects, not %s",
                 json_type_name(inputs));
        return 400;
    }
    if (json_array_size(inputs) == 0) {
        snprintf(err, errlen, "'inputs' is empty");
        return 400;
    }
    rc = new_inputs(j, json_array_size(inputs), 1, err, errlen);
    if (rc != 0)
        return rc;
    if (pol != NULL && !json_is_null(pol)) {
        const char **tmp;
        size_t n;

        if (parse_policies(j->pset->set, pol, "", &tmp, &n, err, errlen) < 0)
            return 400;
        free(tmp);
    }
    json_array_foreach(inputs, i, e)
    {
        char where[48];

        snprintf(where, sizeof where, "inputs[%zu]: ", i);
        if (parse_classify_input(j, e, where, pol, &j->in[i], err, errlen) < 0)
            return 400;
    }
    return 0;
}

static int parse_moderations(struct job *j, char *err, size_t errlen)
{
    static const char *const allowed[] = {"input", "model", "policies", NULL};
    const json_t *input = json_object_get(j->body, "input");
    const json_t *model = json_object_get(j->body, "model");
    const json_t *pol = json_object_get(j->body, "policies");
    size_t i;
    json_t *e;
    int rc;

    if (only_keys(j->body, allowed, "", err, errlen) < 0)
        return 400;
    if (model != NULL && !json_is_string(model) && !json_is_null(model)) {
        snprintf(err, errlen, "'model' must be a string, not %s", json_type_name(model));
        return 400;
    }
    if (input == NULL) {
        snprintf(err, errlen, "missing 'input'");
        return 400;
    }
    if (json_is_string(input)) {
        rc = new_inputs(j, 1, 0, err, errlen);
    } else if (json_is_array(input)) {
        if (json_array_size(input) == 0) {
            snprintf(err, errlen, "'input' is an empty array");
            return 400;
        }
        rc = new_inputs(j, json_array_size(input), 1, err, errlen);
    } else {
        snprintf(err, errlen, "'input' must be a string or an array of strings, not %s",
                 json_type_name(input));
        return 400;
    }
    if (rc != 0)
        return rc;
    for (i = 0; i < j->n_in; i++) {
        struct input *in = &j->in[i];
        char where[48] = "";

        e = j->batch ? json_array_get(input, i) : (json_t *)input;
        if (j->batch)
            snprintf(where, sizeof where, "input[%zu]: ", i);
        /* The multi-modal form: {"type": "text", "text": "..."}; only text is supported. */
        if (json_is_object(e)) {
            const char *type = json_string_value(json_object_get(e, "type"));

            if (type == NULL || strcmp(type, "text") != 0) {
                snprintf(err, errlen,
                         "%sonly {\"type\": \"text\", \"text\": ...} items are "
                         "supported",
                         where);
                return 400;
            }
            if (get_text(e, "text", where, 1, &in->text, &in->text_len, err, errlen) < 0)
                return 400;
        } else if (!json_is_string(e)) {
            snprintf(err, errlen, "%s'input' items must be strings, not %s", where,
                     json_type_name(e));
            return 400;
        } else if (json_string_length(e) == 0) {
            snprintf(err, errlen, "%s'input' is empty", where);
            return 400;
        } else {
            in->text = json_string_value(e);
            in->text_len = json_string_length(e);
        }
        if (parse_policies(j->pset->set, pol, "", &in->policies, &in->n_policies, err, errlen) < 0)
            return 400;
    }
    return 0;
}

static void handle_moderation(struct shieldd *sd, struct http_request *req,
                              enum metrics_endpoint ep)
{
    struct job *j;
    char err[1024];
    size_t missing = 0, cost = 0;
    double now = sched_now();
    double left, timeout;
    const char *hdr;
    int status;

    if (!sd->ready) {
        reply_err(sd, req, ep, 503, "Retry-After: 1\r\n", "the model is not loaded yet");
        return;
    }
    /* A client may ask for a shorter deadline than request_timeout (a gateway's budget). */
    timeout = sd->cfg.request_timeout;
    hdr = http_request_header(req, "X-Request-Timeout");
    if (hdr != NULL) {
        double t;

        if (config_parse_duration(hdr, &t) < 0 || !(t > 0)) {
            reply_err(sd, req, ep, 400, NULL,
                      "bad X-Request-Timeout '%.40s' (seconds, or with "
                      "ms/s/m/h)",
                      hdr);
            return;
        }
        if (t < timeout)
            timeout = t;
    }
    j = calloc(1, sizeof *j);
    if (j == NULL) {
        reply_err(sd, req, ep, 500, NULL, "out of memory");
        return;
    }
    j->sd = sd;
    j->timeout = timeout;
    j->ep = ep;
    j->kind = ep == EP_MODERATIONS ? KIND_MODERATIONS : KIND_CLASSIFY;
    j->pset = pset_ref(sd->pset);
    j->body = parse_body(sd, req, ep);
    if (j->body == NULL) {
        job_free(j);
        return;
    }
    status = j->kind == KIND_CLASSIFY ? parse_classify(j, err, sizeof err)
                                      : parse_moderations(j, err, sizeof err);
    if (status != 0) {
        reply_err(sd, req, ep, status, NULL, "%s", err);
        job_free(j);
        return;
    }
    for (size_t i = 0; i < j->n_in; i++) {
        struct input *in = &j->in[i];
        const void *hit;

        if (make_key(in, j->pset->gen) < 0) {
            reply_err(sd, req, ep, 500, NULL, "out of memory");
            job_free(j);
            return;
        }
        hit = sd->cache ? cache_get(sd->cache, in->key, in->key_len, now) : NULL;
        if (hit != NULL)
            in->obj = from_cache(hit);
        if (in->obj == NULL) {
            missing++;
            cost += in->text_len + in->response_len + 64;
        }
    }
    j->req = req;
    j->arrived = req->arrived;
    if (missing == 0) {
        job_reply(j);
        job_free(j);
        return;
    }
    left = timeout - (now - req->arrived);
    j->sj.deadline = req->arrived + timeout;
    j->sj.cost = cost;
    j->sj.done = job_done;
    j->sj.arg = j;
    j->deadline = evtimer_new(sd->base, job_deadline, j);
    if (j->deadline == NULL) {
        j->req = NULL;
        reply_err(sd, req, ep, 500, NULL, "out of memory");
        job_free(j);
        return;
    }
    if (sched_submit(sd->sched, &j->sj) < 0) {
        char extra[64];

        j->req = NULL;
        sd->metrics.queue_full++;
        snprintf(extra, sizeof extra, "Retry-After: %d\r\n", sd->cfg.retry_after);
        reply_err(sd, req, ep, 503, extra,
                  "the request queue is full (queue_depth = %d); retry "
                  "later",
                  sd->cfg.queue_depth);
        job_free(j);
        return;
    }
    j->queued = 1;
    req->on_abort = job_abort;
    req->abort_arg = j;
    {
        struct timeval tv;

        if (left < 0)
            left = 0;
        tv.tv_sec = (time_t)left;
        tv.tv_usec = (suseconds_t)((left - (double)tv.tv_sec) * 1e6);
        evtimer_add(j->deadline, &tv);
    }
}

/* ---- Worker side ----------------------------------------------------------------------------- */

static int same_input(const struct input *a, const struct input *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* An earlier input of this request with the same text, response and policies that has a
 * result, or NULL. (Across requests, the moderator's cached prefix and the result cache do
 * the sharing; a finished request is handed back at once and may be freed.) */
static const struct input *find_dup(const struct job *j, size_t upto_in, const struct input *in)
{
    for (size_t i = 0; i < upto_in; i++) {
        const struct input *o = &j->in[i];

        if (o->have_res && !o->res_copy && same_input(o, in))
            return o;
    }
    return NULL;
}

void api_run_batch(void *ud, struct sched_job **jobs, size_t n)
{
    struct shieldd *sd = ud;

    for (size_t k = 0; k < n; k++) {
        struct job *j = (struct job *)jobs[k];

        for (size_t i = 0; i < j->n_in; i++) {
            struct input *in = &j->in[i];
            const struct input *dup;
            sg_moderate_req mr;

            if (in->obj != NULL)
                continue;
            if (j->sj.cancelled)
                break;
            in->ran = 1;
            if (sched_now() >= j->sj.deadline) {
                in->rc = RC_EXPIRED;
                break;
            }
            dup = find_dup(j, i, in);
            if (dup != NULL) {
                /* The same input earlier in this batch: share its result (nothing computed). */
                in->res = dup->res;
                in->res.computed_tokens = 0;
                in->res.scores = malloc(dup->res.n_scores * sizeof *dup->res.scores + 1);
                if (in->res.scores == NULL) {
                    in->rc = SG_ENOMEM;
                    snprintf(in->err, sizeof in->err, "out of memory");
                    continue;
                }
                memcpy(in->res.scores, dup->res.scores,
                       dup->res.n_scores * sizeof *dup->res.scores);
                in->res_copy = 1;
                in->have_res = 1;
                in->rc = 0;
                continue;
            }
            memset(&mr, 0, sizeof mr);
            mr.text = in->text;
            mr.text_len = in->text_len;
            mr.response = in->response;
            mr.response_len = in->response_len;
            mr.policies = in->policies;
            mr.n_policies = in->n_policies;
            in->rc = sg_moderate(sd->mod, j->pset->set, &mr, &in->res);
            if (in->rc < 0) {
                snprintf(in->err, sizeof in->err, "%s", sg_moderator_errmsg(sd->mod));
                memset(&in->res, 0, sizeof in->res);
                /* One bad input fails its request: skip the rest of it. */
                break;
            }
            in->have_res = 1;
        }
        /* Its reply need not wait for the rest of the batch. */
        sched_finish(sd->sched, &j->sj);
    }
}

/* ---- Routing ----------------------------------------------------------------------------- */

static void handle_policies(struct shieldd *sd, struct http_request *req, enum metrics_endpoint ep)
{
    json_t *root = json_object();
    json_t *list = json_array();
    const sg_policy_set *set = sd->pset->set;

    json_object_set_new(root, "model", json_string(sd->info ? sd->info->name : ""));
    json_object_set_new(root, "policies", list);
    for (size_t i = 0; i < sg_policy_count(set); i++) {
        const sg_policy *p = sg_policy_at(set, i);

        json_array_append_new(list, json_pack("{s:s, s:s?, s:s?, s:f, s:b}", "name", p->name,
                                              "title", p->title, "description", p->description,
                                              "threshold", p->threshold, "enabled", p->enabled));
    }
    reply_json(sd, req, ep, 200, root);
    json_decref(root);
}

static void handle_metrics(struct shieldd *sd, struct http_request *req, enum metrics_endpoint ep)
{
    struct metrics_view v;
    struct evbuffer *buf = evbuffer_new();

    memset(&v, 0, sizeof v);
    sched_get_stats(sd->sched, &v.sched);
    if (sd->cache)
        cache_get_stats(sd->cache, &v.cache);
    v.cache_enabled = sd->cache != NULL;
    if (sd->prefix != NULL)
        sg_prefix_cache_get_stats(sd->prefix, &v.prefix);
    v.prefix_enabled = sd->prefix != NULL;
    v.connections = http_server_connections(sd->http);
    v.ready = sd->ready && !sd->draining;
    v.model_name = sd->info ? sd->info->name : "";
    v.model_arch = sd->info ? sd->info->arch : "";
    v.model_format = sd->info ? sd->info->format : "";
    v.precision = sd->cfg.precision;
    v.kernel = sd->model ? sg_model_kernel(sd->model) : "";
    v.n_policies = sg_policy_count(sd->pset->set);
    v.started = sd->started;
    sd->metrics.connections_total = http_server_accepted(sd->http);
    sd->metrics.connections_rejected = http_server_rejected(sd->http);
    /* Count this request before rendering, so a scrape sees itself. */
    metrics_request(&sd->metrics, ep, 200, sched_now() - req->arrived);
    if (buf == NULL || metrics_render(&sd->metrics, &v, buf) < 0) {
        char *e = http_error_json("server_error", "out of memory");

        http_reply(req, 500, "application/json", NULL, e ? e : "", e ? strlen(e) : 0);
        free(e);
    } else {
        size_t len = evbuffer_get_length(buf);

        http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
                   evbuffer_pullup(buf, -1), len);
    }
    if (buf)
        evbuffer_free(buf);
}

void api_handle(struct http_request *req, void *ud)
{
    struct shieldd *sd = ud;
    enum metrics_endpoint ep = metrics_endpoint_of(req->path);
    int is_get = req->method == HTTP_GET || req->method == HTTP_HEAD;

    log_debug("%s %s %s", req->listener, req->method_name, req->target);
    switch (ep) {
    case EP_CLASSIFY:
    case EP_MODERATIONS:
        if (req->method != HTTP_POST) {
            reply_err(sd, req, ep, 405, "Allow: POST\r\n", "%s accepts POST, not %s",
                      metrics_endpoint_name(ep), req->method_name);
            return;
        }
        handle_moderation(sd, req, ep);
        return;
    case EP_POLICIES:
    case EP_HEALTHZ:
    case EP_READYZ:
    case EP_METRICS:
        if (!is_get) {
            reply_err(sd, req, ep, 405, "Allow: GET, HEAD\r\n", "%s accepts GET, not %s",
                      metrics_endpoint_name(ep), req->method_name);
            return;
        }
        break;
    default:
        reply_err(sd, req, EP_OTHER, 404, NULL,
                  "no such endpoint: %s (see GET /v1/policies, "
                  "POST /v1/classify, POST /v1/moderations, /healthz, /readyz, /metrics)",
                  req->path);
        return;
    }
    if (ep == EP_HEALTHZ) {
        static const char ok[] = "{\"status\":\"ok\"}";

        reply_raw(sd, req, ep, 200, "application/json", NULL, ok, sizeof ok - 1);
    } else if (ep == EP_READYZ) {
        if (!sd->ready || sd->draining) {
            reply_err(sd, req, ep, 503, "Retry-After: 1\r\n", "%s",
                      sd->draining ? "shutting down" : "the model is not loaded yet");
        } else {
            json_t *root = json_pack("{s:s, s:s, s:I}", "status", "ready", "model", sd->info->name,
                                     "policies", (json_int_t)sg_policy_count(sd->pset->set));

            reply_json(sd, req, ep, 200, root);
            json_decref(root);
        }
    } else if (ep == EP_POLICIES) {
        handle_policies(sd, req, ep);
    } else {
        handle_metrics(sd, req, ep);
    }
}
