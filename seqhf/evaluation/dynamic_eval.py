"""Dynamic evaluation (Krause et al., 2018, "Dynamic Evaluation of Neural Sequence Models").

The model reads the text segment by segment. Each segment is scored first, with the weights as they are,
and only then does the model take one gradient step on that segment's loss, so every character is
predicted before the model has learnt from it, and later text profits from what earlier text taught.
The step is plain SGD with a decay that pulls the weights back towards the trained ones:

    θ ← θ − lr · ∇ℓ(segment) + decay · (θ₀ − θ)

All of it happens on a copy: the model passed in (and its saved weights) never changes. A recurrent model
carries its state across segments (the text is one stream); a Transformer scores each segment as a window
read from an empty context, as its static window figure does.
"""

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..inference.generation import reads_backward


def _is_recurrent(model) -> bool:
    return getattr(model.config, "model_type", "") == "seqhf-lstm"


def dynamic_eval(model, ids, *, lr: float, decay: float = 0.0, segment_len: int = 50):
    """Per-character log-probabilities of `ids[1:]` under dynamic evaluation, and the adapted copy.

    `ids` is one long 1-D tensor or numpy array (a compact one is read as int64). Returns (log_probs as a numpy array of len(ids) - 1, adapted model).
    """
    if segment_len <= 0:
        raise ValueError(f"`segment_len` must be positive, got {segment_len}.")
    if lr < 0 or not 0.0 <= decay < 1.0:
        raise ValueError(f"Dynamic evaluation needs lr >= 0 and 0 <= decay < 1, got lr={lr}, decay={decay}.")
    adapted = copy.deepcopy(model).eval()  # eval: no dropout while adapting, as at test time
    device = next(adapted.parameters()).device
    params = [p for p in adapted.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in params]
    recurrent = _is_recurrent(adapted)
    ids = (ids if isinstance(ids, torch.Tensor) else torch.from_numpy(np.asarray(ids, dtype=np.int64))).to(device)
    log_probs, state = [], None
    for start in range(0, len(ids) - 1, segment_len):
        piece = ids[start : start + segment_len + 1].unsqueeze(0)
        kwargs = {"initial_state": state} if recurrent and state is not None else {}
        with torch.enable_grad():
            out = adapted(input_ids=piece[:, :-1], **kwargs)
            scores = F.log_softmax(out.logits.float()[0], dim=-1).gather(1, piece[0, 1:, None])[:, 0]
            log_probs.append(scores.detach().cpu())  # scored before the step below
            grads = torch.autograd.grad(-scores.mean(), params, allow_unused=True)
        with torch.no_grad():
            for p, g, p0 in zip(params, grads, trained):
                if g is not None:
                    p.sub_(lr * g)
                if decay:
                    p.add_(decay * (p0 - p))
        if recurrent:
            state = tuple(s.detach() for s in out.final_state)
    return torch.cat(log_probs).numpy().astype(np.float64), adapted


def adapt(model, ids: torch.Tensor, *, lr: float, decay: float = 0.0, segment_len: int = 50):
    """A copy of `model` adapted to the text `ids` by dynamic evaluation (for generation in its style)."""
    return dynamic_eval(model, ids, lr=lr, decay=decay, segment_len=segment_len)[1]


def tune_dynamic_eval(model, ids: torch.Tensor, lrs=(1e-2, 3e-2, 1e-1, 3e-1), decay: float = 0.0,
                      segment_len: int = 50) -> dict:
    """The learning rate (from `lrs`) with the lowest dynamic nats/char on `ids` (validation text, never
    the held-out), and each one's figure."""
    figures = {lr: float(-dynamic_eval(model, ids, lr=lr, decay=decay, segment_len=segment_len)[0].mean()) for lr in lrs}
    best = min(figures, key=figures.get)
    return dict(lr=best, decay=decay, segment_len=segment_len, validation_nats_per_char=figures[best],
                grid={f"{lr:g}": round(v, 5) for lr, v in figures.items()})


def nats(log_probs) -> float:
    return float(-np.mean(log_probs)) if len(log_probs) else math.nan


def adapt_to_text(model, tokenizer, text: str, *, lr: float, decay: float = 0.0, segment_len: int = 50):
    """`adapt` on a string: a copy of `model` that has read `text` by dynamic evaluation, so that what it
    generates next continues in that text's style (its names, its spelling). Characters outside the
    vocabulary are read as `[UNK]`. A backward LM (`config.reads_backward`) reads the text from its end, as it
    learnt."""
    ids = torch.tensor(tokenizer(text, add_special_tokens=False, split_special_tokens=True, verbose=False)["input_ids"],
                       dtype=torch.long)
    if reads_backward(model):
        ids = ids.flip(0)
    if len(ids) < 2:
        raise ValueError("The text to adapt on needs at least two characters.")
    return adapt(model, ids, lr=lr, decay=decay, segment_len=segment_len)
