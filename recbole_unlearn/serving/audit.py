"""The audit log of a model folder, and ``--verify``.

``audit.jsonl`` holds one JSON line per applied forget: audit id, time, method, source, request
ids (those that changed nothing also under ``unchanged_request_ids``), counts, shards and slices retrained, seconds, ``changed`` and (approximate forgets) what
the step achieved, and an HMAC-SHA256 of each newly forgotten (user, item) pair keyed by
``audit.key`` (32 random bytes, mode 0600, outside the log), so compliance can check a pair
without the log re-storing it. Lines are written and read by ``serving.jsonl`` (torn final lines
repaired under the lock).
"""
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from recbole_unlearn.serving import jsonl
from recbole_unlearn.serving.ledger import FINAL_STATUSES, LEDGER, RequestLedger, lines_by_request
from recbole_unlearn.serving.store import (FORGOTTEN, MANIFEST, PENDING_AUDIT, ModelStore,
                                           checked_path, is_version_name, read_json)
from recbole_unlearn.trainer.approximate import WHOLE_MODEL, reset_weights, steps_by_weights
from recbole_unlearn.unlearnable.sharded import LEGACY_PARTITION_FILE
from recbole_unlearn.utils.atomic import atomic_write
from recbole_unlearn.utils.errors import UnlearnError, error_line

AUDIT = "audit.jsonl"
SECRET = "audit.key"
#: the lists an audit line may hold (checked when read)
LINE_FIELDS = {"request_ids": (jsonl.ListOf(str), False), "forgotten_hmac": (jsonl.ListOf(str), False),
               "already_forgotten": (jsonl.ListOf(str), False), "unchanged_request_ids": (jsonl.ListOf(str), False),
               "audit_id": ((str, type(None)), False), "request_id": ((str, type(None)), False),
               "approximate": ((dict, type(None)), False)}


_UNREAD = object()  # AuditLog.pending's live line when the caller has not read it


@dataclass
class FolderRecords:
    """What :meth:`AuditLog.check_records` read of a folder's records."""

    #: the live version's audit line not in the log yet (its process died before appending it)
    pending: Optional[dict]
    #: the ledger's lines
    events: List[dict]
    #: the request ids the audit log (and the pending line) hold
    audited_ids: Set[str]
    #: forgotten interactions no line of the log holds (those of the pending line, where there is one)
    unaudited: int


class AuditLog:
    """``<model_dir>/audit.jsonl`` and its key. Writing and repairing need the folder's lock."""

    def __init__(self, model_dir: str):
        self.model_dir = model_dir
        self.path = os.path.join(model_dir, AUDIT)

    def entries(self, repair: bool = False) -> List[dict]:
        return jsonl.read_records(self.path, repair=repair, fields=LINE_FIELDS)

    def append(self, entry: dict) -> None:
        jsonl.append_records(self.path, [entry])

    def applied_request_ids(self, repair: bool = False) -> Dict[str, str]:
        """``{request id: model version}`` of every request id in the log."""
        return {rid: applied["version"] for rid, applied in self.applied_requests(repair).items()}

    def applied_requests(self, repair: bool = False) -> Dict[str, dict]:
        """``{request id: {"version", "status", "already_forgotten"}}`` of every request id in
        the log: the ledger line the run that applied it wrote, or would have. ``status`` is
        ``applied_without_change`` for ids the line lists as unchanged; lines written before
        it listed them count every id of a forget that changed nothing (``changed: false``)."""
        out: Dict[str, dict] = {}
        for entry in self.entries(repair):
            ids = entry.get("request_ids", [])
            already = set(entry.get("already_forgotten", []))
            if "unchanged_request_ids" in entry:
                unchanged = set(entry["unchanged_request_ids"])
            else:
                unchanged = set(ids) - already if entry.get("interactions") and entry.get("changed") is False else set()
            for rid in ids:
                out[rid] = {"version": entry.get("version"), "already_forgotten": rid in already,
                            "status": "applied_without_change" if rid in unchanged else "applied"}
        return out

    def secret(self, create: bool = True) -> Optional[bytes]:
        """The model's audit key (created once, mode 0600). It is kept outside the log so the
        log alone cannot be used to test guesses of forgotten pairs (plain hashes of small
        integer ids are trivially reversible). ``None`` if missing and not ``create``."""
        path = os.path.join(self.model_dir, SECRET)
        if not os.path.exists(path):
            if not create:
                return None
            atomic_write(path, lambda f: f.write(os.urandom(32)))
            os.chmod(path, 0o600)
        with open(path, "rb") as f:
            key = f.read()
        if len(key) != 32:
            raise UnlearnError(f"{path} is not a 32-byte audit key")
        return key

    def reconcile(self, store: ModelStore, model=None) -> Optional[dict]:
        """If the current version was written by a forget whose audit line never made it to the
        log (the process died between the switch and the append), append that line now, marked
        ``recovered``. Returns the appended entry, or ``None``. Needs the lock.

        First, refuses a folder whose log records a version newer than the live one (CURRENT
        set back by hand, or a folder restored from an older copy beside a newer log): a forget
        from there would write over deletions the log holds as applied; and one whose audit key
        is lost while the log holds HMACs (:meth:`check_key`); with ``model`` (the live version,
        loaded), one whose records contradict each other or it (:meth:`check_records`), before
        anything is appended."""
        entries = self.entries(repair=True)
        self.check_not_rolled_back(store, entries)
        check_not_rolled_back(os.path.join(self.model_dir, LEDGER), RequestLedger(self.model_dir).events(repair=True),
                              store.current_version())
        self.check_key(entries)
        if model is not None:
            self.check_records(store, model, entries)
        pending = self.pending(store, entries)
        if pending is None:
            return None
        pending["recovered"] = True
        self.append(pending)
        return pending

    def pending(self, store: ModelStore, entries: List[dict], live=_UNREAD) -> Optional[dict]:
        """The audit line the live version holds (``audit_entry.json``) if the log (``entries``)
        lacks it: a process died between the switch and the append; ``None`` otherwise. ``live``:
        :func:`live_audit_line`'s answer, where the caller has read it already."""
        live = live_audit_line(store) if live is _UNREAD else live
        if live is None:
            return None
        path, pending = live
        pending_id = pending.get("audit_id", pending.get("request_id"))
        if any(e.get("audit_id", e.get("request_id")) == pending_id for e in entries):
            return None
        self._check_pending_is_own(path, pending, os.path.basename(os.path.dirname(path)), entries)
        return pending

    def _check_pending_is_own(self, path: str, pending: dict, version: str, entries: List[dict]) -> None:
        """Raise ``UnlearnError`` unless the live version's audit line not in the log yet was
        written by this folder's forget of that version: made with this folder's key, naming this
        version, and for requests no line of the log holds. A version copied from another model
        folder passed ``--verify`` as a pending line, and the next run appended that folder's line
        (its requests then applied twice in the log) before refusing the key."""
        own_key = self.secret(create=False)
        problem = None
        if pending.get("version") != version:
            problem = f"it names {pending.get('version')!r}, not the version {version} that holds it"
        elif pending.get("key_id") is not None and (own_key is None or pending["key_id"] != key_id(own_key)):
            problem = f"it was made with another audit key than {os.path.join(self.model_dir, SECRET)}"
        else:
            logged = {rid for entry in entries for rid in entry.get("request_ids", [])}
            again = [rid for rid in pending.get("request_ids", []) if rid in logged]
            if again:
                problem = f"its request {again[0]} is applied by an earlier line of {AUDIT} already"
        if problem is not None:
            raise UnlearnError(f"{path}, the live version's audit line, is not this folder's ({problem}): the "
                               "version was copied from another model folder or edited; restore the folder's own "
                               "version (the audit log was left as it was)")

    def check_forgotten_where_recorded(self, model, entries: List[dict], known: Optional[Set[str]] = None) -> None:
        """Raise ``UnlearnError`` if a line of the log (``entries``) holds the HMAC of a pair that
        is not a forgotten interaction of ``model`` (the live version): its rows are recorded as
        (user token, position) in :data:`FORGOTTEN`, so a dataset that loads a user's
        interactions in another order than when they were forgotten names other items there, and a
        forget from it trained again on what was forgotten and dropped what nobody asked to
        (earlier code loading with ``rm_dup_inter`` sorted tied times in an order that depends on
        the CPU; a probe moved such a folder); or the log was edited. Lines without HMACs
        (folders saved before they were recorded), or a folder without its key (which
        :meth:`check_key` refuses where lines need it), are not checked. ``known``: the model's
        forgotten pairs' HMACs, where the caller computed them already."""
        lines = [(number, entry["forgotten_hmac"]) for number, entry in enumerate(entries, start=1)
                 if entry.get("forgotten_hmac")]
        key = self.secret(create=False) if lines and known is None else None
        if known is None and key is None:
            return
        if known is None:
            known = set(interaction_hmacs(key, model.dataset, model.forgotten))
        for number, hashes in lines:
            missing = sum(1 for h in hashes if h not in known)
            if missing:
                raise UnlearnError(
                    f"{self.path} line {number}: {missing} of the interactions it forgot are not forgotten pairs of "
                    f"the model: at the positions {FORGOTTEN} records, the dataset as loaded here holds other items "
                    "(it loads in another order than when they were forgotten: earlier code loading with "
                    "rm_dup_inter sorted tied times in an order that depends on the CPU), or the log was edited; "
                    "a forget from here would train on them again, so nothing is applied (serve the folder on the "
                    "machine and code that forgot them, or train it again)")

    def check_records(self, store: ModelStore, model, entries: List[dict]) -> "FolderRecords":
        """Raise ``UnlearnError`` where the folder's records contradict each other or the live
        version ``model``, as ``--verify`` finds them: the log's lines (:func:`_check_log_lines`),
        a claimed reset with samples left, the ledger against the log, the key, forgotten pairs at
        other positions than recorded, and forgotten pairs in no line. A request run makes these
        checks before it applies anything (it checked the positions alone: a line's version edited,
        or a pair added to ``forgotten.json`` with its checksum, was applied on, the first edit
        then passing ``--verify`` and the second answering a request for that pair as already
        forgotten; r10round6 probe). Needs the lock. Returns what ``--verify`` reports of them."""
        live = live_audit_line(store)
        pending = self.pending(store, entries, live)
        _check_log_lines(self.path, entries, live[1] if live else None)
        claimed = claimed_resets_with_samples(entries, model)
        if claimed:
            what = "the model" if claimed[0] == WHOLE_MODEL else f"shard {claimed[0]}"
            raise UnlearnError(f"{self.path}: a line says it reset {what} for want of data, while training samples "
                               "remain for it: the log was edited")
        events = RequestLedger(self.model_dir).events(repair=True)
        audited_ids = {rid for entry in entries + [pending or {}] for rid in entry.get("request_ids", [])}
        _check_ledger(os.path.join(self.model_dir, LEDGER), events, audited_ids, set(model.forgotten.tolist()),
                      os.path.basename(model.version_dir), _listed_statuses(entries),
                      _audited_versions(entries + ([pending] if pending else [])))
        self.check_key(entries)
        key = self.secret(create=False)
        known = set(interaction_hmacs(key if key is not None else b"", model.dataset, model.forgotten))
        if key is not None:
            self.check_forgotten_where_recorded(model, entries, known)
        audited = set().union(*(entry.get("forgotten_hmac", []) for entry in entries))
        # every forgotten interaction is in a line, or in the pending one (its process died before
        # appending it): a line emptied or deleted, with its requests' ledger lines or not, passed
        # with a count (a probe); folders whose lines hold no pairs (saved before) keep the count
        unaudited = known - audited - set((pending or {}).get("forgotten_hmac", []))
        hmac_lines = all("forgotten_hmac" in entry for entry in entries + ([pending] if pending else []))
        if unaudited and key is not None and hmac_lines:
            raise UnlearnError(f"{self.model_dir}: {len(unaudited)} forgotten interactions are in no audit line: the "
                               f"audit log lost lines or pairs ({AUDIT} edited, or restored from an older copy), or "
                               f"{FORGOTTEN} gained pairs, so what was forgotten when, and for which request, is no "
                               "longer on record")
        return FolderRecords(pending, events, audited_ids, len(known - audited))

    def check_not_rolled_back(self, store: ModelStore, entries: List[dict]) -> None:
        """Raise ``UnlearnError`` if a line of the log (``entries``) names a newer version than CURRENT."""
        check_not_rolled_back(self.path, entries, store.current_version())

    def check_key(self, entries: List[dict]) -> None:
        """Raise ``UnlearnError`` if the key is lost while lines of the log (``entries``) hold
        HMACs made with it: the log cannot be checked, and a new key (made with the next line)
        would leave them unverifiable for good; or if it is not the key a line names
        (``key_id``: another folder's key copied over it said "audited pairs are not forgotten",
        and later lines were made with it). ``reconcile`` runs it before every forget."""
        path = os.path.join(self.model_dir, SECRET)
        if not os.path.exists(path):
            if any(entry.get("forgotten_hmac") for entry in entries):
                raise UnlearnError(f"{path} is missing: the audit log's lines hold HMACs made with it, so the audit "
                                   "log cannot be checked, and a new key would leave them unverifiable for good; "
                                   "restore it from the folder's copy (mode 0600: a copy made by another user "
                                   "skips it)")
            return
        current = key_id(self.secret(create=False))
        for number, entry in enumerate(entries, start=1):
            if entry.get("key_id") not in (None, current):  # lines written before key ids name none
                raise UnlearnError(f"{path} is not the key {AUDIT} line {number} was made with (another folder's "
                                   "key copied over it?): its HMACs cannot be checked, and new lines would not "
                                   "check with the earlier ones; restore the folder's own key")


def key_id(key: bytes) -> str:
    """Names an audit key without revealing it (an HMAC of a fixed label, 16 hex digits): each
    audit line records the key its HMACs were made with."""
    return hmac.new(key, b"recbole_unlearn audit key id", hashlib.sha256).hexdigest()[:16]


def interaction_hmacs(key: bytes, dataset, rows: np.ndarray) -> List[str]:
    """HMAC-SHA256 of each forgotten (user token, item token) pair, hex; ``[n]``."""
    users = dataset.id2token(dataset.uid_field, dataset.log_user[rows])
    items = dataset.id2token(dataset.iid_field, dataset.log_item[rows])
    return [hmac.new(key, f"{u}\t{i}".encode(), hashlib.sha256).hexdigest() for u, i in zip(users, items)]


def verify_model(store: ModelStore, overrides: Optional[dict] = None) -> dict:
    """Re-check a saved model: every file matches its checksum (by loading it); the live
    version holds only the files its format writes (no vectors computed from forgotten data,
    e.g. an older version's ``partition_embeddings.pth``); no shard's or the single model's
    remaining training data contains a forgotten interaction; every (user, item) HMAC in the
    audit log is a forgotten pair of the model. Raises ``UnlearnError`` naming the first
    problem; returns counts, among them the requests that still wait (``requests_not_final``:
    queued or ``failed`` in the ledger and not in the audit log; ``requests_failed``; the time
    the oldest was queued), which are not an error but must not go unseen, and the
    ``older_versions`` still on disk (models from before later forgets: the one before the live
    version under ``keep_previous_version``, or one a process killed mid-commit left) and the
    ``never_live_versions`` (newer ones a forget staged and was stopped before switching to) and
    the ``left_behind_folders`` (a stopped commit's staging folder, a version a stopped run was
    removing).
    Each weight file's record of what it trained with is checked against the live weights and
    what the remaining data gives now (``check_trained_on``: ``weights_checked``;
    ``weights_unchecked`` are approximately unlearned files and those saved before the records
    were kept), so weights a forget left as they were where their data changed, a stage file
    that is not what its training produced, or one trained from other weights than the stage
    before it holds, are an error.
    ``overrides``: as for :meth:`ModelStore.load` (e.g. the dataset's new ``data_path``)."""
    model_dir = store.model_dir
    store.require_model_folder()  # before the lock, whose file would be left in another folder
    with store.lock.hold():
        model = store.load(overrides, trains=False)
        _check_version_files(model)
        forgotten = set(model.forgotten.tolist())
        leaked = forgotten.intersection(model.rows_in_training_data().tolist())
        if leaked:
            raise UnlearnError(f"{model_dir}: {len(leaked)} forgotten interactions are still in training data")
        checked, unchecked, stale = model.check_trained_on()
        if stale:
            more = f" (and {len(stale) - 1} more)" if len(stale) > 1 else ""
            raise UnlearnError(f"{model_dir}: {stale[0]}{more}: its weights are not what training on the "
                               "remaining data gave (a forget left them as they were, or a file was replaced)")
        log = AuditLog(model_dir)
        entries = log.entries(repair=True)
        log.check_not_rolled_back(store, entries)
        live = live_audit_line(store)
        unrecorded = model.unrecorded_retrained_files(live[1]) if live else []
        if unrecorded:
            more = f" (and {len(unrecorded) - 1} more)" if len(unrecorded) > 1 else ""
            raise UnlearnError(f"{model_dir}: {unrecorded[0]}{more} has no training record, yet the audit line of the "
                               "forget that made the live version says it was retrained exactly, which records every "
                               "file it trains (records removed by hand?)")
        records = log.check_records(store, model, entries)
        waiting = _requests_not_final(records.events, records.audited_ids)
        older, never_live = store.older_versions(), store.never_live_versions()
        left_behind = store.left_behind_folders()
        pending = records.pending
    # a line of requests already forgotten only (no interaction) changed nothing by itself: it
    # counts when it lists requests an earlier forget left unchanged
    unchanged = sum(1 for entry in entries if entry.get("unchanged_request_ids") or entry.get("interactions") and (
        entry.get("changed") is False and not reset_for_want_of_data(entry)
        or any(step.get("changed") is False for weights, step in steps_by_weights(entry.get("approximate")).items()
               if weights != WHOLE_MODEL and weights not in reset_weights(entry.get("approximate")))))
    return {"model_dir": model_dir, "forgotten": len(forgotten), "audit_entries": len(entries),
            "applied_without_change": unchanged, "version": os.path.basename(model.version_dir),
            "requests_not_final": len(waiting), "requests_failed": sum(e["status"] == "failed" for e in waiting.values()),
            "oldest_not_final": min((e["queued"] for e in waiting.values()), default=None),
            "older_versions": older, "never_live_versions": never_live,
            "left_behind_folders": left_behind, "weights_checked": checked, "weights_unchecked": unchecked,
            # a live version whose audit line is not in the log yet (the next run appends it), and
            # the forgotten interactions no audit line covers (those of that line, where it is pending)
            "audit_pending": pending.get("version") if pending else None,
            "forgotten_unaudited": records.unaudited,
            # remaining rows RecBole's count filters keep only because of forgotten lines (README)
            "kept_by_count_filters": len(model.dataset.rows_kept_by_count_filters(model.forgotten))}


def check_not_rolled_back(path: str, lines: List[dict], current: Optional[str]) -> None:
    """Raise ``UnlearnError`` if one of ``lines`` (the audit log's or the ledger's, read from
    ``path``) records a newer version than ``current``: the folder was rolled back (the ledger
    tells it too where the audit log was emptied or restored from the same older copy)."""
    for number, line in enumerate(lines, start=1):
        version = line.get("version")
        if isinstance(version, str) and current is not None and version > current:
            raise UnlearnError(
                f"{path} line {number} records {version}, yet CURRENT names {current}: the folder was "
                "rolled back (CURRENT edited, or restored from an older copy), and a forget from here would "
                f"undo the deletions recorded since; set CURRENT back to the newest version, or restore the "
                "whole folder from one copy")


def live_audit_line(store: ModelStore) -> Optional[Tuple[str, dict]]:
    """``(path, line)`` of the audit line of the forget that made the live version (its
    ``audit_entry.json``, checksummed in its manifest); ``None`` for a version no forget made."""
    version_dir, manifest = store.read_manifest()
    if PENDING_AUDIT not in manifest["files"]:
        return None
    path = checked_path(version_dir, manifest["files"], PENDING_AUDIT)
    return path, read_json(path)


def _check_log_lines(path: str, entries: List[dict], live: Optional[dict]) -> None:
    """Raise ``UnlearnError`` for audit lines that contradict each other or the live version:
    an audit id or a request id in two lines, versions that go back, the live version's line
    other than the one the version holds (``live``, checksummed; ``recovered`` aside), or a line
    that forgot interactions without changing the model while requests of it (not already
    forgotten) are not listed as unchanged. Each passed ``--verify`` (found by probing)."""
    seen_audit, seen_request, newest, hmac_line = {}, {}, None, None
    reset_at: Dict[str, int] = {}  # "*" (the single model) or a shard -> the line that reset it for want of data
    listing_line: Optional[int] = None  # the first request line holding unchanged_request_ids
    for number, entry in enumerate(entries, start=1):
        where = f"{path} line {number}"
        _check_no_step_after_a_reset(where, entry, number, reset_at)
        # every line since its pairs were recorded (an audit id, a key id) holds them, and no
        # line after one that does lacks them: a line without them passed as one saved before
        if "forgotten_hmac" in entry:
            hmac_line = hmac_line or number
            counted = entry.get("interactions")  # one pair per newly forgotten interaction, as written (a
            pairs = entry["forgotten_hmac"]  # count of another type, or none, passed; r11round5 probe)
            if not isinstance(pairs, list) or not isinstance(counted, int) or isinstance(counted, bool) \
                    or counted != len(pairs):
                raise UnlearnError(f"{where} counts {counted!r} interactions, yet holds "
                                   f"{len(pairs) if isinstance(pairs, list) else repr(pairs)} forgotten pairs, one "
                                   "per interaction it forgot: the log was edited")
        elif "audit_id" in entry or "key_id" in entry or hmac_line is not None:
            raise UnlearnError(f"{where} holds no forgotten_hmac, which every line written since "
                               f"{'line ' + str(hmac_line) if hmac_line else 'audit ids were'} holds: the log was edited")
        audit_id = entry.get("audit_id", entry.get("request_id"))
        if audit_id is not None and audit_id in seen_audit:
            raise UnlearnError(f"{where} repeats line {seen_audit[audit_id]} (audit id {audit_id}): the log was edited")
        seen_audit[audit_id] = number
        for rid in entry.get("request_ids", []):
            if rid in seen_request:
                raise UnlearnError(f"{where} holds request {rid}, which line {seen_request[rid]} applied already: the "
                                   "log was edited (a request is applied once)")
            seen_request[rid] = number
        version = entry.get("version")
        if isinstance(version, str):
            if not is_version_name(version) or int(version[1:]) < 1:  # (v000000 passed; r11fixes probe)
                raise UnlearnError(f"{where} records {version!r}, which no version is named: the log was edited")
            if newest is not None and version < newest:
                raise UnlearnError(f"{where} records {version} after an earlier line recorded {newest}: the log "
                                   "was edited (lines are appended as versions go live)")
            # a forget that removed interactions made a new version; only a line of requests
            # forgotten already names the live one again (a line set to the next one's passed)
            if newest is not None and version == newest and _removed_interactions(entry):
                raise UnlearnError(f"{where} records {version}, as an earlier line does, yet it removed "
                                   f"{entry['interactions']} interactions, which makes a new version: the log was edited")
            newest = version
        if live is not None and audit_id == live.get("audit_id", live.get("request_id")):
            if {k: v for k, v in entry.items() if k != "recovered"} != live:
                raise UnlearnError(f"{where} is not the audit line the live version holds ({PENDING_AUDIT}): the log "
                                   "was edited")
        # a request line after one that lists its unchanged requests lists them too (a line
        # without the list passed as one saved before it, its requests then plain applied)
        if "request_ids" in entry:
            if "unchanged_request_ids" in entry:
                listing_line = listing_line or number
            elif listing_line is not None:
                raise UnlearnError(f"{where} holds no unchanged_request_ids, which line {listing_line} holds, as every "
                                   "request line written since does: the log was edited")
        # (a request whose shards were reset for want of data is applied though nothing moved)
        if "unchanged_request_ids" in entry and entry.get("interactions") and entry.get("changed") is False \
                and not reset_for_want_of_data(entry, every=False):
            listed = set(entry["unchanged_request_ids"]) | set(entry.get("already_forgotten", []))
            unlisted = [rid for rid in entry.get("request_ids", []) if rid not in listed]
            if unlisted:
                raise UnlearnError(f"{where} says the forget changed nothing, yet its request {unlisted[0]} is not "
                                   "listed as unchanged: the log was edited")


def _check_no_step_after_a_reset(where: str, entry: dict, number: int, reset_at: Dict[str, int]) -> None:
    """A model (or shard) reset for want of data has nothing to train on ever after: a later
    line whose step ran on it was edited, or the reset line was (a line made to claim a reset
    passed, its requests then plain ``applied``; a probe). Records this line's resets."""
    reset = reset_weights(entry.get("approximate"))
    for weights, step in steps_by_weights(entry.get("approximate")).items():
        if weights in reset:
            reset_at.setdefault(weights, number)
        elif weights in reset_at:
            what = "the model" if weights == WHOLE_MODEL else f"shard {weights}"
            raise UnlearnError(f"{where} records a step ({step.get('stopped_by')}) on {what}, which line "
                               f"{reset_at[weights]} says it reset the model for want of data, with nothing left to "
                               "train on: the log was edited")


def claimed_resets_with_samples(entries: List[dict], model) -> List[str]:
    """The weights (``"*"``: the single model; a shard) an audit line says were reset for want
    of data while the live model still has training samples for them: a claim no forget makes."""
    claimed = set().union(*(reset_weights(entry.get("approximate")) for entry in entries))
    keep = model.keep_mask()
    out = []
    for weights in sorted(claimed):
        if weights == WHOLE_MODEL:
            rows = keep
        elif hasattr(model, "shard_map") and weights.isdigit():
            rows = keep & (model.shard_map.user_shard[model.dataset.log_user] == int(weights))
        else:
            continue
        if model.dataset.has_training_samples(rows):
            out.append(weights)
    return out


def reset_for_want_of_data(entry: dict, every: bool = True) -> bool:
    """Whether an audit line's forget reset every weight file it acted on (``every=False``: any
    shard) to its seeded initialisation, nothing being left to train on (``stopped_by:
    nothing_remains``): exact, whether or not the weights moved (they may have been that
    initialisation already), so not a forget that left the data's influence in place."""
    steps, reset = steps_by_weights(entry.get("approximate")), reset_weights(entry.get("approximate"))
    return bool(reset) and (len(reset) == len(steps) if every else True)


def _removed_interactions(entry: dict) -> bool:
    interactions = entry.get("interactions")
    return isinstance(interactions, int) and not isinstance(interactions, bool) and interactions > 0


def _audited_versions(entries: List[dict]) -> Dict[str, str]:
    """``{request id: the version its audit line records}``."""
    return {rid: entry["version"] for entry in entries if isinstance(entry.get("version"), str)
            for rid in entry.get("request_ids", [])}


def _listed_statuses(entries: List[dict]) -> Dict[str, str]:
    """``{request id: the final ledger status its audit line gives it}`` for lines that list
    their unchanged requests (``unchanged_request_ids``; older lines leave it to be inferred)."""
    out = {}
    for entry in entries:
        if "unchanged_request_ids" in entry:
            unchanged = set(entry["unchanged_request_ids"])
            out.update({rid: "applied_without_change" if rid in unchanged else "applied"
                        for rid in entry.get("request_ids", [])})
    return out


def _check_ledger(path: str, events: List[dict], audited_ids: set, forgotten: set, current: str,
                  listed: Dict[str, str], versions: Optional[Dict[str, str]] = None) -> None:
    """Raise ``UnlearnError`` for a ledger line the folder contradicts: one that records a newer
    version than ``current`` (a rolled-back folder whose audit log lost that line too); a request
    whose last status is ``applied`` (or ``applied_without_change``) while no audit line holds
    its id (unless it was already forgotten) or while rows it was queued with are not
    ``forgotten``; one ``rejected`` after it was queued with its log rows (the package rejects a
    request when it reads it, before it has rows); one whose final status is not the one its
    audit line gives it (``listed``: ``applied`` or ``applied_without_change``), or whose version is
    not the one its audit line records (``versions``; r11fixes probe). ``--verify`` read
    the ledger only for the requests still waiting, so a forged final line made a request vanish
    unapplied."""
    check_not_rolled_back(path, events, current)
    rows: Dict[str, list] = {}
    for event in events:
        if event["status"] == "queued" and event.get("rows") and event["id"] not in rows:
            rows[event["id"]] = event["rows"]
    for rid, (_, event, number) in lines_by_request(events).items():
        status, queued_rows = event["status"], rows.get(rid, [])
        where = f"{path} line {number}: request {rid}"
        if status == "rejected" and queued_rows:
            raise UnlearnError(f"{where} is rejected, yet it was queued with its {len(queued_rows)} log rows, as only a "
                               "valid request is: the ledger was edited; the request may never have been applied")
        if status not in FINAL_STATUSES or status == "rejected":
            continue
        if rid not in audited_ids and not event.get("already_forgotten"):
            raise UnlearnError(f"{where} is {status} ({event.get('version')}), yet no audit line holds it: the ledger "
                               "was edited, or an audit line removed")
        if rid in listed and listed[rid] != status:
            raise UnlearnError(f"{where} is {status}, yet {AUDIT} records it {listed[rid]}: the ledger or the audit "
                               "log was edited")
        recorded = (versions or {}).get(rid)
        if recorded is not None and isinstance(event.get("version"), str) and event["version"] != recorded:
            raise UnlearnError(f"{where} is {status} as {event['version']}, yet {AUDIT} records it applied as "
                               f"{recorded}: the ledger or the audit log was edited")
        missing = [row for row in queued_rows if row not in forgotten]
        if missing:
            raise UnlearnError(f"{where} is {status}, yet {len(missing)} of the {len(queued_rows)} log rows it was "
                               "queued with are not forgotten")


def _requests_not_final(events: List[dict], audited: set) -> Dict[str, dict]:
    """``{request id: {"status": its last status, "queued": when first queued}}`` of the ledger's
    requests whose last status is not final and that the audit log does not hold (one in the
    log was applied; its process died before the ledger said so, and the next run marks it)."""
    return {rid: {"queued": lines.first.get("time"), "status": lines.last["status"]}
            for rid, lines in lines_by_request(events).items()
            if lines.last["status"] not in FINAL_STATUSES and rid not in audited}


def folder_after_stop(model_dir: str, steps: int = 1) -> str:
    """What a training run stopped while it wrote ``model_dir`` left there, for its ``error:
    interrupted`` line (it said only that): the live version, if any, and where the folder's
    requests stand (``applied`` counts those the audit log, or the live version's audit line not
    in it yet, holds as gone live too; ``waiting`` the others not final), or, for a run forgetting
    in ``steps`` request steps, how many went live. Read without the lock and repairing nothing
    (the stop may have come mid-write); a file that cannot be read is said so."""
    try:
        store = ModelStore(model_dir, 0.0)
        version = store.current_version()
        if version is None:
            return f"no version of {model_dir} went live"
        events = RequestLedger(model_dir).events()
        entries = AuditLog(model_dir).entries()
        pending = live_audit_line(store)
    except (UnlearnError, OSError, ValueError) as e:
        return f"{model_dir} could not be read ({error_line(e)}): check it with --verify"
    logged = {e.get("audit_id", e.get("request_id")) for e in entries}
    if pending is not None and pending[1].get("audit_id", pending[1].get("request_id")) not in logged:
        entries = entries + [pending[1]]  # a stop between the switch and the append (r12trainkill probe)
    if steps > 1:  # a forget set dealt in request steps holds no requests (it named an empty ledger)
        done = sum(bool(e.get("interactions")) for e in entries)
        return (f"{model_dir} is live at version {version}; {done} of the run's {steps} request steps went live "
                "there" + (" (the forget set's other steps are not forgotten in it)" if done < steps else ""))
    live = {rid for e in entries for rid in e.get("request_ids", [])}
    last = {rid: lines.last["status"] for rid, lines in lines_by_request(events).items()}
    if not last:  # a sampled forget set: no requests (it named an empty ledger; r12fixes probe)
        forgot = any(e.get("interactions") for e in entries)
        return f"{model_dir} is live at version {version}" + (", its forget" if forgot else
                                                              ", the fit (the run's forget did not go live)")
    rejected = sum(status == "rejected" for status in last.values())
    unrecorded = sum(status not in FINAL_STATUSES and rid in live for rid, status in last.items())
    applied = sum(status in FINAL_STATUSES for status in last.values()) - rejected + unrecorded
    waiting = len(last) - applied - rejected
    return (f"{model_dir} is live at version {version}; of its {len(last)} request{'' if len(last) == 1 else 's'} "
            f"{applied} applied, {rejected} rejected, {waiting} waiting in {os.path.join(model_dir, LEDGER)}"
            + (": the next run answering requests on this folder records those that went live and applies the "
               "others, once" if waiting or unrecorded else ""))


def _check_version_files(model) -> None:
    """The live version's folder holds exactly the files its manifest lists, and those are the
    files its format writes: nothing else computed from the training data stays behind."""
    version_dir = model.version_dir
    manifest = read_json(os.path.join(version_dir, MANIFEST))
    listed = set(manifest["files"])
    if LEGACY_PARTITION_FILE in listed:
        raise UnlearnError(
            f"{version_dir} holds {LEGACY_PARTITION_FILE}: per-user vectors pretrained on all training data, "
            "forgotten interactions included (written by recbole_unlearn < 0.2); answer one request that forgets "
            "an interaction not forgotten yet with this version of recbole_unlearn to write a version without it "
            "(a request for rows already forgotten writes no version)")
    expected = set(model.weight_states()) | {FORGOTTEN}
    stray = sorted(listed - expected - {PENDING_AUDIT})
    if stray:
        raise UnlearnError(f"{version_dir}: manifest lists files this model does not write: {', '.join(stray)}")
    on_disk = set(os.listdir(version_dir)) - {MANIFEST}
    unlisted = sorted(on_disk - listed)
    if unlisted:
        raise UnlearnError(f"{version_dir}: files not in the manifest: {', '.join(unlisted)}")


__all__ = ["AUDIT", "SECRET", "AuditLog", "interaction_hmacs", "verify_model"]
