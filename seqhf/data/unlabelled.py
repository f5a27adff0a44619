"""Extra unlabelled text for the word vectors, or for `ulmfit-small`'s own word LMs (`--unlabelled-data`): the role
pretrained vectors or LMs play when the labelled set is small. Every source becomes a `datasets.Dataset` with one `text` column kept on disk
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
from .file_checks import not_utf8

# The options that name a source, its text column and its split, as errors cite them: the classifier's extra
# text for the word vectors by default; `seqhf train lm` reads its own training text with the same function.
UNLABELLED_OPTIONS = dict(source="--unlabelled-data", text_column="--unlabelled-text-column",
                          split="--unlabelled-data-split")


def load_unlabelled_texts(sources, text_column: str = "text", split: str | None = None, *, config: str | None = None,
                          options: dict = UNLABELLED_OPTIONS) -> tuple[list, list]:
    """Texts without labels from other sources. Each source is anything `load_raw` reads (with `config`; its
    `split` (a name, or a list of names), else every split, read from `text_column`; empty and whitespace-only texts left out), or a `.txt`
    file or folder of them, read as paragraphs (blank-line separated, Project Gutenberg header and licence
    stripped) or as lines when a file has no blank line (one file in memory at a time, its paragraphs written to
    datasets' cache). Returns the texts as a list of datasets (`text` column, in reading order) and, for the
    card, one `{source, splits, text_column, texts}` per source. `options` names the command-line options in
    errors (`UNLABELLED_OPTIONS`' keys)."""
    parts, described = [], []
    for source in sources:
        path = Path(os.path.expanduser(str(source)))
        if is_plain_text(source):
            if not path.exists():
                raise DataError(f"Text not found: {str(source)!r} ({options['source']}).")
            found = [_paragraph_dataset(f) for f in ([path] if path.is_file() else _plain_text_files(path))]
            described.append(dict(source=str(source), splits=None, text_column=None, texts=sum(map(len, found))))
        else:
            found, splits = _dataset_texts(source, text_column, split, config, options)
            described.append(dict(source=str(source), splits=splits, text_column=text_column, texts=sum(map(len, found))))
        parts += found
    return parts, described


def is_plain_text(source) -> bool:
    """Whether `load_unlabelled_texts` reads `source` as paragraphs: a `.txt` file (or a missing path so named),
    or a folder that holds `.txt` files and no other data files."""
    path = Path(os.path.expanduser(str(source)))
    return path.suffix.lower() == TEXT_LIST_SUFFIX or (path.is_dir() and bool(_plain_text_files(path)))


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
        raise DataError(not_utf8(path, f"{err.reason} at byte {err.start}")) from err
    paragraphs = paragraphs_of(strip_gutenberg(text.replace("\r\n", "\n"))[0])
    if not paragraphs:
        raise DataError(f"{str(path)!r} holds no text.")
    return paragraphs


def paragraphs_of(text: str) -> list:
    """The paragraphs of a text (blank-line separated; its lines when it has no blank line), each on one line."""
    text = text.replace("\r\n", "\n")
    blocks = re.split(r"\n\s*\n", text) if re.search(r"\n\s*\n", text) else text.splitlines()
    return [" ".join(block.split()) for block in blocks if block.strip()]


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


def _dataset_texts(source, text_column: str, split: str | None, config: str | None, options: dict) -> tuple[list, list]:
    raw = load_raw(source, config)
    splits = list(raw) if split is None else [split] if isinstance(split, str) else list(split)
    for name in splits:
        if name not in raw:
            raise DataError(f"No split {name!r} ({options['split']}) in {str(source)!r}; its splits are {sorted(raw)}.")
    parts = []
    for name in splits:
        if text_column not in raw[name].column_names:
            raise DataError(f"The {name!r} split of {str(source)!r} has no column {text_column!r}; its columns are "
                            f"{raw[name].column_names} (choose with {options['text_column']}).")
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
        raise DataError(f"{str(source)!r} holds no text in its {text_column!r} column ({options['source']}).")
    return parts, splits
