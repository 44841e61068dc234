/* evalstats.c: precision-recall and ROC figures of labelled scores (see evalstats.h). */
#include "evalstats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scored {
    double score;
    unsigned char label;
};

/* Highest score first. */
static int by_score_desc(const void *a, const void *b)
{
    double x = ((const struct scored *)a)->score;
    double y = ((const struct scored *)b)->score;

    return (x < y) - (x > y);
}

static double ratio(long long a, long long b)
{
    return b > 0 ? (double)a / (double)b : 0.0;
}

/* The points of the sorted items v[0..n): one per distinct score, counts cumulative. */
static size_t fill_points(sg_eval_curve *c, const struct scored *v, size_t n)
{
    long long tp = 0;
    long long fp = 0;
    size_t m = 0;

    for (size_t i = 0; i < n; i++) {
        if (v[i].label)
            tp++;
        else
            fp++;
        if (i + 1 < n && v[i + 1].score == v[i].score)
            continue; /* a tie: the whole group crosses the threshold together */
        sg_eval_point *p = &c->points[m++];

        p->threshold = v[i].score;
        p->tp = tp;
        p->fp = fp;
        p->precision = ratio(tp, tp + fp);
        p->recall = ratio(tp, (long long)c->n_pos);
        /* 2 TP / (2 TP + FP + FN) with FN = P - TP */
        p->f1 = c->n_pos ? 2.0 * (double)tp / (double)(tp + fp + (long long)c->n_pos) : 0.0;
        p->fpr = ratio(fp, (long long)c->n_neg);
    }
    return m;
}

/* F1 optimum, AP and ROC AUC over the points. */
static void summarise(sg_eval_curve *c)
{
    double prev_recall = 0.0;
    double prev_fpr = 0.0;
    double prev_tpr = 0.0;

    c->have_f1 = c->n_pos > 0;
    c->have_auc = c->n_pos > 0 && c->n_neg > 0;
    if (c->n == 0)
        c->note = "no labelled items: every figure is undefined";
    else if (c->n_pos == 0)
        c->note = "no positive items: recall, F1, AU-PRC and ROC AUC are undefined";
    else if (c->n_neg == 0)
        c->note = "no negative items: ROC AUC is undefined";
    for (size_t k = 0; k < c->n_points; k++) {
        const sg_eval_point *p = &c->points[k];

        /* Strictly greater: on equal F1 the first, highest threshold stays (fewer flags). */
        if (c->have_f1 && (k == 0 || p->f1 > c->best_f1)) {
            c->best = k;
            c->best_f1 = p->f1;
            c->best_threshold = p->threshold;
        }
        if (c->have_f1) {
            c->ap += (p->recall - prev_recall) * p->precision;
            prev_recall = p->recall;
        }
        if (c->have_auc) {
            c->roc_auc += (p->fpr - prev_fpr) * (p->recall + prev_tpr) / 2.0;
            prev_fpr = p->fpr;
            prev_tpr = p->recall;
        }
    }
}

int sg_eval_curve_compute(sg_eval_curve *out, const double *scores, const unsigned char *labels,
                          size_t n)
{
    struct scored *v = NULL;

    memset(out, 0, sizeof *out);
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(scores[i]))
            return -2;
        if (labels[i])
            out->n_pos++;
    }
    out->n_neg = n - out->n_pos;
    if (n > 0) {
        v = malloc(n * sizeof *v);
        out->points = malloc(n * sizeof *out->points);
        if (!v || !out->points) {
            free(v);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            v[i].score = scores[i];
            v[i].label = labels[i] ? 1 : 0;
        }
        qsort(v, n, sizeof *v, by_score_desc);
        out->n_points = fill_points(out, v, n);
        free(v);
    }
    summarise(out);
    return 0;
}

void sg_eval_curve_free(sg_eval_curve *c)
{
    if (!c)
        return;
    free(c->points);
    c->points = NULL;
    c->n_points = 0;
}

sg_eval_confusion sg_eval_confusion_of(const unsigned char *pred, const unsigned char *labels,
                                       size_t n)
{
    sg_eval_confusion m = {0, 0, 0, 0};

    for (size_t i = 0; i < n; i++) {
        if (pred[i] && labels[i])
            m.tp++;
        else if (pred[i])
            m.fp++;
        else if (labels[i])
            m.fn++;
        else
            m.tn++;
    }
    return m;
}

sg_eval_confusion sg_eval_confusion_at(const sg_eval_curve *c, size_t i)
{
    sg_eval_confusion m = {0, 0, 0, 0};

    if (i < c->n_points) {
        m.tp = c->points[i].tp;
        m.fp = c->points[i].fp;
        m.fn = (long long)c->n_pos - m.tp;
        m.tn = (long long)c->n_neg - m.fp;
    }
    return m;
}

double sg_eval_precision(sg_eval_confusion m)
{
    return ratio(m.tp, m.tp + m.fp);
}

double sg_eval_recall(sg_eval_confusion m)
{
    return ratio(m.tp, m.tp + m.fn);
}

double sg_eval_f1(sg_eval_confusion m)
{
    return ratio(2 * m.tp, 2 * m.tp + m.fp + m.fn);
}

long sg_eval_for_precision(const sg_eval_curve *c, double p)
{
    long found = -1;

    if (!c->have_f1)
        return -1;
    /* Thresholds fall as k rises: the last point that reaches p has the lowest threshold. */
    for (size_t k = 0; k < c->n_points; k++)
        if (c->points[k].precision >= p)
            found = (long)k;
    return found;
}

long sg_eval_for_recall(const sg_eval_curve *c, double r)
{
    if (!c->have_f1)
        return -1;
    /* Recall only grows as k rises: the first point that reaches r has the highest threshold. */
    for (size_t k = 0; k < c->n_points; k++)
        if (c->points[k].recall >= r)
            return (long)k;
    return -1;
}

char *sg_eval_format_threshold(double t, char *buf, size_t len)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, t);
        if (strtod(buf, NULL) == t)
            break;
    }
    /* "%g" prints 1e-05 for small values; the policy loader accepts that (digits, '.', e, -). */
    return buf;
}
