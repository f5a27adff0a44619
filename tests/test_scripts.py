"""The `seqhf` command: options are parsed before the heavy imports (so --help answers at once), help texts
read right, and bad options or a wrong device/folder end in one line and a non-zero exit."""

import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, run_logging_imports
from tests.test_generation import TEXT, tiny_lm

SUBCOMMANDS = [[], ["train"], ["train", "classifier"], ["train", "charlm"], ["train", "lm"], ["generate"],
               ["evaluate"], ["baseline", "tfidf"], ["baseline", "ngram"], ["export"], ["push"], ["push-space"],
               ["demo"], ["env"]]
HELP_CHECK = """
import sys
sys.argv = ["seqhf", *{args!r}, "--help"]
from seqhf.cli.app import main
code = main(sys.argv[1:])
print("HEAVY" + repr(sorted(m for m in ("torch", "transformers", "datasets", "gradio") if m in sys.modules)), code)
"""


@pytest.mark.parametrize("args", SUBCOMMANDS, ids=lambda a: " ".join(a) or "seqhf")
def test_help_needs_no_heavy_import(args):
    """Every --help answers without torch (what keeps it under a second)."""
    proc = subprocess.run([sys.executable, "-c", HELP_CHECK.format(args=args)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    help_text, tail = proc.stdout.rsplit("HEAVY", 1)
    heavy, code = tail.strip().rsplit(" ", 1)
    assert heavy.strip() == "[]", f"seqhf {' '.join(args)} --help imported {heavy.strip()}"
    assert code == "0" and "Usage: seqhf" in help_text and "issue" not in help_text.lower()
    assert "%%" not in help_text  # click prints help strings as written: no %-escapes


def test_console_script_help_imports_nothing_heavy():
    """What keeps `seqhf --help` at about 0.1 s: torch is not imported. (Asserted on the imports, not on a time.)"""
    seqhf = REPO / ".venv" / "bin" / "seqhf"
    if not seqhf.exists():
        seqhf = type(REPO)(sys.executable).parent / "seqhf"
    proc, imported = run_logging_imports([str(seqhf), "--help"])
    assert proc.returncode == 0 and "train" in proc.stdout and "seqhf.cli.app" in imported
    assert not imported & {"torch", "transformers", "datasets", "gradio"}


def test_python_dash_m_seqhf():
    proc = subprocess.run([sys.executable, "-m", "seqhf", "train", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "classifier" in proc.stdout and "charlm" in proc.stdout


def test_bad_options_are_one_line_errors():
    for args, message in ((["bogus"], "No such command"), (["train", "classifier", "--dataset", "x.csv"], "--output-dir"),
                          (["train", "classifier", "--dataset", "x", "--output-dir", "o", "--model", "nope"], "--model")):
        proc = subprocess.run([sys.executable, "-m", "seqhf", *args], capture_output=True, text=True, timeout=120)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr


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


def generate_main(*args) -> int:
    from seqhf.cli.app import main

    return main(["generate", *args])


@pytest.mark.parametrize(
    "option, value, message",
    [("--top-k", "0", "--top-k must be at least 1"), ("--top-k", "-2", "--top-k must be at least 1"),
     ("--top-p", "1.5", "--top-p must be in (0, 1]"), ("--top-p", "0", "--top-p must be in (0, 1]")],
)
def test_generate_refuses_top_k_and_top_p_out_of_range(folders, capsys, option, value, message):
    assert generate_main(str(folders["lm"]), option, value) == 2
    assert message in capsys.readouterr().err


def test_generate_accepts_the_edges_of_top_k_and_top_p(folders, capsys):
    assert generate_main(str(folders["lm"]), "--prompt", "The", "--max-new-tokens", "5", "--top-k", "1",
                         "--top-p", "1", "--seed", "0") == 0
    assert capsys.readouterr().out.startswith("The")


def test_a_model_that_is_not_a_folder_here_is_tried_as_a_hub_repo_id_and_named(folders, capsys, tmp_path):
    """generate, evaluate and the demo take a Hub repo id as transformers does; offline (the tests), or for a mistyped
    folder, the failure is one line naming it instead of transformers' OSError traceback."""
    from seqhf.cli.app import main
    from seqhf.cli.evaluate import loading_from

    text = tmp_path / "text.txt"
    text.write_text("The island was far.")
    missing = str(tmp_path / "no-such-run")
    for args, name in ((["generate", "someone/char-lm"], "someone/char-lm"),
                       (["evaluate", "someone/char-lm", "--text", str(text)], "someone/char-lm"),
                       (["demo", "--classifier", "runs/mistyped"], "runs/mistyped")):
        assert main(args) == 1, args
        message = capsys.readouterr().err
        assert message.startswith(f"error: No such folder: {name}; as a Hub model id it is not in the Hub cache, and "
                                  "the Hub is offline")
        assert message.count("\n") == 1
    with pytest.raises(ValueError, match=r"^'someone/char-lm': no such folder here, and loading it as a Hub repo id "
                                         r"failed: We couldn't connect$"):
        with loading_from("someone/char-lm"):  # online, transformers' error for a repo it cannot reach
            raise OSError("We couldn't connect\nCheck your internet connection")
    assert main(["generate", missing]) == 1  # a path that cannot be a Hub id: the Hub is not asked
    assert capsys.readouterr().err == f"error: No such folder: {missing} (nor is it a Hub model id).\n"
    assert generate_main(str(folders["lm"]), "--max-new-tokens", "3", "--seed", "0") == 0  # a folder still loads


def test_generate_on_a_classifier_folder_says_so(folders, capsys):
    assert generate_main(str(folders["clf"]), "--max-new-tokens", "5") == 1
    message = capsys.readouterr().err
    assert message.startswith("error: ") and message.count("\n") == 1
    assert "SeqTransformerForSequenceClassification (a text classifier), not a language model" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_generate_on_a_missing_device_is_a_one_line_error(folders, capsys):
    for device in ("cuda", "cuda:3", "nonsense"):
        assert generate_main(str(folders["lm"]), "--max-new-tokens", "5", "--device", device) == 1
        message = capsys.readouterr().err
        assert message.startswith(f"error: device {device!r}") and message.count("\n") == 1, message


def test_python_api_names_a_bad_device_and_texts_that_are_not_text(folders):
    """`seqhf.load_generator(folder, device="nonsense")` failed inside torch's `Module.to` (the command checked its
    --device, the function did not); `seqhf.classify(folder, None)` said "'NoneType' object is not iterable" and a
    list holding None failed inside the tokenizer."""
    from seqhf.inference.generation import load_generator
    from seqhf.training.classifier import classify

    with pytest.raises(ValueError, match="^device 'nonsense' cannot be used here"):
        load_generator(folders["lm"], device="nonsense")
    for texts in (None, 3, ["fine", None]):
        with pytest.raises(TypeError, match=r"^`texts` must be a text or a list of texts \(str\)"):
            classify(folders["clf"], texts)
    assert len(classify(folders["clf"], ("one", "two"))) == 2
    assert len(classify(folders["clf"], (text for text in ("one", "two")))) == 2  # any iterable, a pandas Series too


def test_generate_cli_exit_status_from_a_shell(folders):
    # What a user sees: a non-zero status and one line on stderr, no traceback.
    proc = subprocess.run(
        [sys.executable, "-m", "seqhf", "generate", str(folders["clf"]), "--max-new-tokens", "5"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 1
    assert [line for line in proc.stderr.splitlines() if line.strip()][-1].startswith("error: This folder holds")
    assert "Traceback" not in proc.stderr


BENCHMARK_HELP = """
import runpy, sys
sys.argv = [{script!r}, "--help"]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit:
    pass
print("HEAVY" + repr(sorted(m for m in ("torch", "transformers", "seqhf", "huggingface_hub") if m in sys.modules)))
"""


def test_benchmark_help_needs_no_heavy_import():
    path = str(REPO / "scripts" / "benchmark.py")
    proc = subprocess.run([sys.executable, "-c", BENCHMARK_HELP.format(script=path)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    help_text, heavy = proc.stdout.rsplit("HEAVY", 1)
    assert heavy.strip() == "[]" and "usage:" in help_text


def test_benchmark_cli_names_every_row_group():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import benchmark
    finally:
        sys.path.pop(0)
    from benchmarks.benchmark import ROW_GROUPS

    assert set(benchmark.ROW_GROUP_NAMES) == set(ROW_GROUPS)


def test_evaluate_scores_a_classifier_beside_the_baseline_and_an_lm_beside_the_ngram(folders, tmp_path):
    import json

    from seqhf.cli.app import main

    rows = ["text,label"] + [f"{'the island' if i % 2 else 'a ship at sea'} {i},{i % 2}" for i in range(120)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "clf.json"
    assert main(["evaluate", str(folders["clf"]), "--dataset", str(tmp_path / "d.csv"),
                 "--label-names", "LABEL_0,LABEL_1", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["evaluated_on"] == "validation" and figures["examples"] == 12  # 10 % carved from 120 rows
    assert 0 <= figures["accuracy"] <= 1 and figures["baseline"]["examples"] == 12
    assert figures["baseline"]["evaluated_on"] == "validation"  # the same 12 texts, scored by TF-IDF + LR
    (tmp_path / "book.txt").write_text(TEXT)
    out = tmp_path / "lm.json"
    assert main(["evaluate", str(folders["lm"]), "--text", str(tmp_path / "book.txt"), "--ngram-train",
                 str(tmp_path / "book.txt"), "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["chars"] == len(TEXT) and figures["nats_per_char"] > 0 and figures["ngram"]["nats_per_char"] > 0
    assert main(["evaluate", str(folders["lm"])]) == 2  # neither --dataset nor --text


def test_evaluate_names_a_datasets_classes_as_the_model_does(folders, tmp_path, capsys):
    """String labels were given the model's names by sorted position: another dataset's classes were scored
    against the wrong ones (0 % and no error). They are now matched by name, or refused."""
    import json
    import shutil

    from seqhf.cli.app import main
    from seqhf.inference.saved_folder import INCOMPLETE_MARKER

    def figures(labels, name):
        rows = ["text,label"] + [f"{'the island' if i % 2 else 'a ship at sea'} {i},{labels[i % 2]}" for i in range(120)]
        (tmp_path / f"{name}.csv").write_text("\n".join(rows) + "\n")
        code = main(["evaluate", str(folders["clf"]), "--dataset", str(tmp_path / f"{name}.csv"), "--no-baseline",
                     "--json", str(tmp_path / f"{name}.json")])
        return code, code == 0 and json.loads((tmp_path / f"{name}.json").read_text())

    code, by_position = figures(["0", "1"], "ids")  # integer labels take the model's names in order
    assert code == 0
    code, by_name = figures(["LABEL_0", "LABEL_1"], "names")  # the model's own names, sorted as they are
    assert code == 0 and by_name["accuracy"] == by_position["accuracy"]
    code, _ = figures(["Welt", "Sport"], "other")  # other classes: refused, not paired by position
    assert code == 1 and "are not the classes of" in capsys.readouterr().err
    cut = tmp_path / "cut"
    shutil.copytree(folders["clf"], cut)
    (cut / INCOMPLETE_MARKER).write_text("interrupted")
    assert main(["evaluate", str(cut), "--dataset", str(tmp_path / "names.csv"), "--no-baseline"]) == 1
    assert "is incomplete" in capsys.readouterr().err


def test_evaluate_label_names_give_integer_labels_in_another_order_the_models_classes(folders, tmp_path, capsys):
    """docs/cli.md: `--label-names` when the dataset's labels are numbers in another order. Naming them so was
    refused ("classes ['LABEL_1', 'LABEL_0'] are not the model's"): they are now put in the model's order.
    The classifier always answers LABEL_1 by a wide margin (an untrained one's nearly tied logits flipped a text
    between two evaluations in CI), and two texts in three are LABEL_1: the right mapping scores about 2/3,
    the reversed one about 1/3."""
    import json

    import torch

    from transformers import AutoTokenizer

    from seqhf import SeqTransformerForSequenceClassification
    from seqhf.cli.app import main
    from seqhf.evaluation.saved import evaluate_classifier

    decided = tmp_path / "decided"
    model = SeqTransformerForSequenceClassification.from_pretrained(folders["clf"])
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 10.0]))
    model.save_pretrained(decided)
    AutoTokenizer.from_pretrained(folders["clf"]).save_pretrained(decided)

    def write(name, labels):
        rows = ["text,label"] + [f"{'the island' if i % 3 else 'a ship at sea'} {i},{labels[min(i % 3, 1)]}"
                                 for i in range(120)]
        (tmp_path / f"{name}.csv").write_text("\n".join(rows) + "\n")
        return tmp_path / f"{name}.csv"

    by_name = evaluate_classifier(decided, write("names", ["LABEL_0", "LABEL_1"]), baseline=False)  # a path alone
    assert by_name["accuracy"] > 0.5
    swapped = write("swapped", ["1", "0"])  # 1 is LABEL_0, 0 is LABEL_1
    assert main(["evaluate", str(decided), "--dataset", str(swapped), "--label-names", "LABEL_1,LABEL_0",
                 "--no-baseline", "--json", str(tmp_path / "swapped.json")]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "swapped.json").read_text())["accuracy"] == by_name["accuracy"]
    assert main(["evaluate", str(decided), "--dataset", str(swapped), "--label-names", "pos,neg",
                 "--no-baseline"]) == 1
    assert "are not the model's" in capsys.readouterr().err
    with pytest.raises(TypeError, match=r"^The data to evaluate on is a NoneType"):
        evaluate_classifier(decided, None)


def test_an_empty_list_classifies_to_nothing_and_a_utf16_text_is_named(folders, tmp_path, capsys):
    from seqhf.cli.app import main
    from seqhf.training.classifier import classify

    assert classify(folders["clf"], []) == []  # was an IndexError inside the pipeline
    (tmp_path / "book16.txt").write_bytes("The island, the island.".encode("utf-16"))
    assert main(["evaluate", str(folders["lm"]), "--text", str(tmp_path / "book16.txt")]) == 1
    assert "UTF-16" in capsys.readouterr().err  # not the latin1 advice


def test_evaluate_takes_the_split_names_and_configuration_train_classifier_took(folders, tmp_path, capsys):
    """A dataset whose splits are named otherwise was refused with "name one with --train-split", an option
    `seqhf evaluate` did not have; nor had it --dataset-config, which docs/own-data.md trains GLUE with."""
    import json

    from datasets import Dataset, DatasetDict

    from seqhf.cli.app import main

    def split(n):
        return Dataset.from_dict({"text": [f"{'the island' if i % 2 else 'a ship at sea'} {i}" for i in range(n)],
                                  "label": [i % 2 for i in range(n)]})

    DatasetDict(training=split(40), holdout=split(10)).save_to_disk(tmp_path / "renamed")
    args = ["evaluate", str(folders["clf"]), "--dataset", str(tmp_path / "renamed"), "--no-baseline"]
    assert main(args) == 1 and "--train-split" in capsys.readouterr().err
    out = tmp_path / "figures.json"
    assert main([*args, "--train-split", "training", "--test-split", "holdout", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["evaluated_on"] == "test" and figures["examples"] == 10
    assert main([*args, "--train-split", "training", "--split", "holdout"]) == 1  # a split is named by its role
    assert "--test-split" in capsys.readouterr().err
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "train.csv").write_text("text,label\na ship at sea,0\nthe island,1\n" * 10)
    assert main(["evaluate", str(folders["clf"]), "--dataset", str(tmp_path / "csvs"), "--no-baseline",
                 "--dataset-config", "nope"]) == 1
    assert "'nope' not found" in capsys.readouterr().err  # the configuration reached datasets


def test_evaluate_scores_the_validation_texts_the_run_carved_not_a_fresh_carve(folders, tmp_path):
    """A dataset without a test split was scored on a fresh carve (10 %, seed 42): after `--seed 7` 28 of its 30
    rows had been training rows, and the figure was silently inflated. The run's own carve is now used."""
    import json
    import shutil

    from seqhf.evaluation.saved import evaluate_classifier, training_carve

    rows = ["text,label"] + [f"{'the island' if i % 2 else 'a ship at sea'} {i},{i % 2}" for i in range(120)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    folder = tmp_path / "clf"
    shutil.copytree(folders["clf"], folder)
    carved = {"source": str(tmp_path / "d.csv"), "config": None, "validation_carved_from_train": True,
              "split_sizes": {"train": 100, "validation": 20}}
    (folder / "eval_results.json").write_text(json.dumps({"seed": 7, "data": carved}))
    spec = dict(source=str(tmp_path / "d.csv"), label_names=["LABEL_0", "LABEL_1"])
    assert training_carve(folder, spec) == {"validation_size": 20, "seed": 7}
    figures = evaluate_classifier(folder, spec, baseline=False)
    assert figures["evaluated_on"] == "validation" and figures["examples"] == 20  # not 12, 10 % of 120
    assert evaluate_classifier(folder, dict(spec, seed=42), baseline=False)["examples"] == 20  # the caller's seed wins
    (tmp_path / "other.csv").write_text("\n".join(rows) + "\n")  # other data: its own carve
    assert training_carve(folder, dict(spec, source=str(tmp_path / "other.csv"))) == {}


def test_evaluate_says_a_dataset_that_does_not_load_is_one(folders, tmp_path, capsys):
    """An unreachable or unreadable dataset was reported as classes that do not fit it."""
    from seqhf.cli.app import main

    (tmp_path / "d.csv").write_text("text\nno label column here\n")
    assert main(["evaluate", str(folders["clf"]), "--dataset", str(tmp_path / "d.csv")]) == 1
    error = capsys.readouterr().err
    assert "label" in error and "classes" not in error, error


@pytest.mark.parametrize("minutes", ["0", "-1"])
def test_train_lm_refuses_a_time_budget_that_is_not_positive(tmp_path, capsys, minutes):
    """`--time-budget-min 0` trained without a budget (the library refuses a budget of 0 s), and -1 was refused as
    "got -60.0 s", an option nobody gave."""
    from seqhf.cli.app import main

    assert main(["train", "lm", "--output-dir", str(tmp_path / "out"), "--dataset", str(tmp_path / "never-read"),
                 "--time-budget-min", minutes]) == 2
    assert f"--time-budget-min: must be positive, got {minutes}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_json_into_a_missing_folder_is_refused_before_the_evaluation(folders, tmp_path, capsys):
    """`--json /no/such/dir/x.json` was found after the evaluation (minutes), as "[Errno 2] No such file"."""
    from seqhf.cli.app import main

    (tmp_path / "book.txt").write_text(TEXT)
    assert main(["evaluate", str(folders["lm"]), "--text", str(tmp_path / "book.txt"), "--json",
                 str(tmp_path / "no" / "x.json")]) == 2
    out, err = capsys.readouterr()
    assert "nats/char" not in out and "no folder" in err and "--json" in err
    assert main(["baseline", "tfidf", "--dataset", str(tmp_path / "never-read.csv"), "--json",
                 str(tmp_path / "no" / "x.json")]) == 2


def test_baseline_ngram_reads_its_add_to_files_before_fitting(tmp_path, capsys):
    """`--add-to` a JSON list was an AttributeError traceback, a file that is not JSON an error without its name,
    and a missing file was found only after the n-gram was fitted (minutes on a book)."""
    import json

    from seqhf.cli.app import main
    from seqhf.training.charlm_inputs import load_corpus

    (tmp_path / "book.txt").write_text(TEXT * 3)
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{not json")
    for name, message in (("list.json", "holds a JSON list, not a char-LM run's eval_results.json"),
                          ("broken.json", "broken.json is not a JSON file")):
        assert main(["baseline", "ngram", "--text", str(tmp_path / "book.txt"), "--add-to", str(tmp_path / name)]) == 1
        out, err = capsys.readouterr()
        assert "Kneser-Ney" not in out and err.count("\n") == 1 and message in err, err
    assert main(["baseline", "ngram", "--text", str(tmp_path / "book.txt"), "--add-to", str(tmp_path / "no.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    corpus = load_corpus([str(tmp_path / "book.txt")])
    run = dict(task="charlm", train_chars=int(len(corpus.train) * 0.95), heldout_chars=len(corpus.heldout))
    (tmp_path / "eval_results.json").write_text(json.dumps(run))
    assert main(["baseline", "ngram", "--text", str(tmp_path / "book.txt"), "--order", "3", "--add-to",
                 str(tmp_path / "eval_results.json")]) == 0
    assert json.loads((tmp_path / "eval_results.json").read_text())["ngram"]["order"] == 3


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "scripts").glob("*.sh")))
def test_shell_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(REPO / "scripts" / script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("args", [[], ["bogus", "out"], ["start"]], ids=["nothing", "bad phase", "no OUT"])
def test_gpu_session_refuses_bad_arguments_before_doing_anything(args, tmp_path):
    """The GPU session script wipes and rebuilds its work folder: bad arguments must stop it first."""
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_session.sh"), *args], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("usage: gpu_session.sh start|finish OUT")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["train", "classifier", "--dataset", "d", "--output-dir", "o"], ["env"]])
def test_ctrl_c_is_one_line_that_says_how_a_run_goes_on(args, monkeypatch, capsys):
    """typer turns Ctrl-C into an exit code 130 that click returns without a word: the user saw nothing."""
    from seqhf.cli import app, train

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "start_run", interrupted)
    monkeypatch.setattr("platform.python_version", interrupted)  # in the middle of `seqhf env`
    code = app.main(args)
    err = capsys.readouterr().err
    assert code == 130 and err.startswith("error: aborted (interrupted)."), err
    assert ("--resume" in err) == (args[0] == "train")
    # Said once in a run of several processes: by `seqhf`, which started them, or else by the main process.
    for name, value in (("SEQHF_RELAUNCHED", "1"), ("RANK", "1")):
        with monkeypatch.context() as env:
            env.setenv(name, value)
            assert app.main(args) == 130 and capsys.readouterr().err == ""
