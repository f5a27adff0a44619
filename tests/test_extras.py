"""A missing optional extra is one line that names it, never a bare ImportError deep inside."""

import subprocess
import sys

import pytest

HIDE = """
import sys
for name in {hidden!r}:
    sys.modules[name] = None  # as if not installed
try:
    import {module}
except ImportError as err:
    print(type(err).__name__, err)
"""


@pytest.mark.parametrize("module, hidden, extra", [
    ("seqhf.demo.page", ["gradio"], "demo"),
    ("seqhf.export.onnx_export", ["onnxruntime"], "onnx"),
    ("seqhf.export.ort_inference", ["onnx"], "onnx"),
])
def test_missing_extra_names_the_extra(module, hidden, extra):
    out = subprocess.run([sys.executable, "-c", HIDE.format(hidden=hidden, module=module)], capture_output=True,
                         text=True, timeout=120).stdout
    assert out.startswith("MissingExtraError") and f'pip install "seqhf[{extra}]"' in out and hidden[0] in out


def test_the_command_names_the_missing_extra(tmp_path):
    code = HIDE.format(hidden=["gradio"], module="seqhf") + (
        "from seqhf.cli.app import main\n"
        "raise SystemExit(main(['demo', '--classifier', 'x', '--write-space', 'space']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == 'error: The demo page needs gradio: pip install "seqhf[demo]"'
