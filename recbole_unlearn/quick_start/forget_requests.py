"""Answer deletion requests with a saved model, in a new process:

    python run_recbole_unlearn.py --model_dir=<folder> --forget=<requests.csv>
    python run_recbole_unlearn.py --model_dir=<folder> --forget=<folder to watch> --watch_idle_s=600

A file is validated as a whole (one bad line: one error, nothing changes), then processed in
order; a folder is watched for new request files, whose bad lines are rejected one by one
(``recbole_unlearn/serving/stream.py``). Either way requests are coalesced per shard
(``max_batch``, ``max_wait_s``), every batch becomes one new model version with its audit
line, and every request's status and latency go to ``<model_dir>/requests.jsonl``
(``recbole_unlearn/serving``). At the end the model is evaluated and ``results.json`` written.
"""
import os
import warnings
from logging import getLogger
from typing import Iterable, List, Optional

from recbole.utils import get_local_time

from recbole_unlearn.config.configurator import check_config_dict
from recbole_unlearn.data.forget import ForgetSet
from recbole_unlearn.evaluator.suite import EvaluationSuite
from recbole_unlearn.serving import ModelStore, open_store, stream_request_file, verify_model, watch_request_folder
from recbole_unlearn.serving.batcher import REMOVED_BECAUSE
from recbole_unlearn.serving.apply import kept_by_filters_line
from recbole_unlearn.serving.stream import says_what_went_live
from recbole_unlearn.serving.ledger import LEDGER
from recbole_unlearn.serving.store import RUN_OWN_KEYS
from recbole_unlearn.unlearn.experiment import check_results_dir_writable, run_dir_for
from recbole_unlearn.utils.cpu_meter import CpuMeter, busy_rows_note
from recbole_unlearn.utils.errors import UnlearnError, escaped_controls
from recbole_unlearn.utils.library_warnings import ignore_library_warnings
from recbole_unlearn.utils.results import (cap_note, format_table, make_row, no_forget_samples_note, results_document,
                                          write_results)
from recbole_unlearn.utils.run_logger import (collecting_log_records, init_run_logger, library_warnings_kept_off,
                                              releasing_run_logger, to_run_log_file)


RUN_LOG = "run.log"  # a request run's log, in its run folder beside results.json


#: runtime settings a request run or ``--verify`` takes (a pipeline may repeat its training
#: command's settings) without reading them, by where they apply: each passed unsaid, recorded
#: in ``results.json`` as a run's settings are (r10paths probe)
_APPLY_ELSEWHERE = {
    # (the audit's keys are saved with a model, its held-out pairs drawn by them: a request run
    # takes them where they equal the saved ones, and runs no audit; r11audit probe)
    "training runs": ("include_retrain", "save_model", "preflight_users", "preflight_topk_agreement", "audit",
                      "audit_references", "audit_bootstrap", "audit_min_users", "audit_shuffles"),
    "watched folders": ("watch_poll_s", "watch_idle_s", "watch_settle_s"),
    "request runs": ("max_batch", "max_wait_s", "results_dir", "processed_request_files", "keep_previous_version",
                     "max_request_lines", "max_request_line_bytes"),
    # (a single model's runs took them unsaid: r12keys probe)
    "training and request runs of sharded models": ("num_workers", "shard_num_threads"),
    # (num_workers 1 trains the shards in this process: an address nothing answers on passed; r12fixes probe)
    "shard training on Ray (num_workers above 1)": ("ray_address", "ray_cpus_per_shard", "ray_gpus_per_shard",
                                                    "ray_connect_timeout_s"),
    "training and request runs": ("busy_cpu_share", "tensorboard", "show_progress", "eval_batch_size", "detect_anomaly",
                                  "loss_decimal_place"),
}
SHARDED_ONLY = "training and request runs of sharded models"
RAY_ONLY = "shard training on Ray (num_workers above 1)"


def unread_settings_note(given: Iterable[str], mode: str, sharded: bool = True, ray: bool = True,
                         saves_folders: bool = False, reads: Iterable[str] = ()) -> Optional[str]:
    """A ``note:`` line's text naming the settings of ``given`` (the user's) that ``mode``
    (``"file"``: a request file's run, ``"folder"``: a watched folder's, ``"verify"``,
    ``"training"``: a training run) does not read, and where they apply; ``None`` when it reads
    them all. ``sharded``: whether the run's model (a training run's: some method's) is sharded,
    else the shards' settings are named too; ``ray``: whether it trains its shards on Ray
    (``num_workers`` above 1), else Ray's are. ``reads``: the keys of those named here that the
    run reads all the same (a training run's ``results_dir``, its request file's limits, a saved
    folder's ``keep_previous_version``). ``saves_folders``: a training run saves model folders,
    which keep the runtime settings named for the runs answering requests with them (said)."""
    elsewhere = {"file": ("training runs", "watched folders"), "folder": ("training runs",),
                 "verify": tuple(_APPLY_ELSEWHERE), "training": ("watched folders", "request runs")}[mode]
    elsewhere += tuple(group for group, applies in ((SHARDED_ONLY, sharded), (RAY_ONLY, sharded and ray))
                       if not applies and group not in elsewhere)
    given, reads = set(given), set(reads)
    parts, named, kept = [], 0, False
    for where in elsewhere:
        keys = [key for key in _APPLY_ELSEWHERE[where] if key in given and key not in reads]
        if keys:
            parts.append(f"{', '.join(keys)} appl{'ies' if len(keys) == 1 else 'y'} to {where}")
            named += len(keys)
            # (a saved folder keeps every runtime key, ray_* too, but its runs' own: keep_previous_version; r12round3)
            kept = kept or (where != "training runs" and any(key not in RUN_OWN_KEYS for key in keys))
    if not parts:
        return None
    what = {"file": "a request file's run", "folder": "a watched folder's run", "verify": "--verify",
            "training": "a training run"}[mode]
    return (f"{'; '.join(parts)}: {what} does not read {'it' if named == 1 else 'them'}"
            + (f" (the model folders it saves keep {'it' if named == 1 else 'them'}, for the runs answering requests "
               "with them)" if mode == "training" and saves_folders and kept else ""))


@library_warnings_kept_off
@releasing_run_logger
def run_forget_requests(model_dir: str, requests: str, config_dict: Optional[dict] = None,
                        verbose: bool = True) -> dict:
    """Apply the requests of the file or folder ``requests`` to the model in ``model_dir``.

    Returns a results document like ``run_recbole_unlearn``'s, with one row (the model after
    the requests), the stream summary (counts, batches, versions, latency median / p95) under
    ``requests``, and ``results_path``. Metrics: utility on the test targets with every
    forgotten interaction removed from histories, and forget / SRU-inference Hit@k over
    everything forgotten so far.
    """
    check_config_dict(config_dict)
    _check_paths("run_forget_requests", model_dir=model_dir, requests=requests)
    _refuse_switches(config_dict, "run_forget_requests", model_dir=model_dir, forget=requests)
    overrides = {k: v for k, v in (config_dict or {}).items() if k not in ("model_dir", "forget")}
    store = open_store(model_dir, overrides)
    with collecting_log_records() as load_records:  # for the run's log, which begins after the load
        model = store.load(overrides)
    config = model.config
    run_name = f"forget-{config['model']}-{config['dataset']}-{get_local_time()}"
    check_results_dir_writable(config["results_dir"], run_name)  # before anything is forgotten (it failed after)
    meter = CpuMeter()
    run_dir: List[str] = []

    def start_the_run_folder() -> None:
        """The run's folder, made once its input is valid, with the run's log in it (``run.log``:
        a request file's run wrote none, a watcher's wrote ``log/`` into the working directory)."""
        run_dir.append(run_dir_for(config["results_dir"], run_name))
        init_run_logger(config, os.path.join(run_dir[0], RUN_LOG), console=verbose)
        to_run_log_file(load_records)  # the load's, logged before the run's log began

    if os.path.isdir(requests):  # the folder checked before the run folder is made
        summary, model = watch_request_folder(store, model, requests, when_valid=start_the_run_folder)
    else:  # validates the file before it writes anything, the run folder and its log included
        summary, model = stream_request_file(store, model, requests, when_valid=start_the_run_folder)
    # the requests are live: a failure or a stop from here on says so (it was a bare error line)
    with says_what_went_live(summary, os.path.join(model_dir, LEDGER)):
        return _report(config, store, model, summary, meter, requests, run_dir[0], verbose, given=overrides)


def _report(config, store: ModelStore, model, summary, meter: CpuMeter, requests: str, run_dir: str,
            verbose: bool, given: Iterable[str] = ()) -> dict:
    """Evaluate the model after a request run and write its ``results.json`` (see
    :func:`run_forget_requests`); ``given``: the user's settings (a note names those it does not
    read)."""
    # over the requests' forgets, where their latencies were measured (it held the whole run, idle
    # waits included: a watcher was named busy while its forgets ran on an idle machine); the run's
    # where none ran
    busy = summary.cpu_meter() or meter.result()
    dataset = model.dataset
    stream = summary.to_json()
    getLogger().info(f"requests done: {stream}")
    metrics = {}
    forgotten = ForgetSet(model.forgotten, source="all forgotten")
    # what the row's forget metrics measure: everything forgotten so far (README: results.json)
    facts = {"source": f"requests:{os.path.basename(os.path.normpath(requests))}",
             "forgotten_total": int(len(model.forgotten)), "interactions": int(len(model.forgotten)),
             "users": int(len(forgotten.users(dataset))), "forget_samples": 0}
    if len(model.forgotten):
        suite = EvaluationSuite(config, dataset, forgotten)
        metrics = suite.evaluate(model.recommender)
        facts["forget_samples"] = int(len(suite.forget_loader._dataset))
    row = make_row(config["unlearn_method"], metrics, summary.forget_seconds,
                   **{k: v for k, v in stream.items() if k != "forget_seconds"}, cpu_meter=busy)
    if summary.kept_by_count_filters:
        row["kept_by_count_filters"] = summary.kept_by_count_filters
    if summary.trainings:  # how each forget's retrained stages and aggregator trained (as a run's row)
        row["forget_training"] = {"steps": summary.trainings}
    if summary.approximate_steps:  # each forget's approximate step: why it stopped (a cap, in the note)
        row["approximate_steps"] = summary.approximate_steps
    document = results_document(config["model"], config["dataset"], config.settings(), facts, [row])
    model_dir = store.model_dir
    stream["not_removed"] = store.not_removed(config["keep_previous_version"])
    document["requests"] = stream
    results_path = os.path.join(run_dir, "results.json")
    write_results(results_path, document)
    if verbose:
        print(f"\nrequests: {stream}")
        print(format_table([row]))
        for line in _attention_lines(stream, model_dir):
            print(line)
        for name in stream["not_removed"]:
            print(f"warning: {escaped_controls(os.path.join(model_dir, name))} could not be removed: it holds a model "
                  "from before later forgets, trained on data they forgot; remove it by hand (--verify lists it)")
        if summary.kept_by_count_filters:
            print(f"warning: {kept_by_filters_line(summary.kept_by_count_filters)}")
        unmeasured = no_forget_samples_note(facts)
        if unmeasured:
            print(f"note: {unmeasured}")
        if config["keep_previous_version"] and summary.versions:  # this run made a version
            for name in store.older_versions():
                print(f"note: {name} is kept (keep_previous_version): a model from before this run's latest forget, "
                      "trained on the data it forgot; the next run answering requests without the key removes it")
        unread = unread_settings_note(given, "folder" if os.path.isdir(requests) else "file", model.TRAINS_SHARDS,
                                      config["num_workers"] > 1)
        if unread:
            print(f"note: {unread}")
        if config["processed_request_files"] == "delete" and not os.path.isdir(requests):
            print(f"note: processed_request_files: delete applies to watched folders; {escaped_controls(requests)} "
                  "is kept where it is "
                  "(it names the forgotten pairs in plain text: delete it once you no longer need it)")
        capped = cap_note([row], config["epochs"], config["agg_epochs"], config["slice_epochs"], saved_model=True,
                          validates=bool(config["eval_step"]),
                          submodels_validate=bool(config["validate_submodels"]))
        if capped:
            print(f"note: {capped}")
        busy_note = busy_rows_note([row], config["busy_cpu_share"])
        if busy_note:
            print(f"note: {busy_note}")
        print(f"results: {results_path}")
    return dict(document, run_dir=run_dir, results_path=results_path)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'} {'was' if n == 1 else 'were'}"


def _attention_lines(stream: dict, model_dir: str) -> List[str]:
    """Lines for the requests a person must look at, which the counts alone leave easy to miss:
    those recorded as forgotten while the model did not change, and those rejected."""
    ledger = os.path.join(model_dir, LEDGER)
    lines = []
    if stream["applied_without_change"]:
        lines.append(f"warning: {_plural(stream['applied_without_change'], 'request')} recorded as forgotten, "
                     "but the model did not change (applied_without_change): the data is no longer used, yet its "
                     f"influence may remain in the model; escalate (retrain, or an exact method). Ids: {ledger}")
    rose = stream.get("forget_hit_rose") or []
    if rose:
        lines.append(f"warning: in {len(rose)} batch{'es' if len(rose) > 1 else ''} ({', '.join(rose)}) the approximate "
                     "step left forget Hit@10 higher than before, on its own samples: those requests' data is recalled "
                     "more, not less (recorded applied, as the model changed; audit lines, approximate); escalate "
                     "(retrain, or an exact method)")
    rowless = stream.get("waiting_without_rows") or []
    if rowless:
        their = "its" if len(rowless) == 1 else "their"
        lines.append(f"warning: {_plural(len(rowless), 'request')} queued by earlier code and still wait"
                     f"{'s' if len(rowless) == 1 else ''}, {their} ledger lines holding no rows to apply them from: "
                     f"give {their} file again "
                     f"({', '.join(rowless[:3])}{', ...' if len(rowless) > 3 else ''}; --verify counts them among "
                     "requests_not_final)")
    for removed in stream.get("removed_versions") or []:
        lines.append(f"note: removed {escaped_controls(os.path.join(model_dir, removed['version']))}: "
                     f"{REMOVED_BECAUSE[removed['why']]}")
    whole = stream.get("rejected_files") or 0
    if whole:
        their = "its" if whole == 1 else "their"
        lines.append(f"note: {_plural(whole, 'request file')} rejected whole (none of {their} lines was applied: "
                     f"a file that cannot be read, holds no request, or is past max_request_lines or "
                     f"max_request_line_bytes); the reasons are in {ledger}")
    if stream["rejected"] > whole:
        lines.append(f"note: {_plural(stream['rejected'] - whole, 'request')} rejected; the reasons are in {ledger}")
    return lines


def _check_paths(call: str, **paths) -> None:
    """One error for an argument of ``call`` that is no path (``None`` or a number raised a bare
    ``TypeError`` from ``os.stat``)."""
    for name, value in paths.items():
        if not isinstance(value, (str, os.PathLike)):
            kind = "folder" if name == "model_dir" else "file or folder"
            raise UnlearnError(f"{call}: {name} must be a {kind} path (a string), got {type(value).__name__}")


def _refuse_switches(config_dict: Optional[dict], call: str, **taken) -> None:
    """One error for a command-line switch in ``config_dict`` that ``call`` does not take (the
    command refuses it; the call ignored it: ``run_verify(folder, {"forget": file})`` verified and
    forgot nothing, ``config_files`` naming no file passed). ``taken``: the switches the call
    has as arguments, allowed in ``config_dict`` with the same value (the command passes them)."""
    for key in ("model_dir", "forget", "verify", "config_files", "benchmark", "cells"):
        value = (config_dict or {}).get(key)
        if value in (None, False) or (key in taken and str(value) == str(taken[key])):
            continue
        raise UnlearnError(f"config_dict cannot set '{key}' for {call} (it was ignored; the command line refuses it "
                           "with this run too)" + (f": give it as the call's argument ({taken[key]!r} here)"
                                                   if key in taken else ""))


def run_verify(model_dir: str, config_dict: Optional[dict] = None) -> dict:
    """Re-check the model in ``model_dir`` (``--verify=True``); see ``serving.audit.verify_model``.
    It prints nothing: RecBole's and its libraries' warnings reading the dataset are kept off
    the console, as the command line does (they were its only output)."""
    check_config_dict(config_dict)
    _check_paths("run_verify", model_dir=model_dir)
    _refuse_switches(config_dict, "run_verify", model_dir=model_dir, verify=True)
    overrides = {k: v for k, v in (config_dict or {}).items() if k not in ("model_dir", "verify")}
    with warnings.catch_warnings():
        ignore_library_warnings()
        return verify_model(open_store(model_dir, overrides), overrides)
