"""Char-LM text larger than memory: text files read a chunk at a time, their ids written to files on disk that
training reads through `numpy.memmap` (`--streaming`). No whole text is ever a Python string.

Each file is read as `read_char_text` reads it (UTF-8, universal newlines, the Project Gutenberg header and
licence cut off at their markers), except that The Mysterious Island's chapter cut is not applied: its
markers are the general Gutenberg ones here. The last `heldout_fraction` of each file is held out, or the
`heldout` file is, as in `load_char_corpus`.
"""

import os
from dataclasses import dataclass

import numpy as np

from .char_text import GUTENBERG_END, GUTENBERG_START, CharSource, encode_into, text_files
from .file_checks import not_utf8

STREAM_CHUNK = 1 << 22  # characters read at a time (a few tens of MB of temporaries)
SEPARATOR = "\n\n"  # between files, as load_char_corpus joins them


def _chunks(path):
    with open(path, encoding="utf-8-sig") as f:
        while chunk := f.read(STREAM_CHUNK):
            yield chunk


def body_span(path) -> tuple[int, int, str]:
    """Character offsets [start, stop) of the file's text between its Gutenberg markers (the whole file when
    it has none), and the cut's name ("gutenberg" or "none"), in one pass over its chunks."""
    pos, start, stop, tail = 0, None, None, ""
    try:
        for chunk in _chunks(path):
            if start is None:
                found = GUTENBERG_START.search(tail + chunk)
                if found:
                    start = pos - len(tail) + found.end()
            if stop is None:
                found = GUTENBERG_END.search(tail + chunk)
                if found:
                    stop = pos - len(tail) + found.start()
            tail, pos = chunk[-64:], pos + len(chunk)
    except UnicodeDecodeError as err:
        raise ValueError(not_utf8(path, err.reason)) from err  # (its position would be the chunk's)
    start, stop = start or 0, pos if stop is None else stop
    if stop <= start:
        raise ValueError(f"{str(path)!r} holds no text.")
    return start, stop, "gutenberg" if (start or stop < pos) else "none"


def segment(path, start: int, stop: int):
    """The file's characters [start, stop), a chunk at a time."""
    pos = 0
    for chunk in _chunks(path):
        lo, hi = max(start - pos, 0), min(stop - pos, len(chunk))
        if lo < hi:
            yield chunk[lo:hi]
        pos += len(chunk)
        if pos >= stop:
            return


def joined(segments):
    """The pieces of several segments (each a callable giving its pieces), SEPARATOR between segments."""
    for i, pieces in enumerate(segments):
        if i:
            yield SEPARATOR
        yield from pieces()


@dataclass
class StreamPlan:
    """Which characters of which files train and which are held out."""

    train: list  # callables giving pieces
    heldout: list
    sources: list
    heldout_source: str | None


def plan_char_files(paths, heldout=None, heldout_fraction: float = 0.1) -> StreamPlan:
    """`load_char_corpus`'s cut, planned from one pass over each file's chunks instead of its whole text."""
    train, held, sources = [], [], []
    for path in text_files(paths):
        start, stop, cut = body_span(path)
        split = stop if heldout else start + int((stop - start) * (1.0 - heldout_fraction))
        train.append(lambda p=path, a=start, b=split: segment(p, a, b))
        if not heldout:
            held.append(lambda p=path, a=split, b=stop: segment(p, a, b))
        sources.append(CharSource(os.path.basename(path), stop - start, cut, split - start, stop - split))
    if heldout:
        if not os.path.isfile(str(heldout)):
            raise FileNotFoundError(f"Text file not found: {str(heldout)!r}.")
        start, stop, _ = body_span(heldout)
        held = [lambda p=str(heldout), a=start, b=stop: segment(p, a, b)]
    return StreamPlan(train, held, sources, os.path.basename(str(heldout)) if heldout else None)


def characters(segments) -> str:
    """The sorted distinct characters of the segments' text, as one string (for `build_char_tokenizer`)."""
    seen = set()
    for piece in joined(segments):
        seen.update(set(piece))
    return "".join(sorted(seen))


def encode_to_file(table: np.ndarray, unk_id: int, segments, path, keep_chars: int = 0) -> tuple[int, int, str]:
    """Write the ids of the segments' text to `path` (raw `table.dtype` values, a chunk at a time); returns
    (characters, of them unknown, the text's first `keep_chars` characters)."""
    count = unknown = 0
    kept = []
    with open(path, "wb") as f:
        for piece in joined(segments):
            ids = np.empty(len(piece), dtype=table.dtype)
            unknown += encode_into(table, piece, ids, unk_id)
            f.write(ids.tobytes())
            if count < keep_chars:
                kept.append(piece[: keep_chars - count])
            count += len(piece)
    return count, unknown, "".join(kept)


def open_ids(path, dtype) -> np.ndarray:
    """The ids written by `encode_to_file`, memory-mapped read-only: pages come from the file as read."""
    if os.path.getsize(path) == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def decode_ids(tokenizer, ids) -> str:
    """The text of in-vocabulary ids (one character each)."""
    chars = {i: token for token, i in tokenizer.get_vocab().items() if len(token) == 1}
    return "".join(chars.get(int(i), tokenizer.unk_token) for i in np.asarray(ids))


def count_ids(ids, size: int, chunk: int = STREAM_CHUNK) -> np.ndarray:
    """How often each id occurs, a chunk at a time (np.bincount alone would copy the ids as int64)."""
    counts = np.zeros(size, dtype=np.int64)
    for start in range(0, len(ids), chunk):
        counts += np.bincount(np.asarray(ids[start : start + chunk]), minlength=size)[:size]
    return counts
