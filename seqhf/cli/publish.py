"""`seqhf export`, `seqhf push`, `seqhf push-space` and `seqhf demo`: from a trained folder to users."""

import importlib
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .evaluate import loading_from, loads_models


def export(
    model_dir: Annotated[Path, typer.Argument(help="a folder written by `seqhf train ...`")],
    out: Annotated[Path, typer.Argument(help="where model.onnx, the config, the tokenizer and onnx_export.json go")],
    int8: Annotated[bool, typer.Option(help="also write model_int8.onnx (classifiers)")] = False,
    imdb: Annotated[Optional[Path], typer.Option(help="measure accuracy on this IMDb copy's test split")] = None,
    limit: Annotated[Optional[int], typer.Option(help="with --imdb: only the first N test reviews", min=1)] = None,
):
    """Export a trained folder to ONNX (float, and dynamic int8 for classifiers), checked against PyTorch."""
    if not (model_dir / "config.json").is_file():
        raise typer.BadParameter(f"{model_dir} has no config.json: give the output folder of a training run")
    architectures = json.loads((model_dir / "config.json").read_text()).get("architectures") or []
    classifier = any(name.endswith("ForSequenceClassification") for name in architectures)
    for option, given, does in (("--imdb", imdb, "measures"), ("--int8", int8, "quantizes")):
        if given and not classifier:
            raise typer.BadParameter(f"{option} {does} a classifier; {model_dir} holds "
                                     f"{', '.join(architectures) or 'no model'}", param_hint=option)
    if limit is not None and not imdb:
        raise typer.BadParameter("--limit counts the reviews of --imdb: give --imdb PATH too", param_hint="--limit")
    from ..utils.extras import require_extra

    require_extra("onnx", "ONNX export")
    loads_models()
    from ..export.onnx_export import MANIFEST_FILE, export_folder

    manifest = export_folder(str(model_dir), str(out), int8=int8)
    print(f"wrote {out}/model.onnx ({manifest['task']}); largest difference from PyTorch {manifest['max_abs_diff']:.2e}")
    if int8:
        print(f"wrote {out}/{manifest['int8']} (dynamic int8)")
    if imdb:
        from ..export.onnx_export import imdb_accuracy

        manifest["imdb_accuracy"] = imdb_accuracy(str(model_dir), str(out), str(imdb), limit=limit, log=print)
        (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        print(json.dumps(manifest["imdb_accuracy"], indent=2))


def transport_errors() -> tuple:
    """The "could not reach the server" errors of the HTTP client huggingface_hub uses."""
    errors = []
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except ImportError:
            pass
    return tuple(errors)


def upload(run, what: str, dry_run: bool, revision: Optional[str] = None):
    """Run an upload; Hub and network failures become one line."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    from ..hub.upload import MissingTokenError, format_upload_plan

    try:
        result = run()
    except MissingTokenError as err:
        raise ValueError(str(err)) from err
    except HfHubHTTPError as err:  # bad or read-only token, no rights on the namespace, ...
        raise ValueError(f"the Hub refused the upload: {err}") from err
    except OfflineModeIsEnabled as err:
        raise ValueError("offline mode is on (HF_HUB_OFFLINE is set), so nothing was uploaded; unset it to push.") from err
    except transport_errors() as err:  # no network, DNS failure, proxy, timeout
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot reach the Hub at {constants.ENDPOINT} ({reason}); nothing was uploaded.") from err
    if dry_run:
        print(f"Dry run: would upload {what}" + (f" @ {revision}" if revision else ""))
        print(format_upload_plan(result))
    else:
        print(f"Uploaded: {getattr(result, 'commit_url', result)}")


def push(
    model_dir: Annotated[Path, typer.Argument(help="the trained model folder (output dir of a training run)")],
    repo_id: Annotated[str, typer.Option(help="'name' or 'owner/name' of the model repository")],
    private: Annotated[bool, typer.Option(help="create the repository as private")] = False,
    revision: Annotated[Optional[str], typer.Option(help="branch to commit to (created if missing); default main")] = None,
    commit_message: Optional[str] = None,
    dry_run: Annotated[bool, typer.Option(help="validate and list the files, upload nothing")] = False,
):
    """Publish a trained folder to the Hub: checked complete and pickle-free, its card, one commit."""
    from ..hub.upload import push_folder

    upload(lambda: push_folder(str(model_dir), repo_id, private=private, revision=revision,
                               commit_message=commit_message, dry_run=dry_run),
           f"to {repo_id}", dry_run, revision)


def push_space(
    space_dir: Annotated[Path, typer.Argument(help="a Space folder written by `seqhf demo --write-space`")],
    repo_id: Annotated[str, typer.Option(help="'owner/name' of the Space")],
    private: bool = False,
    commit_message: Optional[str] = None,
    dry_run: Annotated[bool, typer.Option(help="validate and list the files, upload nothing")] = False,
):
    """Publish the demo page as a Hub Space (Gradio)."""
    from ..hub.space import push_space as push

    upload(lambda: push(str(space_dir), repo_id, private=private, commit_message=commit_message, dry_run=dry_run),
           f"the Space {repo_id}", dry_run)


def demo(
    classifier: Annotated[Optional[str], typer.Option(help="sentiment model: a training output folder or a Hub repo id")] = None,
    generator: Annotated[Optional[str], typer.Option(help="char LM: a training output folder or a Hub repo id")] = None,
    write_space: Annotated[Optional[Path], typer.Option(help="write a Hub Space folder here instead of serving")] = None,
    title: str = "seqhf demo",
    host: Annotated[str, typer.Option(help="address to serve on (0.0.0.0 for every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 7860,
    trust_remote_code: Annotated[bool, typer.Option(help="run the code a Hub repo ships (not needed for seqhf folders)")] = False,
):
    """Serve the demo page (classify with word attributions, generate with streaming), or write its Space."""
    if not classifier and not generator:
        raise typer.BadParameter("give --classifier, --generator, or both")
    from ..utils.extras import require_extra

    require_extra("demo", "The demo page")
    if write_space:
        from ..demo.page import write_space as write

        files = write(str(write_space), classifier, generator, title=title)
        print(f"wrote the Space folder {write_space}: " + ", ".join(files))
        return
    loads_models()
    from ..demo.page import build_app

    with loading_from(classifier, generator):
        app = build_app(classifier, generator, trust_remote_code=trust_remote_code, title=title)
    try:
        app.launch(server_name=host, server_port=port)
    except OSError as err:  # gradio says "Cannot find empty port" whichever it was
        raise ValueError(f"cannot serve the demo on {host}:{port}: the port is taken, or {host} is not an address of "
                         "this machine; choose another --port or --host.") from err
