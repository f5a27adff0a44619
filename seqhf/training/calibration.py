"""Calibration at the end of a classifier's run: fit a temperature T and a smoothing on the validation split's
logits (`seqhf.evaluation.calibration.fit_calibration`) and fold them into the classifier.

Dividing the last linear layer's weight and bias by T divides the logits by T; the smoothing is a config field
(`calibration_smoothing`) that the classifier's forward applies after them. So `pipeline(...)`, remote-code
loading and an ONNX export all give the calibrated scores, and the argmax (accuracy) is what it was."""

import torch
from torch import nn

from ..evaluation.calibration import (
    calibrated_probabilities,
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


def calibrate(trainer, validation_dataset) -> tuple[float, float, dict]:
    """Fit the temperature and smoothing (`fit_calibration`) on `validation_dataset` with the trainer's
    model, not yet calibrated; `fold_calibration` puts them in it.

    Returns T, the smoothing and the validation split's ECE and NLL before and after (`validation_ece`, ...,
    `validation_nll_uncalibrated`). Every process predicts the whole split (the Trainer gathers it), so each
    fits the same pair and their models stay equal."""
    prediction = trainer.predict(validation_dataset, metric_key_prefix="validation")
    logits = _logits(prediction)
    temperature, smoothing = fit_calibration(logits, prediction.label_ids)
    return temperature, smoothing, calibration_figures(logits, prediction.label_ids, temperature, "validation", smoothing)


def fold_calibration(model, temperature: float, smoothing: float) -> None:
    """Calibrate `model` for good: T folded into its last linear layer (`fold_temperature`), the smoothing
    in its config (`calibration_smoothing`, which its forward applies), so its saved folder gives the
    calibrated scores through `pipeline`, remote code and ONNX."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"A calibration smoothing must be in [0, 1), got {smoothing}.")
    fold_temperature(model, temperature)
    model.config.calibration_smoothing = float(smoothing)


def final_calibration(prediction, temperature: float, smoothing: float, split: str) -> dict:
    """The final split's figures from its prediction by the model before calibration: ECE and NLL of the
    calibrated scores (`{split}_ece`, `{split}_nll`: what the saved folder gives) and of the model's own."""
    return calibration_figures(_logits(prediction), prediction.label_ids, temperature, split, smoothing)


def plot_final_reliability(prediction, temperature: float, smoothing: float, path, split: str):
    """The final split's reliability diagram, before and after calibration (its prediction by the model
    before calibration), at `path`; None when matplotlib is missing."""
    logits, labels = _logits(prediction), prediction.label_ids
    multi_label = labels.ndim == 2
    before = reliability_bins(probabilities(logits, multi_label), labels)
    after = reliability_bins(calibrated_probabilities(logits, temperature, smoothing, multi_label), labels)
    return plot_reliability_diagram(before, after, path, temperature=temperature, smoothing=smoothing,
                                    title=f"{split} split")
