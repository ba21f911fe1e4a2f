#!/usr/bin/env bash
# Train with one process per GPU through torchrun:
#   bash tools/dist_train.sh CONFIG GPUS [train.py ARGS]
# On a machine without a GPU, GPUS CPU processes train over gloo.
# Several nodes: set NNODES, NODE_RANK, MASTER_ADDR and PORT on each.
# PYTHON picks the interpreter (default: python).
#
# Preemption: on SIGTERM (to this script's process group, as Slurm and
# `kill -- -PGID` send it, or to torchrun alone) every rank finishes its
# iteration, work_dir/preempted_iter_N.pth is written and the script exits
# with code 75, not torchrun's 1 (mmmoma.engine.preemption.torchrun runs
# torchrun in this process and maps the workers' code). Requeue on 75 and
# continue with the same command plus --resume. After the signal torchrun
# gives its workers TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds (here 120 unless
# set; torch releases without it wait 30) to finish the iteration and the
# checkpoint before it kills them. torchrun handles SIGTERM, SIGINT, SIGHUP
# and SIGQUIT; another signal of PreemptionHook (SIGUSR1) would end torchrun
# itself unless it is added to torchrun's --signals-to-handle, e.g.
# PET_SIGNALS_TO_HANDLE=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [train.py ARGS]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
TOOLS=$(cd "$(dirname "$0")" && pwd)
export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${TORCH_ELASTIC_SHUTDOWN_TIMEOUT:-120}

PYTHONPATH="$(dirname "$TOOLS")${PYTHONPATH:+:$PYTHONPATH}" \
exec "${PYTHON:-python}" -c \
    'import sys; from mmmoma.engine.preemption import torchrun; sys.exit(torchrun())' \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$GPUS" \
    "$TOOLS/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
