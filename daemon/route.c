/*
 * route.c: the endpoint table.
 */
#include "route.h"

#include <stdio.h>
#include <string.h>

static const struct route routes[] = {
    {"/v1/classify", EP_CLASSIFY, 1, 1, 0, 0},
    {"/v1/moderations", EP_MODERATIONS, 1, 1, 0, 0},
    {"/beta/litellm_basic_guardrail_api", EP_LITELLM, 1, 1, 0, 0},
    /* Envoy's ext_authz appends the client's path: /v1/check/chat/completions/v1/chat/... */
    {"/v1/check/chat/completions", EP_CHECK_CHAT, 1, 1, 0, 1},
    {"/v1/policies", EP_POLICIES, 0, 0, 0, 0},
    {"/healthz", EP_HEALTHZ, 0, 0, 1, 0},
    {"/readyz", EP_READYZ, 0, 0, 1, 0},
    {"/metrics", EP_METRICS, 0, 0, 0, 0},
};

#define N_ROUTES (sizeof routes / sizeof routes[0])

const struct route *route_find(const char *path)
{
    for (size_t i = 0; i < N_ROUTES; i++) {
        size_t n = strlen(routes[i].path);

        if (strcmp(path, routes[i].path) == 0 ||
            (routes[i].prefix && strncmp(path, routes[i].path, n) == 0 && path[n] == '/'))
            return &routes[i];
    }
    return NULL;
}

const char *route_name(enum api_endpoint ep)
{
    for (size_t i = 0; i < N_ROUTES; i++)
        if (routes[i].ep == ep)
            return routes[i].path;
    return "other";
}

void route_list(char *buf, size_t cap)
{
    size_t n = 0;

    if (cap == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < N_ROUTES && n < cap; i++) {
        int k = snprintf(buf + n, cap - n, "%s%s %s", i ? ", " : "",
                         routes[i].post ? "POST" : "GET", routes[i].path);

        if (k < 0)
            break;
        n += (size_t)k;
    }
}
