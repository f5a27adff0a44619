"""Calibrated probabilities (issue 26): the ECE and NLL, the temperature fit."""

import numpy as np
import pytest
import torch

from seqhf.evaluation.calibration import (
    calibration_figures,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    probabilities,
    reliability_bins,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ the figures


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.25, 0.75]])
    labels = np.array([0, 1, 1, 0])
    # 15 bins: {0.9, 0.9} share (0.867, 0.933]: accuracy 1/2, confidence 0.9; 0.7 (right) and 0.75 (wrong)
    # each have a bin of their own.
    assert expected_calibration_error(probs, labels) == pytest.approx(2 / 4 * 0.4 + 1 / 4 * 0.3 + 1 / 4 * 0.75)
    # 5 bins: 0.7 and 0.75 share (0.6, 0.8]: accuracy 1/2, mean confidence 0.725.
    assert expected_calibration_error(probs, labels, bins=5) == pytest.approx(2 / 4 * 0.4 + 2 / 4 * 0.225)
    table = reliability_bins(probs, labels)
    assert table["count"].sum() == 4 and table["count"][13] == 2 and table["accuracy"][13] == 0.5
    assert np.isnan(table["accuracy"][0])  # an empty bin
    assert expected_calibration_error(np.eye(3), [0, 1, 2]) == 0.0  # sure and right


def test_multi_label_ece_reads_each_pair_as_yes_or_no():
    probs = np.array([[0.9, 0.2], [0.6, 0.95]])  # confidences 0.9, 0.8, 0.6, 0.95
    labels = np.array([[1, 0], [0, 1]])  # right, right, wrong, right
    expected = (abs(1 - 0.9) + abs(1 - 0.8) + abs(0 - 0.6) + abs(1 - 0.95)) / 4  # each in its own bin
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)


def test_nll_is_the_training_loss():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 4, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, 4, (50,), generator=g)
    assert negative_log_likelihood(logits.numpy(), labels.numpy()) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, labels)), rel=1e-12)
    targets = torch.randint(0, 2, (50, 4), generator=g)
    assert negative_log_likelihood(logits.numpy() * 10, targets.numpy()) == pytest.approx(
        float(torch.nn.functional.binary_cross_entropy_with_logits(logits * 10, targets.double())), rel=1e-12)


@pytest.mark.parametrize("multi_label", [False, True], ids=["softmax", "sigmoid"])
@pytest.mark.parametrize("true_temperature", [0.5, 2.5])
def test_fit_recovers_a_known_temperature(multi_label, true_temperature):
    """Labels drawn from softmax(z) (or sigmoid(z)); the model says z * T: the fit finds T back."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, size=(20000, 4))
    p = probabilities(z, multi_label)
    labels = (rng.random(p.shape) < p).astype(int) if multi_label else np.array([rng.choice(4, p=row) for row in p])
    logits = z * true_temperature
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(true_temperature, rel=0.05)
    figures = calibration_figures(logits, labels, temperature, "x")
    assert figures["x_nll"] < figures["x_nll_uncalibrated"] and figures["x_ece"] < figures["x_ece_uncalibrated"]
    assert figures["x_ece"] < 0.01
    # The fitted T is the minimum: a little either way is worse.
    for nearby in (temperature * 0.98, temperature * 1.02):
        assert negative_log_likelihood(logits / nearby, labels) > figures["x_nll"]
