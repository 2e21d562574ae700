"""Where one retraining of SRU's learned aggregator spends its time: cache, training, validation.

Fits ``--method``'s sharded model (``--set key=value`` settings; the sub-models' quality does not
change the cost of an aggregator epoch, so a small ``epochs`` cap keeps the fit short), then
retrains its aggregator once on all training data, as a forget does after its shards, and
splits that retraining's wall time into building the representation cache
(``EnsembleSequentialRecommender.build_cache``), the training epochs and the validation epochs
(RecBole's ``Trainer._train_epoch`` / ``_valid_epoch``, timed by wrapping them), the rest being
sampling, the fresh aggregator and loaders. Run it on an otherwise idle machine.

    python benchmarks/aggregator_breakdown.py --dataset=beauty --set=epochs=3 --set=agg_epochs=100 \\
        --set=stopping_step=5 --set=partition_balance=interactions \\
        --out=docs/benchmarks/aggregator-breakdown-sasrec-beauty.json
"""
import collections
import os
import sys
import time
from typing import Callable, Dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from recbole_unlearn.config import UnlearnConfig  # noqa: E402
from recbole_unlearn.data import create_unlearn_dataset  # noqa: E402
from recbole_unlearn.model.ensemble import EnsembleSequentialRecommender  # noqa: E402
from recbole_unlearn.trainer.aggregator_trainer import train_aggregator  # noqa: E402
from recbole_unlearn.trainer.trainer import UnlearnTrainer  # noqa: E402
from recbole_unlearn.unlearnable import ShardedUnlearnableModel  # noqa: E402
from bench_record import (check_out, fitted_model_parser, provenance, run, settings_of, sharded_method,  # noqa: E402
                          write_record)

SECONDS: Dict[str, float] = collections.defaultdict(float)
CALLS: Dict[str, int] = collections.Counter()


def timed(cls: type, name: str) -> None:
    """Wrap ``cls.name`` so that its calls and wall seconds add up in ``CALLS`` / ``SECONDS``."""
    original: Callable = getattr(cls, name)

    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            SECONDS[name] += time.perf_counter() - start
            CALLS[name] += 1

    setattr(cls, name, wrapper)


def main() -> int:
    parser = fitted_model_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    record = provenance()
    settings = settings_of(args)
    sharded_method(args.method)
    check_out(args.out)
    config = UnlearnConfig(args.model, args.dataset, config_dict=dict(settings, state="WARNING")).for_method(args.method)
    dataset = create_unlearn_dataset(config)
    start = time.perf_counter()
    model = ShardedUnlearnableModel.train(config, dataset)
    fit_seconds = time.perf_counter() - start

    timed(UnlearnTrainer, "_train_epoch")
    timed(UnlearnTrainer, "_valid_epoch")
    timed(EnsembleSequentialRecommender, "build_cache")
    start = time.perf_counter()
    result = train_aggregator(config, model.ensemble, dataset, dataset.full_keep(), model.shard_map)
    total = time.perf_counter() - start
    parts = {name: round(seconds, 1) for name, seconds in SECONDS.items()}
    epochs = CALLS["_train_epoch"]
    out = {
        **record,
        "settings": {"model": args.model, "dataset": args.dataset, "method": args.method, **settings,
                     **{key: config[key] for key in ("n_shards", "aggregator", "agg_max_samples", "eval_batch_size",
                                                     "train_batch_size")}},
        "fit_seconds": round(fit_seconds, 1),
        "aggregator": result.to_json(),
        "retraining_seconds": round(total, 1),
        "cache_seconds": parts.get("build_cache", 0.0),
        "training_epochs": epochs,
        "training_seconds": parts.get("_train_epoch", 0.0),
        "training_seconds_per_epoch": round(SECONDS["_train_epoch"] / max(epochs, 1), 2),
        "validations": CALLS["_valid_epoch"],
        "validation_seconds": parts.get("_valid_epoch", 0.0),
        "validation_seconds_per_epoch": round(SECONDS["_valid_epoch"] / max(CALLS["_valid_epoch"], 1), 2),
        "other_seconds": round(total - sum(SECONDS.values()), 1),
    }
    write_record(args.out, out)
    return 0


if __name__ == "__main__":
    run(main)
