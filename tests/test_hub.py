"""Model cards and Hub publishing (issue 6). No network: HfApi is replaced by a recorder."""

import inspect
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.utils import filter_repo_objects

from conftest import run_without_seqhf
from seqhf import SeqLSTMConfig, SeqLSTMForCausalLM, SeqLSTMForSequenceClassification
from seqhf.data.tokenization import build_char_tokenizer, build_word_tokenizer
from seqhf.hub import upload
from seqhf.hub import cards
from seqhf.hub import card_data

REVIEWS = [
    "a wonderful film , great acting and a moving story",
    "a terrible film , bad acting and a boring story",
    "great fun , I loved it",
    "boring and bad , I hated it",
]


# ------------------------------------------------------------------------------------------- fixtures
# TEST FIXTURE ONLY: the metrics below are invented so the card has something to show. Real folders get
# eval_results.json from seqhf.training at the end of a run.
def write_fake_eval_results(folder, task, num_parameters):
    results = {
        "task": task,
        "preset": "tiny-test",
        "quick": True,
        "model_type": "seqhf-lstm",
        "num_parameters": num_parameters,
        "seed": 1234,
        "max_grad_norm": 1.0,
        "epochs": 2,
        "train_args": {"learning_rate": 0.003, "per_device_train_batch_size": 4, "lr_scheduler_type": "linear"},
        "wall_time_s": 83.4,
        "hardware": "test fixture CPU",
    }
    if task == "classification":
        per_class = {"negative": {"precision": 0.75, "recall": 0.875, "f1": 0.8077, "support": 8},
                     "positive": {"precision": 0.8571, "recall": 0.75, "f1": 0.80625, "support": 8}}
        results |= {
            "dataset": "../shared/data/imdb", "test_accuracy": 0.8125, "test_f1": 0.80625, "test_examples": 16,
            "test_macro_f1": 0.8069, "test_per_class": per_class, "evaluated_on": "test",
            "labels": ["negative", "positive"], "multi_label": False, "evaluation_reads": "whole texts",
            "vocab_size": 19, "max_length": 32, "truncation": "head", "train_examples": 20, "validation_examples": 4,
            "test_loss": 0.4375, "best_validation_metric": "accuracy", "best_validation_value": 0.75,
            "data": {"source": "../shared/data/imdb", "config": None, "text_column": "text", "label_column": "label",
                     "split_names": {"train": "train", "test": "test"}, "validation_carved_from_train": True,
                     "split_sizes": {"train": 20, "validation": 4, "test": 16}, "unlabelled_texts": 0},
        }  # fmt: skip
    else:
        results |= {
            "dataset": "gutenberg-1268",
            "heldout_nats_per_char": 1.5,
            "heldout_bits_per_char": 1.5 / 0.6931471805599453,
            "heldout_window_nats_per_char": 1.625,
            "heldout_stream_nats_per_char": 1.5,
            "heldout_chars": 12345,
            "train_chars": 100000,
            "validation_chars": 5000,
            "tbptt": "stateful",
            "seq_len": 40,
            "unigram_entropy_nats": 3.125,
        }
    (Path(folder) / "eval_results.json").write_text(json.dumps(results, indent=2))
    return results


def write_fake_trainer_state(folder, eval_key):
    history = []
    for step in (1, 2, 3, 4):
        history.append({"step": step, "epoch": step / 2, "loss": 0.7 - 0.05 * step, "learning_rate": 1e-3})
        if step % 2 == 0:
            history.append({"step": step, "epoch": step / 2, "eval_loss": 0.69 - 0.04 * step, eval_key: 0.5 + 0.1 * step})
    (Path(folder) / "trainer_state.json").write_text(json.dumps({"log_history": history, "max_steps": 4}))


def make_sentiment_folder(folder, card=True):
    folder = Path(folder)
    tok = build_word_tokenizer(REVIEWS, vocab_size=64, min_frequency=1, model_max_length=32)
    config = SeqLSTMConfig(
        vocab_size=len(tok), embedding_size=8, hidden_size=8, bidirectional=True, pooling="concat",
        num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
        pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = SeqLSTMForSequenceClassification(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    write_fake_eval_results(folder, "classification", model.num_parameters())
    write_fake_trainer_state(folder, "eval_accuracy")
    if card:
        cards.write_model_card(folder, repo_id="someone/tiny-imdb")
    return folder


def make_charlm_folder(folder):
    folder = Path(folder)
    tok = build_char_tokenizer("The engineer looked at the island. Then the sailor spoke!")
    config = SeqLSTMConfig(
        vocab_size=len(tok), embedding_size=8, hidden_size=8, is_decoder=True,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = SeqLSTMForCausalLM(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    write_fake_eval_results(folder, "charlm", model.num_parameters())
    write_fake_trainer_state(folder, "eval_bits_per_char")
    cards.write_model_card(folder)
    return folder


@pytest.fixture
def sentiment_dir(tmp_path):
    return make_sentiment_folder(tmp_path / "tiny-imdb")


def card_metadata(folder):
    text = (Path(folder) / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


class _FakeApi:
    """Stands in for HfApi at the network boundary: records the calls, checks each against HfApi's real
    signature, and lists the files upload_folder would send exactly as HfApi does (same filter)."""

    def __init__(self):
        self.calls = []

    def _record(self, name, *args, **kwargs):
        inspect.signature(getattr(HfApi, name)).bind(self, *args, **kwargs)  # TypeError on a wrong call
        self.calls.append((name, args, kwargs))

    def create_repo(self, *args, **kwargs):
        self._record("create_repo", *args, **kwargs)

    def create_branch(self, *args, **kwargs):
        self._record("create_branch", *args, **kwargs)

    def upload_folder(self, **kwargs):
        self._record("upload_folder", **kwargs)
        from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS

        folder = Path(kwargs["folder_path"]).resolve()
        relpaths = [p.relative_to(folder).as_posix() for p in sorted(folder.glob("**/*")) if p.is_file()]
        ignore = list(kwargs.get("ignore_patterns") or []) + DEFAULT_IGNORE_PATTERNS
        self.uploaded = list(filter_repo_objects(relpaths, allow_patterns=kwargs.get("allow_patterns"), ignore_patterns=ignore))
        return "https://huggingface.co/fake/commit/0"

    def names(self):
        return [name for name, _, _ in self.calls]


# ---------------------------------------------------------------------------------------------- cards
def test_sentiment_card_yaml_and_model_index_round_trip(sentiment_dir):
    results = json.loads((sentiment_dir / "eval_results.json").read_text())
    meta, text = card_metadata(sentiment_dir)
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "text-classification"
    assert meta["license"] == "apache-2.0" and meta["language"] == "en"
    assert meta["datasets"] == ["stanfordnlp/imdb"]
    assert set(meta["metrics"]) == {"accuracy", "f1"}
    assert "seqhf" in meta["tags"] and "quick-run" in meta["tags"]

    card = ModelCard.load(sentiment_dir / "README.md")
    got = {(e.task_type, e.dataset_type, e.dataset_split, e.metric_type) + (("Test macro-F1",) if "macro" in e.metric_name else ()):
           e.metric_value for e in card.data.eval_results}
    assert got == {
        ("text-classification", "stanfordnlp/imdb", "test", "accuracy"): results["test_accuracy"],
        ("text-classification", "stanfordnlp/imdb", "test", "f1"): results["test_f1"],
        ("text-classification", "stanfordnlp/imdb", "test", "f1", "Test macro-F1"): results["test_macro_f1"],
    }
    # the body: what the model is, how it was trained, what it scored, how to use it
    for needle in (
        f"{results['num_parameters']:,}",
        "bidirectional LSTM 8",
        "Maas",
        "P11-1015",
        "`max_grad_norm`):** 1",
        "**Seed:** 1234",
        "**Epochs:** 2",
        "On 16 texts of the test split, which training never saw:",
        "the figures a user of this folder gets through `pipeline(...)`",
        "| `positive` | 0.857 | 0.750 | 0.806 | 8 |",
        "read from a local copy in the same layout",
        "This model trained on 20 reviews and was validated on 4.",
        "19 entries\n- **Length:** evaluation and `pipeline(...)` read whole texts (an RNN has no length limit); "
        "training texts were cut to 32 tokens (`head`) for speed",
        "| cross-entropy loss (nats) | 0.4375 |",
        "| best validation accuracy during training | 75.00 % |",
        "81.25 %",
        "| F1 (`positive`) | 0.806",
        "# tiny-imdb\n",
        "test fixture CPU",
        "1 min 23 s",
        "trust_remote_code=True",
        'pipeline("text-classification", model="someone/tiny-imdb"',
        "AutoModelForSequenceClassification",
        "`negative` or `positive`",
        "IMDb keeps only clearly polarised reviews",
        "Quick run",
        "![Training and evaluation curves](training_curves.png)",
    ):
        assert needle in text, needle
    assert "../shared" not in text  # a local data path is not published
    png = sentiment_dir / "training_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_card_renders_without_matplotlib(tmp_path, monkeypatch, capsys):
    from seqhf.hub import plots

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # `import matplotlib...` now raises ImportError
    monkeypatch.setattr(plots, "_SAID_SKIPPED", [])
    assert plots.figure_class() is None and plots.figure_class() is None
    assert capsys.readouterr().err.count('figures skipped (matplotlib is not installed): pip install "seqhf[plots]"') == 1
    folder = make_sentiment_folder(tmp_path / "nompl")
    meta, text = card_metadata(folder)
    assert not (folder / "training_curves.png").exists()
    assert "matplotlib is not installed" in text and "training_curves.png" not in text
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.8125
    upload.validate_repo_folder(folder)  # still a complete repository


def test_charlm_card(tmp_path):
    folder = make_charlm_folder(tmp_path / "tiny-island")
    results = json.loads((folder / "eval_results.json").read_text())
    meta, text = card_metadata(folder)
    assert meta["pipeline_tag"] == "text-generation"
    assert "datasets" not in meta  # no Hub dataset for the book: cited in the text instead
    card = ModelCard.load(folder / "README.md")
    values = {e.metric_name: e.metric_value for e in card.data.eval_results}
    assert values["Held-out bits per character"] == pytest.approx(results["heldout_bits_per_char"])
    assert values["Held-out nats per character, one stream"] == results["heldout_stream_nats_per_char"]
    assert {e.dataset_name for e in card.data.eval_results} == {"The Mysterious Island (Project Gutenberg #1268)"}
    for needle in (
        "Project Gutenberg eBook #1268",
        "https://www.gutenberg.org/ebooks/1268",
        "`stateful`: each batch row continues the text",
        "trained\non 100,000 characters and was validated on the next 5,000",
        "Held-out nats per character, 40-character windows",
        "**Sequence length:** 40",
        "| nats per character (read as one stream) | 1.5000 |",
        "| 3.1250 |",
        "12,345 characters",
        'pipeline("text-generation", model="./tiny-island"',
        "AutoModelForCausalLM",
        "19th-century",
    ):
        assert needle in text, needle


def test_charlm_card_without_stream_metric(tmp_path):
    folder = make_charlm_folder(tmp_path / "gpt-like")
    results = json.loads((folder / "eval_results.json").read_text())
    del results["heldout_stream_nats_per_char"]
    results["tbptt"] = "windows"
    results["heldout_nats_per_char"] = results["heldout_window_nats_per_char"]
    (folder / "eval_results.json").write_text(json.dumps(results))
    cards.write_model_card(folder)
    _, text = card_metadata(folder)
    assert "one stream" not in text and "`windows`: independent windows of 40 characters, each read from a zero state" in text
    assert "| nats per character (windows of 40) | 1.6250 |" in text
    assert "`pooling`" not in text  # classifier-only config fields are not shown for a causal LM
    assert len(ModelCard.load(folder / "README.md").data.eval_results) == 2  # bits, and nats of the windows once


def test_curves_from_last_checkpoint_when_state_not_saved(sentiment_dir):
    (sentiment_dir / "trainer_state.json").unlink()
    for step, acc in ((2, 0.625), (10, 0.875)):  # 10 is the last checkpoint, though "checkpoint-2" sorts after it
        (sentiment_dir / f"checkpoint-{step}").mkdir()
        history = [{"step": step, "epoch": 1.0, "loss": 0.5}, {"step": step, "epoch": 1.0, "eval_loss": 0.4, "eval_accuracy": acc}]
        (sentiment_dir / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    cards.write_model_card(sentiment_dir)
    _, text = card_metadata(sentiment_dir)
    assert "| 1 | 10 | 0.875 | 0.4 |" in text and "0.625" not in text
    assert (sentiment_dir / "training_curves.png").is_file()


def test_architecture_line_per_model_type():
    from seqhf.models.transformer.configuration_transformer import SeqTransformerConfig

    lstm = SeqLSTMConfig(num_hidden_layers=2, rnn_type="gru", classifier_hidden_size=64, pooling="max").to_dict()
    lstm["architectures"] = ["SeqLSTMForSequenceClassification"]
    assert card_data.describe_architecture(lstm) == (
        "embedding 128 → 2 × GRU 256 → max pooling → dense 64 (relu) → linear classifier (2 labels)"
    )
    gpt = SeqTransformerConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, is_decoder=True).to_dict()
    gpt["architectures"] = ["SeqTransformerForCausalLM"]
    line = card_data.describe_architecture(gpt)
    assert "2 × pre-norm Transformer layer (2 heads" in line and line.endswith("linear head over 30000 tokens")
    assert card_data.describe_architecture({"model_type": "bert", "architectures": ["BertModel"]}) == "BertModel (`bert`)"


def test_card_needs_results_and_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="eval_results.json"):
        cards.write_model_card(tmp_path)
    write_fake_eval_results(tmp_path, "classification", 10)
    with pytest.raises(FileNotFoundError, match="config.json"):
        cards.write_model_card(tmp_path)


# ------------------------------------------------------------------------------------ validation/push
def test_dry_run_lists_complete_repository(sentiment_dir, capsys):
    (sentiment_dir / "training_args.bin").write_bytes(b"pickle")  # Trainer bookkeeping: never uploaded
    (sentiment_dir / "checkpoint-2").mkdir()
    (sentiment_dir / "checkpoint-2" / "optimizer.pt").write_bytes(b"pickle")
    assert _push_to_hub_main()([str(sentiment_dir), "--repo-id", "someone/tiny-imdb", "--dry-run"]) == 0
    out = capsys.readouterr().out
    expected = sorted(
        ["README.md", "config.json", "configuration_lstm.py", "modeling_lstm.py", "model.safetensors",
         "tokenizer.json", "tokenizer_config.json", "eval_results.json", "trainer_state.json", "training_curves.png"]
    )  # fmt: skip
    listed = [line.split()[0] for line in out.splitlines()[1:-1]]
    assert listed == expected
    for name in expected:
        size = (sentiment_dir / name).stat().st_size
        assert any(line.split()[0] == name and f"{size:,} bytes" in line for line in out.splitlines()), name
    assert f"{len(expected)} files" in out.splitlines()[-1]


def test_upload_with_fake_api(sentiment_dir, tmp_path):
    (sentiment_dir / "training_args.bin").write_bytes(b"pickle")
    api = _FakeApi()
    planned = [f.path for f in upload.push_folder(sentiment_dir, "someone/tiny-imdb", dry_run=True)]
    for bad in ("bad repo id!!", "a/b/c", ""):  # refused even by a dry run, which otherwise passed with exit 0
        with pytest.raises(ValueError, match="is not a Hub repository id"):
            upload.push_folder(sentiment_dir, bad, dry_run=True)
    upload.push_folder(
        sentiment_dir, "someone/tiny-imdb", private=True, revision="v1", commit_message="First model", api=api
    )
    assert api.names() == ["create_repo", "create_branch", "upload_folder"]
    (_, args, kwargs) = api.calls[0]
    assert args == ("someone/tiny-imdb",) and kwargs["exist_ok"] is True and kwargs["private"] is True
    assert api.calls[1][2]["branch"] == "v1" and api.calls[1][2]["exist_ok"] is True
    uploaded = api.calls[2][2]
    assert uploaded["repo_id"] == "someone/tiny-imdb"
    assert uploaded["revision"] == "v1" and uploaded["commit_message"] == "First model"
    assert api.uploaded == planned and "training_args.bin" not in api.uploaded

    # the exact uploaded set, copied to a fresh folder, loads without seqhf through pipeline()
    repo = tmp_path / "hub_copy"
    for rel in api.uploaded:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sentiment_dir / rel, repo / rel)
    out = run_without_seqhf(
        f"""
        from transformers import pipeline
        clf = pipeline("text-classification", model={str(repo)!r}, trust_remote_code=True)
        preds = clf(["a wonderful film", "a boring story"])
        print(sorted({{p["label"] for p in preds}} | {{"negative", "positive"}}))
        print(type(clf.model).__name__)
        """,
        cwd=tmp_path,
    )
    assert out.split("\n")[:2] == ["['negative', 'positive']", "SeqLSTMForSequenceClassification"]


def test_pushed_card_loads_the_model_from_the_repo_not_the_local_folder(sentiment_dir):
    """`seqhf push` uploaded the card as training wrote it, whose snippets load `"./tiny-imdb"`: a reader of the
    Hub page copied a path to a folder they do not have. A dry run leaves the folder as it is."""
    from seqhf.hub.cards import write_model_card

    card = write_model_card(sentiment_dir)  # as training writes it: no repo id yet
    assert 'model="./tiny-imdb"' in card.read_text()
    upload.push_folder(sentiment_dir, "someone/tiny-imdb", dry_run=True)
    assert 'model="./tiny-imdb"' in card.read_text()
    upload.push_folder(sentiment_dir, "someone/tiny-imdb", api=_FakeApi())
    text = card.read_text()
    assert '"./tiny-imdb"' not in text and 'pipeline("text-classification", model="someone/tiny-imdb"' in text
    assert 'from_pretrained("someone/tiny-imdb", trust_remote_code=True)' in text


def test_main_branch_needs_no_new_branch(sentiment_dir):
    api = _FakeApi()
    upload.push_folder(sentiment_dir, "tiny-imdb", api=api)
    assert api.names() == ["create_repo", "upload_folder"]
    assert api.calls[0][2]["private"] is None  # not --private: the account's default visibility
    assert api.calls[1][2]["revision"] is None and "tiny-imdb" in api.calls[1][2]["commit_message"]


def test_incomplete_folder_refused_with_list(sentiment_dir, monkeypatch):
    for name in ("model.safetensors", "tokenizer.json", "modeling_lstm.py", "README.md"):
        (sentiment_dir / name).unlink()
    (sentiment_dir / "pytorch_model.bin").write_bytes(b"pickle")
    api = _FakeApi()
    monkeypatch.setattr(upload, "HfApi", lambda *a, **k: api)
    with pytest.raises(upload.FolderNotReadyError) as info:
        upload.push_folder(sentiment_dir, "someone/tiny-imdb", api=api)
    problems = "\n".join(info.value.problems)
    for name in ("model.safetensors", "tokenizer.json", "modeling_lstm.py", "README.md", "pytorch_model.bin"):
        assert name in problems, name
    assert "nothing was uploaded" in str(info.value)
    assert api.calls == []


def test_config_without_auto_map_refused(sentiment_dir):
    config = json.loads((sentiment_dir / "config.json").read_text())
    del config["auto_map"]
    (sentiment_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(upload.FolderNotReadyError, match="auto_map"):
        upload.validate_repo_folder(sentiment_dir)


def test_a_file_given_as_the_folder_is_named_as_a_file(tmp_path, capsys):
    """`seqhf push afile --dry-run` said that the existing file does not exist."""
    (tmp_path / "afile").write_text("not a folder")
    assert _push_to_hub_main()([str(tmp_path / "afile"), "--repo-id", "someone/tiny", "--dry-run"]) == 1
    assert "afile is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(upload.FolderNotReadyError, match="nothere does not exist"):
        upload.validate_repo_folder(tmp_path / "nothere")


def test_missing_token_message(sentiment_dir, tmp_path, monkeypatch, capsys):
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-token"))
    called = []
    monkeypatch.setattr(upload, "HfApi", lambda *a, **k: called.append(1))
    with pytest.raises(upload.MissingTokenError, match="HF_TOKEN.*hf auth login"):
        upload.push_folder(sentiment_dir, "someone/tiny-imdb")
    assert called == []
    assert _push_to_hub_main()([str(sentiment_dir), "--repo-id", "someone/tiny-imdb"]) == 1
    assert "No Hugging Face token" in capsys.readouterr().err


def _push_to_hub_main():
    """`seqhf push ...` in this process."""
    from seqhf.cli.app import main

    return lambda argv: main(["push", *argv])


def test_unreachable_hub_is_a_one_line_error(sentiment_dir, monkeypatch, capsys):
    main = _push_to_hub_main()
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    # Offline mode on: huggingface_hub refuses every request.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert main([str(sentiment_dir), "--repo-id", "someone/tiny-imdb"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: offline mode is on") and err.count("\n") == 1, err
    # Online, but nothing answers at the endpoint (a closed local port): a connection error.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    assert main([str(sentiment_dir), "--repo-id", "someone/tiny-imdb"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the Hub at http://127.0.0.1:9") and err.count("\n") == 1, err


# ------------------------------------------------------------------------------------ Trainer push path
def test_trainer_push_path_carries_the_card(tmp_path, monkeypatch):
    """Trainer(push_to_hub=True, hub_strategy="checkpoint"): the checkpoint push and the final push both
    upload the seqhf card, not the Trainer's generic draft."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    import transformers.trainer as trainer_module

    out = tmp_path / "run"
    src = make_sentiment_folder(tmp_path / "src", card=False)
    tok_ids = [[2, 3, 4], [5, 6, 7], [2, 5], [6, 3]]
    data = Dataset.from_dict({"input_ids": tok_ids, "attention_mask": [[1] * len(t) for t in tok_ids], "labels": [1, 0, 1, 0]})
    model = SeqLSTMForSequenceClassification.from_pretrained(src)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(src)

    uploads = []

    class Api:
        def create_repo(self, repo_id, **kwargs):
            from huggingface_hub import RepoUrl

            return RepoUrl(f"https://huggingface.co/{repo_id}")

        def upload_folder(self, *, folder_path, run_as_future=False, path_in_repo=None, **kwargs):
            readme = Path(folder_path) / "README.md"
            uploads.append((path_in_repo, kwargs["commit_message"], readme.read_text() if readme.exists() else None))

            class Done:
                def done(self):
                    return True

                def is_done(self):
                    return True

            return Done()

    monkeypatch.setattr(trainer_module, "hf_api", lambda: Api(), raising=False)
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=2, num_train_epochs=1, save_strategy="steps", save_steps=2,
        logging_steps=1, push_to_hub=True, hub_model_id="someone/tiny-imdb", hub_strategy="checkpoint",
        report_to=[], use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    run_info = json.loads((src / "eval_results.json").read_text())
    for key in ("test_accuracy", "test_f1", "test_examples", "wall_time_s"):
        run_info.pop(key)
    with pytest.raises(ValueError, match="task"):
        cards.attach_model_card(trainer, {"preset": "no task"})
    cards.attach_model_card(trainer, run_info)
    trainer.train()
    assert uploads, "the Trainer pushed nothing"
    checkpoint_cards = [card for _, msg, card in uploads if msg.startswith("Training in progress")]
    assert checkpoint_cards and all(card and "Checkpoint: training in progress" in card for card in checkpoint_cards)
    assert any(path == "last-checkpoint" for path, _, _ in uploads)

    shutil.copy(src / "eval_results.json", out / "eval_results.json")  # training writes it at the end
    trainer.push_to_hub(commit_message="End of training")
    final = uploads[-1][2]
    assert "library_name: transformers" in final and "model-index" in final and "81.25 %" in final


def test_training_curves_show_scales_honestly_and_mark_the_final_figure():
    from seqhf.hub.plots import training_curves_figure

    history = [{"step": s, "loss": 0.5 - 0.01 * s} for s in range(1, 5)]
    history += [{"step": 2, "eval_loss": 0.3, "eval_accuracy": 0.900, "eval_f1": 0.901, "eval_perplexity": 3.2,
                 "eval_bits_per_char": 1.7},
                {"step": 4, "eval_loss": 0.29, "eval_accuracy": 0.903, "eval_f1": 0.902, "eval_perplexity": 3.1,
                 "eval_bits_per_char": 1.65}]
    fig = training_curves_figure(history, {"accuracy": (0.912, "test"), "loss": (0.28, "test")})
    by_title = {ax.get_title(): ax for ax in fig.axes}
    rates = by_title["Validation accuracy and F1"]
    low, high = rates.get_ylim()
    assert low == pytest.approx(0.8) and high == pytest.approx(1.0)  # a 0.3-point change does not fill the axis
    assert "Validation perplexity" in by_title and "Validation bits per char" in by_title  # not one shared axis
    labels = [text.get_text() for text in rates.get_legend().get_texts()]
    assert "test: 0.912" in labels  # the final figure is marked
    assert "test: 0.28" in [t.get_text() for t in by_title["Loss"].get_legend().get_texts()]


def test_card_says_whether_the_cores_were_quiet(sentiment_dir):
    assert "Hardware:** test fixture CPU\n" in (sentiment_dir / "README.md").read_text()  # not recorded: nothing said
    results = json.loads((sentiment_dir / "eval_results.json").read_text())
    for other, words in ((0.03, "quiet cores: other work kept 0.03 cores busy"),
                         (1.4, "cores shared with other work: other work kept 1.40 cores busy")):
        (sentiment_dir / "eval_results.json").write_text(json.dumps(dict(results, other_work_cores=other)))
        cards.write_model_card(sentiment_dir)
        assert words in (sentiment_dir / "README.md").read_text()


# ------------------------------------------------------------------------------ what each card says of its run
def make_wordlm_folder(folder, **results):
    """A word LM folder with a hand-written eval_results.json (the `cpu` preset's quick run by default)."""
    folder = Path(folder)
    SeqLSTMForCausalLM(SeqLSTMConfig(vocab_size=30, embedding_size=8, hidden_size=8, is_decoder=True)).save_pretrained(folder)
    results = {
        "task": "wordlm", "preset": "cpu", "quick": True, "model_type": "seqhf-lstm", "num_parameters": 1000,
        "dataset": "stanfordnlp/imdb", "seed": 42, "max_grad_norm": 1.0, "epochs": 1.0,
        "train_args": {"num_train_epochs": 1, "max_steps": -1}, "heldout_loss": 5.0, "heldout_perplexity": 148.4,
        "heldout_tokens": 9000, "heldout_reviews": 30, "train_tokens": 171326, "train_reviews": 600,
        "labelled_train_reviews": 0, "labelled_train_available": 22500, "unlabelled_reviews": 600,
        "unlabelled_available": 50000, "vocab_size": 3000, "seq_len": 30, "softmax": "sampled", "sampled_words": 256,
        "time_budget_s": None, "cpu_budget_s": None, "stopped_by_time_budget": False, "stopped_by_cpu_budget": False,
        "train_steps": 40, **results,
    }  # fmt: skip
    (folder / "eval_results.json").write_text(json.dumps(results))
    cards.write_model_card(folder)
    return card_metadata(folder)[1]


def rewrite_card(folder, **changes):
    results = json.loads((folder / "eval_results.json").read_text())
    (folder / "eval_results.json").write_text(json.dumps(dict(results, **changes)))
    cards.write_model_card(folder)
    return card_metadata(folder)


def test_word_lm_card_says_which_reviews_it_read(tmp_path):
    text = " ".join(make_wordlm_folder(tmp_path / "cpu-quick").split())  # as one line: the sentence wraps
    assert ("the model trained on 600 reviews (171,326 tokens): none of its 22,500 labelled training reviews "
            "(the training split less a validation part carved out with a fixed seed) and 600 of its 50,000 "
            "unlabelled reviews; never the validation or test reviews") in text
    text = " ".join(make_wordlm_folder(tmp_path / "lstm", preset="lstm", quick=False, train_reviews=72500,
                                       labelled_train_reviews=22500, unlabelled_reviews=50000).split())
    assert "all 22,500 of its labelled training reviews" in text and "all 50,000 of its unlabelled reviews" in text
    text = " ".join(make_wordlm_folder(tmp_path / "old", labelled_train_reviews=None).split())
    assert "this run did not record how many came from each" in text


def test_word_lm_card_of_imdb_is_the_same_with_its_data_recorded(tmp_path):
    """Runs now record what they read (`data`); an IMDb run's card says what it said before, word for word."""
    before = make_wordlm_folder(tmp_path / "lm")
    for source in ("stanfordnlp/imdb", "../shared/data/imdb"):
        recorded = make_wordlm_folder(tmp_path / "lm", data=dict(source=source, layout="imdb", text_column="text"))
        assert recorded == before
    assert "IMDb" in before and "imdb" in card_metadata(tmp_path / "lm")[0]["tags"]
    other = make_wordlm_folder(tmp_path / "lm", data=dict(source="someone/reviews", layout="imdb", text_column="text"))
    assert "`someone/reviews`, in the stanfordnlp/imdb layout: the model trained on 600 reviews" in other
    assert "IMDb" not in other and card_metadata(tmp_path / "lm")[0]["datasets"] == ["someone/reviews"]


def test_every_card_loads_its_tokenizer_with_trust_remote_code(tmp_path, sentiment_dir):
    texts = [make_wordlm_folder(tmp_path / "lm"), card_metadata(make_charlm_folder(tmp_path / "char"))[1],
             card_metadata(sentiment_dir)[1]]
    for text in texts:
        loads = [line for line in text.splitlines() if "AutoTokenizer.from_pretrained(" in line]
        assert loads and all("trust_remote_code=True" in line for line in loads), loads
        assert "`AutoTokenizer` needs the flag too" in text


def test_budget_stop_is_on_the_card(tmp_path, sentiment_dir):
    assert "Stopped by a budget" not in card_metadata(sentiment_dir)[1]
    _, text = rewrite_card(sentiment_dir, cpu_budget_s=600, stopped_by_cpu_budget=True, train_steps=12, epochs=0.0088,
                           train_args={"num_train_epochs": 4, "max_steps": -1})
    assert ("> **Stopped by a budget.** Training was stopped by its CPU budget (600 CPU seconds of the process, setup "
            "included) after 12 steps (0.0088 epochs) of the 4 epochs planned") in text
    text = make_wordlm_folder(tmp_path / "lm", time_budget_s=900, stopped_by_time_budget=True, epochs=0.25,
                              train_args={"num_train_epochs": 1, "max_steps": 5000})
    assert "stopped by its time budget (900 seconds of training) after 40 steps (0.25 epochs) of the 5,000 steps planned" in text
    text = make_wordlm_folder(tmp_path / "lm-cpu", cpu_budget_s=120, stopped_by_cpu_budget=True)
    assert "stopped by its CPU budget (120 CPU seconds" in text and "time budget" not in text
    assert "Stopped by a budget" not in make_wordlm_folder(tmp_path / "lm-full", cpu_budget_s=120)


def test_fine_tuned_classifier_card_says_so(sentiment_dir):
    scratch = card_metadata(sentiment_dir)[1]
    trained_on = json.loads((sentiment_dir / "eval_results.json").read_text())["train_examples"]
    assert trained_on != 25_000  # a small run: the card gave every run IMDb's 25,000
    assert "trained from scratch on IMDb" in scratch and f"trained from scratch on {trained_on:,} reviews" in scratch
    assert "vocabulary built from the training texts" in scratch
    lm = {"path": "runs/lm", "preset": "cpu", "heldout_perplexity": 120.3, "train_tokens": 171326, "train_reviews": 600}
    for data in ({}, {"dataset": "someone/news", "data": dict(json.loads((sentiment_dir / "eval_results.json").read_text())["data"],
                                                            source="someone/news")}):
        _, text = rewrite_card(sentiment_dir, init_from=lm, **data)
        assert "from scratch" not in text and "vocabulary built from the training texts" not in text
        assert "the language model's (word-level" in text and "fine-tuned on" in text
        assert "from a word-level language model" in " ".join(text.split())
        assert "trained on 171,326 tokens (600 reviews, never validation or test ones)" in text
        assert "training and unlabelled reviews" not in text
    assert "A text classifier fine-tuned on `someone/news` from a pretrained word-level LSTM language model" in text


def test_charlm_card_names_the_samples_code(tmp_path):
    from seqhf.evaluation.charlm import samples  # noqa: F401  (the function the card names)

    folder = make_charlm_folder(tmp_path / "char")
    _, text = rewrite_card(folder, samples=[{"prompt": "The ", "text": "engineer", "temperature": 0.8, "seed": 1}])
    assert "(`seqhf.evaluation.charlm.samples`)" in text and "charlm_eval" not in text


def test_multi_label_card_gives_f1_as_f1_and_each_figure_once(sentiment_dir):
    meta, text = rewrite_card(sentiment_dir, multi_label=True, multi_label_threshold=0.5, test_f1=0.1875,
                              test_macro_f1=0.1875, test_micro_f1=0.3, best_validation_metric="macro_f1",
                              kept_model="final epoch", kept_validation_value=0.2302)
    assert "| validation macro-F1 of the saved model" in text and "| 0.2302 |" in text and "23.02 %" not in text
    assert "| macro-F1 | 0.1875 |" in text
    metrics = meta["model-index"][0]["results"][0]["metrics"]
    assert [(m["name"], m["value"]) for m in metrics] == [("Test accuracy", 0.8125), ("Test macro-F1", 0.1875)]
    _, text = rewrite_card(sentiment_dir, kept_model="best validation epoch", best_validation_value=0.25)
    assert "| best validation macro-F1 during training | 0.2500 |" in text
    # one label per text: accuracy stays a percentage, the binary F1 is the positive label's
    meta, text = rewrite_card(sentiment_dir, multi_label=False, best_validation_metric="accuracy", test_f1=0.80625,
                              test_macro_f1=0.8069)
    assert "| best validation accuracy during training | 25.00 % |" in text
    metrics = meta["model-index"][0]["results"][0]["metrics"]
    assert [m["name"] for m in metrics] == ["Test accuracy", "Test F1 (positive)", "Test macro-F1"]


def test_charlm_card_lists_each_figure_once(tmp_path):
    folder = make_charlm_folder(tmp_path / "char")
    meta, text = card_metadata(folder)
    metrics = meta["model-index"][0]["results"][0]["metrics"]
    assert [(m["name"], m["value"]) for m in metrics] == [
        ("Held-out bits per character", pytest.approx(1.5 / 0.6931471805599453)),
        ("Held-out nats per character, one stream", 1.5),
        ("Held-out nats per character, 40-character windows", 1.625),
    ]
    assert text.count("| 1.5000 |") == 1 and "| nats per character (read as one stream) | 1.5000 |" in text


def test_streaming_run_says_it_fitted_no_baseline(sentiment_dir):
    assert "--streaming" not in card_metadata(sentiment_dir)[1]
    _, text = rewrite_card(sentiment_dir, streaming=True)
    assert "- **Streaming** (`--streaming`" in text and "baseline" in text and "was therefore not fitted" in text


def test_card_of_a_missing_folder_says_the_folder_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nonexist does not exist"):
        cards.write_model_card(tmp_path / "nonexist")


@pytest.mark.parametrize("shape", [(300, 300), (100, 2, 2)])
def test_a_confusion_figure_of_many_classes_stays_small(shape, tmp_path):
    """1,000 classes made a 60,000-pixel figure with a million cell texts: the run was killed for memory before it
    saved its model. Many classes get a plain heat map of bounded size; label lists their first panels."""
    pytest.importorskip("matplotlib")
    import resource

    from PIL import Image

    from seqhf.hub.plots import MAX_FIGURE_INCHES, MAX_LABEL_PANELS, PANELS_A_ROW, plot_confusion_matrix

    matrix = np.random.default_rng(0).integers(0, 50, size=shape)
    names = [f"class {i}" for i in range(shape[0])]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    path = plot_confusion_matrix(matrix, names, tmp_path / "confusion.png", title="test split")
    width, height = Image.open(path).size
    if len(shape) == 2:
        assert width <= MAX_FIGURE_INCHES * 100 and height <= MAX_FIGURE_INCHES * 100
    else:
        assert width <= 2.8 * PANELS_A_ROW * 100 + 1 and height <= 2.8 * (MAX_LABEL_PANELS // PANELS_A_ROW) * 100 + 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # KiB: not gigabytes
