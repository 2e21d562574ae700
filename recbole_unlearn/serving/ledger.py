"""``<model_dir>/requests.jsonl``: one JSON line per request status change.

Statuses: ``queued``; then ``applied`` (with the model version and latency; ``already_forgotten:
true`` when every row it names was forgotten before), ``applied_without_change`` (an
approximate forget recorded the rows as forgotten but returned the weights unchanged: see the
README) or ``rejected`` (with the reason). ``failed`` (with the error) is not final: the forget
of its batch raised, the previous version stayed live, and the next run retries the request.
Written and read by ``serving.jsonl`` under the folder's lock.
"""
import os
import time
from typing import Dict, Iterable, List, NamedTuple

from recbole_unlearn.serving import jsonl

LEDGER = "requests.jsonl"
FINAL_STATUSES = ("applied", "applied_without_change", "rejected")
#: what every ledger line holds (checked when read)
LINE_FIELDS = {"id": (str, True), "status": (str, True), "rows": (jsonl.ListOf(int), False),
               "queued_at": ((int, float), False)}


#: a line's ``time``: the local time, to the second, without its zone
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


def now() -> str:
    """The local time, to the second, without its zone (a line's ``time``, for people)."""
    return time.strftime(TIME_FORMAT)


def queued_fields() -> dict:
    """What a ``queued`` line holds of when it was written: ``time`` (:func:`now`) and
    ``queued_at``, seconds since the epoch, which every zone reads alike (a resumed request's
    latency counts from it)."""
    return {"time": now(), "queued_at": round(time.time(), 3)}


def applied_line(rid: str, file: str, line: int, applied: dict) -> dict:
    """The final ledger line of request ``rid`` (its ``file`` and ``line``) that the audit log
    holds as ``applied`` (``AuditLog.applied_requests``: its version, status, already_forgotten)."""
    return {"id": rid, "file": file, "line": line, "status": applied["status"], "version": applied["version"],
            "already_forgotten": applied["already_forgotten"], "time": now()}


def queued_line(rid: str, file: str, line: int, rows: Iterable[int]) -> dict:
    """The ``queued`` ledger line of request ``rid`` (its ``file`` and ``line``) with its log
    ``rows``: what the next request run applies if the run that queued it stops first."""
    return dict({"id": rid, "file": file, "line": line, "status": "queued"}, **queued_fields(),
                rows=[int(r) for r in rows])


class RequestLines(NamedTuple):
    """One request id's lines in a ledger: its ``first`` and ``last`` (its status now), and the
    ``number`` (1-based) of the last."""
    first: dict
    last: dict
    number: int


def lines_by_request(events: List[dict]) -> Dict[str, RequestLines]:
    """``{request id: RequestLines}`` of a ledger's lines ``events``, in the order the ids first
    appear."""
    by_id: Dict[str, RequestLines] = {}
    for number, event in enumerate(events, start=1):
        known = by_id.get(event["id"])
        by_id[event["id"]] = RequestLines(known.first if known else event, event, number)
    return by_id


class RequestLedger:
    """The ledger of one model folder."""

    def __init__(self, model_dir: str):
        self.path = os.path.join(model_dir, LEDGER)

    def record(self, events: Iterable[dict]) -> None:
        jsonl.append_records(self.path, events)

    def events(self, repair: bool = False) -> List[dict]:
        return jsonl.read_records(self.path, repair=repair, fields=LINE_FIELDS)
