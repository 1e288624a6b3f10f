#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG NPROC [train.py args...]
# Environment (NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON): see tools/dist_launch.sh.
set -euo pipefail
exec "$(dirname "$0")/dist_launch.sh" "$2" train.py "$1" "${@:3}"
