"""What transformers' own model and generation tests expect of a model (issue 24): a base checkpoint loads into
the LM class, old cache keywords are taken with a FutureWarning (never dropped), compiled decoding does not
recompile as the text grows, the Transformer's forward is one graph, and generate() takes `inputs_embeds`."""

import inspect
import shutil
import warnings

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, CompileConfig, DynamicCache

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
    assert {"read_empty_texts_as_pad", "infer_problem_type", "calibrated_logits", "start_empty_prompts_from_bos"} <= set(copied)
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


# ---------------------------------------------------------------- PEFT adapters, as docs/models.md describes them

# What docs/models.md tells a user to target: the Transformer's named linear layers, a recurrent model's weights
# through `target_parameters` (`_reverse` for a bidirectional layer) and its embeddings as a module.
LORA_TARGETS = {
    "transformer": dict(target_modules="all-linear"),
    "lstm": dict(target_parameters=["weight_ih_l0", "weight_hh_l0"], target_modules=["embeddings"]),
}
BIDIRECTIONAL_WEIGHTS = ["weight_ih_l0_reverse", "weight_hh_l0_reverse"]


def lora_of(family, task):
    """A tiny base model of `family` for `task` ("SEQ_CLS" or "CAUSAL_LM") and the LoraConfig the docs describe
    for it (the LSTM classifier bidirectional, so that its `_reverse` weights are adapted too)."""
    from peft import LoraConfig

    targets = dict(LORA_TARGETS[family])
    layers = dict(num_hidden_layers=2)  # (each LSTM layer is its own one-layer nn.LSTM: `_l0` names every layer's)
    if task == "SEQ_CLS":
        bidirectional = dict(bidirectional=True) if family == "lstm" else {}
        model = CLASSES[family][2](config_of(family, num_labels=3, **layers, **bidirectional))
        if family == "lstm":
            targets["target_parameters"] = targets["target_parameters"] + BIDIRECTIONAL_WEIGHTS
    else:
        model = CLASSES[family][1](config_of(family, **layers))
    return model.eval(), LoraConfig(task_type=task, r=2, lora_alpha=4, **targets)


def adapted_names(peft_model) -> set:
    """What LoRA wraps: the Transformer's linear layers by name, a recurrent model's weights by parameter name."""
    from peft.tuners.lora import LoraLayer, ParamWrapper

    names = set()
    for name, module in peft_model.named_modules():
        if isinstance(module, ParamWrapper):
            names.add(module.parameter_name)
        elif isinstance(module, LoraLayer):
            names.add(name.rsplit(".", 1)[-1])
    return names


@pytest.mark.parametrize("task", ["SEQ_CLS", "CAUSAL_LM"])
@pytest.mark.parametrize("family", FAMILIES)
def test_lora_as_the_docs_describe_it_trains_only_the_adapters_and_round_trips(tmp_path, family, task):
    """docs/models.md's "PEFT adapters": each family's targets are adapted, the head aside; one training step changes
    only the adapters (and, with task_type="SEQ_CLS", PEFT's own copy of the whole classifier); the adapter saved and
    loaded onto the base, and the adapter merged into it, give the trained model's logits."""
    pytest.importorskip("peft", reason="peft is in the `dev` extra")
    from peft import PeftModel, get_peft_model

    auto = AutoModelForSequenceClassification if task == "SEQ_CLS" else AutoModelForCausalLM
    torch.manual_seed(0)
    base, lora = lora_of(family, task)
    base.save_pretrained(tmp_path / "base")
    before = {name: tensor.clone() for name, tensor in base.state_dict().items()}
    model = get_peft_model(base, lora)
    wanted = {"qkv_proj", "out_proj", "fc_in", "fc_out"} if family == "transformer" else \
        {"embeddings", *lora.target_parameters}
    assert adapted_names(model) == wanted  # never the head: `classifier` / `lm_head`
    assert all(any("lora_" in name for name, _ in layer.named_parameters()) for layer in base.model.layers)

    ids, labels = TEXT[:, :12].reshape(2, 6), torch.tensor([0, 2])
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    head_copy = {name for name in trainable if ".modules_to_save." in name}
    assert all("lora_" in name for name in trainable - head_copy)
    assert bool(head_copy) == (task == "SEQ_CLS") and all(".classifier." in name for name in head_copy)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(input_ids=ids, labels=labels if task == "SEQ_CLS" else ids).loss.backward()
    optimizer.step()
    model.eval()
    unwrapped = {name.replace(".base_layer", "").replace(".original_module", ""): tensor
                 for name, tensor in model.base_model.model.state_dict().items()}
    for name, tensor in before.items():
        assert torch.equal(unwrapped[name], tensor), f"{name}: a base weight moved"
    with torch.no_grad():
        trained = model(input_ids=ids).logits
        assert not torch.allclose(trained, auto.from_pretrained(tmp_path / "base").eval()(input_ids=ids).logits)

    model.save_pretrained(tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(auto.from_pretrained(tmp_path / "base"), tmp_path / "adapter").eval()
    merged = model.merge_and_unload()
    assert type(merged) is type(base)
    merged.save_pretrained(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, trained, rtol=0, atol=0)
        torch.testing.assert_close(merged(input_ids=ids).logits, trained)
        torch.testing.assert_close(auto.from_pretrained(tmp_path / "merged").eval()(input_ids=ids).logits, trained)
    if task == "CAUSAL_LM":  # with the adapter unmerged, as merged
        greedy = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
        assert torch.equal(loaded.generate(input_ids=ids[:1], **greedy), merged.generate(ids[:1], **greedy))


def count_calls(module, calls: list, tag) -> None:
    """Appends `tag` to `calls` each time `module` runs, counted in its forward: torch's non-reentrant checkpoint
    runs no forward hooks when it recomputes, and transformers keeps a checkpointed layer's hooks outside."""
    forward = module.forward

    def counted(*args, **kwargs):
        calls.append(tag)
        return forward(*args, **kwargs)

    module.forward = counted


@pytest.mark.parametrize("use_reentrant", [True, False])
@pytest.mark.parametrize("family", FAMILIES)
def test_lora_trains_under_gradient_checkpointing_either_way(family, use_reentrant):
    """docs/models.md: with a LoRA adapter (the recurrent weights wrapped by PEFT), gradient checkpointing recomputes
    each layer in the backward pass and gives the adapters the gradients they get without it."""
    pytest.importorskip("peft", reason="peft is in the `dev` extra")
    from peft import get_peft_model

    ids = TEXT[:, :12].reshape(2, 6)
    grads, calls = {}, []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = get_peft_model(*lora_of(family, "CAUSAL_LM")).train()
        for name, p in model.named_parameters():  # B starts at zero, which would leave A without a gradient
            if "lora_B" in name or "lora_embedding_B" in name:
                torch.nn.init.normal_(p)
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
        layer = model.base_model.model.model.layers[0]
        count_calls(layer.mlp if family == "transformer" else layer, calls, checkpointing)  # (LSTM: PEFT's wrapper)
        model(input_ids=ids, labels=ids).loss.backward()
        grads[checkpointing] = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    assert calls == [False, True, True]  # the checkpointed layer ran again in the backward pass
    assert all(grad is not None for grad in grads[True].values())
    for name, grad in grads[False].items():
        torch.testing.assert_close(grads[True][name], grad, msg=name)
