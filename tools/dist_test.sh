#!/usr/bin/env bash
# Distributed evaluation on one node (or several, with NNODES/NODE_RANK/MASTER_ADDR: dist_launch.sh):
#   bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py options...]
# One process per GPU with NCCL; on a machine without CUDA, NUM_PROCS CPU processes with gloo.
set -euo pipefail
exec bash "$(dirname "$0")/dist_launch.sh" "$3" test.py "$1" "$2" --launcher pytorch "${@:4}"
