#!/usr/bin/env python
"""Train the chapter's IMDb sentiment classifier: scripts/train_classifier.py with IMDb's defaults
(--dataset stanfordnlp/imdb, labels named negative and positive). Every option of train_classifier.py works.

    python scripts/train_sentiment.py --model lstm --dataset ../shared/data/imdb --output-dir runs/sentiment-lstm
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_classifier import main  # noqa: E402

if __name__ == "__main__":
    main(dataset="stanfordnlp/imdb", label_names="negative,positive")
