#!/usr/bin/env bash
# Runs on the GPU test machine: compute-sanitizer's memcheck over scripts/memcheck_sweep.py
# on one build; the whole output goes to $OUT/memcheck_NAME.txt (default OUT=/tmp), and
# its last two lines (the sweep's end and the error summary) to stdout.
#   bash scripts/memcheck.sh BUILD_DIR NAME [memcheck_sweep.py options...]
# MEMCHECK_TIMEOUT: seconds before it is cut off (default 90). Exits with memcheck's status.
set -u
build=$1 name=$2
shift 2
log=${OUT:-/tmp}/memcheck_$name.txt
PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout "${MEMCHECK_TIMEOUT:-90}" compute-sanitizer --tool memcheck \
  python3 scripts/memcheck_sweep.py --build "$build" "$@" > "$log" 2>&1
rc=$?
tail -2 "$log"
exit "$rc"
