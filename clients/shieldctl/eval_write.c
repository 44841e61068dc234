/* eval_write.c: `shieldctl eval --write-thresholds DIR` (see eval.h). */
#include "eval.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "scan.h"
#include "thresholdfile.h"

struct rewrite {
    const char *file; /* borrowed from the set */
    const char *policy;
    double value;
    char *old; /* the file's bytes before */
    size_t old_len;
    mode_t mode;
    int done; /* renamed into place */
};

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    int rc;

    if (!f)
        return -1;
    rc = ctl_read_stream(f, out, len);
    fclose(f);
    return rc < 0 ? -1 : 0;
}

/* Write `len` bytes to `path` through a temporary file in the same folder and rename(2). */
static int replace_file(const char *path, const char *data, size_t len, mode_t mode)
{
    char *tmp = malloc(strlen(path) + 16);
    const char *slash = strrchr(path, '/');
    int fd;
    int rc = -1;

    if (!tmp)
        return -1;
    /* A name starting with '.' in the policy folder: the daemon's loader skips it. */
    sprintf(tmp, "%.*s.eval-XXXXXX", slash ? (int)(slash - path + 1) : 0, path);
    fd = mkstemp(tmp);
    if (fd < 0)
        goto out;
    if (sg_scan_write_line(fd, data, len) < 0 || fchmod(fd, mode) < 0 || fsync(fd) < 0) {
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    free(tmp);
    return rc;
}

/* Rewrite one file. 0, or -1 after printing. */
static int rewrite_one(struct rewrite *w)
{
    char value[40];
    char *text = NULL;
    char *old = NULL;
    size_t len;
    char err[200];
    struct stat st;
    int rc;

    sg_eval_format_threshold(w->value, value, sizeof value);
    if (read_file(w->file, &w->old, &w->old_len) < 0 || stat(w->file, &st) < 0) {
        fprintf(stderr, "shieldctl eval: %s: %s\n", w->file, strerror(errno));
        return -1;
    }
    rc = sg_threshold_rewrite(w->old, w->old_len, value, &text, &len, &old, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "shieldctl eval: %s: %s\n", w->file, rc == -2 ? err : "out of memory");
        return -1;
    }
    w->mode = st.st_mode & 07777;
    if (replace_file(w->file, text, len, w->mode) < 0) {
        fprintf(stderr, "shieldctl eval: %s: cannot replace it: %s\n", w->file, strerror(errno));
        free(text);
        free(old);
        return -1;
    }
    w->done = 1;
    printf("%s: threshold %s -> %s (policy %s)\n", w->file, old, value, w->policy);
    free(text);
    free(old);
    return 0;
}

/* Load `dir` again: it must load and hold every new value. 0, or -1 after printing. */
static int verify(const char *dir, const struct rewrite *w, size_t n)
{
    sg_policy_set *set = NULL;
    char err[1024];

    if (sg_policy_set_load(&set, dir, err, sizeof err) < 0) {
        fprintf(stderr, "shieldctl eval: %s no longer loads: %s\n", dir, err);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const sg_policy *p = sg_policy_find(set, w[i].policy);

        if (!p || p->threshold != w[i].value) {
            fprintf(stderr, "shieldctl eval: %s: policy %s does not read back threshold %.17g\n",
                    w[i].file, w[i].policy, w[i].value);
            sg_policy_set_free(set);
            return -1;
        }
    }
    sg_policy_set_free(set);
    return 0;
}

int eval_write_thresholds(const char *dir, const struct eval_data *d)
{
    sg_policy_set *set = NULL;
    struct rewrite *w = NULL;
    size_t n = 0;
    char err[1024];
    int status = -1;

    if (sg_policy_set_load(&set, dir, err, sizeof err) < 0) {
        fprintf(stderr, "shieldctl eval: --write-thresholds: %s\n", err);
        return -1;
    }
    w = calloc(d->n_pol + 1, sizeof *w);
    if (!w)
        goto out;
    for (size_t i = 0; i < d->n_pol; i++) {
        const struct eval_series *s = &d->pol[i];
        const sg_policy *p = sg_policy_find(set, s->name);

        if (!p) {
            fprintf(stderr, "shieldctl eval: policy %s is not in %s: not written\n", s->name, dir);
            continue;
        }
        if (!isfinite(s->chosen)) {
            fprintf(stderr, "shieldctl eval: %s: %s: threshold left as it is\n", s->name,
                    s->choice_why ? s->choice_why : "no labels");
            continue;
        }
        w[n].file = p->file;
        w[n].policy = p->name;
        w[n].value = s->chosen;
        n++;
    }
    for (size_t i = 0; i < n; i++)
        if (rewrite_one(&w[i]) < 0)
            goto restore;
    if (verify(dir, w, n) < 0)
        goto restore;
    if (n)
        printf("%zu policy files updated; reload the daemon to apply them (SIGHUP: systemctl "
               "reload shieldd)\n",
               n);
    status = 0;
    goto out;
restore:
    for (size_t i = 0; i < n; i++)
        if (w[i].done && replace_file(w[i].file, w[i].old, w[i].old_len, w[i].mode) == 0)
            fprintf(stderr, "shieldctl eval: %s: restored\n", w[i].file);
out:
    for (size_t i = 0; w && i < n; i++)
        free(w[i].old);
    free(w);
    sg_policy_set_free(set);
    return status;
}
