#!/usr/bin/env bash
# A tuning or probe build of this checkout's working tree with extra macros:
#   bash scripts/variant_build.sh NAME ['#define SFM_X 1' ...]
# copies the tracked and untracked (not ignored) files into /tmp/sfm-variant-NAME,
# prepends each line to kernels-src/arch/hopper_sm90a.cu (the knobs are #ifndef
# defaults in the headers, e.g. SFM_RS_THREE_PER_SM_TOKENS; SFM_PHASE_TRACE for
# scripts/phase_trace.py), and builds it for 9.0a into .gpu-tune/NAME (git-ignored
# locally: add .gpu-tune/ to .git/info/exclude). Carry
# .gpu-tune/NAME/torch211-cxx11-cu130-x86_64-linux to the GPU machine.
# SFM_VARIANT_FLAGS: extra arguments for the build command (e.g. --verbose).
set -euo pipefail
[[ $# -ge 1 ]] || { sed -n 2,9p "$0"; exit 2; }
name=$1
shift
root=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
dst=/tmp/sfm-variant-$name
rm -rf "$dst" && mkdir -p "$dst"
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
  xargs -0 tar cf - --ignore-failed-read 2>/dev/null) | tar xf - -C "$dst"
for line in "$@"; do
  sed -i "1i $line" "$dst/kernels-src/arch/hopper_sm90a.cu"
done
# The build reads the project as a git checkout.
(cd "$dst" && git init -q && git add -A &&
  git -c user.email=variant@localhost -c user.name=variant commit -qm "variant $name")
cd "$root"
builder=${SFM_BUILDER:-.venv/bin/static-fp8-mlp}
"$builder" build ${SFM_VARIANT_FLAGS:-} --archs 9.0a --project "$dst" --out ".gpu-tune/$name"
