"""The demo's library side (issue 15): streamed generation, the Space folder, pushing it (no network)."""

import subprocess
import sys
import time
import tomllib

import pytest
import torch
import yaml

pytest.importorskip("gradio", reason="gradio is in the `demo` and `dev` extras")

from conftest import REPO, run_logging_imports, run_without_seqhf
from seqhf import SeqLSTMConfig, SeqLSTMForCausalLM, SeqLSTMForSequenceClassification
from seqhf.demo.page import classify_and_explain, stream_generation, write_space
from seqhf.inference.generation import generate_text
from seqhf.data.tokenization import build_char_tokenizer, build_word_tokenizer
from test_hub import _FakeApi
from seqhf.hub import upload
from seqhf.hub import space as hub_space

BOOK = "The engineer looked at the island. Then the sailor spoke! Cyrus Harding and Pencroft walked on."
REVIEWS = ["a wonderful film , great acting", "a terrible film , bad acting", "great fun", "boring and bad"]


def make_classifier_folder(folder):
    tok = build_word_tokenizer(REVIEWS, vocab_size=64, min_frequency=1, model_max_length=32)
    torch.manual_seed(0)
    config = SeqLSTMConfig(
        vocab_size=len(tok), embedding_size=8, hidden_size=8, bidirectional=True, pooling="concat", num_labels=2,
        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    SeqLSTMForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def make_generator_folder(folder, hidden_size=16, num_hidden_layers=1):
    tok = build_char_tokenizer(BOOK)
    torch.manual_seed(0)
    config = SeqLSTMConfig(vocab_size=len(tok), embedding_size=8, hidden_size=hidden_size, is_decoder=True,
                           num_hidden_layers=num_hidden_layers, pad_token_id=tok.pad_token_id,
                           bos_token_id=tok.bos_token_id)  # fmt: skip
    SeqLSTMForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    from seqhf.inference.generation import load_generator

    return load_generator(make_generator_folder(tmp_path_factory.mktemp("lm")))


def test_generation_streams_in_growing_pieces_and_matches_the_plain_call(generator):
    model, tok = generator
    partials = list(stream_generation(model, tok, "The island", 1.0, 0, 1.0, 200, 7))
    assert len(partials) > 5  # the text came in pieces, not at the end
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(partials, partials[1:]))
    assert partials[-1] == generate_text(model, tok, "The island", max_new_tokens=200, temperature=1.0, seed=7)
    # top-k 1 is greedy whatever the temperature
    greedy = list(stream_generation(model, tok, "The", 1.5, 1, 1.0, 40, 1))[-1]
    assert greedy == generate_text(model, tok, "The", max_new_tokens=40, temperature=0)


def test_a_word_lm_streams_its_first_word_spaced_from_the_prompt():
    """The page printed `this movie wasi - d` (the new words decoded alone have no space before the first)."""
    from seqhf import SeqLSTMConfig, SeqLSTMForCausalLM
    from seqhf.data.tokenization import build_word_tokenizer

    words = build_word_tokenizer(["this movie was good and the film was bad"] * 3, vocab_size=64, min_frequency=1)
    torch.manual_seed(0)
    config = SeqLSTMConfig(vocab_size=len(words), embedding_size=8, hidden_size=8, pad_token_id=words.pad_token_id,
                           is_decoder=True)
    model = SeqLSTMForCausalLM(config).eval()
    streamed = list(stream_generation(model, words, "this movie was", 1.0, 0, 1.0, 6, 3))[-1]
    assert streamed.startswith(" ") and streamed == generate_text(model, words, "this movie was", max_new_tokens=6,
                                                                   temperature=1.0, seed=3)


def test_the_page_shows_a_generated_unk_as_generate_text_does():
    """The page's streamer dropped `[UNK]` (skip_special_tokens) where `seqhf generate` now shows it."""
    from test_generation import word_lm_saying

    model, words = word_lm_saying("[UNK]")
    streamed = list(stream_generation(model, words, "this movie was", 0, 0, 1.0, 3, 1))[-1]
    assert streamed == " [UNK] [UNK] [UNK]" == generate_text(model, words, "this movie was", max_new_tokens=3,
                                                             temperature=0)



def test_a_backward_lm_shows_its_text_whole_before_the_prompt():
    """Streamed, a backward LM's words would come right to left: the page shows its text once, as generate_text gives
    it (the words before the prompt, left to right)."""
    from test_generation import backward_word_lm

    model, words = backward_word_lm()
    pieces = list(stream_generation(model, words, "the film was bad", 0, 0, 1.0, 6, 3))
    assert pieces == ["this movie was good and "]
    assert list(stream_generation(model, words, "film was bad", 1.0, 0, 0.9, 3, 1)) == [
        generate_text(model, words, "film was bad", max_new_tokens=3, temperature=1.0, top_p=0.9, seed=1)]


def test_generation_errors_reach_the_caller(generator):
    model, tok = generator
    start = time.perf_counter()
    with pytest.raises(ValueError, match="max_new_tokens"):
        list(stream_generation(model, tok, "The", 1.0, 0, 1.0, 0, 1))
    assert time.perf_counter() - start < 90  # the streamer was closed, not left waiting for its 120 s timeout


def test_space_folder_has_the_header_and_loads_by_repo_id(tmp_path):
    files = write_space(tmp_path / "space", "someone/imdb-lstm", "someone/charlm-lstm", title="seqhf demo")
    assert files == sorted(["README.md", "app.py", "requirements.txt", "seqhf_demo/__init__.py",
                            "seqhf_demo/demo/__init__.py", "seqhf_demo/demo/page.py", "seqhf_demo/inference/__init__.py",
                            "seqhf_demo/inference/explain.py", "seqhf_demo/inference/generation.py",
                            "seqhf_demo/inference/saved_folder.py"])  # fmt: skip
    readme = (tmp_path / "space" / "README.md").read_text()
    header = yaml.safe_load(readme.split("---\n")[1])
    import gradio

    assert header["sdk"] == "gradio" and header["sdk_version"] == gradio.__version__
    assert header["app_file"] == "app.py" and header["title"] == "seqhf demo"
    assert header["models"] == ["someone/imdb-lstm", "someone/charlm-lstm"]
    app = (tmp_path / "space" / "app.py").read_text()
    assert "classifier='someone/imdb-lstm'" in app and "generator='someone/charlm-lstm'" in app
    assert "trust_remote_code=True" in app
    requirements = (tmp_path / "space" / "requirements.txt").read_text().split()
    assert any(r.startswith("torch") for r in requirements) and any(r.startswith("transformers") for r in requirements)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for name in ("torch", "transformers", "tokenizers", "safetensors"):  # the models' needs, in seqhf's own ranges
        wanted = next(d for d in pyproject["project"]["dependencies"] if d.startswith(name + ">"))
        given = next(r for r in requirements if r.startswith(name + ">"))
        assert sorted(given.split(",")) == sorted(wanted.replace(" ", "").split(",")), (given, wanted)
    assert not any(r.startswith("seqhf") for r in requirements)  # the Space runs without seqhf
    write_space(tmp_path / "colon", "someone/imdb-lstm", None, title='seqhf: my "demo"')  # was YAML that did not parse
    header = yaml.safe_load((tmp_path / "colon" / "README.md").read_text().split("---\n")[1])
    assert header["title"] == 'seqhf: my "demo"'


def test_space_refuses_local_folders(tmp_path):
    with pytest.raises(ValueError, match="repo id"):
        write_space(tmp_path / "space", str(make_classifier_folder(tmp_path / "clf")), None)
    with pytest.raises(ValueError, match="classifier, a generator"):
        write_space(tmp_path / "space", None, None)
    (tmp_path / "a-file").write_text("")  # was "[Errno 20] Not a directory: '.../a-file/seqhf_demo'"
    with pytest.raises(NotADirectoryError, match=r"^The Space's output .*a-file is a file: give a folder\."):
        write_space(tmp_path / "a-file", "someone/classifier")


def test_space_package_runs_without_seqhf(tmp_path):
    """The copied seqhf_demo package and models loaded with trust_remote_code: what the Space runs."""
    write_space(tmp_path / "space", "someone/imdb-lstm", "someone/charlm-lstm")
    clf, lm = make_classifier_folder(tmp_path / "clf"), make_generator_folder(tmp_path / "lm")
    out = run_without_seqhf(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path / "space")!r})
        from seqhf_demo.demo.page import build_app, classify_and_explain, load_classifier, load_generator, stream_generation
        app = build_app({str(clf)!r}, {str(lm)!r}, trust_remote_code=True)
        probabilities, spans = classify_and_explain(*load_classifier({str(clf)!r}, True), "great fun , bad acting")
        print(sorted(probabilities), "".join(piece for piece, _ in spans))
        print(type(app).__name__, len(list(stream_generation(*load_generator({str(lm)!r}, True), "The", 1.0, 0, 1.0, 50, 1))) > 0)
        """,
        cwd=tmp_path,
    )
    assert out.splitlines()[-2:] == ["['negative', 'positive'] great fun , bad acting", "Blocks True"]


def test_classify_and_explain_shades_every_word(tmp_path):
    from seqhf.demo.page import load_classifier

    model, tok = load_classifier(make_classifier_folder(tmp_path / "clf"))
    probabilities, spans = classify_and_explain(model, tok, "a wonderful film, great acting")
    assert sum(probabilities.values()) == pytest.approx(1.0)
    assert [p for p, w in spans if w is not None] == ["a", "wonderful", "film", ",", "great", "acting"]
    assert max(abs(w) for _, w in spans if w is not None) == pytest.approx(1.0)


def test_a_text_too_long_to_explain_is_refused_before_any_work(tmp_path, monkeypatch):
    from seqhf.demo import page

    model, tok = page.load_classifier(make_classifier_folder(tmp_path / "clf"))
    monkeypatch.setattr(page, "explain", lambda *a, **k: pytest.fail("explained a text over the limit"))
    with pytest.raises(ValueError, match=f"up to {page.MAX_EXPLAINED_CHARS:,} characters"):
        page.classify_and_explain(model, tok, "great " * (page.MAX_EXPLAINED_CHARS // 6 + 1))


def test_space_push_dry_run_and_fake_upload(tmp_path, capsys):
    space = tmp_path / "space"
    files = write_space(space, "someone/imdb-lstm", None)
    from seqhf.cli.app import main

    assert main(["push-space", str(space), "--repo-id", "someone/seqhf-demo", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would upload the Space someone/seqhf-demo" in out
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == files

    api = _FakeApi()
    hub_space.push_space(space, "someone/seqhf-demo", private=True, api=api)
    assert api.names() == ["create_repo", "upload_folder"]
    create = api.calls[0][2]
    assert create["repo_type"] == "space" and create["space_sdk"] == "gradio" and create["private"] is True
    upload = api.calls[1][2]
    assert upload["repo_type"] == "space" and api.uploaded == files


def test_incomplete_space_is_refused_with_the_list(tmp_path, capsys):
    space = tmp_path / "space"
    write_space(space, "someone/imdb-lstm", None)
    (space / "app.py").unlink()
    (space / "README.md").write_text("# no header\n")
    with pytest.raises(upload.FolderNotReadyError) as err:
        hub_space.push_space(space, "someone/seqhf-demo", dry_run=True)
    with pytest.raises(ValueError, match="is not a Hub repository id"):
        hub_space.push_space(space, "someone/seqhf demo", dry_run=True)
    assert any("app.py" in p for p in err.value.problems) and any("sdk" in p for p in err.value.problems)
    script = [sys.executable, "-m", "seqhf", "push-space", str(space), "--repo-id", "x/y", "--dry-run"]
    proc = subprocess.run(script, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "app.py" in proc.stderr and "Traceback" not in proc.stderr


def test_demo_script_help_imports_nothing_heavy_and_needs_a_model():
    script = [sys.executable, "-m", "seqhf", "demo"]
    proc, imported = run_logging_imports(script + ["--help"])  # gradio and torch wait until the arguments are parsed
    assert proc.returncode == 0 and "seqhf.cli.app" in imported
    assert not imported & {"torch", "gradio", "transformers"}
    proc = subprocess.run(script + ["--title", "x"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--classifier" in proc.stderr


def test_demo_on_a_port_it_cannot_serve_on_is_one_error_line(tmp_path, capsys):
    """A taken port, or one past 65535, ended in gradio's OSError / OverflowError traceback."""
    import socket

    from seqhf.cli.app import main

    folder = make_classifier_folder(tmp_path / "clf")
    assert main(["demo", "--classifier", str(folder), "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", "--classifier", str(folder), "--port", str(port)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith(("error", "Traceback"))]
    assert len(errors) == 1 and errors[0].startswith(f"error: cannot serve the demo on 127.0.0.1:{port}: the port is taken")
