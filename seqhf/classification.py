"""Text classification through `transformers.Trainer`: length-bucketed batches, word vectors, evaluation.

`train_classifier` loads a dataset, builds the word tokenizer on its training texts and the model of a
preset (see `seqhf.presets`), trains, evaluates on the test split and leaves a folder that
`pipeline("text-classification", ...)` loads.
"""

import time
from contextlib import contextmanager
from pathlib import Path

import torch
from datasets import DatasetDict
from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, set_seed

from . import data as seqdata
from .embeddings import cached_word_vectors, load_embeddings
from .metrics import compute_classification_metrics
from .presets import get_preset
from .tokenization import build_word_tokenizer
from .training import RankLog, SetupError, build_model, finish_run, make_training_args, resume_checkpoint, run_record

ID2LABEL = {0: "negative", 1: "positive"}
WORD_VECTOR_CACHE = "_cache"  # under the output folder; "_" folders are not uploaded to the Hub


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
        print(f"[{name}] {self.seconds[name]:.0f} s ({time.process_time() - cpu:.0f} s CPU)", flush=True)


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

    def encode(batch, truncate):
        ids = tokenizer(batch["text"], add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        if truncate:
            ids = [truncate_ids(x, preset["max_length"], preset["truncation"]) for x in ids]
        ids = [x or [unk] for x in ids]
        return {"input_ids": ids, "length": [len(x) for x in ids]}

    # An LSTM reads any length: only training is cut (for speed); validation and test reviews are read
    # whole, as `pipeline` users' reviews are. A Transformer is cut everywhere (its positions end).
    whole_eval = preset["arch"] == "lstm"
    columns = [c for c in raw["train"].column_names if c != "label"]
    encoded = DatasetDict({
        split: ds.map(encode, batched=True, remove_columns=columns, desc=f"Tokenizing {split}",
                      fn_kwargs=dict(truncate=split == "train" or not whole_eval))
        for split, ds in raw.items()
    })
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


def train_sentiment(model="lstm", dataset=seqdata.LOCAL_IMDB, output_dir="runs/sentiment", *, quick=False,
                    epochs=None, max_grad_norm=1.0, seed=42, resume=False, max_steps=-1, callbacks=(),
                    **train_overrides) -> dict:
    """Train a sentiment classifier on IMDb and return the results written to eval_results.json."""
    start = time.time()
    preset_name, preset = (model if isinstance(model, str) else "custom"), get_preset("sentiment", model, quick)
    if epochs is not None and epochs <= 0:
        raise SetupError(f"--epochs must be positive, got {epochs}.")
    set_seed(seed)
    phases = PhaseTimes()
    with phases("data and tokenizer"):
        tokenizer, encoded, texts = prepare_sentiment_data(dataset, preset, seed)
    set_seed(seed)
    net = build_model("classification", preset, tokenizer, id2label=ID2LABEL,
                      label2id={v: k for k, v in ID2LABEL.items()})
    args = make_training_args(output_dir, preset["train"], task="classification", max_grad_norm=max_grad_norm, seed=seed,
                              epochs=epochs, max_steps=max_steps, quick=quick, **train_overrides)
    checkpoint = resume_checkpoint(output_dir, resume)
    if texts and checkpoint is None:
        # The main process learns the vectors first; the others (same key) read its cache.
        with args.main_process_first(desc="word vectors"), phases("word vectors"):
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
    with phases("training (with validation)"):
        trainer.train(resume_from_checkpoint=checkpoint)
    trainer.remove_callback(EarlyStoppingCallback)  # the final evaluations are not for early stopping
    with phases("test evaluation"):
        test = trainer.evaluate(encoded["test"].remove_columns("length"), metric_key_prefix="test")
    results = dict(
        run_record("sentiment", preset_name, preset, quick, net, dataset, seed, max_grad_norm, trainer),
        vocab_size=len(tokenizer), max_length=preset["max_length"], truncation=preset["truncation"],
        eval_truncation="none (whole reviews)" if preset["arch"] == "lstm" else preset["truncation"],
        word_vectors=(dict(preset["word_vectors"], texts=len(texts)) if texts else None),
        train_examples=len(encoded["train"]), validation_examples=len(encoded["validation"]),
        test_accuracy=test["test_accuracy"], test_f1=test["test_f1"], test_loss=test["test_loss"],
        test_examples=len(encoded["test"]),
        best_validation_accuracy=trainer.state.best_metric,
        phase_wall_time_s=phases.seconds,
    )
    return finish_run(trainer, output_dir, results, start)



def classify(folder, texts, **pipeline_kwargs) -> list:
    """Classify `texts` with the sentiment model saved in `folder`, through `pipeline`."""
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(folder), **pipeline_kwargs)
    return classifier(list(texts), truncation=True)
