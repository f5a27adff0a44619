"""Figures for the output folder and its card: the confusion matrix of a classifier (matplotlib, when installed)."""

from pathlib import Path

import numpy as np

CONFUSION_NAME = "confusion_matrix.png"


def plot_confusion_matrix(matrix, label_names, path, title="") -> Path | None:
    """Counts of (true class, predicted class) as a heat map, or one 2 x 2 map a label for label lists.

    Returns None, and writes nothing, when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure  # object API: no pyplot, no GUI backend
    except ImportError:
        return None
    matrix = np.asarray(matrix)
    if matrix.ndim == 3:  # label lists: (classes, 2, 2) one-vs-rest
        panels = [(m, ["no", "yes"], name) for m, name in zip(matrix, label_names)]
    else:
        panels = [(matrix, list(label_names), title)]
    size = 2.8 if matrix.ndim == 3 else max(4.0, 0.6 * len(label_names) + 2.5)
    fig = Figure(figsize=(size * len(panels), size), dpi=100)
    for ax, (counts, names, panel_title) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        ax.imshow(counts, cmap="Blues")
        ax.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="true", title=panel_title)
        ax.set_xticklabels(names, rotation=45 if max(len(n) for n in names) > 6 else 0, ha="right")
        ax.set_yticklabels(names)
        dark = counts.max() / 2 if counts.size else 0
        for (row, col), count in np.ndenumerate(counts):
            ax.text(col, row, f"{count:,}", ha="center", va="center", color="white" if count > dark else "black")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
