"""Does a similarity partition place a user beside the users who share their forgotten items?

A RecEraser / SRU similarity partition (InBP, IBP, UBP / kmeans) assigns users from embeddings
pretrained on all training data, forgotten interactions included, and keeps that assignment after
a forget. If a user's forgotten interactions drew them towards shard-mates who interacted with
the same items, the retrained shard still ranks those items higher for that user: influence of
the forgotten data that survives exact retraining. This script measures that placement without
training any shard, for the audit's pairs: the cell's forget set F and its held-out twins H (the
same protocol; H was never seen by any model, the partition's pretraining included).

For a target (user u, item i) with u in shard s, counted on the remaining training data (D_raw
minus F and H) without u's own interactions: ``observed`` = interactions with i by u's shard-mates,
``expected`` = i's interactions in all shards times s's share of the interactions; ``lift`` =
(observed + 1) / (expected + 1). Reported per partition: the mean lift of F's and of H's targets
and ``affinity_auc`` = P(lift of an F target > lift of an H target) (ties count half) with a
bootstrap interval over users. With no trace of F in the assignment F and H are exchangeable and
the AUC is 0.5 up to chance.

Partitions compared, for each ``--partitioner`` and ``--seed`` (pretraining seed and
``partition_seed`` both set to it): pretrained on D_raw minus H (what a fitted model keeps; the
leaderboard rows were fitted at the grid's seed) and on D_raw minus F and H (redrawn after the
forget, as nothing of F could reach it).

    python benchmarks/partition_affinity.py --grid=benchmarks/grids/converged-gru4rec-bert4rec.yaml \\
        --cell=GRU4Rec-video --row=receraser-inbp --partitioner=inbp --partitioner=ibp \\
        --partitioner=ubp --seed=2020 --seed=2021 --out=docs/benchmarks/x.json

Needs only the dataset (no model files); its log goes to ``<cell>/partition-affinity-log``.
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

from recbole_unlearn.benchmark.grid import load_grid  # noqa: E402
from recbole_unlearn.benchmark.runner import CellRun, select_cells  # noqa: E402
from recbole_unlearn.data.partition import build_shard_map  # noqa: E402
from recbole_unlearn.evaluator.audit import auc  # noqa: E402
from recbole_unlearn.trainer.pretrain import pretrain_embeddings  # noqa: E402
from recbole_unlearn.unlearn.experiment import Experiment  # noqa: E402
from recbole_unlearn.data.similarity import is_similarity_partitioner, similarity_partitioners  # noqa: E402
from recbole_unlearn.utils.errors import UnlearnError  # noqa: E402
from bench_record import check_out, provenance, run  # noqa: E402


def target_lifts(dataset, user_shard: np.ndarray, remaining: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``[n]`` lift of each target's item in its user's shard (see the module doc).

    Args:
        user_shard: ``[user_num]`` shard per user.
        remaining: ``[n_rows]`` bool, the remaining training interactions the shards train on.
        targets: ``[n]`` log rows of the targets."""
    rows = np.flatnonzero(remaining)
    shard_of_row = user_shard[dataset.log_user[rows]]
    n_shards, n_items = int(user_shard.max()) + 1, int(dataset.log_item.max()) + 1
    counts = np.zeros((n_shards, n_items), dtype=np.int64)
    np.add.at(counts, (shard_of_row, dataset.log_item[rows]), 1)
    item_total, shard_total = counts.sum(0), counts.sum(1)
    users, items = dataset.log_user[targets], dataset.log_item[targets]
    shards = user_shard[users]
    own_rows = [r[remaining[r]] for r in (dataset.user_rows(int(u)) for u in users)]
    own_item = np.array([np.count_nonzero(dataset.log_item[r] == i) for r, i in zip(own_rows, items)])
    own_total = np.array([len(r) for r in own_rows])
    observed = counts[shards, items] - own_item
    share = (shard_total[shards] - own_total) / (shard_total.sum() - own_total)
    expected = (item_total[items] - own_item) * share
    return (observed + 1.0) / (expected + 1.0)


def affinity(lift_f: np.ndarray, lift_h: np.ndarray, users_f: np.ndarray, users_h: np.ndarray,
             draws: int, seed: int) -> Dict[str, object]:
    """P(lift_F > lift_H) (the audit's ``auc``, ties half) with a 95% bootstrap interval that
    resamples F's users and H's users separately (the audit's ``bootstrap_auc`` pools them)."""
    rng = np.random.default_rng(seed)
    groups_f, groups_h = _groups(users_f), _groups(users_h)
    values = []
    for _ in range(draws):
        pick_f = np.concatenate([groups_f[k] for k in rng.integers(0, len(groups_f), len(groups_f))])
        pick_h = np.concatenate([groups_h[k] for k in rng.integers(0, len(groups_h), len(groups_h))])
        values.append(auc(lift_f[pick_f], lift_h[pick_h]))
    low, high = np.percentile(values, [2.5, 97.5])
    return {"affinity_auc": round(float(auc(lift_f, lift_h)), 4),
            "interval": [round(float(low), 4), round(float(high), 4)],
            "mean_lift_f": round(float(lift_f.mean()), 4), "mean_lift_h": round(float(lift_h.mean()), 4)}


def _groups(users: np.ndarray):
    order = np.argsort(users, kind="stable")
    bounds = np.flatnonzero(np.diff(users[order])) + 1
    return np.split(order, bounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", required=True)
    parser.add_argument("--cell", required=True)
    parser.add_argument("--row", required=True, help="a similarity-partition row whose settings to use")
    parser.add_argument("--partitioner", action="append", required=True)
    parser.add_argument("--seed", action="append", type=int, required=True)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--output_dir", help="the grid's output folder (default: the grid's output_dir)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    check_out(args.out)
    grid = load_grid(args.grid)
    cell = select_cells(grid, [args.cell])[0]
    run = CellRun(grid, cell)
    if not run.base["audit"]:  # its held-out twins H are the audit's
        raise UnlearnError(f"cell {cell.name} of {args.grid} does not audit (audit: False): H, the held-out twins, "
                           "are drawn only for the audit; set audit: True in the grid")
    if args.row not in run.variant_configs:
        raise UnlearnError(f"--row {args.row!r}: cell {cell.name} has no such row (its rows: "
                           f"{', '.join(sorted(run.variant_configs))})")
    for name in args.partitioner:
        if not is_similarity_partitioner(name):
            raise UnlearnError(f"--partitioner {name!r}: give a similarity partitioner "
                               f"({', '.join(similarity_partitioners())})")
    if any(seed < 0 for seed in args.seed):
        raise UnlearnError(f"--seed {min(args.seed)}: give numbers >= 0")
    cell_dir = os.path.join(args.output_dir or grid.output_dir, cell.name)
    experiment = Experiment(run.base)
    experiment.open(os.path.join(cell_dir, "partition-affinity-log"))
    data, forget, held_out = experiment.data, experiment.forget_set, experiment.held_out
    remaining = data.is_training & forget.keep_mask(data)
    without_f = data.full_keep()
    without_f[forget.rows] = False
    lifts_of = {"F": forget.targets, "H": held_out.targets}

    report = {**provenance(),
              "date": time.strftime("%Y-%m-%d %H:%M"), "grid": args.grid, "cell": cell.name,
              "targets": {k: int(len(v)) for k, v in lifts_of.items()}, "partitions": []}
    base = run.variant_configs[args.row]
    for seed in args.seed:
        for pretrained_on, keep in (("D_raw minus H", data.full_keep()), ("D_raw minus F and H", without_f)):
            config = base.override({"seed": seed, "partition_seed": seed})
            embeddings, pretraining = pretrain_embeddings(config, data, keep)
            seconds = pretraining["seconds"]
            for name in args.partitioner:
                start = time.perf_counter()
                shard_map = build_shard_map(config.override({"partitioner": name}), data, embeddings)
                lift = {k: target_lifts(data, shard_map.user_shard, remaining, rows) for k, rows in lifts_of.items()}
                record = {"partitioner": name, "seed": seed, "pretrained_on": pretrained_on,
                          "pretrain_seconds": round(seconds, 1),
                          "partition_seconds": round(time.perf_counter() - start, 1),
                          **affinity(lift["F"], lift["H"], data.log_user[lifts_of["F"]],
                                     data.log_user[lifts_of["H"]], args.draws, seed)}
                report["partitions"].append(record)
                print(json.dumps(record), flush=True)
                with open(args.out, "w") as f:  # after every partition: a cut-off run keeps what it measured
                    json.dump(report, f, indent=1)


if __name__ == "__main__":
    run(main)
