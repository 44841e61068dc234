/*
 * api.c: the entry point of every request on the loop thread: the route, the caller's
 * credentials (peer uid/gid on a Unix socket, then the API key), the method, and the small
 * endpoints answered at once (/healthz, /readyz, /v1/policies, /metrics). Moderation
 * requests go on to api_job.c. Replies made here and there count in /metrics.
 */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "api_job.h"
#include "auth.h"
#include "log.h"
#include "route.h"
#include "shieldd.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))

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

static void reply_raw(struct shieldd *sd, struct http_request *req, enum api_endpoint ep,
                      int status, const char *ctype, const char *extra, const char *body,
                      size_t len)
{
    metrics_request(&sd->metrics, ep, status, sched_now() - req->arrived);
    http_reply(req, status, ctype, extra, body, len);
}

void api_reply_json(struct shieldd *sd, struct http_request *req, enum api_endpoint ep, int status,
                    const char *extra, json_t *root)
{
    char *s = root ? json_dumps(root, DUMP_FLAGS) : NULL;

    if (s == NULL) {
        char *e = http_error_json("server_error", "out of memory");

        reply_raw(sd, req, ep, 500, "application/json", NULL, e ? e : "", e ? strlen(e) : 0);
        free(e);
        return;
    }
    reply_raw(sd, req, ep, status, "application/json", extra, s, strlen(s));
    free(s);
}

void api_reply_err(struct shieldd *sd, struct http_request *req, enum api_endpoint ep, int status,
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

/* ---- The small endpoints ------------------------------------------------------------------- */

static void handle_policies(struct shieldd *sd, struct http_request *req, enum api_endpoint ep)
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
    api_reply_json(sd, req, ep, 200, NULL, root);
    json_decref(root);
}

static void handle_metrics(struct shieldd *sd, struct http_request *req, enum api_endpoint ep)
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

static void handle_small(struct shieldd *sd, struct http_request *req, enum api_endpoint ep)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    json_t *root;

    switch (ep) {
    case EP_HEALTHZ:
        reply_raw(sd, req, ep, 200, "application/json", NULL, ok, sizeof ok - 1);
        return;
    case EP_READYZ:
        if (!sd->ready || sd->draining) {
            api_reply_err(sd, req, ep, 503, "Retry-After: 1\r\n", "%s",
                          sd->draining ? "shutting down" : "the model is not loaded yet");
            return;
        }
        root = json_pack("{s:s, s:s, s:I}", "status", "ready", "model", sd->info->name, "policies",
                         (json_int_t)sg_policy_count(sd->pset->set));
        api_reply_json(sd, req, ep, 200, NULL, root);
        json_decref(root);
        return;
    case EP_POLICIES:
        handle_policies(sd, req, ep);
        return;
    default:
        handle_metrics(sd, req, ep);
        return;
    }
}

/* ---- Who is calling ------------------------------------------------------------------------ */

/*
 * Check the caller. Returns the metrics slot of its key (-1: no key needed), or -2 after a
 * 401 / 403 reply.
 */
static int authenticate(struct shieldd *sd, struct http_request *req, const struct route *r)
{
    const char *name;
    size_t slot;

    if (strcmp(req->listener, "unix") == 0 && (sd->n_allow_uids > 0 || sd->n_allow_gids > 0)) {
        unsigned uid, gid;
        int ok = auth_peer_allowed(http_request_fd(req), sd->allow_uids, sd->n_allow_uids,
                                   sd->allow_gids, sd->n_allow_gids, &uid, &gid);

        if (ok <= 0) {
            sd->metrics.forbidden++;
            log_warnx("refused a Unix socket peer (uid %d, gid %d): not in allow_uids / "
                      "allow_gids",
                      (int)uid, (int)gid);
            api_reply_err(sd, req, r->ep, 403, NULL,
                          "this user (uid %d, gid %d) may not use shieldd (allow_uids, "
                          "allow_gids)",
                          (int)uid, (int)gid);
            return -2;
        }
    }
    if (sd->keys == NULL || r->open || (r->ep == EP_METRICS && !sd->cfg.metrics_auth))
        return -1;
    name = keyring_match(sd->keys, http_request_header(req, "Authorization"));
    if (name == NULL && http_request_header(req, "Authorization") == NULL)
        name = keyring_match_key(sd->keys, http_request_header(req, "X-Api-Key"));
    if (name == NULL) {
        const char *h = http_request_header(req, "Authorization");

        if (h == NULL)
            h = http_request_header(req, "X-Api-Key");
        sd->metrics.unauthorized++;
        api_reply_err(sd, req, r->ep, 401, "WWW-Authenticate: Bearer realm=\"shieldd\"\r\n", "%s",
                      h == NULL ? "an API key is required: send 'Authorization: Bearer KEY'"
                                : "the API key is not valid");
        return -2;
    }
    slot = metrics_key_slot(&sd->metrics, name);
    sd->metrics.keys[slot].requests++;
    return (int)slot;
}

void api_handle(struct http_request *req, void *ud)
{
    struct shieldd *sd = ud;
    const struct route *r = route_find(req->path);
    int is_get = req->method == HTTP_GET || req->method == HTTP_HEAD;
    int slot;

    log_debug("%s %s %s", req->listener, req->method_name, req->path);
    if (r == NULL) {
        char list[512];

        route_list(list, sizeof list);
        api_reply_err(sd, req, EP_OTHER, 404, NULL, "no such endpoint: %.200s (see %s)", req->path,
                      list);
        return;
    }
    slot = authenticate(sd, req, r);
    if (slot == -2)
        return;
    if (r->post && req->method != HTTP_POST) {
        api_reply_err(sd, req, r->ep, 405, "Allow: POST\r\n", "%s accepts POST, not %s", r->path,
                      req->method_name);
        return;
    }
    if (!r->post && !is_get) {
        api_reply_err(sd, req, r->ep, 405, "Allow: GET, HEAD\r\n",
                      "%s accepts GET and HEAD, not %s", r->path, req->method_name);
        return;
    }
    if (r->moderates)
        api_moderate(sd, req, r->ep, slot);
    else
        handle_small(sd, req, r->ep);
}
