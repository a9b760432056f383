#!/usr/bin/env bash
# What dist_train.sh and dist_test.sh share: a tools/ script under torch.distributed.run on one node
# (or several, with NNODES/NODE_RANK/MASTER_ADDR):
#   bash tools/dist_launch.sh NUM_PROCS SCRIPT [SCRIPT arguments...]
# One process per GPU with NCCL; on a machine without CUDA, NUM_PROCS CPU processes with gloo.
set -euo pipefail
NPROC=$1
SCRIPT=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$NPROC" \
    "$(dirname "$0")/$SCRIPT" "${@:3}"
