"""Print the results and benchmark tables from model_cards/measured/, or write them into the docs pages.

    python scripts/results_table.py            # print
    python scripts/results_table.py --write    # replace the tables between the markers of docs/results.md and docs/performance.md
"""

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_PAGE = REPO / "docs" / "results.md"
PERFORMANCE_PAGE = REPO / "docs" / "performance.md"
MEASURED_DIR = REPO / "model_cards" / "measured"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measured", default=str(MEASURED_DIR), help="folder of *_eval_*.json and *_benchmark.json")
    parser.add_argument("--write", action="store_true", help="update docs/results.md and docs/performance.md in place")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from benchmarks.results import benchmark_table, load_benchmarks, load_measured, results_table, update_benchmark_block, update_readme

    results = results_table(load_measured(args.measured))
    benchmarks = benchmark_table(*load_benchmarks(args.measured))
    if args.write:
        RESULTS_PAGE.write_text(update_readme(RESULTS_PAGE.read_text(), results))
        PERFORMANCE_PAGE.write_text(update_benchmark_block(PERFORMANCE_PAGE.read_text(), benchmarks))
        print(f"Updated {RESULTS_PAGE} and {PERFORMANCE_PAGE}")
    else:
        print(results, benchmarks, sep="\n\n")


if __name__ == "__main__":
    main()
