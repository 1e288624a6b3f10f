#!/usr/bin/env bash
# Distributed evaluation with torchrun: tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args]
# Environment (NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON): see tools/dist_launch.sh.
set -euo pipefail
exec "$(dirname "$0")/dist_launch.sh" "$3" test.py "$1" "$2" "${@:4}"
