/*
 * check_thresholdfile.c: rewriting the threshold line of a policy file's text keeps every
 * other byte: comments, CRLF line endings, the key's spacing; a missing or a second top-level
 * threshold line is an error with the line numbers.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "thresholdfile.h"

Suite *thresholdfile_suite(void);

/* Rewrite `in` with `value`; expect `want` (NULL: expect failure containing `msg`). */
static void expect(const char *in, const char *value, const char *want, const char *old,
                   const char *msg)
{
    char *out = NULL;
    char *was = NULL;
    size_t len = 0;
    char err[200] = "";
    int rc = sg_threshold_rewrite(in, strlen(in), value, &out, &len, &was, err, sizeof err);

    if (!want) {
        ck_assert_int_eq(rc, -2);
        ck_assert_ptr_null(out);
        ck_assert_msg(strstr(err, msg), "message '%s' lacks '%s'", err, msg);
        return;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_str_eq(out, want);
    ck_assert_str_eq(was, old);
    free(out);
    free(was);
}

START_TEST(rewrites_only_the_value)
{
    expect("name: hate\nthreshold: 0.5\nenabled: true\n", "0.73",
           "name: hate\nthreshold: 0.73\nenabled: true\n", "0.5", NULL);
    /* a comment after the value, extra spaces, no final newline */
    expect("a: 1\nthreshold:   0.5   # tuned by hand\nb: 2", "0.25",
           "a: 1\nthreshold:   0.25   # tuned by hand\nb: 2", "0.5", NULL);
    /* CRLF endings stay */
    expect("a: 1\r\nthreshold: 1\r\nb: 2\r\n", "0.125", "a: 1\r\nthreshold: 0.125\r\nb: 2\r\n",
           "1", NULL);
    /* no space after the colon: one is added (YAML needs it) */
    expect("threshold:0.5\n", "0.6", "threshold: 0.6\n", "0.5", NULL);
    /* an indented threshold (a nested mapping, a guideline's text) is not the key */
    expect("guideline:\n  threshold: 0.1\n# threshold: 0.2\nthreshold: 0.3\n", "0.4",
           "guideline:\n  threshold: 0.1\n# threshold: 0.2\nthreshold: 0.4\n", "0.3", NULL);
    /* the last line */
    expect("name: x\nthreshold: 0.5", "0.9", "name: x\nthreshold: 0.9", "0.5", NULL);
}
END_TEST

START_TEST(errors)
{
    expect("name: hate\nenabled: true\n", "0.5", NULL, NULL, "no top-level 'threshold:' line");
    expect("", "0.5", NULL, NULL, "no top-level");
    expect("threshold: 0.5\nname: x\nthreshold: 0.6\n", "0.7", NULL, NULL, "lines 1 and 3");
}
END_TEST

Suite *thresholdfile_suite(void)
{
    Suite *s = suite_create("thresholdfile");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, rewrites_only_the_value);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    return s;
}
