"""Whether a folder can be made and written in, found by trying it and leaving nothing."""
import os
import shutil
import tempfile
from typing import Optional


def write_trial(folder: str, prefix: str, file_name: str) -> None:
    """Make ``folder`` (and the folders missing above it), a folder ``<prefix><random>`` in it
    holding an empty ``file_name``, then remove all it made (on the path as the kernel resolves
    it: ``..`` and links included; a folder another process has filled meanwhile stays). Raises
    the ``OSError`` of the first step that failed (a read-only mount, no permission, a file on the
    way, a name too long)."""
    target = os.path.realpath(folder)
    created, path = [], target
    while not os.path.exists(path):
        created.append(path)
        path = os.path.dirname(path)
    try:
        for attempt in range(3):  # another process may create or remove the same folders meanwhile
            try:
                os.makedirs(target, exist_ok=True)
                trial = tempfile.mkdtemp(prefix=prefix, dir=target)
                break
            except (FileNotFoundError, FileExistsError):
                if attempt == 2:
                    raise
        try:
            with open(os.path.join(trial, file_name), "w", encoding="utf-8"):
                pass
        finally:
            shutil.rmtree(trial, ignore_errors=True)
    finally:
        for made in created:  # deepest first
            try:
                os.rmdir(made)
            except OSError:
                pass


def dangling_link_problem(path: str) -> Optional[str]:
    """``<link> is a link to nothing (<its target>)`` for the link :func:`dangling_link_on` finds
    on ``path``, else ``None``: the reason a folder there cannot be made (for an error line)."""
    dangling = dangling_link_on(path)
    return f"{dangling} is a link to nothing ({os.readlink(dangling)})" if dangling else None


def dangling_link_on(path: str) -> Optional[str]:
    """The first folder on ``path``'s way (``path`` itself included) that is a symbolic link to
    nothing, walked as the kernel walks it (a link is followed before a ``..`` after it), else
    ``None``; the walk stops at the first name that does not exist yet (the rest is made).
    :func:`write_trial` follows such a link and makes its target, where ``os.makedirs`` on the
    path as given fails."""
    current = os.path.abspath(os.sep) if os.path.isabs(path) else os.getcwd()
    for part in path.split(os.sep):
        if part in ("", "."):
            continue
        if part == "..":
            current = os.path.dirname(current)
            continue
        step = os.path.join(current, part)
        if os.path.islink(step) and not os.path.exists(step):
            return step
        if not os.path.exists(step):
            return None
        current = os.path.realpath(step)
    return None
