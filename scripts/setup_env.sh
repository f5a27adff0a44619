#!/usr/bin/env bash
# Create .venv (once) and install seqhf with its test extras. Sourced by run_main.sh and run_tests.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.seqhf-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install -q --upgrade pip
  # The CPU build of torch first (it is on this disk; elsewhere pip takes it from PyPI), so the
  # project's range below installs nothing bigger.
  python -m pip install -q "torch==2.13.0" || python -m pip install -q "torch>=2.9,<2.15"
  python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
