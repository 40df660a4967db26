#!/usr/bin/env bash
# Downloads, on this CPU machine, the wheels the GPU machine's Python (3.12) lacks: for the
# registry's GPU tests pydantic and its needs (torch there brings typing-extensions), and
# nvidia-ml-py (NVML) for scripts/clock_trace.py.
# Carry the directory (default .whl/, git-ignored) in the device call; scripts/gpu_check.sh
# installs from it when pydantic is missing there.
#   bash scripts/fetch_device_wheels.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$DIR"
# The versions this checkout's .venv resolved, so that both sides run the same code.
pins=$("$PY" - <<'PYEOF'
from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in
               ("pydantic", "pydantic-core", "annotated-types", "typing-inspection")))
PYEOF
)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
# shellcheck disable=SC2086  # pins is a list of requirement words
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$DIR" $pins nvidia-ml-py==13.615.71
ls -1 "$DIR"
