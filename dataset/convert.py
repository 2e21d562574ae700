"""Convert plain sequential-recommendation files into RecBole atomic files.

Formats (``../shared/datasets/README.md``):
  * ``sequence``: one line per user, ``user item item ...`` in chronological order (Beauty.txt);
  * ``pairs``: one line per interaction, ``user item``, chronological per user (Video.txt).

Neither carries timestamps, so the converter writes each interaction's index in its user's
sequence as ``timestamp:float``; RecBole's time ordering then reproduces the file's order.

    python dataset/convert.py --input=../shared/datasets/Beauty.txt --format=sequence --name=beauty
"""
import argparse
import os
import sys
from typing import Iterator, Tuple

HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def _sequence_rows(path: str) -> Iterator[Tuple[str, str, int]]:
    with open(path, "r", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise ValueError(f"{path} line {number}: expected 'user item [item ...]'")
            for position, item in enumerate(parts[1:]):
                yield parts[0], item, position


def _pair_rows(path: str) -> Iterator[Tuple[str, str, int]]:
    counts = {}
    with open(path, "r", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ValueError(f"{path} line {number}: expected 'user item'")
            user, item = parts
            position = counts.get(user, 0)
            counts[user] = position + 1
            yield user, item, position


READERS = {"sequence": _sequence_rows, "pairs": _pair_rows}


def convert(input_path: str, fmt: str, name: str, data_path: str = "dataset") -> str:
    """Write ``<data_path>/<name>/<name>.inter`` from ``input_path``; returns its path.
    The file is written to a temporary name first and renamed, so a failure leaves nothing."""
    if fmt not in READERS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(READERS)}")
    folder = os.path.join(data_path, name)
    target = os.path.join(folder, f"{name}.inter")
    os.makedirs(data_path, exist_ok=True)
    tmp = os.path.join(data_path, f".{name}.inter.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(HEADER)
            for user, item, position in READERS[fmt](input_path):
                out.write(f"{user}\t{item}\t{position}\n")
        os.makedirs(folder, exist_ok=True)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--format", required=True, choices=sorted(READERS))
    parser.add_argument("--name", required=True)
    parser.add_argument("--data_path", default="dataset")
    args = parser.parse_args(argv)
    try:
        print(convert(args.input, args.format, args.name, args.data_path))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
