#ifndef SG_EVALSVG_H
#define SG_EVALSVG_H
/*
 * evalsvg.h: the plots of `shieldctl eval` as one self-contained SVG file, written by hand
 * (no plotting stack): a precision-recall panel and a ROC panel with one curve per series
 * (policy, and the overall verdict) and the current and optimal-F1 operating points marked,
 * then one histogram per series of the scores of positive and negative items with both
 * thresholds drawn.
 *
 * Every curve is a <polyline class="pr-curve"> or class="roc-curve" with data-policy="NAME";
 * markers are class="optimal" (circles) and class="current" (squares); each histogram is a
 * <g class="histogram" data-policy="NAME">, so tests and scripts can find them.
 */

#include <stddef.h>
#include <stdio.h>

#include "evalstats.h"

typedef struct sg_evalsvg_series {
    const char *name; /* policy name, or "overall" */
    int overall;      /* the overall verdict: drawn black and dashed */
    const sg_eval_curve *curve;
    const double *scores; /* n scores and 0/1 labels, for the histogram */
    const unsigned char *labels;
    size_t n;
    int have_current;          /* the current verdicts are known: */
    sg_eval_confusion current; /* their confusion matrix */
    double current_threshold;  /* NaN when there is no single one (the overall verdict) */
} sg_evalsvg_series;

/*
 * Write the SVG document for `n` series to `f`, titled `title` (escaped here). Returns 0, or -1
 * on a write error (errno from stdio).
 */
int sg_evalsvg_write(FILE *f, const char *title, const sg_evalsvg_series *s, size_t n);

#endif /* SG_EVALSVG_H */
