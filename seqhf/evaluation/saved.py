"""Evaluating a saved folder on data it is given, the classic baseline beside it: a classifier on a dataset
(through `pipeline`, as a user gets it), a character LM on a text (nats per character)."""

import dataclasses
import math
import os
import time
from pathlib import Path

import numpy as np
from datasets import DatasetDict

from ..data.classification import ClassificationData, DataError, load_arguments, load_classification_data, load_raw
from ..data.file_checks import not_utf8
from ..inference.saved_folder import check_classifier_config, check_saved_folder
from .baseline import tfidf_logistic_regression
from .metrics import classification_metrics


def folder_labels(folder) -> list[str]:
    """The class names of a saved classifier, in the order of its outputs (a language model's folder is refused:
    `NotAClassifierError`)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    check_classifier_config(config, folder)
    return [config.id2label[i] for i in range(len(config.id2label))]


def data_named_as_the_model(spec: dict, names: list[str], folder) -> ClassificationData:
    """The dataset `spec` (`load_classification_data`'s arguments) with its classes in the model's order: by name when
    its labels are the model's class names; integer labels and a dataset's own class ids take the model's names
    in order, as `--label-names` gives them; other names are refused (positions would pair classes at random)."""
    own = load_classification_data(**spec)  # a dataset that does not load says so itself
    if spec.get("label_names") is not None or sorted(own.label_names) == sorted(names):
        return own  # put in the model's order by `in_the_models_order`
    if not (all(name.lstrip("-").isdigit() for name in own.label_names) or has_class_ids(spec)):
        raise DataError(f"The dataset's classes {own.label_names} are not the classes of {folder} ({', '.join(names)}): "
                        "pass --label-names to give its sorted labels the model's names in order, if they are the "
                        "same classes.")
    if len(own.label_names) != len(names):
        raise DataError(f"{folder} has {len(names)} classes ({', '.join(names)}), which name the dataset's labels "
                        f"unless --label-names is given, and they do not fit this dataset: {len(names)} names for "
                        f"{len(own.label_names)} labels (its sorted labels are {own.label_names}).")
    return dataclasses.replace(own, label_names=list(names))  # what `label_names=names` gives: the same ids, renamed


def in_the_models_order(data: ClassificationData, names: list[str]) -> ClassificationData:
    """`data` with its class ids in the order of the model's `names`, when its classes are the model's by name in
    another order (string labels sorted differently, or --label-names naming integer labels in another order)."""
    if data.multi_label or data.label_names == names or sorted(data.label_names) != sorted(names):
        return data
    order = [names.index(name) for name in data.label_names]
    splits = {split: ds.map(lambda batch: {"labels": [order[label] for label in batch["labels"]]}, batched=True)
              for split, ds in data.splits.items()}
    return dataclasses.replace(data, splits=DatasetDict(splits), label_names=list(names))


def has_class_ids(spec: dict) -> bool:
    """Whether the dataset's label column is a datasets `ClassLabel` (ids with names of the dataset's own)."""
    from datasets import ClassLabel

    raw = load_raw(spec["source"], spec.get("config"))
    column = spec.get("label_column", "label")
    return any(isinstance(ds.features.get(column), ClassLabel) for ds in raw.values())


def evaluate_classifier(folder, data, *, split: str | None = None, baseline: bool = True, batch_size: int = 32) -> dict:
    """Score the classifier saved in `folder` on `data` (a `ClassificationData`, a dict of `load_classification_data`
    arguments, or the dataset's source alone; its labels are named as the folder names them) through `pipeline("text-classification")`.
    `split`: which split to score (default: test, else validation). With `baseline`, TF-IDF + logistic
    regression is fitted on the data's train split and scored on the same split. Returns the figures."""
    from transformers import pipeline

    check_saved_folder(folder)  # a folder whose save was cut short is named, not scored
    names = folder_labels(folder)
    if not isinstance(data, ClassificationData):
        data = data_named_as_the_model(load_arguments(data, "The data to evaluate on"), names, folder)
    data = in_the_models_order(data, names)
    if data.multi_label:
        raise DataError("seqhf evaluate scores single-label classifiers; this dataset has lists of labels.")
    if data.label_names != names:
        raise DataError(f"The dataset's classes {data.label_names} are not the model's {names}: name them with "
                        "--label-names in the model's order.")
    split = split or data.final_split
    if split not in data.splits:
        raise DataError(f"No {split!r} split; the data has {sorted(data.splits)}.")
    texts, labels = data.splits[split]["text"], np.asarray(data.splits[split]["labels"])
    start = time.time()
    classify = pipeline("text-classification", model=str(folder), top_k=None)
    scores = np.zeros((len(texts), len(names)))
    for row, result in enumerate(classify(list(texts), batch_size=batch_size, truncation=True)):
        for entry in result:
            scores[row, names.index(entry["label"])] = entry["score"]
    figures = classification_metrics(np.log(np.clip(scores, 1e-12, 1.0)), labels, names)
    results = dict(model=str(folder), data=data.description, evaluated_on=split, examples=len(texts),
                   wall_time_s=round(time.time() - start, 1), **figures)
    if baseline:
        if "train" not in data.splits or len(data.splits["train"]) == 0:
            results["baseline"] = {"skipped": "no train split to fit it on"}
        else:
            scored = dataclasses.replace(data, splits=DatasetDict(train=data.splits["train"], test=data.splits[split]))
            results["baseline"] = dict(tfidf_logistic_regression(scored), evaluated_on=split)
    return results


def evaluate_char_lm(folder, text: str, *, ngram_train: str | None = None, ngram_order: int = 7,
                     max_chars: int = 200_000) -> dict:
    """Nats per character of the char LM saved in `folder` on `text` (its first `max_chars` characters, read
    as one stream by a recurrent model, in windows of its context by a Transformer). With `ngram_train`
    (text), a Kneser-Ney n-gram fitted on it is scored on the same characters beside the model. `text` and
    `ngram_train` are the texts themselves, or `pathlib.Path`s of UTF-8 files to read."""
    from ..inference.generation import load_generator
    from .charlm import char_log_probs, encode_counting_unknown
    from .ngram import CharKneserNey

    text = text_of(text, "text")
    ngram_train = text_of(ngram_train, "ngram_train") if ngram_train is not None else None
    if max_chars is not None and max_chars < 2:  # each character is scored on the ones before it
        raise ValueError(f"`max_chars` must be at least 2, got {max_chars}.")
    if ngram_order < 1:
        raise ValueError(f"`ngram_order` must be at least 1, got {ngram_order}.")
    if not text.strip():
        raise DataError("The text to evaluate on is empty.")
    text = text[:max_chars]
    model, tokenizer = load_generator(folder)
    probe = "The island, 1865."
    if len(tokenizer(probe, add_special_tokens=False)["input_ids"]) != len(probe):  # a char LM: one id a character
        raise DataError(f"{folder} is not a character LM (its tokenizer does not give one id a character): nats per "
                        "character would be per token here. A word LM's held-out perplexity is in its "
                        "eval_results.json and card.")
    ids, unknown = encode_counting_unknown(tokenizer, text)
    window = getattr(model.config, "max_position_embeddings", None) or 256
    nats = float(-char_log_probs(model, ids, window).mean())
    results = dict(model=str(folder), chars=len(text), unknown_chars=unknown, nats_per_char=nats,
                   bits_per_char=nats / math.log(2), truncated_to=max_chars if len(text) == max_chars else None)
    if ngram_train:
        ngram = CharKneserNey(ngram_order).fit(ngram_train)
        results["ngram"] = dict(order=ngram_order, train_chars=len(ngram_train),
                                nats_per_char=ngram.nats_per_char(text))
    return results


def text_of(value, name: str) -> str:
    """A text given as itself, or as a path (`os.PathLike`) of a UTF-8 file."""
    if isinstance(value, os.PathLike):
        return read_text(value)
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be the text (str) or a pathlib.Path of a text file, got {type(value).__name__}.")
    return value


def read_text(path) -> str:
    """A whole UTF-8 text file (a byte-order mark dropped); a file that is not UTF-8 is a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such text file: {path}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(not_utf8(path, f"{err.reason} at byte {err.start}")) from err
