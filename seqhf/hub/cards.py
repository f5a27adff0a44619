"""Model cards: `write_model_card(folder)` renders the task's template (Jinja, via `huggingface_hub.ModelCard.from_template`) from the run's `eval_results.json`, `config.json` and, when present, `trainer_state.json`, and writes `README.md`; `attach_model_card(trainer, run_info)` makes the Trainer's own `push_to_hub` carry the same card."""

from importlib import resources
from pathlib import Path

from huggingface_hub import ModelCard
from transformers import TrainerCallback

from .card_data import (
    CARD_NAME,
    CURVES_NAME,
    EVAL_RESULTS_NAME,
    GUTENBERG_URL,
    TASKS,
    TRAINER_STATE_NAME,
    _config_rows,
    _eval_table,
    _fmt,
    _human_count,
    _human_seconds,
    _read_json,
    _tbptt_mode,
    build_card_data,
    classification_card_fields,
    describe_architecture,
    describe_budget_stop,
    describe_char_sources,
    is_island_run,
)
from .data_view import wordlm_card_fields
from .plots import final_figures, plot_training_curves

TEMPLATES = resources.files(__package__) / "templates"  # inside the package: a wheel carries them












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
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist or is not a folder: pass a trained run's output folder.")
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
        template_str=TEMPLATES.joinpath(TASKS[task]["template"]).read_text(encoding="utf-8"),
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
        **wordlm_card_fields(task, results),
        budget_stop=describe_budget_stop(results),
    )
    path = folder / CARD_NAME
    card.save(path)
    return path


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
