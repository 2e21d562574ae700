"""Training a learned aggregator with the sub-models frozen (SPEC section 5).

The sub-models never change while their aggregator trains, so by default (``agg_cache``) their
sequence and item representations of the training samples are computed once
(:class:`~recbole_unlearn.model.ensemble.RepresentationCache`) and every aggregator epoch reads
them instead of running the K sub-models again. Batches come from the same RecBole dataloader
either way (a sample-index field tells the cache which rows a batch holds), so both paths train
on the same batches in the same order and give the same aggregator up to float rounding. If the
cache would exceed ``agg_cache_max_mb``, the training samples are subsampled to fit (logged).

With ``validate_submodels`` (the default) the aggregator trains until the ensemble's ``valid_metric`` (NDCG@10 by default) on
the validation targets has not improved for ``stopping_step`` + 1 evaluations, capped at
``agg_epochs``, and keeps its best state; the validation samples' representations are cached
with the training ones.
"""
import time
from dataclasses import dataclass
from logging import getLogger
from typing import Optional

import numpy as np
import torch
from recbole.data.interaction import Interaction, cat_interactions
from recbole.utils import init_seed

from recbole_unlearn.data.dataset import UnlearnSequentialDataset
from recbole_unlearn.data.utils import eval_loader, train_loader
from recbole_unlearn.model.aggregators import AGGREGATORS
from recbole_unlearn.model.representations import representation_size
from recbole_unlearn.trainer.trainer import UnlearnTrainer
from recbole_unlearn.trainer.training import valid_metric_name, validated_score

#: the interaction field that numbers the aggregator's training samples.
SAMPLE_INDEX = "agg_sample_index"


@dataclass
class AggregatorTraining:
    """What one aggregator training did: wall ``seconds``, training ``samples``, the
    representation cache's size (``cache_mb``; ``None`` when not cached), epochs run against
    the ``agg_epochs`` cap, and the best validation score kept (``None`` without validation), of
    ``metric`` (``valid_metric``, lower case: NDCG@10 by default), recorded as ``best_valid_<metric>``."""

    seconds: float = 0.0
    samples: int = 0
    cache_mb: Optional[float] = None
    epochs: int = 0
    cap: int = 0
    best_valid: Optional[float] = None
    metric: str = "ndcg@10"
    #: whether the cap, not validation, ended training (``UnlearnTrainer.hit_cap``)
    hit_cap: bool = False

    def to_json(self) -> dict:
        return {"epochs": self.epochs, "cap": self.cap, "hit_cap": self.hit_cap,
                f"best_valid_{self.metric}": None if self.best_valid is None else round(self.best_valid, 4),
                "samples": self.samples, "cache_mb": self.cache_mb, "seconds": round(self.seconds, 3)}


def _cache_samples_that_fit(config, ensemble, n_samples: int, n_fixed: int) -> int:
    """How many of ``n_samples`` training samples a cache of ``agg_cache_max_mb`` holds next to
    ``n_fixed`` validation samples: ``[K, n, H]`` float32 sequences plus ``[K, n_items, H]``
    items."""
    size = representation_size(ensemble.sub_models[0])
    per_sample = ensemble.n_shards * size * 4
    items = ensemble.n_shards * ensemble.sub_models[0].n_items * size * 4
    budget = config["agg_cache_max_mb"] * 2 ** 20 - items - n_fixed * per_sample
    return int(max(1, min(n_samples, budget // per_sample)))


def _numbered(samples, start: int):
    """``samples`` with the :data:`SAMPLE_INDEX` field ``start, start+1, ...``."""
    samples.update(Interaction({SAMPLE_INDEX: torch.arange(start, start + len(samples))}))
    return samples


def train_aggregator(config, ensemble, dataset: UnlearnSequentialDataset, keep: np.ndarray,
                     shard_map) -> AggregatorTraining:
    """(Re)train ``ensemble``'s aggregator from a fresh initialisation on the remaining training
    data (at most ``agg_max_samples`` samples, drawn once with ``seed``; ``~``: all of them, as
    SPEC section 5 has it) for at most ``agg_epochs`` epochs (fewer when validation stops it, see
    the module doc) with learning rate ``agg_learning_rate``. A fresh start matters: the previous
    aggregator saw the data that is being forgotten. Returns what it did (0 seconds for non-learned
    aggregators)."""
    if not ensemble.aggregator.learnable:
        return AggregatorTraining(metric=valid_metric_name(config))
    start = time.perf_counter()
    targets = dataset.split_targets(keep)[0]
    rng = np.random.default_rng(config["seed"])
    cap = config["agg_max_samples"]
    if cap is not None and len(targets) > cap:
        targets = np.sort(rng.choice(targets, size=cap, replace=False))
    init_seed(config["seed"], config["reproducibility"])
    fresh = AGGREGATORS.get(config["aggregator"])(config, ensemble.n_shards, ensemble.sub_models[0])
    fresh = fresh.to(config["device"])
    ensemble.aggregator = fresh
    use_cache = config["agg_cache"] and fresh.reads_representations
    valid_samples = None
    if config["validate_submodels"]:
        valid_samples = dataset.samples(dataset.split_targets(keep)[1], keep)
        if len(valid_samples) == 0:
            valid_samples = None
    n_valid = len(valid_samples) if valid_samples is not None else 0
    if use_cache:
        fit = _cache_samples_that_fit(config, ensemble, len(targets), n_valid)
        if fit < len(targets):
            getLogger().warning(f"aggregator cache: {len(targets)} samples exceed agg_cache_max_mb="
                                f"{config['agg_cache_max_mb']}; training on {fit} of them")
            targets = np.sort(rng.choice(targets, size=fit, replace=False))
    train = dataset.copy(_numbered(dataset.samples(targets, keep), 0))
    loader = valid = None
    if len(train.inter_feat):
        loader = train_loader(config, dataset, train, keep)
        if valid_samples is not None:
            valid = eval_loader(config, dataset, _numbered(valid_samples, len(train.inter_feat)))
    fresh.refresh(ensemble, dataset, shard_map, keep)
    result = AggregatorTraining(samples=len(train.inter_feat), cap=config["agg_epochs"],
                                metric=valid_metric_name(config))
    if loader is None:
        # every training interaction forgotten: the aggregator is its seeded initialisation
        ensemble.eval()
        result.seconds = time.perf_counter() - start
        return result
    if use_cache:
        cached = train.inter_feat if valid is None else cat_interactions([train.inter_feat, valid_samples])
        ensemble.cache = ensemble.build_cache(cached, SAMPLE_INDEX, config["eval_batch_size"])
        result.cache_mb = round(ensemble.cache.megabytes, 1)
    try:
        trainer = UnlearnTrainer(config, ensemble)
        trainer.cap_epochs(config["agg_epochs"])
        trainer.optimizer = trainer._build_optimizer(
            params=[p for p in fresh.parameters() if p.requires_grad], learning_rate=config["agg_learning_rate"]
        )
        best, _ = trainer.fit(loader, valid, verbose=False, saved=valid is not None,
                              show_progress=config["show_progress"])
        if valid is not None:
            trainer.load_best()
            result.best_valid = validated_score(best)
        result.epochs = len(trainer.train_loss_dict)
        result.hit_cap = trainer.hit_cap()
    finally:
        ensemble.cache = None
    ensemble.eval()
    result.seconds = time.perf_counter() - start
    return result
