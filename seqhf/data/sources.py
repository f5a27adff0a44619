"""Where data comes from: Hub ids or local paths, and IMDb (the chapter's sentiment project) as train / validation / test."""

import os
import re

from datasets import DatasetDict, load_dataset

IMDB_HUB_ID = "stanfordnlp/imdb"




def text_batches(texts, column: str = "text", batch_size: int = 1000):
    """The texts of `texts` (a `datasets.Dataset`'s `column`, read from its memory-mapped Arrow table, or any
    iterable of strings) as lists of at most `batch_size`: never more than one batch of Python strings."""
    if hasattr(texts, "iter") and hasattr(texts, "column_names"):
        for batch in texts.select_columns([column]).iter(batch_size=batch_size):
            yield batch[column]
        return
    batch = []
    for text in texts:
        batch.append(text)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


# A name that ends like a data file is a path (mistyped, if it does not exist), not a Hub repository.
DATA_FILE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".arrow", ".txt")


def is_hub_id(name_or_path: str) -> bool:
    """`name` or `owner/name`, and not a relative or absolute path or a data file's name."""
    if name_or_path.lower().endswith(DATA_FILE_SUFFIXES):
        return False
    return re.fullmatch(r"[\w-][\w.-]*(/[\w-][\w.-]*)?", name_or_path) is not None


def load_imdb(name_or_path: str = IMDB_HUB_ID, validation_size: int | float = 0.2, seed: int = 42) -> DatasetDict:
    """IMDb as train / validation / test, plus `unsupervised` (unlabelled reviews) when the source has it.
    Validation is carved from train with a fixed seed; test is kept for final figures. `name_or_path` is a
    hub id or a local folder in the `stanfordnlp/imdb` layout (for offline use)."""
    if not os.path.exists(os.path.expanduser(name_or_path)) and not is_hub_id(name_or_path):
        raise FileNotFoundError(
            f"IMDb folder not found: {name_or_path!r}. Pass the hub id {IMDB_HUB_ID!r} (needs network) "
            f"or a local copy in that repository's layout."
        )
    try:
        local = os.path.expanduser(name_or_path)
        raw = load_dataset(os.path.abspath(local) if os.path.isdir(local) else name_or_path)  # "." names no dataset
    except (ConnectionError, FileNotFoundError) as err:
        raise FileNotFoundError(
            f"Could not load IMDb from {name_or_path!r} ({err}). Offline, pass a local copy in the stanfordnlp/imdb layout."
        ) from err
    return imdb_splits(raw, name_or_path, validation_size, seed)


def in_imdb_layout(raw: DatasetDict) -> bool:
    """Whether loaded data is in the stanfordnlp/imdb layout: train and test splits, a `text` column and a
    ClassLabel `label` (what `imdb_splits` checks)."""
    train = raw.get("train")
    return (train is not None and "test" in raw and "text" in train.column_names
            and type(train.features.get("label")).__name__ == "ClassLabel")


def imdb_splits(raw: DatasetDict, name_or_path: str, validation_size: int | float = 0.2, seed: int = 42) -> DatasetDict:
    """`load_imdb`'s splits from data already loaded (`name_or_path` names it in errors)."""
    for split in ("train", "test"):
        if split not in raw or len(raw[split]) == 0:
            raise ValueError(f"The IMDb data at {name_or_path!r} has no (or an empty) {split!r} split.")
    columns = raw["train"].features
    if "text" not in columns or type(columns.get("label")).__name__ != "ClassLabel":
        raise ValueError(f"The data at {name_or_path!r} is not in the stanfordnlp/imdb layout (a `text` column and a "
                         f"ClassLabel `label`; its train split has {dict(columns)}).")
    carved = raw["train"].train_test_split(test_size=validation_size, seed=seed, stratify_by_column="label")
    splits = dict(train=carved["train"], validation=carved["test"], test=raw["test"])
    if "unsupervised" in raw:
        splits["unsupervised"] = raw["unsupervised"]
    return DatasetDict(splits)
