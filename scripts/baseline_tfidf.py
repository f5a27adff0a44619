#!/usr/bin/env python
"""TF-IDF + logistic regression on the same data and splits as scripts/train_classifier.py: the classic
baseline to report beside a seqhf classifier. Takes the same data options; prints the figures as JSON.

    python scripts/baseline_tfidf.py --dataset ../shared/data/ag_news_8k --text-column content \\
        --label-names ../shared/data/ag_news_8k/classes.txt
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_classifier import add_data_arguments, data_options  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(p)
    p.add_argument("--seed", type=int, default=42, help="seed of a validation split carved from train")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    a = p.parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from seqhf.evaluation.baseline import tfidf_logistic_regression
    from seqhf.data.classification import DataError, load_classification_data

    try:
        data = load_classification_data(**data_options(a), seed=a.seed)
    except DataError as err:
        sys.exit(f"error: {err}")
    figures = dict(tfidf_logistic_regression(data), data=data.description)
    print(json.dumps(figures, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
