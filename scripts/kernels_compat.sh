#!/usr/bin/env bash
# The test suite again under older `kernels` releases than the one .venv resolves (the
# newest that pyproject admits: 0.19.1, which transformers 5.25 requires): the registry
# resolves builds with kernels' own resolvers, whose private modules move between
# releases (static_fp8_mlp_registry/kernels_api.py), and users have whichever kernels
# their transformers admits. Each set of requirements is installed without dependencies
# (.venv has them) into .kernels-compat/NAME/ and put first on PYTHONPATH; the tests'
# children (validate's probe, the local-Hub end-to-end test, the demo) inherit it.
#   bash scripts/kernels_compat.sh ['kernels==V [transformers==T]' ...]
# Default: kernels 0.17.2 and 0.18.3, each with transformers 5.24.0 (the newest that
# does not require kernels >= 0.19.1).
set -euo pipefail
cd "$(dirname "$0")/.."
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=("kernels==0.17.2 transformers==5.24.0" "kernels==0.18.3 transformers==5.24.0")
for reqs in "${sets[@]}"; do
  name=$(echo "$reqs" | tr ' =' '_-')
  dir=$PWD/.kernels-compat/$name
  if [ ! -f "$dir/.installed" ]; then
    rm -rf "$dir"
    # shellcheck disable=SC2086  # reqs is a list of requirement words
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target "$dir" $reqs
    touch "$dir/.installed"
  fi
  path="$dir${PYTHONPATH:+:$PYTHONPATH}"
  # each requirement must be what imports (module name = distribution name here)
  PYTHONPATH=$path .venv/bin/python - $reqs <<'PYEOF'
import importlib, sys
for req in sys.argv[1:]:
    name, want = req.split("==")
    got = importlib.import_module(name).__version__
    if got != want:
        sys.exit(f"{name} {want} was asked for, {got} imports")
PYEOF
  printf '\n==> the tests under %s\n' "$reqs"
  t0=$(date +%s)
  PYTHONPATH=$path .venv/bin/python -m pytest -q -p no:cacheprovider
  echo "$reqs: $(( $(date +%s) - t0 )) s"
done
