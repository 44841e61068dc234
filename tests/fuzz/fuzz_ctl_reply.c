/*
 * fuzz_ctl_reply.c: shieldctl's handling of the daemon's replies on arbitrary server bytes:
 * libshieldclient reads the HTTP response (fed through a socketpair, then end of file),
 * ctl_remote_json() turns it into JSON or an error message, and ctl_print_classify() prints
 * whatever JSON came back, as a table and as JSON. Nothing may crash or leak, whatever the
 * "daemon" sends. Seeds: tests/fuzz/seeds/fuzz_ctl_reply/ (real replies of the daemon).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../clients/lib/shieldclient.c"
#include "../../clients/shieldctl/common.c"
#include "../../clients/shieldctl/remote.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    sg_client_opts o = sg_client_opts_default();
    sg_client *c = NULL;
    json_t *body = json_pack("{s:s}", "text", "fuzz");
    json_t *reply = NULL;
    char err[128];
    int sv[2];
    int status = 0;
    int sz = 1 << 18;

    if (size > 60000 || body == NULL)
        return 0;
    if (sink == NULL)
        sink = fopen("/dev/null", "w");
    if (sink == NULL) /* shieldctl's messages go to stderr: keep them out of the log */
        abort();
    o.timeout_ms = 1000;
    o.max_body = 1 << 20;
    if (sg_client_new(&c, "unix:/nonexistent/fuzz.sock", &o, err, sizeof err) < 0)
        abort();
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        sg_client_free(c);
        json_decref(body);
        return 0;
    }
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    if (size && write(sv[0], data, size) != (ssize_t)size) {
        close(sv[0]);
        close(sv[1]);
        sg_client_free(c);
        json_decref(body);
        return 0;
    }
    shutdown(sv[0], SHUT_WR); /* the "daemon" has said all it will; it still reads */
    c->fd = sv[1];
    if (ctl_remote_json("fuzz", c, "POST", "/v1/classify", body, &reply, &status) == 0) {
        if (reply == NULL || status < 200 || status > 299)
            abort();
        ctl_print_classify(sink, reply, 0);
        ctl_print_classify(sink, reply, 1);
        ctl_error_message(reply);
    } else if (reply != NULL) {
        abort();
    }
    json_decref(reply);
    json_decref(body);
    sg_client_free(c); /* closes sv[1] */
    close(sv[0]);
    return 0;
}
