"""Serve seqhf models exported by `seqhf.export.onnx_export` with ONNX Runtime (no PyTorch model needed).

`OrtTextClassifier(folder)` answers like `pipeline("text-classification", ..., top_k=None)`: one list of
`{"label", "score"}` per text, highest score first. `OrtCausalLM.from_folder(folder)` runs the exported decoding
step, carrying the recurrent state (or KV cache) from call to call, and samples text from it.
"""

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

MODEL_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
MANIFEST_FILE = "onnx_export.json"


def session(path, threads: int | None = None):
    """An onnxruntime CPU session; `threads` caps its intra-op threads (default: OMP_NUM_THREADS, else ORT's choice)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No ONNX model at {path}: run `seqhf export` first.")
    options = ort.SessionOptions()
    threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def read_config(folder):
    """config.json's fields as attributes: serving needs a few numbers, not the model's code."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"No config.json in {folder}: give a folder written by `seqhf export`.")
    fields = json.loads(path.read_text())
    fields.setdefault("id2label", {"0": "LABEL_0", "1": "LABEL_1"})
    fields.setdefault("bos_token_id", None)
    return SimpleNamespace(**fields)


def load_tokenizer(folder):
    """The folder's tokenizer (seqhf's are plain fast tokenizers: no model code is needed)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(folder)


def _softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(logits):
    return 1.0 / (1.0 + np.exp(-logits))


class OrtTextClassifier:
    """An exported classifier folder served by ONNX Runtime, called like the text-classification pipeline.

    `int8=True` loads `model_int8.onnx` (written by `seqhf export --int8`).
    """

    def __init__(self, folder, int8: bool = False, threads: int | None = None):
        folder = Path(folder)
        self.session = session(folder / (INT8_FILE if int8 else MODEL_FILE), threads)
        self.tokenizer = load_tokenizer(folder)
        config = read_config(folder)
        self.id2label = {int(k): v for k, v in config.id2label.items()}
        # As `pipeline`: each label's own sigmoid for a classifier of label lists, else the softmax.
        self.scores = _sigmoid if getattr(config, "problem_type", None) == "multi_label_classification" else _softmax

    def logits(self, input_ids, attention_mask):
        feeds = {"input_ids": np.asarray(input_ids, dtype=np.int64), "attention_mask": np.asarray(attention_mask, dtype=np.int64)}
        return self.session.run(["logits"], feeds)[0]

    def __call__(self, texts, batch_size: int = 32, truncation: bool = True, max_length: int | None = None):
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        results = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            enc = self.tokenizer(batch, padding=True, truncation=truncation, max_length=max_length, return_tensors="np")
            input_ids, attention_mask = enc["input_ids"], enc["attention_mask"]
            if input_ids.shape[1] == 0:  # only empty texts: one padding column, which the graph reads as "nothing"
                input_ids = np.full((len(batch), 1), self.tokenizer.pad_token_id, dtype=np.int64)
                attention_mask = np.zeros((len(batch), 1), dtype=np.int64)
            probs = self.scores(self.logits(input_ids, attention_mask))
            for row in probs:
                order = np.argsort(-row)
                results.append([{"label": self.id2label[int(i)], "score": float(row[i])} for i in order])
        return results[0] if single else results


class OrtCausalLM:
    """The exported one-step graph of a causal LM: `step(ids, state) -> (last logits, new state)`.

    A recurrent LM reads any number of tokens a step (the prompt in one call); a Transformer step reads
    one token and appends it to the KV cache, so the prompt goes in token by token.
    """

    def __init__(self, model_path, config, threads: int | None = None):
        self.session = session(model_path, threads)
        self.config = config
        manifest_path = Path(model_path).with_name(MANIFEST_FILE)
        inputs = [i.name for i in self.session.get_inputs()]
        self.state_inputs = [n for n in inputs if n != "input_ids"]
        self.state_outputs = [o.name for o in self.session.get_outputs()][1:]
        self.one_token_steps = config.model_type == "seqhf-transformer"
        # A Transformer reads at most its positions: past them, like generate(), each token is predicted from the
        # last `window` tokens read afresh.
        self.window = getattr(config, "max_position_embeddings", None) if config.model_type == "seqhf-transformer" else None
        if manifest_path.is_file():
            self.one_token_steps = json.loads(manifest_path.read_text()).get("tokens_per_step") == 1

    @classmethod
    def from_folder(cls, folder, threads: int | None = None):
        return cls(Path(folder) / MODEL_FILE, read_config(folder), threads)

    def empty_state(self, batch_size=1):
        c = self.config
        if c.model_type == "seqhf-lstm":
            shape = (c.num_hidden_layers, batch_size, c.hidden_size)
        else:
            shape = (batch_size, c.num_attention_heads, 0, c.hidden_size // c.num_attention_heads)
        return [np.zeros(shape, dtype=np.float32) for _ in self.state_inputs]

    def _run(self, ids, state):
        outputs = self.session.run(None, {"input_ids": ids, **dict(zip(self.state_inputs, state))})
        return outputs[0], outputs[1:]

    def step(self, input_ids, state):
        """Read `input_ids` (batch, n) after `state`; return the logits after the last one and the new state."""
        ids = np.asarray(input_ids, dtype=np.int64)
        if not self.one_token_steps:
            return self._run(ids, state)
        for t in range(ids.shape[1]):
            logits, state = self._run(ids[:, t : t + 1], state)
        return logits, state

    def generate(self, prompt_ids, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None):
        """Sample `max_new_tokens` ids after `prompt_ids` (a list of ints; batch 1), yielding each as it comes; as
        `model.generate()` does, an end-of-text token (a word LM's `[EOS]`) is the last one yielded."""
        check_sampling(temperature, top_k, top_p)
        outside = [i for i in prompt_ids if not 0 <= i < self.config.vocab_size]
        if outside:
            raise ValueError(f"Prompt ids outside the vocabulary of {self.config.vocab_size}: {outside[:5]}.")
        if not prompt_ids:
            if self.config.bos_token_id is None:
                raise ValueError("The prompt is empty and the model has no `bos_token_id` to start from.")
            prompt_ids = [self.config.bos_token_id]
        rng = np.random.default_rng(seed)
        ids = list(prompt_ids)
        logits, state = self.step(np.array([ids[-self.window :] if self.window else ids]), self.empty_state(1))
        end_ids = end_of_text_ids(self.config)
        for _ in range(max_new_tokens):
            next_id = sample_next(logits[0], temperature, top_k, top_p, rng)
            yield next_id
            if next_id in end_ids:
                return
            ids.append(next_id)
            if self.window and len(ids) > self.window:  # the cache's positions are full: read the window afresh
                logits, state = self.step(np.array([ids[-self.window :]]), self.empty_state(1))
            else:
                logits, state = self.step(np.array([[next_id]]), state)


def end_of_text_ids(config) -> set[int]:
    """The config's `eos_token_id` (None, one id or a list) as a set."""
    eos = getattr(config, "eos_token_id", None)
    return set() if eos is None else {eos} if isinstance(eos, int) else set(eos)


def check_sampling(temperature, top_k, top_p) -> None:
    """Refuse settings `sample_next` cannot sample with (as `generate_text` refuses them), naming the setting."""
    if not (np.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a number >= 0 (0: greedy), got {temperature}.")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}.")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}.")


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, rng=None):
    """One id from `logits` (vocab,): greedy at temperature 0, else softmax(logits / T) cut by top-k/top-p."""
    if temperature == 0:
        return int(np.argmax(logits))
    logits = logits.astype(np.float64) / temperature
    if top_k:
        cutoff = np.sort(logits)[-min(top_k, logits.size)]
        logits = np.where(logits < cutoff, -np.inf, logits)
    probs = _softmax(logits)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs)
        keep = np.cumsum(probs[order]) - probs[order] < top_p  # the smallest set whose mass reaches top_p
        mask = np.zeros_like(probs, dtype=bool)
        mask[order[keep]] = True
        probs = np.where(mask, probs, 0.0)
        probs /= probs.sum()
    rng = rng or np.random.default_rng()
    return int(rng.choice(probs.size, p=probs))


__all__ = ["OrtTextClassifier", "OrtCausalLM", "session", "sample_next", "read_config", "load_tokenizer"]
