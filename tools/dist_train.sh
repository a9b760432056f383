#!/usr/bin/env bash
# Distributed training on one node (or several, with NNODES/NODE_RANK/MASTER_ADDR: dist_launch.sh):
#   bash tools/dist_train.sh CONFIG NUM_PROCS [train.py options...]
# One process per GPU with NCCL; on a machine without CUDA, NUM_PROCS CPU processes with gloo.
set -euo pipefail
exec bash "$(dirname "$0")/dist_launch.sh" "$2" train.py "$1" --launcher pytorch "${@:3}"
