/*
 * fuzz_client_response.c: libshieldclient's HTTP response parser (status line, headers,
 * Content-Length, chunked and close-delimited bodies) on arbitrary server bytes, fed through a
 * socketpair that is closed after them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../clients/lib/shieldclient.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sg_client_opts o = sg_client_opts_default();
    sg_client *c = NULL;
    sg_client_response r;
    char err[128];
    int sv[2];
    int closed = 0;

    if (size > 60000)
        return 0;
    o.timeout_ms = 1000;
    o.max_body = 1 << 20;
    if (sg_client_new(&c, "unix:/fuzz.sock", &o, err, sizeof err) < 0)
        abort();
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        sg_client_free(c);
        return 0;
    }
    {
        int sz = 1 << 18;

        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }
    if (size && write(sv[0], data, size) != (ssize_t)size) {
        close(sv[0]);
        close(sv[1]);
        sg_client_free(c);
        return 0;
    }
    close(sv[0]);
    c->fd = sv[1];
    memset(&r, 0, sizeof r);
    r.retry_after = -1;
    if (read_response(c, "GET", &r, &closed) == 0 && (!r.body || r.body[r.body_len] != '\0'))
        abort();
    sg_client_response_free(&r);
    sg_client_free(c); /* closes sv[1] */
    return 0;
}
