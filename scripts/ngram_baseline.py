#!/usr/bin/env python
"""The character n-gram baseline alone: interpolated Kneser-Ney on the char LM's split of a text.

    python scripts/ngram_baseline.py --text ../shared/data/mysterious_island/1268-0.txt --order 7

Trains on the same characters the char LM trains on (the training part minus its last 5%, which
validates) and prints nats/char on the held-out text. `--add-to FILE.json ...` records the figure in char-LM
runs' eval_results.json that was written before the baseline existed (marked as added afterwards).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text", nargs="+", default=["../shared/data/mysterious_island/1268-0.txt"])
    p.add_argument("--heldout", default=None)
    p.add_argument("--order", type=int, default=7)
    p.add_argument("--add-to", nargs="+", default=[], metavar="EVAL_RESULTS_JSON")
    a = p.parse_args(argv)

    from seqhf.training.charlm import load_corpus
    from seqhf.evaluation.ngram import CharKneserNey

    corpus = load_corpus(a.text, a.heldout)
    train = corpus.train[: int(len(corpus.train) * 0.95)]
    ngram = CharKneserNey(a.order).fit(train)
    figure = dict(order=a.order, method="interpolated Kneser-Ney, modified discounts (seqhf.evaluation.ngram)",
                  train_chars=len(train), heldout_nats_per_char=ngram.nats_per_char(corpus.heldout))
    print(f"{a.order}-gram Kneser-Ney: {figure['heldout_nats_per_char']:.4f} nats/char on {len(corpus.heldout):,} "
          f"held-out characters (trained on {len(train):,})")
    for path in a.add_to:
        with open(path) as f:
            run = json.load(f)
        if run.get("train_chars") != len(train) or run.get("heldout_chars") != len(corpus.heldout):
            sys.exit(f"error: {path} trained on {run.get('train_chars')} / held out {run.get('heldout_chars')} "
                     f"characters, not this split ({len(train)} / {len(corpus.heldout)}).")
        run["ngram"] = dict(figure, added_after_the_run="scripts/ngram_baseline.py, same split")
        with open(path, "w") as f:
            json.dump(run, f, indent=2)

if __name__ == "__main__":
    main()
