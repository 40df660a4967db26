#!/usr/bin/env bash
# One command from a fresh clone to a working checkout:
#   bash scripts/setup.sh            # venv, dependencies, kernel build, local Hub, demo
#   bash scripts/setup.sh --no-demo  # the same without running the demo (CI)
#
# - .venv/ with torch 2.11.0 (PyPI's CUDA 13.0 build: the variant built here loads on
#   the GPU test machine's torch 2.11.0+cu130) and this project with its test extras;
# - build/torch211-cxx11-cu130-<arch>-linux/ via `static-fp8-mlp build` (needs nvcc);
# - olah (the local Hub mirror) in its own venv via tools/install_olah.sh;
# - then `static-fp8-mlp demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
run_demo=1
[ "${1:-}" = "--no-demo" ] && run_demo=0

step() { printf '\n==> %s\n' "$*"; }
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PY" -m venv .venv
fi
step "installing torch 2.11.0 and the project (.[test])"
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.11.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
step "building the kernel for the local torch (incremental)"
.venv/bin/static-fp8-mlp build
step "installing olah (local Hub mirror) in its own venv"
bash tools/install_olah.sh >/dev/null
if [ "$run_demo" = 1 ]; then
  step "static-fp8-mlp demo"
  .venv/bin/static-fp8-mlp demo
fi
