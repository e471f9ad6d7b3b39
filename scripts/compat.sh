#!/usr/bin/env bash
# Compatibility run: for each stack, a fresh venv with the user's own TensorFlow/Keras/TensorBoard,
# then `pip install .` exactly as a user would, and:
#   * install changed nothing: `pip freeze` before and after are equal but for tb_stepsize and its one
#     dependency a TensorFlow stack lacks (google-crc32c, the event writer's native checksum), `pip check` clean;
#   * capture: tests/test_exactness.py and tests/test_callback.py pass (fit with the callback, numbers vs numpy);
#   * plugin: tests/test_plugin_tensorboard.py passes (real `tensorboard`, Python loader and Rust data server).
# Prints one table row per stack.  Usage: scripts/compat.sh [oldest|middle|pinned ...]   (default: all)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

stack_spec() {
  case "$1" in
    oldest) echo "tensorflow-cpu==2.19.1 keras==3.12.0" ;;  # TF 2.19.1 brings tensorboard 2.19.0, protobuf 5.x
    middle) echo "tensorflow-cpu==2.20.0 keras==3.13.2" ;;
    pinned) echo "-r requirements.txt" ;;
    *) echo "unknown stack $1 (oldest, middle, pinned)" >&2; return 1 ;;
  esac
}

STACKS=("$@")
[ ${#STACKS[@]} -gt 0 ] || STACKS=(oldest middle pinned)
ROWS=()
status=0
export TF_CPP_MIN_LOG_LEVEL=2
for name in "${STACKS[@]}"; do
  spec=$(stack_spec "$name") || exit 2
  venv=".compat/$name"
  log=".compat/$name.log"
  mkdir -p .compat
  echo "== $name: $spec (log: $log)"
  stamp="$venv/.stack-$(echo "$spec" | cat - requirements.txt requirements-tools.txt | sha1sum | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    rm -rf "$venv"
    "$PY" -m venv "$venv"
    "$venv/bin/pip" install -q $spec -r requirements-tools.txt >"$log" 2>&1 || { echo "installing the stack failed, see $log"; exit 1; }
    touch "$stamp"
  fi
  "$venv/bin/pip" uninstall -q -y tb_stepsize >>"$log" 2>&1
  "$venv/bin/pip" freeze --exclude-editable | grep -vi '^\(tb[_-]stepsize\|google[_-]crc32c\)' | sort >".compat/$name.before"
  # What a user types (with dependencies, build isolation and all).
  "$venv/bin/pip" install -q . >>"$log" 2>&1 || { echo "pip install . failed, see $log"; status=1; }
  "$venv/bin/pip" freeze --exclude-editable | grep -vi '^\(tb[_-]stepsize\|google[_-]crc32c\)' | sort >".compat/$name.after"
  if diff ".compat/$name.before" ".compat/$name.after" >".compat/$name.diff"; then unchanged=yes; else unchanged="NO ($(grep -c '^[<>]' ".compat/$name.diff") lines, see .compat/$name.diff)"; status=1; fi
  if "$venv/bin/pip" check >>"$log" 2>&1; then check=clean; else check=BROKEN; status=1; fi
  versions=$("$venv/bin/python" - <<'PY'
import importlib.metadata as m
def v(*names):
    for n in names:
        try:
            return m.version(n)
        except m.PackageNotFoundError:
            pass
    return "-"
print(" | ".join(v(*n) for n in (("tensorflow-cpu", "tensorflow"), ("keras",), ("tensorboard",), ("protobuf",), ("numpy",))))
PY
)
  run_tests() {  # files... -> RESULT (pytest's closing line, short); a failure sets status=1
    local out
    out=$("$venv/bin/pytest" -p no:cacheprovider "$@" 2>&1 | tee -a "$log" | grep -E '^=* *[0-9]+ (passed|failed|error|skipped)' | tail -n 1)
    RESULT=$(echo "$out" | sed -E 's/ in [0-9.]+s.*//; s/=//g; s/^ +| +$//g')
    if ! echo "$out" | grep -qE '^=* *[0-9]+ passed' || echo "$out" | grep -qE 'failed|error'; then status=1; RESULT="FAILED: $RESULT"; fi
  }
  start=$SECONDS
  run_tests tests/test_exactness.py tests/test_callback.py; capture=$RESULT
  run_tests tests/test_plugin_tensorboard.py; plugin=$RESULT
  ROWS+=("| $name | $versions | $unchanged | $check | $capture | $plugin | $((SECONDS - start)) s |")
done
echo
echo "| stack | TensorFlow | Keras | TensorBoard | protobuf | numpy | \`pip install .\` changed nothing | pip check | capture tests | plugin in real tensorboard | test time |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
exit $status
