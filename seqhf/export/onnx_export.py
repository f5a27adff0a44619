"""Export trained seqhf folders to ONNX, and quantize the classifier to int8, for ONNX Runtime.

The exporter is torch.onnx's TorchScript tracer (`dynamo=False`), not optimum: optimum's ONNX
exporters live in `optimum-onnx`, whose releases require transformers < 4.58 (seqhf needs 5.x). The
tracer records the path the models' own forward takes on an example, Python-level checks and branches
included (the dynamo exporter, which needs the extra `onnxscript` package, was not tried). The
classifier is traced on a padded batch, so the graph holds the padded path (packed sequences for RNNs,
the attention mask for Transformers), which also gives unpadded rows their exact logits.

An export folder holds `model.onnx` (and `model_int8.onnx` when quantized), the model's
`config.json`, its tokenizer files, and `onnx_export.json` describing the graph's inputs and outputs
and the largest difference from PyTorch measured at export time. `seqhf.export.ort_inference` runs it.
"""

import json
import warnings
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from ..inference.saved_folder import check_saved_folder

OPSET = 17
MODEL_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
MANIFEST_FILE = "onnx_export.json"
WEIGHT_NAMES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
TOLERANCE = 1e-4


def task_of(config) -> str:
    """"text-classification" or "text-generation", from the folder's `architectures`."""
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "text-classification"
    if any(a.endswith("ForCausalLM") for a in archs):
        return "text-generation"
    raise ValueError(
        f"Cannot tell what to export: config.json `architectures` is {archs!r}; expected a "
        "...ForSequenceClassification or ...ForCausalLM model."
    )


def sample_padded_batch(vocab_size, pad_token_id, batch=3, seq=9, seed=0):
    """Random ids of random lengths, padded on the right (even rows) or the left (odd rows), with at
    least one full row: the shapes an exported classifier must serve."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (batch, seq), generator=g)
    lengths = torch.randint(1, seq + 1, (batch,), generator=g)
    lengths[-1] = seq
    positions = torch.arange(seq).expand(batch, seq)
    right = (positions < lengths[:, None]).long()
    left = (positions >= seq - lengths[:, None]).long()
    mask = torch.where((torch.arange(batch) % 2 == 0)[:, None], right, left)
    if pad_token_id is not None:
        ids = ids.masked_fill(mask == 0, pad_token_id)
    return ids, mask


def _trace_export(module, args, kwargs, path, input_names, output_names, dynamic_axes):
    # torch.onnx restores each module's mode afterwards; a fresh wrapper is in training mode, which
    # would switch the wrapped model back to training (dropout on) once the export is done.
    module.eval()
    with warnings.catch_warnings():
        # The models' input checks run at trace time and warn that they are constants in the graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            kwargs=kwargs,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )


# ---------------------------------------------------------------------------------------- classifier


class _ClassifierLogits(nn.Module):
    """(input_ids, attention_mask) -> logits: the classifier's forward with plain tensors in and out."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        config = self.model.config
        if config.model_type != "seqhf-lstm" or config.pooling != "last":
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        # Pooled from the final state alone, the last layer's packed outputs would be dead in the trace, and
        # torch.onnx's pass that fuses packing into its RNN node fails on them ("vector::_M_range_check"):
        # they are read, times zero.
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return out.logits + 0.0 * out.hidden_states[-1][:, :1, :1].sum(dim=(1, 2))[:, None]


def export_classifier(model, path) -> dict:
    """Write `model` (a seqhf ...ForSequenceClassification) to `path` with dynamic batch and sequence axes."""
    model = model.eval()
    ids, mask = sample_padded_batch(model.config.vocab_size, model.config.pad_token_id)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}, "logits": {0: "batch"}}
    _trace_export(_ClassifierLogits(model), (ids, mask), None, path, ["input_ids", "attention_mask"], ["logits"], axes)
    return {"task": "text-classification", "inputs": ["input_ids", "attention_mask"], "outputs": ["logits"]}


# -------------------------------------------------------------------------------- causal LM, one step


def lm_state_names(config) -> list[str]:
    """Names of the state tensors a step reads and writes: `state_h`(, `state_c`) for a recurrent LM,
    `past_key_<i>`, `past_value_<i>` per layer for a Transformer."""
    if config.model_type == "seqhf-lstm":
        return ["state_h", "state_c"] if config.rnn_type == "lstm" else ["state_h"]
    if config.model_type == "seqhf-transformer":
        return [f"past_{kind}_{i}" for i in range(config.num_hidden_layers) for kind in ("key", "value")]
    raise ValueError(f"No ONNX step export for model_type {config.model_type!r}.")


def empty_state(config, batch_size=1, dtype=torch.float32) -> list[torch.Tensor]:
    """The state before any token: zeros for a recurrent LM, empty (length 0) caches for a Transformer."""
    if config.model_type == "seqhf-lstm":
        shape = (config.num_hidden_layers, batch_size, config.hidden_size)
        return [torch.zeros(shape, dtype=dtype) for _ in lm_state_names(config)]
    head_dim = config.hidden_size // config.num_attention_heads
    shape = (batch_size, config.num_attention_heads, 0, head_dim)
    return [torch.zeros(shape, dtype=dtype) for _ in lm_state_names(config)]


class _RecurrentStep(nn.Module):
    """(input_ids, state...) -> (last logits, new state...): reads any number of tokens from a carried state."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, *state):
        # The graph's state keeps torch's (layers, batch, hidden) layout, so graphs exported before the model's
        # `final_state` put the batch first still serve.
        out = self.model(input_ids=input_ids, initial_state=tuple(s.transpose(0, 1) for s in state), logits_to_keep=1)
        return (out.logits[:, -1],) + tuple(s.transpose(0, 1) for s in out.final_state)


class _TransformerStep(nn.Module):
    """(input_ids of one token, past keys/values...) -> (logits, present keys/values...).

    One token a call: with a single query the graph needs no causal mask, so the same graph serves
    every step; the prompt is read one token at a time too.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, *past):
        from transformers import DynamicCache

        cache = DynamicCache()
        for i in range(len(past) // 2):
            cache.update(past[2 * i], past[2 * i + 1], i)
        # Counted with tensor ops, not read from .shape, so the trace keeps it dynamic (0 at the first step).
        past_length = torch.ones_like(past[0][:1, 0, :, 0]).sum(dim=1, keepdim=True).long()
        position_ids = past_length + torch.ones_like(input_ids).cumsum(dim=1) - 1
        out = self.model(input_ids=input_ids, position_ids=position_ids, cache=cache, use_cache=True, logits_to_keep=1)
        present = [t for layer in cache.layers for t in (layer.keys, layer.values)]
        return (out.logits[:, -1],) + tuple(present)


def export_lm_step(model, path) -> dict:
    """Write one decoding step of a seqhf causal LM to `path`: ids and state in, last logits and state out."""
    model = model.eval()
    config = model.config
    names = lm_state_names(config)
    recurrent = config.model_type == "seqhf-lstm"
    batch = 2
    ids = torch.randint(0, config.vocab_size, (batch, 3 if recurrent else 1), generator=torch.Generator().manual_seed(0))
    state = empty_state(config, batch)
    if recurrent:
        state = [torch.randn(t.shape) * 0.1 for t in state]
        module = _RecurrentStep(model)
        state_axes = {1: "batch"}
    else:
        state = [torch.randn(t.shape[0], t.shape[1], 4, t.shape[3]) for t in state]  # 4 cached positions
        module = _TransformerStep(model)
        state_axes = {0: "batch", 2: "past_sequence"}
    out_names = [n.replace("past_", "present_") if not recurrent else n + "_out" for n in names]
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch"}}
    axes.update({n: state_axes for n in names})
    out_axes = state_axes if recurrent else {0: "batch", 2: "total_sequence"}
    axes.update({n: out_axes for n in out_names})
    _trace_export(module, (ids, *state), None, path, ["input_ids", *names], ["logits", *out_names], axes)
    return {
        "task": "text-generation",
        "inputs": ["input_ids", *names],
        "outputs": ["logits", *out_names],
        "state_inputs": names,
        "state_outputs": out_names,
        "tokens_per_step": "any" if recurrent else 1,
    }


# ------------------------------------------------------------------------------------------ int8


def quantize_int8(src, dst) -> Path:
    """Dynamic int8 quantization (weights int8, activations quantized on the fly) with onnxruntime's quantizer."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return Path(dst)


# ------------------------------------------------------------------------------------ verification


def classifier_difference(model, onnx_path, batches=((3, 9), (5, 17), (1, 6))) -> float:
    """Largest |logit difference| between PyTorch and ONNX Runtime over a few padded batches, the first with an
    empty text (a row of padding only)."""
    from .ort_inference import session

    sess = session(onnx_path)
    worst = 0.0
    for seed, (batch, seq) in enumerate(batches):
        ids, mask = sample_padded_batch(model.config.vocab_size, model.config.pad_token_id, batch, seq, seed=seed + 1)
        if seed == 0 and model.config.pad_token_id is not None:
            ids[0], mask[0] = model.config.pad_token_id, 0
        with torch.no_grad():
            ref = model(input_ids=ids, attention_mask=mask).logits.numpy()
        got = sess.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        worst = max(worst, float(abs(got - ref).max()))
    return worst


def lm_difference(model, onnx_path, steps=8) -> float:
    """Largest |logit difference| between PyTorch (the whole text in one forward) and ONNX Runtime (the
    prompt, then one token a step with the state carried), over `steps` generated positions."""
    from .ort_inference import OrtCausalLM

    lm = OrtCausalLM(onnx_path, model.config)
    prompt = 5
    if lm.window:  # the whole text must fit the Transformer's positions
        prompt = min(prompt, max(lm.window // 2, 1))
        steps = min(steps, lm.window - prompt)
    ids = torch.randint(0, model.config.vocab_size, (2, prompt + steps), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(input_ids=ids).logits[:, prompt - 1 :].numpy()
    logits, state = lm.step(ids[:, :prompt].numpy(), lm.empty_state(2))
    worst = float(abs(logits - ref[:, 0]).max())
    for t in range(steps):
        logits, state = lm.step(ids[:, prompt + t : prompt + t + 1].numpy(), state)
        worst = max(worst, float(abs(logits - ref[:, t + 1]).max()))
    return worst


# ------------------------------------------------------------------------------------------ folders


def export_folder(model_dir, out_dir, int8=False, tolerance=TOLERANCE) -> dict:
    """Export the model in `model_dir` (a folder written by the training scripts) to `out_dir`.

    Classifiers get `model.onnx` (and `model_int8.onnx` with `int8`); causal LMs get a one-step
    `model.onnx`. The config and tokenizer are copied alongside, and `onnx_export.json` records what
    the graph takes and returns and how far its outputs are from PyTorch's (checked against `tolerance`).
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"No config.json in {model_dir}: give the folder a training run wrote.")
    check_saved_folder(model_dir)
    lacking = [what for what, names in (("model weights (model.safetensors)", WEIGHT_NAMES),
                                        ("tokenizer (tokenizer.json)", ("tokenizer.json",)))
               if not any((model_dir / name).is_file() for name in names)]
    if lacking:
        raise FileNotFoundError(f"{model_dir} has no {' and no '.join(lacking)}: give the folder a training run wrote.")
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"The export's output {out_dir} is a file: give a folder.")
    config = AutoConfig.from_pretrained(model_dir)
    task = task_of(config)
    if int8 and task != "text-classification":
        raise ValueError("int8 quantization is offered for classifiers only; this folder holds a causal LM.")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (MANIFEST_FILE, MODEL_FILE, INT8_FILE):  # an earlier export's graphs are never served as this one's
        (out_dir / name).unlink(missing_ok=True)
    auto_class = AutoModelForSequenceClassification if task == "text-classification" else AutoModelForCausalLM
    model = auto_class.from_pretrained(model_dir).eval()
    if task == "text-classification":
        manifest = export_classifier(model, out_dir / MODEL_FILE)
        manifest["max_abs_diff"] = classifier_difference(model, out_dir / MODEL_FILE)
    else:
        manifest = export_lm_step(model, out_dir / MODEL_FILE)
        manifest["max_abs_diff"] = lm_difference(model, out_dir / MODEL_FILE)
    if manifest["max_abs_diff"] > tolerance:
        (out_dir / MODEL_FILE).unlink()
        raise RuntimeError(
            f"The exported graph's outputs differ from PyTorch's by {manifest['max_abs_diff']:.2e} "
            f"(> {tolerance:g}); it was not kept."
        )
    if int8:
        quantize_int8(out_dir / MODEL_FILE, out_dir / INT8_FILE)
        manifest["int8"] = INT8_FILE
    manifest.update(exporter=f"torch.onnx (TorchScript tracer), opset {OPSET}", source=str(model_dir), torch=torch.__version__)
    config.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out_dir)
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def imdb_accuracy(model_dir, onnx_dir, imdb, limit=None, batch_size=64, log=print) -> dict:
    """IMDb test accuracy of the PyTorch model, its ONNX Runtime fp32 export and (when present) int8 export.

    The three read the same ids: the run's own truncation (`max_length` and `truncation` from its
    eval_results.json, as training evaluated), in batches of similar lengths. `limit` takes that many
    reviews of the test split shuffled with seed 0.
    """
    import numpy as np

    from ..data.sources import load_imdb
    from ..data.tokenization import truncate_ids
    from .ort_inference import OrtTextClassifier

    model_dir, onnx_dir = Path(model_dir), Path(onnx_dir)
    test = load_imdb(str(imdb))["test"]
    if limit:
        test = test.shuffle(seed=0).select(range(min(limit, len(test))))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    run = json.loads((model_dir / "eval_results.json").read_text()) if (model_dir / "eval_results.json").is_file() else {}
    max_length, mode = run.get("max_length", tokenizer.model_max_length), run.get("truncation", "head")
    raw = tokenizer(list(test["text"]), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    ids = [truncate_ids(x, max_length, mode) or [tokenizer.unk_token_id] for x in raw]
    labels = np.array(list(test["label"]))
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def padded(rows):
        width = max(len(ids[i]) for i in rows)
        input_ids = np.full((len(rows), width), tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, i in enumerate(rows):
            input_ids[r, : len(ids[i])], mask[r, : len(ids[i])] = ids[i], 1
        return input_ids, mask

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()

    def torch_logits(input_ids, mask):
        with torch.no_grad():
            return model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask)).logits.numpy()

    backends = {"pytorch_fp32": torch_logits, "onnxruntime_fp32": OrtTextClassifier(onnx_dir).logits}
    if (onnx_dir / INT8_FILE).is_file():
        backends["onnxruntime_int8"] = OrtTextClassifier(onnx_dir, int8=True).logits
    result = {"reviews": len(ids), "subset": f"first {limit} of the test split shuffled with seed 0" if limit else "full test split",
              "max_length": max_length, "truncation": mode}  # fmt: skip
    for name, logits_fn in backends.items():
        predictions = np.empty(len(ids), dtype=np.int64)
        for rows in batches:
            predictions[rows] = logits_fn(*padded(rows)).argmax(axis=-1)
        result[name] = float((predictions == labels).mean())
        log(f"{name}: accuracy {result[name]:.4%} on {len(ids)} reviews")
    return result


__all__ = [
    "export_folder",
    "export_classifier",
    "export_lm_step",
    "quantize_int8",
    "classifier_difference",
    "lm_difference",
    "lm_state_names",
    "empty_state",
    "task_of",
    "imdb_accuracy",
]
