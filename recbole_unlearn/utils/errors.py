"""The one exception type that the CLI turns into a single ``error: ...`` line."""


class UnlearnError(Exception):
    """A problem with the user's input (request file, config, dataset) or with a saved model.

    Raised *before* anything is written to disk; the message names the offending thing.
    """


def yaml_problem(error: Exception) -> str:
    """A YAML parse error as the end of a one-line message: `` (line L, column C): <what the
    parser expected>`` (PyYAML's own message spans several lines)."""
    mark = getattr(error, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    problem = " ".join(str(getattr(error, "problem", None) or error).split())
    return f"{where}: {problem}"
