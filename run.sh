#!/usr/bin/env bash
# The two commands of the README.
#   ./run.sh demo   set up .venv and run `cellrig demo`: a simulated four-cell station runs the
#                   formation protocol; BDF files, cycle tables and plots in a folder it names
#   ./run.sh test   set up .venv and run every check: ruff, mypy, the test suite
# Needs python3 (3.11+) with venv; everything else is installed into .venv.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${CELLRIG_VENV:-.venv}
PYTHON=${PYTHON:-python3}

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.cellrig-installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet -e ".[test,dev]"
        touch "$stamp"
    fi
}

case "${1:-}" in
    demo)
        setup
        shift
        exec "$VENV/bin/cellrig" demo "$@"
        ;;
    test)
        setup
        shift
        echo "== ruff"
        "$VENV/bin/ruff" check .
        echo "== mypy (strict)"
        "$VENV/bin/python" .ci/typecheck.py
        echo "== pytest"
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: ./run.sh demo | test [pytest arguments]" >&2
        exit 2
        ;;
esac
