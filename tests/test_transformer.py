"""Small Transformers: config validation, attention by hand, SDPA vs eager, padding invariance,
KV-cache generation, gradient checkpointing, resizing, length limit, saving, Auto classes, remote code."""

import json

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification
from transformers.cache_utils import DynamicCache

from seqhf import SeqTransformerConfig, SeqTransformerForCausalLM, SeqTransformerForSequenceClassification, SeqTransformerModel
from seqhf.models.transformer.modeling_transformer import CACHE_FIELD, sinusoids
from tests.conftest import ROWS, padded_batch, run_without_seqhf

VOCAB = 31
MAX_POS = 24


def tiny_config(**overrides):
    fields = dict(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=32,
        max_position_embeddings=MAX_POS,
        embedding_dropout=0.0,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        classifier_dropout=0.0,
        pad_token_id=0,
    )
    fields.update(overrides)
    return SeqTransformerConfig(**fields)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared, loaded CPU the threads' spin-waits
    make a step of a few milliseconds take a second."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "field, value",
    [
        ("vocab_size", 0),
        ("hidden_size", -4),
        ("num_hidden_layers", 0),
        ("num_attention_heads", 0),
        ("intermediate_size", 0),
        ("max_position_embeddings", 0),
        ("position_embedding_type", "rotary"),
        ("pooling", "max"),
        ("hidden_act", "swishy"),
        ("embedding_dropout", 1.0),
        ("hidden_dropout", -0.1),
        ("attention_dropout", 1.5),
        ("classifier_dropout", 2.0),
        ("layer_norm_eps", 0.0),
        ("initializer_range", -0.02),
        ("pad_token_id", VOCAB),
        ("bos_token_id", -1),
        ("eos_token_id", VOCAB + 3),
    ],
)
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(**{field: value})


def test_heads_must_divide_hidden_size_and_error_names_both():
    with pytest.raises(ValueError, match=r"`hidden_size` \(30\).*`num_attention_heads` \(4\)"):
        tiny_config(hidden_size=30)


def test_default_config_points_all_four_auto_classes_at_the_code():
    config = SeqTransformerConfig()
    assert config.model_type == "seqhf-transformer"
    assert set(config.auto_map) == {
        "AutoConfig",
        "AutoModel",
        "AutoModelForSequenceClassification",
        "AutoModelForCausalLM",
    }
    assert config.auto_map["AutoModelForCausalLM"] == "modeling_transformer.SeqTransformerForCausalLM"


# ---------------------------------------------------------------- attention


def test_single_head_attention_by_hand():
    """softmax(QKᵀ/√d)·V from the layer's own weights, bidirectional and causal."""
    torch.manual_seed(0)
    model = SeqTransformerModel(tiny_config(num_attention_heads=1, hidden_size=8)).eval()
    attention = model.layers[0].attention
    x = torch.randn(1, 5, 8)
    w, b = attention.qkv_proj.weight, attention.qkv_proj.bias
    q, k, v = (x[0] @ w[i * 8 : (i + 1) * 8].T + b[i * 8 : (i + 1) * 8] for i in range(3))
    scores = q @ k.T / 8**0.5
    for causal in (False, True):
        if causal:
            scores = scores.masked_fill(torch.ones(5, 5).triu(1).bool(), float("-inf"))
        expected = torch.softmax(scores, dim=-1) @ v @ attention.out_proj.weight.T + attention.out_proj.bias
        with torch.no_grad():
            output, _ = attention(x, is_causal=causal)
        torch.testing.assert_close(output[0], expected, atol=1e-6, rtol=1e-5)


def test_sinusoidal_table_is_the_papers():
    table = sinusoids(10, 6)
    pos, i = 7, 2  # dims 2i and 2i+1
    angle = torch.tensor(pos / 10000 ** (2 * i / 6))
    torch.testing.assert_close(table[pos, 2 * i], torch.sin(angle))
    torch.testing.assert_close(table[pos, 2 * i + 1], torch.cos(angle))


@pytest.mark.parametrize("model_class", [SeqTransformerForCausalLM, SeqTransformerForSequenceClassification])
def test_sdpa_and_eager_agree_and_eager_returns_weights(model_class):
    torch.manual_seed(0)
    config = tiny_config()
    sdpa = model_class(config).eval()
    assert sdpa.config._attn_implementation == "sdpa"
    eager = model_class(tiny_config(attn_implementation="eager")).eval()
    eager.load_state_dict(sdpa.state_dict())
    assert eager.config._attn_implementation == "eager"
    ids, mask = padded_batch(ROWS, "left")
    for kwargs in ({}, {"attention_mask": mask}):
        torch.testing.assert_close(sdpa(ids, **kwargs).logits, eager(ids, **kwargs).logits, atol=1e-5, rtol=1e-5)

    out = eager(ids, attention_mask=mask, output_attentions=True)
    assert len(out.attentions) == config.num_hidden_layers
    weights = out.attentions[0]
    assert weights.shape == (3, config.num_attention_heads, ids.shape[1], ids.shape[1])
    real = mask.bool()
    real_query, real_key = real[:, None, :, None], real[:, None, None, :]
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
    assert (weights[(real_query & ~real_key).expand_as(weights)] == 0).all()  # padding is never attended to
    if model_class is SeqTransformerForCausalLM:
        assert (weights.triu(1)[real_query.expand_as(weights)] == 0).all()  # no real token sees the future
    else:
        assert (weights[(real_query & real_key).expand_as(weights)] > 0).all()  # every real token is seen


def test_attn_implementation_switch_is_honoured(monkeypatch):
    torch.manual_seed(0)
    model = SeqTransformerForCausalLM(tiny_config()).eval()
    ids = torch.randint(1, VOCAB, (2, 6))
    reference = model(ids).logits

    def no_sdpa(*args, **kwargs):
        raise RuntimeError("SDPA called")

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", no_sdpa)
    with pytest.raises(RuntimeError, match="SDPA called"):
        model(ids)
    model.set_attn_implementation("eager")
    torch.testing.assert_close(model(ids).logits, reference, atol=1e-5, rtol=1e-5)


def test_hidden_states_and_attentions_outputs():
    torch.manual_seed(0)
    model = SeqTransformerModel(tiny_config(num_hidden_layers=3)).eval()
    ids = torch.randint(1, VOCAB, (2, 6))
    out = model(ids, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 4 and len(out.attentions) == 3
    assert all(h.shape == (2, 6, 16) for h in out.hidden_states)
    torch.testing.assert_close(out.hidden_states[-1], out.last_hidden_state)
    assert model(ids).hidden_states is None and model(ids).attentions is None
    as_tuple = model(ids, return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.last_hidden_state)


# ---------------------------------------------------------------- padding


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    "overrides",
    [
        dict(pooling="mean"),
        dict(pooling="cls", position_embedding_type="learned"),
        dict(pooling="mean", pre_norm=False, attn_implementation="eager"),
    ],
)
def test_classifier_padding_invariance(side, overrides):
    torch.manual_seed(0)
    model = SeqTransformerForSequenceClassification(tiny_config(num_labels=3, **overrides)).eval()
    ids, mask = padded_batch(ROWS, side)
    batched = model(ids, attention_mask=mask).logits
    for i, row in enumerate(ROWS):
        alone = model(torch.tensor([row])).logits[0]
        torch.testing.assert_close(batched[i], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("position_embedding_type", ["sinusoidal", "learned"])
def test_causal_lm_padding_invariance(side, position_embedding_type):
    torch.manual_seed(0)
    model = SeqTransformerForCausalLM(tiny_config(position_embedding_type=position_embedding_type)).eval()
    ids, mask = padded_batch(ROWS, side)
    logits = model(ids, attention_mask=mask).logits
    for i, row in enumerate(ROWS):
        alone = model(torch.tensor([row])).logits[0]
        torch.testing.assert_close(logits[i][mask[i].bool()], alone, atol=1e-5, rtol=1e-5)
        assert torch.isfinite(logits[i]).all()


# ---------------------------------------------------------------- KV cache and generation


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("position_embedding_type", ["sinusoidal", "learned"])
def test_a_4d_mask_packs_sequences_that_share_a_prefix(attn_implementation, position_embedding_type):
    """transformers' own common test: three texts that share a prefix, packed into one row with a 4D mask and
    their positions, give each text's last logits as three separate rows do."""
    torch.manual_seed(0)
    config = tiny_config(position_embedding_type=position_embedding_type)
    model = SeqTransformerForCausalLM(config).double().eval()  # float64: the mask's effect stands far above rounding
    model.set_attn_implementation(attn_implementation)
    texts = torch.tensor([[10, 11, 12, 13], [10, 11, 12, 14], [10, 11, 12, 15]])
    alone = model(texts).logits[:, -1]
    packed = torch.tensor([[10, 11, 12, 13, 14, 15]])
    allowed = torch.ones(6, 6, dtype=torch.bool).tril()
    allowed[4:, 3] = allowed[5, 4] = False  # each ending sees the prefix and itself only
    positions = torch.tensor([[0, 1, 2, 3, 3, 3]])
    additive = torch.zeros(6, 6).masked_fill(~allowed, torch.finfo(torch.float32).min)
    for mask in (allowed, additive, additive.masked_fill(~allowed, float("-inf"))):
        logits = model(packed, attention_mask=mask[None, None], position_ids=positions).logits
        torch.testing.assert_close(logits[0, -3:], alone, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(model(packed, position_ids=positions).logits[0, -3:], alone, atol=1e-6)  # the mask counts


def test_a_4d_mask_that_cannot_work_is_named():
    model = SeqTransformerForCausalLM(tiny_config()).eval()
    ids = torch.tensor([[1, 2, 3]])
    causal = torch.ones(3, 3, dtype=torch.bool).tril()[None, None]
    for mask, message in ((causal[:, :, :2], r"must be \(batch, 1 or heads, query, key\)"),
                          (causal.long(), "boolean .* or an additive float"),
                          (causal.float() - 5.0, "only 0 .* other biases"),
                          (causal & False, "a query that attends to no key")):
        with pytest.raises(ValueError, match=message):
            model(ids, attention_mask=mask)
    with pytest.raises(ValueError, match="a 4D mask is for the base model and the LM"):
        SeqTransformerForSequenceClassification(tiny_config()).eval()(ids, attention_mask=causal)


def test_incremental_decoding_with_cache_matches_full_forward():
    torch.manual_seed(0)
    model = SeqTransformerForCausalLM(tiny_config()).eval()
    ids = torch.randint(1, VOCAB, (2, 9))
    full = model(ids, use_cache=False).logits
    out = model(ids[:, :4])
    cache = getattr(out, CACHE_FIELD)
    assert isinstance(cache, DynamicCache) and cache.get_seq_length() == 4
    steps = [out.logits]
    chunk = model(ids[:, 4:6], **{CACHE_FIELD: cache})  # two tokens at once after a prefix
    steps.append(chunk.logits)
    for t in range(6, 9):
        steps.append(model(ids[:, t : t + 1], **{CACHE_FIELD: getattr(chunk, CACHE_FIELD)}).logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_cached_greedy_generation_equals_uncached_and_per_row():
    torch.manual_seed(0)
    model = SeqTransformerForCausalLM(tiny_config(eos_token_id=None)).eval()
    ids, mask = padded_batch(ROWS, "left")
    settings = dict(max_new_tokens=12, do_sample=False, pad_token_id=0)
    cached = model.generate(ids, attention_mask=mask, use_cache=True, **settings)
    uncached = model.generate(ids, attention_mask=mask, use_cache=False, **settings)
    assert cached.shape == (3, ids.shape[1] + 12)
    assert torch.equal(cached, uncached)
    assert len(set(cached[:, -12:].flatten().tolist())) > 1  # not a degenerate constant continuation
    for i, row in enumerate(ROWS):
        alone = model.generate(torch.tensor([row]), **settings)
        assert torch.equal(cached[i, -12:], alone[0, -12:]), i


# ---------------------------------------------------------------- training features


@pytest.mark.filterwarnings("ignore:.*checkpointing.*deprecated:FutureWarning")  # renamed in 5.24, kept until v6
def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = SeqTransformerForCausalLM(tiny_config())
    model.train()
    ids, mask = padded_batch(ROWS, "left")
    labels = ids.masked_fill(mask == 0, -100)

    def gradients():
        model.zero_grad()
        model(ids, attention_mask=mask, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = gradients()
    calls = []
    hook = model.model.layers[0].attention.register_forward_pre_hook(lambda *args: calls.append(1))
    model.gradient_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.model.layers)
    checkpointed = gradients()
    hook.remove()
    assert len(calls) == 2  # the layer ran again during backward: checkpointing is really on
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_resize_token_embeddings_keeps_rows_and_tying():
    torch.manual_seed(0)
    model = SeqTransformerForCausalLM(tiny_config()).eval()
    old = model.get_input_embeddings().weight.detach().clone()
    model.resize_token_embeddings(VOCAB + 5)
    assert model.config.vocab_size == VOCAB + 5
    assert model.get_input_embeddings().weight.shape == (VOCAB + 5, 16)
    assert model.lm_head.weight.data_ptr() == model.model.embeddings.weight.data_ptr()
    torch.testing.assert_close(model.get_input_embeddings().weight[:VOCAB], old)
    logits = model(torch.tensor([[1, VOCAB + 4, 2]])).logits
    assert logits.shape == (1, 3, VOCAB + 5)


def test_input_longer_than_max_positions_is_a_clear_error():
    model = SeqTransformerForCausalLM(tiny_config()).eval()
    with pytest.raises(ValueError, match=rf"Input length {MAX_POS + 1} .*max_position_embeddings={MAX_POS}"):
        model(torch.ones(1, MAX_POS + 1, dtype=torch.long))
    model(torch.ones(1, MAX_POS, dtype=torch.long))  # exactly the limit is fine
    cache = getattr(model(torch.ones(1, MAX_POS - 1, dtype=torch.long)), CACHE_FIELD)
    with pytest.raises(ValueError, match=rf"{MAX_POS + 1} \(2 new \+ {MAX_POS - 1} cached.*={MAX_POS}"):
        model(torch.ones(1, 2, dtype=torch.long), **{CACHE_FIELD: cache})


def test_tokenizer_truncates_to_model_max_length():
    from seqhf.data.tokenization import build_word_tokenizer

    texts = ["the film was good and the plot was fine"] * 3
    tokenizer = build_word_tokenizer(texts, vocab_size=VOCAB, min_frequency=1, model_max_length=MAX_POS)
    encoded = tokenizer(" ".join(texts * 5), truncation=True, return_tensors="pt")
    assert encoded["input_ids"].shape[1] == MAX_POS
    model = SeqTransformerForSequenceClassification(tiny_config(vocab_size=len(tokenizer))).eval()
    assert model(**encoded).logits.shape == (1, 2)


@pytest.mark.parametrize("model_class", [SeqTransformerForCausalLM, SeqTransformerForSequenceClassification])
def test_both_heads_train_on_a_toy_batch(model_class):
    torch.manual_seed(0)
    model = model_class(tiny_config(hidden_dropout=0.1, attention_dropout=0.1)).train()
    ids, mask = padded_batch(ROWS + [[3, 3, 4], [9, 8, 7, 6]], "right")
    if model_class is SeqTransformerForCausalLM:
        labels = ids.masked_fill(mask == 0, -100)
    else:
        labels = torch.tensor([0, 1, 1, 0, 1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = model(ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


# ---------------------------------------------------------------- saving, Auto classes, remote code


@pytest.mark.parametrize("position_embedding_type", ["sinusoidal", "learned"])
def test_save_load_equality_through_auto_classes(tmp_path, position_embedding_type):
    torch.manual_seed(0)
    model = SeqTransformerForCausalLM(tiny_config(position_embedding_type=position_embedding_type)).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "modeling_transformer.py").is_file() and (tmp_path / "configuration_transformer.py").is_file()
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == "modeling_transformer.SeqTransformerModel"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is SeqTransformerForCausalLM
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert torch.equal(loaded.model.position_embeddings.weight, model.model.position_embeddings.weight)
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embeddings.weight.data_ptr()
    ids, mask = padded_batch(ROWS, "left")
    assert torch.equal(loaded(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)


def test_auto_classes_resolve_the_transformer(tmp_path):
    config = tiny_config()
    assert type(AutoConfig.for_model("seqhf-transformer")) is SeqTransformerConfig
    assert type(AutoModel.from_config(config)) is SeqTransformerModel
    assert type(AutoModelForCausalLM.from_config(config)) is SeqTransformerForCausalLM
    assert type(AutoModelForSequenceClassification.from_config(config)) is SeqTransformerForSequenceClassification
    torch.manual_seed(0)
    SeqTransformerForSequenceClassification(config).save_pretrained(tmp_path)
    backbone = AutoModel.from_pretrained(tmp_path)
    assert type(backbone) is SeqTransformerModel and not backbone.is_causal
    # No LM head in a classifier folder: a causal LM is refused rather than built with a random head.
    with pytest.raises(ValueError, match="SeqTransformerForSequenceClassification .a text classifier."):
        AutoModelForCausalLM.from_pretrained(tmp_path)


REMOTE_CHECK = """
import json, torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification
expected = json.load(open("expected.json"))
ids, mask = torch.tensor(expected["ids"]), torch.tensor(expected["mask"])
assert AutoConfig.from_pretrained("clf", trust_remote_code=True).model_type == "seqhf-transformer"
assert type(AutoModel.from_pretrained("clf", trust_remote_code=True)).__name__ == "SeqTransformerModel"
clf = AutoModelForSequenceClassification.from_pretrained("clf", trust_remote_code=True).eval()
assert type(clf).__module__.startswith("transformers_modules"), type(clf).__module__
assert torch.allclose(clf(ids, attention_mask=mask).logits, torch.tensor(expected["clf"]), atol=1e-6)
lm = AutoModelForCausalLM.from_pretrained("lm", trust_remote_code=True).eval()
assert type(lm).__module__.startswith("transformers_modules"), type(lm).__module__
assert torch.allclose(lm(ids, attention_mask=mask).logits, torch.tensor(expected["lm"]), atol=1e-6)
generated = lm.generate(ids, attention_mask=mask, max_new_tokens=5, do_sample=False, pad_token_id=0)
assert generated.tolist() == expected["generated"], generated.tolist()
lm.save_pretrained("resaved")
again = AutoModelForCausalLM.from_pretrained("resaved", trust_remote_code=True).eval()
assert torch.allclose(again(ids, attention_mask=mask).logits, torch.tensor(expected["lm"]), atol=1e-6)
print("REMOTE OK")
"""


def test_remote_code_without_seqhf(tmp_path):
    torch.manual_seed(0)
    ids, mask = padded_batch(ROWS, "left")
    clf = SeqTransformerForSequenceClassification(tiny_config(pooling="cls")).eval()
    lm = SeqTransformerForCausalLM(tiny_config(position_embedding_type="learned")).eval()
    clf.save_pretrained(tmp_path / "clf")
    lm.save_pretrained(tmp_path / "lm")
    expected = {
        "ids": ids.tolist(),
        "mask": mask.tolist(),
        "clf": clf(ids, attention_mask=mask).logits.tolist(),
        "lm": lm(ids, attention_mask=mask).logits.tolist(),
        "generated": lm.generate(
            ids, attention_mask=mask, max_new_tokens=5, do_sample=False, pad_token_id=0
        ).tolist(),
    }
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    assert "REMOTE OK" in run_without_seqhf(REMOTE_CHECK, cwd=tmp_path)
