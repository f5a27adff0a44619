"""Pipelines (issue 5): text-generation and text-classification on saved folders, with seqhf installed
and as remote code in a process where seqhf cannot be imported; labels, scores, truncation, bad input."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, pipeline

from seqhf import SeqLSTMConfig, SeqLSTMForSequenceClassification, SeqTransformerConfig, SeqTransformerForSequenceClassification
from seqhf.data.tokenization import build_char_tokenizer, build_word_tokenizer
from tests.conftest import _BLOCK_SEQHF, REPO, run_without_seqhf
from tests.test_generation import TEXT, tiny_lm

REVIEWS = ["a good movie , really good", "a bad film . bad acting", "good fun", "so bad"]
MAX_LENGTH = 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def char_tok():
    return build_char_tokenizer(TEXT)


@pytest.fixture(scope="module")
def lm_dirs(tmp_path_factory, char_tok):
    """Char LM folders as the training script writes them: model (with its code) and tokenizer."""
    dirs = {}
    for kind in ("lstm", "transformer"):
        folder = tmp_path_factory.mktemp(f"charlm_{kind}")
        tiny_lm(char_tok, kind).save_pretrained(folder)
        char_tok.save_pretrained(folder)
        dirs[kind] = folder
    return dirs


@pytest.fixture(scope="module")
def clf_dirs(tmp_path_factory):
    """Review classifier folders, trained a few steps so the two classes get different scores."""
    tok = build_word_tokenizer(REVIEWS, vocab_size=50, min_frequency=1, model_max_length=MAX_LENGTH)
    enc = tok(REVIEWS, return_tensors="pt", padding=True)
    labels = torch.tensor([1, 0, 1, 0])
    ids = dict(
        vocab_size=len(tok), pad_token_id=tok.pad_token_id,
        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
    )
    dirs = {}
    for kind in ("lstm", "transformer"):
        torch.manual_seed(0)
        if kind == "lstm":
            model = SeqLSTMForSequenceClassification(SeqLSTMConfig(embedding_size=8, hidden_size=8, **ids))
        else:
            config = SeqTransformerConfig(
                hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                max_position_embeddings=MAX_LENGTH, classifier_dropout=0.0, **ids,
            )
            model = SeqTransformerForSequenceClassification(config)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(30):
            model(**enc, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        folder = tmp_path_factory.mktemp(f"sentiment_{kind}")
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        dirs[kind] = folder
    return dirs


@pytest.fixture(scope="module")
def clf_dir(clf_dirs):
    return clf_dirs["lstm"]


def expected_greedy(folder_model, tok, prompt, n):
    """The text generate() itself gives, to compare the pipeline with."""
    ids = tok(prompt, return_tensors="pt").input_ids if prompt else torch.tensor([[tok.bos_token_id]])
    out = folder_model.generate(ids, max_new_tokens=n, do_sample=False)
    return prompt + tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


# ---------------------------------------------------------------- with seqhf installed


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_text_generation_pipeline_on_a_saved_folder(lm_dirs, char_tok, kind):
    generator = pipeline("text-generation", model=str(lm_dirs[kind]))
    assert generator.model.__class__.__module__.startswith("seqhf.")
    text = generator("The isl", max_new_tokens=20, do_sample=False)[0]["generated_text"]
    assert text == expected_greedy(generator.model, char_tok, "The isl", 20)
    assert len(text) >= len("The isl") + 15
    # A batch of prompts of different lengths (left-padded together) gives each prompt's own text.
    batched = generator(["The isl", "sea", "They saw th"], max_new_tokens=12, do_sample=False, batch_size=3)
    for prompt, [result] in zip(["The isl", "sea", "They saw th"], batched):
        assert result["generated_text"] == expected_greedy(generator.model, char_tok, prompt, 12)


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_text_classification_pipeline_labels_scores_and_top_k(clf_dirs, kind):
    classifier = pipeline("text-classification", model=str(clf_dirs[kind]))
    best = classifier("a good movie")
    assert len(best) == 1 and best[0]["label"] in ("negative", "positive")
    both = classifier(["a good movie", "a bad film"], top_k=None)
    for scores in both:
        assert sorted(s["label"] for s in scores) == ["negative", "positive"]
        assert sum(s["score"] for s in scores) == pytest.approx(1.0, abs=1e-6)
        assert scores[0]["score"] >= scores[1]["score"]
    assert both[0][0]["label"] == "positive" and both[1][0]["label"] == "negative"


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_long_review_is_truncated_to_model_max_length(clf_dirs, kind):
    words = ("good fun , a good movie " * 40).split()
    long_review = " ".join(words)
    first_words = pipeline("text-classification", model=str(clf_dirs[kind]))(" ".join(words[:MAX_LENGTH]), top_k=None)
    # truncation=True, given when the pipeline is made or per call, cuts at the tokenizer's model_max_length.
    made_truncating = pipeline("text-classification", model=str(clf_dirs[kind]), truncation=True)
    per_call = pipeline("text-classification", model=str(clf_dirs[kind]))
    for truncated in (made_truncating(long_review, top_k=None), per_call(long_review, top_k=None, truncation=True)):
        assert [s["label"] for s in truncated] == [s["label"] for s in first_words]
        assert [s["score"] for s in truncated] == pytest.approx([s["score"] for s in first_words], abs=1e-6)
    untruncated = per_call
    if kind == "lstm":  # no length limit: the whole review is read
        assert untruncated(long_review, top_k=None)[0]["score"] != pytest.approx(first_words[0]["score"], abs=1e-7)
    else:  # learned positions end at max_position_embeddings: a clear error that says how to fix it
        with pytest.raises(ValueError, match="max_position_embeddings.*truncation=True"):
            untruncated(long_review)


def test_char_transformer_writes_past_its_positions_through_the_pipeline_and_the_card_snippet(char_tok, tmp_path):
    # A window of 16 positions; the pipeline's default call writes 256 new characters.
    tiny_lm(char_tok, "transformer", max_position_embeddings=16, train_steps=150).save_pretrained(tmp_path)
    char_tok.save_pretrained(tmp_path)
    generator = pipeline("text-generation", model=str(tmp_path))
    text = generator("The island was")[0]["generated_text"]
    assert text.startswith("The island was") and len(text) > 100
    # The card's own snippet (sampling, 200 new characters).
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    inputs = char_tok("The engineer", return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=200, do_sample=True, temperature=0.8)
    assert out.shape == (1, len("The engineer") + 200)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_feature_extraction_pipeline_batched_as_one_at_a_time(clf_dirs, kind):
    """The pipeline splits a batch's outputs along dim 0: the LSTM's `final_state` once put the batch second and
    broke it (an IndexError, or the wrong rows)."""
    extract = pipeline("feature-extraction", model=str(clf_dirs[kind]))
    texts = REVIEWS[:3]
    batched = extract(texts, batch_size=4)
    assert len(batched) == len(texts)
    for text, features in zip(texts, batched):
        alone = torch.tensor(extract(text))  # (1, tokens, hidden)
        torch.testing.assert_close(torch.tensor(features)[:, : alone.shape[1]], alone, atol=1e-5, rtol=0)


def test_trainer_predictions_of_an_lstm_lm_are_its_logits(lm_dirs, tmp_path):
    """Trainer.predict collects the logits, one row a text, not the state carried between calls."""
    from transformers import Trainer, TrainingArguments

    model = AutoModelForCausalLM.from_pretrained(lm_dirs["lstm"])
    rows = [{"input_ids": torch.arange(1, 7) + i, "labels": torch.arange(1, 7) + i} for i in range(5)]
    args = TrainingArguments(tmp_path, per_device_eval_batch_size=2, report_to="none", use_cpu=True)
    predictions = Trainer(model=model, args=args).predict(rows).predictions
    assert predictions.shape == (5, 6, model.config.vocab_size)


def test_text_generation_pipeline_bad_input(lm_dirs, char_tok):
    generator = pipeline("text-generation", model=str(lm_dirs["lstm"]))
    # "" starts from BOS, alone or mixed into a padded batch.
    empty = generator("", max_new_tokens=10, do_sample=False)[0]["generated_text"]
    assert empty == expected_greedy(generator.model, char_tok, "", 10)
    # (Not with batch_size > 1: transformers' pipeline collate cannot left-pad an empty prompt.)
    mixed = generator(["The isl", ""], max_new_tokens=10, do_sample=False)
    assert mixed[1][0]["generated_text"] == empty
    assert mixed[0][0]["generated_text"] == expected_greedy(generator.model, char_tok, "The isl", 10)
    # None is refused before anything reaches torch.
    for bad in (None, ["The isl", None]):
        with pytest.raises((TypeError, ValueError)):
            generator(bad, max_new_tokens=5)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generator("The isl", max_new_tokens=0)


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_empty_text_is_read_as_one_pad_and_spares_its_batch(clf_dirs, kind):
    classifier = pipeline("text-classification", model=str(clf_dirs[kind]), top_k=None)
    alone = {text: classifier([text])[0] for text in ("a good movie", "", "so bad")}
    for batch_size in (1, 3):
        got = classifier(["a good movie", "", "so bad"], batch_size=batch_size)
        for text, scores in zip(["a good movie", "", "so bad"], got):
            assert [s["label"] for s in scores] == [s["label"] for s in alone[text]]
            assert [s["score"] for s in scores] == pytest.approx([s["score"] for s in alone[text]], abs=1e-5)
    model = classifier.model
    pad = torch.tensor([[model.config.pad_token_id]])
    with torch.no_grad():  # documented: an empty text gets the model's answer to one [PAD] token
        expected = model(input_ids=pad).logits.softmax(-1)[0]
    by_label = {s["label"]: s["score"] for s in alone[""]}
    assert [by_label[model.config.id2label[i]] for i in range(2)] == pytest.approx(expected.tolist(), abs=1e-5)


def test_text_classification_pipeline_bad_input(clf_dir):
    classifier = pipeline("text-classification", model=str(clf_dir))
    with pytest.raises(ValueError, match="text"):
        classifier(None)
    with pytest.raises(ValueError, match="text"):
        classifier(["a good movie", None])
    # Unknown words only: a defined result ([UNK] tokens), not an error.
    assert classifier("zzz qqq")[0]["label"] in ("negative", "positive")


def test_a_folder_that_does_not_fit_is_refused_where_a_classifier_is_loaded(lm_dirs, clf_dir, tmp_path):
    """transformers would load an LM folder as a classifier with a new, random head (and only log it): seqhf's
    loaders of classifiers refuse it and say what to do (`seqhf evaluate --dataset` on a char LM used to score
    25,000 reviews with that random head). A classifier given data with other classes is told so."""
    from seqhf.demo.page import load_classifier
    from seqhf.evaluation.saved import evaluate_classifier
    from seqhf.inference.saved_folder import NotAClassifierError
    from seqhf.training.classifier import classify

    data = tmp_path / "data.csv"
    data.write_text("text,label\na good movie,1\nso bad,0\n")
    expected = r"holds SeqLSTMForCausalLM|holds SeqTransformerForCausalLM"
    for folder in lm_dirs.values():
        for load in (lambda: classify(folder, ["a good movie"]), lambda: load_classifier(str(folder)),
                     lambda: evaluate_classifier(folder, dict(source=str(data)), baseline=False)):
            with pytest.raises(NotAClassifierError, match=rf"({expected}) \(a language model\), not a text classifier.*"
                                                          r"seqhf evaluate FOLDER --text FILE` to score it on a text, char "
                                                          r"or word LM alike"):
                load()
    assert classify(clf_dir, ["a good movie"])[0]["label"] in ("negative", "positive")  # a classifier still loads
    assert classify(clf_dir, "a good movie") == classify(clf_dir, ["a good movie"])  # one text, not its characters
    # A classifier on data with other classes: the message says where the names it compares came from.
    three = tmp_path / "three.csv"
    three.write_text("text,label\n" + "a good movie,1\nso bad,0\nso so,2\n" * 10)
    with pytest.raises(ValueError, match=r"has 2 classes \(negative, positive\), which name the dataset's labels unless "
                                         r"--label-names is given, and they do not fit this dataset: .*2 names for 3 labels"):
        evaluate_classifier(clf_dir, dict(source=str(three)), baseline=False)


# ---------------------------------------------------------------- remote code, seqhf not importable


def test_pipelines_as_remote_code_without_seqhf(lm_dirs, clf_dir, char_tok, tmp_path):
    expected = {}
    for kind, folder in lm_dirs.items():
        generator = pipeline("text-generation", model=str(folder))
        expected[kind] = generator("The isl", max_new_tokens=15, do_sample=False)[0]["generated_text"]
    expected["clf"] = pipeline("text-classification", model=str(clf_dir))(["a good movie", "so bad"], top_k=None)
    out = run_without_seqhf(
        f"""
        import json
        from transformers import pipeline
        result = {{}}
        for kind, folder in {json.dumps({k: str(v) for k, v in lm_dirs.items()})}.items():
            generator = pipeline("text-generation", model=folder, trust_remote_code=True)
            assert generator.model.__class__.__module__.startswith("transformers_modules"), generator.model
            result[kind] = generator("The isl", max_new_tokens=15, do_sample=False)[0]["generated_text"]
            # transformers' caches with the remote classes: continuing from a returned cache, a static cache.
            model, ids = generator.model, generator.tokenizer("The isl", return_tensors="pt").input_ids
            whole = model.generate(ids, max_new_tokens=8, do_sample=False)
            first = model.generate(ids, max_new_tokens=3, do_sample=False, return_dict_in_generate=True)
            rest = model.generate(first.sequences, cache=first.cache, max_new_tokens=5, do_sample=False)
            static = model.generate(ids, max_new_tokens=8, do_sample=False, cache_implementation="static")
            assert rest.tolist() == whole.tolist() == static.tolist(), kind
        classifier = pipeline("text-classification", model={str(clf_dir)!r}, trust_remote_code=True)
        result["clf"] = classifier(["a good movie", "so bad"], top_k=None)
        print("RESULT" + json.dumps(result))
        """,
        cwd=tmp_path,
    )
    result = json.loads(out.split("RESULT", 1)[1])
    assert result["lstm"] == expected["lstm"] and result["transformer"] == expected["transformer"]
    for got, want in zip(result["clf"], expected["clf"]):
        assert [s["label"] for s in got] == [s["label"] for s in want]
        assert [s["score"] for s in got] == pytest.approx([s["score"] for s in want], abs=1e-6)


def card_snippets(task):
    """The card's Python blocks that load the model with AutoTokenizer (the user's copy-and-paste)."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "seqhf" / "hub" / "templates" / f"{task}.md").read_text(), re.S)
    return [block for block in blocks if "AutoTokenizer" in block]


@pytest.mark.parametrize("task", ["charlm", "classification"])
def test_card_snippet_loads_silently_without_seqhf(lm_dirs, clf_dir, task, tmp_path):
    # No "Do you wish to run the custom code?" prompt and no model-type warning from AutoTokenizer.
    from jinja2 import Template

    folder = lm_dirs["lstm"] if task == "charlm" else clf_dir
    [snippet] = card_snippets(task)
    snippet = Template(snippet).render(repo_id=str(folder), example_text="A fine film.", r={"multi_label": False})
    code = _BLOCK_SEQHF + snippet + "\nprint('SNIPPET OK')\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "hf_modules"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "SNIPPET OK" in proc.stdout, proc.stderr
    for noise in ("Do you wish to run the custom code", "You are using a model of type", "trust_remote_code"):
        assert noise not in proc.stdout + proc.stderr, proc.stderr
