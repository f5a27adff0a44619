"""`python -m seqhf` (and `accelerate launch -m seqhf ...`): the `seqhf` command."""

import sys

from .cli.app import main

if __name__ == "__main__":
    sys.exit(main())
