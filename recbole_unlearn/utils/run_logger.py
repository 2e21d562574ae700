"""RecBole's logger, set up afresh for every run in one process.

RecBole's ``init_logger`` configures the root logger with ``logging.basicConfig``, which does
nothing once the root logger has handlers: in a notebook (or a grid of cells) the second run's
lines went into the first run's log file, at the first run's level. :func:`init_run_logger`
removes the handlers the previous run's ``init_logger`` added (and only those: a caller's own
handlers are kept, and receive the run's lines too) before calling it again, and
:func:`release_run_logger` (at the end of every run) removes them and gives the root logger its
caller's level back, so a notebook's own logging is as it was after each run.
"""
import functools
import logging
from typing import Callable, List, Optional, TypeVar

from recbole_unlearn import compat  # noqa: F401  (before RecBole: NumPy aliases, anomaly detection off)
import colorlog
from colorama import init as colorama_init
from recbole.utils import init_logger
from recbole.utils.logger import RemoveColorFilter, log_colors_config

_added: List[logging.Handler] = []  # the handlers the last init_run_logger added
_caller_level: List[int] = []  # the root level before the first run's logger, while one is set up


def init_run_logger(config, log_file: Optional[str] = None) -> None:
    """``recbole.utils.init_logger(config)``, so that it takes effect in every run. With
    ``log_file`` the run logs there, with RecBole's formats and level (``state``), and writes no
    ``log/`` folder into the working directory (a run answering requests leaves it as it was)."""
    root = logging.getLogger()
    if not _caller_level:
        _caller_level.append(root.level)
    _remove_added(root)
    kept = list(root.handlers)  # the caller's own
    for handler in kept:
        root.removeHandler(handler)
    if log_file is None:
        init_logger(config)
    else:
        _log_to(config, log_file)
    _added.extend(root.handlers)
    for handler in kept:
        root.addHandler(handler)


def _log_to(config, log_file: str) -> None:
    """What ``init_logger`` sets up (a colour console handler, a plain file handler, the level of
    ``state``), with the file at ``log_file`` instead of ``./log/<model>/``."""
    colorama_init(autoreset=True)  # as init_logger does: colour codes only where the output is a terminal
    state = str(config["state"] or "info").upper()
    level = getattr(logging, state) if state in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else logging.INFO
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)-15s %(levelname)s  %(message)s", "%a %d %b %Y %H:%M:%S"))
    file_handler.addFilter(RemoveColorFilter())
    console = logging.StreamHandler()
    console.setFormatter(colorlog.ColoredFormatter("%(log_color)s%(asctime)-15s %(levelname)s  %(message)s",
                                                   "%d %b %H:%M", log_colors=log_colors_config))
    for handler in (file_handler, console):
        handler.setLevel(level)
    logging.basicConfig(level=level, handlers=[console, file_handler])


def release_run_logger() -> None:
    """Remove the run's handlers (its log file is closed) and restore the caller's root level."""
    root = logging.getLogger()
    _remove_added(root)
    level: Optional[int] = _caller_level.pop() if _caller_level else None
    if level is not None:
        root.setLevel(level)


def _remove_added(root: logging.Logger) -> None:
    for handler in _added:
        root.removeHandler(handler)
        handler.close()
    _added.clear()


F = TypeVar("F", bound=Callable)


def releasing_run_logger(function: F) -> F:
    """Decorate a run's entry point so that :func:`release_run_logger` runs when it returns or raises."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            release_run_logger()
    return wrapper  # type: ignore[return-value]
