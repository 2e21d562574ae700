"""Request files and request identity.

A request is one line ``user_token[,item_token]`` of a request file. Its id is derived from
what was sent, not from the file's name: ``<first 16 hex digits of the SHA-256 of the file's
bytes>:<line number>``. A file sent again (same bytes, any name) has the same ids, so its
requests are skipped as already final; a new file that reuses an old name (tomorrow's
``requests.csv``) has new ids, so its requests are applied. The ledger keeps the file name and
line next to each id for people.
"""
import hashlib
import os
from dataclasses import dataclass
from typing import AbstractSet, List, Optional, Tuple

import numpy as np

from recbole_unlearn.data.forget import RequestLineError, parse_request_line, parse_request_lines, read_request_file
from recbole_unlearn.utils.digests import file_sha256

ID_DIGITS = 16


def file_digest(path: str) -> str:
    """The request-id prefix of the file at ``path``: its bytes' SHA-256, shortened."""
    return short_digest(file_sha256(path))


def bytes_digest(data: bytes) -> str:
    """The request-id prefix of a request file's bytes (as :func:`file_digest`)."""
    return hashlib.sha256(data).hexdigest()[:ID_DIGITS]


def short_digest(sha256_hex: str) -> str:
    """The request-id prefix of a file whose SHA-256 hex digest is ``sha256_hex``."""
    return sha256_hex[:ID_DIGITS]


def request_id(digest: str, line: int) -> str:
    return f"{digest}:{line}"


@dataclass
class FileRequest:
    """One line of a request file.

    Attributes:
        id: ``<file digest>:<line>``.
        file: the file's name (for the ledger).
        line: its line number.
        rows: ``[n]`` int64 log rows it forgets, or ``None`` if the line is invalid.
        error: why it is invalid (``None`` if valid).
    """

    id: str
    file: str
    line: int
    rows: Optional[np.ndarray] = None
    error: Optional[str] = None


def file_requests(path: str, dataset, max_lines: int, max_line_bytes: int,
                  strict: bool, final: AbstractSet[str] = frozenset()) -> Tuple[str, List[FileRequest]]:
    """The digest of the file at ``path`` and every request line of it, resolved to log rows,
    both from one pass over its bytes (a file that changes meanwhile cannot give ids of one
    content to lines of another; a file past ``max_lines`` requests or with a line longer than
    ``max_line_bytes`` is refused without being held whole: ``read_request_file``).

    ``strict``: the first bad line raises its ``UnlearnError`` (a file given with ``--forget``
    is all or nothing); otherwise a bad line comes back with ``error`` set (a watched folder
    rejects it and goes on), in words that name the line, never its tokens (the ledger keeps it
    after the file is gone). A file that cannot be read at all raises either way.

    ``final``: request ids already final in the model folder (applied, or rejected): their lines
    come back unparsed (no rows, no error; the batcher skips them as final), so a file given
    before is skipped as promised even where a line of it was rejected, or where this code reads
    one of its lines otherwise (a tab-separated line with an empty edge field, which earlier
    code read as a user).
    """
    name = os.path.basename(path)
    sha256_hex, lines = read_request_file(path, max_lines, max_line_bytes)
    digest = short_digest(sha256_hex)
    if strict:
        todo = [(number, text) for number, text in lines if request_id(digest, number) not in final]
        # validates the whole file first (a file whose every line is final has none to check)
        parsed = parse_request_lines(todo, path, dataset) if todo or not lines else []
        rows = {r.line: r.rows for r in parsed}
        return digest, [FileRequest(request_id(digest, number), name, number, rows.get(number))
                        for number, _ in lines]
    out, seen = [], {}
    for number, text in lines:
        request = FileRequest(request_id(digest, number), name, number)
        if request.id in final:
            out.append(request)
            continue
        if text is None:
            request.error = f"request {name}:{number} is not UTF-8 text"
            out.append(request)
            continue
        try:
            user, item, rows = parse_request_line(text, dataset, f"request {name}:{number}")
            if (user, item) in seen:
                request.error = f"request {name}:{number}: repeats {name}:{seen[(user, item)]}"
            else:
                seen[(user, item)] = number
                request.rows = rows
        except RequestLineError as e:
            request.error = e.redacted
        out.append(request)
    return digest, out
