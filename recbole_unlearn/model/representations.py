"""What partitioners, aggregators and CED need from a RecBole sequential model: the sequence
representation h (the vector scored against item embeddings), the item embeddings q, and the
per-item score bias b some models add (BERT4Rec's trained ``output_bias``): the model scores
``h q^T + b``."""
import inspect
from typing import Optional

import torch
from recbole.model.sequential_recommender import BERT4Rec


def sequence_representation(model, interaction) -> torch.Tensor:
    """``[B, H]`` final hidden state of each history in ``interaction`` (no gradient to callers
    that wrap it in ``no_grad``). BERT4Rec reads the [MASK] appended after the history, as its
    ``full_sort_predict`` does; models whose ``forward`` returns ``[B, L, H]`` are gathered at
    the last real position."""
    item_seq = interaction[model.ITEM_SEQ]
    item_seq_len = interaction[model.ITEM_SEQ_LEN]
    if isinstance(model, BERT4Rec):
        masked = model.reconstruct_test_data(item_seq, item_seq_len)
        return model.gather_indexes(model.forward(masked), item_seq_len - 1)
    if len(inspect.signature(model.forward).parameters) >= 2:
        output = model.forward(item_seq, item_seq_len)
    else:
        output = model.forward(item_seq)
    if output.dim() == 3:
        output = model.gather_indexes(output, item_seq_len - 1)
    return output


@torch.no_grad()
def batched_sequence_representation(model, samples, batch_size: int, device) -> torch.Tensor:
    """``[n, H]`` :func:`sequence_representation` of every sample of an ``Interaction``,
    computed ``batch_size`` at a time on ``device``."""
    return torch.cat([sequence_representation(model, samples[i:i + batch_size].to(device))
                      for i in range(0, len(samples), batch_size)])


def item_representations(model) -> torch.Tensor:
    """``[n_items, H]`` item embeddings (BERT4Rec's extra [MASK] row excluded)."""
    return model.item_embedding.weight[: model.n_items]


def item_bias(model) -> Optional[torch.Tensor]:
    """``[n_items]`` score bias the model adds to ``h q^T`` (BERT4Rec's ``output_bias``, trained
    from zero), or ``None`` for a model that adds none."""
    if isinstance(model, BERT4Rec):
        return model.output_bias[: model.n_items]
    return None


def representation_size(model) -> int:
    return int(model.item_embedding.weight.shape[1])
