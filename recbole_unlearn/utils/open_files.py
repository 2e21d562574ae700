"""Whether a process still holds a file open for writing (a watched request file whose writer
has not finished), and which files this process itself writes."""
import errno
import os
import signal
import stat
from typing import Optional, Set, Tuple

try:
    import fcntl
except ImportError:  # not a POSIX system: cannot be told
    fcntl = None

#: Linux's ``F_SETLEASE`` and ``F_SETSIG``, where this Python does not name them
_F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)
_F_SETSIG = getattr(fcntl, "F_SETSIG", 10)
#: the signal a lease break would send: SIGURG, which a process ignores unless it asks for it
#: (the default, SIGIO, ends it: a writer opening the file in the instant of the check would)
_BREAK_SIGNAL = getattr(signal, "SIGURG", None)


def being_written(path: str) -> Optional[bool]:
    """Whether some process (this one included) holds the regular file at ``path`` open for
    writing; ``None`` where this cannot be told.

    Linux refuses a read lease (``fcntl(F_SETLEASE, F_RDLCK)``) with ``EAGAIN`` while the file is
    open for writing anywhere; the lease, when granted, is given back at once, its break signal
    set to ``SIGURG`` first, so the check is safe from any thread. Not Linux, a file of another
    user (a lease needs its owner or ``CAP_LEASE``), a file system without leases, not a regular
    file: ``None``."""
    if fcntl is None or _BREAK_SIGNAL is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        fcntl.fcntl(fd, _F_SETSIG, _BREAK_SIGNAL)
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_RDLCK)
    except OSError as error:
        return True if error.errno == errno.EAGAIN else None
    else:
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


def written_by_this_process() -> Set[Tuple[int, int]]:
    """``(device, inode)`` of the files this process holds open for writing (Linux:
    ``/proc/self/fd``; an empty set elsewhere), such as its own log redirected into a watched
    folder, which it would otherwise wait on for ever."""
    found = set()
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            with open(f"/proc/self/fdinfo/{fd}", "r", encoding="ascii") as f:
                flags = next((int(line.split()[1], 8) for line in f if line.startswith("flags:")), 0)
            if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
                info = os.stat(f"/proc/self/fd/{fd}")
                if stat.S_ISREG(info.st_mode):
                    found.add((info.st_dev, info.st_ino))
        except (OSError, ValueError):
            continue
    return found
