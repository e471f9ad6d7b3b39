#!/usr/bin/env bash
# The whole test suite: installs what it needs (venv, pinned deps, Debian's chromium), then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
bash scripts/setup_env.sh requirements-test.txt
export TF_CPP_MIN_LOG_LEVEL=2
# pytest (not python -m pytest) so the installed package, with its built static files, is tested
exec .venv/bin/pytest -p no:cacheprovider "$@"
