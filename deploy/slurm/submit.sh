#!/bin/sh
# deploy/slurm/submit.sh: submit a bulk scan: an array of N scan tasks (scan.sbatch), then the
# merge (merge.sbatch) once all of them succeeded. Prints the two job ids.
#
#   SCAN_IN='data/*.jsonl' SCAN_OUT=/shared/scan SHIELD_MODEL=/models/m deploy/slurm/submit.sh 16
#
# More sbatch options (--partition, --time, --account) go in SBATCH_ARGS.
set -eu
n=${1:?usage: submit.sh SHARDS}
here=$(cd "$(dirname "$0")" && pwd)
export SCAN_SHARDS="$n"
# shellcheck disable=SC2086
scan=$(sbatch --parsable ${SBATCH_ARGS:-} --array="0-$((n - 1))" "$here/scan.sbatch")
# shellcheck disable=SC2086
merge=$(sbatch --parsable ${SBATCH_ARGS:-} --dependency="afterok:$scan" "$here/merge.sbatch")
echo "scan job $scan (array 0-$((n - 1))), merge job $merge"
