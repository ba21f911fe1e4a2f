#!/usr/bin/env bash
# Train on a Slurm cluster, one task per GPU:
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py ARGS]
# PYTHON picks the interpreter (default: python).
#
# Preemption: the project's runtime has PreemptionHook, which on SIGTERM lets
# every rank finish its iteration, writes work_dir/preempted_iter_N.pth
# (and points last_checkpoint at it) and exits with code 75. Ask Slurm for
# the signal before the time limit, to every task (not `B:`, which signals
# only a batch script's shell):
#   SRUN_ARGS="--signal=TERM@120" bash tools/slurm_train.sh ...
#   (or `#SBATCH --signal=TERM@120` in a batch script)
# and continue with the same command plus --resume, which picks up mid-epoch
# with the batches that were left. All ranks wait for the checkpoint before
# they exit, so --kill-on-bad-exit cannot cut it short.
set -euo pipefail

if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py ARGS]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
TOOLS=$(cd "$(dirname "$0")" && pwd)

set -x
# SRUN_ARGS is split into words on purpose.
# shellcheck disable=SC2086
PYTHONPATH="$(dirname "$TOOLS")${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "${PYTHON:-python}" -u "$TOOLS/train.py" "$CONFIG" \
    --work-dir="$WORK_DIR" --launcher=slurm "${@:5}"
