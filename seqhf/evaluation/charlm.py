"""Evaluating a char LM beyond its static held-out loss: per-character scores, the n-gram baseline, the
neural + n-gram mixture, dynamic evaluation, a second text, and seeded samples for the card.

Every tuned knob (mixture weight, dynamic-evaluation learning rate) is chosen on the validation text and
only then applied to the held-out text.
"""

import re

import numpy as np
import torch
import torch.nn.functional as F

from ..data.char_text import encode_text, window as ids_window
from ..inference.generation import generate_text
from ..utils.runtime import use_bf16
from .dynamic_eval import _is_recurrent, dynamic_eval, nats, tune_dynamic_eval
from .ngram import CharKneserNey

SAMPLE_TEMPERATURES, SAMPLE_SEEDS, SAMPLE_LENGTH = (0.5, 1.0), (1, 2), 300
SAMPLE_PROMPT_CHARS = 40  # a text without spaces would otherwise give a prompt as long as itself
MIXTURE_WEIGHTS = np.linspace(0.0, 1.0, 51)


@torch.no_grad()
def char_log_probs(model, ids, window: int, chunk: int = 2048) -> np.ndarray:
    """ln P(ids[i] | before) for i ≥ 1: a recurrent model reads `ids` as one stream (state carried), a
    Transformer reads consecutive windows of `window` from an empty context. `ids`: a tensor or a compact
    array (`encode_text`), read a piece at a time."""
    if len(ids) < 2:  # the first id is only context: nothing would be scored
        raise ValueError(f"A text of {len(ids)} character(s) or token(s) is too short to score: each is scored on "
                         "the ones before it, so it takes at least 2.")
    model.eval()
    device = next(model.parameters()).device
    recurrent = _is_recurrent(model)
    step = chunk if recurrent else window
    scores, state = [], None
    for start in range(0, len(ids) - 1, step):
        piece = ids_window(ids, start, start + step + 1).to(device).unsqueeze(0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16()):
            out = model(input_ids=piece[:, :-1], **({"initial_state": state} if recurrent else {}))
        if recurrent:
            state = out.final_state
        scores.append(F.log_softmax(out.logits.float()[0], dim=-1).gather(1, piece[0, 1:, None])[:, 0].cpu())
    return torch.cat(scores).numpy().astype(np.float64)


def mixture_nats(neural: np.ndarray, ngram: np.ndarray, weight: float) -> float:
    """nats/char of weight · P_neural + (1 − weight) · P_ngram, from each model's per-character log-probs."""
    return float(-np.logaddexp(np.log(weight + 1e-300) + neural, np.log(1 - weight + 1e-300) + ngram).mean())


def tune_mixture(neural: np.ndarray, ngram: np.ndarray) -> float:
    """The neural weight in [0, 1] (steps of 0.02) that minimises the mixture's nats/char on these scores."""
    return float(min(MIXTURE_WEIGHTS, key=lambda w: mixture_nats(neural, ngram, w)))


def encode_counting_unknown(tokenizer, text: str) -> tuple[np.ndarray, int]:
    """The ids of `text` (a compact array, `encode_text`) and how many of its characters fell outside the
    vocabulary (became [UNK])."""
    return encode_text(tokenizer, text, count_unknown=True)


def samples(model, tokenizer, prompt: str, length: int = SAMPLE_LENGTH) -> list[dict]:
    """Seeded samples at each of SAMPLE_TEMPERATURES, for the card."""
    return [
        dict(temperature=t, seed=s, prompt=prompt,
             text=generate_text(model, tokenizer, prompt, max_new_tokens=length, temperature=t, seed=s))
        for t in SAMPLE_TEMPERATURES for s in SAMPLE_SEEDS
    ]


def sample_prompt(heldout_text: str, words: int = 3, max_chars: int = SAMPLE_PROMPT_CHARS) -> str:
    """The first few words of the held-out text's first full sentence (the text may start mid-word), at most
    `max_chars` characters of them."""
    start = re.search(r"(?:^|[.!?]\s+)([A-Z])", heldout_text[:100_000])
    rest = heldout_text[start.start(1) :] if start else heldout_text
    return " ".join(rest[: 100 * max_chars].split()[:words])[:max_chars] or "The"


def evaluate_extras(model, tokenizer, *, train_text, valid_text, heldout_text, heldout_neural, window,
                    ngram_order=7, dynamic=True, dynamic_tune_chars=10_000, dynamic_max_chars=None, second_text=None,
                    second_name=None, samples_prompt=None, valid_ids=None, heldout_ids=None) -> dict:
    """The n-gram baseline, mixture, dynamic evaluation, second-text figures and samples of a trained model.

    `heldout_neural` holds the model's static per-character log-probs of the held-out text (already
    computed for its main figure). The n-gram trains on `train_text`, the text the model trained on.
    Dynamic evaluation reads the first `dynamic_max_chars` held-out characters (all by default).
    `valid_ids`, `heldout_ids`: the texts' ids when the caller has them (else they are encoded here).
    """
    if valid_ids is None:
        valid_ids, _ = encode_counting_unknown(tokenizer, valid_text)
    if heldout_ids is None:
        heldout_ids, _ = encode_counting_unknown(tokenizer, heldout_text)
    ngram = CharKneserNey(ngram_order).fit(train_text)
    heldout_ngram = ngram.char_log_probs(heldout_text)
    valid_ngram = ngram.char_log_probs(valid_text)
    valid_neural = char_log_probs(model, valid_ids, window)
    weight = tune_mixture(valid_neural, valid_ngram)
    out = dict(
        ngram=dict(order=ngram_order, method="interpolated Kneser-Ney, modified discounts (seqhf.evaluation.ngram)",
                   train_chars=len(train_text), heldout_nats_per_char=nats(heldout_ngram),
                   validation_nats_per_char=nats(valid_ngram)),
        mixture=dict(neural_weight=weight, heldout_nats_per_char=mixture_nats(heldout_neural, heldout_ngram, weight),
                     validation_nats_per_char=mixture_nats(valid_neural, valid_ngram, weight),
                     tuned_on="validation"),
    )
    if dynamic:
        tuning = tune_dynamic_eval(model, valid_ids[: dynamic_tune_chars + 1])
        read = heldout_ids[: dynamic_max_chars + 1] if dynamic_max_chars else heldout_ids
        heldout_dynamic, _ = dynamic_eval(model, read, lr=tuning["lr"], decay=tuning["decay"],
                                          segment_len=tuning["segment_len"])
        n = len(heldout_dynamic)
        out["dynamic_eval"] = dict(
            tuning, tuned_on="validation", heldout_chars=n + 1, heldout_nats_per_char=nats(heldout_dynamic),
            heldout_static_nats_per_char=nats(heldout_neural[:n]),  # the same characters, for comparison
            heldout_mixture_nats_per_char=mixture_nats(heldout_dynamic, heldout_ngram[:n], weight),
        )
    if second_text:
        ids, unknown = encode_counting_unknown(tokenizer, second_text)
        out["second_text"] = dict(
            name=second_name, chars=len(second_text), unknown_chars=unknown,
            nats_per_char=nats(char_log_probs(model, ids, window)),
            ngram_nats_per_char=nats(ngram.char_log_probs(second_text)),
        )
    if samples_prompt is not None:
        out["samples"] = samples(model, tokenizer, samples_prompt)
    return out
