#!/usr/bin/env bash
# Makes a venv with a current Flask from PyPI for tests/e2e/front_door.rs and prints the
# line to export. Usage: tests/e2e/flask-venv.sh [DIR]   (default: target/flask-venv)
#   export FLASK_PYTHON=$(tests/e2e/flask-venv.sh)
set -euo pipefail
dir=${1:-${CARGO_TARGET_DIR:-target}/flask-venv}
if ! "$dir/bin/python" -c 'import flask' 2>/dev/null; then
  python3 -m venv "$dir" >&2
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check flask >&2
fi
"$dir/bin/python" -c 'import flask, importlib.metadata as m; print("flask", m.version("flask"))' >&2
echo "$(cd "$dir" && pwd)/bin/python"
