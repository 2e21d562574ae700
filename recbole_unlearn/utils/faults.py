"""Fault injection for crash tests: ``RECBOLE_UNLEARN_KILL_AT=<point>`` makes the process kill
itself with SIGKILL when it reaches that point, exactly as an out-of-memory kill or a power cut
would (no ``finally`` blocks, no atexit). Unset (always, outside tests) it does nothing.

Points: ``shard_retrained`` (a forget retrained one shard, others pending), ``version_staged``
(the new version's files are written, the folder is not renamed yet), ``version_renamed`` (the
new version folder exists, ``CURRENT`` still names the old one), ``version_switched``
(``CURRENT`` names the new version, the version before it is not removed yet), ``current_switched``
(``CURRENT`` names the new version, the audit log has no entry yet), ``audit_appended`` (the
audit entry is written, the request ledger does not say ``applied`` yet), ``shard_training``
(a shard sub-model is being trained, in whatever process trains it: a Ray worker too).

``RECBOLE_UNLEARN_KILL_ONCE=<path>`` makes the kill happen once: the first process to reach the
point creates ``<path>`` and dies; later ones (a retry) see it and go on.
``RECBOLE_UNLEARN_KILL_SIGNAL=SIGTERM`` sends that signal instead (a service manager's stop).
"""
import os
import signal

ENV = "RECBOLE_UNLEARN_KILL_AT"
ONCE_ENV = "RECBOLE_UNLEARN_KILL_ONCE"
SIGNAL_ENV = "RECBOLE_UNLEARN_KILL_SIGNAL"


def fault_point(name: str) -> None:
    """SIGKILL this process if ``RECBOLE_UNLEARN_KILL_AT`` names ``name`` (once only, if
    ``RECBOLE_UNLEARN_KILL_ONCE`` names a marker file)."""
    if os.environ.get(ENV) != name:
        return
    marker = os.environ.get(ONCE_ENV)
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    os.kill(os.getpid(), getattr(signal, os.environ.get(SIGNAL_ENV, "SIGKILL")))
