"""Convert plain sequential-recommendation files into RecBole atomic files.

Formats (``../shared/datasets/README.md``):
  * ``sequence``: one line per user, ``user item item ...`` in chronological order (Beauty.txt);
  * ``pairs``: one line per interaction, ``user item``, chronological per user (Video.txt);
  * ``csv``: a delimited file with a header and a time column (``--user_col``, ``--item_col``,
    ``--time_col``, ``--sep``); times are numbers (e.g. Unix seconds) or ISO 8601 dates.

``sequence`` and ``pairs`` carry no timestamps, so the converter writes each interaction's index
in its user's sequence as ``timestamp:float``; RecBole's time ordering then reproduces the
file's order. ``csv`` keeps the real times (ISO dates become Unix seconds, UTC if no zone).

    python dataset/convert.py --input=../shared/datasets/Beauty.txt --format=sequence --name=beauty
    python dataset/convert.py --input=ratings.csv --format=csv --user_col=userId --item_col=movieId \
        --time_col=timestamp --name=my-data
"""
import argparse
import csv
import math
import os
import re
import signal
import sys
import warnings
from datetime import datetime, timezone
from typing import Iterator, List, Optional, Tuple

HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"
_LONE_CR = re.compile(rb"(?<=\r)(?!\n)")  # splits after a carriage return that ends a line alone


def _text_lines(path: str) -> Iterator[Tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 file, its line ends kept (``\\n``, ``\\r\\n`` or a lone
    ``\\r``, as text mode reads them). Each line is decoded on its own so that a line in another
    encoding is reported with its number (text mode fails somewhere in its read buffer)."""
    number = 0
    with open(path, "rb") as f:
        for chunk in f:
            if number == 0 and chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]  # a byte-order mark is no text (spreadsheets' "CSV UTF-8")
            for raw in _LONE_CR.split(chunk):
                if not raw:  # a lone carriage return at the end of the file leaves an empty piece
                    continue
                number += 1
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ValueError(f"{path} line {number}: not UTF-8 (byte {raw[e.start]:#04x}); "
                                     f"convert the file to UTF-8 first") from None


#: what pandas, reading a RecBole atomic file, takes for a missing value (its default ``na_values``):
#: RecBole refuses a user or item token among them
MISSING_VALUE_TOKENS = frozenset(["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                                  "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"])


def _check_token(kind: str, token: str, where: str) -> None:
    """Refuse a user or item ``token`` that RecBole cannot load (it refused the converted file,
    naming that file's line, not the input's)."""
    if '"' in token:
        raise ValueError(f"{where}: {kind} {token!r} holds a quote, which RecBole's reader refuses")
    if token in MISSING_VALUE_TOKENS:
        raise ValueError(f"{where}: {kind} {token!r} is read by RecBole as a missing value; rename it")


def _split_tokens(line: str, where: str) -> list:
    """The space- or tab-separated tokens of ``line``: white space of other kinds (a no-break
    space, U+2028) stays inside a token and is refused (``str.split`` split at it: one item became
    two, a user's line continued another's)."""
    parts = [part for part in re.split(r"[ \t\r\n]+", line) if part]
    for part in parts:
        if any(ch.isspace() for ch in part):
            raise ValueError(f"{where}: {part!r} holds white space other than spaces and tabs; replace it")
        _check_token("token", part, where)
    return parts


def _sequence_rows(path: str) -> Iterator[Tuple[str, str, int]]:
    first_line = {}
    for number, line in _text_lines(path):
        parts = _split_tokens(line, f"{path} line {number}")
        if not parts:
            continue
        if len(parts) < 2:
            raise ValueError(f"{path} line {number}: expected 'user item [item ...]'")
        if parts[0] in first_line:  # its positions would restart at 0, interleaving the two lines
            raise ValueError(f"{path} line {number}: user {parts[0]!r} already has its line "
                             f"(line {first_line[parts[0]]}); a user's whole sequence is one line")
        first_line[parts[0]] = number
        for position, item in enumerate(parts[1:]):
            yield parts[0], item, position


def _pair_rows(path: str) -> Iterator[Tuple[str, str, int]]:
    counts = {}
    for number, line in _text_lines(path):
        parts = _split_tokens(line, f"{path} line {number}")
        if not parts:
            continue
        if len(parts) != 2:
            raise ValueError(f"{path} line {number}: expected 'user item'")
        user, item = parts
        position = counts.get(user, 0)
        counts[user] = position + 1
        yield user, item, position


def _parse_time(text: str, where: str) -> float:
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or "_" in text:
            raise ValueError(f"{where}: time {text!r} is not a finite number")
        return value
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where}: time {text!r} is neither a number nor an ISO 8601 date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _holds_records(parts, sep: str, n_fields: int) -> bool:
    """Whether a field of a record read over several lines holds, past its first line, a line
    with as many separators as a record has (a quoted field may hold line breaks; one that
    holds whole records came from an unbalanced quote)."""
    return any(line.count(sep) >= n_fields - 1 for part in parts for line in re.split(r"\r\n|\r|\n", part)[1:])


#: the longest field the csv format reads (the csv module's default, 131,072 characters, refused
#: a 156 KB review text); the largest a C long holds on every platform
FIELD_SIZE_LIMIT = 2 ** 31 - 1

#: ``--quoting``: how a ``"`` is read in the csv format
QUOTING = {"csv": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}


def _csv_rows(path: str, user_col: str, item_col: str, time_col: str, sep: str, quoting: str = "csv",
              notes: Optional[list] = None) -> Iterator[Tuple[str, str, float]]:
    """(user, item, time) rows in file order; the caller sorts them by time. Quoted fields are
    read strictly: a quote never closed (it ran to the end of the file, merging every line after
    it into one field) is an error; a quoted field holding lines that read as records (an
    unbalanced quote merges the lines up to the next one, or a long text holds separators:
    :func:`_holds_records`) adds a line to ``notes``. With ``quoting`` ``none`` a quote is text."""
    lines = _text_lines(path)
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_SIZE_LIMIT))  # a long review is a field too
    reader = csv.reader((line for _, line in lines), delimiter=sep, quoting=QUOTING[quoting],
                        strict=quoting == "csv")
    last = 0  # the last line of the record read before
    try:
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file (expected a header line)")
        header = [h.strip() for h in header]
        missing = [c for c in (user_col, item_col, time_col) if c not in header]
        if missing:
            raise ValueError(f"{path}: no column {', '.join(repr(c) for c in missing)} in header {header}")
        twice = [c for c in (user_col, item_col, time_col) if header.count(c) > 1]
        if twice:  # it read the first silently
            raise ValueError(f"{path}: the header names column {twice[0]!r} twice; rename one")
        index = [header.index(c) for c in (user_col, item_col, time_col)]
        last = reader.line_num
        for parts in reader:
            first, number, last = last + 1, reader.line_num, reader.line_num  # the record's lines
            if not parts or all(not p.strip() for p in parts):
                continue
            if number > first and notes is not None and _holds_records(parts, sep, len(header)):
                notes.append(f"{path} line {first}: a quoted field runs over lines {first} to {number} and holds "
                             "lines that read as records: if its opening quote is unbalanced, they were merged into "
                             "it (give --quoting=none if the file's quotes are text)")
            where = _record_lines(path, first, number)
            if len(parts) != len(header):
                raise ValueError(f"{where}: {len(parts)} fields, header has {len(header)}")
            user, item, moment = (parts[i].strip() for i in index)
            if not user or not item:
                raise ValueError(f"{where}: empty user or item")
            if any(ch in value for value in (user, item) for ch in "\t\n\r"):
                raise ValueError(f"{where}: user or item contains a tab or a line break")
            _check_token("user", user, where)
            _check_token("item", item, where)
            yield user, item, _parse_time(moment, where)
    except csv.Error as e:
        if "unexpected end of data" in str(e):
            raise ValueError(f"{path} line {last + 1}: a quote opened there is never closed (every line after it "
                             "would be one field); give --quoting=none if the file's quotes are text, or mend the "
                             "quote") from None
        raise ValueError(f"{_record_lines(path, last + 1, reader.line_num)}: {e}") from None


def _record_lines(path: str, first: int, last: int) -> str:
    """``<path> line 2``, or ``<path> lines 2 to 4`` for a record read over several lines."""
    return f"{path} line {first}" if last <= first else f"{path} lines {first} to {last}"


def _csv_sorted(path: str, user_col: str, item_col: str, time_col: str, sep: str, quoting: str = "csv",
                notes: Optional[list] = None) -> List[Tuple[str, str, float]]:
    """Rows ordered by time within each user; ties keep the file's order (stable sort). The
    whole file is read first, so ``notes`` is complete before a row is written."""
    rows = list(_csv_rows(path, user_col, item_col, time_col, sep, quoting, notes))
    rows.sort(key=lambda r: r[2])
    return rows


READERS = {"sequence": _sequence_rows, "pairs": _pair_rows, "csv": _csv_sorted}


def _format_time(value) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def convert(input_path: str, fmt: str, name: str, data_path: str = "dataset", user_col: Optional[str] = None,
            item_col: Optional[str] = None, time_col: Optional[str] = None, sep: str = ",",
            overwrite: bool = False, quoting: str = "csv", notes: Optional[list] = None) -> str:
    """Write ``<data_path>/<name>/<name>.inter`` from ``input_path``; returns its path.
    The file is written to a temporary name first and renamed, so a failure leaves nothing.
    ``user_col`` / ``item_col`` / ``time_col`` / ``sep`` / ``quoting`` are for the ``csv`` format
    only; ``notes`` (a list) receives what a reader warns of; without it, each is a
    ``UserWarning``."""
    if fmt not in READERS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(READERS)}")
    collected = notes if notes is not None else []
    if not name or name in (".", "..") or os.sep in name:
        raise ValueError(f"--name must be a folder name (the dataset's name), got {name!r}")
    if fmt == "csv":
        if not (user_col and item_col and time_col):
            raise ValueError("format csv needs --user_col, --item_col and --time_col")
        if len({user_col, item_col, time_col}) < 3:  # --user_col=u --item_col=u gave user 1 item 1
            raise ValueError("--user_col, --item_col and --time_col must name three different columns")
        if len(sep) != 1:
            raise ValueError(f"--sep must be one character, got {sep!r}")
        if quoting not in QUOTING:
            raise ValueError(f"--quoting must be one of {sorted(QUOTING)}, got {quoting!r}")
        rows = _csv_sorted(input_path, user_col, item_col, time_col, sep, quoting, collected)
        if notes is None:  # before anything is written; attributed to the caller's line, so each call warns
            for note in collected:
                warnings.warn(note, UserWarning, stacklevel=2)
    else:
        rows = READERS[fmt](input_path)
    folder = os.path.join(data_path, name)
    target = os.path.join(folder, f"{name}.inter")
    if os.path.exists(target) and not overwrite:
        raise ValueError(f"{target} already exists: choose another --name, or give --overwrite to replace it "
                         "(models and request files made from it then no longer match it)")
    created = _missing_folders(data_path)
    os.makedirs(data_path, exist_ok=True)
    tmp = os.path.join(data_path, f".{name}.inter.tmp")
    done = False
    try:
        written = 0
        unrequestable = set()
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(HEADER)
            for user, item, moment in rows:
                out.write(f"{user}\t{item}\t{_format_time(moment)}\n")
                written += 1
                if user.startswith("#") or "," in user or user != user.strip():
                    unrequestable.add(user)
        if not written:
            raise ValueError(f"{input_path}: no interactions to convert")
        if unrequestable:
            named = ", ".join(repr(u) for u in sorted(unrequestable)[:5]) + (", ..." if len(unrequestable) > 5 else "")
            note = (f"{len(unrequestable)} user token{'s' if len(unrequestable) > 1 else ''} ({named}) cannot be "
                    "named in a request file (a token starting with # is a comment line, one holding a comma is "
                    "split at it): a run saving a model folder refuses the dataset, a research run whose rows save "
                    "model folders warns; rename them to forget them later")
            collected.append(note)
            if notes is None:
                warnings.warn(note, UserWarning, stacklevel=2)
        os.makedirs(folder, exist_ok=True)
        os.replace(tmp, target)
        done = True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if not done:
            for made in created:  # innermost first; a folder something else wrote into stays
                try:
                    os.rmdir(made)
                except OSError:
                    break
    return target


def _missing_folders(path: str) -> list:
    """The folders ``os.makedirs(path)`` would create, innermost first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--format", required=True, choices=sorted(READERS))
    parser.add_argument("--name", required=True)
    parser.add_argument("--data_path", default="dataset")
    parser.add_argument("--user_col", help="csv: the user column")
    parser.add_argument("--item_col", help="csv: the item column")
    parser.add_argument("--time_col", help="csv: the time column (number or ISO 8601 date)")
    parser.add_argument("--sep", default=",", help="csv: the delimiter (default ',')")
    parser.add_argument("--quoting", default="csv", choices=sorted(QUOTING),
                        help="csv: 'csv' reads quoted fields (default); 'none' reads a quote as text")
    parser.add_argument("--overwrite", action="store_true", help="replace the dataset's .inter file if it exists")
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a stop cleans up as Ctrl-C does
    notes: list = []
    try:
        target = convert(args.input, args.format, args.name, args.data_path, args.user_col, args.item_col,
                         args.time_col, args.sep, args.overwrite, args.quoting, notes)
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        print(target)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
