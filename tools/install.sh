#!/usr/bin/env bash
# Creates ./.venv (if missing) and installs everything into it. Each step is skipped when done,
# so a second run takes seconds; pip caches the mmcv wheel it builds, so a rebuilt venv on the
# same machine does not compile mmcv again.
#
# mmcv's ops are built with CUDA when the venv's torch is a CUDA build and sees a GPU or finds
# the CUDA toolkit (nvcc); a CPU build of torch means CPU ops, whatever nvcc is on PATH.
#   TNT_CUDA=1 | 0          decides instead of the probe (1: CUDA ops, 0: CPU ops only)
#   TORCH_CUDA_ARCH_LIST    GPUs to build for (default: the visible ones; needed without one)
#   TNT_INSTALL_DRY_RUN=1   prints the commands that would change the venv instead of running
#                           them (the probe and the is-it-installed checks still run)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q -c requirements/constraints.txt)
die() { echo "tools/install.sh: $*" >&2; exit 1; }
run() { if [ -n "${TNT_INSTALL_DRY_RUN:-}" ]; then echo "+ $*"; else "$@"; fi; }

[ -x "$PY" ] || run "$PYTHON" -m venv "$VENV"
run "${PIP[@]}" -r requirements/build.txt  # seconds when already satisfied

# The venv's torch: version, CUDA version ('none': a CPU build), the toolkit its extension
# builder would use (CUDA_HOME, else nvcc on PATH, else /usr/local/cuda) and the visible GPUs.
[ -x "$PY" ] || die "dry run: $VENV does not exist yet, and the CUDA probe reads its torch"
probe=$("$PY" -c '
import torch
from torch.utils.cpp_extension import CUDA_HOME
archs = {"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
print(torch.__version__, torch.version.cuda or "none", CUDA_HOME or "none",
      ";".join(sorted(archs)) or "none", sep="\n")') || die "cannot import torch from $PY"
{ read -r torch_version; read -r torch_cuda; read -r cuda_home; read -r gpu_archs; } <<<"$probe"

case "${TNT_CUDA:-}" in
  '') cuda=0
      if [ "$torch_cuda" != none ]; then
        [ "$gpu_archs" = none ] && [ "$cuda_home" = none ] || cuda=1
      fi ;;
  0 | 1) cuda=$TNT_CUDA ;;
  *) die "TNT_CUDA must be 1 (mmcv with CUDA ops), 0 (CPU ops only) or unset, got '$TNT_CUDA'" ;;
esac
if [ "$cuda" = 1 ]; then
  [ "$torch_cuda" != none ] || die "torch $torch_version in $VENV is a CPU build, so mmcv cannot" \
    "have CUDA ops: install a CUDA build of torch ${torch_version%%+*} first, or unset TNT_CUDA"
  [ "$cuda_home" != none ] || die "no CUDA toolkit (CUDA_HOME, nvcc on PATH or /usr/local/cuda)" \
    "to build mmcv's CUDA ops for torch $torch_version with: install the CUDA $torch_cuda" \
    "toolkit, or set TNT_CUDA=0 for CPU ops only"
  # torch builds for the visible GPUs by default, and fails when there is none.
  archs=${TORCH_CUDA_ARCH_LIST:-$gpu_archs}
  [ "$archs" != none ] || die "no GPU is visible to build mmcv's CUDA ops for: set" \
    "TORCH_CUDA_ARCH_LIST to the compute capabilities of the GPUs that will run them (e.g." \
    "'8.0;9.0'), or TNT_CUDA=0 for CPU ops only"
  variant="cuda$torch_cuda-sm${archs//[; ]/_}"
  mmcv_env=(FORCE_CUDA=1)
  echo "mmcv ops: CUDA $torch_cuda for GPUs $archs (torch $torch_version, toolkit $cuda_home)"
else
  variant=cpu
  # mmcv builds CUDA ops whenever torch sees a GPU or FORCE_CUDA=1 (set in mmcv's own images).
  mmcv_env=(FORCE_CUDA=0 CUDA_VISIBLE_DEVICES=)
  echo "mmcv ops: CPU only (torch $torch_version, its CUDA: $torch_cuda, visible GPUs:" \
    "$gpu_archs${TNT_CUDA:+, TNT_CUDA=$TNT_CUDA})"
fi

# pip caches a wheel built from source under the source's name only: a CPU-only mmcv built on
# one machine would be reused on a CUDA one sharing the cache (and the reverse), as would a
# wheel built against another torch. A cache folder per torch and variant keeps them apart.
pip_cache=${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}
cache_dir="$pip_cache/tnt-mmcv/torch$torch_version-$variant"
# Exits 0 when the venv's mmcv has its compiled ops, with CUDA exactly when chosen above.
mmcv_ops_match() {
  "$PY" - "$cuda" 2>/dev/null <<'EOF'
import sys
from mmcv.ops import get_compiling_cuda_version, nms  # noqa: F401
sys.exit((get_compiling_cuda_version() != 'not available') != (sys.argv[1] == '1'))
EOF
}
if ! mmcv_ops_match; then
  echo "Installing mmcv 2.1.0 with its ops for $variant (built once per machine: about 9" \
    "minutes on 2 cores for CPU ops, much longer with CUDA)..."
  run env "${mmcv_env[@]}" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "${PIP[@]}" \
    --cache-dir "$cache_dir" --force-reinstall --no-deps --no-build-isolation \
    "$(grep -E '^mmcv==' requirements/mminstall.txt)"
fi
run "${PIP[@]}" -r requirements/mminstall.txt -r requirements/runtime.txt \
  -r requirements/deploy.txt -r requirements/tests.txt
# Builds the C++ kernels (tnt_backbone/ops/csrc) against the torch installed above.
run "${PIP[@]}" --no-build-isolation --use-pep517 --no-deps -e .
run "$PY" -c "import mmcv.ops, mmdet, mmseg, tnt_backbone, tnt_backbone._ext"
if [ -n "${TNT_INSTALL_DRY_RUN:-}" ]; then
  echo "+ check that mmcv.ops has the $variant ops"
elif ! mmcv_ops_match; then
  die "mmcv in $VENV does not have the $variant ops chosen above (mmcv's build decided" \
    "otherwise, or its wheel came from a cache of another build): delete $cache_dir and rerun"
fi
