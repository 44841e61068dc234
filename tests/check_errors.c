/* check_errors.c: error codes and their strings. */
#include <check.h>
#include <string.h>

#include "sg_engine.h"

Suite *errors_suite(void);

START_TEST(test_strerror_known)
{
    ck_assert_str_eq(sg_engine_strerror(SG_OK), "success");
    ck_assert_str_eq(sg_engine_strerror(SG_EFORMAT), "malformed file");
    ck_assert_str_eq(sg_engine_strerror(SG_ERANGE), "out of range");
}
END_TEST

START_TEST(test_strerror_unknown)
{
    ck_assert_str_eq(sg_engine_strerror(1), "unknown error");
    ck_assert_str_eq(sg_engine_strerror(-SG_ERR_COUNT), "unknown error");
    ck_assert_str_eq(sg_engine_strerror(-1000), "unknown error");
}
END_TEST

static char last_msg[256];
static sg_log_level last_level;

static void capture(sg_log_level level, const char *msg, void *ud)
{
    (void)ud;
    last_level = level;
    strncpy(last_msg, msg, sizeof last_msg - 1);
}

START_TEST(test_log_hook)
{
    sg_engine_set_log(capture, NULL);
    sg_log(SG_LOG_INFO, "loaded %d tensors from %s", 26, "x.gguf");
    ck_assert_int_eq(last_level, SG_LOG_INFO);
    ck_assert_str_eq(last_msg, "loaded 26 tensors from x.gguf");
    sg_engine_set_log(NULL, NULL);
}
END_TEST

Suite *errors_suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_strerror_known);
    tcase_add_test(tc, test_strerror_unknown);
    tcase_add_test(tc, test_log_hook);
    suite_add_tcase(s, tc);
    return s;
}
