/* ctl_policies.c: `shieldctl policies`: the daemon's loaded policies (GET /v1/policies). */
#include <stdio.h>

#include "common.h"
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
    ctl_remote_args a;
    sg_client *c = NULL;
    json_t *j = NULL;
    json_t *p;
    size_t i;
    int status = ctl_remote_args_parse("policies", argc, argv, 0, usage, &a);

    if (status >= 0)
        return status;
    status = ctl_connect("policies", a.sock, a.url, 0, &c, NULL);
    if (status)
        return status;
    status = 1;
    if (ctl_remote_json("policies", c, "GET", "/v1/policies", NULL, &j, NULL) < 0)
        goto out;
    if (!json_is_array(json_object_get(j, "policies"))) {
        fprintf(stderr, "shieldctl policies: the reply has no \"policies\" array\n");
        goto out;
    }
    if (a.as_json) {
        if (ctl_print_json(stdout, j, JSON_COMPACT | JSON_REAL_PRECISION(17)) < 0) {
            fprintf(stderr, "shieldctl policies: out of memory\n");
            goto out;
        }
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
