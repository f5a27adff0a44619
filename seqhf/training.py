"""Training of the chapter's two projects through `transformers.Trainer`.

`train_sentiment` (IMDb) and `train_charlm` (The Mysterious Island) build the data, the model of a
preset (see `seqhf.presets`), `TrainingArguments` (clipping, warmup + decay, evaluation and saving every
epoch, best-model selection, early stopping, seeds), train, evaluate, and leave in `output_dir` a folder
that `pipeline(...)` loads: model.safetensors, config.json with `auto_map`, the code files, the tokenizer,
`eval_results.json` and the Trainer's logs. They run unchanged under `accelerate launch`.
"""

import json
import math
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    Trainer,
    TrainingArguments,
    default_data_collator,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint
from transformers.integrations import is_tensorboard_available

from . import data as seqdata
from .configuration_lstm import SeqLSTMConfig
from .configuration_transformer import SeqTransformerConfig
from .embeddings import cached_word_vectors, load_embeddings
from .hub import write_model_card
from .metrics import compute_classification_metrics, lm_metrics, unigram_entropy
from .modeling_lstm import SeqLSTMForCausalLM, SeqLSTMForSequenceClassification
from .modeling_transformer import SeqTransformerForCausalLM, SeqTransformerForSequenceClassification
from .presets import get_preset
from .tokenization import build_char_tokenizer, build_word_tokenizer

ID2LABEL = {0: "negative", 1: "positive"}
EVAL_RESULTS = "eval_results.json"
WORD_VECTOR_CACHE = "_cache"  # under the output folder; "_" folders are not uploaded to the Hub
RANK_LOG_ENV = "SEQHF_RANK_LOG"  # a folder: each rank writes what it trained on (used by the multi-process test)


class SetupError(ValueError):
    """Bad input found before training starts (missing data, empty split, bad labels, bad --seq-len)."""


# ---------------------------------------------------------------- environment


def hardware_string() -> str:
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"{n} x {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def _use_bf16() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def make_training_args(output_dir, train: dict, *, task, max_grad_norm=1.0, seed=42, epochs=None, max_steps=-1,
                       quick=False, **overrides) -> TrainingArguments:
    """TrainingArguments from a preset's `train` recipe."""
    if max_grad_norm is None or max_grad_norm < 0:
        raise SetupError(f"--max-grad-norm must be >= 0 (0 disables clipping), got {max_grad_norm}.")
    sentiment = task == "sentiment"
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
        load_best_model_at_end=True,
        metric_for_best_model="accuracy" if sentiment else "loss",
        greater_is_better=sentiment,
        logging_strategy="steps",
        logging_steps=10 if quick else 50,
        logging_first_step=True,
        report_to=["tensorboard"] if is_tensorboard_available() else "none",
        seed=seed,
        data_seed=seed,
        bf16=_use_bf16(),
        tf32=torch.cuda.is_available() or None,
        remove_unused_columns=sentiment,
        prediction_loss_only=not sentiment,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        # Several processes on a machine without GPUs (`accelerate launch --multi_gpu` there): Trainer only
        # sets up gloo DDP when told to use the CPU.
        use_cpu=not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1,
    )
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


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
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "warmup_steps": args.warmup_steps,
        "weight_decay": args.weight_decay,
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "optim": str(getattr(args.optim, "value", args.optim)),
        "num_train_epochs": args.num_train_epochs,
        "max_steps": args.max_steps,
        "bf16": args.bf16,
        "early_stopping_patience": early_stopping_patience,
    }


# ---------------------------------------------------------------- trainers


class RankLog:
    """When $SEQHF_RANK_LOG names a folder, each process records the first rows it trained on."""

    def __init__(self):
        self.folder = os.environ.get(RANK_LOG_ENV)
        self.rows = []

    def record(self, input_ids):
        if self.folder and len(self.rows) < 64:
            self.rows.extend(input_ids[:, :16].tolist())

    def write(self, args: TrainingArguments, wrote_output: bool):
        if not self.folder:
            return
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        record = dict(rank=args.process_index, world_size=args.world_size, rows=self.rows, wrote_output=wrote_output)
        with open(Path(self.folder) / f"rank{args.process_index}.json", "w") as f:
            json.dump(record, f)


class LengthBucketSampler(torch.utils.data.Sampler):
    """Batches of reviews of (almost) equal length, in a random order of batches each epoch.

    Sorting by length with random tie-breaking leaves a spread of a token or two inside a batch, so
    little work goes to padding. The one short batch stays last so that, under several processes,
    accelerate's batch sharding still cuts exactly these batches.
    """

    def __init__(self, lengths, batch_size: int, seed: int = 0):
        self.lengths = torch.as_tensor(lengths, dtype=torch.float64)
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.lengths)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.argsort(self.lengths + torch.rand(len(self.lengths), generator=g, dtype=torch.float64))
        n_full = len(order) // self.batch_size * self.batch_size
        full = order[:n_full].view(-1, self.batch_size)
        full = full[torch.randperm(len(full), generator=g)].flatten()
        return iter(torch.cat([full, order[n_full:]]).tolist())


class SentimentTrainer(Trainer):
    """Trainer with length-bucketed batches.

    On CPU, torch's LSTM is several times slower on packed (padded) batches than on full ones, so for
    LSTMs each batch is run as groups of equal-length rows without padding. The result is the same (the
    models are padding-invariant); the loss is the row-weighted mean of the groups' losses.
    """

    def __init__(self, *args, lengths=None, split_by_length=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.lengths, self.split_by_length = lengths, split_by_length
        self.model_accepts_loss_kwargs = False  # our losses are means; let the Trainer scale for accumulation
        self.rank_log = RankLog()

    def _get_train_sampler(self, train_dataset=None):
        if self.lengths is None:
            return super()._get_train_sampler(train_dataset)
        return LengthBucketSampler(self.lengths, self.args.per_device_train_batch_size, self.args.data_seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            self.rank_log.record(inputs["input_ids"])
        mask = inputs.get("attention_mask")
        # Several forward passes before one backward are not allowed under DDP: split only in one process
        # or without gradients.
        can_split = self.split_by_length and (not model.training or self.args.world_size == 1)
        if not can_split or mask is None or bool(mask.all()):
            outputs = model(**inputs)
            return (outputs.loss, outputs) if return_outputs else outputs.loss
        lengths, labels = mask.sum(dim=1), inputs["labels"]
        loss, logits = 0.0, None
        for length in lengths.unique().tolist():
            rows = (lengths == length).nonzero().squeeze(1)
            # Right padding (the word tokenizer's side): the real tokens are the first `length`.
            out = model(input_ids=inputs["input_ids"][rows, :length], labels=labels[rows])
            loss = loss + out.loss * len(rows)
            if logits is None:
                logits = out.logits.new_zeros(len(labels), out.logits.shape[-1])
            logits[rows] = out.logits
        loss = loss / len(labels)
        return (loss, {"loss": loss, "logits": logits}) if return_outputs else loss


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


# ---------------------------------------------------------------- sentiment


def truncate_ids(ids: list, max_length: int, mode: str = "head") -> list:
    """Keep the first `max_length` ids ("head"), or the first quarter and the last three quarters ("head_tail")."""
    if len(ids) <= max_length:
        return ids
    if mode == "head":
        return ids[:max_length]
    head = max_length // 4
    return ids[:head] + ids[len(ids) - (max_length - head) :]


def prepare_sentiment_data(dataset: str, preset: dict, seed: int = 42):
    """Load IMDb, check it, build the word tokenizer on the training texts, and tokenize every split."""
    quick = "train_size" in preset
    try:
        raw = seqdata.load_imdb(str(dataset), validation_size=preset.get("validation_size", 0.1), seed=seed)
    except (FileNotFoundError, ValueError) as err:
        if "corresponds to no data" in str(err):  # datasets' words for a split file without rows
            raise SetupError(f"A split of {dataset!r} is empty ({err}).") from err
        raise SetupError(str(err)) from err
    unlabelled = raw.pop("unsupervised", None)
    if quick:
        raw["train"] = raw["train"].shuffle(seed=seed).select(range(min(preset["train_size"], len(raw["train"]))))
        raw["test"] = raw["test"].shuffle(seed=seed).select(range(min(preset["test_size"], len(raw["test"]))))
    for split in ("train", "validation", "test"):
        if len(raw[split]) == 0:
            raise SetupError(f"The {split!r} split of {dataset!r} is empty.")
        labels = set(raw[split].unique("label"))
        if not labels <= set(ID2LABEL):
            raise SetupError(
                f"The {split!r} split of {dataset!r} has labels {sorted(labels - set(ID2LABEL))} outside "
                f"id2label={ID2LABEL}."
            )
    tokenizer = build_word_tokenizer(raw["train"]["text"], vocab_size=preset["vocab_size"],
                                     model_max_length=preset["max_length"])
    unk = tokenizer.unk_token_id

    def encode(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        ids = [truncate_ids(x, preset["max_length"], preset["truncation"]) or [unk] for x in ids]
        return {"input_ids": ids, "length": [len(x) for x in ids]}

    columns = [c for c in raw["train"].column_names if c != "label"]
    encoded = raw.map(encode, batched=True, remove_columns=columns, desc="Tokenizing")
    # Evaluation in length order: fewer distinct lengths per batch, hence less padding work.
    for split in ("validation", "test"):
        encoded[split] = encoded[split].sort("length")
    return tokenizer, encoded, word_vector_texts(raw["train"], unlabelled, preset)


def word_vector_texts(train, unlabelled, preset: dict) -> list:
    """The texts word2vec learns from: the training reviews and the unlabelled ones (never validation or test)."""
    if not preset.get("word_vectors"):
        return []
    texts = list(train["text"])
    if unlabelled is None or len(unlabelled) == 0:
        print("No unlabelled reviews in the dataset: word vectors learn from the training reviews alone.")
    else:
        texts += list(unlabelled["text"])
    return texts


def build_model(task: str, preset: dict, tokenizer, **config_kwargs):
    """The preset's model, sized to the tokenizer's vocabulary."""
    ids = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    if task == "charlm":
        ids["bos_token_id"] = tokenizer.bos_token_id
        ids["is_decoder"] = True
    else:
        config_kwargs.update(id2label=ID2LABEL, label2id={v: k for k, v in ID2LABEL.items()})
    if preset["arch"] == "lstm":
        config = SeqLSTMConfig(**preset["model"], **ids, **config_kwargs)
        model_class = SeqLSTMForCausalLM if task == "charlm" else SeqLSTMForSequenceClassification
    else:
        config = SeqTransformerConfig(**preset["model"], **ids, **config_kwargs)
        model_class = SeqTransformerForCausalLM if task == "charlm" else SeqTransformerForSequenceClassification
    return model_class(config)


def _resume_checkpoint(output_dir, resume: bool):
    if not resume:
        return None
    last = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
    if last is None:
        print(f"--resume: no checkpoint in {output_dir}, starting from scratch.")
    return last


def train_sentiment(model="lstm", dataset=seqdata.LOCAL_IMDB, output_dir="runs/sentiment", *, quick=False,
                    epochs=None, max_grad_norm=1.0, seed=42, resume=False, max_steps=-1, callbacks=(),
                    **train_overrides) -> dict:
    """Train a sentiment classifier on IMDb and return the results written to eval_results.json."""
    start = time.time()
    preset_name, preset = (model if isinstance(model, str) else "custom"), get_preset("sentiment", model, quick)
    if epochs is not None and epochs <= 0:
        raise SetupError(f"--epochs must be positive, got {epochs}.")
    set_seed(seed)
    tokenizer, encoded, texts = prepare_sentiment_data(dataset, preset, seed)
    set_seed(seed)
    net = build_model("sentiment", preset, tokenizer)
    args = make_training_args(output_dir, preset["train"], task="sentiment", max_grad_norm=max_grad_norm, seed=seed,
                              epochs=epochs, max_steps=max_steps, quick=quick, **train_overrides)
    checkpoint = _resume_checkpoint(output_dir, resume)
    if texts and checkpoint is None:
        # The main process learns the vectors first; the others (same key) read its cache.
        with args.main_process_first(desc="word vectors"):
            vectors, found = cached_word_vectors(Path(output_dir) / WORD_VECTOR_CACHE, tokenizer, texts,
                                                 net.config.embedding_size, seed=seed, **preset["word_vectors"])
        load_embeddings(net, vectors, found)
    lstm_on_cpu = preset["arch"] == "lstm" and not torch.cuda.is_available()
    trainer = SentimentTrainer(
        model=net,
        args=args,
        train_dataset=encoded["train"].remove_columns("length"),
        eval_dataset=encoded["validation"].remove_columns("length"),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_classification_metrics,
        callbacks=[EarlyStoppingCallback(preset["train"]["patience"]), *callbacks],
        lengths=encoded["train"]["length"],
        split_by_length=lstm_on_cpu,
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.remove_callback(EarlyStoppingCallback)  # the final evaluations are not for early stopping
    test = trainer.evaluate(encoded["test"].remove_columns("length"), metric_key_prefix="test")
    results = dict(
        run_record("sentiment", preset_name, preset, quick, net, dataset, seed, max_grad_norm, trainer),
        vocab_size=len(tokenizer), max_length=preset["max_length"], truncation=preset["truncation"],
        word_vectors=(dict(preset["word_vectors"], texts=len(texts)) if texts else None),
        train_examples=len(encoded["train"]), validation_examples=len(encoded["validation"]),
        test_accuracy=test["test_accuracy"], test_f1=test["test_f1"], test_loss=test["test_loss"],
        test_examples=len(encoded["test"]),
        best_validation_accuracy=trainer.state.best_metric,
    )
    return finish_run(trainer, output_dir, results, start)


# ---------------------------------------------------------------- char LM


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
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=_use_bf16()):
            out = model(input_ids=piece[:, :-1], initial_state=state)
        state = out.final_state
        total += F.cross_entropy(out.logits.float()[0], piece[0, 1:], reduction="sum").item()
    return total / (len(ids) - 1)


def train_charlm(model="lstm", text=seqdata.LOCAL_ISLAND, output_dir="runs/charlm", *, quick=False, tbptt=None,
                 seq_len=None, epochs=None, max_grad_norm=1.0, seed=42, resume=False, max_steps=-1, callbacks=(),
                 validation_fraction=0.05, **train_overrides) -> dict:
    """Train a character LM on The Mysterious Island (last 10% held out) and return its results."""
    start = time.time()
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
        callbacks=[EarlyStoppingCallback(preset["train"]["patience"]), *callbacks], tbptt=tbptt,
    )
    trainer.train(resume_from_checkpoint=_resume_checkpoint(output_dir, resume))
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
    return finish_run(trainer, output_dir, results, start)


# ---------------------------------------------------------------- output folder


def finish_run(trainer: Trainer, output_dir, results: dict, start: float) -> dict:
    """Save the model, tokenizer, trainer state and eval_results.json (main process only), then the card."""
    results["wall_time_s"] = round(time.time() - start, 1)
    results["hardware"] = hardware_string()
    trainer.save_model(str(output_dir))  # model.safetensors, config (auto_map), code files, tokenizer
    trainer.save_state()
    main = trainer.is_world_process_zero()
    if main:
        with open(Path(output_dir) / EVAL_RESULTS, "w") as f:
            json.dump(results, f, indent=2)
        try:
            write_model_card(output_dir)
        except Exception as err:  # the card is a courtesy: never lose a finished run over it
            print(f"Model card not written: {err}")
    trainer.rank_log.write(trainer.args, wrote_output=main)
    trainer.accelerator.wait_for_everyone()
    return results


def classify(folder, texts, **pipeline_kwargs) -> list:
    """Classify `texts` with the sentiment model saved in `folder`, through `pipeline`."""
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(folder), **pipeline_kwargs)
    return classifier(list(texts), truncation=True)
