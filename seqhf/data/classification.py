"""A user's text-classification data, loaded through `datasets`: any source, any labels, checked splits.

`load_classification_data` takes a Hub id, a folder saved with `save_to_disk`, a folder of data files
(datasets infers the splits from the file names: `train.csv`, `test.csv`, ...), or one data file
(`.csv`, `.tsv`, `.json`, `.jsonl`, `.parquet`; `.txt`: one text a line, the file name is the label).
It returns the splits with two columns, `text` and `labels` (class ids, or multi-hot floats for a column
of label lists), the label names, and a description of where everything came from for the card.
Every problem with the data is raised as a `DataError` that names it, before any training starts.
"""

import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from datasets import (
    ClassLabel,
    Dataset,
    DatasetDict,
    concatenate_datasets,
    load_dataset,
    load_from_disk,
)
from datasets.exceptions import DatasetGenerationError

from .arrow_columns import all_equal, column_max, first_non_string_row, missing_rows, unique_values
from .errors import DataError
from .file_checks import not_utf8, unreadable
from .label_values import (
    check_classes_in_train,
    checked_spellings,
    inner_feature,
    is_list_feature,
)
from .sources import is_hub_id

VALIDATION_NAMES = ("validation", "valid", "dev")
UNLABELLED_NAMES = ("unsupervised", "unlabelled", "unlabeled")
FILE_BUILDERS = {  # suffix -> datasets' builder and its options
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
TEXT_LIST_SUFFIX = ".txt"


@dataclass
class ClassificationData:
    splits: DatasetDict  # train, validation, and test when the source has one; columns text, labels
    label_names: list[str]
    multi_label: bool
    unlabelled: Dataset | None = None  # texts without labels (word vectors learn from them)
    description: dict = field(default_factory=dict)  # source, split names and sizes, for the card

    @property
    def final_split(self) -> str:
        """Where the final figures come from: the test split, else validation."""
        return "test" if "test" in self.splits else "validation"


# ---------------------------------------------------------------- raw loading


def load_raw(source: str, config: str | None = None) -> DatasetDict:
    """The dataset at `source` as datasets loads it."""
    path = Path(os.path.expanduser(str(source)))
    if path.is_file():
        return _load_files({"train": [path]})
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            saved = load_from_disk(str(path))
            return saved if isinstance(saved, DatasetDict) else DatasetDict(train=saved)
        if _text_lists(path):
            return _load_text_lists(path)
        return _load_folder(path, config)
    if not is_hub_id(str(source)):
        raise DataError(f"Dataset not found: no file or folder {str(source)!r} (and it is not a Hub id).")
    try:
        return load_dataset(str(source), config)
    except (ConnectionError, FileNotFoundError, OSError) as err:
        raise DataError(f"Could not load the Hub dataset {source!r} ({err}). Offline, pass a local copy.") from err
    except ValueError as err:  # e.g. a missing or unknown config name
        raise DataError(f"Could not load the Hub dataset {source!r}: {err}") from err


def _builder(path: Path):
    suffix = path.suffix.lower()
    if suffix not in FILE_BUILDERS:
        readable = ", ".join([*FILE_BUILDERS, TEXT_LIST_SUFFIX])
        raise DataError(f"Cannot read {path.name!r}: seqhf reads {readable} files (or a dataset folder or Hub id).")
    return FILE_BUILDERS[suffix]


def _load_files(files: dict) -> DatasetDict:
    paths = [p for group in files.values() for p in group]
    if all(p.suffix.lower() == TEXT_LIST_SUFFIX for p in paths):
        return DatasetDict({split: _text_list(group) for split, group in files.items()})
    suffixes = {p.suffix.lower() for p in paths}
    if len(suffixes) > 1:
        raise DataError(f"Mixed file formats ({sorted(suffixes)}): use one format for all splits.")
    name, options = _builder(paths[0])
    try:
        return load_dataset(name, data_files={s: [str(p) for p in g] for s, g in files.items()}, **options)
    except Exception as err:  # datasets raises many types for unreadable files, often without the cause
        raise DataError(unreadable(paths, f"{[p.name for p in paths]} as {name}", err)) from err


def _load_folder(path: Path, config) -> DatasetDict:
    try:
        return load_dataset(str(path.resolve()), config)  # datasets cannot name a dataset from "." alone
    except Exception as err:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FILE_BUILDERS)
        raise DataError(unreadable(files, f"the folder {str(path)!r}", err)) from err


def _text_lists(folder: Path) -> dict:
    """`{split: [files]}` for a folder of `.txt` lists (one text a line, the file name is the label),
    directly or in split sub-folders (`train/`, `test/`, ...); {} when the folder holds other files."""
    splits = {d.name: sorted(d.glob("*.txt")) for d in sorted(folder.iterdir()) if d.is_dir()}
    splits = {s: f for s, f in splits.items() if f} or {"train": sorted(folder.glob("*.txt"))}
    others = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in FILE_BUILDERS]
    return {} if others or not any(splits.values()) else splits


def _load_text_lists(folder: Path) -> DatasetDict:
    return DatasetDict({split: _text_list(files) for split, files in _text_lists(folder).items()})


def _list_lines(path):
    """The non-blank lines of a text list, read a line at a time (a file larger than memory is fine)."""
    try:
        with open(path, encoding="utf-8") as f:
            yield from (line.rstrip("\r\n") for line in f if line.strip())
    except UnicodeDecodeError as err:
        raise DataError(not_utf8(path, f"{err.reason} at byte {err.start}")) from err


def _text_list_rows(path: str, stamp: tuple):
    """`Dataset.from_generator`'s rows of one list (`stamp`, its size and time, keys datasets' cache)."""
    for line in _list_lines(path):
        yield {"text": line, "label": Path(path).stem}


def _text_list(files) -> Dataset:
    """The lists' rows in a dataset written to datasets' cache (memory-mapped), one file read at a time."""
    parts = []
    for path in files:
        if next(_list_lines(path), None) is None:
            raise DataError(f"{str(path)!r} is empty: a text list needs one text a line.")
        stat = path.stat()
        try:
            parts.append(Dataset.from_generator(_text_list_rows, gen_kwargs=dict(
                path=str(path.resolve()), stamp=(stat.st_size, stat.st_mtime_ns))))
        except DatasetGenerationError as err:  # datasets wraps the cause (a DataError naming the file)
            raise (err.__cause__ if isinstance(err.__cause__, DataError) else DataError(str(err))) from err
    return concatenate_datasets(parts)


# ---------------------------------------------------------------- splits


def pick_splits(raw: DatasetDict, train=None, validation=None, test=None, unlabelled=None) -> dict:
    """Split names: the ones asked for (each must exist), else the usual names when present."""
    for role, name in (("train", train), ("validation", validation), ("test", test), ("unlabelled", unlabelled)):
        if name is not None and name not in raw:
            raise DataError(f"No split {name!r} (--{role}-split) in the dataset; its splits are {sorted(raw)}.")
    chosen = dict(
        train=train or ("train" if "train" in raw else None),
        validation=validation or next((n for n in VALIDATION_NAMES if n in raw), None),
        test=test or ("test" if "test" in raw else None),
        unlabelled=unlabelled or next((n for n in UNLABELLED_NAMES if n in raw), None),
    )
    if chosen["train"] is None:
        raise DataError(f"No 'train' split in the dataset (its splits: {sorted(raw)}): name one with --train-split.")
    return chosen


# ---------------------------------------------------------------- labels


def read_label_names(value: str | None) -> list[str] | None:
    """`--label-names`: a comma list, or a file with one name a line."""
    if not value:
        return None
    path = Path(os.path.expanduser(value))
    if path.is_file():
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif "," not in value and (path.suffix or "/" in value):  # a mistyped file name, not a one-name list
        raise FileNotFoundError(f"--label-names: no file {value!r} (give a file with one name a line, or the names "
                                "separated by commas).")
    else:
        names = [name.strip() for name in value.split(",") if name.strip()]
    if len(set(names)) != len(names):
        raise DataError(f"--label-names has repeated names: {names}.")
    return names


def _check_columns(ds: Dataset, split: str, columns) -> None:
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        which = " and ".join(repr(c) for c in missing)
        tabs = any("\t" in c for c in ds.column_names)
        raise DataError(f"The {split!r} split has no column {which}; its columns are {ds.column_names} "
                        + ("(the names hold tabs: the file is tab-separated, so name it .tsv)." if tabs else
                           "(choose with --text-column / --label-column)."))


def _all_unlabelled(ds: Dataset, column: str) -> bool:
    """A ClassLabel column whose every value is -1, datasets' mark for "no label"."""
    return isinstance(ds.features[column], ClassLabel) and all_equal(ds, column, -1)


def _check_no_missing(ds: Dataset, split: str, column: str) -> None:
    """Rows without a value (None, NaN, datasets' -1 for a ClassLabel, or an empty or whitespace-only string),
    found from the Arrow column a batch at a time (`missing_rows`)."""
    no_label = -1 if isinstance(ds.features[column], ClassLabel) else None  # datasets' mark for a missing label
    count, first, blank = missing_rows(ds, column, no_label)
    if count:
        rows = ", ".join(str(i) for i in first) + (", ..." if count > len(first) else "")
        how = f"; {blank} of them empty or only whitespace" if blank else ""
        raise DataError(f"The {split!r} split has {count} rows without a {column!r} value (rows {rows}{how}): "
                        "remove them or fill them in.")


def _check_texts_are_strings(ds: Dataset, split: str, column: str) -> None:
    """Every text is a string: a column of numbers (a CSV's numeric column), lists or dicts would reach the
    tokenizer, which refuses it deep inside."""
    row = first_non_string_row(ds, column)
    if row is not None:
        value = ds[row][column]
        raise DataError(f"The {split!r} split's {column!r} column holds {type(value).__name__} values, not text "
                        f"(e.g. row {row}: {value!r:.60}): name the column of texts with --text-column, or write "
                        "every text as a string.")


def label_scheme(labelled: dict, column: str, label_names: list | None):
    """(values in class order, names, multi_label) of the label column over the labelled splits."""
    feature = labelled["train"].features[column]
    multi_label = is_list_feature(feature)
    inner = inner_feature(feature) if multi_label else feature
    if isinstance(inner, ClassLabel):
        values, names = list(range(inner.num_classes)), list(inner.names)
    else:  # the classes are the training split's: a class it lacks cannot be learnt (`check_classes_in_train`)
        seen = unique_values(labelled["train"], column, flatten=multi_label)
        try:
            values = sorted(seen)
        except TypeError as err:
            raise DataError(f"The {column!r} column mixes label types ({err}).") from err
        names = [str(v) for v in values]
    if label_names is not None:
        if len(label_names) != len(values):
            raise DataError(f"--label-names gives {len(label_names)} names for {len(values)} labels "
                            f"(the sorted label values are {values}).")
        names = list(label_names)
    if len(values) < 2:
        raise DataError(f"The {column!r} column has a single class ({names}): a classifier needs at least two.")
    return values, names, multi_label


def _encoder(values, multi_label):
    index = {v: i for i, v in enumerate(values)}
    if multi_label:
        def encode(labels):
            hot = [0.0] * len(values)
            for label in labels:
                hot[index[label]] = 1.0
            return hot
        return encode
    return index.__getitem__


# ---------------------------------------------------------------- the whole load


def load_classification_data(
    source: str,
    *,
    config: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    label_names: list | str | None = None,
    train_split: str | None = None,
    validation_split: str | None = None,
    test_split: str | None = None,
    unlabelled_split: str | None = None,
    validation_size: float = 0.1,
    validation_floor: bool = False,
    seed: int = 42,
    merge_label_variants: bool = False,
) -> ClassificationData:
    """Load and check a text-classification dataset; see the module docstring. Labels spelt in several ways
    (`pos` / `Pos ` / `POS`) are refused, or merged into their most frequent spelling with `merge_label_variants`."""
    if isinstance(validation_size, bool) or not isinstance(validation_size, numbers.Real):
        raise TypeError(f"`validation_size` must be a number: a fraction of the training split (0.1) or a count of its "
                        f"rows (500), got {validation_size!r} ({type(validation_size).__name__}).")
    if isinstance(label_names, str):
        label_names = read_label_names(label_names)
    elif label_names is not None and len(set(label_names)) != len(label_names):
        raise DataError(f"--label-names has repeated names: {list(label_names)}.")
    if text_column == label_column:
        raise DataError(f"--text-column and --label-column both name {text_column!r}: the texts and their labels are "
                        "two columns.")
    raw = load_raw(source, config)
    names = pick_splits(raw, train_split, validation_split, test_split, unlabelled_split)
    labelled = {role: raw[names[role]] for role in ("train", "validation", "test") if names[role] is not None}
    if "test" in labelled and label_column in labelled["test"].column_names and _all_unlabelled(labelled["test"], label_column):
        print(f"The {names['test']!r} split has no labels (every one is -1, as in GLUE's hidden test sets): "
              "the final figures come from the validation split.")
        del labelled["test"]
        names["test"] = None
    for role, ds in labelled.items():
        if len(ds) == 0:
            raise DataError(f"The {names[role]!r} split is empty.")
        _check_columns(ds, names[role], (text_column, label_column))
        _check_no_missing(ds, names[role], label_column)
        _check_no_missing(ds, names[role], text_column)
        _check_texts_are_strings(ds, names[role], text_column)
    labelled = checked_spellings(labelled, label_column, merge_label_variants)
    values, label_list, multi_label = label_scheme(labelled, label_column, label_names)
    check_classes_in_train(labelled, names, label_column, label_list, multi_label)
    encode = _encoder(values, multi_label)

    def tidy(ds):  # a batch of rows at a time (one at a time took a minute at 400,000 texts)
        keep = ds.select_columns([text_column, label_column])
        return keep.map(lambda batch: {"text": batch[text_column], "labels": [encode(v) for v in batch[label_column]]},
                        batched=True, remove_columns=keep.column_names, desc="Reading labels")

    splits = {role: tidy(ds) for role, ds in labelled.items()}
    carved = "validation" not in splits
    if carved:
        splits["train"], splits["validation"] = _carve_validation(
            splits["train"], validation_count(len(splits["train"]), validation_size) if validation_floor
            else int(validation_size) if validation_size >= 1 else validation_size,  # a count (500.0 too) or a fraction
            seed, multi_label)
    unlabelled = None
    if names["unlabelled"] is not None:
        _check_columns(raw[names["unlabelled"]], names["unlabelled"], (text_column,))
        _check_texts_are_strings(raw[names["unlabelled"]], names["unlabelled"], text_column)
        unlabelled = raw[names["unlabelled"]].select_columns([text_column]).rename_column(text_column, "text") \
            if text_column != "text" else raw[names["unlabelled"]].select_columns(["text"])
    description = dict(
        source=str(source), config=config, text_column=text_column, label_column=label_column,
        split_names={role: names[role] for role in ("train", "validation", "test", "unlabelled") if names[role]},
        validation_carved_from_train=carved,
        split_sizes={role: len(ds) for role, ds in splits.items()},
        unlabelled_texts=len(unlabelled) if unlabelled is not None else 0,
    )
    return ClassificationData(DatasetDict(splits), label_list, multi_label, unlabelled, description)


def load_arguments(data, what: str = "The data") -> dict:
    """`load_classification_data`'s arguments from `data`: a dict of them, or the dataset's source alone (a Hub
    id, a folder or a file); anything else is a TypeError that says what to pass."""
    if isinstance(data, (str, os.PathLike)):
        return dict(source=str(data))
    if not isinstance(data, Mapping):
        raise TypeError(f"{what} is a {type(data).__name__}: pass a dataset source (a Hub id, folder or file), a dict "
                        "of load_classification_data arguments, or a ClassificationData.")
    return dict(data)


def validation_count(rows: int, size: float) -> int:
    """How many training rows become validation under a preset's small-set floor (`validation_floor`, the
    quick presets'): `size` of them (a fraction, or a count when >= 1), but never fewer than 10 % of a small
    set (up to 300 texts), nor than 30 texts where they are at most a quarter of the rows (120 rows or
    more), so that a few hundred rows are not judged on a handful of texts (1.2 % left 4 of 300)."""
    wanted = int(size) if size >= 1 else round(size * rows)
    return min(rows - 1, max(wanted, min(math.ceil(0.1 * rows), 300), min(30, rows // 4)))


def _carve_validation(train: Dataset, size: float, seed: int, multi_label: bool):
    """A validation split from train: stratified by class (not for label lists), fixed seed."""
    if not multi_label:
        train = train.cast_column("labels", ClassLabel(num_classes=column_max(train, "labels") + 1))
    try:
        parts = train.train_test_split(test_size=size, seed=seed,
                                       stratify_by_column=None if multi_label else "labels")
    except ValueError as err:  # too few rows of a class to stratify
        raise DataError(f"Cannot carve a {size:g} validation split from {len(train)} training rows ({err}); "
                        "pass a dataset with a validation split or more data.") from err
    return parts["train"], parts["test"]
