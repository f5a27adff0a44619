import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
IMDB_DIR = SHARED_DATA / "imdb"
ISLAND_TXT = SHARED_DATA / "mysterious_island" / "1268-0.txt"

# Prepended to code run by `run_without_seqhf`: drop the repo from sys.path and make any
# `import seqhf` fail, as on a machine where seqhf was never installed (an editable install
# would otherwise still find it).
_BLOCK_SEQHF = f"""
import sys, importlib.abc
import os
sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != {str(REPO)!r}]
class _NoSeqhf(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "seqhf" or name.startswith("seqhf."):
            raise ModuleNotFoundError("seqhf is blocked in this process", name=name)
sys.meta_path.insert(0, _NoSeqhf())
try:
    import seqhf
    raise SystemExit("seqhf is importable: the test would prove nothing")
except ModuleNotFoundError:
    pass
"""


def run_without_seqhf(code: str, cwd, timeout: int = 300) -> str:
    """Run `code` in a fresh Python process where seqhf cannot be imported; return its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_MODULES_CACHE"] = str(Path(cwd) / "hf_modules")
    proc = subprocess.run(
        [sys.executable, "-c", _BLOCK_SEQHF + textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def run_logging_imports(command: list) -> tuple[subprocess.CompletedProcess, set]:
    """Run `command` with Python's import log on (PYTHONPROFILEIMPORTTIME, on stderr); return the finished
    process and the names of the modules it imported."""
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc, imported


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run faster, and do not fight other processes for the cores, with one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def imdb_dir():
    if not IMDB_DIR.is_dir():
        pytest.skip(f"IMDb data not found at {IMDB_DIR}")
    return IMDB_DIR


@pytest.fixture
def island_txt():
    if not ISLAND_TXT.is_file():
        pytest.skip(f"The Mysterious Island not found at {ISLAND_TXT}")
    return ISLAND_TXT


# Token rows of different lengths for padding-invariance tests.
def padded_batch(rows, side):
    """Pad lists of ids with 0 on `side`; return input_ids and attention_mask."""
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[i, span] = torch.tensor(row)
        mask[i, span] = 1
    return ids, mask


ROWS = [[5, 3, 9, 1, 4, 7, 2], [8, 2, 6], [11, 12, 13, 14, 15]]
