#ifndef SG_DAEMON_AUTH_H
#define SG_DAEMON_AUTH_H
/*
 * auth.h: who may call the daemon. API keys (a file of "KEY [name]" lines, checked against
 * "Authorization: Bearer KEY" in constant time), the peer credentials of Unix socket clients
 * (SO_PEERCRED against allow_uids / allow_gids), and whether a listening socket is reachable
 * from other hosts. Key bytes never appear in a message or a log line: keys are known by name.
 */

#include <stddef.h>
#include <sys/types.h>

struct keyring;

/*
 * Load the key file `path`: one key a line, optionally followed by a name ([A-Za-z0-9_.@-],
 * at most 63 bytes; default "key-LINE"); '#' starts a comment line; blank lines are ignored.
 * A key is 8 to 256 printable ASCII bytes without spaces. At least one key, no key twice.
 * Returns 0 (the caller owns *out, keyring_free), or -1 with "path:line: problem" in `err`.
 */
int keyring_load(struct keyring **out, const char *path, char *err, size_t errlen);
void keyring_free(struct keyring *k);
size_t keyring_count(const struct keyring *k);

/*
 * The name of the key carried by an Authorization header value ("Bearer KEY"; NULL: none), or
 * NULL when it matches none. Every key is compared whatever the outcome, byte by byte without
 * an early exit, so the time does not tell how much of a key matched. Borrowed from `k`.
 */
const char *keyring_match(const struct keyring *k, const char *authorization);

/* The same for the bare key (an "X-Api-Key: KEY" header, as LiteLLM's api_key sends it). */
const char *keyring_match_key(const struct keyring *k, const char *key);

/* A list of ids from "0, 1000, www-data" (numbers or user / group names when `groups`).
 * Returns 0 (*ids malloc'd, caller frees; NULL and 0 for an empty list) or -1 with a message. */
int auth_parse_ids(const char *list, int groups, unsigned **ids, size_t *n, char *err,
                   size_t errlen);

/*
 * Whether the peer of the Unix socket `fd` is allowed: its uid is in uids or its gid in gids
 * (an empty list on both sides allows everyone). *uid / *gid receive the peer's (for the
 * message). Returns 1 allowed, 0 refused, -1 when the credentials cannot be read (refused).
 */
int auth_peer_allowed(int fd, const unsigned *uids, size_t nu, const unsigned *gids, size_t ng,
                      unsigned *uid, unsigned *gid);

/* 1 if the listening socket `fd` is TCP bound to a non-loopback address, else 0. */
int auth_socket_is_public(int fd);

#endif /* SG_DAEMON_AUTH_H */
