/*
 * check_listen.c: listening sockets: TCP binds loopback unless told otherwise; a Unix socket
 * gets its mode, replaces a stale socket file, refuses a live one and a file that is not a
 * socket; bad specs, hosts and groups are errors naming the spec.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen.h"

Suite *listen_suite(void);

static char dir[64];

static void mkdir_tmp(void)
{
    snprintf(dir, sizeof dir, "/tmp/check_listen_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void bound_addr(int fd, char *buf, size_t cap)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;

    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    ck_assert_int_eq(sa.sin_family, AF_INET);
    inet_ntop(AF_INET, &sa.sin_addr, buf, (socklen_t)cap);
}

START_TEST(tcp_loopback_default)
{
    static const char *const specs[] = {"tcp:0", "tcp::0", "tcp:127.0.0.1:0"};
    char err[256], addr[64];

    for (size_t i = 0; i < 3; i++) {
        struct listener l;

        ck_assert_msg(listen_open(&l, specs[i], 0600, "", err, sizeof err) == 0, "%s", err);
        bound_addr(l.fd, addr, sizeof addr);
        ck_assert_str_eq(addr, "127.0.0.1");
        ck_assert_str_eq(l.kind, "tcp");
        ck_assert_ptr_null(l.unlink_path);
        close(l.fd);
        listen_cleanup(&l);
    }
}
END_TEST

START_TEST(unix_sockets)
{
    struct listener l, l2;
    struct sockaddr_un sa;
    struct stat st;
    char err[256], path[128];
    int s;

    mkdir_tmp();
    snprintf(path, sizeof path, "%s/s.sock", dir);
    /* A stale socket file: bound, never listened on, closed. */
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    close(s);
    ck_assert_int_eq(listen_open(&l, "", 0, "", err, sizeof err), -1); /* not a spec */
    {
        char spec[160];

        snprintf(spec, sizeof spec, "unix:%s", path);
        ck_assert_msg(listen_open(&l, spec, 0640, "", err, sizeof err) == 0, "%s", err);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_int_eq(st.st_mode & 0777, 0640);
        ck_assert_str_eq(l.kind, "unix");
        /* Live: refused, and the socket stays. */
        ck_assert_int_eq(listen_open(&l2, spec, 0640, "", err, sizeof err), -1);
        ck_assert_msg(strstr(err, "in use") != NULL, "%s", err);
        ck_assert_int_eq(stat(path, &st), 0);
        close(l.fd);
        listen_cleanup(&l);
        ck_assert_int_ne(stat(path, &st), 0); /* cleanup removed it */
    }
    /* Not a socket: never replaced. */
    {
        char spec[160];
        FILE *f = fopen(path, "w");

        fputs("keep", f);
        fclose(f);
        snprintf(spec, sizeof spec, "unix:%s", path);
        ck_assert_int_eq(listen_open(&l, spec, 0640, "", err, sizeof err), -1);
        ck_assert_msg(strstr(err, "is not a socket") != NULL, "%s", err);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        unlink(path);
        /* An unknown group: an error, and no socket file left behind. */
        ck_assert_int_eq(listen_open(&l, spec, 0640, "no-such-group-xyz", err, sizeof err), -1);
        ck_assert_msg(strstr(err, "unknown group 'no-such-group-xyz'") != NULL, "%s", err);
        ck_assert_int_ne(stat(path, &st), 0);
    }
    rmdir(dir);
}
END_TEST

START_TEST(bad_specs)
{
    struct listener l;
    char err[256];

    ck_assert_int_eq(listen_open(&l, "udp:1", 0, "", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "udp:1") != NULL, "%s", err);
    ck_assert_int_eq(listen_open(&l, "tcp:no.such.host.invalid:1", 0, "", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "tcp:no.such.host.invalid:1") != NULL, "%s", err);
    ck_assert_int_eq(listen_open(&l, "unix:/nonexistent/dir/s.sock", 0, "", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "bind") != NULL, "%s", err);
}
END_TEST

Suite *listen_suite(void)
{
    Suite *s = suite_create("listen");
    TCase *tc = tcase_create("listen");

    tcase_add_test(tc, tcp_loopback_default);
    tcase_add_test(tc, unix_sockets);
    tcase_add_test(tc, bad_specs);
    suite_add_tcase(s, tc);
    return s;
}
