"""Which words moved a classifier's decision: integrated gradients on the input embeddings.

Works for any model that takes `inputs_embeds` (the seqhf LSTM and Transformer classifiers do).
Each token's attribution is the path integral of the gradient of the target class's log-probability
along the straight line from an all-zero embedding to the real one (Sundararajan et al. 2017), so the
attributions add up to log p(target | text) - log p(target | zero embeddings), up to the quadrature error.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Explanation:
    """`label` is the class explained; `tokens` are (text, start, end, weight) with character offsets into
    the text and weights scaled to [-1, 1] (positive: pushes towards `label`); `raw` is the unscaled sum."""

    label: str
    probabilities: dict
    tokens: list
    raw: list

    def spans(self, text: str) -> list:
        """The whole `text` cut into (piece, weight) pairs, weight None between tokens: what
        `gradio.HighlightedText` shows, each word shaded by its weight."""
        pieces, cursor = [], 0
        for _, start, end, weight in self.tokens:
            if start > cursor:
                pieces.append((text[cursor:start], None))
            pieces.append((text[start:end], round(weight, 4)))
            cursor = end
        if cursor < len(text):
            pieces.append((text[cursor:], None))
        return pieces


def is_multi_label(config) -> bool:
    """A classifier of label lists: each label's score is its own sigmoid, not a share of one softmax."""
    return getattr(config, "problem_type", None) == "multi_label_classification"


def label_scores(logits, config) -> torch.Tensor:
    """The probabilities `pipeline` gives: sigmoids for a multi-label classifier, else the softmax."""
    return torch.sigmoid(logits.float()) if is_multi_label(config) else torch.softmax(logits.float(), dim=-1)


def integrated_gradients(model, input_ids, target: int, steps: int = 32, batch_size: int = 8) -> torch.Tensor:
    """Per-token attributions (seq,) for one row `input_ids` (1, seq) towards class `target` (the log of its
    probability: its softmax share, or for a multi-label classifier its own sigmoid).

    The path points go through the model `batch_size` at a time, which bounds the memory a long review needs.
    """
    embeddings = model.get_input_embeddings()(input_ids).detach()  # (1, seq, dim)
    # Midpoints of `steps` equal intervals of the path from 0 to the embeddings (a Riemann sum).
    alphas = (torch.arange(steps, dtype=embeddings.dtype, device=embeddings.device) + 0.5) / steps
    grad_sum = torch.zeros_like(embeddings[0])
    for chunk in alphas.split(batch_size):
        path = (chunk[:, None, None] * embeddings).requires_grad_(True)  # (chunk, seq, dim)
        mask = torch.ones(path.shape[:2], dtype=torch.long, device=path.device)
        with torch.enable_grad():
            logits = model(inputs_embeds=path, attention_mask=mask).logits
            log_probs = (F.logsigmoid(logits.float()) if is_multi_label(model.config)
                         else torch.log_softmax(logits.float(), dim=-1))[:, target]
            (grads,) = torch.autograd.grad(log_probs.sum(), path)
        grad_sum += grads.sum(dim=0)
    return (embeddings[0] * grad_sum / steps).sum(dim=-1).detach()


def explain(model, tokenizer, text: str, target: int | None = None, steps: int = 32) -> Explanation:
    """Classify `text` and attribute the decision (or class `target`) to its tokens.

    Text beyond the tokenizer's `model_max_length` is cut, as the pipeline cuts it; those words get
    no weight.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("Give a non-empty text to explain.")
    if steps < 1:
        raise ValueError(f"`steps` must be at least 1, got {steps}.")
    encoded = tokenizer(text, truncation=True, return_offsets_mapping=True, return_tensors="pt")
    if encoded["input_ids"].shape[1] == 0:
        raise ValueError("The text has no tokens the tokenizer keeps.")
    device = next(model.parameters()).device
    input_ids = encoded["input_ids"].to(device)
    model.eval()
    with torch.no_grad():
        probs = label_scores(model(input_ids=input_ids).logits, model.config)[0]
    target = int(probs.argmax()) if target is None else int(target)
    raw = integrated_gradients(model, input_ids, target, steps).cpu()
    scale = float(raw.abs().max()) or 1.0
    id2label = model.config.id2label
    tokens = [
        (text[start:end], int(start), int(end), float(w) / scale)
        for (start, end), w in zip(encoded["offset_mapping"][0].tolist(), raw.tolist())
        if end > start  # special tokens have no characters
    ]
    return Explanation(
        label=id2label[target],
        probabilities={id2label[i]: float(p) for i, p in enumerate(probs.tolist())},
        tokens=tokens,
        raw=raw.tolist(),
    )


__all__ = ["Explanation", "explain", "integrated_gradients"]
