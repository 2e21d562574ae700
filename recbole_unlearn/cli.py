"""The command line (``run_recbole_unlearn.py``, ``recbole-unlearn``, ``python -m recbole_unlearn``),
in RecBole's style: ``--key=value`` for everything. It dispatches to one of four jobs:

* run (default): ``quick_start.run_recbole_unlearn``;
* forget (``--model_dir=... --forget=<file or folder>``, without ``--model``, ``--dataset`` or
  ``--config_files``, which make it a run saving to a new ``model_dir``): ``quick_start.run_forget_requests``;
* verify (``--model_dir=... --verify=True``): ``quick_start.run_verify``;
* benchmark (``--benchmark=<grid.yaml>``): ``benchmark.runner.run_grid``.

``--model``, ``--dataset``, ``--config_files="a.yaml b.yaml"`` and ``--forget=<file>`` as in
RecBole; ``--benchmark=<grid.yaml>`` runs a leaderboard grid (``recbole_unlearn/benchmark``),
``--cells=<model>-<dataset>,...`` only some of its cells;
every other ``--key=value`` overrides a config key (values are parsed like RecBole's command line, ``--epochs=5``, ``--unlearn_method="['retrain']"``, but only ever as literals,
never evaluated as code: see ``config.configurator.literal_values``).
"""
import os
import signal
import sys
import threading
from typing import Callable, List, Optional, Tuple

from recbole_unlearn.utils.errors import UnlearnError, WentLiveError, escaped_controls, one_line
from recbole_unlearn.utils.library_warnings import ignore_library_warnings


USAGE = """usage:
  run_recbole_unlearn.py [--model=SASRec] [--dataset=ml-100k] [--config_files="a.yaml b.yaml"] [--<key>=<value> ...]
      train the original model, Retrain and every unlearn_method, forget the sampled set (or
      --forget=<request file>), write results/<model>-<dataset>-<time>/results.json
  run_recbole_unlearn.py --model_dir=<folder> --forget=<request file or folder to watch> [--<runtime key>=...]
      answer deletion requests with the model saved in <folder>
  run_recbole_unlearn.py --model_dir=<folder> --verify=True
      re-check a saved model folder
  run_recbole_unlearn.py --benchmark=<grid.yaml> [--cells=<model>-<dataset>,...]
      run (or resume) a leaderboard grid
Every key, its valid values and default: docs/config-keys.md; the whole guide: README.md.
Exit status: 0 done, 1 a disk or file-system error, 2 bad input (nothing written; a setting found
bad only while training, such as a diverging learning rate, leaves that training's log), 3 a
failure after a forget went live, 130 interrupted."""


def parse_args(argv: List[str]) -> Tuple[Optional[str], Optional[str], Optional[List[str]], dict]:
    """Split ``argv`` into model, dataset, config files and a config dict."""
    from recbole_unlearn.config.configurator import literal_values

    raw = {}
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg:
            raise UnlearnError(f"unrecognised argument {arg!r}: use --key=value")
        key, value = arg[2:].split("=", 1)
        if not key:
            raise UnlearnError(f"unrecognised argument {arg!r}: use --key=value")
        if key in raw and raw[key] != value:
            raise UnlearnError(f"argument --{key} given twice with different values")
        raw[key] = value
    model = raw.pop("model", None)
    dataset = raw.pop("dataset", None)
    files = raw.pop("config_files", None)
    config_files = files.split() if files else None
    config_dict = literal_values(dict(raw))
    if "verify" in raw and config_dict["verify"] is not True:
        raise UnlearnError(f"--verify takes True (check the model folder), got {raw['verify']!r}: to run, leave it out")
    return model, dataset, config_files, config_dict


def raw_cells(value: Optional[str]) -> Optional[List[str]]:
    """``--cells=GRU4Rec-video,BERT4Rec-video`` as a list of cell names (``None`` if not given)."""
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def main(argv: Optional[List[str]] = None, restore_signals: bool = True) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status.
    ``restore_signals``: give SIGTERM and SIGINT their handlers back at the end (for a caller that
    goes on); without it both are ignored from then on (:func:`command` exits with the status, so a
    stop after the job's last line changes nothing)."""
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("--help", "-h") or arg.startswith("--help=") for arg in argv):
        try:
            print(USAGE, flush=True)
        except OSError as e:  # into a closed pipe (`--help | head -2`): the one line, as any command's output
            return _report(e)
        return 0
    # RecBole 1.2.1 / ray 2.6.3 emit these on every run; they would drown the one error line.
    ignore_library_warnings()
    # only a main in the main thread handles stops (Python runs handlers there), so only it marks
    # its job over: one in a helper thread marked the flag and the main thread's stops went unheard
    owner = _main_thread()
    if owner:
        _JOB["over"] = False
    # read before anything is installed, and installed inside the ``try``: a stop arriving the
    # instant the handler is in raised KeyboardInterrupt outside it (a traceback, exit -2)
    previous_sigterm = signal.getsignal(signal.SIGTERM) if owner else None
    previous_sigint = signal.getsignal(signal.SIGINT) if owner else None
    try:
        if owner:
            if previous_sigterm is not signal.SIG_IGN:  # a command started with it ignored keeps ignoring it
                signal.signal(signal.SIGTERM, _interrupt)
            if previous_sigint is signal.default_int_handler:  # Ctrl-C as SIGTERM (a caller's own handler is kept)
                signal.signal(signal.SIGINT, _interrupt)
        _import_the_package()
        model, dataset, config_files, config_dict = parse_args(argv)
        # read as no --forget, an empty one was a training run, refused for its model_dir holding a
        # model: checked first, as the config checks it (r12badinput probe)
        from recbole_unlearn.config.keys import check_values

        check_values(config_dict, [key for key in ("forget", "model_dir") if key in config_dict])
        if "cells" in config_dict and "benchmark" not in config_dict:  # (the API's message named config_dict)
            raise UnlearnError("--cells names the cells of a grid: give it with --benchmark=<grid file>")
        if "benchmark" in config_dict:
            cells = raw_cells(config_dict.pop("cells", None))
            if model or dataset or config_files or len(config_dict) > 1:
                raise UnlearnError("--benchmark takes every setting from the grid file: drop the other "
                                   "arguments (only --cells=<model>-<dataset>,... may go with it)")
            from recbole_unlearn.benchmark.runner import run_grid

            paths = run_grid(str(config_dict["benchmark"]), cells)
            print("\n".join(f"leaderboard {kind}: {path}" for kind, path in paths.items()))
        elif config_dict.get("verify"):
            if not config_dict.get("model_dir"):
                raise UnlearnError("--verify needs --model_dir=<folder>")
            if model or dataset or config_files:
                raise UnlearnError("--verify checks a saved model with its own settings: drop --model, --dataset and "
                                   "--config_files (they were ignored)")
            if config_dict.get("forget"):
                raise UnlearnError("--verify checks a model folder and forgets nothing: give --forget in a run "
                                   "of its own")
            from recbole_unlearn.quick_start.forget_requests import run_verify, unread_settings_note

            print(f"verified: {run_verify(str(config_dict['model_dir']), config_dict)}")
            unread = unread_settings_note(config_dict, "verify")
            if unread:
                print(f"note: {unread}")
        elif config_dict.get("model_dir") and config_dict.get("forget") and (model or dataset or config_files) and \
                os.path.exists(os.path.join(str(config_dict["model_dir"]), "CURRENT")):
            # a training run to a folder holding a model: refused (check_new_model_dir), but only
            # after what it set up first failed (--model alone: "dataset 'ml-100k' not found")
            given = ", ".join(name for name, value in (("--model", model), ("--dataset", dataset),
                                                        ("--config_files", config_files)) if value)
            raise UnlearnError(f"model_dir {config_dict['model_dir']} already holds a model: to answer --forget with "
                               f"it, drop {given} (it answers with its own settings); to train a new model, give "
                               "another model_dir")
        elif config_dict.get("model_dir") and config_dict.get("forget") and not (model or dataset or config_files):
            # a saved model answers requests with its own settings; with --model, --dataset or
            # --config_files this is a run that forgets the file and saves to a new model_dir
            from recbole_unlearn.quick_start.forget_requests import run_forget_requests

            run_forget_requests(str(config_dict["model_dir"]), str(config_dict["forget"]), config_dict)
        else:
            from recbole_unlearn.quick_start.quick_start import run_recbole_unlearn

            run_recbole_unlearn(model, dataset, config_files, config_dict)
        if owner:  # the job is done: a stop from here on changes nothing
            _JOB["over"] = True
    except (WentLiveError, UnlearnError, OSError, KeyboardInterrupt) as e:
        if owner:  # first, before any call: a stop from here on is ignored (_interrupt)
            _JOB["over"] = True
        return _report(e)
    finally:
        if owner:
            _JOB["over"] = True
        if owner and not restore_signals:  # the command exits now: a stop changes nothing
            if previous_sigterm is not signal.SIG_IGN:
                signal.signal(signal.SIGTERM, _ignore_stop)
            if previous_sigint is not signal.SIG_IGN:
                signal.signal(signal.SIGINT, _ignore_stop)
        elif owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous_sigterm is None else previous_sigterm)
            if previous_sigint is not None:
                signal.signal(signal.SIGINT, previous_sigint)
    return 0


def _report(error: BaseException) -> int:
    """Write the one ``error:`` line of a job ``error`` ended; returns its exit status."""
    status, line = _ending(error)
    print(line, file=sys.stderr)
    return status


def _ending(error: BaseException) -> Tuple[int, str]:
    """The exit status and the one ``error:`` line of a job ``error`` ended."""
    if isinstance(error, WentLiveError):  # a forget went live, then the run failed: the folder changed
        return 3, f"error: {escaped_controls(error)}"
    if isinstance(error, UnlearnError):  # bad input: nothing written
        return 2, f"error: {escaped_controls(error)}"
    if isinstance(error, OSError):  # the disk or the file system (full, read-only, no permission): no trace
        return 1, f"error: {one_line(error)}"
    # Ctrl-C, or SIGTERM (_interrupt); a request run says what it did and what waits
    return 130, f"error: interrupted{': ' + escaped_controls(error) if str(error) else ''}"


def _import_quick_start() -> None:
    import recbole_unlearn.quick_start  # noqa: F401  (and with it torch, RecBole, every method)


def _import_the_package(importer: Callable[[], None] = _import_quick_start) -> None:
    """Import torch, RecBole and the package (seconds; ``importer``) with SIGTERM and Ctrl-C held
    back: raised inside a C extension's import (NumPy's), a ``KeyboardInterrupt`` came out as
    NumPy's ``ImportError`` traceback. A stop that arrived meanwhile is then replayed through the
    handler it was held from: the command's, or a caller's own SIGINT handler (which main keeps;
    replayed through the command's, it ended the run and the caller's never ran)."""
    if not _main_thread():
        importer()
        return
    held = []
    handlers = {sig: signal.signal(sig, lambda signum, frame: held.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)
                if signal.getsignal(sig) is not signal.SIG_IGN}  # an ignored signal stays ignored
    try:
        importer()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if held:
        handler = handlers[held[0]]
        if callable(handler):
            handler(held[0], None)
        elif handler != signal.SIG_IGN:  # the default action: the command's own way to stop
            _interrupt(held[0], None)


# Whether main's job is over (its status decided, its line being written): a stop then changes
# nothing. Set by a dict store, which runs no signal handler in between (a call would).
_JOB = {"over": False}


def _interrupt(signum, frame) -> None:
    """SIGTERM (a service manager's stop) ends a run as Ctrl-C does, through ``KeyboardInterrupt``:
    the model folder is crash-safe either way, and the run gets to say what it had done. A second
    stop while the first is handled is ignored: it ended the command by the signal (exit -15) or
    in a ``KeyboardInterrupt`` traceback, without the line (SIGKILL still ends it at once). A stop
    once main's job is over (its status decided, its line being written) is ignored too."""
    if _JOB["over"]:
        return
    signal.signal(signal.SIGTERM, _ignore_stop)
    signal.signal(signal.SIGINT, _ignore_stop)
    raise KeyboardInterrupt


def _ignore_stop(signum, frame) -> None:
    """A stop after the first (or after main's job is over) does nothing. A Python handler, not
    ``SIG_IGN``: a stop already pending when the first one's handler set ``SIG_IGN`` (SIGTERM
    and SIGINT back to back) came out as "OSError: Signal 15 ignored due to race condition", a
    traceback before the ``error:`` line."""


def command() -> None:
    """The installed ``recbole-unlearn``, ``run_recbole_unlearn.py`` and ``python -m
    recbole_unlearn``: :func:`main`, then exit with its status. A second SIGTERM during the first's
    handling ended the command by the signal (status -15) after its line, when main had given
    SIGTERM its default handler back before the process exited."""
    status = main(restore_signals=False)
    _stops_ignored_through_exit()
    try:
        sys.stdout.flush()
    except OSError:  # into a closed pipe: what it still buffers would be a second report at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(status)


def _stops_ignored_through_exit() -> None:
    """Ignore SIGTERM and SIGINT by the system's ``SIG_IGN`` for the rest of the process (one
    started with either ignored keeps it so). Python gives its own handlers (``_ignore_stop``) the
    default action back as it finalizes, and tearing down torch and RecBole takes about 0.6 s: a
    stop then ended the command by the signal (exit -2 / -15 after its last line; a probe).
    ``SIG_IGN`` it leaves as it is. A stop that arrived as the handler changed is reported by
    Python as "Signal N ignored due to race condition" (see :func:`_ignore_stop`): that report,
    and only it, is dropped."""
    if not _main_thread():
        return
    report = sys.unraisablehook

    def without_the_race(unraisable) -> None:
        if not (isinstance(unraisable.exc_value, OSError) and "ignored due to race condition" in str(
                unraisable.exc_value)):
            report(unraisable)

    sys.unraisablehook = without_the_race
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


if __name__ == "__main__":
    command()
