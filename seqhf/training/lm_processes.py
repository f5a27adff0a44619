"""What a language model's Trainer needs to train in several processes (`--processes N`, `accelerate launch`):
a batch that shares out, each process its own dropout masks, and a held-out loss over every window exactly once."""

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import EvalLoopOutput

from .common import SetupError


def check_shared_batch(args) -> None:
    """The preset's batch is one optimizer step's, shared out among the processes (`split_batches`): their number
    must divide it."""
    if args.per_device_train_batch_size % args.world_size:
        raise SetupError(f"The batch of {args.per_device_train_batch_size} rows a step does not share out among "
                         f"{args.world_size} processes: choose a number of processes that divides it.")


class RankSeeds(TrainerCallback):
    """With several processes, each draws its own dropout masks and state resets (torch seeded with seed + rank):
    with the one seed the Trainer gives them all, row r of every process would share its masks. Seeded as
    training begins, before a resumed run loads each process's saved RNG state."""

    def on_train_begin(self, args, state, control, **kwargs):
        if args.world_size > 1:
            torch.manual_seed(args.seed + args.process_index)


class SharedWindowEvaluation(Trainer):
    """A Trainer of windows (`input_ids`, `shift_labels`) whose evaluation under several processes is the mean
    loss over every window exactly once, as one process computes it. `window_metrics(loss, prefix)` adds the
    task's own figures to the mean loss (perplexity, bits per character)."""

    def window_metrics(self, loss: float, prefix: str) -> dict:
        return {}

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        if self.args.world_size > 1:
            return self.shared_evaluation_loop(dataloader, metric_key_prefix)
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        loss = output.metrics.get(f"{metric_key_prefix}_loss")
        if loss is not None:
            output.metrics.update(self.window_metrics(loss, metric_key_prefix))
        return output

    @torch.no_grad()
    def shared_evaluation_loop(self, dataloader, metric_key_prefix) -> EvalLoopOutput:
        """Each process scores its windows; `gather_for_metrics` drops the windows accelerate repeats to even out
        the processes' last batches. The Trainer's own loop gathers each batch's mean loss, in which those
        repeated windows count (2 processes, a 0.01-nats/char difference on a small held-out text)."""
        model = self.model.eval()
        losses = []
        for inputs in dataloader:
            inputs = self._prepare_inputs(inputs)
            with self.autocast_smart_context_manager():
                logits = model(input_ids=inputs["input_ids"]).logits
            per_window = F.cross_entropy(logits.float().transpose(1, 2), inputs["shift_labels"], reduction="none").mean(1)
            losses.append(self.accelerator.gather_for_metrics(per_window))
        loss = torch.cat(losses).mean().item()
        metrics = {f"{metric_key_prefix}_loss": loss, **self.window_metrics(loss, metric_key_prefix)}
        return EvalLoopOutput(predictions=None, label_ids=None, metrics=metrics, num_samples=len(dataloader.dataset))
