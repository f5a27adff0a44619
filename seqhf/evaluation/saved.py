"""Evaluating a saved folder on data it is given, the classic baseline beside it: a classifier on a dataset
(through `pipeline`, as a user gets it), a character LM on a text (nats per character), a word LM on a text
(perplexity per token as its card reports it, and nats per character)."""

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from datasets import DatasetDict

from ..data.classification import ClassificationData, DataError, load_arguments, load_classification_data, load_raw
from ..data.file_checks import not_utf8
from ..inference.generation import reads_backward
from ..inference.saved_folder import check_classifier_config, check_saved_folder
from ..utils.runtime import use_bf16
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


def training_carve(folder, spec: dict) -> dict:
    """The validation split the folder's training run carved from this same data, as `load_classification_data`
    arguments (its row count and seed): a dataset without a test split is then scored on the texts the model was
    validated on, not on a fresh carve (10 %, seed 42) that shares most of its rows with a run of another seed or
    preset. {} for other data, a Hub repo id, or a run whose data had a validation split."""
    results = Path(str(folder)) / "eval_results.json"
    run = json.loads(results.read_text()) if results.is_file() else {}
    trained_on = run.get("data") or {}
    if not trained_on.get("validation_carved_from_train") or trained_on.get("config") != spec.get("config"):
        return {}
    if not same_source(trained_on.get("source"), spec["source"], Path(str(folder))):
        return {}
    return dict(validation_size=trained_on["split_sizes"]["validation"], seed=run.get("seed", 42))


def same_source(recorded, given, folder: Path) -> bool:
    """Whether a run's recorded data source and the one given now are the same data: the same Hub id, or the same
    file or folder (a relative path recorded by the run is tried from here and from beside its folder)."""
    if recorded is None:
        return False
    given_path = Path(os.path.expanduser(str(given))).resolve()
    candidates = [Path(os.path.expanduser(str(recorded))), folder.resolve().parent.parent / str(recorded)]
    return str(recorded) == str(given) or any(p.exists() and p.resolve() == given_path for p in candidates)


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
    `split`: which split to score (default: test, else validation: on the data the folder was trained on, the
    validation texts its run carved, with the run's seed and count). With `baseline`, TF-IDF + logistic
    regression is fitted on the data's train split and scored on the same split. Returns the figures."""
    from transformers import pipeline

    check_saved_folder(folder)  # a folder whose save was cut short is named, not scored
    names = folder_labels(folder)
    if not isinstance(data, ClassificationData):
        spec = load_arguments(data, "The data to evaluate on")
        spec = {**training_carve(folder, spec), **spec}  # a seed or validation_size given here wins
        data = data_named_as_the_model(spec, names, folder)
    data = in_the_models_order(data, names)
    if data.multi_label:
        raise DataError("seqhf evaluate scores single-label classifiers; this dataset has lists of labels.")
    if data.label_names != names:
        raise DataError(f"The dataset's classes {data.label_names} are not the model's {names}: name them with "
                        "--label-names in the model's order.")
    split = split or data.final_split
    if split not in data.splits:
        raise DataError(f"No {split!r} split; the data has {sorted(data.splits)} (its splits by role: a dataset's own "
                        "split names are given with --train-split, --validation-split and --test-split).")
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

    text, ngram_train = lm_texts_of(text, ngram_train, max_chars, ngram_order)
    if not text.strip():
        raise DataError("The text to evaluate on is empty.")
    text = text[:max_chars]
    model, tokenizer = load_generator(folder)
    if not is_char_tokenizer(tokenizer):
        raise DataError(f"{folder} is not a character LM (its tokenizer does not give one id a character): nats per "
                        "character would be per token here. Score a word LM with `seqhf.evaluate_word_lm` "
                        "(`seqhf evaluate FOLDER --text FILE` tells them apart).")
    ids, unknown = encode_counting_unknown(tokenizer, text)
    window = getattr(model.config, "max_position_embeddings", None) or 256
    nats = float(-char_log_probs(model, ids, window).mean())
    results = dict(model=str(folder), chars=len(text), unknown_chars=unknown, nats_per_char=nats,
                   bits_per_char=nats / math.log(2), truncated_to=max_chars if len(text) == max_chars else None)
    if ngram_train:
        results["ngram"] = ngram_beside(ngram_train, ngram_order, text)
    return results


def ngram_beside(ngram_train: str, order: int, text: str) -> dict:
    """A Kneser-Ney character n-gram fitted on `ngram_train`, scored on `text` in nats per character."""
    from .ngram import CharKneserNey

    ngram = CharKneserNey(order).fit(ngram_train)
    return dict(order=order, train_chars=len(ngram_train), nats_per_char=ngram.nats_per_char(text))


def is_char_tokenizer(tokenizer) -> bool:
    """Whether the tokenizer gives one id a character (a char LM's), as opposed to one a word (a word LM's)."""
    probe = "The island, 1865."
    return len(tokenizer(probe, add_special_tokens=False)["input_ids"]) == len(probe)


def evaluate_word_lm(folder, text: str, *, seq_len: int | None = None, ngram_train: str | None = None,
                     ngram_order: int = 7, max_chars: int = 200_000) -> dict:
    """Per-token perplexity of the word LM saved in `folder` (`seqhf train lm`) on `text` (its first `max_chars`
    characters), computed as its held-out perplexity is: the text read as `seqhf train lm` reads a `.txt` file
    (paragraphs, blank-line separated, or its lines when it has none; a Project Gutenberg header and licence
    stripped), `[EOS]` after each paragraph, scored with the full softmax in consecutive windows of `seq_len`
    tokens (default: the LM's own, from its eval_results.json), each read from an empty state, an incomplete last
    window left out. On the LM's own held-out texts it is the perplexity its card reports.
    Also nats per character: the negative log-likelihood of every token (the last window's too) over the
    characters of the text, `evaluate_char_lm`'s figure for a char LM (the word LM reads lowercased words, so
    it is not asked for case or spacing, and an `[UNK]` stands for any unknown word: `unknown_tokens` counts them).
    `ngram_train`: as for `evaluate_char_lm`. `text` and `ngram_train` are the texts, or `pathlib.Path`s of them."""
    from ..data.char_text import encode_stream, strip_gutenberg
    from ..data.unlabelled import paragraphs_of
    from ..inference.generation import load_generator

    text, ngram_train = lm_texts_of(text, ngram_train, max_chars, ngram_order)
    if seq_len is not None and (isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1):
        raise ValueError(f"`seq_len` must be a positive integer (tokens a window), got {seq_len!r}.")
    truncated = max_chars if max_chars is not None and len(text) > max_chars else None
    text = strip_gutenberg(text[:max_chars])[0]
    paragraphs = paragraphs_of(text)
    if not paragraphs:
        raise DataError("The text to evaluate on is empty.")
    model, tokenizer = load_generator(folder)
    if is_char_tokenizer(tokenizer):
        raise DataError(f"{folder} is a character LM: score it with `seqhf.evaluate_char_lm`.")
    if tokenizer.eos_token_id is None:
        raise DataError(f"{folder}'s tokenizer has no end-of-text token ([EOS]), which a word LM trained by "
                        "`seqhf train lm` puts between its texts.")
    seq_len = seq_len or trained_seq_len(folder)
    ids = encode_stream(tokenizer, paragraphs, backward=reads_backward(model))
    if len(ids) < seq_len + 1:
        raise DataError(f"The text is {len(ids)} tokens, fewer than a window of seq_len + 1 = {seq_len + 1} (pass a "
                        "shorter `seq_len`, --seq-len).")
    nll = window_nll(model, ids, seq_len)
    scored = (len(ids) - 1) // seq_len * seq_len  # the full windows, as the held-out figure has them
    loss = float(nll[:scored].mean())
    results = dict(model=str(folder), texts=len(paragraphs), tokens=scored, seq_len=seq_len,
                   unknown_tokens=int((ids == tokenizer.unk_token_id).sum()), nats_per_token=loss,
                   perplexity=math.exp(min(loss, 50.0)), chars=len(text), nats_per_char=float(nll.sum()) / len(text),
                   truncated_to=truncated)
    results["bits_per_char"] = results["nats_per_char"] / math.log(2)
    if ngram_train:
        results["ngram"] = ngram_beside(ngram_train, ngram_order, text)
    return results


def trained_seq_len(folder) -> int:
    """The window a word LM was trained and evaluated in, from its eval_results.json."""
    results = Path(folder) / "eval_results.json"
    seq_len = json.loads(results.read_text()).get("seq_len") if results.is_file() else None
    if not isinstance(seq_len, int) or seq_len < 1:
        raise DataError(f"{folder} has no eval_results.json that gives the window its LM was evaluated in: pass "
                        "`seq_len` (--seq-len).")
    return seq_len


@torch.no_grad()
def window_nll(model, ids: torch.Tensor, seq_len: int, batch: int = 64) -> torch.Tensor:
    """-ln P(ids[i] | its window) for i >= 1: consecutive windows of `seq_len` inputs, each read from an empty
    state (as `seqhf train lm`'s evaluation reads them), the last one shorter when the ids run out."""
    device = next(model.parameters()).device
    inputs, targets = ids[:-1], ids[1:]
    full = len(inputs) // seq_len * seq_len
    pieces = list(zip(inputs[:full].view(-1, seq_len).split(batch), targets[:full].view(-1, seq_len).split(batch)))
    if full < len(inputs):
        pieces.append((inputs[full:].unsqueeze(0), targets[full:].unsqueeze(0)))
    scores = []
    for x, y in pieces:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16()):
            logits = model(input_ids=x.to(device)).logits
        scores.append(F.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten(), reduction="none").cpu())
    return torch.cat(scores).double()


def lm_texts_of(text, ngram_train, max_chars, ngram_order: int) -> tuple:
    """An LM evaluation's text and n-gram training text (each given as itself or as a path), its caps checked."""
    if max_chars is not None and max_chars < 2:  # each character is scored on the ones before it
        raise ValueError(f"`max_chars` must be at least 2, got {max_chars}.")
    if ngram_order < 1:
        raise ValueError(f"`ngram_order` must be at least 1, got {ngram_order}.")
    return text_of(text, "text"), text_of(ngram_train, "ngram_train") if ngram_train is not None else None


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
