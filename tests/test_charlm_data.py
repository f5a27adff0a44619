"""The char LM on the user's text (issue 11): files, folders, datasets, Gutenberg markers, bad input."""

import json
import logging

import numpy as np
import pytest
import torch

from seqhf.data.tokenization import build_char_tokenizer
from seqhf.evaluation.charlm import encode_counting_unknown, sample_prompt
from seqhf.training.charlm import train_charlm
from seqhf.training.common import SetupError
import seqhf.data.char_text as seqdata

TINY_CHARLM = dict(
    arch="lstm", model=dict(embedding_size=8, hidden_size=16), seq_len=16, tbptt="stateful",
    train=dict(learning_rate=1e-2, epochs=1, batch_size=4, weight_decay=0.0, warmup=0.0, scheduler="constant",
               patience=2),
)
FAST = dict(disable_tqdm=True, dynamic=True, ngram_order=3)


def _prose(n_sentences, seed=0):
    words = ["the", "island", "engineer", "sailor", "smoke", "cave", "rope", "sea", "fire", "boat"]
    out = []
    for i in range(n_sentences):
        k = (i * 7 + seed) % len(words)
        out.append(f"The {words[k]} saw the {words[(k + 3) % len(words)]} near the {words[(k + 5) % len(words)]}.")
    return " ".join(out) + "\n"


def _gutenberg(body, title="A SMALL BOOK"):
    return (f"The Project Gutenberg EBook of {title}\n\nTitle: {title}\n\n"
            f"*** START OF THIS PROJECT GUTENBERG EBOOK {title} ***\n\n{body}\n"
            f"*** END OF THIS PROJECT GUTENBERG EBOOK {title} ***\n\nSection 1. General Terms of Use ... licence\n")


@pytest.fixture
def two_files(tmp_path):
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "a.txt").write_text(_prose(120, 0))
    (folder / "b.txt").write_text(_prose(80, 3))
    (folder / "notes.md").write_text("not a .txt file")
    return folder


def test_two_file_corpus_holds_out_the_end_of_each_file(two_files):
    a, b = (two_files / "a.txt").read_text(), (two_files / "b.txt").read_text()
    corpus = seqdata.load_char_corpus([two_files / "a.txt", two_files / "b.txt"])
    assert corpus.train == a[: int(len(a) * 0.9)] + "\n\n" + b[: int(len(b) * 0.9)]
    assert corpus.heldout == a[int(len(a) * 0.9) :] + "\n\n" + b[int(len(b) * 0.9) :]
    assert [(s.name, s.chars, s.cut) for s in corpus.sources] == [("a.txt", len(a), "none"), ("b.txt", len(b), "none")]
    assert not corpus.is_island
    assert seqdata.load_char_corpus(two_files) == corpus  # the folder: its .txt files in name order


def test_heldout_file_replaces_the_split(two_files, tmp_path):
    (tmp_path / "held.txt").write_text("The sailor saw the cave.\n")
    corpus = seqdata.load_char_corpus(two_files / "a.txt", heldout=tmp_path / "held.txt")
    assert corpus.train == (two_files / "a.txt").read_text() and corpus.heldout == "The sailor saw the cave.\n"
    assert corpus.heldout_source == "held.txt"


def test_gutenberg_header_and_licence_are_stripped(tmp_path):
    body = "CHAPTER I\n\n" + _prose(30)
    (tmp_path / "pg999.txt").write_text(_gutenberg(body), encoding="utf-8")
    text, cut = seqdata.read_char_text(tmp_path / "pg999.txt")
    assert cut == "gutenberg" and text.strip() == body.strip()
    assert "Project Gutenberg" not in text and "licence" not in text


def test_island_keeps_the_chapters_cut(island_txt):
    corpus = seqdata.load_char_corpus(island_txt)
    book = seqdata.read_island_text(str(island_txt))
    assert (corpus.train, corpus.heldout) == seqdata.split_heldout(book, 0.1)
    assert corpus.is_island and corpus.sources[0].cut == "gutenberg-1268"


def test_dataset_text_column(tmp_path):
    (tmp_path / "reviews.csv").write_text('id,review\n1,"A fine film."\n2,"A dull plot."\n')
    assert seqdata.load_text_dataset(str(tmp_path / "reviews.csv"), "review") == "A fine film.\n\nA dull plot."
    with pytest.raises(ValueError, match=r"no column 'text'; its columns are \['id', 'review'\]"):
        seqdata.load_text_dataset(str(tmp_path / "reviews.csv"), "text")
    with pytest.raises(SetupError, match=r"no column 'body'; its columns are \['id', 'review'\]"):
        train_charlm(TINY_CHARLM, None, tmp_path / "out", dataset=str(tmp_path / "reviews.csv"), text_column="body")
    with pytest.raises(SetupError, match=r"no split 'validation'"):
        train_charlm(TINY_CHARLM, None, tmp_path / "out", dataset=str(tmp_path / "reviews.csv"),
                     text_column="review", dataset_split="validation")
    assert not (tmp_path / "out").exists()


def test_bad_text_inputs_are_named(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 au lait, na\xefve.\n".encode("latin-1"))
    (tmp_path / "nothing.txt").write_text(_gutenberg("\n\n"))
    (tmp_path / "no_txt").mkdir()
    cases = [
        (tmp_path / "empty.txt", "empty.txt' holds no text"),
        (tmp_path / "latin1.txt", "latin1.txt' is not UTF-8"),
        (tmp_path / "nothing.txt", "holds no text between its Gutenberg markers"),
        (tmp_path / "missing.txt", "Text file not found: .*missing.txt"),
        (tmp_path / "missing_folder", "Text file not found: .*missing_folder"),
        (tmp_path / "no_txt", "no_txt' holds no .txt files"),
    ]
    for i, (path, message) in enumerate(cases):
        with pytest.raises(SetupError, match=message):
            train_charlm(TINY_CHARLM, [str(path)], tmp_path / f"out{i}", **FAST)
        assert not (tmp_path / f"out{i}").exists()  # caught before training


@pytest.mark.parametrize("option, message", [
    (dict(epochs=0), r"^--epochs must be positive, got 0\."), (dict(epochs=-1), "--epochs must be positive, got -1"),
    (dict(seq_len=0), r"^--seq-len must be positive, got 0\."),
    (dict(max_steps=0), r"^--max-steps must be positive \(or -1, not set\), got 0\."),
    (dict(max_steps=-7), "--max-steps must be positive .*got -7"),
])
def test_run_lengths_that_cannot_train_are_refused_before_the_text_is_read(tmp_path, option, message):
    """`--epochs 0` saved an untrained model, `--seq-len 0` took the preset's and `--max-steps 0` ran every epoch."""
    with pytest.raises(SetupError, match=message):
        train_charlm(TINY_CHARLM, [str(tmp_path / "never-read.txt")], tmp_path / "out", **option, **FAST)
    assert not (tmp_path / "out").exists()


def test_utf16_text_is_named_with_its_conversion(tmp_path):
    """UTF-16 text was refused as "not UTF-8 ... e.g. `iconv -f latin1 -t utf-8`", the wrong conversion."""
    (tmp_path / "utf16.txt").write_text("The sea near the cave.\n", encoding="utf-16")
    for streaming in (False, True):
        with pytest.raises(SetupError, match=r"^'utf16.txt' is UTF-16 text, and seqhf reads UTF-8: convert it, e.g. "
                                             r"`iconv -f UTF-16 -t UTF-8 utf16.txt > utf8-utf16.txt`$"):
            train_charlm(TINY_CHARLM, [str(tmp_path / "utf16.txt")], tmp_path / "out", streaming=streaming, **FAST)
    assert not (tmp_path / "out").exists()


def test_sample_prompt_is_a_few_words_and_capped():
    assert sample_prompt("ing on. The sailor saw the cave near the sea.") == "The sailor saw"
    # A held-out text without whitespace (e.g. Chinese, or one long token) used to become the whole prompt.
    assert sample_prompt("x" * 500_000) == "x" * 40
    assert sample_prompt("Anfang" + "字" * 6_000) == ("Anfang" + "字" * 6_000)[:40]


def test_a_corpus_over_a_million_characters_reads_without_a_length_warning(caplog):
    text = _prose(26_000)  # 1.02 M characters: one stream, never one model input
    assert len(text) > 1_000_000
    tokenizer = build_char_tokenizer(text)
    with caplog.at_level(logging.WARNING):
        ids = seqdata.encode_text(tokenizer, text)
        counted, unknown = encode_counting_unknown(tokenizer, text)
    assert len(ids) == len(counted) == len(text) and unknown == 0
    assert "indexing errors" not in caplog.text and "longer than the specified maximum" not in caplog.text


def test_an_unreadable_dataset_file_names_the_line(tmp_path):
    (tmp_path / "broken.jsonl").write_text('{"text": "The sea."}\n{"text": "The cave."}\n{"text": "The\n')
    (tmp_path / "utf16.jsonl").write_text('{"text": "The sea."}\n', encoding="utf-16")
    with pytest.raises(SetupError, match=r"^Line 3 of 'broken.jsonl' is not valid JSON \(Unterminated string"):
        train_charlm(TINY_CHARLM, output_dir=tmp_path / "out", dataset=str(tmp_path / "broken.jsonl"), **FAST)
    with pytest.raises(SetupError, match=r"^'utf16.jsonl' is UTF-16 text, and seqhf reads UTF-8"):
        train_charlm(TINY_CHARLM, output_dir=tmp_path / "out", dataset=str(tmp_path / "utf16.jsonl"), **FAST)
    assert not (tmp_path / "out").exists()


def test_short_heldout_is_refused_before_training(two_files, tmp_path):
    (tmp_path / "short.txt").write_text("Too short.")
    with pytest.raises(SetupError, match=r"held-out text \(10 characters\) is shorter than one window"):
        train_charlm(TINY_CHARLM, [str(two_files)], tmp_path / "out", heldout=str(tmp_path / "short.txt"), **FAST)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_train_on_two_files_reports_baselines_unknowns_and_samples(two_files, tmp_path):
    (tmp_path / "held.txt").write_text("The sailor saw the cave near the sea; Zoë's boat broke.\n" * 3)
    (tmp_path / "other.txt").write_text("Quite another text, with other words and letters: xylophone.\n" * 10)
    out = tmp_path / "run"
    results = train_charlm(TINY_CHARLM, [str(two_files)], out, heldout=str(tmp_path / "held.txt"),
                           also_eval=str(tmp_path / "other.txt"), **FAST)
    assert results["heldout_unknown_chars"] == 3 * 4  # Z, ë, ; and ' are not in the training text
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["sources"][0]["name"] == "a.txt" and saved["heldout_source"] == "held.txt"
    assert saved["ngram"]["order"] == 3 and saved["ngram"]["heldout_nats_per_char"] > 0
    assert 0.0 <= saved["mixture"]["neural_weight"] <= 1.0
    assert saved["dynamic_eval"]["tuned_on"] == "validation" and saved["dynamic_eval"]["heldout_nats_per_char"] > 0
    assert saved["second_text"]["unknown_chars"] > 0
    assert {(s["temperature"], s["seed"]) for s in saved["samples"]} == {(0.5, 1), (0.5, 2), (1.0, 1), (1.0, 2)}
    card = (out / "README.md").read_text()
    assert "a.txt" in card and "b.txt" in card and "held.txt" in card
    assert "Verne" not in card and "gutenberg-1268" not in card
    assert "Kneser-Ney" in card and "Dynamic evaluation" in card and saved["samples"][0]["text"][:20] in card


# ------------------------------------------------------------------ memory at scale (issue 25)


def test_encode_text_is_compact_and_gives_the_tokenizers_ids():
    from seqhf.data.tokenization import build_char_tokenizer

    text = _prose(40) + "Zoë ☃ 𝄞\n"  # a two-byte, a BMP and an astral character
    tokenizer = build_char_tokenizer(text)
    probe = text + "Ω seen €"  # Ω and € are outside the vocabulary
    ids, unknown = seqdata.encode_text(tokenizer, probe, count_unknown=True)
    assert ids.dtype == np.uint8 and ids.tolist() == tokenizer(probe, add_special_tokens=False)["input_ids"]
    assert unknown == 2
    wide = build_char_tokenizer("".join(map(chr, range(0x4E00, 0x4E00 + 300))))  # 300 characters: past uint8
    wide_ids = seqdata.encode_text(wide, "一丁七")
    assert wide_ids.dtype == np.uint16 and wide_ids.tolist() == wide("一丁七", add_special_tokens=False)["input_ids"]


def test_encoding_holds_about_one_byte_a_character_beyond_the_text(monkeypatch):
    """The issue's 370 bytes a character at peak came from the tokenizer's Python lists; the lookup table
    encodes a chunk at a time into one uint8 array (the chunk's temporaries: about 10 bytes a character of it)."""
    import tracemalloc

    monkeypatch.setattr(seqdata, "ENCODE_CHUNK", 1 << 16)
    from seqhf.data.tokenization import build_char_tokenizer

    text = _prose(60_000)  # about 3.6 M characters
    tokenizer = build_char_tokenizer(text)
    tracemalloc.start()
    ids = seqdata.encode_text(tokenizer, text)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert ids.nbytes == len(text) and peak < 1.5 * len(text), peak / len(text)
    chunks = seqdata.CharChunks(ids, seq_len=16)
    item = chunks[3]
    assert item["input_ids"].dtype == torch.long and item["shift_labels"].tolist() == ids[49:65].tolist()


def test_eval_caps_bound_the_final_evaluations_and_the_card_states_them(two_files, tmp_path):
    (tmp_path / "held.txt").write_text(_prose(60, 5))  # about 2,300 characters
    out = tmp_path / "capped"
    results = train_charlm(TINY_CHARLM, [str(two_files)], out, heldout=str(tmp_path / "held.txt"),
                           eval_max_chars=1000, ngram_train_chars=500, dynamic_eval_chars=300, samples=False, **FAST)
    assert results["heldout_chars"] > 2000 and results["heldout_chars_scored"] == 1000
    assert results["validation_chars_scored"] <= 1000
    assert results["ngram"]["train_chars"] == 500 and results["dynamic_eval"]["heldout_chars"] == 301
    assert results["eval_caps"] == dict(heldout_chars=1000, ngram_train_chars=500, dynamic_chars=300)
    card = (out / "README.md").read_text()
    assert f"the first 1,000 of its {results['heldout_chars']:,} characters" in card and "--eval-max-chars 0" in card
    assert "the first 500 characters of the training text" in card and "--dynamic-eval-chars 0" in card
    lifted = train_charlm(TINY_CHARLM, [str(two_files)], tmp_path / "all", heldout=str(tmp_path / "held.txt"),
                          eval_max_chars=0, dynamic=False, samples=False, disable_tqdm=True, ngram_order=3)
    assert lifted["heldout_chars_scored"] == lifted["heldout_chars"] and lifted["eval_caps"]["heldout_chars"] is None
    with pytest.raises(SetupError, match="--eval-max-chars 5 is shorter than one window"):
        train_charlm(TINY_CHARLM, [str(two_files)], tmp_path / "bad", eval_max_chars=5, **FAST)


def test_streaming_plan_reads_the_files_as_the_corpus_does(two_files, tmp_path, monkeypatch):
    from seqhf.data import char_stream

    monkeypatch.setattr(char_stream, "STREAM_CHUNK", 50)  # markers and cuts across chunk boundaries
    (two_files / "c.txt").write_text(_gutenberg(_prose(30, 1)))
    corpus = seqdata.load_char_corpus([str(two_files)])
    plan = char_stream.plan_char_files([str(two_files)])
    assert "".join(char_stream.joined(plan.train)) == corpus.train
    assert "".join(char_stream.joined(plan.heldout)) == corpus.heldout
    assert plan.sources == corpus.sources and plan.sources[2].cut == "gutenberg"
    held = tmp_path / "held.txt"
    held.write_text(_prose(20, 2))
    corpus, plan = seqdata.load_char_corpus([str(two_files)], str(held)), char_stream.plan_char_files([str(two_files)], str(held))
    assert "".join(char_stream.joined(plan.heldout)) == corpus.heldout and plan.heldout_source == "held.txt"


STREAMING_UNDER_A_LIMIT = r"""
import json, resource, sys
from seqhf.training.charlm import train_charlm
import seqhf.training.charlm_inputs  # noqa: F401, everything imported before the limit is set

def data_kb():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmData")).split()[1])

limit = (data_kb() + 120 * 1024) * 1024  # 120 MB of heap beyond what the imports took
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
try:
    open(sys.argv[1]).read()  # the text alone does not fit
    print("READ WHOLE")
except MemoryError:
    pass
tiny = dict(arch="lstm", model=dict(embedding_size=8, hidden_size=16), seq_len=16, tbptt="stateful",
            train=dict(learning_rate=1e-2, epochs=1, batch_size=4, weight_decay=0.0, warmup=0.0,
                       scheduler="constant", patience=2))
r = train_charlm(tiny, [sys.argv[1]], sys.argv[2], streaming=True, max_steps=3, dynamic=False, samples=False,
                 ngram_order=3, eval_max_chars=2000, ngram_train_chars=5000, disable_tqdm=True,
                 validation_fraction=0.0001)  # 20,000 validation characters: the test is about memory
print(json.dumps({k: r[k] for k in ("train_chars", "heldout_chars", "heldout_chars_scored", "heldout_nats_per_char")}))
"""


@pytest.mark.slow
def test_streaming_trains_on_a_text_larger_than_the_memory_limit(tmp_path):
    """Issue #25: a 200 MB text under a 120 MB heap limit (RLIMIT_DATA counts the heap, not file-backed maps)."""
    import os
    import subprocess
    import sys

    big = tmp_path / "big.txt"
    block = _prose(2000)
    with open(big, "w") as f:
        for _ in range(200_000_000 // len(block) + 1):
            f.write(block)
    script = tmp_path / "run.py"
    script.write_text(STREAMING_UNDER_A_LIMIT)
    env = dict(os.environ, ARROW_DEFAULT_MEMORY_POOL="system", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, str(script), str(big), str(tmp_path / "out")], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "READ WHOLE" not in done.stdout
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["train_chars"] + results["heldout_chars"] > 190_000_000 and results["heldout_chars_scored"] == 2000
    assert results["heldout_nats_per_char"] > 0


def test_a_transformer_char_lms_tokenizer_truncates_at_its_positions(tmp_path):
    """The saved tokenizer declared a million tokens where the model reads 64: `truncation=True` let through text
    the model refuses. It now declares the model's positions, as GPT-2's folders do."""
    from transformers import AutoTokenizer

    tiny = dict(arch="transformer", seq_len=16, tbptt="windows",
                model=dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                           max_position_embeddings=64),
                train=dict(TINY_CHARLM["train"]))
    (tmp_path / "book.txt").write_text(_prose(200))
    train_charlm(tiny, [str(tmp_path / "book.txt")], tmp_path / "out", max_steps=1, **FAST)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert tokenizer.model_max_length == 64
    assert len(tokenizer(_prose(20), truncation=True)["input_ids"]) == 64


@pytest.mark.parametrize("option, message", [
    (dict(ngram_order=0), r"^--ngram-order must be at least 1, got 0\."),
    (dict(dataset="some/dataset"), "not both"),
    (dict(max_chars=1000), "--max-chars reads the first N characters of --dataset"),
    (dict(also_eval="other.txt", also_eval_chars=0), r"^--also-eval-chars must be at least 2, got 0\."),
    (dict(also_eval="other.txt", also_eval_chars=-1), "--also-eval-chars must be at least 2, got -1"),
    (dict(eval_max_chars=-1), r"^--eval-max-chars must be 0 \(no cap\) or positive, got -1\."),
    (dict(dynamic_eval_chars=-2), r"^--dynamic-eval-chars must be 0 \(no cap\) or positive"),
])
def test_text_options_that_cannot_work_are_refused_before_training(tmp_path, option, message):
    """--ngram-order 0 trained the whole model before the n-gram refused it; text with a dataset trained on the
    dataset alone; --max-chars with text files and --also-eval-chars 0 did nothing, -1 dropped a character; a
    negative cap named options that do not exist (--heldout-chars, --dynamic-chars)."""
    with pytest.raises(SetupError, match=message):
        train_charlm(TINY_CHARLM, [str(tmp_path / "never-read.txt")], tmp_path / "out", **{**FAST, **option})
    assert not (tmp_path / "out").exists()


def test_max_chars_of_a_dataset_must_be_positive(tmp_path):
    with pytest.raises(SetupError, match=r"^--max-chars must be positive, got -1\."):  # text[:-1] was read
        train_charlm(TINY_CHARLM, dataset=str(tmp_path / "never-read.csv"), output_dir=tmp_path / "out", max_chars=-1,
                     **FAST)
