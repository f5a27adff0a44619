"""Temperature scaling at the end of a classifier's run: fit T on the validation split's logits
(`seqhf.evaluation.calibration.fit_temperature`) and fold it into the classifier's last linear layer.

Dividing that layer's weight and bias by T divides the logits by T, so the saved folder needs no new config
field or code: `pipeline(...)`, remote-code loading and an ONNX export all give the calibrated scores, and
the argmax (accuracy) is what it was."""

import torch
from torch import nn

from ..evaluation.calibration import (
    calibration_figures,
    fit_temperature,
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


def calibrate(trainer, validation_dataset) -> tuple[float, dict]:
    """Fit the temperature on `validation_dataset` with the trainer's (final) model and fold it in.

    Returns T and the validation split's ECE and NLL before and after (`validation_ece`, ...,
    `validation_nll_uncalibrated`). Every process predicts
    the whole split (the Trainer gathers it), so each fits the same T and their models stay equal."""
    prediction = trainer.predict(validation_dataset, metric_key_prefix="validation")
    logits = _logits(prediction)
    temperature = fit_temperature(logits, prediction.label_ids)
    fold_temperature(trainer.model, temperature)
    return temperature, calibration_figures(logits, prediction.label_ids, temperature, "validation")


def final_calibration(prediction, temperature: float, split: str) -> dict:
    """The final split's figures from its prediction by the calibrated model: ECE and NLL as they are
    (`{split}_ece`, `{split}_nll`), and of the logits times T, the model's before calibration."""
    logits = _logits(prediction) * temperature
    return calibration_figures(logits, prediction.label_ids, temperature, split)


def plot_final_reliability(prediction, temperature: float, path, split: str):
    """The final split's reliability diagram, before (logits times T) and after calibration, at `path`;
    None when matplotlib is missing."""
    logits, labels = _logits(prediction), prediction.label_ids
    multi_label = labels.ndim == 2
    before = reliability_bins(probabilities(logits * temperature, multi_label), labels)
    after = reliability_bins(probabilities(logits, multi_label), labels)
    return plot_reliability_diagram(before, after, path, temperature=temperature, title=f"{split} split")
