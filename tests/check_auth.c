/*
 * check_auth.c: daemon/auth.c (the API key file, the Bearer match, peer credentials, public
 * listeners) and policies/chat.c (chat messages -> one exchange).
 */
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "auth.h"
#include "sg_chat.h"

Suite *auth_suite(void);

/* Write `text` to a temporary file; its path into `path`. */
static void temp_file(char *path, size_t cap, const char *text)
{
    int fd;

    snprintf(path, cap, "/tmp/check_auth_XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((int)write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
}

START_TEST(keyring_file)
{
    char path[64], err[256];
    struct keyring *k;

    temp_file(path, sizeof path, "# comment\n\nsk-aaaaaaaaaaaa alice\n  sk-bbbbbbbbbbbb\t\n");
    ck_assert_int_eq(keyring_load(&k, path, err, sizeof err), 0);
    ck_assert_uint_eq(keyring_count(k), 2);
    ck_assert_str_eq(keyring_match(k, "Bearer sk-aaaaaaaaaaaa"), "alice");
    ck_assert_str_eq(keyring_match(k, "bearer sk-bbbbbbbbbbbb"), "key-4");
    ck_assert_ptr_null(keyring_match(k, "Bearer sk-aaaaaaaaaaa"));   /* a prefix */
    ck_assert_ptr_null(keyring_match(k, "Bearer sk-aaaaaaaaaaaab")); /* one byte more */
    ck_assert_ptr_null(keyring_match(k, "Bearer "));
    ck_assert_ptr_null(keyring_match(k, "Basic sk-aaaaaaaaaaaa"));
    ck_assert_ptr_null(keyring_match(k, NULL));
    ck_assert_str_eq(keyring_match_key(k, "sk-aaaaaaaaaaaa"), "alice");
    ck_assert_ptr_null(keyring_match_key(k, "Bearer sk-aaaaaaaaaaaa"));
    keyring_free(k);
    unlink(path);
}
END_TEST

START_TEST(keyring_errors)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"", "no keys"},
        {"# only a comment\n", "no keys"},
        {"short\n", ":1: a key must be 8 to 256 bytes"},
        {"sk-aaaaaaaaaaaa a\nsk-aaaaaaaaaaaa b\n", ":2: the same key as 'a'"},
        {"sk-aaaaaaaaaaaa a\nsk-bbbbbbbbbbbb a\n", ":2: the name 'a' is used twice"},
        {"sk-aaaaaaaaaaaa bad/name\n", ":1: bad key name"},
        {"sk-aaaaaaaaaaaa a b\n", ":1: expected 'KEY [name]'"},
        {"sk-\x01\x02\x03\x04\x05\x06\x07\n", ":1: a key must be printable ASCII"},
    };
    char path[64], err[256];
    struct keyring *k;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        temp_file(path, sizeof path, cases[i].text);
        ck_assert_int_eq(keyring_load(&k, path, err, sizeof err), -1);
        ck_assert_ptr_null(k);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "%s: %s", cases[i].text, err);
        ck_assert_ptr_null(strstr(err, "sk-aaaa")); /* never the key */
        unlink(path);
    }
    ck_assert_int_eq(keyring_load(&k, "/nonexistent/keys", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/keys"));
}
END_TEST

START_TEST(ids_and_peers)
{
    unsigned *ids, uid, gid;
    size_t n;
    char err[256];
    int sv[2];

    ck_assert_int_eq(auth_parse_ids("0, 1000,root", 0, &ids, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(ids[1], 1000);
    ck_assert_uint_eq(ids[2], 0);
    free(ids);
    ck_assert_int_eq(auth_parse_ids("", 1, &ids, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(auth_parse_ids("no-such-user-xyz", 0, &ids, &n, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "allow_uids: unknown user 'no-such-user-xyz'"));
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    {
        unsigned me = (unsigned)getuid(), other = me + 1, mygid = (unsigned)getgid();

        ck_assert_int_eq(auth_peer_allowed(sv[0], NULL, 0, NULL, 0, &uid, &gid), 1);
        ck_assert_int_eq(auth_peer_allowed(sv[0], &me, 1, NULL, 0, &uid, &gid), 1);
        ck_assert_uint_eq(uid, me);
        ck_assert_int_eq(auth_peer_allowed(sv[0], &other, 1, NULL, 0, &uid, &gid), 0);
        ck_assert_int_eq(auth_peer_allowed(sv[0], &other, 1, &mygid, 1, &uid, &gid), 1);
    }
    close(sv[0]);
    close(sv[1]);
}
END_TEST

static int bound(int family, const char *addr6_or_4)
{
    int fd = socket(family, SOCK_STREAM, 0);
    int pub;

    if (family == AF_INET) {
        struct sockaddr_in a = {.sin_family = AF_INET};

        a.sin_addr.s_addr = htonl(strcmp(addr6_or_4, "any") == 0 ? INADDR_ANY : INADDR_LOOPBACK);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    } else {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6};

        a.sin6_addr = strcmp(addr6_or_4, "any") == 0 ? in6addr_any : in6addr_loopback;
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            close(fd);
            return -1; /* no IPv6 here */
        }
    }
    pub = auth_socket_is_public(fd);
    close(fd);
    return pub;
}

START_TEST(public_sockets)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    ck_assert_int_eq(bound(AF_INET, "loopback"), 0);
    ck_assert_int_eq(bound(AF_INET, "any"), 1);
    ck_assert_int_ne(bound(AF_INET6, "loopback"), 1);
    ck_assert_int_ne(bound(AF_INET6, "any"), 0);
    ck_assert_int_eq(auth_socket_is_public(fd), 0);
    close(fd);
}
END_TEST

START_TEST(chat_map)
{
    sg_chat_input c;
    char err[256];
    json_t *m = json_loads("[{\"role\": \"user\", \"content\": \"q1\"}, {\"role\": \"assistant\", "
                           "\"content\": \"a1\"}, {\"role\": \"developer\", \"content\": \"d\"}, "
                           "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": "
                           "\"x\"}, {\"type\": \"text\", \"text\": \"y\"}]}, {\"role\": "
                           "\"assistant\", \"content\": \"a2\"}]",
                           0, NULL);

    ck_assert_int_eq(sg_chat_map(m, "", &c, err, sizeof err), 0);
    ck_assert_str_eq(c.text, "x\ny");
    ck_assert_uint_eq(c.text_len, 3);
    ck_assert_str_eq(c.response, "a2");
    sg_chat_input_free(&c);
    json_decref(m);
    m = json_loads("[{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"system\", "
                   "\"content\": \"s\"}]",
                   0, NULL);
    ck_assert_int_eq(sg_chat_map(m, "inputs[1]: ", &c, err, sizeof err), -1);
    ck_assert_str_eq(err, "inputs[1]: 'messages' must end with a user or an assistant turn, not "
                          "'system'");
    json_decref(m);
    m = json_loads("[{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, "
                   "{\"type\": \"image_url\"}]}]",
                   0, NULL);
    ck_assert_int_eq(sg_chat_map(m, "", &c, err, sizeof err), -1);
    ck_assert_str_eq(err, "messages[0]: 'content[1]' is a 'image_url' part: only text parts can "
                          "be classified");
    json_decref(m);
}
END_TEST

Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");

    tcase_add_test(tc, keyring_file);
    tcase_add_test(tc, keyring_errors);
    tcase_add_test(tc, ids_and_peers);
    tcase_add_test(tc, public_sockets);
    tcase_add_test(tc, chat_map);
    suite_add_tcase(s, tc);
    return s;
}
