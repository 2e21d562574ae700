"""``EnsembleSequentialRecommender``: K sub-models of one RecBole sequential class + an aggregator.

It is a RecBole ``SequentialRecommender``: ``predict`` and ``full_sort_predict`` work, so
RecBole's ``Trainer.evaluate`` and our metrics evaluate it unchanged. Sub-models are trained
separately (one per shard); through the ensemble they are frozen, and ``calculate_loss`` trains
only the aggregator (cross-entropy over all items).

Because the sub-models are frozen, their outputs on a fixed set of training samples never
change while an aggregator trains: :class:`RepresentationCache` holds them, computed once, and
the ensemble reads a batch's sub-model representations from it (by the batch's sample-index
field) instead of running the K sub-models again.
"""
from dataclasses import dataclass
from typing import List, Optional

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from torch import nn

from recbole_unlearn.model.aggregators import AGGREGATORS, Aggregator
from recbole_unlearn.model.representations import item_bias, item_representations, sequence_representation


@dataclass
class RepresentationCache:
    """Frozen sub-models' outputs on a fixed sample set.

    Attributes:
        field: the interaction field holding each sample's index into ``sequences``.
        sequences: ``[K, n_samples, H]`` sequence representations of every sample.
        items: ``[K, n_items, H]`` item representations.
    """

    field: str
    sequences: torch.Tensor
    items: torch.Tensor

    @property
    def megabytes(self) -> float:
        return (self.sequences.numel() * self.sequences.element_size()
                + self.items.numel() * self.items.element_size()) / 2 ** 20


class EnsembleSequentialRecommender(SequentialRecommender):
    """K sub-models (``config.model_class``) combined by ``config['aggregator']``.

    Args:
        config: the run's config (``n_shards``, ``aggregator``, the base model's settings).
        dataset: any dataset of the run (only its vocabulary sizes are read).
        sub_models: optional ready sub-models; by default K fresh ones.
        aggregator: optional ready aggregator; by default a fresh one from the registry.
    """

    def __init__(self, config, dataset, sub_models: Optional[List[nn.Module]] = None,
                 aggregator: Optional[Aggregator] = None):
        super().__init__(config, dataset)
        n_shards = config["n_shards"]
        if sub_models is None:
            sub_models = [config.model_class(config, dataset) for _ in range(n_shards)]
        self.sub_models = nn.ModuleList(sub_models)
        for sub in self.sub_models:
            sub.requires_grad_(False)
        self.aggregator = aggregator or AGGREGATORS.get(config["aggregator"])(
            config, len(self.sub_models), self.sub_models[0])
        self.loss_fct = nn.CrossEntropyLoss()
        self.cache: Optional[RepresentationCache] = None

    @property
    def n_shards(self) -> int:
        return len(self.sub_models)

    def train(self, mode: bool = True):
        """Sub-models stay in eval mode (frozen: no dropout); only the aggregator trains."""
        super().train(mode)
        self.sub_models.eval()
        return self

    @torch.no_grad()
    def sub_full_sort(self, interaction) -> torch.Tensor:
        """``[K, B, n_items]`` full-sort scores of every sub-model."""
        return torch.stack([sub.full_sort_predict(interaction) for sub in self.sub_models])

    @torch.no_grad()
    def sub_predict(self, interaction) -> torch.Tensor:
        """``[K, B]`` scores of every sub-model for the items in ``interaction``."""
        return torch.stack([sub.predict(interaction) for sub in self.sub_models])

    @torch.no_grad()
    def sub_representations(self, interaction) -> torch.Tensor:
        """``[K, B, H]`` sequence representation of every sub-model (from the cache when one is
        set and the batch carries its sample-index field)."""
        if self.cache is not None and self.cache.field in interaction:
            return self.cache.sequences[:, interaction[self.cache.field]]
        return torch.stack([sequence_representation(sub, interaction) for sub in self.sub_models])

    @torch.no_grad()
    def sub_item_representations(self) -> torch.Tensor:
        """``[K, n_items, H]`` item embeddings of every sub-model."""
        if self.cache is not None:
            return self.cache.items
        return torch.stack([item_representations(sub) for sub in self.sub_models])

    @torch.no_grad()
    def sub_item_biases(self) -> Optional[torch.Tensor]:
        """``[K, n_items]`` per-item score bias of every sub-model (BERT4Rec's ``output_bias``), or
        ``None`` where the sub-models add none (:func:`item_bias`)."""
        biases = [item_bias(sub) for sub in self.sub_models]
        return None if biases[0] is None else torch.stack(biases)

    @torch.no_grad()
    def build_cache(self, samples, field: str, batch_size: int) -> RepresentationCache:
        """Compute the sub-models' representations of ``samples`` (an ``Interaction`` of n
        samples, in the order of its ``field`` indices 0..n-1) once, ``batch_size`` at a time;
        see :class:`RepresentationCache`. Does not set it."""
        device = next(self.parameters()).device
        parts = [torch.stack([sequence_representation(sub, samples[i:i + batch_size].to(device))
                              for sub in self.sub_models], dim=0)
                 for i in range(0, len(samples), batch_size)]
        sequences = torch.cat(parts, dim=1)
        items = torch.stack([item_representations(sub) for sub in self.sub_models]).detach().clone()
        return RepresentationCache(field, sequences, items)

    def full_sort_predict(self, interaction) -> torch.Tensor:
        return self.aggregator.full_sort(self, interaction)

    def predict(self, interaction) -> torch.Tensor:
        return self.aggregator.predict(self, interaction)

    def calculate_loss(self, interaction) -> torch.Tensor:
        """Cross-entropy of the aggregated scores against the target item (aggregator only)."""
        scores = self.full_sort_predict(interaction)
        return self.loss_fct(scores, interaction[self.POS_ITEM_ID])
