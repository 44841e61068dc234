/* remote.c: shieldctl's HTTP helpers (see remote.h). */
#include "remote.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const char *ctl_endpoint(const char *cmd, const char *sock, const char *url)
{
    static char buf[4200];

    if (sock && url) {
        fprintf(stderr, "shieldctl %s: give only one of --socket and --url\n", cmd);
        return NULL;
    }
    if (sock) {
        snprintf(buf, sizeof buf, "unix:%s", sock);
        return buf;
    }
    if (url)
        return url;
    return sg_client_default_endpoint();
}

sg_client *ctl_client_open(const char *cmd, const char *endpoint, int timeout_ms)
{
    sg_client_opts o = sg_client_opts_default();
    sg_client *c = NULL;
    char err[512];

    if (timeout_ms > 0)
        o.timeout_ms = timeout_ms;
    if (sg_client_new(&c, endpoint, &o, err, sizeof err) < 0) {
        fprintf(stderr, "shieldctl %s: %s\n", cmd, err);
        return NULL;
    }
    return c;
}

const char *ctl_error_message(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "message"));
}

int ctl_remote_json(const char *cmd, sg_client *c, const char *method, const char *path,
                    json_t *body, json_t **out, int *status)
{
    sg_client_response r;
    char *s = NULL;
    json_t *j = NULL;
    json_error_t je;
    int rc;

    *out = NULL;
    if (status)
        *status = 0;
    if (body) {
        s = json_dumps(body, JSON_COMPACT);
        if (!s) {
            fprintf(stderr, "shieldctl %s: out of memory\n", cmd);
            return -1;
        }
    }
    rc = sg_client_request(c, method, path, s, s ? strlen(s) : 0, &r);
    free(s);
    if (rc < 0) {
        fprintf(stderr, "shieldctl %s: %s\n", cmd, sg_client_errmsg(c));
        sg_client_response_free(&r);
        return -1;
    }
    if (status)
        *status = r.status;
    j = json_loadb(r.body, r.body_len, 0, &je);
    if (r.status < 200 || r.status > 299) {
        const char *m = j ? ctl_error_message(j) : NULL;

        if (m)
            fprintf(stderr, "shieldctl %s: HTTP %d: %s\n", cmd, r.status, m);
        else
            fprintf(stderr, "shieldctl %s: HTTP %d: %.*s\n", cmd, r.status, (int)r.body_len,
                    r.body);
        json_decref(j);
        sg_client_response_free(&r);
        return -1;
    }
    if (!j) {
        fprintf(stderr, "shieldctl %s: the reply is not JSON: %s\n", cmd, je.text);
        sg_client_response_free(&r);
        return -1;
    }
    sg_client_response_free(&r);
    *out = j;
    return 0;
}

int ctl_remote_args_parse(const char *cmd, int argc, char **argv, int with_timeout,
                          void (*usage)(FILE *), ctl_remote_args *a)
{
    static const struct option with_t[] = {
        {"socket", required_argument, NULL, 's'}, {"url", required_argument, NULL, 'u'},
        {"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
        {"timeout", required_argument, NULL, 't'}, {NULL, 0, NULL, 0},
    };
    static const struct option without_t[] = {
        {"socket", required_argument, NULL, 's'}, {"url", required_argument, NULL, 'u'},
        {"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    memset(a, 0, sizeof *a);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", with_timeout ? with_t : without_t, NULL)) != -1) {
        switch (opt) {
        case 's':
            a->sock = optarg;
            break;
        case 'u':
            a->url = optarg;
            break;
        case 't':
            if (ctl_parse_int(cmd, "--timeout", optarg, 1, INT_MAX, &a->timeout_ms) < 0)
                return 2;
            break;
        case 'j':
            a->as_json = 1;
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
    return -1;
}

int ctl_connect(const char *cmd, const char *sock, const char *url, int timeout_ms,
                sg_client **c, const char **ep)
{
    const char *e = ctl_endpoint(cmd, sock, url);

    *c = NULL;
    if (ep)
        *ep = e;
    if (!e)
        return 2;
    *c = ctl_client_open(cmd, e, timeout_ms);
    return *c ? 0 : 1;
}
