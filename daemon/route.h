#ifndef SG_DAEMON_ROUTE_H
#define SG_DAEMON_ROUTE_H
/*
 * route.h: the daemon's endpoints, one table: path, the method it takes, whether it needs an
 * API key, and the label /metrics counts it under. api.c dispatches on it; metrics.c prints
 * its labels.
 */

#include <stddef.h>

enum api_endpoint {
    EP_CLASSIFY = 0,
    EP_MODERATIONS,
    EP_LITELLM,    /* LiteLLM's Generic Guardrail API */
    EP_CHECK_CHAT, /* the gateway check of an OpenAI chat-completions request */
    EP_POLICIES,
    EP_HEALTHZ,
    EP_READYZ,
    EP_METRICS,
    EP_OTHER, /* every path that is not an endpoint */
    EP_COUNT
};

struct route {
    const char *path;
    enum api_endpoint ep;
    int post;      /* 1: POST; 0: GET and HEAD */
    int moderates; /* 1: runs the model (a job); 0: answered on the loop at once */
    int open;      /* 1: served without an API key (health checks) */
    int prefix;    /* 1: also matches PATH/anything (Envoy's ext_authz path_prefix) */
};

/* The route of `path` (exact match, or under a prefix route), or NULL. Borrowed from a static
 * table. */
const struct route *route_find(const char *path);
/* The metrics label of `ep` (its path, or "other"). Never NULL. */
const char *route_name(enum api_endpoint ep);
/* "GET /v1/policies, POST /v1/classify, ..." (every endpoint, for the 404 message) into buf. */
void route_list(char *buf, size_t cap);

#endif /* SG_DAEMON_ROUTE_H */
