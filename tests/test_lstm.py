"""Core recurrent models: config validation, padding invariance, losses, by-hand checks, Auto classes."""

import json

import pytest
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    Trainer,
    TrainingArguments,
)

from seqhf import SeqLSTMConfig, SeqLSTMForCausalLM, SeqLSTMForSequenceClassification, SeqLSTMModel
from tests.conftest import ROWS, padded_batch, run_without_seqhf

VOCAB = 23


def tiny_config(**overrides):
    fields = dict(vocab_size=VOCAB, embedding_size=8, hidden_size=6, num_hidden_layers=2, pad_token_id=0)
    fields.update(overrides)
    return SeqLSTMConfig(**fields)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "field, value",
    [
        ("vocab_size", 0),
        ("embedding_size", -1),
        ("hidden_size", 0),
        ("num_hidden_layers", 0),
        ("classifier_hidden_size", 0),
        ("classifier_activation", "rleu"),
        ("initializer_range", -0.02),
        ("rnn_type", "transformer"),
        ("pooling", "median"),
        ("embedding_dropout", 1.0),
        ("hidden_dropout", -0.1),
        ("classifier_dropout", 1.5),
        ("pad_token_id", VOCAB),
        ("bos_token_id", -1),
    ],
)
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(**{field: value})


def test_bidirectional_causal_lm_is_refused():
    with pytest.raises(ValueError, match="bidirectional"):
        SeqLSTMForCausalLM(tiny_config(bidirectional=True))


def test_tied_embeddings_need_matching_sizes():
    with pytest.raises(ValueError, match="embedding_size"):
        tiny_config(tie_word_embeddings=True)
    model = SeqLSTMForCausalLM(tiny_config(embedding_size=6, tie_word_embeddings=True))
    assert model.lm_head.weight.data_ptr() == model.model.embeddings.weight.data_ptr()


def test_config_round_trip_and_auto_map(tmp_path):
    config = tiny_config(rnn_type="gru", pooling="concat", classifier_hidden_size=4)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert set(saved["auto_map"]) == {
        "AutoConfig",
        "AutoModel",
        "AutoModelForSequenceClassification",
        "AutoModelForCausalLM",
    }
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, SeqLSTMConfig)
    assert (loaded.rnn_type, loaded.pooling, loaded.classifier_hidden_size) == ("gru", "concat", 4)


# ---------------------------------------------------------------- padding invariance


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("pooling", ["last", "max", "mean", "concat"])
def test_classifier_padding_invariance(side, rnn_type, pooling):
    torch.manual_seed(0)
    config = tiny_config(rnn_type=rnn_type, pooling=pooling, bidirectional=True, classifier_hidden_size=5)
    model = SeqLSTMForSequenceClassification(config).eval()
    ids, mask = padded_batch(ROWS, side)
    with torch.no_grad():
        batched = model(ids, attention_mask=mask).logits
        for i, row in enumerate(ROWS):
            alone = model(torch.tensor([row])).logits
            torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_causal_lm_padding_invariance(side):
    torch.manual_seed(0)
    model = SeqLSTMForCausalLM(tiny_config()).eval()
    ids, mask = padded_batch(ROWS, side)
    with torch.no_grad():
        out = model(ids, attention_mask=mask)
        for i, row in enumerate(ROWS):
            alone = model(torch.tensor([row]))
            real = mask[i].bool()
            torch.testing.assert_close(out.logits[i][real], alone.logits[0], atol=1e-5, rtol=0)
            for batched_state, alone_state in zip(out.final_state, alone.final_state):
                torch.testing.assert_close(batched_state[i], alone_state[0], atol=1e-5, rtol=0)


def test_padding_does_not_leak_into_gradients():
    torch.manual_seed(0)
    model = SeqLSTMForSequenceClassification(tiny_config(pooling="concat"))
    ids, mask = padded_batch(ROWS, "right")
    embeds = model.model.embeddings(ids).detach().requires_grad_()
    model(inputs_embeds=embeds, attention_mask=mask).logits.sum().backward()
    assert embeds.grad[~mask.bool()].abs().max() == 0
    assert embeds.grad[mask.bool()].abs().max() > 0


# ---------------------------------------------------------------- outputs and losses


def test_backbone_outputs_and_hidden_states():
    torch.manual_seed(0)
    config = tiny_config(bidirectional=True, num_hidden_layers=3)
    model = SeqLSTMModel(config).eval()
    ids = torch.randint(1, VOCAB, (2, 5))
    out = model(ids, output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 5, 12)
    assert len(out.hidden_states) == 4 and out.hidden_states[0].shape == (2, 5, 8)
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    h, c = out.final_state
    assert h.shape == c.shape == (2, 6, 6)  # (batch, layers * directions, hidden): the batch first
    # The forward direction's final state is the last output's first half.
    torch.testing.assert_close(h[:, -2], out.last_hidden_state[:, -1, :6])
    as_tuple = model(ids, return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.last_hidden_state)


def test_initial_state_continues_a_sequence():
    torch.manual_seed(0)
    model = SeqLSTMForCausalLM(tiny_config()).eval()
    ids = torch.randint(1, VOCAB, (2, 9))
    whole = model(ids)
    first = model(ids[:, :4])
    second = model(ids[:, 4:], initial_state=first.final_state)
    torch.testing.assert_close(torch.cat([first.logits, second.logits], 1), whole.logits, atol=1e-6, rtol=0)


def test_problem_types_follow_transformers_rules():
    torch.manual_seed(0)
    ids = torch.randint(1, VOCAB, (4, 6))
    single = SeqLSTMForSequenceClassification(tiny_config(num_labels=3))
    labels = torch.tensor([0, 2, 1, 2])
    out = single(ids, labels=labels)
    torch.testing.assert_close(out.loss, nn.functional.cross_entropy(out.logits, labels))
    assert single.config.problem_type == "single_label_classification"

    multi = SeqLSTMForSequenceClassification(tiny_config(num_labels=3, problem_type="multi_label_classification"))
    targets = torch.tensor([[1.0, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]])
    out = multi(ids, labels=targets)
    torch.testing.assert_close(out.loss, nn.functional.binary_cross_entropy_with_logits(out.logits, targets))

    regression = SeqLSTMForSequenceClassification(tiny_config(num_labels=1))
    values = torch.tensor([0.5, -1.0, 2.0, 0.0])
    out = regression(ids, labels=values)
    assert regression.config.problem_type == "regression"
    torch.testing.assert_close(out.loss, nn.functional.mse_loss(out.logits.squeeze(-1), values))


def test_causal_lm_loss_is_shifted_next_token_cross_entropy():
    torch.manual_seed(0)
    model = SeqLSTMForCausalLM(tiny_config())
    ids = torch.randint(1, VOCAB, (2, 7))
    out = model(ids, labels=ids)
    expected = nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad_id", [-1, VOCAB, VOCAB + 100])
def test_out_of_range_ids_raise_clear_error(bad_id):
    model = SeqLSTMForSequenceClassification(tiny_config())
    with pytest.raises(ValueError, match=r"outside \[0, 23\)"):
        model(torch.tensor([[1, 2, bad_id]]))


def test_other_bad_inputs_raise_clear_errors():
    model = SeqLSTMForCausalLM(tiny_config())
    with pytest.raises(ValueError, match="empty"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="all zeros"):
        model(torch.tensor([[1, 2], [3, 4]]), attention_mask=torch.tensor([[1, 1], [0, 0]]))
    with pytest.raises(ValueError, match="attention_mask"):
        model(torch.tensor([[1, 2, 3]]), attention_mask=torch.tensor([[1, 1]]))
    with pytest.raises(ValueError, match="input_ids"):
        model(torch.tensor([1, 2, 3]))
    classifier = SeqLSTMForSequenceClassification(tiny_config())
    with pytest.raises(ValueError, match="labels"):
        classifier(torch.tensor([[1, 2, 3]]), labels=torch.tensor([2]))


# ---------------------------------------------------------------- the chapter's by-hand checks


def test_simple_rnn_by_hand():
    """h_t = tanh(W_xh x_t + b_xh + W_hh h_{t-1} + b_hh), as the book computes it step by step."""
    torch.manual_seed(0)
    model = SeqLSTMModel(tiny_config(rnn_type="rnn", num_hidden_layers=1)).eval()
    ids = torch.randint(1, VOCAB, (1, 5))
    out = model(ids)
    rnn = model.layers[0]
    x = model.embeddings(ids)[0]
    h = torch.zeros(6)
    for t in range(5):
        h = torch.tanh(rnn.weight_ih_l0 @ x[t] + rnn.bias_ih_l0 + rnn.weight_hh_l0 @ h + rnn.bias_hh_l0)
        torch.testing.assert_close(out.last_hidden_state[0, t], h, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.final_state[0][0, 0], h, atol=1e-5, rtol=0)


def test_lstm_by_hand():
    """Input, forget, cell and output gates from the layer's own weights (torch's i, f, g, o order)."""
    torch.manual_seed(0)
    model = SeqLSTMModel(tiny_config(num_hidden_layers=1)).eval()
    ids = torch.randint(1, VOCAB, (1, 5))
    out = model(ids)
    lstm = model.layers[0]
    x = model.embeddings(ids)[0]
    h, c = torch.zeros(6), torch.zeros(6)
    for t in range(5):
        gates = lstm.weight_ih_l0 @ x[t] + lstm.bias_ih_l0 + lstm.weight_hh_l0 @ h + lstm.bias_hh_l0
        i, f, g, o = gates.chunk(4)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        torch.testing.assert_close(out.last_hidden_state[0, t], h, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.final_state[0][0, 0], h, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.final_state[1][0, 0], c, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- saving, Auto classes, remote code


def classifier_folder(path):
    torch.manual_seed(0)
    config = tiny_config(bidirectional=True, pooling="concat", classifier_hidden_size=4, rnn_type="gru")
    model = SeqLSTMForSequenceClassification(config).eval()
    model.save_pretrained(path)
    return model


def test_save_load_equality_with_every_auto_class(tmp_path):
    model = classifier_folder(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {
        "model.safetensors",
        "config.json",
        "configuration_lstm.py",
        "modeling_lstm.py",
    }
    assert not list(tmp_path.glob("*.bin"))
    ids, mask = padded_batch(ROWS, "right")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is SeqLSTMForSequenceClassification
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    torch.testing.assert_close(loaded(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)
    backbone = AutoModel.from_pretrained(tmp_path).eval()
    assert type(backbone) is SeqLSTMModel
    torch.testing.assert_close(backbone(ids).last_hidden_state, model.model(ids).last_hidden_state)
    # A classifier folder has no LM head: AutoModelForCausalLM refuses it, bidirectional or not.
    SeqLSTMForSequenceClassification(tiny_config()).save_pretrained(tmp_path / "uni")
    for folder in (tmp_path, tmp_path / "uni"):
        with pytest.raises(ValueError, match="SeqLSTMForSequenceClassification .a text classifier., not a language"):
            AutoModelForCausalLM.from_pretrained(folder)
    config = AutoConfig.from_pretrained(tmp_path / "uni")
    config.architectures = None  # on purpose: a new LM from a classifier's shape
    assert type(AutoModelForCausalLM.from_config(config)) is SeqLSTMForCausalLM


def test_causal_lm_save_load_equality(tmp_path):
    torch.manual_seed(0)
    model = SeqLSTMForCausalLM(tiny_config(embedding_size=6, tie_word_embeddings=True)).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(1, VOCAB, (2, 6))
    assert torch.equal(loaded(ids).logits, model(ids).logits)
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embeddings.weight.data_ptr()


REMOTE_CHECK = """
import json, torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification
expected = json.load(open("expected.json"))
ids = torch.tensor(expected["ids"])
clf = AutoModelForSequenceClassification.from_pretrained("{folder}", trust_remote_code=True).eval()
assert type(clf).__module__.startswith("transformers_modules"), type(clf).__module__
assert torch.allclose(clf(ids).logits, torch.tensor(expected["logits"]), atol=1e-6)
assert type(AutoModel.from_pretrained("{folder}", trust_remote_code=True)).__name__ == "SeqLSTMModel"
try:
    AutoModelForCausalLM.from_pretrained("{folder}", trust_remote_code=True)
    raise SystemExit("a classifier folder loaded as a causal LM")
except ValueError as err:
    assert "a text classifier" in str(err), err
assert AutoConfig.from_pretrained("{folder}", trust_remote_code=True).model_type == "seqhf-lstm"
clf.save_pretrained("resaved")
again = AutoModelForSequenceClassification.from_pretrained("resaved", trust_remote_code=True).eval()
assert torch.allclose(again(ids).logits, torch.tensor(expected["logits"]), atol=1e-6)
print("REMOTE OK")
"""


def test_remote_code_without_seqhf(tmp_path):
    torch.manual_seed(0)
    model = SeqLSTMForSequenceClassification(tiny_config(pooling="mean")).eval()
    model.save_pretrained(tmp_path / "model")
    ids = torch.randint(1, VOCAB, (2, 6))
    expected = {"ids": ids.tolist(), "logits": model(ids).logits.tolist()}
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    assert "REMOTE OK" in run_without_seqhf(REMOTE_CHECK.format(folder="model"), cwd=tmp_path)


def test_trainer_checkpoints_carry_code_and_load_remotely(tmp_path):
    torch.manual_seed(0)
    model = SeqLSTMForCausalLM(tiny_config())
    ids = torch.randint(1, VOCAB, (8, 6))
    train = [{"input_ids": row, "labels": row} for row in ids]
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"),
        max_steps=2,
        save_steps=1,
        per_device_train_batch_size=4,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=train).train()
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert (checkpoint / "modeling_lstm.py").is_file() and (checkpoint / "configuration_lstm.py").is_file()
    code = """
import torch
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained("run/checkpoint-2", trust_remote_code=True)
print(m(torch.tensor([[1, 2, 3]])).logits.shape)
"""
    assert "torch.Size([1, 3, 23])" in run_without_seqhf(code, cwd=tmp_path)


@pytest.mark.parametrize("reentrant", [False, True])
@pytest.mark.parametrize("overrides", [dict(), dict(rnn_type="gru", bidirectional=True, weight_dropout=0.3)])
def test_gradient_checkpointing_gives_the_same_gradients(overrides, reentrant):
    """`gradient_checkpointing_enable()` (or Trainer's `gradient_checkpointing=True`) recomputes each recurrent
    layer in the backward pass: the same loss and gradients, weight dropout's masks included. Also with torch's
    reentrant checkpoint (`gradient_checkpointing_kwargs={"use_reentrant": True}`), which sees only tensor arguments:
    through the padded batch's PackedSequence and the final-state tuple the layers got no gradient."""
    config = tiny_config(num_hidden_layers=2, hidden_dropout=0.2, num_labels=3, **overrides)
    ids, mask = padded_batch(ROWS, "right")
    labels = torch.tensor([0, 2, 1][: len(ROWS)])

    def loss_and_grads(checkpointing):
        torch.manual_seed(0)
        model = SeqLSTMForSequenceClassification(config).train()
        if checkpointing:
            # (transformers 5.25 renamed it `activation_checkpointing_enable`; Trainer calls whichever it has)
            getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)(
                {"use_reentrant": reentrant}
            )
            assert model.model.gradient_checkpointing
        torch.manual_seed(1)
        loss = model(ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        return loss, [p.grad for p in model.parameters() if p.grad is not None]

    loss, grads = loss_and_grads(False)
    checkpointed_loss, checkpointed_grads = loss_and_grads(True)
    torch.testing.assert_close(checkpointed_loss, loss)
    assert len(checkpointed_grads) == len(grads)
    for checkpointed, plain in zip(checkpointed_grads, grads):
        torch.testing.assert_close(checkpointed, plain)


def test_recurrent_layers_are_transformers_checkpointing_layers_and_every_n_layers_counts_them():
    """transformers checkpoints and counts a model's `GradientCheckpointingLayer`s: the LSTM had none, so
    `activation_checkpointing_enable(every_n_layers=2)` recomputed every layer and tools that look for them (PEFT's
    aLoRA hooks, transformers' own tests) found nothing. Its checkpointing units hold no weights: the keys stay."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    model = SeqLSTMForSequenceClassification(tiny_config(num_hidden_layers=3, num_labels=3)).train()
    keys = list(model.state_dict())
    units = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert len(units) == 3 and not any(unit.state_dict() for unit in units)
    model.activation_checkpointing_enable(every_n_layers=2)
    assert [unit.gradient_checkpointing for unit in units] == [True, False, True]
    runs, run_layer = [], model.model._run_layer

    def counted_run(layer, *args):
        runs.append(list(model.model.layers).index(layer))
        return run_layer(layer, *args)

    model.model._run_layer = counted_run  # (torch's non-reentrant checkpoint runs no forward hooks when it recomputes)
    ids, mask = padded_batch(ROWS, "right")
    model(ids, attention_mask=mask, labels=torch.tensor([0, 2, 1][: len(ROWS)])).loss.backward()
    assert sorted(runs) == [0, 0, 1, 2, 2]  # the checkpointed layers ran again in the backward pass
    assert list(model.state_dict()) == keys and "model.layers.0.weight_hh_l0" in keys


def test_torch_export_of_the_classifier_without_padding_and_a_clear_error_with_it():
    """torch.export failed deep in torch on the ids' range check; a padded batch (packed sequences) cannot be exported
    by torch, which is now said."""
    torch.manual_seed(0)
    model = SeqLSTMForSequenceClassification(
        SeqLSTMConfig(vocab_size=20, embedding_size=8, hidden_size=8, num_labels=3, bidirectional=True)
    ).eval()
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 9, 1]])
    exported = torch.export.export(model, (), {"input_ids": ids}, dynamic_shapes={"input_ids": {0: torch.export.Dim("batch")}})
    other = torch.tensor([[5, 6, 7, 8], [1, 2, 3, 4], [9, 9, 9, 9]])
    torch.testing.assert_close(exported.module()(input_ids=other).logits, model(other).logits)
    with pytest.raises(ValueError, match="torch.export cannot trace how the recurrent layers read a padded batch"):
        torch.export.export(model, (), {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
