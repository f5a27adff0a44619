"""Character language models on any text through `transformers.Trainer`: windows or stateful TBPTT,
held-out evaluation beside an n-gram baseline (the extra evaluations live in `seqhf.evaluation.charlm`)."""

import dataclasses
import math
import os

import torch
import torch.nn.functional as F
from transformers import EarlyStoppingCallback, Trainer, default_data_collator, set_seed

from ..data import char_text as seqdata
from ..data.tokenization import build_char_tokenizer
from ..evaluation.charlm import (
    char_log_probs,
    encode_counting_unknown,
    evaluate_extras,
    sample_prompt,
)
from ..evaluation.dynamic_eval import nats
from ..evaluation.metrics import lm_metrics, unigram_entropy
from .common import (
    RankLog,
    RunClock,
    SetupError,
    build_model,
    finish_run,
    make_training_args,
    resume_checkpoint,
    run_record,
)
from .presets import get_preset
from .run_folder import holds_output_folder


class CharLMTrainer(Trainer):
    """Trainer for the char LM; with `tbptt="stateful"` the recurrent state is carried between batches.

    Batch k+1 continues batch k row by row (see `StreamChunks`); the state is detached at the chunk
    boundary, so gradients flow back through one chunk only, and is reset where streams restart
    (`stream_position` 0, i.e. each epoch). With `state_reset` p > 0, each row also starts from a zero
    state with probability p at every chunk: a model that only ever continues a state can fall into a
    useless regime when it must start from nothing (as generation and evaluation do), e.g. on a comma.
    """

    def __init__(self, *args, tbptt="windows", state_reset=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.tbptt = tbptt
        self.state_reset = state_reset
        self.model_accepts_loss_kwargs = False
        self._state = None
        self.rank_log = RankLog()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        input_ids, targets = inputs["input_ids"], inputs["shift_labels"]
        position = inputs.get("stream_position")
        stateful = self.tbptt == "stateful" and model.training
        if model.training:
            self.rank_log.record(input_ids)
        kwargs = {}
        if stateful:
            carry = (
                self._state is not None
                and position is not None
                and bool((position > 0).all())
                and self._state[0].shape[1] == input_ids.shape[0]
            )
            if carry:
                keep = 1.0
                if self.state_reset > 0:  # the global RNG, which the Trainer seeds and checkpoints
                    keep = (torch.rand(input_ids.shape[0], device=input_ids.device) >= self.state_reset)[None, :, None]
                kwargs["initial_state"] = tuple(s.detach() * keep for s in self._state)
        outputs = model(input_ids=input_ids, **kwargs)
        loss = F.cross_entropy(outputs.logits.float().flatten(0, 1), targets.flatten())
        if stateful:
            self._state = outputs.final_state
        return (loss, {"loss": loss}) if return_outputs else loss

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        loss = output.metrics.get(f"{metric_key_prefix}_loss")
        if loss is not None:
            output.metrics.update(lm_metrics(loss, metric_key_prefix))
        return output


class StreamChunks(torch.utils.data.Dataset):
    """Chunks for stateful TBPTT: each batch row reads its own contiguous stream of the text.

    The text is cut into `batch_size * num_processes` streams. Dataset items are ordered so that
    sequential batches of `batch_size` — dealt round-robin to the processes, as accelerate does —
    give every process batch after batch in which row r continues row r of its previous batch.
    """

    def __init__(self, ids: torch.Tensor, seq_len: int, batch_size: int, num_processes: int = 1):
        self.ids, self.seq_len, self.batch_size, self.num_processes = ids, seq_len, batch_size, num_processes
        streams = batch_size * num_processes
        self.stream_len = (len(ids) - 1) // streams
        self.chunks_per_stream = self.stream_len // seq_len
        if self.chunks_per_stream == 0:
            raise SetupError(
                f"The training text ({len(ids)} characters) is too short for {streams} streams of --seq-len {seq_len}."
            )

    def __len__(self):
        return self.chunks_per_stream * self.batch_size * self.num_processes

    def __getitem__(self, i):
        batch, row = divmod(i, self.batch_size)
        step, process = divmod(batch, self.num_processes)
        start = (process * self.batch_size + row) * self.stream_len + step * self.seq_len
        chunk = self.ids[start : start + self.seq_len + 1]
        return {"input_ids": chunk[:-1], "labels": chunk[:-1].clone(), "shift_labels": chunk[1:],
                "stream_position": torch.tensor(step)}


def stream_nats_per_char(model, ids: torch.Tensor, chunk: int = 2048) -> float:
    """Mean next-character loss over `ids` read as one stream, the recurrent state carried throughout."""
    return nats(char_log_probs(model, ids, window=chunk, chunk=chunk))


def load_corpus(text=None, heldout=None, dataset=None, text_column="text", dataset_split="train",
                max_chars=None):
    """The training and held-out text from files (or a folder) or from a dataset's text column (its first
    `max_chars` characters)."""
    try:
        if dataset is not None:
            return seqdata.load_char_dataset(dataset, text_column, heldout, split=dataset_split, max_chars=max_chars)
        if not text:
            raise SetupError("Give the text to learn from: text files or folders of .txt files, or a dataset.")
        return seqdata.load_char_corpus(text, heldout)
    except (FileNotFoundError, ValueError) as err:
        raise SetupError(str(err)) from err


def load_second_text(spec, max_chars=100_000, text_column="text") -> tuple[str, str]:
    """A text the model never saw, for its generalisation figure: a .txt file, or `DATASET[:SPLIT]` (a local
    dataset folder or hub id, the `text_column` of SPLIT, default train), cut to its first `max_chars`."""
    try:
        if os.path.isfile(spec):
            text, _ = seqdata.read_char_text(spec)
            name = os.path.basename(spec)
        else:
            dataset, _, split = spec.partition(":")
            text = seqdata.load_text_dataset(dataset, text_column, split or "train")
            name = f"{os.path.basename(dataset.rstrip('/'))} ({split or 'train'})"
    except (FileNotFoundError, ValueError) as err:
        raise SetupError(f"--also-eval: {err}") from err
    return text[:max_chars], f"{name}, first {min(len(text), max_chars):,} characters"


@holds_output_folder
def train_charlm(model="lstm", text=None, output_dir="runs/charlm", *, heldout=None, dataset=None,
                 text_column="text", dataset_split="train", max_chars=None, quick=False, tbptt=None, seq_len=None,
                 epochs=None, max_grad_norm=1.0, seed=42, resume=False, max_steps=-1, callbacks=(),
                 validation_fraction=0.05, ngram_order=7, dynamic=True, also_eval=None, also_eval_chars=100_000,
                 samples=True, **train_overrides) -> dict:
    """Train a character LM and return its results.

    The text: `text` (one or more files, or a folder of .txt files; default The Mysterious Island) with the
    last 10% of each held out, or all of it for training and `heldout` for evaluation; or the `text_column`
    of `dataset`. Beside the static held-out figure the run reports an n-gram baseline, the neural + n-gram
    mixture, dynamic evaluation (`dynamic`), the figure on a second text (`also_eval`) and seeded samples.
    """
    clock = RunClock()
    preset_name, preset = (model if isinstance(model, str) else "custom"), get_preset("charlm", model, quick)
    tbptt = tbptt or preset["tbptt"]
    seq_len = seq_len or preset["seq_len"]
    if tbptt not in ("windows", "stateful"):
        raise SetupError(f"--tbptt must be 'windows' or 'stateful', got {tbptt!r}.")
    if tbptt == "stateful" and preset["arch"] != "lstm":
        raise SetupError("--tbptt stateful carries a recurrent state: use it with an LSTM/GRU preset (lstm, book, cpu).")
    if seq_len <= 0:
        raise SetupError(f"--seq-len must be positive, got {seq_len}.")
    positions = preset["model"].get("max_position_embeddings")
    if positions is not None and seq_len > positions:
        raise SetupError(f"--seq-len {seq_len} is longer than the model's max_position_embeddings={positions}.")
    corpus = load_corpus(text, heldout, dataset, text_column, dataset_split, max_chars)
    second = load_second_text(also_eval, also_eval_chars, text_column) if also_eval else (None, None)
    cut = int(len(corpus.train) * (1 - validation_fraction))
    train_text, valid_text, heldout_text = corpus.train[:cut], corpus.train[cut:], corpus.heldout
    if quick:
        train_text, valid_text = train_text[: preset["train_chars"]], valid_text[:20_000]
    for name, part in (("training", train_text), ("validation", valid_text), ("held-out", heldout_text)):
        if len(part) < seq_len + 1:
            raise SetupError(f"The {name} text ({len(part)} characters) is shorter than one window "
                             f"(--seq-len + 1 = {seq_len + 1} characters).")
    tokenizer = build_char_tokenizer(corpus.train)
    train_ids, valid_ids = (seqdata.encode_text(tokenizer, t) for t in (train_text, valid_text))
    heldout_ids, heldout_unknown = encode_counting_unknown(tokenizer, heldout_text)

    set_seed(seed)
    net = build_model("charlm", preset, tokenizer)
    args = make_training_args(
        output_dir, preset["train"], task="charlm", max_grad_norm=max_grad_norm, seed=seed, epochs=epochs,
        max_steps=max_steps, quick=quick,
        train_sampling_strategy="sequential" if tbptt == "stateful" else "random", **train_overrides,
    )
    if tbptt == "stateful":
        train_dataset = StreamChunks(train_ids, seq_len, args.per_device_train_batch_size, args.world_size)
    else:
        train_dataset = seqdata.CharChunks(train_ids, seq_len, jitter=preset.get("jitter", False))
    trainer = CharLMTrainer(
        model=net, args=args, train_dataset=train_dataset, eval_dataset=seqdata.CharChunks(valid_ids, seq_len),
        processing_class=tokenizer, data_collator=default_data_collator,
        callbacks=[EarlyStoppingCallback(preset["train"]["patience"]), clock, *callbacks], tbptt=tbptt,
        state_reset=preset.get("state_reset", 0.0),
    )
    trainer.train(resume_from_checkpoint=resume_checkpoint(output_dir, resume, clock))
    train_seconds = clock.elapsed()  # over every session of the run, as the wall time
    trainer.remove_callback(EarlyStoppingCallback)  # the final evaluations are not for early stopping
    window = trainer.evaluate(seqdata.CharChunks(heldout_ids, seq_len), metric_key_prefix="heldout")["heldout_loss"]
    recurrent = preset["arch"] == "lstm"
    heldout_neural = char_log_probs(trainer.model, heldout_ids, seq_len) if recurrent else None
    stream = nats(heldout_neural) if recurrent else None
    nats_per_char = stream if stream is not None else window
    texts = [text] if isinstance(text, (str, os.PathLike)) else text
    data_name = dataset if dataset is not None else ", ".join(map(str, texts))
    results = dict(
        run_record("charlm", preset_name, preset, quick, net, data_name, seed, max_grad_norm, trainer),
        heldout_nats_per_char=nats_per_char, heldout_bits_per_char=nats_per_char / math.log(2),
        heldout_window_nats_per_char=window, heldout_stream_nats_per_char=stream,
        heldout_chars=len(heldout_text), heldout_unknown_chars=heldout_unknown,
        train_chars=len(train_text), validation_chars=len(valid_text),
        sources=[dataclasses.asdict(s) for s in corpus.sources], heldout_source=corpus.heldout_source,
        gutenberg_1268=corpus.is_island,
        tbptt=tbptt, jitter=preset.get("jitter", False) and tbptt == "windows", seq_len=seq_len,
        state_reset=preset.get("state_reset", 0.0) if tbptt == "stateful" else None,
        unigram_entropy_nats=unigram_entropy(train_text),
        best_validation_loss=trainer.state.best_metric, train_time_s=round(train_seconds, 1),
    )
    if trainer.is_world_process_zero():
        if heldout_neural is None:
            heldout_neural = char_log_probs(trainer.model, heldout_ids, seq_len)
        results.update(evaluate_extras(
            trainer.model, tokenizer, train_text=train_text, valid_text=valid_text, heldout_text=heldout_text,
            heldout_neural=heldout_neural, window=seq_len, ngram_order=ngram_order, dynamic=dynamic,
            dynamic_tune_chars=5_000 if quick else 10_000,
            dynamic_max_chars=20_000 if quick else None, second_text=second[0], second_name=second[1],
            samples_prompt=sample_prompt(heldout_text) if samples else None,
        ))
    return finish_run(trainer, output_dir, results, clock)
