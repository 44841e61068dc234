#ifndef SG_DAEMON_HTTP_H
#define SG_DAEMON_HTTP_H
/*
 * http.h: a small HTTP/1.1 server on libevent bufferevents, the same on every listener (Unix
 * and TCP). It parses requests itself (rather than through evhttp) so that every failure it
 * detects is answered with the daemon's JSON error shape and the right status, and so that
 * it can bound connections: request line and header size (414/431), body size from
 * Content-Length or chunked framing (413, answered before the body is read), the time to
 * receive a whole request (408, slow clients), idle keep-alive time, the number of open
 * connections (503). It supports keep-alive, pipelining (one request at a time per
 * connection, in order), Expect: 100-continue, chunked bodies and HEAD.
 *
 * The handler gets a complete request and answers it, now or later, with http_reply(). If
 * the client goes away first, the request's abort callback runs instead and the request is
 * freed: the handler must forget it.
 */

#include <stddef.h>

struct event_base;
struct http_server;

enum http_method {
    HTTP_GET,
    HTTP_HEAD,
    HTTP_POST,
    HTTP_PUT,
    HTTP_DELETE,
    HTTP_PATCH,
    HTTP_OPTIONS,
    HTTP_OTHER
};

#define HTTP_MAX_HEADERS 64

struct http_request {
    enum http_method method;
    const char *method_name;
    char *target;      /* as sent: "/v1/classify?x=1" */
    char *path;        /* target without the query */
    int version_minor; /* HTTP/1.x */
    size_t n_headers;
    const char *header_name[HTTP_MAX_HEADERS];
    const char *header_value[HTTP_MAX_HEADERS];
    char *body; /* NUL-terminated copy; body_len bytes */
    size_t body_len;
    double arrived;       /* sched_now() at the first byte */
    const char *listener; /* "unix" or "tcp" */
    void (*on_abort)(struct http_request *req, void *arg);
    void *abort_arg;
    struct http_conn *conn; /* private */
};

typedef void (*http_handler_fn)(struct http_request *req, void *ud);

struct http_server_opts {
    size_t max_header_bytes;
    size_t max_body_bytes;
    double read_timeout;  /* seconds from a request's first byte to its last */
    double idle_timeout;  /* seconds between requests on a keep-alive connection */
    double write_timeout; /* seconds without progress while sending a reply */
    size_t max_connections;
    int retry_after; /* Retry-After of the 503 for too many connections */
};

/* A server on `base`, calling `handler(req, ud)` for each complete request. NULL when out of
 * memory. The caller owns it (http_server_free). */
struct http_server *http_server_new(struct event_base *base, const struct http_server_opts *o,
                                    http_handler_fn handler, void *ud);

/* Accept connections on the listening socket `fd` (it takes ownership of fd); `kind` labels
 * requests ("unix" or "tcp"). Returns 0, or -1 with errno set. */
int http_server_listen_fd(struct http_server *s, int fd, const char *kind);

/* Serve the already connected socket `fd` (it takes ownership), as if accepted on a listener
 * of `kind`. Returns 0, or -1 (fd closed). For tests and fuzzing, with a socketpair. */
int http_server_adopt(struct http_server *s, int fd, const char *kind);

/*
 * Stop accepting (close every listener), close idle connections, and close the others once
 * their current request is answered. `on_empty(arg)` is called when no connection is left
 * (maybe at once).
 */
void http_server_drain(struct http_server *s, void (*on_empty)(void *arg), void *arg);

size_t http_server_connections(const struct http_server *s);
unsigned long long http_server_accepted(const struct http_server *s);
unsigned long long http_server_rejected(const struct http_server *s);

/* Close everything and free the server (pending requests are aborted first). */
void http_server_free(struct http_server *s);

/* The socket of the connection `req` came on (for its peer's credentials). Borrowed. */
int http_request_fd(const struct http_request *req);

/* The value of header `name` (case-insensitive; the first one), or NULL. Borrowed. */
const char *http_request_header(const struct http_request *req, const char *name);

/*
 * Answer `req` with `status`, a Content-Type, optional extra header lines (each ending in
 * "\r\n"; NULL for none) and the body. After this call `req` is gone. HEAD replies carry the
 * headers only.
 */
void http_reply(struct http_request *req, int status, const char *content_type,
                const char *extra_headers, const void *body, size_t len);

/* The reason phrase of a status ("Not Found"). */
const char *http_status_text(int status);

/*
 * The JSON error body {"error": {"type": TYPE, "message": MESSAGE}} (no newline at the end),
 * malloc'd (caller frees); NULL when out of memory.
 */
char *http_error_json(const char *type, const char *message);

/* The error type name for a status ("invalid_request_error", "not_found_error", ...). */
const char *http_error_type(int status);

/* Reply with the JSON error of `status`, using http_error_type(status) and `message`. */
void http_reply_error(struct http_request *req, int status, const char *extra_headers,
                      const char *message);

#endif /* SG_DAEMON_HTTP_H */
