"""The one writer and the one reader of every append-only JSON-lines log of a model folder
(``audit.jsonl``, ``requests.jsonl``).

A process killed in the middle of an append (or a full disk) can leave a *torn* final line: a
line without its newline, or one that is not valid JSON. The policy is the same for every log:

* reading: a torn final line is not a record. With ``repair=True`` (callers hold the model
  folder's lock) it is reported once in the log and cut off, so the file ends with its last
  complete line again; without it the file is left as it is (a read-only look, e.g. a test).
* appending always repairs first, so a new record never glues onto a torn one;
* an invalid line anywhere *but* the last is corruption, not a tear: an error naming the file
  and the line.

A final line that is valid JSON but lacks its newline lost only the newline: it is kept and the
newline is added.
"""
import json
import os
from dataclasses import dataclass
from logging import getLogger
from typing import Dict, Iterable, List, Optional, Tuple, Union

from recbole_unlearn.utils.errors import UnlearnError


def _last_line_start(data: bytes) -> int:
    """Offset of the first byte of the last line of ``data`` (which does not end with ``\\n``)."""
    return data.rfind(b"\n") + 1


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line.decode("utf-8")), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False


def repair_torn_tail(path: str) -> bool:
    """Cut a torn final line off ``path`` (or add the missing newline of a complete one).
    Returns True if the file was changed. The caller holds the folder's lock."""
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return False
    body = data[:-1] if data.endswith(b"\n") else data
    start = _last_line_start(body)
    last = body[start:]
    if data.endswith(b"\n") and _is_record(last):
        return False
    with open(path, "r+b") as f:
        if _is_record(last):  # only the newline was lost
            f.seek(len(data))
            f.write(b"\n")
            kept = "its missing newline added"
        else:
            f.truncate(start)
            kept = f"cut back to its last complete line ({len(data) - start} bytes dropped)"
        f.flush()
        os.fsync(f.fileno())
    getLogger().warning(f"{path}: torn final line (an interrupted append) repaired: {kept}")
    return True


@dataclass(frozen=True)
class ListOf:
    """A field kind: a list whose every item is an ``item`` (``True`` is no ``int``)."""

    item: type

    def holds(self, value) -> bool:
        return isinstance(value, list) and all(
            isinstance(v, self.item) and not (self.item is int and isinstance(v, bool)) for v in value)

    @property
    def name(self) -> str:
        return f"list of {self.item.__name__}"


#: a field's kind: a type, several (a tuple), or :class:`ListOf`
FieldKind = Union[type, Tuple[type, ...], ListOf]


def _holds(value, kind: FieldKind) -> bool:
    return kind.holds(value) if isinstance(kind, ListOf) else isinstance(value, kind)


def _kind_name(kind: FieldKind) -> str:
    if isinstance(kind, ListOf):
        return kind.name
    return " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__


def read_records(path: str, repair: bool = False,
                 fields: Optional[Dict[str, Tuple[FieldKind, bool]]] = None) -> List[dict]:
    """Every record of the log at ``path`` (``[]`` if it does not exist). See the module doc
    for torn final lines; any other invalid line raises ``UnlearnError`` naming it, and so does
    a record whose ``fields`` (``{name: (type, required)}``) are missing or of another type
    (valid JSON of the wrong shape, e.g. a line edited by hand)."""
    if not os.path.isfile(path):
        return []
    if repair:
        repair_torn_tail(path)
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    complete = lines[-1] == b""  # the file ends with a newline
    if complete:
        lines = lines[:-1]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError
        except (UnicodeDecodeError, ValueError):
            if number == len(lines):  # torn final line: not a record
                break
            raise UnlearnError(f"{path} line {number} is not valid JSON (corrupted; restore it from a backup)") from None
        for name, (kind, required) in (fields or {}).items():
            if (name in record and not _holds(record[name], kind)) or (required and name not in record):
                raise UnlearnError(f"{path} line {number} has no valid '{name}' ({_kind_name(kind)}): not a line "
                                   "this package writes (edited by hand? restore it from a backup)")
        records.append(record)
    return records


def append_records(path: str, records: Iterable[dict]) -> None:
    """Append one JSON line per record to ``path`` and fsync it, after repairing a torn tail.
    The caller holds the folder's lock."""
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode("utf-8")
    if not data:
        return
    repair_torn_tail(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        while view:  # a write may take fewer bytes than asked; one that raises leaves a torn tail
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
