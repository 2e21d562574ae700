"""Does RecEraser's kept partition carry the forgotten interactions into the audit?

A RecEraser forget retrains every affected shard and a fresh aggregator on the remaining data,
but keeps the user-to-shard assignment, which InBP / IBP / UBP computed from embeddings pretrained
on all training data, forgotten interactions included. On the converged leaderboard the RecEraser
rows' audits sit above 0.5 on average; this script measures whether the kept assignment is why.

For each row (``--row``, e.g. ``receraser-inbp``) of a finished leaderboard cell it audits two
models against the cell's saved reference models, with the cell's forget set F and twins H:

* ``kept``: the row's own model, reloaded from ``<output_dir>/<cell>/models/<row>`` (it has
  forgotten F with the partition kept); its audit must reproduce the row's, which checks that
  this script audits as the grid did;
* ``redrawn``: the same method fitted from scratch on the remaining data (D_raw minus F and H):
  its partition is pretrained and drawn on the remaining data, so nothing in it ever saw F.

If ``redrawn`` audits like ``kept``, the kept assignment is not what the audit sees. Also
reported: the adjusted Rand index between the two assignments (1: identical up to shard names),
the utility and forget metrics the leaderboard shows, and the refit's wall time.

    python benchmarks/receraser_partition_control.py --grid=benchmarks/grids/converged-gru4rec-bert4rec.yaml \\
        --cell=GRU4Rec-video --row=receraser-inbp --row=receraser-ibp --out=docs/benchmarks/x.json

Needs the cell's ``original.pth``, reference models and row model folders (the worktree that ran
the cell). It changes none of them; its log goes to ``<cell>/partition-control-log``.
"""
import argparse
import json
import os
import sys
import time
from typing import Dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402  (scikit-learn: a RecBole requirement)

from recbole_unlearn.benchmark.grid import load_grid  # noqa: E402
from recbole_unlearn.benchmark.runner import cell_config, select_cells  # noqa: E402
from recbole_unlearn.evaluator.metrics import full_ranking_metrics  # noqa: E402
from recbole_unlearn.serving.store import open_store  # noqa: E402
from recbole_unlearn.unlearn.experiment import AUDIT_REFERENCE_PREFIX, Experiment  # noqa: E402
from recbole_unlearn.unlearnable.sharded import ShardedUnlearnableModel  # noqa: E402
from recbole_unlearn.utils.errors import UnlearnError  # noqa: E402
from bench_record import check_out, finished_row, provenance, run  # noqa: E402

AUDIT_KEYS = ("auc", "auc_interval", "tpr@1%fpr", "tpr@5%fpr", "residual_memorisation", "verdict")


def measure(experiment: Experiment, recommender) -> Dict[str, object]:
    """The leaderboard's numbers for one model: D_rem NDCG@10 / Recall@10, forget Hit@10, audit."""
    suite, config = experiment.suite, experiment.config
    audit = experiment.audit.report(recommender)
    return {"utility_rem": full_ranking_metrics(recommender, suite.rem.test, config, ["NDCG", "Recall"], [10]),
            "forget": full_ranking_metrics(recommender, suite.forget_loader, config, ["Hit"], [10]),
            "audit": {k: audit.get(k) for k in AUDIT_KEYS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", required=True)
    parser.add_argument("--cell", required=True)
    parser.add_argument("--row", action="append", required=True)
    parser.add_argument("--output_dir", help="the grid's output folder (default: the grid's output_dir)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    check_out(args.out)
    grid = load_grid(args.grid)
    cell = select_cells(grid, [args.cell])[0]
    cell_dir = os.path.join(args.output_dir or grid.output_dir, cell.name)
    for label in args.row:
        finished_row(cell_dir, label)
    experiment = Experiment(cell_config(grid, cell))
    experiment.open(os.path.join(cell_dir, "partition-control-log"))
    with open(os.path.join(cell_dir, "rows", "original.json")) as f:
        original_row = json.load(f)["row"]
    experiment.load_original(os.path.join(cell_dir, "original.pth"), original_row)
    # references_trained also counts those reloaded with their training's cost, so look for the files
    missing = [index for index in range(experiment.config["audit_references"])
               if not os.path.isfile(os.path.join(cell_dir, f"{AUDIT_REFERENCE_PREFIX}{index}.pth"))]
    if missing:
        raise UnlearnError(f"{cell_dir}: the audit's reference models were missing; this script audits only "
                           "with the references the cell's rows were audited with")
    original_audit = experiment.prepare_audit(cell_dir)
    forgotten = experiment.forget_set.rows

    report = {
        **provenance(),
        "date": time.strftime("%Y-%m-%d %H:%M"), "grid": args.grid, "cell": cell.name,
        "original_audit": {k: original_audit.get(k) for k in AUDIT_KEYS},
        "original_audit_saved": {k: original_row["audit"].get(k) for k in AUDIT_KEYS},
        "forgotten_interactions": int(len(forgotten)), "rows": [],
    }
    for label in args.row:
        with open(os.path.join(cell_dir, "rows", f"{label}.json")) as f:
            row = json.load(f)["row"]
        kept = open_store(os.path.join(cell_dir, "models", label)).load()
        if not np.array_equal(np.sort(kept.forgotten), forgotten):
            raise UnlearnError(f"{label}: the saved model has not forgotten exactly the cell's forget set")
        record = {"row": label, "partitioner": kept.config["partitioner"],
                  "row_numbers": {"utility_rem": row["utility_rem"], "forget": row["forget"],
                                  "audit": {k: row["audit"].get(k) for k in AUDIT_KEYS}},
                  "kept": measure(experiment, kept.recommender)}
        print(json.dumps(record), flush=True)
        start = time.perf_counter()
        redrawn = ShardedUnlearnableModel.train(kept.config, experiment.data, forgotten=forgotten)
        record["redrawn"] = dict(measure(experiment, redrawn.recommender),
                                 fit_seconds=round(time.perf_counter() - start, 1),
                                 training=redrawn.fit_training)
        users = experiment.data.active_users()
        users = users[(kept.shard_map.user_shard[users] >= 0) & (redrawn.shard_map.user_shard[users] >= 0)]
        record["adjusted_rand_index"] = round(float(adjusted_rand_score(kept.shard_map.user_shard[users],
                                                                        redrawn.shard_map.user_shard[users])), 4)
        record["shard_users"] = {"kept": np.bincount(kept.shard_map.user_shard[users]).tolist(),
                                 "redrawn": np.bincount(redrawn.shard_map.user_shard[users]).tolist()}
        report["rows"].append(record)
        print(json.dumps({k: record[k] for k in ("row", "redrawn", "adjusted_rand_index")}), flush=True)
        with open(args.out, "w") as f:  # after every row, so a cut-off run keeps what it measured
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    run(main)
