"""Is a saved model folder whole? A save that was killed or ran out of disk leaves files missing, empty or
cut short; loading such a folder would fail deep inside transformers (an unnamed JSONDecodeError, a
safetensors header error). `check_saved_folder(folder)` names the file instead.

seqhf's training runs write `SAVE_INCOMPLETE.txt` into a folder before its final save and remove it once
every file is in place (`seqhf.training.run_folder`), so a folder whose save was interrupted says so even
where each of its files looks whole. The loaders seqhf ships (generation, the demo page, `classify`, the
ONNX export, the Hub upload) check it.

This module imports nothing of seqhf: the demo's Space carries it beside `generation.py`.
"""

import json
import struct
import zipfile
from pathlib import Path

INCOMPLETE_MARKER = "SAVE_INCOMPLETE.txt"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
NEEDED_FILES = ("config.json", "tokenizer_config.json", "tokenizer.json")
ONNX_FILE = "model.onnx"  # what `seqhf export` writes (seqhf.export.onnx_export.MODEL_FILE)
CHECKED_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".pth", ".py")


class IncompleteFolderError(ValueError):
    """A saved folder with files missing, empty or cut short; the message names them."""


class NotAClassifierError(ValueError):
    """A language model's folder given where a text classifier is loaded; the message says what to do instead."""


def safetensors_size(path: Path) -> int | None:
    """The size a safetensors file must have, from its header (None when the header itself is cut or unreadable)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return None
        (header_len,) = struct.unpack("<Q", head)
        try:
            header = json.loads(f.read(header_len))
        except (ValueError, MemoryError):
            return None
    ends = [t["data_offsets"][1] for name, t in header.items() if name != "__metadata__" and isinstance(t, dict)]
    return 8 + header_len + max(ends, default=0)


def file_problem(path) -> str | None:
    """What is wrong with one saved file (empty, JSON that does not parse, safetensors or a torch file cut
    short), or None when it looks whole. Only the file's header and end are read, except for JSON."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return f"{path.name} is empty (0 bytes)"
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            json.loads(path.read_bytes())
        except ValueError as err:  # JSONDecodeError, or bytes that are not UTF-8
            return f"{path.name} is not valid JSON, cut short? ({err})"
    elif suffix == ".safetensors":
        expected = safetensors_size(path)
        if expected is None:
            return f"{path.name} has no readable safetensors header (cut short?)"
        if expected != size:
            return f"{path.name} holds {size:,} of the {expected:,} bytes its header announces (cut short)"
    elif suffix in (".bin", ".pt", ".pth") and not zipfile.is_zipfile(path):
        return f"{path.name} is not a whole torch file (cut short?)"
    return None


def folder_problems(folder, needed=NEEDED_FILES, only=None) -> list[str]:
    """Everything wrong with a saved folder: its save marked unfinished (then also the `needed` files and the
    weights it lacks), and each of its model, tokenizer, JSON and code files that is empty or cut short
    (of the file names in `only`, when given)."""
    folder = Path(folder)
    problems = []
    if (folder / INCOMPLETE_MARKER).is_file():
        problems.append(f"its save did not finish ({INCOMPLETE_MARKER} is still there)")
        missing = [name for name in needed if not (folder / name).is_file()]
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            missing.append(WEIGHT_FILES[0])
        if missing:
            problems.append("missing " + ", ".join(missing))
    for path in sorted(folder.iterdir()):
        if only is not None and path.name not in only:
            continue
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in CHECKED_SUFFIXES:
            problem = file_problem(path)
            if problem:
                problems.append(problem)
    return problems


def is_hub_model_id(name: str) -> bool:
    """Whether `name` can be a Hub repository id (`name` or `owner/name`), as huggingface_hub checks one."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def offline_and_not_cached(repo_id: str) -> bool:
    """Whether the Hub is offline (HF_HUB_OFFLINE) and its cache holds no config.json of `repo_id`, so that
    transformers could only fail with its message about the connection."""
    from huggingface_hub import constants, try_to_load_from_cache

    return constants.HF_HUB_OFFLINE and not isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def check_saved_folder(folder) -> None:
    """Raise `IncompleteFolderError` naming the missing, empty or cut files when `folder` is a local folder
    whose save did not finish, `FileNotFoundError` when it is neither a folder nor a Hub id (`./run`, `/a/b`,
    `a/b/c`) or a Hub id that the Hub cache lacks while the Hub is offline, and `NotADirectoryError` for a file;
    anything else (a whole folder, a Hub id) passes."""
    path = Path(str(folder))
    if path.is_file():
        raise NotADirectoryError(f"{folder} is a file, not a model folder.")
    if not path.is_dir():
        if not is_hub_model_id(str(folder)):
            raise FileNotFoundError(f"No such folder: {folder} (nor is it a Hub model id).")
        if offline_and_not_cached(str(folder)):
            raise FileNotFoundError(
                f"No such folder: {folder}; as a Hub model id it is not in the Hub cache, and the Hub is offline "
                "(HF_HUB_OFFLINE=1): give the path of a saved model folder, or go online once to download it.")
        return
    refuse_onnx_export(path)
    problems = folder_problems(path)
    if problems:
        raise IncompleteFolderError(
            f"{folder} is incomplete: {'; '.join(problems)}. The save that wrote it was interrupted (killed, or "
            "the disk was full): run the training command again, with --resume to start from its last "
            "complete checkpoint.")


def refuse_onnx_export(folder: Path) -> None:
    """A clear ValueError for the folder `seqhf export` writes (a graph, no PyTorch weights), given where a model is
    loaded: transformers would fail with an OSError about the weight files it lacks."""
    if (folder / ONNX_FILE).is_file() and not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise ValueError(
            f"{folder} holds an ONNX export ({ONNX_FILE}), not a PyTorch model: give the folder it was exported from, "
            "or run the graph with seqhf.export.ort_inference (OrtCausalLM.from_folder for a language model, "
            "OrtTextClassifier for a classifier).")


def check_classifier_config(config, folder) -> None:
    """Raise `NotAClassifierError` when `config` was saved from a language model (its `architectures` all
    `...ForCausalLM`): loaded as a classifier, transformers would give it a new, untrained classification head
    whose answers are random, with only a logged warning. A backbone or a config without `architectures` passes."""
    saved_as = list(getattr(config, "architectures", None) or [])
    if saved_as and all(name.endswith("ForCausalLM") for name in saved_as):
        raise NotAClassifierError(
            f"{folder} holds {', '.join(saved_as)} (a language model), not a text classifier: loaded as one it "
            "would get a new, untrained classification head and answer at random. Use it where a language model goes "
            "(`seqhf generate`, the demo's --generator, `seqhf evaluate FOLDER --text FILE` to score it on a text, char "
            "or word LM alike), or train a classifier from a word LM with `seqhf train classifier --init-from FOLDER`.")


def check_classifier_folder(name_or_path, **config_kwargs) -> None:
    """What a loader of text classifiers checks first: the folder is whole (`check_saved_folder`) and holds no
    language model (`check_classifier_config`, on the config `AutoConfig` reads with `config_kwargs`)."""
    from transformers import AutoConfig

    check_saved_folder(name_or_path)
    check_classifier_config(AutoConfig.from_pretrained(name_or_path, **config_kwargs), name_or_path)
