#!/usr/bin/env bash
# CPU A/B of where a classifier starts, at an equal CPU budget per arm: random init, word2vec init, or a word LM
# pretrained on unlabelled reviews and fine-tuned ULMFiT's way. 5,000 labelled IMDb reviews (read up to 256
# tokens), 1,000 validation and 2,000 test reviews; word2vec and the LM read the same 20,000 unlabelled reviews
# (word2vec also reads the 5,000 labelled ones); one classifier shape (2 x 128 LSTM, concat pooling).
#
#   scripts/run_pretrain_ab.sh runs/ab                   # the A/B: each arm BUDGET CPU seconds (default 420)
#   BUDGET=30 LM_BUDGET=15 EPOCHS=4 scripts/run_pretrain_ab.sh runs/ab-q --quick   # rehearsal at tiny scale
#
# The budget is each arm's process CPU seconds, setup included (data, tokenizer, word vectors, LM pretraining:
# `--cpu-budget-s`, seqhf.training.common.TimeBudget(cpu=True)); run with OMP_NUM_THREADS=1, where CPU seconds equal
# wall seconds on an idle core, so a machine shared with other jobs gives every arm the same work. The random
# and word2vec arms spend theirs on classifier epochs (best validation checkpoint kept); the LM arm spends
# LM_BUDGET on the LM (`cpu-ab` preset) and the rest, measured, on fine-tuning. The test evaluation comes after
# the budget and is the same work in every arm. ARMS picks the arms (default: "lm lm-init lm-init-all random
# word2vec"; lm-init-all fine-tunes the same LM without gradual unfreezing or discriminative rates).
set -euo pipefail
OUT=${1:?usage: $0 OUT_DIR [--quick]}
QUICK=${2:-}
DATA=${DATA:-../shared/data/imdb}
ARMS=${ARMS:-"lm lm-init lm-init-all random word2vec"}
BUDGET=${BUDGET:-420}
LM_BUDGET=${LM_BUDGET:-270}
EPOCHS=${EPOCHS:-12}  # the schedule's length; the budget or early stopping ends training first
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"

run() {  # name, then the command
  local name=$1; shift
  /usr/bin/time -a -o "$OUT/times.txt" -f "$name %e s wall %U s user %S s sys" nice -n 5 python "$@" >"$OUT/$name.log" 2>&1
  tail -n 1 "$OUT/$name.log"
}

budget_left() {  # the arm's budget less what the LM process spent
  python -c "import json,sys; print(round($BUDGET - json.load(open(sys.argv[1]))['process_cpu_s'], 1))" "$OUT/lm/eval_results.json"
}

for arm in $ARMS; do
  case $arm in
    lm) run lm -m seqhf train lm --model cpu-ab $QUICK --dataset "$DATA" --output-dir "$OUT/lm" \
          --epochs 1 --cpu-budget-s "$LM_BUDGET" ;;
    lm-init)  # what the LM process spent comes off the arm's budget
      run lm-init -m seqhf train classifier --model ulmfit-cpu $QUICK --dataset "$DATA" --init-from "$OUT/lm" \
        --output-dir "$OUT/lm-init" --epochs "$EPOCHS" --cpu-budget-s "$(budget_left)" --no-baseline ;;
    lm-init-all)  # the same LM, every layer trained from the start at one rate (preset ulmfit-cpu-all)
      run lm-init-all -m seqhf train classifier --model ulmfit-cpu-all $QUICK --dataset "$DATA" --init-from "$OUT/lm" \
        --output-dir "$OUT/lm-init-all" --epochs "$EPOCHS" --cpu-budget-s "$(budget_left)" --no-baseline ;;
    random) run random -m seqhf train classifier --model ulmfit-cpu $QUICK --dataset "$DATA" \
              --output-dir "$OUT/random" --epochs "$EPOCHS" --cpu-budget-s "$BUDGET" --no-baseline ;;
    word2vec) run word2vec -m seqhf train classifier --model ulmfit-cpu-word2vec $QUICK --dataset "$DATA" \
                --output-dir "$OUT/word2vec" --epochs "$EPOCHS" --cpu-budget-s "$BUDGET" --no-baseline ;;
    *) echo "unknown arm $arm" >&2; exit 2 ;;
  esac
done
cat "$OUT/times.txt"
