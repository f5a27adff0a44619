#!/usr/bin/env bash
# The README's main command: train the best sentiment LSTM preset, print its test accuracy, and
# classify a few reviews through `pipeline`. Uses the Hub's stanfordnlp/imdb when it is reachable,
# the local copy ../shared/data/imdb otherwise. Under 10 minutes on 2 quiet CPU cores (see the README's
# results table), less on a GPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup_env.sh
OUT=${OUT:-runs/sentiment-lstm}
DATASET=${DATASET:-}
if [ -z "$DATASET" ]; then
  if [ "${HF_HUB_OFFLINE:-0}" != "1" ] && python -c "import huggingface_hub as h; h.dataset_info('stanfordnlp/imdb', timeout=10)" >/dev/null 2>&1; then
    DATASET=stanfordnlp/imdb
  else
    DATASET=../shared/data/imdb
    export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
  fi
fi
# Without a GPU: one training process per free core, one thread each (`--processes auto` re-launches the command
# through accelerate's launcher, gloo DDP; the batch is shared, so the figures are those of one process). A second
# thread speeds torch's LSTM up 1.04x, a second process about 1.8x. PROCS=N sets the count.
PROCS=${PROCS:-auto}
echo "dataset: $DATASET -> $OUT (training processes: $PROCS)"
python -m seqhf train classifier --model lstm --processes "$PROCS" --dataset "$DATASET" --output-dir "$OUT" "$@"
python - "$OUT" <<'PY'
import json, sys
from seqhf.training.classifier import classify
from seqhf.utils.runtime import configure_output
configure_output()
out = sys.argv[1]
r = json.load(open(f"{out}/eval_results.json"))
print(f"\nTest accuracy: {100 * r['test_accuracy']:.2f}% (F1 {r['test_f1']:.4f}) on {r['test_examples']} reviews, "
      f"{r['wall_time_s'] / 60:.1f} min on {r['hardware']}")
if r.get("baseline"):
    print(f"Classic baseline on the same split, {r['baseline']['method']}: {100 * r['baseline']['accuracy']:.2f}%")
reviews = [
    "A wonderful film: the acting is superb and the story kept me hooked until the very end.",
    "Two hours of my life I will never get back. Wooden dialogue, a plot full of holes, and no suspense at all.",
    "Not a masterpiece, but charming and funny enough for a rainy Sunday afternoon.",
]
for review, pred in zip(reviews, classify(out, reviews)):
    print(f"{pred['label']:>8} {pred['score']:.3f}  {review}")
PY
