"""seqhf: classic sequence models (RNN, LSTM, GRU, small Transformers) as Hugging Face models.

`import seqhf` registers the two model families with transformers' Auto classes. The classes and the
functions of the Python API (`seqhf.train_classifier`, `seqhf.generate_text`, ...; see `API`) are
imported when first used, so the `seqhf` command answers `--help` without importing torch.
"""

import os
import sys
from importlib import import_module

__version__ = "0.2.0"

MODEL_CLASSES = {
    "SeqLSTMConfig": "models.lstm",
    "SeqLSTMPreTrainedModel": "models.lstm",
    "SeqLSTMModel": "models.lstm",
    "SeqLSTMForSequenceClassification": "models.lstm",
    "SeqLSTMForCausalLM": "models.lstm",
    "SeqTransformerConfig": "models.transformer",
    "SeqTransformerPreTrainedModel": "models.transformer",
    "SeqTransformerModel": "models.transformer",
    "SeqTransformerForSequenceClassification": "models.transformer",
    "SeqTransformerForCausalLM": "models.transformer",
}
# The Python API: what a user calls, in one place (docs/api.md), each from the module that does it.
API = {
    "train_classifier": ("training.classifier", "train_classifier"),
    "train_sentiment": ("training.classifier", "train_sentiment"),
    "train_charlm": ("training.charlm", "train_charlm"),
    "train_word_lm": ("training.wordlm", "train_wordlm"),
    "load_classification_data": ("data.classification", "load_classification_data"),
    "classify": ("training.classifier", "classify"),
    "load_generator": ("inference.generation", "load_generator"),
    "generate_text": ("inference.generation", "generate_text"),
    "evaluate_classifier": ("evaluation.saved", "evaluate_classifier"),
    "evaluate_char_lm": ("evaluation.saved", "evaluate_char_lm"),
    "evaluate_word_lm": ("evaluation.saved", "evaluate_word_lm"),
    "tfidf_baseline": ("evaluation.baseline", "tfidf_logistic_regression"),
    "export_onnx": ("export.onnx_export", "export_folder"),
    "write_model_card": ("hub.cards", "write_model_card"),
    "push_to_hub": ("hub.upload", "push_folder"),
    "push_space": ("hub.space", "push_space"),
    "build_demo": ("demo.page", "build_app"),
    "write_space": ("demo.page", "write_space"),
}
__all__ = [*MODEL_CLASSES, *API, "register_auto_classes"]


def __getattr__(name):
    if name in MODEL_CLASSES:
        return getattr(import_module(f".{MODEL_CLASSES[name]}", __name__), name)
    if name in API:
        module, attribute = API[name]
        return getattr(import_module(f".{module}", __name__), attribute)
    raise AttributeError(f"module 'seqhf' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


_registered = False


def register_auto_classes() -> None:
    """Register both families with the Auto classes, and mark the classes so that `save_pretrained` copies
    their code files into the folder (`auto_map`, remote code). Done by `import seqhf`; idempotent."""
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    from .models import lstm, transformer

    heads = {AutoModel: "Model", AutoModelForSequenceClassification: "ForSequenceClassification",
             AutoModelForCausalLM: "ForCausalLM"}
    for family, prefix in ((lstm, "SeqLSTM"), (transformer, "SeqTransformer")):
        config_class = getattr(family, f"{prefix}Config")
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        config_class.register_for_auto_class()
        for auto_class, suffix in heads.items():
            model_class = getattr(family, prefix + suffix)
            auto_class.register(config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class(auto_class.__name__)
    _registered = True


def _started_as_the_command() -> bool:
    """True in the `seqhf` command (the console script or `python -m seqhf`): its subcommands register when
    they load a model, so that `seqhf --help` answers without importing torch. Everywhere else `import seqhf`
    registers at once."""
    if os.environ.get("SEQHF_EAGER_IMPORT"):
        return False
    argv = sys.orig_argv  # while `-m seqhf` imports the package, sys.argv[0] is only "-m"
    as_module = any(flag == "-m" and module == "seqhf" for flag, module in zip(argv, argv[1:])) or "-mseqhf" in argv
    return as_module or os.path.basename(sys.argv[0]) in ("seqhf", "seqhf.exe")


if not _started_as_the_command():
    register_auto_classes()
