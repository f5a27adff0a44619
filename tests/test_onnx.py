"""ONNX export and ONNX Runtime serving (issue 15): padded batches, state carried, int8, the script."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is in the `onnx` and `dev` extras")

from seqhf import SeqLSTMConfig, SeqLSTMForCausalLM, SeqLSTMForSequenceClassification
from seqhf import SeqTransformerConfig, SeqTransformerForCausalLM, SeqTransformerForSequenceClassification
from seqhf.export.onnx_export import INT8_FILE, MANIFEST_FILE, MODEL_FILE, export_folder, sample_padded_batch
from seqhf.export.ort_inference import OrtCausalLM, OrtTextClassifier, sample_next, session
from seqhf.data.tokenization import build_char_tokenizer, build_word_tokenizer

REVIEWS = [
    "a wonderful film , great acting and a moving story",
    "a terrible film , bad acting and a boring story",
    "great fun , I loved it",
    "boring and bad , I hated it",
]
LABELS = dict(id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
BOOK = "The engineer looked at the island. Then the sailor spoke!"


def classifier(kind, vocab_size, pad_token_id):
    torch.manual_seed(0)
    common = dict(vocab_size=vocab_size, num_labels=2, pad_token_id=pad_token_id, **LABELS)
    if kind == "transformer":
        config = SeqTransformerConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                                      max_position_embeddings=64, **common)  # fmt: skip
        return SeqTransformerForSequenceClassification(config)
    if kind == "lstm-default":  # SeqLSTMConfig's defaults (the book's preset): one layer, its final state pooled
        return SeqLSTMForSequenceClassification(SeqLSTMConfig(embedding_size=8, hidden_size=8, **common))
    rnn_type, pooling = {"lstm": ("lstm", "concat"), "lstm-ngrams": ("lstm", "concat"), "gru": ("gru", "last")}[kind]
    # "lstm-ngrams": the wide path on (issue 26), its hashing and masking traced into the graph.
    wide = dict(ngram_buckets=101) if kind == "lstm-ngrams" else {}
    config = SeqLSTMConfig(embedding_size=8, hidden_size=8, num_hidden_layers=2, bidirectional=True, rnn_type=rnn_type,
                           pooling=pooling, **wide, **common)  # fmt: skip
    model = SeqLSTMForSequenceClassification(config)
    if model.ngrams is not None:
        model.ngrams.weight.data.normal_(0.0, 0.5)  # it starts at zero, which would hide a wrong graph
    return model


def causal_lm(kind, tok, max_position_embeddings=128):
    torch.manual_seed(0)
    common = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, is_decoder=True)
    if kind == "transformer":
        config = SeqTransformerConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                                      max_position_embeddings=max_position_embeddings, **common)  # fmt: skip
        model = SeqTransformerForCausalLM(config)
    else:
        config = SeqLSTMConfig(embedding_size=8, hidden_size=16, num_hidden_layers=2, rnn_type=kind, **common)
        model = SeqLSTMForCausalLM(config)
    # Larger weights than the initialisation's: sharper distributions, so greedy choices differ between steps.
    model.get_input_embeddings().weight.data.normal_(0, 1.0)
    model.lm_head.weight.data.normal_(0, 1.0)
    return model


@pytest.fixture(scope="module", params=["lstm", "lstm-ngrams", "gru", "lstm-default", "transformer"])
def exported_classifier(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"cls-{request.param}")
    tok = build_word_tokenizer(REVIEWS, vocab_size=64, min_frequency=1, model_max_length=48)
    model = classifier(request.param, len(tok), tok.pad_token_id).eval()
    model.save_pretrained(folder / "torch")
    tok.save_pretrained(folder / "torch")
    manifest = export_folder(folder / "torch", folder / "onnx", int8=True)
    return model, tok, folder / "onnx", manifest


def test_classifier_matches_pytorch_on_padded_batches(exported_classifier):
    model, _, onnx_dir, manifest = exported_classifier
    assert manifest["max_abs_diff"] < 1e-4  # measured by the export itself
    sess = session(onnx_dir / MODEL_FILE)
    # Batch sizes and lengths other than the traced (3, 9): the axes are dynamic; rows padded left and right.
    for seed, (batch, seq) in enumerate([(1, 1), (1, 30), (4, 13), (7, 40)]):
        ids, mask = sample_padded_batch(model.config.vocab_size, model.config.pad_token_id, batch, seq, seed=100 + seed)
        with torch.no_grad():
            expected = model(input_ids=ids, attention_mask=mask).logits.numpy()
        got = sess.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        assert got.shape == (batch, 2)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    # A padded row gives the logits it gets alone.
    ids, mask = sample_padded_batch(model.config.vocab_size, model.config.pad_token_id, 5, 20, seed=7)
    batched = sess.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    for row in range(5):
        real = ids[row][mask[row].bool()].unsqueeze(0)
        alone = sess.run(["logits"], {"input_ids": real.numpy(), "attention_mask": np.ones(real.shape, np.int64)})[0]
        np.testing.assert_allclose(batched[row], alone[0], atol=1e-4, rtol=0)


def test_exported_classifier_answers_like_the_pipeline(exported_classifier):
    from transformers import pipeline

    model, tok, onnx_dir, _ = exported_classifier
    texts = REVIEWS + ["great", "a film", ""]  # an empty text beside others in the last batch
    classify = pipeline("text-classification", model=model, tokenizer=tok)
    expected = classify(texts, top_k=None, batch_size=4)
    got = OrtTextClassifier(onnx_dir)(texts, batch_size=4)
    # An empty text alone (a batch without a column), and a batch of empty texts only.
    expected += [classify("", top_k=None)] * 2
    got += [OrtTextClassifier(onnx_dir)(""), OrtTextClassifier(onnx_dir)(["", ""])[1]]
    for e, g in zip(expected, got, strict=True):
        assert [x["label"] for x in g] == [x["label"] for x in e]
        np.testing.assert_allclose([x["score"] for x in g], [x["score"] for x in e], atol=1e-5)
    assert OrtTextClassifier(onnx_dir)("great fun")[0]["label"] in ("positive", "negative")  # one text: one list


def test_int8_graph_is_smaller_and_close(exported_classifier):
    model, tok, onnx_dir, manifest = exported_classifier
    assert manifest["int8"] == INT8_FILE
    fp32, int8 = OrtTextClassifier(onnx_dir), OrtTextClassifier(onnx_dir, int8=True)
    enc = tok(REVIEWS, padding=True, return_tensors="np")
    # Weights in 8 bits: close to the float logits, not equal (a test that the int8 file is really quantized).
    difference = np.abs(fp32.logits(enc["input_ids"], enc["attention_mask"]) - int8.logits(enc["input_ids"], enc["attention_mask"]))
    assert 0 < difference.max() < 0.05
    import onnx

    graph = onnx.load(onnx_dir / INT8_FILE).graph
    assert {n.op_type for n in graph.node} & {"DynamicQuantizeLSTM", "MatMulInteger", "DynamicQuantizeMatMul"}
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)  # weights stored in 8 bits


def test_export_folder_has_what_serving_needs(exported_classifier):
    _, _, onnx_dir, _ = exported_classifier
    names = {p.name for p in onnx_dir.iterdir()}
    assert {MODEL_FILE, INT8_FILE, MANIFEST_FILE, "config.json", "tokenizer.json", "tokenizer_config.json"} <= names
    manifest = json.loads((onnx_dir / MANIFEST_FILE).read_text())
    assert manifest["inputs"] == ["input_ids", "attention_mask"] and manifest["outputs"] == ["logits"]
    assert "torch.onnx" in manifest["exporter"]


@pytest.mark.parametrize("kind", ["lstm", "gru", "transformer"])
def test_lm_step_carries_state_and_decodes_like_generate(kind, tmp_path):
    tok = build_char_tokenizer(BOOK)
    model = causal_lm(kind, tok).eval()
    model.save_pretrained(tmp_path / "torch")
    tok.save_pretrained(tmp_path / "torch")
    manifest = export_folder(tmp_path / "torch", tmp_path / "onnx")
    assert manifest["max_abs_diff"] < 1e-4
    lm = OrtCausalLM.from_folder(tmp_path / "onnx")
    names = [i.name for i in lm.session.get_inputs()]
    assert names[0] == "input_ids" and len(names) == (3 if kind == "lstm" else 2 if kind == "gru" else 5)

    # Logits at every position of a longer text, the state carried through 30 single-token steps.
    ids = torch.tensor([tok(BOOK[:36])["input_ids"]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits[0].numpy()
    logits, state = lm.step(ids[:, :6].numpy(), lm.empty_state(1))
    np.testing.assert_allclose(logits[0], expected[5], atol=1e-4, rtol=0)
    for t in range(6, 36):
        logits, state = lm.step(ids[:, t : t + 1].numpy(), state)
        np.testing.assert_allclose(logits[0], expected[t], atol=1e-4, rtol=0)

    # Greedy decoding in ONNX Runtime gives generate()'s characters (the logits check above is the
    # sharper test: random weights often settle on one character).
    for text in ("The island", "Then", "s"):
        prompt = tok(text)["input_ids"]
        greedy = model.generate(torch.tensor([prompt]), max_new_tokens=25, do_sample=False, pad_token_id=tok.pad_token_id)
        assert list(lm.generate(prompt, 25, temperature=0)) == greedy[0, len(prompt) :].tolist()


def test_transformer_lm_generates_past_its_positions_as_generate_does(tmp_path):
    """Past `max_position_embeddings` generate() predicts each token from the last window read afresh; the
    exported step does the same instead of failing on a position the graph has no embedding for."""
    tok = build_char_tokenizer(BOOK)
    model = causal_lm("transformer", tok, max_position_embeddings=12)
    model.save_pretrained(tmp_path / "torch")
    tok.save_pretrained(tmp_path / "torch")
    export_folder(tmp_path / "torch", tmp_path / "onnx")
    lm = OrtCausalLM.from_folder(tmp_path / "onnx")
    for text in ("The", "The engineer looked"):  # a prompt inside the window, and one longer than it
        prompt = tok(text)["input_ids"]
        greedy = model.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, pad_token_id=tok.pad_token_id)
        assert list(lm.generate(prompt, 20, temperature=0)) == greedy[0, len(prompt) :].tolist()



def test_ort_generation_ends_at_the_end_of_text_token_as_generate_does(tmp_path):
    """`OrtCausalLM.generate` went on past `eos_token_id` (a word LM's [EOS], after which a new text starts) for all
    `max_new_tokens`, where `model.generate()` and `seqhf generate` stop."""
    tok = build_char_tokenizer(BOOK)
    model = causal_lm("rnn", tok).eval()
    prompt = tok("The island")["input_ids"]
    free = model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False)[0, len(prompt):].tolist()
    assert free.index(free[3]) == 3  # its first occurrence: the text ends there
    model.config.eos_token_id = model.generation_config.eos_token_id = free[3]
    model.save_pretrained(tmp_path / "torch")
    tok.save_pretrained(tmp_path / "torch")
    export_folder(tmp_path / "torch", tmp_path / "onnx")
    ended = model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False)[0, len(prompt):].tolist()
    assert ended == free[:4]
    assert list(OrtCausalLM.from_folder(tmp_path / "onnx").generate(prompt, 12, temperature=0)) == ended

def test_sampling_is_seeded_and_respects_top_k():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    draws = [sample_next(logits, 1.0, top_k=2, rng=np.random.default_rng(s)) for s in range(200)]
    assert set(draws) == {0, 1}
    nucleus = [sample_next(logits, 1.0, top_p=0.6, rng=np.random.default_rng(s)) for s in range(200)]
    assert set(nucleus) == {0, 1}  # 0.5 < 0.6: the second token is needed to reach the mass
    again = [sample_next(logits, 1.0, rng=np.random.default_rng(s)) for s in range(20)]
    assert again == [sample_next(logits, 1.0, rng=np.random.default_rng(s)) for s in range(20)]
    assert sample_next(logits, 0) == 0


def test_script_exports_and_refuses_bad_requests(tmp_path):
    tok = build_char_tokenizer(BOOK)
    model = causal_lm("lstm", tok)
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    script = [sys.executable, "-m", "seqhf", "export"]
    run = lambda *args: subprocess.run(script + list(args), capture_output=True, text=True, cwd=tmp_path, timeout=300)  # noqa: E731
    done = run(str(tmp_path / "lm"), str(tmp_path / "lm-onnx"))
    assert done.returncode == 0, done.stderr
    assert "largest difference from PyTorch" in done.stdout and (tmp_path / "lm-onnx" / MODEL_FILE).is_file()
    refused = run(str(tmp_path / "lm"), str(tmp_path / "x"), "--int8")
    assert refused.returncode == 2 and "--int8 quantizes a classifier" in refused.stderr  # a usage error, as --imdb
    limit_alone = run(str(tmp_path / "lm"), str(tmp_path / "x"), "--limit", "5")  # did nothing without --imdb
    assert limit_alone.returncode == 2 and "--limit counts the reviews of --imdb" in limit_alone.stderr
    missing = run(str(tmp_path / "nowhere"), str(tmp_path / "y"))
    assert missing.returncode == 2 and "no config.json" in missing.stderr
    not_a_classifier = run(str(tmp_path / "lm"), str(tmp_path / "z"), "--imdb", str(tmp_path))
    assert not_a_classifier.returncode == 2 and "--imdb measures a classifier" in not_a_classifier.stderr
    assert not (tmp_path / "z").exists() and not (tmp_path / "x").exists()  # refused before anything is written


def test_a_graph_outside_the_tolerance_is_not_kept(tmp_path):
    tok = build_word_tokenizer(REVIEWS, vocab_size=64, min_frequency=1, model_max_length=48)
    classifier("lstm", len(tok), tok.pad_token_id).save_pretrained(tmp_path / "torch")
    tok.save_pretrained(tmp_path / "torch")
    with pytest.raises(RuntimeError, match="not kept"):
        export_folder(tmp_path / "torch", tmp_path / "onnx", tolerance=-1.0)  # no difference is below -1
    assert not (tmp_path / "onnx" / MODEL_FILE).exists()


def test_an_export_into_a_used_folder_leaves_no_earlier_graph_and_bad_folders_are_named(tmp_path):
    """A second export without --int8 left the first one's int8 graph, which `OrtTextClassifier(int8=True)` then
    served; a folder without weights or tokenizer failed deep inside transformers, after writing files."""
    import shutil

    tok = build_word_tokenizer(REVIEWS, vocab_size=64, min_frequency=1, model_max_length=48)
    classifier("gru", len(tok), tok.pad_token_id).save_pretrained(tmp_path / "torch")
    tok.save_pretrained(tmp_path / "torch")
    export_folder(tmp_path / "torch", tmp_path / "onnx", int8=True)
    export_folder(tmp_path / "torch", tmp_path / "onnx")
    assert not (tmp_path / "onnx" / INT8_FILE).exists() and (tmp_path / "onnx" / MODEL_FILE).is_file()
    for missing, named in (("model.safetensors", "no model weights"), ("tokenizer.json", "no tokenizer")):
        shutil.copytree(tmp_path / "torch", tmp_path / missing)
        (tmp_path / missing / missing).unlink()
        with pytest.raises(FileNotFoundError, match=named):
            export_folder(tmp_path / missing, tmp_path / f"out-{missing}")
        assert not (tmp_path / f"out-{missing}").exists()  # refused before anything is written
    (tmp_path / "a-file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        export_folder(tmp_path / "torch", tmp_path / "a-file")


def test_ort_sampling_settings_and_prompt_ids_are_checked(tmp_path):
    tok = build_char_tokenizer(BOOK)
    causal_lm("gru", tok).save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    export_folder(tmp_path / "lm", tmp_path / "onnx")
    lm = OrtCausalLM.from_folder(tmp_path / "onnx")
    for settings, named in ((dict(temperature=float("nan")), "temperature"), (dict(temperature=-1), "temperature"),
                            (dict(top_k=-3), "top_k"), (dict(top_p=0.0), "top_p")):
        with pytest.raises(ValueError, match=named):
            list(lm.generate([1, 2], 3, **settings))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        list(lm.generate([10**6], 3))



def test_an_export_folder_given_where_a_model_is_loaded_is_named(tmp_path):
    """`seqhf generate OUT` / `seqhf evaluate OUT --text ...` on what `seqhf export` wrote (a graph, a config and a
    tokenizer, no PyTorch weights) failed deep inside transformers with an OSError about model.safetensors."""
    from seqhf.cli.app import main
    from seqhf.evaluation.saved import evaluate_char_lm
    from seqhf.inference.generation import load_generator

    tok = build_char_tokenizer(BOOK)
    causal_lm("gru", tok).save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    export_folder(tmp_path / "lm", tmp_path / "onnx")
    for load in (lambda: load_generator(tmp_path / "onnx"), lambda: evaluate_char_lm(tmp_path / "onnx", BOOK),
                 lambda: export_folder(tmp_path / "onnx", tmp_path / "again")):
        with pytest.raises(ValueError, match=r"holds an ONNX export \(model.onnx\), not a PyTorch model.*OrtCausalLM"):
            load()
    assert main(["generate", str(tmp_path / "onnx"), "--prompt", "The"]) == 1

def test_a_multi_label_classifier_scores_each_label_as_the_pipeline_does(tmp_path):
    """Label lists: each label's own sigmoid (they need not sum to 1), as `pipeline` gives them; ONNX Runtime and the
    demo's explanation gave a softmax over the labels instead."""
    from transformers import pipeline

    from seqhf.inference.explain import explain

    tok = build_word_tokenizer(REVIEWS, vocab_size=64, min_frequency=1, model_max_length=48)
    model = classifier("lstm", len(tok), tok.pad_token_id)
    model.config.problem_type = "multi_label_classification"
    model.classifier[-1].bias.data.fill_(1.0)  # both labels likely: sigmoids summing to well over 1
    model.eval().save_pretrained(tmp_path / "torch")
    tok.save_pretrained(tmp_path / "torch")
    export_folder(tmp_path / "torch", tmp_path / "onnx")
    expected = pipeline("text-classification", model=str(tmp_path / "torch"), top_k=None)(REVIEWS)
    got = OrtTextClassifier(tmp_path / "onnx")(REVIEWS)
    for e, g, text in zip(expected, got, REVIEWS, strict=True):
        assert sum(x["score"] for x in e) > 1.2
        assert [x["label"] for x in g] == [x["label"] for x in e]
        np.testing.assert_allclose([x["score"] for x in g], [x["score"] for x in e], atol=1e-5)
        explained = explain(model, tok, text, steps=4).probabilities
        np.testing.assert_allclose([explained[x["label"]] for x in e], [x["score"] for x in e], atol=1e-5)
