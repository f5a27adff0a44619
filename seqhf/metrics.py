"""Metrics computed by hand: accuracy and F1 for sentiment; perplexity and bits per character for the char LM."""

import math
from collections import Counter

import numpy as np


def classification_metrics(logits, labels) -> dict:
    """Accuracy and F1 (of label 1 for two classes, macro-averaged over classes otherwise)."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    preds = logits.argmax(axis=-1)
    num_classes = max(logits.shape[-1], 2)
    f1s = []
    for c in range(num_classes):
        tp = np.sum((preds == c) & (labels == c))
        fp = np.sum((preds == c) & (labels != c))
        fn = np.sum((preds != c) & (labels == c))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    f1 = f1s[1] if num_classes == 2 else float(np.mean(f1s))
    return {"accuracy": float(np.mean(preds == labels)), "f1": float(f1)}


def compute_classification_metrics(eval_pred) -> dict:
    """`compute_metrics` for the Trainer."""
    logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
    return classification_metrics(logits, eval_pred.label_ids)


def lm_metrics(nats_per_char: float, prefix: str = "eval") -> dict:
    """Perplexity and bits per character from a mean cross-entropy in nats."""
    return {
        f"{prefix}_perplexity": math.exp(min(nats_per_char, 50.0)),
        f"{prefix}_bits_per_char": nats_per_char / math.log(2),
    }


def unigram_entropy(text: str) -> float:
    """Entropy (nats) of the character distribution of `text`: what a model that ignores context can reach."""
    counts = np.array(list(Counter(text).values()), dtype=np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())
