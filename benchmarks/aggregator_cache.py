"""Aggregator retraining with and without the representation cache, on one fitted model.

The issue's measurement: SASRec, ml-100k, ``--unlearn_method=sru --n_shards=4 --epochs=1``;
aggregator retraining after the forget took 31.0 s against 14.5 s for the whole Retrain. This
script fits that SRU model once (so both paths retrain the same aggregator on the same
sub-models and data), then times ``train_aggregator`` in three variants, in rotating order,
``--repeats`` times each: ``uncached`` (the sub-models run for every batch and a fixed
``agg_epochs``: the code before the cache), ``cached`` (the same fixed epochs from the cache),
and ``cached+validation`` (the new default: cached, early stopping on validation NDCG@10, capped
at ``agg_epochs``); and the run's Retrain (a fresh model trained on D_rem with early stopping)
once. It checks that the first two give the same aggregator (max absolute weight difference).

    python benchmarks/aggregator_cache.py --out=docs/benchmarks/aggregator-cache.json

Run it on an otherwise idle machine: it reports wall times.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from recbole_unlearn.config import UnlearnConfig  # noqa: E402
from recbole_unlearn.data import create_unlearn_dataset, sample_forget_set, split_loaders  # noqa: E402
from recbole_unlearn.trainer import train_model  # noqa: E402
from recbole_unlearn.trainer.aggregator_trainer import train_aggregator  # noqa: E402
from recbole_unlearn.unlearnable import ShardedUnlearnableModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--method", default="sru")
    parser.add_argument("--n_shards", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    config = UnlearnConfig(args.model, args.dataset, config_dict={
        "unlearn_method": args.method, "n_shards": args.n_shards, "epochs": args.epochs, "state": "WARNING",
    }).for_method(args.method)
    dataset = create_unlearn_dataset(config)
    forget_set = sample_forget_set(config, dataset)
    fitted = ShardedUnlearnableModel.train(config, dataset)
    rows = fitted.expand(forget_set).rows
    fitted.forgotten = rows  # D_rem as after the forget; the aggregator's cost does not depend on which shards retrained
    keep = fitted.keep_mask()

    variants = {"uncached": {"agg_cache": False, "validate_submodels": False},
                "cached": {"agg_cache": True, "validate_submodels": False},
                "cached+validation": {"agg_cache": True, "validate_submodels": True}}
    names = list(variants)
    timings = {name: [] for name in names}
    states, runs = {}, {}
    for repeat in range(args.repeats):
        for name in names[repeat % 3:] + names[:repeat % 3]:
            training = train_aggregator(config.override(variants[name]), fitted.ensemble, dataset, keep,
                                        fitted.shard_map)
            timings[name].append(training.seconds)
            states[name] = {k: v.clone() for k, v in fitted.ensemble.aggregator.state_dict().items()}
            runs[name] = training.to_json()
    difference = max(float((states["cached"][k] - states["uncached"][k]).abs().max()) for k in states["cached"])

    start = time.perf_counter()
    retrain = train_model(config, split_loaders(config, dataset, keep), tag="retrain")
    retrain_seconds = time.perf_counter() - start

    medians = {name: statistics.median(t) for name, t in timings.items()}
    result = {
        "command": "python " + " ".join(sys.argv),
        "settings": {"model": args.model, "dataset": args.dataset, "method": args.method,
                     "aggregator": config["aggregator"], "n_shards": args.n_shards, "epochs": args.epochs,
                     "agg_epochs": config["agg_epochs"], "agg_max_samples": config["agg_max_samples"],
                     "stopping_step": config["stopping_step"], "forgotten_interactions": int(len(rows))},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "seconds": {name: [round(t, 2) for t in ts] for name, ts in timings.items()},
        "median_seconds": {name: round(m, 2) for name, m in medians.items()},
        "speedup_vs_uncached": {name: round(medians["uncached"] / m, 1) for name, m in medians.items()},
        "runs": runs,
        "retrain_seconds": round(retrain_seconds, 2), "retrain_epochs": retrain.epochs_run,
        "max_abs_weight_difference_cached_vs_uncached": difference,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
