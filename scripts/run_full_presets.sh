#!/usr/bin/env bash
# Train every full preset once and collect each run's eval_results.json: the figures the README quotes.
# Meant for a machine with a GPU (the presets use bf16 autocast and TF32 there).
#   bash scripts/run_full_presets.sh OUT_DIR [IMDB_DIR] [TEXT_FILE] [PRESET ...]
# PRESET is task/name, e.g. sentiment/lstm charlm/transformer; default: all five main ones.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:?usage: run_full_presets.sh OUT_DIR [IMDB_DIR] [TEXT_FILE] [PRESET ...]}
imdb=${2:-../shared/data/imdb}
text=${3:-../shared/data/mysterious_island/1268-0.txt}
shift $(( $# < 3 ? $# : 3 ))
presets=${*:-sentiment/lstm charlm/transformer charlm/lstm sentiment/transformer sentiment/book}
mkdir -p "$out"
for preset in $presets; do
  task=${preset%/*} name=${preset#*/}
  run="$out/runs/$task-$name"
  echo "=== $task $name ($(date -u +%T))"
  if [ "$task" = sentiment ]; then
    python -m seqhf train classifier --model "$name" --dataset "$imdb" --output-dir "$run" 2>&1 | tail -n 5
  else
    python -m seqhf train charlm --model "$name" --text "$text" --output-dir "$run" 2>&1 | tail -n 5
  fi
  [ -f "$run/eval_results.json" ] && cp "$run/eval_results.json" "$out/eval_$task-$name.json"
done
