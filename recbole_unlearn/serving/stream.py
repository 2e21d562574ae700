"""Deletion request streams for a saved model: a request file processed in order, or a folder
watched for new request files. Requests are identified by content
(``serving.request_files``), queued and coalesced by ``serving.batcher``, and applied through
``serving.apply.apply_forget``; every run ends with a summary whose counts add up.
"""
import os
import shutil
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from logging import getLogger
from typing import Callable, Dict, List, Optional, Tuple

from recbole_unlearn.data.utils import atomic_files
from recbole_unlearn.serving.batcher import RequestBatcher, StreamSummary, final_request_ids
from recbole_unlearn.serving.ledger import LEDGER
from recbole_unlearn.serving.request_files import FileRequest, bytes_digest, file_digest, file_requests, request_id
from recbole_unlearn.serving.store import ModelStore
from recbole_unlearn.unlearnable import UnlearnableModel
from recbole_unlearn.utils.atomic import fsync_dir
from recbole_unlearn.utils.errors import UnlearnError, WentLiveError, error_line
from recbole_unlearn.utils.open_files import being_written, written_by_this_process

PROCESSED = "processed"
REJECTED = "rejected"
#: names of files not finished yet, never read (any case): the README's ``.name`` and
#: ``name.tmp``, editors' backups, autosaves, swap and lock files, partial downloads and transfers
UNFINISHED_PREFIXES = (".", "#", "~$")
UNFINISHED_SUFFIXES = (".tmp", "~", "#", ".swp", ".swx", ".part", ".partial", ".filepart", ".crdownload",
                       ".download")


def is_unfinished_name(name: str) -> bool:
    """Whether ``name`` is a file name a writer or tool gives a file it has not finished."""
    lower = name.lower()
    return lower.startswith(UNFINISHED_PREFIXES) or lower.endswith(UNFINISHED_SUFFIXES)


class RequestsInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM (see ``cli``) while a run answered requests; its text says what the run
    had applied by then and how many requests it read without recording an outcome: the forget
    it cut short may have gone live (then the next run's audit reconciliation records them) or
    not (then the ledger keeps them ``queued`` and the next run applies them first). Requests
    read whose ``queued`` lines the stop cut off (or came before) are not in the ledger for sure:
    ``again`` says how they are read again (the file given again; a watched folder keeps it)."""

    def __init__(self, summary: StreamSummary, ledger: str, again: str = "give their request file again"):
        self.summary = summary
        # every final outcome but a rejection: already forgotten ones are applied in the ledger too
        applied = sum(n for outcome, n in summary.outcomes.items() if outcome != "rejected")
        waiting = summary.queued - sum(summary.outcomes.values())
        unqueued = summary.being_queued
        super().__init__(f"{applied} request{'' if applied == 1 else 's'} applied, "
                         f"{summary.outcomes['rejected']} rejected, {waiting} request{'' if waiting == 1 else 's'} "
                         "read and not recorded as applied yet (a forget in progress may have gone live): "
                         f"{ledger} keeps them, and the next run answering requests on this model folder "
                         "records those that went live and applies the others, once"
                         + (f"; {unqueued} request{'' if unqueued == 1 else 's'} read and not queued (the stop came "
                            f"before or while {'its' if unqueued == 1 else 'their'} ledger lines were written): "
                            f"{again} (requests the ledger holds are skipped, so none is applied twice)"
                            if unqueued else "")
                         + (f"; removed {', '.join(r['version'] for r in summary.removed_versions)} (version folders "
                            "from before the live one, or never live: the run's log says which)"
                            if summary.removed_versions else ""))  # said only in the log (r10round4 probe)


class AppliedThenFailed(WentLiveError):
    """A request run failed after some of its requests went live (a later batch's forget, writing
    ``results.json``, the evaluation): says so, rather than the bare error of a run that changed
    nothing."""

    def __init__(self, summary: StreamSummary, ledger: str, error: BaseException):
        applied = summary.outcomes["applied"] + summary.outcomes["applied_without_change"]
        super().__init__(f"{applied} request{'' if applied == 1 else 's'} of this run went live "
                         f"({', '.join(summary.versions)}) and {'is' if applied == 1 else 'are'} recorded in {ledger} "
                         f"and the audit log; then the run failed: {error_line(error)}. Requests not applied yet "
                         "stay in the ledger, and the next run answering requests on this folder applies them once")


@contextmanager
def says_what_went_live(summary: StreamSummary, ledger: str, again: str = "give their request file again"):
    """Turn a ``KeyboardInterrupt`` inside a request run into :class:`RequestsInterrupted` (``again``:
    how requests read and not queued are read again), and any other failure after some of its
    requests went live into :class:`AppliedThenFailed`."""
    try:
        yield
    except (RequestsInterrupted, WentLiveError):
        raise
    except KeyboardInterrupt:
        raise RequestsInterrupted(summary, ledger, again) from None
    except Exception as error:
        if not summary.outcomes["applied"] + summary.outcomes["applied_without_change"]:
            raise  # nothing of this run went live (already forgotten requests make no version)
        raise AppliedThenFailed(summary, ledger, error) from error


def _interrupt_says_what_waits(batcher: RequestBatcher, again: str):
    """:func:`says_what_went_live` for ``batcher``'s run."""
    return says_what_went_live(batcher.summary, os.path.join(batcher.store.model_dir, LEDGER), again)


def stream_request_file(store: ModelStore, model: UnlearnableModel, path: str,
                        when_valid: Callable[[], None] = lambda: None) -> Tuple[StreamSummary, UnlearnableModel]:
    """Process a request file in order. The whole file is validated first (a bad line is one
    error and nothing changes); then ``when_valid`` runs (the run's log starts: bad input
    writes none); all its requests arrived together, so all are queued at once
    (latency counts from then) and applied group by group as the policy makes them due: full
    groups first, then groups whose oldest request waited ``max_wait_s``, the rest at the end.
    Returns the summary and the live model afterwards."""
    config = model.config
    _, requests = file_requests(path, model.dataset, config["max_request_lines"], config["max_request_line_bytes"],
                                strict=True, final=final_request_ids(store.model_dir))
    when_valid()
    batcher = RequestBatcher(store, model, config["max_batch"], config["max_wait_s"],
                             f"requests:{os.path.basename(path)}")
    with _interrupt_says_what_waits(batcher, f"give {path} again"):
        batcher.submit(requests)
        while batcher.pending:
            if not batcher.pump():
                batcher.pump(drain=True)
    return batcher.finish(), batcher.model


@dataclass
class _WatchedFile:
    """What the watcher knows of one file in the watched folder.

    ``stat``: its ``(inode, size, mtime_ns)`` when last seen, unchanged since ``since``
    (``time.monotonic()``); ``read_stat`` and ``digest``: the stat and content digest it had
    when it was read (``None``: not read yet); ``ids``: the request ids of that content."""

    stat: Tuple[int, int, int]
    since: float
    read_stat: Optional[Tuple[int, int, int]] = None
    digest: Optional[str] = None
    ids: List[str] = field(default_factory=list)
    valid_any: bool = False
    unmovable: bool = False  # its requests are final but it could not be moved (said once)
    written: bool = False  # another process held it open for writing when last asked (said once)
    said_written: bool = False


def _file_stat(path: str) -> Optional[Tuple[int, int, int]]:
    """``(inode, size, mtime_ns)`` of a regular file, ``None`` if it is gone or not a file (a
    folder, a FIFO, a socket, a dangling link or a link loop: none is a request file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


def _request_files(folder: str) -> List[Tuple[str, Tuple[int, int, int]]]:
    """``(name, stat)`` of the request files in ``folder``, oldest first. Writers should create
    ``.name`` or ``name.tmp`` and rename it when done; those (and the other names of
    :func:`is_unfinished_name`) are ignored until then, and so are files this process writes
    itself (its own output redirected into the folder, which it would wait on for ever)."""
    found = []
    ours = written_by_this_process()
    for name in os.listdir(folder):
        if is_unfinished_name(name):
            continue
        path = os.path.join(folder, name)
        st = _file_stat(path)
        if st is not None and not (ours and _identity(path) in ours):
            found.append((name, st))
    return sorted(found, key=lambda f: (f[1][2], f[0]))


def _identity(path: str) -> Optional[Tuple[int, int]]:
    """``(device, inode)`` of what ``path`` names (links followed), ``None`` if nothing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_within(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or below it, by identity as well as by name: a second
    mount of the same folder (a bind mount, a volume mounted twice) has another path."""
    target = _identity(folder)
    current = os.path.realpath(path)
    while target is not None:
        if _identity(current) == target:
            return True
        parent = os.path.dirname(current)
        if parent == current:
            return False
        current = parent
    return False


def _model_files(model_dir: str) -> set:
    """``(device, inode)`` of every file in the model folder (a hard link to one has no path in it)."""
    found = set()
    for root, _, names in os.walk(model_dir):
        for name in names:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            found.add((st.st_dev, st.st_ino))
    return found


def _move(folder: str, name: str, subfolder: Optional[str]) -> bool:
    """Move a finished file to ``subfolder`` (a name already there gets the file's digest), or
    delete it when ``subfolder`` is ``None`` (``processed_request_files: delete``). A file gone
    meanwhile (another watcher of the folder moved it first) is left to that one. Returns False
    (with a warning) if it cannot be moved (a read-only folder, a file named like the
    subfolder): its requests are final all the same, and a later run skips them."""
    path = os.path.join(folder, name)
    link = os.path.islink(path)
    try:
        if subfolder is None or link and _is_within(os.path.dirname(os.path.realpath(path)), folder):
            os.remove(path)  # deleted; or a second name of a file of this folder, which moves on its own
            fsync_dir(folder)
            return True
        target_dir = os.path.join(folder, subfolder)
        os.makedirs(target_dir, exist_ok=True)
        target = os.path.join(target_dir, name)
        if os.path.lexists(target):
            target = os.path.join(target_dir, f"{name}.{file_digest(path)}")
        if link:  # a relative link would name nothing one folder down
            os.symlink(os.path.realpath(path), target)
            os.remove(path)
        else:
            shutil.move(path, target)
    except FileNotFoundError:
        getLogger().info(f"request file {name} was moved or removed by another process first")
    except OSError as e:
        where = "deleted" if subfolder is None else f"moved to {subfolder}/"
        getLogger().warning(f"request file {path} cannot be {where} ({e.strerror}); its requests are final and "
                            "are skipped when it is read again: move or delete it by hand")
        return False
    return True


def watch_request_folder(store: ModelStore, model: UnlearnableModel, folder: str,
                         when_valid: Callable[[], None] = lambda: None) -> Tuple[StreamSummary, UnlearnableModel]:
    """Watch ``folder`` for request files until it has been idle (no file, empty queue) for
    ``watch_idle_s`` seconds (``~``: until interrupted). Each line is a request; a bad line is
    rejected with its reason and the others go on.

    A file is read once it has not changed (inode, size, modification time) for
    ``watch_settle_s`` seconds and (where the system can tell: :func:`being_written`) no process
    holds it open for writing, so a file still being written straight into the folder is not
    read half-way, nor moved while its writer goes on. A file that changes after it was read is
    read again once it settles (its new lines are new requests; lines it had before resolve to
    data already forgotten). A file whose requests are all final, and which has not changed since
    it was read, moves to ``processed/``, or is deleted under ``processed_request_files: delete``
    (to ``rejected/`` if none was valid, either way); one removed from the folder first is
    applied all the same. A restart re-reads files still there and skips requests already
    final. Returns the summary and the live model afterwards. ``when_valid`` is called once the
    folder is found fit to watch, before anything is read or written (the run's folder and log:
    a refused folder left a run folder with an empty log)."""
    if not os.path.isdir(folder):
        raise UnlearnError(f"request folder not found: {folder}")
    if _is_within(folder, store.model_dir):
        raise UnlearnError(f"request folder {folder} is the model folder or inside it: watch a folder of its own "
                           "(the model's own files would be read, and moved, as request files)")
    config = model.config
    watched = os.path.realpath(folder)
    # the dataset's folder, or the one its files link to (either would be read and moved)
    held = [os.path.basename(path) for path in atomic_files(config)
            if watched in (os.path.realpath(os.path.dirname(path)), os.path.dirname(os.path.realpath(path)))]
    if held:
        raise UnlearnError(f"request folder {folder} holds the dataset's files ({', '.join(held)}): watch a folder "
                           "of its own (they would be read, and moved, as request files)")
    when_valid()
    batcher = RequestBatcher(store, model, config["max_batch"], config["max_wait_s"],
                             f"requests:{os.path.basename(os.path.normpath(folder))}/")
    with _interrupt_says_what_waits(batcher, f"{folder} keeps their file, which the next watch reads again"):
        return _watch(batcher, folder)


def _watch(batcher: RequestBatcher, folder: str) -> Tuple[StreamSummary, UnlearnableModel]:
    """:func:`watch_request_folder`'s loop."""
    config = batcher.model.config
    files: Dict[str, _WatchedFile] = {}
    idle_since = time.monotonic()
    while True:
        now_mono = time.monotonic()
        try:
            listed = dict(_request_files(folder))
        except (FileNotFoundError, NotADirectoryError):  # removed, or replaced by a file
            while batcher.pending:  # what was read from it is applied before the run stops
                batcher.pump(drain=True)
            batcher.summary.check()
            raise UnlearnError(f"request folder {folder} was removed (or replaced by a file) while it was watched; "
                               "the requests read from it were applied (requests.jsonl)") from None
        for name, st in listed.items():
            known = files.get(name)
            if known is None:
                known = files[name] = _WatchedFile(st, now_mono)
            elif known.stat != st:
                known.stat, known.since = st, now_mono
            if known.read_stat == st or now_mono - known.since < config["watch_settle_s"]:
                continue  # read and unchanged since, or still changing
            if _still_written(folder, name, known):
                continue
            if _read_file(batcher, folder, name, known):
                idle_since = now_mono
        for name in [n for n, f in files.items() if n not in listed and f.digest is None]:
            del files[name]  # gone before it was read
        applied = batcher.pump()
        for name, known in list(files.items()):
            if known.digest is None or not all(batcher.is_final(i) for i in known.ids):
                continue
            current = _file_stat(os.path.join(folder, name))
            if current is None:
                del files[name]  # removed from the folder: its requests were applied all the same
            elif current == known.read_stat and not known.unmovable and not _still_written(folder, name, known):
                delete = known.valid_any and config["processed_request_files"] == "delete"
                if _move(folder, name, None if delete else PROCESSED if known.valid_any else REJECTED):
                    del files[name]
                else:
                    known.unmovable = True
        if applied or batcher.pending or any(f.digest is None or f.written for f in files.values()):
            idle_since = time.monotonic()
        if config["watch_idle_s"] is not None and not batcher.pending and \
                time.monotonic() - idle_since >= config["watch_idle_s"]:
            return batcher.finish(), batcher.model
        if not applied:
            time.sleep(config["watch_poll_s"])


def _still_written(folder: str, name: str, known: _WatchedFile) -> bool:
    """Whether a process holds the file open for writing (:func:`being_written`; where that
    cannot be told, settling alone decides): such a file is neither read nor moved, since the
    lines its writer adds after would go into the moved (or deleted) file, never read."""
    known.written = bool(being_written(os.path.join(folder, name)))
    if known.written and not known.said_written:
        known.said_written = True
        getLogger().info(f"request file {name} is still open for writing by another process: it is read (or "
                         "moved) once it is closed")
    return known.written


def _read_file(batcher: RequestBatcher, folder: str, name: str, known: _WatchedFile) -> bool:
    """Read one settled file into the batcher and note what was read in ``known``; returns
    whether it brought requests (False: gone meanwhile, or the same content read before). A
    file that cannot be read, or holds no request, is one rejected request (id: its digest)."""
    path = os.path.join(folder, name)
    model_dir = batcher.store.model_dir
    identity = _identity(path)
    if identity is None:
        return False  # removed (or renamed) between the listing and the read
    if _is_within(path, model_dir) or identity in _model_files(model_dir):
        # named by the link, not by the content: the ledger it may name grows with the rejection
        digest = bytes_digest(f"{name}\0{identity}".encode())
        requests = [FileRequest(request_id(digest, 0), name, 0,
                                error=f"request file {path} links into the model folder {model_dir}: not read")]
    else:
        try:
            config = batcher.model.config
            digest, requests = file_requests(path, batcher.model.dataset, config["max_request_lines"],
                                             config["max_request_line_bytes"], strict=False,
                                             # applied ones only: a rejected line is read again, so a
                                             # file of rejected lines still goes to rejected/
                                             final=batcher.audited.keys())
            if not requests:
                raise UnlearnError(f"request file {path} contains no requests")
        except UnlearnError as e:
            if _file_stat(path) is None:
                return False  # removed (or renamed) between the listing and the read
            digest = _unreadable_digest(path)
            requests = [FileRequest(request_id(digest, 0), name, 0, error=str(e))]
    read_stat = _file_stat(path)
    if read_stat != known.stat:
        return False  # changed while being read: read again once it settles
    if digest == known.digest:
        known.read_stat = read_stat  # touched, same content
        return False
    if known.digest is not None and known.read_stat is not None and read_stat[0] != known.read_stat[0]:
        # renamed over the file read before (a new inode): what the README asks writers to do
        getLogger().info(f"request file {path} was replaced by another file after it was read: reading the new "
                         "one (its lines are new requests)")
    elif known.digest is not None:
        getLogger().warning(f"request file {path} changed after it was read: reading it again (its new lines "
                            "are new requests). Write request files as .name or name.tmp and rename them "
                            "when complete")
    known.read_stat, known.digest, known.unmovable = read_stat, digest, False
    known.ids = [r.id for r in requests]
    known.valid_any = any(r.error is None for r in requests)
    batcher.submit(requests)
    return True


def _unreadable_digest(path: str) -> str:
    """The id prefix of a file whose requests cannot be read: its content's digest if its bytes
    can be read, else one of its name, size and modification time."""
    try:
        return file_digest(path)
    except OSError:
        st = os.stat(path)
        return bytes_digest(f"{os.path.basename(path)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
