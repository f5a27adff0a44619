"""Calibrated probabilities (issue 26): the ECE and NLL, the temperature fit, the temperature folded into the
saved head (pipeline, ONNX) and a training run that reports it, draws the reliability diagram and shows both
on its card."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, pipeline

from seqhf import SeqLSTMConfig, SeqLSTMForSequenceClassification
from seqhf import SeqTransformerConfig, SeqTransformerForSequenceClassification
from seqhf.data.classification import load_classification_data
from seqhf.data.tokenization import build_word_tokenizer
from seqhf.evaluation.calibration import (
    CALIBRATION_FAMILIES,
    Calibration,
    calibrated_probabilities,
    calibration_figures,
    ece_floor,
    entropy_scaled,
    expected_calibration_error,
    fit_calibration,
    fit_temperature,
    negative_log_likelihood,
    probabilities,
    reliability_bins,
)
from seqhf.hub.upload import validate_repo_folder
from seqhf.training import calibration as seqhf_calibration
from seqhf.training.calibration import final_linear, fold_calibration, fold_temperature
from conftest import run_without_seqhf
from seqhf.training.classifier import train_classifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = ["a wonderful film , great acting", "a terrible film , bad acting", "great fun", "boring and bad , I hated it",
         "the match and the goal", "the bank and the stock price"]


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
def test_ece_floor_is_what_a_calibrated_model_scores(multi_label):
    """Labels drawn from the scores themselves (a perfectly calibrated model): its measured ECE is not 0 but
    about the floor, which shrinks as the sample grows (about as 1/sqrt(n)) and does not depend on the labels."""
    rng = np.random.default_rng(1)
    floors = {}
    for n in (500, 8000):
        p = probabilities(rng.normal(0, 2, size=(n, 4)), multi_label)
        measured = []
        for _ in range(20):
            labels = (rng.random(p.shape) < p).astype(int) if multi_label else np.array([rng.choice(4, p=row) for row in p])
            measured.append(expected_calibration_error(p, labels))
        floors[n] = ece_floor(p, multi_label)
        assert floors[n] == ece_floor(p, multi_label)  # deterministic
        assert floors[n] == pytest.approx(np.mean(measured), rel=0.25)
    assert 2 < floors[500] / floors[8000] < 6
    logits = np.log(p) - np.log1p(-p) if multi_label else np.log(p)
    assert calibration_figures(logits, labels, Calibration(), "x")["x_ece_floor"] == pytest.approx(ece_floor(p, multi_label))


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
    figures = calibration_figures(logits, labels, Calibration(temperature), "x")
    assert figures["x_nll"] < figures["x_nll_uncalibrated"] and figures["x_ece"] < figures["x_ece_uncalibrated"]
    assert figures["x_ece"] < 0.01
    # The fitted T is the minimum: a little either way is worse.
    for nearby in (temperature * 0.98, temperature * 1.02):
        assert negative_log_likelihood(logits / nearby, labels) > figures["x_nll"]


def draw_labels(rng, p):
    return np.array([rng.choice(p.shape[1], p=row) for row in p])


@pytest.mark.parametrize("truth", [Calibration(), Calibration(smoothing=0.06), Calibration(entropy_slope=-1.0)],
                         ids=["temperature", "smoothing", "entropy"])
def test_fit_recovers_a_known_map(truth):
    """Labels drawn from the scores of `truth` applied to z; the model says z * 2: the held-out folds choose a
    family that frees what the truth has (and no smoothing where it has none), its fit finds T = 2 and the truth's
    slope and smoothing back, and its NLL is no higher than the temperature alone's."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, size=(20000, 4))
    labels = draw_labels(rng, truth.probabilities(z))
    logits = z * 2.0
    fitted = fit_calibration(logits, labels)
    assert fitted.family in CALIBRATION_FAMILIES
    if truth.smoothing:  # (without one, the folds may still free it: the fit then leaves it near 0, as below)
        assert "smoothing" in fitted.family
    assert fitted.temperature == pytest.approx(2.0, rel=0.05)
    assert fitted.smoothing == pytest.approx(truth.smoothing, abs=0.01)
    assert fitted.entropy_slope == pytest.approx(truth.entropy_slope, abs=0.15)
    joint = calibration_figures(logits, labels, fitted, "x")
    alone = calibration_figures(logits, labels, Calibration(fit_temperature(logits, labels)), "x")
    assert joint["x_nll"] <= alone["x_nll"] + 1e-12
    if truth != Calibration():  # a map the temperature alone cannot give
        assert joint["x_nll"] < alone["x_nll"] - 1e-3 and joint["x_ece"] < alone["x_ece"]
    label_lists = fit_calibration(logits, (rng.random((20000, 4)) < 0.5).astype(int))  # label lists: T alone
    assert (label_lists.smoothing, label_lists.entropy_slope, label_lists.family) == (0.0, 0.0, "temperature")


def test_entropy_scaling_sharpens_unsure_texts_and_keeps_the_order():
    z = np.array([[6.0, 0.0, -1.0], [0.3, 0.2, 0.0], [1.0, 1.0, 1.0]])
    scaled = entropy_scaled(z, -2.0)
    assert (np.argsort(scaled, axis=-1) == np.argsort(z, axis=-1)).all()
    ratio = scaled[:2, 0] / z[:2, 0]
    assert 1 < ratio[0] < ratio[1] <= np.exp(2.0) + 1e-12  # the unsure text is sharpened most
    p = np.exp(z[1]) / np.exp(z[1]).sum()
    np.testing.assert_allclose(scaled[1], z[1] * np.exp(2.0 * -(p * np.log(p)).sum() / np.log(3)))
    np.testing.assert_allclose(probabilities(scaled[2:]), 1 / 3)  # a uniform text stays uniform
    np.testing.assert_array_equal(entropy_scaled(z, 0.0), z)


def test_smoothing_keeps_the_order_and_caps_the_scores():
    z = np.array([[9.0, 0.0, -3.0], [0.1, 0.2, 0.0]])
    p = calibrated_probabilities(z, 0.5, 0.03)
    assert (p.argmax(-1) == z.argmax(-1)).all() and (np.argsort(p, axis=-1) == np.argsort(z, axis=-1)).all()
    np.testing.assert_allclose(p.sum(-1), 1.0)
    assert p.min() >= 0.01 - 1e-12 and p.max() <= 1 - 0.02 + 1e-12


# ------------------------------------------------------------------ the calibration in the saved head


def tiny_classifier(kind, tok, multi_label=False):
    torch.manual_seed(0)
    common = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id, id2label={0: "a", 1: "b", 2: "c"},
                  label2id={"a": 0, "b": 1, "c": 2},
                  problem_type="multi_label_classification" if multi_label else "single_label_classification")
    if kind == "transformer":
        model = SeqTransformerForSequenceClassification(SeqTransformerConfig(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=64, **common))
    else:  # with a hidden layer before the last linear one
        model = SeqLSTMForSequenceClassification(SeqLSTMConfig(
            embedding_size=8, hidden_size=8, bidirectional=True, pooling="concat", classifier_hidden_size=12, **common))
    final_linear(model).weight.data.normal_(0, 2.0)  # sharp scores, so a temperature shows
    return model.eval()


@pytest.mark.parametrize("multi_label", [False, True], ids=["softmax", "sigmoid"])
@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_folded_calibration_reaches_pipeline_users(tmp_path, kind, multi_label):
    tok = build_word_tokenizer(TEXTS, vocab_size=64, min_frequency=1, model_max_length=48)
    model = tiny_classifier(kind, tok, multi_label)
    assert final_linear(model) is (model.classifier if kind == "transformer" else model.classifier[-1])
    assert final_linear(model).out_features == 3
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        before = model(**enc).logits.double().numpy()
    # Label lists get a temperature alone.
    calibration = Calibration(1.7) if multi_label else Calibration(1.7, entropy_slope=-0.8, smoothing=0.05)
    fold_calibration(model, calibration)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    classify = pipeline("text-classification", model=str(tmp_path), top_k=None)  # sigmoid for label lists
    scores = classify(TEXTS)
    got = np.array([[next(s["score"] for s in row if s["label"] == name) for name in "abc"] for row in scores])
    expected = calibration.probabilities(before, multi_label)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    if not multi_label:  # the same scores from the folder's own code, where seqhf cannot be imported
        remote = run_without_seqhf(f"""
            import json
            from transformers import AutoModelForSequenceClassification, pipeline
            classify = pipeline("text-classification", model={str(tmp_path)!r}, top_k=None, trust_remote_code=True)
            print(json.dumps(classify({TEXTS!r})))
        """, tmp_path)
        remote_scores = json.loads(remote.strip().splitlines()[-1])
        got_remote = np.array([[next(s["score"] for s in row if s["label"] == name) for name in "abc"]
                               for row in remote_scores])
        np.testing.assert_allclose(got_remote, expected, atol=1e-6)
    assert not np.allclose(got, probabilities(before, multi_label), atol=1e-3)  # the scores did change ...
    if multi_label:  # ... and no label crossed the threshold
        assert ((got >= 0.5) == (before >= 0)).all()
    else:  # ... and no argmax did
        assert (got.argmax(-1) == before.argmax(-1)).all()


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_folded_calibration_survives_onnx_export(tmp_path, kind):
    pytest.importorskip("onnxruntime", reason="onnxruntime is in the `onnx` and `dev` extras")
    from seqhf.export.onnx_export import export_folder
    from seqhf.export.ort_inference import OrtTextClassifier

    tok = build_word_tokenizer(TEXTS, vocab_size=64, min_frequency=1, model_max_length=48)
    model = tiny_classifier(kind, tok)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        before = model(**enc).logits.double().numpy()
    calibration = Calibration(0.6, entropy_slope=-0.8, smoothing=0.05)
    fold_calibration(model, calibration)
    model.save_pretrained(tmp_path / "torch")
    tok.save_pretrained(tmp_path / "torch")
    export_folder(tmp_path / "torch", tmp_path / "onnx")
    scores = OrtTextClassifier(tmp_path / "onnx")(TEXTS)
    got = np.array([[next(s["score"] for s in row if s["label"] == name) for name in "abc"] for row in scores])
    np.testing.assert_allclose(got, calibration.probabilities(before), atol=1e-5)


def test_folding_needs_a_positive_temperature():
    tok = build_word_tokenizer(TEXTS, vocab_size=64, min_frequency=1, model_max_length=48)
    with pytest.raises(ValueError, match="positive"):
        fold_temperature(tiny_classifier("lstm", tok), 0.0)
    with pytest.raises(ValueError, match=r"smoothing must be in \[0, 1\)"):
        fold_calibration(tiny_classifier("lstm", tok), Calibration(smoothing=1.0))
    with pytest.raises(ValueError, match="entropy slope must be finite"):
        fold_calibration(tiny_classifier("lstm", tok), Calibration(entropy_slope=float("nan")))
    with pytest.raises(ValueError, match="calibration_entropy_slope"):
        SeqLSTMConfig(calibration_entropy_slope=float("inf"))


# ------------------------------------------------------------------ a training run


TOPICS = {"sport": ["match", "goal", "team", "coach"], "money": ["bank", "stock", "price", "market"],
          "science": ["cell", "atom", "study", "lab"]}
FILLER = ["the", "a", "new", "report", "says", "today", "and", "of"]
TINY = dict(
    arch="lstm", model=dict(embedding_size=16, hidden_size=16, bidirectional=True, pooling="concat"),
    vocab_size=200, max_length=12, truncation="head", validation_size=0.3,
    train=dict(learning_rate=2e-2, epochs=4, batch_size=16, weight_decay=0.0, warmup=0.0, scheduler="constant",
               patience=5),
)


def topic_csv(path, n, seed):
    """Topic texts; a third of them carry a word of another topic too, so the labels are not all certain."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    rows = []
    for i in range(n):
        topic = names[i % 3]
        words = list(rng.choice(FILLER, size=int(rng.integers(3, 9)))) + [TOPICS[topic][i % 4]]
        if i % 3 == 0:
            words.append(TOPICS[names[(i + 1) % 3]][i % 4])
        rng.shuffle(words)
        rows.append((" ".join(words), topic))
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)


@pytest.mark.parametrize("by_hand", [False, True], ids=["fitted", "entropy-and-smoothing-by-hand"])
def test_training_run_calibrates_reports_and_draws(tmp_path, monkeypatch, by_hand):
    """A run fits its map (the second case sets an entropy slope and a smoothing beside the fitted T, as this
    tiny run's fit may free neither), reports both sides and saves the calibrated model: a pipeline user gets
    the scores the run reported, and the model with the map taken out gives the figures before it."""
    if by_hand:
        monkeypatch.setattr(seqhf_calibration, "fit_calibration",
                            lambda logits, labels: Calibration(fit_calibration(logits, labels).temperature, -0.8, 0.05,
                                                               "temperature+entropy+smoothing"))
    folder = tmp_path / "data"
    folder.mkdir()
    topic_csv(folder / "train.csv", 120, 0)
    topic_csv(folder / "test.csv", 60, 1)
    out = tmp_path / "out"
    results = train_classifier(dict(source=str(folder)), TINY, out, baseline=False, report_to="none", disable_tqdm=True)
    calibration = Calibration(results["calibration_temperature"], results["calibration_entropy_slope"],
                              results["calibration_smoothing"], results["calibration_family"])
    assert 0.05 <= calibration.temperature <= 20 and calibration.temperature != pytest.approx(1.0, abs=1e-3)
    assert calibration.family in CALIBRATION_FAMILIES
    if by_hand:
        assert (calibration.entropy_slope, calibration.smoothing) == (-0.8, 0.05)
    for split in ("validation", "test"):
        for key in ("ece", "nll", "ece_uncalibrated", "nll_uncalibrated"):
            assert 0 <= results[f"{split}_{key}"] < 5, (split, key)
    # The fit minimises the validation NLL; T = 1 (the model as trained) is one of the candidates.
    if not by_hand:  # (a map set by hand need not be the fit's minimum)
        assert results["validation_nll"] <= results["validation_nll_uncalibrated"] + 1e-9
    assert results["test_nll"] == pytest.approx(results["test_loss"], abs=1e-5)  # the saved model's own loss

    # What a pipeline user gets on the test texts are the calibrated scores the run reported, with the
    # run's accuracy; the saved model without its slope and smoothing, its logits times T, is the model before.
    test = load_classification_data(str(folder)).splits["test"]
    names, texts, labels = results["labels"], list(test["text"]), np.array(test["labels"])

    def scores_of(classify, **kwargs):
        rows = classify(texts, top_k=None, **kwargs)
        return np.array([[next(s["score"] for s in row if s["label"] == name) for name in names] for row in rows])

    probs = scores_of(pipeline("text-classification", model=str(out)))
    assert float(np.mean(probs.argmax(-1) == labels)) == pytest.approx(results["test_accuracy"])
    assert expected_calibration_error(probs, labels) == pytest.approx(results["test_ece"], abs=1e-5)
    assert negative_log_likelihood(np.log(probs), labels) == pytest.approx(results["test_nll"], abs=1e-5)
    bare = AutoModelForSequenceClassification.from_pretrained(out, calibration_smoothing=0.0, calibration_entropy_slope=0.0)
    before = calibration.temperature * scores_of(pipeline("text-classification", model=bare, tokenizer=str(out)),
                                                 function_to_apply="none")
    assert expected_calibration_error(probabilities(before), labels) == pytest.approx(results["test_ece_uncalibrated"], abs=1e-5)
    np.testing.assert_allclose(probs, calibration.probabilities(before), atol=1e-6)

    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["calibration_temperature"] == calibration.temperature and saved["test_ece"] == results["test_ece"]
    assert (out / "reliability_diagram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 0 < saved["test_ece_floor"] < 0.5
    config = json.loads((out / "config.json").read_text())
    assert (config["calibration_smoothing"], config["calibration_entropy_slope"]) == (calibration.smoothing,
                                                                                    calibration.entropy_slope)
    card = (out / "README.md").read_text()
    temperature, smoothed, sloped = calibration.temperature, bool(calibration.smoothing), bool(calibration.entropy_slope)
    assert ("a smoothing of 0.0500" in card and "no score exceeds 0.9667" in card) == by_hand
    assert ("entropy slope of -0.8000" in card) == by_hand
    assert ("kept the smoothing" if smoothed else "left a smoothing out") in card  # the folds' choice, said
    assert ("None of them changes the argmax" if smoothed or sloped else "Dividing by T does not change the argmax") in card
    assert f"ECE of about {saved['test_ece_floor']:.4f} on\n{results['test_examples']:,} texts" in card
    assert f"T = {temperature:.4f}" in card
    assert (f"| expected calibration error (15 bins) | {results['test_ece_uncalibrated']:.4f} | "
            f"{results['test_ece']:.4f} |") in card
    assert f"| negative log-likelihood (nats) | {results['test_nll_uncalibrated']:.4f} | {results['test_nll']:.4f} |" in card
    assert card.index("![Confusion matrix](confusion_matrix.png)") < card.index("![Reliability diagram](reliability_diagram.png)")
    assert "reliability_diagram.png" in {f.path for f in validate_repo_folder(out)}  # published with the card
