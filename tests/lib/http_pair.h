#ifndef SG_TEST_HTTP_PAIR_H
#define SG_TEST_HTTP_PAIR_H
/*
 * http_pair.h (tests): drive daemon/http.c in-process over a socketpair: send bytes as a
 * client, run the loop, collect what the server wrote back.
 */

#include <stddef.h>

struct event_base;
struct http_server;

/*
 * Connect a new client to `s` (http_server_adopt on one end of a socketpair), send
 * data[0..len) (then shut the client's write side if `shut`), run `base` until the server
 * closes the connection or `idle_ms` pass without progress, and return what arrived as a
 * malloc'd NUL-terminated string (*out_len its length; caller frees).
 */
/* The listener kind the next exchanges claim ("unix" unless a test sets "tcp"). */
extern const char *http_pair_kind;

char *http_pair_exchange(struct event_base *base, struct http_server *s, const void *data,
                         size_t len, int shut, int idle_ms, size_t *out_len);

#endif /* SG_TEST_HTTP_PAIR_H */
