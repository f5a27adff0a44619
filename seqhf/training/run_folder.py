"""A run's output folder, kept whole: one run at a time, a final save that is never half done, resuming from
a complete checkpoint only, and a full disk reported as such.

- `holds_output_folder` (a decorator of the training functions): the folder is locked by the run that writes
  it (`.seqhf-run.lock`: pid, host, start time and command, held with `fcntl.flock`, so the OS releases it
  when a run is killed and the next run sees the stale record). Under `accelerate launch` only the main
  process takes it. A disk that fills up during the run is reported as "No space left on device" with the
  file being written, whatever the writer raised (torch's iostream errors say nothing of the disk).
- `final_save`: the final model, tokenizer and results are written in `_saving/` and moved into the folder
  file by file (each move is atomic), with `SAVE_INCOMPLETE.txt` in the folder from the start of the save
  until everything is in place (`seqhf.inference.saved_folder` checks it where folders are loaded).
- `last_complete_checkpoint`: the newest checkpoint whose files are all there and whole;
  `set_aside_earlier_run`: a run that starts anew moves an earlier run's checkpoints and final model out of its way.
"""

import errno
import functools
import inspect
import json
import os
import re
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ..inference.saved_folder import INCOMPLETE_MARKER, WEIGHT_FILES, file_problem, folder_problems
from ..utils.runtime import is_main_process
from .errors import SetupError

try:
    import fcntl
except ImportError:  # Windows: no lock (two runs into one folder are not detected there)
    fcntl = None

LOCK_NAME = ".seqhf-run.lock"
STAGING = "_saving"  # "_" folders are not uploaded to the Hub
INCOMPLETE_CHECKPOINTS = "_incomplete"
PREVIOUS_RUN = "_previous_run"
CHECKPOINT = re.compile(r"checkpoint-(\d+)")
# What a finished run leaves beside its checkpoints: the saved model, tokenizer, card, figures, results and
# TensorBoard logs (`runs/`); `_` folders (the word-vector cache) and the lock stay.
EARLIER_RUN_FILES = (
    "config.json", "generation_config.json", "configuration_*.py", "modeling_*.py", "model.safetensors",
    "model-*.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "eval_results.json", "README.md", "*.png", "trainer_state.json", "training_args.bin",
    "runs", INCOMPLETE_MARKER,
)
# Without the optimizer's or the schedule's state Trainer resumes with fresh ones and says nothing: another run.
CHECKPOINT_NEEDED = ("trainer_state.json", "config.json", "optimizer.pt", "scheduler.pt")
NO_SPACE_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
NO_SPACE_WORDS = ("no space left on device", "storagefull", "os error 28", "disk quota exceeded")
# What writers say when a write fails without naming the reason (torch.save: "basic_ios::clear: iostream
# error", "unexpected pos", "PytorchStreamWriter failed writing file"): a full disk when little space is left.
WRITE_FAILED_WORDS = ("iostream error", "unexpected pos", "file write failed", "failed writing")
LOW_SPACE_BYTES = 64 << 20


class OutputFolderError(SetupError):
    """The output folder cannot be used (another run writes it) or written (the disk is full)."""


# ---------------------------------------------------------------- one run a folder


def _holder() -> dict:
    return dict(pid=os.getpid(), host=socket.gethostname(), started=time.strftime("%Y-%m-%d %H:%M:%S"),
                command=" ".join(sys.argv)[:300])


def _describe(record: bytes) -> str:
    try:
        h = json.loads(record)
        return f"pid {h['pid']} on {h['host']}, started {h['started']}: {h['command']}"
    except (ValueError, KeyError, TypeError):
        return record.decode(errors="replace").strip()[:300] or "no record"


@contextmanager
def run_lock(folder):
    """Hold `folder`'s lock for the duration, or raise `OutputFolderError` naming the run that holds it."""
    path = Path(folder) / LOCK_NAME
    if fcntl is None:
        yield
        return
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            if err.errno in NO_SPACE_ERRNOS:
                raise
            raise OutputFolderError(f"Cannot write in the output folder {folder}: {err.strerror}.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _describe(os.pread(fd, 4096, 0))
            os.close(fd)
            raise OutputFolderError(
                f"{folder} is being written by another run ({holder}). Wait for it to end, or choose another "
                f"--output-dir (the lock is {path}; it goes with the run that holds it).") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file as we opened it: take the new one
    try:
        stale = os.pread(fd, 4096, 0)
        if stale.strip():
            print(f"note: {folder} was locked by a run that ended without releasing it ({_describe(stale)}): "
                  "killed or crashed; this run takes the folder over.", flush=True)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        yield
    finally:
        try:
            os.unlink(path)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- a full disk


def _chain(err):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def free_bytes(folder) -> int:
    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def file_being_written(folder, since: float):
    """The file of `folder` (recursively) that a failed write left behind: of the files written since `since`,
    the newest one that is empty or cut short (`saved_folder.file_problem`), else the newest one. (File times
    tick every few milliseconds, so the newest alone could be the file finished just before.)"""
    recent = []
    for path in Path(folder).rglob("*"):
        try:
            if path.is_file() and path.stat().st_mtime >= since:
                recent.append((path.stat().st_mtime_ns, path))
        except OSError:
            continue
    recent.sort(key=lambda item: item[0], reverse=True)
    for _, path in recent:
        try:
            if file_problem(path):
                return path
        except OSError:
            continue
    return recent[0][1] if recent else None


def disk_full_message(err: BaseException, folder, since: float) -> str | None:
    """The message for `err` when it comes from a full disk (None otherwise), naming the file being written:
    the error's own file name, else `file_being_written(folder, since)`."""
    full, written = False, None
    for e in _chain(err):
        text = str(e).lower()
        if isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS:
            full, written = True, written or e.filename2 or e.filename  # a copy's error names its source first
        elif any(w in text for w in NO_SPACE_WORDS):
            full = True
        elif any(w in text for w in WRITE_FAILED_WORDS) and free_bytes(folder) < LOW_SPACE_BYTES:
            full = True
    if not full:
        return None
    written = written or file_being_written(folder, since)
    where = f"while writing {written}" if written else f"while writing into {folder} (or a cache)"
    return (f"No space left on device {where} ({free_bytes(folder) / 2**20:.0f} MiB free there). Free some "
            "space, then run the same command with --resume: it goes on from the last complete checkpoint.")


# ---------------------------------------------------------------- the decorator


def make_folder(folder: Path) -> None:
    """Create the output folder, or raise `OutputFolderError` saying why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputFolderError(f"The output folder {folder} is a file: choose another --output-dir.") from None
    except OSError as err:
        if err.errno in NO_SPACE_ERRNOS:
            raise
        raise OutputFolderError(f"Cannot create the output folder {folder}: {err.strerror}.") from None


@contextmanager
def output_folder(output_dir):
    """The run's hold on `output_dir`: its lock (main process only), a full disk reported as such, and the
    folder removed again when this run created it and left nothing in it (bad input found early)."""
    folder, start, main = Path(output_dir), time.time(), is_main_process()
    created = main and not folder.exists()
    try:
        if main:
            make_folder(folder)
        with run_lock(folder) if main else _nothing():
            yield folder
    except Exception as err:
        message = disk_full_message(err, folder, start)
        if message:
            raise OutputFolderError(message) from err
        raise
    finally:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


@contextmanager
def _nothing():
    yield


def holds_output_folder(train):
    """Run `train` (a function with an `output_dir` argument) inside `output_folder(output_dir)`."""
    signature = inspect.signature(train)

    @functools.wraps(train)
    def run(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        with output_folder(bound.arguments["output_dir"]):
            return train(*args, **kwargs)

    return run


# ---------------------------------------------------------------- checkpoints and the final save


def checkpoint_problems(checkpoint) -> list[str]:
    """What a checkpoint lacks to resume from: its state, config and weights, and files empty or cut short."""
    checkpoint = Path(checkpoint)
    missing = [name for name in CHECKPOINT_NEEDED if not (checkpoint / name).is_file()]
    if not any((checkpoint / name).is_file() for name in WEIGHT_FILES):
        missing.append(WEIGHT_FILES[0])
    return [f"{name} missing" for name in missing] + folder_problems(checkpoint, needed=())


def last_complete_checkpoint(output_dir, set_aside: bool = False) -> tuple[Path | None, list[str]]:
    """The newest complete checkpoint of `output_dir` (None if none), and a line for each newer one skipped.
    With `set_aside`, the skipped ones are moved into `_incomplete/`: left in place, the newest would count as
    the run's latest checkpoint, which Trainer's rotation keeps while it deletes the one it has just saved."""
    folder = Path(output_dir)
    found = [p for p in folder.iterdir() if p.is_dir() and CHECKPOINT.fullmatch(p.name)] if folder.is_dir() else []
    last, skipped = None, []
    for checkpoint in sorted(found, key=lambda p: int(CHECKPOINT.fullmatch(p.name).group(1)), reverse=True):
        problems = checkpoint_problems(checkpoint)
        if not problems:
            last = checkpoint
            break
        skipped.append(f"{checkpoint.name} ({'; '.join(problems)})")
        if set_aside:
            aside = folder / INCOMPLETE_CHECKPOINTS / checkpoint.name
            if aside.exists():
                shutil.rmtree(aside)  # an earlier interruption at the same step
            aside.parent.mkdir(exist_ok=True)
            os.replace(checkpoint, aside)
    return last, skipped


def set_aside_earlier_run(output_dir) -> list[str]:
    """A run that starts anew (no --resume) moves what an earlier run left in `output_dir`, its checkpoints and its
    final model, card, figures and logs (`EARLIER_RUN_FILES`), into `_previous_run/` (replacing what a still earlier
    run left there) and returns their names, checkpoints first. Left in place, Trainer's rotation would keep the
    earlier run's higher-numbered checkpoints over this run's own, a later --resume would continue the earlier run,
    and until this run's final save the folder would offer the earlier model as its own (to generate, export or
    push) even if this run were stopped."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    checkpoints = sorted((p.name for p in folder.iterdir() if p.is_dir() and CHECKPOINT.fullmatch(p.name)),
                         key=lambda name: int(CHECKPOINT.fullmatch(name).group(1)))
    files = sorted({p.name for pattern in EARLIER_RUN_FILES for p in folder.glob(pattern)})
    if not checkpoints and not files:
        return []
    aside = folder / PREVIOUS_RUN
    if aside.exists():
        shutil.rmtree(aside)
    aside.mkdir()
    for name in checkpoints + files:
        os.replace(folder / name, aside / name)
    return checkpoints + files


def checkpoint_processes(checkpoint) -> int | None:
    """How many processes trained `checkpoint`: the Trainer saves one RNG state a process (`rng_state_K.pth`
    with several, `rng_state.pth` with one); None when it holds none."""
    folder = Path(checkpoint)
    ranks = len(list(folder.glob("rng_state_*.pth")))
    return ranks or (1 if (folder / "rng_state.pth").is_file() else None)


@contextmanager
def final_save(output_dir, main: bool = True):
    """Write the final files into the `_saving/` folder this yields; when the block ends without an error,
    they are moved into `output_dir` one by one (atomic renames). `SAVE_INCOMPLETE.txt` marks the folder from
    the start; `mark_complete` removes it once the folder is whole. An error leaves the marker in place."""
    folder = Path(output_dir)
    staging = folder / STAGING
    if main:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / INCOMPLETE_MARKER).write_text(
            f"seqhf began the final save of this folder at {time.strftime('%Y-%m-%d %H:%M:%S')} (pid {os.getpid()}) "
            "and removes this file once every file is written. If it is still here, the save was interrupted: "
            "files may be missing, empty or from an earlier run.\n")
        if staging.exists():
            shutil.rmtree(staging)  # what an interrupted save left
        staging.mkdir()
    yield staging
    if main:
        for entry in sorted(staging.iterdir()):
            target = folder / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
        staging.rmdir()


def mark_complete(output_dir) -> None:
    """The final save is whole: remove its `SAVE_INCOMPLETE.txt`."""
    (Path(output_dir) / INCOMPLETE_MARKER).unlink(missing_ok=True)
