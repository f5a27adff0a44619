"""What transformers' own model and generation tests expect of a model (issue 24): a base checkpoint loads into
the LM class, old cache keywords are taken with a FutureWarning (never dropped), compiled decoding does not
recompile as the text grows, the Transformer's forward is one graph, and generate() takes `inputs_embeds`."""

import inspect
import shutil
import warnings

import pytest
import torch
from transformers import AutoModelForCausalLM, CompileConfig, DynamicCache

from seqhf import (
    SeqLSTMConfig,
    SeqLSTMForCausalLM,
    SeqLSTMForSequenceClassification,
    SeqLSTMModel,
    SeqTransformerConfig,
    SeqTransformerForCausalLM,
    SeqTransformerForSequenceClassification,
    SeqTransformerModel,
)

VOCAB = 21
FAMILIES = ["lstm", "transformer"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add spin-waits on a loaded CPU
    yield
    torch.set_num_threads(threads)


def config_of(family, **overrides):
    if family == "lstm":
        return SeqLSTMConfig(**(dict(vocab_size=VOCAB, embedding_size=8, hidden_size=16, pad_token_id=0) | overrides))
    fields = dict(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=128, embedding_dropout=0.0, hidden_dropout=0.0, attention_dropout=0.0, pad_token_id=0,
    )
    return SeqTransformerConfig(**(fields | overrides))


CLASSES = {
    "lstm": (SeqLSTMModel, SeqLSTMForCausalLM, SeqLSTMForSequenceClassification),
    "transformer": (SeqTransformerModel, SeqTransformerForCausalLM, SeqTransformerForSequenceClassification),
}

# A text the tiny LMs learn in a moment: each id is followed by (id + 7) mod 20, so greedy decoding writes
# every id in turn (an untrained model soon repeats one, which would make comparisons weak).
TEXT = torch.tensor([[1 + (7 * i) % 20 for i in range(60)]])
_TRAINED = {}


def trained_lm(family):
    if family not in _TRAINED:
        torch.manual_seed(0)
        model = CLASSES[family][1](config_of(family))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
        for _ in range(60):
            model(TEXT, labels=TEXT).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        _TRAINED[family] = model.eval()
    model = CLASSES[family][1](_TRAINED[family].config)
    model.load_state_dict(_TRAINED[family].state_dict())
    return model.eval()


def padded_prompts():
    """Two prompts, the first left-padded by two."""
    ids = torch.tensor([[0, 0, 5, 12, 19], [3, 10, 17, 4, 11]])
    return ids, (ids != 0).long()


def cache_of(out):
    return out["cache"] if "cache" in type(out).__dataclass_fields__ else out["past_key_values"]


# ---------------------------------------------------------------- 1. a base checkpoint into the LM class


@pytest.mark.parametrize("family", FAMILIES)
def test_base_checkpoint_loads_into_the_lm_with_a_new_head(tmp_path, family):
    base_class, lm_class, classifier_class = CLASSES[family]
    torch.manual_seed(0)
    base = base_class(config_of(family, tie_word_embeddings=False)).eval()
    base.save_pretrained(tmp_path)
    lm, info = lm_class.from_pretrained(tmp_path, output_loading_info=True)
    # As transformers does for any head class: the backbone is loaded, the head is reported as new.
    head = {"lm_head.weight", "lm_head.bias"} if family == "lstm" else {"lm_head.weight"}
    assert set(info["missing_keys"]) == head
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    for name, tensor in base.state_dict().items():
        assert torch.equal(lm.model.state_dict()[name], tensor), name
    assert type(AutoModelForCausalLM.from_pretrained(tmp_path)) is lm_class
    assert type(lm_class(lm_class.config_class.from_pretrained(tmp_path))) is lm_class
    ids = torch.tensor([[3, 4, 5]])
    assert lm.generate(ids, max_new_tokens=3, do_sample=False).shape == (1, 6)
    # The refusal stays where it protects: a classifier's folder has no LM head and a backbone trained for another task.
    classifier_class(config_of(family)).save_pretrained(tmp_path / "classifier")
    with pytest.raises(ValueError, match=r"ForSequenceClassification \(a text classifier\), not a language model"):
        lm_class.from_pretrained(tmp_path / "classifier")


@pytest.mark.parametrize("family", FAMILIES)
def test_tied_base_checkpoint_gives_the_lm_its_embeddings_as_head(tmp_path, family):
    base_class, lm_class, _ = CLASSES[family]
    torch.manual_seed(0)
    overrides = dict(tie_word_embeddings=True) | (dict(embedding_size=16) if family == "lstm" else {})
    base_class(config_of(family, **overrides)).save_pretrained(tmp_path)
    lm, info = lm_class.from_pretrained(tmp_path, output_loading_info=True)
    assert "lm_head.weight" not in info["missing_keys"]
    assert lm.lm_head.weight.data_ptr() == lm.model.embeddings.weight.data_ptr()


# ---------------------------------------------------------------- 2. old cache keywords


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", ["cache_params", "past_key_values"])
def test_old_cache_keyword_continues_with_a_future_warning(family, name):
    model = trained_lm(family)
    ids = TEXT[:, :12]
    full = model(ids).logits
    cache = cache_of(model(ids[:, :7], use_cache=True))
    with pytest.warns(FutureWarning, match=f"`{name}` is deprecated.*`cache`"):
        out = model(ids[:, 7:], **{name: cache})
    torch.testing.assert_close(out.logits, full[:, 7:], atol=1e-5, rtol=1e-5)
    assert cache_of(out) is cache
    # The current name, and generate() (which passes it), give no warning.
    cache = cache_of(model(ids[:, :7], use_cache=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        torch.testing.assert_close(model(ids[:, 7:], cache=cache).logits, full[:, 7:], atol=1e-5, rtol=1e-5)
        model.generate(ids[:, :4], max_new_tokens=3, do_sample=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_two_different_caches_are_refused(family):
    model = trained_lm(family)
    first = cache_of(model(TEXT[:, :4], use_cache=True))
    other = cache_of(model(TEXT[:, :4], use_cache=True))
    with pytest.raises(ValueError, match="Two caches"):
        model(TEXT[:, 4:6], cache=first, cache_params=other)


def test_the_lstm_backbone_refuses_a_cache_it_cannot_use():
    backbone = trained_lm("lstm").model
    with pytest.raises(ValueError, match="SeqLSTMModel keeps no cache.*initial_state"):
        backbone(TEXT[:, :4], cache_params=DynamicCache())


# ---------------------------------------------------------------- 3. compiled decoding compiles once


@pytest.mark.parametrize("family", FAMILIES)
def test_compiled_greedy_decoding_compiles_once(family):
    model = trained_lm(family)
    assert type(model)._can_compile_fullgraph
    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward  # run the traced graph as it is: what is counted is dynamo's compilations

    # As transformers' test_generate_compile_model_forward_fullgraph: no graph break, no dynamic shapes.
    compile_config = CompileConfig(fullgraph=True, dynamic=False, backend=counting_backend, mode=None)
    compile_config._compile_all_devices = True  # compile on the CPU too
    ids, mask = padded_prompts()
    settings = dict(attention_mask=mask, max_new_tokens=50, do_sample=False, cache_implementation="static")
    eager = model.generate(ids, **settings)
    torch.compiler.reset()
    compiled = model.generate(ids, compile_config=compile_config, **settings)
    assert hasattr(model, "_compiled_call")
    assert len(graphs) == 1  # 49 decode steps, one compilation
    assert torch.equal(compiled, eager) and len(set(eager[1, 5:].tolist())) > 10
    other = model.generate(ids.flip(0), compile_config=compile_config, **settings | dict(attention_mask=mask.flip(0)))
    assert len(graphs) == 1  # a second generation of the same shape reuses the graph
    assert torch.equal(other, model.generate(ids.flip(0), **settings | dict(attention_mask=mask.flip(0))))


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")), reason="inductor needs a C++ compiler")
def test_lstm_decode_step_on_the_cpu_compiles_once_without_dynamo(monkeypatch):
    # With inductor on the CPU the LSTM's decode step is traced once and its inductor graph called directly.
    from torch._dynamo.utils import counters

    model = trained_lm("lstm")
    compiled_graphs = []
    inductor_compile = torch._inductor.compile

    def counting_compile(graph, example_inputs, options=None):
        compiled_graphs.append(graph)
        return inductor_compile(graph, example_inputs, options)

    monkeypatch.setattr(torch._inductor, "compile", counting_compile)
    compile_config = CompileConfig(fullgraph=True, mode="default")
    compile_config._compile_all_devices = True
    ids, mask = padded_prompts()
    settings = dict(attention_mask=mask, max_new_tokens=50, do_sample=False, cache_implementation="static")
    eager = model.generate(ids, **settings)
    dynamo_graphs = counters["stats"]["unique_graphs"]
    compiled = model.generate(ids, compile_config=compile_config, **settings)
    assert len(compiled_graphs) == 1 and counters["stats"]["unique_graphs"] == dynamo_graphs
    assert torch.equal(compiled, eager) and len(set(eager[1, 5:].tolist())) > 10
    again = model.generate(ids.flip(0), compile_config=compile_config, **settings | dict(attention_mask=mask.flip(0)))
    assert len(compiled_graphs) == 1  # the same shapes reuse the graph
    assert torch.equal(again, model.generate(ids.flip(0), **settings | dict(attention_mask=mask.flip(0))))
    one_row = dict(settings, attention_mask=mask[:1])
    assert torch.equal(model.generate(ids[:1], compile_config=compile_config, **one_row), model.generate(ids[:1], **one_row))
    assert len(compiled_graphs) == 2  # a new batch size is a new graph


# ---------------------------------------------------------------- 4. the Transformer's forward is one graph


def test_transformer_forward_compiles_with_fullgraph():
    model = trained_lm("transformer")
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    ids, mask = padded_prompts()
    for inputs in (dict(input_ids=ids), dict(input_ids=ids, attention_mask=mask, labels=ids)):
        out, ref = compiled(**inputs), model(**inputs)
        torch.testing.assert_close(out.logits, ref.logits)
        if "labels" in inputs:
            torch.testing.assert_close(out.loss, ref.loss)
    backbone = model.model
    assert type(model)._can_compile_fullgraph and type(backbone)._can_compile_fullgraph
    out = torch.compile(backbone, fullgraph=True, backend="eager")(ids, attention_mask=mask)
    torch.testing.assert_close(out.last_hidden_state, backbone(ids, attention_mask=mask).last_hidden_state)
    # Eager calls still check the ids' range.
    with pytest.raises(ValueError, match=r"outside \[0, 21\)"):
        model(torch.tensor([[3, VOCAB]]))


# ---------------------------------------------------------------- 5. generation from inputs_embeds


@pytest.mark.parametrize("cache_implementation", [None, "static"])
def test_transformer_generates_from_inputs_embeds(cache_implementation):
    model = trained_lm("transformer")
    assert "inputs_embeds" in inspect.signature(model.prepare_inputs_for_generation).parameters
    ids, mask = padded_prompts()
    settings = dict(attention_mask=mask, max_new_tokens=8, do_sample=False, cache_implementation=cache_implementation)
    from_ids = model.generate(ids, **settings)
    with torch.no_grad():
        from_embeds = model.generate(inputs_embeds=model.get_input_embeddings()(ids), **settings)
    assert torch.equal(from_embeds, from_ids[:, ids.shape[1] :])  # only the new tokens, as transformers returns
    assert len(set(from_ids[1, 5:].tolist())) > 4


# ---------------------------------------------------------------- classifier labels and input shapes, as transformers'


@pytest.mark.parametrize("family", FAMILIES)
def test_classifier_labels_ignore_minus_100_and_name_other_ids(family):
    torch.manual_seed(0)
    model = CLASSES[family][2](config_of(family, num_labels=3)).eval()
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out = model(ids, labels=torch.tensor([2, -100]))
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits[:1], torch.tensor([2])))
    with pytest.raises(ValueError, match=r"`labels` must be in \[0, 3\) or -100 .*got min -1, max 2"):
        model(ids, labels=torch.tensor([2, -1]))
    with pytest.raises(ValueError, match=r"`input_ids` must be \(batch, seq\)"):
        model(torch.tensor([1, 2, 3]))  # one text without its batch axis: the model's own message, not an IndexError


@pytest.mark.parametrize("family", FAMILIES)
def test_calibration_smoothing_reads_the_problem_type_the_labels_give(family):
    """Float labels make the first call multi-label, as transformers' loss decides; the smoothing (single-label
    only) must not shape that call's logits and then vanish from the next ones."""
    torch.manual_seed(0)
    model = CLASSES[family][2](config_of(family, num_labels=3, calibration_smoothing=0.1)).eval()
    ids = torch.tensor([[5, 6, 7]])
    with_labels = model(ids, labels=torch.tensor([[1.0, 0.0, 1.0]])).logits
    assert model.config.problem_type == "multi_label_classification"
    torch.testing.assert_close(with_labels, model(ids).logits)


def test_a_transformer_lm_folder_gives_automodel_its_causal_backbone(tmp_path):
    """A causal LM built by hand saves `is_decoder`, so `AutoModel` on its folder reads as the LM's backbone does."""
    from transformers import AutoModel

    config = config_of("transformer")
    assert not config.is_decoder
    lm = SeqTransformerForCausalLM(config).eval()
    lm.save_pretrained(tmp_path)
    backbone = AutoModel.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[1, 8, 15, 2, 9, 16]])
    with torch.no_grad():
        torch.testing.assert_close(backbone(ids).last_hidden_state, lm.model(ids).last_hidden_state)


def test_functions_copied_between_the_two_modeling_files_are_the_same():
    """A modeling file imports no sibling (so remote code stands alone); what both need is copied, as in
    transformers (`# Copied from`), and must stay the same."""
    from seqhf.models.lstm import modeling_lstm
    from seqhf.models.transformer import modeling_transformer

    source = inspect.getsource(modeling_transformer)
    copied = [line.split("modeling_lstm.")[1].split(":")[0].split(";")[0]
              for line in source.splitlines() if line.startswith("# Copied from seqhf.models.lstm.modeling_lstm.")]
    assert {"read_empty_texts_as_pad", "infer_problem_type", "smoothed_log_scores", "start_empty_prompts_from_bos"} <= set(copied)
    for name in copied:
        assert inspect.getsource(getattr(modeling_lstm, name)) == inspect.getsource(getattr(modeling_transformer, name)), name


@pytest.mark.parametrize("family", FAMILIES)
def test_classifier_gradient_accumulation_in_a_plain_trainer_matches_one_big_batch(tmp_path, family):
    """A classifier's loss is a batch mean: the Trainer must scale it for accumulation, so 2 x 4 texts step as 8."""
    from transformers import Trainer, TrainingArguments

    rows = [{"input_ids": torch.tensor([1 + i, 2 + i, 3 + 2 * i]), "labels": torch.tensor(i % 3)} for i in range(8)]

    def trained(batch_size, accumulation):
        torch.manual_seed(0)
        model = CLASSES[family][2](config_of(family, num_labels=3))
        args = TrainingArguments(
            output_dir=str(tmp_path / f"{batch_size}"), per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation, num_train_epochs=1, optim="sgd", learning_rate=1.0,
            lr_scheduler_type="constant", max_grad_norm=0, train_sampling_strategy="sequential", use_cpu=True,
            report_to=[], save_strategy="no", disable_tqdm=True,
        )
        loss = Trainer(model=model, args=args, train_dataset=rows).train().training_loss
        return loss, torch.cat([p.detach().flatten() for p in model.parameters()])

    big_loss, big_weights = trained(8, 1)
    accumulated_loss, accumulated_weights = trained(4, 2)
    assert accumulated_loss == pytest.approx(big_loss, rel=1e-5)
    torch.testing.assert_close(accumulated_weights, big_weights)


@pytest.mark.parametrize("family", FAMILIES)
def test_trainer_label_smoothing_scores_an_lm_against_the_next_token(tmp_path, family):
    """`label_smoothing_factor` makes the Trainer compute the loss itself; it shifts an LM's labels only for a class
    named in transformers' causal-LM table, else each position would be scored against its own token."""
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_pt_utils import LabelSmoother

    model = trained_lm(family)
    args = TrainingArguments(output_dir=str(tmp_path), label_smoothing_factor=0.1, use_cpu=True, report_to=[])
    with torch.no_grad():
        loss = Trainer(model=model, args=args).compute_loss(model, {"input_ids": TEXT, "labels": TEXT.clone()})
        expected = LabelSmoother(0.1)({"logits": model(TEXT).logits}, TEXT, shift_labels=True)
    torch.testing.assert_close(loss, expected)
