"""Calibration at the end of a classifier's run: fit a temperature T, an entropy slope and a smoothing on the
validation split's logits (`seqhf.evaluation.calibration.fit_calibration`) and fold them into the classifier.

Dividing the last linear layer's weight and bias by T divides the logits by T; the entropy slope and the
smoothing are config fields (`calibration_entropy_slope`, `calibration_smoothing`) that the classifier's forward
applies after them. So `pipeline(...)`, remote-code loading and an ONNX export all give the calibrated scores, and
the argmax (accuracy) is what it was."""

import dataclasses
import math

import torch
from torch import nn

from ..evaluation.calibration import (
    Calibration,
    calibration_figures,
    fit_calibration,
    probabilities,
    reliability_bins,
)
from ..hub.plots import plot_reliability_diagram


def final_linear(model) -> nn.Linear:
    """The classifier's last linear layer, the one that writes the logits: `model.classifier` itself
    (Transformer) or the last `nn.Linear` in it (LSTM: dropout, [dense, activation, dropout,] linear)."""
    head = getattr(model, "classifier", None)
    if isinstance(head, nn.Linear):
        return head
    layers = [m for m in head.modules() if isinstance(m, nn.Linear)] if isinstance(head, nn.Module) else []
    if not layers:
        raise TypeError(f"{type(model).__name__} has no `classifier` ending in an nn.Linear to fold a temperature into.")
    return layers[-1]


@torch.no_grad()
def fold_temperature(model, temperature: float) -> None:
    """Divide the logits of `model` by `temperature` from now on, by scaling its last linear layer (and the
    n-gram path's weights, which add to that layer's logits, where the classifier has one)."""
    if not temperature > 0:
        raise ValueError(f"A temperature must be positive, got {temperature}.")
    layer = final_linear(model)
    layer.weight.div_(temperature)
    if layer.bias is not None:
        layer.bias.div_(temperature)
    ngrams = getattr(model, "ngrams", None)
    if ngrams is not None:
        ngrams.weight.div_(temperature)


def _logits(prediction):
    logits = prediction.predictions
    return logits[0] if isinstance(logits, tuple) else logits


def calibrate(trainer, validation_dataset) -> tuple[Calibration, dict]:
    """Fit the calibration map (`fit_calibration`: T, the entropy slope and the smoothing) on
    `validation_dataset` with the trainer's model, not yet calibrated; `fold_calibration` puts it in it.

    Returns the map and the validation split's ECE and NLL before and after (`validation_ece`, ...,
    `validation_nll_uncalibrated`). Every process predicts the whole split (the Trainer gathers it), so each
    fits the same map and their models stay equal."""
    prediction = trainer.predict(validation_dataset, metric_key_prefix="validation")
    logits = _logits(prediction)
    calibration = fit_calibration(logits, prediction.label_ids)
    return calibration, calibration_figures(logits, prediction.label_ids, calibration, "validation")


def fold_calibration(model, calibration: Calibration) -> None:
    """Calibrate `model` for good: T folded into its last linear layer (`fold_temperature`), the entropy slope
    and the smoothing in its config (`calibration_entropy_slope`, `calibration_smoothing`, which its forward
    applies), so its saved folder gives the calibrated scores through `pipeline`, remote code and ONNX."""
    if not 0.0 <= calibration.smoothing < 1.0:
        raise ValueError(f"A calibration smoothing must be in [0, 1), got {calibration.smoothing}.")
    if not math.isfinite(calibration.entropy_slope):
        raise ValueError(f"A calibration entropy slope must be finite, got {calibration.entropy_slope}.")
    fold_temperature(model, calibration.temperature)
    model.config.calibration_smoothing = float(calibration.smoothing)
    model.config.calibration_entropy_slope = float(calibration.entropy_slope)


def final_calibration(prediction, calibration: Calibration, split: str) -> dict:
    """The final split's figures from its prediction by the model before calibration: ECE and NLL of the
    calibrated scores (`{split}_ece`, `{split}_nll`: what the saved folder gives) and of the model's own."""
    return calibration_figures(_logits(prediction), prediction.label_ids, calibration, split)


def plot_final_reliability(prediction, calibration: Calibration, path, split: str):
    """The final split's reliability diagram, before and after calibration (its prediction by the model
    before calibration), at `path`; None when matplotlib is missing."""
    logits, labels = _logits(prediction), prediction.label_ids
    multi_label = labels.ndim == 2
    before = reliability_bins(probabilities(logits, multi_label), labels)
    after = reliability_bins(calibration.probabilities(logits, multi_label), labels)
    return plot_reliability_diagram(before, after, path, calibration_label(calibration), title=f"{split} split")


def calibration_label(calibration: Calibration) -> str:
    """The map in a few words, for the reliability diagram: "T = 0.95, entropy slope -0.27, smoothing 0.01"."""
    parts = [f"T = {calibration.temperature:.3g}"]
    if calibration.entropy_slope:
        parts.append(f"entropy slope {calibration.entropy_slope:+.3g}")
    if calibration.smoothing:
        parts.append(f"smoothing {calibration.smoothing:.3g}")
    return ", ".join(parts)


def calibration_fields(calibration: Calibration) -> dict:
    """The map as `eval_results.json` records it: `calibration_temperature`, `calibration_entropy_slope`,
    `calibration_smoothing` and `calibration_family` (the parameters the validation folds chose to free)."""
    return {f"calibration_{name}": value for name, value in dataclasses.asdict(calibration).items()}
