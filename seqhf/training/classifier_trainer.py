"""The Trainer of text classifiers: length-bucketed batches trimmed to their longest text, and adversarial training on the embeddings."""

import torch
from transformers import Trainer, TrainerCallback

from ..utils.runtime import release_freed_memory
from .adversarial import EmbeddingPerturbation
from .common import RankLog


class ReleaseFreedMemory(TrainerCallback):
    """`release_freed_memory` every `every` training steps and after each evaluation, so that memory freed by
    earlier batches is not kept (resident memory then follows what the run holds, not the heap's history)."""

    def __init__(self, every: int = 20):
        self.every = every

    def on_train_begin(self, args, state, control, **kwargs):
        release_freed_memory()  # what the data, tokenizing and word-vector phases freed

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0:
            release_freed_memory()

    def on_evaluate(self, args, state, control, **kwargs):
        release_freed_memory()


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

    def __init__(self, *args, lengths=None, split_by_length=False, trim_mode="head", adversarial_epsilon=0.0,
                 ngram_lr_factor=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.ngram_lr_factor = ngram_lr_factor
        self.lengths, self.split_by_length, self.trim_mode = lengths, split_by_length, trim_mode
        self.adversarial_epsilon, self.perturbed_pass = adversarial_epsilon, False
        self.model_accepts_loss_kwargs = False  # our losses are means; let the Trainer scale for accumulation
        self.rank_log = RankLog()

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, with the n-gram path's table (`ngrams.weight`, where the classifier has
        one) in a group of its own: `ngram_lr_factor` times the learning rate and no weight decay. The table is
        a sparse linear model whose rows each see few updates (IMDb, the table alone, 2 epochs at batch 64:
        90.6 % on test at 10x the preset's 3e-3, 87.7 % at 1x; weight decay 1.0 cost 2.3 points)."""
        optimizer = super().create_optimizer(model)
        opt_model = self.model if model is None else model
        ngrams = getattr(self.accelerator.unwrap_model(opt_model), "ngrams", None)
        if ngrams is None or any(group.get("ngram_table") for group in optimizer.param_groups):
            return optimizer
        table = ngrams.weight
        for group in optimizer.param_groups:
            group["params"] = [p for p in group["params"] if p is not table]
        optimizer.add_param_group({"params": [table], "weight_decay": 0.0, "ngram_table": True,
                                   "lr": optimizer.defaults["lr"] * self.ngram_lr_factor})
        return optimizer

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
            loss = outputs.loss
        else:
            loss, outputs = self.length_split_loss(model, inputs, lengths)
        if self.label_smoother is not None and "labels" in inputs:  # `label_smoothing_factor`, as Trainer's own loss
            loss = self.label_smoother({"logits": outputs["logits"]}, inputs["labels"])
            outputs["loss"] = loss
        return (loss, outputs) if return_outputs else loss

    @staticmethod
    def length_split_loss(model, inputs, lengths):
        """The batch run as groups of equal-length rows (no padding): the mean loss and the rows' logits."""
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
        return loss, {"loss": loss, "logits": logits}


SentimentTrainer = ClassifierTrainer  # the name of the chapter's project
