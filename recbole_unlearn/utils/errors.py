"""The one exception type that the CLI turns into a single ``error: ...`` line."""
import re


class UnlearnError(Exception):
    """A problem with the user's input (request file, config, dataset) or with a saved model.

    Raised *before* anything is written to disk; the message names the offending thing, on one
    line: control characters in it (a path holding a newline) are written as escapes, for the
    Python API as for the command line.
    """

    def __init__(self, *args):
        super().__init__(*(escaped_controls(a) if isinstance(a, str) else a for a in args))


class WentLiveError(Exception):
    """A run failed after a forget of it had gone live (a new version switched in): its message
    says what went live and what the next run completes. Not an input error: the folder changed,
    so the CLI exits with status 3, not 2 or 1."""


def one_line(text: object) -> str:
    """``text`` with every run of whitespace, newlines included, made one space."""
    return " ".join(str(text).split())


def escaped_controls(text: object) -> str:
    """``text`` with newlines and other control characters written as escapes (``\\n``), so that
    a message naming a path that holds one stays one line and says which path."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
                   for c in str(text))


#: a terminal's colour codes (Ray writes them into a worker's error)
_ANSI_CODES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def error_line(error: BaseException) -> str:
    """``<ExceptionType>: <message>`` on one line (for a ledger reason or an ``error:`` line),
    without terminal colour codes; an error Ray raises for a worker's (``RayTaskError(...)``,
    whose message is the worker's whole traceback) gives its cause's."""
    cause = getattr(error, "cause", None)
    if type(error).__name__.startswith("RayTaskError") and isinstance(cause, BaseException):
        return one_line(_ANSI_CODES.sub("", f"{type(cause).__name__} in a Ray worker: {cause}"))
    return one_line(_ANSI_CODES.sub("", f"{type(error).__name__}: {error}"))


def yaml_problem(error: Exception) -> str:
    """A YAML parse error as the end of a one-line message: `` (line L, column C): <what the
    parser expected>`` (PyYAML's own message spans several lines)."""
    mark = getattr(error, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    problem = one_line(getattr(error, "problem", None) or error)
    return f"{where}: {problem}"
