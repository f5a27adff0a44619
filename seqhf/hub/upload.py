"""Publishing a model folder: `validate_repo_folder(folder)` checks that it is a complete, pickle-free model repository, and `push_folder(folder, repo_id)` publishes it with one `HfApi.upload_folder` commit."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, ModelCard, get_token
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from ..inference.saved_folder import folder_problems
from .card_data import CARD_NAME, _read_json

# Pickle-based formats: never published (they run code when loaded). Weights go out as safetensors only.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


# Trainer bookkeeping left in an output folder, not part of the model repository. `training_args.bin`
# is a pickle of TrainingArguments; the card and eval_results.json carry the same arguments as text.
SKIPPED_NAMES = ("training_args.bin",)


SKIPPED_DIR_PREFIXES = ("checkpoint-", ".", "_", "hf_modules")


class FolderNotReadyError(ValueError):
    """The folder is not a complete, safe model repository; `.problems` lists everything wrong."""

    def __init__(self, folder, problems):
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{folder} is not ready to be pushed; nothing was uploaded. Missing or refused:\n{listing}")


class MissingTokenError(RuntimeError):
    pass


@dataclass(frozen=True)
class UploadFile:
    path: str  # relative, POSIX
    size: int


def _skipped(rel: Path) -> bool:
    return rel.name in SKIPPED_NAMES or any(part.startswith(SKIPPED_DIR_PREFIXES) for part in rel.parts[:-1])


def list_upload_files(folder) -> list[UploadFile]:
    """The files a push would upload: everything in the folder except Trainer checkpoints (`checkpoint-*/`),
    hidden and `_*` folders, the module cache, and `training_args.bin`."""
    folder = Path(folder)
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not _skipped(rel) and not rel.name.startswith("."):
            files.append(UploadFile(rel.as_posix(), path.stat().st_size))
    return files


def _auto_map_modules(auto_map: dict) -> set[str]:
    modules = set()
    for ref in auto_map.values():
        for item in ref if isinstance(ref, (list, tuple)) else [ref]:
            if item:
                item = item.split("--")[-1]  # "owner/repo--module.Class" points at another repo's code
                modules.add(item.rsplit(".", 1)[0] + ".py")
    return modules


def validate_repo_folder(folder) -> list[UploadFile]:
    """Check that `folder` is a complete model repository and return the files a push would upload.

    Needs config.json with an `auto_map`, every code file the auto_map names, model.safetensors (or a
    safetensors index with all its shards), tokenizer.json + tokenizer_config.json, and README.md (the card).
    Pickle files (*.bin, *.pt, *.pkl, ...) are refused, and so is a folder whose save did not finish (its
    `SAVE_INCOMPLETE.txt`, files empty or cut short: `seqhf.inference.saved_folder`). Raises `FolderNotReadyError` listing every problem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        why = "is a file, not a folder" if folder.exists() else "does not exist"
        raise FolderNotReadyError(folder, [f"the folder itself ({folder} {why})"])
    files = list_upload_files(folder)
    names = {f.path for f in files}
    problems = folder_problems(folder, only=names)  # a save that did not finish; uploaded files empty or cut

    if "config.json" not in names:
        problems.append("config.json")
    elif any(p.startswith("config.json ") for p in problems):
        pass  # named above (empty or not valid JSON)
    else:
        try:
            auto_map = _read_json(folder / "config.json").get("auto_map")
        except json.JSONDecodeError as err:
            problems.append(f"config.json is not valid JSON ({err})")
            auto_map = {}
        if not auto_map:
            problems.append("config.json has no `auto_map` (the model cannot load with trust_remote_code)")
        else:
            problems += [f"{m} (code file named in config.json auto_map)" for m in sorted(_auto_map_modules(auto_map) - names)]

    if "model.safetensors.index.json" in names:
        shards = set(_read_json(folder / "model.safetensors.index.json").get("weight_map", {}).values())
        problems += [f"{s} (safetensors shard named in the index)" for s in sorted(shards - names)]
    elif "model.safetensors" not in names:
        problems.append("model.safetensors (weights; only safetensors are published)")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if name not in names:
            problems.append(name)
    if CARD_NAME not in names:
        problems.append(f"{CARD_NAME} (the model card; run seqhf.hub.cards.write_model_card)")
    else:
        try:
            metadata = ModelCard.load(folder / CARD_NAME).data.to_dict()
        except Exception as err:  # malformed YAML header
            metadata = {}
            problems.append(f"{CARD_NAME} metadata cannot be read ({err})")
        if not metadata.get("library_name"):
            problems.append(f"{CARD_NAME} has no YAML metadata with `library_name`")

    problems += [f"{n} (pickle file refused: publish safetensors only)" for n in sorted(names) if n.endswith(PICKLE_SUFFIXES)]
    if problems:
        raise FolderNotReadyError(folder, problems)
    return files


def format_upload_plan(files: list[UploadFile]) -> str:
    width = max(len(f.path) for f in files)
    lines = [f"{f.path:<{width}}  {f.size:>12,} bytes" for f in files]
    lines.append(f"{len(files)} files, {sum(f.size for f in files):,} bytes in all")
    return "\n".join(lines)


def _escape_pattern(path: str) -> str:
    """An fnmatch pattern matching exactly `path`."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in path)


def check_repo_id(repo_id) -> None:
    """A ValueError naming a repo id the Hub would refuse (checked by huggingface_hub, before a dry run lists files)."""
    try:
        validate_repo_id(repo_id or "")
    except HFValidationError as err:
        raise ValueError(f"`repo_id` {repo_id!r} is not a Hub repository id ('name' or 'owner/name'): {err}") from None


def resolve_token() -> str:
    token = get_token()  # HF_TOKEN, then the token saved by `hf auth login`
    if not token:
        raise MissingTokenError(
            "No Hugging Face token found: set the HF_TOKEN environment variable to a token with write access "
            "(https://huggingface.co/settings/tokens) or log in once with `hf auth login`. "
            "Use --dry-run to check the folder without a token."
        )
    return token


def card_names_the_repo(folder: Path, repo_id: str) -> None:
    """A card rendered without a repo id loads the model from the folder in its code snippets (`"./imdb-lstm"`),
    which a reader of the Hub page cannot: they name `repo_id` instead, in the folder too (as
    `Trainer.push_to_hub` writes its card there), the rest of the card as it is."""
    card = folder / CARD_NAME
    local = f'"./{folder.resolve().name}"'
    text = card.read_text(encoding="utf-8")
    if local in text:
        card.write_text(text.replace(local, f'"{repo_id}"'), encoding="utf-8")


def push_folder(
    folder,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run: bool = False,
    api: HfApi | None = None,
):
    """Validate `folder` and publish it to the model repo `repo_id` in one commit.

    `create_repo(exist_ok=True)`, then (for a `revision` other than main) `create_branch(exist_ok=True)`,
    then one `upload_folder` commit holding exactly `validate_repo_folder(folder)`'s files. The card's code
    snippets, which name the local folder until then, name the repo (`card_names_the_repo`). A dry run
    validates and returns that list without needing a token or touching the network.
    Returns the list of `UploadFile` (dry run) or the `CommitInfo` of the upload.
    """
    check_repo_id(repo_id)
    files = validate_repo_folder(folder)
    if dry_run:
        return files
    api = api or HfApi(token=resolve_token())
    created = api.create_repo(repo_id, repo_type="model", private=True if private else None, exist_ok=True)
    card_names_the_repo(Path(folder), getattr(created, "repo_id", None) or repo_id)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        repo_type="model",
        folder_path=os.fspath(folder),
        revision=revision,
        commit_message=commit_message or f"Upload {Path(folder).resolve().name} with seqhf",
        allow_patterns=[_escape_pattern(f.path) for f in files],
    )
