"""The results tables (docs/results.md, docs/performance.md) are rendered from the measured runs, never typed in."""

import pytest

from conftest import REPO
from benchmarks.results import BEGIN, END, benchmark_table, load_benchmarks, load_measured, results_table, update_benchmark_block, update_readme


def test_docs_tables_match_the_measured_runs():
    results_page = (REPO / "docs" / "results.md").read_text()
    performance_page = (REPO / "docs" / "performance.md").read_text()
    runs = load_measured()
    assert runs, "no measured runs in model_cards/measured"
    assert update_readme(results_page, results_table(runs)) == results_page, "run `python scripts/results_table.py --write`"
    assert update_benchmark_block(performance_page, benchmark_table(*load_benchmarks())) == performance_page, \
        "run `python scripts/results_table.py --write`"


def test_benchmark_table_states_targets_met_or_not():
    figure = dict(ours="A", peer="B", unit="x/s", ours_rate=2500.0, peer_rate=2.5, ratio=1000.0, target=2.0, met=True)
    missed = dict(figure, ratio=1.5, met=False)
    cpu = {"figures": {"fast": figure, "slow": missed}}
    rows = benchmark_table(cpu, {"figures": {"fast": missed}}).splitlines()[2:]
    assert rows[0] == "| `fast` | A vs B, x/s | 2,500 / 2.5 | **1000.00** (≥ 2) | 1.50 |"
    assert "**1.50** (≥ 2, not met) | — |" in rows[1]


def _run(accuracy):
    return dict(task="sentiment", preset="lstm", test_accuracy=accuracy, test_f1=0.9, test_examples=25000,
                wall_time_s=1500.0, hardware="CPU: AMD EPYC, 2 cores, torch threads 2", epochs=3.0)


def test_targets_are_judged_from_the_figures():
    table = results_table([_run(0.9049), _run(0.9051)])
    rows = table.splitlines()[2:]
    assert "90.49 %" in rows[0] and "**not met**" in rows[0]
    assert "90.51 %" in rows[1] and "— met" in rows[1]
    assert "AMD EPYC (2 cores, torch threads 2)" in rows[0] and "25.0 min" in rows[0]
    charlm = dict(task="charlm", preset="lstm", heldout_nats_per_char=1.21, heldout_bits_per_char=1.75,
                  heldout_stream_nats_per_char=1.21, heldout_window_nats_per_char=1.29, wall_time_s=44.0,
                  hardware="1 x NVIDIA H200", epochs=30.0)
    assert "1.210 nats/char (1.750 bits) as one stream; 1.290 in windows | ≤ 1.22 — met" in results_table([charlm])


def test_charlm_results_show_the_ngram_mixture_dynamic_and_unseen_text():
    charlm = dict(task="charlm", preset="cpu", heldout_nats_per_char=1.30, heldout_bits_per_char=1.876,
                  heldout_stream_nats_per_char=1.30, heldout_window_nats_per_char=1.40, heldout_chars=1000,
                  wall_time_s=1500.0, hardware="1 x NVIDIA H200", epochs=3.0,
                  ngram=dict(order=7, heldout_nats_per_char=1.2548), mixture=dict(heldout_nats_per_char=1.21),
                  dynamic_eval=dict(heldout_chars=1000, heldout_nats_per_char=1.25),
                  second_text=dict(name="imdb (unsupervised)", nats_per_char=2.1, ngram_nats_per_char=2.3))
    row = results_table([charlm]).splitlines()[2]
    assert ("1.300 nats/char (1.876 bits) as one stream; 1.400 in windows; 7-gram Kneser-Ney 1.255; "
            "mixed with it 1.210; dynamic evaluation 1.250; unseen text (imdb (unsupervised)) 2.100, n-gram 2.300 "
            "| ≤ 1.24 — **not met**") in row
    partial = dict(charlm, dynamic_eval=dict(heldout_chars=200, heldout_nats_per_char=1.25))
    assert "dynamic evaluation (first 200 chars) 1.250" in results_table([partial])
    other = dict(charlm, gutenberg_1268=False, sources=[dict(name="reviews.txt")])
    row = results_table([other]).splitlines()[2]
    assert row.startswith("| charlm `cpu` on reviews.txt |") and "| — |" in row  # the targets are for #1268


def test_update_readme_needs_the_markers():
    with pytest.raises(ValueError, match="results block"):
        update_readme("# no table here\n", "| a |")
    assert update_readme(f"x\n{BEGIN}\nold\n{END}\ny", "| new |") == f"x\n{BEGIN}\n| new |\n{END}\ny"


def test_superseded_and_other_seed_runs_are_labelled(tmp_path):
    import json

    (tmp_path / "superseded").mkdir()
    (tmp_path / "cpu_eval_sentiment-lstm.json").write_text(json.dumps(_run(0.91)))
    (tmp_path / "cpu_eval_sentiment-lstm-seed43.json").write_text(json.dumps(dict(_run(0.905), seed=43)))
    (tmp_path / "superseded" / "h200_eval_sentiment-lstm-before-word-vectors.json").write_text(json.dumps(_run(0.89)))
    rows = results_table(load_measured(tmp_path)).splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == [
        "| sentiment `lstm`", "| sentiment `lstm`, seed 43", "| sentiment `lstm` (earlier recipe: before word vectors)"]
    assert "89.00 %" in rows[2] and "**not met**" in rows[2]
    glove = dict(_run(0.92), pretrained_vectors=dict(source="glove-6b-50d", dim=50))
    (tmp_path / "cpu_eval_sentiment-lstm-glove.json").write_text(json.dumps(glove))
    rows = results_table(load_measured(tmp_path)).splitlines()[2:]
    assert rows[0].startswith("| sentiment `lstm` | 91.00 %")
    assert rows[1].startswith("| sentiment `lstm` with `--pretrained-vectors glove-6b-50d` | 92.00 %")


def test_rows_say_whether_the_cores_were_quiet(tmp_path):
    import json

    (tmp_path / "cpu_eval_sentiment-lstm.json").write_text(json.dumps(dict(_run(0.92), other_work_cores=0.04)))
    (tmp_path / "cpu_eval_sentiment-lstm-seed43.json").write_text(json.dumps(dict(_run(0.91), seed=43, other_work_cores=1.3)))
    (tmp_path / "cpu_eval_sentiment-lstm-seed44.json").write_text(json.dumps(dict(_run(0.91), seed=44)))
    (tmp_path / "cpu_eval_sentiment-lstm-seed45.json").write_text(json.dumps(dict(_run(0.91), seed=45)))
    gpu = dict(_run(0.9), seed=46, hardware="1 x NVIDIA H200")
    (tmp_path / "h200_eval_sentiment-lstm-seed46.json").write_text(json.dumps(gpu))
    conditions = {"cpu_eval_sentiment-lstm-seed45.json": {"machine": "quiet", "notes": "by hand"}}
    (tmp_path / "run_conditions.json").write_text(json.dumps(conditions))
    rows = {r.split(" | ")[0]: r.split(" | ")[5] for r in results_table(load_measured(tmp_path)).splitlines()[2:]}
    assert rows["| sentiment `lstm`"] == "quiet (0.04 cores of other work)"
    assert rows["| sentiment `lstm`, seed 43"] == "shared (1.30 cores of other work)"
    assert rows["| sentiment `lstm`, seed 44"] == "not recorded"
    assert rows["| sentiment `lstm`, seed 45"] == "quiet (from the run's notes)"
    assert rows["| sentiment `lstm`, seed 46"] == "own GPU machine"
