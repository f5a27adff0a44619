#!/usr/bin/env bash
# ULMFiT on one GPU in a 15-minute device session (issue 14), then the char-LM transformer check:
#   lm      pretrain the `lstm` word LM (2 x 1024 LSTM, tied embeddings, bf16, full softmax) on IMDb's training
#           + unlabelled reviews, stopped after LM_MINUTES (default 5) and evaluated on held-out reviews;
#   ulmfit  fine-tune the `ulmfit` classifier from it (whole reviews up to 2,000 tokens, concat pooling,
#           discriminative rates, gradual unfreezing, slanted triangular schedule), test on all 25,000 test reviews;
#   charlm  rerun the char-LM `transformer` preset (jittered windows; H200 before them: 1.207 nats/char in 50 s).
# A device command may run 10 minutes: scripts/gpu_session.sh runs these stages in two short calls (with the
# benchmark's GPU rows), or by hand on the same machine:
#   STAGES=lm bash scripts/run_ulmfit_gpu.sh runs/gpu          (LM_MINUTES plus 1-2 min of data preparation)
#   STAGES="ulmfit charlm" bash scripts/run_ulmfit_gpu.sh runs/gpu
# Rehearsal at tiny scale on a CPU: QUICK=--quick bash scripts/run_ulmfit_gpu.sh /tmp/ulmfit-rehearsal
# Each stage's eval_results.json is copied to OUT_DIR/eval_<stage>.json; stage wall times go to OUT_DIR/times.txt.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:?usage: run_ulmfit_gpu.sh OUT_DIR [IMDB_DIR] [TEXT_FILE]}
imdb=${2:-../shared/data/imdb}
text=${3:-../shared/data/mysterious_island/1268-0.txt}
STAGES=${STAGES:-lm ulmfit charlm}
LM_MINUTES=${LM_MINUTES:-5}
QUICK=${QUICK:-}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU: rehearsal on $(nproc) CPU cores"

run_stage() {  # name, then the command
  local name=$1 start=$SECONDS; shift
  echo "=== $name ($(date -u +%T))"
  "$@" 2>&1 | grep -v -E "it/s\]|s/it\]|Warning|warn\(" | tail -n 4
  echo "$name $((SECONDS - start)) s wall" | tee -a "$out/times.txt"
}

for stage in $STAGES; do
  case $stage in
    lm) run_stage lm python -m seqhf train lm --model lstm $QUICK --dataset "$imdb" --output-dir "$out/wordlm-lstm" \
          --time-budget-min "$LM_MINUTES"
        cp "$out/wordlm-lstm/eval_results.json" "$out/eval_wordlm-lstm.json" ;;
    ulmfit) run_stage ulmfit python -m seqhf train classifier --model ulmfit $QUICK --dataset "$imdb" \
              --init-from "$out/wordlm-lstm" --output-dir "$out/sentiment-ulmfit"
            cp "$out/sentiment-ulmfit/eval_results.json" "$out/eval_sentiment-ulmfit.json" ;;
    charlm) run_stage charlm python -m seqhf train charlm --model transformer $QUICK --text "$text" \
              --output-dir "$out/charlm-transformer"
            cp "$out/charlm-transformer/eval_results.json" "$out/eval_charlm-transformer.json" ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
cat "$out/times.txt"
