/*
 * check_config.c: shieldd's configuration: defaults, every value type and its range checks,
 * the YAML file (file:line:column errors, listen as scalar or list), the command line (short
 * and long flags, --no-KEY, --KEY=VALUE) and the rule that flags win over the file.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

Suite *config_suite(void);

static char tmpl[] = "/tmp/check_config_XXXXXX";

static const char *write_yaml(const char *text)
{
    static char path[256];
    FILE *f;
    int fd;

    snprintf(path, sizeof path, "%s", "/tmp/check_config_XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

START_TEST(defaults)
{
    struct shieldd_config c;

    shieldd_defaults(&c);
    ck_assert_str_eq(c.listen[0], "unix:/run/shieldd/shieldd.sock");
    ck_assert_str_eq(c.listen[1], "tcp:127.0.0.1:8088");
    ck_assert_uint_eq(c.n_listen, 2);
    ck_assert_int_eq(c.socket_mode, 0660);
    ck_assert_int_eq(c.cache, 1);
    ck_assert_int_eq(c.queue_depth, 256);
    ck_assert_str_eq(c.precision, "f32");
    ck_assert(c.request_timeout == 30.0);
    config_free(&c);
    (void)tmpl;
}
END_TEST

START_TEST(set_values)
{
    struct shieldd_config c;
    char err[256];

    shieldd_defaults(&c);
    ck_assert_int_eq(config_set(&c, "max_body_bytes", "2M", err, sizeof err), 0);
    ck_assert_int_eq(c.max_body_bytes, 2L << 20);
    ck_assert_int_eq(config_set(&c, "cache_bytes", "64KiB", err, sizeof err), 0);
    ck_assert_int_eq(c.cache_bytes, 65536);
    ck_assert_int_eq(config_set(&c, "request_timeout", "250ms", err, sizeof err), 0);
    ck_assert(c.request_timeout > 0.2499 && c.request_timeout < 0.2501);
    ck_assert_int_eq(config_set(&c, "cache_ttl", "2m", err, sizeof err), 0);
    ck_assert(c.cache_ttl == 120.0);
    ck_assert_int_eq(config_set(&c, "cache", "off", err, sizeof err), 0);
    ck_assert_int_eq(c.cache, 0);
    ck_assert_int_eq(config_set(&c, "cache", "Yes", err, sizeof err), 0);
    ck_assert_int_eq(c.cache, 1);
    ck_assert_int_eq(config_set(&c, "socket_mode", "0600", err, sizeof err), 0);
    ck_assert_int_eq(c.socket_mode, 0600);
    ck_assert_int_eq(config_set(&c, "precision", "bf16", err, sizeof err), 0);
    ck_assert_str_eq(c.precision, "bf16");
    ck_assert_int_eq(config_set(&c, "listen", "tcp:[::1]:9000", err, sizeof err), 0);
    ck_assert_uint_eq(c.n_listen, 3);
    config_free(&c);
}
END_TEST

START_TEST(set_errors)
{
    static const struct {
        const char *key, *value, *want;
    } cases[] = {
        {"queue_depth", "many", "queue_depth: 'many' is not an integer"},
        {"queue_depth", "0", "queue_depth: 0 is out of range"},
        {"threads", "-1", "out of range"},
        {"max_body_bytes", "1X", "is not a size"},
        {"max_body_bytes", "1G2", "is not a size"},
        {"max_header_bytes", "10", "out of range"},
        {"request_timeout", "soon", "is not a duration"},
        {"request_timeout", "-1", "is not a duration"},
        {"cache", "maybe", "is not a boolean"},
        {"socket_mode", "0999", "is not an octal mode"},
        {"precision", "fp8", "is not one of f32, bf16, int8"},
        {"listen", "http://x", "neither unix:PATH nor tcp:HOST:PORT"},
        {"listen", "tcp:localhost", "needs a port"},
        {"listen", "tcp:127.0.0.1:70000", "bad port"},
        {"listen", "unix:", "no socket path"},
        {"no_such_key", "1", "unknown key 'no_such_key'"},
    };
    struct shieldd_config c;
    char err[256];

    shieldd_defaults(&c);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        ck_assert_int_eq(config_set(&c, cases[i].key, cases[i].value, err, sizeof err), -1);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "%s=%s: got '%s'", cases[i].key,
                      cases[i].value, err);
    }
    config_free(&c);
}
END_TEST

START_TEST(yaml_file)
{
    struct shieldd_config c;
    char err[256];
    const char *path = write_yaml("# comment\n"
                                  "model: /m\n"
                                  "listen:\n"
                                  "  - unix:/tmp/a.sock\n"
                                  "  - tcp:0.0.0.0:1\n"
                                  "queue_depth: 7\n"
                                  "cache: false\n"
                                  "socket_mode: 0640\n");

    shieldd_defaults(&c);
    ck_assert_int_eq(config_load_file(&c, path, err, sizeof err), 0);
    ck_assert_str_eq(c.model, "/m");
    ck_assert_uint_eq(c.n_listen, 2); /* the file's list replaces the defaults */
    ck_assert_str_eq(c.listen[0], "unix:/tmp/a.sock");
    ck_assert_str_eq(c.listen[1], "tcp:0.0.0.0:1");
    ck_assert_int_eq(c.queue_depth, 7);
    ck_assert_int_eq(c.cache, 0);
    ck_assert_int_eq(c.socket_mode, 0640);
    unlink(path);
    config_free(&c);

    /* A single scalar listen also replaces the defaults. */
    path = write_yaml("listen: tcp:127.0.0.1:5\n");
    shieldd_defaults(&c);
    ck_assert_int_eq(config_load_file(&c, path, err, sizeof err), 0);
    ck_assert_uint_eq(c.n_listen, 1);
    unlink(path);
    config_free(&c);

    /* An empty file is an empty configuration. */
    path = write_yaml("");
    shieldd_defaults(&c);
    ck_assert_int_eq(config_load_file(&c, path, err, sizeof err), 0);
    ck_assert_uint_eq(c.n_listen, 2);
    unlink(path);
    config_free(&c);
}
END_TEST

START_TEST(yaml_errors)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"model: /m\nqueue_depht: 3\n", ":2:1: unknown key 'queue_depht'"},
        {"model: /m\nqueue_depth: lots\n", ":2:14: queue_depth: 'lots' is not an integer"},
        {"model: [a, b]\n", ":1:8: model: expected a scalar value, found a sequence"},
        {"model:\n  nested: x\n", ":2:3: model: expected a scalar value, found a mapping"},
        {"model: /m\n  bad indent: [\n", "YAML syntax error"},
        {"just a string\n", "expected a mapping"},
        {"listen:\n  - ftp:x\n", ":2:5: listen: 'ftp:x' is neither"},
        {"a: &x 1\nb: *x\n", "unknown key 'a'"},
    };
    char err[256];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct shieldd_config c;
        const char *path = write_yaml(cases[i].text);

        shieldd_defaults(&c);
        err[0] = '\0';
        ck_assert_int_eq(config_load_file(&c, path, err, sizeof err), -1);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: got '%s'", i, err);
        ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "no file name in '%s'", err);
        unlink(path);
        config_free(&c);
    }
    {
        struct shieldd_config c;

        shieldd_defaults(&c);
        ck_assert_int_eq(config_load_file(&c, "/nonexistent/shieldd.yaml", err, sizeof err), -1);
        ck_assert_msg(strstr(err, "/nonexistent/shieldd.yaml: No such file") != NULL, "%s", err);
        config_free(&c);
    }
}
END_TEST

START_TEST(command_line)
{
    char *argv[] = {"shieldd",
                    "-d",
                    "-v",
                    "-v",
                    "-c",
                    "/etc/x.yaml",
                    "-m",
                    "/models/m",
                    "-s",
                    "/tmp/s.sock",
                    "-l",
                    "127.0.0.1:9",
                    "--queue-depth",
                    "3",
                    "--request_timeout=2s",
                    "--no-cache",
                    "--truncate",
                    "-t",
                    "4",
                    NULL};
    int argc = (int)(sizeof argv / sizeof argv[0]) - 1;
    struct shieldd_cmdline cl;
    struct shieldd_config c;
    char err[256];

    ck_assert_int_eq(config_parse_args(&cl, argc, argv, err, sizeof err), 0);
    ck_assert_int_eq(cl.foreground, 1);
    ck_assert_int_eq(cl.verbose, 2);
    ck_assert_int_eq(cl.check_only, 0);
    ck_assert_str_eq(cl.config_file, "/etc/x.yaml");
    shieldd_defaults(&c);
    ck_assert_int_eq(config_apply_args(&c, &cl, err, sizeof err), 0);
    ck_assert_str_eq(c.model, "/models/m");
    ck_assert_uint_eq(c.n_listen, 2);
    ck_assert_str_eq(c.listen[0], "unix:/tmp/s.sock");
    ck_assert_str_eq(c.listen[1], "tcp:127.0.0.1:9");
    ck_assert_int_eq(c.queue_depth, 3);
    ck_assert(c.request_timeout == 2.0);
    ck_assert_int_eq(c.cache, 0);
    ck_assert_int_eq(c.truncate, 1);
    ck_assert_int_eq(c.threads, 4);
    ck_assert_int_eq(c.verbose, 2);
    config_free(&c);
}
END_TEST

START_TEST(flags_win)
{
    char *argv[] = {"shieldd", "--queue-depth", "9", "--listen", "tcp:127.0.0.1:2", NULL};
    struct shieldd_cmdline cl;
    struct shieldd_config c;
    char err[256];
    const char *path = write_yaml("queue_depth: 5\nmodel: /file\nlisten:\n  - unix:/a\n"
                                  "  - unix:/b\n");

    ck_assert_int_eq(config_parse_args(&cl, 5, argv, err, sizeof err), 0);
    shieldd_defaults(&c);
    ck_assert_int_eq(config_load_file(&c, path, err, sizeof err), 0);
    ck_assert_int_eq(config_apply_args(&c, &cl, err, sizeof err), 0);
    ck_assert_int_eq(c.queue_depth, 9);
    ck_assert_str_eq(c.model, "/file");
    ck_assert_uint_eq(c.n_listen, 1);
    ck_assert_str_eq(c.listen[0], "tcp:127.0.0.1:2");
    unlink(path);
    config_free(&c);
}
END_TEST

START_TEST(command_line_errors)
{
    static const struct {
        const char *a, *b, *want;
    } cases[] = {
        {"--bogus", "1", "unknown flag '--bogus'"},
        {"-x", NULL, "unknown flag '-x'"},
        {"stray", NULL, "unexpected argument 'stray'"},
        {"--queue-depth", NULL, "needs a value"},
        {"-c", NULL, "needs a value"},
        {"--no-queue-depth", NULL, "unknown flag"},
    };
    char err[256];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[4] = {"shieldd", (char *)cases[i].a, (char *)cases[i].b, NULL};
        struct shieldd_cmdline cl;

        ck_assert_int_eq(config_parse_args(&cl, cases[i].b ? 3 : 2, argv, err, sizeof err), -1);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: got '%s'", i, err);
    }
    {
        char *argv[] = {"shieldd", "--queue-depth", "zero", NULL};
        struct shieldd_cmdline cl;
        struct shieldd_config c;

        ck_assert_int_eq(config_parse_args(&cl, 3, argv, err, sizeof err), 0);
        shieldd_defaults(&c);
        ck_assert_int_eq(config_apply_args(&c, &cl, err, sizeof err), -1);
        ck_assert_msg(strstr(err, "command line: queue_depth: 'zero'") != NULL, "%s", err);
        config_free(&c);
    }
}
END_TEST

START_TEST(usage_lists_every_key)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(f);
    config_usage(f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "queue_depth"));
    ck_assert_ptr_nonnull(strstr(buf, "(default: 256)"));
    ck_assert_ptr_nonnull(strstr(buf, "cache_ttl"));
    ck_assert_ptr_nonnull(strstr(buf, "-n "));
    free(buf);
}
END_TEST

START_TEST(parse_helpers)
{
    long v;
    double d;

    ck_assert_int_eq(config_parse_size("0", &v), 0);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(config_parse_size("1k", &v), 0);
    ck_assert_int_eq(v, 1024);
    ck_assert_int_eq(config_parse_size("1.5M", &v), 0);
    ck_assert_int_eq(v, 1572864);
    ck_assert_int_eq(config_parse_size("3GB", &v), 0);
    ck_assert_int_eq(v, 3L << 30);
    ck_assert_int_eq(config_parse_size("0.3", &v), -1);
    ck_assert_int_eq(config_parse_size("", &v), -1);
    ck_assert_int_eq(config_parse_size("-1", &v), -1);
    ck_assert_int_eq(config_parse_duration("1.5", &d), 0);
    ck_assert(d == 1.5);
    ck_assert_int_eq(config_parse_duration("2h", &d), 0);
    ck_assert(d == 7200);
    ck_assert_int_eq(config_parse_duration("5 s", &d), -1);
    ck_assert_int_eq(config_parse_duration("inf", &d), -1);
    ck_assert_int_eq(config_parse_duration("nan", &d), -1);
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");

    tcase_add_test(tc, defaults);
    tcase_add_test(tc, set_values);
    tcase_add_test(tc, set_errors);
    tcase_add_test(tc, yaml_file);
    tcase_add_test(tc, yaml_errors);
    tcase_add_test(tc, command_line);
    tcase_add_test(tc, flags_win);
    tcase_add_test(tc, command_line_errors);
    tcase_add_test(tc, usage_lists_every_key);
    tcase_add_test(tc, parse_helpers);
    suite_add_tcase(s, tc);
    return s;
}
