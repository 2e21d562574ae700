"""Aggregator training that validates every epoch, with RecBole's Collector and with ours.

RecBole's ``Collector`` builds a dense ``[B, n_items]`` positive-item matrix for every evaluation
batch; :class:`~recbole_unlearn.evaluator.collector.TopkCollector` computes the same top-k
resource from the positive pairs. This script fits one sharded model (``--epochs`` per shard:
the cost of an aggregator epoch does not depend on how far the shards trained), then, in
rotating order, ``--repeats`` times each, trains its aggregator (cached representations,
validation NDCG@10 after every epoch, exactly ``--agg_epochs`` epochs: ``stopping_step`` is set
above them) and runs one full-ranking evaluation of the ensemble on the validation targets, with
each collector. It checks that both give the same aggregator weights and the same metrics. First
it times the collection alone: ``--batches`` batches of random scores of the evaluation's shape
(``eval_batch_size`` x the dataset's items, one positive a row), per collector, alternating.

    python benchmarks/eval_collector.py --dataset=beauty --out=docs/benchmarks/eval-collector-beauty.json

Run it on an otherwise idle machine: it reports wall times.
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
from recbole.evaluator import Collector  # noqa: E402

import recbole_unlearn.evaluator.metrics as metrics_module  # noqa: E402
import recbole_unlearn.trainer.trainer as trainer_module  # noqa: E402
from recbole_unlearn.config import UnlearnConfig  # noqa: E402
from recbole_unlearn.data import create_unlearn_dataset  # noqa: E402
from recbole_unlearn.data.utils import eval_loader  # noqa: E402
from recbole_unlearn.evaluator import full_ranking_metrics  # noqa: E402
from recbole_unlearn.evaluator.collector import TopkCollector  # noqa: E402
from recbole_unlearn.trainer.aggregator_trainer import train_aggregator  # noqa: E402
from recbole_unlearn.unlearnable import ShardedUnlearnableModel  # noqa: E402
from recbole_unlearn.model.aggregators import AGGREGATORS  # noqa: E402
from recbole_unlearn.utils.errors import UnlearnError  # noqa: E402
from bench_record import check_out, provenance, run, sharded_method, write_record  # noqa: E402

COLLECTORS = {"recbole-collector": Collector, "topk-collector": TopkCollector}


def use_collector(cls) -> None:
    """Make the trainer's validation and ``full_ranking_metrics`` collect with ``cls``."""
    trainer_module.TopkCollector = cls
    metrics_module.TopkCollector = cls


def collection_ms(config, n_rows: int, n_items: int, batches: int, repeats: int) -> dict:
    """Median milliseconds per batch for each collector to collect ``[n_rows, n_items]`` scores."""
    from recbole.data.interaction import Interaction

    generator = torch.Generator().manual_seed(config["seed"])
    scores = torch.randn(n_rows, n_items, generator=generator)
    positive_u = torch.arange(n_rows)
    positive_i = torch.randint(1, n_items, (n_rows,), generator=generator)
    interaction = Interaction({config["ITEM_ID_FIELD"]: positive_i})
    evaluation = {key: config[key] for key in ("metric_decimal_place", "eval_args", "device", "ITEM_ID_FIELD",
                                              "USER_ID_FIELD", "LABEL_FIELD")}
    evaluation.update(metrics=["NDCG", "Recall", "Hit"], topk=[10, 20])
    timings = {name: [] for name in COLLECTORS}
    for _ in range(repeats):
        for name, cls in COLLECTORS.items():
            collector = cls(evaluation)
            start = time.perf_counter()
            for _ in range(batches):
                collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
            timings[name].append((time.perf_counter() - start) / batches)
    return {name: round(statistics.median(t) * 1000, 1) for name, t in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--method", default="sru")
    parser.add_argument("--n_shards", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--agg_epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batches", type=int, default=11, help="batches per timing of the collection alone")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    record = provenance()  # the code measured, before any later commit
    sharded_method(args.method)
    check_out(args.out)
    for key in ("n_shards", "epochs", "agg_epochs", "repeats", "batches"):
        if getattr(args, key) < 1:
            raise UnlearnError(f"--{key} {getattr(args, key)}: give a number >= 1")

    config = UnlearnConfig(args.model, args.dataset, config_dict={
        "unlearn_method": args.method, "n_shards": args.n_shards, "epochs": args.epochs, "state": "WARNING",
    }).for_method(args.method)
    if not AGGREGATORS.get(config["aggregator"]).learnable:
        raise UnlearnError(f"--method {args.method}: its aggregator {config['aggregator']!r} trains nothing; this "
                           "benchmark times a learned aggregator's training (sru, receraser)")
    dataset = create_unlearn_dataset(config)
    per_batch_ms = collection_ms(config, config["eval_batch_size"], int(dataset.item_num), args.batches, args.repeats)
    fitted = ShardedUnlearnableModel.train(config, dataset)
    keep = fitted.keep_mask()
    valid = eval_loader(config, dataset, dataset.samples(dataset.split_targets(keep)[1], keep))
    fixed = config.override({"agg_epochs": args.agg_epochs, "stopping_step": args.agg_epochs + 1})

    names = list(COLLECTORS)
    training_seconds = {name: [] for name in names}
    evaluation_seconds = {name: [] for name in names}
    states, runs, results = {}, {}, {}
    for repeat in range(args.repeats):
        for name in names[repeat % 2:] + names[:repeat % 2]:
            use_collector(COLLECTORS[name])
            training = train_aggregator(fixed, fitted.ensemble, dataset, keep, fitted.shard_map)
            training_seconds[name].append(training.seconds)
            states[name] = {k: v.clone() for k, v in fitted.ensemble.aggregator.state_dict().items()}
            runs[name] = training.to_json()
            start = time.perf_counter()
            results[name] = full_ranking_metrics(fitted.ensemble, valid, config, ["NDCG", "Recall", "Hit"], [10, 20])
            evaluation_seconds[name].append(time.perf_counter() - start)
    use_collector(TopkCollector)
    first, second = names
    difference = max(float((states[first][k] - states[second][k]).abs().max()) for k in states[first])

    def medians(timings):
        return {name: round(statistics.median(t), 2) for name, t in timings.items()}

    result = {
        "command": record["command"],
        "settings": {"model": args.model, "dataset": args.dataset, "method": args.method,
                     "aggregator": config["aggregator"], "n_shards": args.n_shards, "epochs": args.epochs,
                     "agg_epochs": args.agg_epochs, "agg_max_samples": config["agg_max_samples"],
                     "eval_batch_size": config["eval_batch_size"], "n_items": int(dataset.item_num),
                     "validation_samples": len(valid._dataset)},
        "commit": record["commit"],
        "machine": record["machine"],
        "collection_ms_per_batch_median": per_batch_ms,
        "aggregator_training_seconds": {name: [round(t, 2) for t in ts] for name, ts in training_seconds.items()},
        "aggregator_training_median": medians(training_seconds),
        "validation_evaluation_seconds": {name: [round(t, 3) for t in ts] for name, ts in evaluation_seconds.items()},
        "validation_evaluation_median": medians(evaluation_seconds),
        "runs": runs,
        "validation_metrics": results,
        "same_metrics": results[first] == results[second],
        "max_abs_weight_difference": difference,
    }
    write_record(args.out, result)


if __name__ == "__main__":
    run(main)
