"""The one exception type that the CLI turns into a single ``error: ...`` line."""


class UnlearnError(Exception):
    """A problem with the user's input (request file, config, dataset) or with a saved model.

    Raised *before* anything is written to disk; the message names the offending thing.
    """
