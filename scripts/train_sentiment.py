#!/usr/bin/env python
"""Train an IMDb sentiment classifier through transformers.Trainer (runs unchanged under `accelerate launch`).

    python scripts/train_sentiment.py --model lstm --dataset ../shared/data/imdb --output-dir runs/sentiment-lstm
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from seqhf.classification import train_sentiment  # noqa: E402
from seqhf.training import SetupError  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["lstm", "transformer", "book", "ulmfit", "ulmfit-cpu", "ulmfit-cpu-word2vec"],
                   default="lstm", help="preset")
    p.add_argument("--dataset", default="stanfordnlp/imdb", help="hub id or local folder in the stanfordnlp/imdb layout")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--quick", action="store_true", help="small preset: 4k training reviews, 2k test reviews")
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping threshold; 0 disables it")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    p.add_argument("--init-from", default=None, metavar="LM_DIR",
                   help="fine-tune from this word LM folder (scripts/train_lm.py), ULMFiT's way: its tokenizer and "
                        "backbone, discriminative rates, gradual unfreezing, slanted triangular schedule")
    a = p.parse_args(argv)
    try:
        results = train_sentiment(a.model, a.dataset, a.output_dir, quick=a.quick, epochs=a.epochs,
                                  max_grad_norm=a.max_grad_norm, seed=a.seed, resume=a.resume, init_from=a.init_from)
    except SetupError as err:
        sys.exit(f"error: {err}")
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"test accuracy {results['test_accuracy']:.4f}  F1 {results['test_f1']:.4f}  "
              f"({results['test_examples']} reviews, {results['wall_time_s']:.0f} s) -> {a.output_dir}")


if __name__ == "__main__":
    main()
