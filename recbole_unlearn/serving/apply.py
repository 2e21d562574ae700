"""The one way a forget reaches a stored model: :func:`apply_forget`.

Methods (a run's forget set), request files and watched folders all call it. Under the model
folder's lock it

1. appends a lost audit line of the current version (a process that died after its switch);
2. reloads the model if another process made a newer version since it was loaded;
3. drops requests the audit log already lists (another process applied them) and notes those
   whose rows were all forgotten before (``already_forgotten``);
4. expands the forget set (extra deletions), forgets, commits the new version (when something
   new was forgotten) and appends the audit line.

So a request goes down to the model once and its audit line comes back once, whichever path
it came by.
"""
import time
import uuid
from dataclasses import dataclass, field
from logging import getLogger
from typing import Dict, List, Optional, Sequence

import numpy as np

from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.serving.audit import AuditLog, interaction_hmacs, key_id
from recbole_unlearn.serving.ledger import RequestLedger, applied_line, now
from recbole_unlearn.serving.store import ModelStore
from recbole_unlearn.trainer.approximate import WHOLE_MODEL, reset_weights, steps_by_weights
from recbole_unlearn.unlearnable import ForgetReport, UnlearnableModel
from recbole_unlearn.utils.errors import WentLiveError, error_line
from recbole_unlearn.utils.faults import fault_point


class ForgetWentLive(WentLiveError):
    """The forget's new version went live, but its audit line (or, ``what``, its requests' ledger
    lines) could not be appended (a full disk, a read-only log). Its requests are applied, not
    failed: the version holds the line (``audit_entry.json``), which the next run appends, and the
    next run records every request the audit log holds as ``applied``."""

    def __init__(self, version: str, error: BaseException, what: str = "its audit line"):
        super().__init__(f"the forget went live as {version}, but {what} could not be written "
                         f"({error_line(error)}); the next run writes {'them' if what.endswith('lines') else 'it'}"
                         " and records its requests, if any, applied")


@dataclass
class ForgetRequest:
    """A request to forget ``rows`` (``[n]`` int64 log rows) under the id ``id``."""

    id: str
    rows: np.ndarray


@dataclass
class AppliedForget:
    """What :func:`apply_forget` did.

    Attributes:
        model: the live model afterwards (a reloaded one if another process had moved on).
        forget_set: the forget set applied, extra deletions included.
        report: the model's report (``interactions`` 0 if nothing new was forgotten).
        entry: the audit line (``None`` if every request was already in the audit log).
        applied: ids of the requests this call applied (audit line written).
        done_elsewhere: ids the audit log already held when the lock was taken.
        already_forgotten: ids among ``applied`` whose rows were all forgotten before.
        unchanged: ids among ``applied`` whose forgotten data's weights came back unchanged
            (``ForgetReport.unchanged_for`` their shards): ``applied_without_change``.
    """

    model: UnlearnableModel
    forget_set: ForgetSet
    report: ForgetReport
    entry: Optional[dict] = None
    applied: List[str] = field(default_factory=list)
    done_elsewhere: List[str] = field(default_factory=list)
    already_forgotten: List[str] = field(default_factory=list)
    unchanged: List[str] = field(default_factory=list)


def apply_forget(store: ModelStore, model: UnlearnableModel, forget_set: ForgetSet, method: str,
                 requests: Optional[Sequence[ForgetRequest]] = None) -> AppliedForget:
    """Forget ``forget_set`` on the model stored in ``store`` (see the module doc).

    Args:
        model: the loaded (or just trained and committed) model of ``store``.
        forget_set: what to forget; with ``requests`` it is rebuilt from the requests still to
            do (its ``source`` kept).
        method: the method name for the audit line.
        requests: the requests behind ``forget_set`` (request files, whose batcher keeps their
            ledger); ``None`` for a run's own forget set. A run's own forget set of a request file
            (``forget_set.requests``) is recorded here instead: its lines, queued in the ledger when
            the folder's first version went live (a run stopped meanwhile leaves them waiting for
            the next request run, not lost), are recorded final after the audit line.
    """
    log = AuditLog(store.model_dir)
    own = forget_set.requests if requests is None else None
    with store.lock.hold():
        store.lock.check_held()
        if store.is_stale(model):
            model = store.load(getattr(model, "overrides", None))
        # the records are checked before anything is appended, on another process's version as on
        # this process's own: a watcher checked them at its start only, and applied on top of an
        # audit line edited since, its own line then hiding the edit from --verify (r11fixes probe)
        log.reconcile(store, model)
        if own:  # queued in the ledger by the first version's commit (``UnlearnMethod.commit_first_version``)
            requests = [ForgetRequest(r.id, r.rows) for r in own]
        done_elsewhere: List[str] = []
        already: List[str] = []
        ids: List[str] = []
        groups, rows_of = {}, {}
        if requests is not None:
            applied_ids = log.applied_request_ids(repair=True)
            todo = [r for r in requests if r.id not in applied_ids]
            done_elsewhere = [r.id for r in requests if r.id in applied_ids]
            already = [r.id for r in todo if len(model.new_rows(r.rows)) == 0]
            ids = [r.id for r in todo]
            groups = {r.id: model.group_of(r.rows) for r in todo}  # the shards before this forget
            rows_of = {r.id: r.rows for r in todo}
            if not todo:
                return AppliedForget(model, ForgetSet(np.array([], dtype=np.int64), source=forget_set.source),
                                     ForgetReport(0), None, [], done_elsewhere, [])
            forget_set = ForgetSet(np.concatenate([r.rows for r in todo]), source=forget_set.source)
        key = log.secret()  # made with the log's first HMAC; a lost one was refused by reconcile
        start = time.perf_counter()
        forget_set = model.expand(forget_set)
        choosing_extras = time.perf_counter() - start
        new_rows = model.new_rows(forget_set.rows)
        left = _left_unchanged(store, log, key, model, {rid: rows_of[rid] for rid in ids})  # before this forget
        report = model.forget(forget_set.rows)
        if report.interactions:
            report.seconds += choosing_extras  # part of producing the new state
        entry = {
            "audit_id": uuid.uuid4().hex,
            "time": now(),
            "method": method,
            "source": forget_set.source,
            "requested_interactions": int(len(forget_set.requested)),
            "extra_deleted": int(len(forget_set.extra)),
            **report.to_json(),
            "forgotten_hmac": interaction_hmacs(key, model.dataset, new_rows),
            "key_id": key_id(key),
        }
        kept = model.dataset.rows_kept_by_count_filters(model.forgotten)
        if len(kept):  # README: what a model folder still depends on
            entry["kept_by_count_filters"] = int(len(kept))
            getLogger().warning(kept_by_filters_line(len(kept)))
        # a request whose weights this forget reset for want of data is exact, whatever an earlier
        # forget left of its rows (they were reset with the rest; a probe)
        unchanged = [rid for rid in ids if not report.reset_for_want_of_data(groups[rid]) and (
            rid in left or rid not in already and report.unchanged_for(groups[rid], rows_of[rid]))]
        if requests is not None:
            # what each request's ledger line says, so a later run that writes a lost one says the same
            entry.update(requests=len(ids), request_ids=ids, already_forgotten=already,
                         unchanged_request_ids=unchanged)
        if report.interactions:
            store.commit(model, store.reused_files(model, report), audit_entry=entry)
            fault_point("current_switched")
        entry["version"] = store.current_version()
        try:
            log.append(entry)
        except Exception as error:
            if report.interactions:  # live without its audit line: as a process killed here, not a failure
                raise ForgetWentLive(entry["version"], error) from error
            raise
        fault_point("audit_appended")
        if own:
            try:
                _record_own(store, own, log)
            except Exception as error:  # the audit log holds them: the next run records them
                raise ForgetWentLive(entry["version"], error, what="its requests' ledger lines") from error
    return AppliedForget(model, forget_set, report, entry, ids, done_elsewhere, already, unchanged)


def _left_unchanged(store: ModelStore, log: AuditLog, key: bytes, model: UnlearnableModel, rows_of: dict) -> set:
    """Of the requests ``rows_of`` (``{id: [n] log rows}``), the ids with a row an earlier forget
    recorded as forgotten without changing the weights that held it: an audit line with
    ``changed: false``, a shard its per-shard ``approximate`` says came back unchanged (a run's own
    forget under ``shard_unlearning``, which has no request ids), or a request of an
    ``unchanged_request_ids`` list. Such rows are not forgotten again (they are forgotten
    already), so the model may still carry their influence: the request is
    ``applied_without_change`` too, not plain applied (README: ``applied_without_change``).
    A later reset for want of data (``stopped_by: nothing_remains``: the model or the row's
    shard back at its seeded initialisation) leaves nothing of them. Conservative otherwise: a
    later forget that retrained the row's shard is not looked for, nor the shard of a request of
    an ``unchanged_request_ids`` list."""
    if not rows_of:
        return set()
    entries = log.entries()
    pairs: Dict[str, set] = {}  # pair HMAC -> the shards left unchanged holding it ("*": the whole model)
    unchanged_ids = set()
    for entry in entries:
        steps = steps_by_weights(entry.get("approximate"))
        reset = reset_weights(entry.get("approximate"))
        if WHOLE_MODEL in reset:  # the single model reset for want of data: nothing is left
            pairs.clear()
            unchanged_ids.clear()
            continue
        per_shard = {} if WHOLE_MODEL in steps else steps
        for held in pairs.values():  # shards reset since: what they held is gone
            held -= reset
        if per_shard:
            shards = {shard for shard, result in per_shard.items() if result.get("changed") is False} - reset
        else:
            shards = {WHOLE_MODEL} if entry.get("changed") is False else set()
        for pair in (entry.get("forgotten_hmac") or ()) if shards else ():
            pairs.setdefault(pair, set()).update(shards)
        unchanged_ids.update(entry.get("unchanged_request_ids") or ())
    unchanged_rows = set()
    if unchanged_ids:
        for event in RequestLedger(store.model_dir).events():
            if event["id"] in unchanged_ids and event.get("rows"):
                unchanged_rows.update(event["rows"])
    forgotten = set(model.forgotten.tolist())

    def left(row: int, pair: str) -> bool:
        shards = pairs.get(pair, ())
        return row in unchanged_rows or WHOLE_MODEL in shards or (
            bool(shards) and str(model.group_of(np.array([row]))[0]) in shards)

    out = set()
    for rid, rows in rows_of.items():
        earlier = np.array([row for row in rows.tolist() if row in forgotten], dtype=np.int64)
        if len(earlier) and any(left(row, pair) for row, pair in zip(earlier.tolist(),
                                                                       interaction_hmacs(key, model.dataset, earlier))):
            out.add(rid)
    return out


def kept_by_filters_line(n: int) -> str:
    """The warning for ``n`` remaining rows kept only by forgotten lines (``kept_by_count_filters``)."""
    return (f"{n} remaining interaction{'s are' if n != 1 else ' is'} trained on only because forgotten lines lifted "
            "their user's or item's count over RecBole's count filter (user_inter_num_interval, "
            "item_inter_num_interval): a fit on the file without those lines would drop them; purge the file "
            "and train a new model folder to be exact (README: what a model folder still depends on)")


def _record_own(store: ModelStore, own: list, log: AuditLog) -> None:
    """The final ledger lines of a run's own request-file lines ``own``, as the audit log says
    (what a later run's recovery would write; the caller holds the lock)."""
    applied = log.applied_requests(repair=True)
    RequestLedger(store.model_dir).record([applied_line(r.id, r.file, r.line, applied[r.id]) for r in own
                                           if r.id in applied])
