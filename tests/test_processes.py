"""`seqhf train ... --processes N|auto` (issue 26): how many processes a command trains with, the accelerate launch
it re-runs itself through, and a real two-process char-LM run on the CPU."""

import json
import os
import random
import signal
import subprocess
import sys
from importlib.resources import files

import pytest
import torch
import yaml

import seqhf.utils.launch as launch
from conftest import REPO
from seqhf.cli import train as train_cli
from seqhf.cli.app import main
from seqhf.training.charlm import StreamChunks
from seqhf.training.run_folder import checkpoint_processes


@pytest.fixture
def cpu_machine(monkeypatch):
    """A 2-core machine without a GPU, outside any launcher, whose cores are idle (`busy` sets how many are not)."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    state = {"cores": 2, "busy": 0.0}
    monkeypatch.setattr(launch, "cpu_cores", lambda: state["cores"])
    monkeypatch.setattr(launch, "other_work", lambda seconds=1.0: (state["busy"], f"{state['busy']:.1f} busy"))
    return state


def test_auto_takes_one_process_per_free_core(cpu_machine):
    assert launch.choose_processes("auto")[0] == 2
    cpu_machine["busy"] = 1.2  # another job holds a core
    assert launch.choose_processes("auto")[0] == 1
    cpu_machine.update(cores=6, busy=0.0)
    assert launch.choose_processes("auto")[0] == 6
    assert launch.choose_processes("auto", batch=16)[0] == 4  # the step's 16 rows share out among 4, not 6
    assert launch.choose_processes(3)[0] == 3
    with pytest.raises(ValueError, match="does not divide the batch of 16"):
        launch.choose_processes(3, batch=16)


def test_a_classifier_process_count_that_does_not_divide_its_batch_is_refused_at_once(cpu_machine, capsys):
    """It started 7 processes that each read the data, then failed in accelerate's DataLoader with a traceback."""
    from seqhf.cli.app import main

    code = main(["train", "classifier", "--dataset", "nowhere.csv", "--output-dir", "o", "--processes", "7"])
    err = capsys.readouterr().err
    assert code == 2 and "Invalid value for --processes: 7 does not divide the batch of 64 rows a step" in err, err
    code = main(["train", "classifier", "--dataset", "nowhere.csv", "--output-dir", "o", "--processes", "3", "--quick",
                 "--model", "transformer"])
    assert code == 2 and "batch of 32 rows" in capsys.readouterr().err  # the preset's own batch


def test_one_process_inside_a_launched_process(cpu_machine, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launch.launched()
    assert launch.choose_processes("auto")[0] == 1
    assert launch.choose_processes(4)[0] == 1  # the launcher already chose: never launch again


def test_one_process_with_a_gpu(cpu_machine, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    count, why = launch.choose_processes("auto")
    assert count == 1 and "GPU" in why
    with pytest.raises(ValueError, match="one process a GPU"):
        launch.choose_processes(2)


@pytest.mark.parametrize("text, expected", [("auto", "auto"), ("AUTO", "auto"), ("2", 2), (" 3 ", 3), (4, 4)])
def test_processes_option_values(text, expected):
    assert launch.parse_processes(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5"])
def test_bad_processes_option_values_are_refused(text):
    with pytest.raises(ValueError, match="--processes"):
        launch.parse_processes(text)


def test_the_launch_command_is_accelerates_with_the_packaged_config(monkeypatch):
    from accelerate.commands.launch import launch_command_parser

    config = files("seqhf.utils") / launch.CONFIG
    settings = yaml.safe_load(config.read_text())
    assert settings["distributed_type"] == "MULTI_GPU" and settings["use_cpu"] is False  # gloo DDP on a CPU
    args = ["train", "charlm", "--model", "cpu", "--text", "book.txt", "--output-dir", "out"]
    cmd = launch.launch_command(2, args, config, 29555)
    assert cmd[:3] == [sys.executable, "-m", "seqhf.utils.launch"]  # accelerate's launcher, quiet after a bad input
    parsed = launch_command_parser().parse_args(cmd[3:])  # what accelerate itself reads from it
    assert parsed.config_file == str(config) and parsed.num_processes == 2 and parsed.main_process_port == 29555
    assert parsed.module and parsed.training_script == "seqhf" and parsed.training_script_args == args
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert launch.launch_env()["OMP_NUM_THREADS"] == "1"  # one torch thread a process
    assert launch.launch_env({"OMP_NUM_THREADS": "2"})["OMP_NUM_THREADS"] == "2"  # unless told otherwise
    assert 0 < launch.free_port() < 65536


class Relaunched(Exception):
    pass


@pytest.fixture
def no_training(monkeypatch):
    """The command stops where it would train in this process, and records a re-launch instead of running it."""
    launches = []

    def start_run():
        raise Relaunched("trains here")

    monkeypatch.setattr(train_cli, "start_run", start_run)
    monkeypatch.setattr(launch, "relaunch", lambda processes, args: launches.append((processes, list(args))) or 0)
    return launches


def test_cpu_preset_relaunches_itself_on_both_cores(cpu_machine, no_training, tmp_path, capsys):
    args = ["train", "charlm", "--model", "cpu", "--text", "book.txt", "--output-dir", str(tmp_path / "out")]
    assert main(args) == 0
    assert no_training == [(2, args)]  # the same command line, in 2 processes
    assert "training processes: 2 (auto: one per free core" in capsys.readouterr().out
    cpu_machine["busy"] = 1.0
    with pytest.raises(Relaunched):  # one free core: trains here
        main(args)
    with pytest.raises(Relaunched):  # other presets train in one process unless told
        main(["train", "charlm", "--model", "lstm", "--text", "book.txt", "--output-dir", str(tmp_path / "out")])
    with pytest.raises(Relaunched):  # and so does the classifier
        main(["train", "classifier", "--dataset", "d", "--output-dir", str(tmp_path / "c")])
    assert main(["train", "classifier", "--dataset", "d", "--output-dir", str(tmp_path / "c"), "--processes", "2"]) == 0
    assert no_training[-1][0] == 2


def test_a_launched_process_trains_where_it_is(cpu_machine, no_training, monkeypatch, tmp_path):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(Relaunched):
        main(["train", "charlm", "--model", "cpu", "--text", "b.txt", "--output-dir", str(tmp_path), "--processes", "2"])
    assert no_training == []


def test_resume_keeps_the_checkpoints_process_count(cpu_machine, no_training, monkeypatch, tmp_path, capsys):
    checkpoint = tmp_path / "out" / "checkpoint-40"
    checkpoint.mkdir(parents=True)
    for rank in (0, 1):
        (checkpoint / f"rng_state_{rank}.pth").write_bytes(b"")
    assert checkpoint_processes(checkpoint) == 2
    import seqhf.training.run_folder as run_folder

    monkeypatch.setattr(run_folder, "last_complete_checkpoint", lambda folder, set_aside=False: (checkpoint, []))
    cpu_machine["busy"] = 1.0  # auto would now choose one process
    args = ["train", "charlm", "--model", "cpu", "--text", "b.txt", "--output-dir", str(tmp_path / "out"), "--resume"]
    assert main(args) == 0 and no_training == [(2, args)]
    assert "checkpoint-40 was trained by 2 process(es)" in capsys.readouterr().out
    assert main(args + ["--processes", "1"]) == 2  # refused: the streams would not be those of the checkpoint
    assert "resume with --processes 2" in capsys.readouterr().err
    (checkpoint / "rng_state_0.pth").unlink(), (checkpoint / "rng_state_1.pth").unlink()
    (checkpoint / "rng_state.pth").write_bytes(b"")
    assert checkpoint_processes(checkpoint) == 1


def test_shared_batches_read_the_streams_of_one_process():
    """With the batch shared out (split_batches), process p takes rows p*8..p*8+7 of each step's 16: every row
    still continues its stream, and the steps read what one process reads."""
    data = StreamChunks(torch.arange(5000), seq_len=10, batch_size=16)
    steps = [[data[b * 16 + r] for r in range(16)] for b in range(len(data) // 16)]
    for p in (0, 1):
        mine = [step[p * 8:(p + 1) * 8] for step in steps]
        for prev, cur in zip(mine, mine[1:]):
            for r in range(8):
                assert cur[r]["input_ids"][0] == prev[r]["input_ids"][-1] + 1


def _tiny_text(path, chars=40_000):
    random.seed(0)
    words = "the island engineer sailor balloon granite house lake forest smoke cave".split()
    text, line = [], []
    while sum(map(len, text)) < chars:
        line.append(random.choice(words))
        if len(line) == 12:
            text.append(" ".join(line).capitalize() + ".\n")
            line = []
    path.write_text("".join(text))
    return path


@pytest.mark.slow
def test_two_process_char_lm_on_the_cpu(tmp_path):
    """`seqhf train charlm --processes 2` end to end: accelerate launch, gloo, each process half of each step.
    About 25 CPU seconds, most of it three Python processes importing torch and transformers (44 s of wall time
    on 2 cores under a load of 6)."""
    text, out, ranks = _tiny_text(tmp_path / "tiny.txt"), tmp_path / "out", tmp_path / "ranks"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO), "SEQHF_RANK_LOG": str(ranks), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("OMP_NUM_THREADS", None)
    cmd = [sys.executable, "-m", "seqhf", "train", "charlm", "--model", "cpu", "--quick", "--text", str(text),
           "--seq-len", "32", "--max-steps", "3", "--no-dynamic-eval", "--processes", "2", "--output-dir", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count("training processes: 2 (--processes 2)") == 1
    assert "torch threads: 1 (OMP_NUM_THREADS=1)" in proc.stdout
    assert proc.stdout.count("2 training process(es), batch 16 a step (8 each)") == 1  # the main process speaks
    results = json.loads((out / "eval_results.json").read_text())
    assert results["train_args"]["world_size"] == 2 and results["train_args"]["split_batches"]
    assert results["train_args"]["per_device_train_batch_size"] == 16
    logs = [json.loads((ranks / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [log["batch_rows"] for log in logs] == [[8, 8, 8], [8, 8, 8]]  # 3 steps of 16 rows, 8 each
    assert [log["wrote_output"] for log in logs] == [True, False]
    # Process p read streams p*8..p*8+7 of the 16 one process reads, chunk after chunk.
    from seqhf.training.charlm import EvalCaps, load_corpus, prepare_inputs
    from seqhf.training.presets import get_preset

    preset = get_preset("charlm", "cpu", True)
    inputs = prepare_inputs(load_corpus([str(text)], None, None, "text", "train", None), seq_len=32,
                            validation_fraction=0.05, quick_train_chars=preset["train_chars"], caps=EvalCaps.of(True))
    data = StreamChunks(inputs.train_ids, 32, 16)
    for p, log in enumerate(logs):
        expected = [data[step * 16 + p * 8 + r]["input_ids"][:16].tolist() for step in range(3) for r in range(8)]
        assert log["rows"] == expected


def test_word_lm_relaunches_itself_with_the_full_softmax_only(cpu_machine, no_training, tmp_path, capsys):
    """`seqhf train lm` had no --processes: it trains in N processes now, with the full softmax (the sampled one
    bypasses the head, and with it DDP's gradient averaging, so it is refused before anything starts)."""
    args = ["train", "lm", "--dataset", "d.csv", "--model", "cpu-full", "--output-dir", str(tmp_path / "lm")]
    with pytest.raises(Relaunched):  # one process unless told
        main(args)
    assert main(args + ["--processes", "2"]) == 0 and no_training == [(2, args + ["--processes", "2"])]
    assert main(args + ["--processes", "3"]) == 2  # the cpu-full batch of 64 does not share out among 3
    sampled = ["train", "lm", "--dataset", "d.csv", "--model", "cpu", "--output-dir", str(tmp_path / "lm2")]
    assert main(sampled + ["--processes", "2"]) == 2 and len(no_training) == 1
    assert "the sampled softmax trains in one process; add --softmax full" in capsys.readouterr().err
    assert main(sampled + ["--processes", "2", "--softmax", "full"]) == 0 and no_training[-1][0] == 2


@pytest.mark.slow
def test_two_process_word_lm_on_the_cpu(tmp_path):
    """`seqhf train lm --processes 2` end to end: each process takes half of each step's rows, and the held-out
    perplexity is the one process's figure over every window once (accelerate repeats windows to even out the
    processes' last batches; the Trainer's own loop would count them)."""
    from seqhf.data.char_text import CharChunks, encode_stream
    from transformers import AutoTokenizer

    from seqhf.models.lstm.modeling_lstm import SeqLSTMForCausalLM
    from seqhf.training.presets import get_preset
    from seqhf.training.wordlm import lm_texts

    data, out, ranks = tmp_path / "news.csv", tmp_path / "lm", tmp_path / "ranks"
    words = "team match goal market shares bank season coach profit rates league trade".split()
    random.seed(0)
    data.write_text("body\n" + "".join(" ".join(random.choice(words) for _ in range(14)) + "\n" for _ in range(130)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO), "SEQHF_RANK_LOG": str(ranks), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("OMP_NUM_THREADS", None)
    cmd = [sys.executable, "-m", "seqhf", "train", "lm", "--model", "cpu-full", "--quick", "--dataset", str(data),
           "--text-column", "body", "--seq-len", "9", "--max-steps", "3", "--processes", "2", "--output-dir", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count("training processes: 2 (--processes 2)") == 1
    assert proc.stdout.count("2 training process(es), batch 16 a step (8 each)") == 1
    results = json.loads((out / "eval_results.json").read_text())
    assert results["train_args"]["world_size"] == 2 and results["train_args"]["split_batches"]
    logs = [json.loads((ranks / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [log["batch_rows"] for log in logs] == [[8, 8, 8], [8, 8, 8]]
    assert logs[0]["rows"] != logs[1]["rows"]  # each its own share, not the same rows twice
    # The held-out figure, recomputed in this one process from the saved LM over the same windows.
    _, heldout_texts, _ = lm_texts(str(data), get_preset("wordlm", "cpu-full", quick=True), 42, "body")
    model, tokenizer = SeqLSTMForCausalLM.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    windows = CharChunks(encode_stream(tokenizer, heldout_texts[len(heldout_texts) // 2:]), 9)
    assert len(windows) % 2  # an odd count: one process's last batch is evened out by a repeated window
    with torch.no_grad():
        losses = [torch.nn.functional.cross_entropy(model(input_ids=w["input_ids"][None]).logits[0], w["shift_labels"])
                  for w in map(windows.__getitem__, range(len(windows)))]
    assert results["heldout_loss"] == pytest.approx(torch.stack(losses).mean().item(), rel=1e-5)


@pytest.mark.slow
def test_a_bad_input_in_two_processes_is_one_line(tmp_path):
    """A bad input met inside the launched processes: `seqhf` says it once, without torch elastic's log lines and
    its traceback of the failed launch, which buried it."""
    data = tmp_path / "three_rows.csv"
    data.write_text("text,label\nhello there,1\nbad day,0\ngood,1\n")  # too few rows to carve a validation split
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "seqhf", "train", "classifier", "--dataset", str(data), "--quick", "--processes", "2",
           "--output-dir", str(tmp_path / "out")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("error: Cannot carve"), proc.stderr


def test_a_launched_process_leaves_its_error_for_seqhf_once(tmp_path, monkeypatch):
    monkeypatch.delenv(launch.ERROR_FILE_ENV, raising=False)
    assert not launch.leave_error_for_seqhf("error: bad")  # not launched by seqhf: say it yourself
    monkeypatch.setenv(launch.ERROR_FILE_ENV, str(tmp_path / "error"))
    assert launch.leave_error_for_seqhf("error: first") and launch.leave_error_for_seqhf("error: second")
    assert (tmp_path / "error").read_text() == "error: first"


CHILD = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def stop(signum, frame):
    out.with_name("signal").write_text(signal.Signals(signum).name)
    sys.exit(int(sys.argv[2]))
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
out.write_text("ready")
time.sleep(60)
"""


@pytest.mark.parametrize("exit_code", [130, 0])
def test_a_signal_to_this_process_alone_reaches_the_launcher(tmp_path, monkeypatch, exit_code):
    """`kill -INT` to `seqhf` alone left the launcher training (and reported the finished run as aborted); a second
    one left it running as an orphan. The signal is passed on, the launcher waited for, and "aborted" only said of a
    run that did not finish (exit_code 0: it ended well anyway)."""
    import threading
    import time

    ready = tmp_path / "ready"
    monkeypatch.setattr(launch, "launch_command",
                        lambda *_: [sys.executable, "-c", CHILD, str(ready), str(exit_code)])

    def interrupt_when_ready():
        while not ready.exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)  # (ignored where the tests run in the background, e.g. under nohup)
    threading.Thread(target=interrupt_when_ready, daemon=True).start()
    if exit_code:
        with pytest.raises(KeyboardInterrupt):
            launch.relaunch(2, ["train"])
    else:
        assert launch.relaunch(2, ["train"]) == 0
    assert (tmp_path / "signal").read_text() == "SIGINT"  # the launcher got it, and has ended (waited for)
    assert signal.getsignal(signal.SIGINT) is before  # this process's handler is back


def test_ulmfit_small_trains_its_own_lms_in_two_processes(tmp_path):
    """`seqhf train classifier --model ulmfit-small --processes 2` with no --init-from: the two LMs train inside the
    launched processes (each its half of every step), the main process alone writes them, and the classifier trains
    from both under DDP without looking for unused parameters (no layer is frozen in this recipe)."""
    words = "the team won match a bank sold shares market fell game goal stocks rose".split()
    rng = random.Random(0)
    texts = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(120)]
    labels = ["sport" if "team" in t or "goal" in t else "business" for t in texts]
    data = tmp_path / "news"
    data.mkdir()
    for name, rows in (("train", range(100)), ("validation", range(100, 120))):
        lines = ["text,label"] + [f"{texts[i]},{labels[i]}" for i in rows]
        (data / f"{name}.csv").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("OMP_NUM_THREADS", None)
    cmd = [sys.executable, "-m", "seqhf", "train", "classifier", "--dataset", str(data), "--model", "ulmfit-small",
           "--quick", "--no-baseline", "--processes", "2", "--output-dir", "clf"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count("Pretraining this classifier's own word LMs") == 1
    assert "find_unused_parameters=True" not in proc.stderr
    for name in ("forward", "backward"):
        lm = json.loads((tmp_path / "clf" / "_lms" / name / "eval_results.json").read_text())
        assert lm["train_args"]["world_size"] == 2 and lm["train_reviews"] == 100
    results = json.loads((tmp_path / "clf" / "eval_results.json").read_text())
    assert results["train_args"]["world_size"] == 2 and results["own_lms"]["epochs"] == 1
