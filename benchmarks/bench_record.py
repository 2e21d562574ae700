"""What a benchmark's JSON records beside its numbers, how it is written, and how a benchmark
refuses bad input (the scripts in ``benchmarks/`` import it as a sibling module: they run as
``python benchmarks/<script>.py``)."""
import argparse
import json
import os
import shlex
import sys
import tempfile
from typing import Callable, Optional

from recbole_unlearn.config.configurator import literal_values
from recbole_unlearn.utils.atomic import write_json
from recbole_unlearn.utils.errors import UnlearnError
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
    """The ``--set`` settings, read as the command line reads values; ``unlearn_method`` is
    ``--method``'s (given in ``--set`` too, the record named both)."""
    return key_values(args.set, "--set")


def key_values(items, where: str) -> dict:
    """``["key=value", ...]`` read as the command line reads values (``where`` names them in an
    error)."""
    for item in items:
        if "=" not in item or not item.partition("=")[0]:
            raise UnlearnError(f"{where} {item!r}: give key=value")
    settings = literal_values(dict(item.split("=", 1) for item in items))
    if "unlearn_method" in settings:
        raise UnlearnError(f"{where} unlearn_method: give the method as --method")
    return settings


def sharded_method(name: str) -> str:
    """``name`` if it names a sharded unlearning method (SISA, SRU, RecEraser): the scripts
    fitting a sharded model ran any other name as a plain sharded model and recorded it under
    that name (``--method=nosuch``, ``--method=sruga``)."""
    from recbole_unlearn.unlearn import METHODS
    from recbole_unlearn.unlearn.sisa import SISA

    if name not in METHODS.names() or not issubclass(METHODS.get(name), SISA):
        sharded = sorted(n for n in METHODS.names() if issubclass(METHODS.get(n), SISA))
        raise UnlearnError(f"--method {name!r}: this benchmark fits a sharded model; choose one of {', '.join(sharded)}")
    return name


def provenance() -> dict:
    """``command`` (as run, quoted), ``commit`` (the code measured, 7 hex digits, with
    ``+modified`` where its code differed from it (``code_version``): take it when the benchmark starts, before
    any later commit) and ``machine``."""
    version = code_version()
    commit = (version["commit"] or "unknown")[:7] + ("+modified" if version["modified"] else "")
    return {"command": "python " + " ".join(shlex.quote(arg) for arg in sys.argv), "commit": commit,
            "machine": machine()}


def check_out(path: str) -> str:
    """``path`` (``--out``) if a record can be written there, checked before anything is measured
    (a folder, or one that cannot be written, failed after the whole measurement)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not path or path.endswith((os.sep, "/")) or os.path.isdir(path) or \
            (os.path.exists(folder) and not os.path.isdir(folder)):
        raise UnlearnError(f"--out {path!r}: not a file path")
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    try:  # a file made and removed where the record goes (or the nearest folder that exists)
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".bench-out-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise UnlearnError(f"--out {path}: cannot be written here ({error.strerror})") from None
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UnlearnError(f"--out {path}: cannot be written here")
    return path


def finished_row(cell_dir: str, label: str) -> str:
    """``label`` if the grid cell in ``cell_dir`` finished that row (its row file and model
    folder are there); else one line naming the rows it finished (an unknown row was a
    traceback)."""
    rows = os.path.join(cell_dir, "rows")
    if not os.path.isfile(os.path.join(rows, f"{label}.json")) or not os.path.isdir(os.path.join(cell_dir, "models",
                                                                                                  label)):
        done = sorted(name[:-len(".json")] for name in os.listdir(rows) if name.endswith(".json")) \
            if os.path.isdir(rows) else []
        raise UnlearnError(f"--row {label!r}: {cell_dir} holds no finished row of that name with a model folder "
                           f"(its rows: {', '.join(done) or 'none'})")
    return label


def write_record(path: str, document: dict) -> None:
    """Print ``document`` and write it to ``path`` (its folder made where missing): printed first,
    so that a write that fails still leaves the numbers on the screen."""
    print(json.dumps(document, indent=2), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json(path, document)


def run(main: Callable[[], Optional[int]]) -> None:
    """Run a benchmark's ``main``: bad input (an ``UnlearnError``) is one ``error:`` line and exit
    status 2, as for the command line (each was a traceback)."""
    try:
        status = main()
    except UnlearnError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(status or 0)
