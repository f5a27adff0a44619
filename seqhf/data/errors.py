"""The error every data problem is raised as, before any training starts."""


class DataError(ValueError):
    """The data cannot be trained on as given; the message says why and what to do."""
