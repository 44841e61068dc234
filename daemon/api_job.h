#ifndef SG_DAEMON_API_JOB_H
#define SG_DAEMON_API_JOB_H
/*
 * api_job.h: a moderation request as it crosses threads (private to daemon/api*.c).
 *
 *   api.c         routing, authentication, the small endpoints (loop thread)
 *   api_parse.c   a request body -> the job's inputs, every check once (loop thread)
 *   api_job.c     cache look-up, queueing, deadline, client departure, the hand-back (loop)
 *   api_worker.c  sg_moderate() over a batch of jobs (worker thread only)
 *   api_render.c  results -> the reply JSON of each endpoint, built once (loop thread)
 *
 * A `job` is one HTTP request; it holds one `input` per text. The loop fills everything above
 * the "worker" line before sched_submit(); the worker writes only the fields below it, and the
 * loop reads them only after the hand-back (the scheduler's mutex orders the two).
 * Ownership: the job owns the parsed body (inputs' strings point into it or into `texts`), a
 * reference to the policy set it was validated against, and the results.
 */

#include <stddef.h>

#include <jansson.h>

#include "route.h"
#include "scheduler.h"
#include "sg_moderate.h"

struct shieldd;
struct http_request;

enum input_state {
    INPUT_PENDING = 0, /* not run (yet) */
    INPUT_CACHED,      /* answered from the result cache */
    INPUT_DONE,        /* run by the worker */
    INPUT_FAILED,      /* sg_moderate failed: rc, err */
    INPUT_EXPIRED,     /* the deadline passed before it ran */
};

struct input {
    const char *text;
    size_t text_len;
    const char *response; /* NULL: prompt-only */
    size_t response_len;
    const char *const *policies; /* NULL: the set's enabled policies; borrowed */
    size_t n_policies;
    const char **own_policies; /* the input's own list (policies points here), owned */
    unsigned char *key;        /* the exact cache key */
    size_t key_len;
    /* ---- worker (after submit) ---- */
    enum input_state state;
    int dup; /* INPUT_DONE by sharing an identical earlier input's result */
    int rc;
    char err[320];
    sg_moderate_result res; /* INPUT_CACHED / INPUT_DONE; owns res.scores */
};

struct job {
    struct sched_job sj;
    struct shieldd *sd;
    struct http_request *req; /* NULL once replied or aborted */
    enum api_endpoint ep;
    int batch; /* the reply is a list */
    json_t *body;
    struct pset *pset;
    struct input *in;
    size_t n_in;
    const char **policies; /* the request's list that inputs borrow, owned; NULL: none */
    size_t n_policies;
    /* Texts joined from chat content parts, owned. */
    char **texts;
    size_t n_texts;
    int key_slot; /* metrics_key_slot of the caller's API key; -1: none */
    struct event *deadline;
    int queued; /* submitted and not yet handed back */
    double arrived;
    double timeout; /* seconds from arrival */
};

/* ---- api.c: replies that count in /metrics ---- */

void api_reply_json(struct shieldd *sd, struct http_request *req, enum api_endpoint ep, int status,
                    const char *extra, json_t *root);
#if defined(__GNUC__)
__attribute__((format(printf, 6, 7)))
#endif
void api_reply_err(struct shieldd *sd, struct http_request *req, enum api_endpoint ep, int status,
                   const char *extra, const char *fmt, ...);

/* ---- api_parse.c ---- */

/*
 * Parse and check req's body into j->body and j->in for endpoint j->ep, against j->pset.
 * Returns 0, or an HTTP status (400, 413, 500) with a message naming the problem in `err`.
 */
int api_parse(struct job *j, const struct http_request *req, char *err, size_t errlen);

/* ---- api_job.c ---- */

/* Validate, answer from the cache or queue a moderation request of route `ep`. */
void api_moderate(struct shieldd *sd, struct http_request *req, enum api_endpoint ep, int key_slot);

/* ---- api_render.c ---- */

/*
 * The reply of a job whose every input is INPUT_CACHED or INPUT_DONE: *out (new reference),
 * its status (200, or 403 from the check endpoint) and header lines in `extra` (cap bytes).
 * Returns the status, or 500 when out of memory (*out NULL).
 */
int api_render(struct job *j, json_t **out, char *extra, size_t cap);

#endif /* SG_DAEMON_API_JOB_H */
