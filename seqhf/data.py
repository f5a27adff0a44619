"""Data for the chapter's two projects: IMDb reviews and The Mysterious Island."""

import os
import re
from dataclasses import dataclass

import torch
from datasets import DatasetDict, load_dataset

IMDB_HUB_ID = "stanfordnlp/imdb"
LOCAL_IMDB = "../shared/data/imdb"
LOCAL_ISLAND = "../shared/data/mysterious_island/1268-0.txt"
ISLAND_URL = "https://www.gutenberg.org/files/1268/1268-0.txt"
ISLAND_START, ISLAND_END = "THE MYSTERIOUS ISLAND", "End of the Project Gutenberg"


def _is_hub_id(name_or_path: str) -> bool:
    """`name` or `owner/name`, and not a relative or absolute path."""
    return re.fullmatch(r"[\w-][\w.-]*(/[\w-][\w.-]*)?", name_or_path) is not None


def load_imdb(name_or_path: str = IMDB_HUB_ID, validation_size: int | float = 0.2, seed: int = 42) -> DatasetDict:
    """IMDb as train / validation / test, plus `unsupervised` (unlabelled reviews) when the source has it.
    Validation is carved from train with a fixed seed; test is kept for final figures. `name_or_path` is a
    hub id or a local folder in the `stanfordnlp/imdb` layout (e.g. ../shared/data/imdb for offline use)."""
    if not os.path.exists(os.path.expanduser(name_or_path)) and not _is_hub_id(name_or_path):
        raise FileNotFoundError(
            f"IMDb folder not found: {name_or_path!r}. Pass the hub id {IMDB_HUB_ID!r} (needs network) "
            f"or a local copy in that repository's layout, e.g. {LOCAL_IMDB}."
        )
    try:
        raw = load_dataset(os.path.expanduser(name_or_path))
    except (ConnectionError, FileNotFoundError) as err:
        raise FileNotFoundError(
            f"Could not load IMDb from {name_or_path!r} ({err}). Offline, pass a local copy such as {LOCAL_IMDB}."
        ) from err
    for split in ("train", "test"):
        if split not in raw or len(raw[split]) == 0:
            raise ValueError(f"The IMDb data at {name_or_path!r} has no (or an empty) {split!r} split.")
    carved = raw["train"].train_test_split(test_size=validation_size, seed=seed, stratify_by_column="label")
    splits = dict(train=carved["train"], validation=carved["test"], test=raw["test"])
    if "unsupervised" in raw:
        splits["unsupervised"] = raw["unsupervised"]
    return DatasetDict(splits)


def read_island_text(path: str = LOCAL_ISLAND) -> str:
    """The novel as the chapter cuts it: from `THE MYSTERIOUS ISLAND` up to `End of the Project Gutenberg`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Text file not found: {path!r}. The Mysterious Island is Project Gutenberg EBook #1268 ({ISLAND_URL})."
        )
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    start, end = text.find(ISLAND_START), text.find(ISLAND_END)
    if start < 0 or end < 0 or end <= start:
        raise ValueError(f"{path!r} lacks the markers {ISLAND_START!r} … {ISLAND_END!r}: is it Gutenberg #1268?")
    return text[start:end]


def split_heldout(text: str, heldout_fraction: float = 0.1) -> tuple[str, str]:
    """Train on the first part of the book, hold out the last `heldout_fraction` of it."""
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"`heldout_fraction` must be in (0, 1), got {heldout_fraction}.")
    cut = int(len(text) * (1.0 - heldout_fraction))
    return text[:cut], text[cut:]


@dataclass
class CharChunks(torch.utils.data.Dataset):
    """Consecutive, non-overlapping chunks of `seq_len` ids with targets shifted by one (the book's cut).

    Item i holds ids[i*L : i*L + L] as `input_ids` and ids[i*L + 1 : i*L + L + 1] as `labels`
    already shifted, so the model is called with `shift_labels`. With `jitter`, item i starts at a random
    offset in [i*L, i*L + L) each time it is read, so epochs do not re-read the same windows (every
    character is seen with ever new contexts, which slows over-fitting).
    """

    ids: torch.Tensor
    seq_len: int = 40
    jitter: bool = False

    def __post_init__(self):
        if self.seq_len <= 0:
            raise ValueError(f"`seq_len` must be positive, got {self.seq_len}.")
        if len(self.ids) < self.seq_len + 1:
            raise ValueError(f"The text has {len(self.ids)} ids, fewer than seq_len + 1 = {self.seq_len + 1}.")

    def __len__(self):
        return (len(self.ids) - 1) // self.seq_len

    def __getitem__(self, i):
        start = i * self.seq_len
        if self.jitter:  # the global RNG, which the Trainer seeds and checkpoints
            start = min(start + int(torch.randint(self.seq_len, ())), len(self.ids) - self.seq_len - 1)
        chunk = self.ids[start : start + self.seq_len + 1]
        return {"input_ids": chunk[:-1], "labels": chunk[:-1].clone(), "shift_labels": chunk[1:]}


def encode_text(tokenizer, text: str) -> torch.Tensor:
    """All ids of `text` as one long tensor (no special tokens)."""
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)
