"""recbole_unlearn: machine unlearning for RecBole's sequential recommenders.

Importing the package is light: torch and RecBole load with the first subpackage that needs
them (each of those imports ``compat`` first) or with ``run_recbole_unlearn``, so that the
command line (``cli``) can catch SIGTERM before those seconds of imports start.
"""
from recbole_unlearn.version import __version__

__all__ = ["run_recbole_unlearn", "__version__"]


def __getattr__(name: str):
    if name == "run_recbole_unlearn":
        from recbole_unlearn.quick_start import run_recbole_unlearn

        return run_recbole_unlearn
    raise AttributeError(f"module 'recbole_unlearn' has no attribute {name!r}")
