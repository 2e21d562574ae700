"""What an SRU / RecEraser aggregator's settings are worth at convergence, without refitting shards.

A converged leaderboard row of a sharded method costs most of its time training shards; its
aggregator trains afterwards on the frozen shards. This script takes a leaderboard cell and a row
whose saved model (``<output_dir>/<cell>/models/<row>``) has forgotten the cell's forget set, and
for each variant (``name:key=value,key=value``, aggregate-phase keys only: ``aggregator``,
``agg_*``, so the shards stay those of the row) trains a fresh aggregator on that model's
remaining data, exactly as the row's forget did, and measures what the leaderboard measures:
NDCG@10 and Recall@10 on D_rem's test targets, forget Hit@10 on D_fgt, and the membership audit
against the cell's saved reference models. An empty variant (``row:``) repeats the row's own
aggregator training and must reproduce the row's numbers: that checks the method.

    python benchmarks/aggregator_variants.py --grid=benchmarks/grids/converged-sasrec.yaml \\
        --cell=SASRec-beauty --row=sru-ced --variant=row: \\
        --variant=all-samples:agg_max_samples=1000000 --out=docs/benchmarks/x.json

Run it on an otherwise idle machine: it reports wall times. The saved model is not changed.
"""
import argparse
import json
import os
import sys
import time
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import yaml  # noqa: E402

from recbole_unlearn.benchmark.grid import load_grid  # noqa: E402
from recbole_unlearn.benchmark.runner import cell_config, select_cells  # noqa: E402
from recbole_unlearn.config.keys import phase_of  # noqa: E402
from recbole_unlearn.evaluator.metrics import full_ranking_metrics  # noqa: E402
from recbole_unlearn.serving.store import open_store  # noqa: E402
from recbole_unlearn.unlearn.experiment import Experiment  # noqa: E402
from recbole_unlearn.utils.errors import UnlearnError  # noqa: E402
from bench_record import check_out, finished_row, provenance, run  # noqa: E402


def parse_variant(text: str) -> Tuple[str, Dict[str, object]]:
    """``name:key=value,key=value`` -> ``(name, {key: value})``; values are read as YAML."""
    name, _, body = text.partition(":")
    overrides = {}
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise UnlearnError(f"variant {text!r}: {item!r} is not key=value")
        if phase_of(key) != "aggregate":
            raise UnlearnError(f"variant {text!r}: {key!r} is not an aggregator setting "
                               "(only aggregator and agg_* keys leave the shards as they are)")
        overrides[key] = yaml.safe_load(value)
    return name, overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", required=True)
    parser.add_argument("--cell", required=True)
    parser.add_argument("--row", required=True)
    parser.add_argument("--output_dir", help="the grid's output folder (default: the grid's output_dir)")
    parser.add_argument("--variant", action="append", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    check_out(args.out)
    grid = load_grid(args.grid)
    cell = select_cells(grid, [args.cell])[0]
    cell_dir = os.path.join(args.output_dir or grid.output_dir, cell.name)
    finished_row(cell_dir, args.row)
    variants: List[Tuple[str, dict]] = [parse_variant(v) for v in args.variant]

    experiment = Experiment(cell_config(grid, cell))
    experiment.open(os.path.join(cell_dir, "variants-log"))
    with open(os.path.join(cell_dir, "rows", "original.json")) as f:
        experiment.load_original(os.path.join(cell_dir, "original.pth"), json.load(f)["row"])
    experiment.prepare_audit(cell_dir)  # the cell's saved references; trains none
    with open(os.path.join(cell_dir, "rows", f"{args.row}.json")) as f:
        row = json.load(f)["row"]

    model = open_store(os.path.join(cell_dir, "models", args.row)).load()
    base_config = model.config
    suite, cfg = experiment.suite, experiment.config
    results = []
    for name, overrides in variants:
        model.config = base_config.override(overrides)
        seconds = model.retrain_aggregator()
        recommender = model.recommender
        utility = full_ranking_metrics(recommender, suite.rem.test, cfg, ["NDCG", "Recall"], [10])
        forget = full_ranking_metrics(recommender, suite.forget_loader, cfg, ["Hit"], [10])
        audit = experiment.audit.report(recommender) if experiment.audit is not None else {}  # (audit: False)
        record = {"variant": name, "overrides": overrides, "aggregator_seconds": round(seconds, 1),
                  "training": model.fit_training.get("aggregator"), "utility_rem": utility,
                  "forget": forget, "audit": {k: audit.get(k) for k in ("auc", "auc_interval", "verdict")}}
        results.append(record)
        print(json.dumps(record), flush=True)

    report = {
        **provenance(),
        "date": time.strftime("%Y-%m-%d"),
        "grid": args.grid, "cell": cell.name, "row": args.row,
        "row_numbers": {"utility_rem": row["utility_rem"], "forget": row["forget"],
                        "aggregator_seconds": row.get("aggregator_seconds"), "audit": row.get("audit")},
        "variants": results,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    run(main)
