"""`seqhf train ... --processes N`: a training command run in N processes on this machine.

The command re-launches itself through accelerate's own launcher (`python -m accelerate.commands.launch`, which
starts the processes under torchrun; the Trainer joins them with gloo DDP on a CPU) with the config this package
ships (`accelerate_cpu.yaml`, read with importlib.resources so that a wheel carries it), one torch thread a
process. The processes it starts see RANK and WORLD_SIZE and train where they are: they never launch again.

Why processes rather than threads on a CPU: torch's LSTM gains little from a second thread (IMDb, 2 cores: 1.04x)
but about 1.8x from a second process, each reading its share of the data with one thread.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
from importlib.resources import as_file, files

from .runtime import choose_threads, cpu_cores, other_work

CONFIG = "accelerate_cpu.yaml"
AUTO = "auto"


RELAUNCHED_ENV = "SEQHF_RELAUNCHED"
# Where a launched process leaves the one-line error of a bad input, for `seqhf` to say once after the launcher ends
# (quietly: without torch elastic's report of a failed child, which would bury the line).
ERROR_FILE_ENV = "SEQHF_ERROR_FILE"


def launched() -> bool:
    """True in a process that a launcher started (accelerate launch, torchrun): RANK or WORLD_SIZE is set."""
    return bool(os.environ.get("RANK") or os.environ.get("WORLD_SIZE"))


def parse_processes(text) -> "str | int":
    """`auto` or a positive number of processes (a ValueError names the mistake)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    elif str(text).strip().lower() == AUTO:
        return AUTO
    else:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise ValueError(f"--processes takes a number of processes or 'auto', got {text!r}.") from None
    if value < 1:
        raise ValueError(f"--processes must be at least 1 (or 'auto'), got {value}.")
    return value


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def choose_processes(requested, batch: int | None = None) -> tuple[int, str]:
    """How many processes to train with, and why; 1 means: train in this process.

    `auto`: one per free core on a machine without a GPU (the cores other work leaves free, measured over
    the next second, `runtime.other_work`), 1 with a GPU. Always 1 inside a launched
    process, whatever was asked (the launcher already chose). A number: that many (with GPUs, one a GPU at most).
    `batch`: a step's rows, which the processes share out: `auto` takes the most processes that divide it, and a
    number that does not is refused.
    """
    requested = parse_processes(requested)
    if launched():
        return 1, f"inside a launched process (WORLD_SIZE={os.environ.get('WORLD_SIZE', '?')})"
    gpus = gpu_count()
    if requested == AUTO:
        if gpus:
            return 1, f"auto: {gpus} GPU(s), one process (several GPUs: accelerate launch -m seqhf ...)"
        cores = cpu_cores()
        busy, measured = other_work()
        count = choose_threads(cores, busy)
        while batch and batch % count:
            count -= 1
        return count, f"auto: one per free core; {cores} cores, {measured}"
    if gpus and requested > gpus:
        raise ValueError(f"--processes {requested} on a machine with {gpus} GPU(s): one process a GPU at most.")
    if batch and batch % requested:
        raise ValueError(f"--processes {requested} does not divide the batch of {batch} rows a step, which the "
                         "processes share out.")
    return requested, f"--processes {requested}"


def free_port() -> int:
    """A TCP port nothing listens on now, for the processes' rendezvous (two runs on one machine must not
    share accelerate's default 29500)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(processes: int, args: list, config, port: int) -> list[str]:
    """The command line that runs `seqhf ARGS` in `processes` processes through accelerate's launcher (run by
    this module's `quiet_launcher`)."""
    return [sys.executable, "-m", __name__, "--config_file", str(config),
            "--num_processes", str(processes), "--main_process_port", str(port),
            "-m", "seqhf", *map(str, args)]


def launch_env(environ=None, error_file=None) -> dict:
    """The processes' environment: this one, with one torch thread a process unless OMP_NUM_THREADS is set, and
    RELAUNCHED_ENV set: `seqhf`, which started them, says that a run was interrupted, or its input was bad, once."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env[RELAUNCHED_ENV] = "1"
    if error_file:
        env[ERROR_FILE_ENV] = str(error_file)
    return env


def leave_error_for_seqhf(line: str) -> bool:
    """In a process that `seqhf` launched: leave `line` (a bad input's error) for it to say, and True; the first
    process to meet the error leaves it. False elsewhere (say it yourself)."""
    path = os.environ.get(ERROR_FILE_ENV)
    if not path:
        return False
    try:
        with open(path, "x", encoding="utf-8") as file:
            file.write(line)
    except FileExistsError:
        pass
    return True


def quiet_launcher(argv: list[str], error_file: str) -> int:
    """accelerate's launcher, silent about a run whose processes stopped on a bad input (they left its line in
    `error_file`): neither torch elastic's log lines once the file exists nor its report of the failed children.
    Any other failure keeps them."""
    import logging

    import torch.distributed.run  # noqa: F401 (sets up torch's log handlers, which the filter goes on)
    from accelerate.commands.launch import launch_command as accelerate_launch, launch_command_parser
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    def before_the_error(record) -> bool:
        return not os.path.exists(error_file)

    loggers = [logging.getLogger(name) for name in ["", *logging.Logger.manager.loggerDict]]
    for handler in {handler for logger in loggers for handler in logger.handlers}:
        handler.addFilter(before_the_error)
    try:
        accelerate_launch(launch_command_parser().parse_args(argv))
    except ChildFailedError:
        if os.path.exists(error_file):
            return 1
        raise
    return 0


def relaunch(processes: int, args: list) -> int:
    """Run `seqhf ARGS` in `processes` processes and wait for them; returns the launcher's exit code.

    Ctrl-C and SIGTERM, whether the terminal sends them to every process or someone sends them to this one only,
    reach the launcher, which ends its processes; this one waits for it, and ends it itself if anything breaks the
    wait (none is left behind). An interrupted run that did not finish raises KeyboardInterrupt once its processes
    are gone."""
    with as_file(files(__package__) / CONFIG) as config, tempfile.TemporaryDirectory(prefix="seqhf-") as tmp:
        error_file = os.path.join(tmp, "error")
        proc = subprocess.Popen(launch_command(processes, args, config, free_port()), env=launch_env(error_file=error_file))
        interrupted = []

        def forward(signum, frame):
            interrupted.append(signum)
            proc.send_signal(signum)

        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {s: signal.signal(s, forward) for s in handled} if _main_thread() else {}
        try:
            code = proc.wait()
        finally:
            if proc.poll() is None:
                end(proc)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        bad_input = open(error_file, encoding="utf-8").read() if code and os.path.exists(error_file) else None
    if bad_input:
        print(bad_input, file=sys.stderr)
    elif interrupted and code != 0:
        raise KeyboardInterrupt
    return code


def end(proc, seconds: float = 30.0) -> None:
    """Terminate `proc` (the launcher ends its processes on SIGTERM), then kill it if it has not ended in `seconds`."""
    proc.terminate()
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":  # the launcher process that `relaunch` starts
    sys.exit(quiet_launcher(sys.argv[1:], os.environ[ERROR_FILE_ENV]))
