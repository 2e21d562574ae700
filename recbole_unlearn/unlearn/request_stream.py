"""Deletion request streams for a saved model: a request file processed in order, or a folder
watched for new request files.

A request is one line ``user_token[,item_token]``; its id is ``<file name>:<line>``. Every
request gets a status in ``<model_dir>/requests.jsonl`` (append-only, fsync'd JSON lines):
``queued``, then ``applied`` (with the model version and its latency: seconds from being read
to its version being live) or ``rejected`` (with the reason). Queued requests are coalesced per
shard: the requests that touch the same shard(s) form a group, and a group is applied when it
holds ``max_batch`` requests, when its oldest request has waited ``max_wait_s``, or when the
input is exhausted; groups that are due together are applied as one new version.

Exactly once: the audit line of every applied batch lists its ``request_ids``; on a restart,
requests whose id is in the audit log (or rejected in the ledger) are skipped, and a batch whose
version went live without its audit line is reconciled first (``reconcile_audit``).
"""
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from logging import getLogger
from typing import Dict, Iterable, List, Set, Tuple

import numpy as np

from recbole_unlearn.data.forget import ForgetSet, parse_request_file, parse_request_line, read_request_lines
from recbole_unlearn.unlearn.model_folder import forget_and_save, read_audit, reconcile_audit
from recbole_unlearn.utils.errors import UnlearnError

LEDGER = "requests.jsonl"
PROCESSED = "processed"
REJECTED = "rejected"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class PendingRequest:
    """A queued request.

    Attributes:
        id: ``<file name>:<line>``.
        rows: ``[n]`` int64 log rows it forgets.
        group: the shards its rows belong to (``(0,)`` for a single model).
        received: ``time.monotonic()`` when it was read.
    """

    id: str
    rows: np.ndarray
    group: Tuple[int, ...]
    received: float


@dataclass
class StreamSummary:
    """What a stream run did. ``latencies``: seconds per applied request, in apply order."""

    applied: int = 0
    rejected: int = 0
    skipped: int = 0
    batches: int = 0
    latencies: List[float] = field(default_factory=list)
    versions: List[str] = field(default_factory=list)
    interactions: int = 0
    forget_seconds: float = 0.0
    shards: Set[int] = field(default_factory=set)
    start_stages: Dict[str, int] = field(default_factory=dict)

    def add_batch(self, report_json: dict, version: str) -> None:
        self.batches += 1
        self.versions.append(version)
        self.interactions += report_json["interactions"]
        self.forget_seconds += report_json["seconds"]
        self.shards.update(report_json["shards_retrained"])
        for shard, stage in report_json["slices_retrained"].items():
            self.start_stages[shard] = min(stage, self.start_stages.get(shard, stage))

    def to_json(self) -> dict:
        lat = np.asarray(self.latencies, dtype=float)
        return {
            "applied": self.applied, "rejected": self.rejected, "skipped_already_final": self.skipped,
            "batches": self.batches, "versions": self.versions, "interactions": self.interactions,
            "forget_seconds": round(self.forget_seconds, 3), "shards_retrained": sorted(self.shards),
            "slices_retrained": dict(sorted(self.start_stages.items(), key=lambda kv: int(kv[0]))),
            "latency_median_s": round(float(np.median(lat)), 3) if len(lat) else None,
            "latency_p95_s": round(float(np.percentile(lat, 95)), 3) if len(lat) else None,
            "latency_max_s": round(float(lat.max()), 3) if len(lat) else None,
        }


class RequestLedger:
    """``<model_dir>/requests.jsonl``: one JSON line per status change, appended and fsync'd."""

    def __init__(self, model_dir: str):
        self.path = os.path.join(model_dir, LEDGER)

    def record(self, events: Iterable[dict]) -> None:
        data = "".join(json.dumps(e, sort_keys=True) + "\n" for e in events).encode("utf-8")
        if not data:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def events(self) -> List[dict]:
        """Every event; a torn last line (a process killed mid-append) is ignored, since its
        request is simply redone, but damage anywhere else is an error naming the line."""
        if not os.path.isfile(self.path):
            return []
        with open(self.path, "r", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
        out = []
        for number, line in enumerate(lines, start=1):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines):
                    break
                raise UnlearnError(f"{self.path} line {number} is not valid JSON") from None
        return out


def applied_request_ids(model_dir: str) -> Dict[str, str]:
    """``{request id: model version}`` of every id listed in the audit log: applied, whatever
    the ledger says."""
    return {rid: entry.get("version") for entry in read_audit(model_dir) for rid in entry.get("request_ids", [])}


class RequestBatcher:
    """Queue + per-shard coalescing + apply (see the module docstring).

    Args:
        model: a loaded :class:`ShardedUnlearnableModel` or :class:`SingleUnlearnableModel`.
        model_dir: its folder (new versions, audit log, ledger).
        max_batch: a shard group is applied once it holds this many requests.
        max_wait_s: ... or once its oldest request has waited this long.
        source: names the input in the audit log (``requests:<file or folder name>``).
    """

    def __init__(self, model, model_dir: str, max_batch: int, max_wait_s: float, source: str):
        self.model = model
        self.source = source
        self.model_dir = model_dir
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.ledger = RequestLedger(model_dir)
        self.groups: Dict[Tuple[int, ...], List[PendingRequest]] = {}
        self.summary = StreamSummary()
        reconcile_audit(model_dir)
        events = self.ledger.events()
        self.rejected: Set[str] = {e["id"] for e in events if e.get("status") == "rejected"}
        self.audited: Dict[str, str] = applied_request_ids(model_dir)
        self.ledger_applied: Set[str] = {e["id"] for e in events if e.get("status") == "applied"}
        self.final: Set[str] = set(self.audited) | self.rejected

    def _group(self, rows: np.ndarray) -> Tuple[int, ...]:
        shard_map = getattr(self.model, "shard_map", None)
        if shard_map is None:
            return (0,)
        return tuple(int(s) for s in np.unique(shard_map.owner_of_rows(self.model.dataset, rows)))

    def is_final(self, request_id: str) -> bool:
        return request_id in self.final

    def skip_if_final(self, request_id: str) -> bool:
        """True (and counted as skipped) if ``request_id`` needs nothing more. An id in the audit
        log that the ledger never marked applied (the process died in between) is marked now."""
        if request_id not in self.final:
            return False
        self.summary.skipped += 1
        if request_id in self.audited and request_id not in self.ledger_applied:
            self.ledger.record([{"id": request_id, "status": "applied", "version": self.audited[request_id],
                                 "recovered": True, "time": _now()}])
            self.ledger_applied.add(request_id)
        return True

    def submit(self, requests: List[Tuple[str, np.ndarray]]) -> None:
        """Queue ``(id, rows)`` pairs (already validated); ids already final are skipped."""
        now = time.monotonic()
        events = []
        for request_id, rows in requests:
            if self.skip_if_final(request_id):
                continue
            request = PendingRequest(request_id, rows, self._group(rows), now)
            self.groups.setdefault(request.group, []).append(request)
            events.append({"id": request_id, "status": "queued", "time": _now()})
        self.ledger.record(events)

    def reject(self, request_id: str, reason: str) -> None:
        if self.skip_if_final(request_id):
            return
        self.ledger.record([{"id": request_id, "status": "rejected", "reason": reason, "time": _now()}])
        self.final.add(request_id)
        self.rejected.add(request_id)
        self.summary.rejected += 1

    @property
    def pending(self) -> int:
        return sum(len(g) for g in self.groups.values())

    def due(self, drain: bool) -> List[Tuple[int, ...]]:
        now = time.monotonic()
        return [key for key, queue in self.groups.items()
                if drain or len(queue) >= self.max_batch or now - queue[0].received >= self.max_wait_s]

    def pump(self, drain: bool = False) -> int:
        """Apply every due group (as one new version); returns how many requests were applied."""
        keys = self.due(drain)
        if not keys:
            return 0
        batch: List[PendingRequest] = []
        for key in keys:
            queue = self.groups[key]
            take = len(queue) if drain else max(self.max_batch, 1)
            batch.extend(queue[:take])
            rest = queue[take:]
            if rest:
                self.groups[key] = rest
            else:
                del self.groups[key]
        self._apply(batch)
        return len(batch)

    def _apply(self, batch: List[PendingRequest]) -> None:
        rows = np.unique(np.concatenate([r.rows for r in batch]))
        ids = [r.id for r in batch]
        forget_set = self.model.expand(ForgetSet(rows, source=self.source))
        report, entry = forget_and_save(self.model, self.model_dir, forget_set,
                                        self.model.config["unlearn_method"],
                                        {"requests": len(ids), "request_ids": ids})
        done = time.monotonic()
        events = []
        for request in batch:
            latency = done - request.received
            self.summary.latencies.append(latency)
            events.append({"id": request.id, "status": "applied", "version": entry["version"],
                           "latency_s": round(latency, 3), "time": _now()})
        self.ledger.record(events)
        self.final.update(ids)
        self.ledger_applied.update(ids)
        self.summary.applied += len(batch)
        self.summary.add_batch(report.to_json(), entry["version"])
        getLogger().info(f"applied {len(batch)} requests (shards {report.shards}) as {entry['version']} "
                         f"in {report.seconds:.1f}s; {self.pending} queued")


def stream_request_file(model, model_dir: str, path: str) -> StreamSummary:
    """Process a request file in order. The whole file is validated first (a bad line is one
    error and nothing changes); all its requests arrived together, so all are queued at once
    (latency counts from then) and applied group by group as the policy makes them due: full
    groups first, then groups whose oldest request waited ``max_wait_s``, the rest at the end."""
    config = model.config
    requests = parse_request_file(path, model.dataset, config["max_request_lines"])
    name = os.path.basename(path)
    batcher = RequestBatcher(model, model_dir, config["max_batch"], config["max_wait_s"], f"requests:{name}")
    batcher.submit([(f"{name}:{request.line}", request.rows) for request in requests])
    while batcher.pending:
        if not batcher.pump():
            batcher.pump(drain=True)
    return batcher.summary


def _request_files(folder: str) -> List[str]:
    """Complete request files in ``folder``, oldest first (writers create ``.name`` or
    ``name.tmp`` and rename it when done; those are ignored until then)."""
    names = [n for n in os.listdir(folder)
             if not n.startswith(".") and not n.endswith(".tmp") and os.path.isfile(os.path.join(folder, n))]
    return sorted(names, key=lambda n: (os.path.getmtime(os.path.join(folder, n)), n))


def _move(folder: str, name: str, subfolder: str) -> None:
    os.makedirs(os.path.join(folder, subfolder), exist_ok=True)
    shutil.move(os.path.join(folder, name), os.path.join(folder, subfolder, name))


def watch_request_folder(model, model_dir: str, folder: str) -> StreamSummary:
    """Watch ``folder`` for request files until it has been idle (no file, empty queue) for
    ``watch_idle_s`` seconds (``~``: until interrupted). Each line is a request; a bad line is
    rejected with its reason and the others go on. A file whose requests are all final moves to
    ``processed/`` (or ``rejected/`` if none was valid); a restart re-reads files still there and
    skips requests already final."""
    if not os.path.isdir(folder):
        raise UnlearnError(f"request folder not found: {folder}")
    config = model.config
    batcher = RequestBatcher(model, model_dir, config["max_batch"], config["max_wait_s"],
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
            return batcher.summary
        if not applied:
            time.sleep(config["watch_poll_s"])


def _queue_file(batcher: RequestBatcher, folder: str, name: str, max_lines: int) -> Tuple[List[str], bool]:
    """Read one request file into the batcher; returns (its request ids, any line valid)."""
    path = os.path.join(folder, name)
    try:
        lines = read_request_lines(path, max_lines)
    except UnlearnError as e:
        batcher.reject(name, str(e))
        return [name], False
    if not lines:
        batcher.reject(name, f"request file {path} contains no requests")
        return [name], False
    ids, good, seen = [], [], {}
    for number, text in lines:
        request_id = f"{name}:{number}"
        ids.append(request_id)
        if batcher.skip_if_final(request_id):
            continue
        try:
            user, item, rows = parse_request_line(text, batcher.model.dataset, f"request {request_id}")
            if (user, item) in seen:
                raise UnlearnError(f"request {request_id}: repeats {seen[(user, item)]}")
            seen[(user, item)] = request_id
        except UnlearnError as e:
            batcher.reject(request_id, str(e))
            continue
        good.append((request_id, rows))
    batcher.submit(good)
    return ids, any(i not in batcher.rejected for i in ids)
