"""A Gradio page for a sentiment classifier and a character LM, and the Hub Space folder that serves it.

`build_app(classifier=..., generator=...)` returns a `gradio.Blocks` with a Classify tab (label
probabilities and the text with each word shaded by its integrated-gradients attribution) and a
Generate tab (prompt, temperature, top-k, top-p, length, seed; the text streams in through
`TextIteratorStreamer`). `write_space(out, classifier_repo, generator_repo)` writes a Space folder
(`app.py`, `requirements.txt`, `README.md` with the Space YAML header) that builds the same page.

This module imports only torch, transformers, gradio and `seqhf.inference`'s `explain`, `generation` and
`saved_folder` (relatively), so the Space carries the four files in a `seqhf_demo/` package with the same subfolders
and runs without seqhf.
"""

import json
import threading
import warnings
from importlib import resources
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from ..inference.explain import explain
from ..inference.generation import (VisibleTextStreamer, encode_prompt, generate_text, reads_backward, visible_text,
                                    with_prompt)
from ..inference.saved_folder import check_classifier_folder, check_saved_folder

EXAMPLE_REVIEWS = [
    "One of the best films I have seen in years: a moving story and wonderful acting.",
    "A dull, predictable plot and wooden acting. I wanted my two hours back.",
]
EXAMPLE_PROMPT = "The island"
SPACE_PACKAGE = "seqhf_demo"
SPACE_MODULES = ("demo/page.py", "inference/explain.py", "inference/generation.py", "inference/saved_folder.py")  # paths inside seqhf


def load_classifier(name_or_path, trust_remote_code=False):
    # a local folder whose save did not finish names its missing files; a language model's folder is refused
    check_classifier_folder(name_or_path, trust_remote_code=trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    return model.eval(), tokenizer


def load_generator(name_or_path, trust_remote_code=False):
    check_saved_folder(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    return model.eval(), tokenizer


# Integrated gradients cost `steps` forward and backward passes over the whole text: with the main command's
# classifier on a 2-core CPU, 100,000 characters took 70 s, 20,000 (4,244 tokens; IMDb's longest review has
# 12,988 characters) 9.8 s with one thread.
MAX_EXPLAINED_CHARS = 20_000


def classify_and_explain(model, tokenizer, text, steps=32):
    """(label probabilities, shaded spans) for the page: the text's words weighted in [-1, 1]. Texts over
    `MAX_EXPLAINED_CHARS` are refused with a ValueError (classify those with `pipeline`)."""
    if len(text) > MAX_EXPLAINED_CHARS:
        raise ValueError(f"This page explains texts of up to {MAX_EXPLAINED_CHARS:,} characters, and this one has "
                         f"{len(text):,}: classify longer texts with transformers' pipeline('text-classification').")
    explanation = explain(model, tokenizer, text, steps=steps)
    return explanation.probabilities, explanation.spans(text)


def stream_generation(model, tokenizer, prompt, temperature, top_k, top_p, max_new_tokens, seed):
    """Yield the prompt's continuation as it grows: `generate()` runs in a thread and feeds a
    `TextIteratorStreamer`, which this generator reads. The streamer decodes the prompt with the new tokens, as
    `generate_text` does, so that a word LM's first word is spaced from the prompt; the prompt's part is cut off.
    A backward LM writes the text before the prompt from its end, last word first: its text comes whole, once."""
    if reads_backward(model):
        with torch.no_grad():
            yield generate_text(model, tokenizer, prompt, max_new_tokens=int(max_new_tokens),
                                temperature=float(temperature), **sampling_options(top_k, top_p, seed))
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # generate_text warns once about characters outside the vocabulary
        prompt_text = visible_text(tokenizer, encode_prompt(tokenizer, prompt)[0])
    streamer = VisibleTextStreamer(tokenizer, skip_prompt=False, timeout=120)
    options = dict(max_new_tokens=int(max_new_tokens), temperature=float(temperature), streamer=streamer,
                   **sampling_options(top_k, top_p, seed))
    failure = []

    def run():
        try:
            with torch.no_grad():
                generate_text(model, tokenizer, prompt, **options)
        except Exception as err:  # reported on the page below, not lost in the thread
            failure.append(err)
            streamer.end()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    text = ""
    for piece in streamer:
        text += piece
        if piece and len(text) > len(prompt_text):  # (empty pieces come while the streamer waits for a word to end)
            yield text[len(prompt_text):]
    thread.join()
    if failure:
        raise failure[0]


def sampling_options(top_k, top_p, seed):
    """The page's top-k (0 = off), top-p (1 = off) and seed as `generate_text` takes them."""
    return dict(top_k=int(top_k) or None, top_p=float(top_p) if top_p and float(top_p) < 1.0 else None,
                seed=None if seed is None else int(seed))


def build_app(classifier=None, generator=None, trust_remote_code=False, title="seqhf demo"):
    """The page: a Classify tab when `classifier` (folder or repo id) is given, a Generate tab for `generator`."""
    import gradio as gr

    if classifier is None and generator is None:
        raise ValueError("Give a classifier, a generator, or both: the page has nothing to show otherwise.")
    clf = load_classifier(classifier, trust_remote_code) if classifier else None
    lm = load_generator(generator, trust_remote_code) if generator else None

    def on_classify(text):
        if not text or not text.strip():
            raise gr.Error("Type a review first.")
        try:
            return classify_and_explain(*clf, text)
        except ValueError as err:
            raise gr.Error(str(err)) from err

    def on_generate(prompt, temperature, top_k, top_p, length, seed):
        try:
            for continuation in stream_generation(*lm, prompt, temperature, top_k, top_p, length, seed):
                yield with_prompt(lm[0], prompt, continuation)
        except ValueError as err:
            raise gr.Error(str(err)) from err

    with gr.Blocks(title=title) as app:
        gr.Markdown(f"# {title}")
        if clf:
            with gr.Tab("Classify", id="classify"):
                gr.Markdown(
                    f"`{classifier}`. Each word is shaded by how much it moved the decision (integrated "
                    "gradients on the word embeddings): red towards the predicted label, purple against it."
                )
                review = gr.Textbox(label="Review", lines=5, elem_id="review")
                classify_button = gr.Button("Classify", variant="primary", elem_id="classify-button")
                labels = gr.Label(label="Label probabilities", num_top_classes=len(clf[0].config.id2label), elem_id="labels")
                shaded = gr.HighlightedText(label="Words that moved the decision", elem_id="shaded", show_legend=True)
                gr.Examples([[r] for r in EXAMPLE_REVIEWS], inputs=[review])
                classify_button.click(on_classify, inputs=review, outputs=[labels, shaded])
                review.submit(on_classify, inputs=review, outputs=[labels, shaded])
        if lm:
            with gr.Tab("Generate", id="generate"):
                gr.Markdown(f"`{generator}`. " + ("A backward LM: it writes what comes before the prompt, from the "
                                                  "end; the text appears when it is complete." if reads_backward(lm[0])
                                                  else "The text appears as it is generated."))
                prompt = gr.Textbox(label="Prompt", value=EXAMPLE_PROMPT, elem_id="prompt")
                with gr.Row():
                    temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Temperature (0 = greedy)")
                    top_k = gr.Slider(0, 100, value=0, step=1, label="Top-k (0 = off)")
                    top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p (1 = off)")
                with gr.Row():
                    length = gr.Slider(1, 2000, value=300, step=1, label="New characters", elem_id="length")
                    seed = gr.Number(value=42, precision=0, label="Seed")
                generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
                generated = gr.Textbox(label="Prompt and generated text", lines=10, elem_id="generated")
                generate_button.click(
                    on_generate, inputs=[prompt, temperature, top_k, top_p, length, seed], outputs=generated
                )
    return app


# --------------------------------------------------------------------------------------------- Space

SPACE_APP = '''"""seqhf demo Space: the page of seqhf.demo.page, models loaded from the Hub with their own code."""

from seqhf_demo.demo.page import build_app

app = build_app(classifier={classifier!r}, generator={generator!r}, trust_remote_code=True, title={title!r})

if __name__ == "__main__":
    app.launch()
'''

SPACE_README = """---
title: {yaml_title}
emoji: 🎬
colorFrom: indigo
colorTo: blue
sdk: gradio
sdk_version: {gradio_version}
app_file: app.py
pinned: false
license: apache-2.0
{models}---

# {title}

Try the seqhf models in the browser:
{model_lines}
The classifier shades each word by its integrated-gradients attribution; the generator streams
its text as it samples. Models are loaded with `trust_remote_code=True` (their code is in their repos).
"""


SPACE_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors")  # what the models' code imports


def space_requirements():
    """requirements.txt of the Space: what the page and the models' code import, in the ranges seqhf itself
    requires. Gradio itself is installed by the Space from the README's `sdk_version`."""
    return "".join(seqhf_requirement(name) + "\n" for name in SPACE_PACKAGES)


def seqhf_requirement(name: str) -> str:
    """seqhf's own requirement on the package `name` (the models' code needs what seqhf needs), e.g.
    `transformers>=5.25,<6`; else the major version installed here."""
    from importlib.metadata import PackageNotFoundError, requires, version

    from packaging.requirements import Requirement

    try:
        for line in requires("seqhf") or []:
            requirement = Requirement(line)
            if requirement.name == name and requirement.marker is None:
                bounds = sorted(requirement.specifier, key=lambda spec: spec.operator.startswith("<"))
                return name + ",".join(map(str, bounds))
    except PackageNotFoundError:
        pass
    major = int(version(name).split(".")[0])
    return f"{name}>={major},<{major + 1}"


def write_space(out, classifier=None, generator=None, title="seqhf demo") -> list:
    """Write a Hub Space folder at `out` serving `classifier` and `generator` (Hub repo ids); return its files."""
    import gradio

    if classifier is None and generator is None:
        raise ValueError("Give the repo id of a classifier, a generator, or both.")
    for repo_id in (classifier, generator):
        if repo_id is not None and (repo_id.count("/") != 1 or Path(repo_id).exists()):
            raise ValueError(
                f"A Space loads models from the Hub: give a repo id 'owner/name', not {repo_id!r} "
                "(push the folder first with `seqhf push`)."
            )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"The Space's output {out} is a file: give a folder.")
    package = out / SPACE_PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    source = resources.files("seqhf")
    (package / "__init__.py").write_text('"""seqhf.demo.page and the modules it uses, copied from seqhf."""\n')
    for name in SPACE_MODULES:  # the same subpackages as in seqhf, so the relative imports hold
        (package / name).parent.mkdir(exist_ok=True)
        (package / name).parent.joinpath("__init__.py").write_text("")
        (package / name).write_bytes(source.joinpath(name).read_bytes())
    repos = [r for r in (classifier, generator) if r]
    models = "models:\n" + "".join(f"  - {r}\n" for r in repos)
    model_lines = "".join(f"- [{r}](https://huggingface.co/{r})\n" for r in repos)
    (out / "app.py").write_text(SPACE_APP.format(classifier=classifier, generator=generator, title=title))
    (out / "requirements.txt").write_text(space_requirements())
    (out / "README.md").write_text(
        SPACE_README.format(title=title, yaml_title=json.dumps(title), gradio_version=gradio.__version__, models=models,
                            model_lines=model_lines)  # a JSON string is YAML too: a title with ": " stays one value
    )
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


__all__ = ["build_app", "write_space", "classify_and_explain", "stream_generation", "load_classifier", "load_generator"]
