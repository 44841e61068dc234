/*
 * api_worker.c: the worker side of a moderation request, on the scheduler's thread (the only
 * code that touches the moderator). It runs sg_moderate() for every input of every job in the
 * scheduler's round (one after another) that has no result yet, writing only the inputs' worker fields, and hands each job
 * back as soon as it is finished.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_job.h"
#include "shieldd.h"

static int same_input(const struct input *a, const struct input *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* An earlier input of this request with the same text, response and policies that was run, or
 * NULL. (Across requests, the moderator's cached prefix and the result cache do the sharing; a
 * finished request is handed back at once and may be freed.) */
static const struct input *find_dup(const struct job *j, size_t upto, const struct input *in)
{
    for (size_t i = 0; i < upto; i++) {
        const struct input *o = &j->in[i];

        if (o->state == INPUT_DONE && !o->dup && same_input(o, in))
            return o;
    }
    return NULL;
}

/* Share the result of an identical earlier input (nothing computed). */
static void copy_dup(struct input *in, const struct input *dup)
{
    size_t n = dup->res.n_scores;

    in->res = dup->res;
    in->res.computed_tokens = 0;
    in->res.scores = malloc(n * sizeof *dup->res.scores + 1);
    if (in->res.scores == NULL) {
        memset(&in->res, 0, sizeof in->res);
        in->rc = SG_ENOMEM;
        snprintf(in->err, sizeof in->err, "out of memory");
        in->state = INPUT_FAILED;
        return;
    }
    if (n > 0)
        memcpy(in->res.scores, dup->res.scores, n * sizeof *dup->res.scores);
    in->state = INPUT_DONE; /* counted as classified, with nothing computed */
    in->dup = 1;
}

/* Run one input. Returns 0, or -1 when it failed (which fails its request). */
static int run_input(struct shieldd *sd, const struct job *j, struct input *in)
{
    sg_moderate_req mr;

    memset(&mr, 0, sizeof mr);
    mr.text = in->text;
    mr.text_len = in->text_len;
    mr.response = in->response;
    mr.response_len = in->response_len;
    mr.policies = in->policies;
    mr.n_policies = in->n_policies;
    in->rc = sg_moderate(sd->mod, j->pset->set, &mr, &in->res);
    if (in->rc < 0) {
        /* Whatever the engine left in the result is not an answer. */
        snprintf(in->err, sizeof in->err, "%s", sg_moderator_errmsg(sd->mod));
        memset(&in->res, 0, sizeof in->res);
        in->state = INPUT_FAILED;
        return -1;
    }
    in->state = INPUT_DONE;
    return 0;
}

static void run_job(struct shieldd *sd, struct job *j)
{
    for (size_t i = 0; i < j->n_in; i++) {
        struct input *in = &j->in[i];
        const struct input *dup;

        if (in->state == INPUT_CACHED)
            continue;
        if (atomic_load(&j->sj.cancelled))
            break;
        if (sched_now() >= j->sj.deadline) {
            in->state = INPUT_EXPIRED;
            break;
        }
        dup = find_dup(j, i, in);
        if (dup != NULL) {
            copy_dup(in, dup);
            continue;
        }
        /* One bad input fails its request: skip the rest of it. */
        if (run_input(sd, j, in) < 0)
            break;
    }
}

void api_run_round(void *ud, struct sched_job **jobs, size_t n)
{
    struct shieldd *sd = ud;

    for (size_t k = 0; k < n; k++) {
        run_job(sd, (struct job *)jobs[k]);
        /* Its reply need not wait for the rest of the round. */
        sched_finish(sd->sched, jobs[k]);
    }
}
