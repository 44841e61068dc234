#ifndef SG_DAEMON_LISTEN_H
#define SG_DAEMON_LISTEN_H
/*
 * listen.h: listening sockets from "unix:/path" and "tcp:HOST:PORT" specs, or from systemd
 * socket activation (sd_listen_fds).
 */

#include <stddef.h>

struct listener {
    int fd;
    const char *kind;    /* "unix" or "tcp" */
    char name[160];      /* for logs: "unix:/run/shieldd/shieldd.sock", "tcp:127.0.0.1:8088" */
    char *unlink_path;   /* a Unix socket we created (removed at exit); malloc'd or NULL */
    char unix_path[108]; /* a Unix socket's path (ours or systemd's); "" for TCP */
};

/* Give the Unix socket file `path` permissions `mode` and, if `group` is not empty, that group
 * (name or number). Returns 0, or -1 with a message in `err`. */
int listen_set_perms(const char *path, int mode, const char *group, char *err, size_t errlen);

/*
 * Open a listening socket for `spec`. TCP: "tcp:HOST:PORT" (HOST may be a name, an IPv4
 * address, an IPv6 address in brackets, or "*" for every address) or "tcp:PORT" / "tcp::PORT"
 * (loopback).
 * Unix: "unix:PATH"; a socket file left by a dead process is replaced, a live one (something
 * accepts connections on it) or a file that is not a socket is an error. The socket gets
 * permissions `mode` and, if `group` is not empty, that group (name or number).
 * Returns 0, or -1 with a message naming the spec and the cause in `err`.
 */
int listen_open(struct listener *l, const char *spec, int mode, const char *group, char *err,
                size_t errlen);

/*
 * The sockets systemd passed (socket activation), at most `max`. Returns their number (0 when
 * not socket-activated or built without libsystemd), or -1 with a message in `err`.
 */
int listen_systemd(struct listener *ls, size_t max, char *err, size_t errlen);

/* Forget the socket (its fd now belongs to the HTTP server) and unlink a Unix socket file we
 * created. */
void listen_cleanup(struct listener *l);

#endif /* SG_DAEMON_LISTEN_H */
