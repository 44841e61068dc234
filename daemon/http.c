/*
 * http.c: connection state machine.
 *
 *   READ_HEAD --headers complete--> READ_BODY | READ_CHUNKED --body complete--> HANDLING
 *   HANDLING --http_reply--> WRITING --flushed--> READ_HEAD (keep-alive) | LINGER (close)
 *   LINGER: our side shut down for writing; what the client still sends is read and dropped
 *   until it closes or a short timer fires, so that a reply sent before an unread body (413)
 *   is not destroyed by a TCP reset.
 *
 * While HANDLING, reading stays enabled (up to a watermark) only to notice a client that
 * leaves; pipelined bytes wait in the input buffer until the reply is sent.
 */
#include "http.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>

#include "log.h"
#include "scheduler.h"

#define LINGER_SECONDS 2.0
#define MAX_LISTENERS 16
/* Connections over max_connections that still get a read and a 503 (beyond: closed at once). */
#define MAX_REJECTED_OPEN 256
/* Slots only the Unix socket may use, so that a local health check or shieldctl gets in while
 * TCP clients fill max_connections. */
#define UNIX_RESERVE 8
/* A connection over the limit waits at most this long for its request before the 503. */
#define REJECT_READ_SECONDS 1.0

enum conn_state { READ_HEAD, READ_BODY, READ_CHUNKED, HANDLING, WRITING, LINGER };
enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };

struct http_conn {
    struct http_server *srv;
    struct http_conn *prev, *next;
    struct bufferevent *bev;
    struct event *timer;
    enum conn_state state;
    const char *kind;
    struct http_request req;
    int have_req;        /* req holds a request being read or handled */
    int in_request_line; /* nothing but the request line read yet */
    size_t head_bytes;   /* bytes of request line and headers so far */
    char *head;          /* the header block being built (lines joined with NUL) */
    size_t head_len, head_cap;
    size_t body_expected;  /* Content-Length */
    struct evbuffer *body; /* chunked body being assembled */
    enum chunk_state chunk;
    size_t chunk_left;
    int keep_alive;  /* of the current request */
    int close_after; /* close once the reply is flushed */
    int rejected;    /* over the connection limit */
    int reserve;     /* admitted into the Unix socket's reserve */
    int peer_closed; /* the client shut its side down (EOF): answer what it sent, then close */
};

struct http_server {
    struct event_base *base;
    struct http_server_opts o;
    http_handler_fn handler;
    void *ud;
    struct evconnlistener *listeners[MAX_LISTENERS];
    const char *listener_kind[MAX_LISTENERS];
    size_t n_listeners;
    struct http_conn *conns;
    size_t n_conns; /* accepted within the limit */
    size_t n_reserve; /* of which in the Unix reserve */
    size_t n_rejected_open;
    unsigned long long accepted, rejected, shed;
    int draining;
    struct event *resume_ev; /* re-enables accepting after an accept error */
    void (*on_empty)(void *);
    void *on_empty_arg;
};

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_process(struct http_conn *c);

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

const char *http_error_type(int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 404:
        return "not_found_error";
    case 405:
        return "method_not_allowed_error";
    case 408:
        return "request_timeout_error";
    case 411:
        return "length_required_error";
    case 413:
        return "request_too_large_error";
    case 414:
        return "uri_too_long_error";
    case 417:
        return "expectation_failed_error";
    case 431:
        return "headers_too_large_error";
    case 501:
        return "not_implemented_error";
    case 503:
        return "overloaded_error";
    case 504:
        return "timeout_error";
    case 505:
        return "http_version_error";
    default:
        return status < 500 ? "invalid_request_error" : "server_error";
    }
}

char *http_error_json(const char *type, const char *message)
{
    json_t *root = json_pack("{s:{s:s, s:s}}", "error", "type", type, "message", message);
    char *s;

    if (root == NULL) {
        /* Only a message that is not valid UTF-8 gets here: say so without it. */
        root = json_pack("{s:{s:s, s:s}}", "error", "type", type, "message",
                         "(error message not representable)");
        if (root == NULL)
            return NULL;
    }
    s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

/* ---- Connections -------------------------------------------------------------------------- */

static void arm_timer(struct http_conn *c, double seconds)
{
    struct timeval tv;

    if (seconds <= 0) {
        evtimer_del(c->timer);
        return;
    }
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    evtimer_add(c->timer, &tv);
}

static void req_reset(struct http_conn *c)
{
    free(c->head);
    c->head = NULL;
    c->head_len = c->head_cap = 0;
    free(c->req.body);
    free(c->req.path);
    memset(&c->req, 0, sizeof c->req);
    c->have_req = 0;
    c->head_bytes = 0;
    c->in_request_line = 1;
    c->body_expected = 0;
    if (c->body)
        evbuffer_drain(c->body, evbuffer_get_length(c->body));
    c->chunk = CH_SIZE;
    c->chunk_left = 0;
    c->keep_alive = 0;
}

static void maybe_empty(struct http_server *s)
{
    if (s->draining && s->n_conns == 0 && s->n_rejected_open == 0 && s->on_empty != NULL) {
        void (*fn)(void *) = s->on_empty;

        s->on_empty = NULL;
        fn(s->on_empty_arg);
    }
}

static void conn_free(struct http_conn *c)
{
    struct http_server *s = c->srv;

    if (c->have_req && c->state == HANDLING && c->req.on_abort != NULL) {
        void (*fn)(struct http_request *, void *) = c->req.on_abort;

        c->req.on_abort = NULL;
        fn(&c->req, c->req.abort_arg);
    }
    req_reset(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->rejected)
        s->n_rejected_open--;
    else
        s->n_conns--;
    if (c->reserve)
        s->n_reserve--;
    if (c->timer)
        event_free(c->timer);
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->body)
        evbuffer_free(c->body);
    free(c);
    maybe_empty(s);
}

/* Shut our side down and drop whatever the client still sends, until it closes. */
static void conn_linger(struct http_conn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);

    c->state = LINGER;
    if (fd >= 0)
        shutdown(fd, SHUT_WR);
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
    bufferevent_enable(c->bev, EV_READ);
    evbuffer_drain(bufferevent_get_input(c->bev),
                   evbuffer_get_length(bufferevent_get_input(c->bev)));
    arm_timer(c, LINGER_SECONDS);
}

static void send_response(struct http_conn *c, int status, const char *content_type,
                          const char *extra_headers, const void *body, size_t len, int head_only)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    if (c->srv->draining)
        c->close_after = 1;
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nServer: shieldd\r\nContent-Type: %s\r\n"
                        "Content-Length: %zu\r\n%sConnection: %s\r\n\r\n",
                        status, http_status_text(status), content_type, len,
                        extra_headers ? extra_headers : "",
                        c->close_after ? "close" : "keep-alive");
    if (!head_only && len > 0)
        evbuffer_add(out, body, len);
    c->state = WRITING;
    arm_timer(c, c->srv->o.write_timeout);
    bufferevent_enable(c->bev, EV_WRITE);
}

/* An error found by the server itself: reply and close the connection. */
static void conn_error(struct http_conn *c, int status, const char *extra, const char *message)
{
    char *body = http_error_json(http_error_type(status), message);

    c->close_after = 1;
    if (c->have_req)
        c->req.on_abort = NULL;
    send_response(c, status, "application/json", extra, body ? body : "", body ? strlen(body) : 0,
                  0);
    free(body);
}

/* A connection over max_connections, its request head read (or its time up): 503. */
static void conn_reject(struct http_conn *c)
{
    char msg[160], extra[64];

    snprintf(msg, sizeof msg, "too many connections (max_connections = %zu)",
             c->srv->o.max_connections);
    snprintf(extra, sizeof extra, "Retry-After: %d\r\n", c->srv->o.retry_after);
    conn_error(c, 503, extra, msg);
}

void http_reply(struct http_request *req, int status, const char *content_type,
                const char *extra_headers, const void *body, size_t len)
{
    struct http_conn *c = req->conn;
    int head_only = req->method == HTTP_HEAD;

    if (!c->keep_alive)
        c->close_after = 1;
    send_response(c, status, content_type, extra_headers, body, len, head_only);
    req_reset(c);
}

void http_reply_error(struct http_request *req, int status, const char *extra_headers,
                      const char *message)
{
    char *body = http_error_json(http_error_type(status), message);

    http_reply(req, status, "application/json", extra_headers, body ? body : "",
               body ? strlen(body) : 0);
    free(body);
}

int http_request_fd(const struct http_request *req)
{
    return req->conn != NULL ? (int)bufferevent_getfd(req->conn->bev) : -1;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->header_name[i], name) == 0)
            return req->header_value[i];
    return NULL;
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;

    (void)bev;
    if (c->state != WRITING)
        return;
    if (c->close_after) {
        conn_linger(c);
        return;
    }
    c->state = READ_HEAD;
    req_reset(c);
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_setwatermark(c->bev, EV_READ, 0, c->srv->o.max_header_bytes + 65536);
    if (!c->peer_closed)
        bufferevent_enable(c->bev, EV_READ);
    arm_timer(c, c->srv->o.idle_timeout);
    conn_process(c);
}

/* The client has shut its side down and its input is all parsed: a request cut short gets a
 * 400 (a proxy must not guess where such a body ends), nothing pending just closes. */
static void conn_at_eof(struct http_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    char msg[200];

    if (c->rejected) {
        conn_reject(c);
        return;
    }
    if (c->state == READ_HEAD && c->head_len == 0 && evbuffer_get_length(in) == 0) {
        conn_free(c);
        return;
    }
    if (c->state == READ_BODY)
        snprintf(msg, sizeof msg,
                 "the request body ended after %zu of its %zu bytes (Content-Length): the "
                 "client closed its side",
                 evbuffer_get_length(in), c->body_expected);
    else if (c->state == READ_CHUNKED)
        snprintf(msg, sizeof msg,
                 "the chunked request body ended before its last chunk: the client closed its "
                 "side");
    else
        snprintf(msg, sizeof msg, "the request ended inside its head: the client closed its side");
    conn_error(c, 400, NULL, msg);
}

/* Whether the peer closed both directions. A Unix socket says so (POLLHUP once the other end
 * is closed, not after a mere shutdown(SHUT_WR)); TCP cannot tell the two apart until a write
 * fails, so there it is 0. */
static int peer_gone(struct http_conn *c)
{
    struct pollfd p;

    p.fd = bufferevent_getfd(c->bev);
    p.events = POLLOUT;
    p.revents = 0;
    return p.fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)) != 0;
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct http_conn *c = arg;

    (void)bev;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && c->state != LINGER) {
        /* A half-close: the client sent all it will send, and what it sent in full is still
         * answered (the request being handled or written, and pipelined ones after it). A
         * Unix client that closed completely aborts the request being handled; over TCP a
         * full close looks the same as a half-close until the reply's write fails (EPIPE or
         * a reset), and only a reset while handling aborts the request. */
        c->peer_closed = 1;
        bufferevent_disable(c->bev, EV_READ);
        if (c->state == HANDLING && peer_gone(c)) {
            conn_free(c); /* nobody to answer: abort the request */
            return;
        }
        if (c->state == HANDLING || c->state == WRITING)
            return;
        conn_at_eof(c);
        return;
    }
    conn_free(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *c = arg;
    char msg[160];

    (void)fd;
    (void)what;
    if (c->rejected && c->state == READ_HEAD) {
        conn_reject(c); /* the request did not come in time: answer anyway */
        return;
    }
    switch (c->state) {
    case READ_HEAD:
        if (c->head_bytes == 0 && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0) {
            conn_free(c); /* a silent or idle keep-alive connection */
            return;
        }
        /* fall through */
    case READ_BODY:
    case READ_CHUNKED:
        snprintf(msg, sizeof msg, "the request was not received within read_timeout (%gs)",
                 c->srv->o.read_timeout);
        conn_error(c, 408, NULL, msg);
        return;
    case HANDLING:
        return;
    case WRITING:
    case LINGER:
        conn_free(c);
        return;
    }
}

static int is_tchar(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static const struct {
    const char *name;
    enum http_method m;
} methods[] = {
    {"GET", HTTP_GET},       {"HEAD", HTTP_HEAD},   {"POST", HTTP_POST},       {"PUT", HTTP_PUT},
    {"DELETE", HTTP_DELETE}, {"PATCH", HTTP_PATCH}, {"OPTIONS", HTTP_OPTIONS},
};

/* Append a line (without its EOL) to the header block. Returns 0 or -1 (no memory). */
static int head_append(struct http_conn *c, const char *line, size_t len)
{
    if (c->head_len + len + 1 > c->head_cap) {
        size_t cap = c->head_cap ? c->head_cap * 2 : 1024;
        char *p;

        while (cap < c->head_len + len + 1)
            cap *= 2;
        p = realloc(c->head, cap);
        if (p == NULL)
            return -1;
        c->head = p;
        c->head_cap = cap;
    }
    memcpy(c->head + c->head_len, line, len);
    c->head[c->head_len + len] = '\0';
    c->head_len += len + 1;
    return 0;
}

/* Parse the request line at c->head. Returns 0, or an HTTP status after replying. */
static int parse_request_line(struct http_conn *c)
{
    struct http_request *r = &c->req;
    char *line = c->head;
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    char *ver;

    if (sp1 == NULL || sp2 == NULL || strchr(sp2 + 1, ' ') != NULL || sp1 == line ||
        sp2 == sp1 + 1) {
        conn_error(c, 400, NULL, "malformed request line (expected METHOD TARGET HTTP/1.1)");
        return 400;
    }
    *sp1 = '\0';
    *sp2 = '\0';
    for (char *p = line; *p; p++)
        if (!is_tchar((unsigned char)*p)) {
            conn_error(c, 400, NULL, "malformed request line: bad character in the method");
            return 400;
        }
    r->method = HTTP_OTHER;
    r->method_name = line;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(line, methods[i].name) == 0)
            r->method = methods[i].m;
    r->target = sp1 + 1;
    for (const unsigned char *p = (const unsigned char *)r->target; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f) {
            conn_error(c, 400, NULL,
                       "malformed request target: control, space or non-ASCII "
                       "byte (percent-encode it)");
            return 400;
        }
    ver = sp2 + 1;
    if (strncmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' || ver[5] > '9' || ver[6] != '.' ||
        ver[7] < '0' || ver[7] > '9' || ver[8] != '\0') {
        conn_error(c, 400, NULL, "malformed request line: bad HTTP version");
        return 400;
    }
    if (ver[5] != '1') {
        conn_error(c, 505, NULL, "only HTTP/1.0 and HTTP/1.1 are supported");
        return 505;
    }
    r->version_minor = ver[7] - '0';
    /* The path: origin form, or the path of an absolute form (http://host/path). */
    if (strncasecmp(r->target, "http://", 7) == 0 || strncasecmp(r->target, "https://", 8) == 0) {
        char *slash = strchr(strstr(r->target, "//") + 2, '/');

        r->path = strdup(slash ? slash : "/");
    } else {
        r->path = strdup(r->target);
    }
    if (r->path == NULL) {
        conn_error(c, 500, NULL, "out of memory");
        return 500;
    }
    r->path[strcspn(r->path, "?#")] = '\0';
    return 0;
}

static int parse_header_line(struct http_conn *c, char *line)
{
    struct http_request *r = &c->req;
    char *colon = strchr(line, ':');
    char *v, *end;

    if (line[0] == ' ' || line[0] == '\t') {
        conn_error(c, 400, NULL, "obsolete header line folding is not accepted");
        return 400;
    }
    if (colon == NULL || colon == line) {
        conn_error(c, 400, NULL, "malformed header line (expected Name: value)");
        return 400;
    }
    for (char *p = line; p < colon; p++)
        if (!is_tchar((unsigned char)*p)) {
            conn_error(c, 400, NULL, "malformed header name");
            return 400;
        }
    if (r->n_headers >= HTTP_MAX_HEADERS) {
        conn_error(c, 431, NULL, "more than 64 header fields");
        return 431;
    }
    *colon = '\0';
    v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    end = v + strlen(v);
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
            conn_error(c, 400, NULL, "control character in a header value");
            return 400;
        }
    r->header_name[r->n_headers] = line;
    r->header_value[r->n_headers] = v;
    r->n_headers++;
    return 0;
}

/* Whether the comma-separated header value `v` lists `token` (case-insensitive). */
static int has_token(const char *v, const char *token)
{
    size_t tl = strlen(token);

    while (v != NULL && *v != '\0') {
        size_t n;

        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        n = strcspn(v, ", \t");
        if (n == tl && strncasecmp(v, token, tl) == 0)
            return 1;
        v += n;
    }
    return 0;
}

static int parse_size(const char *s, int hex, size_t *out)
{
    size_t v = 0;
    const char *p = s;

    /* A leading digit is required: " 14" or ";x" must not read as 0, which would take the
     * chunk's data for trailers (a framing another parser would read differently). */
    if (!(*p >= '0' && *p <= '9') && !(hex && strchr("abcdefABCDEF", *p) != NULL && *p != '\0'))
        return -1;
    for (; *p; p++) {
        int d;

        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (hex && *p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else if (hex && *p >= 'A' && *p <= 'F')
            d = *p - 'A' + 10;
        else
            break;
        if (v > (((size_t)-1) - (size_t)d) / (hex ? 16 : 10))
            return -1;
        v = v * (hex ? 16 : 10) + (size_t)d;
    }
    if (!hex && *p != '\0')
        return -1;
    while (hex && (*p == ' ' || *p == '\t'))
        p++;
    if (hex && *p != '\0' && *p != ';')
        return -1;
    *out = v;
    return 0;
}

/* RFC 9112 3.2: an HTTP/1.1 request has exactly one Host; a Content-Encoding other than
 * identity is a body the daemon cannot read (RFC 9110 15.5.16: 415). Returns 0 or a status
 * already answered. */
static int check_host_and_coding(struct http_conn *c)
{
    const struct http_request *r = &c->req;
    const char *ce = http_request_header(r, "Content-Encoding");
    size_t n_host = 0;
    char msg[200];

    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->header_name[i], "Host") == 0)
            n_host++;
    if (n_host > 1) {
        conn_error(c, 400, NULL, "more than one Host header (RFC 9112 3.2)");
        return 400;
    }
    if (n_host == 0 && r->version_minor >= 1) {
        conn_error(c, 400, NULL, "no Host header: HTTP/1.1 requires one (RFC 9112 3.2)");
        return 400;
    }
    if (ce != NULL && strcasecmp(ce, "identity") != 0) {
        snprintf(msg, sizeof msg,
                 "Content-Encoding '%.60s' is not supported: send the body uncompressed", ce);
        conn_error(c, 415, NULL, msg);
        return 415;
    }
    return 0;
}

/* The headers are complete: split them, decide framing. Returns 0 to go on, else a status
 * already answered. */
static int headers_done(struct http_conn *c)
{
    struct http_request *r = &c->req;
    const char *te, *conn_hdr, *expect;
    char *p;
    int n_cl = 0;
    size_t cl = 0;
    char msg[200];
    size_t line_len = strlen(c->head);
    int rc;

    rc = parse_request_line(c);
    if (rc != 0)
        return rc;
    p = c->head + line_len + 1;
    /* The request line was split in place; its pieces end before the headers. */
    while (p < c->head + c->head_len) {
        size_t len = strlen(p);

        rc = parse_header_line(c, p);
        if (rc != 0)
            return rc;
        p += len + 1;
    }
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->header_name[i], "Content-Length") == 0) {
            size_t v;

            if (parse_size(r->header_value[i], 0, &v) < 0) {
                conn_error(c, 400, NULL, "bad Content-Length");
                return 400;
            }
            if (n_cl > 0 && v != cl) {
                conn_error(c, 400, NULL, "conflicting Content-Length headers");
                return 400;
            }
            cl = v;
            n_cl++;
        }
    }
    conn_hdr = http_request_header(r, "Connection");
    if (r->version_minor >= 1)
        c->keep_alive = !has_token(conn_hdr, "close");
    else
        c->keep_alive = has_token(conn_hdr, "keep-alive");
    te = http_request_header(r, "Transfer-Encoding");
    if (te != NULL) {
        if (n_cl > 0) {
            conn_error(c, 400, NULL, "both Transfer-Encoding and Content-Length");
            return 400;
        }
        if (strcasecmp(te, "chunked") != 0) {
            conn_error(c, 501, NULL, "only the chunked Transfer-Encoding is supported");
            return 501;
        }
        if (r->version_minor < 1) {
            conn_error(c, 400, NULL, "Transfer-Encoding in an HTTP/1.0 request");
            return 400;
        }
    }
    if (n_cl > 0 && cl > c->srv->o.max_body_bytes) {
        snprintf(msg, sizeof msg,
                 "request body of %zu bytes is over the limit of %zu bytes (max_body_bytes)", cl,
                 c->srv->o.max_body_bytes);
        conn_error(c, 413, NULL, msg);
        return 413;
    }
    expect = http_request_header(r, "Expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") != 0) {
        conn_error(c, 417, NULL, "only Expect: 100-continue is supported");
        return 417;
    }
    rc = check_host_and_coding(c);
    if (rc != 0)
        return rc;
    if (expect != NULL) {
        if (r->version_minor >= 1 && (te != NULL || cl > 0) &&
            evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
            evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
    }
    if (te != NULL) {
        c->state = READ_CHUNKED;
        c->chunk = CH_SIZE;
    } else {
        c->body_expected = cl;
        c->state = READ_BODY;
    }
    /* Room for the body (and a little more) in the input buffer. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, c->srv->o.max_body_bytes + 65536);
    return 0;
}

static void dispatch(struct http_conn *c)
{
    struct http_server *s = c->srv;

    c->state = HANDLING;
    evtimer_del(c->timer);
    c->req.conn = c;
    c->req.listener = c->kind;
    if (c->req.body == NULL) {
        c->req.body = calloc(1, 1);
        if (c->req.body == NULL) {
            conn_error(c, 500, NULL, "out of memory");
            return;
        }
    }
    /* Reading goes on only to notice a client that leaves; bound what it may pile up. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, s->o.max_header_bytes + s->o.max_body_bytes);
    s->handler(&c->req, s->ud);
}

/* Move `n` bytes of input into a malloc'd NUL-terminated body. */
static int take_body(struct http_conn *c, struct evbuffer *from, size_t n)
{
    char *b = malloc(n + 1);

    if (b == NULL)
        return -1;
    if (n > 0 && evbuffer_remove(from, b, n) != (int)n) {
        free(b);
        return -1;
    }
    b[n] = '\0';
    c->req.body = b;
    c->req.body_len = n;
    return 0;
}

/* Whether line[0..n) is a field line: a token, ':', a value without control characters. */
static int field_line_ok(const char *line, size_t n)
{
    size_t i = 0;

    while (i < n && is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0 || i == n || line[i] != ':')
        return 0;
    for (i++; i < n; i++) {
        unsigned char ch = (unsigned char)line[i];

        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

/* Chunked framing. Returns 1 when the body is complete, 0 for more input, -1 after an error
 * reply. */
static int read_chunked(struct http_conn *c, struct evbuffer *in)
{
    char msg[200];

    for (;;) {
        size_t n;
        char *line;

        switch (c->chunk) {
        case CH_SIZE:
        case CH_DATA_END:
        case CH_TRAILER:
            line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
            if (line == NULL) {
                if (evbuffer_get_length(in) > 4096) {
                    conn_error(c, 400, NULL, "malformed chunked body (line too long)");
                    return -1;
                }
                return 0;
            }
            if (c->chunk == CH_DATA_END) {
                int bad = n != 0;

                free(line);
                if (bad) {
                    conn_error(c, 400, NULL, "malformed chunked body (no CRLF after data)");
                    return -1;
                }
                c->chunk = CH_SIZE;
                continue;
            }
            if (c->chunk == CH_TRAILER) {
                int ok = n == 0 || field_line_ok(line, n);

                free(line);
                if (!ok) {
                    conn_error(c, 400, NULL, "malformed chunked body (bad trailer field)");
                    return -1;
                }
                if (n == 0)
                    return 1;
                continue; /* valid trailer fields are ignored */
            }
            if (memchr(line, '\0', n) != NULL || parse_size(line, 1, &c->chunk_left) < 0) {
                free(line);
                conn_error(c, 400, NULL, "malformed chunked body (bad chunk size)");
                return -1;
            }
            free(line);
            if (c->chunk_left > c->srv->o.max_body_bytes ||
                evbuffer_get_length(c->body) + c->chunk_left > c->srv->o.max_body_bytes) {
                snprintf(msg, sizeof msg,
                         "request body is over the limit of %zu bytes (max_body_bytes)",
                         c->srv->o.max_body_bytes);
                conn_error(c, 413, NULL, msg);
                return -1;
            }
            c->chunk = c->chunk_left == 0 ? CH_TRAILER : CH_DATA;
            continue;
        case CH_DATA:
            n = evbuffer_get_length(in);
            if (n == 0)
                return 0;
            if (n > c->chunk_left)
                n = c->chunk_left;
            evbuffer_remove_buffer(in, c->body, n);
            c->chunk_left -= n;
            if (c->chunk_left == 0)
                c->chunk = CH_DATA_END;
            continue;
        }
    }
}

/*
 * Whether the first bytes received where a request line belongs, up to the end of the method,
 * can be text: no control byte but CR and LF, nothing over 0x7e. Binary data (a TLS ClientHello
 * begins with 0x16) is answered at once instead of waiting read_timeout for a line end.
 */
static int plausible_start(struct evbuffer *in)
{
    size_t n = evbuffer_get_length(in) < 32 ? evbuffer_get_length(in) : 32;
    const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)n);
    int text = 0; /* seen a byte of the line itself (empty lines may come first) */

    for (size_t i = 0; p != NULL && i < n; i++) {
        if ((p[i] == '\n' || p[i] == ' ') && text)
            break; /* the method is text; the rest of the line is checked when complete */
        if ((p[i] < 0x20 && p[i] != '\r' && p[i] != '\n') || p[i] > 0x7e)
            return 0;
        text |= p[i] != '\r' && p[i] != '\n';
    }
    return 1;
}

/* Whether a request line has the shape METHOD SP TARGET SP VERSION (HTTP/0.9's "GET /" has
 * no version); the parts are checked once the head is complete. */
static int request_line_shape(const char *line, size_t n)
{
    const char *end = line + n;
    const char *sp1 = memchr(line, ' ', n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;

    return sp1 != NULL && sp2 != NULL && sp1 != line && sp2 != sp1 + 1 && sp2 + 1 < end &&
           memchr(sp2 + 1, ' ', (size_t)(end - sp2 - 1)) == NULL;
}

/* Read the request line and headers. Returns 0 for more input, 1 when done with the input
 * for now (the head is complete and the state moved on, or an error was answered). */
static int parse_head(struct http_conn *c, struct evbuffer *in)
{
    char msg[200];

    for (;;) {
        size_t n;
        char *line;

        if (evbuffer_get_length(in) == 0)
            return 0;
        if (!c->have_req) {
            /* The first byte of a request starts its read_timeout clock (a connection over the
             * limit keeps its short one). */
            c->have_req = 1;
            c->req.arrived = sched_now();
            if (!c->rejected)
                arm_timer(c, c->srv->o.read_timeout);
        }
        if (c->in_request_line && !plausible_start(in)) {
            conn_error(c, 400, NULL,
                       "not an HTTP/1.x request (binary data where the request line belongs; "
                       "a TLS handshake? this listener speaks plain HTTP)");
            return 1;
        }
        line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (line == NULL) {
            if (c->head_bytes + evbuffer_get_length(in) <= c->srv->o.max_header_bytes)
                return 0;
            n = 0;
        } else {
            c->head_bytes += n + 2;
        }
        if (line == NULL || c->head_bytes > c->srv->o.max_header_bytes) {
            free(line);
            snprintf(msg, sizeof msg, "%s is over the limit of %zu bytes (max_header_bytes)",
                     c->in_request_line ? "request line" : "request header",
                     c->srv->o.max_header_bytes);
            conn_error(c, c->in_request_line ? 414 : 431, NULL, msg);
            return 1;
        }
        if (n == 0) {
            free(line);
            if (c->in_request_line)
                continue; /* empty lines before a request are allowed (RFC 9112 2.2) */
            if (c->rejected) {
                conn_reject(c);
                return 1;
            }
            headers_done(c); /* the state says what comes next */
            return 1;
        }
        if (memchr(line, '\0', n) != NULL) {
            free(line);
            conn_error(c, 400, NULL, "NUL byte in the request head");
            return 1;
        }
        if (c->in_request_line && !request_line_shape(line, n)) {
            free(line);
            conn_error(c, 400, NULL,
                       "malformed request line (expected METHOD TARGET HTTP/1.1; HTTP/0.9 "
                       "requests are not supported)");
            return 1;
        }
        if (head_append(c, line, n) < 0) {
            free(line);
            conn_error(c, 500, NULL, "out of memory");
            return 1;
        }
        free(line);
        c->in_request_line = 0;
    }
}

/* Parse what the input holds. Returns 0 when a request is being read and needs more input, 1
 * otherwise (dispatched, answered with an error, or input waiting for a reply). */
static int conn_parse(struct http_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    for (;;) {
        if (c->state == READ_HEAD) {
            if (parse_head(c, in) == 0)
                return 0;
            if (c->state != READ_BODY && c->state != READ_CHUNKED)
                return 1;
            continue;
        }
        if (c->state == READ_BODY) {
            if (evbuffer_get_length(in) < c->body_expected)
                return 0;
            if (take_body(c, in, c->body_expected) < 0) {
                conn_error(c, 500, NULL, "out of memory");
                return 1;
            }
            dispatch(c);
            return 1;
        }
        if (c->state == READ_CHUNKED) {
            int rc = read_chunked(c, in);

            if (rc <= 0)
                return rc == 0 ? 0 : 1;
            if (take_body(c, c->body, evbuffer_get_length(c->body)) < 0) {
                conn_error(c, 500, NULL, "out of memory");
                return 1;
            }
            dispatch(c);
            return 1;
        }
        return 1; /* HANDLING, WRITING, LINGER: input waits */
    }
}

/* Parse the input; a client that has shut its side and left a request unfinished is answered
 * now (it can send no more). May free `c`. */
static void conn_process(struct http_conn *c)
{
    if (conn_parse(c) == 0 && c->peer_closed)
        conn_at_eof(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;

    if (c->state == LINGER) {
        struct evbuffer *in = bufferevent_get_input(bev);

        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    conn_process(c);
}

/* The connection that has waited longest without sending a byte of a request (silent since
 * it connected, or idle between keep-alive requests), or NULL. */
static struct http_conn *oldest_idle(struct http_server *s)
{
    struct http_conn *found = NULL;

    for (struct http_conn *c = s->conns; c != NULL; c = c->next) /* newest first */
        if (!c->rejected && c->state == READ_HEAD && !c->have_req &&
            evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
            found = c;
    return found;
}

/*
 * Whether a new connection of `kind` gets a slot: one of max_connections, else for the Unix
 * socket one of its UNIX_RESERVE, else one freed by closing the oldest idle connection (so
 * that silent sockets cannot lock talking clients out). *reserve: it takes a reserve slot.
 */
static int admit(struct http_server *s, const char *kind, int *reserve)
{
    *reserve = 0;
    for (;;) {
        struct http_conn *idle;

        if (s->n_conns - s->n_reserve < s->o.max_connections)
            return 1;
        if (strcmp(kind, "unix") == 0 && s->n_reserve < UNIX_RESERVE) {
            *reserve = 1;
            return 1;
        }
        idle = oldest_idle(s);
        if (idle == NULL)
            return 0;
        s->shed++;
        conn_free(idle);
    }
}

/* Take a new connection. Returns 0, or -1 when it could not be set up (fd closed). */
static int conn_new(struct http_server *s, evutil_socket_t fd, const char *kind)
{
    struct http_conn *c;
    int ok, reserve;

    if (s->draining) {
        evutil_closesocket(fd);
        return -1;
    }
    ok = admit(s, kind, &reserve);
    if (!ok && s->n_rejected_open >= MAX_REJECTED_OPEN) {
        /* Flooded: no reply, no state. */
        s->rejected++;
        evutil_closesocket(fd);
        return -1;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        evutil_closesocket(fd);
        return -1;
    }
    c->srv = s;
    c->kind = kind;
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(s->base, conn_timer_cb, c);
    c->body = evbuffer_new();
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    if (!ok) {
        c->rejected = 1;
        s->n_rejected_open++;
        s->rejected++;
    } else {
        c->reserve = reserve;
        s->n_reserve += (size_t)reserve;
        s->n_conns++;
        s->accepted++;
    }
    if (c->bev == NULL || c->timer == NULL || c->body == NULL) {
        if (c->bev == NULL)
            evutil_closesocket(fd);
        conn_free(c);
        return -1;
    }
    evutil_make_socket_nonblocking(fd);
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    req_reset(c);
    c->state = READ_HEAD;
    bufferevent_setwatermark(c->bev, EV_READ, 0, s->o.max_header_bytes + 65536);
    bufferevent_enable(c->bev, EV_READ);
    /* Over the limit: read the request head (a short while) before the 503, so that closing
     * does not reset the connection under unread bytes. Within it: the first request is due
     * within read_timeout, like every request once its first byte came. */
    arm_timer(c, c->rejected ? REJECT_READ_SECONDS : s->o.read_timeout);
    return 0;
}

int http_server_adopt(struct http_server *s, int fd, const char *kind)
{
    return conn_new(s, fd, kind);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    struct http_server *s = arg;
    const char *kind = "tcp";

    (void)sa;
    (void)socklen;
    for (size_t i = 0; i < s->n_listeners; i++)
        if (s->listeners[i] == l)
            kind = s->listener_kind[i];
    conn_new(s, fd, kind);
}

static void resume_accepting(evutil_socket_t fd, short what, void *arg)
{
    struct http_server *s = arg;

    (void)fd;
    (void)what;
    for (size_t i = 0; i < s->n_listeners; i++)
        evconnlistener_enable(s->listeners[i]);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct http_server *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, 100000};

    (void)l;
    errno = err;
    /* Out of descriptors (EMFILE, ENFILE) or memory: the listening socket stays readable, so
     * pause accepting for 100 ms instead of spinning, and say why. */
    log_warn("accept (pausing new connections for 100 ms)");
    for (size_t i = 0; i < s->n_listeners; i++)
        evconnlistener_disable(s->listeners[i]);
    if (s->resume_ev != NULL)
        evtimer_add(s->resume_ev, &tv);
}

struct http_server *http_server_new(struct event_base *base, const struct http_server_opts *o,
                                    http_handler_fn handler, void *ud)
{
    struct http_server *s = calloc(1, sizeof *s);

    if (s == NULL)
        return NULL;
    s->base = base;
    s->o = *o;
    if (s->o.write_timeout <= 0)
        s->o.write_timeout = 30;
    s->handler = handler;
    s->ud = ud;
    s->resume_ev = evtimer_new(base, resume_accepting, s);
    if (s->resume_ev == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

int http_server_listen_fd(struct http_server *s, int fd, const char *kind)
{
    struct evconnlistener *l;

    if (s->n_listeners >= MAX_LISTENERS) {
        errno = EMFILE;
        return -1;
    }
    evutil_make_socket_nonblocking(fd);
    l = evconnlistener_new(s->base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1,
                           fd);
    if (l == NULL)
        return -1;
    evconnlistener_set_error_cb(l, accept_error_cb);
    s->listeners[s->n_listeners] = l;
    s->listener_kind[s->n_listeners] = kind;
    s->n_listeners++;
    return 0;
}

void http_server_drain(struct http_server *s, void (*on_empty)(void *arg), void *arg)
{
    struct http_conn *c, *next;

    s->draining = 1;
    evtimer_del(s->resume_ev);
    s->on_empty = on_empty;
    s->on_empty_arg = arg;
    for (size_t i = 0; i < s->n_listeners; i++)
        evconnlistener_free(s->listeners[i]);
    s->n_listeners = 0;
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == READ_HEAD && !c->have_req)
            conn_free(c);
        else if (c->state != HANDLING && c->state != WRITING && c->state != LINGER)
            c->close_after = 1;
    }
    maybe_empty(s);
}

size_t http_server_connections(const struct http_server *s)
{
    return s->n_conns;
}

unsigned long long http_server_accepted(const struct http_server *s)
{
    return s->accepted;
}

unsigned long long http_server_rejected(const struct http_server *s)
{
    return s->rejected;
}

unsigned long long http_server_shed(const struct http_server *s)
{
    return s->shed;
}

void http_server_free(struct http_server *s)
{
    if (s == NULL)
        return;
    s->on_empty = NULL;
    for (size_t i = 0; i < s->n_listeners; i++)
        evconnlistener_free(s->listeners[i]);
    while (s->conns != NULL)
        conn_free(s->conns);
    if (s->resume_ev)
        event_free(s->resume_ev);
    free(s);
}
