"""The package layout (docs/architecture.md): import layers, model files fit for remote code, module size,
and folders saved by the 0.1.0 flat layout still loading."""

import ast
import json
import shutil
import subprocess
import sys as _sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, run_without_seqhf

PACKAGE = REPO / "seqhf"
OLD_LAYOUT = REPO / "tests" / "fixtures" / "layout_0_1"
LINT_IMPORTS = Path(_sys.executable).parent / "lint-imports"
MODEL_FILE_IMPORTS = {"torch", "transformers", "collections", "copy", "dataclasses", "math", "typing", "warnings"}
LONG_MODEL_FILES = {"modeling_lstm.py", "modeling_transformer.py"}  # one model family each, as in transformers
MAX_LINES = 400


def lint_imports(cwd, env=None) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"lint-imports is not installed next to {_sys.executable} (import-linter is in the dev extra)")
    return subprocess.run([str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_import_layers_are_kept():
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path):
    """The check can fail: a copy of the package where data imports training is refused."""
    shutil.copytree(PACKAGE, tmp_path / "seqhf", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "seqhf" / "data" / "upward.py").write_text("from ..training import common\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}
    proc = lint_imports(tmp_path, env)
    assert proc.returncode != 0
    assert "seqhf.data.upward -> seqhf.training" in proc.stdout


def imported_roots(path: Path) -> set:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add("." * node.level + (node.module or "") if node.level else node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_model_files_import_only_torch_transformers_and_their_configuration(family):
    folder = PACKAGE / "models" / family
    modeling = imported_roots(folder / f"modeling_{family}.py")
    assert modeling - MODEL_FILE_IMPORTS == {f".configuration_{family}"}
    assert imported_roots(folder / f"configuration_{family}.py") <= MODEL_FILE_IMPORTS


def test_modules_stay_small_and_tooling_stays_outside():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
            if p.name not in LONG_MODEL_FILES and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
    names = {p.stem for p in PACKAGE.rglob("*.py")}
    assert not names & {"benchmark", "results"}, "repository tooling belongs in benchmarks/, not in the package"
    assert (REPO / "benchmarks" / "benchmark.py").is_file()


def test_public_names_and_auto_registration():
    import seqhf
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    for name in ("SeqLSTMConfig", "SeqLSTMModel", "SeqLSTMForSequenceClassification", "SeqLSTMForCausalLM",
                 "SeqTransformerConfig", "SeqTransformerModel", "SeqTransformerForSequenceClassification",
                 "SeqTransformerForCausalLM", "SeqLSTMPreTrainedModel", "SeqTransformerPreTrainedModel"):
        assert name in seqhf.__all__ and hasattr(seqhf, name)
    config = AutoConfig.for_model("seqhf-lstm", vocab_size=11, embedding_size=4, hidden_size=4)
    assert type(AutoModelForCausalLM.from_config(config)) is seqhf.SeqLSTMForCausalLM
    config = AutoConfig.for_model("seqhf-transformer", vocab_size=11, hidden_size=8, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=16)
    assert type(AutoModelForSequenceClassification.from_config(config)) is seqhf.SeqTransformerForSequenceClassification


def expected():
    return json.loads((OLD_LAYOUT / "expected.json").read_text())


def test_old_layout_folders_load_with_seqhf(one_torch_thread):
    import seqhf  # noqa: F401  (registers the model types)
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, pipeline

    want = expected()
    folder = OLD_LAYOUT / "lstm-classifier"
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert type(model).__module__ == "seqhf.models.lstm.modeling_lstm"  # the installed code, not the copied files
    with torch.no_grad():
        logits = model(**tok(want["classifier_texts"], padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(logits, torch.tensor(want["classifier_logits"]))
    assert pipeline("text-classification", model=str(folder))("a good film")[0]["label"] in ("negative", "positive")
    folder = OLD_LAYOUT / "transformer-lm"
    lm = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = AutoTokenizer.from_pretrained(folder)(want["lm_prompt"], return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(lm(ids).logits[0, -1], torch.tensor(want["lm_last_logits"]))


def test_old_layout_folders_load_as_remote_code_without_seqhf(tmp_path):
    for name in ("lstm-classifier", "transformer-lm"):
        shutil.copytree(OLD_LAYOUT / name, tmp_path / name)
    out = run_without_seqhf(
        f"""
        import json, torch
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
        want = json.loads(open({str(OLD_LAYOUT / "expected.json")!r}).read())
        tok = AutoTokenizer.from_pretrained("lstm-classifier", trust_remote_code=True)
        clf = AutoModelForSequenceClassification.from_pretrained("lstm-classifier", trust_remote_code=True).eval()
        with torch.no_grad():
            got = clf(**tok(want["classifier_texts"], padding=True, return_tensors="pt")).logits
        torch.testing.assert_close(got, torch.tensor(want["classifier_logits"]))
        lm = AutoModelForCausalLM.from_pretrained("transformer-lm", trust_remote_code=True).eval()
        ids = AutoTokenizer.from_pretrained("transformer-lm", trust_remote_code=True)(want["lm_prompt"], return_tensors="pt").input_ids
        with torch.no_grad():
            torch.testing.assert_close(lm(ids).logits[0, -1], torch.tensor(want["lm_last_logits"]))
        print("loaded", type(clf).__module__, type(lm).__module__)
        """,
        cwd=tmp_path,
    )
    assert "loaded transformers_modules" in out


def test_saved_folders_of_this_layout_carry_the_same_code_file_names(tmp_path):
    """auto_map and the copied files keep the 0.1.0 names, so old and new folders look alike to a user."""
    import seqhf

    config = seqhf.SeqLSTMConfig(vocab_size=11, embedding_size=4, hidden_size=4, num_labels=2)
    seqhf.SeqLSTMForSequenceClassification(config).save_pretrained(tmp_path / "new")
    new = json.loads((tmp_path / "new" / "config.json").read_text())["auto_map"]
    old = json.loads((OLD_LAYOUT / "lstm-classifier" / "config.json").read_text())["auto_map"]
    assert new == old
    assert {"configuration_lstm.py", "modeling_lstm.py"} <= {p.name for p in (tmp_path / "new").iterdir()}
