"""One deletion request on a freshly fitted sharded model, against Retrain, in one process.

Fits ``--method``'s deployable model on all training data (``--set key=value`` settings, e.g.
the converged leaderboard's caps), saves it in a model folder, answers one request file holding
one training interaction (drawn with ``--seed``) through ``run_forget_requests``, as a
deployment would, then trains Retrain on the training data minus that interaction. Everything
runs in this one process, one step after another, so the times compare; run it on an otherwise
idle machine.

    python benchmarks/single_request.py --dataset=beauty --method=sru \\
        --set=epochs=200 --set=agg_epochs=100 --out=docs/benchmarks/single-request-sasrec-beauty-sru.json
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from recbole_unlearn.config import UnlearnConfig  # noqa: E402
from recbole_unlearn.config.configurator import literal_values  # noqa: E402
from recbole_unlearn.data import create_unlearn_dataset, split_loaders  # noqa: E402
from recbole_unlearn.quick_start import run_forget_requests  # noqa: E402
from recbole_unlearn.serving import AuditLog, open_store  # noqa: E402
from recbole_unlearn.trainer import train_model  # noqa: E402
from recbole_unlearn.unlearnable import ShardedUnlearnableModel  # noqa: E402
from recbole_unlearn.utils.atomic import write_json  # noqa: E402
from recbole_unlearn.utils.results import code_version, machine  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--method", default="sru")
    parser.add_argument("--set", action="append", default=[], help="key=value, a config setting; repeat")
    parser.add_argument("--seed", type=int, default=2020, help="draws the request's interaction")
    parser.add_argument("--work", default="bench-work/single-request")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    settings = literal_values(dict(item.split("=", 1) for item in args.set))
    base = UnlearnConfig(args.model, args.dataset, config_dict=dict(settings, state="WARNING"))
    config = base.for_method(args.method)
    dataset = create_unlearn_dataset(config)

    start = time.perf_counter()
    model = ShardedUnlearnableModel.train(config, dataset)
    fit_seconds = time.perf_counter() - start
    model_dir = os.path.join(args.work, "model")
    if os.path.exists(model_dir):
        shutil.rmtree(model_dir)
    os.makedirs(args.work, exist_ok=True)
    open_store(model_dir, config).commit(model)

    row = int(np.random.default_rng(args.seed).permutation(np.flatnonzero(dataset.is_training))[0])
    user = str(dataset.id2token("user_id", dataset.log_user[row]))
    item = str(dataset.id2token("item_id", dataset.log_item[row]))
    owner = int(model.shard_map.owner_of_rows(dataset, np.array([row]))[0])
    shard_users = model.shard_map.shard_users(owner)
    shard_interactions = int(np.isin(dataset.log_user[dataset.is_training], shard_users).sum())
    requests = os.path.join(args.work, "request.csv")
    with open(requests, "w") as f:
        f.write(f"{user},{item}\n")
    start = time.perf_counter()
    doc = run_forget_requests(model_dir, requests, {"state": "WARNING",
                                                    "results_dir": os.path.join(args.work, "results")},
                              verbose=False)
    request_wall = time.perf_counter() - start
    entry = AuditLog(model_dir).entries()[-1]  # the request's forget: what retrained, for how long

    keep = dataset.full_keep()
    keep[row] = False
    start = time.perf_counter()
    retrain = train_model(base.for_method("retrain"), split_loaders(config, dataset, keep), tag="retrain")
    retrain_seconds = time.perf_counter() - start

    out = {
        "command": "python " + " ".join(sys.argv),
        "commit": (code_version()["commit"] or "unknown")[:7],
        "machine": machine(),
        "settings": {"model": args.model, "dataset": args.dataset, "method": args.method, **settings,
                     "n_shards": config["n_shards"], "partitioner": config["partitioner"],
                     "aggregator": config["aggregator"], "agg_max_samples": config["agg_max_samples"],
                     "extra_deletion": config["extra_deletion"], "del_num": config["del_num"]},
        "fit_seconds": round(fit_seconds, 1),
        "request": {"user": user, "item": item, "owning_shard": owner, "shard_users": int(len(shard_users)),
                    "shard_training_interactions": shard_interactions,
                    "training_interactions": int(dataset.is_training.sum())},
        "forget_seconds": doc["requests"]["forget_seconds"],
        "request_latency_s": doc["requests"]["latency_max_s"],
        "request_wall_s": round(request_wall, 1),
        "forget": {key: entry.get(key) for key in ("requested_interactions", "extra_deleted", "shards_retrained",
                                                   "seconds", "aggregator_seconds", "training")},
        "retrain_seconds": round(retrain_seconds, 1),
        "retrain_epochs": retrain.epochs_run,
        "forget_vs_retrain": round(doc["requests"]["forget_seconds"] / retrain_seconds, 3),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_json(args.out, out)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
