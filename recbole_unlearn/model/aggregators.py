"""Aggregators: K frozen sub-models -> one prediction (SPEC section 5).

An aggregator is an ``nn.Module`` registered in ``AGGREGATORS``. Score-level aggregators only
implement ``combine``; representation-level ones (SRU attention, RecEraser) override
``full_sort``. ``learnable`` aggregators are trained by ``train_aggregator`` with the
sub-models frozen, and retrained after every forget.
"""
from typing import Dict, Iterable, Optional, Tuple

import numpy as np
import torch
from torch import nn

from recbole_unlearn.model.representations import batched_sequence_representation, representation_size
from recbole_unlearn.utils.registry import Registry

AGGREGATORS: Registry[type] = Registry("aggregator", "aggregator")

#: settings that size a learned aggregator's layers (read by those naming them in ``sized_by``)
LAYER_SIZE_KEYS = ("agg_hidden_size", "agg_attention_size")
#: settings of the representation cache (read only for aggregators that ``reads_representations``)
CACHE_KEYS = ("agg_cache", "agg_cache_max_mb")


class Aggregator(nn.Module):
    """Base class. ``n_shards`` = K; ``sub_model`` is one of the K sub-models (for sizes)."""

    learnable = False
    #: whether it reads only the sub-models' sequence and item representations (not their
    #: scores), so a representation cache can stand in for the sub-models while it trains.
    reads_representations = False
    #: the ``LAYER_SIZE_KEYS`` its layers read
    sized_by: Tuple[str, ...] = ()

    def __init__(self, config, n_shards: int, sub_model: nn.Module):
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

    def refresh(self, ensemble, dataset, shard_map, keep: np.ndarray) -> None:
        """Called before (re)training, with the shards' current data (e.g. to recompute shard
        centroids from the retrained sub-models)."""


def unread_aggregator_settings(name: str, keys: Iterable[str]) -> Dict[str, str]:
    """``{key: why the aggregator registered as `name` never reads it}`` for the ``agg_*`` keys
    of ``keys``: every one under an aggregator that trains nothing; the cache's under one that
    reads no representations; a layer size under one without that layer (``static`` recorded
    ``agg_attention_size`` as if it sized something)."""
    aggregator = AGGREGATORS.get(name)
    out: Dict[str, str] = {}
    for key in keys:
        if not key.startswith("agg_"):
            continue
        if not aggregator.learnable:
            out[key] = f"the {name} aggregator trains nothing"
        elif key in CACHE_KEYS and not aggregator.reads_representations:
            out[key] = f"the {name} aggregator reads no representations to cache"
        elif key in LAYER_SIZE_KEYS and key not in aggregator.sized_by:
            out[key] = f"the {name} aggregator has no layer it sizes"
    return out


@AGGREGATORS.register("mean")
class MeanAggregator(Aggregator):
    """SISA: the average of the K sub-models' scores."""

    def combine(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.mean(dim=0)


@AGGREGATORS.register("static")
class StaticAggregator(Aggregator):
    """Learned softmax weights, one per shard: ``score = sum_k softmax(w)_k * score_k``."""

    learnable = True

    def __init__(self, config, n_shards: int, sub_model: nn.Module):
        super().__init__(config, n_shards, sub_model)
        self.shard_logits = nn.Parameter(torch.zeros(n_shards))

    def weights(self) -> torch.Tensor:
        """``[K]`` shard weights (sum to 1)."""
        return torch.softmax(self.shard_logits, dim=0)

    def combine(self, scores: torch.Tensor) -> torch.Tensor:
        w = self.weights().view(-1, *([1] * (scores.dim() - 1)))
        return (w * scores).sum(dim=0)


class _ShardTransforms(nn.Module):
    """K independent affine maps ``x_k -> W_k x_k + b_k`` from size H to H'."""

    def __init__(self, n_shards: int, size_in: int, size_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_shards, size_in, size_out))
        self.bias = nn.Parameter(torch.zeros(n_shards, size_out))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[K, ..., H]`` -> ``[K, ..., H']``."""
        shape = x.shape
        flat = x.reshape(shape[0], -1, shape[-1])
        out = torch.bmm(flat, self.weight) + self.bias[:, None, :]
        return out.reshape(*shape[:-1], out.shape[-1])


class _AttentionScore(nn.Module):
    """``a = h^T ReLU(A x + a)``: one score per vector, ``[..., H'] -> [...]``."""

    def __init__(self, size: int, attention_size: int):
        super().__init__()
        self.hidden = nn.Linear(size, attention_size)
        self.out = nn.Linear(attention_size, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x))).squeeze(-1)


class RepresentationAggregator(Aggregator):
    """Base of the learned aggregators that read the sub-models' representations: sets
    ``input_size`` (H, the sub-models' representation size) and ``hidden_size`` (H',
    ``agg_hidden_size`` or H)."""

    learnable = True
    reads_representations = True
    sized_by = LAYER_SIZE_KEYS

    def __init__(self, config, n_shards: int, sub_model: nn.Module):
        super().__init__(config, n_shards, sub_model)
        self.input_size = representation_size(sub_model)
        self.hidden_size = config["agg_hidden_size"] or self.input_size


@AGGREGATORS.register("attention")
class AttentionAggregator(RepresentationAggregator):
    """SRU (SPEC section 5): per-shard transforms ``e_k = W_k h_k + b_k``; shard centroids
    ``c_k`` = mean final hidden state of sub-model k over its shard's training sequences,
    transformed the same way; ``alpha = softmax_k(H^T ReLU(A (e_k * c'_k) + a))``;
    ``scores = Linear(sum_k alpha_k e_k)`` over all items."""

    def __init__(self, config, n_shards: int, sub_model: nn.Module):
        super().__init__(config, n_shards, sub_model)
        self.transform = _ShardTransforms(n_shards, self.input_size, self.hidden_size)
        self.attention = _AttentionScore(self.hidden_size, config["agg_attention_size"])
        self.output = nn.Linear(self.hidden_size, sub_model.n_items)
        self.register_buffer("centroids", torch.zeros(n_shards, self.input_size))
        self.batch_size = config["eval_batch_size"]

    def shard_weights(self, ensemble, interaction) -> torch.Tensor:
        """``(alpha [K, B], e [K, B, H'])``."""
        e = self.transform(ensemble.sub_representations(interaction))
        c = self.transform(self.centroids[:, None, :])  # [K, 1, H']
        return torch.softmax(self.attention(e * c), dim=0), e

    def full_sort(self, ensemble, interaction) -> torch.Tensor:
        alpha, e = self.shard_weights(ensemble, interaction)
        return self.output((alpha[..., None] * e).sum(dim=0))

    def predict(self, ensemble, interaction) -> torch.Tensor:
        scores = self.full_sort(ensemble, interaction)
        return scores.gather(1, interaction[ensemble.ITEM_ID].view(-1, 1)).squeeze(1)

    @torch.no_grad()
    def refresh(self, ensemble, dataset, shard_map, keep: np.ndarray) -> None:
        for shard, sub in enumerate(ensemble.sub_models):
            users = shard_map.shard_users(shard)
            histories = dataset.user_histories(users, keep)
            if len(histories) == 0:
                self.centroids[shard].zero_()
                continue
            reps = batched_sequence_representation(sub, histories, self.batch_size, self.centroids.device)
            self.centroids[shard] = reps.mean(dim=0)


@AGGREGATORS.register("receraser")
class RecEraserAggregator(RepresentationAggregator):
    """RecEraser (eq. 5-8), adapted to sequences: per-shard transforms of the sequence
    representation ``e_k`` and of the item embeddings ``q'_k(v)``, separate attentions
    ``alpha_k`` (sequence side) and ``beta_k(v)`` (item side), and
    ``score(v) = <sum_k alpha_k e_k, sum_k beta_k(v) q'_k(v)> + sum_k beta_k(v) b_k(v)``, the last
    term for sub-models that add a per-item score bias ``b_k`` to ``h q^T`` (BERT4Rec's trained
    ``output_bias``; the paper's models have none, and the term is then absent)."""

    def __init__(self, config, n_shards: int, sub_model: nn.Module):
        super().__init__(config, n_shards, sub_model)
        self.sequence_transform = _ShardTransforms(n_shards, self.input_size, self.hidden_size)
        self.item_transform = _ShardTransforms(n_shards, self.input_size, self.hidden_size)
        self.sequence_attention = _AttentionScore(self.hidden_size, config["agg_attention_size"])
        self.item_attention = _AttentionScore(self.hidden_size, config["agg_attention_size"])
        #: whether it adds the sub-models' per-item score bias: off for one trained without it (a
        #: model folder saved before it was added scores as its aggregator was trained, until a
        #: forget trains the aggregator again)
        self.adds_item_bias = True

    def _user_side(self, ensemble, interaction) -> torch.Tensor:
        e = self.sequence_transform(ensemble.sub_representations(interaction))  # [K, B, H']
        alpha = torch.softmax(self.sequence_attention(e), dim=0)
        return (alpha[..., None] * e).sum(dim=0)  # [B, H']

    def _item_side(self, ensemble) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``([N, H'] items, [N] bias or None)``."""
        q = self.item_transform(ensemble.sub_item_representations())  # [K, N, H']
        beta = torch.softmax(self.item_attention(q), dim=0)  # [K, N]
        biases = ensemble.sub_item_biases() if self.adds_item_bias else None  # [K, N] or None
        bias = None if biases is None else (beta * biases).sum(dim=0)
        return (beta[..., None] * q).sum(dim=0), bias

    def full_sort(self, ensemble, interaction) -> torch.Tensor:
        items, bias = self._item_side(ensemble)
        scores = self._user_side(ensemble, interaction) @ items.T
        return scores if bias is None else scores + bias

    def predict(self, ensemble, interaction) -> torch.Tensor:
        wanted = interaction[ensemble.ITEM_ID]
        items, bias = self._item_side(ensemble)
        scores = (self._user_side(ensemble, interaction) * items[wanted]).sum(dim=-1)
        return scores if bias is None else scores + bias[wanted]
