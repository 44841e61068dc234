/*
 * check_jsonfmt.c: daemon/jsonfmt.c: reals in their shortest round-trip form (a threshold of
 * 0.4 prints as 0.4, not 0.40000000000000002), integers and strings untouched, every printed
 * real read back as the same double.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonfmt.h"

Suite *jsonfmt_suite(void);

START_TEST(shortest_reals)
{
    json_t *root = json_pack("{s:f, s:f, s:f, s:f, s:i, s:s, s:[f, f]}", "t", 0.4, "p",
                             0.123456789012345678, "one", 1.0, "tiny", 1e-300, "n", 42, "s",
                             "0.40000000000000002 \"1.5\"", "a", -2.5e-7, 1.0 / 3.0);
    char *s = json_dumps_shortest(root, JSON_COMPACT | JSON_REAL_PRECISION(17));

    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(strstr(s, "\"t\":0.4,"));
    ck_assert_ptr_nonnull(strstr(s, "\"p\":0.12345678901234568,"));
    ck_assert_ptr_nonnull(strstr(s, "\"one\":1.0,"));
    ck_assert_ptr_nonnull(strstr(s, "\"tiny\":1e-300,"));
    ck_assert_ptr_nonnull(strstr(s, "\"n\":42,"));
    /* strings are not numbers, even when they look like one */
    ck_assert_ptr_nonnull(strstr(s, "\"0.40000000000000002 \\\"1.5\\\"\""));
    ck_assert_ptr_nonnull(strstr(s, "[-2.5e-07,0.3333333333333333]"));
    free(s);
    json_decref(root);
}
END_TEST

START_TEST(round_trip)
{
    char buf[40];

    srand(7);
    for (int i = 0; i < 20000; i++) {
        double v = ldexp((double)rand() / RAND_MAX, (rand() % 200) - 100) * (i % 2 ? 1 : -1);
        size_t n = json_real_shortest(v, buf, sizeof buf);

        ck_assert_uint_gt(n, 0);
        ck_assert_msg(strtod(buf, NULL) == v, "%s is not %.17g", buf, v);
    }
    ck_assert_uint_gt(json_real_shortest(DBL_MAX, buf, sizeof buf), 0);
    ck_assert(strtod(buf, NULL) == DBL_MAX);
}
END_TEST

Suite *jsonfmt_suite(void)
{
    Suite *s = suite_create("jsonfmt");
    TCase *tc = tcase_create("jsonfmt");

    tcase_add_test(tc, shortest_reals);
    tcase_add_test(tc, round_trip);
    suite_add_tcase(s, tc);
    return s;
}
