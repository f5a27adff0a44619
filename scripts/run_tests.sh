#!/usr/bin/env bash
# The test command: installs what it needs into .venv, then runs the whole suite offline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup_env.sh
bash scripts/install_browser.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# One pytest worker per core (pytest-xdist); tests marked with one xdist_group share a worker (the wheel's
# build and venv). A later -n in "$@" wins, e.g. -n 0 for one process.
python -m pytest -n auto --dist loadgroup "$@"
