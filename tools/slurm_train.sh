#!/usr/bin/env bash
# Train on a Slurm cluster, one task per GPU:
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py ARGS]
# PYTHON picks the interpreter (default: python).
#
# Preemption: the project's runtime has PreemptionHook, which on SIGTERM lets
# every rank finish its iteration, writes WORK_DIR/preempted_iter_N.pth
# (and points last_checkpoint at it) and exits with code 75. Ask Slurm for
# the signal before the time limit, to every task (not `B:`, which signals
# only a batch script's shell):
#   SRUN_ARGS="--signal=TERM@120" bash tools/slurm_train.sh ...
#   (or `#SBATCH --signal=TERM@120` in a batch script)
# This script then exits with 75 too: the first task of each node writes
# WORK_DIR/.preempted-* (MMMOMA_PREEMPTED_FILE), read here, since srun
# itself may report a higher code once --kill-on-bad-exit has ended the
# other tasks. Requeue on 75 and continue with the same command plus
# --resume, which picks up mid-epoch with the batches that were left; any
# other non-zero code is a failure to look at. In a batch script:
#   #SBATCH --signal=TERM@120 --requeue --open-mode=append
#   bash tools/slurm_train.sh PARTITION JOB CONFIG WORK_DIR --resume \
#       || { [ $? -eq 75 ] && scontrol requeue "$SLURM_JOB_ID"; }
# (--resume with nothing to resume from starts afresh). All ranks wait for
# the checkpoint before they exit, so --kill-on-bad-exit cannot cut it
# short.
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

# On the shared file system: the tasks of every node write it.
mkdir -p "$WORK_DIR"
MARKER=$(mktemp "$WORK_DIR/.preempted-XXXXXX")
trap 'rm -f "$MARKER"' EXIT
export MMMOMA_PREEMPTED_FILE="$MARKER"

set -x
status=0
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
    --work-dir="$WORK_DIR" --launcher=slurm "${@:5}" || status=$?
set +x
if [ "$status" -ne 0 ] && [ -s "$MARKER" ]; then
    read -r status saved < "$MARKER"
    echo "$0: preempted; the checkpoint is $saved. Exiting with $status:" \
        "requeue and continue with --resume." >&2
fi
exit "$status"
