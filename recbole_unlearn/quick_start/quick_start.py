"""``run_recbole_unlearn``: train the original model, forget, evaluate every model state."""
import os
from typing import List, Optional

from recbole.utils import get_local_time

from recbole_unlearn.config import UnlearnConfig
from recbole_unlearn.config.keys import unused_method_keys
from recbole_unlearn.data.forget import unrequestable_line
from recbole_unlearn.evaluator.audit import apply_reference_gate, apply_step_reference_gate, reference_not_run
from recbole_unlearn.quick_start.forget_requests import unread_settings_note
from recbole_unlearn.serving.apply import kept_by_filters_line
from recbole_unlearn.serving.audit import folder_after_stop
from recbole_unlearn.serving.store import ModelStore
from recbole_unlearn.unlearn.experiment import Experiment, check_request_steps_dealt, check_results_dir, run_dir_for
from recbole_unlearn.unlearn import METHODS
from recbole_unlearn.unlearn.base import MODEL_FOLDER_SUFFIX, check_new_model_dir
from recbole_unlearn.utils.atomic import save_weights
from recbole_unlearn.utils.cpu_meter import busy_rows_note
from recbole_unlearn.utils.errors import UnlearnError, WentLiveError, error_line
from recbole_unlearn.utils.results import (
    add_speedups,
    cap_note,
    format_table,
    forget_hit_rose_note,
    no_forget_samples_note,
    unchanged_rows_note,
    results_document,
    write_results,
)
from recbole_unlearn.utils.run_logger import library_warnings_kept_off, releasing_run_logger


def _method_order(config, nothing_to_forget: bool) -> List[str]:
    """Requested methods, validated, with Retrain first when it serves as the reference (with
    nothing to forget there is nothing to compare with, and no Retrain row)."""
    names = config.methods
    if not names:
        raise UnlearnError("config key 'unlearn_method' names no method")
    for name in names:
        METHODS.get(name)  # raises for an unknown name
    if config["model_dir"] and not any(METHODS.get(n).deploys_model for n in names):
        raise UnlearnError(f"model_dir is set, but {', '.join(names)} saves no model (Retrain keeps no model to "
                           "forget from): name a saving method, or leave model_dir out; to answer requests with a "
                           "saved model give --model_dir and --forget alone (API: run_forget_requests)")
    if config["model_dir"] and len([n for n in names if n != "retrain"]) > 1:
        raise UnlearnError("model_dir names one model folder: run one saving method per run "
                           f"(got {', '.join(names)})")
    if config["include_retrain"] and "retrain" not in names and not nothing_to_forget:
        names = ["retrain"] + names
    return list(dict.fromkeys(names))


def _check_keys_used(config, names: List[str]) -> None:
    """Refuse a fit, aggregate or forget setting the user gave that none of the run's methods
    ``names`` uses, and a setting of another RecBole model that the run's model does not read:
    each was recorded in ``results.json``'s settings as if the run had used it (a grid row
    setting an unused method setting was already refused)."""
    unread = config.other_models_settings()
    if unread:
        raise UnlearnError(f"{', '.join(unread)} {'is' if len(unread) == 1 else 'are'} not read by {config['model']} "
                           "(another RecBole model's setting; it would be recorded in results.json as if the run had "
                           f"used it): drop it, or set {config['model']}'s own (recbole/properties/model/"
                           f"{config['model']}.yaml)")
    used, why = set(), {}
    for name in names:
        method_config = config.for_method(name)
        used.update(METHODS.get(name).settings_used(method_config))
        why.update(METHODS.get(name).unread_settings(method_config))
    unused = unused_method_keys(config.external_config_dict, used)
    if unused:
        named = ", ".join(f"{key} ({why[key]})" if key in why else key for key in unused)
        raise UnlearnError(f"{named} {'is' if len(unused) == 1 else 'are'} not used by "
                           f"{', '.join(names)} (it would be recorded in results.json as if the run had used it): "
                           "drop it, or run a method that uses it")


def _check_requestable(dataset) -> None:
    """A model folder given to answer requests: refuse a dataset with tokens none can name."""
    problem = unrequestable_line(dataset)
    if problem:
        raise UnlearnError(problem)


@library_warnings_kept_off
@releasing_run_logger
def run_recbole_unlearn(
    model: Optional[str] = None,
    dataset: Optional[str] = None,
    config_file_list: Optional[List[str]] = None,
    config_dict: Optional[dict] = None,
    verbose: bool = True,
) -> dict:
    """Run one unlearning experiment and return the ``results.json`` document.

    Steps: load the dataset, build the forget set (sampled or from the ``forget`` request
    file), train the original model on D_raw, run Retrain and every ``unlearn_method``,
    evaluate each state on D_raw / D_rem utility, D_fgt forget Hit@k and SRU inference Hit@k.

    Every input is validated before anything is written; a problem raises ``UnlearnError``.
    The document's ``run_dir`` / ``results_path`` say where ``results.json`` was written.
    """
    for key in ("config_files", "benchmark", "verify"):  # command-line switches: a run would ignore them
        if isinstance(config_dict, dict) and config_dict.get(key) not in (None, False):
            raise UnlearnError(f"config_dict cannot set '{key}': " + {
                "config_files": "give the files as config_file_list",
                "benchmark": "run a grid with recbole_unlearn.benchmark.runner.run_grid",
                "verify": "check a model folder with recbole_unlearn.quick_start.forget_requests.run_verify"}[key])
    given = dict(config_dict) if isinstance(config_dict, dict) else {}
    if given.get("model_dir") and given.get("forget") and not (model or dataset or config_file_list or
                                                                given.get("model") or given.get("dataset")):
        # the command line's --model_dir=... --forget=... alone: a saved model answering requests
        raise UnlearnError("model_dir and forget without a model, dataset or config files answer requests with "
                           "the saved model: call recbole_unlearn.quick_start.run_forget_requests(model_dir, "
                           "forget); run_recbole_unlearn trains a new model (name its model or dataset)")
    # before what it sets up first, which failed with its own line ("dataset 'ml-100k' not found";
    # r11fixes probe), as the command line does; a value of another type is the config's to refuse
    if given.get("model_dir") and isinstance(given["model_dir"], (str, os.PathLike)):
        check_new_model_dir(given)
    try:
        config = UnlearnConfig(model, dataset, config_file_list, config_dict)
        if config["model_dir"]:  # (a config file's: "retrain saves no model" was the line)
            check_new_model_dir(config)
        experiment = Experiment(config)
        methods = _method_order(config, experiment.nothing_to_forget)
        _check_keys_used(config, methods)
        check_request_steps_dealt(config, methods)
        for name in methods:
            experiment.check_method(config.for_method(name))
        check_results_dir(config["results_dir"])
        if config["model_dir"]:
            _check_requestable(experiment.data)
        experiment.check_model([config.for_method(name) for name in methods])
    except UnlearnError:
        raise
    except Exception as e:  # RecBole refusing a setting while the run is set up (nothing is written yet)
        raise UnlearnError(f"the run cannot be set up with these settings: {error_line(e)}") from None

    # ---- inputs are valid: from here on the run writes its folder and logs ------------
    run_dir = run_dir_for(config["results_dir"], f"{config['model']}-{config['dataset']}-{get_local_time()}")
    live: List[str] = []  # model folders this run's forgets changed
    try:
        return _run(config, experiment, methods, run_dir, live, verbose)
    except WentLiveError as went:
        if not live:
            raise
        # its own line named no folder, nor the run's others (r12round2 probe)
        raise WentLiveError(f"this run's forget went live in {', '.join(live)} ({_left_in(live, config)}); then: "
                            f"{went}; {run_dir}/results.json was not written") from went
    except KeyboardInterrupt as stop:
        folders = _model_folders(config, run_dir)
        if not folders or str(stop):
            raise
        # a bare "interrupted" said nothing of a folder this run made live, nor of its waiting
        # requests (nor of a method's default folder in the run's: r12fixes probe)
        raise KeyboardInterrupt(_left_in(folders, config)
                                + ("" if os.path.isfile(os.path.join(run_dir, "results.json"))
                                   else f"; {run_dir}/results.json was not written")) from None
    except Exception as error:
        if not live:
            _remove_if_empty(run_dir)  # a setting found bad while training (a diverged loss): exit 2 writes nothing
            raise
        # a bare OSError line said nothing of the live versions (exit 1, "the folder as it was"); and
        # what went live (a request step of several: r12fixes probe)
        raise WentLiveError(f"this run's forget went live in {', '.join(live)} ({_left_in(live, config)}); then the "
                            f"run failed: {error_line(error)}; {run_dir}/results.json was not written") from error


def _left_in(folders: List[str], config) -> str:
    """What a stopped or failed run left in each of its model ``folders`` (:func:`folder_after_stop`)."""
    return "; ".join(folder_after_stop(folder, config["request_steps"]) for folder in folders)


def _model_folders(config, run_dir: str) -> List[str]:
    """The model folders a run may have written: its ``model_dir``, or its methods' default ones
    (``<run folder>/<method>_model``) that exist."""
    if config["model_dir"]:
        return [config["model_dir"]]
    try:
        return sorted(os.path.join(run_dir, name) for name in os.listdir(run_dir)
                      if name.endswith(MODEL_FOLDER_SUFFIX) and os.path.isdir(os.path.join(run_dir, name)))
    except OSError:
        return []


def _remove_if_empty(run_dir: str) -> None:
    """Remove the run's folder where the run failed before writing anything into it."""
    try:
        os.rmdir(run_dir)
    except OSError:  # it holds something (the run's log, a model folder): kept, for what it says
        pass


def _run(config, experiment, methods: List[str], run_dir: str, live: List[str], verbose: bool) -> dict:
    """The run of :func:`run_recbole_unlearn` once its inputs are valid; appends to ``live`` each
    model folder a method's forget changed."""
    experiment.open(run_dir, console=verbose)
    forget_summary = experiment.forget_summary()
    rows = [experiment.train_original()]
    audit = experiment.prepare_audit()
    if audit is not None:
        rows[0]["audit"] = audit
    states = {"original": experiment.original.model}
    for name in methods:
        method_config = config.for_method(name)
        row, states[name] = experiment.run_method(method_config, went_live=live.append)
        # what this row ran with beyond the document's data settings (its method file's, e.g. SRU's
        # kmeans, attention and CED, which the run's base config does not hold)
        row["settings"] = METHODS.get(method_config.method).settings_used(method_config)
        rows.append(row)
    add_speedups(rows)
    reference_failed = apply_reference_gate(rows) or apply_step_reference_gate(rows)
    unreferenced = reference_not_run(rows)

    document = results_document(config["model"], config["dataset"], config.settings(), forget_summary, rows)
    if experiment.audit_cost:
        document["audit"] = dict(experiment.audit_cost, **({"reference_failed": reference_failed}
                                                           if reference_failed else {}),
                                 **({"reference_not_run": unreferenced} if unreferenced else {}))
    if config["save_model"]:
        for name, state in states.items():
            save_weights(os.path.join(run_dir, f"{name}.pth"), state.state_dict())
    results_path = os.path.join(run_dir, "results.json")
    write_results(results_path, document)
    if verbose:
        print(f"\n{config['model']} on {config['dataset']}; forget set: {forget_summary}")
        print(format_table(rows))
        capped = cap_note(rows, config["epochs"], config["agg_epochs"], config["slice_epochs"],
                          experiment.audit_cost.get("references_epochs_run", ()),
                          experiment.audit_cost.get("references_hit_cap", ()), validates=bool(config["eval_step"]),
                          submodels_validate=bool(config["validate_submodels"]))
        if capped:
            print(f"note: {capped}")
        unchanged = unchanged_rows_note(rows)
        if unchanged:
            print(f"warning: {unchanged}")
        for line in forget_hit_rose_note(rows):
            print(f"warning: {line}")
        unmeasured = no_forget_samples_note(forget_summary)
        if unmeasured:
            print(f"note: {unmeasured}")
        if reference_failed:
            print(f"warning: audit: {reference_failed}; the other rows' verdicts are inconclusive (their numbers "
                  "and measured_verdict kept in results.json)")
        if unreferenced:
            print(f"note: audit: {unreferenced}; the verdicts are marked reference_checked: false in results.json")
        kept = {row["method"]: row["kept_by_count_filters"] for row in rows if row.get("kept_by_count_filters")}
        if len(set(kept.values())) == 1:  # one line when every row forgot the same rows
            print(f"warning: {kept_by_filters_line(next(iter(kept.values())))}")
        else:
            for method, n in kept.items():
                print(f"warning: {method}: {kept_by_filters_line(n)}")
        for row in rows:
            if row.get("unchanged_requests"):
                print(f"warning: {row['method']}: {row['unchanged_requests']} request"
                      f"{'s' if row['unchanged_requests'] > 1 else ''} of the file recorded as forgotten, but the "
                      "model did not change for them (applied_without_change: the step left it as it was, or had "
                      "nothing of them to act on): the data is no longer used, "
                      f"yet its influence may remain; escalate (retrain, or an exact method). Ids: "
                      f"{os.path.join(row['model_dir'], 'requests.jsonl')}")
        saves = any(row.get("model_dir") for row in rows)
        reads = ["results_dir"] + (["max_request_lines", "max_request_line_bytes"] if config["forget"] else []) \
            + (["keep_previous_version"] if saves and not experiment.nothing_to_forget else [])
        unread = unread_settings_note(config.external_config_dict, "training",
                                      any(METHODS.get(name).trains_shards for name in methods),
                                      config["num_workers"] > 1, saves_folders=saves, reads=reads)
        if unread:  # (the request runs' keys and, without shards, Ray's were taken unsaid; r12keys probe)
            print(f"note: {unread}")
        busy = busy_rows_note(rows, config["busy_cpu_share"])
        if busy:
            print(f"note: {busy}")
        if config["forget"] and config["save_model"] and not experiment.nothing_to_forget:
            print(f"note: {os.path.join(run_dir, 'original.pth')} is a model trained on the data this run forgot (a "
                  "snapshot no request updates): delete it once it is no longer needed, or run with "
                  "--save_model=False")
        if config["keep_previous_version"] and not experiment.nothing_to_forget:  # said as a request run says it
            for row in (row for row in rows if row.get("model_dir")):
                for name in ModelStore(row["model_dir"], config["lock_timeout_s"]).older_versions():
                    print(f"note: {os.path.join(row['model_dir'], name)} is kept (keep_previous_version): a model "
                          "from before this run's latest forget, trained on the data it forgot; the next run "
                          "answering requests without the key removes it")
        if not config["model_dir"] and any(row.get("model_dir") for row in rows):
            unrequestable = unrequestable_line(experiment.data)  # a given model_dir refused it before the run
            if unrequestable:
                print(f"warning: {unrequestable} (the model folders this run saved answer requests all the same)")
        if experiment.nothing_to_forget:
            for row in rows:
                if row.get("model_dir"):
                    print(f"note: nothing forgotten (forget_protocol none); {row['method']}'s model is saved in "
                          f"{row['model_dir']}: answer requests with --model_dir={row['model_dir']} --forget=<file or folder>")
        print(f"results: {results_path}")
    return dict(document, run_dir=run_dir, results_path=results_path)
