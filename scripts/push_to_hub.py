"""Publish a trained seqhf folder to the Hugging Face Hub in one commit.

    python scripts/push_to_hub.py runs/imdb-bilstm --repo-id you/imdb-bilstm [--private]
        [--revision REV] [--commit-message M] [--dry-run]
    python scripts/push_to_hub.py SPACE_DIR --repo-id you/seqhf-demo --space [--dry-run]

The folder is validated first (config with auto_map, code files, model.safetensors, tokenizer files,
README.md card, no pickle files); the token comes from HF_TOKEN or `hf auth login`.
"""

import argparse
import importlib
import sys
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="the trained model folder (output_dir of a training run)")
    parser.add_argument("--repo-id", required=True, help="'name' or 'owner/name' of the model repository")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", default=None, help="branch to commit to (created if missing); default main")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument("--dry-run", action="store_true", help="validate and list the files, upload nothing")
    parser.add_argument("--space", action="store_true", help="DIR is a Space folder (scripts/demo.py --write-space)")
    return parser.parse_args(argv)


def transport_errors():
    """The "could not reach the server" errors of the HTTP client huggingface_hub uses (httpx2 from
    huggingface_hub 2.x, httpx in 1.x)."""
    errors = []
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except ImportError:
            pass
    return tuple(errors)


def main(argv=None):
    args = parse_args(argv)
    # The heavy imports come after the arguments are checked, so --help and mistakes answer at once.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    from seqhf.hub.upload import FolderNotReadyError, MissingTokenError, format_upload_plan, push_folder
    from seqhf.hub.space import push_space

    if args.space and args.revision:
        print("error: --revision is for model repositories; a Space is pushed to its main branch", file=sys.stderr)
        return 2
    try:
        if args.space:
            result = push_space(args.dir, args.repo_id, private=args.private, commit_message=args.commit_message,
                                dry_run=args.dry_run)
        else:
            result = push_folder(args.dir, args.repo_id, private=args.private, revision=args.revision,
                                 commit_message=args.commit_message, dry_run=args.dry_run)
    except (FolderNotReadyError, MissingTokenError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except HfHubHTTPError as err:  # bad or read-only token, no rights on the namespace, ...
        print(f"error: the Hub refused the upload: {err}", file=sys.stderr)
        return 1
    except OfflineModeIsEnabled:
        print("error: offline mode is on (HF_HUB_OFFLINE is set), so nothing was uploaded; unset it to push.",
              file=sys.stderr)
        return 1
    except transport_errors() as err:  # no network, DNS failure, proxy, timeout
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: cannot reach the Hub at {constants.ENDPOINT} ({reason}); nothing was uploaded.", file=sys.stderr)
        return 1
    what = f"the Space {args.repo_id}" if args.space else f"to {args.repo_id}"
    if args.dry_run:
        print(f"Dry run: would upload {what}" + (f" @ {args.revision}" if args.revision else ""))
        print(format_upload_plan(result))
    else:
        print(f"Uploaded: {getattr(result, 'commit_url', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
