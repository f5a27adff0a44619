"""Training through Trainer (issue 4): clipping, stateful TBPTT, resume, two processes, quick presets, bad input."""

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value
from transformers import DataCollatorWithPadding, TrainerCallback, default_data_collator

from conftest import REPO, run_without_seqhf
from seqhf import SeqLSTMConfig, SeqLSTMForCausalLM, SeqLSTMForSequenceClassification
from seqhf.training.charlm import CharLMTrainer, StreamChunks, train_charlm
from seqhf.training.classifier_trainer import ClassifierTrainer, SentimentTrainer, trim_to_shortest
from seqhf.training.adversarial import EmbeddingPerturbation
from seqhf.training.classifier import train_sentiment
from seqhf.data.tokenization import truncate_ids
from seqhf.data.tokenization import build_word_tokenizer
from seqhf.training.common import SetupError, make_training_args

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
ENV.pop("PYTHONPATH", None)

TINY_SENTIMENT = dict(
    arch="lstm",
    model=dict(embedding_size=8, hidden_size=8, bidirectional=True, pooling="concat"),
    vocab_size=100, max_length=16, truncation="head", validation_size=0.25,
    train=dict(learning_rate=1e-2, epochs=2, batch_size=8, weight_decay=0.0, warmup=0.1, scheduler="linear",
               patience=5),
)
CLIP_TRAIN = dict(learning_rate=10.0, epochs=1, batch_size=4, weight_decay=0.0, warmup=0.0, scheduler="constant")
TINY_TRAIN = dict(learning_rate=0.1, epochs=1, batch_size=4, weight_decay=0.0, warmup=0.0, scheduler="constant")


def _reviews(n, seed):
    g = torch.Generator().manual_seed(seed)
    good, bad, filler = ["great", "fine", "superb"], ["awful", "bad", "dull"], ["the", "film", "a", "plot", "was"]
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = [filler[j] for j in torch.randint(0, len(filler), (int(torch.randint(3, 12, (1,), generator=g)),),
                                                  generator=g)]
        words.insert(int(torch.randint(0, len(words), (1,), generator=g)), (good if label else bad)[i % 3])
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def _write_imdb(folder, n_train=64, n_test=32, names=("neg", "pos"), train_labels=None, n_unused=0):
    folder.mkdir(parents=True, exist_ok=True)
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(names))})
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        texts, labels = _reviews(n, seed)
        if split == "train" and train_labels is not None:
            labels = train_labels(labels)
        Dataset.from_dict({"text": texts, "label": labels}, features=features).to_parquet(str(folder / f"{split}.parquet"))
    return folder


@pytest.fixture(scope="module")
def tiny_imdb(tmp_path_factory):
    return _write_imdb(tmp_path_factory.mktemp("imdb"), n_train=256, n_test=32)


# ------------------------------------------------------------------ clipping


def _one_step(tmp_path, max_grad_norm):
    """One SGD step of the Trainer on one batch; returns (params before, params after, logged grad_norm, batch)."""
    torch.manual_seed(0)
    config = SeqLSTMConfig(vocab_size=20, embedding_size=4, hidden_size=4, num_labels=2, pad_token_id=0)
    model = SeqLSTMForSequenceClassification(config)
    g = torch.Generator().manual_seed(1)
    rows = [{"input_ids": torch.randint(1, 20, (6,), generator=g), "labels": torch.tensor(i % 2)} for i in range(4)]
    args = make_training_args(tmp_path, CLIP_TRAIN, task="classification", max_grad_norm=max_grad_norm, max_steps=1,
                              optim="sgd", logging_steps=1, eval_strategy="no", save_strategy="no",
                              load_best_model_at_end=False, report_to="none", disable_tqdm=True)
    trainer = SentimentTrainer(model=model, args=args, train_dataset=rows, data_collator=default_data_collator)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    after = {n: p.detach().clone() for n, p in model.named_parameters()}
    logged = [h["grad_norm"] for h in trainer.state.log_history if "grad_norm" in h]
    return before, after, logged, default_data_collator(rows)


def _by_hand_update(before, batch, max_grad_norm, lr):
    torch.manual_seed(0)
    config = SeqLSTMConfig(vocab_size=20, embedding_size=4, hidden_size=4, num_labels=2, pad_token_id=0)
    model = SeqLSTMForSequenceClassification(config)
    model.load_state_dict(before)
    model(**batch).loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values())).item()
    scale = min(1.0, max_grad_norm / (norm + 1e-6)) if max_grad_norm > 0 else 1.0
    return {n: before[n] - lr * scale * grads[n] for n in before}, norm


@pytest.mark.parametrize("max_grad_norm", [1e-4, 0.0])
def test_clipping_matches_update_by_hand(tmp_path, max_grad_norm):
    before, after, logged, batch = _one_step(tmp_path, max_grad_norm)
    expected, norm = _by_hand_update(before, batch, max_grad_norm, CLIP_TRAIN["learning_rate"])
    assert len(logged) == 1 and logged[0] == pytest.approx(norm, rel=1e-4)  # the pre-clip norm is logged
    if max_grad_norm > 0:
        assert logged[0] > 10 * max_grad_norm  # so clipping really acted
    moved = sum((after[n] - before[n]).norm() ** 2 for n in before).sqrt().item()
    lr = CLIP_TRAIN["learning_rate"]
    assert moved == pytest.approx(lr * (min(norm, max_grad_norm) if max_grad_norm else norm), rel=1e-3)
    for n in before:
        torch.testing.assert_close(after[n], expected[n], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ stateful TBPTT


def test_stream_chunks_rows_continue_from_batch_to_batch():
    ids = torch.arange(1000)
    data = StreamChunks(ids, seq_len=5, batch_size=3)
    batches = [[data[b * 3 + r] for r in range(3)] for b in range(len(data) // 3)]
    for prev, cur in zip(batches, batches[1:]):
        for r in range(3):
            assert cur[r]["input_ids"][0] == prev[r]["input_ids"][-1] + 1
            assert cur[r]["stream_position"] == prev[r]["stream_position"] + 1
            torch.testing.assert_close(cur[r]["shift_labels"], cur[r]["input_ids"] + 1)
    firsts = {int(b[r]["input_ids"][0]) for b in batches for r in range(3)}
    assert len(firsts) == len(data)  # no chunk twice


class _Spy:
    """Wraps a model's forward to record what each training call got and returned."""

    def __init__(self, model):
        self.calls, self._forward = [], model.forward
        model.forward = self

    def __call__(self, *args, **kwargs):
        out = self._forward(*args, **kwargs)
        self.calls.append((kwargs.get("initial_state"), tuple(s.detach().clone() for s in out.final_state),
                           kwargs["input_ids"].clone()))
        return out


def _lm_run(tmp_path, tbptt, steps=4, state_reset=0.0):
    torch.manual_seed(0)
    config = SeqLSTMConfig(vocab_size=11, embedding_size=6, hidden_size=8, pad_token_id=10, is_decoder=True)
    model = SeqLSTMForCausalLM(config)
    spy = _Spy(model)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 10, (2000,), generator=g)
    data = StreamChunks(ids, seq_len=8, batch_size=4)
    args = make_training_args(tmp_path / tbptt, TINY_TRAIN, task="charlm", max_steps=steps, logging_steps=1,
                              eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                              report_to="none", disable_tqdm=True, train_sampling_strategy="sequential")
    trainer = CharLMTrainer(model=model, args=args, train_dataset=data, data_collator=default_data_collator,
                            tbptt=tbptt, state_reset=state_reset)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return spy.calls, losses


def test_stateful_tbptt_carries_detached_state(tmp_path):
    calls, stateful_losses = _lm_run(tmp_path, "stateful")
    assert calls[0][0] is None  # the streams start from zero state
    for (_, prev_final, prev_ids), (initial, _, ids) in zip(calls, calls[1:]):
        assert initial is not None  # the next chunk sees the previous chunk's final state ...
        for carried, final in zip(initial, prev_final):
            torch.testing.assert_close(carried, final)
            assert carried.grad_fn is None and not carried.requires_grad  # ... detached: gradients stop here
    _, window_losses = _lm_run(tmp_path, "windows")
    assert stateful_losses[0] == pytest.approx(window_losses[0])  # same data, same start
    assert stateful_losses[1:] != pytest.approx(window_losses[1:], abs=1e-6)  # the carried state changes the loss


def test_state_reset_zeroes_whole_rows(tmp_path):
    torch.manual_seed(0)
    calls, _ = _lm_run(tmp_path, "stateful", steps=6, state_reset=0.5)
    rows_reset = rows_carried = 0
    for (_, prev_final, _), (initial, _, _) in zip(calls, calls[1:]):
        for carried, final in zip(initial, prev_final):
            for row in range(carried.shape[0]):
                if torch.count_nonzero(carried[row]) == 0:
                    rows_reset += 1  # this row starts from zero ...
                else:
                    rows_carried += 1  # ... the others carry the previous state unchanged
                    torch.testing.assert_close(carried[row], final[row])
    assert rows_reset > 0 and rows_carried > 0


def test_stateful_rejects_transformer():
    with pytest.raises(SetupError, match="stateful"):
        train_charlm("transformer", "/nonexistent.txt", "unused", tbptt="stateful")


# ------------------------------------------------------------------ resume


class _Killed(Exception):
    pass


class _KillAfterFirstSave(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        time.sleep(1.5)  # a first session that visibly takes time

    def on_save(self, args, state, control, **kwargs):
        raise _Killed(f"killed after saving step {state.global_step}")


def test_resume_reaches_same_metrics(tmp_path, tiny_imdb):
    full = train_sentiment(TINY_SENTIMENT, tiny_imdb, tmp_path / "full", report_to="none", disable_tqdm=True)
    with pytest.raises(_Killed):
        train_sentiment(TINY_SENTIMENT, tiny_imdb, tmp_path / "cut", report_to="none", disable_tqdm=True,
                        callbacks=[_KillAfterFirstSave()])
    (checkpoint,) = (tmp_path / "cut").glob("checkpoint-*")
    assert not (tmp_path / "cut" / "eval_results.json").exists()
    # Checkpoints carry the code files (the classes are registered for auto class), so they load as remote code.
    for name in ("configuration_lstm.py", "modeling_lstm.py", "model.safetensors", "tokenizer.json", "optimizer.pt"):
        assert (checkpoint / name).is_file(), name
    assert "auto_map" in json.loads((checkpoint / "config.json").read_text())
    first_session = json.loads((checkpoint / "wall_time.json").read_text())["seconds"]
    assert first_session >= 1.5
    # A checkpoint that another preset or vocabulary trained is refused, as one line, and left as it was.
    wider = {**TINY_SENTIMENT, "model": {**TINY_SENTIMENT["model"], "hidden_size": 10}}
    with pytest.raises(SetupError, match=r"holds another model than this command builds \(.*: \[.*\] there"):
        train_sentiment(wider, tiny_imdb, tmp_path / "cut", resume=True, report_to="none", disable_tqdm=True)
    assert list((tmp_path / "cut").glob("checkpoint-*")) == [checkpoint]
    second_start = time.time()
    resumed = train_sentiment(TINY_SENTIMENT, tiny_imdb, tmp_path / "cut", resume=True, report_to="none",
                              disable_tqdm=True)
    second_session = time.time() - second_start
    # Wall time is the sum over the sessions: the first one's (stored in the checkpoint) and the second's.
    # (The second session goes on after the time is taken: saving, the card and its plots.)
    assert first_session + 0.5 * second_session <= resumed["wall_time_s"] <= first_session + second_session + 0.5
    state = json.loads((tmp_path / "cut" / "trainer_state.json").read_text())
    assert state["global_step"] == json.loads((tmp_path / "full" / "trainer_state.json").read_text())["global_step"]
    for key in ("test_accuracy", "test_f1", "test_loss", "best_validation_value"):
        assert resumed[key] == pytest.approx(full[key], abs=1e-6), key
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name])


def test_a_checkpoint_of_another_vocabulary_is_refused(tmp_path):
    """Data changed between two sessions gives a vocabulary of the same size with other ids: resuming would train
    on the old embeddings of other words, without a sign."""
    from seqhf.training.common import check_resumable

    first = build_word_tokenizer(["the cat sat on the mat", "a dog ran"] * 3, vocab_size=8, min_frequency=1)
    second = build_word_tokenizer(["birds fly over the sea", "fish swim"] * 3, vocab_size=8, min_frequency=1)
    assert len(first) == len(second)
    model = SeqLSTMForSequenceClassification(SeqLSTMConfig(vocab_size=len(first), embedding_size=4, hidden_size=4))
    model.save_pretrained(tmp_path)
    first.save_pretrained(tmp_path)
    check_resumable(tmp_path, model, first)  # the same run goes on
    with pytest.raises(SetupError, match=r"another vocabulary than the one built now from the data \(\d+ of its 8"):
        check_resumable(tmp_path, model, second)


# ------------------------------------------------------------------ two processes


def test_accelerate_two_processes_on_cpu(tmp_path, tiny_imdb):
    out, ranks = tmp_path / "out", tmp_path / "ranks"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / "seqhf" / "utils" / "accelerate_cpu.yaml"),
           "--num_processes", "2", "--main_process_port", "29517",
           "-m", "seqhf", "train", "classifier", "--label-names", "negative,positive", "--model", "lstm", "--quick", "--epochs", "1",
           "--dataset", str(tiny_imdb), "--output-dir", str(out)]
    env = {**ENV, "SEQHF_RANK_LOG": str(ranks), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    logs = [json.loads((ranks / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [log["world_size"] for log in logs] == [2, 2]
    assert [log["rank"] for log in logs] == [0, 1]
    rows0, rows1 = ({tuple(r) for r in log["rows"]} for log in logs)
    assert rows0 and rows1 and not rows0 & rows1  # each rank trained on its own shard
    # The quick preset's batch of 64 is one optimizer step's batch, shared: 32 rows each, as many steps as alone.
    assert [max(log["batch_rows"]) for log in logs] == [32, 32]
    assert len(logs[0]["batch_rows"]) == len(logs[1]["batch_rows"]) == -(-sum(logs[0]["batch_rows"] + logs[1]["batch_rows"]) // 64)
    assert [log["wrote_output"] for log in logs] == [True, False]  # only the main process writes
    assert proc.stdout.count("test accuracy") == 1
    noise = ("had defaults used instead", "find_unused_parameters=True", "There were missing keys",
             "Writing model shards", "Loading weights", "\r")  # progress bars redrawn in a log file
    assert not [n for n in noise if n in proc.stdout + proc.stderr], "log noise"
    assert proc.stdout.count("[tokenizing]") == 1  # one line a phase, from the main process
    results = json.loads((out / "eval_results.json").read_text())
    assert results["train_args"]["world_size"] == 2
    assert results["other_work_cores"] >= 0  # both processes' CPU time summed and taken off the machine's
    assert (out / "model.safetensors").is_file() and (out / "modeling_lstm.py").is_file()


# ------------------------------------------------------------------ quick presets


COMMON_KEYS = {"task", "preset", "quick", "model_type", "num_parameters", "dataset", "seed", "max_grad_norm",
               "epochs", "train_args", "wall_time_s", "hardware"}


@pytest.mark.slow
def test_sentiment_quick_preset(tmp_path, imdb_dir):
    out = tmp_path / "sentiment"
    proc = subprocess.run([sys.executable, "-m", "seqhf", "train", "classifier", "--label-names", "negative,positive", "--model", "lstm", "--quick",
                           "--dataset", str(imdb_dir), "--output-dir", str(out)],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    results = json.loads((out / "eval_results.json").read_text())
    assert COMMON_KEYS | {"test_accuracy", "test_f1", "test_examples"} <= set(results)
    assert results["test_examples"] == 2000 and results["quick"] and results["task"] == "classification"
    assert results["test_accuracy"] >= 0.75, results
    checkpoint = sorted(out.glob("checkpoint-*"))[-1]
    # The folder and a checkpoint load where seqhf is not installed: pipeline, remote code.
    printed = run_without_seqhf(
        f"""
        from transformers import AutoModelForSequenceClassification, pipeline
        clf = pipeline("text-classification", model={str(out)!r}, trust_remote_code=True)
        print([p["label"] for p in clf(["A wonderful, moving film. Superb acting.", "Awful. Boring and stupid."])])
        AutoModelForSequenceClassification.from_pretrained({str(checkpoint)!r}, trust_remote_code=True)
        """,
        cwd=tmp_path,
    )
    assert "['positive', 'negative']" in printed


@pytest.mark.slow
def test_charlm_quick_preset(tmp_path, island_txt):
    results = train_charlm("lstm", island_txt, tmp_path / "charlm", quick=True, disable_tqdm=True)
    assert COMMON_KEYS | {"heldout_nats_per_char", "heldout_bits_per_char", "heldout_window_nats_per_char",
                          "heldout_stream_nats_per_char", "heldout_chars", "tbptt", "seq_len",
                          "unigram_entropy_nats"} <= set(results)
    assert results["tbptt"] == "stateful"
    assert results["heldout_nats_per_char"] < results["unigram_entropy_nats"] - 0.5, results
    assert results["heldout_stream_nats_per_char"] <= results["heldout_window_nats_per_char"]
    saved = json.loads((tmp_path / "charlm" / "eval_results.json").read_text())
    assert saved["heldout_bits_per_char"] == pytest.approx(saved["heldout_nats_per_char"] / 0.6931471805599453)
    from transformers import pipeline

    generator = pipeline("text-generation", model=str(tmp_path / "charlm"))
    text = generator("The island", max_new_tokens=20, do_sample=False)[0]["generated_text"]
    assert text.startswith("The island") and len(text) > len("The island")
    # The Trainer sets `use_cache=False` for training; the saved LM keeps its own default, so that a call by hand
    # returns the cache a decoding loop continues from.
    from seqhf import SeqLSTMForCausalLM

    model = SeqLSTMForCausalLM.from_pretrained(tmp_path / "charlm")
    assert model.config.use_cache and model(input_ids=torch.tensor([[3, 4, 5]])).past_key_values is not None


# ------------------------------------------------------------------ bad input


def test_bad_inputs_fail_before_training(tmp_path, tiny_imdb):
    with pytest.raises(SetupError, match="not found"):
        train_sentiment(TINY_SENTIMENT, str(tmp_path / "no-such-imdb"), tmp_path / "o1")
    with pytest.raises(SetupError, match="not found"):
        train_charlm("lstm", str(tmp_path / "no-such-book.txt"), tmp_path / "o2")
    with pytest.raises(SetupError, match="empty"):
        train_sentiment(TINY_SENTIMENT, _write_imdb(tmp_path / "empty", n_test=0), tmp_path / "o3")
    bad = _write_imdb(tmp_path / "three", names=("neg", "pos", "meh"), train_labels=lambda ls: [2] * 8 + ls[8:])
    with pytest.raises(SetupError, match="--label-names gives 2 names for 3 labels"):
        train_sentiment(TINY_SENTIMENT, bad, tmp_path / "o4")
    with pytest.raises(SetupError, match="max_position_embeddings"):
        train_charlm("transformer", "unused.txt", tmp_path / "o5", seq_len=100_000)
    for o in ("o1", "o2", "o3", "o4", "o5"):
        assert not (tmp_path / o).exists()  # failed before anything was written


def test_script_reports_bad_input_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "seqhf", "train", "charlm", "--text", "missing.txt",
                           "--output-dir", str(tmp_path / "o")], cwd=tmp_path, env=ENV, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "error: Text file not found: 'missing.txt'" in proc.stderr and "Traceback" not in proc.stderr


def test_tied_lm_head_reloads_without_a_missing_key_warning(tmp_path, caplog):
    """load_best_model_at_end reloads a checkpoint whose tied head was not stored: no alarming warning."""
    import logging

    from seqhf import SeqTransformerConfig, SeqTransformerForCausalLM
    from seqhf.data.char_text import CharChunks

    torch.manual_seed(0)
    config = SeqTransformerConfig(vocab_size=12, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=16, max_position_embeddings=16, is_decoder=True)
    model = SeqTransformerForCausalLM(config)
    ids = torch.randint(0, 12, (400,))
    args = make_training_args(tmp_path, TINY_TRAIN | {"epochs": 2}, task="charlm", report_to="none",
                              disable_tqdm=True, logging_steps=100)
    trainer = CharLMTrainer(model=model, args=args, train_dataset=CharChunks(ids[:300], 8),
                            eval_dataset=CharChunks(ids[300:], 8), data_collator=default_data_collator)
    with caplog.at_level(logging.WARNING):
        trainer.train()
    assert trainer.state.best_model_checkpoint is not None  # the best checkpoint was reloaded
    assert "missing keys" not in caplog.text
    assert model.lm_head.weight.data_ptr() == model.model.embeddings.weight.data_ptr()  # still tied


# ------------------------------------------------------------------ bucketed LSTM batches on CPU


@pytest.mark.parametrize("mode", ["head", "head_tail"])
def test_trim_to_shortest_cuts_each_row_as_truncate_ids_does(mode):
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([9, 7, 12, 7])
    ids = torch.zeros(4, 12, dtype=torch.long)
    for row, length in enumerate(lengths.tolist()):
        ids[row, :length] = torch.randint(1, 50, (length,), generator=g)
    expected = [truncate_ids(ids[row, :length].tolist(), 7, mode) for row, length in enumerate(lengths.tolist())]
    assert trim_to_shortest(ids, lengths, mode).tolist() == expected


class _CountForwards(TrainerCallback):
    def __init__(self, model):
        self.shapes = {"train": [], "eval": []}
        model.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module, args, kwargs):
        ids = kwargs["input_ids"]
        mask = kwargs.get("attention_mask")
        self.shapes["train" if module.training else "eval"].append((tuple(ids.shape), mask is None or bool(mask.all())))


def test_lstm_training_batches_run_unpadded_once_and_evaluation_reads_whole_texts(tmp_path):
    """Training: a padded batch whose rows differ by under 10 % is cut to its shortest row and run once; one of
    very different lengths is run as equal-length groups, so no text loses words. Evaluation: groups, whose
    logits equal one padded pass (the model is padding-invariant)."""
    torch.manual_seed(0)
    model = SeqLSTMForSequenceClassification(SeqLSTMConfig(vocab_size=30, embedding_size=4, hidden_size=4,
                                                           bidirectional=True, num_labels=2, pad_token_id=0))
    g = torch.Generator().manual_seed(1)
    lengths = [20, 21, 21, 22, 3, 4, 4, 8]
    rows = [{"input_ids": torch.randint(1, 30, (n,), generator=g).tolist(), "labels": i % 2} for i, n in enumerate(lengths)]
    args = make_training_args(tmp_path, TINY_TRAIN, task="classification", max_grad_norm=1.0, max_steps=2,
                              eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                              report_to="none", disable_tqdm=True)
    tokenizer = build_word_tokenizer(["a b c", "a b c"], vocab_size=30)  # pads with id 0
    counter = _CountForwards(model)
    trainer = ClassifierTrainer(model=model, args=args, train_dataset=rows, data_collator=DataCollatorWithPadding(tokenizer),
                                lengths=lengths, split_by_length=True, trim_mode="head_tail")
    trainer.train()
    assert all(unpadded for _, unpadded in counter.shapes["train"])
    # batch {20, 21, 21, 22}: cut to 20, one pass; batch {3, 4, 4, 8}: groups of 3, 4 and 8 tokens
    assert sorted(shape for shape, _ in counter.shapes["train"]) == [(1, 3), (1, 8), (2, 4), (4, 20)]
    prediction = trainer.predict(rows)
    assert all(unpadded for _, unpadded in counter.shapes["eval"])
    model.eval()
    with torch.no_grad():
        padded = DataCollatorWithPadding(tokenizer)([{"input_ids": r["input_ids"]} for r in rows])
        reference = model(**padded).logits
    torch.testing.assert_close(torch.as_tensor(prediction.predictions), reference, rtol=1e-5, atol=1e-6)


def _tiny_classifier(seed=0, **config):
    torch.manual_seed(seed)
    return SeqLSTMForSequenceClassification(SeqLSTMConfig(vocab_size=30, embedding_size=6, hidden_size=5, bidirectional=True,
                                                          num_labels=3, pad_token_id=0, **config))


def test_adversarial_perturbation_moves_each_text_uphill_by_epsilon_of_its_norm():
    model = _tiny_classifier(initializer_range=0.5).eval()
    ids, labels = torch.randint(1, 30, (4, 7), generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 1])
    clean = model(input_ids=ids, labels=labels)
    embedding = model.get_input_embeddings()
    perturbation = EmbeddingPerturbation(embedding, epsilon=0.1)
    with perturbation.recording():
        recorded = model(input_ids=ids, labels=labels)
    recorded.loss.backward()
    torch.testing.assert_close(recorded.loss, clean.loss)  # recording leaves the pass as it is
    steps = [perturbation._step(output) for output in perturbation.recorded]
    assert len(steps) == 1
    embedded = embedding(ids).detach()
    torch.testing.assert_close(steps[0].norm(dim=(1, 2)), 0.1 * embedded.norm(dim=(1, 2)))
    with perturbation.perturbing(), torch.no_grad():
        perturbed = model(input_ids=ids, labels=labels)
    assert perturbed.loss > clean.loss + 0.01  # the step goes up the loss
    assert not embedding._forward_hooks  # both hooks are gone
    torch.testing.assert_close(model(input_ids=ids, labels=labels).loss, clean.loss)
    # Frozen embeddings (ULMFiT's gradual unfreezing) still give each text its step.
    embedding.weight.requires_grad_(False)
    with perturbation.recording():
        model(input_ids=ids, labels=labels).loss.backward()
    frozen_steps = [perturbation._step(output) for output in perturbation.recorded]
    torch.testing.assert_close(frozen_steps[0].norm(dim=(1, 2)), 0.1 * embedded.norm(dim=(1, 2)))


def test_adversarial_training_adds_the_perturbed_texts_gradients(tmp_path):
    """With a vanishing epsilon the perturbed loss equals the clean one, so one SGD step moves every weight
    twice as far as without adversarial training; with a real epsilon it moves it elsewhere."""
    g = torch.Generator().manual_seed(2)
    rows = [{"input_ids": torch.randint(1, 30, (6,), generator=g).tolist(), "labels": i % 3} for i in range(4)]
    tokenizer = build_word_tokenizer(["a b c", "a b c"], vocab_size=30)
    moves = {}
    for epsilon in (0.0, 1e-7, 0.5):
        model = _tiny_classifier()
        start = {name: p.detach().clone() for name, p in model.named_parameters()}
        args = make_training_args(tmp_path / str(epsilon), TINY_TRAIN, task="classification", max_grad_norm=0.0,
                                  max_steps=1, optim="sgd", eval_strategy="no", save_strategy="no",
                                  load_best_model_at_end=False, report_to="none", disable_tqdm=True)
        trainer = ClassifierTrainer(model=model, args=args, train_dataset=rows, adversarial_epsilon=epsilon,
                                    data_collator=DataCollatorWithPadding(tokenizer))
        trainer.train()
        moves[epsilon] = torch.cat([(p.detach() - start[name]).flatten() for name, p in model.named_parameters()])
        assert not model.get_input_embeddings()._forward_hooks
    torch.testing.assert_close(moves[1e-7], 2 * moves[0.0], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(moves[0.5], 2 * moves[0.0], rtol=1e-2, atol=1e-4)


def test_label_smoothing_factor_smooths_the_classifiers_loss_on_both_paths(tmp_path):
    """`label_smoothing_factor` (a TrainingArguments field) reaches the classifier's loss as in Trainer's own,
    whether the batch runs as one pass or as equal-length groups; without it the loss is the model's own."""
    model = _tiny_classifier(initializer_range=0.5).eval()
    tokenizer = build_word_tokenizer(["a b c", "a b c"], vocab_size=30)
    g = torch.Generator().manual_seed(3)
    rows = [{"input_ids": torch.randint(1, 30, (n,), generator=g).tolist(), "labels": i % 3}
            for i, n in enumerate([5, 9, 9, 3])]
    batch = DataCollatorWithPadding(tokenizer)(rows)
    with torch.no_grad():
        logits = torch.cat([model(input_ids=torch.tensor([r["input_ids"]])).logits for r in rows])
    labels = torch.tensor([r["labels"] for r in rows])
    for factor in (0.0, 0.2):
        for split in (False, True):
            args = make_training_args(tmp_path, TINY_TRAIN, task="classification", label_smoothing_factor=factor,
                                      eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                                      report_to="none", disable_tqdm=True)
            trainer = ClassifierTrainer(model=model, args=args, split_by_length=split)
            with torch.no_grad():
                loss, outputs = trainer.compute_loss(model, dict(batch), return_outputs=True)
            expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=factor)
            torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(outputs["loss"], expected, rtol=1e-5, atol=1e-6)
    from seqhf.training.common import train_args_summary

    assert train_args_summary(trainer.args)["label_smoothing_factor"] == 0.2  # the run records it
    for task in ("charlm", "wordlm"):  # their own losses have no smoother: refused, not ignored
        with pytest.raises(SetupError, match="label_smoothing_factor"):
            make_training_args(tmp_path, TINY_TRAIN, task=task, label_smoothing_factor=0.1)
