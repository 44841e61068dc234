/* eval_out.c: the outputs of `shieldctl eval`: table, JSON report, plots (see eval.h). */
#include "eval.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evalsvg.h"

/* ---- Table ------------------------------------------------------------------------------- */

static void cell(FILE *f, int ok, double v, int width)
{
    if (ok)
        fprintf(f, " %*.*f", width, 3, v);
    else
        fprintf(f, " %*s", width, "-");
}

static void table_row(FILE *f, const struct eval_series *s)
{
    const sg_eval_curve *c = &s->curve;
    sg_eval_confusion b = sg_eval_confusion_at(c, c->best);
    char thr[32];

    fprintf(f, "%-14s %6zu %6zu", s->name, c->n, c->n_pos);
    cell(f, c->have_f1, c->ap, 7);
    cell(f, c->have_auc, c->roc_auc, 7);
    cell(f, c->have_f1, c->best_f1, 6);
    if (c->have_f1)
        fprintf(f, " %8.4f %6lld %5lld %5lld %6lld", c->best_threshold, b.tp, b.fp, b.fn, b.tn);
    else
        fprintf(f, " %8s %6s %5s %5s %6s", "-", "-", "-", "-", "-");
    cell(f, c->n_pos > 0, sg_eval_f1(s->current), 6);
    if (isfinite(s->threshold))
        snprintf(thr, sizeof thr, "%.4f", s->threshold);
    else
        snprintf(thr, sizeof thr, "%s", s->overall ? "(each)" : "?");
    fprintf(f, " %8s %6lld %5lld %5lld %6lld\n", thr, s->current.tp, s->current.fp, s->current.fn,
            s->current.tn);
}

/* The point chosen for --target-precision / --target-recall, per series. */
static void print_targets(FILE *f, const struct eval_data *d)
{
    int prec = !isnan(d->target_precision);

    fprintf(f, "at the target %s >= %g:\n", prec ? "precision" : "recall",
            prec ? d->target_precision : d->target_recall);
    for (size_t i = 0; i < d->n_pol + 1; i++) {
        const struct eval_series *s = i < d->n_pol ? &d->pol[i] : &d->overall;
        sg_eval_confusion m;

        if (s->n == 0)
            continue;
        if (s->choice < 0) {
            fprintf(f, "  %-14s %s\n", s->name, s->choice_why);
            continue;
        }
        m = sg_eval_confusion_at(&s->curve, (size_t)s->choice);
        fprintf(f,
                "  %-14s threshold %.4f  precision %.3f  recall %.3f  F1 %.3f  TP %lld FP %lld "
                "FN %lld TN %lld\n",
                s->name, s->chosen, sg_eval_precision(m), sg_eval_recall(m), sg_eval_f1(m), m.tp,
                m.fp, m.fn, m.tn);
    }
}

void eval_print_table(FILE *f, const struct eval_data *d)
{
    fprintf(f, "%-14s %6s %6s %7s %7s | %-36s | %s\n", "", "", "", "", "",
            "at the optimal-F1 threshold", "at the current thresholds");
    fprintf(f, "%-14s %6s %6s %7s %7s %6s %8s %6s %5s %5s %6s %6s %8s %6s %5s %5s %6s\n", "policy",
            "items", "pos", "AU-PRC", "ROC-AUC", "F1", "thresh", "TP", "FP", "FN", "TN", "F1",
            "thresh", "TP", "FP", "FN", "TN");
    for (size_t i = 0; i < d->n_pol; i++)
        if (d->pol[i].n)
            table_row(f, &d->pol[i]);
    table_row(f, &d->overall);
    for (size_t i = 0; i < d->n_pol; i++)
        if (d->pol[i].curve.note && d->pol[i].n)
            fprintf(f, "note: %s: %s\n", d->pol[i].name, d->pol[i].curve.note);
    if (d->overall.curve.note)
        fprintf(f, "note: overall: %s\n", d->overall.curve.note);
    if (!isnan(d->target_precision) || !isnan(d->target_recall))
        print_targets(f, d);
    fprintf(f, "%lld items, %lld not scored (errors), %lld skipped for a bad label\n", d->n_items,
            d->n_errors, d->n_bad);
}

/* ---- JSON report ------------------------------------------------------------------------- */

static json_t *num_or_null(int ok, double v)
{
    return ok ? json_real(v) : json_null();
}

static json_t *operating_point(sg_eval_confusion m, double threshold)
{
    return json_pack("{s:o, s:f, s:f, s:f, s:I, s:I, s:I, s:I}", "threshold",
                     isfinite(threshold) ? json_real(threshold) : json_null(), "precision",
                     sg_eval_precision(m), "recall", sg_eval_recall(m), "f1", sg_eval_f1(m), "tp",
                     (json_int_t)m.tp, "fp", (json_int_t)m.fp, "fn", (json_int_t)m.fn, "tn",
                     (json_int_t)m.tn);
}

static json_t *series_json(const struct eval_series *s)
{
    const sg_eval_curve *c = &s->curve;
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:o, s:o, s:o}", "policy", s->name, "items",
                          (json_int_t)c->n, "positives", (json_int_t)c->n_pos, "negatives",
                          (json_int_t)c->n_neg, "average_precision", num_or_null(c->have_f1, c->ap),
                          "roc_auc", num_or_null(c->have_auc, c->roc_auc), "current",
                          operating_point(s->current, s->threshold));
    json_t *curve = json_array();

    if (!o || !curve) {
        json_decref(o);
        json_decref(curve);
        return NULL;
    }
    json_object_set_new(o, "optimal_f1",
                        c->have_f1
                            ? operating_point(sg_eval_confusion_at(c, c->best), c->best_threshold)
                            : json_null());
    if (s->choice >= 0)
        json_object_set_new(o, "chosen",
                            operating_point(sg_eval_confusion_at(c, (size_t)s->choice), s->chosen));
    json_object_set_new(o, "chosen_threshold",
                        isfinite(s->chosen) ? json_real(s->chosen) : json_null());
    json_object_set_new(o, "chosen_by", s->choice_why ? json_string(s->choice_why) : json_null());
    json_object_set_new(o, "note", c->note ? json_string(c->note) : json_null());
    for (size_t k = 0; k < c->n_points; k++) {
        const sg_eval_point *p = &c->points[k];

        json_array_append_new(curve, json_pack("{s:f, s:I, s:I, s:f, s:f, s:f, s:f}", "threshold",
                                               p->threshold, "tp", (json_int_t)p->tp, "fp",
                                               (json_int_t)p->fp, "precision", p->precision,
                                               "recall", p->recall, "f1", p->f1, "fpr", p->fpr));
    }
    json_object_set_new(o, "curve", curve);
    return o;
}

json_t *eval_report_json(const struct eval_data *d, json_t *meta)
{
    json_t *root = json_object();
    json_t *pols = json_array();

    if (!root || !pols) {
        json_decref(root);
        json_decref(pols);
        return NULL;
    }
    json_object_update(root, meta);
    json_object_set_new(root, "items", json_integer(d->n_items));
    json_object_set_new(root, "errors", json_integer(d->n_errors));
    json_object_set_new(root, "bad_labels", json_integer(d->n_bad));
    if (!isnan(d->target_precision))
        json_object_set_new(root, "target_precision", json_real(d->target_precision));
    if (!isnan(d->target_recall))
        json_object_set_new(root, "target_recall", json_real(d->target_recall));
    for (size_t i = 0; i < d->n_pol; i++)
        json_array_append_new(pols, series_json(&d->pol[i]));
    json_object_set_new(root, "policies", pols);
    json_object_set_new(root, "overall", series_json(&d->overall));
    json_object_set(root, "item_scores", d->items);
    return root;
}

/* ---- Plots ------------------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t k = strlen(suffix);

    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int write_svg(const char *path, const char *title, const struct eval_data *d)
{
    sg_evalsvg_series s[257];
    size_t n = 0;
    FILE *f;
    int rc;

    for (size_t i = 0; i < d->n_pol + 1 && n < 256; i++) {
        const struct eval_series *e = i < d->n_pol ? &d->pol[i] : &d->overall;

        if (e->n == 0)
            continue;
        s[n].name = e->name;
        s[n].overall = e->overall;
        s[n].curve = &e->curve;
        s[n].scores = e->scores;
        s[n].labels = e->labels;
        s[n].n = e->n;
        s[n].have_current = 1;
        s[n].current = e->current;
        s[n].current_threshold = e->threshold;
        n++;
    }
    f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "shieldctl eval: %s: %s\n", path, strerror(errno));
        return -1;
    }
    rc = sg_evalsvg_write(f, title, s, n);
    if (fclose(f) != 0 || rc < 0) {
        fprintf(stderr, "shieldctl eval: %s: write error: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* 1 when `prog` is an executable in $PATH. */
static int in_path(const char *prog)
{
    const char *p = getenv("PATH");
    char buf[4096];

    while (p && *p) {
        size_t n = strcspn(p, ":");

        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, prog);
        if (access(buf, X_OK) == 0)
            return 1;
        p += n + (p[n] == ':');
    }
    return 0;
}

/* Run argv (no shell) and wait. Returns its exit status, or -1 when it could not run. */
static int run(char *const argv[])
{
    pid_t pid = fork();
    int st;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* 1 when `path` starts with the PNG signature. */
static int is_png(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char b[8];
    FILE *f = fopen(path, "rb");
    int ok = f && fread(b, 1, 8, f) == 8 && memcmp(b, sig, 8) == 0;

    if (f)
        fclose(f);
    return ok;
}

int eval_write_plot(const char *path, const char *title, const struct eval_data *d)
{
    char *svg;
    int rc = -1;

    if (!ends_with(path, ".png"))
        return write_svg(path, title, d);
    svg = malloc(strlen(path) + 1);
    if (!svg)
        return -1;
    /* The SVG goes next to the PNG (same name, .svg): it is kept whether or not converting works.
     */
    strcpy(svg, path);
    strcpy(svg + strlen(svg) - 4, ".svg");
    if (write_svg(svg, title, d) < 0)
        goto out;
    if (in_path("rsvg-convert")) {
        char *argv[] = {"rsvg-convert", "-f", "png", "-b", "white", "-o", (char *)path, svg, NULL};

        rc = run(argv);
    } else if (in_path("convert")) {
        char *argv[] = {"convert", svg, (char *)path, NULL};

        rc = run(argv);
    } else {
        fprintf(stderr,
                "shieldctl eval: %s: no SVG-to-PNG converter (install librsvg2-bin for "
                "rsvg-convert, or ImageMagick); the plot is in %s\n",
                path, svg);
        goto out;
    }
    if (rc != 0 || !is_png(path)) {
        fprintf(stderr, "shieldctl eval: %s: converting %s to PNG failed (status %d)\n", path, svg,
                rc);
        rc = -1;
        goto out;
    }
    rc = 0;
out:
    free(svg);
    return rc;
}
