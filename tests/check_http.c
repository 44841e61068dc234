/*
 * check_http.c: daemon/http.c in-process over socketpairs: request parsing (method, path,
 * query, headers, Content-Length and chunked bodies), keep-alive and pipelining in order,
 * every limit and framing error answered with its status and a JSON error, HTTP/1.0, HEAD,
 * Expect: 100-continue, the connection limit, and the abort callback of a client that leaves
 * while its request is being handled.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "http.h"
#include "lib/http_pair.h"

Suite *http_suite(void);

struct ctx {
    int calls;
    int defer; /* keep the request instead of replying */
    struct http_request *held;
    int aborted;
    char last[4096];
};

static void on_abort(struct http_request *req, void *arg)
{
    struct ctx *c = arg;

    (void)req;
    c->aborted++;
    c->held = NULL;
}

/* Echo: "METHOD PATH body=<body> x=<X-Test header>". */
static void handler(struct http_request *req, void *ud)
{
    struct ctx *c = ud;
    const char *x = http_request_header(req, "x-test");

    c->calls++;
    snprintf(c->last, sizeof c->last, "%s %s body=%s x=%s", req->method_name, req->path, req->body,
             x ? x : "-");
    if (c->defer) {
        c->held = req;
        req->on_abort = on_abort;
        req->abort_arg = c;
        return;
    }
    http_reply(req, 200, "text/plain", NULL, c->last, strlen(c->last));
}

static struct event_base *base;
static struct http_server *srv;
static struct ctx ctx;

static double idle_timeout = 0.3;

static void setup(size_t max_conns)
{
    struct http_server_opts o;

    memset(&o, 0, sizeof o);
    o.max_header_bytes = 1024;
    o.max_body_bytes = 100;
    o.read_timeout = 0.3;
    o.idle_timeout = idle_timeout;
    o.write_timeout = 1;
    o.max_connections = max_conns;
    o.retry_after = 2;
    memset(&ctx, 0, sizeof ctx);
    base = event_base_new();
    srv = http_server_new(base, &o, handler, &ctx);
    ck_assert_ptr_nonnull(srv);
}

static void teardown(void)
{
    http_server_free(srv);
    event_base_free(base);
    idle_timeout = 0.3;
    http_pair_kind = "unix";
}

static char *xchg(const char *req, int shut)
{
    return http_pair_exchange(base, srv, req, strlen(req), shut, 600, NULL);
}

static int status_of(const char *resp)
{
    int st = 0;

    ck_assert_msg(sscanf(resp, "HTTP/1.1 %d ", &st) == 1, "not a response: '%.80s'", resp);
    return st;
}

START_TEST(simple_get)
{
    char *r;

    setup(8);
    r = xchg("GET /a/b?q=1 HTTP/1.1\r\nHost: x\r\nX-TEST:  v1  \r\nConnection: close\r\n\r\n", 0);
    ck_assert_int_eq(status_of(r), 200);
    ck_assert_ptr_nonnull(strstr(r, "Connection: close\r\n"));
    ck_assert_ptr_nonnull(strstr(r, "\r\n\r\nGET /a/b body= x=v1"));
    free(r);
    teardown();
}
END_TEST

START_TEST(bodies)
{
    char *r;

    setup(8);
    r = xchg("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
             "hello",
             0);
    ck_assert_ptr_nonnull(strstr(r, "POST /p body=hello"));
    free(r);
    r = xchg("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
             "Connection: close\r\n\r\n"
             "3\r\nabc\r\n2;ext\r\nde\r\n0\r\nTrailer: t\r\n\r\n",
             0);
    ck_assert_ptr_nonnull(strstr(r, "POST /c body=abcde"));
    free(r);
    /* Expect: 100-continue gets the interim response first. */
    r = xchg("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
             "Connection: close\r\n\r\n",
             1);
    ck_assert_msg(strncmp(r, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0, "%s", r);
    free(r);
    teardown();
}
END_TEST

START_TEST(pipelining_and_keepalive)
{
    char *r, *p;

    setup(8);
    r = xchg("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\n"
             "Content-Length: 1\r\n\r\nzHEAD /3 HTTP/1.1\r\nHost: x\r\n\r\nGET /4 HTTP/1.0\r\n\r\n",
             0);
    p = strstr(r, "GET /1 body=");
    ck_assert_ptr_nonnull(p);
    p = strstr(p, "POST /2 body=z");
    ck_assert_ptr_nonnull(p);
    /* HEAD: headers only; then HTTP/1.0 without keep-alive closes. */
    ck_assert_ptr_null(strstr(r, "HEAD /3 body"));
    p = strstr(p, "GET /4 body=");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(ctx.calls, 4);
    ck_assert_ptr_nonnull(strstr(r, "Connection: keep-alive"));
    ck_assert_ptr_nonnull(strstr(r, "Connection: close"));
    free(r);
    teardown();
}
END_TEST

START_TEST(errors)
{
    static const struct {
        const char *req;
        int status;
        const char *word;
    } cases[] = {
        {"GARBAGE\r\n\r\n", 400, "request line"},
        {"GET / HTTP/1.1 extra\r\n\r\n", 400, "request line"},
        {"G(T / HTTP/1.1\r\n\r\n", 400, "method"},
        {"GET /\x01 HTTP/1.1\r\n\r\n", 400, "target"},
        {"GET / HTTP/2.0\r\n\r\n", 505, "HTTP/1"},
        {"GET / HTTQ/1.1\r\n\r\n", 400, "version"},
        {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, "header"},
        {"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", 400, "header name"},
        {"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400, "folding"},
        {"GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", 400, "control"},
        {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"},
        {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400,
         "Content-Length"},
        {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "conflicting"},
        {"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413, "100 bytes"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", 400, "both"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "chunked"},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         "\r\nxyz\r\n", 400, "chunk size"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         "\r\n65\r\n", 413, "max_body_bytes"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         "\r\n1\r\nab\r\n", 400, "CRLF"},
        {"POST / HTTP/1.1\r\nExpect: teapot\r\n\r\n", 417, "100-continue"},
        {"GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", 400, "NUL"},
    };

    setup(8);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].req);
        char *r;

        if (i == sizeof cases / sizeof cases[0] - 1)
            len += 6; /* the NUL case: send past the embedded NUL */
        r = http_pair_exchange(base, srv, cases[i].req, len, 0, 600, NULL);
        ck_assert_msg(status_of(r) == cases[i].status, "case %zu: %.120s", i, r);
        ck_assert_msg(strstr(r, "Content-Type: application/json\r\n") != NULL, "case %zu", i);
        ck_assert_msg(strstr(r, "{\"error\":{\"type\":\"") != NULL, "case %zu", i);
        ck_assert_msg(strstr(r, cases[i].word) != NULL, "case %zu: %s", i, r);
        ck_assert_msg(strstr(r, "Connection: close\r\n") != NULL, "case %zu", i);
        free(r);
    }
    ck_assert_int_eq(ctx.calls, 0);
    teardown();
}
END_TEST

START_TEST(size_limits)
{
    char big[2048];
    char *r;

    setup(8);
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    memcpy(big + sizeof big - 16, " HTTP/1.1\r\n\r\n\0", 15);
    r = http_pair_exchange(base, srv, big, strlen(big), 0, 600, NULL);
    ck_assert_int_eq(status_of(r), 414);
    free(r);
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX: %01200d\r\n\r\n", 0);
    r = xchg(big, 0);
    ck_assert_int_eq(status_of(r), 431);
    ck_assert_ptr_nonnull(strstr(r, "max_header_bytes"));
    free(r);
    /* Many small headers add up too. */
    big[0] = '\0';
    strcat(big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 70; i++)
        strcat(big, "A: b\r\n");
    strcat(big, "\r\n");
    r = xchg(big, 0);
    ck_assert_int_eq(status_of(r), 431);
    free(r);
    teardown();
}
END_TEST

START_TEST(read_timeout)
{
    char *r;

    setup(8);
    /* A partial request: 408 after read_timeout (0.3 s), and the connection closes. */
    r = http_pair_exchange(base, srv, "GET / HTTP/1.1\r\nHost", 20, 0, 2000, NULL);
    ck_assert_int_eq(status_of(r), 408);
    ck_assert_ptr_nonnull(strstr(r, "read_timeout"));
    free(r);
    /* An idle connection closes without a word. */
    r = http_pair_exchange(base, srv, "", 0, 0, 2000, NULL);
    ck_assert_str_eq(r, "");
    free(r);
    ck_assert_uint_eq(http_server_connections(srv), 0);
    teardown();
}
END_TEST

/* Answer the held request (a timer: the handler is slow). */
static void reply_held(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (ctx.held != NULL)
        http_reply(ctx.held, 200, "text/plain", NULL, "late", 4);
    ctx.held = NULL;
}

START_TEST(half_close_answered)
{
    struct timeval tv = {0, 100000};
    char *r;

    setup(8);
    ctx.defer = 1;
    event_base_once(base, -1, EV_TIMEOUT, reply_held, NULL, &tv);
    /* A complete request, then shutdown(SHUT_WR): it is answered when the handler is done,
     * and so is a pipelined one after it. */
    r = xchg("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab", 1);
    ck_assert_int_eq(status_of(r), 200);
    ck_assert_ptr_nonnull(strstr(r, "\r\n\r\nlate"));
    ck_assert_int_eq(ctx.aborted, 0);
    free(r);
    ctx.defer = 0;
    r = xchg("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    ck_assert_ptr_nonnull(strstr(r, "GET /1 body="));
    ck_assert_ptr_nonnull(strstr(r, "GET /2 body="));
    free(r);
    /* A body cut short by the half-close: 400, not silence (nor a guess at the framing). */
    r = xchg("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", 1);
    ck_assert_int_eq(status_of(r), 400);
    ck_assert_ptr_nonnull(strstr(r, "3 of its 10 bytes"));
    free(r);
    r = xchg("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 1);
    ck_assert_int_eq(status_of(r), 400);
    ck_assert_ptr_nonnull(strstr(r, "last chunk"));
    free(r);
    r = xchg("GET / HTTP/1.1\r\nHost", 1);
    ck_assert_int_eq(status_of(r), 400);
    ck_assert_ptr_nonnull(strstr(r, "inside its head"));
    free(r);
    ck_assert_int_eq(ctx.calls, 3);
    ck_assert_uint_eq(http_server_connections(srv), 0);
    teardown();
}
END_TEST

START_TEST(abort_while_handling)
{
    static const char req[] = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
    char *r;

    setup(8);
    ctx.defer = 1;
    /* The client closes completely while its request is handled (a Unix socket tells). */
    r = http_pair_exchange(base, srv, req, sizeof req - 1, 0, 100, NULL);
    free(r);
    ck_assert_int_eq(ctx.calls, 1);
    ck_assert_int_eq(ctx.aborted, 1);
    ck_assert_ptr_null(ctx.held);
    ck_assert_uint_eq(http_server_connections(srv), 0);
    teardown();
}
END_TEST

START_TEST(connection_limit)
{
    char *r;

    setup(0); /* every TCP connection is over the limit */
    http_pair_kind = "tcp";
    r = xchg("GET / HTTP/1.1\r\n\r\n", 0);
    ck_assert_int_eq(status_of(r), 503);
    ck_assert_ptr_nonnull(strstr(r, "Retry-After: 2\r\n"));
    ck_assert_ptr_nonnull(strstr(r, "max_connections"));
    ck_assert_uint_eq(http_server_rejected(srv), 1);
    ck_assert_int_eq(ctx.calls, 0);
    free(r);
    teardown();
}
END_TEST

START_TEST(smuggling)
{
    static const struct {
        const char *req;
        const char *word;
    } cases[] = {
        /* chunk sizes without a leading hex digit once read as 0: the data became trailers */
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         "\r\n 14\r\n", "chunk size"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         "\r\n;x\r\n", "chunk size"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         "\r\n3 x\r\n", "chunk size"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         "\r\n0\r\nbad trailer\r\n\r\n",
         "trailer"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         "\r\n0\r\nA: \x01\r\n\r\n",
         "trailer"},
    };
    char nul[200];
    int len;
    char *r;

    setup(8);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[400];

        /* With a request behind it on the same connection, which must not be served. */
        snprintf(req, sizeof req, "%sGET /next HTTP/1.1\r\nHost: x\r\n\r\n", cases[i].req);
        r = xchg(req, 0);
        ck_assert_msg(status_of(r) == 400, "case %zu: %.200s", i, r);
        ck_assert_msg(strstr(r, cases[i].word) != NULL, "case %zu: %s", i, r);
        ck_assert_msg(strstr(r, "Connection: close\r\n") != NULL, "case %zu", i);
        ck_assert_msg(strstr(r, "HTTP/1.1 200") == NULL, "case %zu: %s", i, r);
        free(r);
    }
    len = snprintf(nul, sizeof nul,
                   "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b");
    memcpy(nul + len, "\0c\r\n\r\n", 7);
    r = http_pair_exchange(base, srv, nul, (size_t)len + 7, 0, 600, NULL);
    ck_assert_int_eq(status_of(r), 400);
    ck_assert_ptr_nonnull(strstr(r, "trailer"));
    free(r);
    /* Valid framing still works: BWS before an extension, a real trailer field. */
    r = xchg("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "2 ;e=1\r\nab\r\n0\r\nX-T: 1\r\n\r\n",
             1);
    ck_assert_ptr_nonnull(strstr(r, "POST /c body=ab"));
    free(r);
    ck_assert_int_eq(ctx.calls, 1);
    teardown();
}
END_TEST

START_TEST(host_and_coding)
{
    char *r;

    setup(8);
    r = xchg("GET / HTTP/1.1\r\n\r\n", 0);
    ck_assert_int_eq(status_of(r), 400);
    ck_assert_ptr_nonnull(strstr(r, "no Host header"));
    free(r);
    r = xchg("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0);
    ck_assert_int_eq(status_of(r), 400);
    ck_assert_ptr_nonnull(strstr(r, "more than one Host"));
    free(r);
    r = xchg("GET /ten HTTP/1.0\r\n\r\n", 0); /* HTTP/1.0 needs none */
    ck_assert_int_eq(status_of(r), 200);
    free(r);
    r = xchg("POST / HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nab",
             0);
    ck_assert_int_eq(status_of(r), 415);
    ck_assert_ptr_nonnull(strstr(r, "'gzip' is not supported"));
    free(r);
    r = xchg("POST /i HTTP/1.1\r\nHost: x\r\nContent-Encoding: identity\r\nContent-Length: 2\r\n"
             "Connection: close\r\n\r\nab",
             0);
    ck_assert_ptr_nonnull(strstr(r, "POST /i body=ab"));
    free(r);
    ck_assert_int_eq(ctx.calls, 2);
    teardown();
}
END_TEST

START_TEST(not_http)
{
    static const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    char *r;

    setup(8);
    /* Answered at once, not after read_timeout with a 408. */
    r = http_pair_exchange(base, srv, hello, sizeof hello - 1, 0, 600, NULL);
    ck_assert_int_eq(status_of(r), 400);
    ck_assert_ptr_nonnull(strstr(r, "TLS"));
    free(r);
    r = xchg("GET /\r\n", 0); /* HTTP/0.9 */
    ck_assert_int_eq(status_of(r), 400);
    ck_assert_ptr_nonnull(strstr(r, "HTTP/0.9"));
    free(r);
    ck_assert_int_eq(ctx.calls, 0);
    teardown();
}
END_TEST

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

START_TEST(silent_connections)
{
    struct timespec t0;
    int sv[2];
    char buf[64];
    char *r;

    idle_timeout = 20; /* a silent new connection is bound by read_timeout (0.3 s) instead */
    setup(1);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = http_pair_exchange(base, srv, "", 0, 0, 5000, NULL);
    ck_assert_str_eq(r, "");
    free(r);
    ck_assert_double_lt(seconds_since(&t0), 3.0);
    /* At the limit, a silent connection makes room for one that talks. */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(http_server_adopt(srv, sv[1], "tcp"), 0);
    event_base_loop(base, EVLOOP_NONBLOCK);
    http_pair_kind = "tcp";
    r = xchg("GET /talk HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0);
    ck_assert_int_eq(status_of(r), 200);
    free(r);
    ck_assert_uint_eq(http_server_shed(srv), 1);
    ck_assert_int_eq((int)read(sv[0], buf, sizeof buf), 0); /* closed without a word */
    close(sv[0]);
    teardown();
}
END_TEST

START_TEST(reject_after_reading)
{
    static const char busy[] = "GET /busy HTTP/1.1\r\nHost: x\r\n\r\n";
    int sv[2];
    char *r;

    setup(1);
    ctx.defer = 1; /* the one slot stays busy */
    http_pair_kind = "tcp";
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(http_server_adopt(srv, sv[1], "tcp"), 0);
    ck_assert_int_eq((int)write(sv[0], busy, sizeof busy - 1), (int)sizeof busy - 1);
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_ptr_nonnull(ctx.held);
    /* Over the limit: the request and its body are read, then the 503 comes. */
    r = xchg("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 0);
    ck_assert_int_eq(status_of(r), 503);
    ck_assert_ptr_nonnull(strstr(r, "max_connections"));
    free(r);
    /* One that sends nothing still gets its 503, after a short wait. */
    r = http_pair_exchange(base, srv, "", 0, 0, 3000, NULL);
    ck_assert_int_eq(status_of(r), 503);
    free(r);
    /* The Unix socket has its reserve. */
    http_pair_kind = "unix";
    ctx.defer = 0;
    r = xchg("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0);
    ck_assert_int_eq(status_of(r), 200);
    free(r);
    http_reply(ctx.held, 200, "text/plain", NULL, "ok", 2);
    ctx.held = NULL;
    close(sv[0]);
    ck_assert_uint_eq(http_server_rejected(srv), 2);
    teardown();
}
END_TEST

Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("http");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, simple_get);
    tcase_add_test(tc, bodies);
    tcase_add_test(tc, pipelining_and_keepalive);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, size_limits);
    tcase_add_test(tc, read_timeout);
    tcase_add_test(tc, half_close_answered);
    tcase_add_test(tc, abort_while_handling);
    tcase_add_test(tc, smuggling);
    tcase_add_test(tc, host_and_coding);
    tcase_add_test(tc, not_http);
    tcase_add_test(tc, silent_connections);
    tcase_add_test(tc, reject_after_reading);
    tcase_add_test(tc, connection_limit);
    suite_add_tcase(s, tc);
    return s;
}
