"""seqhf as a user meets it: the wheel installed into a fresh virtual environment outside the checkout, used
from an empty folder through the `seqhf` command; and the sdist, which carries its own tests."""

import csv
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

# One worker builds the wheel and its venv once when the suite runs under pytest-xdist (`--dist loadgroup`).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wheel")]


def run(args, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def source_copy(dest: Path) -> Path:
    """The checkout's files, less what git ignores, copied to `dest`: a build writes build/ and *.egg-info into
    its source folder, and two test workers building in the checkout at once raced there."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                capture_output=True)
    except FileNotFoundError:  # no git on this machine
        listed = None
    if listed is None or listed.returncode != 0:  # not a git checkout (an unpacked sdist): all but build outputs
        ignore = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", "runs")
        return Path(shutil.copytree(REPO, dest, ignore=ignore, dirs_exist_ok=True))
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (REPO / name).is_file():  # a tracked file deleted in the working tree is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The wheel and the sdist, built without build isolation (no network needed) from a copy of the checkout."""
    out = tmp_path_factory.mktemp("dist")
    source = source_copy(tmp_path_factory.mktemp("source"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", out, source], cwd=out)
    run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"], cwd=source)
    return next(out.glob("seqhf-*.whl")), next(out.glob("seqhf-*.tar.gz"))


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory):
    """A fresh environment holding the wheel alone; its dependencies come from the test environment's
    site-packages (offline), but not the checkout nor its editable install."""
    root = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", root / "env"], cwd=root)
    python = root / "env" / "bin" / "python"
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root).stdout.strip()
    (Path(purelib) / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", dist[0]], cwd=root)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PATH=f"{root / 'env' / 'bin'}:{env['PATH']}")
    return root / "env" / "bin", env


def write_reviews(path: Path, rows: int = 300):
    random.seed(0)
    words = {"pos": ["great", "wonderful", "superb", "moving"], "neg": ["awful", "dull", "boring", "weak"]}
    filler = ["the", "film", "was", "a", "plot", "and", "acting", "story"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(rows):
            label = ("neg", "pos")[i % 2]
            text = random.choices(filler, k=8) + random.choices(words[label], k=2)
            random.shuffle(text)
            writer.writerow([" ".join(text), label])


def test_the_wheel_carries_templates_and_license(dist):
    names = zipfile.ZipFile(dist[0]).namelist()
    assert {"seqhf/hub/templates/classification.md", "seqhf/hub/templates/charlm.md",
            "seqhf/utils/accelerate_cpu.yaml"} <= set(names)  # --processes launches with it
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert not any(n.startswith(("benchmarks/", "scripts/", "tests/")) for n in names)


def test_installed_wheel_trains_cards_pushes_generates_and_exports(venv, tmp_path):
    bin_dir, env = venv
    seqhf = bin_dir / "seqhf"
    where = run([bin_dir / "python", "-c", "import seqhf; print(seqhf.__file__)"], cwd=tmp_path, env=env).stdout
    assert str(bin_dir.parent) in where and str(REPO) not in where
    assert "train" in run([seqhf, "--help"], cwd=tmp_path, env=env).stdout
    assert "classifier" in run([bin_dir / "python", "-m", "seqhf", "train", "--help"], cwd=tmp_path, env=env).stdout
    write_reviews(tmp_path / "reviews.csv")
    out = run([seqhf, "train", "classifier", "--dataset", "reviews.csv", "--quick", "--output-dir", "clf"],
              cwd=tmp_path, env=env).stdout
    assert "(30 texts" in out  # the small set's validation split: 10 % of 300 rows
    clf = tmp_path / "clf"
    assert (clf / "README.md").is_file() and (clf / "training_curves.png").is_file()
    card = (clf / "README.md").read_text()
    assert "| validation | carved from `train` (stratified, fixed seed) | 30 |" in card and "(30 texts)" in card
    plan = run([seqhf, "push", "clf", "--repo-id", "someone/reviews", "--dry-run"], cwd=tmp_path, env=env).stdout
    assert "would upload to someone/reviews" in plan and "modeling_lstm.py" in plan
    run([seqhf, "export", "clf", "clf-onnx"], cwd=tmp_path, env=env)
    assert (tmp_path / "clf-onnx" / "model.onnx").is_file()
    make_lm = ("import seqhf\nfrom seqhf.data.tokenization import build_char_tokenizer\n"
               "tok = build_char_tokenizer('the island was far away')\n"
               "cfg = seqhf.SeqLSTMConfig(vocab_size=len(tok), embedding_size=8, hidden_size=8, pad_token_id=tok.pad_token_id)\n"
               "seqhf.SeqLSTMForCausalLM(cfg).save_pretrained('lm'); tok.save_pretrained('lm')\n")
    run([bin_dir / "python", "-c", make_lm], cwd=tmp_path, env=env)
    text = run([seqhf, "generate", "lm", "--prompt", "the", "--max-new-tokens", "10", "--seed", "0"],
               cwd=tmp_path, env=env).stdout
    assert text.startswith("the") and len(text.strip()) > 3


def test_the_sdist_carries_its_tests_and_they_collect(dist, venv, tmp_path):
    with tarfile.open(dist[1]) as sdist:
        names = sdist.getnames()
        sdist.extractall(tmp_path, filter="data")
    root = tmp_path / dist[1].name.removesuffix(".tar.gz")
    assert (root / "LICENSE").is_file() and (root / "tests" / "conftest.py").is_file()
    assert any(n.endswith("tests/fixtures/layout_0_1/expected.json") for n in names)
    bin_dir, env = venv
    collected = run([bin_dir / "python", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                    cwd=root, env=env, timeout=300).stdout
    assert "error" not in collected.lower().split("collected")[-1] and " tests collected" in collected
