"""Text for character LMs: book files (Gutenberg headers stripped), held-out tails, corpora of several sources, and the chunks a Trainer reads."""

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import load_dataset

from .file_checks import not_utf8, unreadable
from .sources import is_hub_id



ISLAND_URL = "https://www.gutenberg.org/files/1268/1268-0.txt"


ISLAND_START, ISLAND_END = "THE MYSTERIOUS ISLAND", "End of the Project Gutenberg"


def read_island_text(path: str) -> str:
    """The novel as the chapter cuts it: from `THE MYSTERIOUS ISLAND` up to `End of the Project Gutenberg`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Text file not found: {path!r}. The Mysterious Island is Project Gutenberg EBook #1268 ({ISLAND_URL})."
        )
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    start, end = text.find(ISLAND_START), text.find(ISLAND_END)
    if start < 0 or end < 0 or end <= start:
        raise ValueError(f"{path!r} lacks the markers {ISLAND_START!r} … {ISLAND_END!r}: is it Gutenberg #1268?")
    return text[start:end]


def split_heldout(text: str, heldout_fraction: float = 0.1) -> tuple[str, str]:
    """Train on the first part of the book, hold out the last `heldout_fraction` of it."""
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"`heldout_fraction` must be in (0, 1), got {heldout_fraction}.")
    cut = int(len(text) * (1.0 - heldout_fraction))
    return text[:cut], text[cut:]


def window(ids, start: int, stop: int) -> torch.Tensor:
    """ids[start:stop] as an int64 tensor, from a tensor or a compact (uint8/uint16, maybe memory-mapped) array."""
    piece = ids[start:stop]
    return piece.long() if isinstance(piece, torch.Tensor) else torch.from_numpy(np.asarray(piece, dtype=np.int64))


@dataclass
class CharChunks(torch.utils.data.Dataset):
    """Consecutive, non-overlapping chunks of `seq_len` ids with targets shifted by one (the book's cut).

    Item i holds ids[i*L : i*L + L] as `input_ids` and ids[i*L + 1 : i*L + L + 1] as `labels`
    already shifted, so the model is called with `shift_labels`. With `jitter`, item i starts at a random
    offset in [i*L, i*L + L) each time it is read, so epochs do not re-read the same windows (every
    character is seen with ever new contexts, which slows over-fitting). `ids` is a tensor or a compact
    array (`encode_text`'s uint8/uint16, or a memory-map): each item is read from it as int64 when asked for.
    """

    ids: object
    seq_len: int = 40
    jitter: bool = False

    def __post_init__(self):
        if self.seq_len <= 0:
            raise ValueError(f"`seq_len` must be positive, got {self.seq_len}.")
        if len(self.ids) < self.seq_len + 1:
            raise ValueError(f"The text has {len(self.ids)} ids, fewer than seq_len + 1 = {self.seq_len + 1}.")

    def __len__(self):
        return (len(self.ids) - 1) // self.seq_len

    def __getitem__(self, i):
        start = i * self.seq_len
        if self.jitter:  # the global RNG, which the Trainer seeds and checkpoints
            start = min(start + int(torch.randint(self.seq_len, ())), len(self.ids) - self.seq_len - 1)
        chunk = window(self.ids, start, start + self.seq_len + 1)
        return {"input_ids": chunk[:-1], "labels": chunk[:-1].clone(), "shift_labels": chunk[1:]}


def encode_stream(tokenizer, texts, backward: bool = False) -> torch.Tensor:
    """A word LM's texts as one id stream, `[EOS]` after each (how `seqhf train lm` reads them, and
    `evaluate_word_lm` after it). `backward`: each text's tokens from its last to its first (a backward LM's)."""
    eos = tokenizer.eos_token_id
    rows = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    return torch.tensor([i for row in rows for i in (row[::-1] if backward else row) + [eos]], dtype=torch.long)


ENCODE_CHUNK = 1 << 20  # characters encoded at a time: a few MB of temporary arrays, whatever the text's size


def ids_dtype(vocab_size: int):
    """The smallest unsigned type that holds every id: uint8 up to 256 ids, uint16 up to 65,536."""
    return np.uint8 if vocab_size <= 256 else np.uint16 if vocab_size <= 65536 else np.int32


def char_table(tokenizer) -> np.ndarray:
    """Code point -> id for a character tokenizer (`build_char_tokenizer`): one entry for every code point up
    to the largest in the vocabulary, `[UNK]` for those it lacks (at most 1.1 M entries, a few MB)."""
    chars = {token: i for token, i in tokenizer.get_vocab().items() if len(token) == 1}
    table = np.full(max(map(ord, chars), default=0) + 1, tokenizer.unk_token_id, dtype=ids_dtype(len(tokenizer)))
    for char, i in chars.items():
        table[ord(char)] = i
    return table


def encode_into(table: np.ndarray, text: str, out: np.ndarray, unk_id: int) -> int:
    """Write the ids of `text` (one a character) into `out[:len(text)]`, `ENCODE_CHUNK` characters at a time;
    returns how many characters were outside the vocabulary."""
    unknown = 0
    for start in range(0, len(text), ENCODE_CHUNK):
        points = np.frombuffer(text[start : start + ENCODE_CHUNK].encode("utf-32-le", "surrogatepass"), np.uint32)
        ids = table[np.minimum(points, len(table) - 1)]
        ids[points >= len(table)] = unk_id
        out[start : start + len(points)] = ids
        unknown += int((ids == unk_id).sum())
    return unknown


def encode_text(tokenizer, text: str, count_unknown: bool = False):
    """All ids of `text` (no special tokens), one a character, as a compact numpy array (uint8 for up to 256
    ids, else uint16: 1-2 bytes a character instead of the tokenizer's Python lists); with `count_unknown`,
    also how many characters became `[UNK]`. The ids are the tokenizer's: a character outside its vocabulary
    is `[UNK]` (a literal "[UNK]" in the text stays five characters)."""
    table = char_table(tokenizer)
    ids = np.empty(len(text), dtype=table.dtype)
    unknown = encode_into(table, text, ids, tokenizer.unk_token_id)
    return (ids, unknown) if count_unknown else ids


GUTENBERG_START = re.compile(r"^\*\*\* ?START OF[^\n]*\n", re.M)


GUTENBERG_END = re.compile(r"^\*\*\* ?END OF", re.M)


ISLAND_EBOOK = re.compile(r"E[Bb]ook #1268\b")


@dataclass
class CharSource:
    """One text the char LM read: where from, how it was cut, and how many characters went where."""

    name: str
    chars: int
    cut: str  # "gutenberg-1268" (the chapter's cut), "gutenberg" (header/licence stripped) or "none"
    train_chars: int = 0
    heldout_chars: int = 0


@dataclass
class CharCorpus:
    """Training and held-out text of a char LM, and the sources they came from."""

    train: str
    heldout: str
    sources: list
    heldout_source: str | None = None  # --heldout FILE; None when each source's last part is held out

    @property
    def is_island(self) -> bool:
        return [s.cut for s in self.sources] == ["gutenberg-1268"]


def strip_gutenberg(text: str) -> tuple[str, bool]:
    """`text` without a Project Gutenberg header (up to the `*** START OF` line) and licence footer (from the
    `*** END OF` line); whether any marker was found."""
    start, end = GUTENBERG_START.search(text), GUTENBERG_END.search(text)
    body = text[start.end() if start else 0 : end.start() if end else len(text)]
    return body, bool(start or end)


def read_char_text(path) -> tuple[str, str]:
    """The text of one file and how it was cut: Gutenberg #1268 as the chapter cuts it, any other Gutenberg
    text between its markers, anything else whole. Raises ValueError naming the file when it is not UTF-8
    or holds no text."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Text file not found: {path!r}.")
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise ValueError(not_utf8(path, f"{err.reason} at byte {err.start}")) from err
    if ISLAND_EBOOK.search(text[:5000]) and ISLAND_START in text and ISLAND_END in text:
        return read_island_text(path), "gutenberg-1268"
    body, stripped = strip_gutenberg(text)
    if not body.strip():
        raise ValueError(f"{path!r} holds no text{' between its Gutenberg markers' if stripped else ''}.")
    return body, ("gutenberg" if stripped else "none")


def text_files(paths) -> list:
    """The files named by `paths`: each a file, or a folder whose `*.txt` files are taken in name order."""
    files = []
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        path = os.path.expanduser(str(path))
        if os.path.isdir(path):
            found = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".txt"))
            if not found:
                raise FileNotFoundError(f"The folder {path!r} holds no .txt files.")
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"Text file not found: {path!r} (no such file or folder).")
    if not files:
        raise FileNotFoundError("No text given: pass --text FILE [FILE ...] or a folder of .txt files.")
    return files


def load_char_corpus(paths, heldout=None, heldout_fraction: float = 0.1) -> CharCorpus:
    """Training and held-out text from text files: the last `heldout_fraction` of each file is held out, or,
    with `heldout`, all of the files train and that file is the held-out text."""
    sources, train_parts, heldout_parts = [], [], []
    for path in text_files(paths):
        text, cut = read_char_text(path)
        train, held = (text, "") if heldout else split_heldout(text, heldout_fraction)
        sources.append(CharSource(os.path.basename(path), len(text), cut, len(train), len(held)))
        train_parts.append(train)
        heldout_parts.append(held)
    if heldout:
        text, _ = read_char_text(heldout)
        heldout_parts = [text]
    return CharCorpus("\n\n".join(train_parts), "\n\n".join(heldout_parts), sources,
                      os.path.basename(str(heldout)) if heldout else None)


def load_text_dataset(name_or_path: str, text_column: str = "text", split: str = "train", config=None) -> str:
    """The `text_column` of a dataset's `split` (a hub id or a local dataset folder or data file), one row a
    paragraph."""
    path = os.path.expanduser(name_or_path)
    if not os.path.exists(path) and not is_hub_id(name_or_path):
        raise FileNotFoundError(f"Dataset not found: no file or folder {name_or_path!r} (and it is not a Hub id).")
    try:
        if os.path.isfile(path):
            extension = {"jsonl": "json", "txt": "text", "tsv": "csv"}.get(path.rsplit(".", 1)[-1], path.rsplit(".", 1)[-1])
            raw = load_dataset(extension, data_files={"train": path}, **({"delimiter": "\t"} if path.endswith(".tsv") else {}))
        else:
            raw = load_dataset(os.path.abspath(path) if os.path.isdir(path) else path, config)  # "." names no dataset
    except Exception as err:  # datasets often says only "An error occurred while generating the dataset"
        files = [path] if os.path.isfile(path) else sorted(str(p) for p in Path(path).rglob("*") if p.is_file())
        raise ValueError(unreadable(files, f"the dataset {name_or_path!r}", err)) from err
    if split not in raw:
        raise ValueError(f"The dataset {name_or_path!r} has no split {split!r}; it has {sorted(raw)}.")
    columns = raw[split].column_names
    if text_column not in columns:
        raise ValueError(f"The dataset {name_or_path!r} has no column {text_column!r}; its columns are {columns}.")
    text = "\n\n".join(t for t in raw[split][text_column] if t)
    if not text.strip():
        raise ValueError(f"The column {text_column!r} of {name_or_path!r} ({split}) holds no text.")
    return text


def load_char_dataset(name_or_path: str, text_column: str = "text", heldout=None, heldout_fraction: float = 0.1,
                      split: str = "train", config=None, max_chars=None) -> CharCorpus:
    """A char corpus from a dataset's text column (its first `max_chars` characters when given): its last
    `heldout_fraction` held out, or the file `heldout`."""
    text = load_text_dataset(name_or_path, text_column, split, config)[:max_chars]
    train, held = (text, "") if heldout else split_heldout(text, heldout_fraction)
    source = CharSource(f"{name_or_path} ({split}, column {text_column!r})", len(text), "none", len(train), len(held))
    if heldout:
        held, _ = read_char_text(heldout)
    return CharCorpus(train, held, [source], os.path.basename(str(heldout)) if heldout else None)
