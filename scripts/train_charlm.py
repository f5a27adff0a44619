#!/usr/bin/env python
"""Train a character language model on The Mysterious Island through transformers.Trainer
(runs unchanged under `accelerate launch`).

    python scripts/train_charlm.py --model lstm --text ../shared/data/mysterious_island/1268-0.txt --output-dir runs/charlm-lstm
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from seqhf.charlm import train_charlm  # noqa: E402
from seqhf.training import SetupError  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["lstm", "transformer", "book"], default="lstm", help="preset")
    p.add_argument("--text", default="../shared/data/mysterious_island/1268-0.txt", help="Gutenberg #1268 text file")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--quick", action="store_true", help="small preset: 300k-600k training characters, 2 epochs")
    p.add_argument("--tbptt", choices=["windows", "stateful"], default=None, help="default: the preset's")
    p.add_argument("--seq-len", type=int, default=None, help="characters per chunk; default: the preset's")
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping threshold; 0 disables it")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    a = p.parse_args(argv)
    try:
        results = train_charlm(a.model, a.text, a.output_dir, quick=a.quick, tbptt=a.tbptt, seq_len=a.seq_len,
                               epochs=a.epochs, max_grad_norm=a.max_grad_norm, seed=a.seed, resume=a.resume)
    except SetupError as err:
        sys.exit(f"error: {err}")
    if int(os.environ.get("RANK", "0")) == 0:
        stream = results["heldout_stream_nats_per_char"]
        print(f"held-out {results['heldout_nats_per_char']:.4f} nats/char ({results['heldout_bits_per_char']:.3f} bits), "
              f"windows {results['heldout_window_nats_per_char']:.4f}"
              + (f", stream {stream:.4f}" if stream is not None else "")
              + f"; unigram entropy {results['unigram_entropy_nats']:.3f}; {results['wall_time_s']:.0f} s -> {a.output_dir}")


if __name__ == "__main__":
    main()
