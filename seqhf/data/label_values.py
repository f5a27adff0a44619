"""Label values: the classes each split has, and labels a user's data spells in more than one way: `pos` / `Pos ` / `POS` (case or surrounding spaces),
or numbers beside names (`0`, `1`, `neg`, `pos`: a CSV reads them all as text, so each would be a class).
Both are refused with the spellings named; on request (`merge_variants`) the case and space variants of a
label become one class, spelt as most of its rows spell it."""

import re
from collections import Counter

import pyarrow as pa
from datasets import ClassLabel, Dataset, Sequence

from .arrow_columns import is_json_column, unique_values, value_counts
from .errors import DataError

INTEGER = re.compile(r"[+-]?\d+")
SHOWN = 6  # spellings or groups named in a message


def count_values(labelled: dict, column: str, multi_label: bool) -> Counter:
    """How many rows of all the labelled splits carry each label value (each value of a label list), counted
    from the Arrow columns a batch at a time."""
    counts = Counter()
    for ds in labelled.values():
        counts.update(value_counts(ds, column, flatten=multi_label))
    return counts


def _is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or (isinstance(value, str) and bool(INTEGER.fullmatch(value.strip())))


def _named(values, counts: Counter) -> str:
    shown = sorted(values, key=lambda v: (-counts[v], str(v)))
    text = ", ".join(f"{v!r} ({counts[v]:,} rows)" for v in shown[:SHOWN])
    return text + (f", and {len(shown) - SHOWN} more" if len(shown) > SHOWN else "")


def check_label_values(counts: Counter, column: str, merge_variants: bool = False) -> dict:
    """Refuse mixed numbers and names, and labels spelt in several ways (unless `merge_variants`), with a
    `DataError` naming them. Returns `{spelling: merged spelling}` for the variants to merge ({} if none)."""
    numbers = [v for v in counts if _is_number(v)]
    names = [v for v in counts if isinstance(v, str) and not _is_number(v)]
    if numbers and names:
        raise DataError(
            f"The {column!r} column mixes numbers and names as labels: {_named(numbers, counts)} beside "
            f"{_named(names, counts)}; each would train as a class of its own. Use one kind of label "
            f"(e.g. write the name each number stands for).")
    groups = {}
    for value in counts:
        if isinstance(value, str):
            groups.setdefault(value.strip().casefold(), []).append(value)
    variants = [group for group in groups.values() if len(group) > 1]
    if not variants:
        return {}
    if not merge_variants:
        shown = "; ".join(" / ".join(f"{v!r} ({counts[v]:,} rows)" for v in sorted(group, key=lambda v: (-counts[v], v)))
                          for group in variants[:SHOWN])
        more = f"; and {len(variants) - SHOWN} more groups" if len(variants) > SHOWN else ""
        raise DataError(
            f"The {column!r} column spells labels in more than one way (they differ only in case or surrounding "
            f"spaces): {shown}{more}; each spelling would train as a class of its own. Correct the data, or "
            "merge each group into its most frequent spelling with --merge-label-variants.")
    merged = {}
    for group in variants:
        spelling = min(group, key=lambda v: (-counts[v], v)).strip()
        merged.update({value: spelling for value in group if value != spelling})
    return merged


def merge_values(ds: Dataset, column: str, merged: dict, multi_label: bool) -> Dataset:
    """`ds` with the label spellings of `merged` replaced."""
    def merge(batch):
        if multi_label:
            return {column: [[merged.get(v, v) for v in row] for row in batch[column]]}
        return {column: [merged.get(v, v) for v in batch[column]]}
    return ds.map(merge, batched=True, desc="Merging label spellings")


def is_list_feature(feature) -> bool:
    return isinstance(feature, (Sequence, list)) or type(feature).__name__ in ("List", "LargeList")


def inner_feature(feature):
    return feature[0] if isinstance(feature, list) else feature.feature


def _is_nested(value) -> bool:
    """A dict, or a list holding dicts or lists: no label, nor a multi-label row."""
    return isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value))


def _first_nested_row(ds, column: str) -> int | None:
    kind = ds.data.schema.field(column).type
    if isinstance(kind, pa.BaseExtensionType):  # datasets' Json (mixed kinds): read as Python, as below
        return next((row for row, value in enumerate(ds[column]) if _is_nested(value)), None)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        kind = kind.value_type
    return 0 if pa.types.is_nested(kind) else None  # the type is every row's (the missing labels are refused)


def check_label_kinds(ds, column: str, split: str) -> None:
    """Labels are integers or strings (or lists of them): a dict or a nested list would reach pyarrow's counting
    kernels, which have none for them."""
    row = _first_nested_row(ds, column)
    if row is not None:
        raise DataError(f"The {split!r} split's {column!r} column holds {ds[row][column]!r:.60} (row {row}): labels "
                        "must be integers or strings, or lists of them for a multi-label dataset.")


def check_one_kind_of_label(ds, column: str, split: str) -> None:
    """Label lists and single labels mixed in one column (datasets reads such a JSON column as `Json`) are refused,
    naming the first row of the rarer kind."""
    if not is_json_column(ds, column):
        return
    values = ds[column]
    is_list = [isinstance(value, list) for value in values]
    lists = sum(is_list)
    if 0 < lists < len(values):
        first = is_list.index(lists <= len(values) / 2)  # the first row of the rarer kind
        raise DataError(f"The {split!r} split's {column!r} column mixes label lists ({lists} rows) and single "
                        f"labels ({len(values) - lists} rows), e.g. row {first}: {values[first]!r}. Give every row "
                        "a list (a multi-label dataset) or every row one label.")


def checked_spellings(labelled: dict, column: str, merge_variants: bool) -> dict:
    """The labelled splits, their label spellings checked and, on request, merged."""
    for role, ds in labelled.items():
        check_label_kinds(ds, column, role)
        check_one_kind_of_label(ds, column, role)
    feature = labelled["train"].features[column]
    multi_label = is_list_feature(feature)
    if isinstance(inner_feature(feature) if multi_label else feature, ClassLabel):
        return labelled  # class ids with their names: one spelling each
    merged = check_label_values(count_values(labelled, column, multi_label), column, merge_variants)
    if merged:
        print(f"--merge-label-variants: {', '.join(f'{a!r} -> {b!r}' for a, b in merged.items())}")
        labelled = {role: merge_values(ds, column, merged, multi_label) for role, ds in labelled.items()}
    return labelled


def check_classes_in_train(labelled: dict, split_names: dict, column: str, names: list, multi_label: bool) -> None:
    """Every class of the validation and test splits has rows in the training split."""
    def found(ds):
        return unique_values(ds, column, flatten=multi_label)

    feature = labelled["train"].features[column]
    inner = inner_feature(feature) if multi_label else feature
    in_train = found(labelled["train"])
    for role, ds in labelled.items():
        lacking = sorted(found(ds) - in_train, key=str)
        if role != "train" and lacking:
            shown = [names[v] for v in lacking] if isinstance(inner, ClassLabel) else lacking
            raise DataError(f"The {split_names[role]!r} split has labels {shown} that the training split does not "
                            f"have: a model cannot learn a class it never sees. Move some of their rows to the "
                            "training split, or remove them.")
