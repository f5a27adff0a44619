#!/usr/bin/env python
"""Train a character language model on any text through transformers.Trainer (runs unchanged under
`accelerate launch`). By default: The Mysterious Island (Gutenberg #1268), the chapter's text.

    python scripts/train_charlm.py --model lstm --text ../shared/data/mysterious_island/1268-0.txt --output-dir runs/charlm-lstm
    python scripts/train_charlm.py --model cpu --text my_books/ --output-dir runs/my-books
    python scripts/train_charlm.py --model cpu --dataset ../shared/data/imdb --text-column text --output-dir runs/imdb-chars

The last 10% of each text file is held out (or --heldout FILE). Project Gutenberg headers and licences are
stripped wherever the `*** START OF` / `*** END OF` markers are.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

PRESETS = ["lstm", "transformer", "book", "cpu"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=PRESETS, default="lstm", help="preset")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--text", nargs="+", default=["../shared/data/mysterious_island/1268-0.txt"],
                        help="one or more UTF-8 text files, or folders of .txt files")
    source.add_argument("--dataset", default=None, help="a hub id or local dataset folder/file with a text column")
    p.add_argument("--text-column", default="text", help="the column of --dataset (and of --also-eval) to read")
    p.add_argument("--dataset-split", default="train", help="the split of --dataset to read")
    p.add_argument("--max-chars", type=int, default=None, help="read only the first N characters of --dataset")
    p.add_argument("--heldout", default=None, help="held-out text file (default: the last 10%% of each text)")
    p.add_argument("--also-eval", default=None,
                   help="a text the model never saw, for a generalisation figure: FILE.txt or DATASET[:SPLIT]")
    p.add_argument("--also-eval-chars", type=int, default=100_000, help="characters of --also-eval to score")
    p.add_argument("--no-dynamic-eval", action="store_true", help="skip dynamic evaluation (minutes on a CPU)")
    p.add_argument("--ngram-order", type=int, default=7, help="order of the Kneser-Ney baseline")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--quick", action="store_true", help="small preset: 300k-600k training characters, 2 epochs")
    p.add_argument("--tbptt", choices=["windows", "stateful"], default=None, help="default: the preset's")
    p.add_argument("--seq-len", type=int, default=None, help="characters per chunk; default: the preset's")
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping threshold; 0 disables it")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    a = p.parse_args(argv)

    from seqhf.utils.runtime import configure_run, is_main_process

    configure_run()
    from seqhf.training.charlm import train_charlm
    from seqhf.training.common import SetupError

    try:
        results = train_charlm(
            a.model, a.text, a.output_dir, heldout=a.heldout, dataset=a.dataset, text_column=a.text_column,
            dataset_split=a.dataset_split, max_chars=a.max_chars, quick=a.quick, tbptt=a.tbptt, seq_len=a.seq_len, epochs=a.epochs,
            max_grad_norm=a.max_grad_norm, seed=a.seed, resume=a.resume, ngram_order=a.ngram_order,
            dynamic=not a.no_dynamic_eval, also_eval=a.also_eval, also_eval_chars=a.also_eval_chars,
        )
    except SetupError as err:
        sys.exit(f"error: {err}")
    if is_main_process():
        print(summary(results) + f" -> {a.output_dir}")


def summary(r: dict) -> str:
    stream = r["heldout_stream_nats_per_char"]
    lines = [f"held-out {r['heldout_nats_per_char']:.4f} nats/char ({r['heldout_bits_per_char']:.3f} bits), "
             f"windows {r['heldout_window_nats_per_char']:.4f}" + (f", stream {stream:.4f}" if stream is not None else "")
             + f"; unigram entropy {r['unigram_entropy_nats']:.3f}; {r['heldout_unknown_chars']} held-out [UNK]; "
             f"{r['wall_time_s']:.0f} s"]
    if "ngram" in r:
        lines.append(f"{r['ngram']['order']}-gram Kneser-Ney {r['ngram']['heldout_nats_per_char']:.4f}; mixture "
                     f"(neural weight {r['mixture']['neural_weight']:.2f}) {r['mixture']['heldout_nats_per_char']:.4f}")
    if "dynamic_eval" in r:
        d = r["dynamic_eval"]
        lines.append(f"dynamic evaluation (lr {d['lr']:g}) {d['heldout_nats_per_char']:.4f} "
                     f"(static {d['heldout_static_nats_per_char']:.4f} on the same {d['heldout_chars']:,} characters)")
    if "second_text" in r:
        s = r["second_text"]
        lines.append(f"{s['name']}: {s['nats_per_char']:.4f} nats/char (n-gram {s['ngram_nats_per_char']:.4f})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
