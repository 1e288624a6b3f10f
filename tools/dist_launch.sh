#!/usr/bin/env bash
# torchrun launcher behind tools/dist_train.sh and tools/dist_test.sh:
#   tools/dist_launch.sh NPROC SCRIPT [args...]   (SCRIPT relative to tools/)
# NPROC processes on this node (one per GPU; on a CPU-only machine, train.py switches the
# process group to gloo). Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and PORT) per node.
set -euo pipefail
NPROC=$1
SCRIPT=$2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" "$ROOT/tools/$SCRIPT" "${@:3}" --launcher pytorch
