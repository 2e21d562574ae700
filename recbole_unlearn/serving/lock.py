"""The model folder's lock: one process at a time reads, changes or writes a version.

``filelock`` holds an OS lock on ``<model_dir>/.lock`` (released by the kernel if the holder
dies, SIGKILL included, so a crash never leaves the folder locked). The holder writes its pid
to ``<model_dir>/.lock.pid`` so that a process that gives up waiting can say who holds it; the
pid file is removed on release (a stale one after a crash is replaced; so is a link, never
written through).

The lock is re-entrant within a process: nested ``with store.lock():`` blocks hold it once.
"""
import os
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

from filelock import FileLock, Timeout

from recbole_unlearn.utils.errors import UnlearnError

LOCK = ".lock"
LOCK_PID = ".lock.pid"


class FolderUnlockable(UnlearnError):
    """The folder's lock file cannot be written (a read-only folder or mount)."""


class FolderLock:
    """Exclusive, re-entrant lock of one model folder.

    Args:
        model_dir: the folder (must exist).
        timeout_s: how long :meth:`hold` waits for another process (``lock_timeout_s``);
            0 fails at once.
    """

    def __init__(self, model_dir: str, timeout_s: float, what: str = "model folder"):
        self.model_dir = model_dir
        self.what = what
        self.timeout_s = float(timeout_s)
        self._lock = FileLock(os.path.join(model_dir, LOCK), is_singleton=False)
        self._depth = 0
        self._identity: Optional[Tuple[int, int]] = None  # (device, inode) of the lock file held

    def _holder(self) -> Optional[str]:
        try:
            with open(os.path.join(self.model_dir, LOCK_PID), "r", encoding="utf-8") as f:
                return f.read().strip() or None
        except OSError:
            return None

    def _unlockable(self, error: OSError) -> UnlearnError:
        why = ("answering requests and --verify write its lock file" if self.what == "model folder"
               else "its lock file is written while it is in use")
        return FolderUnlockable(f"{self.what} {self.model_dir} cannot be locked ({error.strerror}): {why}")

    def _write_pid(self) -> None:
        """Write this process's pid to a new ``.lock.pid``: whatever stood there (a stale file, or
        a link, which writing through would overwrite its target) is removed first."""
        path = os.path.join(self.model_dir, LOCK_PID)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(str(os.getpid()))
        except OSError:  # a full disk: the empty file made above is not left in the folder
            try:
                os.unlink(path)
            except OSError:
                pass
            raise

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for the block; raises ``UnlearnError`` (``model folder ... is busy
        (pid N)``) if another process still holds it after ``timeout_s`` seconds."""
        if self._depth == 0:
            try:
                self._lock.acquire(timeout=self.timeout_s)
            except Timeout:
                raise UnlearnError(
                    f"{self.what} {self.model_dir} is busy (pid {self._holder() or 'unknown'}): another "
                    f"process is changing it; waited {self.timeout_s:g}s"
                    + (" (lock_timeout_s)" if self.what == "model folder" else "")) from None
            except OSError as e:  # a read-only folder or mount
                raise self._unlockable(e) from None
            try:
                self._write_pid()
                self._identity = self._lock_file_identity()
            except OSError as e:
                self._lock.release()
                raise self._unlockable(e) from None
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                try:
                    os.unlink(os.path.join(self.model_dir, LOCK_PID))
                except OSError:
                    pass
                self._lock.release()

    @property
    def held(self) -> bool:
        return self._depth > 0

    def _lock_file_identity(self) -> Optional[Tuple[int, int]]:
        try:
            info = os.stat(os.path.join(self.model_dir, LOCK))
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def check_held(self) -> None:
        """Raise ``UnlearnError`` unless this process holds the lock and the folder's lock file is
        still the one it locked. Removed by hand (taken for a stale lock) or replaced with the
        folder, it no longer keeps another process out, and a commit could undo that process's
        version."""
        if not self.held:
            raise UnlearnError(f"model folder {self.model_dir}: a version is written only under its lock")
        if self._identity is None or self._lock_file_identity() != self._identity:
            raise UnlearnError(
                f"the lock file {os.path.join(self.model_dir, LOCK)} was removed or replaced while this process held "
                "it (by hand, or with the folder): another process may have changed the folder meanwhile, so "
                "nothing was committed; the requests stay queued for the next run (the lock is released when its "
                "holder ends, even when killed: never remove it by hand)")
