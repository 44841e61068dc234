/*
 * http_pair.c (tests): see http_pair.h.
 */
#include "http_pair.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "http.h"

const char *http_pair_kind = "unix";

char *http_pair_exchange(struct event_base *base, struct http_server *s, const void *data,
                         size_t len, int shut, int idle_ms, size_t *out_len)
{
    int sv[2];
    char *out = NULL;
    size_t n = 0, cap = 0, sent = 0;
    int idle = 0, closed = 0;

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return NULL;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    if (http_server_adopt(s, sv[1], http_pair_kind) < 0) {
        close(sv[0]);
        return NULL;
    }
    while (!closed && idle < idle_ms) {
        int progress = 0;

        if (sent < len) {
            ssize_t k = write(sv[0], (const char *)data + sent, len - sent);

            if (k > 0) {
                sent += (size_t)k;
                progress = 1;
            }
            if (sent == len && shut)
                shutdown(sv[0], SHUT_WR);
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
        for (;;) {
            ssize_t k;

            if (cap - n < 4096) {
                char *p = realloc(out, cap ? cap * 2 : 8192);

                if (p == NULL)
                    goto done;
                out = p;
                cap = cap ? cap * 2 : 8192;
            }
            k = read(sv[0], out + n, cap - n - 1);
            if (k > 0) {
                n += (size_t)k;
                progress = 1;
                continue;
            }
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                closed = 1;
            break;
        }
        if (!progress) {
            poll(NULL, 0, 1);
            idle++;
        } else {
            idle = 0;
        }
    }
done:
    close(sv[0]);
    /* Let the server notice the close. */
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    if (out == NULL)
        out = calloc(1, 1);
    if (out != NULL)
        out[n] = '\0';
    if (out_len)
        *out_len = n;
    return out;
}
