"""How a run uses the machine and the terminal: torch's CPU threads, and progress output.

Threads: fewer than the cores when other processes keep them busy.

torch starts one thread a core. When another process is busy on the same cores, its threads wait on
each other at every parallel region and a run can take ten times longer (measured on 2 cores: a quick
run took 5-14 minutes with torch's default threads, 22-46 s with one thread). So, unless
OMP_NUM_THREADS says otherwise, take the cores that other work leaves free, at least one: the cores
busy over the last moment (`/proc/stat`), or the load average where that cannot be read.
"""

import atexit
import functools
import os
import platform
import sys
import time

import torch


def choose_threads(cores: int, load: float) -> int:
    """The cores left free when other work keeps `load` of them busy (cores busy now, or a load average),
    at least one."""
    return max(1, min(cores, cores - int(load + 0.5)))


@functools.cache
def destroy_process_group_at_exit() -> None:
    """Destroy torch.distributed's process group when the interpreter exits, while it is still whole. Left to the
    interpreter's teardown, gloo's worker threads can abort a process that finished its work ("terminate called
    without an active exception", SIGABRT): a complete run under several processes then exits with an error.
    Registered once; a group already destroyed, or never made, is left alone."""
    atexit.register(_destroy_process_group)


def _destroy_process_group() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def is_main_process() -> bool:
    """True except in the non-main processes of `accelerate launch` (their RANK > 0): the one that speaks."""
    return os.environ.get("RANK", "0") == "0"


def load_average() -> float:
    """The 1-minute load average (0 where the system has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_ticks() -> tuple[int, int] | None:
    """(idle, total) CPU time ticks since boot, from /proc/stat (Linux); None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; user..steal (guest time is in user)


def busy_cpu_seconds() -> float | None:
    """CPU seconds that all cores together have spent busy since boot (/proc/stat); None elsewhere."""
    ticks = cpu_ticks()
    return None if ticks is None else (ticks[1] - ticks[0]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds used by this process and the child processes it has waited for (this process's alone where
    the `resource` module does not exist, as on Windows)."""
    try:
        import resource
    except ImportError:
        return time.process_time()
    used = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return sum(usage.ru_utime + usage.ru_stime for usage in used)


class OtherWork:
    """How many cores other work kept busy, on average, between `OtherWork()` and `cores(...)`: the busy CPU
    time of the whole machine minus the run's own. A run's figures (its wall time above all) are comparable
    only on quiet cores; eval_results.json records this as `other_work_cores`."""

    def __init__(self):
        self.start, self.busy, self.own = time.time(), busy_cpu_seconds(), own_cpu_seconds()

    def own_seconds(self) -> float:
        """The CPU seconds this process (and its waited-for children) used since the meter started."""
        return own_cpu_seconds() - self.own

    def cores(self, run_cpu_seconds: float) -> float | None:
        """Average cores busy with other work; `run_cpu_seconds` is the CPU time of every process of the run
        (summed over ranks under accelerate launch). None without /proc/stat."""
        busy_now, wall = busy_cpu_seconds(), time.time() - self.start
        if self.busy is None or busy_now is None or wall <= 0:
            return None
        return max(0.0, (busy_now - self.busy - run_cpu_seconds) / wall)


def busy_cores_now(seconds: float = 1.0) -> float | None:
    """How many cores other processes keep busy, measured over the next `seconds` (None without /proc/stat).
    Unlike the load average, this forgets what ran a minute ago (the package installation that just
    finished, a previous run), so a quiet machine is seen as quiet."""
    before = cpu_ticks()
    if before is None:
        return None
    time.sleep(seconds)
    after = cpu_ticks()
    total = after[1] - before[1]
    if total <= 0:
        return None
    return cpu_cores() * (1 - (after[0] - before[0]) / total)


def other_work(seconds: float = 1.0) -> tuple[float, str]:
    """How many cores other work keeps busy, and words saying how that was measured: the cores busy over the
    next `seconds` (`busy_cores_now`), or the 1-minute load average where /proc/stat does not exist."""
    busy = busy_cores_now(seconds)
    if busy is not None:
        return busy, f"{busy:.1f} busy over {seconds:g} s"
    load = load_average()
    return load, f"load average {load:.1f}"


def configure_threads(verbose: bool = True) -> int:
    """Set torch's intra-op threads (CPU only) and say what was chosen and why; returns the count."""
    import torch

    if torch.cuda.is_available():
        return torch.get_num_threads()
    cores = cpu_cores()
    if os.environ.get("OMP_NUM_THREADS"):
        reason = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    else:
        busy, measured = other_work(0.5)  # the load average still counts a run that ended a minute ago
        torch.set_num_threads(choose_threads(cores, busy))
        reason = f"{cores} cores, {measured}; set OMP_NUM_THREADS to choose"
    if verbose and is_main_process():  # under accelerate launch, say it once
        print(f"torch threads: {torch.get_num_threads()} ({reason})")
    return torch.get_num_threads()


def configure_output() -> None:
    """Progress bars only on a terminal: in a log file tqdm's redraws are noise (the Trainer then prints
    its logged values as lines, see `make_training_args`). transformers draws bars when it writes and
    loads weights, datasets when it maps."""
    if not sys.stderr.isatty():
        import datasets
        from transformers.utils import logging as transformers_logging

        datasets.disable_progress_bars()
        transformers_logging.disable_progress_bar()


def configure_run() -> None:
    """What a training script calls once, after parsing its arguments."""
    configure_threads()
    configure_output()


def hardware_string() -> str:
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"{n} x {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def use_bf16() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def release_freed_memory() -> None:
    """Hand the heap memory the process has freed back to the system (glibc's `malloc_trim`). torch's CPU tensors
    of changing sizes (length-bucketed batches) leave freed memory in malloc's free lists, which a process
    keeps: the main command's training processes grew by about 4 MB a step without it. A no-op where the C
    library is not glibc. Changes no value a run computes."""
    import ctypes

    try:
        trim = getattr(ctypes.CDLL("libc.so.6"), "malloc_trim", None)
    except OSError:
        return
    if trim is not None:
        trim(0)
