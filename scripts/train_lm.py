#!/usr/bin/env python
"""Pretrain a word-level LSTM language model on IMDb's training + unlabelled reviews through transformers.Trainer
(the backbone that `train_sentiment.py --init-from` fine-tunes).

    python scripts/train_lm.py --model lstm --dataset ../shared/data/imdb --output-dir runs/wordlm-lstm
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["lstm", "cpu", "cpu-full", "cpu-ab"], default="lstm",
                   help="preset: lstm (2 x 1024, for a GPU), cpu (2 x 128 on 20,000 unlabelled reviews, sampled softmax), "
                        "cpu-full (the same with a full softmax over 10k words) or cpu-ab (the equal-budget A/B's: "
                        "lighter regularisers, a higher rate)")
    p.add_argument("--dataset", default="stanfordnlp/imdb", help="hub id or local folder in the stanfordnlp/imdb layout")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--quick", action="store_true", help="tiny preset: 600 reviews, 32 units, one epoch")
    p.add_argument("--softmax", choices=["full", "sampled"], default=None, help="training loss; default: the preset's")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per training window; default: the preset's")
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many optimizer steps (overrides --epochs)")
    p.add_argument("--time-budget-min", type=float, default=None,
                   help="stop training after this many minutes (e.g. to fit a device session); the epoch in progress is evaluated")
    p.add_argument("--cpu-budget-s", type=float, default=None,
                   help="stop training once this process has spent this many CPU seconds, setup included (equal-budget "
                        "comparisons on a shared machine; run with OMP_NUM_THREADS=1)")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping threshold; 0 disables it")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    a = p.parse_args(argv)

    from seqhf.utils.runtime import is_main_process
    from seqhf.training.common import SetupError
    from seqhf.training.wordlm import train_wordlm

    try:
        results = train_wordlm(a.model, a.dataset, a.output_dir, quick=a.quick, softmax=a.softmax, seq_len=a.seq_len,
                               epochs=a.epochs, max_steps=a.max_steps, max_grad_norm=a.max_grad_norm, seed=a.seed,
                               resume=a.resume, time_budget_s=a.time_budget_min * 60 if a.time_budget_min else None,
                               cpu_budget_s=a.cpu_budget_s)
    except SetupError as err:
        sys.exit(f"error: {err}")
    if is_main_process():
        print(f"held-out perplexity {results['heldout_perplexity']:.1f} ({results['heldout_tokens']:,} tokens), "
              f"{results['train_tokens_per_second']:,.0f} training tokens/s, {results['wall_time_s']:.0f} s "
              f"-> {a.output_dir}")


if __name__ == "__main__":
    main()
