/*
 * check_client.c: libshieldclient against a tiny scripted HTTP server in a forked process, on
 * a Unix socket and on TCP: Content-Length, chunked and close-delimited bodies, keep-alive and
 * a server that drops a kept-alive connection, read timeouts, malformed responses, bad
 * endpoints, connection refused.
 */
#define _GNU_SOURCE /* memmem, strcasestr in the test server */
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shieldclient.h"

Suite *client_suite(void);

static pid_t server_pid = -1;
static char sock_dir[] = "/tmp/check_client_XXXXXX";
static char sock_path[200];
static char unix_ep[220];
static char tcp_ep[64];

static void send_str(int fd, const char *s)
{
    size_t n = strlen(s);

    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Serve one connection: requests until the peer closes or a handler closes. */
static void serve_conn(int fd)
{
    char buf[65536];
    size_t len = 0;

    for (;;) {
        char *end;
        char path[256];
        char *body;
        size_t clen = 0;
        size_t hlen;
        char *cl;
        ssize_t r;

        while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
            r = recv(fd, buf + len, sizeof buf - len - 1, 0);
            if (r <= 0)
                return;
            len += (size_t)r;
            buf[len] = '\0';
        }
        hlen = (size_t)(end - buf) + 4;
        cl = strcasestr(buf, "Content-Length:");
        if (cl && cl < end)
            clen = strtoul(cl + 15, NULL, 10);
        while (len < hlen + clen) {
            r = recv(fd, buf + len, sizeof buf - len - 1, 0);
            if (r <= 0)
                return;
            len += (size_t)r;
        }
        body = buf + hlen;
        if (sscanf(buf, "%*s %255s", path) != 1)
            return;
        if (!strcmp(path, "/cl")) {
            send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
                         "hello");
        } else if (!strcmp(path, "/cl-drop")) {
            /* Answers, then closes without saying so: the client must reconnect next time. */
            send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndrop");
            return;
        } else if (!strcmp(path, "/chunked")) {
            send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n"
                         "X-Trailer: 1\r\n\r\n");
        } else if (!strcmp(path, "/close")) {
            send_str(fd, "HTTP/1.0 200 OK\r\n\r\nuntil close");
            return;
        } else if (!strcmp(path, "/echo")) {
            char head[200];

            snprintf(head, sizeof head,
                     "HTTP/1.1 201 Created\r\nRetry-After: 3\r\nContent-Length: %zu\r\n\r\n", clen);
            send_str(fd, head);
            send(fd, body, clen, MSG_NOSIGNAL);
        } else if (!strcmp(path, "/err")) {
            send_str(fd, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                         "Content-Length: 57\r\n\r\n"
                         "{\"error\":{\"type\":\"invalid_request\",\"message\":\"bad text\"}}");
        } else if (!strcmp(path, "/slow")) {
            sleep(3);
            return;
        } else if (!strcmp(path, "/badstatus")) {
            send_str(fd, "HTZP/1.1 200 OK\r\n\r\n");
            return;
        } else if (!strcmp(path, "/badchunk")) {
            send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n");
            return;
        } else if (!strcmp(path, "/badlen")) {
            send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n");
            return;
        } else if (!strcmp(path, "/short")) {
            send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly five");
            return;
        } else if (!strcmp(path, "/nothing")) {
            return;
        } else if (!strcmp(path, "/hugeheader")) {
            send_str(fd, "HTTP/1.1 200 OK\r\nX-Big: ");
            for (int i = 0; i < 70; i++) {
                char chunk[1025];

                memset(chunk, 'a', 1024);
                chunk[1024] = '\0';
                send_str(fd, chunk);
            }
            return;
        } else {
            send_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
        memmove(buf, buf + hlen + clen, len - hlen - clen);
        len -= hlen + clen;
    }
}

static void server_loop(int ufd, int tfd)
{
    for (;;) {
        fd_set rs;
        int fd;

        FD_ZERO(&rs);
        FD_SET(ufd, &rs);
        FD_SET(tfd, &rs);
        if (select((ufd > tfd ? ufd : tfd) + 1, &rs, NULL, NULL, NULL) < 0)
            _exit(1);
        fd = accept(FD_ISSET(ufd, &rs) ? ufd : tfd, NULL, NULL);
        if (fd < 0)
            continue;
        /* One child per connection, so a slow handler does not block the others. */
        if (fork() == 0) {
            serve_conn(fd);
            close(fd);
            _exit(0);
        }
        close(fd);
    }
}

static void start_server(void)
{
    struct sockaddr_un su;
    struct sockaddr_in si;
    socklen_t sl = sizeof si;
    int ufd;
    int tfd;

    ck_assert_ptr_nonnull(mkdtemp(sock_dir));
    snprintf(sock_path, sizeof sock_path, "%s/s.sock", sock_dir);
    snprintf(unix_ep, sizeof unix_ep, "unix:%s", sock_path);
    ufd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&su, 0, sizeof su);
    su.sun_family = AF_UNIX;
    strcpy(su.sun_path, sock_path);
    ck_assert_int_eq(bind(ufd, (struct sockaddr *)&su, sizeof su), 0);
    ck_assert_int_eq(listen(ufd, 16), 0);
    tfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&si, 0, sizeof si);
    si.sin_family = AF_INET;
    si.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(tfd, (struct sockaddr *)&si, sizeof si), 0);
    ck_assert_int_eq(listen(tfd, 16), 0);
    ck_assert_int_eq(getsockname(tfd, (struct sockaddr *)&si, &sl), 0);
    snprintf(tcp_ep, sizeof tcp_ep, "http://127.0.0.1:%d", ntohs(si.sin_port));
    server_pid = fork();
    ck_assert_int_ge(server_pid, 0);
    if (server_pid == 0) {
        /* Reap connection children, in the server only: ignoring SIGCHLD in the test process
         * would outlive this test under CK_FORK=no (make valgrind) and make system() fail. */
        signal(SIGCHLD, SIG_IGN);
        server_loop(ufd, tfd);
        _exit(0);
    }
    close(ufd);
    close(tfd);
}

static void stop_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    server_pid = -1;
    unlink(sock_path);
    rmdir(sock_dir);
    strcpy(sock_dir, "/tmp/check_client_XXXXXX");
}

static sg_client *client(const char *ep, int timeout_ms)
{
    sg_client_opts o = sg_client_opts_default();
    sg_client *c = NULL;
    char err[256];

    o.timeout_ms = timeout_ms;
    ck_assert_int_eq(sg_client_new(&c, ep, &o, err, sizeof err), 0);
    return c;
}

static void check_bodies(const char *ep)
{
    sg_client *c = client(ep, 5000);
    sg_client_response r;

    /* Several requests on one kept-alive connection. */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(sg_client_request(c, "GET", "/cl", NULL, 0, &r), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(r.body_len, 5);
        ck_assert_str_eq(r.body, "hello");
        ck_assert_str_eq(r.content_type, "text/plain");
        ck_assert_int_eq(r.retry_after, -1);
        sg_client_response_free(&r);
    }
    ck_assert_int_eq(sg_client_request(c, "GET", "/chunked", NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "Wikipedia in\r\n\r\nchunks.");
    sg_client_response_free(&r);
    ck_assert_int_eq(sg_client_request(c, "GET", "/close", NULL, 0, &r), 0);
    ck_assert_str_eq(r.body, "until close");
    sg_client_response_free(&r);
    ck_assert_int_eq(sg_client_request(c, "POST", "/echo", "{\"a\":1}", 7, &r), 0);
    ck_assert_int_eq(r.status, 201);
    ck_assert_int_eq(r.retry_after, 3);
    ck_assert_str_eq(r.body, "{\"a\":1}");
    sg_client_response_free(&r);
    ck_assert_int_eq(sg_client_request(c, "GET", "/err", NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "bad text"));
    sg_client_response_free(&r);
    /* The server drops the connection after answering: the next request reconnects. */
    ck_assert_int_eq(sg_client_request(c, "GET", "/cl-drop", NULL, 0, &r), 0);
    ck_assert_str_eq(r.body, "drop");
    sg_client_response_free(&r);
    usleep(50000);
    ck_assert_int_eq(sg_client_request(c, "GET", "/cl", NULL, 0, &r), 0);
    ck_assert_str_eq(r.body, "hello");
    sg_client_response_free(&r);
    sg_client_free(c);
}

START_TEST(bodies_unix)
{
    check_bodies(unix_ep);
}
END_TEST

START_TEST(bodies_tcp)
{
    check_bodies(tcp_ep);
}
END_TEST

START_TEST(bodies_no_keepalive)
{
    sg_client_opts o = sg_client_opts_default();
    sg_client *c = NULL;
    sg_client_response r;
    char err[256];

    o.keep_alive = 0;
    ck_assert_int_eq(sg_client_new(&c, sock_path, &o, err, sizeof err), 0); /* bare path */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(sg_client_request(c, "GET", "/cl", NULL, 0, &r), 0);
        ck_assert_str_eq(r.body, "hello");
        sg_client_response_free(&r);
    }
    sg_client_free(c);
}
END_TEST

static void expect_fail(const char *path, int timeout_ms, int want, const char *msg)
{
    sg_client *c = client(tcp_ep, timeout_ms);
    sg_client_response r;

    ck_assert_int_eq(sg_client_request(c, "GET", path, NULL, 0, &r), want);
    ck_assert_msg(strstr(sg_client_errmsg(c), msg) != NULL, "%s: '%s' lacks '%s'", path,
                  sg_client_errmsg(c), msg);
    ck_assert_msg(strstr(sg_client_errmsg(c), tcp_ep) != NULL, "message names the endpoint");
    sg_client_response_free(&r);
    /* The handle stays usable. */
    ck_assert_int_eq(sg_client_request(c, "GET", "/cl", NULL, 0, &r), 0);
    ck_assert_str_eq(r.body, "hello");
    sg_client_response_free(&r);
    sg_client_free(c);
}

START_TEST(malformed_and_timeouts)
{
    expect_fail("/slow", 200, SG_CLIENT_ETIMEDOUT, "no response within 200 ms");
    expect_fail("/badstatus", 2000, SG_CLIENT_EPROTO, "bad status line");
    expect_fail("/badchunk", 2000, SG_CLIENT_EPROTO, "bad chunk size");
    expect_fail("/badlen", 2000, SG_CLIENT_EPROTO, "bad Content-Length");
    expect_fail("/short", 2000, SG_CLIENT_EIO, "connection closed after");
    expect_fail("/nothing", 2000, SG_CLIENT_EIO, "connection closed without a response");
    expect_fail("/hugeheader", 2000, SG_CLIENT_EPROTO, "response header larger than");
}
END_TEST

START_TEST(max_body)
{
    sg_client_opts o = sg_client_opts_default();
    sg_client *c = NULL;
    sg_client_response r;
    char err[256];

    o.max_body = 3;
    ck_assert_int_eq(sg_client_new(&c, tcp_ep, &o, err, sizeof err), 0);
    ck_assert_int_eq(sg_client_request(c, "GET", "/cl", NULL, 0, &r), SG_CLIENT_EPROTO);
    ck_assert_ptr_nonnull(strstr(sg_client_errmsg(c), "larger than 3 bytes"));
    sg_client_response_free(&r);
    ck_assert_int_eq(sg_client_request(c, "GET", "/chunked", NULL, 0, &r), SG_CLIENT_EPROTO);
    sg_client_response_free(&r);
    sg_client_free(c);
}
END_TEST

START_TEST(endpoints_and_refused)
{
    sg_client *c = NULL;
    sg_client_response r;
    char err[256];

    ck_assert_int_eq(sg_client_new(&c, "ftp://x", NULL, err, sizeof err), SG_CLIENT_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "neither unix:PATH nor http://HOST:PORT"));
    ck_assert_int_eq(sg_client_new(&c, "http://h:99999", NULL, err, sizeof err),
                     SG_CLIENT_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "bad port"));
    ck_assert_int_eq(sg_client_new(&c, "http://h:80/v1", NULL, err, sizeof err),
                     SG_CLIENT_EINVAL);
    ck_assert_int_eq(sg_client_new(&c, "http://:80", NULL, err, sizeof err), SG_CLIENT_EINVAL);
    ck_assert_int_eq(sg_client_new(&c, "unix:", NULL, err, sizeof err), SG_CLIENT_EINVAL);
    ck_assert_int_eq(sg_client_new(&c, "http://[::1]:8088/", NULL, err, sizeof err), 0);
    sg_client_free(c);
    ck_assert_int_eq(sg_client_new(&c, "unix:/nonexistent/s.sock", NULL, err, sizeof err), 0);
    ck_assert_int_eq(sg_client_request(c, "GET", "/x", NULL, 0, &r), SG_CLIENT_ECONNECT);
    ck_assert_ptr_nonnull(strstr(sg_client_errmsg(c), "unix:/nonexistent/s.sock: cannot connect"));
    sg_client_response_free(&r);
    ck_assert_int_eq(sg_client_request(c, "GET", "no-slash", NULL, 0, &r), SG_CLIENT_EINVAL);
    sg_client_response_free(&r);
    sg_client_free(c);
    ck_assert_str_eq(sg_client_strerror(SG_CLIENT_ETIMEDOUT), "timed out");
    ck_assert_str_eq(sg_client_strerror(12345), "unknown error");
}
END_TEST

START_TEST(default_endpoint)
{
    unsetenv("SHIELDD_SOCKET");
    unsetenv("SHIELDD_URL");
    ck_assert_str_eq(sg_client_default_endpoint(), "unix:/run/shieldd/shieldd.sock");
    setenv("SHIELDD_URL", "http://127.0.0.1:1234", 1);
    ck_assert_str_eq(sg_client_default_endpoint(), "http://127.0.0.1:1234");
    setenv("SHIELDD_SOCKET", "/tmp/x.sock", 1);
    ck_assert_str_eq(sg_client_default_endpoint(), "unix:/tmp/x.sock");
}
END_TEST

Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("http");

    tcase_add_checked_fixture(tc, start_server, stop_server);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, bodies_unix);
    tcase_add_test(tc, bodies_tcp);
    tcase_add_test(tc, bodies_no_keepalive);
    tcase_add_test(tc, malformed_and_timeouts);
    tcase_add_test(tc, max_body);
    tcase_add_test(tc, endpoints_and_refused);
    tcase_add_test(tc, default_endpoint);
    suite_add_tcase(s, tc);
    return s;
}
