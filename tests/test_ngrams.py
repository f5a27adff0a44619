"""The LSTM classifier's wide path (issue 26): hashed word n-grams whose logits add to the recurrent head's."""

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, TrainingArguments

from seqhf import SeqLSTMConfig, SeqLSTMForSequenceClassification
from seqhf.models.lstm.modeling_lstm import NGRAM_HASH_MULTIPLIER
from seqhf.training.calibration import fold_temperature
from seqhf.training.classifier_trainer import ClassifierTrainer
from tests.conftest import ROWS, padded_batch, run_without_seqhf

VOCAB = 23
SHORT_ROWS = ROWS + [[4], [6, 2]]  # shorter than a trigram: only their unigrams (and bigram) count


def wide_classifier(buckets=97, **overrides):
    torch.manual_seed(0)
    fields = dict(vocab_size=VOCAB, embedding_size=8, hidden_size=6, pad_token_id=0, bidirectional=True,
                  pooling="concat", num_labels=3, ngram_buckets=buckets, **overrides)
    model = SeqLSTMForSequenceClassification(SeqLSTMConfig(**fields)).eval()
    if model.ngrams is not None:
        model.ngrams.weight.data.normal_(0.0, 1.0)  # it starts at zero; a trained table is not
    return model


def test_off_by_default_and_changes_the_logits_when_on():
    assert SeqLSTMConfig().ngram_buckets == 0
    plain = wide_classifier(buckets=0)
    assert plain.ngrams is None
    wide = wide_classifier()
    assert wide.ngrams.weight.shape == (97, 3)
    ids = torch.tensor([ROWS[0]])
    with torch.no_grad():
        assert not torch.allclose(plain(ids).logits, wide(ids).logits, atol=1e-3)
        wide.ngrams.weight.zero_()  # a silent table: the recurrent head's logits alone
        torch.testing.assert_close(wide(ids).logits, plain(ids).logits)
    assert not SeqLSTMForSequenceClassification(wide.config).ngrams.weight.any()  # a new table starts silent


def test_logits_are_the_hashed_rows_by_hand():
    model = wide_classifier(ngram_orders=[1, 2])
    row, buckets, p = [5, 3, 9], 97, NGRAM_HASH_MULTIPLIER
    unigrams = [(1 * p + a + 1) % buckets for a in row]
    bigrams = [(((2 * p + a + 1) % buckets) * p + b + 1) % buckets for a, b in zip(row, row[1:])]
    table = model.ngrams.weight.detach()
    expected = table[unigrams + bigrams].sum(dim=0) / len(unigrams + bigrams) ** 0.5
    with torch.no_grad():
        torch.testing.assert_close(model.ngrams(torch.tensor([row])), expected.unsqueeze(0))


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_never_counts(side):
    model = wide_classifier()
    ids, mask = padded_batch(SHORT_ROWS, side)
    with torch.no_grad():
        batched, wide = model(ids, attention_mask=mask).logits, model.ngrams(ids, mask)
        for i, row in enumerate(SHORT_ROWS):
            alone = torch.tensor([row])
            torch.testing.assert_close(batched[i : i + 1], model(alone).logits, atol=1e-5, rtol=0)
            torch.testing.assert_close(wide[i : i + 1], model.ngrams(alone), atol=1e-6, rtol=0)
    # Padding ids other than the pad id are masked all the same.
    noisy = ids.masked_fill(mask == 0, 7)
    with torch.no_grad():
        torch.testing.assert_close(model.ngrams(noisy, mask), wide)


def test_dropout_only_in_training():
    model = wide_classifier(ngram_dropout=0.5)
    ids = torch.tensor([ROWS[0] * 4])
    with torch.no_grad():
        assert torch.equal(model.ngrams(ids), model.ngrams(ids))  # eval: every n-gram, every time
        model.train()
        assert not torch.equal(model.ngrams(ids), model.ngrams(ids))


def test_save_load_equality_and_remote_code(tmp_path):
    model = wide_classifier()
    model.save_pretrained(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text())["ngram_orders"] == [1, 2, 3]
    ids, mask = padded_batch(ROWS, "left")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval()
    with torch.no_grad():
        expected = model(ids, attention_mask=mask).logits
        assert torch.equal(loaded(ids, attention_mask=mask).logits, expected)
    (tmp_path / "expected.json").write_text(json.dumps({"ids": ids.tolist(), "mask": mask.tolist(),
                                                        "logits": expected.tolist()}))
    code = """
import json, torch
from transformers import AutoModelForSequenceClassification
e = json.load(open("expected.json"))
clf = AutoModelForSequenceClassification.from_pretrained("model", trust_remote_code=True).eval()
assert clf.ngrams is not None
out = clf(torch.tensor(e["ids"]), attention_mask=torch.tensor(e["mask"])).logits
assert torch.allclose(out, torch.tensor(e["logits"]), atol=1e-6)
print("REMOTE OK")
"""
    assert "REMOTE OK" in run_without_seqhf(code, cwd=tmp_path)


def test_old_config_without_the_fields_loads_without_the_path(tmp_path):
    model = wide_classifier(buckets=0)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("ngram_buckets", "ngram_orders", "ngram_dropout"):
        config.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert loaded.ngrams is None and loaded.config.ngram_buckets == 0
    ids = torch.tensor([ROWS[0]])
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


@pytest.mark.parametrize("field, value", [("ngram_buckets", -1), ("ngram_buckets", 2**40), ("ngram_orders", [0]),
                                          ("ngram_orders", []), ("ngram_dropout", 1.0)])
def test_invalid_ngram_fields_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        SeqLSTMConfig(vocab_size=VOCAB, **{field: value})


def test_temperature_folds_into_the_table_too():
    model = wide_classifier()
    ids = torch.tensor([ROWS[0]])
    with torch.no_grad():
        before = model(ids).logits
        fold_temperature(model, 2.5)
        torch.testing.assert_close(model(ids).logits, before / 2.5)


def test_table_has_its_own_learning_rate_and_no_weight_decay(tmp_path):
    model = wide_classifier()
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, weight_decay=0.01, report_to="none",
                             use_cpu=True)
    optimizer = ClassifierTrainer(model=model, args=args, ngram_lr_factor=10.0).create_optimizer()
    (table_group,) = [g for g in optimizer.param_groups if any(p is model.ngrams.weight for p in g["params"])]
    assert table_group["lr"] == pytest.approx(1e-2) and table_group["weight_decay"] == 0.0
    assert table_group["params"] == [model.ngrams.weight]
    others = [p for g in optimizer.param_groups if g is not table_group for p in g["params"]]
    assert len(others) == len(list(model.parameters())) - 1


def test_rare_ngrams_are_dropped_after_training():
    from seqhf.training.ngram_pruning import drop_rare_ngrams, texts_per_bucket

    model = wide_classifier(buckets=2**16, ngram_orders=[1, 2])
    texts = [[5, 6, 7], [5, 6, 8], [5, 9], [], [5, 5, 5]]  # an empty text, and a token three times in one text
    bucket = {}
    for gram in ([5], [6], [7], [8], [9], [5, 6], [6, 7], [6, 8], [5, 9], [5, 5]):
        ids = torch.tensor([gram])
        bucket[tuple(gram)] = int(model.ngrams.hashed(ids, torch.ones_like(ids, dtype=torch.bool), len(gram))[0][0, 0])
    assert len(set(bucket.values())) == len(bucket)  # no collision in 65,536 buckets: the counts below are exact
    counts = texts_per_bucket(model.ngrams, [texts[:2], texts[2:]])  # batches of any size give the same counts
    assert {gram: int(counts[b]) for gram, b in bucket.items()} == {
        (5,): 4, (6,): 2, (7,): 1, (8,): 1, (9,): 1, (5, 6): 2, (6, 7): 1, (6, 8): 1, (5, 9): 1, (5, 5): 1}
    assert int(counts.sum()) == 15
    before = model.ngrams.weight.detach().clone()
    dropped = drop_rare_ngrams(model, [texts], min_texts=2)
    weight = model.ngrams.weight.detach()
    kept = [bucket[(5,)], bucket[(6,)], bucket[(5, 6)]]
    assert torch.equal(weight[kept], before[kept])
    assert dropped == 2**16 - 3 and int((weight != 0).any(dim=1).sum()) == 3  # every other row, hit or not
    assert drop_rare_ngrams(model, iter(()), min_texts=1) == 0 and torch.equal(model.ngrams.weight, weight)
    assert drop_rare_ngrams(wide_classifier(buckets=0), None, min_texts=5) == 0  # no path: nothing read
