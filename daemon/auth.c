/*
 * auth.c: API keys, peer credentials, public listeners.
 */
#define _GNU_SOURCE /* struct ucred, SO_PEERCRED */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "log.h"

#define KEY_MIN 8
#define KEY_MAX 256
#define NAME_MAX_LEN 63

struct key {
    char *key;
    size_t len;
    char name[NAME_MAX_LEN + 1];
};

struct keyring {
    struct key *keys;
    size_t n;
};

void keyring_free(struct keyring *k)
{
    if (k == NULL)
        return;
    for (size_t i = 0; i < k->n; i++) {
        /* Do not leave key bytes in freed memory. */
        memset(k->keys[i].key, 0, k->keys[i].len);
        free(k->keys[i].key);
    }
    free(k->keys);
    free(k);
}

size_t keyring_count(const struct keyring *k)
{
    return k ? k->n : 0;
}

static int name_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > NAME_MAX_LEN)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && strchr("_.@-", *s) == NULL)
            return 0;
    return 1;
}

/* Add the key and name of line `lineno` (tokens already split). Returns 0 or -1 with a message
 * that names the line, never the key. */
static int add_key(struct keyring *k, const char *path, int lineno, const char *key,
                   const char *name, char *err, size_t errlen)
{
    size_t len = strlen(key);
    struct key *grown;

    if (len < KEY_MIN || len > KEY_MAX)
        return fail_msg(err, errlen, "%s:%d: a key must be %d to %d bytes long", path, lineno,
                        KEY_MIN, KEY_MAX);
    for (size_t i = 0; i < len; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return fail_msg(err, errlen, "%s:%d: a key must be printable ASCII", path, lineno);
    if (name != NULL && !name_ok(name))
        return fail_msg(err, errlen,
                        "%s:%d: bad key name (letters, digits, '_', '.', '@', '-'; at most %d)",
                        path, lineno, NAME_MAX_LEN);
    for (size_t i = 0; i < k->n; i++) {
        if (k->keys[i].len == len && memcmp(k->keys[i].key, key, len) == 0)
            return fail_msg(err, errlen, "%s:%d: the same key as '%s'", path, lineno,
                            k->keys[i].name);
        if (name != NULL && strcmp(k->keys[i].name, name) == 0)
            return fail_msg(err, errlen, "%s:%d: the name '%s' is used twice", path, lineno, name);
    }
    grown = realloc(k->keys, (k->n + 1) * sizeof *grown);
    if (grown == NULL)
        return fail_msg(err, errlen, "%s: out of memory", path);
    k->keys = grown;
    grown[k->n].key = strdup(key);
    if (grown[k->n].key == NULL)
        return fail_msg(err, errlen, "%s: out of memory", path);
    grown[k->n].len = len;
    if (name != NULL)
        snprintf(grown[k->n].name, sizeof grown[k->n].name, "%s", name);
    else
        snprintf(grown[k->n].name, sizeof grown[k->n].name, "key-%d", lineno);
    k->n++;
    return 0;
}

int keyring_load(struct keyring **out, const char *path, char *err, size_t errlen)
{
    struct keyring *k = calloc(1, sizeof *k);
    FILE *f = NULL;
    char line[1024];
    int lineno = 0;

    *out = NULL;
    if (k == NULL)
        return fail_msg(err, errlen, "%s: out of memory", path);
    f = fopen(path, "r");
    if (f == NULL) {
        fail_msg(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        char *save = NULL, *key, *name, *extra;

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            fail_msg(err, errlen, "%s:%d: line too long", path, lineno);
            goto fail;
        }
        key = strtok_r(line, " \t\r\n", &save);
        if (key == NULL || key[0] == '#')
            continue;
        name = strtok_r(NULL, " \t\r\n", &save);
        extra = strtok_r(NULL, " \t\r\n", &save);
        if (extra != NULL) {
            fail_msg(err, errlen, "%s:%d: expected 'KEY [name]', found more", path, lineno);
            goto fail;
        }
        if (add_key(k, path, lineno, key, name, err, errlen) < 0)
            goto fail;
    }
    if (ferror(f)) {
        fail_msg(err, errlen, "%s: read error", path);
        goto fail;
    }
    if (k->n == 0) {
        fail_msg(err, errlen, "%s: no keys (one 'KEY [name]' a line)", path);
        goto fail;
    }
    memset(line, 0, sizeof line);
    fclose(f);
    *out = k;
    return 0;
fail:
    memset(line, 0, sizeof line);
    if (f != NULL)
        fclose(f);
    keyring_free(k);
    return -1;
}

/* 1 if p[0..plen) equals the key, in time that depends on the lengths only. */
static int same_key(const struct key *key, const char *p, size_t plen)
{
    unsigned char d = key->len != plen;

    for (size_t i = 0; i < key->len; i++)
        d |= (unsigned char)key->key[i] ^ (unsigned char)(i < plen ? p[i] : 0);
    return d == 0;
}

const char *keyring_match(const struct keyring *k, const char *authorization)
{
    const char *p;

    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    p = authorization + 7;
    while (*p == ' ')
        p++;
    return keyring_match_key(k, p);
}

const char *keyring_match_key(const struct keyring *k, const char *p)
{
    const char *found = NULL;

    if (k == NULL || p == NULL)
        return NULL;
    for (size_t i = 0; i < k->n; i++) {
        int m = same_key(&k->keys[i], p, strlen(p));

        /* No early exit: every key is compared. */
        if (m && found == NULL)
            found = k->keys[i].name;
    }
    return found;
}

int auth_parse_ids(const char *list, int groups, unsigned **ids, size_t *n, char *err,
                   size_t errlen)
{
    char *copy = strdup(list), *save = NULL, *tok;
    unsigned *v = NULL;
    size_t cnt = 0;

    *ids = NULL;
    *n = 0;
    if (copy == NULL)
        return fail_msg(err, errlen, "out of memory");
    for (tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        char *end;
        unsigned long id = strtoul(tok, &end, 10);
        unsigned *grown;

        if (*end != '\0' || !isdigit((unsigned char)tok[0])) {
            struct passwd *pw = groups ? NULL : getpwnam(tok);
            struct group *gr = groups ? getgrnam(tok) : NULL;

            if (pw == NULL && gr == NULL) {
                fail_msg(err, errlen, "%s: unknown %s '%.64s'",
                         groups ? "allow_gids" : "allow_uids", groups ? "group" : "user", tok);
                goto fail;
            }
            id = groups ? gr->gr_gid : pw->pw_uid;
        }
        grown = realloc(v, (cnt + 1) * sizeof *v);
        if (grown == NULL) {
            fail_msg(err, errlen, "out of memory");
            goto fail;
        }
        v = grown;
        v[cnt++] = (unsigned)id;
    }
    free(copy);
    *ids = v;
    *n = cnt;
    return 0;
fail:
    free(copy);
    free(v);
    return -1;
}

int auth_peer_allowed(int fd, const unsigned *uids, size_t nu, const unsigned *gids, size_t ng,
                      unsigned *uid, unsigned *gid)
{
    struct ucred cr;
    socklen_t len = sizeof cr;

    *uid = *gid = (unsigned)-1;
    if (nu == 0 && ng == 0)
        return 1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || len != sizeof cr)
        return -1;
    *uid = (unsigned)cr.uid;
    *gid = (unsigned)cr.gid;
    for (size_t i = 0; i < nu; i++)
        if (uids[i] == *uid)
            return 1;
    for (size_t i = 0; i < ng; i++)
        if (gids[i] == *gid)
            return 1;
    return 0;
}

int auth_socket_is_public(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;

    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return 0;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

        return (ntohl(a->sin_addr.s_addr) >> 24) != 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        const unsigned char *b = a->sin6_addr.s6_addr;
        static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

        if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return 0;
        if (memcmp(b, v4mapped, 12) == 0)
            return b[12] != 127;
        return 1;
    }
    return 0;
}
