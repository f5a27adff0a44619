"""Generation (issue 5): the recurrent state carried through generate(), decoding options, left padding,
streaming, empty prompts and bad input, and `seqhf generate`."""

import copy
import io
import shutil
import warnings
from contextlib import redirect_stdout

import pytest
import torch
from transformers import AutoTokenizer, CompileConfig, DynamicCache, StaticCache, TextStreamer, set_seed
from transformers.cache_utils import LinearAttentionLayer

from seqhf import SeqLSTMConfig, SeqLSTMForCausalLM, SeqTransformerConfig, SeqTransformerForCausalLM
from seqhf.inference.generation import encode_prompt, generate_text
from seqhf.models.lstm.modeling_lstm import tokens_read
from seqhf.data.tokenization import build_char_tokenizer

TEXT = "The island was far away, and the sea was calm.\nThey saw the smoke of the volcano!\n"
PROMPTS = ["The isl", "sea", "They saw th"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add spin-waits on a loaded CPU
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer(TEXT)


_TRAINED = {}


def tiny_lm(tok, kind="lstm", **overrides):
    """A fresh copy of the tiny trained LM of this kind (each is trained once per session)."""
    key = (kind, tuple(sorted(overrides.items())))
    if key not in _TRAINED:
        _TRAINED[key] = train_tiny_lm(tok, kind, **overrides)
    return copy.deepcopy(_TRAINED[key])


def train_tiny_lm(tok, kind="lstm", seed=0, train_steps=60, **overrides):
    """A tiny LM, trained for a moment on TEXT so that greedy decoding writes varied text
    (an untrained recurrent net soon repeats one character, which would make comparisons weak)."""
    torch.manual_seed(seed)
    ids = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id)
    ids.update(overrides)
    if kind == "transformer":
        ids = dict(max_position_embeddings=128) | ids
        config = SeqTransformerConfig(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
            embedding_dropout=0.0, hidden_dropout=0.0, attention_dropout=0.0,
            classifier_dropout=0.0, is_decoder=True, **ids,
        )
        model = SeqTransformerForCausalLM(config)
    else:
        rnn_type, _, layers = kind.partition("x")
        config = SeqLSTMConfig(
            embedding_size=12, hidden_size=16, rnn_type=rnn_type, num_hidden_layers=int(layers or 1), **ids
        )
        model = SeqLSTMForCausalLM(config)
    text = tok(TEXT, return_tensors="pt").input_ids
    window = getattr(model.config, "max_position_embeddings", text.shape[1])
    if window < text.shape[1]:  # every window of the text, so that no position is tied to one character
        text = text.unfold(1, window, 1)[0]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(train_steps):
        model(text, labels=text).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def batch(tok, prompts=PROMPTS):
    return tok(prompts, return_tensors="pt", padding=True)  # the char tokenizer pads on the left


GREEDY = dict(max_new_tokens=15, do_sample=False)


def returned_cache(out):
    """The cache generate() returns: `out.cache` from transformers 5.24, `out.past_key_values` before."""
    return out["cache"] if "cache" in type(out).__dataclass_fields__ else out["past_key_values"]


# ---------------------------------------------------------------- the state really carries


@pytest.mark.parametrize("kind", ["lstm", "lstmx2", "gru", "rnn"])
def test_stepping_through_the_cache_matches_the_full_forward(tok, kind):
    model = tiny_lm(tok, kind)
    ids = tok(TEXT[:20], return_tensors="pt").input_ids
    full = model(ids).logits
    out = model(ids[:, :6], use_cache=True)
    # The state lives in transformers' own cache, one recurrent-state layer per recurrent layer.
    assert isinstance(out.cache, DynamicCache) and tokens_read(out.cache) == 6
    assert all(isinstance(layer, LinearAttentionLayer) for layer in out.cache.layers)
    assert len(out.cache.layers) == model.config.num_hidden_layers
    logits = [out.logits]
    for t in range(6, ids.shape[1]):
        step = model(ids[:, t : t + 1], cache=out.cache)
        assert step.cache is out.cache  # updated in place
        logits.append(step.logits)
    torch.testing.assert_close(torch.cat(logits, dim=1), full, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(tuple(step.final_state), tuple(model(ids).final_state), atol=1e-5, rtol=1e-4)
    assert tokens_read(out.cache) == ids.shape[1]


def test_each_new_token_costs_one_step_and_the_prompt_is_read_once(tok):
    model = tiny_lm(tok)
    fed = []
    model.register_forward_pre_hook(lambda m, args, kwargs: fed.append(tuple(kwargs["input_ids"].shape)),
                                    with_kwargs=True)
    enc = batch(tok)
    out = model.generate(**enc, max_new_tokens=25, do_sample=False, return_dict_in_generate=True)
    width = enc.input_ids.shape[1]
    # One forward per new token: the padded prompt once, then one token per row per step.
    assert fed == [(3, width)] + [(3, 1)] * 24
    cache = returned_cache(out)
    assert isinstance(cache, DynamicCache) and tokens_read(cache) == width + 24
    # Without the cache the whole text is re-read every step (what the cache saves).
    fed.clear()
    model.generate(**enc, max_new_tokens=25, do_sample=False, use_cache=False)
    assert [shape[1] for shape in fed] == list(range(width, width + 25))


@pytest.mark.parametrize("kind", ["lstm", "lstmx2", "gru", "rnn", "transformer"])
def test_cached_greedy_equals_uncached_and_each_left_padded_row_equals_the_row_alone(tok, kind):
    model = tiny_lm(tok, kind)
    enc = batch(tok)
    cached = model.generate(**enc, **GREEDY)
    uncached = model.generate(**enc, **GREEDY, use_cache=False)
    assert torch.equal(cached, uncached)
    new = cached[:, -15:]
    assert len(set(new.flatten().tolist())) > 3  # a real continuation, not one repeated character
    for i, prompt in enumerate(PROMPTS):
        alone = model.generate(**tok(prompt, return_tensors="pt"), **GREEDY)
        assert torch.equal(alone[0, -15:], new[i]), prompt


@pytest.mark.parametrize("kind", ["lstm", "lstmx2", "gru", "rnn"])
def test_folded_input_projection_decodes_as_the_cells_do_and_lasts_one_call(tok, kind, monkeypatch):
    # generate() folds the first layer's input projection into a (vocab, gates) table for its decoding steps.
    model = tiny_lm(tok, kind)
    enc = batch(tok)
    settings = dict(max_new_tokens=15, do_sample=False, output_scores=True, return_dict_in_generate=True)
    tables = []
    fold = type(model)._fold_for_generation
    monkeypatch.setattr(type(model), "_fold_for_generation", lambda self: tables.append(fold(self)) or tables[-1])
    folded = model.generate(**enc, **settings)
    assert tables[-1] is not None and tables[-1].shape == (len(tok), model.model.layers[0].weight_ih_l0.shape[0])
    assert model._input_table is None  # not kept past the call
    monkeypatch.setattr(type(model), "_fold_for_generation", lambda self: None)
    cells = model.generate(**enc, **settings)
    assert torch.equal(folded.sequences, cells.sequences)
    torch.testing.assert_close(torch.stack(folded.scores), torch.stack(cells.scores), rtol=1e-5, atol=1e-5)
    # Weights edited between calls (through .data, which no version counter sees) are read by the next call.
    monkeypatch.setattr(type(model), "_fold_for_generation", fold)
    with torch.no_grad():
        model.model.embeddings.weight.data.mul_(-1)
    assert torch.equal(model.generate(**enc, **GREEDY), model.generate(**enc, **GREEDY, use_cache=False))


def test_a_word_level_vocabulary_is_not_folded(tok):
    model = tiny_lm(tok, "lstm")
    model.resize_token_embeddings(model.config.embedding_size + model.config.hidden_size + 1)
    assert model._fold_for_generation() is None
    assert tiny_lm(tok, "lstm")._fold_for_generation() is not None


class _ShiftedHead(torch.nn.Module):
    """An LM head wrapped as PEFT's LoRA wraps one: the base layer's `weight` is still there, the output is not its."""

    def __init__(self, base):
        super().__init__()
        self.base_layer, self.weight, self.bias = base, base.weight, base.bias
        self.shift = torch.nn.Parameter(torch.linspace(-3.0, 3.0, base.out_features))

    def forward(self, hidden):
        return self.base_layer(hidden) + self.shift


@pytest.mark.parametrize("change", ["wrapped head", "quantized", "offloaded layers", "offloaded model"])
def test_wrapped_quantized_or_offloaded_modules_decode_through_their_own_forward(tok, change, tmp_path):
    """The decode step reads the torch modules' weights directly: a wrapped head (a PEFT adapter) was skipped after the
    first token, a dynamically quantized LSTM, which has no such weights, failed, and so did weights that accelerate's
    hooks load from disk only when a module's forward runs (`device_map` with offloading)."""
    model = tiny_lm(tok, "lstm")
    enc = batch(tok)
    expected = model.generate(**enc, **GREEDY)
    if change == "wrapped head":
        model.lm_head = _ShiftedHead(model.lm_head)
        expected = model.generate(**enc, **GREEDY, use_cache=False)
    elif change == "quantized":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)
        expected = model.generate(**enc, **GREEDY, use_cache=False)
    else:
        model.save_pretrained(tmp_path / "lm")
        device_map = {"model.embeddings": "cpu", "model.layers": "disk", "lm_head": "cpu"}
        model = SeqLSTMForCausalLM.from_pretrained(tmp_path / "lm", offload_folder=tmp_path / "offload",
                                                   device_map=device_map if change == "offloaded layers" else {"": "disk"})
    assert torch.equal(model.generate(**enc, **GREEDY), expected)


def test_a_word_lms_continuation_is_spaced_from_its_prompt():
    """`seqhf generate` prints the prompt and then generate_text's text: a word LM's first word must not stick to the
    prompt's last word (decoded alone, the new words have no space before them)."""
    from seqhf.data.tokenization import build_word_tokenizer

    words = build_word_tokenizer(["this movie was good and the film was bad"] * 3, vocab_size=64, min_frequency=1)
    torch.manual_seed(0)
    config = SeqLSTMConfig(vocab_size=len(words), embedding_size=8, hidden_size=8, pad_token_id=words.pad_token_id,
                           is_decoder=True)
    model = SeqLSTMForCausalLM(config).eval()
    text = generate_text(model, words, "this movie was", max_new_tokens=4, seed=1)
    assert text.startswith(" ") and 2 <= len(text.split()) <= 4, text  # (a special token is not printed)
    assert "this movie was" + text == words.decode(words("this movie was" + text)["input_ids"], skip_special_tokens=True)


def word_lm_saying(word: str):
    """A word tokenizer with `[EOS]`, as `seqhf train lm` builds it, and an LM whose every next token is `word`."""
    from seqhf.data.tokenization import EOS, build_word_tokenizer

    words = build_word_tokenizer(["this movie was good and the film was bad"] * 3, vocab_size=64, min_frequency=1)
    words.add_special_tokens({"eos_token": EOS})
    config = SeqLSTMConfig(vocab_size=len(words), embedding_size=8, hidden_size=8, pad_token_id=words.pad_token_id,
                           eos_token_id=words.eos_token_id, lm_head_bias=True, is_decoder=True)
    model = SeqLSTMForCausalLM(config).eval()
    with torch.no_grad():
        model.get_output_embeddings().weight.zero_()
        model.get_output_embeddings().bias.fill_(-30.0)[words.convert_tokens_to_ids(word)] = 30.0
    return model, words


def test_a_word_lm_stops_at_eos_and_shows_unk(tmp_path, capsys):
    """`skip_special_tokens` dropped a generated `[UNK]`: a word LM printed fewer words than asked, joined, unsaid.
    `[UNK]` is now kept visible; `[EOS]` (the end of a text) ends generation, and `seqhf generate` says so."""
    from seqhf.cli.app import main
    from seqhf.inference.generation import generate_continuation

    model, words = word_lm_saying("[UNK]")
    assert generate_text(model, words, "this movie was", max_new_tokens=3, temperature=0) == " [UNK] [UNK] [UNK]"
    assert generate_text(model, words, "this movie was", max_new_tokens=3, seed=1) == " [UNK] [UNK] [UNK]"
    ids = encode_prompt(words, "this movie was")
    kept_out = model.generate(ids, max_new_tokens=3, do_sample=False, bad_words_ids=[[words.unk_token_id]])
    assert words.unk_token_id not in kept_out[0].tolist()  # as docs/generation.md says
    model, words = word_lm_saying("[EOS]")
    assert generate_continuation(model, words, "this movie was", max_new_tokens=5, temperature=0) == ("", 1, True)
    model.save_pretrained(tmp_path)
    words.save_pretrained(tmp_path)
    capsys.readouterr()
    assert main(["generate", str(tmp_path), "--prompt", "this movie", "--max-new-tokens", "5"]) == 0
    out = capsys.readouterr()
    assert out.out == "this movie\n" and "ended the text with [EOS] after 1 of --max-new-tokens 5 tokens" in out.err



def backward_word_lm():
    """A tiny word LM trained for a moment to read one sentence backwards, as `seqhf train lm --backward` reads its
    texts (last word first, `[EOS]` after each; `[EOS]` its BOS as well)."""
    from seqhf.data.char_text import encode_stream
    from seqhf.data.tokenization import EOS, build_word_tokenizer

    words = build_word_tokenizer([SENTENCE], vocab_size=64, min_frequency=1)
    words.add_special_tokens({"eos_token": EOS})
    torch.manual_seed(0)
    config = SeqLSTMConfig(vocab_size=len(words), embedding_size=16, hidden_size=16, pad_token_id=words.pad_token_id,
                           eos_token_id=words.eos_token_id, bos_token_id=words.eos_token_id, is_decoder=True,
                           reads_backward=True)
    model = SeqLSTMForCausalLM(config)
    ids = torch.cat([torch.tensor([words.eos_token_id]), encode_stream(words, [SENTENCE] * 4, backward=True)])[None]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(150):
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
    return model.eval(), words


SENTENCE = "this movie was good and the film was bad"


def test_a_backward_lm_writes_what_comes_before_its_prompt(tmp_path, capsys):
    """A backward LM was given its prompt first word first and its words were printed last word first. The prompt is
    the end of a text: it goes in reversed, and the words the model writes (from the last) come out in front of it."""
    from seqhf.cli.app import main

    model, words = backward_word_lm()
    before = generate_text(model, words, "the film was bad", max_new_tokens=6, temperature=0)
    assert before == "this movie was good and "
    model.save_pretrained(tmp_path)
    words.save_pretrained(tmp_path)
    capsys.readouterr()
    assert main(["generate", str(tmp_path), "--prompt", "the film was bad", "--max-new-tokens", "6", "--temperature",
                 "0"]) == 0
    out = capsys.readouterr()
    assert out.out == SENTENCE + "\n" and "ended the text with [EOS] after 6 of" in out.err  # [EOS]: the text's start
    # an empty prompt: the end of a text, written from its last word, shown left to right
    assert generate_text(model, words, "", max_new_tokens=6, temperature=0) == "good and the film was bad"
    with pytest.raises(ValueError, match="backward LM .* streamer"):
        generate_text(model, words, "the film was bad", max_new_tokens=4, streamer=TextStreamer(words))


@pytest.mark.parametrize("seed", ["1", 1.5, True])
def test_a_seed_that_is_not_an_integer_is_named(tok, seed):
    """`generate_text(..., seed="1")` failed inside numpy: "Cannot cast scalar from dtype('<U1') to dtype('int64')"."""
    with pytest.raises(TypeError, match=rf"^`seed` must be an integer \(the same seed, the same text\) or None.*got {seed!r}"):
        generate_text(tiny_lm(tok), tok, "The", max_new_tokens=3, seed=seed)


def test_beam_search_and_hidden_state_outputs_work_with_the_cache(tok):
    model = tiny_lm(tok)
    enc = batch(tok, PROMPTS[:2])
    settings = dict(max_new_tokens=8, num_beams=3, do_sample=False)
    assert torch.equal(model.generate(**enc, **settings), model.generate(**enc, **settings, use_cache=False))
    settings = dict(max_new_tokens=8, do_sample=False, return_dict_in_generate=True, output_hidden_states=True)
    cached, uncached = model.generate(**enc, **settings), model.generate(**enc, **settings, use_cache=False)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert len(cached.hidden_states) == 8 and cached.hidden_states[1][-1].shape[1] == 1  # one new position per step


@pytest.mark.parametrize("kind", ["lstm", "lstmx2", "gru", "rnn", "transformer"])
def test_continuing_from_a_returned_cache_equals_one_uninterrupted_generation(tok, kind):
    # As transformers documents for continuing a conversation: the whole sequence so far plus the cache.
    model = tiny_lm(tok, kind)
    enc = batch(tok)
    settings = dict(do_sample=False, output_scores=True, return_dict_in_generate=True)
    whole = model.generate(**enc, max_new_tokens=12, **settings)
    first = model.generate(**enc, max_new_tokens=4, **settings)
    mask = torch.cat([enc.attention_mask, torch.ones_like(first.sequences[:, enc.input_ids.shape[1] :])], dim=1)
    rest = model.generate(first.sequences, attention_mask=mask, cache=returned_cache(first), max_new_tokens=8,
                          **settings)
    assert torch.equal(rest.sequences, whole.sequences)
    torch.testing.assert_close(torch.stack(rest.scores), torch.stack(whole.scores[4:]), atol=1e-5, rtol=0)
    # Without a mask (one row, no padding), as a user continuing one text would call it.
    alone = tok(PROMPTS[0], return_tensors="pt").input_ids
    first = model.generate(alone, max_new_tokens=4, **settings)
    rest = model.generate(first.sequences, cache=returned_cache(first), max_new_tokens=8, **settings)
    assert torch.equal(rest.sequences, model.generate(alone, max_new_tokens=12, do_sample=False))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_forward_given_the_whole_sequence_reads_only_what_the_cache_has_not(tok, kind):
    model = tiny_lm(tok, kind)
    ids = tok(TEXT[:20], return_tensors="pt").input_ids
    full = model(ids)
    out = model(ids[:, :6], use_cache=True)
    # The mask covers the whole input: the input is the whole sequence so far, 6 tokens of which were read.
    rest = model(ids, attention_mask=torch.ones_like(ids), cache=out.cache)
    torch.testing.assert_close(rest.logits, full.logits[:, 6:], atol=1e-5, rtol=1e-4)
    assert tokens_read(out.cache) == 20
    # The transformers convention holds too: new tokens with a mask over cached + new tokens.
    again = model(ids[:, :6], use_cache=True)
    step = model(ids[:, 6:], attention_mask=torch.ones_like(ids), cache=again.cache)
    torch.testing.assert_close(step.logits, rest.logits, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="does not extend the 20 tokens"):
        model(ids[:, :12], attention_mask=torch.ones(1, 12, dtype=torch.long), cache=out.cache)
    with pytest.raises(ValueError, match="attention_mask. has 7 columns"):
        model(ids[:, :3], attention_mask=torch.ones(1, 7, dtype=torch.long), cache=out.cache)


def test_use_cache_falls_back_on_the_config(tok):
    model = tiny_lm(tok)
    ids = tok("The isl", return_tensors="pt").input_ids
    assert isinstance(model(ids).cache, DynamicCache)
    model.config.use_cache = False
    assert model(ids).cache is None
    assert isinstance(model(ids, use_cache=True).cache, DynamicCache)
    model.config.use_cache = True
    assert model(ids, use_cache=False).cache is None
    model.train()
    assert model(ids).cache is None  # no cache in training, as in transformers' models


@pytest.mark.parametrize("kind", ["lstm", "lstmx2", "gru", "rnn", "transformer"])
def test_static_cache_equals_dynamic(tok, kind):
    model = tiny_lm(tok, kind)
    enc = batch(tok)
    settings = dict(max_new_tokens=15, do_sample=False, return_dict_in_generate=True)
    static = model.generate(**enc, **settings, cache_implementation="static")
    dynamic = model.generate(**enc, **settings)
    assert isinstance(returned_cache(static), StaticCache)
    assert torch.equal(static.sequences, dynamic.sequences)
    set_seed(3)
    sampled = model.generate(**enc, max_new_tokens=15, do_sample=True, top_k=0, cache_implementation="static")
    set_seed(3)
    assert torch.equal(sampled, model.generate(**enc, max_new_tokens=15, do_sample=True, top_k=0))


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")), reason="torch.compile (inductor) needs a C++ compiler")
@pytest.mark.parametrize("kind", ["lstm", "lstmx2", "gru", "rnn"])
def test_compiled_decoding_gives_the_eager_text(tok, kind):
    # transformers' own compile path: a static cache and a compile config (allowed on the CPU here), for each
    # cell and a stack of two (one or two state tensors a layer, a folded first layer and an unfolded second).
    model = tiny_lm(tok, kind)
    enc = batch(tok, PROMPTS[:2])
    eager = model.generate(**enc, max_new_tokens=20, do_sample=False, cache_implementation="static")
    compile_config = CompileConfig(fullgraph=True, mode="default")
    compile_config._compile_all_devices = True
    compiled = model.generate(**enc, max_new_tokens=20, do_sample=False, cache_implementation="static",
                              compile_config=compile_config)
    assert len(model._compiled_call.graphs) == 1  # the decode steps ran inductor's graph (on the CPU, without dynamo)
    assert torch.equal(compiled, eager)


def test_the_compiled_decode_step_runs_eagerly_past_its_graph_limit(tok, monkeypatch):
    # Like dynamo past its recompile limit: no more graphs, the step runs eagerly and the text is the same.
    from seqhf.models.lstm.modeling_lstm import InductorDecodeStep

    monkeypatch.setattr(InductorDecodeStep, "MAX_GRAPHS", 0)
    model = tiny_lm(tok)
    enc = batch(tok, PROMPTS[:2])
    settings = dict(max_new_tokens=10, do_sample=False, cache_implementation="static")
    compile_config = CompileConfig(fullgraph=True, mode="default")
    compile_config._compile_all_devices = True
    compiled = model.generate(**enc, **settings, compile_config=compile_config)
    assert isinstance(model._compiled_call, InductorDecodeStep) and not model._compiled_call.graphs
    assert torch.equal(compiled, model.generate(**enc, **settings))


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")), reason="inductor needs a C++ compiler")
def test_the_compiled_decode_step_keeps_gradients_by_running_eagerly(tok):
    # Its graphs are inference graphs: with grad mode on, the step runs eagerly and the logits keep their graph.
    from seqhf.models.lstm.modeling_lstm import InductorDecodeStep

    model = tiny_lm(tok).eval()
    step, ids = InductorDecodeStep(None), torch.tensor([[5], [7]])
    enc = batch(tok, PROMPTS[:2])
    eager_cache, compiled_cache = (model(**enc, use_cache=True).cache for _ in range(2))
    with torch.no_grad():
        compiled = model._decode_step(ids, compiled_cache, True, step=step).logits
    assert len(step.graphs) == 1
    with torch.enable_grad():  # the same shapes, so the graph is there to be (wrongly) used
        logits = model._decode_step(ids, eager_cache, True, step=step).logits
    assert logits.requires_grad and len(step.graphs) == 1
    torch.testing.assert_close(compiled, logits.detach())


def test_decode_step_compile_arguments_keep_the_users_settings():
    from seqhf.models.lstm.modeling_lstm import decode_step_compile_arguments

    # A mode becomes its options (torch.compile refuses both), with inductor's in-graph size checks off.
    arguments = decode_step_compile_arguments(CompileConfig(fullgraph=True, mode="reduce-overhead"))
    assert arguments["fullgraph"] is True and "mode" not in arguments
    assert arguments["options"] == {"triton.cudagraphs": True, "size_asserts": False}
    assert decode_step_compile_arguments(CompileConfig(mode="default"))["options"] == {"size_asserts": False}
    # The user's own options win, and another backend gets the config untouched.
    users = decode_step_compile_arguments(CompileConfig(mode=None, options={"size_asserts": True, "cpp_wrapper": True}))
    assert users["options"] == {"size_asserts": True, "cpp_wrapper": True}
    eager_backend = CompileConfig(backend="eager", mode="default")
    assert decode_step_compile_arguments(eager_backend) == eager_backend.to_dict()


def test_num_return_sequences_and_beams_expand_the_recurrent_cache(tok):
    model = tiny_lm(tok, "lstmx2")
    enc = batch(tok, PROMPTS[:2])
    out = model.generate(**enc, max_new_tokens=6, num_beams=3, num_return_sequences=2, do_sample=False,
                         return_dict_in_generate=True)
    cache = returned_cache(out)
    assert out.sequences.shape[0] == 4
    assert cache.layers[1].recurrent_states[0].shape == (6, 16)  # 2 prompts x 3 beams, per layer
    for i, prompt in enumerate(PROMPTS[:2]):  # the best beam of each prompt is the beam search of the prompt alone
        alone = model.generate(**tok(prompt, return_tensors="pt"), max_new_tokens=6, num_beams=3, do_sample=False)
        assert torch.equal(out.sequences[2 * i, -6:], alone[0, -6:])


def test_transformer_generates_past_its_positions_as_a_sliding_window(tok):
    # Each new token sees the last max_position_embeddings tokens, as a step-by-step reference reads them.
    model = tiny_lm(tok, "transformer", max_position_embeddings=16, train_steps=150)
    window = 16
    prompt = tok("The isl", return_tensors="pt").input_ids
    out = model.generate(prompt, max_new_tokens=3 * window, do_sample=False, output_scores=True,
                         return_dict_in_generate=True)
    ids, reference_scores = prompt, []
    with torch.no_grad():
        for _ in range(3 * window):
            logits = model(ids[:, -window:]).logits[:, -1]
            reference_scores.append(logits)
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out.sequences, ids)
    # (the cached steps before the window fills differ from full re-reads by float rounding only)
    torch.testing.assert_close(torch.stack(out.scores), torch.stack(reference_scores), atol=1e-4, rtol=1e-4)
    assert len(set(ids[0, -2 * window :].tolist())) > 3  # a real continuation past the window
    # A left-padded batch: each row still gives its text alone.
    enc = batch(tok)
    rows = model.generate(**enc, max_new_tokens=2 * window, do_sample=False)
    for i, prompt in enumerate(PROMPTS):
        alone = model.generate(**tok(prompt, return_tensors="pt"), max_new_tokens=2 * window, do_sample=False)
        assert torch.equal(rows[i, -2 * window :], alone[0, -2 * window :]), prompt


# ---------------------------------------------------------------- decoding options


def test_temperature_divides_the_logits_so_alpha_is_one_over_temperature(tok):
    model = tiny_lm(tok)
    enc = tok("The isl", return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=1, do_sample=True, temperature=0.5, top_k=0,
                         output_scores=True, output_logits=True, return_dict_in_generate=True)
    alpha = 2.0  # the book's softmax(alpha * logits) with alpha = 1 / temperature
    torch.testing.assert_close(out.scores[0], alpha * out.logits[0])
    torch.testing.assert_close(out.logits[0], model(**enc).logits[:, -1])
    assert "1 / temperature" in SeqLSTMForCausalLM.__doc__


def test_sampling_is_seeded_and_top_k_one_is_greedy(tok):
    model = tiny_lm(tok)
    enc = batch(tok)
    sample = dict(max_new_tokens=20, do_sample=True, temperature=1.3, top_k=0)
    set_seed(1)
    a = model.generate(**enc, **sample)
    set_seed(1)
    b = model.generate(**enc, **sample)
    set_seed(2)
    c = model.generate(**enc, **sample)
    assert torch.equal(a, b) and not torch.equal(a, c)
    greedy = model.generate(**enc, max_new_tokens=20, do_sample=False)
    assert not torch.equal(a, greedy)
    assert torch.equal(model.generate(**enc, max_new_tokens=20, do_sample=True, top_k=1), greedy)
    # A tiny top_p keeps only the most likely token as well.
    assert torch.equal(model.generate(**enc, max_new_tokens=20, do_sample=True, top_k=0, top_p=1e-6), greedy)


def test_num_return_sequences_gives_independent_samples_per_prompt(tok):
    model = tiny_lm(tok)
    enc = batch(tok, PROMPTS[:2])
    set_seed(0)
    out = model.generate(**enc, max_new_tokens=20, do_sample=True, top_k=0, num_return_sequences=3)
    assert out.shape[0] == 6
    prompt_width = enc.input_ids.shape[1]
    for i in range(2):
        rows = out[3 * i : 3 * i + 3]
        assert (rows[:, :prompt_width] == enc.input_ids[i]).all()
        assert len({tuple(r.tolist()) for r in rows[:, prompt_width:]}) > 1


def test_repetition_penalty_avoids_tokens_already_seen(tok):
    model = tiny_lm(tok)
    enc = tok("aaa", return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=10, do_sample=False, repetition_penalty=1e6)[0, 3:].tolist()
    plain = model.generate(**enc, max_new_tokens=10, do_sample=False)[0, 3:].tolist()
    assert len(set(out)) == 10 and tok.convert_tokens_to_ids("a") not in out
    assert len(set(plain)) < 10  # without the penalty this model does repeat


def test_eos_stops_a_row_and_pads_the_finished_rows(tok):
    model = tiny_lm(tok)
    enc = batch(tok)
    free = model.generate(**enc, **GREEDY)[:, -15:]
    eos = free[0, 3].item()  # the fourth token row 0 produces
    out = model.generate(**enc, **GREEDY, eos_token_id=eos, pad_token_id=tok.pad_token_id)
    new = out[:, enc.input_ids.shape[1] :]
    first = new[0].tolist().index(eos)
    assert first <= 3 and (new[0, first + 1 :] == tok.pad_token_id).all()
    for row in new:  # every row: once EOS is out, only padding follows
        hits = (row == eos).nonzero()
        if len(hits):
            assert (row[hits[0, 0] + 1 :] == tok.pad_token_id).all()


def test_text_streamer_prints_the_generated_text(tok):
    model = tiny_lm(tok)
    enc = tok("The isl", return_tensors="pt")
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        out = model.generate(**enc, max_new_tokens=20, do_sample=False,
                             streamer=TextStreamer(tok, skip_prompt=True))
    assert buffer.getvalue().rstrip("\n") == tok.decode(out[0, 7:]).rstrip("\n")
    assert len(buffer.getvalue()) >= 15


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_empty_prompt_starts_from_bos(tok, kind):
    model = tiny_lm(tok, kind)
    empty = torch.empty(1, 0, dtype=torch.long)
    out = model.generate(empty, max_new_tokens=10, do_sample=False)
    bos = torch.tensor([[tok.bos_token_id]])
    assert torch.equal(out, model.generate(bos, max_new_tokens=10, do_sample=False))
    # An empty row in a padded batch starts from BOS too; the other rows are unaffected.
    enc = tok(["", "The isl"], return_tensors="pt", padding=True)
    rows = model.generate(**enc, **GREEDY)
    assert torch.equal(rows[0, -15:], model.generate(bos, **GREEDY)[0, -15:])
    assert torch.equal(rows[1, -15:], model.generate(**tok("The isl", return_tensors="pt"), **GREEDY)[0, -15:])
    # `seqhf generate --prompt ""` and generate_text: the text after BOS.
    assert generate_text(model, tok, "", max_new_tokens=10, temperature=0) == tok.decode(out[0, 1:], skip_special_tokens=True)


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_empty_prompt_without_bos_is_a_clear_error(tok, kind):
    model = tiny_lm(tok, kind, bos_token_id=None)
    model.generation_config.bos_token_id = None
    with pytest.raises(ValueError, match="empty.*bos_token_id"):
        model.generate(torch.empty(1, 0, dtype=torch.long), max_new_tokens=5)


@pytest.mark.parametrize("assisted", [dict(prompt_lookup_num_tokens=2), dict(assistant_model="lstm")])
def test_assisted_decoding_of_a_recurrent_lm_is_a_clear_error(tok, assisted):
    # transformers 5.25 no longer reads `_is_stateful`: it failed inside the cache's `crop` with a TypeError.
    model = tiny_lm(tok)
    if "assistant_model" in assisted:
        assisted = dict(assistant_model=tiny_lm(tok, seed=1))
    with pytest.raises(ValueError, match="cannot take part in assisted decoding.*cannot be rewound"):
        model.generate(**tok("The", return_tensors="pt"), max_new_tokens=5, do_sample=False, **assisted)


def test_a_recurrent_lm_as_assistant_is_a_clear_error(tok):
    main = tiny_lm(tok, "transformer")
    with pytest.raises(ValueError, match="SeqLSTMForCausalLM cannot take part in assisted decoding"):
        main.generate(**tok("The", return_tensors="pt"), max_new_tokens=5, do_sample=False,
                      assistant_model=tiny_lm(tok))


def test_the_recurrent_cache_says_it_cannot_be_cropped(tok):
    # What transformers reads before rewinding a cache (assisted decoding; deferred stop checks on MPS).
    out = tiny_lm(tok, "gru")(**tok("The", return_tensors="pt"), use_cache=True)
    assert returned_cache(out).is_croppable is False


def test_generating_attentions_from_a_recurrent_lm_is_a_clear_error(tok):
    model = tiny_lm(tok)
    with pytest.raises(ValueError, match="no attention layers.*output_attentions"):
        model.generate(**tok("The", return_tensors="pt"), max_new_tokens=3, output_attentions=True,
                       return_dict_in_generate=True)


@pytest.mark.parametrize("n", [0, -3])
def test_non_positive_max_new_tokens_is_a_clear_error(tok, n):
    model = tiny_lm(tok)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(**tok("The", return_tensors="pt"), max_new_tokens=n)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_text(model, tok, "The", max_new_tokens=n)


def test_a_temperature_of_none_is_a_clear_error(tok):
    """`generate_text(..., temperature=None)` failed with "'<' not supported between NoneType and int"."""
    with pytest.raises(ValueError, match=r"^`temperature` must be >= 0 .*got None\."):
        generate_text(tiny_lm(tok), tok, "The", max_new_tokens=3, temperature=None)


def test_unknown_characters_become_unk_with_one_warning(tok):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = encode_prompt(tok, "The ÿsland€ is €")
    assert len(caught) == 1 and "ÿ" in str(caught[0].message) and "€" in str(caught[0].message)
    assert ids[0].tolist().count(tok.unk_token_id) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode_prompt(tok, "The island")  # no warning for in-vocabulary text


def test_a_literal_special_token_in_a_prompt_is_read_as_its_characters(tok, tmp_path):
    text_ids = [tok.convert_tokens_to_ids(ch) for ch in "The "]
    tok.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)  # what pipeline and remote code get
    for tokenizer in (tok, reloaded):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ids = encode_prompt(tokenizer, "The [BOS][UNK]")[0].tolist()
        assert ids[:4] == text_ids and len(ids) == 4 + len("[BOS][UNK]")
        assert tokenizer.bos_token_id not in ids  # as training reads the text: one id a character
        assert tokenizer("The [PAD]", add_special_tokens=False)["input_ids"][4:] != [tokenizer.pad_token_id]
        assert len(caught) == 1 and "'['" in str(caught[0].message)  # TEXT has no "[": unknown characters


# ---------------------------------------------------------------- CLI


def test_generate_cli_same_seed_same_text(tok, tmp_path):
    from seqhf.cli.app import main

    model = tiny_lm(tok)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)

    def run(*args, status=0):
        buffer = io.StringIO()
        with redirect_stdout(buffer):
            assert main(["generate", str(tmp_path), "--prompt", "The island", "--max-new-tokens", "60", *args]) == status
        return buffer.getvalue()

    first, again, other = run("--seed", "1"), run("--seed", "1"), run("--seed", "2")
    assert first.startswith("The island") and len(first.rstrip("\n")) >= len("The island") + 40
    assert first == again and first != other
    assert run("--seed", "1", "--top-k", "3", "--top-p", "0.9") != first
    greedy = run("--temperature", "0")
    expected = model.generate(**tok("The island", return_tensors="pt"), max_new_tokens=60, do_sample=False)
    assert greedy.rstrip("\n") == "The island" + tok.decode(expected[0, 10:], skip_special_tokens=True).rstrip("\n")
    run("--max-new-tokens", "0", status=2)  # a bad option: exit status 2, nothing generated


def test_stop_strings_work_with_a_vocabulary_that_lacks_transformers_probe_letters():
    """transformers reads each token's string after the text "abcdef", and failed (`ValueError: substring not found`,
    deep inside its StopStringCriteria) when the tokenizer made that text [UNK]: a word LM's vocabulary, or a char
    vocabulary without those letters."""
    model, words = word_lm_saying("good")
    prompt = words(["this movie was"], return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=5, do_sample=False, stop_strings=["good"], tokenizer=words)
    assert words.decode(out[0, prompt["input_ids"].shape[1]:]) == "good"

    chars = build_char_tokenizer("xyz zyx\n")
    torch.manual_seed(0)
    config = SeqTransformerConfig(vocab_size=len(chars), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=16, max_position_embeddings=32, pad_token_id=chars.pad_token_id,
                                  is_decoder=True)
    model = SeqTransformerForCausalLM(config).eval()
    prompt = chars(["xyz"], return_tensors="pt")
    suppressed = [chars.pad_token_id, chars.unk_token_id]  # tokens whose printed string is not a character
    free = model.generate(**prompt, max_new_tokens=5, do_sample=False, suppress_tokens=suppressed)
    first = chars.decode(free[0, 3:4])
    out = model.generate(**prompt, max_new_tokens=5, do_sample=False, suppress_tokens=suppressed, stop_strings=[first],
                         tokenizer=chars)
    assert out.shape[1] == 4 and chars.decode(out[0, 3:]) == first


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_chunked_prefill_gives_the_text_of_one_read(tok, kind):
    """`prefill_chunk_size` reads the prompt a chunk at a time: the LSTM read each chunk after the first as the whole
    sequence so far and failed; a left-padded batch whose padding fills a chunk failed deep inside the prefill, with
    an error that did not name the option."""
    model = tiny_lm(tok, kind)
    prompt = tok(["The island was far"], return_tensors="pt")
    expected = model.generate(**prompt, **GREEDY)
    assert torch.equal(model.generate(**prompt, **GREEDY, prefill_chunk_size=4), expected)
    batch = tok(["The island was far", "sea"], return_tensors="pt", padding=True, padding_side="left")  # 15 pads
    expected = model.generate(**batch, **GREEDY)
    assert torch.equal(model.generate(**batch, **GREEDY, prefill_chunk_size=16), expected)
    with pytest.raises(ValueError, match=r"prefill_chunk_size=8 gives a row of this left-padded batch a chunk of "
                                         r"padding only \(it has 15 padding tokens\)"):
        model.generate(**batch, **GREEDY, prefill_chunk_size=8)
    # Continuing from a returned cache, with chunks: the LSTM read the chunks from the start again and failed.
    first = model.generate(**prompt, max_new_tokens=5, do_sample=False, return_dict_in_generate=True)
    continued = model.generate(first.sequences, cache=first.cache, max_new_tokens=10, do_sample=False,
                               prefill_chunk_size=3)
    assert torch.equal(continued, model.generate(**prompt, **GREEDY))


def test_chunked_prefill_of_a_prompt_longer_than_the_positions_reads_the_last_window(tok):
    """A Transformer reads only the last `max_position_embeddings` tokens of a longer prompt; read in chunks, the
    prompt outgrew the positions at a chunk and generate() failed ("exceeds max_position_embeddings")."""
    model = tiny_lm(tok, "transformer", max_position_embeddings=16)
    prompt = tok([TEXT[:40]], return_tensors="pt")
    expected = model.generate(**prompt, **GREEDY)
    assert torch.equal(model.generate(**prompt, **GREEDY, prefill_chunk_size=6), expected)


def test_generate_text_honours_stop_strings_in_the_generation_config():
    """A folder whose generation_config.json sets `stop_strings` failed in `seqhf generate` and `generate_text`
    ("we could not locate a tokenizer"): they now pass the tokenizer that generate() matches them with."""
    model, words = word_lm_saying("good")
    assert generate_text(model, words, "this movie was", max_new_tokens=5, temperature=0).split() == ["good"] * 5
    model.generation_config.stop_strings = ["good"]
    assert generate_text(model, words, "this movie was", max_new_tokens=5, temperature=0).split() == ["good"]


def test_assisted_decoding_past_a_transformers_positions_is_refused(tok):
    """Past its positions a Transformer predicts each token from the last window read afresh; prompt lookup or an
    assistant checked their draft tokens in one window instead, and silently wrote another text than greedy decoding."""
    model = tiny_lm(tok, "transformer", max_position_embeddings=16)
    prompt = tok(["the sea was calm. the sea"], return_tensors="pt")  # 25 characters, repeats for prompt lookup
    with pytest.raises(ValueError, match=r"Assisted decoding .* max_position_embeddings=16 .* \(here 35\)"):
        model.generate(**prompt, max_new_tokens=10, do_sample=False, prompt_lookup_num_tokens=3)
    short = tok(["the sea"], return_tensors="pt")
    expected = model.generate(**short, max_new_tokens=8, do_sample=False)
    assert torch.equal(model.generate(**short, max_new_tokens=8, do_sample=False, prompt_lookup_num_tokens=3), expected)
