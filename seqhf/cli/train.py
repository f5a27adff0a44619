"""`seqhf train classifier | charlm | lm`: the three training tasks, with the options the library takes."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from enum import Enum

app = typer.Typer(help="Train a classifier, a character LM or a word LM through transformers.Trainer.",
                  no_args_is_help=True)

def choices(name: str, values: tuple) -> type[Enum]:
    """An Enum of `values`, which typer shows and checks as a choice."""
    return Enum(name, {value: value for value in values}, type=str)


ClassifierPreset = choices("ClassifierPreset", ("lstm", "transformer", "book", "ulmfit", "ulmfit-cpu",
                                                 "ulmfit-cpu-word2vec", "ulmfit-cpu-all", "ulmfit-small"))
CharLMPreset = choices("CharLMPreset", ("lstm", "transformer", "book", "cpu"))
WordLMPreset = choices("WordLMPreset", ("lstm", "cpu", "cpu-full", "cpu-ab"))
Tbptt = choices("Tbptt", ("windows", "stateful"))
Softmax = choices("Softmax", ("full", "sampled"))


def value(option):
    """An Enum option's string (None stays None)."""
    return option.value if isinstance(option, Enum) else option


def start_run() -> None:
    """Threads and progress output for a training run (after the options are parsed)."""
    from ..utils.runtime import configure_run
    from .evaluate import loads_models

    configure_run()
    loads_models()  # saved folders carry the code files named in auto_map


def speaks() -> bool:
    from ..utils.runtime import is_main_process

    return is_main_process()


# The arguments `seqhf` was called with (set by `app.main`): what --processes re-launches in each process.
INVOCATION: list[str] = []

PROCESSES_HELP = ("training processes on this machine: a number, or auto (one per free core without a GPU, 1 with one); "
                  "more than 1 re-launches the command through accelerate launch (gloo DDP on a CPU, one torch thread "
                  "each)")


def in_processes(processes: Optional[str], default, output_dir: Path, resume: bool,
                 batch: Optional[int] = None) -> Optional[int]:
    """None: train in this process. Otherwise the command ran in several processes (accelerate launch) and this
    is their exit code. Processes that a launcher started always train where they are."""
    from ..utils.launch import AUTO, choose_processes, launched, parse_processes, relaunch

    if launched():
        return None
    try:
        requested = parse_processes(processes if processes is not None else default)
    except ValueError as err:
        raise typer.BadParameter(str(err).removeprefix("--processes "), param_hint="--processes") from None
    if resume:  # the streams and the data of a step depend on the count: go on with the checkpoint's
        from ..training.run_folder import checkpoint_processes, last_complete_checkpoint

        last, _ = last_complete_checkpoint(output_dir)
        trained = checkpoint_processes(last) if last is not None else None
        if trained is not None and processes is not None and requested not in (AUTO, trained):
            raise typer.BadParameter(f"{requested}, but {last.name} was trained by {trained} process(es): resume "
                                     f"with --processes {trained}", param_hint="--processes")
        if trained is not None and requested != trained:
            requested = trained
            print(f"--resume: {last.name} was trained by {trained} process(es); so is the rest of the run.")
    if requested == 1:
        return None
    try:
        count, why = choose_processes(requested, batch)
    except ValueError as err:
        raise typer.BadParameter(str(err).removeprefix("--processes "), param_hint="--processes") from None
    print(f"training processes: {count} ({why})", flush=True)
    if count == 1:
        return None
    if not INVOCATION:
        raise typer.BadParameter("several processes re-launch the command line: run it as `seqhf train ...`",
                                 param_hint="--processes")
    return relaunch(count, INVOCATION)


@app.command("classifier", no_args_is_help=True)
def classifier(
    dataset: Annotated[str, typer.Option(help="Hub id, dataset folder, or one .csv/.tsv/.json/.jsonl/.parquet/.txt file "
                                              "(stanfordnlp/imdb for the chapter's project)")],
    output_dir: Annotated[Path, typer.Option(help="where the model folder, card and figures go")],
    model: Annotated[ClassifierPreset, typer.Option(help="preset (ulmfit* go with --init-from)")] = "lstm",
    dataset_config: Annotated[Optional[str], typer.Option(help="the Hub dataset's configuration name")] = None,
    text_column: str = "text",
    label_column: str = "label",
    label_names: Annotated[Optional[str], typer.Option(
        help="comma list, or a file with one name a line, in the order of the sorted label values "
             "(IMDb: negative,positive)")] = None,
    train_split: Annotated[Optional[str], typer.Option(help="default: train")] = None,
    validation_split: Annotated[Optional[str], typer.Option(help="default: validation/valid/dev, else carved from train")] = None,
    test_split: Annotated[Optional[str], typer.Option(help="default: test, else the final figures are on validation")] = None,
    unlabelled_split: Annotated[Optional[str], typer.Option(
        help="texts without labels for the word vectors, or ulmfit-small's own LMs (default: unsupervised/unlabelled when present)")] = None,
    merge_label_variants: Annotated[bool, typer.Option(
        help="labels that differ only in case or surrounding spaces (pos / Pos / POS) become one class, spelt as "
             "most of its rows spell it (refused otherwise)")] = False,
    unlabelled_data: Annotated[Optional[list[str]], typer.Option(
        help="extra unlabelled text for the word vectors, or ulmfit-small's own LMs (repeat the option): dataset folders, data files, "
             "Hub ids, .txt files or folders of them")] = None,
    unlabelled_text_column: Annotated[str, typer.Option(help="the text column of --unlabelled-data datasets")] = "text",
    unlabelled_data_split: Annotated[Optional[str], typer.Option(help="the split of --unlabelled-data datasets to read")] = None,
    word_vector_train_repeats: Annotated[int, typer.Option(help="word2vec reads the training texts K times", min=1)] = 1,
    pretrained_vectors: Annotated[Optional[str], typer.Option(
        metavar="NAME|FILE",
        help="word vectors of general text that start part of each embedding row, their 100,000 most frequent words "
             "added to the vocabulary: glove-6b-50d or a GloVe/word2vec file; none: no vectors. Default: the lstm "
             "preset's small-data rule takes glove-6b-50d for English text (90 % of its words GloVe's)")] = None,
    quick: Annotated[bool, typer.Option(help="small preset for a smoke test")] = False,
    epochs: Annotated[Optional[int], typer.Option(help="default: the preset's")] = None,
    cpu_budget_s: Annotated[Optional[float], typer.Option(help="stop training after this many CPU seconds")] = None,
    max_grad_norm: Annotated[float, typer.Option(help="gradient clipping threshold; 0 disables it")] = 1.0,
    seed: int = 42,
    resume: Annotated[bool, typer.Option(help="continue from the last complete checkpoint in --output-dir")] = False,
    init_from: Annotated[Optional[Path], typer.Option(help="fine-tune from this word LM folder (seqhf train lm), ULMFiT's way")] = None,
    init_from_backward: Annotated[Optional[Path], typer.Option(
        help="with --init-from: a backward LM of the same texts (seqhf train lm --backward); the classifier is "
             "bidirectional, each direction starting as its LM (preset ulmfit-small for a small labelled set)")] = None,
    general_lm: Annotated[Optional[Path], typer.Option(
        help="with ulmfit-small's own LMs: fine-tune its forward LM from this word LM of general text (seqhf train "
             "lm), ULMFiT's second stage; with --general-lm-backward")] = None,
    general_lm_backward: Annotated[Optional[Path], typer.Option(
        help="the backward word LM of general text (seqhf train lm --backward) its backward LM starts from")] = None,
    processes: Annotated[Optional[str], typer.Option(metavar="N|auto", help=PROCESSES_HELP + "; default: 1")] = None,
    baseline: Annotated[Optional[bool], typer.Option(
        help="fit the TF-IDF + logistic-regression baseline beside the model (default: on, off with --streaming)")] = None,
    streaming: Annotated[bool, typer.Option(
        help="data larger than memory: nothing that holds every text in memory runs (the TF-IDF baseline is off; "
             "--baseline is refused)")] = False,
):
    """Train a text classifier on any dataset (runs unchanged under `accelerate launch -m seqhf`)."""
    if streaming and baseline:
        raise typer.BadParameter("--streaming leaves out the TF-IDF baseline, which holds every training text's "
                                 "n-gram counts in memory: drop --baseline (or --streaming)")
    from ..training.presets import get_preset

    batch = get_preset("sentiment", value(model), quick)["train"]["batch_size"]  # a step's, shared out
    code = in_processes(processes, 1, output_dir, resume, batch=batch)
    if code is not None:
        return code
    start_run()
    from ..hub.card_data import is_imdb
    from ..training.classifier import IMDB_LABELS, train_classifier

    if label_names is None and is_imdb(dataset):  # the chapter's project: IMDb's labels 0/1 are named
        label_names = ",".join(IMDB_LABELS)
    data = dict(source=dataset, config=dataset_config, text_column=text_column, label_column=label_column,
                label_names=label_names, train_split=train_split, validation_split=validation_split,
                test_split=test_split, unlabelled_split=unlabelled_split,
                merge_label_variants=merge_label_variants)
    unlabelled = (dict(sources=unlabelled_data, text_column=unlabelled_text_column, split=unlabelled_data_split)
                  if unlabelled_data else None)
    if baseline is None:
        baseline = not streaming
    results = train_classifier(data, value(model), str(output_dir), quick=quick, epochs=epochs, max_grad_norm=max_grad_norm,
                               seed=seed, resume=resume, baseline=baseline, init_from=init_from and str(init_from),
                               init_from_backward=init_from_backward and str(init_from_backward),
                               cpu_budget_s=cpu_budget_s, unlabelled_data=unlabelled,
                               word_vector_train_repeats=word_vector_train_repeats, streaming=streaming,
                               pretrained_vectors=pretrained_vectors,
                               general_lms=(general_lm or general_lm_backward) and [str(general_lm or ""),
                                                                                   str(general_lm_backward or "")])
    if speaks():
        print(classifier_summary(results) + f" -> {output_dir}")


def classifier_summary(results: dict) -> str:
    split = results["evaluated_on"]
    line = (f"{split} accuracy {results[f'{split}_accuracy']:.4f}  F1 {results[f'{split}_f1']:.4f}  "
            f"macro-F1 {results[f'{split}_macro_f1']:.4f}  ({results[f'{split}_examples']} texts, "
            f"{results['wall_time_s']:.0f} s)")
    base = results.get("baseline")
    if base and base.get("failed"):
        line += f"\nbaseline ({base['method']}) failed: {base['failed']}"
    elif base and "accuracy" in base:
        line += (f"\nbaseline on the same splits, {base['method']}: accuracy {base['accuracy']:.4f}, "
                 f"macro-F1 {base['macro_f1']:.4f}")
    return line


@app.command("charlm", no_args_is_help=True)
def charlm(
    output_dir: Annotated[Path, typer.Option(help="where the model folder, card and figures go")],
    text: Annotated[Optional[list[Path]], typer.Option(help="a UTF-8 text file or a folder of .txt files (repeat the "
                                                           "option for several); the last 10 % of each is held out")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="instead of --text: a Hub id or local dataset with a text column")] = None,
    model: Annotated[CharLMPreset, typer.Option(help="preset")] = "lstm",
    text_column: Annotated[str, typer.Option(help="the column of --dataset (and of --also-eval) to read")] = "text",
    dataset_split: Annotated[str, typer.Option(help="the split of --dataset to read")] = "train",
    max_chars: Annotated[Optional[int], typer.Option(help="read only the first N characters of --dataset")] = None,
    heldout: Annotated[Optional[Path], typer.Option(help="held-out text file (default: the last 10 % of each text)")] = None,
    also_eval: Annotated[Optional[str], typer.Option(help="a text the model never saw: FILE.txt or DATASET[:SPLIT]")] = None,
    also_eval_chars: Annotated[int, typer.Option(help="characters of --also-eval to score")] = 100_000,
    dynamic_eval: Annotated[bool, typer.Option(help="dynamic evaluation (minutes on a CPU)")] = True,
    ngram_order: Annotated[int, typer.Option(help="order of the Kneser-Ney baseline")] = 7,
    eval_max_chars: Annotated[Optional[int], typer.Option(
        help="held-out (and validation) characters the final evaluations score; 0: all (default 1,000,000)")] = None,
    ngram_train_chars: Annotated[Optional[int], typer.Option(
        help="training characters the n-gram counts; 0: all (default 2,000,000)")] = None,
    dynamic_eval_chars: Annotated[Optional[int], typer.Option(
        help="held-out characters dynamic evaluation reads; 0: all (default 200,000; --quick 20,000)")] = None,
    quick: Annotated[bool, typer.Option(help="small preset: 300k-600k training characters, 2 epochs (cpu: 1)")] = False,
    streaming: Annotated[bool, typer.Option(
        help="text larger than memory: --text files read a chunk at a time, their ids memory-mapped from disk")] = False,
    tbptt: Annotated[Optional[Tbptt], typer.Option(help="truncated backprop through time; default: the preset's")] = None,
    seq_len: Annotated[Optional[int], typer.Option(help="characters per chunk; default: the preset's")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="default: the preset's")] = None,
    max_grad_norm: Annotated[float, typer.Option(help="gradient clipping threshold; 0 disables it")] = 1.0,
    seed: int = 42,
    resume: Annotated[bool, typer.Option(help="continue from the last complete checkpoint in --output-dir")] = False,
    max_steps: Annotated[int, typer.Option(help="stop after this many optimizer steps (overrides --epochs)")] = -1,
    processes: Annotated[Optional[str], typer.Option(
        metavar="N|auto", help=PROCESSES_HELP + "; default: the preset's (cpu: auto, the others: 1)")] = None,
):
    """Train a character language model on any text, with an n-gram baseline on the same held-out text."""
    if text and dataset:
        raise typer.BadParameter("give --text or --dataset, not both")
    if not text and not dataset:
        raise typer.BadParameter("give the text to learn: --text FILE_OR_FOLDER (repeatable) or --dataset")
    from ..training.presets import get_preset

    preset = get_preset("charlm", value(model), quick)
    code = in_processes(processes, preset.get("processes", 1), output_dir, resume, batch=preset["train"]["batch_size"])
    if code is not None:
        return code
    start_run()
    from ..training.charlm import train_charlm

    results = train_charlm(value(model), [str(t) for t in text] if text else None, str(output_dir),
                           heldout=heldout and str(heldout), dataset=dataset, text_column=text_column,
                           dataset_split=dataset_split, max_chars=max_chars, quick=quick, tbptt=value(tbptt), seq_len=seq_len,
                           epochs=epochs, max_grad_norm=max_grad_norm, seed=seed, resume=resume,
                           ngram_order=ngram_order, dynamic=dynamic_eval, also_eval=also_eval,
                           also_eval_chars=also_eval_chars, eval_max_chars=eval_max_chars,
                           ngram_train_chars=ngram_train_chars, dynamic_eval_chars=dynamic_eval_chars,
                           streaming=streaming, max_steps=max_steps)
    if speaks():
        print(charlm_summary(results) + f" -> {output_dir}")


def count_or_all(text: str, option: str):
    """A positive whole number from the command line, or "all"."""
    if text.strip().lower() == "all":
        return "all"
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise typer.BadParameter(f"a positive number or 'all', got {text!r}", param_hint=option)
    return count


def trained_by(train_args: dict) -> str:
    """How many processes trained, and the batch of one optimizer step: `2 training process(es), batch 16 a step (8 each)`."""
    processes, rows = train_args.get("world_size", 1), train_args["per_device_train_batch_size"]
    if train_args.get("split_batches"):  # the step's batch is shared out
        share = f" ({rows // processes} each)" if processes > 1 else ""
        return f"{processes} training process(es), batch {rows} a step{share}"
    step = processes * rows * train_args.get("gradient_accumulation_steps", 1)
    return f"{processes} training process(es) x batch {rows} = {step} rows a step"


def charlm_summary(r: dict) -> str:
    stream = r["heldout_stream_nats_per_char"]
    lines = [f"held-out {r['heldout_nats_per_char']:.4f} nats/char ({r['heldout_bits_per_char']:.3f} bits), "
             f"windows {r['heldout_window_nats_per_char']:.4f}" + (f", stream {stream:.4f}" if stream is not None else "")
             + f"; unigram entropy {r['unigram_entropy_nats']:.3f}; {r['heldout_unknown_chars']} held-out [UNK]; "
             f"{r['wall_time_s']:.0f} s, {trained_by(r['train_args'])}"]
    if "ngram" in r:
        lines.append(f"{r['ngram']['order']}-gram Kneser-Ney {r['ngram']['heldout_nats_per_char']:.4f}; mixture "
                     f"(neural weight {r['mixture']['neural_weight']:.2f}) {r['mixture']['heldout_nats_per_char']:.4f}")
    if "dynamic_eval" in r:
        d = r["dynamic_eval"]
        lines.append(f"dynamic evaluation (lr {d['lr']:g}) {d['heldout_nats_per_char']:.4f} "
                     f"(static {d['heldout_static_nats_per_char']:.4f} on the same {d['heldout_chars']:,} characters)")
    if "second_text" in r:
        s = r["second_text"]
        lines.append(f"{s['name']}: {s['nats_per_char']:.4f} nats/char (n-gram {s['ngram_nats_per_char']:.4f})")
    return "\n".join(lines)


@app.command("lm", no_args_is_help=True)
def word_lm(
    output_dir: Annotated[Path, typer.Option(help="where the LM folder goes (then: seqhf train classifier --init-from)")],
    dataset: Annotated[str, typer.Option(
        help="the text to learn: Hub id, dataset folder, or one .csv/.tsv/.json/.jsonl/.parquet file (its --text-column, "
             "every split but test and validation), or a .txt file or folder of them (paragraphs); data in the stanfordnlp/imdb layout gives "
             "its training + unlabelled reviews")] = "stanfordnlp/imdb",
    text_column: Annotated[str, typer.Option(help="the column of --dataset to read")] = "text",
    dataset_split: Annotated[Optional[str], typer.Option(help="the split of --dataset to read (default: every split but test and validation)")] = None,
    dataset_config: Annotated[Optional[str], typer.Option(help="the Hub dataset's configuration name")] = None,
    model: Annotated[WordLMPreset, typer.Option(help="preset: lstm (for a GPU), cpu (sampled softmax), cpu-full, cpu-ab")] = "lstm",
    quick: Annotated[bool, typer.Option(help="tiny preset: 600 texts, 32 units, one epoch")] = False,
    softmax: Annotated[Optional[Softmax], typer.Option(help="training loss; default: the preset's")] = None,
    seq_len: Annotated[Optional[int], typer.Option(help="tokens per training window; default: the preset's")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="default: the preset's")] = None,
    max_steps: Annotated[int, typer.Option(help="stop after this many optimizer steps (overrides --epochs)")] = -1,
    time_budget_min: Annotated[Optional[float], typer.Option(help="stop training after this many minutes")] = None,
    cpu_budget_s: Annotated[Optional[float], typer.Option(help="stop training after this many CPU seconds")] = None,
    max_grad_norm: Annotated[float, typer.Option(help="gradient clipping threshold; 0 disables it")] = 1.0,
    seed: int = 42,
    resume: Annotated[bool, typer.Option(help="continue from the last complete checkpoint in --output-dir")] = False,
    processes: Annotated[Optional[str], typer.Option(
        metavar="N|auto", help=PROCESSES_HELP + "; with the full softmax only (cpu-full, lstm); default: 1")] = None,
    backward: Annotated[bool, typer.Option(
        help="read each text from its last word to its first: with a forward LM of the same text, the start of a "
             "bidirectional classifier (seqhf train classifier --init-from FWD --init-from-backward BWD)")] = False,
    init_from: Annotated[Optional[Path], typer.Option(
        help="fine-tune this word LM folder (pretrained on general text) on --dataset instead of starting from "
             "scratch, ULMFiT's second stage: its shape, the preset's vocabulary size and training; words it "
             "knows keep their vectors")] = None,
    max_texts: Annotated[Optional[str], typer.Option(
        metavar="N|all", help="train on at most N texts (a sample with seed 42; in the stanfordnlp/imdb layout, N "
             "unlabelled reviews), or all of them; default: the preset's cap (20,000 for cpu, cpu-full, cpu-ab; "
             "none for lstm)")] = None,
):
    """Pretrain a word-level LSTM LM on any text (ULMFiT's first half), or fine-tune one on new text
    (--init-from); by default IMDb's reviews."""
    if time_budget_min is not None and time_budget_min <= 0:
        raise typer.BadParameter(f"must be positive, got {time_budget_min:g}", param_hint="--time-budget-min")
    texts_cap = None if max_texts is None else count_or_all(max_texts, "--max-texts")
    from ..training.presets import get_preset

    preset = get_preset("wordlm", value(model), quick)
    if processes not in (None, "1") and (value(softmax) or preset.get("softmax", "full")) == "sampled":
        raise typer.BadParameter(f"{processes}: the sampled softmax trains in one process; add --softmax full (or "
                                 "use --model cpu-full)", param_hint="--processes")
    code = in_processes(processes, 1, output_dir, resume, batch=preset["train"]["batch_size"])
    if code is not None:
        return code
    start_run()
    from ..training.wordlm import train_wordlm

    results = train_wordlm(value(model), dataset, str(output_dir), text_column=text_column, dataset_split=dataset_split,
                           dataset_config=dataset_config, quick=quick, softmax=value(softmax), seq_len=seq_len, epochs=epochs,
                           max_steps=max_steps, max_grad_norm=max_grad_norm, seed=seed, resume=resume,
                           time_budget_s=time_budget_min * 60 if time_budget_min is not None else None, cpu_budget_s=cpu_budget_s,
                           backward=backward, init_from=init_from and str(init_from),
                           max_texts=texts_cap)
    if speaks():
        print(f"held-out perplexity {results['heldout_perplexity']:.1f} ({results['heldout_tokens']:,} tokens), "
              f"{results['train_tokens_per_second']:,.0f} training tokens/s, {results['wall_time_s']:.0f} s, "
              f"{trained_by(results['train_args'])} -> {output_dir}")
