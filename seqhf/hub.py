"""Model cards and Hub publishing for trained seqhf folders.

`write_model_card(folder)` renders `model_cards/<task>.md` (Jinja, via `huggingface_hub.ModelCard.from_template`)
from the run's `eval_results.json`, `config.json` and, when present, `trainer_state.json`, and writes `README.md`.
`validate_repo_folder(folder)` checks that a folder is a complete, pickle-free model repository, and
`push_folder(folder, repo_id)` publishes it with one `HfApi.upload_folder` commit.
`attach_model_card(trainer, run_info)` makes the Trainer's own `push_to_hub` path carry the same card.
"""

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, get_token
from transformers import TrainerCallback

from .data import is_hub_id
from .plots import CONFUSION_NAME, final_figures, plot_training_curves

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "model_cards"
CARD_NAME = "README.md"
CURVES_NAME = "training_curves.png"
EVAL_RESULTS_NAME = "eval_results.json"
TRAINER_STATE_NAME = "trainer_state.json"
IMDB_HUB_ID = "stanfordnlp/imdb"
GUTENBERG_URL = "https://www.gutenberg.org/ebooks/1268"
IMDB_EXAMPLE = "A moving story, beautifully shot, with a cast at the top of its game."

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

# Pickle-based formats: never published (they run code when loaded). Weights go out as safetensors only.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
# Trainer bookkeeping left in an output folder, not part of the model repository. `training_args.bin`
# is a pickle of TrainingArguments; the card and eval_results.json carry the same arguments as text.
SKIPPED_NAMES = ("training_args.bin",)
SKIPPED_DIR_PREFIXES = ("checkpoint-", ".", "_", "hf_modules")

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


class FolderNotReadyError(ValueError):
    """The folder is not a complete, safe model repository; `.problems` lists everything wrong."""

    def __init__(self, folder, problems):
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{folder} is not ready to be pushed; nothing was uploaded. Missing or refused:\n{listing}")


class MissingTokenError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------------- card


def _read_json(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


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


def is_imdb(source) -> bool:
    """The chapter's dataset: the Hub's stanfordnlp/imdb or a local copy in a folder named imdb."""
    return str(source).lower() == IMDB_HUB_ID or Path(str(source)).name.lower() == "imdb"


def classification_view(results: dict) -> dict:
    """What the card and the model-index show of a classifier's run: where its data came from, the split
    its final figures are on, and those figures (runs recorded before any-dataset training included)."""
    data = results.get("data") or {}
    source = str(data.get("source") or results.get("dataset") or "")
    split = results.get("evaluated_on", "test")
    imdb = is_imdb(source)
    hub_id = is_hub_id(source) and not Path(source).exists()
    figures = {key: results.get(f"{split}_{key}") for key in
               ("accuracy", "f1", "macro_f1", "micro_f1", "loss", "examples", "per_class")}
    return dict(
        imdb=imdb, split=split, figures=figures, data=data, hub_id=hub_id,
        dataset_id=IMDB_HUB_ID if imdb else (source if hub_id else Path(source).name or "local"),
        data_name="IMDb (Large Movie Review Dataset)" if imdb else (f"`{source}`" if hub_id else f"`{Path(source).name}` (local files)"),
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
        metrics = [("accuracy", f"{split.capitalize()} accuracy", f"{split}_accuracy"),
                   ("f1", f"{split.capitalize()} F1", f"{split}_f1"),
                   ("f1", f"{split.capitalize()} macro-F1", f"{split}_macro_f1")]
    elif task == "wordlm":
        common = dict(
            task_type=spec["pipeline_tag"], task_name=spec["task_name"], dataset_type=IMDB_HUB_ID,
            dataset_name="IMDb (Large Movie Review Dataset)", dataset_config="plain_text",
            dataset_split="held-out reviews carved from train (never trained on)",
        )  # fmt: skip
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
        metrics = [
            ("bits_per_character", "Held-out bits per character", "heldout_bits_per_char"),
            ("nats_per_character", "Held-out nats per character", "heldout_nats_per_char"),
            ("nats_per_character", f"Held-out nats per character, {results.get('seq_len')}-character windows",
             "heldout_window_nats_per_char"),
            ("nats_per_character", "Held-out nats per character, one stream", "heldout_stream_nats_per_char"),
        ]
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


def _trainer_state_file(folder: Path) -> Path | None:
    """trainer_state.json of the folder (`trainer.save_state()`), else that of its last checkpoint."""
    if (folder / TRAINER_STATE_NAME).is_file():
        return folder / TRAINER_STATE_NAME
    checkpoints = [p for p in folder.glob(f"checkpoint-*/{TRAINER_STATE_NAME}") if p.parent.name[11:].isdigit()]
    return max(checkpoints, key=lambda p: int(p.parent.name[11:]), default=None)


def write_model_card(
    output_dir,
    *,
    repo_id: str | None = None,
    model_name: str | None = None,
    results: dict | None = None,
    log_history: list | None = None,
    step: int | None = None,
    max_steps: int | None = None,
) -> Path:
    """Render the model card of a trained folder into `<output_dir>/README.md` and return its path.

    By default everything comes from the folder: `eval_results.json` (written at the end of training),
    `config.json`, and `trainer_state.json` (the folder's, else its last checkpoint's) for the evaluation
    table and the curves (`training_curves.png`, drawn when matplotlib is installed). A checkpoint card, written before the final evaluation, passes `results` (the run's settings,
    no test metrics), `log_history` and `step`: it has no model-index and says that training is in progress.
    `repo_id` is the Hub id used in the card's code snippets (the folder name otherwise).
    """
    folder = Path(output_dir)
    final = results is None
    if not TEMPLATES_DIR.is_dir():
        raise FileNotFoundError(f"Card templates not found at {TEMPLATES_DIR}: use seqhf from a checkout (pip install -e).")
    if final:
        if not (folder / EVAL_RESULTS_NAME).is_file():
            raise FileNotFoundError(f"No {EVAL_RESULTS_NAME} in {folder}: the card is built from a finished run's results.")
        results = _read_json(folder / EVAL_RESULTS_NAME)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"No config.json in {folder}: save the model there before writing its card.")
    config = _read_json(folder / "config.json")
    task = results.get("task")
    if task not in TASKS:
        raise ValueError(f"`task` in the run results must be one of {sorted(TASKS)}, got {task!r}.")
    state_file = _trainer_state_file(folder)
    if log_history is None and state_file is not None:
        state = _read_json(state_file)
        log_history = state.get("log_history")
        max_steps = max_steps or state.get("max_steps")
    model_name = model_name or (repo_id.split("/")[-1] if repo_id else folder.resolve().name)

    curves = (plot_training_curves(log_history, folder / CURVES_NAME, final_figures(task, results) if final else None)
              if log_history else None)
    if curves is None and (folder / CURVES_NAME).exists():
        (folder / CURVES_NAME).unlink()  # a stale plot from an earlier run would contradict the card
    eval_cols, eval_rows = _eval_table(log_history)
    tokenizer_config = _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}

    card_data = build_card_data(task, results, model_name, final=final)
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATES_DIR / TASKS[task]["template"]),
        final=final,
        model_name=model_name,
        r=results,
        repo_id=repo_id or f"./{folder.resolve().name}",
        architecture=describe_architecture(config),
        architectures=", ".join(config.get("architectures") or ["unknown"]),
        model_type=config.get("model_type", "unknown"),
        num_parameters=f"{results['num_parameters']:,}" if results.get("num_parameters") else "not recorded",
        num_parameters_h=_human_count(results.get("num_parameters")),
        config_rows=_config_rows(config),
        tbptt=_tbptt_mode(results.get("tbptt")),
        train_arg_rows=[(k, _fmt(v)) for k, v in sorted((results.get("train_args") or {}).items())],
        labels=[v for _, v in sorted((config.get("id2label") or {}).items(), key=lambda kv: int(kv[0]))],
        model_max_length=tokenizer_config.get("model_max_length"),
        wall_time=_human_seconds(results.get("wall_time_s")),
        curves=CURVES_NAME if curves else None,
        has_history=bool(log_history),
        eval_cols=[c.removeprefix("eval_") for c in eval_cols],
        eval_rows=eval_rows,
        step=step,
        max_steps=max_steps,
        fmt=_fmt,
        gutenberg_url=GUTENBERG_URL,
        **classification_card_fields(task, results, folder),
        island=task == "charlm" and is_island_run(results),
        char_sources=describe_char_sources(results) if task == "charlm" else None,
    )
    path = folder / CARD_NAME
    card.save(path)
    return path


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
        example_text=IMDB_EXAMPLE if view["imdb"] else "Write the text to classify here.",
    )


class _DataView(dict):
    """The run's data description, with defaults for runs recorded before it existed."""

    def __getattr__(self, key):
        defaults = dict(split_names={}, split_sizes={}, validation_carved_from_train=True, unlabelled_texts=0)
        return self.get(key, defaults.get(key))


class ModelCardCallback(TrainerCallback):
    """Writes the seqhf card into what the Trainer pushes during training (`push_to_hub=True`).

    `run_info` holds the run's settings, with the same keys as eval_results.json minus the test metrics
    (task, preset, quick, model_type, num_parameters, dataset, seed, max_grad_norm, epochs, train_args, ...).
    `on_push_begin` runs just before the Trainer copies a checkpoint into `output_dir` and uploads it
    (and the checkpoint folder itself with `hub_strategy="checkpoint"`/`"all_checkpoints"`); `on_save`
    covers checkpoints that are only saved locally.
    """

    def __init__(self, run_info: dict, repo_id: str | None = None):
        if run_info.get("task") not in TASKS:  # fail now, not at the first save of a long run
            raise ValueError(f"`run_info['task']` must be one of {sorted(TASKS)}, got {run_info.get('task')!r}.")
        self.run_info = dict(run_info)
        self.repo_id = repo_id

    def _write(self, folder, args, state):
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            return
        if (folder / EVAL_RESULTS_NAME).is_file():
            write_model_card(folder, repo_id=self.repo_id or args.hub_model_id)
        else:
            write_model_card(
                folder, repo_id=self.repo_id or args.hub_model_id, results=self.run_info,
                log_history=state.log_history, step=state.global_step, max_steps=state.max_steps,
            )  # fmt: skip

    def _checkpoint_dir(self, args, state):
        return Path(args.output_dir) / f"checkpoint-{state.global_step}"

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self._write(self._checkpoint_dir(args, state), args, state)

    def on_push_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        checkpoint = self._checkpoint_dir(args, state)
        self._write(checkpoint, args, state)
        # The Trainer copies config and weights from the checkpoint into output_dir after this call;
        # copy config.json now so the card of output_dir can be rendered on the first push too.
        output_dir = Path(args.output_dir)
        if (checkpoint / "config.json").is_file() and not (output_dir / "config.json").is_file():
            (output_dir / "config.json").write_bytes((checkpoint / "config.json").read_bytes())
        self._write(output_dir, args, state)


def attach_model_card(trainer, run_info: dict, repo_id: str | None = None):
    """Make `trainer`'s own Hub pushes carry the seqhf card instead of the Trainer's generic draft.

    Adds a `ModelCardCallback` (checkpoint pushes) and replaces this trainer's `create_model_card`, which
    `Trainer.push_to_hub` calls right before the final upload: it renders the full card when
    eval_results.json is already in `output_dir`, the in-progress card otherwise.
    """
    callback = ModelCardCallback(run_info, repo_id=repo_id)
    trainer.add_callback(callback)

    def create_model_card(*args, **kwargs):
        if trainer.is_world_process_zero():
            callback._write(trainer.args.output_dir, trainer.args, trainer.state)

    trainer.create_model_card = create_model_card
    return callback


# ---------------------------------------------------------------------------------------------------- push


@dataclass(frozen=True)
class UploadFile:
    path: str  # relative, POSIX
    size: int


def _skipped(rel: Path) -> bool:
    return rel.name in SKIPPED_NAMES or any(part.startswith(SKIPPED_DIR_PREFIXES) for part in rel.parts[:-1])


def list_upload_files(folder) -> list[UploadFile]:
    """The files a push would upload: everything in the folder except Trainer checkpoints (`checkpoint-*/`),
    hidden and `_*` folders, the module cache, and `training_args.bin`."""
    folder = Path(folder)
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not _skipped(rel) and not rel.name.startswith("."):
            files.append(UploadFile(rel.as_posix(), path.stat().st_size))
    return files


def _auto_map_modules(auto_map: dict) -> set[str]:
    modules = set()
    for ref in auto_map.values():
        for item in ref if isinstance(ref, (list, tuple)) else [ref]:
            if item:
                item = item.split("--")[-1]  # "owner/repo--module.Class" points at another repo's code
                modules.add(item.rsplit(".", 1)[0] + ".py")
    return modules


def validate_repo_folder(folder) -> list[UploadFile]:
    """Check that `folder` is a complete model repository and return the files a push would upload.

    Needs config.json with an `auto_map`, every code file the auto_map names, model.safetensors (or a
    safetensors index with all its shards), tokenizer.json + tokenizer_config.json, and README.md (the card).
    Pickle files (*.bin, *.pt, *.pkl, ...) are refused. Raises `FolderNotReadyError` listing every problem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FolderNotReadyError(folder, [f"the folder itself ({folder} does not exist)"])
    files = list_upload_files(folder)
    names = {f.path for f in files}
    problems = []

    if "config.json" not in names:
        problems.append("config.json")
    else:
        try:
            auto_map = _read_json(folder / "config.json").get("auto_map")
        except json.JSONDecodeError as err:
            problems.append(f"config.json is not valid JSON ({err})")
            auto_map = {}
        if not auto_map:
            problems.append("config.json has no `auto_map` (the model cannot load with trust_remote_code)")
        else:
            problems += [f"{m} (code file named in config.json auto_map)" for m in sorted(_auto_map_modules(auto_map) - names)]

    if "model.safetensors.index.json" in names:
        shards = set(_read_json(folder / "model.safetensors.index.json").get("weight_map", {}).values())
        problems += [f"{s} (safetensors shard named in the index)" for s in sorted(shards - names)]
    elif "model.safetensors" not in names:
        problems.append("model.safetensors (weights; only safetensors are published)")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if name not in names:
            problems.append(name)
    if CARD_NAME not in names:
        problems.append(f"{CARD_NAME} (the model card; run seqhf.hub.write_model_card)")
    else:
        try:
            metadata = ModelCard.load(folder / CARD_NAME).data.to_dict()
        except Exception as err:  # malformed YAML header
            metadata = {}
            problems.append(f"{CARD_NAME} metadata cannot be read ({err})")
        if not metadata.get("library_name"):
            problems.append(f"{CARD_NAME} has no YAML metadata with `library_name`")

    problems += [f"{n} (pickle file refused: publish safetensors only)" for n in sorted(names) if n.endswith(PICKLE_SUFFIXES)]
    if problems:
        raise FolderNotReadyError(folder, problems)
    return files


def format_upload_plan(files: list[UploadFile]) -> str:
    width = max(len(f.path) for f in files)
    lines = [f"{f.path:<{width}}  {f.size:>12,} bytes" for f in files]
    lines.append(f"{len(files)} files, {sum(f.size for f in files):,} bytes in all")
    return "\n".join(lines)


def _escape_pattern(path: str) -> str:
    """An fnmatch pattern matching exactly `path`."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in path)


def resolve_token() -> str:
    token = get_token()  # HF_TOKEN, then the token saved by `hf auth login`
    if not token:
        raise MissingTokenError(
            "No Hugging Face token found: set the HF_TOKEN environment variable to a token with write access "
            "(https://huggingface.co/settings/tokens) or log in once with `hf auth login`. "
            "Use --dry-run to check the folder without a token."
        )
    return token


def push_folder(
    folder,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run: bool = False,
    api: HfApi | None = None,
):
    """Validate `folder` and publish it to the model repo `repo_id` in one commit.

    `create_repo(exist_ok=True)`, then (for a `revision` other than main) `create_branch(exist_ok=True)`,
    then one `upload_folder` commit holding exactly `validate_repo_folder(folder)`'s files. A dry run
    validates and returns that list without needing a token or touching the network.
    Returns the list of `UploadFile` (dry run) or the `CommitInfo` of the upload.
    """
    if not repo_id or repo_id.count("/") > 1:
        raise ValueError(f"`repo_id` must be 'name' or 'owner/name', got {repo_id!r}.")
    files = validate_repo_folder(folder)
    if dry_run:
        return files
    api = api or HfApi(token=resolve_token())
    api.create_repo(repo_id, repo_type="model", private=True if private else None, exist_ok=True)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        repo_type="model",
        folder_path=os.fspath(folder),
        revision=revision,
        commit_message=commit_message or f"Upload {Path(folder).resolve().name} with seqhf",
        allow_patterns=[_escape_pattern(f.path) for f in files],
    )


# ---------------------------------------------------------------------------------------------- Spaces

SPACE_FILES = ("app.py", "requirements.txt", CARD_NAME)


def validate_space_folder(folder) -> list[UploadFile]:
    """Check that `folder` is a Gradio Space (app.py, requirements.txt, README.md whose YAML header names
    the `sdk` and `app_file`, no pickle files) and return the files a push would upload."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FolderNotReadyError(folder, [f"the folder itself ({folder} does not exist)"])
    files = list_upload_files(folder)
    names = {f.path for f in files}
    problems = [f"{name} (a Space needs it; scripts/demo.py --write-space writes it)" for name in SPACE_FILES if name not in names]
    if CARD_NAME in names:
        try:
            metadata = ModelCard.load(folder / CARD_NAME).data.to_dict()
        except Exception as err:  # malformed YAML header
            metadata = {}
            problems.append(f"{CARD_NAME} metadata cannot be read ({err})")
        if not metadata.get("sdk"):
            problems.append(f"{CARD_NAME} has no YAML header with the Space `sdk`")
        elif metadata.get("app_file", "app.py") not in names:
            problems.append(f"{metadata['app_file']} (the `app_file` named in {CARD_NAME})")
    problems += [f"{n} (pickle file refused)" for n in sorted(names) if n.endswith(PICKLE_SUFFIXES)]
    if problems:
        raise FolderNotReadyError(folder, problems)
    return files


def push_space(
    folder,
    repo_id: str,
    *,
    private: bool = False,
    commit_message: str | None = None,
    dry_run: bool = False,
    api: HfApi | None = None,
):
    """Validate the Space folder and publish it to the Space `repo_id` in one commit, as `push_folder` does
    for models (`create_repo(repo_type="space", space_sdk=...)`, then `upload_folder`)."""
    if not repo_id or repo_id.count("/") > 1:
        raise ValueError(f"`repo_id` must be 'name' or 'owner/name', got {repo_id!r}.")
    files = validate_space_folder(folder)
    if dry_run:
        return files
    sdk = ModelCard.load(Path(folder) / CARD_NAME).data.to_dict()["sdk"]
    api = api or HfApi(token=resolve_token())
    api.create_repo(repo_id, repo_type="space", space_sdk=sdk, private=True if private else None, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        repo_type="space",
        folder_path=os.fspath(folder),
        commit_message=commit_message or f"Upload the {Path(folder).resolve().name} Space with seqhf",
        allow_patterns=[_escape_pattern(f.path) for f in files],
    )


__all__ = [
    "validate_space_folder",
    "push_space",
    "write_model_card",
    "plot_training_curves",
    "build_card_data",
    "ModelCardCallback",
    "attach_model_card",
    "validate_repo_folder",
    "list_upload_files",
    "push_folder",
    "resolve_token",
    "FolderNotReadyError",
    "MissingTokenError",
    "UploadFile",
]
