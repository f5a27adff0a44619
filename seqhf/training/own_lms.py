"""A classifier's own word LMs: with a preset that says `pretrain` (`ulmfit-small`) and no `--init-from`, a forward
and a backward word LM first learn the training split's texts (without their labels) and any unlabelled texts of the
run (the dataset's own unlabelled split, `--unlabelled-data`), the validation split's texts held out, never trained
on; then the classifier starts from both (`ulmfit.bidirectional_classifier_from_lms`): ULMFiT's second and third
stages in one command, for a small labelled set.

The LMs are saved under the classifier's output folder (`_lms/forward`, `_lms/backward`; folders named `_*` are not
uploaded to the Hub), so `--resume` continues an LM cut short and reuses one that finished; with the random state the
LMs' training left (`rng_state_<rank>.pt` there), a resumed run draws the classifier's new head as an uninterrupted
run does.
"""

import os
from pathlib import Path

import torch

from datasets import concatenate_datasets

from ..data.classification import ClassificationData
from ..inference.saved_folder import folder_problems
from ..utils.runtime import is_main_process
from .common import EVAL_RESULTS, SetupError
from .presets import get_preset
from .ulmfit import check_lm_to_fine_tune
from .wordlm import TooLittleTextError, sample_texts, train_wordlm

OWN_LMS = "_lms"


def own_lm_folders(output_dir) -> tuple[Path, Path]:
    """Where a classifier run keeps its forward and backward LM."""
    folder = Path(output_dir) / OWN_LMS
    return folder / "forward", folder / "backward"


def finished(folder: Path) -> bool:
    """Whether an LM's run saved it whole (its results written, no save left unfinished or file cut short)."""
    return (folder / EVAL_RESULTS).is_file() and not folder_problems(folder)


def check_own_lm_options(preset_name: str, *, streaming: bool = False, cpu_budget_s=None, general_lms=None) -> None:
    """What a run that trains its own LMs cannot take, as SetupError before any data is read; `general_lms` must be a
    forward and a backward word LM."""
    if general_lms:
        if len(general_lms) != 2 or not all(general_lms):
            raise SetupError("--general-lm and --general-lm-backward go together: the run fine-tunes a forward and a "
                             "backward LM, each from its own.")
        for lm, backward, option in zip(general_lms, (False, True), ("--general-lm", "--general-lm-backward")):
            check_lm_to_fine_tune(lm, backward, option)
    apart = ("train the LMs apart (`seqhf train lm`, docs/ulmfit.md) and pass them as --init-from and "
             "--init-from-backward")
    if streaming:
        raise SetupError(f"--streaming keeps the data on disk, and the {preset_name!r} preset's own word LMs hold every "
                         f"training text in memory: use another preset, or {apart}.")
    if cpu_budget_s is not None:
        raise SetupError(f"--cpu-budget-s would count the {preset_name!r} preset's own word LMs without bounding them: "
                         f"{apart} (`seqhf train lm` takes its own --cpu-budget-s).")


def unlabelled_lm_texts(data: ClassificationData, extra_texts, lm_preset: dict) -> list:
    """The run's texts without labels for its LMs: the dataset's own unlabelled split, then `--unlabelled-data` (a
    list of datasets with a `text` column), at most the LM preset's `unlabelled_reviews` of them (the sample with
    seed 42 that `seqhf train lm` draws)."""
    parts = [data.unlabelled] if data.unlabelled is not None else []
    parts += list(extra_texts or [])
    if not parts:
        return []
    texts = concatenate_datasets([part.select_columns(["text"]) for part in parts])
    return list(sample_texts(texts, lm_preset.get("unlabelled_reviews"))["text"])


def pretrain_own_lms(data: ClassificationData, pretrain: dict, output_dir, *, extra_texts=(), general_lms=None,
                     seed: int = 42, quick: bool = False, resume: bool = False) -> tuple[str, str]:
    """Train (or, with `resume`, reuse or continue) the classifier's forward and backward LM on `data`'s training
    texts and unlabelled texts (`unlabelled_lm_texts`), held out: its validation texts. `pretrain`: the word-LM
    preset (`lm`) and its `epochs`. `general_lms`: a forward and a backward LM of general text to fine-tune them
    from (ULMFiT's second stage, `ulmfit.lm_for_new_text`) instead of starting from scratch. Returns the two
    folders, forward first."""
    train_texts, heldout_texts = data.splits["train"]["text"], data.splits["validation"]["text"]
    unlabelled = unlabelled_lm_texts(data, extra_texts, get_preset("wordlm", pretrain["lm"], quick))
    if is_main_process():
        also = f" and {len(unlabelled):,} unlabelled texts" if unlabelled else ""
        epochs = f"{pretrain['epochs']} epoch{'' if pretrain['epochs'] == 1 else 's'}"
        print(f"Pretraining this classifier's own word LMs (preset {pretrain['lm']!r}, {epochs}, forward then backward)"
              f" on its {len(train_texts):,} training texts, without their labels{also}; held "
              f"out: its {len(heldout_texts):,} validation texts.")
    folders, trained = own_lm_folders(output_dir), False
    for backward, folder, general in zip((False, True), folders, general_lms or (None, None)):
        if resume and finished(folder):
            if is_main_process():
                print(f"Reusing the finished LM in {folder}.")
            continue
        try:
            train_wordlm(pretrain["lm"], dataset=data.description.get("source", "the classifier's data"),
                         output_dir=str(folder), texts=(train_texts, heldout_texts, unlabelled), epochs=pretrain["epochs"],
                         seed=seed, quick=quick, backward=backward, resume=resume and folder.is_dir(),
                         init_from=general and str(general))
        except TooLittleTextError as err:  # (another SetupError, a full disk say, is its own message)
            raise SetupError(f"This classifier's own LMs (its preset's `pretrain`) hold out its validation texts: {err} "
                             "Give it more validation texts, or start it from LMs of your own (--init-from).") from err
        trained = True
    keep_random_state(folders[0].parent, restore=not trained)
    return tuple(str(folder) for folder in folders)


def keep_random_state(folder: Path, restore: bool) -> None:
    """Save torch's random state as the LMs' training left it in this process (or, on a --resume that reused both LMs,
    restore it), so that the classifier's new head is drawn as in an uninterrupted run."""
    path = folder / f"rng_state_{int(os.environ.get('RANK', 0))}.pt"
    if not restore:
        torch.save(torch.get_rng_state(), path)
    elif path.is_file():
        torch.set_rng_state(torch.load(path))
