/*
 * fuzz_http.c: the daemon's HTTP/1.1 server (daemon/http.c) on arbitrary client bytes, over a
 * socketpair in-process. The handler answers every complete request; whatever arrives, the
 * server must not crash or leak, and everything it writes must be HTTP/1.1 responses.
 * The fuzz build links engine/ and policies/ only, so the daemon files it needs are included.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../../daemon/http.c"
#include "../../daemon/log.c"
#include "../../daemon/scheduler.c"
#include "../lib/http_pair.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void handler(struct http_request *req, void *ud)
{
    (void)ud;
    if (req->body_len % 2)
        http_reply_error(req, 400, NULL, req->path);
    else
        http_reply(req, 200, "text/plain", NULL, req->body, req->body_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_server_opts o;
    struct event_base *base = event_base_new();
    struct http_server *s;
    char *out;
    size_t n;

    memset(&o, 0, sizeof o);
    o.max_header_bytes = 512;
    o.max_body_bytes = 256;
    o.read_timeout = 0.05;
    o.idle_timeout = 0.05;
    o.write_timeout = 0.05;
    o.max_connections = 4;
    s = http_server_new(base, &o, handler, NULL);
    out = http_pair_exchange(base, s, data, size, 1, 60, &n);
    if (out != NULL && n > 0 && strncmp(out, "HTTP/1.1 ", 9) != 0)
        abort();
    free(out);
    http_server_free(s);
    event_base_free(base);
    return 0;
}
