"""One-line ``UnlearnError``s for config values of the wrong kind, shared by every check of
settings (``config key '<key>' must be ..., got <value>``). ``config`` is anything indexable by
key (an ``UnlearnConfig``)."""
from typing import Iterable

from recbole_unlearn.utils.errors import UnlearnError


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def require_positive_int(config, *keys: str) -> None:
    for key in keys:
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UnlearnError(f"config key '{key}' must be a positive integer, got {value!r}")


def require_positive_number(config, *keys: str) -> None:
    for key in keys:
        value = config[key]
        if not _is_number(value) or value <= 0:
            raise UnlearnError(f"config key '{key}' must be a positive number, got {value!r}")


def require_non_negative_number(config, *keys: str) -> None:
    for key in keys:
        value = config[key]
        if not _is_number(value) or value < 0:
            raise UnlearnError(f"config key '{key}' must be a non-negative number, got {value!r}")


def require_bool(config, *keys: str) -> None:
    for key in keys:
        if not isinstance(config[key], bool):
            raise UnlearnError(f"config key '{key}' must be True or False, got {config[key]!r}")


def require_choice(config, key: str, choices: Iterable[str]) -> None:
    choices = list(choices)
    if config[key] not in choices:
        raise UnlearnError(f"config key '{key}' must be one of {', '.join(choices)}, got {config[key]!r}")
