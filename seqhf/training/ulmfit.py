"""Fine-tuning a classifier from a pretrained word LM, as ULMFiT does (Howard & Ruder, 2018).

- `classifier_from_lm(lm_dir, ...)`: `SeqLSTMForSequenceClassification.from_pretrained(lm_dir, num_labels=N)`
  with the LM's tokenizer; the backbone loads exactly, the head is new (and reported so by transformers).
- `lm_for_new_text(lm_dir, tokenizer, backward)`: ULMFiT's second stage, an LM pretrained on general text made
  ready to fine-tune on the target texts, whose vocabulary is their own.
- `bidirectional_classifier_from_lms(forward_dir, backward_dir, ...)`: one bidirectional classifier from a forward
  and a backward LM of the same texts, each direction starting exactly as its LM.
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

from ..models.lstm.configuration_lstm import SeqLSTMConfig
from ..models.lstm.modeling_lstm import SeqLSTMForCausalLM, SeqLSTMForSequenceClassification
from .common import EVAL_RESULTS, SetupError, batch_rows

# What the LM decides (the backbone's shape); the classifier preset cannot change these.
BACKBONE_FIELDS = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "bidirectional", "rnn_type")
ULMFIT_DEFAULTS = dict(lr_factor=2.6, cut_frac=0.1, ratio=32.0, gradual_unfreezing=True)  # the paper's values
# The LM's own figures a fine-tuned classifier's card quotes.
LM_SUMMARY_KEYS = ("preset", "heldout_perplexity", "heldout_tokens", "train_tokens", "train_reviews", "vocab_size",
                   "softmax", "epochs", "wall_time_s", "hardware", "num_parameters", "data")


def check_word_lm(lm_dir, option: str = "--init-from") -> dict:
    """The config (a dict) of the seqhf word LSTM LM in `lm_dir`; a SetupError names what else it holds."""
    lm_dir = Path(lm_dir)
    if not (lm_dir / "config.json").is_file():
        raise SetupError(f"{option} {str(lm_dir)!r}: no config.json there; pass a word LM folder saved by "
                         "`seqhf train lm` (seqhf.train_word_lm).")
    config = json.loads((lm_dir / "config.json").read_text())
    if config.get("model_type") != "seqhf-lstm" or "SeqLSTMForCausalLM" not in (config.get("architectures") or []):
        raise SetupError(f"{option} {str(lm_dir)!r} holds a {config.get('architectures')} model, not a seqhf LSTM LM.")
    results_file = lm_dir / EVAL_RESULTS
    if results_file.is_file() and json.loads(results_file.read_text()).get("task") == "charlm":
        raise SetupError(f"{option} {str(lm_dir)!r} is a character LM (`seqhf train charlm`): a classifier built on it "
                         "would read reviews character by character with a word model's settings. ULMFiT fine-tunes a "
                         "word LM: train one with `seqhf train lm`.")
    return config


def classifier_from_lm(lm_dir, model_fields: dict | None = None, id2label: dict | None = None):
    """The classifier built on the LM in `lm_dir` and the LM's tokenizer: `(model, tokenizer)`.

    `model_fields` (a preset's `model` dict) sets the classification fields (pooling, dropouts, head); its
    backbone fields are ignored, since the LM's weights fix them.
    """
    if check_word_lm(lm_dir).get("reads_backward"):
        raise SetupError(f"--init-from {str(lm_dir)!r} reads its texts backwards (`seqhf train lm --backward`): pass it "
                         "as --init-from-backward, beside a forward LM as --init-from.")
    fields = {k: v for k, v in (model_fields or {}).items() if k not in BACKBONE_FIELDS}
    id2label = id2label or {0: "negative", 1: "positive"}
    model = SeqLSTMForSequenceClassification.from_pretrained(
        lm_dir, num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()},
        is_decoder=False, architectures=None, **fields,
    )
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    return model, tokenizer


def check_lm_to_fine_tune(lm_dir, backward: bool, option: str = "--init-from") -> None:
    """A SetupError unless `lm_dir` holds a word LM that reads the way the new LM will (`backward`)."""
    config = check_word_lm(lm_dir, option)
    if bool(config.get("reads_backward")) != backward:
        reads = "backwards" if config.get("reads_backward") else "forwards"
        raise SetupError(f"{option} {str(lm_dir)!r} reads its texts {reads}: fine-tune it "
                         f"{'with' if config.get('reads_backward') else 'without'} --backward, so it goes on reading "
                         "the way it learnt to.")


def lm_for_new_text(lm_dir, tokenizer, backward: bool = False):
    """ULMFiT's second stage: the word LM in `lm_dir` (pretrained on general text) ready to fine-tune on target texts
    whose vocabulary `tokenizer` holds, as `(model, words_known)`. Its layers load as they are; each word of the new
    vocabulary that the LM knows keeps its LM's embedding row, every other word starts at the mean of the LM's rows
    (Howard & Ruder's choice). The output bias is left to the caller (`wordlm.start_at_unigram` of the new texts)."""
    check_lm_to_fine_tune(lm_dir, backward)
    pretrained = SeqLSTMForCausalLM.from_pretrained(lm_dir)
    old_rows = AutoTokenizer.from_pretrained(lm_dir).get_vocab()
    fields = pretrained.config.to_dict()
    for key in ("architectures", "auto_map", "_name_or_path", "transformers_version", "model_type", "vocab_size",
                "pad_token_id", "eos_token_id", "bos_token_id"):
        fields.pop(key, None)
    model = SeqLSTMForCausalLM(SeqLSTMConfig(**fields, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                             eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id))
    new_words = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    known = [(new_id, old_rows[word]) for word, new_id in new_words if word in old_rows]
    state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith(("model.embeddings.", "lm_head."))}
    missing = model.load_state_dict(state, strict=False).missing_keys
    assert all(k.startswith(("model.embeddings.", "lm_head.")) for k in missing), missing
    tables = [(model.get_input_embeddings(), pretrained.get_input_embeddings())]
    if not model.config.tie_word_embeddings and pretrained.get_output_embeddings() is not None:
        tables.append((model.get_output_embeddings(), pretrained.get_output_embeddings()))
    for new_table, old_table in tables:
        carry_rows(new_table.weight, old_table.weight, known)
    return model, len(known)


@torch.no_grad()
def carry_rows(new, old, known: list) -> None:
    """`new[i]` = `old[j]` for each `(i, j)` in `known`; every other row the mean of `old`'s rows."""
    new.copy_(old.mean(0).expand_as(new))
    if known:
        new_ids, old_ids = map(torch.tensor, zip(*known))
        new[new_ids] = old[old_ids]


def bidirectional_classifier_from_lms(forward_dir, backward_dir, model_fields: dict | None = None,
                                      id2label: dict | None = None):
    """A bidirectional classifier whose forward direction starts as the LM in `forward_dir` and whose backward
    direction starts as the backward LM in `backward_dir` (`seqhf train lm --backward`, on the same texts), with
    the forward LM's tokenizer: `(model, tokenizer)`. ULMFiT fine-tunes a forward and a backward classifier and
    averages them; here they are one model, so `pipeline` and ONNX carry both.

    Each word's embedding is its two LMs' vectors side by side (a word the backward LM lacks gets zeros there), and
    every layer's input weights read only their own direction's half, so before training each direction computes
    exactly its LM's hidden states; training then lets the two halves read each other."""
    configs = [check_word_lm(forward_dir), check_word_lm(backward_dir, "--init-from-backward")]
    if configs[0].get("reads_backward") or not configs[1].get("reads_backward"):
        raise SetupError(f"--init-from {str(forward_dir)!r} must read forwards and --init-from-backward "
                         f"{str(backward_dir)!r} backwards (`seqhf train lm --backward`).")
    shapes = [{k: c.get(k) for k in ("embedding_size", "hidden_size", "num_hidden_layers", "rnn_type")} for c in configs]
    if shapes[0] != shapes[1] or any(c.get("bidirectional") for c in configs):
        raise SetupError(f"The forward and backward LMs must have one shape: {shapes[0]} against {shapes[1]}.")
    forward, backward = (SeqLSTMForCausalLM.from_pretrained(d) for d in (forward_dir, backward_dir))
    tokenizer = AutoTokenizer.from_pretrained(forward_dir)
    fields = {k: v for k, v in (model_fields or {}).items() if k not in BACKBONE_FIELDS}
    id2label = id2label or {0: "negative", 1: "positive"}
    config = forward.config.to_dict()
    for key in ("architectures", "auto_map", "reads_backward", "_name_or_path", "transformers_version", "model_type"):
        config.pop(key, None)
    config.update(fields, embedding_size=2 * shapes[0]["embedding_size"], bidirectional=True, is_decoder=False,
                  tie_word_embeddings=False, num_labels=len(id2label), id2label=id2label,
                  label2id={v: k for k, v in id2label.items()})
    model = SeqLSTMForSequenceClassification(SeqLSTMConfig(**config))
    backward_vocab = AutoTokenizer.from_pretrained(backward_dir).get_vocab()
    with torch.no_grad():
        join_embeddings(model.model.embeddings.weight, forward.model.embeddings.weight, backward.model.embeddings.weight,
                        [backward_vocab.get(word) for word, _ in sorted(tokenizer.get_vocab().items(), key=lambda x: x[1])])
        for layer, forward_layer, backward_layer in zip(model.model.layers, forward.model.layers, backward.model.layers):
            copy_direction(layer, forward_layer, "", reads="first half")
            copy_direction(layer, backward_layer, "_reverse", reads="second half")
    return model, tokenizer


def join_embeddings(joined, forward, backward, backward_rows):
    """`joined[i]` = forward[i] beside backward[backward_rows[i]] (zeros where that row is None)."""
    width = forward.shape[1]
    joined.zero_()
    joined[: len(forward), :width] = forward
    for i, row in enumerate(backward_rows):
        if row is not None:
            joined[i, width:] = backward[row]


def copy_direction(layer, lm_layer, suffix: str, reads: str):
    """One direction of a bidirectional `nn.LSTM`/`nn.GRU` layer set to the LM's one-directional layer, its input
    weights reading only the `reads` half of the layer's input (zeros on the other)."""
    inputs = getattr(layer, "weight_ih_l0" + suffix)
    half = inputs.shape[1] // 2
    columns = slice(0, half) if reads == "first half" else slice(half, 2 * half)
    inputs.zero_()
    inputs[:, columns] = lm_layer.weight_ih_l0
    for name in ("weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        getattr(layer, name + suffix).copy_(getattr(lm_layer, name))


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
    batches = math.ceil(num_examples / batch_rows(args))  # one step's rows, over all the processes
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
