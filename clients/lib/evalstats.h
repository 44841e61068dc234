#ifndef SG_EVALSTATS_H
#define SG_EVALSTATS_H
/*
 * evalstats.h: the figures of `shieldctl eval` for one policy (or the overall verdict) from
 * labelled scores: precision, recall, F1 and false-positive rate at every distinct score, the
 * optimal-F1 threshold, average precision (AU-PRC) and ROC AUC, as scikit-learn defines them:
 *
 *   An item is predicted positive at threshold t when score >= t (the daemon's rule,
 *   probability >= threshold). The curve has one point per distinct score, highest first, with
 *   TP(t) and FP(t) counted over all items scoring >= t (ties move together).
 *   precision = TP / (TP + FP)          recall = TP / P          FPR = FP / N
 *   F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (TP + FP + P)
 *   AP = sum_k (R_k - R_{k-1}) P_k      over the points, R_{-1} = 0
 *        (sklearn.metrics.average_precision_score: no interpolation)
 *   ROC AUC = the trapezoids under (FPR, TPR) from (0, 0) (sklearn.metrics.roc_auc_score)
 *
 * Undefined figures are flagged, never divided by zero: with no positive items recall, F1, AP
 * and ROC AUC are undefined; with no negative items FPR and ROC AUC are.
 *
 *   sg_eval_curve c;
 *   if (sg_eval_curve_compute(&c, scores, labels, n) == 0 && c.have_f1)
 *       printf("F1 %.3f at %.3f\n", c.best_f1, c.best_threshold);
 *   sg_eval_curve_free(&c);
 */

#include <stddef.h>

typedef struct sg_eval_confusion {
    long long tp, fp, tn, fn;
} sg_eval_confusion;

typedef struct sg_eval_point {
    double threshold; /* a distinct score */
    long long tp, fp; /* items scoring >= threshold */
    double precision;
    double recall; /* 0 when there are no positives (see have_f1) */
    double f1;     /* 0 when there are no positives */
    double fpr;    /* 0 when there are no negatives (see have_auc) */
} sg_eval_point;

typedef struct sg_eval_curve {
    size_t n, n_pos, n_neg;
    sg_eval_point *points; /* n_points, highest threshold first; malloc'd */
    size_t n_points;
    int have_f1; /* some positives: recall, F1, the optimum and AP are defined */
    size_t best; /* index of the optimal-F1 point (the highest threshold on ties) */
    double best_f1;
    double best_threshold;
    double ap;    /* average precision, when have_f1 */
    int have_auc; /* positives and negatives both */
    double roc_auc;
    const char *note; /* static text: why figures are undefined, or NULL */
} sg_eval_curve;

/*
 * The curve of n items: scores[i] (finite) and labels[i] (0 or 1). *out is filled (free its
 * points with sg_eval_curve_free(), also after a failure). n may be 0. Returns 0, -1 when out of
 * memory, -2 for a score that is not finite.
 */
int sg_eval_curve_compute(sg_eval_curve *out, const double *scores, const unsigned char *labels,
                          size_t n);
void sg_eval_curve_free(sg_eval_curve *c);

/* The confusion matrix of predictions pred[i] (0/1) against labels[i]. */
sg_eval_confusion sg_eval_confusion_of(const unsigned char *pred, const unsigned char *labels,
                                       size_t n);
/* The confusion matrix at point i of c. */
sg_eval_confusion sg_eval_confusion_at(const sg_eval_curve *c, size_t i);

/* Precision, recall and F1 of a confusion matrix; 0 where the denominator is 0. */
double sg_eval_precision(sg_eval_confusion m);
double sg_eval_recall(sg_eval_confusion m);
double sg_eval_f1(sg_eval_confusion m);

/*
 * The point for a target: the lowest threshold whose precision is >= p (the most recall at
 * that precision), or the highest threshold whose recall is >= r (the most precision at that
 * recall). Returns its index, or -1 when no point reaches the target (or recall is undefined).
 */
long sg_eval_for_precision(const sg_eval_curve *c, double p);
long sg_eval_for_recall(const sg_eval_curve *c, double r);

/*
 * The shortest decimal text of t in [0, 1] that strtod() reads back as exactly t (so a policy
 * threshold written with it flags exactly the same items), into buf. Returns buf.
 */
char *sg_eval_format_threshold(double t, char *buf, size_t len);

#endif /* SG_EVALSTATS_H */
