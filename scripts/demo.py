"""A Gradio page for a sentiment classifier and a char LM, or the Hub Space folder that serves it.

    python scripts/demo.py --classifier DIR_OR_REPO --generator DIR_OR_REPO [--port 7860] [--host 127.0.0.1]
    python scripts/demo.py --classifier OWNER/REPO --generator OWNER/REPO --write-space OUT

The first starts the page (Classify: label probabilities and each word shaded by how much it moved
the decision; Generate: the text streams in as it is sampled). The second writes a Space folder
(app.py, requirements.txt, README.md with the Space header) that loads the models by repo id with
trust_remote_code=True; push it with `scripts/push_to_hub.py OUT --repo-id OWNER/NAME --space`.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classifier", help="sentiment model: a training output folder or a Hub repo id")
    parser.add_argument("--generator", help="char LM: a training output folder or a Hub repo id")
    parser.add_argument("--write-space", metavar="OUT", help="write a Hub Space folder here instead of serving")
    parser.add_argument("--title", default="seqhf demo", help="page and Space title")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--trust-remote-code", action="store_true", help="run the code a Hub repo ships (not needed for seqhf folders)")
    args = parser.parse_args(argv)
    if not args.classifier and not args.generator:
        parser.error("give --classifier, --generator, or both")

    if args.write_space:
        from seqhf.demo.page import write_space

        try:
            files = write_space(args.write_space, args.classifier, args.generator, title=args.title)
        except ValueError as err:
            parser.error(str(err))
        print(f"wrote the Space folder {args.write_space}: " + ", ".join(files))
        return 0

    import seqhf  # noqa: F401  (registers the seqhf models, so local folders need no remote code)
    from seqhf.demo.page import build_app

    app = build_app(args.classifier, args.generator, trust_remote_code=args.trust_remote_code, title=args.title)
    app.launch(server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
