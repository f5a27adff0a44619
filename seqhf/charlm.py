"""Character language models through `transformers.Trainer`: windows or stateful TBPTT, held-out evaluation."""

import math

import torch
import torch.nn.functional as F
from transformers import EarlyStoppingCallback, Trainer, default_data_collator, set_seed

from . import data as seqdata
from .metrics import lm_metrics, unigram_entropy
from .presets import get_preset
from .tokenization import build_char_tokenizer
from .training import RankLog, RunClock, SetupError, build_model, finish_run, make_training_args, resume_checkpoint, run_record, use_bf16


class CharLMTrainer(Trainer):
    """Trainer for the char LM; with `tbptt="stateful"` the recurrent state is carried between batches.

    Batch k+1 continues batch k row by row (see `StreamChunks`); the state is detached at the chunk
    boundary, so gradients flow back through one chunk only, and is reset where streams restart
    (`stream_position` 0, i.e. each epoch).
    """

    def __init__(self, *args, tbptt="windows", **kwargs):
        super().__init__(*args, **kwargs)
        self.tbptt = tbptt
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
                kwargs["initial_state"] = tuple(s.detach() for s in self._state)
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


@torch.no_grad()
def stream_nats_per_char(model, ids: torch.Tensor, chunk: int = 2048) -> float:
    """Mean next-character loss over `ids` read as one stream, the recurrent state carried throughout."""
    model.eval()
    device = next(model.parameters()).device
    total, state = 0.0, None
    ids = ids.to(device)
    for start in range(0, len(ids) - 1, chunk):
        piece = ids[start : start + chunk + 1].unsqueeze(0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16()):
            out = model(input_ids=piece[:, :-1], initial_state=state)
        state = out.final_state
        total += F.cross_entropy(out.logits.float()[0], piece[0, 1:], reduction="sum").item()
    return total / (len(ids) - 1)


def train_charlm(model="lstm", text=seqdata.LOCAL_ISLAND, output_dir="runs/charlm", *, quick=False, tbptt=None,
                 seq_len=None, epochs=None, max_grad_norm=1.0, seed=42, resume=False, max_steps=-1, callbacks=(),
                 validation_fraction=0.05, **train_overrides) -> dict:
    """Train a character LM on The Mysterious Island (last 10% held out) and return its results."""
    clock = RunClock()
    preset_name, preset = (model if isinstance(model, str) else "custom"), get_preset("charlm", model, quick)
    tbptt = tbptt or preset["tbptt"]
    seq_len = seq_len or preset["seq_len"]
    if tbptt not in ("windows", "stateful"):
        raise SetupError(f"--tbptt must be 'windows' or 'stateful', got {tbptt!r}.")
    if tbptt == "stateful" and preset["arch"] != "lstm":
        raise SetupError("--tbptt stateful carries a recurrent state: use it with --model lstm or book.")
    if seq_len <= 0:
        raise SetupError(f"--seq-len must be positive, got {seq_len}.")
    positions = preset["model"].get("max_position_embeddings")
    if positions is not None and seq_len > positions:
        raise SetupError(f"--seq-len {seq_len} is longer than the model's max_position_embeddings={positions}.")
    try:
        book = seqdata.read_island_text(str(text))
    except (FileNotFoundError, ValueError) as err:
        raise SetupError(str(err)) from err
    train_text, heldout_text = seqdata.split_heldout(book, 0.1)
    cut = int(len(train_text) * (1 - validation_fraction))
    train_text, valid_text = train_text[:cut], train_text[cut:]
    if quick:
        train_text, valid_text = train_text[: preset["train_chars"]], valid_text[:20_000]
    for name, part in (("training", train_text), ("validation", valid_text), ("held-out", heldout_text)):
        if len(part) < seq_len + 1:
            raise SetupError(f"The {name} text ({len(part)} characters) is shorter than --seq-len + 1 = {seq_len + 1}.")
    tokenizer = build_char_tokenizer(book)
    train_ids, valid_ids, heldout_ids = (seqdata.encode_text(tokenizer, t) for t in (train_text, valid_text, heldout_text))

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
    )
    trainer.train(resume_from_checkpoint=resume_checkpoint(output_dir, resume, clock))
    trainer.remove_callback(EarlyStoppingCallback)  # the final evaluations are not for early stopping
    window = trainer.evaluate(seqdata.CharChunks(heldout_ids, seq_len), metric_key_prefix="heldout")["heldout_loss"]
    stream = stream_nats_per_char(trainer.model, heldout_ids) if preset["arch"] == "lstm" else None
    nats = stream if stream is not None else window
    results = dict(
        run_record("charlm", preset_name, preset, quick, net, text, seed, max_grad_norm, trainer),
        heldout_nats_per_char=nats, heldout_bits_per_char=nats / math.log(2),
        heldout_window_nats_per_char=window, heldout_stream_nats_per_char=stream,
        heldout_chars=len(heldout_text), train_chars=len(train_text), validation_chars=len(valid_text),
        tbptt=tbptt, jitter=preset.get("jitter", False) and tbptt == "windows", seq_len=seq_len,
        unigram_entropy_nats=unigram_entropy(train_text),
        best_validation_loss=trainer.state.best_metric,
    )
    return finish_run(trainer, output_dir, results, clock)
