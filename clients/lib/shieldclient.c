/*
 * shieldclient.c: libshieldclient (see shieldclient.h). Blocking sockets driven with poll() so
 * that every wait has a deadline; the response is parsed from one growing buffer.
 */
#include "shieldclient.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/shieldd/shieldd.sock"
#define MAX_HEADER (64 * 1024)

struct sg_client {
    sg_client_opts opts;
    int is_unix;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char host[256];
    char port[16];
    char endpoint[300];
    int fd;             /* -1 when not connected */
    char auth[300];     /* "Authorization: Bearer KEY\r\n" or "" */
    char errmsg[1024];
    char *buf;          /* receive buffer */
    size_t len;
    size_t cap;
};

const char *sg_client_strerror(int err)
{
    switch (err) {
    case SG_CLIENT_OK:
        return "success";
    case SG_CLIENT_ENOMEM:
        return "out of memory";
    case SG_CLIENT_EINVAL:
        return "invalid argument";
    case SG_CLIENT_ECONNECT:
        return "cannot connect";
    case SG_CLIENT_ETIMEDOUT:
        return "timed out";
    case SG_CLIENT_EIO:
        return "I/O error";
    case SG_CLIENT_EPROTO:
        return "malformed HTTP response";
    default:
        return "unknown error";
    }
}

sg_client_opts sg_client_opts_default(void)
{
    sg_client_opts o;

    o.connect_timeout_ms = 5000;
    o.timeout_ms = 60000;
    o.keep_alive = 1;
    o.max_body = 64u << 20;
    o.api_key = NULL;
    return o;
}

const char *sg_client_default_endpoint(void)
{
    static char buf[4096];
    const char *s = getenv("SHIELDD_SOCKET");

    if (s && *s) {
        snprintf(buf, sizeof buf, "unix:%s", s);
        return buf;
    }
    s = getenv("SHIELDD_URL");
    if (s && *s)
        return s;
    return "unix:" DEFAULT_SOCKET;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(sg_client *c, int rc, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->errmsg, sizeof c->errmsg, "%s: %s", c->endpoint, msg);
    return rc;
}

static int parse_endpoint(sg_client *c, const char *ep, char *err, size_t errlen)
{
    const char *p;
    size_t n;

    if (strncmp(ep, "unix:", 5) == 0 || ep[0] == '/' || strncmp(ep, "./", 2) == 0 ||
        strncmp(ep, "../", 3) == 0) {
        p = strncmp(ep, "unix:", 5) == 0 ? ep + 5 : ep;
        if (!*p || strlen(p) >= sizeof c->path) {
            snprintf(err, errlen, "unix socket path '%s' is empty or too long", p);
            return SG_CLIENT_EINVAL;
        }
        c->is_unix = 1;
        strcpy(c->path, p);
        return 0;
    }
    if (strncmp(ep, "http://", 7) != 0) {
        snprintf(err, errlen,
                 "endpoint '%s' is neither unix:PATH nor http://HOST:PORT", ep);
        return SG_CLIENT_EINVAL;
    }
    p = ep + 7;
    if (*p == '[') {
        const char *e = strchr(p, ']');

        if (!e || (size_t)(e - p - 1) >= sizeof c->host) {
            snprintf(err, errlen, "endpoint '%s': bad IPv6 address", ep);
            return SG_CLIENT_EINVAL;
        }
        memcpy(c->host, p + 1, (size_t)(e - p - 1));
        c->host[e - p - 1] = '\0';
        p = e + 1;
    } else {
        n = strcspn(p, ":/");
        if (n == 0 || n >= sizeof c->host) {
            snprintf(err, errlen, "endpoint '%s': missing or too long host", ep);
            return SG_CLIENT_EINVAL;
        }
        memcpy(c->host, p, n);
        c->host[n] = '\0';
        p += n;
    }
    strcpy(c->port, "80");
    if (*p == ':') {
        char *end;
        long v;

        p++;
        errno = 0;
        v = strtol(p, &end, 10);
        if (errno || end == p || v < 1 || v > 65535 || (*end && strcmp(end, "/") != 0)) {
            snprintf(err, errlen, "endpoint '%s': bad port", ep);
            return SG_CLIENT_EINVAL;
        }
        snprintf(c->port, sizeof c->port, "%ld", v);
    } else if (*p && strcmp(p, "/") != 0) {
        snprintf(err, errlen, "endpoint '%s': a path after the host is not supported", ep);
        return SG_CLIENT_EINVAL;
    }
    return 0;
}

/* The Authorization header line of `key` (NULL: $SHIELDD_API_KEY). The key is not kept in
 * opts (the caller's pointer may go). */
static int set_api_key(sg_client *c, const char *key, char *err, size_t errlen)
{
    c->opts.api_key = NULL;
    c->auth[0] = '\0';
    if (key == NULL)
        key = getenv("SHIELDD_API_KEY");
    if (key == NULL || key[0] == '\0')
        return 0;
    if (strpbrk(key, " \t\r\n") != NULL || strlen(key) > 256) {
        snprintf(err, errlen, "bad API key: white space in it, or longer than 256 bytes");
        return SG_CLIENT_EINVAL;
    }
    snprintf(c->auth, sizeof c->auth, "Authorization: Bearer %s\r\n", key);
    return 0;
}

int sg_client_new(sg_client **out, const char *endpoint, const sg_client_opts *opts, char *err,
                  size_t errlen)
{
    sg_client *c;
    int rc;

    *out = NULL;
    if (!endpoint) {
        snprintf(err, errlen, "no endpoint");
        return SG_CLIENT_EINVAL;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return SG_CLIENT_ENOMEM;
    }
    c->opts = opts ? *opts : sg_client_opts_default();
    c->fd = -1;
    rc = set_api_key(c, c->opts.api_key, err, errlen);
    if (rc == 0)
        rc = parse_endpoint(c, endpoint, err, errlen);
    if (rc < 0) {
        free(c);
        return rc;
    }
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    snprintf(c->errmsg, sizeof c->errmsg, "no error");
    *out = c;
    return 0;
}

static void disconnect(sg_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

void sg_client_free(sg_client *c)
{
    if (!c)
        return;
    disconnect(c);
    free(c->buf);
    free(c);
}

const char *sg_client_errmsg(const sg_client *c)
{
    return c ? c->errmsg : "no client";
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for `events` on fd until deadline (ms, 0: none). 0 ready, SG_CLIENT_ETIMEDOUT, EIO. */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        struct pollfd p;
        int t = -1;
        int n;

        if (deadline) {
            long long left = deadline - now_ms();

            if (left <= 0)
                return SG_CLIENT_ETIMEDOUT;
            t = left > INT_MAX ? INT_MAX : (int)left;
        }
        p.fd = fd;
        p.events = events;
        p.revents = 0;
        n = poll(&p, 1, t);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return SG_CLIENT_EIO;
        if (n == 0)
            return SG_CLIENT_ETIMEDOUT;
        return 0;
    }
}

static long long deadline_of(int ms)
{
    return ms > 0 ? now_ms() + ms : 0;
}

/* Non-blocking connect on an already created socket, bounded by the connect timeout. */
static int connect_fd(sg_client *c, int fd, const struct sockaddr *sa, socklen_t salen)
{
    int flags = fcntl(fd, F_GETFL);
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    int rc;

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return fail(c, SG_CLIENT_ECONNECT, "fcntl: %s", strerror(errno));
    if (connect(fd, sa, salen) < 0) {
        if (errno != EINPROGRESS && errno != EAGAIN)
            return fail(c, SG_CLIENT_ECONNECT, "cannot connect: %s", strerror(errno));
        rc = wait_fd(fd, POLLOUT, deadline_of(c->opts.connect_timeout_ms));
        if (rc == SG_CLIENT_ETIMEDOUT)
            return fail(c, rc, "connect timed out after %d ms", c->opts.connect_timeout_ms);
        if (rc < 0)
            return fail(c, SG_CLIENT_ECONNECT, "cannot connect: %s", strerror(errno));
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr)
            return fail(c, SG_CLIENT_ECONNECT, "cannot connect: %s",
                        strerror(soerr ? soerr : errno));
    }
    return 0;
}

static int do_connect(sg_client *c)
{
    int fd;
    int rc;

    if (c->is_unix) {
        struct sockaddr_un sa;

        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        strcpy(sa.sun_path, c->path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return fail(c, SG_CLIENT_ECONNECT, "socket: %s", strerror(errno));
        rc = connect_fd(c, fd, (struct sockaddr *)&sa, sizeof sa);
        if (rc < 0) {
            close(fd);
            return rc;
        }
    } else {
        struct addrinfo hints;
        struct addrinfo *res = NULL;
        struct addrinfo *ai;
        int g;

        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        g = getaddrinfo(c->host, c->port, &hints, &res);
        if (g != 0)
            return fail(c, SG_CLIENT_ECONNECT, "cannot resolve '%s': %s", c->host,
                        gai_strerror(g));
        rc = SG_CLIENT_ECONNECT;
        fd = -1;
        for (ai = res; ai; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd < 0)
                continue;
            rc = connect_fd(c, fd, ai->ai_addr, ai->ai_addrlen);
            if (rc == 0)
                break;
            close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0)
            return rc < 0 && c->errmsg[0] ? rc : fail(c, SG_CLIENT_ECONNECT, "cannot connect");
    }
    c->fd = fd;
    c->len = 0;
    return 0;
}

static int send_all(sg_client *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c->fd, POLLOUT, deadline_of(c->opts.timeout_ms));

            if (rc == SG_CLIENT_ETIMEDOUT)
                return fail(c, rc, "send timed out after %d ms", c->opts.timeout_ms);
            if (rc < 0)
                return fail(c, rc, "poll: %s", strerror(errno));
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return fail(c, SG_CLIENT_EIO, "send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read more bytes into c->buf. Returns bytes read (0 at EOF) or a negative error. */
static long recv_more(sg_client *c)
{
    ssize_t r;

    if (c->cap - c->len < 16384) {
        size_t nc = c->cap ? c->cap * 2 : 65536;
        char *nb = realloc(c->buf, nc + 1);

        if (!nb)
            return fail(c, SG_CLIENT_ENOMEM, "out of memory");
        c->buf = nb;
        c->cap = nc;
    }
    for (;;) {
        int rc = wait_fd(c->fd, POLLIN, deadline_of(c->opts.timeout_ms));

        if (rc == SG_CLIENT_ETIMEDOUT)
            return fail(c, rc, "no response within %d ms", c->opts.timeout_ms);
        if (rc < 0)
            return fail(c, rc, "poll: %s", strerror(errno));
        r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (r < 0)
            return fail(c, SG_CLIENT_EIO, "recv: %s", strerror(errno));
        c->len += (size_t)r;
        return (long)r;
    }
}

/* Find "\r\n" in c->buf from `from`; returns its offset or -1. */
static long find_crlf(const sg_client *c, size_t from)
{
    for (size_t i = from; i + 1 < c->len; i++)
        if (c->buf[i] == '\r' && c->buf[i + 1] == '\n')
            return (long)i;
    return -1;
}

static int append_body(sg_client *c, sg_client_response *r, const char *p, size_t n)
{
    char *nb;

    if (r->body_len + n > c->opts.max_body)
        return fail(c, SG_CLIENT_EPROTO, "response body larger than %zu bytes",
                    c->opts.max_body);
    nb = realloc(r->body, r->body_len + n + 1);
    if (!nb)
        return fail(c, SG_CLIENT_ENOMEM, "out of memory");
    r->body = nb;
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 0;
}

/* Drop the first n bytes of c->buf. */
static void consume(sg_client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Read the chunked body. */
static int read_chunked(sg_client *c, sg_client_response *r)
{
    for (;;) {
        long e;
        char *end;
        unsigned long long size;
        int rc;

        while ((e = find_crlf(c, 0)) < 0) {
            long got = recv_more(c);

            if (got < 0)
                return (int)got;
            if (got == 0)
                return fail(c, SG_CLIENT_EIO, "connection closed inside a chunked body");
            if (c->len > 1024)
                return fail(c, SG_CLIENT_EPROTO, "chunk size line too long");
        }
        errno = 0;
        size = strtoull(c->buf, &end, 16);
        if (end == c->buf || errno || (*end != '\r' && *end != ';') || c->buf[0] == '-' ||
            size > c->opts.max_body)
            return fail(c, SG_CLIENT_EPROTO, "bad chunk size '%.*s'", (int)(e < 40 ? e : 40),
                        c->buf);
        consume(c, (size_t)e + 2);
        if (size == 0) {
            /* Trailers until an empty line. */
            for (;;) {
                while ((e = find_crlf(c, 0)) < 0) {
                    long got = recv_more(c);

                    if (got < 0)
                        return (int)got;
                    if (got == 0)
                        return fail(c, SG_CLIENT_EIO, "connection closed inside trailers");
                }
                consume(c, (size_t)e + 2);
                if (e == 0)
                    return 0;
            }
        }
        while (c->len < size + 2) {
            long got = recv_more(c);

            if (got < 0)
                return (int)got;
            if (got == 0)
                return fail(c, SG_CLIENT_EIO, "connection closed inside a chunk");
        }
        if (c->buf[size] != '\r' || c->buf[size + 1] != '\n')
            return fail(c, SG_CLIENT_EPROTO, "chunk not followed by CRLF");
        rc = append_body(c, r, c->buf, (size_t)size);
        if (rc < 0)
            return rc;
        consume(c, (size_t)size + 2);
    }
}

/* Case-insensitive header match: returns the value (trimmed start) or NULL. */
static const char *header_value(const char *line, size_t len, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    const char *v;

    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    v = line + n + 1;
    while (v < line + len && (*v == ' ' || *v == '\t'))
        v++;
    *vlen = (size_t)(line + len - v);
    while (*vlen && (v[*vlen - 1] == ' ' || v[*vlen - 1] == '\t'))
        (*vlen)--;
    return v;
}

/* Read one response from the connection. *closed: the server will close after it. */
static int read_response(sg_client *c, const char *method, sg_client_response *r, int *closed)
{
    long hend;
    long e;
    size_t pos;
    long long clen = -1;
    int chunked = 0;
    int conn_close = 0;
    int minor = 1;
    int rc;

    for (;;) {
        const char *m = NULL;

        for (size_t i = 0; i + 3 < c->len; i++) {
            if (memcmp(c->buf + i, "\r\n\r\n", 4) == 0) {
                m = c->buf + i;
                break;
            }
        }
        if (m) {
            hend = (long)(m - c->buf);
            break;
        }
        if (c->len > MAX_HEADER)
            return fail(c, SG_CLIENT_EPROTO, "response header larger than %d bytes",
                        MAX_HEADER);
        {
            long got = recv_more(c);

            if (got < 0)
                return (int)got;
            if (got == 0)
                return fail(c, SG_CLIENT_EIO,
                            c->len ? "connection closed inside the response header"
                                   : "connection closed without a response");
        }
    }
    /* Status line: HTTP/1.x NNN reason */
    e = find_crlf(c, 0);
    if (e < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0 || (c->buf[7] != '0' && c->buf[7] != '1') ||
        c->buf[8] != ' ' || c->buf[9] < '1' || c->buf[9] > '5' || c->buf[10] < '0' ||
        c->buf[10] > '9' || c->buf[11] < '0' || c->buf[11] > '9' ||
        (e > 12 && c->buf[12] != ' '))
        return fail(c, SG_CLIENT_EPROTO, "bad status line '%.*s'", (int)(e < 0 || e > 60 ? 60 : e),
                    c->buf);
    minor = c->buf[7] - '0';
    r->status = (c->buf[9] - '0') * 100 + (c->buf[10] - '0') * 10 + (c->buf[11] - '0');
    pos = (size_t)e + 2;
    while ((long)pos < hend + 2) {
        long le = find_crlf(c, pos);
        size_t ll = (size_t)le - pos;
        const char *line = c->buf + pos;
        const char *v;
        size_t vl;

        if (le < 0)
            break;
        if (ll == 0)
            break;
        if (!memchr(line, ':', ll))
            return fail(c, SG_CLIENT_EPROTO, "bad header line '%.*s'", (int)(ll > 60 ? 60 : ll),
                        line);
        if ((v = header_value(line, ll, "Content-Length", &vl)) != NULL) {
            char tmp[32];
            char *end;

            if (vl == 0 || vl >= sizeof tmp)
                return fail(c, SG_CLIENT_EPROTO, "bad Content-Length");
            memcpy(tmp, v, vl);
            tmp[vl] = '\0';
            errno = 0;
            clen = strtoll(tmp, &end, 10);
            if (errno || *end || clen < 0 || tmp[0] == '-' || tmp[0] == '+')
                return fail(c, SG_CLIENT_EPROTO, "bad Content-Length '%s'", tmp);
            if ((unsigned long long)clen > c->opts.max_body)
                return fail(c, SG_CLIENT_EPROTO, "response body larger than %zu bytes",
                            c->opts.max_body);
        } else if ((v = header_value(line, ll, "Transfer-Encoding", &vl)) != NULL) {
            if (vl >= 7 && strncasecmp(v + vl - 7, "chunked", 7) == 0)
                chunked = 1;
            else
                return fail(c, SG_CLIENT_EPROTO, "unsupported Transfer-Encoding '%.*s'", (int)vl,
                            v);
        } else if ((v = header_value(line, ll, "Connection", &vl)) != NULL) {
            if (vl == 5 && strncasecmp(v, "close", 5) == 0)
                conn_close = 1;
        } else if ((v = header_value(line, ll, "Content-Type", &vl)) != NULL) {
            free(r->content_type);
            r->content_type = strndup(v, vl);
        } else if ((v = header_value(line, ll, "Retry-After", &vl)) != NULL) {
            r->retry_after = atoi(v);
        }
        pos = (size_t)le + 2;
    }
    consume(c, (size_t)hend + 4);
    if (!r->body) {
        r->body = calloc(1, 1);
        if (!r->body)
            return fail(c, SG_CLIENT_ENOMEM, "out of memory");
    }
    *closed = conn_close || minor == 0;
    if (strcmp(method, "HEAD") == 0 || r->status == 204 || r->status == 304 ||
        r->status / 100 == 1)
        return 0;
    if (chunked) {
        rc = read_chunked(c, r);
    } else if (clen >= 0) {
        while (c->len < (size_t)clen) {
            long got = recv_more(c);

            if (got < 0)
                return (int)got;
            if (got == 0)
                return fail(c, SG_CLIENT_EIO, "connection closed after %zu of %lld body bytes",
                            c->len, clen);
        }
        rc = append_body(c, r, c->buf, (size_t)clen);
        if (rc == 0)
            consume(c, (size_t)clen);
    } else {
        /* Body until close. */
        for (;;) {
            long got = recv_more(c);

            if (got < 0)
                return (int)got;
            if (got == 0)
                break;
        }
        rc = append_body(c, r, c->buf, c->len);
        c->len = 0;
        *closed = 1;
    }
    return rc;
}

int sg_client_request(sg_client *c, const char *method, const char *path, const char *body,
                      size_t body_len, sg_client_response *resp)
{
    char head[2048];
    int hn;
    int attempt;
    int rc = SG_CLIENT_EIO;

    memset(resp, 0, sizeof *resp);
    resp->retry_after = -1;
    if (!method || !path || path[0] != '/' || strpbrk(path, " \r\n") || strpbrk(method, " \r\n"))
        return fail(c, SG_CLIENT_EINVAL, "bad method or path");
    if (body)
        hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n%s\r\n",
                      method, path, c->is_unix ? "localhost" : c->host, c->auth, body_len,
                      c->opts.keep_alive ? "" : "Connection: close\r\n");
    else
        hn = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n", method,
                      path, c->is_unix ? "localhost" : c->host, c->auth,
                      c->opts.keep_alive ? "" : "Connection: close\r\n");
    if (hn < 0 || (size_t)hn >= sizeof head)
        return fail(c, SG_CLIENT_EINVAL, "request path too long");
    /* A kept-alive connection may have been closed by the server since: if sending or the
     * first read fails on a reused connection before any byte came back, retry once on a new
     * one (the request was not processed). */
    for (attempt = 0; attempt < 2; attempt++) {
        int reused = c->fd >= 0;
        int closed = 0;

        if (!reused) {
            rc = do_connect(c);
            if (rc < 0)
                return rc;
        }
        c->len = 0;
        rc = send_all(c, head, (size_t)hn);
        if (rc == 0 && body && body_len)
            rc = send_all(c, body, body_len);
        if (rc == 0)
            rc = read_response(c, method, resp, &closed);
        if (rc == 0) {
            if (closed || !c->opts.keep_alive)
                disconnect(c);
            return 0;
        }
        disconnect(c);
        if (!reused || rc != SG_CLIENT_EIO || resp->status != 0)
            return rc;
        free(resp->body);
        free(resp->content_type);
        memset(resp, 0, sizeof *resp);
        resp->retry_after = -1;
    }
    return rc;
}

void sg_client_response_free(sg_client_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    free(resp->content_type);
    resp->body = NULL;
    resp->content_type = NULL;
    resp->body_len = 0;
}
