"""Print the README's results table from model_cards/measured/*_eval_*.json, or write it into README.md.

    python scripts/results_table.py            # print
    python scripts/results_table.py --write    # replace the table between the README's markers
"""

import argparse
from pathlib import Path

from seqhf.results import MEASURED_DIR, load_measured, results_table, update_readme

README = Path(__file__).resolve().parents[1] / "README.md"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measured", default=str(MEASURED_DIR), help="folder of *_eval_*.json files")
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    args = parser.parse_args()
    table = results_table(load_measured(args.measured))
    if args.write:
        README.write_text(update_readme(README.read_text(), table))
        print(f"Updated {README}")
    else:
        print(table)


if __name__ == "__main__":
    main()
