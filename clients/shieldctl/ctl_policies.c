/* ctl_policies.c: `shieldctl policies`: the daemon's loaded policies (GET /v1/policies). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "remote.h"

int ctl_policies(int argc, char **argv);

const char ctl_policies_help[] = "list the policies the daemon has loaded";

static void usage(FILE *f)
{
    fprintf(f, "usage: shieldctl policies [--socket PATH | --url URL] [--json]\n"
               "\n"
               "List the daemon's policies with their thresholds (--json: its reply as is).\n");
}

int ctl_policies(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"url", required_argument, NULL, 'u'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *sock = NULL;
    const char *url = NULL;
    const char *ep;
    int as_json = 0;
    sg_client *c = NULL;
    json_t *j = NULL;
    json_t *p;
    size_t i;
    int status = 1;
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            sock = optarg;
            break;
        case 'u':
            url = optarg;
            break;
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
    ep = ctl_endpoint("policies", sock, url);
    if (!ep)
        return 2;
    c = ctl_client_open("policies", ep, 0);
    if (!c)
        return 1;
    if (ctl_remote_json("policies", c, "GET", "/v1/policies", NULL, &j, NULL) < 0)
        goto out;
    if (!json_is_array(json_object_get(j, "policies"))) {
        fprintf(stderr, "shieldctl policies: the reply has no \"policies\" array\n");
        goto out;
    }
    if (as_json) {
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));

        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        printf("%-20s %9s %-8s %s\n", "policy", "threshold", "enabled", "title");
        json_array_foreach(json_object_get(j, "policies"), i, p) {
            const char *name = json_string_value(json_object_get(p, "name"));
            const char *title = json_string_value(json_object_get(p, "title"));

            printf("%-20s %9.2f %-8s %s\n", name ? name : "?",
                   json_number_value(json_object_get(p, "threshold")),
                   json_is_true(json_object_get(p, "enabled")) ? "yes" : "no", title ? title : "");
        }
    }
    status = 0;
out:
    json_decref(j);
    sg_client_free(c);
    return status;
}
