"""Adversarial training on the word embeddings (Miyato, Dai & Goodfellow, 2017): each text pushed uphill by epsilon of its embedding norm."""

from contextlib import contextmanager

import torch


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
