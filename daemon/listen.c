/*
 * listen.c: binding sockets. Unix sockets are created under a umask of 0177 and then given the
 * configured mode, so that no one can connect in the window between bind() and chmod().
 */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef SG_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "log.h"

#define BACKLOG 511

static int resolve_group(const char *group, gid_t *gid)
{
    char *end;
    long v = strtol(group, &end, 10);
    struct group *g;

    if (*group != '\0' && *end == '\0' && v >= 0) {
        *gid = (gid_t)v;
        return 0;
    }
    g = getgrnam(group);
    if (g == NULL)
        return -1;
    *gid = g->gr_gid;
    return 0;
}

int listen_set_perms(const char *path, int mode, const char *group, char *err, size_t errlen)
{
    struct stat st;
    int have = stat(path, &st) == 0;

    /* What is already so (e.g. systemd's SocketMode=/SocketGroup=) is left alone: changing a
     * file needs owning it, and systemd's socket belongs to root. */
    if (group != NULL && group[0] != '\0') {
        gid_t gid;

        if (resolve_group(group, &gid) < 0)
            return fail_msg(err, errlen, "unix:%s: unknown group '%s' (socket_group)", path, group);
        if (!(have && st.st_gid == gid) && chown(path, (uid_t)-1, gid) < 0)
            return fail_msg(err, errlen, "unix:%s: chown to group '%s': %s", path, group,
                            strerror(errno));
    }
    if (!(have && (st.st_mode & 07777) == (mode_t)mode) && chmod(path, (mode_t)mode) < 0)
        return fail_msg(err, errlen, "unix:%s: chmod %04o: %s", path, (unsigned)mode,
                        strerror(errno));
    return 0;
}

static int open_unix(struct listener *l, const char *path, int mode, const char *group, char *err,
                     size_t errlen)
{
    struct sockaddr_un sa;
    struct stat st;
    mode_t old;
    int fd;

    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return fail_msg(err, errlen, "unix:%s: path longer than %zu bytes", path,
                        sizeof sa.sun_path - 1);
    strcpy(sa.sun_path, path);
    if (lstat(path, &st) == 0) {
        int probe;

        if (!S_ISSOCK(st.st_mode))
            return fail_msg(err, errlen, "unix:%s: exists and is not a socket; not replacing it",
                            path);
        /* A socket file: stale if nobody accepts on it. */
        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0)
            return fail_msg(err, errlen, "unix:%s: socket: %s", path, strerror(errno));
        if (connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(probe);
            return fail_msg(err, errlen,
                            "unix:%s: in use by a running process (is another shieldd "
                            "running?)",
                            path);
        }
        if (errno != ECONNREFUSED && errno != ENOENT) {
            int e = errno;

            close(probe);
            return fail_msg(err, errlen, "unix:%s: cannot tell whether it is in use: %s", path,
                            strerror(e));
        }
        close(probe);
        if (unlink(path) < 0 && errno != ENOENT)
            return fail_msg(err, errlen, "unix:%s: removing the stale socket: %s", path,
                            strerror(errno));
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail_msg(err, errlen, "unix:%s: socket: %s", path, strerror(errno));
    old = umask(0177);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;

        umask(old);
        close(fd);
        return fail_msg(err, errlen, "unix:%s: bind: %s", path, strerror(e));
    }
    umask(old);
    l->unlink_path = strdup(path);
    snprintf(l->unix_path, sizeof l->unix_path, "%s", path);
    if (listen_set_perms(path, mode, group, err, errlen) < 0)
        goto fail;
    if (listen(fd, BACKLOG) < 0) {
        fail_msg(err, errlen, "unix:%s: listen: %s", path, strerror(errno));
        goto fail;
    }
    l->fd = fd;
    l->kind = "unix";
    snprintf(l->name, sizeof l->name, "unix:%s", path);
    return 0;
fail:
    close(fd);
    if (l->unlink_path)
        unlink(l->unlink_path);
    free(l->unlink_path);
    l->unlink_path = NULL;
    return -1;
}

static int open_tcp(struct listener *l, const char *hostport, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    const char *port;
    struct addrinfo hints, *res = NULL, *ai;
    int fd = -1, rc, one = 1, zero = 0, any, e = 0;

    if (colon == NULL) {
        snprintf(host, sizeof host, "127.0.0.1");
        port = hostport;
    } else {
        size_t hl = (size_t)(colon - hostport);

        if (hl >= sizeof host)
            return fail_msg(err, errlen, "tcp:%s: host name too long", hostport);
        memcpy(host, hostport, hl);
        host[hl] = '\0';
        port = colon + 1;
        if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
            memmove(host, host + 1, hl - 2);
            host[hl - 2] = '\0';
        }
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    /* Loopback unless told otherwise: an empty host is 127.0.0.1, "*" every address. */
    if (host[0] == '\0')
        snprintf(host, sizeof host, "127.0.0.1");
    /* "*": one IPv6 socket that takes IPv4 too (IPV6_V6ONLY off), else IPv4 alone. */
    any = strcmp(host, "*") == 0;
    if (any)
        hints.ai_family = AF_INET6;
    rc = getaddrinfo(any ? NULL : host, port, &hints, &res);
    if (rc != 0 && any) {
        hints.ai_family = AF_UNSPEC;
        rc = getaddrinfo(NULL, port, &hints, &res);
    }
    if (rc != 0)
        return fail_msg(err, errlen, "tcp:%s: %s", hostport, gai_strerror(rc));
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, BACKLOG) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return fail_msg(err, errlen, "tcp:%s: bind: %s", hostport, strerror(e));
    l->fd = fd;
    l->kind = "tcp";
    l->unlink_path = NULL;
    snprintf(l->name, sizeof l->name, "tcp:%s", hostport);
    return 0;
}

int listen_open(struct listener *l, const char *spec, int mode, const char *group, char *err,
                size_t errlen)
{
    memset(l, 0, sizeof *l);
    l->fd = -1;
    if (strncmp(spec, "unix:", 5) == 0)
        return open_unix(l, spec + 5, mode, group, err, errlen);
    if (strncmp(spec, "tcp:", 4) == 0)
        return open_tcp(l, spec + 4, err, errlen);
    return fail_msg(err, errlen, "%s: not unix:PATH or tcp:HOST:PORT", spec);
}

int listen_systemd(struct listener *ls, size_t max, char *err, size_t errlen)
{
#ifdef SG_HAVE_SYSTEMD
    int n = sd_listen_fds(1);

    if (n < 0)
        return fail_msg(err, errlen, "sd_listen_fds: %s", strerror(-n));
    if ((size_t)n > max)
        return fail_msg(err, errlen, "systemd passed %d sockets, more than %zu", n, max);
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;

        memset(&ls[i], 0, sizeof ls[i]);
        ls[i].fd = fd;
        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
            return fail_msg(err, errlen, "systemd socket %d is not a listening stream socket", fd);
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_UNIX) {
            struct sockaddr_un *su = (struct sockaddr_un *)&ss;

            ls[i].kind = "unix";
            snprintf(ls[i].unix_path, sizeof ls[i].unix_path, "%.107s", su->sun_path);
            snprintf(ls[i].name, sizeof ls[i].name, "systemd:unix:%.100s", su->sun_path);
        } else {
            char host[64], port[16]; /* numeric forms */

            ls[i].kind = "tcp";
            if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port, sizeof port,
                            NI_NUMERICHOST | NI_NUMERICSERV) == 0)
                snprintf(ls[i].name, sizeof ls[i].name, "systemd:tcp:%s%s%s:%s",
                         ss.ss_family == AF_INET6 ? "[" : "", host,
                         ss.ss_family == AF_INET6 ? "]" : "", port);
            else
                snprintf(ls[i].name, sizeof ls[i].name, "systemd:tcp:fd%d", fd);
        }
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    return n;
#else
    (void)ls;
    (void)max;
    (void)err;
    (void)errlen;
    return 0;
#endif
}

void listen_cleanup(struct listener *l)
{
    if (l->unlink_path != NULL) {
        unlink(l->unlink_path);
        free(l->unlink_path);
        l->unlink_path = NULL;
    }
    l->fd = -1;
}
