"""Crash-safe file writes: write a temporary file in the same folder, fsync, rename, then fsync
the folder so the rename itself is durable."""
import io
import json
import os
import tempfile
from typing import Any, Callable

import torch


#: the name prefix of :func:`atomic_write`'s temporary files (one a killed process left is stale)
TEMP_PREFIX = ".tmp-"


def atomic_write(path: str, write: Callable[[io.BufferedWriter], None]) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def fsync_dir(folder: str) -> None:
    """fsync a folder, so that a rename or a new entry in it survives a power cut (POSIX; a
    no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    data = json.dumps(obj, indent=2, sort_keys=False).encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def save_weights(path: str, state_dict: dict) -> None:
    """Save a ``state_dict`` (tensors only) so that ``torch.load(weights_only=True)`` reads it.
    Serialised in memory first, so that a full disk is the ``OSError`` it is (ENOSPC), not the
    ``RuntimeError: ... unexpected pos`` torch's zip writer turns it into."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))
