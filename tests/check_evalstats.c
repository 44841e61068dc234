/*
 * check_evalstats.c: the figures of `shieldctl eval` on scores with answers worked out by hand:
 * the curve, the optimal-F1 threshold (ties included), average precision, ROC AUC, targets,
 * all-positive / all-negative / empty inputs, and the threshold text. The comparison with
 * scikit-learn on random scores is tests/integration/test_eval.py.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "evalstats.h"

Suite *evalstats_suite(void);

#define EPS 1e-12

/* Six items, three positive, no ties. */
static const double s6[] = {0.9, 0.8, 0.7, 0.6, 0.55, 0.4};
static const unsigned char l6[] = {1, 1, 0, 1, 0, 0};

START_TEST(known_curve)
{
    sg_eval_curve c;
    static const double prec[] = {1, 1, 2.0 / 3, 0.75, 0.6, 0.5};
    static const double rec[] = {1.0 / 3, 2.0 / 3, 2.0 / 3, 1, 1, 1};
    static const double f1[] = {0.5, 0.8, 2.0 / 3, 6.0 / 7, 0.75, 2.0 / 3};
    static const double fpr[] = {0, 0, 1.0 / 3, 1.0 / 3, 2.0 / 3, 1};

    ck_assert_int_eq(sg_eval_curve_compute(&c, s6, l6, 6), 0);
    ck_assert_uint_eq(c.n, 6);
    ck_assert_uint_eq(c.n_pos, 3);
    ck_assert_uint_eq(c.n_neg, 3);
    ck_assert_uint_eq(c.n_points, 6);
    for (size_t k = 0; k < 6; k++) {
        ck_assert_double_eq(c.points[k].threshold, s6[k]);
        ck_assert_double_eq_tol(c.points[k].precision, prec[k], EPS);
        ck_assert_double_eq_tol(c.points[k].recall, rec[k], EPS);
        ck_assert_double_eq_tol(c.points[k].f1, f1[k], EPS);
        ck_assert_double_eq_tol(c.points[k].fpr, fpr[k], EPS);
    }
    ck_assert(c.have_f1);
    ck_assert(c.have_auc);
    ck_assert_ptr_null(c.note);
    ck_assert_uint_eq(c.best, 3);
    ck_assert_double_eq(c.best_threshold, 0.6);
    ck_assert_double_eq_tol(c.best_f1, 6.0 / 7, EPS);
    /* AP = 1/3 * 1 + 1/3 * 1 + 1/3 * 3/4 */
    ck_assert_double_eq_tol(c.ap, 11.0 / 12, EPS);
    /* 8 of the 9 (positive, negative) pairs are ordered right */
    ck_assert_double_eq_tol(c.roc_auc, 8.0 / 9, EPS);
    {
        sg_eval_confusion m = sg_eval_confusion_at(&c, c.best);

        ck_assert_int_eq(m.tp, 3);
        ck_assert_int_eq(m.fp, 1);
        ck_assert_int_eq(m.fn, 0);
        ck_assert_int_eq(m.tn, 2);
        ck_assert_double_eq_tol(sg_eval_f1(m), 6.0 / 7, EPS);
    }
    sg_eval_curve_free(&c);
}
END_TEST

/* The input order does not matter: the same six items shuffled. */
START_TEST(order_independent)
{
    static const double s[] = {0.55, 0.9, 0.4, 0.6, 0.8, 0.7};
    static const unsigned char l[] = {0, 1, 0, 1, 1, 0};
    sg_eval_curve c;

    ck_assert_int_eq(sg_eval_curve_compute(&c, s, l, 6), 0);
    ck_assert_double_eq(c.best_threshold, 0.6);
    ck_assert_double_eq_tol(c.ap, 11.0 / 12, EPS);
    ck_assert_double_eq_tol(c.roc_auc, 8.0 / 9, EPS);
    sg_eval_curve_free(&c);
}
END_TEST

START_TEST(ties_move_together)
{
    static const double s[] = {0.5, 0.2, 0.5, 0.5};
    static const unsigned char l[] = {1, 0, 0, 1};
    sg_eval_curve c;

    ck_assert_int_eq(sg_eval_curve_compute(&c, s, l, 4), 0);
    ck_assert_uint_eq(c.n_points, 2);
    ck_assert_double_eq(c.points[0].threshold, 0.5);
    ck_assert_int_eq(c.points[0].tp, 2);
    ck_assert_int_eq(c.points[0].fp, 1);
    ck_assert_double_eq_tol(c.points[0].precision, 2.0 / 3, EPS);
    ck_assert_double_eq_tol(c.points[0].recall, 1, EPS);
    ck_assert_double_eq_tol(c.ap, 2.0 / 3, EPS);
    /* a tied (positive, negative) pair counts one half: (1.5 + 1.5) / 4 */
    ck_assert_double_eq_tol(c.roc_auc, 0.75, EPS);
    ck_assert_double_eq(c.best_threshold, 0.5);
    ck_assert_double_eq_tol(c.best_f1, 0.8, EPS);
    sg_eval_curve_free(&c);
}
END_TEST

/* Two thresholds with the same F1 (2/3): the higher one wins (fewer items flagged). */
START_TEST(f1_tie_takes_higher_threshold)
{
    static const double s[] = {0.9, 0.8, 0.7, 0.6};
    static const unsigned char l[] = {1, 0, 0, 1};
    sg_eval_curve c;

    ck_assert_int_eq(sg_eval_curve_compute(&c, s, l, 4), 0);
    ck_assert_double_eq(c.points[0].f1, c.points[3].f1);
    ck_assert_uint_eq(c.best, 0);
    ck_assert_double_eq(c.best_threshold, 0.9);
    sg_eval_curve_free(&c);
}
END_TEST

START_TEST(all_negative)
{
    static const double s[] = {0.9, 0.1, 0.3};
    static const unsigned char l[] = {0, 0, 0};
    sg_eval_curve c;

    ck_assert_int_eq(sg_eval_curve_compute(&c, s, l, 3), 0);
    ck_assert(!c.have_f1);
    ck_assert(!c.have_auc);
    ck_assert_ptr_nonnull(c.note);
    ck_assert_ptr_nonnull(strstr(c.note, "no positive items"));
    ck_assert_uint_eq(c.n_points, 3);
    for (size_t k = 0; k < c.n_points; k++) {
        ck_assert(isfinite(c.points[k].recall) && c.points[k].recall == 0);
        ck_assert(isfinite(c.points[k].f1) && c.points[k].f1 == 0);
        ck_assert_double_eq(c.points[k].precision, 0);
    }
    ck_assert_int_eq(sg_eval_for_precision(&c, 0.5), -1);
    ck_assert_int_eq(sg_eval_for_recall(&c, 0.5), -1);
    sg_eval_curve_free(&c);
}
END_TEST

START_TEST(all_positive)
{
    static const double s[] = {0.9, 0.1, 0.3};
    static const unsigned char l[] = {1, 1, 1};
    sg_eval_curve c;

    ck_assert_int_eq(sg_eval_curve_compute(&c, s, l, 3), 0);
    ck_assert(c.have_f1);
    ck_assert(!c.have_auc);
    ck_assert_ptr_nonnull(strstr(c.note, "no negative items"));
    ck_assert_double_eq_tol(c.ap, 1, EPS);
    ck_assert_double_eq_tol(c.best_f1, 1, EPS);
    ck_assert_double_eq(c.best_threshold, 0.1);
    for (size_t k = 0; k < c.n_points; k++)
        ck_assert(isfinite(c.points[k].fpr) && c.points[k].fpr == 0);
    sg_eval_curve_free(&c);
}
END_TEST

START_TEST(empty_and_bad)
{
    static const double s[] = {0.5, NAN};
    static const unsigned char l[] = {1, 0};
    sg_eval_curve c;

    ck_assert_int_eq(sg_eval_curve_compute(&c, s, l, 0), 0);
    ck_assert_uint_eq(c.n_points, 0);
    ck_assert(!c.have_f1);
    ck_assert_ptr_nonnull(strstr(c.note, "no labelled items"));
    sg_eval_curve_free(&c);
    ck_assert_int_eq(sg_eval_curve_compute(&c, s, l, 2), -2);
    sg_eval_curve_free(&c);
    sg_eval_curve_free(NULL);
}
END_TEST

START_TEST(targets)
{
    sg_eval_curve c;

    ck_assert_int_eq(sg_eval_curve_compute(&c, s6, l6, 6), 0);
    ck_assert_int_eq(sg_eval_for_precision(&c, 0.75), 3); /* 0.6: P 3/4, R 1 */
    ck_assert_int_eq(sg_eval_for_precision(&c, 1.0), 1);  /* 0.8: P 1, R 2/3 */
    ck_assert_int_eq(sg_eval_for_precision(&c, 0.5), 5);
    ck_assert_int_eq(sg_eval_for_precision(&c, 1.01), -1);
    ck_assert_int_eq(sg_eval_for_recall(&c, 1.0), 3);
    ck_assert_int_eq(sg_eval_for_recall(&c, 0.5), 1);
    ck_assert_int_eq(sg_eval_for_recall(&c, 0.1), 0);
    ck_assert_int_eq(sg_eval_for_recall(&c, 1.5), -1);
    sg_eval_curve_free(&c);
}
END_TEST

START_TEST(confusion)
{
    static const unsigned char pred[] = {1, 1, 0, 0, 1};
    static const unsigned char lab[] = {1, 0, 1, 0, 1};
    sg_eval_confusion m = sg_eval_confusion_of(pred, lab, 5);
    sg_eval_confusion z = {0, 0, 0, 0};

    ck_assert_int_eq(m.tp, 2);
    ck_assert_int_eq(m.fp, 1);
    ck_assert_int_eq(m.fn, 1);
    ck_assert_int_eq(m.tn, 1);
    ck_assert_double_eq_tol(sg_eval_precision(m), 2.0 / 3, EPS);
    ck_assert_double_eq_tol(sg_eval_recall(m), 2.0 / 3, EPS);
    ck_assert_double_eq_tol(sg_eval_f1(m), 2.0 / 3, EPS);
    ck_assert_double_eq(sg_eval_precision(z), 0);
    ck_assert_double_eq(sg_eval_recall(z), 0);
    ck_assert_double_eq(sg_eval_f1(z), 0);
}
END_TEST

START_TEST(threshold_text)
{
    char buf[40];
    static const double v[] = {0.5, 0.1 + 0.2, 1.0 / 3, 1e-5, 0.0, 1.0, 0.73105857863000490};

    ck_assert_str_eq(sg_eval_format_threshold(0.5, buf, sizeof buf), "0.5");
    ck_assert_str_eq(sg_eval_format_threshold(0.1 + 0.2, buf, sizeof buf), "0.30000000000000004");
    ck_assert_str_eq(sg_eval_format_threshold(0.25, buf, sizeof buf), "0.25");
    ck_assert_str_eq(sg_eval_format_threshold(1.0, buf, sizeof buf), "1");
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        sg_eval_format_threshold(v[i], buf, sizeof buf);
        ck_assert_double_eq(strtod(buf, NULL), v[i]);
        ck_assert_uint_eq(strspn(buf, "0123456789.eE+-"), strlen(buf));
    }
}
END_TEST

Suite *evalstats_suite(void)
{
    Suite *s = suite_create("evalstats");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, known_curve);
    tcase_add_test(tc, order_independent);
    tcase_add_test(tc, ties_move_together);
    tcase_add_test(tc, f1_tie_takes_higher_threshold);
    tcase_add_test(tc, all_negative);
    tcase_add_test(tc, all_positive);
    tcase_add_test(tc, empty_and_bad);
    tcase_add_test(tc, targets);
    tcase_add_test(tc, confusion);
    tcase_add_test(tc, threshold_text);
    suite_add_tcase(s, tc);
    return s;
}
