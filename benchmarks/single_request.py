"""One deletion request on freshly fitted sharded models, against Retrain, in one process.

For each ``--variant`` (default: one, the settings as given) fits ``--method``'s deployable
model on all training data (``--set key=value`` settings, e.g. the converged leaderboard's caps,
plus the variant's), saves it in a model folder and answers one request file holding one
training interaction (drawn with ``--seed``, the same for every variant) through
``run_forget_requests``, as a deployment would; then trains Retrain once on the training data
minus that interaction. Everything runs in this one process, one step after another, so the
times compare; run it on an otherwise idle machine. After the timed steps it records the test
NDCG@10 of each model after the request and of that Retrain (same remaining data), and every
shard's users and training interactions.

    python benchmarks/single_request.py --dataset=beauty --method=sru \\
        --set=epochs=200 --set=agg_epochs=100 --set=stopping_step=5 \\
        --variant=users:partition_balance=users --variant=interactions:partition_balance=interactions \\
        --out=docs/benchmarks/single-request-sasrec-beauty-sru-balance.json
"""
import os
import shutil
import sys
import time
from typing import Dict, List, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from recbole_unlearn.config import UnlearnConfig  # noqa: E402
from recbole_unlearn.data import create_unlearn_dataset, split_loaders  # noqa: E402
from recbole_unlearn.data.partition import shard_loads, shard_sizes  # noqa: E402
from recbole_unlearn.evaluator import full_ranking_metrics  # noqa: E402
from recbole_unlearn.quick_start import run_forget_requests  # noqa: E402
from recbole_unlearn.serving import AuditLog, open_store  # noqa: E402
from recbole_unlearn.trainer import train_model  # noqa: E402
from recbole_unlearn.unlearnable import ShardedUnlearnableModel  # noqa: E402
from recbole_unlearn.utils.errors import UnlearnError  # noqa: E402
from bench_record import (check_out, fitted_model_parser, key_values, provenance, run, settings_of,  # noqa: E402
                          sharded_method, write_record)


def parse_variant(text: str) -> Tuple[str, Dict[str, object]]:
    """``name:key=value,key=value`` -> (name, settings)."""
    name, _, body = text.partition(":")
    return name, key_values([item for item in body.split(",") if item], f"--variant {text!r}:")


def fit_and_forget(config, dataset, row: int, work: str) -> dict:
    """Fit, save, answer the one-line request file for log ``row``; the timings and what retrained."""
    start = time.perf_counter()
    model = ShardedUnlearnableModel.train(config, dataset)
    fit_seconds = time.perf_counter() - start
    model_dir = os.path.join(work, "model")
    if os.path.exists(model_dir):
        shutil.rmtree(model_dir)
    os.makedirs(work, exist_ok=True)
    open_store(model_dir, config).commit(model)

    user = str(dataset.id2token("user_id", dataset.log_user[row]))
    item = str(dataset.id2token("item_id", dataset.log_item[row]))
    owner = int(model.shard_map.owner_of_rows(dataset, np.array([row]))[0])
    users, loads = shard_sizes(model.shard_map), shard_loads(model.shard_map, dataset)
    requests = os.path.join(work, "request.csv")
    with open(requests, "w") as f:
        f.write(f"{user},{item}\n")
    start = time.perf_counter()
    doc = run_forget_requests(model_dir, requests, {"state": "WARNING", "results_dir": os.path.join(work, "results")},
                              verbose=False)
    request_wall = time.perf_counter() - start
    entry = AuditLog(model_dir).entries()[-1]  # the request's forget: what retrained, for how long
    return {
        "settings": {key: config[key] for key in ("n_shards", "partitioner", "partition_balance", "aggregator",
                                                  "agg_max_samples", "extra_deletion", "del_num")},
        "fit_seconds": round(fit_seconds, 1),
        "shards": {"users": users, "training_interactions": loads},
        "request": {"user": user, "item": item, "owning_shard": owner, "shard_users": users[owner],
                    "shard_training_interactions": loads[owner],
                    "training_interactions": int(dataset.is_training.sum())},
        "forget_seconds": doc["requests"]["forget_seconds"],
        "request_latency_s": doc["requests"]["latency_max_s"],
        "request_wall_s": round(request_wall, 1),
        "forget": {key: entry.get(key) for key in ("requested_interactions", "extra_deleted", "shards_retrained",
                                                   "seconds", "aggregator_seconds", "training")},
        "model_dir": model_dir,
    }


def main() -> int:
    parser = fitted_model_parser(__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[],
                        help="name:key=value,key=value, settings of one fitted model; repeat")
    parser.add_argument("--seed", type=int, default=2020, help="draws the request's interaction")
    parser.add_argument("--work", default="bench-work/single-request")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    record = provenance()  # the code measured, before any later commit
    settings = settings_of(args)
    sharded_method(args.method)
    check_out(args.out)
    if args.seed < 0:
        raise UnlearnError(f"--seed {args.seed}: give a number >= 0")
    variants: List[Tuple[str, Dict[str, object]]] = [parse_variant(v) for v in args.variant] or [("default", {})]
    names = [name for name, _ in variants]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # the second's model folder and results replaced the first's, unsaid
        raise UnlearnError(f"--variant {twice[0]!r} is named twice: give each variant its own name")
    base = UnlearnConfig(args.model, args.dataset, config_dict=dict(settings, state="WARNING"))
    dataset = create_unlearn_dataset(base.for_method(args.method))
    row = int(np.random.default_rng(args.seed).permutation(np.flatnonzero(dataset.is_training))[0])

    results = {}
    for name, extra in variants:
        # the variant's keys as the user's own, so the method's YAML does not replace them
        # (override() would let sru.yaml's n_shards win) and the model folder saves them
        own = UnlearnConfig(args.model, args.dataset, config_dict=dict(settings, **extra, state="WARNING"))
        config = own.for_method(args.method)
        results[name] = fit_and_forget(config, dataset, row, os.path.join(args.work, name))

    keep = dataset.full_keep()
    keep[row] = False
    retrain_config = base.for_method("retrain")
    start = time.perf_counter()  # building the loaders counts, as the forget's own loading does
    loaders = split_loaders(retrain_config, dataset, keep)
    retrain = train_model(retrain_config, loaders, tag="retrain")
    retrain_seconds = time.perf_counter() - start

    test = loaders.test
    retrain_ndcg = round(full_ranking_metrics(retrain.model, test, retrain_config, ["NDCG"], [10])["ndcg@10"], 4)
    for result in results.values():
        after = open_store(result.pop("model_dir")).load({"state": "WARNING"}).recommender
        ndcg = round(full_ranking_metrics(after, test, retrain_config, ["NDCG"], [10])["ndcg@10"], 4)
        result["forget_vs_retrain"] = round(result["forget_seconds"] / retrain_seconds, 3)
        result["test_ndcg@10"] = ndcg
        result["test_ndcg@10_vs_retrain"] = round(ndcg / retrain_ndcg, 3)

    out = {
        **record,
        "settings": {"model": args.model, "dataset": args.dataset, "method": args.method, **settings},
        "variants": results,
        "retrain_seconds": round(retrain_seconds, 1),
        "retrain_epochs": retrain.epochs_run,
        "retrain_test_ndcg@10": retrain_ndcg,
    }
    write_record(args.out, out)
    return 0


if __name__ == "__main__":
    run(main)
