"""Speed and memory of seqhf against plain PyTorch and transformers' own models (issue 7).

python scripts/benchmark.py [--quick] [--device cpu|cuda] [--json OUT] [--reviews N] [--only GROUP ...] [--threads N]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from seqhf.benchmark import IMDB_DIR, ROW_GROUPS, format_table, run_benchmark, write_json  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test (<= 60 s on 2 cores); figures not comparable")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--json", metavar="OUT", help="write the ratios (issue 7's keys) and all figures here")
    parser.add_argument("--imdb", default=IMDB_DIR, help="local IMDb folder (synthetic reviews if absent)")
    parser.add_argument("--reviews", type=int, help="how many of the 1,000 test reviews the pipeline rows read")
    parser.add_argument("--only", nargs="+", choices=tuple(ROW_GROUPS), help="run only these row groups")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    args = parser.parse_args(argv)
    if args.reviews is not None and not 1 <= args.reviews <= 1000:
        parser.error(f"--reviews must be in [1, 1000], got {args.reviews}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device here")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    result = run_benchmark(
        quick=args.quick,
        device=args.device,
        imdb_dir=args.imdb,
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
