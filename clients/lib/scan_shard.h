#ifndef SG_SCAN_SHARD_H
#define SG_SCAN_SHARD_H
/*
 * scan_shard.h: which part of a data set one `shieldctl scan` task takes, from `--shard I/N`
 * or, with `--shard auto`, from the environment that a batch scheduler sets:
 *
 *   Slurm job array   SLURM_ARRAY_TASK_ID, with the count from SLURM_ARRAY_TASK_COUNT (or
 *                     SLURM_ARRAY_TASK_MIN/MAX/STEP); index = (ID - MIN) / STEP.
 *   Kubernetes        JOB_COMPLETION_INDEX (an Indexed Job), with the count from --shards N or
 *                     SHIELDCTL_SHARDS (the Job's spec.completions).
 *
 * --shards N (or SHIELDCTL_SHARDS) always wins over the scheduler's count, and then the index is
 * the task id itself: resubmitting one task of a Slurm array (`sbatch --array=2`) sees a
 * one-task array, and only a fixed count keeps it shard 2 of 4.
 */

#include <stddef.h>

typedef struct sg_scan_shard {
    long index;   /* 0 <= index < count */
    long count;   /* >= 1 */
    char source[64]; /* where it came from: "--shard", "Slurm array", "Kubernetes Indexed Job" */
} sg_scan_shard;

/* The largest shard count accepted. */
#define SG_SCAN_MAX_SHARDS 1000000L

/*
 * Resolve the shard from `arg` ("I/N", "auto", or NULL for the whole input, 0/1) and `shards`
 * (--shards N; 0 when not given, then $SHIELDCTL_SHARDS is read). Reads the environment with
 * getenv(3). Returns 0 and *out, or -1 with a message naming the option or variable in err.
 */
int sg_scan_shard_resolve(const char *arg, long shards, sg_scan_shard *out, char *err,
                          size_t errlen);

/* 1 when global item number `k` (0-based, over all inputs) belongs to `sh`. */
int sg_scan_shard_has(const sg_scan_shard *sh, long long k);

#endif /* SG_SCAN_SHARD_H */
