#ifndef SG_CTL_EVAL_H
#define SG_CTL_EVAL_H
/*
 * eval.h: what `shieldctl eval` (ctl_eval.c) collects and hands to its outputs: one series of
 * labelled scores per policy plus the overall verdict, their curves (evalstats.h), and the
 * threshold chosen for each. eval_out.c prints the table and writes the JSON report and the
 * plots; eval_write.c rewrites the policy files.
 */

#include <stddef.h>

#include <jansson.h>

#include "evalstats.h"

struct eval_series {
    char *name; /* policy name, or "overall" */
    int overall;
    double *scores; /* n labelled items: score, label, current verdict */
    unsigned char *labels;
    unsigned char *pred;
    size_t n, cap;
    double threshold; /* the current threshold; NaN when unknown / not one */
    sg_eval_curve curve;
    sg_eval_confusion current; /* at the current verdicts */
    long choice;               /* the point to write (optimal F1 or a target), -1: none */
    const char *choice_why;    /* "optimal F1", "target precision", "overall", or why none */
    double chosen;             /* the threshold to write, NaN: none (the point's, or the
                                  overall one for a policy without labels of its own) */
};

struct eval_data {
    struct eval_series *pol; /* in the order the policies first appear in the results */
    size_t n_pol;
    struct eval_series overall;
    json_t *items;           /* the per-item part of the report */
    json_t *unscored;        /* {name: count}: labelled policies that were not scored */
    long long n_items;       /* input items */
    long long n_errors;      /* items that scan could not score */
    long long n_bad;         /* items skipped for a bad label */
    double target_precision; /* NaN: not asked */
    double target_recall;
};

/* The terminal table of every series to f. */
void eval_print_table(FILE *f, const struct eval_data *d);

/*
 * The JSON report: every figure, the curves and the per-item scores. `meta` (borrowed) is
 * merged in at the top. New reference, NULL when out of memory.
 */
json_t *eval_report_json(const struct eval_data *d, json_t *meta);

/*
 * The plots into `path`: SVG for *.svg; for *.png the SVG is converted with rsvg-convert (or
 * ImageMagick's convert). Returns 0, or -1 after printing a message (the SVG is then left
 * as PATH with .svg in place of .png, when it could be written).
 */
int eval_write_plot(const char *path, const char *title, const struct eval_data *d);

/*
 * Rewrite the threshold line of each policy file in `dir` whose policy has a choice, then load
 * `dir` again to check it (restoring every file on failure). Returns 0, or -1 after printing.
 */
int eval_write_thresholds(const char *dir, const struct eval_data *d);

#endif /* SG_CTL_EVAL_H */
