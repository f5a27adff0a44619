"""What a classifier run reads: its labelled splits, extra unlabelled text, the word tokenizer and the encoded splits."""

import warnings
from pathlib import Path

from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

from ..data.classification import (
    ClassificationData,
    DataError,
    load_arguments,
    load_classification_data,
)
from ..data.sources import text_batches
from ..data.tokenization import build_word_tokenizer, truncate_ids
from ..data.unlabelled import load_unlabelled_texts
from ..evaluation.metrics import MULTI_LABEL_THRESHOLD
from .common import SetupError


def reads_whole_texts(preset: dict) -> bool:
    """An RNN reads any length, so it is evaluated (and served) on whole texts; a Transformer has positions
    for at most `max_length` tokens, so it reads their head, as `pipeline(..., truncation=True)` does."""
    return preset["arch"] == "lstm"


def tokenizer_length_limit(preset: dict) -> int:
    """The saved tokenizer's `model_max_length`. An RNN declares no limit (it reads any length; transformers
    would otherwise warn about long texts); a Transformer declares its positions, so `truncation=True` cuts
    where evaluation cut."""
    return VERY_LARGE_INTEGER if reads_whole_texts(preset) else preset["max_length"]


def build_tokenizer(data: ClassificationData, preset: dict):
    """The word tokenizer, its vocabulary from the training texts, read a batch at a time (too few words: a
    SetupError)."""
    try:
        return build_word_tokenizer(text_batches(data.splits["train"]), vocab_size=preset["vocab_size"],
                                    model_max_length=tokenizer_length_limit(preset))
    except ValueError as err:
        raise SetupError(f"Cannot build a vocabulary from the training texts: {err}") from err


def encode_splits(data: ClassificationData, preset: dict, tokenizer):
    """Token ids of every split: training texts cut as the preset says (speed), validation and test texts as
    the saved folder reads them through `pipeline`, so the reported figures are the ones users get."""
    max_length = preset["max_length"]

    def encoder(cut):
        def encode(batch):
            ids = tokenizer(batch["text"], add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
            ids = [cut(x) for x in ids]  # an empty text stays empty: the model reads it as one [PAD]
            return {"input_ids": ids, "length": [len(x) for x in ids]}
        return encode

    def train_cut(ids):
        return truncate_ids(ids, max_length, preset["truncation"])

    def eval_cut(ids):
        return ids if reads_whole_texts(preset) else ids[:max_length]

    encoded = {}
    for split, ds in data.splits.items():
        cut = train_cut if split == "train" else eval_cut
        encoded[split] = ds.map(encoder(cut), batched=True, remove_columns=["text"], desc=f"Tokenizing {split}")
        if split != "train":  # evaluation in length order: fewer distinct lengths per batch, less padding work
            with warnings.catch_warnings():  # pyarrow >= 25 deprecates an option that datasets' sort passes
                warnings.filterwarnings("ignore", "Specifying null_placement", FutureWarning)
                encoded[split] = encoded[split].sort("length")
    return encoded


def subsample(data: ClassificationData, preset: dict, seed: int) -> None:
    """`--quick` presets: a random subset of the training and test texts."""
    for split, key in (("train", "train_size"), ("test", "test_size")):
        if key in preset and split in data.splits:
            ds = data.splits[split].shuffle(seed=seed)
            data.splits[split] = ds.select(range(min(preset[key], len(ds))))


def label_config(data: ClassificationData) -> dict:
    """The config fields that name the classes and the kind of problem."""
    id2label = dict(enumerate(data.label_names))
    return dict(id2label=id2label, label2id={name: i for i, name in id2label.items()},
                problem_type="multi_label_classification" if data.multi_label else "single_label_classification")


def describe_inputs(data: ClassificationData, preset: dict, tokenizer, encoded) -> dict:
    """What a run read, for eval_results.json: the data, labels, vocabulary and how texts were cut."""
    return dict(
        data=data.description, labels=data.label_names, multi_label=data.multi_label,
        multi_label_threshold=MULTI_LABEL_THRESHOLD if data.multi_label else None,
        vocab_size=len(tokenizer), max_length=preset["max_length"], truncation=preset["truncation"],
        evaluation_reads="whole texts" if reads_whole_texts(preset) else f"the first {preset['max_length']} tokens",
        train_examples=len(encoded["train"]), validation_examples=len(encoded["validation"]),
    )


def load_data(options, preset: dict, seed: int) -> ClassificationData:
    """`load_classification_data(**options)`, its errors as SetupError (raised before any training). `options`: a
    dict of its arguments, or the dataset's source alone (a Hub id, a folder or a file)."""
    options = load_arguments(options, "The data to train on")
    try:
        return load_classification_data(**{"validation_size": preset.get("validation_size", 0.1), "seed": seed,
                                           "validation_floor": preset.get("validation_floor", False),
                                           **options})
    except DataError as err:
        raise SetupError(str(err)) from err


def load_extra_texts(unlabelled_data, data: ClassificationData, preset: dict) -> list:
    """The texts of `--unlabelled-data` (see `train_classifier`) as datasets with a `text` column, kept on disk,
    recorded in `data.description`; errors as SetupError, before any training."""
    options = dict(unlabelled_data) if isinstance(unlabelled_data, dict) else {"sources": list(unlabelled_data)}
    if not preset.get("word_vectors") and not preset.get("pretrain"):
        raise SetupError("--unlabelled-data feeds the word vectors or the preset's own word LMs, and this preset has "
                         "neither (`lstm` learns word vectors without --quick; `ulmfit-small` trains its own LMs).")
    own = Path(str(data.description.get("source", ""))).resolve()
    # The labelled dataset itself, or a file inside its folder (its test split, say), must not reach the vectors.
    if any(Path(str(s)).resolve() == own or (own.is_dir() and own in Path(str(s)).resolve().parents)
           for s in options["sources"]):
        raise SetupError("--unlabelled-data names the labelled dataset or a file inside it; its own unlabelled split "
                         "is --unlabelled-split (its other splits must not reach the word vectors).")
    try:
        parts, described = load_unlabelled_texts(**options)
    except DataError as err:
        raise SetupError(str(err)) from err
    data.description["unlabelled_data"] = described
    print(f"Extra unlabelled text for the word vectors: {sum(map(len, parts)):,} texts from "
          + ", ".join(f"{d['source']} ({d['texts']:,})" for d in described))
    return parts
