"""Faults that used to lose work or report wrong figures (issue #25, point 3), each injected: a second run into
a folder in use, a killed run's lock, a baseline that fails, resuming past incomplete checkpoints, a final
save killed midway, and a full disk."""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import Future

import pandas as pd
import pytest
import torch
from transformers import TrainerCallback, pipeline

import seqhf.training.run_folder as run_folder
from conftest import REPO
from seqhf.data.classification import load_classification_data
from seqhf.hub.upload import FolderNotReadyError, validate_repo_folder
from seqhf.inference.generation import load_generator
from seqhf.inference.saved_folder import INCOMPLETE_MARKER, IncompleteFolderError, check_saved_folder
from seqhf.training.classifier import PhaseTimes, classify, collect_baseline, train_classifier
from seqhf.training.common import SetupError
from seqhf.training.run_folder import LOCK_NAME, OutputFolderError, output_folder

TINY = dict(
    arch="lstm", model=dict(embedding_size=8, hidden_size=8, bidirectional=True, pooling="concat"),
    vocab_size=100, max_length=12, truncation="head", validation_size=0.25,
    train=dict(learning_rate=2e-2, epochs=3, batch_size=8, weight_decay=0.0, warmup=0.0, scheduler="constant",
               patience=5),
)
QUIET = dict(report_to="none", disable_tqdm=True)
ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_data(folder, texts=None):
    """train.csv and test.csv of two classes the words tell apart (or the given (text, label) pairs)."""
    folder.mkdir(parents=True, exist_ok=True)
    words = {"good": ["great", "fine", "superb"], "bad": ["awful", "dull", "poor"]}
    for split, n in (("train", 48), ("test", 16)):
        rows = texts or [(f"the film was {words[label][i % 3]} today", label)
                         for i in range(n) for label in [("good", "bad")[i % 2]]]
        pd.DataFrame(rows, columns=["text", "label"]).to_csv(folder / f"{split}.csv", index=False)
    return dict(source=str(folder))


def start_holder(folder, tmp_path):
    """A process that holds `folder` as a run does, until it is killed; returns it once it holds the lock."""
    code = textwrap.dedent(f"""
        import time
        from seqhf.training.run_folder import output_folder
        with output_folder({str(folder)!r}):
            print("holding", flush=True)
            time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


# ------------------------------------------------------------------ one run a folder


def test_a_second_run_into_a_folder_in_use_is_refused_and_a_killed_runs_lock_taken_over(tmp_path, capsys,
                                                                                          monkeypatch):
    data, out = write_data(tmp_path / "data"), tmp_path / "out"
    holder = start_holder(out, tmp_path)
    try:
        lock = json.loads((out / LOCK_NAME).read_text())
        assert lock["pid"] == holder.pid and lock["host"] and lock["started"]
        with pytest.raises(SetupError, match=rf"being written by another run \(pid {holder.pid} on .*started"):
            train_classifier(data, TINY, out, baseline=False, **QUIET)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # the refused run wrote nothing
        # Under accelerate launch only the main process takes the lock: the others never refuse themselves.
        monkeypatch.setenv("RANK", "1")
        with output_folder(out):
            pass
        monkeypatch.delenv("RANK")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / LOCK_NAME).is_file()  # a killed run cannot remove its lock file, but the OS released its lock
    capsys.readouterr()
    results = train_classifier(data, TINY, out, baseline=False, max_steps=2, **QUIET)
    said = capsys.readouterr().out
    assert f"ended without releasing it (pid {holder.pid} on" in said and "takes the folder over" in said
    assert results["train_args"]["max_steps"] == 2 and (out / "model.safetensors").is_file()
    assert not (out / LOCK_NAME).exists()  # released at the end


# ------------------------------------------------------------------ a baseline that fails


def test_a_failing_figure_is_a_note_and_the_model_is_kept(tmp_path, capsys, monkeypatch):
    import seqhf.training.classifier as classifier

    def out_of_memory(*args, **kwargs):
        raise MemoryError("cannot allocate the figure")

    monkeypatch.setattr(classifier, "plot_confusion_matrix", out_of_memory)
    out = tmp_path / "out"
    train_classifier(write_data(tmp_path / "data"), TINY, out, baseline=False, max_steps=2, **QUIET)
    assert "Figures not drawn: cannot allocate the figure" in capsys.readouterr().out
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    check_saved_folder(out)


def test_a_failing_baseline_is_a_warning_and_the_model_is_kept(tmp_path, capsys):
    """Emoji-only texts: the model trains on them, TF-IDF finds no word ("empty vocabulary")."""
    emoji = {"good": "😀 🎉 👍", "bad": "😡 💀 👎"}
    data = write_data(tmp_path / "data", [(emoji[label], label) for label in ["good", "bad"] * 24])
    out = tmp_path / "out"
    results = train_classifier(data, TINY, out, max_steps=2, **QUIET)
    assert "empty vocabulary" in results["baseline"]["failed"]
    assert results["baseline"]["method"] == "TF-IDF (word 1-2-grams) + logistic regression"
    assert "warning: the TF-IDF baseline failed (ValueError: empty vocabulary" in capsys.readouterr().err
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["baseline"] == results["baseline"] and "test_accuracy" in saved
    assert "| baseline: TF-IDF (word 1-2-grams) + logistic regression, same splits | not available: it failed" in \
        (out / "README.md").read_text()
    assert pipeline("text-classification", model=str(out))("😀 🎉")[0]["label"] in ("good", "bad")
    # The baseline fitted beside word2vec, in a child process that failed: the same record.
    background = Future()
    background.set_exception(RuntimeError("the child process was killed"))
    loaded = load_classification_data(data["source"])
    assert collect_baseline(background, loaded, PhaseTimes())["failed"] == "RuntimeError: the child process was killed"


# ------------------------------------------------------------------ resuming past incomplete checkpoints


class _Killed(Exception):
    pass


class _KillAtSave(TrainerCallback):
    def __init__(self, saves):
        self.saves = saves

    def on_save(self, args, state, control, **kwargs):
        self.saves -= 1
        if self.saves == 0:
            raise _Killed(f"killed after saving step {state.global_step}")


def test_resume_skips_incomplete_checkpoints_and_says_which(tmp_path, capsys):
    data, out = write_data(tmp_path / "data"), tmp_path / "out"
    with pytest.raises(_Killed):
        train_classifier(data, TINY, out, baseline=False, save_total_limit=3, callbacks=[_KillAtSave(3)], **QUIET)
    first, second, third = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    (third / "trainer_state.json").unlink()  # killed before its last file
    optimizer = (second / "optimizer.pt").read_bytes()
    (second / "optimizer.pt").write_bytes(optimizer[: len(optimizer) // 2])  # the disk filled up mid-file
    for state_file in ("optimizer.pt", "scheduler.pt"):  # without it Trainer would go on afresh, without a word
        shutil.copytree(first, tmp_path / "copy")
        (tmp_path / "copy" / state_file).unlink()
        assert run_folder.checkpoint_problems(tmp_path / "copy") == [f"{state_file} missing"]
        shutil.rmtree(tmp_path / "copy")
    capsys.readouterr()
    results = train_classifier(data, TINY, out, baseline=False, resume=True, **QUIET)
    said = capsys.readouterr().out
    assert f"skipped 2 incomplete checkpoint(s), moved into {out}/_incomplete: {third.name} (trainer_state.json " \
           f"missing), {second.name} (optimizer.pt is not a whole torch file (cut short?))" in said
    assert f"continuing from {first}" in said
    # Set aside, not deleted (left in place, Trainer would keep the newest and delete what it had just saved).
    assert sorted(p.name for p in (out / "_incomplete").iterdir()) == sorted([second.name, third.name])
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == int(third.name.split("-")[1]) and results["epochs"] == 3


def test_a_new_run_sets_an_earlier_run_aside(tmp_path, capsys):
    """Left in place, an earlier 3-epoch run's checkpoints outlived a 1-epoch rerun's (Trainer's rotation keeps the
    highest steps), --resume then continued the earlier run, and a rerun stopped before its final save left the
    earlier model in the folder as if it were its own."""
    data, out = write_data(tmp_path / "data"), tmp_path / "out"
    train_classifier(data, TINY, out, baseline=False, **QUIET)
    earlier = sorted(p.name for p in out.glob("checkpoint-*"))
    earlier_files = {"config.json", "model.safetensors", "eval_results.json", "tokenizer.json", "README.md"}
    assert len(earlier) == 2 and earlier_files <= {p.name for p in out.iterdir()}
    capsys.readouterr()

    class StopAtTheFirstStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            raise KeyboardInterrupt  # Ctrl-C in the rerun, before any checkpoint or final save

    with pytest.raises(KeyboardInterrupt):
        train_classifier(data, TINY, out, baseline=False, epochs=1, callbacks=[StopAtTheFirstStep()], **QUIET)
    steps = sorted(earlier, key=lambda n: int(n.split("-")[1]))
    assert f"held an earlier run's {', '.join(steps)}, " in capsys.readouterr().out
    aside = {p.name for p in (out / "_previous_run").iterdir()}
    assert set(earlier) | earlier_files <= aside  # kept whole, out of the way
    left = {p.name for p in out.iterdir()}
    assert not left & (set(earlier) | earlier_files), left  # the stopped rerun's folder offers no model as its own

    train_classifier(data, TINY, out, baseline=False, epochs=1, **QUIET)
    (now,) = out.glob("checkpoint-*")
    assert json.loads((now / "trainer_state.json").read_text())["num_train_epochs"] == 1
    results = train_classifier(data, TINY, out, baseline=False, epochs=1, resume=True, **QUIET)
    assert f"continuing from {now}" in capsys.readouterr().out and results["epochs"] == 1


# ------------------------------------------------------------------ a final save killed midway


KILLED_IN_FINAL_SAVE = """
import os, signal, sys
from transformers import PreTrainedTokenizerFast
from seqhf.training.classifier import train_classifier

save = PreTrainedTokenizerFast.save_pretrained

def killed_while_writing_the_tokenizer(self, folder, *args, **kwargs):
    if "checkpoint-" in str(folder):
        return save(self, folder, *args, **kwargs)
    open(os.path.join(folder, "tokenizer.json"), "w").close()  # the file is opened, nothing written yet
    os.kill(os.getpid(), signal.SIGKILL)

PreTrainedTokenizerFast.save_pretrained = killed_while_writing_the_tokenizer
train_classifier(dict(source=sys.argv[1]), {preset}, sys.argv[2], baseline=False, max_steps=4, report_to="none",
                 disable_tqdm=True)
"""


def test_a_final_save_killed_midway_is_marked_and_named_when_loaded(tmp_path):
    data, out = write_data(tmp_path / "data"), tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", KILLED_IN_FINAL_SAVE.format(preset=repr(TINY)), data["source"],
                           str(out)], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert (out / INCOMPLETE_MARKER).is_file()
    assert not (out / "tokenizer.json").exists()  # the empty file stayed aside, never in the folder
    with pytest.raises(IncompleteFolderError, match=rf"its save did not finish \({INCOMPLETE_MARKER} is still there\)"
                                                    r"; missing config.json, tokenizer_config.json, tokenizer.json"):
        classify(out, ["the film was great"])
    with pytest.raises(FolderNotReadyError, match="its save did not finish"):
        validate_repo_folder(out)
    # --resume takes the last checkpoint (the end of training) and saves the folder again, whole this time.
    train_classifier(data, TINY, out, baseline=False, max_steps=4, resume=True, **QUIET)
    assert not (out / INCOMPLETE_MARKER).exists() and not (out / "_saving").exists()
    assert classify(out, ["the film was great"])[0]["label"] in ("good", "bad")
    # A folder cut short without the marker (an older seqhf, a copy): the empty and cut files are named.
    cut = tmp_path / "cut"
    shutil.copytree(out, cut, ignore=shutil.ignore_patterns("checkpoint-*"))
    (cut / "tokenizer.json").write_bytes(b"")
    weights = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(weights[:-100])
    with pytest.raises(IncompleteFolderError, match=rf"model.safetensors holds {len(weights) - 100:,} of the "
                                                    rf"{len(weights):,} bytes .*; tokenizer.json is empty"):
        check_saved_folder(cut)
    with pytest.raises(ValueError, match="tokenizer.json is empty"):
        load_generator(cut)  # the generation loader checks too (before saying the folder holds no LM)


def test_a_model_folder_that_is_missing_or_a_file_is_named_before_the_hub_is_asked(tmp_path, monkeypatch):
    """`classify('./nosuchdir', ...)` gave transformers' rules for Hub repository ids, and a file its loading error."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a model")
    for missing in ("./nosuchdir", str(tmp_path / "nosuchdir"), "runs/a/b"):
        with pytest.raises(FileNotFoundError, match=rf"^No such folder: {re.escape(missing)} \(nor is it a Hub model id\)"):
            classify(missing, ["the film was great"])
    with pytest.raises(NotADirectoryError, match="^afile is a file, not a model folder"):
        load_generator("afile")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    check_saved_folder("someone/tiny-imdb")  # a Hub id passes, for transformers to load


def test_a_hub_id_offline_is_refused_unless_the_hub_cache_has_it(tmp_path, monkeypatch):
    """Offline, `classify("imdb-lstm", ...)` gave transformers' advice about the internet connection."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for name in ("imdb-lstm", "someone/tiny-imdb"):
        with pytest.raises(FileNotFoundError, match=rf"^No such folder: {name}; .* not in the Hub cache, and the Hub is offline"):
            classify(name, ["the film was great"])
    snapshot = tmp_path / "hub" / "models--someone--tiny-imdb" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--someone--tiny-imdb" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--tiny-imdb" / "refs" / "main").write_text("0" * 40)
    check_saved_folder("someone/tiny-imdb")  # cached: transformers loads it offline


# ------------------------------------------------------------------ a full disk


def test_a_full_disk_is_named_with_the_file_being_written(tmp_path, monkeypatch):
    data = write_data(tmp_path / "data")

    def torch_save_on_a_full_disk(obj, f, *args, **kwargs):
        with open(f, "wb") as partial:
            partial.write(b"PK\x03\x04")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4352 vs 4246")  # torch's words

    monkeypatch.setattr(torch, "save", torch_save_on_a_full_disk)
    monkeypatch.setattr(run_folder, "free_bytes", lambda folder: 0)  # what the full disk reports
    with pytest.raises(OutputFolderError, match=r"^No space left on device while writing \S*/out/checkpoint-\d+/"
                                                r"training_args.bin \(0 MiB free there\)\. .*--resume") as caught:
        train_classifier(data, TINY, tmp_path / "out", baseline=False, **QUIET)
    assert isinstance(caught.value, SetupError) and "\n" not in str(caught.value)  # the scripts' one `error:` line
    assert not (tmp_path / "out" / LOCK_NAME).exists()
    monkeypatch.undo()

    def safetensors_on_a_full_disk(tensors, filename, *args, **kwargs):
        open(filename, "wb").close()
        raise OSError(errno.ENOSPC, "No space left on device")  # no file name, as a write() on a file says

    import transformers.modeling_utils

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", safetensors_on_a_full_disk)
    with pytest.raises(OutputFolderError, match=r"^No space left on device while writing \S*/out2/checkpoint-\d+/"
                                                r"model.safetensors"):
        train_classifier(data, TINY, tmp_path / "out2", baseline=False, **QUIET)
    copy_error = OSError(errno.ENOSPC, "No space left on device", "/site-packages/seqhf/modeling_lstm.py", None,
                         str(tmp_path / "out3" / "checkpoint-4" / "modeling_lstm.py"))  # shutil.copy's: source first
    assert "while writing " + str(tmp_path / "out3") in run_folder.disk_full_message(copy_error, tmp_path, 0.0)


def test_an_output_folder_that_cannot_be_made_or_written_is_one_line(tmp_path, monkeypatch):
    data = write_data(tmp_path / "data")
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(OutputFolderError, match=r"The output folder \S*afile is a file: choose another --output-dir"):
        train_classifier(data, TINY, tmp_path / "afile", baseline=False, **QUIET)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "ro"))

    monkeypatch.setattr(run_folder.os, "open", read_only)  # the lock file is the first file a run writes
    with pytest.raises(OutputFolderError, match=r"Cannot write in the output folder \S*/ro: Read-only file system"):
        train_classifier(data, TINY, tmp_path / "ro", baseline=False, **QUIET)
