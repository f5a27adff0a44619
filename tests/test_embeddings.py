"""Word vectors (seqhf.training.embeddings): word2vec on the tokenizer's ids, the cache, and their use in training."""

import json
import os
import subprocess
import sys

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value
from safetensors.torch import load_file
from transformers import TrainerCallback

from seqhf import SeqLSTMConfig, SeqLSTMForSequenceClassification
from seqhf.training.embeddings import cached_word_vectors, load_embeddings, train_word_vectors
from seqhf.data.tokenization import build_word_tokenizer
from seqhf.utils.runtime import cpu_cores
from seqhf.training.classifier import WORD_VECTOR_CACHE, train_sentiment
import seqhf.training.embeddings as classification
import seqhf.training.embeddings as embeddings

POSITIVE, NEGATIVE = ["great", "superb", "wonderful"], ["awful", "dull", "boring"]


def _corpus(n=400, seed=0):
    """Sentences where the positive words share contexts with each other, the negative ones likewise."""
    g = torch.Generator().manual_seed(seed)
    texts = []
    for i in range(n):
        words, context = (POSITIVE, ["loved", "joy", "smile"]) if i % 2 else (NEGATIVE, ["hated", "yawn", "waste"])
        picks = torch.randint(0, 3, (6,), generator=g).tolist()
        texts.append(" ".join([words[picks[0]], context[picks[1]], words[picks[2]], context[picks[3]], "film"]))
    return texts


@pytest.fixture(scope="module")
def corpus_and_tokenizer():
    texts = _corpus()
    return texts, build_word_tokenizer(texts + ["unseen"], vocab_size=100, min_frequency=1)


def test_vectors_cover_seen_ids_and_group_similar_words(corpus_and_tokenizer):
    texts, tokenizer = corpus_and_tokenizer
    vectors, found = train_word_vectors(tokenizer, texts, 16, epochs=50, window=2)
    assert vectors.shape == (len(tokenizer), 16) and found.dtype == torch.bool
    vocab = tokenizer.get_vocab()
    assert not found[tokenizer.pad_token_id] and not found[vocab["unseen"]]
    assert found[vocab["great"]] and vectors[vocab["unseen"]].abs().sum() == 0

    def cos(a, b):
        return torch.cosine_similarity(vectors[vocab[a]], vectors[vocab[b]], dim=0).item()

    same = [cos(a, b) for group in (POSITIVE, NEGATIVE) for a in group for b in group if a < b]
    across = [cos(a, b) for a in POSITIVE for b in NEGATIVE]
    assert min(same) > max(across) + 0.2, (same, across)
    again, _ = train_word_vectors(tokenizer, texts, 16, epochs=50, window=2)
    torch.testing.assert_close(vectors, again, rtol=0, atol=0)  # one worker: reproducible


def test_cache_is_read_back_and_keyed_by_settings_and_texts(tmp_path, corpus_and_tokenizer, monkeypatch):
    texts, tokenizer = corpus_and_tokenizer
    vectors, found = cached_word_vectors(tmp_path, tokenizer, texts, 8, epochs=2)
    (path,) = tmp_path.glob("word_vectors-*.safetensors")
    assert not list(tmp_path.glob("*.partial"))

    def fail(*args, **kwargs):
        raise AssertionError("learnt again instead of reading the cache")

    monkeypatch.setattr(embeddings, "train_word_vectors", fail)
    cached, cached_found = cached_word_vectors(tmp_path, tokenizer, texts, 8, epochs=2)
    torch.testing.assert_close(cached, vectors)
    assert torch.equal(cached_found, found)
    with pytest.raises(AssertionError, match="learnt again"):  # other settings, other key
        cached_word_vectors(tmp_path, tokenizer, texts, 8, epochs=3)
    with pytest.raises(AssertionError, match="learnt again"):  # one text changed, other key
        cached_word_vectors(tmp_path, tokenizer, texts[:100] + ["great film"] + texts[101:], 8, epochs=2)


def test_load_embeddings_copies_found_rows_and_keeps_padding(corpus_and_tokenizer):
    texts, tokenizer = corpus_and_tokenizer
    config = SeqLSTMConfig(vocab_size=len(tokenizer), embedding_size=8, hidden_size=4, pad_token_id=tokenizer.pad_token_id)
    model = SeqLSTMForSequenceClassification(config)
    before = model.get_input_embeddings().weight.detach().clone()
    vectors, found = torch.randn(len(tokenizer), 8), torch.zeros(len(tokenizer), dtype=torch.bool)
    found[[tokenizer.pad_token_id, 3, 5]] = True
    assert load_embeddings(model, vectors, found) == 2
    after = model.get_input_embeddings().weight.detach()
    torch.testing.assert_close(after[[3, 5]], vectors[[3, 5]])
    torch.testing.assert_close(after[tokenizer.pad_token_id], before[tokenizer.pad_token_id])
    torch.testing.assert_close(after[4], before[4])
    with pytest.raises(ValueError, match=r"shape \(\d+, 7\).*embedding"):
        load_embeddings(model, torch.zeros(len(tokenizer), 7), found)


def _write_imdb_with_unlabelled(folder, n_train=64, n_test=16, n_unlabelled=200):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: plain_text\n  data_files:\n"
        + "".join(f"  - split: {s}\n    path: {s}.parquet\n" for s in ("train", "test", "unsupervised"))
        + "  default: true\n---\n"
    )
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    unlabelled = Features({"text": Value("string"), "label": Value("int64")})
    texts = _corpus(n_train + n_test + n_unlabelled, seed=1)
    labels = [i % 2 for i in range(len(texts))]
    Dataset.from_dict({"text": texts[:n_train], "label": labels[:n_train]}, features=features).to_parquet(
        str(folder / "train.parquet"))
    Dataset.from_dict({"text": texts[n_train:n_train + n_test], "label": labels[n_train:n_train + n_test]},
                      features=features).to_parquet(str(folder / "test.parquet"))
    Dataset.from_dict({"text": texts[-n_unlabelled:], "label": [-1] * n_unlabelled}, features=unlabelled).to_parquet(
        str(folder / "unsupervised.parquet"))
    return folder


class _EmbeddingAtStart(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.weight = model.get_input_embeddings().weight.detach().clone()


TINY_WITH_VECTORS = dict(
    arch="lstm", model=dict(embedding_size=8, hidden_size=8, bidirectional=True, pooling="concat"),
    vocab_size=100, max_length=16, truncation="head", validation_size=0.25,
    word_vectors=dict(epochs=2, window=2),
    train=dict(learning_rate=1e-2, epochs=1, batch_size=8, weight_decay=0.0, warmup=0.0, scheduler="constant",
               patience=5),
)


def test_training_starts_from_word_vectors_of_train_and_unlabelled_reviews(tmp_path):
    data = _write_imdb_with_unlabelled(tmp_path / "imdb")
    seen = _EmbeddingAtStart()
    results = train_sentiment(TINY_WITH_VECTORS, str(data), tmp_path / "out", callbacks=[seen], report_to="none",
                              disable_tqdm=True)
    assert results["word_vectors"]["texts"] == 48 + 200  # the carved training reviews and the unlabelled ones
    (cache,) = (tmp_path / "out" / WORD_VECTOR_CACHE).glob("word_vectors-*.safetensors")
    stored = load_file(cache)
    found = stored["found"].clone()
    found[0] = False  # [PAD] keeps its zero row
    assert found.sum() > 10
    torch.testing.assert_close(seen.weight[found], stored["vectors"][found])
    assert json.loads((tmp_path / "out" / "eval_results.json").read_text())["word_vectors"]["epochs"] == 2


def test_two_processes_learn_the_vectors_once(tmp_path):
    """Under `accelerate launch` the main process learns the vectors; the other reads its cache."""
    data = _write_imdb_with_unlabelled(tmp_path / "imdb")
    script = tmp_path / "train.py"
    script.write_text(
        "import json, sys\n"
        "from seqhf.training.classifier import train_sentiment\n"
        f"train_sentiment(json.loads({json.dumps(json.dumps(TINY_WITH_VECTORS))}), {str(data)!r}, {str(tmp_path / 'out')!r},"
        " report_to='none', disable_tqdm=True)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("PYTHONPATH", None)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29519",
           str(script)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count(" ids from ") == 1, proc.stdout  # learnt once, by the main process (its closing line)
    assert len(list((tmp_path / "out" / WORD_VECTOR_CACHE).glob("word_vectors-*.safetensors"))) == 1
    results = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert results["train_args"]["world_size"] == 2
    # the waiting process lends its core to word2vec (one thread each)
    assert results["word_vectors"]["workers"] == min(2, cpu_cores())


def test_word2vec_takes_the_cores_the_training_processes_hold(monkeypatch):

    monkeypatch.setattr(classification.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(classification, "cpu_cores", lambda: 2)
    monkeypatch.setattr(classification.torch, "get_num_threads", lambda: 1)
    assert classification.word_vector_workers(1) == 1  # reproducible: one process, one thread
    assert classification.word_vector_workers(2) == 2
    assert classification.word_vector_workers(4) == 2  # never more than the cores
    monkeypatch.setattr(classification.torch, "get_num_threads", lambda: 2)
    assert classification.word_vector_workers(1) == 2


def test_word2vec_reports_each_epoch(corpus_and_tokenizer, capsys):
    texts, tokenizer = corpus_and_tokenizer
    train_word_vectors(tokenizer, texts, 8, epochs=3, window=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if "epoch" in line]
    assert [line.split(" done")[0] for line in lines] == [f"word2vec: epoch {i}/3" for i in (1, 2, 3)]


def test_lstm_trains_on_cut_reviews_and_is_evaluated_on_whole_ones(tmp_path):
    """`pipeline` users' reviews are read whole by the LSTM, so the reported figures are on whole reviews."""
    from seqhf.training.classifier_inputs import build_tokenizer, encode_splits
    from seqhf.data.classification import load_classification_data

    data = load_classification_data(str(_write_imdb_with_unlabelled(tmp_path / "imdb")))
    preset = dict(TINY_WITH_VECTORS, max_length=3, word_vectors=None)
    encoded = encode_splits(data, preset, build_tokenizer(data, preset))
    assert max(encoded["train"]["length"]) == 3
    assert min(encoded["validation"]["length"]) == min(encoded["test"]["length"]) == 5  # the corpus' reviews
    transformer = dict(preset, arch="transformer")  # positions end: cut everywhere, as truncation=True does
    encoded = encode_splits(data, transformer, build_tokenizer(data, transformer))
    assert max(encoded["test"]["length"]) == max(encoded["validation"]["length"]) == 3


def test_baseline_is_fitted_beside_word2vec_with_the_same_figures(tmp_path):
    """With word vectors to learn, the TF-IDF baseline runs in a child process meanwhile (on the core word2vec
    leaves free); its figures are those of fitting it in this process."""
    from seqhf.evaluation.baseline import tfidf_logistic_regression
    from seqhf.training.classifier_inputs import load_data

    data = _write_imdb_with_unlabelled(tmp_path / "imdb")
    results = train_sentiment(TINY_WITH_VECTORS, str(data), tmp_path / "out", report_to="none", disable_tqdm=True)
    assert "baseline (waiting for the background fit)" in results["phase_wall_time_s"]
    assert "rare n-grams" not in results["phase_wall_time_s"]  # no n-gram path: no pruning phase to log
    here = tfidf_logistic_regression(load_data(dict(source=str(data), label_names=["negative", "positive"]),
                                               TINY_WITH_VECTORS, seed=42))
    assert results["baseline"]["examples"] == here["examples"] > 0
    assert results["baseline"]["accuracy"] == here["accuracy"] and results["baseline"]["f1"] == here["f1"]


def test_another_process_reads_the_tokenized_splits_from_the_datasets_cache(tmp_path, monkeypatch):
    """Under accelerate launch the main process tokenizes (with every core) while the others wait, then they
    read its datasets cache: that needs the same fingerprint from the tokenizer each process builds itself."""
    from transformers import PreTrainedTokenizerFast

    from seqhf.training.classifier_inputs import build_tokenizer, encode_splits
    from seqhf.data.classification import load_classification_data

    folder = str(_write_imdb_with_unlabelled(tmp_path / "imdb"))
    preset = dict(TINY_WITH_VECTORS, word_vectors=None)
    main = load_classification_data(folder)
    first = encode_splits(main, preset, build_tokenizer(main, preset))
    other = load_classification_data(folder)  # what a second process loads and builds
    tokenizer = build_tokenizer(other, preset)
    calls = []
    call = PreTrainedTokenizerFast.__call__
    monkeypatch.setattr(PreTrainedTokenizerFast, "__call__", lambda self, *a, **k: calls.append(1) or call(self, *a, **k))
    again = encode_splits(other, preset, tokenizer)
    assert not calls  # read from the cache
    for split in first:
        assert again[split]["input_ids"] == first[split]["input_ids"]


def test_word2vec_streams_a_dataset_and_learns_the_vectors_of_the_in_memory_list(corpus_and_tokenizer, tmp_path):
    """Issue #25: the texts are read from the Arrow data a batch at a time and word2vec reads a file of ids,
    once for its vocabulary and once an epoch; the vectors are those learnt from the in-memory token lists."""
    from datasets import Dataset
    from gensim.models import Word2Vec

    texts, tokenizer = corpus_and_tokenizer
    corpus = embeddings.TextCorpus([(Dataset.from_dict({"text": texts + [""]}), True), (["great film"], False)])
    assert len(corpus) == len(texts) + 1 and list(corpus) == texts + ["great film"]
    vectors, found = train_word_vectors(tokenizer, corpus, 8, epochs=3, window=2, workdir=tmp_path)
    assert not list(tmp_path.iterdir())  # the file of ids is gone
    ids = tokenizer(texts + ["great film"], add_special_tokens=False)["input_ids"]
    listed = tmp_path / "listed.txt"
    listed.write_text("".join(" ".join(map(str, row)) + "\n" for row in ids if row))
    old = Word2Vec(corpus_file=str(listed), vector_size=8, window=2, min_count=1, sg=1, negative=5, epochs=3,
                   workers=1, seed=42)
    for key, index in old.wv.key_to_index.items():
        assert found[int(key)] and torch.equal(vectors[int(key)], torch.from_numpy(old.wv.vectors[index]))
    assert int(found.sum()) == len(old.wv.key_to_index)
