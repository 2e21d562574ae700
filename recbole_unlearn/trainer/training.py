"""Train one RecBole sequential model on one split, timed and reproducible."""
import math
import time
from dataclasses import dataclass
from logging import getLogger
from typing import Optional

import torch
from recbole.utils import init_seed, set_color

from recbole_unlearn.data.utils import SplitLoaders
from recbole_unlearn.trainer.trainer import UnlearnTrainer


@dataclass
class TrainedModel:
    """A trained model and what it cost."""

    model: torch.nn.Module
    seconds: float
    best_valid_score: Optional[float]
    epochs_run: int
    #: whether it ran all ``epochs`` without early stopping ending it (``None``: not known)
    hit_cap: Optional[bool] = None


def training_record(trained: TrainedModel, config) -> dict:
    """What a row records of a single model's training: ``epochs_run``, ``hit_cap`` and
    ``best_valid_<valid_metric>`` (``None`` where no validation ran), as shard stages and
    aggregators record theirs."""
    best = trained.best_valid_score
    return {"epochs_run": trained.epochs_run, "hit_cap": trained.hit_cap,
            f"best_valid_{valid_metric_name(config)}": None if best is None else round(best, 4)}


def new_model(config, train_dataset, seed: Optional[int] = None) -> torch.nn.Module:
    """A freshly initialised ``config.model_class``, seeded with ``seed`` (default
    ``config['seed']``)."""
    init_seed(config["seed"] if seed is None else seed, config["reproducibility"])
    return config.model_class(config, train_dataset).to(config["device"])


def valid_metric_name(config) -> str:
    """``valid_metric`` as sub-models' training records name it (``ndcg@10``): what their early
    stopping and their recorded ``best_valid_<metric>`` use."""
    return str(config["valid_metric"]).lower()


def validated_score(best) -> Optional[float]:
    """RecBole's best validation score, ``None`` where no validation ran (``eval_step: 0``: its
    starting ``-inf``, which JSON cannot hold)."""
    return float(best) if best is not None and math.isfinite(best) else None


def train_model(config, loaders: SplitLoaders, tag: str = "model") -> TrainedModel:
    """Train a new model on ``loaders.train`` with early stopping on ``loaders.valid`` and
    return the best state. The wall time covers model creation, training and validation."""
    logger = getLogger()
    start = time.perf_counter()
    model = new_model(config, loaders.train.dataset)
    trainer = UnlearnTrainer(config, model)
    logger.info(set_color(f"training {tag}", "green") + f" on {len(loaders.train.dataset)} samples")
    best_score, _ = trainer.fit(
        loaders.train, loaders.valid, verbose=True, saved=True, show_progress=config["show_progress"]
    )
    trainer.load_best()
    seconds = time.perf_counter() - start
    epochs_run = len(trainer.train_loss_dict)
    return TrainedModel(model, seconds, validated_score(best_score), epochs_run, trainer.hit_cap())
