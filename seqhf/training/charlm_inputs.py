"""What a char-LM run reads: its text (files, a folder or a dataset column), cut into training, validation and
held-out parts, encoded compactly, and the capped pieces of text its evaluation reads.

Memory: the text is held as Python strings only while it is cut and encoded; the run then keeps its ids as
a uint8 array (uint16 past 256 characters), one or two bytes a character, and the strings are dropped
except for the capped parts the n-gram and the evaluations read (`EvalCaps`). A 200 MB corpus trains in
about 1 GB.
"""

import os
from dataclasses import dataclass

import numpy as np

from ..data import char_text as seqdata
from ..data.char_stream import count_ids
from ..data.tokenization import build_char_tokenizer
from ..evaluation.charlm import sample_prompt
from .common import SetupError


@dataclass
class EvalCaps:
    """How much text the final evaluations read; None reads all of it (the command's `0`).

    `heldout_chars`: the held-out characters scored (windows, stream, n-gram, mixture) and the validation
    characters the mixture weight is tuned on; `ngram_train_chars`: the first characters of the training text
    the n-gram counts (its tables grow with the text: about 1 GB for 5 M characters); `dynamic_chars`: the
    held-out characters dynamic evaluation reads (about 25 s per 10,000 on 2 CPU cores for the LSTM preset).
    The defaults leave The Mysterious Island (1.1 M characters) whole."""

    heldout_chars: int | None = 1_000_000
    ngram_train_chars: int | None = 2_000_000
    dynamic_chars: int | None = 200_000

    OPTIONS = {"heldout_chars": "--eval-max-chars", "ngram_train_chars": "--ngram-train-chars",
               "dynamic_chars": "--dynamic-eval-chars"}  # the command's name of each cap

    @classmethod
    def of(cls, quick: bool = False, **given) -> "EvalCaps":
        """The caps, `given` ones (None: the default; 0: none) over the defaults; --quick reads 20,000
        held-out characters dynamically."""
        caps = cls(dynamic_chars=20_000) if quick else cls()
        for name, value in given.items():
            if value is not None:
                if value < 0:
                    raise SetupError(f"{cls.OPTIONS[name]} must be 0 (no cap) or positive, got {value}.")
                setattr(caps, name, value or None)
        return caps


@dataclass
class CharLMInputs:
    """The encoded parts (compact numpy arrays), the tokenizer, and what evaluation and the record need."""

    tokenizer: object
    train_ids: np.ndarray
    valid_ids: np.ndarray
    heldout_ids: np.ndarray
    heldout_unknown: int
    train_chars: int
    validation_chars: int
    heldout_chars: int
    unigram_entropy_nats: float
    ngram_train_text: str  # the first `caps.ngram_train_chars` training characters
    valid_text: str  # the first `caps.heldout_chars` validation characters
    heldout_text: str  # the first `caps.heldout_chars` held-out characters
    prompt: str
    caps: EvalCaps

    @property
    def scored_heldout_ids(self) -> np.ndarray:
        return self.heldout_ids[: len(self.heldout_text)]

    @property
    def scored_valid_ids(self) -> np.ndarray:
        return self.valid_ids[: len(self.valid_text)]

    def caps_record(self) -> dict:
        """For eval_results.json and the card: the caps and what each read."""
        return dict(heldout_chars_scored=len(self.heldout_text), validation_chars_scored=len(self.valid_text),
                    eval_caps=dict(heldout_chars=self.caps.heldout_chars,
                                   ngram_train_chars=self.caps.ngram_train_chars,
                                   dynamic_chars=self.caps.dynamic_chars))


def load_corpus(text=None, heldout=None, dataset=None, text_column="text", dataset_split="train",
                max_chars=None):
    """The training and held-out text from files (or a folder) or from a dataset's text column (its first
    `max_chars` characters)."""
    try:
        if dataset is not None:
            return seqdata.load_char_dataset(dataset, text_column, heldout, split=dataset_split, max_chars=max_chars)
        if not text:
            raise SetupError("Give the text to learn from: text files or folders of .txt files, or a dataset.")
        return seqdata.load_char_corpus(text, heldout)
    except (FileNotFoundError, ValueError) as err:
        raise SetupError(str(err)) from err


def load_second_text(spec, max_chars=100_000, text_column="text") -> tuple[str, str]:
    """A text the model never saw, for its generalisation figure: a .txt file, or `DATASET[:SPLIT]` (a local
    dataset folder or hub id, the `text_column` of SPLIT, default train), cut to its first `max_chars`."""
    try:
        if os.path.isfile(spec):
            text, _ = seqdata.read_char_text(spec)
            name = os.path.basename(spec)
        else:
            dataset, _, split = spec.partition(":")
            text = seqdata.load_text_dataset(dataset, text_column, split or "train")
            name = f"{os.path.basename(dataset.rstrip('/'))} ({split or 'train'})"
    except (FileNotFoundError, ValueError) as err:
        raise SetupError(f"--also-eval: {err}") from err
    return text[:max_chars], f"{name}, first {min(len(text), max_chars):,} characters"


def check_text_options(text, dataset, max_chars, ngram_order: int, also_eval, also_eval_chars: int) -> None:
    """Options about the text that cannot work, as SetupError before anything is read or trained."""
    if text and dataset is not None:
        raise SetupError("Give the text to learn as text files (--text) or a dataset (--dataset), not both.")
    if max_chars is not None and dataset is None:
        raise SetupError("--max-chars reads the first N characters of --dataset; --text files are read whole (cut "
                         "the file, or pass --dataset).")
    if max_chars is not None and max_chars < 1:
        raise SetupError(f"--max-chars must be positive, got {max_chars}.")
    if ngram_order < 1:
        raise SetupError(f"--ngram-order must be at least 1, got {ngram_order}.")
    if also_eval and also_eval_chars < 2:  # each character is scored on the ones before it
        raise SetupError(f"--also-eval-chars must be at least 2, got {also_eval_chars}.")


def check_eval_cap(caps, seq_len: int) -> None:
    """A held-out cap shorter than one window would score nothing."""
    if caps.heldout_chars is not None and caps.heldout_chars < seq_len + 1:
        raise SetupError(f"--eval-max-chars {caps.heldout_chars} is shorter than one window (--seq-len + 1 = "
                         f"{seq_len + 1} characters).")


def check_windows(seq_len: int, **parts) -> None:
    """Each part (text or ids) holds at least one window of `seq_len + 1` characters."""
    for name, part in parts.items():
        if len(part) < seq_len + 1:
            raise SetupError(f"The {name.replace('_', '-')} text ({len(part)} characters) is shorter than one window "
                             f"(--seq-len + 1 = {seq_len + 1} characters).")


def prepare_inputs(corpus, *, seq_len: int, validation_fraction: float, quick_train_chars=None,
                   caps: EvalCaps) -> CharLMInputs:
    """Cut `corpus` (a `CharCorpus`) into training, validation and held-out text, build the tokenizer on the
    training text and encode each part compactly. With `quick_train_chars`, the first that many training and
    20,000 validation characters (--quick). The caller drops `corpus` afterwards: nothing here keeps it."""
    check_eval_cap(caps, seq_len)
    cut = int(len(corpus.train) * (1 - validation_fraction))
    train_text, valid_text, heldout_text = corpus.train[:cut], corpus.train[cut:], corpus.heldout
    if quick_train_chars:
        train_text, valid_text = train_text[:quick_train_chars], valid_text[:20_000]
    check_windows(seq_len, training=train_text, validation=valid_text, held_out=heldout_text)
    tokenizer = build_char_tokenizer(corpus.train)
    train_ids, valid_ids = seqdata.encode_text(tokenizer, train_text), seqdata.encode_text(tokenizer, valid_text)
    heldout_ids, heldout_unknown = seqdata.encode_text(tokenizer, heldout_text, count_unknown=True)
    return CharLMInputs(
        tokenizer=tokenizer, train_ids=train_ids, valid_ids=valid_ids, heldout_ids=heldout_ids,
        heldout_unknown=heldout_unknown, train_chars=len(train_text), validation_chars=len(valid_text),
        heldout_chars=len(heldout_text), unigram_entropy_nats=_entropy(count_ids(train_ids, len(tokenizer))),
        ngram_train_text=train_text[: caps.ngram_train_chars], valid_text=valid_text[: caps.heldout_chars],
        heldout_text=heldout_text[: caps.heldout_chars], prompt=sample_prompt(heldout_text[:100_000]), caps=caps,
    )


def stream_inputs(text, heldout, folder, *, seq_len: int, validation_fraction: float, quick_train_chars=None,
                  caps: EvalCaps, heldout_fraction: float = 0.1) -> tuple[CharLMInputs, object]:
    """`prepare_inputs` for text larger than memory (`--streaming`): the files are read a chunk at a time,
    their ids written under `folder` and memory-mapped, so memory does not grow with the text. Returns the
    inputs and the plan (its sources)."""
    from ..data import char_stream

    check_eval_cap(caps, seq_len)
    try:
        plan = char_stream.plan_char_files(text, heldout, heldout_fraction)
        tokenizer = build_char_tokenizer(char_stream.characters(plan.train))
    except (FileNotFoundError, ValueError) as err:
        raise SetupError(str(err)) from err
    table = seqdata.char_table(tokenizer)
    os.makedirs(folder, exist_ok=True)
    train_path, heldout_path = os.path.join(folder, "train.ids"), os.path.join(folder, "heldout.ids")
    _, _, train_kept = char_stream.encode_to_file(table, tokenizer.unk_token_id, plan.train, train_path,
                                                  keep_chars=caps.ngram_train_chars or 2**62)
    _, unknown, heldout_kept = char_stream.encode_to_file(
        table, tokenizer.unk_token_id, plan.heldout, heldout_path, keep_chars=max(caps.heldout_chars or 2**62, 100_000))
    all_ids = char_stream.open_ids(train_path, table.dtype)
    heldout_ids = char_stream.open_ids(heldout_path, table.dtype)
    cut = int(len(all_ids) * (1 - validation_fraction))
    train_ids, valid_ids = all_ids[:cut], all_ids[cut:]
    if quick_train_chars:
        train_ids, valid_ids = train_ids[:quick_train_chars], valid_ids[:20_000]
    check_windows(seq_len, training=train_ids, validation=valid_ids, held_out=heldout_ids)
    counts = count_ids(train_ids, len(tokenizer))
    inputs = CharLMInputs(
        tokenizer=tokenizer, train_ids=train_ids, valid_ids=valid_ids, heldout_ids=heldout_ids,
        heldout_unknown=unknown, train_chars=len(train_ids), validation_chars=len(valid_ids),
        heldout_chars=len(heldout_ids), unigram_entropy_nats=_entropy(counts),
        ngram_train_text=train_kept[: len(train_ids)],
        valid_text=char_stream.decode_ids(tokenizer, valid_ids[: caps.heldout_chars]),
        heldout_text=heldout_kept[: caps.heldout_chars], prompt=sample_prompt(heldout_kept[:100_000]), caps=caps,
    )
    return inputs, plan


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
