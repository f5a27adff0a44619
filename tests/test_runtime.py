"""How runs choose their threads and processes."""

import os
import subprocess
import sys

import pytest

import seqhf.utils.runtime as runtime



def test_free_cores_are_those_the_load_leaves():
    assert runtime.choose_threads(2, 0.1) == 2
    assert runtime.choose_threads(2, 1.2) == 1
    assert runtime.choose_threads(2, 5.0) == 1  # always at least one


def _ticks(monkeypatch, samples):
    samples = iter(samples)
    monkeypatch.setattr(runtime, "cpu_ticks", lambda: next(samples))
    monkeypatch.setattr(runtime.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(runtime, "cpu_cores", lambda: 2)


def test_auto_processes_count_the_cores_busy_now_not_a_minute_ago(monkeypatch):
    """Right after a package installation the load average is still about 1 on a now-idle machine;
    the idle ticks of the last second say both cores are free."""
    import seqhf.utils.launch as launch

    monkeypatch.setattr(launch, "gpu_count", lambda: 0)
    monkeypatch.setattr(launch, "launched", lambda: False)
    monkeypatch.setattr(launch, "cpu_cores", lambda: 2)
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (1.3, 1.0, 0.8))
    _ticks(monkeypatch, [(1000, 2000), (1195, 2200)])  # 195 of 200 ticks idle
    assert launch.choose_processes("auto")[0] == 2
    _ticks(monkeypatch, [(1000, 2000), (1100, 2200)])  # one core busy with another job
    assert launch.choose_processes("auto")[0] == 1
    _ticks(monkeypatch, [None, None])  # no /proc/stat: the load average decides
    assert launch.choose_processes("auto")[0] == 1


def test_cpu_ticks_read_proc_stat():
    ticks = runtime.cpu_ticks()
    if ticks is not None:  # Linux
        idle, total = ticks
        assert 0 <= idle <= total and total > 0
        assert runtime.busy_cores_now(0.2) is not None


def test_torch_threads_follow_the_cores_busy_now(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (1.3, 1.0, 0.8))
    before = torch.get_num_threads()
    try:
        _ticks(monkeypatch, [(1000, 2000), (1195, 2200)])  # idle now, though the load average says 1.3
        assert runtime.configure_threads() == 2
        assert "2 cores, 0.1 busy over 0.5 s" in capsys.readouterr().out
        _ticks(monkeypatch, [(1000, 2000), (1100, 2200)])  # one core busy with another job
        assert runtime.configure_threads() == 1
        _ticks(monkeypatch, [None, None])
        assert runtime.configure_threads() == 1 and "load average 1.3" in capsys.readouterr().out
    finally:
        torch.set_num_threads(before)


def test_other_work_counts_other_processes_not_the_run_itself(monkeypatch):
    import subprocess
    import sys
    import time

    if runtime.cpu_ticks() is None:
        pytest.skip("no /proc/stat")
    meter = runtime.OtherWork()
    start = time.process_time()
    while time.process_time() - start < 0.5:  # the run's own work
        pass
    assert meter.own_seconds() >= 0.5
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass"
    other = subprocess.Popen([sys.executable, "-c", spin])
    while subprocess.run(["ps", "-o", "stat=", "-p", str(other.pid)], capture_output=True, text=True).stdout.strip()[:1] != "Z":
        time.sleep(0.05)  # finished but not reaped: its CPU time is not the run's
    cores = meter.cores(meter.own_seconds())
    other.wait()
    wall = time.time() - meter.start
    assert cores >= 0.9 / wall  # at least the other process's second of CPU, whatever else ran


def test_other_work_is_busy_time_less_the_run(monkeypatch):
    busy = iter([100.0, 112.0])
    monkeypatch.setattr(runtime, "busy_cpu_seconds", lambda: next(busy))
    meter = runtime.OtherWork()
    meter.start -= 10  # ten seconds of wall time
    assert meter.cores(run_cpu_seconds=8.0) == pytest.approx(0.4, abs=0.01)  # 12 busy - 8 own = 4 s over 10 s


def test_a_training_run_destroys_its_process_group_before_the_interpreter_exits(tmp_path):
    """Left to the interpreter's teardown, gloo's threads can abort a finished multi-process run (SIGABRT)."""
    script = (
        "import torch.distributed as dist\n"
        "from seqhf.training.common import make_training_args\n"
        "destroy = dist.destroy_process_group\n"
        "def traced(*args, **kwargs):\n"
        "    print('destroyed while initialized:', dist.is_initialized(), flush=True)\n"
        "    destroy(*args, **kwargs)\n"
        "dist.destroy_process_group = traced\n"
        f"dist.init_process_group('gloo', init_method='file://{tmp_path / 'store'}', rank=0, world_size=1)\n"
        f"make_training_args({str(tmp_path / 'out')!r}, dict(epochs=1, batch_size=2, learning_rate=1e-3),"
        " task='classification')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("destroyed while initialized: True") == 1, proc.stdout + proc.stderr[-2000:]
