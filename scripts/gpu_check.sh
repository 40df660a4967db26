#!/usr/bin/env bash
# Runs on the GPU test machine, over a build carried from the CPU machine:
#   scripts/gpu_check.sh [BUILD_DIR] [PYTEST_ARGS...]
# prints the device, runs every GPU-marked test against BUILD_DIR (default
# .gpu-build) and leaves logs and JUnit XML under $OUT (default /tmp/gpu-check).
# GPU_CHECK_SUMMARY=1: print only the summary and the failures, not the whole log, and
# write no JUnit XML.
set -uo pipefail
BUILD=${1:-.gpu-build}
shift || true
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
# cli/ on the path: some test modules import static_fp8_mlp_cli, which the GPU machine's
# Python does not have installed (collection failed without it, seventeenth session).
export STATIC_FP8_MLP_BUILD=$PWD/$BUILD PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/cli:$PWD/registry${PYTHONPATH:+:$PYTHONPATH}
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'devices', torch.cuda.device_count())"
} | tee "$OUT/device.txt"
# The registry's GPU tests import pydantic and transformers; without them the whole module
# skips at collection, which is easy to miss in a summary line (seventeenth session).
# Wheels from scripts/fetch_device_wheels.sh, carried in $SFM_WHEELS (default .whl/), are
# installed into a private directory when pydantic is missing.
WHEELS=${SFM_WHEELS:-.whl}
if ! python3 -c "import pydantic" 2>/dev/null && compgen -G "$WHEELS/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/sfm-site "$WHEELS"/*.whl && export PYTHONPATH=/tmp/sfm-site:$PYTHONPATH
fi
python3 -c "import pydantic, transformers" 2>/dev/null ||
  echo "WARNING: pydantic or transformers missing: tests/test_registry_gpu.py will skip (bash scripts/fetch_device_wheels.sh here, carry .whl)" |
  tee -a "$OUT/device.txt"
if [ -n "${GPU_CHECK_SUMMARY:-}" ]; then
  # For device calls that print many steps: the log stays under $OUT, stdout gets only
  # the result line (with the skip reasons above it) and the failures; no JUnit XML (the
  # device tool returns only so many files from $OUT).
  python3 -m pytest -q -m gpu -p no:cacheprovider "$@" > "$OUT/gpu-tests.log" 2>&1
  rc=$?
  tail -3 "$OUT/gpu-tests.log"
  grep -E "FAILED|Error" "$OUT/gpu-tests.log" | head -20
  exit "$rc"
fi
python3 -m pytest -q -m gpu -p no:cacheprovider --junitxml="$OUT/gpu-tests.xml" "$@" 2>&1 | tee "$OUT/gpu-tests.log"
exit "${PIPESTATUS[0]}"
