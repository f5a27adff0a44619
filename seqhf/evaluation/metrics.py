"""Metrics: accuracy, F1 and per-class figures for classifiers (scikit-learn); perplexity and bits per character
for char LMs."""

import math
from collections import Counter

import numpy as np

MULTI_LABEL_THRESHOLD = 0.5  # a label is predicted when its sigmoid probability reaches this


def _predictions(logits, multi_label: bool):
    logits = np.asarray(logits, dtype=np.float64)
    if multi_label:
        return (1.0 / (1.0 + np.exp(-logits)) >= MULTI_LABEL_THRESHOLD).astype(int)
    return logits.argmax(axis=-1)


def classification_metrics(logits, labels, label_names=None, per_class: bool = False) -> dict:
    """Accuracy, macro-F1 and `f1` (the positive class's F1 for two classes, macro-F1 otherwise).

    Multi-label (2-D labels): `accuracy` is the share of texts with every label right, predictions are
    sigmoid >= MULTI_LABEL_THRESHOLD, and micro-F1 is added. With `per_class`, each class's precision,
    recall, F1 and support under `per_class` (keyed by `label_names`).
    """
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        precision_recall_fscore_support,
    )

    labels = np.asarray(labels)
    multi_label = labels.ndim == 2
    preds = _predictions(logits, multi_label)
    labels = labels.astype(int)
    num_classes = np.asarray(logits).shape[-1]
    classes = list(range(num_classes))
    kwargs = {} if multi_label else {"labels": classes}
    macro = f1_score(labels, preds, average="macro", zero_division=0, **kwargs)
    out = {"accuracy": float(accuracy_score(labels, preds)), "macro_f1": float(macro)}
    if multi_label:
        out["micro_f1"] = float(f1_score(labels, preds, average="micro", zero_division=0))
        out["f1"] = out["macro_f1"]
    elif num_classes == 2:
        out["f1"] = float(f1_score(labels, preds, pos_label=1, average="binary", zero_division=0))
    else:
        out["f1"] = out["macro_f1"]
    if per_class:
        names = list(label_names) if label_names is not None else [str(c) for c in classes]
        p, r, f, n = precision_recall_fscore_support(labels, preds, zero_division=0, **kwargs)
        out["per_class"] = {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(n[i])}
            for i, name in enumerate(names)
        }
    return out


def confusion_matrix(logits, labels) -> np.ndarray:
    """(classes, classes) counts, rows the true class; for label lists, (classes, 2, 2) one-vs-rest counts."""
    from sklearn.metrics import confusion_matrix as single
    from sklearn.metrics import multilabel_confusion_matrix

    labels = np.asarray(labels)
    num_classes = np.asarray(logits).shape[-1]
    if labels.ndim == 2:
        return multilabel_confusion_matrix(labels.astype(int), _predictions(logits, True))
    return single(labels, _predictions(logits, False), labels=list(range(num_classes)))


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


def unigram_entropy(text) -> float:
    """Entropy (nats) of the character distribution of `text` (a string, or its ids as an integer array,
    counted in one pass without a Python object a character): what a model that ignores context can reach."""
    if isinstance(text, str):
        counts = np.array(list(Counter(text).values()), dtype=np.float64)
    else:
        counts = np.bincount(np.asarray(text)).astype(np.float64)
        counts = counts[counts > 0]
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())
