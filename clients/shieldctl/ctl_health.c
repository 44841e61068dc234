/*
 * ctl_health.c: `shieldctl health`: is the daemon alive (GET /healthz) and ready (GET /readyz)?
 * Exit 0 when ready, 1 otherwise, with the daemon's own message.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

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
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'}, {"url", required_argument, NULL, 'u'},
        {"timeout", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *sock = NULL;
    const char *url = NULL;
    const char *ep;
    int timeout = 0;
    int as_json = 0;
    sg_client *c = NULL;
    json_t *j = NULL;
    int status = 1;
    int c_;

    optind = 1;
    while ((c_ = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c_) {
        case 's':
            sock = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 't': {
            char *end;

            errno = 0;
            timeout = (int)strtol(optarg, &end, 10);
            if (errno || *end || timeout <= 0) {
                fprintf(stderr, "shieldctl health: --timeout wants milliseconds > 0, not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        }
        case 'j':
            as_json = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    ep = ctl_endpoint("health", sock, url);
    if (!ep)
        return 2;
    c = ctl_client_open("health", ep, timeout);
    if (!c)
        return 1;
    if (ctl_remote_json("health", c, "GET", "/healthz", NULL, &j, NULL) < 0)
        goto out;
    json_decref(j);
    j = NULL;
    if (ctl_remote_json("health", c, "GET", "/readyz", NULL, &j, NULL) < 0)
        goto out;
    if (as_json) {
        char *s = json_dumps(j, JSON_COMPACT);

        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        printf("ready: model %s, %lld policies (%s)\n",
               json_string_value(json_object_get(j, "model")) ? json_string_value(
                                                                    json_object_get(j, "model"))
                                                              : "?",
               (long long)json_integer_value(json_object_get(j, "policies")), ep);
    }
    status = 0;
out:
    json_decref(j);
    sg_client_free(c);
    return status;
}
