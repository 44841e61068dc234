/*
 * check_evalsvg.c: the SVG of `shieldctl eval`: one curve per series with positives, markers,
 * histograms, escaping, and a series without positives (no curve, said in the legend). The
 * integration test parses a whole plot as XML (tests/integration/test_eval.py).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evalsvg.h"

Suite *evalsvg_suite(void);

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

START_TEST(curves_markers_histograms)
{
    static const double s1[] = {0.9, 0.8, 0.7, 0.6, 0.55, 0.4};
    static const unsigned char l1[] = {1, 1, 0, 1, 0, 0};
    static const unsigned char none[] = {0, 0, 0, 0, 0, 0};
    sg_eval_curve c1;
    sg_eval_curve c2;
    sg_evalsvg_series s[2];
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ck_assert_int_eq(sg_eval_curve_compute(&c1, s1, l1, 6), 0);
    ck_assert_int_eq(sg_eval_curve_compute(&c2, s1, none, 6), 0);
    memset(s, 0, sizeof s);
    s[0] = (sg_evalsvg_series){"hate", 0, &c1, s1, l1, 6, 1, {2, 1, 2, 1}, 0.65};
    s[1] = (sg_evalsvg_series){"a<b&\"c\"", 1, &c2, s1, none, 6, 1, {0, 3, 3, 0}, NAN};
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(sg_evalsvg_write(f, "t <&> t", s, 2), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "<?xml"));
    ck_assert_ptr_nonnull(strstr(buf, "</svg>\n"));
    ck_assert_ptr_nonnull(strstr(buf, "t &lt;&amp;&gt; t"));
    ck_assert_ptr_null(strstr(buf, "a<b"));
    ck_assert_uint_eq(count(buf, "class=\"pr-curve\" data-policy=\"hate\""), 1);
    ck_assert_uint_eq(count(buf, "class=\"roc-curve\" data-policy=\"hate\""), 1);
    ck_assert_uint_eq(count(buf, "class=\"pr-curve\""), 1); /* none for no positives */
    ck_assert_uint_eq(count(buf, "class=\"optimal\" data-policy=\"hate\""), 2); /* PR, ROC */
    ck_assert_uint_eq(count(buf, "<line class=\"optimal\""), 1); /* hate's histogram */
    ck_assert_uint_eq(count(buf, "class=\"current\" data-policy=\"hate\""), 2);
    ck_assert_uint_eq(count(buf, "<g class=\"histogram\""), 2);
    ck_assert_ptr_nonnull(strstr(buf, "a&lt;b&amp;&quot;c&quot; (no positives)"));
    ck_assert_ptr_nonnull(strstr(buf, "hate (AP 0.917, F1 0.857)"));
    ck_assert_uint_eq(count(buf, "<line class=\"current\""), 1); /* the NaN threshold: none */
    free(buf);
    sg_eval_curve_free(&c1);
    sg_eval_curve_free(&c2);
}
END_TEST

Suite *evalsvg_suite(void)
{
    Suite *s = suite_create("evalsvg");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, curves_markers_histograms);
    suite_add_tcase(s, tc);
    return s;
}
