#!/usr/bin/env bash
# The test suite again under other `kernels` releases than the one .venv pins (0.17.2):
# the registry resolves builds with kernels' own resolvers, whose private modules move
# between releases (static_fp8_mlp_registry/kernels_api.py), and users have whichever
# kernels they have. Each release is installed without dependencies (.venv has them)
# into .kernels-compat/VERSION/ and put first on PYTHONPATH; the tests' children
# (validate's probe, the local-Hub end-to-end test, the demo) inherit it.
#   bash scripts/kernels_compat.sh [VERSION ...]     (default: 0.18.3 0.19.1)
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(0.18.3 0.19.1)
for v in "${versions[@]}"; do
  dir=$PWD/.kernels-compat/$v
  if [ ! -d "$dir/kernels" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target "$dir" "kernels==$v"
  fi
  export_path="$dir${PYTHONPATH:+:$PYTHONPATH}"
  got=$(PYTHONPATH=$export_path .venv/bin/python -c "import kernels; print(kernels.__version__)")
  [ "$got" = "$v" ] || { echo "kernels $v was asked for, $got imports" >&2; exit 1; }
  printf '\n==> the tests under kernels %s\n' "$v"
  t0=$(date +%s)
  PYTHONPATH=$export_path .venv/bin/python -m pytest -q -p no:cacheprovider
  echo "kernels $v: $(( $(date +%s) - t0 )) s"
done
