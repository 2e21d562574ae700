"""RecBole's ``Collector``, with the top-k resource of full-ranking evaluation computed from the
positive pairs.

For every batch, RecBole's ``Collector.eval_batch_collect`` builds a dense ``[B, n_items]``
indicator matrix of the positive items, sums each row to count them and gathers it at the top-k
indices. In sequential recommendation each row has one positive, so that matrix is nearly all
waste: on Amazon Beauty (12,102 items, batches of 2,048, our CPU) RecBole collects a batch in
106 ms and :class:`TopkCollector` in 27 ms, most of it the top-k; an SRU aggregator epoch that
trains on cached representations and validates went from about 2.8 to 2.1 s (docs/benchmarks.md).
:class:`TopkCollector` computes the same ``rec.topk`` tensor (same values, same dtype) from the
positive pairs, and leaves every other resource to RecBole.
"""
import torch
from recbole.evaluator import Collector


def topk_hits(topk_idx: torch.Tensor, positive_u: torch.Tensor, positive_i: torch.Tensor,
              n_items: int) -> torch.Tensor:
    """RecBole's ``rec.topk`` rows without the dense indicator matrix.

    Args:
        topk_idx: ``[B, k]`` item ids of each row's top k, best first.
        positive_u: ``[P]`` row of each positive pair.
        positive_i: ``[P]`` item of each positive pair (a pair given twice counts once, as in
            RecBole's 0/1 matrix).
        n_items: the number of item ids (the scores' width).

    Returns:
        ``[B, k + 1]`` int64: 1 where the item at that rank is a positive of the row, then the
        row's number of distinct positives.
    """
    n_rows, k = topk_idx.shape
    pairs = torch.unique(positive_u.long() * n_items + positive_i.long())
    rows, items = pairs // n_items, pairs % n_items
    hits = torch.zeros(n_rows, k, dtype=torch.int64, device=topk_idx.device)
    hits.index_put_((rows,), (topk_idx[rows] == items[:, None]).long(), accumulate=True)
    counts = torch.bincount(rows, minlength=n_rows).view(-1, 1)
    return torch.cat((hits, counts), dim=1)


class TopkCollector(Collector):
    """A ``Collector`` whose ``rec.topk`` comes from :func:`topk_hits`; everything else (and
    ``rec.meanrank``, which needs the full sort anyway) is RecBole's own."""

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        if not self.register.need("rec.topk") or self.register.need("rec.meanrank"):
            return super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        _, topk_idx = torch.topk(scores_tensor, max(self.topk), dim=-1)  # [B, k]
        if self.register.need("rec.items"):
            self.data_struct.update_tensor("rec.items", topk_idx)
        hits = topk_hits(topk_idx, positive_u, positive_i, scores_tensor.shape[-1])  # [B, k + 1]
        self.data_struct.update_tensor("rec.topk", hits)
        if self.register.need("rec.score"):
            self.data_struct.update_tensor("rec.score", scores_tensor)
        if self.register.need("data.label"):
            self.label_field = self.config["LABEL_FIELD"]
            self.data_struct.update_tensor("data.label", interaction[self.label_field].to(self.device))
