#!/usr/bin/env bash
# Creates .venv with the pinned dependencies and installs tb_stepsize into it.
# Usage: scripts/setup_env.sh [requirements file]   (idempotent; re-installs the package)
set -euo pipefail
cd "$(dirname "$0")/.."
REQ=${1:-requirements.txt}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat "$REQ" requirements*.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r "$REQ"
  touch "$stamp"
fi
.venv/bin/pip install -q --no-deps --force-reinstall --no-build-isolation . 2>&1 | grep -v "^\s*$" || true
