"""Fine-tuning a classifier from a pretrained word LM, as ULMFiT does (Howard & Ruder, 2018).

- `classifier_from_lm(lm_dir, ...)`: `SeqLSTMForSequenceClassification.from_pretrained(lm_dir, num_labels=N)`
  with the LM's tokenizer; the backbone loads exactly, the head is new (and reported so by transformers).
- `layer_groups(model)`: embeddings, each recurrent layer, the head, from the bottom up.
- `discriminative_param_groups`: each lower group's learning rate is the one above divided by 2.6.
- `slanted_triangular_schedule`: a short linear warm-up to the peak rate, then a long linear decay to peak/32.
- `GradualUnfreezing`: a `TrainerCallback` that trains the head alone in the first epoch and unfreezes one
  more group, from the top down, at the start of each later epoch.
- `ulmfit_optimizers(...)`: the optimizer and schedule to hand to the Trainer (`optimizers=`).
"""

import json
import math
from pathlib import Path

import torch
from transformers import AutoTokenizer, TrainerCallback

from ..models.lstm.modeling_lstm import SeqLSTMForSequenceClassification
from .common import EVAL_RESULTS, SetupError

# What the LM decides (the backbone's shape); the classifier preset cannot change these.
BACKBONE_FIELDS = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "bidirectional", "rnn_type")
ULMFIT_DEFAULTS = dict(lr_factor=2.6, cut_frac=0.1, ratio=32.0, gradual_unfreezing=True)  # the paper's values
# The LM's own figures a fine-tuned classifier's card quotes.
LM_SUMMARY_KEYS = ("preset", "heldout_perplexity", "heldout_tokens", "train_tokens", "train_reviews", "vocab_size",
                   "softmax", "epochs", "wall_time_s", "hardware", "num_parameters", "data")


def classifier_from_lm(lm_dir, model_fields: dict | None = None, id2label: dict | None = None):
    """The classifier built on the LM in `lm_dir` and the LM's tokenizer: `(model, tokenizer)`.

    `model_fields` (a preset's `model` dict) sets the classification fields (pooling, dropouts, head); its
    backbone fields are ignored, since the LM's weights fix them.
    """
    lm_dir = Path(lm_dir)
    if not (lm_dir / "config.json").is_file():
        raise SetupError(f"--init-from {str(lm_dir)!r}: no config.json there; pass a word LM folder saved by "
                         "`seqhf train lm` (seqhf.train_word_lm).")
    config = json.loads((lm_dir / "config.json").read_text())
    if config.get("model_type") != "seqhf-lstm" or "SeqLSTMForCausalLM" not in (config.get("architectures") or []):
        raise SetupError(f"--init-from {str(lm_dir)!r} holds a {config.get('architectures')} model, not a seqhf LSTM LM.")
    results_file = lm_dir / EVAL_RESULTS
    if results_file.is_file() and json.loads(results_file.read_text()).get("task") == "charlm":
        raise SetupError(f"--init-from {str(lm_dir)!r} is a character LM (`seqhf train charlm`): a classifier built on it "
                         "would read reviews character by character with a word model's settings. ULMFiT fine-tunes a "
                         "word LM: train one with `seqhf train lm`.")
    fields = {k: v for k, v in (model_fields or {}).items() if k not in BACKBONE_FIELDS}
    id2label = id2label or {0: "negative", 1: "positive"}
    model = SeqLSTMForSequenceClassification.from_pretrained(
        lm_dir, num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()},
        is_decoder=False, architectures=None, **fields,
    )
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    return model, tokenizer


def lm_summary(lm_dir) -> dict:
    """Where the backbone came from and the LM's own figures (from its eval_results.json), for the card."""
    summary = {"path": str(lm_dir)}
    results_file = Path(lm_dir) / EVAL_RESULTS
    if results_file.is_file():
        results = json.loads(results_file.read_text())
        summary.update({k: results[k] for k in LM_SUMMARY_KEYS if results.get(k) is not None})
    return summary


def layer_groups(model) -> list[list[torch.nn.Parameter]]:
    """The parameters of a seqhf LSTM classifier in ULMFiT's groups, bottom to top: the embeddings, each
    recurrent layer, then everything else (the head)."""
    backbone = model.get_submodule(model.base_model_prefix)
    groups = [list(backbone.embeddings.parameters())] + [list(layer.parameters()) for layer in backbone.layers]
    seen = {id(p) for group in groups for p in group}
    groups.append([p for p in model.parameters() if id(p) not in seen])
    return groups


def discriminative_param_groups(model, learning_rate: float, factor: float = 2.6, weight_decay: float = 0.0):
    """Optimizer param groups: the head at `learning_rate`, each group below it at the rate above / `factor`."""
    groups = layer_groups(model)
    top = len(groups) - 1
    return [dict(params=params, lr=learning_rate / factor ** (top - i), weight_decay=weight_decay)
            for i, params in enumerate(groups)]


def slanted_triangular_schedule(optimizer, num_training_steps: int, cut_frac: float = 0.1, ratio: float = 32.0):
    """ULMFiT's schedule: linear rise over the first `cut_frac` of the steps from peak/ratio to the peak,
    then linear decay back to peak/ratio. Each param group's peak is its own rate."""
    cut = max(1, math.floor(num_training_steps * cut_frac))
    decay_steps = max(1, num_training_steps - cut)

    def factor(step):
        p = step / cut if step < cut else max(0.0, 1 - (step - cut) / decay_steps)
        return (1 + p * (ratio - 1)) / ratio

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def training_steps(args, num_examples: int) -> int:
    """The optimizer steps the Trainer will take for `num_examples` under `args` (as it counts them)."""
    if args.max_steps and args.max_steps > 0:
        return args.max_steps
    batches = math.ceil(num_examples / (args.per_device_train_batch_size * args.world_size))
    per_epoch = max(1, batches // args.gradient_accumulation_steps)
    return math.ceil(args.num_train_epochs * per_epoch)


def ulmfit_optimizers(model, args, num_examples: int, lr_factor: float = 2.6, cut_frac: float = 0.1,
                      ratio: float = 32.0):
    """`(optimizer, scheduler)` for `Trainer(optimizers=...)`: AdamW over the discriminative param groups
    (peak `args.learning_rate` at the head) under the slanted triangular schedule."""
    groups = discriminative_param_groups(model, args.learning_rate, lr_factor, args.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  eps=args.adam_epsilon)
    return optimizer, slanted_triangular_schedule(optimizer, training_steps(args, num_examples), cut_frac, ratio)


class GradualUnfreezing(TrainerCallback):
    """Epoch 0 trains the top group (the head) only; each later epoch unfreezes the next group down.

    Frozen parameters get no gradient, so AdamW leaves them (and their weight decay) alone.
    """

    def __init__(self, groups):
        self.groups = groups
        self.trainable_per_epoch = []  # how many groups (from the top) trained in each epoch, for the record

    def on_epoch_begin(self, args, state, control, **kwargs):
        epoch = math.floor((state.epoch or 0) + 1e-6)
        trainable = min(epoch + 1, len(self.groups))
        for i, params in enumerate(self.groups):
            for p in params:
                p.requires_grad_(i >= len(self.groups) - trainable)
        self.trainable_per_epoch.append(trainable)

    def on_train_end(self, args, state, control, **kwargs):
        for params in self.groups:  # the saved model, and any later evaluation, see a normal model
            for p in params:
                p.requires_grad_(True)
