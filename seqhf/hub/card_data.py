"""What a model card shows: the run's eval_results.json and config turned into the template's variables and the card's YAML metadata."""

import json
import math
from pathlib import Path

from huggingface_hub import EvalResult, ModelCardData

from ..data.sources import IMDB_HUB_ID, is_hub_id
from .data_view import data_name, init_lm_view, is_imdb, wordlm_view
from .plots import CONFUSION_NAME, RELIABILITY_NAME

CARD_NAME = "README.md"
CURVES_NAME = "training_curves.png"
EVAL_RESULTS_NAME = "eval_results.json"
TRAINER_STATE_NAME = "trainer_state.json"

TASKS = {
    "classification": dict(
        pipeline_tag="text-classification",
        task_name="Text classification",
        tags=["seqhf", "text-classification"],
        datasets=None,  # the run's own dataset, when it is a Hub id (see `_card_datasets`)
        metrics=["accuracy", "f1"],
        template="classification.md",
    ),
    # Runs recorded before classification generalised (IMDb only).
    "sentiment": dict(
        pipeline_tag="text-classification",
        task_name="Sentiment analysis",
        tags=["seqhf", "sentiment-analysis", "imdb", "movie-reviews"],
        datasets=[IMDB_HUB_ID],
        metrics=["accuracy", "f1"],
        template="classification.md",
    ),
    "charlm": dict(
        pipeline_tag="text-generation",
        task_name="Character-level language modelling",
        tags=["seqhf", "character-level", "language-model", "project-gutenberg"],
        datasets=None,  # no Hub dataset: the card cites Project Gutenberg #1268
        metrics=["bits_per_character", "nats_per_character"],
        template="charlm.md",
    ),
    "wordlm": dict(
        pipeline_tag="text-generation",
        task_name="Word-level language modelling",
        tags=["seqhf", "language-model", "awd-lstm", "ulmfit", "imdb", "movie-reviews"],
        datasets=[IMDB_HUB_ID],
        metrics=["perplexity"],
        template="wordlm.md",
    ),
}




GUTENBERG_URL = "https://www.gutenberg.org/ebooks/1268"


IMDB_EXAMPLE = "A moving story, beautifully shot, with a cast at the top of its game."


# Config fields shown on the card, in this order, when the config has them.
CONFIG_FIELDS = (
    "vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "intermediate_size", "hidden_act", "max_position_embeddings", "position_embedding_type", "pre_norm",
    "bidirectional", "rnn_type", "pooling",
    "classifier_hidden_size", "classifier_activation", "embedding_dropout", "hidden_dropout",
    "classifier_dropout", "attention_dropout", "word_dropout", "weight_dropout", "output_dropout", "locked_dropout",
    "tie_word_embeddings", "num_labels",
)  # fmt: skip


OPTIONAL_CONFIG_FIELDS = ("word_dropout", "weight_dropout", "output_dropout", "locked_dropout")  # shown when set


def _human_count(n):
    if n is None:
        return "unknown"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _human_seconds(seconds):
    if seconds is None:
        return "not recorded"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def describe_architecture(config: dict) -> str:
    """One line such as 'embedding 128 → 2 × bidirectional LSTM 256 → concat pooling → linear classifier'."""
    model_type = config.get("model_type", "unknown")
    archs = config.get("architectures") or []
    if model_type == "seqhf-lstm":
        rnn = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}.get(config.get("rnn_type"), config.get("rnn_type"))
        layers = config.get("num_hidden_layers", 1)
        stack = f"{layers} × " if layers and layers > 1 else ""
        direction = "bidirectional " if config.get("bidirectional") else ""
        parts = [f"embedding {config.get('embedding_size')}", f"{stack}{direction}{rnn} {config.get('hidden_size')}"]
        if any("CausalLM" in a for a in archs):
            parts.append(f"linear head over {config.get('vocab_size')} tokens")
        else:
            parts.append(f"{config.get('pooling', 'last')} pooling")
            if config.get("classifier_hidden_size"):
                act = config.get("classifier_activation", "relu")
                parts.append(f"dense {config['classifier_hidden_size']} ({act})")
            parts.append(f"linear classifier ({len(config.get('id2label') or {}) or 2} labels)")
        return " → ".join(parts)
    if model_type == "seqhf-transformer":
        norm = "pre-norm" if config.get("pre_norm", True) else "post-norm"
        parts = [
            f"embedding {config.get('hidden_size')} + {config.get('position_embedding_type')} positions "
            f"(up to {config.get('max_position_embeddings')})",
            f"{config.get('num_hidden_layers')} × {norm} Transformer layer ({config.get('num_attention_heads')} heads, "
            f"feed-forward {config.get('intermediate_size')}, {config.get('hidden_act')})",
        ]
        if any("CausalLM" in a for a in archs):
            parts.append(f"causal attention, linear head over {config.get('vocab_size')} tokens")
        else:
            parts += [f"{config.get('pooling')} pooling", f"linear classifier ({len(config.get('id2label') or {}) or 2} labels)"]
        return " → ".join(parts)
    return f"{archs[0] if archs else 'model'} (`{model_type}`)"


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "—" if value is None else str(value)


def _config_rows(config: dict):
    fields = CONFIG_FIELDS
    if any("CausalLM" in a for a in config.get("architectures") or []):
        fields = [f for f in fields if f != "pooling" and not f.startswith("classifier_")]
    return [(k, _fmt(config[k])) for k in fields if k in config and (config[k] or k not in OPTIONAL_CONFIG_FIELDS)]


def _tbptt_mode(value):
    """The TBPTT mode as recorded by training ("stateful"), or None when every window starts from a zero
    state ("windows", the book's way)."""
    if value in (None, False, "", 0) or str(value).lower() in ("windows", "none", "off", "false", "no"):
        return None
    return "on" if value is True else str(value)


def classification_view(results: dict) -> dict:
    """What the card and the model-index show of a classifier's run: where its data came from, the split
    its final figures are on, and those figures (runs recorded before any-dataset training included)."""
    data = results.get("data") or {}
    source = str(data.get("source") or results.get("dataset") or "")
    split = results.get("evaluated_on", "test")
    imdb = is_imdb(source)
    hub_id = is_hub_id(source) and not Path(source).exists()
    figures = {key: results.get(f"{split}_{key}") for key in
               ("accuracy", "f1", "macro_f1", "micro_f1", "loss", "examples", "per_class",
                "ece", "nll", "ece_uncalibrated", "nll_uncalibrated", "ece_floor")}
    return dict(
        imdb=imdb, split=split, figures=figures, data=data, hub_id=hub_id,
        dataset_id=IMDB_HUB_ID if imdb else (source if hub_id else Path(source).name or "local"),
        data_name=data_name(source),
        best_validation_metric=results.get("best_validation_metric", "accuracy"),
        best_validation=results.get("best_validation_value", results.get("best_validation_accuracy")),
    )


def eval_results_for_card(task: str, results: dict) -> list:
    """The model-index entries (task, dataset, split, metric, value) for a finished run."""
    spec = TASKS[task]
    if task in ("sentiment", "classification"):
        view = classification_view(results)
        split = view["split"]
        common = dict(
            task_type=spec["pipeline_tag"], task_name=spec["task_name"], dataset_type=view["dataset_id"],
            dataset_name=view["data_name"], dataset_split=split,
        )  # fmt: skip
        if view["imdb"]:
            common["dataset_config"] = "plain_text"
        labels = results.get("labels") or []
        metrics = [("accuracy", f"{split.capitalize()} accuracy", f"{split}_accuracy"),
                   ("f1", f"{split.capitalize()} macro-F1", f"{split}_macro_f1")]
        if not results.get("multi_label") and len(labels) in (0, 2):  # otherwise `f1` is the macro-F1 again
            positive = f" ({labels[1]})" if labels else ""
            metrics.insert(1, ("f1", f"{split.capitalize()} F1{positive}", f"{split}_f1"))
    elif task == "wordlm":
        view = wordlm_view(results)
        common = dict(task_type=spec["pipeline_tag"], task_name=spec["task_name"], dataset_name=view["data_name"])
        if view["imdb"]:
            common.update(dataset_type=IMDB_HUB_ID, dataset_config="plain_text",
                          dataset_split="held-out reviews carved from train (never trained on)")
        else:
            common.update(dataset_type=view["dataset_id"], dataset_split=view["heldout_split"])
        metrics = [("perplexity", "Held-out perplexity (full softmax)", "heldout_perplexity")]
    else:
        if is_island_run(results):
            dataset = dict(dataset_type="gutenberg-1268", dataset_name="The Mysterious Island (Project Gutenberg #1268)",
                           dataset_split="heldout (last 10%)")
        else:
            dataset = dict(dataset_type="text", dataset_name=describe_char_sources(results),
                           dataset_split=f"heldout ({results['heldout_source']})" if results.get("heldout_source")
                           else "heldout (last 10% of each text)")
        common = dict(task_type=spec["pipeline_tag"], task_name=spec["task_name"], **dataset)
        # The headline nats figure is one of the two readings (the stream for an RNN): named as it, listed once.
        readings = [(f"{results.get('seq_len')}-character windows", "heldout_window_nats_per_char"),
                     ("one stream", "heldout_stream_nats_per_char")]
        headline = next((name for name, key in readings
                         if results.get(key) is not None and results[key] == results.get("heldout_nats_per_char")), None)
        metrics = [
            ("bits_per_character", "Held-out bits per character", "heldout_bits_per_char"),
            ("nats_per_character", f"Held-out nats per character, {headline}" if headline
             else "Held-out nats per character", "heldout_nats_per_char"),
        ] + [("nats_per_character", f"Held-out nats per character, {name}", key) for name, key in readings
             if name != headline]
        dynamic = results.get("dynamic_eval") or {}
        if dynamic.get("heldout_chars") == results.get("heldout_chars"):  # the whole held-out text, not a part
            results = dict(results, _dynamic=dynamic.get("heldout_nats_per_char"))
            metrics.append(("nats_per_character", "Held-out nats per character, dynamic evaluation", "_dynamic"))
    return [
        EvalResult(metric_type=mtype, metric_name=mname, metric_value=float(results[key]), **common)
        for mtype, mname, key in metrics
        if results.get(key) is not None
    ]


def is_island_run(results: dict) -> bool:
    """Whether a char-LM run read Gutenberg #1268 with the chapter's cut (runs before the key existed did)."""
    return results.get("gutenberg_1268", True)


def describe_char_sources(results: dict) -> str:
    """The char LM's training texts in a few words: file names (or the dataset) and their sizes."""
    sources = results.get("sources") or []
    names = [f"{s['name']} ({s['chars']:,} characters)" for s in sources[:5]]
    more = f" and {len(sources) - 5} more" if len(sources) > 5 else ""
    return ", ".join(names) + more if names else str(results.get("dataset", "unknown text"))


def describe_budget_stop(results: dict) -> str | None:
    """The sentence saying that a time or CPU budget stopped training, when one did."""
    cpu = f"CPU budget ({_fmt(results.get('cpu_budget_s'))} CPU seconds of the process, setup included)"
    wall = f"time budget ({_fmt(results.get('time_budget_s'))} seconds of training)"
    if results.get("stopped_by_cpu_budget"):
        budget = cpu
    elif not results.get("stopped_by_time_budget"):
        return None
    elif "stopped_by_cpu_budget" in results or not results.get("cpu_budget_s"):
        budget = wall
    else:  # a word LM recorded before the two budgets were told apart
        budget = f"{wall} or its {cpu}" if results.get("time_budget_s") else cpu
    args = results.get("train_args") or {}
    epochs = args.get("num_train_epochs")
    planned = (f"{args['max_steps']:,} steps" if (args.get("max_steps") or 0) > 0
               else f"{_fmt(epochs)} epoch{'' if epochs == 1 else 's'}")
    done = f"{_fmt(results.get('epochs'))} epochs"
    if results.get("train_steps") is not None:
        done = f"{results['train_steps']:,} steps ({done})"
    return (f"Training was stopped by its {budget} after {done} of the {planned} planned: the figures below are "
            "those of this shortened run.")


def build_card_data(task: str, results: dict, model_name: str, final: bool = True) -> ModelCardData:
    """The card's YAML metadata. The model-index is built only for a finished run (`final`)."""
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r} in {EVAL_RESULTS_NAME}; expected one of {sorted(TASKS)}.")
    spec = TASKS[task]
    tags = list(spec["tags"]) + [t for t in (results.get("model_type"), results.get("preset")) if t]
    datasets = spec["datasets"]
    if task == "classification":
        view = classification_view(results)
        datasets = [view["dataset_id"]] if view["imdb"] or view["hub_id"] else None
        tags += ["sentiment-analysis", "imdb", "movie-reviews"] if view["imdb"] else []
        tags += ["multi-label"] if results.get("multi_label") else []
    if task == "wordlm":
        view = wordlm_view(results)
        datasets = [IMDB_HUB_ID] if view["imdb"] else [view["dataset_id"]] if view["hub_id"] else None
        tags = [t for t in tags if view["imdb"] or t not in ("imdb", "movie-reviews")]
    if task == "charlm" and not any(s.get("cut", "").startswith("gutenberg") for s in results.get("sources") or [{"cut": "gutenberg"}]):
        tags.remove("project-gutenberg")
    if results.get("quick"):
        tags.append("quick-run")
    return ModelCardData(
        model_name=model_name,
        library_name="transformers",
        pipeline_tag=spec["pipeline_tag"],
        license="apache-2.0",
        language="en",
        tags=tags,
        datasets=datasets,
        metrics=spec["metrics"],
        eval_results=eval_results_for_card(task, results) if final else None,
    )


def _eval_table(log_history):
    """Columns and rows of the evaluation entries in the Trainer's log history (at most 25 rows)."""
    evals = [e for e in log_history or [] if any(k.startswith("eval_") for k in e)]
    skip = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")
    cols = sorted({k for e in evals for k in e if k.startswith("eval_") and k not in skip})
    if len(evals) > 25:
        sampled = evals[:: math.ceil(len(evals) / 25)]
        evals = sampled if sampled[-1] is evals[-1] else sampled + [evals[-1]]  # always show the last one
    rows = [[e.get("epoch"), e.get("step")] + [e.get(c) for c in cols] for e in evals]
    return cols, [[_fmt(v) for v in row] for row in rows]


def classification_card_fields(task: str, results: dict, folder: Path) -> dict:
    """The classification template's own variables (none for a char LM)."""
    if task not in ("sentiment", "classification"):
        return {}
    view = classification_view(results)
    return dict(
        imdb=view["imdb"], data_name=view["data_name"], d=_DataView(view["data"]), split=view["split"],
        m=view["figures"], best_validation=view["best_validation"],
        best_validation_metric=view["best_validation_metric"],
        confusion=CONFUSION_NAME if (folder / CONFUSION_NAME).is_file() else None,
        reliability=RELIABILITY_NAME if (folder / RELIABILITY_NAME).is_file() else None,
        example_text=IMDB_EXAMPLE if view["imdb"] else "Write the text to classify here.",
        **init_lm_view(results.get("init_from")),
    )


class _DataView(dict):
    """The run's data description, with defaults for runs recorded before it existed."""

    def __getattr__(self, key):
        defaults = dict(split_names={}, split_sizes={}, validation_carved_from_train=True, unlabelled_texts=0)
        return self.get(key, defaults.get(key))


def _read_json(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
