"""Utility and forgetting metrics (SPEC section 7) on top of RecBole's Collector/Evaluator.

* ``full_ranking_metrics``: any RecBole top-k metric (NDCG, Recall, Hit, ...) with full
  ranking over all items, computed by RecBole's own ``Evaluator`` from a ``Collector``
  (:class:`~recbole_unlearn.evaluator.collector.TopkCollector`, which skips RecBole's dense
  positive-item matrix).
* ``sampled_hit``: SRU inference Hit@k: the target's rank among ``N`` sampled items that are
  not in the user's sequence.
"""
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.evaluator import Evaluator

from recbole_unlearn.evaluator.collector import TopkCollector


def _eval_config(config, metrics: Sequence[str], topk: Sequence[int]) -> dict:
    """The handful of keys RecBole's Collector/Evaluator read, with our metrics and cut-offs."""
    return {
        "metrics": list(metrics),
        "topk": list(topk),
        "metric_decimal_place": config["metric_decimal_place"],
        "eval_args": config["eval_args"],
        "device": config["device"],
        "ITEM_ID_FIELD": config["ITEM_ID_FIELD"],
        "USER_ID_FIELD": config["USER_ID_FIELD"],
        "LABEL_FIELD": config["LABEL_FIELD"],
    }


@torch.no_grad()
def full_sort_scores(model, loader, device) -> Iterator[Tuple[Interaction, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(interaction, scores [B, n_items], positive_u [B], positive_i [B])`` per batch of
    a RecBole ``FullSortEvalDataLoader``; the padding item 0 scores ``-inf``."""
    model.eval()
    n_items = loader._dataset.item_num
    for interaction, _, positive_u, positive_i in loader:
        interaction = interaction.to(device)
        scores = model.full_sort_predict(interaction).view(-1, n_items)
        scores[:, 0] = -np.inf
        yield interaction, scores, positive_u.to(device), positive_i.to(device)


def full_ranking_metrics(model, loader, config, metrics: Sequence[str], topk: Sequence[int]) -> Dict[str, float]:
    """RecBole metrics (e.g. ``["NDCG", "Recall"]`` at ``[10, 20]``) of ``model`` on ``loader``.

    Returns:
        ``{"ndcg@10": ..., "recall@20": ...}`` (RecBole's key format); ``{}`` when the loader is
        empty (e.g. a forget set whose samples all have empty histories).
    """
    if len(loader._dataset) == 0:
        return {}
    cfg = _eval_config(config, metrics, topk)
    collector, evaluator = TopkCollector(cfg), Evaluator(cfg)
    for interaction, scores, positive_u, positive_i in full_sort_scores(model, loader, config["device"]):
        collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
    collector.model_collect(model)
    result = evaluator.evaluate(collector.get_data_struct())
    # RecBole rounds its top-k metrics (to float32 values: float() shows their tail) and GAUC not at all
    return {key: round(float(value), config["metric_decimal_place"]) for key, value in result.items()}


def target_ranks(scores: torch.Tensor, targets: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """1-based rank of each target among itself and its sampled candidates.

    Args:
        scores: ``[B, n_items]`` model scores.
        targets: ``[B]`` item ids.
        candidates: ``[B, N]`` sampled negative item ids.

    Returns:
        ``[B]`` ranks; ties count against the target (a candidate scoring the same ranks above).
    """
    target_score = scores.gather(1, targets.view(-1, 1))
    candidate_score = scores.gather(1, candidates)
    return 1 + (candidate_score >= target_score).sum(dim=1)


def hit_at_k(ranks: torch.Tensor, topk: Sequence[int], decimals: int = 4) -> Dict[str, float]:
    """``{"hit@k": share of ranks <= k}`` for each k; ``{}`` for no ranks."""
    if len(ranks) == 0:
        return {}
    ranks = ranks.float()
    return {f"hit@{k}": round(float((ranks <= k).float().mean()), decimals) for k in topk}


def sample_negatives(
    samples: Interaction, user_items: List[np.ndarray], n_items: int, n_neg: int, seed: int, uid_field: str
) -> torch.Tensor:
    """``[B, N]`` items per sample, uniformly from the items (ids ``1..n_items-1``) not in that
    user's whole sequence; ``N = min(n_neg, number of such items)``, the same for every row."""
    rng = np.random.default_rng(seed)
    users = samples[uid_field].numpy()
    allowed = [np.setdiff1d(np.arange(1, n_items), user_items[u]) for u in users]
    n = min([n_neg] + [len(a) for a in allowed])
    rows = [rng.choice(a, size=n, replace=False) for a in allowed]
    return torch.from_numpy(np.stack(rows)) if rows else torch.zeros((0, n), dtype=torch.long)


@torch.no_grad()
def sampled_hit(model, loader, negatives: torch.Tensor, topk: Sequence[int], config) -> Dict[str, Optional[float]]:
    """SRU inference Hit@k: rank each target among its row of ``negatives`` ``[B, N]``; ``None``
    for a ``k`` above N, a hit by construction (N falls below ``sru_inference_neg_num`` where a
    forgotten user has fewer unseen items; a ``k`` above ``sru_inference_neg_num`` itself is
    refused before the run trains).

    ``loader`` must iterate its samples in order (a RecBole ``FullSortEvalDataLoader``)."""
    if len(loader._dataset) == 0:
        return {}
    device = config["device"]
    ranks, offset = [], 0
    for interaction, scores, _, positive_i in full_sort_scores(model, loader, device):
        batch = len(positive_i)
        ranks.append(target_ranks(scores, positive_i, negatives[offset : offset + batch].to(device)))
        offset += batch
    hits: Dict[str, Optional[float]] = dict(hit_at_k(torch.cat(ranks), topk, config["metric_decimal_place"]))
    for k in topk:  # ranked among N negatives, a target is within N + 1 by construction: not measured
        if k > negatives.shape[1]:
            hits[f"hit@{k}"] = None
    return hits
