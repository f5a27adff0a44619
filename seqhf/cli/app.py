"""The `seqhf` command: a typer app, as `transformers` and `hf` are.

    seqhf train classifier|charlm|lm ...   seqhf generate MODEL_DIR ...    seqhf evaluate MODEL_DIR ...
    seqhf baseline tfidf|ngram ...         seqhf export MODEL_DIR OUT ...  seqhf push MODEL_DIR ...
    seqhf push-space SPACE_DIR ...         seqhf demo ...                  seqhf env

Every subcommand parses its options before importing torch, so `--help` and mistakes answer at once;
an error is one line (`error: ...`) and a non-zero exit. `accelerate launch -m seqhf train ...` runs
the training commands in several processes.
"""

import os
import sys

import typer

from . import evaluate, publish, train

app = typer.Typer(
    name="seqhf",
    help="Classic sequence models (RNN, LSTM, GRU, small Transformers) as Hugging Face models: train, "
    "generate, evaluate, export and publish them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(train.app, name="train")
app.add_typer(evaluate.baseline_app, name="baseline")
app.command("generate", no_args_is_help=True)(evaluate.generate)
app.command("evaluate", no_args_is_help=True)(evaluate.evaluate)
app.command("export", no_args_is_help=True)(publish.export)
app.command("push", no_args_is_help=True)(publish.push)
app.command("push-space", no_args_is_help=True)(publish.push_space)
app.command("demo", no_args_is_help=True)(publish.demo)


@app.command("env")
def env():
    """Print the versions a bug report needs: seqhf, Python, torch, transformers and the devices."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    import torch

    for name in ("seqhf", "torch", "transformers", "datasets", "accelerate", "tokenizers", "huggingface_hub",
                 "matplotlib", "gradio", "onnx", "onnxruntime"):  # the extras' packages too
        print(f"- {name}: {installed(name)}")
    print(f"- Python: {platform.python_version()} ({platform.platform()})")
    print(f"- CUDA: {torch.cuda.is_available() and torch.cuda.get_device_name(0) or 'none'}; CPU cores: {os.cpu_count()}")


# The errors that mean bad input or a missing piece, shown as one line: the library's own (SetupError,
# DataError, FolderNotReadyError, MissingExtraError derive from these) and the standard ones it raises with a
# message that names the problem. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, ImportError)


# typer 0.29 carries its own click (typer._click); its usage errors derive from this class.
UsageError = typer.BadParameter.__mro__[1]


def main(argv=None) -> int:
    """The console script: run the app; an error is one line and exit code 1 (2 for a bad option)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = list(sys.argv[1:] if argv is None else argv)
    train.INVOCATION[:] = args  # `seqhf train ... --processes N` runs the same command line in N processes
    try:
        result = app(args=args, prog_name="seqhf", standalone_mode=False)
    except UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # a command called alone: its help, as git does
            print(err.format_message())
            return 0
        ctx = f"seqhf {err.ctx.command_path.split(' ', 1)[1]}: " if err.ctx and " " in err.ctx.command_path else ""
        print(f"error: {ctx}{err.format_message()}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, typer.Abort):
        return aborted(args)
    except USER_ERRORS as err:
        if os.environ.get("SEQHF_TRACEBACK"):
            raise
        message = str(err).strip().splitlines() or [type(err).__name__]
        line = f"error: {' '.join(part.strip() for part in message)}"
        if "RANK" in os.environ:  # a launched training process (torch is loaded by then)
            from ..utils.launch import leave_error_for_seqhf

            if leave_error_for_seqhf(line):  # `seqhf`, which launched it, says it once the launcher has ended
                return 1
        if main_process():  # each training process meets the same bad input: one says so
            print(line, file=sys.stderr)
        return 1
    if result == INTERRUPTED:  # typer turns Ctrl-C into Exit(130), which click returns here without a word
        return aborted(args)
    return result if isinstance(result, int) else 0


INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


def main_process() -> bool:
    """Not one of the other processes of a launched run (RANK > 0); read here without importing torch."""
    return os.environ.get("RANK", "0") == "0"


def aborted(args) -> int:
    """Ctrl-C: one line that says so and, for a training run, how to go on; said once, by the process that speaks
    (`seqhf` itself when it started the training processes, else the main one)."""
    from ..utils.launch import RELAUNCHED_ENV  # (torch is loaded by then: a training run was interrupted)

    if main_process() and not os.environ.get(RELAUNCHED_ENV):
        how = " To go on from the last checkpoint, run the same command with --resume." if args[:1] == ["train"] else ""
        print(f"error: aborted (interrupted).{how}", file=sys.stderr)
    return INTERRUPTED
