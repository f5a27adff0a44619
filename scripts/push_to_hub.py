"""Publish a trained seqhf folder to the Hugging Face Hub in one commit.

    python scripts/push_to_hub.py runs/imdb-bilstm --repo-id you/imdb-bilstm [--private]
        [--revision REV] [--commit-message M] [--dry-run]
    python scripts/push_to_hub.py SPACE_DIR --repo-id you/seqhf-demo --space [--dry-run]

The folder is validated first (config with auto_map, code files, model.safetensors, tokenizer files,
README.md card, no pickle files); the token comes from HF_TOKEN or `hf auth login`.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from huggingface_hub.errors import HfHubHTTPError  # noqa: E402

from seqhf.hub import FolderNotReadyError, MissingTokenError, format_upload_plan, push_folder  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="the trained model folder (output_dir of a training run)")
    parser.add_argument("--repo-id", required=True, help="'name' or 'owner/name' of the model repository")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", default=None, help="branch to commit to (created if missing); default main")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument("--dry-run", action="store_true", help="validate and list the files, upload nothing")
    parser.add_argument("--space", action="store_true", help="DIR is a Space folder (scripts/demo.py --write-space)")
    args = parser.parse_args(argv)
    if args.space:
        return main_space(args)

    try:
        result = push_folder(
            args.dir,
            args.repo_id,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message,
            dry_run=args.dry_run,
        )
    except (FolderNotReadyError, MissingTokenError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except HfHubHTTPError as err:  # bad or read-only token, no rights on the namespace, ...
        print(f"error: the Hub refused the upload: {err}", file=sys.stderr)
        return 1
    if args.dry_run:
        print(f"Dry run: would upload to {args.repo_id}" + (f" @ {args.revision}" if args.revision else ""))
        print(format_upload_plan(result))
    else:
        print(f"Uploaded: {getattr(result, 'commit_url', result)}")
    return 0


def main_space(args):
    """--space: validate the Space folder and push it (or list it, with --dry-run)."""
    from seqhf.hub import push_space

    if args.revision:
        print("error: --revision is for model repositories; a Space is pushed to its main branch", file=sys.stderr)
        return 2
    try:
        result = push_space(
            args.dir, args.repo_id, private=args.private, commit_message=args.commit_message, dry_run=args.dry_run
        )
    except (FolderNotReadyError, MissingTokenError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except HfHubHTTPError as err:
        print(f"error: the Hub refused the upload: {err}", file=sys.stderr)
        return 1
    if args.dry_run:
        print(f"Dry run: would upload the Space {args.repo_id}")
        print(format_upload_plan(result))
    else:
        print(f"Uploaded: {getattr(result, 'commit_url', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
