"""Publishing the demo page as a Hub Space: `validate_space_folder` checks a folder written by `seqhf.demo.page`, `push_space` uploads it."""

import os
from pathlib import Path

from huggingface_hub import HfApi, ModelCard

from .card_data import CARD_NAME
from .upload import (
    PICKLE_SUFFIXES,
    FolderNotReadyError,
    UploadFile,
    _escape_pattern,
    check_repo_id,
    list_upload_files,
    resolve_token,
)

SPACE_FILES = ("app.py", "requirements.txt", CARD_NAME)


def validate_space_folder(folder) -> list[UploadFile]:
    """Check that `folder` is a Gradio Space (app.py, requirements.txt, README.md whose YAML header names
    the `sdk` and `app_file`, no pickle files) and return the files a push would upload."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FolderNotReadyError(folder, [f"the folder itself ({folder} does not exist)"])
    files = list_upload_files(folder)
    names = {f.path for f in files}
    problems = [f"{name} (a Space needs it; seqhf demo --write-space writes it)" for name in SPACE_FILES if name not in names]
    if CARD_NAME in names:
        try:
            metadata = ModelCard.load(folder / CARD_NAME).data.to_dict()
        except Exception as err:  # malformed YAML header
            metadata = {}
            problems.append(f"{CARD_NAME} metadata cannot be read ({err})")
        if not metadata.get("sdk"):
            problems.append(f"{CARD_NAME} has no YAML header with the Space `sdk`")
        elif metadata.get("app_file", "app.py") not in names:
            problems.append(f"{metadata['app_file']} (the `app_file` named in {CARD_NAME})")
    problems += [f"{n} (pickle file refused)" for n in sorted(names) if n.endswith(PICKLE_SUFFIXES)]
    if problems:
        raise FolderNotReadyError(folder, problems)
    return files


def push_space(
    folder,
    repo_id: str,
    *,
    private: bool = False,
    commit_message: str | None = None,
    dry_run: bool = False,
    api: HfApi | None = None,
):
    """Validate the Space folder and publish it to the Space `repo_id` in one commit, as `push_folder` does
    for models (`create_repo(repo_type="space", space_sdk=...)`, then `upload_folder`)."""
    check_repo_id(repo_id)
    files = validate_space_folder(folder)
    if dry_run:
        return files
    sdk = ModelCard.load(Path(folder) / CARD_NAME).data.to_dict()["sdk"]
    api = api or HfApi(token=resolve_token())
    api.create_repo(repo_id, repo_type="space", space_sdk=sdk, private=True if private else None, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        repo_type="space",
        folder_path=os.fspath(folder),
        commit_message=commit_message or f"Upload the {Path(folder).resolve().name} Space with seqhf",
        allow_patterns=[_escape_pattern(f.path) for f in files],
    )
