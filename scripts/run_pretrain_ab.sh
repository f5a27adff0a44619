#!/usr/bin/env bash
# CPU A/B of where a classifier starts: random init, word2vec init, or a pretrained word LM (ULMFiT).
# 5,000 labelled IMDb reviews (up to 256 tokens each), 1,000 validation and 2,000 test reviews; the LM and
# the word vectors read the same 20,000 unlabelled reviews; one classifier shape (2 x 128 LSTM, concat pooling).
#
#   scripts/run_pretrain_ab.sh runs/ab            # the A/B (about 25 CPU-minutes)
#   scripts/run_pretrain_ab.sh runs/ab-q --quick  # rehearsal at tiny scale (a minute)
#
# ARMS picks the arms (default: four, in this order; also lm-full and lm-full-init: a second LM with a full
# softmax, stopped after LM_FULL_STEPS=300 steps, and the classifier fine-tuned from it); BASELINE_EPOCHS gives the random and word2vec
# arms the epochs that match the LM arm's total CPU time (LM pretraining + fine-tuning).
# Every command runs with OMP_NUM_THREADS=1 under nice; user+sys CPU seconds and wall seconds go to times.txt.
set -euo pipefail
OUT=${1:?usage: $0 OUT_DIR [--quick]}
QUICK=${2:-}
DATA=${DATA:-../shared/data/imdb}
ARMS=${ARMS:-"lm lm-init random word2vec"}
BASELINE_EPOCHS=${BASELINE_EPOCHS:-4}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"

run() {  # name, then the command
  local name=$1; shift
  /usr/bin/time -a -o "$OUT/times.txt" -f "$name %e s wall %U s user %S s sys" nice -n 5 python "$@" >"$OUT/$name.log" 2>&1
  tail -n 1 "$OUT/$name.log"
}

for arm in $ARMS; do
  case $arm in
    lm) run lm scripts/train_lm.py --model cpu $QUICK --dataset "$DATA" --output-dir "$OUT/lm" ;;
    lm-init) run lm-init scripts/train_sentiment.py --model ulmfit-cpu $QUICK --dataset "$DATA" \
               --init-from "$OUT/lm" --output-dir "$OUT/lm-init" ;;
    lm-full) run lm-full scripts/train_lm.py --model cpu-full $QUICK --dataset "$DATA" --output-dir "$OUT/lm-full" \
               --max-steps "${LM_FULL_STEPS:-300}" ;;
    lm-full-init) run lm-full-init scripts/train_sentiment.py --model ulmfit-cpu $QUICK --dataset "$DATA" \
                    --init-from "$OUT/lm-full" --output-dir "$OUT/lm-full-init" ;;
    random) run random scripts/train_sentiment.py --model ulmfit-cpu $QUICK --dataset "$DATA" \
              --epochs "$BASELINE_EPOCHS" --output-dir "$OUT/random" ;;
    word2vec) run word2vec scripts/train_sentiment.py --model ulmfit-cpu-word2vec $QUICK --dataset "$DATA" \
                --epochs "$BASELINE_EPOCHS" --output-dir "$OUT/word2vec" ;;
    *) echo "unknown arm $arm" >&2; exit 2 ;;
  esac
done
cat "$OUT/times.txt"
