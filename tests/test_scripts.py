"""The command lines: arguments are parsed before the heavy imports (so --help answers at once), help
texts read right, and bad arguments or a wrong device/folder end in one line and a non-zero exit."""

import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from tests.test_generation import TEXT, tiny_lm

HELP_CHECK = """
import runpy, sys
sys.argv = [{script!r}, "--help"]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit:
    pass
print("HEAVY" + repr(sorted(m for m in ("torch", "transformers", "seqhf", "huggingface_hub") if m in sys.modules)))
"""


@pytest.mark.parametrize("script", ["generate.py", "push_to_hub.py", "benchmark.py"])
def test_help_needs_no_heavy_import(script):
    path = str(REPO / "scripts" / script)
    proc = subprocess.run(
        [sys.executable, "-c", HELP_CHECK.format(script=path)], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    help_text, heavy = proc.stdout.rsplit("HEAVY", 1)
    assert heavy.strip() == "[]", f"{script} --help imported {heavy.strip()}"
    assert "usage:" in help_text and "issue" not in help_text.lower()
    if script == "generate.py":  # the shell continuation of the example is shown, not joined into one line
        assert '--max-new-tokens 500 \\\n        --temperature 1.0 --seed 1' in help_text


def test_benchmark_cli_names_every_row_group():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import benchmark
    finally:
        sys.path.pop(0)
    from benchmarks.benchmark import ROW_GROUPS

    assert set(benchmark.ROW_GROUP_NAMES) == set(ROW_GROUPS)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from seqhf import SeqTransformerConfig, SeqTransformerForSequenceClassification
    from seqhf.data.tokenization import build_char_tokenizer

    tok = build_char_tokenizer(TEXT)
    lm = tmp_path_factory.mktemp("lm")
    tiny_lm(tok).save_pretrained(lm)
    tok.save_pretrained(lm)
    clf = tmp_path_factory.mktemp("clf")
    config = SeqTransformerConfig(vocab_size=len(tok), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=16, max_position_embeddings=32, pad_token_id=tok.pad_token_id)
    SeqTransformerForSequenceClassification(config).save_pretrained(clf)
    tok.save_pretrained(clf)
    return {"lm": lm, "clf": clf}


def generate_main(*args):
    from scripts.generate import main

    return main(list(args))


@pytest.mark.parametrize(
    "option, value, message",
    [("--top-k", "0", "--top-k must be at least 1"), ("--top-k", "-2", "--top-k must be at least 1"),
     ("--top-p", "1.5", "--top-p must be in (0, 1]"), ("--top-p", "0", "--top-p must be in (0, 1]")],
)
def test_generate_refuses_top_k_and_top_p_out_of_range(folders, capsys, option, value, message):
    with pytest.raises(SystemExit) as exit_info:
        generate_main("--model", str(folders["lm"]), option, value)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_generate_accepts_the_edges_of_top_k_and_top_p(folders, capsys):
    generate_main("--model", str(folders["lm"]), "--prompt", "The", "--max-new-tokens", "5", "--top-k", "1",
                  "--top-p", "1", "--seed", "0")
    assert capsys.readouterr().out.startswith("The")


def test_generate_on_a_classifier_folder_says_so(folders):
    with pytest.raises(SystemExit) as exit_info:
        generate_main("--model", str(folders["clf"]), "--max-new-tokens", "5")
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message
    assert "SeqTransformerForSequenceClassification (a text classifier), not a language model" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_generate_on_a_missing_device_is_a_one_line_error(folders):
    for device in ("cuda", "cuda:3", "nonsense"):
        with pytest.raises(SystemExit) as exit_info:
            generate_main("--model", str(folders["lm"]), "--max-new-tokens", "5", "--device", device)
        message = str(exit_info.value.code)
        assert message.startswith(f"error: device {device!r}") and "\n" not in message, message


def test_generate_cli_exit_status_from_a_shell(folders):
    # What a user sees: a non-zero status and one line on stderr, no traceback.
    proc = subprocess.run(
        [sys.executable, "scripts/generate.py", "--model", str(folders["clf"]), "--max-new-tokens", "5"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 1
    assert [line for line in proc.stderr.splitlines() if line.strip()][-1].startswith("error: This folder holds")
    assert "Traceback" not in proc.stderr
