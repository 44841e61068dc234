#ifndef SG_DAEMON_API_H
#define SG_DAEMON_API_H
/*
 * api.h: the HTTP API of docs/DESIGN.md on top of http.h and scheduler.h.
 *
 *   POST /v1/classify     {"text", "response"?, "policies"?}, {"messages": [...]} or
 *                         {"inputs": [...], "policies"?}
 *   POST /v1/moderations  the OpenAI moderation shape (+ OpenAI category names)
 *   POST /beta/litellm_basic_guardrail_api   LiteLLM's Generic Guardrail API
 *   POST /v1/check/chat/completions          a gateway's check of a chat-completions request
 *   GET  /v1/policies, /healthz, /readyz, /metrics
 *
 * Requests are validated on the loop (JSON, types, UTF-8, policy names), answered from the
 * result cache when possible, else queued for the worker; the worker runs sg_moderate() and
 * the loop renders each endpoint's JSON from the results. The files, by thread: api.c
 * (routing, credentials, small endpoints), api_parse.c, api_job.c, api_render.c (loop),
 * api_worker.c (worker); api_job.h is the job they share.
 */

#include <stddef.h>

#include "http.h"
#include "scheduler.h"

struct shieldd;

/* The http_handler_fn: `ud` is the struct shieldd (its cfg, pset, cache, sched, info, metrics
 * and, when set, keys and allow lists; the model only through the worker). */
void api_handle(struct http_request *req, void *ud);

/* The sched_run_fn, on the worker thread: runs the round's jobs one after another. `ud` is the
 * struct shieldd. */
void api_run_round(void *ud, struct sched_job **jobs, size_t n);

#endif /* SG_DAEMON_API_H */
