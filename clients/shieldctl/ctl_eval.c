/*
 * ctl_eval.c: `shieldctl eval`: score a labelled data set and measure each policy (and the
 * overall verdict) against the labels: precision-recall and ROC curves, the optimal-F1
 * threshold, AU-PRC, ROC AUC, confusion matrices; a table, a JSON report, SVG/PNG plots, and
 * optionally the chosen thresholds written into the policy files.
 *
 * Scoring is `shieldctl scan` itself (ctl_scan(), same flags, readers, concurrency, progress
 * bar and resume) into a scores file; then the input is read again with scan's reader, which
 * carries the label fields along (sg_scan_opts.extra_fields), and zipped with the scores file
 * line by line: scan writes exactly one line per input item, in input order, with its id.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "eval.h"
#include "remote.h"
#include "scan_opts.h"
#include "scan.h"

int ctl_eval(int argc, char **argv);
int ctl_scan(int argc, char **argv); /* ctl_scan.c: scoring is scan's */

const char ctl_eval_help[] = "measure policies on a labelled data set: PR/ROC curves, "
                             "thresholds, plots";

#define MAX_ARGS 512
#define MAX_BAD_SHOWN 10

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shieldctl eval --in FILE [--out REPORT.json] [--plot FILE.svg|FILE.png]\n"
            "                      [--scores FILE] [--write-thresholds DIR]\n"
            "                      [--target-precision P | --target-recall R]\n"
            "                      [--label-field label] [--labels-field labels]\n"
            "                      [scan's flags: --format, --field, --response-field,\n"
            "                      --id-field, --policy NAME..., --model PATH [--policies DIR]\n"
            "                      [--threads N] [--precision P] | --socket PATH | --url URL,\n"
            "                      --concurrency N, --timeout MS]\n"
            "\n"
            "Score every item of --in like `shieldctl scan` and compare with its labels:\n"
            "  \"labels\": {\"hate\": 1, \"sexual\": false, ...}   per policy (CSV: columns\n"
            "                                               labels.hate, labels.sexual, ...)\n"
            "  \"label\": 1                                   harmful or not: compared with the\n"
            "                                               flagged verdict, whose score is the\n"
            "                                               maximum over the policies\n"
            "A label is true/false, 0/1 or \"0\"/\"1\". For each policy and overall: precision,\n"
            "recall and F1 at every distinct score, the optimal-F1 threshold, AU-PRC (average\n"
            "precision), ROC AUC, confusion matrices at the current and optimal thresholds.\n"
            "\n"
            "  --out FILE            the full report as JSON (curves, per-item scores)\n"
            "  --plot FILE           PR and ROC curves, score histograms: SVG, or PNG when\n"
            "                        rsvg-convert or ImageMagick is installed\n"
            "  --scores FILE         the scan output (default: REPORT.json.scores.jsonl, or a\n"
            "                        temporary file without --out); running again resumes it,\n"
            "                        and a complete one is not scored again\n"
            "  --write-thresholds DIR  set the threshold: line of each policy file in DIR to\n"
            "                        the optimal-F1 threshold (or the --target-* one); reload\n"
            "                        the daemon (SIGHUP) to apply\n"
            "  --target-precision P  instead: the lowest threshold with precision >= P\n"
            "  --target-recall R     instead: the highest threshold with recall >= R\n");
}

struct eval_args {
    const char *in;
    const char *out;
    const char *plot;
    const char *scores;
    const char *write_dir;
    const char *label_field;
    const char *labels_field;
    const char *model;
    const char *policies;
    const char *sock;
    const char *url;
    int timeout_ms;
    sg_scan_opts so;
    double target_precision;
    double target_recall;
    char *scan_argv[MAX_ARGS];
    int scan_argc;
};

/* Append "--NAME" (copied; freed by free_args) and its value (borrowed) to scan's argv. */
static int push(struct eval_args *a, const char *name, const char *val)
{
    char *flag;

    if (a->scan_argc + 2 >= MAX_ARGS) {
        fprintf(stderr, "shieldctl eval: too many arguments\n");
        return -1;
    }
    flag = malloc(strlen(name) + 3);
    if (!flag) {
        fprintf(stderr, "shieldctl eval: out of memory\n");
        return -1;
    }
    sprintf(flag, "--%s", name);
    a->scan_argv[a->scan_argc++] = flag;
    a->scan_argv[a->scan_argc++] = (char *)val;
    return 0;
}

static void free_args(struct eval_args *a)
{
    /* argv[0] is the literal "scan"; then flag, value pairs. */
    for (int i = 1; i < a->scan_argc; i += 2)
        free(a->scan_argv[i]);
}

static int parse_target(const char *opt, const char *s, double *out)
{
    if (ctl_parse_double("eval", opt, s, out) < 0)
        return -1;
    if (!(*out >= 0.0 && *out <= 1.0)) {
        fprintf(stderr, "shieldctl eval: %s wants a number in [0, 1], not '%s'\n", opt, s);
        return -1;
    }
    return 0;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct eval_args *a)
{
    static const struct option longopts[] = {
        CTL_SCAN_LONGOPTS, /* 'i' and 'o' are eval's own; the rest go on to scan */
        {"plot", required_argument, NULL, 'G'},
        {"scores", required_argument, NULL, 'C'},
        {"write-thresholds", required_argument, NULL, 'W'},
        {"target-precision", required_argument, NULL, 'R'},
        {"target-recall", required_argument, NULL, 'E'},
        {"label-field", required_argument, NULL, 'l'},
        {"labels-field", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *format = NULL;
    int opt;
    int idx;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
        switch (opt) {
        case 'i':
            a->in = optarg;
            break;
        case 'o':
            a->out = optarg;
            break;
        case 'G':
            a->plot = optarg;
            break;
        case 'C':
            a->scores = optarg;
            break;
        case 'W':
            a->write_dir = optarg;
            break;
        case 'l':
            a->label_field = optarg;
            break;
        case 'L':
            a->labels_field = optarg;
            break;
        case 'R':
            if (parse_target("--target-precision", optarg, &a->target_precision) < 0)
                return 2;
            break;
        case 'E':
            if (parse_target("--target-recall", optarg, &a->target_recall) < 0)
                return 2;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case '?':
            usage(stderr);
            return 2;
        default:
            /* One of scan's flags: remembered where eval needs it, passed on as given. */
            if (opt == 'F')
                format = optarg;
            if (opt == 'f')
                a->so.field = optarg;
            if (opt == 'r')
                a->so.response_field = optarg;
            if (opt == 'I')
                a->so.id_field = optarg;
            if (opt == 'P')
                a->policies = optarg;
            if (opt == 'm')
                a->model = optarg;
            if (opt == 'S')
                a->sock = optarg;
            if (opt == 'U')
                a->url = optarg;
            if (opt == 'T' &&
                ctl_parse_int("eval", "--timeout", optarg, 1, 1 << 30, &a->timeout_ms) < 0)
                return 2;
            if (push(a, longopts[idx].name, optarg) < 0)
                return 2;
            break;
        }
    }
    if (optind != argc || !a->in) {
        fprintf(stderr, "shieldctl eval: --in FILE is required%s\n",
                optind != argc ? " (and takes no operands)" : "");
        usage(stderr);
        return 2;
    }
    if (!isnan(a->target_precision) && !isnan(a->target_recall)) {
        fprintf(stderr, "shieldctl eval: give --target-precision or --target-recall, not both\n");
        return 2;
    }
    a->so.format = sg_scan_format_of(a->in);
    if (format && sg_scan_format_parse(format, &a->so.format) < 0) {
        fprintf(stderr, "shieldctl eval: --format wants jsonl, csv or text, not '%s'\n", format);
        return 2;
    }
    if (strcmp(a->in, "-") == 0) {
        fprintf(stderr, "shieldctl eval: --in must be a file (it is read twice: to score it, "
                        "then with its labels)\n");
        return 2;
    }
    if (a->so.format == SG_SCAN_TEXT) {
        fprintf(stderr, "shieldctl eval: %s: plain text has no labels; use JSONL or CSV\n", a->in);
        return 2;
    }
    if (!a->label_field)
        a->label_field = "label";
    if (!a->labels_field)
        a->labels_field = "labels";
    return -1;
}

/* ---- Collecting the labelled scores -------------------------------------------------------- */

/* A label value: 1 or 0 into *out, or -1 when it is none of true/false, 0/1, "0"/"1", ... */
static int label_value(const json_t *v, unsigned char *out)
{
    static const char *const yes[] = {"1", "true", "True", "TRUE", "yes", "1.0", NULL};
    static const char *const no[] = {"0", "false", "False", "FALSE", "no", "0.0", NULL};

    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_number(v) && (json_number_value(v) == 0.0 || json_number_value(v) == 1.0)) {
        *out = json_number_value(v) == 1.0;
        return 0;
    }
    if (json_is_string(v)) {
        for (int i = 0; yes[i]; i++)
            if (strcmp(json_string_value(v), yes[i]) == 0) {
                *out = 1;
                return 0;
            }
        for (int i = 0; no[i]; i++)
            if (strcmp(json_string_value(v), no[i]) == 0) {
                *out = 0;
                return 0;
            }
    }
    return -1;
}

static int series_add(struct eval_series *s, double score, unsigned char label, unsigned char pred)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        double *ns = realloc(s->scores, nc * sizeof *ns);
        unsigned char *nl;
        unsigned char *np;

        if (!ns)
            return -1;
        s->scores = ns;
        nl = realloc(s->labels, nc);
        if (!nl)
            return -1;
        s->labels = nl;
        np = realloc(s->pred, nc);
        if (!np)
            return -1;
        s->pred = np;
        s->cap = nc;
    }
    s->scores[s->n] = score;
    s->labels[s->n] = label;
    s->pred[s->n] = pred;
    s->n++;
    return 0;
}

static struct eval_series *series_of(struct eval_data *d, const char *name)
{
    struct eval_series *np;

    for (size_t i = 0; i < d->n_pol; i++)
        if (strcmp(d->pol[i].name, name) == 0)
            return &d->pol[i];
    np = realloc(d->pol, (d->n_pol + 1) * sizeof *np);
    if (!np)
        return NULL;
    d->pol = np;
    np = &d->pol[d->n_pol];
    memset(np, 0, sizeof *np);
    np->name = strdup(name);
    np->threshold = NAN;
    np->choice = -1;
    np->chosen = NAN;
    if (!np->name)
        return NULL;
    d->n_pol++;
    return np;
}

static void series_free(struct eval_series *s)
{
    free(s->name);
    free(s->scores);
    free(s->labels);
    free(s->pred);
    sg_eval_curve_free(&s->curve);
}

/*
 * Check the labels of an item: `labels` (an object or NULL) and `label` (or NULL). Returns 0,
 * or -1 with a message in msg naming the bad one.
 */
static int check_labels(const json_t *labels, const json_t *label, const struct eval_args *a,
                        char *msg, size_t len)
{
    const char *k;
    json_t *v;
    unsigned char b;

    if (labels && !json_is_object(labels)) {
        snprintf(msg, len, "\"%s\" must be an object {\"POLICY\": 0/1, ...}", a->labels_field);
        return -1;
    }
    json_object_foreach((json_t *)labels, k, v)
    {
        if (label_value(v, &b) < 0) {
            snprintf(msg, len, "label \"%s.%.100s\" must be true/false or 0/1", a->labels_field, k);
            return -1;
        }
    }
    if (label && label_value(label, &b) < 0) {
        snprintf(msg, len, "\"%s\" must be true/false or 0/1", a->label_field);
        return -1;
    }
    return 0;
}

/* Count the label keys of an item that name no policy in its results. */
static void note_unscored(struct eval_data *d, const json_t *labels, const json_t *results)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)labels, k, v)
    {
        const json_t *r;
        size_t i;
        int found = 0;

        json_array_foreach(results, i, r)
        {
            const char *name = json_string_value(json_object_get(r, "policy"));

            if (name && strcmp(name, k) == 0)
                found = 1;
        }
        if (!found)
            json_object_set_new(
                d->unscored, k,
                json_integer(json_integer_value(json_object_get(d->unscored, k)) + 1));
    }
}

/* One scored line `row` (its item `it`) into the series and the per-item report. */
static int add_item(struct eval_data *d, const struct eval_args *a, const sg_scan_item *it,
                    json_t *row)
{
    const json_t *labels = it->extra ? json_object_get(it->extra, a->labels_field) : NULL;
    const json_t *label = it->extra ? json_object_get(it->extra, a->label_field) : NULL;
    json_t *results = json_object_get(row, "results");
    json_t *scores = json_object();
    json_t *r;
    size_t i;
    double top = -1;
    int any_pos = 0;
    unsigned char b;
    char msg[300];

    if (!scores)
        return -1;
    if (check_labels(labels, label, a, msg, sizeof msg) < 0) {
        if (d->n_bad++ < MAX_BAD_SHOWN)
            fprintf(stderr, "shieldctl eval: %s: line %ld: %s; item skipped\n", a->in, it->line,
                    msg);
        json_decref(scores);
        return 0;
    }
    json_array_foreach(results, i, r)
    {
        const char *name = json_string_value(json_object_get(r, "policy"));
        double p = json_number_value(json_object_get(r, "probability"));
        int viol = json_is_true(json_object_get(r, "violation"));
        const json_t *lv = name && labels ? json_object_get(labels, name) : NULL;
        struct eval_series *s = name ? series_of(d, name) : NULL;

        if (!s)
            goto oom;
        json_object_set_new(scores, name, json_real(p));
        top = p > top ? p : top;
        if (lv && label_value(lv, &b) == 0) {
            any_pos |= b;
            if (series_add(s, p, b, (unsigned char)viol) < 0)
                goto oom;
        }
    }
    note_unscored(d, labels, results);
    if (label)
        label_value(label, &b);
    else
        b = (unsigned char)any_pos;
    if ((label || (labels && json_object_size(labels))) && top >= 0 &&
        series_add(&d->overall, top, b,
                   (unsigned char)json_is_true(json_object_get(row, "flagged"))) < 0)
        goto oom;
    {
        json_t *o = json_pack("{s:O, s:O, s:o}", "id", json_object_get(row, "id"), "flagged",
                              json_object_get(row, "flagged"), "scores", scores);

        scores = NULL;
        if (!o)
            goto oom;
        if (label)
            json_object_set_new(o, "label", json_integer(b));
        if (labels)
            json_object_set(o, "labels", (json_t *)labels);
        json_array_append_new(d->items, o);
    }
    return 0;
oom:
    json_decref(scores);
    return -1;
}

/* The id of a scores line against its input item: equal JSON, or a message. */
static int same_id(const char *item_id, const json_t *id)
{
    json_t *j = json_loads(item_id, JSON_DECODE_ANY, NULL);
    int eq = j && id && json_equal(j, (json_t *)id);

    json_decref(j);
    return eq;
}

/* Read the input again with its labels and zip it with the scores file. 0, or -1 printed. */
static int collect(struct eval_data *d, const struct eval_args *a, const char *scores_path)
{
    const char *extra[] = {a->label_field, a->labels_field, NULL};
    sg_scan_opts so = a->so;
    sg_scan_reader *rd = NULL;
    sg_scan_item it;
    FILE *in = NULL;
    FILE *sc = NULL;
    char *line = NULL;
    size_t cap = 0;
    long long ln = 0;
    char err[1024];
    int status = -1;

    memset(&it, 0, sizeof it);
    so.extra_fields = extra;
    in = fopen(a->in, "rb");
    sc = fopen(scores_path, "rb");
    if (!in || !sc) {
        fprintf(stderr, "shieldctl eval: %s: %s\n", !in ? a->in : scores_path, strerror(errno));
        goto out;
    }
    if (sg_scan_reader_new(&rd, in, &so, err, sizeof err) < 0) {
        fprintf(stderr, "shieldctl eval: %s: %s\n", a->in, err);
        goto out;
    }
    for (;;) {
        int rc = sg_scan_reader_next(rd, &it);
        json_t *row;

        if (rc < 0) {
            fprintf(stderr, "shieldctl eval: %s: %s\n", a->in, sg_scan_reader_errmsg(rd));
            goto out;
        }
        if (rc == 0)
            break;
        d->n_items++;
        ln++;
        if (getline(&line, &cap, sc) < 0) {
            fprintf(stderr, "shieldctl eval: %s has fewer lines than %s has items (%lld)\n",
                    scores_path, a->in, ln - 1);
            goto out;
        }
        row = json_loads(line, 0, NULL);
        if (!row || !same_id(it.id, json_object_get(row, "id"))) {
            fprintf(stderr,
                    "shieldctl eval: %s:%lld does not score item %s of %s (line %ld): "
                    "it is from another input; remove it or give another --scores\n",
                    scores_path, ln, it.id, a->in, it.line);
            json_decref(row);
            goto out;
        }
        if (json_object_get(row, "error")) {
            d->n_errors++;
            json_array_append_new(d->items,
                                  json_pack("{s:O, s:O}", "id", json_object_get(row, "id"), "error",
                                            json_object_get(row, "error")));
        } else if (add_item(d, a, &it, row) < 0) {
            json_decref(row);
            fprintf(stderr, "shieldctl eval: out of memory\n");
            goto out;
        }
        json_decref(row);
    }
    if (getline(&line, &cap, sc) > 0) {
        fprintf(stderr,
                "shieldctl eval: %s has more lines than %s has items (%lld): it is from "
                "another input; remove it or give another --scores\n",
                scores_path, a->in, ln);
        goto out;
    }
    if (json_object_size(d->unscored)) {
        const char *k;
        json_t *v;

        fprintf(stderr, "shieldctl eval: labels of policies that were not scored, ignored:");
        json_object_foreach(d->unscored, k, v)
            fprintf(stderr, " %s (%lld items)", k, (long long)json_integer_value(v));
        fprintf(stderr, "; enable them or name them with --policy\n");
    }
    status = 0;
out:
    free(line);
    sg_scan_item_clear(&it);
    sg_scan_reader_free(rd);
    if (in)
        fclose(in);
    if (sc)
        fclose(sc);
    return status;
}

/* ---- Current thresholds and the choice --------------------------------------------------- */

static void set_threshold(struct eval_data *d, const char *name, double t)
{
    for (size_t i = 0; i < d->n_pol; i++)
        if (name && strcmp(d->pol[i].name, name) == 0)
            d->pol[i].threshold = t;
}

/* The current thresholds: from the daemon's GET /v1/policies, or the --policies directory. */
static int current_thresholds(struct eval_data *d, const struct eval_args *a)
{
    if (a->model) {
        sg_policy_set *set = NULL;
        char err[1024];

        if (sg_policy_set_load(&set, a->policies ? a->policies : "policies", err, sizeof err) < 0) {
            fprintf(stderr, "shieldctl eval: %s\n", err);
            return -1;
        }
        for (size_t i = 0; i < sg_policy_count(set); i++)
            set_threshold(d, sg_policy_at(set, i)->name, sg_policy_at(set, i)->threshold);
        sg_policy_set_free(set);
    } else {
        sg_client *c = NULL;
        json_t *j = NULL;
        json_t *p;
        size_t i;

        if (ctl_connect("eval", a->sock, a->url, a->timeout_ms, &c, NULL) != 0)
            return -1;
        if (ctl_remote_json("eval", c, "GET", "/v1/policies", NULL, &j, NULL) < 0) {
            sg_client_free(c);
            return -1;
        }
        json_array_foreach(json_object_get(j, "policies"), i, p)
            set_threshold(d, json_string_value(json_object_get(p, "name")),
                          json_number_value(json_object_get(p, "threshold")));
        json_decref(j);
        sg_client_free(c);
    }
    /* The overall verdict has one threshold only when every policy has the same. */
    d->overall.threshold = d->n_pol ? d->pol[0].threshold : NAN;
    for (size_t i = 1; i < d->n_pol; i++)
        if (!(d->pol[i].threshold == d->overall.threshold))
            d->overall.threshold = NAN;
    return 0;
}

static int compute(struct eval_data *d, struct eval_series *s)
{
    if (sg_eval_curve_compute(&s->curve, s->scores, s->labels, s->n) < 0)
        return -1;
    s->current = sg_eval_confusion_of(s->pred, s->labels, s->n);
    if (!isnan(d->target_precision)) {
        s->choice = sg_eval_for_precision(&s->curve, d->target_precision);
        s->choice_why = s->choice >= 0 ? "target precision"
                                       : "no threshold reaches the "
                                         "target precision";
    } else if (!isnan(d->target_recall)) {
        s->choice = sg_eval_for_recall(&s->curve, d->target_recall);
        s->choice_why = s->choice >= 0 ? "target recall"
                                       : "no threshold reaches the target "
                                         "recall";
    } else {
        s->choice = s->curve.have_f1 ? (long)s->curve.best : -1;
        s->choice_why = s->choice >= 0 ? "optimal F1" : "no positive items";
    }
    return 0;
}

/* ---- The command -------------------------------------------------------------------------- */

/* The scores file: --scores, REPORT.scores.jsonl, or a new temporary file (*tmp set). */
static char *scores_path(const struct eval_args *a, int *tmp)
{
    char *p;

    *tmp = 0;
    if (a->scores)
        return strdup(a->scores);
    if (a->out && strcmp(a->out, "-") != 0) {
        p = malloc(strlen(a->out) + 16);
        if (p)
            sprintf(p, "%s.scores.jsonl", a->out);
        return p;
    }
    {
        const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        int fd;

        p = malloc(strlen(dir) + 32);
        if (!p)
            return NULL;
        sprintf(p, "%s/shieldctl-eval-XXXXXX", dir);
        fd = mkstemp(p);
        if (fd < 0) {
            fprintf(stderr, "shieldctl eval: %s: %s\n", p, strerror(errno));
            free(p);
            return NULL;
        }
        close(fd);
        *tmp = 1;
        return p;
    }
}

/* Curves, choices (per policy; the overall one where a policy has no labels of its own). */
static int analyse(struct eval_data *d)
{
    if (compute(d, &d->overall) < 0)
        return -1;
    if (d->overall.choice >= 0)
        d->overall.chosen = d->overall.curve.points[d->overall.choice].threshold;
    for (size_t i = 0; i < d->n_pol; i++) {
        struct eval_series *s = &d->pol[i];

        if (compute(d, s) < 0)
            return -1;
        if (s->choice >= 0) {
            s->chosen = s->curve.points[s->choice].threshold;
        } else if (s->n == 0 && d->overall.choice >= 0) {
            /* Only a harmful/benign label: flagged = max score >= t sets every policy to t. */
            s->chosen = d->overall.chosen;
            s->choice_why = "overall";
        }
    }
    return 0;
}

/* The JSON report to --out; `sp` the scores file, or NULL when it was temporary. */
static int write_report(const struct eval_data *d, const struct eval_args *a, const char *sp)
{
    json_t *meta = json_pack("{s:s, s:s?, s:s?}", "input", a->in, "scores", sp, "model", a->model);
    json_t *rep = meta ? eval_report_json(d, meta) : NULL;
    int rc = -1;

    if (!rep) {
        fprintf(stderr, "shieldctl eval: out of memory\n");
    } else if (strcmp(a->out, "-") == 0) {
        rc = ctl_print_json(stdout, rep, JSON_COMPACT | JSON_REAL_PRECISION(17));
    } else if (json_dump_file(rep, a->out, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) < 0) {
        fprintf(stderr, "shieldctl eval: %s: cannot write the report: %s\n", a->out,
                strerror(errno));
    } else {
        rc = 0;
    }
    json_decref(rep);
    json_decref(meta);
    return rc;
}

int ctl_eval(int argc, char **argv)
{
    struct eval_args a;
    struct eval_data d;
    char *sp = NULL;
    int tmp = 0;
    int status;

    memset(&a, 0, sizeof a);
    memset(&d, 0, sizeof d);
    a.target_precision = a.target_recall = NAN;
    a.scan_argv[a.scan_argc++] = "scan";
    status = parse_args(argc, argv, &a);
    if (status >= 0)
        goto out;
    status = 1;
    sp = scores_path(&a, &tmp);
    /* A --scores file made elsewhere has no scan sidecar: scan adopts its lines, and the id
     * check below proves they belong to this input. */
    if (!sp || push(&a, "in", a.in) < 0 || push(&a, "out", sp) < 0 ||
        push(&a, "output-without-sidecar", "adopt") < 0)
        goto out;
    a.scan_argv[a.scan_argc] = NULL;
    /* Score (or resume, or find it all done) with scan itself. */
    if (ctl_scan(a.scan_argc, a.scan_argv) != 0)
        goto out;
    d.items = json_array();
    d.unscored = json_object();
    d.overall.name = strdup("overall");
    d.overall.overall = 1;
    d.overall.choice = -1;
    d.overall.chosen = NAN;
    d.target_precision = a.target_precision;
    d.target_recall = a.target_recall;
    if (!d.items || !d.unscored || !d.overall.name) {
        fprintf(stderr, "shieldctl eval: out of memory\n");
        goto out;
    }
    if (collect(&d, &a, sp) < 0)
        goto out;
    if (d.overall.n == 0) {
        fprintf(stderr,
                "shieldctl eval: %s: no item has a label: give each a \"%s\": 0/1 or "
                "\"%s\": {\"POLICY\": 0/1, ...}%s\n",
                a.in, a.label_field, a.labels_field,
                a.so.format == SG_SCAN_CSV ? " (CSV: a column label, or labels.POLICY)" : "");
        goto out;
    }
    if (current_thresholds(&d, &a) < 0 || analyse(&d) < 0)
        goto out;
    eval_print_table(stdout, &d);
    if (a.out && write_report(&d, &a, tmp ? NULL : sp) < 0)
        goto out;
    if (a.plot) {
        const char *base = strrchr(a.in, '/') ? strrchr(a.in, '/') + 1 : a.in;
        char title[300];

        snprintf(title, sizeof title, "shieldctl eval: %.200s, %lld items%s%.60s", base, d.n_items,
                 a.model ? ", model " : "",
                 a.model ? (strrchr(a.model, '/') ? strrchr(a.model, '/') + 1 : a.model) : "");
        if (eval_write_plot(a.plot, title, &d) < 0)
            goto out;
    }
    if (a.write_dir && eval_write_thresholds(a.write_dir, &d) < 0)
        goto out;
    status = 0;
out:
    if (tmp)
        unlink(sp);
    free(sp);
    for (size_t i = 0; i < d.n_pol; i++)
        series_free(&d.pol[i]);
    free(d.pol);
    series_free(&d.overall);
    json_decref(d.items);
    json_decref(d.unscored);
    free_args(&a);
    return status;
}
