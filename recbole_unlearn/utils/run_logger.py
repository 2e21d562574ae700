"""RecBole's logger, set up afresh for every run in one process.

RecBole's ``init_logger`` configures the root logger with ``logging.basicConfig``, which does
nothing once the root logger has handlers: in a notebook (or a grid of cells) the second run's
lines went into the first run's log file, at the first run's level. :func:`init_run_logger`
removes the handlers the previous run's ``init_logger`` added (and only those: a caller's own
handlers are kept, and receive the run's lines too) before calling it again.
"""
import logging
from typing import List

from recbole.utils import init_logger

_added: List[logging.Handler] = []  # the handlers the last init_run_logger added


def init_run_logger(config) -> None:
    """``recbole.utils.init_logger(config)``, so that it takes effect in every run."""
    root = logging.getLogger()
    for handler in _added:
        root.removeHandler(handler)
        handler.close()
    _added.clear()
    kept = list(root.handlers)  # the caller's own
    for handler in kept:
        root.removeHandler(handler)
    init_logger(config)
    _added.extend(root.handlers)
    for handler in kept:
        root.addHandler(handler)
