"""Training a learned aggregator with the sub-models frozen (SPEC section 5)."""
import time

import numpy as np
from recbole.utils import init_seed

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.utils import train_loader
from recbole_unlearn.model.aggregators import AGGREGATORS
from recbole_unlearn.trainer.trainer import UnlearnTrainer


def train_aggregator(config, ensemble, dataset: UnlearnSequentialDataset, keep: np.ndarray, shard_map) -> float:
    """(Re)train ``ensemble``'s aggregator from a fresh initialisation on the remaining training
    data (at most ``agg_max_samples`` samples, drawn with ``seed``) for ``agg_epochs`` epochs
    with learning rate ``agg_learning_rate``. A fresh start matters: the previous aggregator
    saw the data that is being forgotten. Returns wall seconds (0 for non-learned aggregators).
    """
    if not ensemble.aggregator.learnable:
        return 0.0
    start = time.perf_counter()
    targets = dataset.split_targets(keep)[0]
    rng = np.random.default_rng(config["seed"])
    if len(targets) > config["agg_max_samples"]:
        targets = np.sort(rng.choice(targets, size=config["agg_max_samples"], replace=False))
    loader = train_loader(config, dataset, targets, keep)
    init_seed(config["seed"], config["reproducibility"])
    fresh = AGGREGATORS.get(config["aggregator"])(config, ensemble.n_shards, ensemble.sub_models[0])
    fresh = fresh.to(config["device"])
    ensemble.aggregator = fresh
    fresh.refresh(ensemble, dataset, shard_map, keep)
    trainer = UnlearnTrainer(config, ensemble)
    trainer.epochs = config["agg_epochs"]
    trainer.optimizer = trainer._build_optimizer(
        params=[p for p in fresh.parameters() if p.requires_grad], learning_rate=config["agg_learning_rate"]
    )
    trainer.fit(loader, None, verbose=False, saved=False)
    return time.perf_counter() - start
