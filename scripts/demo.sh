#!/usr/bin/env bash
# The main job: install, train the demo models (logs/), serve TensorBoard with the plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh requirements.txt
.venv/bin/python demo/train.py --logdir logs "$@"
echo "TensorBoard on http://localhost:${PORT:-6006}/#stepsize"
exec .venv/bin/tensorboard --logdir logs --port "${PORT:-6006}" --bind_all
