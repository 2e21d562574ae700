"""Queue + per-group coalescing of deletion requests, applied through :func:`apply_forget`.

Queued requests are grouped by the part of the model they touch (``model.group_of``: shards of
a sharded model, one group for a single model); a group is due when it holds ``max_batch``
requests or its oldest request has waited ``max_wait_s`` seconds; the due groups of one pump
become one batch, one new version.

Exactly once: the audit line of every applied batch lists its ``request_ids``; a request whose
id the audit log (or a ``rejected`` in the ledger) already holds is skipped, and
:func:`apply_forget` re-checks that under the folder's lock, so two processes never apply the
same request twice.

Nothing read is lost: a ``queued`` ledger line keeps the log rows its request resolved to, and
every run first queues again the requests earlier runs left waiting (``queued`` or ``failed``,
and not final: a process stopped before it applied them, or their forget raised), so they are
applied whether or not their file is still there (``resumed``).

Every request read in a run is counted once: ``skipped_already_final`` (final before this run),
``skipped_already_queued`` (the same request, e.g. the same bytes under another name, is queued
already) or ``queued``; resumed requests are ``queued`` too. Every queued one ends in exactly one
of ``applied``, ``applied_without_change``, ``already_forgotten``, ``rejected`` or
``applied_elsewhere`` (another process applied it while this one waited).
:meth:`StreamSummary.check` raises if the counts do not add up.
"""
import os
import time
from dataclasses import dataclass, field
from logging import getLogger
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.serving.apply import ForgetRequest, ForgetWentLive, apply_forget
from recbole_unlearn.serving.audit import AuditLog
from recbole_unlearn.serving.ledger import (TIME_FORMAT, RequestLedger, applied_line, lines_by_request, now,
                                            queued_fields)
from recbole_unlearn.serving.request_files import FileRequest
from recbole_unlearn.serving.store import REMOVING_MARK, ModelStore
from recbole_unlearn.unlearnable import UnlearnableModel
from recbole_unlearn.utils.cpu_meter import CpuMeter, cpu_usage
from recbole_unlearn.utils.errors import UnlearnError, error_line
from recbole_unlearn.utils.results import forget_hit_rose

OUTCOMES = ("applied", "applied_without_change", "already_forgotten", "rejected", "applied_elsewhere")


@dataclass
class PendingRequest:
    """A queued request: ``request`` with the group it touches and ``time.monotonic()`` when
    it was read (for a request an earlier run queued, ``resumed``: when that run queued it, from
    its first ``queued`` ledger line)."""

    request: FileRequest
    group: Tuple[int, ...]
    received: float
    resumed: bool = False


#: why a request run removed a version folder beyond the one each forget replaces, at its start or
#: in a forget's commit (``requests.removed_versions``' ``why``)
REMOVED_BECAUSE = {
    "kept_by_keep_previous_version": "kept by keep_previous_version for the run that set it: a model from before "
                                     "that run's forgets, trained on data forgotten since",
    "left_behind": "a model from before the live version, trained on data forgotten since, left by a forget that was "
                   "stopped (or kept by earlier code, which kept the previous version until the next forget)",
    "never_live": "a version a forget staged and was stopped before it went live (never served; trained without "
                  "what it forgot; no later version takes its name)",
}


@dataclass
class StreamSummary:
    """What a stream run did. ``latencies``: seconds per applied request, in apply order."""

    skipped: int = 0
    skipped_queued: int = 0
    resumed: int = 0
    queued: int = 0
    outcomes: Dict[str, int] = field(default_factory=lambda: {k: 0 for k in OUTCOMES})
    batches: int = 0
    latencies: List[float] = field(default_factory=list)
    versions: List[str] = field(default_factory=list)
    interactions: int = 0
    #: of ``interactions``, those the method's extra-deletion rule added (CED/NED/RED): no request
    #: named them (they were in the audit log alone; r11requests probe)
    extra_deleted: int = 0
    forget_seconds: float = 0.0
    shards: Set[int] = field(default_factory=set)
    start_stages: Dict[str, int] = field(default_factory=dict)
    forget_hit_rose: List[str] = field(default_factory=list)
    trainings: List[dict] = field(default_factory=list)  # each batch's training record (shard stages, aggregator)
    approximate_steps: List[dict] = field(default_factory=list)  # each batch's approximate step (or its shards')
    cpu: Optional[Dict[str, float]] = None  # the forgets' cpu_meter, summed (wall, own, others; CPUs)
    kept_by_count_filters: int = 0  # after the last forget: rows kept only by forgotten lines (apply)
    being_queued: int = 0  # read, their queued lines being written (a stop then may leave them unrecorded)
    rejected_files: int = 0  # of the rejected: files rejected whole (line 0: none of their lines read)
    #: requests earlier runs left waiting whose ledger lines hold no rows (earlier code), still not
    #: final when the run ended: "<id> (<file> line <n>)", each needing its file again
    waiting_without_rows: List[str] = field(default_factory=list)
    #: version folders the run removed beyond those its forgets replaced: ``{"version", "why"}``
    #: (a key of ``REMOVED_BECAUSE``; a log line alone said so, which state: ERROR hid; r10docs
    #: probe, round 4)
    removed_versions: List[dict] = field(default_factory=list)

    def add_batch(self, report_json: dict, version: str, extra_deleted: int = 0) -> None:
        self.batches += 1
        self.extra_deleted += extra_deleted
        if report_json.get("training"):
            self.trainings.append(report_json["training"])
        if isinstance(report_json.get("approximate"), dict):  # an approximate step's (or each shard's)
            self.approximate_steps.append(dict(report_json["approximate"], version=version))
        if forget_hit_rose(report_json):
            self.forget_hit_rose.append(version)
        if version not in self.versions:
            self.versions.append(version)
        self.interactions += report_json["interactions"]
        self.forget_seconds += report_json["seconds"]
        self.shards.update(report_json["shards_retrained"])
        for shard, stage in report_json["slices_retrained"].items():
            self.start_stages[shard] = min(stage, self.start_stages.get(shard, stage))

    def add_cpu(self, usage: Optional[Dict[str, float]], cpus: int) -> None:
        """Add one forget's :class:`CpuMeter` result (``None`` where it cannot be read)."""
        if usage is None:
            return
        total = self.cpu or {"wall_s": 0.0, "own_cpu_s": 0.0, "others_cpu_s": 0.0, "cpus": cpus}
        for key in ("wall_s", "own_cpu_s", "others_cpu_s"):
            total[key] += usage[key]
        self.cpu = total

    def cpu_meter(self) -> Optional[Dict[str, float]]:
        """The forgets' ``cpu_meter`` (as :meth:`CpuMeter.result`, over their summed wall time, with
        ``forget_others_share`` the same: the row's seconds are the forgets'); ``None`` without one."""
        if self.cpu is None:
            return None
        usage = cpu_usage(self.cpu["wall_s"], self.cpu["own_cpu_s"], self.cpu["others_cpu_s"], self.cpu["cpus"])
        return dict(usage, forget_others_share=usage["others_share"])

    def check(self, pending: int = 0) -> None:
        """Every queued request has exactly one outcome (``pending`` are still queued)."""
        ended = sum(self.outcomes.values())
        if self.queued != ended + pending:
            raise UnlearnError(f"request accounting does not add up: {self.queued} queued, {ended} with an outcome "
                               f"({self.outcomes}), {pending} still queued")

    def to_json(self) -> dict:
        lat = np.asarray(self.latencies, dtype=float)
        return {
            "received": self.skipped + self.skipped_queued + self.queued - self.resumed,
            "skipped_already_final": self.skipped, "skipped_already_queued": self.skipped_queued,
            "resumed": self.resumed, "queued": self.queued,
            **self.outcomes, "rejected_files": self.rejected_files,
            "batches": self.batches, "versions": self.versions, "interactions": self.interactions,
            "extra_deleted": self.extra_deleted,
            "forget_seconds": round(self.forget_seconds, 3), "shards_retrained": sorted(self.shards),
            "slices_retrained": dict(sorted(self.start_stages.items(), key=lambda kv: int(kv[0]))),
            "latency_median_s": round(float(np.median(lat)), 3) if len(lat) else None,
            "latency_p95_s": round(float(np.percentile(lat, 95)), 3) if len(lat) else None,
            "latency_max_s": round(float(lat.max()), 3) if len(lat) else None,
            "forget_hit_rose": self.forget_hit_rose,
            "waiting_without_rows": self.waiting_without_rows,
            "removed_versions": self.removed_versions,
        }


def _file_and_line(rid: str, event: dict) -> Tuple[str, int]:
    """The request file and line a ledger line names; lines written by earlier code (23 November)
    named neither (a ``KeyError`` traceback on every request run; r11round2 probe): the line is
    the request id's, after its ``:``, and the file unnamed."""
    line = event.get("line")
    if not isinstance(line, int):
        tail = rid.rsplit(":", 1)[-1]
        line = int(tail) if tail.isdigit() else 0
    return str(event.get("file") or "(a file earlier code did not name)"), line


def final_request_ids(model_dir: str) -> Set[str]:
    """The request ids already final in ``model_dir``: applied in its audit log, or rejected in
    its ledger; read before a request file is checked (nothing written; a log that cannot be
    read gives none, and the run's own reading under the lock reports it)."""
    try:
        return set(AuditLog(model_dir).applied_requests()) | _rejected_ids(RequestLedger(model_dir).events())
    except (UnlearnError, OSError):
        return set()


def _rejected_ids(events: List[dict]) -> Set[str]:
    """The request ids the ledger lines ``events`` reject."""
    return {e["id"] for e in events if e.get("status") == "rejected"}


def _last_events(events: List[dict]) -> Dict[str, dict]:
    """Each request id's last ledger line (its status now), in the ledger's order."""
    return {rid: lines.last for rid, lines in lines_by_request(events).items()}


class RequestBatcher:
    """Queue, coalesce and apply requests for the model stored in ``store``.

    Args:
        store: the model folder.
        model: its loaded model (replaced by a reloaded one if another process moves on).
        max_batch: a group is applied once it holds this many requests.
        max_wait_s: ... or once its oldest request has waited this long.
        source: names the input in the audit log (``requests:<file or folder name>``).
    """

    def __init__(self, store: ModelStore, model: UnlearnableModel, max_batch: int, max_wait_s: float, source: str):
        self.store = store
        self.model = model
        self.source = source
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.ledger = RequestLedger(store.model_dir)
        self.groups: Dict[Tuple[int, ...], List[PendingRequest]] = {}
        self.summary = StreamSummary()
        with store.lock.hold():
            audit = AuditLog(store.model_dir)
            # the records checked before anything is appended (a stale model is loaded again, and
            # checked, by its forget)
            audit.reconcile(store, None if store.is_stale(model) else model)
            never_live = set(store.never_live_versions())
            being_removed = [e for e in store.left_behind_folders() if REMOVING_MARK in e]
            removed = store.remove_left_behind(model.config["keep_previous_version"])
            removed += [e for e in being_removed if not os.path.exists(os.path.join(store.model_dir, e))]
            self._note_removed(removed, never_live)
            events = self._refresh()
            recovered = self._recovered(events)
            self.ledger.record(recovered)  # under the same hold as the read: two runs starting together write them once
        events += recovered
        self._note_final(events)
        self.queued_ids: Set[str] = set()
        self._rowless: Dict[str, str] = {}  # waiting requests whose queued lines hold no rows: id -> where
        self.first_queued: Dict[str, dict] = {}  # request id -> its first ``queued`` ledger line
        self.submit(self._waiting(events), resumed=True)

    def _note_removed(self, removed: List[str], never_live: Set[str] = frozenset()) -> None:
        """Record (``summary.removed_versions``) and log the version folders ``removed``, each with
        why it was there: at the run's start, or by a forget's commit (another run's kept version)."""
        kept = {e.get("kept_version") for e in AuditLog(self.store.model_dir).entries()} if removed else set()
        for name in removed:
            why = "never_live" if name in never_live else "kept_by_keep_previous_version" if name in kept \
                else "left_behind"
            getLogger().warning(f"removed {name}: {REMOVED_BECAUSE[why]}")
            self.summary.removed_versions.append({"version": name, "why": why})

    def _refresh(self) -> List[dict]:
        """Read, under the lock, what is final now: the audit log's applied requests and the
        ledger's final lines (another process may have finished requests since this one
        started: a long-running watcher queued them again and left applied ones ``queued``).
        Returns the ledger's lines."""
        self.audited: Dict[str, dict] = AuditLog(self.store.model_dir).applied_requests(repair=True)
        events = self.ledger.events(repair=True)
        self._note_final(events)
        return events

    def _note_final(self, events: List[dict]) -> None:
        self.rejected: Set[str] = _rejected_ids(events)
        self.ledger_final: Set[str] = {e["id"] for e in events if e.get("status") in ("applied", "applied_without_change")}
        self.final: Set[str] = set(self.audited) | self.rejected

    def _recovered(self, events: List[dict]) -> List[dict]:
        """``applied`` lines (``recovered``) for requests whose last ledger line is ``queued`` or
        ``failed`` but which the audit log holds: applied by a forget whose run stopped before it
        wrote the ledger line (a later run on another file left them ``queued`` for good, though
        ``--verify`` counted them final)."""
        return [self._recovered_line(rid, *_file_and_line(rid, event)) for rid, event in _last_events(events).items()
                if event.get("status") in ("queued", "failed") and rid in self.audited]

    def _recovered_line(self, rid: str, file: str, line: int) -> dict:
        """The ledger line of a request the audit log holds as applied, written by a later run:
        the line the run that applied it would have written (``applied_without_change`` where
        its audit line says so)."""
        return dict(applied_line(rid, file, line, self.audited[rid]), recovered=True)

    def _waiting(self, events: List[dict]) -> List[FileRequest]:
        """Requests earlier runs left waiting (last status ``queued`` or ``failed``, not final),
        rebuilt from the rows their ``queued`` line kept (lines written before rows were kept
        cannot be: their file must be given again)."""
        rows = {}
        for event in events:
            if event.get("rows") is not None and event["id"] not in rows:
                rows[event["id"]] = event["rows"]
            if event.get("status") == "queued":
                self.first_queued.setdefault(event["id"], event)
        waiting = []
        for rid, event in _last_events(events).items():
            if event.get("status") in ("queued", "failed") and rid not in self.final:
                file, line = _file_and_line(rid, event)
                if rid in rows:
                    waiting.append(FileRequest(rid, file, line, np.asarray(rows[rid], dtype=np.int64)))
                elif rid not in self._rowless:
                    self._rowless[rid] = f"{rid} ({file} line {line})"
                    getLogger().warning(f"request {rid} ({file} line {line}) is still waiting, but its "
                                        "ledger line holds no rows (queued by earlier code, or an invalid line whose "
                                        "rejection a stop cut off): give its file again")
        return waiting

    def _all_final(self, events: List[dict]) -> bool:
        """Whether the ledger holds every one of ``events`` (final lines) as written."""
        try:
            written = {(e.get("id"), e.get("status")) for e in self.ledger.events()}
        except Exception:  # unreadable: not known to be there
            return False
        return all((e["id"], e["status"]) in written for e in events)

    def _record(self, events: List[dict]) -> None:
        with self.store.lock.hold():
            self.ledger.record(events)

    def finish(self) -> StreamSummary:
        """The run's summary, checked (every queued request has one outcome), with the requests
        left waiting without rows that are still not final (their file was not given again)."""
        self.summary.check()
        self.summary.waiting_without_rows = [where for rid, where in self._rowless.items() if rid not in self.final]
        return self.summary

    def is_final(self, request_id: str) -> bool:
        return request_id in self.final

    def skip_if_final(self, request: FileRequest) -> bool:
        """True (and counted as skipped) if the request needs nothing more. An id in the audit
        log that the ledger never marked final (the process died in between) is marked now."""
        if request.id not in self.final:
            return False
        self.summary.skipped += 1
        if request.id in self.audited and request.id not in self.ledger_final:
            self._record([self._recovered_line(request.id, request.file, request.line)])
            self.ledger_final.add(request.id)
        return True

    def submit(self, requests: List[FileRequest], resumed: bool = False) -> None:
        """Queue requests (an invalid one is queued and rejected at once, in the same append, so
        no stop leaves it queued); ids already final (read anew from the folder) or already
        queued are skipped. ``resumed``: requests an earlier run left waiting. Before new
        requests, those other runs have left waiting since this one started (a run killed after
        queuing them) are queued again too, so a long-running watcher does not leave them
        behind newer ones until the next start."""
        if not resumed:  # read, not queued: a stop while this waits for the lock (another run's forget) says so
            self.summary.being_queued = len(requests)
        with self.store.lock.hold():
            if not resumed:  # the constructor has just read them
                waiting = [r for r in self._waiting(self._refresh()) if r.id not in self.queued_ids]
                self._submit(waiting, resumed=True)
            self._submit(requests, resumed)
        self.summary.being_queued = 0

    def _submit(self, requests: List[FileRequest], resumed: bool) -> None:
        now_mono = time.monotonic()
        events, accepted, rejected, seen = [], [], [], set()
        for request in requests:
            if self.skip_if_final(request):
                continue
            if request.id in self.queued_ids or request.id in seen:
                self.summary.skipped_queued += 1
                continue
            if request.rows is None and request.error is None:  # left unparsed: final when its file was read
                raise UnlearnError(f"request {request.id} ({request.file} line {request.line}) was final in "
                                   f"{self.store.model_dir} when its file was read, and is not now: its audit log "
                                   "or ledger was changed meanwhile (restored from a backup?); nothing was queued")
            seen.add(request.id)
            event = dict({"id": request.id, "file": request.file, "line": request.line, "status": "queued"},
                         **queued_fields())
            if resumed:
                event["resumed"] = True
            elif request.rows is not None:  # what the next run applies if this one stops first
                event["rows"] = request.rows.tolist()
            events.append(event)
            (rejected if request.error is not None else accepted).append(request)
        events += [{"id": r.id, "file": r.file, "line": r.line, "status": "rejected", "reason": r.error, "time": now()}
                   for r in rejected]
        if not events:
            return
        # new requests count as queued only once the ledger holds them (a stop before or while
        # their lines are written says they were read and not queued); resumed ones it holds already
        count = len(accepted) + len(rejected)
        if resumed:
            self.summary.queued += count
            self.summary.resumed += count
        else:
            self.summary.being_queued = count
        self._record(events)
        if not resumed:
            self.summary.queued += count
            self.summary.being_queued = 0
        for request in accepted:
            self.queued_ids.add(request.id)
            received = now_mono - self._waited_s(request.id) if resumed else now_mono
            pending = PendingRequest(request, self.model.group_of(request.rows), received, resumed)
            self.groups.setdefault(pending.group, []).append(pending)
        for request in rejected:
            self.final.add(request.id)
            self.rejected.add(request.id)
            self.summary.outcomes["rejected"] += 1
            self.summary.rejected_files += request.line == 0

    def _waited_s(self, request_id: str) -> float:
        """Seconds since an earlier run first queued ``request_id``: a resumed request's latency
        counts from then, not from this run's start. From the line's ``queued_at`` (seconds since
        the epoch; one that is no time before now, or a day or more from the line's ``time``, is
        not read); a line written before it was recorded gives its local ``time``, read in this
        process's zone (to the second; another zone's run is hours off); 0 where neither reads."""
        line = self.first_queued.get(request_id) or {}
        try:
            local = time.mktime(time.strptime(line.get("time"), TIME_FORMAT))
        except (TypeError, ValueError, OverflowError):
            local = None
        queued = line.get("queued_at")
        # one that is no time before now, or further than a day (any zone) from its line's time, is
        # not read: a hand-edited -Infinity made latencies Infinity and NaN (not JSON), 1 made 57 years
        if (not isinstance(queued, (int, float)) or isinstance(queued, bool) or not 0 < queued <= time.time()
                or (local is not None and abs(queued - local) > 86400)):
            queued = local
        return 0.0 if queued is None else max(0.0, time.time() - queued)

    @property
    def pending(self) -> int:
        return sum(len(g) for g in self.groups.values())

    def due(self, drain: bool) -> List[Tuple[int, ...]]:
        now_mono = time.monotonic()
        return [key for key, queue in self.groups.items()
                if drain or len(queue) >= self.max_batch or now_mono - queue[0].received >= self.max_wait_s]

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
        # one hold for the forget, its audit line and its ledger lines: released in between, another
        # process starting there recorded the requests applied from the audit log, and this one then
        # wrote them again (two applied lines per request)
        with self.store.lock.hold():
            self._apply_held(batch)

    def _apply_held(self, batch: List[PendingRequest]) -> None:
        requests = [ForgetRequest(p.request.id, p.request.rows) for p in batch]
        rows = np.unique(np.concatenate([r.rows for r in requests]))
        meter = CpuMeter()  # the row's cpu_meter: over the forgets, where latencies are measured
        try:
            outcome = apply_forget(self.store, self.model, ForgetSet(rows, source=self.source),
                                   self.model.config["unlearn_method"], requests)
        except ForgetWentLive:
            raise  # live: their ledger lines stay queued, and the next run records them applied (recovered)
        except Exception as error:
            # not final: the previous version stays live and the next run retries these requests
            try:
                self._record([{"id": p.request.id, "file": p.request.file, "line": p.request.line,
                               "status": "failed", "reason": error_line(error), "time": now()} for p in batch])
            except Exception as unrecorded:  # a full disk refuses these too: the forget's own error says where
                getLogger().warning(f"the failed forget's ledger lines could not be written "
                                    f"({error_line(unrecorded)}); its requests stay queued, and the next run "
                                    "applies them")
            raise
        self.model = outcome.model
        done = time.monotonic()
        self.summary.add_cpu(meter.result(), len(meter.cpus))
        elsewhere, already, unchanged = set(outcome.done_elsewhere), set(outcome.already_forgotten), set(outcome.unchanged)
        version = outcome.entry["version"] if outcome.entry else None
        events, kinds, latencies = [], [], []
        if elsewhere:  # under the lock: what the ledger holds now (a process that applied them may have died)
            self._refresh()
        for pending in batch:
            request = pending.request
            base = {"id": request.id, "file": request.file, "line": request.line, "time": now()}
            if request.id in elsewhere:
                kinds.append("applied_elsewhere")
                if request.id not in self.ledger_final:  # its process died before its ledger line: written here
                    events.append(self._recovered_line(request.id, request.file, request.line))
                continue
            latency = done - pending.received
            latencies.append(latency)
            status, kind = "applied", "applied"
            if request.id in unchanged:  # already forgotten too, when an earlier forget left it unchanged
                status = kind = "applied_without_change"
            elif request.id in already:
                kind = "already_forgotten"
            kinds.append(kind)
            events.append(dict(base, status=status, version=version, latency_s=round(latency, 3),
                               already_forgotten=request.id in already, **({"resumed": True} if pending.resumed else {})))
        try:
            self._record(events)
        except KeyboardInterrupt:
            # a stop while the lines were written (their fsync): counted where the ledger holds them
            # (the stop's line said they waited; r12concurrency probe)
            if self._all_final(events):
                for kind in kinds:
                    self.summary.outcomes[kind] += 1
            raise
        except Exception as error:
            if outcome.entry is None:
                raise
            # the audit log holds them: the next run records them applied (a bare OSError said nothing of it)
            raise ForgetWentLive(version, error, what="its requests' ledger lines") from error
        # counted once the ledger says so: a stop before says they wait (the audit log holds them)
        for kind in kinds:
            self.summary.outcomes[kind] += 1
        self.summary.latencies.extend(latencies)
        self.final.update(p.request.id for p in batch)
        self.queued_ids.difference_update(p.request.id for p in batch)
        self.ledger_final.update(outcome.applied)
        if outcome.entry is not None:
            self.summary.add_batch(outcome.report.to_json(), version, int(outcome.entry.get("extra_deleted", 0)))
            self._note_removed(self.store.removed_by_last_commit, set(self.store.never_live_removed_by_last_commit))
            self.store.removed_by_last_commit = self.store.never_live_removed_by_last_commit = []  # reported once
            self.summary.kept_by_count_filters = outcome.entry.get("kept_by_count_filters", 0)
            getLogger().info(f"applied {len(outcome.applied)} requests (shards {outcome.report.shards}) as {version} "
                             f"in {outcome.report.seconds:.1f}s; {self.pending} queued")
