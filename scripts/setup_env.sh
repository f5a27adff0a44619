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
  # The CPU build of torch first where this disk has it, so that pyproject's range is already met and
  # the install below pulls nothing bigger; elsewhere that install takes torch from PyPI in the range.
  python -m pip install -q "torch==2.13.0" || echo "torch 2.13.0 not found: pip picks a torch in pyproject's range"
  python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
