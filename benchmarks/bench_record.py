"""What a benchmark's JSON records beside its numbers, and how it is written (the scripts in
``benchmarks/`` import it as a sibling module: they run as ``python benchmarks/<script>.py``)."""
import argparse
import json
import os
import sys

from recbole_unlearn.config.configurator import literal_values
from recbole_unlearn.utils.atomic import write_json
from recbole_unlearn.utils.results import code_version, machine


def fitted_model_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the arguments of a benchmark that fits one sharded model: ``--model``,
    ``--dataset``, ``--method`` and repeated ``--set key=value`` settings (:func:`settings_of`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--method", default="sru")
    parser.add_argument("--set", action="append", default=[], help="key=value, a config setting; repeat")
    return parser


def settings_of(args: argparse.Namespace) -> dict:
    """The ``--set`` settings, read as the command line reads values."""
    return literal_values(dict(item.split("=", 1) for item in args.set))


def provenance() -> dict:
    """``command`` (as run), ``commit`` (the code measured, 7 hex digits: take it when the
    benchmark starts, before any later commit) and ``machine``."""
    return {"command": "python " + " ".join(sys.argv), "commit": (code_version()["commit"] or "unknown")[:7],
            "machine": machine()}


def write_record(path: str, document: dict) -> None:
    """Write ``document`` to ``path`` (its folder made where missing) and print it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json(path, document)
    print(json.dumps(document, indent=2))
