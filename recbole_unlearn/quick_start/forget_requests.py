"""Answer a request file with a saved sharded model, in a new process:

    python run_recbole_unlearn.py --model_dir=<folder> --forget=<requests.csv>

Loads the current version (weights only, checksums verified), validates the whole request file,
forgets every requested interaction in one batch (each affected shard retrains once), writes and
switches to the new version, appends the audit log and prints the new metrics.
"""
import os
from logging import getLogger
from typing import Optional

import numpy as np
from recbole.utils import get_local_time, init_logger

from recbole_unlearn.data.forget import ForgetSet, parse_request_file
from recbole_unlearn.evaluator.suite import EvaluationSuite
from recbole_unlearn.unlearn.model_folder import forget_and_save, load_model
from recbole_unlearn.utils.results import format_table, make_row, results_document, write_results


def run_forget_requests(model_dir: str, request_file: str, config_dict: Optional[dict] = None,
                        verbose: bool = True) -> dict:
    """Forget the requests of ``request_file`` from the model saved in ``model_dir``.

    Returns a results document like ``run_recbole_unlearn``'s, with one row (the model after
    this request), the audit entry under ``request``, and ``results_path``. Metrics: utility on
    the test targets with every forgotten interaction removed from histories, and forget /
    SRU-inference Hit@k over everything forgotten so far.
    """
    overrides = {k: v for k, v in (config_dict or {}).items() if k not in ("model_dir", "forget")}
    model = load_model(model_dir, overrides)
    config, dataset = model.config, model.dataset
    requests = parse_request_file(request_file, dataset)  # validates before anything changes
    rows = np.unique(np.concatenate([r.rows for r in requests]))
    source = f"requests:{os.path.basename(request_file)}"

    # ---- valid input: from here on we write -------------------------------------------
    init_logger(config)
    forget_set = model.expand(ForgetSet(rows, source=source))
    report, entry = forget_and_save(model, model_dir, forget_set, config["unlearn_method"],
                                    {"requests": len(requests)})
    getLogger().info(f"request applied: {entry}")
    suite = EvaluationSuite(config, dataset, ForgetSet(model.forgotten, source="all forgotten"))
    facts = {k: v for k, v in report.to_json().items() if k != "seconds"}
    row = make_row(config["unlearn_method"], suite.evaluate(model.recommender), report.seconds, **facts)
    summary = {"source": source, "requests": len(requests), "interactions": int(len(rows)),
               "newly_forgotten": report.interactions, "forgotten_total": int(len(model.forgotten))}
    document = results_document(config["model"], config["dataset"], config.settings(), summary, [row])
    document["request"] = entry
    run_dir = os.path.join(config["results_dir"], f"forget-{config['model']}-{config['dataset']}-{get_local_time()}")
    os.makedirs(run_dir, exist_ok=True)
    results_path = os.path.join(run_dir, "results.json")
    write_results(results_path, document)
    if verbose:
        print(f"\nrequest {entry['request_id']}: {summary}; shards retrained {report.shards}; "
              f"model version {entry['version']}")
        print(format_table([row]))
        print(f"results: {results_path}")
    return dict(document, results_path=results_path)
