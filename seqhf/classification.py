"""Text classification through `transformers.Trainer`: length-bucketed batches, word vectors, evaluation.

`train_classifier` loads a dataset, builds the word tokenizer on its training texts and the model of a
preset (see `seqhf.presets`), trains, evaluates on the test split and leaves a folder that
`pipeline("text-classification", ...)` loads.
"""

import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, set_seed
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

from . import data as seqdata
from . import ulmfit
from .baseline import tfidf_in_background, tfidf_logistic_regression
from .classification_data import ClassificationData, DataError, load_classification_data, load_unlabelled_texts
from .embeddings import cached_word_vectors, load_embeddings
from .metrics import MULTI_LABEL_THRESHOLD, classification_metrics, compute_classification_metrics, confusion_matrix
from .plots import CONFUSION_NAME, plot_confusion_matrix
from .presets import SENTIMENT_SMALL_DATA, merge_overrides, get_preset
from .runtime import cpu_cores, is_main_process
from .tokenization import build_word_tokenizer
from .training import RankLog, RunClock, SetupError, TimeBudget, build_model, finish_run, make_training_args, resume_checkpoint, run_record

IMDB_LABELS = ("negative", "positive")
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


def trim_to_shortest(input_ids: torch.Tensor, lengths: torch.Tensor, mode: str = "head") -> torch.Tensor:
    """Every row of a right-padded batch cut to the batch's shortest length, as `truncate_ids` cuts a text
    ("head": its first tokens; "head_tail": the first quarter and the end)."""
    shortest = int(lengths.min())
    positions = torch.arange(shortest, device=input_ids.device).expand(len(input_ids), shortest)
    if mode == "head_tail":
        head = shortest // 4
        positions = torch.where(positions < head, positions, positions + (lengths - shortest).unsqueeze(1))
    return input_ids.gather(1, positions)


def trims_little(lengths: torch.Tensor, keep: float = 0.9) -> bool:
    """Whether cutting a batch to its shortest row keeps at least `keep` of every row's tokens."""
    return int(lengths.min()) >= keep * int(lengths.max())


class EmbeddingPerturbation:
    """Adversarial training on word embeddings (Miyato, Dai & Goodfellow, 2017): after the clean pass, each
    text's embedded sequence is pushed along its loss gradient, `epsilon` times the sequence's own norm, and
    the loss of that worst-case neighbour is learnt from too. A forward hook on the input embedding records
    the clean outputs and adds the perturbations on the second pass, so word dropout and length-split
    batches work unchanged."""

    def __init__(self, embedding: torch.nn.Module, epsilon: float):
        self.embedding, self.epsilon = embedding, epsilon
        self.recorded, self.perturbations = [], []

    def _record(self, module, args, output):
        if output.requires_grad:
            output.retain_grad()
        else:  # frozen embeddings (ULMFiT's first epochs): the texts still get their gradient, and their step
            output.requires_grad_(True)
        self.recorded.append(output)

    def _perturb(self, module, args, output):
        return output + self.perturbations.pop(0)

    @contextmanager
    def _hooked(self, hook):
        handle = self.embedding.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def recording(self):
        """The clean pass: its embedding outputs (and, after its backward pass, their gradients) are kept."""
        self.recorded = []
        return self._hooked(self._record)

    def perturbing(self):
        """The second pass: each embedding output moved by its recorded text's step, in the same order."""
        self.perturbations, self.recorded = [self._step(output) for output in self.recorded], []
        return self._hooked(self._perturb)

    def _step(self, output):
        grad = output.grad if output.grad is not None else torch.zeros_like(output)
        dims = tuple(range(1, output.dim()))
        scale = self.epsilon * output.detach().norm(dim=dims, keepdim=True)
        return scale * grad / grad.norm(dim=dims, keepdim=True).clamp_min(1e-12)


class ClassifierTrainer(Trainer):
    """Trainer with length-bucketed batches, and adversarial training on the word embeddings when
    `adversarial_epsilon` > 0 (`EmbeddingPerturbation`: each step learns from the texts and from their
    perturbed embeddings, two forward and backward passes).

    On CPU, torch's LSTM is several times slower on packed (padded) batches than on full ones, so for
    LSTMs (`split_by_length`) no batch is run padded:
    - a training batch is cut to its shortest review (`trim_mode`, the preset's truncation) when that keeps
      90 % of every review (`trims_little`): bucketed batches mostly differ by a token or a few (IMDb: about
      0.5 % of the training tokens dropped). One pass a batch is what lets several processes (DDP) train
      without padding; a batch of short texts of very different lengths is split (or, under DDP, padded)
      instead, so no text loses its words;
    - an evaluation batch is run as groups of equal-length rows, so every text is read whole. The result
      is the same as one padded pass (the models are padding-invariant).
    """

    def __init__(self, *args, lengths=None, split_by_length=False, trim_mode="head", adversarial_epsilon=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.lengths, self.split_by_length, self.trim_mode = lengths, split_by_length, trim_mode
        self.adversarial_epsilon, self.perturbed_pass = adversarial_epsilon, False
        self.model_accepts_loss_kwargs = False  # our losses are means; let the Trainer scale for accumulation
        self.rank_log = RankLog()

    def _get_train_sampler(self, train_dataset=None):
        if self.lengths is None:
            return super()._get_train_sampler(train_dataset)
        return LengthBucketSampler(self.lengths, self.args.per_device_train_batch_size, self.args.data_seed)

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not self.adversarial_epsilon:
            return super().training_step(model, inputs, num_items_in_batch)
        embedding = self.accelerator.unwrap_model(model).get_input_embeddings()
        perturbation = EmbeddingPerturbation(embedding, self.adversarial_epsilon)
        with perturbation.recording():
            loss = super().training_step(model, inputs, num_items_in_batch)
        with perturbation.perturbing():
            self.perturbed_pass = True
            try:
                super().training_step(model, inputs, num_items_in_batch)  # its gradients add to the clean ones
            finally:
                self.perturbed_pass = False
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mask = inputs.get("attention_mask")
        padded = mask is not None and not bool(mask.all())
        lengths = mask.sum(dim=1) if padded else None
        if model.training and self.split_by_length and padded and trims_little(lengths):
            ids = trim_to_shortest(inputs["input_ids"], lengths, self.trim_mode)
            inputs = {**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}
            padded = False
        if model.training and not self.perturbed_pass:
            self.rank_log.record(inputs["input_ids"])
        # Several forward passes before one backward are not allowed under DDP: split only in one process
        # or without gradients.
        can_split = self.split_by_length and (not model.training or self.args.world_size == 1)
        if not (can_split and padded):
            outputs = model(**inputs)
            return (outputs.loss, outputs) if return_outputs else outputs.loss
        labels = inputs["labels"]
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
        if is_main_process():  # under accelerate launch, the main process speaks for all
            print(f"[{name}] {self.seconds[name]:.0f} s ({time.process_time() - cpu:.0f} s CPU)", flush=True)


def truncate_ids(ids: list, max_length: int, mode: str = "head") -> list:
    """Keep the first `max_length` ids ("head"), or the first quarter and the last three quarters ("head_tail")."""
    if len(ids) <= max_length:
        return ids
    if mode == "head":
        return ids[:max_length]
    head = max_length // 4
    return ids[:head] + ids[len(ids) - (max_length - head) :]


def reads_whole_texts(preset: dict) -> bool:
    """An RNN reads any length, so it is evaluated (and served) on whole texts; a Transformer has positions
    for at most `max_length` tokens, so it reads their head, as `pipeline(..., truncation=True)` does."""
    return preset["arch"] == "lstm"


def encode_splits(data: ClassificationData, preset: dict, tokenizer):
    """Token ids of every split: training texts cut as the preset says (speed), validation and test texts as
    the saved folder reads them through `pipeline`, so the reported figures are the ones users get."""
    max_length = preset["max_length"]

    def encoder(cut):
        def encode(batch):
            ids = tokenizer(batch["text"], add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
            ids = [cut(x) for x in ids]  # an empty text stays empty: the model reads it as one [PAD]
            return {"input_ids": ids, "length": [len(x) for x in ids]}
        return encode

    def train_cut(ids):
        return truncate_ids(ids, max_length, preset["truncation"])

    def eval_cut(ids):
        return ids if reads_whole_texts(preset) else ids[:max_length]

    encoded = {}
    for split, ds in data.splits.items():
        cut = train_cut if split == "train" else eval_cut
        encoded[split] = ds.map(encoder(cut), batched=True, remove_columns=["text"], desc=f"Tokenizing {split}")
        if split != "train":  # evaluation in length order: fewer distinct lengths per batch, less padding work
            with warnings.catch_warnings():  # pyarrow >= 25 deprecates an option that datasets' sort passes
                warnings.filterwarnings("ignore", "Specifying null_placement", FutureWarning)
                encoded[split] = encoded[split].sort("length")
    return encoded


def word_vector_texts(data: ClassificationData, preset: dict, extra_texts=(), train_repeats: int = 1) -> list:
    """The texts word2vec learns from: the training texts, any unlabelled ones and `extra_texts` (text from
    other sources, `--unlabelled-data`), never validation or test. `train_repeats` > 1 adds the training
    texts that many times in all, so the labelled set's own domain is not drowned by much general text
    (ag_news_8k with IMDb's 50,000 reviews: validation 90.00 % once, 90.50 % ten times)."""
    if not preset.get("word_vectors"):
        return []
    train_texts = list(data.splits["train"]["text"])
    texts = train_texts + list(extra_texts)
    unlabelled = data.unlabelled
    if unlabelled is not None and preset.get("unlabelled_size") is not None:  # the same sample a word LM reads
        unlabelled = unlabelled.shuffle(seed=42).select(range(min(preset["unlabelled_size"], len(unlabelled))))
    if unlabelled is not None and len(unlabelled) > 0:
        texts += [t for t in unlabelled["text"] if t]
    elif not extra_texts:
        print("No unlabelled split: word vectors learn from the training texts alone.")
    return texts + train_texts * (train_repeats - 1)


def word_vector_settings(preset: dict, texts: list) -> dict:
    """The preset's word2vec settings, adapted to a corpus smaller than `min_words` words: skip-gram (it learns
    rare words better than CBOW, and is cheap at that size) and enough epochs to read about `min_words`
    words (IMDb's 72,500 reviews are large enough as they are; 7,200 news snippets get 50 epochs).
    Measured on ag_news_8k: CBOW, 50 epochs 86.25 %; skip-gram, 50 epochs 87.51 %."""
    settings = dict(preset["word_vectors"])
    min_words = settings.pop("min_words", 0)
    words = sum(len(text.split()) for text in texts)
    if min_words and 0 < words < min_words:
        settings["sg"] = 1
        settings["epochs"] = max(settings.get("epochs", 5), min(50, -(-min_words // words)))
    return settings


def word_vector_workers(world_size: int) -> int:
    """word2vec's threads: the cores the run holds. The other training processes wait while the main one
    learns the vectors, so each lends its core (IMDb on 2 cores: word vectors 131 s with one worker). More
    than one worker makes the vectors, and so the figures, differ slightly from run to run; one process
    with OMP_NUM_THREADS=1 keeps a run reproducible."""
    if torch.cuda.is_available():
        return cpu_cores()
    return max(1, min(cpu_cores(), world_size * torch.get_num_threads()))


def subsample(data: ClassificationData, preset: dict, seed: int) -> None:
    """`--quick` presets: a random subset of the training and test texts."""
    for split, key in (("train", "train_size"), ("test", "test_size")):
        if key in preset and split in data.splits:
            ds = data.splits[split].shuffle(seed=seed)
            data.splits[split] = ds.select(range(min(preset[key], len(ds))))


def small_data_preset(preset_name, preset: dict, train_texts: int, quick: bool = False) -> tuple[dict, dict | None]:
    """The preset adapted to a small labelled set: `SENTIMENT_SMALL_DATA[preset_name]`'s overrides when there
    are fewer than its `max_train_texts` training texts (not with --quick, whose figures stay as measured).
    Returns the preset to train and the overrides applied (None when it is unchanged)."""
    rule = SENTIMENT_SMALL_DATA.get(preset_name) if isinstance(preset_name, str) and not quick else None
    if rule is None or train_texts >= rule["max_train_texts"]:
        return preset, None
    overrides = {key: value for key, value in rule.items() if key != "max_train_texts"}
    print(f"{train_texts:,} training texts (< {rule['max_train_texts']:,}): the {preset_name} preset's small-data "
          f"settings {overrides}")
    return merge_overrides(preset, overrides), overrides


def tokenizer_length_limit(preset: dict) -> int:
    """The saved tokenizer's `model_max_length`. An RNN declares no limit (it reads any length; transformers
    would otherwise warn about long texts); a Transformer declares its positions, so `truncation=True` cuts
    where evaluation cut."""
    return VERY_LARGE_INTEGER if reads_whole_texts(preset) else preset["max_length"]


def build_tokenizer(data: ClassificationData, preset: dict):
    """The word tokenizer, its vocabulary from the training texts."""
    return build_word_tokenizer(data.splits["train"]["text"], vocab_size=preset["vocab_size"],
                                model_max_length=tokenizer_length_limit(preset))


def train_classifier(data, model="lstm", output_dir="runs/classifier", *, quick=False, epochs=None,
                     max_grad_norm=1.0, seed=42, resume=False, max_steps=-1, callbacks=(), baseline=True,
                     init_from=None, cpu_budget_s=None, unlabelled_data=None, word_vector_train_repeats=1, **train_overrides) -> dict:
    """Train a text classifier on `data` (a `ClassificationData`, or a dict of `load_classification_data`
    arguments) and return the results written to eval_results.json. With `baseline`, the TF-IDF + logistic
    regression baseline is fitted on the same training split and scored on the same final split beside it.
    `init_from`: a word LM folder (scripts/train_lm.py) to fine-tune from, ULMFiT's way (`seqhf.ulmfit`).
    `cpu_budget_s`: stop training once the process has spent that many CPU seconds, data and word vectors
    included (`TimeBudget`); the best checkpoint on validation is kept as usual.
    `unlabelled_data`: `load_unlabelled_texts` arguments (a list of sources, or a dict with `sources`,
    `text_column`, `split`): text from other sources that word2vec also learns from, never labelled;
    `word_vector_train_repeats`: how many times word2vec reads the training texts (`word_vector_texts`)."""
    clock = RunClock()
    check_options(epochs, word_vector_train_repeats, unlabelled_data, init_from)
    preset_name, preset = (model if isinstance(model, str) else "custom"), get_preset("sentiment", model, quick)
    set_seed(seed)
    phases = PhaseTimes()
    data, extra_texts = load_inputs(data, preset, seed, unlabelled_data, phases)
    subsample(data, preset, seed)
    preset, small_data = small_data_preset(preset_name, preset, len(data.splits["train"]), quick)
    if init_from:
        net, tokenizer = classifier_from_lm(init_from, preset, data, train_overrides)
    else:
        net, tokenizer = None, build_tokenizer(data, preset)
    best_metric = "macro_f1" if data.multi_label else "accuracy"
    args = make_training_args(output_dir, preset["train"], task="classification", max_grad_norm=max_grad_norm,
                              seed=seed, epochs=epochs, max_steps=max_steps, quick=quick,
                              **{"metric_for_best_model": best_metric, **train_overrides})
    # Under accelerate launch the main process tokenizes with every core while the others wait, then they
    # read its datasets cache, instead of each tokenizing everything on one core.
    with args.main_process_first(desc="tokenizing"), phases("tokenizing"):
        encoded = encode_splits(data, preset, tokenizer)
    texts = word_vector_texts(data, preset, extra_texts, word_vector_train_repeats)
    vector_settings = None
    if texts:
        vector_settings = dict(word_vector_settings(preset, texts), workers=word_vector_workers(args.world_size))
    set_seed(seed)
    if net is None:
        net = new_classifier(preset, tokenizer, data)
    optimizers, unfreezing, recipe = (None, None), None, None
    if init_from:
        optimizers, unfreezing, recipe = ulmfit_recipe(net, args, preset, len(encoded["train"]))
    budget = TimeBudget(cpu_budget_s, cpu=True) if cpu_budget_s else None
    callbacks = [*callbacks, *(callback for callback in (unfreezing, budget) if callback)]
    checkpoint = resume_checkpoint(output_dir, resume, clock)
    background_baseline = None
    if texts and checkpoint is None:
        if baseline and args.process_index == 0:
            background_baseline = tfidf_in_background(data)  # in a child process, beside word2vec
        # The main process learns the vectors first; the others (same key) read its cache.
        with args.main_process_first(desc="word vectors"), phases("word vectors"):
            vectors, found = cached_word_vectors(Path(output_dir) / WORD_VECTOR_CACHE, tokenizer, texts,
                                                 net.config.embedding_size, seed=seed, **vector_settings)
        load_embeddings(net, vectors, found)
    trainer = ClassifierTrainer(
        model=net,
        args=args,
        train_dataset=encoded["train"].remove_columns("length"),
        eval_dataset=encoded["validation"].remove_columns("length"),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_classification_metrics,
        callbacks=[*early_stopping(args, preset), clock, *callbacks],
        lengths=encoded["train"]["length"],
        split_by_length=preset["arch"] == "lstm" and not torch.cuda.is_available(),
        trim_mode=preset["truncation"],
        optimizers=optimizers,
        adversarial_epsilon=preset["train"].get("adversarial_epsilon", 0.0),
    )
    with phases("training (with validation)"):
        trainer.train(resume_from_checkpoint=checkpoint)
    trainer.remove_callback(EarlyStoppingCallback)  # the final evaluations are not for early stopping
    final = data.final_split
    with phases(f"{final} evaluation"):
        prediction = trainer.predict(encoded[final].remove_columns("length"), metric_key_prefix=final)
    results = dict(
        run_record("classification", preset_name, preset, quick, net, data.description["source"], seed,
                   max_grad_norm, trainer),
        **describe_inputs(data, preset, tokenizer, encoded),
        word_vectors=(dict(vector_settings, texts=len(texts), train_repeats=word_vector_train_repeats) if texts else None),
        small_data_overrides=small_data,
        adversarial_epsilon=trainer.adversarial_epsilon or None,
        best_validation_metric=best_metric, best_validation_value=trainer.state.best_metric,
        **kept_model(trainer, best_metric),
    )
    results.update(final_figures(prediction, data, len(encoded[final])))  # may restate validation_examples
    if budget:
        results.update(cpu_budget_s=cpu_budget_s, stopped_by_cpu_budget=bool(budget.stopped_at_step),
                       train_steps=trainer.state.global_step, train_cpu_s=round(time.process_time(), 1))
    if init_from:
        results.update(init_from=ulmfit.lm_summary(init_from),
                       ulmfit=dict(recipe, trainable_groups_per_epoch=unfreezing and unfreezing.trainable_per_epoch))
    if trainer.is_world_process_zero():
        plot_confusion_matrix(confusion_matrix(prediction.predictions, prediction.label_ids), data.label_names,
                              Path(output_dir) / CONFUSION_NAME, title=f"{final} split")
        if baseline:
            results["baseline"] = collect_baseline(background_baseline, data, phases)
        results["phase_wall_time_s"] = phases.seconds
    return finish_run(trainer, output_dir, results, clock)


def early_stopping(args, preset: dict) -> list:
    """The preset's early stopping, where the best checkpoint is kept (a run that keeps its final model
    runs its whole schedule)."""
    return [EarlyStoppingCallback(preset["train"]["patience"])] if args.load_best_model_at_end else []


def kept_model(trainer, metric: str) -> dict:
    """Which model the run saved, the best validation epoch's or the final one, and its validation figure."""
    if trainer.args.load_best_model_at_end:
        return dict(kept_model="best validation epoch", kept_validation_value=trainer.state.best_metric)
    last = [h[f"eval_{metric}"] for h in trainer.state.log_history if f"eval_{metric}" in h]
    return dict(kept_model="final epoch", kept_validation_value=last[-1] if last else None)


def check_options(epochs, word_vector_train_repeats: int, unlabelled_data, init_from) -> None:
    """`train_classifier`'s options that cannot work, as SetupError, before anything is loaded."""
    if epochs is not None and epochs <= 0:
        raise SetupError(f"--epochs must be positive, got {epochs}.")
    if word_vector_train_repeats < 1:
        raise SetupError(f"--word-vector-train-repeats must be at least 1, got {word_vector_train_repeats}.")
    if unlabelled_data and init_from:
        raise SetupError("--unlabelled-data feeds the word vectors, which --init-from replaces: pass one of them.")


def load_inputs(data, preset: dict, seed: int, unlabelled_data, phases: PhaseTimes) -> tuple[ClassificationData, list]:
    """The labelled splits (`data` itself when already loaded) and the `--unlabelled-data` texts."""
    if not isinstance(data, ClassificationData):
        with phases("data"):
            data = load_data(data, preset, seed)
    extra_texts = []
    if unlabelled_data:
        with phases("extra unlabelled text"):
            extra_texts = load_extra_texts(unlabelled_data, data, preset)
    return data, extra_texts


def label_config(data: ClassificationData) -> dict:
    """The config fields that name the classes and the kind of problem."""
    id2label = dict(enumerate(data.label_names))
    return dict(id2label=id2label, label2id={name: i for i, name in id2label.items()},
                problem_type="multi_label_classification" if data.multi_label else "single_label_classification")


def new_classifier(preset: dict, tokenizer, data: ClassificationData):
    """The preset's classifier, untrained, sized to the tokenizer and the classes."""
    return build_model("classification", preset, tokenizer, **label_config(data))


def classifier_from_lm(init_from, preset: dict, data: ClassificationData, train_overrides: dict):
    """Fine-tuning from a pretrained word LM (`seqhf.ulmfit`): its backbone under a new head, and its tokenizer.
    The preset then learns no word vectors (the LM's embeddings are the start)."""
    labels = label_config(data)
    net, tokenizer = ulmfit.classifier_from_lm(init_from, preset["model"], labels["id2label"])
    net.config.problem_type = labels["problem_type"]
    tokenizer.model_max_length = tokenizer_length_limit(preset)
    preset["word_vectors"] = None
    train_overrides.setdefault("ddp_find_unused_parameters", True)  # frozen groups get no gradient
    return net, tokenizer


def ulmfit_recipe(net, args, preset: dict, train_texts: int):
    """ULMFiT's optimisation: discriminative rates and a slanted triangular schedule (the optimizer and
    scheduler), and gradual unfreezing (a callback, or None). Returns them with the recipe's settings."""
    recipe = {**ulmfit.ULMFIT_DEFAULTS, **preset["train"].get("ulmfit", {})}
    optimizers = ulmfit.ulmfit_optimizers(net, args, train_texts,
                                          **{k: v for k, v in recipe.items() if k != "gradual_unfreezing"})
    unfreezing = ulmfit.GradualUnfreezing(ulmfit.layer_groups(net)) if recipe["gradual_unfreezing"] else None
    return optimizers, unfreezing, recipe


def describe_inputs(data: ClassificationData, preset: dict, tokenizer, encoded) -> dict:
    """What a run read, for eval_results.json: the data, labels, vocabulary and how texts were cut."""
    return dict(
        data=data.description, labels=data.label_names, multi_label=data.multi_label,
        multi_label_threshold=MULTI_LABEL_THRESHOLD if data.multi_label else None,
        vocab_size=len(tokenizer), max_length=preset["max_length"], truncation=preset["truncation"],
        evaluation_reads="whole texts" if reads_whole_texts(preset) else f"the first {preset['max_length']} tokens",
        train_examples=len(encoded["train"]), validation_examples=len(encoded["validation"]),
    )


def final_figures(prediction, data: ClassificationData, examples: int) -> dict:
    """The final split's figures (`test_accuracy`, ..., `test_loss`, `test_examples`)."""
    final = data.final_split
    figures = classification_metrics(prediction.predictions, prediction.label_ids, data.label_names, per_class=True)
    return dict(evaluated_on=final, **{f"{final}_{k}": v for k, v in figures.items()},
                **{f"{final}_loss": prediction.metrics.get(f"{final}_loss"), f"{final}_examples": examples})


def collect_baseline(background_baseline, data: ClassificationData, phases: PhaseTimes) -> dict:
    """The TF-IDF baseline's figures: from the child process fitting it, or fitted here."""
    if background_baseline is not None:
        with phases("baseline (waiting for the background fit)"):
            return background_baseline.result()
    print("Fitting the TF-IDF + logistic-regression baseline on the same splits ...")
    with phases("baseline"):
        return tfidf_logistic_regression(data)


def load_data(options: dict, preset: dict, seed: int) -> ClassificationData:
    """`load_classification_data(**options)`, its errors as SetupError (raised before any training)."""
    try:
        return load_classification_data(**{"validation_size": preset.get("validation_size", 0.1), "seed": seed,
                                           **options})
    except DataError as err:
        raise SetupError(str(err)) from err


def load_extra_texts(unlabelled_data, data: ClassificationData, preset: dict) -> list:
    """The texts of `--unlabelled-data` (see `train_classifier`), recorded in `data.description`; errors as
    SetupError, before any training."""
    options = dict(unlabelled_data) if isinstance(unlabelled_data, dict) else {"sources": list(unlabelled_data)}
    if not preset.get("word_vectors"):
        raise SetupError("--unlabelled-data feeds the word vectors, and this preset learns none (use --model lstm).")
    own = Path(str(data.description.get("source", ""))).resolve()
    if any(Path(str(s)).resolve() == own for s in options["sources"]):
        raise SetupError("--unlabelled-data names the labelled dataset itself; its own unlabelled split is "
                         "--unlabelled-split (its other splits must not reach the word vectors).")
    try:
        texts, described = load_unlabelled_texts(**options)
    except DataError as err:
        raise SetupError(str(err)) from err
    data.description["unlabelled_data"] = described
    print(f"Extra unlabelled text for the word vectors: {len(texts):,} texts from "
          + ", ".join(f"{d['source']} ({d['texts']:,})" for d in described))
    return texts


def train_sentiment(model="lstm", dataset=seqdata.LOCAL_IMDB, output_dir="runs/sentiment", **kwargs) -> dict:
    """The chapter's project: IMDb sentiment, labelled `negative` / `positive`."""
    data = dict(source=str(dataset), label_names=list(IMDB_LABELS))
    return train_classifier(data, model, output_dir, **kwargs)


def classify(folder, texts, **pipeline_kwargs) -> list:
    """Classify `texts` with the sentiment model saved in `folder`, through `pipeline`."""
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(folder), **pipeline_kwargs)
    return classifier(list(texts), truncation=True)


SentimentTrainer = ClassifierTrainer  # the name of the chapter's project
