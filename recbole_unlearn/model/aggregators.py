"""Aggregators: K frozen sub-models -> one prediction (SPEC section 5).

An aggregator is an ``nn.Module`` registered in ``AGGREGATORS``. Score-level aggregators only
implement ``combine``; representation-level ones (SRU attention, RecEraser) override
``full_sort``. ``learnable`` aggregators are trained by ``train_aggregator`` with the
sub-models frozen, and retrained after every forget.
"""
import torch
from torch import nn

from recbole_unlearn.utils.registry import Registry

AGGREGATORS: Registry[type] = Registry("aggregator", "aggregator")


class Aggregator(nn.Module):
    """Base class. ``n_shards`` = K."""

    learnable = False

    def __init__(self, config, n_shards: int):
        super().__init__()
        self.n_shards = n_shards

    def combine(self, scores: torch.Tensor) -> torch.Tensor:
        """``[K, B, ...]`` sub-model scores -> ``[B, ...]``."""
        raise NotImplementedError

    def full_sort(self, ensemble, interaction) -> torch.Tensor:
        """``[B, n_items]`` scores for every item."""
        return self.combine(ensemble.sub_full_sort(interaction))

    def predict(self, ensemble, interaction) -> torch.Tensor:
        """``[B]`` scores of the items in ``interaction``."""
        return self.combine(ensemble.sub_predict(interaction))

    def refresh(self, ensemble, shards) -> None:
        """Called after ``shards`` were retrained (e.g. to recompute shard centroids)."""


@AGGREGATORS.register("mean")
class MeanAggregator(Aggregator):
    """SISA: the average of the K sub-models' scores."""

    def combine(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.mean(dim=0)


@AGGREGATORS.register("static")
class StaticAggregator(Aggregator):
    """Learned softmax weights, one per shard: ``score = sum_k softmax(w)_k * score_k``."""

    learnable = True

    def __init__(self, config, n_shards: int):
        super().__init__(config, n_shards)
        self.shard_logits = nn.Parameter(torch.zeros(n_shards))

    def weights(self) -> torch.Tensor:
        """``[K]`` shard weights (sum to 1)."""
        return torch.softmax(self.shard_logits, dim=0)

    def combine(self, scores: torch.Tensor) -> torch.Tensor:
        w = self.weights().view(-1, *([1] * (scores.dim() - 1)))
        return (w * scores).sum(dim=0)
