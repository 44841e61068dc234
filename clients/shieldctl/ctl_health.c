/*
 * ctl_health.c: `shieldctl health`: is the daemon alive (GET /healthz) and ready (GET /readyz)?
 * Exit 0 when ready, 1 otherwise, with the daemon's own message.
 */
#include <stdio.h>

#include "common.h"
#include "remote.h"

int ctl_health(int argc, char **argv);

const char ctl_health_help[] = "check that the daemon is alive and ready";

static void usage(FILE *f)
{
    fprintf(f, "usage: shieldctl health [--socket PATH | --url URL] [--timeout MS] [--json]\n"
               "\n"
               "Ask the daemon for /healthz and /readyz; exit 0 when it is ready.\n"
               "The endpoint defaults to $SHIELDD_SOCKET, $SHIELDD_URL, then\n"
               "/run/shieldd/shieldd.sock.\n");
}

int ctl_health(int argc, char **argv)
{
    ctl_remote_args a;
    const char *ep;
    sg_client *c = NULL;
    json_t *j = NULL;
    int status = ctl_remote_args_parse("health", argc, argv, 1, usage, &a);

    if (status >= 0)
        return status;
    status = ctl_connect("health", a.sock, a.url, a.timeout_ms, &c, &ep);
    if (status)
        return status;
    status = 1;
    if (ctl_remote_json("health", c, "GET", "/healthz", NULL, &j, NULL) < 0)
        goto out;
    json_decref(j);
    j = NULL;
    if (ctl_remote_json("health", c, "GET", "/readyz", NULL, &j, NULL) < 0)
        goto out;
    if (a.as_json) {
        if (ctl_print_json(stdout, j, JSON_COMPACT) < 0) {
            fprintf(stderr, "shieldctl health: out of memory\n");
            goto out;
        }
    } else {
        const char *model = json_string_value(json_object_get(j, "model"));

        printf("ready: model %s, %lld policies (%s)\n", model ? model : "?",
               (long long)json_integer_value(json_object_get(j, "policies")), ep);
    }
    status = 0;
out:
    json_decref(j);
    sg_client_free(c);
    return status;
}
