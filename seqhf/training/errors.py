"""The error a run reports to its user as one `error:` line (the scripts and the `seqhf` command catch it)."""


class SetupError(ValueError):
    """A run that cannot start or go on as asked: bad input found before training (missing data, an empty
    split, bad labels, a bad --seq-len), an output folder another run holds, or a full disk. The message says
    what is wrong and what to do."""
