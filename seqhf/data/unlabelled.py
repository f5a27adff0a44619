"""Extra unlabelled text for the word vectors only (`--unlabelled-data`): the role pretrained vectors play when
the labelled set is small. Every source becomes a `datasets.Dataset` with one `text` column kept on disk
(memory-mapped Arrow), so word2vec reads it a batch at a time and no list of its texts is ever held
(issue #25)."""

import os
import re
from pathlib import Path

import pyarrow as pa
from datasets import Dataset
from datasets.exceptions import DatasetGenerationError

from .arrow_columns import missing_rows
from .char_text import strip_gutenberg
from .classification import FILE_BUILDERS, TEXT_LIST_SUFFIX, load_raw
from .errors import DataError


def load_unlabelled_texts(sources, text_column: str = "text", split: str | None = None) -> tuple[list, list]:
    """Texts without labels from other sources. Each source is anything `load_raw` reads (its `split`, else
    every split, read from `text_column`; empty and whitespace-only texts left out), or a `.txt` file or folder
    of them, read as paragraphs (blank-line separated, Project Gutenberg header and licence stripped) or as
    lines when a file has no blank line (one file in memory at a time, its paragraphs written to datasets'
    cache). Returns the texts as a list of datasets (`text` column, in reading order) and, for the card, one
    `{source, splits, text_column, texts}` per source."""
    parts, described = [], []
    for source in sources:
        path = Path(os.path.expanduser(str(source)))
        if path.suffix.lower() == TEXT_LIST_SUFFIX or (path.is_dir() and _plain_text_files(path)):
            if not path.exists():
                raise DataError(f"Unlabelled text not found: {str(source)!r} (--unlabelled-data).")
            found = [_paragraph_dataset(f) for f in ([path] if path.is_file() else _plain_text_files(path))]
            described.append(dict(source=str(source), splits=None, text_column=None, texts=sum(map(len, found))))
        else:
            found, splits = _dataset_texts(source, text_column, split)
            described.append(dict(source=str(source), splits=splits, text_column=text_column, texts=sum(map(len, found))))
        parts += found
    return parts, described


def _plain_text_files(folder: Path) -> list:
    """The `.txt` files of a folder that holds no other data files; [] otherwise."""
    if any(p.is_file() and p.suffix.lower() in FILE_BUILDERS for p in folder.rglob("*")):
        return []
    return sorted(folder.rglob("*.txt"))


def read_paragraphs(path: Path) -> list:
    """The paragraphs of a text file (see `load_unlabelled_texts`), each on one line."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start}).") from err
    text = strip_gutenberg(text.replace("\r\n", "\n"))[0]
    blocks = re.split(r"\n\s*\n", text) if re.search(r"\n\s*\n", text) else text.splitlines()
    paragraphs = [" ".join(block.split()) for block in blocks if block.strip()]
    if not paragraphs:
        raise DataError(f"{str(path)!r} holds no text (--unlabelled-data).")
    return paragraphs


def _paragraph_rows(path: str, stamp: tuple):
    """`Dataset.from_generator`'s rows: the file's paragraphs (`stamp`, its size and time, keys datasets' cache)."""
    for paragraph in read_paragraphs(Path(path)):
        yield {"text": paragraph}


def _paragraph_dataset(path: Path) -> Dataset:
    stat = path.stat()
    try:
        return Dataset.from_generator(_paragraph_rows, gen_kwargs=dict(path=str(path.resolve()),
                                                                      stamp=(stat.st_size, stat.st_mtime_ns)))
    except DatasetGenerationError as err:  # datasets wraps the cause; a DataError names the file and the problem
        cause = err.__cause__ or err.__context__
        raise (cause if isinstance(cause, DataError) else DataError(f"Cannot read {str(path)!r}: {cause or err}")) from err


def _dataset_texts(source, text_column: str, split: str | None) -> tuple[list, list]:
    raw = load_raw(source)
    if split is not None and split not in raw:
        raise DataError(f"No split {split!r} (--unlabelled-data-split) in {str(source)!r}; its splits are {sorted(raw)}.")
    splits = [split] if split is not None else list(raw)
    parts = []
    for name in splits:
        if text_column not in raw[name].column_names:
            raise DataError(f"The {name!r} split of {str(source)!r} has no column {text_column!r}; its columns are "
                            f"{raw[name].column_names} (choose with --unlabelled-text-column).")
        texts = raw[name].select_columns([text_column])
        if not (pa.types.is_string(texts.data.schema.field(text_column).type)
                or pa.types.is_large_string(texts.data.schema.field(text_column).type)):
            continue  # no text in a column of numbers
        if missing_rows(texts, text_column, shown=0)[0]:  # empty, whitespace-only or missing texts are left out
            texts = texts.filter(lambda batch: [isinstance(t, str) and bool(t.strip()) for t in batch[text_column]],
                                 batched=True, desc="Leaving out empty texts")
        texts = texts.rename_column(text_column, "text") if text_column != "text" else texts
        if len(texts):
            parts.append(texts)
    if not parts:
        raise DataError(f"{str(source)!r} holds no text in its {text_column!r} column (--unlabelled-data).")
    return parts, splits
