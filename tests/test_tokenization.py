"""Tokenizers: the chapter's cleaning, vocabulary limits, [UNK], exact char round trips, loading without seqhf."""

import os
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from seqhf.data.tokenization import build_char_tokenizer, build_word_tokenizer, tokenizer_threads
from tests.conftest import run_without_seqhf

REVIEWS = [
    "This movie was GREAT!<br /><br />I loved it, really.",
    "This movie was bad... really bad, I hated it!",
    "Great acting; bad plot. I loved the music.",
]
BOOK = 'The island, said Cyrus Harding, "is not deserted."\nPencroft laughed!  Top barked.\n'


def test_word_tokenizer_cleans_lowercases_and_splits_punctuation():
    tokenizer = build_word_tokenizer(REVIEWS, vocab_size=100, min_frequency=1)
    assert tokenizer.tokenize("This MOVIE was great!<br />Adored it.") == [
        "this", "movie", "was", "great", "!", "[UNK]", "it", ".",
    ]  # fmt: skip
    assert "<br" not in tokenizer.get_vocab() and "br" not in tokenizer.get_vocab()
    assert tokenizer.convert_tokens_to_ids(["[PAD]", "[UNK]"]) == [0, 1]


def test_word_vocabulary_respects_cap_and_min_frequency():
    capped = build_word_tokenizer(REVIEWS, vocab_size=6, min_frequency=1)
    assert len(capped) == 6
    frequent = build_word_tokenizer(REVIEWS, vocab_size=1000, min_frequency=3)
    backend = frequent.backend_tokenizer
    counts = Counter(
        word for review in REVIEWS for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(review))
    )
    expected = {word for word, n in counts.items() if n >= 3}
    assert expected and "music" not in expected
    assert set(frequent.get_vocab()) - {"[PAD]", "[UNK]"} == expected


def test_word_tokenizer_truncates_and_pads():
    tokenizer = build_word_tokenizer(REVIEWS, vocab_size=100, min_frequency=1, model_max_length=4)
    batch = tokenizer(["this movie was great and more words", "bad"], truncation=True, padding=True)
    assert batch["input_ids"][0] == tokenizer("this movie was great")["input_ids"]
    assert batch["attention_mask"][1] == [1, 0, 0, 0]


def test_char_vocabulary_is_the_sorted_characters():
    tokenizer = build_char_tokenizer(BOOK)
    chars = sorted(set(BOOK))
    assert [tokenizer.convert_tokens_to_ids(ch) for ch in chars] == list(range(len(chars)))
    assert tokenizer.convert_ids_to_tokens(len(chars)) == "[PAD]"


def test_unseen_character_becomes_unk():
    tokenizer = build_char_tokenizer(BOOK)
    ids = tokenizer("Té€", add_special_tokens=False)["input_ids"]
    assert ids == [tokenizer.convert_tokens_to_ids("T"), tokenizer.unk_token_id, tokenizer.unk_token_id]


CHAR_TOKENIZER = build_char_tokenizer(BOOK)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=sorted(set(BOOK)), max_size=200))
def test_char_round_trip_is_exact(text):
    ids = CHAR_TOKENIZER(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)
    assert CHAR_TOKENIZER.decode(ids) == text


def test_tokenizers_load_with_auto_tokenizer_without_seqhf(tmp_path):
    build_word_tokenizer(REVIEWS, vocab_size=100, min_frequency=1).save_pretrained(tmp_path / "word")
    build_char_tokenizer(BOOK).save_pretrained(tmp_path / "char")
    for name in ("word", "char"):
        assert {"tokenizer.json", "tokenizer_config.json"} <= {p.name for p in (tmp_path / name).iterdir()}
    assert AutoTokenizer.from_pretrained(tmp_path / "char").decode(
        AutoTokenizer.from_pretrained(tmp_path / "char")(BOOK)["input_ids"]
    ) == BOOK
    code = f"""
from transformers import AutoTokenizer
word = AutoTokenizer.from_pretrained("word")
char = AutoTokenizer.from_pretrained("char")
print(word.tokenize("GREAT movie!<br />"))
print(char.decode(char({BOOK!r})["input_ids"]) == {BOOK!r})
"""
    out = run_without_seqhf(code, cwd=tmp_path)
    assert "['great', 'movie', '!']" in out and "True" in out


def test_tokenizer_threads_are_lent_for_the_block_only(monkeypatch):
    """The command sets TOKENIZERS_PARALLELISM=false (forking after the tokenizer's threads ran deadlocks);
    a bulk encoding lends it every core and puts the setting back, also when the block fails."""
    tokenizer = build_word_tokenizer(["a good film", "a bad film"] * 10, vocab_size=20)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    with tokenizer_threads():
        assert os.environ["TOKENIZERS_PARALLELISM"] == "true"
        parallel = tokenizer(["a good film"] * 2000)["input_ids"]
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    assert parallel == tokenizer(["a good film"] * 2000)["input_ids"]
    monkeypatch.delenv("TOKENIZERS_PARALLELISM")
    with pytest.raises(RuntimeError), tokenizer_threads():
        raise RuntimeError("failed inside")
    assert "TOKENIZERS_PARALLELISM" not in os.environ
