"""The classifier on data larger than memory (issue #25): `--streaming`, and the data checks that read Arrow batches."""

import json
import os
import random
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset

from seqhf.data.arrow_columns import column_max, missing_rows, unique_values, value_counts
from seqhf.training.classifier import train_classifier
from seqhf.training.common import SetupError


def test_column_questions_read_arrow_batches_as_python_would(monkeypatch):
    import seqhf.data.arrow_columns as arrow_columns

    monkeypatch.setattr(arrow_columns, "BATCH_ROWS", 3)  # row numbers across batches
    ds = Dataset.from_dict({"text": ["a", " \u3000", None, "b", "", "\x1c\t", "c"], "label": [1, 0, 1, 2, 1, 1, 5]})
    assert missing_rows(ds, "text") == (4, [1, 2, 4, 5], 3)  # str.strip()'s whitespace, \x1c and U+3000 included
    assert missing_rows(ds.select([6, 5, 4, 3]), "text", shown=1) == (2, [1], 2)  # the selection's row numbers
    assert missing_rows(ds, "label", no_value=1) == (4, [0, 2, 4, 5], 0)
    assert value_counts(ds, "label") == {1: 4, 0: 1, 2: 1, 5: 1} and column_max(ds, "label") == 5
    lists = Dataset.from_dict({"labels": [["x", "y"], [], ["y"], ["y", "z"]]})
    assert value_counts(lists, "labels", flatten=True) == {"x": 1, "y": 3, "z": 1}
    assert unique_values(lists, "labels", flatten=True) == {"x", "y", "z"}


def test_streaming_refuses_the_in_memory_baseline(tmp_path):
    with pytest.raises(SetupError, match="--streaming cannot fit the TF-IDF baseline.*--no-baseline"):
        train_classifier(dict(source=str(tmp_path / "never-read.csv")), "lstm", tmp_path / "out", streaming=True)
    assert not (tmp_path / "out").exists()
    proc = subprocess.run([sys.executable, "-m", "seqhf", "train", "classifier", "--dataset", str(tmp_path / "x.csv"),
                           "--output-dir", str(tmp_path / "o"), "--streaming", "--baseline"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr  # two options that exclude each other: usage
    assert proc.stderr.strip().splitlines() == ["error: seqhf train classifier: Invalid value: --streaming leaves out "
                                                "the TF-IDF baseline, which holds every training text's n-gram counts "
                                                "in memory: drop --baseline (or --streaming)"]


UNDER_A_LIMIT = r"""
import json, resource, sys
import pyarrow.parquet as pq
from seqhf.training.classifier import train_classifier
# everything a run imports, imported before the limit is set (the limit is for the data, not for module code)
import gensim.models, matplotlib.pyplot, sklearn.metrics, accelerate, transformers.trainer  # noqa: F401
import seqhf.hub.cards, seqhf.hub.plots, seqhf.training.calibration, seqhf.training.classifier_trainer  # noqa: F401

# datasets turns the Parquet files into its Arrow cache first (its own code, outside what this test measures: under
# the limit its conversion failed an Arrow malloc in about half of the runs, on some days): the run then reads that
# cache, memory-mapped, as a user's second run does.
from seqhf.data.classification import load_raw
load_raw(sys.argv[1])

def data_kb():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmData")).split()[1])

# 260 MB of heap beyond the imports: threads (their stacks count), buffers, a plot. A run peaked at about 125 MB
# (sampled every 10 ms); 200 MB failed in two fresh-clone CI runs of five on a 2-core AMD EPYC (a gensim thread's
# stack, and datasets' Parquet conversion, now done before the limit).
limit = (data_kb() + 260 * 1024) * 1024
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
tiny = dict(arch="lstm", model=dict(embedding_size=8, hidden_size=8), vocab_size=100, max_length=16, truncation="head",
            word_vectors=dict(sg=0, window=2, epochs=1),
            train=dict(learning_rate=1e-2, epochs=1, batch_size=8, weight_decay=0.0, warmup=0.0,
                       scheduler="constant", patience=2))
r = train_classifier(dict(source=sys.argv[1]), tiny, sys.argv[2], streaming=True, baseline=False, max_steps=3,
                     disable_tqdm=True, report_to="none", save_strategy="no", eval_strategy="no",
                     load_best_model_at_end=False)
try:
    pq.read_table(sys.argv[1] + "/train.parquet")  # the training texts alone do not fit (tried last: a failed
    print("READ WHOLE")                            # read leaves the heap fragmented)
except MemoryError:
    pass
print(json.dumps({k: r[k] for k in ("train_examples", "test_examples", "test_accuracy", "streaming", "word_vectors")}))
"""


def _write_large_dataset(folder, train_mb: int) -> int:
    """train / validation / test parquet files; the training texts hold `train_mb` MB of text (long words: many
    bytes, few tokens, so the test spends its time on bytes rather than on tokens)."""
    folder.mkdir()
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghij") for _ in range(200)) for _ in range(40)]

    def rows(n):
        labels = [i % 2 for i in range(n)]
        return pa.table({"text": [" ".join(rng.choices(words, k=10)) + (" good" if y else " bad") for y in labels],
                         "label": labels})

    pq.write_table(rows(100), folder / "validation.parquet")
    pq.write_table(rows(100), folder / "test.parquet")
    batches = train_mb * 1_000_000 // (5_000 * 2_000) + 1
    with pq.ParquetWriter(folder / "train.parquet", rows(1).schema) as writer:
        for _ in range(batches):
            writer.write_table(rows(5_000), row_group_size=1_000)  # datasets reads a row group at a time
    return batches * 5_000


@pytest.mark.slow
def test_streaming_trains_a_classifier_on_data_larger_than_the_memory_limit(tmp_path):
    """320 MB of training text under a 260 MB heap limit (RLIMIT_DATA counts the heap, not memory-mapped files):
    the data checks, vocabulary, tokenized splits and word vectors all read the Arrow data a batch at a time."""
    texts = _write_large_dataset(tmp_path / "data", 320)
    script = tmp_path / "run.py"
    script.write_text(UNDER_A_LIMIT)
    env = dict(os.environ, ARROW_DEFAULT_MEMORY_POOL="system", MALLOC_ARENA_MAX="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", HF_DATASETS_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "data"), str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "READ WHOLE" not in done.stdout
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["train_examples"] == texts and results["test_examples"] == 100 and results["streaming"]
    assert results["word_vectors"]["texts"] == texts and 0 <= results["test_accuracy"] <= 1


def test_release_freed_memory_hands_fragmented_heap_back():
    """What batches of changing sizes leave in malloc's free lists (here: 200 MB of small blocks, one in 100 kept)
    is resident until `release_freed_memory` (glibc's malloc_trim; the classifier's Trainer calls it every 20
    steps and before forking the TF-IDF child)."""
    import ctypes

    from seqhf.utils.runtime import release_freed_memory

    try:
        ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        pytest.skip("not glibc")

    def anon_mb():
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("RssAnon")).split()[1]) / 1024

    blocks = [bytearray(2000) for _ in range(100_000)]  # 200 MB on the heap (below malloc's mmap threshold)
    kept = blocks[::100]  # pins the heap's top, so freeing the rest cannot shrink it
    del blocks
    before = anon_mb()
    release_freed_memory()
    assert anon_mb() < before - 100, (before, anon_mb())
    assert len(kept) == 1000
