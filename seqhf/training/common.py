"""The pieces both training tasks share: `TrainingArguments` from a preset, the run record, resuming,
and the output folder (model, tokenizer, eval_results.json, card).

The tasks live beside this module: `seqhf.training.classifier` (text classification on any dataset) and
`seqhf.training.charlm` (character language models on any text). Both run unchanged under `accelerate launch`.
"""

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.integrations import is_tensorboard_available
from transformers.trainer import TRAINER_STATE_NAME

from ..hub.cards import write_model_card
from ..models.lstm.configuration_lstm import SeqLSTMConfig
from ..models.lstm.modeling_lstm import (
    SeqLSTMForCausalLM,
    SeqLSTMForSequenceClassification,
)
from ..models.transformer.configuration_transformer import SeqTransformerConfig
from ..models.transformer.modeling_transformer import (
    SeqTransformerForCausalLM,
    SeqTransformerForSequenceClassification,
)
from ..utils.runtime import OtherWork, destroy_process_group_at_exit, hardware_string, is_main_process, use_bf16
from .errors import SetupError  # noqa: F401  (defined on its own so that run_folder can raise it too)
from .run_folder import (
    CHECKPOINT,
    INCOMPLETE_CHECKPOINTS,
    PREVIOUS_RUN,
    disk_full_message,
    final_save,
    last_complete_checkpoint,
    mark_complete,
    set_aside_earlier_run,
)

EVAL_RESULTS = "eval_results.json"
WALL_TIME_FILE = "wall_time.json"  # in each checkpoint: the seconds the run had taken when it was saved
RANK_LOG_ENV = "SEQHF_RANK_LOG"  # a folder: each rank writes what it trained on (used by the multi-process test)


# ---------------------------------------------------------------- environment






def make_training_args(output_dir, train: dict, *, task, max_grad_norm=1.0, seed=42, epochs=None, max_steps=-1,
                       quick=False, **overrides) -> TrainingArguments:
    """TrainingArguments from a preset's `train` recipe."""
    if max_grad_norm is None or max_grad_norm < 0:
        raise SetupError(f"--max-grad-norm must be >= 0 (0 disables clipping), got {max_grad_norm}.")
    classification = task == "classification"
    kwargs = dict(
        output_dir=str(output_dir),
        num_train_epochs=epochs if epochs is not None else train["epochs"],
        max_steps=max_steps,
        per_device_train_batch_size=train["batch_size"],
        per_device_eval_batch_size=2 * train["batch_size"],
        learning_rate=train["learning_rate"],
        weight_decay=train.get("weight_decay", 0.0),
        warmup_steps=train.get("warmup", 0.0),  # a float < 1 is a fraction of all steps
        lr_scheduler_type=train.get("scheduler", "cosine"),
        max_grad_norm=max_grad_norm,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=train.get("load_best_model_at_end", True),
        metric_for_best_model="accuracy" if classification else "loss",
        greater_is_better=classification,
        logging_strategy="steps",
        logging_steps=10 if quick else 50,
        logging_first_step=True,
        report_to=["tensorboard"] if is_tensorboard_available() else "none",
        seed=seed,
        data_seed=seed,
        bf16=use_bf16(),
        tf32=torch.cuda.is_available() or None,
        remove_unused_columns=classification,
        prediction_loss_only=not classification,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=not sys.stderr.isatty(),  # in a log file, one line per logged step instead of redraws
        ddp_find_unused_parameters=False,  # every parameter is used; True costs a graph walk and warns
        # Several processes on a machine without GPUs (`accelerate launch --multi_gpu` there): Trainer only
        # sets up gloo DDP when told to use the CPU.
        use_cpu=not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1,
    )
    if classification:
        # The preset's batch is the batch of one optimizer step whatever the number of processes (each takes its
        # share of it), so a recipe gives the same figures on one core or several. Each shared batch is of
        # reviews of one length (`LengthBucketSampler`), so no process waits for another's longer reviews.
        kwargs["accelerator_config"] = {"split_batches": True}
    if not classification and overrides.get("label_smoothing_factor"):
        # The LMs' Trainers compute their own losses (state carried across windows, sampled softmax), which have
        # no label smoother: refused rather than silently ignored.
        raise SetupError("label_smoothing_factor applies to classifiers only; the language models train on the plain "
                         "next-token loss.")
    kwargs.update(overrides)
    destroy_process_group_at_exit()  # the Trainer may start one (several processes)
    return TrainingArguments(**kwargs)


def batch_rows(args) -> int:
    """The rows of one batch over all the processes: the batch itself when they share it out (`split_batches`, as
    seqhf's presets do), else one batch a process."""
    shared = args.accelerator_config.split_batches if args.accelerator_config else False
    return args.per_device_train_batch_size * (1 if shared else args.world_size)


def run_record(task, preset_name, preset, quick, net, data, seed, max_grad_norm, trainer) -> dict:
    """The keys every eval_results.json starts with: what ran, on what, with which training arguments."""
    return dict(
        task=task, preset=preset_name, quick=bool(quick), model_type=net.config.model_type,
        num_parameters=net.num_parameters(), dataset=str(data), seed=seed, max_grad_norm=max_grad_norm,
        epochs=trainer.state.epoch, train_args=train_args_summary(trainer.args, preset["train"]["patience"]),
    )


def train_args_summary(args: TrainingArguments, early_stopping_patience=None) -> dict:
    return {
        "learning_rate": args.learning_rate,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "per_device_eval_batch_size": args.per_device_eval_batch_size,
        "world_size": args.world_size,
        "split_batches": bool(args.accelerator_config.split_batches),  # each process takes a share of the batch
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "warmup_steps": args.warmup_steps,
        "weight_decay": args.weight_decay,
        "label_smoothing_factor": args.label_smoothing_factor,
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "optim": str(getattr(args.optim, "value", args.optim)),
        "num_train_epochs": args.num_train_epochs,
        "max_steps": args.max_steps,
        "bf16": args.bf16,
        "load_best_model_at_end": args.load_best_model_at_end,
        # without the best checkpoint to go back to, no run stops early (`classification.early_stopping`)
        "early_stopping_patience": early_stopping_patience if args.load_best_model_at_end else None,
    }


# ---------------------------------------------------------------- trainers


class RankLog:
    """When $SEQHF_RANK_LOG names a folder, each process records the first rows it trained on and the number
    of rows of each of its batches."""

    def __init__(self):
        self.folder = os.environ.get(RANK_LOG_ENV)
        self.rows, self.batch_rows = [], []

    def record(self, input_ids):
        if self.folder:
            self.batch_rows.append(len(input_ids))
        if self.folder and len(self.rows) < 64:
            self.rows.extend(input_ids[:, :16].tolist())

    def write(self, args: TrainingArguments, wrote_output: bool):
        if not self.folder:
            return
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        record = dict(rank=args.process_index, world_size=args.world_size, rows=self.rows,
                      batch_rows=self.batch_rows, wrote_output=wrote_output)
        with open(Path(self.folder) / f"rank{args.process_index}.json", "w") as f:
            json.dump(record, f)


# ---------------------------------------------------------------- model and output folder


def build_model(task: str, preset: dict, tokenizer, **config_kwargs):
    """The preset's model, sized to the tokenizer's vocabulary."""
    ids = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    if task == "charlm":
        ids["bos_token_id"] = tokenizer.bos_token_id
        ids["is_decoder"] = True
    if preset["arch"] == "lstm":
        config = SeqLSTMConfig(**preset["model"], **ids, **config_kwargs)
        model_class = SeqLSTMForCausalLM if task == "charlm" else SeqLSTMForSequenceClassification
    else:
        config = SeqTransformerConfig(**preset["model"], **ids, **config_kwargs)
        model_class = SeqTransformerForCausalLM if task == "charlm" else SeqTransformerForSequenceClassification
    return model_class(config)


def check_run_lengths(seq_len: int, epochs, max_steps: int) -> None:
    """A language model's run lengths that cannot train, as SetupError, before anything is read (-1 steps: not set)."""
    if seq_len <= 0:
        raise SetupError(f"--seq-len must be positive, got {seq_len}.")
    if epochs is not None and epochs <= 0:
        raise SetupError(f"--epochs must be positive, got {epochs}.")
    if max_steps == 0 or max_steps < -1:
        raise SetupError(f"--max-steps must be positive (or -1, not set), got {max_steps}.")


def resume_checkpoint(output_dir, resume: bool, clock: "RunClock | None" = None, model=None, tokenizer=None):
    """The last complete checkpoint in `output_dir` when resuming (None otherwise); `clock` goes on from its
    time. Newer checkpoints whose save was interrupted (killed, a full disk) are skipped, named and moved
    aside (`run_folder.last_complete_checkpoint`). Without `resume`, what an earlier run left (its checkpoints and
    final model) is moved into `_previous_run/` (`run_folder.set_aside_earlier_run`), so the folder holds this run's
    files only."""
    if not resume:
        moved = set_aside_earlier_run(output_dir) if is_main_process() else []
        if moved:
            checkpoints = [name for name in moved if CHECKPOINT.fullmatch(name)]
            files = len(moved) - len(checkpoints)
            what = ", ".join(checkpoints + ([f"{files} other files (its saved model, results and logs)"] if files else []))
            print(f"note: {output_dir} held an earlier run's {what}. This run starts anew (no --resume): they are now "
                  f"in {output_dir}/{PREVIOUS_RUN}/ (to continue that run instead, stop this one, move them back and "
                  "pass --resume).")
        return None
    main = is_main_process()  # each process finds the same checkpoint; the main one says which
    last, skipped = last_complete_checkpoint(output_dir, set_aside=main)
    if skipped and main:
        print(f"--resume: skipped {len(skipped)} incomplete checkpoint(s), moved into {output_dir}/"
              f"{INCOMPLETE_CHECKPOINTS}: {', '.join(skipped)}.")
    if main:
        print(f"--resume: no {'complete ' if skipped else ''}checkpoint in {output_dir}, starting from scratch."
              if last is None else f"--resume: continuing from {last}.")
    if last is not None and model is not None:
        check_resumable(last, model, tokenizer)
    if clock is not None:
        clock.resume_from(last)
    return None if last is None else str(last)


def check_resumable(checkpoint, model, tokenizer=None) -> None:
    """Refuse a checkpoint that the model and vocabulary this command built do not fit (another preset, other data
    or options): its weights would fail to load deep inside torch, or load onto other words without a sign."""
    from safetensors import safe_open
    from tokenizers import Tokenizer

    again = "resume with the command, options and data that started the run, or start anew without --resume."
    weights = Path(checkpoint) / "model.safetensors"
    if weights.is_file():
        with safe_open(str(weights), "pt") as saved:
            there = {name: list(saved.get_slice(name).get_shape()) for name in saved.keys()}
        here = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
        differ = sorted(name for name in there if here.get(name, there[name]) != there[name])
        if differ or there.keys() - here.keys():
            name = differ[0] if differ else sorted(there.keys() - here.keys())[0]
            shapes = f"{there[name]} there, {here[name]} here" if differ else "there, not in this model"
            raise SetupError(f"{checkpoint} holds another model than this command builds ({name}: {shapes}): {again}")
    vocabulary = Path(checkpoint) / "tokenizer.json"
    if tokenizer is not None and vocabulary.is_file():
        there, here = Tokenizer.from_file(str(vocabulary)).get_vocab(), tokenizer.get_vocab()
        if there != here:
            kept = sum(here.get(token) == index for token, index in there.items())
            raise SetupError(f"{checkpoint} was trained on another vocabulary than the one built now from the data "
                             f"({kept:,} of its {len(there):,} tokens keep their id: the data or options changed): "
                             f"{again}")


class RunClock(TrainerCallback):
    """The run's wall time over all its sessions: each checkpoint stores the time taken so far, and a run
    resumed from it starts counting from there (the time of a killed session after its last checkpoint
    produced nothing that was kept, so it is not counted)."""

    def __init__(self):
        self.start, self.before = time.time(), 0.0
        self.other_work = OtherWork()  # this session only: a resumed run's earlier sessions are not metered

    def resume_from(self, checkpoint) -> None:
        path = Path(checkpoint) / WALL_TIME_FILE if checkpoint else None
        self.before = json.loads(path.read_text())["seconds"] if path and path.is_file() else 0.0

    def elapsed(self) -> float:
        return self.before + time.time() - self.start

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}" / WALL_TIME_FILE
            path.write_text(json.dumps({"seconds": round(self.elapsed(), 1)}))


def finish_run(trainer: Trainer, output_dir, results: dict, clock: RunClock) -> dict:
    """Save the model, tokenizer, trainer state and eval_results.json (main process only), then the card.
    The files are written aside and moved in (`run_folder.final_save`); the folder is marked incomplete
    until the card is written, so a save cut short is never taken for a finished run."""
    results["wall_time_s"] = round(clock.elapsed(), 1)
    results["hardware"] = hardware_string()
    run_cpu = torch.tensor(clock.other_work.own_seconds(), dtype=torch.float64, device=trainer.args.device)
    if trainer.accelerator.num_processes > 1:
        run_cpu = trainer.accelerator.reduce(run_cpu, reduction="sum")
    other = clock.other_work.cores(float(run_cpu))
    if other is not None:  # the results tables mark runs on quiet cores (below 0.2 cores of other work)
        results["other_work_cores"] = round(other, 2)
    main = trainer.is_world_process_zero()
    model = trainer.accelerator.unwrap_model(trainer.model)
    if getattr(model.config, "is_decoder", False):
        # The Trainer sets `use_cache` to its argument's default, False, for training; a saved LM called by hand
        # would then return no cache, and a decoding loop that reuses it would restart from nothing each step.
        model.config.use_cache = True
    with final_save(output_dir, main) as staging:
        trainer.save_model(str(staging))  # model.safetensors, config (auto_map), code files, tokenizer
        if main:
            trainer.state.save_to_json(str(staging / TRAINER_STATE_NAME))  # what trainer.save_state() writes
            with open(staging / EVAL_RESULTS, "w") as f:
                json.dump(results, f, indent=2)
    if main:
        try:
            write_model_card(output_dir)
        except Exception as err:  # the card is a courtesy: never lose a finished run over it
            if disk_full_message(err, output_dir, 0.0):
                raise  # but a full disk is reported as such (`holds_output_folder`), not as a missing card
            print(f"Model card not written: {err}")
        mark_complete(output_dir)
    trainer.rank_log.write(trainer.args, wrote_output=main)
    trainer.accelerator.wait_for_everyone()
    return results


class TimeBudget(TrainerCallback):
    """Stops training once `seconds` have passed since it began (the epoch in progress is evaluated as usual),
    so a run fits a fixed slot such as a device session. The schedule was planned for the full run.

    With `cpu=True` the budget counts the process's CPU seconds since it started (`time.process_time()`: loading
    and tokenizing the data and learning word vectors count as well as training), so runs on a machine shared
    with other jobs get equal work; with one thread on an otherwise idle core, CPU time equals wall time."""

    def __init__(self, seconds: float, cpu: bool = False):
        if seconds <= 0:
            raise SetupError(f"A time budget must be positive, got {seconds} s.")
        self.seconds, self.cpu, self.start, self.stopped_at_step = seconds, cpu, None, None

    def _clock(self) -> float:
        return time.process_time() if self.cpu else time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = 0.0 if self.cpu else time.time()

    def on_step_end(self, args, state, control, **kwargs):
        if self._clock() - self.start > self.seconds and not control.should_training_stop:
            control.should_training_stop = True
            self.stopped_at_step = state.global_step
            if state.is_world_process_zero:
                budget = "CPU budget" if self.cpu else "time budget"
                unit = "CPU seconds of the process, setup included" if self.cpu else "seconds of training"
                planned = f" of the {state.max_steps:,} planned" if state.max_steps else ""
                print(f"The {budget} ({self.seconds:g} {unit}) is spent: training stops after step "
                      f"{state.global_step:,}{planned}.", flush=True)


class PhaseTimes:
    """Wall seconds of a run's long steps, printed as each ends with its CPU seconds (CPU seconds ≈ wall
    seconds on an idle machine with one thread, so a loaded machine's log still shows the work)."""

    def __init__(self):
        self.seconds = {}

    @contextmanager
    def __call__(self, name: str):
        wall, cpu = time.time(), time.process_time()
        yield
        self.seconds[name] = round(time.time() - wall, 1)
        if is_main_process():  # under accelerate launch, the main process speaks for all
            print(f"[{name}] {self.seconds[name]:.0f} s ({time.process_time() - cpu:.0f} s CPU)", flush=True)
