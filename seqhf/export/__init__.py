"""ONNX export of saved folders (float and int8) and ONNX Runtime inference without torch (needs the `onnx`
extra)."""

from ..utils.extras import require_extra

require_extra("onnx", "seqhf.export (ONNX export and ONNX Runtime)")
