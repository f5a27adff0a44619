"""The Gradio demo page and the Hub Space folder that serves it (needs the `demo` extra)."""
