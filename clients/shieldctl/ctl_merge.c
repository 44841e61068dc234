/*
 * ctl_merge.c: `shieldctl merge OUT SHARD_FILES...`: put the outputs of a sharded scan back
 * into input order, in one file with the bytes an unsharded scan writes.
 *
 * Each shard file must have its OUT.meta.json sidecar (scan_meta.h), marked complete, and all of
 * them must come from the same inputs and settings with the same shard count, each index once.
 * Item k of the whole input is in shard k mod N (--shard-by item: its (k div N)-th line), or the
 * items of input file f are in shard f mod N, in order (--shard-by file). Each shard's line count
 * must be what that plan takes from it, so every item is in the result exactly once. The result
 * goes to OUT.tmp, is fsync'd and renamed to OUT, with the sidecar of a whole (0/1) scan.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "scan_inputs.h"
#include "scan_meta.h"

int ctl_merge(int argc, char **argv);

const char ctl_merge_help[] = "merge the shard outputs of `shieldctl scan` into input order";

struct shard {
    const char *path;
    json_t *meta;
    FILE *f;
    long long taken;
};

struct merge {
    const char *out;
    struct shard *sh;   /* indexed by shard number once checked */
    size_t n;
    const char *by;
    long long total;
    json_t *file_items; /* combined (file mode) or the common one (item mode); borrowed */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: shieldctl merge OUT SHARD_FILE...\n"
               "\n"
               "Merge the outputs of `shieldctl scan --shard I/N` (or --shard auto) into OUT, in\n"
               "input order: the bytes one unsharded scan of the same inputs writes. Every shard\n"
               "0..N-1 must be there once, finished, with its .meta.json sidecar; a quoted glob\n"
               "('out/part-*.jsonl') names them in sorted order, and their sidecars in it are\n"
               "skipped. OUT gets a sidecar too.\n");
}

static long long meta_int(const json_t *m, const char *k)
{
    return json_integer_value(json_object_get(m, k));
}

/* The lines of a shard file: every one '\n'-terminated. -1 (printed) when the last is not. */
static long long count_lines(const char *path, FILE *f)
{
    char buf[65536];
    long long n = 0;
    size_t got;
    char last = '\n';

    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < got; i++)
            n += buf[i] == '\n';
        last = buf[got - 1];
    }
    if (ferror(f)) {
        fprintf(stderr, "shieldctl merge: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (last != '\n') {
        fprintf(stderr, "shieldctl merge: %s ends in a torn line: its scan did not finish\n",
                path);
        return -1;
    }
    rewind(f);
    return n;
}

/* Load and open shard file `path` into *s. 0, or -1 (printed). */
static int load_shard(const char *path, struct shard *s)
{
    char err[1024];
    int e = sg_scan_meta_load(path, &s->meta, err, sizeof err);
    long long lines;

    s->path = path;
    if (e < 0) {
        fprintf(stderr, "shieldctl merge: %s\n", err);
        return -1;
    }
    if (e == 1) {
        fprintf(stderr, "shieldctl merge: %s has no %s.meta.json: it is not the output of "
                        "shieldctl scan (or its sidecar was not copied with it)\n",
                path, path);
        return -1;
    }
    if (!json_is_true(json_object_get(s->meta, "complete"))) {
        fprintf(stderr, "shieldctl merge: %s is shard %s of a scan that has not finished: run "
                        "its scan again to complete it\n",
                path, sg_scan_meta_shard_str(s->meta, err, sizeof err));
        return -1;
    }
    s->f = fopen(path, "rb");
    if (!s->f) {
        fprintf(stderr, "shieldctl merge: %s: %s\n", path, strerror(errno));
        return -1;
    }
    lines = count_lines(path, s->f);
    if (lines < 0)
        return -1;
    if (lines != meta_int(s->meta, "lines")) {
        fprintf(stderr, "shieldctl merge: %s has %lld lines but its sidecar says %lld: it was "
                        "changed after its scan\n",
                path, lines, meta_int(s->meta, "lines"));
        return -1;
    }
    return 0;
}

/* Lines that shard `i` must hold under the plan. */
static long long expected_lines(const struct merge *m, size_t i)
{
    long long want = 0;

    if (strcmp(m->by, "file") == 0) {
        for (size_t f = i; f < json_array_size(m->file_items); f += m->n)
            want += json_integer_value(json_array_get(m->file_items, f));
        return want;
    }
    return m->total > (long long)i ? (m->total - (long long)i + (long long)m->n - 1) /
                                         (long long)m->n
                                   : 0;
}

/* Check that the shards are one scan, each index once; order m->sh by index. 0, or -1. */
static int check_set(struct merge *m, struct shard *in, size_t n)
{
    const json_t *first = in[0].meta;
    const json_t *sh0 = json_object_get(first, "shard");
    char err[1024], a[64];

    m->n = (size_t)meta_int(sh0, "count");
    m->by = json_string_value(json_object_get(sh0, "by"));
    if (!m->by)
        m->by = "item";
    m->sh = calloc(m->n ? m->n : 1, sizeof *m->sh);
    if (!m->sh) {
        fprintf(stderr, "shieldctl merge: out of memory\n");
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        json_t *probe;
        const json_t *shk = json_object_get(in[k].meta, "shard");
        long long idx = meta_int(shk, "index");
        char b[64];

        if (meta_int(shk, "count") != (long long)m->n ||
            !json_equal(json_object_get(shk, "by"), json_object_get(sh0, "by"))) {
            fprintf(stderr, "shieldctl merge: %s is shard %s, %s is shard %s: not one split\n",
                    in[k].path, sg_scan_meta_shard_str(in[k].meta, a, sizeof a), in[0].path,
                    sg_scan_meta_shard_str(first, b, sizeof b));
            return -1;
        }
        probe = json_deep_copy(in[k].meta);

        /* Same identity as the first, apart from the index. */
        json_object_set_new(json_object_get(probe, "shard"), "index",
                            json_integer(meta_int(sh0, "index")));
        if (sg_scan_meta_same(first, probe, err, sizeof err) < 0) {
            fprintf(stderr, "shieldctl merge: %s is not from the same scan as %s: %s\n",
                    in[k].path, in[0].path, err);
            json_decref(probe);
            return -1;
        }
        json_decref(probe);
        if (idx < 0 || (size_t)idx >= m->n) {
            fprintf(stderr, "shieldctl merge: %s: bad shard index %lld\n", in[k].path, idx);
            return -1;
        }
        if (m->sh[idx].path) {
            fprintf(stderr, "shieldctl merge: %s and %s both hold shard %s\n",
                    m->sh[idx].path, in[k].path, sg_scan_meta_shard_str(in[k].meta, a, sizeof a));
            return -1;
        }
        m->sh[idx] = in[k];
    }
    for (size_t i = 0; i < m->n; i++) {
        if (!m->sh[i].path) {
            fprintf(stderr, "shieldctl merge: shard %zu/%zu is missing (%zu of %zu given)\n", i,
                    m->n, n, m->n);
            return -1;
        }
    }
    return 0;
}

/* The item counts of the whole input, and each shard's line count against the plan. */
static int check_counts(struct merge *m)
{
    json_t *fi = json_array();

    if (!fi)
        return -1;
    m->file_items = fi;
    for (size_t f = 0; f < json_array_size(json_object_get(m->sh[0].meta, "file_items")); f++) {
        size_t owner = strcmp(m->by, "file") == 0 ? f % m->n : 0;
        json_t *v = json_array_get(json_object_get(m->sh[owner].meta, "file_items"), f);

        if (!json_is_integer(v)) {
            fprintf(stderr, "shieldctl merge: %s: its sidecar has no item count for input %zu\n",
                    m->sh[owner].path, f + 1);
            return -1;
        }
        json_array_append(fi, v);
    }
    m->total = 0;
    for (size_t f = 0; f < json_array_size(fi); f++)
        m->total += json_integer_value(json_array_get(fi, f));
    for (size_t i = 0; i < m->n; i++) {
        long long want = expected_lines(m, i);
        long long total = meta_int(m->sh[i].meta, "total");

        if (strcmp(m->by, "item") == 0 && total != m->total) {
            fprintf(stderr, "shieldctl merge: %s counted %lld items in the input, %s %lld\n",
                    m->sh[i].path, total, m->sh[0].path, m->total);
            return -1;
        }
        if (meta_int(m->sh[i].meta, "lines") != want) {
            fprintf(stderr, "shieldctl merge: %s has %lld lines; shard %zu/%zu of %lld items "
                            "must have %lld\n",
                    m->sh[i].path, meta_int(m->sh[i].meta, "lines"), i, m->n, m->total, want);
            return -1;
        }
    }
    return 0;
}

/* Copy the next line of shard `s` to `out`. 0, or -1 (printed). */
static int copy_line(struct shard *s, FILE *out, char **buf, size_t *cap)
{
    ssize_t n = getline(buf, cap, s->f);
    json_t *j;

    if (n <= 0) {
        fprintf(stderr, "shieldctl merge: %s ended early (line %lld)\n", s->path, s->taken + 1);
        return -1;
    }
    j = json_loadb(*buf, (size_t)n, 0, NULL);
    if (!json_is_object(j)) {
        fprintf(stderr, "shieldctl merge: %s:%lld: not a scan result line\n", s->path,
                s->taken + 1);
        json_decref(j);
        return -1;
    }
    json_decref(j);
    s->taken++;
    if (fwrite(*buf, 1, (size_t)n, out) != (size_t)n) {
        fprintf(stderr, "shieldctl merge: write: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/* Write the merged lines to `out` in input order. 0, or -1. */
static int interleave(struct merge *m, FILE *out)
{
    char *buf = NULL;
    size_t cap = 0;
    int rc = -1;

    if (strcmp(m->by, "file") == 0) {
        for (size_t f = 0; f < json_array_size(m->file_items); f++) {
            long long c = json_integer_value(json_array_get(m->file_items, f));

            for (long long k = 0; k < c; k++)
                if (copy_line(&m->sh[f % m->n], out, &buf, &cap) < 0)
                    goto out;
        }
    } else {
        for (long long k = 0; k < m->total; k++)
            if (copy_line(&m->sh[k % (long long)m->n], out, &buf, &cap) < 0)
                goto out;
    }
    rc = 0;
out:
    free(buf);
    return rc;
}

/* Write OUT (via OUT.tmp) and its sidecar. 0, or -1 (printed). */
static int write_out(struct merge *m)
{
    size_t n = strlen(m->out) + 5;
    char *tmp = malloc(n);
    FILE *f = NULL;
    json_t *meta = NULL;
    sg_scan_shard whole = {.index = 0, .count = 1};
    char err[1024];
    int rc = -1;

    if (!tmp)
        goto out;
    snprintf(tmp, n, "%s.tmp", m->out);
    f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "shieldctl merge: %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    if (interleave(m, f) < 0)
        goto out;
    if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
        fprintf(stderr, "shieldctl merge: %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    if (fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "shieldctl merge: %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    f = NULL;
    meta = sg_scan_meta_new(&whole, "item",
                            json_deep_copy(json_object_get(m->sh[0].meta, "inputs")),
                            json_deep_copy(json_object_get(m->sh[0].meta, "settings")));
    if (!meta || json_object_set_new(meta, "complete", json_true()) ||
        json_object_set_new(meta, "lines", json_integer(m->total)) ||
        json_object_set_new(meta, "total", json_integer(m->total)) ||
        json_object_set(meta, "file_items", m->file_items)) {
        fprintf(stderr, "shieldctl merge: out of memory\n");
        goto out;
    }
    if (rename(tmp, m->out) < 0) {
        fprintf(stderr, "shieldctl merge: %s: %s\n", m->out, strerror(errno));
        goto out;
    }
    if (sg_scan_meta_save(m->out, meta, err, sizeof err) < 0) {
        fprintf(stderr, "shieldctl merge: %s\n", err);
        goto out;
    }
    rc = 0;
out:
    if (f)
        fclose(f);
    if (rc < 0 && tmp)
        unlink(tmp);
    json_decref(meta);
    free(tmp);
    return rc;
}

/* Drop the sidecars a glob brought along with their outputs. The new count, or -1 (no memory). */
static long drop_sidecars(sg_scan_paths *p)
{
    char *side = calloc(p->n ? p->n : 1, 1);
    size_t w = 0;

    if (!side)
        return -1;
    for (size_t i = 0; i < p->n; i++) {
        size_t len = strlen(p->v[i]);

        if (len > 10 && strcmp(p->v[i] + len - 10, ".meta.json") == 0)
            for (size_t k = 0; k < p->n; k++)
                side[i] |= strlen(p->v[k]) == len - 10 && !strncmp(p->v[k], p->v[i], len - 10);
    }
    for (size_t i = 0; i < p->n; i++) {
        if (side[i])
            free(p->v[i]);
        else
            p->v[w++] = p->v[i];
    }
    free(side);
    p->n = w;
    return (long)w;
}

/* OUT must not be one of the shard files. */
static int out_is_input(const char *out, const sg_scan_paths *p)
{
    struct stat a, b;

    if (stat(out, &a) < 0)
        return 0;
    for (size_t i = 0; i < p->n; i++)
        if (stat(p->v[i], &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            return 1;
    return 0;
}

int ctl_merge(int argc, char **argv)
{
    sg_scan_paths p;
    struct shard *in = NULL;
    struct merge m;
    char err[512];
    int status = 1;

    memset(&m, 0, sizeof m);
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc < 3 || argv[1][0] == '-') {
        usage(stderr);
        return 2;
    }
    m.out = argv[1];
    if (sg_scan_paths_expand((const char *const *)argv + 2, (size_t)argc - 2, &p, err,
                             sizeof err) < 0) {
        fprintf(stderr, "shieldctl merge: %s\n", err);
        return 2;
    }
    {
        long n = drop_sidecars(&p);

        if (n <= 0 || out_is_input(m.out, &p)) {
            fprintf(stderr, "shieldctl merge: %s\n",
                    n < 0    ? "out of memory"
                    : n == 0 ? "no shard files"
                             : "OUT is one of the shard files");
            goto out;
        }
    }
    in = calloc(p.n, sizeof *in);
    if (!in) {
        fprintf(stderr, "shieldctl merge: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < p.n; i++)
        if (load_shard(p.v[i], &in[i]) < 0)
            goto out;
    if (check_set(&m, in, p.n) < 0 || check_counts(&m) < 0 || write_out(&m) < 0)
        goto out;
    fprintf(stderr, "merge: %lld items from %zu shards into %s\n", m.total, m.n, m.out);
    status = 0;
out:
    for (size_t i = 0; in && i < p.n; i++) {
        json_decref(in[i].meta);
        if (in[i].f)
            fclose(in[i].f);
    }
    free(in);
    free(m.sh);
    json_decref(m.file_items);
    sg_scan_paths_free(&p);
    return status;
}
