"""ONNX export of saved folders (float and int8) and ONNX Runtime inference without torch."""
