"""How many of a converged cell's extra deletions were held-out twins, under the code before
they were excluded?

Under ``audit: True`` the audit's held-out twins H are never trained on. Until the fix that
excludes them, ``data/extra_deletion.py`` built each target's candidates from the user's training
rows minus the forget set only, so NED and RED (and CED, from the same candidates) could pick a
twin: a deletion of nothing, which used up ``del_num`` and was counted in ``extra_deleted`` and
``forgotten_interactions``. This script rebuilds a cell's forget set and twins (no model is
trained) and, for NED and RED at the grid's ``del_num``, counts the extras that were twins with
the candidates as they were (twins in) and checks that none is now. CED judges candidates by a
live sub-model's item embeddings, which needs the cell's model files, so for it the script
reports the share of twins among the targets' candidates only.

    python benchmarks/twins_as_extras.py --grid=benchmarks/grids/converged-sasrec.yaml \\
        --cell=SASRec-beauty --out=docs/benchmarks/twins-as-extras-beauty.json

Needs only the dataset (``dataset/<name>/``, converted as the grid file says); writes only ``--out``.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from recbole_unlearn.benchmark.grid import load_grid  # noqa: E402
from recbole_unlearn.benchmark.runner import CellRun, select_cells  # noqa: E402
from recbole_unlearn.data.extra_deletion import apply_extra_deletion  # noqa: E402
from recbole_unlearn.unlearn.experiment import Experiment  # noqa: E402


def count(config, experiment, kind: str) -> dict:
    """Extras chosen by ``kind`` with the twins among the candidates (as before) and without."""
    data, forget_set, held_out = experiment.data, experiment.forget_set, experiment.data.held_out
    method_config = config.override({"extra_deletion": kind})
    data.held_out = np.array([], dtype=np.int64)  # the candidates as the code before built them
    try:
        before = apply_extra_deletion(method_config, data, forget_set)
    finally:
        data.held_out = held_out
    now = apply_extra_deletion(method_config, data, forget_set)
    return {"extras_before": int(len(before.extra)), "twins_among_them": int(np.isin(before.extra, held_out).sum()),
            "extras_now": int(len(now.extra)), "twins_now": int(np.isin(now.extra, held_out).sum())}


def candidate_share(experiment) -> dict:
    """For every target: its user's training rows not in F (the candidates before); the share
    of them that are twins, pooled, and the targets whose candidates are all twins."""
    data, forget_set, held_out = experiment.data, experiment.forget_set, experiment.data.held_out
    in_f = np.zeros(data.n_rows, dtype=bool)
    in_f[forget_set.rows] = True
    is_twin = np.zeros(data.n_rows, dtype=bool)
    is_twin[held_out] = True
    total = twins = only_twins = 0
    for target in forget_set.targets:
        rows = data.user_rows(data.log_user[target])
        candidates = rows[data.is_training[rows] & ~in_f[rows]]
        total += len(candidates)
        twins += int(is_twin[candidates].sum())
        only_twins += int(len(candidates) > 0 and is_twin[candidates].all())
    return {"candidates": total, "twins_among_candidates": twins, "targets": int(len(forget_set.targets)),
            "targets_whose_candidates_are_all_twins": only_twins}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", required=True)
    parser.add_argument("--cell", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    grid = load_grid(args.grid)
    cell = select_cells(grid, [args.cell])[0]
    run = CellRun(grid, cell)
    experiment = Experiment(run.base)  # the dataset, the forget set and its twins; nothing trains
    del_num = {v.overrides.get("del_num", run.base["del_num"]) for v in cell.variants
               if v.overrides.get("extra_deletion")}
    config = run.base.override({"del_num": max(del_num) if del_num else run.base["del_num"]})
    result = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M"), "grid": args.grid, "cell": cell.name, "del_num": config["del_num"],
        "forget_interactions": int(len(experiment.forget_set.rows)),
        "held_out_twins": int(len(experiment.data.held_out)),
        "ned": count(config, experiment, "ned"), "red": count(config, experiment, "red"),
        "ced_candidates": candidate_share(experiment),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
