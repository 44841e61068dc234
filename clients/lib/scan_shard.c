/* scan_shard.c: the shard of a scan task, from --shard or the scheduler's environment. */
#include "scan_shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A whole decimal number in [lo, hi]. Returns 0 and *v, or -1. */
static int parse_long(const char *s, long lo, long hi, long *v)
{
    char *end;
    long x;

    if (!s || !*s)
        return -1;
    errno = 0;
    x = strtol(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi)
        return -1;
    *v = x;
    return 0;
}

/* An environment variable that must be a number in [lo, hi] when set. 0 with *v (unchanged when
 * unset: *set = 0), or -1 with the message. */
static int env_long(const char *name, long lo, long hi, long *v, int *set, char *err,
                    size_t errlen)
{
    const char *s = getenv(name);

    *set = 0;
    if (!s)
        return 0;
    if (parse_long(s, lo, hi, v) < 0) {
        snprintf(err, errlen, "%s='%.40s' is not a number from %ld to %ld", name, s, lo, hi);
        return -1;
    }
    *set = 1;
    return 0;
}

/* SLURM_ARRAY_TASK_* into *out; `shards` > 0 fixes the count (index = task id). */
static int from_slurm(long shards, sg_scan_shard *out, char *err, size_t errlen)
{
    long id = 0, cnt = 0, min = 0, max = 0, step = 1;
    int has_cnt, has_min, has_max, has_step, has_id;

    if (env_long("SLURM_ARRAY_TASK_ID", 0, SG_SCAN_MAX_SHARDS * 64, &id, &has_id, err, errlen) ||
        env_long("SLURM_ARRAY_TASK_COUNT", 1, SG_SCAN_MAX_SHARDS, &cnt, &has_cnt, err, errlen) ||
        env_long("SLURM_ARRAY_TASK_MIN", 0, SG_SCAN_MAX_SHARDS * 64, &min, &has_min, err,
                 errlen) ||
        env_long("SLURM_ARRAY_TASK_MAX", 0, SG_SCAN_MAX_SHARDS * 64, &max, &has_max, err,
                 errlen) ||
        env_long("SLURM_ARRAY_TASK_STEP", 1, SG_SCAN_MAX_SHARDS, &step, &has_step, err, errlen))
        return -1;
    snprintf(out->source, sizeof out->source, "Slurm array");
    if (shards > 0) {
        if (id >= shards) {
            snprintf(err, errlen,
                     "SLURM_ARRAY_TASK_ID=%ld is not below the shard count %ld: number the "
                     "array from 0 (--array=0-%ld)",
                     id, shards, shards - 1);
            return -1;
        }
        out->index = id;
        out->count = shards;
        return 0;
    }
    if (!has_min || !has_max) {
        if (!has_cnt) {
            snprintf(err, errlen, "SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT "
                                  "nor SLURM_ARRAY_TASK_MIN/MAX: give --shards N");
            return -1;
        }
        min = 0;
        max = cnt - 1;
    }
    if (max < min || id < min || id > max || (id - min) % step) {
        snprintf(err, errlen,
                 "SLURM_ARRAY_TASK_ID=%ld is not in the array %ld-%ld:%ld", id, min, max, step);
        return -1;
    }
    if (has_cnt && cnt != (max - min) / step + 1) {
        snprintf(err, errlen,
                 "a sparse Slurm array (SLURM_ARRAY_TASK_COUNT=%ld, MIN=%ld, MAX=%ld) has no "
                 "shard numbering: use --array=0-N or give --shards N",
                 cnt, min, max);
        return -1;
    }
    out->index = (id - min) / step;
    out->count = (max - min) / step + 1;
    return 0;
}

/* JOB_COMPLETION_INDEX into *out, the count from `shards`. */
static int from_k8s(long shards, sg_scan_shard *out, char *err, size_t errlen)
{
    long id = 0;
    int set;

    if (env_long("JOB_COMPLETION_INDEX", 0, SG_SCAN_MAX_SHARDS - 1, &id, &set, err, errlen))
        return -1;
    snprintf(out->source, sizeof out->source, "Kubernetes Indexed Job");
    if (shards <= 0) {
        snprintf(err, errlen, "JOB_COMPLETION_INDEX is set but the shard count is not: give "
                              "--shards N or SHIELDCTL_SHARDS (the Job's completions)");
        return -1;
    }
    if (id >= shards) {
        snprintf(err, errlen, "JOB_COMPLETION_INDEX=%ld is not below the shard count %ld", id,
                 shards);
        return -1;
    }
    out->index = id;
    out->count = shards;
    return 0;
}

static int from_arg(const char *arg, sg_scan_shard *out, char *err, size_t errlen)
{
    const char *slash = strchr(arg, '/');
    char ibuf[32];
    long i, n;

    if (slash && (size_t)(slash - arg) < sizeof ibuf) {
        memcpy(ibuf, arg, (size_t)(slash - arg));
        ibuf[slash - arg] = '\0';
        if (parse_long(slash + 1, 1, SG_SCAN_MAX_SHARDS, &n) == 0 &&
            parse_long(ibuf, 0, n - 1, &i) == 0) {
            out->index = i;
            out->count = n;
            snprintf(out->source, sizeof out->source, "--shard");
            return 0;
        }
    }
    snprintf(err, errlen, "--shard wants I/N with 0 <= I < N <= %ld, or auto, not '%.40s'",
             SG_SCAN_MAX_SHARDS, arg);
    return -1;
}

int sg_scan_shard_resolve(const char *arg, long shards, sg_scan_shard *out, char *err,
                          size_t errlen)
{
    int set;
    int slurm = getenv("SLURM_ARRAY_TASK_ID") != NULL;
    int k8s = getenv("JOB_COMPLETION_INDEX") != NULL;

    memset(out, 0, sizeof *out);
    out->count = 1;
    snprintf(out->source, sizeof out->source, "whole input");
    if (!arg) {
        if (shards > 0) {
            snprintf(err, errlen, "--shards goes with --shard auto");
            return -1;
        }
        return 0;
    }
    if (strcmp(arg, "auto") != 0) {
        if (shards > 0) {
            snprintf(err, errlen, "--shards goes with --shard auto, not with --shard I/N");
            return -1;
        }
        return from_arg(arg, out, err, errlen);
    }
    if (shards <= 0 &&
        env_long("SHIELDCTL_SHARDS", 1, SG_SCAN_MAX_SHARDS, &shards, &set, err, errlen) < 0)
        return -1;
    if (slurm && k8s) {
        snprintf(err, errlen, "--shard auto: both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX "
                              "are set; give --shard I/N");
        return -1;
    }
    if (slurm)
        return from_slurm(shards, out, err, errlen);
    if (k8s)
        return from_k8s(shards, out, err, errlen);
    snprintf(err, errlen, "--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor "
                          "JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set");
    return -1;
}

int sg_scan_shard_has(const sg_scan_shard *sh, long long k)
{
    return k % sh->count == sh->index;
}
