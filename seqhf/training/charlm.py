"""Character language models on any text through `transformers.Trainer`: windows or stateful TBPTT,
held-out evaluation beside an n-gram baseline (the extra evaluations live in `seqhf.evaluation.charlm`)."""

import dataclasses
import math
import os

import torch
import torch.nn.functional as F
from transformers import EarlyStoppingCallback, default_data_collator, set_seed

from ..data import char_text as seqdata
from ..evaluation.charlm import char_log_probs, evaluate_extras
from ..evaluation.dynamic_eval import nats
from ..evaluation.metrics import lm_metrics
from .charlm_inputs import (  # noqa: F401 (load_corpus re-exported)
    EvalCaps,
    check_text_options,
    load_corpus,
    load_second_text,
    prepare_inputs,
    stream_inputs,
)
from .common import (
    RankLog,
    RunClock,
    SetupError,
    build_model,
    check_run_lengths,
    finish_run,
    make_training_args,
    resume_checkpoint,
    run_record,
)
from .lm_processes import RankSeeds, SharedWindowEvaluation, check_shared_batch
from .presets import get_preset
from .run_folder import holds_output_folder


class CharLMTrainer(SharedWindowEvaluation):
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
                and self._state[0].shape[0] == input_ids.shape[0]
            )
            if carry:
                keep = 1.0
                if self.state_reset > 0:  # the global RNG, which the Trainer seeds and checkpoints
                    keep = (torch.rand(input_ids.shape[0], device=input_ids.device) >= self.state_reset)[:, None, None]
                kwargs["initial_state"] = tuple(s.detach() * keep for s in self._state)
        outputs = model(input_ids=input_ids, **kwargs)
        loss = F.cross_entropy(outputs.logits.float().flatten(0, 1), targets.flatten())
        if stateful:
            self._state = outputs.final_state
        return (loss, {"loss": loss}) if return_outputs else loss

    def window_metrics(self, loss: float, prefix: str) -> dict:
        return lm_metrics(loss, prefix)


class StreamChunks(torch.utils.data.Dataset):
    """Chunks for stateful TBPTT: each batch row reads its own contiguous stream of the text.

    The text is cut into `batch_size` streams, and item `b * batch_size + r` is chunk b of stream r, so that
    sequential batches give row r the next chunk of its stream. With several processes `train_charlm` has
    accelerate split each batch among them (`split_batches`): process p reads the p-th share of every batch's
    rows, so its row r too continues its row r of the previous step.
    """

    def __init__(self, ids, seq_len: int, batch_size: int):
        self.ids, self.seq_len, self.batch_size = ids, seq_len, batch_size
        self.stream_len = (len(ids) - 1) // batch_size
        self.chunks_per_stream = self.stream_len // seq_len
        if self.chunks_per_stream == 0:
            raise SetupError(
                f"The training text ({len(ids)} characters) is too short for {batch_size} streams of --seq-len {seq_len}."
            )

    def __len__(self):
        return self.chunks_per_stream * self.batch_size

    def __getitem__(self, i):
        step, row = divmod(i, self.batch_size)
        start = row * self.stream_len + step * self.seq_len
        chunk = seqdata.window(self.ids, start, start + self.seq_len + 1)
        return {"input_ids": chunk[:-1], "labels": chunk[:-1].clone(), "shift_labels": chunk[1:],
                "stream_position": torch.tensor(step)}


def stream_nats_per_char(model, ids, chunk: int = 2048) -> float:
    """Mean next-character loss over `ids` read as one stream, the recurrent state carried throughout."""
    return nats(char_log_probs(model, ids, window=chunk, chunk=chunk))


@holds_output_folder
def train_charlm(model="lstm", text=None, output_dir="runs/charlm", *, heldout=None, dataset=None,
                 text_column="text", dataset_split="train", max_chars=None, quick=False, tbptt=None, seq_len=None,
                 epochs=None, max_grad_norm=1.0, seed=42, resume=False, max_steps=-1, callbacks=(),
                 validation_fraction=0.05, ngram_order=7, dynamic=True, also_eval=None, also_eval_chars=100_000,
                 samples=True, eval_max_chars=None, ngram_train_chars=None, dynamic_eval_chars=None,
                 streaming=False, **train_overrides) -> dict:
    """Train a character LM and return its results.

    The text, one of the two: `text` (one or more files, or a folder of .txt files; The Mysterious Island is
    Gutenberg's 1268-0.txt) with the last 10% of each held out, or all of it for training and `heldout` for
    evaluation; or the `text_column` of `dataset` (its first `max_chars` characters). Beside the static held-out figure the run reports an n-gram baseline, the neural + n-gram
    mixture, dynamic evaluation (`dynamic`), the figure on a second text (`also_eval`) and seeded samples.
    Evaluation is capped (`EvalCaps`; None keeps a default, 0 lifts a cap): `eval_max_chars` held-out (and
    validation) characters scored, `ngram_train_chars` training characters the n-gram counts,
    `dynamic_eval_chars` held-out characters read by dynamic evaluation. `streaming`: text files larger than
    memory, read a chunk at a time into id files under `output_dir/_cache` that training memory-maps.
    """
    clock = RunClock()
    preset_name, preset = (model if isinstance(model, str) else "custom"), get_preset("charlm", model, quick)
    tbptt = tbptt or preset["tbptt"]
    seq_len = preset["seq_len"] if seq_len is None else seq_len  # 0 is refused below, not the preset's
    if tbptt not in ("windows", "stateful"):
        raise SetupError(f"--tbptt must be 'windows' or 'stateful', got {tbptt!r}.")
    if tbptt == "stateful" and preset["arch"] != "lstm":
        raise SetupError("--tbptt stateful carries a recurrent state: use it with an LSTM/GRU preset (lstm, book, cpu).")
    check_run_lengths(seq_len, epochs, max_steps)
    check_text_options(text, dataset, max_chars, ngram_order, also_eval, also_eval_chars)
    positions = preset["model"].get("max_position_embeddings")
    if positions is not None and seq_len > positions:
        raise SetupError(f"--seq-len {seq_len} is longer than the model's max_position_embeddings={positions}.")
    caps = EvalCaps.of(quick, heldout_chars=eval_max_chars, ngram_train_chars=ngram_train_chars,
                       dynamic_chars=dynamic_eval_chars)
    second = load_second_text(also_eval, also_eval_chars, text_column) if also_eval else (None, None)
    quick_chars = preset["train_chars"] if quick else None
    if streaming:
        if dataset is not None or not text:
            raise SetupError("--streaming reads text files (--text); a dataset is read whole.")
        inputs, corpus = stream_inputs(text, heldout, os.path.join(output_dir, "_cache", "charlm-ids"), seq_len=seq_len,
                                       validation_fraction=validation_fraction, quick_train_chars=quick_chars, caps=caps)
        island = False
    else:
        corpus = load_corpus(text, heldout, dataset, text_column, dataset_split, max_chars)
        inputs = prepare_inputs(corpus, seq_len=seq_len, validation_fraction=validation_fraction,
                                quick_train_chars=quick_chars, caps=caps)
        island = corpus.is_island
    sources, heldout_source = corpus.sources, corpus.heldout_source
    del corpus  # the run keeps the compact ids and the capped texts only
    tokenizer, train_ids, valid_ids, heldout_ids = (inputs.tokenizer, inputs.train_ids, inputs.valid_ids,
                                                    inputs.scored_heldout_ids)

    set_seed(seed)
    net = build_model("charlm", preset, tokenizer)
    positions = getattr(net.config, "max_position_embeddings", None)
    if positions:  # the saved tokenizer's `truncation=True` then cuts where the model's positions end
        tokenizer.model_max_length = positions
    args = make_training_args(
        output_dir, preset["train"], task="charlm", max_grad_norm=max_grad_norm, seed=seed, epochs=epochs,
        max_steps=max_steps, quick=quick,
        train_sampling_strategy="sequential" if tbptt == "stateful" else "random",
        # With several processes the others wait at the last barrier while the main one runs the extra evaluations
        # alone (n-gram, dynamic evaluation: minutes to an hour on a large text), past the default 30 minutes.
        ddp_timeout=6 * 3600,
        # As the classifier's: the preset's batch is the batch of one optimizer step whatever the number of
        # processes, each taking its share of its rows (--processes 2: 8 of the cpu preset's 16 streams each), so a
        # recipe takes the same steps on the same data in one process or several, only faster.
        **{"accelerator_config": {"split_batches": True}, **train_overrides},
    )
    check_shared_batch(args)
    if tbptt == "stateful":
        # One step's batch reads the streams as one process would; accelerate gives each process the same rows
        # of every batch (split_batches), so row r of a process continues its row r of the previous step.
        train_dataset = StreamChunks(train_ids, seq_len, args.per_device_train_batch_size)
    else:
        train_dataset = seqdata.CharChunks(train_ids, seq_len, jitter=preset.get("jitter", False))
    trainer = CharLMTrainer(
        model=net, args=args, train_dataset=train_dataset, eval_dataset=seqdata.CharChunks(valid_ids, seq_len),
        processing_class=tokenizer, data_collator=default_data_collator,
        callbacks=[EarlyStoppingCallback(preset["train"]["patience"]), clock, RankSeeds(), *callbacks], tbptt=tbptt,
        state_reset=preset.get("state_reset", 0.0),
    )
    trainer.train(resume_from_checkpoint=resume_checkpoint(output_dir, resume, clock, model=net, tokenizer=tokenizer))
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
        heldout_chars=inputs.heldout_chars, heldout_unknown_chars=inputs.heldout_unknown,
        train_chars=inputs.train_chars, validation_chars=inputs.validation_chars, **inputs.caps_record(),
        sources=[dataclasses.asdict(s) for s in sources], heldout_source=heldout_source,
        gutenberg_1268=island,
        tbptt=tbptt, jitter=preset.get("jitter", False) and tbptt == "windows", seq_len=seq_len,
        state_reset=preset.get("state_reset", 0.0) if tbptt == "stateful" else None,
        unigram_entropy_nats=inputs.unigram_entropy_nats,
        best_validation_loss=trainer.state.best_metric, train_time_s=round(train_seconds, 1),
    )
    if trainer.is_world_process_zero():
        if heldout_neural is None:
            heldout_neural = char_log_probs(trainer.model, heldout_ids, seq_len)
        results.update(evaluate_extras(
            trainer.model, tokenizer, train_text=inputs.ngram_train_text, valid_text=inputs.valid_text,
            heldout_text=inputs.heldout_text, heldout_neural=heldout_neural, window=seq_len, ngram_order=ngram_order,
            dynamic=dynamic, dynamic_tune_chars=5_000 if quick else 10_000, dynamic_max_chars=caps.dynamic_chars,
            second_text=second[0], second_name=second[1], samples_prompt=inputs.prompt if samples else None,
            valid_ids=inputs.scored_valid_ids, heldout_ids=heldout_ids,
        ))
    return finish_run(trainer, output_dir, results, clock)
