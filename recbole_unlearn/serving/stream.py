"""Deletion request streams for a saved model: a request file processed in order, or a folder
watched for new request files. Requests are identified by content
(``serving.request_files``), queued and coalesced by ``serving.batcher``, and applied through
``serving.apply.apply_forget``; every run ends with a summary whose counts add up.
"""
import os
import shutil
import time
from typing import Dict, List, Tuple

from recbole_unlearn.serving.batcher import RequestBatcher, StreamSummary
from recbole_unlearn.serving.request_files import FileRequest, file_digest, file_requests, request_id
from recbole_unlearn.serving.store import ModelStore
from recbole_unlearn.unlearnable import UnlearnableModel
from recbole_unlearn.utils.errors import UnlearnError

PROCESSED = "processed"
REJECTED = "rejected"


def stream_request_file(store: ModelStore, model: UnlearnableModel, path: str) -> Tuple[StreamSummary, UnlearnableModel]:
    """Process a request file in order. The whole file is validated first (a bad line is one
    error and nothing changes); all its requests arrived together, so all are queued at once
    (latency counts from then) and applied group by group as the policy makes them due: full
    groups first, then groups whose oldest request waited ``max_wait_s``, the rest at the end.
    Returns the summary and the live model afterwards."""
    config = model.config
    requests = file_requests(path, model.dataset, config["max_request_lines"], strict=True)
    batcher = RequestBatcher(store, model, config["max_batch"], config["max_wait_s"],
                             f"requests:{os.path.basename(path)}")
    batcher.submit(requests)
    while batcher.pending:
        if not batcher.pump():
            batcher.pump(drain=True)
    batcher.summary.check()
    return batcher.summary, batcher.model


def _request_files(folder: str) -> List[str]:
    """Complete request files in ``folder``, oldest first (writers create ``.name`` or
    ``name.tmp`` and rename it when done; those are ignored until then)."""
    names = [n for n in os.listdir(folder)
             if not n.startswith(".") and not n.endswith(".tmp") and os.path.isfile(os.path.join(folder, n))]
    return sorted(names, key=lambda n: (os.path.getmtime(os.path.join(folder, n)), n))


def _move(folder: str, name: str, subfolder: str) -> None:
    """Move a finished file to ``subfolder``; a name already there gets the file's digest."""
    target_dir = os.path.join(folder, subfolder)
    os.makedirs(target_dir, exist_ok=True)
    target = os.path.join(target_dir, name)
    if os.path.exists(target):
        target = os.path.join(target_dir, f"{name}.{file_digest(os.path.join(folder, name))}")
    shutil.move(os.path.join(folder, name), target)


def watch_request_folder(store: ModelStore, model: UnlearnableModel, folder: str) -> Tuple[StreamSummary, UnlearnableModel]:
    """Watch ``folder`` for request files until it has been idle (no file, empty queue) for
    ``watch_idle_s`` seconds (``~``: until interrupted). Each line is a request; a bad line is
    rejected with its reason and the others go on. A file whose requests are all final moves to
    ``processed/`` (or ``rejected/`` if none was valid); a restart re-reads files still there and
    skips requests already final. Returns the summary and the live model afterwards."""
    if not os.path.isdir(folder):
        raise UnlearnError(f"request folder not found: {folder}")
    config = model.config
    batcher = RequestBatcher(store, model, config["max_batch"], config["max_wait_s"],
                             f"requests:{os.path.basename(os.path.normpath(folder))}/")
    outstanding: Dict[str, List[str]] = {}  # file -> its request ids not final yet
    valid_any: Dict[str, bool] = {}
    idle_since = time.monotonic()
    while True:
        for name in _request_files(folder):
            if name in outstanding:
                continue
            outstanding[name], valid_any[name] = _queue_file(batcher, folder, name, config["max_request_lines"])
            idle_since = time.monotonic()
        applied = batcher.pump()
        for name in [n for n, ids in outstanding.items() if all(batcher.is_final(i) for i in ids)]:
            _move(folder, name, PROCESSED if valid_any[name] else REJECTED)
            del outstanding[name]
        if applied or batcher.pending:
            idle_since = time.monotonic()
        if config["watch_idle_s"] is not None and not batcher.pending and \
                time.monotonic() - idle_since >= config["watch_idle_s"]:
            batcher.summary.check()
            return batcher.summary, batcher.model
        if not applied:
            time.sleep(config["watch_poll_s"])


def _queue_file(batcher: RequestBatcher, folder: str, name: str, max_lines: int):
    """Read one request file into the batcher; returns (its request ids, any line valid). A
    file that cannot be read, or holds no request, is one rejected request (id: its digest)."""
    path = os.path.join(folder, name)
    try:
        requests = file_requests(path, batcher.model.dataset, max_lines, strict=False)
        if not requests:
            raise UnlearnError(f"request file {path} contains no requests")
    except UnlearnError as e:
        whole = FileRequest(request_id(file_digest(path), 0), name, 0, error=str(e))
        batcher.submit([whole])
        return [whole.id], False
    batcher.submit(requests)
    return [r.id for r in requests], any(r.error is None for r in requests)
