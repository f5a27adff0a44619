"""scripts/benchmark.py runs end to end and writes every key of issue 7 (no speed assertions here)."""

import json
import math
import os
import statistics
import subprocess
import sys

import pytest

from benchmarks.benchmark import KEYS, Contender, PeakMemory, measure
from tests.conftest import REPO
import benchmarks.benchmark as bench


def test_quick_run_writes_every_key(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    # One thread: on a shared 2-core machine two OpenMP threads can stall for seconds at every barrier.
    proc = subprocess.run(
        [sys.executable, "scripts/benchmark.py", "--quick", "--threads", "1", "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert set(KEYS) <= set(data)
    assert set(data) - set(KEYS) == {"figures", "meta"}
    for key in KEYS:
        figures = data["figures"][key]
        assert data[key] is not None and data[key] > 0, (key, figures)
        if figures["paired_ratios"]:  # the median of each repeat's ratio (the decode row)
            assert len(figures["paired_ratios"]) == figures["repeats"]
            assert math.isclose(data[key], statistics.median(figures["paired_ratios"]), rel_tol=1e-9)
        else:
            assert math.isclose(data[key], figures["ours_rate"] / figures["peer_rate"], rel_tol=1e-9)
        assert figures["ours_peak_mib"] > 0 and figures["peer_peak_mib"] > 0
        assert f"`{key}`" in proc.stdout  # the printed table has the row too
    assert data["meta"]["quick"] is True


def test_measure_alternates_and_takes_the_median():
    calls = []
    a = Contender("a", lambda i: calls.append(("a", i)) or 10.0, "units/s")
    b = Contender("b", lambda i: calls.append(("b", i)) or 20.0, "units/s")
    measure([a, b], warmup=1, repeats=3, device="cpu", memory=PeakMemory("cpu"))
    # round robin, warm-up included, every other round in reverse order
    assert [name for name, _ in calls] == ["a", "b", "b", "a"] * 2
    assert len(a.rates) == len(b.rates) == 3  # the warm-up is not counted
    assert a.rate == sorted(a.rates)[1] and a.peak_bytes > 0


def test_bad_arguments_are_refused():
    from benchmarks.benchmark import run_benchmark

    with pytest.raises(ValueError, match="device"):
        run_benchmark(device="tpu")
    with pytest.raises(ValueError, match="row group"):
        run_benchmark(only=["nonsense"])


@pytest.mark.parametrize("rnn_type", ["lstm", "gru", "rnn"])
def test_generate_fast_path_matches_the_full_forward(rnn_type):
    """generate()'s one-token decode step (the path the benchmark times) gives the full forward's tokens."""
    import torch

    from seqhf import SeqLSTMConfig, SeqLSTMForCausalLM

    torch.manual_seed(0)
    config = SeqLSTMConfig(
        vocab_size=11, embedding_size=8, hidden_size=16, num_hidden_layers=2, rnn_type=rnn_type, is_decoder=True
    )
    model = SeqLSTMForCausalLM(config).eval()
    model.model.embeddings.weight.data.normal_(0, 1.0)  # make greedy choices differ from step to step
    model.lm_head.weight.data.normal_(0, 1.0)
    prompt = torch.tensor([[3, 5, 7, 2]])
    out = model.generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=0)
    ids = prompt
    with torch.no_grad():
        for _ in range(12):
            ids = torch.cat([ids, model(ids).logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(out, ids)
    assert len(set(out[0, 4:].tolist())) > 1


def test_rows_without_the_seqhf_transformer_still_have_their_key(monkeypatch):

    monkeypatch.setattr(bench, "transformer_classes", lambda: None)
    row = bench.transformer_train_row("cpu", bench.Scale.quick(), bench.PeakMemory("cpu"), bench.TARGETS_CPU)
    assert row.key == "transformer_train_vs_gpt2" and math.isnan(row.ratio) and "missing" in row.ours
    assert bench.to_json({"rows": [row], "meta": {}})["transformer_train_vs_gpt2"] is None
