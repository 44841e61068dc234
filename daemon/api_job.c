/*
 * api_job.c: the loop side of a moderation request. It parses the body into a job, answers the
 * inputs it can from the result cache, queues the rest for the worker with a deadline, and
 * when the worker hands the job back, stores the new results in the cache and replies. A job
 * is freed by whichever comes last: the reply, the client's departure, or the hand-back.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "api_job.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "shieldd.h"

static void job_free(struct job *j)
{
    if (j == NULL)
        return;
    for (size_t i = 0; j->in != NULL && i < j->n_in; i++) {
        free(j->in[i].own_policies);
        free(j->in[i].key);
        sg_moderate_result_free(&j->in[i].res);
    }
    free(j->in);
    free(j->policies);
    for (size_t i = 0; i < j->n_texts; i++)
        free(j->texts[i]);
    free(j->texts);
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

/* Reply with an error, then forget the request; the job is freed unless the worker has it. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
job_fail(struct job *j, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_reply_err(j->sd, j->req, j->ep, status, NULL, "%s", msg);
    job_detach(j);
    if (j->queued && sched_cancel(j->sd->sched, &j->sj) == 1)
        j->queued = 0;
    if (!j->queued)
        job_free(j);
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
    job_fail(j, 504, "the request was not answered within %s (%gs)",
             j->timeout < sd->cfg.request_timeout ? "X-Request-Timeout" : "request_timeout",
             j->timeout);
}

/* Every input has its result: render the endpoint's reply once and send it. */
static void job_reply(struct job *j)
{
    char extra[640];
    json_t *root = NULL;
    int status = api_render(j, &root, extra, sizeof extra);

    api_reply_json(j->sd, j->req, j->ep, status, extra[0] ? extra : NULL, root);
    json_decref(root);
    job_detach(j);
}

/* ---- The result cache ---------------------------------------------------------------------- */

/*
 * A cache entry is one sg_moderate_result with its scores in the same allocation. Its scores
 * borrow the policies of the current set: only results of the current set are stored, and a
 * reload clears the cache before it releases the old set.
 */
static sg_moderate_result *result_dup(const sg_moderate_result *r, size_t *size)
{
    size_t n = r->n_scores;
    sg_moderate_result *c = malloc(sizeof *c + n * sizeof *r->scores);

    if (c == NULL)
        return NULL;
    *c = *r;
    c->scores = (sg_policy_score *)(c + 1);
    if (n > 0)
        memcpy(c->scores, r->scores, n * sizeof *r->scores);
    *size = sizeof *c + n * sizeof *r->scores;
    return c;
}

/* A hit becomes the input's own copy with computed_tokens 0 (nothing was run). */
static int from_cache(struct input *in, const sg_moderate_result *hit)
{
    size_t n = hit->n_scores;

    in->res = *hit;
    in->res.computed_tokens = 0;
    in->res.scores = malloc(n * sizeof *hit->scores + 1);
    if (in->res.scores == NULL) {
        memset(&in->res, 0, sizeof in->res);
        return -1;
    }
    if (n > 0)
        memcpy(in->res.scores, hit->scores, n * sizeof *hit->scores);
    in->state = INPUT_CACHED;
    return 0;
}

static void cache_store(struct job *j, struct input *in)
{
    struct shieldd *sd = j->sd;
    sg_moderate_result *c;
    size_t size;

    if (sd->cache == NULL || in->state != INPUT_DONE || in->dup || j->pset != sd->pset)
        return;
    c = result_dup(&in->res, &size);
    if (c != NULL &&
        cache_put(sd->cache, in->key, in->key_len, c, size + 64, free, sched_now()) < 0)
        free(c);
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

/* ---- The hand-back --------------------------------------------------------------------------- */

/* Account what the worker did, even for a reply that is no longer wanted. */
static void job_account(struct job *j)
{
    struct metrics *m = &j->sd->metrics;

    for (size_t i = 0; i < j->n_in; i++) {
        const struct input *in = &j->in[i];

        if (in->state != INPUT_DONE)
            continue;
        m->inputs++;
        m->prompt_tokens += in->res.prompt_tokens;
        m->computed_tokens += in->res.computed_tokens;
        if (j->key_slot >= 0) {
            m->keys[j->key_slot].prompt_tokens += in->res.prompt_tokens;
            m->keys[j->key_slot].computed_tokens += in->res.computed_tokens;
        }
    }
}

/* The reply for a failed input; 1 if there was one. */
static int input_failed(struct job *j, size_t i)
{
    struct input *in = &j->in[i];
    struct shieldd *sd = j->sd;
    char where[48] = "";

    if (j->batch)
        snprintf(where, sizeof where, "%s[%zu]: ",
                 j->ep == EP_MODERATIONS ? "input"
                 : j->ep == EP_LITELLM   ? "texts"
                                         : "inputs",
                 i);
    if (in->state == INPUT_EXPIRED || in->state == INPUT_PENDING) {
        job_deadline(-1, 0, j);
        return 1;
    }
    if (in->state != INPUT_FAILED)
        return 0;
    if (in->rc == SG_ERANGE) {
        char limit[64] = "the model's context";

        if (sd->cfg.max_tokens > 0)
            snprintf(limit, sizeof limit, "%d", sd->cfg.max_tokens);
        job_fail(j, 413, "%sinput over the token limit (max_tokens = %s): %s", where, limit,
                 in->err);
    } else if (in->rc == SG_EINVAL) {
        job_fail(j, 400, "%s%s", where, in->err);
    } else {
        /* The engine failed at run time: an error, never a probability. */
        metrics_model_error(&sd->metrics, in->rc);
        log_warnx("%s: the model failed (%s): %s", route_name(j->ep), sg_engine_strerror(in->rc),
                  in->err);
        job_fail(j, 500, "%sthe model failed: %s", where, in->err);
    }
    return 1;
}

static void job_done(struct sched_job *sj, void *arg)
{
    struct job *j = arg;

    (void)sj;
    j->queued = 0;
    job_account(j);
    if (j->req == NULL) {
        job_free(j);
        return;
    }
    if (j->sj.status == SCHED_EXPIRED) {
        job_deadline(-1, 0, j);
        return;
    }
    if (j->sj.status == SCHED_CANCELLED) {
        job_fail(j, 503, "the daemon is shutting down");
        return;
    }
    for (size_t i = 0; i < j->n_in; i++)
        if (input_failed(j, i))
            return;
    for (size_t i = 0; i < j->n_in; i++)
        cache_store(j, &j->in[i]);
    job_reply(j);
    job_free(j);
}

/* ---- A new request ------------------------------------------------------------------------- */

/* The job's deadline: request_timeout, or a shorter X-Request-Timeout. 0, or -1 after a 400. */
static int job_timeout(struct shieldd *sd, struct http_request *req, enum api_endpoint ep,
                       double *timeout)
{
    const char *hdr = http_request_header(req, "X-Request-Timeout");
    double t;

    /* A client may ask for a shorter deadline than request_timeout (a gateway's budget). */
    *timeout = sd->cfg.request_timeout;
    if (hdr == NULL)
        return 0;
    if (config_parse_duration(hdr, &t) < 0 || !(t > 0)) {
        api_reply_err(sd, req, ep, 400, NULL,
                      "bad X-Request-Timeout '%.40s' (seconds, or with ms/s/m/h)", hdr);
        return -1;
    }
    if (t < *timeout)
        *timeout = t;
    return 0;
}

/* Look every input up in the cache. Returns the bytes of input of those left to run (a bound
 * on their tokens; 0: all answered), or (size_t)-1 when out of memory. */
static size_t job_lookup(struct job *j)
{
    struct shieldd *sd = j->sd;
    double now = sched_now();
    size_t bytes = 0;

    for (size_t i = 0; i < j->n_in; i++) {
        struct input *in = &j->in[i];
        const sg_moderate_result *hit;

        if (make_key(in, j->pset->gen) < 0)
            return (size_t)-1;
        hit = sd->cache ? cache_get(sd->cache, in->key, in->key_len, now) : NULL;
        if (hit != NULL && from_cache(in, hit) < 0)
            return (size_t)-1;
        if (in->state != INPUT_CACHED)
            bytes += in->text_len + in->response_len + 64; /* a bound on the tokens */
    }
    return bytes;
}

/* Queue the job with its deadline timer. 0, or -1 after an error reply (the job freed). */
static int job_submit(struct job *j, size_t cost_bytes)
{
    struct shieldd *sd = j->sd;
    double left = j->timeout - (sched_now() - j->arrived);
    struct timeval tv;

    j->sj.deadline = j->arrived + j->timeout;
    j->sj.cost_bytes = cost_bytes;
    j->sj.tenant = j->key_slot >= 0 ? (unsigned)j->key_slot + 1 : 0;
    j->sj.done = job_done;
    j->sj.arg = j;
    j->deadline = evtimer_new(sd->base, job_deadline, j);
    if (j->deadline == NULL) {
        job_fail(j, 500, "out of memory");
        return -1;
    }
    if (sched_submit(sd->sched, &j->sj) < 0) {
        char extra[64];

        sd->metrics.queue_full++;
        snprintf(extra, sizeof extra, "Retry-After: %d\r\n", sd->cfg.retry_after);
        api_reply_err(sd, j->req, j->ep, 503, extra,
                      "the request queue is full (queue_depth = %d); retry later",
                      sd->cfg.queue_depth);
        job_detach(j);
        job_free(j);
        return -1;
    }
    j->queued = 1;
    j->req->on_abort = job_abort;
    j->req->abort_arg = j;
    if (left < 0)
        left = 0;
    tv.tv_sec = (time_t)left;
    tv.tv_usec = (suseconds_t)((left - (double)tv.tv_sec) * 1e6);
    evtimer_add(j->deadline, &tv);
    return 0;
}

void api_moderate(struct shieldd *sd, struct http_request *req, enum api_endpoint ep, int key_slot)
{
    struct job *j;
    char err[1024];
    double timeout;
    size_t cost_bytes;
    int status;

    if (!sd->ready) {
        api_reply_err(sd, req, ep, 503, "Retry-After: 1\r\n", "the model is not loaded yet");
        return;
    }
    if (job_timeout(sd, req, ep, &timeout) < 0)
        return;
    j = calloc(1, sizeof *j);
    if (j == NULL) {
        api_reply_err(sd, req, ep, 500, NULL, "out of memory");
        return;
    }
    j->sd = sd;
    j->req = req;
    j->ep = ep;
    j->key_slot = key_slot;
    j->timeout = timeout;
    j->arrived = req->arrived;
    j->pset = pset_ref(sd->pset);
    status = api_parse(j, req, err, sizeof err);
    if (status != 0) {
        job_fail(j, status, "%s", err);
        return;
    }
    cost_bytes = job_lookup(j);
    if (cost_bytes == (size_t)-1) {
        job_fail(j, 500, "out of memory");
    } else if (cost_bytes == 0) {
        job_reply(j);
        job_free(j);
    } else {
        job_submit(j, cost_bytes);
    }
}
