"""Figures for the output folder and its card (matplotlib, when installed): training curves, and the confusion
matrix and reliability diagram of a classifier."""

import sys
from pathlib import Path

import numpy as np

CONFUSION_NAME = "confusion_matrix.png"
RELIABILITY_NAME = "reliability_diagram.png"


_SAID_SKIPPED = []


def figure_class():
    """matplotlib's `Figure` (its object API: no pyplot, no GUI backend), or None when the `plots` extra is not
    installed, which a run is told once instead of finding its figures missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        if not _SAID_SKIPPED:
            _SAID_SKIPPED.append(True)
            print('note: figures skipped (matplotlib is not installed): pip install "seqhf[plots]"', file=sys.stderr)
        return None
    return Figure


# Past these sizes a confusion figure would take gigabytes to draw (one text a cell, inches a class): the counts are
# left out of the cells, the heat map keeps a bounded size, and label lists show their first panels only.
MAX_ANNOTATED_CLASSES = 30
MAX_FIGURE_INCHES = 20.0
MAX_LABEL_PANELS = 24
PANELS_A_ROW = 6


def plot_confusion_matrix(matrix, label_names, path, title="") -> Path | None:
    """Counts of (true class, predicted class) as a heat map, or one 2 x 2 map a label for label lists (the first
    `MAX_LABEL_PANELS` of them). Many classes get a plain heat map of bounded size.

    Returns None, and writes nothing, when matplotlib is not installed.
    """
    Figure = figure_class()
    if Figure is None:
        return None
    matrix = np.asarray(matrix)
    if matrix.ndim == 3:  # label lists: (classes, 2, 2) one-vs-rest
        panels = [(m, ["no", "yes"], name) for m, name in zip(matrix, label_names)][:MAX_LABEL_PANELS]
        rows, columns, size = -(-len(panels) // PANELS_A_ROW), min(len(panels), PANELS_A_ROW), 2.8
    else:
        panels = [(matrix, list(label_names), title)]
        rows, columns, size = 1, 1, min(MAX_FIGURE_INCHES, max(4.0, 0.6 * len(label_names) + 2.5))
    fig = Figure(figsize=(size * columns, size * rows), dpi=100)
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    for ax, (counts, names, panel_title) in zip(axes, panels):
        ax.imshow(counts, cmap="Blues")
        ax.set(xlabel="predicted", ylabel="true", title=panel_title)
        if len(names) > MAX_ANNOTATED_CLASSES:
            continue  # too many to name or count cell by cell
        ax.set(xticks=range(len(names)), yticks=range(len(names)))
        ax.set_xticklabels(names, rotation=45 if max(len(n) for n in names) > 6 else 0, ha="right")
        ax.set_yticklabels(names)
        dark = counts.max() / 2 if counts.size else 0
        for (row, col), count in np.ndenumerate(counts):
            ax.text(col, row, f"{count:,}", ha="center", va="center", color="white" if count > dark else "black")
    if matrix.ndim == 3 and len(matrix) > len(panels):
        fig.suptitle(f"the first {len(panels)} of {len(matrix)} labels")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def plot_reliability_diagram(before: dict, after: dict, path, calibration: str = "", title="") -> Path | None:
    """Accuracy against confidence before and after calibration (`calibration` names the map, e.g. "T = 0.95"),
    side by side: one bar a confidence bin (`seqhf.evaluation.calibration.reliability_bins`), the diagonal a
    calibrated model would follow, the gap to it shaded, and below each the share of predictions in each bin.
    The titles give the ECE.

    Returns None, and writes nothing, when matplotlib is not installed.
    """
    Figure = figure_class()
    if Figure is None:
        return None
    fig = Figure(figsize=(10, 6), dpi=100)
    grid = fig.add_gridspec(2, 2, height_ratios=(3, 1))
    after_name = f"after ({calibration})" if calibration else "after calibration"
    panels = ((before, "before calibration (T = 1)"), (after, after_name))
    for column, (table, name) in enumerate(panels):
        count = np.asarray(table["count"], dtype=float)
        lower, upper = np.asarray(table["lower"]), np.asarray(table["upper"])
        seen = count > 0
        width = upper - lower
        accuracy = np.where(seen, table["accuracy"], 0.0)
        confidence = np.where(seen, table["confidence"], 0.0)
        ece = float(np.sum(count[seen] / count.sum() * np.abs(accuracy[seen] - confidence[seen])))
        ax = fig.add_subplot(grid[0, column])
        ax.bar(lower[seen], accuracy[seen], width[seen], align="edge", edgecolor="black", label="accuracy")
        ax.bar(lower[seen], (confidence - accuracy)[seen], width[seen], bottom=accuracy[seen], align="edge",
               color="crimson", alpha=0.3, edgecolor="crimson", label="gap to the mean confidence")
        ax.plot([0, 1], [0, 1], "--", color="gray", label="calibrated")
        ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=f"{title + ': ' if title else ''}{name}\nECE {ece:.4f}")
        ax.legend(loc="upper left")
        share = fig.add_subplot(grid[1, column], sharex=ax)
        share.bar(lower, count / max(count.sum(), 1), width, align="edge", color="gray")
        share.set(xlabel="confidence", ylabel="share of predictions")
        share.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


SKIPPED_EVAL_KEYS = {"eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch"}
RATES = ("accuracy", "f1", "macro_f1", "micro_f1")  # in [0, 1]: one axis, from a floor that shows the scale


def final_figures(task: str, results: dict) -> dict:
    """The finished run's own figures, marked on the curves: {metric: (value, where it was measured)}."""
    if task in ("sentiment", "classification"):
        split = results.get("evaluated_on", "test")
        return {key: (results[f"{split}_{key}"], split) for key in ("accuracy", "loss")
                if isinstance(results.get(f"{split}_{key}"), (int, float))}
    nats = results.get("heldout_nats_per_char")
    if nats is None:
        return {}
    return {"loss": (nats, "held-out"), "bits_per_char": (results.get("heldout_bits_per_char"), "held-out")}


def _panels(evals) -> dict:
    """Eval metrics grouped by the axis they can share: rates in [0, 1]; anything else on its own axis."""
    keys = sorted({k for e in evals for k in e if k.startswith("eval_") and isinstance(e[k], (int, float))}
                  - SKIPPED_EVAL_KEYS)
    names = [k.removeprefix("eval_") for k in keys]
    panels = {}
    rates = [n for n in names if n in RATES]
    if rates:
        panels["rates"] = rates
    for name in names:
        if name not in RATES:
            panels[name] = [name]
    return panels


def plot_training_curves(log_history, path, final: dict | None = None) -> Path | None:
    """`training_curves_figure` as a PNG at `path`; None, and nothing written, when there is no figure."""
    fig = training_curves_figure(log_history, final)
    if fig is None:
        return None
    fig.savefig(path)
    return Path(path)


def training_curves_figure(log_history, final: dict | None = None):
    """Loss against the step (training and validation), and each validation metric.

    Rates (accuracy, F1) share an axis that starts at a round floor below the lowest value, so a small
    change looks small; perplexity and bits per character each get their own axis. `final` (see
    `final_figures`) marks the finished run's own figures at the last step. Returns None when matplotlib
    is not installed or there is nothing to draw.
    """
    Figure = figure_class()
    if Figure is None:
        return None
    final = final or {}
    train = [(e["step"], e["loss"]) for e in log_history or [] if "loss" in e and "step" in e]
    evals = [e for e in log_history or [] if "eval_loss" in e and "step" in e]
    if not train and not evals:
        return None
    panels = _panels(evals)
    fig = Figure(figsize=(5.5 * (1 + len(panels)), 4), dpi=100)
    axes = fig.subplots(1, 1 + len(panels), squeeze=False)[0]
    last_step = max([s for s, _ in train] + [e["step"] for e in evals])
    if train:
        axes[0].plot(*zip(*train), label="train loss", alpha=0.8)
    if evals:
        axes[0].plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], "o-", label="validation loss")
    _mark(axes[0], final.get("loss"), last_step)
    axes[0].set(xlabel="step", ylabel="loss (nats)", title="Loss")
    for ax, (panel, names) in zip(axes[1:], panels.items()):
        values = []
        for name in names:
            points = [(e["step"], e[f"eval_{name}"]) for e in evals if f"eval_{name}" in e]
            values += [v for _, v in points]
            ax.plot(*zip(*points), "o-", label=f"validation {name}")
            _mark(ax, final.get(name), last_step)
        if panel == "rates":
            marked = [final[n][0] for n in names if n in final]
            floor = min(values + marked)
            ax.set_ylim(max(0.0, (floor * 10 - 1) // 1 / 10), 1.0)  # a round floor at least 0.1 below the lowest
            ax.set(title="Validation accuracy and F1", ylabel="rate")
        else:
            ax.set(title=f"Validation {names[0].replace('_', ' ')}", ylabel=names[0].replace("_", " "))
        ax.set(xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def _mark(ax, figure, step) -> None:
    """The finished run's own figure as a star at the last step."""
    if figure and figure[0] is not None:
        ax.plot([step], [figure[0]], "*", markersize=14, color="crimson", label=f"{figure[1]}: {figure[0]:.4g}")
