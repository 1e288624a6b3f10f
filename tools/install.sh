#!/usr/bin/env bash
# Creates ./.venv (if missing) and installs everything into it. Each step is skipped when done,
# so a second run takes seconds; pip caches the mmcv wheel it builds, so a rebuilt venv on the
# same machine does not compile mmcv again.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
pip_install() { "$PY" -m pip install --disable-pip-version-check -q -c requirements/constraints.txt "$@"; }

pip_install -r requirements/build.txt  # seconds when already satisfied
if ! "$PY" -c "import mmcv.ops; from mmcv.ops import nms" >/dev/null 2>&1; then
  echo "Building mmcv 2.1.0 with its C++ ops (about 9 minutes, once per machine)..."
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} pip_install --no-build-isolation "$(grep -E '^mmcv==' requirements/mminstall.txt)"
fi
pip_install -r requirements/mminstall.txt -r requirements/runtime.txt -r requirements/deploy.txt \
  -r requirements/tests.txt
# Builds the C++ kernels (tnt_backbone/ops/csrc) against the torch installed above.
pip_install --no-build-isolation --use-pep517 --no-deps -e .
"$PY" -c "import mmcv.ops, mmdet, mmseg, tnt_backbone, tnt_backbone._ext"
