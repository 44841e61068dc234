/* evalsvg.c: the SVG plots of `shieldctl eval` (see evalsvg.h). */
#include "evalsvg.h"

#include <math.h>

#define WIDTH 960
#define PANEL_W 450
#define PANEL_H 380
#define HIST_W 300
#define HIST_H 200
#define HIST_COLS 3
#define HIST_BINS 20
#define TOP 50 /* below the title */
#define LEGEND_H 40
#define MIN_STEP 0.5 /* pixels: closer curve points are merged */

/* A plot area in pixels, mapping x in [0, 1] and y in [0, ymax]. */
struct area {
    double x, y, w, h;
    double ymax;
};

static const char *const palette[] = {
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
};

static const char *color(const sg_evalsvg_series *s, size_t i)
{
    return s->overall ? "#000000" : palette[i % (sizeof palette / sizeof palette[0])];
}

static double px(const struct area *a, double x)
{
    return a->x + x * a->w;
}

static double py(const struct area *a, double y)
{
    return a->y + a->h - (a->ymax > 0 ? y / a->ymax : 0) * a->h;
}

/* Text with &, <, > and " escaped. */
static void put_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* Frame, grid, ticks and axis labels of an area whose x runs over [0, 1]. */
static void axes(FILE *f, const struct area *a, const char *title, const char *xlabel,
                 const char *ylabel)
{
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#888\"/>\n",
            a->x, a->y, a->w, a->h);
    for (int i = 0; i <= 5; i++) {
        double t = i / 5.0;
        double yv = t * a->ymax;

        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                px(a, t), a->y, px(a, t), a->y + a->h);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                a->x, py(a, yv), a->x + a->w, py(a, yv));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.1f</text>\n", px(a, t),
                a->y + a->h + 14, t);
        if (a->ymax == 1.0)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", a->x - 4,
                    py(a, yv) + 4, yv);
        else
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n", a->x - 4,
                    py(a, yv) + 4, yv);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-weight=\"bold\">",
            a->x + a->w / 2, a->y - 8);
    put_escaped(f, title);
    fprintf(f, "</text>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
            a->x + a->w / 2, a->y + a->h + 30, xlabel);
    fprintf(f,
            "<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\">"
            "%s</text>\n",
            a->x - 36, a->y + a->h / 2, ylabel);
}

/* The curve of a series: (recall, precision) when `roc` is 0, else (FPR, TPR) from (0, 0). */
static void curve(FILE *f, const struct area *a, const sg_evalsvg_series *s, size_t i, int roc)
{
    const sg_eval_curve *c = s->curve;
    double lx = -1e9;
    double ly = -1e9;

    fprintf(f, "<polyline class=\"%s\" data-policy=\"", roc ? "roc-curve" : "pr-curve");
    put_escaped(f, s->name);
    fprintf(f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s points=\"", color(s, i),
            s->overall ? "2" : "1.5", s->overall ? " stroke-dasharray=\"6 3\"" : "");
    if (roc)
        fprintf(f, "%.1f,%.1f", px(a, 0), py(a, 0));
    else if (c->n_points)
        fprintf(f, "%.1f,%.1f", px(a, 0), py(a, c->points[0].precision));
    for (size_t k = 0; k < c->n_points; k++) {
        const sg_eval_point *p = &c->points[k];
        double x = px(a, roc ? p->fpr : p->recall);
        double y = py(a, roc ? p->recall : p->precision);

        /* Keep the last point; drop those that would land within MIN_STEP of the previous. */
        if (k + 1 < c->n_points && fabs(x - lx) < MIN_STEP && fabs(y - ly) < MIN_STEP)
            continue;
        fprintf(f, " %.1f,%.1f", x, y);
        lx = x;
        ly = y;
    }
    fputs("\"/>\n", f);
}

/* The optimal-F1 circle and the current square of a series at (x, y) in [0, 1]^2. */
static void marker(FILE *f, const struct area *a, const sg_evalsvg_series *s, size_t i, int current,
                   double x, double y)
{
    if (current)
        fprintf(f, "<rect class=\"current\" data-policy=\"");
    else
        fprintf(f, "<circle class=\"optimal\" data-policy=\"");
    put_escaped(f, s->name);
    if (current)
        fprintf(f,
                "\" x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"white\" "
                "stroke=\"%s\" stroke-width=\"2\"/>\n",
                px(a, x) - 4, py(a, y) - 4, color(s, i));
    else
        fprintf(f, "\" cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\"/>\n", px(a, x), py(a, y),
                color(s, i));
}

static void markers(FILE *f, const struct area *a, const sg_evalsvg_series *s, size_t i, int roc)
{
    const sg_eval_curve *c = s->curve;

    if (!c->have_f1 || (roc && !c->have_auc))
        return;
    {
        const sg_eval_point *b = &c->points[c->best];

        marker(f, a, s, i, 0, roc ? b->fpr : b->recall, roc ? b->recall : b->precision);
    }
    if (s->have_current) {
        sg_eval_confusion m = s->current;
        double fpr = m.fp + m.tn ? (double)m.fp / (double)(m.fp + m.tn) : 0;

        marker(f, a, s, i, 1, roc ? fpr : sg_eval_recall(m),
               roc ? sg_eval_recall(m) : sg_eval_precision(m));
    }
}

/* The precision-recall panel (roc 0) or the ROC panel (roc 1) at (x, y). */
static void panel(FILE *f, double x, double y, const sg_evalsvg_series *s, size_t n, int roc)
{
    struct area a = {x + 55, y + 25, PANEL_W - 70, PANEL_H - 70, 1.0};

    axes(f, &a, roc ? "ROC" : "Precision-recall", roc ? "false positive rate" : "recall",
         roc ? "true positive rate" : "precision");
    if (roc)
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#bbb\" "
                "stroke-dasharray=\"3 3\"/>\n",
                px(&a, 0), py(&a, 0), px(&a, 1), py(&a, 1));
    for (size_t i = 0; i < n; i++) {
        if (!s[i].curve->have_f1 || (roc && !s[i].curve->have_auc))
            continue; /* undefined: the legend says why */
        curve(f, &a, &s[i], i, roc);
        markers(f, &a, &s[i], i, roc);
    }
}

static void legend(FILE *f, double y, const sg_evalsvg_series *s, size_t n)
{
    double x = 20;

    for (size_t i = 0; i < n; i++) {
        const sg_eval_curve *c = s[i].curve;

        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"2\"%s/>\n",
                x, y, x + 20, y, color(&s[i], i), s[i].overall ? " stroke-dasharray=\"6 3\"" : "");
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x + 24, y + 4);
        put_escaped(f, s[i].name);
        if (c->have_f1)
            fprintf(f, " (AP %.3f, F1 %.3f)", c->ap, c->best_f1);
        else
            fputs(" (no positives)", f);
        fputs("</text>\n", f);
        x += 230;
        if (x > WIDTH - 230) {
            x = 20;
            y += 16;
        }
    }
    fprintf(f,
            "<circle cx=\"%d\" cy=\"%.1f\" r=\"4.5\" fill=\"#555\"/>"
            "<text x=\"%d\" y=\"%.1f\">optimal F1</text>\n",
            26, y + 22, 36, y + 26);
    fprintf(f,
            "<rect x=\"%d\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"white\" stroke=\"#555\" "
            "stroke-width=\"2\"/><text x=\"%d\" y=\"%.1f\">current threshold</text>\n",
            136, y + 18, 150, y + 26);
}

/* A vertical threshold line in a histogram. */
static void vline(FILE *f, const struct area *a, double t, const char *cls, const char *dash)
{
    fprintf(f,
            "<line class=\"%s\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"#000\" stroke-dasharray=\"%s\"/>\n",
            cls, px(a, t), a->y, px(a, t), a->y + a->h, dash);
}

/* Score histogram of positives (red) and negatives (blue), as outlined steps. */
static void histogram(FILE *f, double x, double y, const sg_evalsvg_series *s)
{
    long long pos[HIST_BINS] = {0};
    long long neg[HIST_BINS] = {0};
    long long top = 1;
    struct area a;

    for (size_t k = 0; k < s->n; k++) {
        double v = s->scores[k] < 0 ? 0 : s->scores[k] > 1 ? 1 : s->scores[k];
        int b = (int)(v * HIST_BINS);

        if (b >= HIST_BINS)
            b = HIST_BINS - 1;
        if (s->labels[k])
            pos[b]++;
        else
            neg[b]++;
    }
    for (int b = 0; b < HIST_BINS; b++) {
        top = pos[b] > top ? pos[b] : top;
        top = neg[b] > top ? neg[b] : top;
    }
    /* Five whole-number tick steps. */
    top = (top + 4) / 5 * 5;
    a = (struct area){x + 50, y + 25, HIST_W - 65, HIST_H - 65, (double)top};
    fputs("<g class=\"histogram\" data-policy=\"", f);
    put_escaped(f, s->name);
    fputs("\">\n", f);
    axes(f, &a, s->name, "score", "items");
    for (int b = 0; b < HIST_BINS; b++) {
        double x0 = px(&a, (double)b / HIST_BINS);
        double w = a.w / HIST_BINS;

        if (neg[b])
            fprintf(f,
                    "<rect class=\"negatives\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                    "height=\"%.1f\" fill=\"#1f77b4\" fill-opacity=\"0.45\"/>\n",
                    x0, py(&a, (double)neg[b]), w, a.y + a.h - py(&a, (double)neg[b]));
        if (pos[b])
            fprintf(f,
                    "<rect class=\"positives\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                    "height=\"%.1f\" fill=\"#d62728\" fill-opacity=\"0.45\"/>\n",
                    x0, py(&a, (double)pos[b]), w, a.y + a.h - py(&a, (double)pos[b]));
    }
    if (s->curve->have_f1)
        vline(f, &a, s->curve->best_threshold, "optimal", "none");
    if (s->have_current && isfinite(s->current_threshold))
        vline(f, &a, s->current_threshold, "current", "4 3");
    fputs("</g>\n", f);
}

int sg_evalsvg_write(FILE *f, const char *title, const sg_evalsvg_series *s, size_t n)
{
    size_t rows = (n + HIST_COLS - 1) / HIST_COLS;
    double hist_y = TOP + PANEL_H + LEGEND_H + 16.0 * (double)((n + 3) / 4) + 10;
    double height = hist_y + (double)rows * HIST_H + 30;

    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%.0f\" "
            "viewBox=\"0 0 %d %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" "
            "font-size=\"11\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" "
            "font-weight=\"bold\">",
            WIDTH, height, WIDTH, height, WIDTH / 2);
    put_escaped(f, title);
    fputs("</text>\n", f);
    panel(f, 20, TOP, s, n, 0);
    panel(f, 20 + PANEL_W + 20, TOP, s, n, 1);
    legend(f, TOP + PANEL_H + 10, s, n);
    fprintf(f,
            "<text x=\"20\" y=\"%.1f\">Scores of positive (red) and negative (blue) items; "
            "solid line: optimal-F1 threshold, dashed: current threshold</text>\n",
            hist_y - 4);
    for (size_t i = 0; i < n; i++)
        histogram(f, 20 + (double)(i % HIST_COLS) * (HIST_W + 10),
                  hist_y + (double)(i / HIST_COLS) * HIST_H, &s[i]);
    fputs("</svg>\n", f);
    fflush(f);
    return ferror(f) ? -1 : 0;
}
