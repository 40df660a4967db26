#!/usr/bin/env bash
# Install olah (a self-hosted Hugging Face Hub mirror) into its own virtualenv: its
# dependency pins may clash with the project's, so it never goes into the project venv.
#
#   tools/install_olah.sh [VENV_DIR]
#
# VENV_DIR defaults to $STATIC_FP8_MLP_OLAH_VENV, else ~/.cache/static-fp8-mlp/olah-venv,
# which is where `static_fp8_mlp_cli.hub_mirror.find_olah()` looks (after $OLAH_BIN and
# PATH). Idempotent. Prints the olah-cli path last (use it as OLAH_BIN).
set -euo pipefail

OLAH_VERSION="0.5.4"
VENV="${1:-${STATIC_FP8_MLP_OLAH_VENV:-$HOME/.cache/static-fp8-mlp/olah-venv}}"
PYTHON="${PYTHON:-python3}"

if [ -x "$VENV/bin/olah-cli" ] \
   && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('olah') != '$OLAH_VERSION')" 2>/dev/null; then
  echo "olah $OLAH_VERSION already in $VENV" >&2
else
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "olah==$OLAH_VERSION"
fi
echo "$VENV/bin/olah-cli"
