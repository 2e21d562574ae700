"""``run_recbole_unlearn``: train the original model, forget, evaluate every model state."""
import os
from logging import getLogger
from typing import List, Optional

from recbole.utils import get_local_time, init_logger, init_seed, set_color

from recbole_unlearn.config import UnlearnConfig
from recbole_unlearn.data import build_forget_set, check_dataset_files, create_unlearn_dataset
from recbole_unlearn.evaluator import EvaluationSuite
from recbole_unlearn.trainer import train_model
from recbole_unlearn.unlearn import METHODS
from recbole_unlearn.utils.atomic import save_weights
from recbole_unlearn.utils.errors import UnlearnError
from recbole_unlearn.utils.results import (
    add_speedups,
    format_table,
    make_row,
    results_document,
    write_results,
)


def _method_order(config) -> List[str]:
    """Requested methods, validated, with Retrain first when it serves as the reference."""
    names = config.methods
    if not names:
        raise UnlearnError("config key 'unlearn_method' names no method")
    for name in names:
        METHODS.get(name)  # raises for an unknown name
    if config["model_dir"] and len([n for n in names if n != "retrain"]) > 1:
        raise UnlearnError("model_dir names one model folder: run one saving method per run "
                           f"(got {', '.join(names)})")
    if config["include_retrain"] and "retrain" not in names:
        names = ["retrain"] + names
    return list(dict.fromkeys(names))


def _new_run_dir(config) -> str:
    name = f"{config['model']}-{config['dataset']}-{get_local_time()}"
    path = os.path.join(config["results_dir"], name)
    suffix = 1
    while os.path.exists(path):
        path = os.path.join(config["results_dir"], f"{name}-{suffix}")
        suffix += 1
    os.makedirs(path)
    return path


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
    config = UnlearnConfig(model, dataset, config_file_list, config_dict)
    methods = _method_order(config)
    check_dataset_files(config)
    init_seed(config["seed"], config["reproducibility"])
    data = create_unlearn_dataset(config)
    forget_set = build_forget_set(config, data)
    for name in methods:
        METHODS.get(name).check(config.for_method(name), data)

    # ---- inputs are valid: from here on the run writes its folder and logs ------------
    run_dir = _new_run_dir(config)
    config["checkpoint_dir"] = run_dir
    init_logger(config)
    logger = getLogger()
    logger.info(config)
    logger.info(data)
    suite = EvaluationSuite(config, data, forget_set)
    forget_summary = {
        "source": forget_set.source,
        "interactions": int(len(forget_set.requested)),
        "users": int(len(forget_set.users(data))),
        "forget_samples": int(len(suite.forget_loader._dataset)),
    }
    logger.info(set_color("forget set", "green") + f": {forget_summary}")

    original = train_model(config, suite.raw, tag="original on D_raw")
    rows = [make_row("original", suite.evaluate(original.model), original.seconds,
                     epochs_run=original.epochs_run)]
    states = {"original": original.model}
    for name in methods:
        method = METHODS.get(name)(config.for_method(name), data, suite, original)
        fit_seconds = method.fit()
        result = method.forget(forget_set)
        extra = {"initial_train_seconds": round(fit_seconds, 3)} if fit_seconds else {}
        extra.update(result.info)
        extra["forgotten_interactions"] = int(len(result.forget_set))
        rows.append(make_row(name, suite.evaluate(result.model, result.forget_set), result.seconds, **extra))
        states[name] = result.model
        logger.info(set_color(f"{name} done", "green") + f" in {result.seconds:.1f}s")
    add_speedups(rows)

    document = results_document(config["model"], config["dataset"], config.settings(), forget_summary, rows)
    if config["save_model"]:
        for name, state in states.items():
            save_weights(os.path.join(run_dir, f"{name}.pth"), state.state_dict())
    results_path = os.path.join(run_dir, "results.json")
    write_results(results_path, document)
    if verbose:
        print(f"\n{config['model']} on {config['dataset']}; forget set: {forget_summary}")
        print(format_table(rows))
        print(f"results: {results_path}")
    return dict(document, run_dir=run_dir, results_path=results_path)
