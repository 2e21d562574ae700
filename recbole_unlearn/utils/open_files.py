"""Whether another process still holds a file open for writing (a watched request file whose
writer has not finished)."""
import errno
import os
import signal
import threading
from typing import Optional

try:
    import fcntl
except ImportError:  # not a POSIX system: cannot be told
    fcntl = None

#: Linux's ``F_SETLEASE``, where this Python does not name it
_F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)


def being_written(path: str) -> Optional[bool]:
    """Whether some process (any, this one included) holds the file at ``path`` open for
    writing; ``None`` where this cannot be told.

    Linux refuses a read lease (``fcntl(F_SETLEASE, F_RDLCK)``) with ``EAGAIN`` while the file is
    open for writing anywhere; the lease, when granted, is given back at once. It is asked only
    from the main thread, with ``SIGIO`` ignored meanwhile: a writer opening the file in that
    instant breaks the lease by sending ``SIGIO``, whose default action ends the process. Not
    Linux, another thread, a file of another user (a lease needs its owner or ``CAP_LEASE``), a
    file system without leases: ``None``."""
    if fcntl is None or not hasattr(signal, "SIGIO") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    previous = signal.signal(signal.SIGIO, signal.SIG_IGN)
    try:
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_RDLCK)
    except OSError as error:
        return True if error.errno == errno.EAGAIN else None
    else:
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)
        signal.signal(signal.SIGIO, previous)
