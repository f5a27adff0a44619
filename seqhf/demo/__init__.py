"""The Gradio demo page and the Hub Space folder that serves it (needs the `demo` extra)."""

from ..utils.extras import require_extra

require_extra("demo", "seqhf.demo (the Gradio page)")
