"""A character n-gram baseline: interpolated Kneser-Ney (Chen & Goodman's modified discounts by default).

Why our own ~100 lines instead of a library: `nltk.lm` scores a character 7-gram on a million characters
in tens of minutes (it recomputes every context's counts per query), and `kenlm`'s pip package can only
query models: estimating one needs its C++ `lmplz` binary. Counting with `collections.Counter` fits the
whole book in seconds and scores the held-out tenth in a few more.

The model predicts `text[i]` from the `order - 1` characters before it. Characters never seen in training
share one `[UNK]` slot of the uniform base distribution, so every probability is non-zero.
"""

import math
from collections import Counter

import numpy as np


class CharKneserNey:
    """Interpolated Kneser-Ney character n-gram model.

    Highest order: raw counts; lower orders: continuation counts (how many distinct characters precede
    the n-gram). Each order discounts its counts by D1, D2 or D3+ (one D for all with `modified=False`) and
    gives the mass it freed to the next lower order; order 0 is uniform over the vocabulary plus `[UNK]`.
    """

    def __init__(self, order: int = 7, modified: bool = True):
        if order < 1:
            raise ValueError(f"`order` must be at least 1, got {order}.")
        self.order, self.modified = order, modified

    def fit(self, text: str) -> "CharKneserNey":
        if len(text) < self.order:
            raise ValueError(f"The text ({len(text)} characters) is shorter than the n-gram order {self.order}.")
        self.vocab = set(text)
        raw = Counter(text[i : i + self.order] for i in range(len(text) - self.order + 1))
        counts = {self.order: raw}
        for n in range(self.order - 1, 0, -1):
            continuation = Counter(gram[1:] for gram in counts[n + 1])
            continuation[text[:n]] = continuation[text[:n]] or 1  # the first n-gram has no left neighbour
            counts[n] = continuation
        self.counts = counts
        self.discounts = {n: self._discounts(c) for n, c in counts.items()}
        self.contexts = {n: self._context_stats(c, self.discounts[n]) for n, c in counts.items()}
        return self

    def _discounts(self, counts: Counter) -> tuple[float, float, float]:
        of = Counter(v for v in counts.values() if v <= 4)
        n1, n2, n3, n4 = (max(of[k], 1) for k in (1, 2, 3, 4))
        y = n1 / (n1 + 2 * n2)
        if not self.modified:
            return (y, y, y)
        return (max(1 - 2 * y * n2 / n1, 0.05), max(2 - 3 * y * n3 / n2, 0.05), max(3 - 4 * y * n4 / n3, 0.05))

    @staticmethod
    def _context_stats(counts: Counter, discounts) -> dict:
        """history -> (total count, mass freed by discounting), over all characters seen after it."""
        stats = {}
        for gram, c in counts.items():
            total, freed = stats.get(gram[:-1], (0, 0.0))
            stats[gram[:-1]] = (total + c, freed + discounts[min(c, 3) - 1])
        return stats

    def probability(self, history: str, char: str) -> float:
        """P(char | the last `order - 1` characters of history)."""
        p = 1.0 / (len(self.vocab) + 1)
        for n in range(1, self.order + 1):
            if n - 1 > len(history):
                break
            h = history[len(history) - n + 1 :] if n > 1 else ""
            stats = self.contexts[n].get(h)
            if stats is None:
                break  # a longer history is unseen too
            total, freed = stats
            c = self.counts[n].get(h + char, 0)
            discounted = max(c - self.discounts[n][min(c, 3) - 1], 0.0) if c else 0.0
            p = (discounted + freed * p) / total
        return p

    def char_log_probs(self, text: str) -> np.ndarray:
        """ln P(text[i] | text[:i]) for every i ≥ 1 (the first character has no history, as for the neural
        models, which score text[1:] given text[:-1])."""
        k = self.order - 1
        return np.array([math.log(self.probability(text[max(0, i - k) : i], text[i])) for i in range(1, len(text))])

    def nats_per_char(self, text: str) -> float:
        return float(-self.char_log_probs(text).mean())
