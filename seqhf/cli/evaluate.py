"""`seqhf generate`, `seqhf evaluate` and `seqhf baseline tfidf | ngram`: using and scoring saved folders."""

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

baseline_app = typer.Typer(help="The classic baselines alone: TF-IDF + logistic regression, a Kneser-Ney n-gram.",
                           no_args_is_help=True)


def loads_models() -> None:
    """Register the seqhf models with the Auto classes (the command defers it so --help needs no torch)."""
    import seqhf

    seqhf.register_auto_classes()


@contextmanager
def loading_from(*sources):
    """transformers' OSError for a source that is not a folder here (a Hub repo id offline or not found, a
    mistyped path, which transformers also takes for a repo id) becomes one line that names the source."""
    try:
        yield
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        raise  # already named by their own message
    except OSError as err:
        remote = [source for source in sources if source and not Path(source).expanduser().is_dir()]
        if not remote:
            raise
        said = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{', '.join(repr(source) for source in remote)}: no such folder here, and loading it as a "
                         f"Hub repo id failed: {said}") from err


def writable_file(path: Optional[Path]) -> Optional[Path]:
    """`--json FILE`: its folder must exist, said before the evaluation (minutes) rather than after it."""
    if path is not None and not path.expanduser().parent.is_dir():
        raise typer.BadParameter(f"no folder {str(path.expanduser().parent)!r} to write {path.name} in")
    return path


def generate(
    model_dir: Annotated[str, typer.Argument(help="a folder written by `seqhf train charlm` (or a word LM), or a Hub "
                                             "repo id")],
    prompt: Annotated[str, typer.Option(help="text to continue (empty: start from BOS)")] = "",
    max_new_tokens: int = 500,
    temperature: Annotated[float, typer.Option(help="1/alpha of the book; 0 = greedy")] = 1.0,
    seed: Optional[int] = None,
    top_k: Annotated[Optional[int], typer.Option(help="sample from the k most likely tokens (k >= 1)")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="nucleus sampling, in (0, 1]")] = None,
    device: Annotated[Optional[str], typer.Option(help="e.g. cuda; default cpu")] = None,
    adapt_on: Annotated[Optional[Path], typer.Option(help="dynamic evaluation: first adapt a copy of the model to this "
                                                          "text (the saved weights stay)", exists=True, dir_okay=False)] = None,
    adapt_lr: Annotated[Optional[float], typer.Option(help="its learning rate; default: the one tuned in the folder's "
                                                           "eval_results.json, else 0.01")] = None,
):
    """Generate text with a trained LM: prints the prompt followed by its continuation (same --seed, same text).
    A word LM stops at [EOS], the end of a text (said on stderr); an [UNK] it generates is printed as [UNK].
    A backward LM (`train lm --backward`) writes what comes before the prompt: printed before it.

    Example: seqhf generate runs/charlm --prompt "The island" --max-new-tokens 500 --temperature 1.0 --seed 1
    """
    if max_new_tokens <= 0:
        raise typer.BadParameter(f"--max-new-tokens must be positive, got {max_new_tokens}.")
    if temperature < 0:
        raise typer.BadParameter(f"--temperature must be >= 0, got {temperature}.")
    if top_k is not None and top_k < 1:
        raise typer.BadParameter(f"--top-k must be at least 1 (1 = greedy), got {top_k}; leave it out to sample all tokens.")
    if top_p is not None and not 0 < top_p <= 1:
        raise typer.BadParameter(f"--top-p must be in (0, 1], got {top_p}; 1 keeps every token.")
    loads_models()
    from ..inference.generation import check_device, generate_continuation, load_generator, with_prompt

    if adapt_on:
        from ..evaluation.saved import read_text

        adapt_text = read_text(adapt_on)  # before the model: a file that cannot be read stops at once
    with loading_from(model_dir):
        model, tokenizer = load_generator(model_dir, device=check_device(device))
    if adapt_on:
        from ..evaluation.dynamic_eval import adapt_to_text

        lr = adapt_lr
        results = Path(model_dir) / "eval_results.json"
        if lr is None and results.is_file():
            lr = (json.loads(results.read_text()).get("dynamic_eval") or {}).get("lr")
        model = adapt_to_text(model, tokenizer, adapt_text, lr=lr if lr is not None else 0.01).eval()
    text, generated, ended = generate_continuation(model, tokenizer, prompt, max_new_tokens=max_new_tokens,
                                                   temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    print(with_prompt(model, prompt, text))
    if ended:
        typer.echo(f"(The model ended the text with {tokenizer.eos_token} after {generated} of --max-new-tokens "
                   f"{max_new_tokens} tokens.)", err=True)


def evaluate(
    model_dir: Annotated[str, typer.Argument(help="a saved classifier, char LM or word LM folder, or a Hub repo id")],
    dataset: Annotated[Optional[str], typer.Option(help="classifier: a Hub id, dataset folder or data file")] = None,
    text: Annotated[Optional[Path], typer.Option(help="char or word LM: a UTF-8 text file to score", exists=True,
                                                 dir_okay=False)] = None,
    split: Annotated[Optional[str], typer.Option(help="classifier: the split to score (default: test, else validation)")] = None,
    dataset_config: Annotated[Optional[str], typer.Option(help="classifier: the Hub dataset's configuration name")] = None,
    train_split: Annotated[Optional[str], typer.Option(help="classifier: the training split (the classes, the "
                                                            "baseline's fit), as `train classifier` names it")] = None,
    validation_split: Annotated[Optional[str], typer.Option(help="classifier: the validation split, as `train "
                                                                 "classifier` names it")] = None,
    test_split: Annotated[Optional[str], typer.Option(help="classifier: the test split, as `train classifier` "
                                                           "names it")] = None,
    text_column: str = "text",
    label_column: str = "label",
    label_names: Annotated[Optional[str], typer.Option(help="comma list or file, when the dataset's labels are "
                                                            "ints (default: the model's own names)")] = None,
    baseline: Annotated[bool, typer.Option(help="classifier: TF-IDF + LR fitted on the dataset's train split")] = True,
    merge_label_variants: Annotated[bool, typer.Option(
        help="labels that differ only in case or surrounding spaces become one class (as `train classifier` has it)")] = False,
    ngram_train: Annotated[Optional[Path], typer.Option(help="char LM: fit a Kneser-Ney n-gram on this text and score "
                                                             "it beside the model", exists=True, dir_okay=False)] = None,
    max_chars: Annotated[int, typer.Option(help="LM: score at most this many characters", min=2)] = 200_000,
    seq_len: Annotated[Optional[int], typer.Option(help="word LM: tokens a window (default: the one it was trained "
                                                        "and evaluated with)", min=1)] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="also write the figures to this file",
                                                     dir_okay=False, callback=writable_file)] = None,
):
    """Evaluate a saved folder on a dataset (classifier, through pipeline) or a text (char LM: nats per character;
    word LM: perplexity per token as its card reports it, and nats per character), the classic baseline beside it."""
    if (dataset is None) == (text is None):
        raise typer.BadParameter("give --dataset (a classifier) or --text (a char or word LM)")
    loads_models()
    from ..evaluation.saved import evaluate_char_lm, evaluate_classifier, evaluate_word_lm, is_char_tokenizer, read_text

    if dataset:
        data = dict(source=dataset, config=dataset_config, text_column=text_column, label_column=label_column,
                    train_split=train_split, validation_split=validation_split, test_split=test_split,
                    merge_label_variants=merge_label_variants)
        if label_names:
            data["label_names"] = label_names
        with loading_from(model_dir):
            figures = evaluate_classifier(model_dir, data, split=split, baseline=baseline)
        line = f"{figures['evaluated_on']} accuracy {figures['accuracy']:.4f}, macro-F1 {figures['macro_f1']:.4f} ({figures['examples']} texts)"
        base = figures.get("baseline") or {}
        if "accuracy" in base:
            line += f"; baseline {base['method']}: accuracy {base['accuracy']:.4f}, macro-F1 {base['macro_f1']:.4f}"
    else:
        from transformers import AutoTokenizer

        from ..inference.saved_folder import check_saved_folder

        scored, ngram_text = read_text(text), read_text(ngram_train) if ngram_train else None
        with loading_from(model_dir):
            check_saved_folder(model_dir)  # before its tokenizer is read to tell a char LM from a word LM
            if is_char_tokenizer(AutoTokenizer.from_pretrained(model_dir)):
                if seq_len is not None:
                    raise typer.BadParameter("--seq-len is a word LM's window; a char LM is scored as one stream "
                                             "(recurrent) or in windows of its context (Transformer).")
                figures = evaluate_char_lm(model_dir, scored, max_chars=max_chars, ngram_train=ngram_text)
            else:
                figures = evaluate_word_lm(model_dir, scored, seq_len=seq_len, max_chars=max_chars,
                                           ngram_train=ngram_text)
        line = f"{figures['nats_per_char']:.4f} nats/char on {figures['chars']:,} characters"
        if "perplexity" in figures:
            line = (f"perplexity {figures['perplexity']:.2f} on {figures['tokens']:,} tokens (windows of "
                    f"{figures['seq_len']}; {figures['unknown_tokens']:,} [UNK] in the text), {line}")
        if "ngram" in figures:
            line += f"; {figures['ngram']['order']}-gram Kneser-Ney {figures['ngram']['nats_per_char']:.4f}"
    print(line)
    if json_out:
        json_out.write_text(json.dumps(figures, indent=2) + "\n")


@baseline_app.command("tfidf", no_args_is_help=True)
def tfidf(
    dataset: Annotated[str, typer.Option(help="Hub id, dataset folder or data file")],
    dataset_config: Optional[str] = None,
    text_column: str = "text",
    label_column: str = "label",
    label_names: Annotated[Optional[str], typer.Option(help="comma list, or a file with one name a line")] = None,
    train_split: Optional[str] = None,
    validation_split: Optional[str] = None,
    test_split: Optional[str] = None,
    merge_label_variants: Annotated[bool, typer.Option(
        help="labels that differ only in case or surrounding spaces become one class (as `train classifier` has it)")] = False,
    seed: Annotated[int, typer.Option(help="seed of a validation split carved from train")] = 42,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="also write the figures to this file",
                                                     dir_okay=False, callback=writable_file)] = None,
):
    """TF-IDF (word 1-2-grams) + logistic regression, fitted on train and scored on the final split."""
    from ..data.classification import load_classification_data
    from ..evaluation.baseline import tfidf_logistic_regression

    data = load_classification_data(source=dataset, config=dataset_config, text_column=text_column,
                                    label_column=label_column, label_names=label_names, train_split=train_split,
                                    validation_split=validation_split, test_split=test_split, seed=seed,
                                    merge_label_variants=merge_label_variants)
    figures = dict(tfidf_logistic_regression(data), data=data.description)
    print(json.dumps(figures, indent=2))
    if json_out:
        json_out.write_text(json.dumps(figures, indent=2) + "\n")


@baseline_app.command("ngram", no_args_is_help=True)
def ngram(
    text: Annotated[list[Path], typer.Option(help="text file or folder (repeatable); the last 10 % of each is held out")],
    heldout: Annotated[Optional[Path], typer.Option(help="held-out text file instead")] = None,
    order: Annotated[int, typer.Option(min=1)] = 7,
    add_to: Annotated[Optional[list[Path]], typer.Option(help="an eval_results.json of a char-LM run on the same split: "
                                                              "add the n-gram figure to it (repeatable)",
                                                         exists=True, dir_okay=False)] = None,
):
    """A Kneser-Ney character n-gram on a text's held-out part, as the char-LM runs report it."""
    from ..evaluation.ngram import CharKneserNey
    from ..training.charlm_inputs import load_corpus

    runs = {path: read_run(path) for path in add_to or []}  # before the n-gram, which takes minutes on a book
    corpus = load_corpus([str(t) for t in text], heldout and str(heldout))
    train = corpus.train[: int(len(corpus.train) * 0.95)]
    model = CharKneserNey(order).fit(train)
    figure = dict(order=order, method="interpolated Kneser-Ney, modified discounts (seqhf.evaluation.ngram)",
                  train_chars=len(train), heldout_nats_per_char=model.nats_per_char(corpus.heldout))
    print(f"{order}-gram Kneser-Ney: {figure['heldout_nats_per_char']:.4f} nats/char on {len(corpus.heldout):,} "
          f"held-out characters (trained on {len(train):,})")
    for path, run in runs.items():
        if run.get("train_chars") != len(train) or run.get("heldout_chars") != len(corpus.heldout):
            raise ValueError(f"{path} trained on {run.get('train_chars')} / held out {run.get('heldout_chars')} "
                             f"characters, not this split ({len(train)} / {len(corpus.heldout)}).")
        run["ngram"] = dict(figure, added_after_the_run="seqhf baseline ngram, same split")
        path.write_text(json.dumps(run, indent=2))


def read_run(path: Path) -> dict:
    """A char-LM run's eval_results.json (`--add-to`), or a ValueError that names the file."""
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"--add-to {path} is not a JSON file ({err}).") from None
    if not isinstance(run, dict):
        raise ValueError(f"--add-to {path} holds a JSON {type(run).__name__}, not a char-LM run's eval_results.json.")
    return run
