#!/usr/bin/env bash
# Every outstanding GPU check in two short calls on one machine that stays up between them (a 15-minute
# device session; each call well under 10 minutes, every stage's figures written to OUT as soon as it ends):
#   start   word LM (LM_MINUTES, default 3), then ULMFiT fine-tuning in the background (setsid: it outlives
#           the call) with the char-LM `transformer` preset beside it;            ~7 min on one H200
#   finish  wait for ULMFiT (at most WAIT_S, default 420), then the benchmark's GPU rows (BENCH_S, default 150).
#   bash scripts/gpu_session.sh start|finish OUT [IMDB_DIR] [TEXT_FILE]
# BUNDLE=DIR installs the wheels of scripts/gpu_offline_bundle.sh first (a machine without network).
# QUICK=--quick rehearses it at tiny scale on a CPU. Stages: scripts/run_ulmfit_gpu.sh.
# Lesson of the first try (2026-12-04): one 570-s call holding benchmark (200 s cap) + LM (3.5 min; its data
# preparation alone takes 1-2 min) + char LM ran past its limit and brought nothing back.
set -uo pipefail
usage="usage: gpu_session.sh start|finish OUT [IMDB_DIR] [TEXT_FILE]"
phase=${1:-}
case "$phase ${2:-}" in start\ ?*|finish\ ?*) ;; *) echo "$usage" >&2; exit 2 ;; esac
out=$(mkdir -p "$2" && cd "$2" && pwd)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
imdb=$(cd "${3:-$repo/../shared/data/imdb}" && pwd)
text=$(realpath "${4:-$repo/../shared/data/mysterious_island/1268-0.txt}")
run=/tmp/seqhf-gpu  # models and logs; only the small result files go to OUT
QUICK=${QUICK:-}
export LM_MINUTES=${LM_MINUTES:-3}  # run_ulmfit_gpu.sh alone defaults to 5
device=cuda; [ -n "$QUICK" ] && device=cpu
export PYTHONPATH=/tmp/seqhf-site:$run/repo PYTHONUNBUFFERED=1 TQDM_DISABLE=1 PATH=/tmp/seqhf-bin:$PATH
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

setup() {
  if [ -n "${BUNDLE:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/seqhf-site \
      "$BUNDLE"/*.whl && tar xzf "$BUNDLE"/transformers-stripped.tar.gz -C /tmp/seqhf-site || exit 3
  fi
  # `python` must run the interpreter itself: a symlink to a venv's python3 loses the venv's packages.
  mkdir -p /tmp/seqhf-bin && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" >/tmp/seqhf-bin/python
  chmod +x /tmp/seqhf-bin/python
  # Run from a copy, so that a second call re-sending the checkout cannot disturb the background run.
  rm -rf $run && mkdir -p $run/repo && cp -r "$repo"/seqhf "$repo"/scripts "$repo"/benchmarks $run/repo/
  python -m seqhf env || exit 4
}

stages() { QUICK=$QUICK STAGES="$1" bash $run/repo/scripts/run_ulmfit_gpu.sh $run "$imdb" "$text"; }

case $phase in
  start)
    setup >"$out/setup.log" 2>&1 || { cat "$out/setup.log"; exit 3; }
    stages lm >"$out/lm.log" 2>&1; cat "$out/lm.log"
    cp $run/eval_wordlm-lstm.json "$out/" || exit 5
    setsid nohup bash -c "$(declare -f stages); run=$run imdb='$imdb' text='$text' QUICK='$QUICK'; stages ulmfit; \
      touch $run/ulmfit.done" >$run/ulmfit.log 2>&1 </dev/null &
    stages charlm >"$out/charlm.log" 2>&1; cat "$out/charlm.log"
    cp $run/eval_charlm-transformer.json "$out/" ;;
  finish)
    start=$SECONDS
    while [ ! -e $run/ulmfit.done ] && [ $((SECONDS - start)) -lt "${WAIT_S:-420}" ]; do sleep 3; done
    cp $run/ulmfit.log "$out/"; cat $run/ulmfit.log
    cp $run/eval_sentiment-ulmfit.json "$out/" || echo "ULMFiT not finished after $((SECONDS - start)) s"
    timeout "${BENCH_S:-150}" python $run/repo/scripts/benchmark.py --device $device $QUICK --imdb "$imdb" \
      --only train generate decode pipeline --json "$out/benchmark.json" >"$out/benchmark.log" 2>&1
    tail -n 30 "$out/benchmark.log"; cat $run/times.txt ;;
esac
