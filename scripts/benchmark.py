"""Speed and memory of seqhf against plain PyTorch and transformers' own models.

python scripts/benchmark.py [--quick] [--device cpu|cuda] [--json OUT] [--reviews N] [--only GROUP ...] [--threads N]
"""

import argparse
import os
import sys

# The row groups of benchmarks.benchmark.ROW_GROUPS, named here so that --help needs no torch (a test checks).
ROW_GROUP_NAMES = ("train", "generate", "decode", "pipeline", "onnx")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test (<= 60 s on 2 cores); figures not comparable")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--json", metavar="OUT", help="write the ratios (one key per row) and all figures here")
    parser.add_argument(
        "--imdb", default=None, help="local IMDb folder (default: ../shared/data/imdb; synthetic reviews if absent)"
    )
    parser.add_argument("--reviews", type=int, help="how many of the 1,000 test reviews the pipeline rows read")
    parser.add_argument("--only", nargs="+", choices=ROW_GROUP_NAMES, help="run only these row groups")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    args = parser.parse_args(argv)
    if args.reviews is not None and not 1 <= args.reviews <= 1000:
        parser.error(f"--reviews must be in [1, 1000], got {args.reviews}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    return parser, args


def main(argv=None):
    parser, args = parse_args(argv)
    # The heavy imports come after the arguments are checked, so --help and mistakes answer at once.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
    import torch

    from benchmarks.benchmark import IMDB_DIR, format_table, run_benchmark, write_json

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = run_benchmark(
        quick=args.quick,
        device=args.device,
        imdb_dir=args.imdb or IMDB_DIR,
        reviews=args.reviews,
        only=args.only,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
