/*
 * fuzz_api.c: the daemon's HTTP API (daemon/api.c: api_handle and the worker's batch function)
 * on arbitrary request bodies, reached through the real HTTP server (daemon/http.c) over a
 * socketpair, with the real scheduler thread, result cache and policy set (policies/, or
 * $SG_POLICIES), and a stub moderator in place of the model: the link wraps sg_moderate() (the
 * daemon's objects are linked whole, so the target follows however api.c is split), and the
 * stub checks its arguments as the real one does and scores each policy from a hash of the
 * text. Every reply must be one or more HTTP/1.1 responses, and a 2xx reply to
 * a JSON endpoint must be a JSON object.
 *
 * Input: the first byte picks the endpoint and method from `routes` (every endpoint of
 * daemon/route.c; add new ones there), the rest is the body, sent with a Content-Length. With the
 * selector's high bit set, the rest goes as raw client bytes instead.
 * Seeds: tests/fuzz/seeds/fuzz_api/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "api.h"
#include "cache.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "scheduler.h"
#include "sg_moderate.h"
#include "sg_policy.h"
#include "shieldd.h"
#include "utf8.h"

#include "../lib/http_pair.c"

/* Linked with -Wl,--wrap=sg_moderate,--wrap=sg_moderator_errmsg (the Makefile): the daemon's
 * calls come here instead of the engine. */
int __wrap_sg_moderate(sg_moderator *mod, const sg_policy_set *set, const sg_moderate_req *req,
                       sg_moderate_result *res);
const char *__wrap_sg_moderator_errmsg(const sg_moderator *mod);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    const char *method, *path;
} routes[] = {
    {"POST", "/v1/classify"}, {"POST", "/v1/moderations"}, {"GET", "/v1/policies"},
    {"GET", "/healthz"},      {"GET", "/readyz"},          {"GET", "/metrics"},
    {"HEAD", "/healthz"},     {"PUT", "/v1/classify"},     {"POST", "/v1/nothing"},
    {"POST", "/v1/classify?x=1"},
    {"POST", "/beta/litellm_basic_guardrail_api"},
    {"POST", "/v1/check/chat/completions"},
    {"POST", "/v1/check/chat/completions/v1/chat/completions"},
};

static char stub_err[128];

const char *__wrap_sg_moderator_errmsg(const sg_moderator *mod)
{
    (void)mod;
    return stub_err;
}

/* The stub: the real one's argument checks, then a score per policy from the text's hash. */
int __wrap_sg_moderate(sg_moderator *mod, const sg_policy_set *set, const sg_moderate_req *req,
                       sg_moderate_result *res)
{
    const sg_policy *pick[64];
    size_t n = 0;
    uint64_t h = 1469598103934665603ull;

    (void)mod;
    memset(res, 0, sizeof *res);
    if (set == NULL || req == NULL || req->text == NULL)
        abort(); /* api.c must never pass these */
    if (req->text_len == 0 || !sg_utf8_valid(req->text, req->text_len, NULL) ||
        (req->response != NULL && !sg_utf8_valid(req->response, req->response_len, NULL))) {
        snprintf(stub_err, sizeof stub_err, "bad text");
        return SG_EINVAL;
    }
    for (size_t i = 0; i < req->n_policies && n < 64; i++) {
        const sg_policy *p = sg_policy_find(set, req->policies[i]);

        if (p == NULL) {
            snprintf(stub_err, sizeof stub_err, "unknown policy");
            return SG_EINVAL;
        }
        pick[n++] = p;
    }
    for (size_t i = 0; req->n_policies == 0 && i < sg_policy_count(set) && n < 64; i++)
        if (sg_policy_at(set, i)->enabled)
            pick[n++] = sg_policy_at(set, i);
    for (size_t i = 0; i < req->text_len; i++)
        h = (h ^ (unsigned char)req->text[i]) * 1099511628211ull;
    res->scores = calloc(n + 1, sizeof *res->scores);
    if (res->scores == NULL)
        return SG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        res->scores[i].policy = pick[i];
        res->scores[i].probability = (double)((h >> (i % 48)) & 0xffff) / 65535.0;
        res->scores[i].threshold = pick[i]->threshold;
        res->scores[i].violation = res->scores[i].probability >= pick[i]->threshold;
        res->flagged |= res->scores[i].violation;
    }
    res->n_scores = n;
    res->prompt_tokens = res->computed_tokens = req->text_len / 4 + 1;
    res->text_bytes = req->text_len;
    res->response_bytes = req->response ? req->response_len : 0;
    return SG_OK;
}

static struct shieldd sd;
static sg_model_info info;

static void init_once(void)
{
    struct http_server_opts ho;
    const char *dir = getenv("SG_POLICIES") ? getenv("SG_POLICIES") : "policies";
    char err[512];

    evthread_use_pthreads();
    shieldd_defaults(&sd.cfg);
    sd.base = event_base_new();
    metrics_init(&sd.metrics);
    snprintf(info.name, sizeof info.name, "fuzz-model");
    snprintf(info.arch, sizeof info.arch, "gemma2");
    snprintf(info.format, sizeof info.format, "safetensors");
    sd.info = &info;
    sd.pset = calloc(1, sizeof *sd.pset);
    if (sd.base == NULL || sd.pset == NULL ||
        sg_policy_set_load(&sd.pset->set, dir, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_api: policies from %s: %s\n", dir, err);
        abort();
    }
    sd.pset->refs = 1;
    sd.cache = cache_new(1 << 20, 60);
    if (sched_new(&sd.sched, sd.base, 16, 8, 16384, api_run_round, &sd) < 0)
        abort();
    memset(&ho, 0, sizeof ho);
    ho.max_header_bytes = 4096;
    ho.max_body_bytes = 1 << 16;
    ho.read_timeout = 0.2;
    ho.idle_timeout = 0.2;
    ho.write_timeout = 1;
    ho.max_connections = 8;
    ho.retry_after = 1;
    sd.http = http_server_new(sd.base, &ho, api_handle, &sd);
    sd.ready = 1;
    sd.started = 1;
    if (sd.http == NULL)
        abort();
    log_init(0, 0); /* warnings only: bad requests are not news */
}

/* Every response in out[0..n) starts with a status line; a 2xx JSON one holds an object. */
static void check_replies(const char *out, size_t n)
{
    const char *p = out;

    while (p < out + n) {
        const char *body = strstr(p, "\r\n\r\n");
        const char *cl;
        size_t len;

        if (strncmp(p, "HTTP/1.1 ", 9) != 0 || body == NULL)
            abort();
        cl = strstr(p, "Content-Length: ");
        if (cl == NULL || cl > body)
            abort();
        len = strtoul(cl + 16, NULL, 10);
        body += 4;
        if (strncmp(p + 9, "2", 1) == 0 && strstr(p, "application/json") != NULL &&
            strstr(p, "application/json") < body && (size_t)(out + n - body) >= len && len > 0 &&
            body[0] != '{')
            abort();
        if (len > (size_t)(out + n - body))
            return; /* a HEAD reply or a cut-off write: nothing more to frame */
        p = body + len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    char head[256];
    char *req, *out;
    size_t n, hn;

    if (!inited) {
        init_once();
        inited = 1;
    }
    if (size == 0 || size > 60000)
        return 0;
    if (data[0] & 0x80) {
        req = malloc(size);
        if (req == NULL)
            return 0;
        memcpy(req, data + 1, size - 1);
        hn = size - 1;
    } else {
        size_t r = data[0] % (sizeof routes / sizeof routes[0]);

        hn = (size_t)snprintf(head, sizeof head,
                              "%s %s HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\n\r\n",
                              routes[r].method, routes[r].path, size - 1);
        req = malloc(hn + size);
        if (req == NULL)
            return 0;
        memcpy(req, head, hn);
        memcpy(req + hn, data + 1, size - 1);
        hn += size - 1;
    }
    out = http_pair_exchange(sd.base, sd.http, req, hn, 1, 300, &n);
    if (out != NULL && getenv("FUZZ_API_PRINT") != NULL) /* to look at the replies to a seed */
        fwrite(out, 1, n, stderr);
    if (out != NULL)
        check_replies(out, n);
    free(out);
    free(req);
    return 0;
}
