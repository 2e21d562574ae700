"""The warnings RecBole 1.2.1 and its libraries (pandas, torch, ray, setuptools) emit on every
run, which the command line and the API's ``verbose=False`` keep off the console. Light: the
command line imports it before anything heavy."""
import warnings

#: ``(category, message pattern)`` of each: pandas' and torch's FutureWarnings (16 lines a run),
#: DeprecationWarnings, and setuptools' ``pkg_resources`` notice (whatever its category)
LIBRARY_WARNINGS = ((FutureWarning, ""), (DeprecationWarning, ""), (Warning, ".*pkg_resources.*"))


def ignore_library_warnings() -> None:
    """Add an ``ignore`` filter for each of :data:`LIBRARY_WARNINGS` (inside
    ``warnings.catch_warnings()`` to keep it to a block)."""
    for category, message in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
